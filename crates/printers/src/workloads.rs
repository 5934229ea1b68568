//! Workload controllers: apps/v1, batch/v1 and the HorizontalPodAutoscaler.

use jiff::Timestamp;
use serde_json::Value;

use crate::duration::{age, age_since, human_duration, parse_time, since};
use crate::fields::{
    arr_at, container_cells, format_label_selector, format_labels, int_at, is_deleting, name, opt_bool, opt_int,
    opt_str, quantity_or, selector_string, str_at,
};
use crate::table::{AGE, CONTAINERS, IMAGES, NAME, Printer, SELECTOR, cells, col};

/// `spec.replicas`, which defaulting sets to 1 when omitted.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int(obj, "/spec/replicas").unwrap_or(1)
}

fn template_containers(obj: &Value) -> (String, String) {
    container_cells(arr_at(obj, "/spec/template/spec/containers"))
}

pub(crate) static DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "Ready replicas out of desired."),
        col("Up-to-date", "string", "Replicas running the latest pod template."),
        col("Available", "string", "Replicas available to serve."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: deployment_cells,
};

fn deployment_cells(d: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = template_containers(d);
    // Unlike the other workloads, an empty selector prints as an empty cell here.
    let selector = selector_string(d.pointer("/spec/selector")).unwrap_or_else(|| "<invalid>".to_string());
    cells![
        name(d),
        format!("{}/{}", int_at(d, "/status/readyReplicas"), desired_replicas(d)),
        int_at(d, "/status/updatedReplicas"),
        int_at(d, "/status/availableReplicas"),
        age(d, now),
        names,
        images,
        selector,
    ]
}

pub(crate) static REPLICA_SET: Printer = Printer {
    columns: &[
        NAME,
        col("Desired", "integer", "Replicas wanted."),
        col("Current", "integer", "Replicas created."),
        col("Ready", "integer", "Replicas ready."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: replica_set_cells,
};

fn replica_set_cells(rs: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = template_containers(rs);
    cells![
        name(rs),
        desired_replicas(rs),
        int_at(rs, "/status/replicas"),
        int_at(rs, "/status/readyReplicas"),
        age(rs, now),
        names,
        images,
        format_label_selector(rs.pointer("/spec/selector")),
    ]
}

pub(crate) static STATEFUL_SET: Printer = Printer {
    columns: &[NAME, col("Ready", "string", "Ready replicas out of desired."), AGE, CONTAINERS, IMAGES],
    cells: |sts, now| {
        let (names, images) = template_containers(sts);
        cells![
            name(sts),
            format!("{}/{}", int_at(sts, "/status/readyReplicas"), desired_replicas(sts)),
            age(sts, now),
            names,
            images,
        ]
    },
};

pub(crate) static DAEMON_SET: Printer = Printer {
    columns: &[
        NAME,
        col("Desired", "integer", "Nodes that should run the daemon pod."),
        col("Current", "integer", "Nodes running at least one daemon pod."),
        col("Ready", "integer", "Nodes whose daemon pod is ready."),
        col("Up-to-date", "integer", "Nodes running the latest pod template."),
        col("Available", "integer", "Nodes whose daemon pod is available."),
        col("Node Selector", "string", "Node selector of the pod template."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: daemon_set_cells,
};

fn daemon_set_cells(ds: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = template_containers(ds);
    cells![
        name(ds),
        int_at(ds, "/status/desiredNumberScheduled"),
        int_at(ds, "/status/currentNumberScheduled"),
        int_at(ds, "/status/numberReady"),
        int_at(ds, "/status/updatedNumberScheduled"),
        int_at(ds, "/status/numberAvailable"),
        format_labels(ds, "/spec/template/spec/nodeSelector"),
        age(ds, now),
        names,
        images,
        format_label_selector(ds.pointer("/spec/selector")),
    ]
}

pub(crate) static CONTROLLER_REVISION: Printer = Printer {
    columns: &[
        NAME,
        col("Controller", "string", "Object that owns the revision, as kind.group/name."),
        col("Revision", "string", "Revision number."),
        AGE,
    ],
    cells: |cr, now| cells![name(cr), controller_of(cr), int_at(cr, "/revision"), age(cr, now)],
};

/// The controlling owner as `kind.group/name` (`statefulset.apps/web`), or `<none>`.
fn controller_of(obj: &Value) -> String {
    let Some(owner) =
        arr_at(obj, "/metadata/ownerReferences").iter().find(|o| opt_bool(o, "/controller") == Some(true))
    else {
        return "<none>".to_string();
    };
    let api_version = str_at(owner, "/apiVersion");
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let kind = str_at(owner, "/kind");
    let owner_name = str_at(owner, "/name");
    let group_kind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
    if group_kind.is_empty() { owner_name.to_string() } else { format!("{}/{owner_name}", group_kind.to_lowercase()) }
}

pub(crate) static JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "Status of the job (Running, Complete, Failed, Suspended, …)."),
        col("Completions", "string", "Succeeded pods out of the completions wanted."),
        col("Duration", "string", "How long the job ran (or has been running)."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: job_cells,
};

/// Whether the first condition of this type has status True.
fn has_condition(obj: &Value, ty: &str) -> bool {
    arr_at(obj, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == ty)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

fn job_cells(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(job, "/status/succeeded");
    let completions = match opt_int(job, "/spec/completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_int(job, "/spec/parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = parse_time(opt_str(job, "/status/startTime"));
    let end = parse_time(opt_str(job, "/status/completionTime"));
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => age_since(s, now),
        (Some(s), Some(e)) => human_duration(e.duration_since(s)),
    };
    let status = if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if is_deleting(job) {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = template_containers(job);
    cells![
        name(job),
        status,
        completions,
        duration,
        age(job, now),
        names,
        images,
        format_label_selector(job.pointer("/spec/selector")),
    ]
}

pub(crate) static CRON_JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Schedule", "string", "Cron schedule."),
        col("Timezone", "string", "Time zone the schedule is read in."),
        col("Suspend", "boolean", "Whether new runs are suspended."),
        col("Active", "integer", "Jobs currently running."),
        col("Last Schedule", "string", "Time since a job was last scheduled."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: cron_job_cells,
};

fn cron_job_cells(cj: &Value, now: Timestamp) -> Vec<Value> {
    // Upstream prints the boolean pointer as text, not as a JSON boolean.
    let suspend = match opt_bool(cj, "/spec/suspend") {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let last = match opt_str(cj, "/status/lastScheduleTime") {
        Some(t) => since(Some(t), now),
        None => "<none>".to_string(),
    };
    // A job template has the same spec.template shape as a Job.
    let job_template = cj.pointer("/spec/jobTemplate").unwrap_or(&Value::Null);
    let (names, images) = template_containers(job_template);
    cells![
        name(cj),
        str_at(cj, "/spec/schedule"),
        opt_str(cj, "/spec/timeZone").unwrap_or("<none>"),
        suspend,
        arr_at(cj, "/status/active").len(),
        last,
        age(cj, now),
        names,
        images,
        format_label_selector(job_template.pointer("/spec/selector")),
    ]
}

const HPA_COLUMNS: &[crate::table::Column] = &[
    NAME,
    col("Reference", "string", "Workload being scaled, as Kind/name."),
    col("Targets", "string", "Current/target value of each metric."),
    col("MinPods", "string", "Lower replica bound."),
    col("MaxPods", "string", "Upper replica bound."),
    col("Replicas", "string", "Current replicas."),
    AGE,
];

pub(crate) static HPA_V2: Printer = Printer { columns: HPA_COLUMNS, cells: hpa_v2_cells };
pub(crate) static HPA_V1: Printer = Printer { columns: HPA_COLUMNS, cells: hpa_v1_cells };

fn hpa_v2_cells(hpa: &Value, now: Timestamp) -> Vec<Value> {
    let targets = format_hpa_metrics(arr_at(hpa, "/spec/metrics"), arr_at(hpa, "/status/currentMetrics"));
    hpa_cells(hpa, targets, now)
}

/// autoscaling/v1 carries only CPU utilisation; it prints as the equivalent v2 metric.
fn hpa_v1_cells(hpa: &Value, now: Timestamp) -> Vec<Value> {
    let targets = match opt_int(hpa, "/spec/targetCPUUtilizationPercentage") {
        None => "<none>".to_string(),
        Some(target) => {
            let current = opt_int(hpa, "/status/currentCPUUtilizationPercentage")
                .map_or_else(|| "<unknown>".to_string(), |c| format!("{c}%"));
            format!("cpu: {current}/{target}%")
        }
    };
    hpa_cells(hpa, targets, now)
}

fn hpa_cells(hpa: &Value, targets: String, now: Timestamp) -> Vec<Value> {
    let reference =
        format!("{}/{}", str_at(hpa, "/spec/scaleTargetRef/kind"), str_at(hpa, "/spec/scaleTargetRef/name"));
    let min = opt_int(hpa, "/spec/minReplicas").map_or_else(|| "<unset>".to_string(), |m| m.to_string());
    cells![
        name(hpa),
        reference,
        targets,
        min,
        int_at(hpa, "/spec/maxReplicas"),
        int_at(hpa, "/status/currentReplicas"),
        age(hpa, now),
    ]
}

/// A quantity that upstream dereferences even when absent, printing `<nil>`.
fn qty(v: &Value, ptr: &str) -> String {
    quantity_or(v.pointer(ptr), "<nil>")
}

fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    const MAX: usize = 2;
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let mut list = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        // Status entries are matched to specs by position.
        let status = statuses.get(i);
        let current_of = |source: &str| status.and_then(|s| s.get(source)).filter(|v| !v.is_null());
        let unknown = || "<unknown>".to_string();
        let entry = match str_at(spec, "/type") {
            ty @ ("External" | "Object") => {
                let source = if ty == "External" { "external" } else { "object" };
                let target = spec.get(source).unwrap_or(&Value::Null);
                if target.pointer("/target/averageValue").is_some() {
                    let current = current_of(source)
                        .filter(|c| c.pointer("/current/averageValue").is_some())
                        .map_or_else(unknown, |c| qty(c, "/current/averageValue"));
                    format!("{current}/{} (avg)", qty(target, "/target/averageValue"))
                } else {
                    let current = current_of(source).map_or_else(unknown, |c| qty(c, "/current/value"));
                    format!("{current}/{}", qty(target, "/target/value"))
                }
            }
            "Pods" => {
                let current = current_of("pods").map_or_else(unknown, |c| qty(c, "/current/averageValue"));
                format!("{current}/{}", qty(spec, "/pods/target/averageValue"))
            }
            ty @ ("Resource" | "ContainerResource") => {
                let source = if ty == "Resource" { "resource" } else { "containerResource" };
                let target = spec.get(source).unwrap_or(&Value::Null);
                let resource = str_at(target, "/name");
                if target.pointer("/target/averageValue").is_some() {
                    let current = current_of(source).map_or_else(unknown, |c| qty(c, "/current/averageValue"));
                    format!("{resource}: {current}/{}", qty(target, "/target/averageValue"))
                } else {
                    let current = current_of(source)
                        .and_then(|c| opt_int(c, "/current/averageUtilization"))
                        .map_or_else(unknown, |u| format!("{u}%"));
                    let goal = opt_int(target, "/target/averageUtilization")
                        .map_or_else(|| "<auto>".to_string(), |u| format!("{u}%"));
                    format!("{resource}: {current}/{goal}")
                }
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(entry);
    }
    let count = list.len();
    let shown = list[..count.min(MAX)].join(", ");
    if count > MAX { format!("{shown} + {} more...", count - MAX) } else { shown }
}
