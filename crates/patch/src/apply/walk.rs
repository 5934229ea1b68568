//! Typed walks over objects for server-side apply: field sets, comparison, merge and
//! pruning (the parts of structured-merge-diff's `typed` package that rkube needs).

use serde_json::{Map, Value};

use super::fieldset::{FieldSet, PathElement};
use crate::schema::{ListKind, Node};

/// How a value is walked, from its JSON shape and its schema.
enum Shape {
    /// A struct or string map merged field by field; `is_map` for `additionalProperties`.
    Granular {
        is_map: bool,
    },
    /// A list merged item by item.
    Set,
    AssocList(Vec<String>),
    /// Replaced as a whole: scalars, atomic maps and lists, type mismatches.
    Leaf,
}

fn shape(value: &Value, node: Node<'_>) -> Shape {
    match value {
        Value::Object(_) if node.is_atomic_map() => Shape::Leaf,
        Value::Object(_) => Shape::Granular { is_map: node.is_map() },
        Value::Array(items) => match node.list_kind() {
            ListKind::Atomic => Shape::Leaf,
            ListKind::Set if items.iter().all(|i| !i.is_object() && !i.is_array()) => Shape::Set,
            ListKind::Map(keys) if items.iter().all(Value::is_object) => Shape::AssocList(keys),
            _ => Shape::Leaf,
        },
        _ => Shape::Leaf,
    }
}

fn is_empty_container(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether field `key` under `path` is part of the object's fields: everything but
/// `metadata.managedFields`, the bookkeeping itself (skipped here rather than copying
/// whole objects without it before each walk).
fn tracked(path: &[PathElement], key: &str) -> bool {
    !(key == "managedFields" && matches!(path, [PathElement::Field(f)] if f == "metadata"))
}

fn with(path: &[PathElement], pe: PathElement) -> Vec<PathElement> {
    let mut p = path.to_vec();
    p.push(pe);
    p
}

/// Adds the paths of `value` to `out`. Empty maps and lists count as leaves (upstream
/// keeps the empty/null distinction that way). `map_self` also makes a string map a
/// member of the set, as upstream's comparison does for a map it sees appear.
pub(crate) fn field_set(value: &Value, node: Node<'_>, path: &[PathElement], out: &mut FieldSet, map_self: bool) {
    if is_empty_container(value) {
        out.insert(path);
        return;
    }
    match (shape(value, node), value) {
        (Shape::Granular { is_map }, Value::Object(fields)) => {
            if map_self && is_map {
                out.insert(path);
            }
            for (key, child) in fields.iter().filter(|(k, _)| tracked(path, k)) {
                let p = with(path, PathElement::Field(key.clone()));
                field_set(child, node.field(key), &p, out, map_self);
            }
        }
        (Shape::Set, Value::Array(items)) => {
            for item in items {
                out.insert(&with(path, PathElement::value_of(item)));
            }
        }
        (Shape::AssocList(keys), Value::Array(items)) => {
            let item_node = node.items();
            for item in items {
                if let Some(pe) = PathElement::key_of(item, &keys) {
                    item_set(item, item_node, &with(path, pe), out, map_self);
                }
            }
        }
        _ => out.insert(path),
    }
}

fn item_set(item: &Value, node: Node<'_>, path: &[PathElement], out: &mut FieldSet, map_self: bool) {
    out.insert(path);
    if let Value::Object(fields) = item {
        for (key, child) in fields {
            let p = with(path, PathElement::Field(key.clone()));
            field_set(child, node.field(key), &p, out, map_self);
        }
    }
}

/// The `fieldsV1` encoding of everything a newly created object sets: the same set
/// `compare({}, new)` finds (and [`field_set`] builds path by path), written straight
/// into its JSON form. A create is the common write, and building the set as a tree of
/// paths first cost more than the rest of the create handler's checks together.
/// `metadata.managedFields` is left out, as the walks do.
pub(crate) fn created_fields_v1(new: &Value, node: Node<'_>) -> Map<String, Value> {
    let children = match new {
        Value::Object(fields) => field_children_v1(fields, node, true, false),
        _ => Vec::new(),
    };
    match encode_node_v1(false, children) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// The `f:<key>` nodes of an object's fields. `at_root` marks the top-level object
/// (whose `metadata` is `root_metadata` for [`node_v1`]); `root_metadata` skips
/// `managedFields`.
fn field_children_v1(
    fields: &Map<String, Value>,
    node: Node<'_>,
    at_root: bool,
    root_metadata: bool,
) -> Vec<(String, Value)> {
    let mut children = Vec::with_capacity(fields.len());
    for (key, child) in fields {
        if root_metadata && key == "managedFields" {
            continue;
        }
        if let Some(encoded) = node_v1(child, node.field(key), at_root && key == "metadata") {
            children.push((format!("f:{key}"), encoded));
        }
    }
    children
}

/// [`field_set`] (with `map_self`) of `value`, as the `fieldsV1` node of its path;
/// `None` when it adds nothing. `root_metadata` skips `managedFields`.
fn node_v1(value: &Value, node: Node<'_>, root_metadata: bool) -> Option<Value> {
    if is_empty_container(value) {
        return Some(Value::Object(Map::new()));
    }
    match (shape(value, node), value) {
        (Shape::Granular { is_map }, Value::Object(fields)) => {
            encode_node_v1(is_map, field_children_v1(fields, node, false, root_metadata))
        }
        (Shape::Set, Value::Array(items)) => {
            let children = items.iter().map(|item| (format!("v:{item}"), Value::Object(Map::new()))).collect();
            encode_node_v1(false, children)
        }
        (Shape::AssocList(keys), Value::Array(items)) => {
            let item_node = node.items();
            let mut children = Vec::with_capacity(items.len());
            for item in items {
                if let Some(PathElement::Key(json)) = PathElement::key_of(item, &keys) {
                    let fields = match item {
                        Value::Object(map) => field_children_v1(map, item_node, false, false),
                        _ => Vec::new(),
                    };
                    if let Some(encoded) = encode_node_v1(true, fields) {
                        children.push((format!("k:{json}"), encoded));
                    }
                }
            }
            encode_node_v1(false, children)
        }
        _ => Some(Value::Object(Map::new())),
    }
}

/// One `fieldsV1` node: `{}` for a member leaf, `"."` first when a member also has
/// children, children in upstream's order (their encoded names sort as the path
/// elements do: `f:` < `k:` < `v:`). Repeated children (a set or list map holding an
/// item twice) are merged, as inserting both paths into a set would.
fn encode_node_v1(member: bool, mut children: Vec<(String, Value)>) -> Option<Value> {
    if !member && children.is_empty() {
        return None;
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Map::with_capacity(children.len() + 1);
    if member && !children.is_empty() {
        out.insert(".".to_owned(), Value::Object(Map::new()));
    }
    let mut children = children.into_iter().peekable();
    while let Some((name, mut child)) = children.next() {
        // Sorted, so a repeated child is the next one.
        while let Some((_, again)) = children.next_if(|(next, _)| *next == name) {
            child = merge_v1(child, again);
        }
        out.insert(name, child);
    }
    Some(Value::Object(out))
}

fn merge_v1(a: Value, b: Value) -> Value {
    let is_member = |m: &Map<String, Value>| m.is_empty() || m.contains_key(".");
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return Value::Object(Map::new());
    };
    let member = is_member(&a) || is_member(&b);
    let children = a.into_iter().chain(b).filter(|(k, _)| k != ".").collect();
    encode_node_v1(member, children).unwrap_or_else(|| Value::Object(Map::new()))
}

/// What changed from `old` to `new`: `changed` holds added and modified paths,
/// `removed` the paths that disappeared.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub changed: FieldSet,
    pub removed: FieldSet,
}

pub(crate) fn compare(old: &Value, new: &Value, node: Node<'_>) -> Comparison {
    let mut cmp = Comparison::default();
    compare_at(Some(old), Some(new), node, &[], &mut cmp);
    cmp
}

fn compare_at(old: Option<&Value>, new: Option<&Value>, node: Node<'_>, path: &[PathElement], cmp: &mut Comparison) {
    let (old, new) = match (old, new) {
        (None, None) => return,
        (Some(o), None) => return field_set(o, node, path, &mut cmp.removed, true),
        (None, Some(n)) => return field_set(n, node, path, &mut cmp.changed, true),
        (Some(o), Some(n)) => (o, n),
    };
    // Equal subtrees hold no change; most of an update's object is unchanged, and
    // comparing without walking allocates nothing.
    if old == new {
        return;
    }
    match (shape(old, node), shape(new, node), old, new) {
        (Shape::Granular { .. }, Shape::Granular { .. }, Value::Object(o), Value::Object(n)) => {
            if o.is_empty() || n.is_empty() {
                // An empty map is a leaf of its own; its appearance or disappearance
                // is a change of that leaf.
                if o.is_empty() {
                    cmp.removed.insert(path);
                } else {
                    cmp.changed.insert(path);
                }
            }
            for key in o.keys().chain(n.keys().filter(|k| !o.contains_key(*k))).filter(|k| tracked(path, k)) {
                let p = with(path, PathElement::Field(key.clone()));
                compare_at(o.get(key), n.get(key), node.field(key), &p, cmp);
            }
        }
        (Shape::Set, Shape::Set, Value::Array(o), Value::Array(n)) => {
            for item in o {
                if !n.contains(item) {
                    cmp.removed.insert(&with(path, PathElement::value_of(item)));
                }
            }
            for item in n {
                if !o.contains(item) {
                    cmp.changed.insert(&with(path, PathElement::value_of(item)));
                }
            }
        }
        (Shape::AssocList(keys), Shape::AssocList(_), Value::Array(o), Value::Array(n)) => {
            let item_node = node.items();
            let keyed = |items: &Vec<Value>| -> Vec<(PathElement, Value)> {
                items.iter().filter_map(|i| PathElement::key_of(i, &keys).map(|pe| (pe, i.clone()))).collect()
            };
            let (o, n) = (keyed(o), keyed(n));
            for (pe, item) in &o {
                if !n.iter().any(|(p, _)| p == pe) {
                    item_set(item, item_node, &with(path, pe.clone()), &mut cmp.removed, true);
                }
            }
            for (pe, item) in &n {
                let p = with(path, pe.clone());
                match o.iter().find(|(q, _)| q == pe) {
                    None => item_set(item, item_node, &p, &mut cmp.changed, true),
                    Some((_, old_item)) => {
                        if let (Value::Object(om), Value::Object(nm)) = (old_item, item) {
                            for key in om.keys().chain(nm.keys().filter(|k| !om.contains_key(*k))) {
                                let fp = with(&p, PathElement::Field(key.clone()));
                                compare_at(om.get(key), nm.get(key), item_node.field(key), &fp, cmp);
                            }
                        }
                    }
                }
            }
        }
        (Shape::Leaf, Shape::Leaf, o, n) => {
            if o != n {
                cmp.changed.insert(path);
            }
        }
        _ => {
            // The value changed shape (e.g. scalar to map): all of the old goes, all of
            // the new comes.
            field_set(old, node, path, &mut cmp.removed, true);
            field_set(new, node, path, &mut cmp.changed, true);
        }
    }
}

/// Merges an applied configuration into the live value: granular maps field by field,
/// sets and associative lists item by item (keeping upstream's ordering), everything
/// else replaced. A `null` in the configuration removes the field.
pub(crate) fn merge(live: Option<Value>, config: &Value, node: Node<'_>) -> Value {
    match (live, config) {
        (Some(Value::Object(mut live)), Value::Object(cfg))
            if matches!(shape(config, node), Shape::Granular { .. }) =>
        {
            for (key, value) in cfg {
                if value.is_null() {
                    live.shift_remove(key);
                    continue;
                }
                let child = node.field(key);
                match live.get_mut(key) {
                    Some(slot) => *slot = merge(Some(slot.take()), value, child),
                    None => {
                        live.insert(key.clone(), merge(None, value, child));
                    }
                }
            }
            Value::Object(live)
        }
        (Some(Value::Array(live)), Value::Array(cfg)) => match shape(config, node) {
            Shape::Set => Value::Array(merge_list(live, cfg, |v| Some(PathElement::value_of(v)), |_, r| r.clone())),
            Shape::AssocList(keys) if live.iter().all(Value::is_object) => {
                let item_node = node.items();
                Value::Array(merge_list(live, cfg, |v| PathElement::key_of(v, &keys), |l, r| merge(l, r, item_node)))
            }
            _ => without_nulls(config),
        },
        _ => without_nulls(config),
    }
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Structured-merge-diff's list merge: live-only items keep their place, configured
/// items come in configuration order, and shared items are merged where the
/// configuration puts them.
fn merge_list(
    live: Vec<Value>,
    cfg: &[Value],
    key: impl Fn(&Value) -> Option<PathElement>,
    merge_item: impl Fn(Option<Value>, &Value) -> Value,
) -> Vec<Value> {
    let live_keys: Vec<Option<PathElement>> = live.iter().map(&key).collect();
    let cfg_keys: Vec<Option<PathElement>> = cfg.iter().map(&key).collect();
    let in_cfg = |pe: &Option<PathElement>| pe.is_some() && cfg_keys.contains(pe);
    let live_item = |pe: &Option<PathElement>| -> Option<Value> {
        live_keys.iter().position(|k| k.is_some() && k == pe).and_then(|i| live.get(i).cloned())
    };
    let mut shared = cfg_keys
        .iter()
        .filter(|pe| live_keys.contains(pe))
        .flatten()
        .cloned()
        .collect::<Vec<PathElement>>()
        .into_iter();
    let mut next_shared = shared.next();
    let mut merged_cfg: Vec<Option<PathElement>> = Vec::new();
    let mut out = Vec::with_capacity(live.len() + cfg.len());
    let (mut li, mut ri) = (0, 0);
    while li < live.len() || ri < cfg.len() {
        if li < live.len() && ri < cfg.len() {
            let pe = &live_keys[li];
            if pe.is_some() && *pe == cfg_keys[ri] {
                out.push(merge_item(Some(live[li].clone()), &cfg[ri]));
                merged_cfg.push(pe.clone());
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if in_cfg(pe) && next_shared.is_some() && next_shared.as_ref() != pe.as_ref() {
                li += 1;
                continue;
            }
        }
        if li < live.len() {
            let pe = &live_keys[li];
            if !in_cfg(pe) {
                out.push(live[li].clone());
                li += 1;
                continue;
            }
            if merged_cfg.contains(pe) {
                li += 1;
                continue;
            }
        }
        if ri < cfg.len() {
            let pe = cfg_keys[ri].clone();
            if merged_cfg.contains(&pe) && pe.is_some() {
                // A duplicate key in the configuration: the first occurrence won.
                ri += 1;
                continue;
            }
            out.push(merge_item(live_item(&pe), &cfg[ri]));
            if next_shared.is_some() && next_shared.as_ref() == pe.as_ref() {
                next_shared = shared.next();
            }
            merged_cfg.push(pe);
            ri += 1;
        }
    }
    out
}

/// Removes from `value` what the applier owned last time (`last`) and no manager owns
/// now (`managed`, which includes the applier's new set). Returns true when the value
/// itself should go. Fields nobody ever applied are left alone; key fields of a list
/// item stay with the item.
pub(crate) fn prune(
    value: &mut Value,
    node: Node<'_>,
    last: &FieldSet,
    managed: Option<&FieldSet>,
    key_fields: &[String],
) -> bool {
    let owned_here = managed.is_some_and(FieldSet::is_member);
    if is_empty_container(value) {
        return last.is_member() && managed.is_none();
    }
    let child_managed = |pe: &PathElement| managed.and_then(|m| m.child(pe));
    match shape(value, node) {
        Shape::Leaf => last.is_member() && managed.is_none(),
        Shape::Granular { .. } => {
            let Value::Object(fields) = value else {
                return false;
            };
            let mut kept_any = false;
            let keys: Vec<String> = fields.keys().cloned().collect();
            for key in keys {
                if key_fields.contains(&key) {
                    continue;
                }
                let pe = PathElement::Field(key.clone());
                let Some(last_child) = last.child(&pe) else {
                    kept_any = true;
                    continue;
                };
                let remove = match fields.get_mut(&key) {
                    Some(child) => prune(child, node.field(&key), last_child, child_managed(&pe), &[]),
                    None => false,
                };
                if remove {
                    fields.shift_remove(&key);
                } else {
                    kept_any = true;
                }
            }
            !kept_any && !owned_here && managed.is_none()
        }
        Shape::Set => {
            let Value::Array(items) = value else {
                return false;
            };
            items.retain(|item| {
                let pe = PathElement::value_of(item);
                let ours = last.child(&pe).is_some_and(FieldSet::is_member);
                !(ours && child_managed(&pe).is_none())
            });
            items.is_empty() && managed.is_none()
        }
        Shape::AssocList(keys) => {
            let Value::Array(items) = value else {
                return false;
            };
            let item_node = node.items();
            let mut kept = Vec::with_capacity(items.len());
            for mut item in std::mem::take(items) {
                let remove = match PathElement::key_of(&item, &keys) {
                    Some(pe) => match last.child(&pe) {
                        Some(last_item) => prune(&mut item, item_node, last_item, child_managed(&pe), &keys),
                        None => false,
                    },
                    None => false,
                };
                if !remove {
                    kept.push(item);
                }
            }
            *items = kept;
            items.is_empty() && managed.is_none()
        }
    }
}
