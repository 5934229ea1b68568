//! Resource amounts, and the effective requests of a pod as upstream's
//! `resourcehelper.PodRequests` computes them: app containers and sidecars (restartable
//! init containers) add up; a regular init container runs alone beside the sidecars
//! started before it, so the pod needs the maximum of the two; overhead comes on top.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity;

/// What the scoring plugins assume a container without a CPU request uses (upstream's
/// `DefaultMilliCPURequest`), so best-effort pods still spread.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Likewise for memory (`DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// CPU in milli-cores, the rest in whole units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Extended resources, huge pages, attachable volumes (upstream's scalar resources).
    pub scalar: BTreeMap<String, i64>,
}

/// Upstream's `IsScalarResourceName`: extended (`vendor/name`, `kubernetes.io/…`),
/// huge pages and attachable-volume resources.
pub fn is_scalar(name: &str) -> bool {
    name.contains('/') || name.starts_with("hugepages-") || name.starts_with("attachable-volumes-")
}

impl Resources {
    /// A `ResourceList` (requests, overhead, allocatable); `pods` and unknown names are
    /// not resources a pod requests and are left out.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list {
            match name.as_str() {
                "cpu" => r.milli_cpu = quantity::milli(&q.0),
                "memory" => r.memory = quantity::value(&q.0),
                "ephemeral-storage" => r.ephemeral_storage = quantity::value(&q.0),
                n if is_scalar(n) => {
                    r.scalar.insert(n.to_string(), quantity::value(&q.0));
                }
                _ => {}
            }
        }
        r
    }

    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = e.saturating_add(*v);
        }
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = e.saturating_sub(*v);
            if *e == 0 {
                self.scalar.remove(k);
            }
        }
    }

    fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar.get(name).copied().unwrap_or(0)
    }
}

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = requests.map(Resources::from_list).unwrap_or_default();
    // Defaults apply where the request is missing, not where it is an explicit zero.
    if non_zero {
        if !requests.is_some_and(|m| m.contains_key("cpu")) {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !requests.is_some_and(|m| m.contains_key("memory")) {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// The pod's effective requests. With `non_zero`, containers missing a CPU or memory
/// request count the scoring defaults instead (upstream's `NonMissingContainerRequests`).
pub fn pod_requests(spec: &PodSpec, non_zero: bool) -> Resources {
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            init_max.max_with(&sidecars);
        } else {
            let mut running = r;
            running.add(&sidecars);
            init_max.max_with(&running);
        }
    }
    reqs.max_with(&init_max);
    if let Some(overhead) = &spec.overhead {
        reqs.add(&Resources::from_list(overhead));
    }
    reqs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    fn c(name: &str, cpu: Option<&str>, mem: Option<&str>) -> serde_json::Value {
        let mut req = serde_json::Map::new();
        if let Some(cpu) = cpu {
            req.insert("cpu".into(), json!(cpu));
        }
        if let Some(mem) = mem {
            req.insert("memory".into(), json!(mem));
        }
        json!({"name": name, "resources": {"requests": req}})
    }

    #[test]
    fn effective_requests_by_table() {
        let sidecar = |name: &str, cpu: &str| {
            let mut v = c(name, Some(cpu), Some("0"));
            v["restartPolicy"] = json!("Always");
            v
        };
        let cases = [
            ("empty", json!({"containers": []}), (0, 0), (0, 0)),
            ("no requests", json!({"containers": [{"name": "a"}]}), (0, 0), (100, DEFAULT_MEMORY_REQUEST)),
            ("explicit zero keeps zero", json!({"containers": [c("a", Some("0"), Some("0"))]}), (0, 0), (0, 0)),
            (
                "containers add up",
                json!({"containers": [c("a", Some("100m"), Some("1Mi")), c("b", Some("250m"), None)]}),
                (350, 1 << 20),
                (350, (1 << 20) + DEFAULT_MEMORY_REQUEST),
            ),
            (
                "init container max wins",
                json!({"containers": [c("a", Some("100m"), Some("1Mi"))],
                       "initContainers": [c("i1", Some("2"), Some("1Ki")), c("i2", Some("500m"), Some("4Mi"))]}),
                (2000, 4 << 20),
                (2000, 4 << 20),
            ),
            (
                "init smaller than app",
                json!({"containers": [c("a", Some("1"), Some("1Gi"))], "initContainers": [c("i", Some("10m"), Some("1Mi"))]}),
                (1000, 1 << 30),
                (1000, 1 << 30),
            ),
            (
                // sidecar s (300m) runs with the app (100m): 400m; init i2 (200m) starts after s: 500m.
                "sidecars add to the app and to later init containers",
                json!({"containers": [c("a", Some("100m"), Some("0"))],
                       "initContainers": [c("i1", Some("250m"), Some("0")), sidecar("s", "300m"), c("i2", Some("200m"), Some("0"))]}),
                (500, 0),
                (500, 0),
            ),
            (
                "overhead on top",
                json!({"containers": [c("a", Some("100m"), Some("1Mi"))], "overhead": {"cpu": "50m", "memory": "1Mi"}}),
                (150, 2 << 20),
                (150, (2 << 20)),
            ),
            (
                "bad quantity is zero",
                json!({"containers": [c("a", Some("lots"), Some("1Mi"))]}),
                (0, 1 << 20),
                (0, 1 << 20),
            ),
        ];
        for (name, s, (cpu, mem), (nz_cpu, nz_mem)) in cases {
            let s = spec(s);
            let r = pod_requests(&s, false);
            assert_eq!((r.milli_cpu, r.memory), (cpu, mem), "{name}");
            let nz = pod_requests(&s, true);
            assert_eq!((nz.milli_cpu, nz.memory), (nz_cpu, nz_mem), "{name} (non-zero)");
        }
    }

    #[test]
    fn scalar_and_storage_resources() {
        let s = spec(json!({"containers": [{"name": "a", "resources": {"requests": {
            "nvidia.com/gpu": "2", "hugepages-2Mi": "4Mi", "ephemeral-storage": "1Gi", "pods": "3", "storage": "1"}}}]}));
        let r = pod_requests(&s, false);
        assert_eq!(r.scalar("nvidia.com/gpu"), 2);
        assert_eq!(r.scalar("hugepages-2Mi"), 4 << 20);
        assert_eq!(r.ephemeral_storage, 1 << 30);
        assert_eq!(r.scalar.len(), 2, "pods and storage are not requested resources");
        let mut total = r.clone();
        total.add(&r);
        total.sub(&r);
        assert_eq!(total, r);
    }
}
