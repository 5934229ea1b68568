//! `metadata`, labels, annotations and label selectors.

use serde_json::Value;

use crate::field::{FieldError, Path};
use crate::json::{arr_of, get, int_of, obj_of, str_of, str_or_empty};
use crate::names;

/// Total bytes of all annotation keys and values upstream allows.
const ANNOTATIONS_MAX: usize = 256 * 1024;

/// Which syntax rule a kind's `metadata.name` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    PathSegment,
}

impl NameRule {
    pub(crate) fn check(self, name: &str) -> Vec<String> {
        match self {
            NameRule::Subdomain => names::dns1123_subdomain(name),
            NameRule::Label => names::dns1123_label(name),
            NameRule::Dns1035 => names::dns1035_label(name),
            NameRule::PathSegment => names::path_segment_name(name),
        }
    }

    /// `generateName` is checked as a prefix: a trailing dash is fine there.
    fn check_prefix(self, prefix: &str) -> Vec<String> {
        let trimmed = if self == NameRule::PathSegment { prefix } else { prefix.strip_suffix('-').unwrap_or(prefix) };
        if trimmed.is_empty() { Vec::new() } else { self.check(trimmed) }
    }
}

/// `ValidateObjectMeta`: name (or generateName), namespace, labels, annotations,
/// finalizers and owner references.
pub(crate) fn object_meta(obj: &Value, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let path = Path::new("metadata");
    let empty = Value::Null;
    let meta = get(obj, "metadata").unwrap_or(&empty);
    if let Some(gen_name) = str_of(meta, "generateName").filter(|s| !s.is_empty()) {
        for msg in rule.check_prefix(gen_name) {
            errs.push(FieldError::invalid(&path.child("generateName"), gen_name, &msg));
        }
    }
    let name = str_or_empty(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required(&path.child("name"), "name or generateName is required"));
    } else {
        for msg in rule.check(name) {
            errs.push(FieldError::invalid(&path.child("name"), name, &msg));
        }
    }
    let namespace = str_or_empty(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(&path.child("namespace"), ""));
        } else {
            for msg in names::dns1123_label(namespace) {
                errs.push(FieldError::invalid(&path.child("namespace"), namespace, &msg));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(&path.child("namespace"), "not allowed on this type"));
    }
    if let Some(generation) = int_of(meta, "generation").filter(|g| *g < 0) {
        errs.push(FieldError::invalid(&path.child("generation"), generation, "must be greater than or equal to 0"));
    }
    errs.extend(labels_and_annotations(meta, &path));
    for f in arr_of(meta, "finalizers") {
        let f = f.as_str().unwrap_or("");
        for msg in names::qualified_name(f) {
            errs.push(FieldError::invalid(&path.child("finalizers"), f, &msg));
        }
    }
    let owners = path.child("ownerReferences");
    for o in arr_of(meta, "ownerReferences") {
        let api_version = str_or_empty(o, "apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(&owners.child("apiVersion"), api_version, "version must not be empty"));
        }
        for (key, what) in [("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            let v = str_or_empty(o, key);
            if v.is_empty() {
                errs.push(FieldError::invalid(&owners.child(key), v, &format!("{what} must not be empty")));
            }
        }
    }
    // Upstream's message lists the controllers as `Kind/name` in a Go slice.
    let controllers: Vec<String> = arr_of(meta, "ownerReferences")
        .iter()
        .filter(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|o| format!("{}/{}", str_or_empty(o, "kind"), str_or_empty(o, "name")))
        .collect();
    if controllers.len() > 1 {
        errs.push(FieldError::invalid(
            &owners,
            Value::Array(arr_of(meta, "ownerReferences").to_vec()),
            &format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
    errs
}

/// Labels and annotations of an object or pod template metadata.
pub(crate) fn labels_and_annotations(meta: &Value, path: &Path) -> Vec<FieldError> {
    let mut errs = labels(get(meta, "labels"), &path.child("labels"));
    let ann_path = path.child("annotations");
    if let Some(ann) = obj_of(meta, "annotations") {
        let mut total = 0;
        for (k, v) in ann {
            for msg in names::qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid(&ann_path, k.as_str(), &msg));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > ANNOTATIONS_MAX {
            errs.push(FieldError::too_long(&ann_path, ANNOTATIONS_MAX));
        }
    }
    errs
}

/// A label map (object labels, node selectors, `matchLabels`).
pub(crate) fn labels(labels: Option<&Value>, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(map) = labels.and_then(Value::as_object) else {
        return errs;
    };
    for (k, v) in map {
        for msg in names::qualified_name(k) {
            errs.push(FieldError::invalid(path, k.as_str(), &msg));
        }
        let v = v.as_str().unwrap_or("");
        for msg in names::label_value(v) {
            errs.push(FieldError::invalid(path, v, &msg));
        }
    }
    errs
}

/// `ValidateObjectMetaUpdate`: identity fields may not change.
pub(crate) fn object_meta_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let path = Path::new("metadata");
    let empty = Value::Null;
    let new_meta = get(new, "metadata").unwrap_or(&empty);
    let old_meta = get(old, "metadata").unwrap_or(&empty);
    for key in ["name", "namespace", "uid", "creationTimestamp"] {
        // An update that leaves the field out means "keep it"; the apiserver fills it in.
        let (n, o) = (get(new_meta, key), get(old_meta, key));
        if n.is_some() && n != o {
            errs.push(immutable(&path.child(key), n));
        }
    }
    if let (Some(n), Some(o)) = (int_of(new_meta, "generation"), int_of(old_meta, "generation"))
        && n < o
    {
        errs.push(FieldError::invalid(&path.child("generation"), n, "must not be decremented"));
    }
    if get(old_meta, "deletionTimestamp").is_some() {
        let old_f = arr_of(old_meta, "finalizers");
        let extra: Vec<String> = arr_of(new_meta, "finalizers")
            .iter()
            .filter(|f| !old_f.contains(f))
            .filter_map(|f| f.as_str().map(|s| format!("{s:?}")))
            .collect();
        if !extra.is_empty() {
            errs.push(FieldError::forbidden(
                &path.child("finalizers"),
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    extra.join(", ")
                ),
            ));
        }
    }
    errs
}

/// Upstream's `ValidateImmutableField` error.
pub(crate) fn immutable(path: &Path, new: Option<&Value>) -> FieldError {
    FieldError::invalid(path, new.cloned().unwrap_or(Value::Null), "field is immutable")
}

/// Compares one field of two objects and reports it as immutable when it changed.
pub(crate) fn check_immutable(new: Option<&Value>, old: Option<&Value>, path: &Path, errs: &mut Vec<FieldError>) {
    let norm = |v: Option<&Value>| v.map(crate::json::without_nulls);
    if norm(new) != norm(old) {
        errs.push(immutable(path, new));
    }
}

/// `ValidateLabelSelector` for `metav1.LabelSelector`.
pub(crate) fn label_selector(sel: &Value, path: &Path) -> Vec<FieldError> {
    let mut errs = labels(get(sel, "matchLabels"), &path.child("matchLabels"));
    for (i, req) in arr_of(sel, "matchExpressions").iter().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let op = str_or_empty(req, "operator");
        let values = arr_of(req, "values");
        match op {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            _ => errs.push(FieldError::invalid(&p.child("operator"), op, "not a valid selector operator")),
        }
        let key = str_or_empty(req, "key");
        for msg in names::qualified_name(key) {
            errs.push(FieldError::invalid(&p.child("key"), key, &msg));
        }
    }
    errs
}

/// Whether a selector is empty (selects everything).
pub(crate) fn selector_is_empty(sel: &Value) -> bool {
    obj_of(sel, "matchLabels").is_none_or(|m| m.is_empty()) && arr_of(sel, "matchExpressions").is_empty()
}

/// Whether `labels` satisfy `sel`.
pub(crate) fn selector_matches(sel: &Value, labels: Option<&Value>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let match_labels_ok = obj_of(sel, "matchLabels")
        .is_none_or(|m| m.iter().all(|(k, v)| label(k).is_some_and(|l| Some(l) == v.as_str())));
    match_labels_ok
        && arr_of(sel, "matchExpressions").iter().all(|req| {
            let key = str_or_empty(req, "key");
            let values: Vec<&str> = arr_of(req, "values").iter().filter_map(Value::as_str).collect();
            match str_or_empty(req, "operator") {
                "In" => label(key).is_some_and(|l| values.contains(&l)),
                "NotIn" => label(key).is_none_or(|l| !values.contains(&l)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selector_matching() {
        let sel = json!({"matchLabels": {"app": "a"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]});
        assert!(selector_matches(&sel, Some(&json!({"app": "a", "tier": "web"}))));
        assert!(!selector_matches(&sel, Some(&json!({"app": "a"}))));
        assert!(!selector_matches(&sel, None));
        assert!(selector_is_empty(&json!({})));
    }
}
