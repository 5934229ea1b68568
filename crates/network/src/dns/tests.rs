//! Object builders for the table tests, and tests of the real server on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use super::{Config, Dns, host_upstreams, start};
use crate::services::{ServiceKey, ServiceView};

pub fn svc_json(value: serde_json::Value) -> Service {
    serde_json::from_value(value).expect("service json")
}

fn ports() -> serde_json::Value {
    json!([{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 9090}])
}

pub fn service(ns: &str, name: &str, ip: &str) -> Service {
    svc_json(
        json!({"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": ports()}}),
    )
}

pub fn headless(ns: &str, name: &str, publish_not_ready: bool) -> Service {
    svc_json(
        json!({"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": ports(), "publishNotReadyAddresses": publish_not_ready}}),
    )
}

pub fn external(ns: &str, name: &str, target: &str) -> Service {
    svc_json(
        json!({"metadata": {"name": name, "namespace": ns}, "spec": {"type": "ExternalName", "externalName": target}}),
    )
}

/// A slice of Service `svc` with port `http` 8080/TCP and endpoints `(address, hostname,
/// ready)`.
pub fn slice(ns: &str, svc: &str, suffix: &str, endpoints: &[(&str, Option<&str>, Option<bool>)]) -> EndpointSlice {
    let endpoints: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|(ip, hostname, ready)| {
            let mut ep = json!({"addresses": [ip], "conditions": {}});
            if let Some(h) = hostname {
                ep["hostname"] = json!(h);
            }
            if let Some(r) = ready {
                ep["conditions"]["ready"] = json!(r);
            }
            ep
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{svc}-{suffix}"), "namespace": ns, "labels": {crate::services::LABEL_SERVICE_NAME: svc}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .expect("slice json")
}

#[test]
fn nameservers_of_resolv_conf() {
    let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver  fd00::53 # v6\nnameserver fe80::1%eth0\n;nameserver 1.1.1.1\nnameserver 10.0.0.2\noptions ndots:5\nnameserver bogus\n";
    let want: Vec<SocketAddr> = vec!["10.0.0.2:53".parse().unwrap(), "[fd00::53]:53".parse().unwrap()];
    assert_eq!(host_upstreams(text), want);
    assert!(host_upstreams("").is_empty());
}

/// A view the test fills by hand.
struct Cluster {
    view: ServiceView,
    services: Writer<Service>,
    slices: Writer<EndpointSlice>,
}

impl Cluster {
    fn new(services: Vec<Service>, slices: Vec<EndpointSlice>) -> Cluster {
        let (svc_store, mut svc_writer) = reflector::store::<Service>();
        let (slice_store, mut slice_writer) = reflector::store::<EndpointSlice>();
        // An initial list, as the watcher delivers it (InitDone swaps it in).
        svc_writer.apply_watcher_event(&Event::Init);
        slice_writer.apply_watcher_event(&Event::Init);
        for s in services {
            svc_writer.apply_watcher_event(&Event::InitApply(s));
        }
        for s in slices {
            slice_writer.apply_watcher_event(&Event::InitApply(s));
        }
        svc_writer.apply_watcher_event(&Event::InitDone);
        slice_writer.apply_watcher_event(&Event::InitDone);
        Cluster { view: ServiceView::from_stores(svc_store, slice_store), services: svc_writer, slices: slice_writer }
    }
}

/// A fake upstream resolver on loopback: answers A questions with 192.0.2.1, except
/// `big.example.` which over UDP is truncated and over TCP gets 100 addresses.
async fn fake_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let answer = |request: &Message, over_tcp: bool| -> Vec<u8> {
        let mut reply = Message::new();
        reply
            .set_id(request.id())
            .set_message_type(hickory_proto::op::MessageType::Response)
            .set_recursion_available(true);
        reply.add_queries(request.queries().iter().cloned());
        let query = &request.queries()[0];
        let count = if query.name().to_ascii() == "big.example." { if over_tcp { 100 } else { 0 } } else { 1 };
        if count == 0 {
            reply.set_truncated(true);
        }
        if query.name().to_ascii() == "missing.example." {
            reply.set_response_code(ResponseCode::NXDomain);
        } else {
            for i in 0..count {
                reply.add_answer(Record::from_rdata(
                    query.name().clone(),
                    60,
                    RData::A(A::new(192, 0, 2, 1 + (i % 200) as u8)),
                ));
            }
        }
        reply.to_vec().unwrap()
    };
    let task = tokio::spawn(async move {
        let tcp_task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                let mut len = [0u8; 2];
                if stream.read_exact(&mut len).await.is_err() {
                    continue;
                }
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut buf).await.is_err() {
                    continue;
                }
                let bytes = answer(&Message::from_vec(&buf).unwrap(), true);
                let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                framed.extend(bytes);
                let _ = stream.write_all(&framed).await;
            }
        });
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            let bytes = answer(&Message::from_vec(&buf[..n]).unwrap(), false);
            let _ = udp.send_to(&bytes, peer).await;
        }
        tcp_task.abort();
    });
    (addr, task)
}

fn question(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut msg = Message::new();
    msg.set_id(rand::random())
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    msg.set_edns(edns);
    msg.to_vec().unwrap()
}

async fn ask_udp(dns: &Dns, name: &str, qtype: RecordType) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let q = question(name, qtype);
    socket.send_to(&q, dns.addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n =
        tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf)).await.expect("an answer in time").unwrap();
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.id(), u16::from_be_bytes([q[0], q[1]]));
    reply
}

async fn ask_tcp(dns: &Dns, name: &str, qtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(dns.addr).await.unwrap();
    let q = question(name, qtype);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend(q);
    stream.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn data(msg: &Message) -> Vec<String> {
    msg.answers().iter().map(|r| format!("{} {}", r.record_type(), r.data())).collect()
}

async fn wait_ready(dns: &Dns) {
    for _ in 0..200 {
        if dns.index().ready {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the index was never built");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_over_udp_and_tcp_and_follows_changes() {
    let (upstream, upstream_task) = fake_upstream().await;
    let mut cluster = Cluster::new(
        vec![
            service("shop", "web", "10.96.0.10"),
            headless("shop", "db", false),
            external("shop", "ext", "www.example"),
        ],
        vec![slice("shop", "db", "a", &[("10.0.0.1", Some("db-0"), Some(true)), ("10.0.0.2", None, Some(false))])],
    );
    let (stop_tx, stop) = watch::channel(false);
    let config =
        Config { listen: "127.0.0.1:0".parse().unwrap(), domain: "cluster.local".into(), upstreams: vec![upstream] };
    let (dns, task) = start(cluster.view.clone(), config, stop).await.unwrap();
    assert_ne!(dns.addr.port(), 0);
    wait_ready(&dns).await;

    let z = "svc.cluster.local.";
    let a = ask_udp(&dns, &format!("web.shop.{z}"), RecordType::A).await;
    assert_eq!(
        (a.response_code(), a.authoritative(), data(&a)),
        (ResponseCode::NoError, true, vec!["A 10.96.0.10".into()])
    );
    let a = ask_tcp(&dns, &format!("Web.Shop.{z}"), RecordType::A).await;
    assert_eq!(data(&a), ["A 10.96.0.10"]);
    let srv = ask_udp(&dns, &format!("_http._tcp.web.shop.{z}"), RecordType::SRV).await;
    assert_eq!(data(&srv), [format!("SRV 0 100 80 web.shop.{z}")]);
    let headless = ask_udp(&dns, &format!("db.shop.{z}"), RecordType::A).await;
    assert_eq!(data(&headless), ["A 10.0.0.1"]);
    let host = ask_tcp(&dns, &format!("db-0.db.shop.{z}"), RecordType::A).await;
    assert_eq!(data(&host), ["A 10.0.0.1"]);
    let srv = ask_udp(&dns, &format!("_http._tcp.db.shop.{z}"), RecordType::SRV).await;
    assert_eq!(data(&srv), [format!("SRV 0 100 8080 db-0.db.shop.{z}")]);
    assert_eq!(srv.additionals().len(), 1);
    let cname = ask_udp(&dns, &format!("ext.shop.{z}"), RecordType::A).await;
    assert_eq!(data(&cname), ["CNAME www.example.", "A 192.0.2.1"], "the CNAME, chased upstream");
    let ptr = ask_udp(&dns, "10.0.96.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(data(&ptr), [format!("PTR web.shop.{z}")]);
    let nx = ask_udp(&dns, &format!("nope.shop.{z}"), RecordType::A).await;
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    assert_eq!(nx.name_servers()[0].record_type(), RecordType::SOA);
    let nodata = ask_udp(&dns, &format!("web.shop.{z}"), RecordType::AAAA).await;
    assert_eq!((nodata.response_code(), nodata.answers().len()), (ResponseCode::NoError, 0));
    let pod = ask_udp(&dns, "10-1-2-3.shop.pod.cluster.local.", RecordType::A).await;
    assert_eq!(data(&pod), ["A 10.1.2.3"]);

    // Forwarding: UDP, the TCP retry of a truncated answer, and the client's own TCP.
    let fwd = ask_udp(&dns, "www.example.", RecordType::A).await;
    assert_eq!(
        (fwd.response_code(), fwd.authoritative(), data(&fwd)),
        (ResponseCode::NoError, false, vec!["A 192.0.2.1".into()])
    );
    let missing = ask_udp(&dns, "missing.example.", RecordType::A).await;
    assert_eq!(missing.response_code(), ResponseCode::NXDomain);
    let big = ask_tcp(&dns, "big.example.", RecordType::A).await;
    assert_eq!(big.answers().len(), 100);
    let big = ask_udp(&dns, "big.example.", RecordType::A).await;
    assert!(big.truncated(), "100 records do not fit the client's 1232 bytes");
    let unknown_ptr = ask_udp(&dns, "1.2.0.192.in-addr.arpa.", RecordType::PTR).await;
    // (The fake upstream answers every question with an A record.)
    assert_eq!(data(&unknown_ptr), ["A 192.0.2.1"], "unknown reverse names are relayed");

    // A change, applied through the view, shows in the next answers.
    cluster.services.apply_watcher_event(&Event::Apply(service("shop", "web", "10.96.0.99")));
    cluster.view.touch(Some(ServiceKey::new("shop", "web")));
    cluster.services.apply_watcher_event(&Event::Apply(service("shop", "new", "10.96.0.50")));
    cluster.view.touch(Some(ServiceKey::new("shop", "new")));
    cluster.slices.apply_watcher_event(&Event::Apply(slice(
        "shop",
        "db",
        "a",
        &[("10.0.0.1", Some("db-0"), Some(true)), ("10.0.0.2", None, Some(true))],
    )));
    cluster.view.touch(Some(ServiceKey::new("shop", "db")));
    let mut seen = false;
    for _ in 0..100 {
        let a = ask_udp(&dns, &format!("web.shop.{z}"), RecordType::A).await;
        let new = ask_udp(&dns, &format!("new.shop.{z}"), RecordType::A).await;
        let db = ask_udp(&dns, &format!("db.shop.{z}"), RecordType::A).await;
        if data(&a) == ["A 10.96.0.99"] && data(&new) == ["A 10.96.0.50"] && data(&db).len() == 2 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "the change never showed");
    let old_ptr = ask_udp(&dns, "10.0.96.10.in-addr.arpa.", RecordType::PTR).await;
    assert!(!old_ptr.authoritative(), "the old ClusterIP is no longer ours");

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("the server stops").unwrap();
    upstream_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_when_no_upstream_answers() {
    // A socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let cluster = Cluster::new(vec![], vec![]);
    let (stop_tx, stop) = watch::channel(false);
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        domain: "cluster.local".into(),
        upstreams: vec![silent.local_addr().unwrap()],
    };
    let (dns, task) = start(cluster.view.clone(), config, stop).await.unwrap();
    let started = tokio::time::Instant::now();
    let reply = ask_udp(&dns, "www.example.", RecordType::A).await;
    assert_eq!(reply.response_code(), ResponseCode::ServFail);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(4), "{took:?}");
    // Garbage gets FORMERR, and the server keeps serving.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&[0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff], dns.addr).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await.unwrap().unwrap();
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!((reply.id(), reply.response_code()), (0xabcd, ResponseCode::FormErr));
    wait_ready(&dns).await;
    let nx = ask_udp(&dns, "web.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("the server stops").unwrap();
}

#[tokio::test]
async fn an_invalid_domain_is_refused() {
    let cluster = Cluster::new(vec![], vec![]);
    let (_stop_tx, stop) = watch::channel(false);
    let config = Config { listen: "127.0.0.1:0".parse().unwrap(), domain: "bad..domain".into(), upstreams: vec![] };
    assert!(matches!(start(cluster.view, config, stop).await, Err(super::Error::Domain { .. })));
}
