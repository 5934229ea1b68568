//! Watch streams: newline-delimited JSON events over a chunked response.
//!
//! A watch starts from the cache's window when it can (the usual case), from the
//! store's history when the requested revision is older than the window, and answers an
//! `ERROR` event with 410 Expired when neither has it. Selector-filtered watches turn an
//! object leaving the selector into `DELETED` and one entering it into `ADDED`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rkube_apimachinery::selector::{FieldSelector, LabelSelector};
use rkube_apimachinery::{ApiError, meta};
use rkube_registry::ResourceDef;
use rkube_store::{EventType, Revision};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::body::Rendering;
use crate::cache::{CacheEvent, decode};
use crate::rest::{Api, Target, prefix, store_error, to_served};
use crate::table::{IncludeObject, PartialMetadata, table};

/// Parameters of one watch.
#[derive(Debug, Clone)]
pub struct WatchParams {
    pub resource_version: Option<String>,
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub timeout: Duration,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub rendering: Rendering,
    pub include: IncludeObject,
}

struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(meta::labels(obj)) && self.fields.matches(obj)
    }

    /// The event a watcher sees for a change, if any: the changed object itself
    /// (borrowed, so its shared encoding can be sent) or, for an object leaving the
    /// selector, its last matching state.
    fn event<'a>(
        &self,
        kind: EventType,
        obj: &'a Value,
        prev: Option<&'a Value>,
    ) -> Option<(&'static str, Cow<'a, Value>)> {
        let now = kind == EventType::Put && self.matches(obj);
        let before = prev.is_some_and(|p| self.matches(p));
        match (kind, before, now) {
            (EventType::Delete, true, _) => Some(("DELETED", Cow::Borrowed(obj))),
            (EventType::Delete, false, _) => {
                // Deleted: the last state decides (prev may be missing from history).
                (prev.is_none() && self.matches(obj)).then_some(("DELETED", Cow::Borrowed(obj)))
            }
            (EventType::Put, false, true) => Some(("ADDED", Cow::Borrowed(obj))),
            (EventType::Put, true, true) => Some(("MODIFIED", Cow::Borrowed(obj))),
            // Upstream reports the object as it last matched, at the new revision.
            (EventType::Put, true, false) => {
                let mut last = prev.cloned().unwrap_or_else(|| obj.clone());
                if let Some(rv) = meta::resource_version(obj).map(str::to_string) {
                    meta::metadata_mut(&mut last).insert("resourceVersion".into(), json!(rv));
                }
                Some(("DELETED", Cow::Owned(last)))
            }
            (EventType::Put, false, false) => None,
        }
    }
}

struct Encoder {
    def: &'static ResourceDef,
    rendering: Rendering,
    include: IncludeObject,
    sent_columns: bool,
}

impl Encoder {
    fn encode(&mut self, kind: &str, stored: &Value) -> Option<String> {
        let object = match self.rendering {
            // Metadata is the same in every version: no conversion, and the metadata is
            // written from the stored object, not copied (the garbage collector watches
            // every resource this way, so every pod write is encoded like this once).
            Rendering::PartialMetadata => {
                let event = MetadataEvent { kind, object: PartialMetadata::of(stored) };
                let mut line = serde_json::to_string(&event).ok()?;
                line.push('\n');
                return Some(line);
            }
            Rendering::Object => to_served(self.def, stored).ok()?,
            Rendering::Table => {
                let obj = to_served(self.def, stored).ok()?;
                let rv = meta::resource_version(&obj).unwrap_or("").to_string();
                let t = table(self.def, &[obj], json!({"resourceVersion": rv}), self.include, !self.sent_columns);
                self.sent_columns = true;
                t
            }
        };
        let mut line = serde_json::to_string(&json!({"type": kind, "object": object})).ok()?;
        line.push('\n');
        Some(line)
    }

    /// The line for an object sent as stored (or its metadata only), from its stored
    /// bytes or its shared encoding: byte for byte what [`Encoder::encode`] would write.
    /// `None` when this watch renders or converts objects, so each must be encoded for it.
    fn encode_shared(&self, kind: &str, ev: &CacheEvent) -> Option<String> {
        if self.rendering == Rendering::PartialMetadata {
            return ev.metadata_line(kind);
        }
        if self.rendering != Rendering::Object || self.def.needs_conversion() {
            return None;
        }
        let object = ev.encoded()?;
        let mut line = String::with_capacity(object.len() + kind.len() + 24);
        line.push_str("{\"type\":\"");
        line.push_str(kind);
        line.push_str("\",\"object\":");
        line.push_str(&object);
        line.push_str("}\n");
        Some(line)
    }

    fn bookmark(&self, rev: Revision, initial_end: bool) -> String {
        let mut metadata = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": metadata});
        format!("{}\n", json!({"type": "BOOKMARK", "object": obj}))
    }
}

/// A watch event of `PartialObjectMetadata`, borrowing the stored metadata.
#[derive(serde::Serialize)]
struct MetadataEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: PartialMetadata<'a>,
}

fn error_line(e: &ApiError) -> String {
    format!("{}\n", json!({"type": "ERROR", "object": e.to_status()}))
}

/// Starts a watch; the returned receiver yields the response body's chunks.
pub fn start(api: Arc<Api>, t: &Target, params: WatchParams) -> Result<mpsc::Receiver<String>, ApiError> {
    let def = t.def;
    let supported = meta::supported_field_selectors(def.group, def.plural);
    params.field_selector.check_supported(supported).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let pfx = prefix(def, t.namespace.as_deref());
    let start_rev: Option<Revision> = match params.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(s) => Some(s.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))?),
    };
    let (tx, rx) = mpsc::channel::<String>(256);
    let filter = Filter { labels: params.label_selector.clone(), fields: params.field_selector.clone() };
    let enc = Encoder { def, rendering: params.rendering, include: params.include, sent_columns: false };
    api.metrics.watchers.inc();
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(params.timeout);
        tokio::pin!(deadline);
        let run = run_watch(&api, pfx, start_rev, filter, enc, &params, &tx);
        tokio::select! {
            _ = &mut deadline => {}
            _ = run => {}
            _ = tx.closed() => {}
        }
        api.metrics.watchers.dec();
    });
    Ok(rx)
}

async fn run_watch(
    api: &Arc<Api>,
    pfx: String,
    start_rev: Option<Revision>,
    filter: Filter,
    mut enc: Encoder,
    params: &WatchParams,
    tx: &mpsc::Sender<String>,
) {
    let send = |s: String| async move { tx.send(s).await.is_ok() };
    let (backlog, mut live, mut last_rev) = match start_rev {
        None => {
            let (items, rx, rev) = api.cache.snapshot_and_watch(&pfx);
            for c in items {
                if filter.matches(&c.obj)
                    && let Some(line) = enc.encode("ADDED", &c.obj)
                    && !send(line).await
                {
                    return;
                }
            }
            if params.send_initial_events && params.bookmarks && !send(enc.bookmark(rev, true)).await {
                return;
            }
            (Vec::new(), rx, rev)
        }
        Some(rev) => match api.cache.watch_from(&pfx, rev) {
            Some((past, rx, now)) => (past, rx, now.max(rev)),
            None => {
                // Older than the cache window: replay from the store's history.
                match api.store.watch(&pfx, rev).await {
                    Ok(mut stream) => {
                        while let Some(ev) = stream.next().await {
                            let Ok(ev) = ev else { break };
                            let r = ev.kv.mod_revision;
                            let Some(obj) = decode(&ev.kv, r) else { continue };
                            let prev = ev.prev.as_ref().and_then(|p| decode(p, p.mod_revision));
                            if let Some((kind, o)) = filter.event(ev.event_type, &obj, prev.as_ref())
                                && let Some(line) = enc.encode(kind, &o)
                                && !send(line).await
                            {
                                return;
                            }
                        }
                        return;
                    }
                    Err(e) => {
                        let _ = send(error_line(&store_error(e))).await;
                        return;
                    }
                }
            }
        },
    };
    for ev in backlog {
        last_rev = last_rev.max(ev.revision);
        if !emit(&filter, &mut enc, &ev, tx).await {
            return;
        }
    }
    let mut bookmark_tick = tokio::time::interval(Duration::from_secs(30));
    bookmark_tick.tick().await;
    loop {
        tokio::select! {
            r = live.recv() => match r {
                Ok(ev) => {
                    if ev.revision <= last_rev || !ev.key.starts_with(pfx.as_str()) {
                        continue;
                    }
                    last_rev = ev.revision;
                    if !emit(&filter, &mut enc, &ev, tx).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let e = ApiError::Expired { message: format!("too old resource version: {last_rev}: watcher fell behind") };
                    let _ = send(error_line(&e)).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = bookmark_tick.tick(), if params.bookmarks => {
                let rev = api.cache.revision().max(last_rev);
                if !send(enc.bookmark(rev, false)).await {
                    return;
                }
            }
        }
    }
}

async fn emit(filter: &Filter, enc: &mut Encoder, ev: &CacheEvent, tx: &mpsc::Sender<String>) -> bool {
    let line = match filter.event(ev.kind, &ev.obj, ev.prev.as_deref()) {
        Some((kind, Cow::Borrowed(obj))) => enc.encode_shared(kind, ev).or_else(|| enc.encode(kind, obj)),
        Some((kind, Cow::Owned(obj))) => enc.encode(kind, &obj),
        None => None,
    };
    match line {
        Some(line) => tx.send(line).await.is_ok(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::partial_metadata;

    #[test]
    fn selector_transitions() {
        let f = Filter { labels: LabelSelector::parse("app=web").unwrap(), fields: FieldSelector::default() };
        let web = json!({"metadata": {"labels": {"app": "web"}}});
        let db = json!({"metadata": {"labels": {"app": "db"}}});
        assert_eq!(f.event(EventType::Put, &web, None).unwrap().0, "ADDED");
        assert_eq!(f.event(EventType::Put, &web, Some(&web)).unwrap().0, "MODIFIED");
        assert_eq!(f.event(EventType::Put, &db, Some(&web)).unwrap().0, "DELETED");
        assert_eq!(f.event(EventType::Put, &web, Some(&db)).unwrap().0, "ADDED");
        assert!(f.event(EventType::Put, &db, Some(&db)).is_none());
        assert_eq!(f.event(EventType::Delete, &web, Some(&web)).unwrap().0, "DELETED");
        assert!(f.event(EventType::Delete, &db, Some(&db)).is_none());
        // Leaving the selector: the last matching content, at the new revision.
        let web = json!({"metadata": {"labels": {"app": "web"}, "resourceVersion": "7"}});
        let db = json!({"metadata": {"labels": {"app": "db"}, "resourceVersion": "9"}});
        let (_, obj) = f.event(EventType::Put, &db, Some(&web)).unwrap();
        assert_eq!(obj["metadata"]["labels"]["app"], "web");
        assert_eq!(obj["metadata"]["resourceVersion"], "9");
    }

    #[test]
    fn metadata_events_are_encoded_as_partial_object_metadata() {
        let pods = rkube_registry::lookup("", "v1", "pods").unwrap();
        let mut enc = Encoder {
            def: pods,
            rendering: Rendering::PartialMetadata,
            include: Default::default(),
            sent_columns: false,
        };
        for obj in [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "resourceVersion": "5",
                   "labels": {"b": "2", "a": "1"}}, "spec": {"containers": []}}),
            json!({"apiVersion": "v1", "kind": "Pod"}),
        ] {
            let want = format!("{}\n", json!({"type": "MODIFIED", "object": partial_metadata(&obj)}));
            assert_eq!(enc.encode("MODIFIED", &obj).unwrap(), want);
        }
    }

    #[test]
    fn shared_encoding_is_the_per_watcher_encoding() {
        let pods = rkube_registry::lookup("", "v1", "pods").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "resourceVersion": "5",
                         "annotations": {"z": "\"quoted\" é \n", "a": "1"}}, "spec": {"containers": []}});
        let ev = CacheEvent::new(5, Arc::from("/registry/pods/default/p"), EventType::Put, Arc::new(obj), None);
        let mut enc =
            Encoder { def: pods, rendering: Rendering::Object, include: IncludeObject::Object, sent_columns: false };
        let shared = enc.encode_shared("MODIFIED", &ev).unwrap();
        assert_eq!(Some(shared), enc.encode("MODIFIED", &ev.obj));
        let table = Encoder { rendering: Rendering::Table, ..enc };
        assert!(table.encode_shared("MODIFIED", &ev).is_none());
        // A version that converts on the way out encodes its own.
        let events = rkube_registry::lookup("events.k8s.io", "v1", "events").unwrap();
        let conv =
            Encoder { def: events, rendering: Rendering::Object, include: IncludeObject::Object, sent_columns: false };
        assert!(conv.encode_shared("ADDED", &ev).is_none());
        // A metadata-only watch sends the object's metadata, converted or not.
        for def in [pods, events] {
            let mut meta = Encoder {
                def,
                rendering: Rendering::PartialMetadata,
                include: IncludeObject::Object,
                sent_columns: false,
            };
            let line = meta.encode("DELETED", &ev.obj).unwrap();
            assert!(line.ends_with('\n'));
            let got: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(got, json!({"type": "DELETED", "object": partial_metadata(&ev.obj)}));
        }
    }
}
