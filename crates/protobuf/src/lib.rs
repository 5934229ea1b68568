//! Decodes Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! into the JSON object the same request would carry as JSON, so the rest of rkube only
//! ever handles JSON. kubectl 1.32+ sends protobuf for `create <generator>`, `auth can-i`,
//! `auth whoami` and drain's pod DELETE.
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` message whose type header
//! names the kind and whose `raw` bytes are the object's generated-protobuf encoding.
//! Start at [`decode`]; the field tables it walks are generated at build time (see
//! `build.rs`) from the `k8s-pb` and `k8s-openapi` crates, [`schema`](crate) maps a kind
//! to its table, and `json.rs` holds the Go-specific JSON forms (`Time`, `Quantity`,
//! `IntOrString`, ...).

mod json;
mod schema;
mod wire;

use serde_json::Value;
use thiserror::Error;

pub use json::JsonError;
pub use wire::WireError;

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\0";

/// The media type of Kubernetes protobuf.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

#[derive(Debug, Error)]
pub enum ProtobufError {
    #[error("body does not start with the kubernetes protobuf magic bytes")]
    Magic,
    #[error("malformed runtime.Unknown envelope: {0}")]
    Envelope(#[source] WireError),
    #[error("envelope has no {0}")]
    MissingType(&'static str),
    #[error("unsupported content encoding {encoding:?}")]
    ContentEncoding { encoding: String },
    #[error("no protobuf schema for kind {kind:?} in {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("decoding {api_version} {kind}: {source}")]
    Object {
        api_version: String,
        kind: String,
        #[source]
        source: JsonError,
    },
}

/// Whether a `Content-Type` header value names Kubernetes protobuf (parameters such as
/// `; charset` are ignored, as is case).
pub fn is_protobuf_content_type(ct: &str) -> bool {
    let media = ct.split(';').next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case(CONTENT_TYPE)
}

/// Decodes a protobuf body into `{"kind", "apiVersion", ...fields}` in Kubernetes JSON
/// form. Fails on a wrong magic, a truncated or malformed message, or a kind without a
/// schema.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    decode_at(body, 0)
}

/// [`decode`] of a body nested `depth` messages deep in another one.
fn decode_at(body: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::Magic)?;
    let envelope = Envelope::parse(rest)?;
    if !envelope.content_encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding { encoding: envelope.content_encoding });
    }
    let api_version = envelope.api_version.ok_or(ProtobufError::MissingType("apiVersion"))?;
    let kind = envelope.kind.ok_or(ProtobufError::MissingType("kind"))?;
    let Some(msg) = schema::for_kind(&api_version, &kind) else {
        return Err(ProtobufError::UnknownKind { api_version, kind });
    };
    let fields = match json::message(msg, envelope.raw, depth) {
        Ok(Value::Object(map)) => map,
        Ok(_) => serde_json::Map::new(),
        Err(source) => return Err(ProtobufError::Object { api_version, kind, source }),
    };
    let mut out = serde_json::Map::with_capacity(fields.len() + 2);
    out.insert("kind".into(), Value::String(kind));
    out.insert("apiVersion".into(), Value::String(api_version));
    out.extend(fields);
    Ok(Value::Object(out))
}

/// `runtime.Unknown`: 1 typeMeta {1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding,
/// 4 contentType.
struct Envelope<'a> {
    api_version: Option<String>,
    kind: Option<String>,
    raw: &'a [u8],
    content_encoding: String,
}

impl<'a> Envelope<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, ProtobufError> {
        let mut env = Envelope { api_version: None, kind: None, raw: &[], content_encoding: String::new() };
        let mut reader = wire::Reader::new(buf);
        while let Some((tag, value)) = reader.next_field().map_err(ProtobufError::Envelope)? {
            match (tag, value) {
                (1, wire::Value::Bytes(type_meta)) => {
                    let mut tm = wire::Reader::new(type_meta);
                    while let Some((t, v)) = tm.next_field().map_err(ProtobufError::Envelope)? {
                        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                        match (t, v) {
                            (1, wire::Value::Bytes(b)) => env.api_version = Some(text(b)),
                            (2, wire::Value::Bytes(b)) => env.kind = Some(text(b)),
                            _ => {}
                        }
                    }
                }
                (2, wire::Value::Bytes(raw)) => env.raw = raw,
                (3, wire::Value::Bytes(enc)) => env.content_encoding = String::from_utf8_lossy(enc).into_owned(),
                _ => {}
            }
        }
        env.api_version = env.api_version.filter(|s| !s.is_empty());
        env.kind = env.kind.filter(|s| !s.is_empty());
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode::bytes_field;

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        bytes_field(1, api_version.as_bytes(), &mut tm);
        bytes_field(2, kind.as_bytes(), &mut tm);
        let mut out = MAGIC.to_vec();
        bytes_field(1, &tm, &mut out);
        bytes_field(2, raw, &mut out);
        out
    }

    #[test]
    fn content_types() {
        let cases = [
            ("application/vnd.kubernetes.protobuf", true),
            ("application/vnd.kubernetes.protobuf; charset=utf-8", true),
            ("Application/VND.Kubernetes.Protobuf", true),
            ("application/vnd.kubernetes.protobuf;stream=watch", true),
            ("application/json", false),
            ("application/vnd.kubernetes.protobuf+json", false),
            ("", false),
        ];
        for (ct, want) in cases {
            assert_eq!(is_protobuf_content_type(ct), want, "{ct}");
        }
    }

    #[test]
    fn bad_envelopes_are_errors() {
        let cm = envelope("v1", "ConfigMap", &[]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{\"kind\":\"ConfigMap\"}".to_vec(), "magic"),
            (b"k8s".to_vec(), "magic"),
            (cm[..cm.len() - 3].to_vec(), "malformed runtime.Unknown"),
            (envelope("v1", "", &[]), "envelope has no kind"),
            (envelope("", "ConfigMap", &[]), "envelope has no apiVersion"),
            (envelope("v1", "Frobnicator", &[]), "no protobuf schema for kind \"Frobnicator\""),
            (envelope("v1", "ConfigMap", &[0x0a, 0x09, 0x0a]), "decoding v1 ConfigMap"),
        ];
        for (body, want) in cases {
            match decode(&body) {
                Ok(v) => panic!("{want}: decoded to {v}"),
                Err(e) => assert!(e.to_string().contains(want), "{e} does not contain {want}"),
            }
        }
    }

    #[test]
    fn empty_object_has_only_type_fields() {
        let v = decode(&envelope("v1", "ConfigMap", &[])).expect("decode");
        assert_eq!(v, serde_json::json!({"kind": "ConfigMap", "apiVersion": "v1"}));
    }
}
