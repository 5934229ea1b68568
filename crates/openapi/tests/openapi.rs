//! Behaviour of the rendered documents as kubectl and other clients read them.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rkube_openapi::{OpenApi, markers};
use serde_json::{Map, Value, json};

fn api() -> &'static OpenApi {
    static API: OnceLock<OpenApi> = OnceLock::new();
    API.get_or_init(OpenApi::build)
}

fn doc(key: &str) -> Value {
    let (_, body) = api().v3_document(key).unwrap_or_else(|| panic!("no document {key}"));
    serde_json::from_slice(body).expect("document is JSON")
}

fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// Follows `allOf[0]` and `$ref` the way kubectl's OpenAPI v3 walkers do.
fn resolve<'a>(schemas: &'a Map<String, Value>, mut s: &'a Value) -> &'a Value {
    loop {
        if let Some(first) = s.get("allOf").and_then(|a| a.get(0)) {
            s = first;
        }
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.strip_prefix("#/components/schemas/").expect("v3 ref prefix");
                s = schemas.get(name).unwrap_or_else(|| panic!("unresolved {r}"));
            }
            None => return s,
        }
    }
}

/// The schema carrying this GVK in `x-kubernetes-group-version-kind`, as `explain` finds it.
fn schema_for_gvk<'a>(schemas: &'a Map<String, Value>, gvk: &Value) -> &'a Value {
    schemas
        .values()
        .find(|s| s["x-kubernetes-group-version-kind"].as_array().is_some_and(|l| l.contains(gvk)))
        .unwrap_or_else(|| panic!("no schema for {gvk}"))
}

/// Walks `fields` from a top-level schema; returns the property schema (unresolved) of
/// the last field.
fn field<'a>(schemas: &'a Map<String, Value>, root: &'a Value, fields: &[&str]) -> &'a Value {
    let mut cur = root;
    let mut prop = root;
    for f in fields {
        let mut s = resolve(schemas, cur);
        if let Some(items) = s.get("items") {
            s = resolve(schemas, items);
        }
        prop = s["properties"].get(*f).unwrap_or_else(|| panic!("no field {f}"));
        cur = prop;
    }
    prop
}

#[test]
fn index_lists_every_served_group_version_with_its_hash() {
    let index: Value = serde_json::from_slice(api().v3_index()).expect("index is JSON");
    for (group, versions) in rkube_registry::groups() {
        for version in versions {
            let key = gv_key(group, version);
            let url = index["paths"][&key]["serverRelativeURL"].as_str().unwrap_or_else(|| panic!("index lacks {key}"));
            let (hash, _) = api().v3_document(&key).expect("listed document exists");
            assert_eq!(url, format!("/openapi/v3/{key}?hash={hash}"));
            assert_eq!(hash.len(), 64);
            assert!(hash.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        }
    }
    for extra in ["api", "apis", "apis/apps", "version"] {
        assert!(index["paths"].get(extra).is_some(), "index lacks {extra}");
    }
    assert!(api().v3_document("/apis/apps/v1/").is_some());
    assert!(api().v3_document("apis/nope/v1").is_none());
}

#[test]
fn apps_v1_has_deployment_schema_and_patch_operation_kubectl_checks() {
    let d = doc("apis/apps/v1");
    assert_eq!(d["openapi"], "3.0.0");
    let dep = &d["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        dep["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    assert!(dep.get("required").is_none(), "metadata must not be required: {}", dep["required"]);
    let patch = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    let params = patch["parameters"].as_array().expect("parameters");
    assert!(params.iter().any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
    assert!(params.iter().any(|p| p["name"] == "force" && p["in"] == "query"));
    let content = patch["requestBody"]["content"].as_object().expect("content");
    for t in [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ] {
        assert!(content.contains_key(t), "patch lacks {t}");
    }
    let scale = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["get"];
    assert_eq!(
        scale["x-kubernetes-group-version-kind"],
        json!({"group": "autoscaling", "kind": "Scale", "version": "v1"})
    );
    assert!(d["components"]["schemas"].get("io.k8s.api.autoscaling.v1.Scale").is_some());
}

/// cli-runtime's `supportsQueryParamV3` stops at the first PATCH operation tagged with the
/// GVK, in Go's random map order, so every such operation must carry the parameter.
#[test]
fn every_patch_operation_of_every_kind_passes_kubectls_field_validation_check() {
    // Review kinds are create-only, as upstream: kubectl never patches them.
    for r in rkube_registry::RESOURCES.iter().filter(|r| r.verbs.contains(&"patch")) {
        let d = doc(&gv_key(r.group, r.version));
        let gvk = json!({"group": r.group, "kind": r.kind, "version": r.version});
        let ops: Vec<&Value> = d["paths"]
            .as_object()
            .expect("paths")
            .values()
            .filter_map(|item| item.get("patch"))
            .filter(|op| op["x-kubernetes-group-version-kind"] == gvk)
            .collect();
        assert!(!ops.is_empty(), "no PATCH op for {gvk}");
        for op in ops {
            let ok = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
            assert!(ok, "{} lacks fieldValidation", op["operationId"]);
            assert!(op["requestBody"]["content"].get("application/strategic-merge-patch+json").is_some());
        }
    }
}

#[test]
fn pod_spec_containers_carry_the_merge_key() {
    let containers = &api().schemas()["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    let d = doc("api/v1");
    let in_doc = &d["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(in_doc["x-kubernetes-patch-merge-key"], "name");
}

#[test]
fn explain_paths_resolve_with_descriptions() {
    let cases: &[(&str, Value, &[&str], &str)] = &[
        (
            "api/v1",
            json!({"group": "", "kind": "Pod", "version": "v1"}),
            &["spec", "containers"],
            "io.k8s.api.core.v1.Container",
        ),
        (
            "apis/apps/v1",
            json!({"group": "apps", "kind": "Deployment", "version": "v1"}),
            &["spec", "strategy"],
            "io.k8s.api.apps.v1.DeploymentStrategy",
        ),
        (
            "apis/apps/v1",
            json!({"group": "apps", "kind": "Deployment", "version": "v1"}),
            &["spec", "template", "spec", "containers", "ports"],
            "io.k8s.api.core.v1.ContainerPort",
        ),
        (
            "apis/batch/v1",
            json!({"group": "batch", "kind": "CronJob", "version": "v1"}),
            &["spec", "jobTemplate", "spec", "template"],
            "io.k8s.api.core.v1.PodTemplateSpec",
        ),
    ];
    for (key, gvk, path, target) in cases {
        let d = doc(key);
        let schemas = d["components"]["schemas"].as_object().expect("schemas");
        let root = schema_for_gvk(schemas, gvk);
        let prop = field(schemas, root, path);
        assert!(prop["description"].as_str().is_some_and(|s| !s.is_empty()), "{path:?} has no description");
        let resolved = match prop.get("items") {
            Some(items) => resolve(schemas, items),
            None => resolve(schemas, prop),
        };
        assert_eq!(resolved, &schemas[*target], "{path:?} does not lead to {target}");
    }
}

#[test]
fn smp_metadata_sits_on_the_property_kubectl_traverses() {
    let d = doc("apis/apps/v1");
    let schemas = d["components"]["schemas"].as_object().expect("schemas");
    let root = &schemas["io.k8s.api.apps.v1.Deployment"];
    let strategy = field(schemas, root, &["spec", "strategy"]);
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    let volumes = field(schemas, root, &["spec", "template", "spec", "volumes"]);
    assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
    assert_eq!(volumes["x-kubernetes-patch-merge-key"], "name");
    let env = field(schemas, root, &["spec", "template", "spec", "containers", "env"]);
    assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
    let finalizers = field(schemas, root, &["metadata", "finalizers"]);
    assert_eq!(finalizers["x-kubernetes-list-type"], "set");
    let selector = resolve(schemas, field(schemas, root, &["spec", "selector"]));
    assert_eq!(selector["x-kubernetes-map-type"], "atomic");
}

fn assert_refs_resolve(value: &Value, prefix: &str, defs: &Map<String, Value>, doc: &str) {
    rkube_openapi::schemas::for_each_ref(value, &mut |r| {
        let name = r.strip_prefix(prefix).unwrap_or_else(|| panic!("{doc}: foreign ref {r}"));
        assert!(defs.contains_key(name), "{doc}: dangling ref {r}");
    });
}

#[test]
fn every_ref_in_every_document_resolves_within_it() {
    let mut count = 0;
    for key in api().v3_paths() {
        let d = doc(key);
        let defs = d["components"]["schemas"].as_object().expect("schemas");
        assert_refs_resolve(&d, "#/components/schemas/", defs, key);
        count += 1;
    }
    assert!(count > 15);
    let v2: Value = serde_json::from_slice(api().v2_document()).expect("v2 is JSON");
    let defs = v2["definitions"].as_object().expect("definitions");
    assert_refs_resolve(&v2, "#/definitions/", defs, "v2");
}

#[test]
fn list_kinds_and_common_kinds_carry_their_gvk() {
    let s = api().schemas();
    assert_eq!(
        s["io.k8s.api.core.v1.PodList"]["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "PodList", "version": "v1"}])
    );
    assert_eq!(s["io.k8s.api.core.v1.PodList"]["required"], json!(["items"]));
    assert_eq!(
        s["io.k8s.apimachinery.pkg.apis.meta.v1.Status"]["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "Status", "version": "v1"}])
    );
    let delete_options = s["io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"]["x-kubernetes-group-version-kind"]
        .as_array()
        .expect("DeleteOptions gvks");
    assert!(delete_options.contains(&json!({"group": "apps", "kind": "DeleteOptions", "version": "v1"})));
    assert!(delete_options.contains(&json!({"group": "", "kind": "DeleteOptions", "version": "v1"})));
    // Upstream requires metadata on core/v1 Event only.
    let event_required = s["io.k8s.api.core.v1.Event"]["required"].as_array().expect("required");
    assert!(event_required.contains(&json!("metadata")));
    assert!(s["io.k8s.api.core.v1.Pod"].get("required").is_none());
    assert_eq!(s["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"], "int-or-string");
}

#[test]
fn v2_document_is_swagger_with_patch_consumes() {
    let v2: Value = serde_json::from_slice(api().v2_document()).expect("v2 is JSON");
    assert_eq!(v2["swagger"], "2.0");
    let patch = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    let consumes = patch["consumes"].as_array().expect("consumes");
    assert!(consumes.contains(&json!("application/strategic-merge-patch+json")));
    let params = patch["parameters"].as_array().expect("parameters");
    assert!(params.iter().any(|p| p["in"] == "body"));
    assert!(params.iter().any(|p| p["name"] == "fieldValidation" && p["type"] == "string"));
    let meta = &v2["definitions"]["io.k8s.api.apps.v1.Deployment"]["properties"]["metadata"];
    assert_eq!(meta["$ref"], "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
    assert_eq!(v2["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"], "string");
    assert!(v2["paths"].get("/api/v1/namespaces/{namespace}/pods").is_some());
}

#[test]
fn every_marker_row_names_a_real_field_of_a_generated_definition() {
    let s = api().schemas();
    let mut applied = 0;
    for m in markers::FIELD_MARKERS {
        let Some(def) = s.get(m.definition) else { continue };
        let prop =
            def["properties"].get(m.field).unwrap_or_else(|| panic!("{} has no field {}", m.definition, m.field));
        for (k, v) in m.extensions() {
            assert_eq!(&prop[k], &v, "{}.{} {k}", m.definition, m.field);
        }
        applied += 1;
    }
    assert!(applied >= 150, "only {applied} marker rows reach served definitions");
}

#[test]
fn build_is_fast_and_deterministic() {
    let start = Instant::now();
    let a = OpenApi::build();
    let took = start.elapsed();
    // Generous for a loaded 2-core CI machine in debug; typical is well under a second.
    assert!(took < Duration::from_secs(5), "build took {took:?}");
    let b = OpenApi::build();
    assert_eq!(a.v3_index(), b.v3_index());
    assert_eq!(a.v2_document(), b.v2_document());
}
