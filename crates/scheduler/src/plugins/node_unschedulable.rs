//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods that
//! tolerate the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use crate::fit_error::Status;
use crate::node_info::{NodeInfo, TAINT_UNSCHEDULABLE};
use crate::pod_info::{PodInfo, Taint, tolerated};

pub const ERR_REASON: &str = "node(s) were unschedulable";

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    if !node.spec.unschedulable {
        return None;
    }
    let taint = Taint { key: TAINT_UNSCHEDULABLE.into(), value: String::new(), effect: "NoSchedule".into() };
    if tolerated(&pod.tolerations, &taint) { None } else { Some(Status::unresolvable(ERR_REASON)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{N, P};
    use serde_json::json;

    #[test]
    fn cordoned_nodes_by_table() {
        let tolerating = P::new("t").spec(json!({"tolerations": [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}));
        let cases = [
            (P::new("p"), N::new("n"), None),
            (P::new("p"), N::new("n").cordoned(), Some(ERR_REASON)),
            (tolerating, N::new("n").cordoned(), None),
        ];
        for (p, n, want) in cases {
            let got = filter(&p.build(), &NodeInfo::new(n.build()));
            assert_eq!(got.map(|s| s.reasons[0].to_string()), want.map(String::from));
        }
    }
}
