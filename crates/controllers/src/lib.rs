//! The controller manager of rkube: the level-triggered reconcilers that drive the
//! cluster's current state towards the desired one (ReplicaSet, Deployment, garbage
//! collector, namespaces, service accounts, node IPAM and node lifecycle, Endpoints and
//! EndpointSlices, the built-in service load balancer).
//!
//! Every controller sees the cluster only through the Kubernetes API, with kube-rs
//! (watchers, reflectors, `Controller`), so each would also run against upstream
//! Kubernetes. Each lives in one file with kube-rs's shape:
//! `reconcile(obj, ctx) -> Result<Action, Error>` plus an `error_policy`; decisions that
//! are more than a few lines (which pods to delete, the next rollout step) are pure
//! functions tested by tables.
//!
//! Start reading at [`run`]: it wins the `kube-system/kube-controller-manager` Lease
//! ([`leader`]) and then runs every entry of [`CONTROLLERS`] until leadership is lost.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;

pub mod apiresources;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod garbagecollector;
pub mod informer;
pub mod leader;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod replicaset;
pub mod rollout;
pub mod serviceaccount;
pub mod servicelb;
pub mod slim;
pub mod workload;
pub mod workqueue;

/// Settings of the controllers, from the server's command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// The pod network (`--cluster-cidr`), split into per-node ranges by node IPAM.
    pub cluster_cidr: String,
    /// Prefix length of each node's pod range (upstream's `--node-cidr-mask-size`, 24).
    pub node_cidr_mask: u8,
    /// How often node health is checked (`--node-monitor-period`, 5 s).
    pub node_monitor_period: std::time::Duration,
    /// How long a node's Lease may go unrenewed before it is Unknown
    /// (`--node-monitor-grace-period`, 40 s).
    pub node_monitor_grace_period: std::time::Duration,
    /// PEM of the cluster CA (`<data-dir>/server/tls/cluster-ca.crt`), published in every
    /// namespace as the `kube-root-ca.crt` ConfigMap; empty: not published.
    pub root_ca_pem: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask: 24,
            node_monitor_period: std::time::Duration::from_secs(5),
            node_monitor_grace_period: std::time::Duration::from_secs(40),
            root_ca_pem: String::new(),
        }
    }
}

/// What every controller gets.
pub struct Context {
    pub client: Client,
    pub options: Options,
    /// Every pod, watched once for all the controllers that follow pods.
    pub pods: informer::Informer<Pod>,
}

/// A controller's main loop: runs until its task is aborted.
pub type ControllerLoop = fn(Arc<Context>) -> BoxFuture<'static, ()>;

/// Every controller, by the name upstream gives it.
pub static CONTROLLERS: &[(&str, ControllerLoop)] = &[
    ("nodeipam", nodeipam::run),
    ("nodelifecycle", nodelifecycle::run),
    ("garbagecollector", garbagecollector::run),
    ("namespace", namespace::run),
    ("serviceaccount", serviceaccount::run),
    ("root-ca-cert-publisher", serviceaccount::run_root_ca),
    ("replicaset", replicaset::run),
    ("deployment", deployment::run),
    ("endpoint", endpoints::run),
    ("endpointslice", endpointslice::run),
    ("servicelb", servicelb::run),
];

/// Competes for leadership and runs every controller while leading.
pub async fn run(client: Client, options: Options, identity: String) {
    let mut elector = leader::LeaderElector::start(
        client.clone(),
        "kube-system",
        "kube-controller-manager",
        &identity,
        leader::Timings::default(),
    );
    loop {
        elector.acquired().await;
        tracing::info!(%identity, "leading: starting controllers");
        let mut tasks = tokio::task::JoinSet::new();
        let ctx = Arc::new(Context { client: client.clone(), options: options.clone(), pods: Default::default() });
        tasks.spawn(ctx.pods.clone().run(kube::Api::all(client.clone()), Default::default()));
        for (name, start) in CONTROLLERS {
            let ctx = ctx.clone();
            let name = *name;
            tasks.spawn(async move {
                start(ctx).await;
                tracing::warn!(controller = name, "controller loop ended");
            });
        }
        elector.lost().await;
        tracing::warn!(%identity, "lost leadership: stopping controllers");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}
