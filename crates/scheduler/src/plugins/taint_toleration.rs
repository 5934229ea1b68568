//! TaintToleration: `NoSchedule`/`NoExecute` taints the pod does not tolerate rule the
//! node out; untolerated `PreferNoSchedule` taints only lower its score.

use crate::fit_error::Status;
use crate::node_info::NodeInfo;
use crate::pod_info::{PodInfo, Toleration, tolerated};

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let taint = node
        .spec
        .taints
        .iter()
        .find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(&pod.tolerations, t))?;
    Some(Status::unresolvable(format!("node(s) had untolerated taint {{{}: {}}}", taint.key, taint.value)))
}

/// The tolerations that can tolerate a `PreferNoSchedule` taint.
pub fn prefer_no_schedule_tolerations(pod: &PodInfo) -> Vec<Toleration> {
    pod.tolerations.iter().filter(|t| t.effect.is_empty() || t.effect == "PreferNoSchedule").cloned().collect()
}

/// Raw score: how many `PreferNoSchedule` taints are not tolerated (fewer is better:
/// normalized in reverse).
pub fn score(tolerations: &[Toleration], node: &NodeInfo) -> i64 {
    node.spec.taints.iter().filter(|t| t.effect == "PreferNoSchedule" && !tolerated(tolerations, t)).count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{N, P};
    use serde_json::json;

    #[test]
    fn filter_by_table() {
        let tol = |v: serde_json::Value| P::new("p").spec(json!({"tolerations": v}));
        let cases = [
            (P::new("p"), N::new("n"), None),
            (
                P::new("p"),
                N::new("n").taint("spray", "mortein", "NoSchedule"),
                Some("node(s) had untolerated taint {spray: mortein}"),
            ),
            (P::new("p"), N::new("n").taint("k", "", "NoExecute"), Some("node(s) had untolerated taint {k: }")),
            (P::new("p"), N::new("n").taint("k", "v", "PreferNoSchedule"), None),
            (
                tol(json!([{"key": "spray", "value": "mortein", "effect": "NoSchedule"}])),
                N::new("n").taint("spray", "mortein", "NoSchedule"),
                None,
            ),
            (
                tol(json!([{"key": "spray", "operator": "Exists"}])),
                N::new("n").taint("spray", "raid", "NoExecute"),
                None,
            ),
            (
                tol(json!([{"key": "spray", "value": "raid"}])),
                N::new("n").taint("spray", "mortein", "NoSchedule"),
                Some("node(s) had untolerated taint {spray: mortein}"),
            ),
            // The first untolerated taint is the one reported.
            (
                tol(json!([{"key": "a", "operator": "Exists"}])),
                N::new("n").taint("a", "1", "NoSchedule").taint("b", "2", "NoSchedule").taint("c", "3", "NoSchedule"),
                Some("node(s) had untolerated taint {b: 2}"),
            ),
            (
                P::new("p"),
                N::new("n").ready("False"),
                Some("node(s) had untolerated taint {node.kubernetes.io/not-ready: }"),
            ),
            (
                P::new("p"),
                N::new("n").ready("Unknown"),
                Some("node(s) had untolerated taint {node.kubernetes.io/unreachable: }"),
            ),
            (
                tol(json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])),
                N::new("n").ready("False"),
                None,
            ),
        ];
        for (i, (p, n, want)) in cases.into_iter().enumerate() {
            let got = filter(&p.build(), &NodeInfo::new(n.build()));
            assert_eq!(got.map(|s| s.reasons[0].to_string()), want.map(String::from), "case {i}");
        }
    }

    #[test]
    fn score_counts_untolerated_prefer_no_schedule() {
        let node = NodeInfo::new(
            N::new("n")
                .taint("a", "1", "PreferNoSchedule")
                .taint("b", "2", "PreferNoSchedule")
                .taint("c", "3", "NoSchedule")
                .build(),
        );
        let none = P::new("p").build();
        assert_eq!(score(&prefer_no_schedule_tolerations(&none), &node), 2);
        let some = P::new("p")
            .spec(json!({"tolerations": [{"key": "a", "operator": "Exists", "effect": "PreferNoSchedule"},
                                          {"key": "b", "operator": "Exists", "effect": "NoSchedule"}]}))
            .build();
        assert_eq!(score(&prefer_no_schedule_tolerations(&some), &node), 1, "a NoSchedule toleration does not count");
    }
}
