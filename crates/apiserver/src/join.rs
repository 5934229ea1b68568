//! Joining nodes: `rkube agent --server URL --token TOKEN` gets its credentials here.
//!
//! The server keeps one join token in `<data-dir>/server/node-token`, in k3s's shape
//! `K10<sha256 of the CA certificate>::node:<secret>`: the hash lets an agent check the CA
//! it downloads from `/v1-rkube/cacerts` (so the first contact needs no trust), and the
//! secret authorizes `POST /v1-rkube/node-credentials`, which issues the node's client
//! certificate (`system:node:<name>`, group `system:nodes`) and the serving certificate
//! of its kubelet API. Both paths are answered before normal authentication.

use std::path::Path;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use rkube_apimachinery::ApiError;
use serde_json::{Value, json};
use sha2::Digest;

use crate::certs::{CertError, ClusterCerts, write_private};

pub const CACERTS_PATH: &str = "/v1-rkube/cacerts";
pub const CREDENTIALS_PATH: &str = "/v1-rkube/node-credentials";

/// What the join endpoints need.
pub struct JoinService {
    token: String,
    certs: ClusterCerts,
}

/// The `K10<hash>` part of a token for `ca_pem`.
pub fn ca_hash(ca_pem: &str) -> String {
    hex::encode(sha2::Sha256::digest(ca_pem.as_bytes()))
}

/// Splits `K10<hash>::<user>:<secret>` into (hash, secret); a bare secret has no hash.
pub fn parse_token(token: &str) -> (Option<&str>, &str) {
    match token.strip_prefix("K10").and_then(|rest| rest.split_once("::")) {
        Some((hash, cred)) => (Some(hash), cred.split_once(':').map_or(cred, |(_, secret)| secret)),
        None => (None, token),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl JoinService {
    /// Loads the token, creating it on first start.
    pub fn ensure(data_dir: &Path, certs: ClusterCerts) -> Result<JoinService, CertError> {
        let path = data_dir.join("server").join("node-token");
        let token = match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let secret: [u8; 16] = rand::random();
                let token = format!("K10{}::node:{}", ca_hash(&certs.ca_pem), hex::encode(secret));
                write_private(&path, &format!("{token}\n"))?;
                token
            }
        };
        Ok(JoinService { token, certs })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    fn authorized(&self, presented: &str) -> bool {
        let (_, want) = parse_token(&self.token);
        let (hash, got) = parse_token(presented.trim());
        hash.is_none_or(|h| h == ca_hash(&self.certs.ca_pem)) && constant_time_eq(want.as_bytes(), got.as_bytes())
    }

    pub fn cacerts(&self) -> Response {
        let mut r = Response::new(Body::from(self.certs.ca_pem.clone()));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file"));
        r
    }

    /// Issues a node's certificates when `bearer` is the join token.
    pub fn credentials(&self, bearer: Option<&str>, body: &[u8]) -> Result<Response, ApiError> {
        if !bearer.is_some_and(|b| self.authorized(b)) {
            return Err(ApiError::Unauthorized { message: "the join token is not valid for this cluster".into() });
        }
        let req: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("node credentials request is not JSON: {e}")))?;
        let node = req["nodeName"].as_str().unwrap_or_default();
        if node.is_empty() || !rkube_validation::dns1123_subdomain(node).is_empty() {
            return Err(ApiError::bad_request(format!("invalid nodeName {node:?}: must be a DNS subdomain")));
        }
        let mut hosts = vec![node.to_string()];
        for a in req["addresses"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if a.parse::<std::net::IpAddr>().is_err() {
                return Err(ApiError::bad_request(format!("invalid address {a:?}")));
            }
            hosts.push(a.to_string());
        }
        let user = format!("system:node:{node}");
        let issue = |e: CertError| ApiError::internal(e.to_string());
        let (client_cert, client_key) = self.certs.issue_client(&user, Some("system:nodes")).map_err(issue)?;
        let (serving_cert, serving_key) = self.certs.issue_serving(&user, &hosts).map_err(issue)?;
        let body = json!({
            "caPem": self.certs.ca_pem,
            "clientCertPem": client_cert,
            "clientKeyPem": client_key,
            "servingCertPem": serving_cert,
            "servingKeyPem": serving_key,
        });
        let mut r = Response::new(Body::from(body.to_string()));
        *r.status_mut() = StatusCode::OK;
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_as_k3s_writes_them() {
        assert_eq!(parse_token("K10abc::node:s3cret"), (Some("abc"), "s3cret"));
        assert_eq!(parse_token("K10abc::s3cret"), (Some("abc"), "s3cret"));
        assert_eq!(parse_token("s3cret"), (None, "s3cret"));
    }

    #[test]
    fn only_the_right_secret_and_ca_hash_pass() {
        let dir = tempfile::tempdir().unwrap();
        let certs = ClusterCerts::ensure(dir.path(), &["127.0.0.1".into()]).unwrap();
        let svc = JoinService::ensure(dir.path(), certs).unwrap();
        let token = svc.token().to_string();
        assert!(svc.authorized(&token));
        let (_, secret) = parse_token(&token);
        assert!(svc.authorized(secret), "a bare secret is enough");
        assert!(!svc.authorized(&format!("K10{}::node:{secret}", "0".repeat(64))), "another cluster's CA");
        assert!(!svc.authorized("K10x::node:wrong"));
        assert!(!svc.authorized(""));
        assert!(svc.credentials(Some("nope"), b"{}").is_err());
        let err = svc.credentials(Some(&token), br#"{"nodeName": "Bad_Name"}"#).unwrap_err();
        assert_eq!(err.code(), 400);
        let ok = svc.credentials(Some(&token), br#"{"nodeName": "n1", "addresses": ["10.0.0.5"]}"#).unwrap();
        assert_eq!(ok.status(), 200);
        // The token survives a restart.
        let again = JoinService::ensure(dir.path(), ClusterCerts::ensure(dir.path(), &[]).unwrap()).unwrap();
        assert_eq!(again.token(), token);
    }
}
