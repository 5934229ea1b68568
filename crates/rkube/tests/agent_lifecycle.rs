//! End-to-end: pods reach each other by pod IP, a memory-limit breach is reported as
//! OOMKilled, and a `kill -9` of the server (and its in-process agent) leaves the
//! containers running: the restarted agent re-adopts them and the pods stay Ready.

mod common;

use std::time::Duration;

use common::{Cluster, Kubectl, node_ready, wait_for};
use serde_json::Value;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: server
spec:
  containers:
  - name: web
    image: rkube.local/testserver:1.0
    imagePullPolicy: IfNotPresent
    args: ["--port", "8080"]
    # Probed: a restarted agent must carry the Ready result over, not flip it.
    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: busybox:1.28
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: rkube.local/testserver:1.0
    imagePullPolicy: IfNotPresent
    args: ["--alloc-mib", "256"]
    resources:
      limits:
        memory: 32Mi
"#;

fn pod(k: &Kubectl, name: &str) -> Value {
    serde_json::from_str(&k.run(&["get", "pod", name, "-o", "json"])).unwrap()
}

fn ready(p: &Value) -> bool {
    common::condition(p, "Ready") == "True"
}

/// (containerID, restartCount) of a pod's first container.
fn identity(p: &Value) -> (String, i64) {
    let cs = &p["status"]["containerStatuses"][0];
    (cs["containerID"].as_str().unwrap_or_default().to_string(), cs["restartCount"].as_i64().unwrap_or(-1))
}

#[test]
fn pod_network_oom_and_agent_restart() {
    let flags = ["--cluster-cidr", "10.214.0.0/16", "--node-name", "life-e2e"];
    let c = Cluster::start_with_agent(&flags);
    let k = c.kubectl("1.33");
    wait_for("node Ready", Duration::from_secs(60), || node_ready(&k, "life-e2e"));
    k.run_stdin(&["apply", "-f", "-"], PODS);
    for name in ["server", "client"] {
        wait_for(&format!("{name} Ready"), Duration::from_secs(60), || {
            let p = pod(&k, name);
            ready(&p).then_some(()).ok_or_else(|| p["status"].to_string())
        });
    }

    // Two pods on the node reach each other by pod IP.
    let server_ip = pod(&k, "server")["status"]["podIP"].as_str().unwrap().to_string();
    let url = format!("http://{server_ip}:8080/hostname");
    let answer = wait_for("client reaches server by pod IP", Duration::from_secs(20), || {
        let r = k.try_run(&["exec", "client", "--", "wget", "-qO-", &url]);
        (r.code == 0).then_some(r.stdout.clone()).ok_or(r.stderr)
    });
    assert_eq!(answer.trim(), "server");

    // A memory-limit breach: the kernel kills the container and the status says why.
    let hog = wait_for("hog OOMKilled", Duration::from_secs(60), || {
        let p = pod(&k, "hog");
        let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
        (t["reason"] == "OOMKilled").then_some(p.clone()).ok_or_else(|| p["status"].to_string())
    });
    assert_eq!(hog["status"]["phase"], "Failed");
    assert_eq!(hog["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 137);

    // A static pod: a manifest in the agent's folder runs, with a mirror pod in the API
    // owned by the Node; editing it replaces the pod; removing it deletes the pod.
    let manifests = c.dir.path().join("data/agent/pod-manifests");
    let manifest = manifests.join("static-web.yaml");
    let static_pod = |tag: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\n  labels: {{tier: {tag}}}\nspec:\n  containers:\n  - name: web\n    image: rkube.local/testserver:1.0\n    imagePullPolicy: IfNotPresent\n"
        )
    };
    std::fs::write(&manifest, static_pod("one")).unwrap();
    let mirror = wait_for("the mirror pod Running", Duration::from_secs(60), || {
        let r = k.try_run(&["get", "pod", "static-web-life-e2e", "-o", "json"]);
        let p: Value = serde_json::from_str(&r.stdout).map_err(|_| r.stderr.clone())?;
        (p["status"]["phase"] == "Running").then_some(p.clone()).ok_or(r.stdout)
    });
    assert!(mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string(), "{mirror}");
    assert_eq!(mirror["metadata"]["ownerReferences"][0]["kind"], "Node");
    assert_eq!(mirror["spec"]["nodeName"], "life-e2e");
    std::fs::write(&manifest, static_pod("two")).unwrap();
    wait_for("the edited static pod replaced", Duration::from_secs(60), || {
        let r = k.try_run(&["get", "pod", "static-web-life-e2e", "-o", "json"]);
        let p: Value = serde_json::from_str(&r.stdout).map_err(|_| r.stderr.clone())?;
        (p["metadata"]["labels"]["tier"] == "two" && p["status"]["phase"] == "Running").then_some(()).ok_or(r.stdout)
    });
    std::fs::remove_file(&manifest).unwrap();
    wait_for("the removed static pod gone", Duration::from_secs(60), || {
        let r = k.try_run(&["get", "pod", "static-web-life-e2e"]);
        (r.code != 0 && r.stderr.contains("NotFound")).then_some(()).ok_or(r.stdout)
    });

    // kill -9 of the server and its agent: containers keep running; a restart re-adopts
    // them without restarting anything, and the pods stay Ready.
    let before: Vec<(String, i64)> = ["server", "client"].iter().map(|n| identity(&pod(&k, n))).collect();
    let port = |k: &Kubectl| {
        k.run(&["get", "node", "life-e2e", "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}"])
    };
    let old_port = port(&k);
    let dir = c.kill9();
    let c = Cluster::start_in_with_agent(dir, &flags);
    let k = c.kubectl("1.33");
    // The restarted agent registers again, with its new kubelet port.
    wait_for("the restarted agent registered", Duration::from_secs(60), || {
        let p = port(&k);
        (p != old_port).then_some(()).ok_or(p)
    });
    wait_for("node Ready after restart", Duration::from_secs(60), || node_ready(&k, "life-e2e"));
    // Give the agent a few sync rounds to (wrongly) restart things if it were going to.
    std::thread::sleep(Duration::from_secs(3));
    for (name, was) in ["server", "client"].iter().zip(&before) {
        let p = pod(&k, name);
        assert!(ready(&p), "{name} stays Ready: {}", p["status"]);
        assert_eq!(&identity(&p), was, "{name} keeps its container and restart count");
    }
    let r = k.run(&["exec", "client", "--", "wget", "-qO-", &url]);
    assert_eq!(r.trim(), "server");
}
