//! The OpenAPI documents rkube's API server publishes: `/openapi/v3` (an index plus one
//! document per group-version, which kubectl uses for validation, client-side `apply`
//! patches and `explain`) and `/openapi/v2` as JSON.
//!
//! This is a pure library: [`OpenApi::build`] renders every document once from the table
//! of served kinds (`rkube_registry::RESOURCES`) and the apiserver serves the bytes.
//! Start at [`OpenApi`]; [`schemas`](mod@schemas) makes the definitions from `k8s-openapi`
//! and adds upstream's extensions, [`markers`] holds the strategic-merge-patch and list
//! markers `k8s-openapi` lacks, [`paths`] lays out the operations, and [`v2`] converts the
//! result to swagger 2.0.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub mod markers;
pub mod paths;
pub mod schemas;
pub mod v2;
pub mod v2pb;

/// The Kubernetes version the documents describe (the `info.version` field).
pub const KUBERNETES_VERSION: &str = "v1.33.0";

/// One rendered document and the hash clients put in its URL.
#[derive(Debug, Clone)]
struct Document {
    hash: String,
    body: Vec<u8>,
}

impl Document {
    fn new(value: &Value) -> Document {
        let body = value.to_string().into_bytes();
        Document { hash: hash(&body), body }
    }
}

/// Upper-case hex SHA-256, the shape of upstream's `?hash=` values.
fn hash(bytes: &[u8]) -> String {
    hex::encode_upper(Sha256::digest(bytes))
}

/// Every OpenAPI document of the server, rendered.
#[derive(Debug, Clone)]
pub struct OpenApi {
    index: Vec<u8>,
    documents: BTreeMap<String, Document>,
    v2: Document,
    v2_protobuf: Vec<u8>,
    schemas: Map<String, Value>,
}

impl OpenApi {
    /// Renders every document. Call once at server start.
    pub fn build() -> OpenApi {
        let schemas = schemas::generate();
        let mut documents = BTreeMap::new();
        let mut all_paths = Map::new();
        for (key, paths) in document_paths() {
            documents.insert(key, Document::new(&v3_document(&schemas, &paths)));
            if let Value::Object(paths) = paths {
                all_paths.extend(paths);
            }
        }
        let sorted: BTreeMap<String, Value> = all_paths.into_iter().collect();
        let all_paths: Map<String, Value> = sorted.into_iter().collect();
        let v2_json = v2::document(&schemas, &all_paths, KUBERNETES_VERSION);
        let v2 = Document::new(&v2_json);
        let v2_protobuf = v2pb::encode(&v2_json);
        let index: Map<String, Value> = documents
            .iter()
            .map(|(key, doc)| {
                let url = format!("/openapi/v3/{key}?hash={}", doc.hash);
                (key.clone(), json!({ "serverRelativeURL": url }))
            })
            .collect();
        let index = json!({ "paths": index }).to_string().into_bytes();
        let mut schemas = schemas;
        // The documents are rendered; what stays in memory serves the patch engines,
        // which never read descriptions, and those are most of the bulk.
        for definition in schemas.values_mut() {
            strip_descriptions(definition);
        }
        OpenApi { index, documents, v2, v2_protobuf, schemas }
    }

    /// The body of `GET /openapi/v3`.
    pub fn v3_index(&self) -> &[u8] {
        &self.index
    }

    /// The hash and body of `GET /openapi/v3/<gv_path>`, where `gv_path` is a key of the
    /// index such as `api/v1` or `apis/apps/v1` (a leading or trailing `/` is ignored).
    pub fn v3_document(&self, gv_path: &str) -> Option<(&str, &[u8])> {
        let key = gv_path.trim_matches('/');
        self.documents.get(key).map(|d| (d.hash.as_str(), d.body.as_slice()))
    }

    /// The keys of the v3 index, sorted.
    pub fn v3_paths(&self) -> impl Iterator<Item = &str> {
        self.documents.keys().map(String::as_str)
    }

    /// The body of `GET /openapi/v2` in JSON.
    pub fn v2_document(&self) -> &[u8] {
        &self.v2.body
    }

    /// The body of `GET /openapi/v2` in protobuf (gnostic's `openapi_v2.Document`).
    pub fn v2_protobuf(&self) -> &[u8] {
        &self.v2_protobuf
    }

    /// A hash of [`Self::v2_document`], usable as its ETag.
    pub fn v2_hash(&self) -> &str {
        &self.v2.hash
    }

    /// Every definition, keyed by upstream name, in v3 form (`$ref`s are
    /// `#/components/schemas/<name>`) with the `x-kubernetes-*` extensions, without
    /// descriptions (the served documents have them).
    pub fn schemas(&self) -> &Map<String, Value> {
        &self.schemas
    }
}

fn strip_descriptions(v: &mut Value) {
    match v {
        Value::Object(m) => {
            // A property may itself be called `description` (a schema with a field of
            // that name): only drop the annotation, which is always a string.
            if m.get("description").is_some_and(Value::is_string) {
                m.remove("description");
            }
            m.values_mut().for_each(strip_descriptions);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// The `paths` object of each v3 document, keyed like the index.
fn document_paths() -> Vec<(String, Value)> {
    let mut out = vec![
        ("api".to_string(), paths::core_paths()),
        ("apis".to_string(), paths::apis_paths()),
        ("version".to_string(), paths::version_paths()),
    ];
    for (group, versions) in rkube_registry::groups() {
        if !group.is_empty() {
            out.push((format!("apis/{group}"), paths::group_paths(group)));
        }
        for version in versions {
            out.push((paths::gv_key(group, version), paths::group_version_paths(group, version)));
        }
    }
    out
}

/// A v3 document holding `paths` and every definition they reach.
fn v3_document(schemas: &Map<String, Value>, paths: &Value) -> Value {
    let needed: Map<String, Value> = schemas::closure(schemas, paths)
        .into_iter()
        .filter_map(|name| schemas.get(&name).map(|d| (name, d.clone())))
        .collect();
    json!({
        "components": {
            "schemas": needed,
            "securitySchemes": {
                "BearerToken": {
                    "description": "Bearer Token authentication",
                    "in": "header",
                    "name": "authorization",
                    "type": "apiKey",
                },
            },
        },
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "openapi": "3.0.0",
        "paths": paths,
        "security": [{"BearerToken": []}],
    })
}
