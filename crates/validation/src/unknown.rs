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
    let mut input = obj.clone();
    // The type checks apiVersion/kind; the apiserver checks those against the URL itself,
    // so only the served ones are given to the decoder.
    if let Some(m) = input.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(def.api_version()));
        m.insert("kind".into(), Value::String(def.kind.to_string()));
    }
    let output = def.typed.roundtrip(&input).map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    walk(&input, &output, "", &mut found);
    Ok(found)
}

fn walk(input: &Value, output: &Value, path: &str, found: &mut Vec<String>) {
    if found.len() >= MAX_REPORTED {
        return;
    }
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, av) in a {
                if av.is_null() {
                    continue;
                }
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match b.get(k) {
                    Some(bv) => walk(av, bv, &child, found),
                    None => {
                        if found.len() < MAX_REPORTED && !found.contains(&child) {
                            found.push(child);
                        }
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                walk(av, bv, &format!("{path}[{i}]"), found);
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
