//! The simulated cluster of `bench-scheduler`: Node objects standing in for kubelets,
//! their Leases (renewed in the background, as kubelets do), and the pods and
//! Deployments the benchmark creates. The in-process decision baseline builds its
//! snapshot from the very same objects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// Where the benchmark's pods and Deployments live.
pub const NAMESPACE: &str = "bench-scheduler";
/// Marks the simulated nodes (`=sim`).
pub const NODE_LABEL: &str = "bench.rkube.io/node";
/// Which phase a pod belongs to (its name prefix).
pub const PHASE_LABEL: &str = "bench.rkube.io/phase";
/// The anti-affinity group of a pod: at most one pod of a group per node.
pub const GROUP_LABEL: &str = "group";
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const ZONES: usize = 3;
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// What every simulated node offers.
pub const NODE_CPU: &str = "32";
pub const NODE_MEMORY: &str = "128Gi";
pub const NODE_PODS: &str = "110";
/// What every benchmark pod requests (small, so capacity never limits).
pub const POD_CPU: &str = "10m";
pub const POD_MEMORY: &str = "16Mi";
/// Upstream's kubelet lease duration (`nodeLeaseDurationSeconds`).
const LEASE_SECONDS: i32 = 40;
/// A Lease older than this is renewed: well inside the 40 s node grace period, and
/// long enough that a phase started right after [`Heartbeats::renew_all`] sees no
/// renewals for its first 20 s.
const RENEW_AFTER: Duration = Duration::from_secs(20);
/// How often the background task looks for Leases to renew.
const RENEW_CHECK: Duration = Duration::from_secs(1);
/// Renewals in flight at once in the background and in a sweep. Kubelets renew
/// independently, each on its own connection; with 4 at a time 5,000 Leases falling due
/// together (the sweep renews them all at once) could not all be renewed within the 20 s
/// left of the grace period while the server was busy with a pod phase, and nodes went
/// Unknown in the middle of the measurement.
const BACKGROUND_RENEWALS: usize = 32;
const SWEEP_RENEWALS: usize = 16;

pub fn node_name(i: usize) -> String {
    format!("sim-{i:05}")
}

/// A Ready node as a kubelet registers it: status included (the API keeps a Node's
/// status on create), the hostname and zone labels, a fresh Ready heartbeat.
pub fn node(i: usize, now: Timestamp) -> Node {
    let name = node_name(i);
    let stamp = serde_json::to_value(Time(now)).unwrap_or_default();
    let resources = json!({"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": NODE_PODS});
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {
            HOSTNAME_LABEL: name,
            "kubernetes.io/os": "linux",
            ZONE_LABEL: format!("zone-{}", i % ZONES),
            NODE_LABEL: "sim",
        }},
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "simulated by cargo xtask bench-scheduler",
                            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
        },
    }))
    .expect("a valid Node")
}

/// The status part of [`node`], for a merge patch of `nodes/status`.
pub fn node_status_patch(node: &Node) -> serde_json::Value {
    json!({"status": node.status})
}

/// Whether the node has a Ready=True condition (the API kept the status we sent).
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The node's Lease in `kube-node-lease`, renewed now.
pub fn lease(node: &str, now: Timestamp) -> Lease {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_SECONDS,
                 "renewTime": serde_json::to_value(MicroTime(now)).unwrap_or_default()},
    }))
    .expect("a valid Lease")
}

pub fn lease_api(client: Client) -> Api<Lease> {
    Api::namespaced(client, LEASE_NAMESPACE)
}

/// What the pods of one phase look like.
#[derive(Debug, Clone, Copy)]
pub enum PodKind {
    /// One container with small requests, nothing else.
    Basic,
    /// Labelled `group=g<i % groups>` and required anti-affinity on the hostname
    /// against its own group: at most one pod of a group per node.
    AntiAffinity { groups: usize },
}

impl PodKind {
    /// The name prefix and phase label of the pods of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            PodKind::Basic => "basic",
            PodKind::AntiAffinity { .. } => "anti",
        }
    }
}

pub fn pod_name(kind: PodKind, i: usize) -> String {
    format!("{}-{i:05}", kind.prefix())
}

/// The index of a pod of this kind from its name.
pub fn pod_index(kind: PodKind, name: &str) -> Option<usize> {
    name.strip_prefix(kind.prefix())?.strip_prefix('-')?.parse().ok()
}

/// The `i`th pod of a phase, as the benchmark POSTs it.
pub fn pod(kind: PodKind, i: usize) -> Pod {
    let mut labels = json!({PHASE_LABEL: kind.prefix()});
    let mut spec = json!({
        "schedulerName": "default-scheduler",
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": POD_CPU, "memory": POD_MEMORY}}}],
    });
    if let PodKind::AntiAffinity { groups } = kind {
        let group = format!("g{}", i % groups.max(1));
        labels[GROUP_LABEL] = json!(group);
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {GROUP_LABEL: group}}, "topologyKey": HOSTNAME_LABEL}]}});
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name(kind, i), "namespace": NAMESPACE, "labels": labels},
        "spec": spec,
    }))
    .expect("a valid Pod")
}

/// The pod as the API server stores it: what admission adds (uid, the default
/// not-ready/unreachable tolerations, the service account, Pending status), so the
/// decision baseline sees the objects the scheduler sees.
pub fn admitted(mut pod: Pod, i: usize) -> Pod {
    pod.metadata.uid = Some(format!("00000000-0000-4000-8000-{i:012}"));
    pod.metadata.resource_version = Some((i + 1).to_string());
    pod.metadata.creation_timestamp = Some(Time(Timestamp::now()));
    if let Some(spec) = pod.spec.as_mut() {
        spec.service_account_name = Some("default".into());
        spec.tolerations = Some(
            ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
                .into_iter()
                .map(|key| {
                    serde_json::from_value(json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                                                  "tolerationSeconds": 300}))
                    .expect("a valid Toleration")
                })
                .collect(),
        );
    }
    pod.status = Some(serde_json::from_value(json!({"phase": "Pending", "qosClass": "Burstable"})).expect("status"));
    pod
}

/// The same pod once bound: `spec.nodeName` and `PodScheduled=True`, as the binding
/// subresource writes it.
pub fn bound(mut pod: Pod, node: &str) -> Pod {
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.to_string());
    }
    if let Some(status) = pod.status.as_mut() {
        status.conditions = Some(vec![
            serde_json::from_value(json!({"type": "PodScheduled", "status": "True"})).expect("a valid condition"),
        ]);
    }
    pod
}

/// A Deployment of `replicas` basic pods labelled `app=<name>`.
pub fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                         "resources": {"requests": {"cpu": POD_CPU, "memory": POD_MEMORY}}}]},
            },
        },
    }))
    .expect("a valid Deployment")
}

/// Keeps every simulated node's Lease younger than [`RENEW_AFTER`] from a background
/// task, standing in for the kubelets' heartbeats, and counts the renewals (writes the
/// benchmark adds to whatever phase they fall in).
pub struct Heartbeats {
    api: Api<Lease>,
    nodes: Arc<Vec<String>>,
    last: Arc<Mutex<Vec<Instant>>>,
    renewals: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Heartbeats {
    /// `renewed[i]` is when node `i`'s Lease was last written.
    pub fn start(client: Client, nodes: Vec<String>, renewed: Vec<Instant>) -> Heartbeats {
        let mut h = Heartbeats {
            api: lease_api(client),
            nodes: Arc::new(nodes),
            last: Arc::new(Mutex::new(renewed)),
            renewals: Arc::default(),
            failures: Arc::default(),
            task: None,
        };
        let (api, nodes, last, renewals, failures) =
            (h.api.clone(), h.nodes.clone(), h.last.clone(), h.renewals.clone(), h.failures.clone());
        h.task = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_CHECK).await;
                let now = Instant::now();
                let stale: Vec<usize> = {
                    let last = last.lock().expect("lease times");
                    (0..nodes.len()).filter(|&i| now.duration_since(last[i]) >= RENEW_AFTER).collect()
                };
                renew(&api, &nodes, &last, &renewals, &failures, stale, BACKGROUND_RENEWALS).await;
            }
        }));
        h
    }

    /// Renews every Lease now (between phases, so that the next one starts with all
    /// of them fresh).
    pub async fn renew_all(&self) {
        let all = (0..self.nodes.len()).collect();
        renew(&self.api, &self.nodes, &self.last, &self.renewals, &self.failures, all, SWEEP_RENEWALS).await;
    }

    /// Lease writes so far, and how many failed.
    pub fn renewals(&self) -> (u64, u64) {
        (self.renewals.load(Ordering::Relaxed), self.failures.load(Ordering::Relaxed))
    }

    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn renew(
    api: &Api<Lease>,
    nodes: &[String],
    last: &Mutex<Vec<Instant>>,
    renewals: &AtomicU64,
    failures: &AtomicU64,
    which: Vec<usize>,
    concurrency: usize,
) {
    futures::stream::iter(which)
        .for_each_concurrent(concurrency, |i| async move {
            let renew_time = serde_json::to_value(MicroTime(Timestamp::now())).unwrap_or_default();
            let patch = json!({"spec": {"renewTime": renew_time}});
            match api.patch(&nodes[i], &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    renewals.fetch_add(1, Ordering::Relaxed);
                    last.lock().expect("lease times")[i] = Instant::now();
                }
                Err(_) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_parse_and_names_round_trip() {
        let kind = PodKind::AntiAffinity { groups: 7 };
        let p = pod(kind, 12);
        assert_eq!(p.metadata.name.as_deref(), Some("anti-00012"));
        assert_eq!(pod_index(kind, "anti-00012"), Some(12));
        assert_eq!(pod_index(PodKind::Basic, "anti-00012"), None);
        assert_eq!(p.metadata.labels.as_ref().and_then(|l| l.get(GROUP_LABEL)).map(String::as_str), Some("g5"));
        assert!(is_ready(&node(3, Timestamp::now())));
        let b = bound(admitted(pod(PodKind::Basic, 1), 1), "sim-00000");
        assert_eq!(b.spec.and_then(|s| s.node_name).as_deref(), Some("sim-00000"));
    }
}
