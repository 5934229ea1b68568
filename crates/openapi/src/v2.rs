//! Swagger 2.0 rendering of the same API (`GET /openapi/v2` as JSON).
//!
//! Built by converting the v3 paths and definitions, so both forms always agree:
//! references move to `#/definitions/`, `allOf`-wrapped references become plain `$ref`s
//! with siblings (as upstream's v2 has them), parameter schemas are flattened, request
//! bodies become `in: body` parameters and content types become `consumes`/`produces`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::schemas::V3_REF_PREFIX;

const V2_REF_PREFIX: &str = "#/definitions/";

/// A v3 schema in v2 form.
pub fn schema(v: &Value) -> Value {
    match v {
        Value::Object(obj) => {
            let mut out = Map::new();
            if let Some(target) = single_ref_all_of(obj) {
                out.insert("$ref".into(), Value::String(convert_ref(target)));
            }
            for (k, v) in obj {
                match k.as_str() {
                    "allOf" if out.contains_key("$ref") => {}
                    "$ref" => {
                        let r = v.as_str().map_or_else(|| v.clone(), |s| Value::String(convert_ref(s)));
                        out.insert(k.clone(), r);
                    }
                    // Property names are data, not keywords: recurse into their values only.
                    "properties" => {
                        let props = v
                            .as_object()
                            .map(|p| p.iter().map(|(name, s)| (name.clone(), schema(s))).collect())
                            .unwrap_or_default();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    _ => {
                        out.insert(k.clone(), schema(v));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(schema).collect()),
        other => other.clone(),
    }
}

/// `allOf: [{"$ref": X}]` → `X`: v3 needs the wrapper to give a reference siblings.
fn single_ref_all_of(obj: &Map<String, Value>) -> Option<&str> {
    match obj.get("allOf")?.as_array()?.as_slice() {
        [Value::Object(only)] if only.len() == 1 => only.get("$ref")?.as_str(),
        _ => None,
    }
}

fn convert_ref(r: &str) -> String {
    match r.strip_prefix(V3_REF_PREFIX) {
        Some(name) => format!("{V2_REF_PREFIX}{name}"),
        None => r.to_string(),
    }
}

/// Upstream's v2 shapes for the two definitions v3 describes with `oneOf`.
fn scalar_shape(name: &str, def: &mut Value) {
    let Some(obj) = def.as_object_mut() else { return };
    let extra = match name {
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => {
            json!({"type": "string", "format": "int-or-string"})
        }
        "io.k8s.apimachinery.pkg.api.resource.Quantity" => json!({"type": "string"}),
        _ => return,
    };
    obj.remove("oneOf");
    obj.remove("format");
    if let Value::Object(extra) = extra {
        obj.extend(extra);
    }
}

fn parameter(p: &Value) -> Value {
    let Some(obj) = p.as_object() else { return p.clone() };
    let mut out = Map::new();
    for (k, v) in obj {
        if k == "schema" {
            if let Some(s) = v.as_object() {
                out.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn parameters(ps: &Value) -> Vec<Value> {
    ps.as_array().map(|ps| ps.iter().map(parameter).collect()).unwrap_or_default()
}

fn content_types(content: &Value) -> Vec<Value> {
    content.as_object().map(|c| c.keys().map(|k| Value::String(k.clone())).collect()).unwrap_or_default()
}

/// The schema of the first content type, which all content types share here.
fn content_schema(content: &Value) -> Option<Value> {
    content.as_object()?.values().next()?.get("schema").map(schema)
}

fn operation(op: &Value) -> Value {
    let Some(obj) = op.as_object() else { return op.clone() };
    let mut out = Map::new();
    let mut params = Vec::new();
    let mut produces = BTreeSet::new();
    for (k, v) in obj {
        match k.as_str() {
            "requestBody" => {
                out.insert("consumes".into(), Value::Array(content_types(&v["content"])));
                let mut body = json!({"in": "body", "name": "body"});
                if v.get("required") == Some(&Value::Bool(true)) {
                    body["required"] = Value::Bool(true);
                }
                if let Some(s) = content_schema(&v["content"]) {
                    body["schema"] = s;
                }
                params.insert(0, body);
            }
            "parameters" => params.extend(parameters(v)),
            "responses" => {
                let mut responses = Map::new();
                for (code, r) in v.as_object().into_iter().flatten() {
                    let mut resp = json!({"description": r["description"]});
                    if let Some(content) = r.get("content") {
                        for t in content_types(content).into_iter().filter_map(|t| t.as_str().map(String::from)) {
                            produces.insert(t);
                        }
                        if let Some(s) = content_schema(content) {
                            resp["schema"] = s;
                        }
                    }
                    responses.insert(code.clone(), resp);
                }
                out.insert("responses".into(), Value::Object(responses));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    out.insert("produces".into(), Value::Array(produces.into_iter().map(Value::String).collect()));
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

fn path_item(item: &Value) -> Value {
    let Some(obj) = item.as_object() else { return item.clone() };
    obj.iter()
        .map(|(k, v)| {
            let v = if k == "parameters" { Value::Array(parameters(v)) } else { operation(v) };
            (k.clone(), v)
        })
        .collect::<Map<_, _>>()
        .into()
}

/// The whole swagger 2.0 document: every path of every v3 document and every definition.
pub fn document(definitions: &Map<String, Value>, paths: &Map<String, Value>, version: &str) -> Value {
    let defs: Map<String, Value> = definitions
        .iter()
        .map(|(name, d)| {
            let mut d = schema(d);
            scalar_shape(name, &mut d);
            (name.clone(), d)
        })
        .collect();
    let paths: Map<String, Value> = paths.iter().map(|(p, item)| (p.clone(), path_item(item))).collect();
    json!({
        "definitions": defs,
        "info": {"title": "Kubernetes", "version": version},
        "paths": paths,
        "security": [{"BearerToken": []}],
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "in": "header",
                "name": "authorization",
                "type": "apiKey",
            },
        },
        "swagger": "2.0",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_refs_become_plain_refs_with_siblings() {
        let v3 = json!({
            "properties": {
                "metadata": {"description": "m", "allOf": [{"$ref": "#/components/schemas/a.B"}]},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/a.C"}},
            },
        });
        let v2 = schema(&v3);
        assert_eq!(v2["properties"]["metadata"], json!({"$ref": "#/definitions/a.B", "description": "m"}));
        assert_eq!(v2["properties"]["items"]["items"]["$ref"], "#/definitions/a.C");
    }

    #[test]
    fn operations_get_body_parameter_consumes_and_produces() {
        let v3 = json!({
            "operationId": "patchX",
            "parameters": [{"in": "query", "name": "force", "schema": {"type": "boolean", "uniqueItems": true}}],
            "requestBody": {"content": {"application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/P"}}}, "required": true},
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/X"}}}}},
        });
        let v2 = operation(&v3);
        assert_eq!(v2["consumes"], json!(["application/merge-patch+json"]));
        assert_eq!(v2["produces"], json!(["application/json"]));
        assert_eq!(
            v2["parameters"][0],
            json!({"in": "body", "name": "body", "required": true, "schema": {"$ref": "#/definitions/P"}})
        );
        assert_eq!(
            v2["parameters"][1],
            json!({"in": "query", "name": "force", "type": "boolean", "uniqueItems": true})
        );
        assert_eq!(v2["responses"]["200"]["schema"]["$ref"], "#/definitions/X");
    }
}
