//! Defaulting, and the seed manifests going through the whole write path cleanly.

use rkube_registry::{ResourceDef, lookup_kind};
use rkube_validation::{default_object, unknown_fields, validate_create};
use serde_json::{Value, json};

fn def(api_version: &str, kind: &str) -> &'static ResourceDef {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    lookup_kind(group, version, kind).unwrap_or_else(|| panic!("no kind {api_version} {kind}"))
}

fn defaulted(api_version: &str, kind: &str, mut obj: Value) -> Value {
    default_object(def(api_version, kind), &mut obj);
    obj
}

#[test]
fn minimal_deployment_gains_exactly_upstreams_defaults() {
    let text = std::fs::read_to_string("/work/shared/seed/manifests/01-nginx-deployment.yaml");
    let seed: Value = match text {
        Ok(t) => serde_saphyr::from_str(&t).expect("seed parses"),
        // The seed is outside the repository; the same manifest inline keeps CI honest.
        Err(_) => {
            json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"nginx-deployment"},
            "spec":{"selector":{"matchLabels":{"app":"nginx"}},"replicas":2,"template":{"metadata":{"labels":{"app":"nginx"}},
            "spec":{"containers":[{"name":"nginx","image":"nginx:1.14.2","ports":[{"containerPort":80}]}]}}}})
        }
    };
    let got = defaulted("apps/v1", "Deployment", seed);
    // What `kubectl get deploy -o yaml` shows for this manifest on a real 1.33 cluster
    // (minus server-set metadata and status).
    let want = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx-deployment"},
        "spec": {
            "progressDeadlineSeconds": 600,
            "replicas": 2,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "nginx"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "containers": [{
                        "image": "nginx:1.14.2",
                        "imagePullPolicy": "IfNotPresent",
                        "name": "nginx",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"
                    }],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30
                }
            }
        }
    });
    assert_eq!(got, want);
}

#[test]
fn defaults_table() {
    // (apiVersion, kind, input, JSON pointer, expected value)
    let table: Vec<(&str, &str, Value, &str, Value)> = vec![
        (
            "v1",
            "Pod",
            json!({"spec":{"containers":[{"name":"a","image":"nginx"}]}}),
            "/spec/containers/0/imagePullPolicy",
            json!("Always"),
        ),
        (
            "v1",
            "Pod",
            json!({"spec":{"containers":[{"name":"a","image":"nginx:latest"}]}}),
            "/spec/containers/0/imagePullPolicy",
            json!("Always"),
        ),
        (
            "v1",
            "Pod",
            json!({"spec":{"containers":[{"name":"a","image":"nginx:1"}]}}),
            "/spec/containers/0/imagePullPolicy",
            json!("IfNotPresent"),
        ),
        ("v1", "Pod", json!({"spec":{"containers":[]}}), "/spec/enableServiceLinks", json!(true)),
        ("v1", "Pod", json!({"spec":{"containers":[]}}), "/spec/priority", json!(0)),
        ("v1", "Pod", json!({"spec":{"containers":[]}}), "/spec/preemptionPolicy", json!("PreemptLowerPriority")),
        (
            "v1",
            "Pod",
            json!({"spec":{"containers":[{"name":"a","image":"i","readinessProbe":{"httpGet":{"port":80}}}]}}),
            "/spec/containers/0/readinessProbe",
            json!({"httpGet":{"port":80,"path":"/","scheme":"HTTP"},"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3}),
        ),
        (
            "v1",
            "Pod",
            json!({"spec":{"containers":[{"name":"a","image":"i","env":[{"name":"N","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]}]}}),
            "/spec/containers/0/env/0/valueFrom/fieldRef/apiVersion",
            json!("v1"),
        ),
        (
            "v1",
            "Pod",
            json!({"spec":{"containers":[{"name":"a","image":"i","resources":{"limits":{"cpu":"1"}}}]}}),
            "/spec/containers/0/resources/requests",
            json!({"cpu":"1"}),
        ),
        (
            "v1",
            "Pod",
            json!({"spec":{"volumes":[{"name":"v"},{"name":"c","configMap":{"name":"x"}},{"name":"s","secret":{"secretName":"x"}}]}}),
            "/spec/volumes",
            json!([{"name":"v","emptyDir":{}},{"name":"c","configMap":{"name":"x","defaultMode":420}},{"name":"s","secret":{"secretName":"x","defaultMode":420}}]),
        ),
        ("apps/v1", "ReplicaSet", json!({"spec":{}}), "/spec/replicas", json!(1)),
        (
            "apps/v1",
            "StatefulSet",
            json!({"spec":{}}),
            "/spec",
            json!({"podManagementPolicy":"OrderedReady","updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":0}},"persistentVolumeClaimRetentionPolicy":{"whenDeleted":"Retain","whenScaled":"Retain"},"replicas":1,"revisionHistoryLimit":10}),
        ),
        (
            "apps/v1",
            "DaemonSet",
            json!({"spec":{}}),
            "/spec",
            json!({"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":1,"maxSurge":0}},"revisionHistoryLimit":10}),
        ),
        (
            "apps/v1",
            "Deployment",
            json!({"spec":{"strategy":{"type":"Recreate"}}}),
            "/spec/strategy",
            json!({"type":"Recreate"}),
        ),
        ("batch/v1", "Job", json!({"spec":{"template":{"spec":{"containers":[]}}}}), "/spec/backoffLimit", json!(6)),
        ("batch/v1", "Job", json!({"spec":{}}), "/spec/completions", json!(1)),
        ("batch/v1", "Job", json!({"spec":{"parallelism":3}}), "/spec/completions", Value::Null),
        ("batch/v1", "Job", json!({"spec":{}}), "/spec/podReplacementPolicy", json!("TerminatingOrFailed")),
        (
            "batch/v1",
            "Job",
            json!({"metadata":{"name":"j","uid":"u1"},"spec":{}}),
            "/spec/selector",
            json!({"matchLabels":{"batch.kubernetes.io/controller-uid":"u1"}}),
        ),
        (
            "batch/v1",
            "Job",
            json!({"metadata":{"name":"j","uid":"u1"},"spec":{}}),
            "/metadata/labels/job-name",
            json!("j"),
        ),
        (
            "batch/v1",
            "CronJob",
            json!({"spec":{}}),
            "/spec",
            json!({"concurrencyPolicy":"Allow","suspend":false,"successfulJobsHistoryLimit":3,"failedJobsHistoryLimit":1}),
        ),
        (
            "v1",
            "Service",
            json!({"spec":{"ports":[{"port":80}]}}),
            "/spec",
            json!({"ports":[{"port":80,"protocol":"TCP","targetPort":80}],"sessionAffinity":"None","type":"ClusterIP","internalTrafficPolicy":"Cluster","ipFamilyPolicy":"SingleStack","ipFamilies":["IPv4"]}),
        ),
        ("v1", "Service", json!({"spec":{"type":"NodePort"}}), "/spec/externalTrafficPolicy", json!("Cluster")),
        (
            "v1",
            "Service",
            json!({"spec":{"type":"ExternalName","externalName":"x.y"}}),
            "/spec/ipFamilyPolicy",
            Value::Null,
        ),
        ("v1", "Secret", json!({"stringData":{"a":"hi"}}), "", json!({"type":"Opaque","data":{"a":"aGk="}})),
        (
            "v1",
            "Namespace",
            json!({"metadata":{"name":"ns"}}),
            "",
            json!({"metadata":{"name":"ns","labels":{"kubernetes.io/metadata.name":"ns"}},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}),
        ),
        (
            "v1",
            "PersistentVolume",
            json!({"spec":{}}),
            "",
            json!({"spec":{"persistentVolumeReclaimPolicy":"Retain","volumeMode":"Filesystem"},"status":{"phase":"Pending"}}),
        ),
        (
            "v1",
            "PersistentVolumeClaim",
            json!({"spec":{}}),
            "",
            json!({"spec":{"volumeMode":"Filesystem"},"status":{"phase":"Pending"}}),
        ),
        (
            "storage.k8s.io/v1",
            "StorageClass",
            json!({"provisioner":"p"}),
            "",
            json!({"provisioner":"p","reclaimPolicy":"Delete","volumeBindingMode":"Immediate"}),
        ),
        ("autoscaling/v1", "HorizontalPodAutoscaler", json!({"spec":{}}), "/spec/minReplicas", json!(1)),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            json!({"spec":{}}),
            "/spec/metrics",
            json!([{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":80}}}]),
        ),
        (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            json!({"spec":{"egress":[{}]}}),
            "/spec/policyTypes",
            json!(["Ingress", "Egress"]),
        ),
        ("networking.k8s.io/v1", "NetworkPolicy", json!({"spec":{}}), "/spec/policyTypes", json!(["Ingress"])),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            json!({"subjects":[{"kind":"User","name":"u"},{"kind":"ServiceAccount","name":"s"}],"roleRef":{"kind":"Role","name":"r"}}),
            "",
            json!({"subjects":[{"kind":"User","name":"u","apiGroup":"rbac.authorization.k8s.io"},{"kind":"ServiceAccount","name":"s","apiGroup":""}],"roleRef":{"kind":"Role","name":"r","apiGroup":"rbac.authorization.k8s.io"}}),
        ),
        ("discovery.k8s.io/v1", "EndpointSlice", json!({"ports":[{"port":80}]}), "/ports/0/protocol", json!("TCP")),
        ("v1", "ConfigMap", json!({"data":{"a":"b"}}), "", json!({"data":{"a":"b"}})),
    ];
    for (api_version, kind, input, pointer, want) in table {
        let got = defaulted(api_version, kind, input.clone());
        assert_eq!(got.pointer(pointer).cloned().unwrap_or(Value::Null), want, "{kind} {input} at {pointer:?}");
    }
}

#[test]
fn defaulting_is_idempotent_and_keeps_user_values() {
    let input = json!({"spec":{"restartPolicy":"Never","containers":[{"name":"a","image":"i","imagePullPolicy":"Never","ports":[{"containerPort":53,"protocol":"UDP"}]}]}});
    let once = defaulted("v1", "Pod", input);
    let twice = defaulted("v1", "Pod", once.clone());
    assert_eq!(once, twice);
    assert_eq!(once["spec"]["restartPolicy"], "Never");
    assert_eq!(once["spec"]["containers"][0]["imagePullPolicy"], "Never");
    assert_eq!(once["spec"]["containers"][0]["ports"][0]["protocol"], "UDP");
}

#[test]
fn every_seed_manifest_is_valid_after_defaulting_and_has_no_unknown_fields() {
    let Ok(dir) = std::fs::read_dir("/work/shared/seed/manifests") else {
        return;
    };
    let mut seen = 0;
    for entry in dir.flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("readable");
        let mut obj: Value = serde_saphyr::from_str(&text).expect("yaml");
        let api_version = obj["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        let d = def(&api_version, &kind);
        assert_eq!(unknown_fields(d, &obj), Ok(vec![]), "{:?}", entry.path());
        if d.namespaced && obj["metadata"]["namespace"].is_null() {
            obj["metadata"]["namespace"] = json!("default");
        }
        default_object(d, &mut obj);
        let errs: Vec<String> = validate_create(d, &obj).iter().map(ToString::to_string).collect();
        assert!(errs.is_empty(), "{:?}: {errs:#?}", entry.path());
        assert_eq!(unknown_fields(d, &obj), Ok(vec![]), "defaulted {:?}", entry.path());
        seen += 1;
    }
    assert!(seen >= 15);
}
