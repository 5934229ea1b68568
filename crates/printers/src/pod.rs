//! Pods: READY, the STATUS reason logic and RESTARTS.

use std::collections::HashSet;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::duration::{age, age_since, parse_time};
use crate::fields::{arr_at, int_at, is_deleting, name, opt_bool, str_at};
use crate::table::{AGE, NAME, Printer, cells, col, wide};

pub(crate) static POD: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "Ready containers out of all (long-running) containers."),
        col("Status", "string", "Aggregate status of the pod and its containers."),
        col("Restarts", "string", "Container restarts, and how long ago the last one was."),
        AGE,
        wide("IP", "string", "Primary IP address of the pod."),
        wide("Node", "string", "Node the pod is bound to."),
        wide("Nominated Node", "string", "Node the scheduler nominated for preemption."),
        wide("Readiness Gates", "string", "Readiness gates whose condition is True, out of all."),
    ],
    cells: pod_cells,
};

/// Reason set by the node lifecycle controller on pods of an unreachable node.
const NODE_UNREACHABLE_REASON: &str = "NodeLost";

/// Keeps the later of two optional times.
fn keep_latest(slot: &mut Option<Timestamp>, candidate: Option<Timestamp>) {
    if let Some(c) = candidate
        && slot.is_none_or(|s| s < c)
    {
        *slot = Some(c);
    }
}

/// When the previous instance of a container finished, if it did.
fn last_finished(status: &Value) -> Option<Timestamp> {
    parse_time(status.pointer("/lastState/terminated/finishedAt").and_then(Value::as_str))
}

/// A present state object (`running`, `waiting`, `terminated`).
fn state<'a>(status: &'a Value, which: &str) -> Option<&'a Value> {
    status.get("state").and_then(|s| s.get(which)).filter(|v| v.is_object())
}

fn condition_is_true(pod: &Value, ty: &str) -> bool {
    // Upstream looks at the first condition of the type only.
    arr_at(pod, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == ty)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

fn terminated_reason(t: &Value, prefix: &str) -> String {
    let reason = str_at(t, "/reason");
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = int_at(t, "/signal");
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int_at(t, "/exitCode"))
    }
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = arr_at(pod, "/spec/initContainers");
    // Init containers with restartPolicy Always are sidecars: they keep running and count
    // towards READY like regular containers.
    let sidecars: HashSet<&str> =
        init_specs.iter().filter(|c| str_at(c, "/restartPolicy") == "Always").map(|c| str_at(c, "/name")).collect();
    let total = arr_at(pod, "/spec/containers").len() + sidecars.len();

    let phase = str_at(pod, "/status/phase");
    let mut reason = match str_at(pod, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    if arr_at(pod, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut last_restart = None;
    let mut sidecar_restarts = 0i64;
    let mut last_sidecar_restart = None;
    let mut initializing = false;
    for (i, cs) in arr_at(pod, "/status/initContainerStatuses").iter().enumerate() {
        let count = int_at(cs, "/restartCount");
        restarts += count;
        keep_latest(&mut last_restart, last_finished(cs));
        let is_sidecar = sidecars.contains(str_at(cs, "/name"));
        if is_sidecar {
            sidecar_restarts += count;
            keep_latest(&mut last_sidecar_restart, last_finished(cs));
        }
        let terminated = state(cs, "terminated");
        if terminated.is_some_and(|t| int_at(t, "/exitCode") == 0) {
            continue;
        }
        if is_sidecar && opt_bool(cs, "/started") == Some(true) {
            if opt_bool(cs, "/ready") == Some(true) {
                ready += 1;
            }
            continue;
        }
        initializing = true;
        let waiting_reason = state(cs, "waiting").map_or("", |w| str_at(w, "/reason"));
        reason = if let Some(t) = terminated {
            terminated_reason(t, "Init:")
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        break;
    }

    if !initializing || condition_is_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        // Walk backwards so the first container's state wins, as upstream does.
        for cs in arr_at(pod, "/status/containerStatuses").iter().rev() {
            restarts += int_at(cs, "/restartCount");
            keep_latest(&mut last_restart, last_finished(cs));
            let waiting_reason = state(cs, "waiting").map_or("", |w| str_at(w, "/reason"));
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = state(cs, "terminated") {
                reason = terminated_reason(t, "");
            } else if opt_bool(cs, "/ready") == Some(true) && state(cs, "running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A container that exited 0 while another still runs does not make the pod done.
        if reason == "Completed" && has_running {
            reason = if condition_is_true(pod, "Ready") { "Running" } else { "NotReady" }.to_string();
        }
    }

    if is_deleting(pod) {
        if str_at(pod, "/status/reason") == NODE_UNREACHABLE_REASON {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }

    let restarts_cell = match last_restart {
        Some(ts) if restarts != 0 => format!("{restarts} ({} ago)", age_since(ts, now)),
        _ => restarts.to_string(),
    };

    let ip = arr_at(pod, "/status/podIPs")
        .first()
        .map(|p| str_at(p, "/ip"))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| str_at(pod, "/status/podIP"));
    cells![
        name(pod),
        format!("{ready}/{total}"),
        reason,
        restarts_cell,
        age(pod, now),
        or_none(ip),
        or_none(str_at(pod, "/spec/nodeName")),
        or_none(str_at(pod, "/status/nominatedNodeName")),
        readiness_gates(pod),
    ]
}

fn or_none(s: &str) -> String {
    if s.is_empty() { "<none>".to_string() } else { s.to_string() }
}

fn readiness_gates(pod: &Value) -> String {
    let gates = arr_at(pod, "/spec/readinessGates");
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let passing = gates.iter().filter(|g| condition_is_true(pod, str_at(g, "/conditionType"))).count();
    format!("{passing}/{}", gates.len())
}

/// Row conditions upstream attaches to pods that have finished.
pub(crate) fn pod_row_conditions(pod: &Value) -> Vec<Value> {
    let (reason, message) = match str_at(pod, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return Vec::new(),
    };
    vec![json!({"type": "Completed", "status": "True", "reason": reason, "message": message})]
}
