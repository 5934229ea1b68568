//! Type information for patching, read from upstream-shaped OpenAPI v3 schemas.
//!
//! Both strategic merge patch and server-side apply need to know, for a field, whether it
//! is a struct, a string map or a list, and how a list merges. Upstream reads that from
//! Go struct tags or from the OpenAPI extensions; we read the extensions only.

use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::apply::CreatedFieldsMemo;

static EMPTY_DEFINITIONS: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);

/// Bound on `$ref` chains, so a self-referencing schema cannot loop forever.
const MAX_REF_DEPTH: usize = 32;

/// The `components.schemas` map of an OpenAPI v3 document, keyed by definition name
/// (`io.k8s.api.core.v1.PodSpec`, …).
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a> {
    definitions: &'a Map<String, Value>,
    created: Option<&'a CreatedFieldsMemo>,
}

impl<'a> Schema<'a> {
    /// Wraps a definition map as produced by `rkube-openapi`.
    pub fn new(definitions: &'a Map<String, Value>) -> Self {
        Self { definitions, created: None }
    }

    /// A schema that knows no type: every patch falls back to JSON-merge behaviour and
    /// every list is atomic.
    pub fn empty() -> Schema<'static> {
        Schema { definitions: &EMPTY_DEFINITIONS, created: None }
    }

    /// This schema, with creates' managed fields remembered by shape in `memo`. The memo
    /// holds sets this schema computed, so it must always come with the same definitions.
    pub fn remembering_creates(self, memo: &'a CreatedFieldsMemo) -> Self {
        Self { created: Some(memo), ..self }
    }

    pub(crate) fn created_fields_memo(&self) -> Option<&'a CreatedFieldsMemo> {
        self.created
    }

    /// The node for a top-level definition; an unknown name gives an untyped node.
    pub(crate) fn root(&self, name: &str) -> Node<'a> {
        Node::new(self.definitions.get(name), self.definitions)
    }
}

/// How server-side apply treats a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// Replaced as a whole.
    Atomic,
    /// Scalars merged as a set (`v:` path elements).
    Set,
    /// Objects merged by the listed key fields (`k:` path elements).
    Map(Vec<String>),
}

/// A position in the schema: the raw property schema (which carries the list
/// extensions) plus the definition map used to resolve `$ref`s. `raw == None` means the
/// type is unknown.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    raw: Option<&'a Value>,
    /// `raw` with `$ref`s and `allOf` wrappers followed, resolved once when the node is
    /// made: a walk asks a node for its shape and its fields several times, and each
    /// resolution is several map lookups.
    body: Option<&'a Value>,
    definitions: &'a Map<String, Value>,
}

impl<'a> Node<'a> {
    fn new(raw: Option<&'a Value>, definitions: &'a Map<String, Value>) -> Node<'a> {
        Node { raw, body: raw.and_then(|raw| resolve(raw, definitions)), definitions }
    }

    fn with(&self, raw: Option<&'a Value>) -> Node<'a> {
        Node::new(raw, self.definitions)
    }

    fn body(&self) -> Option<&'a Value> {
        self.body
    }

    /// An extension read from the property itself first, then from the definition it
    /// refers to (upstream puts `x-kubernetes-map-type` on definitions such as
    /// LabelSelector, and list extensions on properties).
    fn extension(&self, key: &str) -> Option<&'a Value> {
        let raw = self.raw?;
        raw.get(key).or_else(|| self.body().and_then(|b| b.get(key)))
    }

    #[cfg(test)]
    pub(crate) fn is_known(&self) -> bool {
        self.body().is_some()
    }

    /// The schema of field `name` of a struct, or of any value of a string map.
    pub(crate) fn field(&self, name: &str) -> Node<'a> {
        let Some(body) = self.body() else {
            return self.with(None);
        };
        if let Some(prop) = body.get("properties").and_then(|p| p.get(name)) {
            return self.with(Some(prop));
        }
        match body.get("additionalProperties") {
            Some(additional) if additional.is_object() => self.with(Some(additional)),
            _ => self.with(None),
        }
    }

    /// The schema of the items of a list.
    pub(crate) fn items(&self) -> Node<'a> {
        self.with(self.body().and_then(|b| b.get("items")))
    }

    /// `x-kubernetes-patch-strategy`, split on commas (`merge,retainKeys`).
    pub(crate) fn patch_strategies(&self) -> Vec<&'a str> {
        self.extension("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .map(|s| s.split(',').map(str::trim).collect())
            .unwrap_or_default()
    }

    /// The effective strategic-merge strategy once `retainKeys` is set aside: `merge`,
    /// `replace` or empty (upstream's extractRetainKeysPatchStrategy).
    pub(crate) fn patch_strategy(&self) -> &'a str {
        self.patch_strategies().into_iter().find(|s| *s != "retainKeys").unwrap_or("")
    }

    pub(crate) fn patch_merge_key(&self) -> Option<&'a str> {
        self.extension("x-kubernetes-patch-merge-key").and_then(Value::as_str)
    }

    /// True when the type is a struct (has declared properties) rather than a map.
    pub(crate) fn is_struct(&self) -> bool {
        self.body().is_some_and(|b| b.get("properties").is_some_and(Value::is_object))
    }

    /// True when the type is a string-keyed map (`additionalProperties`).
    pub(crate) fn is_map(&self) -> bool {
        self.body().is_some_and(|b| b.get("additionalProperties").is_some_and(Value::is_object)) && !self.is_struct()
    }

    /// `x-kubernetes-map-type: atomic` (maps and structs replaced as a whole by apply).
    pub(crate) fn is_atomic_map(&self) -> bool {
        self.extension("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
    }

    /// How server-side apply merges this list. Upstream derives the same answer: an
    /// explicit `x-kubernetes-list-type` wins; otherwise a strategic `merge` list is
    /// associative (by its merge key) or a set (scalars); anything else is atomic.
    pub(crate) fn list_kind(&self) -> ListKind {
        match self.extension("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("atomic") => return ListKind::Atomic,
            Some("set") => return ListKind::Set,
            Some("map") => {
                let keys: Vec<String> = self
                    .extension("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|ks| ks.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                if !keys.is_empty() {
                    return ListKind::Map(keys);
                }
                if let Some(key) = self.patch_merge_key() {
                    return ListKind::Map(vec![key.to_owned()]);
                }
                return ListKind::Atomic;
            }
            _ => {}
        }
        if self.patch_strategy() == "merge" {
            return match self.patch_merge_key() {
                Some(key) => ListKind::Map(vec![key.to_owned()]),
                None => ListKind::Set,
            };
        }
        ListKind::Atomic
    }
}

/// Follows `$ref` and single-element `allOf` wrappers to the schema that describes the
/// type's shape.
fn resolve<'a>(raw: &'a Value, definitions: &'a Map<String, Value>) -> Option<&'a Value> {
    let mut current = raw;
    for _ in 0..MAX_REF_DEPTH {
        if let Some(reference) = current.get("$ref").and_then(Value::as_str) {
            let name =
                reference.strip_prefix("#/components/schemas/").or_else(|| reference.strip_prefix("#/definitions/"))?;
            current = definitions.get(name)?;
            continue;
        }
        let wrapped = current.get("allOf").and_then(Value::as_array).and_then(|all| all.first());
        match wrapped {
            Some(inner) if current.get("properties").is_none() => current = inner,
            _ => return Some(current),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defs() -> Map<String, Value> {
        let v = json!({
            "Pod": {"properties": {
                "spec": {"allOf": [{"$ref": "#/components/schemas/PodSpec"}], "default": {}},
                "metadata": {"$ref": "#/components/schemas/Meta"}
            }},
            "Meta": {"properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "finalizers": {"type": "array", "items": {"type": "string"},
                    "x-kubernetes-patch-strategy": "merge", "x-kubernetes-list-type": "set"}
            }},
            "PodSpec": {"properties": {
                "containers": {"type": "array", "items": {"$ref": "#/components/schemas/Container"},
                    "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
                "volumes": {"type": "array", "items": {"type": "object"},
                    "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge,retainKeys",
                    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
                "selector": {"$ref": "#/components/schemas/Selector"},
                "args": {"type": "array", "items": {"type": "string"}}
            }},
            "Selector": {"properties": {"matchLabels": {"type": "object"}}, "x-kubernetes-map-type": "atomic"},
            "Container": {"properties": {"name": {"type": "string"}}}
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn resolves_refs_and_reads_extensions() {
        let d = defs();
        let s = Schema::new(&d);
        let pod = s.root("Pod");
        let spec = pod.field("spec");
        assert!(spec.is_struct());
        let containers = spec.field("containers");
        assert_eq!(containers.patch_strategy(), "merge");
        assert_eq!(containers.patch_merge_key(), Some("name"));
        assert_eq!(containers.list_kind(), ListKind::Map(vec!["name".into()]));
        assert!(containers.items().field("name").is_known());
        let volumes = spec.field("volumes");
        assert_eq!(volumes.patch_strategy(), "merge");
        assert_eq!(volumes.patch_strategies(), vec!["merge", "retainKeys"]);
        assert_eq!(spec.field("args").list_kind(), ListKind::Atomic);
        assert!(spec.field("selector").is_atomic_map());
        let labels = pod.field("metadata").field("labels");
        assert!(labels.is_map());
        assert!(labels.field("anything").is_known());
        assert_eq!(pod.field("metadata").field("finalizers").list_kind(), ListKind::Set);
        assert!(!pod.field("nope").is_known());
        assert!(!Schema::empty().root("Pod").is_known());
    }
}
