//! The built archives, checked twice: their structure (manifest, config, digests) read
//! back with `tar`, and for real by a private containerd (own root, state and socket in a
//! temp dir, CRI plugin disabled) that imports every archive and runs each image.
//! The containerd part needs root and skips (with a message) without /usr/bin/containerd.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rkube_testimages::{BUSYBOX_TAGS, BuiltImage, NGINX_TAGS, PAUSE_IMAGE, TESTSERVER_TAGS, build_all, normalize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Builds the images into a fresh temp dir (removed when the returned guard drops).
fn build() -> (tempfile::TempDir, Vec<BuiltImage>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let start = Instant::now();
    let images = build_all(dir.path()).expect("build_all");
    eprintln!("build_all wrote {} archives in {:?}", images.len(), start.elapsed());
    (dir, images)
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Every file of a tar by path (directories as empty entries).
fn tar_files(data: &[u8]) -> BTreeMap<String, (tar::EntryType, Vec<u8>, Option<String>)> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(data);
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let header = entry.header().clone();
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        let path = entry.path().unwrap().display().to_string();
        let link = entry.link_name().unwrap().map(|l| l.display().to_string());
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        out.insert(path, (header.entry_type(), body, link));
    }
    out
}

#[test]
fn archives_are_well_formed_and_deterministic() {
    let (dir, images) = &build();
    let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [BUSYBOX_TAGS[0], NGINX_TAGS[0], NGINX_TAGS[1], NGINX_TAGS[2], NGINX_TAGS[3], PAUSE_IMAGE, TESTSERVER_TAGS[0]]
    );
    let mut ids = std::collections::BTreeSet::new();
    for image in images {
        assert!(ids.insert(image.image_id.clone()), "{} shares its image ID", image.name);
        let files = tar_files(&std::fs::read(&image.path).unwrap());
        let names: Vec<&String> = files.keys().collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "entries of {} are sorted", image.name);

        let manifest: Value = serde_json::from_slice(&files["manifest.json"].1).unwrap();
        let manifest = manifest.as_array().expect("manifest is an array");
        assert_eq!(manifest.len(), 1);
        let m = &manifest[0];
        assert_eq!(m["RepoTags"], serde_json::json!(image.tags));
        let config_name = m["Config"].as_str().unwrap();
        let config_bytes = &files[config_name].1;
        let config_hex = sha256_hex(config_bytes);
        assert_eq!(config_name, format!("{config_hex}.json"));
        assert_eq!(image.image_id, format!("sha256:{config_hex}"));

        let config: Value = serde_json::from_slice(config_bytes).unwrap();
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(
            config["config"]["Env"],
            serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
        );
        assert_eq!(config["config"]["WorkingDir"], "/");
        let layers = m["Layers"].as_array().unwrap();
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(layers.len(), diff_ids.len());
        let mut merged = BTreeMap::new();
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            let layer = layer.as_str().unwrap();
            let data = &files[layer].1;
            let hex = sha256_hex(data);
            assert_eq!(layer, format!("{hex}/layer.tar"));
            assert_eq!(diff_id.as_str().unwrap(), format!("sha256:{hex}"));
            merged.extend(tar_files(data));
        }

        let entry = &config["config"]["Entrypoint"];
        match image.name.as_str() {
            "busybox:1.28" => {
                assert_eq!(image.tags, BUSYBOX_TAGS);
                assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));
                for applet in ["sh", "nslookup", "wget", "sleep", "env", "cat", "nc"] {
                    let (kind, _, link) = &merged[&format!("bin/{applet}")];
                    assert_eq!((*kind, link.as_deref()), (tar::EntryType::Symlink, Some("busybox")));
                }
                assert_eq!(merged["bin/busybox"].0, tar::EntryType::Regular);
                assert!(String::from_utf8_lossy(&merged["etc/passwd"].1).contains("nobody:x:65534"));
                assert!(merged.contains_key("etc/group") && merged.contains_key("root/"));
            }
            "registry.k8s.io/pause:3.10" => {
                assert_eq!(*entry, serde_json::json!(["/pause"]));
                assert_eq!(merged.len(), 1, "pause has only /pause");
            }
            "rkube.local/testserver:1.0" => {
                assert_eq!(image.tags, TESTSERVER_TAGS);
                assert_eq!(*entry, serde_json::json!(["/testserver"]));
                assert!(config["config"]["ExposedPorts"]["8080/tcp"].is_object());
                assert!(merged.contains_key("testserver") && merged.contains_key("bin/sh"));
                assert!(merged.contains_key("lib64/ld-linux-x86-64.so.2"));
            }
            tag => {
                assert!(NGINX_TAGS.contains(&tag), "unexpected image {tag}");
                assert_eq!(*entry, serde_json::json!(["/usr/sbin/nginx"]));
                assert!(config["config"]["ExposedPorts"]["80/tcp"].is_object());
                assert_eq!(merged["usr/share/nginx/html/version"].1, format!("{tag}\n").as_bytes());
                assert!(
                    String::from_utf8_lossy(&merged["usr/share/nginx/html/index.html"].1).contains("Welcome to nginx!")
                );
                for path in [
                    "usr/sbin/nginx",
                    "etc/nginx/nginx.conf",
                    "var/lib/nginx/body/",
                    "bin/sh",
                    "lib64/ld-linux-x86-64.so.2",
                ] {
                    assert!(merged.contains_key(path), "{tag} lacks {path}");
                }
            }
        }
    }

    // Same inputs, same bytes: a second build changes no image ID and rewrites nothing.
    let mtimes = |imgs: &[BuiltImage]| -> Vec<_> {
        imgs.iter().map(|i| std::fs::metadata(&i.path).unwrap().modified().unwrap()).collect()
    };
    let before = mtimes(images);
    let again = build_all(dir.path()).expect("second build_all");
    assert_eq!(&again, images);
    assert_eq!(mtimes(&again), before);
}

/// `timeout 120 <program> <args>`, collecting its output.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new("timeout").arg("120").arg(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A containerd of our own; killed, unmounted and removed when dropped.
struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
    containers: Vec<String>,
}

const NS: &str = "rkube-test";

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::Builder::new().prefix("rkti").tempdir().expect("temp dir");
        let root = dir.path();
        let socket = root.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{r}/root\"\nstate = \"{r}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{s}\"\n[ttrpc]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{r}/opt\"\n",
            r = root.display(),
            s = socket.display()
        );
        std::fs::write(root.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(root.join("containerd.log")).unwrap();
        let child = Command::new("/usr/bin/containerd")
            .arg("--config")
            .arg(root.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let mut ctd = Containerd { child, dir, socket, containers: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ctd.socket.exists() && ctd.ctr(&["version"]).status.success() {
                return ctd;
            }
            if let Ok(Some(status)) = ctd.child.try_wait() {
                panic!("containerd exited ({status}):\n{}", ctd.log());
            }
            assert!(Instant::now() < deadline, "containerd did not come up in 30s:\n{}", ctd.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let mut all = vec!["--address", self.socket.to_str().unwrap(), "-n", NS];
        all.extend_from_slice(args);
        run("/usr/bin/ctr", &all)
    }

    /// `ctr` that must succeed; returns stdout.
    fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(out.status.success(), "ctr {args:?}: {}\n{}{}", out.status, text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    /// A container ID unique to this process, remembered for cleanup.
    fn id(&mut self, name: &str) -> String {
        let id = format!("rkti{}-{name}", std::process::id());
        self.containers.push(id.clone());
        id
    }

    fn exec_until(&self, id: &str, args: &[&str], want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut n = 0;
        loop {
            n += 1;
            let exec_id = format!("e{n}");
            let mut all = vec!["task", "exec", "--exec-id", exec_id.as_str(), id];
            all.extend_from_slice(args);
            let out = self.ctr(&all);
            let stdout = text(&out.stdout);
            if out.status.success() && stdout.contains(want) {
                return stdout;
            }
            assert!(Instant::now() < deadline, "{args:?} in {id}: {}\n{stdout}{}", out.status, text(&out.stderr));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_running(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ctr_ok(&["task", "ls"]).lines().any(|l| l.starts_with(id) && l.contains("RUNNING")) {
            assert!(Instant::now() < deadline, "task {id} not running");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn remove(&self, id: &str) {
        self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.ctr(&["task", "rm", "-f", id]);
            if out.status.success() || text(&out.stderr).contains("not found") || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.ctr(&["containers", "rm", id]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let present = text(&self.ctr(&["containers", "ls", "-q"]).stdout);
        for id in self.containers.clone() {
            if present.lines().any(|l| l == id) {
                self.remove(&id);
            }
        }
        let pid = self.child.id();
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        // Shims this containerd started (their command line names our socket) outlive it.
        let ours = self.socket.display().to_string();
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
                let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&ours) {
                    let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
                }
            }
        }
        // Mounts left under our root (rootfs overlays), deepest first.
        let root = self.dir.path().display().to_string();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> =
            mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&root)).collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").arg("-R").arg(m).status();
        }
        // The namespace's cgroup parents and runc state dir, if now empty.
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            for c in controllers.flatten() {
                let _ = std::fs::remove_dir(c.path().join(NS));
            }
        }
        let _ = std::fs::remove_dir(Path::new("/run/containerd/runc").join(NS));
        // self.dir removes the rest.
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

#[test]
fn containerd_imports_and_runs_every_image() {
    if !Path::new("/usr/bin/containerd").exists() {
        eprintln!("skipping: /usr/bin/containerd is missing");
        return;
    }
    if !is_root() {
        eprintln!("skipping: running containerd needs root");
        return;
    }
    let (_dir, images) = &build();
    let mut ctd = Containerd::start();

    for image in images {
        ctd.ctr_ok(&["images", "import", image.path.to_str().unwrap()]);
    }
    let listed = ctd.ctr_ok(&["images", "ls", "-q"]);
    let listed: Vec<&str> = listed.lines().collect();
    for image in images {
        for tag in &image.tags {
            assert!(listed.contains(&normalize(tag).as_str()), "{tag} not in {listed:?}");
        }
    }

    // busybox: the default command line works with applets through PATH.
    let id = ctd.id("busybox");
    let out = ctd.ctr_ok(&["run", "--rm", "docker.io/library/busybox:1.28", &id, "echo", "hello"]);
    assert_eq!(out, "hello\n");
    let id = ctd.id("busybox2");
    let out = ctd.ctr_ok(&["run", "--rm", "k8s.gcr.io/busybox:latest", &id, "sh", "-c", "cat /etc/passwd; ls /tmp"]);
    assert!(out.starts_with("root:x:0:0"), "{out}");

    // nginx: the configuration test passes.
    let id = ctd.id("nginx-t");
    let out = ctd.ctr(&["run", "--rm", "docker.io/library/nginx:1.16", &id, "/usr/sbin/nginx", "-t"]);
    assert!(out.status.success(), "nginx -t: {}\n{}", out.status, text(&out.stderr));
    assert!(text(&out.stderr).contains("test is successful"), "{}", text(&out.stderr));

    // testserver: exits with the code it is told.
    let id = ctd.id("ts-exit");
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "rkube.local/testserver:1.0",
        &id,
        "/testserver",
        "--exit-after",
        "0",
        "--exit-code",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // pause as pid 1 exits 0 on SIGTERM.
    let id = ctd.id("pause");
    let mut all = vec!["--address", ctd.socket.to_str().unwrap(), "-n", NS];
    all.extend_from_slice(&["run", "--rm", PAUSE_IMAGE, &id]);
    let mut pause = Command::new("timeout").arg("60").arg("/usr/bin/ctr").args(&all).spawn().unwrap();
    ctd.wait_running(&id);
    ctd.ctr_ok(&["task", "kill", "-s", "SIGTERM", &id]);
    assert_eq!(pause.wait().unwrap().code(), Some(0), "pause exits 0 on SIGTERM");

    // Serving, reached from inside the container's own network namespace.
    let nginx = ctd.id("nginx");
    ctd.ctr_ok(&["run", "-d", "docker.io/library/nginx:1.17", &nginx]);
    let server = ctd.id("testserver");
    ctd.ctr_ok(&["run", "-d", "docker.io/library/testserver:latest", &server]);
    ctd.exec_until(&nginx, &["wget", "-qO-", "http://127.0.0.1/"], "Welcome to nginx!");
    assert_eq!(ctd.exec_until(&nginx, &["wget", "-qO-", "http://127.0.0.1/version"], "nginx"), "nginx:1.17\n");
    ctd.exec_until(&server, &["wget", "-qO-", "http://127.0.0.1:8080/healthz"], "ok");
    ctd.exec_until(&server, &["wget", "-qO-", "http://127.0.0.1:8080/"], "hostname: ");
    ctd.remove(&nginx);
    ctd.remove(&server);
}
