//! NodeResourcesFit (filter and least-allocated score) and
//! NodeResourcesBalancedAllocation (score).
//!
//! The filter compares the pod's real requests with what is left of the node's
//! allocatable; the least-allocated score counts pods without requests at the scoring
//! defaults (100m CPU, 200 MiB), so best-effort pods still spread out; the balanced score
//! uses real requests and prefers nodes whose CPU and memory fill up evenly.

use std::borrow::Cow;

use crate::fit_error::{Code, Status};
use crate::node_info::NodeInfo;
use crate::plugins::MAX_NODE_SCORE;
use crate::pod_info::PodInfo;

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let mut reasons: Vec<Cow<'static, str>> = Vec::new();
    let mut unresolvable = false;
    if node.pods.len() as i64 + 1 > node.spec.allowed_pods {
        reasons.push("Too many pods".into());
    }
    let (r, a, used) = (&pod.requests, &node.spec.allocatable, &node.requested);
    let mut check = |want: i64, alloc: i64, used: i64, reason: Cow<'static, str>| {
        if want > 0 && want > alloc.saturating_sub(used) {
            reasons.push(reason);
            unresolvable |= want > alloc;
        }
    };
    check(r.milli_cpu, a.milli_cpu, used.milli_cpu, "Insufficient cpu".into());
    check(r.memory, a.memory, used.memory, "Insufficient memory".into());
    check(r.ephemeral_storage, a.ephemeral_storage, used.ephemeral_storage, "Insufficient ephemeral-storage".into());
    for (name, &want) in &r.scalar {
        check(want, a.scalar(name), used.scalar(name), format!("Insufficient {name}").into());
    }
    if reasons.is_empty() {
        return None;
    }
    Some(Status { code: if unresolvable { Code::Unresolvable } else { Code::Unschedulable }, reasons })
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    // i128: memory in bytes times 100 overflows i64 past 92 PB.
    ((i128::from(capacity - requested) * i128::from(MAX_NODE_SCORE)) / i128::from(capacity)) as i64
}

/// LeastAllocated with CPU and memory weighted 1 each.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let a = &node.spec.allocatable;
    let mut sum = 0;
    let mut weights = 0;
    for (req, alloc) in [
        (node.non_zero_cpu.saturating_add(pod.non_zero_cpu), a.milli_cpu),
        (node.non_zero_memory.saturating_add(pod.non_zero_memory), a.memory),
    ] {
        if alloc == 0 {
            continue;
        }
        sum += least_requested(req, alloc);
        weights += 1;
    }
    if weights == 0 { 0 } else { sum / weights }
}

/// Upstream skips the balanced score for pods that request nothing: otherwise every
/// such pod would look perfectly balanced on the same node.
pub fn is_best_effort(pod: &PodInfo) -> bool {
    pod.requests.milli_cpu == 0 && pod.requests.memory == 0
}

pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let a = &node.spec.allocatable;
    let mut fractions = Vec::with_capacity(2);
    for (req, alloc) in [
        (node.requested.milli_cpu.saturating_add(pod.requests.milli_cpu), a.milli_cpu),
        (node.requested.memory.saturating_add(pod.requests.memory), a.memory),
    ] {
        if alloc == 0 {
            continue;
        }
        fractions.push((req as f64 / alloc as f64).min(1.0));
    }
    let std = if fractions.len() == 2 { ((fractions[0] - fractions[1]) / 2.0).abs() } else { 0.0 };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{N, P};
    use std::sync::Arc;

    fn node_with(n: N, pods: &[P]) -> NodeInfo {
        let mut info = NodeInfo::new(n.build());
        for p in pods {
            info.add_pod(Arc::new(p.build()));
        }
        info
    }

    #[test]
    fn filter_by_table() {
        let n = || N::new("n").alloc("2", "4Gi", "3");
        let used = P::new("used").req("1500m", "1Gi");
        type Want = Option<(Code, Vec<&'static str>)>;
        let cases: Vec<(&str, P, NodeInfo, Want)> = vec![
            ("fits", P::new("p").req("500m", "1Gi"), node_with(n(), std::slice::from_ref(&used)), None),
            ("cpu", P::new("p").req("600m", "1Gi"), node_with(n(), std::slice::from_ref(&used)), Some((Code::Unschedulable, vec!["Insufficient cpu"]))),
            (
                "cpu and memory",
                P::new("p").req("600m", "3500Mi"),
                node_with(n(), std::slice::from_ref(&used)),
                Some((Code::Unschedulable, vec!["Insufficient cpu", "Insufficient memory"])),
            ),
            ("bigger than the node", P::new("p").req("3", "1Gi"), node_with(n(), &[]), Some((Code::Unresolvable, vec!["Insufficient cpu"]))),
            (
                "too many pods",
                P::new("p"),
                node_with(n(), &[P::new("a"), P::new("b"), P::new("c")]),
                Some((Code::Unschedulable, vec!["Too many pods"])),
            ),
            ("best effort fits a full node", P::new("p"), node_with(n(), &[P::new("big").req("2", "4Gi")]), None),
            ("zero pods allowed", P::new("p"), node_with(N::new("n").alloc("1", "1Gi", "0"), &[]), Some((Code::Unschedulable, vec!["Too many pods"]))),
            (
                "extended resource",
                P::new("p").spec(serde_json::json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "1"}}}]})),
                node_with(n(), &[]),
                Some((Code::Unresolvable, vec!["Insufficient example.com/gpu"])),
            ),
        ];
        for (name, p, node, want) in cases {
            let got = filter(&p.build(), &node);
            let got = got.map(|s| (s.code, s.reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>()));
            let want = want.map(|(c, r)| (c, r.into_iter().map(String::from).collect::<Vec<_>>()));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn scores_by_table() {
        // 4 CPU / 8 GiB node.
        let n = || N::new("n").alloc("4", "8Gi", "110");
        let cases = [
            // pod, existing, least-allocated, balanced
            (P::new("p").req("1", "2Gi"), vec![], 75, 100),
            (P::new("p").req("1", "2Gi"), vec![P::new("e").req("1", "2Gi")], 50, 100),
            (P::new("p").req("2", "0"), vec![], 75, 75),
            (P::new("p").req("4", "8Gi"), vec![], 0, 100),
            // Best effort counts 100m / 200 MiB when allocating, nothing when balancing.
            (P::new("p"), vec![], (3900 * 100 / 4000 + (8192 - 200) * 100 / 8192) / 2, 100),
            (P::new("p").req("8", "0"), vec![], 50, 50),
        ];
        for (i, (p, existing, least, balanced)) in cases.into_iter().enumerate() {
            let node = node_with(n(), &existing);
            let pod = p.build();
            assert_eq!(least_allocated(&pod, &node), least, "least, case {i}");
            assert_eq!(balanced_allocation(&pod, &node), balanced, "balanced, case {i}");
        }
        assert!(is_best_effort(&P::new("p").build()));
        assert!(!is_best_effort(&P::new("p").req("1m", "0").build()));
        assert_eq!(least_allocated(&P::new("p").build(), &node_with(N::new("n").alloc("0", "0", "1"), &[])), 0);
    }
}
