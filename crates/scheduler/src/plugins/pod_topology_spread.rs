//! PodTopologySpread: `DoNotSchedule` constraints filter (the skew a node would reach
//! must stay within `maxSkew`), `ScheduleAnyway` constraints score (fewer matching pods
//! in the node's domain is better).
//!
//! A pod with no constraints of its own gets upstream's system defaults for scoring —
//! hostname `maxSkew: 3` and zone `maxSkew: 5`, `ScheduleAnyway` — over the pods its
//! Services and controller select, which is what spreads a Deployment's replicas over
//! nodes.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::fit_error::Status;
use crate::labels::Selector;
use crate::node_info::NodeInfo;
use crate::plugins::node_affinity::required_matches;
use crate::plugins::{Cycle, MAX_NODE_SCORE};
use crate::pod_info::{PodInfo, SpreadConstraint, tolerated};

pub const ERR_REASON_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_REASON_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";

pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

/// Upstream's `countPodsMatchSelector`: same namespace, not terminating, and — an
/// upstream quirk kept on purpose — an empty selector counts nothing.
fn count_matching(node: &NodeInfo, selector: &Selector, namespace: &str) -> i64 {
    if selector.is_empty() {
        return 0;
    }
    node.pods.iter().filter(|p| !p.deleting && p.namespace == namespace && selector.matches(&p.labels)).count() as i64
}

/// Whether the node's pods count towards the constraint's domains
/// (`nodeAffinityPolicy`, `nodeTaintsPolicy`).
fn node_included(c: &SpreadConstraint, pod: &PodInfo, node: &NodeInfo) -> bool {
    if c.honor_node_affinity && !required_matches(pod, &node.spec) {
        return false;
    }
    if c.honor_taints
        && node
            .spec
            .taints
            .iter()
            .any(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(&pod.tolerations, t))
    {
        return false;
    }
    true
}

fn has_all_keys<'c>(node: &NodeInfo, mut constraints: impl Iterator<Item = &'c SpreadConstraint>) -> bool {
    constraints.all(|c| node.labels().contains_key(&c.topology_key))
}

/// Matching pods per domain, for each `DoNotSchedule` constraint.
pub struct FilterState<'a> {
    constraints: Vec<&'a SpreadConstraint>,
    counts: Vec<HashMap<&'a str, i64>>,
    min: Vec<i64>,
}

impl<'a> FilterState<'a> {
    pub fn new(cx: &Cycle<'a>) -> FilterState<'a> {
        let constraints: Vec<&SpreadConstraint> = cx.pod.spread_constraints.iter().filter(|c| c.hard).collect();
        let mut counts: Vec<HashMap<&str, i64>> = vec![HashMap::new(); constraints.len()];
        if !constraints.is_empty() {
            for node in cx.snap.nodes() {
                if !has_all_keys(node, constraints.iter().copied()) {
                    continue;
                }
                for (i, c) in constraints.iter().enumerate() {
                    if !node_included(c, cx.pod, node) {
                        continue;
                    }
                    let value = node.labels()[&c.topology_key].as_str();
                    *counts[i].entry(value).or_default() += count_matching(node, &c.selector, &cx.pod.namespace);
                }
            }
        }
        let min = counts.iter().map(|m| m.values().copied().min().unwrap_or(i64::from(i32::MAX))).collect();
        FilterState { constraints, counts, min }
    }

    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(value) = node.labels().get(&c.topology_key) else {
                return Some(Status::unresolvable(ERR_REASON_LABEL));
            };
            // Fewer eligible domains than minDomains: the global minimum counts as 0.
            let min = match c.min_domains {
                Some(md) if (self.counts[i].len() as i64) < md => 0,
                _ => self.min[i],
            };
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let matching = self.counts[i].get(value.as_str()).copied().unwrap_or(0);
            if matching + self_match - min > c.max_skew {
                return Some(Status::unschedulable(ERR_REASON_CONSTRAINTS));
            }
        }
        None
    }
}

struct PairCount {
    count: i64,
    /// Some feasible node really carries the label. Nodes without it share the pair
    /// `(key, "")` (as upstream) but never score by it, so it need not be counted.
    labelled: bool,
}

/// The PreScore state: constraints, per-domain counts, normalizing weights.
pub struct ScoreState<'a> {
    /// Each constraint with its topology key borrowed for as long as the cycle, so the
    /// pair map can be keyed by `&str` even for the default constraints we build.
    constraints: Vec<(&'a str, Cow<'a, SpreadConstraint>)>,
    /// Indexed like the feasible node list.
    ignored: Vec<bool>,
    /// As upstream, constraints sharing a topology key share the pair counts.
    pairs: HashMap<(&'a str, &'a str), PairCount>,
    weights: Vec<f64>,
}

fn default_constraints(selector: Selector) -> Vec<(&'static str, Cow<'static, SpreadConstraint>)> {
    [(LABEL_HOSTNAME, 3), (LABEL_ZONE, 5)]
        .into_iter()
        .map(|(key, skew)| {
            let c = SpreadConstraint {
                max_skew: skew,
                topology_key: key.into(),
                hard: false,
                selector: selector.clone(),
                min_domains: None,
                honor_node_affinity: true,
                honor_taints: false,
            };
            (key, Cow::Owned(c))
        })
        .collect()
}

impl<'a> ScoreState<'a> {
    /// `None` when the pod has nothing to spread (upstream's Skip).
    pub fn new(cx: &Cycle<'a>, feasible: &[&'a NodeInfo]) -> Option<ScoreState<'a>> {
        let pod: &'a PodInfo = cx.pod;
        let constraints: Vec<(&'a str, Cow<'a, SpreadConstraint>)> = if pod.spread_constraints.is_empty() {
            let selector = cx.snap.default_spread_selector(pod);
            if selector.is_empty() {
                return None;
            }
            default_constraints(selector)
        } else {
            pod.spread_constraints
                .iter()
                .filter(|c| !c.hard)
                .map(|c| (c.topology_key.as_str(), Cow::Borrowed(c)))
                .collect()
        };
        if constraints.is_empty() || feasible.is_empty() {
            return None;
        }
        // Only the system defaults tolerate nodes without a zone label.
        let require_all = !pod.spread_constraints.is_empty();
        let has_all = |node: &NodeInfo| has_all_keys(node, constraints.iter().map(|(_, c)| c.as_ref()));
        let mut ignored = vec![false; feasible.len()];
        let mut pairs: HashMap<(&str, &str), PairCount> = HashMap::new();
        let mut sizes = vec![0usize; constraints.len()];
        for (j, node) in feasible.iter().enumerate() {
            if require_all && !has_all(node) {
                ignored[j] = true;
                continue;
            }
            for (i, (key, _)) in constraints.iter().enumerate() {
                if *key == LABEL_HOSTNAME {
                    continue;
                }
                let labelled = node.labels().contains_key(*key);
                let e = pairs.entry(pair(node, key)).or_insert_with(|| {
                    sizes[i] += 1;
                    PairCount { count: 0, labelled: false }
                });
                e.labelled |= labelled;
            }
        }
        let scored = ignored.iter().filter(|i| !**i).count();
        let weights = constraints
            .iter()
            .enumerate()
            .map(|(i, (key, _))| {
                let size = if *key == LABEL_HOSTNAME { scored } else { sizes[i] };
                ((size + 2) as f64).ln()
            })
            .collect();
        if pairs.values().any(|p| p.labelled) {
            // Every matching pod of the cluster counts in its node's domain. A selector
            // that needs some `key = value` (a Deployment's `pod-template-hash`, the
            // system defaults' owner selector) finds its pods through the snapshot's label
            // index; any other walks every node's pods.
            let mut add = |c: &SpreadConstraint, key: &'a str, node: &'a NodeInfo, count: i64| {
                if require_all && !has_all(node) || !node_included(c, pod, node) {
                    return;
                }
                if let Some(e) = pairs.get_mut(&pair(node, key))
                    && e.labelled
                {
                    e.count += count;
                }
            };
            for (key, c) in constraints.iter().filter(|(key, _)| *key != LABEL_HOSTNAME) {
                match c.selector.required_pair() {
                    Some((k, v)) => {
                        for p in cx.snap.pods_labelled(k, v) {
                            if p.deleting || p.namespace != pod.namespace || !c.selector.matches(&p.labels) {
                                continue;
                            }
                            // Pods on nodes not seen yet are on no node's list either.
                            if let Some(node) = cx.snap.node(&p.node_name) {
                                add(c, key, node, 1);
                            }
                        }
                    }
                    None => {
                        for node in cx.snap.nodes() {
                            add(c, key, node, count_matching(node, &c.selector, &pod.namespace));
                        }
                    }
                }
            }
        }
        Some(ScoreState { constraints, ignored, pairs, weights })
    }

    /// Raw score of the `j`-th feasible node: matching pods in its domains, weighted.
    /// Lower is better; [`ScoreState::normalize`] turns it around.
    pub fn score(&self, pod: &PodInfo, j: usize, node: &NodeInfo) -> i64 {
        if self.ignored[j] {
            return 0;
        }
        let mut score = 0.0;
        for (i, (key, c)) in self.constraints.iter().enumerate() {
            let Some(value) = node.labels().get(*key) else { continue };
            let count = if *key == LABEL_HOSTNAME {
                count_matching(node, &c.selector, &pod.namespace)
            } else {
                self.pairs.get(&(*key, value.as_str())).map(|p| p.count).unwrap_or(0)
            };
            score += count as f64 * self.weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    pub fn normalize(&self, scores: &mut [i64]) {
        let mut min = i64::MAX;
        let mut max = 0;
        for (j, s) in scores.iter().enumerate() {
            if self.ignored[j] {
                continue;
            }
            min = min.min(*s);
            max = max.max(*s);
        }
        for (j, s) in scores.iter_mut().enumerate() {
            *s = if self.ignored[j] {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

/// The topology pair of a node for a key: nodes without the label have the value "".
fn pair<'n>(node: &'n NodeInfo, key: &'n str) -> (&'n str, &'n str) {
    (key, node.labels().get(key).map(String::as_str).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{N, P, cluster};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn spread(p: P, key: &str, skew: i32, when: &str) -> P {
        p.spec(json!({"topologySpreadConstraints": [{"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}}]}))
    }

    fn web(name: &str, node: &str) -> P {
        P::new(name).label("app", "web").on(node)
    }

    #[test]
    fn filter_by_table() {
        let zones = [
            N::new("a1").label("zone", "a"),
            N::new("a2").label("zone", "a"),
            N::new("b1").label("zone", "b"),
            N::new("x"),
        ];
        let incoming = || spread(P::new("new").label("app", "web"), "zone", 1, "DoNotSchedule");
        let cases = [
            // existing pods, node → fits?
            (vec![], "a1", Some(true)),
            (vec![web("w1", "a1")], "a1", Some(false)),
            (vec![web("w1", "a1")], "a2", Some(false)),
            (vec![web("w1", "a1")], "b1", Some(true)),
            (vec![web("w1", "a1"), web("w2", "b1")], "a2", Some(true)),
            // Pods of another app or namespace, or terminating, do not count.
            (vec![P::new("o").label("app", "db").on("a1")], "a1", Some(true)),
            (vec![web("w1", "a1").ns("other")], "a1", Some(true)),
            (vec![web("w1", "a1").meta(json!({"deletionTimestamp": "2024-01-01T00:00:00Z"}))], "a1", Some(true)),
            // A node without the topology label cannot host the pod at all.
            (vec![], "x", None),
        ];
        for (i, (existing, node, want)) in cases.into_iter().enumerate() {
            let snap = cluster(&zones, &existing);
            let pod = incoming().build();
            let cx = Cycle::new(&pod, &snap);
            let st = FilterState::new(&cx);
            let got = st.filter(&pod, snap.node(node).unwrap());
            let want = match want {
                Some(true) => None,
                Some(false) => Some(ERR_REASON_CONSTRAINTS.to_string()),
                None => Some(ERR_REASON_LABEL.to_string()),
            };
            assert_eq!(got.map(|s| s.reasons[0].to_string()), want, "case {i}");
        }
    }

    #[test]
    fn min_domains_and_inclusion_policies() {
        let nodes = [N::new("a1").label("zone", "a"), N::new("b1").label("zone", "b").label("pool", "gpu")];
        // minDomains 3 with only 2 zones: the global minimum is 0, so one pod per zone at most.
        let pod = P::new("new")
            .label("app", "web")
            .spec(json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule", "minDomains": 3, "labelSelector": {"matchLabels": {"app": "web"}}}]}))
            .build();
        let snap = cluster(&nodes, &[web("w1", "a1"), web("w2", "b1")]);
        let cx = Cycle::new(&pod, &snap);
        let st = FilterState::new(&cx);
        assert!(st.filter(&pod, snap.node("a1").unwrap()).is_some());
        assert!(st.filter(&pod, snap.node("b1").unwrap()).is_some());

        // nodeAffinityPolicy Honor (default): zone a is ignored for a pod pinned to the gpu pool,
        // so the skew in zone b is computed against b alone.
        let pinned = spread(P::new("new").label("app", "web"), "zone", 1, "DoNotSchedule")
            .spec(json!({"nodeSelector": {"pool": "gpu"}}))
            .build();
        let snap = cluster(&nodes, &[web("w2", "b1")]);
        let cx = Cycle::new(&pinned, &snap);
        assert!(FilterState::new(&cx).filter(&pinned, snap.node("b1").unwrap()).is_none());
        let mut ignoring = pinned.clone();
        ignoring.spread_constraints[0].honor_node_affinity = false;
        let cx = Cycle::new(&ignoring, &snap);
        assert!(FilterState::new(&cx).filter(&ignoring, snap.node("b1").unwrap()).is_some());
    }

    #[test]
    fn scoring_prefers_emptier_domains() {
        let nodes = [N::new("n1"), N::new("n2"), N::new("n3")];
        let snap = cluster(&nodes, &[web("w1", "n1"), web("w2", "n1"), web("w3", "n2")]);
        let pod = spread(P::new("new").label("app", "web"), LABEL_HOSTNAME, 1, "ScheduleAnyway").build();
        let cx = Cycle::new(&pod, &snap);
        let feasible: Vec<&NodeInfo> = snap.nodes().iter().collect();
        let st = ScoreState::new(&cx, &feasible).expect("constraints");
        let mut scores: Vec<i64> = feasible.iter().enumerate().map(|(j, n)| st.score(&pod, j, n)).collect();
        // weight ln(3+2) ≈ 1.609: 2 pods → 3, 1 pod → 2, none → 0.
        assert_eq!(scores, vec![3, 2, 0]);
        st.normalize(&mut scores);
        assert_eq!(scores, vec![0, 33, 100]);
    }

    #[test]
    fn default_constraints_need_a_group() {
        let nodes = [N::new("n1"), N::new("n2")];
        let snap = cluster(&nodes, &[]);
        let feasible: Vec<&NodeInfo> = snap.nodes().iter().collect();
        let lonely = P::new("p").label("app", "web").build();
        assert!(ScoreState::new(&Cycle::new(&lonely, &snap), &feasible).is_none());

        let mut snap = cluster(&nodes, &[]);
        snap.upsert_service("default", "web", Some([("app".to_string(), "web".to_string())].into()));
        let feasible: Vec<&NodeInfo> = snap.nodes().iter().collect();
        let st = ScoreState::new(&Cycle::new(&lonely, &snap), &feasible).expect("service groups the pod");
        assert_eq!(st.constraints.len(), 2);
        assert!(st.pairs.values().all(|p| !p.labelled), "no zone labels: nothing counted per zone");
    }

    #[test]
    fn zone_counts_through_the_label_index_equal_a_scan_of_every_node() {
        // `app = web` finds its pods through the index; `app in (web, none)` selects the
        // same pods but has no single required pair, so it scans every node.
        let zoned = |name: &str, zone: &str| N::new(name).label(LABEL_ZONE, zone);
        let nodes = [zoned("a1", "a"), zoned("a2", "a"), zoned("b1", "b"), zoned("c1", "c"), N::new("nozone")];
        let mut pods = vec![web("w1", "a1"), web("w2", "a2"), web("w3", "b1"), web("w4", "nozone")];
        // Other namespaces, other labels, and a pod on a node not seen yet do not count.
        pods.push(P::new("other-ns").ns("elsewhere").label("app", "web").on("c1"));
        pods.push(P::new("other-app").label("app", "db").on("c1"));
        pods.push(web("w5", "unknown-node"));
        let snap = cluster(&nodes, &pods);
        let with = |selector: serde_json::Value| {
            P::new("new")
                .label("app", "web")
                .spec(json!({"topologySpreadConstraints": [{"maxSkew": 1,
                "topologyKey": LABEL_ZONE, "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector}]}))
                .build()
        };
        let indexed = with(json!({"matchLabels": {"app": "web"}}));
        let scanned = with(json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "none"]}]}));
        let feasible: Vec<&NodeInfo> = snap.nodes().iter().collect();
        let scores = |pod: &PodInfo| {
            let st = ScoreState::new(&Cycle::new(pod, &snap), &feasible).expect("constraints");
            let counts: BTreeMap<String, i64> = st.pairs.iter().map(|((_, v), p)| (v.to_string(), p.count)).collect();
            let s: Vec<i64> = feasible.iter().enumerate().map(|(j, n)| st.score(pod, j, n)).collect();
            (counts, s)
        };
        let (counts, by_index) = scores(&indexed);
        assert_eq!(counts, BTreeMap::from([("a".into(), 2), ("b".into(), 1), ("c".into(), 0)]));
        assert_eq!((counts, by_index), scores(&scanned));
    }
}
