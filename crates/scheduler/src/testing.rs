//! Builders for the decision tables: pods and nodes written as the API objects users
//! write (JSON), parsed the same way the watch path parses them.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::node_info::NodeSpec;
use crate::pod_info::PodInfo;
use crate::snapshot::Snapshot;

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A pod named `name` in `default` with one container and no requests.
#[derive(Clone)]
pub struct P(Value);

impl P {
    pub fn new(name: &str) -> P {
        P(json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
                 "spec": {"containers": [{"name": "c"}]}}))
    }

    pub fn ns(mut self, ns: &str) -> P {
        self.0["metadata"]["namespace"] = json!(ns);
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> P {
        self.0["metadata"]["labels"][k] = json!(v);
        self
    }

    /// Requests of the one container.
    pub fn req(mut self, cpu: &str, mem: &str) -> P {
        self.0["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": cpu, "memory": mem}});
        self
    }

    pub fn on(mut self, node: &str) -> P {
        self.0["spec"]["nodeName"] = json!(node);
        self
    }

    pub fn host_port(mut self, port: i32, protocol: &str, ip: &str) -> P {
        let ports = self.0["spec"]["containers"][0]["ports"].as_array().cloned().unwrap_or_default();
        let mut ports = ports;
        ports.push(json!({"containerPort": port, "hostPort": port, "protocol": protocol, "hostIP": ip}));
        self.0["spec"]["containers"][0]["ports"] = json!(ports);
        self
    }

    pub fn priority(mut self, p: i32) -> P {
        self.0["spec"]["priority"] = json!(p);
        self
    }

    /// Merges `spec` into the pod's spec.
    pub fn spec(mut self, spec: Value) -> P {
        merge(&mut self.0["spec"], spec);
        self
    }

    pub fn meta(mut self, meta: Value) -> P {
        merge(&mut self.0["metadata"], meta);
        self
    }

    pub fn build(&self) -> PodInfo {
        PodInfo::from_pod(&serde_json::from_value(self.0.clone()).expect("test pod"))
    }
}

/// A Ready node with the hostname label and 4 CPUs, 8 GiB, 110 pods allocatable.
#[derive(Clone)]
pub struct N(Value);

impl N {
    pub fn new(name: &str) -> N {
        N(json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                 "spec": {},
                 "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                            "conditions": [{"type": "Ready", "status": "True"}]}}))
    }

    pub fn alloc(mut self, cpu: &str, mem: &str, pods: &str) -> N {
        self.0["status"]["allocatable"] = json!({"cpu": cpu, "memory": mem, "pods": pods});
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> N {
        self.0["metadata"]["labels"][k] = json!(v);
        self
    }

    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> N {
        let mut taints = self.0["spec"]["taints"].as_array().cloned().unwrap_or_default();
        taints.push(json!({"key": key, "value": value, "effect": effect}));
        self.0["spec"]["taints"] = json!(taints);
        self
    }

    pub fn cordoned(mut self) -> N {
        self.0["spec"]["unschedulable"] = json!(true);
        self
    }

    pub fn ready(mut self, status: &str) -> N {
        self.0["status"]["conditions"] = json!([{"type": "Ready", "status": status}]);
        self
    }

    pub fn build(&self) -> NodeSpec {
        NodeSpec::from_node(&serde_json::from_value(self.0.clone()).expect("test node"))
    }
}

/// A cluster of these nodes with these bound pods.
pub fn cluster(nodes: &[N], pods: &[P]) -> Snapshot {
    let mut s = Snapshot::new();
    for n in nodes {
        s.upsert_node(n.build());
    }
    for p in pods {
        s.upsert_pod(Arc::new(p.build()));
    }
    s
}
