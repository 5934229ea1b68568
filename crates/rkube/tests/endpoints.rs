//! The Endpoints and EndpointSlice controllers end to end, checked with the real kubectl:
//! slices and Endpoints follow pod readiness, scaling and deletion, named target ports
//! resolve per pod, `publishNotReadyAddresses`, the seed's `my-service`, `kubectl describe
//! svc`, garbage collection with the Service, and `default/kubernetes` pointing at the
//! API server.
//!
//! There is no kubelet: pods are bound to a registered fake Node and the test writes
//! what a kubelet would (podIP, phase, Ready) through the status subresource.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Cluster, Kubectl, eventually};
use serde_json::{Value, json};

const NODE: &str = "node-a";

/// A pod bound to [`NODE`] labelled `labels`, with container ports `ports`
/// (`[{"name", "containerPort"}]`).
fn create_pod(k: &Kubectl, name: &str, labels: Value, ports: Value) {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "busybox", "ports": ports}]}});
    k.run_stdin(&["apply", "-f", "-"], &pod.to_string());
}

/// What the kubelet would report: Running with `ip`, Ready or not.
fn set_status(k: &Kubectl, name: &str, ip: &str, ready: bool) {
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [
        {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": common::rfc3339_now()},
    ]}});
    k.run(&["patch", "pod", name, "--subresource=status", "--type=merge", "-p", &status.to_string()]);
}

fn slices(k: &Kubectl, svc: &str) -> Vec<Value> {
    let list = k.json(&["get", "endpointslices", "-l", &format!("kubernetes.io/service-name={svc}")]);
    list["items"].as_array().cloned().unwrap_or_default()
}

/// `(ip, ready, serving, terminating)` of every endpoint of the Service's slices.
fn slice_endpoints(k: &Kubectl, svc: &str) -> BTreeSet<(String, bool, bool, bool)> {
    let mut out = BTreeSet::new();
    for s in slices(k, svc) {
        for e in s["endpoints"].as_array().into_iter().flatten() {
            let c = &e["conditions"];
            out.insert((
                e["addresses"][0].as_str().unwrap_or("").to_string(),
                c["ready"] == true,
                c["serving"] == true,
                c["terminating"] == true,
            ));
        }
    }
    out
}

/// Ready and not-ready addresses of the Service's Endpoints (every subset).
fn endpoint_addresses(k: &Kubectl, svc: &str) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let r = k.try_run(&["get", "endpoints", svc, "-o", "json"]);
    if r.code != 0 {
        return None;
    }
    let ep = r.json();
    let mut ready = BTreeSet::new();
    let mut not_ready = BTreeSet::new();
    for s in ep["subsets"].as_array().into_iter().flatten() {
        for a in s["addresses"].as_array().into_iter().flatten() {
            ready.insert(a["ip"].as_str().unwrap_or("").to_string());
        }
        for a in s["notReadyAddresses"].as_array().into_iter().flatten() {
            not_ready.insert(a["ip"].as_str().unwrap_or("").to_string());
        }
    }
    Some((ready, not_ready))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn ep(ip: &str, ready: bool, serving: bool, terminating: bool) -> (String, bool, bool, bool) {
    (ip.to_string(), ready, serving, terminating)
}

#[test]
fn endpoints_follow_pods() {
    // The fake node must not turn Unknown (and its pods be evicted) during the test.
    let c = Cluster::start_with(&["--node-monitor-grace-period", "10m"]);
    let k = c.kubectl("1.33");
    common::register_node(&k, NODE, "8", "16Gi", &[("topology.kubernetes.io/zone", "zone-a")]);

    // The seed's my-service: selector app=MyApp, port 80 → 9376.
    let manifest = common::seed_manifests().join("07-service-my-service.yaml");
    k.run(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    let svc = k.json(&["get", "svc", "my-service"]);
    assert_eq!(svc["spec"]["selector"], json!({"app": "MyApp"}));
    // Without pods: one empty placeholder slice, and Endpoints without subsets.
    let placeholder = eventually(10, || slices(&k, "my-service").into_iter().next());
    assert_eq!(placeholder["addressType"], "IPv4");
    assert!(placeholder["endpoints"].as_array().is_none_or(Vec::is_empty), "{placeholder}");
    eventually(10, || endpoint_addresses(&k, "my-service").filter(|(r, n)| r.is_empty() && n.is_empty()));

    for (i, name) in ["myapp-1", "myapp-2", "myapp-3"].iter().enumerate() {
        create_pod(&k, name, json!({"app": "MyApp"}), json!([{"containerPort": 9376}]));
        set_status(&k, name, &format!("10.244.0.1{}", i + 1), true);
    }
    let all_ready = [
        ep("10.244.0.11", true, true, false),
        ep("10.244.0.12", true, true, false),
        ep("10.244.0.13", true, true, false),
    ];
    eventually(10, || (slice_endpoints(&k, "my-service") == all_ready.iter().cloned().collect()).then_some(()));
    let s = slices(&k, "my-service");
    assert_eq!(s.len(), 1, "three pods fit one slice (the placeholder is reused): {s:?}");
    let s = &s[0];
    assert_eq!(s["metadata"]["name"], placeholder["metadata"]["name"]);
    assert!(s["metadata"]["name"].as_str().unwrap_or("").starts_with("my-service-"));
    assert_eq!(s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"], "endpointslice-controller.k8s.io");
    let owner = &s["metadata"]["ownerReferences"][0];
    assert_eq!((owner["kind"].as_str(), owner["name"].as_str()), (Some("Service"), Some("my-service")));
    assert_eq!((owner["controller"].as_bool(), owner["blockOwnerDeletion"].as_bool()), (Some(true), Some(true)));
    assert_eq!(owner["uid"], svc["metadata"]["uid"]);
    assert_eq!(s["ports"], json!([{"name": "", "port": 9376, "protocol": "TCP"}]));
    let e = s["endpoints"].as_array().expect("endpoints").iter().find(|e| e["addresses"][0] == "10.244.0.11").cloned();
    let e = e.expect("myapp-1's endpoint");
    assert_eq!((e["nodeName"].as_str(), e["zone"].as_str()), (Some(NODE), Some("zone-a")));
    assert_eq!((e["targetRef"]["kind"].as_str(), e["targetRef"]["name"].as_str()), (Some("Pod"), Some("myapp-1")));
    eventually(10, || {
        endpoint_addresses(&k, "my-service")
            .filter(|(r, n)| *r == set(&["10.244.0.11", "10.244.0.12", "10.244.0.13"]) && n.is_empty())
    });
    let eps = k.json(&["get", "endpoints", "my-service"]);
    assert_eq!(eps["subsets"][0]["ports"], json!([{"port": 9376, "protocol": "TCP"}]));
    assert_eq!(eps["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"], "true");
    let describe = k.run(&["describe", "svc", "my-service"]);
    let line = describe.lines().find(|l| l.starts_with("Endpoints:")).unwrap_or_default().to_string();
    assert!(line.contains("10.244.0.11:9376"), "describe svc: {describe}");
    let printed = k.run(&["get", "endpointslices", "-l", "kubernetes.io/service-name=my-service"]);
    assert!(printed.contains("IPv4") && printed.contains("9376"), "{printed}");

    // Nothing changed: a resync writes nothing.
    let rv = s["metadata"]["resourceVersion"].clone();
    k.run(&["label", "pod", "myapp-1", "unrelated=yes"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(slices(&k, "my-service")[0]["metadata"]["resourceVersion"], rv, "no churn");

    // A pod turning not ready is not ready in the slice, and in notReadyAddresses,
    // within a second or so.
    let start = Instant::now();
    set_status(&k, "myapp-2", "10.244.0.12", false);
    eventually(10, || {
        slice_endpoints(&k, "my-service").contains(&ep("10.244.0.12", false, false, false)).then_some(())
    });
    eventually(10, || {
        endpoint_addresses(&k, "my-service")
            .filter(|(r, n)| *r == set(&["10.244.0.11", "10.244.0.13"]) && *n == set(&["10.244.0.12"]))
    });
    // The controllers write within milliseconds; the bound leaves room for the kubectl
    // runs that observe it on a loaded machine.
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "readiness change took {took:?}");
    let s2 = slices(&k, "my-service");
    assert_eq!(s2.len(), 1);
    assert_eq!(s2[0]["metadata"]["name"], s["metadata"]["name"], "updated in place");

    // Scaling up and down.
    create_pod(&k, "myapp-4", json!({"app": "MyApp"}), json!([]));
    set_status(&k, "myapp-4", "10.244.0.14", true);
    k.run(&["delete", "pod", "myapp-1", "--grace-period=0", "--force"]);
    eventually(10, || {
        endpoint_addresses(&k, "my-service")
            .filter(|(r, n)| *r == set(&["10.244.0.13", "10.244.0.14"]) && *n == set(&["10.244.0.12"]))
    });
    eventually(10, || {
        let want = [
            ep("10.244.0.12", false, false, false),
            ep("10.244.0.13", true, true, false),
            ep("10.244.0.14", true, true, false),
        ];
        (slice_endpoints(&k, "my-service") == want.iter().cloned().collect()).then_some(())
    });

    // A terminating pod (no kubelet finishes its deletion) stays in the slice as
    // terminating and not ready, and leaves the Endpoints.
    k.run(&["delete", "pod", "myapp-3", "--wait=false"]);
    eventually(10, || slice_endpoints(&k, "my-service").contains(&ep("10.244.0.13", false, true, true)).then_some(()));
    eventually(10, || {
        endpoint_addresses(&k, "my-service").filter(|(r, n)| *r == set(&["10.244.0.14"]) && *n == set(&["10.244.0.12"]))
    });

    // A pod whose labels stop matching leaves.
    k.run(&["label", "pod", "myapp-4", "app=Other", "--overwrite"]);
    eventually(10, || endpoint_addresses(&k, "my-service").filter(|(r, _)| r.is_empty()));
    eventually(10, || (!slice_endpoints(&k, "my-service").iter().any(|e| e.0 == "10.244.0.14")).then_some(()));

    // Deleting the Service deletes its slices (garbage collector) and Endpoints.
    k.run(&["delete", "svc", "my-service"]);
    eventually(20, || slices(&k, "my-service").is_empty().then_some(()));
    eventually(10, || (k.try_run(&["get", "endpoints", "my-service"]).code != 0).then_some(()));

    // The kubernetes Service's endpoints are the API server itself.
    let port: u16 = c.server_url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("port in the server URL");
    let kep = eventually(10, || {
        let r = k.try_run(&["get", "endpoints", "kubernetes", "-o", "json"]);
        (r.code == 0).then(|| r.json())
    });
    assert_eq!(
        kep["subsets"],
        json!([{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}])
    );
    let printed = k.run(&["get", "endpoints", "kubernetes"]);
    assert!(printed.contains(&format!("127.0.0.1:{port}")), "{printed}");
    let kslice = k.json(&["get", "endpointslice", "kubernetes"]);
    assert_eq!(kslice["endpoints"][0]["addresses"], json!(["127.0.0.1"]));
    assert_eq!(kslice["ports"][0]["port"], json!(port));
    assert_eq!(kslice["metadata"]["labels"]["kubernetes.io/service-name"], "kubernetes");
}

#[test]
fn named_target_ports_and_publish_not_ready() {
    let c = Cluster::start_with(&["--node-monitor-grace-period", "10m"]);
    let k = c.kubectl("1.33");
    common::register_node(&k, NODE, "8", "16Gi", &[]);
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}});
    k.run_stdin(&["apply", "-f", "-"], &svc.to_string());
    create_pod(&k, "web-1", json!({"app": "web"}), json!([{"name": "http", "containerPort": 8080}]));
    create_pod(&k, "web-2", json!({"app": "web"}), json!([{"name": "http", "containerPort": 9090}]));
    create_pod(&k, "web-3", json!({"app": "web"}), json!([{"name": "http", "containerPort": 8080}]));
    set_status(&k, "web-1", "10.244.0.21", true);
    set_status(&k, "web-2", "10.244.0.22", true);
    set_status(&k, "web-3", "10.244.0.23", false);

    // Pods resolving "http" differently land in different slices.
    let by_port = || -> BTreeSet<(i64, Vec<String>)> {
        slices(&k, "web")
            .iter()
            .map(|s| {
                let port = s["ports"][0]["port"].as_i64().unwrap_or(0);
                let mut ips: Vec<String> = s["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| e["addresses"][0].as_str().unwrap_or("").to_string())
                    .collect();
                ips.sort();
                (port, ips)
            })
            .collect()
    };
    let want: BTreeSet<(i64, Vec<String>)> =
        [(8080, vec!["10.244.0.21".into(), "10.244.0.23".into()]), (9090, vec!["10.244.0.22".into()])].into();
    eventually(10, || (by_port() == want).then_some(()));
    // And in different Endpoints subsets.
    let subsets = eventually(10, || {
        let r = k.try_run(&["get", "endpoints", "web", "-o", "json"]);
        let v = if r.code == 0 { r.json() } else { Value::Null };
        (v["subsets"].as_array().map_or(0, Vec::len) == 2).then(|| v["subsets"].clone())
    });
    let mut got: Vec<(i64, Value, Value)> = subsets
        .as_array()
        .expect("subsets")
        .iter()
        .map(|s| (s["ports"][0]["port"].as_i64().unwrap_or(0), s["addresses"].clone(), s["notReadyAddresses"].clone()))
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(got[0].1[0]["ip"], "10.244.0.21");
    assert_eq!(got[0].2[0]["ip"], "10.244.0.23");
    assert_eq!(got[1].1[0]["ip"], "10.244.0.22");
    assert_eq!(subsets[0]["ports"][0]["name"], "http");

    // publishNotReadyAddresses: the not-ready pod is ready in the slice and the Endpoints.
    k.run(&["patch", "svc", "web", "--type=merge", "-p", r#"{"spec":{"publishNotReadyAddresses":true}}"#]);
    eventually(10, || {
        let all = slice_endpoints(&k, "web");
        all.contains(&ep("10.244.0.23", true, false, false)).then_some(())
    });
    eventually(10, || {
        endpoint_addresses(&k, "web")
            .filter(|(r, n)| *r == set(&["10.244.0.21", "10.244.0.22", "10.244.0.23"]) && n.is_empty())
    });

    // A Service without a selector gets no managed slices and no Endpoints from us.
    let manual = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "manual"},
        "spec": {"ports": [{"port": 80}]}});
    k.run_stdin(&["apply", "-f", "-"], &manual.to_string());
    std::thread::sleep(Duration::from_secs(1));
    assert!(slices(&k, "manual").is_empty());
    assert!(endpoint_addresses(&k, "manual").is_none());
}
