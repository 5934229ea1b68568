//! The ReplicaSet controller (upstream's `pkg/controller/replicaset`): keeps
//! `spec.replicas` active pods matching the selector. It adopts matching orphans and
//! releases owned pods that stopped matching (ownerReferences), creates missing pods
//! from the template (in slow-start batches of 1, 2, 4, …), deletes extra ones in
//! upstream's order (unscheduled, pending, not ready, … first) and reports
//! `replicas`, `fullyLabeledReplicas`, `readyReplicas`, `availableReplicas`,
//! `observedGeneration` and the `ReplicaFailure` condition.
//!
//! One pod watch feeds both the pod cache the reconciler reads and the triggers: a pod
//! event wakes its controlling ReplicaSet, or every ReplicaSet that selects it if it
//! is an orphan. Because the cache lags our own writes, a ReplicaSet waits until the
//! cache has seen the pods it created and deleted ([`Expectations`], as upstream)
//! before it counts again; otherwise a quick second reconcile would create twice.
//!
//! [`plan_replicaset`] is the whole decision as a pure function of the ReplicaSet, the
//! pods and the time.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::{BoxFuture, join_all};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::Instrument;

use crate::Context;
use crate::events::Recorder;
use crate::informer::{Cache, Change};
use crate::workload::{
    api_now, available_since, controller_of, controller_ref, event_action, is_pod_active, is_pod_available,
    is_pod_ready, ready_condition, selector_matches,
};
use crate::workqueue::Backoffs;

/// At most this many pods are created or deleted per sync (upstream's `BurstReplicas`).
const BURST_REPLICAS: usize = 500;
/// Expectations older than this are given up on (upstream's `ExpectationsTimeout`): a
/// lost watch event must not freeze a ReplicaSet forever.
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);
const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("replica set {rs}: cannot {action} pod {pod}: {source}")]
    Pod { rs: String, pod: String, action: &'static str, source: Box<kube::Error> },
    #[error("replica set {rs}: cannot read it again before adopting pods: {source}")]
    Recheck { rs: String, source: Box<kube::Error> },
    #[error("replica set {rs} was replaced (uid {got}, wanted {want}): not adopting pods for it")]
    Gone { rs: String, got: String, want: String },
    #[error("replica set {rs}: cannot update its status: {source}")]
    Status { rs: String, source: Box<kube::Error> },
    #[error("replica set {rs}: {message}")]
    Manage { rs: String, message: String },
}

impl Error {
    fn is_conflict(&self) -> bool {
        let source = match self {
            Error::Pod { source, .. } | Error::Status { source, .. } => source,
            _ => return false,
        };
        matches!(source.as_ref(), kube::Error::Api(s) if s.is_conflict())
    }
}

/// Creations and deletions a ReplicaSet has made that the pod cache has not shown yet
/// (upstream's `ControllerExpectations`). Creations are counted (a pod's name is only
/// known once it exists); deletions are tracked by pod name.
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Expect>>,
}

struct Expect {
    creations: i64,
    deletions: HashSet<String>,
    since: Instant,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Expect>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the cache has caught up with everything `key` did (or it took too long).
    pub fn satisfied(&self, key: &str) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(e) => (e.creations <= 0 && e.deletions.is_empty()) || e.since.elapsed() > EXPECTATIONS_TIMEOUT,
        }
    }

    pub fn expect_creations(&self, key: &str, n: usize) {
        let creations = i64::try_from(n).unwrap_or(i64::MAX);
        self.set(key, Expect { creations, deletions: HashSet::new(), since: Instant::now() });
    }

    pub fn expect_deletions(&self, key: &str, pods: &[String]) {
        let deletions = pods.iter().cloned().collect();
        self.set(key, Expect { creations: 0, deletions, since: Instant::now() });
    }

    fn set(&self, key: &str, e: Expect) {
        let mut all = self.lock();
        // Entries of ReplicaSets deleted meanwhile are never read again: drop the old ones.
        all.retain(|_, e| e.since.elapsed() <= EXPECTATIONS_TIMEOUT);
        all.insert(key.into(), e);
    }

    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.creations -= 1;
        }
    }

    pub fn deletion_observed(&self, key: &str, pod: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.deletions.remove(pod);
        }
    }
}

/// Watches the pod stream (after the cache has applied each event) and tells
/// [`Expectations`] about pods that appeared or went away.
struct PodObserver {
    expectations: Arc<Expectations>,
    /// By uid.
    known: HashMap<String, Known>,
    relist: Option<HashMap<String, Known>>,
}

/// What the observer remembers of a pod.
struct Known {
    /// The controlling ReplicaSet's `namespace/name`.
    owner: Option<String>,
    name: String,
    deleting: bool,
}

impl PodObserver {
    fn new(expectations: Arc<Expectations>) -> PodObserver {
        PodObserver { expectations, known: HashMap::new(), relist: None }
    }

    fn observe(&mut self, event: &Change<Pod>) {
        match event {
            watcher::Event::Apply(pod) => {
                if let Some((uid, entry)) = self.seen(pod) {
                    self.known.insert(uid, entry);
                }
            }
            watcher::Event::InitApply(pod) => {
                if let Some((uid, entry)) = self.seen(pod) {
                    self.relist.get_or_insert_with(HashMap::new).insert(uid, entry);
                }
            }
            watcher::Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                self.known.remove(&uid);
                if let Some(key) = owner_key(pod) {
                    self.expectations.deletion_observed(&key, &pod.name_any());
                }
            }
            watcher::Event::Init => self.relist = Some(HashMap::new()),
            watcher::Event::InitDone => {
                let fresh = self.relist.take().unwrap_or_default();
                // Pods that vanished while the watch was down: their deletions happened.
                for (uid, k) in &self.known {
                    if !fresh.contains_key(uid)
                        && let Some(key) = &k.owner
                    {
                        self.expectations.deletion_observed(key, &k.name);
                    }
                }
                self.known = fresh;
            }
        }
    }

    /// Notes a pod seen alive; returns what to remember of it.
    fn seen(&self, pod: &Pod) -> Option<(String, Known)> {
        let uid = pod.metadata.uid.clone()?;
        let key = owner_key(pod);
        let name = pod.name_any();
        let deleting = pod.metadata.deletion_timestamp.is_some();
        if let Some(key) = &key {
            match self.known.get(&uid) {
                // A pod first seen already terminating is no creation of ours (upstream).
                None if deleting => self.expectations.deletion_observed(key, &name),
                None => self.expectations.creation_observed(key),
                Some(k) if deleting && !k.deleting => self.expectations.deletion_observed(key, &name),
                Some(_) => {}
            }
        }
        Some((uid, Known { owner: key, name, deleting }))
    }
}

/// `namespace/name` of the ReplicaSet controlling `pod`.
fn owner_key(pod: &Pod) -> Option<String> {
    let owner = controller_of(&pod.metadata).filter(|r| is_replicaset_ref(&r.api_version, &r.kind))?;
    Some(format!("{}/{}", pod.namespace().unwrap_or_default(), owner.name))
}

fn is_replicaset_ref(api_version: &str, kind: &str) -> bool {
    kind == "ReplicaSet" && api_version.split('/').next() == Some("apps")
}

/// The ReplicaSets a pod event concerns: its controller, or, for an orphan, every
/// ReplicaSet that selects it (one of them will adopt it).
fn replicasets_for(rses: &Store<ReplicaSet>, pod: &Pod) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&pod.metadata) {
        if is_replicaset_ref(&owner.api_version, &owner.kind) {
            return vec![ObjectRef::new(&owner.name).within(&ns)];
        }
        return Vec::new();
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    rses.state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
        .filter(|rs| selector_matches(rs.spec.as_ref().map(|s| &s.selector), pod.metadata.labels.as_ref()))
        .map(|rs| ObjectRef::from(rs.as_ref()))
        .collect()
}

/// Which pods a ReplicaSet keeps, adopts and releases (upstream's
/// `ControllerRefManager.ClaimPods`), among the active pods of its namespace.
#[derive(Debug, Default)]
pub struct Claim<'a> {
    pub owned: Vec<&'a Pod>,
    pub adopt: Vec<&'a Pod>,
    pub release: Vec<&'a Pod>,
}

pub fn claim<'a>(rs: &ReplicaSet, pods: &[&'a Pod]) -> Claim<'a> {
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let selector = rs.spec.as_ref().map(|s| &s.selector);
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut out = Claim::default();
    for pod in pods {
        let matches = selector_matches(selector, pod.metadata.labels.as_ref());
        match controller_of(&pod.metadata) {
            Some(owner) if owner.uid != uid => {}
            Some(_) if matches => out.owned.push(pod),
            Some(_) if !deleting => out.release.push(pod),
            Some(_) => {}
            None if matches && !deleting && pod.metadata.deletion_timestamp.is_none() => out.adopt.push(pod),
            None => {}
        }
    }
    out
}

/// What a sync does about the number of pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manage {
    Nothing,
    Create(usize),
    /// Pod names, the first to go first.
    Delete(Vec<String>),
}

/// Create or delete to reach `spec.replicas`, at most [`BURST_REPLICAS`] at once.
/// `related` are the active pods of every ReplicaSet of the same owner, for upstream's
/// "doubled up on a node" rank.
pub fn manage(rs: &ReplicaSet, claimed: &[&Pod], related: &[&Pod], now: Timestamp) -> Manage {
    let want = usize::try_from(replicas_of(rs)).unwrap_or(0);
    if claimed.len() < want {
        Manage::Create((want - claimed.len()).min(BURST_REPLICAS))
    } else if claimed.len() > want {
        Manage::Delete(pods_to_delete(claimed, related, (claimed.len() - want).min(BURST_REPLICAS), now))
    } else {
        Manage::Nothing
    }
}

fn replicas_of(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0)
}

/// The `n` pods to delete first, in upstream's order (`ActivePodsWithRanks`):
/// unscheduled before scheduled; Pending, Unknown, then Running; not ready before ready;
/// lower `pod-deletion-cost` first; more colocated sibling pods first; ready more
/// recently first; more restarts first; created more recently first. Times compare in
/// logarithmic buckets of age (upstream's LogarithmicScaleDown), then by uid, so pods of
/// about the same age go in a random but stable order.
pub fn pods_to_delete(pods: &[&Pod], related: &[&Pod], n: usize, now: Timestamp) -> Vec<String> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_pod_active(p)) {
        *on_node.entry(node_of(p)).or_default() += 1;
    }
    let mut ranked: Vec<(DeleteKey, &Pod)> =
        pods.iter().map(|p| (delete_key(p, on_node.get(node_of(p)).copied().unwrap_or(0), now), *p)).collect();
    ranked.sort_by(|a, b| a.0.cmp(&b.0));
    ranked.into_iter().take(n).map(|(_, p)| p.name_any()).collect()
}

type DeleteKey = (bool, u8, bool, i32, Reverse<usize>, (bool, i64), Reverse<i32>, (bool, i64), String);

fn delete_key(pod: &Pod, colocated: usize, now: Timestamp) -> DeleteKey {
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    let ready = is_pod_ready(pod);
    let cost = pod.annotations().get(DELETION_COST).and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
    let ready_since =
        if ready { ready_condition(pod).and_then(|c| c.last_transition_time.as_ref()).map(|t| t.0) } else { None };
    let restarts =
        status.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten().map(|c| c.restart_count).max();
    (
        !node_of(pod).is_empty(),
        phase,
        ready,
        cost,
        Reverse(colocated),
        age_bucket(ready_since, now),
        Reverse(restarts.unwrap_or(0)),
        age_bucket(pod.metadata.creation_timestamp.as_ref().map(|t| t.0), now),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

/// Missing times first, then younger first, by ⌊log2(age in ns)⌋.
fn age_bucket(t: Option<Timestamp>, now: Timestamp) -> (bool, i64) {
    let Some(t) = t else { return (false, 0) };
    let ns = now.duration_since(t).as_nanos();
    (true, if ns > 0 { i64::from(127 - ns.leading_zeros()) } else { -1 })
}

fn node_of(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

/// The status of a ReplicaSet given the pods it owns (upstream's `calculateStatus`):
/// counts, and ReplicaFailure while creating or deleting fails.
pub fn calculate_status(
    rs: &ReplicaSet,
    claimed: &[&Pod],
    manage_error: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone());
    let fully_labeled =
        claimed.iter().filter(|p| template_labels.iter().flatten().all(|(k, v)| p.labels().get(k) == Some(v))).count();
    let ready = claimed.iter().filter(|p| is_pod_ready(p)).count();
    let available = claimed.iter().filter(|p| is_pod_available(p, min_ready, now)).count();
    let current = rs.status.clone().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = current.conditions.clone().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match manage_error {
        Some(message) if !has_failure => {
            let want = usize::try_from(replicas_of(rs)).unwrap_or(0);
            let reason = match claimed.len().cmp(&want) {
                std::cmp::Ordering::Less => "FailedCreate",
                std::cmp::Ordering::Greater => "FailedDelete",
                std::cmp::Ordering::Equal => "",
            };
            conditions.push(ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_transition_time: Some(Time(api_now(now))),
            });
        }
        None if has_failure => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    let count = |n: usize| Some(i32::try_from(n).unwrap_or(i32::MAX)).filter(|n| *n != 0);
    ReplicaSetStatus {
        replicas: i32::try_from(claimed.len()).unwrap_or(i32::MAX),
        fully_labeled_replicas: count(fully_labeled),
        ready_replicas: count(ready),
        available_replicas: count(available),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: None,
    }
}

/// When the next ready pod becomes available (minReadySeconds after it turned ready), so
/// `availableReplicas` is recounted then.
pub fn next_availability(rs: &ReplicaSet, claimed: &[&Pod], now: Timestamp) -> Option<Duration> {
    let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    if min_ready <= 0 {
        return None;
    }
    claimed
        .iter()
        .filter_map(|p| available_since(p, min_ready).flatten())
        .filter(|at| *at >= now)
        .min()
        .map(|at| Duration::try_from(at.duration_since(now)).unwrap_or_default() + Duration::from_millis(500))
}

/// Everything one sync decides, assuming adoptions succeed and the cache is current.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub adopt: Vec<String>,
    pub release: Vec<String>,
    pub manage: Manage,
    pub status: ReplicaSetStatus,
}

pub fn plan_replicaset(rs: &ReplicaSet, pods: &[&Pod], now: Timestamp) -> Plan {
    let active: Vec<&Pod> = pods.iter().copied().filter(|p| is_pod_active(p)).collect();
    let c = claim(rs, &active);
    let claimed: Vec<&Pod> = c.owned.iter().chain(&c.adopt).copied().collect();
    let manage =
        if rs.metadata.deletion_timestamp.is_some() { Manage::Nothing } else { manage(rs, &claimed, &claimed, now) };
    Plan {
        adopt: c.adopt.iter().map(|p| p.name_any()).collect(),
        release: c.release.iter().map(|p| p.name_any()).collect(),
        manage,
        status: calculate_status(rs, &claimed, None, now),
    }
}

/// The pod a ReplicaSet creates (upstream's `GetPodFromTemplate`): the template's labels,
/// annotations, finalizers and spec, a generated `<rs>-xxxxx` name and a controller
/// reference.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref("apps/v1", "ReplicaSet", &rs.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

struct State {
    client: kube::Client,
    pods: Cache<Pod>,
    rses: Store<ReplicaSet>,
    expectations: Arc<Expectations>,
    recorder: Recorder,
    backoff: Backoffs<String>,
}

/// Runs the ReplicaSet controller until aborted.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let client = ctx.client.clone();
        let pods = ctx.pods.cache();
        let expectations = Arc::new(Expectations::default());
        let mut observer = PodObserver::new(expectations.clone());
        let controller = Controller::new(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default());
        let rses = controller.store();
        let owners = rses.clone();
        let pod_triggers = ctx.pods.subscribe().flat_map(move |event| {
            observer.observe(&event);
            let rses = match &event {
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) | watcher::Event::Delete(pod) => {
                    replicasets_for(&owners, pod)
                }
                watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
            };
            futures::stream::iter(rses)
        });
        let state = Arc::new(State {
            recorder: Recorder::new(client.clone(), "replicaset-controller"),
            client,
            pods,
            rses: rses.clone(),
            expectations,
            backoff: Backoffs::new(Duration::from_millis(200), Duration::from_secs(60)),
        });
        controller
            .reconcile_on(pod_triggers)
            .run(reconcile, error_policy, state)
            .for_each(|_| futures::future::ready(()))
            .await;
    })
}

fn error_policy(rs: Arc<ReplicaSet>, error: &Error, st: Arc<State>) -> Action {
    let key = format!("{}/{}", rs.namespace().unwrap_or_default(), rs.name_any());
    let delay = st.backoff.next(&key);
    if error.is_conflict() {
        // Another writer got there first (our cache was a step behind): routine.
        tracing::debug!(%error, retry_in = ?delay, "replica set changed meanwhile; syncing again");
    } else {
        tracing::warn!(%error, retry_in = ?delay, "replica set sync failed");
    }
    Action::requeue(delay)
}

async fn reconcile(rs: Arc<ReplicaSet>, st: Arc<State>) -> Result<Action, Error> {
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let span = tracing::info_span!("replicaset", namespace = %ns, name = %name);
    let key = format!("{ns}/{name}");
    let action = sync(&rs, &st, &ns, &key).instrument(span).await?;
    st.backoff.reset(&key);
    Ok(action)
}

async fn sync(rs: &ReplicaSet, st: &State, ns: &str, key: &str) -> Result<Action, Error> {
    // Counting against a cache that has not finished its first list would create pods
    // that already exist.
    st.pods.wait_until_ready().await;
    let now = Timestamp::now();
    let rs_uid = rs.metadata.uid.clone().unwrap_or_default();
    // The only pods it may claim: its own and the namespace's orphans (upstream's
    // getRSPods, through the controller-uid index), not every pod of the namespace; of
    // the orphans, only those it would adopt.
    let selector = rs.spec.as_ref().map(|s| &s.selector);
    let pods: Vec<Arc<Pod>> = st
        .pods
        .controlled_by(&rs_uid)
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .chain(st.pods.orphans_in(ns, |p| selector_matches(selector, p.metadata.labels.as_ref())))
        .collect();
    let active: Vec<&Pod> = pods.iter().map(AsRef::as_ref).filter(|p| is_pod_active(p)).collect();
    let c = claim(rs, &active);
    let pod_api: Api<Pod> = Api::namespaced(st.client.clone(), ns);

    for pod in &c.release {
        let patch = json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": rs_uid}], "uid": pod.uid()}});
        match pod_api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
            Ok(_) => tracing::info!(pod = %pod.name_any(), "released a pod that no longer matches the selector"),
            Err(kube::Error::Api(s)) if s.is_not_found() || s.is_invalid() => {}
            Err(e) => return Err(pod_error(key, pod, "release", e)),
        }
    }

    let mut adopted: Vec<Pod> = Vec::new();
    if !c.adopt.is_empty() {
        // Upstream's canAdopt: read the ReplicaSet afresh, so one deleted (or deleted and
        // recreated under the same name) since the cache saw it adopts nothing.
        let api: Api<ReplicaSet> = Api::namespaced(st.client.clone(), ns);
        let fresh =
            api.get(&rs.name_any()).await.map_err(|e| Error::Recheck { rs: key.into(), source: Box::new(e) })?;
        let got = fresh.metadata.uid.clone().unwrap_or_default();
        if got != rs_uid {
            return Err(Error::Gone { rs: key.into(), got, want: rs_uid });
        }
        if fresh.metadata.deletion_timestamp.is_none() {
            let owner = controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
            for pod in &c.adopt {
                let patch = json!({"metadata": {"ownerReferences": [owner], "uid": pod.uid()}});
                match pod_api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
                    Ok(p) => {
                        tracing::info!(pod = %pod.name_any(), "adopted an orphan pod");
                        adopted.push(p);
                    }
                    Err(kube::Error::Api(s)) if s.is_not_found() => {}
                    Err(e) => return Err(pod_error(key, pod, "adopt", e)),
                }
            }
        }
    }
    let claimed: Vec<&Pod> = c.owned.iter().copied().chain(adopted.iter()).collect();

    let manage_error = if st.expectations.satisfied(key) && rs.metadata.deletion_timestamp.is_none() {
        let siblings = related_pods(st, rs, ns);
        let related: Vec<&Pod> = match &siblings {
            Some(pods) => pods.iter().map(AsRef::as_ref).collect(),
            None => claimed.clone(),
        };
        manage_replicas(st, rs, key, &pod_api, &claimed, &related, now).await.err()
    } else {
        None
    };

    let status = calculate_status(rs, &claimed, manage_error.as_deref(), now);
    if rs.status.as_ref() != Some(&status) {
        let api: Api<ReplicaSet> = Api::namespaced(st.client.clone(), ns);
        api.patch_status(&rs.name_any(), &PatchParams::default(), &Patch::Merge(status_patch(&status)))
            .await
            .map_err(|e| Error::Status { rs: key.into(), source: Box::new(e) })?;
    }
    if let Some(message) = manage_error {
        return Err(Error::Manage { rs: key.into(), message });
    }
    Ok(match next_availability(rs, &claimed, now) {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// The active pods of every ReplicaSet with the same controller as `rs` (its
/// Deployment's other revisions), for the colocation rank of deletion.
/// `None` when `rs` has no controller: then its own claimed pods are all there is.
fn related_pods(st: &State, rs: &ReplicaSet, ns: &str) -> Option<Vec<Arc<Pod>>> {
    let owner = controller_of(&rs.metadata)?;
    let siblings: HashSet<String> = st
        .rses
        .state()
        .iter()
        .filter(|r| r.namespace() == rs.namespace() && controller_of(&r.metadata).is_some_and(|o| o.uid == owner.uid))
        .filter_map(|r| r.metadata.uid.clone())
        .collect();
    let pods = siblings
        .iter()
        .flat_map(|uid| st.pods.controlled_by(uid))
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && is_pod_active(p))
        .collect();
    Some(pods)
}

/// Applies [`manage`]'s decision; the error text (for ReplicaFailure) on failure.
async fn manage_replicas(
    st: &State,
    rs: &ReplicaSet,
    key: &str,
    api: &Api<Pod>,
    claimed: &[&Pod],
    related: &[&Pod],
    now: Timestamp,
) -> Result<(), String> {
    let objref = rs.object_ref(&());
    match manage(rs, claimed, related, now) {
        Manage::Nothing => Ok(()),
        Manage::Create(n) => {
            st.expectations.expect_creations(key, n);
            let template = pod_from_template(rs);
            let pp = PostParams::default();
            let (mut left, mut batch, mut first_error) = (n, 1usize, None);
            // Slow start: a template that cannot be created fails once, not 500 times.
            while left > 0 {
                let size = batch.min(left);
                left -= size;
                let results = join_all((0..size).map(|_| api.create(&pp, &template))).await;
                let mut failed = false;
                for r in results {
                    match r {
                        Ok(pod) => {
                            tracing::info!(pod = %pod.name_any(), "created pod");
                            let note = format!("Created pod: {}", pod.name_any());
                            st.recorder.normal(&objref, "SuccessfulCreate", &event_action(&note), note).await;
                        }
                        Err(e) => {
                            st.expectations.creation_observed(key);
                            if namespace_terminating(&e) {
                                continue;
                            }
                            failed = true;
                            let note = format!("Error creating: {e}");
                            st.recorder.warning(&objref, "FailedCreate", &event_action(&note), note.clone()).await;
                            first_error.get_or_insert(e.to_string());
                        }
                    }
                }
                if failed {
                    for _ in 0..left {
                        st.expectations.creation_observed(key);
                    }
                    break;
                }
                batch = batch.saturating_mul(2);
            }
            first_error.map_or(Ok(()), Err)
        }
        Manage::Delete(names) => {
            st.expectations.expect_deletions(key, &names);
            let dp = DeleteParams::default();
            let results = join_all(names.iter().map(|n| api.delete(n, &dp))).await;
            let mut first_error = None;
            for (name, r) in names.iter().zip(results) {
                match r {
                    Ok(_) => {
                        tracing::info!(pod = %name, "deleted pod");
                        let note = format!("Deleted pod: {name}");
                        st.recorder.normal(&objref, "SuccessfulDelete", &event_action(&note), note).await;
                    }
                    Err(kube::Error::Api(s)) if s.is_not_found() => st.expectations.deletion_observed(key, name),
                    Err(e) => {
                        st.expectations.deletion_observed(key, name);
                        let note = format!("Error deleting: {e}");
                        st.recorder.warning(&objref, "FailedDelete", &event_action(&note), note).await;
                        first_error.get_or_insert(e.to_string());
                    }
                }
            }
            first_error.map_or(Ok(()), Err)
        }
    }
}

fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

fn pod_error(key: &str, pod: &Pod, action: &'static str, e: kube::Error) -> Error {
    Error::Pod { rs: key.into(), pod: pod.name_any(), action, source: Box::new(e) }
}

/// A merge patch setting exactly `status`: the fields it omits (zero counts, no
/// conditions) are removed, as upstream's omitempty fields are.
fn status_patch(status: &ReplicaSetStatus) -> Value {
    let mut v = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let Some(m) = v.as_object_mut() {
        for f in ["fullyLabeledReplicas", "readyReplicas", "availableReplicas", "conditions", "terminatingReplicas"] {
            m.entry(f).or_insert(Value::Null);
        }
    }
    json!({ "status": v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
    use std::collections::BTreeMap;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn labels(app: &str) -> Option<BTreeMap<String, String>> {
        Some(BTreeMap::from([("app".to_string(), app.to_string())]))
    }

    fn replicaset(replicas: i32, min_ready: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("rs-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: Some(min_ready),
                selector: LabelSelector { match_labels: labels("web"), ..Default::default() },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: labels("web"), ..Default::default() }),
                    spec: Some(PodSpec::default()),
                }),
            }),
            status: None,
        }
    }

    /// A pod of the ReplicaSet (or an orphan, or someone else's), created at `t(created)`.
    struct P {
        name: &'static str,
        owner: Option<&'static str>,
        app: &'static str,
        node: &'static str,
        phase: &'static str,
        ready_at: Option<i64>,
        created: i64,
        restarts: i32,
        deleting: bool,
    }

    impl P {
        fn new(name: &'static str) -> P {
            P {
                name,
                owner: Some("rs-uid"),
                app: "web",
                node: "",
                phase: "Pending",
                ready_at: None,
                created: 0,
                restarts: 0,
                deleting: false,
            }
        }

        fn pod(&self) -> Pod {
            Pod {
                metadata: ObjectMeta {
                    name: Some(self.name.into()),
                    namespace: Some("default".into()),
                    uid: Some(format!("uid-{}", self.name)),
                    labels: labels(self.app),
                    creation_timestamp: Some(Time(t(self.created))),
                    deletion_timestamp: self.deleting.then(|| Time(t(0))),
                    owner_references: self.owner.map(|uid| {
                        vec![OwnerReference {
                            api_version: "apps/v1".into(),
                            kind: "ReplicaSet".into(),
                            name: "web".into(),
                            uid: uid.into(),
                            controller: Some(true),
                            block_owner_deletion: Some(true),
                        }]
                    }),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    node_name: (!self.node.is_empty()).then(|| self.node.into()),
                    ..Default::default()
                }),
                status: Some(PodStatus {
                    phase: Some(self.phase.into()),
                    conditions: self.ready_at.map(|at| {
                        vec![PodCondition {
                            type_: "Ready".into(),
                            status: "True".into(),
                            last_transition_time: Some(Time(t(at))),
                            ..Default::default()
                        }]
                    }),
                    container_statuses: Some(vec![ContainerStatus {
                        restart_count: self.restarts,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            }
        }
    }

    fn running(name: &'static str, ready_at: i64) -> P {
        P { node: "n1", phase: "Running", ready_at: Some(ready_at), ..P::new(name) }
    }

    #[test]
    fn plans_create_delete_adopt_release() {
        let now = t(1000);
        struct Case {
            what: &'static str,
            replicas: i32,
            pods: Vec<P>,
            adopt: Vec<&'static str>,
            release: Vec<&'static str>,
            manage: Manage,
        }
        let case = |what, replicas, pods, adopt, release, manage| Case { what, replicas, pods, adopt, release, manage };
        let cases = vec![
            case("creates the missing pods", 3, vec![running("a", 0)], vec![], vec![], Manage::Create(2)),
            case("nothing to do", 1, vec![running("a", 0)], vec![], vec![], Manage::Nothing),
            case(
                "deletes extras: unscheduled first",
                1,
                vec![running("a", 0), P::new("b")],
                vec![],
                vec![],
                Manage::Delete(vec!["b".into()]),
            ),
            case(
                "adopts a matching orphan and counts it",
                2,
                vec![running("a", 0), P { owner: None, ..running("orphan", 0) }],
                vec!["orphan"],
                vec![],
                Manage::Nothing,
            ),
            case(
                "releases a pod whose labels changed and replaces it",
                1,
                vec![P { app: "other", ..running("a", 0) }],
                vec![],
                vec!["a"],
                Manage::Create(1),
            ),
            case(
                "ignores other owners, non-matching orphans and terminating or finished pods",
                2,
                vec![
                    P { owner: Some("other"), ..running("x", 0) },
                    P { owner: None, app: "db", ..running("y", 0) },
                    P { deleting: true, ..running("z", 0) },
                    P { phase: "Succeeded", ..running("w", 0) },
                ],
                vec![],
                vec![],
                Manage::Create(2),
            ),
        ];
        for Case { what, replicas, pods, adopt, release, manage } in cases {
            let rs = replicaset(replicas, 0);
            let pods: Vec<Pod> = pods.iter().map(P::pod).collect();
            let refs: Vec<&Pod> = pods.iter().collect();
            let plan = plan_replicaset(&rs, &refs, now);
            assert_eq!(plan.adopt, adopt, "{what}");
            assert_eq!(plan.release, release, "{what}");
            assert_eq!(plan.manage, manage, "{what}");
        }
    }

    #[test]
    fn deletion_order_follows_upstream_ranking() {
        let now = t(100_000);
        let pods = [
            running("old-ready", 0),
            P { created: 99_990, ..running("new-ready", 99_990) },
            P { node: "n1", phase: "Running", ..P::new("running-not-ready") },
            P { node: "n1", ..P::new("pending-scheduled") },
            P::new("unscheduled"),
            P { restarts: 5, ..running("old-restarting", 0) },
        ];
        let pods: Vec<Pod> = pods.iter().map(P::pod).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let order = pods_to_delete(&refs, &refs, refs.len(), now);
        assert_eq!(
            order,
            ["unscheduled", "pending-scheduled", "running-not-ready", "new-ready", "old-restarting", "old-ready"]
        );
        // Doubled-up pods go before lonely ones; deletion cost overrides that.
        let mut lonely = running("lonely", 0).pod();
        lonely.spec.as_mut().unwrap().node_name = Some("n2".into());
        let crowded = [running("c1", 0).pod(), running("c2", 0).pod()];
        let all: Vec<&Pod> = crowded.iter().chain([&lonely]).collect();
        assert!(pods_to_delete(&all, &all, 1, now)[0].starts_with('c'));
        lonely.metadata.annotations = Some(BTreeMap::from([(DELETION_COST.to_string(), "-1".to_string())]));
        let all: Vec<&Pod> = crowded.iter().chain([&lonely]).collect();
        assert_eq!(pods_to_delete(&all, &all, 1, now), ["lonely"]);
    }

    #[test]
    fn status_counts_ready_available_and_failures() {
        let now = t(100);
        let rs = replicaset(3, 10);
        let pods = [running("a", 0), running("b", 95), P { app: "web", ..P::new("c") }];
        let pods: Vec<Pod> = pods.iter().map(P::pod).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let s = calculate_status(&rs, &refs, None, now);
        assert_eq!(
            (s.replicas, s.fully_labeled_replicas, s.ready_replicas, s.available_replicas, s.observed_generation),
            (3, Some(3), Some(2), Some(1), Some(3))
        );
        // "b" turned ready at 95 and is available at 105: look again then.
        assert_eq!(next_availability(&rs, &refs, now), Some(Duration::from_millis(5500)));

        let failed = calculate_status(&replicaset(5, 0), &refs, Some("quota exceeded"), now);
        let cond = &failed.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (cond.type_.as_str(), cond.reason.as_deref(), cond.message.as_deref()),
            ("ReplicaFailure", Some("FailedCreate"), Some("quota exceeded"))
        );
        let recovered = ReplicaSet { status: Some(failed), ..replicaset(5, 0) };
        assert_eq!(calculate_status(&recovered, &refs, None, now).conditions, None);
        // Zero counts are omitted, as upstream's omitempty fields.
        let empty = calculate_status(&replicaset(0, 0), &[], None, now);
        assert_eq!((empty.replicas, empty.ready_replicas, empty.available_replicas), (0, None, None));
        let patch = status_patch(&empty);
        assert_eq!(patch["status"]["readyReplicas"], Value::Null);
        assert_eq!(patch["status"]["replicas"], json!(0));
    }

    #[test]
    fn pods_from_the_template_are_owned() {
        let pod = pod_from_template(&replicaset(1, 0));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(pod.metadata.labels, labels("web"));
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller, owner.block_owner_deletion),
            ("ReplicaSet", "rs-uid", Some(true), Some(true))
        );
    }

    #[tokio::test]
    async fn expectations_wait_for_the_cache() {
        let exp = Arc::new(Expectations::default());
        let mut obs = PodObserver::new(exp.clone());
        obs.observe(&watcher::Event::Init);
        obs.observe(&watcher::Event::InitApply(running("a", 0).pod().into()));
        obs.observe(&watcher::Event::InitDone);
        assert!(exp.satisfied("default/web"));

        exp.expect_creations("default/web", 2);
        assert!(!exp.satisfied("default/web"));
        obs.observe(&watcher::Event::Apply(running("b", 0).pod().into()));
        // An update of a known pod is no creation.
        obs.observe(&watcher::Event::Apply(running("a", 1).pod().into()));
        assert!(!exp.satisfied("default/web"));
        obs.observe(&watcher::Event::Apply(running("c", 0).pod().into()));
        assert!(exp.satisfied("default/web"));

        exp.expect_deletions("default/web", &["a".into(), "b".into()]);
        obs.observe(&watcher::Event::Apply(P { deleting: true, ..running("a", 0) }.pod().into()));
        assert!(!exp.satisfied("default/web"));
        // "b" vanished while the watch was down: the relist shows it gone.
        obs.observe(&watcher::Event::Init);
        obs.observe(&watcher::Event::InitApply(running("c", 0).pod().into()));
        obs.observe(&watcher::Event::InitDone);
        assert!(exp.satisfied("default/web"));
    }
}
