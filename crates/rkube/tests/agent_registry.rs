//! End-to-end: image pulls through registry mirrors and with registry credentials from
//! `<data-dir>/agent/registries.yaml` (k3s's format), against real registries: Debian's
//! `docker-registry` serving on loopback from the test's temp dir, filled with the test
//! images by `ctr images push` from the agent's own containerd.
//!
//! Needs root, containerd, runc, the CNI plugins, docker-registry and htpasswd
//! (scripts/install-deps.sh installs them). No traffic leaves loopback: docker.io is
//! mirrored, and every image that is not found is named on a loopback registry, so
//! containerd never falls back to an upstream on the internet.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::registry::{Registry, ctr, push};
use common::{Cluster, Kubectl, condition, wait_for};
use serde_json::Value;

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/seed/manifests");

fn pods(k: &Kubectl, selector: &str) -> Vec<Value> {
    let out = k.run(&["get", "pods", "-l", selector, "-o", "json"]);
    serde_json::from_str::<Value>(&out).expect("pod list")["items"].as_array().cloned().unwrap_or_default()
}

fn images(c: &Cluster) -> Vec<String> {
    ctr(c, &["images", "ls", "-q"]).lines().map(str::to_string).collect()
}

/// The Running pods of the Deployment, all on `image` and Ready, `replicas` of them.
fn rolled_out(k: &Kubectl, image: &str, replicas: usize) -> Result<Vec<Value>, String> {
    let ps = pods(k, "app=monfront");
    let ok = ps.len() == replicas
        && ps.iter().all(|p| {
            p["spec"]["containers"][0]["image"] == image
                && p["metadata"]["deletionTimestamp"].is_null()
                && p["status"]["phase"] == "Running"
                && condition(p, "Ready") == "True"
        });
    ok.then_some(ps).ok_or_else(|| k.run(&["get", "pods", "-o", "wide"]))
}

#[test]
fn pulls_go_through_the_loopback_mirror_with_credentials() {
    if !Path::new("/usr/bin/containerd").exists() {
        panic!("containerd is not installed: run scripts/install-deps.sh");
    }
    let store = tempfile::Builder::new().prefix("rkube-registry-").tempdir().expect("temp dir");
    let mirror = Registry::start(&store.path().join("mirror"), None);
    let private = Registry::start(&store.path().join("private"), Some(("rkube", "s3cret")));

    // docker.io is served by the mirror; the private registry needs credentials. The
    // rewrite is k3s's, which containerd 1.6 cannot do: the agent says so and goes on.
    let registries = format!(
        "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{mirror}\"\n    rewrite:\n      \"^unused/(.*)\": \"x/$1\"\n\
         configs:\n  \"{private}\":\n    auth:\n      username: rkube\n      password: s3cret\n",
        mirror = mirror.host(),
        private = private.host(),
    );
    let c = Cluster::start_with_agent_prepared(
        &["--cluster-cidr", "10.215.0.0/16", "--node-name", "registry-e2e"],
        |data| std::fs::write(data.join("agent/registries.yaml"), &registries).expect("write registries.yaml"),
    );
    let k = c.kubectl("1.33");
    wait_for("node Ready", Duration::from_secs(60), || {
        let r = k.try_run(&["get", "node", "registry-e2e", "-o", "json"]);
        let node: Value = serde_json::from_str(&r.stdout).map_err(|_| r.stderr.clone())?;
        (condition(&node, "Ready") == "True").then_some(()).ok_or(r.stdout)
    });
    let hosts = std::fs::read_to_string(c.dir.path().join("data/agent/containerd/certs.d/docker.io/hosts.toml"))
        .expect("hosts.toml for docker.io");
    assert!(hosts.contains(&format!("[host.\"http://{}\"]", mirror.host())), "{hosts}");
    assert!(c.log().contains("rewrite is not supported"), "no warning about the rewrite");

    // Fill the registries from the imported test images, then forget the images, so
    // every pod below has to pull.
    let mut pushed = Vec::new();
    for tag in ["1.16", "1.17"] {
        pushed.push(push(
            &c,
            &format!("docker.io/library/nginx:{tag}"),
            &mirror,
            &format!("library/nginx:{tag}"),
            None,
        ));
    }
    pushed.push(push(&c, "docker.io/library/busybox:1.28", &private, "private/busybox:1.28", Some("rkube:s3cret")));
    // Every reference to those images goes (their tags, the pushed names and the
    // `sha256:<id>` names the CRI plugin keeps), and `--sync` waits for containerd's
    // garbage collection, so the pulls below fetch manifests and layers from the
    // registries.
    let names: Vec<String> = rkube_testimages::NGINX_TAGS
        .iter()
        .chain(rkube_testimages::BUSYBOX_TAGS.iter())
        .map(|t| rkube_testimages::normalize(t))
        .collect();
    let listed = ctr(&c, &["images", "ls"]);
    let refs: Vec<(&str, &str)> = listed
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            Some((*cols.first()?, *cols.get(2)?))
        })
        .collect();
    let digests: Vec<&str> = refs.iter().filter(|(r, _)| names.iter().any(|n| n == r)).map(|(_, d)| *d).collect();
    let forget: Vec<&str> = refs.iter().filter(|(_, d)| digests.contains(d)).map(|(r, _)| *r).collect();
    assert!(forget.len() >= names.len() + pushed.len(), "{forget:?}\n{listed}");
    let mut rm = vec!["images", "rm", "--sync"];
    rm.extend(forget.iter().copied());
    ctr(&c, &rm);
    let (mirror_mark, private_mark) = (mirror.log().len(), private.log().len());
    let left = images(&c);
    for image in &forget {
        assert!(!left.iter().any(|l| l == image), "{image} still in containerd: {left:?}");
    }

    // Seed manifest 09 verbatim: five nginx:1.16 pods, imagePullPolicy Always, Ready
    // once their readiness probe (GET / on port 80) answers.
    k.run(&["apply", "-f", &format!("{MANIFESTS}/09-deployment-myfirstdeploy.yaml")]);
    let running = wait_for("five nginx:1.16 pods Running and Ready", Duration::from_secs(120), || {
        rolled_out(&k, "nginx:1.16", 5)
    });
    wait_for("the mirror's log of the nginx:1.16 pull", Duration::from_secs(10), || {
        let pulled = mirror.served(mirror_mark, "HEAD", "/v2/library/nginx/manifests/1.16?ns=docker.io", 200)
            && mirror.served(mirror_mark, "GET", "/v2/library/nginx/blobs/sha256:", 200);
        pulled.then_some(()).ok_or_else(|| format!("{:#?}", mirror.requests_since(mirror_mark)))
    });
    assert!(images(&c).iter().any(|i| i == "docker.io/library/nginx:1.16"), "nginx:1.16 not pulled back");
    let described = k.run(&["describe", "pod", running[0]["metadata"]["name"].as_str().unwrap()]);
    assert!(described.contains("Successfully pulled image \"nginx:1.16\""), "{described}");
    // Ready came from the readiness probe: not before its initialDelaySeconds (5 s).
    for p in &running {
        let time = |v: &Value| v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()).expect("a time");
        let started = time(&p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]);
        let ready = p["status"]["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
        let ready = time(&ready.expect("Ready condition")["lastTransitionTime"]);
        // Whole seconds on both sides: allow the rounding.
        assert!(ready.as_second() - started.as_second() >= 4, "Ready at {ready}, started at {started}");
    }

    // `kubectl set image` rolls the Deployment over to nginx:1.17, pulled through the mirror.
    k.run(&["set", "image", "deployment/myfirstdeploy", "podfront=nginx:1.17"]);
    wait_for("five nginx:1.17 pods Running and Ready", Duration::from_secs(180), || rolled_out(&k, "nginx:1.17", 5));
    wait_for("the mirror's log of the nginx:1.17 pull", Duration::from_secs(10), || {
        let pulled = mirror.served(mirror_mark, "HEAD", "/v2/library/nginx/manifests/1.17?ns=docker.io", 200);
        pulled.then_some(()).ok_or_else(|| format!("{:#?}", mirror.requests_since(mirror_mark)))
    });
    assert!(images(&c).iter().any(|i| i == "docker.io/library/nginx:1.17"), "nginx:1.17 not pulled back");

    // An image the registry does not have: ErrImagePull, then ImagePullBackOff, and
    // `kubectl describe` says why.
    let absent = format!("{}/library/absent:1.0", mirror.host());
    k.run(&["run", "absent", &format!("--image={absent}")]);
    wait_for("ErrImagePull for an absent image", Duration::from_secs(60), || {
        let reason =
            k.run(&["get", "pod", "absent", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}"]);
        matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff").then_some(()).ok_or(reason)
    });
    let described = wait_for("the pull failure in kubectl describe", Duration::from_secs(30), || {
        let d = k.run(&["describe", "pod", "absent"]);
        (d.contains("Failed to pull image") && d.contains("not found")).then_some(d.clone()).ok_or(d)
    });
    assert!(described.contains(&absent), "{described}");

    // The private registry answers only with the credentials of registries.yaml.
    k.run_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "private"}},
                "spec": {{"containers": [{{"name": "c", "image": "{}/private/busybox:1.28",
                          "command": ["sleep", "3600"]}}]}}}}"#,
            private.host()
        ),
    );
    wait_for("the pod from the private registry Running", Duration::from_secs(60), || {
        let phase = k.run(&["get", "pod", "private", "-o", "jsonpath={.status.phase}"]);
        (phase == "Running").then_some(()).ok_or_else(|| k.run(&["describe", "pod", "private"]))
    });
    // containerd met the challenge with the user of registries.yaml.
    let requests = private.requests_since(private_mark);
    let challenged = requests.iter().any(|l| {
        l.contains("error authorizing context") && l.contains("http.request.uri=/v2/private/busybox/manifests/1.28 ")
    });
    assert!(challenged, "no unauthenticated attempt first: {requests:#?}");
    // Behind htpasswd every request served is an authorized one.
    let authorized = private.served(private_mark, "GET", "/v2/private/busybox/blobs/sha256:", 200)
        && requests.iter().any(|l| l.contains("msg=\"authorized request\""));
    assert!(authorized, "no authorized pull: {requests:#?}");

    // The same registry as `localhost:<port>` has no credentials in registries.yaml:
    // without an image pull secret the pull is refused, with one it succeeds (the
    // kubelet passes the secret's entry for that host with the CRI pull).
    let image = format!("localhost:{}/private/busybox:1.28", private.port);
    let pod = |name: &str, secret: Option<&str>| {
        let secrets = secret.map(|s| format!(r#", "imagePullSecrets": [{{"name": "{s}"}}]"#)).unwrap_or_default();
        format!(
            r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
                "spec": {{"containers": [{{"name": "c", "image": "{image}", "command": ["sleep", "3600"]}}]{secrets}}}}}"#
        )
    };
    k.run_stdin(&["apply", "-f", "-"], &pod("nosecret", None));
    let described = wait_for("a refused pull without credentials", Duration::from_secs(60), || {
        let d = k.run(&["describe", "pod", "nosecret"]);
        (d.contains("Failed to pull image") && d.contains("401 Unauthorized")).then_some(d.clone()).ok_or(d)
    });
    assert!(described.contains(&image), "{described}");
    k.run(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server=localhost:{}", private.port),
        "--docker-username=rkube",
        "--docker-password=s3cret",
    ]);
    k.run_stdin(&["apply", "-f", "-"], &pod("withsecret", Some("regcred")));
    wait_for("the pod with an image pull secret Running", Duration::from_secs(60), || {
        let phase = k.run(&["get", "pod", "withsecret", "-o", "jsonpath={.status.phase}"]);
        (phase == "Running").then_some(()).ok_or_else(|| k.run(&["describe", "pod", "withsecret"]))
    });
    // A secret that does not exist is reported, and the pull is tried anyway.
    // (The image is here now: pull it again.)
    let always =
        pod("nosuchsecret", Some("absent")).replace(r#""command""#, r#""imagePullPolicy": "Always", "command""#);
    k.run_stdin(&["apply", "-f", "-"], &always);
    wait_for("the missing secret reported", Duration::from_secs(60), || {
        let d = k.run(&["describe", "pod", "nosuchsecret"]);
        (d.contains("FailedToRetrieveImagePullSecret") && d.contains("Failed to pull image")).then_some(()).ok_or(d)
    });
}

#[test]
fn a_bad_registries_yaml_stops_the_agent_with_a_one_line_error() {
    let dir = tempfile::Builder::new().prefix("rkube-e2e-").tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("agent")).expect("agent dir");
    let file = data.join("agent/registries.yaml");
    std::fs::write(&file, "mirrors:\n  docker.io:\n    endpoints: [\"http://127.0.0.1:1\"]\n").expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["server", "--kubelet-port", "0", "--bind-address", "127.0.0.1", "--https-listen-port", "0"])
        .args(["--cluster-cidr", "10.216.0.0/16", "--node-name", "badregistries-e2e", "--data-dir"])
        .arg(&data)
        .arg("--write-kubeconfig")
        .arg(dir.path().join("kubeconfig.yaml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("server.log")).expect("log"))
        .spawn()
        .expect("start rkube server");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            // Our own child, by its PID.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = Command::new(env!("CARGO_BIN_EXE_rkube")).arg("killall").arg("--data-dir").arg(&data).output();
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("the server kept running: {log}"));
    assert!(!status.success(), "{log}");
    let line = format!("invalid registry configuration {}: line 3 column 5: unknown field `endpoints`", file.display());
    assert!(log.lines().any(|l| l.trim_start().starts_with(&line)), "{log}");
}
