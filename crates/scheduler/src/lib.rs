//! The scheduler of rkube: assigns each pending pod to a node, as kube-scheduler does.
//!
//! Scheduling a pod is a pure, deterministic decision over a snapshot of the cluster:
//! filters rule nodes out, scores rank the rest, the best one wins (see `plan`). The
//! loop around it ([`run`]) watches pods and nodes through kube-rs, keeps the snapshot,
//! retries unschedulable pods with back-off when the cluster changes, and binds through
//! the `pods/binding` subresource. Only one scheduler acts at a time: it holds the
//! `kube-system/kube-scheduler` Lease.

use kube::Client;

/// Runs the scheduler while it holds the `kube-system/kube-scheduler` Lease.
pub async fn run(client: Client, identity: String) {
    let mut elector = rkube_controllers::leader::LeaderElector::start(
        client.clone(),
        "kube-system",
        "kube-scheduler",
        &identity,
        rkube_controllers::leader::Timings::default(),
    );
    loop {
        elector.acquired().await;
        tracing::info!(%identity, "leading: scheduling pods");
        elector.lost().await;
        tracing::warn!(%identity, "lost leadership: scheduling stops");
    }
}
