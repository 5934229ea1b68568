//! End-to-end: `rkube agent --server URL --token TOKEN` joins a second node to a server
//! (which runs its own node too): the join token authenticates it and pins the CA, the
//! node turns Ready, pods scheduled there run, `kubectl logs/exec` reach its kubelet
//! API, and pods on the two nodes reach each other by pod IP.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, node_ready, wait_for};
use serde_json::Value;

/// A running `rkube agent`; dropping it stops it (by PID) and runs `rkube killall`.
struct Agent {
    child: Child,
    dir: tempfile::TempDir,
}

impl Agent {
    fn start(server: &str, token: &str, node: &str) -> Agent {
        let dir = tempfile::Builder::new().prefix("rkube-agent-").tempdir().unwrap();
        let images = dir.path().join("data/agent/images");
        std::fs::create_dir_all(&images).unwrap();
        rkube_testimages::build_all(&images).expect("test images");
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["agent", "--server", server, "--token", token, "--node-name", node, "--kubelet-port", "0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rkube agent");
        Agent { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .arg("killall")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .output();
    }
}

/// Runs `rkube agent` expected to fail at once; returns its stderr.
fn failed_join(server: &str, token: &str, dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["agent", "--server", server, "--token", token, "--node-name", "intruder"])
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run rkube agent");
    assert!(!out.status.success(), "a bad token must not join");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: b-shell
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: join-b}
  containers:
  - name: sh
    image: busybox:1.28
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello from b; sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: b-web
spec:
  nodeSelector: {kubernetes.io/hostname: join-b}
  containers:
  - name: web
    image: rkube.local/testserver:1.0
    imagePullPolicy: IfNotPresent
    args: ["--port", "8080"]
---
apiVersion: v1
kind: Pod
metadata:
  name: a-client
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: join-a}
  containers:
  - name: sh
    image: busybox:1.28
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
"#;

#[test]
fn an_agent_joins_with_the_token_and_runs_pods() {
    let c = Cluster::start_with_agent(&["--cluster-cidr", "10.218.0.0/16", "--node-name", "join-a"]);
    let k = c.kubectl("1.33");
    let token = std::fs::read_to_string(c.dir.path().join("data/server/node-token")).expect("node token");
    let token = token.trim();
    assert!(token.starts_with("K10"), "{token}");
    let server = c.server_url();

    // Bad tokens are refused with a message that says why, and nothing joins.
    let scratch = tempfile::tempdir().unwrap();
    let (_, secret) = token.split_once("::node:").unwrap();
    let other_ca = format!("K10{}::node:{secret}", "0".repeat(64));
    let err = failed_join(&server, &other_ca, scratch.path());
    assert!(err.contains("does not match the hash in the join token"), "{err}");
    let err = failed_join(&server, "K10nothing::node:wrong", scratch.path());
    assert!(err.contains("does not match"), "{err}");
    let ca_hash = token.trim_start_matches("K10").split("::").next().unwrap();
    let err = failed_join(&server, &format!("K10{ca_hash}::node:wrong"), scratch.path());
    assert!(err.contains("join token is not valid"), "{err}");
    assert!(k.try_run(&["get", "node", "intruder"]).code != 0);

    let agent = Agent::start(&server, token, "join-b");
    wait_for("join-a Ready", Duration::from_secs(60), || node_ready(&k, "join-a"));
    let b = wait_for("join-b Ready", Duration::from_secs(90), || {
        node_ready(&k, "join-b").map_err(|e| format!("{e}\nagent log:\n{}", agent.log()))
    });
    assert!(b["spec"]["podCIDR"].as_str().unwrap().starts_with("10.218."));
    let a = node_ready(&k, "join-a").unwrap();
    assert_ne!(a["spec"]["podCIDR"], b["spec"]["podCIDR"]);

    k.run_stdin(&["apply", "-f", "-"], PODS);
    let pod = |name: &str| -> Value { serde_json::from_str(&k.run(&["get", "pod", name, "-o", "json"])).unwrap() };
    for name in ["b-shell", "b-web", "a-client"] {
        wait_for(&format!("{name} Running"), Duration::from_secs(60), || {
            let p = pod(name);
            (p["status"]["phase"] == "Running").then_some(()).ok_or_else(|| p["status"].to_string())
        });
    }
    assert_eq!(pod("b-web")["spec"]["nodeName"], "join-b");

    // The joined node's kubelet API answers through the apiserver.
    let logs = wait_for("b-shell's log", Duration::from_secs(10), || {
        let out = k.try_run(&["logs", "b-shell"]).stdout;
        out.contains("hello").then_some(out.clone()).ok_or(out)
    });
    assert_eq!(logs, "hello from b\n");
    assert_eq!(k.run(&["exec", "b-shell", "--", "hostname"]), "b-shell\n");

    // Pods on different nodes reach each other by pod IP.
    let ip = pod("b-web")["status"]["podIP"].as_str().unwrap().to_string();
    let url = format!("http://{ip}:8080/hostname");
    let answer = wait_for("a-client reaches b-web", Duration::from_secs(20), || {
        let r = k.try_run(&["exec", "a-client", "--", "wget", "-qO-", &url]);
        (r.code == 0).then_some(r.stdout.clone()).ok_or(r.stderr)
    });
    assert_eq!(answer.trim(), "b-web");
    drop(agent);
}
