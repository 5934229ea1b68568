//! A node as the scheduler sees it: the parts of the Node object filters read, plus the
//! running totals of the pods bound to it (upstream's `framework.NodeInfo`), kept up to
//! date pod by pod so no filter ever re-adds a node's pods.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::labels::Labels;
use crate::pod_info::{HostPort, PodInfo, Taint};
use crate::quantity;
use crate::resources::Resources;

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The Node object's scheduling-relevant fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSpec {
    pub name: String,
    pub labels: Labels,
    /// `spec.taints`, plus the `NoSchedule` taint the node lifecycle controller puts on a
    /// node that is not Ready (see [`NodeSpec::from_node`]).
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    pub allowed_pods: i64,
}

impl NodeSpec {
    /// Upstream's scheduler does not read node conditions: the node lifecycle controller
    /// turns `Ready != True` into the `node.kubernetes.io/not-ready` (or `unreachable`
    /// when Unknown) `NoSchedule` taint, and the taint filter does the rest. We add that
    /// taint here when the controller has not (yet), so not-Ready nodes are skipped with
    /// upstream's message and pods tolerating the taint (DaemonSets) still land there.
    pub fn from_node(node: &Node) -> NodeSpec {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let mut taints: Vec<Taint> = spec
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .map(|t| Taint { key: t.key.clone(), value: t.value.clone().unwrap_or_default(), effect: t.effect.clone() })
            .collect();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        let implied = match ready {
            Some("True") => None,
            Some("Unknown") => Some(TAINT_UNREACHABLE),
            _ => Some(TAINT_NOT_READY),
        };
        if let Some(key) = implied
            && !taints.iter().any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint { key: key.into(), value: String::new(), effect: "NoSchedule".into() });
        }
        let allocatable = status.and_then(|s| s.allocatable.as_ref());
        NodeSpec {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            allocatable: allocatable.map(Resources::from_list).unwrap_or_default(),
            allowed_pods: allocatable.and_then(|a| a.get("pods")).map(|q| quantity::value(&q.0)).unwrap_or(0),
        }
    }
}

/// A node and the pods bound (or assumed bound) to it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub spec: NodeSpec,
    pub pods: Vec<Arc<PodInfo>>,
    pub requested: Resources,
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub used_ports: Vec<HostPort>,
    /// Pods whose terms score newcomers (required affinity, preferences).
    pub pods_with_scoring_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    pub fn new(spec: NodeSpec) -> NodeInfo {
        NodeInfo { spec, ..Default::default() }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn labels(&self) -> &Labels {
        &self.spec.labels
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_cpu = self.non_zero_cpu.saturating_add(pod.non_zero_cpu);
        self.non_zero_memory = self.non_zero_memory.saturating_add(pod.non_zero_memory);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_scoring_affinity() {
            self.pods_with_scoring_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes the pod with this namespace and name; returns it if it was here.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.name == name && p.namespace == namespace)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_cpu = self.non_zero_cpu.saturating_sub(pod.non_zero_cpu);
        self.non_zero_memory = self.non_zero_memory.saturating_sub(pod.non_zero_memory);
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_scoring_affinity() {
            self.pods_with_scoring_affinity -= 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        Some(pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> NodeSpec {
        NodeSpec::from_node(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn readiness_becomes_a_taint() {
        let ready = json!({"type": "Ready", "status": "True"});
        let cases = [
            (json!({"metadata": {"name": "n"}}), Some(TAINT_NOT_READY)),
            (json!({"metadata": {"name": "n"}, "status": {"conditions": [ready]}}), None),
            (
                json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                Some(TAINT_NOT_READY),
            ),
            (
                json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
                Some(TAINT_UNREACHABLE),
            ),
        ];
        for (n, want) in cases {
            let spec = node(n.clone());
            assert_eq!(spec.taints.last().map(|t| t.key.as_str()), want, "{n}");
        }
        // The controller's own taint is not doubled.
        let tainted = node(json!({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": TAINT_NOT_READY, "effect": "NoSchedule"}]}}));
        assert_eq!(tainted.taints.len(), 1);
    }

    #[test]
    fn allocatable_and_pod_totals() {
        let spec = node(json!({"metadata": {"name": "n", "labels": {"zone": "a"}},
            "spec": {"unschedulable": true},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110", "example.com/dongle": "3"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}));
        assert_eq!((spec.allocatable.milli_cpu, spec.allocatable.memory, spec.allowed_pods), (2000, 4 << 30, 110));
        assert_eq!(spec.allocatable.scalar("example.com/dongle"), 3);
        assert!(spec.unschedulable && spec.taints.is_empty());
        let mut info = NodeInfo::new(spec);
        let pod: PodInfo = PodInfo::from_pod(
            &serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [
                {"name": "c", "resources": {"requests": {"cpu": "500m"}}, "ports": [{"containerPort": 1, "hostPort": 80}]}]}}))
            .unwrap(),
        );
        info.add_pod(Arc::new(pod.clone()));
        info.add_pod(Arc::new(PodInfo { name: "q".into(), ..pod }));
        assert_eq!((info.requested.milli_cpu, info.non_zero_memory, info.used_ports.len()), (1000, 400 << 20, 2));
        assert!(info.remove_pod("d", "p").is_some());
        assert!(info.remove_pod("d", "p").is_none());
        assert_eq!((info.requested.milli_cpu, info.used_ports.len(), info.pods.len()), (500, 1, 1));
    }
}
