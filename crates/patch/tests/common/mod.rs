//! A hand-written subset of upstream's OpenAPI v3 `components.schemas` (Kubernetes
//! 1.33), in the exact shape `rkube-openapi` serves: `allOf`-wrapped refs, list
//! extensions on properties, `x-kubernetes-map-type` on definitions.

use serde_json::{Map, Value, json};

fn r(name: &str) -> Value {
    json!({"allOf": [{"$ref": format!("#/components/schemas/{name}")}], "default": {}})
}

fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}})
}

fn merge_list(item: &str, key: &str) -> Value {
    json!({"type": "array", "items": r(item),
        "x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": "merge"})
}

pub fn definitions() -> Map<String, Value> {
    let mut volumes = merge_list("io.k8s.api.core.v1.Volume", "name");
    volumes["x-kubernetes-patch-strategy"] = json!("merge,retainKeys");
    volumes["x-kubernetes-list-type"] = json!("map");
    volumes["x-kubernetes-list-map-keys"] = json!(["name"]);
    let mut ports = merge_list("io.k8s.api.core.v1.ContainerPort", "containerPort");
    ports["x-kubernetes-list-type"] = json!("map");
    ports["x-kubernetes-list-map-keys"] = json!(["containerPort", "protocol"]);
    let mut containers = merge_list("io.k8s.api.core.v1.Container", "name");
    containers["x-kubernetes-list-type"] = json!("map");
    containers["x-kubernetes-list-map-keys"] = json!(["name"]);
    let mut env = merge_list("io.k8s.api.core.v1.EnvVar", "name");
    env["x-kubernetes-list-type"] = json!("map");
    env["x-kubernetes-list-map-keys"] = json!(["name"]);
    let defs = json!({
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"type": "object", "properties": {
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "uid": {"type": "string"},
            "resourceVersion": {"type": "string"},
            "generation": {"type": "integer"},
            "creationTimestamp": r("io.k8s.apimachinery.pkg.apis.meta.v1.Time"),
            "labels": string_map(),
            "annotations": string_map(),
            "finalizers": {"type": "array", "items": {"type": "string", "default": ""},
                "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
            "ownerReferences": {"type": "array", "items": r("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"),
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"],
                "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"},
            "managedFields": {"type": "array", "items": r("io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"),
                "x-kubernetes-list-type": "atomic"}
        }},
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time": {"type": "string", "format": "date-time"},
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference": {"type": "object", "properties": {
            "uid": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string"}},
            "x-kubernetes-map-type": "atomic"},
        "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry": {"type": "object", "properties": {
            "manager": {"type": "string"}}},
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector": {"type": "object", "properties": {
            "matchLabels": string_map()}, "x-kubernetes-map-type": "atomic"},
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
        "io.k8s.api.apps.v1.Deployment": {"type": "object", "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": r("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
            "spec": r("io.k8s.api.apps.v1.DeploymentSpec"),
            "status": r("io.k8s.api.apps.v1.DeploymentStatus")}},
        "io.k8s.api.apps.v1.DeploymentStatus": {"type": "object", "properties": {
            "replicas": {"type": "integer"}}},
        "io.k8s.api.apps.v1.DeploymentSpec": {"type": "object", "properties": {
            "replicas": {"type": "integer"},
            "selector": r("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"),
            "template": r("io.k8s.api.core.v1.PodTemplateSpec"),
            "strategy": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}],
                "default": {}, "x-kubernetes-patch-strategy": "retainKeys"},
            "paused": {"type": "boolean"}}},
        "io.k8s.api.apps.v1.DeploymentStrategy": {"type": "object", "properties": {
            "type": {"type": "string"},
            "rollingUpdate": r("io.k8s.api.apps.v1.RollingUpdateDeployment")}},
        "io.k8s.api.apps.v1.RollingUpdateDeployment": {"type": "object", "properties": {
            "maxSurge": r("io.k8s.apimachinery.pkg.util.intstr.IntOrString"),
            "maxUnavailable": r("io.k8s.apimachinery.pkg.util.intstr.IntOrString")}},
        "io.k8s.api.core.v1.PodTemplateSpec": {"type": "object", "properties": {
            "metadata": r("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
            "spec": r("io.k8s.api.core.v1.PodSpec")}},
        "io.k8s.api.core.v1.PodSpec": {"type": "object", "properties": {
            "containers": containers,
            "volumes": volumes,
            "nodeName": {"type": "string"},
            "tolerations": {"type": "array", "items": r("io.k8s.api.core.v1.Toleration"),
                "x-kubernetes-list-type": "atomic"},
            "securityContext": r("io.k8s.api.core.v1.PodSecurityContext")}},
        "io.k8s.api.core.v1.PodSecurityContext": {"type": "object", "properties": {
            "runAsUser": {"type": "integer"}}},
        "io.k8s.api.core.v1.Toleration": {"type": "object", "properties": {
            "key": {"type": "string"}, "effect": {"type": "string"}}},
        "io.k8s.api.core.v1.Container": {"type": "object", "properties": {
            "name": {"type": "string"},
            "image": {"type": "string"},
            "args": {"type": "array", "items": {"type": "string", "default": ""},
                "x-kubernetes-list-type": "atomic"},
            "env": env,
            "ports": ports,
            "volumeMounts": merge_list("io.k8s.api.core.v1.VolumeMount", "mountPath"),
            "resources": r("io.k8s.api.core.v1.ResourceRequirements")}},
        "io.k8s.api.core.v1.ResourceRequirements": {"type": "object", "properties": {
            "limits": string_map(), "requests": string_map()}},
        "io.k8s.api.core.v1.EnvVar": {"type": "object", "properties": {
            "name": {"type": "string"}, "value": {"type": "string"},
            "valueFrom": {"type": "object"}}},
        "io.k8s.api.core.v1.ContainerPort": {"type": "object", "properties": {
            "containerPort": {"type": "integer"}, "protocol": {"type": "string"},
            "name": {"type": "string"}}},
        "io.k8s.api.core.v1.VolumeMount": {"type": "object", "properties": {
            "mountPath": {"type": "string"}, "name": {"type": "string"}}},
        "io.k8s.api.core.v1.Volume": {"type": "object", "properties": {
            "name": {"type": "string"},
            "emptyDir": {"type": "object"},
            "configMap": {"type": "object"},
            "hostPath": {"type": "object"}}},
        "io.k8s.api.core.v1.Node": {"type": "object", "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": r("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
            "spec": r("io.k8s.api.core.v1.NodeSpec")}},
        "io.k8s.api.core.v1.NodeSpec": {"type": "object", "properties": {
            "unschedulable": {"type": "boolean"},
            "podCIDR": {"type": "string"},
            "taints": {"type": "array", "items": r("io.k8s.api.core.v1.Taint"),
                "x-kubernetes-list-type": "atomic"}}},
        "io.k8s.api.core.v1.Taint": {"type": "object", "properties": {
            "key": {"type": "string"}, "value": {"type": "string"}, "effect": {"type": "string"}}},
        "io.k8s.api.core.v1.ConfigMap": {"type": "object", "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": r("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
            "data": string_map()}}
    });
    match defs {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
pub const NODE: &str = "io.k8s.api.core.v1.Node";
#[allow(dead_code)]
pub const CONFIG_MAP: &str = "io.k8s.api.core.v1.ConfigMap";
