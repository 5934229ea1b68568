//! End to end: the controllers and the scheduler working together, as the issue's
//! "done means" describe them: deleting a Deployment with each cascade mode, and pods of a
//! node that stops renewing its Lease being replaced on another node.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Cluster, Kubectl, eventually};
use serde_json::Value;

fn now_micro() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: nginx:1.17}}]}}\n"
    )
}

fn names(k: &Kubectl, kind: &str, selector: &str) -> Vec<String> {
    let out = k.run(&["get", kind, "-l", selector, "-o", "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}"]);
    out.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

fn owners(k: &Kubectl, kind: &str, name: &str) -> String {
    k.run(&["get", kind, name, "-o", "jsonpath={.metadata.ownerReferences}"])
}

/// `kubectl delete deployment` with the default, orphan and foreground cascades. No node
/// exists, so pods stay Pending and their deletion is immediate.
#[test]
fn deleting_a_deployment_cascades_as_asked() {
    let c = Cluster::start();
    for v in ["1.33", "1.31"] {
        let k = c.kubectl(v);
        let tag = v.replace('.', "-");
        for mode in ["background", "orphan", "foreground"] {
            let name = format!("web-{mode}-{tag}");
            let sel = format!("app={name}");
            k.run_stdin(&["apply", "-f", "-"], &deployment(&name, 2));
            eventually(30, || (names(&k, "rs", &sel).len() == 1 && names(&k, "pods", &sel).len() == 2).then_some(()));
            let rs = names(&k, "rs", &sel).remove(0);
            match mode {
                "background" => {
                    k.run(&["delete", "deployment", &name]);
                    eventually(30, || {
                        (names(&k, "rs", &sel).is_empty() && names(&k, "pods", &sel).is_empty()).then_some(())
                    });
                }
                "orphan" => {
                    k.run(&["delete", "deployment", &name, "--cascade=orphan"]);
                    // The ReplicaSet and its pods stay; the ReplicaSet no longer has an owner.
                    eventually(30, || owners(&k, "rs", &rs).is_empty().then_some(()));
                    std::thread::sleep(Duration::from_secs(1));
                    assert_eq!(names(&k, "rs", &sel), std::slice::from_ref(&rs), "{v}");
                    assert_eq!(names(&k, "pods", &sel).len(), 2, "{v}");
                    k.run(&["delete", "rs", &rs]);
                }
                _ => {
                    // kubectl returns once the Deployment is gone, which foreground
                    // deletion allows only after its dependents.
                    k.run(&["delete", "deployment", &name, "--cascade=foreground", "--timeout=60s"]);
                    assert!(names(&k, "rs", &sel).is_empty(), "{v}: the ReplicaSet went first");
                    assert!(names(&k, "pods", &sel).is_empty(), "{v}: and its pods");
                }
            }
        }
    }
}

/// Renews the Leases of the named nodes every half second while `alive` says so.
struct Heartbeats {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeats {
    fn start(k: Kubectl, nodes: Vec<(String, Arc<AtomicBool>)>) -> Heartbeats {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                for (node, alive) in &nodes {
                    if alive.load(Ordering::Relaxed) {
                        let lease = format!(
                            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: {node}, namespace: kube-node-lease}}\nspec: {{holderIdentity: {node}, leaseDurationSeconds: 40, renewTime: \"{}\"}}\n",
                            now_micro()
                        );
                        let _ = k.try_run_stdin(&["apply", "-f", "-"], &lease);
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Heartbeats { stop, thread: Some(thread) }
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn register(k: &Kubectl, name: &str) {
    common::register_node(k, name, "4", "8Gi", &[]);
}

/// A node whose Lease stops being renewed goes NotReady; once the (shortened)
/// toleration runs out its pod is evicted and the ReplicaSet's replacement is scheduled
/// on the node that is still alive.
#[test]
fn pods_of_a_lost_node_are_replaced_elsewhere() {
    let c = Cluster::start_with(&[
        "--node-monitor-period",
        "1s",
        "--node-monitor-grace-period",
        "4s",
        "--default-unreachable-toleration-seconds",
        "3",
        "--default-not-ready-toleration-seconds",
        "3",
    ]);
    let k = c.kubectl("1.33");
    let (a_alive, b_alive) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(true)));
    let _beats =
        Heartbeats::start(c.kubectl("1.33"), vec![("node-a".into(), a_alive.clone()), ("node-b".into(), b_alive)]);
    register(&k, "node-a");
    register(&k, "node-b");
    // The scheduler learns of nodes through its watch: make sure it knows node-b (so
    // knows node-a too) before the Deployment's pods come, or both may land on node-a.
    let probe = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: probe-b\nspec:\n  nodeSelector: {kubernetes.io/hostname: node-b}\n  containers: [{name: c, image: busybox:1.28}]\n";
    k.run_stdin(&["apply", "-f", "-"], probe);
    eventually(30, || (!k.run(&["get", "pod", "probe-b", "-o", "jsonpath={.spec.nodeName}"]).is_empty()).then_some(()));
    k.run(&["delete", "pod", "probe-b", "--grace-period=0", "--force"]);
    k.run_stdin(&["apply", "-f", "-"], &deployment("survivor", 2));
    let placed = |k: &Kubectl| -> Vec<(String, String)> {
        let v: Value =
            serde_json::from_str(&k.run(&["get", "pods", "-l", "app=survivor", "-o", "json"])).expect("json");
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let before = eventually(30, || {
        let p = placed(&k);
        (p.len() == 2 && p.iter().all(|(_, n)| !n.is_empty())).then_some(p)
    });
    let mut nodes: Vec<&str> = before.iter().map(|(_, n)| n.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, ["node-a", "node-b"], "spread over both nodes");

    a_alive.store(false, Ordering::Relaxed);
    eventually(30, || {
        let ready =
            k.run(&["get", "node", "node-a", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
        (ready == "Unknown").then_some(())
    });
    assert!(k.run(&["get", "node", "node-a"]).contains("NotReady"));
    let after = eventually(60, || {
        let p = placed(&k);
        (p.len() == 2 && p.iter().all(|(_, n)| n == "node-b")).then_some(p)
    });
    let lost = before.iter().find(|(_, n)| n == "node-a").map(|(p, _)| p.clone()).expect("a pod was on node-a");
    assert!(after.iter().all(|(p, _)| *p != lost), "the evicted pod was replaced: {after:?}");
    let marked = k.run(&["get", "pod", &lost, "--ignore-not-found", "-o", "jsonpath={.metadata.deletionTimestamp}"]);
    let gone = k.run(&["get", "pod", &lost, "--ignore-not-found", "-o", "name"]).is_empty();
    assert!(gone || !marked.is_empty(), "the pod on the lost node was evicted");
}
