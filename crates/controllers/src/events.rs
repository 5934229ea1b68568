//! Recording Events, so `kubectl describe` shows what controllers did
//! (`SuccessfulCreate`, `ScalingReplicaSet`, `FailedScheduling`, …).
//!
//! A thin wrapper over kube-runtime's recorder, which writes `events.k8s.io/v1` Events
//! (served as core/v1 events too) and counts repeats in a series. Failing to record an
//! event never fails a reconcile: it is logged and forgotten, as upstream does.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder as KubeRecorder, Reporter};

/// Records events on behalf of one controller.
#[derive(Clone)]
pub struct Recorder {
    inner: KubeRecorder,
}

impl Recorder {
    /// `controller` is the reporting component (`replicaset-controller`,
    /// `default-scheduler`, …).
    pub fn new(client: Client, controller: &str) -> Recorder {
        let reporter = Reporter { controller: controller.into(), instance: None };
        Recorder { inner: KubeRecorder::new(client, reporter) }
    }

    /// A `Normal` event about `regarding`.
    pub async fn normal(&self, regarding: &ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(EventType::Normal, regarding, reason, action, note).await;
    }

    /// A `Warning` event about `regarding`.
    pub async fn warning(&self, regarding: &ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(EventType::Warning, regarding, reason, action, note).await;
    }

    async fn publish(&self, type_: EventType, regarding: &ObjectReference, reason: &str, action: &str, note: String) {
        let ev = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
        if let Err(e) = self.inner.publish(&ev, regarding).await {
            tracing::debug!(reason, error = %e, "could not record an event");
        }
    }
}
