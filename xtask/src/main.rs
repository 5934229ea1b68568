//! `xtask`: developer tasks of the rkube workspace that are not part of the product.
//!
//! Run with `cargo xtask <task>` (the alias in `.cargo/config.toml` builds this crate in
//! release mode). Tasks:
//!
//! - `cargo xtask bench-api [--quick] [--no-build]`: benchmarks the API server. It builds
//!   `rkube` in release mode (`cargo build --release -p rkube`, honouring
//!   `CARGO_TARGET_DIR`; `--no-build` uses the binary already there), starts
//!   `rkube server` on a temporary data dir, drives it over HTTPS with kube-rs (creates
//!   from 16 concurrent clients, GETs, full LISTs, one change fanned out to many
//!   watchers, server RSS), then measures raw rusqlite inserts and reads of the same
//!   value sizes on the same filesystem as the baseline, and prints a table of figures,
//!   targets, baselines and ratios. `--quick` uses small counts (a smoke test of a few
//!   seconds). Every figure is the median of a few repetitions.

mod bench_api;
mod raw;
mod server;
mod stats;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask bench-api [--quick] [--no-build]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match task.as_str() {
        "bench-api" => {
            let mut options = bench_api::Options::default();
            for arg in rest {
                match arg.as_str() {
                    "--quick" => options.quick = true,
                    "--no-build" => options.no_build = true,
                    "-h" | "--help" => {
                        println!("{USAGE}");
                        return ExitCode::SUCCESS;
                    }
                    other => {
                        eprintln!("unknown argument {other:?}; {USAGE}");
                        return ExitCode::from(2);
                    }
                }
            }
            match bench_api::run(options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("bench-api failed: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("unknown task {other:?}; {USAGE}");
            ExitCode::from(2)
        }
    }
}
