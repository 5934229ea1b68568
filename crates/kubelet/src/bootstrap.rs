//! How an agent on another machine joins: with the server's URL and join token it
//! fetches the cluster CA (checked against the hash in the token), then asks for its
//! credentials: a client certificate for `system:node:<name>` and the serving
//! certificate of its kubelet API. They are kept under the agent's data dir, so a
//! restarted agent starts without the server's help.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use serde::{Deserialize, Serialize};
use sha2::Digest;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid server url {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("cannot reach the server at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the server's CA does not match the hash in the join token (wrong server or token?)")]
    CaMismatch,
    #[error("the server refused to join this node ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("cannot keep the node credentials in {path}: {source}")]
    Store { path: PathBuf, source: std::io::Error },
}

/// What a joined node holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
}

impl Credentials {
    /// A kubeconfig for the node's client certificate against `server`.
    pub fn kubeconfig(&self, server: &str) -> String {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: default\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: node\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: default\n  context:\n    cluster: default\n    user: node\ncurrent-context: default\n",
            b64(&self.ca_pem),
            b64(&self.client_cert_pem),
            b64(&self.client_key_pem)
        )
    }
}

/// The CA hash a `K10<hash>::…` token pins, if it has one.
pub fn pinned_ca_hash(token: &str) -> Option<&str> {
    token.strip_prefix("K10").and_then(|rest| rest.split_once("::")).map(|(hash, _)| hash)
}

pub fn ca_hash(ca_pem: &str) -> String {
    hex::encode(sha2::Sha256::digest(ca_pem.as_bytes()))
}

/// Trusts any certificate: only for downloading the CA, which is then checked against
/// the token's hash before anything secret is sent.
#[derive(Debug)]
struct FirstContact(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for FirstContact {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct Target {
    host: String,
    port: u16,
    url: String,
}

fn target(url: &str) -> Result<Target, Error> {
    let err = |message: &str| Error::Url { url: url.to_string(), message: message.to_string() };
    let uri: http::Uri = url.parse().map_err(|_| err("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(err("the server URL must start with https://"));
    }
    let host = uri.host().ok_or_else(|| err("no host"))?.trim_matches(['[', ']']).to_string();
    Ok(Target { host, port: uri.port_u16().unwrap_or(6443), url: url.trim_end_matches('/').to_string() })
}

async fn request(
    t: &Target,
    tls: rustls::ClientConfig,
    req: http::Request<Full<Bytes>>,
) -> Result<(u16, Bytes), Error> {
    let fail = |message: String| Error::Connect { url: t.url.clone(), message };
    let name = ServerName::try_from(t.host.clone()).map_err(|e| fail(e.to_string()))?;
    let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port)).await.map_err(|e| fail(e.to_string()))?;
    let stream =
        tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp).await.map_err(|e| fail(e.to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| fail(e.to_string()))?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| fail(e.to_string()))?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(|e| fail(e.to_string()))?.to_bytes();
    Ok((status, body))
}

fn client_config(verifier: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    Ok(match verifier {
        None => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(FirstContact(provider))).with_no_client_auth()
        }
        Some(ca_pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                roots.add(c.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    })
}

/// Joins the cluster at `server` (or reuses the credentials kept in `dir`).
pub async fn join(
    server: &str,
    token: &str,
    node_name: &str,
    addresses: &[String],
    dir: &Path,
) -> Result<Credentials, Error> {
    let kept = dir.join("node-credentials.json");
    if let Ok(text) = std::fs::read_to_string(&kept)
        && let Ok(c) = serde_json::from_str::<Credentials>(&text)
        && pinned_ca_hash(token).is_none_or(|h| h == ca_hash(&c.ca_pem))
    {
        return Ok(c);
    }
    let t = target(server)?;
    let fail = |message: String| Error::Connect { url: t.url.clone(), message };
    let get = http::Request::get(format!("{}/v1-rkube/cacerts", t.url))
        .header(http::header::HOST, &t.host)
        .body(Full::new(Bytes::new()))
        .map_err(|e| fail(e.to_string()))?;
    let (status, ca) = request(&t, client_config(None).map_err(fail)?, get).await?;
    if status != 200 {
        return Err(Error::Refused { status, message: String::from_utf8_lossy(&ca).into_owned() });
    }
    let ca_pem = String::from_utf8_lossy(&ca).into_owned();
    match pinned_ca_hash(token) {
        Some(h) if h != ca_hash(&ca_pem) => return Err(Error::CaMismatch),
        Some(_) => {}
        None => tracing::warn!("the join token pins no CA hash: trusting the CA the server sent"),
    }
    let body = serde_json::json!({"nodeName": node_name, "addresses": addresses}).to_string();
    let post = http::Request::post(format!("{}/v1-rkube/node-credentials", t.url))
        .header(http::header::HOST, &t.host)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| fail(e.to_string()))?;
    let (status, answer) = request(&t, client_config(Some(&ca_pem)).map_err(fail)?, post).await?;
    if status != 200 {
        let message = serde_json::from_slice::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&answer).into_owned());
        return Err(Error::Refused { status, message });
    }
    let creds: Credentials = serde_json::from_slice(&answer)
        .map_err(|e| Error::Refused { status, message: format!("unreadable credentials: {e}") })?;
    let store = |source| Error::Store { path: kept.clone(), source };
    std::fs::create_dir_all(dir).map_err(store)?;
    let tmp = kept.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(store)?;
        f.write_all(serde_json::to_string(&creds).unwrap_or_default().as_bytes()).map_err(store)?;
    }
    std::fs::rename(&tmp, &kept).map_err(store)?;
    Ok(creds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_url_parsing() {
        assert_eq!(pinned_ca_hash("K10abc::node:x"), Some("abc"));
        assert_eq!(pinned_ca_hash("plain"), None);
        let t = target("https://127.0.0.1:7443/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.url.as_str()), ("127.0.0.1", 7443, "https://127.0.0.1:7443"));
        assert!(target("http://x:1").is_err());
        assert!(target("nonsense url").is_err());
        assert_eq!(target("https://[::1]:6443").unwrap().host, "::1");
    }
}
