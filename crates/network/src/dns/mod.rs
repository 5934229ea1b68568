//! Cluster DNS: what CoreDNS's `kubernetes` and `forward` plugins do for a cluster,
//! answering the names of the Kubernetes DNS specification
//! (<https://github.com/kubernetes/dns/blob/master/docs/specification.md>) from the
//! node's [`ServiceView`] and relaying every other name to the node's resolvers.
//!
//! - [`index`]: the record index, a pure function of the Services and EndpointSlices,
//!   patched per changed Service.
//! - [`answer`]: one question against the index, pure.
//! - `server`: the thin layer of sockets (UDP and TCP on one port) and upstream relaying.
//!
//! Names served (TTL 5 s, `<domain>` e.g. `cluster.local`):
//! `<svc>.<ns>.svc.<domain>` A/AAAA (ClusterIPs, or a headless Service's published
//! endpoints), SRV (named ports); `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV;
//! `<hostname or a-b-c-d>.<svc>.<ns>.svc.<domain>` A/AAAA for headless endpoints;
//! ExternalName Services as a CNAME, chased through the upstreams as CoreDNS does;
//! `<a-b-c-d>.<ns>.pod.<domain>` (`pods insecure`); PTR for ClusterIPs and headless
//! endpoint addresses. Unknown names of the zone get NXDOMAIN with the SOA, existing
//! names of another type NODATA; unknown reverse names go upstream.

pub mod answer;
pub mod index;
mod server;
#[cfg(test)]
pub(crate) mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use index::Index;

use crate::services::{Changes, ServiceKey, ServiceView};

/// How long the server waits for the first lists of Services and EndpointSlices before it
/// answers from whatever has arrived (CoreDNS waits 5 s too).
const READY_WAIT: Duration = Duration::from_secs(5);

/// Where and what the server serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP and TCP on this address; port 0 picks a free port (the same for both).
    pub listen: SocketAddr,
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: String,
    /// Where names outside the cluster domain are forwarded.
    pub upstreams: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid cluster domain {domain:?}")]
    Domain { domain: String },
    #[error("binding dns {protocol} socket on {addr}: {source}")]
    Bind { protocol: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("upstream dns: {detail}")]
    Upstream { detail: String },
}

/// A running server.
#[derive(Debug, Clone)]
pub struct Dns {
    /// The bound address (with the real port when `listen` asked for port 0).
    pub addr: SocketAddr,
    index: watch::Receiver<Arc<Index>>,
}

impl Dns {
    /// The index queries are answered from right now.
    pub fn index(&self) -> Arc<Index> {
        self.index.borrow().clone()
    }
}

/// The nameservers of a resolv.conf text, on port 53, in order, each once. Scoped IPv6
/// addresses (`fe80::1%eth0`) are skipped: they cannot be reached from another network
/// namespace anyway.
pub fn host_upstreams(resolv_conf: &str) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for line in resolv_conf.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else { continue };
        let addr = SocketAddr::new(ip, 53);
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// Binds the server and starts answering; the task ends when `stop` turns true (or its
/// sender is dropped). Until the first lists have been indexed, names of the cluster
/// domain get SERVFAIL (not a false NXDOMAIN); other names are forwarded at once.
pub async fn start(
    view: ServiceView,
    config: Config,
    stop: watch::Receiver<bool>,
) -> Result<(Dns, tokio::task::JoinHandle<()>), Error> {
    let domain = config.domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() || Name::from_ascii(format!("{domain}.")).is_err() {
        return Err(Error::Domain { domain: config.domain });
    }
    let (udp, tcp) = bind(config.listen).await?;
    let addr = udp.local_addr().map_err(|source| Error::Bind { protocol: "udp", addr: config.listen, source })?;
    let (tx, rx) = watch::channel(Arc::new(Index::empty(&domain)));
    let shared = Arc::new(server::Shared::new(rx.clone(), config.upstreams.clone()));
    tracing::info!(%addr, %domain, upstreams = ?config.upstreams, "cluster dns listening");
    let mut stop = stop;
    let task = tokio::spawn(async move {
        let mut tasks = JoinSet::new();
        tasks.spawn(keep_index(view, domain, tx));
        let udp = Arc::new(udp);
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
        for _ in 0..workers {
            tasks.spawn(server::udp_loop(udp.clone(), shared.clone()));
        }
        tasks.spawn(server::tcp_loop(tcp, shared));
        let _ = stop.wait_for(|s| *s).await;
        tasks.shutdown().await;
        tracing::info!(%addr, "cluster dns stopped");
    });
    Ok((Dns { addr, index: rx }, task))
}

/// UDP and TCP on one port. With port 0 the kernel picks the UDP port, which may be taken
/// for TCP; then another is tried.
async fn bind(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), Error> {
    let udp_err = |source| Error::Bind { protocol: "udp", addr: listen, source };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let udp = UdpSocket::bind(listen).await.map_err(udp_err)?;
        let addr = udp.local_addr().map_err(udp_err)?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(err) if listen.port() == 0 && attempts < 20 && err.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(source) => return Err(Error::Bind { protocol: "tcp", addr, source }),
        }
    }
}

/// Keeps the index current: a full build first (and after a relist), then a patch of the
/// changed Services. The work runs on the blocking pool and the result is swapped in, so
/// queries keep reading the previous index meanwhile.
async fn keep_index(view: ServiceView, domain: String, tx: watch::Sender<Arc<Index>>) {
    let mut changes = view.subscribe();
    if tokio::time::timeout(READY_WAIT, view.ready()).await.is_err() {
        tracing::warn!("services and endpointslices not listed after {READY_WAIT:?}; answering from what arrived");
    }
    let domain: Arc<str> = domain.into();
    loop {
        let changed = changes.next().await;
        let current = tx.borrow().clone();
        let (view, domain) = (view.clone(), domain.clone());
        let started = tokio::time::Instant::now();
        let keys = changed.keys.len();
        match tokio::task::spawn_blocking(move || update(&view, &domain, &current, &changed)).await {
            Ok(next) => {
                tracing::debug!(services = next.services.len(), changed = keys, elapsed = ?started.elapsed(), "dns index updated");
                tx.send_replace(Arc::new(next));
            }
            Err(err) => tracing::error!(error = %err, "dns index update failed"),
        }
    }
}

/// The next index after `changes`: rebuilt for "everything", else patched per Service.
pub fn update(view: &ServiceView, domain: &str, current: &Index, changes: &Changes) -> Index {
    if changes.all || !current.ready {
        return Index::build(domain, &view.services(), &view.slices());
    }
    let services: Vec<(ServiceKey, Option<Arc<Service>>)> =
        changes.keys.iter().map(|k| (k.clone(), view.service(k))).collect();
    // One pass over the slices for all changed Services.
    let slices: Vec<Arc<EndpointSlice>> = view
        .slices()
        .into_iter()
        .filter(|s| ServiceKey::of_slice(s).is_some_and(|k| changes.keys.contains(&k)))
        .collect();
    let patch: Vec<index::Patch<'_>> = services
        .iter()
        .map(|(key, svc)| {
            let of_key =
                slices.iter().filter(|s| ServiceKey::of_slice(s).as_ref() == Some(key)).map(|s| &**s).collect();
            (key.clone(), svc.as_deref().map(|svc| (svc, of_key)))
        })
        .collect();
    current.patched(&patch)
}
