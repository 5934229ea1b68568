//! Unknown-field detection for `fieldValidation=Strict|Warn`.
//!
//! The object is decoded into its `k8s-openapi` type through a deserializer that notes
//! every key the type skipped (`rkube_registry::tracked`). Only unknown keys count:
//! values the type rewrites (quantities, timestamps, `IntOrString`, defaults) are not
//! unknown fields.

use serde_json::Value;

use rkube_registry::ResourceDef;

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
    def.typed.unknown_fields(input).map_err(|e| e.to_string())
}

/// The strict-decoding error text upstream puts in its 400 message (and, one field per
/// warning, in `Warning` headers): `strict decoding error: unknown field "spec.x", …`.
pub fn strict_decoding_message(fields: &[String]) -> String {
    let parts: Vec<String> = fields.iter().map(|f| format!("unknown field {f:?}")).collect();
    format!("strict decoding error: {}", parts.join(", "))
}
