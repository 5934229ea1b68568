//! Strategic-merge-patch and list/map markers that `k8s-openapi`'s schemas lack.
//!
//! kubectl computes client-side `apply`/`edit` patches from the `x-kubernetes-patch-*`
//! extensions of the served OpenAPI, and server-side apply and our own patch engine need
//! the `x-kubernetes-list-*` ones. `k8s-openapi` generates its schemas without them, so
//! the facts live in [`table`] and [`apply`] writes them into the generated definitions.

use serde_json::{Map, Value};

mod table;
pub use table::{FIELD_MARKERS, TYPE_MARKERS};

/// The OpenAPI extensions of one field of one definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMarkers {
    /// Upstream definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    /// JSON field name, e.g. `containers`.
    pub field: &'static str,
    /// `x-kubernetes-patch-strategy`: `merge`, `retainKeys` or `merge,retainKeys`.
    pub patch_strategy: Option<&'static str>,
    /// `x-kubernetes-patch-merge-key`.
    pub patch_merge_key: Option<&'static str>,
    /// `x-kubernetes-list-type`: `atomic`, `set` or `map`.
    pub list_type: Option<&'static str>,
    /// `x-kubernetes-list-map-keys`, only for `list_type == Some("map")`.
    pub list_map_keys: &'static [&'static str],
    /// `x-kubernetes-map-type` on a map or struct field: `atomic` or `granular`.
    pub map_type: Option<&'static str>,
}

impl FieldMarkers {
    /// The extensions as (key, value) pairs, in upstream's key order.
    pub fn extensions(&self) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        if !self.list_map_keys.is_empty() {
            let keys = self.list_map_keys.iter().map(|k| Value::from(*k)).collect();
            out.push(("x-kubernetes-list-map-keys", Value::Array(keys)));
        }
        if let Some(t) = self.list_type {
            out.push(("x-kubernetes-list-type", Value::from(t)));
        }
        if let Some(t) = self.map_type {
            out.push(("x-kubernetes-map-type", Value::from(t)));
        }
        if let Some(k) = self.patch_merge_key {
            out.push(("x-kubernetes-patch-merge-key", Value::from(k)));
        }
        if let Some(s) = self.patch_strategy {
            out.push(("x-kubernetes-patch-strategy", Value::from(s)));
        }
        out
    }
}

/// A marker on a whole definition (`+structType=atomic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeMarkers {
    pub definition: &'static str,
    /// `x-kubernetes-map-type` of the definition.
    pub map_type: &'static str,
}

/// Markers for one field, if upstream has any.
pub fn lookup(definition: &str, field: &str) -> Option<&'static FieldMarkers> {
    FIELD_MARKERS
        .binary_search_by(|m| (m.definition, m.field).cmp(&(definition, field)))
        .ok()
        .and_then(|i| FIELD_MARKERS.get(i))
}

/// Writes every known marker into `definitions` (v3 form, keyed by upstream name).
/// Returns how many field markers found their field; rows whose definition or field is
/// absent are skipped, since the table covers more types than the served kinds reach.
pub fn apply(definitions: &mut Map<String, Value>) -> usize {
    let mut applied = 0;
    for m in FIELD_MARKERS {
        let Some(prop) = definitions
            .get_mut(m.definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(m.field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (k, v) in m.extensions() {
            prop.insert(k.to_string(), v);
        }
        applied += 1;
    }
    for t in TYPE_MARKERS {
        if let Some(def) = definitions.get_mut(t.definition).and_then(Value::as_object_mut) {
            def.insert("x-kubernetes-map-type".to_string(), Value::from(t.map_type));
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique_so_lookup_can_bisect() {
        for w in FIELD_MARKERS.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            assert!((a.definition, a.field) < (b.definition, b.field), "{a:?} !< {b:?}");
        }
    }

    #[test]
    fn map_lists_name_their_keys() {
        for m in FIELD_MARKERS {
            if m.list_type == Some("map") {
                assert!(!m.list_map_keys.is_empty(), "{}.{} has no map keys", m.definition, m.field);
            } else {
                assert!(m.list_map_keys.is_empty(), "{}.{} has stray map keys", m.definition, m.field);
            }
        }
    }

    #[test]
    fn well_known_upstream_markers() {
        // (definition, field, patch strategy, merge key, list type, map keys)
        type Row = (
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            &'static [&'static str],
        );
        let cases: &[Row] = &[
            ("io.k8s.api.core.v1.PodSpec", "containers", Some("merge"), Some("name"), Some("map"), &["name"]),
            ("io.k8s.api.core.v1.PodSpec", "initContainers", Some("merge"), Some("name"), Some("map"), &["name"]),
            ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", Some("merge"), Some("name"), Some("map"), &["name"]),
            ("io.k8s.api.core.v1.PodSpec", "volumes", Some("merge,retainKeys"), Some("name"), Some("map"), &["name"]),
            ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", Some("merge"), Some("name"), Some("map"), &["name"]),
            ("io.k8s.api.core.v1.PodSpec", "hostAliases", Some("merge"), Some("ip"), Some("map"), &["ip"]),
            ("io.k8s.api.core.v1.PodSpec", "tolerations", None, None, Some("atomic"), &[]),
            ("io.k8s.api.core.v1.Container", "env", Some("merge"), Some("name"), Some("map"), &["name"]),
            (
                "io.k8s.api.core.v1.Container",
                "ports",
                Some("merge"),
                Some("containerPort"),
                Some("map"),
                &["containerPort", "protocol"],
            ),
            (
                "io.k8s.api.core.v1.Container",
                "volumeMounts",
                Some("merge"),
                Some("mountPath"),
                Some("map"),
                &["mountPath"],
            ),
            (
                "io.k8s.api.core.v1.Container",
                "volumeDevices",
                Some("merge"),
                Some("devicePath"),
                Some("map"),
                &["devicePath"],
            ),
            ("io.k8s.api.core.v1.EphemeralContainer", "env", Some("merge"), Some("name"), Some("map"), &["name"]),
            (
                "io.k8s.api.core.v1.ServiceSpec",
                "ports",
                Some("merge"),
                Some("port"),
                Some("map"),
                &["port", "protocol"],
            ),
            ("io.k8s.api.core.v1.NodeSpec", "taints", None, None, Some("atomic"), &[]),
            ("io.k8s.api.core.v1.NodeStatus", "addresses", Some("merge"), Some("type"), Some("map"), &["type"]),
            ("io.k8s.api.core.v1.NodeStatus", "conditions", Some("merge"), Some("type"), Some("map"), &["type"]),
            ("io.k8s.api.core.v1.PodStatus", "conditions", Some("merge"), Some("type"), Some("map"), &["type"]),
            ("io.k8s.api.core.v1.EndpointSubset", "addresses", None, None, Some("atomic"), &[]),
            ("io.k8s.api.apps.v1.DeploymentSpec", "strategy", Some("retainKeys"), None, None, &[]),
            ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", Some("merge"), Some("type"), Some("map"), &["type"]),
            ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", Some("merge"), None, Some("set"), &[]),
            (
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                "ownerReferences",
                Some("merge"),
                Some("uid"),
                Some("map"),
                &["uid"],
            ),
            ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "managedFields", None, None, Some("atomic"), &[]),
        ];
        for &(def, field, strategy, key, list_type, keys) in cases {
            let m = lookup(def, field).unwrap_or_else(|| panic!("no markers for {def}.{field}"));
            assert_eq!(m.patch_strategy, strategy, "{def}.{field} strategy");
            assert_eq!(m.patch_merge_key, key, "{def}.{field} merge key");
            assert_eq!(m.list_type, list_type, "{def}.{field} list type");
            assert_eq!(m.list_map_keys, keys, "{def}.{field} map keys");
        }
        assert!(lookup("io.k8s.api.core.v1.PodSpec", "nodeName").is_none());
    }

    #[test]
    fn atomic_structs_are_marked() {
        for def in [
            "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
            "io.k8s.api.core.v1.LocalObjectReference",
            "io.k8s.api.core.v1.ObjectReference",
        ] {
            assert!(TYPE_MARKERS.iter().any(|t| t.definition == def && t.map_type == "atomic"), "{def} not atomic");
        }
    }
}
