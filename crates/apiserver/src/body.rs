//! Request bodies and response content types.
//!
//! Bodies arrive as JSON, YAML or Kubernetes protobuf; everything past this module sees
//! a `serde_json::Value`. Responses are always JSON; a `Table` or
//! `PartialObjectMetadata` rendering is chosen from the Accept header.

use rkube_apimachinery::ApiError;
use serde_json::Value;

/// Upstream's limit on request bodies.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The media type of a request body, without parameters.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type.unwrap_or("application/json").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Decodes an object body (create, update) of any supported media type.
pub fn decode_object(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let mt = media_type(content_type);
    match mt.as_str() {
        "" | "application/json" | "*/*" => decode_json(body),
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body),
        "application/vnd.kubernetes.protobuf" => decode_protobuf(body),
        other => Err(ApiError::UnsupportedMediaType {
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other})"
            ),
        }),
    }
}

pub fn decode_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty: send a JSON or YAML object"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

pub fn decode_yaml(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the request body is not valid UTF-8"))?;
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
}

fn decode_protobuf(body: &[u8]) -> Result<Value, ApiError> {
    rkube_protobuf::decode(body)
        .map_err(|e| ApiError::bad_request(format!("the protobuf request body could not be decoded: {e}")))
}

/// How the client wants an answer rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendering {
    Object,
    Table,
    PartialMetadata,
}

/// Picks the rendering from an Accept header: the first acceptable entry wins.
pub fn rendering(accept: Option<&str>) -> Result<Rendering, ApiError> {
    let Some(accept) = accept else { return Ok(Rendering::Object) };
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let mt = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let param = |k: &str| params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.as_str());
        let json_like = matches!(mt.as_str(), "application/json" | "*/*" | "application/*" | "application/yaml");
        let proto = mt == "application/vnd.kubernetes.protobuf";
        if !json_like && !proto {
            continue;
        }
        match param("as") {
            None => {
                if json_like {
                    return Ok(Rendering::Object);
                }
                // Protobuf alone: we only speak JSON, keep looking for another entry.
            }
            Some("Table") if matches!(param("g"), Some("meta.k8s.io") | None) => {
                if json_like {
                    return Ok(Rendering::Table);
                }
            }
            Some("PartialObjectMetadata") | Some("PartialObjectMetadataList") => {
                if json_like {
                    return Ok(Rendering::PartialMetadata);
                }
            }
            Some(_) => {}
        }
    }
    Err(ApiError::NotAcceptable {
        message: "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_kubectl_sends() {
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(rendering(Some(table)).unwrap(), Rendering::Table);
        assert_eq!(rendering(Some("application/vnd.kubernetes.protobuf,application/json")).unwrap(), Rendering::Object);
        assert_eq!(rendering(Some("application/vnd.kubernetes.protobuf, */*")).unwrap(), Rendering::Object);
        assert_eq!(rendering(None).unwrap(), Rendering::Object);
        assert_eq!(
            rendering(Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")).unwrap(),
            Rendering::PartialMetadata
        );
        assert!(rendering(Some("application/vnd.kubernetes.protobuf")).is_err());
        assert!(rendering(Some("text/html")).is_err());
    }

    #[test]
    fn bodies() {
        assert!(decode_object(None, b"{\"a\":1}").is_ok());
        assert_eq!(decode_object(None, b"{bad").unwrap_err().code(), 400);
        assert_eq!(decode_object(Some("application/yaml"), b"a: 1\nb: [x]\n").unwrap()["b"][0], "x");
        assert_eq!(decode_object(Some("text/plain"), b"x").unwrap_err().code(), 415);
        assert_eq!(decode_object(None, b"  ").unwrap_err().code(), 400);
    }
}
