//! Strategic merge patch against the bodies kubectl really sends (see
//! research/kubectl-wire-protocol.md §4.5, §4.10, §4.15) and upstream's edge cases.

mod common;

use common::{DEPLOYMENT, NODE, definitions};
use rkube_patch::{PatchError, Schema, strategic_merge_patch};
use serde_json::{Value, json};

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "nginx"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{
                    "name": "nginx", "image": "nginx:1.25",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]
                }]}
            }
        }
    })
}

fn smp(original: &Value, patch: &Value, root: &str) -> Result<Value, PatchError> {
    let defs = definitions();
    strategic_merge_patch(original, patch, &Schema::new(&defs), root)
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| items.iter().filter_map(|i| i.get("name").and_then(Value::as_str).map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[test]
fn kubectl_apply_changes_container_image() {
    let patch = json!({"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"new\":1}"}},
        "spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"nginx"}],
        "containers":[{"image":"nginx:1.26","name":"nginx"}]}}}});
    let got = smp(&deployment(), &patch, DEPLOYMENT).expect("patch applies");
    let mut want = deployment();
    want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json!("{\"new\":1}");
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    assert_eq!(got, want);
}

#[test]
fn list_order_follows_upstream_rules() {
    let mut original = deployment();
    original["spec"]["template"]["spec"]["containers"] = json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]);
    let containers = |patch: Value| -> Vec<String> {
        let got = smp(&original, &json!({"spec":{"template":{"spec": patch}}}), DEPLOYMENT).expect("patch applies");
        names(&got["spec"]["template"]["spec"]["containers"])
    };
    // (patch of the pod spec, resulting container order)
    let cases: Vec<(Value, Vec<&str>)> = vec![
        // A new item lands right after the patch item before it.
        (json!({"containers":[{"name":"b","image":"x"},{"name":"d"}]}), vec!["a", "b", "d", "c"]),
        // A new item with nothing before it in the patch comes first: upstream merges
        // the server-only items (left) into the patch items (right) and takes the right
        // one whenever the two cannot be compared by server order.
        (json!({"containers":[{"name":"d"}]}), vec!["d", "a", "b", "c"]),
        // $setElementOrder alone reorders.
        (json!({"$setElementOrder/containers":[{"name":"c"},{"name":"a"},{"name":"b"}]}), vec!["c", "a", "b"]),
        // $setElementOrder with an insertion, as kubectl apply sends it.
        (
            json!({"$setElementOrder/containers":[{"name":"a"},{"name":"d"},{"name":"b"},{"name":"c"}],
            "containers":[{"name":"d","image":"d"}]}),
            vec!["a", "d", "b", "c"],
        ),
        // Deleting by directive.
        (
            json!({"$setElementOrder/containers":[{"name":"a"},{"name":"c"}],
            "containers":[{"$patch":"delete","name":"b"}]}),
            vec!["a", "c"],
        ),
        // Replacing the whole list.
        (json!({"containers":[{"name":"z"},{"name":"y"},{"$patch":"replace"}]}), vec!["z", "y"]),
    ];
    for (patch, want) in cases {
        assert_eq!(containers(patch.clone()), want, "patch {patch}");
    }
}

#[test]
fn deleting_an_env_var() {
    let path = |v: &Value| names(&v["spec"]["template"]["spec"]["containers"][0]["env"]);
    let plain = json!({"spec":{"template":{"spec":{"containers":[
        {"name":"nginx","env":[{"name":"B","$patch":"delete"}]}]}}}});
    let got = smp(&deployment(), &plain, DEPLOYMENT).expect("patch applies");
    assert_eq!(path(&got), vec!["A", "C"]);
    assert_eq!(got["spec"]["template"]["spec"]["containers"][0]["image"], json!("nginx:1.25"));

    let from_apply = json!({"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"nginx"}],
        "containers":[{"$setElementOrder/env":[{"name":"A"},{"name":"C"}],
            "env":[{"$patch":"delete","name":"B"}],"name":"nginx"}]}}}});
    let got = smp(&deployment(), &from_apply, DEPLOYMENT).expect("patch applies");
    assert_eq!(path(&got), vec!["A", "C"]);
}

#[test]
fn deployment_strategy_rolling_update_to_recreate() {
    let want = json!({"type": "Recreate"});
    for patch in [
        json!({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":null,"type":"Recreate"}}}),
        json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}),
    ] {
        let got = smp(&deployment(), &patch, DEPLOYMENT).expect("patch applies");
        assert_eq!(got["spec"]["strategy"], want, "patch {patch}");
    }
    // Without $retainKeys the old rollingUpdate block stays, as upstream.
    let got = smp(&deployment(), &json!({"spec":{"strategy":{"type":"Recreate"}}}), DEPLOYMENT).expect("patch applies");
    assert_eq!(got["spec"]["strategy"]["rollingUpdate"]["maxSurge"], json!("25%"));
}

#[test]
fn volume_source_switch_with_retain_keys_in_items() {
    let mut original = deployment();
    original["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "data", "emptyDir": {}}, {"name": "other", "hostPath": {"path": "/x"}}]);
    let patch = json!({"spec":{"template":{"spec":{
        "$setElementOrder/volumes":[{"name":"data"},{"name":"other"}],
        "volumes":[{"$retainKeys":["configMap","name"],"configMap":{"name":"cm"},"emptyDir":null,"name":"data"}]}}}});
    let got = smp(&original, &patch, DEPLOYMENT).expect("patch applies");
    assert_eq!(
        got["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cm"}}, {"name": "other", "hostPath": {"path": "/x"}}])
    );
}

#[test]
fn retain_keys_rejects_unlisted_patch_fields() {
    let patch = json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate","rollingUpdate":{"maxSurge":1}}}});
    let err = smp(&deployment(), &patch, DEPLOYMENT).expect_err("must fail");
    assert!(matches!(err, PatchError::BadRetainKeys { .. }), "{err}");
    assert_eq!(err.http_status(), 400);
    assert_eq!(err.to_string(), "invalid patch format of retainKeys at .spec.strategy");
}

#[test]
fn rollout_restart_annotation() {
    let patch = json!({"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2025-01-01T00:00:00Z"}}}}});
    let got = smp(&deployment(), &patch, DEPLOYMENT).expect("patch applies");
    assert_eq!(
        got["spec"]["template"]["metadata"],
        json!({"labels": {"app": "nginx"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}})
    );
}

fn node(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": spec})
}

#[test]
fn taint_and_cordon_bodies() {
    let t1 = json!({"effect":"NoSchedule","key":"dedicated","value":"special"});
    let t2 = json!({"effect":"NoExecute","key":"gpu"});
    // (live node spec, patch, resulting node spec)
    let cases = [
        (
            json!({"podCIDR": "10.0.0.0/24"}),
            json!({"spec":{"taints":[t1]}}),
            json!({"podCIDR": "10.0.0.0/24", "taints": [t1]}),
        ),
        // taints is atomic: kubectl sends the whole list and it replaces.
        (json!({"taints": [t1]}), json!({"spec":{"taints":[t2]}}), json!({"taints": [t2]})),
        (json!({"taints": [t1, t2]}), json!({"spec":{"taints":[t1]}}), json!({"taints": [t1]})),
        (json!({"taints": [t1]}), json!({"spec":{"taints":null}}), json!({})),
        (
            json!({"podCIDR": "p"}),
            json!({"spec":{"unschedulable":true}}),
            json!({"podCIDR": "p", "unschedulable": true}),
        ),
        (json!({"unschedulable": true}), json!({"spec":{"unschedulable":null}}), json!({})),
        // Uncordoning a node that is not cordoned changes nothing.
        (json!({"podCIDR": "p"}), json!({"spec":{"unschedulable":null}}), json!({"podCIDR": "p"})),
    ];
    for (live, patch, want) in cases {
        let got = smp(&node(live.clone()), &patch, NODE).expect("patch applies");
        assert_eq!(got, node(want), "live {live} patch {patch}");
    }
}

#[test]
fn primitive_merge_lists() {
    let obj = json!({"metadata": {"name": "x", "finalizers": ["a", "b"]}});
    let cases = [
        // Same ordering rule as for lists of objects: the new item comes first.
        (json!({"metadata":{"finalizers":["c"]}}), json!(["c", "a", "b"])),
        (json!({"metadata":{"finalizers":["b","c"]}}), json!(["a", "b", "c"])),
        (json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}}), json!(["b"])),
        (json!({"metadata":{"$setElementOrder/finalizers":["b","a"]}}), json!(["b", "a"])),
        (json!({"metadata":{"finalizers":null}}), Value::Null),
    ];
    for (patch, want) in cases {
        let got = smp(&obj, &patch, DEPLOYMENT).expect("patch applies");
        assert_eq!(got["metadata"]["finalizers"], want, "patch {patch}");
    }
}

#[test]
fn map_directives_and_nulls() {
    let obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}});
    let cases = [
        (
            json!({"metadata":{"labels":{"$patch":"replace","c":"3"}}}),
            json!({"metadata": {"labels": {"c": "3"}}, "spec": {"replicas": 1}}),
        ),
        (
            json!({"metadata":{"labels":{"$patch":"delete"}}}),
            json!({"metadata": {"labels": {}}, "spec": {"replicas": 1}}),
        ),
        (
            json!({"metadata":{"labels":{"a":null,"zz":null}}}),
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"replicas": 1}}),
        ),
        // A new subtree loses its nulls and directives, as the typed round trip would.
        (
            json!({"spec":{"template":{"metadata":{"labels":{"x":"y","gone":null}},
                "spec":{"$setElementOrder/containers":[{"name":"c"}],"containers":[{"name":"c","image":null}]}}}}),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1,
                "template": {"metadata": {"labels": {"x": "y"}}, "spec": {"containers": [{"name": "c"}]}}}}),
        ),
    ];
    for (patch, want) in cases {
        assert_eq!(smp(&obj, &patch, DEPLOYMENT), Ok(want), "patch {patch}");
    }
}

#[test]
fn ports_merge_by_container_port() {
    let mut original = deployment();
    original["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}]);
    let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"nginx",
        "ports":[{"containerPort":443,"name":"https"},{"containerPort":80,"name":"web"}]}]}}}});
    let got = smp(&original, &patch, DEPLOYMENT).expect("patch applies");
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 443, "name": "https"}, {"containerPort": 80, "name": "web", "protocol": "TCP"}])
    );
}

#[test]
fn atomic_lists_are_replaced_and_unknown_types_merge_like_json() {
    let mut original = deployment();
    original["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["a", "b"]);
    let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"nginx","args":["c"]}]}}}});
    let got = smp(&original, &patch, DEPLOYMENT).expect("patch applies");
    assert_eq!(got["spec"]["template"]["spec"]["containers"][0]["args"], json!(["c"]));

    // With no schema at all: maps merge, lists replace (a CRD without a schema).
    let crd = json!({"spec": {"items": [{"name": "a"}], "m": {"x": 1}}});
    let got = strategic_merge_patch(
        &crd,
        &json!({"spec": {"items": [{"name": "b"}], "m": {"y": 2}}}),
        &Schema::empty(),
        "example.com.v1.Widget",
    );
    assert_eq!(got, Ok(json!({"spec": {"items": [{"name": "b"}], "m": {"x": 1, "y": 2}}})));
}

#[test]
fn malformed_patches_are_errors() {
    let d = deployment();
    let containers = |c: Value| json!({"spec":{"template":{"spec":{"containers": c}}}});
    let cases: Vec<(Value, &str)> = vec![
        (json!([1, 2]), "strategic merge patch must be a json object, got array"),
        (
            containers(json!([{"image": "x"}])),
            "map {\"image\":\"x\"} at .spec.template.spec.containers does not contain declared merge key \"name\"",
        ),
        (
            containers(json!([{"$patch": "merge", "name": "nginx"}])),
            "merging lists cannot yet be specified in the patch (at .spec.template.spec.containers)",
        ),
        (
            containers(json!([{"$patch": "bogus", "name": "nginx"}])),
            "unknown patch type \"bogus\" at .spec.template.spec.containers",
        ),
        (json!({"metadata": {"$patch": "merge"}}), "unknown patch type \"merge\" at .metadata"),
        (
            json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"nginx"}],
            "containers":[{"name":"other"}]}}}}),
            "the order of the patch list at .spec.template.spec.containers does not match its $setElementOrder list",
        ),
        (
            json!({"spec":{"template":{"spec":{"$setElementOrder/containers":"x"}}}}),
            "invalid patch format of setElementOrder list at .spec.template.spec.containers",
        ),
        (json!({"metadata":{"finalizers":[["x"]]}}), "lists of lists are not supported (at .metadata.finalizers)"),
    ];
    for (patch, want) in cases {
        let got = smp(&d, &patch, DEPLOYMENT);
        assert_eq!(got.map_err(|e| e.to_string()), Err(want.to_owned()), "patch {patch}");
    }
}
