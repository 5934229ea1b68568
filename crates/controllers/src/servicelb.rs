//! The built-in service load balancer (k3s's servicelb idea): a `LoadBalancer` Service
//! gets the addresses of the cluster's ready nodes in `status.loadBalancer.ingress`, and
//! every node's service proxy accepts the Service's ports on its own address, so the
//! ingress addresses answer without a cloud. Services that name a `loadBalancerClass`
//! belong to another implementation and are left alone, as upstream's service controller
//! does.
//!
//! [`ingress_for`] is the decision (pure); [`reconcile`] only compares and patches.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::Context;
use crate::workqueue::Backoffs;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot publish the load balancer status of service {namespace}/{name}: {source}")]
    Patch {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub struct State {
    client: Client,
    nodes: Store<Node>,
    failures: Backoffs<String>,
}

/// Starts the service load balancer.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let client = ctx.client.clone();
        let (nodes, writer) = reflector::store();
        // Any node change may change every load balancer's addresses.
        let node_changes = watcher::watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .touched_objects()
            .filter_map(|r| futures::future::ready(r.ok().map(|_| ())));
        let st = Arc::new(State {
            client: client.clone(),
            nodes,
            failures: Backoffs::new(Duration::from_millis(200), Duration::from_secs(60)),
        });
        // (No waiting for the node list here: the Controller below is what drives that
        // stream. Before it arrives, nothing is published, and its arrival re-runs all.)
        Controller::new(Api::<Service>::all(client), watcher::Config::default())
            .reconcile_all_on(node_changes)
            .run(reconcile, error_policy, st)
            .for_each(|_| futures::future::ready(()))
            .await;
    })
}

fn error_policy(svc: Arc<Service>, error: &Error, st: Arc<State>) -> Action {
    tracing::warn!(service = %svc.name_any(), %error, "will retry");
    Action::requeue(st.failures.next(&format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())))
}

/// Whether `svc` is ours to balance.
pub fn is_ours(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none())
}

/// The addresses a load balancer publishes: each ready, schedulable node's external
/// address if it has one, else its internal one; sorted, without repeats.
pub fn ingress_for(nodes: &[Arc<Node>]) -> Vec<String> {
    let mut ips: Vec<String> = nodes
        .iter()
        .filter(|n| node_ready(n) && !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false))
        .filter_map(|n| {
            let addrs = n.status.as_ref()?.addresses.as_ref()?;
            let of = |t: &str| addrs.iter().find(|a| a.type_ == t).map(|a| a.address.clone());
            of("ExternalIP").or_else(|| of("InternalIP"))
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn published(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| ing.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

#[tracing::instrument(skip_all, fields(namespace = %svc.namespace().unwrap_or_default(), name = %svc.name_any()))]
async fn reconcile(svc: Arc<Service>, st: Arc<State>) -> Result<Action, Error> {
    if !is_ours(&svc) {
        return Ok(Action::await_change());
    }
    let want = ingress_for(&st.nodes.state());
    if published(&svc) == want {
        return Ok(Action::await_change());
    }
    let (namespace, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
    let ingress: Vec<_> = want.iter().map(|ip| json!({"ip": ip, "ipMode": "VIP"})).collect();
    let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
    Api::<Service>::namespaced(st.client.clone(), &namespace)
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Patch { namespace: namespace.clone(), name: name.clone(), source })?;
    tracing::info!(ingress = ?want, "published load balancer addresses");
    st.failures.reset(&format!("{namespace}/{name}"));
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, unschedulable: bool, addrs: &[(&str, &str)]) -> Arc<Node> {
        let addresses: Vec<_> = addrs.iter().map(|(t, a)| json!({"type": t, "address": a})).collect();
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"unschedulable": unschedulable},
                "status": {"addresses": addresses,
                           "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn ready_schedulable_nodes_publish_their_best_address() {
        let nodes = [
            node("b", true, false, &[("InternalIP", "10.0.0.2"), ("Hostname", "b")]),
            node("a", true, false, &[("InternalIP", "10.0.0.1"), ("ExternalIP", "203.0.113.1")]),
            node("down", false, false, &[("InternalIP", "10.0.0.3")]),
            node("cordoned", true, true, &[("InternalIP", "10.0.0.4")]),
            node("twin", true, false, &[("InternalIP", "10.0.0.2")]),
            node("bare", true, false, &[]),
        ];
        assert_eq!(ingress_for(&nodes), ["10.0.0.2", "203.0.113.1"]);
        assert!(ingress_for(&[]).is_empty());
    }

    #[test]
    fn only_classless_load_balancers_are_ours() {
        let svc = |spec: serde_json::Value| -> Service {
            serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": spec})).unwrap()
        };
        assert!(is_ours(&svc(json!({"type": "LoadBalancer"}))));
        assert!(!is_ours(&svc(json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"}))));
        assert!(!is_ours(&svc(json!({"type": "NodePort"}))));
        assert!(!is_ours(&svc(json!({}))));
    }
}
