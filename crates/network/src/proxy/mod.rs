//! The nftables service proxy (our kube-proxy): keeps one `ip` table per cluster in step
//! with the cluster's Services and EndpointSlices.
//!
//! - [`plan`] (in [`planner`]) is pure: objects + node facts → per-Service rules.
//! - [`script`] turns plans into nft commands: one atomic replace-everything script on
//!   start (so an agent restart never leaves a moment without rules), then per-Service
//!   deltas that touch only what changed.
//! - [`nft`] is the thin executor behind the [`nft::Nft`] trait; [`run`] is the loop that
//!   ties the three to a [`ServiceView`] subscription.
//!
//! Semantics follow upstream kube-proxy's nftables mode: ClusterIPs (from our pod bridge
//! and from the host), NodePorts (any local address), external and load-balancer IPs,
//! random balancing over ready endpoints (or serving+terminating ones when none is
//! ready), ClientIP session affinity, masquerading of host/outside/hairpin traffic, and a
//! reject for ports without endpoints. The cluster DNS Service is redirected to the DNS
//! server on the node ([`LocalDns`]).

pub mod nft;
pub mod planner;
pub mod script;

#[cfg(test)]
mod netns_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

pub use nft::{CommandNft, Nft};
pub use planner::{BaseObject, ElementKey, MapName, Plan, ServiceRules, base_ops, plan, plan_service};
pub use script::{Applied, Op, full_script, render};

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::services::{Changes, ServiceKey, ServiceView};

/// How the proxy is set up on this node.
#[derive(Debug, Clone)]
pub struct Config {
    /// nft table name (family `ip`), one per cluster, e.g. `rkube-1a2b3c4d`.
    pub table: String,
    /// Command prefix running nft, default `["nft"]`.
    pub nft: Vec<String>,
    pub node: NodeFacts,
    /// Cluster DNS served on this node.
    pub local_dns: Option<LocalDns>,
}

/// What the planner needs to know about this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub node_name: String,
    pub node_ips: Vec<Ipv4Addr>,
    /// The cluster's pod bridge: ClusterIP rules apply to packets coming in on it.
    pub pod_bridge: String,
}

/// The cluster DNS Service, answered by a DNS server on this node instead of endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDns {
    /// Usually `kube-system/kube-dns`.
    pub service: ServiceKey,
    /// Where the node's DNS listens on 0.0.0.0 (udp and tcp).
    pub port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("nft command prefix is empty")]
    EmptyCommand,
    #[error("invalid nft table name {table:?}: want letters, digits, '-' or '_', at most 64")]
    BadTable { table: String },
    #[error("running {command}: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("nft rejected the script: {stderr} ({line})")]
    Apply { stderr: String, line: String },
    #[error("listing nft table {table}: {stderr}")]
    List { table: String, stderr: String },
}

/// Backoff after a failed apply: the next attempt is a full sync after this long,
/// doubling up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { min: Duration::from_millis(500), max: Duration::from_secs(30) }
    }
}

/// Keeps the table in step with `view` until `stop` turns true. The table stays behind
/// on return (a restarting agent must not cut traffic); [`remove_table`] removes it.
pub async fn run(view: ServiceView, config: Config, stop: watch::Receiver<bool>) -> Result<(), Error> {
    let nft = CommandNft::new(&config.nft)?;
    run_with(nft, view, &config, stop, Backoff::default()).await
}

/// Deletes the proxy's table (for `rkube killall`); `Ok(false)` if it was not there.
pub async fn remove_table(nft: &[String], table: &str) -> Result<bool, Error> {
    check_table(table)?;
    nft::delete_table(&CommandNft::new(nft)?, table).await
}

fn check_table(table: &str) -> Result<(), Error> {
    let ok = !table.is_empty()
        && table.len() <= 64
        && table.starts_with(|c: char| c.is_ascii_alphabetic())
        && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok { Ok(()) } else { Err(Error::BadTable { table: table.into() }) }
}

/// The run loop over any [`Nft`]: a full sync first (and after any failure), then only
/// the Services that changed, taking whatever accumulated while nft was busy in one go.
pub async fn run_with<N: Nft>(
    nft: N,
    view: ServiceView,
    config: &Config,
    mut stop: watch::Receiver<bool>,
    backoff: Backoff,
) -> Result<(), Error> {
    check_table(&config.table)?;
    let span = tracing::info_span!("proxy", table = %config.table);
    run_loop(nft, view, config, &mut stop, backoff).instrument(span).await
}

async fn run_loop<N: Nft>(
    nft: N,
    view: ServiceView,
    config: &Config,
    stop: &mut watch::Receiver<bool>,
    backoff: Backoff,
) -> Result<(), Error> {
    let mut sub = view.subscribe();
    // Syncing before the first list has arrived would replace a working table with an
    // empty one on every agent restart.
    tokio::select! {
        _ = view.ready() => {}
        _ = stopped(stop) => return Ok(()),
    }
    let mut syncer = Syncer::new(nft, config.clone());
    let mut retry_at: Option<Instant> = None;
    let mut delay = backoff.min;
    loop {
        let changes = match retry_at {
            None => tokio::select! {
                _ = stopped(stop) => return Ok(()),
                changes = sub.next() => changes,
            },
            Some(at) => {
                tokio::select! {
                    _ = stopped(stop) => return Ok(()),
                    _ = tokio::time::sleep_until(at) => {}
                }
                retry_at = None;
                // Whatever came in meanwhile is covered by the full sync that follows.
                sub.next().now_or_never().unwrap_or_default()
            }
        };
        match syncer.sync(&view, &changes).await {
            Ok(_) => {
                delay = backoff.min;
                // The table now carries every change the subscription has reported
                // (a pod being deleted waits for this; see ServiceView::drained).
                view.applied(sub.seq());
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "nft sync failed; a full sync follows");
                retry_at = Some(Instant::now() + delay);
                delay = (delay * 2).min(backoff.max);
            }
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A dropped sender also means stop.
    let _ = stop.wait_for(|s| *s).await;
}

/// What one sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// A full replace (else only changed Services).
    pub full: bool,
    /// Services planned.
    pub services: usize,
    /// Script size handed to nft (0: nothing to do).
    pub bytes: usize,
}

/// The proxy's state between syncs: what the table holds, if known. Used by [`run`];
/// public so benchmarks time exactly the code the agent runs.
pub struct Syncer<N> {
    nft: N,
    config: Config,
    base: Vec<BaseObject>,
    /// `None` until a full sync succeeded, and again after any failed apply.
    applied: Option<Applied>,
}

impl<N: Nft> Syncer<N> {
    pub fn new(nft: N, config: Config) -> Syncer<N> {
        let base = base_ops(&config.node);
        Syncer { nft, config, base, applied: None }
    }

    /// Brings the table up to date with `view` for `changes`: a full sync when asked for
    /// everything or when the table's state is unknown, else only the changed Services.
    /// On error the state is forgotten, so the next call does a full sync.
    pub async fn sync(&mut self, view: &ServiceView, changes: &Changes) -> Result<SyncReport, Error> {
        match self.applied.take() {
            Some(mut current) if !changes.all => {
                let report = self.sync_changed(view, &mut current, &changes.keys).await;
                self.applied = report.is_ok().then_some(current);
                report
            }
            _ => self.sync_all(view).await.map(|(applied, report)| {
                self.applied = Some(applied);
                report
            }),
        }
    }

    async fn sync_all(&self, view: &ServiceView) -> Result<(Applied, SyncReport), Error> {
        let started = Instant::now();
        let services = view.services();
        let plan = plan(&services, &view.slices(), &self.config.node, self.config.local_dns.as_ref());
        let applied = Applied::new(plan);
        let script = full_script(&self.config.table, &self.base, &applied);
        self.nft.apply(&script).await?;
        let report = SyncReport { full: true, services: services.len(), bytes: script.len() };
        tracing::info!(services = services.len(), bytes = script.len(), took = ?started.elapsed(), "full nft sync");
        Ok((applied, report))
    }

    /// Applies the deltas of the Services in `keys`.
    async fn sync_changed(
        &self,
        view: &ServiceView,
        current: &mut Applied,
        keys: &BTreeSet<ServiceKey>,
    ) -> Result<SyncReport, Error> {
        let started = Instant::now();
        // One pass over the slices for all changed Services.
        let slices = view.slices();
        let mut own: BTreeMap<&ServiceKey, Vec<&EndpointSlice>> = keys.iter().map(|k| (k, Vec::new())).collect();
        for slice in &slices {
            if let Some(list) = ServiceKey::of_slice(slice).and_then(|k| own.get_mut(&k)) {
                list.push(slice);
            }
        }
        let mut ops = Vec::new();
        for (key, slices) in own {
            let _span = tracing::debug_span!("service", namespace = %key.namespace, name = %key.name).entered();
            let rules = view
                .service(key)
                .map(|svc| plan_service(key, &svc, &slices, &self.config.node, self.config.local_dns.as_ref()));
            let delta = current.update(key, rules);
            tracing::debug!(commands = delta.len(), "service changed");
            ops.extend(delta);
        }
        if ops.is_empty() {
            return Ok(SyncReport { full: false, services: keys.len(), bytes: 0 });
        }
        let script = render(&self.config.table, &ops);
        self.nft.apply(&script).await?;
        tracing::debug!(services = keys.len(), commands = ops.len(), took = ?started.elapsed(), "incremental nft sync");
        Ok(SyncReport { full: false, services: keys.len(), bytes: script.len() })
    }
}
