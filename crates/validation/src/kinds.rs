//! Per-kind validation beyond metadata: what each kind's `Validate<Kind>` and
//! `Validate<Kind>Update` check.

use base64::Engine as _;
use serde_json::Value;

use crate::field::{FieldError, Path};
use crate::json::{arr_of, at, bool_of, get, int_of, obj_of, str_of, str_or_empty, without_nulls};
use crate::meta::{self, NameRule, check_immutable};
use crate::names;
use crate::pod;

/// Upper bound on the summed size of ConfigMap and Secret data.
const MAX_DATA_SIZE: usize = 1024 * 1024;

/// The name rule for a kind's `metadata.name`.
pub(crate) fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace") => NameRule::Label,
        ("", "Service") => NameRule::Dns1035,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

fn nonnegative(v: &Value, key: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(n) = int_of(v, key).filter(|n| *n < 0) {
        errs.push(FieldError::invalid(&path.child(key), n, "must be greater than or equal to 0"));
    }
}

fn one_of(v: &str, path: &Path, supported: &[&str], errs: &mut Vec<FieldError>) {
    if v.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if !supported.contains(&v) {
        errs.push(FieldError::not_supported(path, v, supported));
    }
}

pub(crate) fn validate(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec_path = Path::new("spec");
    let empty = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&empty);
    match (group, kind) {
        ("", "Pod") => errs.extend(pod::pod_spec(spec, &spec_path, true)),
        ("", "PodTemplate") => errs.extend(pod::pod_template(get(obj, "template"), &Path::new("template"))),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => workload(kind, spec, &mut errs),
        ("batch", "Job") => job_spec(spec, &spec_path, true, &mut errs),
        ("batch", "CronJob") => cron_job(obj, spec, &mut errs),
        ("", "Service") => service(spec, &mut errs),
        ("", "ConfigMap") => config_map(obj, &mut errs),
        ("", "Secret") => secret(obj, &mut errs),
        ("", "Namespace") => {
            for f in arr_of(spec, "finalizers") {
                let f = f.as_str().unwrap_or("");
                let standard = f == "kubernetes";
                let msgs = names::qualified_name(f);
                for msg in &msgs {
                    errs.push(FieldError::invalid(&spec_path.child("finalizers"), f, msg));
                }
                if msgs.is_empty() && !standard && !f.contains('/') {
                    errs.push(FieldError::invalid(
                        &spec_path.child("finalizers"),
                        f,
                        "name is neither a standard finalizer name nor is it fully qualified",
                    ));
                }
            }
        }
        ("", "PersistentVolumeClaim") => pvc(spec, &mut errs),
        ("", "PersistentVolume") => pv(spec, &mut errs),
        ("storage.k8s.io", "StorageClass") => {
            if str_or_empty(obj, "provisioner").is_empty() {
                errs.push(FieldError::required(&Path::new("provisioner"), ""));
            }
            if let Some(p) = str_of(obj, "reclaimPolicy") {
                one_of(p, &Path::new("reclaimPolicy"), &["Delete", "Retain"], &mut errs);
            }
            if let Some(m) = str_of(obj, "volumeBindingMode") {
                one_of(m, &Path::new("volumeBindingMode"), &["Immediate", "WaitForFirstConsumer"], &mut errs);
            }
        }
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            for (i, rule) in arr_of(obj, "rules").iter().enumerate() {
                policy_rule(rule, &Path::new("rules").index(i), kind == "Role", &mut errs);
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => role_binding(obj, kind, &mut errs),
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(spec, &mut errs),
        ("networking.k8s.io", "Ingress") => ingress(spec, &mut errs),
        ("networking.k8s.io", "NetworkPolicy") => {
            let empty_sel = Value::Object(Default::default());
            errs.extend(meta::label_selector(
                get(spec, "podSelector").unwrap_or(&empty_sel),
                &spec_path.child("podSelector"),
            ));
            for (i, t) in arr_of(spec, "policyTypes").iter().enumerate() {
                let t = t.as_str().unwrap_or("");
                if t != "Ingress" && t != "Egress" {
                    errs.push(FieldError::not_supported(
                        &spec_path.child("policyTypes").index(i),
                        t,
                        &["Ingress", "Egress"],
                    ));
                }
            }
        }
        ("policy", "PodDisruptionBudget") => {
            if get(spec, "minAvailable").is_some() && get(spec, "maxUnavailable").is_some() {
                errs.push(FieldError::invalid(
                    &spec_path.child("minAvailable"),
                    get(spec, "minAvailable").cloned().unwrap_or(Value::Null),
                    "minAvailable and maxUnavailable cannot be both set",
                ));
            }
            if let Some(sel) = get(spec, "selector") {
                errs.extend(meta::label_selector(sel, &spec_path.child("selector")));
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            one_of(str_or_empty(obj, "addressType"), &Path::new("addressType"), &["IPv4", "IPv6", "FQDN"], &mut errs);
        }
        _ => {}
    }
    errs
}

pub(crate) fn validate_update(group: &str, kind: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = Path::new("spec");
    match (group, kind) {
        ("", "Pod") => errs.extend(pod::pod_update(new, old)),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => pod::selector_immutable(new, old, &mut errs),
        ("apps", "StatefulSet") => {
            let strip = |v: &Value| {
                let mut s = without_nulls(get(v, "spec").unwrap_or(&Value::Null));
                if let Some(m) = s.as_object_mut() {
                    for k in [
                        "replicas",
                        "ordinals",
                        "template",
                        "updateStrategy",
                        "revisionHistoryLimit",
                        "persistentVolumeClaimRetentionPolicy",
                        "minReadySeconds",
                    ] {
                        m.remove(k);
                    }
                }
                s
            };
            if strip(new) != strip(old) {
                errs.push(FieldError::forbidden(&spec, "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
            }
        }
        ("batch", "Job") => {
            for key in ["selector", "completionMode", "podFailurePolicy", "backoffLimitPerIndex"] {
                check_immutable(at(new, &["spec", key]), at(old, &["spec", key]), &spec.child(key), &mut errs);
            }
            if str_of(at(new, &["spec"]).unwrap_or(&Value::Null), "completionMode") != Some("Indexed") {
                check_immutable(
                    at(new, &["spec", "completions"]),
                    at(old, &["spec", "completions"]),
                    &spec.child("completions"),
                    &mut errs,
                );
            }
            // A suspended job that never started may have its scheduling directives
            // changed; keep to the common case and compare templates whole.
            if !bool_of(get(old, "spec").unwrap_or(&Value::Null), "suspend") {
                check_immutable(
                    at(new, &["spec", "template"]),
                    at(old, &["spec", "template"]),
                    &spec.child("template"),
                    &mut errs,
                );
            }
        }
        ("", "Service") => {
            let ty = |v: &Value| at(v, &["spec", "type"]).and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
            if ty(new) != "ExternalName" && ty(old) != "ExternalName" {
                for key in ["clusterIP", "clusterIPs"] {
                    let n = at(new, &["spec", key]);
                    // An absent value is carried over from the old object by the apiserver.
                    if n.is_some() {
                        check_immutable(n, at(old, &["spec", key]), &spec.child(key), &mut errs);
                    }
                }
            }
        }
        ("", "Secret") => {
            check_immutable(get(new, "type"), get(old, "type"), &Path::new("type"), &mut errs);
            immutable_data(new, old, &["data"], &mut errs);
        }
        ("", "ConfigMap") => immutable_data(new, old, &["data", "binaryData"], &mut errs),
        ("", "PersistentVolumeClaim") => {
            let strip = |v: &Value| {
                let mut s = without_nulls(get(v, "spec").unwrap_or(&Value::Null));
                if let Some(m) = s.as_object_mut() {
                    m.remove("volumeAttributesClassName");
                    if let Some(r) = m.get_mut("resources").and_then(Value::as_object_mut) {
                        r.remove("requests");
                    }
                    // The binder fills the volume name in once.
                    m.remove("volumeName");
                }
                s
            };
            if strip(new) != strip(old) {
                errs.push(FieldError::forbidden(&spec, "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"));
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            for (key, msg) in [
                ("parameters", "updates to parameters are forbidden."),
                ("provisioner", "updates to provisioner are forbidden."),
                ("reclaimPolicy", "updates to reclaimPolicy are forbidden."),
            ] {
                if get(new, key).map(without_nulls) != get(old, key).map(without_nulls) {
                    errs.push(FieldError::forbidden(&Path::new(key), msg));
                }
            }
            check_immutable(
                get(new, "volumeBindingMode"),
                get(old, "volumeBindingMode"),
                &Path::new("volumeBindingMode"),
                &mut errs,
            );
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let (n, o) = (get(new, "roleRef"), get(old, "roleRef"));
            if n.map(without_nulls) != o.map(without_nulls) {
                let r = n.cloned().unwrap_or(Value::Null);
                // Upstream prints the Go struct; carry that rendering in the detail so
                // the message reads exactly the same.
                errs.push(FieldError {
                    error_type: crate::ErrorType::Invalid,
                    field: "roleRef".into(),
                    value: None,
                    detail: format!("{}: cannot change roleRef", go_struct_role_ref(&r)),
                });
            }
        }
        _ => {}
    }
    errs
}

fn go_struct_role_ref(r: &Value) -> String {
    format!(
        "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
        str_or_empty(r, "apiGroup"),
        str_or_empty(r, "kind"),
        str_or_empty(r, "name")
    )
}

fn immutable_data(new: &Value, old: &Value, keys: &[&str], errs: &mut Vec<FieldError>) {
    if !bool_of(old, "immutable") {
        return;
    }
    if !bool_of(new, "immutable") {
        errs.push(FieldError::forbidden(&Path::new("immutable"), "field is immutable when `immutable` is set"));
    }
    for key in keys {
        let norm = |v: &Value| get(v, key).and_then(Value::as_object).filter(|m| !m.is_empty()).cloned();
        if norm(new) != norm(old) {
            errs.push(FieldError::forbidden(&Path::new(key), "field is immutable when `immutable` is set"));
        }
    }
}

fn selector_required(spec: &Value, path: &Path, noun: &str, errs: &mut Vec<FieldError>) {
    match get(spec, "selector") {
        None => errs.push(FieldError::required(&path.child("selector"), "")),
        Some(sel) => {
            errs.extend(meta::label_selector(sel, &path.child("selector")));
            if meta::selector_is_empty(sel) {
                errs.push(FieldError::invalid(
                    &path.child("selector"),
                    sel.clone(),
                    &format!("empty selector is invalid for {noun}"),
                ));
            }
        }
    }
}

/// An IntOrString that is a count or a percentage (`maxSurge`, `maxUnavailable`).
fn int_or_percent(v: Option<&Value>, path: &Path, errs: &mut Vec<FieldError>) -> Option<i64> {
    match v? {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            if n < 0 {
                errs.push(FieldError::invalid(path, n, "must be greater than or equal to 0"));
            }
            Some(n)
        }
        Value::String(s) => {
            let Some(num) = s.strip_suffix('%').and_then(|d| d.parse::<i64>().ok()) else {
                errs.push(FieldError::invalid(
                    path,
                    s.as_str(),
                    &names::regex_error(
                        "a valid percent string must be a numeric string followed by an ending '%'",
                        "[0-9]+%",
                        &["1%", "93%"],
                    ),
                ));
                return None;
            };
            if num > 100 {
                errs.push(FieldError::invalid(path, s.as_str(), "must not be greater than 100%"));
            }
            Some(num)
        }
        _ => None,
    }
}

fn workload(kind: &str, spec: &Value, errs: &mut Vec<FieldError>) {
    let path = Path::new("spec");
    for key in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        nonnegative(spec, key, &path, errs);
    }
    let noun = match kind {
        "StatefulSet" => "statefulset",
        "DaemonSet" => "daemonset",
        _ => "deployment",
    };
    selector_required(spec, &path, noun, errs);
    pod::controller_template(spec, &path, kind, errs);
    match kind {
        "Deployment" => {
            let sp = path.child("strategy");
            let strategy = get(spec, "strategy");
            let ty = strategy.map(|s| str_or_empty(s, "type")).unwrap_or("");
            match ty {
                "Recreate" => {
                    if strategy.and_then(|s| get(s, "rollingUpdate")).is_some() {
                        errs.push(FieldError::forbidden(
                            &sp.child("rollingUpdate"),
                            "may not be specified when strategy `type` is 'Recreate'",
                        ));
                    }
                }
                "RollingUpdate" => {
                    let ru = strategy.and_then(|s| get(s, "rollingUpdate"));
                    let rp = sp.child("rollingUpdate");
                    let unavailable =
                        int_or_percent(ru.and_then(|r| get(r, "maxUnavailable")), &rp.child("maxUnavailable"), errs);
                    let surge = int_or_percent(ru.and_then(|r| get(r, "maxSurge")), &rp.child("maxSurge"), errs);
                    if unavailable == Some(0) && surge == Some(0) {
                        errs.push(FieldError::invalid(
                            &rp.child("maxUnavailable"),
                            ru.and_then(|r| get(r, "maxUnavailable")).cloned().unwrap_or(Value::Null),
                            "may not be 0 when `maxSurge` is 0",
                        ));
                    }
                }
                "" => errs.push(FieldError::required(&sp.child("type"), "")),
                other => errs.push(FieldError::not_supported(&sp.child("type"), other, &["Recreate", "RollingUpdate"])),
            }
            if let Some(pds) = int_of(spec, "progressDeadlineSeconds")
                && pds <= int_of(spec, "minReadySeconds").unwrap_or(0)
            {
                errs.push(FieldError::invalid(
                    &path.child("progressDeadlineSeconds"),
                    pds,
                    "must be greater than minReadySeconds",
                ));
            }
        }
        "StatefulSet" => {
            if let Some(p) = str_of(spec, "podManagementPolicy") {
                one_of(p, &path.child("podManagementPolicy"), &["OrderedReady", "Parallel"], errs);
            }
            update_strategy(spec, &path, errs);
            if let Some(ru) = at(spec, &["updateStrategy", "rollingUpdate"]) {
                nonnegative(ru, "partition", &path.child("updateStrategy").child("rollingUpdate"), errs);
            }
            if let Some(policy) = get(spec, "persistentVolumeClaimRetentionPolicy") {
                let pp = path.child("persistentVolumeClaimRetentionPolicy");
                for key in ["whenDeleted", "whenScaled"] {
                    if let Some(v) = str_of(policy, key) {
                        one_of(v, &pp.child(key), &["Retain", "Delete"], errs);
                    }
                }
            }
        }
        "DaemonSet" => update_strategy(spec, &path, errs),
        _ => {}
    }
}

fn update_strategy(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(us) = get(spec, "updateStrategy") {
        one_of(
            str_or_empty(us, "type"),
            &path.child("updateStrategy").child("type"),
            &["OnDelete", "RollingUpdate"],
            errs,
        );
    }
}

fn job_spec(spec: &Value, path: &Path, is_job: bool, errs: &mut Vec<FieldError>) {
    for key in ["parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished"] {
        nonnegative(spec, key, path, errs);
    }
    if let Some(mode) = str_of(spec, "completionMode") {
        one_of(mode, &path.child("completionMode"), &["NonIndexed", "Indexed"], errs);
        if mode == "Indexed" && int_of(spec, "completions").is_none() {
            errs.push(FieldError::required(&path.child("completions"), "when completion mode is Indexed"));
        }
    }
    let template = get(spec, "template");
    let tpath = path.child("template");
    if is_job {
        match get(spec, "selector") {
            None => errs.push(FieldError::required(&path.child("selector"), "")),
            Some(sel) => {
                errs.extend(meta::label_selector(sel, &path.child("selector")));
                let labels = template.and_then(|t| at(t, &["metadata", "labels"]));
                if !meta::selector_matches(sel, labels) {
                    errs.push(FieldError::invalid(
                        &tpath.child("metadata").child("labels"),
                        labels.cloned().unwrap_or(Value::Null),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
    errs.extend(pod::pod_template(template, &tpath));
    if let Some(t) = template {
        let rp = at(t, &["spec", "restartPolicy"]).and_then(Value::as_str).unwrap_or("");
        if rp != "OnFailure" && rp != "Never" {
            errs.push(FieldError::not_supported(
                &tpath.child("spec").child("restartPolicy"),
                rp,
                &["OnFailure", "Never"],
            ));
        }
    }
}

fn cron_job(obj: &Value, spec: &Value, errs: &mut Vec<FieldError>) {
    let path = Path::new("spec");
    let name = at(obj, &["metadata", "name"]).and_then(Value::as_str).unwrap_or("");
    // The controller appends an 11-character suffix to job names.
    if name.len() > 52 {
        errs.push(FieldError::invalid(
            &Path::new("metadata").child("name"),
            name,
            "must be no more than 52 characters",
        ));
    }
    let schedule = str_or_empty(spec, "schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required(&path.child("schedule"), ""));
    } else if !schedule.starts_with('@') {
        let fields: Vec<&str> =
            schedule.split_whitespace().filter(|f| !f.starts_with("TZ=") && !f.starts_with("CRON_TZ=")).collect();
        if fields.len() != 5 {
            errs.push(FieldError::invalid(
                &path.child("schedule"),
                schedule,
                &format!("expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" ")),
            ));
        }
    }
    if let Some(p) = str_of(spec, "concurrencyPolicy") {
        one_of(p, &path.child("concurrencyPolicy"), &["Allow", "Forbid", "Replace"], errs);
    }
    for key in ["startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        nonnegative(spec, key, &path, errs);
    }
    let jt = path.child("jobTemplate");
    if let Some(m) = at(spec, &["jobTemplate", "metadata"]) {
        errs.extend(meta::labels_and_annotations(m, &jt.child("metadata")));
    }
    let empty = Value::Null;
    let job = at(spec, &["jobTemplate", "spec"]).unwrap_or(&empty);
    if let Some(sel) = get(job, "selector") {
        errs.push(FieldError::invalid(
            &jt.child("spec").child("selector"),
            sel.clone(),
            "`selector` will be auto-generated",
        ));
    }
    job_spec(job, &jt.child("spec"), false, errs);
}

fn service(spec: &Value, errs: &mut Vec<FieldError>) {
    let path = Path::new("spec");
    let ty = str_or_empty(spec, "type");
    let headless = str_of(spec, "clusterIP") == Some("None");
    match ty {
        "ClusterIP" | "NodePort" | "LoadBalancer" => {}
        "ExternalName" => {
            let en = str_or_empty(spec, "externalName");
            if en.is_empty() {
                errs.push(FieldError::required(&path.child("externalName"), ""));
            } else {
                for msg in names::dns1123_subdomain(en.trim_end_matches('.')) {
                    errs.push(FieldError::invalid(&path.child("externalName"), en, &msg));
                }
            }
        }
        "" => errs.push(FieldError::required(&path.child("type"), "")),
        other => errs.push(FieldError::not_supported(
            &path.child("type"),
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    if let Some(sa) = str_of(spec, "sessionAffinity") {
        one_of(sa, &path.child("sessionAffinity"), &["ClientIP", "None"], errs);
    }
    let ports = arr_of(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required(&path.child("ports"), ""));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.child("ports").index(i);
        let name = str_or_empty(port, "name");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else if !name.is_empty() {
            for msg in names::dns1123_label(name) {
                errs.push(FieldError::invalid(&p.child("name"), name, &msg));
            }
            if !seen.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&p.child("name"), name));
            }
        }
        let num = int_of(port, "port").unwrap_or(0);
        for msg in names::port_num(num) {
            errs.push(FieldError::invalid(&p.child("port"), num, &msg));
        }
        pod::protocol(port, &p, errs);
        if let Some(tp) = get(port, "targetPort") {
            pod::port_or_name(tp, &p.child("targetPort"), errs);
        }
        if ty == "ClusterIP" && int_of(port, "nodePort").is_some_and(|n| n != 0) {
            errs.push(FieldError::forbidden(&p.child("nodePort"), "may not be used when `type` is 'ClusterIP'"));
        }
    }
    errs.extend(meta::labels(get(spec, "selector"), &path.child("selector")));
    if let Some(ip) = str_of(spec, "clusterIP").filter(|s| !s.is_empty() && *s != "None")
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        errs.push(FieldError::invalid(
            &path.child("clusterIPs").index(0),
            ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
}

fn data_keys(obj: &Value, key: &str, other: &str, decode: bool, errs: &mut Vec<FieldError>) -> usize {
    let mut total = 0;
    for (k, v) in obj_of(obj, key).into_iter().flatten() {
        let p = Path::new(key).key(k);
        for msg in names::config_map_key(k) {
            errs.push(FieldError::invalid(&p, k.as_str(), &msg));
        }
        if obj_of(obj, other).is_some_and(|m| m.contains_key(k)) && key == "data" {
            errs.push(FieldError::invalid(&p, k.as_str(), &format!("duplicate of key present in {other}")));
        }
        let text = v.as_str().unwrap_or("");
        total += if decode {
            base64::engine::general_purpose::STANDARD.decode(text).map_or(text.len(), |b| b.len())
        } else {
            text.len()
        };
    }
    total
}

fn config_map(obj: &Value, errs: &mut Vec<FieldError>) {
    let total = data_keys(obj, "data", "binaryData", false, errs) + data_keys(obj, "binaryData", "data", true, errs);
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long(&Path::root(), MAX_DATA_SIZE));
    }
}

fn secret(obj: &Value, errs: &mut Vec<FieldError>) {
    let total = data_keys(obj, "data", "", true, errs);
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long(&Path::new("data"), MAX_DATA_SIZE));
    }
    let data = Path::new("data");
    let has = |k: &str| obj_of(obj, "data").is_some_and(|m| m.contains_key(k));
    let require = |k: &str, errs: &mut Vec<FieldError>| {
        if !has(k) {
            errs.push(FieldError::required(&data.key(k), ""));
        }
    };
    match str_or_empty(obj, "type") {
        "kubernetes.io/service-account-token"
            if at(obj, &["metadata", "annotations", "kubernetes.io/service-account.name"]).is_none() =>
        {
            errs.push(FieldError::required(
                &Path::new("metadata").child("annotations").key("kubernetes.io/service-account.name"),
                "",
            ));
        }
        "kubernetes.io/dockercfg" => require(".dockercfg", errs),
        "kubernetes.io/dockerconfigjson" => require(".dockerconfigjson", errs),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(FieldError::required(&data.key("username"), ""));
            errs.push(FieldError::required(&data.key("password"), ""));
        }
        "kubernetes.io/ssh-auth" => require("ssh-privatekey", errs),
        "kubernetes.io/tls" => {
            require("tls.crt", errs);
            require("tls.key", errs);
        }
        _ => {}
    }
}

const ACCESS_MODES: &[&str] = &["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];

fn access_modes(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let modes = arr_of(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(&path.child("accessModes"), "at least 1 access mode is required"));
    }
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&m) {
            errs.push(FieldError::not_supported(&path.child("accessModes"), m, ACCESS_MODES));
        }
    }
    if let Some(vm) = str_of(spec, "volumeMode") {
        one_of(vm, &path.child("volumeMode"), &["Block", "Filesystem"], errs);
    }
}

fn pvc(spec: &Value, errs: &mut Vec<FieldError>) {
    let path = Path::new("spec");
    access_modes(spec, &path, errs);
    if let Some(sel) = get(spec, "selector") {
        errs.extend(meta::label_selector(sel, &path.child("selector")));
    }
    if at(spec, &["resources", "requests", "storage"]).is_none() {
        errs.push(FieldError::required(&path.child("resources").key("storage"), ""));
    }
}

fn pv(spec: &Value, errs: &mut Vec<FieldError>) {
    let path = Path::new("spec");
    access_modes(spec, &path, errs);
    if obj_of(spec, "capacity").is_none_or(|c| c.is_empty()) {
        errs.push(FieldError::required(&path.child("capacity"), ""));
    }
    if let Some(p) = str_of(spec, "persistentVolumeReclaimPolicy") {
        one_of(p, &path.child("persistentVolumeReclaimPolicy"), &["Delete", "Recycle", "Retain"], errs);
    }
    let sources = [
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "hostPath",
        "glusterfs",
        "nfs",
        "rbd",
        "quobyte",
        "iscsi",
        "cinder",
        "cephfs",
        "fc",
        "flocker",
        "flexVolume",
        "azureFile",
        "vsphereVolume",
        "azureDisk",
        "photonPersistentDisk",
        "portworxVolume",
        "scaleIO",
        "local",
        "storageos",
        "csi",
    ];
    let n = sources.iter().filter(|s| get(spec, s).is_some()).count();
    if n == 0 {
        errs.push(FieldError::required(&path, "must specify a volume type"));
    } else if n > 1 {
        errs.push(FieldError::forbidden(&path, "may not specify more than 1 volume type"));
    }
}

fn policy_rule(rule: &Value, path: &Path, namespaced: bool, errs: &mut Vec<FieldError>) {
    if arr_of(rule, "verbs").is_empty() {
        errs.push(FieldError::required(&path.child("verbs"), "verbs must contain at least one value"));
    }
    let urls = arr_of(rule, "nonResourceURLs");
    if !urls.is_empty() {
        let v = Value::Array(urls.to_vec());
        if namespaced {
            errs.push(FieldError::invalid(
                &path.child("nonResourceURLs"),
                v.clone(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !arr_of(rule, "apiGroups").is_empty()
            || !arr_of(rule, "resources").is_empty()
            || !arr_of(rule, "resourceNames").is_empty()
        {
            errs.push(FieldError::invalid(
                &path.child("nonResourceURLs"),
                v,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if arr_of(rule, "apiGroups").is_empty() {
        errs.push(FieldError::required(&path.child("apiGroups"), "resource rules must supply at least one api group"));
    }
    if arr_of(rule, "resources").is_empty() {
        errs.push(FieldError::required(&path.child("resources"), "resource rules must supply at least one resource"));
    }
}

fn role_binding(obj: &Value, kind: &str, errs: &mut Vec<FieldError>) {
    let rr = Path::new("roleRef");
    let empty = Value::Null;
    let role_ref = get(obj, "roleRef").unwrap_or(&empty);
    let group = str_or_empty(role_ref, "apiGroup");
    if group != "rbac.authorization.k8s.io" {
        errs.push(FieldError::not_supported(&rr.child("apiGroup"), group, &["rbac.authorization.k8s.io"]));
    }
    let ref_kind = str_or_empty(role_ref, "kind");
    let kinds: &[&str] = if kind == "RoleBinding" { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
    if !kinds.contains(&ref_kind) {
        errs.push(FieldError::not_supported(&rr.child("kind"), ref_kind, kinds));
    }
    let name = str_or_empty(role_ref, "name");
    if name.is_empty() {
        errs.push(FieldError::required(&rr.child("name"), ""));
    } else {
        for msg in names::path_segment_name(name) {
            errs.push(FieldError::invalid(&rr.child("name"), name, &msg));
        }
    }
    for (i, s) in arr_of(obj, "subjects").iter().enumerate() {
        let p = Path::new("subjects").index(i);
        let name = str_or_empty(s, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        let api_group = str_or_empty(s, "apiGroup");
        match str_or_empty(s, "kind") {
            "ServiceAccount" => {
                if !name.is_empty() {
                    for msg in names::dns1123_subdomain(name) {
                        errs.push(FieldError::invalid(&p.child("name"), name, &msg));
                    }
                }
                if !api_group.is_empty() {
                    errs.push(FieldError::not_supported(&p.child("apiGroup"), api_group, &[""]));
                }
                if kind == "ClusterRoleBinding" && str_or_empty(s, "namespace").is_empty() {
                    errs.push(FieldError::required(&p.child("namespace"), ""));
                }
            }
            "User" | "Group" => {
                if api_group != "rbac.authorization.k8s.io" {
                    errs.push(FieldError::not_supported(
                        &p.child("apiGroup"),
                        api_group,
                        &["rbac.authorization.k8s.io"],
                    ));
                }
            }
            other => {
                errs.push(FieldError::not_supported(&p.child("kind"), other, &["ServiceAccount", "User", "Group"]))
            }
        }
    }
}

fn hpa(spec: &Value, errs: &mut Vec<FieldError>) {
    let path = Path::new("spec");
    let target = path.child("scaleTargetRef");
    let empty = Value::Null;
    let r = get(spec, "scaleTargetRef").unwrap_or(&empty);
    for key in ["kind", "name"] {
        let v = str_or_empty(r, key);
        if v.is_empty() {
            errs.push(FieldError::required(&target.child(key), ""));
        } else {
            for msg in names::path_segment_name(v) {
                errs.push(FieldError::invalid(&target.child(key), v, &msg));
            }
        }
    }
    let min = int_of(spec, "minReplicas");
    if let Some(m) = min.filter(|m| *m < 1) {
        errs.push(FieldError::invalid(&path.child("minReplicas"), m, "must be greater than or equal to 1"));
    }
    let max = int_of(spec, "maxReplicas").unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid(&path.child("maxReplicas"), max, "must be greater than 0"));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(FieldError::invalid(
            &path.child("maxReplicas"),
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    if let Some(t) = int_of(spec, "targetCPUUtilizationPercentage").filter(|t| *t < 1) {
        errs.push(FieldError::invalid(&path.child("targetCPUUtilizationPercentage"), t, "must be greater than 0"));
    }
}

fn ingress_backend(b: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    match (get(b, "service"), get(b, "resource")) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(path, "", "cannot set both resource and service backends")),
        (None, None) => errs.push(FieldError::invalid(path, "", "resource or service backend is required")),
        (Some(svc), None) => {
            let sp = path.child("service");
            let name = str_or_empty(svc, "name");
            if name.is_empty() {
                errs.push(FieldError::required(&sp.child("name"), ""));
            }
            let port = get(svc, "port");
            let num = port.and_then(|p| int_of(p, "number"));
            let pname = port.and_then(|p| str_of(p, "name")).filter(|s| !s.is_empty());
            match (num, pname) {
                (Some(_), Some(_)) => {
                    errs.push(FieldError::invalid(&sp.child("port"), "", "cannot set both port name & port number"))
                }
                (Some(n), None) => {
                    for msg in names::port_num(n) {
                        errs.push(FieldError::invalid(&sp.child("port").child("number"), n, &msg));
                    }
                }
                (None, Some(_)) => {}
                (None, None) => errs.push(FieldError::required(&sp.child("port"), "port name or number is required")),
            }
        }
        (None, Some(_)) => {}
    }
}

fn ingress(spec: &Value, errs: &mut Vec<FieldError>) {
    let path = Path::new("spec");
    let rules = arr_of(spec, "rules");
    if let Some(b) = get(spec, "defaultBackend") {
        ingress_backend(b, &path.child("defaultBackend"), errs);
    } else if rules.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("rules"),
            Value::Array(Vec::new()),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(c) = str_of(spec, "ingressClassName") {
        for msg in names::dns1123_subdomain(c) {
            errs.push(FieldError::invalid(&path.child("ingressClassName"), c, &msg));
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = path.child("rules").index(i);
        if let Some(host) = str_of(rule, "host").filter(|h| !h.is_empty()) {
            let check = host.strip_prefix("*.").unwrap_or(host);
            for msg in names::dns1123_subdomain(check) {
                errs.push(FieldError::invalid(&rp.child("host"), host, &msg));
            }
        }
        let Some(http) = get(rule, "http") else {
            continue;
        };
        let hp = rp.child("http").child("paths");
        let paths = arr_of(http, "paths");
        if paths.is_empty() {
            errs.push(FieldError::required(&hp, ""));
        }
        for (j, p) in paths.iter().enumerate() {
            let pp = hp.index(j);
            let path_text = str_or_empty(p, "path");
            match str_or_empty(p, "pathType") {
                "" => errs.push(FieldError::required(&pp.child("pathType"), "pathType must be specified")),
                "Exact" | "Prefix" => {
                    if !path_text.starts_with('/') {
                        errs.push(FieldError::invalid(&pp.child("path"), path_text, "must be an absolute path"));
                    }
                }
                "ImplementationSpecific" => {
                    if !path_text.is_empty() && !path_text.starts_with('/') {
                        errs.push(FieldError::invalid(&pp.child("path"), path_text, "must be an absolute path"));
                    }
                }
                other => errs.push(FieldError::not_supported(
                    &pp.child("pathType"),
                    other,
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            ingress_backend(get(p, "backend").unwrap_or(&Value::Null), &pp.child("backend"), errs);
        }
    }
}
