//! InterPodAffinity: required pod affinity and anti-affinity filter (both the incoming
//! pod's terms and the anti-affinity of pods already running, which must not be
//! violated by the newcomer); preferred terms, on both sides, score.
//!
//! Everything is counted per topology pair `(topologyKey, value)` once per pod over the
//! whole cluster, so the per-node check is a few map lookups.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::fit_error::Status;
use crate::node_info::NodeInfo;
use crate::plugins::{Cycle, MAX_NODE_SCORE};
use crate::pod_info::{AffinityTerm, PodInfo, TermScope, WeightedTerm};
use crate::snapshot::PairMap;

pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// Upstream's `HardPodAffinityWeight` default: how much an existing pod's *required*
/// affinity to the incoming pod counts when scoring.
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

pub struct FilterState<'a> {
    /// Nothing to check (no terms either way): upstream's Skip.
    skip: bool,
    /// Running pods' required anti-affinity terms that select the incoming pod, with
    /// the domains those pods are in.
    existing_anti: Vec<(&'a str, &'a HashMap<String, i64>)>,
    /// Pods matching all the incoming pod's affinity terms, per pair of each term's key.
    affinity: Cow<'a, PairMap>,
    /// Per anti-affinity term of the incoming pod, the pods it selects per pair.
    anti: Vec<Cow<'a, PairMap>>,
}

/// The slow path when [`Snapshot::warm`](crate::snapshot::Snapshot::warm) did not
/// prepare the counts: every running pod the scopes all select, per pair of `keys`.
fn scan(cx: &Cycle<'_>, scopes: &[&TermScope], keys: &[&str]) -> PairMap {
    let mut m = PairMap::new();
    for node in cx.snap.nodes() {
        for existing in &node.pods {
            let ns_labels = cx.snap.namespace_labels(&existing.namespace);
            if scopes.iter().all(|s| s.matches(existing, ns_labels)) {
                for k in keys {
                    if let Some(v) = node.labels().get(*k) {
                        *m.entry(k.to_string()).or_default().entry(v.clone()).or_default() += 1;
                    }
                }
            }
        }
    }
    m
}

fn count(m: &PairMap, key: &str, value: &str) -> i64 {
    m.get(key).and_then(|vs| vs.get(value)).copied().unwrap_or(0)
}

impl<'a> FilterState<'a> {
    pub fn new(cx: &Cycle<'a>) -> FilterState<'a> {
        let pod = cx.pod;
        let existing_anti: Vec<(&str, &HashMap<String, i64>)> = cx
            .snap
            .anti_groups()
            .filter(|(scope, _, _)| scope.matches(pod, cx.ns_labels))
            .map(|(_, key, g)| (key, &g.domains))
            .collect();
        let affinity = if pod.required_affinity.is_empty() {
            Cow::Owned(PairMap::new())
        } else {
            let scopes: Vec<TermScope> = pod.required_affinity.iter().map(|t| t.scope.clone()).collect();
            let keys: Vec<&str> = pod.required_affinity.iter().map(|t| t.topology_key.as_str()).collect();
            match keys.iter().all(|k| cx.snap.term_counts(&scopes, k).is_some()) {
                true => Cow::Borrowed(cx.snap.term_counts(&scopes, keys[0]).expect("checked")),
                false => Cow::Owned(scan(cx, &scopes.iter().collect::<Vec<_>>(), &keys)),
            }
        };
        let anti = pod
            .required_anti_affinity
            .iter()
            .map(|t| match cx.snap.term_counts(std::slice::from_ref(&t.scope), &t.topology_key) {
                Some(m) => Cow::Borrowed(m),
                None => Cow::Owned(scan(cx, &[&t.scope], &[&t.topology_key])),
            })
            .collect();
        let skip =
            existing_anti.is_empty() && pod.required_affinity.is_empty() && pod.required_anti_affinity.is_empty();
        FilterState { skip, existing_anti, affinity, anti }
    }

    pub fn filter(&self, cx: &Cycle<'_>, node: &NodeInfo) -> Option<Status> {
        if self.skip {
            return None;
        }
        if !self.satisfies_affinity(cx, node) {
            return Some(Status::unresolvable(ERR_REASON_AFFINITY));
        }
        let anti_hit = cx
            .pod
            .required_anti_affinity
            .iter()
            .zip(&self.anti)
            .any(|(t, m)| node.labels().get(&t.topology_key).is_some_and(|v| count(m, &t.topology_key, v) > 0));
        if anti_hit {
            return Some(Status::unschedulable(ERR_REASON_ANTI_AFFINITY));
        }
        let existing_hit = self
            .existing_anti
            .iter()
            .any(|(key, domains)| node.labels().get(*key).is_some_and(|v| domains.get(v).is_some_and(|c| *c > 0)));
        if existing_hit {
            return Some(Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY));
        }
        None
    }

    fn satisfies_affinity(&self, cx: &Cycle<'_>, node: &NodeInfo) -> bool {
        let terms = &cx.pod.required_affinity;
        let mut pods_exist = true;
        for t in terms {
            match node.labels().get(&t.topology_key) {
                Some(v) => pods_exist &= count(&self.affinity, &t.topology_key, v) > 0,
                // Every topology label must be on the node.
                None => return false,
            }
        }
        // The first pod of a group with affinity to itself: if no pod anywhere matches
        // yet, it may go anywhere its own terms would select it.
        pods_exist || (self.affinity.is_empty() && terms.iter().all(|t| t.matches(cx.pod, cx.ns_labels)))
    }
}

/// Per topology key and value, the summed preference weights.
pub struct ScoreState<'a> {
    topology: HashMap<&'a str, HashMap<&'a str, i64>>,
}

impl<'a> ScoreState<'a> {
    pub fn new(cx: &Cycle<'a>) -> Option<ScoreState<'a>> {
        let pod = cx.pod;
        let own_preferences = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if !own_preferences && !cx.snap.any_pod_with_scoring_affinity() {
            return None;
        }
        let mut st = ScoreState { topology: HashMap::new() };
        for node in cx.snap.nodes() {
            if node.labels().is_empty() || (!own_preferences && node.pods_with_scoring_affinity == 0) {
                continue;
            }
            for existing in &node.pods {
                if own_preferences || existing.has_scoring_affinity() {
                    st.process_existing(cx, existing, node);
                }
            }
        }
        if st.topology.is_empty() { None } else { Some(st) }
    }

    fn add(&mut self, node: &'a NodeInfo, key: &'a str, weight: i64) {
        if let Some(v) = node.labels().get(key) {
            *self.topology.entry(key).or_default().entry(v.as_str()).or_default() += weight;
        }
    }

    fn weighted(
        &mut self,
        terms: &'a [WeightedTerm],
        target: &PodInfo,
        ns: &crate::labels::Labels,
        node: &'a NodeInfo,
        sign: i64,
    ) {
        for w in terms {
            if w.term.matches(target, ns) {
                self.add(node, &w.term.topology_key, w.weight * sign);
            }
        }
    }

    fn process_existing(&mut self, cx: &Cycle<'a>, existing: &'a PodInfo, node: &'a NodeInfo) {
        let pod = cx.pod;
        let existing_ns = cx.snap.namespace_labels(&existing.namespace);
        self.weighted(&pod.preferred_affinity, existing, existing_ns, node, 1);
        self.weighted(&pod.preferred_anti_affinity, existing, existing_ns, node, -1);
        for t in &existing.required_affinity {
            if AffinityTerm::matches(t, pod, cx.ns_labels) {
                self.add(node, &t.topology_key, HARD_POD_AFFINITY_WEIGHT);
            }
        }
        self.weighted(&existing.preferred_affinity, pod, cx.ns_labels, node, 1);
        self.weighted(&existing.preferred_anti_affinity, pod, cx.ns_labels, node, -1);
    }

    pub fn score(&self, node: &NodeInfo) -> i64 {
        self.topology
            .iter()
            .filter_map(|(key, values)| node.labels().get(*key).and_then(|v| values.get(v.as_str())))
            .sum()
    }

    /// Min-max scaling to `0..=MAX_NODE_SCORE` (scores may be negative).
    pub fn normalize(scores: &mut [i64]) {
        let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else { return };
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 { (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64 } else { 0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{N, P, cluster};
    use serde_json::json;

    fn term(app: &str, key: &str) -> serde_json::Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
    }

    fn with(p: P, kind: &str, mode: &str, terms: serde_json::Value) -> P {
        p.spec(json!({"affinity": {kind: {mode: terms}}}))
    }

    const REQ: &str = "requiredDuringSchedulingIgnoredDuringExecution";
    const PREF: &str = "preferredDuringSchedulingIgnoredDuringExecution";

    fn verdicts(nodes: &[N], existing: &[P], pod: P) -> Vec<Option<String>> {
        let snap = cluster(nodes, existing);
        let pod = pod.build();
        let cx = Cycle::new(&pod, &snap);
        let st = FilterState::new(&cx);
        snap.nodes().iter().map(|n| st.filter(&cx, n).map(|s| s.reasons[0].to_string())).collect()
    }

    #[test]
    fn filter_by_table() {
        let nodes = [N::new("n1").label("zone", "a"), N::new("n2").label("zone", "a"), N::new("n3").label("zone", "b")];
        let db = P::new("db").label("app", "db").on("n1");
        let host = "kubernetes.io/hostname";
        let aff = |t| with(P::new("new").label("app", "web"), "podAffinity", REQ, json!([t]));
        let anti = |t| with(P::new("new").label("app", "web"), "podAntiAffinity", REQ, json!([t]));
        let no = |r: &str| Some(r.to_string());
        let cases = [
            (
                "affinity by host",
                vec![db.clone()],
                aff(term("db", host)),
                vec![None, no(ERR_REASON_AFFINITY), no(ERR_REASON_AFFINITY)],
            ),
            ("affinity by zone", vec![db.clone()], aff(term("db", "zone")), vec![None, None, no(ERR_REASON_AFFINITY)]),
            (
                "affinity to nothing yet, not to itself",
                vec![],
                aff(term("db", host)),
                vec![no(ERR_REASON_AFFINITY), no(ERR_REASON_AFFINITY), no(ERR_REASON_AFFINITY)],
            ),
            ("first of a self-affine group", vec![], aff(term("web", "zone")), vec![None, None, None]),
            ("missing topology label", vec![db.clone()], aff(term("db", "rack")), vec![no(ERR_REASON_AFFINITY); 3]),
            ("anti by host", vec![db.clone()], anti(term("db", host)), vec![no(ERR_REASON_ANTI_AFFINITY), None, None]),
            (
                "anti by zone",
                vec![db.clone()],
                anti(term("db", "zone")),
                vec![no(ERR_REASON_ANTI_AFFINITY), no(ERR_REASON_ANTI_AFFINITY), None],
            ),
            ("anti, other namespace", vec![db.clone().ns("other")], anti(term("db", host)), vec![None, None, None]),
            (
                "existing pod's anti-affinity",
                vec![with(
                    P::new("lonely").label("app", "x").on("n3"),
                    "podAntiAffinity",
                    REQ,
                    json!([term("web", "zone")]),
                )],
                P::new("new").label("app", "web"),
                vec![None, None, no(ERR_REASON_EXISTING_ANTI_AFFINITY)],
            ),
            (
                "existing anti-affinity for other pods",
                vec![with(
                    P::new("lonely").label("app", "x").on("n3"),
                    "podAntiAffinity",
                    REQ,
                    json!([term("db", "zone")]),
                )],
                P::new("new").label("app", "web"),
                vec![None, None, None],
            ),
        ];
        for (name, existing, pod, want) in cases {
            assert_eq!(verdicts(&nodes, &existing, pod), want, "{name}");
        }
    }

    #[test]
    fn namespace_selectors() {
        let nodes = [N::new("n1"), N::new("n2")];
        let mut snap = cluster(&nodes, &[P::new("db").ns("prod").label("app", "db").on("n1")]);
        snap.upsert_namespace("prod", [("env".to_string(), "prod".to_string())].into());
        let pod = |sel: serde_json::Value| {
            with(
                P::new("new"),
                "podAffinity",
                REQ,
                json!([{"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname",
                        "namespaceSelector": sel}]),
            )
            .build()
        };
        for (sel, fits_n1) in [
            (json!({"matchLabels": {"env": "prod"}}), true),
            (json!({}), true),
            (json!({"matchLabels": {"env": "dev"}}), false),
        ] {
            let p = pod(sel.clone());
            let cx = Cycle::new(&p, &snap);
            let st = FilterState::new(&cx);
            assert_eq!(st.filter(&cx, snap.node("n1").unwrap()).is_none(), fits_n1, "{sel}");
            assert!(st.filter(&cx, snap.node("n2").unwrap()).is_some(), "{sel}");
        }
    }

    #[test]
    fn scores_by_table() {
        let nodes = [N::new("n1").label("zone", "a"), N::new("n2").label("zone", "a"), N::new("n3").label("zone", "b")];
        let weighted = |w: i32, app: &str, key: &str| json!([{"weight": w, "podAffinityTerm": term(app, key)}]);
        let cases = [
            (
                "preferred affinity by zone",
                vec![P::new("db").label("app", "db").on("n1")],
                with(P::new("new"), "podAffinity", PREF, weighted(10, "db", "zone")),
                Some(vec![100, 100, 0]),
            ),
            (
                "preferred anti-affinity by host",
                vec![P::new("db").label("app", "db").on("n1")],
                with(P::new("new"), "podAntiAffinity", PREF, weighted(10, "db", "kubernetes.io/hostname")),
                Some(vec![0, 100, 100]),
            ),
            (
                "existing pod's preference for the newcomer",
                vec![with(P::new("db").label("app", "db").on("n3"), "podAffinity", PREF, weighted(5, "web", "zone"))],
                P::new("new").label("app", "web"),
                Some(vec![0, 0, 100]),
            ),
            (
                "existing pod's required affinity counts too",
                vec![with(
                    P::new("db").label("app", "db").on("n2"),
                    "podAffinity",
                    REQ,
                    json!([term("web", "kubernetes.io/hostname")]),
                )],
                P::new("new").label("app", "web"),
                Some(vec![0, 100, 0]),
            ),
            ("nothing to prefer", vec![P::new("db").label("app", "db").on("n1")], P::new("new"), None),
        ];
        for (name, existing, pod, want) in cases {
            let snap = cluster(&nodes, &existing);
            let pod = pod.build();
            let cx = Cycle::new(&pod, &snap);
            let got = ScoreState::new(&cx).map(|st| {
                let mut s: Vec<i64> = snap.nodes().iter().map(|n| st.score(n)).collect();
                ScoreState::normalize(&mut s);
                s
            });
            assert_eq!(got, want, "{name}");
        }
    }
}
