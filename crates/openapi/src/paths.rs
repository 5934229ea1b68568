//! The `paths` of each OpenAPI v3 document, laid out as kube-apiserver lays them out:
//! collection, item, all-namespaces, deprecated watch and subresource paths per resource,
//! each operation tagged with `x-kubernetes-action` and `x-kubernetes-group-version-kind`.
//!
//! The part kubectl depends on most: every PATCH operation lists `fieldValidation` among
//! its query parameters and the four patch content types in `requestBody.content`; kubectl
//! reads the first to decide on server-side validation and the second to decide on
//! strategic merge patch (cli-runtime `query_param_verifier_v3.go`, kubectl `apply`).

use std::collections::BTreeMap;

use rkube_registry::{Gvk, ResourceDef, SubresourceDef};
use serde_json::{Map, Value, json};

use crate::schemas::{
    API_GROUP, API_GROUP_LIST, API_RESOURCE_LIST, API_VERSIONS, DELETE_OPTIONS, PATCH, STATUS, VERSION_INFO,
    WATCH_EVENT, definition_of, list_definition, v3_ref,
};

/// The content types PATCH accepts, in upstream's order.
pub const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];
const OBJECT_TYPES: &[&str] = &["application/json", "application/vnd.kubernetes.protobuf", "application/yaml"];
const STREAM_TYPES: &[&str] = &[
    "application/json",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf",
    "application/vnd.kubernetes.protobuf;stream=watch",
    "application/yaml",
];
const LOG_TYPES: &[&str] =
    &["application/json", "application/vnd.kubernetes.protobuf", "application/yaml", "text/plain"];

/// The document key of a group-version: `api/v1` or `apis/apps/v1`.
pub fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// `apps` → `apps`, `rbac.authorization.k8s.io` → `rbacAuthorization`, `` → `core`: the
/// group part of upstream's operation tags.
fn group_tag(group: &str) -> String {
    if group.is_empty() {
        return "core".to_string();
    }
    let trimmed = group.strip_suffix(".k8s.io").unwrap_or(group);
    let mut out = String::new();
    for (i, part) in trimmed.split('.').enumerate() {
        if i == 0 { out.push_str(part) } else { out.push_str(&capitalize(part)) }
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({
        "description": description,
        "in": "query",
        "name": name,
        "schema": {"type": ty, "uniqueItems": true},
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "description": description,
        "in": "path",
        "name": name,
        "required": true,
        "schema": {"type": "string", "uniqueItems": true},
    })
}

fn pretty() -> Value {
    query("pretty", "string", "If 'true', the response is pretty-printed.")
}

fn namespace_param() -> Value {
    path_param("namespace", "The namespace of the object; the scope its name is unique in.")
}

fn name_param(kind: &str) -> Value {
    path_param("name", &format!("name of the {kind}"))
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "string",
        "When present, the request is processed but nothing is persisted. The only valid value is All: run every dry-run stage.",
    )
}

fn field_manager(apply: bool) -> Value {
    let mut d = "The name of the actor or entity making these changes: at most 128 printable characters.".to_string();
    if apply {
        d.push_str(" Required for apply patches (application/apply-patch+yaml), optional for the other patch types.");
    }
    query("fieldManager", "string", &d)
}

fn field_validation() -> Value {
    query(
        "fieldValidation",
        "string",
        "What to do with unknown or duplicate fields in a POST, PUT or PATCH body. Ignore: drop them silently. Warn: drop them and report each in a Warning header (the default). Strict: fail the request with BadRequest listing every such field.",
    )
}

fn write_params() -> Vec<Value> {
    vec![dry_run(), field_manager(false), field_validation()]
}

fn patch_params() -> Vec<Value> {
    vec![
        dry_run(),
        field_manager(true),
        field_validation(),
        query(
            "force",
            "boolean",
            "Take over fields other managers own when applying. Must be unset for patch types other than apply.",
        ),
    ]
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "Ask for BOOKMARK events on a watch; servers may ignore it, and it is ignored without watch.",
        ),
        query("continue", "string", "The continue token of a previous chunked list response, to fetch the next chunk."),
        query(
            "fieldSelector",
            "string",
            "Only return objects whose fields match this selector. Defaults to everything.",
        ),
        query(
            "labelSelector",
            "string",
            "Only return objects whose labels match this selector. Defaults to everything.",
        ),
        query(
            "limit",
            "integer",
            "The maximum number of items one list response may hold; the rest is fetched with the continue token.",
        ),
        query(
            "resourceVersion",
            "string",
            "Constrains which resource versions a request may be served from. Defaults to the most recent.",
        ),
        query("resourceVersionMatch", "string", "How resourceVersion applies to a list call: Exact or NotOlderThan."),
        query(
            "sendInitialEvents",
            "boolean",
            "With watch=true, begin the stream with synthetic ADDED events for the current state, ended by a bookmark.",
        ),
        query("timeoutSeconds", "integer", "Timeout for the list or watch call, regardless of activity."),
        query(
            "watch",
            "boolean",
            "Stream add, update and remove notifications for the described resources instead of listing them.",
        ),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        dry_run(),
        query(
            "gracePeriodSeconds",
            "integer",
            "Seconds to wait before the object is deleted; 0 deletes at once, unset uses the kind's default.",
        ),
        query(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            "boolean",
            "Delete an object whose stored data cannot be read or decoded, bypassing finalizers and admission. May break the cluster.",
        ),
        query(
            "orphanDependents",
            "boolean",
            "Deprecated in favour of propagationPolicy: whether dependents are orphaned.",
        ),
        query(
            "propagationPolicy",
            "string",
            "How the garbage collector treats dependents: Orphan, Background or Foreground.",
        ),
    ]
}

fn delete_collection_params() -> Vec<Value> {
    let mut params = delete_params();
    params.extend(
        list_params().into_iter().filter(|p| !matches!(p["name"].as_str(), Some("allowWatchBookmarks" | "watch"))),
    );
    sort_params(&mut params);
    params
}

fn sort_params(params: &mut [Value]) {
    params.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
}

fn content(types: &[&str], schema: &Value) -> Value {
    let mut map = Map::new();
    for t in types {
        map.insert((*t).to_string(), json!({ "schema": schema }));
    }
    Value::Object(map)
}

/// Responses with the given codes all answering `schema`, plus upstream's 401.
fn responses(codes: &[(&str, &str)], types: &[&str], schema: &Value) -> Value {
    let mut map = Map::new();
    for (code, description) in codes {
        map.insert((*code).to_string(), json!({"content": content(types, schema), "description": description}));
    }
    map.insert("401".to_string(), json!({"description": "Unauthorized"}));
    Value::Object(map)
}

const OK: &[(&str, &str)] = &[("200", "OK")];
const OK_CREATED: &[(&str, &str)] = &[("200", "OK"), ("201", "Created")];
const OK_CREATED_ACCEPTED: &[(&str, &str)] = &[("200", "OK"), ("201", "Created"), ("202", "Accepted")];
const OK_ACCEPTED: &[(&str, &str)] = &[("200", "OK"), ("202", "Accepted")];

fn body(types: &[&str], schema: &Value, required: bool) -> Value {
    let mut b = json!({ "content": content(types, schema) });
    if required {
        b["required"] = Value::Bool(true);
    }
    b
}

/// One operation. `gvk` is `None` only for discovery endpoints.
struct Op {
    action: Option<&'static str>,
    id: String,
    description: String,
    tag: String,
    gvk: Option<Gvk>,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Value,
}

impl Op {
    fn into_value(self) -> Value {
        let mut op = Map::new();
        op.insert("description".into(), Value::String(self.description));
        op.insert("operationId".into(), Value::String(self.id));
        if !self.params.is_empty() {
            op.insert("parameters".into(), Value::Array(self.params));
        }
        if let Some(b) = self.body {
            op.insert("requestBody".into(), b);
        }
        op.insert("responses".into(), self.responses);
        op.insert("tags".into(), json!([self.tag]));
        if let Some(a) = self.action {
            op.insert("x-kubernetes-action".into(), Value::String(a.into()));
        }
        if let Some(g) = self.gvk {
            // An object on operations (a list only on schemas): kubectl's verifier reads
            // it with `GetObject` into a map.
            op.insert(
                "x-kubernetes-group-version-kind".into(),
                json!({"group": g.group, "kind": g.kind, "version": g.version}),
            );
        }
        Value::Object(op)
    }
}

/// Collects path items, merging operations that land on the same path.
#[derive(Default)]
struct Paths(BTreeMap<String, Map<String, Value>>);

impl Paths {
    fn op(&mut self, path: &str, method: &str, op: Op) {
        self.0.entry(path.to_string()).or_default().insert(method.to_string(), op.into_value());
    }

    fn params(&mut self, path: &str, mut params: Vec<Value>) {
        sort_params(&mut params);
        self.0.entry(path.to_string()).or_default().insert("parameters".into(), Value::Array(params));
    }

    fn into_value(self) -> Value {
        Value::Object(self.0.into_iter().map(|(k, v)| (k, Value::Object(v))).collect())
    }
}

/// Names shared by every operation of one resource.
struct Ctx<'a> {
    r: &'a ResourceDef,
    /// `CoreV1`, `AppsV1`, `RbacAuthorizationV1`: the middle of upstream operation ids.
    gv_id: String,
    /// `Namespaced` or empty.
    scope: &'static str,
    tag: String,
    base: String,
}

impl Ctx<'_> {
    fn id(&self, verb: &str, suffix: &str) -> String {
        format!("{verb}{}{}{}{suffix}", self.gv_id, self.scope, self.r.kind)
    }

    fn op(&self, action: &'static str, id: String, description: String, gvk: Gvk) -> Op {
        Op {
            action: Some(action),
            id,
            description,
            tag: self.tag.clone(),
            gvk: Some(gvk),
            params: Vec::new(),
            body: None,
            responses: Value::Null,
        }
    }
}

fn gv_id(group: &str, version: &str) -> String {
    format!("{}{}", capitalize(&group_tag(group)), capitalize(version))
}

fn gv_tag(group: &str, version: &str) -> String {
    format!("{}_{version}", group_tag(group))
}

fn base_path(group: &str, version: &str) -> String {
    format!("/{}", gv_key(group, version))
}

/// The `paths` object of the document for one group-version.
pub fn group_version_paths(group: &str, version: &str) -> Value {
    let mut paths = Paths::default();
    let base = base_path(group, version);
    paths.op(
        &format!("{base}/"),
        "get",
        Op {
            action: None,
            id: format!("get{}APIResources", gv_id(group, version)),
            description: "get available resources".into(),
            tag: gv_tag(group, version),
            gvk: None,
            params: Vec::new(),
            body: None,
            responses: responses(OK, OBJECT_TYPES, &v3_ref(API_RESOURCE_LIST)),
        },
    );
    for r in rkube_registry::resources_in(group, version) {
        let ctx = Ctx {
            r,
            gv_id: gv_id(group, version),
            scope: if r.namespaced { "Namespaced" } else { "" },
            tag: gv_tag(group, version),
            base: base.clone(),
        };
        resource_paths(&ctx, &mut paths);
    }
    paths.into_value()
}

fn resource_paths(ctx: &Ctx<'_>, paths: &mut Paths) {
    let r = ctx.r;
    let has = |verb: &str| r.verbs.contains(&verb);
    let kind_ref = v3_ref(r.openapi_name);
    let list_ref = v3_ref(&list_definition(r.openapi_name));
    let status_ref = v3_ref(STATUS);
    let delete_body = body(&["*/*"], &v3_ref(DELETE_OPTIONS), false);
    let ns = if r.namespaced { "/namespaces/{namespace}" } else { "" };
    let ns_params = || if r.namespaced { vec![namespace_param()] } else { Vec::new() };
    let gvk = r.gvk();
    let kind = r.kind;

    let collection = format!("{}{ns}/{}", ctx.base, r.plural);
    let item = format!("{collection}/{{name}}");
    let mut p = ns_params();
    p.push(pretty());
    paths.params(&collection, p);
    if has("list") {
        let mut op = ctx.op("list", ctx.id("list", ""), format!("list or watch objects of kind {kind}"), gvk);
        op.params = list_params();
        op.responses = responses(OK, STREAM_TYPES, &list_ref);
        paths.op(&collection, "get", op);
    }
    if has("create") {
        let mut op = ctx.op("post", ctx.id("create", ""), format!("create a {kind}"), gvk);
        op.params = write_params();
        op.body = Some(body(&["*/*"], &kind_ref, true));
        op.responses = responses(OK_CREATED_ACCEPTED, OBJECT_TYPES, &kind_ref);
        paths.op(&collection, "post", op);
    }
    if has("deletecollection") {
        let id = format!("delete{}Collection{}{kind}", ctx.gv_id, ctx.scope);
        let mut op = ctx.op("deletecollection", id, format!("delete collection of {kind}"), gvk);
        op.params = delete_collection_params();
        op.body = Some(delete_body.clone());
        op.responses = responses(OK, OBJECT_TYPES, &status_ref);
        paths.op(&collection, "delete", op);
    }

    let mut p = ns_params();
    p.extend([name_param(kind), pretty()]);
    paths.params(&item, p);
    if has("get") {
        let mut op = ctx.op("get", ctx.id("read", ""), format!("read the specified {kind}"), gvk);
        op.responses = responses(OK, OBJECT_TYPES, &kind_ref);
        paths.op(&item, "get", op);
    }
    if has("update") {
        let mut op = ctx.op("put", ctx.id("replace", ""), format!("replace the specified {kind}"), gvk);
        op.params = write_params();
        op.body = Some(body(&["*/*"], &kind_ref, true));
        op.responses = responses(OK_CREATED, OBJECT_TYPES, &kind_ref);
        paths.op(&item, "put", op);
    }
    if has("patch") {
        let mut op = ctx.op("patch", ctx.id("patch", ""), format!("partially update the specified {kind}"), gvk);
        op.params = patch_params();
        op.body = Some(body(PATCH_CONTENT_TYPES, &v3_ref(PATCH), true));
        op.responses = responses(OK_CREATED, OBJECT_TYPES, &kind_ref);
        paths.op(&item, "patch", op);
    }
    if has("delete") {
        let mut op = ctx.op("delete", ctx.id("delete", ""), format!("delete a {kind}"), gvk);
        op.params = delete_params();
        op.body = Some(delete_body);
        let answer = if rkube_registry::returns_deleted_object(r) { &kind_ref } else { &status_ref };
        op.responses = responses(OK_ACCEPTED, OBJECT_TYPES, answer);
        paths.op(&item, "delete", op);
    }

    if r.namespaced && has("list") {
        let all = format!("{}/{}", ctx.base, r.plural);
        let mut p = list_params();
        p.push(pretty());
        paths.params(&all, p);
        let id = format!("list{}{kind}ForAllNamespaces", ctx.gv_id);
        let mut op = ctx.op("list", id, format!("list or watch objects of kind {kind}"), gvk);
        op.responses = responses(OK, STREAM_TYPES, &list_ref);
        paths.op(&all, "get", op);
    }

    if has("watch") {
        watch_paths(ctx, paths);
    }
    for sub in r.subresources {
        subresource_paths(ctx, sub, &item, paths);
    }
}

/// The deprecated `/watch/` paths, which upstream still serves and documents.
fn watch_paths(ctx: &Ctx<'_>, paths: &mut Paths) {
    let r = ctx.r;
    let kind = r.kind;
    let gvk = r.gvk();
    let event = v3_ref(WATCH_EVENT);
    let ns = if r.namespaced { "/namespaces/{namespace}" } else { "" };
    let watch_list_desc = format!(
        "watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."
    );
    let with = |extra: Vec<Value>| {
        let mut p = list_params();
        if r.namespaced {
            p.push(namespace_param());
        }
        p.extend(extra);
        p.push(pretty());
        p
    };

    let list_path = format!("{}/watch{ns}/{}", ctx.base, r.plural);
    paths.params(&list_path, with(Vec::new()));
    let mut op = ctx.op("watchlist", ctx.id("watch", "List"), watch_list_desc.clone(), gvk);
    op.responses = responses(OK, STREAM_TYPES, &event);
    paths.op(&list_path, "get", op);

    let item_path = format!("{list_path}/{{name}}");
    paths.params(&item_path, with(vec![name_param(kind)]));
    let desc = format!(
        "watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."
    );
    let mut op = ctx.op("watch", ctx.id("watch", ""), desc, gvk);
    op.responses = responses(OK, STREAM_TYPES, &event);
    paths.op(&item_path, "get", op);

    if r.namespaced {
        let all = format!("{}/watch/{}", ctx.base, r.plural);
        let mut p = list_params();
        p.push(pretty());
        paths.params(&all, p);
        let id = format!("watch{}{kind}ListForAllNamespaces", ctx.gv_id);
        let mut op = ctx.op("watchlist", id, watch_list_desc, gvk);
        op.responses = responses(OK, STREAM_TYPES, &event);
        paths.op(&all, "get", op);
    }
}

fn log_params() -> Vec<Value> {
    vec![
        query("container", "string", "The container to return logs of; may be omitted when the pod has exactly one."),
        query("follow", "boolean", "Keep streaming the log as it is written."),
        query(
            "insecureSkipTLSVerifyBackend",
            "boolean",
            "Do not verify the serving certificate of the kubelet the logs are read from.",
        ),
        query("limitBytes", "integer", "Stop after this many bytes of log output."),
        query("previous", "boolean", "Return the log of the previous, terminated instance of the container."),
        query("sinceSeconds", "integer", "Only return log lines newer than this many seconds."),
        query("stream", "string", "Which stream to return: All (the default), Stdout or Stderr."),
        query("tailLines", "integer", "Only return this many lines from the end of the log."),
        query("timestamps", "boolean", "Prefix every line with an RFC3339 timestamp."),
    ]
}

fn connect_params(sub: &str) -> Vec<Value> {
    let container =
        query("container", "string", "The container to connect to; may be omitted when the pod has exactly one.");
    let stream = |name: &str, what: &str| query(name, "boolean", &format!("Attach the container's {what}."));
    match sub {
        "portforward" => vec![query("ports", "integer", "The ports to forward.")],
        "exec" => vec![
            query("command", "string", "The command to run, one parameter per argument."),
            container,
            stream("stderr", "standard error"),
            stream("stdin", "standard input"),
            stream("stdout", "standard output"),
            query("tty", "boolean", "Allocate a terminal for the session."),
        ],
        _ => vec![
            container,
            stream("stderr", "standard error"),
            stream("stdin", "standard input"),
            stream("stdout", "standard output"),
            query("tty", "boolean", "Allocate a terminal for the session."),
        ],
    }
}

fn subresource_paths(ctx: &Ctx<'_>, sub: &SubresourceDef, item: &str, paths: &mut Paths) {
    let r = ctx.r;
    let kind = r.kind;
    let path = format!("{item}/{}", sub.name);
    let suffix = capitalize(sub.name);
    let string = json!({"type": "string"});
    let mut p = if r.namespaced { vec![namespace_param()] } else { Vec::new() };
    p.push(name_param(kind));

    match sub.name {
        "log" => {
            p.push(pretty());
            paths.params(&path, p);
            let desc = format!("read log of the specified {kind}");
            let mut op = ctx.op("get", ctx.id("read", &suffix), desc, sub.kind);
            op.params = log_params();
            op.responses = responses(OK, LOG_TYPES, &string);
            paths.op(&path, "get", op);
        }
        "exec" | "attach" | "portforward" => {
            paths.params(&path, p);
            for verb in sub.verbs {
                let (method, word) = match *verb {
                    "get" => ("get", "Get"),
                    "create" => ("post", "Post"),
                    _ => continue,
                };
                let id = format!("connect{}{word}{}{kind}{suffix}", ctx.gv_id, ctx.scope);
                let desc = format!("connect {} requests to {} of {kind}", method.to_uppercase(), sub.name);
                let mut op = ctx.op("connect", id, desc, sub.kind);
                op.params = connect_params(sub.name);
                op.responses = responses(OK, &["*/*"], &string);
                paths.op(&path, method, op);
            }
        }
        _ => {
            let Some(def) = definition_of(&sub.kind) else { return };
            let sub_ref = v3_ref(&def);
            p.push(pretty());
            paths.params(&path, p);
            for verb in sub.verbs {
                let name = sub.name;
                let (method, op) = match *verb {
                    "get" => {
                        let mut op = ctx.op(
                            "get",
                            ctx.id("read", &suffix),
                            format!("read {name} of the specified {kind}"),
                            sub.kind,
                        );
                        op.responses = responses(OK, OBJECT_TYPES, &sub_ref);
                        ("get", op)
                    }
                    "update" => {
                        let mut op = ctx.op(
                            "put",
                            ctx.id("replace", &suffix),
                            format!("replace {name} of the specified {kind}"),
                            sub.kind,
                        );
                        op.params = write_params();
                        op.body = Some(body(&["*/*"], &sub_ref, true));
                        op.responses = responses(OK_CREATED, OBJECT_TYPES, &sub_ref);
                        ("put", op)
                    }
                    "patch" => {
                        let mut op = ctx.op(
                            "patch",
                            ctx.id("patch", &suffix),
                            format!("partially update {name} of the specified {kind}"),
                            sub.kind,
                        );
                        op.params = patch_params();
                        op.body = Some(body(PATCH_CONTENT_TYPES, &v3_ref(PATCH), true));
                        op.responses = responses(OK_CREATED, OBJECT_TYPES, &sub_ref);
                        ("patch", op)
                    }
                    "create" => {
                        let mut op =
                            ctx.op("post", ctx.id("create", &suffix), format!("create {name} of a {kind}"), sub.kind);
                        op.params = write_params();
                        op.body = Some(body(&["*/*"], &sub_ref, true));
                        op.responses = responses(OK_CREATED_ACCEPTED, OBJECT_TYPES, &sub_ref);
                        ("post", op)
                    }
                    _ => continue,
                };
                paths.op(&path, method, op);
            }
        }
    }
}

fn discovery_op(id: String, description: &str, tag: String, schema: &str, types: &[&str]) -> Op {
    Op {
        action: None,
        id,
        description: description.to_string(),
        tag,
        gvk: None,
        params: Vec::new(),
        body: None,
        responses: responses(OK, types, &v3_ref(schema)),
    }
}

/// The `paths` of the `apis/<group>` document (the group's discovery endpoint).
pub fn group_paths(group: &str) -> Value {
    let mut paths = Paths::default();
    let tag = group_tag(group);
    let id = format!("get{}APIGroup", capitalize(&tag));
    paths.op(
        &format!("/apis/{group}/"),
        "get",
        discovery_op(id, "get information of a group", tag, API_GROUP, OBJECT_TYPES),
    );
    paths.into_value()
}

/// The `paths` of the `api` document.
pub fn core_paths() -> Value {
    let mut paths = Paths::default();
    let op = discovery_op(
        "getCoreAPIVersions".into(),
        "get available API versions",
        "core".into(),
        API_VERSIONS,
        OBJECT_TYPES,
    );
    paths.op("/api/", "get", op);
    paths.into_value()
}

/// The `paths` of the `apis` document.
pub fn apis_paths() -> Value {
    let mut paths = Paths::default();
    let op = discovery_op(
        "getAPIVersions".into(),
        "get available API versions",
        "apis".into(),
        API_GROUP_LIST,
        OBJECT_TYPES,
    );
    paths.op("/apis/", "get", op);
    paths.into_value()
}

/// The `paths` of the `version` document.
pub fn version_paths() -> Value {
    let mut paths = Paths::default();
    let op = discovery_op(
        "getCodeVersion".into(),
        "get the version information for this server",
        "version".into(),
        VERSION_INFO,
        &["application/json"],
    );
    paths.op("/version/", "get", op);
    paths.into_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_ids_follow_upstream_naming() {
        let cases = [
            ("", "v1", "core_v1", "CoreV1"),
            ("apps", "v1", "apps_v1", "AppsV1"),
            ("rbac.authorization.k8s.io", "v1", "rbacAuthorization_v1", "RbacAuthorizationV1"),
            ("networking.k8s.io", "v1", "networking_v1", "NetworkingV1"),
            ("autoscaling", "v2", "autoscaling_v2", "AutoscalingV2"),
        ];
        for (g, v, tag, id) in cases {
            assert_eq!(gv_tag(g, v), tag);
            assert_eq!(gv_id(g, v), id);
        }
    }

    #[test]
    fn core_paths_cover_collection_item_watch_and_subresources() {
        let paths = group_version_paths("", "v1");
        let p = |k: &str| paths.get(k).unwrap_or_else(|| panic!("missing {k}"));
        assert_eq!(p("/api/v1/namespaces/{namespace}/pods")["get"]["operationId"], "listCoreV1NamespacedPod");
        assert_eq!(p("/api/v1/namespaces/{namespace}/pods")["delete"]["x-kubernetes-action"], "deletecollection");
        assert_eq!(p("/api/v1/pods")["get"]["operationId"], "listCoreV1PodForAllNamespaces");
        assert_eq!(p("/api/v1/watch/namespaces/{namespace}/pods")["get"]["x-kubernetes-action"], "watchlist");
        assert_eq!(p("/api/v1/watch/namespaces/{namespace}/pods/{name}")["get"]["x-kubernetes-action"], "watch");
        assert_eq!(p("/api/v1/nodes/{name}/status")["patch"]["operationId"], "patchCoreV1NodeStatus");
        assert_eq!(p("/api/v1/namespaces/{name}/finalize")["put"]["operationId"], "replaceCoreV1NamespaceFinalize");
        let eviction = &p("/api/v1/namespaces/{namespace}/pods/{name}/eviction")["post"];
        assert_eq!(
            eviction["x-kubernetes-group-version-kind"],
            json!({"group": "policy", "kind": "Eviction", "version": "v1"})
        );
        let exec = p("/api/v1/namespaces/{namespace}/pods/{name}/exec");
        assert_eq!(exec["get"]["operationId"], "connectCoreV1GetNamespacedPodExec");
        assert_eq!(exec["post"]["x-kubernetes-action"], "connect");
        let log = &p("/api/v1/namespaces/{namespace}/pods/{name}/log")["get"];
        assert!(log["parameters"].as_array().is_some_and(|ps| ps.iter().any(|q| q["name"] == "follow")));
        assert!(paths.get("/api/v1/namespaces/{namespace}/pods/{name}/status").is_some());
    }

    #[test]
    fn every_write_operation_has_the_write_query_parameters() {
        for (g, v) in [("", "v1"), ("apps", "v1"), ("batch", "v1")] {
            let paths = group_version_paths(g, v);
            let Some(paths) = paths.as_object() else { panic!("paths not an object") };
            for (path, item) in paths {
                for method in ["post", "put", "patch"] {
                    let Some(op) = item.get(method) else { continue };
                    if op["x-kubernetes-action"] == "connect" {
                        continue;
                    }
                    let names: Vec<&str> = op["parameters"]
                        .as_array()
                        .map(|ps| ps.iter().filter(|q| q["in"] == "query").filter_map(|q| q["name"].as_str()).collect())
                        .unwrap_or_default();
                    for want in ["dryRun", "fieldManager", "fieldValidation"] {
                        assert!(names.contains(&want), "{method} {path} lacks {want}");
                    }
                    assert_eq!(method == "patch", names.contains(&"force"), "{method} {path} force");
                }
            }
        }
    }
}
