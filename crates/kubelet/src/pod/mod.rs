//! The pods of this node: a watch of the pods bound here, one worker per pod (upstream's
//! pod workers), each syncing level-triggered on every change and every second:
//! observe the runtime, [`plan::plan`] the next actions, carry them out through
//! [`crate::cri::Runtime`], then post [`status::pod_status`] when it changed.
//! Containers found in the runtime for pods that no longer exist are removed.
//! Before containers start, the pod's [`volume`]s are set up (and kept up to date);
//! running containers are watched by [`probe`] tasks whose results the next sync reads.

pub mod plan;
pub mod probe;
pub mod spec;
pub mod status;
pub mod volume;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_cri::v1 as cri;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{Notify, mpsc, watch};
use tracing::Instrument;

use crate::Config;
use crate::cri::Runtime;
use plan::{Action, BackOff, CState, ContainerObs, Observed, SandboxObs, Waiting};
use probe::ProbeKind;

/// How often the files of configMap, secret, downwardAPI and projected volumes are
/// brought up to date with their sources while the pod runs (upstream: its sync period).
const VOLUME_REFRESH: Duration = Duration::from_secs(3);
/// What every worker shares.
struct Shared {
    client: Client,
    config: Config,
    runtime: Arc<dyn Runtime>,
    pods: Store<Pod>,
    recorder: Recorder,
    /// Events waiting to be posted by [`post_events`].
    events: mpsc::UnboundedSender<(Event, ObjectReference)>,
    dns: cri::DnsConfig,
}

/// The longest a deleted pod's stop signal waits for the service proxy.
const MAX_DRAIN: Duration = Duration::from_secs(2);

/// A service-account token bound to `pod` (TokenRequest) for `(audience, expirationSeconds)`,
/// with its expiry (seconds since the epoch).
async fn request_token(client: &Client, pod: &Pod, key: &(String, i64)) -> Result<(String, i64), String> {
    let sa = pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: if key.0.is_empty() { Vec::new() } else { vec![key.0.clone()] },
            expiration_seconds: Some(key.1),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.uid(),
            }),
        },
        ..Default::default()
    };
    match api.create_token_request(&sa, &PostParams::default(), &request).await {
        Ok(answer) => {
            let status = answer.status.ok_or("the token request answered without a token")?;
            Ok((status.token, status.expiration_timestamp.0.as_second()))
        }
        Err(e) => {
            tracing::warn!(service_account = %sa, error = %e, "cannot get a service account token");
            Err(match e {
                kube::Error::Api(s) => s.message,
                e => e.to_string(),
            })
        }
    }
}

/// Posts the workers' events one after the other, in the order they were recorded.
async fn post_events(recorder: Recorder, mut queue: mpsc::UnboundedReceiver<(Event, ObjectReference)>) {
    while let Some((ev, object)) = queue.recv().await {
        if let Err(e) = recorder.publish(&ev, &object).await {
            tracing::debug!(error = %e, "cannot record an event");
        }
    }
}

/// Watches the pods bound to this node and keeps one worker per pod (and one per
/// leftover pod of the runtime) until `stop`.
pub async fn run(client: Client, config: Config, runtime: Arc<dyn Runtime>, mut stop: watch::Receiver<bool>) {
    let api: Api<Pod> = Api::all(client.clone());
    let wc = watcher::Config::default().fields(&format!("spec.nodeName={}", config.node_name));
    let (reader, writer) = reflector::store();
    let changed = Arc::new(Notify::new());
    let notify = changed.clone();
    let watch_task = tokio::spawn(async move {
        let stream = watcher(api, wc).default_backoff().reflect(writer).applied_objects();
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::warn!(error = %e, "pod watch");
            }
            notify.notify_one();
        }
    });
    let _ = reader.wait_until_ready().await;
    let reporter = Reporter { controller: "kubelet".into(), instance: Some(config.node_name.clone()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let (events, queue) = mpsc::unbounded_channel();
    let events_task = tokio::spawn(post_events(recorder.clone(), queue));
    let shared = Arc::new(Shared { recorder, events, client, dns: host_dns(), config, runtime, pods: reader });
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut tick = tokio::time::interval(shared.config.resync_interval);
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = tick.tick() => {}
            _ = stop.changed() => if *stop.borrow() { break },
        }
        workers.retain(|_, w| !w.task.is_finished());
        let mut uids: Vec<String> = shared.pods.state().iter().filter_map(|p| p.uid()).collect();
        // Pods the runtime still has but the API no longer does.
        if let Ok(sandboxes) = shared.runtime.list_pod_sandboxes(None).await {
            uids.extend(sandboxes.iter().filter_map(|s| s.metadata.as_ref().map(|m| m.uid.clone())));
        }
        uids.sort();
        uids.dedup();
        for uid in uids {
            workers.entry(uid.clone()).or_insert_with(|| Worker::spawn(shared.clone(), uid));
        }
        // Every live worker, including one whose pod has left both the API and the
        // runtime in its last sync: it needs one more wake to see that and clean up.
        for worker in workers.values() {
            worker.wake.notify_one();
        }
    }
    watch_task.abort();
    events_task.abort();
    for w in workers.values() {
        w.task.abort();
    }
}

/// The resolver configuration of the node, for pods with `dnsPolicy: Default`.
fn host_dns() -> cri::DnsConfig {
    let text = std::fs::read_to_string(crate::host_resolv_conf()).unwrap_or_default();
    let mut dns = cri::DnsConfig::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.servers.extend(words.next().map(str::to_string)),
            Some("search") => dns.searches = words.map(str::to_string).collect(),
            Some("options") => dns.options = words.map(str::to_string).collect(),
            _ => {}
        }
    }
    dns
}

struct Worker {
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Worker {
    fn spawn(shared: Arc<Shared>, uid: String) -> Worker {
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(PodWorker::new(shared, uid, wake.clone()).run());
        Worker { wake, task }
    }
}

/// The state one pod's worker keeps between syncs.
struct PodWorker {
    shared: Arc<Shared>,
    uid: String,
    /// The last version of the pod seen in the API (kept once it is gone, to clean up).
    last_pod: Option<Pod>,
    backoff: BTreeMap<String, BackOff>,
    /// Statuses of containers, by id, while their state is unchanged.
    container_cache: HashMap<String, ContainerObs>,
    sandbox_ips: HashMap<String, String>,
    /// Reasons of the kubelet's own for containers that cannot start yet.
    errors: BTreeMap<String, Waiting>,
    /// The deleted pod's address has left the node's service proxy (or waiting is over).
    drained: bool,
    /// The pod was seen gone from the API (logged once).
    left_api: bool,
    /// The manager's wake-up of this worker; probe tasks use it too.
    wake: Arc<Notify>,
    /// Probe tasks by container id and kind, and their published results.
    probes: HashMap<(String, ProbeKind), tokio::task::JoinHandle<()>>,
    probe_results: probe::Results,
    dirs: volume::PodDirs,
    /// When the volumes were last set up, and the last mount failure reported.
    volumes_at: Option<tokio::time::Instant>,
    mount_error: Option<String>,
    /// Volume directories known to have their tmpfs (saves reading mountinfo again).
    mounted: HashSet<std::path::PathBuf>,
    /// Service-account tokens by (audience, expirationSeconds): the token, when it was
    /// issued and when it expires (seconds since the epoch).
    tokens: HashMap<(String, i64), (String, i64, i64)>,
}

/// Nanoseconds since the epoch.
fn now_ns() -> i64 {
    Timestamp::now().as_nanosecond() as i64
}

impl PodWorker {
    fn new(shared: Arc<Shared>, uid: String, wake: Arc<Notify>) -> PodWorker {
        PodWorker {
            dirs: volume::PodDirs::new(&shared.config.paths.agent_dir, &uid),
            shared,
            uid,
            wake,
            probes: HashMap::new(),
            probe_results: probe::Results::default(),
            volumes_at: None,
            mount_error: None,
            mounted: HashSet::new(),
            tokens: HashMap::new(),
            last_pod: None,
            backoff: BTreeMap::new(),
            container_cache: HashMap::new(),
            sandbox_ips: HashMap::new(),
            errors: BTreeMap::new(),
            drained: false,
            left_api: false,
        }
    }

    fn current_pod(&self) -> Option<Arc<Pod>> {
        self.shared.pods.state().into_iter().find(|p| p.uid().as_deref() == Some(self.uid.as_str()))
    }

    async fn run(mut self) {
        let wake = self.wake.clone();
        loop {
            match self.sync().await {
                Ok(true) => {
                    self.finish();
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(pod_uid = %self.uid, error = %e, "pod sync"),
            }
            // The manager wakes every worker on each pod change and each resync tick,
            // probe tasks when a result changes.
            wake.notified().await;
        }
    }

    /// The pod is gone for good: its probes stop and its volumes go.
    fn finish(&mut self) {
        for (_, task) in self.probes.drain() {
            task.abort();
        }
        self.mounted.clear();
        if let Err(e) = volume::teardown(&self.dirs) {
            tracing::warn!(pod_uid = %self.uid, error = %e, "cannot tear down the pod's volumes");
        }
    }

    /// One sync; true when the worker is done (the pod is gone and cleaned up).
    async fn sync(&mut self) -> Result<bool, crate::cri::Error> {
        // The span follows the sync across its awaits (an entered guard would not).
        let names = |p: &Pod| (p.namespace().unwrap_or_default(), p.name_any());
        let (namespace, name) = match self.current_pod() {
            Some(p) => names(&p),
            None => self.last_pod.as_ref().map(names).unwrap_or_default(),
        };
        let span = tracing::info_span!("pod", %namespace, %name, uid = %self.uid);
        self.sync_pod().instrument(span).await
    }

    async fn sync_pod(&mut self) -> Result<bool, crate::cri::Error> {
        let current = self.current_pod();
        let gone = current.is_none();
        if let Some(p) = &current {
            self.last_pod = Some((**p).clone());
        } else if !self.left_api && self.last_pod.is_some() {
            // Force deletion (`--grace-period=0 --force`) does this; otherwise only this
            // kubelet deletes its pods, after their containers are gone.
            self.left_api = true;
            tracing::info!("pod left the API before its containers were cleaned up");
        }
        let observed = self.observe().await?;
        let pod = match &self.last_pod {
            Some(p) => p.clone(),
            None => {
                // A leftover of a pod this agent never saw in the API: remove it.
                if observed.sandboxes.is_empty() && observed.containers.is_empty() {
                    return Ok(true);
                }
                Pod {
                    metadata: kube::api::ObjectMeta { uid: Some(self.uid.clone()), ..Default::default() },
                    ..Default::default()
                }
            }
        };
        let now = now_ns();
        let active = !gone && pod.metadata.deletion_timestamp.is_none() && !plan::is_terminal(&pod, &observed);
        self.sync_probes(&pod, &observed, active);
        let unhealthy = self.unhealthy(&observed);
        let mut observed = observed;
        let mut rounds = 0;
        // A new sandbox makes its containers startable at once: plan again right away
        // instead of posting a ContainerCreating status and waiting for the next wake.
        let plan = loop {
            let mut plan = plan::plan(&pod, &observed, &self.backoff, &unhealthy, gone, now);
            if active {
                let starts = plan
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::CreateSandbox { .. } | Action::StartContainer { .. }));
                let due = self.volumes_at.is_none_or(|at| at.elapsed() >= VOLUME_REFRESH);
                // A second round of this sync starts containers on volumes set up just now.
                if (starts && rounds == 0) || due {
                    // Upstream mounts volumes before the sandbox exists; until they are
                    // there, nothing of the pod starts (its containers stay ContainerCreating).
                    if let Err(message) = self.setup_volumes(&pod).await {
                        if self.mount_error.as_ref() != Some(&message) {
                            self.event(&pod, EventType::Warning, "FailedMount", &message);
                            self.mount_error = Some(message);
                        }
                        plan.actions
                            .retain(|a| !matches!(a, Action::CreateSandbox { .. } | Action::StartContainer { .. }));
                    } else {
                        self.mount_error = None;
                        self.volumes_at = Some(tokio::time::Instant::now());
                    }
                }
            }
            let mut acted = false;
            for action in &plan.actions {
                acted = true;
                if let Err(e) = self.execute(&pod, &observed, action).await {
                    tracing::warn!(?action, error = %e, "pod action failed");
                }
                if *action == Action::FinalizeDeletion {
                    return Ok(true);
                }
            }
            if gone {
                return Ok(observed.sandboxes.is_empty() && observed.containers.is_empty() && !acted);
            }
            if acted {
                observed = self.observe().await?;
            }
            rounds += 1;
            let new_sandbox = plan.actions.iter().any(|a| matches!(a, Action::CreateSandbox { .. }));
            if !new_sandbox || rounds >= 2 {
                break plan;
            }
        };
        let mut waiting = plan.waiting.clone();
        for (name, w) in &self.errors {
            waiting.entry(name.clone()).or_insert_with(|| w.clone());
        }
        for (name, w) in &plan.waiting {
            if w.reason == "CrashLoopBackOff" && !self.errors.contains_key(name) {
                self.event(&pod, EventType::Warning, "BackOff", &w.message);
                self.errors.insert(name.clone(), w.clone());
            }
        }
        self.errors.retain(|name, w| w.reason != "CrashLoopBackOff" || plan.waiting.contains_key(name));
        let (readiness, started) = self.probed(&pod, &observed);
        let inputs = status::Inputs { waiting, readiness, started, host_ip: self.shared.config.node_ip.clone() };
        let status = status::pod_status(&pod, &observed, &inputs, Timestamp::now());
        if pod.metadata.deletion_timestamp.is_none() && pod.status.as_ref() != Some(&status) {
            let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &pod.namespace().unwrap_or_default());
            match api
                .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": status})))
                .await
            {
                Ok(p) => self.last_pod = Some(p),
                Err(e) => tracing::warn!(error = %e, "cannot post the pod status"),
            }
        }
        Ok(false)
    }

    /// The runtime's view of this pod.
    async fn observe(&mut self) -> Result<Observed, crate::cri::Error> {
        let rt = &self.shared.runtime;
        let mut observed = Observed::default();
        for s in rt.list_pod_sandboxes(Some(&self.uid)).await? {
            let ready = s.state == cri::PodSandboxState::SandboxReady as i32;
            let ip = match self.sandbox_ips.get(&s.id) {
                Some(ip) => Some(ip.clone()),
                None if ready => match rt.pod_sandbox_status(&s.id).await {
                    Ok(st) => {
                        let ip = st.network.map(|n| n.ip).unwrap_or_default();
                        self.sandbox_ips.insert(s.id.clone(), ip.clone());
                        Some(ip)
                    }
                    Err(_) => None,
                },
                None => None,
            };
            observed.sandboxes.push(SandboxObs {
                attempt: s.metadata.as_ref().map_or(0, |m| m.attempt),
                id: s.id,
                ready,
                created_at: s.created_at,
                ip,
            });
        }
        for c in rt.list_containers(Some(&self.uid)).await? {
            let state = match cri::ContainerState::try_from(c.state) {
                Ok(cri::ContainerState::ContainerCreated) => CState::Created,
                Ok(cri::ContainerState::ContainerRunning) => CState::Running,
                Ok(cri::ContainerState::ContainerExited) => CState::Exited,
                _ => CState::Unknown,
            };
            if let Some(cached) = self.container_cache.get(&c.id).filter(|o| o.state == state) {
                observed.containers.push(cached.clone());
                continue;
            }
            let st = match rt.container_status(&c.id).await {
                Ok(st) => st,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            let obs = ContainerObs {
                id: c.id.clone(),
                name: c.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default(),
                sandbox_id: c.pod_sandbox_id.clone(),
                attempt: c.metadata.as_ref().map_or(0, |m| m.attempt),
                state,
                exit_code: st.exit_code,
                reason: st.reason,
                message: st.message,
                created_at: st.created_at,
                started_at: st.started_at,
                finished_at: st.finished_at,
                image_ref: st.image_ref,
            };
            self.container_cache.insert(c.id, obs.clone());
            observed.containers.push(obs);
        }
        let live: std::collections::HashSet<&str> = observed.containers.iter().map(|c| c.id.as_str()).collect();
        self.container_cache.retain(|id, _| live.contains(id.as_str()));
        Ok(observed)
    }

    /// Records an event without waiting for the API: the pod's start does not pay a
    /// round trip per event (one task posts them in order).
    fn event(&self, pod: &Pod, kind: EventType, reason: &str, note: &str) {
        if pod.metadata.name.is_none() {
            return;
        }
        let ev = Event {
            type_: kind,
            reason: reason.into(),
            note: Some(note.into()),
            action: reason.into(),
            secondary: None,
        };
        let _ = self.shared.events.send((ev, pod.object_ref(&())));
    }

    fn dns(&self, pod: &Pod) -> Option<cri::DnsConfig> {
        spec::pod_dns(pod, &self.shared.config.cluster_dns, &self.shared.dns)
    }

    fn logs_root(&self) -> String {
        self.shared.config.paths.pod_logs_dir().display().to_string()
    }

    async fn execute(&mut self, pod: &Pod, observed: &Observed, action: &Action) -> Result<(), String> {
        let rt = self.shared.runtime.clone();
        match action {
            Action::CreateSandbox { attempt } => {
                let config = spec::sandbox_config(pod, *attempt, &self.logs_root(), self.dns(pod));
                if let Err(e) = std::fs::create_dir_all(&config.log_directory) {
                    return Err(format!("cannot create the log directory: {e}"));
                }
                match rt.run_pod_sandbox(config).await {
                    Ok(id) => tracing::info!(sandbox = %id, "sandbox started"),
                    Err(e) => {
                        let msg = format!("Failed to create pod sandbox: {e}");
                        self.event(pod, EventType::Warning, "FailedCreatePodSandBox", &msg);
                        return Err(msg);
                    }
                }
            }
            Action::StartContainer { name, init, attempt } => {
                self.start_container(pod, observed, name, *init, *attempt).await?
            }
            Action::KillContainer { id, name, grace_seconds } => {
                if pod.metadata.name.is_some() {
                    self.event(pod, EventType::Normal, "Killing", &format!("Stopping container {name}"));
                }
                self.drain(pod, observed, *grace_seconds).await;
                rt.stop_container(id, *grace_seconds).await.map_err(|e| e.to_string())?;
            }
            Action::KillUnhealthy { id, grace_seconds, message, .. } => {
                self.event(pod, EventType::Normal, "Killing", message);
                rt.stop_container(id, *grace_seconds).await.map_err(|e| e.to_string())?;
            }
            Action::StopSandbox { id } => {
                rt.stop_pod_sandbox(id).await.map_err(|e| e.to_string())?;
                self.sandbox_ips.remove(id);
            }
            Action::RemoveContainer { id } => match rt.remove_container(id).await {
                Err(e) if !e.is_not_found() => return Err(e.to_string()),
                _ => {}
            },
            Action::RemoveSandbox { id } => match rt.remove_pod_sandbox(id).await {
                Err(e) if !e.is_not_found() => return Err(e.to_string()),
                _ => {
                    let dir = format!("{}/{}", self.logs_root(), spec::log_directory(pod));
                    let _ = std::fs::remove_dir_all(dir);
                }
            },
            Action::FinalizeDeletion => {
                // Upstream deletes the pod object only once its resources are reclaimed.
                self.finish();
                let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &pod.namespace().unwrap_or_default());
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions { uid: pod.uid(), resource_version: None }),
                    ..Default::default()
                };
                match api.delete(&pod.name_any(), &params).await {
                    Ok(_) => tracing::info!("pod deleted"),
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        Ok(())
    }

    async fn start_container(
        &mut self,
        pod: &Pod,
        observed: &Observed,
        name: &str,
        init: bool,
        attempt: u32,
    ) -> Result<(), String> {
        let Some(container) = spec::all_containers(pod).find(|c| c.name == name).cloned() else {
            return Err(format!("no container {name} in the pod spec"));
        };
        let Some(sandbox) = observed.sandbox() else { return Err("no sandbox".into()) };
        let ns = pod.namespace().unwrap_or_default();
        // The environment's sources.
        let (cm_names, secret_names) = spec::EnvSources::wanted(pod);
        let mut sources = spec::EnvSources::default();
        let cms: Api<ConfigMap> = Api::namespaced(self.shared.client.clone(), &ns);
        for n in cm_names {
            if let Ok(Some(cm)) = cms.get_opt(&n).await {
                sources.configmaps.insert(n, cm);
            }
        }
        let secrets: Api<Secret> = Api::namespaced(self.shared.client.clone(), &ns);
        for n in secret_names {
            if let Ok(Some(s)) = secrets.get_opt(&n).await {
                sources.secrets.insert(n, s);
            }
        }
        let pod_ip = sandbox.ip.clone().unwrap_or_default();
        let prepared = spec::container_env(pod, &container, &sources, &pod_ip, &self.shared.config.node_ip)
            .map_err(|e| e.to_string())
            .and_then(|env| {
                let mounts = self.mounts(pod, &container, &pod_ip, &env)?;
                Ok((env, mounts))
            });
        let (env, mounts) = match prepared {
            Ok(prepared) => prepared,
            Err(msg) => {
                if self.errors.get(name).map(|w| &w.message) != Some(&msg) {
                    self.event(pod, EventType::Warning, "Failed", &format!("Error: {msg}"));
                }
                self.errors
                    .insert(name.into(), Waiting { reason: "CreateContainerConfigError".into(), message: msg.clone() });
                return Err(msg);
            }
        };
        let image = container.image.clone().unwrap_or_default();
        let sandbox_config = spec::sandbox_config(pod, sandbox.attempt, &self.logs_root(), self.dns(pod));
        self.ensure_image(pod, name, &image, container.image_pull_policy.as_deref(), &sandbox_config).await?;
        self.errors.remove(name);
        let config = spec::container_config(pod, &container, attempt, env, mounts);
        let id = match self.shared.runtime.create_container(&sandbox.id, config, sandbox_config).await {
            Ok(id) => id,
            Err(e) => {
                let msg = format!("Error: {e}");
                self.event(pod, EventType::Warning, "Failed", &msg);
                self.errors
                    .insert(name.into(), Waiting { reason: "CreateContainerError".into(), message: e.to_string() });
                return Err(msg);
            }
        };
        self.event(pod, EventType::Normal, "Created", &format!("Created container {name}"));
        if attempt > 0 {
            let previous = self.backoff.get(name).copied();
            self.backoff.insert(name.into(), BackOff::next(previous, now_ns()));
        }
        if let Err(e) = self.shared.runtime.start_container(&id).await {
            let msg = format!("Error: {e}");
            self.event(pod, EventType::Warning, "Failed", &msg);
            return Err(msg);
        }
        self.event(pod, EventType::Normal, "Started", &format!("Started container {name}"));
        tracing::info!(container = %name, init, attempt, "container started");
        Ok(())
    }

    /// The container's CRI mounts, with what they need on the host: subPath targets
    /// and the managed /etc/hosts.
    fn mounts(
        &self,
        pod: &Pod,
        container: &k8s_openapi::api::core::v1::Container,
        pod_ip: &str,
        env: &[(String, String)],
    ) -> Result<Vec<cri::Mount>, String> {
        let mut mounts = volume::container_mounts(pod, container, &self.dirs, env).map_err(|e| e.to_string())?;
        let hosts = self.dirs.etc_hosts().display().to_string();
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default();
        for m in &mut mounts {
            if m.host_path == hosts {
                let text = volume::hosts_file(pod, pod_ip, &self.shared.config.cluster_dns.domain);
                if std::fs::read_to_string(&hosts).ok().as_deref() != Some(text.as_str()) {
                    std::fs::create_dir_all(&self.dirs.root)
                        .and_then(|_| std::fs::write(&hosts, text))
                        .map_err(|e| format!("cannot write {hosts}: {e}"))?;
                }
                continue;
            }
            let vm = container.volume_mounts.iter().flatten().find(|v| v.mount_path == m.container_path);
            let has_sub = |s: Option<&String>| s.is_some_and(|s| !s.is_empty());
            let Some(vm) = vm.filter(|v| has_sub(v.sub_path.as_ref()) || has_sub(v.sub_path_expr.as_ref())) else {
                continue;
            };
            // A subPath that does not exist yet is created as a directory (upstream); one
            // through the `..data` symlinks binds the current version's file. Resolved
            // here, it must stay inside its volume: a container could have planted a
            // symlink to anywhere on the host in an emptyDir.
            let base = volumes
                .iter()
                .find(|v| v.name == vm.name)
                .and_then(|v| volume::host_dir(&self.dirs, v).ok())
                .and_then(|b| std::fs::canonicalize(b).ok())
                .ok_or_else(|| format!("cannot resolve volume {}", vm.name))?;
            let path = std::path::PathBuf::from(&m.host_path);
            if std::fs::symlink_metadata(&path).is_err() {
                std::fs::create_dir_all(&path).map_err(|e| format!("cannot create subPath {}: {e}", path.display()))?;
            }
            let resolved =
                std::fs::canonicalize(&path).map_err(|e| format!("cannot resolve subPath {}: {e}", path.display()))?;
            if !resolved.starts_with(&base) {
                return Err(format!("subPath {} resolves outside of volume {}", path.display(), vm.name));
            }
            m.host_path = resolved.display().to_string();
        }
        Ok(mounts)
    }

    /// Starts a probe task for every probe of every running app container that has
    /// none yet, and stops those of containers no longer running.
    fn sync_probes(&mut self, pod: &Pod, observed: &Observed, active: bool) {
        let mut wanted = HashSet::new();
        let sandbox = observed.sandbox().filter(|s| s.ready);
        if let (true, Some(sandbox)) = (active, sandbox) {
            let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
            let pod_ip =
                if host_network { self.shared.config.node_ip.clone() } else { sandbox.ip.clone().unwrap_or_default() };
            for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                let Some(o) = observed.latest_in(&c.name, &sandbox.id).filter(|o| o.state == CState::Running) else {
                    continue;
                };
                for kind in ProbeKind::ALL {
                    let Some(p) = kind.of(c) else { continue };
                    let key = (o.id.clone(), kind);
                    wanted.insert(key.clone());
                    if self.probes.contains_key(&key) {
                        continue;
                    }
                    let since = Duration::from_nanos(u64::try_from(now_ns() - o.started_at).unwrap_or(0));
                    let target =
                        probe::Target { container_id: o.id.clone(), container: c.clone(), pod_ip: pod_ip.clone() };
                    // What a previous agent published for this very container.
                    let cid = format!("containerd://{}", o.id);
                    let previous =
                        pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|cs| {
                            cs.iter().find(|s| s.name == c.name && s.container_id.as_ref() == Some(&cid))
                        });
                    let resumed = match kind {
                        ProbeKind::Readiness => previous.map(|p| p.ready).filter(|r| *r),
                        ProbeKind::Startup => previous.and_then(|p| p.started).filter(|s| *s),
                        ProbeKind::Liveness => None,
                    };
                    let cx = probe::Context {
                        runtime: self.shared.runtime.clone(),
                        results: self.probe_results.clone(),
                        wake: self.wake.clone(),
                        recorder: self.shared.recorder.clone(),
                        pod_ref: pod.object_ref(&()),
                    };
                    let span = tracing::info_span!(
                        "probe",
                        namespace = %pod.namespace().unwrap_or_default(),
                        name = %pod.name_any()
                    );
                    let task = tokio::spawn(tracing::Instrument::instrument(
                        probe::run(kind, p.clone(), target, since, resumed, cx),
                        span,
                    ));
                    self.probes.insert(key, task);
                }
            }
        }
        self.probes.retain(|key, task| {
            let keep = wanted.contains(key);
            if !keep {
                task.abort();
            }
            keep
        });
        self.probe_results.lock().unwrap_or_else(|e| e.into_inner()).retain(|key, _| wanted.contains(key));
    }

    /// Running containers whose liveness or startup probe failed: the plan kills them.
    fn unhealthy(&self, observed: &Observed) -> BTreeMap<String, &'static str> {
        let results = self.probe_results.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = BTreeMap::new();
        for c in observed.containers.iter().filter(|c| c.state == CState::Running) {
            if results.get(&(c.id.clone(), ProbeKind::Liveness)) == Some(&false) {
                out.insert(c.id.clone(), "liveness");
            } else if results.get(&(c.id.clone(), ProbeKind::Startup)) == Some(&false) {
                out.insert(c.id.clone(), "startup");
            }
        }
        out
    }

    /// Readiness and startup results by container name, for the status.
    fn probed(&self, pod: &Pod, observed: &Observed) -> (BTreeMap<String, bool>, BTreeMap<String, bool>) {
        let (mut readiness, mut started) = (BTreeMap::new(), BTreeMap::new());
        for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            let Some(o) = observed.latest(&c.name) else { continue };
            if c.readiness_probe.is_some() {
                readiness.insert(
                    c.name.clone(),
                    probe::result(&self.probe_results, &o.id, ProbeKind::Readiness) == Some(true),
                );
            }
            if c.startup_probe.is_some() {
                started.insert(
                    c.name.clone(),
                    probe::result(&self.probe_results, &o.id, ProbeKind::Startup) == Some(true),
                );
            }
        }
        (readiness, started)
    }

    /// Sets up every volume of the pod (idempotent; kubelet-written files are rewritten
    /// only when their sources changed). The error is the `FailedMount` event's message.
    async fn setup_volumes(&mut self, pod: &Pod) -> Result<(), String> {
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default();
        if volumes.is_empty() {
            return Ok(());
        }
        let ns = pod.namespace().unwrap_or_default();
        let (cm_names, secret_names, token_keys) = volume::Sources::wanted(pod);
        // Every source in one round trip's time: a pod start waits for these.
        let cms: Api<ConfigMap> = Api::namespaced(self.shared.client.clone(), &ns);
        let secrets: Api<Secret> = Api::namespaced(self.shared.client.clone(), &ns);
        let now = Timestamp::now().as_second();
        let due: Vec<(String, i64)> = token_keys.iter().filter(|k| !self.token_fresh(k, now)).cloned().collect();
        let (cm_results, secret_results, token_results) = tokio::join!(
            futures::future::join_all(cm_names.iter().map(|n| cms.get_opt(n))),
            futures::future::join_all(secret_names.iter().map(|n| secrets.get_opt(n))),
            futures::future::join_all(due.iter().map(|k| request_token(&self.shared.client, pod, k))),
        );
        let mut sources = volume::Sources::default();
        for (n, cm) in cm_names.into_iter().zip(cm_results) {
            let cm = cm.map_err(|e| format!("cannot get configmap {n:?}: {e}"))?;
            sources.configmaps.insert(n, cm);
        }
        for (n, secret) in secret_names.into_iter().zip(secret_results) {
            let secret = secret.map_err(|e| format!("cannot get secret {n:?}: {e}"))?;
            sources.secrets.insert(n, secret);
        }
        for (key, answer) in due.into_iter().zip(token_results) {
            match answer {
                Ok((token, expires)) => {
                    self.tokens.insert(key, (token, now, expires));
                }
                // An old token still valid beats none; without one the volume fails, like
                // a missing source.
                Err(message) => {
                    if self.tokens.get(&key).is_none_or(|t| t.2 <= now) {
                        sources.tokens.insert(key, Err(message));
                    }
                }
            }
        }
        for key in token_keys {
            if let Some((token, ..)) = self.tokens.get(&key) {
                sources.tokens.entry(key).or_insert_with(|| Ok(token.clone()));
            }
        }
        for v in &volumes {
            let failed = |e: volume::VolumeError| format!("MountVolume.SetUp failed for volume \"{}\" : {e}", v.name);
            let dir = volume::host_dir(&self.dirs, v).map_err(failed)?;
            if let Some(hp) = &v.host_path {
                volume::check_host_path(&dir, hp.type_.as_deref().unwrap_or_default()).map_err(failed)?;
            } else if v.empty_dir.is_some() {
                if !self.mounted.contains(&dir) {
                    volume::setup_empty_dir(&dir, v).map_err(failed)?;
                    self.mounted.insert(dir);
                }
            } else if let Some(files) = volume::payload(pod, v, &sources).map_err(failed)? {
                if volume::in_memory(v) && !self.mounted.contains(&dir) {
                    volume::mount_tmpfs(&dir, None).map_err(failed)?;
                    self.mounted.insert(dir.clone());
                }
                if volume::write_atomic(&dir, &files).map_err(failed)? {
                    tracing::info!(volume = %v.name, files = files.len(), "volume files written");
                }
            }
        }
        Ok(())
    }

    /// Before a deleted pod's containers get their stop signal, waits (once, at most
    /// [`MAX_DRAIN`] and never past the grace period) until this node's service proxy has
    /// stopped sending new connections to the pod: the endpoint controller and this
    /// kubelet see the deletion at the same moment, and a container that stops first
    /// would refuse connections the proxy still sends it.
    async fn drain(&mut self, pod: &Pod, observed: &Observed, grace_seconds: i64) {
        if self.drained || pod.metadata.deletion_timestamp.is_none() || grace_seconds <= 0 {
            return;
        }
        self.drained = true;
        let Some(drain) = &self.shared.config.endpoint_drain else { return };
        let Some(ip) = observed.sandbox().and_then(|s| s.ip.clone()).filter(|ip| !ip.is_empty()) else { return };
        let limit = MAX_DRAIN.min(Duration::from_secs(grace_seconds.unsigned_abs()));
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(limit, (drain.0)(ip)).await {
            Ok(()) => tracing::info!(took = ?started.elapsed(), "pod drained from the service proxy"),
            Err(_) => tracing::warn!(?limit, "the service proxy did not drop the pod in time; stopping it anyway"),
        }
    }

    /// Whether the token kept for `key` needs no renewal yet: upstream's token manager
    /// renews after 80 % of its lifetime or 24 hours.
    fn token_fresh(&self, key: &(String, i64), now: i64) -> bool {
        self.tokens
            .get(key)
            .is_some_and(|(_, issued, expires)| now < issued + (expires - issued) * 8 / 10 && now < issued + 24 * 3600)
    }

    /// Pulls the image when the policy asks for it (ErrImagePull / ImagePullBackOff).
    async fn ensure_image(
        &mut self,
        pod: &Pod,
        name: &str,
        image: &str,
        policy: Option<&str>,
        sandbox: &cri::PodSandboxConfig,
    ) -> Result<(), String> {
        let rt = &self.shared.runtime;
        let present = rt.image_id(image).await.map_err(|e| e.to_string())?.is_some();
        let policy = policy.unwrap_or("IfNotPresent");
        if present && policy != "Always" {
            return Ok(());
        }
        if policy == "Never" {
            let msg = format!("Container image \"{image}\" is not present with pull policy of Never");
            self.errors.insert(name.into(), Waiting { reason: "ErrImageNeverPull".into(), message: msg.clone() });
            self.event(pod, EventType::Warning, "ErrImageNeverPull", &msg);
            return Err(msg);
        }
        let key = format!("pull:{name}");
        if let Some(b) = self.backoff.get(&key)
            && now_ns() - b.updated_at < b.delay.as_nanos() as i64
        {
            let msg = format!("Back-off pulling image \"{image}\"");
            self.errors.insert(name.into(), Waiting { reason: "ImagePullBackOff".into(), message: msg.clone() });
            return Err(msg);
        }
        let (auth, missing) = crate::registries::pod_pull_auth(&self.shared.client, pod, image).await;
        if !missing.is_empty() {
            let names = missing.join(", ");
            let msg = format!(
                "Unable to retrieve some image pull secrets ({names}); attempting to pull the image may not succeed."
            );
            self.event(pod, EventType::Warning, "FailedToRetrieveImagePullSecret", &msg);
        }
        self.event(pod, EventType::Normal, "Pulling", &format!("Pulling image \"{image}\""));
        match rt.pull_image_with_auth(image, auth, Some(sandbox.clone())).await {
            Ok(_) => {
                self.backoff.remove(&key);
                self.event(pod, EventType::Normal, "Pulled", &format!("Successfully pulled image \"{image}\""));
                Ok(())
            }
            Err(e) => {
                let previous = self.backoff.get(&key).copied();
                self.backoff.insert(key, BackOff::next(previous, now_ns()));
                let msg = format!("Failed to pull image \"{image}\": {e}");
                self.errors.insert(name.into(), Waiting { reason: "ErrImagePull".into(), message: msg.clone() });
                self.event(pod, EventType::Warning, "Failed", &msg);
                Err(msg)
            }
        }
    }
}
