//! Shared informers: one watch of a resource for every controller that needs it
//! (client-go's `SharedInformerFactory`).
//!
//! Pods are watched by the ReplicaSet, Endpoints, EndpointSlice and node lifecycle
//! controllers. With a watch each, every pod write was decoded four times, cloned into four
//! caches and held four times in memory; at 10,000 pods that was a large share of the
//! server's CPU. An [`Informer`] runs one kube-runtime watcher, keeps one [`Cache`], and
//! hands every subscriber the same `Arc` of each object, in order, after the cache has
//! applied it (so a subscriber reacting to an event reads a cache at least that new).
//!
//! A subscriber that joins late first gets the state so far as a relist (`Init`,
//! `InitApply` of everything cached, `InitDone`), so every subscriber sees the same
//! protocol as from its own watch. Objects are cached without `metadata.managedFields`
//! (client-go's `TransformStripManagedFields`): no controller reads them, and they are
//! most of a pod's size; they are not even decoded ([`Slim`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::slim::Slim;

/// One change, as every subscriber sees it.
pub type Change<K> = watcher::Event<Arc<K>>;

/// Objects by namespace and name.
type Objects<K> = BTreeMap<(String, String), Arc<K>>;

/// The objects, and who controls each (upstream's `PodControllerUIDIndex` and orphan
/// index): a ReplicaSet's sync reads its own pods and the orphans of its namespace,
/// not every pod of the namespace.
struct Indexed<K> {
    objects: Objects<K>,
    /// The objects each controller (by uid) controls.
    controlled: HashMap<String, Objects<K>>,
    /// The objects without a controller, by namespace, then name.
    orphans: HashMap<String, BTreeMap<String, Arc<K>>>,
}

impl<K> Default for Indexed<K> {
    fn default() -> Self {
        Indexed { objects: BTreeMap::new(), controlled: HashMap::new(), orphans: HashMap::new() }
    }
}

/// The uid of the object's controller (the owner reference with `controller: true`).
fn controller_uid<K: Resource>(o: &K) -> Option<&str> {
    o.meta().owner_references.iter().flatten().find(|r| r.controller == Some(true)).map(|r| r.uid.as_str())
}

impl<K: Resource> Indexed<K> {
    fn insert(&mut self, key: (String, String), o: Arc<K>) {
        if let Some(old) = self.objects.insert(key.clone(), o.clone())
            && controller_uid(old.as_ref()) != controller_uid(o.as_ref())
        {
            self.unindex(&key, old.as_ref());
        }
        // Same controller (most updates): the entry is replaced where it is.
        self.index(key, o);
    }

    fn remove(&mut self, key: &(String, String)) {
        if let Some(old) = self.objects.remove(key) {
            self.unindex(key, old.as_ref());
        }
    }

    fn replace_all(&mut self, objects: impl IntoIterator<Item = ((String, String), Arc<K>)>) {
        *self = Indexed::default();
        for (key, o) in objects {
            self.insert(key, o);
        }
    }

    fn index(&mut self, key: (String, String), o: Arc<K>) {
        match controller_uid(o.as_ref()) {
            Some(uid) => match self.controlled.get_mut(uid) {
                Some(objects) => {
                    objects.insert(key, o);
                }
                None => {
                    self.controlled.insert(uid.to_string(), BTreeMap::from([(key, o)]));
                }
            },
            None => {
                self.orphans.entry(key.0).or_default().insert(key.1, o);
            }
        }
    }

    fn unindex(&mut self, key: &(String, String), o: &K) {
        match controller_uid(o) {
            Some(uid) => {
                if let Some(objects) = self.controlled.get_mut(uid) {
                    objects.remove(key);
                    if objects.is_empty() {
                        self.controlled.remove(uid);
                    }
                }
            }
            None => {
                if let Some(names) = self.orphans.get_mut(&key.0) {
                    names.remove(&key.1);
                    if names.is_empty() {
                        self.orphans.remove(&key.0);
                    }
                }
            }
        }
    }
}

/// The objects of one resource, by namespace and name, as the shared watch last saw them.
pub struct Cache<K> {
    objects: Arc<RwLock<Indexed<K>>>,
    ready: watch::Receiver<bool>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache { objects: self.objects.clone(), ready: self.ready.clone() }
    }
}

impl<K: Resource> Cache<K> {
    /// Every cached object.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.read().objects.values().cloned().collect()
    }

    /// The cached objects of one namespace.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let from = (namespace.to_string(), String::new());
        self.read().objects.range(from..).take_while(|((ns, _), _)| ns == namespace).map(|(_, o)| o.clone()).collect()
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.read().objects.get(&(namespace.to_string(), name.to_string())).cloned()
    }

    /// The cached objects whose controller has this uid, in any namespace.
    pub fn controlled_by(&self, uid: &str) -> Vec<Arc<K>> {
        self.read().controlled.get(uid).map(|o| o.values().cloned().collect()).unwrap_or_default()
    }

    /// The cached objects of one namespace that have no controller, those `keep` keeps
    /// (looked at under the lock: only the kept ones are copied out).
    pub fn orphans_in(&self, namespace: &str, keep: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        let st = self.read();
        let Some(orphans) = st.orphans.get(namespace) else { return Vec::new() };
        orphans.values().filter(|o| keep(o)).cloned().collect()
    }

    /// Waits until the first full list is in (every waiter is woken, unlike
    /// kube-runtime's `Store::wait_until_ready`, which wakes one).
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Indexed<K>> {
        self.objects.read().unwrap_or_else(PoisonError::into_inner)
    }
}

fn key_of<K: Resource>(o: &K) -> (String, String) {
    let m = o.meta();
    (m.namespace.clone().unwrap_or_default(), m.name.clone().unwrap_or_default())
}

/// Who is listening, and the relist in progress (replayed to a subscriber that joins
/// during it).
struct Fanout<K> {
    subscribers: Vec<mpsc::UnboundedSender<Change<K>>>,
    /// `InitApply` objects of the relist in progress, when one is.
    relisting: Option<Vec<Arc<K>>>,
    /// Whether a first list has completed.
    listed: bool,
}

/// One shared watch of a resource.
pub struct Informer<K> {
    cache: Cache<K>,
    ready_tx: Arc<watch::Sender<bool>>,
    fanout: Arc<Mutex<Fanout<K>>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer { cache: self.cache.clone(), ready_tx: self.ready_tx.clone(), fanout: self.fanout.clone() }
    }
}

impl<K> Default for Informer<K> {
    fn default() -> Self {
        let (ready_tx, ready) = watch::channel(false);
        Informer {
            cache: Cache { objects: Arc::default(), ready },
            ready_tx: Arc::new(ready_tx),
            fanout: Arc::new(Mutex::new(Fanout { subscribers: Vec::new(), relisting: None, listed: false })),
        }
    }
}

impl<K> Informer<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static + crate::slim::Leaves,
    K::DynamicType: Default,
{
    pub fn cache(&self) -> Cache<K> {
        self.cache.clone()
    }

    /// Every change from now on, preceded by the state so far as a relist.
    pub fn subscribe(&self) -> impl Stream<Item = Change<K>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut fanout = self.fanout.lock().unwrap_or_else(PoisonError::into_inner);
        let replay = if let Some(so_far) = &fanout.relisting {
            Some(so_far.clone())
        } else if fanout.listed {
            Some(self.cache.state())
        } else {
            None
        };
        if let Some(objects) = replay {
            let _ = tx.send(watcher::Event::Init);
            for o in objects {
                let _ = tx.send(watcher::Event::InitApply(o));
            }
            if fanout.relisting.is_none() {
                let _ = tx.send(watcher::Event::InitDone);
            }
        }
        fanout.subscribers.push(tx);
        UnboundedReceiverStream::new(rx)
    }

    /// Runs the watch until aborted, feeding the cache and the subscribers. Objects are
    /// decoded without their managed fields ([`Slim`]), not decoded and then stripped.
    pub async fn run(self, api: Api<Slim<K>>, config: watcher::Config) {
        let stream = watcher::watcher(api, config).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => self.apply(unwrap_slim(event)),
                // The watcher relists by itself after a failure; its backoff paces it.
                Err(e) => tracing::debug!(error = %e, "shared watch failed; retrying"),
            }
        }
    }

    /// Applies one watch event to the cache, then hands it to every subscriber.
    fn apply(&self, event: watcher::Event<K>) {
        let event = match event {
            watcher::Event::Apply(o) => watcher::Event::Apply(slim(o)),
            watcher::Event::InitApply(o) => watcher::Event::InitApply(slim(o)),
            watcher::Event::Delete(o) => watcher::Event::Delete(slim(o)),
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitDone => watcher::Event::InitDone,
        };
        // The fan-out lock is held while the cache changes, so a subscriber joining
        // meanwhile replays a state consistent with the events it gets afterwards.
        let mut fanout = self.fanout.lock().unwrap_or_else(PoisonError::into_inner);
        match &event {
            watcher::Event::Apply(o) => {
                self.write().insert(key_of(o.as_ref()), o.clone());
            }
            watcher::Event::Delete(o) => {
                self.write().remove(&key_of(o.as_ref()));
            }
            watcher::Event::Init => fanout.relisting = Some(Vec::new()),
            watcher::Event::InitApply(o) => fanout.relisting.get_or_insert_with(Vec::new).push(o.clone()),
            watcher::Event::InitDone => {
                let listed = fanout.relisting.take().unwrap_or_default();
                self.write().replace_all(listed.into_iter().map(|o| (key_of(o.as_ref()), o)));
                fanout.listed = true;
                self.ready_tx.send_replace(true);
            }
        }
        fanout.subscribers.retain(|tx| tx.send(event.clone()).is_ok());
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Indexed<K>> {
        self.cache.objects.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn unwrap_slim<K>(event: watcher::Event<Slim<K>>) -> watcher::Event<K> {
    match event {
        watcher::Event::Apply(Slim(o)) => watcher::Event::Apply(o),
        watcher::Event::InitApply(Slim(o)) => watcher::Event::InitApply(o),
        watcher::Event::Delete(Slim(o)) => watcher::Event::Delete(o),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// The object without its managed fields, shared.
fn slim<K: Resource>(mut o: K) -> Arc<K> {
    o.meta_mut().managed_fields = None;
    Arc::new(o)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    use super::*;

    fn pod(ns: &str, name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(events: &[Change<Pod>]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                watcher::Event::Init => "init".to_string(),
                watcher::Event::InitApply(p) => format!("init-apply {}", p.metadata.name.as_deref().unwrap_or("")),
                watcher::Event::InitDone => "init-done".to_string(),
                watcher::Event::Apply(p) => format!("apply {}", p.metadata.name.as_deref().unwrap_or("")),
                watcher::Event::Delete(p) => format!("delete {}", p.metadata.name.as_deref().unwrap_or("")),
            })
            .collect()
    }

    async fn drain(s: &mut (impl Stream<Item = Change<Pod>> + Unpin)) -> Vec<Change<Pod>> {
        let mut out = Vec::new();
        while let Ok(Some(e)) = tokio::time::timeout(std::time::Duration::from_millis(20), s.next()).await {
            out.push(e);
        }
        out
    }

    #[tokio::test]
    async fn every_subscriber_sees_the_same_objects_in_order_whenever_it_joins() {
        let informer = Informer::<Pod>::default();
        let mut early = Box::pin(informer.subscribe());
        informer.apply(watcher::Event::Init);
        informer.apply(watcher::Event::InitApply(pod("a", "p1")));
        // Joins during the first list: replays it so far.
        let mut during = Box::pin(informer.subscribe());
        informer.apply(watcher::Event::InitApply(pod("b", "p2")));
        assert!(!informer.cache().is_ready(), "not ready before the list is complete");
        informer.apply(watcher::Event::InitDone);
        informer.apply(watcher::Event::Apply(pod("a", "p3")));
        informer.apply(watcher::Event::Delete(pod("b", "p2")));
        // Joins after: replays the cache as a relist.
        let mut late = Box::pin(informer.subscribe());
        informer.apply(watcher::Event::Apply(pod("a", "p4")));

        let full = ["init", "init-apply p1", "init-apply p2", "init-done", "apply p3", "delete p2", "apply p4"];
        assert_eq!(names(&drain(&mut early).await), full);
        assert_eq!(names(&drain(&mut during).await), full);
        assert_eq!(names(&drain(&mut late).await), ["init", "init-apply p1", "init-apply p3", "init-done", "apply p4"]);

        let cache = informer.cache();
        assert!(cache.is_ready());
        cache.wait_until_ready().await;
        let in_a: Vec<_> = cache.in_namespace("a").iter().map(|p| p.metadata.name.clone().unwrap()).collect();
        assert_eq!(in_a, ["p1", "p3", "p4"]);
        assert!(cache.in_namespace("b").is_empty());
        assert!(cache.get("a", "p3").is_some() && cache.get("b", "p2").is_none());
    }

    #[tokio::test]
    async fn subscribers_share_one_copy_without_managed_fields() {
        let informer = Informer::<Pod>::default();
        let mut one = Box::pin(informer.subscribe());
        let mut two = Box::pin(informer.subscribe());
        informer.apply(watcher::Event::Init);
        informer.apply(watcher::Event::InitDone);
        informer.apply(watcher::Event::Apply(pod("a", "p1")));
        let (e1, e2) = (drain(&mut one).await, drain(&mut two).await);
        let (watcher::Event::Apply(p1), watcher::Event::Apply(p2)) = (&e1[2], &e2[2]) else { panic!("{e1:?}") };
        assert!(Arc::ptr_eq(p1, p2), "one decoded object for every subscriber");
        assert!(Arc::ptr_eq(p1, &informer.cache().get("a", "p1").unwrap()), "and the cache holds that same one");
        assert_eq!(p1.metadata.managed_fields, None);
    }

    #[tokio::test]
    async fn a_relist_replaces_the_cache_and_a_gone_subscriber_is_dropped() {
        let informer = Informer::<Pod>::default();
        let gone = informer.subscribe();
        drop(gone);
        informer.apply(watcher::Event::Init);
        informer.apply(watcher::Event::InitApply(pod("a", "old")));
        informer.apply(watcher::Event::InitDone);
        informer.apply(watcher::Event::Init);
        // Until the relist completes, the cache keeps the old state.
        informer.apply(watcher::Event::InitApply(pod("a", "new")));
        assert!(informer.cache().get("a", "old").is_some());
        informer.apply(watcher::Event::InitDone);
        assert!(informer.cache().get("a", "old").is_none() && informer.cache().get("a", "new").is_some());
        assert!(informer.fanout.lock().unwrap().subscribers.is_empty());
    }

    fn owned(ns: &str, name: &str, owners: &[(&str, bool)]) -> Pod {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let mut p = pod(ns, name);
        p.metadata.owner_references = Some(
            owners
                .iter()
                .map(|(uid, controller)| OwnerReference {
                    uid: uid.to_string(),
                    controller: Some(*controller),
                    ..Default::default()
                })
                .collect(),
        );
        p
    }

    #[test]
    fn objects_are_indexed_by_controller_and_orphans_by_namespace() {
        let informer = Informer::<Pod>::default();
        let cache = informer.cache();
        let names = |v: Vec<Arc<Pod>>| {
            let mut n: Vec<String> = v.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
            n.sort();
            n
        };
        informer.apply(watcher::Event::Init);
        informer.apply(watcher::Event::InitApply(owned("a", "p1", &[("rs1", true)])));
        // An owner that is not the controller does not count.
        informer.apply(watcher::Event::InitApply(owned("a", "p2", &[("other", false)])));
        informer.apply(watcher::Event::InitApply(pod("b", "p3")));
        informer.apply(watcher::Event::InitDone);
        assert_eq!(names(cache.controlled_by("rs1")), ["p1"]);
        assert_eq!(names(cache.orphans_in("a", |_| true)), ["p2"]);
        assert_eq!(names(cache.orphans_in("b", |_| true)), ["p3"]);
        assert!(cache.orphans_in("b", |p| p.metadata.name.as_deref() == Some("x")).is_empty());
        assert!(cache.controlled_by("other").is_empty());

        // Adopted, released, changed hands, deleted.
        informer.apply(watcher::Event::Apply(owned("a", "p2", &[("rs1", true)])));
        informer.apply(watcher::Event::Apply(owned("b", "p3", &[("rs2", true)])));
        assert_eq!(names(cache.controlled_by("rs1")), ["p1", "p2"]);
        assert!(cache.orphans_in("a", |_| true).is_empty() && cache.orphans_in("b", |_| true).is_empty());
        informer.apply(watcher::Event::Apply(pod("a", "p1")));
        informer.apply(watcher::Event::Apply(owned("b", "p3", &[("rs1", true)])));
        assert_eq!(names(cache.controlled_by("rs1")), ["p2", "p3"]);
        assert!(cache.controlled_by("rs2").is_empty());
        assert_eq!(names(cache.orphans_in("a", |_| true)), ["p1"]);
        // The index hands out the newest version of an object.
        let mut newer = owned("b", "p3", &[("rs1", true)]);
        newer.metadata.resource_version = Some("7".into());
        informer.apply(watcher::Event::Apply(newer));
        let p3 = cache.controlled_by("rs1").into_iter().find(|p| p.metadata.name.as_deref() == Some("p3")).unwrap();
        assert_eq!(p3.metadata.resource_version.as_deref(), Some("7"));
        informer.apply(watcher::Event::Delete(owned("a", "p2", &[("rs1", true)])));
        assert_eq!(names(cache.controlled_by("rs1")), ["p3"]);

        // A relist rebuilds the index from what it lists.
        informer.apply(watcher::Event::Init);
        informer.apply(watcher::Event::InitApply(owned("a", "p9", &[("rs2", true)])));
        informer.apply(watcher::Event::InitDone);
        assert!(cache.controlled_by("rs1").is_empty() && cache.orphans_in("a", |_| true).is_empty());
        assert_eq!(names(cache.controlled_by("rs2")), ["p9"]);
    }
}
