//! End to end: the scheduler inside a real `rkube server`, observed with the real
//! kubectl as a user sees it — which node each pod got (`spec.nodeName`), the `Scheduled`
//! and `FailedScheduling` events in `kubectl describe`, the `PodScheduled` condition.
//!
//! No kubelet exists yet, so nodes are Node objects the test registers: created with
//! `kubectl apply`, then given capacity and a Ready condition through the status
//! subresource, as a kubelet would.

mod common;

use common::{Cluster, Kubectl, VERSIONS, eventually, seed_manifests};
use serde_json::{Value, json};

/// Prints the end of the server log when the test fails, where the scheduler says
/// what it did.
struct LogOnPanic<'a>(&'a Cluster);

impl Drop for LogOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.0.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- server log (last lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Registers a Ready node with `cpu`/`memory` allocatable and 110 pods.
fn add_node(k: &Kubectl, name: &str, cpu: &str, memory: &str, labels: &[(&str, &str)]) {
    common::register_node(k, name, cpu, memory, labels);
}

/// A Pod manifest with one container; `spec` is merged into the spec.
fn pod(name: &str, spec: Value) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [{"name": "c", "image": "nginx:1.14.2"}]}});
    if let (Some(s), Value::Object(extra)) = (p["spec"].as_object_mut(), spec) {
        s.extend(extra);
    }
    p
}

fn create(k: &Kubectl, obj: &Value) {
    k.run_stdin(&["apply", "-f", "-"], &obj.to_string());
}

fn node_of(k: &Kubectl, pod: &str) -> Option<String> {
    let p = k.json(&["get", "pod", pod]);
    p["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()).map(str::to_string)
}

fn bound(k: &Kubectl, pod: &str) -> String {
    eventually(20, || node_of(k, pod))
}

fn requests(cpu: &str) -> Value {
    json!({"containers": [{"name": "c", "image": "nginx:1.14.2", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]})
}

/// Pods get nodes, spread over them; `describe` shows the `Scheduled` event.
#[test]
fn pods_are_bound_and_spread_over_nodes() {
    let c = Cluster::start();
    let _log = LogOnPanic(&c);
    let k = c.kubectl("1.33");
    for n in ["n1", "n2", "n3"] {
        add_node(&k, n, "4", "8Gi", &[]);
    }
    for p in ["p1", "p2", "p3"] {
        k.run(&["run", p, "--image=nginx:1.14.2", "--restart=Never"]);
    }
    let mut nodes: Vec<String> = ["p1", "p2", "p3"].iter().map(|p| bound(&k, p)).collect();
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2", "n3"], "three equal nodes, three pods: one each");

    // Two replicas that must not share a node, created together.
    let anti = |name: &str| {
        let mut p = pod(
            name,
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
        );
        p["metadata"]["labels"] = json!({"app": "solo"});
        p
    };
    // One apply for both (a `kind: List` would need /openapi/v2 for kubectl's validation).
    let both = format!("{}\n---\n{}", anti("solo-1"), anti("solo-2"));
    k.run_stdin(&["apply", "-f", "-"], &both);
    assert_ne!(bound(&k, "solo-1"), bound(&k, "solo-2"));

    let n1 = node_of(&k, "p1").expect("bound");
    for v in VERSIONS {
        let kv = c.kubectl(v);
        let out = eventually(20, || {
            let out = kv.run(&["describe", "pod", "p1"]);
            out.contains("Successfully assigned").then_some(out)
        });
        assert!(out.contains("Scheduled"), "{v}: {out}");
        assert!(out.contains(&format!("Successfully assigned default/p1 to {n1}")), "{v}: {out}");
        assert!(out.contains("default-scheduler"), "{v}: {out}");
    }
}

/// The seed's two-replica nginx Deployment: its ReplicaSet's pods land on two nodes even
/// where packing them would score better, because pods of one owner spread (upstream's
/// default topology spreading over the ReplicaSet's selector).
#[test]
fn deployment_replicas_spread_over_nodes() {
    let c = Cluster::start();
    let _log = LogOnPanic(&c);
    let k = c.kubectl("1.33");
    add_node(&k, "n1", "4", "8Gi", &[]);
    add_node(&k, "n2", "4", "8Gi", &[]);
    // A little load on n2: by resources alone both replicas would go to n1.
    create(
        &k,
        &pod(
            "load",
            json!({"nodeSelector": {"kubernetes.io/hostname": "n2"}, "containers": [
        {"name": "c", "image": "nginx:1.14.2", "resources": {"requests": {"cpu": "200m", "memory": "0"}}}]}),
        ),
    );
    assert_eq!(bound(&k, "load"), "n2");
    let manifest = seed_manifests().join("01-nginx-deployment.yaml");
    k.run(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    let nodes = eventually(30, || {
        let pods = k.json(&["get", "pods", "-l", "app=nginx"]);
        let items = pods["items"].as_array()?;
        let mut nodes: Vec<String> =
            items.iter().filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string)).collect();
        (items.len() == 2 && nodes.len() == 2).then(|| {
            nodes.sort();
            nodes
        })
    });
    assert_eq!(nodes, ["n1", "n2"], "the two replicas share a node");
    assert_eq!(k.json(&["get", "replicasets", "-l", "app=nginx"])["items"].as_array().map(Vec::len), Some(1));
}

/// Taints repel, tolerations admit, selectors and affinity pin, cordoned nodes get
/// nothing new; the pinned pod waiting on a cordoned node goes there once uncordoned.
#[test]
fn taints_selectors_affinity_and_cordon() {
    let c = Cluster::start();
    let _log = LogOnPanic(&c);
    let k = c.kubectl("1.32");
    add_node(&k, "n1", "4", "8Gi", &[]);
    add_node(&k, "n2", "4", "8Gi", &[("disk", "ssd")]);
    add_node(&k, "n3", "4", "8Gi", &[]);
    k.run(&["taint", "nodes", "n1", "spray=mortein:NoSchedule"]);
    // The taint must be in the scheduler's cache before the pods arrive.
    eventually(20, || k.json(&["get", "node", "n1"])["spec"]["taints"].as_array().map(|_| ()));
    for i in 1..=4 {
        k.run(&["run", &format!("plain-{i}"), "--image=nginx:1.14.2", "--restart=Never"]);
    }
    for i in 1..=4 {
        assert_ne!(bound(&k, &format!("plain-{i}")), "n1", "plain-{i} landed on the tainted node");
    }

    let tolerant = pod(
        "tolerant",
        json!({
            "tolerations": [{"key": "spray", "operator": "Equal", "value": "mortein", "effect": "NoSchedule"}],
            "nodeSelector": {"kubernetes.io/hostname": "n1"},
        }),
    );
    create(&k, &tolerant);
    assert_eq!(bound(&k, "tolerant"), "n1");

    let ssd = pod(
        "ssd",
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}}),
    );
    create(&k, &ssd);
    assert_eq!(bound(&k, "ssd"), "n2");

    create(&k, &pod("pinned", json!({"nodeSelector": {"kubernetes.io/hostname": "n3"}})));
    assert_eq!(bound(&k, "pinned"), "n3");

    let out = k.run(&["cordon", "n3"]);
    assert!(out.contains("node/n3 cordoned"), "{out}");
    eventually(20, || (k.json(&["get", "node", "n3"])["spec"]["unschedulable"] == true).then_some(()));
    for i in 1..=3 {
        k.run(&["run", &format!("after-cordon-{i}"), "--image=nginx:1.14.2", "--restart=Never"]);
    }
    for i in 1..=3 {
        assert_eq!(bound(&k, &format!("after-cordon-{i}")), "n2", "only n2 is neither tainted nor cordoned");
    }

    create(&k, &pod("waits-for-n3", json!({"nodeSelector": {"kubernetes.io/hostname": "n3"}})));
    let want = "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
                1 node(s) had untolerated taint {spray: mortein}, 1 node(s) were unschedulable. \
                preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    let msg = eventually(20, || scheduled_condition(&k, "waits-for-n3").map(|(_, _, m)| m));
    assert_eq!(msg, want);
    assert_eq!(node_of(&k, "waits-for-n3"), None);
    k.run(&["uncordon", "n3"]);
    assert_eq!(bound(&k, "waits-for-n3"), "n3", "uncordoning wakes the queue");
}

/// `(status, reason, message)` of the pod's PodScheduled condition.
fn scheduled_condition(k: &Kubectl, pod: &str) -> Option<(String, String, String)> {
    let p = k.json(&["get", "pod", pod]);
    let c = p["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "PodScheduled")?.clone();
    let s = |f: &str| c[f].as_str().unwrap_or("").to_string();
    Some((s("status"), s("reason"), s("message")))
}

/// A pod too big for every node stays Pending and says why, in the condition and in a
/// `FailedScheduling` event; a big enough node, added later, gets it.
#[test]
fn unschedulable_pod_says_why_and_waits_for_a_node() {
    let c = Cluster::start();
    let _log = LogOnPanic(&c);
    let k = c.kubectl("1.31");
    for n in ["n1", "n2", "n3"] {
        add_node(&k, n, "4", "8Gi", &[]);
    }
    for n in ["n2", "n3"] {
        k.run(&["taint", "nodes", n, "spray=mortein:NoSchedule"]);
    }
    eventually(20, || k.json(&["get", "node", "n3"])["spec"]["taints"].as_array().map(|_| ()));
    create(&k, &pod("big", requests("5")));
    let want = "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {spray: mortein}. \
                preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    let cond = eventually(20, || scheduled_condition(&k, "big").filter(|(_, _, m)| m == want));
    assert_eq!((cond.0.as_str(), cond.1.as_str()), ("False", "Unschedulable"));
    let p = k.json(&["get", "pod", "big"]);
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(node_of(&k, "big"), None);

    for v in VERSIONS {
        let kv = c.kubectl(v);
        let out = eventually(20, || {
            let out = kv.run(&["describe", "pod", "big"]);
            out.contains("FailedScheduling").then_some(out)
        });
        assert!(out.contains(want), "{v}: describe lacks the reason:\n{out}");
        assert!(out.contains("Warning"), "{v}: {out}");
    }

    // Nothing changes in the cluster, so nothing is retried or rewritten.
    let rv = k.json(&["get", "pod", "big"])["metadata"]["resourceVersion"].clone();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(k.json(&["get", "pod", "big"])["metadata"]["resourceVersion"], rv, "the pod was rewritten");

    add_node(&k, "big", "8", "16Gi", &[]);
    assert_eq!(bound(&k, "big"), "big", "a new node wakes the queue");
    let out = eventually(20, || {
        let out = k.run(&["describe", "pod", "big"]);
        out.contains("Successfully assigned default/big to big").then_some(out)
    });
    assert!(out.contains("FailedScheduling"), "the earlier failure is still listed: {out}");
}

/// A pod bigger than any node is rejected by every node, and too many pods for a node's
/// `pods` allocatable are refused with upstream's words.
#[test]
fn resource_limits_per_node() {
    let c = Cluster::start();
    let _log = LogOnPanic(&c);
    let k = c.kubectl("1.33");
    add_node(&k, "small", "1", "1Gi", &[]);
    create(&k, &pod("half-1", requests("500m")));
    create(&k, &pod("half-2", requests("500m")));
    assert_eq!(bound(&k, "half-1"), "small");
    assert_eq!(bound(&k, "half-2"), "small");
    create(&k, &pod("one-more", requests("100m")));
    let want = "0/1 nodes are available: 1 Insufficient cpu. \
                preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";
    let msg = eventually(20, || scheduled_condition(&k, "one-more").map(|(_, _, m)| m));
    assert_eq!(msg, want);
    // Deleting a bound pod frees its share: the waiting pod goes in. (Without a kubelet
    // a graceful delete never finishes, so force it, as for a lost node.)
    k.run(&["delete", "pod", "half-1", "--grace-period=0", "--force"]);
    assert_eq!(bound(&k, "one-more"), "small", "a deleted pod wakes the queue");
}
