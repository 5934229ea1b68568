//! Deployments and ReplicaSets end to end, driven by the real kubectl: scaling, rolling
//! updates within maxSurge/maxUnavailable, Recreate, progress deadlines, pause/resume,
//! `rollout status/history/undo/restart`, orphan adoption, `describe` and `get rs`.
//!
//! There is no kubelet: pods stay Pending until the test marks them Running and Ready
//! through their status ([`Harness::mark_ready`], which can be switched off to hold a
//! rollout). [`Harness::track`] follows every pod event of a workload, so the rollout
//! invariants are checked on each state the API went through, not on samples.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Cluster, Kubectl, eventually};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// A tokio runtime with a kube-rs client, for the background helpers.
struct Harness {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Harness {
    fn new(c: &Cluster) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let kubeconfig = c.kubeconfig.clone();
        let client = rt.block_on(async move {
            let kc = Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
            let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
            Client::try_from(config).expect("client")
        });
        Harness { rt, client }
    }

    /// Keeps marking the pods of `ns` Running and Ready (what a kubelet would report),
    /// while the returned switch is on.
    fn mark_ready(&self, ns: &str) -> Readiness {
        let on = Arc::new(AtomicBool::new(true));
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let flag = on.clone();
        let task = self.rt.spawn(async move {
            loop {
                if flag.load(Ordering::SeqCst)
                    && let Ok(pods) = api.list(&ListParams::default()).await
                {
                    for pod in pods.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && !ready(p)) {
                        let _ = api.patch_status(&pod.name_any(), &PatchParams::default(), &ready_patch()).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Readiness { on, task }
    }

    /// Follows the pods of `ns` selected by `selector`, recording what every state the
    /// watch shows looked like while armed.
    fn track(&self, ns: &str, selector: &str) -> Tracker {
        let state = Arc::new(Mutex::new(Track::default()));
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let config = watcher::Config::default().labels(selector);
        let shared = state.clone();
        let task = self.rt.spawn(async move {
            let mut pods: HashMap<String, Pod> = HashMap::new();
            // A (re)list is one state, not one per listed pod.
            let mut listing = false;
            let mut stream = watcher(api, config).boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                        pods.insert(p.name_any(), p);
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        pods.remove(&p.name_any());
                    }
                    Ok(watcher::Event::Init) => {
                        pods.clear();
                        listing = true;
                    }
                    Ok(watcher::Event::InitDone) => listing = false,
                    Err(_) => {}
                }
                if !listing {
                    lock(&shared).record(&pods);
                }
            }
        });
        eventually(20, || lock(&state).synced.then_some(()));
        Tracker { state, task }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn ready_patch() -> Patch<Value> {
    let now = common::rfc3339_now();
    Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now},
    ]}}))
}

struct Readiness {
    on: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Readiness {
    fn set(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct Track {
    synced: bool,
    armed: bool,
    /// Fewest Ready pods and most pods seen while armed.
    min_ready: Option<usize>,
    max_total: usize,
    /// Whether pods of two different images ever existed at once while armed.
    mixed: bool,
    /// Every armed state, `(total, ready, pods per image)`, for failure messages.
    history: Vec<(usize, usize, BTreeMap<String, usize>)>,
}

impl Track {
    fn record(&mut self, pods: &HashMap<String, Pod>) {
        self.synced = true;
        if !self.armed {
            return;
        }
        let live: Vec<&Pod> = pods.values().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        let ready_count = live.iter().filter(|p| ready(p)).count();
        let mut images: BTreeMap<String, usize> = BTreeMap::new();
        for p in &live {
            let image = p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone());
            *images.entry(image.unwrap_or_default()).or_default() += 1;
        }
        self.min_ready = Some(self.min_ready.map_or(ready_count, |m| m.min(ready_count)));
        self.max_total = self.max_total.max(live.len());
        self.mixed |= images.len() > 1;
        self.history.push((live.len(), ready_count, images));
    }
}

struct Tracker {
    state: Arc<Mutex<Track>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tracker {
    fn arm(&self) {
        lock(&self.state).armed = true;
    }

    /// Stops recording; returns (fewest ready, most pods, images mixed, history).
    fn disarm(&self) -> (usize, usize, bool, String) {
        let mut s = lock(&self.state);
        s.armed = false;
        (s.min_ready.unwrap_or(0), s.max_total, s.mixed, format!("{:?}", s.history))
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Active pods of `ns` matching `selector`.
fn pods(k: &Kubectl, ns: &str, selector: &str) -> Vec<Value> {
    items(&k.json(&["get", "pods", "-n", ns, "-l", selector]))
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn replicasets(k: &Kubectl, ns: &str, selector: &str) -> Vec<Value> {
    items(&k.json(&["get", "rs", "-n", ns, "-l", selector]))
}

fn wait_pods(k: &Kubectl, ns: &str, selector: &str, n: usize) -> Vec<Value> {
    eventually(30, || Some(pods(k, ns, selector)).filter(|p| p.len() == n))
}

fn controller_uid(obj: &Value) -> Option<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == json!(true))
        .and_then(|r| r["uid"].as_str())
        .map(str::to_string)
}

fn rollout_status(k: &Kubectl, ns: &str, name: &str) {
    let target = format!("deployment/{name}");
    let out = k.run(&["rollout", "status", &target, "-n", ns, "--timeout=60s"]);
    assert!(out.contains(&format!("deployment \"{name}\" successfully rolled out")), "{out}");
}

fn condition(d: &Value, type_: &str) -> (String, String) {
    let c = d["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == type_).cloned());
    let c = c.unwrap_or(Value::Null);
    (c["status"].as_str().unwrap_or("").into(), c["reason"].as_str().unwrap_or("").into())
}

/// `kubectl get rs` columns of one ReplicaSet: DESIRED, CURRENT, READY.
fn get_rs_columns(k: &Kubectl, ns: &str, name: &str) -> Vec<String> {
    let out = k.run(&["get", "rs", name, "-n", ns]);
    let line = out.lines().nth(1).unwrap_or_default().to_string();
    line.split_whitespace().skip(1).take(3).map(str::to_string).collect()
}

#[test]
fn seed_nginx_deployment_creates_one_replicaset_and_scales() {
    let c = Cluster::start();
    let h = Harness::new(&c);
    let manifest = common::seed_manifests().join("01-nginx-deployment.yaml");
    let manifest = manifest.to_str().expect("path");
    for version in ["1.31", "1.33"] {
        let k = c.kubectl(version);
        let ns = format!("nginx-{}", version.replace('.', "-"));
        k.run(&["create", "namespace", &ns]);
        let _ready = h.mark_ready(&ns);
        k.run(&["apply", "-f", manifest, "-n", &ns]);

        // Exactly one ReplicaSet, `<deployment>-<pod-template-hash>`, owned by the Deployment.
        let deploy = k.json(&["get", "deployment", "nginx-deployment", "-n", &ns]);
        let rses = eventually(30, || Some(replicasets(&k, &ns, "app=nginx")).filter(|r| !r.is_empty()));
        assert_eq!(rses.len(), 1, "{rses:?}");
        let rs = &rses[0];
        let hash = rs["metadata"]["labels"]["pod-template-hash"].as_str().expect("pod-template-hash label");
        assert_eq!(rs["metadata"]["name"], format!("nginx-deployment-{hash}"));
        assert_eq!(rs["spec"]["selector"]["matchLabels"]["pod-template-hash"], hash);
        assert_eq!(rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"], hash);
        assert_eq!(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1");
        assert_eq!(controller_uid(rs), deploy["metadata"]["uid"].as_str().map(str::to_string));
        let owner = &rs["metadata"]["ownerReferences"][0];
        assert_eq!((owner["kind"].as_str(), owner["blockOwnerDeletion"].as_bool()), (Some("Deployment"), Some(true)));

        // Two pods, `<rs>-xxxxx`, controlled by it.
        let rs_name = rs["metadata"]["name"].as_str().expect("name").to_string();
        let rs_uid = rs["metadata"]["uid"].as_str().map(str::to_string);
        for p in wait_pods(&k, &ns, "app=nginx", 2) {
            let name = p["metadata"]["name"].as_str().expect("name");
            let suffix = name.strip_prefix(&format!("{rs_name}-")).expect("pod named after its replica set");
            assert!(suffix.len() == 5 && suffix.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
            assert_eq!(controller_uid(&p), rs_uid);
            assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash);
        }
        rollout_status(&k, &ns, "nginx-deployment");

        k.run(&["scale", "deployment/nginx-deployment", "--replicas=4", "-n", &ns]);
        wait_pods(&k, &ns, "app=nginx", 4);
        eventually(30, || Some(()).filter(|_| get_rs_columns(&k, &ns, &rs_name) == ["4", "4", "4"]));
        k.run(&["scale", "deployment/nginx-deployment", "--replicas=2", "-n", &ns]);
        wait_pods(&k, &ns, "app=nginx", 2);
        eventually(30, || Some(()).filter(|_| get_rs_columns(&k, &ns, &rs_name) == ["2", "2", "2"]));
        rollout_status(&k, &ns, "nginx-deployment");
        assert_eq!(replicasets(&k, &ns, "app=nginx").len(), 1, "scaling makes no new replica set");

        let d = k.json(&["get", "deployment", "nginx-deployment", "-n", &ns]);
        assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1");
        assert_eq!(d["status"]["observedGeneration"], d["metadata"]["generation"]);
        assert_eq!(condition(&d, "Available"), ("True".into(), "MinimumReplicasAvailable".into()));
        assert_eq!(condition(&d, "Progressing"), ("True".into(), "NewReplicaSetAvailable".into()));

        let describe = eventually(30, || {
            let out = k.run(&["describe", "deployment", "nginx-deployment", "-n", &ns]);
            Some(out).filter(|o| o.contains("from 4 to 2"))
        });
        for want in [
            format!("Scaled up replica set {rs_name} from 0 to 2"),
            format!("Scaled up replica set {rs_name} from 2 to 4"),
            format!("Scaled down replica set {rs_name} from 4 to 2"),
            "ScalingReplicaSet".into(),
            "deployment-controller".into(),
        ] {
            assert!(describe.contains(&want), "{want:?} missing from:\n{describe}");
        }
        assert!(
            describe
                .lines()
                .any(|l| l.starts_with("NewReplicaSet:") && l.ends_with(&format!("{rs_name} (2/2 replicas created)"))),
            "{describe}"
        );
        let has_row =
            |t: &str, s: &str, r: &str| describe.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [t, s, r]);
        assert!(has_row("Available", "True", "MinimumReplicasAvailable"), "{describe}");
        assert!(has_row("Progressing", "True", "NewReplicaSetAvailable"), "{describe}");

        let rs_describe = eventually(30, || {
            let out = k.run(&["describe", "rs", &rs_name, "-n", &ns]);
            Some(out).filter(|o| o.contains("SuccessfulDelete"))
        });
        assert!(rs_describe.contains("SuccessfulCreate") && rs_describe.contains("Created pod: "), "{rs_describe}");
        assert!(rs_describe.contains("Deleted pod: "), "{rs_describe}");
        assert!(rs_describe.contains("Pods Status:    2 Running"), "{rs_describe}");
    }
}

#[test]
fn rolling_update_of_seed_deployment_respects_surge_and_unavailability_then_undo() {
    let c = Cluster::start();
    let h = Harness::new(&c);
    let k = c.kubectl("1.33");
    let _ready = h.mark_ready("default");
    let tracker = h.track("default", "app=monfront");
    let manifest = common::seed_manifests().join("09-deployment-myfirstdeploy.yaml");
    k.run(&["apply", "-f", manifest.to_str().expect("path")]);
    rollout_status(&k, "default", "myfirstdeploy");
    let first = replicasets(&k, "default", "app=monfront");
    assert_eq!(first.len(), 1);
    let rs1 = first[0]["metadata"]["name"].as_str().expect("name").to_string();

    // 5 replicas with the default 25%/25%: surge rounds up to 2, unavailability down to 1.
    tracker.arm();
    k.run(&["set", "image", "deployment/myfirstdeploy", "podfront=nginx:1.17"]);
    rollout_status(&k, "default", "myfirstdeploy");
    let (min_ready, max_total, _, history) = tracker.disarm();
    assert!(min_ready >= 4, "fewer than replicas - maxUnavailable ready pods: {min_ready}\n{history}");
    assert!(max_total <= 7, "more than replicas + maxSurge pods: {max_total}\n{history}");
    let images: Vec<String> = pods(&k, "default", "app=monfront")
        .iter()
        .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(images, vec!["nginx:1.17"; 5]);

    let rses = replicasets(&k, "default", "app=monfront");
    assert_eq!(rses.len(), 2);
    let rs2 = rses.iter().find(|r| r["metadata"]["name"] != rs1.as_str()).expect("a second replica set");
    let rs2_name = rs2["metadata"]["name"].as_str().expect("name").to_string();
    assert_eq!(rs2["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2");
    assert_eq!(rs2["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"], "5");
    assert_eq!(rs2["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"], "7");
    assert_eq!(get_rs_columns(&k, "default", &rs1), ["0", "0", "0"]);
    assert_eq!(get_rs_columns(&k, "default", &rs2_name), ["5", "5", "5"]);
    let d = k.json(&["get", "deployment", "myfirstdeploy"]);
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2");
    assert_eq!(
        (
            d["status"]["replicas"].as_i64(),
            d["status"]["updatedReplicas"].as_i64(),
            d["status"]["availableReplicas"].as_i64()
        ),
        (Some(5), Some(5), Some(5))
    );

    for version in ["1.31", "1.33"] {
        let history = c.kubectl(version).run(&["rollout", "history", "deployment/myfirstdeploy"]);
        let revisions: Vec<&str> =
            history.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u32>().is_ok()).collect();
        assert_eq!(revisions, ["1", "2"], "{history}");
    }
    let rev1 = k.run(&["rollout", "history", "deployment/myfirstdeploy", "--revision=1"]);
    assert!(rev1.contains("nginx:1.16"), "{rev1}");

    // Undo patches the Deployment's template with revision 1's: its ReplicaSet comes
    // back as revision 3.
    k.run(&["rollout", "undo", "deployment/myfirstdeploy", "--to-revision=1"]);
    rollout_status(&k, "default", "myfirstdeploy");
    let d = k.json(&["get", "deployment", "myfirstdeploy"]);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.16");
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3");
    let old = k.json(&["get", "rs", &rs1]);
    assert_eq!(old["spec"]["replicas"], 5, "the revision-1 replica set is scaled up again");
    assert_eq!(old["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3");
    assert_eq!(old["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"], "1");
    assert_eq!(get_rs_columns(&k, "default", &rs2_name), ["0", "0", "0"]);
    assert_eq!(replicasets(&k, "default", "app=monfront").len(), 2, "no third replica set");
    let history = k.run(&["rollout", "history", "deployment/myfirstdeploy"]);
    let revisions: Vec<&str> =
        history.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u32>().is_ok()).collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  revisionHistoryLimit: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.16
"#;

fn web(extra: &[(&str, &str)]) -> String {
    let mut yaml = WEB.to_string();
    for (from, to) in extra {
        yaml = yaml.replace(from, to);
    }
    yaml
}

#[test]
fn recreate_removes_every_old_pod_before_creating_new_ones() {
    let c = Cluster::start();
    let h = Harness::new(&c);
    let k = c.kubectl("1.33");
    let _ready = h.mark_ready("default");
    let tracker = h.track("default", "app=web");
    k.run_stdin(&["apply", "-f", "-"], &web(&[("  replicas: 3\n", "  replicas: 3\n  strategy: {type: Recreate}\n")]));
    rollout_status(&k, "default", "web");

    tracker.arm();
    k.run(&["set", "image", "deployment/web", "web=nginx:1.17"]);
    rollout_status(&k, "default", "web");
    let (_, max_total, mixed, history) = tracker.disarm();
    assert!(!mixed, "old and new pods existed together:\n{history}");
    assert!(max_total <= 3, "{history}");
    assert!(history.contains("(0, 0, {})"), "no moment without pods:\n{history}");
    let images: Vec<Value> =
        pods(&k, "default", "app=web").iter().map(|p| p["spec"]["containers"][0]["image"].clone()).collect();
    assert_eq!(images, vec![json!("nginx:1.17"); 3]);
}

#[test]
fn unready_pods_hold_a_rollout_until_the_progress_deadline() {
    let c = Cluster::start();
    let h = Harness::new(&c);
    let k = c.kubectl("1.33");
    let readiness = h.mark_ready("default");
    k.run_stdin(&["apply", "-f", "-"], &web(&[("  replicas: 3\n", "  replicas: 3\n  progressDeadlineSeconds: 4\n")]));
    rollout_status(&k, "default", "web");

    // New pods never become ready: the new ReplicaSet stops at maxSurge (1) and the
    // old one loses only maxUnavailable (0 of 3 → nothing).
    readiness.set(false);
    let tracker = h.track("default", "app=web");
    tracker.arm();
    k.run(&["set", "image", "deployment/web", "web=nginx:1.17"]);
    let d = eventually(30, || {
        let d = k.json(&["get", "deployment", "web"]);
        Some(d).filter(|d| condition(d, "Progressing").1 == "ProgressDeadlineExceeded")
    });
    assert_eq!(condition(&d, "Progressing").0, "False");
    let failed = k.try_run(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert_ne!(failed.code, 0, "{failed:?}");
    assert!(failed.stderr.contains("deployment \"web\" exceeded its progress deadline"), "{failed:?}");
    let (min_ready, max_total, _, history) = tracker.disarm();
    assert!(min_ready >= 3 && max_total <= 4, "{history}");
    let sizes: Vec<i64> = {
        let mut s: Vec<i64> =
            replicasets(&k, "default", "app=web").iter().filter_map(|r| r["spec"]["replicas"].as_i64()).collect();
        s.sort();
        s
    };
    // 3 replicas at 25%: surge 1, unavailability 0.
    assert_eq!(sizes, [1, 3], "the rollout is held");

    // Scaled mid-rollout, both ReplicaSets grow in proportion: max-replicas goes from
    // 3+1 to 6+2, so 3 → 6 and 1 → 2. (The rollout then goes on: the old ReplicaSet's
    // three new pods are not ready either, and unready old pods go first.)
    let name_of = |size: i64| {
        replicasets(&k, "default", "app=web")
            .into_iter()
            .find(|r| r["spec"]["replicas"] == size)
            .and_then(|r| r["metadata"]["name"].as_str().map(str::to_string))
            .expect("replica set")
    };
    let (old_rs, new_rs) = (name_of(3), name_of(1));
    k.run(&["scale", "deployment/web", "--replicas=6"]);
    eventually(30, || {
        let events = items(&k.json(&["get", "events", "--field-selector", "reason=ScalingReplicaSet"]));
        let messages: Vec<&str> = events.iter().filter_map(|e| e["message"].as_str()).collect();
        let want = [
            format!("Scaled up replica set {old_rs} from 3 to 6"),
            format!("Scaled up replica set {new_rs} from 1 to 2"),
        ];
        Some(()).filter(|_| want.iter().all(|w| messages.contains(&w.as_str())))
    });

    // Pods turn ready: the rollout resumes and completes. (`rollout status` fails at once
    // while the condition still says the deadline passed, as upstream's does.)
    readiness.set(true);
    eventually(30, || {
        let d = k.json(&["get", "deployment", "web"]);
        Some(()).filter(|_| condition(&d, "Progressing").1 != "ProgressDeadlineExceeded")
    });
    rollout_status(&k, "default", "web");
    let d = k.json(&["get", "deployment", "web"]);
    assert_eq!(condition(&d, "Progressing"), ("True".into(), "NewReplicaSetAvailable".into()));
    let images: Vec<Value> =
        pods(&k, "default", "app=web").iter().map(|p| p["spec"]["containers"][0]["image"].clone()).collect();
    assert_eq!(images, vec![json!("nginx:1.17"); 6]);
}

#[test]
fn min_ready_seconds_delays_availability() {
    let c = Cluster::start();
    let h = Harness::new(&c);
    let k = c.kubectl("1.33");
    let _ready = h.mark_ready("default");
    k.run_stdin(&["apply", "-f", "-"], &web(&[("  replicas: 3\n", "  replicas: 2\n  minReadySeconds: 5\n")]));
    // Ready at once, available only five seconds later.
    let rs = eventually(30, || {
        let rs = replicasets(&k, "default", "app=web").into_iter().next()?;
        Some(rs).filter(|r| r["status"]["readyReplicas"] == 2)
    });
    assert!(rs["status"]["availableReplicas"].as_i64().unwrap_or(0) < 2, "{rs}");
    let d = k.json(&["get", "deployment", "web"]);
    assert_eq!(condition(&d, "Available"), ("False".into(), "MinimumReplicasUnavailable".into()));
    rollout_status(&k, "default", "web");
    let rs = &replicasets(&k, "default", "app=web")[0];
    assert_eq!(rs["status"]["availableReplicas"], 2);
    assert_eq!(rs["spec"]["minReadySeconds"], 5);
}

#[test]
fn pause_resume_restart_and_history_limit() {
    let c = Cluster::start();
    let h = Harness::new(&c);
    let k = c.kubectl("1.33");
    let _ready = h.mark_ready("default");
    k.run_stdin(&["apply", "-f", "-"], &web(&[]));
    rollout_status(&k, "default", "web");

    k.run(&["rollout", "pause", "deployment/web"]);
    k.run(&["set", "image", "deployment/web", "web=nginx:1.17"]);
    eventually(30, || {
        let d = k.json(&["get", "deployment", "web"]);
        Some(()).filter(|_| condition(&d, "Progressing") == ("Unknown".into(), "DeploymentPaused".into()))
    });
    // Paused: no new ReplicaSet, but scaling still applies.
    k.run(&["scale", "deployment/web", "--replicas=5"]);
    wait_pods(&k, "default", "app=web", 5);
    let rses = replicasets(&k, "default", "app=web");
    assert_eq!(rses.len(), 1, "no rollout while paused: {rses:?}");
    assert_eq!(rses[0]["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.16");
    let d = k.json(&["get", "deployment", "web"]);
    assert_eq!(d["status"]["observedGeneration"], d["metadata"]["generation"]);

    k.run(&["rollout", "resume", "deployment/web"]);
    rollout_status(&k, "default", "web");
    let images: Vec<Value> =
        pods(&k, "default", "app=web").iter().map(|p| p["spec"]["containers"][0]["image"].clone()).collect();
    assert_eq!(images, vec![json!("nginx:1.17"); 5]);

    // A restart changes the template (an annotation): one more ReplicaSet. With
    // revisionHistoryLimit 1 the oldest, emptied one is pruned.
    let before: Vec<String> = replicasets(&k, "default", "app=web")
        .iter()
        .filter_map(|r| r["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    k.run(&["rollout", "restart", "deployment/web"]);
    rollout_status(&k, "default", "web");
    let d = k.json(&["get", "deployment", "web"]);
    assert!(d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string());
    let after = eventually(30, || {
        let names: Vec<String> = replicasets(&k, "default", "app=web")
            .iter()
            .filter_map(|r| r["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        Some(names).filter(|n| n.len() == 2)
    });
    let fresh: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(fresh.len(), 1, "restart makes a new replica set: before {before:?}, after {after:?}");
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3");
}

#[test]
fn replicaset_adopts_matching_orphans_and_releases_relabelled_pods() {
    let c = Cluster::start();
    let h = Harness::new(&c);
    let k = c.kubectl("1.33");
    k.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod1\n  labels: {tier: frontend}\nspec:\n  containers:\n  - {name: hello, image: busybox}\n",
    );
    // What a kubelet would report, through kubectl's status subresource.
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": common::rfc3339_now()},
    ]}});
    k.run(&["patch", "pod", "pod1", "--subresource=status", "--type=merge", "-p", &status.to_string()]);
    k.run_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: frontend
spec:
  replicas: 2
  selector:
    matchLabels: {tier: frontend}
  template:
    metadata:
      labels: {tier: frontend}
    spec:
      containers:
      - {name: php, image: php:redis}
"#,
    );
    let _ready = h.mark_ready("default");
    let rs_uid = k.json(&["get", "rs", "frontend"])["metadata"]["uid"].as_str().map(str::to_string);
    let adopted = eventually(30, || {
        let p = k.json(&["get", "pod", "pod1"]);
        Some(p).filter(|p| controller_uid(p) == rs_uid)
    });
    assert_eq!(adopted["metadata"]["ownerReferences"][0]["blockOwnerDeletion"], true);
    // The orphan counts: only one pod is created.
    std::thread::sleep(Duration::from_secs(1));
    let all = wait_pods(&k, "default", "tier=frontend", 2);
    assert!(all.iter().all(|p| controller_uid(p) == rs_uid), "{all:?}");
    eventually(30, || Some(()).filter(|_| get_rs_columns(&k, "default", "frontend") == ["2", "2", "2"]));

    // A pod relabelled out of the selector is released and replaced.
    k.run(&["label", "pod", "pod1", "tier=debug", "--overwrite"]);
    eventually(30, || Some(()).filter(|_| controller_uid(&k.json(&["get", "pod", "pod1"])).is_none()));
    let now = wait_pods(&k, "default", "tier=frontend", 2);
    assert!(now.iter().all(|p| p["metadata"]["name"] != "pod1" && controller_uid(p) == rs_uid), "{now:?}");
}
