//! A real `rkube server` process per test, driven by the real kubectl binaries.
//!
//! Each [`Cluster`] runs the binary cargo built for this test run on a free port with its
//! own data dir; dropping it kills that process (by its PID, which we started) and
//! removes the folder. [`Kubectl`] runs one installed kubectl minor version with a
//! private HOME, so discovery caches of parallel tests never mix.

#![allow(dead_code)]

pub mod registry;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The kubectl minors every end-to-end behaviour is checked with.
pub const VERSIONS: &[&str] = &["1.31", "1.32", "1.33"];

const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

pub struct Cluster {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub kubeconfig: PathBuf,
    /// Runs a node agent (containerd, pods): `rkube killall` cleans up after it.
    agent: bool,
}

impl Cluster {
    /// Starts a server and waits for its kubeconfig (written once `/readyz` answers).
    pub fn start() -> Cluster {
        let dir = tempfile::Builder::new().prefix("rkube-e2e-").tempdir().expect("temp dir");
        Self::start_in(dir)
    }

    /// Starts a server on an existing data dir (restarts keep every object).
    pub fn start_in(dir: tempfile::TempDir) -> Cluster {
        Self::start_in_with(dir, &[])
    }

    /// Starts a server with extra `rkube server` flags.
    pub fn start_with(extra: &[&str]) -> Cluster {
        let dir = tempfile::Builder::new().prefix("rkube-e2e-").tempdir().expect("temp dir");
        Self::start_in_with(dir, extra)
    }

    /// Starts a server on an existing data dir with extra flags.
    pub fn start_in_with(dir: tempfile::TempDir, extra: &[&str]) -> Cluster {
        Self::spawn(dir, false, extra)
    }

    /// Starts a server with its node agent (its own containerd), after putting the test
    /// images in the agent's air-gap images folder.
    pub fn start_with_agent(extra: &[&str]) -> Cluster {
        Self::start_with_agent_prepared(extra, |_| {})
    }

    /// Like [`Cluster::start_with_agent`], after `prepare` has put files the agent reads
    /// at start (such as `agent/registries.yaml`) into the data dir it is given.
    pub fn start_with_agent_prepared(extra: &[&str], prepare: impl FnOnce(&Path)) -> Cluster {
        let dir = tempfile::Builder::new().prefix("rkube-e2e-").tempdir().expect("temp dir");
        let images = dir.path().join("data").join("agent").join("images");
        std::fs::create_dir_all(&images).expect("images dir");
        rkube_testimages::build_all(&images).expect("build the test images");
        prepare(&dir.path().join("data"));
        Self::spawn(dir, true, extra)
    }

    /// Starts a server with its node agent on an existing data dir (a restart).
    pub fn start_in_with_agent(dir: tempfile::TempDir, extra: &[&str]) -> Cluster {
        Self::spawn(dir, true, extra)
    }

    /// `rkube killall` for this cluster's data dir; returns what it printed.
    pub fn killall(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .arg("killall")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .output()
            .expect("run rkube killall");
        assert!(out.status.success(), "rkube killall: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn spawn(dir: tempfile::TempDir, agent: bool, extra: &[&str]) -> Cluster {
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let _ = std::fs::remove_file(&kubeconfig);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("server.log"))
            .expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .arg("server")
            // Agents of parallel tests must not fight over the kubelet port.
            .args(if agent { &["--kubelet-port", "0"][..] } else { &["--disable-agent"][..] })
            .args(["--bind-address", "127.0.0.1", "--https-listen-port", "0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start rkube server");
        let mut c = Cluster { dir, child: Some(child), kubeconfig, agent };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !c.kubeconfig.exists() {
            if let Some(status) = c.child.as_mut().and_then(|ch| ch.try_wait().ok().flatten()) {
                panic!("rkube server exited with {status}: {}", c.log());
            }
            assert!(Instant::now() < deadline, "server not ready in 60 s: {}", c.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// `https://127.0.0.1:PORT` from the kubeconfig.
    pub fn server_url(&self) -> String {
        let kc = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        kc.lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .map(str::to_string)
            .expect("server line in kubeconfig")
    }

    /// Sends SIGKILL and reaps the process, keeping the data dir.
    pub fn kill9(mut self) -> tempfile::TempDir {
        if let Some(mut ch) = self.child.take() {
            let _ = ch.kill();
            let _ = ch.wait();
        }
        let dir = tempfile::Builder::new().tempdir().expect("placeholder");
        std::mem::replace(&mut self.dir, dir)
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, tempfile::TempDir) {
        let mut ch = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &ch.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = ch.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = ch.kill();
                break ch.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let dir = tempfile::Builder::new().tempdir().expect("placeholder");
        (status, std::mem::replace(&mut self.dir, dir))
    }

    pub fn kubectl(&self, version: &str) -> Kubectl {
        Kubectl::new(version, &self.kubeconfig, self.dir.path())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut ch) = self.child.take() {
            let _ = ch.kill();
            let _ = ch.wait();
        }
        if self.agent {
            let _ = Command::new(env!("CARGO_BIN_EXE_rkube"))
                .arg("killall")
                .arg("--data-dir")
                .arg(self.dir.path().join("data"))
                .output();
        }
    }
}

/// One kubectl minor version bound to a cluster.
pub struct Kubectl {
    pub version: String,
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
    envs: Vec<(String, String)>,
}

/// What one kubectl run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Kubectl {
    pub fn new(version: &str, kubeconfig: &Path, base: &Path) -> Kubectl {
        let bin = PathBuf::from(KUBECTL_DIR).join(format!("kubectl.{version}"));
        assert!(bin.exists(), "{} is not installed (Debian package kubectl)", bin.display());
        let home = base.join(format!("home-{version}"));
        std::fs::create_dir_all(&home).expect("kubectl home");
        // A private copy, so `config set-context` in one test touches nothing else.
        let own = home.join("kubeconfig");
        std::fs::copy(kubeconfig, &own).expect("copy kubeconfig");
        Kubectl { version: version.to_string(), bin, kubeconfig: own, home, envs: Vec::new() }
    }

    pub fn env(mut self, k: &str, v: &str) -> Kubectl {
        self.envs.push((k.to_string(), v.to_string()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args).env("KUBECONFIG", &self.kubeconfig).env("HOME", &self.home).env_remove("KUBECTL_EXTERNAL_DIFF");
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c.stdin(Stdio::null());
        c
    }

    /// Runs kubectl and returns whatever happened.
    pub fn try_run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run kubectl"))
    }

    /// Runs kubectl with `input` on stdin.
    pub fn try_run_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut c = self.command(args);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("run kubectl");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        Run::from(child.wait_with_output().expect("wait kubectl"))
    }

    /// Runs kubectl and panics unless it exits 0; returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let r = self.try_run(args);
        assert_eq!(
            r.code, 0,
            "kubectl {} {:?} failed:\nstdout: {}\nstderr: {}",
            self.version, args, r.stdout, r.stderr
        );
        r.stdout
    }

    pub fn run_stdin(&self, args: &[&str], input: &str) -> String {
        let r = self.try_run_stdin(args, input);
        assert_eq!(
            r.code, 0,
            "kubectl {} {:?} failed:\nstdout: {}\nstderr: {}",
            self.version, args, r.stdout, r.stderr
        );
        r.stdout
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fail(&self, args: &[&str]) -> String {
        let r = self.try_run(args);
        assert_ne!(r.code, 0, "kubectl {} {:?} should have failed:\nstdout: {}", self.version, args, r.stdout);
        r.stderr
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.run(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    pub fn home(&self) -> &Path {
        &self.home
    }
}

/// The folder of the seed manifests (`../shared/seed/manifests` beside the repo).
pub fn seed_manifests() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    for candidate in [root.join("shared/seed/manifests"), root.join("../shared/seed/manifests")] {
        if candidate.is_dir() {
            return candidate.canonicalize().expect("canonical");
        }
    }
    panic!("shared/seed/manifests not found beside the repository (looked from {})", root.display());
}

/// Polls `f` until it returns `Ok`, or panics with `what` and the last error seen.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => panic!("timed out waiting for {what}; last: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The status (`"True"`, `"False"`, …) of condition `kind` of an object; empty if absent.
pub fn condition(obj: &serde_json::Value, kind: &str) -> String {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The Node `name` once it is Ready.
pub fn node_ready(k: &Kubectl, name: &str) -> Result<serde_json::Value, String> {
    let r = k.try_run(&["get", "node", name, "-o", "json"]);
    let node: serde_json::Value = serde_json::from_str(&r.stdout).map_err(|_| r.stderr.clone())?;
    (condition(&node, "Ready") == "True").then_some(node).ok_or(r.stdout)
}

/// A TCP port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Polls `f` until it returns `Some`, for at most `secs` seconds.
pub fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not met within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Now, as RFC 3339 UTC to the second (`metav1.Time`).
pub fn rfc3339_now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Registers a Ready Node standing in for a kubelet: `cpu`/`memory` allocatable, 110
/// pods, the hostname label plus `labels`. Its Ready heartbeat is now; the node lifecycle
/// controller marks it Unknown once the grace period (40 s by default) passes without a
/// newer one or a renewed Lease.
pub fn register_node(k: &Kubectl, name: &str, cpu: &str, memory: &str, labels: &[(&str, &str)]) {
    let mut l = serde_json::Map::new();
    l.insert("kubernetes.io/hostname".into(), serde_json::json!(name));
    for (key, value) in labels {
        l.insert(key.to_string(), serde_json::json!(value));
    }
    let node = serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": l}});
    k.run_stdin(&["apply", "-f", "-"], &node.to_string());
    let stamp = rfc3339_now();
    let resources = serde_json::json!({"cpu": cpu, "memory": memory, "pods": "110"});
    let status = serde_json::json!({"status": {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "registered by the test", "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
    }});
    k.run(&["patch", "node", name, "--subresource=status", "--type=merge", "-p", &status.to_string()]);
}
