//! Service-account tokens: the TokenRequest API (`serviceaccounts/<name>/token`) issues
//! signed JWTs, optionally bound to a pod or secret, and the authenticator accepts them
//! as `system:serviceaccount:<namespace>:<name>`, as upstream's bound service account
//! tokens work.
//!
//! Tokens are ES256-signed with a key kept under the data dir, so they stay valid across
//! restarts. A token is only as good as what it names: the ServiceAccount (and the bound
//! object) must still exist with the uid it was issued for.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::KeyPair;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::UserInfo;

/// The issuer and audience of our tokens, as upstream's default.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Upstream's minimum and default token lifetimes.
const MIN_EXPIRATION: i64 = 600;
const DEFAULT_EXPIRATION: i64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read or write the service account key {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("the service account key {path} is not a usable key: {message}")]
    BadKey { path: String, message: String },
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectClaim,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectClaim>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectClaim {
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    nbf: i64,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaims,
}

/// Signs and verifies service-account tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenIssuer {
    /// Loads the signing key from `dir/service-account.key`, creating it on first start.
    pub fn ensure(dir: &Path) -> Result<TokenIssuer, TokenError> {
        let path = dir.join("service-account.key");
        let shown = path.display().to_string();
        let pem = match std::fs::read_to_string(&path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::generate()
                    .map_err(|e| TokenError::BadKey { path: shown.clone(), message: e.to_string() })?;
                let pem = key.serialize_pem();
                crate::certs::write_private(&path, &pem)
                    .map_err(|e| TokenError::BadKey { path: shown.clone(), message: e.to_string() })?;
                pem
            }
            Err(source) => return Err(TokenError::KeyFile { path: shown, source }),
        };
        let bad = |message: String| TokenError::BadKey { path: shown.clone(), message };
        let key = KeyPair::from_pem(&pem).map_err(|e| bad(e.to_string()))?;
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let decoding = DecodingKey::from_ec_pem(key.public_key_pem().as_bytes()).map_err(|e| bad(e.to_string()))?;
        Ok(TokenIssuer { encoding, decoding })
    }

    /// Issues a token for the TokenRequest `spec`; returns the token and its expiry
    /// (Unix seconds). `now` is Unix seconds.
    pub fn issue(&self, spec: &Value, claims: KubernetesClaims, now: i64) -> Result<(String, i64), TokenError> {
        let lifetime = spec["expirationSeconds"].as_i64().unwrap_or(DEFAULT_EXPIRATION).max(MIN_EXPIRATION);
        let mut aud: Vec<String> =
            spec["audiences"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
        if aud.is_empty() {
            aud.push(ISSUER.to_string());
        }
        let exp = now + lifetime;
        let c = Claims {
            iss: ISSUER.into(),
            sub: format!("system:serviceaccount:{}:{}", claims.namespace, claims.serviceaccount.name),
            aud,
            exp,
            iat: now,
            nbf: now,
            kubernetes: claims,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &c, &self.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok((token, exp))
    }

    /// Checks a bearer token's signature, issuer, audience and lifetime, and returns
    /// what it claims. Whether the named objects still exist is the caller's check.
    pub fn verify(&self, token: &str) -> Option<KubernetesClaims> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[ISSUER]);
        v.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).ok().map(|d| d.claims.kubernetes)
    }
}

/// The user a verified token stands for.
pub fn user_of(claims: &KubernetesClaims) -> UserInfo {
    let ns = &claims.namespace;
    UserInfo {
        username: format!("system:serviceaccount:{ns}:{}", claims.serviceaccount.name),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    }
}

/// The TokenRequest answer.
pub fn token_request_response(request: &Value, namespace: &str, name: &str, token: &str, exp: i64) -> Value {
    let when =
        jiff::Timestamp::from_second(exp).map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default();
    let mut spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    if spec.get("audiences").is_none_or(|a| a.as_array().is_none_or(Vec::is_empty)) {
        spec["audiences"] = json!([ISSUER]);
    }
    let lifetime = spec["expirationSeconds"].as_i64().unwrap_or(DEFAULT_EXPIRATION).max(MIN_EXPIRATION);
    spec["expirationSeconds"] = json!(lifetime);
    json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": when},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> KubernetesClaims {
        KubernetesClaims {
            namespace: "ns".into(),
            serviceaccount: ObjectClaim { name: "sa".into(), uid: "u1".into() },
            pod: Some(ObjectClaim { name: "p".into(), uid: "u2".into() }),
            secret: None,
        }
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = TokenIssuer::ensure(dir.path()).unwrap();
        let now = jiff::Timestamp::now().as_second();
        let (token, exp) = issuer.issue(&json!({}), claims(), now).unwrap();
        assert_eq!(exp, now + 3600);
        assert_eq!(issuer.verify(&token), Some(claims()));
        assert_eq!(user_of(&claims()).username, "system:serviceaccount:ns:sa");

        // Same key after a restart.
        let again = TokenIssuer::ensure(dir.path()).unwrap();
        assert_eq!(again.verify(&token), Some(claims()));
        // Another cluster's key does not verify it.
        let other = TokenIssuer::ensure(tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(other.verify(&token), None);
        // Expired, wrong audience, garbage.
        let (old, _) = issuer.issue(&json!({"expirationSeconds": 600}), claims(), now - 1000).unwrap();
        assert_eq!(issuer.verify(&old), None);
        let (aud, _) = issuer.issue(&json!({"audiences": ["vault"]}), claims(), now).unwrap();
        assert_eq!(issuer.verify(&aud), None);
        assert_eq!(issuer.verify("not.a.token"), None);
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 5;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(issuer.verify(&String::from_utf8(bytes).unwrap()), None);
    }

    #[test]
    fn lifetimes_are_clamped_as_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = TokenIssuer::ensure(dir.path()).unwrap();
        let (_, exp) = issuer.issue(&json!({"expirationSeconds": 10}), claims(), 1000).unwrap();
        assert_eq!(exp, 1600);
        let r = token_request_response(&json!({"spec": {}}), "ns", "sa", "t", 1600);
        assert_eq!(r["spec"]["audiences"], json!([ISSUER]));
        assert_eq!(r["status"]["expirationTimestamp"], "1970-01-01T00:26:40Z");
    }
}
