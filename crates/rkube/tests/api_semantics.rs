//! End to end through kube-rs (the Rust ecosystem's client-go) against a real
//! `rkube server`: watch and list semantics, deletion, durability across kill -9,
//! clean shutdown, authentication and the health endpoints.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Cluster;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::ObjectMeta;
use kube::{Client, ResourceExt};
use serde_json::json;

async fn connect(c: &Cluster) -> Client {
    let kc = Kubeconfig::read_from(&c.kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

async fn namespace(client: &Client, name: &str) {
    let ns: Api<Namespace> = Api::all(client.clone());
    let obj =
        Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
    ns.create(&PostParams::default(), &obj).await.expect("create namespace");
}

/// The next watch event, or a panic after `secs`.
async fn next_event<S>(stream: &mut S, secs: u64) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(secs), stream.next())
        .await
        .expect("watch event in time")
        .expect("stream open")
        .expect("event decodes")
}

fn describe(e: &WatchEvent<ConfigMap>) -> String {
    match e {
        WatchEvent::Added(o) => format!("ADDED {}", o.name_any()),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.name_any()),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.name_any()),
        WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
        WatchEvent::Error(e) => format!("ERROR {} {}", e.code, e.message),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_list_semantics() {
    let c = Cluster::start();
    let client = connect(&c).await;
    namespace(&client, "w").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "w");
    // The controllers publish kube-root-ca.crt in every new namespace; let that settle
    // so it does not interleave with the changes watched below.
    for _ in 0..200 {
        if api.get_opt("kube-root-ca.crt").await.expect("get").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("cm-{i}"), &[("app", "x")])).await.expect("create");
    }

    // Pages of a list are consistent and cover every object once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut list_rv = String::new();
    loop {
        let mut lp = ListParams::default().labels("app").limit(2);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.expect("list page");
        if list_rv.is_empty() {
            list_rv = page.metadata.resource_version.clone().expect("list resourceVersion");
        }
        seen.extend(page.items.iter().map(|o| o.name_any()));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);

    // From an exact resourceVersion: only later changes.
    let mut stream = api.watch(&WatchParams::default(), &list_rv).await.expect("watch").boxed();
    api.patch("cm-1", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "changed"}}))).await.expect("patch");
    let e = next_event(&mut stream, 10).await;
    assert_eq!(describe(&e), "MODIFIED cm-1");

    // resourceVersion=0: synthetic ADDED for the current state first.
    let mut from_zero = api.watch(&WatchParams::default().labels("app"), "0").await.expect("watch from 0").boxed();
    let mut added = Vec::new();
    for _ in 0..5 {
        added.push(describe(&next_event(&mut from_zero, 10).await));
    }
    added.sort();
    assert_eq!(added, ["ADDED cm-0", "ADDED cm-1", "ADDED cm-2", "ADDED cm-3", "ADDED cm-4"]);

    // A selector-filtered watch reports an object leaving the selector as DELETED and
    // one entering it as ADDED.
    let mut selected = api.watch(&WatchParams::default().labels("app=x"), &list_rv).await.expect("watch -l").boxed();
    let e = next_event(&mut selected, 10).await;
    assert_eq!(describe(&e), "MODIFIED cm-1", "the change made before");
    api.patch("cm-2", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})))
        .await
        .expect("relabel");
    assert_eq!(describe(&next_event(&mut selected, 10).await), "DELETED cm-2");
    api.patch("cm-2", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})))
        .await
        .expect("relabel back");
    assert_eq!(describe(&next_event(&mut selected, 10).await), "ADDED cm-2");
    api.delete("cm-3", &DeleteParams::default()).await.expect("delete");
    assert_eq!(describe(&next_event(&mut selected, 10).await), "DELETED cm-3");

    // Bookmarks are offered to clients that allow them, and timeoutSeconds ends a watch.
    let started = Instant::now();
    let wp = WatchParams { bookmarks: true, ..WatchParams::default().timeout(2) };
    let events: Vec<_> =
        api.watch(&wp, &list_rv).await.expect("watch with timeout").try_collect().await.expect("events");
    assert!(started.elapsed() < Duration::from_secs(8), "timeoutSeconds=2 took {:?}", started.elapsed());
    assert!(
        events.iter().any(|e| matches!(e, WatchEvent::Modified(_))),
        "{:?}",
        events.iter().map(describe).collect::<Vec<_>>()
    );

    // A watch from a resourceVersion in the future is refused rather than hanging forever.
    let far = (list_rv.parse::<i64>().expect("numeric rv") + 1_000_000).to_string();
    let r = api.watch(&WatchParams::default().timeout(3), &far).await;
    if let Ok(s) = r {
        let events: Vec<_> = s.collect().await;
        let errors = events.iter().filter(|e| matches!(e, Ok(WatchEvent::Error(_)) | Err(_))).count();
        assert!(errors > 0 || events.is_empty(), "watch from the future delivered {} events", events.len());
    }

    // Bad selectors are a 400, not a panic.
    let err = api.list(&ListParams::default().labels("a in (b")).await.expect_err("bad selector");
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 400, "{s:?}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_semantics() {
    let c = Cluster::start();
    let client = connect(&c).await;
    namespace(&client, "d").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "d");

    // A finalizer keeps the object, marked, until it is removed.
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.expect("create");
    api.delete("held", &DeleteParams::default()).await.expect("delete");
    let got = api.get("held").await.expect("still there");
    assert!(got.metadata.deletion_timestamp.is_some(), "deletionTimestamp set");
    api.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .expect("remove finalizer");
    assert!(api.get_opt("held").await.expect("get").is_none(), "gone once the finalizer is removed");

    // A pod on a node is deleted gracefully: marked with its grace period, and a status
    // update racing the delete (a kubelet that has not seen it yet) does not complete the
    // deletion; only the kubelet's own delete with grace 0 does.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "d");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "graceful"},
        "spec": {"nodeName": "elsewhere", "terminationGracePeriodSeconds": 30,
                 "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod).await.expect("create pod");
    pods.patch_status("graceful", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Running"}})))
        .await
        .expect("running");
    pods.delete("graceful", &DeleteParams::default()).await.expect("delete pod");
    let marked = pods.get("graceful").await.expect("still there while its grace period runs");
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    pods.patch_status("graceful", &PatchParams::default(), &Patch::Merge(json!({"status": {"message": "late"}})))
        .await
        .expect("status update of a terminating pod");
    let after = pods.get_opt("graceful").await.expect("get").expect("a status update does not delete the pod");
    assert!(after.metadata.deletion_timestamp.is_some());
    pods.delete("graceful", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .expect("delete with grace 0");
    assert!(pods.get_opt("graceful").await.expect("get").is_none(), "gone after the kubelet's delete");

    // Preconditions.
    let made = api.create(&PostParams::default(), &cm("pre", &[])).await.expect("create");
    let dp = DeleteParams {
        preconditions: Some(Preconditions { uid: Some("wrong".into()), resource_version: None }),
        ..Default::default()
    };
    match api.delete("pre", &dp).await.expect_err("uid precondition") {
        kube::Error::Api(s) => assert_eq!(s.code, 409, "{s:?}"),
        other => panic!("unexpected {other:?}"),
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions { uid: made.metadata.uid.clone(), resource_version: None }),
        ..Default::default()
    };
    api.delete("pre", &dp).await.expect("matching uid");

    // Dry run deletes nothing.
    api.create(&PostParams::default(), &cm("dry", &[])).await.expect("create");
    api.delete("dry", &DeleteParams { dry_run: true, ..Default::default() }).await.expect("dry delete");
    assert!(api.get_opt("dry").await.expect("get").is_some());

    // Orphan and Foreground propagation leave the garbage collector's finalizers.
    // (The answer shows the marked object; the garbage collector then finishes the
    // delete at once, since these have no dependents.)
    api.create(&PostParams::default(), &cm("orph", &[])).await.expect("create");
    let marked = api.delete("orph", &DeleteParams::orphan()).await.expect("orphan delete");
    let marked = marked.left().expect("marked object, not a Status");
    assert_eq!(marked.metadata.finalizers, Some(vec!["orphan".to_string()]));
    assert!(marked.metadata.deletion_timestamp.is_some());
    api.create(&PostParams::default(), &cm("fg", &[])).await.expect("create");
    let marked = api.delete("fg", &DeleteParams::foreground()).await.expect("foreground delete");
    let marked = marked.left().expect("marked object, not a Status");
    assert_eq!(marked.metadata.finalizers, Some(vec!["foregroundDeletion".to_string()]));
    common::eventually(20, || {
        tokio::task::block_in_place(|| {
            let handle = tokio::runtime::Handle::current();
            handle.block_on(async { api.get_opt("fg").await.expect("get").is_none().then_some(()) })
        })
    });

    // deletecollection with a selector.
    for i in 0..4 {
        let tier = if i % 2 == 0 { "a" } else { "b" };
        api.create(&PostParams::default(), &cm(&format!("col-{i}"), &[("tier", tier)])).await.expect("create");
    }
    api.delete_collection(&DeleteParams::default(), &ListParams::default().labels("tier=a"))
        .await
        .expect("deletecollection");
    let left: Vec<String> =
        api.list(&ListParams::default().labels("tier")).await.expect("list").iter().map(|o| o.name_any()).collect();
    assert_eq!(left, ["col-1", "col-3"]);

    // The initial namespaces cannot be deleted.
    let ns: Api<Namespace> = Api::all(client.clone());
    match ns.delete("kube-system", &DeleteParams::default()).await.expect_err("protected") {
        kube::Error::Api(s) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("unexpected {other:?}"),
    }
}

/// kill -9 while four clients create 1,000 objects: every create answered 2xx is there
/// after restart, and a watch resumes from its resourceVersion.
#[test]
fn acknowledged_writes_survive_kill_9() {
    let c = Cluster::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let client = rt.block_on(connect(&c));
    rt.block_on(namespace(&client, "dur"));
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "dur");
    let start_rv = rt.block_on(api.list(&ListParams::default())).expect("list").metadata.resource_version.expect("rv");

    let acked = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let api = api.clone();
        let acked = acked.clone();
        tasks.push(rt.spawn(async move {
            for i in 0..250 {
                let name = format!("w{w}-{i}");
                match api.create(&PostParams::default(), &cm(&name, &[])).await {
                    Ok(o) => acked.lock().expect("lock").push((name, o.resource_version().unwrap_or_default())),
                    Err(_) => break,
                }
            }
        }));
    }
    // Kill once a good part is acknowledged, while the rest is in flight.
    common::eventually(120, || (acked.lock().expect("lock").len() >= 400).then_some(()));
    let dir = c.kill9();
    for t in tasks {
        let _ = rt.block_on(t);
    }
    drop(client);
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= 400 && acked.len() < 1000, "acknowledged {}", acked.len());

    let c = Cluster::start_in(dir);
    let client = rt.block_on(connect(&c));
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "dur");
    let present: std::collections::HashSet<String> =
        rt.block_on(api.list(&ListParams::default())).expect("list").iter().map(|o| o.name_any()).collect();
    let missing: Vec<&String> = acked.iter().map(|(n, _)| n).filter(|n| !present.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged creates lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    // A watch from before the crash replays every acknowledged create.
    let names = rt.block_on(async {
        let mut s = api.watch(&WatchParams::default().timeout(5), &start_rv).await.expect("watch").boxed();
        let mut names = std::collections::HashSet::new();
        while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(10), s.next()).await {
            if let Ok(WatchEvent::Added(o)) = e {
                names.insert(o.name_any());
            }
            if names.len() >= present.len() {
                break;
            }
        }
        names
    });
    let unseen = acked.iter().filter(|(n, _)| !names.contains(n)).count();
    assert_eq!(unseen, 0, "watch from {start_rv} missed {unseen} acknowledged creates");
}

/// SIGTERM shuts down cleanly; a restart on the same data dir keeps every object.
#[test]
fn sigterm_and_restart_keep_objects() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    k.run(&["create", "ns", "keep"]);
    k.run(&["create", "cm", "kept", "-n", "keep", "--from-literal=a=b"]);
    let uid = k.run(&["get", "cm", "kept", "-n", "keep", "-o", "jsonpath={.metadata.uid}"]);
    let started = Instant::now();
    let (status, dir) = c.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown took {:?}", started.elapsed());
    let c = Cluster::start_in(dir);
    let k = c.kubectl("1.33");
    assert_eq!(k.run(&["get", "cm", "kept", "-n", "keep", "-o", "jsonpath={.metadata.uid}"]), uid);
    let svc = k.run(&["get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"]);
    assert_eq!(svc, "10.96.0.1");
}

/// Unauthenticated requests get 401, except the health endpoints; /metrics counts requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_health_and_metrics() {
    let c = Cluster::start();
    let url: http::Uri = c.server_url().parse().expect("url");
    let mut anon = kube::Config::new(url);
    anon.accept_invalid_certs = true;
    let anon = Client::try_from(anon).expect("anonymous client");
    let req = |p: &str| http::Request::get(p).body(Vec::new()).expect("request");
    match anon.request_text(req("/api/v1/namespaces")).await.expect_err("must be refused") {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (401, "Unauthorized"), "{s:?}"),
        other => panic!("unexpected {other:?}"),
    }
    for p in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(anon.request_text(req(p)).await.expect(p), "ok");
    }
    let version = anon.request_text(req("/version")).await.expect("version");
    assert!(version.contains("\"minor\":\"33\""), "{version}");

    let admin = connect(&c).await;
    let _ = Api::<ConfigMap>::namespaced(admin.clone(), "default").list(&ListParams::default()).await.expect("list");
    let metrics = admin.request_text(req("/metrics")).await.expect("metrics");
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("apiserver_request_total")
                && l.contains("verb=\"LIST\"")
                && l.contains("resource=\"configmaps\"")
        })
        .unwrap_or_else(|| panic!("no LIST configmaps counter in:\n{metrics}"));
    assert!(line.contains("code=\"200\""), "{line}");
    assert!(metrics.contains("apiserver_request_duration_seconds_bucket"), "latency histogram");

    // Garbage in a body is a 400 Status, and the server keeps serving.
    let bad = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(b"{not json".to_vec())
        .expect("request");
    match admin.request_text(bad).await.expect_err("bad body") {
        kube::Error::Api(s) => assert_eq!(s.code, 400, "{s:?}"),
        other => panic!("unexpected {other:?}"),
    }
    let big = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(vec![b' '; 4 * 1024 * 1024])
        .expect("request");
    match admin.request_text(big).await.expect_err("oversized body") {
        kube::Error::Api(s) => assert_eq!(s.code, 413, "{s:?}"),
        other => panic!("unexpected {other:?}"),
    }
    // The refused body leaves that connection closed; a new client finds the server alive.
    let fresh = connect(&c).await;
    assert_eq!(fresh.request_text(req("/healthz")).await.expect("still alive"), "ok");
}

/// A watch from a revision the store has compacted away answers 410 Expired (kube-rs
/// then relists, as client-go's reflector does).
#[test]
fn watch_from_a_compacted_revision_is_gone() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let flags = ["--compaction-interval", "1s"];
    let c = Cluster::start_with(&flags);
    let client = rt.block_on(connect(&c));
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let made = rt.block_on(api.create(&PostParams::default(), &cm("old", &[]))).expect("create");
    let old_rv = made.resource_version().expect("rv");
    for i in 0..3 {
        rt.block_on(api.patch("old", &PatchParams::default(), &Patch::Merge(json!({"data": {"i": i.to_string()}}))))
            .expect("patch");
    }
    // Two compaction ticks pass, then a restart empties the in-memory event window.
    std::thread::sleep(Duration::from_millis(2500));
    let (_, dir) = c.terminate();
    let c = Cluster::start_in_with(dir, &flags);
    let client = rt.block_on(connect(&c));
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let outcome = rt.block_on(async {
        match api.watch(&WatchParams::default().timeout(5), &old_rv).await {
            Err(kube::Error::Api(s)) => Some((s.code, s.reason)),
            Err(other) => panic!("unexpected {other:?}"),
            Ok(stream) => {
                let mut stream = stream.boxed();
                match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                    Ok(Some(Ok(WatchEvent::Error(e)))) => Some((e.code, e.reason)),
                    Ok(Some(Err(kube::Error::Api(s)))) => Some((s.code, s.reason)),
                    _ => None,
                }
            }
        }
    });
    assert_eq!(outcome, Some((410, "Expired".to_string())), "watch from compacted revision {old_rv}");
    // The object itself is still there, with its latest data.
    assert_eq!(rt.block_on(api.get("old")).expect("get").data.expect("data")["i"], "2");
}
