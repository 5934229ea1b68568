//! Decision tables for [`schedule`]: where pods go, and the exact message when they go
//! nowhere.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::labels::Selector;
use crate::snapshot::OwnerKind;
use crate::testing::{N, P, cluster};

fn place(nodes: &[N], existing: &[P], pod: &P) -> Result<String, String> {
    let snap = cluster(nodes, existing);
    schedule(&pod.build(), &snap).map(|p| p.node).map_err(|e| e.to_string())
}

/// A table row: name, nodes, pods already bound, the pod to place, the expected outcome.
type Case<W> = (&'static str, Vec<N>, Vec<P>, P, W);

const NOT_HELPFUL_1: &str = "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";

#[test]
fn placements_by_table() {
    let tolerate_spray =
        json!({"tolerations": [{"key": "spray", "operator": "Equal", "value": "mortein", "effect": "NoSchedule"}]});
    let three = || {
        [
            N::new("n1").label("zone", "a"),
            N::new("n2").label("zone", "a").label("disk", "ssd"),
            N::new("n3").label("zone", "b"),
        ]
    };
    let cases: Vec<Case<&str>> = vec![
        ("ties go to the first name", three().to_vec(), vec![], P::new("p"), "n1"),
        ("least allocated", three().to_vec(), vec![P::new("e1").req("2", "1Gi").on("n1")], P::new("p").req("1", "1Gi"), "n2"),
        (
            "best-effort pods count as 100m/200Mi, so they spread",
            three().to_vec(),
            vec![P::new("e1").on("n1"), P::new("e2").on("n2")],
            P::new("p"),
            "n3",
        ),
        (
            "a NoSchedule taint repels",
            vec![N::new("n1").taint("spray", "mortein", "NoSchedule"), N::new("n2")],
            vec![P::new("e").req("3", "1Gi").on("n2")],
            P::new("p").req("500m", "1Gi"),
            "n2",
        ),
        (
            "a toleration lets the pod in",
            vec![N::new("n1").taint("spray", "mortein", "NoSchedule"), N::new("n2")],
            vec![P::new("e").req("3", "1Gi").on("n2")],
            P::new("p").req("500m", "1Gi").spec(tolerate_spray.clone()),
            "n1",
        ),
        (
            "PreferNoSchedule is avoided when there is a choice",
            vec![N::new("n1").taint("k", "v", "PreferNoSchedule"), N::new("n2")],
            vec![P::new("e").req("1", "2Gi").on("n2")],
            P::new("p"),
            "n2",
        ),
        ("nodeSelector pins", three().to_vec(), vec![], P::new("p").spec(json!({"nodeSelector": {"disk": "ssd"}})), "n2"),
        (
            "required node affinity pins",
            three().to_vec(),
            vec![],
            P::new("p").spec(json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}})),
            "n3",
        ),
        (
            "matchFields metadata.name pins",
            three().to_vec(),
            vec![],
            P::new("p").spec(json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}})),
            "n2",
        ),
        (
            "preferred node affinity outweighs a little load",
            three().to_vec(),
            vec![P::new("e").req("1", "1Gi").on("n2")],
            P::new("p").spec(json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}})),
            "n2",
        ),
        ("a cordoned node gets no pods", vec![N::new("n1").cordoned(), N::new("n2")], vec![P::new("e").req("3", "6Gi").on("n2")], P::new("p"), "n2"),
        ("a not-Ready node gets no pods", vec![N::new("n1").ready("False"), N::new("n2")], vec![], P::new("p"), "n2"),
        (
            "host ports conflict",
            vec![N::new("n1"), N::new("n2")],
            vec![P::new("e").host_port(80, "TCP", "").on("n1"), P::new("f").req("3", "6Gi").on("n2")],
            P::new("p").host_port(80, "TCP", ""),
            "n2",
        ),
        (
            "required anti-affinity",
            vec![N::new("n1"), N::new("n2")],
            vec![P::new("web-1").label("app", "web").on("n1"), P::new("f").req("3", "6Gi").on("n2")],
            P::new("p").label("app", "web").spec(json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}})),
            "n2",
        ),
        (
            "required affinity",
            vec![N::new("n1"), N::new("n2")],
            vec![P::new("db").label("app", "db").req("3", "6Gi").on("n2")],
            P::new("p").spec(json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}})),
            "n2",
        ),
        (
            "preferred pod affinity",
            vec![N::new("n1"), N::new("n2")],
            vec![P::new("db").label("app", "db").req("1", "1Gi").on("n2")],
            P::new("p").spec(json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}}]}}})),
            "n2",
        ),
        (
            "DoNotSchedule spread",
            three().to_vec(),
            vec![P::new("w1").label("app", "web").on("n3")],
            P::new("p").label("app", "web").spec(json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]})),
            "n1",
        ),
        (
            "ScheduleAnyway spread",
            vec![N::new("n1"), N::new("n2")],
            vec![P::new("w1").label("app", "web").on("n1"), P::new("x").req("200m", "0").on("n2")],
            P::new("p").label("app", "web").spec(json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}]})),
            "n2",
        ),
        (
            "init containers count by their maximum",
            vec![N::new("n1").alloc("2", "4Gi", "10"), N::new("n2").alloc("8", "4Gi", "10")],
            vec![],
            P::new("p").spec(json!({"initContainers": [{"name": "i", "resources": {"requests": {"cpu": "3"}}}]})),
            "n2",
        ),
    ];
    for (name, nodes, existing, pod, want) in cases {
        assert_eq!(place(&nodes, &existing, &pod), Ok(want.to_string()), "{name}");
    }
}

#[test]
fn failure_messages_by_table() {
    let big = || P::new("p").req("5", "1Gi");
    let full = |name: &str, node: &str| P::new(name).req("3", "1Gi").on(node);
    let cases: Vec<Case<String>> = vec![
        ("no nodes", vec![], vec![], P::new("p"), "no nodes available to schedule pods".into()),
        (
            "the issue's example",
            vec![N::new("n1"), N::new("n2").taint("spray", "mortein", "NoSchedule"), N::new("n3").taint("spray", "mortein", "NoSchedule")],
            vec![],
            big(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {spray: mortein}. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
                .into(),
        ),
        (
            "full nodes: no victims",
            vec![N::new("n1"), N::new("n2")],
            vec![full("a", "n1"), full("b", "n2")],
            P::new("p").req("2", "1Gi"),
            "0/2 nodes are available: 2 Insufficient cpu. \
             preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
                .into(),
        ),
        (
            "lower-priority pods would be victims",
            vec![N::new("n1"), N::new("n2")],
            vec![full("a", "n1"), full("b", "n2")],
            P::new("p").req("2", "1Gi").priority(10),
            "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 Insufficient cpu.".into(),
        ),
        (
            "preemptionPolicy Never",
            vec![N::new("n1")],
            vec![],
            big().spec(json!({"preemptionPolicy": "Never"})),
            "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.".into(),
        ),
        (
            "cpu and memory on one node",
            vec![N::new("n1")],
            vec![],
            P::new("p").req("5", "16Gi"),
            format!("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. {NOT_HELPFUL_1}"),
        ),
        ("memory", vec![N::new("n1")], vec![], P::new("p").req("1", "9Gi"), format!("0/1 nodes are available: 1 Insufficient memory. {NOT_HELPFUL_1}")),
        (
            "too many pods",
            vec![N::new("n1").alloc("4", "8Gi", "1")],
            vec![P::new("e").on("n1")],
            P::new("p"),
            "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
                .into(),
        ),
        (
            "cordoned",
            vec![N::new("n1").cordoned(), N::new("n2").cordoned()],
            vec![],
            P::new("p"),
            "0/2 nodes are available: 2 node(s) were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
                .into(),
        ),
        (
            "not ready",
            vec![N::new("n1").ready("False")],
            vec![],
            P::new("p"),
            format!("0/1 nodes are available: 1 node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}. {NOT_HELPFUL_1}"),
        ),
        (
            "node selector",
            vec![N::new("n1"), N::new("n2")],
            vec![],
            P::new("p").spec(json!({"nodeSelector": {"disk": "ssd"}})),
            "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. \
             preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
                .into(),
        ),
        (
            "pinned by name to a cordoned node",
            vec![N::new("n1").cordoned(), N::new("n2"), N::new("n3")],
            vec![],
            P::new("p").spec(json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}})),
            "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
                .into(),
        ),
        (
            "node names that conflict",
            vec![N::new("n1"), N::new("n2")],
            vec![],
            P::new("p").spec(json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]},
                                                       {"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}})),
            "0/2 nodes are available: pod affinity terms conflict. \
             preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
                .into(),
        ),
        (
            "host ports",
            vec![N::new("n1"), N::new("n2")],
            vec![P::new("a").host_port(80, "TCP", "").on("n1"), P::new("b").host_port(80, "TCP", "").on("n2")],
            P::new("p").host_port(80, "TCP", ""),
            "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports. \
             preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
                .into(),
        ),
        (
            "anti-affinity",
            vec![N::new("n1"), N::new("n2")],
            vec![P::new("a").label("app", "web").on("n1"), P::new("b").label("app", "web").on("n2")],
            P::new("p").label("app", "web").spec(json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}})),
            "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. \
             preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
                .into(),
        ),
        (
            "affinity",
            vec![N::new("n1"), N::new("n2")],
            vec![],
            P::new("p").spec(json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}})),
            "0/2 nodes are available: 2 node(s) didn't match pod affinity rules. \
             preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
                .into(),
        ),
        (
            "existing pods' anti-affinity",
            vec![N::new("n1")],
            vec![P::new("a").label("app", "db").on("n1").spec(json!({"affinity": {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}}))],
            P::new("p").label("app", "web"),
            "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules. \
             preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
                .into(),
        ),
        (
            "topology spread",
            vec![N::new("n1").label("zone", "a"), N::new("n2").label("zone", "b"), N::new("n3").label("zone", "c").taint("k", "v", "NoSchedule")],
            vec![P::new("a").label("app", "web").on("n1"), P::new("b").label("app", "web").on("n2")],
            P::new("p").label("app", "web").spec(json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]})),
            "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 node(s) didn't match pod topology spread constraints. \
             preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
                .into(),
        ),
        (
            "topology label missing",
            vec![N::new("n1")],
            vec![],
            P::new("p").label("app", "web").spec(json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]})),
            format!("0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label). {NOT_HELPFUL_1}"),
        ),
        (
            "the first failing filter is the one reported",
            vec![N::new("n1").cordoned().taint("k", "v", "NoSchedule")],
            vec![],
            big(),
            format!("0/1 nodes are available: 1 node(s) were unschedulable. {NOT_HELPFUL_1}"),
        ),
    ];
    for (name, nodes, existing, pod, want) in cases {
        assert_eq!(place(&nodes, &existing, &pod), Err(want), "{name}");
    }
}

#[test]
fn replicas_of_one_owner_spread_over_nodes() {
    // n2 carries slightly more load, so without spreading the second replica would
    // join the first on n1.
    let nodes = [N::new("n1"), N::new("n2")];
    let owned = |name: &str| {
        P::new(name).label("app", "web").meta(json!({"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "rs", "controller": true}]}))
    };
    let existing = [owned("web-1").on("n1"), P::new("other").req("200m", "0").on("n2")];
    let mut snap = cluster(&nodes, &existing);
    let bare = P::new("web-2").label("app", "web");
    assert_eq!(schedule(&bare.build(), &snap).map(|p| p.node), Ok("n1".into()), "no owner: no group");
    assert_eq!(schedule(&owned("web-2").build(), &snap).map(|p| p.node), Ok("n2".into()), "owner not seen yet");
    let web = Selector::from_map(&[("app".into(), "web".into())].into());
    snap.upsert_owner(OwnerKind::ReplicaSet, "default", "web-abc", web);
    assert_eq!(schedule(&owned("web-2").build(), &snap).map(|p| p.node), Ok("n2".into()));
    // An owner selecting nothing (nil selector) groups nothing.
    snap.upsert_owner(OwnerKind::ReplicaSet, "default", "web-abc", Selector::nothing());
    assert_eq!(schedule(&owned("web-2").build(), &snap).map(|p| p.node), Ok("n1".into()));
}

#[test]
fn a_two_replica_deployment_lands_on_two_nodes() {
    let nodes = [N::new("n1"), N::new("n2"), N::new("n3")];
    let mut snap = cluster(&nodes, &[]);
    snap.upsert_owner(
        OwnerKind::ReplicaSet,
        "default",
        "web-abc",
        Selector::from_map(&[("app".into(), "web".into())].into()),
    );
    let mut placed = Vec::new();
    for name in ["web-1", "web-2", "web-3"] {
        let pod = P::new(name)
            .label("app", "web")
            .meta(json!({"ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "rs", "controller": true}]}))
            .build();
        let p = schedule(&pod, &snap).expect("fits");
        snap.assume(&pod, &p.node);
        snap.advance(p.evaluated);
        placed.push(p.node);
    }
    assert_eq!(placed, ["n1", "n2", "n3"]);
}

#[test]
fn assumed_pods_count_at_once() {
    let nodes = [N::new("n1").alloc("1", "1Gi", "10"), N::new("n2").alloc("1", "1Gi", "10")];
    let mut snap = cluster(&nodes, &[]);
    let mut got = Vec::new();
    for i in 0..3 {
        let pod = P::new(&format!("p{i}")).req("600m", "100Mi").build();
        match schedule(&pod, &snap) {
            Ok(p) => {
                snap.assume(&pod, &p.node);
                got.push(p.node);
            }
            Err(e) => got.push(e.to_string()),
        }
    }
    assert_eq!(got[..2], ["n1", "n2"]);
    assert!(got[2].starts_with("0/2 nodes are available: 2 Insufficient cpu."), "{}", got[2]);
}

#[test]
fn sampling_in_big_clusters() {
    let cases = [(0, 0), (50, 50), (100, 100), (200, 100), (1000, 420), (5000, 500), (6000, 300), (10000, 500)];
    for (nodes, want) in cases {
        assert_eq!(num_feasible_nodes_to_find(nodes), want, "{nodes} nodes");
    }
    let nodes: Vec<N> = (0..300).map(|i| N::new(&format!("n{i:03}"))).collect();
    let mut snap = cluster(&nodes, &[]);
    let pod = P::new("p").build();
    let first = schedule(&pod, &snap).unwrap();
    assert_eq!(first.evaluated, 144, "300 nodes: 48 % of them");
    assert_eq!(first.node, "n000");
    snap.advance(first.evaluated);
    let second = schedule(&pod, &snap).unwrap();
    assert_eq!(second.node, "n144", "the next pod starts where the last one stopped");
    // Same inputs, same answer.
    assert_eq!(schedule(&pod, &snap), Ok(second));
}

#[test]
fn infeasible_nodes_do_not_count_towards_the_sample() {
    let mut nodes: Vec<N> = (0..150).map(|i| N::new(&format!("n{i:03}")).cordoned()).collect();
    nodes.push(N::new("z"));
    let snap = cluster(&nodes, &[]);
    let p = schedule(&P::new("p").build(), &snap).unwrap();
    assert_eq!((p.node.as_str(), p.evaluated), ("z", 151));
}

#[test]
fn pods_on_unknown_nodes_are_kept_for_later() {
    let mut snap = cluster(&[N::new("n1")], &[]);
    snap.upsert_pod(Arc::new(P::new("e").req("4", "1Gi").on("n2").build()));
    snap.upsert_node(N::new("n2").build());
    assert_eq!(schedule(&P::new("p").req("1", "1Gi").build(), &snap).map(|p| p.node), Ok("n1".into()));
}

/// `cargo test -p rkube-scheduler --release -- --ignored --nocapture decision_speed`
#[test]
#[ignore]
fn decision_speed() {
    let nodes: Vec<N> =
        (0..5000).map(|i| N::new(&format!("node-{i:05}")).label("zone", &format!("z{}", i % 3))).collect();
    let mut snap = cluster(&nodes, &[]);
    let owned = |i: usize| {
        P::new(&format!("web-{i}")).label("app", "web").req("10m", "10Mi").meta(json!({"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "rs", "controller": true}]}))
    };
    snap.upsert_owner(
        OwnerKind::ReplicaSet,
        "default",
        "web-abc",
        Selector::from_map(&[("app".into(), "web".into())].into()),
    );
    for (label, make) in [
        ("basic", Box::new(|i: usize| P::new(&format!("p-{i}")).req("10m", "10Mi")) as Box<dyn Fn(usize) -> P>),
        ("replicaset", Box::new(owned)),
        (
            "anti-affinity",
            Box::new(|i: usize| {
                P::new(&format!("aa-{i}")).label("app", "aa").spec(json!({"affinity": {"podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"app": "aa"}}, "topologyKey": "kubernetes.io/hostname"}]}}}))
            }),
        ),
    ] {
        let pods: Vec<PodInfo> = (0..2000).map(|i| make(i).build()).collect();
        let t = std::time::Instant::now();
        for pod in &pods {
            snap.warm(pod);
            let p = schedule(pod, &snap).expect("fits");
            snap.assume(pod, &p.node);
            snap.advance(p.evaluated);
        }
        let el = t.elapsed();
        println!(
            "{label}: {} pods on 5000 nodes in {el:?}: {:.0} pods/s",
            pods.len(),
            pods.len() as f64 / el.as_secs_f64()
        );
    }
}

/// The affinity indexes kept pod by pod give the same decisions as scanning every pod,
/// through pods coming and going and nodes being relabelled or removed.
#[test]
fn affinity_indexes_agree_with_scanning() {
    let mut seed: u64 = 0x5eed;
    let mut rnd = |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let apps = ["x", "y", "z"];
    // `matchLabels` terms are counted through the pods-by-label index, two-value `In`
    // expressions by scanning.
    let term = |kind: &str, app: &str, key: &str, either: bool| {
        let selector = if either {
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": [app, "x"]}]})
        } else {
            json!({"matchLabels": {"app": app}})
        };
        json!({"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": selector, "topologyKey": key}]}}})
    };
    let random_pod = |name: String, rnd: &mut dyn FnMut(u64) -> u64| {
        let app = apps[rnd(3) as usize];
        let key = ["zone", "kubernetes.io/hostname"][rnd(2) as usize];
        let p = P::new(&name).label("app", app);
        let either = rnd(3) == 0;
        match rnd(4) {
            0 => p.spec(term("podAntiAffinity", apps[rnd(3) as usize], key, either)),
            1 => p.spec(term("podAffinity", apps[rnd(3) as usize], key, either)),
            _ => p,
        }
    };
    for round in 0..20 {
        let nodes: Vec<N> = (0..6).map(|i| N::new(&format!("n{i}")).label("zone", ["a", "b", "c"][i % 3])).collect();
        let mut warm = cluster(&nodes, &[]);
        let mut cold = cluster(&nodes, &[]);
        for i in 0..40 {
            let pod = random_pod(format!("p{round}-{i}"), &mut rnd).build();
            warm.warm(&pod);
            let a = schedule(&pod, &warm);
            let b = schedule(&pod, &cold);
            assert_eq!(a, b, "round {round}, pod {i}");
            if let Ok(p) = a {
                warm.assume(&pod, &p.node);
                cold.assume(&pod, &p.node);
            }
            match rnd(10) {
                0 => {
                    let victim = format!("p{round}-{}", rnd(i + 1));
                    warm.remove_pod("default", &victim);
                    cold.remove_pod("default", &victim);
                }
                1 => {
                    let n = rnd(6) as usize;
                    let relabelled = N::new(&format!("n{n}")).label("zone", ["a", "b", "c"][rnd(3) as usize]).build();
                    warm.upsert_node(relabelled.clone());
                    cold.upsert_node(relabelled);
                }
                2 => {
                    let n = format!("n{}", rnd(6));
                    warm.remove_node(&n);
                    cold.remove_node(&n);
                    let back = N::new(&n).label("zone", "a").build();
                    warm.upsert_node(back.clone());
                    cold.upsert_node(back);
                }
                _ => {}
            }
        }
    }
}
