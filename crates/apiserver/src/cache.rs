//! The watch cache: every stored object, decoded, in memory, plus a window of recent
//! events.
//!
//! One task follows the store's watch of `/registry/` and applies each event here, so
//! lists, gets and watches are served without re-reading the store. Every write handler
//! waits with [`WatchCache::wait_for`] until the cache has seen its own write before it
//! answers, which keeps reads consistent with acknowledged writes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use rkube_store::{Event, EventType, KeyValue, Revision, Store, StoreError};
use serde_json::Value;
use tokio::sync::{broadcast, watch};

/// How many recent events a watch can start from without going to the store.
const WINDOW: usize = 20_000;

/// How many live events one resource's watchers may fall behind before they are ended
/// (`410 Expired`, as upstream's cacher ends a watcher it cannot keep up with).
const LIVE_CAPACITY: usize = 4096;

/// The resource a store key or watch prefix belongs to: its first segment after
/// `/registry/` (`pods` in `/registry/pods/default/web`). `None` when the prefix does
/// not name one whole segment (`/registry/`, `/registry/po`).
fn resource_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("/registry/")?;
    let (resource, _) = rest.split_once('/')?;
    (!resource.is_empty()).then_some(resource)
}

/// Live events, fanned out by resource: a pod event wakes the pod watchers, not every
/// watch of the server (the garbage collector alone watches every resource; one shared
/// channel woke all of them, and let a burst of one resource's events push another
/// resource's idle watchers past the channel's capacity).
#[derive(Default)]
struct Live {
    by_resource: HashMap<Box<str>, broadcast::Sender<CacheEvent>>,
    /// Watches whose prefix names no single resource.
    everything: Option<broadcast::Sender<CacheEvent>>,
}

impl Live {
    fn subscribe(&mut self, prefix: &str) -> broadcast::Receiver<CacheEvent> {
        let sender = match resource_of(prefix) {
            Some(resource) => self.by_resource.entry(resource.into()).or_insert_with(new_channel),
            None => self.everything.get_or_insert_with(new_channel),
        };
        sender.subscribe()
    }

    /// Sends `event` to its resource's watchers and to those of everything, and forgets
    /// a channel whose watchers are all gone.
    fn send(&mut self, event: CacheEvent) {
        if let Some(all) = &self.everything
            && all.send(event.clone()).is_err()
        {
            self.everything = None;
        }
        let key = event.key.clone();
        if let Some(resource) = resource_of(&key)
            && let Some(sender) = self.by_resource.get(resource)
            && sender.send(event).is_err()
        {
            self.by_resource.remove(resource);
        }
    }
}

fn new_channel() -> broadcast::Sender<CacheEvent> {
    broadcast::channel(LIVE_CAPACITY).0
}

/// An object as cached: its JSON (storage version, `resourceVersion` filled in).
#[derive(Debug, Clone)]
pub struct Cached {
    pub obj: Arc<Value>,
    pub mod_revision: Revision,
}

/// One change as the cache saw it.
#[derive(Debug, Clone)]
pub struct CacheEvent {
    pub revision: Revision,
    pub key: Arc<str>,
    pub kind: EventType,
    /// The new object, or for a delete the last state (with the delete's revision as its
    /// resourceVersion, as upstream reports deletions).
    pub obj: Arc<Value>,
    pub prev: Option<Arc<Value>>,
    /// `obj` as compact JSON, encoded by the first watcher that sends it as it is and
    /// shared by every other one (the clones of an event share this cell): a pod event
    /// reaches the scheduler, several controllers and clients, and encoding it once
    /// instead of once per watcher is much of the fan-out's cost.
    encoded: Arc<OnceLock<Option<Arc<str>>>>,
    /// For a write made through this server: the bytes stored, from which `encoded` is
    /// made without encoding `obj` again (see [`encode_stored`]).
    stored: Option<Arc<StoredBytes>>,
}

/// Where an encoded object's metadata object lies: the offsets of its opening and
/// closing braces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataSpan {
    pub start: usize,
    pub end: usize,
}

/// An object's stored bytes and where its metadata lies in them.
#[derive(Debug)]
pub struct StoredBytes {
    bytes: Vec<u8>,
    span: MetadataSpan,
}

impl StoredBytes {
    /// `bytes` and `span` as [`encode_stored`] gave them.
    pub fn new(bytes: Vec<u8>, span: MetadataSpan) -> StoredBytes {
        StoredBytes { bytes, span }
    }

    /// The cached object's JSON: the stored bytes with `"resourceVersion":"<revision>"`
    /// added last in the metadata, where the cache stamps it.
    pub fn with_resource_version(&self, revision: Revision) -> Option<String> {
        let text = std::str::from_utf8(&self.bytes).ok()?;
        let (head, tail) = (text.get(..self.span.end)?, text.get(self.span.end..)?);
        let mut out = String::with_capacity(text.len() + 40);
        push_stamped(&mut out, head, revision, tail);
        Some(out)
    }

    /// Appends the cached object's metadata object (resourceVersion stamped) to `out`.
    pub fn push_metadata(&self, out: &mut String, revision: Revision) -> Option<()> {
        let text = std::str::from_utf8(&self.bytes).ok()?;
        let head = text.get(self.span.start..self.span.end)?;
        push_stamped(out, head, revision, "}");
        Some(())
    }
}

/// `head`, then `"resourceVersion":"<revision>"` as the object's last field, then `tail`.
fn push_stamped(out: &mut String, head: &str, revision: Revision, tail: &str) {
    out.push_str(head);
    // An empty metadata object gets no separating comma.
    if !head.ends_with('{') {
        out.push(',');
    }
    out.push_str("\"resourceVersion\":\"");
    out.push_str(&revision.to_string());
    out.push('"');
    out.push_str(tail);
}

/// Encodes an object to store, as `serde_json::to_vec` does, and finds its metadata
/// object, whose closing brace is where its `resourceVersion` goes once the cache has
/// stamped it (the cache adds it last there, see [`WatchCache::expect_write`]). `None`
/// when that cannot be said: no metadata object, or one that still has a
/// resourceVersion (stamping then replaces it in place).
///
/// Each written object is sent to its watchers encoded; with this, that encoding is a
/// copy of the stored bytes with one field added instead of a second serialization
/// (and a metadata-only watch copies just the metadata).
pub fn encode_stored(obj: &Value) -> serde_json::Result<(Vec<u8>, Option<MetadataSpan>)> {
    let Value::Object(map) = obj else { return Ok((serde_json::to_vec(obj)?, None)) };
    let mut out = Vec::with_capacity(1024);
    let mut span = None;
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k)?;
        out.push(b':');
        let start = out.len();
        serde_json::to_writer(&mut out, v)?;
        if k == "metadata" && v.as_object().is_some_and(|m| !m.contains_key("resourceVersion")) {
            span = Some(MetadataSpan { start, end: out.len() - 1 });
        }
    }
    out.push(b'}');
    Ok((out, span))
}

impl CacheEvent {
    pub(crate) fn new(
        revision: Revision,
        key: Arc<str>,
        kind: EventType,
        obj: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) -> Self {
        CacheEvent { revision, key, kind, obj, prev, encoded: Arc::default(), stored: None }
    }

    /// The watch line of `obj` as `PartialObjectMetadata`, from the stored bytes: what
    /// encoding it would write, without encoding its metadata again. `None` for objects
    /// not written through this server (and deletions).
    pub fn metadata_line(&self, kind: &str) -> Option<String> {
        let stored = self.stored.as_ref()?;
        let mut line = String::with_capacity(stored.span.end - stored.span.start + 128);
        line.push_str("{\"type\":\"");
        line.push_str(kind);
        line.push_str(
            "\",\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":",
        );
        stored.push_metadata(&mut line, self.revision)?;
        line.push_str("}}\n");
        Some(line)
    }

    /// `obj` encoded as JSON, once for all watchers.
    pub fn encoded(&self) -> Option<Arc<str>> {
        self.encoded
            .get_or_init(|| {
                let spliced = self.stored.as_ref().and_then(|s| s.with_resource_version(self.revision));
                spliced.or_else(|| serde_json::to_string(&*self.obj).ok()).map(Arc::from)
            })
            .clone()
    }
}

/// An object as the window keeps it: decoded while it is the key's newest state (the
/// cache holds that same `Arc`), as its JSON once a newer write superseded it. A decoded
/// pod is several times the size of its JSON, and a window of 20,000 events kept every
/// superseded version decoded: the largest part of the server's memory growth per
/// created and bound pod, and of the page faults that growth costs.
#[derive(Debug, Clone)]
enum Held {
    Decoded(Arc<Value>),
    Json(Arc<str>),
}

type EncodedCell = Arc<OnceLock<Option<Arc<str>>>>;

impl Held {
    /// `obj` as its JSON: the encoding its watchers share (made now if none of them has
    /// sent it yet, and then shared with them).
    fn json(obj: &Arc<Value>, encoded: &EncodedCell) -> Held {
        match encoded.get_or_init(|| serde_json::to_string(&**obj).ok().map(Arc::from)) {
            Some(json) => Held::Json(json.clone()),
            None => Held::Decoded(obj.clone()),
        }
    }

    fn decoded(&self) -> Arc<Value> {
        match self {
            Held::Decoded(obj) => obj.clone(),
            Held::Json(json) => Arc::new(serde_json::from_str(json).unwrap_or(Value::Null)),
        }
    }
}

/// One event as the window keeps it (see [`Held`]).
struct WindowEvent {
    revision: Revision,
    key: Arc<str>,
    kind: EventType,
    obj: Held,
    prev: Option<Held>,
    /// The live event's shared encoding.
    encoded: EncodedCell,
}

impl WindowEvent {
    fn to_event(&self) -> CacheEvent {
        // A JSON-held object's JSON is the one in this cell (see `Held::json`).
        CacheEvent {
            revision: self.revision,
            key: self.key.clone(),
            kind: self.kind,
            obj: self.obj.decoded(),
            prev: self.prev.as_ref().map(Held::decoded),
            encoded: self.encoded.clone(),
            stored: None,
        }
    }
}

struct State {
    objects: BTreeMap<String, Cached>,
    events: VecDeque<WindowEvent>,
    /// The revision of each key's newest event in `events`.
    newest_in_window: HashMap<Arc<str>, Revision>,
    /// Events with revision > this are all in `events`.
    window_start: Revision,
    revision: Revision,
}

impl State {
    /// Appends `event` to the window, turning the version it supersedes into JSON.
    fn push_to_window(&mut self, event: &CacheEvent) {
        let superseded = self.newest_in_window.insert(event.key.clone(), event.revision);
        // The previous version's JSON, shared with the window event that wrote it.
        let mut prev_json = None;
        if let Some(older) = superseded {
            let i = self.events.partition_point(|e| e.revision < older);
            if let Some(e) = self.events.get_mut(i).filter(|e| e.revision == older) {
                if let Held::Decoded(obj) = &e.obj {
                    e.obj = Held::json(obj, &e.encoded);
                }
                prev_json = Some(e.obj.clone());
            }
        }
        let prev = match (&event.prev, prev_json) {
            (None, _) => None,
            (Some(_), Some(json)) => Some(json),
            (Some(p), None) => Some(Held::json(p, &EncodedCell::default())),
        };
        // A delete's object is no key's newest state: keep its JSON at once.
        let obj = match event.kind {
            EventType::Put => Held::Decoded(event.obj.clone()),
            EventType::Delete => Held::json(&event.obj, &event.encoded),
        };
        self.events.push_back(WindowEvent {
            revision: event.revision,
            key: event.key.clone(),
            kind: event.kind,
            obj,
            prev,
            encoded: event.encoded.clone(),
        });
        while self.events.len() > WINDOW {
            let Some(old) = self.events.pop_front() else { break };
            self.window_start = old.revision;
            if self.newest_in_window.get(&old.key) == Some(&old.revision) {
                self.newest_in_window.remove(&old.key);
            }
        }
    }
}

/// The cache shared by every handler.
pub struct WatchCache {
    state: RwLock<State>,
    /// Taken after `state` when both are held (a watch subscribes while it reads the
    /// window, so no event falls between the two).
    live: Mutex<Live>,
    rev_tx: watch::Sender<Revision>,
    /// Objects being written through this server, as their writers decoded them, by key
    /// (see [`WatchCache::expect_write`]).
    written: Mutex<HashMap<String, Vec<Written>>>,
    next_written: AtomicU64,
}

/// An object on its way to the store: the bytes written, the same object decoded, and
/// where its resourceVersion goes in its encoding ([`encode_stored`]).
struct Written {
    id: u64,
    bytes: Vec<u8>,
    obj: Value,
    span: Option<MetadataSpan>,
}

/// Forgets an expected write that never reached the cache (it failed, or its caller
/// gave up) when dropped.
pub struct ExpectedWrite<'a> {
    cache: &'a WatchCache,
    key: String,
    id: u64,
}

impl Drop for ExpectedWrite<'_> {
    fn drop(&mut self) {
        let mut written = self.cache.written.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = written.get_mut(&self.key) {
            list.retain(|w| w.id != self.id);
            if list.is_empty() {
                written.remove(&self.key);
            }
        }
    }
}

/// Decodes a stored value and stamps its resourceVersion.
pub fn decode(kv: &KeyValue, revision: Revision) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(&kv.value).ok()?;
    let meta = rkube_apimachinery::meta::metadata_mut(&mut v);
    meta.insert("resourceVersion".into(), Value::String(revision.to_string()));
    Some(v)
}

impl WatchCache {
    /// Loads every object from the store and starts following it.
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<WatchCache>, StoreError> {
        let snapshot = store.range("/registry/", None, 0, None).await?;
        let mut objects = BTreeMap::new();
        for kv in &snapshot.kvs {
            if let Some(obj) = decode(kv, kv.mod_revision) {
                objects.insert(kv.key.clone(), Cached { obj: Arc::new(obj), mod_revision: kv.mod_revision });
            }
        }
        let rev = snapshot.revision;
        let (rev_tx, _) = watch::channel(rev);
        let cache = Arc::new(WatchCache {
            state: RwLock::new(State {
                objects,
                events: VecDeque::new(),
                newest_in_window: HashMap::new(),
                window_start: rev,
                revision: rev,
            }),
            live: Mutex::default(),
            rev_tx,
            written: Mutex::default(),
            next_written: AtomicU64::new(0),
        });
        let mut stream = store.watch("/registry/", rev).await?;
        let c = cache.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(ev) => c.apply(ev),
                    Err(e) => {
                        tracing::error!(error = %e, "store watch failed; cache stops following");
                        break;
                    }
                }
            }
        });
        Ok(cache)
    }

    fn apply(&self, mut ev: Event) {
        let rev = ev.kv.mod_revision;
        let key: Arc<str> = Arc::from(ev.kv.key.as_str());
        let event = {
            let mut st = self.state.write().expect("cache lock poisoned");
            let prev = st.objects.get(&ev.kv.key).map(|c| c.obj.clone());
            let event = match ev.event_type {
                EventType::Put => {
                    let (written, span) = self.take_written(&ev.kv, rev).map_or((None, None), |(o, at)| (Some(o), at));
                    let stored =
                        span.map(|span| Arc::new(StoredBytes { bytes: std::mem::take(&mut ev.kv.value), span }));
                    let Some(obj) = written.or_else(|| decode(&ev.kv, rev)) else {
                        tracing::warn!(key = %ev.kv.key, "undecodable object in store");
                        st.revision = rev;
                        drop(st);
                        self.rev_tx.send_replace(rev);
                        return;
                    };
                    let obj = Arc::new(obj);
                    st.objects.insert(ev.kv.key.clone(), Cached { obj: obj.clone(), mod_revision: rev });
                    CacheEvent { stored, ..CacheEvent::new(rev, key, EventType::Put, obj, prev) }
                }
                EventType::Delete => {
                    st.objects.remove(&ev.kv.key);
                    let last = decode(&ev.kv, rev).or_else(|| prev.as_deref().cloned()).unwrap_or(Value::Null);
                    CacheEvent::new(rev, key, EventType::Delete, Arc::new(last), prev)
                }
            };
            st.push_to_window(&event);
            st.revision = rev;
            event
        };
        self.live.lock().unwrap_or_else(PoisonError::into_inner).send(event);
        self.rev_tx.send_replace(rev);
    }

    /// Tells the cache that `bytes`, the JSON of `obj`, are about to be written under
    /// `key`: when the store reports that write, the cache takes `obj` instead of decoding
    /// the bytes again (decoding every written object was ~7 % of the server's CPU when
    /// pods are created and bound at full speed). Keep the guard until the write has
    /// been answered. `span` is where [`encode_stored`] found the metadata in `bytes`:
    /// the cache stamps the resourceVersion last in `obj`'s metadata, so watchers get the
    /// bytes with it added there instead of `obj` encoded again.
    pub fn expect_write(&self, key: &str, bytes: &[u8], span: Option<MetadataSpan>, obj: Value) -> ExpectedWrite<'_> {
        let id = self.next_written.fetch_add(1, Ordering::Relaxed);
        let w = Written { id, bytes: bytes.to_vec(), obj, span };
        self.written.lock().unwrap_or_else(PoisonError::into_inner).entry(key.to_string()).or_default().push(w);
        ExpectedWrite { cache: self, key: key.to_string(), id }
    }

    /// The object written as `kv`, if its writer left it (byte for byte the same), and
    /// where its resourceVersion goes in its encoding.
    fn take_written(&self, kv: &KeyValue, revision: Revision) -> Option<(Value, Option<MetadataSpan>)> {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        let list = written.get_mut(&kv.key)?;
        let i = list.iter().position(|w| w.bytes == kv.value)?;
        let Written { mut obj, span, .. } = list.swap_remove(i);
        if list.is_empty() {
            written.remove(&kv.key);
        }
        drop(written);
        rkube_apimachinery::meta::metadata_mut(&mut obj)
            .insert("resourceVersion".into(), Value::String(revision.to_string()));
        Some((obj, span))
    }

    /// The newest revision the cache has applied.
    pub fn revision(&self) -> Revision {
        *self.rev_tx.borrow()
    }

    /// Waits until the cache has applied `rev`.
    pub async fn wait_for(&self, rev: Revision) {
        let mut rx = self.rev_tx.subscribe();
        let _ = rx.wait_for(|r| *r >= rev).await;
    }

    pub fn get(&self, key: &str) -> Option<Cached> {
        self.state.read().expect("cache lock poisoned").objects.get(key).cloned()
    }

    /// Every object under `prefix` strictly after `start_after`, in key order, with the
    /// revision they were read at.
    pub fn list(&self, prefix: &str, start_after: Option<&str>) -> (Vec<Cached>, Revision) {
        let st = self.state.read().expect("cache lock poisoned");
        let lower = match start_after {
            Some(s) if s >= prefix => Bound::Excluded(s.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        let items = st
            .objects
            .range((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, st.revision)
    }

    /// Events after `rev` under `prefix` from the window, and a live receiver that
    /// continues exactly after them. `None` when `rev` is older than the window.
    pub fn watch_from(
        &self,
        prefix: &str,
        rev: Revision,
    ) -> Option<(Vec<CacheEvent>, broadcast::Receiver<CacheEvent>, Revision)> {
        let st = self.state.read().expect("cache lock poisoned");
        if rev < st.window_start {
            return None;
        }
        let rx = self.subscribe(prefix);
        let first = st.events.partition_point(|e| e.revision <= rev);
        let past = st.events.range(first..).filter(|e| e.key.starts_with(prefix)).map(WindowEvent::to_event).collect();
        Some((past, rx, st.revision))
    }

    /// A snapshot of current objects under `prefix` and a live receiver continuing after
    /// them (for watches from "now" or resourceVersion=0).
    pub fn snapshot_and_watch(&self, prefix: &str) -> (Vec<Cached>, broadcast::Receiver<CacheEvent>, Revision) {
        let st = self.state.read().expect("cache lock poisoned");
        let rx = self.subscribe(prefix);
        let items = st
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, rx, st.revision)
    }

    /// A receiver of the live events under `prefix` (and maybe others: watchers still
    /// filter by their prefix).
    fn subscribe(&self, prefix: &str) -> broadcast::Receiver<CacheEvent> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner).subscribe(prefix)
    }

    /// The oldest revision a watch can start from in memory.
    pub fn window_start(&self) -> Revision {
        self.state.read().expect("cache lock poisoned").window_start
    }
}

#[cfg(test)]
mod tests {
    use rkube_store::sqlite::SqliteStore;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_key_or_prefix_names_its_resource_only_by_a_whole_segment() {
        assert_eq!(resource_of("/registry/pods/default/web"), Some("pods"));
        assert_eq!(resource_of("/registry/pods/"), Some("pods"));
        assert_eq!(resource_of("/registry/nodes/a"), Some("nodes"));
        for prefix in ["/registry/", "/registry/po", "/registry//x", "/other/pods/a", ""] {
            assert_eq!(resource_of(prefix), None, "{prefix}");
        }
    }

    #[tokio::test]
    async fn live_events_reach_their_resources_watchers_and_a_burst_elsewhere_does_not_expire_them() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db.sqlite")).unwrap());
        let cache = WatchCache::start(store.clone()).await.unwrap();
        let mut pods = cache.subscribe("/registry/pods/");
        let mut everything = cache.subscribe("/registry/");
        // More config map events than a channel holds, none read.
        let mut last = 0;
        for i in 0..LIVE_CAPACITY + 10 {
            last = store.create(&format!("/registry/configmaps/ns/c{i}"), b"{}".to_vec()).await.unwrap().mod_revision;
        }
        let pod = store.create("/registry/pods/ns/p", b"{}".to_vec()).await.unwrap().mod_revision;
        cache.wait_for(pod).await;
        assert!(last < pod);

        let ev = pods.try_recv().expect("the pod watcher kept up and sees the pod");
        assert_eq!((ev.revision, &*ev.key), (pod, "/registry/pods/ns/p"));
        assert!(pods.try_recv().is_err(), "nothing but pods reaches the pod watcher");
        // A watch of everything sees the burst, and fell behind it.
        assert!(matches!(everything.try_recv(), Err(broadcast::error::TryRecvError::Lagged(_))));

        // A resource's channel goes once its last watcher has, and comes back with the next.
        drop(pods);
        let again = store.create("/registry/pods/ns/q", b"{}".to_vec()).await.unwrap().mod_revision;
        cache.wait_for(again).await;
        assert!(!cache.live.lock().unwrap().by_resource.contains_key("pods"));
        let mut pods = cache.subscribe("/registry/pods/ns/");
        let third = store.create("/registry/pods/ns/r", b"{}".to_vec()).await.unwrap().mod_revision;
        cache.wait_for(third).await;
        assert_eq!(pods.try_recv().unwrap().revision, third);
    }

    #[tokio::test]
    async fn a_write_the_cache_expects_is_taken_as_given_others_are_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db.sqlite")).unwrap());
        let cache = WatchCache::start(store.clone()).await.unwrap();
        let bytes = serde_json::to_vec(&json!({"metadata": {"name": "a"}})).unwrap();

        // The expected object is what the cache holds (a marker the bytes do not have
        // shows it was not decoded), with the write's resourceVersion.
        let marked = json!({"metadata": {"name": "a"}, "marker": true});
        let expected = cache.expect_write("/registry/x/a", &bytes, None, marked);
        let kv = store.create("/registry/x/a", bytes.clone()).await.unwrap();
        cache.wait_for(kv.mod_revision).await;
        drop(expected);
        let got = cache.get("/registry/x/a").unwrap();
        assert_eq!(got.obj["marker"], true);
        assert_eq!(got.obj["metadata"]["resourceVersion"], kv.mod_revision.to_string());

        // Other bytes than expected: decoded from the store as usual.
        let expected = cache.expect_write("/registry/x/b", b"{}", None, json!({"marker": true}));
        let kv = store.create("/registry/x/b", bytes.clone()).await.unwrap();
        cache.wait_for(kv.mod_revision).await;
        drop(expected);
        let got = cache.get("/registry/x/b").unwrap();
        assert_eq!(got.obj.get("marker"), None);
        assert_eq!(got.obj["metadata"]["name"], "a");

        // Expectations are forgotten once their guards go, used or not.
        assert!(cache.written.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_window_keeps_superseded_versions_as_json_and_replays_them_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db.sqlite")).unwrap());
        let put = |v: i64| serde_json::to_vec(&json!({"metadata": {"name": "a"}, "v": v})).unwrap();
        // Written before the cache started: its first update has no window event to
        // take the previous version's JSON from.
        let r0 = store.create("/registry/y/a", put(0)).await.unwrap().mod_revision;
        let cache = WatchCache::start(store.clone()).await.unwrap();
        let mut live = cache.subscribe("/registry/x/");
        let start = cache.revision();
        let r0b = store.update("/registry/y/a", put(5), r0).await.unwrap().mod_revision;
        let k = "/registry/x/a";
        let r1 = store.create(k, put(1)).await.unwrap().mod_revision;
        let r2 = store.update(k, put(2), r1).await.unwrap().mod_revision;
        let other = store.create("/registry/x/b", put(9)).await.unwrap().mod_revision;
        let r3 = store.delete(k, r2).await.unwrap().mod_revision;
        let r4 = store.create(k, put(4)).await.unwrap().mod_revision;
        cache.wait_for(r4).await;

        {
            let st = cache.state.read().unwrap();
            let held: Vec<(Revision, bool)> =
                st.events.iter().map(|e| (e.revision, matches!(e.obj, Held::Decoded(_)))).collect();
            // Only each key's newest state stays decoded, and it is the cache's own copy.
            assert_eq!(held, [(r0b, true), (r1, false), (r2, false), (other, true), (r3, false), (r4, true)]);
            let newest = st.events.back().unwrap();
            let Held::Decoded(obj) = &newest.obj else { unreachable!() };
            assert!(Arc::ptr_eq(obj, &st.objects[k].obj));
            assert_eq!(st.newest_in_window[k], r4);
            // The superseded version's JSON is the encoding its live event shares with
            // watchers, made once.
            let first_live = loop {
                let ev = live.try_recv().unwrap();
                if ev.revision == r1 {
                    break ev;
                }
            };
            let Held::Json(json) = &st.events[1].obj else { unreachable!() };
            assert!(Arc::ptr_eq(json, &first_live.encoded().unwrap()));
        }

        let (past, _rx, _) = cache.watch_from("/registry/x/a", start).unwrap();
        let seen: Vec<(Revision, EventType, Value, Option<Value>)> =
            past.iter().map(|e| (e.revision, e.kind, (*e.obj).clone(), e.prev.as_deref().cloned())).collect();
        let at = |v: i64, rev: Revision| json!({"metadata": {"name": "a", "resourceVersion": rev.to_string()}, "v": v});
        assert_eq!(
            seen,
            [
                (r1, EventType::Put, at(1, r1), None),
                (r2, EventType::Put, at(2, r2), Some(at(1, r1))),
                (r3, EventType::Delete, at(2, r3), Some(at(2, r2))),
                (r4, EventType::Put, at(4, r4), None),
            ]
        );
        // A replayed event's encoding is the JSON it was kept as.
        assert_eq!(past[0].encoded().as_deref(), Some(serde_json::to_string(&at(1, r1)).unwrap().as_str()));
        let (past, _rx, _) = cache.watch_from("/registry/y/", start).unwrap();
        assert_eq!(past.len(), 1);
        assert_eq!(past[0].prev.as_deref(), Some(&at(0, r0)));
        // Starting after some events replays only the later ones.
        let (past, _rx, _) = cache.watch_from("/registry/x/", r2).unwrap();
        assert_eq!(past.iter().map(|e| e.revision).collect::<Vec<_>>(), [other, r3, r4]);
    }

    #[test]
    fn stored_bytes_are_what_serde_writes_and_the_spliced_encoding_is_the_cached_objects() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {}}),
            json!({"metadata": {}, "data": {"k": "v"}}),
            json!({"kind": "K", "metadata": {"name": "q\"uote\\d \u{e9}\u{1F600}\n"}, "z": [1, 2.5, null, true]}),
            json!({"metadata": {"name": "last"}}),
            json!({"a": 1, "metadata": {"name": "m", "annotations": {"k": "{\"metadata\":{}}"}}, "b": {"metadata": {}}}),
        ];
        for obj in objects {
            let (bytes, span) = encode_stored(&obj).unwrap();
            assert_eq!(bytes, serde_json::to_vec(&obj).unwrap(), "{obj}");
            let span = span.expect("a metadata object without a resourceVersion");
            let mut cached = obj.clone();
            rkube_apimachinery::meta::metadata_mut(&mut cached).insert("resourceVersion".into(), json!("1234"));
            let stored = StoredBytes { bytes, span };
            let spliced = stored.with_resource_version(1234).unwrap();
            assert_eq!(spliced, serde_json::to_string(&cached).unwrap(), "{obj}");
            // The metadata alone, as a metadata-only watch sends it.
            let mut metadata = String::new();
            stored.push_metadata(&mut metadata, 1234).unwrap();
            assert_eq!(metadata, serde_json::to_string(&cached["metadata"]).unwrap(), "{obj}");
        }
        // Where stamping would not add the field last, no place is given.
        for obj in [
            json!({"metadata": {"resourceVersion": "1", "name": "a"}}),
            json!({"kind": "K"}),
            json!([1]),
            json!({"metadata": null}),
        ] {
            let (bytes, span) = encode_stored(&obj).unwrap();
            assert_eq!(bytes, serde_json::to_vec(&obj).unwrap());
            assert_eq!(span, None, "{obj}");
        }
    }

    #[tokio::test]
    async fn a_written_objects_event_is_encoded_from_its_stored_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db.sqlite")).unwrap());
        let cache = WatchCache::start(store.clone()).await.unwrap();
        let mut live = cache.subscribe("/registry/x/");
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        let (bytes, span) = encode_stored(&obj).unwrap();
        // A marker only the decoded object has: the event's encoding is made from the
        // bytes (no marker), not from the object.
        let mut marked = obj.clone();
        marked["marker"] = json!(true);
        let expected = cache.expect_write("/registry/x/a", &bytes, span, marked);
        let kv = store.create("/registry/x/a", bytes).await.unwrap();
        cache.wait_for(kv.mod_revision).await;
        drop(expected);
        let ev = live.try_recv().unwrap();
        assert_eq!(ev.obj["marker"], true);
        let mut want = obj.clone();
        want["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
        assert_eq!(ev.encoded().as_deref(), Some(serde_json::to_string(&want).unwrap().as_str()));
        let metadata_event = json!({"type": "MODIFIED", "object": crate::table::partial_metadata(&want)});
        assert_eq!(ev.metadata_line("MODIFIED"), Some(format!("{metadata_event}\n")));

        // Without a place for the resourceVersion, the object itself is encoded.
        let expected = cache.expect_write("/registry/x/b", br#"{"v":1}"#, None, json!({"v": 1, "marker": true}));
        let kv = store.create("/registry/x/b", br#"{"v":1}"#.to_vec()).await.unwrap();
        cache.wait_for(kv.mod_revision).await;
        drop(expected);
        let ev = live.try_recv().unwrap();
        let encoded: Value = serde_json::from_str(&ev.encoded().unwrap()).unwrap();
        assert_eq!(encoded["marker"], true);
    }
}
