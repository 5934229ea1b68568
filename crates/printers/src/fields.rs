//! Lenient readers over `serde_json::Value` objects, and the small formatters several
//! printers share (labels, label selectors, quantities, container lists).
//!
//! Printing never fails: a missing or mistyped field reads as its zero value, as the
//! field of a decoded Go struct would.

use std::collections::BTreeMap;

use serde_json::Value;

/// The string at a JSON pointer, or `""`.
pub(crate) fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    opt_str(v, ptr).unwrap_or("")
}

/// The string at a JSON pointer, if there is one.
pub(crate) fn opt_str<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// The integer at a JSON pointer, if there is one.
pub(crate) fn opt_int(v: &Value, ptr: &str) -> Option<i64> {
    v.pointer(ptr).and_then(Value::as_i64)
}

/// The integer at a JSON pointer, or 0.
pub(crate) fn int_at(v: &Value, ptr: &str) -> i64 {
    opt_int(v, ptr).unwrap_or(0)
}

/// The boolean at a JSON pointer, if there is one.
pub(crate) fn opt_bool(v: &Value, ptr: &str) -> Option<bool> {
    v.pointer(ptr).and_then(Value::as_bool)
}

/// The array at a JSON pointer, or an empty slice.
pub(crate) fn arr_at<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// Number of entries of the map or list at a JSON pointer.
pub(crate) fn len_at(v: &Value, ptr: &str) -> usize {
    match v.pointer(ptr) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

/// The string-valued entries of the map at a JSON pointer, sorted by key.
pub(crate) fn string_map<'a>(v: &'a Value, ptr: &str) -> BTreeMap<&'a str, &'a str> {
    match v.pointer(ptr) {
        Some(Value::Object(m)) => m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s))).collect(),
        _ => BTreeMap::new(),
    }
}

/// Whether the object has `metadata.deletionTimestamp`.
pub(crate) fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
}

/// `metadata.name`.
pub(crate) fn name(obj: &Value) -> &str {
    str_at(obj, "/metadata/name")
}

/// A label map as `k1=v1,k2=v2` sorted by key, or `<none>` when empty.
pub(crate) fn format_labels(v: &Value, ptr: &str) -> String {
    let labels = string_map(v, ptr);
    if labels.is_empty() {
        return "<none>".to_string();
    }
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// A `metav1.LabelSelector` rendered in selector syntax (`app=web,tier in (a,b),!x`),
/// requirements sorted by key and set values sorted. An absent or empty selector gives
/// `""`; a selector that would not parse upstream (bad operator, wrong value count)
/// gives `None`.
pub(crate) fn selector_string(sel: Option<&Value>) -> Option<String> {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return Some(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (key, value) in string_map(sel, "/matchLabels") {
        if key.is_empty() {
            return None;
        }
        reqs.push((key.to_string(), format!("{key}={value}")));
    }
    for expr in arr_at(sel, "/matchExpressions") {
        let key = str_at(expr, "/key");
        let mut values: Vec<&str> = arr_at(expr, "/values").iter().filter_map(Value::as_str).collect();
        values.sort_unstable();
        if key.is_empty() {
            return None;
        }
        let rendered = match str_at(expr, "/operator") {
            "In" if !values.is_empty() => format!("{key} in ({})", values.join(",")),
            "NotIn" if !values.is_empty() => format!("{key} notin ({})", values.join(",")),
            "Exists" if values.is_empty() => key.to_string(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return None,
        };
        reqs.push((key.to_string(), rendered));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(reqs.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

/// A label selector as upstream's `FormatLabelSelector`: `<none>` when it selects by
/// nothing, `<error>` when it does not parse.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        None => "<error>".to_string(),
        Some(s) if s.is_empty() => "<none>".to_string(),
        Some(s) => s,
    }
}

/// A `resource.Quantity` as written in the object. A missing quantity prints as `0`, as
/// a zero Go quantity does.
// Upstream prints the canonical form (`1.5Gi` becomes `1536Mi`); stored objects usually
// already hold a canonical value, so the text is kept as is.
pub(crate) fn quantity(v: Option<&Value>) -> String {
    quantity_or(v, "0")
}

/// Like [`quantity`] but with the text to show when the quantity is absent.
pub(crate) fn quantity_or(v: Option<&Value>, absent: &str) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => absent.to_string(),
    }
}

/// An `IntOrString` (`2`, `50%`).
pub(crate) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Container names and images of a pod template, each comma-joined.
pub(crate) fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// Joins up to `max` items and summarises the rest as `+ N more...`; `<unset>` when
/// there is nothing.
pub(crate) fn list_with_more(items: &[String], total: usize, max: usize) -> String {
    let shown: Vec<&str> = items.iter().take(max).map(String::as_str).collect();
    let joined = shown.join(",");
    if total > max {
        return format!("{joined} + {} more...", total - max);
    }
    if joined.is_empty() { "<unset>".to_string() } else { joined }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn selectors_render_like_upstream() {
        let cases = [
            (json!(null), Some("")),
            (json!({}), Some("")),
            (json!({"matchLabels": {"b": "2", "a": "1"}}), Some("a=1,b=2")),
            (
                json!({"matchLabels": {"z": "1"}, "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["web", "api"]},
                    {"key": "env", "operator": "NotIn", "values": ["prod"]},
                    {"key": "gpu", "operator": "Exists"},
                    {"key": "old", "operator": "DoesNotExist"},
                ]}),
                Some("env notin (prod),gpu,!old,tier in (api,web),z=1"),
            ),
            (json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}), None),
            (json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}), None),
        ];
        for (sel, want) in cases {
            assert_eq!(selector_string(Some(&sel)).as_deref(), want, "{sel}");
        }
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(format_label_selector(Some(&json!({"matchExpressions": [{"key": "a"}]}))), "<error>");
    }

    #[test]
    fn labels_are_sorted_or_none() {
        let v = json!({"s": {"b": "2", "a": "1"}});
        assert_eq!(format_labels(&v, "/s"), "a=1,b=2");
        assert_eq!(format_labels(&v, "/missing"), "<none>");
    }

    #[test]
    fn lists_summarise_overflow() {
        let items: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(list_with_more(&items[..3], 5, 3), "a,b,c + 2 more...");
        assert_eq!(list_with_more(&items[..2], 2, 3), "a,b");
        assert_eq!(list_with_more(&[], 0, 3), "<unset>");
    }
}
