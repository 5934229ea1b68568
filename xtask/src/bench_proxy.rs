//! `cargo xtask bench-proxy [--quick]`: the nftables service proxy at scale.
//!
//! In a private network namespace (never the host's tables), for N synthetic Services
//! with 5 ready endpoints each (every tenth a NodePort), it times:
//! (a) the baseline: `nft -f` loading the full ruleset text from a file;
//! (b) our full sync (plan + render + apply through `rkube_network::proxy::Syncer`, the
//!     code the agent runs);
//! (c) one endpoint of one Service replaced, synced incrementally (plan delta + apply),
//!     against raw `nft -f` of the same kind of delta (another Service's endpoint
//!     replaced, rendered ahead) as its baseline.
//!
//! N = 1,000 and 10,000 (`--quick`: 100 and 1,000). Figures are medians of a few runs.
//! Targets: full sync ≤ 2 × raw nft; incremental < 50 ms at the largest N.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use rkube_network::proxy::{
    Applied, CommandNft, Config, NodeFacts, Syncer, base_ops, full_script, plan, plan_service, render,
};
use rkube_network::services::{Changes, ServiceKey, ServiceView};
use serde_json::json;

use crate::stats::{Row, fmt_ms, median, print_table};

pub struct Options {
    pub quick: bool,
}

const ENDPOINTS: usize = 5;
const TABLE: &str = "rkube-bench";

/// A private network namespace, deleted on drop (also on error or panic).
struct Netns(String);

impl Netns {
    fn new() -> Result<Netns> {
        let name = format!("rkp-bench-{}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status().context("running ip netns add")?;
        if !status.success() {
            bail!("ip netns add {name} failed (needs root)");
        }
        Ok(Netns(name))
    }

    /// `nsenter` costs far less than `ip netns exec` (no mount namespace and sysfs
    /// remount), so the figures are close to running nft on the host.
    fn nft(&self) -> Vec<String> {
        vec!["nsenter".into(), format!("--net=/run/netns/{}", self.0), "nft".into()]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

pub fn run(options: Options) -> Result<()> {
    if Command::new("nft").arg("--version").output().is_err() {
        bail!("nft is not installed");
    }
    let sizes: [usize; 2] = if options.quick { [100, 1_000] } else { [1_000, 10_000] };
    let runs = if options.quick { 3 } else { 5 };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let ns = Netns::new()?;
    let mut rows = Vec::new();
    for (i, n) in sizes.into_iter().enumerate() {
        let largest = i + 1 == sizes.len();
        eprintln!("bench-proxy: {n} Services × {ENDPOINTS} endpoints");
        rows.extend(runtime.block_on(bench_size(&ns, n, runs, largest))?);
    }
    print_table(&rows);
    Ok(())
}

fn node() -> NodeFacts {
    NodeFacts {
        node_name: "bench".into(),
        node_ips: vec!["10.255.0.1".parse().unwrap()],
        pod_bridge: "rkbench0".into(),
    }
}

fn ip(base: u32, i: usize) -> String {
    std::net::Ipv4Addr::from(base + i as u32).to_string()
}

fn synth_service(i: usize) -> Service {
    let mut port = json!({"name": "http", "port": 80, "protocol": "TCP"});
    let node_port = i.is_multiple_of(10);
    if node_port {
        port["nodePort"] = json!(30000 + i / 10);
    }
    serde_json::from_value(json!({
        "metadata": {"namespace": format!("ns-{}", i % 50), "name": format!("svc-{i}")},
        "spec": {"type": if node_port { "NodePort" } else { "ClusterIP" },
                 "clusterIP": ip(0x0a60_0001, i), "ports": [port]},
    }))
    .expect("a valid Service")
}

/// The slice of Service `i`; `replaced` swaps its first endpoint for a fresh address.
fn synth_slice(i: usize, replaced: Option<usize>) -> EndpointSlice {
    let endpoints: Vec<serde_json::Value> = (0..ENDPOINTS)
        .map(|j| {
            let addr = match replaced {
                Some(r) if j == 0 => ip(0x0af0_0000, r),
                _ => ip(0x0ac8_0000, i * ENDPOINTS + j),
            };
            json!({"addresses": [addr], "conditions": {"ready": true}, "nodeName": "bench"})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": format!("ns-{}", i % 50), "name": format!("svc-{i}-abcde"),
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .expect("a valid EndpointSlice")
}

struct Feed {
    view: ServiceView,
    slices: Writer<EndpointSlice>,
    _services: Writer<Service>,
}

fn feed(n: usize) -> Feed {
    let (s, mut services) = reflector::store();
    let (e, mut slices) = reflector::store();
    services.apply_watcher_event(&Event::InitDone);
    slices.apply_watcher_event(&Event::InitDone);
    for i in 0..n {
        services.apply_watcher_event(&Event::Apply(synth_service(i)));
        slices.apply_watcher_event(&Event::Apply(synth_slice(i, None)));
    }
    Feed { view: ServiceView::from_stores(s, e), slices, _services: services }
}

async fn bench_size(ns: &Netns, n: usize, runs: usize, largest: bool) -> Result<Vec<Row>> {
    let mut feed = feed(n);
    let config = Config { table: TABLE.into(), nft: ns.nft(), node: node(), local_dns: None };
    let nft = CommandNft::new(&config.nft)?;

    // (a) Raw nft on the same text our full sync produces.
    let services: Vec<Arc<Service>> = feed.view.services();
    let mut applied = Applied::new(plan(&services, &feed.view.slices(), &node(), None));
    let text = full_script(TABLE, &base_ops(&node()), &applied);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ruleset.nft");
    std::fs::write(&path, &text)?;
    let mut raw = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let out = Command::new(&config.nft[0]).args(&config.nft[1..]).arg("-f").arg(&path).output()?;
        raw.push(started.elapsed());
        if !out.status.success() {
            bail!("nft -f failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    // (b) Our full sync, from a fresh state each time (as after an agent restart).
    let all = Changes { all: true, keys: BTreeSet::new() };
    let mut full = Vec::new();
    let mut syncer = Syncer::new(nft.clone(), config.clone());
    for _ in 0..runs {
        syncer = Syncer::new(nft.clone(), config.clone());
        let started = Instant::now();
        syncer.sync(&feed.view, &all).await?;
        full.push(started.elapsed());
    }

    // (c) One endpoint of one Service replaced, synced incrementally.
    let mut incremental = Vec::new();
    let mut last_ip = String::new();
    for r in 0..runs + 2 {
        let i = (r * 7919) % n;
        feed.slices.apply_watcher_event(&Event::Apply(synth_slice(i, Some(r))));
        let key = ServiceKey::new(format!("ns-{}", i % 50), format!("svc-{i}"));
        let changes = Changes { all: false, keys: [key].into() };
        let started = Instant::now();
        let report = syncer.sync(&feed.view, &changes).await?;
        incremental.push(started.elapsed());
        if report.full || report.bytes == 0 {
            bail!("the endpoint change was not applied incrementally: {report:?}");
        }
        last_ip = ip(0x0af0_0000, r);
    }
    // Baseline for (c): raw `nft -f` of the same kind of delta for a Service the loop
    // above did not touch (rendered ahead from the initial state), so our overhead over
    // nft itself shows.
    let mut raw_one = Vec::new();
    for r in 0..runs {
        let i = (r * 7919 + 13) % n;
        let key = ServiceKey::new(format!("ns-{}", i % 50), format!("svc-{i}"));
        let svc = feed.view.service(&key).context("a synthetic Service")?;
        let slice = synth_slice(i, Some(1000 + r));
        let rules = plan_service(&key, &svc, &[&slice], &node(), None);
        let ops = applied.update(&key, Some(rules));
        if ops.is_empty() {
            bail!("no delta for {key:?}");
        }
        std::fs::write(&path, render(TABLE, &ops))?;
        let started = Instant::now();
        let out = Command::new(&config.nft[0]).args(&config.nft[1..]).arg("-f").arg(&path).output()?;
        raw_one.push(started.elapsed());
        if !out.status.success() {
            bail!("nft -f failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    // The last change really is in the kernel's table.
    let listing = Command::new(&config.nft[0]).args(&config.nft[1..]).args(["list", "table", "ip", TABLE]).output()?;
    if !String::from_utf8_lossy(&listing.stdout).contains(&format!(": {last_ip} . 8080")) {
        bail!("the incremental change to {last_ip} is not in the table");
    }
    let _ = rkube_network::proxy::remove_table(&config.nft, TABLE).await?;

    let med =
        |v: &[Duration]| Duration::from_secs_f64(median(&v.iter().map(Duration::as_secs_f64).collect::<Vec<_>>()));
    let (raw, full, inc, raw_one) = (med(&raw), med(&full), med(&incremental), med(&raw_one));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let label = format!("{n} svc × {ENDPOINTS} ep");
    let inc_target = Duration::from_millis(50);
    let mut inc_row = Row::info(format!("incremental 1-endpoint change, {label}"), fmt_ms(inc)).baseline(
        format!("{} raw", fmt_ms(raw_one)),
        ms(inc),
        ms(raw_one),
    );
    if largest {
        inc_row = inc_row.target("< 50 ms", inc < inc_target);
    }
    Ok(vec![
        Row::info(format!("raw nft -f full ruleset, {label}"), fmt_ms(raw)),
        Row::info(format!("raw nft -f one-endpoint delta, {label}"), fmt_ms(raw_one)),
        Row::info(format!("ruleset size, {label}"), format!("{:.1} MiB", text.len() as f64 / (1024.0 * 1024.0))),
        Row::info(format!("full sync (plan + apply), {label}"), fmt_ms(full))
            .target("≤ 2 × raw nft", full <= raw * 2)
            .baseline(fmt_ms(raw), ms(full), ms(raw)),
        inc_row,
    ])
}
