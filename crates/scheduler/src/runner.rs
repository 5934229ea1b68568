//! The loop around the decision: watch pods, nodes and the objects default spreading
//! needs through kube-rs, keep the [`Snapshot`] and the [`Queue`] current, schedule one
//! pod at a time, and carry out the effects — binding, events, the `PodScheduled`
//! condition — in tasks of their own so the loop never waits on the API.
//!
//! One task owns the snapshot, so watch events and decisions interleave without locks;
//! watch events are handled first (`biased`), so every decision sees everything the
//! API had already told us.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Binding, Namespace, Node, ObjectReference, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use rkube_controllers::events::Recorder;
use rkube_controllers::slim::Slim;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use crate::framework::schedule;
use crate::labels::Selector;
use crate::node_info::NodeSpec;
use crate::pod_info::{PodInfo, ScheduledCondition};
use crate::queue::Queue;
use crate::snapshot::{NodeChange, OwnerKind, Snapshot};

/// Bindings in flight at once: enough to keep the API server's write path busy
/// without letting a burst of pods open thousands of requests.
const MAX_IN_FLIGHT: usize = 128;

/// A watch event, after relists are turned into the adds and deletes they imply.
enum Change<K> {
    Apply(K),
    Delete { namespace: Option<String>, name: String },
}

/// Turns `watcher` events into [`Change`]s: objects missing from a relist are deleted.
struct Mirror<K> {
    known: HashMap<String, (Option<String>, String)>,
    relist: Option<Vec<K>>,
    synced: bool,
}

fn key_of<K: Resource>(o: &K) -> (String, Option<String>, String) {
    let ns = o.meta().namespace.clone();
    let name = o.meta().name.clone().unwrap_or_default();
    (format!("{}/{}", ns.as_deref().unwrap_or(""), name), ns, name)
}

impl<K: Resource> Mirror<K> {
    fn new() -> Mirror<K> {
        Mirror { known: HashMap::new(), relist: None, synced: false }
    }

    fn handle(&mut self, ev: Event<K>) -> Vec<Change<K>> {
        match ev {
            Event::Apply(o) => {
                let (k, ns, name) = key_of(&o);
                self.known.insert(k, (ns, name));
                vec![Change::Apply(o)]
            }
            Event::Delete(o) => {
                let (k, namespace, name) = key_of(&o);
                self.known.remove(&k);
                vec![Change::Delete { namespace, name }]
            }
            Event::Init => {
                self.relist = Some(Vec::new());
                Vec::new()
            }
            Event::InitApply(o) => {
                self.relist.get_or_insert_with(Vec::new).push(o);
                Vec::new()
            }
            Event::InitDone => {
                self.synced = true;
                let listed = self.relist.take().unwrap_or_default();
                let keep: HashSet<String> = listed.iter().map(|o| key_of(o).0).collect();
                let mut out: Vec<Change<K>> = Vec::new();
                self.known.retain(|k, (ns, name)| {
                    let stay = keep.contains(k);
                    if !stay {
                        out.push(Change::Delete { namespace: ns.clone(), name: name.clone() });
                    }
                    stay
                });
                for o in listed {
                    let (k, ns, name) = key_of(&o);
                    self.known.insert(k, (ns, name));
                    out.push(Change::Apply(o));
                }
                out
            }
        }
    }
}

/// How a binding attempt ended.
struct Bound {
    pod: Arc<PodInfo>,
    node: String,
    result: Result<(), kube::Error>,
}

fn pod_ref(pod: &PodInfo) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(pod.name.clone()),
        namespace: Some(pod.namespace.clone()),
        uid: Some(pod.uid.clone()).filter(|u| !u.is_empty()),
        ..Default::default()
    }
}

struct Scheduler {
    client: Client,
    recorder: Recorder,
    snap: Snapshot,
    queue: Queue,
    bound_tx: mpsc::UnboundedSender<Bound>,
    in_flight: usize,
    /// The `PodScheduled` message last written per pod, so a repeat failure with the
    /// same message writes nothing even before the watch shows our own update.
    written: HashMap<String, String>,
}

/// Watches, schedules and binds until the task is aborted (leadership lost).
pub async fn schedule_pods(client: Client) {
    let (bound_tx, mut bound_rx) = mpsc::unbounded_channel();
    let mut s = Scheduler {
        recorder: Recorder::new(client.clone(), crate::SCHEDULER_NAME),
        client: client.clone(),
        snap: Snapshot::new(),
        queue: Queue::new(),
        bound_tx,
        in_flight: 0,
        written: HashMap::new(),
    };
    // Finished pods hold nothing: upstream's informer leaves them out the same way.
    let pod_cfg = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    // Decoded without managed fields: the scheduler reads none, and they are the most
    // expensive part of a pod to decode.
    let mut pods = watch(Api::<Slim<Pod>>::all(client.clone()), pod_cfg);
    let mut nodes = watch(Api::<Node>::all(client.clone()), watcher::Config::default());
    let mut namespaces = watch(Api::<Namespace>::all(client.clone()), watcher::Config::default());
    let mut services = watch(Api::<Service>::all(client.clone()), watcher::Config::default());
    let mut replicasets = watch(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default());
    let mut statefulsets = watch(Api::<StatefulSet>::all(client.clone()), watcher::Config::default());
    let (mut m_pods, mut m_nodes, mut m_ns, mut m_svc, mut m_rs, mut m_ss) =
        (Mirror::new(), Mirror::new(), Mirror::new(), Mirror::new(), Mirror::new(), Mirror::new());
    let mut announced = false;
    loop {
        let synced = m_pods.synced && m_nodes.synced && m_ns.synced && m_svc.synced && m_rs.synced && m_ss.synced;
        if synced && !announced {
            announced = true;
            tracing::info!(nodes = s.snap.nodes().len(), pending = s.queue.len(), "caches synced: scheduling");
        }
        let deadline = s.queue.next_deadline();
        let ready = synced && s.queue.has_active() && s.in_flight < MAX_IN_FLIGHT;
        tokio::select! {
            biased;
            Some(b) = bound_rx.recv() => s.on_bound(b),
            // What pods refer to first, so a pod arriving together with its node or
            // owner finds them in the snapshot.
            Some(ev) = nodes.next() => for c in m_nodes.handle(ev) { s.on_node(c) },
            Some(ev) = namespaces.next() => for c in m_ns.handle(ev) { s.on_namespace(c) },
            Some(ev) = services.next() => for c in m_svc.handle(ev) { s.on_service(c) },
            Some(ev) = replicasets.next() => {
                for c in m_rs.handle(ev) {
                    s.on_owner(OwnerKind::ReplicaSet, c, rs_selector)
                }
            }
            Some(ev) = statefulsets.next() => {
                for c in m_ss.handle(ev) {
                    s.on_owner(OwnerKind::StatefulSet, c, ss_selector)
                }
            }
            Some(ev) = pods.next() => for c in m_pods.handle(ev) { s.on_pod(c) },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))),
                if deadline.is_some() => s.queue.flush(Instant::now()),
            _ = std::future::ready(()), if ready => s.schedule_one(),
        }
    }
}

fn rs_selector(rs: &ReplicaSet) -> Selector {
    Selector::from_label_selector(rs.spec.as_ref().map(|s| &s.selector))
}

fn ss_selector(ss: &StatefulSet) -> Selector {
    Selector::from_label_selector(ss.spec.as_ref().map(|s| &s.selector))
}

/// A watch whose errors are logged and retried with backoff, never ending the stream.
fn watch<K>(api: Api<K>, cfg: watcher::Config) -> impl Stream<Item = Event<K>> + Unpin + Send
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&Default::default()).to_string();
    Box::pin(watcher::watcher(api, cfg).default_backoff().filter_map(move |r| {
        let kind = kind.clone();
        async move {
            match r {
                Ok(ev) => Some(ev),
                Err(e) => {
                    tracing::warn!(%kind, error = %e, "watch failed; retrying");
                    None
                }
            }
        }
    }))
}

impl Scheduler {
    fn on_pod(&mut self, c: Change<Slim<Pod>>) {
        let now = Instant::now();
        let pod = match c {
            Change::Apply(Slim(p)) => p,
            Change::Delete { namespace, name } => {
                let ns = namespace.unwrap_or_default();
                self.pod_gone(&ns, &name, now);
                return;
            }
        };
        let info = Arc::new(PodInfo::from_pod(&pod));
        let key = info.key();
        if info.terminal {
            self.pod_gone(&info.namespace, &info.name, now);
            return;
        }
        if !info.node_name.is_empty() {
            let affinity_changes = info.has_affinity() || !info.labels.is_empty();
            self.snap.upsert_pod(info);
            self.queue.remove(&key);
            self.written.remove(&key);
            // A pod landing somewhere can only help pods that want to be near it or
            // spread against it; resources only get scarcer.
            if affinity_changes && self.queue.unschedulable_len() > 0 {
                self.queue.move_unschedulable(now, |p| {
                    !p.required_affinity.is_empty() || p.spread_constraints.iter().any(|c| c.hard)
                });
            }
            return;
        }
        if let Some(m) = self.written.get(&key)
            && info.condition.as_ref().is_some_and(|c| c.message == *m)
        {
            // Our condition is visible now; from here on the pod's own copy is the truth.
            self.written.remove(&key);
        }
        if self.snap.is_assumed(&info) {
            // Our binding is in flight or not reflected yet: this copy predates it.
            return;
        }
        if let Some(uid) = self.snap.placed_uid(&key)
            && uid != info.uid
        {
            // Same name, new pod: the old one is gone (its delete fell in a relist gap).
            self.snap.remove_pod(&info.namespace, &info.name);
        }
        if info.wants_scheduling() && !info.gated {
            self.queue.add(info, now);
        } else {
            self.queue.remove(&key);
        }
    }

    fn pod_gone(&mut self, namespace: &str, name: &str, now: Instant) {
        let key = format!("{namespace}/{name}");
        self.queue.remove(&key);
        self.written.remove(&key);
        if self.snap.remove_pod(namespace, name).is_some() {
            // Freed resources, ports, or an anti-affinity that blocked others.
            self.queue.move_unschedulable(now, |_| true);
        }
    }

    fn on_node(&mut self, c: Change<Node>) {
        match c {
            Change::Apply(node) => {
                let change = self.snap.upsert_node(NodeSpec::from_node(&node));
                if change != NodeChange::Unchanged {
                    let moved = self.queue.move_unschedulable(Instant::now(), |_| true);
                    tracing::debug!(node = %node.name_any(), ?change, moved, "node changed");
                }
            }
            Change::Delete { name, .. } => self.snap.remove_node(&name),
        }
    }

    fn on_namespace(&mut self, c: Change<Namespace>) {
        match c {
            Change::Apply(ns) => {
                if self.snap.upsert_namespace(&ns.name_any(), ns.labels().clone()) {
                    self.queue.move_unschedulable(Instant::now(), PodInfo::has_affinity);
                }
            }
            Change::Delete { name, .. } => self.snap.remove_namespace(&name),
        }
    }

    fn on_service(&mut self, c: Change<Service>) {
        match c {
            Change::Apply(svc) => {
                let ns = svc.namespace().unwrap_or_default();
                let selector = svc.spec.as_ref().and_then(|s| s.selector.clone());
                self.snap.upsert_service(&ns, &svc.name_any(), selector);
            }
            Change::Delete { namespace, name } => self.snap.remove_service(&namespace.unwrap_or_default(), &name),
        }
    }

    fn on_owner<K: Resource + ResourceExt>(
        &mut self,
        kind: OwnerKind,
        c: Change<K>,
        selector: impl Fn(&K) -> Selector,
    ) {
        match c {
            Change::Apply(o) => {
                self.snap.upsert_owner(kind, &o.namespace().unwrap_or_default(), &o.name_any(), selector(&o))
            }
            Change::Delete { namespace, name } => self.snap.remove_owner(kind, &namespace.unwrap_or_default(), &name),
        }
    }

    fn schedule_one(&mut self) {
        let Some(pod) = self.queue.pop() else { return };
        let key = pod.key();
        let span = tracing::info_span!("schedule", namespace = %pod.namespace, pod = %pod.name);
        let _entered = span.enter();
        let now = Instant::now();
        self.snap.warm(&pod);
        match schedule(&pod, &self.snap) {
            Ok(placement) => {
                tracing::debug!(node = %placement.node, evaluated = placement.evaluated, "placed");
                self.snap.advance(placement.evaluated);
                self.snap.assume(&pod, &placement.node);
                self.in_flight += 1;
                let task = bind(self.client.clone(), self.recorder.clone(), pod, placement.node, self.bound_tx.clone());
                tokio::spawn(task.instrument(span.clone()));
            }
            Err(e) => {
                let message = e.to_string();
                tracing::info!(%message, "unschedulable");
                self.queue.unschedulable(&key, now);
                let wanted = ScheduledCondition {
                    status: "False".into(),
                    reason: "Unschedulable".into(),
                    message: message.clone(),
                };
                let write = pod.condition.as_ref() != Some(&wanted) && self.written.get(&key) != Some(&message);
                if write {
                    self.written.insert(key, message.clone());
                }
                let task = report_unschedulable(self.client.clone(), self.recorder.clone(), pod, message, write);
                tokio::spawn(task.instrument(span.clone()));
            }
        }
    }

    fn on_bound(&mut self, b: Bound) {
        self.in_flight -= 1;
        let key = b.pod.key();
        match b.result {
            // The snapshot keeps the pod assumed until the watch shows it bound.
            Ok(()) => self.queue.done(&key),
            Err(e) => {
                let _span = tracing::info_span!("bind", namespace = %b.pod.namespace, pod = %b.pod.name).entered();
                tracing::warn!(node = %b.node, error = %e, "binding failed");
                self.snap.forget(&b.pod);
                let now = Instant::now();
                self.queue.error(&key, now);
                // What it held on the node is free again.
                self.queue.move_unschedulable(now, |_| true);
                // Upstream reports the API's own words (e.g. "pod x is already assigned to node y").
                let note = match &e {
                    kube::Error::Api(status) => status.message.clone(),
                    other => other.to_string(),
                };
                let (recorder, pod) = (self.recorder.clone(), b.pod);
                tokio::spawn(async move {
                    recorder.warning(&pod_ref(&pod), "FailedScheduling", "Scheduling", note).await;
                });
            }
        }
    }
}

/// POSTs the Binding, reports back, then records the `Scheduled` event.
async fn bind(client: Client, recorder: Recorder, pod: Arc<PodInfo>, node: String, done: mpsc::UnboundedSender<Bound>) {
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()).filter(|u| !u.is_empty()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.clone()),
            ..Default::default()
        },
    };
    let result = api
        .create_subresource::<_, serde_json::Value>("binding", &pod.name, &PostParams::default(), &binding)
        .await
        .map(|_| ());
    let ok = result.is_ok();
    let _ = done.send(Bound { pod: pod.clone(), node: node.clone(), result });
    if ok {
        tracing::debug!(%node, "bound");
        let note = format!("Successfully assigned {}/{} to {node}", pod.namespace, pod.name);
        recorder.normal(&pod_ref(&pod), "Scheduled", "Binding", note).await;
    }
}

/// The `FailedScheduling` event, and the `PodScheduled=False` condition when it changes.
async fn report_unschedulable(client: Client, recorder: Recorder, pod: Arc<PodInfo>, message: String, write: bool) {
    recorder.warning(&pod_ref(&pod), "FailedScheduling", "Scheduling", message.clone()).await;
    if !write {
        return;
    }
    let mut condition = json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
    });
    // The transition time moves only when the status does (upstream's UpdatePodCondition).
    if pod.condition.as_ref().is_none_or(|c| c.status != "False") {
        condition["lastTransitionTime"] = serde_json::to_value(Time(jiff::Timestamp::now())).unwrap_or_default();
    }
    let patch = json!({"status": {"conditions": [condition]}});
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace);
    if let Err(e) = api.patch_status(&pod.name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
        tracing::warn!(error = %e, "could not set the PodScheduled condition");
    }
}
