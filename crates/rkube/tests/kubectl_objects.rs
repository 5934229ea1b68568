//! End to end: the real kubectl (1.31, 1.32, 1.33) against a real `rkube server`,
//! creating, reading, changing and deleting objects as a user would.

mod common;

use common::{Cluster, VERSIONS, eventually, seed_manifests};
use serde_json::Value;

/// Every seed manifest applies; `get -o yaml` shows server-set fields; re-apply says
/// unchanged; an edited file says configured and `diff` shows the change; `replace` and
/// `delete -f DIR` work.
#[test]
fn seed_manifests_round_trip() {
    let seed = seed_manifests();
    for v in VERSIONS {
        let c = Cluster::start();
        let k = c.kubectl(v);
        let dir = seed.to_str().expect("utf-8 path");
        let out = k.run(&["apply", "-f", dir]);
        let files = std::fs::read_dir(&seed).expect("seed dir").count();
        assert_eq!(out.lines().filter(|l| l.ends_with(" created")).count(), files, "{v}: {out}");

        let yaml = k.run(&["get", "deployment", "nginx-deployment", "-o", "yaml", "--show-managed-fields"]);
        for field in ["uid:", "resourceVersion:", "creationTimestamp:", "generation: 1", "managedFields:"] {
            assert!(yaml.contains(field), "{v}: get -o yaml lacks {field}:\n{yaml}");
        }
        // The creator owns what it sent and what defaulting added, as upstream records
        // it; the server's own metadata is nobody's.
        let d = k.json(&["get", "deployment", "nginx-deployment", "--show-managed-fields"]);
        let entries = d["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
        let created = entries
            .iter()
            .find(|e| e["manager"] == "kubectl-client-side-apply")
            .unwrap_or_else(|| panic!("{v}: no kubectl-client-side-apply entry in {entries:?}"));
        assert_eq!((&created["operation"], &created["apiVersion"]), (&"Update".into(), &"apps/v1".into()), "{v}");
        let fields = &created["fieldsV1"];
        assert!(fields["f:metadata"].get("f:name").is_none(), "{v}: {fields}");
        assert_eq!(fields["f:spec"]["f:replicas"], serde_json::json!({}), "{v}: {fields}");
        assert_eq!(fields["f:spec"]["f:revisionHistoryLimit"], serde_json::json!({}), "{v}: {fields}");
        let nginx = &fields["f:spec"]["f:template"]["f:spec"]["f:containers"][r#"k:{"name":"nginx"}"#];
        assert_eq!((&nginx["."], &nginx["f:image"]), (&serde_json::json!({}), &serde_json::json!({})), "{v}: {fields}");
        // Defaults as upstream.
        let d = k.json(&["get", "deployment", "nginx-deployment"]);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%", "{v}");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10, "{v}");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always", "{v}");
        let svc = k.json(&["get", "service", "my-service"]);
        let ip = svc["spec"]["clusterIP"].as_str().expect("clusterIP");
        assert!(ip.starts_with("10."), "{v}: clusterIP {ip}");

        // Unchanged, but for the pod with volumes of its own: the ServiceAccount admission
        // added the kube-api-access volume and mount to the live pod, so kubectl's patch
        // carries `$setElementOrder` directives for those lists (as against upstream).
        let again = k.run(&["apply", "-f", dir]);
        assert_eq!(again.lines().filter(|l| l.ends_with(" unchanged")).count(), files - 1, "{v}: {again}");
        assert!(again.contains("pod/mypod configured"), "{v}: {again}");

        // An edited copy of one manifest.
        let edited = c.dir.path().join(format!("edited-{v}.yaml"));
        let text = std::fs::read_to_string(seed.join("04-configmap-personne.yaml")).expect("seed configmap");
        let (key, value) = ("nom", "Xavier");
        assert_eq!(k.json(&["get", "configmap", "personne"])["data"][key], value, "{v}");
        assert!(text.contains("nom: Xavier"), "{v}: the seed manifest changed");
        std::fs::write(&edited, text.replacen("nom: Xavier", "nom: changed-by-test", 1)).expect("write edited");
        let edited = edited.to_str().expect("utf-8");
        let diff = k.try_run(&["diff", "-f", edited]);
        assert_eq!(diff.code, 1, "{v}: diff exit code: {diff:?}");
        assert!(diff.stdout.contains("+  ") && diff.stdout.contains("changed-by-test"), "{v}: {}", diff.stdout);
        let out = k.run(&["apply", "-f", edited]);
        assert!(out.contains("configmap/personne configured"), "{v}: {out}");
        assert_eq!(k.json(&["get", "configmap", "personne"])["data"][key], "changed-by-test", "{v}");
        let diff = k.try_run(&["diff", "-f", edited]);
        assert_eq!(diff.code, 0, "{v}: no difference expected: {diff:?}");

        // replace puts the original back.
        let out = k.run(&["replace", "-f", seed.join("04-configmap-personne.yaml").to_str().expect("utf-8")]);
        assert!(out.contains("configmap/personne replaced"), "{v}: {out}");
        assert_eq!(k.json(&["get", "configmap", "personne"])["data"][key], value, "{v}");

        let out = k.run(&["delete", "-f", dir, "--wait=false"]);
        assert_eq!(out.lines().filter(|l| l.contains("deleted")).count(), files, "{v}: {out}");
        let left = k.run(&["get", "configmaps,deployments,services,roles", "-o", "name"]);
        assert!(!left.contains("personne") && !left.contains("nginx-deployment"), "{v}: left {left}");
    }
}

/// The seed's imperative commands; kubectl 1.32+ send these as protobuf.
#[test]
fn create_configmap_and_secret_from_literals_and_files() {
    let c = Cluster::start();
    let file = c.dir.path().join("app.properties");
    std::fs::write(&file, "color=blue\nsize=3\n").expect("write");
    let env_file = c.dir.path().join("vars.env");
    std::fs::write(&env_file, "A=1\nB=two\n").expect("write");
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("ns-{}", v.replace('.', "-"));
        k.run(&["create", "namespace", &ns]);
        let out = k.run(&["create", "configmap", "langue", "--from-literal=LANGUAGE=Fr", "-n", &ns]);
        assert!(out.contains("configmap/langue created"), "{v}: {out}");
        let cm = k.json(&["get", "cm", "langue", "-n", &ns]);
        assert_eq!(cm["data"]["LANGUAGE"], "Fr", "{v}");

        k.run(&[
            "create",
            "secret",
            "generic",
            "mysql-password",
            "--from-literal=MYSQL_PASSWORD=monmotdepasse",
            "-n",
            &ns,
        ]);
        let s = k.json(&["get", "secret", "mysql-password", "-n", &ns]);
        assert_eq!(s["type"], "Opaque", "{v}");
        assert_eq!(s["data"]["MYSQL_PASSWORD"], "bW9ubW90ZGVwYXNzZQ==", "{v}");
        let jp = k.run(&["get", "secret", "mysql-password", "-n", &ns, "-o", "jsonpath={.data.MYSQL_PASSWORD}"]);
        assert_eq!(jp, "bW9ubW90ZGVwYXNzZQ==", "{v}");

        k.run(&["create", "configmap", "fromfile", &format!("--from-file={}", file.display()), "-n", &ns]);
        let cm = k.json(&["get", "cm", "fromfile", "-n", &ns]);
        assert_eq!(cm["data"]["app.properties"], "color=blue\nsize=3\n", "{v}");
        k.run(&["create", "configmap", "fromenv", &format!("--from-env-file={}", env_file.display()), "-n", &ns]);
        let cm = k.json(&["get", "cm", "fromenv", "-n", &ns]);
        assert_eq!(cm["data"]["B"], "two", "{v}");
        k.run(&["create", "secret", "generic", "sfile", &format!("--from-file=props={}", file.display()), "-n", &ns]);
        let s = k.json(&["get", "secret", "sfile", "-n", &ns]);
        assert_eq!(s["data"]["props"], "Y29sb3I9Ymx1ZQpzaXplPTMK", "{v}");

        k.run(&["create", "deployment", "web", "--image=nginx:1.16", "--replicas=2", "-n", &ns]);
        let d = k.json(&["get", "deploy", "web", "-n", &ns]);
        assert_eq!(d["spec"]["replicas"], 2, "{v}");
        assert_eq!(d["spec"]["template"]["spec"]["schedulerName"], "default-scheduler", "{v}");
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent", "{v}");

        // Already exists: 409 with upstream's words.
        let err = k.fail(&["create", "configmap", "langue", "--from-literal=X=1", "-n", &ns]);
        assert!(err.contains("configmaps \"langue\" already exists"), "{v}: {err}");
        // Server-side dry run persists nothing.
        k.run(&["create", "configmap", "dry", "--from-literal=a=b", "--dry-run=server", "-n", &ns]);
        let err = k.fail(&["get", "cm", "dry", "-n", &ns]);
        assert!(err.contains("NotFound"), "{v}: {err}");
    }
}

/// `get` in its many forms, `get all`, short names, `api-resources`, `explain`.
#[test]
fn get_formats_selectors_and_discovery() {
    let c = Cluster::start();
    let admin = c.kubectl("1.33");
    admin.run_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b-second, namespace: shop, labels: {tier: back, app: shop}}
data: {k: v}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a-first, namespace: shop, labels: {tier: front, app: shop}}
data: {k: v}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c-third, namespace: shop, labels: {tier: front}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: front, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec: {containers: [{name: c, image: nginx:1.17}]}
---
apiVersion: v1
kind: Service
metadata: {name: front, namespace: shop}
spec: {selector: {app: front}, ports: [{port: 80}]}
"#,
    );
    for v in VERSIONS {
        let k = c.kubectl(v);
        let names = k.run(&["get", "cm", "-n", "shop", "-l", "tier=front", "-o", "name"]);
        assert_eq!(names.lines().collect::<Vec<_>>(), ["configmap/a-first", "configmap/c-third"], "{v}");
        let names = k.run(&["get", "cm", "-n", "shop", "-l", "tier in (back),app", "-o", "name"]);
        assert_eq!(names.trim(), "configmap/b-second", "{v}");
        let names = k.run(&["get", "cm", "-n", "shop", "-l", "!app,tier", "-o", "name"]);
        assert_eq!(names.trim(), "configmap/c-third", "{v}");
        let names = k.run(&["get", "cm", "-n", "shop", "--field-selector", "metadata.name!=a-first", "-o", "name"]);
        assert!(!names.contains("a-first") && names.contains("b-second"), "{v}: {names}");
        let sorted = k.run(&[
            "get",
            "cm",
            "-n",
            "shop",
            "-l",
            "tier",
            "--sort-by=.metadata.name",
            "-o",
            "custom-columns=N:.metadata.name",
            "--no-headers",
        ]);
        assert_eq!(sorted.lines().collect::<Vec<_>>(), ["a-first", "b-second", "c-third"], "{v}");
        let jp = k.run(&["get", "cm", "-n", "shop", "-l", "tier", "-o", "jsonpath={.items[*].metadata.name}"]);
        assert_eq!(jp, "a-first b-second c-third", "{v}");

        // Human output: server-side tables with upstream's columns.
        let wide = k.run(&["get", "deploy", "-n", "shop", "-o", "wide"]);
        let header = wide.lines().next().unwrap_or_default();
        for col in ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"] {
            assert!(header.contains(col), "{v}: header {header}");
        }
        assert!(wide.contains("nginx:1.17") && wide.contains("app=front"), "{v}: {wide}");
        let all_ns = k.run(&["get", "cm", "-A"]);
        assert!(all_ns.lines().next().unwrap_or_default().starts_with("NAMESPACE"), "{v}: {all_ns}");
        assert!(all_ns.contains("shop") && all_ns.contains("a-first"), "{v}: {all_ns}");
        let labels = k.run(&["get", "cm", "a-first", "-n", "shop", "--show-labels"]);
        assert!(labels.contains("app=shop,tier=front"), "{v}: {labels}");

        let all = k.run(&["get", "all", "-n", "shop"]);
        assert!(all.contains("service/front") && all.contains("deployment.apps/front"), "{v}: {all}");
        assert!(!all.contains("configmap"), "{v}: configmaps are not in category all: {all}");
        let short = k.run(&["get", "svc,deploy,cm", "-n", "shop", "-o", "name"]);
        assert!(short.contains("service/front") && short.contains("configmap/a-first"), "{v}: {short}");

        let resources = k.run(&["api-resources"]);
        for line in ["deployments", "deploy", "apps/v1", "Deployment"] {
            assert!(resources.contains(line), "{v}: api-resources lacks {line}");
        }
        let explain = k.run(&["explain", "deployment.spec.strategy"]);
        assert!(explain.contains("rollingUpdate") && explain.contains("DeploymentStrategy"), "{v}: {explain}");
        let explain = k.run(&["explain", "pods.spec.containers.image"]);
        assert!(explain.contains("image") && explain.contains("<string>"), "{v}: {explain}");

        let err = k.fail(&["get", "cm", "nope", "-n", "shop"]);
        assert!(err.contains("Error from server (NotFound): configmaps \"nope\" not found"), "{v}: {err}");
        let err = k.fail(&["get", "foobars"]);
        assert!(err.contains("the server doesn't have a resource type \"foobars\""), "{v}: {err}");
    }
}

/// `get -w` prints changes another client makes.
#[test]
fn get_watch_sees_changes_from_another_client() {
    let c = Cluster::start();
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("w-{}", v.replace('.', "-"));
        k.run(&["create", "ns", &ns]);
        let mut watcher = k
            .command(&["get", "cm", "-n", &ns, "-w", "-o", "name", "--request-timeout=30s"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl get -w");
        // Let the watch start before making changes.
        std::thread::sleep(std::time::Duration::from_millis(700));
        let other = c.kubectl("1.33");
        other.run(&["create", "cm", "seen-1", "-n", &ns]);
        other.run(&["create", "cm", "seen-2", "-n", &ns]);
        let stdout = watcher.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.push(line);
                if lines.iter().any(|l| l.contains("seen-2")) {
                    break;
                }
            }
            lines
        });
        eventually(20, || reader.is_finished().then_some(()));
        let lines = reader.join().expect("reader");
        let _ = watcher.kill();
        let _ = watcher.wait();
        assert!(lines.iter().any(|l| l.contains("configmap/seen-1")), "{v}: {lines:?}");
        assert!(lines.iter().any(|l| l.contains("configmap/seen-2")), "{v}: {lines:?}");
    }
}

/// scale, label, annotate, edit, every patch type, run --dry-run=server, namespaced
/// contexts.
#[test]
fn changing_objects() {
    let c = Cluster::start();
    let seed = seed_manifests();
    for v in VERSIONS {
        let k = c.kubectl(v).env("KUBE_EDITOR", "sed -i s/replicas:\\ 6/replicas:\\ 4/");
        let ns = format!("ch-{}", v.replace('.', "-"));
        k.run(&["create", "ns", &ns]);
        // The manifest names namespace default; this test runs in its own.
        let manifest = std::fs::read_to_string(seed.join("09-deployment-myfirstdeploy.yaml")).expect("seed 09");
        let manifest: String =
            manifest.lines().filter(|l| l.trim() != "namespace: default").map(|l| format!("{l}\n")).collect();
        k.run_stdin(&["apply", "-n", &ns, "-f", "-"], &manifest);
        let out = k.run(&["scale", "-n", &ns, "deployment/myfirstdeploy", "--replicas=6"]);
        assert!(out.contains("scaled"), "{v}: {out}");
        let d = k.json(&["get", "-n", &ns, "deploy", "myfirstdeploy"]);
        assert_eq!(d["spec"]["replicas"], 6, "{v}");
        assert_eq!(d["metadata"]["generation"], 2, "{v}: spec change bumps generation");

        k.run(&["edit", "-n", &ns, "deploy", "myfirstdeploy"]);
        assert_eq!(k.json(&["get", "-n", &ns, "deploy", "myfirstdeploy"])["spec"]["replicas"], 4, "{v}");

        k.run(&["label", "-n", &ns, "deploy", "myfirstdeploy", "team=blue"]);
        k.run(&["annotate", "-n", &ns, "deploy", "myfirstdeploy", "note=hello"]);
        let d = k.json(&["get", "-n", &ns, "deploy", "myfirstdeploy"]);
        assert_eq!(d["metadata"]["labels"]["team"], "blue", "{v}");
        assert_eq!(d["metadata"]["annotations"]["note"], "hello", "{v}");
        let err = k.fail(&["label", "-n", &ns, "deploy", "myfirstdeploy", "team=red"]);
        assert!(err.contains("already has a value"), "{v}: {err}");
        k.run(&["label", "-n", &ns, "deploy", "myfirstdeploy", "team-"]);
        assert!(k.json(&["get", "-n", &ns, "deploy", "myfirstdeploy"])["metadata"]["labels"].get("team").is_none());

        // Strategic merge: containers merge by name.
        k.run(&[
            "patch",
            "-n",
            &ns,
            "deploy",
            "myfirstdeploy",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}"#,
        ]);
        let d = k.json(&["get", "-n", &ns, "deploy", "myfirstdeploy"]);
        let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names.len(), 2, "{v}: {names:?}");
        assert!(names.contains(&"sidecar"), "{v}: {names:?}");
        // Merge patch replaces the list.
        let first = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] != "sidecar"))
            .cloned()
            .expect("original container");
        let merge = serde_json::json!({"spec": {"template": {"spec": {"containers": [first]}}}}).to_string();
        k.run(&["patch", "-n", &ns, "deploy", "myfirstdeploy", "--type=merge", "-p", &merge]);
        let d = k.json(&["get", "-n", &ns, "deploy", "myfirstdeploy"]);
        assert_eq!(d["spec"]["template"]["spec"]["containers"].as_array().map(Vec::len), Some(1), "{v}");
        // JSON patch.
        k.run(&[
            "patch",
            "-n",
            &ns,
            "deploy",
            "myfirstdeploy",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
        ]);
        assert_eq!(k.json(&["get", "-n", &ns, "deploy", "myfirstdeploy"])["spec"]["replicas"], 2, "{v}");
        let err = k.fail(&[
            "patch",
            "-n",
            &ns,
            "deploy",
            "myfirstdeploy",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/nope"}]"#,
        ]);
        assert!(err.contains("is invalid") && err.contains("patch"), "{v}: {err}");

        // run --dry-run=server creates nothing.
        let out = k.run(&["run", "dry", "--image=busybox", "-n", &ns, "--dry-run=server", "-o", "json"]);
        let pod: Value = serde_json::from_str(&out).expect("pod json");
        assert_eq!(
            pod["spec"]["containers"][0]["terminationMessagePath"], "/dev/termination-log",
            "{v}: defaults applied"
        );
        assert!(k.fail(&["get", "pod", "dry", "-n", &ns]).contains("NotFound"), "{v}");

        // The context's namespace is followed by namespaced commands.
        k.run(&["config", "set-context", "--current", &format!("--namespace={ns}")]);
        let names = k.run(&["get", "deploy", "-o", "name"]);
        assert_eq!(names.trim(), "deployment.apps/myfirstdeploy", "{v}");
        k.run(&["config", "set-context", "--current", "--namespace=default"]);
    }
}

/// Server-side apply: create-on-apply, a conflict with another manager, and
/// `--force-conflicts`.
#[test]
fn server_side_apply_conflicts() {
    let c = Cluster::start();
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("ssa-{}", v.replace('.', "-"));
        k.run(&["create", "ns", &ns]);
        let manifest = |replicas: u32| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: c, image: nginx:1.16}}]}}\n"
            )
        };
        let out = k.run_stdin(&["apply", "--server-side", "-f", "-"], &manifest(2));
        assert!(out.contains("serverside-applied"), "{v}: {out}");
        let d = k.json(&["get", "deploy", "web", "-n", &ns, "--show-managed-fields"]);
        let managers: Vec<&str> = d["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields")
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(managers.contains(&"kubectl"), "{v}: {managers:?}");

        k.run(&["scale", "deploy", "web", "-n", &ns, "--replicas=3"]);
        let r = k.try_run_stdin(&["apply", "--server-side", "-f", "-"], &manifest(4));
        assert_ne!(r.code, 0, "{v}: conflicting apply must fail");
        assert!(r.stderr.contains("conflict") && r.stderr.contains(".spec.replicas"), "{v}: {}", r.stderr);
        let out = k.run_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], &manifest(4));
        assert!(out.contains("serverside-applied"), "{v}: {out}");
        assert_eq!(k.json(&["get", "deploy", "web", "-n", &ns])["spec"]["replicas"], 4, "{v}");
    }
}

/// Errors carry upstream's codes and messages.
#[test]
fn errors_as_upstream() {
    let c = Cluster::start();
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("err-{}", v.replace('.', "-"));
        k.run(&["create", "ns", &ns]);
        k.run(&["create", "cm", "cfg", "--from-literal=a=1", "-n", &ns]);
        let mut cm = k.json(&["get", "cm", "cfg", "-n", &ns]);
        k.run(&["label", "cm", "cfg", "x=y", "-n", &ns]);
        // Stale resourceVersion → 409.
        cm["data"]["a"] = "2".into();
        let r = k.try_run_stdin(&["replace", "-f", "-"], &cm.to_string());
        assert_ne!(r.code, 0, "{v}");
        assert!(
            r.stderr.contains("Conflict") && r.stderr.contains("the object has been modified"),
            "{v}: {}",
            r.stderr
        );

        // Invalid name → 422.
        let r = k.try_run_stdin(&["create", "-f", "-"], &format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"Bad_Name\",\"namespace\":\"{ns}\"}}}}"));
        assert!(
            r.stderr.contains("Invalid") && r.stderr.contains("metadata.name: Invalid value: \"Bad_Name\""),
            "{v}: {}",
            r.stderr
        );

        // Unknown field with strict validation → 400.
        let r = k.try_run_stdin(
            &["create", "-f", "-"],
            &format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"strict\",\"namespace\":\"{ns}\"}},\"bogusField\":1}}"),
        );
        assert_ne!(r.code, 0, "{v}");
        assert!(r.stderr.contains("unknown field \"bogusField\""), "{v}: {}", r.stderr);
        // --validate=warn creates it with a warning.
        let r = k.try_run_stdin(
            &["create", "--validate=warn", "-f", "-"],
            &format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"warned\",\"namespace\":\"{ns}\"}},\"bogusField\":1}}"),
        );
        assert_eq!(r.code, 0, "{v}: {}", r.stderr);
        assert!(r.stderr.contains("unknown field \"bogusField\""), "{v}: {}", r.stderr);

        // Forbidden pod spec change → 422 naming the field.
        k.run(&["run", "p", "--image=busybox:1.28", "-n", &ns]);
        let r = k.try_run(&["patch", "pod", "p", "-n", &ns, "-p", r#"{"spec":{"restartPolicy":"Never"}}"#]);
        assert_ne!(r.code, 0, "{v}");
        assert!(
            r.stderr.contains("The Pod \"p\" is invalid")
                && r.stderr.contains("spec: Forbidden: pod updates may not change fields other than"),
            "{v}: {}",
            r.stderr
        );
        // The image may change.
        k.run(&["set", "image", "pod/p", "p=busybox:1.36", "-n", &ns]);
        assert_eq!(k.json(&["get", "pod", "p", "-n", &ns])["spec"]["containers"][0]["image"], "busybox:1.36", "{v}");

        // generateName: the server picks the name.
        let out = k.run_stdin(
            &["create", "-o", "name", "-f", "-"],
            &format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"generateName\":\"gen-\",\"namespace\":\"{ns}\"}}}}"),
        );
        let generated = out.trim().strip_prefix("configmap/gen-").unwrap_or_else(|| panic!("{v}: {out}"));
        assert_eq!(generated.len(), 5, "{v}: {out}");

        // A namespace that does not exist.
        let err = k.fail(&["create", "cm", "x", "-n", "does-not-exist"]);
        assert!(err.contains("namespaces \"does-not-exist\" not found"), "{v}: {err}");
    }
}

/// `auth can-i` and `auth whoami` (protobuf bodies from kubectl 1.32 on).
#[test]
fn auth_can_i_and_whoami() {
    let c = Cluster::start();
    for v in VERSIONS {
        let k = c.kubectl(v);
        assert_eq!(k.run(&["auth", "can-i", "create", "pods"]).trim(), "yes", "{v}");
        assert_eq!(k.run(&["auth", "can-i", "get", "/healthz"]).trim(), "yes", "{v}");
        let list = k.run(&["auth", "can-i", "--list"]);
        assert!(list.contains("*.*"), "{v}: {list}");
        let who = k.run(&["auth", "whoami", "-o", "json"]);
        let who: Value = serde_json::from_str(&who).expect("json");
        assert_eq!(who["status"]["userInfo"]["username"], "system:admin", "{v}");
        assert!(
            who["status"]["userInfo"]["groups"].as_array().is_some_and(|g| g.iter().any(|x| x == "system:masters")),
            "{v}"
        );
    }
}

/// `kubectl create token` issues a service-account token the server accepts as that
/// service account, for as long as the account (and a bound pod) exists.
#[test]
fn service_account_tokens() {
    let c = Cluster::start();
    let url = c.server_url();
    let empty = c.dir.path().join("no-user.yaml");
    std::fs::write(&empty, "apiVersion: v1\nkind: Config\n").expect("write");
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("tok-{}", v.replace('.', "-"));
        k.run(&["create", "ns", &ns]);
        k.run(&["create", "serviceaccount", "robot", "-n", &ns]);
        let token = k.run(&["create", "token", "robot", "-n", &ns, "--duration=10m"]);
        let token = token.trim();
        assert_eq!(token.split('.').count(), 3, "{v}: a JWT: {token}");
        let as_robot = |args: &[&str]| {
            let mut a =
                vec!["--kubeconfig", empty.to_str().expect("utf-8"), "--server", &url, "--insecure-skip-tls-verify"];
            a.extend_from_slice(args);
            k.try_run(&a)
        };
        let who = as_robot(&["--token", token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
        assert_eq!(who.stdout, format!("system:serviceaccount:{ns}:robot"), "{v}: {who:?}");
        let r = as_robot(&["--token", token, "get", "cm", "-n", &ns]);
        assert_eq!(r.code, 0, "{v}: {r:?}");
        let r = as_robot(&["--token", "garbage.token.here", "get", "cm", "-n", &ns]);
        assert!(r.stderr.contains("Unauthorized"), "{v}: {r:?}");

        // Bound to a pod: valid while the pod lives.
        k.run(&["run", "holder", "--image=busybox", "-n", &ns]);
        let bound =
            k.run(&["create", "token", "robot", "-n", &ns, "--bound-object-kind=Pod", "--bound-object-name=holder"]);
        let bound = bound.trim();
        assert_eq!(as_robot(&["--token", bound, "get", "cm", "-n", &ns]).code, 0, "{v}");
        k.run(&["delete", "pod", "holder", "-n", &ns, "--wait=false"]);
        let r = as_robot(&["--token", bound, "get", "cm", "-n", &ns]);
        assert!(r.stderr.contains("Unauthorized"), "{v}: token outlived its pod: {r:?}");

        // Deleting the account revokes its tokens.
        k.run(&["delete", "sa", "robot", "-n", &ns]);
        let r = as_robot(&["--token", token, "get", "cm", "-n", &ns]);
        assert!(r.stderr.contains("Unauthorized"), "{v}: {r:?}");
        let err = k.fail(&["create", "token", "nobody", "-n", &ns]);
        assert!(err.contains("serviceaccounts \"nobody\" not found"), "{v}: {err}");
    }
}

/// A `kind: List` file (what `get -o yaml` of several objects writes) applies: kubectl
/// validates its items against the protobuf `/openapi/v2`, which also serves
/// `explain --output=plaintext-openapiv2`.
#[test]
fn list_files_apply_with_client_side_validation() {
    let c = Cluster::start();
    for v in VERSIONS {
        let k = c.kubectl(v);
        let ns = format!("list-{}", v.replace('.', "-"));
        k.run(&["create", "ns", &ns]);
        let list = |value: &str, extra: &str| {
            format!(
                "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: one, namespace: {ns}}}\n  data: {{x: \"{value}\"}}\n{extra}- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: two, namespace: {ns}}}\n"
            )
        };
        let out = k.run_stdin(&["apply", "-f", "-"], &list("1", ""));
        assert!(out.contains("configmap/one created") && out.contains("configmap/two created"), "{v}: {out}");
        let out = k.run_stdin(&["apply", "-f", "-"], &list("2", ""));
        assert!(out.contains("configmap/one configured") && out.contains("configmap/two unchanged"), "{v}: {out}");
        assert_eq!(k.run(&["get", "cm", "one", "-n", &ns, "-o", "jsonpath={.data.x}"]), "2", "{v}");
        let r = k.try_run_stdin(&["apply", "-f", "-"], &list("3", "  bogus: 1\n"));
        assert_ne!(r.code, 0, "{v}");
        assert!(r.stderr.contains("unknown field \"bogus\""), "{v}: {}", r.stderr);
        let explain = k.run(&["explain", "pods.spec.restartPolicy", "--output=plaintext-openapiv2"]);
        assert!(explain.contains("restartPolicy <string>"), "{v}: {explain}");
    }
}
