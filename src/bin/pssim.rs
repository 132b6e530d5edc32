//! The `pssim` binary: parses the flags and runs the command. Every
//! command's body is in the library (`pssim::cli`), where tests call it.
//!
//! May import: every module (it declares them). Never: logic of its own.

/// Large blocks from mimalloc, small ones from the system (see
/// `pssim::net::alloc`).
#[global_allocator]
static ALLOC: pssim::net::alloc::Split = pssim::net::alloc::Split;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = pssim::cli::Cli::parse();
    ExitCode::from(pssim::cli::main(cli, &mut std::io::stdout()))
}
