//! `rkube killall`: returns the machine clean of one agent's runtime state, as k3s's
//! killall script does: every pod sandbox stopped and removed through CRI (so CNI
//! releases addresses, veths and network namespaces), containerd and its shims ended,
//! the pod bridge deleted, mounts under the data dir (container rootfs, memory-backed
//! emptyDir volumes) unmounted and the pods' volume directories removed. A pod network
//! namespace CNI never got to tear down is found by the address host-local still holds.

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
    /// Pod network namespaces CNI never tore down (a sandbox still being created when
    /// the agent stopped), removed by their address.
    pub leaked_netns: usize,
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

/// Addresses host-local still holds for pods (one file per address under
/// `<ipam dir>/<network>/`): with every sandbox removed, each is a leak.
fn held_addresses(ipam_dir: &Path) -> Vec<(std::net::Ipv4Addr, std::path::PathBuf)> {
    let Ok(networks) = std::fs::read_dir(ipam_dir) else { return Vec::new() };
    networks
        .filter_map(|n| std::fs::read_dir(n.ok()?.path()).ok())
        .flatten()
        .filter_map(|f| {
            let path = f.ok()?.path();
            Some((path.file_name()?.to_str()?.parse().ok()?, path))
        })
        .collect()
}

/// Deletes the `cni-*` network namespaces whose eth0 holds an address host-local still
/// has on record for this agent (so only our pods' namespaces), and the records.
fn remove_leaked_netns(ipam_dir: &Path) -> usize {
    let held = held_addresses(ipam_dir);
    if held.is_empty() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir("/run/netns") else { return 0 };
    let mut removed = 0;
    for name in entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with("cni-")) {
        let Ok(out) =
            std::process::Command::new("ip").args(["-n", &name, "-4", "-o", "addr", "show", "dev", "eth0"]).output()
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let addr = text.split_whitespace().skip_while(|w| *w != "inet").nth(1).and_then(|a| a.split('/').next());
        let ours =
            addr.and_then(|a| a.parse::<std::net::Ipv4Addr>().ok()).is_some_and(|a| held.iter().any(|(h, _)| *h == a));
        if ours && std::process::Command::new("ip").args(["netns", "delete", &name]).status().is_ok_and(|s| s.success())
        {
            removed += 1;
        }
    }
    for (_, record) in held {
        let _ = std::fs::remove_file(record);
    }
    removed
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
    report.leaked_netns = remove_leaked_netns(&paths.cni_ipam_dir());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_address_records_of_host_local_count_as_held() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("rkube");
        std::fs::create_dir_all(&net).unwrap();
        for f in ["10.230.0.7", "last_reserved_ip.0", "lock"] {
            std::fs::write(net.join(f), "abc\neth0").unwrap();
        }
        let held = held_addresses(dir.path());
        assert_eq!(held.iter().map(|(a, _)| a.to_string()).collect::<Vec<_>>(), ["10.230.0.7"]);
        assert!(held_addresses(&dir.path().join("absent")).is_empty());
    }
}
