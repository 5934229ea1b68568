//! Unknown-field detection for `fieldValidation=Strict|Warn`.
//!
//! The object is decoded into its `k8s-openapi` type and encoded back; a key present in
//! the input but missing from the round trip is a field the type does not know. Only
//! missing keys count: values the type rewrites (quantities, timestamps, `IntOrString`,
//! defaults) are not unknown fields.

use serde_json::Value;

use rkube_registry::ResourceDef;

/// Upstream stops collecting strict-decoding errors at this many.
const MAX_REPORTED: usize = 100;

pub(crate) fn unknown_fields(def: &ResourceDef, obj: &Value) -> Result<Vec<String>, String> {
    // The type checks apiVersion/kind; the apiserver checks those against the URL itself,
    // so only the served ones are given to the decoder (a copy only when they differ).
    let api_version = def.api_version();
    let served = obj.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str())
        && obj.get("kind").and_then(Value::as_str) == Some(def.kind);
    let fixed;
    let input = if served {
        obj
    } else {
        let mut copy = obj.clone();
        if let Some(m) = copy.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(api_version));
            m.insert("kind".into(), Value::String(def.kind.to_string()));
        }
        fixed = copy;
        &fixed
    };
    let output = def.typed.roundtrip(input).map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    walk(input, &output, &mut String::new(), &mut found);
    Ok(found)
}

/// Compares `input` with what the typed round trip kept of it. `path` is the dotted path
/// of `input`, built in place (every pod write walks every field: no string per field).
fn walk(input: &Value, output: &Value, path: &mut String, found: &mut Vec<String>) {
    if found.len() >= MAX_REPORTED {
        return;
    }
    let len = path.len();
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, av) in a {
                if av.is_null() {
                    continue;
                }
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match b.get(k) {
                    Some(bv) => walk(av, bv, path, found),
                    None => {
                        if found.len() < MAX_REPORTED && !found.iter().any(|f| f == path) {
                            found.push(path.clone());
                        }
                    }
                }
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                use std::fmt::Write;
                let _ = write!(path, "[{i}]");
                walk(av, bv, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The strict-decoding error text upstream puts in its 400 message (and, one field per
/// warning, in `Warning` headers): `strict decoding error: unknown field "spec.x", …`.
pub fn strict_decoding_message(fields: &[String]) -> String {
    let parts: Vec<String> = fields.iter().map(|f| format!("unknown field {f:?}")).collect();
    format!("strict decoding error: {}", parts.join(", "))
}
