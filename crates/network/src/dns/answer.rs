//! Answers: one question against the [`Index`], as the Kubernetes DNS specification (and
//! CoreDNS's `kubernetes` plugin, `pods insecure`) defines them. Pure: the server layer
//! turns a [`Resolution`] into a message, or forwards the question upstream.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::index::{Endpoint, Index, Kind, Port, ServiceEntry};

/// The TTL of every record of the zone (CoreDNS's default): short, because Services and
/// endpoints change at any time and there is no notification to caches.
pub const TTL: u32 = 5;

/// How deep an ExternalName pointing at another name of the zone is followed.
const MAX_CNAME_HOPS: usize = 8;

/// What to do with one question.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Answered from the index (authoritative).
    Local(Answer),
    /// Not ours: relay the question to the upstream resolvers unchanged.
    Forward,
    /// An ExternalName whose target is outside the zone: answer `cnames` first, then the
    /// target's records of the same type as the upstream resolvers give them (CoreDNS
    /// chases these too, so that stub resolvers which do not follow CNAMEs work).
    Chase { cnames: Vec<Record>, target: Name },
}

/// The sections of a local answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Answer {
    fn records(answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
        Answer { rcode: ResponseCode::NoError, answers, authority: Vec::new(), additionals }
    }
    fn nodata(index: &Index) -> Answer {
        Answer {
            rcode: ResponseCode::NoError,
            answers: Vec::new(),
            authority: vec![soa(index)],
            additionals: Vec::new(),
        }
    }
    fn nxdomain(index: &Index) -> Answer {
        Answer {
            rcode: ResponseCode::NXDomain,
            answers: Vec::new(),
            authority: vec![soa(index)],
            additionals: Vec::new(),
        }
    }
    fn servfail() -> Answer {
        Answer { rcode: ResponseCode::ServFail, answers: Vec::new(), authority: Vec::new(), additionals: Vec::new() }
    }
    /// Empty answers mean NODATA: the SOA goes in authority for negative caching.
    fn or_nodata(self, index: &Index) -> Answer {
        if self.answers.is_empty() { Answer::nodata(index) } else { self }
    }
}

/// Resolves `qname`/`qtype` against the index.
pub fn resolve(index: &Index, qname: &Name, qtype: RecordType) -> Resolution {
    resolve_hops(index, qname, qtype, MAX_CNAME_HOPS)
}

fn resolve_hops(index: &Index, qname: &Name, qtype: RecordType, hops: usize) -> Resolution {
    let labels: Vec<String> = qname.iter().map(|l| String::from_utf8_lossy(l).to_ascii_lowercase()).collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    if let Some(rest) = strip_suffix(&labels, index.domain.split('.').filter(|l| !l.is_empty())) {
        if !index.ready {
            return Resolution::Local(Answer::servfail());
        }
        return zone(index, qname, qtype, rest, hops);
    }
    reverse(index, qname, qtype, &labels)
}

/// The labels before `suffix`, if `labels` ends with it.
fn strip_suffix<'a, 'b>(
    labels: &'a [&'a str],
    suffix: impl DoubleEndedIterator<Item = &'b str>,
) -> Option<&'a [&'a str]> {
    let mut end = labels.len();
    for want in suffix.rev() {
        end = end.checked_sub(1)?;
        if labels[end] != want {
            return None;
        }
    }
    Some(&labels[..end])
}

/// A name inside the cluster domain; `rest` are its labels before the domain.
fn zone(index: &Index, qname: &Name, qtype: RecordType, rest: &[&str], hops: usize) -> Resolution {
    let answer = match rest {
        [] if qtype == RecordType::SOA => Answer::records(vec![soa(index)], Vec::new()),
        [] | ["svc"] | ["pod"] | [_, "pod"] => Answer::nodata(index),
        [ns, "svc"] if index.namespaces.contains_key(*ns) => Answer::nodata(index),
        [svc, ns, "svc"] => match index.service(&format!("{svc}.{ns}")) {
            Some(entry) => return service(index, qname, qtype, entry, hops),
            None => Answer::nxdomain(index),
        },
        [label, svc, ns, "svc"] => match index.service(&format!("{svc}.{ns}")) {
            Some(entry) => endpoint_name(index, qname, qtype, entry, label),
            None => Answer::nxdomain(index),
        },
        [port, proto, svc, ns, "svc"] => match index.service(&format!("{svc}.{ns}")) {
            Some(entry) => port_srv(index, qname, qtype, entry, &format!("{svc}.{ns}"), port, proto),
            None => Answer::nxdomain(index),
        },
        [dashed, _ns, "pod"] => match undash(dashed) {
            Some(ip) => address_records(qname, qtype, [ip]).or_nodata(index),
            None => Answer::nxdomain(index),
        },
        _ => Answer::nxdomain(index),
    };
    Resolution::Local(answer)
}

/// `<svc>.<ns>.svc.<domain>`.
fn service(index: &Index, qname: &Name, qtype: RecordType, entry: &ServiceEntry, hops: usize) -> Resolution {
    let answer = match &entry.kind {
        Kind::ExternalName(target) => {
            let cname = Record::from_rdata(qname.clone(), TTL, RData::CNAME(CNAME(target.clone())));
            if qtype == RecordType::CNAME {
                return Resolution::Local(Answer::records(vec![cname], Vec::new()));
            }
            if !index.domain_name.zone_of(target) {
                return Resolution::Chase { cnames: vec![cname], target: target.clone() };
            }
            // A target inside the zone is answered here, following at most a few hops.
            let Some(hops) = hops.checked_sub(1) else { return Resolution::Local(Answer::servfail()) };
            return match resolve_hops(index, target, qtype, hops) {
                Resolution::Local(mut answer) => {
                    answer.answers.insert(0, cname);
                    Resolution::Local(answer)
                }
                Resolution::Chase { mut cnames, target } => {
                    cnames.insert(0, cname);
                    Resolution::Chase { cnames, target }
                }
                Resolution::Forward => Resolution::Local(Answer::servfail()),
            };
        }
        Kind::ClusterIp(ips) => match qtype {
            RecordType::SRV => {
                let named: Vec<&Port> = entry.ports.iter().filter(|p| !p.name.is_empty()).collect();
                let target = qname.to_lowercase();
                let weight = weight(named.len());
                let answers = named
                    .iter()
                    .map(|p| {
                        Record::from_rdata(qname.clone(), TTL, RData::SRV(SRV::new(0, weight, p.port, target.clone())))
                    })
                    .collect();
                let extra = if named.is_empty() {
                    Vec::new()
                } else {
                    address_records(&target, RecordType::ANY, ips.iter().copied()).answers
                };
                Answer::records(answers, extra)
            }
            _ => address_records(qname, qtype, ips.iter().copied()),
        },
        // The spec (kubernetes/dns#245, matching kube-dns and CoreDNS): a headless
        // Service without published endpoints has no name at all.
        Kind::Headless if entry.endpoints.is_empty() => return Resolution::Local(Answer::nxdomain(index)),
        Kind::Headless => match qtype {
            RecordType::SRV => {
                let srv: Vec<(&Endpoint, &Port)> = entry
                    .endpoints
                    .iter()
                    .flat_map(|e| e.ports.iter().filter(|p| !p.name.is_empty()).map(move |p| (e, p)))
                    .collect();
                endpoint_srv(qname, &srv)
            }
            _ => address_records(qname, qtype, entry.endpoints.iter().map(|e| e.ip)),
        },
    };
    Resolution::Local(answer.or_nodata(index))
}

/// `<hostname or dashed ip>.<svc>.<ns>.svc.<domain>` of a headless Service, or the empty
/// non-terminal `_tcp.<svc>...` of a port SRV name.
fn endpoint_name(index: &Index, qname: &Name, qtype: RecordType, entry: &ServiceEntry, label: &str) -> Answer {
    if let Some(proto) = label.strip_prefix('_') {
        let ports: Box<dyn Iterator<Item = &Port>> = match entry.kind {
            Kind::Headless => Box::new(entry.endpoints.iter().flat_map(|e| e.ports.iter())),
            _ => Box::new(entry.ports.iter()),
        };
        let exists = ports.into_iter().any(|p| !p.name.is_empty() && p.protocol == proto);
        return if exists { Answer::nodata(index) } else { Answer::nxdomain(index) };
    }
    if entry.kind != Kind::Headless {
        return Answer::nxdomain(index);
    }
    let ips: Vec<IpAddr> = entry.endpoints.iter().filter(|e| e.label == label).map(|e| e.ip).collect();
    if ips.is_empty() {
        return Answer::nxdomain(index);
    }
    address_records(qname, qtype, ips).or_nodata(index)
}

/// `_<port>._<proto>.<svc>.<ns>.svc.<domain>`.
fn port_srv(
    index: &Index,
    qname: &Name,
    qtype: RecordType,
    entry: &ServiceEntry,
    key: &str,
    port: &str,
    proto: &str,
) -> Answer {
    let (Some(port), Some(proto)) = (port.strip_prefix('_'), proto.strip_prefix('_')) else {
        return Answer::nxdomain(index);
    };
    let matches = |p: &Port| !p.name.is_empty() && p.name == port && p.protocol == proto;
    let answer = match &entry.kind {
        Kind::ClusterIp(ips) => {
            let found: Vec<&Port> = entry.ports.iter().filter(|p| matches(p)).collect();
            if found.is_empty() {
                return Answer::nxdomain(index);
            }
            let Ok(target) = Name::from_ascii(format!("{key}.svc.{}.", index.domain)) else {
                return Answer::servfail();
            };
            let weight = weight(found.len());
            let answers = found
                .iter()
                .map(|p| {
                    Record::from_rdata(qname.clone(), TTL, RData::SRV(SRV::new(0, weight, p.port, target.clone())))
                })
                .collect();
            Answer::records(answers, address_records(&target, RecordType::ANY, ips.iter().copied()).answers)
        }
        Kind::Headless => {
            let srv: Vec<(&Endpoint, &Port)> = entry
                .endpoints
                .iter()
                .flat_map(|e| e.ports.iter().filter(|p| matches(p)).map(move |p| (e, p)))
                .collect();
            if srv.is_empty() {
                return Answer::nxdomain(index);
            }
            let Ok(svc_name) = Name::from_ascii(format!("{key}.svc.{}.", index.domain)) else {
                return Answer::servfail();
            };
            endpoint_srv_under(qname, &svc_name, &srv)
        }
        Kind::ExternalName(_) => return Answer::nxdomain(index),
    };
    if qtype == RecordType::SRV || qtype == RecordType::ANY { answer } else { Answer::nodata(index) }
}

/// SRV records of headless endpoints under the Service name `qname`.
fn endpoint_srv(qname: &Name, srv: &[(&Endpoint, &Port)]) -> Answer {
    endpoint_srv_under(qname, &qname.to_lowercase(), srv)
}

/// SRV records whose targets are `<label>.<svc_name>`, with the targets' addresses as
/// additional records so clients need no second query.
fn endpoint_srv_under(qname: &Name, svc_name: &Name, srv: &[(&Endpoint, &Port)]) -> Answer {
    let weight = weight(srv.len());
    let mut answers = Vec::with_capacity(srv.len());
    let mut extra: Vec<Record> = Vec::new();
    for (ep, port) in srv {
        let Ok(target) = Name::from_ascii(&ep.label).and_then(|l| l.append_domain(svc_name)) else { continue };
        answers.push(Record::from_rdata(
            qname.clone(),
            TTL,
            RData::SRV(SRV::new(0, weight, port.port, target.clone())),
        ));
        let addr = address_records(&target, RecordType::ANY, [ep.ip]).answers;
        for record in addr {
            if !extra.contains(&record) {
                extra.push(record);
            }
        }
    }
    Answer::records(answers, extra)
}

/// Equal weights summing to about 100 (as CoreDNS spreads them).
fn weight(count: usize) -> u16 {
    u16::try_from(100 / count.max(1)).unwrap_or(1).max(1)
}

/// A/AAAA records of `ips` for `qtype` (both for ANY); empty for other types.
fn address_records(name: &Name, qtype: RecordType, ips: impl IntoIterator<Item = IpAddr>) -> Answer {
    let answers = ips
        .into_iter()
        .filter_map(|ip| match (ip, qtype) {
            (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => Some(RData::A(A(v4))),
            (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => Some(RData::AAAA(AAAA(v6))),
            _ => None,
        })
        .map(|rdata| Record::from_rdata(name.clone(), TTL, rdata))
        .collect();
    Answer::records(answers, Vec::new())
}

/// `1-2-3-4` → 1.2.3.4; `fd00--1` → fd00::1.
fn undash(label: &str) -> Option<IpAddr> {
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// PTR questions for addresses the index knows; everything else goes upstream (CoreDNS's
/// `fallthrough in-addr.arpa ip6.arpa`).
fn reverse(index: &Index, qname: &Name, qtype: RecordType, labels: &[&str]) -> Resolution {
    let Some(ip) = reverse_ip(labels) else { return Resolution::Forward };
    if !index.ready {
        return Resolution::Forward;
    }
    let Some(targets) = index.ptr.get(&ip) else { return Resolution::Forward };
    let answers = if qtype == RecordType::PTR || qtype == RecordType::ANY {
        targets.iter().map(|t| Record::from_rdata(qname.clone(), TTL, RData::PTR(PTR(t.target.clone())))).collect()
    } else {
        Vec::new()
    };
    Resolution::Local(Answer::records(answers, Vec::new()))
}

/// The address of a full `d.c.b.a.in-addr.arpa` or 32-nibble `ip6.arpa` name.
fn reverse_ip(labels: &[&str]) -> Option<IpAddr> {
    if let Some(octets) = strip_suffix(labels, ["in-addr", "arpa"].into_iter()) {
        let [d, c, b, a] = octets else { return None };
        let parse = |s: &str| if s.len() > 1 && s.starts_with('0') { None } else { s.parse::<u8>().ok() };
        return Some(IpAddr::V4(Ipv4Addr::new(parse(a)?, parse(b)?, parse(c)?, parse(d)?)));
    }
    let nibbles = strip_suffix(labels, ["ip6", "arpa"].into_iter())?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut value: u128 = 0;
    for nibble in nibbles.iter().rev() {
        let [digit] = nibble.as_bytes() else { return None };
        value = (value << 4) | u128::from(char::from(*digit).to_digit(16)?);
    }
    Some(IpAddr::V6(Ipv6Addr::from(value)))
}

/// The zone's SOA (for the apex question and, in authority, for negative answers).
pub fn soa(index: &Index) -> Record {
    let origin = &index.domain_name;
    let mname = Name::from_ascii("ns.dns").and_then(|n| n.append_domain(origin)).unwrap_or_else(|_| origin.clone());
    let rname = Name::from_ascii("hostmaster").and_then(|n| n.append_domain(origin)).unwrap_or_else(|_| origin.clone());
    let soa = SOA::new(mname, rname, index.serial, 7200, 1800, 86400, TTL);
    Record::from_rdata(origin.clone(), TTL, RData::SOA(soa))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::dns::tests::{external, headless, service, slice};

    fn fixture() -> Index {
        let services = [
            service("shop", "web", "10.96.0.10"),
            headless("shop", "db", false),
            external("shop", "ext", "example.com"),
            external("shop", "alias", "web.shop.svc.cluster.local"),
            headless("shop", "empty", false),
            crate::dns::tests::svc_json(serde_json::json!({
                "metadata": {"name": "v6", "namespace": "shop"},
                "spec": {"clusterIP": "fd00::10", "clusterIPs": ["fd00::10"]}
            })),
        ];
        let slices = [slice(
            "shop",
            "db",
            "a",
            &[("10.0.0.1", Some("db-0"), Some(true)), ("10.0.0.2", None, None), ("10.0.0.3", None, Some(false))],
        )];
        let services: Vec<_> = services.into_iter().map(Arc::new).collect();
        let slices: Vec<_> = slices.into_iter().map(Arc::new).collect();
        Index::build("cluster.local", &services, &slices)
    }

    /// A resolution as text: `rcode | answers | additionals`, or `forward` / `chase`.
    fn show(r: &Resolution) -> String {
        let rec = |rs: &[Record]| {
            rs.iter().map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data())).collect::<Vec<_>>().join(", ")
        };
        match r {
            Resolution::Forward => "forward".into(),
            Resolution::Chase { cnames, target } => format!("chase {} -> {target}", rec(cnames)),
            Resolution::Local(a) => {
                let soa = if a.authority.iter().any(|r| r.record_type() == RecordType::SOA) { " +soa" } else { "" };
                format!("{}{soa} | {} | {}", a.rcode, rec(&a.answers), rec(&a.additionals))
            }
        }
    }

    #[test]
    fn answers_by_the_specification() {
        let index = fixture();
        let z = "svc.cluster.local.";
        let cases: Vec<(String, RecordType, String)> = vec![
            (format!("web.shop.{z}"), RecordType::A, format!("No Error | web.shop.{z} A 10.96.0.10 | ")),
            (format!("WEB.Shop.{z}"), RecordType::A, format!("No Error | WEB.Shop.{z} A 10.96.0.10 | ")),
            (format!("web.shop.{z}"), RecordType::AAAA, "No Error +soa |  | ".into()),
            (format!("v6.shop.{z}"), RecordType::AAAA, format!("No Error | v6.shop.{z} AAAA fd00::10 | ")),
            (
                format!("web.shop.{z}"),
                RecordType::SRV,
                format!("No Error | web.shop.{z} SRV 0 100 80 web.shop.{z} | web.shop.{z} A 10.96.0.10"),
            ),
            (
                format!("_http._tcp.web.shop.{z}"),
                RecordType::SRV,
                format!("No Error | _http._tcp.web.shop.{z} SRV 0 100 80 web.shop.{z} | web.shop.{z} A 10.96.0.10"),
            ),
            (format!("_http._udp.web.shop.{z}"), RecordType::SRV, "Non-Existent Domain +soa |  | ".into()),
            (format!("_http._tcp.web.shop.{z}"), RecordType::A, "No Error +soa |  | ".into()),
            (format!("_tcp.web.shop.{z}"), RecordType::A, "No Error +soa |  | ".into()),
            (
                format!("db.shop.{z}"),
                RecordType::A,
                format!("No Error | db.shop.{z} A 10.0.0.1, db.shop.{z} A 10.0.0.2 | "),
            ),
            (
                format!("_http._tcp.db.shop.{z}"),
                RecordType::SRV,
                format!(
                    "No Error | _http._tcp.db.shop.{z} SRV 0 50 8080 db-0.db.shop.{z}, _http._tcp.db.shop.{z} SRV 0 50 8080 10-0-0-2.db.shop.{z} | db-0.db.shop.{z} A 10.0.0.1, 10-0-0-2.db.shop.{z} A 10.0.0.2"
                ),
            ),
            (format!("empty.shop.{z}"), RecordType::A, "Non-Existent Domain +soa |  | ".into()),
            (format!("db.shop.{z}"), RecordType::AAAA, "No Error +soa |  | ".into()),
            (format!("db-0.db.shop.{z}"), RecordType::A, format!("No Error | db-0.db.shop.{z} A 10.0.0.1 | ")),
            (format!("10-0-0-2.db.shop.{z}"), RecordType::A, format!("No Error | 10-0-0-2.db.shop.{z} A 10.0.0.2 | ")),
            (format!("10-0-0-3.db.shop.{z}"), RecordType::A, "Non-Existent Domain +soa |  | ".into()),
            (format!("db-1.db.shop.{z}"), RecordType::A, "Non-Existent Domain +soa |  | ".into()),
            (format!("x.web.shop.{z}"), RecordType::A, "Non-Existent Domain +soa |  | ".into()),
            (format!("ext.shop.{z}"), RecordType::A, format!("chase ext.shop.{z} CNAME example.com. -> example.com.")),
            (format!("ext.shop.{z}"), RecordType::CNAME, format!("No Error | ext.shop.{z} CNAME example.com. | ")),
            (
                format!("alias.shop.{z}"),
                RecordType::A,
                format!("No Error | alias.shop.{z} CNAME web.shop.{z}, web.shop.{z} A 10.96.0.10 | "),
            ),
            (format!("nope.shop.{z}"), RecordType::A, "Non-Existent Domain +soa |  | ".into()),
            (format!("shop.{z}"), RecordType::A, "No Error +soa |  | ".into()),
            (format!("other.{z}"), RecordType::A, "Non-Existent Domain +soa |  | ".into()),
            (
                "cluster.local.".into(),
                RecordType::SOA,
                "No Error | cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5 | "
                    .into(),
            ),
            ("a.b.cluster.local.".into(), RecordType::A, "Non-Existent Domain +soa |  | ".into()),
            (
                "10-1-2-3.any.pod.cluster.local.".into(),
                RecordType::A,
                "No Error | 10-1-2-3.any.pod.cluster.local. A 10.1.2.3 | ".into(),
            ),
            ("10-1-2-3.any.pod.cluster.local.".into(), RecordType::AAAA, "No Error +soa |  | ".into()),
            (
                "fd00--1.any.pod.cluster.local.".into(),
                RecordType::AAAA,
                "No Error | fd00--1.any.pod.cluster.local. AAAA fd00::1 | ".into(),
            ),
            ("bogus.any.pod.cluster.local.".into(), RecordType::A, "Non-Existent Domain +soa |  | ".into()),
            (
                "10.0.96.10.in-addr.arpa.".into(),
                RecordType::PTR,
                format!("No Error | 10.0.96.10.in-addr.arpa. PTR web.shop.{z} | "),
            ),
            (
                "1.0.0.10.in-addr.arpa.".into(),
                RecordType::PTR,
                format!("No Error | 1.0.0.10.in-addr.arpa. PTR db-0.db.shop.{z} | "),
            ),
            (
                "2.0.0.10.in-addr.arpa.".into(),
                RecordType::PTR,
                format!("No Error | 2.0.0.10.in-addr.arpa. PTR 10-0-0-2.db.shop.{z} | "),
            ),
            (
                "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.".into(),
                RecordType::PTR,
                format!(
                    "No Error | 0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. PTR v6.shop.{z} | "
                ),
            ),
            ("9.9.9.9.in-addr.arpa.".into(), RecordType::PTR, "forward".into()),
            ("example.com.".into(), RecordType::A, "forward".into()),
            ("local.".into(), RecordType::A, "forward".into()),
        ];
        for (name, qtype, want) in cases {
            let got = show(&resolve(&index, &Name::from_ascii(&name).unwrap(), qtype));
            assert_eq!(got, want, "{name} {qtype}");
        }
    }

    #[test]
    fn the_zone_is_servfail_until_the_first_build() {
        let index = Index::empty("cluster.local");
        let got = resolve(&index, &Name::from_ascii("web.shop.svc.cluster.local.").unwrap(), RecordType::A);
        assert_eq!(show(&got), "Server Failure |  | ");
        let got = resolve(&index, &Name::from_ascii("example.com.").unwrap(), RecordType::A);
        assert_eq!(got, Resolution::Forward);
    }

    #[test]
    fn reverse_names() {
        let ip = |s: &str| reverse_ip(&s.split('.').collect::<Vec<_>>());
        assert_eq!(ip("4.3.2.1.in-addr.arpa"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(ip("3.2.1.in-addr.arpa"), None);
        assert_eq!(ip("256.3.2.1.in-addr.arpa"), None);
        assert_eq!(ip("04.3.2.1.in-addr.arpa"), None);
        assert_eq!(ip("x.ip6.arpa"), None);
    }

    proptest::proptest! {
        /// Whatever the question, resolving never panics.
        #[test]
        fn any_name_resolves_without_panic(labels in proptest::collection::vec("[a-zA-Z0-9_-]{1,12}", 0..7), t in 0u16..300) {
            let index = fixture();
            let mut name = labels.join(".");
            name.push_str(".svc.cluster.local.");
            if let Ok(name) = Name::from_ascii(&name) {
                let _ = resolve(&index, &name, RecordType::from(t));
            }
        }
    }
}
