//! End-to-end: `rkube server` with its node agent runs pods as real containers through
//! its own containerd, on a real CNI bridge, driven by the real kubectl; `rkube killall`
//! leaves nothing behind.
//!
//! Needs root, containerd, runc and the CNI plugins (scripts/install-deps.sh installs
//! them); the images are built locally (crates/testimages) and imported at agent start.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Cluster, Kubectl, condition, wait_for};
use serde_json::Value;

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/seed/manifests");

fn manifest(name: &str) -> String {
    format!("{MANIFESTS}/{name}")
}

fn pods(k: &Kubectl, selector: &str) -> Vec<Value> {
    let out = k.run(&["get", "pods", "-l", selector, "-o", "json"]);
    serde_json::from_str::<Value>(&out).expect("pod list")["items"].as_array().cloned().unwrap_or_default()
}

/// `GET /` on `ip:port`, the whole response.
fn http_get(ip: &str, port: u16) -> Result<String, String> {
    let addr = format!("{ip}:{port}");
    let mut s = TcpStream::connect_timeout(&addr.parse().map_err(|e| format!("{e}"))?, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    s.write_all(format!("GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    Ok(body)
}

fn runtime_containers(c: &Cluster) -> String {
    let socket = c.dir.path().join("data/agent/containerd/containerd.sock");
    let out = std::process::Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["-n", "k8s.io", "containers", "ls"])
        .output()
        .expect("run ctr");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pods_run_as_real_containers_and_killall_cleans_up() {
    if !std::path::Path::new("/usr/bin/containerd").exists() {
        panic!("containerd is not installed: run scripts/install-deps.sh");
    }
    let c = Cluster::start_with_agent(&["--cluster-cidr", "10.211.0.0/16", "--node-name", "agent-e2e"]);
    let k = c.kubectl("1.33");

    // The node registers, gets its pod range, configures the network and turns Ready.
    let node = wait_for("node Ready", Duration::from_secs(60), || {
        let r = k.try_run(&["get", "node", "agent-e2e", "-o", "json"]);
        let node: Value = serde_json::from_str(&r.stdout).map_err(|_| r.stderr.clone())?;
        (condition(&node, "Ready") == "True").then_some(node.clone()).ok_or(r.stdout)
    });
    assert_eq!(node["status"]["capacity"]["pods"], "110");
    assert!(node["status"]["nodeInfo"]["containerRuntimeVersion"].as_str().unwrap().starts_with("containerd://"));
    assert!(node["spec"]["podCIDR"].as_str().unwrap().starts_with("10.211."));
    let wide = k.run(&["get", "nodes", "-o", "wide"]);
    assert!(wide.contains("agent-e2e") && wide.contains("Ready"), "{wide}");

    // Seed manifest 01: two nginx pods answering HTTP on their pod IPs.
    k.run(&["apply", "-f", &manifest("01-nginx-deployment.yaml")]);
    let running = wait_for("two nginx pods Running and Ready", Duration::from_secs(90), || {
        let ps = pods(&k, "app=nginx");
        let ok =
            ps.len() == 2 && ps.iter().all(|p| p["status"]["phase"] == "Running" && condition(p, "Ready") == "True");
        ok.then_some(ps.clone()).ok_or_else(|| k.run(&["get", "pods", "-o", "wide"]))
    });
    for p in &running {
        let ip = p["status"]["podIP"].as_str().expect("podIP");
        assert!(ip.starts_with("10.211."), "pod IP {ip} outside the node's range");
        let cs = &p["status"]["containerStatuses"][0];
        assert!(cs["containerID"].as_str().unwrap().starts_with("containerd://"), "{cs}");
        assert_eq!(cs["ready"], true);
        assert!(cs["state"]["running"]["startedAt"].is_string(), "{cs}");
        let body = wait_for("nginx answering on its pod IP", Duration::from_secs(20), || http_get(ip, 80));
        assert!(body.contains("Welcome to nginx!"), "{body}");
    }
    let rs = k.run(&["get", "deployment", "nginx-deployment", "-o", "jsonpath={.status.readyReplicas}"]);
    assert_eq!(rs, "2");
    let described = k.run(&["describe", "pod", running[0]["metadata"]["name"].as_str().unwrap()]);
    assert!(described.contains("Started container nginx"), "{described}");

    // Seed manifests 04 + 05: the environment comes from the ConfigMap. The container
    // runs `env` and exits; restartPolicy Always runs it again, then backs off.
    // Its image has no tag, so the pull policy defaults to Always: with no registry
    // reachable the verbatim manifest reports the pull failure (a registry mirror on
    // loopback is the next step); with IfNotPresent it runs from the imported image.
    k.run(&["apply", "-f", &manifest("04-configmap-personne.yaml")]);
    let seed = std::fs::read_to_string(manifest("05-pod-monpod-env-configmap.yaml")).unwrap();
    k.run_stdin(&["apply", "-f", "-"], &seed.replace("name: monpod", "name: monpod-pull"));
    wait_for("ErrImagePull for an image that cannot be pulled", Duration::from_secs(60), || {
        let reason =
            k.run(&["get", "pod", "monpod-pull", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}"]);
        matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff").then_some(()).ok_or(reason)
    });
    let local =
        seed.replace("image: k8s.gcr.io/busybox", "image: k8s.gcr.io/busybox\n    imagePullPolicy: IfNotPresent");
    k.run_stdin(&["apply", "-f", "-"], &local);
    let uid = k.run(&["get", "pod", "monpod", "-o", "jsonpath={.metadata.uid}"]);
    let log = c.dir.path().join(format!("data/agent/pod-logs/default_monpod_{uid}/test-container/0.log"));
    let text = wait_for("monpod's log", Duration::from_secs(60), || {
        let t = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
        t.contains("PASSION=").then_some(t.clone()).ok_or(t)
    });
    assert!(text.contains("NOM=Xavier"), "{text}");
    assert!(text.contains("PASSION=blogging"), "{text}");
    let crash = wait_for("monpod restarting, then backing off", Duration::from_secs(60), || {
        let p: Value = serde_json::from_str(&k.run(&["get", "pod", "monpod", "-o", "json"])).unwrap();
        let cs = p["status"]["containerStatuses"][0].clone();
        let backing_off =
            cs["restartCount"].as_i64() >= Some(1) && cs["state"]["waiting"]["reason"] == "CrashLoopBackOff";
        backing_off.then_some(cs.clone()).ok_or(cs.to_string())
    });
    assert_eq!(crash["lastState"]["terminated"]["exitCode"], 0, "{crash}");
    assert_eq!(crash["lastState"]["terminated"]["reason"], "Completed", "{crash}");

    // A config error waits with its reason instead of starting the container.
    k.run_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nocm"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.28", "command": ["sleep", "3600"],
                     "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]}]}}"#,
    );
    wait_for("CreateContainerConfigError", Duration::from_secs(30), || {
        let reason =
            k.run(&["get", "pod", "nocm", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}"]);
        (reason == "CreateContainerConfigError").then_some(()).ok_or(reason)
    });

    // Deleting the Deployment stops its containers, then the pod objects go.
    k.run(&["delete", "deployment", "nginx-deployment"]);
    wait_for("nginx pods gone", Duration::from_secs(60), || {
        let ps = pods(&k, "app=nginx");
        ps.is_empty().then_some(()).ok_or(format!("{} left", ps.len()))
    });
    k.run(&["delete", "pod", "monpod", "monpod-pull", "nocm", "--wait=true"]);
    wait_for("no containers left in the runtime", Duration::from_secs(30), || {
        let listed = runtime_containers(&c);
        (listed.lines().count() <= 1).then_some(()).ok_or(listed)
    });

    // killall: containerd and shims ended, the bridge deleted, nothing mounted.
    k.run(&["create", "deployment", "again", "--image=nginx:1.16", "--replicas=1"]);
    wait_for("a pod running again", Duration::from_secs(60), || {
        let ps = pods(&k, "app=again");
        (ps.len() == 1 && ps[0]["status"]["phase"] == "Running").then_some(()).ok_or(format!("{ps:?}"))
    });
    let report = c.killall();
    assert!(report.contains("1 pod sandbox(es) removed"), "{report}");
    let bridge =
        report.split("bridge ").nth(1).and_then(|r| r.split_whitespace().next()).expect("bridge name").to_string();
    assert!(report.contains(&format!("bridge {bridge} deleted")), "{report}");
    let link = std::process::Command::new("ip").args(["link", "show", &bridge]).output().unwrap();
    assert!(!link.status.success(), "bridge {bridge} still exists");
    let data = c.dir.path().join("data").display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&data), "mounts left under {data}");
    let socket = c.dir.path().join("data/agent/containerd/containerd.sock").display().to_string();
    let procs = std::process::Command::new("pgrep").args(["-f", &socket]).output().unwrap();
    assert!(String::from_utf8_lossy(&procs.stdout).trim().is_empty(), "processes of ours left");
}
