//! Pod specs: the rules shared by Pods and every pod template, and the Pod update rule.

use std::collections::HashSet;

use serde_json::Value;

use crate::defaults::VOLUME_SOURCES;
use crate::field::{FieldError, Path};
use crate::json::{arr_of, at, get, int_of, obj_of, str_of, str_or_empty, without_nulls};
use crate::meta::{self, check_immutable};
use crate::names;
use crate::quantity::{QUANTITY_FORMAT, parse_nanos};

const INT32_MAX: i64 = i32::MAX as i64;

/// `ValidatePodSpec`. `is_pod` adds the checks upstream makes only for Pods (images are
/// optional in templates, because admission may fill them in).
pub(crate) fn pod_spec(spec: &Value, path: &Path, is_pod: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let volumes = volumes(spec, &path.child("volumes"), &mut errs);

    let mut names_seen = HashSet::new();
    let containers = arr_of(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(&path.child("containers"), ""));
    }
    for (i, c) in arr_of(spec, "initContainers").iter().enumerate() {
        let p = path.child("initContainers").index(i);
        container(c, &p, &volumes, &mut names_seen, is_pod, &mut errs);
        let sidecar = str_of(c, "restartPolicy") == Some("Always");
        match str_of(c, "restartPolicy") {
            None | Some("Always") => {}
            Some(other) => errs.push(FieldError::not_supported(&p.child("restartPolicy"), other, &["Always"])),
        }
        if !sidecar {
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if get(c, probe).is_some() {
                    errs.push(FieldError::forbidden(
                        &p.child(probe),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
            if get(c, "lifecycle").is_some() {
                errs.push(FieldError::forbidden(
                    &p.child("lifecycle"),
                    "may not be set for init containers without restartPolicy=Always",
                ));
            }
        }
    }
    for (i, c) in containers.iter().enumerate() {
        let p = path.child("containers").index(i);
        container(c, &p, &volumes, &mut names_seen, is_pod, &mut errs);
        if get(c, "restartPolicy").is_some() {
            errs.push(FieldError::forbidden(&p.child("restartPolicy"), "may not be set for non-init containers"));
        }
    }

    match str_or_empty(spec, "restartPolicy") {
        "" => errs.push(FieldError::required(&path.child("restartPolicy"), "")),
        "Always" | "OnFailure" | "Never" => {}
        other => {
            errs.push(FieldError::not_supported(&path.child("restartPolicy"), other, &["Always", "OnFailure", "Never"]))
        }
    }
    match str_or_empty(spec, "dnsPolicy") {
        "" => errs.push(FieldError::required(&path.child("dnsPolicy"), "")),
        "ClusterFirst" | "ClusterFirstWithHostNet" | "Default" => {}
        "None" => {
            if get(spec, "dnsConfig").is_none() {
                errs.push(FieldError::required(
                    &path.child("dnsConfig"),
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            &path.child("dnsPolicy"),
            other,
            &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        )),
    }
    errs.extend(meta::labels(get(spec, "nodeSelector"), &path.child("nodeSelector")));
    for key in ["hostname", "subdomain"] {
        if let Some(v) = str_of(spec, key).filter(|s| !s.is_empty()) {
            for msg in names::dns1123_label(v) {
                errs.push(FieldError::invalid(&path.child(key), v, &msg));
            }
        }
    }
    for key in ["serviceAccountName", "nodeName"] {
        if let Some(v) = str_of(spec, key).filter(|s| !s.is_empty()) {
            for msg in names::dns1123_subdomain(v) {
                errs.push(FieldError::invalid(&path.child(key), v, &msg));
            }
        }
    }
    if let Some(ads) = int_of(spec, "activeDeadlineSeconds")
        && !(1..=INT32_MAX).contains(&ads)
    {
        errs.push(FieldError::invalid(
            &path.child("activeDeadlineSeconds"),
            ads,
            &names::inclusive_range_error(1, INT32_MAX),
        ));
    }
    tolerations(spec, &path.child("tolerations"), &mut errs);
    errs
}

/// Validates volumes and returns their names, which mounts may refer to.
fn volumes(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (i, v) in arr_of(spec, "volumes").iter().enumerate() {
        let p = path.index(i);
        let name = str_or_empty(v, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else {
            for msg in names::dns1123_label(name) {
                errs.push(FieldError::invalid(&p.child("name"), name, &msg));
            }
            if !seen.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&p.child("name"), name));
            }
        }
        let sources: Vec<&str> = VOLUME_SOURCES.iter().copied().filter(|s| get(v, s).is_some()).collect();
        match sources.as_slice() {
            [] => errs.push(FieldError::required(&p, "must specify a volume type")),
            [_] => {}
            [_, rest @ ..] => {
                for s in rest {
                    errs.push(FieldError::forbidden(&p.child(s), "may not specify more than 1 volume type"));
                }
            }
        }
        let required = [
            ("configMap", "name"),
            ("secret", "secretName"),
            ("persistentVolumeClaim", "claimName"),
            ("hostPath", "path"),
            ("nfs", "server"),
            ("nfs", "path"),
        ];
        for (src, key) in required {
            if let Some(s) = get(v, src)
                && str_or_empty(s, key).is_empty()
            {
                errs.push(FieldError::required(&p.child(src).child(key), ""));
            }
        }
        for src in ["configMap", "secret", "downwardAPI", "projected"] {
            if let Some(mode) = get(v, src).and_then(|s| int_of(s, "defaultMode"))
                && !(0..=0o777).contains(&mode)
            {
                errs.push(FieldError::invalid(
                    &p.child(src).child("defaultMode"),
                    mode,
                    "must be a number between 0 and 0777 (octal), both inclusive",
                ));
            }
        }
    }
    seen
}

fn container(
    c: &Value,
    p: &Path,
    volumes: &HashSet<String>,
    names_seen: &mut HashSet<String>,
    is_pod: bool,
    errs: &mut Vec<FieldError>,
) {
    let name = str_or_empty(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(&p.child("name"), ""));
    } else {
        for msg in names::dns1123_label(name) {
            errs.push(FieldError::invalid(&p.child("name"), name, &msg));
        }
        if !names_seen.insert(name.to_string()) {
            errs.push(FieldError::duplicate(&p.child("name"), name));
        }
    }
    let image = str_or_empty(c, "image");
    if is_pod && image.is_empty() {
        errs.push(FieldError::required(&p.child("image"), ""));
    } else if image != image.trim() {
        errs.push(FieldError::invalid(&p.child("image"), image, "must not have leading or trailing whitespace"));
    }
    match str_or_empty(c, "imagePullPolicy") {
        "" => errs.push(FieldError::required(&p.child("imagePullPolicy"), "")),
        "Always" | "IfNotPresent" | "Never" => {}
        other => errs.push(FieldError::not_supported(
            &p.child("imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    match str_or_empty(c, "terminationMessagePolicy") {
        "" => errs.push(FieldError::required(&p.child("terminationMessagePolicy"), "")),
        "File" | "FallbackToLogsOnError" => {}
        other => errs.push(FieldError::not_supported(
            &p.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    ports(c, &p.child("ports"), errs);
    env(c, &p.child("env"), errs);
    let mut mount_paths = HashSet::new();
    for (i, m) in arr_of(c, "volumeMounts").iter().enumerate() {
        let mp = p.child("volumeMounts").index(i);
        let vname = str_or_empty(m, "name");
        if vname.is_empty() {
            errs.push(FieldError::required(&mp.child("name"), ""));
        } else if !volumes.contains(vname) {
            errs.push(FieldError::not_found(&mp.child("name"), vname));
        }
        let mount_path = str_or_empty(m, "mountPath");
        if mount_path.is_empty() {
            errs.push(FieldError::required(&mp.child("mountPath"), ""));
        } else if !mount_paths.insert(mount_path.to_string()) {
            errs.push(FieldError::invalid(&mp.child("mountPath"), mount_path, "must be unique"));
        }
    }
    resources(c, &p.child("resources"), errs);
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(pr) = get(c, probe) {
            self::probe(pr, &p.child(probe), probe != "readinessProbe", errs);
        }
    }
}

fn ports(c: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let mut names_seen = HashSet::new();
    for (i, port) in arr_of(c, "ports").iter().enumerate() {
        let p = path.index(i);
        if let Some(name) = str_of(port, "name").filter(|s| !s.is_empty()) {
            for msg in names::port_name(name) {
                errs.push(FieldError::invalid(&p.child("name"), name, &msg));
            }
            if !names_seen.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&p.child("name"), name));
            }
        }
        let cp = int_of(port, "containerPort").unwrap_or(0);
        if cp == 0 {
            errs.push(FieldError::required(&p.child("containerPort"), ""));
        } else {
            for msg in names::port_num(cp) {
                errs.push(FieldError::invalid(&p.child("containerPort"), cp, &msg));
            }
        }
        if let Some(hp) = int_of(port, "hostPort").filter(|h| *h != 0) {
            for msg in names::port_num(hp) {
                errs.push(FieldError::invalid(&p.child("hostPort"), hp, &msg));
            }
        }
        protocol(port, &p, errs);
    }
}

pub(crate) fn protocol(port: &Value, p: &Path, errs: &mut Vec<FieldError>) {
    match str_or_empty(port, "protocol") {
        "" => errs.push(FieldError::required(&p.child("protocol"), "")),
        "TCP" | "UDP" | "SCTP" => {}
        other => errs.push(FieldError::not_supported(&p.child("protocol"), other, &["SCTP", "TCP", "UDP"])),
    }
}

fn env(c: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for (i, e) in arr_of(c, "env").iter().enumerate() {
        let p = path.index(i);
        let name = str_or_empty(e, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else {
            for msg in names::env_var_name(name) {
                errs.push(FieldError::invalid(&p.child("name"), name, &msg));
            }
        }
        let Some(vf) = get(e, "valueFrom") else {
            continue;
        };
        let sources = ["fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef"];
        let count = sources.iter().filter(|s| get(vf, s).is_some()).count();
        if !str_or_empty(e, "value").is_empty() {
            errs.push(FieldError::invalid(&p, "", "may not be specified when `value` is not empty"));
        }
        if count == 0 {
            errs.push(FieldError::invalid(
                &p.child("valueFrom"),
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if count > 1 {
            errs.push(FieldError::invalid(
                &p.child("valueFrom"),
                "",
                "may not have more than one field specified at a time",
            ));
        }
        for key_ref in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(r) = get(vf, key_ref)
                && str_or_empty(r, "key").is_empty()
            {
                errs.push(FieldError::required(&p.child("valueFrom").child(key_ref).child("key"), ""));
            }
        }
        if let Some(r) = get(vf, "fieldRef")
            && str_or_empty(r, "fieldPath").is_empty()
        {
            errs.push(FieldError::required(&p.child("valueFrom").child("fieldRef").child("fieldPath"), ""));
        }
    }
}

fn resources(c: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(res) = get(c, "resources") else {
        return;
    };
    let mut parsed = |kind: &str| -> Vec<(String, String, i128)> {
        let mut out = Vec::new();
        for (name, q) in obj_of(res, kind).into_iter().flatten() {
            let p = path.child(kind).key(name);
            let text = match q {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            match parse_nanos(&text) {
                None => errs.push(FieldError::invalid(&p, text.as_str(), QUANTITY_FORMAT)),
                Some(v) if v < 0 => {
                    errs.push(FieldError::invalid(&p, text.as_str(), "must be greater than or equal to 0"))
                }
                Some(v) => out.push((name.clone(), text, v)),
            }
        }
        out
    };
    let limits = parsed("limits");
    let requests = parsed("requests");
    for (name, text, value) in &requests {
        if let Some((_, ltext, lvalue)) = limits.iter().find(|(n, _, _)| n == name)
            && value > lvalue
        {
            errs.push(FieldError::invalid(
                &path.child("requests").key(name),
                text.as_str(),
                &format!("must be less than or equal to {name} limit of {ltext}"),
            ));
        }
    }
}

fn probe(pr: &Value, p: &Path, success_must_be_one: bool, errs: &mut Vec<FieldError>) {
    let handlers: Vec<&str> =
        ["exec", "httpGet", "tcpSocket", "grpc"].into_iter().filter(|h| get(pr, h).is_some()).collect();
    match handlers.as_slice() {
        [] => errs.push(FieldError::required(p, "must specify a handler type")),
        [_] => {}
        [_, rest @ ..] => {
            for h in rest {
                errs.push(FieldError::forbidden(&p.child(h), "may not specify more than 1 handler type"));
            }
        }
    }
    for key in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"] {
        if let Some(v) = int_of(pr, key).filter(|v| *v < 0) {
            errs.push(FieldError::invalid(&p.child(key), v, "must be greater than or equal to 0"));
        }
    }
    if success_must_be_one && let Some(v) = int_of(pr, "successThreshold").filter(|v| *v != 1) {
        errs.push(FieldError::invalid(&p.child("successThreshold"), v, "must be 1"));
    }
    for h in ["httpGet", "tcpSocket"] {
        if let Some(port) = at(pr, &[h, "port"]) {
            port_or_name(port, &p.child(h).child("port"), errs);
        } else if get(pr, h).is_some() {
            errs.push(FieldError::required(&p.child(h).child("port"), ""));
        }
    }
}

/// An IntOrString port: a number in range or an IANA port name.
pub(crate) fn port_or_name(port: &Value, p: &Path, errs: &mut Vec<FieldError>) {
    match port {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            for msg in names::port_num(n) {
                errs.push(FieldError::invalid(p, n, &msg));
            }
        }
        Value::String(s) => {
            for msg in names::port_name(s) {
                errs.push(FieldError::invalid(p, s.as_str(), &msg));
            }
        }
        _ => {}
    }
}

fn tolerations(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for (i, t) in arr_of(spec, "tolerations").iter().enumerate() {
        let p = path.index(i);
        let key = str_or_empty(t, "key");
        if !key.is_empty() {
            for msg in names::qualified_name(key) {
                errs.push(FieldError::invalid(&p.child("key"), key, &msg));
            }
        }
        match str_or_empty(t, "operator") {
            "" | "Equal" => {
                if key.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        str_or_empty(t, "operator"),
                        "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                    ));
                }
            }
            "Exists" => {
                let value = str_or_empty(t, "value");
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(&p.child("operator"), other, &["Equal", "Exists"])),
        }
        match str_or_empty(t, "effect") {
            "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => errs.push(FieldError::not_supported(
                &p.child("effect"),
                other,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
    }
}

/// A pod template (`spec.template` of a workload): its metadata's labels/annotations and
/// its pod spec.
pub(crate) fn pod_template(template: Option<&Value>, path: &Path) -> Vec<FieldError> {
    let Some(t) = template else {
        return vec![FieldError::required(path, "")];
    };
    let mut errs = Vec::new();
    if let Some(m) = get(t, "metadata") {
        errs.extend(meta::labels_and_annotations(m, &path.child("metadata")));
    }
    let empty = Value::Null;
    errs.extend(pod_spec(get(t, "spec").unwrap_or(&empty), &path.child("spec"), false));
    errs
}

const POD_UPDATE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`: beyond images, the active deadline, added tolerations and a
/// negative grace period raised to 1, a pod's spec is immutable.
pub(crate) fn pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec_path = Path::new("spec");
    let empty = Value::Null;
    let new_spec = without_nulls(get(new, "spec").unwrap_or(&empty));
    let old_spec = without_nulls(get(old, "spec").unwrap_or(&empty));

    let ads = spec_path.child("activeDeadlineSeconds");
    match (int_of(&new_spec, "activeDeadlineSeconds"), int_of(&old_spec, "activeDeadlineSeconds")) {
        (Some(n), _) if !(0..=INT32_MAX).contains(&n) => {
            errs.push(FieldError::invalid(&ads, n, &names::inclusive_range_error(0, INT32_MAX)));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(&ads, n, "must be less than or equal to previous value"));
            return errs;
        }
        (None, Some(_)) => {
            errs.push(FieldError::invalid(&ads, Value::Null, "must not update from a positive integer to nil value"));
        }
        _ => {}
    }

    // Copy every field allowed to change from the old spec into the new one; what is left
    // must equal the old spec.
    let mut munged = new_spec.clone();
    if let (Some(m), Some(o)) = (munged.as_object_mut(), old_spec.as_object()) {
        for key in ["containers", "initContainers"] {
            let old_list = o.get(key).and_then(Value::as_array);
            if let (Some(Value::Array(new_list)), Some(old_list)) = (m.get_mut(key), old_list)
                && new_list.len() == old_list.len()
            {
                for (n, o) in new_list.iter_mut().zip(old_list) {
                    if let (Some(n), Some(img)) = (n.as_object_mut(), o.get("image")) {
                        n.insert("image".into(), img.clone());
                    }
                }
            }
        }
        let copy = |m: &mut serde_json::Map<String, Value>, key: &str| match o.get(key) {
            Some(v) => {
                m.insert(key.to_string(), v.clone());
            }
            None => {
                m.remove(key);
            }
        };
        copy(m, "activeDeadlineSeconds");
        let old_tol = arr_of(&old_spec, "tolerations");
        if old_tol.iter().all(|t| arr_of(&new_spec, "tolerations").contains(t)) {
            copy(m, "tolerations");
        }
        let old_grace = int_of(&old_spec, "terminationGracePeriodSeconds");
        if old_grace.is_some_and(|g| g < 0) && int_of(&new_spec, "terminationGracePeriodSeconds") == Some(1) {
            copy(m, "terminationGracePeriodSeconds");
        }
    }
    if munged != old_spec {
        let mut diff = Vec::new();
        json_diff(&old_spec, &munged, "spec", &mut diff);
        let detail = format!("pod updates may not change fields other than {POD_UPDATE_FIELDS}\n{}", diff.join("\n"));
        errs.push(FieldError::forbidden(&spec_path, &detail));
    }
    errs
}

/// A short diff: one line per changed leaf, `-` old and `+` new.
fn json_diff(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    if out.len() >= 20 || old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, av) in a {
                json_diff(av, b.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"), out);
            }
            for (k, bv) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                json_diff(&Value::Null, bv, &format!("{path}.{k}"), out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                json_diff(av, bv, &format!("{path}[{i}]"), out);
            }
        }
        _ => out.push(format!("  {path}: - {old} + {new}")),
    }
}

/// `ValidatePodTemplateSpecForReplicaSet`-style checks for controllers whose pods must
/// restart forever: selector match, `restartPolicy: Always`, no active deadline.
pub(crate) fn controller_template(spec: &Value, path: &Path, owner: &str, errs: &mut Vec<FieldError>) {
    let template = get(spec, "template");
    let tpath = path.child("template");
    if let (Some(sel), Some(t)) = (get(spec, "selector"), template) {
        let labels = at(t, &["metadata", "labels"]);
        if !meta::selector_is_empty(sel) && !meta::selector_matches(sel, labels) {
            errs.push(FieldError::invalid(
                &tpath.child("metadata").child("labels"),
                labels.cloned().unwrap_or(Value::Null),
                "`selector` does not match template `labels`",
            ));
        }
    }
    errs.extend(pod_template(template, &tpath));
    if let Some(t) = template {
        let rp = at(t, &["spec", "restartPolicy"]).and_then(Value::as_str).unwrap_or("");
        if !rp.is_empty() && rp != "Always" {
            errs.push(FieldError::not_supported(&tpath.child("spec").child("restartPolicy"), rp, &["Always"]));
        }
        if at(t, &["spec", "activeDeadlineSeconds"]).is_some() {
            errs.push(FieldError::forbidden(
                &tpath.child("spec").child("activeDeadlineSeconds"),
                &format!("activeDeadlineSeconds in {owner} is not Supported"),
            ));
        }
    }
}

/// Selector immutability shared by the apps/v1 workloads.
pub(crate) fn selector_immutable(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    check_immutable(
        at(new, &["spec", "selector"]),
        at(old, &["spec", "selector"]),
        &Path::new("spec").child("selector"),
        errs,
    );
}
