//! Label selectors and node selector terms, matched as apimachinery and
//! component-helpers' `nodeaffinity` match them.
//!
//! Parsing happens once per pod (when it enters the cache); matching runs per node and
//! per pod pair, so it only compares strings.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelector as K8sNodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
}

impl Requirement {
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Op::In(vals), Some(v)) => vals.iter().any(|x| x == v),
            (Op::In(_), None) => false,
            (Op::NotIn(vals), Some(v)) => !vals.iter().any(|x| x == v),
            (Op::NotIn(_), None) => true,
            (Op::Exists, v) => v.is_some(),
            (Op::DoesNotExist, v) => v.is_none(),
            (Op::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x > *n),
            (Op::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x < *n),
            (Op::Gt(_) | Op::Lt(_), None) => false,
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.key).map(String::as_str))
    }

    /// `labels.NewRequirement`'s value-count rules; `None` if they are broken.
    fn new(key: &str, operator: &str, values: &[String], allow_numeric: bool) -> Option<Requirement> {
        let op = match operator {
            "In" if !values.is_empty() => Op::In(values.to_vec()),
            "NotIn" if !values.is_empty() => Op::NotIn(values.to_vec()),
            "Exists" if values.is_empty() => Op::Exists,
            "DoesNotExist" if values.is_empty() => Op::DoesNotExist,
            "Gt" if allow_numeric && values.len() == 1 => Op::Gt(values[0].parse().ok()?),
            "Lt" if allow_numeric && values.len() == 1 => Op::Lt(values[0].parse().ok()?),
            _ => return None,
        };
        Some(Requirement { key: key.to_string(), op })
    }
}

/// A parsed `metav1.LabelSelector`: requirements ANDed, or nothing at all.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    reqs: Vec<Requirement>,
    /// `labels.Nothing()`: a nil selector, or one that failed to parse.
    nothing: bool,
}

impl Selector {
    pub fn everything() -> Selector {
        Selector { reqs: Vec::new(), nothing: false }
    }

    pub fn nothing() -> Selector {
        Selector { reqs: Vec::new(), nothing: true }
    }

    /// `metav1.LabelSelectorAsSelector`: nil selects nothing, `{}` everything, and an
    /// invalid expression makes the whole selector select nothing (callers upstream turn
    /// the error into "no match").
    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Selector {
        let Some(sel) = sel else { return Selector::nothing() };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement { key: k.clone(), op: Op::In(vec![v.clone()]) });
        }
        for e in sel.match_expressions.iter().flatten() {
            match Requirement::new(&e.key, &e.operator, e.values.as_deref().unwrap_or_default(), false) {
                Some(r) => reqs.push(r),
                None => return Selector::nothing(),
            }
        }
        Selector { reqs, nothing: false }
    }

    /// `labels.SelectorFromSet`: every pair must be present.
    pub fn from_map(map: &Labels) -> Selector {
        Selector {
            reqs: map.iter().map(|(k, v)| Requirement { key: k.clone(), op: Op::In(vec![v.clone()]) }).collect(),
            nothing: false,
        }
    }

    /// A `key = value` every selected set of labels must have (a `matchLabels` pair or
    /// an `In` with one value), to look candidates up in an index instead of testing
    /// every set.
    pub fn required_pair(&self) -> Option<(&str, &str)> {
        self.reqs.iter().find_map(|r| match &r.op {
            Op::In(values) if values.len() == 1 => Some((r.key.as_str(), values[0].as_str())),
            _ => None,
        })
    }

    pub fn push(&mut self, r: Requirement) {
        self.reqs.push(r);
    }

    pub fn extend(&mut self, other: &Selector) {
        self.nothing |= other.nothing;
        self.reqs.extend(other.reqs.iter().cloned());
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        !self.nothing && self.reqs.iter().all(|r| r.matches(labels))
    }

    /// `labels.Nothing()`: a nil selector or one that failed to parse.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// `selector.Empty()`: selects everything (no requirements). `Nothing` is not empty.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.reqs.is_empty()
    }
}

/// One `nodeSelectorTerm`: its label expressions and `metadata.name` field
/// expressions, ANDed. An empty term, or one with an invalid expression, matches no node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTerm {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
    valid: bool,
    /// The raw values of each `metadata.name In` field expression, valid or not: the
    /// node-name PreFilter reads them as written.
    name_pins: Vec<Vec<String>>,
}

impl NodeTerm {
    pub fn parse(t: &NodeSelectorTerm) -> NodeTerm {
        let mut valid = true;
        let mut labels = Vec::new();
        let mut fields = Vec::new();
        let mut name_pins = Vec::new();
        for e in t.match_expressions.iter().flatten() {
            match Requirement::new(&e.key, &e.operator, e.values.as_deref().unwrap_or_default(), true) {
                Some(r) => labels.push(r),
                None => valid = false,
            }
        }
        for e in t.match_fields.iter().flatten() {
            if e.key == "metadata.name" && e.operator == "In" {
                name_pins.push(e.values.clone().unwrap_or_default());
            }
            match field_requirement(e) {
                Some(r) => fields.push(r),
                None => valid = false,
            }
        }
        valid &= !(labels.is_empty() && fields.is_empty());
        NodeTerm { labels, fields, valid, name_pins }
    }

    pub fn name_pins(&self) -> &[Vec<String>] {
        &self.name_pins
    }

    pub fn matches(&self, node_labels: &Labels, node_name: &str) -> bool {
        self.valid
            && self.labels.iter().all(|r| r.matches(node_labels))
            && self.fields.iter().all(|r| r.matches_value(Some(node_name)))
    }
}

/// Field selectors on nodes know `metadata.name` only, with `In`/`NotIn` and exactly
/// one value.
fn field_requirement(e: &NodeSelectorRequirement) -> Option<Requirement> {
    let values = e.values.as_deref().unwrap_or_default();
    if e.key != "metadata.name" || values.len() != 1 {
        return None;
    }
    match e.operator.as_str() {
        "In" | "NotIn" => Requirement::new(&e.key, &e.operator, values, false),
        _ => None,
    }
}

/// `nodeSelectorTerms`, ORed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSelector {
    pub terms: Vec<NodeTerm>,
}

impl NodeSelector {
    pub fn parse(ns: &K8sNodeSelector) -> NodeSelector {
        NodeSelector { terms: ns.node_selector_terms.iter().map(NodeTerm::parse).collect() }
    }

    pub fn matches(&self, node_labels: &Labels, node_name: &str) -> bool {
        self.terms.iter().any(|t| t.matches(node_labels, node_name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_selectors_by_table() {
        let cases = [
            (json!(null), &[("a", "1")][..], false),
            (json!({}), &[][..], true),
            (json!({}), &[("a", "1")][..], true),
            (json!({"matchLabels": {"a": "1"}}), &[("a", "1"), ("b", "2")][..], true),
            (json!({"matchLabels": {"a": "1"}}), &[("a", "2")][..], false),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}),
                &[("a", "2")][..],
                true,
            ),
            (json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}), &[][..], false),
            (json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}), &[][..], true),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}),
                &[("a", "1")][..],
                false,
            ),
            (json!({"matchExpressions": [{"key": "a", "operator": "Exists"}]}), &[("a", "")][..], true),
            (json!({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}), &[("a", "")][..], false),
            // Invalid: In without values, Exists with values, Gt in a label selector.
            (json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}), &[("a", "1")][..], false),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["1"]}]}),
                &[("a", "1")][..],
                false,
            ),
            (json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["0"]}]}), &[("a", "1")][..], false),
            (json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}), &[("a", "1")][..], false),
        ];
        for (sel, l, want) in cases {
            let parsed: Option<LabelSelector> = serde_json::from_value(sel.clone()).unwrap();
            let s = Selector::from_label_selector(parsed.as_ref());
            assert_eq!(s.matches(&labels(l)), want, "{sel} against {l:?}");
        }
        assert!(Selector::from_label_selector(Some(&LabelSelector::default())).is_empty());
        assert!(!Selector::nothing().is_empty());
    }

    #[test]
    fn node_terms_by_table() {
        let node = labels(&[("zone", "a"), ("cores", "8"), ("gpu", "")]);
        let cases = [
            (json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}), true),
            (json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}), false),
            (json!({"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}), true),
            (json!({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}), true),
            (json!({"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}), true),
            (json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}), true),
            (json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]}), false),
            (json!({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["9"]}]}), true),
            (json!({"matchExpressions": [{"key": "zone", "operator": "Lt", "values": ["9"]}]}), false),
            (json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["x"]}]}), false),
            (json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["1", "2"]}]}), false),
            (json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}), true),
            (json!({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}), false),
            (json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}]}), false),
            (json!({"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["n1"]}]}), false),
            (json!({"matchFields": [{"key": "metadata.name", "operator": "Exists"}]}), false),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
                       "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}),
                false,
            ),
            (json!({}), false),
            (json!({"matchExpressions": []}), false),
        ];
        for (term, want) in cases {
            let t: NodeSelectorTerm = serde_json::from_value(term.clone()).unwrap();
            assert_eq!(NodeTerm::parse(&t).matches(&node, "n1"), want, "{term}");
        }
        let ns: K8sNodeSelector = serde_json::from_value(json!({"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
        ]}))
        .unwrap();
        assert!(NodeSelector::parse(&ns).matches(&node, "n1"), "terms are ORed");
    }
}
