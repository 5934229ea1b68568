//! Recording Events, so `kubectl describe` shows what controllers did
//! (`SuccessfulCreate`, `ScalingReplicaSet`, `FailedScheduling`, …).
//!
//! Writes `events.k8s.io/v1` Events (served as core/v1 events too), as upstream's
//! `tools/events` recorder does: the first occurrence is created; a repeat of the same
//! event (same type, reason, action, reporter and object) within six minutes patches the
//! first one's `series` (count and last time seen) instead of writing a new Event.
//! Failing to record an event never fails a reconcile: it is logged and forgotten, as
//! upstream does.
//!
//! The memory of recent events is pruned at most once a minute. (kube-runtime's recorder,
//! used before, pruned it on every event: with the scheduler's one `Scheduled` event per
//! pod that was a scan of every event of the last six minutes per binding, ~3 % of the
//! server's CPU at 10,000 pods, under a lock every publish waited for.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// How long a recorded event is remembered: a repeat within this window extends its
/// series (upstream's and kube-runtime's six minutes).
const TTL: SignedDuration = SignedDuration::from_mins(6);
/// How often the memory is pruned of events older than [`TTL`].
const PRUNE_EVERY: SignedDuration = SignedDuration::from_mins(1);

/// `Normal` or `Warning`, the two types upstream knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What makes two events the same for a series (upstream's `getKey`: the note is not part
/// of it, so a repeat with a new message extends the series and keeps the first note).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    type_: EventType,
    reason: String,
    action: String,
    regarding: Regarding,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Regarding {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    field_path: Option<String>,
}

impl From<&ObjectReference> for Regarding {
    fn from(r: &ObjectReference) -> Self {
        Regarding {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
            field_path: r.field_path.clone(),
        }
    }
}

/// An event written before, as much as a repeat needs.
#[derive(Debug, Clone)]
struct Recorded {
    namespace: String,
    name: String,
    count: i32,
    last_seen: Timestamp,
}

/// What to write for one occurrence.
#[derive(Debug, Clone, PartialEq)]
enum Write {
    /// A new Event of this name.
    Create { name: String },
    /// Extend the series of an existing Event.
    Series { namespace: String, name: String, count: i32 },
}

/// The memory of recent events: the pure part of the recorder.
#[derive(Debug, Default)]
struct Memory {
    recorded: HashMap<Key, Recorded>,
    last_prune: Option<Timestamp>,
}

impl Memory {
    /// Decides the write for an occurrence of `key` at `now` and remembers it.
    fn observe(&mut self, key: Key, namespace: &str, object_name: &str, now: Timestamp) -> Write {
        if self.last_prune.is_none_or(|t| now.duration_since(t) >= PRUNE_EVERY) {
            self.recorded.retain(|_, r| now.duration_since(r.last_seen) < TTL);
            self.last_prune = Some(now);
        }
        match self.recorded.get_mut(&key) {
            Some(r) if now.duration_since(r.last_seen) < TTL => {
                r.count = r.count.saturating_add(1);
                r.last_seen = now;
                Write::Series { namespace: r.namespace.clone(), name: r.name.clone(), count: r.count }
            }
            _ => {
                // Upstream's name: the object's, then the time in hex nanoseconds.
                let name = format!("{object_name}.{:x}", now.as_nanosecond());
                let r = Recorded { namespace: namespace.to_string(), name: name.clone(), count: 1, last_seen: now };
                self.recorded.insert(key, r);
                Write::Create { name }
            }
        }
    }

    /// Forgets an event whose write failed, so the next occurrence creates it again.
    fn forget(&mut self, key: &Key) {
        self.recorded.remove(key);
    }
}

/// Records events on behalf of one controller.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    controller: String,
    memory: Arc<Mutex<Memory>>,
}

impl Recorder {
    pub fn new(client: Client, controller: &str) -> Recorder {
        Recorder { client, controller: controller.into(), memory: Arc::default() }
    }

    pub async fn normal(&self, regarding: &ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(EventType::Normal, regarding, reason, action, note).await;
    }

    pub async fn warning(&self, regarding: &ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(EventType::Warning, regarding, reason, action, note).await;
    }

    async fn publish(&self, type_: EventType, regarding: &ObjectReference, reason: &str, action: &str, note: String) {
        let key = Key { type_, reason: reason.into(), action: action.into(), regarding: regarding.into() };
        // Cluster-scoped objects' events go to `default`, as upstream.
        let namespace = regarding.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
        let object_name = regarding.name.as_deref().unwrap_or(&self.controller);
        let now = Timestamp::now();
        let write = match self.memory.lock() {
            Ok(mut m) => m.observe(key.clone(), &namespace, object_name, now),
            Err(_) => return,
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let result = match write {
            Write::Create { name } => {
                let event = Event {
                    metadata: ObjectMeta { name: Some(name), namespace: Some(namespace), ..Default::default() },
                    event_time: Some(MicroTime(now)),
                    type_: Some(type_.as_str().into()),
                    reason: Some(reason.into()),
                    action: Some(action.into()),
                    note: Some(note),
                    regarding: Some(regarding.clone()),
                    reporting_controller: Some(self.controller.clone()),
                    reporting_instance: Some(self.controller.clone()),
                    ..Default::default()
                };
                self.create_unread(&api, &event).await
            }
            Write::Series { name, count, .. } => {
                let series = EventSeries { count, last_observed_time: MicroTime(now) };
                let patch = json!({ "series": series });
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
            }
        };
        if let Err(e) = result {
            tracing::debug!(reason, error = %e, "could not record an event");
            if let Ok(mut m) = self.memory.lock() {
                m.forget(&key);
            }
        }
    }

    /// POSTs the event; its answer (the event again) is checked, not decoded.
    async fn create_unread(&self, api: &Api<Event>, event: &Event) -> Result<(), kube::Error> {
        let body = serde_json::to_vec(event).map_err(kube::Error::SerdeError)?;
        let request = kube::core::Request::new(api.resource_url())
            .create(&PostParams::default(), body)
            .map_err(kube::Error::BuildRequest)?;
        self.client.request_text(request).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(reason: &str, pod: &str) -> Key {
        let r = ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some("ns".into()),
            name: Some(pod.into()),
            ..Default::default()
        };
        Key { type_: EventType::Normal, reason: reason.into(), action: "Binding".into(), regarding: (&r).into() }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn repeats_within_the_window_extend_one_series() {
        let mut m = Memory::default();
        let Write::Create { name } = m.observe(key("Scheduled", "a"), "ns", "a", at(0)) else {
            panic!("the first occurrence creates")
        };
        assert!(name.starts_with("a."), "{name}");
        assert_eq!(
            m.observe(key("Scheduled", "a"), "ns", "a", at(10)),
            Write::Series { namespace: "ns".into(), name: name.clone(), count: 2 }
        );
        // The window counts from the last occurrence, not the first.
        assert_eq!(
            m.observe(key("Scheduled", "a"), "ns", "a", at(10 + 359)),
            Write::Series { namespace: "ns".into(), name, count: 3 }
        );
        // Another reason or another object is another event.
        assert!(matches!(m.observe(key("Pulled", "a"), "ns", "a", at(400)), Write::Create { .. }));
        assert!(matches!(m.observe(key("Scheduled", "b"), "ns", "b", at(400)), Write::Create { .. }));
    }

    #[test]
    fn an_event_older_than_the_window_starts_a_new_one_and_is_pruned() {
        let mut m = Memory::default();
        m.observe(key("Scheduled", "a"), "ns", "a", at(0));
        m.observe(key("Scheduled", "b"), "ns", "b", at(300));
        assert!(matches!(m.observe(key("Scheduled", "a"), "ns", "a", at(361)), Write::Create { .. }));
        // Pruning runs at most once a minute: at 361 it ran and dropped nothing live.
        assert_eq!(m.recorded.len(), 2);
        m.observe(key("Scheduled", "c"), "ns", "c", at(700));
        assert_eq!(m.recorded.len(), 2, "b (last seen at 300) is gone at 700: {:?}", m.recorded.keys());
        assert!(!m.recorded.contains_key(&key("Scheduled", "b")));
    }

    #[test]
    fn a_failed_write_is_forgotten() {
        let mut m = Memory::default();
        m.observe(key("Scheduled", "a"), "ns", "a", at(0));
        m.forget(&key("Scheduled", "a"));
        assert!(matches!(m.observe(key("Scheduled", "a"), "ns", "a", at(1)), Write::Create { .. }));
    }
}
