//! Sets of field paths, and their `FieldsV1` wire encoding (upstream
//! `sigs.k8s.io/structured-merge-diff/fieldpath`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// One step of a field path. The variant order is the sort order upstream serializes
/// in: fields, then list-map keys, then set values, then indexes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A struct field or map key: `f:<name>`.
    Field(String),
    /// A list-map item, by the JSON object of its key fields (sorted): `k:{...}`.
    Key(String),
    /// A set item, by its JSON value: `v:<json>`.
    Value(String),
    /// A list item by position: `i:<n>` (only read, never produced here).
    Index(usize),
}

impl PathElement {
    fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(json) => format!("k:{json}"),
            PathElement::Value(json) => format!("v:{json}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<PathElement> {
        let (kind, rest) = s.split_once(':')?;
        match kind {
            "f" => Some(PathElement::Field(rest.to_owned())),
            "k" => Some(PathElement::Key(rest.to_owned())),
            "v" => Some(PathElement::Value(rest.to_owned())),
            "i" => rest.parse().ok().map(PathElement::Index),
            _ => None,
        }
    }

    /// The key element of a list-map item, or `None` when the item is not an object.
    pub(crate) fn key_of(item: &Value, keys: &[String]) -> Option<PathElement> {
        let object = item.as_object()?;
        let mut sorted: Vec<&String> = keys.iter().collect();
        sorted.sort();
        let mut fields = Map::new();
        for key in sorted {
            if let Some(v) = object.get(key) {
                fields.insert(key.clone(), v.clone());
            }
        }
        Some(PathElement::Key(Value::Object(fields).to_string()))
    }

    pub(crate) fn value_of(item: &Value) -> PathElement {
        PathElement::Value(item.to_string())
    }
}

/// Prints a path element the way upstream conflict messages do:
/// `.spec`, `[name="nginx"]`, `[="a"]`, `[0]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(json) => {
                let parsed: Option<Map<String, Value>> = serde_json::from_str(json).ok();
                match parsed {
                    Some(fields) => {
                        let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        write!(f, "[{}]", parts.join(","))
                    }
                    None => write!(f, "[{json}]"),
                }
            }
            PathElement::Value(json) => write!(f, "[={json}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Renders a whole path as upstream does (`.spec.replicas`).
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of paths, stored as a tree. A node is in the set when `member` is true; nodes
/// that are neither members nor have members below them are not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    pub(crate) fn is_member(&self) -> bool {
        self.member
    }

    pub(crate) fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    pub fn insert(&mut self, path: &[PathElement]) {
        let mut node = self;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.member = true;
    }

    pub fn contains(&self, path: &[PathElement]) -> bool {
        let mut node = self;
        for pe in path {
            match node.children.get(pe) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.member
    }

    pub fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (pe, theirs) in &other.children {
            self.children.entry(pe.clone()).or_default().union_with(theirs);
        }
    }

    /// Removes every member of `other` (exact paths, not subtrees).
    pub fn subtract(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        self.children.retain(|pe, mine| {
            if let Some(theirs) = other.children.get(pe) {
                mine.subtract(theirs);
            }
            !mine.is_empty()
        });
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet { member: self.member && other.member, children: BTreeMap::new() };
        for (pe, mine) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = mine.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(pe.clone(), both);
                }
            }
        }
        out
    }

    /// Every member path, in upstream's sort order.
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect_paths(&mut prefix, &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        if self.member && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` JSON object: `{"f:spec":{"f:replicas":{}}}`, with `".":{}` on a
    /// node that is a member and also has children.
    pub fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        for (pe, child) in &self.children {
            out.insert(pe.encode(), child.encode_node());
        }
        Value::Object(out)
    }

    fn encode_node(&self) -> Value {
        let mut out = Map::new();
        if self.member && !self.children.is_empty() {
            out.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            out.insert(pe.encode(), child.encode_node());
        }
        Value::Object(out)
    }

    /// Parses a `fieldsV1` object; `None` when it is malformed.
    pub fn from_fields_v1(value: &Value) -> Option<FieldSet> {
        let object = value.as_object()?;
        let mut set = FieldSet::new();
        for (key, child) in object {
            if key == "." {
                continue;
            }
            let pe = PathElement::decode(key)?;
            set.children.insert(pe, Self::decode_node(child)?);
        }
        Some(set)
    }

    fn decode_node(value: &Value) -> Option<FieldSet> {
        let object = value.as_object()?;
        let mut node = FieldSet { member: object.is_empty() || object.contains_key("."), children: BTreeMap::new() };
        for (key, child) in object {
            if key == "." {
                continue;
            }
            let pe = PathElement::decode(key)?;
            node.children.insert(pe, Self::decode_node(child)?);
        }
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.to_owned())
    }

    #[test]
    fn fields_v1_round_trip_and_order() {
        let mut set = FieldSet::new();
        let item = PathElement::key_of(&json!({"name": "nginx", "image": "x"}), &["name".into()]);
        let Some(item) = item else {
            panic!("container item must have a key");
        };
        let containers = [f("spec"), f("containers"), item.clone()];
        set.insert(&containers);
        set.insert(&[f("spec"), f("containers"), item.clone(), f("name")]);
        set.insert(&[f("spec"), f("containers"), item, f("image")]);
        set.insert(&[f("metadata"), f("labels"), f("app")]);
        let encoded = set.to_fields_v1();
        assert_eq!(
            encoded.to_string(),
            r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}"#
        );
        assert_eq!(FieldSet::from_fields_v1(&encoded), Some(set));
    }

    #[test]
    fn key_elements_sort_their_fields_and_print_like_upstream() {
        let pe = PathElement::key_of(
            &json!({"protocol": "TCP", "containerPort": 80, "name": "http"}),
            &["protocol".into(), "containerPort".into()],
        );
        assert_eq!(pe.as_ref().map(|p| p.encode()), Some(r#"k:{"containerPort":80,"protocol":"TCP"}"#.to_owned()));
        let path = [f("spec"), f("containers"), PathElement::Key(r#"{"name":"nginx"}"#.into()), f("image")];
        assert_eq!(path_string(&path), r#".spec.containers[name="nginx"].image"#);
        assert_eq!(
            path_string(&[f("metadata"), f("finalizers"), PathElement::value_of(&json!("a"))]),
            r#".metadata.finalizers[="a"]"#
        );
    }

    #[test]
    fn set_algebra_is_exact_path() {
        let mut a = FieldSet::new();
        a.insert(&[f("spec"), f("replicas")]);
        a.insert(&[f("spec"), f("paused")]);
        let mut b = FieldSet::new();
        b.insert(&[f("spec"), f("replicas")]);
        b.insert(&[f("spec")]);
        assert_eq!(a.intersection(&b).paths(), vec![vec![f("spec"), f("replicas")]]);
        a.subtract(&b);
        assert_eq!(a.paths(), vec![vec![f("spec"), f("paused")]]);
        a.subtract(&a.clone());
        assert!(a.is_empty());
        assert!(FieldSet::from_fields_v1(&json!({"x:bad": {}})).is_none());
    }
}
