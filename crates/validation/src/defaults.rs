//! Defaulting: what upstream's `SetDefaults_*` functions (and the create strategies that
//! behave like defaulting) fill in before validation.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::json::{default, each_obj_mut, ensure_obj, obj_mut};

/// Every key that names a volume source; a volume with none of them gets `emptyDir`.
/// The volume source fields, in the order upstream's `validateVolumeSource` checks them:
/// of several given, every one after the first is the one reported.
pub(crate) const VOLUME_SOURCES: &[&str] = &[
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "configMap",
    "csi",
    "ephemeral",
    "image",
];

pub(crate) fn apply(group: &str, version: &str, kind: &str, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match (group, kind) {
        ("", "Pod") => {
            if let Some(spec) = obj_mut(root, "spec") {
                pod_spec(spec);
                pod_only(spec);
            }
        }
        ("", "PodTemplate") => template(root, &["template"]),
        ("apps", "Deployment") => {
            let Some(spec) = ensure_obj(root, "spec") else {
                return;
            };
            default(spec, "replicas", json!(1));
            if let Some(strategy) = ensure_obj(spec, "strategy") {
                default(strategy, "type", json!("RollingUpdate"));
                if strategy.get("type") == Some(&json!("RollingUpdate"))
                    && let Some(ru) = ensure_obj(strategy, "rollingUpdate")
                {
                    default(ru, "maxUnavailable", json!("25%"));
                    default(ru, "maxSurge", json!("25%"));
                }
            }
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            template(root, &["spec", "template"]);
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = ensure_obj(root, "spec") {
                default(spec, "replicas", json!(1));
            }
            template(root, &["spec", "template"]);
        }
        ("apps", "StatefulSet") => {
            let Some(spec) = ensure_obj(root, "spec") else {
                return;
            };
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            if let Some(us) = ensure_obj(spec, "updateStrategy") {
                default(us, "type", json!("RollingUpdate"));
                if us.get("type") == Some(&json!("RollingUpdate"))
                    && let Some(ru) = ensure_obj(us, "rollingUpdate")
                {
                    default(ru, "partition", json!(0));
                }
            }
            if let Some(p) = ensure_obj(spec, "persistentVolumeClaimRetentionPolicy") {
                default(p, "whenDeleted", json!("Retain"));
                default(p, "whenScaled", json!("Retain"));
            }
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            for pvc in each_obj_mut(spec, "volumeClaimTemplates") {
                pvc_defaults(pvc);
            }
            template(root, &["spec", "template"]);
        }
        ("apps", "DaemonSet") => {
            let Some(spec) = ensure_obj(root, "spec") else {
                return;
            };
            if let Some(us) = ensure_obj(spec, "updateStrategy") {
                default(us, "type", json!("RollingUpdate"));
                if us.get("type") == Some(&json!("RollingUpdate"))
                    && let Some(ru) = ensure_obj(us, "rollingUpdate")
                {
                    default(ru, "maxUnavailable", json!(1));
                    default(ru, "maxSurge", json!(0));
                }
            }
            default(spec, "revisionHistoryLimit", json!(10));
            template(root, &["spec", "template"]);
        }
        ("batch", "Job") => {
            job(root);
            template(root, &["spec", "template"]);
        }
        ("batch", "CronJob") => {
            let Some(spec) = ensure_obj(root, "spec") else {
                return;
            };
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
            template(root, &["spec", "jobTemplate", "spec", "template"]);
        }
        ("", "Service") => service(root),
        ("", "Secret") => secret(root),
        ("", "Namespace") => namespace(root),
        ("", "PersistentVolume") => {
            if let Some(spec) = ensure_obj(root, "spec") {
                default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                default(spec, "volumeMode", json!("Filesystem"));
                if let Some(hp) = obj_mut(spec, "hostPath") {
                    default(hp, "type", json!(""));
                }
            }
            if let Some(status) = ensure_obj(root, "status") {
                default(status, "phase", json!("Pending"));
            }
        }
        ("", "PersistentVolumeClaim") => pvc_defaults(root),
        ("", "Endpoints") => {
            for subset in each_obj_mut(root, "subsets") {
                for port in each_obj_mut(subset, "ports") {
                    default(port, "protocol", json!("TCP"));
                }
            }
        }
        ("", "Node") => {
            if let Some(status) = obj_mut(root, "status")
                && let Some(capacity) = status.get("capacity").cloned()
            {
                default(status, "allocatable", capacity);
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            default(root, "reclaimPolicy", json!("Delete"));
            default(root, "volumeBindingMode", json!("Immediate"));
        }
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(version, root),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(root),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            for subject in each_obj_mut(root, "subjects") {
                let group = match subject.get("kind").and_then(Value::as_str) {
                    Some("ServiceAccount") => "",
                    Some("User" | "Group") => "rbac.authorization.k8s.io",
                    _ => continue,
                };
                if subject.get("apiGroup").and_then(Value::as_str).is_none_or(str::is_empty) {
                    subject.insert("apiGroup".into(), json!(group));
                }
            }
            if let Some(role_ref) = obj_mut(root, "roleRef")
                && role_ref.get("apiGroup").and_then(Value::as_str).is_none_or(str::is_empty)
            {
                role_ref.insert("apiGroup".into(), json!("rbac.authorization.k8s.io"));
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in each_obj_mut(root, "ports") {
                default(port, "name", json!(""));
                default(port, "protocol", json!("TCP"));
            }
        }
        _ => {}
    }
}

/// Pod template defaults at `keys` (only the pod spec is defaulted).
fn template(root: &mut Map<String, Value>, keys: &[&str]) {
    let mut cur = root;
    for k in keys {
        match obj_mut(cur, k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(spec) = obj_mut(cur, "spec") {
        pod_spec(spec);
    }
}

/// `SetDefaults_PodSpec` and everything nested in a pod spec.
fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for c in each_obj_mut(spec, key) {
            container(c);
        }
    }
    for v in each_obj_mut(spec, "volumes") {
        volume(v);
    }
}

/// Defaults that apply to a Pod but not to pod templates (`SetDefaults_Pod` and what the
/// Priority admission plugin fills in).
fn pod_only(spec: &mut Map<String, Value>) {
    default(spec, "enableServiceLinks", json!(true));
    default(spec, "priority", json!(0));
    default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    let host_network = spec.get("hostNetwork") == Some(&json!(true));
    for key in ["initContainers", "containers"] {
        for c in each_obj_mut(spec, key) {
            // Requests left out default to the limits given.
            let limits = c.get("resources").and_then(|r| r.get("limits")).and_then(Value::as_object).cloned();
            if let (Some(limits), Some(resources)) = (limits, obj_mut(c, "resources"))
                && let Some(requests) = ensure_obj(resources, "requests")
            {
                for (name, q) in limits {
                    default(requests, &name, q);
                }
            }
            if host_network {
                for port in each_obj_mut(c, "ports") {
                    if let Some(cp) = port.get("containerPort").cloned()
                        && port.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0
                    {
                        port.insert("hostPort".into(), cp);
                    }
                }
            }
        }
    }
}

/// Whether an image reference names the `latest` tag, explicitly or by having no tag and
/// no digest (the kubelet's pull-policy default depends on it).
pub(crate) fn image_is_latest(image: &str) -> bool {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        // An unparsable reference (upper case repository) gets no tag upstream.
        None => digest.is_none() && !name.is_empty() && !name.chars().any(|c| c.is_ascii_uppercase()),
    }
}

fn container(c: &mut Map<String, Value>) {
    if c.get("imagePullPolicy").is_none_or(Value::is_null) {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_is_latest(image) { "Always" } else { "IfNotPresent" };
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    // Not a default upstream but a non-omitempty struct: it always shows as `{}`.
    default(c, "resources", json!({}));
    for port in each_obj_mut(c, "ports") {
        default(port, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = obj_mut(c, probe) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            http_get(p);
        }
    }
    if let Some(lifecycle) = obj_mut(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = obj_mut(lifecycle, hook) {
                http_get(h);
            }
        }
    }
    for env in each_obj_mut(c, "env") {
        if let Some(field_ref) = obj_mut(env, "valueFrom").and_then(|vf| obj_mut(vf, "fieldRef")) {
            default(field_ref, "apiVersion", json!("v1"));
        }
    }
}

fn http_get(handler: &mut Map<String, Value>) {
    if let Some(h) = obj_mut(handler, "httpGet") {
        default(h, "path", json!("/"));
        default(h, "scheme", json!("HTTP"));
    }
}

fn downward_items(m: &mut Map<String, Value>) {
    for item in each_obj_mut(m, "items") {
        if let Some(fr) = obj_mut(item, "fieldRef") {
            default(fr, "apiVersion", json!("v1"));
        }
    }
}

fn volume(v: &mut Map<String, Value>) {
    if !VOLUME_SOURCES.iter().any(|s| v.get(*s).is_some_and(|x| !x.is_null())) {
        v.insert("emptyDir".into(), json!({}));
    }
    for src in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = obj_mut(v, src) {
            default(s, "defaultMode", json!(420));
        }
    }
    if let Some(d) = obj_mut(v, "downwardAPI") {
        downward_items(d);
    }
    if let Some(p) = obj_mut(v, "projected") {
        for source in each_obj_mut(p, "sources") {
            if let Some(d) = obj_mut(source, "downwardAPI") {
                downward_items(d);
            }
        }
    }
    if let Some(hp) = obj_mut(v, "hostPath") {
        default(hp, "type", json!(""));
    }
    if let Some(iscsi) = obj_mut(v, "iscsi") {
        default(iscsi, "iscsiInterface", json!("default"));
    }
    if let Some(rbd) = obj_mut(v, "rbd") {
        default(rbd, "pool", json!("rbd"));
        default(rbd, "user", json!("admin"));
        default(rbd, "keyring", json!("/etc/ceph/keyring"));
    }
    if let Some(spec) =
        obj_mut(v, "ephemeral").and_then(|e| obj_mut(e, "volumeClaimTemplate")).and_then(|t| obj_mut(t, "spec"))
    {
        default(spec, "volumeMode", json!("Filesystem"));
    }
}

fn pvc_defaults(pvc: &mut Map<String, Value>) {
    if let Some(spec) = ensure_obj(pvc, "spec") {
        default(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(status) = ensure_obj(pvc, "status") {
        default(status, "phase", json!("Pending"));
    }
}

fn job(root: &mut Map<String, Value>) {
    let uid = root.get("metadata").and_then(|m| m.get("uid")).and_then(Value::as_str).map(str::to_string);
    let name = root.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).map(str::to_string);
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    if spec.get("completions").is_none_or(Value::is_null) && spec.get("parallelism").is_none_or(Value::is_null) {
        spec.insert("completions".into(), json!(1));
    }
    default(spec, "parallelism", json!(1));
    let backoff = if spec.get("backoffLimitPerIndex").is_some_and(|v| !v.is_null()) { i64::from(i32::MAX) } else { 6 };
    default(spec, "backoffLimit", json!(backoff));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    let replacement =
        if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) { "Failed" } else { "TerminatingOrFailed" };
    default(spec, "podReplacementPolicy", json!(replacement));
    if let Some(pfp) = obj_mut(spec, "podFailurePolicy") {
        for rule in each_obj_mut(pfp, "rules") {
            for cond in each_obj_mut(rule, "onPodConditions") {
                default(cond, "status", json!("True"));
            }
        }
    }
    // The Job create strategy generates the selector from the uid unless the user asked
    // to manage it; it needs `metadata.uid`, so the apiserver sets that first.
    let manual = spec.get("manualSelector") == Some(&json!(true));
    if let (false, Some(uid)) = (manual, uid) {
        let name = name.unwrap_or_default();
        if spec.get("selector").is_none_or(Value::is_null) {
            spec.insert("selector".into(), json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
        }
        if let Some(labels) =
            ensure_obj(spec, "template").and_then(|t| ensure_obj(t, "metadata")).and_then(|m| ensure_obj(m, "labels"))
        {
            default(labels, "batch.kubernetes.io/controller-uid", json!(uid));
            default(labels, "batch.kubernetes.io/job-name", json!(name));
            default(labels, "controller-uid", json!(uid));
            default(labels, "job-name", json!(name));
        }
    }
    // A Job without labels of its own takes its template's.
    let template_labels = root
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    if let (Some(labels), Some(meta)) = (template_labels, ensure_obj(root, "metadata"))
        && meta.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty)
    {
        meta.insert("labels".into(), labels);
    }
}

fn service(root: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    default(spec, "sessionAffinity", json!("None"));
    if spec.get("sessionAffinity") == Some(&json!("None")) {
        spec.remove("sessionAffinityConfig");
    } else if spec.get("sessionAffinity") == Some(&json!("ClientIP"))
        && let Some(ip) = ensure_obj(spec, "sessionAffinityConfig").and_then(|c| ensure_obj(c, "clientIP"))
    {
        default(ip, "timeoutSeconds", json!(10800));
    }
    default(spec, "type", json!("ClusterIP"));
    for port in each_obj_mut(spec, "ports") {
        default(port, "protocol", json!("TCP"));
        let unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if unset && let Some(p) = port.get("port").cloned() {
            port.insert("targetPort".into(), p);
        }
    }
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("").to_string();
    let has_external_ips = spec.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let externally_accessible = ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && has_external_ips);
    if externally_accessible {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
        // Set by the service REST storage on a single-stack IPv4 cluster.
        default(spec, "ipFamilyPolicy", json!("SingleStack"));
        default(spec, "ipFamilies", json!(["IPv4"]));
    }
    if ty == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

fn secret(root: &mut Map<String, Value>) {
    default(root, "type", json!("Opaque"));
    // `stringData` is write-only: upstream merges it into `data` on decoding.
    if let Some(Value::Object(string_data)) = root.remove("stringData")
        && let Some(data) = ensure_obj(root, "data")
    {
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default();
            data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(text)));
        }
    }
}

fn namespace(root: &mut Map<String, Value>) {
    let name = root.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).map(str::to_string);
    if let Some(name) = name.filter(|n| !n.is_empty())
        && let Some(labels) = ensure_obj(root, "metadata").and_then(|m| ensure_obj(m, "labels"))
    {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    if let Some(spec) = ensure_obj(root, "spec") {
        default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = ensure_obj(root, "status") {
        default(status, "phase", json!("Active"));
    }
}

fn hpa(version: &str, root: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    default(spec, "minReplicas", json!(1));
    if version != "v2" {
        return;
    }
    if spec.get("metrics").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    if let Some(behavior) = obj_mut(spec, "behavior") {
        if let Some(up) = ensure_obj(behavior, "scaleUp") {
            default(up, "stabilizationWindowSeconds", json!(0));
            default(up, "selectPolicy", json!("Max"));
            default(
                up,
                "policies",
                json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        }
        if let Some(down) = ensure_obj(behavior, "scaleDown") {
            default(down, "stabilizationWindowSeconds", json!(300));
            default(down, "selectPolicy", json!("Max"));
            default(down, "policies", json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]));
        }
    }
}

fn network_policy(root: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    for dir in ["ingress", "egress"] {
        for rule in each_obj_mut(spec, dir) {
            for port in each_obj_mut(rule, "ports") {
                default(port, "protocol", json!("TCP"));
            }
        }
    }
    if spec.get("policyTypes").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        let has_egress = spec.get("egress").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        let types = if has_egress { json!(["Ingress", "Egress"]) } else { json!(["Ingress"]) };
        spec.insert("policyTypes".into(), types);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_tag_detection() {
        let table = [
            ("nginx", true),
            ("nginx:latest", true),
            ("nginx:1.14.2", false),
            ("localhost:5000/nginx", true),
            ("localhost:5000/nginx:v1", false),
            ("nginx@sha256:abcd", false),
            ("Nginx", false),
            ("", false),
        ];
        for (image, want) in table {
            assert_eq!(image_is_latest(image), want, "{image}");
        }
    }
}
