//! `cargo xtask bench-scheduler`: scheduler throughput end to end through the API, with
//! the decision function alone as the baseline, in one run.
//!
//! Phases, in order:
//! 1. the baseline, before the server starts: rkube-scheduler's decision in process on
//!    the same nodes and pods ([`crate::decision`]);
//! 2. `rkube server` on a fresh data dir (cluster CIDR wide enough for a /24 per node);
//!    simulated nodes registered concurrently (the Node with its Ready status, as a
//!    kubelet registers, and its Lease in `kube-node-lease`), then until node IPAM has
//!    given each its pod range; from here on a background task renews every Lease older
//!    than 20 s, as kubelets do, so no node outlives the 40 s grace period (a sweep renews
//!    them all before each phase, so a phase shorter than 20 s sees no renewals);
//! 3. basic pods created as fast as `clients` concurrent clients go, timed from the first
//!    create until a watch (`spec.nodeName!=`) has seen every one of them bound;
//! 4. the same with required pod anti-affinity on the hostname against the pod's own
//!    group (`group=g<i % groups>`), on top of the basic pods;
//! 5. Deployments of `replicas` pods, one after another: create → ReplicaSet seen → all
//!    pods created → `status.replicas` → all pods bound.
//!
//! Every phase has a deadline; one that passes is reported with the progress made. The
//! server's CPU time comes from `/proc/<pid>/stat`, its writes from the store revision
//! (the list `resourceVersion`) before and after.

use std::collections::HashSet;
use std::fmt::Debug;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PartialObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::decision::{self, Decisions};
use crate::server::{self, CpuMark, CpuUse, Memory, ServerGuard};
use crate::sim::{self, Heartbeats, NAMESPACE, PodKind};
use crate::stats::{Row, fmt_ms, mib, print_table, quantile, thousands};

/// Command-line options of `bench-scheduler`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options {
    /// Small counts: a smoke test.
    pub quick: bool,
    /// Use the release binary already built instead of running `cargo build`.
    pub no_build: bool,
}

#[derive(Debug, Clone, Copy)]
struct Sizes {
    nodes: usize,
    /// Pods of each of the two pod phases.
    pods: usize,
    /// Anti-affinity groups: `pods / groups` pods per group must land on distinct nodes.
    groups: usize,
    /// Concurrent clients creating nodes and pods.
    clients: usize,
    replicas: i32,
    deployments: usize,
    /// Repetitions of the decision baseline (median).
    decision_rounds: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                nodes: 200,
                pods: 1_000,
                groups: 200,
                clients: 16,
                replicas: 20,
                deployments: 1,
                decision_rounds: 1,
            }
        } else {
            Sizes {
                nodes: 5_000,
                pods: 10_000,
                groups: 2_000,
                clients: 16,
                replicas: 100,
                deployments: 3,
                decision_rounds: 3,
            }
        }
    }
}

/// Issue 3's target for basic pods, end to end.
const E2E_TARGET: f64 = 3_000.0;
/// A /24 per node: 16,384 of them, clear of the default service range 10.96.0.0/12.
const CLUSTER_CIDR: &str = "10.0.0.0/10";
const REGISTER_TIMEOUT: Duration = Duration::from_secs(120);
const IPAM_TIMEOUT: Duration = Duration::from_secs(60);
const POD_PHASE_TIMEOUT: Duration = Duration::from_secs(120);
const DEPLOYMENT_TIMEOUT: Duration = Duration::from_secs(45);
/// Quiet time before a phase (after the Lease sweep) and before counting its writes
/// (the `Scheduled` events are recorded after each binding).
const SETTLE: Duration = Duration::from_secs(2);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How often a watch that ended or failed is reopened from its last resourceVersion.
const WATCH_REOPENS: usize = 5;

pub fn run(options: Options) -> Result<()> {
    let sizes = Sizes::new(options.quick);
    let exe = if options.no_build { server::locate_rkube()? } else { server::build_rkube()? };
    let load = server::load_average();
    eprintln!(
        "decision baseline: schedule() in process, {} nodes, {} basic + {} anti-affinity pods, {} round(s) ...",
        sizes.nodes, sizes.pods, sizes.pods, sizes.decision_rounds
    );
    let decisions = decision::measure(sizes.nodes, sizes.pods, sizes.groups, sizes.decision_rounds)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        tokio::select! {
            result = bench(exe, sizes, options.quick, decisions, load) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })
}

/// What one watch delivered, with when it arrived here.
type Seen<K> = Result<(K, Instant)>;

/// A watch followed from a resourceVersion on, reopened where it stopped when the server
/// ends it; ADDED and MODIFIED objects only. The task stops when this is dropped.
struct Follow<K> {
    rx: mpsc::UnboundedReceiver<Seen<K>>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Drop for Follow<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn follow<K>(api: Api<K>, params: WatchParams, mut rv: String) -> Follow<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut reopens = 0;
        loop {
            let stream = match api.watch(&params, &rv).await {
                Ok(s) => s,
                Err(e) => {
                    reopens += 1;
                    if reopens > WATCH_REOPENS {
                        let _ = tx.send(Err(anyhow!("cannot open the watch: {e}")));
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                let at = Instant::now();
                match ev {
                    Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o)) => {
                        if let Some(v) = o.meta().resource_version.clone() {
                            rv = v;
                        }
                        if tx.send(Ok((o, at))).is_err() {
                            return;
                        }
                    }
                    Ok(WatchEvent::Deleted(o)) => {
                        if let Some(v) = o.meta().resource_version.clone() {
                            rv = v;
                        }
                    }
                    Ok(WatchEvent::Bookmark(b)) => rv = b.metadata.resource_version,
                    Ok(WatchEvent::Error(status)) => {
                        let _ = tx.send(Err(anyhow!("watch ERROR event: {status:?}")));
                        return;
                    }
                    Err(e) => {
                        reopens += 1;
                        if reopens > WATCH_REOPENS {
                            let _ = tx.send(Err(anyhow!("the watch failed: {e}")));
                            return;
                        }
                        break;
                    }
                }
            }
        }
    });
    Follow { rx, task }
}

/// POSTs `obj` to `url`; an error status is an error, a success is not decoded.
async fn create_undecoded<K: serde::Serialize>(client: &Client, url: &str, obj: &K) -> Result<()> {
    let body = serde_json::to_vec(obj)?;
    let request = kube::core::Request::new(url).create(&PostParams::default(), body)?;
    client.request_text(request).await?;
    Ok(())
}

/// The collection's current resourceVersion: the store's revision, so the difference
/// between two is the number of writes in between (to any object).
async fn revision<K>(api: &Api<K>) -> Result<u64>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let list = api.list(&ListParams::default().limit(1)).await.context("LIST for the resourceVersion")?;
    list.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("LIST returned no numeric resourceVersion"))
}

/// Everything the end-to-end phases share.
struct Ctx {
    pid: u32,
    clients: Vec<Client>,
    /// For watches, so their connections are not the creators'.
    watch_client: Client,
    heartbeats: Heartbeats,
}

impl Ctx {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.clients[0].clone(), NAMESPACE)
    }
}

/// Writes during a phase, from the store revision, and what we know they were.
#[derive(Debug, Clone, Copy, Default)]
struct Writes {
    total: u64,
    leases: u64,
    events: u64,
}

struct Registration {
    nodes: usize,
    registered: usize,
    /// Nodes whose status the create dropped, patched through `nodes/status`.
    status_patches: usize,
    errors: Vec<String>,
    elapsed: Duration,
    /// From the end of registration until every node had `spec.podCIDR`.
    ipam: Option<Duration>,
    with_cidr: usize,
    writes: u64,
    cpu: CpuUse,
}

struct PodRun {
    kind: PodKind,
    total: usize,
    created: usize,
    create_failures: usize,
    errors: Vec<String>,
    bound: usize,
    /// First create sent → last create answered (all answered).
    creates: Option<Duration>,
    /// First create sent → last bind seen (all bound).
    end_to_end: Option<Duration>,
    /// When the phase stopped (done or deadline).
    elapsed: Duration,
    timed_out: bool,
    watch_error: Option<String>,
    bound_at_last_create: usize,
    /// Per pod, create answered → bind seen (0 when the watch came first).
    latency: Vec<Duration>,
    cpu: CpuUse,
    writes: Writes,
}

struct DeployRun {
    created: usize,
    bound: usize,
    rs_seen: Option<Duration>,
    all_created: Option<Duration>,
    rs_status: Option<Duration>,
    all_bound: Option<Duration>,
    elapsed: Duration,
    timed_out: bool,
    writes: u64,
    cpu: CpuUse,
}

struct Figures {
    startup: Duration,
    registration: Registration,
    basic: PodRun,
    anti: PodRun,
    deployments: Vec<DeployRun>,
    decisions: Decisions,
    lease_renewals: (u64, u64),
    not_ready: usize,
    tainted: usize,
    memory: Memory,
    server_cpu: Duration,
    wall: Duration,
}

async fn bench(exe: PathBuf, sizes: Sizes, quick: bool, decisions: Decisions, load: String) -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("rkube-bench-sched-").tempdir().context("cannot create a temp dir")?;
    eprintln!("starting {} (data in {}) ...", exe.display(), tmp.path().display());
    let started = Instant::now();
    let mut server = ServerGuard::start_with(&exe, tmp.path(), &["--cluster-cidr", CLUSTER_CIDR])?;
    let startup = started.elapsed();
    let figures = match measure(&mut server, sizes, decisions, startup).await {
        Ok(f) => f,
        Err(err) => {
            let tail = server.log_tail();
            return Err(err.context(format!("server log tail:\n{tail}")));
        }
    };
    server.stop();
    println!();
    println!(
        "rkube bench-scheduler{}: {} simulated nodes ({NODE_CPU} cpu, {NODE_MEMORY}, {NODE_PODS} pods each), {} pods per phase \
         ({POD_CPU}/{POD_MEMORY} requests) from {} clients, anti-affinity over {} groups, {} Deployment(s) of {}",
        if quick { " --quick" } else { "" },
        thousands(sizes.nodes as f64),
        thousands(sizes.pods as f64),
        sizes.clients,
        thousands(sizes.groups as f64),
        sizes.deployments,
        sizes.replicas,
        NODE_CPU = sim::NODE_CPU,
        NODE_MEMORY = sim::NODE_MEMORY,
        NODE_PODS = sim::NODE_PODS,
        POD_CPU = sim::POD_CPU,
        POD_MEMORY = sim::POD_MEMORY,
    );
    println!("binary: {}", exe.display());
    println!("load average (1/5/15 min) at start: {load}; the machine has {} cores", server::cores());
    println!();
    print_table(&rows(&figures, sizes));
    Ok(())
}

async fn measure(server: &mut ServerGuard, sizes: Sizes, decisions: Decisions, startup: Duration) -> Result<Figures> {
    let pid = server.pid;
    let run_started = Instant::now();
    let cpu_start = server::cpu_time(Some(pid))?;
    let config = server.kube_config().await?;
    let clients: Vec<Client> =
        (0..sizes.clients).map(|_| Client::try_from(config.clone())).collect::<Result<_, _>>()?;
    let watch_client = Client::try_from(config.clone())?;
    let namespaces: Api<Namespace> = Api::all(clients[0].clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": NAMESPACE}}))?;
    namespaces.create(&PostParams::default(), &ns).await.context("cannot create the bench namespace")?;

    eprintln!("registering {} nodes from {} clients ...", sizes.nodes, sizes.clients);
    let (registration, renewed) = register(&clients, &watch_client, pid, sizes).await?;
    server.check_alive()?;
    let names: Vec<String> = (0..sizes.nodes).map(sim::node_name).collect();
    let heartbeats = Heartbeats::start(Client::try_from(config.clone())?, names, renewed);
    let ctx = Ctx { pid, clients, watch_client, heartbeats };

    let basic = pod_phase(&ctx, PodKind::Basic, sizes.pods).await?;
    server.check_alive()?;
    let anti = pod_phase(&ctx, PodKind::AntiAffinity { groups: sizes.groups }, sizes.pods).await?;
    server.check_alive()?;
    let mut deployments = Vec::new();
    for d in 0..sizes.deployments {
        deployments.push(deployment_phase(&ctx, &format!("web-{d}"), sizes.replicas).await?);
        server.check_alive()?;
    }

    // Sanity: the heartbeats kept every node Ready and untainted.
    let nodes: Api<Node> = Api::all(ctx.clients[0].clone());
    let listed = nodes.list(&ListParams::default().labels(&format!("{}=sim", sim::NODE_LABEL))).await?;
    let not_ready = listed.items.iter().filter(|n| !sim::is_ready(n)).count();
    let tainted = listed
        .items
        .iter()
        .filter(|n| n.spec.as_ref().and_then(|s| s.taints.as_ref()).is_some_and(|t| !t.is_empty()))
        .count();
    let lease_renewals = ctx.heartbeats.renewals();
    let memory = server::memory_of(pid)?;
    let server_cpu = server::cpu_time(Some(pid))? - cpu_start;
    Ok(Figures {
        startup,
        registration,
        basic,
        anti,
        deployments,
        decisions,
        lease_renewals,
        not_ready,
        tainted,
        memory,
        server_cpu,
        wall: run_started.elapsed(),
    })
}

/// Creates every node (and patches its status if the create dropped it) and its Lease
/// from all clients, then waits for node IPAM. Returns when each Lease was written.
async fn register(
    clients: &[Client],
    watch_client: &Client,
    pid: u32,
    sizes: Sizes,
) -> Result<(Registration, Vec<Instant>)> {
    let n = sizes.nodes;
    let nodes_api: Api<Node> = Api::all(clients[0].clone());
    let rv0 = revision(&nodes_api).await?;
    let params = WatchParams::default().labels(&format!("{}=sim", sim::NODE_LABEL)).timeout(290);
    let mut watch = follow(Api::<Node>::all(watch_client.clone()), params, rv0.to_string());
    let mark = CpuMark::now(pid)?;
    let started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Result<(bool, Instant), String>)>();
    let mut tasks = JoinSet::new();
    for (c, client) in clients.iter().enumerate() {
        let (nodes, leases) = (Api::<Node>::all(client.clone()), sim::lease_api(client.clone()));
        let (tx, step) = (tx.clone(), clients.len());
        tasks.spawn(async move {
            for i in (c..n).step_by(step) {
                let result = async {
                    let now = Timestamp::now();
                    let node = sim::node(i, now);
                    let created = nodes.create(&PostParams::default(), &node).await?;
                    let patched = !sim::is_ready(&created);
                    if patched {
                        let patch = sim::node_status_patch(&node);
                        nodes.patch_status(&sim::node_name(i), &PatchParams::default(), &Patch::Merge(&patch)).await?;
                    }
                    leases.create(&PostParams::default(), &sim::lease(&sim::node_name(i), Timestamp::now())).await?;
                    Ok::<_, kube::Error>((patched, Instant::now()))
                }
                .await;
                let _ = tx.send((i, result.map_err(|e| e.to_string())));
            }
        });
    }
    drop(tx);
    let mut renewed = vec![started; n];
    let (mut registered, mut failed, mut status_patches) = (0, 0, 0);
    let mut errors = Vec::new();
    let mut cidrs: HashSet<String> = HashSet::new();
    let deadline = tokio::time::Instant::now() + REGISTER_TIMEOUT;
    let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let note_cidr = |m: Option<Seen<Node>>, cidrs: &mut HashSet<String>| -> Result<()> {
        let (node, _) = m.ok_or_else(|| anyhow!("the node watch ended"))??;
        if node.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some() {
            cidrs.insert(node.metadata.name.unwrap_or_default());
        }
        Ok(())
    };
    loop {
        if registered + failed == n {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                eprintln!("  registration: deadline of {REGISTER_TIMEOUT:?} passed");
                break;
            }
            _ = progress.tick() => eprintln!("  {registered} nodes registered, {} with a pod range", cidrs.len()),
            m = rx.recv() => match m {
                None => break,
                Some((i, Ok((patched, at)))) => {
                    registered += 1;
                    status_patches += usize::from(patched);
                    renewed[i] = at;
                }
                Some((i, Err(e))) => {
                    failed += 1;
                    if errors.len() < 3 {
                        errors.push(format!("{}: {e}", sim::node_name(i)));
                    }
                }
            },
            m = watch.rx.recv() => note_cidr(m, &mut cidrs)?,
        }
    }
    tasks.abort_all();
    let elapsed = started.elapsed();
    eprintln!("  {registered} nodes registered in {:.1} s; waiting for node IPAM ...", elapsed.as_secs_f64());
    let ipam_started = Instant::now();
    let deadline = tokio::time::Instant::now() + IPAM_TIMEOUT;
    let ipam = loop {
        if cidrs.len() >= registered {
            break Some(ipam_started.elapsed());
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break None,
            m = watch.rx.recv() => note_cidr(m, &mut cidrs)?,
        }
    };
    let cpu = mark.since(pid, n)?;
    let writes = revision(&nodes_api).await?.saturating_sub(rv0);
    Ok((
        Registration {
            nodes: n,
            registered,
            status_patches,
            errors,
            elapsed,
            ipam,
            with_cidr: cidrs.len(),
            writes,
            cpu,
        },
        renewed,
    ))
}

async fn count_events(client: &Client) -> Result<u64> {
    let api: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    Ok(api.list(&ListParams::default()).await.context("LIST of events")?.items.len() as u64)
}

/// Before a measured phase: every Lease fresh, then a quiet moment.
async fn prepare(ctx: &Ctx) {
    ctx.heartbeats.renew_all().await;
    tokio::time::sleep(SETTLE).await;
}

/// Creates `n` pods of `kind` from all clients and follows them until all are bound.
async fn pod_phase(ctx: &Ctx, kind: PodKind, n: usize) -> Result<PodRun> {
    prepare(ctx).await;
    let label = kind.prefix();
    eprintln!("{label}: {n} pods from {} clients ...", ctx.clients.len());
    let pods = ctx.pods();
    let rv0 = revision(&pods).await?;
    let events0 = count_events(&ctx.clients[0]).await?;
    let leases0 = ctx.heartbeats.renewals().0;
    let params =
        WatchParams::default().labels(&format!("{}={label}", sim::PHASE_LABEL)).fields("spec.nodeName!=").timeout(290);
    // The bench is a client on the same two cores as the server, so it spends as little
    // as it can: the watch decodes only the metadata of each bound pod (the selector
    // already says it is bound), and a create's answer is checked for success, not decoded.
    let mut watch =
        follow(Api::<PartialObjectMeta<Pod>>::namespaced(ctx.watch_client.clone(), NAMESPACE), params, rv0.to_string());
    let mark = CpuMark::now(ctx.pid)?;
    let t0 = Instant::now();
    let (tx, mut created_rx) = mpsc::unbounded_channel::<(usize, Result<Instant, String>)>();
    let mut creators = JoinSet::new();
    for (c, client) in ctx.clients.iter().enumerate() {
        let client = client.clone();
        let (tx, step) = (tx.clone(), ctx.clients.len());
        creators.spawn(async move {
            let url = format!("/api/v1/namespaces/{NAMESPACE}/pods");
            for i in (c..n).step_by(step) {
                let r = create_undecoded(&client, &url, &sim::pod(kind, i)).await;
                let _ = tx.send((i, r.map(|_| Instant::now()).map_err(|e| e.to_string())));
            }
        });
    }
    drop(tx);
    let mut created_at: Vec<Option<Instant>> = vec![None; n];
    let mut bound_at: Vec<Option<Instant>> = vec![None; n];
    let (mut created, mut failed, mut bound) = (0, 0, 0);
    let mut last_created: Option<Instant> = None;
    let mut bound_at_last_create = 0;
    let mut errors = Vec::new();
    let mut watch_error = None;
    let mut creators_done = false;
    let deadline = tokio::time::Instant::now() + POD_PHASE_TIMEOUT;
    let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let timed_out = loop {
        if creators_done && bound >= created {
            break false;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break true,
            _ = progress.tick() => eprintln!(
                "  {label}: {created} created, {bound} bound after {:.0} s", t0.elapsed().as_secs_f64()),
            m = created_rx.recv(), if !creators_done => match m {
                None => creators_done = true,
                Some((i, Ok(at))) => {
                    created_at[i] = Some(at);
                    created += 1;
                    if created + failed == n {
                        last_created = Some(at);
                        bound_at_last_create = bound;
                    }
                }
                Some((i, Err(e))) => {
                    failed += 1;
                    if errors.len() < 3 {
                        errors.push(format!("{}: {e}", sim::pod_name(kind, i)));
                    }
                }
            },
            m = watch.rx.recv() => match m {
                None => {
                    watch_error = Some("the pod watch ended".to_string());
                    break true;
                }
                Some(Err(e)) => {
                    watch_error = Some(e.to_string());
                    break true;
                }
                Some(Ok((pod, at))) => {
                    if let Some(i) = pod.metadata.name.as_deref().and_then(|name| sim::pod_index(kind, name))
                        && i < n
                        && bound_at[i].is_none()
                    {
                        bound_at[i] = Some(at);
                        bound += 1;
                    }
                }
            },
        }
    };
    let elapsed = t0.elapsed();
    creators.abort_all();
    drop(watch);
    let cpu = mark.since(ctx.pid, bound.max(1))?;
    let last_bound = bound_at.iter().flatten().max().copied();
    let all_bound = bound == n;
    let latency: Vec<Duration> = created_at
        .iter()
        .zip(&bound_at)
        .filter_map(|(c, b)| Some(b.as_ref()?.saturating_duration_since(*c.as_ref()?)))
        .collect();
    eprintln!(
        "  {label}: {created} created, {bound} bound in {:.1} s{}",
        elapsed.as_secs_f64(),
        if timed_out { " (deadline passed)" } else { "" }
    );
    tokio::time::sleep(SETTLE).await;
    let writes = Writes {
        total: revision(&pods).await?.saturating_sub(rv0),
        leases: ctx.heartbeats.renewals().0 - leases0,
        events: count_events(&ctx.clients[0]).await?.saturating_sub(events0),
    };
    Ok(PodRun {
        kind,
        total: n,
        created,
        create_failures: failed,
        errors,
        bound,
        creates: last_created.filter(|_| failed == 0).map(|t| t - t0),
        end_to_end: last_bound.filter(|_| all_bound).map(|t| t - t0),
        elapsed,
        timed_out,
        watch_error,
        bound_at_last_create,
        latency,
        cpu,
        writes,
    })
}

/// Creates one Deployment of `replicas` and times its ReplicaSet and pods.
async fn deployment_phase(ctx: &Ctx, name: &str, replicas: i32) -> Result<DeployRun> {
    prepare(ctx).await;
    eprintln!("deployment {name}: {replicas} replicas ...");
    let pods = ctx.pods();
    let rv0 = revision(&pods).await?;
    let params = WatchParams::default().labels(&format!("app={name}")).timeout(290);
    let mut pod_watch =
        follow(Api::<Pod>::namespaced(ctx.watch_client.clone(), NAMESPACE), params.clone(), rv0.to_string());
    let mut rs_watch =
        follow(Api::<ReplicaSet>::namespaced(ctx.watch_client.clone(), NAMESPACE), params, rv0.to_string());
    let deployments: Api<Deployment> = Api::namespaced(ctx.clients[0].clone(), NAMESPACE);
    let mark = CpuMark::now(ctx.pid)?;
    let t0 = Instant::now();
    deployments.create(&PostParams::default(), &sim::deployment(name, replicas)).await?;
    let want = usize::try_from(replicas).unwrap_or(0);
    let (mut seen, mut on_node) = (HashSet::new(), HashSet::new());
    let (mut rs_seen, mut all_created, mut rs_status, mut all_bound) = (None, None, None, None);
    let deadline = tokio::time::Instant::now() + DEPLOYMENT_TIMEOUT;
    let timed_out = loop {
        if all_bound.is_some() && rs_status.is_some() {
            break false;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break true,
            m = pod_watch.rx.recv() => {
                let (pod, at) = m.ok_or_else(|| anyhow!("the pod watch ended"))??;
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                if pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| !n.is_empty()) {
                    on_node.insert(pod_name.clone());
                }
                seen.insert(pod_name);
                if all_created.is_none() && seen.len() >= want {
                    all_created = Some(at - t0);
                }
                if all_bound.is_none() && on_node.len() >= want {
                    all_bound = Some(at - t0);
                }
            }
            m = rs_watch.rx.recv() => {
                let (rs, at) = m.ok_or_else(|| anyhow!("the ReplicaSet watch ended"))??;
                rs_seen.get_or_insert(at - t0);
                if rs_status.is_none() && rs.status.as_ref().is_some_and(|s| s.replicas >= replicas) {
                    rs_status = Some(at - t0);
                }
            }
        }
    };
    let elapsed = t0.elapsed();
    let cpu = mark.since(ctx.pid, want)?;
    drop((pod_watch, rs_watch));
    tokio::time::sleep(SETTLE).await;
    let writes = revision(&pods).await?.saturating_sub(rv0);
    Ok(DeployRun {
        created: seen.len(),
        bound: on_node.len(),
        rs_seen,
        all_created,
        rs_status,
        all_bound,
        elapsed,
        timed_out,
        writes,
        cpu,
    })
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn per_second(count: usize, d: Duration) -> f64 {
    count as f64 / d.as_secs_f64().max(1e-9)
}

/// Median of the present durations; `None` if any is missing.
fn median_all(ds: &[Option<Duration>]) -> Option<Duration> {
    let mut v: Vec<Duration> = ds.iter().copied().collect::<Option<_>>()?;
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn rows(f: &Figures, sizes: Sizes) -> Vec<Row> {
    let mut rows = Vec::new();
    let d = &f.decisions;
    let r = &f.registration;
    let nodes = thousands(sizes.nodes as f64);
    let mut reg = Row::info(
        format!("register {nodes} nodes (Node with status + Lease), {} clients", sizes.clients),
        format!("{} nodes/s ({})", thousands(per_second(r.registered, r.elapsed)), secs(r.elapsed)),
    );
    if r.registered < r.nodes {
        reg.value = format!("partial: {} of {} in {}; {}", r.registered, r.nodes, secs(r.elapsed), r.errors.join("; "));
        reg = reg.target("all registered", false);
    }
    rows.push(reg);
    rows.push(Row::info(
        "  node status patches needed (create dropped the status)",
        thousands(r.status_patches as f64),
    ));
    rows.push(Row::info(
        format!("  node IPAM: then until all {nodes} have spec.podCIDR"),
        match r.ipam {
            Some(t) => secs(t),
            None => format!("partial: {} of {} after {}", r.with_cidr, r.registered, secs(IPAM_TIMEOUT)),
        },
    ));
    rows.push(Row::info(
        "  registration writes (store revisions) / server CPU",
        format!(
            "{} ({:.1} per node) / {:.1} s",
            thousands(r.writes as f64),
            r.writes as f64 / r.nodes.max(1) as f64,
            r.cpu.server.as_secs_f64()
        ),
    ));
    for (run, base, full, evaluated) in
        [(&f.basic, d.basic, d.basic_full, d.evaluated_basic), (&f.anti, d.anti, d.anti_full, d.evaluated_anti)]
    {
        let label = match run.kind {
            PodKind::Basic => "basic pods".to_string(),
            PodKind::AntiAffinity { groups } => format!("anti-affinity pods ({} groups)", thousands(groups as f64)),
        };
        let n = thousands(run.total as f64);
        let rate = run.end_to_end.map_or(f64::NAN, |t| per_second(run.total, t));
        let mut e2e = Row::info(
            format!("{label}: end to end, first create → all {n} bound"),
            match run.end_to_end {
                Some(t) => format!("{} pods/s ({})", thousands(rate), secs(t)),
                None => format!(
                    "partial: {} of {n} bound, {} created in {}{}{}",
                    thousands(run.bound as f64),
                    thousands(run.created as f64),
                    secs(run.elapsed),
                    if run.timed_out { " (deadline)" } else { "" },
                    run.watch_error.as_deref().map(|e| format!("; {e}")).unwrap_or_default()
                ),
            },
        )
        .baseline(format!("schedule() alone {} pods/s", thousands(base.per_second)), rate, base.per_second);
        if matches!(run.kind, PodKind::Basic) {
            e2e = e2e.target("≥ 3,000 pods/s", rate >= E2E_TARGET);
        }
        rows.push(e2e);
        rows.push(
            Row::info(
                "  vs the scheduler's whole in-process work per pod",
                if rate.is_finite() { format!("{} pods/s", thousands(rate)) } else { "n/a".into() },
            )
            .baseline(
                format!("decode+decide+confirm {} pods/s", thousands(full.per_second)),
                rate,
                full.per_second,
            ),
        );
        let mut creates = Row::info(
            format!("  creates alone, {} clients: first create → last answered", sizes.clients),
            match run.creates {
                Some(t) => format!("{} pods/s ({})", thousands(per_second(run.total, t)), secs(t)),
                None => format!(
                    "partial: {} of {n} answered, {} failed{}",
                    thousands(run.created as f64),
                    run.create_failures,
                    if run.errors.is_empty() { String::new() } else { format!(": {}", run.errors.join("; ")) }
                ),
            },
        );
        if run.create_failures > 0 {
            creates = creates.target("no failures", false);
        }
        rows.push(creates);
        rows.push(Row::info(
            "  last create answered → last bind seen",
            match (run.creates, run.end_to_end) {
                (Some(c), Some(e)) => fmt_ms(e.saturating_sub(c)),
                _ => "n/a".into(),
            },
        ));
        rows.push(Row::info(
            "  bound when the last create was answered",
            format!("{} of {n}", thousands(run.bound_at_last_create as f64)),
        ));
        rows.push(Row::info(
            "  create answered → bind seen: p50 / p99 / max",
            format!(
                "{} / {} / {}",
                fmt_ms(quantile(&run.latency, 0.5)),
                fmt_ms(quantile(&run.latency, 0.99)),
                fmt_ms(quantile(&run.latency, 1.0))
            ),
        ));
        let window = run.end_to_end.unwrap_or(run.elapsed);
        rows.push(Row::info(
            "  server CPU in the window (share of all cores) / per pod",
            format!(
                "{:.1} s ({:.0} %) / {:.0} µs",
                run.cpu.server.as_secs_f64(),
                100.0 * run.cpu.server.as_secs_f64() / (window.as_secs_f64() * server::cores().max(1) as f64),
                run.cpu.server.as_secs_f64() * 1e6 / run.bound.max(1) as f64
            ),
        ));
        rows.push(Row::info(
            "  client CPU in the window (creates, watch decode) / per pod",
            format!(
                "{:.1} s / {:.0} µs",
                run.cpu.client.as_secs_f64(),
                run.cpu.client.as_secs_f64() * 1e6 / run.bound.max(1) as f64
            ),
        ));
        let w = &run.writes;
        let known = run.created as u64 + run.bound as u64 + w.events + w.leases;
        rows.push(Row::info(
            "  store writes (+2 s settle): per pod; creates, bindings, events, Leases, other",
            format!(
                "{} ({:.2}/pod): {}, {}, {}, {}, {}",
                thousands(w.total as f64),
                w.total as f64 / run.bound.max(1) as f64,
                thousands(run.created as f64),
                thousands(run.bound as f64),
                thousands(w.events as f64),
                thousands(w.leases as f64),
                thousands(w.total.saturating_sub(known) as f64)
            ),
        ));
        rows.push(Row::info(
            "  write rate in the window (all writes)",
            format!("{} /s", thousands(w.total as f64 / window.as_secs_f64().max(1e-9))),
        ));
        rows.push(Row::info(
            format!("  baseline: schedule() alone on {nodes} nodes"),
            format!(
                "{} pods/s ({:.1} µs/pod, {:.0} nodes filtered/pod)",
                thousands(base.per_second),
                base.per_pod.as_secs_f64() * 1e6,
                evaluated
            ),
        ));
        rows.push(Row::info(
            "  baseline: + decode 2 watch events, PodInfo ×2, confirm",
            format!("{} pods/s ({:.1} µs/pod)", thousands(full.per_second), full.per_pod.as_secs_f64() * 1e6),
        ));
    }
    let ds = &f.deployments;
    let reps = sizes.replicas;
    let of = |pick: fn(&DeployRun) -> Option<Duration>| -> String {
        match median_all(&ds.iter().map(pick).collect::<Vec<_>>()) {
            Some(t) => fmt_ms(t),
            None => {
                let worst = ds.iter().find(|d| pick(d).is_none());
                worst.map_or("n/a".into(), |d| {
                    format!(
                        "partial: {} created, {} bound in {}{}",
                        d.created,
                        d.bound,
                        secs(d.elapsed),
                        if d.timed_out { " (deadline)" } else { "" }
                    )
                })
            }
        }
    };
    rows.push(Row::info(
        format!("Deployment of {reps} ({} in a row, median): create → ReplicaSet seen", ds.len()),
        of(|d| d.rs_seen),
    ));
    rows.push(Row::info(format!("  → all {reps} pods created (seen)"), of(|d| d.all_created)));
    rows.push(Row::info(format!("  → ReplicaSet status.replicas = {reps}"), of(|d| d.rs_status)));
    rows.push(Row::info(format!("  → all {reps} pods bound"), of(|d| d.all_bound)));
    if let Some(last) = ds.last() {
        rows.push(Row::info(
            "  writes (+2 s settle) / server CPU, last Deployment",
            format!("{} / {:.2} s", thousands(last.writes as f64), last.cpu.server.as_secs_f64()),
        ));
    }
    rows.push(
        Row::info(
            "simulated nodes not Ready / tainted at the end",
            format!("{} / {} of {nodes}", f.not_ready, f.tainted),
        )
        .target("0 / 0", f.not_ready == 0 && f.tainted == 0),
    );
    rows.push(Row::info(
        "Lease renewals over the run (failed)",
        format!("{} ({})", thousands(f.lease_renewals.0 as f64), f.lease_renewals.1),
    ));
    rows.push(Row::info(
        "server RSS at the end",
        format!("{:.1} MiB (anon {:.1})", mib(f.memory.rss), mib(f.memory.anon)),
    ));
    rows.push(Row::info(
        "server CPU over the whole run / wall time",
        format!("{:.1} s / {:.1} s", f.server_cpu.as_secs_f64(), f.wall.as_secs_f64()),
    ));
    rows.push(Row::info("server start-up (spawn to kubeconfig written)", fmt_ms(f.startup)));
    rows
}
