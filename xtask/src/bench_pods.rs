//! `cargo xtask bench-pods`: pod start-up through rkube against raw CRI (issue 4).
//!
//! Starts `rkube server --disable-agent` and a separate `rkube agent` joined to it (so
//! the agent's own memory can be read), then on the agent's containerd:
//! 1. baseline: RunPodSandbox + CreateContainer + StartContainer straight through CRI,
//!    one pod at a time, on the same CNI network and image;
//! 2. ours: one pod at a time, created through the API and timed until a watch sees it
//!    Running (scheduler, kubelet, CRI and status write included);
//! 3. a burst of 110 pods (the node's capacity) at once: time until all are Running,
//!    and the agent's RSS (containerd excluded) with them running.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use rkube_kubelet::cri::{CriRuntime, Runtime};
use tokio::sync::Mutex;

use crate::server::{self, ServerGuard};
use crate::stats::{Row, fmt_ms, mib, print_table, quantile};

pub struct Options {
    pub quick: bool,
    pub no_build: bool,
}

const NODE: &str = "bench-node";
const NAMESPACE: &str = "default";
const IMAGE: &str = "busybox:1.28";

/// A running `rkube agent`, stopped by PID and cleaned with `rkube killall` on drop.
struct AgentGuard {
    child: Child,
    exe: PathBuf,
    data: PathBuf,
}

impl Drop for AgentGuard {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new(&self.exe).arg("killall").arg("--data-dir").arg(&self.data).output();
    }
}

pub fn run(options: Options) -> Result<()> {
    if !Path::new("/usr/bin/containerd").exists() {
        bail!("containerd is not installed: run scripts/install-deps.sh");
    }
    let exe = if options.no_build { server::locate_rkube()? } else { server::build_rkube()? };
    let tmp = tempfile::Builder::new().prefix("rkube-bench-pods-").tempdir()?;
    let server = ServerGuard::start_with(&exe, tmp.path(), &["--cluster-cidr", "10.219.0.0/16"])?;
    let token = std::fs::read_to_string(tmp.path().join("data/server/node-token")).context("node token")?;
    let url = std::fs::read_to_string(&server.kubeconfig)?
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_string))
        .ok_or_else(|| anyhow!("no server in the kubeconfig"))?;
    let data = tmp.path().join("agent-data");
    let images = data.join("agent/images");
    std::fs::create_dir_all(&images)?;
    eprintln!("building the test images ...");
    rkube_testimages::build_all(&images)?;
    let log = std::fs::File::create(tmp.path().join("agent.log"))?;
    let child = Command::new(&exe)
        .args(["agent", "--server", &url, "--token", token.trim(), "--node-name", NODE, "--kubelet-port", "0"])
        .arg("--data-dir")
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start rkube agent")?;
    let agent = AgentGuard { child, exe: exe.clone(), data: data.clone() };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        tokio::select! {
            r = bench(&server, &agent, &data, options.quick) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    if result.is_err() {
        eprintln!("agent log: {}", tmp.path().join("agent.log").display());
    }
    drop(agent);
    result
}

async fn wait_node_ready(client: &Client) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(n) = nodes.get(NODE).await
            && n.status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("node {NODE} not Ready after 90 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Baseline: sandbox + container straight through CRI, one pod at a time.
async fn raw_cri(cri: &CriRuntime, logs: &Path, n: usize) -> Result<Vec<Duration>> {
    let mut times = Vec::new();
    let mut sandboxes = Vec::new();
    for i in 0..n {
        let sandbox = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: format!("raw-{i}"),
                uid: format!("raw-uid-{i}"),
                namespace: "bench-raw".into(),
                attempt: 0,
            }),
            hostname: format!("raw-{i}"),
            log_directory: logs.join(format!("raw-{i}")).display().to_string(),
            linux: Some(cri::LinuxPodSandboxConfig::default()),
            ..Default::default()
        };
        let container = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: "c".into(), attempt: 0 }),
            image: Some(cri::ImageSpec { image: IMAGE.into(), ..Default::default() }),
            command: vec!["sleep".into(), "3600".into()],
            log_path: "c.log".into(),
            linux: Some(cri::LinuxContainerConfig::default()),
            ..Default::default()
        };
        let start = Instant::now();
        let id = cri.run_pod_sandbox(sandbox.clone()).await?;
        let cid = cri.create_container(&id, container, sandbox).await?;
        cri.start_container(&cid).await?;
        times.push(start.elapsed());
        sandboxes.push(id);
    }
    for id in sandboxes {
        let _ = cri.stop_pod_sandbox(&id).await;
        let _ = cri.remove_pod_sandbox(&id).await;
    }
    Ok(times)
}

fn pod(name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pods"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}],
        },
    }))?)
}

type Running = Arc<Mutex<HashMap<String, Instant>>>;

/// Follows the bench pods and notes when each is first seen Running.
async fn watch_running(api: Api<Pod>, running: Running) -> Result<tokio::task::JoinHandle<()>> {
    let rv = api.list(&ListParams::default().labels("bench=pods")).await?.metadata.resource_version.unwrap_or_default();
    let mut stream = api.watch(&WatchParams::default().labels("bench=pods").timeout(290), &rv).await?.boxed();
    Ok(tokio::spawn(async move {
        while let Ok(Some(ev)) = stream.try_next().await {
            if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            {
                running.lock().await.entry(p.name_any()).or_insert_with(Instant::now);
            }
        }
    }))
}

async fn wait_running(running: &Running, names: &[String], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = running.lock().await;
        if names.iter().all(|n| seen.contains_key(n)) {
            return Ok(());
        }
        let done = names.iter().filter(|n| seen.contains_key(*n)).count();
        drop(seen);
        if Instant::now() > deadline {
            bail!("only {done} of {} pods Running after {timeout:?}", names.len());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn delete_all(api: &Api<Pod>) -> Result<()> {
    let _ = api
        .delete_collection(&DeleteParams::default().grace_period(0), &ListParams::default().labels("bench=pods"))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !api.list(&ListParams::default().labels("bench=pods")).await?.items.is_empty() {
        if Instant::now() > deadline {
            bail!("bench pods not gone after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn bench(server: &ServerGuard, agent: &AgentGuard, data: &Path, quick: bool) -> Result<()> {
    let n = if quick { 10 } else { 50 };
    let burst = if quick { 30 } else { 110 };
    let client = Client::try_from(server.kube_config().await?)?;
    wait_node_ready(&client).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let cri = CriRuntime::connect(&data.join("agent/containerd/containerd.sock"))?;

    eprintln!("baseline: {n} pods straight through CRI, one at a time ...");
    let logs = data.join("bench-raw-logs");
    let raw = raw_cri(&cri, &logs, n).await?;

    eprintln!("rkube: {n} pods through the API, one at a time ...");
    let running: Running = Arc::default();
    let watch = watch_running(api.clone(), running.clone()).await?;
    let mut ours = Vec::new();
    for i in 0..n {
        let name = format!("seq-{i}");
        let start = Instant::now();
        api.create(&PostParams::default(), &pod(&name)?).await?;
        wait_running(&running, std::slice::from_ref(&name), Duration::from_secs(60)).await?;
        ours.push(running.lock().await[&name] - start);
    }
    delete_all(&api).await?;

    eprintln!("rkube: a burst of {burst} pods ...");
    let names: Vec<String> = (0..burst).map(|i| format!("burst-{i}")).collect();
    let start = Instant::now();
    let creates = futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &pod(&name)?).await.map_err(anyhow::Error::from) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>();
    creates.await?;
    wait_running(&running, &names, Duration::from_secs(300)).await?;
    let all_running = start.elapsed();
    let seen = running.lock().await.clone();
    let burst_times: Vec<Duration> = names.iter().map(|n| seen[n] - start).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let agent_rss = server::rss_of(agent.child.id())?;
    let paths = rkube_kubelet::Paths::new(data, Path::new("/usr/lib/cni"));
    let containerd_rss = std::fs::read_to_string(rkube_kubelet::killall::containerd_pid_file(&paths))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .and_then(|pid| server::rss_of(pid).ok());
    watch.abort();
    delete_all(&api).await?;

    let (raw50, raw99) = (quantile(&raw, 0.5), quantile(&raw, 0.99));
    let (our50, our99) = (quantile(&ours, 0.5), quantile(&ours, 0.99));
    let rows = vec![
        Row::info(format!("raw CRI start p50 ({n} pods, sandbox+create+start)"), fmt_ms(raw50)),
        Row::info("raw CRI start p99", fmt_ms(raw99)),
        Row::info(format!("rkube created → Running p50 ({n} pods, one at a time)"), fmt_ms(our50))
            .target("≤ 1.5 × raw", our50.as_secs_f64() <= 1.5 * raw50.as_secs_f64())
            .baseline(fmt_ms(raw50), our50.as_secs_f64(), raw50.as_secs_f64()),
        Row::info("rkube created → Running p99", fmt_ms(our99))
            .target("< 1 s", our99 < Duration::from_secs(1))
            .baseline(fmt_ms(raw99), our99.as_secs_f64(), raw99.as_secs_f64()),
        Row::info(format!("burst of {burst}: all Running"), fmt_ms(all_running))
            .target(format!("all {burst} Running"), burst_times.len() == burst),
        Row::info(format!("burst of {burst}: created → Running p50"), fmt_ms(quantile(&burst_times, 0.5))),
        Row::info(format!("burst of {burst}: created → Running p99"), fmt_ms(quantile(&burst_times, 0.99))),
        Row::info(format!("agent RSS with {burst} pods"), format!("{:.1} MiB", mib(agent_rss)))
            .target("< 60 MiB", mib(agent_rss) < 60.0),
        Row::info(
            "containerd RSS (not counted)",
            containerd_rss.map(|r| format!("{:.1} MiB", mib(r))).unwrap_or_else(|| "n/a".into()),
        ),
        Row::info("load average", server::load_average()),
    ];
    print_table(&rows);
    Ok(())
}
