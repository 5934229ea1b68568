//! The node's view of Services: an nftables service proxy ([`proxy`]) and the cluster DNS
//! server ([`dns`]), both fed by one watch of Services and EndpointSlices
//! ([`services::ServiceView`]), as upstream's kube-proxy and CoreDNS are fed by the API.
//!
//! Start reading at [`services`], then [`proxy::plan`] (the pure ruleset function) and
//! [`dns`]'s record index. Side effects (running `nft`, binding sockets) are thin layers
//! around those pure parts.

pub mod dns;
pub mod proxy;
pub mod services;

use std::net::SocketAddr;

use kube::Client;
use tokio::sync::watch;

use services::ServiceKey;

/// What a node's Service plumbing needs to know.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The proxy's nftables table (one per cluster on a machine).
    pub table: String,
    /// Command prefix running nft (`["nft"]`).
    pub nft: Vec<String>,
    pub node: proxy::NodeFacts,
    /// Whether this node runs the service proxy (k3s's `--disable-kube-proxy` turns it off).
    pub proxy: bool,
    /// Where the node's DNS server listens (port 0: a free port).
    pub dns_listen: SocketAddr,
    pub domain: String,
    /// The node's own resolvers, for names outside the cluster domain.
    pub upstreams: Vec<SocketAddr>,
    /// The cluster DNS Service, sent to this node's DNS server by the proxy.
    pub dns_service: ServiceKey,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Dns(#[from] dns::Error),
}

/// The node's running DNS server and service proxy.
pub struct Network {
    pub dns: dns::Dns,
    /// The Services and slices the node sees (see [`services::ServiceView::drained`]).
    pub view: services::ServiceView,
    /// Whether the service proxy runs (and so reports what it applied).
    pub proxy: bool,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Network {
    /// Stops DNS and the proxy; the proxy's rules stay in place, so Service traffic goes on
    /// while the agent restarts.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
        }
    }
}

/// Starts watching Services and EndpointSlices, the DNS server and the proxy.
pub async fn start(client: Client, config: NodeConfig) -> Result<Network, Error> {
    let (stop, stop_rx) = watch::channel(false);
    let (view, watch_task) = services::watch(client, stop_rx.clone());
    let dns_config =
        dns::Config { listen: config.dns_listen, domain: config.domain.clone(), upstreams: config.upstreams };
    let (dns, dns_task) = dns::start(view.clone(), dns_config, stop_rx.clone()).await?;
    let mut tasks = vec![watch_task, dns_task];
    let network_view = view.clone();
    if config.proxy {
        let proxy_config = proxy::Config {
            table: config.table,
            nft: config.nft,
            node: config.node,
            local_dns: Some(proxy::LocalDns { service: config.dns_service, port: dns.addr.port() }),
        };
        tasks.push(tokio::spawn(async move {
            if let Err(e) = proxy::run(view, proxy_config, stop_rx).await {
                tracing::error!(error = %e, "service proxy stopped");
            }
        }));
    }
    Ok(Network { dns, view: network_view, proxy: config.proxy, stop, tasks })
}
