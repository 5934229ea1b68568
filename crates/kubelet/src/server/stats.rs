//! `/stats/summary`: the node's and every pod's CPU and memory use in upstream's
//! `stats/v1alpha1` Summary shape (what metrics-server reads), from CRI container stats
//! and the node's own /proc and cgroup files.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_cri::v1 as cri;
use serde_json::{Value, json};

use crate::pod::spec::{LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};

fn rfc3339(ns: i64) -> String {
    Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(Timestamp::UNIX_EPOCH).to_string()
}

fn value(v: &Option<cri::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

fn cpu(c: &Option<cri::CpuUsage>) -> Value {
    let Some(c) = c else { return json!({}) };
    json!({"time": rfc3339(c.timestamp), "usageNanoCores": value(&c.usage_nano_cores),
           "usageCoreNanoSeconds": value(&c.usage_core_nano_seconds)})
}

fn memory(m: &Option<cri::MemoryUsage>) -> Value {
    let Some(m) = m else { return json!({}) };
    json!({"time": rfc3339(m.timestamp), "workingSetBytes": value(&m.working_set_bytes),
           "usageBytes": value(&m.usage_bytes), "rssBytes": value(&m.rss_bytes),
           "availableBytes": value(&m.available_bytes), "pageFaults": value(&m.page_faults),
           "majorPageFaults": value(&m.major_page_faults)})
}

fn sum(items: &[Value], section: &str, field: &str) -> Option<u64> {
    let vals: Vec<u64> = items.iter().filter_map(|c| c[section][field].as_u64()).collect();
    (!vals.is_empty()).then(|| vals.iter().sum())
}

/// The pods part of the summary: containers grouped by their pod labels.
pub fn pods(stats: &[cri::ContainerStats], now: Timestamp) -> Vec<Value> {
    let mut by_pod: BTreeMap<(String, String, String), Vec<Value>> = BTreeMap::new();
    for s in stats {
        let Some(attrs) = &s.attributes else { continue };
        let label = |k: &str| attrs.labels.get(k).cloned().unwrap_or_default();
        let key = (label(LABEL_POD_NAMESPACE), label(LABEL_POD_NAME), label(LABEL_POD_UID));
        let name = attrs.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        by_pod.entry(key).or_default().push(json!({"name": name, "cpu": cpu(&s.cpu), "memory": memory(&s.memory)}));
    }
    let time = now.to_string();
    by_pod
        .into_iter()
        .map(|((namespace, name, uid), containers)| {
            json!({
                "podRef": {"name": name, "namespace": namespace, "uid": uid},
                "cpu": {"time": time, "usageNanoCores": sum(&containers, "cpu", "usageNanoCores"),
                        "usageCoreNanoSeconds": sum(&containers, "cpu", "usageCoreNanoSeconds")},
                "memory": {"time": time, "workingSetBytes": sum(&containers, "memory", "workingSetBytes"),
                           "usageBytes": sum(&containers, "memory", "usageBytes")},
                "containers": containers,
            })
        })
        .collect()
}

/// `MemTotal - MemAvailable` and `MemAvailable` from /proc/meminfo, in bytes.
pub fn node_memory(meminfo: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok().map(|kb| kb * 1024)
        })
    };
    let (total, available) = (field("MemTotal")?, field("MemAvailable")?);
    Some((total.saturating_sub(available), available))
}

/// The whole summary for node `node`.
pub fn summary(node: &str, stats: &[cri::ContainerStats]) -> Value {
    let now = Timestamp::now();
    let mem = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| node_memory(&m));
    // cgroup v2 root: usage_usec covers every process on the node.
    let cpu_ns = std::fs::read_to_string("/sys/fs/cgroup/cpu.stat").ok().and_then(|s| {
        s.lines().find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse::<u64>().ok()).map(|us| us * 1000)
    });
    json!({
        "node": {
            "nodeName": node,
            "cpu": {"time": now.to_string(), "usageCoreNanoSeconds": cpu_ns},
            "memory": {"time": now.to_string(), "workingSetBytes": mem.map(|m| m.0), "availableBytes": mem.map(|m| m.1)},
        },
        "pods": pods(stats, now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn stat(pod: &str, container: &str, cpu_ns: u64, ws: u64) -> cri::ContainerStats {
        cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: format!("{pod}-{container}"),
                metadata: Some(cri::ContainerMetadata { name: container.into(), attempt: 0 }),
                labels: HashMap::from([
                    (LABEL_POD_NAMESPACE.to_string(), "default".to_string()),
                    (LABEL_POD_NAME.to_string(), pod.to_string()),
                    (LABEL_POD_UID.to_string(), format!("uid-{pod}")),
                ]),
                annotations: HashMap::new(),
            }),
            cpu: Some(cri::CpuUsage {
                timestamp: 1,
                usage_core_nano_seconds: Some(cri::UInt64Value { value: cpu_ns }),
                usage_nano_cores: None,
            }),
            memory: Some(cri::MemoryUsage {
                timestamp: 1,
                working_set_bytes: Some(cri::UInt64Value { value: ws }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn containers_are_grouped_and_summed_per_pod() {
        let now: Timestamp = "2026-12-06T00:00:00Z".parse().unwrap();
        let pods = pods(&[stat("a", "x", 10, 100), stat("b", "y", 5, 7), stat("a", "z", 20, 200)], now);
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[0]["podRef"], json!({"name": "a", "namespace": "default", "uid": "uid-a"}));
        assert_eq!(pods[0]["cpu"]["usageCoreNanoSeconds"], 30);
        assert_eq!(pods[0]["memory"]["workingSetBytes"], 300);
        assert_eq!(pods[0]["containers"].as_array().unwrap().len(), 2);
        assert_eq!(pods[1]["memory"]["workingSetBytes"], 7);
    }

    #[test]
    fn meminfo() {
        let m = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n";
        assert_eq!(node_memory(m), Some((600 * 1024, 400 * 1024)));
        assert_eq!(node_memory("garbage"), None);
    }
}
