//! End to end: node IPAM and node lifecycle, with Node objects registered by the test
//! standing in for kubelets (no agent exists yet).

mod common;

use common::{Cluster, eventually};

fn register(k: &common::Kubectl, name: &str) {
    common::register_node(k, name, "2", "4Gi", &[]);
}

/// Nodes get distinct pod ranges from the cluster CIDR.
#[test]
fn nodes_get_pod_ranges() {
    let c = Cluster::start_with(&["--cluster-cidr", "10.50.0.0/16"]);
    let k = c.kubectl("1.33");
    for n in ["a", "b", "c"] {
        register(&k, n);
    }
    let ranges = eventually(20, || {
        let out = k.run(&["get", "nodes", "-o", "jsonpath={range .items[*]}{.spec.podCIDR}{\"\\n\"}{end}"]);
        let r: Vec<String> = out.lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
        (r.len() == 3).then_some(r)
    });
    let mut sorted = ranges.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ["10.50.0.0/24", "10.50.1.0/24", "10.50.2.0/24"], "{ranges:?}");
}

/// A node whose heartbeats stop becomes NotReady (Unknown) and tainted unreachable; its
/// pods are evicted once their toleration runs out.
#[test]
fn silent_nodes_go_unknown_and_their_pods_are_evicted() {
    let c = Cluster::start_with(&[
        "--node-monitor-period",
        "1s",
        "--node-monitor-grace-period",
        "3s",
        "--default-unreachable-toleration-seconds",
        "2",
    ]);
    let k = c.kubectl("1.33");
    register(&k, "lost");
    // Bound directly to the node, as the scheduler would.
    for (pod, tolerate) in [("short", false), ("forever", true)] {
        let extra = if tolerate {
            "  tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute}]\n"
        } else {
            ""
        };
        k.run_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: default}}\nspec:\n  nodeName: lost\n  containers: [{{name: c, image: busybox}}]\n{extra}"
            ),
        );
    }
    let tol = k.run(&[
        "get",
        "pod",
        "short",
        "-o",
        "jsonpath={.spec.tolerations[?(@.key==\"node.kubernetes.io/unreachable\")].tolerationSeconds}",
    ]);
    assert_eq!(tol, "2", "default toleration from the server flag");

    eventually(20, || {
        let status =
            k.run(&["get", "node", "lost", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
        (status == "Unknown").then_some(())
    });
    let get = k.run(&["get", "node", "lost"]);
    assert!(get.contains("NotReady"), "{get}");
    let taints = k.run(&["get", "node", "lost", "-o", "jsonpath={.spec.taints[*].key}"]);
    assert!(taints.contains("node.kubernetes.io/unreachable"), "{taints}");
    let reason = k.run(&["get", "node", "lost", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}"]);
    assert_eq!(reason, "NodeStatusUnknown");

    // The pod tolerating for 2 s is marked for deletion; the other stays.
    eventually(20, || {
        let ts = k.run(&["get", "pod", "short", "-o", "jsonpath={.metadata.deletionTimestamp}", "--ignore-not-found"]);
        (!ts.is_empty() || k.run(&["get", "pod", "short", "--ignore-not-found", "-o", "name"]).is_empty()).then_some(())
    });
    let forever = k.run(&["get", "pod", "forever", "-o", "jsonpath={.metadata.deletionTimestamp}"]);
    assert!(forever.is_empty(), "a pod tolerating forever is not evicted");
    let events =
        k.run(&["get", "events", "--field-selector", "involvedObject.name=short", "-o", "jsonpath={.items[*].reason}"]);
    assert!(events.contains("TaintManagerEviction"), "{events}");

    // A heartbeat brings the node back and lifts the taints.
    register(&k, "lost");
    eventually(20, || {
        let taints = k.run(&["get", "node", "lost", "-o", "jsonpath={.spec.taints[*].key}"]);
        (!taints.contains("unreachable")).then_some(())
    });
}
