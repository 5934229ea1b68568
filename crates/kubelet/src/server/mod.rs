//! The kubelet API over HTTPS, as the apiserver uses it: `/containerLogs`, `/exec`,
//! `/attach`, `/portforward` (the last three hand the upgraded connection to the
//! runtime's streaming server), `/stats/summary`, `/healthz`.
//!
//! Clients must present a certificate signed by the cluster CA, and only the
//! apiserver's (`kube-apiserver-kubelet-client`) or a `system:masters` member is let
//! in: these endpoints run commands in containers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_cri::v1 as cri;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::cri::{Runtime, Streaming};
use crate::pod::spec::{LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};

pub mod logs;
pub mod stats;
mod upgrade;

pub type Body = BoxBody<Bytes, std::io::Error>;

/// The identities allowed to use the kubelet API.
pub const APISERVER_CLIENT: &str = "kube-apiserver-kubelet-client";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad kubelet tls material: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// PEM material of the kubelet's serving certificate and the CA its clients come from.
#[derive(Debug, Clone)]
pub struct Tls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct State {
    pub node_name: String,
    pub runtime: Arc<dyn Runtime>,
    pub streaming: Arc<dyn Streaming>,
}

fn tls_config(tls: &Tls) -> Result<Arc<rustls::ServerConfig>, Error> {
    let err = |e: &dyn std::fmt::Display| Error::Tls(e.to_string());
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes()).collect::<Result<_, _>>().map_err(|e| err(&e))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(|e| err(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(tls.ca_pem.as_bytes()) {
        roots.add(c.map_err(|e| err(&e))?).map_err(|e| err(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().map_err(|e| err(&e))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| err(&e))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Whether the verified client certificate may use the API.
fn allowed(cert: &CertificateDer<'_>) -> bool {
    let Ok((_, x509)) = x509_parser::parse_x509_certificate(cert.as_ref()) else { return false };
    let subject = x509.subject();
    let cn = subject.iter_common_name().filter_map(|a| a.as_str().ok()).any(|cn| cn == APISERVER_CLIENT);
    let masters = subject.iter_organization().filter_map(|a| a.as_str().ok()).any(|o| o == "system:masters");
    cn || masters
}

/// Binds the listener (port 0 picks a free one) and serves until `stop`.
pub async fn start(
    addr: SocketAddr,
    tls: &Tls,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) -> Result<(u16, tokio::task::JoinHandle<()>), Error> {
    let config = tls_config(tls)?;
    let listener = TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr, source })?;
    let port = listener.local_addr().map_err(|source| Error::Listen { addr, source })?.port();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let task = tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = listener.accept() => c,
                _ = stop.changed() => break,
            };
            let Ok((tcp, _)) = conn else { continue };
            let (acceptor, state) = (acceptor.clone(), state.clone());
            tokio::spawn(async move {
                let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else {
                    return;
                };
                let ok = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).is_some_and(allowed);
                let svc = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move {
                        if !ok {
                            return Ok::<_, std::convert::Infallible>(text(StatusCode::FORBIDDEN, "forbidden"));
                        }
                        Ok(route(&state, req).await)
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc).await;
            });
        }
    });
    Ok((port, task))
}

pub fn text(code: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(msg.to_string())).map_err(|never| match never {}).boxed());
    *r.status_mut() = code;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri().query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

async fn route(state: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let span = tracing::debug_span!("kubelet api", %path);
    let _enter = span.enter();
    match segs.as_slice() {
        ["healthz"] => text(StatusCode::OK, "ok"),
        ["stats", "summary"] => match state.streaming.container_stats().await {
            Ok(stats) => {
                let body = serde_json::to_vec(&stats::summary(&state.node_name, &stats)).unwrap_or_default();
                let mut r = text(StatusCode::OK, "");
                *r.body_mut() = Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed();
                r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                r
            }
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        ["containerLogs", ns, pod, container] => container_logs(state, ns, pod, container, &query_pairs(&req)).await,
        ["exec", ns, pod, container] | ["exec", ns, pod, _, container] => {
            upgrade::exec(state, ns, pod, container, req).await
        }
        ["attach", ns, pod, container] | ["attach", ns, pod, _, container] => {
            upgrade::attach(state, ns, pod, container, req).await
        }
        ["portforward", ns, pod] | ["portforward", ns, pod, _] => upgrade::port_forward(state, ns, pod, req).await,
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// The containers of pod `ns/pod` named `container`, newest first, of the pod's newest
/// incarnation (a re-created pod of the same name has a new uid).
pub async fn containers(
    runtime: &dyn Runtime,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<Vec<cri::Container>, crate::cri::Error> {
    let mut found: Vec<cri::Container> = runtime
        .list_containers(None)
        .await?
        .into_iter()
        .filter(|c| {
            c.labels.get(LABEL_POD_NAMESPACE).map(String::as_str) == Some(ns)
                && c.labels.get(LABEL_POD_NAME).map(String::as_str) == Some(pod)
                && c.labels.get(LABEL_CONTAINER_NAME).map(String::as_str) == Some(container)
        })
        .collect();
    found.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    if let Some(uid) = found.first().and_then(|c| c.labels.get(LABEL_POD_UID)).cloned() {
        found.retain(|c| c.labels.get(LABEL_POD_UID) == Some(&uid));
    }
    Ok(found)
}

async fn container_logs(
    state: &State,
    ns: &str,
    pod: &str,
    container: &str,
    query: &[(String, String)],
) -> Response<Body> {
    let options = match logs::LogOptions::parse(query, jiff::Timestamp::now()) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, &e),
    };
    let found = match containers(state.runtime.as_ref(), ns, pod, container).await {
        Ok(f) => f,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let chosen = if options.previous { found.get(1) } else { found.first() };
    let Some(chosen) = chosen else {
        let msg = if options.previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating")
        };
        return text(StatusCode::BAD_REQUEST, &msg);
    };
    let status = match state.runtime.container_status(&chosen.id).await {
        Ok(s) => s,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let (tx, rx) = mpsc::channel(16);
    let runtime = state.runtime.clone();
    let id = chosen.id.clone();
    tokio::spawn(logs::stream(status.log_path.into(), options, tx, move || {
        let (runtime, id) = (runtime.clone(), id.clone());
        async move {
            runtime.container_status(&id).await.is_ok_and(|s| s.state == cri::ContainerState::ContainerRunning as i32)
        }
    }));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item.map(hyper::body::Frame::data), rx))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    r
}
