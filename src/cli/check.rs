//! `pssim check FILE...` (validate scenario files) and `pssim bugs` (the
//! planted bugs and the checkers that catch them).
//!
//! May import: anything in the library (the top layer). Never: code
//! that belongs in a lower layer (a command only parses, calls and prints).

use super::{read, say};
use crate::core::Bug;
use crate::scenario;
use std::io::Write;
use std::path::PathBuf;

/// Validates every file; 2 if any is invalid.
pub fn check(files: &[PathBuf], out: &mut dyn Write) -> std::io::Result<i32> {
    let mut code = 0;
    for f in files {
        match read(f).and_then(|t| scenario::parse(&t, &f.display().to_string())) {
            Ok(s) => {
                say!(
                    out,
                    "{}: ok ({:?}: {} servers, {} workers, {} faults)",
                    f.display(),
                    s.name,
                    s.cluster.servers,
                    s.cluster.workers,
                    s.faults.len()
                );
                if s.compute.step_time.is_some() && s.compute.worker_gflops.is_some() {
                    say!(
                        out,
                        "{}: note: [compute] worker_gflops has no effect: step_time is given \
                         and wins (remove step_time to charge the model's FLOPs)",
                        f.display()
                    );
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = 2;
            }
        }
    }
    Ok(code)
}

/// Lists the planted bugs.
pub fn bugs(out: &mut dyn Write) -> std::io::Result<i32> {
    say!(out, "{:<20} {:<16} what it breaks", "bug", "caught by");
    for b in Bug::ALL {
        say!(
            out,
            "{:<20} {:<16} {}",
            b.name(),
            b.caught_by(),
            b.description()
        );
    }
    Ok(0)
}
