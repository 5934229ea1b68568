//! Node IPAM: gives every Node a pod range (`spec.podCIDR`) carved from the cluster
//! CIDR, one `/24` per node by default, as kube-controller-manager's range allocator.
//! A node keeps its range for life (the API refuses to change it); ranges of deleted
//! nodes are reused.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::Context;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the cluster CIDR {cidr:?} is not an IPv4 range: {reason}")]
    BadClusterCidr { cidr: String, reason: String },
    #[error("no pod range left in {cidr} for node {node}")]
    Exhausted { cidr: String, node: String },
    #[error("cannot set the pod range of node {node}: {source}")]
    Patch {
        node: String,
        #[source]
        source: kube::Error,
    },
}

/// An IPv4 range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    pub network: u32,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = s.split_once('/').ok_or("expected ADDRESS/PREFIX")?;
        let addr: Ipv4Addr = a.parse().map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let prefix: u8 = p.parse().map_err(|_| format!("{p:?} is not a prefix length"))?;
        if prefix > 32 {
            return Err(format!("prefix /{prefix} is longer than 32"));
        }
        Ok(Cidr { network: u32::from(addr) & mask(prefix), prefix })
    }

    fn contains(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && other.network & mask(self.prefix) == self.network
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
}

/// The first `/node_mask` range of `cluster` that no range in `used` overlaps.
pub fn allocate(cluster: Cidr, node_mask: u8, used: &BTreeSet<Cidr>) -> Option<Cidr> {
    if node_mask < cluster.prefix || node_mask > 32 {
        return None;
    }
    let count = 1u64 << (node_mask - cluster.prefix);
    let step = 1u64 << (32 - u32::from(node_mask));
    (0..count)
        .map(|i| Cidr { network: cluster.network + (i * step) as u32, prefix: node_mask })
        .find(|candidate| !used.iter().any(|u| u.contains(candidate) || candidate.contains(u)))
}

/// Starts the controller.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let nodes: Api<Node> = Api::all(ctx.client.clone());
        Controller::new(nodes, watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| futures::future::ready(()))
            .await;
    })
}

fn error_policy(_node: Arc<Node>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "node IPAM");
    Action::requeue(Duration::from_secs(5))
}

#[tracing::instrument(skip_all, fields(node = %node.name_any()))]
async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    let has_range = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).is_some_and(|c| !c.is_empty());
    if has_range || node.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let cidr = &ctx.options.cluster_cidr;
    let cluster = Cidr::parse(cidr).map_err(|reason| Error::BadClusterCidr { cidr: cidr.clone(), reason })?;
    // The live list, not the cache: two nodes added together must not get one range.
    let api: Api<Node> = Api::all(ctx.client.clone());
    let all = api.list(&Default::default()).await.map_err(|source| Error::Patch { node: node.name_any(), source })?;
    let used: BTreeSet<Cidr> =
        all.iter().filter_map(|n| n.spec.as_ref()?.pod_cidr.as_deref()).filter_map(|c| Cidr::parse(c).ok()).collect();
    let name = node.name_any();
    let range = allocate(cluster, ctx.options.node_cidr_mask, &used)
        .ok_or_else(|| Error::Exhausted { cidr: cidr.clone(), node: name.clone() })?;
    let patch = json!({"spec": {"podCIDR": range.to_string(), "podCIDRs": [range.to_string()]}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Patch { node: name.clone(), source })?;
    tracing::info!(%range, "allocated the node's pod range");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(cidrs: &[&str]) -> BTreeSet<Cidr> {
        cidrs.iter().map(|c| Cidr::parse(c).unwrap()).collect()
    }

    #[test]
    fn ranges_are_handed_out_in_order_and_reused() {
        let cluster = Cidr::parse("10.244.0.0/16").unwrap();
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], Some("10.244.0.0/24")),
            (&["10.244.0.0/24"], Some("10.244.1.0/24")),
            (&["10.244.0.0/24", "10.244.2.0/24"], Some("10.244.1.0/24")),
            // Ranges outside the cluster CIDR or of another size still block overlaps.
            (&["10.244.0.0/23", "192.168.0.0/24"], Some("10.244.2.0/24")),
        ];
        for (used, want) in cases {
            assert_eq!(allocate(cluster, 24, &set(used)).map(|c| c.to_string()).as_deref(), *want, "{used:?}");
        }
        let small = Cidr::parse("10.0.0.0/23").unwrap();
        assert_eq!(allocate(small, 24, &set(&["10.0.0.0/24", "10.0.1.0/24"])), None);
        assert_eq!(allocate(small, 22, &set(&[])), None, "node range larger than the cluster");
        assert_eq!(Cidr::parse("10.244.3.7/16").unwrap().to_string(), "10.244.0.0/16");
        assert!(Cidr::parse("10.0.0.0").is_err() && Cidr::parse("x/8").is_err() && Cidr::parse("10.0.0.0/40").is_err());
    }
}
