//! exec, attach and port-forward: the kubelet asks the runtime (CRI) for a streaming
//! URL, then hands the client's upgrade request to that URL and splices the two
//! upgraded connections. The runtime's streaming server speaks the protocols (SPDY,
//! WebSocket channels), so the kubelet never parses them, as upstream's does not.

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;

use super::{Body, State, containers, text};
use crate::pod::spec::{LABEL_POD_NAME, LABEL_POD_NAMESPACE};

fn flag(req: &Request<Incoming>, name: &str) -> bool {
    super::query_pairs(req).iter().any(|(k, v)| k == name && (v == "true" || v == "1"))
}

/// The id of the running container `ns/pod/container`, or the answer to give instead.
async fn running_container(state: &State, ns: &str, pod: &str, container: &str) -> Result<String, Response<Body>> {
    let found = containers(state.runtime.as_ref(), ns, pod, container)
        .await
        .map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))?;
    match found.first() {
        Some(c) if c.state == cri::ContainerState::ContainerRunning as i32 => Ok(c.id.clone()),
        Some(_) => Err(text(
            StatusCode::BAD_REQUEST,
            &format!("container {container} is not running in pod {pod}; cannot exec into a stopped container"),
        )),
        None => Err(text(StatusCode::NOT_FOUND, &format!("container {container} not found in pod {pod}"))),
    }
}

pub async fn exec(state: &State, ns: &str, pod: &str, container: &str, req: Request<Incoming>) -> Response<Body> {
    let id = match running_container(state, ns, pod, container).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let cmd: Vec<String> =
        super::query_pairs(&req).into_iter().filter(|(k, _)| k == "command").map(|(_, v)| v).collect();
    if cmd.is_empty() {
        return text(StatusCode::BAD_REQUEST, "you must specify at least one command for the container");
    }
    let request = cri::ExecRequest {
        container_id: id,
        cmd,
        tty: flag(&req, "tty"),
        stdin: flag(&req, "stdin") || flag(&req, "input"),
        stdout: flag(&req, "stdout") || flag(&req, "output"),
        stderr: flag(&req, "stderr") || flag(&req, "error"),
    };
    match state.streaming.exec(request).await {
        Ok(url) => proxy(&url, req).await,
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub async fn attach(state: &State, ns: &str, pod: &str, container: &str, req: Request<Incoming>) -> Response<Body> {
    let id = match running_container(state, ns, pod, container).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let request = cri::AttachRequest {
        container_id: id,
        tty: flag(&req, "tty"),
        stdin: flag(&req, "stdin") || flag(&req, "input"),
        stdout: flag(&req, "stdout") || flag(&req, "output"),
        stderr: flag(&req, "stderr") || flag(&req, "error"),
    };
    match state.streaming.attach(request).await {
        Ok(url) => proxy(&url, req).await,
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub async fn port_forward(state: &State, ns: &str, pod: &str, req: Request<Incoming>) -> Response<Body> {
    let sandboxes = match state.runtime.list_pod_sandboxes(None).await {
        Ok(s) => s,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let sandbox = sandboxes
        .into_iter()
        .filter(|s| {
            s.state == cri::PodSandboxState::SandboxReady as i32
                && s.labels.get(LABEL_POD_NAMESPACE).map(String::as_str) == Some(ns)
                && s.labels.get(LABEL_POD_NAME).map(String::as_str) == Some(pod)
        })
        .max_by_key(|s| s.created_at);
    let Some(sandbox) = sandbox else {
        return text(StatusCode::NOT_FOUND, &format!("pod {pod} has no running sandbox on this node"));
    };
    match state.streaming.port_forward(&sandbox.id).await {
        Ok(url) => proxy(&url, req).await,
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Sends `req` (method and upgrade headers) to the runtime's `url` and, on 101, splices
/// the client's connection with the runtime's.
async fn proxy(url: &str, mut req: Request<Incoming>) -> Response<Body> {
    let bad = |what: &str| text(StatusCode::BAD_GATEWAY, &format!("streaming server {url}: {what}"));
    let Ok(uri) = url.parse::<Uri>() else { return bad("not a url") };
    let Some(authority) = uri.authority().map(|a| a.to_string()) else { return bad("no address") };
    let tcp = match tokio::net::TcpStream::connect(&authority).await {
        Ok(t) => t,
        Err(e) => return bad(&e.to_string()),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await {
        Ok(x) => x,
        Err(e) => return bad(&e.to_string()),
    };
    tokio::spawn(conn.with_upgrades());
    let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let mut upstream = Request::builder().method(req.method().clone()).uri(path);
    for (k, v) in req.headers() {
        if k != http::header::HOST {
            upstream = upstream.header(k, v);
        }
    }
    let upstream = match upstream.header(http::header::HOST, &authority).body(Empty::<Bytes>::new()) {
        Ok(r) => r,
        Err(e) => return bad(&e.to_string()),
    };
    let mut resp = match sender.send_request(upstream).await {
        Ok(r) => r,
        Err(e) => return bad(&e.to_string()),
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let mut r = text(parts.status, "");
        *r.headers_mut() = parts.headers;
        *r.body_mut() = http_body_util::Full::new(body).map_err(|never| match never {}).boxed();
        return r;
    }
    let client_upgrade = hyper::upgrade::on(&mut req);
    let runtime_upgrade = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (Ok(client), Ok(runtime)) = (client_upgrade.await, runtime_upgrade.await) else { return };
        let (mut client, mut runtime) = (TokioIo::new(client), TokioIo::new(runtime));
        let _ = tokio::io::copy_bidirectional(&mut client, &mut runtime).await;
    });
    let mut r = text(StatusCode::SWITCHING_PROTOCOLS, "");
    *r.body_mut() = Empty::new().map_err(|never| match never {}).boxed();
    *r.headers_mut() = resp.headers().clone();
    r
}
