//! Node lifecycle, as kube-controller-manager's node lifecycle controller and its
//! NoExecute taint manager: a node whose kubelet stops renewing its Lease (and posting
//! status) for the grace period becomes `Ready=Unknown`; nodes that are not ready or
//! unreachable get the `node.kubernetes.io/not-ready` / `unreachable` taints (NoSchedule
//! and NoExecute); pods on a NoExecute-tainted node are evicted once their toleration
//! runs out (immediately when they tolerate nothing), so their controllers recreate
//! them elsewhere.
//!
//! Every `--node-monitor-period` the loop reads nodes, node Leases and pods from
//! reflector caches and applies three pure plans: [`node_health`], [`wanted_taints`]
//! and [`eviction`].

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::Context;
use crate::events::Recorder;
use crate::informer::Cache;

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot update node {node}: {source}")]
    Node {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot evict pod {namespace}/{name}: {source}")]
    Evict {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What the node's Ready condition says, or should say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ready,
    NotReady,
    /// No heartbeat within the grace period (or marked Unknown already).
    Unknown,
}

/// The node's health and whether its conditions must be rewritten to Unknown.
pub fn node_health(node: &Node, lease: Option<&Lease>, now: Timestamp, grace: SignedDuration) -> (Health, bool) {
    let ready =
        node.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    // The newest sign of life: the Lease, the Ready heartbeat, or the node's creation.
    let heartbeat = [
        lease.and_then(|l| l.spec.as_ref()?.renew_time.as_ref()).map(|t| t.0),
        ready.and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0),
        node.meta().creation_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max();
    let stale = heartbeat.is_none_or(|h| h + grace < now);
    match ready.map(|c| c.status.as_str()) {
        Some("Unknown") => (Health::Unknown, false),
        _ if stale => (Health::Unknown, true),
        Some("True") => (Health::Ready, false),
        Some(_) => (Health::NotReady, false),
        // A node that never posted status: not ready yet, not lost either.
        None => (Health::NotReady, false),
    }
}

/// The node's taints with ours (not-ready / unreachable, NoSchedule and NoExecute) set
/// for `health`; existing ones keep their `timeAdded`.
pub fn wanted_taints(current: &[Taint], health: Health, now: Timestamp) -> Vec<Taint> {
    let ours = |t: &Taint| t.key == NOT_READY || t.key == UNREACHABLE;
    let mut out: Vec<Taint> = current.iter().filter(|t| !ours(t)).cloned().collect();
    let key = match health {
        Health::Ready => return out,
        Health::NotReady => NOT_READY,
        Health::Unknown => UNREACHABLE,
    };
    for effect in ["NoSchedule", "NoExecute"] {
        let existing = current.iter().find(|t| t.key == key && t.effect == effect);
        out.push(existing.cloned().unwrap_or_else(|| Taint {
            key: key.into(),
            effect: effect.into(),
            time_added: (effect == "NoExecute").then_some(Time(now)),
            value: None,
        }));
    }
    out
}

fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == taint.effect);
    let key = t.key.as_deref().unwrap_or("");
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => effect_ok && (key.is_empty() || key == taint.key),
        _ => effect_ok && key == taint.key && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
    }
}

/// When a pod must leave a node with these taints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eviction {
    Never,
    Now,
    At(Timestamp),
}

/// Upstream's taint manager rule: an untolerated NoExecute taint evicts at once; else
/// the pod stays for the shortest `tolerationSeconds` among the taints, counted from
/// when each taint was added.
pub fn eviction(tolerations: &[Toleration], taints: &[Taint], now: Timestamp) -> Eviction {
    let mut deadline: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Eviction::Now;
        }
        // Any toleration without a limit tolerates it forever.
        if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            continue;
        }
        let secs = matching.iter().filter_map(|t| t.toleration_seconds).min().unwrap_or(0).max(0);
        let added = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
        let at = added + SignedDuration::from_secs(secs);
        deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
    match deadline {
        None => Eviction::Never,
        Some(d) if d <= now => Eviction::Now,
        Some(d) => Eviction::At(d),
    }
}

fn cache<K>(api: Api<K>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff().touched_objects();
    tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    reader
}

/// Starts the controller.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let client = ctx.client.clone();
        let nodes = cache(Api::<Node>::all(client.clone()));
        let leases = cache(Api::<Lease>::namespaced(client.clone(), "kube-node-lease"));
        let pods = ctx.pods.cache();
        let recorder = Recorder::new(client.clone(), "node-controller");
        // A cache that never fills (its watch failing) leaves the loop idle, not wrong.
        let _ = nodes.wait_until_ready().await;
        let _ = leases.wait_until_ready().await;
        pods.wait_until_ready().await;
        let mut tick = tokio::time::interval(ctx.options.node_monitor_period);
        loop {
            tick.tick().await;
            if let Err(e) = monitor(&ctx, &nodes, &leases, &pods, &recorder).await {
                tracing::warn!(error = %e, "node lifecycle");
            }
        }
    })
}

async fn monitor(
    ctx: &Context,
    nodes: &Store<Node>,
    leases: &Store<Lease>,
    pods: &Cache<Pod>,
    recorder: &Recorder,
) -> Result<(), Error> {
    let now = Timestamp::now();
    let grace =
        SignedDuration::try_from(ctx.options.node_monitor_grace_period).unwrap_or(SignedDuration::from_secs(40));
    let leases: BTreeMap<String, Arc<Lease>> = leases.state().into_iter().map(|l| (l.name_any(), l)).collect();
    let node_api: Api<Node> = Api::all(ctx.client.clone());
    let mut taints_by_node: BTreeMap<String, Vec<Taint>> = BTreeMap::new();
    for node in nodes.state() {
        let name = node.name_any();
        let (health, mark_unknown) = node_health(&node, leases.get(&name).map(Arc::as_ref), now, grace);
        if mark_unknown {
            let stamp = Time(now);
            let conditions: Vec<_> = CONDITIONS
                .iter()
                .map(|t| {
                    json!({"type": t, "status": "Unknown", "reason": "NodeStatusUnknown",
                           "message": "Kubelet stopped posting node status.", "lastTransitionTime": stamp})
                })
                .collect();
            node_api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Strategic(json!({"status": {"conditions": conditions}})),
                )
                .await
                .map_err(|source| Error::Node { node: name.clone(), source })?;
            tracing::warn!(node = %name, "node stopped posting status: marked Unknown");
            recorder
                .normal(
                    &node.object_ref(&()),
                    "NodeNotReady",
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                )
                .await;
        }
        let current = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        let wanted = wanted_taints(&current, health, now);
        if wanted != current {
            node_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"taints": wanted}})))
                .await
                .map_err(|source| Error::Node { node: name.clone(), source })?;
        }
        taints_by_node.insert(name, wanted);
    }
    for pod in pods.state() {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else { continue };
        let Some(taints) = taints_by_node.get(node) else { continue };
        if pod.meta().deletion_timestamp.is_some() {
            continue;
        }
        let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
        if eviction(&tolerations, taints, now) != Eviction::Now {
            continue;
        }
        let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(namespace = %ns, pod = %name, node, "evicted from a NoExecute-tainted node");
                recorder
                    .normal(
                        &pod.object_ref(&()),
                        "TaintManagerEviction",
                        "Evict",
                        format!("Marking for deletion Pod {ns}/{name}"),
                    )
                    .await;
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(Error::Evict { namespace: ns, name, source }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn node(ready: Option<(&str, &str)>) -> Node {
        Node {
            metadata: ObjectMeta { creation_timestamp: Some(Time(t("2026-01-01T00:00:00Z"))), ..Default::default() },
            status: ready.map(|(status, beat)| NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    last_heartbeat_time: Some(Time(t(beat))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn lease(renewed: &str) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec { renew_time: Some(MicroTime(t(renewed))), ..Default::default() }),
        }
    }

    #[test]
    fn health_follows_heartbeats() {
        let grace = SignedDuration::from_secs(40);
        let now = t("2026-01-01T01:00:00Z");
        let cases = [
            (node(Some(("True", "2026-01-01T00:59:50Z"))), None, (Health::Ready, false)),
            (node(Some(("True", "2026-01-01T00:50:00Z"))), None, (Health::Unknown, true)),
            // The Lease alone keeps a node alive.
            (node(Some(("True", "2026-01-01T00:50:00Z"))), Some(lease("2026-01-01T00:59:30Z")), (Health::Ready, false)),
            (node(Some(("False", "2026-01-01T00:59:50Z"))), None, (Health::NotReady, false)),
            (node(Some(("Unknown", "2026-01-01T00:10:00Z"))), None, (Health::Unknown, false)),
            (node(None), Some(lease("2026-01-01T00:59:59Z")), (Health::NotReady, false)),
            (node(None), None, (Health::Unknown, true)),
        ];
        for (n, l, want) in cases {
            assert_eq!(node_health(&n, l.as_ref(), now, grace), want, "{:?}", n.status);
        }
    }

    fn taint(key: &str, effect: &str, added: Option<&str>) -> Taint {
        Taint { key: key.into(), effect: effect.into(), time_added: added.map(|a| Time(t(a))), value: None }
    }

    #[test]
    fn taints_follow_health_and_keep_their_time() {
        let now = t("2026-01-01T01:00:00Z");
        let user = taint("spray", "NoSchedule", None);
        assert_eq!(wanted_taints(std::slice::from_ref(&user), Health::Ready, now), vec![user.clone()]);
        let got = wanted_taints(std::slice::from_ref(&user), Health::Unknown, now);
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], taint(UNREACHABLE, "NoExecute", Some("2026-01-01T01:00:00Z")));
        let earlier = taint(UNREACHABLE, "NoExecute", Some("2026-01-01T00:30:00Z"));
        let again = wanted_taints(
            &[user.clone(), taint(UNREACHABLE, "NoSchedule", None), earlier.clone()],
            Health::Unknown,
            now,
        );
        assert_eq!(again[2], earlier, "timeAdded is kept");
        let flipped = wanted_taints(&again, Health::NotReady, now);
        assert!(flipped.iter().all(|t| t.key != UNREACHABLE) && flipped.iter().any(|t| t.key == NOT_READY));
        assert_eq!(wanted_taints(&flipped, Health::Ready, now), vec![user]);
    }

    fn toleration(key: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            value: None,
        }
    }

    #[test]
    fn eviction_deadlines() {
        let now = t("2026-01-01T01:00:00Z");
        let unreachable = [taint(UNREACHABLE, "NoExecute", Some("2026-01-01T00:59:00Z"))];
        let cases = [
            (vec![], Eviction::Now),
            (vec![toleration(UNREACHABLE, Some(300))], Eviction::At(t("2026-01-01T01:04:00Z"))),
            (vec![toleration(UNREACHABLE, Some(30))], Eviction::Now),
            (vec![toleration(UNREACHABLE, None)], Eviction::Never),
            (vec![toleration(NOT_READY, Some(300))], Eviction::Now),
            (vec![Toleration { operator: Some("Exists".into()), ..Default::default() }], Eviction::Never),
        ];
        for (tols, want) in cases {
            assert_eq!(eviction(&tols, &unreachable, now), want, "{tols:?}");
        }
        assert_eq!(eviction(&[], &[taint("x", "NoSchedule", None)], now), Eviction::Never);
    }
}
