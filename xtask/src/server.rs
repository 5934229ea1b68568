//! Building, starting and stopping the `rkube server` under test.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// How long the server may take from spawn to writing its kubeconfig.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root: the parent of this crate's manifest dir.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Builds `rkube` in release mode and returns the path of the binary, as cargo reports it
/// (so `CARGO_TARGET_DIR` and any other cargo configuration are honoured).
pub fn build_rkube() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building rkube (cargo build --release -p rkube) ...");
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--release", "-p", "rkube", "--bin", "rkube", "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo build")?;
    if !output.status.success() {
        bail!("cargo build --release -p rkube failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == "rkube"
            && let Some(exe) = msg["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo build did not report the rkube executable")
}

/// The release binary where cargo puts it, without building.
pub fn locate_rkube() -> Result<PathBuf> {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { workspace_root().join(dir) }
        }
        None => workspace_root().join("target"),
    };
    let exe = target.join("release").join("rkube");
    if !exe.is_file() {
        bail!("{} does not exist: build it with `cargo build --release -p rkube` or drop --no-build", exe.display());
    }
    Ok(exe)
}

/// A running `rkube server`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct ServerGuard {
    child: Option<Child>,
    pub pid: u32,
    pub kubeconfig: PathBuf,
    pub log: PathBuf,
}

impl ServerGuard {
    /// Starts the server on `dir/data`, waits until it has written `dir/kubeconfig.yaml`
    /// (it does so once it answers), and returns the guard.
    pub fn start(exe: &Path, dir: &Path) -> Result<ServerGuard> {
        ServerGuard::start_with(exe, dir, &[])
    }

    /// [`ServerGuard::start`] with extra `rkube server` flags.
    pub fn start_with(exe: &Path, dir: &Path, extra_args: &[&str]) -> Result<ServerGuard> {
        let data = dir.join("data");
        let kubeconfig = dir.join("kubeconfig.yaml");
        let log = dir.join("server.log");
        let log_file = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(exe)
            .arg("server")
            .arg("--disable-agent")
            .args(["--bind-address", "127.0.0.1", "--https-listen-port", "0"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let pid = child.id();
        let mut guard = ServerGuard { child: Some(child), pid, kubeconfig, log };
        let started = Instant::now();
        loop {
            if guard.kubeconfig.is_file() {
                return Ok(guard);
            }
            if let Some(child) = guard.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                guard.child = None;
                bail!("rkube server exited during start-up ({status}); its log:\n{}", guard.log_tail());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "rkube server did not write its kubeconfig within {START_TIMEOUT:?}; its log:\n{}",
                    guard.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A kube-rs configuration from the server's admin kubeconfig, without transparent
    /// retries (every request counts once).
    pub async fn kube_config(&self) -> Result<kube::Config> {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).context("cannot read the server's kubeconfig")?;
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .context("cannot use the server's kubeconfig")?;
        config.default_retry = false;
        Ok(config)
    }

    /// Fails if the server process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => Ok(()),
            Some(Ok(Some(status))) => {
                self.child = None;
                Err(anyhow!("rkube server exited ({status}); its log:\n{}", self.log_tail()))
            }
            Some(Err(err)) => Err(err.into()),
            None => Err(anyhow!("rkube server is not running")),
        }
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let Ok(file) = File::open(&self.log) else { return String::from("(no log)") };
        let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the server: SIGTERM, up to five seconds for a clean exit, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// VmRSS of a process from `/proc/<pid>/status`, in bytes.
pub fn rss_of(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or_else(|| anyhow!("no VmRSS for pid {pid}"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("cannot parse {line:?}"))?;
    Ok(kib * 1024)
}

/// The soft limit on open files of this process (children inherit it).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// The filesystem type and mount point holding `path`, from `/proc/self/mounts`.
pub fn filesystem_of(path: &Path) -> Option<(String, String)> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, mount, fstype) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mount).then(|| (mount.to_string(), fstype.to_string()))
        })
        .max_by_key(|(mount, _)| mount.len())
        .map(|(mount, fstype)| (fstype, mount))
}

/// Memory of a process from `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// VmRSS: everything resident.
    pub rss: u64,
    /// RssAnon: heap, stacks and other private anonymous memory.
    pub anon: u64,
    /// RssFile: resident pages of mapped files (mostly the binary itself).
    pub file: u64,
}

pub fn memory_of(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    Ok(Memory { rss: rss_of(pid)?, anon: field("RssAnon:"), file: field("RssFile:") })
}

/// User plus system CPU time a process has used so far, from `/proc/<pid>/stat`
/// (in USER_HZ ticks, which Linux fixes at 100 per second for this interface).
pub fn cpu_time(pid: Option<u32>) -> Result<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name may hold spaces; the numeric fields follow its closing paren.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| anyhow!("malformed {path}"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime); `fields[0]` is field 3 (state).
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or_else(|| anyhow!("malformed {path}"));
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// How many file descriptors a process has open.
pub fn open_fds(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// CPU time of the server and of this client at one moment, to measure a phase.
#[derive(Clone, Copy)]
pub struct CpuMark {
    server: Duration,
    client: Duration,
}

impl CpuMark {
    pub fn now(pid: u32) -> Result<CpuMark> {
        Ok(CpuMark { server: cpu_time(Some(pid))?, client: cpu_time(None)? })
    }

    /// CPU used since this mark, per operation over `ops` operations.
    pub fn since(self, pid: u32, ops: usize) -> Result<CpuUse> {
        let now = CpuMark::now(pid)?;
        Ok(CpuUse { server: now.server - self.server, client: now.client - self.client, ops })
    }
}

/// CPU time of the server and of this client over a phase of `ops` operations.
#[derive(Clone, Copy)]
pub struct CpuUse {
    pub server: Duration,
    pub client: Duration,
    pub ops: usize,
}

impl CpuUse {
    pub fn describe(&self, unit_ms: bool) -> String {
        let per = |d: Duration| d.as_secs_f64() / self.ops.max(1) as f64;
        if unit_ms {
            format!("{:.1} ms server, {:.1} ms client", per(self.server) * 1e3, per(self.client) * 1e3)
        } else {
            format!("{:.0} µs server, {:.0} µs client", per(self.server) * 1e6, per(self.client) * 1e6)
        }
    }
}

/// The 1, 5 and 15 minute load averages, from `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}
