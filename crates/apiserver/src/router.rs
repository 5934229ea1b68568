//! Request routing: from method and path to discovery, OpenAPI, health, or a REST verb
//! on a resource.
//!
//! Paths are parsed by hand, as upstream's request-info resolver does, because the
//! namespace segment and subresources make a route table awkward:
//! `/api/v1/namespaces/{ns}/{resource}/{name}/{subresource}` and
//! `/apis/{group}/{version}/…` with the same tail.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rkube_apimachinery::selector::{FieldSelector, LabelSelector};
use rkube_apimachinery::{ApiError, meta};
use rkube_registry::{ResourceDef, lookup};
use serde_json::{Value, json};

use crate::auth::{Attributes, Decision, UserInfo};
use crate::body::{self, MAX_BODY, Rendering};
use crate::discovery;
use crate::rest::{Api, DeleteOptions, FieldValidation, ListOptions, Target, WriteOptions, WriteResult, list_bytes};
use crate::table::{IncludeObject, partial_metadata, partial_metadata_list, table};
use crate::watch::{self, WatchParams};

/// Query parameters, decoded.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(form_urlencoded::parse(q.unwrap_or("").as_bytes()).into_owned().collect())
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter (`command=ls&command=-l`).
    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0.iter().filter(|(key, _)| key == k).map(|(_, v)| v.as_str()).collect()
    }

    /// A boolean parameter as upstream converts it: present means true unless it is
    /// `0` or `false` (any case); an empty value is true.
    pub fn flag(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    }
}

fn json_response(code: u16, body: &Value, content_type: &str) -> Response {
    bytes_response(code, serde_json::to_vec(body).unwrap_or_default(), content_type)
}

fn bytes_response(code: u16, bytes: Vec<u8>, content_type: &str) -> Response {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json")),
    );
    r
}

pub fn error_response(e: &ApiError) -> Response {
    json_response(e.code(), &e.to_status(), "application/json")
}

fn text_response(code: u16, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let v = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(h) = HeaderValue::from_str(&v) {
            r.headers_mut().append(header::WARNING, h);
        }
    }
    r
}

/// The entry point of every request (authenticated by the server layer).
pub async fn handle(State(api): State<Arc<Api>>, req: Request) -> Response {
    let started = tokio::time::Instant::now();
    // Joining nodes have no credentials yet; their token is checked by the join service.
    if req.uri().path().starts_with("/v1-rkube/") {
        return join_request(&api, req).await.unwrap_or_else(|e| error_response(&e));
    }
    let mut user = req.extensions().get::<UserInfo>().cloned().unwrap_or_else(UserInfo::anonymous);
    if user.is_anonymous()
        && let Some(token) = bearer_token(req.headers())
    {
        // A credential that does not check out is refused outright, as upstream does.
        match api.authenticate_token(token) {
            Some(u) => user = u,
            None => return error_response(&ApiError::Unauthorized { message: "Unauthorized".into() }),
        }
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::debug_span!("request", %method, %path, user = %user.username);
    let _enter = span.enter();
    let mut labels = ("", String::from("nonresource"));
    let resp = match route(&api, &user, req, &mut labels).await {
        Ok(r) => r,
        Err(e) => {
            if e.code() >= 500 {
                tracing::warn!(%method, %path, error = %e, "request failed");
            }
            error_response(&e)
        }
    };
    let verb = if labels.0.is_empty() { method.as_str() } else { labels.0 };
    api.metrics.observe(verb, &labels.1, resp.status().as_u16(), started.elapsed().as_secs_f64());
    resp
}

async fn join_request(api: &Api, req: Request) -> Result<Response, ApiError> {
    let join = api.join.get().ok_or(ApiError::NoRoute)?;
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, crate::join::CACERTS_PATH) => Ok(join.cacerts()),
        (Method::POST, crate::join::CREDENTIALS_PATH) => {
            let bearer = bearer_token(req.headers()).map(str::to_string);
            let body = read_body(req).await?;
            join.credentials(bearer.as_deref(), &body)
        }
        _ => Err(ApiError::NoRoute),
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn version_body() -> Value {
    json!({
        "major": crate::KUBERNETES_MAJOR,
        "minor": crate::KUBERNETES_MINOR,
        "gitVersion": crate::GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-11-27T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")),
    })
}

fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version" | "/version/")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

async fn route(
    api: &Arc<Api>,
    user: &UserInfo,
    req: Request,
    labels: &mut (&'static str, String),
) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    if user.is_anonymous() && !is_public(&path) {
        return Err(ApiError::Unauthorized { message: "Unauthorized".into() });
    }
    let query = Query::parse(req.uri().query());
    let headers = req.headers().clone();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    match segs.as_slice() {
        [] => Ok(json_response(
            200,
            &json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/metrics", "/openapi/v2", "/openapi/v3", "/readyz", "/version"]}),
            "application/json",
        )),
        ["version"] => Ok(json_response(200, &version_body(), "application/json")),
        ["healthz" | "livez" | "readyz", ..] => Ok(text_response(200, "ok".into())),
        ["metrics"] => {
            let mut r = text_response(200, api.metrics.encode());
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            Ok(r)
        }
        ["api"] => Ok(match discovery::wants_aggregated(accept.as_deref()) {
            Some(v) => aggregated_response(true, v),
            None => json_response(
                200,
                &discovery::api_versions(&format!("{}:{}", api.config.bind_address, api.config.port)),
                "application/json",
            ),
        }),
        ["apis"] => Ok(match discovery::wants_aggregated(accept.as_deref()) {
            Some(v) => aggregated_response(false, v),
            None => json_response(200, &discovery::api_group_list(), "application/json"),
        }),
        ["api", "v1"] => {
            Ok(json_response(200, &discovery::resource_list("", "v1").ok_or(ApiError::NoRoute)?, "application/json"))
        }
        ["apis", g] => Ok(json_response(200, &discovery::group(g).ok_or(ApiError::NoRoute)?, "application/json")),
        ["apis", g, v] => {
            Ok(json_response(200, &discovery::resource_list(g, v).ok_or(ApiError::NoRoute)?, "application/json"))
        }
        ["openapi", rest @ ..] => crate::openapi::serve(rest, accept.as_deref()),
        ["api", "v1", rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            resource(api, user, "", "v1", &rest, method, query, headers, req, labels).await
        }
        ["apis", g, v, rest @ ..] => {
            let (g, v) = (g.to_string(), v.to_string());
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            resource(api, user, &g, &v, &rest, method, query, headers, req, labels).await
        }
        _ => Err(ApiError::NoRoute),
    }
}

fn aggregated_response(legacy: bool, version: &str) -> Response {
    let body = discovery::aggregated(legacy, version);
    json_response(200, &body, &format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"))
}

/// A resource path tail: (watch prefix, namespace, plural, name, subresource).
type Tail = (bool, Option<String>, String, Option<String>, Option<String>);

/// Splits a resource path tail into its parts.
fn parse_tail(rest: &[String]) -> Result<Tail, ApiError> {
    let (watch, rest) = match rest.first().map(String::as_str) {
        Some("watch") => (true, &rest[1..]),
        _ => (false, rest),
    };
    let s: Vec<&str> = rest.iter().map(String::as_str).collect();
    let owned = |x: &str| Some(x.to_string());
    Ok(match s.as_slice() {
        ["namespaces", ns, plural] if !matches!(*plural, "status" | "finalize") => {
            (watch, owned(ns), plural.to_string(), None, None)
        }
        ["namespaces", ns, plural, name] => (watch, owned(ns), plural.to_string(), owned(name), None),
        ["namespaces", ns, plural, name, sub] => (watch, owned(ns), plural.to_string(), owned(name), owned(sub)),
        // `nodes/<name>/proxy/<path…>`: the path after `proxy` goes to the kubelet.
        ["nodes", name, "proxy", ..] => (watch, None, "nodes".to_string(), owned(name), owned("proxy")),
        [plural] => (watch, None, plural.to_string(), None, None),
        [plural, name] => (watch, None, plural.to_string(), owned(name), None),
        [plural, name, sub] => (watch, None, plural.to_string(), owned(name), owned(sub)),
        _ => return Err(ApiError::NoRoute),
    })
}

async fn read_body(req: Request) -> Result<Vec<u8>, ApiError> {
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| ApiError::RequestEntityTooLarge {
        message: format!("the request body is too large: the limit is {MAX_BODY} bytes"),
    })?;
    Ok(body.to_vec())
}

fn write_options(q: &Query, headers: &HeaderMap) -> Result<WriteOptions, ApiError> {
    let dry_run = match q.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            )));
        }
    };
    let field_manager = q.get("fieldManager").map(str::to_string).or_else(|| {
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .map(str::to_string)
    });
    let field_validation = match q.get("fieldValidation") {
        None | Some("") => FieldValidation::Warn,
        Some(v) => FieldValidation::parse(v)?,
    };
    Ok(WriteOptions { dry_run, field_manager, field_validation, force: q.flag("force"), apply: false })
}

fn list_options(q: &Query) -> Result<ListOptions, ApiError> {
    let label_selector =
        LabelSelector::parse(q.get("labelSelector").unwrap_or("")).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let field_selector =
        FieldSelector::parse(q.get("fieldSelector").unwrap_or("")).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = match q.get("limit") {
        None | Some("") => 0,
        Some(l) => {
            l.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?.max(0) as usize
        }
    };
    Ok(ListOptions {
        label_selector,
        field_selector,
        limit,
        continue_token: q.get("continue").filter(|c| !c.is_empty()).map(str::to_string),
        resource_version: q.get("resourceVersion").map(str::to_string),
        resource_version_match: q.get("resourceVersionMatch").map(str::to_string),
    })
}

fn render_object(api: &Api, def: &ResourceDef, obj: &Value, rendering: Rendering, q: &Query) -> Response {
    let _ = api;
    match rendering {
        Rendering::Object => json_response(200, obj, "application/json"),
        Rendering::PartialMetadata => {
            json_response(200, &partial_metadata(obj), "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
        }
        Rendering::Table => {
            let rv = meta::resource_version(obj).unwrap_or("").to_string();
            let t = table(
                def,
                std::slice::from_ref(obj),
                json!({"resourceVersion": rv}),
                IncludeObject::parse(q.get("includeObject")),
                true,
            );
            json_response(200, &t, "application/json;as=Table;v=v1;g=meta.k8s.io")
        }
    }
}

fn write_response(def: &ResourceDef, r: WriteResult) -> Response {
    let _ = def;
    let response = match r.json {
        Some(json) => bytes_response(r.code, json.into_bytes(), "application/json"),
        None => json_response(r.code, &r.body, "application/json"),
    };
    with_warnings(response, &r.warnings)
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    api: &Arc<Api>,
    user: &UserInfo,
    group: &str,
    version: &str,
    rest: &[String],
    method: Method,
    q: Query,
    headers: HeaderMap,
    req: Request,
    labels: &mut (&'static str, String),
) -> Result<Response, ApiError> {
    let (watch_path, ns, plural, name, sub) = parse_tail(rest)?;
    let def = lookup(group, version, &plural).ok_or(ApiError::NoRoute)?;
    labels.1 = def.plural.to_string();
    if ns.is_some() && !def.namespaced {
        return Err(ApiError::NoRoute);
    }
    if let Some(s) = &sub
        && def.subresource(s).is_none()
    {
        return Err(ApiError::NoRoute);
    }
    if !def.namespaced && def.plural == "namespaces" && ns.is_some() {
        return Err(ApiError::NoRoute);
    }
    let target = Target { def, namespace: ns.clone(), name: name.clone(), subresource: sub.clone() };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let is_watch = watch_path || q.flag("watch");
    let verb: &'static str = match (&method, name.is_some(), is_watch) {
        (&Method::GET, false, true) => "watch",
        (&Method::GET, false, false) => "list",
        (&Method::GET, true, _) => "get",
        (&Method::POST, _, _) => "create",
        (&Method::PUT, true, _) => "update",
        (&Method::PATCH, true, _) => "patch",
        (&Method::DELETE, true, _) => "delete",
        (&Method::DELETE, false, _) => "deletecollection",
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource".to_string(),
            ));
        }
    };
    // The metric's verb as upstream reports it (`LIST`, `WATCH`, `POST`, …).
    labels.0 = match verb {
        "watch" => "WATCH",
        "list" => "LIST",
        "get" => "GET",
        "create" => "POST",
        "update" => "PUT",
        "patch" if content_type.as_deref().is_some_and(|c| c.starts_with("application/apply-patch")) => "APPLY",
        "patch" => "PATCH",
        _ => "DELETE",
    };
    let attrs = Attributes {
        user,
        verb,
        group,
        resource: def.plural,
        subresource: sub.as_deref().unwrap_or(""),
        namespace: ns.as_deref().unwrap_or(""),
        name: name.as_deref().unwrap_or(""),
        path: "",
    };
    if let Decision::Deny(reason) = api.authorizer.authorize(&attrs) {
        return Err(ApiError::Forbidden {
            message: format!(
                "{} \"{}\" is forbidden: User \"{}\" cannot {verb} resource \"{}\" in API group \"{group}\": {reason}",
                def.plural,
                name.as_deref().unwrap_or(""),
                user.username,
                def.plural
            ),
        });
    }
    if !def.verbs.contains(&verb) && sub.is_none() {
        return Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource"));
    }
    match (verb, sub.as_deref()) {
        (_, Some(s @ ("log" | "exec" | "attach" | "portforward"))) if def.plural == "pods" => {
            crate::proxy::pod_subresource(api, &target, s, &method, &q, req).await
        }
        (_, Some("proxy")) if def.plural == "nodes" => {
            crate::proxy::node_proxy(api, name.as_deref().unwrap_or_default(), &method, req).await
        }
        ("watch", None) => {
            let rendering = body::rendering(accept)?;
            let lo = list_options(&q)?;
            let timeout = match q.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()) {
                Some(t) => Duration::from_secs(t),
                None => {
                    use rand::Rng;
                    Duration::from_secs(rand::rng().random_range(1800..3600))
                }
            };
            let params = WatchParams {
                resource_version: q.get("resourceVersion").map(str::to_string),
                label_selector: lo.label_selector,
                field_selector: lo.field_selector,
                timeout,
                bookmarks: q.flag("allowWatchBookmarks"),
                send_initial_events: q.flag("sendInitialEvents"),
                rendering,
                include: IncludeObject::parse(q.get("includeObject")),
            };
            let rx = watch::start(api.clone(), &target, params)?;
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
            let stream = futures::StreamExt::map(stream, |s| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(s)));
            let mut r = Response::new(Body::from_stream(stream));
            let ct = match rendering {
                Rendering::Table => "application/json;as=Table;v=v1;g=meta.k8s.io",
                _ => "application/json",
            };
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            Ok(r)
        }
        ("list", None) => {
            let rendering = body::rendering(accept)?;
            let lo = list_options(&q)?;
            let (items, rev, token) = api.list(&target, &lo).await?;
            let mut list_meta = json!({"resourceVersion": rev.to_string()});
            if let Some(t) = &token {
                list_meta["continue"] = json!(t);
            }
            Ok(match rendering {
                Rendering::Object => {
                    // Encoding a big list takes a while: keep it off the async workers.
                    let bytes = tokio::task::spawn_blocking(move || list_bytes(def, &items, rev, token.as_deref()))
                        .await
                        .map_err(|e| ApiError::internal(format!("encoding the list failed: {e}")))?;
                    bytes_response(200, bytes, "application/json")
                }
                Rendering::PartialMetadata => json_response(
                    200,
                    &partial_metadata_list(&items, list_meta),
                    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                ),
                Rendering::Table => json_response(
                    200,
                    &table(def, &items, list_meta, IncludeObject::parse(q.get("includeObject")), true),
                    "application/json;as=Table;v=v1;g=meta.k8s.io",
                ),
            })
        }
        ("get", None) | ("get", Some("status")) => {
            let rendering = body::rendering(accept)?;
            let obj = api.get(&target).await?;
            Ok(render_object(api, def, &obj, rendering, &q))
        }
        ("get", Some("scale")) => {
            let obj = api.get(&target).await?;
            Ok(json_response(200, &crate::server::scale_of(def, &obj), "application/json"))
        }
        ("create", None) => {
            if name.is_some() {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
            if def.namespaced && ns.is_none() {
                return Err(ApiError::NoRoute);
            }
            let opts = write_options(&q, &headers)?;
            let body = read_body(req).await?;
            let obj = body::decode_object(content_type.as_deref(), &body)?;
            if rkube_registry::is_review(def) {
                let answer = crate::reviews::answer(api.authorizer.as_ref(), user, def, ns.as_deref(), obj)?;
                return Ok(json_response(201, &answer, "application/json"));
            }
            Ok(write_response(def, api.create(&target, obj, &opts).await?))
        }
        ("create", Some(s)) => {
            let body = read_body(req).await?;
            let obj = body::decode_object(content_type.as_deref(), &body)?;
            let opts = write_options(&q, &headers)?;
            crate::server::create_subresource(api, &target, s, obj, &opts).await
        }
        ("update", None) | ("update", Some("status")) | ("update", Some("finalize")) => {
            let opts = write_options(&q, &headers)?;
            let body = read_body(req).await?;
            let obj = body::decode_object(content_type.as_deref(), &body)?;
            Ok(write_response(def, api.update(&target, obj, &opts).await?))
        }
        ("update", Some("scale")) => {
            let opts = write_options(&q, &headers)?;
            let body = read_body(req).await?;
            let scale = body::decode_object(content_type.as_deref(), &body)?;
            crate::server::update_scale(api, &target, Some(scale), None, &opts).await
        }
        ("patch", s) => {
            let opts = write_options(&q, &headers)?;
            let body = read_body(req).await?;
            let patch_type = body::media_type(content_type.as_deref());
            crate::server::patch(api, &target, s, &patch_type, &body, &opts).await
        }
        ("delete", None) => {
            let body = read_body(req).await?;
            let opts = delete_options(&q, &body, content_type.as_deref())?;
            let r = api.delete(&target, &opts).await?;
            Ok(write_response(def, r))
        }
        ("deletecollection", None) => {
            let body = read_body(req).await?;
            let opts = delete_options(&q, &body, content_type.as_deref())?;
            let lo = list_options(&q)?;
            let out = api.delete_collection(&target, &lo, &opts).await?;
            Ok(json_response(200, &out, "application/json"))
        }
        _ => Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource")),
    }
}

fn delete_options(q: &Query, body: &[u8], content_type: Option<&str>) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::default();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v = body::decode_object(content_type, body)?;
        opts.dry_run = v["dryRun"].as_array().is_some_and(|a| a.iter().any(|x| x == "All"));
        opts.grace_period_seconds = v["gracePeriodSeconds"].as_i64();
        opts.propagation_policy = v["propagationPolicy"].as_str().map(str::to_string).or_else(|| {
            // The deprecated `orphanDependents` means the same as a policy.
            v["orphanDependents"].as_bool().map(|o| if o { "Orphan" } else { "Background" }.to_string())
        });
        opts.precondition_uid = v["preconditions"]["uid"].as_str().map(str::to_string);
        opts.precondition_rv = v["preconditions"]["resourceVersion"].as_str().map(str::to_string);
    }
    if q.get("dryRun") == Some("All") {
        opts.dry_run = true;
    }
    if let Some(g) = q.get("gracePeriodSeconds") {
        opts.grace_period_seconds =
            Some(g.parse().map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds: {g:?}")))?);
    }
    if let Some(p) = q.get("propagationPolicy") {
        opts.propagation_policy = Some(p.to_string());
    }
    if let Some(p) = &opts.propagation_policy
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        )));
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_parameters_as_upstream() {
        let q = Query::parse(Some("a=true&b=1&c=True&d=&e=false&f=0&g=FALSE&h=yes"));
        let got: Vec<bool> = ["a", "b", "c", "d", "e", "f", "g", "h", "missing"].iter().map(|k| q.flag(k)).collect();
        assert_eq!(got, [true, true, true, true, false, false, false, true, false]);
    }

    #[test]
    fn path_tails() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (w, ns, p, n, sub) = parse_tail(&s(&["namespaces", "default", "pods", "web", "status"])).unwrap();
        assert!(!w);
        assert_eq!(
            (ns.as_deref(), p.as_str(), n.as_deref(), sub.as_deref()),
            (Some("default"), "pods", Some("web"), Some("status"))
        );
        let (_, ns, p, n, sub) = parse_tail(&s(&["namespaces", "kube-system"])).unwrap();
        assert_eq!((ns, p.as_str(), n.as_deref(), sub), (None, "namespaces", Some("kube-system"), None));
        let (_, ns, p, n, sub) = parse_tail(&s(&["namespaces", "x", "status"])).unwrap();
        assert_eq!((ns, p.as_str(), n.as_deref(), sub.as_deref()), (None, "namespaces", Some("x"), Some("status")));
        let (w, ns, p, _, _) = parse_tail(&s(&["watch", "namespaces", "d", "pods"])).unwrap();
        assert!(w);
        assert_eq!((ns.as_deref(), p.as_str()), (Some("d"), "pods"));
        assert!(parse_tail(&s(&["a", "b", "c", "d"])).is_err());
    }
}
