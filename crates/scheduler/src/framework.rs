//! The scheduling decision: [`schedule`] runs upstream's default profile — PreFilter,
//! Filter (on a sample of nodes in big clusters), PreScore, Score, NormalizeScore, pick
//! the best — as one pure function of the pod and the [`Snapshot`].
//!
//! Filters run in upstream's order and a node's verdict is the first failure, so the
//! reasons counted in the [`FitError`] are those kube-scheduler would report.

use crate::fit_error::{Code, Diagnosis, FitError, Histogram, Status, render_nodes};
use crate::node_info::NodeInfo;
use crate::plugins::{
    Cycle, default_normalize, inter_pod_affinity, node_affinity, node_ports, node_resources, node_unschedulable,
    pod_topology_spread, taint_toleration,
};
use crate::pod_info::PodInfo;
use crate::snapshot::Snapshot;

/// Score plugin weights of upstream's default profile.
pub mod weights {
    pub const TAINT_TOLERATION: i64 = 3;
    pub const NODE_AFFINITY: i64 = 2;
    pub const POD_TOPOLOGY_SPREAD: i64 = 2;
    pub const INTER_POD_AFFINITY: i64 = 2;
    pub const NODE_RESOURCES_FIT: i64 = 1;
    pub const BALANCED_ALLOCATION: i64 = 1;
}

/// Below this many nodes every node is filtered (upstream's `minFeasibleNodesToFind`).
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// How many feasible nodes are enough to stop filtering (upstream's adaptive
/// `percentageOfNodesToScore`: 50 % minus 1 % per 125 nodes, at least 5 % and 100).
pub fn num_feasible_nodes_to_find(num_nodes: usize) -> usize {
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_nodes;
    }
    let percentage = 50usize.saturating_sub(num_nodes / 125).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    (num_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Where the pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node: String,
    /// Nodes filtered to find it, to advance [`Snapshot::next_start`] by.
    pub evaluated: usize,
}

/// Picks the node for `pod`, or says why there is none. Deterministic: the same pod and
/// snapshot (including `next_start`) always give the same answer; equal scores go to
/// the node whose name sorts first.
pub fn schedule(pod: &PodInfo, snap: &Snapshot) -> Result<Placement, FitError> {
    let nodes = snap.nodes();
    if nodes.is_empty() {
        return Err(FitError::NoNodesAvailable);
    }
    let cx = Cycle::new(pod, snap);

    // PreFilter. Most pods may go anywhere: the snapshot's own slice, not a list of
    // references to every node built per pod.
    let (candidates, absent) = match node_affinity::pre_filter(pod) {
        node_affinity::PreFilter::AllNodes => (Candidates::All(nodes), 0),
        node_affinity::PreFilter::Only(names) => {
            let c: Vec<&NodeInfo> = names.iter().filter_map(|n| snap.node(n)).collect();
            let absent = nodes.len() - c.len();
            (Candidates::Only(c), absent)
        }
        node_affinity::PreFilter::Reject => {
            return Err(diagnose(&cx, Vec::new(), 0, Some(node_affinity::ERR_REASON_CONFLICT)));
        }
    };
    let spread = pod_topology_spread::FilterState::new(&cx);
    let inter = inter_pod_affinity::FilterState::new(&cx);

    // Filter, from where the last pod stopped, until enough feasible nodes are found.
    let to_find = num_feasible_nodes_to_find(candidates.len());
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(to_find);
    let mut failed: Vec<(&NodeInfo, Status)> = Vec::new();
    let n = candidates.len();
    let start = if n == 0 { 0 } else { snap.next_start % n };
    for i in 0..n {
        if feasible.len() >= to_find {
            break;
        }
        let node = candidates.get((start + i) % n);
        match run_filters(&cx, &spread, &inter, node) {
            None => feasible.push(node),
            Some(status) => failed.push((node, status)),
        }
    }
    let evaluated = feasible.len() + failed.len();
    match feasible.len() {
        0 => return Err(diagnose(&cx, failed, absent, None)),
        1 => return Ok(Placement { node: feasible[0].name().to_string(), evaluated }),
        _ => {}
    }

    let totals = score(&cx, &feasible);
    // Equal scores go to the node whose name sorts first. Every candidate is a reference
    // into the snapshot's node slice, which is kept sorted by name, so comparing addresses
    // compares names without reading them: with thousands of nodes that scattered read was
    // a cache miss per feasible node.
    let mut best = 0;
    for j in 1..feasible.len() {
        if totals[j] > totals[best]
            || (totals[j] == totals[best] && std::ptr::from_ref(feasible[j]) < std::ptr::from_ref(feasible[best]))
        {
            best = j;
        }
    }
    debug_assert!(
        feasible.iter().zip(&totals).all(|(n, t)| *t < totals[best] || n.name() >= feasible[best].name()),
        "equal scores must go to the first name"
    );
    Ok(Placement { node: feasible[best].name().to_string(), evaluated })
}

/// The nodes a pod may go to after PreFilter.
enum Candidates<'a> {
    All(&'a [NodeInfo]),
    Only(Vec<&'a NodeInfo>),
}

impl<'a> Candidates<'a> {
    fn len(&self) -> usize {
        match self {
            Candidates::All(n) => n.len(),
            Candidates::Only(n) => n.len(),
        }
    }

    fn get(&self, i: usize) -> &'a NodeInfo {
        match self {
            Candidates::All(n) => &n[i],
            Candidates::Only(n) => n[i],
        }
    }
}

/// The filters of the default profile in upstream's order; the first failure wins.
fn run_filters(
    cx: &Cycle<'_>,
    spread: &pod_topology_spread::FilterState<'_>,
    inter: &inter_pod_affinity::FilterState<'_>,
    node: &NodeInfo,
) -> Option<Status> {
    let pod = cx.pod;
    node_unschedulable::filter(pod, node)
        .or_else(|| taint_toleration::filter(pod, node))
        .or_else(|| node_affinity::filter(pod, node))
        .or_else(|| node_ports::filter(pod, node))
        .or_else(|| node_resources::filter(pod, node))
        .or_else(|| spread.filter(pod, node))
        .or_else(|| inter.filter(cx, node))
}

/// Weighted sum of the normalized scores of every score plugin, per feasible node.
fn score(cx: &Cycle<'_>, feasible: &[&NodeInfo]) -> Vec<i64> {
    let pod = cx.pod;
    let mut totals = vec![0i64; feasible.len()];
    let mut add = |scores: &[i64], weight: i64| {
        for (t, s) in totals.iter_mut().zip(scores) {
            *t += s * weight;
        }
    };

    let tolerations = taint_toleration::prefer_no_schedule_tolerations(pod);
    let mut s: Vec<i64> = feasible.iter().map(|n| taint_toleration::score(&tolerations, n)).collect();
    default_normalize(&mut s, true);
    add(&s, weights::TAINT_TOLERATION);

    if !pod.preferred_node_affinity.is_empty() {
        let mut s: Vec<i64> = feasible.iter().map(|n| node_affinity::score(pod, n)).collect();
        default_normalize(&mut s, false);
        add(&s, weights::NODE_AFFINITY);
    }

    let s: Vec<i64> = feasible.iter().map(|n| node_resources::least_allocated(pod, n)).collect();
    add(&s, weights::NODE_RESOURCES_FIT);

    if let Some(st) = pod_topology_spread::ScoreState::new(cx, feasible) {
        let mut s: Vec<i64> = feasible.iter().enumerate().map(|(j, n)| st.score(pod, j, n)).collect();
        st.normalize(&mut s);
        add(&s, weights::POD_TOPOLOGY_SPREAD);
    }

    if let Some(st) = inter_pod_affinity::ScoreState::new(cx) {
        let mut s: Vec<i64> = feasible.iter().map(|n| st.score(n)).collect();
        inter_pod_affinity::ScoreState::normalize(&mut s);
        add(&s, weights::INTER_POD_AFFINITY);
    }

    if !node_resources::is_best_effort(pod) {
        let s: Vec<i64> = feasible.iter().map(|n| node_resources::balanced_allocation(pod, n)).collect();
        add(&s, weights::BALANCED_ALLOCATION);
    }
    totals
}

const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Builds the FitError from every node's verdict, and the verdict preemption would give.
///
/// Preemption itself is not implemented; its message is derived as upstream's
/// DefaultPreemption derives it: nodes rejected as unresolvable (or by PreFilter) are
/// "not helpful"; a node rejected as merely unschedulable without lower-priority pods
/// has "no victims". A node that does have lower-priority pods keeps its filter reasons,
/// what upstream reports when evicting them still would not make room.
fn diagnose(cx: &Cycle<'_>, failed: Vec<(&NodeInfo, Status)>, absent: usize, pre_filter: Option<&str>) -> FitError {
    let num_all_nodes = cx.snap.nodes().len();
    let mut reasons = Histogram::new();
    for (_, st) in &failed {
        for r in &st.reasons {
            *reasons.entry(r.to_string()).or_default() += 1;
        }
    }
    if absent > 0 {
        *reasons.entry(node_affinity::ERR_REASON_ABSENT.to_string()).or_default() += absent;
    }
    let post = if cx.pod.preemption_never {
        "preemption: not eligible due to preemptionPolicy=Never.".to_string()
    } else {
        let mut pre = Histogram::new();
        let mut candidates = 0;
        if pre_filter.is_none() {
            for (node, st) in failed.iter().filter(|(_, st)| st.code == Code::Unschedulable) {
                candidates += 1;
                if node.pods.iter().any(|p| p.priority < cx.pod.priority) {
                    for r in &st.reasons {
                        *pre.entry(r.to_string()).or_default() += 1;
                    }
                } else {
                    *pre.entry(NO_VICTIMS.to_string()).or_default() += 1;
                }
            }
        }
        if num_all_nodes > candidates {
            *pre.entry(PREEMPTION_NOT_HELPFUL.to_string()).or_default() += num_all_nodes - candidates;
        }
        format!("preemption: {}", render_nodes(num_all_nodes, None, &pre))
    };
    FitError::Unfit(Diagnosis {
        num_all_nodes,
        pre_filter_msg: pre_filter.map(str::to_string),
        reasons,
        post_filter_msg: Some(post),
    })
}

#[cfg(test)]
#[path = "framework_tests.rs"]
mod tests;
