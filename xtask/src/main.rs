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
//! - `cargo xtask bench-scheduler [--quick] [--no-build]`: benchmarks the scheduler end
//!   to end through the API (issue 3). Builds or locates `rkube` as `bench-api` does,
//!   first times rkube-scheduler's decision function in process (the baseline), then
//!   starts `rkube server`, registers 5,000 simulated Ready nodes with Leases (renewed in
//!   the background), creates 10,000 basic pods from 16 clients and times first create →
//!   all bound (seen by a watch), again with required pod anti-affinity, then a
//!   100-replica Deployment until all its pods are bound; reports pods/s, create
//!   throughput, the bind tail, latencies, server CPU and store writes per pod. Every
//!   phase has a deadline and reports its progress if it passes. `--quick`: 200 nodes,
//!   1,000 pods (a smoke test).
//! - `cargo xtask bench-pods [--quick] [--no-build]`: pod start-up (issue 4). Starts
//!   `rkube server --disable-agent` and a joined `rkube agent`, times sandbox + container
//!   straight through the agent's containerd (CRI, the baseline), then pods created
//!   through the API one at a time until a watch sees them Running, then a burst of 110
//!   pods, and reads the agent's RSS. `--quick`: 10 pods and a burst of 30.
//! - `cargo xtask bench-dns [--quick]`: the cluster DNS server (rkube-network `dns`) with
//!   10,000 synthetic Services in a hand-fed view: index build and patch times, then
//!   answers/s and p50/p99 latency of service-name A questions (10 % NXDOMAIN) from a UDP
//!   load generator, saturating (32 in flight) and paced at 20,000/s, against a trivial
//!   UDP echo responder as the baseline, over loopback and from a network namespace over a
//!   veth pair (created and removed by the task). `--quick`: 1,000 Services, shorter runs.
//! - `cargo xtask bench-proxy [--quick]`: the nftables service proxy (rkube-network
//!   `proxy`) in a private network namespace, for 1,000 and 10,000 synthetic Services × 5
//!   endpoints: raw `nft -f` of the full ruleset (the baseline), our full sync (plan +
//!   apply) and one endpoint change synced incrementally; medians of a few runs, targets
//!   full ≤ 2 × raw and incremental < 50 ms. `--quick`: 100 and 1,000 Services.
//! - `cargo xtask test-images DIR`: builds the node agent's test images (busybox, nginx,
//!   pause, testserver) as docker-archive tars into DIR with `rkube-testimages`, ready for
//!   `ctr -n k8s.io images import DIR/<name>.tar`, and prints one line per archive (tags,
//!   image ID, path). The testserver binary is found next to this executable or built with
//!   `cargo build -p rkube-testserver`.

mod bench_api;
mod bench_dns;
mod bench_pods;
mod bench_proxy;
mod bench_scheduler;
mod decision;
mod raw;
mod server;
mod sim;
mod stats;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <bench-api|bench-scheduler|bench-pods|bench-dns|bench-proxy> [--quick] [--no-build] | cargo xtask test-images DIR";

/// The options both benchmarks take.
fn parse_flags(rest: &[String]) -> Result<(bool, bool), ExitCode> {
    let (mut quick, mut no_build) = (false, false);
    for arg in rest {
        match arg.as_str() {
            "--quick" => quick = true,
            "--no-build" => no_build = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Err(ExitCode::SUCCESS);
            }
            other => {
                eprintln!("unknown argument {other:?}; {USAGE}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok((quick, no_build))
}

fn finish(task: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{task} failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask test-images DIR`.
fn test_images(dir: &std::path::Path) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let images = rkube_testimages::build_all(dir)?;
    for image in &images {
        println!("{}  {}  {}", image.image_id, image.path.display(), image.tags.join(" "));
    }
    println!("built {} images in {:.1?}", images.len(), start.elapsed());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match task.as_str() {
        "bench-api" => match parse_flags(rest) {
            Ok((quick, no_build)) => finish(task, bench_api::run(bench_api::Options { quick, no_build })),
            Err(code) => code,
        },
        "bench-scheduler" => match parse_flags(rest) {
            Ok((quick, no_build)) => finish(task, bench_scheduler::run(bench_scheduler::Options { quick, no_build })),
            Err(code) => code,
        },
        "bench-pods" => match parse_flags(rest) {
            Ok((quick, no_build)) => finish(task, bench_pods::run(bench_pods::Options { quick, no_build })),
            Err(code) => code,
        },
        "bench-dns" => match rest {
            // Internal: the load generator alone, run by bench-dns inside a network namespace.
            [flag, args @ ..] if flag == "--load-client" => finish(task, bench_dns::load_client(args)),
            _ => match parse_flags(rest) {
                Ok((quick, _)) => finish(task, bench_dns::run(bench_dns::Options { quick })),
                Err(code) => code,
            },
        },
        "bench-proxy" => match parse_flags(rest) {
            Ok((quick, _)) => finish(task, bench_proxy::run(bench_proxy::Options { quick })),
            Err(code) => code,
        },
        "test-images" => match rest {
            [dir] if !dir.starts_with('-') => finish(task, test_images(std::path::Path::new(dir))),
            _ => {
                eprintln!("{USAGE}");
                ExitCode::from(2)
            }
        },
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
