//! The record index: what the cluster zone contains, built by pure functions from the
//! Services and EndpointSlices and queried by [`super::answer`].
//!
//! The index is keyed by Service (`"<svc>.<ns>"`, lowercase) rather than by full record
//! name: every name of the zone is derived from one Service (its own name, its port SRV
//! names, its headless endpoints), so a change to one Service replaces exactly one entry
//! plus its reverse (PTR) entries. That keeps a patch cheap at 10,000 Services: the maps
//! are cloned with `Arc` values (pointer copies, no record data), then the changed
//! entries are swapped in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::services::ServiceKey;

/// One named (or unnamed) port, lowercase, as SRV names spell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Empty for an unnamed port (which gets no SRV record).
    pub name: String,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub port: u16,
}

/// One address of a headless Service's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    /// The pod's `hostname` when it set one with a matching `subdomain`.
    pub hostname: Option<String>,
    /// The label naming this address under the Service: the hostname, or the address
    /// with dashes (`10-0-0-1`; IPv6 colons become dashes too).
    pub label: String,
    /// The ports of the slice this endpoint came from (headless SRV uses endpoint ports).
    pub ports: Arc<[Port]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A Service with virtual IPs (possibly none yet).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: names resolve to the endpoints.
    Headless,
    /// `type: ExternalName`: a CNAME to this name.
    ExternalName(Name),
}

/// Everything the zone says about one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub kind: Kind,
    /// The Service's own ports (SRV of a ClusterIP Service).
    pub ports: Vec<Port>,
    /// Published endpoint addresses of a headless Service (ready ones, or all with
    /// `publishNotReadyAddresses`); empty for other kinds.
    pub endpoints: Vec<Endpoint>,
}

/// A reverse record: `ip` names `target` (fully qualified), owned by one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrTarget {
    pub owner: Arc<str>,
    pub target: Name,
}

/// The record index of the cluster zone.
#[derive(Debug, Clone)]
pub struct Index {
    /// The cluster domain, lowercase, without the trailing dot (`cluster.local`).
    pub domain: Arc<str>,
    /// The same, as a fully qualified name.
    pub domain_name: Name,
    /// `"<svc>.<ns>"` → entry.
    pub services: HashMap<Arc<str>, Arc<ServiceEntry>>,
    /// Namespaces with at least one Service (so `<ns>.svc.<domain>` exists).
    pub namespaces: HashMap<Arc<str>, usize>,
    pub ptr: HashMap<IpAddr, Arc<[PtrTarget]>>,
    /// Bumped on every change (the SOA serial).
    pub serial: u32,
    /// False until the first full build: until then the zone answers SERVFAIL rather than
    /// claiming names do not exist.
    pub ready: bool,
}

/// One Service of a patch: its key and, unless it was deleted, the Service and its slices.
pub type Patch<'a> = (ServiceKey, Option<(&'a Service, Vec<&'a EndpointSlice>)>);

/// The map key of a Service: `"<svc>.<ns>"`, lowercase, i.e. the labels its DNS name
/// starts with.
pub fn service_key(namespace: &str, name: &str) -> String {
    format!("{name}.{namespace}").to_ascii_lowercase()
}

/// The address with its dots or colons replaced by dashes, as a DNS label.
pub fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

impl Index {
    /// An empty, not yet ready index (before the first lists arrive).
    pub fn empty(domain: &str) -> Index {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        // A domain that is not a valid name falls back to the root; `start` validates it.
        let domain_name = Name::from_ascii(format!("{domain}.")).unwrap_or_else(|_| Name::root());
        Index {
            domain: domain.into(),
            domain_name,
            services: HashMap::new(),
            namespaces: HashMap::new(),
            ptr: HashMap::new(),
            serial: 1,
            ready: false,
        }
    }

    /// The index of all `services` and `slices`.
    pub fn build(domain: &str, services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Index {
        let mut by_service: HashMap<ServiceKey, Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
            if let Some(key) = ServiceKey::of_slice(slice) {
                by_service.entry(key).or_default().push(slice);
            }
        }
        let mut index = Index::empty(domain);
        index.ready = true;
        for svc in services {
            let key = ServiceKey::of_service(svc);
            let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or_default();
            if let Some(entry) = entry_of(svc, slices) {
                index.insert(&key, entry);
            }
        }
        index
    }

    /// A copy of the index with the given Services replaced: `(key, Some((service, its
    /// slices)))` sets one, `(key, None)` removes it (deleted Service).
    pub fn patched(&self, changes: &[Patch<'_>]) -> Index {
        let mut next = self.clone();
        next.serial = next.serial.wrapping_add(1);
        for (key, now) in changes {
            next.remove(key);
            if let Some((svc, slices)) = now
                && let Some(entry) = entry_of(svc, slices)
            {
                next.insert(key, entry);
            }
        }
        next
    }

    /// The entry of `"<svc>.<ns>"` (lowercase).
    pub fn service(&self, key: &str) -> Option<&ServiceEntry> {
        self.services.get(key).map(|e| &**e)
    }

    fn fqdn(&self, labels: &str) -> Option<Name> {
        Name::from_ascii(format!("{labels}.svc.{}.", self.domain)).ok()
    }

    fn insert(&mut self, key: &ServiceKey, entry: ServiceEntry) {
        let owner: Arc<str> = service_key(&key.namespace, &key.name).into();
        let mut reverse: Vec<(IpAddr, Name)> = Vec::new();
        match &entry.kind {
            Kind::ClusterIp(ips) => {
                if let Some(name) = self.fqdn(&owner) {
                    reverse.extend(ips.iter().map(|ip| (*ip, name.clone())));
                }
            }
            Kind::Headless => {
                for ep in &entry.endpoints {
                    if let Some(name) = self.fqdn(&format!("{}.{owner}", ep.label)) {
                        reverse.push((ep.ip, name));
                    }
                }
            }
            Kind::ExternalName(_) => {}
        }
        for (ip, target) in reverse {
            let mut list: Vec<PtrTarget> = self.ptr.get(&ip).map(|l| l.to_vec()).unwrap_or_default();
            if !list.iter().any(|p| p.target == target) {
                list.push(PtrTarget { owner: owner.clone(), target });
            }
            self.ptr.insert(ip, list.into());
        }
        *self.namespaces.entry(key.namespace.to_ascii_lowercase().into()).or_default() += 1;
        self.services.insert(owner, Arc::new(entry));
    }

    fn remove(&mut self, key: &ServiceKey) {
        let owner = service_key(&key.namespace, &key.name);
        let Some(old) = self.services.remove(owner.as_str()) else { return };
        let ips: Vec<IpAddr> = match &old.kind {
            Kind::ClusterIp(ips) => ips.clone(),
            Kind::Headless => old.endpoints.iter().map(|e| e.ip).collect(),
            Kind::ExternalName(_) => Vec::new(),
        };
        for ip in ips {
            let Some(list) = self.ptr.get(&ip) else { continue };
            let kept: Vec<PtrTarget> = list.iter().filter(|p| *p.owner != *owner).cloned().collect();
            if kept.is_empty() {
                self.ptr.remove(&ip);
            } else {
                self.ptr.insert(ip, kept.into());
            }
        }
        let ns = key.namespace.to_ascii_lowercase();
        if let Some(count) = self.namespaces.get_mut(ns.as_str()) {
            *count -= 1;
            if *count == 0 {
                self.namespaces.remove(ns.as_str());
            }
        }
    }
}

/// What the zone says about one Service; `None` for a Service that has no DNS name (no
/// namespace or name, which the API does not allow, or an invalid ExternalName).
pub fn entry_of(svc: &Service, slices: &[&EndpointSlice]) -> Option<ServiceEntry> {
    let meta = &svc.metadata;
    if meta.name.as_deref().unwrap_or_default().is_empty() || meta.namespace.as_deref().unwrap_or_default().is_empty() {
        return None;
    }
    let spec = svc.spec.as_ref();
    let ports: Vec<Port> = spec
        .and_then(|s| s.ports.as_ref())
        .map(|ports| ports.iter().filter_map(|p| port(p.name.as_deref(), p.protocol.as_deref(), p.port)).collect())
        .unwrap_or_default();
    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        let target = spec.and_then(|s| s.external_name.as_deref()).unwrap_or_default().trim_end_matches('.');
        let name = Name::from_ascii(format!("{target}.")).ok().filter(|_| !target.is_empty());
        let Some(name) = name else {
            tracing::debug!(service = ?meta.name, namespace = ?meta.namespace, "externalName is not a valid name");
            return None;
        };
        return Some(ServiceEntry { kind: Kind::ExternalName(name), ports, endpoints: Vec::new() });
    }
    let mut ips: Vec<&str> =
        spec.and_then(|s| s.cluster_ips.as_ref()).map(|v| v.iter().map(String::as_str).collect()).unwrap_or_default();
    if ips.is_empty()
        && let Some(ip) = spec.and_then(|s| s.cluster_ip.as_deref())
    {
        ips.push(ip);
    }
    if ips.first().is_some_and(|ip| ip.eq_ignore_ascii_case("none")) {
        let all = spec.and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
        return Some(ServiceEntry { kind: Kind::Headless, ports, endpoints: endpoints(slices, all) });
    }
    let ips = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
    Some(ServiceEntry { kind: Kind::ClusterIp(ips), ports, endpoints: Vec::new() })
}

fn port(name: Option<&str>, protocol: Option<&str>, number: i32) -> Option<Port> {
    Some(Port {
        name: name.unwrap_or_default().to_ascii_lowercase(),
        protocol: protocol.unwrap_or("TCP").to_ascii_lowercase(),
        port: u16::try_from(number).ok()?,
    })
}

/// The published addresses of a headless Service's slices, each address once (an endpoint
/// may sit in two slices while the controller moves it).
fn endpoints(slices: &[&EndpointSlice], include_not_ready: bool) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    for slice in slices {
        let ports: Arc<[Port]> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| port(p.name.as_deref(), p.protocol.as_deref(), p.port?))
            .collect::<Vec<_>>()
            .into();
        for ep in &slice.endpoints {
            // A missing condition means "unknown", which consumers must read as ready.
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready && !include_not_ready {
                continue;
            }
            let hostname = ep.hostname.as_deref().filter(|h| valid_label(h)).map(str::to_ascii_lowercase);
            for addr in &ep.addresses {
                let Ok(ip) = addr.parse::<IpAddr>() else { continue };
                if out.iter().any(|e| e.ip == ip) {
                    continue;
                }
                let label = hostname.clone().unwrap_or_else(|| dashed(ip));
                out.push(Endpoint { ip, hostname: hostname.clone(), label, ports: ports.clone() });
            }
        }
    }
    out
}

fn valid_label(label: &str) -> bool {
    !label.is_empty() && label.len() <= 63 && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::tests::{headless, service, slice};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn entries_by_kind() {
        struct Case {
            what: &'static str,
            svc: Service,
            slices: Vec<EndpointSlice>,
            want: Option<Kind>,
            endpoints: Vec<(&'static str, &'static str)>,
        }
        let cases = [
            Case {
                what: "cluster ip",
                svc: service("ns", "web", "10.96.0.10"),
                slices: vec![],
                want: Some(Kind::ClusterIp(vec![ip("10.96.0.10")])),
                endpoints: vec![],
            },
            Case {
                what: "dual stack",
                svc: crate::dns::tests::svc_json(
                    serde_json::json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::a"]}}),
                ),
                slices: vec![],
                want: Some(Kind::ClusterIp(vec![ip("10.96.0.10"), ip("fd00::a")])),
                endpoints: vec![],
            },
            Case {
                what: "headless: ready endpoints, hostname or dashed label, each address once",
                svc: headless("ns", "db", false),
                slices: vec![
                    slice(
                        "ns",
                        "db",
                        "a",
                        &[
                            ("10.0.0.1", Some("db-0"), Some(true)),
                            ("10.0.0.2", None, None),
                            ("10.0.0.3", None, Some(false)),
                        ],
                    ),
                    slice("ns", "db", "b", &[("10.0.0.1", Some("db-0"), Some(true))]),
                ],
                want: Some(Kind::Headless),
                endpoints: vec![("10.0.0.1", "db-0"), ("10.0.0.2", "10-0-0-2")],
            },
            Case {
                what: "headless publishing not-ready addresses",
                svc: headless("ns", "db", true),
                slices: vec![slice("ns", "db", "a", &[("10.0.0.3", None, Some(false))])],
                want: Some(Kind::Headless),
                endpoints: vec![("10.0.0.3", "10-0-0-3")],
            },
            Case {
                what: "external name",
                svc: crate::dns::tests::external("ns", "ext", "Example.COM."),
                slices: vec![],
                want: Some(Kind::ExternalName(Name::from_ascii("Example.COM.").unwrap())),
                endpoints: vec![],
            },
            Case {
                what: "bad external name",
                svc: crate::dns::tests::external("ns", "ext", ""),
                slices: vec![],
                want: None,
                endpoints: vec![],
            },
        ];
        for case in cases {
            let slices: Vec<&EndpointSlice> = case.slices.iter().collect();
            let got = entry_of(&case.svc, &slices);
            assert_eq!(got.as_ref().map(|e| e.kind.clone()), case.want, "{}", case.what);
            let eps: Vec<(String, String)> = got
                .map(|e| e.endpoints.iter().map(|e| (e.ip.to_string(), e.label.clone())).collect())
                .unwrap_or_default();
            let want: Vec<(String, String)> =
                case.endpoints.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
            assert_eq!(eps, want, "{}", case.what);
        }
    }

    #[test]
    fn a_patch_equals_a_rebuild() {
        let web = Arc::new(service("shop", "web", "10.96.0.10"));
        let db = Arc::new(headless("shop", "db", false));
        let db_slice = Arc::new(slice("shop", "db", "a", &[("10.0.0.1", Some("db-0"), Some(true))]));
        let other = Arc::new(service("other", "api", "10.96.0.11"));
        let before =
            Index::build("cluster.local", &[web.clone(), db.clone(), other.clone()], std::slice::from_ref(&db_slice));
        assert_eq!(before.namespaces.len(), 2);
        assert_eq!(before.ptr[&ip("10.0.0.1")][0].target.to_ascii(), "db-0.db.shop.svc.cluster.local.");

        // web moves to another IP, db gains an endpoint, api is deleted.
        let web2 = Arc::new(service("shop", "web", "10.96.0.20"));
        let db_slice2 =
            Arc::new(slice("shop", "db", "a", &[("10.0.0.1", Some("db-0"), Some(true)), ("10.0.0.2", None, None)]));
        let after = before.patched(&[
            (ServiceKey::new("shop", "web"), Some((&*web2, vec![]))),
            (ServiceKey::new("shop", "db"), Some((&*db, vec![&*db_slice2]))),
            (ServiceKey::new("other", "api"), None),
        ]);
        let rebuilt = Index::build("cluster.local", &[web2, db], &[db_slice2]);
        assert_eq!(after.services, rebuilt.services);
        assert_eq!(after.namespaces, rebuilt.namespaces);
        assert_eq!(after.ptr, rebuilt.ptr);
        assert!(after.serial > before.serial);
        assert!(!after.ptr.contains_key(&ip("10.96.0.10")) && !after.ptr.contains_key(&ip("10.96.0.11")));
        // The old index is untouched (queries in flight keep reading it).
        assert!(before.service("api.other").is_some());
    }

    #[test]
    fn shared_endpoint_ips_keep_both_reverse_names() {
        let a = Arc::new(headless("ns", "a", false));
        let b = Arc::new(headless("ns", "b", false));
        let sa = Arc::new(slice("ns", "a", "x", &[("10.0.0.1", None, None)]));
        let sb = Arc::new(slice("ns", "b", "y", &[("10.0.0.1", None, None)]));
        let index = Index::build("cluster.local", &[a, b.clone()], &[sa, sb.clone()]);
        assert_eq!(index.ptr[&ip("10.0.0.1")].len(), 2);
        let index = index.patched(&[(ServiceKey::new("ns", "a"), None)]);
        let names: Vec<String> = index.ptr[&ip("10.0.0.1")].iter().map(|p| p.target.to_ascii()).collect();
        assert_eq!(names, ["10-0-0-1.b.ns.svc.cluster.local."]);
    }
}
