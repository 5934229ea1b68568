//! `cargo xtask bench-api`: the API server against raw SQLite, measured in one run.
//!
//! Phases, in order, against one `rkube server` on a fresh data dir:
//! 1. idle RSS after start-up (bootstrap objects only);
//! 2. creates of ~1 KiB ConfigMaps from 16 concurrent clients, in a few rounds that
//!    together make the LIST size (10,000): throughput and latency per round;
//! 3. the raw rusqlite baselines (while the server sits idle, so that they run under
//!    about the same machine load as the creates), with values of the mean size the
//!    server stored, in a sibling directory of the server's data dir (same filesystem);
//! 4. sequential GETs of one object;
//! 5. full LISTs (no limit) of all of them;
//! 6. one write fanned out to many concurrent watch streams, a few times.
//!
//! Each figure is the median over the rounds; the server's
//! and this client's CPU time per operation come from `/proc/<pid>/stat`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use futures::StreamExt;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, ObjectList, PostParams, WatchEvent, WatchParams};
use kube::{Client, Config};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::raw;
use crate::server::{self, CpuMark, CpuUse, Memory, ServerGuard};
use crate::stats::{Row, fmt_ms, median, mib, ms, print_table, quantile, thousands};

/// Command-line options of `bench-api`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options {
    /// Small counts: a smoke test.
    pub quick: bool,
    /// Use the release binary already built instead of running `cargo build`.
    pub no_build: bool,
}

/// How much work each phase does.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// ConfigMaps created in `default`, over all create rounds; also the LIST size.
    objects: usize,
    /// Repetitions of every measurement; figures are medians over them.
    rounds: usize,
    clients: usize,
    gets_per_round: usize,
    lists: usize,
    watchers: usize,
    raw_single_inserts: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                objects: 600,
                rounds: 3,
                clients: 16,
                gets_per_round: 200,
                lists: 3,
                watchers: 100,
                raw_single_inserts: 100,
            }
        } else {
            Sizes {
                objects: 10_000,
                rounds: 3,
                clients: 16,
                gets_per_round: 1_000,
                lists: 5,
                watchers: 1_000,
                raw_single_inserts: 500,
            }
        }
    }
}

/// ConfigMap data: this many keys of `DATA_VALUE_LEN` bytes (1 KiB in all).
const DATA_KEYS: usize = 4;
const DATA_VALUE_LEN: usize = 256;
/// Creates per client before measuring (in another namespace), to open connections.
const WARMUP_PER_CLIENT: usize = 4;
/// How long all watchers get to receive one change before the round fails.
const WATCH_DEADLINE: Duration = Duration::from_secs(30);
/// Watch requests in flight at once while the streams are being opened.
const WATCH_OPEN_CONCURRENCY: usize = 32;
/// Upper bound on any one phase, so a stuck server cannot hang the benchmark.
const PHASE_TIMEOUT: Duration = Duration::from_secs(180);
const NAMESPACE: &str = "default";
const WARMUP_NAMESPACE: &str = "kube-public";
const PROBE_PREFIX: &str = "watch-probe-";

pub fn run(options: Options) -> Result<()> {
    let sizes = Sizes::new(options.quick);
    let exe = if options.no_build { server::locate_rkube()? } else { server::build_rkube()? };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        tokio::select! {
            result = bench(exe, sizes, options.quick) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })
}

/// Everything measured, for the table.
struct Figures {
    startup: Duration,
    server: ServerFigures,
}

/// What was measured while the server ran.
struct ServerFigures {
    mem_idle: Memory,
    mem_objects: Memory,
    mem_lists: Memory,
    creates: Creates,
    gets: Latencies,
    lists: Lists,
    watch: Watch,
    cpu_creates: CpuUse,
    cpu_gets: CpuUse,
    cpu_lists: CpuUse,
    /// Count and mean length of the values the server stored for the bench objects.
    stored_values: (u64, f64),
    baseline: Baseline,
}

#[derive(Default)]
struct Latencies {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Latencies {
    /// Per-quantile medians over rounds, each round's quantiles from its own samples.
    fn median_of(rounds: &[Vec<Duration>]) -> Latencies {
        let pick = |q: f64| {
            let per_round: Vec<f64> = rounds.iter().map(|r| quantile(r, q).as_secs_f64()).collect();
            Duration::from_secs_f64(median(&per_round).max(0.0))
        };
        Latencies { p50: pick(0.5), p99: pick(0.99), max: pick(1.0) }
    }
}

struct Creates {
    per_second: f64,
    latency: Latencies,
}

struct Lists {
    /// Until the response headers arrived: the server builds the whole body first.
    headers: Duration,
    received: Duration,
    decode: Duration,
    items: usize,
    bytes: usize,
}

struct Watch {
    watchers: usize,
    /// From the write's response to each delivery (0 for those that came first).
    latency: Latencies,
    /// From sending the write request to each delivery.
    from_request: Latencies,
    /// Deliveries that arrived before the write's response did (counted as 0 ms).
    before_response: usize,
    write: Duration,
    open: Duration,
    memory: Memory,
    server_fds: usize,
    cpu: CpuUse,
}

struct Baseline {
    single_per_second: f64,
    single_latency: Latencies,
    batched_per_second: f64,
    point_read: Latencies,
    range: Duration,
    range_rows: usize,
    value_len: usize,
}

async fn bench(exe: PathBuf, sizes: Sizes, quick: bool) -> Result<()> {
    let load = server::load_average();
    let open_files = server::open_files_limit();
    let needed = sizes.watchers as u64 + 256;
    if let Some(limit) = open_files {
        ensure!(
            limit >= needed,
            "the open-files limit is {limit}, the {} watch streams need about {needed}: raise it (ulimit -n) and rerun",
            sizes.watchers
        );
    }
    let tmp = tempfile::Builder::new().prefix("rkube-bench-").tempdir().context("cannot create a temp dir")?;
    let raw_dir = tmp.path().join("raw");
    std::fs::create_dir_all(&raw_dir)?;
    eprintln!("starting {} (data in {}) ...", exe.display(), tmp.path().display());
    let started = Instant::now();
    let mut server = ServerGuard::start(&exe, tmp.path())?;
    let startup = started.elapsed();
    let result = measure_server(&mut server, sizes, &raw_dir).await;
    let result = match result {
        Ok(r) => r,
        Err(err) => {
            let tail = server.log_tail();
            return Err(err.context(format!("server log tail:\n{tail}")));
        }
    };
    server.stop();
    let db = server_db(tmp.path());
    let same_device = same_device(&db, &raw_dir);
    let fs = server::filesystem_of(&raw_dir);
    let figures = Figures { startup, server: result };
    println!();
    println!(
        "rkube bench-api{}: {} ConfigMaps ({DATA_KEYS} x {DATA_VALUE_LEN} B data) from {} clients, {} rounds per figure (medians)",
        if quick { " --quick" } else { "" },
        thousands(sizes.objects as f64),
        sizes.clients,
        sizes.rounds
    );
    println!("binary: {}", exe.display());
    println!(
        "data dir and baseline dir under {} ({}; same device: {})",
        tmp.path().display(),
        fs.map_or_else(|| "filesystem unknown".to_string(), |(t, m)| format!("{t} mounted on {m}")),
        same_device.map_or("unknown", |s| if s { "yes" } else { "NO" })
    );
    println!(
        "stored value: {} live bench rows averaging {:.0} B (the raw baseline writes {} B values)",
        figures.server.stored_values.0, figures.server.stored_values.1, figures.server.baseline.value_len
    );
    println!("load average (1/5/15 min) at start: {load}; the machine has {} cores", server::cores());
    println!(
        "open-files limit: {} (need ~{needed}; not raised)",
        open_files.map_or_else(|| "unknown".to_string(), |l| l.to_string())
    );
    println!();
    print_table(&rows(&figures, sizes));
    Ok(())
}

/// The server's database file under the bench's temp dir.
fn server_db(tmp: &Path) -> PathBuf {
    tmp.join("data").join("server").join("db").join("state.db")
}

async fn measure_server(server: &mut ServerGuard, sizes: Sizes, raw_dir: &Path) -> Result<ServerFigures> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.pid;
    let mem_idle = server::memory_of(pid)?;
    let config = server.kube_config().await?;

    let clients: Vec<Client> =
        (0..sizes.clients).map(|_| Client::try_from(config.clone())).collect::<Result<_, _>>()?;
    let api: Api<ConfigMap> = Api::namespaced(clients[0].clone(), NAMESPACE);
    let existing = api.list(&ListParams::default()).await.context("first LIST failed")?.items.len();

    eprintln!("warm-up ...");
    phase("warm-up", warm_up(&clients)).await?;
    eprintln!("creates: {} ConfigMaps from {} clients ...", sizes.objects, sizes.clients);
    let mark = CpuMark::now(pid)?;
    let creates = phase("creates", creates(&clients, sizes)).await?;
    let cpu_creates = mark.since(pid, sizes.objects)?;
    server.check_alive()?;
    let mem_objects = server::memory_of(pid)?;

    // The baselines, while the server is idle, under about the creates' machine load.
    let db = server_db(raw_dir.parent().unwrap_or(raw_dir));
    let stored_values = raw::stored_value_size(&db, &format!("{}bench-", raw::PREFIX))?;
    ensure!(stored_values.0 == sizes.objects as u64, "the server stored {} bench objects", stored_values.0);
    eprintln!("raw SQLite baselines ...");
    let value_len = stored_values.1.round().max(1.0) as usize;
    let dir = raw_dir.to_path_buf();
    let baseline = tokio::task::spawn_blocking(move || baselines(&dir, sizes, value_len)).await??;

    eprintln!("GETs ...");
    let mark = CpuMark::now(pid)?;
    let gets = phase("GETs", gets(&api, sizes)).await?;
    let cpu_gets = mark.since(pid, sizes.gets_per_round * sizes.rounds)?;
    eprintln!("LISTs ...");
    let mark = CpuMark::now(pid)?;
    let lists = phase("LISTs", lists(&clients[0], sizes, existing + sizes.objects)).await?;
    let cpu_lists = mark.since(pid, sizes.lists)?;
    server.check_alive()?;
    let mem_lists = server::memory_of(pid)?;

    eprintln!("watch: {} streams ...", sizes.watchers);
    let watch = phase("watch", watch(&config, &api, sizes, pid)).await?;
    server.check_alive()?;
    Ok(ServerFigures {
        mem_idle,
        mem_objects,
        mem_lists,
        creates,
        gets,
        lists,
        watch,
        cpu_creates,
        cpu_gets,
        cpu_lists,
        stored_values,
        baseline,
    })
}

async fn phase<T>(name: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(PHASE_TIMEOUT, fut)
        .await
        .map_err(|_| anyhow!("the {name} phase took longer than {PHASE_TIMEOUT:?}"))?
        .with_context(|| format!("the {name} phase failed"))
}

fn payload() -> BTreeMap<String, String> {
    (0..DATA_KEYS)
        .map(|k| {
            let value: String = (0..DATA_VALUE_LEN).map(|i| char::from(b'a' + ((i * 7 + k * 3) % 26) as u8)).collect();
            (format!("key-{k}"), value)
        })
        .collect()
}

fn config_map(name: String, data: &BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([("app".to_string(), "rkube-bench".to_string())])),
            ..Default::default()
        },
        data: Some(data.clone()),
        ..Default::default()
    }
}

async fn warm_up(clients: &[Client]) -> Result<()> {
    let data = Arc::new(payload());
    let mut tasks = JoinSet::new();
    for (c, client) in clients.iter().enumerate() {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), WARMUP_NAMESPACE);
        let data = data.clone();
        tasks.spawn(async move {
            for i in 0..WARMUP_PER_CLIENT {
                let name = format!("warmup-{c}-{i}");
                api.create(&PostParams::default(), &config_map(name.clone(), &data)).await?;
                api.get(&name).await?;
            }
            Ok::<_, kube::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// `sizes.rounds` rounds of creates, `sizes.clients` clients each creating its share of
/// the round sequentially.
async fn creates(clients: &[Client], sizes: Sizes) -> Result<Creates> {
    let data = Arc::new(payload());
    let mut rates = Vec::new();
    let mut rounds = Vec::new();
    for round in 0..sizes.rounds {
        let count = sizes.objects / sizes.rounds + usize::from(round < sizes.objects % sizes.rounds);
        let mut tasks = JoinSet::new();
        let started = Instant::now();
        for (c, client) in clients.iter().enumerate() {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
            let data = data.clone();
            let step = clients.len();
            tasks.spawn(async move {
                let mut latencies = Vec::with_capacity(count / step + 1);
                for i in (c..count).step_by(step) {
                    let cm = config_map(format!("bench-{round}-{i:05}"), &data);
                    let t = Instant::now();
                    api.create(&PostParams::default(), &cm).await?;
                    latencies.push(t.elapsed());
                }
                Ok::<_, kube::Error>(latencies)
            });
        }
        let mut latencies = Vec::with_capacity(count);
        while let Some(done) = tasks.join_next().await {
            latencies.extend(done??);
        }
        let elapsed = started.elapsed();
        ensure!(latencies.len() == count, "round {round}: {} of {count} creates answered", latencies.len());
        rates.push(count as f64 / elapsed.as_secs_f64());
        rounds.push(latencies);
    }
    Ok(Creates { per_second: median(&rates), latency: Latencies::median_of(&rounds) })
}

async fn gets(api: &Api<ConfigMap>, sizes: Sizes) -> Result<Latencies> {
    let name = "bench-0-00000";
    let mut rounds = Vec::new();
    for _ in 0..sizes.rounds {
        let mut latencies = Vec::with_capacity(sizes.gets_per_round);
        for _ in 0..sizes.gets_per_round {
            let t = Instant::now();
            let cm = api.get(name).await?;
            latencies.push(t.elapsed());
            ensure!(cm.metadata.name.as_deref() == Some(name), "GET answered another object");
        }
        rounds.push(latencies);
    }
    Ok(Latencies::median_of(&rounds))
}

/// Full LISTs: time until the whole body has arrived, then (separately) the time kube-rs
/// types take to decode it.
async fn lists(client: &Client, sizes: Sizes, expected: usize) -> Result<Lists> {
    let mut headers = Vec::new();
    let mut received = Vec::new();
    let mut decode = Vec::new();
    let mut last = (0, 0);
    for _ in 0..sizes.lists {
        let request = http::Request::get(format!("/api/v1/namespaces/{NAMESPACE}/configmaps"))
            .header(http::header::ACCEPT, "application/json")
            .body(kube::client::Body::from(Vec::new()))?;
        let t = Instant::now();
        let response = client.send(request).await?;
        headers.push(t.elapsed().as_secs_f64());
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| anyhow!("reading the LIST body: {e}"))?.to_bytes();
        received.push(t.elapsed().as_secs_f64());
        ensure!(
            status.is_success(),
            "LIST answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        let t = Instant::now();
        let list: ObjectList<ConfigMap> = serde_json::from_slice(&body).context("cannot decode the LIST body")?;
        decode.push(t.elapsed().as_secs_f64());
        ensure!(list.items.len() == expected, "LIST returned {} items, expected {expected}", list.items.len());
        last = (list.items.len(), body.len());
    }
    Ok(Lists {
        headers: Duration::from_secs_f64(median(&headers)),
        received: Duration::from_secs_f64(median(&received)),
        decode: Duration::from_secs_f64(median(&decode)),
        items: last.0,
        bytes: last.1,
    })
}

/// Opens `sizes.watchers` watch streams on the namespace's ConfigMaps (from the current
/// resourceVersion), then `sizes.rounds` times creates one ConfigMap and times how long
/// after the create's response each stream delivers it.
async fn watch(config: &Config, api: &Api<ConfigMap>, sizes: Sizes, pid: u32) -> Result<Watch> {
    // One client for all streams: over HTTP/1.1 each stream holds its own connection.
    let watch_client = Client::try_from(config.clone())?;
    let watch_api: Api<ConfigMap> = Api::namespaced(watch_client, NAMESPACE);
    let rv = api
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .ok_or_else(|| anyhow!("LIST returned no resourceVersion"))?;
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<()>>();
    let (event_tx, mut event_rx) = mpsc::unbounded_channel::<Result<(usize, Instant)>>();
    let gate = Arc::new(Semaphore::new(WATCH_OPEN_CONCURRENCY));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for _ in 0..sizes.watchers {
        let (api, rv, gate) = (watch_api.clone(), rv.clone(), gate.clone());
        let (ready_tx, event_tx) = (ready_tx.clone(), event_tx.clone());
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await;
            let stream = match api.watch(&WatchParams::default().timeout(290), &rv).await {
                Ok(stream) => stream,
                Err(err) => {
                    let _ = ready_tx.send(Err(anyhow!("opening a watch: {err}")));
                    return;
                }
            };
            drop(permit);
            let _ = ready_tx.send(Ok(()));
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let at = Instant::now();
                match event {
                    Ok(WatchEvent::Added(cm)) | Ok(WatchEvent::Modified(cm)) => {
                        let round = cm.metadata.name.as_deref().and_then(|n| n.strip_prefix(PROBE_PREFIX));
                        if let Some(round) = round.and_then(|r| r.parse().ok()) {
                            let _ = event_tx.send(Ok((round, at)));
                        }
                    }
                    Ok(WatchEvent::Error(status)) => {
                        let _ = event_tx.send(Err(anyhow!("watch ERROR event: {status:?}")));
                        return;
                    }
                    Ok(_) => {}
                    Err(err) => {
                        let _ = event_tx.send(Err(anyhow!("watch stream failed: {err}")));
                        return;
                    }
                }
            }
            let _ = event_tx.send(Err(anyhow!("a watch stream ended early")));
        });
    }
    drop((ready_tx, event_tx));
    for _ in 0..sizes.watchers {
        ready_rx.recv().await.ok_or_else(|| anyhow!("watch tasks ended before all streams opened"))??;
    }
    let open = started.elapsed();
    eprintln!("  {} streams open after {:.0} ms", sizes.watchers, ms(open));

    let server_fds = server::open_fds(pid)?;
    let data = payload();
    let mut rounds = Vec::new();
    let mut from_request = Vec::new();
    let mut writes = Vec::new();
    let mut cpu = CpuUse { server: Duration::ZERO, client: Duration::ZERO, ops: sizes.rounds };
    let mut before_response = 0;
    for round in 0..sizes.rounds {
        // Let every stream's server side settle on its subscription.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cm = config_map(format!("{PROBE_PREFIX}{round}"), &data);
        let mark = CpuMark::now(pid)?;
        let t = Instant::now();
        api.create(&PostParams::default(), &cm).await?;
        let responded = Instant::now();
        writes.push(responded - t);
        let deadline = tokio::time::Instant::now() + WATCH_DEADLINE;
        let mut latencies = Vec::with_capacity(sizes.watchers);
        let mut since_request = Vec::with_capacity(sizes.watchers);
        while latencies.len() < sizes.watchers {
            let message = tokio::time::timeout_at(deadline, event_rx.recv()).await.map_err(|_| {
                anyhow!(
                    "round {round}: only {} of {} watchers saw the change within {WATCH_DEADLINE:?}",
                    latencies.len(),
                    sizes.watchers
                )
            })?;
            let (seen_round, at) = message.ok_or_else(|| anyhow!("all watch streams ended"))??;
            if seen_round != round {
                continue;
            }
            if at < responded {
                before_response += 1;
            }
            latencies.push(at.saturating_duration_since(responded));
            since_request.push(at.saturating_duration_since(t));
        }
        let used = mark.since(pid, 1)?;
        cpu.server += used.server;
        cpu.client += used.client;
        rounds.push(latencies);
        from_request.push(since_request);
    }
    let memory = server::memory_of(pid)?;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let writes: Vec<f64> = writes.iter().map(Duration::as_secs_f64).collect();
    Ok(Watch {
        watchers: sizes.watchers,
        latency: Latencies::median_of(&rounds),
        from_request: Latencies::median_of(&from_request),
        before_response,
        write: Duration::from_secs_f64(median(&writes)),
        open,
        memory,
        server_fds,
        cpu,
    })
}

fn baselines(dir: &Path, sizes: Sizes, value_len: usize) -> Result<Baseline> {
    let value = vec![b'v'; value_len];
    let (mut single_rates, mut single_rounds, mut batched, mut point_rounds, mut ranges) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut range_rows = 0;
    for rep in 0..sizes.rounds {
        let (rate, latencies) =
            raw::single_inserts(&dir.join(format!("single-{rep}.db")), sizes.raw_single_inserts, &value)?;
        single_rates.push(rate);
        single_rounds.push(latencies);
        let db = dir.join(format!("batched-{rep}.db"));
        batched.push(raw::batched_inserts(&db, sizes.objects, sizes.clients, &value)?);
        point_rounds.push(raw::point_reads(&db, sizes.gets_per_round)?);
        for _ in 0..sizes.lists.div_ceil(sizes.rounds) {
            let (elapsed, rows) = raw::range_read(&db)?;
            ranges.push(elapsed.as_secs_f64());
            range_rows = rows;
        }
    }
    if range_rows != sizes.objects {
        bail!("the raw range read returned {range_rows} rows, expected {}", sizes.objects);
    }
    Ok(Baseline {
        single_per_second: median(&single_rates),
        single_latency: Latencies::median_of(&single_rounds),
        batched_per_second: median(&batched),
        point_read: Latencies::median_of(&point_rounds),
        range: Duration::from_secs_f64(median(&ranges)),
        range_rows,
        value_len,
    })
}

fn same_device(a: &Path, b: &Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    Some(std::fs::metadata(a).ok()?.dev() == std::fs::metadata(b).ok()?.dev())
}

fn fmt_mem(m: &Memory) -> String {
    format!("{:.1} MiB (anon {:.1} + file {:.1})", mib(m.rss), mib(m.anon), mib(m.file))
}

fn rows(f: &Figures, sizes: Sizes) -> Vec<Row> {
    const CREATES_TARGET: f64 = 2_000.0;
    const CREATE_P99_TARGET_MS: f64 = 20.0;
    const LIST_TARGET_MS: f64 = 150.0;
    const WATCH_P99_TARGET_MS: f64 = 100.0;
    const RSS_TARGET_MIB: f64 = 50.0;
    let s = &f.server;
    let b = &s.baseline;
    let c = &s.creates;
    let l = &s.lists;
    let w = &s.watch;
    let n = thousands(sizes.objects as f64);
    let watchers = thousands(w.watchers as f64);
    vec![
        Row::info(
            format!("creates/s, {} clients, 1 KiB ConfigMaps", sizes.clients),
            format!("{} /s", thousands(c.per_second)),
        )
        .target("≥ 2,000 /s", c.per_second >= CREATES_TARGET)
        .baseline(
            format!("raw batched ({}/txn) {} rows/s", sizes.clients, thousands(b.batched_per_second)),
            c.per_second,
            b.batched_per_second,
        ),
        Row::info("creates/s vs one fsync per insert", format!("{} /s", thousands(c.per_second))).baseline(
            format!("raw single-insert {} commits/s", thousands(b.single_per_second)),
            c.per_second,
            b.single_per_second,
        ),
        Row::info("create latency p50", fmt_ms(c.latency.p50)).baseline(
            format!("raw commit p50 {}", fmt_ms(b.single_latency.p50)),
            ms(c.latency.p50),
            ms(b.single_latency.p50),
        ),
        Row::info("create latency p99", fmt_ms(c.latency.p99))
            .target("< 20 ms", ms(c.latency.p99) < CREATE_P99_TARGET_MS)
            .baseline(
                format!("raw commit p99 {}", fmt_ms(b.single_latency.p99)),
                ms(c.latency.p99),
                ms(b.single_latency.p99),
            ),
        Row::info("create latency max", fmt_ms(c.latency.max)),
        Row::info("CPU per create", s.cpu_creates.describe(false)),
        Row::info("GET latency p50 (one object, sequential)", fmt_ms(s.gets.p50)).baseline(
            format!("raw point SELECT p50 {}", fmt_ms(b.point_read.p50)),
            ms(s.gets.p50),
            ms(b.point_read.p50),
        ),
        Row::info("GET latency p99", fmt_ms(s.gets.p99)).baseline(
            format!("raw point SELECT p99 {}", fmt_ms(b.point_read.p99)),
            ms(s.gets.p99),
            ms(b.point_read.p99),
        ),
        Row::info("CPU per GET", s.cpu_gets.describe(false)),
        Row::info(format!("LIST of {} ConfigMaps, body received", thousands(l.items as f64)), fmt_ms(l.received))
            .target("< 150 ms", ms(l.received) < LIST_TARGET_MS)
            .baseline(
                format!("raw range SELECT of {} rows {}", thousands(b.range_rows as f64), fmt_ms(b.range)),
                ms(l.received),
                ms(b.range),
            ),
        Row::info("LIST: time to response headers", fmt_ms(l.headers)),
        Row::info("LIST: body decode into kube-rs types (client)", fmt_ms(l.decode)),
        Row::info("LIST: response size", format!("{:.1} MiB", mib(l.bytes as u64))),
        Row::info("CPU per LIST (incl. client decode)", s.cpu_lists.describe(true)),
        Row::info(format!("watch delivery p50, {watchers} watchers"), fmt_ms(w.latency.p50)),
        Row::info("watch delivery p99", fmt_ms(w.latency.p99))
            .target("< 100 ms", ms(w.latency.p99) < WATCH_P99_TARGET_MS),
        Row::info("watch delivery max", fmt_ms(w.latency.max)),
        Row::info(
            "watch: p50 / p99 from sending the write",
            format!("{} / {}", fmt_ms(w.from_request.p50), fmt_ms(w.from_request.p99)),
        ),
        Row::info("watch: deliveries before the write's response", thousands(w.before_response as f64)),
        Row::info("watch: the probe write's own latency", fmt_ms(w.write)),
        Row::info(format!("watch: time to open {watchers} streams"), fmt_ms(w.open)),
        Row::info("watch: server open fds with the streams", thousands(w.server_fds as f64)),
        Row::info("CPU per fan-out of one change", w.cpu.describe(true)),
        Row::info("server RSS idle (bootstrap objects only)", fmt_mem(&s.mem_idle))
            .target("< 50 MiB", mib(s.mem_idle.rss) < RSS_TARGET_MIB),
        Row::info(format!("server RSS after {n} objects"), fmt_mem(&s.mem_objects)),
        Row::info("server RSS after the LISTs", fmt_mem(&s.mem_lists)),
        Row::info(format!("server RSS with {watchers} watchers"), fmt_mem(&w.memory)),
        Row::info("server start-up (spawn to kubeconfig written)", fmt_ms(f.startup)),
        Row::info(
            format!("baseline: raw single-insert fsync commits/s ({} B)", b.value_len),
            format!("{} /s", thousands(b.single_per_second)),
        ),
        Row::info(
            format!("baseline: raw batched insert rows/s ({}/txn)", sizes.clients),
            format!("{} /s", thousands(b.batched_per_second)),
        ),
    ]
}
