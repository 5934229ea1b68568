//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: the apiserver finds the
//! pod's node and forwards the request to that node's kubelet over HTTPS, with a client
//! certificate of its own (`kube-apiserver-kubelet-client`), verifying the kubelet's
//! serving certificate against the cluster CA.
//!
//! Logs stream through. Upgrades come in three shapes (see the research notes on the
//! kubectl wire protocol): SPDY from the client goes through untouched; a WebSocket
//! `v5.channel.k8s.io` exec/attach is translated to SPDY by [`crate::remotecommand`];
//! a WebSocket port-forward tunnel (`SPDY/3.1+portforward.k8s.io`) carries SPDY frames
//! in binary messages, which are unwrapped onto a raw SPDY connection to the kubelet.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rkube_apimachinery::ApiError;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::rest::{Api, Target};
use crate::router::Query;

/// The client certificate identity the kubelet API lets in.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
pub const EXEC_WEBSOCKET: &str = "v5.channel.k8s.io";

/// TLS to kubelets.
pub struct KubeletClient {
    tls: tokio_rustls::TlsConnector,
}

/// Where a pod's kubelet listens.
#[derive(Debug, Clone)]
pub struct Location {
    pub host: IpAddr,
    pub port: u16,
    pub node: String,
}

impl KubeletClient {
    pub fn new(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<KubeletClient, String> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| e.to_string())?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient { tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)) })
    }

    /// Sends `req` to the kubelet at `at`; upgrades stay possible on the answer.
    pub async fn send(
        &self,
        at: &Location,
        req: http::Request<Empty<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, ApiError> {
        let url = format!("https://{}:{}{}", at.host, at.port, req.uri());
        let fail = |what: String| ApiError::internal(format!("{} {url}: {what}", req.method()));
        let tcp =
            tokio::net::TcpStream::connect((at.host, at.port)).await.map_err(|e| fail(format!("dial tcp: {e}")))?;
        let tls =
            self.tls.connect(ServerName::IpAddress(at.host.into()), tcp).await.map_err(|e| fail(e.to_string()))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| fail(e.to_string()))?;
        tokio::spawn(conn.with_upgrades());
        let method = req.method().clone();
        sender.send_request(req).await.map_err(|e| ApiError::internal(format!("{method} {url}: {e}")))
    }
}

fn container_names(pod: &Value, key: &str) -> Vec<String> {
    pod["spec"][key]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The container a request means: the one named, or the pod's only one (upstream's
/// messages otherwise).
pub fn resolve_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let containers = container_names(pod, "containers");
    let init = container_names(pod, "initContainers");
    let ephemeral = container_names(pod, "ephemeralContainers");
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().chain(&init).chain(&ephemeral).any(|x| x == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}"))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut msg =
                format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
            if !init.is_empty() {
                msg.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// Upstream's check before reading logs: a container that never ran has none.
fn check_log_status(pod: &Value, container: &str, previous: bool) -> Result<(), ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let statuses = ["containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"]
        .iter()
        .filter_map(|k| pod["status"][k].as_array())
        .flatten()
        .find(|s| s["name"] == container);
    let Some(status) = statuses else {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    };
    let last_terminated = status["lastState"]["terminated"].is_object();
    if previous {
        if !last_terminated {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        }
        return Ok(());
    }
    if let Some(waiting) = status["state"]["waiting"].as_object()
        && !last_terminated
    {
        let reason = waiting.get("reason").and_then(Value::as_str).unwrap_or("");
        let message = match reason {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: trying and failing to pull image"
            ),
            "" => format!("container \"{container}\" in pod \"{name}\" is waiting to start"),
            r => format!("container \"{container}\" in pod \"{name}\" is waiting to start: {r}"),
        };
        return Err(ApiError::bad_request(message));
    }
    Ok(())
}

impl Api {
    /// The kubelet address of the node `pod` is bound to.
    pub fn kubelet_location(&self, pod: &Value) -> Result<Location, ApiError> {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
            return Err(ApiError::bad_request(format!("pod {name} does not have a host assigned")));
        };
        let def = rkube_registry::lookup("", "v1", "nodes").expect("nodes are served");
        let (obj, _) = self.current(def, None, node).ok_or_else(|| ApiError::not_found("", "nodes", node))?;
        let addresses = obj["status"]["addresses"].as_array().cloned().unwrap_or_default();
        let host = ["InternalIP", "ExternalIP", "Hostname"]
            .iter()
            .find_map(|kind| {
                addresses
                    .iter()
                    .filter(|a| a["type"] == *kind)
                    .find_map(|a| a["address"].as_str().and_then(|s| s.parse::<IpAddr>().ok()))
            })
            .ok_or_else(|| ApiError::bad_request(format!("node {node} has no address the apiserver can reach")))?;
        let port = obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64().unwrap_or(10250);
        let port = u16::try_from(port)
            .map_err(|_| ApiError::bad_request(format!("node {node} has an invalid kubelet port")))?;
        Ok(Location { host, port, node: node.to_string() })
    }

    fn kubelet(&self) -> Result<&KubeletClient, ApiError> {
        self.kubelet_client.get().ok_or_else(|| ApiError::internal("the kubelet client is not configured"))
    }
}

fn query_string(pairs: &[(&str, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn pod_path(pod: &Value) -> (String, String) {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    (
        form_urlencoded::byte_serialize(ns.as_bytes()).collect(),
        form_urlencoded::byte_serialize(name.as_bytes()).collect(),
    )
}

/// A kubelet answer that is not what was asked for, as a Status with its code.
async fn kubelet_error(resp: http::Response<hyper::body::Incoming>) -> ApiError {
    let code = resp.status();
    let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_string();
    match code {
        // The kubelet's 404s name what is missing in their text (a container, a sandbox).
        StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => ApiError::bad_request(message),
        StatusCode::FORBIDDEN => ApiError::Forbidden { message },
        _ => ApiError::internal(message),
    }
}

/// Entry point from the router for the four pod subresources.
pub async fn pod_subresource(
    api: &Arc<Api>,
    target: &Target,
    sub: &str,
    method: &Method,
    q: &Query,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let pod_target = Target { subresource: None, ..target.clone() };
    let pod = api.get(&pod_target).await?;
    match sub {
        "log" if *method == Method::GET => logs(api, &pod, q).await,
        "log" => Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource")),
        "exec" | "attach" => remote_command(api, &pod, sub, q, req).await,
        _ => port_forward(api, &pod, req).await,
    }
}

/// `GET nodes/<name>/proxy/<path>`: the kubelet API of that node (e.g. `stats/summary`).
pub async fn node_proxy(
    api: &Arc<Api>,
    node: &str,
    method: &Method,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    if *method != Method::GET {
        return Err(ApiError::method_not_allowed("only GET is proxied to kubelets"));
    }
    let path = req.uri().path();
    let marker = format!("/nodes/{node}/proxy");
    let rest = path.find(&marker).map(|i| &path[i + marker.len()..]).unwrap_or("/");
    let rest = if rest.is_empty() { "/" } else { rest };
    let uri = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let pseudo_pod = serde_json::json!({"metadata": {"name": node}, "spec": {"nodeName": node}});
    let at = api.kubelet_location(&pseudo_pod)?;
    let upstream = http::Request::get(uri).body(Empty::new()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let resp = api.kubelet()?.send(&at, upstream).await?;
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    Ok(out)
}

async fn logs(api: &Arc<Api>, pod: &Value, q: &Query) -> Result<Response, ApiError> {
    let container = resolve_container(pod, q.get("container"))?;
    let previous = q.get("previous") == Some("true");
    check_log_status(pod, &container, previous)?;
    for k in ["tailLines", "limitBytes", "sinceSeconds"] {
        if let Some(v) = q.get(k)
            && v.parse::<i64>().map_or(true, |n| n < 0 || (k != "tailLines" && n == 0))
        {
            return Err(ApiError::bad_request(format!("invalid {k}: {v:?}")));
        }
    }
    let at = api.kubelet_location(pod)?;
    let (ns, name) = pod_path(pod);
    let mut pairs = Vec::new();
    for k in ["follow", "previous", "timestamps", "tailLines", "limitBytes", "sinceSeconds", "sinceTime"] {
        if let Some(v) = q.get(k) {
            pairs.push((k, v.to_string()));
        }
    }
    let container_path: String = form_urlencoded::byte_serialize(container.as_bytes()).collect();
    let uri = format!("/containerLogs/{ns}/{name}/{container_path}?{}", query_string(&pairs));
    let req = http::Request::get(uri).body(Empty::new()).map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = api.kubelet()?.send(&at, req).await?;
    if !resp.status().is_success() {
        return Err(kubelet_error(resp).await);
    }
    let mut out = Response::new(Body::new(resp.into_body()));
    out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    out.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(out)
}

fn upgrade_kind(headers: &HeaderMap) -> Option<String> {
    headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).map(|s| s.to_ascii_lowercase())
}

fn websocket_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The 101 answer that accepts a WebSocket with `protocol`.
fn accept_websocket(headers: &HeaderMap, protocol: &str) -> Result<Response, ApiError> {
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| ApiError::bad_request("websocket upgrade without Sec-WebSocket-Key"))?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The client's upgraded connection as a server-side WebSocket.
pub async fn websocket(req: axum::extract::Request) -> Option<WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>> {
    let upgraded = hyper::upgrade::on(req).await.ok()?;
    Some(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await)
}

/// Opens a SPDY upgrade to the kubelet at `path`, offering `protocols`.
pub async fn spdy_to_kubelet(
    api: &Api,
    at: &Location,
    path: String,
    protocols: &[&str],
) -> Result<(hyper::upgrade::Upgraded, String), ApiError> {
    let mut req = http::Request::post(path).header(header::CONNECTION, "Upgrade").header(header::UPGRADE, "SPDY/3.1");
    for p in protocols {
        req = req.header("X-Stream-Protocol-Version", *p);
    }
    let req = req.body(Empty::new()).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = api.kubelet()?.send(at, req).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(kubelet_error(resp).await);
    }
    let chosen =
        resp.headers().get("X-Stream-Protocol-Version").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let upgraded = hyper::upgrade::on(&mut resp).await.map_err(|e| ApiError::internal(format!("upgrade: {e}")))?;
    Ok((upgraded, chosen))
}

async fn remote_command(
    api: &Arc<Api>,
    pod: &Value,
    sub: &str,
    q: &Query,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let container = resolve_container(pod, q.get("container"))?;
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if matches!(phase, "Succeeded" | "Failed") {
        return Err(ApiError::bad_request(format!(
            "cannot {sub} into a container in a completed pod; current phase is {phase}"
        )));
    }
    let flags = crate::remotecommand::Flags::from_query(q);
    if sub == "exec" && q.all("command").is_empty() {
        return Err(ApiError::bad_request("you must specify at least one command for the container"));
    }
    if !(flags.stdin || flags.stdout || flags.stderr) {
        return Err(ApiError::bad_request("you must specify at least one of stdin, stdout, stderr"));
    }
    let at = api.kubelet_location(pod)?;
    let (ns, name) = pod_path(pod);
    let mut pairs: Vec<(&str, String)> = q.all("command").into_iter().map(|c| ("command", c.to_string())).collect();
    for (k, on) in [("stdin", flags.stdin), ("stdout", flags.stdout), ("stderr", flags.stderr), ("tty", flags.tty)] {
        if on {
            pairs.push((k, "true".into()));
        }
    }
    let container_path: String = form_urlencoded::byte_serialize(container.as_bytes()).collect();
    let path = format!("/{sub}/{ns}/{name}/{container_path}?{}", query_string(&pairs));
    match upgrade_kind(req.headers()).as_deref() {
        Some("websocket") => {
            let offered = websocket_protocols(req.headers());
            if !offered.iter().any(|p| p == EXEC_WEBSOCKET) {
                // kubectl falls back to SPDY on any answer other than 101.
                return Err(ApiError::bad_request(format!(
                    "websocket exec needs sub-protocol {EXEC_WEBSOCKET}; offered {offered:?}"
                )));
            }
            let (upgraded, _) = spdy_to_kubelet(api, &at, path, &["v4.channel.k8s.io"]).await?;
            let answer = accept_websocket(req.headers(), EXEC_WEBSOCKET)?;
            tokio::spawn(async move {
                if let Some(ws) = websocket(req).await {
                    crate::remotecommand::translate(ws, upgraded, flags).await;
                }
            });
            Ok(answer)
        }
        Some(u) if u.starts_with("spdy/") => passthrough(api, &at, path, req).await,
        _ => Err(ApiError::bad_request("Upgrade request required")),
    }
}

async fn port_forward(api: &Arc<Api>, pod: &Value, req: axum::extract::Request) -> Result<Response, ApiError> {
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if phase != "Running" {
        return Err(ApiError::bad_request(format!("pod is not running; current phase is {phase}")));
    }
    let at = api.kubelet_location(pod)?;
    let (ns, name) = pod_path(pod);
    let path = format!("/portforward/{ns}/{name}");
    match upgrade_kind(req.headers()).as_deref() {
        Some("websocket") => {
            if !websocket_protocols(req.headers()).iter().any(|p| p == PORT_FORWARD_TUNNEL) {
                return Err(ApiError::bad_request(format!("port-forward over websocket needs {PORT_FORWARD_TUNNEL}")));
            }
            let (upgraded, _) = spdy_to_kubelet(api, &at, path, &["portforward.k8s.io"]).await?;
            let answer = accept_websocket(req.headers(), PORT_FORWARD_TUNNEL)?;
            tokio::spawn(async move {
                if let Some(ws) = websocket(req).await {
                    tunnel(ws, upgraded).await;
                }
            });
            Ok(answer)
        }
        Some(u) if u.starts_with("spdy/") => passthrough(api, &at, path, req).await,
        _ => Err(ApiError::bad_request("Upgrade request required")),
    }
}

/// The headers an upgrade negotiation consists of (the rest stays between the hops).
fn is_upgrade_header(k: &http::HeaderName) -> bool {
    k == header::CONNECTION || k == header::UPGRADE || k.as_str().eq_ignore_ascii_case("x-stream-protocol-version")
}

/// SPDY from the client: the same upgrade request goes to the kubelet, and the two
/// upgraded connections are spliced.
async fn passthrough(
    api: &Arc<Api>,
    at: &Location,
    path: String,
    mut req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let mut upstream = http::Request::builder().method(req.method().clone()).uri(path);
    for (k, v) in req.headers() {
        if is_upgrade_header(k) {
            upstream = upstream.header(k, v);
        }
    }
    let upstream = upstream.body(Empty::new()).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = api.kubelet()?.send(at, upstream).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(kubelet_error(resp).await);
    }
    let client = hyper::upgrade::on(&mut req);
    let kubelet = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (Ok(client), Ok(kubelet)) = (client.await, kubelet.await) else { return };
        let (mut client, mut kubelet) = (TokioIo::new(client), TokioIo::new(kubelet));
        let _ = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await;
    });
    let mut answer = Response::new(Body::empty());
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (k, v) in resp.headers() {
        if is_upgrade_header(k) {
            answer.headers_mut().append(k, v.clone());
        }
    }
    Ok(answer)
}

/// The port-forward tunnel: SPDY bytes inside binary WebSocket messages, unwrapped.
async fn tunnel(ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>, kubelet: hyper::upgrade::Upgraded) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut k_rx, mut k_tx) = tokio::io::split(TokioIo::new(kubelet));
    let up = async {
        while let Some(Ok(msg)) = ws_rx.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Text(t) => Bytes::from(t.as_str().as_bytes().to_vec()),
                Message::Close(_) => break,
                _ => continue,
            };
            if k_tx.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = k_tx.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match k_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws_tx.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = ws_tx.close().await;
    };
    tokio::join!(up, down);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_resolution_follows_upstream_messages() {
        let one = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "nginx"}]}});
        assert_eq!(resolve_container(&one, None).unwrap(), "nginx");
        assert_eq!(resolve_container(&one, Some("")).unwrap(), "nginx");
        assert_eq!(
            resolve_container(&one, Some("x")).unwrap_err().to_status()["message"],
            "container x is not valid for pod web"
        );
        let two = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(
            resolve_container(&two, None).unwrap_err().to_status()["message"],
            "a container name must be specified for pod web, choose one of: [a b] or one of the init containers: [i]"
        );
        assert_eq!(resolve_container(&two, Some("i")).unwrap(), "i");
    }

    #[test]
    fn log_status_checks() {
        let pod = |status: Value| json!({"metadata": {"name": "web"}, "status": {"containerStatuses": [status]}});
        let waiting = pod(json!({"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}));
        let msg = |r: Result<(), ApiError>| r.unwrap_err().to_status()["message"].as_str().unwrap().to_string();
        assert_eq!(
            msg(check_log_status(&waiting, "c", false)),
            "container \"c\" in pod \"web\" is waiting to start: ContainerCreating"
        );
        assert_eq!(
            msg(check_log_status(&waiting, "c", true)),
            "previous terminated container \"c\" in pod \"web\" not found"
        );
        let crashed = pod(
            json!({"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1}}}),
        );
        assert!(check_log_status(&crashed, "c", false).is_ok());
        assert!(check_log_status(&crashed, "c", true).is_ok());
        let pulling = pod(json!({"name": "c", "state": {"waiting": {"reason": "ImagePullBackOff"}}}));
        assert!(msg(check_log_status(&pulling, "c", false)).ends_with("trying and failing to pull image"));
    }
}
