//! Core (`v1`) kinds other than pods and events.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::Value;

use crate::duration::age;
use crate::fields::{arr_at, format_labels, int_at, is_deleting, len_at, name, opt_str, quantity, str_at, string_map};
use crate::table::{AGE, NAME, Printer, cells, col, wide};

pub(crate) static SERVICE: Printer = Printer {
    columns: &[
        NAME,
        col("Type", "string", "How the service is exposed (ClusterIP, NodePort, LoadBalancer, ExternalName)."),
        col("Cluster-IP", "string", "Virtual IP of the service inside the cluster."),
        col("External-IP", "string", "Addresses the service is reachable at from outside."),
        col("Port(s)", "string", "Service ports, with node ports when allocated."),
        AGE,
        wide("Selector", "string", "Labels of the pods traffic is routed to."),
    ],
    cells: service_cells,
};

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    let ty = opt_str(svc, "/spec/type").unwrap_or("ClusterIP");
    // clusterIPs is filled from clusterIP by defaulting; fall back for older writers.
    let cluster_ip = arr_at(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_str(svc, "/spec/clusterIP"))
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    let ports: Vec<String> = arr_at(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int_at(p, "/port");
            let proto = opt_str(p, "/protocol").unwrap_or("TCP");
            match int_at(p, "/nodePort") {
                n if n > 0 => format!("{port}:{n}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() { "<none>".to_string() } else { ports.join(",") };
    cells![
        name(svc),
        ty,
        cluster_ip,
        service_external_ip(svc, ty),
        ports,
        age(svc, now),
        format_labels(svc, "/spec/selector"),
    ]
}

fn service_external_ip(svc: &Value, ty: &str) -> String {
    let external: Vec<&str> = arr_at(svc, "/spec/externalIPs").iter().filter_map(Value::as_str).collect();
    match ty {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_string()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut all: Vec<String> = load_balancer_addresses(svc).into_iter().collect();
            all.extend(external.iter().map(|s| s.to_string()));
            if all.is_empty() { "<pending>".to_string() } else { all.join(",") }
        }
        "ExternalName" => str_at(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// Sorted, de-duplicated load-balancer ingress points (IP, else hostname). Tables are
/// always built for `-o wide`, so the list is never clipped.
pub(crate) fn load_balancer_addresses(obj: &Value) -> BTreeSet<String> {
    arr_at(obj, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, "/ip");
            let host = str_at(i, "/hostname");
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect()
}

pub(crate) static ENDPOINTS: Printer = Printer {
    columns: &[NAME, col("Endpoints", "string", "Ready addresses with their ports."), AGE],
    cells: endpoints_cells,
};

fn endpoints_cells(ep: &Value, now: Timestamp) -> Vec<Value> {
    cells![name(ep), format_endpoints(ep), age(ep, now)]
}

fn join_host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

fn format_endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = arr_at(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addresses = arr_at(ss, "/addresses");
        let ports = arr_at(ss, "/ports");
        if ports.is_empty() {
            // Headless services may have no ports: list bare IPs.
            count += addresses.len();
            list.extend(addresses.iter().take(MAX - list.len()).map(|a| str_at(a, "/ip").to_string()));
            continue;
        }
        for port in ports {
            count += addresses.len();
            let p = int_at(port, "/port");
            list.extend(addresses.iter().take(MAX - list.len()).map(|a| join_host_port(str_at(a, "/ip"), p)));
        }
    }
    let joined = list.join(",");
    if count > MAX { format!("{joined} + {} more...", count - MAX) } else { joined }
}

pub(crate) static NAMESPACE: Printer = Printer {
    columns: &[NAME, col("Status", "string", "Phase of the namespace (Active, Terminating)."), AGE],
    cells: |ns, now| cells![name(ns), str_at(ns, "/status/phase"), age(ns, now)],
};

pub(crate) static NODE: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "Readiness of the node, and whether scheduling is disabled."),
        col("Roles", "string", "Roles from node-role.kubernetes.io/* labels."),
        AGE,
        col("Version", "string", "Kubelet version."),
        wide("Internal-IP", "string", "First InternalIP address of the node."),
        wide("External-IP", "string", "First ExternalIP address of the node."),
        wide("OS-Image", "string", "Operating system image reported by the kubelet."),
        wide("Kernel-Version", "string", "Kernel version reported by the kubelet."),
        wide("Container-Runtime", "string", "Container runtime name and version."),
    ],
    cells: node_cells,
};

const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    // The last Ready condition wins, as when upstream builds a map by type.
    let ready = arr_at(node, "/status/conditions").iter().rfind(|c| str_at(c, "/type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let roles: BTreeSet<&str> = string_map(node, "/metadata/labels")
        .into_iter()
        .filter_map(|(k, v)| match k.strip_prefix(NODE_ROLE_PREFIX) {
            Some(role) if !role.is_empty() => Some(role),
            Some(_) => None,
            None => (k == NODE_ROLE_LABEL && !v.is_empty()).then_some(v),
        })
        .collect();
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.into_iter().collect::<Vec<_>>().join(",") };
    let address = |ty: &str| {
        arr_at(node, "/status/addresses")
            .iter()
            .find(|a| str_at(a, "/type") == ty)
            .map_or("<none>", |a| str_at(a, "/address"))
    };
    let info = |field: &str| match str_at(node, &format!("/status/nodeInfo/{field}")) {
        "" => "<unknown>".to_string(),
        s => s.to_string(),
    };
    cells![
        name(node),
        status.join(","),
        roles,
        age(node, now),
        str_at(node, "/status/nodeInfo/kubeletVersion"),
        address("InternalIP"),
        address("ExternalIP"),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

pub(crate) static CONFIG_MAP: Printer = Printer {
    columns: &[NAME, col("Data", "string", "Number of data and binaryData entries."), AGE],
    cells: |cm, now| {
        let n = len_at(cm, "/data") + len_at(cm, "/binaryData");
        cells![name(cm), n, age(cm, now)]
    },
};

pub(crate) static SECRET: Printer = Printer {
    columns: &[
        NAME,
        col("Type", "string", "Secret type, which fixes the expected keys."),
        col("Data", "string", "Number of data entries."),
        AGE,
    ],
    cells: |s, now| cells![name(s), str_at(s, "/type"), len_at(s, "/data"), age(s, now)],
};

pub(crate) static SERVICE_ACCOUNT: Printer = Printer {
    columns: &[NAME, col("Secrets", "string", "Number of secrets listed on the account."), AGE],
    cells: |sa, now| cells![name(sa), len_at(sa, "/secrets"), age(sa, now)],
};

/// Access modes abbreviated in upstream's fixed order.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(full, _)| has(full))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// The legacy annotation that named a storage class before `storageClassName` existed;
/// it still takes precedence when present.
const BETA_STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

fn storage_class(obj: &Value) -> String {
    let annotations = string_map(obj, "/metadata/annotations");
    match annotations.get(BETA_STORAGE_CLASS_ANNOTATION) {
        Some(class) => class.to_string(),
        None => str_at(obj, "/spec/storageClassName").to_string(),
    }
}

fn phase_or_terminating(obj: &Value) -> String {
    if is_deleting(obj) { "Terminating".to_string() } else { str_at(obj, "/status/phase").to_string() }
}

fn or_unset(s: Option<&str>) -> String {
    s.unwrap_or("<unset>").to_string()
}

pub(crate) static PERSISTENT_VOLUME: Printer = Printer {
    columns: &[
        NAME,
        col("Capacity", "string", "Storage capacity of the volume."),
        col("Access Modes", "string", "Access modes the volume supports."),
        col("Reclaim Policy", "string", "What happens to the volume when its claim is released."),
        col("Status", "string", "Phase of the volume."),
        col("Claim", "string", "Namespace/name of the claim bound to the volume."),
        col("StorageClass", "string", "Storage class of the volume."),
        col("VolumeAttributesClass", "string", "Volume attributes class of the volume."),
        col("Reason", "string", "Why the volume is in its phase."),
        AGE,
        wide("VolumeMode", "string", "Filesystem or Block."),
    ],
    cells: pv_cells,
};

fn pv_cells(pv: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match pv.pointer("/spec/claimRef").filter(|c| c.is_object()) {
        Some(c) => format!("{}/{}", str_at(c, "/namespace"), str_at(c, "/name")),
        None => String::new(),
    };
    cells![
        name(pv),
        quantity(pv.pointer("/spec/capacity/storage")),
        access_modes(arr_at(pv, "/spec/accessModes")),
        str_at(pv, "/spec/persistentVolumeReclaimPolicy"),
        phase_or_terminating(pv),
        claim,
        storage_class(pv),
        or_unset(opt_str(pv, "/spec/volumeAttributesClassName")),
        str_at(pv, "/status/reason"),
        age(pv, now),
        or_unset(opt_str(pv, "/spec/volumeMode")),
    ]
}

pub(crate) static PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "Phase of the claim."),
        col("Volume", "string", "Volume bound to the claim."),
        col("Capacity", "string", "Capacity of the bound volume."),
        col("Access Modes", "string", "Access modes of the bound volume."),
        col("StorageClass", "string", "Storage class requested by the claim."),
        col("VolumeAttributesClass", "string", "Volume attributes class requested by the claim."),
        AGE,
        wide("VolumeMode", "string", "Filesystem or Block."),
    ],
    cells: pvc_cells,
};

fn pvc_cells(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let volume = str_at(pvc, "/spec/volumeName");
    // Capacity and modes are only meaningful once the claim is bound.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (quantity(pvc.pointer("/status/capacity/storage")), access_modes(arr_at(pvc, "/status/accessModes")))
    };
    let annotations = string_map(pvc, "/metadata/annotations");
    let class = match annotations.get(BETA_STORAGE_CLASS_ANNOTATION) {
        Some(c) => c.to_string(),
        None => str_at(pvc, "/spec/storageClassName").to_string(),
    };
    cells![
        name(pvc),
        phase_or_terminating(pvc),
        volume,
        capacity,
        modes,
        class,
        or_unset(opt_str(pvc, "/spec/volumeAttributesClassName")),
        age(pvc, now),
        or_unset(opt_str(pvc, "/spec/volumeMode")),
    ]
}

pub(crate) static RESOURCE_QUOTA: Printer = Printer {
    columns: &[
        NAME,
        col("Request", "string", "Used/hard amounts of every non-limit resource."),
        col("Limit", "string", "Used/hard amounts of every limits.* resource."),
        AGE,
    ],
    cells: quota_cells,
};

fn quota_cells(quota: &Value, now: Timestamp) -> Vec<Value> {
    let hard: BTreeMap<&str, &Value> = match quota.pointer("/status/hard") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        _ => BTreeMap::new(),
    };
    let mut request = Vec::new();
    let mut limit = Vec::new();
    for (resource, hard_qty) in hard {
        let used = quantity(quota.pointer("/status/used").and_then(|u| u.get(resource)));
        let entry = format!("{resource}: {used}/{}", quantity(Some(hard_qty)));
        if resource.split('.').next() == Some("limits") && resource.contains('.') {
            limit.push(entry);
        } else {
            request.push(entry);
        }
    }
    cells![name(quota), request.join(", "), limit.join(", "), age(quota, now)]
}
