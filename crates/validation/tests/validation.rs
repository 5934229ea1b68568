//! Validation rules with their upstream messages, update rules and unknown fields.

use rkube_registry::{ResourceDef, lookup_kind};
use rkube_validation::{
    default_object, invalid_message, qualified_kind, strict_decoding_message, unknown_fields, validate_create,
    validate_update,
};
use serde_json::{Value, json};

fn def(api_version: &str, kind: &str) -> &'static ResourceDef {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    lookup_kind(group, version, kind).unwrap_or_else(|| panic!("no kind {api_version} {kind}"))
}

/// Builds an object with metadata, defaults it and returns every error message.
fn errors(api_version: &str, kind: &str, body: Value) -> Vec<String> {
    let d = def(api_version, kind);
    let mut obj = body;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    if obj.get("metadata").is_none() {
        obj["metadata"] = json!({"name": "x"});
    }
    // `namespace: null` stands for "the caller set none", to test that rule itself.
    match obj["metadata"].get("namespace") {
        Some(Value::Null) => {
            obj["metadata"].as_object_mut().map(|m| m.remove("namespace"));
        }
        None if d.namespaced => obj["metadata"]["namespace"] = json!("default"),
        _ => {}
    }
    default_object(d, &mut obj);
    validate_create(d, &obj).iter().map(ToString::to_string).collect()
}

fn pod(containers: Value) -> Value {
    json!({"spec": {"containers": containers}})
}

fn deployment(selector: Value, labels: Value) -> Value {
    json!({"spec": {"selector": selector, "template": {"metadata": {"labels": labels},
        "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
}

#[test]
fn validation_rules_and_messages() {
    let table: Vec<(&str, &str, Value, &str)> = vec![
        (
            "v1",
            "ConfigMap",
            json!({"metadata": {"name": "Foo_Bar", "namespace": "default"}}),
            r#"metadata.name: Invalid value: "Foo_Bar": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
        ),
        (
            "v1",
            "ConfigMap",
            json!({"metadata": {"namespace": "default"}}),
            "metadata.name: Required value: name or generateName is required",
        ),
        (
            "v1",
            "ConfigMap",
            json!({"metadata": {"name": "a", "namespace": null}}),
            "metadata.namespace: Required value",
        ),
        (
            "v1",
            "Namespace",
            json!({"metadata": {"name": "a.b"}}),
            r#"metadata.name: Invalid value: "a.b": must not contain dots"#,
        ),
        (
            "v1",
            "Namespace",
            json!({"metadata": {"name": "a", "namespace": "b"}}),
            "metadata.namespace: Forbidden: not allowed on this type",
        ),
        (
            "v1",
            "Service",
            json!({"metadata": {"name": "1abc"}, "spec": {"ports": [{"port": 80}]}}),
            r#"metadata.name: Invalid value: "1abc": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            json!({"metadata": {"name": "a/b"}}),
            r#"metadata.name: Invalid value: "a/b": may not contain '/'"#,
        ),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", json!({"metadata": {"name": "system:x"}}), ""),
        (
            "v1",
            "ConfigMap",
            json!({"metadata": {"name": "a", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r1", "uid": "1", "controller": true},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r2", "uid": "2", "controller": true}]}}),
            "metadata.ownerReferences: Invalid value: ",
        ),
        (
            "v1",
            "ConfigMap",
            json!({"metadata": {"name": "a", "labels": {"-bad": "ok"}}}),
            r#"metadata.labels: Invalid value: "-bad": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#,
        ),
        (
            "v1",
            "ConfigMap",
            json!({"metadata": {"name": "a", "labels": {"k": "bad value"}}}),
            r#"metadata.labels: Invalid value: "bad value": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#,
        ),
        (
            "v1",
            "ConfigMap",
            json!({"metadata": {"name": "a", "annotations": {"a/b/c": "x"}}}),
            "metadata.annotations: Invalid value: \"a/b/c\": a qualified name must consist of",
        ),
        (
            "v1",
            "ConfigMap",
            json!({"metadata": {"name": "a", "annotations": {"big": "x".repeat(262_200)}}}),
            "metadata.annotations: Too long: must have at most 262144 bytes",
        ),
        // Pods
        ("v1", "Pod", pod(json!([])), "spec.containers: Required value"),
        ("v1", "Pod", pod(json!([{"name": "c"}])), "spec.containers[0].image: Required value"),
        ("v1", "Pod", pod(json!([{"image": "i"}])), "spec.containers[0].name: Required value"),
        (
            "v1",
            "Pod",
            pod(json!([{"name": "C_1", "image": "i"}])),
            r#"spec.containers[0].name: Invalid value: "C_1": a lowercase RFC 1123 label"#,
        ),
        (
            "v1",
            "Pod",
            pod(json!([{"name": "c", "image": "i"}, {"name": "c", "image": "i"}])),
            r#"spec.containers[1].name: Duplicate value: "c""#,
        ),
        (
            "v1",
            "Pod",
            json!({"spec": {"initContainers": [{"name": "c", "image": "i"}], "containers": [{"name": "c", "image": "i"}]}}),
            r#"spec.containers[0].name: Duplicate value: "c""#,
        ),
        (
            "v1",
            "Pod",
            pod(json!([{"name": "c", "image": "i", "ports": [{"containerPort": 70000}]}])),
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            "v1",
            "Pod",
            pod(json!([{"name": "c", "image": "i", "ports": [{"containerPort": 80, "protocol": "HTTP"}]}])),
            r#"spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP""#,
        ),
        (
            "v1",
            "Pod",
            pod(
                json!([{"name": "c", "image": "i", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]}]),
            ),
            r#"spec.containers[0].ports[1].name: Duplicate value: "web""#,
        ),
        (
            "v1",
            "Pod",
            json!({"spec": {"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "i"}]}}),
            r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#,
        ),
        (
            "v1",
            "Pod",
            json!({"spec": {"dnsPolicy": "Google", "containers": [{"name": "c", "image": "i"}]}}),
            r#"spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None""#,
        ),
        (
            "v1",
            "Pod",
            pod(json!([{"name": "c", "image": "i", "imagePullPolicy": "Sometimes"}])),
            r#"spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never""#,
        ),
        (
            "v1",
            "Pod",
            pod(json!([{"name": "c", "image": "i", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}])),
            r#"spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or equal to cpu limit of 1"#,
        ),
        (
            "v1",
            "Pod",
            pod(json!([{"name": "c", "image": "i", "resources": {"limits": {"memory": "lots"}}}])),
            r#"spec.containers[0].resources.limits[memory]: Invalid value: "lots": quantities must match"#,
        ),
        (
            "v1",
            "Pod",
            pod(json!([{"name": "c", "image": "i", "volumeMounts": [{"name": "v", "mountPath": "/d"}]}])),
            r#"spec.containers[0].volumeMounts[0].name: Not found: "v""#,
        ),
        (
            "v1",
            "Pod",
            json!({"spec": {"volumes": [{"name": "v"}, {"name": "v"}], "containers": [{"name": "c", "image": "i"}]}}),
            r#"spec.volumes[1].name: Duplicate value: "v""#,
        ),
        (
            "v1",
            "Pod",
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/"}}], "containers": [{"name": "c", "image": "i"}]}}),
            "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
        ),
        (
            "v1",
            "Pod",
            pod(json!([{"name": "c", "image": "i", "env": [{"name": "A=B"}]}])),
            r#"spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable name must consist only of printable ASCII characters other than '='"#,
        ),
        (
            "v1",
            "Pod",
            pod(
                json!([{"name": "c", "image": "i", "livenessProbe": {"httpGet": {"port": 80}, "successThreshold": 2}}]),
            ),
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        ),
        (
            "v1",
            "Pod",
            pod(json!([{"name": "c", "image": "i", "readinessProbe": {}}])),
            "spec.containers[0].readinessProbe: Required value: must specify a handler type",
        ),
        // Workloads
        (
            "apps/v1",
            "Deployment",
            deployment(json!({"matchLabels": {"app": "a"}}), json!({"app": "b"})),
            r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"b"}: `selector` does not match template `labels`"#,
        ),
        (
            "apps/v1",
            "Deployment",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
            "spec.selector: Required value",
        ),
        (
            "apps/v1",
            "Deployment",
            deployment(json!({}), json!({"app": "a"})),
            "spec.selector: Invalid value: {}: empty selector is invalid for deployment",
        ),
        (
            "apps/v1",
            "ReplicaSet",
            json!({"spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "apps/v1",
            "DaemonSet",
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}),
            r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#,
        ),
        (
            "apps/v1",
            "Deployment",
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
        ),
        (
            "batch/v1",
            "Job",
            json!({"metadata": {"name": "j", "uid": "u"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
            r#"spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#,
        ),
        (
            "batch/v1",
            "Job",
            json!({"metadata": {"name": "j", "uid": "u"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}),
            "",
        ),
        (
            "batch/v1",
            "CronJob",
            json!({"spec": {"schedule": "* *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}}}}}}),
            r#"spec.schedule: Invalid value: "* *": expected exactly 5 fields, found 2: [* *]"#,
        ),
        // Services
        ("v1", "Service", json!({"spec": {}}), "spec.ports: Required value"),
        ("v1", "Service", json!({"spec": {"clusterIP": "None"}}), ""),
        (
            "v1",
            "Service",
            json!({"spec": {"type": "Magic", "ports": [{"port": 80}]}}),
            r#"spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#,
        ),
        (
            "v1",
            "Service",
            json!({"spec": {"ports": [{"port": 80}, {"port": 81, "name": "b"}]}}),
            "spec.ports[0].name: Required value",
        ),
        (
            "v1",
            "Service",
            json!({"spec": {"ports": [{"port": 0}]}}),
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ),
        ("v1", "Service", json!({"spec": {"type": "ExternalName"}}), "spec.externalName: Required value"),
        // ConfigMaps and Secrets
        (
            "v1",
            "ConfigMap",
            json!({"data": {"a b": "x"}}),
            r#"data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"#,
        ),
        (
            "v1",
            "ConfigMap",
            json!({"data": {"a": "x".repeat(1_048_577)}}),
            ": Too long: must have at most 1048576 bytes",
        ),
        (
            "v1",
            "Secret",
            json!({"type": "kubernetes.io/tls", "data": {"tls.crt": ""}}),
            "data[tls.key]: Required value",
        ),
        // RBAC
        (
            "rbac.authorization.k8s.io/v1",
            "Role",
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
            "rules[0].verbs: Required value: verbs must contain at least one value",
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "Role",
            json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}),
            r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: namespaced rules cannot apply to non-resource URLs"#,
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            json!({"roleRef": {"kind": "Pod", "name": "r"}}),
            r#"roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole""#,
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            json!({"roleRef": {"kind": "Role", "name": "r"}}),
            r#"roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole""#,
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "Robot", "name": "r"}]}),
            r#"subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group""#,
        ),
        // Others
        (
            "v1",
            "PersistentVolumeClaim",
            json!({"spec": {}}),
            "spec.accessModes: Required value: at least 1 access mode is required",
        ),
        (
            "v1",
            "PersistentVolumeClaim",
            json!({"spec": {"accessModes": ["ReadWriteOnce"]}}),
            "spec.resources[storage]: Required value",
        ),
        ("storage.k8s.io/v1", "StorageClass", json!({}), "provisioner: Required value"),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "minReplicas": 3, "maxReplicas": 2}}),
            "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
        ),
        (
            "networking.k8s.io/v1",
            "Ingress",
            json!({"spec": {"rules": [{"http": {"paths": [{"path": "/", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}}),
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
        ),
    ];
    for (api_version, kind, body, want) in table {
        let errs = errors(api_version, kind, body.clone());
        if want.is_empty() {
            assert!(errs.is_empty(), "{kind} {body}: unexpected {errs:#?}");
        } else {
            assert!(errs.iter().any(|e| e.starts_with(want)), "{kind} {body}: want {want:?}, got {errs:#?}");
        }
    }
}

#[test]
fn causes_carry_reason_and_field() {
    let d = def("v1", "Pod");
    let mut obj = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [{"name": "c"}]}});
    default_object(d, &mut obj);
    let errs = validate_create(d, &obj);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].reason(), "FieldValueRequired");
    assert_eq!(errs[0].field, "spec.containers[0].image");
    assert_eq!(
        invalid_message(&qualified_kind(d), "p", &errs),
        r#"Pod "p" is invalid: spec.containers[0].image: Required value"#
    );
    assert_eq!(qualified_kind(def("apps/v1", "Deployment")), "Deployment.apps");
}

fn valid(api_version: &str, kind: &str, body: Value) -> Value {
    let d = def(api_version, kind);
    let mut obj = body;
    default_object(d, &mut obj);
    let errs = validate_create(d, &obj);
    assert!(errs.is_empty(), "{errs:?}");
    obj
}

fn update_errors(api_version: &str, kind: &str, new: &Value, old: &Value) -> Vec<String> {
    validate_update(def(api_version, kind), new, old).iter().map(ToString::to_string).collect()
}

#[test]
fn pod_updates() {
    let old = valid(
        "v1",
        "Pod",
        json!({"metadata": {"name": "p", "namespace": "d"},
        "spec": {"containers": [{"name": "c", "image": "nginx:1"}], "tolerations": [{"key": "a", "operator": "Exists"}]}}),
    );
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:2");
    new["spec"]["activeDeadlineSeconds"] = json!(30);
    new["spec"]["tolerations"] = json!([{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]);
    assert_eq!(update_errors("v1", "Pod", &new, &old), Vec::<String>::new());

    let mut bad = old.clone();
    bad["spec"]["containers"][0]["name"] = json!("d");
    let errs = update_errors("v1", "Pod", &bad, &old);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"), "{errs:?}");
    assert!(errs[0].contains("spec.containers[0].name"));

    let mut removed = old.clone();
    removed["spec"]["tolerations"] = json!([]);
    assert!(update_errors("v1", "Pod", &removed, &old)[0].starts_with("spec: Forbidden"));

    let mut with_deadline = old.clone();
    with_deadline["spec"]["activeDeadlineSeconds"] = json!(30);
    let mut raised = with_deadline.clone();
    raised["spec"]["activeDeadlineSeconds"] = json!(60);
    assert_eq!(
        update_errors("v1", "Pod", &raised, &with_deadline),
        vec!["spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value"]
    );

    let mut renamed = old.clone();
    renamed["metadata"]["name"] = json!("q");
    assert!(
        update_errors("v1", "Pod", &renamed, &old)
            .contains(&r#"metadata.name: Invalid value: "q": field is immutable"#.to_string())
    );
}

#[test]
fn immutable_fields() {
    let deploy = valid("apps/v1", "Deployment", {
        let mut d = deployment(json!({"matchLabels": {"app": "a"}}), json!({"app": "a", "v": "1"}));
        d["metadata"] = json!({"name": "d", "namespace": "n"});
        d
    });
    let mut scaled = deploy.clone();
    scaled["spec"]["replicas"] = json!(5);
    assert_eq!(update_errors("apps/v1", "Deployment", &scaled, &deploy), Vec::<String>::new());
    let mut reselected = deploy.clone();
    reselected["spec"]["selector"] = json!({"matchLabels": {"app": "a", "v": "1"}});
    assert_eq!(
        update_errors("apps/v1", "Deployment", &reselected, &deploy),
        vec![r#"spec.selector: Invalid value: {"matchLabels":{"app":"a","v":"1"}}: field is immutable"#]
    );

    let secret = valid(
        "v1",
        "Secret",
        json!({"metadata": {"name": "s", "namespace": "n"}, "data": {"a": "eA=="}, "immutable": true}),
    );
    let mut retyped = secret.clone();
    retyped["type"] = json!("kubernetes.io/basic-auth");
    retyped["data"] = json!({"username": "eA=="});
    let errs = update_errors("v1", "Secret", &retyped, &secret);
    assert!(
        errs.contains(&r#"type: Invalid value: "kubernetes.io/basic-auth": field is immutable"#.to_string()),
        "{errs:?}"
    );
    assert!(errs.contains(&"data: Forbidden: field is immutable when `immutable` is set".to_string()), "{errs:?}");

    let cm = valid("v1", "ConfigMap", json!({"metadata": {"name": "c", "namespace": "n"}, "data": {"a": "1"}}));
    let mut changed = cm.clone();
    changed["data"]["a"] = json!("2");
    assert_eq!(update_errors("v1", "ConfigMap", &changed, &cm), Vec::<String>::new());

    let svc = valid(
        "v1",
        "Service",
        json!({"metadata": {"name": "s", "namespace": "n"}, "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}}),
    );
    let mut moved = svc.clone();
    moved["spec"]["clusterIP"] = json!("10.0.0.2");
    assert_eq!(
        update_errors("v1", "Service", &moved, &svc),
        vec![r#"spec.clusterIP: Invalid value: "10.0.0.2": field is immutable"#]
    );

    let rb = valid(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        json!({"metadata": {"name": "b", "namespace": "n"}, "roleRef": {"kind": "Role", "name": "r"}}),
    );
    let mut rebound = rb.clone();
    rebound["roleRef"]["name"] = json!("other");
    assert_eq!(
        update_errors("rbac.authorization.k8s.io/v1", "RoleBinding", &rebound, &rb),
        vec![
            r#"roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"other"}: cannot change roleRef"#
        ]
    );

    let sts = valid(
        "apps/v1",
        "StatefulSet",
        json!({"metadata": {"name": "s", "namespace": "n"}, "spec": {"serviceName": "a",
        "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
    );
    let mut renamed = sts.clone();
    renamed["spec"]["serviceName"] = json!("b");
    assert!(
        update_errors("apps/v1", "StatefulSet", &renamed, &sts)[0]
            .starts_with("spec: Forbidden: updates to statefulset spec for fields other than")
    );
}

#[test]
fn unknown_fields_are_reported_with_upstream_paths() {
    let d = def("apps/v1", "Deployment");
    let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "bogus": 1,
        "metadata": {"name": "d", "labels": {"any-key": "v"}, "annotations": null},
        "spec": {"replicass": 2, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"creationTimestamp": null, "labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i", "imagee": "x",
                    "resources": {"limits": {"cpu": 1, "memory": "1.5Gi"}},
                    "ports": [{"containerPort": 80, "hostIP": "", "extra": true}]}]}}}});
    let got = unknown_fields(d, &obj).expect("decodes");
    assert_eq!(
        got,
        vec![
            "bogus",
            "spec.replicass",
            "spec.template.spec.containers[0].imagee",
            "spec.template.spec.containers[0].ports[0].extra"
        ]
    );
    assert_eq!(
        strict_decoding_message(&got[1..3]),
        r#"strict decoding error: unknown field "spec.replicass", unknown field "spec.template.spec.containers[0].imagee""#
    );

    // Deep inside status, and map keys (`overhead`) are never fields.
    let pod = def("v1", "Pod");
    let with_map = json!({"metadata": {"name": "p"}, "spec": {"containers": [], "overhead": {"cpu": "1"}},
        "status": {"containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "i", "imageID": "", "state": {"running": {"startedAt": "2024-01-01T00:00:00Z", "oops": 1}}}]}});
    assert_eq!(
        unknown_fields(pod, &with_map).expect("decodes"),
        vec!["status.containerStatuses[0].state.running.oops"]
    );

    let svc = def("v1", "Service");
    let ok = json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}]}});
    assert_eq!(unknown_fields(svc, &ok), Ok(vec![]));

    let wrong = json!({"spec": {"ports": [{"port": "eighty"}]}});
    assert!(unknown_fields(svc, &wrong).is_err());
    // A map value of the wrong shape is a decoding error, not an unknown field.
    let cm = def("v1", "ConfigMap");
    assert!(unknown_fields(cm, &json!({"data": {"k": {"nested": 1}}})).is_err());
}
