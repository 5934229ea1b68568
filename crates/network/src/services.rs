//! One watch of Services and EndpointSlices for the whole node, shared by the proxy and
//! DNS. Each consumer [`ServiceView::subscribe`]s and is told *which* Services changed
//! since it last looked (a slice counts for the Service named by its
//! `kubernetes.io/service-name` label), so it can redo only those; after a relist it is
//! told "everything".

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{Notify, watch};

/// The label that ties an EndpointSlice to its Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";

/// A Service's identity: namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ServiceKey {
        ServiceKey { namespace: namespace.into(), name: name.into() }
    }
    pub fn of_service(svc: &Service) -> ServiceKey {
        ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any())
    }
    /// The Service a slice belongs to, if it is labelled with one.
    pub fn of_slice(slice: &EndpointSlice) -> Option<ServiceKey> {
        let name = slice.labels().get(LABEL_SERVICE_NAME)?;
        Some(ServiceKey::new(slice.namespace().unwrap_or_default(), name.clone()))
    }
}

/// What changed since a subscriber last looked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Everything may have changed (first list, or a relist after a lost watch).
    pub all: bool,
    pub keys: BTreeSet<ServiceKey>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        !self.all && self.keys.is_empty()
    }
}

/// The subscribers, and a sequence number counting the changes published so far.
struct Subscribers {
    list: Mutex<Vec<Arc<Inbox>>>,
    seq: watch::Sender<u64>,
}

impl Default for Subscribers {
    fn default() -> Subscribers {
        Subscribers { list: Mutex::default(), seq: watch::Sender::new(0) }
    }
}

#[derive(Default)]
struct Inbox {
    /// What changed, and the sequence number of the newest change in it.
    changes: Mutex<(Changes, u64)>,
    notify: Notify,
}

impl Subscribers {
    fn publish(&self, f: impl Fn(&mut Changes)) {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let seq = *self.seq.borrow() + 1;
        for inbox in list.iter() {
            let mut inbox_changes = inbox.changes.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut inbox_changes.0);
            inbox_changes.1 = seq;
            drop(inbox_changes);
            inbox.notify.notify_one();
        }
        // Only now: a change numbered `seq` is in every inbox.
        self.seq.send_replace(seq);
    }
}

/// The cached Services and EndpointSlices of the cluster.
#[derive(Clone)]
pub struct ServiceView {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    subscribers: Arc<Subscribers>,
    /// How many of the two initial lists have arrived. (Not `Store::wait_until_ready`:
    /// it wakes only one of several waiters, and the proxy and DNS both wait.)
    lists_done: watch::Sender<u8>,
    /// The sequence number of the newest change the node's packet filter carries
    /// (see [`ServiceView::applied`]).
    applied: watch::Sender<u64>,
}

impl ServiceView {
    fn new(services: Store<Service>, slices: Store<EndpointSlice>) -> ServiceView {
        ServiceView {
            services,
            slices,
            subscribers: Arc::default(),
            lists_done: watch::Sender::new(0),
            applied: watch::Sender::new(0),
        }
    }

    /// A view over stores someone else fills (tests, benchmarks).
    /// It is ready once both stores are (their writers saw `InitDone`).
    pub fn from_stores(services: Store<Service>, slices: Store<EndpointSlice>) -> ServiceView {
        let view = ServiceView::new(services, slices);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (services, slices, done) = (view.services.clone(), view.slices.clone(), view.lists_done.clone());
            // The only waiter on each store.
            rt.spawn(async move {
                let _ = services.wait_until_ready().await;
                let _ = slices.wait_until_ready().await;
                done.send_replace(2);
            });
        }
        view
    }

    pub fn services(&self) -> Vec<Arc<Service>> {
        self.services.state()
    }
    pub fn slices(&self) -> Vec<Arc<EndpointSlice>> {
        self.slices.state()
    }
    pub fn service(&self, key: &ServiceKey) -> Option<Arc<Service>> {
        self.services.get(&reflector::ObjectRef::new(&key.name).within(&key.namespace))
    }
    /// Waits until both initial lists have arrived.
    pub async fn ready(&self) {
        let _ = self.lists_done.subscribe().wait_for(|n| *n >= 2).await;
    }

    /// A new consumer; its first [`Subscription::next`] reports everything.
    pub fn subscribe(&self) -> Subscription {
        let inbox = Arc::new(Inbox::default());
        let mut list = self.subscribers.list.lock().unwrap_or_else(|e| e.into_inner());
        *inbox.changes.lock().unwrap_or_else(|e| e.into_inner()) =
            (Changes { all: true, keys: BTreeSet::new() }, *self.subscribers.seq.borrow());
        inbox.notify.notify_one();
        list.push(inbox.clone());
        Subscription { inbox, seq: 0 }
    }

    /// The service proxy reports that the packet filter now carries every change up to
    /// `seq` (a [`Subscription::seq`] it synced).
    pub fn applied(&self, seq: u64) {
        self.applied.send_if_modified(|a| (seq > *a).then(|| *a = seq).is_some());
    }

    /// Resolves once no EndpointSlice lists `ip` as a ready endpoint and the proxy has
    /// applied the view in which that is so: from then on the node sends no new
    /// connections to `ip`. (Only meaningful where a proxy reports [`ServiceView::applied`].)
    pub async fn drained(&self, ip: &str) {
        let mut seq = self.subscribers.seq.subscribe();
        loop {
            let at = *seq.borrow_and_update();
            if !self.routes_to(ip) {
                let _ = self.applied.subscribe().wait_for(|a| *a >= at).await;
                return;
            }
            if seq.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether some slice offers `ip` as a ready endpoint.
    fn routes_to(&self, ip: &str) -> bool {
        self.slices.state().iter().any(|s| {
            s.endpoints.iter().any(|e| {
                e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true) && e.addresses.iter().any(|a| a == ip)
            })
        })
    }

    /// Records a change by hand (for views fed by [`ServiceView::from_stores`]).
    pub fn touch(&self, key: Option<ServiceKey>) {
        match key {
            Some(key) => self.subscribers.publish(|c| {
                c.keys.insert(key.clone());
            }),
            None => self.subscribers.publish(|c| c.all = true),
        }
    }
}

/// One consumer's inbox of changes.
pub struct Subscription {
    inbox: Arc<Inbox>,
    seq: u64,
}

impl Subscription {
    /// Waits for at least one change and takes everything accumulated so far.
    pub async fn next(&mut self) -> Changes {
        loop {
            {
                let mut changes = self.inbox.changes.lock().unwrap_or_else(|e| e.into_inner());
                if !changes.0.is_empty() {
                    self.seq = changes.1;
                    return std::mem::take(&mut changes.0);
                }
            }
            self.inbox.notify.notified().await;
        }
    }

    /// The sequence number of the newest change the last [`Subscription::next`] took:
    /// every change up to it has been reported to this subscriber.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// Starts watching Services and EndpointSlices in every namespace; the task ends when
/// `stop` turns true.
pub fn watch(client: Client, stop: watch::Receiver<bool>) -> (ServiceView, tokio::task::JoinHandle<()>) {
    let (services, services_writer) = reflector::store();
    let (slices, slices_writer) = reflector::store();
    let view = ServiceView::new(services, slices);
    let subscribers = view.subscribers.clone();
    let lists_done = view.lists_done.clone();
    let svc_stream = reflector::reflector(
        services_writer,
        watcher::watcher(Api::<Service>::all(client.clone()), watcher::Config::default()),
    )
    .map(|ev| ev.map(|ev| key_of(ev, |s| Some(ServiceKey::of_service(s)), Kind::Services)))
    .boxed();
    let slice_stream = reflector::reflector(
        slices_writer,
        watcher::watcher(Api::<EndpointSlice>::all(client), watcher::Config::default()),
    )
    .map(|ev| ev.map(|ev| key_of(ev, ServiceKey::of_slice, Kind::Slices)))
    .boxed();
    let mut merged = futures::stream::select(svc_stream, slice_stream);
    let mut stop = stop;
    let task = tokio::spawn(async move {
        let mut first_lists = 0u8;
        loop {
            tokio::select! {
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
                ev = merged.next() => match ev {
                    None => return,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "service watch failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    Some(Ok(Touched::Nothing)) => {}
                    Some(Ok(Touched::Key(key))) => subscribers.publish(|c| {
                        c.keys.insert(key.clone());
                    }),
                    Some(Ok(Touched::All(kind))) => {
                        first_lists |= kind as u8;
                        lists_done.send_if_modified(|n| {
                            let done = first_lists.count_ones() as u8;
                            (*n != done).then(|| *n = done).is_some()
                        });
                        subscribers.publish(|c| c.all = true)
                    }
                }
            }
        }
    });
    (view, task)
}

enum Touched {
    Nothing,
    Key(ServiceKey),
    All(Kind),
}

/// Which list a relist was of (bit flags).
#[derive(Clone, Copy)]
enum Kind {
    Services = 1,
    Slices = 2,
}

fn key_of<K>(ev: Event<K>, key: impl Fn(&K) -> Option<ServiceKey>, kind: Kind) -> Touched {
    match ev {
        Event::Apply(obj) | Event::Delete(obj) => key(&obj).map_or(Touched::Nothing, Touched::Key),
        Event::InitDone => Touched::All(kind),
        Event::Init | Event::InitApply(_) => Touched::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_see_everything_first_then_only_what_changed() {
        let (services, _w1) = reflector::store::<Service>();
        let (slices, _w2) = reflector::store::<EndpointSlice>();
        let view = ServiceView::from_stores(services, slices);
        let mut a = view.subscribe();
        assert_eq!(a.next().await, Changes { all: true, keys: BTreeSet::new() });
        view.touch(Some(ServiceKey::new("default", "web")));
        view.touch(Some(ServiceKey::new("default", "db")));
        let mut b = view.subscribe();
        let got = a.next().await;
        assert!(!got.all);
        assert_eq!(got.keys.into_iter().map(|k| k.name).collect::<Vec<_>>(), ["db", "web"]);
        assert!(b.next().await.all, "a late subscriber starts from everything");
        view.touch(None);
        assert!(a.next().await.all);
    }

    #[tokio::test]
    async fn a_pod_is_drained_once_the_proxy_applied_a_view_without_it() {
        let (services, _w1) = reflector::store::<Service>();
        let (slices, mut writer) = reflector::store::<EndpointSlice>();
        let slice = |ready: bool| -> EndpointSlice {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-abc", "namespace": "shop", "labels": {LABEL_SERVICE_NAME: "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": ready}},
                              {"addresses": ["10.0.0.2"]}]
            }))
            .unwrap()
        };
        writer.apply_watcher_event(&Event::Apply(slice(true)));
        let view = ServiceView::from_stores(services, slices);
        let mut proxy = view.subscribe();
        proxy.next().await;
        view.applied(proxy.seq());
        let gate = tokio::spawn({
            let view = view.clone();
            async move { view.drained("10.0.0.1").await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!gate.is_finished(), "drained while still a ready endpoint");
        // The endpoint turns not ready (a terminating pod): drained only once the proxy
        // applied that change.
        writer.apply_watcher_event(&Event::Apply(slice(false)));
        view.touch(Some(ServiceKey::new("shop", "web")));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!gate.is_finished(), "drained before the proxy applied the change");
        proxy.next().await;
        view.applied(proxy.seq());
        tokio::time::timeout(std::time::Duration::from_secs(1), gate).await.expect("drained").unwrap();
        // An address no slice offers is drained as soon as the proxy is up to date.
        tokio::time::timeout(std::time::Duration::from_secs(1), view.drained("10.9.9.9")).await.expect("drained");
    }

    #[test]
    fn a_slice_belongs_to_the_service_its_label_names() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-abc", "namespace": "shop", "labels": {LABEL_SERVICE_NAME: "web"}},
            "addressType": "IPv4", "endpoints": []
        }))
        .unwrap();
        assert_eq!(ServiceKey::of_slice(&slice), Some(ServiceKey::new("shop", "web")));
        let mut unlabelled = slice.clone();
        unlabelled.metadata.labels = None;
        assert_eq!(ServiceKey::of_slice(&unlabelled), None);
    }
}
