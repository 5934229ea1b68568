//! Unit tests of the planner, the script deltas (with a model of nft's rules about
//! references) and the run loop over a fake nft.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::planner::MAX_SLOTS;
use super::*;
use crate::services::ServiceKey;

pub(super) fn node() -> NodeFacts {
    NodeFacts {
        node_name: "n1".into(),
        node_ips: vec!["192.168.1.10".parse().unwrap()],
        pod_bridge: "rk1a2b3c4d".into(),
    }
}

pub(super) fn service(ns: &str, name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec})).unwrap()
}

/// A slice of `ns/svc` with one port (`name`, tcp) and endpoints `(ip, ready, serving, terminating)`.
pub(super) fn slice(
    ns: &str,
    svc: &str,
    suffix: &str,
    port: (&str, i32),
    eps: &[(&str, Option<bool>)],
) -> EndpointSlice {
    let endpoints: Vec<Value> =
        eps.iter().map(|(ip, ready)| json!({"addresses": [ip], "conditions": {"ready": ready}})).collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": format!("{svc}-{suffix}"),
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": port.0, "port": port.1, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

fn key(ns: &str, name: &str) -> ServiceKey {
    ServiceKey::new(ns, name)
}

fn plan_one(svc: &Service, slices: &[EndpointSlice], dns: Option<&LocalDns>) -> ServiceRules {
    let refs: Vec<&EndpointSlice> = slices.iter().collect();
    plan_service(&ServiceKey::of_service(svc), svc, &refs, &node(), dns)
}

fn web() -> Service {
    service(
        "shop",
        "web",
        json!({"type": "ClusterIP", "clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}),
    )
}

fn elements(rules: &ServiceRules) -> Vec<String> {
    rules.elements.iter().map(|(k, v)| format!("{} {} -> {v}", k.map.as_str(), k.key)).collect()
}

/// The `ip:port` endpoints a Service's ClusterIP ports balance over, in slot order (from
/// the endpoint map; affinity Services name them in their chain's dnat rules).
fn targets(rules: &ServiceRules) -> Vec<String> {
    let in_map = rules.elements.iter().filter(|(k, _)| k.map == MapName::ClusterEndpoints);
    let in_chains = rules.chains.values().flatten().filter(|r| !r.starts_with("ip saddr @"));
    in_map
        .map(|(_, v)| v.replace(" . ", ":"))
        .chain(in_chains.filter_map(|r| r.split("dnat to ").nth(1).map(String::from)))
        .collect()
}

#[test]
fn a_cluster_ip_balances_over_ready_endpoints() {
    let slices = [slice("shop", "web", "a", ("http", 8080), &[("10.0.0.2", Some(true)), ("10.0.0.1", None)])];
    let rules = plan_one(&web(), &slices, None);
    let text = render("t", &Applied::new(Plan { services: [(key("shop", "web"), rules)].into() }).create_ops());
    // Golden text: the ClusterIP goes to the base chain for 2 endpoints, which picks slot
    // `numgen random mod 2` (uniform) of that address in the endpoint map.
    let want = "\
add element ip t service-ips { 10.96.0.20 . tcp . 80 : goto cluster-endpoints-2 }
add element ip t hairpin-endpoints { 10.0.0.1 . 10.0.0.1 }
add element ip t hairpin-endpoints { 10.0.0.2 . 10.0.0.2 }
add element ip t cluster-endpoints { 10.96.0.20 . tcp . 80 . 0 : 10.0.0.1 . 8080 }
add element ip t cluster-endpoints { 10.96.0.20 . tcp . 80 . 1 : 10.0.0.2 . 8080 }
";
    assert_eq!(text, want, "got:\n{text}");
}

#[test]
fn endpoint_selection_follows_upstream() {
    type Case<'a> = (&'a str, Vec<Value>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        ("ready missing counts as ready", vec![json!({"addresses": ["10.0.0.1"]})], vec!["10.0.0.1"]),
        (
            "not ready is left out",
            vec![
                json!({"addresses": ["10.0.0.1"], "conditions": {"ready": false}}),
                json!({"addresses": ["10.0.0.2"], "conditions": {"ready": true}}),
            ],
            vec!["10.0.0.2"],
        ),
        (
            "no ready: serving and terminating ones",
            vec![
                json!({"addresses": ["10.0.0.1"], "conditions": {"ready": false, "serving": true, "terminating": true}}),
                json!({"addresses": ["10.0.0.2"], "conditions": {"ready": false, "serving": false, "terminating": true}}),
                json!({"addresses": ["10.0.0.3"], "conditions": {"ready": false, "serving": true}}),
            ],
            vec!["10.0.0.1"],
        ),
        (
            "ready ones win over terminating ones",
            vec![
                json!({"addresses": ["10.0.0.1"], "conditions": {"ready": false, "serving": true, "terminating": true}}),
                json!({"addresses": ["10.0.0.2"], "conditions": {"ready": true}}),
            ],
            vec!["10.0.0.2"],
        ),
        ("bad address is skipped", vec![json!({"addresses": ["nope"]}), json!({"addresses": []})], vec![]),
    ];
    for (what, eps, want) in cases {
        let s: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "shop", "name": "web-a", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": eps,
        }))
        .unwrap();
        let rules = plan_one(&web(), &[s], None);
        let got: Vec<String> = targets(&rules).iter().map(|a| a.trim_end_matches(":8080").to_string()).collect();
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn ports_match_by_name_and_protocol_and_only_ipv4_slices_count() {
    let svc = service(
        "shop",
        "web",
        json!({"clusterIP": "10.96.0.20", "ports": [
            {"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
    );
    let mut v6 = slice("shop", "web", "b", ("http", 9999), &[("fd00::1", None)]);
    v6.address_type = "IPv6".into();
    let wrong_proto: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "shop", "name": "web-c", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "dns", "port": 5353, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.0.0.9"]}],
    }))
    .unwrap();
    let rules =
        plan_one(&svc, &[slice("shop", "web", "a", ("http", 8080), &[("10.0.0.1", None)]), v6, wrong_proto], None);
    assert_eq!(targets(&rules), ["10.0.0.1:8080"]);
    assert!(rules.chains.is_empty());
    // The UDP port found no endpoint (the TCP "dns" slice port does not count).
    assert!(elements(&rules).contains(&"no-endpoint-services 10.96.0.20 . udp . 53 -> goto no-endpoints".to_string()));
}

#[test]
fn services_the_proxy_ignores() {
    let cases = [
        json!({"clusterIP": "None", "ports": [{"port": 80}]}),
        json!({"type": "ExternalName", "externalName": "example.com"}),
        json!({"ports": [{"port": 80}]}),
        json!({"clusterIP": "fd00::10", "ports": [{"port": 80}]}),
        json!({"clusterIP": "10.96.0.1", "ports": [{"port": 0}, {"port": 70000}, {"port": 80, "protocol": "ICMP"}]}),
    ];
    for spec in cases {
        let svc = service("a", "b", spec.clone());
        assert!(plan_one(&svc, &[], None).is_empty(), "{spec}");
    }
    let no_spec: Service = serde_json::from_value(json!({"metadata": {"namespace": "a", "name": "b"}})).unwrap();
    assert!(plan_one(&no_spec, &[], None).is_empty());
}

#[test]
fn no_endpoints_means_reject_entries_for_every_way_in() {
    let mut svc = service(
        "shop",
        "web",
        json!({"type": "LoadBalancer", "clusterIP": "10.96.0.20", "externalIPs": ["203.0.113.5", "bogus"],
               "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
    );
    svc.status = Some(serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}})).unwrap());
    let rules = plan_one(&svc, &[], None);
    assert!(rules.chains.is_empty());
    assert_eq!(
        elements(&rules),
        [
            "no-endpoint-services 10.96.0.20 . tcp . 80 -> goto no-endpoints",
            "no-endpoint-services 192.168.1.10 . tcp . 80 -> goto no-endpoints",
            "no-endpoint-services 203.0.113.5 . tcp . 80 -> goto no-endpoints",
            "no-endpoint-nodeports tcp . 30080 -> goto no-endpoints",
        ]
    );
    // With an endpoint, every way in leads to the shared chain for one endpoint of its
    // kind, and each address has its slot in the endpoint map.
    let rules = plan_one(&svc, &[slice("shop", "web", "a", ("http", 8080), &[("10.0.0.1", None)])], None);
    assert!(rules.chains.is_empty());
    let got: Vec<String> = elements(&rules).into_iter().filter(|e| !e.starts_with("hairpin")).collect();
    let want = [
        "service-ips 10.96.0.20 . tcp . 80 -> goto cluster-endpoints-1",
        "external-ips 192.168.1.10 . tcp . 80 -> goto external-endpoints-1",
        "external-ips 203.0.113.5 . tcp . 80 -> goto external-endpoints-1",
        "service-nodeports tcp . 30080 -> goto nodeport-endpoints-1",
        "cluster-endpoints 10.96.0.20 . tcp . 80 . 0 -> 10.0.0.1 . 8080",
        "external-endpoints 192.168.1.10 . tcp . 80 . 0 -> 10.0.0.1 . 8080",
        "external-endpoints 203.0.113.5 . tcp . 80 . 0 -> 10.0.0.1 . 8080",
        "nodeport-endpoints tcp . 30080 . 0 -> 10.0.0.1 . 8080",
    ];
    assert_eq!(got, want);
    // The slot pickers are in the base.
    let base = base_ops(&node());
    let rule = |chain: &str| {
        base.iter().find_map(|o| match o {
            BaseObject::Rule { chain: c, rule } if c == chain => Some(rule.clone()),
            _ => None,
        })
    };
    let pick = "dnat ip to ip daddr . meta l4proto . th dport . numgen random mod";
    assert_eq!(rule("cluster-endpoints-1").unwrap(), format!("{pick} 1 map @cluster-endpoints"));
    assert_eq!(rule("external-endpoints-64").unwrap(), format!("{pick} 64 map @external-endpoints"));
    assert_eq!(
        rule("nodeport-endpoints-3").unwrap(),
        "dnat ip to meta l4proto . th dport . numgen random mod 3 map @nodeport-endpoints"
    );
    assert_eq!(rule("cluster-endpoints-65"), None);
    // A ClusterIP Service's nodePort field (left over from a type change) is not served.
    let cip = service(
        "shop",
        "web",
        json!({"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
    );
    assert!(!elements(&plan_one(&cip, &[], None)).iter().any(|e| e.contains("nodeports")));
}

#[test]
fn more_endpoints_than_slot_chains_get_a_cascade_chain() {
    let addrs: Vec<String> = (0..=MAX_SLOTS).map(|i| format!("10.0.1.{i}")).collect();
    let eps: Vec<(&str, Option<bool>)> = addrs.iter().map(|a| (a.as_str(), None)).collect();
    let rules = plan_one(&web(), &[slice("shop", "web", "a", ("http", 8080), &eps)], None);
    let (chain, list) = rules.chains.iter().next().unwrap();
    assert_eq!(list.len(), MAX_SLOTS + 1);
    assert_eq!(list[0], format!("numgen random mod {} 0 meta l4proto tcp dnat to 10.0.1.0:8080", MAX_SLOTS + 1));
    assert_eq!(list[MAX_SLOTS], format!("meta l4proto tcp dnat to 10.0.1.{MAX_SLOTS}:8080"));
    assert!(elements(&rules).contains(&format!("service-ips 10.96.0.20 . tcp . 80 -> goto {chain}")));
    assert!(!elements(&rules).iter().any(|e| e.starts_with("cluster-endpoints")));
    // One fewer: the slot chains again.
    let rules = plan_one(&web(), &[slice("shop", "web", "a", ("http", 8080), &eps[..MAX_SLOTS])], None);
    assert!(rules.chains.is_empty());
    assert!(
        elements(&rules).contains(&format!("service-ips 10.96.0.20 . tcp . 80 -> goto cluster-endpoints-{MAX_SLOTS}"))
    );
}

#[test]
fn client_ip_affinity_uses_a_timed_set_per_endpoint() {
    let mut spec =
        json!({"clusterIP": "10.96.0.20", "sessionAffinity": "ClientIP", "ports": [{"name": "http", "port": 80}]});
    let eps = [slice("shop", "web", "a", ("http", 8080), &[("10.0.0.1", None), ("10.0.0.2", None)])];
    let rules = plan_one(&service("shop", "web", spec.clone()), &eps, None);
    assert_eq!(rules.sets.values().copied().collect::<Vec<_>>(), [10_800, 10_800]);
    let (_, svc_rules) = rules.chains.iter().next().unwrap();
    // First the sticky rules (client seen before → same endpoint, timer refreshed), then
    // the random pick, which records the client.
    assert_eq!(svc_rules.len(), 4, "{svc_rules:?}");
    for (rule, ep) in svc_rules[..2].iter().zip(["10.0.0.1", "10.0.0.2"]) {
        let set = rule.strip_prefix("ip saddr @").unwrap().split(' ').next().unwrap();
        assert!(rules.sets.contains_key(set));
        assert_eq!(*rule, format!("ip saddr @{set} update @{set} {{ ip saddr }} meta l4proto tcp dnat to {ep}:8080"));
    }
    assert!(svc_rules[2].starts_with("numgen random mod 2 0 update @aff-"), "{}", svc_rules[2]);
    assert!(svc_rules[3].starts_with("update @aff-") && svc_rules[3].ends_with("dnat to 10.0.0.2:8080"));
    spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 60}});
    let rules = plan_one(&service("shop", "web", spec), &eps, None);
    assert_eq!(rules.sets.values().copied().collect::<Vec<_>>(), [60, 60]);
}

#[test]
fn the_cluster_dns_service_goes_to_the_node_dns_server() {
    let dns = LocalDns { service: key("kube-system", "kube-dns"), port: 5354 };
    let svc = service(
        "kube-system",
        "kube-dns",
        json!({"clusterIP": "10.96.0.10", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "metrics", "port": 9153}]}),
    );
    let rules = plan_one(&svc, &[], Some(&dns));
    let mut redirects: Vec<&String> = rules.chains.values().flatten().collect();
    redirects.sort();
    assert_eq!(redirects, ["meta l4proto tcp redirect to :5354", "meta l4proto udp redirect to :5354"]);
    let els = elements(&rules);
    assert!(els.iter().any(|e| e.starts_with("service-ips 10.96.0.10 . udp . 53 -> goto svc-")));
    assert!(els.iter().any(|e| e.starts_with("service-ips 10.96.0.10 . tcp . 53 -> goto svc-")));
    assert!(els.contains(&"no-endpoint-services 10.96.0.10 . tcp . 9153 -> goto no-endpoints".to_string()));
    // Another Service is planned normally.
    let other = LocalDns { service: key("kube-system", "other"), port: 5354 };
    assert!(plan_one(&svc, &[], Some(&other)).chains.is_empty());
}

#[test]
fn chain_names_are_safe_and_bounded() {
    let long = "a".repeat(63);
    let svc = service(
        &long,
        &format!("x\"; flush ruleset {long}"),
        json!({"clusterIP": "10.96.0.1", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}),
    );
    let s: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": long, "name": "s", "labels": {"kubernetes.io/service-name": format!("x\"; flush ruleset {long}")}},
        "addressType": "IPv4", "ports": [{"port": 8080}], "endpoints": [{"addresses": ["10.0.0.1"]}],
    }))
    .unwrap();
    let rules = plan_one(&svc, &[s], None);
    assert_eq!(rules.chains.len(), 1);
    for name in rules.chains.keys() {
        assert!(name.len() < 256, "{name}");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "-./_".contains(c)), "{name}");
    }
    let base = base_ops(&NodeFacts { pod_bridge: "br\"0".into(), ..node() });
    assert!(
        base.iter().any(|o| matches!(o, BaseObject::Rule { rule, .. } if rule == "iifname \"br0\" jump cluster-ips"))
    );
}

#[test]
fn an_endpoint_change_touches_only_map_elements() {
    let k = key("shop", "web");
    let before =
        plan_one(&web(), &[slice("shop", "web", "a", ("http", 8080), &[("10.0.0.1", None), ("10.0.0.2", None)])], None);
    let after =
        plan_one(&web(), &[slice("shop", "web", "a", ("http", 8080), &[("10.0.0.1", None), ("10.0.0.3", None)])], None);
    let mut applied = Applied::new(Plan { services: [(k.clone(), before)].into() });
    let ops = applied.update(&k, Some(after));
    let text = render("t", &ops);
    let kinds: Vec<&str> = text.lines().map(|l| l.split(" ip t ").next().unwrap()).collect();
    // Only elements: the endpoint in slot 1 and the hairpin pairs swapped; no rule or chain,
    // and the ClusterIP map element is untouched.
    assert_eq!(kinds, ["delete element", "delete element", "add element", "add element"], "{text}");
    assert!(!text.contains("service-ips"));
    assert!(text.contains("add element ip t cluster-endpoints { 10.96.0.20 . tcp . 80 . 1 : 10.0.0.3 . 8080 }"));
    // A third endpoint: one more slot and the ClusterIP moves to the chain for 3.
    let third = &[("10.0.0.1", None), ("10.0.0.3", None), ("10.0.0.4", None)];
    let text = render(
        "t",
        &applied.update(&k, Some(plan_one(&web(), &[slice("shop", "web", "a", ("http", 8080), third)], None))),
    );
    let want = "\
delete element ip t service-ips { 10.96.0.20 . tcp . 80 }
add element ip t service-ips { 10.96.0.20 . tcp . 80 : goto cluster-endpoints-3 }
add element ip t hairpin-endpoints { 10.0.0.4 . 10.0.0.4 }
add element ip t cluster-endpoints { 10.96.0.20 . tcp . 80 . 2 : 10.0.0.4 . 8080 }
";
    assert_eq!(text, want, "got:\n{text}");
    // No change, no commands.
    let same = applied.rules(&k).cloned();
    assert!(applied.update(&k, same).is_empty());
    // Deleting the Service removes its elements.
    let text = render("t", &applied.update(&k, None));
    let kinds: Vec<&str> = text.lines().map(|l| l.split(" ip t ").next().unwrap()).collect();
    assert_eq!(kinds, ["delete element"; 7], "{text}");
    assert_eq!(applied, Applied::default());
}

#[test]
fn a_shared_external_ip_goes_to_the_first_service_until_it_lets_go() {
    let mk = |name: &str| {
        let svc = service(
            "shop",
            name,
            json!({"clusterIP": format!("10.96.0.{}", name.len()), "externalIPs": ["203.0.113.5"], "ports": [{"port": 80}]}),
        );
        let s: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "shop", "name": format!("{name}-a"), "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"port": 8080}],
            "endpoints": [{"addresses": [format!("10.0.0.{}", name.len())]}],
        }))
        .unwrap();
        plan_one(&svc, &[s], None)
    };
    let (a, b) = (mk("a"), mk("bb"));
    let mut applied = Applied::new(Plan { services: [(key("shop", "a"), a.clone()), (key("shop", "bb"), b)].into() });
    let ext = |applied: &Applied| {
        let els = applied.effective_elements();
        els.into_iter().find(|(k, _)| k.map == MapName::ExternalEndpoints).map(|(_, v)| v.clone())
    };
    assert_eq!(ext(&applied).unwrap(), "10.0.0.1 . 8080");
    let text = render("t", &applied.update(&key("shop", "a"), None));
    assert!(text.contains("delete element ip t external-endpoints { 203.0.113.5 . tcp . 80 . 0 }"), "{text}");
    assert!(text.contains("add element ip t external-endpoints { 203.0.113.5 . tcp . 80 . 0 : 10.0.0.2 . 8080 }"));
    assert!(!text.contains("external-ips"), "both go to the chain for one endpoint: {text}");
    assert_eq!(ext(&applied).unwrap(), "10.0.0.2 . 8080");
    let text = render("t", &applied.update(&key("shop", "a"), Some(a)));
    assert_eq!(ext(&applied).unwrap(), "10.0.0.1 . 8080", "{text}");
}

#[test]
fn the_full_script_replaces_the_table_atomically() {
    let plan = Plan {
        services: [(
            key("shop", "web"),
            plan_one(&web(), &[slice("shop", "web", "a", ("http", 8080), &[("10.0.0.1", None)])], None),
        )]
        .into(),
    };
    let text = full_script("rkube-x", &base_ops(&node()), &Applied::new(plan));
    let first: Vec<&str> = text.lines().take(4).collect();
    assert_eq!(
        first,
        [
            "add table ip rkube-x",
            "delete table ip rkube-x",
            "add table ip rkube-x",
            "add map ip rkube-x service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }"
        ]
    );
    assert!(text.contains(
        "add chain ip rkube-x nat-prerouting { type nat hook prerouting priority dstnat ; policy accept ; }"
    ));
    assert!(text.contains("add element ip rkube-x service-ips { 10.96.0.20 . tcp . 80 : goto cluster-endpoints-1 }\n"));
    assert!(text.contains(
        "add map ip rkube-x cluster-endpoints { typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport ; }\n"
    ));
    assert!(text.contains("add element ip rkube-x hairpin-endpoints { 10.0.0.1 . 10.0.0.1 }\n"));
    assert!(
        text.ends_with("add element ip rkube-x cluster-endpoints { 10.96.0.20 . tcp . 80 . 0 : 10.0.0.1 . 8080 }\n")
    );
}

// ---- A model of the nft table, strict about references, for the property test. ----

#[derive(Debug, Default, PartialEq, Eq)]
struct Model {
    sets: BTreeSet<String>,
    chains: BTreeMap<String, Vec<String>>,
    elements: BTreeMap<ElementKey, String>,
}

/// Chains and sets a rule or verdict names.
fn references(text: &str) -> (Vec<String>, Vec<String>) {
    let words: Vec<&str> = text.split([' ', ',', '}', '{']).filter(|w| !w.is_empty()).collect();
    let chains = words.windows(2).filter(|w| w[0] == "goto" || w[0] == "jump").map(|w| w[1].to_string()).collect();
    let sets = words.iter().filter_map(|w| w.strip_prefix('@')).map(String::from).collect();
    (chains, sets)
}

impl Model {
    fn base() -> Model {
        let mut m = Model::default();
        for obj in base_ops(&node()) {
            match obj {
                BaseObject::Map { name, .. } => {
                    m.sets.insert(name.to_string());
                }
                BaseObject::Chain { name, .. } => {
                    m.chains.insert(name, vec![]);
                }
                BaseObject::Rule { chain, rule } => m.chains.get_mut(&chain).unwrap().push(rule),
            }
        }
        m
    }

    fn check_refs(&self, text: &str) -> Result<(), String> {
        let (chains, sets) = references(text);
        if let Some(c) = chains.iter().find(|c| !self.chains.contains_key(*c)) {
            return Err(format!("{text:?} names missing chain {c}"));
        }
        if let Some(s) = sets.iter().find(|s| !self.sets.contains(*s)) {
            return Err(format!("{text:?} names missing set {s}"));
        }
        Ok(())
    }

    fn referenced(&self, name: &str) -> bool {
        let in_rules = self.chains.values().flatten().chain(self.elements.values());
        in_rules.map(|t| references(t)).any(|(c, s)| c.iter().any(|c| c == name) || s.iter().any(|s| s == name))
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::AddSet { name, .. } => {
                self.sets.insert(name.clone());
            }
            Op::AddChain(name) => {
                self.chains.entry(name.clone()).or_default();
            }
            Op::FlushChain(name) => self.chains.get_mut(name).ok_or(format!("flush of missing {name}"))?.clear(),
            Op::AddRule { chain, rule } => {
                self.check_refs(rule)?;
                self.chains.get_mut(chain).ok_or(format!("rule in missing chain {chain}"))?.push(rule.clone());
            }
            Op::AddElement { key, verdict } => {
                self.check_refs(verdict)?;
                if self.elements.insert(key.clone(), verdict.clone()).is_some() {
                    return Err(format!("element {key:?} exists"));
                }
            }
            Op::DeleteElement(key) => {
                self.elements.remove(key).ok_or(format!("delete of missing element {key:?}"))?;
            }
            Op::DeleteChain(name) => {
                if self.referenced(name)
                    || !self.chains.get(name).ok_or(format!("delete of missing {name}"))?.is_empty()
                {
                    return Err(format!("delete of busy chain {name}"));
                }
                self.chains.remove(name);
            }
            Op::DeleteSet(name) => {
                if self.referenced(name) || !self.sets.remove(name) {
                    return Err(format!("delete of busy or missing set {name}"));
                }
            }
        }
        Ok(())
    }
}

/// A small random Service: which of a few ClusterIPs, ports, node ports, external IPs,
/// endpoints (some not ready), affinity. Collisions between Services are on purpose.
#[derive(Debug, Clone)]
struct Shape {
    ip: u8,
    ports: Vec<u16>,
    node_port: Option<u16>,
    external: bool,
    affinity: Option<i32>,
    endpoints: Vec<(u8, bool)>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        0u8..3,
        proptest::collection::vec(prop_oneof![Just(80u16), Just(443), Just(53)], 0..3),
        proptest::option::of(30000u16..30003),
        any::<bool>(),
        proptest::option::of(prop_oneof![Just(0), Just(60), Just(10_800)]),
        proptest::collection::vec((0u8..5, any::<bool>()), 0..4),
    )
        .prop_map(|(ip, ports, node_port, external, affinity, endpoints)| Shape {
            ip,
            ports,
            node_port,
            external,
            affinity,
            endpoints,
        })
}

fn build(name: &str, shape: &Shape) -> (Service, EndpointSlice) {
    let ports: Vec<Value> = shape
        .ports
        .iter()
        .map(|p| {
            let mut v = json!({"name": format!("p{p}"), "port": p});
            if let Some(np) = shape.node_port {
                v["nodePort"] = json!(np + p);
            }
            v
        })
        .collect();
    let mut spec = json!({"type": if shape.node_port.is_some() { "NodePort" } else { "ClusterIP" },
                          "clusterIP": format!("10.96.0.{}", shape.ip), "ports": ports});
    if shape.external {
        spec["externalIPs"] = json!(["203.0.113.1"]);
    }
    if let Some(t) = shape.affinity {
        spec["sessionAffinity"] = json!("ClientIP");
        spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": t}});
    }
    let svc = service("ns", name, spec);
    let slice_ports: Vec<Value> =
        shape.ports.iter().map(|p| json!({"name": format!("p{p}"), "port": 8000 + p})).collect();
    let eps: Vec<Value> = shape
        .endpoints
        .iter()
        .map(|(ip, ready)| json!({"addresses": [format!("10.0.0.{ip}")], "conditions": {"ready": ready, "serving": true, "terminating": !ready}}))
        .collect();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": format!("{name}-a"), "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "ports": slice_ports, "endpoints": eps,
    }))
    .unwrap();
    (svc, slice)
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn plan_state(state: &BTreeMap<usize, Shape>, dns: Option<&LocalDns>) -> Plan {
    let (services, slices): (Vec<_>, Vec<_>) =
        state.iter().map(|(i, s)| build(NAMES[*i], s)).map(|(a, b)| (Arc::new(a), Arc::new(b))).unzip();
    plan(&services, &slices, &node(), dns)
}

fn model_of_full(plan: Plan) -> Result<Model, String> {
    let mut m = Model::base();
    for op in Applied::new(plan).create_ops() {
        m.apply(&op)?;
    }
    Ok(m)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Applying the deltas of any sequence of Service changes to the table gives the same
    /// table as planning the final state from scratch, and every delta is one nft would
    /// accept (no dangling reference, no busy delete, no duplicate element).
    #[test]
    fn incremental_updates_equal_the_full_plan(
        start in proptest::collection::btree_map(0usize..4, shape(), 0..4),
        steps in proptest::collection::vec((0usize..4, proptest::option::of(shape())), 1..12),
        with_dns in any::<bool>(),
    ) {
        let dns = with_dns.then(|| LocalDns { service: key("ns", "a"), port: 5353 });
        let mut state = start;
        let mut applied = Applied::new(plan_state(&state, dns.as_ref()));
        let mut model = model_of_full(plan_state(&state, dns.as_ref())).map_err(TestCaseError::fail)?;
        for (i, next) in steps {
            match next {
                Some(s) => state.insert(i, s),
                None => state.remove(&i),
            };
            let k = key("ns", NAMES[i]);
            let rules = plan_state(&state, dns.as_ref()).services.remove(&k);
            for op in applied.update(&k, rules) {
                model.apply(&op).map_err(TestCaseError::fail)?;
            }
            prop_assert_eq!(&applied, &Applied::new(plan_state(&state, dns.as_ref())));
        }
        let want = model_of_full(plan_state(&state, dns.as_ref())).map_err(TestCaseError::fail)?;
        prop_assert_eq!(model, want);
    }
}

// ---- The run loop over a fake nft. ----

#[derive(Default)]
struct FakeNft {
    scripts: Mutex<Vec<String>>,
    /// Fail this many applies from now on.
    fail: Mutex<usize>,
}

impl Nft for FakeNft {
    async fn apply(&self, script: &str) -> Result<(), Error> {
        self.scripts.lock().unwrap().push(script.to_string());
        let mut fail = self.fail.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return Err(Error::Apply { stderr: "Error: injected".into(), line: String::new() });
        }
        Ok(())
    }
    async fn list_json(&self, _table: &str) -> Result<Option<String>, Error> {
        Ok(None)
    }
}

impl FakeNft {
    fn count(&self) -> usize {
        self.scripts.lock().unwrap().len()
    }
    fn last(&self) -> String {
        self.scripts.lock().unwrap().last().cloned().unwrap_or_default()
    }
}

struct Feed {
    view: ServiceView,
    services: Writer<Service>,
    slices: Writer<EndpointSlice>,
}

impl Feed {
    fn new() -> Feed {
        let (s, mut services) = reflector::store();
        let (e, mut slices) = reflector::store();
        services.apply_watcher_event(&Event::InitDone);
        slices.apply_watcher_event(&Event::InitDone);
        Feed { view: ServiceView::from_stores(s, e), services, slices }
    }
    fn put(&mut self, svc: Service, slice: Option<EndpointSlice>) {
        let k = ServiceKey::of_service(&svc);
        self.services.apply_watcher_event(&Event::Apply(svc));
        if let Some(s) = slice {
            self.slices.apply_watcher_event(&Event::Apply(s));
        }
        self.view.touch(Some(k));
    }
}

fn config() -> Config {
    Config { table: "rkube-test".into(), nft: vec!["nft".into()], node: node(), local_dns: None }
}

/// Lets the loop task catch up (real time: tokio's paused clock needs `test-util`).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(40)).await;
}

const FAST: Backoff = Backoff { min: Duration::from_millis(300), max: Duration::from_millis(1200) };

#[tokio::test]
async fn the_loop_syncs_everything_then_only_what_changed_and_recovers_with_a_full_sync() {
    let mut feed = Feed::new();
    feed.put(web(), Some(slice("shop", "web", "a", ("http", 8080), &[("10.0.0.1", None)])));
    let nft = Arc::new(FakeNft::default());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = {
        let (nft, view) = (nft.clone(), feed.view.clone());
        tokio::spawn(async move { run_with(nft, view, &config(), stop, FAST).await })
    };
    settle().await;
    assert_eq!(nft.count(), 1);
    assert!(nft.last().starts_with("add table ip rkube-test\ndelete table"));
    assert!(nft.last().contains("10.96.0.20 . tcp . 80 . 0 : 10.0.0.1 . 8080"));

    // One more Service: only its commands.
    let db = service("shop", "db", json!({"clusterIP": "10.96.0.30", "ports": [{"name": "pg", "port": 5432}]}));
    feed.put(db, Some(slice("shop", "db", "a", ("pg", 5432), &[("10.0.0.7", None)])));
    settle().await;
    assert_eq!(nft.count(), 2);
    let delta = nft.last();
    assert!(!delta.contains("add table") && !delta.contains("shop/web/"), "{delta}");
    assert!(delta.contains(": 10.0.0.7 . 5432"));

    // A failed incremental apply: nothing more until the backoff passes, then a full sync.
    *nft.fail.lock().unwrap() = 1;
    feed.put(web(), Some(slice("shop", "web", "a", ("http", 8080), &[("10.0.0.2", None)])));
    settle().await;
    assert_eq!(nft.count(), 3);
    feed.put(web(), Some(slice("shop", "web", "a", ("http", 8080), &[("10.0.0.3", None)])));
    settle().await;
    assert_eq!(nft.count(), 3, "no apply during the backoff");
    tokio::time::sleep(FAST.min).await;
    settle().await;
    assert_eq!(nft.count(), 4);
    let full = nft.last();
    assert!(full.starts_with("add table") && full.contains("10.0.0.3 . 8080") && full.contains("10.0.0.7 . 5432"));

    stop_tx.send(true).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_failing_nft_is_retried_with_backoff_not_in_a_busy_loop() {
    let mut feed = Feed::new();
    feed.put(web(), None);
    let nft = Arc::new(FakeNft::default());
    *nft.fail.lock().unwrap() = usize::MAX;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = {
        let (nft, view) = (nft.clone(), feed.view.clone());
        tokio::spawn(async move { run_with(nft, view, &config(), stop, FAST).await })
    };
    // Attempts at 0, 0.3, 0.9, 2.1 and 3.3 s (then 4.5): 5 in the first 4 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(nft.count(), 5);
    assert!(nft.scripts.lock().unwrap().iter().all(|s| s.starts_with("add table")));
    stop_tx.send(true).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_loop_waits_for_the_first_list_and_stops() {
    let (s, _w1) = reflector::store::<Service>();
    let (e, _w2) = reflector::store::<EndpointSlice>();
    let view = ServiceView::from_stores(s, e);
    let nft = Arc::new(FakeNft::default());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = {
        let nft = nft.clone();
        tokio::spawn(async move { run_with(nft, view, &config(), stop, FAST).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(nft.count(), 0, "no sync before the stores are ready");
    stop_tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    let bad = Config { table: "bad table".into(), ..config() };
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let err = run_with(FakeNft::default(), Feed::new().view, &bad, stop, Backoff::default()).await.unwrap_err();
    assert!(matches!(err, Error::BadTable { .. }));
}
