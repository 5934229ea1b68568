//! The in-process transport (`RunningServer::in_process`) is the API, not a side door:
//! requests through it run as the user it carries (anonymous ones are refused), go
//! through admission, and watches stream as over HTTPS.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use rkube_apiserver::auth::UserInfo;
use rkube_apiserver::{Config, RunningServer};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn start(dir: &std::path::Path) -> RunningServer {
    rkube_apiserver::run(Config {
        data_dir: dir.to_path_buf(),
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        kubeconfig: None,
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        cluster_cidr: "10.42.0.0/16".parse().unwrap(),
        tls_sans: Vec::new(),
        compaction_interval: Duration::ZERO,
        default_tolerations: Default::default(),
    })
    .await
    .expect("server starts")
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::authenticated(name, groups.iter().map(|g| g.to_string()))
}

async fn call(server: &RunningServer, who: &UserInfo, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
    let (code, bytes) = call_raw(server, who, method, uri, body).await;
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn call_raw(
    server: &RunningServer,
    who: &UserInfo,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (u16, Vec<u8>) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .unwrap();
    let resp = server.in_process(who.clone()).oneshot(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, bytes.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_requests_are_authenticated_admitted_and_watched() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = user("admin", &["system:masters"]);

    // The request runs as the transport's user, as a client certificate would make it.
    let scheduler = user("system:kube-scheduler", &[]);
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let (code, me) =
        call(&server, &scheduler, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", Some(review)).await;
    assert_eq!(code, 201, "{me}");
    assert_eq!(me["status"]["userInfo"]["username"], "system:kube-scheduler");
    assert_eq!(me["status"]["userInfo"]["groups"], json!(["system:authenticated"]));
    let (code, list) = call(&server, &scheduler, "GET", "/api/v1/nodes", None).await;
    assert_eq!((code, list["kind"].as_str()), (200, Some("NodeList")), "{list}");
    // Without a user, the request is anonymous and refused like one over HTTPS.
    let (code, status) = call(&server, &UserInfo::anonymous(), "GET", "/api/v1/nodes", None).await;
    assert!(code == 401 || code == 403, "{code} {status}");
    assert_eq!(status["kind"], "Status");

    // A watch streams what another in-process request writes, with admission applied
    // (uid, resourceVersion, managed fields by the request's field manager).
    let req = http::Request::get("/api/v1/namespaces/default/configmaps?watch=true").body(Body::empty()).unwrap();
    let watch = server.in_process(admin.clone()).oneshot(req).await.unwrap();
    assert_eq!(watch.status(), 200);
    let mut body = watch.into_body();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seen"}, "data": {"k": "v"}});
    let (code, created_raw) =
        call_raw(&server, &admin, "POST", "/api/v1/namespaces/default/configmaps?fieldManager=probe", Some(cm)).await;
    let created: Value = serde_json::from_slice(&created_raw).unwrap();
    assert_eq!(code, 201, "{created}");
    assert!(created["metadata"]["uid"].is_string());
    assert_eq!(created["metadata"]["managedFields"][0]["manager"], "probe");
    let frame =
        tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("a watch event").unwrap().unwrap();
    let line_raw = frame.data_ref().expect("data").to_vec();
    let line: Value = serde_json::from_slice(&line_raw).unwrap();
    assert_eq!(line["type"], "ADDED");
    assert_eq!(line["object"]["metadata"]["name"], "seen");
    assert_eq!(line["object"]["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
    // The create's answer and the watch event are made from the stored bytes, not by
    // encoding the object: byte for byte what a read encodes from the cached object.
    let (code, got_raw) = call_raw(&server, &admin, "GET", "/api/v1/namespaces/default/configmaps/seen", None).await;
    assert_eq!(code, 200);
    assert_eq!(String::from_utf8_lossy(&created_raw), String::from_utf8_lossy(&got_raw));
    let mut want_line = br#"{"type":"ADDED","object":"#.to_vec();
    want_line.extend_from_slice(&got_raw);
    want_line.extend_from_slice(b"}\n");
    assert_eq!(String::from_utf8_lossy(&line_raw), String::from_utf8_lossy(&want_line));

    // Bad input gets the same answer as over HTTPS.
    let (code, status) =
        call(&server, &admin, "POST", "/api/v1/namespaces/default/configmaps", Some(json!({"kind": "ConfigMap"})))
            .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["kind"], "Status");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_sets_the_node_and_condition_but_owns_no_fields() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = user("admin", &["system:masters"]);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (code, _) =
        call(&server, &admin, "POST", "/api/v1/namespaces/default/pods?fieldManager=creator", Some(pod)).await;
    assert_eq!(code, 201);

    let scheduler = user("system:kube-scheduler", &[]);
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
    let uri = "/api/v1/namespaces/default/pods/p/binding?fieldManager=scheduler";
    let (code, status) = call(&server, &scheduler, "POST", uri, Some(binding.clone())).await;
    assert_eq!(code, 201, "{status}");

    let (_, got) = call(&server, &admin, "GET", "/api/v1/namespaces/default/pods/p", None).await;
    assert_eq!(got["spec"]["nodeName"], "n1");
    assert_eq!(got["status"]["conditions"][0]["type"], "PodScheduled");
    assert_eq!(got["status"]["conditions"][0]["status"], "True");
    // As upstream, the binding is written past the field manager: the creator's entry
    // is the only one.
    let managers: Vec<&str> =
        got["metadata"]["managedFields"].as_array().unwrap().iter().filter_map(|e| e["manager"].as_str()).collect();
    assert_eq!(managers, ["creator"], "{}", got["metadata"]["managedFields"]);

    // A bound pod is not bound again.
    let (code, status) = call(&server, &scheduler, "POST", uri, Some(binding)).await;
    assert_eq!(code, 409, "{status}");
    assert!(status["message"].as_str().unwrap().contains("already assigned to node \"n1\""), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_pods_creator_owns_what_it_sent_and_the_defaults_not_admissions_additions() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = user("admin", &["system:masters"]);
    let uri = "/api/v1/namespaces/default/pods?fieldManager=creator";
    let mut entries = Vec::new();
    for name in ["a", "b", "c"] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let (code, created) = call(&server, &admin, "POST", uri, Some(pod)).await;
        assert_eq!(code, 201, "{created}");
        // Admission did add these to the pod…
        let volume = created["spec"]["volumes"][0]["name"].as_str().unwrap_or_default().to_string();
        assert!(volume.starts_with("kube-api-access-"), "{created}");
        assert_eq!(created["spec"]["tolerations"].as_array().map(Vec::len), Some(2), "{created}");
        assert_eq!(created["status"]["phase"], "Pending");
        let entry = created["metadata"]["managedFields"][0].clone();
        assert_eq!(created["metadata"]["managedFields"].as_array().map(Vec::len), Some(1), "{created}");
        let fields = &entry["fieldsV1"];
        // …but, as upstream's field manager runs before mutating admission and status is
        // reset by the strategy, the creator owns none of them.
        assert!(fields["f:spec"].get("f:volumes").is_none(), "{fields}");
        assert!(fields["f:spec"].get("f:tolerations").is_none(), "{fields}");
        assert!(fields["f:spec"].get("f:serviceAccountName").is_none(), "{fields}");
        assert!(fields.get("f:status").is_none(), "{fields}");
        let c = &fields["f:spec"]["f:containers"][r#"k:{"name":"c"}"#];
        assert!(c.get("f:volumeMounts").is_none(), "{fields}");
        // What it sent, and the defaults applied as the body was decoded, it owns.
        assert_eq!(c["f:image"], json!({}), "{fields}");
        assert_eq!(c["f:imagePullPolicy"], json!({}), "{fields}");
        assert_eq!(fields["f:spec"]["f:restartPolicy"], json!({}), "{fields}");
        assert_eq!(fields["f:metadata"]["f:labels"]["f:app"], json!({}), "{fields}");
        entries.push(entry);
    }
    // Pods alike but for names, labels' values and their random volume name: the same
    // set each time (the third from the memo of shapes).
    assert!(entries.windows(2).all(|w| w[0]["fieldsV1"] == w[1]["fieldsV1"]), "{entries:?}");
    server.shutdown().await;
}
