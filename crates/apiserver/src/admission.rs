//! Admission: what happens to an object between decoding and storing it.
//!
//! Defaulting and validation per kind (from `rkube-validation`), status reset on create,
//! unknown-field checks (`fieldValidation`), managed fields, Service address allocation
//! and graceful deletion rules. Each function is called from the generic paths in
//! [`crate::rest`].

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rkube_apimachinery::{ApiError, Cause, meta};
use rkube_registry::ResourceDef;
use serde_json::{Value, json};

use crate::ipalloc::{NODE_PORT_MAX, NODE_PORT_MIN, pick_cluster_ip, pick_node_port};
use crate::rest::{Api, FieldValidation, WriteOptions};

/// Unknown fields: an error for Strict, warnings for Warn.
pub fn check_fields(def: &ResourceDef, obj: &Value, mode: FieldValidation) -> Result<Vec<String>, ApiError> {
    let cannot_handle = |detail: String| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {detail}",
            def.kind,
            def.api_version(),
            def.kind
        ))
    };
    let unknown = rkube_validation::unknown_fields(def, obj).map_err(cannot_handle)?;
    if unknown.is_empty() || mode == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    if mode == FieldValidation::Strict {
        return Err(cannot_handle(rkube_validation::strict_decoding_message(&unknown)));
    }
    Ok(unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect())
}

/// The status a new object starts with when the server owns it, as upstream's
/// `PrepareForCreate` strategies reset it; `None` when the client's status stands.
/// Upstream's field manager leaves these reset fields to nobody, so the create path takes
/// the client's status out before recording managed fields and puts this in after.
pub fn initial_status(def: &ResourceDef, obj: &Value) -> Option<Value> {
    match (def.group, def.plural) {
        ("", "pods") => Some(json!({"phase": "Pending", "qosClass": qos_class(obj.get("spec"))})),
        ("", "namespaces") => Some(json!({"phase": "Active"})),
        ("", "nodes") => None,
        ("", "services") => Some(json!({"loadBalancer": {}})),
        ("", "persistentvolumes") | ("", "persistentvolumeclaims") => Some(json!({"phase": "Pending"})),
        _ if def.subresource("status").is_some() => Some(json!({})),
        _ => None,
    }
}

/// Upstream's built-in mutating admission of a new object, which runs after the field
/// manager (so the creator owns none of it): the default not-ready/unreachable
/// tolerations of a pod (DefaultTolerationSeconds) and its ServiceAccount name.
pub fn admit_create(def: &ResourceDef, obj: &mut Value, toleration_seconds: TolerationSeconds) {
    if (def.group, def.plural) != ("", "pods") {
        return;
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_tolerations(spec, toleration_seconds);
        if spec.get("serviceAccountName").and_then(Value::as_str).is_none_or(str::is_empty) {
            spec.insert("serviceAccountName".into(), json!("default"));
        }
    }
}

/// The prefix of the projected service-account volume (upstream's
/// `ServiceAccountVolumeName`) and where containers mount it.
const SERVICE_ACCOUNT_VOLUME: &str = "kube-api-access";
const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Upstream's ServiceAccount admission for a new pod: unless the pod (or else its
/// ServiceAccount) says `automountServiceAccountToken: false`, every container that does
/// not mount something at `/var/run/secrets/kubernetes.io/serviceaccount` gets the
/// `kube-api-access-<random>` projected volume there: a bound token (3607 s, renewed by
/// the kubelet), the `kube-root-ca.crt` ConfigMap's `ca.crt` and the namespace. Mirror
/// pods are left alone. Unlike upstream, a pod whose ServiceAccount does not exist
/// (yet) is admitted: the namespace's `default` one is created asynchronously.
pub fn mount_service_account_token(api: &Api, ns: Option<&str>, obj: &mut Value, suffix: &str) {
    let sa_name = obj["spec"]["serviceAccountName"].as_str().unwrap_or("default").to_string();
    let sa = rkube_registry::lookup("", "v1", "serviceaccounts").and_then(|def| api.cached(def, ns, &sa_name));
    inject_service_account_volume(obj, sa.and_then(|sa| sa["automountServiceAccountToken"].as_bool()), suffix);
}

/// [`mount_service_account_token`] once the ServiceAccount's own
/// `automountServiceAccountToken` is known.
fn inject_service_account_volume(obj: &mut Value, sa_automount: Option<bool>, suffix: &str) {
    if obj.pointer("/metadata/annotations/kubernetes.io~1config.mirror").is_some() {
        return;
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let automount = spec.get("automountServiceAccountToken").and_then(Value::as_bool).or(sa_automount).unwrap_or(true);
    if !automount {
        return;
    }
    let prefix = format!("{SERVICE_ACCOUNT_VOLUME}-");
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().filter_map(|v| v["name"].as_str()).find(|n| n.starts_with(&prefix)))
        .map(str::to_string);
    let name = existing.clone().unwrap_or_else(|| format!("{prefix}{suffix}"));
    let mount = json!({"name": name, "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT});
    let mut needed = false;
    for field in ["initContainers", "containers"] {
        for c in spec.get_mut(field).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(c) = c.as_object_mut() else { continue };
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else { continue };
            if !mounts.iter().any(|m| m["mountPath"] == SERVICE_ACCOUNT_MOUNT) {
                mounts.push(mount.clone());
                needed = true;
            }
        }
    }
    if needed && existing.is_none() {
        let volume = json!({"name": name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]}});
        if let Some(list) = spec.entry("volumes").or_insert_with(|| json!([])).as_array_mut() {
            list.push(volume);
        }
    }
}

/// `--default-not-ready-toleration-seconds` and `--default-unreachable-toleration-seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TolerationSeconds {
    pub not_ready: i64,
    pub unreachable: i64,
}

impl Default for TolerationSeconds {
    fn default() -> Self {
        TolerationSeconds { not_ready: 300, unreachable: 300 }
    }
}

/// Upstream's DefaultTolerationSeconds admission: a pod that does not tolerate the
/// not-ready and unreachable NoExecute taints itself tolerates them for five minutes,
/// which is how long it stays on a failed node before eviction.
fn default_tolerations(spec: &mut serde_json::Map<String, Value>, seconds: TolerationSeconds) {
    let taints =
        [("node.kubernetes.io/not-ready", seconds.not_ready), ("node.kubernetes.io/unreachable", seconds.unreachable)];
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = list.as_array_mut() else { return };
    for (taint, secs) in taints {
        let tolerated = list.iter().any(|t| {
            let key = t["key"].as_str().unwrap_or("");
            let effect = t["effect"].as_str().unwrap_or("");
            (key == taint || (key.is_empty() && t["operator"] == "Exists"))
                && (effect.is_empty() || effect == "NoExecute")
        });
        if !tolerated {
            list.push(json!({"key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs}));
        }
    }
}

fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers: Vec<&Value> =
        ["containers", "initContainers"].iter().filter_map(|f| spec?.get(*f)?.as_array()).flatten().collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests");
        let lim = c.pointer("/resources/limits");
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(r));
            let q = req.and_then(|q| q.get(r));
            if l.is_some() || q.is_some() {
                any = true;
            }
            match (l, q) {
                (Some(l), Some(q)) if l != q => guaranteed = false,
                (None, _) => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Upstream's defaults for the kind.
pub fn default_object(def: &ResourceDef, obj: &mut Value) {
    rkube_validation::default_object(def, obj);
}

fn invalid(def: &ResourceDef, obj: &Value, errs: Vec<rkube_validation::FieldError>) -> Result<(), ApiError> {
    if errs.is_empty() {
        return Ok(());
    }
    let name = meta::name(obj).unwrap_or("");
    let message = rkube_validation::invalid_message(&rkube_validation::qualified_kind(def), name, &errs);
    let causes =
        errs.iter().map(|e| Cause { reason: e.reason().into(), message: e.body(), field: e.field.clone() }).collect();
    Err(ApiError::invalid(def.group, def.kind, name, message, causes))
}

pub fn validate_create(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    invalid(def, obj, rkube_validation::validate_create(def, obj))
}

pub fn validate_update(def: &ResourceDef, new: &Value, old: &Value) -> Result<(), ApiError> {
    invalid(def, new, rkube_validation::validate_update(def, new, old))
}

/// Records which manager changed which fields (`metadata.managedFields`). Apply
/// patches have recorded their own already.
pub fn record_managed_fields(
    def: &ResourceDef,
    old: Option<&Value>,
    new: &mut Value,
    opts: &WriteOptions,
    subresource: Option<&str>,
) {
    if opts.apply {
        return;
    }
    let manager = opts.field_manager.as_deref().unwrap_or("unknown");
    let schema = crate::openapi::patch_schema();
    rkube_patch::apply::record_update(
        old,
        new,
        manager,
        subresource,
        &schema,
        def.openapi_name,
        &crate::rest::now_rfc3339(),
    );
}

/// Warnings to return with a successful write.
pub fn warnings(def: &ResourceDef, obj: &Value) -> Vec<String> {
    let _ = (def, obj);
    Vec::new()
}

/// For a pod running on a node, the grace period its deletion gets; `None` means
/// delete at once.
pub fn graceful_deletion_seconds(def: &ResourceDef, obj: &Value, requested: Option<i64>) -> Option<i64> {
    if !def.group.is_empty() || def.plural != "pods" {
        return None;
    }
    let on_node = obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let phase = obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if !on_node || phase == "Succeeded" || phase == "Failed" {
        return None;
    }
    let grace =
        requested.or_else(|| obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64)).unwrap_or(30);
    (grace > 0).then_some(grace)
}

fn svc_invalid(svc: &Value, field: &str, message: String) -> ApiError {
    let name = meta::name(svc).unwrap_or("");
    ApiError::invalid(
        "",
        "Service",
        name,
        format!("Service \"{name}\" is invalid: {field}: {message}"),
        vec![Cause { reason: "FieldValueInvalid".into(), message, field: field.into() }],
    )
}

/// Allocates the ClusterIP and NodePorts of a Service (`old` on update), keeping
/// addresses already allocated and refusing ones in use.
pub fn allocate_service(api: &Api, old: Option<&Value>, svc: &mut Value) -> Result<(), ApiError> {
    let my_key = (meta::namespace(svc).unwrap_or("").to_string(), meta::name(svc).unwrap_or("").to_string());
    let mut used_ips: HashSet<Ipv4Addr> = HashSet::new();
    let mut used_ports: HashSet<u16> = HashSet::new();
    let (all, _) = api.cache.list("/registry/services/", None);
    for c in all {
        let k = (meta::namespace(&c.obj).unwrap_or("").to_string(), meta::name(&c.obj).unwrap_or("").to_string());
        if k == my_key {
            continue;
        }
        if let Some(ip) = c.obj.pointer("/spec/clusterIP").and_then(Value::as_str).and_then(|s| s.parse().ok()) {
            used_ips.insert(ip);
        }
        for p in c.obj.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
            if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
                used_ports.insert(np as u16);
            }
        }
    }
    let cidr = api.config.service_cidr;
    let svc_type = svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    let old_ip = old.and_then(|o| o.pointer("/spec/clusterIP")).and_then(Value::as_str).map(str::to_string);
    let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if svc_type == "ExternalName" {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    } else {
        let requested = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("").to_string();
        let ip = match (requested.as_str(), old_ip) {
            ("", Some(old)) if !old.is_empty() => old,
            ("None", _) => "None".to_string(),
            ("", _) => {
                let mut rng = rand::rng();
                match pick_cluster_ip(&cidr, &used_ips, &mut rng) {
                    Some(ip) => ip.to_string(),
                    None => {
                        return Err(ApiError::internal(format!(
                            "failed to allocate a serviceIP: range {cidr} is full"
                        )));
                    }
                }
            }
            (r, old) => {
                let parsed: Ipv4Addr = r.parse().map_err(|_| {
                    ApiError::invalid(
                        "",
                        "Service",
                        "",
                        format!("spec.clusterIP: Invalid value: \"{r}\": must be a valid IP address"),
                        vec![],
                    )
                })?;
                if old.as_deref() != Some(r) {
                    if !cidr.contains(parsed) {
                        return Err(ApiError::invalid(
                            "",
                            "Service",
                            "",
                            format!(
                                "spec.clusterIPs: Invalid value: [\"{r}\"]: failed to allocate IP {r}: the provided IP ({r}) is not in the valid range. The range of valid IPs is {cidr}"
                            ),
                            vec![],
                        ));
                    }
                    if used_ips.contains(&parsed) {
                        return Err(ApiError::invalid(
                            "",
                            "Service",
                            "",
                            format!(
                                "spec.clusterIPs: Invalid value: [\"{r}\"]: failed to allocate IP {r}: provided IP is already allocated"
                            ),
                            vec![],
                        ));
                    }
                }
                r.to_string()
            }
        };
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }
    let wants_node_ports = svc_type == "NodePort"
        || (svc_type == "LoadBalancer"
            && spec.get("allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false));
    let old_ports: Vec<Value> =
        old.and_then(|o| o.pointer("/spec/ports")).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut mine: HashSet<u16> = HashSet::new();
    let mut rng = rand::rng();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(pm) = p.as_object_mut() else { continue };
            if !wants_node_ports {
                if svc_type == "ClusterIP" || svc_type == "ExternalName" {
                    pm.remove("nodePort");
                }
                continue;
            }
            let requested = pm.get("nodePort").and_then(Value::as_u64).filter(|n| *n != 0);
            let port = match requested {
                Some(n) => {
                    let n16 = u16::try_from(n).unwrap_or(0);
                    if !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&n16) {
                        return Err(svc_invalid_port(
                            i,
                            n,
                            format!(
                                "provided port is not in the valid range. The range of valid ports is {NODE_PORT_MIN}-{NODE_PORT_MAX}"
                            ),
                        ));
                    }
                    if used_ports.contains(&n16) || mine.contains(&n16) {
                        return Err(svc_invalid_port(i, n, "provided port is already allocated".into()));
                    }
                    n16
                }
                None => {
                    let same = old_ports
                        .iter()
                        .find(|o| o.get("port") == pm.get("port") && o.get("protocol") == pm.get("protocol"));
                    match same.and_then(|o| o.get("nodePort")).and_then(Value::as_u64) {
                        Some(n) => n as u16,
                        None => {
                            let mut taken = used_ports.clone();
                            taken.extend(mine.iter().copied());
                            pick_node_port(&taken, &mut rng)
                                .ok_or_else(|| ApiError::internal("failed to allocate a nodePort: range is full"))?
                        }
                    }
                }
            };
            mine.insert(port);
            pm.insert("nodePort".into(), json!(port));
        }
    }
    let _ = svc_invalid;
    Ok(())
}

fn svc_invalid_port(i: usize, n: u64, msg: String) -> ApiError {
    let field = format!("spec.ports[{i}].nodePort");
    let message = format!("Invalid value: {n}: {msg}");
    ApiError::invalid(
        "",
        "Service",
        "",
        format!("Service is invalid: {field}: {message}"),
        vec![Cause { reason: "FieldValueInvalid".into(), message, field }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_default_tolerations_unless_they_have_their_own() {
        let def = rkube_registry::lookup("", "v1", "pods").unwrap();
        let mut pod = json!({"spec": {"containers": [{"name": "a"}]}});
        admit_create(def, &mut pod, TolerationSeconds::default());
        let keys: Vec<&str> =
            pod["spec"]["tolerations"].as_array().unwrap().iter().filter_map(|t| t["key"].as_str()).collect();
        assert_eq!(keys, ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]);
        assert_eq!(pod["spec"]["tolerations"][0]["tolerationSeconds"], 300);
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        let mut own = json!({"spec": {"serviceAccountName": "robot", "tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]}});
        admit_create(def, &mut own, TolerationSeconds::default());
        let t = own["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 10);
        assert_eq!(own["spec"]["serviceAccountName"], "robot");
        let mut all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        admit_create(def, &mut all, TolerationSeconds::default());
        assert_eq!(all["spec"]["tolerations"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn service_account_volume_as_upstream() {
        let mount = json!({"name": "kube-api-access-abcde", "readOnly": true,
                           "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"});
        let mut pod = json!({"spec": {"initContainers": [{"name": "i"}], "containers": [
            {"name": "a"},
            {"name": "b", "volumeMounts": [{"name": "own", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}
        ]}});
        inject_service_account_volume(&mut pod, None, "abcde");
        assert_eq!(pod["spec"]["initContainers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(pod["spec"]["containers"][1]["volumeMounts"].as_array().unwrap().len(), 1, "its own mount wins");
        let volume = &pod["spec"]["volumes"][0];
        assert_eq!(volume["name"], "kube-api-access-abcde");
        assert_eq!(volume["projected"]["defaultMode"], 420);
        assert_eq!(volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(volume["projected"]["sources"][1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(volume["projected"]["sources"][2]["downwardAPI"]["items"][0]["path"], "namespace");
        // (pod's automountServiceAccountToken, the ServiceAccount's, mounted)
        let cases = [
            (None, None, true),
            (Some(false), None, false),
            (None, Some(false), false),
            (Some(true), Some(false), true),
        ];
        for (pod_says, sa_says, mounted) in cases {
            let mut pod = json!({"spec": {"containers": [{"name": "a"}]}});
            if let Some(v) = pod_says {
                pod["spec"]["automountServiceAccountToken"] = json!(v);
            }
            inject_service_account_volume(&mut pod, sa_says, "x");
            assert_eq!(pod["spec"]["volumes"].is_array(), mounted, "{pod_says:?} {sa_says:?}");
        }
        let mut mirror = json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "h"}},
                                "spec": {"containers": [{"name": "a"}]}});
        inject_service_account_volume(&mut mirror, None, "x");
        assert!(mirror["spec"]["volumes"].is_null(), "mirror pods are left alone");
    }

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(Some(&json!({"containers": [{"name": "a"}]}))), "BestEffort");
        let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(Some(&g)), "Guaranteed");
        let b = json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(Some(&b)), "Burstable");
    }

    #[test]
    fn unknown_fields_are_found_by_path() {
        let def = rkube_registry::lookup("", "v1", "configmaps").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "bogus": 1}, "data": {}, "extra": "x"});
        let u = rkube_validation::unknown_fields(def, &obj).unwrap();
        assert_eq!(u, vec!["metadata.bogus".to_string(), "extra".to_string()]);
        let err = check_fields(def, &obj, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(err.to_string().contains("strict decoding error: unknown field \"metadata.bogus\""), "{err}");
        assert_eq!(check_fields(def, &obj, FieldValidation::Warn).unwrap().len(), 2);
        assert!(check_fields(def, &obj, FieldValidation::Ignore).unwrap().is_empty());
    }
}
