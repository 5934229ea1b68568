//! End-to-end: `kubectl logs`, `exec`, `attach` and `port-forward` against a server with
//! its node agent. The apiserver proxies to the kubelet API over HTTPS; the kubelet hands
//! streams to containerd's streaming server. Every transport kubectl uses is exercised:
//! WebSocket v5 exec (1.30+), SPDY exec (older kubectl, and the fallback), the
//! port-forward WebSocket tunnel (1.31+) and raw SPDY port-forward.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Cluster, Kubectl, free_port, node_ready, wait_for};
use serde_json::Value;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1.28
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"]
  - name: side
    image: busybox:1.28
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo side says hi; sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: c
    image: busybox:1.28
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo run at $(date +%s%N); exit 1"]
---
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: web
    image: rkube.local/testserver:1.0
    imagePullPolicy: IfNotPresent
    args: ["--port", "8080"]
"#;

fn phase_running(k: &Kubectl, pod: &str) -> Result<(), String> {
    let out = k.run(&["get", "pod", pod, "-o", "json"]);
    let p: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    let all_running = p["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c["state"]["running"].is_object()));
    (p["status"]["phase"] == "Running" && all_running).then_some(()).ok_or(out)
}

/// `GET /` through a forwarded local port.
fn http_get(port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    Ok(body)
}

/// Runs `kubectl port-forward` in the background until the HTTP check passes.
fn port_forward_works(k: &Kubectl, what: &str) {
    let port = free_port();
    let mut child = k
        .command(&["port-forward", "pod/web", &format!("{port}:8080")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl port-forward");
    let result = (|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match http_get(port, "/hostname") {
                Ok(body) if body.contains("200") => return Ok(body),
                Ok(body) if Instant::now() > deadline => return Err(body),
                Err(e) if Instant::now() > deadline => return Err(e),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    })();
    // Several connections through one session.
    let second = result.is_ok().then(|| http_get(port, "/echo?msg=again"));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let body = result.unwrap_or_else(|e| {
        panic!("{what}: port-forward failed: {e}; stderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    assert!(body.ends_with("web") || body.contains("\r\n\r\nweb"), "{what}: {body}");
    let second = second.unwrap().unwrap();
    assert!(second.contains("again"), "{what}: {second}");
}

#[test]
fn logs_exec_attach_and_port_forward() {
    let c = Cluster::start_with_agent(&["--cluster-cidr", "10.217.0.0/16", "--node-name", "stream-e2e"]);
    let k = c.kubectl("1.33");
    let node = wait_for("node Ready", Duration::from_secs(60), || node_ready(&k, "stream-e2e"));
    // `--kubelet-port 0` picked a free port and the Node says which.
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64().unwrap();
    assert!(port > 0 && port != 10250, "{port}");

    k.run_stdin(&["apply", "-f", "-"], PODS);
    for pod in ["shell", "web"] {
        wait_for(&format!("{pod} running"), Duration::from_secs(60), || phase_running(&k, pod));
    }

    // --- logs -------------------------------------------------------------------------
    let r = k.try_run(&["logs", "shell"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("Defaulted container \"main\" out of: main, side"), "{}", r.stderr);
    assert!(r.stdout.starts_with("line 0\nline 1\n"), "{}", r.stdout);
    let side = wait_for("side's log", Duration::from_secs(10), || {
        let out = k.run(&["logs", "shell", "-c", "side"]);
        out.contains("side says hi").then_some(out.clone()).ok_or(out)
    });
    assert_eq!(side, "side says hi\n");
    let tail = k.run(&["logs", "shell", "-c", "main", "--tail=2"]);
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| l.starts_with("line ")), "{tail}");
    let stamped = k.run(&["logs", "shell", "-c", "main", "--tail=1", "--timestamps"]);
    let (ts, rest) = stamped.trim_end().split_once(' ').unwrap();
    assert!(ts.parse::<jiff::Timestamp>().is_ok() && rest.starts_with("line "), "{stamped}");
    assert_eq!(k.run(&["logs", "shell", "-c", "main", "--limit-bytes=4"]), "line");
    let since = k.run(&["logs", "shell", "-c", "main", "--since=1h"]);
    assert!(since.starts_with("line 0\n"), "{since}");
    let r = k.try_run(&["logs", "shell", "-c", "main", "--previous"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("previous terminated container \"main\" in pod \"shell\" not found"), "{}", r.stderr);
    let r = k.try_run(&["logs", "shell", "-c", "nope"]);
    assert!(r.stderr.contains("container nope is not valid for pod shell"), "{}", r.stderr);

    // -f streams lines written after it started.
    let mut follow = k
        .command(&["logs", "-f", "shell", "-c", "main", "--tail=1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first: u64 = lines.next().unwrap().unwrap().trim_start_matches("line ").parse().unwrap();
    let mut last = first;
    for _ in 0..5 {
        let l = lines.next().expect("a streamed line").unwrap();
        last = l.trim_start_matches("line ").parse().unwrap();
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(last, first + 5, "lines arrive in order as they are written");

    // --previous shows the output of the run before the current one.
    wait_for("crasher restarted", Duration::from_secs(60), || {
        let out = k.run(&["get", "pod", "crasher", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]);
        (out.parse::<u32>().unwrap_or(0) >= 1).then_some(()).ok_or(out)
    });
    let previous = k.run(&["logs", "crasher", "--previous"]);
    assert!(previous.starts_with("run at "), "{previous}");
    let current = k.run(&["logs", "crasher"]);
    assert!(current.starts_with("run at "), "{current}");

    // --- exec ---------------------------------------------------------------------------
    // WebSocket v5 (1.31+ default), SPDY (forced, and what 1.27–1.29 speak).
    let spdy = c.kubectl("1.33").env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    let old = c.kubectl("1.28");
    for (what, kc) in
        [("websocket 1.33", &k), ("websocket 1.31", &c.kubectl("1.31")), ("spdy 1.33", &spdy), ("spdy 1.28", &old)]
    {
        let r = kc.try_run(&["exec", "shell", "-c", "main", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
        assert_eq!(r.code, 3, "{what}: exit code propagates; stderr {}", r.stderr);
        assert_eq!(r.stdout, "out\n", "{what}");
        assert!(r.stderr.contains("err"), "{what}: {}", r.stderr);
        let r = kc.try_run(&["exec", "shell", "-c", "main", "--", "hostname"]);
        assert_eq!((r.code, r.stdout.as_str()), (0, "shell\n"), "{what}: {}", r.stderr);
        // stdin reaches the command and its end is seen (cat exits).
        let out = kc.run_stdin(&["exec", "-i", "shell", "-c", "main", "--", "cat"], "hello\nworld\n");
        assert_eq!(out, "hello\nworld\n", "{what}");
    }
    let r = k.try_run(&["exec", "shell", "-c", "nope", "--", "true"]);
    assert_ne!(r.code, 0);
    let r = k.try_run(&["exec", "shell", "-c", "main", "--", "/no/such/binary"]);
    assert_ne!(r.code, 0, "a missing binary fails");

    // A terminal: -it allocates a tty in the container and carries the window size on
    // the resize channel. `script` gives kubectl a pseudo-terminal of a known size.
    for (what, websockets) in [("websocket", "true"), ("spdy", "false")] {
        let out = std::process::Command::new("script")
            .args(["-qec", "stty rows 40 cols 100; /usr/lib/google-cloud-sdk/bin/kubectl.1.33 exec -it shell -c main -- sh -c 'tty; sleep 1; stty size'", "/dev/null"])
            .env("KUBECONFIG", &c.kubeconfig)
            .env("HOME", k.home())
            .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
            .stdin(Stdio::null())
            .output()
            .expect("run script");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("/dev/pts/"), "{what}: {text}");
        assert!(text.contains("40 100"), "{what}: the window size reaches the container: {text}");
    }

    // Container stats through the apiserver's node proxy (what metrics-server reads).
    let summary: Value =
        serde_json::from_str(&k.run(&["get", "--raw", "/api/v1/nodes/stream-e2e/proxy/stats/summary"])).unwrap();
    assert_eq!(summary["node"]["nodeName"], "stream-e2e");
    let shell =
        summary["pods"].as_array().unwrap().iter().find(|p| p["podRef"]["name"] == "shell").expect("shell's stats");
    assert_eq!(shell["containers"].as_array().unwrap().len(), 2, "{shell}");
    assert!(shell["memory"]["workingSetBytes"].as_u64().unwrap() > 0, "{shell}");
    assert!(shell["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0, "{shell}");

    // --- attach -------------------------------------------------------------------------
    let mut attach = k
        .command(&["attach", "shell", "-c", "main"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl attach");
    let mut lines = BufReader::new(attach.stdout.take().unwrap()).lines();
    let got = lines.next().expect("attached output").unwrap();
    let _ = attach.kill();
    let _ = attach.wait();
    assert!(got.starts_with("line "), "{got}");

    // --- port-forward -------------------------------------------------------------------
    port_forward_works(&k, "websocket tunnel 1.33");
    port_forward_works(&c.kubectl("1.33").env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false"), "spdy 1.33");
    port_forward_works(&old, "spdy 1.28");
}
