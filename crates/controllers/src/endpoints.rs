//! The Endpoints controller (upstream's `pkg/controller/endpoint`): for every Service
//! with a selector, the core/v1 Endpoints object of the same name, which older clients
//! (and `kubectl describe service`) read.
//!
//! As upstream: one address per selected pod with an IPv4 address (target reference,
//! node, hostname), in `addresses` when the pod is Ready (or the Service has
//! `publishNotReadyAddresses`) and in `notReadyAddresses` otherwise; terminating pods
//! are left out unless `publishNotReadyAddresses`. Ports resolve named `targetPort`s
//! against each pod's container ports, and addresses are packed into subsets by the
//! ports they offer (upstream's `RepackSubsets`). Above [`MAX_CAPACITY`] addresses the
//! object is truncated and annotated `endpoints.kubernetes.io/over-capacity: truncated`.
//! The objects are labelled `endpointslice.kubernetes.io/skip-mirror: "true"` (the
//! EndpointSlice controller already covers these Services).
//!
//! Endpoints carry no owner reference (as upstream), so this controller deletes them
//! itself when their Service goes, and at start deletes the ones whose Service
//! vanished while it was not running (upstream's `checkLeftoverEndpoints`).
//!
//! [`desired_endpoints`] is the decision as a pure function of the Service, its pods
//! and the current Endpoints.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::Context;
use crate::endpointslice::{
    LABEL_HEADLESS, find_port, namespace_terminating, pod_ipv4, pod_triggers, selected_pods, service_selector,
    service_watch, should_pod_be_in_endpoints, should_set_hostname, until_ready,
};
use crate::events::Recorder;
use crate::informer::Cache;
use crate::workload::is_pod_ready;
use crate::workqueue::Backoffs;

/// At most this many addresses in one Endpoints object (upstream's `maxCapacity`).
pub const MAX_CAPACITY: usize = 1000;
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
pub const LABEL_SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Endpoints used as leader-election locks by old components: never leftovers.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
const FIELD_MANAGER: &str = "endpoint-controller";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("service {service}: cannot {action} its endpoints: {source}")]
    Write { service: String, action: &'static str, source: Box<kube::Error> },
}

impl Error {
    fn is_conflict(&self) -> bool {
        let Error::Write { source, .. } = self;
        matches!(source.as_ref(), kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
    }
}

/// The labels of a Service's Endpoints: the Service's own, the headless marker and
/// skip-mirror.
pub fn endpoints_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(LABEL_HEADLESS);
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(LABEL_SKIP_MIRROR.into(), "true".into());
    labels
}

type PortKey = (String, i32, String, String);
/// (ip, pod uid).
type AddrKey = (String, String);
/// One subset in the making: its ports, its addresses (ready or not).
type Group = (Vec<EndpointPort>, Vec<(EndpointAddress, bool)>);

/// The subsets of a Service's Endpoints, and whether they were truncated to
/// [`MAX_CAPACITY`] addresses.
pub fn endpoint_subsets(svc: &Service, pods: &[&Pod]) -> (Vec<EndpointSubset>, bool) {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let service_ports = spec.ports.unwrap_or_default();
    // Every port offered, with the addresses offering it (and whether they are ready).
    // A port-less headless Service still lists its pods, under a sentinel port.
    let mut by_port: BTreeMap<PortKey, BTreeMap<AddrKey, (EndpointAddress, bool)>> = BTreeMap::new();
    let mut ports: BTreeMap<PortKey, Option<EndpointPort>> = BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(ip) = pod_ipv4(pod) else { continue };
        let addr = EndpointAddress {
            ip: ip.clone(),
            hostname: should_set_hostname(pod, svc)
                .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
                .flatten(),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
        };
        let ready = publish || is_pod_ready(pod);
        let akey = (ip, pod.metadata.uid.clone().unwrap_or_default());
        if service_ports.is_empty() {
            if headless {
                let pkey = (String::new(), -1, String::new(), String::new());
                ports.insert(pkey.clone(), None);
                by_port.entry(pkey).or_default().insert(akey, (addr, ready));
            }
            continue;
        }
        for sp in &service_ports {
            let Some(number) = find_port(pod, sp) else { continue };
            let port = EndpointPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port: number,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            };
            let pkey = (
                port.name.clone().unwrap_or_default(),
                number,
                port.protocol.clone().unwrap_or_default(),
                port.app_protocol.clone().unwrap_or_default(),
            );
            ports.insert(pkey.clone(), Some(port));
            by_port.entry(pkey).or_default().insert(akey.clone(), (addr.clone(), ready));
        }
    }
    // Ports offered by exactly the same addresses share a subset (upstream's
    // RepackSubsets); everything sorted, so equal inputs give equal objects.
    let mut groups: BTreeMap<Vec<(AddrKey, bool)>, Group> = BTreeMap::new();
    for (pkey, addrs) in by_port {
        let gkey: Vec<(AddrKey, bool)> = addrs.iter().map(|(k, (_, r))| (k.clone(), *r)).collect();
        let group = groups.entry(gkey).or_insert_with(|| (Vec::new(), addrs.into_values().collect()));
        if let Some(Some(port)) = ports.remove(&pkey) {
            group.0.push(port);
        }
    }
    let mut subsets: Vec<EndpointSubset> = groups
        .into_values()
        .map(|(ports, addrs)| {
            let (ready, not_ready): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|(_, r)| *r);
            EndpointSubset {
                addresses: non_empty(ready.into_iter().map(|(a, _)| a).collect()),
                not_ready_addresses: non_empty(not_ready.into_iter().map(|(a, _)| a).collect()),
                ports: non_empty(ports),
            }
        })
        .collect();
    let truncated = truncate(&mut subsets);
    (subsets, truncated)
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn count(v: &Option<Vec<EndpointAddress>>) -> usize {
    v.as_ref().map_or(0, Vec::len)
}

/// Upstream's `truncateEndpoints`: keeps [`MAX_CAPACITY`] addresses, ready ones first,
/// each subset keeping its share. Whether anything was cut.
fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let cut_ready = ready > MAX_CAPACITY;
    let (budget, total) = if cut_ready { (MAX_CAPACITY, ready) } else { (MAX_CAPACITY - ready, not_ready) };
    let mut left = budget;
    for s in subsets.iter_mut() {
        let list = if cut_ready { &mut s.addresses } else { &mut s.not_ready_addresses };
        let n = count(list);
        // Rounded to nearest, never past what is left.
        let keep = ((n * budget + total / 2) / total.max(1)).min(left);
        left -= keep;
        if let Some(l) = list.as_mut() {
            l.truncate(keep);
        }
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
        if cut_ready {
            s.not_ready_addresses = None;
        }
    }
    true
}

/// Empty lists and missing ones are the same thing on the wire.
fn normalized(subsets: Option<&Vec<EndpointSubset>>) -> Vec<EndpointSubset> {
    subsets
        .into_iter()
        .flatten()
        .map(|s| EndpointSubset {
            addresses: s.addresses.clone().filter(|v| !v.is_empty()),
            not_ready_addresses: s.not_ready_addresses.clone().filter(|v| !v.is_empty()),
            ports: s.ports.clone().filter(|v| !v.is_empty()),
        })
        .collect()
}

/// The Endpoints the Service should have, or `None` when `current` already is that.
/// The result keeps `current`'s metadata (name, resourceVersion, other annotations).
pub fn desired_endpoints(svc: &Service, pods: &[&Pod], current: Option<&Endpoints>) -> Option<Endpoints> {
    let (subsets, truncated) = endpoint_subsets(svc, pods);
    let labels = endpoints_labels(svc);
    if let Some(cur) = current {
        let marked = cur.annotations().get(OVER_CAPACITY).map(String::as_str) == Some("truncated");
        let has = cur.annotations().contains_key(OVER_CAPACITY);
        if normalized(cur.subsets.as_ref()) == subsets
            && cur.metadata.labels.clone().unwrap_or_default() == labels
            && (marked == truncated && (truncated || !has))
        {
            return None;
        }
    }
    let mut metadata = current.map(|c| c.metadata.clone()).unwrap_or_else(|| ObjectMeta {
        name: svc.metadata.name.clone(),
        namespace: svc.metadata.namespace.clone(),
        ..Default::default()
    });
    metadata.labels = Some(labels);
    let mut annotations = metadata.annotations.take().unwrap_or_default();
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    metadata.annotations = non_empty_map(annotations);
    metadata.managed_fields = None;
    Some(Endpoints { metadata, subsets: non_empty(subsets) })
}

fn non_empty_map(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

// === the controller ===

struct State {
    client: kube::Client,
    pods: Cache<Pod>,
    endpoints: Store<Endpoints>,
    /// Per Service, the resourceVersion of the Endpoints our last write replaced
    /// (upstream's `staleEndpointsTracker`): while the cache still shows it, the cache
    /// is behind our write and an update from it could only conflict.
    replaced: Mutex<HashMap<String, String>>,
    recorder: Recorder,
    backoff: Backoffs<String>,
}

impl State {
    fn replaced(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.replaced.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the Endpoints controller until aborted.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let client = ctx.client.clone();
        // Deletions come from the Service watch itself (a kube-runtime controller only
        // reconciles objects that exist).
        let (deleted_tx, deleted_rx) = mpsc::unbounded_channel::<(String, String)>();
        let (service_events, services, listed) = service_watch(client.clone(), move |event| {
            if let watcher::Event::Delete(svc) = event {
                let _ = deleted_tx.send((svc.namespace().unwrap_or_default(), svc.name_any()));
            }
        });
        let pods = ctx.pods.cache();
        let pod_triggers = pod_triggers(ctx.pods.subscribe(), services.clone(), listed.clone());
        // Endpoints changed or deleted behind our back are put back.
        let (endpoints, endpoints_writer) = reflector::store();
        let endpoints_events = watcher(Api::<Endpoints>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(endpoints_writer)
            .touched_objects();
        let state = Arc::new(State {
            recorder: Recorder::new(client.clone(), "endpoint-controller"),
            client,
            pods,
            endpoints,
            replaced: Mutex::new(HashMap::new()),
            backoff: Backoffs::new(Duration::from_millis(100), Duration::from_secs(30)),
        });
        let cleanup = delete_orphans(state.clone(), services.clone(), listed, deleted_rx);
        let controller = Controller::for_stream(service_events, services)
            .reconcile_on(pod_triggers)
            .watches_stream(endpoints_events, |ep: Endpoints| {
                Some(ObjectRef::<Service>::new(&ep.name_any()).within(&ep.namespace().unwrap_or_default()))
            })
            .run(reconcile, error_policy, state)
            .for_each(|_| futures::future::ready(()));
        futures::future::join(controller, cleanup).await;
    })
}

/// Deletes the Endpoints of deleted Services: first those left from before we ran,
/// then each one as its Service goes.
async fn delete_orphans(
    st: Arc<State>,
    services: Store<Service>,
    mut listed: tokio::sync::watch::Receiver<bool>,
    mut deleted: mpsc::UnboundedReceiver<(String, String)>,
) {
    let _ = listed.wait_for(|l| *l).await;
    let all: Api<Endpoints> = Api::all(st.client.clone());
    match all.list_metadata(&ListParams::default()).await {
        Ok(list) => {
            for ep in list.items {
                let (ns, name) = (ep.namespace().unwrap_or_default(), ep.name_any());
                let lock = ep.annotations().contains_key(LEADER_ANNOTATION);
                if !lock && services.get(&ObjectRef::new(&name).within(&ns)).is_none() {
                    delete_endpoints(&st, &services, &ns, &name).await;
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list endpoints to find leftovers"),
    }
    while let Some((ns, name)) = deleted.recv().await {
        delete_endpoints(&st, &services, &ns, &name).await;
    }
}

async fn delete_endpoints(st: &State, services: &Store<Service>, ns: &str, name: &str) {
    st.replaced().remove(&format!("{ns}/{name}"));
    // A Service of the same name created meanwhile keeps (and rewrites) them.
    if services.get(&ObjectRef::new(name).within(ns)).is_some() {
        return;
    }
    let api: Api<Endpoints> = Api::namespaced(st.client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => tracing::info!(namespace = %ns, name = %name, "deleted the endpoints of a deleted service"),
        Err(kube::Error::Api(s)) if s.is_not_found() => {}
        Err(e) => {
            tracing::warn!(namespace = %ns, name = %name, error = %e, "cannot delete the endpoints of a deleted service")
        }
    }
}

fn error_policy(svc: Arc<Service>, error: &Error, st: Arc<State>) -> Action {
    let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
    let delay = st.backoff.next(&key);
    if error.is_conflict() {
        tracing::debug!(%error, retry_in = ?delay, "endpoints changed meanwhile; syncing again");
    } else {
        tracing::warn!(%error, retry_in = ?delay, "endpoints sync failed");
    }
    Action::requeue(delay)
}

async fn reconcile(svc: Arc<Service>, st: Arc<State>) -> Result<Action, Error> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let span = tracing::info_span!("endpoints", namespace = %ns, name = %name);
    let key = format!("{ns}/{name}");
    let action = sync(&svc, &st, &ns, &key).instrument(span).await?;
    st.backoff.reset(&key);
    Ok(action)
}

async fn sync(svc: &Service, st: &State, ns: &str, key: &str) -> Result<Action, Error> {
    st.pods.wait_until_ready().await;
    until_ready(&st.endpoints).await;
    // Selector-less Services keep the Endpoints their users (or the apiserver, for
    // `default/kubernetes`) write.
    if service_selector(svc).is_none() || svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = svc.name_any();
    let current = st.endpoints.get(&ObjectRef::new(&name).within(ns));
    let current_rv = current.as_ref().and_then(|c| c.metadata.resource_version.clone());
    if current_rv.is_some() && st.replaced().get(key) == current_rv.as_ref() {
        tracing::debug!("endpoints cache behind our own write; waiting for it");
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let pods = selected_pods(&st.pods, svc);
    let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
    let Some(want) = desired_endpoints(svc, &pods, current.as_deref()) else { return Ok(Action::await_change()) };
    let api: Api<Endpoints> = Api::namespaced(st.client.clone(), ns);
    let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    let (action, result) = match current {
        None => ("create", api.create(&pp, &want).await),
        Some(_) => ("update", api.replace(&name, &pp, &want).await),
    };
    match result {
        Ok(ep) => {
            match current_rv {
                Some(rv) => st.replaced().insert(key.into(), rv),
                None => st.replaced().remove(key),
            };
            let ready: usize = ep.subsets.iter().flatten().map(|s| count(&s.addresses)).sum();
            let not_ready: usize = ep.subsets.iter().flatten().map(|s| count(&s.not_ready_addresses)).sum();
            tracing::info!(ready, not_ready, "{action}d endpoints");
            Ok(Action::await_change())
        }
        Err(e) if namespace_terminating(&e) => Ok(Action::await_change()),
        Err(e) => {
            let err = Error::Write { service: key.into(), action, source: Box::new(e) };
            if !err.is_conflict() {
                let note = format!("Failed to update endpoint {key}: {err}");
                st.recorder.warning(&svc.object_ref(&()), "FailedToUpdateEndpoint", "Update", note).await;
            }
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpointslice::fixtures::{P, p, service};
    use serde_json::json;

    fn subsets(svc: &Service, pods: &[P]) -> (Vec<EndpointSubset>, bool) {
        let pods: Vec<Pod> = pods.iter().map(P::pod).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        endpoint_subsets(svc, &refs)
    }

    fn ips(a: &Option<Vec<EndpointAddress>>) -> Vec<String> {
        a.iter().flatten().map(|a| a.ip.clone()).collect()
    }

    type Ports = Vec<(Option<String>, i32)>;

    fn ports(s: &EndpointSubset) -> Ports {
        s.ports.iter().flatten().map(|p| (p.name.clone(), p.port)).collect()
    }

    fn http() -> serde_json::Value {
        json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}])
    }

    #[test]
    fn ready_and_not_ready_addresses() {
        let svc = service(http());
        let terminating = P { deleting: true, ..p("c", "10.0.0.3", true) };
        let (s, truncated) = subsets(&svc, &[p("b", "10.0.0.2", false), p("a", "10.0.0.1", true), terminating]);
        assert!(!truncated);
        assert_eq!(s.len(), 1);
        assert_eq!(ips(&s[0].addresses), vec!["10.0.0.1"]);
        assert_eq!(ips(&s[0].not_ready_addresses), vec!["10.0.0.2"], "terminating pods are left out");
        assert_eq!(ports(&s[0]), vec![(Some("http".into()), 8080)]);
        let a = &s[0].addresses.as_ref().unwrap()[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        let target = a.target_ref.clone().unwrap_or_default();
        assert_eq!(
            (target.kind.as_deref(), target.name.as_deref(), target.uid.as_deref()),
            (Some("Pod"), Some("a"), Some("uid-a"))
        );
    }

    #[test]
    fn publish_not_ready_addresses_lists_every_pod_as_ready() {
        let mut svc = service(http());
        svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let terminating = P { deleting: true, ..p("c", "10.0.0.3", true) };
        let (s, _) = subsets(&svc, &[p("a", "10.0.0.1", true), p("b", "10.0.0.2", false), terminating]);
        assert_eq!(ips(&s[0].addresses), vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert!(s[0].not_ready_addresses.is_none());
    }

    #[test]
    fn subsets_group_addresses_by_ports() {
        let svc = service(json!([
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"}
        ]));
        let other = P { ports: json!([{"name": "http", "containerPort": 9090}]), ..p("b", "10.0.0.2", true) };
        let none = P { ports: json!([]), ..p("c", "10.0.0.3", true) };
        let (s, _) = subsets(&svc, &[p("a", "10.0.0.1", true), other, none]);
        let mut got: Vec<(Vec<String>, Ports)> = s.iter().map(|s| (ips(&s.addresses), ports(s))).collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (vec!["10.0.0.1".into()], vec![(Some("http".into()), 8080)]),
                (vec!["10.0.0.1".into(), "10.0.0.2".into(), "10.0.0.3".into()], vec![(Some("dns".into()), 53)]),
                (vec!["10.0.0.2".into()], vec![(Some("http".into()), 9090)]),
            ]
        );
    }

    #[test]
    fn headless_without_ports_still_lists_pods() {
        let mut svc = service(json!([]));
        let (s, _) = subsets(&svc, &[p("a", "10.0.0.1", true)]);
        assert!(s.is_empty(), "a ClusterIP Service without ports has no endpoints");
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        let (s, _) = subsets(&svc, &[p("a", "10.0.0.1", true)]);
        assert_eq!(s.len(), 1);
        assert_eq!(ips(&s[0].addresses), vec!["10.0.0.1"]);
        assert!(s[0].ports.is_none());
    }

    fn many(n: usize, ready: bool, from: usize) -> Vec<P> {
        (from..from + n)
            .map(|i| {
                p(
                    &format!("p{i:05}"),
                    Box::leak(format!("10.{}.{}.{}", i / 62500, (i / 250) % 250, i % 250).into_boxed_str()),
                    ready,
                )
            })
            .collect()
    }

    #[test]
    fn truncated_above_capacity_ready_first() {
        let svc = service(http());
        let cases = [(900, 200, 900, 100), (1200, 300, 1000, 0), (1000, 0, 1000, 0), (400, 400, 400, 400)];
        for (ready, not_ready, want_ready, want_not_ready) in cases {
            let mut pods = many(ready, true, 0);
            pods.extend(many(not_ready, false, ready));
            let (s, truncated) = subsets(&svc, &pods);
            let r: usize = s.iter().map(|s| count(&s.addresses)).sum();
            let n: usize = s.iter().map(|s| count(&s.not_ready_addresses)).sum();
            assert_eq!((r, n), (want_ready, want_not_ready), "{ready} ready, {not_ready} not ready");
            assert_eq!(truncated, ready + not_ready > MAX_CAPACITY);
            let pods_refs: Vec<Pod> = pods.iter().map(P::pod).collect();
            let refs: Vec<&Pod> = pods_refs.iter().collect();
            let ep = desired_endpoints(&svc, &refs, None).expect("new endpoints");
            assert_eq!(ep.annotations().get(OVER_CAPACITY).is_some(), truncated);
        }
    }

    #[test]
    fn desired_endpoints_only_when_something_changed() {
        let svc = service(http());
        let pods: Vec<Pod> = [p("a", "10.0.0.1", true)].iter().map(P::pod).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let first = desired_endpoints(&svc, &refs, None).expect("created");
        assert_eq!(first.metadata.name.as_deref(), Some("web"));
        let labels = first.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get(LABEL_SKIP_MIRROR).map(String::as_str), Some("true"));
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(desired_endpoints(&svc, &refs, Some(&first)), None);
        // A stale over-capacity mark goes.
        let mut marked = first.clone();
        marked.metadata.annotations = Some(BTreeMap::from([(OVER_CAPACITY.to_string(), "truncated".to_string())]));
        let fixed = desired_endpoints(&svc, &refs, Some(&marked)).expect("annotation removed");
        assert!(fixed.metadata.annotations.is_none());
        // The pod turning not ready moves it to notReadyAddresses.
        let pods: Vec<Pod> = [p("a", "10.0.0.1", false)].iter().map(P::pod).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let next = desired_endpoints(&svc, &refs, Some(&first)).expect("changed");
        let s = &next.subsets.unwrap_or_default()[0];
        assert!(s.addresses.is_none());
        assert_eq!(ips(&s.not_ready_addresses), vec!["10.0.0.1"]);
        // No pods: no subsets.
        let empty = desired_endpoints(&svc, &[], Some(&first)).expect("emptied");
        assert!(empty.subsets.is_none());
    }
}
