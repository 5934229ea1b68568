//! What the scheduler needs to know about a pod, parsed once from the API object when
//! it enters the cache (upstream's `framework.PodInfo`), so filters and scores compare
//! integers and pre-parsed selectors instead of walking JSON-shaped structs per node.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, TopologySpreadConstraint};

use crate::labels::{Labels, NodeSelector, NodeTerm, Op, Requirement, Selector};
use crate::resources::{Resources, pod_requests};

/// A taint on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

/// A pod's toleration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Toleration {
    pub key: String,
    pub operator: String,
    pub value: String,
    /// Empty: every effect.
    pub effect: String,
}

impl Toleration {
    /// `v1.Toleration.ToleratesTaint`.
    pub fn tolerates(&self, t: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != t.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != t.key {
            return false;
        }
        match self.operator.as_str() {
            "" | "Equal" => self.value == t.value,
            "Exists" => true,
            _ => false,
        }
    }
}

pub fn tolerated(tolerations: &[Toleration], t: &Taint) -> bool {
    tolerations.iter().any(|tol| tol.tolerates(t))
}

/// A `hostPort` a container asks for. Empty IP and protocol are already defaulted to
/// `0.0.0.0` and `TCP`, as `HostPortInfo` sanitizes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    pub const ANY_IP: &'static str = "0.0.0.0";

    /// `HostPortInfo.CheckConflict`: a wildcard address conflicts with any address on the
    /// same protocol and port; a specific one with itself and the wildcard.
    pub fn conflicts(&self, used: &HostPort) -> bool {
        self.port == used.port
            && self.protocol == used.protocol
            && (self.ip == Self::ANY_IP || used.ip == Self::ANY_IP || self.ip == used.ip)
    }
}

/// Which pods an affinity term selects, regardless of topology: upstream's
/// `framework.AffinityTerm` without the topology key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TermScope {
    pub namespaces: Vec<String>,
    /// `None` is a nil selector (no namespace by labels).
    pub namespace_selector: Option<Selector>,
    pub selector: Selector,
}

impl TermScope {
    /// Whether `pod` (in a namespace labelled `ns_labels`) is one this term selects.
    pub fn matches(&self, pod: &PodInfo, ns_labels: &Labels) -> bool {
        (self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| s.matches(ns_labels)))
            && self.selector.matches(&pod.labels)
    }
}

/// A pod (anti-)affinity term with its namespaces resolved as upstream's
/// `framework.AffinityTerm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityTerm {
    pub scope: TermScope,
    pub topology_key: String,
}

impl AffinityTerm {
    fn parse(owner: &PodMeta<'_>, t: &PodAffinityTerm) -> AffinityTerm {
        let mut namespaces = t.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && t.namespace_selector.is_none() {
            namespaces.push(owner.namespace.to_string());
        }
        let mut selector = Selector::from_label_selector(t.label_selector.as_ref());
        // The apiserver folds these into labelSelector on create since 1.31; doing it
        // again is harmless (the same requirement twice) and covers servers that do not.
        for key in t.match_label_keys.iter().flatten() {
            if let Some(v) = owner.labels.get(key) {
                selector.push(Requirement { key: key.clone(), op: Op::In(vec![v.clone()]) });
            }
        }
        for key in t.mismatch_label_keys.iter().flatten() {
            if let Some(v) = owner.labels.get(key) {
                selector.push(Requirement { key: key.clone(), op: Op::NotIn(vec![v.clone()]) });
            }
        }
        AffinityTerm {
            scope: TermScope {
                namespaces,
                namespace_selector: t.namespace_selector.as_ref().map(|s| Selector::from_label_selector(Some(s))),
                selector,
            },
            topology_key: t.topology_key.clone(),
        }
    }

    /// Whether `pod` (in a namespace labelled `ns_labels`) is one this term selects.
    pub fn matches(&self, pod: &PodInfo, ns_labels: &Labels) -> bool {
        self.scope.matches(pod, ns_labels)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedTerm {
    pub weight: i64,
    pub term: AffinityTerm,
}

/// A topology spread constraint with upstream's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpreadConstraint {
    pub max_skew: i64,
    pub topology_key: String,
    /// `whenUnsatisfiable: DoNotSchedule` (a filter); otherwise `ScheduleAnyway` (a score).
    pub hard: bool,
    pub selector: Selector,
    pub min_domains: Option<i64>,
    /// `nodeAffinityPolicy: Honor` (the default).
    pub honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default `Ignore`).
    pub honor_taints: bool,
}

impl SpreadConstraint {
    fn parse(owner: &PodMeta<'_>, c: &TopologySpreadConstraint) -> SpreadConstraint {
        let mut selector = Selector::from_label_selector(c.label_selector.as_ref());
        for key in c.match_label_keys.iter().flatten() {
            if let Some(v) = owner.labels.get(key) {
                selector.push(Requirement { key: key.clone(), op: Op::In(vec![v.clone()]) });
            }
        }
        SpreadConstraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            hard: c.when_unsatisfiable == "DoNotSchedule",
            selector,
            min_domains: c.min_domains.map(i64::from),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        }
    }
}

/// The controller owning a pod (its `ownerReferences` entry with `controller: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// The pod's current `PodScheduled` condition, so the scheduler writes it only when it
/// would change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScheduledCondition {
    pub status: String,
    pub reason: String,
    pub message: String,
}

struct PodMeta<'a> {
    namespace: &'a str,
    labels: &'a Labels,
}

/// Everything scheduling reads from a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: Labels,
    /// `spec.nodeName`; empty while unscheduled.
    pub node_name: String,
    pub scheduler_name: String,
    pub priority: i32,
    pub preemption_never: bool,
    pub deleting: bool,
    /// Phase `Succeeded` or `Failed`: holds no resources any more.
    pub terminal: bool,
    /// Has `spec.schedulingGates`: not to be scheduled yet.
    pub gated: bool,
    pub requests: Resources,
    /// CPU and memory with the scoring defaults for containers that request none.
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub host_ports: Vec<HostPort>,
    pub node_selector: Labels,
    pub required_node_affinity: Option<NodeSelector>,
    pub preferred_node_affinity: Vec<(i64, NodeTerm)>,
    pub tolerations: Vec<Toleration>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedTerm>,
    pub preferred_anti_affinity: Vec<WeightedTerm>,
    pub spread_constraints: Vec<SpreadConstraint>,
    pub controller: Option<ControllerRef>,
    pub condition: Option<ScheduledCondition>,
}

impl PodInfo {
    /// Parses what scheduling needs; never fails (missing fields take upstream's defaults).
    pub fn from_pod(pod: &Pod) -> PodInfo {
        let meta = &pod.metadata;
        let labels: Labels = meta.labels.clone().unwrap_or_default();
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let owner = PodMeta { namespace: &namespace, labels: &labels };
        let default_spec = Default::default();
        let spec = pod.spec.as_ref().unwrap_or(&default_spec);
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
        let requests = pod_requests(spec, false);
        let non_zero = pod_requests(spec, true);
        let host_ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.unwrap_or(0) > 0)
            .map(|p| HostPort {
                ip: p.host_ip.clone().filter(|ip| !ip.is_empty()).unwrap_or_else(|| HostPort::ANY_IP.into()),
                protocol: p.protocol.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "TCP".into()),
                port: p.host_port.unwrap_or(0),
            })
            .collect();
        let affinity = spec.affinity.as_ref();
        let node_affinity = affinity.and_then(|a| a.node_affinity.as_ref());
        let pod_affinity = affinity.and_then(|a| a.pod_affinity.as_ref());
        let pod_anti_affinity = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let terms = |ts: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            ts.into_iter().flatten().map(|t| AffinityTerm::parse(&owner, t)).collect()
        };
        let weighted = |ts: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| -> Vec<WeightedTerm> {
            ts.into_iter()
                .flatten()
                .filter(|w| w.weight != 0)
                .map(|w| WeightedTerm {
                    weight: i64::from(w.weight),
                    term: AffinityTerm::parse(&owner, &w.pod_affinity_term),
                })
                .collect()
        };
        let condition = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
            .map(|c| ScheduledCondition {
                status: c.status.clone(),
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            });
        PodInfo {
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            node_name: spec.node_name.clone().unwrap_or_default(),
            scheduler_name: spec.scheduler_name.clone().unwrap_or_default(),
            priority: spec.priority.unwrap_or(0),
            preemption_never: spec.preemption_policy.as_deref() == Some("Never"),
            deleting: meta.deletion_timestamp.is_some(),
            terminal: phase == "Succeeded" || phase == "Failed",
            gated: spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty()),
            non_zero_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
            requests,
            host_ports,
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_affinity: node_affinity
                .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref())
                .map(NodeSelector::parse),
            preferred_node_affinity: node_affinity
                .and_then(|n| n.preferred_during_scheduling_ignored_during_execution.as_ref())
                .into_iter()
                .flatten()
                .filter(|p| p.weight != 0)
                .map(|p| (i64::from(p.weight), NodeTerm::parse(&p.preference)))
                .collect(),
            tolerations: spec
                .tolerations
                .iter()
                .flatten()
                .map(|t| Toleration {
                    key: t.key.clone().unwrap_or_default(),
                    operator: t.operator.clone().unwrap_or_default(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: t.effect.clone().unwrap_or_default(),
                })
                .collect(),
            required_affinity: terms(
                pod_affinity.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref()),
            ),
            required_anti_affinity: terms(
                pod_anti_affinity.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref()),
            ),
            preferred_affinity: weighted(
                pod_affinity.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref()),
            ),
            preferred_anti_affinity: weighted(
                pod_anti_affinity.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref()),
            ),
            spread_constraints: spec
                .topology_spread_constraints
                .iter()
                .flatten()
                .map(|c| SpreadConstraint::parse(&owner, c))
                .collect(),
            controller: meta.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| {
                ControllerRef { api_version: o.api_version.clone(), kind: o.kind.clone(), name: o.name.clone() }
            }),
            condition,
            labels,
            namespace,
        }
    }

    /// `namespace/name`, the key of the queue and the cache.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether `other` is this pod as a snapshot counts it: equal in everything but its
    /// `PodScheduled` condition, which only matters while a pod waits to be scheduled.
    /// (Every field is named, so a new one must be decided on here.)
    pub fn placed_alike(&self, other: &PodInfo) -> bool {
        let PodInfo {
            namespace,
            name,
            uid,
            labels,
            node_name,
            scheduler_name,
            priority,
            preemption_never,
            deleting,
            terminal,
            gated,
            requests,
            non_zero_cpu,
            non_zero_memory,
            host_ports,
            node_selector,
            required_node_affinity,
            preferred_node_affinity,
            tolerations,
            required_affinity,
            required_anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
            spread_constraints,
            controller,
            condition: _,
        } = self;
        *namespace == other.namespace
            && *name == other.name
            && *uid == other.uid
            && *labels == other.labels
            && *node_name == other.node_name
            && *scheduler_name == other.scheduler_name
            && *priority == other.priority
            && *preemption_never == other.preemption_never
            && *deleting == other.deleting
            && *terminal == other.terminal
            && *gated == other.gated
            && *requests == other.requests
            && *non_zero_cpu == other.non_zero_cpu
            && *non_zero_memory == other.non_zero_memory
            && *host_ports == other.host_ports
            && *node_selector == other.node_selector
            && *required_node_affinity == other.required_node_affinity
            && *preferred_node_affinity == other.preferred_node_affinity
            && *tolerations == other.tolerations
            && *required_affinity == other.required_affinity
            && *required_anti_affinity == other.required_anti_affinity
            && *preferred_affinity == other.preferred_affinity
            && *preferred_anti_affinity == other.preferred_anti_affinity
            && *spread_constraints == other.spread_constraints
            && *controller == other.controller
    }

    /// Whether this scheduler should place the pod.
    pub fn wants_scheduling(&self) -> bool {
        self.node_name.is_empty()
            && (self.scheduler_name.is_empty() || self.scheduler_name == crate::SCHEDULER_NAME)
            && !self.deleting
            && !self.terminal
    }

    /// Terms that make this pod score others when they arrive: its required affinity
    /// and its preferences (its required anti-affinity filters instead).
    pub fn has_scoring_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// Any (anti-)affinity term at all: upstream's `PodsWithAffinity`.
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// Equal apart from status: an update that cannot change where the pod fits
    /// (upstream's `isPodUpdated` strips status the same way).
    pub fn same_spec(&self, other: &PodInfo) -> bool {
        self.labels == other.labels
            && self.requests == other.requests
            && self.host_ports == other.host_ports
            && self.node_selector == other.node_selector
            && self.required_node_affinity == other.required_node_affinity
            && self.preferred_node_affinity == other.preferred_node_affinity
            && self.tolerations == other.tolerations
            && self.required_affinity == other.required_affinity
            && self.required_anti_affinity == other.required_anti_affinity
            && self.preferred_affinity == other.preferred_affinity
            && self.preferred_anti_affinity == other.preferred_anti_affinity
            && self.spread_constraints == other.spread_constraints
            && self.priority == other.priority
            && self.gated == other.gated
    }
}

/// Labels of a namespace, for `namespaceSelector`s; unknown namespaces have none.
pub type NamespaceLabels = BTreeMap<String, Labels>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> PodInfo {
        PodInfo::from_pod(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn toleration_matching_by_table() {
        let taint = Taint { key: "spray".into(), value: "mortein".into(), effect: "NoSchedule".into() };
        let cases = [
            (
                Toleration {
                    key: "spray".into(),
                    operator: "Equal".into(),
                    value: "mortein".into(),
                    effect: "".into(),
                },
                true,
            ),
            (
                Toleration {
                    key: "spray".into(),
                    operator: "".into(),
                    value: "mortein".into(),
                    effect: "NoSchedule".into(),
                },
                true,
            ),
            (
                Toleration { key: "spray".into(), operator: "Equal".into(), value: "raid".into(), effect: "".into() },
                false,
            ),
            (Toleration { key: "spray".into(), operator: "Exists".into(), ..Default::default() }, true),
            (Toleration { operator: "Exists".into(), ..Default::default() }, true),
            (
                Toleration {
                    key: "spray".into(),
                    operator: "Exists".into(),
                    effect: "NoExecute".into(),
                    ..Default::default()
                },
                false,
            ),
            (Toleration { key: "other".into(), operator: "Exists".into(), ..Default::default() }, false),
            (
                Toleration {
                    key: "spray".into(),
                    operator: "Bogus".into(),
                    value: "mortein".into(),
                    ..Default::default()
                },
                false,
            ),
            // An empty key with Equal matches any key with that value (upstream quirk, kept).
            (Toleration { value: "mortein".into(), ..Default::default() }, true),
        ];
        for (tol, want) in cases {
            assert_eq!(tol.tolerates(&taint), want, "{tol:?}");
        }
    }

    #[test]
    fn host_port_conflicts_by_table() {
        let hp = |ip: &str, proto: &str, port| HostPort { ip: ip.into(), protocol: proto.into(), port };
        let cases = [
            (hp("0.0.0.0", "TCP", 80), hp("0.0.0.0", "TCP", 80), true),
            (hp("0.0.0.0", "TCP", 80), hp("10.0.0.1", "TCP", 80), true),
            (hp("10.0.0.1", "TCP", 80), hp("0.0.0.0", "TCP", 80), true),
            (hp("10.0.0.1", "TCP", 80), hp("10.0.0.2", "TCP", 80), false),
            (hp("10.0.0.1", "TCP", 80), hp("10.0.0.1", "TCP", 80), true),
            (hp("0.0.0.0", "UDP", 80), hp("0.0.0.0", "TCP", 80), false),
            (hp("0.0.0.0", "TCP", 81), hp("0.0.0.0", "TCP", 80), false),
        ];
        for (want_port, used, conflict) in cases {
            assert_eq!(want_port.conflicts(&used), conflict, "{want_port:?} vs {used:?}");
        }
    }

    #[test]
    fn parses_a_pod_with_defaults() {
        let p = pod(json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                                              "uid": "u", "controller": true}]},
            "spec": {
                "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 9}]}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}},
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                                               "labelSelector": {}, "matchLabelKeys": ["app"]}],
            },
        }));
        assert_eq!(p.key(), "shop/web");
        assert!(p.wants_scheduling());
        assert_eq!(p.host_ports, vec![HostPort { ip: "0.0.0.0".into(), protocol: "TCP".into(), port: 8080 }]);
        assert_eq!(p.required_anti_affinity[0].scope.namespaces, vec!["shop".to_string()], "own namespace by default");
        assert!(p.spread_constraints[0].hard && p.spread_constraints[0].honor_node_affinity);
        assert!(!p.spread_constraints[0].selector.is_empty(), "matchLabelKeys joined the selector");
        assert_eq!(p.controller.as_ref().map(|c| c.kind.as_str()), Some("ReplicaSet"));
        assert!(p.has_affinity());

        let empty = PodInfo::from_pod(&Pod::default());
        assert_eq!(empty.namespace, "default");
        assert!(empty.wants_scheduling());

        let other = pod(json!({"metadata": {"name": "x"}, "spec": {"containers": [], "schedulerName": "custom"}}));
        assert!(!other.wants_scheduling());
        let done =
            pod(json!({"metadata": {"name": "x"}, "spec": {"containers": []}, "status": {"phase": "Succeeded"}}));
        assert!(!done.wants_scheduling());
    }
}
