//! `rkube`: Kubernetes in one binary. This is only the command line; the components
//! live in the workspace crates (`rkube-apiserver`, `rkube-store`, …).

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "rkube", version, about = "Kubernetes, in Rust, in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane of a cluster, and a node agent for this machine.
    Server(Box<ServerArgs>),
    /// Run a node agent that joins the cluster of an `rkube server`.
    Agent(Box<AgentArgs>),
    /// Stop the containers, containerd and pod network of the agent of a data dir.
    Killall(KillallArgs),
}

#[derive(clap::Args)]
struct AgentArgs {
    /// The server to join, e.g. https://10.0.0.1:6443.
    #[arg(long, env = "RKUBE_URL")]
    server: String,
    /// The join token (the server writes it to <data-dir>/server/node-token).
    #[arg(long, env = "RKUBE_TOKEN", required_unless_present = "token_file")]
    token: Option<String>,
    /// A file holding the join token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Folder holding the agent's state (containerd, pod logs, credentials).
    #[arg(long, default_value = "/var/lib/rkube")]
    data_dir: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
}

/// What any node agent is configured with.
#[derive(clap::Args, Clone)]
struct NodeArgs {
    /// Name of this machine's node (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// Address the node reports (default: the address of the default route's interface).
    #[arg(long)]
    node_ip: Option<String>,
    /// Use this CRI socket instead of starting containerd.
    #[arg(long)]
    container_runtime_endpoint: Option<PathBuf>,
    /// Port of the kubelet API (logs, exec, port-forward); 0 picks a free one.
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// The DNS server pods resolve with (default: the cluster IP of kube-system/kube-dns).
    #[arg(long)]
    cluster_dns: Option<std::net::Ipv4Addr>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Do not run the service proxy on this node (cluster DNS still runs).
    #[arg(long)]
    disable_kube_proxy: bool,
}

#[derive(clap::Args)]
struct KillallArgs {
    /// The data dir of the server or agent to clean up.
    #[arg(long, default_value = "/var/lib/rkube")]
    data_dir: PathBuf,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Folder holding the cluster state, certificates and tokens.
    #[arg(long, default_value = "/var/lib/rkube")]
    data_dir: PathBuf,
    /// Address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    https_listen_port: u16,
    /// Where to write the admin kubeconfig once the API answers.
    #[arg(long, default_value = "/etc/rkube/rkube.yaml")]
    write_kubeconfig: PathBuf,
    /// Run the control plane only, without a node agent on this machine.
    #[arg(long)]
    disable_agent: bool,
    /// Pod network range; each node gets a /24 from it.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// Range Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// Extra host names or addresses for the serving certificate.
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// How often the store history is compacted, e.g. `5m`, `30s` (`0s` never).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    compaction_interval: std::time::Duration,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: std::time::Duration,
    /// How long a node may go without a heartbeat before it is marked Unknown.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// How long pods stay on a not-ready node unless they say otherwise.
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// How long pods stay on an unreachable node unless they say otherwise.
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    #[command(flatten)]
    node: NodeArgs,
}

/// `90s`, `5m`, `1h`: a whole number and one unit.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 =
        n.parse().map_err(|_| format!("invalid duration {s:?}: expected a number and a unit, like 30s or 5m"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("invalid duration {s:?}: the unit must be s, m or h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// A kube-rs client for a component of this process. Its requests go to the API
/// server's handlers in memory (`RunningServer::in_process`) as `user` in `group`, like a
/// client certificate with that subject would authenticate: the same authorization and
/// admission, without TLS and sockets in between.
fn component_client(running: &rkube_apiserver::RunningServer, user: &str, group: Option<&str>) -> kube::Client {
    let user = rkube_apiserver::auth::UserInfo::authenticated(user, group.map(str::to_string));
    kube::Client::new(running.in_process(user), "default")
}

fn controller_options(args: &ServerArgs) -> rkube_controllers::Options {
    rkube_controllers::Options {
        cluster_cidr: args.cluster_cidr.clone(),
        node_monitor_period: args.node_monitor_period,
        node_monitor_grace_period: args.node_monitor_grace_period,
        // Published in every namespace as kube-root-ca.crt; written before we get here.
        root_ca_pem: std::fs::read_to_string(args.data_dir.join("server").join("tls").join("cluster-ca.crt"))
            .unwrap_or_default(),
        ..Default::default()
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "rkube".into())
}

/// The IPv4 address of the interface that holds the default route (read from /proc and
/// `ip`, no packet sent); loopback when there is none.
fn default_node_ip() -> String {
    let iface = std::fs::read_to_string("/proc/net/route").ok().and_then(|t| {
        t.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_string())
        })
    });
    let addr = iface.and_then(|iface| {
        let out = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "dev", &iface]).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let word = text.split_whitespace().skip_while(|w| *w != "inet").nth(1)?.to_string();
        Some(word.split('/').next()?.to_string())
    });
    addr.unwrap_or_else(|| "127.0.0.1".into())
}

fn node_config(args: &NodeArgs, data_dir: &std::path::Path) -> rkube_kubelet::Config {
    let node_name = args.node_name.clone().unwrap_or_else(hostname);
    let mut config =
        rkube_kubelet::Config::new(node_name, args.node_ip.clone().unwrap_or_else(default_node_ip), data_dir);
    config.runtime_endpoint = args.container_runtime_endpoint.clone();
    config.kubelet_address.set_port(args.kubelet_port);
    config.cluster_dns.domain = args.cluster_domain.clone();
    config.cluster_dns.servers = args.cluster_dns.iter().map(|ip| ip.to_string()).collect();
    config
}

/// The node's nftables table: one per data dir, so clusters side by side do not collide.
fn proxy_table(paths: &rkube_kubelet::Paths) -> String {
    format!("rkube-{}", paths.cluster_tag())
}

/// Starts the node's cluster DNS server and service proxy.
async fn node_network(
    client: kube::Client,
    args: &NodeArgs,
    config: &rkube_kubelet::Config,
) -> anyhow::Result<rkube_network::Network> {
    let node_ips = config.node_ip.parse().map(|ip| vec![ip]).unwrap_or_default();
    let resolv = std::fs::read_to_string(rkube_kubelet::host_resolv_conf()).unwrap_or_default();
    let net = rkube_network::NodeConfig {
        table: proxy_table(&config.paths),
        nft: vec!["nft".into()],
        node: rkube_network::proxy::NodeFacts {
            node_name: config.node_name.clone(),
            node_ips,
            pod_bridge: config.paths.bridge_name(),
        },
        proxy: !args.disable_kube_proxy,
        dns_listen: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        domain: args.cluster_domain.clone(),
        upstreams: rkube_network::dns::host_upstreams(&resolv),
        dns_service: rkube_network::services::ServiceKey::new("kube-system", "kube-dns"),
    };
    rkube_network::start(client, net).await.context("cannot start the node's cluster DNS and service proxy")
}

/// Lets the kubelet stop a deleted pod only once this node's proxy no longer sends it
/// new connections.
fn endpoint_drain(network: &rkube_network::Network) -> Option<rkube_kubelet::Drain> {
    let view = network.view.clone();
    network.proxy.then(|| {
        rkube_kubelet::Drain(std::sync::Arc::new(move |ip: String| {
            let view = view.clone();
            Box::pin(async move { view.drained(&ip).await })
        }))
    })
}

/// The cluster IP of kube-system/kube-dns, which an agent's pods resolve with unless
/// `--cluster-dns` says otherwise.
async fn cluster_dns_of(client: &kube::Client) -> Option<String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Service> = kube::Api::namespaced(client.clone(), "kube-system");
    match api.get_opt("kube-dns").await {
        Ok(svc) => svc?.spec?.cluster_ip.filter(|ip| !ip.is_empty() && ip != "None"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read kube-system/kube-dns: pods get the node's resolvers");
            None
        }
    }
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the join token from {}", f.display()))?
            .trim()
            .to_string(),
        (None, None) => anyhow::bail!("give the join token with --token or --token-file"),
    };
    let mut config = node_config(&args.node, &args.data_dir);
    let creds = rkube_kubelet::bootstrap::join(
        &args.server,
        &token,
        &config.node_name,
        &[config.node_ip.clone(), "127.0.0.1".into()],
        &config.paths.agent_dir,
    )
    .await
    .with_context(|| format!("cannot join the cluster at {}", args.server))?;
    let kc = kube::config::Kubeconfig::from_yaml(&creds.kubeconfig(&args.server)).context("node kubeconfig")?;
    let client_config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .context("node client configuration")?;
    let client = kube::Client::try_from(client_config).context("node client")?;
    config.kubelet_tls = Some(rkube_kubelet::server::Tls {
        ca_pem: creds.ca_pem.clone(),
        cert_pem: creds.serving_cert_pem.clone(),
        key_pem: creds.serving_key_pem.clone(),
    });
    if config.cluster_dns.servers.is_empty() {
        config.cluster_dns.servers.extend(cluster_dns_of(&client).await);
    }
    eprintln!("rkube agent {} joining {}", config.node_name, args.server);
    let network = node_network(client.clone(), &args.node, &config).await?;
    config.endpoint_drain = endpoint_drain(&network);
    let agent = rkube_kubelet::run(client, config).await.context("cannot start the node agent")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    agent.shutdown().await;
    network.shutdown().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Server(args) => rt.block_on(server(*args)),
        Command::Agent(args) => rt.block_on(agent(*args)),
        Command::Killall(args) => {
            let paths = rkube_kubelet::Paths::new(&args.data_dir, std::path::Path::new("/usr/lib/cni"));
            let report = rt.block_on(rkube_kubelet::killall::killall(&paths));
            let table = proxy_table(&paths);
            let table_removed = match rt.block_on(rkube_network::proxy::remove_table(&["nft".to_string()], &table)) {
                Ok(removed) => removed,
                Err(e) => {
                    eprintln!("rkube killall: cannot remove nftables table {table}: {e}");
                    false
                }
            };
            println!(
                "rkube killall {}: {} pod sandbox(es) removed, {} process(es) ended, {} mount(s) unmounted, {} leaked netns removed, bridge {} {}, nftables table {} {}",
                args.data_dir.display(),
                report.sandboxes,
                report.processes,
                report.unmounted,
                report.leaked_netns,
                paths.bridge_name(),
                if report.bridge_removed { "deleted" } else { "absent" },
                table,
                if table_removed { "deleted" } else { "absent" }
            );
            Ok(())
        }
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let service_cidr: rkube_apiserver::ipnet_lite::Ipv4Net =
        args.service_cidr.parse().map_err(|e: String| anyhow::anyhow!("--service-cidr: {e}"))?;
    let cluster_cidr = args.cluster_cidr.parse().map_err(|e: String| anyhow::anyhow!("--cluster-cidr: {e}"))?;
    let config = rkube_apiserver::Config {
        data_dir: args.data_dir.clone(),
        bind_address: args.bind_address,
        port: args.https_listen_port,
        kubeconfig: Some(args.write_kubeconfig.clone()),
        service_cidr,
        cluster_cidr,
        tls_sans: args.tls_san.clone(),
        compaction_interval: args.compaction_interval,
        default_tolerations: rkube_apiserver::admission::TolerationSeconds {
            not_ready: args.default_not_ready_toleration_seconds,
            unreachable: args.default_unreachable_toleration_seconds,
        },
    };
    let running = rkube_apiserver::run(config)
        .await
        .with_context(|| format!("cannot start the API server (data dir {})", args.data_dir.display()))?;
    eprintln!(
        "rkube server listening on https://{}; kubeconfig written to {}",
        running.addr,
        args.write_kubeconfig.display()
    );
    let identity = format!("{}_{}", hostname(), std::process::id());
    let controllers = component_client(&running, "system:kube-controller-manager", None);
    tokio::spawn(rkube_controllers::run(controllers, controller_options(&args), identity.clone()));
    let scheduler = component_client(&running, "system:kube-scheduler", None);
    tokio::spawn(rkube_scheduler::run(scheduler, identity));
    let agent = if args.disable_agent {
        None
    } else {
        let mut config = node_config(&args.node, &args.data_dir);
        let client = component_client(&running, &format!("system:node:{}", config.node_name), Some("system:nodes"));
        let (ca_pem, cert_pem, key_pem) = running
            .kubelet_serving(&config.node_name, &[config.node_ip.clone(), "127.0.0.1".into()])
            .context("cannot issue the kubelet's serving certificate")?;
        config.kubelet_tls = Some(rkube_kubelet::server::Tls { ca_pem, cert_pem, key_pem });
        if config.cluster_dns.servers.is_empty() {
            config
                .cluster_dns
                .servers
                .extend(rkube_apiserver::server::cluster_dns_ip(service_cidr).map(|ip| ip.to_string()));
        }
        config.node_labels = vec![
            ("node-role.kubernetes.io/control-plane".into(), "true".into()),
            ("node-role.kubernetes.io/master".into(), "true".into()),
        ];
        let network = node_network(client.clone(), &args.node, &config).await?;
        config.endpoint_drain = endpoint_drain(&network);
        Some((rkube_kubelet::run(client, config).await.context("cannot start the node agent")?, network))
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    if let Some((agent, network)) = agent {
        agent.shutdown().await;
        network.shutdown().await;
    }
    running.shutdown().await;
    Ok(())
}
