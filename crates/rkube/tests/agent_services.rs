//! End-to-end: Services through the agent's nftables proxy and cluster DNS, with real
//! containers, driven by the real kubectl. ClusterIP from pods and from the node (every
//! replica answers), hairpin, NodePort, the built-in LoadBalancer, a clean reject without
//! endpoints, endpoints following a scale-down, rules gone with the Service and with
//! `rkube killall`; DNS names of services, headless services and ExternalNames, the pods'
//! resolv.conf by dnsPolicy, and the seed's manifest 03 waiting in Init for its services.
//!
//! Each test gives its cluster a service range no other test uses, so addresses reached
//! from the node (the output hook, which no pod bridge scopes) are unambiguous while
//! other clusters run beside it.
//!
//! Needs root, containerd, runc, the CNI plugins and nft (scripts/install-deps.sh).

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, Kubectl, wait_for};
use serde_json::Value;

fn start(cidr: &str, service_cidr: &str, node: &str) -> (Cluster, Kubectl) {
    if !std::path::Path::new("/usr/bin/containerd").exists() {
        panic!("containerd is not installed: run scripts/install-deps.sh");
    }
    let c = Cluster::start_with_agent(&["--cluster-cidr", cidr, "--service-cidr", service_cidr, "--node-name", node]);
    let k = c.kubectl("1.33");
    wait_for("node Ready", Duration::from_secs(60), || common::node_ready(&k, node));
    (c, k)
}

fn json(k: &Kubectl, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&k.run(&all)).expect("kubectl json")
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The node's InternalIP.
fn node_ip(k: &Kubectl, node: &str) -> String {
    k.run(&["get", "node", node, "-o", "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}"])
}

fn cluster_ip(k: &Kubectl, svc: &str) -> String {
    k.run(&["get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}"])
}

/// `GET path` over HTTP/1.0 on `ip:port`; the body.
fn http_get(ip: &str, port: u16, path: &str) -> Result<String, std::io::Error> {
    let addr = format!("{ip}:{port}").parse().map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or(out))
}

/// The pod names `n` requests to `ip:port/hostname` reached.
fn hostnames_from_node(ip: &str, port: u16, n: usize) -> BTreeSet<String> {
    (0..n).filter_map(|_| http_get(ip, port, "/hostname").ok()).map(|b| b.trim().to_string()).collect()
}

/// The names and IPs of the Running, Ready pods matching `selector`.
fn ready_pods(k: &Kubectl, selector: &str) -> Vec<(String, String)> {
    items(&json(k, &["get", "pods", "-l", selector]))
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && common::condition(p, "Ready") == "True")
        .map(|p| {
            (p["metadata"]["name"].as_str().unwrap_or("").into(), p["status"]["podIP"].as_str().unwrap_or("").into())
        })
        .collect()
}

/// The ready addresses of a Service's EndpointSlices.
fn slice_ready_ips(k: &Kubectl, svc: &str) -> BTreeSet<String> {
    items(&json(k, &["get", "endpointslices", "-l", &format!("kubernetes.io/service-name={svc}")]))
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] != false)
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// The host's whole nftables ruleset.
fn ruleset() -> String {
    let out = Command::new("nft").args(["list", "ruleset"]).output().expect("nft is not installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: rkube.local/testserver:1.0
        args: ["--port", "8080"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: busybox:1.28
    command: ["sh", "-c", "mkdir -p /www && echo self-ok > /www/index.html && exec httpd -f -p 8081 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: self}
spec:
  selector: {app: client}
  ports: [{port: 81, targetPort: 8081}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing-has-this}
  ports: [{port: 80, targetPort: 8080}]
"#;

#[test]
fn services_reach_every_replica_from_pods_and_the_node() {
    let (c, k) = start("10.221.0.0/16", "10.120.0.0/16", "svc-e2e");
    let node = node_ip(&k, "svc-e2e");
    k.run_stdin(&["apply", "-f", "-"], WEB);
    let web = wait_for("three web pods Ready", Duration::from_secs(90), || {
        let ps = ready_pods(&k, "app=web");
        (ps.len() == 3).then_some(ps.clone()).ok_or_else(|| k.run(&["get", "pods", "-o", "wide"]))
    });
    wait_for("the client pod Ready", Duration::from_secs(60), || {
        (ready_pods(&k, "app=client").len() == 1).then_some(()).ok_or_else(|| k.run(&["get", "pods", "-o", "wide"]))
    });
    let names: BTreeSet<String> = web.iter().map(|(n, _)| n.clone()).collect();
    let ips: BTreeSet<String> = web.iter().map(|(_, ip)| ip.clone()).collect();

    // `kubectl get endpointslices` lists exactly the ready pods.
    wait_for("the web slice to list the three pods", Duration::from_secs(10), || {
        let got = slice_ready_ips(&k, "web");
        (got == ips).then_some(()).ok_or(format!("{got:?} != {ips:?}"))
    });
    let listed = k.run(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]);
    assert!(listed.contains("IPv4") && listed.contains("8080"), "{listed}");

    // From the node: the ClusterIP spreads over every replica.
    let vip = cluster_ip(&k, "web");
    assert!(vip.starts_with("10.120."), "{vip}");
    let seen = wait_for("every replica behind the ClusterIP from the node", Duration::from_secs(20), || {
        let seen = hostnames_from_node(&vip, 80, 40);
        (seen == names).then_some(seen.clone()).ok_or(format!("{seen:?} != {names:?}"))
    });
    assert_eq!(seen, names);

    // From a pod, by short name (the pod's resolv.conf searches default.svc.cluster.local)
    // and by full name: every replica again.
    let from_pod = |url: &str| {
        let script = format!("for i in $(seq 40); do timeout 5 wget -q -O - {url}; echo; done");
        k.run(&["exec", "client", "--", "sh", "-c", &script])
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(from_pod("http://web/hostname"), names);
    assert_eq!(from_pod("http://web.default.svc.cluster.local/hostname"), names);
    // Hairpin: the client reaches itself through its own Service.
    let own = k.run(&["exec", "client", "--", "timeout", "5", "wget", "-q", "-O", "-", "http://self:81/"]);
    assert_eq!(own.trim(), "self-ok");

    // No endpoints: refused at once, from the node and from a pod, not a timeout.
    let empty = cluster_ip(&k, "empty");
    let t = Instant::now();
    let err = http_get(&empty, 80, "/").expect_err("a Service without endpoints answered");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert!(t.elapsed() < Duration::from_secs(1), "refusal took {:?}", t.elapsed());
    let r = k.try_run(&["exec", "client", "--", "timeout", "5", "wget", "-q", "-O", "-", "http://empty/"]);
    assert!(r.code != 0 && r.stderr.to_lowercase().contains("refused"), "{}", r.stderr);

    // NodePort on the node's address.
    let node_port = 30000 + (std::process::id() % 2700) as u16;
    let np = format!(
        r#"{{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "web-np"}},
            "spec": {{"type": "NodePort", "selector": {{"app": "web"}},
                     "ports": [{{"port": 80, "targetPort": "http", "nodePort": {node_port}}}]}}}}"#
    );
    k.run_stdin(&["apply", "-f", "-"], &np);
    wait_for("the NodePort to answer", Duration::from_secs(10), || {
        let body = http_get(&node, node_port, "/hostname").map_err(|e| e.to_string())?;
        names.contains(body.trim()).then_some(()).ok_or(body)
    });

    // LoadBalancer: the built-in balancer publishes the node's address, which answers on
    // the Service port.
    let lb_port = common::free_port();
    let lb = format!(
        r#"{{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "web-lb"}},
            "spec": {{"type": "LoadBalancer", "selector": {{"app": "web"}},
                     "ports": [{{"port": {lb_port}, "targetPort": "http"}}]}}}}"#
    );
    k.run_stdin(&["apply", "-f", "-"], &lb);
    let ingress = wait_for("the load balancer's ingress address", Duration::from_secs(10), || {
        let ip = k.run(&["get", "svc", "web-lb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]);
        (!ip.is_empty()).then_some(ip.clone()).ok_or(k.run(&["get", "svc", "web-lb"]))
    });
    assert_eq!(ingress, node);
    let shown = k.run(&["get", "svc", "web-lb"]);
    assert!(shown.contains(&node), "EXTERNAL-IP not shown: {shown}");
    wait_for("the load balancer to answer", Duration::from_secs(10), || {
        let body = http_get(&ingress, lb_port, "/hostname").map_err(|e| e.to_string())?;
        names.contains(body.trim()).then_some(()).ok_or(body)
    });

    // UDP: a selector-less Service with a hand-written slice pointing at a UDP echo of
    // this test on the node's address; a datagram to the ClusterIP comes back.
    let echo = std::net::UdpSocket::bind((node.as_str(), 0)).expect("udp echo");
    let echo_port = echo.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&[b"pong:", &buf[..n]].concat(), from);
        }
    });
    let udp = format!(
        r#"{{"apiVersion": "v1", "kind": "List", "items": [
            {{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "udp"}},
              "spec": {{"ports": [{{"name": "u", "port": 91, "targetPort": {echo_port}, "protocol": "UDP"}}]}}}},
            {{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {{"name": "udp-1", "labels": {{"kubernetes.io/service-name": "udp"}}}},
              "addressType": "IPv4", "ports": [{{"name": "u", "port": {echo_port}, "protocol": "UDP"}}],
              "endpoints": [{{"addresses": ["{node}"]}}]}}]}}"#
    );
    k.run_stdin(&["apply", "-f", "-"], &udp);
    let udp_ip = cluster_ip(&k, "udp");
    wait_for("a UDP answer through the ClusterIP", Duration::from_secs(10), || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(500))).map_err(|e| e.to_string())?;
        s.send_to(b"ping", (udp_ip.as_str(), 91)).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        let (n, _) = s.recv_from(&mut buf).map_err(|e| e.to_string())?;
        (&buf[..n] == b"pong:ping").then_some(()).ok_or(String::from_utf8_lossy(&buf[..n]).into_owned())
    });

    // sessionAffinity ClientIP: every request from the node reaches the same pod.
    let sticky = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sticky"},
        "spec": {"selector": {"app": "web"}, "sessionAffinity": "ClientIP", "ports": [{"port": 80, "targetPort": "http"}]}}"#;
    k.run_stdin(&["apply", "-f", "-"], sticky);
    let sticky_ip = cluster_ip(&k, "sticky");
    let seen = wait_for("the sticky Service to answer", Duration::from_secs(10), || {
        let seen = hostnames_from_node(&sticky_ip, 80, 20);
        (!seen.is_empty()).then_some(seen.clone()).ok_or("no answer".to_string())
    });
    assert_eq!(seen.len(), 1, "ClientIP affinity spread requests: {seen:?}");

    // Scaling down: the slice follows within a second (timed by a watch from the scale
    // request), and so do the rules.
    let (took, kept) = scale_and_watch_slice(&c.kubeconfig, "web", 1);
    eprintln!("endpoints followed the scale-down in {took:?}");
    assert!(took < Duration::from_secs(1), "endpoints took {took:?}");
    let survivor = web.iter().find(|(_, ip)| kept.contains(ip)).map(|(n, _)| n.clone()).expect("a known pod");
    wait_for("every request to reach the one pod left", Duration::from_secs(5), || {
        let seen = hostnames_from_node(&vip, 80, 10);
        (seen.len() == 1 && seen.contains(&survivor)).then_some(()).ok_or(format!("{seen:?}"))
    });

    // The agent going away (kill -9 of the server and its agent) leaves the rules: the
    // Service keeps answering, and a restarted agent takes the table over.
    let dir = c.kill9();
    let one: BTreeSet<String> = [survivor.clone()].into();
    assert_eq!(hostnames_from_node(&vip, 80, 20), one, "Service traffic stopped with the agent");
    let c = Cluster::start_in_with_agent(
        dir,
        &["--cluster-cidr", "10.221.0.0/16", "--service-cidr", "10.120.0.0/16", "--node-name", "svc-e2e"],
    );
    let k = c.kubectl("1.33");
    wait_for("node Ready again", Duration::from_secs(60), || common::node_ready(&k, "svc-e2e"));
    assert_eq!(hostnames_from_node(&vip, 80, 20), one, "Service traffic after the restart");

    // Deleting the Service removes its rules.
    assert!(ruleset().contains(&vip), "the ClusterIP is not in the ruleset");
    k.run(&["delete", "svc", "web"]);
    wait_for("the Service's rules to go", Duration::from_secs(10), || {
        (!ruleset().contains(&vip)).then_some(()).ok_or("still there".to_string())
    });

    // killall removes our table: nothing of this service range is left.
    assert!(ruleset().contains("10.120."), "no rule of ours before killall");
    let report = c.killall();
    let left = ruleset();
    assert!(!left.contains("10.120."), "{report}\n{left}");
}

/// Scales Deployment `name` to `replicas` and times, with a watch opened before the scale
/// request, until the Service of the same name has that many ready endpoints; returns
/// the time and their addresses.
fn scale_and_watch_slice(kubeconfig: &std::path::Path, name: &str, replicas: usize) -> (Duration, BTreeSet<String>) {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
        let selector = format!("kubernetes.io/service-name={name}");
        let rv =
            slices.list(&ListParams::default().labels(&selector)).await.expect("list slices").metadata.resource_version;
        let mut events = slices
            .watch(&WatchParams::default().labels(&selector).timeout(30), &rv.unwrap_or_default())
            .await
            .expect("watch slices")
            .boxed();
        let deployments: Api<Deployment> = Api::namespaced(client, "default");
        let started = Instant::now();
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        deployments.patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("scale");
        while let Some(ev) = events.try_next().await.expect("watch") {
            if let WatchEvent::Added(s) | WatchEvent::Modified(s) = ev {
                let ready: BTreeSet<String> = s
                    .endpoints
                    .iter()
                    .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
                    .flat_map(|e| e.addresses.clone())
                    .collect();
                if ready.len() == replicas {
                    return (started.elapsed(), ready);
                }
            }
        }
        panic!("the watch ended before the slice had {replicas} ready endpoints");
    })
}

/// busybox `nslookup`'s answer for `name`. (It tries every search domain and fails if
/// any of them has no answer, so success is the name's answer being there.)
fn looked_up(k: &Kubectl, pod: &str, name: &str) -> Result<String, String> {
    let r = k.try_run(&["exec", pod, "--", "nslookup", name]);
    let answered = r.stdout.lines().skip(2).any(|l| l.starts_with("Address") || l.contains("canonical name"));
    answered.then(|| r.stdout.clone()).ok_or(format!("{}{}", r.stdout, r.stderr))
}

const DNS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: dns-client}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox:1.28, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: host-dns}
spec:
  terminationGracePeriodSeconds: 0
  dnsPolicy: Default
  containers: [{name: c, image: busybox:1.28, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: own-dns}
spec:
  terminationGracePeriodSeconds: 0
  dnsPolicy: "None"
  dnsConfig:
    nameservers: ["192.0.2.1"]
    searches: ["example.test"]
    options: [{name: ndots, value: "2"}]
  containers: [{name: c, image: busybox:1.28, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Service
metadata: {name: backends}
spec:
  clusterIP: None
  selector: {app: backend}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: backend-0, labels: {app: backend}}
spec:
  hostname: backend-0
  subdomain: backends
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: rkube.local/testserver:1.0, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: backend-1, labels: {app: backend}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: rkube.local/testserver:1.0, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: alias}
spec:
  type: ExternalName
  externalName: my-service.default.svc.cluster.local
"#;

#[test]
fn cluster_dns_answers_services_headless_services_and_external_names() {
    let (_c, k) = start("10.222.0.0/16", "10.121.0.0/16", "dns-e2e");
    let seed = common::seed_manifests();
    // The seed's manifest 03 first: it stays in Init until its two Services exist.
    k.run(&["apply", "-f", &seed.join("03-myapp-pod-init-containers.yaml").display().to_string()]);
    k.run(&["apply", "-f", &seed.join("07-service-my-service.yaml").display().to_string()]);
    k.run_stdin(&["apply", "-f", "-"], DNS);

    // kube-dns is the cluster DNS Service, the tenth address of the range.
    assert_eq!(
        k.run(&["get", "svc", "-n", "kube-system", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"]),
        "10.121.0.10"
    );
    wait_for("the DNS client pods Running", Duration::from_secs(90), || {
        let ready = ["dns-client", "host-dns", "own-dns", "backend-0", "backend-1"]
            .iter()
            .all(|p| k.run(&["get", "pod", p, "-o", "jsonpath={.status.phase}"]) == "Running");
        ready.then_some(()).ok_or_else(|| k.run(&["get", "pods", "-o", "wide"]))
    });

    // resolv.conf by dnsPolicy.
    let resolv = |pod: &str| k.run(&["exec", pod, "--", "cat", "/etc/resolv.conf"]);
    let cluster_first = resolv("dns-client");
    assert!(cluster_first.contains("nameserver 10.121.0.10"), "{cluster_first}");
    assert!(
        cluster_first.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{cluster_first}"
    );
    assert!(cluster_first.contains("options ndots:5"), "{cluster_first}");
    let host = std::fs::read_to_string("/run/systemd/resolve/resolv.conf")
        .or_else(|_| std::fs::read_to_string("/etc/resolv.conf"))
        .unwrap_or_default();
    let host_server = host.lines().find(|l| l.starts_with("nameserver")).unwrap_or("nameserver").to_string();
    let default = resolv("host-dns");
    assert!(default.contains(&host_server) && !default.contains("10.121.0.10"), "{default}");
    let own = resolv("own-dns");
    assert!(own.contains("nameserver 192.0.2.1") && own.contains("search example.test"), "{own}");
    assert!(own.contains("ndots:2") && !own.contains("10.121.0.10"), "{own}");

    // A ClusterIP Service by full and short name; the API's own Service.
    let my_service = cluster_ip(&k, "my-service");
    let out = wait_for("my-service in DNS", Duration::from_secs(10), || {
        looked_up(&k, "dns-client", "my-service.default.svc.cluster.local")
    });
    assert!(out.contains(&my_service), "{out}");
    assert!(looked_up(&k, "dns-client", "my-service").expect("short name").contains(&my_service));
    // (busybox's nslookup searches only for names without a dot.)
    for name in ["kubernetes", "kubernetes.default.svc.cluster.local"] {
        let api = looked_up(&k, "dns-client", name).expect(name);
        assert!(api.lines().any(|l| l.trim_end().ends_with(" 10.121.0.1")), "{api}");
    }

    // Headless: the pods' own addresses; a pod's hostname in its subdomain.
    let backends: BTreeSet<String> = ["backend-0", "backend-1"]
        .iter()
        .map(|p| k.run(&["get", "pod", p, "-o", "jsonpath={.status.podIP}"]))
        .collect();
    let out = wait_for("the headless Service's pods in DNS", Duration::from_secs(20), || {
        let out = looked_up(&k, "dns-client", "backends.default.svc.cluster.local")?;
        backends.iter().all(|ip| out.contains(ip.as_str())).then_some(out.clone()).ok_or(out)
    });
    assert!(!out.contains(&my_service), "{out}");
    let b0 = k.run(&["get", "pod", "backend-0", "-o", "jsonpath={.status.podIP}"]);
    let out = looked_up(&k, "dns-client", "backend-0.backends.default.svc.cluster.local").expect("pod hostname");
    assert!(out.contains(&b0), "{out}");

    // ExternalName: a CNAME.
    let out = looked_up(&k, "dns-client", "alias.default.svc.cluster.local").unwrap_or_else(|e| e);
    assert!(out.contains("canonical name = my-service.default.svc.cluster.local"), "{out}");

    // A name that does not exist.
    let r = k.try_run(&["exec", "dns-client", "--", "nslookup", "nope.default.svc.cluster.local"]);
    assert!(r.code != 0 && format!("{}{}", r.stdout, r.stderr).contains("NXDOMAIN"), "{}{}", r.stdout, r.stderr);

    // Seed 03: still initializing, then running once myservice and mydb exist.
    let phase = k.run(&["get", "pod", "myapp-pod", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Pending", "{}", k.run(&["describe", "pod", "myapp-pod"]));
    let listed = k.run(&["get", "pod", "myapp-pod"]);
    assert!(listed.contains("Init:0/2"), "{listed}");
    k.run(&["create", "service", "clusterip", "myservice", "--tcp=80:9376"]);
    k.run(&["create", "service", "clusterip", "mydb", "--tcp=80:9377"]);
    wait_for("myapp-pod Running", Duration::from_secs(60), || {
        let phase = k.run(&["get", "pod", "myapp-pod", "-o", "jsonpath={.status.phase}"]);
        (phase == "Running").then_some(()).ok_or_else(|| k.run(&["get", "pod", "myapp-pod"]))
    });
    let logs = k.run(&["logs", "myapp-pod", "-c", "init-myservice"]);
    assert!(logs.contains("waiting for myservice"), "{logs}");
}

/// The Deployment's pods when all `replicas` run `image` and are Ready, none terminating.
fn all_on(k: &Kubectl, image: &str, replicas: usize) -> Result<(), String> {
    let ps = items(&json(k, &["get", "pods", "-l", "app=monfront"]));
    let done = ps.len() == replicas
        && ps.iter().all(|p| {
            p["spec"]["containers"][0]["image"] == image
                && p["metadata"]["deletionTimestamp"].is_null()
                && common::condition(p, "Ready") == "True"
        });
    done.then_some(()).ok_or_else(|| k.run(&["get", "pods", "-o", "wide"]))
}

/// `ok` and `FAIL` lines of the client loop so far.
fn tally(k: &Kubectl) -> (usize, usize) {
    let logs = k.try_run(&["logs", "loop"]).stdout;
    (logs.lines().filter(|l| l.trim() == "ok").count(), logs.lines().filter(|l| l.contains("FAIL")).count())
}

#[test]
fn a_rolling_update_of_seed_09_loses_no_request() {
    let store = tempfile::Builder::new().prefix("rkube-registry-").tempdir().expect("temp dir");
    let mirror = common::registry::Registry::start(&store.path().join("mirror"), None);
    let registries = format!("mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n", mirror.host());
    let c = Cluster::start_with_agent_prepared(
        &["--cluster-cidr", "10.223.0.0/16", "--service-cidr", "10.122.0.0/16", "--node-name", "rollout-e2e"],
        |data| std::fs::write(data.join("agent/registries.yaml"), &registries).expect("write registries.yaml"),
    );
    let k = c.kubectl("1.33");
    wait_for("node Ready", Duration::from_secs(60), || common::node_ready(&k, "rollout-e2e"));
    // Seed 09 pulls with imagePullPolicy Always: the mirror serves docker.io.
    for tag in ["1.16", "1.17"] {
        let image = format!("docker.io/library/nginx:{tag}");
        common::registry::push(&c, &image, &mirror, &format!("library/nginx:{tag}"), None);
    }
    let seed = common::seed_manifests();
    k.run(&["apply", "-f", &seed.join("09-deployment-myfirstdeploy.yaml").display().to_string()]);
    wait_for("five nginx:1.16 pods Ready", Duration::from_secs(120), || all_on(&k, "nginx:1.16", 5));
    k.run(&["expose", "deployment", "myfirstdeploy", "--name=front", "--port=80"]);
    let client = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loop"},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox:1.28",
          "command": ["sh", "-c", "while true; do if timeout 3 wget -q -O /dev/null http://front/; then echo ok; else echo FAIL; fi; sleep 0.05; done"]}]}}"#;
    k.run_stdin(&["apply", "-f", "-"], client);
    wait_for("the client loop to get answers", Duration::from_secs(60), || {
        let (ok, _) = tally(&k);
        (ok >= 10).then_some(()).ok_or(format!("{ok} answers"))
    });
    let (before, _) = tally(&k);

    k.run(&["set", "image", "deployment/myfirstdeploy", "podfront=nginx:1.17"]);
    wait_for("five nginx:1.17 pods Ready", Duration::from_secs(180), || all_on(&k, "nginx:1.17", 5));
    k.run(&["rollout", "status", "deployment/myfirstdeploy", "--timeout=60s"]);
    std::thread::sleep(Duration::from_secs(2));
    let (ok, failed) = tally(&k);
    eprintln!("{} requests during the rollout, {failed} failed", ok - before);
    assert!(ok - before >= 50, "too few requests during the rollout to mean anything: {}", ok - before);
    assert_eq!(failed, 0, "{}", k.run(&["logs", "loop"]));
    // Each old pod left the node's proxy before its stop signal, in time.
    let log = c.log();
    let drained = log.matches("pod drained from the service proxy").count();
    assert!(drained >= 5, "{drained} pods drained from the proxy before being stopped");
    assert!(!log.contains("did not drop the pod in time"), "a deleted pod was stopped before the proxy dropped it");
}
