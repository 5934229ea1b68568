//! The filter and score plugins of upstream's default profile, one module each, in the
//! order upstream runs the filters. Each filter returns `None` when the node passes, or
//! the [`Status`](crate::fit_error::Status) upstream's plugin would return; each score returns raw scores that
//! [`crate::framework`] normalizes and weighs.
//!
//! State a plugin computes once per pod over the whole cluster (upstream's PreFilter and
//! PreScore) lives in a `…State` struct built before the per-node loop.

pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

use crate::labels::Labels;
use crate::pod_info::PodInfo;
use crate::snapshot::Snapshot;

/// The highest score a plugin gives a node (upstream's `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// What every plugin reads during one scheduling attempt.
pub struct Cycle<'a> {
    pub pod: &'a PodInfo,
    pub snap: &'a Snapshot,
    /// Labels of the pod's own namespace, for other pods' `namespaceSelector`s.
    pub ns_labels: &'a Labels,
}

impl<'a> Cycle<'a> {
    pub fn new(pod: &'a PodInfo, snap: &'a Snapshot) -> Cycle<'a> {
        Cycle { pod, snap, ns_labels: snap.namespace_labels(&pod.namespace) }
    }
}

/// Upstream's `helper.DefaultNormalizeScore`: scales to `0..=MAX_NODE_SCORE` by the
/// highest score; `reverse` makes the lowest raw score the best.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_normalize_by_table() {
        let cases: &[(&[i64], bool, &[i64])] = &[
            (&[0, 0], false, &[0, 0]),
            (&[0, 0], true, &[100, 100]),
            (&[1, 2, 4], false, &[25, 50, 100]),
            (&[1, 2, 4], true, &[75, 50, 0]),
            (&[0, 3], true, &[100, 0]),
        ];
        for (raw, reverse, want) in cases {
            let mut s = raw.to_vec();
            default_normalize(&mut s, *reverse);
            assert_eq!(&s, want, "{raw:?} reverse={reverse}");
        }
    }
}
