//! Golden rows for every kind with a printer, plus the default table.

use jiff::{SignedDuration, Timestamp};
use rkube_printers::{column_definitions, row_cells};
use rkube_registry::{RESOURCES, ResourceDef, lookup};
use serde_json::{Value, json};

fn now() -> Timestamp {
    "2025-06-01T12:00:00Z".parse().expect("valid time")
}

/// An RFC 3339 time `secs` seconds before [`now`].
fn ago(secs: i64) -> String {
    (now() - SignedDuration::from_secs(secs)).to_string()
}

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn def(group: &str, version: &str, plural: &str) -> &'static ResourceDef {
    lookup(group, version, plural).unwrap_or_else(|| panic!("{group}/{version}/{plural} is served"))
}

/// Metadata with a name and an age of three days.
fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(3 * DAY)})
}

/// Column headers with their priorities, compactly.
fn headers(d: &ResourceDef) -> Vec<String> {
    column_definitions(d)
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default();
            if c["priority"] == 1 { format!("{name}*") } else { name.to_string() }
        })
        .collect()
}

/// Checks headers (`*` marks wide columns) and the cells of one object.
fn check(d: &ResourceDef, want_headers: &[&str], obj: &Value, want_cells: Value) {
    assert_eq!(headers(d), want_headers, "{} headers", d.kind);
    let cells = row_cells(d, obj, now());
    assert_eq!(Value::Array(cells), want_cells, "{} cells", d.kind);
}

#[test]
fn service() {
    let d = def("", "v1", "services");
    let h = ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector*"];
    let cluster_ip = json!({"metadata": meta("web"), "spec": {
        "type": "ClusterIP", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
        "selector": {"tier": "fe", "app": "web"},
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
    check(
        d,
        &h,
        &cluster_ip,
        json!(["web", "ClusterIP", "10.43.0.10", "<none>", "80/TCP,53/UDP", "3d", "app=web,tier=fe"]),
    );

    let node_port = json!({"metadata": meta("np"), "spec": {
        "type": "NodePort", "clusterIPs": ["10.43.0.11"], "externalIPs": ["1.2.3.4"],
        "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}});
    check(d, &h, &node_port, json!(["np", "NodePort", "10.43.0.11", "1.2.3.4", "80:30080/TCP", "3d", "<none>"]));

    let pending_lb =
        json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.43.0.12"], "ports": []}});
    check(d, &h, &pending_lb, json!(["lb", "LoadBalancer", "10.43.0.12", "<pending>", "<none>", "3d", "<none>"]));

    let lb = json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.43.0.12"], "externalIPs": ["9.9.9.9"],
        "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}, {"ip": "5.6.7.8"}]}}});
    check(
        d,
        &h,
        &lb,
        json!(["lb", "LoadBalancer", "10.43.0.12", "5.6.7.8,lb.example.com,9.9.9.9", "443:31443/TCP", "3d", "<none>"]),
    );

    let headless = json!({"metadata": meta("db"), "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432}]}});
    check(d, &h, &headless, json!(["db", "ClusterIP", "None", "<none>", "5432/TCP", "3d", "<none>"]));

    let external = json!({"metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    check(d, &h, &external, json!(["ext", "ExternalName", "<none>", "db.example.com", "<none>", "3d", "<none>"]));
}

#[test]
fn endpoints() {
    let d = def("", "v1", "endpoints");
    let h = ["Name", "Endpoints", "Age"];
    let ep = json!({"metadata": meta("web"), "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
        {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]}
    ]});
    check(d, &h, &ep, json!(["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...", "3d"]));
    let small =
        json!({"metadata": meta("v6"), "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]}]});
    check(d, &h, &small, json!(["v6", "[fd00::1]:8080", "3d"]));
    let headless = json!({"metadata": meta("h"), "subsets": [{"addresses": [{"ip": "10.0.0.5"}]}]});
    check(d, &h, &headless, json!(["h", "10.0.0.5", "3d"]));
    check(d, &h, &json!({"metadata": meta("none")}), json!(["none", "<none>", "3d"]));
}

#[test]
fn namespace_configmap_secret_serviceaccount() {
    let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(400 * DAY)}, "status": {"phase": "Active"}});
    check(def("", "v1", "namespaces"), &["Name", "Status", "Age"], &ns, json!(["kube-system", "Active", "400d"]));

    let cm = json!({"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    check(def("", "v1", "configmaps"), &["Name", "Data", "Age"], &cm, json!(["cfg", 3, "3d"]));

    let secret = json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    check(
        def("", "v1", "secrets"),
        &["Name", "Type", "Data", "Age"],
        &secret,
        json!(["tls", "kubernetes.io/tls", 2, "3d"]),
    );

    let sa = json!({"metadata": meta("default")});
    check(def("", "v1", "serviceaccounts"), &["Name", "Secrets", "Age"], &sa, json!(["default", 0, "3d"]));
}

#[test]
fn node() {
    let d = def("", "v1", "nodes");
    let h = [
        "Name",
        "Status",
        "Roles",
        "Age",
        "Version",
        "Internal-IP*",
        "External-IP*",
        "OS-Image*",
        "Kernel-Version*",
        "Container-Runtime*",
    ];
    let n = json!({
        "metadata": {"name": "node-1", "creationTimestamp": ago(49 * HOUR), "labels": {
            "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "true",
            "node-role.kubernetes.io/": "", "kubernetes.io/role": "master", "kubernetes.io/hostname": "node-1"}},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "node-1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
            "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 13", "kernelVersion": "6.12.0", "containerRuntimeVersion": ""}
        }
    });
    check(
        d,
        &h,
        &n,
        json!([
            "node-1",
            "Ready,SchedulingDisabled",
            "control-plane,etcd,master",
            "2d1h",
            "v1.33.1",
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 13",
            "6.12.0",
            "<unknown>"
        ]),
    );

    let not_ready =
        json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    let cells = row_cells(d, &not_ready, now());
    assert_eq!(cells[1..4], [json!("NotReady"), json!("<none>"), json!("<unknown>")]);
    let fresh = json!({"metadata": {"name": "n3"}});
    assert_eq!(row_cells(d, &fresh, now())[1], "Unknown");
}

#[test]
fn events_core_and_events_v1() {
    let h =
        ["Last Seen", "Type", "Reason", "Object", "Subobject*", "Source*", "Message", "First Seen*", "Count*", "Name*"];
    let core = json!({
        "metadata": {"name": "web.17a", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled", "message": "  Successfully pulled image \"nginx\"\n", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 4
    });
    check(
        def("", "v1", "events"),
        &h,
        &core,
        json!([
            "30s",
            "Normal",
            "Pulled",
            "pod/web",
            "spec.containers{app}",
            "kubelet, node-1",
            "Successfully pulled image \"nginx\"",
            "10m",
            4,
            "web.17a"
        ]),
    );

    // A new-style event written through core/v1: only eventTime, no count, reporting fields.
    let new_style = json!({
        "metadata": {"name": "e2"}, "involvedObject": {"kind": "Node"}, "reason": "Starting", "type": "Normal",
        "eventTime": ago(90), "reportingComponent": "kubelet", "message": "Starting kubelet."
    });
    check(
        def("", "v1", "events"),
        &h,
        &new_style,
        json!(["90s", "Normal", "Starting", "node", "", "kubelet", "Starting kubelet.", "90s", 1, "e2"]),
    );

    let series = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e3"}, "regarding": {"kind": "Deployment", "name": "web"},
        "reason": "ScalingReplicaSet", "type": "Normal", "note": "Scaled up", "eventTime": ago(7200),
        "reportingController": "deployment-controller", "reportingInstance": "cm-1",
        "series": {"count": 7, "lastObservedTime": ago(60)}
    });
    check(
        def("events.k8s.io", "v1", "events"),
        &h,
        &series,
        json!([
            "60s",
            "Normal",
            "ScalingReplicaSet",
            "deployment/web",
            "",
            "deployment-controller, cm-1",
            "Scaled up",
            "120m",
            7,
            "e3"
        ]),
    );

    let legacy_v1 = json!({
        "metadata": {"name": "e4"}, "regarding": {"kind": "Pod", "name": "p"}, "reason": "BackOff", "type": "Warning",
        "note": "Back-off", "deprecatedFirstTimestamp": ago(3 * HOUR), "deprecatedLastTimestamp": ago(10),
        "deprecatedCount": 12, "deprecatedSource": {"component": "kubelet"}, "eventTime": null
    });
    check(
        def("events.k8s.io", "v1", "events"),
        &h,
        &legacy_v1,
        json!(["10s", "Warning", "BackOff", "pod/p", "", "kubelet", "Back-off", "3h", 12, "e4"]),
    );
}

#[test]
fn persistent_volumes_and_claims() {
    let pv = json!({
        "metadata": {"name": "pv-1", "creationTimestamp": ago(3 * DAY)},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local",
            "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"}
    });
    check(
        def("", "v1", "persistentvolumes"),
        &[
            "Name",
            "Capacity",
            "Access Modes",
            "Reclaim Policy",
            "Status",
            "Claim",
            "StorageClass",
            "VolumeAttributesClass",
            "Reason",
            "Age",
            "VolumeMode*",
        ],
        &pv,
        json!([
            "pv-1",
            "10Gi",
            "RWO,RWX",
            "Retain",
            "Bound",
            "default/data",
            "local",
            "<unset>",
            "",
            "3d",
            "Filesystem"
        ]),
    );

    let mut deleting = pv.clone();
    deleting["metadata"]["deletionTimestamp"] = json!(ago(1));
    deleting["metadata"]["annotations"] = json!({"volume.beta.kubernetes.io/storage-class": "legacy"});
    let cells = row_cells(def("", "v1", "persistentvolumes"), &deleting, now());
    assert_eq!((cells[4].as_str(), cells[6].as_str()), (Some("Terminating"), Some("legacy")));

    let h = [
        "Name",
        "Status",
        "Volume",
        "Capacity",
        "Access Modes",
        "StorageClass",
        "VolumeAttributesClass",
        "Age",
        "VolumeMode*",
    ];
    let bound = json!({
        "metadata": meta("data"),
        "spec": {"volumeName": "pv-1", "storageClassName": "local", "resources": {"requests": {"storage": "5Gi"}}},
        "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOncePod", "ReadOnlyMany"]}
    });
    check(
        def("", "v1", "persistentvolumeclaims"),
        &h,
        &bound,
        json!(["data", "Bound", "pv-1", "10Gi", "ROX,RWOP", "local", "<unset>", "3d", "<unset>"]),
    );
    let pending = json!({"metadata": meta("wait"), "spec": {"resources": {"requests": {"storage": "5Gi"}}, "volumeMode": "Block"},
        "status": {"phase": "Pending"}});
    check(
        def("", "v1", "persistentvolumeclaims"),
        &h,
        &pending,
        json!(["wait", "Pending", "", "", "", "", "<unset>", "3d", "Block"]),
    );
}

#[test]
fn resource_quota_and_default_tables() {
    let q = json!({"metadata": meta("compute"), "status": {
        "hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "4Gi", "limits.cpu": "4"},
        "used": {"pods": "3", "requests.cpu": "500m", "limits.cpu": "1"}}});
    check(
        def("", "v1", "resourcequotas"),
        &["Name", "Request", "Limit", "Age"],
        &q,
        json!(["compute", "pods: 3/10, requests.cpu: 500m/2", "limits.cpu: 1/4, limits.memory: 0/4Gi", "3d"]),
    );

    let created = json!({"metadata": {"name": "admin", "creationTimestamp": "2024-03-04T05:06:07Z"}});
    for (g, p) in
        [("", "limitranges"), ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "clusterroles")]
    {
        let d = def(g, "v1", p);
        assert_eq!(headers(d), ["Name", "Created At"]);
        assert_eq!(column_definitions(d)[1]["type"], "date");
        assert_eq!(row_cells(d, &created, now()), vec![json!("admin"), json!("2024-03-04T05:06:07Z")]);
    }
}

fn template(containers: Value) -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
}

#[test]
fn deployment_replicaset_statefulset_daemonset() {
    let containers = json!([{"name": "app", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]);
    let deploy = json!({"metadata": meta("web"), "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template(containers.clone())},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    check(
        def("apps", "v1", "deployments"),
        &["Name", "Ready", "Up-to-date", "Available", "Age", "Containers*", "Images*", "Selector*"],
        &deploy,
        json!(["web", "2/3", 3, 2, "3d", "app,log", "nginx:1.27,busybox", "app=web"]),
    );
    let empty = json!({"metadata": meta("new"), "spec": {"template": template(json!([]))}});
    check(
        def("apps", "v1", "deployments"),
        &["Name", "Ready", "Up-to-date", "Available", "Age", "Containers*", "Images*", "Selector*"],
        &empty,
        json!(["new", "0/1", 0, 0, "3d", "", "", ""]),
    );

    let rs = json!({"metadata": meta("web-5d8f"), "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f"}}, "template": template(containers.clone())},
        "status": {"replicas": 3, "readyReplicas": 1}});
    check(
        def("apps", "v1", "replicasets"),
        &["Name", "Desired", "Current", "Ready", "Age", "Containers*", "Images*", "Selector*"],
        &rs,
        json!(["web-5d8f", 3, 3, 1, "3d", "app,log", "nginx:1.27,busybox", "app=web,pod-template-hash=5d8f"]),
    );

    let sts = json!({"metadata": meta("db"), "spec": {"replicas": 2, "template": template(json!([{"name": "pg", "image": "postgres"}]))},
        "status": {"readyReplicas": 2}});
    check(
        def("apps", "v1", "statefulsets"),
        &["Name", "Ready", "Age", "Containers*", "Images*"],
        &sts,
        json!(["db", "2/2", "3d", "pg", "postgres"]),
    );

    let mut ds_template = template(json!([{"name": "agent", "image": "agent:1"}]));
    ds_template["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
    let ds = json!({"metadata": meta("agent"), "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": ds_template},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}});
    check(
        def("apps", "v1", "daemonsets"),
        &[
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age",
            "Containers*",
            "Images*",
            "Selector*",
        ],
        &ds,
        json!(["agent", 3, 3, 2, 3, 2, "kubernetes.io/os=linux", "3d", "agent", "agent:1", "app=agent"]),
    );
}

#[test]
fn controller_revision() {
    let d = def("apps", "v1", "controllerrevisions");
    let cr = json!({"metadata": {"name": "db-7c9", "creationTimestamp": ago(3 * DAY), "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u", "controller": true}]}, "revision": 2});
    check(d, &["Name", "Controller", "Revision", "Age"], &cr, json!(["db-7c9", "statefulset.apps/db", 2, "3d"]));
    let orphan = json!({"metadata": {"name": "x", "creationTimestamp": ago(3 * DAY)}, "revision": 1});
    check(d, &["Name", "Controller", "Revision", "Age"], &orphan, json!(["x", "<none>", 1, "3d"]));
}

#[test]
fn jobs() {
    let d = def("batch", "v1", "jobs");
    let h = ["Name", "Status", "Completions", "Duration", "Age", "Containers*", "Images*", "Selector*"];
    let tpl = template(json!([{"name": "pi", "image": "perl"}]));
    let sel = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}});
    let complete = json!({"metadata": meta("pi"), "spec": {"completions": 1, "parallelism": 1, "selector": sel, "template": tpl},
        "status": {"succeeded": 1, "startTime": ago(600), "completionTime": ago(410),
            "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
    check(
        d,
        &h,
        &complete,
        json!(["pi", "Complete", "1/1", "3m10s", "3d", "pi", "perl", "batch.kubernetes.io/controller-uid=abc"]),
    );

    let running = json!({"metadata": meta("work"), "spec": {"parallelism": 3, "template": tpl},
        "status": {"active": 3, "startTime": ago(90)}});
    check(d, &h, &running, json!(["work", "Running", "0/1 of 3", "90s", "3d", "pi", "perl", "<none>"]));

    let statuses = [
        (json!([{"type": "Failed", "status": "True"}]), false, "Failed"),
        (json!([{"type": "Suspended", "status": "True"}]), false, "Suspended"),
        (json!([{"type": "FailureTarget", "status": "True"}]), false, "FailureTarget"),
        (json!([{"type": "Complete", "status": "False"}]), false, "Running"),
        (json!([{"type": "Suspended", "status": "True"}]), true, "Terminating"),
    ];
    for (conditions, deleting, want) in statuses {
        let mut job = json!({"metadata": meta("j"), "spec": {"template": tpl}, "status": {"conditions": conditions}});
        if deleting {
            job["metadata"]["deletionTimestamp"] = json!(ago(1));
        }
        let cells = row_cells(d, &job, now());
        assert_eq!(cells[1], want);
        assert_eq!(cells[2], "0/1");
        assert_eq!(cells[3], "", "no start time, no duration");
    }
}

#[test]
fn cron_job() {
    let d = def("batch", "v1", "cronjobs");
    let h = [
        "Name",
        "Schedule",
        "Timezone",
        "Suspend",
        "Active",
        "Last Schedule",
        "Age",
        "Containers*",
        "Images*",
        "Selector*",
    ];
    let cj = json!({"metadata": meta("nightly"), "spec": {"schedule": "0 3 * * *", "timeZone": "Etc/UTC", "suspend": false,
        "jobTemplate": {"spec": {"template": template(json!([{"name": "backup", "image": "restic"}]))}}},
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(5 * HOUR)}});
    check(d, &h, &cj, json!(["nightly", "0 3 * * *", "Etc/UTC", "False", 1, "5h", "3d", "backup", "restic", "<none>"]));
    let bare = json!({"metadata": meta("c"), "spec": {"schedule": "@hourly"}});
    check(d, &h, &bare, json!(["c", "@hourly", "<none>", "<unset>", 0, "<none>", "3d", "", "", "<none>"]));
}

#[test]
fn horizontal_pod_autoscalers() {
    let h = ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"];
    let v2 = json!({"metadata": meta("web"), "spec": {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
    "minReplicas": 2, "maxReplicas": 10,
    "metrics": [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "512Mi"}}},
        {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}
    ]},
    "status": {"currentReplicas": 3, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 35, "averageValue": "120m"}}}
    ]}});
    check(
        def("autoscaling", "v2", "horizontalpodautoscalers"),
        &h,
        &v2,
        json!(["web", "Deployment/web", "cpu: 35%/80%, memory: <unknown>/512Mi + 1 more...", "2", 10, 3, "3d"]),
    );

    let external = json!({"metadata": meta("q"), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "worker"}, "maxReplicas": 5,
    "metrics": [
        {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "AverageValue", "averageValue": "30"}}},
        {"type": "Object", "object": {"metric": {"name": "hits"}, "target": {"type": "Value", "value": "1k"}}}
    ]},
    "status": {"currentMetrics": [
        {"type": "External", "external": {"current": {"averageValue": "12"}}},
        {"type": "Object", "object": {"current": {"value": "800"}}}
    ]}});
    check(
        def("autoscaling", "v2", "horizontalpodautoscalers"),
        &h,
        &external,
        json!(["q", "Deployment/worker", "12/30 (avg), 800/1k", "<unset>", 5, 0, "3d"]),
    );

    let v1 = json!({"metadata": meta("web"), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 50},
        "status": {"currentReplicas": 1}});
    check(
        def("autoscaling", "v1", "horizontalpodautoscalers"),
        &h,
        &v1,
        json!(["web", "Deployment/web", "cpu: <unknown>/50%", "1", 4, 1, "3d"]),
    );
    let mut v1_measured = v1.clone();
    v1_measured["status"]["currentCPUUtilizationPercentage"] = json!(20);
    assert_eq!(row_cells(def("autoscaling", "v1", "horizontalpodautoscalers"), &v1_measured, now())[2], "cpu: 20%/50%");
}

#[test]
fn ingress_and_ingress_class() {
    let d = def("networking.k8s.io", "v1", "ingresses");
    let h = ["Name", "Class", "Hosts", "Address", "Ports", "Age"];
    let ing = json!({"metadata": meta("web"), "spec": {"ingressClassName": "nginx",
        "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"}, {"host": "c.example.com"}, {"host": "d.example.com"}],
        "tls": [{"hosts": ["a.example.com"]}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}, {"ip": "10.0.0.10"}]}}});
    check(
        d,
        &h,
        &ing,
        json!([
            "web",
            "nginx",
            "a.example.com,b.example.com,c.example.com + 2 more...",
            "10.0.0.10,10.0.0.9",
            "80, 443",
            "3d"
        ]),
    );
    let catch_all = json!({"metadata": meta("all"), "spec": {"defaultBackend": {"service": {"name": "web"}}}});
    check(d, &h, &catch_all, json!(["all", "<none>", "*", "", "80", "3d"]));

    let ic = json!({"metadata": meta("nginx"), "spec": {"controller": "k8s.io/ingress-nginx",
        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
    check(
        def("networking.k8s.io", "v1", "ingressclasses"),
        &["Name", "Controller", "Parameters", "Age"],
        &ic,
        json!(["nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/external-lb", "3d"]),
    );
}

#[test]
fn network_policy_and_endpoint_slice() {
    let np = json!({"metadata": meta("deny"), "spec": {"podSelector": {}}});
    check(
        def("networking.k8s.io", "v1", "networkpolicies"),
        &["Name", "Pod-Selector", "Age"],
        &np,
        json!(["deny", "<none>", "3d"]),
    );
    let np = json!({"metadata": meta("db"), "spec": {"podSelector": {"matchExpressions": [{"key": "role", "operator": "In", "values": ["db", "cache"]}]}}});
    check(
        def("networking.k8s.io", "v1", "networkpolicies"),
        &["Name", "Pod-Selector", "Age"],
        &np,
        json!(["db", "role in (cache,db)", "3d"]),
    );

    let d = def("discovery.k8s.io", "v1", "endpointslices");
    let h = ["Name", "AddressType", "Ports", "Endpoints", "Age"];
    let slice = json!({"metadata": meta("web-abc"), "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "metrics"}, {}, {"port": 9000}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
    check(
        d,
        &h,
        &slice,
        json!(["web-abc", "IPv4", "80,metrics,* + 1 more...", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "3d"]),
    );
    let empty = json!({"metadata": meta("e"), "addressType": "IPv6"});
    check(d, &h, &empty, json!(["e", "IPv6", "<unset>", "<unset>", "3d"]));
}

#[test]
fn storage_class() {
    let d = def("storage.k8s.io", "v1", "storageclasses");
    let h = ["Name", "Provisioner", "ReclaimPolicy", "VolumeBindingMode", "AllowVolumeExpansion", "Age"];
    let sc = json!({"metadata": {"name": "local-path", "creationTimestamp": ago(3 * DAY),
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path", "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": true});
    check(
        d,
        &h,
        &sc,
        json!(["local-path (default)", "rancher.io/local-path", "Retain", "WaitForFirstConsumer", true, "3d"]),
    );
    let plain =
        json!({"metadata": {"name": "slow", "creationTimestamp": ago(3 * DAY)}, "provisioner": "example.com/nfs"});
    check(d, &h, &plain, json!(["slow", "example.com/nfs", "Delete", "Immediate", false, "3d"]));
}

#[test]
fn pod_disruption_budget() {
    let d = def("policy", "v1", "poddisruptionbudgets");
    let h = ["Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"];
    let pdb = json!({"metadata": meta("web"), "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
    check(d, &h, &pdb, json!(["web", "2", "N/A", 1, "3d"]));
    let pct = json!({"metadata": meta("db"), "spec": {"maxUnavailable": "25%"}});
    check(d, &h, &pct, json!(["db", "N/A", "25%", 0, "3d"]));
}

#[test]
fn role_bindings() {
    let h = ["Name", "Role", "Age", "Users*", "Groups*", "ServiceAccounts*"];
    let rb = json!({"metadata": meta("edit"), "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
    "subjects": [
        {"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
        {"kind": "Group", "name": "devs"},
        {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"}
    ]});
    let want = json!(["edit", "ClusterRole/edit", "3d", "alice, bob", "devs", "tools/ci"]);
    check(def("rbac.authorization.k8s.io", "v1", "rolebindings"), &h, &rb, want.clone());
    check(def("rbac.authorization.k8s.io", "v1", "clusterrolebindings"), &h, &rb, want);
}

#[test]
fn lease() {
    let d = def("coordination.k8s.io", "v1", "leases");
    let l = json!({"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "node-1_abc"}});
    check(d, &["Name", "Holder", "Age"], &l, json!(["kube-scheduler", "node-1_abc", "3d"]));
    check(d, &["Name", "Holder", "Age"], &json!({"metadata": meta("free"), "spec": {}}), json!(["free", "", "3d"]));
}

#[test]
fn every_served_kind_has_a_name_column_and_matching_cells() {
    let objects = [json!({}), json!({"metadata": {"name": "x", "creationTimestamp": ago(5)}}), json!(null), json!("x")];
    for d in RESOURCES {
        let cols = column_definitions(d);
        assert!(cols.iter().filter(|c| c["format"] == "name").count() == 1, "{} has exactly one name column", d.kind);
        for c in &cols {
            for field in ["name", "type", "format", "description", "priority"] {
                assert!(c.get(field).is_some(), "{} column lacks {field}", d.kind);
            }
            assert!(!c["description"].as_str().unwrap_or_default().is_empty());
        }
        for obj in &objects {
            assert_eq!(row_cells(d, obj, now()).len(), cols.len(), "{} cell count", d.kind);
        }
    }
}
