//! Node IPAM: gives every Node a pod range (`spec.podCIDR`) carved from the cluster
//! CIDR, one `/24` per node by default, as kube-controller-manager's range allocator.
//! A node keeps its range for life (the API refuses to change it); ranges of deleted
//! nodes are reused.
//!
//! The ranges in use live in memory ([`CidrSet`], one bit per node range, as upstream's
//! `cidrset`), seeded once from the controller's node cache and then kept by this
//! controller alone, so giving a node its range costs the same with 5 nodes as with
//! 5,000: no list of every node, no scan of every range in use.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::Context;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the cluster CIDR {cidr:?} is not usable: {reason}")]
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

    /// The last address of the range.
    fn last(&self) -> u32 {
        self.network | !mask(self.prefix)
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

/// Upstream's limit on how many node ranges one cluster CIDR is split into (2^16).
const MAX_RANGE_BITS: u8 = 16;

/// The node ranges of a cluster CIDR and which are taken: one bit per range.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Cidr,
    node_mask: u8,
    count: usize,
    used: Vec<u64>,
    /// No range below this index is free, so sequential allocation does not rescan
    /// the taken ones (it only moves back when a range is released).
    first_free: usize,
}

impl CidrSet {
    pub fn new(cluster: Cidr, node_mask: u8) -> Result<CidrSet, String> {
        if node_mask < cluster.prefix || node_mask > 32 {
            return Err(format!("node range /{node_mask} does not fit in the cluster CIDR {cluster}"));
        }
        if node_mask - cluster.prefix > MAX_RANGE_BITS {
            return Err(format!("/{node_mask} node ranges split {cluster} into more than 2^{MAX_RANGE_BITS} ranges"));
        }
        let count = 1usize << (node_mask - cluster.prefix);
        Ok(CidrSet { cluster, node_mask, count, used: vec![0; count.div_ceil(64)], first_free: 0 })
    }

    /// The indexes of the node ranges that `c` overlaps (empty when outside the
    /// cluster CIDR): ranges of another size or place still block what they overlap.
    fn overlapped(&self, c: &Cidr) -> std::ops::Range<usize> {
        let (lo, hi) = (c.network.max(self.cluster.network), c.last().min(self.cluster.last()));
        if lo > hi {
            return 0..0;
        }
        let shift = 32 - u32::from(self.node_mask);
        let index = |addr: u32| ((u64::from(addr - self.cluster.network)) >> shift) as usize;
        index(lo)..index(hi) + 1
    }

    fn is_used(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }

    pub fn occupy(&mut self, c: &Cidr) {
        for i in self.overlapped(c) {
            self.used[i / 64] |= 1 << (i % 64);
        }
    }

    pub fn release(&mut self, c: &Cidr) {
        let range = self.overlapped(c);
        self.first_free = self.first_free.min(range.start);
        for i in range {
            self.used[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Takes the first free node range.
    pub fn allocate(&mut self) -> Option<Cidr> {
        let i = (self.first_free..self.count).find(|&i| !self.is_used(i))?;
        self.used[i / 64] |= 1 << (i % 64);
        self.first_free = i + 1;
        let step = 1u64 << (32 - u32::from(self.node_mask));
        Some(Cidr { network: self.cluster.network + (i as u64 * step) as u32, prefix: self.node_mask })
    }
}

/// What the allocator knows: the set, and the range it holds for each node (with the
/// node's uid, so a node deleted and created again under the same name gets a new one).
struct Ranges {
    set: CidrSet,
    by_node: HashMap<String, (String, Cidr)>,
}

impl Ranges {
    fn record(&mut self, node: &str, uid: &str, range: Cidr) {
        if let Some((_, old)) = self.by_node.insert(node.to_string(), (uid.to_string(), range))
            && old != range
        {
            self.set.release(&old);
        }
        self.set.occupy(&range);
    }

    fn forget(&mut self, node: &str) {
        if let Some((_, old)) = self.by_node.remove(node) {
            self.set.release(&old);
        }
    }

    /// Frees the ranges of nodes that are gone, from the cache's list of nodes.
    fn release_deleted(&mut self, nodes: &Store<Node>) {
        let live: std::collections::HashSet<String> = nodes.state().iter().map(|n| n.name_any()).collect();
        let gone: Vec<String> = self.by_node.keys().filter(|n| !live.contains(*n)).cloned().collect();
        for n in gone {
            self.forget(&n);
        }
    }
}

/// The controller's state.
struct Ipam {
    ctx: Arc<Context>,
    nodes: Store<Node>,
    /// Built on the first allocation, from the synced cache.
    ranges: tokio::sync::Mutex<Option<Ranges>>,
}

fn pod_cidr(node: &Node) -> Option<Cidr> {
    node.spec.as_ref()?.pod_cidr.as_deref().filter(|c| !c.is_empty()).and_then(|c| Cidr::parse(c).ok())
}

/// Starts the controller.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let nodes: Api<Node> = Api::all(ctx.client.clone());
        let controller = Controller::new(nodes, watcher::Config::default());
        let ipam = Arc::new(Ipam { ctx, nodes: controller.store(), ranges: tokio::sync::Mutex::new(None) });
        controller.run(reconcile, error_policy, ipam).for_each(|_| futures::future::ready(())).await;
    })
}

fn error_policy(_node: Arc<Node>, error: &Error, _ipam: Arc<Ipam>) -> Action {
    tracing::warn!(%error, "node IPAM");
    Action::requeue(Duration::from_secs(5))
}

/// The ranges, seeded from every node the cache holds once it has listed them all.
async fn ranges<'a>(ipam: &'a Ipam) -> Result<tokio::sync::MappedMutexGuard<'a, Ranges>, Error> {
    let mut guard = ipam.ranges.lock().await;
    if guard.is_none() {
        let cidr = &ipam.ctx.options.cluster_cidr;
        let bad = |reason| Error::BadClusterCidr { cidr: cidr.clone(), reason };
        let cluster = Cidr::parse(cidr).map_err(bad)?;
        let set = CidrSet::new(cluster, ipam.ctx.options.node_cidr_mask).map_err(bad)?;
        // Reconciles only start once the cache has listed, so this sees every node
        // that had a range when we took over.
        let _ = ipam.nodes.wait_until_ready().await;
        let mut r = Ranges { set, by_node: HashMap::new() };
        for n in ipam.nodes.state() {
            if let Some(range) = pod_cidr(&n) {
                r.record(&n.name_any(), n.uid().as_deref().unwrap_or(""), range);
            }
        }
        *guard = Some(r);
    }
    Ok(tokio::sync::MutexGuard::map(guard, |r| r.as_mut().expect("seeded above")))
}

#[tracing::instrument(skip_all, fields(node = %node.name_any()))]
async fn reconcile(node: Arc<Node>, ipam: Arc<Ipam>) -> Result<Action, Error> {
    let name = node.name_any();
    let uid = node.uid().unwrap_or_default();
    if let Some(range) = pod_cidr(&node) {
        // Ranges set by others (a restart, another controller manager, the user) are
        // taken too.
        ranges(&ipam).await?.record(&name, &uid, range);
        return Ok(Action::await_change());
    }
    if node.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let range = {
        let mut r = ranges(&ipam).await?;
        match r.by_node.get(&name) {
            // Ours already, the cache has not seen the patch yet: set the same again.
            Some((owner, range)) if *owner == uid => *range,
            _ => {
                r.forget(&name);
                let next = match r.set.allocate() {
                    Some(c) => Some(c),
                    None => {
                        // Full: free what deleted nodes held, then look again.
                        r.release_deleted(&ipam.nodes);
                        r.set.allocate()
                    }
                };
                let range = next.ok_or_else(|| Error::Exhausted {
                    cidr: ipam.ctx.options.cluster_cidr.clone(),
                    node: name.clone(),
                })?;
                r.record(&name, &uid, range);
                range
            }
        }
    };
    let api: Api<Node> = Api::all(ipam.ctx.client.clone());
    let patch = json!({"spec": {"podCIDR": range.to_string(), "podCIDRs": [range.to_string()]}});
    if let Err(source) = api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        let mut r = ranges(&ipam).await?;
        if r.by_node.get(&name).is_some_and(|(owner, held)| *owner == uid && *held == range) {
            r.forget(&name);
        }
        return Err(Error::Patch { node: name, source });
    }
    tracing::info!(%range, "allocated the node's pod range");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(cluster: &str, mask: u8, used: &[&str]) -> CidrSet {
        let mut s = CidrSet::new(Cidr::parse(cluster).unwrap(), mask).unwrap();
        for c in used {
            s.occupy(&Cidr::parse(c).unwrap());
        }
        s
    }

    #[test]
    fn ranges_are_handed_out_in_order_and_reused() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], Some("10.244.0.0/24")),
            (&["10.244.0.0/24"], Some("10.244.1.0/24")),
            (&["10.244.0.0/24", "10.244.2.0/24"], Some("10.244.1.0/24")),
            // Ranges outside the cluster CIDR or of another size still block overlaps.
            (&["10.244.0.0/23", "192.168.0.0/24"], Some("10.244.2.0/24")),
            (&["10.244.0.0/25", "10.0.0.0/8"], None),
        ];
        for (used, want) in cases {
            let got = set_of("10.244.0.0/16", 24, used).allocate();
            assert_eq!(got.map(|c| c.to_string()).as_deref(), *want, "{used:?}");
        }
        let mut small = set_of("10.0.0.0/23", 24, &["10.0.0.0/24", "10.0.1.0/24"]);
        assert_eq!(small.allocate(), None);
        small.release(&Cidr::parse("10.0.1.0/24").unwrap());
        assert_eq!(small.allocate().map(|c| c.to_string()).as_deref(), Some("10.0.1.0/24"), "released: reused");
        assert!(CidrSet::new(Cidr::parse("10.0.0.0/23").unwrap(), 22).is_err(), "node range larger than the cluster");
        assert!(CidrSet::new(Cidr::parse("10.0.0.0/8").unwrap(), 32).is_err(), "more than 2^16 ranges");
        assert_eq!(Cidr::parse("10.244.3.7/16").unwrap().to_string(), "10.244.0.0/16");
        assert!(Cidr::parse("10.0.0.0").is_err() && Cidr::parse("x/8").is_err() && Cidr::parse("10.0.0.0/40").is_err());
    }

    #[test]
    fn sequential_allocation_fills_the_set() {
        let mut s = set_of("10.0.0.0/10", 24, &[]);
        let all: Vec<Cidr> = std::iter::from_fn(|| s.allocate()).collect();
        assert_eq!(all.len(), 1 << 14);
        assert_eq!(all[1].to_string(), "10.0.1.0/24");
        assert_eq!(all.last().unwrap().to_string(), "10.63.255.0/24");
    }

    #[test]
    fn a_node_keeps_its_range_and_a_new_uid_gets_a_new_one() {
        let mut r = Ranges { set: set_of("10.1.0.0/16", 24, &[]), by_node: HashMap::new() };
        let a = r.set.allocate().unwrap();
        r.record("a", "u1", a);
        let b = r.set.allocate().unwrap();
        r.record("b", "u2", b);
        assert_ne!(a, b);
        r.forget("a");
        assert_eq!(r.set.allocate(), Some(a), "a's range is free again");
    }
}
