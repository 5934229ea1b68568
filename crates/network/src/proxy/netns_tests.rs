//! Real nft tests, as root, inside a private network namespace each (never the host's
//! tables). Skipped with a message when not root or `ip`/`nft` are missing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::tests::{node, service, slice};
use super::*;
use crate::services::ServiceKey;

/// A private network namespace, deleted on drop (also when the test fails).
pub(crate) struct Netns {
    pub name: String,
}

impl Netns {
    /// `None` (test skipped) when we cannot create namespaces or nft is missing.
    pub fn new() -> Option<Netns> {
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
            .unwrap_or(false);
        if !root || Command::new("nft").arg("--version").output().is_err() {
            eprintln!("skipped: needs root and nft");
            return None;
        }
        let name = format!("rkp-{:08x}", rand::random::<u32>());
        let ok = Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot create a network namespace");
            return None;
        }
        let ns = Netns { name };
        ns.sh(&["ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    pub fn nft(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name, "nft"].iter().map(|s| s.to_string()).collect()
    }

    /// Runs a command in the namespace; panics (test failure) when it fails.
    pub fn sh(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Child processes killed on drop.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Chain name → rule count, and map name → element count, from `nft -j list table`.
fn summary(json_text: &str) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let v: Value = serde_json::from_str(json_text).unwrap();
    let mut chains = BTreeMap::new();
    let mut maps = BTreeMap::new();
    for item in v["nftables"].as_array().unwrap() {
        if let Some(c) = item.get("chain") {
            chains.entry(c["name"].as_str().unwrap().to_string()).or_insert(0);
        }
        if let Some(r) = item.get("rule") {
            *chains.entry(r["chain"].as_str().unwrap().to_string()).or_insert(0) += 1;
        }
        if let Some(m) = item.get("map").or_else(|| item.get("set")) {
            maps.insert(m["name"].as_str().unwrap().to_string(), m["elem"].as_array().map_or(0, Vec::len));
        }
    }
    (chains, maps)
}

fn sample(eps: &[&str]) -> (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>) {
    let mut lb = service(
        "shop",
        "web",
        json!({"type": "LoadBalancer", "clusterIP": "10.96.0.20", "sessionAffinity": "ClientIP",
               "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
    );
    lb.status = Some(serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}})).unwrap());
    let empty = service("shop", "empty", json!({"clusterIP": "10.96.0.21", "ports": [{"port": 81}]}));
    let dns = service(
        "kube-system",
        "kube-dns",
        json!({"clusterIP": "10.96.0.10", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}),
    );
    let eps: Vec<(&str, Option<bool>)> = eps.iter().map(|e| (*e, None)).collect();
    let s = slice("shop", "web", "a", ("http", 8080), &eps);
    (vec![Arc::new(lb), Arc::new(empty), Arc::new(dns)], vec![Arc::new(s)])
}

fn dns() -> LocalDns {
    LocalDns { service: ServiceKey::new("kube-system", "kube-dns"), port: 5354 }
}

#[tokio::test]
async fn full_and_incremental_syncs_build_the_planned_table() {
    let Some(ns) = Netns::new() else { return };
    let nft = CommandNft::new(&ns.nft()).unwrap();
    let base = base_ops(&node());
    let (svcs, slices) = sample(&["10.0.0.1", "10.0.0.2"]);
    let mut applied = Applied::new(plan(&svcs, &slices, &node(), Some(&dns())));
    let script = full_script("rkube-a", &base, &applied);
    nft.apply(&script).await.unwrap();
    // Applying it again (an agent restart) replaces the table in one go.
    nft.apply(&script).await.unwrap();
    let (chains, maps) = summary(&nft.list_json("rkube-a").await.unwrap().unwrap());
    assert_eq!(maps["service-ips"], 3, "web + 2 dns ports");
    assert_eq!(maps["external-ips"], 1);
    assert_eq!(maps["service-nodeports"], 1);
    assert_eq!(maps["no-endpoint-services"], 1);
    assert_eq!(maps["hairpin-endpoints"], 2);
    let web: Vec<&String> = chains.keys().filter(|c| c.starts_with("svc-") && c.contains("shop/web/")).collect();
    assert_eq!(web.len(), 1);
    assert_eq!(chains[web[0]], 4, "2 sticky + 2 random picks: {chains:?}");
    let listing = ns.sh(&["nft", "list", "table", "ip", "rkube-a"]);
    assert!(listing.contains("redirect to :5354"), "{listing}");
    assert!(listing.contains("timeout 3h"), "{listing}");

    // Incremental: one endpoint replaced, the empty Service gains one, web goes away.
    let (svcs, slices) = sample(&["10.0.0.1", "10.0.0.3"]);
    let k = ServiceKey::new("shop", "web");
    let rules = plan(&svcs, &slices, &node(), Some(&dns())).services.remove(&k);
    let delta = render("rkube-a", &applied.update(&k, rules));
    nft.apply(&delta).await.unwrap();
    let listing = ns.sh(&["nft", "list", "table", "ip", "rkube-a"]);
    assert!(listing.contains("dnat to 10.0.0.3:8080") && !listing.contains("dnat to 10.0.0.2:8080"));

    let mut slices = slices;
    slices.push(Arc::new(slice("shop", "empty", "a", ("", 9090), &[("10.0.0.5", None)])));
    let k = ServiceKey::new("shop", "empty");
    let rules = plan(&svcs, &slices, &node(), Some(&dns())).services.remove(&k);
    nft.apply(&render("rkube-a", &applied.update(&k, rules))).await.unwrap();
    let k = ServiceKey::new("shop", "web");
    nft.apply(&render("rkube-a", &applied.update(&k, None))).await.unwrap();

    // The same final state planned from scratch, in a second table, looks the same.
    let svcs: Vec<Arc<Service>> = svcs.into_iter().filter(|s| s.metadata.name.as_deref() != Some("web")).collect();
    let fresh = Applied::new(plan(&svcs, &slices, &node(), Some(&dns())));
    assert_eq!(fresh, applied);
    nft.apply(&full_script("rkube-b", &base, &fresh)).await.unwrap();
    let a = summary(&nft.list_json("rkube-a").await.unwrap().unwrap());
    let b = summary(&nft.list_json("rkube-b").await.unwrap().unwrap());
    assert_eq!(a, b);
    assert_eq!(a.1["no-endpoint-services"], 0);

    // A broken script is refused as a whole and the error names the line.
    let err = nft.apply("add chain ip rkube-a x\nadd rule ip rkube-a x bogus\n").await.unwrap_err().to_string();
    assert!(err.contains("line 2: add rule ip rkube-a x bogus"), "{err}");
    assert!(!ns.sh(&["nft", "list", "chains"]).contains("chain x "));

    assert!(remove_table(&ns.nft(), "rkube-a").await.unwrap());
    assert!(!remove_table(&ns.nft(), "rkube-a").await.unwrap());
    assert_eq!(nft.list_json("rkube-a").await.unwrap(), None);
    assert!(nft.list_json("rkube-b").await.unwrap().is_some(), "other tables are left alone");
}

/// Connects from inside the namespace; returns what the server said or the error's name,
/// and how long it took.
fn connect(ns: &Netns, addr: &str, port: u16) -> (String, Duration) {
    let script = "import socket,sys\n\
try:\n s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=3)\n print(s.recv(100).decode().strip())\n\
except Exception as e:\n print(type(e).__name__)\n";
    let started = Instant::now();
    let out = ns.sh(&["python3", "-c", script, addr, &port.to_string()]);
    (out.trim().to_string(), started.elapsed())
}

#[tokio::test]
async fn traffic_reaches_endpoints_through_the_rules_and_no_endpoints_is_refused() {
    let Some(ns) = Netns::new() else { return };
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: needs python3");
        return;
    }
    // A veth pair inside the namespace gives it a non-loopback local address.
    ns.sh(&["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ns.sh(&["ip", "addr", "add", "10.99.0.1/24", "dev", "v0"]);
    // A second local address stands for a second pod.
    ns.sh(&["ip", "addr", "add", "10.99.0.2/24", "dev", "v0"]);
    ns.sh(&["ip", "link", "set", "v0", "up"]);
    ns.sh(&["ip", "link", "set", "v1", "up"]);
    // Made-up ClusterIPs need a route to leave the socket layer (then the output hook
    // rewrites them).
    ns.sh(&["ip", "route", "add", "default", "dev", "v0"]);
    let server = "import socket,sys\n\
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
s.bind((sys.argv[1],int(sys.argv[2]))); s.listen(16); print('ready',flush=True)\n\
while True:\n c,_=s.accept(); c.sendall(('hello from '+sys.argv[3]+'\\n').encode()); c.close()\n";
    let mut children = Children(vec![]);
    for (addr, port, tag) in [("10.99.0.1", "8080", "web"), ("10.99.0.2", "8080", "web2"), ("0.0.0.0", "5354", "dns")] {
        let mut child = ns.spawn(&["python3", "-c", server, addr, port, tag]);
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        children.0.push(child);
    }

    let web = service(
        "shop",
        "web",
        json!({"type": "NodePort", "clusterIP": "10.96.5.5", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
    );
    let empty = service(
        "shop",
        "empty",
        json!({"type": "NodePort", "clusterIP": "10.96.5.6", "ports": [{"port": 80, "nodePort": 30081}]}),
    );
    let kube_dns = service(
        "kube-system",
        "kube-dns",
        json!({"clusterIP": "10.96.5.10", "ports": [{"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}),
    );
    let slices = vec![Arc::new(slice("shop", "web", "a", ("http", 8080), &[("10.99.0.1", None)]))];
    let svcs = vec![Arc::new(web), Arc::new(empty), Arc::new(kube_dns)];
    let nft = CommandNft::new(&ns.nft()).unwrap();
    let mut applied = Applied::new(plan(&svcs, &slices, &node(), Some(&dns())));
    nft.apply(&full_script("rkube-t", &base_ops(&node()), &applied)).await.unwrap();

    assert_eq!(connect(&ns, "10.96.5.5", 80).0, "hello from web", "ClusterIP from the host");
    assert_eq!(connect(&ns, "10.99.0.1", 30080).0, "hello from web", "NodePort on a local address");
    assert_eq!(connect(&ns, "10.96.5.10", 53).0, "hello from dns", "cluster DNS redirected to the node");
    for (addr, port) in [("10.96.5.6", 80), ("10.99.0.1", 30081)] {
        let (got, took) = connect(&ns, addr, port);
        assert_eq!(got, "ConnectionRefusedError", "{addr}:{port} has no endpoints");
        assert!(took < Duration::from_secs(2), "refused quickly, not a timeout: {took:?}");
    }

    // Incremental changes to the table nft already holds (only map elements change): the
    // empty Service gains an endpoint, web a second one; both are picked at random.
    let mut slices = slices;
    slices.push(Arc::new(slice("shop", "empty", "a", ("", 8080), &[("10.99.0.2", None)])));
    slices[0] = Arc::new(slice("shop", "web", "a", ("http", 8080), &[("10.99.0.1", None), ("10.99.0.2", None)]));
    for name in ["empty", "web"] {
        let k = ServiceKey::new("shop", name);
        let rules = plan(&svcs, &slices, &node(), Some(&dns())).services.remove(&k);
        nft.apply(&render("rkube-t", &applied.update(&k, rules))).await.unwrap();
    }
    assert_eq!(connect(&ns, "10.96.5.6", 80).0, "hello from web2", "ClusterIP that had no endpoints");
    assert_eq!(connect(&ns, "10.99.0.1", 30081).0, "hello from web2", "NodePort that had no endpoints");
    let seen: std::collections::BTreeSet<String> = (0..24).map(|_| connect(&ns, "10.96.5.5", 80).0).collect();
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["hello from web", "hello from web2"], "both endpoints picked");
    // Without our table the ClusterIP is just an unrouted address.
    assert!(remove_table(&ns.nft(), "rkube-t").await.unwrap());
    assert_ne!(connect(&ns, "10.96.5.5", 80).0, "hello from web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_loop_drives_real_nft() {
    let Some(ns) = Netns::new() else { return };
    let (s, mut services) = kube::runtime::reflector::store();
    let (e, mut slices) = kube::runtime::reflector::store();
    use kube::runtime::watcher::Event;
    // InitDone first: it swaps in the (empty) initial list.
    services.apply_watcher_event(&Event::InitDone);
    slices.apply_watcher_event(&Event::InitDone);
    let (svcs, sl) = sample(&["10.0.0.1"]);
    for svc in svcs {
        services.apply_watcher_event(&Event::Apply((*svc).clone()));
    }
    for s in sl {
        slices.apply_watcher_event(&Event::Apply((*s).clone()));
    }
    let view = ServiceView::from_stores(s, e);
    let config = Config { table: "rkube-run".into(), nft: ns.nft(), node: node(), local_dns: Some(dns()) };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run(view.clone(), config, stop));
    let listed = |ns: &Netns| {
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "nft", "list", "table", "ip", "rkube-run"])
            .output()
            .unwrap()
    };
    let wait_for = |ns: &Netns, text: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = String::from_utf8_lossy(&listed(ns).stdout).into_owned();
            if out.contains(text) {
                return;
            }
            assert!(Instant::now() < deadline, "{text:?} never appeared in:\n{out}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(&ns, "dnat to 10.0.0.1:8080");
    slices.apply_watcher_event(&Event::Apply(slice("shop", "web", "a", ("http", 8080), &[("10.0.0.9", None)])));
    view.touch(Some(ServiceKey::new("shop", "web")));
    wait_for(&ns, "dnat to 10.0.0.9:8080");
    stop_tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert!(listed(&ns).status.success(), "the table outlives the loop");
}
