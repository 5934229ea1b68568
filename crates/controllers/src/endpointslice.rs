//! The EndpointSlice controller (upstream's `pkg/controller/endpointslice` and its
//! reconciler in `staging/src/k8s.io/endpointslice`): for every Service with a selector,
//! `discovery.k8s.io/v1` EndpointSlices listing the pods it selects, which the service
//! proxy and DNS read.
//!
//! As upstream: one endpoint per pod with an IPv4 address (`ready`, `serving`,
//! `terminating` conditions, node, zone, target reference, hostname), grouped by the
//! ports the pod resolves the Service's ports to (a named `targetPort` may resolve to a
//! different number on each pod, so such pods land in different slices), at most
//! [`MAX_ENDPOINTS_PER_SLICE`] endpoints per slice. Existing slices are updated in place
//! and filled before new ones are made, so a change to one pod rewrites one slice
//! (minimal churn, which is what the proxy's incremental updates rely on). Slices carry
//! a controller reference to their Service, so the garbage collector deletes them with it.
//!
//! [`plan_slices`] is the whole decision as a pure function of the Service, its pods,
//! the nodes' zones and the existing slices. The pod and Service helpers
//! ([`find_port`], [`should_pod_be_in_endpoints`], [`ServicePods`]) are shared with the
//! Endpoints controller ([`crate::endpoints`]).
//!
//! Our own writes show up in the slice cache a moment later; until they have, a sync
//! would count from an old picture and create slices twice, so each Service waits for
//! the cache to show what it last wrote ([`Tracker`], upstream's
//! `endpointSliceTracker`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tokio::time::Instant;
use tracing::Instrument;

use crate::Context;
use crate::events::Recorder;
use crate::informer::{Cache, Change};
use crate::workload::{controller_ref, is_pod_ready};
use crate::workqueue::Backoffs;

/// Upstream's `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// The `managed-by` value of the slices this controller owns.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// A write of ours the cache has not shown after this long is given up on (it was
/// undone by someone else), so a Service never waits forever.
const TRACKER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("service {service}: cannot {action} endpoint slice {slice}: {source}")]
    Slice { service: String, slice: String, action: &'static str, source: Box<kube::Error> },
}

impl Error {
    fn is_conflict(&self) -> bool {
        let Error::Slice { source, .. } = self;
        matches!(source.as_ref(), kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
    }
}

// === what Services and pods say (shared with the Endpoints controller) ===

/// The Service's selector, if it has a non-empty one. An empty selector does not
/// survive a round trip through the API (upstream's `omitempty`), so it selects nothing.
pub fn service_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether the Service selects a pod with `labels`.
pub fn selects(svc: &Service, labels: &BTreeMap<String, String>) -> bool {
    service_selector(svc).is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The pod's IPv4 address, from `podIPs` or `podIP`.
pub fn pod_ipv4(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let ips = status.pod_ips.iter().flatten().map(|p| p.ip.as_str()).chain(status.pod_ip.as_deref());
    ips.filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()).map(str::to_string).next()
}

/// Upstream's `ShouldPodBeInEndpoints`: not finished (phase Succeeded or Failed), has an
/// address, and is not being deleted unless terminating pods are wanted. We also skip
/// pods not bound to a node (they cannot have an address a kubelet gave them).
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        return false;
    }
    if pod_ipv4(pod).is_none() || node_name(pod).is_none() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref().filter(|n| !n.is_empty())
}

/// Upstream's `podutil.FindPort`: the container port a Service port sends to on this
/// pod. A number is taken as is; a name is looked up among the containers' (and
/// restartable init containers') ports with the same protocol. `None`: the pod does not
/// offer this port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars =
                spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                .map(|p| p.container_port)
        }
    }
}

/// Upstream's `ShouldSetHostname`: the pod names a hostname and sits in the subdomain
/// this (headless) Service governs.
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return false };
    spec.hostname.as_deref().is_some_and(|h| !h.is_empty())
        && spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace
}

/// Which Services each pod was last seen selected by, so a pod event also reaches the
/// Services that selected it before its labels changed (or before it was deleted).
#[derive(Default)]
pub struct ServicePods {
    by_pod: Mutex<HashMap<String, HashSet<ObjectRef<Service>>>>,
    relist: Mutex<Option<HashSet<String>>>,
}

impl ServicePods {
    /// The Services to sync after a pod event.
    pub fn services_for(&self, services: &Store<Service>, event: &Change<Pod>) -> Vec<ObjectRef<Service>> {
        let mut by_pod = self.by_pod.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if matches!(event, watcher::Event::InitApply(_))
                    && let Some(seen) = self.relist.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
                {
                    seen.insert(uid.clone());
                }
                let now = selecting(services, pod);
                let mut all = by_pod.get(&uid).cloned().unwrap_or_default();
                all.extend(now.iter().cloned());
                if now.is_empty() {
                    by_pod.remove(&uid);
                } else {
                    by_pod.insert(uid, now);
                }
                all.into_iter().collect()
            }
            watcher::Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let mut all = by_pod.remove(&uid).unwrap_or_default();
                all.extend(selecting(services, pod));
                all.into_iter().collect()
            }
            watcher::Event::Init => {
                *self.relist.lock().unwrap_or_else(|e| e.into_inner()) = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitDone => {
                // Pods deleted while the watch was down: their Services lost them.
                let seen = self.relist.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
                let gone: Vec<String> = by_pod.keys().filter(|uid| !seen.contains(*uid)).cloned().collect();
                let mut out = HashSet::new();
                for uid in gone {
                    out.extend(by_pod.remove(&uid).unwrap_or_default());
                }
                out.into_iter().collect()
            }
        }
    }
}

fn selecting(services: &Store<Service>, pod: &Pod) -> HashSet<ObjectRef<Service>> {
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    services
        .state()
        .iter()
        .filter(|s| s.metadata.namespace == pod.metadata.namespace && selects(s, labels))
        .map(|s| ObjectRef::from(s.as_ref()))
        .collect()
}

/// The pods of the Service's namespace it selects.
pub fn selected_pods(pods: &Cache<Pod>, svc: &Service) -> Vec<Arc<Pod>> {
    let empty = BTreeMap::new();
    pods.in_namespace(svc.metadata.namespace.as_deref().unwrap_or_default())
        .into_iter()
        .filter(|p| selects(svc, p.metadata.labels.as_ref().unwrap_or(&empty)))
        .collect()
}

/// Every Service, for `Controller::for_stream`: the stream (which fills the store),
/// the store, and a flag that turns true once the first full list is in. `observe` sees
/// each event first (the Endpoints controller learns of deletions there).
///
/// Why our own flag: kube-runtime's `Store::wait_until_ready` wakes only the last of
/// several concurrent waiters (one oneshot receiver inside), and the controller itself
/// waits on its store, so nobody else may wait on that one.
#[allow(clippy::type_complexity)]
pub fn service_watch(
    client: kube::Client,
    mut observe: impl FnMut(&watcher::Event<Service>) + Send + 'static,
) -> (
    impl futures::Stream<Item = Result<Service, watcher::Error>> + Send + 'static,
    Store<Service>,
    tokio::sync::watch::Receiver<bool>,
) {
    let (store, writer) = reflector::store();
    let (listed_tx, listed) = tokio::sync::watch::channel(false);
    let stream = watcher(Api::<Service>::all(client), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .map_ok(move |event| {
            if matches!(event, watcher::Event::InitDone) {
                listed_tx.send_replace(true);
            }
            observe(&event);
            event
        })
        .applied_objects();
    (stream, store, listed)
}

/// Waits until a store (one the controller does not wait on itself) has its first full
/// list. `Store::wait_until_ready` alone may never wake when several reconciles wait at
/// once (see [`service_watch`]), so it is polled again every 50 ms.
pub async fn until_ready<K: Resource + Clone + 'static>(store: &Store<K>)
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(Duration::from_millis(50), store.wait_until_ready()).await.is_err() {}
}

/// A stream of the Services to sync, from the shared pod watch.
pub fn pod_triggers(
    pods: impl futures::Stream<Item = Change<Pod>> + Send + 'static,
    services: Store<Service>,
    mut listed: tokio::sync::watch::Receiver<bool>,
) -> impl futures::Stream<Item = ObjectRef<Service>> + Send + 'static {
    let memory = ServicePods::default();
    let events = pods.flat_map(move |event| futures::stream::iter(memory.services_for(&services, &event)));
    // Pods are mapped to Services only once every Service is known, so the memory of
    // which Services selected a pod is complete from the start.
    futures::stream::once(async move {
        let _ = listed.wait_for(|l| *l).await;
        events
    })
    .flatten()
}

// === the decision ===

/// What one sync writes.
#[derive(Debug, Default, PartialEq)]
pub struct SlicePlan {
    pub create: Vec<EndpointSlice>,
    /// Existing slices with their new content (and their resourceVersion, for the write).
    pub update: Vec<EndpointSlice>,
    /// Names of slices to delete.
    pub delete: Vec<String>,
    /// Some pods were left out because their Node is not known yet: sync again later.
    pub missing_nodes: bool,
}

/// The labels of the Service's slices (upstream's `setEndpointSliceLabels`): the
/// Service's own, the headless marker, the service name and our managed-by value.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(LABEL_HEADLESS);
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(LABEL_SERVICE_NAME.into(), svc.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

/// The endpoint of one pod (upstream's `podToEndpoint`). `ready` is the pod's readiness
/// unless it is terminating; `publishNotReadyAddresses` makes every endpoint ready.
pub fn pod_endpoint(pod: &Pod, svc: &Service, zone: Option<&str>) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    Endpoint {
        addresses: pod_ipv4(pod).into_iter().collect(),
        conditions: Some(EndpointConditions {
            ready: Some(publish || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: should_set_hostname(pod, svc).then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone())).flatten(),
        node_name: node_name(pod).map(str::to_string),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        zone: zone.filter(|z| !z.is_empty()).map(str::to_string),
        ..Default::default()
    }
}

/// The slice ports of one pod (upstream's `getEndpointPorts`): each Service port the
/// pod offers, with the number it resolves to.
pub fn pod_ports(pod: &Pod, svc: &Service) -> Vec<EndpointPort> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let port = find_port(pod, sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// A set of ports as a key, in any order (slices group endpoints by it).
fn ports_key(ports: &[EndpointPort]) -> String {
    let mut parts: Vec<String> = ports
        .iter()
        .map(|p| {
            format!(
                "{}/{}/{}/{}",
                p.name.as_deref().unwrap_or(""),
                p.protocol.as_deref().unwrap_or("TCP"),
                p.port.unwrap_or(0),
                p.app_protocol.as_deref().unwrap_or("")
            )
        })
        .collect();
    parts.sort();
    parts.join(",")
}

/// Target `namespace/name`, addresses, hostname.
type EndpointKey = (String, String, String);

/// What identifies an endpoint across syncs (upstream's endpoint hash: addresses,
/// hostname, target); its conditions, node and zone may change in place.
fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    let target = ep
        .target_ref
        .as_ref()
        .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or(""), r.name.as_deref().unwrap_or("")));
    (target.unwrap_or_default(), ep.addresses.join(","), ep.hostname.clone().unwrap_or_default())
}

fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    let uid = svc.metadata.uid.as_deref();
    slice.metadata.owner_references.iter().flatten().any(|o| o.kind == "Service" && Some(o.uid.as_str()) == uid)
}

fn new_slice(svc: &Service, ports: Option<Vec<EndpointPort>>, endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![controller_ref("v1", "Service", &svc.metadata)]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ports,
    }
}

/// The slices a Service needs (upstream's reconciler). `existing` are the slices this
/// controller manages for the Service (by label); `zones` maps each known node to its
/// `topology.kubernetes.io/zone`.
pub fn plan_slices(
    svc: &Service,
    pods: &[&Pod],
    zones: &HashMap<String, Option<String>>,
    existing: &[&EndpointSlice],
) -> SlicePlan {
    let mut plan = SlicePlan::default();

    // Desired endpoints, grouped by the ports their pod resolves.
    let mut desired: BTreeMap<String, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)> = BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let node = node_name(pod).unwrap_or_default();
        // Upstream leaves out pods whose Node it has not seen yet and retries later.
        let Some(zone) = zones.get(node) else {
            plan.missing_nodes = true;
            continue;
        };
        let ep = pod_endpoint(pod, svc, zone.as_deref());
        let ports = pod_ports(pod, svc);
        let entry = desired.entry(ports_key(&ports)).or_insert_with(|| (ports, BTreeMap::new()));
        entry.1.insert(endpoint_key(&ep), ep);
    }

    // Existing slices by port set; slices of another address type or owner go.
    let labels = slice_labels(svc);
    let mut by_ports: BTreeMap<String, Vec<&EndpointSlice>> = BTreeMap::new();
    let mut delete: Vec<&EndpointSlice> = Vec::new();
    for slice in existing {
        if slice.address_type != "IPv4" || !owned_by(slice, svc) {
            delete.push(slice);
        } else {
            by_ports.entry(ports_key(slice.ports.as_deref().unwrap_or_default())).or_default().push(slice);
        }
    }
    let mut create: Vec<EndpointSlice> = Vec::new();
    let mut update: Vec<EndpointSlice> = Vec::new();
    for (key, (ports, want)) in desired {
        let slices = by_ports.remove(&key).unwrap_or_default();
        plan_ports(svc, &labels, &ports, want, &slices, &mut create, &mut update, &mut delete);
    }
    delete.extend(by_ports.into_values().flatten());

    // A Service with no endpoints keeps one empty placeholder slice (upstream), so
    // readers can tell "no endpoints" from "not synced yet".
    if update.is_empty() && create.is_empty() && delete.len() == existing.len() {
        let placeholder = new_slice(svc, None, Vec::new());
        let reusable = delete.iter().position(|s| {
            s.endpoints.is_empty()
                && s.ports.as_ref().is_none_or(Vec::is_empty)
                && s.address_type == "IPv4"
                && owned_by(s, svc)
                && s.metadata.labels.as_ref() == Some(&labels)
        });
        match reusable {
            Some(i) => {
                delete.remove(i);
            }
            None => create.push(placeholder),
        }
    }

    // Rather than delete one slice and create another, rewrite the doomed one (upstream's
    // finalize): one write instead of two, and its name stays.
    while !create.is_empty() {
        let Some(i) = delete.iter().position(|s| s.address_type == "IPv4") else { break };
        let old = delete.remove(i);
        let mut fresh = create.remove(0);
        fresh.metadata = ObjectMeta { labels: fresh.metadata.labels.take(), ..old.metadata.clone() };
        fresh.metadata.owner_references = Some(vec![controller_ref("v1", "Service", &svc.metadata)]);
        update.push(fresh);
    }

    plan.create = create;
    plan.update = update;
    plan.delete = delete.iter().map(|s| s.name_any()).collect();
    plan
}

/// Upstream's `reconcileByPortMapping` for one port set: keep endpoints where they are,
/// refresh the changed ones in place, drop the gone ones, then put the new ones first
/// into slices being rewritten anyway, then into one unchanged slice with room for all
/// of them, and only then into new slices.
#[allow(clippy::too_many_arguments)]
fn plan_ports<'a>(
    svc: &Service,
    labels: &BTreeMap<String, String>,
    ports: &[EndpointPort],
    mut want: BTreeMap<EndpointKey, Endpoint>,
    slices: &[&'a EndpointSlice],
    create: &mut Vec<EndpointSlice>,
    update: &mut Vec<EndpointSlice>,
    delete: &mut Vec<&'a EndpointSlice>,
) {
    let mut changed: Vec<EndpointSlice> = Vec::new();
    let mut unchanged: Vec<&'a EndpointSlice> = Vec::new();
    for slice in slices {
        let mut dirty = slice.metadata.labels.as_ref() != Some(labels) || slice.ports.as_deref() != Some(ports);
        let mut kept = Vec::new();
        for ep in &slice.endpoints {
            match want.remove(&endpoint_key(ep)) {
                Some(new) => {
                    dirty |= new != *ep;
                    kept.push(new);
                }
                None => dirty = true,
            }
        }
        if kept.is_empty() {
            delete.push(slice);
        } else if dirty {
            let mut s = (*slice).clone();
            s.endpoints = kept;
            s.ports = Some(ports.to_vec());
            s.metadata.labels = Some(labels.clone());
            changed.push(s);
        } else {
            unchanged.push(slice);
        }
    }

    let mut rest: Vec<Endpoint> = want.into_values().collect();
    // Fullest first, so slices fill up before half-empty ones grow.
    changed.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
    for s in &mut changed {
        let room = MAX_ENDPOINTS_PER_SLICE.saturating_sub(s.endpoints.len()).min(rest.len());
        s.endpoints.extend(rest.drain(..room));
    }
    if !rest.is_empty() {
        let fits = unchanged
            .iter()
            .enumerate()
            .filter(|(_, s)| s.endpoints.len() + rest.len() <= MAX_ENDPOINTS_PER_SLICE)
            .max_by_key(|(_, s)| s.endpoints.len())
            .map(|(i, _)| i);
        if let Some(i) = fits {
            let mut s = unchanged.remove(i).clone();
            s.endpoints.append(&mut rest);
            changed.push(s);
        }
    }
    while !rest.is_empty() {
        let n = rest.len().min(MAX_ENDPOINTS_PER_SLICE);
        create.push(new_slice(svc, Some(ports.to_vec()), rest.drain(..n).collect()));
    }
    update.extend(changed);
}

// === the controller ===

/// Our slice writes the cache has not shown yet, per Service (`namespace/name`):
/// slice name → the generation we wrote (`None`: we deleted it).
#[derive(Default)]
pub struct Tracker {
    inner: Mutex<Writes>,
}

/// Service → slice name → (generation written or `None` for deleted, when).
type Writes = HashMap<String, HashMap<String, (Option<i64>, Instant)>>;

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Writes> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a write: `generation` of a created or updated slice, `None` for a delete.
    pub fn expect(&self, service: &str, slice: &str, generation: Option<i64>) {
        let mut all = self.lock();
        all.retain(|_, m| {
            m.retain(|_, (_, at)| at.elapsed() < TRACKER_TIMEOUT);
            !m.is_empty()
        });
        all.entry(service.into()).or_default().insert(slice.into(), (generation, Instant::now()));
    }

    /// Whether `cached` (the Service's slices in the cache) still misses one of our
    /// writes. Writes the cache shows are forgotten.
    pub fn stale(&self, service: &str, cached: &[&EndpointSlice]) -> bool {
        let mut all = self.lock();
        let Some(m) = all.get_mut(service) else { return false };
        m.retain(|name, (want, at)| {
            let have = cached.iter().find(|s| s.metadata.name.as_deref() == Some(name.as_str()));
            let seen = match (want, have) {
                (None, None) => true,
                (None, Some(_)) => false,
                (Some(_), None) => false,
                (Some(g), Some(s)) => s.metadata.generation.unwrap_or(0) >= *g,
            };
            !seen && at.elapsed() < TRACKER_TIMEOUT
        });
        let stale = !m.is_empty();
        if !stale {
            all.remove(service);
        }
        stale
    }
}

struct State {
    client: kube::Client,
    pods: Cache<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    tracker: Tracker,
    recorder: Recorder,
    backoff: Backoffs<String>,
}

/// Runs the EndpointSlice controller until aborted.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let client = ctx.client.clone();
        let (service_events, services, listed) = service_watch(client.clone(), |_| {});
        let controller = Controller::for_stream(service_events, services.clone());
        let pods = ctx.pods.cache();
        let pod_triggers = pod_triggers(ctx.pods.subscribe(), services, listed);
        let (slices, slice_writer) = reflector::store();
        let managed = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={CONTROLLER_NAME}"));
        let slice_events = watcher(Api::<EndpointSlice>::all(client.clone()), managed)
            .default_backoff()
            .reflect(slice_writer)
            .touched_objects();
        // Nodes only give endpoints their zone; a zone change alone does not resync.
        let (nodes, node_writer) = reflector::store();
        let node_watch = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(node_writer)
            .for_each(|_| futures::future::ready(()));
        let state = Arc::new(State {
            recorder: Recorder::new(client.clone(), "endpointslice-controller"),
            client,
            pods,
            nodes,
            slices,
            tracker: Tracker::default(),
            backoff: Backoffs::new(Duration::from_millis(100), Duration::from_secs(30)),
        });
        let controller = controller
            .reconcile_on(pod_triggers)
            .watches_stream(slice_events, |slice| service_of_slice(&slice))
            .run(reconcile, error_policy, state)
            .for_each(|_| futures::future::ready(()));
        futures::future::join(controller, node_watch).await;
    })
}

/// The Service a managed slice belongs to (by its service-name label, as upstream).
fn service_of_slice(slice: &EndpointSlice) -> Option<ObjectRef<Service>> {
    let name = slice.labels().get(LABEL_SERVICE_NAME)?;
    Some(ObjectRef::new(name).within(&slice.namespace().unwrap_or_default()))
}

fn error_policy(svc: Arc<Service>, error: &Error, st: Arc<State>) -> Action {
    let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
    let delay = st.backoff.next(&key);
    if error.is_conflict() {
        tracing::debug!(%error, retry_in = ?delay, "endpoint slices changed meanwhile; syncing again");
    } else {
        tracing::warn!(%error, retry_in = ?delay, "endpoint slice sync failed");
    }
    Action::requeue(delay)
}

async fn reconcile(svc: Arc<Service>, st: Arc<State>) -> Result<Action, Error> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let span = tracing::info_span!("endpointslice", namespace = %ns, name = %name);
    let key = format!("{ns}/{name}");
    let action = sync(&svc, &st, &ns, &key).instrument(span).await?;
    st.backoff.reset(&key);
    Ok(action)
}

async fn sync(svc: &Service, st: &State, ns: &str, key: &str) -> Result<Action, Error> {
    // Planning against caches that have not finished their first list would delete
    // endpoints (or slices) that exist.
    st.pods.wait_until_ready().await;
    until_ready(&st.nodes).await;
    until_ready(&st.slices).await;
    // Upstream: a Service being deleted is left to the garbage collector; ExternalName
    // and selector-less Services get no slices from us (their users write their own).
    let external = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
    if svc.metadata.deletion_timestamp.is_some() || external || service_selector(svc).is_none() {
        return Ok(Action::await_change());
    }
    let name = svc.name_any();
    let cached: Vec<Arc<EndpointSlice>> = st
        .slices
        .state()
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
        .filter(|s| s.labels().get(LABEL_SERVICE_NAME) == Some(&name))
        .filter(|s| s.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME))
        .collect();
    let existing: Vec<&EndpointSlice> = cached.iter().map(AsRef::as_ref).collect();
    if st.tracker.stale(key, &existing) {
        tracing::debug!("slice cache behind our own writes; waiting for it");
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let pods = selected_pods(&st.pods, svc);
    let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
    let zones: HashMap<String, Option<String>> =
        st.nodes.state().iter().map(|n| (n.name_any(), n.labels().get(LABEL_ZONE).cloned())).collect();
    let plan = plan_slices(svc, &pods, &zones, &existing);

    let api: Api<EndpointSlice> = Api::namespaced(st.client.clone(), ns);
    let result = apply(st, &api, key, &plan).await;
    if let Err(e) = &result {
        let note = format!("Error updating Endpoint Slices for Service {key}: {e}");
        st.recorder.warning(&svc.object_ref(&()), "FailedToUpdateEndpointSlices", "Update", note).await;
    }
    result?;
    if plan.missing_nodes {
        tracing::debug!("some pods are on nodes not seen yet; syncing again soon");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    Ok(Action::await_change())
}

/// Creates first, then updates, then deletes: endpoints never disappear before their
/// replacement exists (upstream's order).
async fn apply(st: &State, api: &Api<EndpointSlice>, key: &str, plan: &SlicePlan) -> Result<(), Error> {
    let err =
        |slice: &str, action, e| Error::Slice { service: key.into(), slice: slice.into(), action, source: Box::new(e) };
    let pp = PostParams { field_manager: Some(CONTROLLER_NAME.into()), ..Default::default() };
    for slice in &plan.create {
        match api.create(&pp, slice).await {
            Ok(s) => {
                tracing::info!(slice = %s.name_any(), endpoints = s.endpoints.len(), "created endpoint slice");
                st.tracker.expect(key, &s.name_any(), Some(s.metadata.generation.unwrap_or(0)));
            }
            Err(e) if namespace_terminating(&e) => return Ok(()),
            Err(e) => {
                return Err(err(&format!("{}*", slice.metadata.generate_name.as_deref().unwrap_or("")), "create", e));
            }
        }
    }
    for slice in &plan.update {
        let name = slice.name_any();
        let s = api.replace(&name, &pp, slice).await.map_err(|e| err(&name, "update", e))?;
        tracing::info!(slice = %name, endpoints = s.endpoints.len(), "updated endpoint slice");
        st.tracker.expect(key, &name, Some(s.metadata.generation.unwrap_or(0)));
    }
    for name in &plan.delete {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(slice = %name, "deleted endpoint slice"),
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(err(name, "delete", e)),
        }
        st.tracker.expect(key, name, None);
    }
    Ok(())
}

pub(crate) fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

/// Services and pods for the tests of this controller and of [`crate::endpoints`].
#[cfg(test)]
pub(crate) mod fixtures {
    use k8s_openapi::api::core::v1::{Pod, Service};
    use serde_json::{Value, json};

    /// A Service selecting `app: web` with `ports` (`[{"name", "port", "targetPort"}]`).
    pub fn service(ports: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "ports": ports, "clusterIP": "10.96.0.5"}
        }))
        .expect("service")
    }

    /// A running pod on node `n1` with container ports `ports` (`[{"name", "containerPort"}]`).
    pub struct P {
        pub name: String,
        pub ip: Option<&'static str>,
        pub node: Option<&'static str>,
        pub ready: bool,
        pub deleting: bool,
        pub phase: &'static str,
        pub ports: Value,
        pub hostname: Option<(&'static str, &'static str)>,
    }

    pub fn p(name: &str, ip: &'static str, ready: bool) -> P {
        P {
            name: name.into(),
            ip: Some(ip),
            node: Some("n1"),
            ready,
            deleting: false,
            phase: "Running",
            ports: json!([{"name": "http", "containerPort": 8080}]),
            hostname: None,
        }
    }

    impl P {
        pub fn pod(&self) -> Pod {
            let mut v = json!({
                "metadata": {"name": self.name, "namespace": "default", "uid": format!("uid-{}", self.name),
                             "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "x", "ports": self.ports}]},
                "status": {"phase": self.phase,
                           "conditions": [{"type": "Ready", "status": if self.ready { "True" } else { "False" }}]}
            });
            if let Some(ip) = self.ip {
                v["status"]["podIP"] = json!(ip);
                v["status"]["podIPs"] = json!([{"ip": ip}]);
            }
            if let Some(node) = self.node {
                v["spec"]["nodeName"] = json!(node);
            }
            if self.deleting {
                v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            if let Some((h, s)) = self.hostname {
                v["spec"]["hostname"] = json!(h);
                v["spec"]["subdomain"] = json!(s);
            }
            serde_json::from_value(v).expect("pod")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{P, p, service};
    use super::*;
    use serde_json::json;

    fn zones() -> HashMap<String, Option<String>> {
        HashMap::from([("n1".to_string(), Some("zone-a".to_string())), ("n2".to_string(), None)])
    }

    fn http() -> serde_json::Value {
        json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}])
    }

    /// Plans, then "writes" the plan: created slices get names, generations bump.
    fn step(svc: &Service, pods: &[P], existing: Vec<EndpointSlice>) -> (SlicePlan, Vec<EndpointSlice>) {
        let pods: Vec<Pod> = pods.iter().map(P::pod).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let ex: Vec<&EndpointSlice> = existing.iter().collect();
        let plan = plan_slices(svc, &refs, &zones(), &ex);
        let mut after: Vec<EndpointSlice> =
            existing.iter().filter(|s| !plan.delete.contains(&s.name_any())).cloned().collect();
        for u in &plan.update {
            let i = after.iter().position(|s| s.name_any() == u.name_any()).expect("updated slice exists");
            after[i] = u.clone();
        }
        let mut n = existing.len();
        for c in &plan.create {
            let mut c = c.clone();
            n += 1;
            c.metadata.name = Some(format!("web-{n:05}"));
            after.push(c);
        }
        (plan, after)
    }

    fn conditions(s: &EndpointSlice) -> Vec<(String, bool, bool, bool)> {
        s.endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap_or_default();
                let name = e.target_ref.as_ref().and_then(|r| r.name.clone()).unwrap_or_default();
                (name, c.ready == Some(true), c.serving == Some(true), c.terminating == Some(true))
            })
            .collect()
    }

    type Ports = Vec<(String, i32)>;

    fn ports_of(s: &EndpointSlice) -> Ports {
        s.ports.iter().flatten().map(|p| (p.name.clone().unwrap_or_default(), p.port.unwrap_or(0))).collect()
    }

    #[test]
    fn one_slice_with_readiness_conditions() {
        let svc = service(http());
        let terminating = P { deleting: true, ..p("c", "10.0.0.3", true) };
        let (plan, after) = step(&svc, &[p("a", "10.0.0.1", true), p("b", "10.0.0.2", false), terminating], vec![]);
        assert_eq!(plan.create.len(), 1);
        assert!(plan.update.is_empty() && plan.delete.is_empty() && !plan.missing_nodes);
        let s = &after[0];
        assert_eq!(
            conditions(s),
            vec![("a".into(), true, true, false), ("b".into(), false, false, false), ("c".into(), false, true, true)]
        );
        assert_eq!(ports_of(s), vec![("http".into(), 8080)]);
        assert_eq!(s.address_type, "IPv4");
        assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
        let labels = s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get(LABEL_SERVICE_NAME).map(String::as_str), Some("web"));
        assert_eq!(labels.get(LABEL_MANAGED_BY).map(String::as_str), Some(CONTROLLER_NAME));
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        let owner = &s.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Service", "svc-uid"));
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
        let e = &s.endpoints[0];
        assert_eq!(e.addresses, vec!["10.0.0.1".to_string()]);
        assert_eq!((e.node_name.as_deref(), e.zone.as_deref()), (Some("n1"), Some("zone-a")));
        let target = e.target_ref.clone().unwrap_or_default();
        assert_eq!((target.kind.as_deref(), target.uid.as_deref()), (Some("Pod"), Some("uid-a")));
    }

    #[test]
    fn publish_not_ready_addresses_makes_every_endpoint_ready() {
        let mut svc = service(http());
        svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let terminating = P { deleting: true, ..p("c", "10.0.0.3", false) };
        let (_, after) = step(&svc, &[p("a", "10.0.0.1", true), p("b", "10.0.0.2", false), terminating], vec![]);
        assert_eq!(
            conditions(&after[0]),
            vec![("a".into(), true, true, false), ("b".into(), true, false, false), ("c".into(), true, false, true)]
        );
    }

    #[test]
    fn pods_left_out() {
        let svc = service(http());
        let cases: Vec<(&str, P, bool)> = vec![
            ("no address", P { ip: None, ..p("x", "", true) }, false),
            ("not scheduled", P { node: None, ..p("x", "10.0.0.9", true) }, false),
            ("succeeded", P { phase: "Succeeded", ..p("x", "10.0.0.9", true) }, false),
            ("failed", P { phase: "Failed", ..p("x", "10.0.0.9", true) }, false),
            ("IPv6 only", p("x", "fd00::1", true), false),
            ("unknown node", P { node: Some("n9"), ..p("x", "10.0.0.9", true) }, true),
        ];
        for (what, pod, missing) in cases {
            let (plan, after) = step(&svc, &[pod], vec![]);
            assert!(after.iter().all(|s| s.endpoints.is_empty()), "{what}: left out");
            assert_eq!(plan.missing_nodes, missing, "{what}");
        }
    }

    #[test]
    fn named_ports_resolve_per_pod_into_separate_slices() {
        let svc = service(json!([
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"}
        ]));
        let other = P { ports: json!([{"name": "http", "containerPort": 9090}]), ..p("b", "10.0.0.2", true) };
        let udp = P {
            ports: json!([{"name": "http", "containerPort": 7070, "protocol": "UDP"}]),
            ..p("c", "10.0.0.3", true)
        };
        let (plan, after) = step(&svc, &[p("a", "10.0.0.1", true), other, udp], vec![]);
        assert_eq!(plan.create.len(), 3);
        let mut seen: Vec<(Ports, Vec<String>)> =
            after.iter().map(|s| (ports_of(s), s.endpoints.iter().map(|e| e.addresses.join(",")).collect())).collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                (vec![("http".into(), 8080), ("metrics".into(), 9100)], vec!["10.0.0.1".into()]),
                (vec![("http".into(), 9090), ("metrics".into(), 9100)], vec!["10.0.0.2".into()]),
                // The UDP container port does not match the TCP service port.
                (vec![("metrics".into(), 9100)], vec!["10.0.0.3".into()]),
            ]
        );
    }

    fn many(n: usize) -> Vec<P> {
        (0..n)
            .map(|i| p(&format!("p{i:04}"), Box::leak(format!("10.1.{}.{}", i / 250, i % 250).into_boxed_str()), true))
            .collect()
    }

    #[test]
    fn more_than_a_hundred_endpoints_split() {
        let svc = service(http());
        let (plan, after) = step(&svc, &many(250), vec![]);
        let mut sizes: Vec<usize> = plan.create.iter().map(|s| s.endpoints.len()).collect();
        sizes.sort();
        assert_eq!(sizes, vec![50, 100, 100]);
        // Ten more pods fill the partly full slice, nothing else moves.
        let (plan, after) = step(&svc, &many(260), after);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].endpoints.len(), 60);
        assert_eq!(after.iter().map(|s| s.endpoints.len()).sum::<usize>(), 260);
        // Forty more than fit in one slice's room (40 of 40): still no new slice.
        let (plan, after) = step(&svc, &many(300), after);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(after.iter().map(|s| s.endpoints.len()).max(), Some(100));
        let (plan, _) = step(&svc, &many(301), after);
        assert_eq!((plan.create.len(), plan.update.len()), (1, 0));
    }

    #[test]
    fn nothing_changed_writes_nothing() {
        let svc = service(http());
        let pods = || vec![p("a", "10.0.0.1", true), p("b", "10.0.0.2", false)];
        let (_, after) = step(&svc, &pods(), vec![]);
        let (plan, again) = step(&svc, &pods(), after.clone());
        assert_eq!(plan, SlicePlan::default());
        assert_eq!(again, after);
        // Also with a placeholder for a Service without pods.
        let (_, after) = step(&svc, &[], vec![]);
        let (plan, _) = step(&svc, &[], after);
        assert_eq!(plan, SlicePlan::default());
    }

    #[test]
    fn a_readiness_change_rewrites_only_its_slice() {
        let svc = service(http());
        let (_, after) = step(&svc, &many(150), vec![]);
        let mut pods = many(150);
        pods[120].ready = false;
        let (plan, after2) = step(&svc, &pods, after.clone());
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(after2.len(), 2);
        let names: Vec<String> = after.iter().map(|s| s.name_any()).collect();
        assert!(after2.iter().all(|s| names.contains(&s.name_any())), "slices keep their names");
        let flipped = plan.update[0].endpoints.iter().find(|e| e.addresses[0] == "10.1.0.120").expect("pod 120");
        assert_eq!(flipped.conditions.as_ref().and_then(|c| c.ready), Some(false));
    }

    #[test]
    fn scaling_down_empties_and_deletes_slices_but_keeps_a_placeholder() {
        let svc = service(http());
        let (_, after) = step(&svc, &many(150), vec![]);
        let (plan, after) = step(&svc, &many(40), after);
        assert_eq!(after.iter().map(|s| s.endpoints.len()).sum::<usize>(), 40);
        assert_eq!(after.len(), 1);
        assert!(plan.create.is_empty());
        let (plan, after) = step(&svc, &[], after);
        // The last slice is not deleted and recreated: it becomes the placeholder.
        assert_eq!((plan.create.len(), plan.update.len(), plan.delete.len()), (0, 1, 0));
        assert_eq!(after.len(), 1);
        assert!(after[0].endpoints.is_empty() && after[0].ports.is_none());
    }

    #[test]
    fn a_port_change_rewrites_slices_in_place() {
        let svc = service(http());
        let (_, after) = step(&svc, &[p("a", "10.0.0.1", true)], vec![]);
        let svc2 = service(json!([{"name": "http", "port": 80, "targetPort": 8081, "protocol": "TCP"}]));
        let (plan, after2) = step(&svc2, &[p("a", "10.0.0.1", true)], after.clone());
        assert_eq!((plan.create.len(), plan.update.len(), plan.delete.len()), (0, 1, 0));
        assert_eq!(after2[0].name_any(), after[0].name_any());
        assert_eq!(ports_of(&after2[0]), vec![("http".into(), 8081)]);
    }

    #[test]
    fn slices_of_a_replaced_service_are_replaced() {
        let svc = service(http());
        let (_, after) = step(&svc, &[p("a", "10.0.0.1", true)], vec![]);
        let mut svc2 = service(http());
        svc2.metadata.uid = Some("other-uid".into());
        let (plan, after2) = step(&svc2, &[p("a", "10.0.0.1", true)], after);
        assert_eq!(plan.update.len(), 1, "the old slice is reused under the new owner");
        let owner = &after2[0].metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(owner.uid, "other-uid");
    }

    #[test]
    fn hostname_for_pods_in_the_services_subdomain() {
        let mut svc = service(http());
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        let a = P { hostname: Some(("host-a", "web")), ..p("a", "10.0.0.1", true) };
        let b = P { hostname: Some(("host-b", "other")), ..p("b", "10.0.0.2", true) };
        let (_, after) = step(&svc, &[a, b], vec![]);
        let hosts: Vec<Option<String>> = after[0].endpoints.iter().map(|e| e.hostname.clone()).collect();
        assert_eq!(hosts, vec![Some("host-a".into()), None]);
        assert_eq!(after[0].metadata.labels.as_ref().and_then(|l| l.get(LABEL_HEADLESS)).map(String::as_str), Some(""));
    }

    #[test]
    fn tracker_waits_for_the_cache() {
        let t = Tracker::default();
        let mut s = EndpointSlice { address_type: "IPv4".into(), ..Default::default() };
        s.metadata.name = Some("web-abc".into());
        s.metadata.generation = Some(1);
        assert!(!t.stale("default/web", &[]));
        t.expect("default/web", "web-abc", Some(2));
        assert!(t.stale("default/web", &[]), "created slice not in the cache yet");
        assert!(t.stale("default/web", &[&s]), "old generation");
        s.metadata.generation = Some(2);
        assert!(!t.stale("default/web", &[&s]));
        t.expect("default/web", "web-abc", None);
        assert!(t.stale("default/web", &[&s]), "deleted slice still cached");
        assert!(!t.stale("default/web", &[]));
    }
}
