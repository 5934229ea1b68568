//! End-to-end: the node agent's probes (liveness restarts, readiness flips Ready, startup
//! gates both) and volumes (configMap, secret, downwardAPI, emptyDir, hostPath, the
//! projected service-account volume, subPath, the managed /etc/hosts) with real
//! containers, driven by the real kubectl. Container output is read from the CRI log
//! files under the agent's data dir.
//!
//! Needs root, containerd, runc and the CNI plugins (scripts/install-deps.sh).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use common::{Cluster, Kubectl, condition, wait_for};
use serde_json::Value;

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/seed/manifests");

fn start(cidr: &str, node: &str) -> (Cluster, Kubectl) {
    if !std::path::Path::new("/usr/bin/containerd").exists() {
        panic!("containerd is not installed: run scripts/install-deps.sh");
    }
    let c = Cluster::start_with_agent(&["--cluster-cidr", cidr, "--node-name", node]);
    let k = c.kubectl("1.33");
    wait_for("node Ready", Duration::from_secs(60), || {
        let r = k.try_run(&["get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"]);
        (r.stdout == "True").then_some(()).ok_or(format!("{} {}", r.stdout, r.stderr))
    });
    (c, k)
}

fn pod(k: &Kubectl, name: &str) -> Value {
    serde_json::from_str(&k.run(&["get", "pod", name, "-o", "json"])).expect("pod json")
}

fn container_status(p: &Value, i: usize) -> Value {
    p["status"]["containerStatuses"][i].clone()
}

/// The pod's events, one `reason: message` per line.
fn events(k: &Kubectl, name: &str) -> String {
    let out = k.run(&["get", "events", "--field-selector", &format!("involvedObject.name={name}"), "-o", "json"]);
    let list: Value = serde_json::from_str(&out).expect("events json");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| format!("{}: {}", e["reason"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The CRI log of a container attempt, message text only.
fn log_path(c: &Cluster, k: &Kubectl, pod: &str, container: &str, attempt: u32) -> PathBuf {
    let uid = k.run(&["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"]);
    c.dir.path().join(format!("data/agent/pod-logs/default_{pod}_{uid}/{container}/{attempt}.log"))
}

fn read_log(path: &PathBuf) -> Result<String, String> {
    let raw = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // CRI lines: `<time> <stream> <F|P> <text>`.
    Ok(raw.lines().map(|l| l.splitn(4, ' ').nth(3).unwrap_or("")).collect::<Vec<_>>().join("\n"))
}

fn wait_log(path: &PathBuf, marker: &str) -> String {
    wait_for(&format!("{marker} in {}", path.display()), Duration::from_secs(60), || {
        let t = read_log(path)?;
        t.contains(marker).then_some(t.clone()).ok_or(t)
    })
}

/// Every path under `dir`.
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

/// `GET path` on `ip:port`, the whole response.
fn http_get(ip: &str, port: u16, path: &str) -> Result<String, String> {
    let addr = format!("{ip}:{port}");
    let mut s = TcpStream::connect_timeout(&addr.parse().map_err(|e| format!("{e}"))?, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    Ok(body)
}

fn running_ip(k: &Kubectl, name: &str) -> String {
    wait_for(&format!("{name} Running"), Duration::from_secs(60), || {
        let p = pod(k, name);
        let ip = p["status"]["podIP"].as_str().unwrap_or("").to_string();
        (p["status"]["phase"] == "Running" && !ip.is_empty()).then_some(ip).ok_or(p["status"].to_string())
    })
}

const TESTSERVER: &str = "rkube.local/testserver:1.0";

#[test]
fn probes_restart_gate_and_flip_ready() {
    let (_c, k) = start("10.212.0.0/16", "probes-e2e");

    // Liveness (httpGet on a named port): once /healthz fails the container is killed
    // and restarted, and the fresh one is healthy again.
    let live = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "live"}},
            "spec": {{"terminationGracePeriodSeconds": 1, "containers": [{{"name": "c", "image": "{TESTSERVER}",
              "ports": [{{"name": "http", "containerPort": 8080}}],
              "livenessProbe": {{"httpGet": {{"path": "/healthz", "port": "http",
                                 "httpHeaders": [{{"name": "X-Test", "value": "1"}}]}},
                                "periodSeconds": 1, "failureThreshold": 2}}}}]}}}}"#
    );
    // Readiness (httpGet by number): Ready flips to False and back with no restart.
    let ready = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "ready"}},
            "spec": {{"terminationGracePeriodSeconds": 1, "containers": [{{"name": "c", "image": "{TESTSERVER}",
              "readinessProbe": {{"httpGet": {{"path": "/healthz", "port": 8080}}, "periodSeconds": 1,
                                 "failureThreshold": 1}},
              "livenessProbe": {{"tcpSocket": {{"port": 8080}}, "periodSeconds": 1}}}}]}}}}"#
    );
    // Startup (exec): liveness and readiness wait until it succeeds about 6 s in.
    let startup = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "startup"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "busybox:1.28",
          "command": ["sh", "-c", "sleep 6; touch /tmp/started; exec sleep 3600"],
          "startupProbe": {"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1, "failureThreshold": 30},
          "livenessProbe": {"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1, "failureThreshold": 1},
          "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]}}"#;
    // A startup probe that never succeeds restarts the container.
    let never = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "never-starts"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "busybox:1.28",
          "command": ["sleep", "3600"],
          "startupProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 2}}]}}"#;
    // Exec liveness, upstream's classic: healthy for 4 s, then the file goes.
    let exec = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "exec-live"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "busybox:1.28",
          "command": ["sh", "-c", "touch /tmp/healthy; sleep 4; rm /tmp/healthy; exec sleep 3600"],
          "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1,
                            "failureThreshold": 1, "timeoutSeconds": 2}}]}}"#;
    for manifest in [live.as_str(), ready.as_str(), startup, never, exec] {
        k.run_stdin(&["apply", "-f", "-"], manifest);
    }
    // Seed manifest 09's readiness probe (httpGet / on nginx's port 80 after 5 s), with
    // IfNotPresent since there is no registry.
    let seed9 = std::fs::read_to_string(format!("{MANIFESTS}/09-deployment-myfirstdeploy.yaml")).unwrap();
    k.run_stdin(
        &["apply", "-f", "-"],
        &seed9
            .replace("replicas: 5", "replicas: 2")
            .replace("imagePullPolicy: Always", "imagePullPolicy: IfNotPresent"),
    );

    // The startup probe gates: running but neither started nor ready at first.
    running_ip(&k, "startup");
    let early = container_status(&pod(&k, "startup"), 0);
    assert_eq!(early["started"], false, "{early}");
    assert_eq!(early["ready"], false, "{early}");
    let started = wait_for("startup probe success, then ready", Duration::from_secs(30), || {
        let cs = container_status(&pod(&k, "startup"), 0);
        (cs["started"] == true && cs["ready"] == true).then_some(cs.clone()).ok_or(cs.to_string())
    });
    assert_eq!(started["restartCount"], 0, "liveness waited for startup: {started}");

    // Seed 09: not Ready during the initial delay, Ready once nginx answers.
    let seed_ready = wait_for("myfirstdeploy pods Ready", Duration::from_secs(60), || {
        let out = k.run(&["get", "pods", "-l", "app=monfront", "-o", "json"]);
        let list: Value = serde_json::from_str(&out).unwrap();
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let ok = items.len() == 2 && items.iter().all(|p| condition(p, "Ready") == "True");
        ok.then_some(items.clone()).ok_or(out)
    });
    for p in &seed_ready {
        let cs = &p["status"]["containerStatuses"][0];
        let started_at = cs["state"]["running"]["startedAt"].as_str().unwrap().to_string();
        let ready_at = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap()
            .to_string();
        let secs = |t: &str| t.parse::<jiff::Timestamp>().unwrap().as_second();
        assert!(secs(&ready_at) - secs(&started_at) >= 4, "Ready at {ready_at}, started at {started_at}");
    }

    // Readiness flips without a restart.
    let ip = running_ip(&k, "ready");
    wait_for("ready Ready", Duration::from_secs(30), || {
        let p = pod(&k, "ready");
        (condition(&p, "Ready") == "True").then_some(()).ok_or(p["status"].to_string())
    });
    http_get(&ip, 8080, "/fail").unwrap();
    wait_for("ready not Ready", Duration::from_secs(30), || {
        let p = pod(&k, "ready");
        let cs = container_status(&p, 0);
        (condition(&p, "Ready") == "False" && condition(&p, "ContainersReady") == "False" && cs["ready"] == false)
            .then_some(())
            .ok_or(p["status"].to_string())
    });
    http_get(&ip, 8080, "/heal").unwrap();
    let back = wait_for("ready Ready again", Duration::from_secs(30), || {
        let p = pod(&k, "ready");
        (condition(&p, "Ready") == "True").then_some(p.clone()).ok_or(p["status"].to_string())
    });
    assert_eq!(container_status(&back, 0)["restartCount"], 0, "{back}");
    assert!(events(&k, "ready").contains("Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 500"));

    // Liveness restarts.
    let ip = running_ip(&k, "live");
    wait_for("testserver answering", Duration::from_secs(20), || http_get(&ip, 8080, "/healthz"));
    http_get(&ip, 8080, "/fail").unwrap();
    let restarted = wait_for("live restarted", Duration::from_secs(60), || {
        let p = pod(&k, "live");
        let cs = container_status(&p, 0);
        (cs["restartCount"].as_i64() >= Some(1) && cs["state"]["running"].is_object())
            .then_some(cs.clone())
            .ok_or(cs.to_string())
    });
    assert!(restarted["lastState"]["terminated"].is_object(), "{restarted}");
    let ev = events(&k, "live");
    assert!(ev.contains("Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 500"), "{ev}");
    assert!(ev.contains("Killing: Container c failed liveness probe, will be restarted"), "{ev}");
    // The new container is healthy: it stays up.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(container_status(&pod(&k, "live"), 0)["restartCount"], restarted["restartCount"]);

    // Exec liveness and a startup probe that never succeeds both restart.
    for name in ["exec-live", "never-starts"] {
        wait_for(&format!("{name} restarted"), Duration::from_secs(60), || {
            let cs = container_status(&pod(&k, name), 0);
            (cs["restartCount"].as_i64() >= Some(1)).then_some(()).ok_or(cs.to_string())
        });
    }
    let ev = events(&k, "never-starts");
    assert!(ev.contains("Killing: Container c failed startup probe, will be restarted"), "{ev}");
    let ev = events(&k, "exec-live");
    assert!(ev.contains("Unhealthy: Liveness probe failed: cat: can't open '/tmp/healthy'"), "{ev}");
}

#[test]
fn volumes_are_visible_in_containers() {
    let (c, k) = start("10.213.0.0/16", "volumes-e2e");

    // Seed manifests 04 + 06: every key of the ConfigMap in the environment.
    k.run(&["apply", "-f", &format!("{MANIFESTS}/04-configmap-personne.yaml")]);
    let seed6 = std::fs::read_to_string(format!("{MANIFESTS}/06-pod-envfrom-configmap.yaml")).unwrap();
    k.run_stdin(
        &["apply", "-f", "-"],
        &seed6.replace("image: k8s.gcr.io/busybox", "image: k8s.gcr.io/busybox\n    imagePullPolicy: IfNotPresent"),
    );
    let env = wait_log(&log_path(&c, &k, "monpod-envfrom", "test-container", 0), "passion=");
    for line in ["nom=Xavier", "passion=blogging", "clef=age.key=40", "taille.key=180"] {
        assert!(env.contains(line), "{line} missing from {env}");
    }

    // Every volume kind in one busybox pod.
    let host_dir = c.dir.path().join("host-share");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("greeting"), "hello from the host").unwrap();
    k.run(&["create", "configmap", "app", "--from-literal=colour=blue", "--from-literal=size=10"]);
    k.run(&["create", "secret", "generic", "creds", "--from-literal=user=admin", "--from-literal=pw=s3cret"]);
    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "vols", "labels": {{"app": "vols"}}}},
            "spec": {{"terminationGracePeriodSeconds": 1, "containers": [
              {{"name": "show", "image": "busybox:1.28", "command": ["sh", "-c", {script}],
                "resources": {{"limits": {{"memory": "64Mi"}}}},
                "volumeMounts": [
                  {{"name": "cfg", "mountPath": "/cfg"}},
                  {{"name": "cfg", "mountPath": "/one/colour.txt", "subPath": "colour"}},
                  {{"name": "sec", "mountPath": "/sec"}},
                  {{"name": "info", "mountPath": "/info"}},
                  {{"name": "scratch", "mountPath": "/scratch"}},
                  {{"name": "mem", "mountPath": "/mem"}},
                  {{"name": "host", "mountPath": "/host", "readOnly": true}},
                  {{"name": "made", "mountPath": "/made"}}]}},
              {{"name": "watch", "image": "busybox:1.28",
                "command": ["sh", "-c", "while true; do echo \"colour=$(cat /cfg/colour)\"; sleep 1; done"],
                "volumeMounts": [{{"name": "cfg", "mountPath": "/cfg"}}]}}],
            "volumes": [
              {{"name": "cfg", "configMap": {{"name": "app"}}}},
              {{"name": "sec", "secret": {{"secretName": "creds", "defaultMode": 256,
                                            "items": [{{"key": "pw", "path": "deep/password"}}]}}}},
              {{"name": "info", "downwardAPI": {{"items": [
                {{"path": "name", "fieldRef": {{"fieldPath": "metadata.name"}}}},
                {{"path": "labels", "fieldRef": {{"fieldPath": "metadata.labels"}}}},
                {{"path": "mem", "resourceFieldRef": {{"containerName": "show", "resource": "limits.memory",
                                                          "divisor": "1Mi"}}}}]}}}},
              {{"name": "scratch", "emptyDir": {{}}}},
              {{"name": "mem", "emptyDir": {{"medium": "Memory", "sizeLimit": "8Mi"}}}},
              {{"name": "host", "hostPath": {{"path": "{host}", "type": "Directory"}}}},
              {{"name": "made", "hostPath": {{"path": "{host}/made", "type": "DirectoryOrCreate"}}}}]}}}}"#,
        host = host_dir.display(),
        script = serde_json::to_string(
            "echo colour=$(cat /cfg/colour) size=$(cat /cfg/size); echo sub=$(cat /one/colour.txt); \
             echo pw=$(cat /sec/deep/password) mode=$(stat -L -c %a /sec/deep/password); ls /sec; \
             echo sec-fs=$(stat -f -c %T /sec); \
             echo name=$(cat /info/name) mem=$(cat /info/mem); cat /info/labels; echo; \
             echo x > /scratch/f && echo scratch=$(cat /scratch/f); \
             grep ' /mem ' /proc/mounts; echo host=$(cat /host/greeting); touch /made/by-pod; \
             if touch /host/nope 2>/dev/null; then echo host-writable; else echo host-readonly; fi; \
             if touch /cfg/nope 2>/dev/null; then echo cfg-writable; else echo cfg-readonly; fi; \
             echo ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace); \
             head -c 27 /var/run/secrets/kubernetes.io/serviceaccount/ca.crt; echo; \
             echo token=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token); \
             grep vols /etc/hosts; head -1 /etc/hosts; echo done; exec sleep 3600"
        )
        .unwrap()
    );
    k.run_stdin(&["apply", "-f", "-"], &manifest);
    let show = wait_log(&log_path(&c, &k, "vols", "show", 0), "done");
    for want in [
        "colour=blue size=10",
        "sub=blue",
        "pw=s3cret mode=400",
        "sec-fs=tmpfs",
        "deep",
        "name=vols mem=64",
        "app=\"vols\"",
        "scratch=x",
        "tmpfs /mem tmpfs",
        "size=8192k",
        "host=hello from the host",
        "host-readonly",
        "cfg-readonly",
        "ns=default",
        "-----BEGIN CERTIFICATE-----",
        "# Kubernetes-managed hosts file.",
        "\tvols",
    ] {
        assert!(show.contains(want), "{want:?} missing from:\n{show}");
    }
    assert!(host_dir.join("made/by-pod").exists(), "DirectoryOrCreate made the directory the pod wrote into");
    let sa_volume = k.run(&["get", "pod", "vols", "-o", "jsonpath={.spec.volumes[*].name}"]);
    assert!(sa_volume.contains("kube-api-access-"), "{sa_volume}");

    // The token is a JWT the apiserver accepts, for the pod's service account.
    let token = show.lines().find_map(|l| l.strip_prefix("token=")).expect("token line").trim().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let server = c.server_url();
    let review = std::process::Command::new("curl")
        .args([
            "-sk",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Content-Type: application/json",
        ])
        .arg("--data")
        .arg(r#"{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}"#)
        .arg(format!("{server}/apis/authentication.k8s.io/v1/selfsubjectreviews"))
        .output()
        .expect("curl");
    let review = String::from_utf8_lossy(&review.stdout).into_owned();
    assert!(review.contains("system:serviceaccount:default:default"), "{review}");
    let pods = std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{server}/api/v1/namespaces/default/pods"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&pods.stdout), "200");

    // A ConfigMap change reaches the running container's files.
    k.run_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}, "data": {"colour": "green", "size": "10"}}"#,
    );
    wait_log(&log_path(&c, &k, "vols", "watch", 0), "colour=green");

    // Mount failures: the pod waits in ContainerCreating with a FailedMount event.
    let bad = |name: &str, volume: &str| {
        format!(
            r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
                "spec": {{"containers": [{{"name": "c", "image": "busybox:1.28", "command": ["sleep", "3600"],
                  "volumeMounts": [{{"name": "v", "mountPath": "/v"}}]}}], "volumes": [{volume}]}}}}"#
        )
    };
    k.run_stdin(
        &["apply", "-f", "-"],
        &bad("no-dir", r#"{"name": "v", "hostPath": {"path": "/nonexistent/rkube", "type": "Directory"}}"#),
    );
    k.run_stdin(&["apply", "-f", "-"], &bad("no-cm", r#"{"name": "v", "configMap": {"name": "absent"}}"#));
    for (name, message) in [
        (
            "no-dir",
            "MountVolume.SetUp failed for volume \"v\" : hostPath type check failed: /nonexistent/rkube is not a directory",
        ),
        ("no-cm", "MountVolume.SetUp failed for volume \"v\" : configmap \"absent\" not found"),
    ] {
        let ev = wait_for(&format!("FailedMount of {name}"), Duration::from_secs(30), || {
            let ev = events(&k, name);
            ev.contains(message).then_some(ev.clone()).ok_or(ev)
        });
        assert!(ev.contains("FailedMount"), "{ev}");
        let cs = container_status(&pod(&k, name), 0);
        assert_eq!(cs["state"]["waiting"]["reason"], "ContainerCreating", "{cs}");
    }
    // Creating the ConfigMap lets the pod start.
    k.run(&["create", "configmap", "absent", "--from-literal=k=v"]);
    running_ip(&k, "no-cm");

    // Deletion tears the volumes down: tmpfs unmounted, the pod's directory gone.
    let uid = k.run(&["get", "pod", "vols", "-o", "jsonpath={.metadata.uid}"]);
    let pod_dir = c.dir.path().join(format!("data/agent/pods/{uid}"));
    assert!(pod_dir.join("volumes/kubernetes.io~empty-dir/mem").exists());
    let deleting = std::time::Instant::now();
    k.run(&["delete", "pod", "vols", "--wait=true"]);
    let delete_took = deleting.elapsed();
    wait_for("the pod's volumes torn down", Duration::from_secs(30), || {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let dir = pod_dir.display().to_string();
        (!pod_dir.exists() && !mounts.contains(&dir)).then_some(()).ok_or_else(|| {
            // What is left, for the next reader of a failure: mounts, files, the agent's word.
            let left: Vec<String> =
                walk(&pod_dir).iter().map(|p| p.strip_prefix(&pod_dir).unwrap_or(p).display().to_string()).collect();
            let mounted: Vec<&str> = mounts.lines().filter(|l| l.contains(&dir)).collect();
            let log = c.log();
            let said: Vec<&str> = log.lines().filter(|l| l.contains(&uid) || l.contains("tear down")).collect();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            let api =
                k.try_run(&["get", "pod", "vols", "-o", "jsonpath={.metadata.uid} {.metadata.deletionTimestamp}"]);
            format!(
                "{dir} still there after `kubectl delete` took {delete_took:?}: files {left:?}, mounts {mounted:?}, \
                 in the API: {:?} {:?}, agent log about it {said:#?}, last lines {tail:#?}",
                api.stdout, api.stderr
            )
        })
    });
    assert!(host_dir.join("greeting").exists(), "hostPath contents are never removed");

    // A force-deleted pod leaves the API before the kubelet stopped it: the kubelet still
    // stops its containers and removes its volumes.
    let uid = k.run(&["get", "pod", "no-cm", "-o", "jsonpath={.metadata.uid}"]);
    let pod_dir = c.dir.path().join(format!("data/agent/pods/{uid}"));
    assert!(pod_dir.exists());
    k.run(&["delete", "pod", "no-cm", "--grace-period=0", "--force"]);
    wait_for("the force-deleted pod's volumes removed", Duration::from_secs(30), || {
        (!pod_dir.exists()).then_some(()).ok_or_else(|| format!("{:?}", walk(&pod_dir)))
    });
}
