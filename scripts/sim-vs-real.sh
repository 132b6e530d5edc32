#!/usr/bin/env bash
# Runs every library scenario real mode can run, simulated (seeds 1-3) and
# for real (pssim local, seed 1), and rewrites the table in
# docs/real-mode.md ("Simulation against reality"). Minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --test sim_vs_real -- --ignored --nocapture write_the_sim_vs_real_table
