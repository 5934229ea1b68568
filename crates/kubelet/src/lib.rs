//! The node agent of rkube (the kubelet): it registers its Node, renews the node's Lease,
//! and runs the pods bound to it as real containers through CRI, on a containerd it
//! supervises, with a CNI bridge network on the node's podCIDR.
//!
//! Start reading at [`run`]. The agent sees the cluster only through the Kubernetes API
//! (kube-rs), and the host only through traits: [`cri::Runtime`] for containers. The
//! decisions are pure functions tested by tables: what to do next for a pod
//! ([`pod::plan`]), what its status is ([`pod::status`]), how its spec becomes CRI
//! configuration ([`pod::spec`]), what the Node object says ([`node`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;

pub mod bootstrap;
pub mod cni;
pub mod containerd;
pub mod cri;
pub mod killall;
pub mod node;
pub mod pod;
pub mod registries;
pub mod server;
pub mod static_pods;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Containerd(#[from] containerd::Error),
    #[error(transparent)]
    Runtime(#[from] cri::Error),
    #[error(transparent)]
    Node(#[from] node::Error),
    #[error(transparent)]
    Server(#[from] server::Error),
    #[error("cannot prepare {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Where an agent keeps its state: everything under `<data-dir>/agent/`.
#[derive(Debug, Clone)]
pub struct Paths {
    pub agent_dir: PathBuf,
    /// The reference CNI plugins (Debian installs them in /usr/lib/cni).
    pub cni_bin_dir: PathBuf,
}

impl Paths {
    pub fn new(data_dir: &Path, cni_bin_dir: &Path) -> Paths {
        Paths { agent_dir: data_dir.join("agent"), cni_bin_dir: cni_bin_dir.to_path_buf() }
    }
    pub fn containerd_dir(&self) -> PathBuf {
        self.agent_dir.join("containerd")
    }
    pub fn containerd_socket(&self) -> PathBuf {
        self.containerd_dir().join("containerd.sock")
    }
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.agent_dir.join("etc").join("cni").join("net.d")
    }
    pub fn cni_ipam_dir(&self) -> PathBuf {
        self.agent_dir.join("cni-ipam")
    }
    /// Air-gap images imported at start (k3s's convention).
    pub fn images_dir(&self) -> PathBuf {
        self.agent_dir.join("images")
    }
    /// Static pod manifests (upstream's `--pod-manifest-path`).
    pub fn pod_manifests_dir(&self) -> PathBuf {
        self.agent_dir.join("pod-manifests")
    }
    pub fn pod_logs_dir(&self) -> PathBuf {
        self.agent_dir.join("pod-logs")
    }
    /// A short name unique to this data dir, for host-wide names (bridge, cgroups).
    pub fn cluster_tag(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.agent_dir.display().to_string().as_bytes());
        hex::encode(&digest[..4])
    }
    /// The Linux bridge of this agent's pods (at most 15 bytes).
    pub fn bridge_name(&self) -> String {
        format!("rk{}", self.cluster_tag())
    }
}

/// The node's resolver configuration: systemd-resolved's list of real upstreams when it
/// runs (its /etc/resolv.conf names a loopback stub no pod can reach), else
/// /etc/resolv.conf, as upstream's kubelet is told with `--resolv-conf`.
pub fn host_resolv_conf() -> PathBuf {
    let resolved = PathBuf::from("/run/systemd/resolve/resolv.conf");
    if resolved.exists() { resolved } else { PathBuf::from("/etc/resolv.conf") }
}

/// The agent's settings, from `rkube server` or `rkube agent`.
#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    pub node_ip: String,
    pub paths: Paths,
    /// Labels the node registers with besides the well-known ones.
    pub node_labels: Vec<(String, String)>,
    /// A CRI socket to use instead of starting containerd.
    pub runtime_endpoint: Option<PathBuf>,
    pub containerd_binary: String,
    pub ctr_binary: String,
    /// How often the node Lease is renewed (upstream: 10 s).
    pub lease_renew_interval: Duration,
    /// How often every pod is synced even without a change (upstream's resync).
    pub resync_interval: Duration,
    /// Where the kubelet API listens (port 0: any free port, published in the Node's
    /// `daemonEndpoints`); no API without TLS material.
    pub kubelet_address: std::net::SocketAddr,
    pub kubelet_tls: Option<server::Tls>,
    /// The cluster DNS servers and domain written into pods' resolv.conf.
    pub cluster_dns: pod::spec::ClusterDns,
    /// Waits until the node's service proxy sends no new connections to a pod address;
    /// a deleted pod's containers are stopped after it (see `pod`'s drain).
    pub endpoint_drain: Option<Drain>,
}

/// A future that resolves once a pod address (the argument) is out of the node's
/// service proxy.
#[derive(Clone)]
pub struct Drain(pub Arc<dyn Fn(String) -> futures::future::BoxFuture<'static, ()> + Send + Sync>);

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Drain")
    }
}

impl Config {
    pub fn new(node_name: String, node_ip: String, data_dir: &Path) -> Config {
        Config {
            node_name,
            node_ip,
            paths: Paths::new(data_dir, Path::new("/usr/lib/cni")),
            node_labels: Vec::new(),
            runtime_endpoint: None,
            containerd_binary: "containerd".into(),
            ctr_binary: "ctr".into(),
            lease_renew_interval: Duration::from_secs(10),
            resync_interval: Duration::from_secs(1),
            kubelet_address: std::net::SocketAddr::from(([0, 0, 0, 0], node::KUBELET_PORT)),
            kubelet_tls: None,
            cluster_dns: pod::spec::ClusterDns { servers: Vec::new(), domain: "cluster.local".into() },
            endpoint_drain: None,
        }
    }
}

/// A running agent; dropping it does not stop containers (a restarted agent adopts them).
pub struct Agent {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Agent {
    /// Stops the agent's loops and its containerd; containers keep running.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(12), t).await;
        }
    }
}

/// Starts the agent: containerd (unless an endpoint is given), air-gap images, the Node
/// and its Lease, the CNI configuration once node IPAM gives the node its podCIDR, and
/// the pod workers.
pub async fn run(client: Client, mut config: Config) -> Result<Agent, Error> {
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for dir in [
        config.paths.agent_dir.clone(),
        config.paths.images_dir(),
        config.paths.pod_logs_dir(),
        config.paths.pod_manifests_dir(),
    ] {
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
    }
    let socket = match &config.runtime_endpoint {
        Some(socket) => socket.clone(),
        None => {
            let supervisor = containerd::Supervisor::new(config.paths.clone(), config.containerd_binary.clone());
            tasks.push(supervisor.start(stop_rx.clone()).await?);
            let imported =
                containerd::import_images(&config.paths, &config.ctr_binary, &config.paths.images_dir()).await?;
            tracing::info!(archives = imported.len(), "imported air-gap images");
            config.paths.containerd_socket()
        }
    };
    let cri = cri::CriRuntime::connect(&socket)?;
    let runtime: Arc<dyn cri::Runtime> = Arc::new(cri.clone());
    let runtime_version = runtime.version().await?;
    if let Some(tls) = &config.kubelet_tls {
        let state = Arc::new(server::State {
            node_name: config.node_name.clone(),
            runtime: runtime.clone(),
            streaming: Arc::new(cri),
        });
        let (port, task) = server::start(config.kubelet_address, tls, state, stop_rx.clone()).await?;
        tracing::info!(port, "kubelet api listening");
        config.kubelet_address.set_port(port);
        tasks.push(task);
    }
    let facts = node::HostFacts::read(&config, runtime_version);
    node::register(&client, &config, &facts).await?;
    tracing::info!(node = %config.node_name, "node registered");
    tasks.push(tokio::spawn(node::heartbeat(client.clone(), config.clone(), facts, stop_rx.clone())));
    tasks.push(tokio::spawn(static_pods::run(client.clone(), config.clone(), Duration::from_secs(2), stop_rx.clone())));
    tasks.push(tokio::spawn(pod::run(client, config, runtime, stop_rx)));
    Ok(Agent { stop, tasks })
}
