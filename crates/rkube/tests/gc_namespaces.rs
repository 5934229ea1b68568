//! End to end: the garbage collector, the namespace controller and the ServiceAccount /
//! root CA publishers of `rkube server`, driven by the real kubectl (1.31, 1.32, 1.33).
//! Owners and dependents are made by hand (ownerReferences written in the manifests),
//! so these tests need no workload controller.

mod common;

use common::{Cluster, Kubectl, VERSIONS, eventually};
use serde_json::Value;

/// `-n NS get KIND NAME -o json`, or `None` once it is gone.
fn get(k: &Kubectl, ns: &str, what: &str) -> Option<Value> {
    let r = k.try_run(&["-n", ns, "get", what, "-o", "json"]);
    if r.code != 0 {
        assert!(r.stderr.contains("NotFound"), "kubectl {} get {what}: {}", k.version, r.stderr);
        return None;
    }
    Some(r.json())
}

fn uid(k: &Kubectl, ns: &str, what: &str) -> String {
    let o = get(k, ns, what).unwrap_or_else(|| panic!("{what} exists"));
    o["metadata"]["uid"].as_str().expect("uid").to_string()
}

fn apply(k: &Kubectl, ns: &str, yaml: &str) {
    k.run_stdin(&["-n", ns, "apply", "-f", "-"], yaml);
}

fn wait_gone(k: &Kubectl, ns: &str, what: &str, secs: u64) {
    eventually(secs, || get(k, ns, what).is_none().then_some(()));
}

/// The owner reference YAML (flow style) to `kind/name` with `uid`.
fn owner_ref(api_version: &str, kind: &str, name: &str, uid: &str, block: bool) -> String {
    format!(
        "{{apiVersion: {api_version}, kind: {kind}, name: {name}, uid: {uid}, controller: false, blockOwnerDeletion: {block}}}"
    )
}

fn owner_uids(o: &Value) -> Vec<String> {
    o["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["uid"].as_str()).map(str::to_string).collect())
        .unwrap_or_default()
}

fn namespace_for(v: &str, what: &str) -> String {
    format!("{what}-{}", v.replace('.', "-"))
}

/// `kubectl delete ns` (waiting, as by default) returns once the namespace and
/// everything in it are gone.
#[test]
fn deleting_a_namespace_empties_and_removes_it() {
    let c = Cluster::start();
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = namespace_for(v, "doomed");
        k.run(&["create", "namespace", &ns]);
        k.run(&["-n", &ns, "create", "configmap", "cm", "--from-literal=a=b"]);
        k.run(&["-n", &ns, "create", "secret", "generic", "s", "--from-literal=a=b"]);
        k.run(&["-n", &ns, "create", "deployment", "web", "--image=nginx"]);
        k.run(&["-n", &ns, "create", "service", "clusterip", "svc", "--tcp=80:80"]);
        k.run(&["-n", &ns, "create", "serviceaccount", "robot"]);
        k.run(&["-n", &ns, "create", "role", "r", "--verb=get", "--resource=pods"]);
        k.run(&["-n", &ns, "create", "job", "j", "--image=busybox"]);
        apply(
            &k,
            &ns,
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: busybox}]}\n",
        );
        let start = std::time::Instant::now();
        let out = k.run(&["delete", "namespace", &ns, "--timeout=60s"]);
        assert!(out.contains(&format!("namespace \"{ns}\" deleted")), "{v}: {out}");
        let err = k.fail(&["get", "namespace", &ns]);
        assert!(err.contains("NotFound"), "{v}: gone once delete returns: {err}");
        assert!(start.elapsed().as_secs() < 20, "{v}: deletion took {:?}", start.elapsed());
        // Nothing of it survives, whatever the kind.
        let left = k.run(&["-n", &ns, "get", "all,configmaps,secrets,serviceaccounts,roles", "-o", "name"]);
        assert!(left.trim().is_empty(), "{v}: left behind: {left}");
        // The name is free again.
        k.run(&["create", "namespace", &ns]);
        k.run(&["-n", &ns, "create", "configmap", "cm"]);
    }
}

/// An object with a finalizer holds its namespace in Terminating with upstream's
/// conditions; new content is refused; removing the finalizer lets the namespace go.
#[test]
fn a_finalizer_keeps_a_namespace_terminating_until_removed() {
    let c = Cluster::start();
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = namespace_for(v, "held");
        k.run(&["create", "namespace", &ns]);
        apply(&k, &ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/hold]}\n");
        k.run(&["-n", &ns, "create", "configmap", "free"]);
        k.run(&["delete", "namespace", &ns, "--wait=false"]);
        let table = k.run(&["get", "namespace", &ns]);
        assert!(table.contains("Terminating"), "{v}: {table}");
        let conditions = eventually(20, || {
            let n = get(&k, "default", &format!("namespace/{ns}"))?;
            let cs = n["status"]["conditions"].as_array()?.clone();
            let remaining = cs.iter().find(|c| c["type"] == "NamespaceContentRemaining")?;
            (remaining["status"] == "True").then_some(cs)
        });
        let by = |t: &str| conditions.iter().find(|c| c["type"] == t).cloned().unwrap_or(Value::Null);
        let remaining = by("NamespaceContentRemaining");
        assert_eq!(remaining["reason"], "SomeResourcesRemain", "{v}: {conditions:?}");
        assert_eq!(remaining["message"], "Some resources are remaining: configmaps. has 1 resource instances", "{v}");
        let fin = by("NamespaceFinalizersRemaining");
        assert_eq!((&fin["status"], &fin["reason"]), (&Value::from("True"), &Value::from("SomeFinalizersRemain")));
        assert_eq!(
            fin["message"],
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances",
            "{v}"
        );
        assert_eq!(by("NamespaceDeletionContentFailure")["status"], "False", "{v}: {conditions:?}");
        assert_eq!(by("NamespaceDeletionDiscoveryFailure")["reason"], "ResourcesDiscovered", "{v}");
        // Everything else went; the held object is marked.
        assert!(get(&k, &ns, "configmap/free").is_none(), "{v}");
        let held = get(&k, &ns, "configmap/held").expect("held stays");
        assert!(held["metadata"]["deletionTimestamp"].is_string(), "{v}: {held}");
        // Upstream's NamespaceLifecycle admission.
        let err = k.fail(&["-n", &ns, "create", "configmap", "late"]);
        assert!(
            err.contains(&format!("unable to create new content in namespace {ns} because it is being terminated")),
            "{v}: {err}"
        );
        assert!(err.contains("Forbidden") || err.contains("forbidden"), "{v}: {err}");
        let n = k.json(&["get", "namespace", &ns]);
        assert_eq!(n["status"]["phase"], "Terminating", "{v}");
        assert_eq!(
            n["spec"]["finalizers"],
            serde_json::json!(["kubernetes"]),
            "{v}: not finalized while content remains"
        );

        k.run(&["-n", &ns, "patch", "configmap", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
        let out = k.run(&["wait", "--for=delete", &format!("namespace/{ns}"), "--timeout=30s"]);
        assert!(out.contains("deleted") || out.contains("condition met") || out.is_empty(), "{v}: {out}");
        assert!(k.fail(&["get", "namespace", &ns]).contains("NotFound"), "{v}");
    }
}

/// The four namespaces every cluster starts with cannot be deleted.
#[test]
fn initial_namespaces_cannot_be_deleted() {
    let c = Cluster::start();
    for v in VERSIONS {
        let k = c.kubectl(v);
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let err = k.fail(&["delete", "namespace", ns, "--wait=false"]);
            assert!(
                err.contains(&format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted")),
                "{v} {ns}: {err}"
            );
            let n = k.json(&["get", "namespace", ns]);
            assert_eq!(n["status"]["phase"], "Active", "{v} {ns}");
            assert!(n["metadata"]["deletionTimestamp"].is_null(), "{v} {ns}");
        }
    }
}

/// Every namespace gets a `default` ServiceAccount within a couple of seconds,
/// recreated when deleted.
#[test]
fn namespaces_get_a_default_service_account() {
    let c = Cluster::start();
    let k = c.kubectl("1.33");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        eventually(10, || get(&k, ns, "serviceaccount/default"));
    }
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = namespace_for(v, "fresh");
        k.run(&["create", "namespace", &ns]);
        let start = std::time::Instant::now();
        eventually(5, || get(&k, &ns, "serviceaccount/default"));
        assert!(start.elapsed().as_secs() < 3, "{v}: took {:?}", start.elapsed());
        let first = uid(&k, &ns, "serviceaccount/default");
        k.run(&["-n", &ns, "delete", "serviceaccount", "default"]);
        eventually(10, || get(&k, &ns, "serviceaccount/default").filter(|sa| sa["metadata"]["uid"] != first.as_str()));
    }
}

/// Every namespace gets the `kube-root-ca.crt` ConfigMap (the cluster CA) within a
/// couple of seconds, restored when deleted or edited.
#[test]
fn namespaces_get_the_root_ca_configmap() {
    let c = Cluster::start();
    let ca = std::fs::read_to_string(c.dir.path().join("data/server/tls/cluster-ca.crt")).expect("cluster CA");
    let k = c.kubectl("1.33");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        eventually(10, || {
            let unwired = c.log().contains("no cluster CA given to the controllers");
            assert!(!unwired, "rkube server must pass the cluster CA to the controllers (Options::root_ca_pem)");
            get(&k, ns, "configmap/kube-root-ca.crt")
        });
    }
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = namespace_for(v, "fresh");
        k.run(&["create", "namespace", &ns]);
        let start = std::time::Instant::now();
        let cm = eventually(5, || get(&k, &ns, "configmap/kube-root-ca.crt"));
        assert!(start.elapsed().as_secs() < 3, "{v}: took {:?}", start.elapsed());
        assert_eq!(cm["data"]["ca.crt"].as_str(), Some(ca.as_str()), "{v}: the cluster CA");
        assert_eq!(
            cm["metadata"]["annotations"]["kubernetes.io/description"],
            "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.",
            "{v}"
        );

        let first = uid(&k, &ns, "configmap/kube-root-ca.crt");
        k.run(&["-n", &ns, "delete", "configmap", "kube-root-ca.crt"]);
        eventually(10, || {
            get(&k, &ns, "configmap/kube-root-ca.crt").filter(|c| c["metadata"]["uid"] != first.as_str())
        });

        let tamper = r#"{"data":{"ca.crt":"tampered","extra":"x"}}"#;
        k.run(&["-n", &ns, "patch", "configmap", "kube-root-ca.crt", "--type=merge", "-p", tamper]);
        eventually(10, || {
            let cm = get(&k, &ns, "configmap/kube-root-ca.crt")?;
            (cm["data"] == serde_json::json!({"ca.crt": ca})).then_some(())
        });
    }
}

/// Background propagation (kubectl's default): the owner goes at once, then its
/// dependents of every kind; one with another live owner only loses the reference; a
/// reference to an owner in another namespace points at nothing, so its holder goes.
#[test]
fn background_cascade_deletes_dependents() {
    let c = Cluster::start();
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = namespace_for(v, "bg");
        k.run(&["create", "namespace", &ns]);
        k.run(&["-n", &ns, "create", "configmap", "owner"]);
        k.run(&["-n", &ns, "create", "configmap", "other-owner"]);
        let o = uid(&k, &ns, "configmap/owner");
        let o2 = uid(&k, &ns, "configmap/other-owner");
        let r = owner_ref("v1", "ConfigMap", "owner", &o, false);
        let r2 = owner_ref("v1", "ConfigMap", "other-owner", &o2, false);
        apply(
            &k,
            &ns,
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: dep-cm, ownerReferences: [{r}]}}\n---\n\
                 apiVersion: v1\nkind: Secret\nmetadata: {{name: dep-secret, ownerReferences: [{r}]}}\n---\n\
                 apiVersion: v1\nkind: Pod\nmetadata: {{name: dep-pod, ownerReferences: [{r}]}}\n\
                 spec: {{containers: [{{name: c, image: busybox}}]}}\n---\n\
                 apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: two-owners, ownerReferences: [{r}, {r2}]}}\n"
            ),
        );
        // A dependent in another namespace: upstream treats the reference as absent.
        let elsewhere = namespace_for(v, "bg-elsewhere");
        k.run(&["create", "namespace", &elsewhere]);
        apply(
            &k,
            &elsewhere,
            &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: cross, ownerReferences: [{r}]}}\n"),
        );
        wait_gone(&k, &elsewhere, "secret/cross", 20);
        let events = eventually(20, || {
            let e = k.run(&["-n", &elsewhere, "get", "events", "-o", "json"]);
            e.contains("OwnerRefInvalidNamespace").then_some(e)
        });
        assert!(events.contains(&format!("does not exist in namespace \\\"{elsewhere}\\\"")), "{v}: {events}");
        // The owner and its valid dependents are untouched meanwhile.
        std::thread::sleep(std::time::Duration::from_millis(500));
        for d in ["configmap/owner", "configmap/dep-cm", "secret/dep-secret", "pod/dep-pod", "configmap/two-owners"] {
            assert!(get(&k, &ns, d).is_some(), "{v}: {d} must stay while its owner lives");
        }

        let out = k.run(&["-n", &ns, "delete", "configmap", "owner"]);
        assert!(out.contains("deleted"), "{v}: {out}");
        for d in ["configmap/dep-cm", "secret/dep-secret", "pod/dep-pod"] {
            wait_gone(&k, &ns, d, 20);
        }
        let kept = eventually(20, || {
            let cm = get(&k, &ns, "configmap/two-owners")?;
            (owner_uids(&cm) == [o2.clone()]).then_some(cm)
        });
        assert!(kept["metadata"]["deletionTimestamp"].is_null(), "{v}: {kept}");
        assert!(get(&k, &ns, "configmap/other-owner").is_some(), "{v}");
        // Its last owner gone, it goes too.
        k.run(&["-n", &ns, "delete", "configmap", "other-owner"]);
        wait_gone(&k, &ns, "configmap/two-owners", 20);

        // A dependent whose owner never existed goes as well.
        let r = owner_ref("v1", "ConfigMap", "ghost", "6b1c0a6e-0000-4000-8000-000000000000", false);
        apply(
            &k,
            &ns,
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: orphaned, ownerReferences: [{r}]}}\n"),
        );
        wait_gone(&k, &ns, "configmap/orphaned", 20);
    }
}

/// A hand-made ReplicaSet owning hand-made pods: `--cascade=orphan` keeps the pods
/// without the reference; the default cascade deletes them. The ReplicaSet wants no
/// replicas and its pods do not match its selector (a non-controller reference), so a
/// running ReplicaSet controller leaves them alone.
#[test]
fn replicaset_pods_follow_orphan_and_background_cascades() {
    let c = Cluster::start();
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = namespace_for(v, "rs");
        k.run(&["create", "namespace", &ns]);
        for rs in ["kept", "gone"] {
            let manifest = format!(
                "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: {rs}}}\nspec:\n  replicas: 0\n  \
                 selector: {{matchLabels: {{app: {rs}}}}}\n  template:\n    metadata: {{labels: {{app: {rs}}}}}\n    \
                 spec: {{containers: [{{name: c, image: busybox}}]}}\n"
            );
            apply(&k, &ns, &manifest);
            let u = uid(&k, &ns, &format!("replicaset/{rs}"));
            for i in 0..2 {
                let r = format!(
                    "{{apiVersion: apps/v1, kind: ReplicaSet, name: {rs}, uid: {u}, controller: false, blockOwnerDeletion: true}}"
                );
                apply(
                    &k,
                    &ns,
                    &format!(
                        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {rs}-{i}, labels: {{app: {rs}-pod}}, ownerReferences: [{r}]}}\n\
                         spec: {{containers: [{{name: c, image: busybox}}]}}\n"
                    ),
                );
            }
        }

        let out = k.run(&["-n", &ns, "delete", "replicaset", "kept", "--cascade=orphan", "--timeout=30s"]);
        assert!(out.contains("deleted"), "{v}: {out}");
        assert!(get(&k, &ns, "replicaset/kept").is_none(), "{v}: kubectl waited for the orphaning");
        for i in 0..2 {
            let pod = get(&k, &ns, &format!("pod/kept-{i}")).expect("orphaned pods stay");
            assert!(pod["metadata"]["ownerReferences"].is_null(), "{v}: {pod}");
            assert!(pod["metadata"]["deletionTimestamp"].is_null(), "{v}: {pod}");
        }

        k.run(&["-n", &ns, "delete", "replicaset", "gone"]);
        for i in 0..2 {
            wait_gone(&k, &ns, &format!("pod/gone-{i}"), 20);
        }
        // The orphans were truly released: nothing collects them later.
        std::thread::sleep(std::time::Duration::from_secs(1));
        assert!(get(&k, &ns, "pod/kept-0").is_some() && get(&k, &ns, "pod/kept-1").is_some(), "{v}");
    }
}

/// Foreground propagation: the owner waits, with deletionTimestamp and the
/// `foregroundDeletion` finalizer, while a blocking dependent is held by a finalizer of
/// its own; releasing it lets both go. `kubectl delete --cascade=foreground` returns
/// only once the dependents are gone.
#[test]
fn foreground_cascade_waits_for_blocking_dependents() {
    let c = Cluster::start();
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = namespace_for(v, "fg");
        k.run(&["create", "namespace", &ns]);
        k.run(&["-n", &ns, "create", "configmap", "owner"]);
        let o = uid(&k, &ns, "configmap/owner");
        let blocking = owner_ref("v1", "ConfigMap", "owner", &o, true);
        let plain = owner_ref("v1", "ConfigMap", "owner", &o, false);
        apply(
            &k,
            &ns,
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: blocker, finalizers: [example.com/hold], ownerReferences: [{blocking}]}}\n---\n\
                 apiVersion: v1\nkind: Secret\nmetadata: {{name: plain, ownerReferences: [{plain}]}}\n"
            ),
        );
        k.run(&["-n", &ns, "delete", "configmap", "owner", "--cascade=foreground", "--wait=false"]);
        wait_gone(&k, &ns, "secret/plain", 20);
        let blocker = eventually(20, || {
            let b = get(&k, &ns, "configmap/blocker")?;
            b["metadata"]["deletionTimestamp"].is_string().then_some(b)
        });
        assert_eq!(blocker["metadata"]["finalizers"], serde_json::json!(["example.com/hold"]), "{v}");
        std::thread::sleep(std::time::Duration::from_secs(1));
        let owner = get(&k, &ns, "configmap/owner").expect("the owner waits for its blocking dependent");
        assert!(owner["metadata"]["deletionTimestamp"].is_string(), "{v}: {owner}");
        assert_eq!(owner["metadata"]["finalizers"], serde_json::json!(["foregroundDeletion"]), "{v}: {owner}");

        k.run(&[
            "-n",
            &ns,
            "patch",
            "configmap",
            "blocker",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ]);
        wait_gone(&k, &ns, "configmap/blocker", 20);
        wait_gone(&k, &ns, "configmap/owner", 20);

        // With kubectl waiting: a ReplicaSet and its pods (made as in the test above), all
        // gone when delete returns.
        apply(
            &k,
            &ns,
            "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: fg}\nspec:\n  replicas: 0\n  \
             selector: {matchLabels: {app: fg}}\n  template:\n    metadata: {labels: {app: fg}}\n    \
             spec: {containers: [{name: c, image: busybox}]}\n",
        );
        let u = uid(&k, &ns, "replicaset/fg");
        let r = format!(
            "{{apiVersion: apps/v1, kind: ReplicaSet, name: fg, uid: {u}, controller: false, blockOwnerDeletion: true}}"
        );
        for i in 0..2 {
            apply(
                &k,
                &ns,
                &format!(
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: fg-{i}, labels: {{app: fg-pod}}, ownerReferences: [{r}]}}\n\
                     spec: {{containers: [{{name: c, image: busybox}}]}}\n"
                ),
            );
        }
        let out = k.run(&["-n", &ns, "delete", "replicaset", "fg", "--cascade=foreground", "--timeout=30s"]);
        assert!(out.contains("deleted"), "{v}: {out}");
        for what in ["replicaset/fg", "pod/fg-0", "pod/fg-1"] {
            assert!(get(&k, &ns, what).is_none(), "{v}: {what} outlived a foreground delete");
        }
    }
}
