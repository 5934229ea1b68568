//! `rkube killall`: returns the machine clean of one agent's runtime state, as k3s's
//! killall script does: every pod sandbox stopped and removed through CRI (so CNI
//! releases addresses, veths and network namespaces), containerd and its shims ended,
//! the pod bridge deleted, mounts under the data dir (container rootfs, memory-backed
//! emptyDir volumes) unmounted and the pods' volume directories removed.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Paths;
use crate::cri::{CriRuntime, Runtime};

/// What was cleaned, for the command's report.
#[derive(Debug, Default)]
pub struct Report {
    pub sandboxes: usize,
    pub processes: usize,
    pub bridge_removed: bool,
    pub unmounted: usize,
}

/// The pid file the supervisor writes for its containerd.
pub fn containerd_pid_file(paths: &Paths) -> std::path::PathBuf {
    paths.containerd_dir().join("containerd.pid")
}

/// Processes whose command line mentions `needle` (containerd with our config, shims
/// with our socket), found in /proc.
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Stops and removes everything of the agent at `paths`. Safe to run twice.
pub async fn killall(paths: &Paths) -> Report {
    let mut report = Report::default();
    let socket = paths.containerd_socket();
    if tokio::net::UnixStream::connect(&socket).await.is_ok()
        && let Ok(rt) = CriRuntime::connect(&socket)
        && let Ok(Ok(sandboxes)) = tokio::time::timeout(Duration::from_secs(10), rt.list_pod_sandboxes(None)).await
    {
        for s in sandboxes {
            if let Ok(containers) =
                rt.list_containers(Some(&s.metadata.as_ref().map(|m| m.uid.clone()).unwrap_or_default())).await
            {
                for c in containers {
                    let _ = rt.stop_container(&c.id, 0).await;
                    let _ = rt.remove_container(&c.id).await;
                }
            }
            let _ = rt.stop_pod_sandbox(&s.id).await;
            let _ = rt.remove_pod_sandbox(&s.id).await;
            report.sandboxes += 1;
        }
    }
    // containerd (by the config path on its command line) and the shims (by its socket).
    let config = paths.containerd_dir().join("config.toml").display().to_string();
    let mut pids = processes_mentioning(&config);
    pids.extend(processes_mentioning(&socket.display().to_string()));
    pids.sort();
    pids.dedup();
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    report.processes = pids.len();
    // Give the kernel a moment to reap them before unmounting their rootfs.
    for _ in 0..50 {
        if pids.iter().all(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for point in crate::pod::volume::mounts_under(&paths.agent_dir) {
        let ok = std::process::Command::new("umount").arg("-l").arg(&point).status().is_ok_and(|s| s.success());
        if ok {
            report.unmounted += 1;
        }
    }
    // The pods' volume directories (k3s removes /var/lib/kubelet/pods the same way),
    // only once nothing is mounted under them any more.
    let pods = paths.agent_dir.join("pods");
    if crate::pod::volume::mounts_under(&pods).is_empty() {
        let _ = std::fs::remove_dir_all(&pods);
    }
    report.bridge_removed = std::process::Command::new("ip")
        .args(["link", "delete", &paths.bridge_name()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::fs::remove_file(containerd_pid_file(paths));
    report
}
