//! The managed fields a create records: the direct `fieldsV1` encoding used for creates
//! must agree with the general comparison (`compare({}, new)` into a field set) that
//! updates use, on every shape of object.

mod common;

use common::{CONFIG_MAP, DEPLOYMENT, NODE, definitions};
use rkube_patch::Schema;
use rkube_patch::apply::{CreatedFieldsMemo, record_update};
use serde_json::{Value, json};

const NOW: &str = "2026-12-07T10:00:00Z";

/// Records the create of `obj` both ways and returns the fast path's `managedFields`
/// after checking that the two objects are identical.
fn both_ways(obj: &Value, root: &str, subresource: Option<&str>) -> Value {
    let defs = definitions();
    let schema = Schema::new(&defs);
    let mut fast = obj.clone();
    record_update(None, &mut fast, "creator", subresource, &schema, root, NOW);
    // With an (empty) old object record_update takes the general path, which for an
    // old object without fields is exactly what a create means.
    let mut general = obj.clone();
    record_update(Some(&json!({})), &mut general, "creator", subresource, &schema, root, NOW);
    assert_eq!(fast.to_string(), general.to_string(), "fast and general paths disagree for {obj}");
    // Through a memo: the first two creates of the shape compute the set (the second
    // keeps it), the third is answered from the memo; all must record what the plain
    // path does.
    let memo = CreatedFieldsMemo::new();
    let remembering = schema.remembering_creates(&memo);
    for _ in 0..3 {
        let mut through_memo = obj.clone();
        record_update(None, &mut through_memo, "creator", subresource, &remembering, root, NOW);
        assert_eq!(through_memo.to_string(), fast.to_string(), "the memo changed what was recorded for {obj}");
    }
    fast["metadata"]["managedFields"].clone()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default", "uid": "u", "generation": 1,
            "creationTimestamp": "2026-12-07T10:00:00Z", "resourceVersion": "5",
            "labels": {"app": "nginx", "tier": "web"}, "annotations": {"a": "b"},
            "finalizers": ["z/last", "a/first", "a/first"],
            "ownerReferences": [{"uid": "o1", "name": "x", "kind": "K"}]},
        "spec": {
            "replicas": 2, "paused": false,
            "selector": {"matchLabels": {"app": "nginx"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}, "annotations": {}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.25", "args": ["-g", "daemon off;"],
                         "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"},
                                   {"containerPort": 80, "protocol": "UDP"}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {}}],
                         "volumeMounts": [{"mountPath": "/data", "name": "d"}],
                         "resources": {"requests": {"cpu": "100m"}, "limits": {}}},
                        {"name": "sidecar", "image": "busybox", "env": []}
                    ],
                    "volumes": [{"name": "d", "emptyDir": {}}, {"name": "c", "configMap": {"name": "x"}}],
                    "tolerations": [{"key": "k", "effect": "NoSchedule"}],
                    "securityContext": {}
                }
            }
        },
        "status": {"replicas": 0}
    })
}

#[test]
fn a_create_owns_every_field_it_sent_but_not_the_servers() {
    let fields = both_ways(&deployment(), DEPLOYMENT, None);
    let entry = &fields[0];
    assert_eq!(entry["manager"], "creator");
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["time"], NOW);
    let v1 = &entry["fieldsV1"];
    // Server-owned metadata is nobody's; the rest is the creator's.
    assert!(v1.get("f:apiVersion").is_none() && v1.get("f:kind").is_none(), "{v1}");
    let meta = &v1["f:metadata"];
    for server in ["f:name", "f:namespace", "f:uid", "f:generation", "f:creationTimestamp", "f:resourceVersion"] {
        assert!(meta.get(server).is_none(), "{server} in {meta}");
    }
    assert_eq!(meta["f:labels"], json!({".": {}, "f:app": {}, "f:tier": {}}));
    // A set item given twice is one path.
    assert_eq!(meta["f:finalizers"], json!({"v:\"a/first\"": {}, "v:\"z/last\"": {}}));
    let containers = &v1["f:spec"]["f:template"]["f:spec"]["f:containers"];
    let keys: Vec<&String> = containers.as_object().map(|m| m.keys().collect()).unwrap_or_default();
    assert_eq!(keys, [r#"k:{"name":"nginx"}"#, r#"k:{"name":"sidecar"}"#]);
    let nginx = &containers[r#"k:{"name":"nginx"}"#];
    assert_eq!(nginx["."], json!({}));
    assert_eq!(
        nginx["f:ports"],
        json!({
            r#"k:{"containerPort":80,"protocol":"TCP"}"#: {".": {}, "f:containerPort": {}, "f:name": {}, "f:protocol": {}},
            r#"k:{"containerPort":80,"protocol":"UDP"}"#: {".": {}, "f:containerPort": {}, "f:protocol": {}}
        })
    );
    // Atomic lists and maps are leaves; empty maps and lists are leaves too.
    assert_eq!(nginx["f:args"], json!({}));
    assert_eq!(v1["f:spec"]["f:selector"], json!({}));
    assert_eq!(nginx["f:resources"]["f:limits"], json!({}));
    assert_eq!(v1["f:spec"]["f:template"]["f:spec"]["f:securityContext"], json!({}));
}

#[test]
fn the_fast_path_agrees_with_the_general_one_on_odd_shapes() {
    let cases = [
        (json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}), CONFIG_MAP),
        (json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "data": {}}), CONFIG_MAP),
        (
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"managedFields": [{}]}, "data": {"k": "v"}}),
            CONFIG_MAP,
        ),
        (json!({"metadata": {"labels": {}, "finalizers": []}, "data": {"b": "2", "a": "1"}}), CONFIG_MAP),
        (
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
            "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}], "unschedulable": true, "podCIDR": "10.0.0.0/24"}}),
            NODE,
        ),
        // A list map holding the same key twice, and a field that changed type.
        (
            json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "x"}, {"name": "a", "ports": [{"containerPort": 1}]}]}},
            "replicas": {"odd": true}}}),
            DEPLOYMENT,
        ),
        // No schema: everything is a granular map.
        (
            json!({"apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "t", "labels": {"a": "b"}},
            "spec": {"list": [1, 2], "m": {"n": {}}}}),
            "io.example.Unknown",
        ),
        (json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "only-server-fields"}}), CONFIG_MAP),
        (json!({}), CONFIG_MAP),
    ];
    for (obj, root) in cases {
        both_ways(&obj, root, None);
        both_ways(&obj, root, Some("status"));
    }
    // Only server-owned fields: no entry at all.
    assert_eq!(
        both_ways(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}), CONFIG_MAP, None),
        Value::Null
    );
    assert_eq!(both_ways(&deployment(), DEPLOYMENT, Some("status"))[0]["subresource"], "status");
}

#[test]
fn one_memo_serves_objects_of_one_shape_and_keeps_list_contents_apart() {
    let defs = definitions();
    let plain = Schema::new(&defs);
    let memo = CreatedFieldsMemo::new();
    let remembering = plain.remembering_creates(&memo);
    let pod_like = |name: &str, container: &str, port: i64| {
        let mut d = deployment();
        d["metadata"]["name"] = json!(name);
        d["spec"]["replicas"] = json!(port);
        d["spec"]["template"]["spec"]["containers"][0]["name"] = json!(container);
        d
    };
    let record = |obj: &Value, schema: &Schema| {
        let mut o = obj.clone();
        record_update(None, &mut o, "creator", None, schema, DEPLOYMENT, NOW);
        o["metadata"]["managedFields"].clone()
    };
    // Names and scalar values differ: one shape, one remembered set.
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let obj = pod_like(name, "nginx", i as i64);
        assert_eq!(record(&obj, &remembering), record(&obj, &plain));
    }
    assert_eq!(memo.len(), 1);
    // A list-map key is part of the set (`k:{"name":"web"}`): another container name is
    // another shape, and must not get the first one's set.
    let other = pod_like("d", "web", 1);
    let recorded = record(&other, &remembering);
    assert_eq!(recorded, record(&other, &plain));
    assert_eq!(record(&other, &remembering), recorded, "seen twice: kept");
    assert_ne!(recorded, record(&pod_like("e", "nginx", 1), &remembering));
    assert_eq!(memo.len(), 2);
}
