//! The cluster as the scheduler sees it: nodes with their bound pods, namespace labels,
//! and the selectors of the objects whose pods the default spreading groups together.
//!
//! Upstream keeps a cache and copies it into a snapshot before each pod; ours is updated
//! in place by the one task that also schedules, so the snapshot *is* the cache and no
//! copy is made. Pods the scheduler has just placed are "assumed": counted on their
//! node at once, before the watch confirms the binding, so the next decision sees them
//! (upstream's assume/forget).
//!
//! Inter-pod affinity would otherwise rescan every pod for every pod scheduled, so two
//! indexes are kept pod by pod: the required anti-affinity terms of running pods,
//! grouped by term, with per-topology-domain counts; and, for the terms of pods being
//! scheduled ([`Snapshot::warm`]), how many running pods each term selects per domain.
//! Those counts start from a third index, bound pods by label, when the term's selector
//! needs a `key = value`: thousands of small anti-affinity groups would otherwise each
//! rescan every pod once the count cache turns over.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::labels::{Labels, Selector};
use crate::node_info::{NodeInfo, NodeSpec};
use crate::pod_info::{PodInfo, TermScope};

/// Which kinds of owner the default spreading looks up (upstream's `DefaultSelector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnerKind {
    ReplicationController,
    ReplicaSet,
    StatefulSet,
}

/// What a node update changed, so the queue knows whether to retry pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeChange {
    Added,
    /// Something a filter or score reads changed.
    Updated,
    /// Only fields scheduling ignores (heartbeats, images, …).
    Unchanged,
}

/// Counts per topology pair: key → value → count. Entries never hold 0, so an empty
/// map means "no matching pod anywhere".
pub type PairMap = HashMap<String, HashMap<String, i64>>;

fn bump_pair(m: &mut PairMap, key: &str, value: &str, by: i64) {
    let inner = match m.get_mut(key) {
        Some(i) => i,
        None => m.entry(key.to_string()).or_default(),
    };
    let gone = match inner.get_mut(value) {
        Some(c) => {
            *c += by;
            *c == 0
        }
        None => {
            inner.insert(value.to_string(), by);
            by == 0
        }
    };
    if gone {
        inner.remove(value);
        if inner.is_empty() {
            m.remove(key);
        }
    }
}

/// Running pods whose required anti-affinity has this scope and topology key.
#[derive(Debug, Default)]
pub struct AntiGroup {
    pods: i64,
    /// Topology value → how many such pods run in that domain.
    pub domains: HashMap<String, i64>,
}

/// Pods selected by all of a list of scopes, counted per pair of the listed keys.
#[derive(Debug, Default)]
struct TermCounts {
    keys: Vec<String>,
    pairs: PairMap,
}

/// More distinct terms than this being scheduled at once: start the cache afresh.
const MAX_CACHED_TERMS: usize = 256;

#[derive(Debug, Default)]
pub struct Snapshot {
    /// Sorted by name, so iteration order (and tie-breaking) is deterministic.
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Pods bound to nodes we have not seen (yet); counted once the node shows up.
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    /// Where each bound pod is: key → node name.
    placed: HashMap<String, String>,
    /// Pods placed by us and not yet confirmed by the watch: key → uid.
    assumed: HashMap<String, String>,
    namespaces: HashMap<String, Labels>,
    /// namespace → service name → `spec.selector` (services without one are left out).
    services: HashMap<String, BTreeMap<String, Labels>>,
    owners: HashMap<(OwnerKind, String, String), Selector>,
    pods_with_scoring_affinity: usize,
    anti_groups: HashMap<(TermScope, String), AntiGroup>,
    term_counts: HashMap<Vec<TermScope>, TermCounts>,
    /// Bound pods by label: key → value → pod key → pod. Counting the pods of a term
    /// whose selector needs a `key = value` looks at those pods only, not at every pod
    /// (thousands of anti-affinity groups of a few pods each otherwise rescan them all).
    by_label: HashMap<String, HashMap<String, HashMap<String, Arc<PodInfo>>>>,
    /// Where the next pod's filtering starts, so that with sampling every node gets its
    /// turn (upstream's `nextStartNodeIndex`).
    pub next_start: usize,
    empty: Labels,
}

/// Adds (`sign` 1) or removes (-1) a pod on a node labelled `labels` from the indexes.
fn account(
    anti_groups: &mut HashMap<(TermScope, String), AntiGroup>,
    term_counts: &mut HashMap<Vec<TermScope>, TermCounts>,
    namespaces: &HashMap<String, Labels>,
    pod: &PodInfo,
    labels: &Labels,
    sign: i64,
) {
    for t in &pod.required_anti_affinity {
        let group_key = (t.scope.clone(), t.topology_key.clone());
        let group = anti_groups.entry(group_key).or_default();
        group.pods += sign;
        if let Some(v) = labels.get(&t.topology_key) {
            let c = group.domains.entry(v.clone()).or_default();
            *c += sign;
            if *c == 0 {
                group.domains.remove(v);
            }
        }
        if group.pods == 0 {
            anti_groups.remove(&(t.scope.clone(), t.topology_key.clone()));
        }
    }
    if term_counts.is_empty() {
        return;
    }
    let empty = Labels::new();
    let ns_labels = namespaces.get(&pod.namespace).unwrap_or(&empty);
    for (scopes, tc) in term_counts.iter_mut() {
        if scopes.iter().all(|s| s.matches(pod, ns_labels)) {
            for k in &tc.keys {
                if let Some(v) = labels.get(k) {
                    bump_pair(&mut tc.pairs, k, v, sign);
                }
            }
        }
    }
}

impl Snapshot {
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    pub fn namespace_labels(&self, ns: &str) -> &Labels {
        self.namespaces.get(ns).unwrap_or(&self.empty)
    }

    /// Whether any bound pod has terms that score newcomers.
    pub fn any_pod_with_scoring_affinity(&self) -> bool {
        self.pods_with_scoring_affinity > 0
    }

    /// The required anti-affinity terms of running pods, one entry per distinct term.
    pub fn anti_groups(&self) -> impl Iterator<Item = (&TermScope, &str, &AntiGroup)> {
        self.anti_groups.iter().map(|((scope, key), g)| (scope, key.as_str(), g))
    }

    /// Running pods that all of `scopes` select, per pair of `key`, if [`Snapshot::warm`]
    /// prepared them.
    pub fn term_counts(&self, scopes: &[TermScope], key: &str) -> Option<&PairMap> {
        self.term_counts.get(scopes).filter(|tc| tc.keys.iter().any(|k| k == key)).map(|tc| &tc.pairs)
    }

    /// The bound (or assumed) pods labelled `key = value`, wherever they are.
    pub fn pods_labelled<'s>(&'s self, key: &str, value: &str) -> impl Iterator<Item = &'s Arc<PodInfo>> + 's {
        self.by_label.get(key).and_then(|values| values.get(value)).into_iter().flat_map(HashMap::values)
    }

    pub fn pod_count(&self) -> usize {
        self.placed.len()
    }

    /// Re-points the index at the nodes from position `from` on (those an insert or a
    /// removal shifted); nodes usually register in name order, so an add is O(1).
    fn reindex_from(&mut self, from: usize) {
        for (i, n) in self.nodes.iter().enumerate().skip(from) {
            match self.index.get_mut(&n.spec.name) {
                Some(at) => *at = i,
                None => {
                    self.index.insert(n.spec.name.clone(), i);
                }
            }
        }
    }

    /// Prepares the counts `pod`'s required terms need, so scheduling it does not scan
    /// every running pod. Optional: [`crate::schedule`] scans when they are missing.
    pub fn warm(&mut self, pod: &PodInfo) {
        for t in &pod.required_anti_affinity {
            self.ensure_counts(vec![t.scope.clone()], &t.topology_key);
        }
        if !pod.required_affinity.is_empty() {
            let scopes: Vec<TermScope> = pod.required_affinity.iter().map(|t| t.scope.clone()).collect();
            for t in &pod.required_affinity {
                self.ensure_counts(scopes.clone(), &t.topology_key);
            }
        }
    }

    fn ensure_counts(&mut self, scopes: Vec<TermScope>, key: &str) {
        let mut keys = match self.term_counts.get(&scopes) {
            Some(tc) if tc.keys.iter().any(|k| k == key) => return,
            Some(tc) => tc.keys.clone(),
            None => Vec::new(),
        };
        if self.term_counts.len() >= MAX_CACHED_TERMS {
            self.term_counts.clear();
        }
        keys.push(key.to_string());
        let mut pairs = PairMap::new();
        let mut count = |p: &PodInfo, node: &NodeInfo| {
            let ns_labels = self.namespaces.get(&p.namespace).unwrap_or(&self.empty);
            if scopes.iter().all(|s| s.matches(p, ns_labels)) {
                for k in &keys {
                    if let Some(v) = node.labels().get(k) {
                        bump_pair(&mut pairs, k, v, 1);
                    }
                }
            }
        };
        match scopes.iter().find_map(|s| s.selector.required_pair()) {
            Some((k, v)) => {
                let candidates = self.by_label.get(k).and_then(|values| values.get(v));
                for p in candidates.into_iter().flat_map(HashMap::values) {
                    // Pods on nodes not seen yet count once their node shows up.
                    if let Some(&i) = self.index.get(&p.node_name) {
                        count(p, &self.nodes[i]);
                    }
                }
            }
            None => {
                for node in &self.nodes {
                    for p in &node.pods {
                        count(p, node);
                    }
                }
            }
        }
        self.term_counts.insert(scopes, TermCounts { keys, pairs });
    }

    pub fn upsert_node(&mut self, spec: NodeSpec) -> NodeChange {
        if let Some(&i) = self.index.get(&spec.name) {
            let n = &mut self.nodes[i];
            if n.spec == spec {
                return NodeChange::Unchanged;
            }
            let old = std::mem::replace(&mut n.spec, spec);
            if old.labels != n.spec.labels {
                for p in &n.pods {
                    account(&mut self.anti_groups, &mut self.term_counts, &self.namespaces, p, &old.labels, -1);
                    account(&mut self.anti_groups, &mut self.term_counts, &self.namespaces, p, &n.spec.labels, 1);
                }
            }
            return NodeChange::Updated;
        }
        let name = spec.name.clone();
        let mut info = NodeInfo::new(spec);
        for pod in self.orphans.remove(&name).unwrap_or_default() {
            account(&mut self.anti_groups, &mut self.term_counts, &self.namespaces, &pod, &info.spec.labels, 1);
            info.add_pod(pod);
        }
        let at = self.nodes.partition_point(|n| n.spec.name < name);
        self.nodes.insert(at, info);
        self.reindex_from(at);
        NodeChange::Added
    }

    /// Forgets a node; its pods wait as orphans in case it comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.get(name).copied() else { return };
        let info = self.nodes.remove(i);
        self.index.remove(name);
        self.reindex_from(i);
        for p in &info.pods {
            account(&mut self.anti_groups, &mut self.term_counts, &self.namespaces, p, &info.spec.labels, -1);
        }
        if !info.pods.is_empty() {
            self.orphans.insert(name.to_string(), info.pods);
        }
    }

    /// Adds or replaces a pod bound to `pod.node_name` (the watch saw it bound). An
    /// assumed pod with this key is confirmed.
    pub fn upsert_pod(&mut self, pod: Arc<PodInfo>) {
        let key = pod.key();
        self.assumed.remove(&key);
        if self.replace_alike(&key, &pod) {
            return;
        }
        self.remove_placed(&key, &pod.namespace, &pod.name);
        self.place(key, pod);
    }

    /// Puts `pod` where the copy already placed on its node is, when that copy counts the
    /// same ([`PodInfo::placed_alike`]): the usual case, the watch confirming a binding
    /// this scheduler assumed. Taking the old copy out of every count and index and
    /// putting the new one in again came to a fifth of the scheduler's time per pod.
    fn replace_alike(&mut self, key: &str, pod: &Arc<PodInfo>) -> bool {
        let Some(&i) =
            self.placed.get(key).filter(|node| **node == pod.node_name).and_then(|node| self.index.get(node))
        else {
            return false;
        };
        let Some(slot) = self.nodes[i]
            .pods
            .iter_mut()
            .find(|p| p.name == pod.name && p.namespace == pod.namespace && p.placed_alike(pod))
        else {
            return false;
        };
        *slot = Arc::clone(pod);
        for (k, v) in &pod.labels {
            if let Some(indexed) =
                self.by_label.get_mut(k).and_then(|values| values.get_mut(v)).and_then(|p| p.get_mut(key))
            {
                *indexed = Arc::clone(pod);
            }
        }
        true
    }

    fn place(&mut self, key: String, pod: Arc<PodInfo>) {
        if pod.has_scoring_affinity() {
            self.pods_with_scoring_affinity += 1;
        }
        for (k, v) in &pod.labels {
            let pods = self.by_label.entry(k.clone()).or_default().entry(v.clone()).or_default();
            pods.insert(key.clone(), pod.clone());
        }
        self.placed.insert(key, pod.node_name.clone());
        match self.index.get(&pod.node_name) {
            Some(&i) => {
                let node = &mut self.nodes[i];
                account(&mut self.anti_groups, &mut self.term_counts, &self.namespaces, &pod, &node.spec.labels, 1);
                node.add_pod(pod);
            }
            None => self.orphans.entry(pod.node_name.clone()).or_default().push(pod),
        }
    }

    fn remove_placed(&mut self, key: &str, namespace: &str, name: &str) -> Option<Arc<PodInfo>> {
        let node = self.placed.remove(key)?;
        let removed = match self.index.get(&node) {
            Some(&i) => {
                let info = &mut self.nodes[i];
                let p = info.remove_pod(namespace, name);
                if let Some(p) = &p {
                    account(&mut self.anti_groups, &mut self.term_counts, &self.namespaces, p, &info.spec.labels, -1);
                }
                p
            }
            None => {
                let list = self.orphans.get_mut(&node)?;
                let j = list.iter().position(|p| p.namespace == namespace && p.name == name)?;
                let p = list.swap_remove(j);
                if list.is_empty() {
                    self.orphans.remove(&node);
                }
                Some(p)
            }
        };
        if let Some(p) = &removed {
            if p.has_scoring_affinity() {
                self.pods_with_scoring_affinity -= 1;
            }
            for (k, v) in &p.labels {
                let Some(values) = self.by_label.get_mut(k) else { continue };
                if let Some(pods) = values.get_mut(v) {
                    pods.remove(key);
                    if pods.is_empty() {
                        values.remove(v);
                    }
                }
                if values.is_empty() {
                    self.by_label.remove(k);
                }
            }
        }
        removed
    }

    /// The pod is gone (deleted, or finished): its resources are free again.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> Option<Arc<PodInfo>> {
        let key = format!("{namespace}/{name}");
        self.assumed.remove(&key);
        self.remove_placed(&key, namespace, name)
    }

    /// Counts `pod` on `node` right away, before the binding is confirmed.
    pub fn assume(&mut self, pod: &PodInfo, node: &str) {
        let key = pod.key();
        self.remove_placed(&key, &pod.namespace, &pod.name);
        let placed = PodInfo { node_name: node.to_string(), ..pod.clone() };
        self.assumed.insert(key.clone(), pod.uid.clone());
        self.place(key, Arc::new(placed));
    }

    /// Undoes [`Snapshot::assume`] after a failed binding; a confirmed pod stays.
    pub fn forget(&mut self, pod: &PodInfo) {
        let key = pod.key();
        if self.assumed.get(&key).is_some_and(|uid| *uid == pod.uid) {
            self.assumed.remove(&key);
            self.remove_placed(&key, &pod.namespace, &pod.name);
        }
    }

    /// Placed by us and not yet seen bound: an unbound copy of it from the watch is stale.
    pub fn is_assumed(&self, pod: &PodInfo) -> bool {
        self.assumed.get(&pod.key()).is_some_and(|uid| *uid == pod.uid)
    }

    /// The uid of the bound (or assumed) pod with this key.
    pub fn placed_uid(&self, key: &str) -> Option<&str> {
        let node = self.placed.get(key)?;
        let (ns, name) = key.split_once('/')?;
        let pods = match self.index.get(node) {
            Some(&i) => &self.nodes[i].pods,
            None => self.orphans.get(node)?,
        };
        pods.iter().find(|p| p.namespace == ns && p.name == name).map(|p| p.uid.as_str())
    }

    /// Returns whether the labels changed.
    pub fn upsert_namespace(&mut self, name: &str, labels: Labels) -> bool {
        let changed = self.namespaces.insert(name.to_string(), labels.clone()).is_none_or(|old| old != labels);
        if changed {
            // Cached counts matched pods through namespace selectors.
            self.term_counts.clear();
        }
        changed
    }

    pub fn remove_namespace(&mut self, name: &str) {
        if self.namespaces.remove(name).is_some() {
            self.term_counts.clear();
        }
    }

    /// `selector: None` is a service without a selector, which selects no pod.
    pub fn upsert_service(&mut self, namespace: &str, name: &str, selector: Option<Labels>) {
        match selector {
            Some(sel) => {
                self.services.entry(namespace.to_string()).or_default().insert(name.to_string(), sel);
            }
            None => self.remove_service(namespace, name),
        }
    }

    pub fn remove_service(&mut self, namespace: &str, name: &str) {
        if let Some(m) = self.services.get_mut(namespace) {
            m.remove(name);
            if m.is_empty() {
                self.services.remove(namespace);
            }
        }
    }

    pub fn upsert_owner(&mut self, kind: OwnerKind, namespace: &str, name: &str, selector: Selector) {
        self.owners.insert((kind, namespace.to_string(), name.to_string()), selector);
    }

    pub fn remove_owner(&mut self, kind: OwnerKind, namespace: &str, name: &str) {
        self.owners.remove(&(kind, namespace.to_string(), name.to_string()));
    }

    /// Upstream's `helper.DefaultSelector`: the labels every Service selecting the pod
    /// selects on, plus its controller's selector (ReplicationController, ReplicaSet or
    /// StatefulSet). Pods matching it are spread by the default constraints; empty means
    /// the pod belongs to no such group.
    pub fn default_spread_selector(&self, pod: &PodInfo) -> Selector {
        let mut set = Labels::new();
        for sel in self.services.get(&pod.namespace).into_iter().flat_map(|m| m.values()) {
            if Selector::from_map(sel).matches(&pod.labels) {
                set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let mut selector = Selector::from_map(&set);
        let Some(owner) = &pod.controller else { return selector };
        let kind = match (owner.api_version.as_str(), owner.kind.as_str()) {
            ("v1", "ReplicationController") => OwnerKind::ReplicationController,
            ("apps/v1", "ReplicaSet") => OwnerKind::ReplicaSet,
            ("apps/v1", "StatefulSet") => OwnerKind::StatefulSet,
            _ => return selector,
        };
        match self.owners.get(&(kind, pod.namespace.clone(), owner.name.clone())) {
            // A nil selector, or one that failed to parse, adds nothing, as upstream skips it.
            Some(owner_sel) if !owner_sel.is_nothing() => selector.extend(owner_sel),
            Some(_) => {}
            // The owner's watch event has not arrived yet (its pods can overtake it on
            // another stream). Its pods share the template's labels, so those stand in
            // for its selector rather than leaving the replicas unspread.
            None => selector.extend(&Selector::from_map(&pod.labels)),
        }
        selector
    }

    /// Moves the filtering start on past the nodes the last decision looked at.
    pub fn advance(&mut self, evaluated: usize) {
        if !self.nodes.is_empty() {
            self.next_start = (self.next_start + evaluated) % self.nodes.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, node: &str, cpu: &str) -> PodInfo {
        PodInfo::from_pod(
            &serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns, "uid": name},
                "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}))
            .unwrap(),
        )
    }

    fn spec(name: &str) -> NodeSpec {
        NodeSpec { name: name.into(), allowed_pods: 10, ..Default::default() }
    }

    #[test]
    fn nodes_stay_sorted_and_pods_follow_them() {
        let mut s = Snapshot::new();
        assert_eq!(s.upsert_node(spec("b")), NodeChange::Added);
        assert_eq!(s.upsert_node(spec("a")), NodeChange::Added);
        assert_eq!(s.upsert_node(spec("a")), NodeChange::Unchanged);
        assert_eq!(s.upsert_node(NodeSpec { allowed_pods: 20, ..spec("a") }), NodeChange::Updated);
        assert_eq!(s.nodes().iter().map(|n| n.name()).collect::<Vec<_>>(), ["a", "b"]);

        // A pod on an unknown node waits for it.
        s.upsert_pod(Arc::new(pod("d", "p1", "c", "1")));
        assert_eq!(s.pod_count(), 1);
        s.upsert_node(spec("c"));
        assert_eq!(s.node("c").unwrap().requested.milli_cpu, 1000);
        s.remove_node("c");
        s.upsert_node(spec("c"));
        assert_eq!(s.node("c").unwrap().pods.len(), 1, "pods survive their node going away and back");

        // Re-binding elsewhere moves the pod.
        s.upsert_pod(Arc::new(pod("d", "p1", "a", "1")));
        assert_eq!(s.node("c").unwrap().pods.len(), 0);
        assert_eq!(s.node("a").unwrap().requested.milli_cpu, 1000);
        assert!(s.remove_pod("d", "p1").is_some());
        assert_eq!(s.node("a").unwrap().requested.milli_cpu, 0);
        assert_eq!(s.pod_count(), 0);
    }

    #[test]
    fn assume_then_confirm_or_forget() {
        let mut s = Snapshot::new();
        s.upsert_node(spec("a"));
        let p = pod("d", "p", "", "500m");
        s.assume(&p, "a");
        assert!(s.is_assumed(&p));
        assert_eq!(s.node("a").unwrap().requested.milli_cpu, 500);
        s.forget(&p);
        assert_eq!(s.node("a").unwrap().requested.milli_cpu, 0);
        assert!(!s.is_assumed(&p));

        s.assume(&p, "a");
        s.upsert_pod(Arc::new(PodInfo { node_name: "a".into(), ..p.clone() }));
        assert!(!s.is_assumed(&p));
        s.forget(&p);
        assert_eq!(s.node("a").unwrap().requested.milli_cpu, 500, "a confirmed pod is not forgotten");
    }

    #[test]
    fn a_confirmed_binding_replaces_the_assumed_copy_everywhere_and_counts_it_once() {
        let mut s = Snapshot::new();
        s.upsert_node(spec("a"));
        s.upsert_node(spec("b"));
        let mut p = pod("d", "p", "", "500m");
        p.labels = [("app".to_string(), "web".to_string())].into();
        s.assume(&p, "a");
        // The watch's copy differs only in its condition: swapped in place.
        let scheduled = crate::pod_info::ScheduledCondition { status: "True".into(), ..Default::default() };
        let bound = Arc::new(PodInfo { node_name: "a".into(), condition: Some(scheduled), ..p.clone() });
        s.upsert_pod(Arc::clone(&bound));
        let a = s.node("a").unwrap();
        assert_eq!((a.pods.len(), a.requested.milli_cpu), (1, 500));
        assert!(Arc::ptr_eq(&a.pods[0], &bound), "the node holds the confirmed copy");
        let labelled: Vec<_> = s.pods_labelled("app", "web").collect();
        assert!(labelled.len() == 1 && Arc::ptr_eq(labelled[0], &bound), "so does the label index");
        assert_eq!(s.pod_count(), 1);

        // Anything the snapshot counts differs: taken out and put in again.
        let relabelled = Arc::new(PodInfo {
            labels: [("app".to_string(), "db".to_string())].into(),
            requests: crate::resources::Resources { milli_cpu: 700, ..Default::default() },
            ..(*bound).clone()
        });
        s.upsert_pod(Arc::clone(&relabelled));
        assert_eq!(s.pods_labelled("app", "web").count(), 0);
        assert_eq!(s.pods_labelled("app", "db").count(), 1);
        assert_eq!(s.node("a").unwrap().requested.milli_cpu, 700);
        // And on another node: moved.
        s.upsert_pod(Arc::new(PodInfo { node_name: "b".into(), ..(*relabelled).clone() }));
        assert_eq!((s.node("a").unwrap().pods.len(), s.node("a").unwrap().requested.milli_cpu), (0, 0));
        assert_eq!((s.node("b").unwrap().pods.len(), s.node("b").unwrap().requested.milli_cpu), (1, 700));
        assert_eq!(s.pod_count(), 1);
    }

    #[test]
    fn default_spread_selector_from_services_and_owner() {
        let mut s = Snapshot::new();
        let mut p = pod("d", "p", "", "0");
        p.labels = [("app".to_string(), "web".to_string()), ("tier".to_string(), "fe".to_string())].into();
        assert!(s.default_spread_selector(&p).is_empty(), "no group");
        s.upsert_service("d", "web", Some([("app".to_string(), "web".to_string())].into()));
        s.upsert_service("d", "other", Some([("app".to_string(), "db".to_string())].into()));
        s.upsert_service("d", "headless", None);
        let sel = s.default_spread_selector(&p);
        assert!(!sel.is_empty());
        assert!(sel.matches(&[("app".to_string(), "web".to_string())].into()));

        let mut owned = p.clone();
        owned.controller = Some(crate::pod_info::ControllerRef {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web-1".into(),
        });
        s.remove_service("d", "web");
        let stand_in = s.default_spread_selector(&owned);
        assert!(stand_in.matches(&owned.labels), "owner unknown yet: its labels stand in");
        assert!(!stand_in.matches(&[("tier".to_string(), "fe".to_string())].into()));
        s.upsert_owner(OwnerKind::ReplicaSet, "d", "web-1", Selector::from_map(&[("tier".into(), "fe".into())].into()));
        let sel = s.default_spread_selector(&owned);
        assert!(sel.matches(&[("tier".to_string(), "fe".to_string())].into()));
        assert!(!sel.matches(&[("tier".to_string(), "be".to_string())].into()));
    }
}
