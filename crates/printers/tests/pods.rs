//! Pod rows: the READY/STATUS/RESTARTS logic, case by case.

use jiff::{SignedDuration, Timestamp};
use rkube_printers::{column_definitions, row_cells, row_conditions};
use rkube_registry::{ResourceDef, lookup};
use serde_json::{Value, json};

fn pods() -> &'static ResourceDef {
    lookup("", "v1", "pods").expect("pods are served")
}

fn now() -> Timestamp {
    "2025-06-01T12:00:00Z".parse().expect("valid time")
}

/// An RFC 3339 time `secs` seconds before [`now`].
fn ago(secs: i64) -> String {
    (now() - SignedDuration::from_secs(secs)).to_string()
}

fn pod(spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(300)},
        "spec": spec,
        "status": status,
    })
}

fn two_containers() -> Value {
    json!({"containers": [{"name": "app", "image": "nginx"}, {"name": "log", "image": "busybox"}]})
}

fn running(name: &str) -> Value {
    json!({"name": name, "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(250)}}})
}

/// (READY, STATUS, RESTARTS) of a pod.
fn summary(p: &Value) -> (String, String, String) {
    let cells = row_cells(pods(), p, now());
    let s = |i: usize| cells[i].as_str().unwrap_or_default().to_string();
    (s(1), s(2), s(3))
}

#[test]
fn columns_are_upstream_pod_columns() {
    let cols = column_definitions(pods());
    let names: Vec<(&str, i64)> =
        cols.iter().map(|c| (c["name"].as_str().unwrap(), c["priority"].as_i64().unwrap())).collect();
    assert_eq!(
        names,
        vec![
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1)
        ]
    );
    assert_eq!(cols[0]["format"], "name");
    assert_eq!(cols[0]["type"], "string");
    assert_eq!(cols[3]["type"], "string", "RESTARTS became a string with the (x ago) suffix");
    assert_eq!(cols[1]["format"], "");
}

#[test]
fn running_pod_full_row() {
    let mut spec = two_containers();
    spec["nodeName"] = json!("node-1");
    spec["readinessGates"] = json!([{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]);
    let p = pod(
        spec,
        json!({
            "phase": "Running",
            "podIP": "10.244.0.9",
            "podIPs": [{"ip": "10.244.0.88"}, {"ip": "fd00::88"}],
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "example.com/lb", "status": "True"},
                {"type": "example.com/dns", "status": "False"}
            ],
            "containerStatuses": [running("app"), running("log")]
        }),
    );
    assert_eq!(
        row_cells(pods(), &p, now()),
        vec![
            json!("web"),
            json!("2/2"),
            json!("Running"),
            json!("0"),
            json!("5m"),
            json!("10.244.0.88"),
            json!("node-1"),
            json!("<none>"),
            json!("1/2")
        ]
    );
    assert!(row_conditions(pods(), &p).is_empty());
}

#[test]
fn pending_pod_wide_cells_are_none() {
    let p = pod(two_containers(), json!({"phase": "Pending"}));
    let cells = row_cells(pods(), &p, now());
    assert_eq!(cells[1..5], [json!("0/2"), json!("Pending"), json!("0"), json!("5m")]);
    assert_eq!(cells[5..], [json!("<none>"), json!("<none>"), json!("<none>"), json!("<none>")]);
}

#[test]
fn status_reason_cases() {
    let init_spec = json!({
        "initContainers": [{"name": "init-a", "image": "busybox"}, {"name": "init-b", "image": "busybox"}],
        "containers": [{"name": "app", "image": "nginx"}]
    });
    let waiting = |reason: &str| json!({"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason}}});
    let terminated = |t: Value| json!({"name": "app", "ready": false, "restartCount": 0, "state": {"terminated": t}});
    let done_init = |name: &str| json!({"name": name, "ready": true, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "first init container still running",
            pod(
                init_spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "init-a", "ready": false, "restartCount": 0, "state": {"running": {}}},
                    {"name": "init-b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
                ]}),
            ),
            "0/1",
            "Init:0/2",
        ),
        (
            "second init container waiting on PodInitializing",
            pod(
                init_spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    done_init("init-a"),
                    {"name": "init-b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
                ]}),
            ),
            "0/1",
            "Init:1/2",
        ),
        (
            "init container crash-looping",
            pod(
                init_spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "init-a", "ready": false, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                ]}),
            ),
            "0/1",
            "Init:CrashLoopBackOff",
        ),
        (
            "init container failed with a reason",
            pod(
                init_spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "init-a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
                ]}),
            ),
            "0/1",
            "Init:Error",
        ),
        (
            "init container killed by a signal",
            pod(
                init_spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "init-a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}}
                ]}),
            ),
            "0/1",
            "Init:Signal:9",
        ),
        (
            "init container exit code without reason",
            pod(
                init_spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "init-a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}
                ]}),
            ),
            "0/1",
            "Init:ExitCode:2",
        ),
        (
            "container being created",
            pod(
                json!({"containers": [{"name": "app"}]}),
                json!({"phase": "Pending", "containerStatuses": [waiting("ContainerCreating")]}),
            ),
            "0/1",
            "ContainerCreating",
        ),
        (
            "image pull failing",
            pod(
                json!({"containers": [{"name": "app"}]}),
                json!({"phase": "Pending", "containerStatuses": [waiting("ImagePullBackOff")]}),
            ),
            "0/1",
            "ImagePullBackOff",
        ),
        (
            "completed pod",
            pod(
                json!({"containers": [{"name": "app"}]}),
                json!({"phase": "Succeeded", "containerStatuses": [terminated(json!({"exitCode": 0, "reason": "Completed"}))]}),
            ),
            "0/1",
            "Completed",
        ),
        (
            "container exited without reason",
            pod(
                json!({"containers": [{"name": "app"}]}),
                json!({"phase": "Running", "containerStatuses": [terminated(json!({"exitCode": 137}))]}),
            ),
            "0/1",
            "ExitCode:137",
        ),
        (
            "container signalled without reason",
            pod(
                json!({"containers": [{"name": "app"}]}),
                json!({"phase": "Running", "containerStatuses": [terminated(json!({"exitCode": 0, "signal": 15}))]}),
            ),
            "0/1",
            "Signal:15",
        ),
        (
            "one container completed, the other running, pod ready",
            pod(
                two_containers(),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [
                    terminated(json!({"exitCode": 0, "reason": "Completed"})), running("log")
                ]}),
            ),
            "1/2",
            "Running",
        ),
        (
            "one container completed, the other running, pod not ready",
            pod(
                two_containers(),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}], "containerStatuses": [
                    terminated(json!({"exitCode": 0, "reason": "Completed"})), running("log")
                ]}),
            ),
            "1/2",
            "NotReady",
        ),
        (
            "scheduling gated",
            pod(
                json!({"containers": [{"name": "app"}]}),
                json!({"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                ]}),
            ),
            "0/1",
            "SchedulingGated",
        ),
        (
            "status reason overrides phase",
            pod(json!({"containers": [{"name": "app"}]}), json!({"phase": "Failed", "reason": "Evicted"})),
            "0/1",
            "Evicted",
        ),
        (
            "node lost, not deleting",
            pod(json!({"containers": [{"name": "app"}]}), json!({"phase": "Running", "reason": "NodeLost"})),
            "0/1",
            "NodeLost",
        ),
    ];
    for (what, p, ready, status) in cases {
        let (r, s, _) = summary(&p);
        assert_eq!((r.as_str(), s.as_str()), (ready, status), "{what}");
    }
}

#[test]
fn deletion_turns_status_into_terminating_or_unknown() {
    let mut p =
        pod(two_containers(), json!({"phase": "Running", "containerStatuses": [running("app"), running("log")]}));
    p["metadata"]["deletionTimestamp"] = json!(ago(10));
    assert_eq!(summary(&p).1, "Terminating");

    p["status"]["reason"] = json!("NodeLost");
    assert_eq!(summary(&p).1, "Unknown");

    // A finished pod keeps its final status while being deleted.
    let mut done = pod(
        json!({"containers": [{"name": "app"}]}),
        json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ]}),
    );
    done["metadata"]["deletionTimestamp"] = json!(ago(10));
    assert_eq!(summary(&done).1, "Completed");
}

#[test]
fn restarts_show_time_since_last_restart() {
    let p = pod(
        two_containers(),
        json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": true, "restartCount": 2, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(900)}}},
            {"name": "log", "ready": true, "restartCount": 1, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}}
        ]}),
    );
    assert_eq!(summary(&p), ("2/2".into(), "Running".into(), "3 (5m ago)".into()));

    // Without a finish time there is nothing to say "ago" about.
    let p = pod(
        json!({"containers": [{"name": "app"}]}),
        json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": true, "restartCount": 4, "state": {"running": {}}}
        ]}),
    );
    assert_eq!(summary(&p).2, "4");
}

#[test]
fn sidecars_count_towards_ready_and_restarts() {
    let spec = json!({
        "initContainers": [
            {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
            {"name": "migrate", "image": "busybox"}
        ],
        "containers": [{"name": "app", "image": "nginx"}]
    });
    let p = pod(
        spec.clone(),
        json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [
                {"name": "proxy", "ready": true, "started": true, "restartCount": 1, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(120)}}},
                {"name": "migrate", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
            ],
            "containerStatuses": [running("app")]
        }),
    );
    assert_eq!(summary(&p), ("2/2".into(), "Running".into(), "1 (2m ago)".into()));

    // While the regular init container runs, the pod is still initializing.
    let p = pod(
        spec,
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "proxy", "ready": true, "started": true, "restartCount": 0, "state": {"running": {}}},
            {"name": "migrate", "ready": false, "restartCount": 0, "state": {"running": {}}}
        ]}),
    );
    assert_eq!(summary(&p), ("1/2".into(), "Init:1/2".into(), "0".into()));
}

#[test]
fn finished_pods_get_completed_row_condition() {
    let ok = pod(json!({"containers": []}), json!({"phase": "Succeeded"}));
    let conditions = row_conditions(pods(), &ok);
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0]["type"], "Completed");
    assert_eq!(conditions[0]["status"], "True");
    assert_eq!(conditions[0]["reason"], "Succeeded");
    let failed = pod(json!({"containers": []}), json!({"phase": "Failed"}));
    assert_eq!(row_conditions(pods(), &failed)[0]["reason"], "Failed");
}

#[test]
fn garbage_input_does_not_panic() {
    for v in [json!(null), json!(42), json!({"spec": "x", "status": []}), json!({"metadata": {"creationTimestamp": 5}})]
    {
        let cells = row_cells(pods(), &v, now());
        assert_eq!(cells.len(), column_definitions(pods()).len());
        assert_eq!(cells[4], "<unknown>");
    }
}
