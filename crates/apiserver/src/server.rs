//! Starting and stopping the API server, the HTTPS listener, the initial cluster state,
//! and the handlers that are more than generic REST (patch, scale, binding, eviction,
//! OpenAPI).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rkube_apimachinery::status::success_status;
use rkube_apimachinery::{ApiError, meta};
use rkube_registry::{ResourceDef, lookup};
use rkube_store::Store;
use rkube_store::sqlite::SqliteStore;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::auth::UserInfo;
use crate::cache::WatchCache;
use crate::certs::{CertError, ClusterCerts, write_private};
use crate::rest::{Api, Target, WriteOptions, WriteResult};
use crate::router::error_response;
use crate::{Config, body};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the store at {path}: {message}")]
    Store { path: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Certs(#[from] CertError),
    #[error("cannot create the initial cluster state: {0}")]
    Bootstrap(String),
    #[error(transparent)]
    Tokens(#[from] crate::tokens::TokenError),
}

/// A started server.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub api: Arc<Api>,
    /// The URL clients on this machine reach the API at.
    pub url: String,
    certs: ClusterCerts,
    /// The request handlers, also served in process to this process's own components.
    app: Router,
    shutdown: watch::Sender<bool>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// A transport for a component in this process (scheduler, controllers, the local
    /// agent): each request goes straight to the handlers as `user`, through the same
    /// authorization, admission and watch code as over HTTPS, without TLS, HTTP framing
    /// or a socket. Wrapped in a kube-rs `Client`, the component cannot tell the
    /// difference; against another API server it would use HTTPS instead.
    pub fn in_process<B>(
        &self,
        user: UserInfo,
    ) -> impl tower::Service<
        http::Request<B>,
        Response = Response,
        Error = std::convert::Infallible,
        Future = impl Send + 'static,
    > + Clone
    + Send
    + 'static
    where
        B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let app = self.app.clone();
        tower::service_fn(move |mut req: http::Request<B>| {
            req.extensions_mut().insert(user.clone());
            app.clone().oneshot(req.map(Body::new))
        })
    }

    /// The cluster CA and a serving certificate for a kubelet API on `hosts`, for an
    /// agent running in this process: `(ca, cert, key)` in PEM.
    pub fn kubelet_serving(&self, node: &str, hosts: &[String]) -> Result<(String, String, String), CertError> {
        let (cert, key) = self.certs.issue_serving(&format!("system:node:{node}"), hosts)?;
        Ok((self.certs.ca_pem.clone(), cert, key))
    }

    /// Stops accepting connections and waits a moment for requests in flight.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.accept_task).await;
    }
}

/// Starts the API server: store, cache, initial state, certificates, HTTPS listener,
/// then writes the kubeconfig.
pub async fn run(config: Config) -> Result<RunningServer, ServerError> {
    let db_dir = config.data_dir.join("server").join("db");
    std::fs::create_dir_all(&db_dir)
        .map_err(|e| ServerError::Store { path: db_dir.display().to_string(), message: e.to_string() })?;
    let db = db_dir.join("state.db");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&db)
            .map_err(|e| ServerError::Store { path: db.display().to_string(), message: e.to_string() })?,
    );
    let cache = WatchCache::start(store.clone())
        .await
        .map_err(|e| ServerError::Store { path: db.display().to_string(), message: e.to_string() })?;
    let tokens = crate::tokens::TokenIssuer::ensure(&config.data_dir.join("server").join("tls"))?;
    let api = Arc::new(Api::new(store.clone(), cache, config.clone(), tokens));
    // Managed-fields bookkeeping in the bootstrap writes already needs the schemas.
    let _ = tokio::task::spawn_blocking(crate::openapi::get).await;
    bootstrap(&api).await.map_err(|e| ServerError::Bootstrap(e.to_string()))?;

    let host = hostname();
    let mut sans: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        config.service_cidr.nth(1).to_string(),
    ];
    if !config.bind_address.is_unspecified() {
        sans.push(config.bind_address.to_string());
    }
    if let Some(h) = host {
        sans.push(h);
    }
    sans.extend(config.tls_sans.iter().cloned());
    sans.dedup();
    let certs = ClusterCerts::ensure(&config.data_dir, &sans)?;
    let tls = certs.server_config()?;
    let (kubelet_cert, kubelet_key) = certs.issue_client(crate::proxy::KUBELET_CLIENT_USER, Some("system:masters"))?;
    let kubelet =
        crate::proxy::KubeletClient::new(&certs.ca_pem, &kubelet_cert, &kubelet_key).map_err(CertError::Tls)?;
    let _ = api.kubelet_client.set(kubelet);
    let _ = api.join.set(crate::join::JoinService::ensure(&config.data_dir, certs.clone())?);

    let addr = SocketAddr::new(config.bind_address, config.port);
    let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Listen { addr, source })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Listen { addr, source })?;
    let app: Router = Router::new().fallback(crate::router::handle).with_state(api.clone());
    let local_app = app.clone();
    let (shutdown, mut shutdown_rx) = watch::channel(false);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let accept_task = tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = listener.accept() => c,
                _ = shutdown_rx.changed() => break,
            };
            let Ok((tcp, _peer)) = conn else { continue };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let app = app.clone();
            let mut stop = shutdown_rx.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else {
                    return;
                };
                let user = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| UserInfo::from_certificate(c))
                    .unwrap_or_else(UserInfo::anonymous);
                let svc = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(user.clone());
                    app.clone().oneshot(req.map(Body::new))
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = stop.changed() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(3), conn).await;
                    }
                }
            });
        }
    });

    spawn_compactor(api.clone());
    spawn_endpoint_reconciler(api.clone(), advertise_address(config.bind_address), addr.port());

    let host = if config.bind_address.is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { config.bind_address };
    let url = format!("https://{}", SocketAddr::new(host, addr.port()));
    if let Some(path) = &config.kubeconfig {
        write_private(path, &certs.admin_kubeconfig(&url))?;
    }
    tracing::info!(%addr, "api server ready");
    Ok(RunningServer { addr, api, url, certs, app: local_app, shutdown, accept_task })
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Compacts the store history every interval (five minutes by default) to the revision
/// of one interval before, as kube-apiserver does with etcd.
fn spawn_compactor(api: Arc<Api>) {
    let every = api.config.compaction_interval;
    if every.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        let mut previous = api.cache.revision();
        loop {
            tick.tick().await;
            if let Err(e) = api.store.compact(previous).await {
                tracing::warn!(error = %e, "compaction failed");
            }
            previous = api.cache.revision();
        }
    });
}

/// The address the rest of the cluster reaches this API server at (upstream's
/// `--advertise-address`): the bind address unless it is a wildcard, else the source
/// address of the default route (connecting a UDP socket sends nothing, it only picks
/// the route), else loopback.
fn advertise_address(bind: IpAddr) -> IpAddr {
    if !bind.is_unspecified() {
        return bind;
    }
    std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Keeps `default/kubernetes` Endpoints and EndpointSlice pointing at this server
/// (upstream's apiserver endpoint reconciler): written at start, and put back every
/// 10 s if someone changed them. The `kubernetes` Service has no selector, so no
/// controller writes them.
fn spawn_endpoint_reconciler(api: Arc<Api>, ip: IpAddr, port: u16) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            if let Err(e) = reconcile_kubernetes_endpoints(&api, ip, port).await {
                tracing::warn!(error = %e, "cannot write the endpoints of the kubernetes service");
            }
        }
    });
}

async fn reconcile_kubernetes_endpoints(api: &Api, ip: IpAddr, port: u16) -> Result<(), ApiError> {
    let opts = WriteOptions { field_manager: Some("rkube-apiserver".into()), ..Default::default() };
    let kubernetes =
        |def| Target { def, namespace: Some("default".into()), name: Some("kubernetes".into()), subresource: None };
    let ep_def = lookup("", "v1", "endpoints").expect("endpoints are served");
    let subsets =
        json!([{"addresses": [{"ip": ip.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]);
    let skip_mirror = "endpointslice.kubernetes.io/skip-mirror";
    let current = api.current(ep_def, Some("default"), "kubernetes").map(|(v, _)| v);
    if current.as_ref().is_none_or(|c| c["subsets"] != subsets || c["metadata"]["labels"][skip_mirror] != "true") {
        api.guaranteed_update(&kubernetes(ep_def), &opts, true, |cur| {
            let mut obj = cur.cloned().unwrap_or_else(|| {
                json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes", "namespace": "default"}})
            });
            obj["subsets"] = subsets.clone();
            obj["metadata"]["labels"][skip_mirror] = json!("true");
            Ok((obj, Vec::new()))
        })
        .await?;
    }
    let slice_def = lookup("discovery.k8s.io", "v1", "endpointslices").expect("endpoint slices are served");
    let address_type = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let endpoints = json!([{"addresses": [ip.to_string()], "conditions": {"ready": true}}]);
    let ports = json!([{"name": "https", "port": port, "protocol": "TCP"}]);
    let current = api.current(slice_def, Some("default"), "kubernetes").map(|(v, _)| v);
    let stale = |c: &Value| {
        c["endpoints"] != endpoints
            || c["ports"] != ports
            || c["addressType"] != address_type
            || c["metadata"]["labels"]["kubernetes.io/service-name"] != "kubernetes"
    };
    if current.as_ref().is_none_or(stale) {
        api.guaranteed_update(&kubernetes(slice_def), &opts, true, |cur| {
            let mut obj = cur.cloned().unwrap_or_else(|| {
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": "kubernetes", "namespace": "default"}})
            });
            obj["addressType"] = json!(address_type);
            obj["endpoints"] = endpoints.clone();
            obj["ports"] = ports.clone();
            obj["metadata"]["labels"]["kubernetes.io/service-name"] = json!("kubernetes");
            Ok((obj, Vec::new()))
        })
        .await?;
    }
    Ok(())
}

/// The namespaces and Service every cluster starts with.
async fn bootstrap(api: &Api) -> Result<(), ApiError> {
    let ns_def = lookup("", "v1", "namespaces").expect("namespaces are served");
    let opts = WriteOptions { field_manager: Some("rkube-apiserver".into()), ..Default::default() };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if api.namespace_exists(ns).is_none() {
            let t = Target { def: ns_def, namespace: None, name: None, subresource: None };
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}});
            match api.create(&t, obj, &opts).await {
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let svc_def = lookup("", "v1", "services").expect("services are served");
    if api.current(svc_def, Some("default"), "kubernetes").is_none() {
        let t = Target { def: svc_def, namespace: Some("default".into()), name: None, subresource: None };
        let ip = api.config.service_cidr.nth(1).to_string();
        let obj = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api.config.port}],
                     "sessionAffinity": "None"}});
        match api.create(&t, obj, &opts).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    // The cluster DNS Service, as k3s ships CoreDNS's: every agent serves DNS on its node
    // and its service proxy sends this address there, so the Service has no selector.
    if let Some(ip) = cluster_dns_ip(api.config.service_cidr)
        && api.current(svc_def, Some("kube-system"), "kube-dns").is_none()
    {
        let t = Target { def: svc_def, namespace: Some("kube-system".into()), name: None, subresource: None };
        let obj = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "rkube-dns"}},
            "spec": {"type": "ClusterIP", "clusterIP": ip.to_string(), "sessionAffinity": "None", "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}});
        match api.create(&t, obj, &opts).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The cluster DNS address: the tenth of the service range (10.96.0.10 by default), as
/// kubeadm and k3s choose it; none in a range too small for it.
pub fn cluster_dns_ip(service_cidr: crate::ipnet_lite::Ipv4Net) -> Option<std::net::Ipv4Addr> {
    (service_cidr.size() > 16).then(|| service_cidr.nth(10))
}

fn json_response(code: u16, body: &Value) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn write_response(r: WriteResult) -> Response {
    let mut resp = json_response(r.code, &r.body);
    for w in &r.warnings {
        if let Ok(h) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\""))) {
            resp.headers_mut().append(header::WARNING, h);
        }
    }
    resp
}

/// The `autoscaling/v1` Scale view of a scalable object.
pub fn scale_of(def: &ResourceDef, obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector = label_selector_string(&obj["spec"]["selector"]);
    let _ = def;
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// A LabelSelector object in its string form (`app=nginx,tier in (a,b)`).
fn label_selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        match e["operator"].as_str().unwrap_or("") {
            "In" => parts.push(format!("{key} in ({})", values.join(","))),
            "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
            "Exists" => parts.push(key.to_string()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}

/// PUT or PATCH of the scale subresource: `scale` is a replacement Scale, or `patch`
/// is applied to the current Scale.
pub async fn update_scale(
    api: &Arc<Api>,
    t: &Target,
    scale: Option<Value>,
    patch: Option<(&str, Value)>,
    opts: &WriteOptions,
) -> Result<Response, ApiError> {
    let def = t.def;
    let main = Target { subresource: None, ..t.clone() };
    let r = api
        .guaranteed_update(&main, opts, false, |cur| {
            let cur = cur.ok_or_else(|| ApiError::not_found(def.group, def.plural, t.name.as_deref().unwrap_or("")))?;
            let current_scale = scale_of(def, cur);
            let new_scale = match (&scale, &patch) {
                (Some(s), _) => s.clone(),
                (None, Some((pt, p))) => apply_patch(def, "io.k8s.api.autoscaling.v1.Scale", pt, &current_scale, p)?,
                (None, None) => current_scale.clone(),
            };
            let replicas = new_scale["spec"]["replicas"].as_i64().ok_or_else(|| {
                ApiError::bad_request("the Scale's spec.replicas must be an integer")
            })?;
            if replicas < 0 {
                return Err(ApiError::invalid(
                    "autoscaling",
                    "Scale",
                    t.name.as_deref().unwrap_or(""),
                    format!("Scale.autoscaling \"{}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0", t.name.as_deref().unwrap_or("")),
                    vec![],
                ));
            }
            let mut obj = cur.clone();
            obj["spec"]["replicas"] = json!(replicas);
            let rv = new_scale["metadata"]["resourceVersion"].as_str().unwrap_or("");
            let m = meta::metadata_mut(&mut obj);
            if rv.is_empty() {
                m.remove("resourceVersion");
            } else {
                m.insert("resourceVersion".into(), json!(rv));
            }
            Ok((obj, Vec::new()))
        })
        .await?;
    Ok(json_response(200, &scale_of(def, &r.body)))
}

fn patch_error(def: &ResourceDef, current: &Value, e: rkube_patch::PatchError) -> ApiError {
    match e.http_status() {
        400 => ApiError::bad_request(e.to_string()),
        422 => {
            let name = meta::name(current).unwrap_or("");
            let message = format!("the patch could not be applied: {e}");
            // kubectl prints only the causes of an Invalid status, so the reason goes there.
            let cause = rkube_apimachinery::Cause {
                reason: "FieldValueInvalid".into(),
                message: message.clone(),
                field: "patch".into(),
            };
            ApiError::invalid(
                def.group,
                def.kind,
                name,
                format!("{} {name:?} is invalid: patch: {message}", def.kind),
                vec![cause],
            )
        }
        _ => ApiError::internal(e.to_string()),
    }
}

const PATCH_TYPES: &str = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json";

/// Applies a patch document of the given media type to `current`. `root` names the
/// OpenAPI definition that types a strategic merge patch.
fn apply_patch(
    def: &ResourceDef,
    root: &str,
    patch_type: &str,
    current: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    match patch_type {
        "application/json-patch+json" => {
            rkube_patch::json_patch(current, patch).map_err(|e| patch_error(def, current, e))
        }
        "application/merge-patch+json" => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("the patch must be a JSON object"));
            }
            Ok(rkube_patch::json_merge_patch(current, patch))
        }
        "application/strategic-merge-patch+json" => {
            let schema = crate::openapi::patch_schema();
            rkube_patch::strategic_merge_patch(current, patch, &schema, root).map_err(|e| patch_error(def, current, e))
        }
        other => Err(ApiError::UnsupportedMediaType {
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: {PATCH_TYPES} (got {other})"
            ),
        }),
    }
}

/// PATCH of an object, its status or its scale.
pub async fn patch(
    api: &Arc<Api>,
    t: &Target,
    sub: Option<&str>,
    patch_type: &str,
    body: &[u8],
    opts: &WriteOptions,
) -> Result<Response, ApiError> {
    let def = t.def;
    let is_apply = patch_type == "application/apply-patch+yaml";
    let patch: Value = if is_apply {
        rkube_patch::apply::parse_apply_body(body).map_err(|e| ApiError::bad_request(e.to_string()))?
    } else if matches!(
        patch_type,
        "application/json-patch+json" | "application/merge-patch+json" | "application/strategic-merge-patch+json"
    ) {
        body::decode_json(body)?
    } else {
        return Err(ApiError::UnsupportedMediaType {
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: {PATCH_TYPES} (got {patch_type})"
            ),
        });
    };
    let manager = opts.field_manager.clone().unwrap_or_default();
    if is_apply && manager.is_empty() {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    if sub == Some("scale") {
        if is_apply {
            return Err(ApiError::UnsupportedMediaType {
                message: "apply patches are not supported on the scale subresource".into(),
            });
        }
        return update_scale(api, t, None, Some((patch_type, patch)), opts).await;
    }
    let opts = WriteOptions { apply: is_apply, ..opts.clone() };
    let name = t.name.clone().unwrap_or_default();
    let schema = crate::openapi::patch_schema();
    let r = api
        .guaranteed_update(t, &opts, is_apply, |cur| {
            if is_apply {
                if patch.get("kind").and_then(Value::as_str) != Some(def.kind)
                    || patch.get("apiVersion").and_then(Value::as_str) != Some(def.api_version().as_str())
                {
                    return Err(ApiError::bad_request(format!(
                        "the apply configuration must have apiVersion {:?} and kind {:?} to be applied to {}",
                        def.api_version(),
                        def.kind,
                        def.qualified_name()
                    )));
                }
                let live = cur.map(|c| {
                    let mut c = c.clone();
                    meta::metadata_mut(&mut c).remove("resourceVersion");
                    c
                });
                let mut merged = rkube_patch::apply::apply(
                    live.as_ref(),
                    &patch,
                    &opts.field_manager.clone().unwrap_or_default(),
                    opts.force,
                    &schema,
                    def.openapi_name,
                    &crate::rest::now_rfc3339(),
                )
                .map_err(|e| apply_error(&e))?;
                let m = meta::metadata_mut(&mut merged);
                m.insert("name".into(), json!(name));
                if let Some(ns) = &t.namespace {
                    m.insert("namespace".into(), json!(ns));
                }
                // A resourceVersion in the configuration is a precondition.
                if let Some(rv) =
                    patch.pointer("/metadata/resourceVersion").and_then(Value::as_str).filter(|s| !s.is_empty())
                {
                    m.insert("resourceVersion".into(), json!(rv));
                }
                return Ok((merged, Vec::new()));
            }
            let cur = cur.ok_or_else(|| ApiError::not_found(def.group, def.plural, &name))?;
            let mut base = cur.clone();
            meta::metadata_mut(&mut base).remove("resourceVersion");
            let mut new = apply_patch(def, def.openapi_name, patch_type, &base, &patch)?;
            // A resourceVersion in the patch is a precondition; otherwise patches apply
            // to whatever is current.
            let patched_rv = meta::resource_version(&new).map(str::to_string);
            let m = meta::metadata_mut(&mut new);
            match patched_rv {
                Some(rv) if !rv.is_empty() => m.insert("resourceVersion".into(), json!(rv)),
                _ => m.remove("resourceVersion"),
            };
            Ok((new, Vec::new()))
        })
        .await?;
    Ok(write_response(r))
}

fn apply_error(e: &rkube_patch::apply::ApplyError) -> ApiError {
    match e {
        rkube_patch::apply::ApplyError::Conflicts(conflicts) => ApiError::ApplyConflict {
            message: e.to_string(),
            causes: conflicts
                .iter()
                .map(|c| rkube_apimachinery::Cause {
                    reason: "FieldManagerConflict".into(),
                    message: c.cause_message(),
                    field: c.field.clone(),
                })
                .collect(),
        },
        other => ApiError::bad_request(other.to_string()),
    }
}

/// POST to a subresource: pods/binding, pods/eviction.
pub async fn create_subresource(
    api: &Arc<Api>,
    t: &Target,
    sub: &str,
    body: Value,
    opts: &WriteOptions,
) -> Result<Response, ApiError> {
    let def = t.def;
    let name = t.name.clone().unwrap_or_default();
    match (def.group, def.plural, sub) {
        ("", "pods", "binding") => {
            let node = body["target"]["name"].as_str().unwrap_or("").to_string();
            if node.is_empty() {
                return Err(ApiError::invalid(
                    "",
                    "Binding",
                    &name,
                    format!("Binding \"{name}\" is invalid: target.name: Required value"),
                    vec![],
                ));
            }
            let want_uid = body["metadata"]["uid"].as_str().filter(|u| !u.is_empty()).map(str::to_string);
            // The binding subresource may set spec.nodeName, which a pod update may not.
            api.guaranteed_update(t, opts, false, |cur| {
                let cur = cur.ok_or_else(|| ApiError::not_found("", "pods", &name))?;
                if let Some(uid) = &want_uid
                    && meta::uid(cur) != Some(uid.as_str())
                {
                    return Err(ApiError::conflict(
                        "",
                        "pods",
                        &name,
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            meta::uid(cur).unwrap_or("")
                        ),
                    ));
                }
                let assigned = cur["spec"]["nodeName"].as_str().unwrap_or("");
                if !assigned.is_empty() {
                    return Err(ApiError::conflict(
                        "",
                        "pods",
                        &name,
                        &format!("pod {name} is already assigned to node \"{assigned}\""),
                    ));
                }
                let mut new = cur.clone();
                new["spec"]["nodeName"] = json!(node);
                meta::metadata_mut(&mut new).remove("resourceVersion");
                // Bound means scheduled: the condition says so, replacing an earlier
                // Unschedulable.
                let scheduled = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                                       "lastTransitionTime": crate::rest::now_rfc3339()});
                let conditions = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
                let mut conditions: Vec<Value> =
                    conditions.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
                conditions.insert(0, scheduled);
                new["status"]["conditions"] = json!(conditions);
                Ok((new, Vec::new()))
            })
            .await?;
            Ok(json_response(201, &success_status(None)))
        }
        ("", "serviceaccounts", "token") => {
            let ns = t.namespace.clone().unwrap_or_default();
            let sa = api.get(&Target { subresource: None, ..t.clone() }).await?;
            let mut claims = crate::tokens::KubernetesClaims {
                namespace: ns.clone(),
                serviceaccount: crate::tokens::ObjectClaim {
                    name: name.clone(),
                    uid: meta::uid(&sa).unwrap_or("").into(),
                },
                pod: None,
                secret: None,
            };
            let bound = &body["spec"]["boundObjectRef"];
            if bound.is_object() {
                let kind = bound["kind"].as_str().unwrap_or("");
                let plural = match kind {
                    "Pod" => "pods",
                    "Secret" => "secrets",
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "cannot bind a token to a {other:?}: boundObjectRef.kind must be Pod or Secret"
                        )));
                    }
                };
                let bound_name = bound["name"].as_str().unwrap_or("");
                let def = lookup("", "v1", plural).expect("pods and secrets are served");
                let target =
                    Target { def, namespace: Some(ns.clone()), name: Some(bound_name.into()), subresource: None };
                let obj = api.get(&target).await?;
                let uid = meta::uid(&obj).unwrap_or("").to_string();
                if let Some(want) = bound["uid"].as_str().filter(|u| !u.is_empty())
                    && want != uid
                {
                    return Err(ApiError::conflict(
                        "",
                        plural,
                        bound_name,
                        &format!(
                            "the UID in the bound object reference ({want}) does not match the UID in record ({uid})"
                        ),
                    ));
                }
                let c = Some(crate::tokens::ObjectClaim { name: bound_name.into(), uid });
                if kind == "Pod" { claims.pod = c } else { claims.secret = c }
            }
            let (token, exp) = api
                .tokens
                .issue(&body["spec"], claims, jiff::Timestamp::now().as_second())
                .map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(json_response(201, &crate::tokens::token_request_response(&body, &ns, &name, &token, exp)))
        }
        ("", "pods", "eviction") => {
            let pod = api.get(&Target { subresource: None, ..t.clone() }).await?;
            check_disruption_budgets(api, &pod)?;
            let del = crate::rest::DeleteOptions {
                dry_run: opts.dry_run,
                grace_period_seconds: body["deleteOptions"]["gracePeriodSeconds"].as_i64(),
                ..Default::default()
            };
            api.delete(&Target { subresource: None, ..t.clone() }, &del).await?;
            Ok(json_response(201, &success_status(None)))
        }
        _ => Err(ApiError::method_not_allowed(format!("POST on {}/{sub} is not supported", def.plural))),
    }
}

/// Refuses an eviction a PodDisruptionBudget forbids (429, as upstream).
fn check_disruption_budgets(api: &Api, pod: &Value) -> Result<(), ApiError> {
    let ns = meta::namespace(pod).unwrap_or("");
    let (pdbs, _) = api.cache.list(&format!("/registry/poddisruptionbudgets/{ns}/"), None);
    for c in pdbs {
        let sel = &c.obj["spec"]["selector"];
        let Ok(s) = rkube_apimachinery::selector::LabelSelector::parse(&label_selector_string(sel)) else { continue };
        if s.is_empty() || !s.matches(meta::labels(pod)) {
            continue;
        }
        if c.obj["status"]["disruptionsAllowed"].as_i64().unwrap_or(0) <= 0 {
            return Err(ApiError::TooManyRequests {
                message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
            });
        }
    }
    Ok(())
}

/// Kept for the router's error path.
pub fn error(e: &ApiError) -> Response {
    error_response(e)
}
