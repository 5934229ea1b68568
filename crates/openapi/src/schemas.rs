//! Every definition rkube's OpenAPI documents can reference, in OpenAPI v3 form.
//!
//! The schemas come from `k8s-openapi` through schemars (whose names already are
//! upstream's, e.g. `io.k8s.api.core.v1.PodSpec`); this module adds what upstream's
//! generator adds and `k8s-openapi` does not: the `<Kind>List` definitions, the
//! `x-kubernetes-group-version-kind` extension, the patch/list markers (see
//! [`crate::markers`]) and upstream's v3 shapes for `IntOrString` and `Quantity`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::{
    authentication::v1 as authentication, autoscaling::v1 as autoscaling, core::v1 as core, policy::v1 as policy,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::version::Info;
use rkube_registry::{Gvk, RESOURCES};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// Prefix of every v3 reference.
pub const V3_REF_PREFIX: &str = "#/components/schemas/";

pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";
pub const API_GROUP: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup";
pub const API_GROUP_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList";
pub const API_VERSIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions";
pub const VERSION_INFO: &str = "io.k8s.apimachinery.pkg.version.Info";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// Kinds that are only sent to or returned from subresources, so the registry has no
/// entry for them: (group, version, kind, definition name).
const SUBRESOURCE_KINDS: &[(&str, &str, &str, &str)] = &[
    ("autoscaling", "v1", "Scale", "io.k8s.api.autoscaling.v1.Scale"),
    ("", "v1", "Binding", "io.k8s.api.core.v1.Binding"),
    ("policy", "v1", "Eviction", "io.k8s.api.policy.v1.Eviction"),
    ("authentication.k8s.io", "v1", "TokenRequest", "io.k8s.api.authentication.v1.TokenRequest"),
];

/// The definition name of a kind served directly or through a subresource. `None` for
/// the option kinds of connect subresources (`PodExecOptions`), which upstream also
/// leaves out of its documents since they travel as query parameters.
pub fn definition_of(gvk: &Gvk) -> Option<String> {
    if let Some(r) = rkube_registry::lookup_kind(gvk.group, gvk.version, gvk.kind) {
        return Some(r.openapi_name.to_string());
    }
    SUBRESOURCE_KINDS
        .iter()
        .find(|(g, v, k, _)| (*g, *v, *k) == (gvk.group, gvk.version, gvk.kind))
        .map(|(_, _, _, name)| (*name).to_string())
}

/// The `<Kind>List` definition name for a kind's definition name.
pub fn list_definition(openapi_name: &str) -> String {
    format!("{openapi_name}List")
}

/// Generates all definitions with every extension in place.
pub fn generate() -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    for r in RESOURCES {
        r.typed.json_schema(&mut generator);
    }
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::WatchEvent<()>>();
    generator.subschema_for::<meta::Patch>();
    generator.subschema_for::<meta::ListMeta>();
    generator.subschema_for::<meta::APIResourceList>();
    generator.subschema_for::<meta::APIGroup>();
    generator.subschema_for::<meta::APIGroupList>();
    generator.subschema_for::<meta::APIVersions>();
    generator.subschema_for::<Info>();
    generator.subschema_for::<autoscaling::Scale>();
    generator.subschema_for::<core::Binding>();
    generator.subschema_for::<policy::Eviction>();
    generator.subschema_for::<authentication::TokenRequest>();
    let mut defs = generator.take_definitions(true);

    add_list_definitions(&mut defs);
    drop_required_metadata(&mut defs);
    upstream_scalar_shapes(&mut defs);
    add_gvk_extensions(&mut defs);
    crate::markers::apply(&mut defs);

    // Sorted like upstream's documents, so every rendering is byte-stable.
    let sorted: BTreeMap<String, Value> = defs.into_iter().collect();
    sorted.into_iter().collect()
}

fn add_list_definitions(defs: &mut Map<String, Value>) {
    for r in RESOURCES {
        let name = list_definition(r.openapi_name);
        let list = json!({
            "description": format!("{}List is a list of {} objects.", r.kind, r.kind),
            "type": "object",
            "properties": {
                "apiVersion": {
                    "description": "The versioned schema of this representation of an object; servers convert recognized schemas to their latest internal value and may reject unrecognized values.",
                    "type": "string",
                },
                "items": {
                    "description": format!("The {} in this list.", r.plural),
                    "type": "array",
                    "items": { "$ref": format!("{V3_REF_PREFIX}{}", r.openapi_name) },
                },
                "kind": {
                    "description": "The REST resource this object represents, in CamelCase.",
                    "type": "string",
                },
                "metadata": {
                    "description": "Standard list metadata.",
                    "allOf": [{ "$ref": format!("{V3_REF_PREFIX}{LIST_META}") }],
                },
            },
            "required": ["items"],
        });
        defs.insert(name, list);
    }
}

/// `k8s-openapi` makes `metadata` required because its structs hold a non-optional
/// `ObjectMeta`; upstream requires it only on core/v1 `Event`, and `kubectl explain`
/// prints what `required` says.
fn drop_required_metadata(defs: &mut Map<String, Value>) {
    for (name, def) in defs.iter_mut() {
        if name == "io.k8s.api.core.v1.Event" {
            continue;
        }
        let Some(obj) = def.as_object_mut() else { continue };
        let Some(Value::Array(required)) = obj.get_mut("required") else { continue };
        required.retain(|f| f != "metadata");
        if required.is_empty() {
            obj.remove("required");
        }
    }
}

/// Upstream's v3 documents describe `IntOrString` and `Quantity` with `oneOf`, which is
/// what OpenAPI v3 clients (and `kubectl explain`'s type column) expect.
fn upstream_scalar_shapes(defs: &mut Map<String, Value>) {
    let shapes = [
        (INT_OR_STRING, json!({"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]})),
        (QUANTITY, json!({"oneOf": [{"type": "string"}, {"type": "number"}]})),
    ];
    for (name, shape) in shapes {
        let Some(obj) = defs.get_mut(name).and_then(Value::as_object_mut) else { continue };
        obj.remove("x-kubernetes-int-or-string");
        if let Value::Object(shape) = shape {
            obj.extend(shape);
        }
    }
}

fn gvk_value(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

fn add_gvk_extensions(defs: &mut Map<String, Value>) {
    let mut tagged: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in RESOURCES {
        tagged.entry(r.openapi_name.to_string()).or_default().push(gvk_value(r.group, r.version, r.kind));
        tagged.entry(list_definition(r.openapi_name)).or_default().push(gvk_value(r.group, r.version, &r.list_kind()));
    }
    for (g, v, k, name) in SUBRESOURCE_KINDS {
        tagged.entry((*name).to_string()).or_default().push(gvk_value(g, v, k));
    }
    tagged.entry(STATUS.to_string()).or_default().push(gvk_value("", "v1", "Status"));
    // Upstream registers DeleteOptions and WatchEvent in every group-version it serves.
    let group_versions: BTreeSet<(&str, &str)> = RESOURCES.iter().map(|r| (r.group, r.version)).collect();
    for kind_def in [(DELETE_OPTIONS, "DeleteOptions"), (WATCH_EVENT, "WatchEvent")] {
        let entry = tagged.entry(kind_def.0.to_string()).or_default();
        for (g, v) in &group_versions {
            entry.push(gvk_value(g, v, kind_def.1));
        }
    }
    for (name, gvks) in tagged {
        if let Some(obj) = defs.get_mut(&name).and_then(Value::as_object_mut) {
            obj.insert("x-kubernetes-group-version-kind".to_string(), Value::Array(gvks));
        }
    }
}

/// Calls `f` with every `$ref` string inside `value`.
pub fn for_each_ref(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::Object(obj) => {
            for (k, v) in obj {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => f(r),
                    _ => for_each_ref(v, f),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| for_each_ref(v, f)),
        _ => {}
    }
}

/// The names of `roots` and of every definition they reach through `$ref`s, sorted.
/// Names missing from `defs` are kept, so a dangling reference shows up in tests.
pub fn closure(defs: &Map<String, Value>, roots: &Value) -> BTreeSet<String> {
    fn push(r: &str, seen: &mut BTreeSet<String>, queue: &mut Vec<String>) {
        if let Some(name) = r.strip_prefix(V3_REF_PREFIX)
            && seen.insert(name.to_string())
        {
            queue.push(name.to_string());
        }
    }
    let mut seen = BTreeSet::new();
    let mut queue = Vec::new();
    for_each_ref(roots, &mut |r| push(r, &mut seen, &mut queue));
    while let Some(name) = queue.pop() {
        if let Some(def) = defs.get(&name) {
            for_each_ref(def, &mut |r| push(r, &mut seen, &mut queue));
        }
    }
    seen
}

/// A definition name as a v3 `$ref`.
pub fn v3_ref(name: &str) -> Value {
    json!({ "$ref": format!("{V3_REF_PREFIX}{name}") })
}
