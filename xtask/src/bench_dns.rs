//! `cargo xtask bench-dns`: the cluster DNS server (rkube-network's `dns`) under load.
//!
//! 1. Feeds a hand-made [`ServiceView`] 10,000 synthetic Services (1,000 with `--quick`):
//!    90 % ClusterIP, 10 % headless with three endpoints, in 100 namespaces; times the
//!    full index build and a one-Service patch.
//! 2. Starts the server (a 2-worker tokio runtime) and a load generator on its own thread
//!    (a current-thread runtime, several UDP sockets): service-name A questions, 90 %
//!    existing names and 10 % NXDOMAIN, first saturating (a fixed number in flight, each
//!    answer replaced by a new question), then paced at the 20,000/s target regardless of
//!    answers (latency at that load, not queueing at saturation). Reports answers/s and
//!    the p50/p99 of question → answer, lost and wrong answers.
//! 3. Baseline: a trivial UDP responder (it flips the QR bit and sends the packet back)
//!    on the same runtime and socket setup, driven by the same generator: the floor of
//!    the network stack and runtime on this machine.
//! 4. Both again from a network namespace joined to the host by a veth pair (as a pod
//!    asks), running the generator as a child process (`ip netns exec`); skipped with a
//!    note if namespaces cannot be made. Everything it creates is removed on exit.
//!
//! Every figure is the median of a few runs (the machine is shared and noisy).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use rkube_network::dns::{self, Config, Index};
use rkube_network::services::{Changes, ServiceKey, ServiceView};
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::stats::{Row, fmt_ms, median, print_table, quantile, thousands};

pub struct Options {
    pub quick: bool,
}

const DOMAIN: &str = "cluster.local";
const NAMESPACES: usize = 100;
/// Sockets of the load generator and questions in flight on each.
const SOCKETS: usize = 4;
const WINDOW: usize = 8;
/// A question unanswered for this long counts as lost (UDP drops under overload).
const LOST_AFTER: Duration = Duration::from_secs(1);
/// The paced (open-loop) rate: the target throughput, offered whatever the answers do,
/// so latency is measured at that load rather than at saturation, where it is mostly
/// queueing behind the questions in flight.
const PACED: f64 = 20_000.0;

/// What one load run measured.
#[derive(Debug, Default)]
struct Load {
    answered: u64,
    lost: u64,
    wrong: u64,
    /// Paced questions the generator did not send because it had stalled.
    skipped: u64,
    secs: f64,
    latencies: Vec<Duration>,
}

impl Load {
    fn qps(&self) -> f64 {
        self.answered as f64 / self.secs
    }
    fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.answered,
            self.lost,
            self.wrong,
            self.secs,
            quantile(&self.latencies, 0.5).as_nanos(),
            quantile(&self.latencies, 0.99).as_nanos()
        )
    }
}

/// Medians over runs.
struct Figures {
    qps: f64,
    p50: Duration,
    p99: Duration,
    lost: u64,
    wrong: u64,
}

fn figures(runs: &[Summary]) -> Figures {
    let qps = median(&runs.iter().map(|r| r.0).collect::<Vec<_>>());
    let p50 = Duration::from_secs_f64(median(&runs.iter().map(|r| r.1.as_secs_f64()).collect::<Vec<_>>()));
    let p99 = Duration::from_secs_f64(median(&runs.iter().map(|r| r.2.as_secs_f64()).collect::<Vec<_>>()));
    Figures { qps, p50, p99, lost: runs.iter().map(|r| r.3).sum(), wrong: runs.iter().map(|r| r.4).sum() }
}

pub fn run(options: Options) -> Result<()> {
    let services = if options.quick { 1_000 } else { 10_000 };
    let (runs, secs) = if options.quick { (3, 1.0) } else { (5, 3.0) };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let view = synthetic_view(services);

    // Index build and patch, in process.
    let build_times: Vec<f64> = (0..3)
        .map(|_| {
            let started = std::time::Instant::now();
            let index = Index::build(DOMAIN, &view.services(), &view.slices());
            assert_eq!(index.services.len(), services);
            started.elapsed().as_secs_f64()
        })
        .collect();
    let built = Index::build(DOMAIN, &view.services(), &view.slices());
    let one = Changes { all: false, keys: [ServiceKey::new("ns-7", "svc-7")].into() };
    let patch_times: Vec<f64> = (0..5)
        .map(|_| {
            let started = std::time::Instant::now();
            let next = dns::update(&view, DOMAIN, &built, &one);
            assert_eq!(next.services.len(), services);
            started.elapsed().as_secs_f64()
        })
        .collect();
    let build = Duration::from_secs_f64(median(&build_times));
    let patch = Duration::from_secs_f64(median(&patch_times));
    eprintln!("index: build {build:?}, patch {patch:?} at {services} Services");

    let questions = Arc::new(questions(services));
    let (stop_tx, stop) = watch::channel(false);
    let (server, echo) = runtime.block_on(async {
        let config = Config { listen: "0.0.0.0:0".parse()?, domain: DOMAIN.into(), upstreams: vec![] };
        let (server, _task) = dns::start(view.clone(), config, stop).await?;
        // Wait for the first index.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.index().ready {
            if Instant::now() > deadline {
                bail!("the dns index was not built in 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let echo = start_echo().await?;
        check_answers(server.addr.port()).await?;
        anyhow::Ok((server, echo))
    })?;
    let dns_port = server.addr.port();

    // Each round: saturating (closed loop), then paced at the target rate (open loop),
    // each against our server and the echo baseline, in turn so noise hits both alike.
    let modes = [(None, "saturated"), (Some(PACED), "at 20,000 q/s")];
    let measure = |place: &str, probe: &dyn Fn(u16, Option<f64>) -> Result<Summary>| -> Result<Vec<Place>> {
        eprintln!("{place}: {runs} rounds of {secs} s per measurement");
        let mut got: Vec<(Vec<Summary>, Vec<Summary>)> = modes.iter().map(|_| (Vec::new(), Vec::new())).collect();
        for i in 0..runs {
            for (m, (rate, mode)) in modes.iter().enumerate() {
                for (port, what) in [(dns_port, "dns "), (echo.port(), "echo")] {
                    let r = probe(port, *rate)?;
                    eprintln!("  round {i} {mode:<13} {what} {:>8} q/s  p50 {:?}  p99 {:?}", thousands(r.0), r.1, r.2);
                    if port == dns_port { got[m].0.push(r) } else { got[m].1.push(r) }
                }
            }
        }
        Ok(modes
            .iter()
            .zip(got)
            .map(|((rate, mode), (ours, base))| Place {
                name: format!("{place}, {mode}"),
                paced: rate.is_some(),
                ours: figures(&ours),
                base: figures(&base),
            })
            .collect())
    };
    let loopback = |port: u16, rate: Option<f64>| -> Result<Summary> {
        let target = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        let r = load_on_thread(target, questions.clone(), secs, rate)?;
        if r.skipped > 0 {
            eprintln!("  (the generator stalled: {} paced questions not sent)", r.skipped);
        }
        Ok(summary(&r))
    };
    let mut places = measure("loopback", &loopback)?;
    match Netns::create() {
        Ok(ns) => {
            let probe = |port: u16, rate: Option<f64>| ns.load(SocketAddr::new(Netns::HOST.into(), port), secs, rate);
            match measure(&format!("pod netns {} (veth)", ns.name), &probe) {
                Ok(more) => places.extend(more),
                Err(e) => eprintln!("network namespace runs failed: {e:#}"),
            }
        }
        Err(e) => eprintln!("no network namespace run: {e:#}"),
    }
    let _ = stop_tx.send(true);
    drop(runtime);

    let mut rows = vec![
        Row::info(format!("index build, {} Services", thousands(services as f64)), fmt_ms(build)),
        Row::info("index patch, one Service changed", fmt_ms(patch)),
    ];
    for place in &places {
        let (ours, base, name) = (&place.ours, &place.base, place.name.replace("pod netns rkube-bench-dns-", "netns "));
        let name = name.split(" (veth)").collect::<Vec<_>>().join(" (veth)");
        let qps = Row::info(format!("{name}: answers/s"), thousands(ours.qps));
        rows.push(if place.paced { qps } else { qps.target("≥ 20,000", ours.qps >= 20_000.0) }.baseline(
            format!("{} (echo)", thousands(base.qps)),
            ours.qps,
            base.qps,
        ));
        rows.push(Row::info(format!("{name}: latency p50"), fmt_ms(ours.p50)).baseline(
            fmt_ms(base.p50),
            ours.p50.as_secs_f64(),
            base.p50.as_secs_f64(),
        ));
        let p99 = Row::info(format!("{name}: latency p99"), fmt_ms(ours.p99));
        rows.push(if place.paced { p99.target("< 5 ms", ours.p99 < Duration::from_millis(5)) } else { p99 }.baseline(
            fmt_ms(base.p99),
            ours.p99.as_secs_f64(),
            base.p99.as_secs_f64(),
        ));
        rows.push(
            Row::info(format!("{name}: lost / wrong answers"), format!("{} / {}", ours.lost, ours.wrong))
                .target("0 wrong", ours.wrong == 0),
        );
    }
    rows.push(Row::info("questions in flight when saturated", (SOCKETS * WINDOW).to_string()));
    rows.push(Row::info("load average", crate::server::load_average()));
    print_table(&rows);
    Ok(())
}

/// One place's figures for one mode.
struct Place {
    name: String,
    paced: bool,
    ours: Figures,
    base: Figures,
}

/// One run: answers/s, p50, p99, lost, wrong.
type Summary = (f64, Duration, Duration, u64, u64);

fn summary(r: &Load) -> Summary {
    (r.qps(), quantile(&r.latencies, 0.5), quantile(&r.latencies, 0.99), r.lost, r.wrong)
}

/// The synthetic cluster: `n` Services in [`NAMESPACES`] namespaces, every tenth
/// headless with three endpoints.
fn synthetic_view(n: usize) -> ServiceView {
    let (services, mut svc_writer) = reflector::store::<Service>();
    let (slices, mut slice_writer) = reflector::store::<EndpointSlice>();
    svc_writer.apply_watcher_event(&Event::Init);
    slice_writer.apply_watcher_event(&Event::Init);
    for i in 0..n {
        let (name, ns) = (format!("svc-{i}"), format!("ns-{}", i % NAMESPACES));
        let ports = json!([{"name": "http", "port": 80, "protocol": "TCP"}]);
        let spec = if i % 10 == 9 {
            json!({"clusterIP": "None", "clusterIPs": ["None"], "ports": ports})
        } else {
            let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
            json!({"clusterIP": ip, "clusterIPs": [ip], "ports": ports})
        };
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
            .expect("synthetic service");
        svc_writer.apply_watcher_event(&Event::InitApply(svc));
        if i % 10 == 9 {
            let endpoints: Vec<serde_json::Value> = (0..3)
                .map(|e| {
                    let a = i / 10 * 3 + e;
                    json!({"addresses": [format!("10.200.{}.{}", a / 250, a % 250 + 1)], "conditions": {"ready": true}})
                })
                .collect();
            let slice: EndpointSlice = serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-x"), "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "endpoints": endpoints,
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            }))
            .expect("synthetic slice");
            slice_writer.apply_watcher_event(&Event::InitApply(slice));
        }
    }
    svc_writer.apply_watcher_event(&Event::InitDone);
    slice_writer.apply_watcher_event(&Event::InitDone);
    ServiceView::from_stores(services, slices)
}

/// Encoded A questions (id 0; the generator sets it): ClusterIP Service names, every
/// tenth a name that does not exist.
fn questions(services: usize) -> Vec<Vec<u8>> {
    (0..4096)
        .map(|k| {
            let i = (k * 7919) % services;
            let name = if k % 10 == 0 {
                format!("missing-{k}.ns-{}.svc.{DOMAIN}", i % NAMESPACES)
            } else {
                // Skip the headless ones: this measures the service-name path.
                let i = if i % 10 == 9 { i - 1 } else { i };
                format!("svc-{i}.ns-{}.svc.{DOMAIN}", i % NAMESPACES)
            };
            question(0, &name)
        })
        .collect()
}

/// A DNS question for `name` A IN with recursion desired, encoded by hand (RFC 1035 4.1):
/// the generator needs nothing more and stays independent of the server's DNS library.
fn question(id: u16, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(&[0, 0, 1, 0, 1]);
    out
}

/// A few answers checked by content before measuring: rcode, answer count, and for a
/// single answer without EDNS its address (the last four bytes of the message).
async fn check_answers(port: u16) -> Result<()> {
    let target = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    let socket = UdpSocket::bind(client_bind(target)).await?;
    socket.connect(target).await?;
    for (name, rcode, answers, ip) in [
        ("svc-1.ns-1.svc.cluster.local", 0, 1, Some([10, 96, 0, 2])),
        ("svc-19.ns-19.svc.cluster.local", 0, 3, None),
        ("nope.ns-1.svc.cluster.local", 3, 0, None),
    ] {
        socket.send(&question(42, name)).await?;
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await.with_context(|| {
            format!("no answer to {name} from 127.0.0.1:{port} in 2 s (a NAT rule rewriting loopback traffic?)")
        })??;
        let reply = &buf[..n];
        let got = (reply[3] & 0x0f, u16::from_be_bytes([reply[6], reply[7]]));
        if n < 16 || got != (rcode, answers) {
            bail!("{name}: rcode and answer count {got:?}, expected {:?}", (rcode, answers));
        }
        if let Some(ip) = ip
            && reply[n - 4..] != ip
        {
            bail!("{name} answered {:?} instead of {ip:?}", &reply[n - 4..]);
        }
    }
    Ok(())
}

/// Where the generator binds. Over loopback it sends from 127.0.0.2 rather than
/// 127.0.0.1: the node's service proxy masquerades 127.0.0.1 → 127.0.0.1 (its hairpin
/// rule for an API server endpoint on loopback), which while its tables are loaded
/// breaks loopback answers; 127.0.0.2 is the same loopback path without that rule.
fn client_bind(target: SocketAddr) -> SocketAddr {
    let ip = if target.ip().is_loopback() { Ipv4Addr::new(127, 0, 0, 2) } else { Ipv4Addr::UNSPECIFIED };
    SocketAddr::new(IpAddr::V4(ip), 0)
}

/// The baseline responder: the same socket setup and worker count as the server, no
/// parsing; the answer is the question with QR set.
async fn start_echo() -> Result<SocketAddr> {
    let socket = Arc::new(UdpSocket::bind("0.0.0.0:0").await?);
    let addr = socket.local_addr()?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
    for _ in 0..workers {
        let socket = socket.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else { continue };
                if n >= 12 {
                    buf[2] |= 0x80;
                    let _ = socket.send_to(&buf[..n], peer).await;
                }
            }
        });
    }
    Ok(addr)
}

/// Runs the load generator on a thread of its own for `secs` seconds.
fn load_on_thread(target: SocketAddr, questions: Arc<Vec<Vec<u8>>>, secs: f64, rate: Option<f64>) -> Result<Load> {
    std::thread::spawn(move || -> Result<Load> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(load(target, questions, secs, rate))
    })
    .join()
    .map_err(|_| anyhow!("the load generator panicked"))?
}

/// The load generator: [`SOCKETS`] sockets with [`WINDOW`] questions in flight each, or
/// with `rate`, that many questions a second in all regardless of answers; a 0.3 s
/// warm-up and then `secs` seconds of measurement.
async fn load(target: SocketAddr, questions: Arc<Vec<Vec<u8>>>, secs: f64, rate: Option<f64>) -> Result<Load> {
    let start = Instant::now() + Duration::from_millis(300);
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..SOCKETS {
        tasks.spawn(drive(target, questions.clone(), s, start, end, rate.map(|r| r / SOCKETS as f64)));
    }
    let mut total = Load { secs, ..Load::default() };
    while let Some(part) = tasks.join_next().await {
        let part = part??;
        total.answered += part.answered;
        total.lost += part.lost;
        total.wrong += part.wrong;
        total.skipped += part.skipped;
        total.latencies.extend(part.latencies);
    }
    Ok(total)
}

async fn drive(
    target: SocketAddr,
    questions: Arc<Vec<Vec<u8>>>,
    seed: usize,
    start: Instant,
    end: Instant,
    rate: Option<f64>,
) -> Result<Load> {
    let socket = UdpSocket::bind(client_bind(target)).await?;
    socket.connect(target).await?;
    let mut sent: Vec<Option<(Instant, bool)>> = vec![None; 1 << 16];
    let mut next_id: u16 = (seed as u16).wrapping_mul(16_411);
    let mut k = seed * 1000;
    let mut out = Load::default();
    let mut buf = vec![0u8; 4096];
    let mut packet = Vec::with_capacity(512);
    let mut in_flight = 0usize;
    let mut sweep = tokio::time::interval(Duration::from_millis(100));
    macro_rules! send_one {
        () => {{
            loop {
                next_id = next_id.wrapping_add(1);
                if sent[usize::from(next_id)].is_none() {
                    break;
                }
            }
            k = (k + 1) % questions.len();
            packet.clear();
            packet.extend_from_slice(&questions[k]);
            packet[..2].copy_from_slice(&next_id.to_be_bytes());
            // Remember whether this one should be NXDOMAIN (every tenth question).
            sent[usize::from(next_id)] = Some((Instant::now(), k % 10 == 0));
            socket.send(&packet).await?;
            in_flight += 1;
        }};
    }
    // Paced: a 1 ms tick sends whatever is due by then, so late ticks catch up.
    let began = Instant::now();
    let mut paced_sent = 0u64;
    let mut pace = tokio::time::interval(Duration::from_millis(1));
    if rate.is_none() {
        for _ in 0..WINDOW {
            send_one!();
        }
    }
    loop {
        tokio::select! {
            now = pace.tick(), if rate.is_some() => {
                if now.into_std() < end.into_std() {
                    let per_sec = rate.unwrap_or_default();
                    let due = (began.elapsed().as_secs_f64() * per_sec) as u64;
                    // After a stall of the generator itself (a shared 2-core machine),
                    // send at most 5 ms worth at once, not the whole backlog: a burst
                    // the generator made up is not load a client would offer.
                    let burst = (per_sec / 200.0).ceil() as u64;
                    if due > paced_sent + burst {
                        out.skipped += due - paced_sent - burst;
                        paced_sent = due - burst;
                    }
                    while paced_sent < due {
                        send_one!();
                        paced_sent += 1;
                    }
                }
            }
            got = socket.recv(&mut buf) => {
                let now = Instant::now();
                let Ok(n) = got else { continue };
                if n < 12 {
                    continue;
                }
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                let Some((at, nx)) = sent[usize::from(id)].take() else { continue };
                in_flight -= 1;
                if at >= start && now < end {
                    out.answered += 1;
                    out.latencies.push(now - at);
                    // The rcode is the low nibble of byte 3; the echo baseline keeps 0.
                    let rcode = buf[3] & 0x0f;
                    if rcode != 0 && !(nx && rcode == 3) {
                        out.wrong += 1;
                    }
                }
                if now < end {
                    if rate.is_none() {
                        send_one!();
                    }
                } else if in_flight == 0 {
                    break;
                }
            }
            _ = sweep.tick() => {
                let now = Instant::now();
                if now > end + LOST_AFTER {
                    out.lost += in_flight as u64;
                    break;
                }
                let mut expired = 0;
                for slot in sent.iter_mut() {
                    if let Some((at, _)) = *slot && now - at > LOST_AFTER {
                        *slot = None;
                        expired += 1;
                    }
                }
                in_flight -= expired;
                out.lost += expired as u64;
                if now < end && rate.is_none() {
                    for _ in 0..expired {
                        send_one!();
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A network namespace joined to the host by a veth pair, removed on drop.
struct Netns {
    name: String,
    host_if: String,
}

impl Netns {
    const HOST: Ipv4Addr = Ipv4Addr::new(169, 254, 253, 1);
    const POD: &str = "169.254.253.2";

    fn create() -> Result<Netns> {
        let pid = std::process::id();
        let ns = Netns { name: format!("rkube-bench-dns-{pid}"), host_if: format!("rkbd{}", pid % 100_000) };
        let pod_if = format!("{}p", ns.host_if);
        ip(&["netns", "add", &ns.name])?;
        // From here on, drop cleans up whatever was made.
        ip(&["link", "add", &ns.host_if, "type", "veth", "peer", "name", &pod_if])?;
        ip(&["link", "set", &pod_if, "netns", &ns.name])?;
        ip(&["addr", "add", &format!("{}/30", Netns::HOST), "dev", &ns.host_if])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        ip(&["-n", &ns.name, "addr", "add", &format!("{}/30", Netns::POD), "dev", &pod_if])?;
        ip(&["-n", &ns.name, "link", "set", &pod_if, "up"])?;
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// One load run from inside the namespace: this executable as a child process.
    fn load(&self, target: SocketAddr, secs: f64, rate: Option<f64>) -> Result<Summary> {
        let exe = std::env::current_exe()?;
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(exe)
            .args(["bench-dns", "--load-client", &target.to_string(), &secs.to_string()])
            .arg(rate.unwrap_or(0.0).to_string())
            .output()
            .context("running the load generator in the namespace")?;
        if !out.status.success() {
            bail!("load generator in the namespace failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<f64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let [answered, lost, wrong, secs, p50, p99] = f[..] else { bail!("unexpected load generator output {text:?}") };
        Ok((
            answered / secs,
            Duration::from_nanos(p50 as u64),
            Duration::from_nanos(p99 as u64),
            lost as u64,
            wrong as u64,
        ))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it ours.
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("running ip")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// `bench-dns --load-client ADDR SECS RATE`: the generator alone (run inside the
/// namespace; RATE 0 saturates); prints `answered lost wrong secs p50_ns p99_ns`.
pub fn load_client(args: &[String]) -> Result<()> {
    let [addr, secs, rate] = args else { bail!("usage: bench-dns --load-client ADDR SECS RATE") };
    let rate: f64 = rate.parse().context("rate")?;
    let rate = (rate > 0.0).then_some(rate);
    let target: SocketAddr = addr.parse().context("address")?;
    let secs: f64 = secs.parse().context("seconds")?;
    // Names of the first 1,000 Services, which exist at either size.
    let questions = Arc::new(questions(1_000));
    let r = load_on_thread(target, questions, secs, rate)?;
    println!("{}", r.line());
    Ok(())
}
