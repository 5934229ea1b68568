//! NodeAffinity: `nodeSelector` and required node affinity filter; preferred terms score.
//!
//! A required term pinning `metadata.name` lets PreFilter narrow the candidate nodes to
//! those names up front, as upstream does (the others are reported as "didn't satisfy
//! plugin(s) [NodeAffinity]").

use std::collections::BTreeSet;

use crate::fit_error::Status;
use crate::node_info::{NodeInfo, NodeSpec};
use crate::pod_info::PodInfo;

pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_REASON_CONFLICT: &str = "pod affinity terms conflict";
pub const ERR_REASON_ABSENT: &str = "node(s) didn't satisfy plugin(s) [NodeAffinity]";

/// What PreFilter decided about the candidate nodes.
#[derive(Debug, PartialEq, Eq)]
pub enum PreFilter {
    AllNodes,
    Only(BTreeSet<String>),
    /// No node can match (every term names disjoint nodes).
    Reject,
}

pub fn pre_filter(pod: &PodInfo) -> PreFilter {
    let Some(required) = &pod.required_node_affinity else { return PreFilter::AllNodes };
    let mut names: Option<BTreeSet<String>> = None;
    for term in &required.terms {
        let mut term_names: Option<BTreeSet<String>> = None;
        for values in term.name_pins() {
            let s: BTreeSet<String> = values.iter().cloned().collect();
            term_names = Some(match term_names {
                None => s,
                Some(prev) => prev.intersection(&s).cloned().collect(),
            });
        }
        // A term without a name pin allows any node: the terms are ORed.
        let Some(term_names) = term_names else { return PreFilter::AllNodes };
        names.get_or_insert_with(BTreeSet::new).extend(term_names);
    }
    match names {
        None => PreFilter::AllNodes,
        Some(n) if n.is_empty() => PreFilter::Reject,
        Some(n) => PreFilter::Only(n),
    }
}

/// `nodeSelector` and the required affinity (upstream's `GetRequiredNodeAffinity`).
pub fn required_matches(pod: &PodInfo, node: &NodeSpec) -> bool {
    pod.node_selector.iter().all(|(k, v)| node.labels.get(k) == Some(v))
        && pod.required_node_affinity.as_ref().is_none_or(|ns| ns.matches(&node.labels, &node.name))
}

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    (!required_matches(pod, &node.spec)).then(|| Status::unresolvable(ERR_REASON_POD))
}

/// Raw score: the summed weights of the preferred terms the node matches.
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.preferred_node_affinity.iter().filter(|(_, t)| t.matches(node.labels(), node.name())).map(|(w, _)| *w).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{N, P};
    use serde_json::json;

    fn required(terms: serde_json::Value) -> P {
        P::new("p").spec(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}))
    }

    #[test]
    fn filter_by_table() {
        let node = N::new("n1").label("disk", "ssd").label("zone", "a").label("cores", "16");
        let expr = |k: &str, op: &str, v: serde_json::Value| json!({"matchExpressions": [{"key": k, "operator": op, "values": v}]});
        let cases = [
            ("no constraint", P::new("p"), true),
            ("selector match", P::new("p").spec(json!({"nodeSelector": {"disk": "ssd"}})), true),
            ("selector mismatch", P::new("p").spec(json!({"nodeSelector": {"disk": "hdd"}})), false),
            ("selector needs all", P::new("p").spec(json!({"nodeSelector": {"disk": "ssd", "gpu": "yes"}})), false),
            ("In", required(json!([expr("zone", "In", json!(["a", "b"]))])), true),
            ("NotIn", required(json!([expr("zone", "NotIn", json!(["a"]))])), false),
            ("Exists", required(json!([{"matchExpressions": [{"key": "disk", "operator": "Exists"}]}])), true),
            (
                "DoesNotExist",
                required(json!([{"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}])),
                false,
            ),
            ("Gt", required(json!([expr("cores", "Gt", json!(["8"]))])), true),
            ("Lt", required(json!([expr("cores", "Lt", json!(["8"]))])), false),
            (
                "terms ORed",
                required(json!([expr("zone", "In", json!(["b"])), expr("disk", "In", json!(["ssd"]))])),
                true,
            ),
            ("no terms", required(json!([])), false),
            (
                "matchFields name",
                required(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}])),
                true,
            ),
            (
                "matchFields other",
                required(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}])),
                false,
            ),
            (
                "selector and affinity both apply",
                required(json!([expr("zone", "In", json!(["a"]))])).spec(json!({"nodeSelector": {"disk": "hdd"}})),
                false,
            ),
        ];
        for (name, p, fits) in cases {
            assert_eq!(filter(&p.build(), &NodeInfo::new(node.build())).is_none(), fits, "{name}");
        }
    }

    #[test]
    fn pre_filter_by_table() {
        let name_in =
            |v: serde_json::Value| json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": v}]});
        let set = |v: &[&str]| PreFilter::Only(v.iter().map(|s| s.to_string()).collect());
        let cases = [
            (P::new("p"), PreFilter::AllNodes),
            (required(json!([name_in(json!(["a"]))])), set(&["a"])),
            (required(json!([name_in(json!(["a"])), name_in(json!(["b"]))])), set(&["a", "b"])),
            (
                required(json!([{"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": ["a"]},
                    {"key": "metadata.name", "operator": "In", "values": ["b"]}]}])),
                PreFilter::Reject,
            ),
            (
                required(json!([name_in(json!(["a"])), {"matchExpressions": [{"key": "x", "operator": "Exists"}]}])),
                PreFilter::AllNodes,
            ),
        ];
        for (p, want) in cases {
            assert_eq!(pre_filter(&p.build()), want);
        }
    }

    #[test]
    fn preferred_terms_sum_weights() {
        let p = P::new("p")
            .spec(json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
                {"weight": 3, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}},
                {"weight": 0, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}},
                {"weight": 7, "preference": {}},
            ]}}}))
            .build();
        assert_eq!(score(&p, &NodeInfo::new(N::new("n").label("zone", "a").label("disk", "x").build())), 8);
        assert_eq!(score(&p, &NodeInfo::new(N::new("n").label("zone", "b").build())), 0);
    }
}
