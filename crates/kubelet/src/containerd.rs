//! The agent's own containerd: its configuration (a pure function of the agent's
//! paths), a supervisor that restarts it when it dies, and the import of air-gap images.
//!
//! Each agent runs a containerd of its own with root, state, socket and CNI folders
//! under its data dir, so several clusters on one machine never share runtime state.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::Paths;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the containerd configuration {path}: {source}")]
    Config { path: PathBuf, source: std::io::Error },
    #[error("cannot start containerd ({binary}): {source}; install it with `apt-get install containerd runc`")]
    Spawn { binary: String, source: std::io::Error },
    #[error("containerd did not open its socket {socket} within {seconds} s; see {log}")]
    NotReady { socket: PathBuf, seconds: u64, log: PathBuf },
    #[error("cannot import the image archive {path}: {message}")]
    Import { path: PathBuf, message: String },
    #[error(transparent)]
    Registries(#[from] crate::registries::Error),
}

/// The image the CRI plugin runs every pod sandbox from; built by `cargo xtask
/// test-images` and imported from the images folder.
pub const SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// The CRI plugin's namespace in containerd, the one kubelets use.
pub const NAMESPACE: &str = "k8s.io";

/// containerd's configuration (version 2) for an agent with these paths, followed by
/// `registries` (the registry section made from registries.yaml, see [`crate::registries`]).
///
/// `restrict_oom_score_adj`: root lacks CAP_SYS_RESOURCE in this sandbox, and runc fails
/// with "can't get final child's PID from pipe" unless containerd leaves the score be.
pub fn config_toml(paths: &Paths, registries: &str) -> String {
    let p = |p: &Path| p.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
    let cd = paths.containerd_dir();
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
oom_score = 0

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
{registries}"#,
        root = p(&cd.join("root")),
        state = p(&cd.join("state")),
        socket = p(&paths.containerd_socket()),
        opt = p(&cd.join("opt")),
        sandbox = SANDBOX_IMAGE,
        cni_bin = p(&paths.cni_bin_dir),
        cni_conf = p(&paths.cni_conf_dir()),
    )
}

/// Runs containerd as a child and restarts it (after a short pause) whenever it exits.
pub struct Supervisor {
    paths: Paths,
    binary: String,
}

impl Supervisor {
    pub fn new(paths: Paths, binary: impl Into<String>) -> Supervisor {
        Supervisor { paths, binary: binary.into() }
    }

    /// Writes the configuration and starts containerd, or adopts the one a previous run
    /// of the agent left running (its socket answers); returns once the socket answers,
    /// with the task that keeps it running.
    pub async fn start(self, stop: watch::Receiver<bool>) -> Result<tokio::task::JoinHandle<()>, Error> {
        let config_path = self.paths.containerd_dir().join("config.toml");
        let write = |path: &Path, text: &str| -> Result<(), Error> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| Error::Config { path: dir.into(), source })?;
            }
            std::fs::write(path, text).map_err(|source| Error::Config { path: path.into(), source })
        };
        // A bad registries.yaml stops the agent here rather than pulling without mirrors.
        let registries =
            crate::registries::load(&crate::registries::file(&self.paths), &crate::registries::certs_dir(&self.paths))?;
        for warning in &registries.warnings {
            tracing::warn!("{}: {warning}", crate::registries::file(&self.paths).display());
        }
        crate::registries::write_hosts(&crate::registries::certs_dir(&self.paths), &registries)?;
        write(&config_path, &config_toml(&self.paths, &registries.config_toml))?;
        std::fs::create_dir_all(self.paths.cni_conf_dir())
            .map_err(|source| Error::Config { path: self.paths.cni_conf_dir(), source })?;
        let child = if self.answers().await {
            tracing::info!(socket = %self.paths.containerd_socket().display(), "adopting the running containerd");
            None
        } else {
            let child = self.spawn(&config_path)?;
            self.wait_ready().await?;
            self.write_pid(&child);
            Some(child)
        };
        Ok(tokio::spawn(self.supervise(child, config_path, stop)))
    }

    async fn answers(&self) -> bool {
        tokio::net::UnixStream::connect(self.paths.containerd_socket()).await.is_ok()
    }

    fn spawn(&self, config: &Path) -> Result<Child, Error> {
        let log_path = self.paths.containerd_dir().join("containerd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| Error::Config { path: log_path.clone(), source })?;
        let err = log.try_clone().map_err(|source| Error::Config { path: log_path, source })?;
        // A stale socket from a killed containerd makes the new one fail to listen.
        let _ = std::fs::remove_file(self.paths.containerd_socket());
        Command::new(&self.binary)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // Its own process group: a Ctrl-C on the agent's terminal is the agent's to
            // handle, and containerd outlives an agent killed with -9, as upstream.
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn { binary: self.binary.clone(), source })
    }

    /// `rkube killall` finds containerd by its command line; the pid file is for people.
    fn write_pid(&self, child: &Child) {
        if let Some(pid) = child.id() {
            let _ = std::fs::write(crate::killall::containerd_pid_file(&self.paths), pid.to_string());
        }
    }

    async fn wait_ready(&self) -> Result<(), Error> {
        let socket = self.paths.containerd_socket();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error::NotReady { socket, seconds: 30, log: self.paths.containerd_dir().join("containerd.log") })
    }

    /// Restarts containerd whenever it exits (or, adopted, stops answering). On `stop`
    /// containerd is left running, like the containers: the next agent adopts both, and
    /// `rkube killall` is what ends them.
    async fn supervise(self, mut child: Option<Child>, config: PathBuf, mut stop: watch::Receiver<bool>) {
        loop {
            let exited = async {
                match child.as_mut() {
                    Some(c) => {
                        let status = c.wait().await;
                        tracing::warn!(?status, "containerd exited; restarting it");
                    }
                    None => loop {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        if !self.answers().await {
                            tracing::warn!("the adopted containerd stopped answering; starting our own");
                            break;
                        }
                    },
                }
            };
            tokio::select! {
                _ = exited => {}
                _ = stop.changed() => if *stop.borrow() { return } else { continue },
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            match self.spawn(&config) {
                Ok(c) => {
                    self.write_pid(&c);
                    child = Some(c);
                    if let Err(e) = self.wait_ready().await {
                        tracing::error!(error = %e, "containerd restart");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot restart containerd");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }
}

/// Imports every `.tar` archive (OCI or docker format) of `dir` into containerd's
/// `k8s.io` namespace with `ctr`, as k3s does with its air-gap images folder.
/// Returns the archives imported.
pub async fn import_images(paths: &Paths, ctr: &str, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut archives: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    archives.sort();
    for archive in &archives {
        let out = Command::new(ctr)
            .arg("--address")
            .arg(paths.containerd_socket())
            .args(["-n", NAMESPACE, "images", "import"])
            .arg(archive)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| Error::Import { path: archive.clone(), message: format!("cannot run {ctr}: {e}") })?;
        if !out.status.success() {
            return Err(Error::Import {
                path: archive.clone(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    Ok(archives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_places_everything_under_the_data_dir() {
        let paths = Paths::new(Path::new("/data/x"), Path::new("/usr/lib/cni"));
        let text = config_toml(&paths, "\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n");
        assert!(text.contains(r#"root = "/data/x/agent/containerd/root""#), "{text}");
        assert!(text.contains(r#"address = "/data/x/agent/containerd/containerd.sock""#), "{text}");
        assert!(text.contains(r#"conf_dir = "/data/x/agent/etc/cni/net.d""#), "{text}");
        assert!(text.contains("restrict_oom_score_adj = true"), "{text}");
        assert!(text.contains(SANDBOX_IMAGE));
        assert!(text.ends_with("max_conf_num = 1\n\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n"), "{text}");
    }
}
