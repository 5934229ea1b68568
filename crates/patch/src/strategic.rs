//! Strategic merge patch, as the apiserver applies it (upstream
//! `k8s.io/apimachinery/pkg/util/strategicpatch`, server mode: parallel deletion lists
//! are merged and nulls without a matching field are dropped).
//!
//! The walk mirrors upstream step by step: a map first honours `$patch`, then
//! `$retainKeys`, then every `$setElementOrder/<list>`, then merges the remaining keys;
//! lists with strategy `merge` merge by merge key (objects) or as a union (scalars) and
//! are re-ordered with upstream's ordering rules; any other list is replaced.

use serde_json::{Map, Value};

use crate::PatchError;
use crate::schema::{Node, Schema};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch (`application/strategic-merge-patch+json`) to
/// `original`, typed by the definition `root` (e.g. `io.k8s.api.apps.v1.Deployment`).
///
/// Fields whose type the schema does not know merge like a JSON merge patch: maps merge
/// recursively and lists are replaced.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: &Schema,
    root: &str,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject { found: kind_name(patch) });
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let merged = merge_map(original, patch.clone(), schema.root(root), "")?;
    Ok(Value::Object(merged))
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn same_kind(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Scalar equality as Go's `==` on decoded JSON sees it: every number is a float64.
pub(crate) fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

fn child_path(path: &str, key: &str) -> String {
    format!("{path}.{key}")
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    node: Node<'_>,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.shift_remove(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => clean_map(patch, node, path),
            Some("delete") => Ok(Map::new()),
            _ => Err(PatchError::UnknownDirective { directive: directive.to_string(), path: display_path(path) }),
        };
    }

    apply_retain_keys(&mut original, &mut patch, path)?;
    merge_ordered_lists(&mut original, &mut patch, node, path)?;

    for (key, patch_value) in patch {
        let (key, is_delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(list) => (list.to_owned(), true),
            // Other `$` keys are unknown directives; the typed decode upstream drops them.
            None if key.starts_with('$') => continue,
            None => (key, false),
        };
        let here = child_path(path, &key);
        if patch_value.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let field = node.field(&key);
        let Some(current) = original.get_mut(&key) else {
            if !is_delete_list {
                let cleaned = clean_value(patch_value, field, &here)?;
                original.insert(key, cleaned);
            }
            continue;
        };
        if !same_kind(current, &patch_value) {
            if !is_delete_list {
                *current = clean_value(patch_value, field, &here)?;
            }
            continue;
        }
        match (current.take(), patch_value) {
            (Value::Object(o), Value::Object(p)) => {
                *current = if field.patch_strategy() == "replace" {
                    Value::Object(clean_map(p, field, &here)?)
                } else {
                    Value::Object(merge_map(o, p, field, &here)?)
                };
            }
            (Value::Array(o), Value::Array(p)) => {
                *current = Value::Array(merge_list_field(o, p, field, is_delete_list, &here)?);
            }
            (_, p) => *current = p,
        }
    }
    Ok(original)
}

/// A value from the patch that lands where the original has nothing: directives and
/// nulls inside it are resolved as if it were merged into an empty value, which is what
/// upstream's typed round trip leaves behind.
fn clean_value(value: Value, node: Node<'_>, path: &str) -> Result<Value, PatchError> {
    match value {
        Value::Object(m) => Ok(Value::Object(clean_map(m, node, path)?)),
        Value::Array(items) => {
            if node.patch_strategy() == "merge" {
                Ok(Value::Array(merge_list_field(Vec::new(), items, node, false, path)?))
            } else {
                let items_node = node.items();
                let cleaned =
                    items.into_iter().map(|item| clean_value(item, items_node, path)).collect::<Result<Vec<_>, _>>()?;
                Ok(Value::Array(cleaned))
            }
        }
        other => Ok(other),
    }
}

fn clean_map(patch: Map<String, Value>, node: Node<'_>, path: &str) -> Result<Map<String, Value>, PatchError> {
    merge_map(Map::new(), patch, node, path)
}

fn display_path(path: &str) -> String {
    if path.is_empty() { ".".to_owned() } else { path.to_owned() }
}

/// `$retainKeys`: keys of the original not listed are cleared; a patch key not listed
/// makes the patch invalid.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    path: &str,
) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = || PatchError::BadRetainKeys { path: display_path(path) };
    let Value::Array(retain) = retain else {
        return Err(bad());
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (key, value) in patch.iter() {
        if value.is_null() || key.starts_with(DELETE_FROM_PRIMITIVE_LIST) || key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if !listed(key) {
            return Err(bad());
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// Handles every `$setElementOrder/<list>` directive together with its list: merge the
/// list, then order it by the directive.
fn merge_ordered_lists(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    node: Node<'_>,
    path: &str,
) -> Result<(), PatchError> {
    let directive_keys: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for directive_key in directive_keys {
        let Some(order) = patch.shift_remove(&directive_key) else {
            continue;
        };
        let list_key = directive_key[SET_ELEMENT_ORDER.len()..].to_owned();
        let here = child_path(path, &list_key);
        let bad = || PatchError::BadSetElementOrder { path: display_path(&here) };
        let Value::Array(order) = order else {
            return Err(bad());
        };
        let original_list = match original.get(&list_key) {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(other) => {
                return Err(PatchError::TypeMismatch { path: here, expected: "array", found: kind_name(other) });
            }
        };
        let patch_list = match patch.shift_remove(&list_key) {
            None => None,
            Some(Value::Array(items)) => Some(items),
            Some(other) => {
                return Err(PatchError::TypeMismatch { path: here, expected: "array", found: kind_name(&other) });
            }
        };
        let field = node.field(&list_key);
        let merge_key = field.patch_merge_key().unwrap_or("");
        if let Some(p) = &patch_list {
            validate_order(p, &order, merge_key, &here)?;
        }
        let original_items = original_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list.clone()) {
            (Some(o), None) => o,
            (None, Some(p)) => match clean_value(Value::Array(p), field, &here)? {
                Value::Array(items) => items,
                _ => Vec::new(),
            },
            (Some(o), Some(p)) => merge_list_field(o, p, field, false, &here)?,
            (None, None) => continue,
        };
        let element_kind = element_kind(&original_items, patch_list.as_deref().unwrap_or_default(), &here)?;
        let is_map = element_kind == Some(ElementKind::Object);
        let key = if is_map { merge_key } else { "" };
        let (patch_items, server_only) = partition(merged, &order, key, &here)?;
        let ordered = normalize_order(patch_items, server_only, &order, &original_items, key, is_map, &here)?;
        original.insert(list_key, Value::Array(ordered));
    }
    Ok(())
}

/// Upstream rejects a patch whose list order contradicts its `$setElementOrder` list.
fn validate_order(patch_list: &[Value], order: &[Value], merge_key: &str, path: &str) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> =
        patch_list.iter().filter(|item| merge_key.is_empty() || !is_delete_item(item)).collect();
    let (mut pi, mut oi) = (0, 0);
    while pi < non_delete.len() && oi < order.len() {
        if non_delete[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if same_element(non_delete[pi], &order[oi], merge_key, path)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() {
        return Err(PatchError::OrderMismatch { path: path.to_owned() });
    }
    Ok(())
}

fn is_delete_item(item: &Value) -> bool {
    item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

fn same_element(a: &Value, b: &Value, merge_key: &str, path: &str) -> Result<bool, PatchError> {
    if merge_key.is_empty() {
        return Ok(scalar_eq(a, b));
    }
    let ka = merge_key_of(a, merge_key, path)?;
    let kb = merge_key_of(b, merge_key, path)?;
    Ok(scalar_eq(ka, kb))
}

fn merge_key_of<'v>(item: &'v Value, merge_key: &str, path: &str) -> Result<&'v Value, PatchError> {
    item.get(merge_key).ok_or_else(|| PatchError::MissingMergeKey {
        path: path.to_owned(),
        key: merge_key.to_owned(),
        item: item.to_string(),
    })
}

fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: Node<'_>,
    is_delete_list: bool,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    if field.patch_strategy() == "merge" {
        merge_list(original, patch, field.items(), field.patch_merge_key().unwrap_or(""), is_delete_list, path)
    } else {
        // Upstream replaces a list without the merge strategy by the patch list, even
        // when the patch list is a `$deleteFromPrimitiveList` one.
        match clean_value(Value::Array(patch), field, path)? {
            Value::Array(items) => Ok(items),
            _ => Ok(Vec::new()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Object,
    Scalar,
}

/// The common kind of the elements of both lists; `None` when both are empty.
fn element_kind(original: &[Value], patch: &[Value], path: &str) -> Result<Option<ElementKind>, PatchError> {
    let mut first: Option<&Value> = None;
    for item in original.iter().chain(patch) {
        match first {
            None => {
                if item.is_array() {
                    return Err(PatchError::ListOfLists { path: path.to_owned() });
                }
                first = Some(item);
            }
            Some(f) if !same_kind(f, item) => {
                return Err(PatchError::MixedList { path: path.to_owned() });
            }
            Some(_) => {}
        }
    }
    Ok(first.map(|f| if f.is_object() { ElementKind::Object } else { ElementKind::Scalar }))
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: Node<'_>,
    merge_key: &str,
    is_delete_list: bool,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let Some(kind) = element_kind(&original, &patch, path)? else {
        return Ok(original);
    };
    let (original, patch, merged, key) = if kind == ElementKind::Scalar {
        if is_delete_list {
            return Ok(original.into_iter().filter(|v| !patch.iter().any(|d| scalar_eq(d, v))).collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(&patch) {
            if !merged.iter().any(|m| scalar_eq(m, v)) {
                merged.push(v.clone());
            }
        }
        (original, patch, merged, "")
    } else {
        if merge_key.is_empty() {
            return Err(PatchError::NoMergeKey { path: path.to_owned() });
        }
        let (original, patch) = apply_special_items(original, patch, merge_key, path)?;
        let merged = merge_items(original.clone(), &patch, items, merge_key, path)?;
        (original, patch, merged, merge_key)
    };
    let (patch_items, server_only) = partition(merged, &patch, key, path)?;
    normalize_order(patch_items, server_only, &patch, &original, key, kind == ElementKind::Object, path)
}

/// Handles `{"$patch": "delete"|"replace"}` items; returns the updated original and the
/// patch items that are left to merge.
fn apply_special_items(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let key = merge_key_of(&item, merge_key, path)?;
                original.retain(|o| !o.get(merge_key).is_some_and(|k| scalar_eq(k, key)));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::ListMergeDirective { path: path.to_owned() });
            }
            _ => {
                return Err(PatchError::UnknownDirective { directive: directive.to_string(), path: path.to_owned() });
            }
        }
    }
    if replace {
        return Ok((plain, Vec::new()));
    }
    Ok((original, plain))
}

fn merge_items(
    mut original: Vec<Value>,
    patch: &[Value],
    items: Node<'_>,
    merge_key: &str,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    for item in patch {
        let key = merge_key_of(item, merge_key, path)?;
        let Value::Object(item_map) = item else {
            return Err(PatchError::MixedList { path: path.to_owned() });
        };
        let found = original.iter().position(|o| o.get(merge_key).is_some_and(|k| scalar_eq(k, key)));
        match found {
            Some(i) => {
                let current = match std::mem::take(&mut original[i]) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                original[i] = Value::Object(merge_map(current, item_map.clone(), items, path)?);
            }
            None => original.push(Value::Object(clean_map(item_map.clone(), items, path)?)),
        }
    }
    Ok(original)
}

/// Splits `merged` into the items named in `by` (by merge key, or by value for scalars)
/// and the items only the server has.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: &str,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut in_patch = Vec::new();
    let mut server_only = Vec::new();
    for item in merged {
        let present = if merge_key.is_empty() {
            by.iter().any(|b| scalar_eq(b, &item))
        } else {
            let key = merge_key_of(&item, merge_key, path)?;
            by.iter().any(|b| b.get(merge_key).is_some_and(|k| scalar_eq(k, key)))
        };
        if present {
            in_patch.push(item);
        } else {
            server_only.push(item);
        }
    }
    Ok((in_patch, server_only))
}

fn index_of(list: &[Value], item: &Value, merge_key: &str, is_map: bool) -> Option<usize> {
    let probe = |v: &Value| -> Option<Value> { if is_map { v.get(merge_key).cloned() } else { Some(v.clone()) } };
    let wanted = probe(item);
    list.iter().position(|v| match (&wanted, probe(v)) {
        (Some(a), Some(b)) => scalar_eq(a, &b),
        (None, None) => true,
        _ => false,
    })
}

/// Upstream's ordering: patch items follow the patch (or `$setElementOrder`) order,
/// server-only items keep their live order, and the two are interleaved using the live
/// order wherever both items are known to it.
fn normalize_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    is_map: bool,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key, is_map, path)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, is_map, path)?;
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let (mut left, mut right) = (server_only.into_iter().peekable(), patch_items.into_iter().peekable());
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (index_of(server_order, l, merge_key, is_map), index_of(server_order, r, merge_key, is_map)) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(v) = next {
            out.push(v);
        }
    }
    Ok(out)
}

/// A stable insertion sort with upstream's comparator, which puts an item whose
/// position is unknown in front; `$patch: delete` items go last.
fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    is_map: bool,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let (mut items, deletes): (Vec<Value>, Vec<Value>) = if is_map {
        for item in items.iter().chain(order) {
            merge_key_of(item, merge_key, path)?;
        }
        items.into_iter().partition(|i| !is_delete_item(i))
    } else {
        (items, Vec::new())
    };
    let less =
        |a: &Value, b: &Value| match (index_of(order, a, merge_key, is_map), index_of(order, b, merge_key, is_map)) {
            (Some(ia), Some(ib)) => ia < ib,
            _ => true,
        };
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && less(&items[j], &items[j - 1]) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
    items.extend(deletes);
    Ok(items)
}
