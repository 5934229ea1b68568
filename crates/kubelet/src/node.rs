//! The Node object: what this machine offers (pure: [`node_status`] from [`HostFacts`]),
//! its registration, the Lease renewed every 10 s, and the pod network, written once
//! node IPAM has given the node its podCIDR. The node is Ready only from then on.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use crate::{Config, cni};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot register node {node}: {source}")]
    Register { node: String, source: Box<kube::Error> },
}

/// The kubelet version the node reports: the API's.
pub const KUBELET_VERSION: &str = "v1.33.0+rkube";
/// The port the node says its kubelet API listens on.
pub const KUBELET_PORT: u16 = 10250;
/// Pods per node, upstream's default `--max-pods`.
pub const MAX_PODS: i64 = 110;

/// What the node reports about the machine, read once at start.
#[derive(Debug, Clone, PartialEq)]
pub struct HostFacts {
    pub cpus: usize,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub os_image: String,
    pub kernel_version: String,
    pub machine_id: String,
    pub boot_id: String,
    pub runtime_version: String,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

impl HostFacts {
    pub fn read(config: &Config, runtime_version: String) -> HostFacts {
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        let ephemeral_storage_bytes =
            nix::sys::statvfs::statvfs(&config.paths.agent_dir).map(|s| s.blocks() * s.fragment_size()).unwrap_or(0);
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into());
        HostFacts {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            memory_bytes,
            ephemeral_storage_bytes,
            os_image,
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            machine_id: read_trimmed("/etc/machine-id"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            runtime_version,
        }
    }
}

fn condition(kind: &str, ok: bool, reason: &str, message: &str, now: Timestamp) -> NodeCondition {
    NodeCondition {
        type_: kind.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The node's status: capacity, allocatable, addresses, conditions, versions.
/// `network_ready`: the pod network is configured (the node has its podCIDR).
pub fn node_status(config: &Config, facts: &HostFacts, network_ready: bool, now: Timestamp) -> NodeStatus {
    let mut capacity = BTreeMap::new();
    capacity.insert("cpu".to_string(), Quantity(facts.cpus.to_string()));
    capacity.insert("memory".to_string(), Quantity(format!("{}Ki", facts.memory_bytes / 1024)));
    capacity.insert("pods".to_string(), Quantity(MAX_PODS.to_string()));
    capacity.insert("ephemeral-storage".to_string(), Quantity(format!("{}Ki", facts.ephemeral_storage_bytes / 1024)));
    capacity.insert("hugepages-2Mi".to_string(), Quantity("0".into()));
    capacity.insert("hugepages-1Gi".to_string(), Quantity("0".into()));
    let ready = if network_ready {
        condition("Ready", true, "KubeletReady", "kubelet is posting ready status", now)
    } else {
        condition(
            "Ready",
            false,
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
            now,
        )
    };
    serde_json::from_value(json!({
        "capacity": capacity,
        "allocatable": capacity,
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.kubelet_address.port()}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.machine_id,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel_version,
            "osImage": facts.os_image,
            "containerRuntimeVersion": facts.runtime_version,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        },
        "conditions": [
            condition("MemoryPressure", false, "KubeletHasSufficientMemory", "kubelet has sufficient memory available", now),
            condition("DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure", now),
            condition("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available", now),
            ready,
        ],
    }))
    .unwrap_or_default()
}

/// The labels every node carries (upstream's well-known ones) plus the configured ones.
pub fn node_labels(config: &Config) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), config.node_name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "kubernetes.io/arch".to_string(),
            std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        ),
    ]);
    labels.insert("beta.kubernetes.io/arch".into(), labels["kubernetes.io/arch"].clone());
    labels.extend(config.node_labels.iter().cloned());
    labels
}

/// Keeps each condition's `lastTransitionTime` from `old` when its status did not change.
fn keep_transitions(new: &mut NodeStatus, old: Option<&NodeStatus>) {
    let Some(old) = old.and_then(|o| o.conditions.as_ref()) else { return };
    for c in new.conditions.iter_mut().flatten() {
        if let Some(o) = old.iter().find(|o| o.type_ == c.type_ && o.status == c.status) {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
}

/// Creates the Node (or updates the one a previous run registered) and posts its status.
pub async fn register(client: &Client, config: &Config, facts: &HostFacts) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let err = |source: kube::Error| Error::Register { node: config.node_name.clone(), source: Box::new(source) };
    let wanted: Node = serde_json::from_value(json!({
        "metadata": {"name": config.node_name, "labels": node_labels(config)},
        "spec": {},
    }))
    .unwrap_or_default();
    let existing = match nodes.create(&PostParams::default(), &wanted).await {
        Ok(_) => None,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch = json!({"metadata": {"labels": node_labels(config)}});
            Some(nodes.patch(&config.node_name, &PatchParams::default(), &Patch::Merge(patch)).await.map_err(err)?)
        }
        Err(e) => return Err(err(e)),
    };
    let network_ready = existing
        .as_ref()
        .and_then(|n| n.spec.as_ref()?.pod_cidr.clone())
        .is_some_and(|cidr| configure_network(config, &cidr));
    let mut status = node_status(config, facts, network_ready, Timestamp::now());
    keep_transitions(&mut status, existing.as_ref().and_then(|n| n.status.as_ref()));
    nodes
        .patch_status(&config.node_name, &PatchParams::default(), &Patch::Merge(json!({"status": status})))
        .await
        .map_err(err)?;
    Ok(())
}

/// Writes the CNI configuration for the node's range; true when it is in place.
fn configure_network(config: &Config, pod_cidr: &str) -> bool {
    let list = cni::conflist(&config.paths.bridge_name(), pod_cidr, &config.paths.cni_ipam_dir());
    match cni::write(&config.paths.cni_conf_dir(), &list) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "cannot write the CNI configuration");
            false
        }
    }
}

/// How often the full node status is posted even when nothing changed (upstream's
/// `nodeStatusReportFrequency` is 5 min; the Lease carries liveness in between).
const STATUS_REPORT_EVERY: Duration = Duration::from_secs(60);

/// Renews the node Lease every `lease_renew_interval`, writes the CNI configuration when
/// the node gets its podCIDR, and posts the node status when it changes (Ready once the
/// network is configured) or every minute.
pub async fn heartbeat(client: Client, config: Config, facts: HostFacts, mut stop: watch::Receiver<bool>) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let mut configured_cidr: Option<String> = None;
    let mut last_ready: Option<bool> = None;
    let mut last_report = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_lease = None::<tokio::time::Instant>;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => if *stop.borrow() { return },
        }
        let mut renewed = false;
        if last_lease.is_none_or(|t| t.elapsed() >= config.lease_renew_interval) {
            match renew_lease(&leases, &config).await {
                Ok(()) => {
                    last_lease = Some(tokio::time::Instant::now());
                    renewed = true;
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the node lease"),
            }
        }
        // The node is read every second only until its network is configured.
        if configured_cidr.is_some() && !renewed {
            continue;
        }
        let node = match nodes.get(&config.node_name).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the node");
                continue;
            }
        };
        let cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.clone());
        if let Some(cidr) = cidr.filter(|c| configured_cidr.as_ref() != Some(c))
            && configure_network(&config, &cidr)
        {
            tracing::info!(pod_cidr = %cidr, bridge = %config.paths.bridge_name(), "pod network configured");
            configured_cidr = Some(cidr);
        }
        let ready = configured_cidr.is_some();
        if last_ready != Some(ready) || last_report.elapsed() >= STATUS_REPORT_EVERY {
            let mut status = node_status(&config, &facts, ready, Timestamp::now());
            keep_transitions(&mut status, node.status.as_ref());
            let patch = Patch::Merge(json!({"status": status}));
            match nodes.patch_status(&node.name_any(), &PatchParams::default(), &patch).await {
                Ok(_) => {
                    last_ready = Some(ready);
                    last_report = tokio::time::Instant::now();
                }
                Err(e) => tracing::warn!(error = %e, "cannot post the node status"),
            }
        }
    }
}

async fn renew_lease(leases: &Api<Lease>, config: &Config) -> Result<(), kube::Error> {
    let now = MicroTime(Timestamp::now());
    let spec = json!({
        "holderIdentity": config.node_name,
        "leaseDurationSeconds": 40,
        "renewTime": now,
    });
    match leases.patch(&config.node_name, &PatchParams::default(), &Patch::Merge(json!({ "spec": spec }))).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({"metadata": {"name": config.node_name}, "spec": spec}))
                .unwrap_or_default();
            leases.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            cpus: 2,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: 100 << 30,
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel_version: "6.1.0".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
            runtime_version: "containerd://1.6.20".into(),
        }
    }

    #[test]
    fn status_reports_capacity_and_readiness() {
        let config = Config::new("n1".into(), "192.0.2.7".into(), std::path::Path::new("/d"));
        let now = Timestamp::now();
        let s = node_status(&config, &facts(), false, now);
        let cap = s.capacity.unwrap();
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(cap["memory"].0, "4194304Ki");
        assert_eq!(cap["pods"].0, "110");
        let ready = s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(s.addresses.unwrap()[0].address, "192.0.2.7");
        assert_eq!(s.node_info.unwrap().container_runtime_version, "containerd://1.6.20");
        let s = node_status(&config, &facts(), true, now);
        let ready = s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("True", Some("KubeletReady")));
    }

    #[test]
    fn transition_times_survive_unchanged_conditions() {
        let config = Config::new("n1".into(), "192.0.2.7".into(), std::path::Path::new("/d"));
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let t1 = Timestamp::from_second(2_000_000).unwrap();
        let old = node_status(&config, &facts(), false, t0);
        let mut new = node_status(&config, &facts(), true, t1);
        keep_transitions(&mut new, Some(&old));
        let get = |k: &str| new.conditions.as_ref().unwrap().iter().find(|c| c.type_ == k).unwrap().clone();
        assert_eq!(get("MemoryPressure").last_transition_time, Some(Time(t0)));
        assert_eq!(get("Ready").last_transition_time, Some(Time(t1)));
        assert_eq!(get("Ready").last_heartbeat_time, Some(Time(t1)));
    }

    #[test]
    fn labels_include_hostname_os_arch_and_extras() {
        let mut config = Config::new("n1".into(), "192.0.2.7".into(), std::path::Path::new("/d"));
        config.node_labels.push(("node-role.kubernetes.io/control-plane".into(), "true".into()));
        let l = node_labels(&config);
        assert_eq!(l["kubernetes.io/hostname"], "n1");
        assert_eq!(l["kubernetes.io/os"], "linux");
        assert_eq!(l["node-role.kubernetes.io/control-plane"], "true");
    }
}
