//! The scheduler of rkube: assigns each pending pod to a node, as kube-scheduler does,
//! talking to the API server only through kube-rs.
//!
//! Start reading at [`framework::schedule`]: the decision is a pure, deterministic
//! function of a pod ([`pod_info::PodInfo`]) and the cluster ([`snapshot::Snapshot`]).
//! It runs upstream's default profile: filters rule nodes out ([`plugins`], in upstream's
//! order), scores rank the rest, the best wins, ties to the first node name; when no
//! node fits, [`fit_error::FitError`] words why exactly as upstream does. Around it,
//! [`runner`] watches pods and nodes, keeps the snapshot incremental (a bound pod counts
//! on its node the moment we bind it), retries unschedulable pods from the [`queue`]
//! with upstream's back-off when the cluster changes, and binds through the
//! `pods/binding` subresource. [`run`] makes sure only one scheduler acts at a time: the
//! one holding the `kube-system/kube-scheduler` Lease.

use kube::Client;

pub mod fit_error;
pub mod framework;
pub mod labels;
pub mod node_info;
pub mod plugins;
pub mod pod_info;
pub use rkube_apimachinery::quantity;
pub mod queue;
pub mod resources;
pub mod runner;
pub mod snapshot;
#[cfg(test)]
mod testing;

pub use fit_error::FitError;
pub use framework::{Placement, schedule};
pub use snapshot::Snapshot;

/// The `spec.schedulerName` this scheduler serves, and the event reporter's name.
pub const SCHEDULER_NAME: &str = "default-scheduler";

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
        // Fresh caches on every term: what a previous term assumed may never have landed.
        let task = tokio::spawn(runner::schedule_pods(client.clone()));
        elector.lost().await;
        tracing::warn!(%identity, "lost leadership: scheduling stops");
        task.abort();
        let _ = task.await;
    }
}
