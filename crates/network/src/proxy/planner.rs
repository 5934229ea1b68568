//! The pure half of the proxy: Services + EndpointSlices + node facts → nftables rules.
//!
//! The ruleset is split per Service ([`ServiceRules`]): the chains, affinity sets and map
//! elements that exist only because of that Service. The shared skeleton (hook chains,
//! the dispatch maps, masquerading) is [`base_ops`]. Keeping every per-Service object
//! keyed by stable names is what lets [`super::script`] turn a change to one Service into
//! a handful of nft commands instead of a reload.
//!
//! Shape of the table (family `ip`, one per cluster):
//!
//! ```text
//! nat-prerouting ─ iifname <bridge> ─▶ cluster-ips ─ vmap @service-ips ─▶ cluster-endpoints-<N>
//!                │                 └▶ external-services ─ vmap @external-ips / @service-nodeports ─▶ …-endpoints-<N>
//!                └ other interfaces ─▶ from-outside (mark for masquerade) ─▶ external-services
//! nat-output ─────────────────────────▶ from-host (mark for masquerade) ─▶ cluster-ips, external-services
//! cluster-endpoints-<N> ─ dnat ip to ip daddr . meta l4proto . th dport . numgen random mod N map @cluster-endpoints
//! nat-postrouting ─ hairpin (saddr . daddr in @hairpin-endpoints), masquerading (marked packets)
//! filter-{input,forward,output} ─ vmap @no-endpoint-services / @no-endpoint-nodeports ─▶ no-endpoints (reject)
//! ```
//!
//! Why: nft 1.0.6 reads every chain of the table (and every set) into its cache before
//! any `add rule` or `add element`, so at 10,000 Services an incremental `nft -f` cost
//! ~100 ms as long as each Service had its own chain. Balancing therefore lives in map
//! elements: a Service port with N endpoints (N ≤ [`MAX_SLOTS`]) is sent to the shared
//! base chain `<kind>-endpoints-<N>`, which looks up slot `numgen random mod N` (uniform)
//! of the packet's address and port in the endpoint map (`ClusterIP . proto . port . slot
//! → endpoint . port`). An endpoint change is then a few `delete/add element` commands
//! and the table has a few hundred chains, whatever the number of Services. The slot
//! chains are all made by the full sync: nft 1.0.6 cannot add a rule naming such a
//! `typeof` map to a table it has to read back.
//!
//! Services with ClientIP affinity (and ports with more than [`MAX_SLOTS`] endpoints) keep
//! a chain per Service port: a cascade of `numgen random mod (N-k) 0 … dnat` rules
//! (uniform, like iptables kube-proxy's `statistic` cascade), with affinity in named timed
//! sets. No anonymous sets anywhere: with an inline `numgen … vmap { … }` per Service the
//! kernel spent minutes committing a full load. Hairpin masquerading is one named set of
//! `ip . ip` pairs checked in postrouting.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use sha2::{Digest, Sha256};

use super::{LocalDns, NodeFacts};
use crate::services::ServiceKey;

/// The packet mark bit asking `nat-postrouting` to masquerade (upstream kube-proxy's bit).
pub const MASQUERADE_MARK: u32 = 0x4000;
/// Default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours, as upstream).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;
/// The chain every no-endpoint verdict map entry jumps to.
pub const REJECT_CHAIN: &str = "no-endpoints";
/// Services ports with up to this many endpoints (and no affinity) are balanced by the base
/// chains `<endpoint map>-1` … `-MAX_SLOTS` over endpoint map elements.
pub const MAX_SLOTS: usize = 64;

/// The dispatch maps of the table; every per-Service element lives in one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MapName {
    /// `ClusterIP . proto . port` → service chain.
    ServiceIps,
    /// `externalIP / LB ingress IP . proto . port` → service chain.
    ExternalIps,
    /// `proto . nodePort` (to any local address) → service chain.
    NodePorts,
    /// Like `ServiceIps`/`ExternalIps` but for ports without endpoints → reject.
    NoEndpointServices,
    /// Like `NodePorts` but for ports without endpoints → reject.
    NoEndpointNodePorts,
    /// A plain set (no verdicts) of `endpoint . endpoint` pairs: a packet from an
    /// endpoint to itself (after DNAT) is a pod reaching itself through its Service.
    Hairpin,
    /// `ClusterIP . proto . port . slot` → `endpoint ip . port`, read by the shared
    /// `cluster-endpoints-<N>` chains (`dnat … numgen random mod N map`).
    ClusterEndpoints,
    /// Like `ClusterEndpoints`, keyed by external / LB ingress IP.
    ExternalEndpoints,
    /// `proto . nodePort . slot` → `endpoint ip . port`.
    NodePortEndpoints,
}

impl MapName {
    pub const ALL: [MapName; 9] = [
        MapName::ServiceIps,
        MapName::ExternalIps,
        MapName::NodePorts,
        MapName::NoEndpointServices,
        MapName::NoEndpointNodePorts,
        MapName::Hairpin,
        MapName::ClusterEndpoints,
        MapName::ExternalEndpoints,
        MapName::NodePortEndpoints,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MapName::ServiceIps => "service-ips",
            MapName::ExternalIps => "external-ips",
            MapName::NodePorts => "service-nodeports",
            MapName::NoEndpointServices => "no-endpoint-services",
            MapName::NoEndpointNodePorts => "no-endpoint-nodeports",
            MapName::Hairpin => "hairpin-endpoints",
            MapName::ClusterEndpoints => "cluster-endpoints",
            MapName::ExternalEndpoints => "external-endpoints",
            MapName::NodePortEndpoints => "nodeport-endpoints",
        }
    }

    /// The body of the map's declaration (what goes between `{` and `;`).
    pub fn declaration(self) -> &'static str {
        match self {
            MapName::NodePorts | MapName::NoEndpointNodePorts => "type inet_proto . inet_service : verdict",
            MapName::Hairpin => "type ipv4_addr . ipv4_addr",
            // The slot is an integer, which `type` cannot name in a concatenation; the
            // modulus in `typeof` only gives the type (rules use any modulus).
            MapName::ClusterEndpoints | MapName::ExternalEndpoints => {
                "typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport"
            }
            MapName::NodePortEndpoints => "typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport",
            _ => "type ipv4_addr . inet_proto . inet_service : verdict",
        }
    }

    /// The endpoint map (and chain-name prefix) behind a dispatch map.
    pub fn endpoints(self) -> MapName {
        match self {
            MapName::NodePorts => MapName::NodePortEndpoints,
            MapName::ExternalIps => MapName::ExternalEndpoints,
            _ => MapName::ClusterEndpoints,
        }
    }

    /// The one rule of the base chain `<endpoint map>-<n>`, picking one of `n` slots.
    pub fn pick_rule(self, n: usize) -> String {
        let key = if self == MapName::NodePortEndpoints { "" } else { "ip daddr . " };
        format!("dnat ip to {key}meta l4proto . th dport . numgen random mod {n} map @{}", self.as_str())
    }

    /// A set (elements without verdicts) rather than a verdict map.
    pub fn is_set(self) -> bool {
        self == MapName::Hairpin
    }
}

/// One element of a dispatch map: which map and its key in nft syntax
/// (`10.96.0.10 . udp . 53`, `tcp . 30080`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ElementKey {
    pub map: MapName,
    pub key: String,
}

/// Everything in the table that exists because of one Service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRules {
    /// Session-affinity sets: name → timeout in seconds.
    pub sets: BTreeMap<String, u32>,
    /// Regular (non-base) chains: name → rules in nft syntax.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Map elements this Service claims: key → verdict (`goto svc-…`; empty in sets).
    pub elements: BTreeMap<ElementKey, String>,
}

impl ServiceRules {
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty() && self.chains.is_empty() && self.elements.is_empty()
    }
}

/// The whole ruleset: per-Service pieces (the base comes from [`base_ops`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub services: BTreeMap<ServiceKey, ServiceRules>,
}

/// One object of the shared skeleton, in the order it must be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseObject {
    /// A map, or a plain set when `set`; `declaration` as in [`MapName::declaration`].
    Map {
        name: &'static str,
        declaration: &'static str,
        set: bool,
    },
    /// A chain; `hook` is the base-chain spec (`type nat hook output priority -100 ; policy accept ;`).
    Chain {
        name: String,
        hook: Option<&'static str>,
    },
    Rule {
        chain: String,
        rule: String,
    },
}

/// The shared skeleton of the table: dispatch maps, hook chains, masquerading.
pub fn base_ops(node: &NodeFacts) -> Vec<BaseObject> {
    use BaseObject::{Chain, Map, Rule};
    let bridge = quote(&node.pod_bridge);
    let mut out: Vec<BaseObject> =
        MapName::ALL.iter().map(|m| Map { name: m.as_str(), declaration: m.declaration(), set: m.is_set() }).collect();
    let chains: [(&'static str, Option<&'static str>); 13] = [
        ("nat-prerouting", Some("type nat hook prerouting priority dstnat ; policy accept ;")),
        ("nat-output", Some("type nat hook output priority -100 ; policy accept ;")),
        ("nat-postrouting", Some("type nat hook postrouting priority srcnat ; policy accept ;")),
        // Rejects must not run in prerouting (not allowed there), so no-endpoint ports are
        // caught on the filter hooks, just before the default filter priority.
        ("filter-input", Some("type filter hook input priority -1 ; policy accept ;")),
        ("filter-forward", Some("type filter hook forward priority -1 ; policy accept ;")),
        ("filter-output", Some("type filter hook output priority -1 ; policy accept ;")),
        ("masquerading", None),
        (REJECT_CHAIN, None),
        ("cluster-ips", None),
        ("external-services", None),
        ("from-outside", None),
        ("from-host", None),
        ("host-services", None),
    ];
    out.extend(chains.into_iter().map(|(name, hook)| Chain { name: name.into(), hook }));
    // The slot pickers: `goto cluster-endpoints-3` picks one of slots 0..3 of the address
    // in `cluster-endpoints`. They are made here, once, because nft 1.0.6 cannot add a
    // rule naming such a `typeof` map to an existing table ("conflicting protocols
    // specified: ip vs. th" while it re-reads the map's type from the kernel).
    let pickers = [MapName::ClusterEndpoints, MapName::ExternalEndpoints, MapName::NodePortEndpoints];
    let slot_chains = || pickers.iter().flat_map(|m| (1..=MAX_SLOTS).map(move |n| (*m, n)));
    out.extend(slot_chains().map(|(m, n)| Chain { name: format!("{}-{n}", m.as_str()), hook: None }));
    let mark = format!("0x{MASQUERADE_MARK:x}");
    let unmark = format!("0x{:x}", !MASQUERADE_MARK);
    let rules: Vec<(&'static str, String)> = vec![
        // ClusterIPs are only ours for packets from our pods (another cluster on this
        // machine may reuse the same addresses); node ports and external IPs are reached
        // from anywhere.
        ("nat-prerouting", format!("iifname {bridge} jump cluster-ips")),
        ("nat-prerouting", format!("iifname {bridge} jump external-services")),
        ("nat-prerouting", format!("iifname != {bridge} jump from-outside")),
        ("nat-output", "jump from-host".into()),
        // Only connections we translated: a hairpin set entry like 127.0.0.1 . 127.0.0.1 must
        // not catch every loopback connection on the host.
        ("nat-postrouting", "ct status dnat ip saddr . ip daddr @hairpin-endpoints masquerade fully-random".into()),
        ("nat-postrouting", "jump masquerading".into()),
        ("masquerading", format!("meta mark & {mark} == 0 return")),
        ("masquerading", format!("meta mark set meta mark & {unmark}")),
        ("masquerading", "masquerade fully-random".into()),
        (REJECT_CHAIN, "reject".into()),
        ("cluster-ips", "ip daddr . meta l4proto . th dport vmap @service-ips".into()),
        ("external-services", "ip daddr . meta l4proto . th dport vmap @external-ips".into()),
        ("external-services", "fib daddr type local meta l4proto . th dport vmap @service-nodeports".into()),
        // Traffic from the host or from outside must be masqueraded so replies come back
        // through this node. The mark is set before the lookup (the service chains end in
        // a terminal dnat) and taken off again when nothing matched, unless someone had
        // already set it.
        ("from-outside", format!("meta mark & {mark} != 0 goto external-services")),
        ("from-outside", format!("meta mark set meta mark | {mark}")),
        ("from-outside", "jump external-services".into()),
        ("from-outside", format!("meta mark set meta mark & {unmark}")),
        ("from-host", format!("meta mark & {mark} != 0 goto host-services")),
        ("from-host", format!("meta mark set meta mark | {mark}")),
        ("from-host", "jump host-services".into()),
        ("from-host", format!("meta mark set meta mark & {unmark}")),
        ("host-services", "jump cluster-ips".into()),
        ("host-services", "jump external-services".into()),
        ("filter-input", "ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into()),
        (
            "filter-input",
            "ct state new fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports".into(),
        ),
        (
            "filter-forward",
            format!("ct state new iifname {bridge} ip daddr . meta l4proto . th dport vmap @no-endpoint-services"),
        ),
        ("filter-output", "ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into()),
        (
            "filter-output",
            "ct state new fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports".into(),
        ),
    ];
    out.extend(rules.into_iter().map(|(chain, rule)| Rule { chain: chain.into(), rule }));
    out.extend(slot_chains().map(|(m, n)| Rule { chain: format!("{}-{n}", m.as_str()), rule: m.pick_rule(n) }));
    out
}

/// Plans every Service. Slices are grouped by their Service once.
pub fn plan(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    node: &NodeFacts,
    dns: Option<&LocalDns>,
) -> Plan {
    let mut by_service: BTreeMap<ServiceKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        if let Some(key) = ServiceKey::of_slice(slice) {
            by_service.entry(key).or_default().push(slice);
        }
    }
    let mut plan = Plan::default();
    for svc in services {
        let key = ServiceKey::of_service(svc);
        let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        let rules = plan_service(&key, svc, slices, node, dns);
        if !rules.is_empty() {
            plan.services.insert(key, rules);
        }
    }
    plan
}

/// Plans one Service (empty rules for Services the proxy does not handle).
pub fn plan_service(
    key: &ServiceKey,
    svc: &Service,
    slices: &[&EndpointSlice],
    _node: &NodeFacts,
    dns: Option<&LocalDns>,
) -> ServiceRules {
    let mut out = ServiceRules::default();
    let Some(spec) = svc.spec.as_ref() else { return out };
    if spec.type_.as_deref() == Some("ExternalName") {
        return out;
    }
    // Headless (`None`), unset or non-IPv4 ClusterIPs: nothing to proxy.
    let Some(cluster_ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else {
        return out;
    };
    let node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let mut externals: BTreeSet<Ipv4Addr> =
        spec.external_ips.iter().flatten().filter_map(|ip| ip.parse().ok()).collect();
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
    externals.extend(ingress.into_iter().flatten().filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()));
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let is_dns = dns.filter(|d| &d.service == key);

    for sp in spec.ports.iter().flatten() {
        let Some(proto) = protocol(sp.protocol.as_deref()) else { continue };
        let Some(port) = valid_port(sp.port) else { continue };
        let ident = format!("{}/{}/{proto}/{port}", clean(&key.namespace), clean(&key.name));
        let svc_chain = format!("svc-{}-{ident}", short_hash(&[&key.namespace, &key.name, proto, &port.to_string()]));
        let cluster_key = ElementKey { map: MapName::ServiceIps, key: format!("{cluster_ip} . {proto} . {port}") };

        // The node's DNS server answers the cluster DNS Service's port 53 itself.
        if let Some(dns) = is_dns
            && port == 53
            && matches!(proto, "udp" | "tcp")
        {
            out.chains.insert(svc_chain.clone(), vec![format!("meta l4proto {proto} redirect to :{}", dns.port)]);
            out.elements.insert(cluster_key, format!("goto {svc_chain}"));
            continue;
        }

        let endpoints = select_endpoints(slices, sp, proto);
        let mut keys = vec![cluster_key];
        keys.extend(
            externals
                .iter()
                .map(|ip| ElementKey { map: MapName::ExternalIps, key: format!("{ip} . {proto} . {port}") }),
        );
        if node_ports && let Some(np) = sp.node_port.and_then(valid_port) {
            keys.push(ElementKey { map: MapName::NodePorts, key: format!("{proto} . {np}") });
        }

        if endpoints.is_empty() {
            for k in keys {
                let map = match k.map {
                    MapName::NodePorts => MapName::NoEndpointNodePorts,
                    _ => MapName::NoEndpointServices,
                };
                out.elements.insert(ElementKey { map, key: k.key }, format!("goto {REJECT_CHAIN}"));
            }
            continue;
        }

        for (ip, _) in &endpoints {
            out.elements.insert(ElementKey { map: MapName::Hairpin, key: format!("{ip} . {ip}") }, String::new());
        }
        let n = endpoints.len();
        if affinity.is_none() && n <= MAX_SLOTS {
            // Only map elements change when endpoints do: each way in goes to the base
            // chain for N endpoints, which picks slot `numgen random mod N` of its address
            // in the endpoint map.
            for k in keys {
                let map = k.map.endpoints();
                for (slot, (ip, ep_port)) in endpoints.iter().enumerate() {
                    let slot_key = ElementKey { map, key: format!("{} . {slot}", k.key) };
                    out.elements.insert(slot_key, format!("{ip} . {ep_port}"));
                }
                out.elements.insert(k, format!("goto {}-{n}", map.as_str()));
            }
            continue;
        }

        // ClientIP affinity, or more endpoints than slot chains: a chain per Service port
        // with a cascade of `numgen random mod (N-k) 0` picks (affinity: each recording
        // the client in the endpoint's timed set, after the sticky rules).
        let mut svc_rules = Vec::new();
        let mut picks = Vec::new();
        for (k, (ip, ep_port)) in endpoints.iter().enumerate() {
            let dnat = format!("meta l4proto {proto} dnat to {ip}:{ep_port}");
            // Rule k takes 1/(N-k) of what rules 0..k left: each endpoint gets 1/N.
            let pick = if k + 1 < n { format!("numgen random mod {} 0 ", n - k) } else { String::new() };
            let Some(timeout) = affinity else {
                picks.push(format!("{pick}{dnat}"));
                continue;
            };
            let set = format!(
                "aff-{}",
                short_hash(&[
                    &key.namespace,
                    &key.name,
                    proto,
                    &port.to_string(),
                    &format!("{ip}:{ep_port}/{timeout}")
                ])
            );
            svc_rules.push(format!("ip saddr @{set} update @{set} {{ ip saddr }} {dnat}"));
            picks.push(format!("{pick}update @{set} {{ ip saddr }} {dnat}"));
            out.sets.insert(set, timeout);
        }
        svc_rules.extend(picks);
        out.chains.insert(svc_chain.clone(), svc_rules);
        for k in keys {
            out.elements.insert(k, format!("goto {svc_chain}"));
        }
    }
    out
}

/// The endpoints (ip, port) for one Service port, sorted: the ready ones, or, when none
/// is ready, the serving-and-terminating ones (upstream's fallback so connections keep
/// working during a rollout's last moments).
fn select_endpoints(slices: &[&EndpointSlice], sp: &ServicePort, proto: &str) -> Vec<(Ipv4Addr, u16)> {
    let want_name = sp.name.as_deref().unwrap_or("");
    let mut ready = BTreeSet::new();
    let mut terminating = BTreeSet::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        // Slices already resolve named targetPorts: match on the Service port's name.
        let Some(port) = slice.ports.iter().flatten().find_map(|p| {
            (p.name.as_deref().unwrap_or("") == want_name && protocol(p.protocol.as_deref()) == Some(proto))
                .then_some(p.port.and_then(valid_port))
                .flatten()
        }) else {
            continue;
        };
        for ep in &slice.endpoints {
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<Ipv4Addr>().ok()) else { continue };
            let cond = ep.conditions.as_ref();
            let is_ready = cond.and_then(|c| c.ready).unwrap_or(true);
            let serving = cond.and_then(|c| c.serving).unwrap_or(is_ready);
            let is_terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
            if is_ready {
                ready.insert((ip, port));
            } else if serving && is_terminating {
                terminating.insert((ip, port));
            }
        }
    }
    if ready.is_empty() { terminating.into_iter().collect() } else { ready.into_iter().collect() }
}

/// The nft name of a Service/slice protocol (`None`: one we do not proxy).
fn protocol(p: Option<&str>) -> Option<&'static str> {
    match p.unwrap_or("TCP") {
        "TCP" => Some("tcp"),
        "UDP" => Some("udp"),
        "SCTP" => Some("sctp"),
        _ => None,
    }
}

fn valid_port(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p != 0)
}

/// A name part safe in an nft identifier: API names are DNS labels already, but the
/// planner must not trust its input, and the hash beside it keeps names unique anyway.
fn clean(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.').take(63).collect()
}

/// 8 hex digits of SHA-256 over the parts (NUL-separated so `a/bc` ≠ `ab/c`).
fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..4])
}

/// An interface name as an nft string literal (interface names cannot contain quotes,
/// but strip them so a bad config cannot break the script's syntax).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).collect::<String>())
}
