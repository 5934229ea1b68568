//! A loopback image registry for end-to-end tests: Debian's `docker-registry` serving
//! from the test's temp dir, filled with the test images by `ctr images push` from the
//! agent's own containerd.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Cluster, free_port, wait_for};

/// A `docker-registry serve` process of this test on a free loopback port, storing in
/// `dir`; dropping it kills that process by its PID.
pub struct Registry {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Registry {
    /// `credentials`: basic auth with this user and password (an htpasswd file made by
    /// `htpasswd -B`, the bcrypt format the registry wants).
    pub fn start(dir: &Path, credentials: Option<(&str, &str)>) -> Registry {
        std::fs::create_dir_all(dir).expect("registry dir");
        let port = free_port();
        let auth = match credentials {
            Some((user, password)) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("htpasswd is not installed (Debian package apache2-utils): run scripts/install-deps.sh");
                assert!(out.status.success(), "htpasswd: {}", String::from_utf8_lossy(&out.stderr));
                let file = dir.join("htpasswd");
                std::fs::write(&file, &out.stdout).expect("write htpasswd");
                format!("auth:\n  htpasswd:\n    realm: rkube-test\n    path: {}\n", file.display())
            }
            None => String::new(),
        };
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n{auth}",
                dir.join("storage").display()
            ),
        )
        .expect("write registry config");
        let log = dir.join("registry.log");
        let out = std::fs::File::create(&log).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("docker-registry is not installed: run scripts/install-deps.sh");
        let r = Registry { child, port, log };
        wait_for("the registry to listen", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).map(drop).map_err(|e| format!("{e}: {}", r.log()))
        });
        r
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The request lines logged since the log had `mark` bytes: the pulls after the pushes.
    pub fn requests_since(&self, mark: usize) -> Vec<String> {
        let log = self.log();
        log.get(mark..)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("http.request.uri="))
            .map(str::to_string)
            .collect()
    }

    /// Whether a request for a URI starting with `uri` completed with `status` since `mark`.
    pub fn served(&self, mark: usize, method: &str, uri: &str, status: u16) -> bool {
        self.requests_since(mark).iter().any(|l| {
            l.contains(&format!("http.request.method={method} "))
                && l.contains(&format!("http.request.uri=\"{uri}"))
                && l.contains(&format!("http.response.status={status} "))
        })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ctr` on the agent's containerd, in the CRI plugin's namespace.
pub fn ctr(c: &Cluster, args: &[&str]) -> String {
    let socket = c.dir.path().join("data/agent/containerd/containerd.sock");
    let out =
        Command::new("ctr").arg("--address").arg(&socket).args(["-n", "k8s.io"]).args(args).output().expect("ctr");
    assert!(
        out.status.success(),
        "ctr {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pushes an image containerd holds (imported from the test images) to `registry` as
/// `repo` (e.g. `library/nginx:1.16`).
pub fn push(c: &Cluster, image: &str, registry: &Registry, repo: &str, user: Option<&str>) -> String {
    let target = format!("{}/{repo}", registry.host());
    ctr(c, &["images", "tag", "--force", image, &target]);
    let mut args = vec!["images", "push", "--plain-http"];
    if let Some(user) = user {
        args.extend(["--user", user]);
    }
    args.push(&target);
    ctr(c, &args);
    target
}
