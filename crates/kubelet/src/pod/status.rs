//! A pod's status from what the runtime shows (pure), as upstream's kubelet computes it:
//! the phase (`getPhase`), the conditions, and one status per container with its state,
//! last state, restart count and readiness.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::plan::{CState, ContainerObs, Observed, Waiting};

/// How one container counts towards the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Running,
    /// Not started yet (no earlier attempt).
    Waiting,
    /// Waiting to run again after an earlier attempt (back-off, pending restart).
    Restarting {
        last_exit: i32,
    },
    Terminated {
        exit: i32,
    },
    Unknown,
}

fn kind(latest: Option<&ContainerObs>, waiting: &BTreeMap<String, Waiting>, name: &str) -> Kind {
    match latest {
        None => Kind::Waiting,
        Some(c) if waiting.contains_key(name) && c.state == CState::Exited => {
            Kind::Restarting { last_exit: c.exit_code }
        }
        Some(_) if waiting.contains_key(name) => Kind::Waiting,
        Some(c) => match c.state {
            CState::Running => Kind::Running,
            CState::Created => Kind::Waiting,
            CState::Exited => Kind::Terminated { exit: c.exit_code },
            CState::Unknown => Kind::Unknown,
        },
    }
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
}

/// Upstream's `getPhase`. A phase already terminal in the API stays so.
pub fn phase(pod: &Pod, observed: &Observed, waiting: &BTreeMap<String, Waiting>) -> &'static str {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => return "Succeeded",
        Some("Failed") => return "Failed",
        _ => {}
    }
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = restart_policy(pod);
    let (mut pending_init, mut failed_init) = (0, 0);
    for c in spec.init_containers.iter().flatten() {
        match kind(observed.latest(&c.name), waiting, &c.name) {
            Kind::Terminated { exit: 0 } => {}
            Kind::Terminated { .. } => failed_init += 1,
            Kind::Restarting { last_exit } if last_exit != 0 => failed_init += 1,
            _ => pending_init += 1,
        }
    }
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    let (mut running, mut waiting_n, mut stopped, mut succeeded, mut unknown) = (0, 0, 0, 0, 0);
    for c in &spec.containers {
        match kind(observed.latest(&c.name), waiting, &c.name) {
            Kind::Running => running += 1,
            Kind::Waiting => waiting_n += 1,
            Kind::Restarting { .. } => stopped += 1,
            Kind::Terminated { exit } => {
                stopped += 1;
                if exit == 0 {
                    succeeded += 1;
                }
            }
            Kind::Unknown => unknown += 1,
        }
    }
    if pending_init > 0 || failed_init > 0 || waiting_n > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn ns_time(ns: i64) -> Option<Time> {
    (ns > 0).then(|| Timestamp::from_nanosecond(ns as i128).ok().map(Time)).flatten()
}

fn terminated(c: &ContainerObs) -> ContainerStateTerminated {
    let reason = if !c.reason.is_empty() {
        c.reason.clone()
    } else if c.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    ContainerStateTerminated {
        exit_code: c.exit_code,
        reason: Some(reason),
        message: (!c.message.is_empty()).then(|| c.message.clone()),
        started_at: ns_time(c.started_at),
        finished_at: ns_time(c.finished_at),
        container_id: Some(format!("containerd://{}", c.id)),
        signal: None,
    }
}

/// What the status builder needs besides the runtime's view.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Containers waiting with a reason of the kubelet's (back-off, config errors, pulls).
    pub waiting: BTreeMap<String, Waiting>,
    /// Readiness probe results by container; a container with a readiness probe and no
    /// result yet is not ready.
    pub readiness: BTreeMap<String, bool>,
    /// Startup probe results by container: `started` stays false until it succeeds
    /// (containers without a startup probe have started once running).
    pub started: BTreeMap<String, bool>,
    pub host_ip: String,
}

fn container_status(
    c: &Container,
    init: bool,
    init_done: bool,
    observed: &Observed,
    inputs: &Inputs,
) -> ContainerStatus {
    let latest = observed.latest(&c.name);
    let state = if let Some(w) = inputs.waiting.get(&c.name) {
        ContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some(w.reason.clone()), message: Some(w.message.clone()) }),
            ..Default::default()
        }
    } else {
        match latest {
            Some(o) if o.state == CState::Running => ContainerState {
                running: Some(ContainerStateRunning { started_at: ns_time(o.started_at) }),
                ..Default::default()
            },
            Some(o) if o.state == CState::Exited => {
                ContainerState { terminated: Some(terminated(o)), ..Default::default() }
            }
            _ => {
                let reason = if init || !init_done { "PodInitializing" } else { "ContainerCreating" };
                ContainerState {
                    waiting: Some(ContainerStateWaiting { reason: Some(reason.into()), message: None }),
                    ..Default::default()
                }
            }
        }
    };
    let running = state.running.is_some();
    let ready = running
        && (init
            || if c.readiness_probe.is_some() {
                inputs.readiness.get(&c.name).copied().unwrap_or(false)
            } else {
                true
            });
    // The previous attempt, or the latest one when it waits to run again.
    let last = if inputs.waiting.contains_key(&c.name) && latest.is_some_and(|o| o.state == CState::Exited) {
        latest
    } else {
        observed.previous(&c.name)
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: latest.map(|o| o.image_ref.clone()).unwrap_or_default(),
        container_id: latest.map(|o| format!("containerd://{}", o.id)),
        ready: ready && !init,
        started: Some(running && inputs.started.get(&c.name).copied().unwrap_or(true)),
        restart_count: latest.map_or(0, |o| o.attempt as i32),
        state: Some(state),
        last_state: Some(ContainerState { terminated: last.map(terminated), ..Default::default() }),
        ..Default::default()
    }
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
    old: Option<&PodStatus>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind && c.status == status))
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: kind.into(),
        status: status.into(),
        reason,
        message,
        last_transition_time: Some(since),
        last_probe_time: None,
        observed_generation: None,
    }
}

/// The pod's whole status.
pub fn pod_status(pod: &Pod, observed: &Observed, inputs: &Inputs, now: Timestamp) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.as_ref();
    let phase = phase(pod, observed, &inputs.waiting);
    let sandbox = observed.sandbox();
    let init_statuses: Vec<ContainerStatus> =
        spec.init_containers.iter().flatten().map(|c| container_status(c, true, false, observed, inputs)).collect();
    let not_initialized: Vec<&str> = init_statuses
        .iter()
        .filter(|s| s.state.as_ref().and_then(|s| s.terminated.as_ref()).is_none_or(|t| t.exit_code != 0))
        .map(|s| s.name.as_str())
        .collect();
    let init_done = not_initialized.is_empty();
    let statuses: Vec<ContainerStatus> =
        spec.containers.iter().map(|c| container_status(c, false, init_done, observed, inputs)).collect();
    let unready: Vec<&str> = statuses.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let (ready_reason, ready_message) = if terminal && phase == "Succeeded" {
        (Some("PodCompleted".to_string()), None)
    } else if unready.is_empty() {
        (None, None)
    } else {
        (
            Some("ContainersNotReady".to_string()),
            Some(format!("containers with unready status: [{}]", unready.join(" "))),
        )
    };
    let containers_ready = unready.is_empty() && !terminal;
    let mut conditions = vec![
        condition("PodReadyToStartContainers", sandbox.is_some_and(|s| s.ready), None, None, old, now),
        if init_done || (terminal && phase == "Succeeded") {
            condition(
                "Initialized",
                true,
                (terminal && phase == "Succeeded").then(|| "PodCompleted".into()),
                None,
                old,
                now,
            )
        } else {
            condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized".into()),
                Some(format!("containers with incomplete status: [{}]", not_initialized.join(" "))),
                old,
                now,
            )
        },
        condition("Ready", containers_ready, ready_reason.clone(), ready_message.clone(), old, now),
        condition("ContainersReady", containers_ready, ready_reason, ready_message, old, now),
    ];
    if let Some(scheduled) =
        old.and_then(|s| s.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
    {
        conditions.push(scheduled.clone());
    }
    let host_network = spec.host_network.unwrap_or(false);
    let pod_ip = if host_network {
        Some(inputs.host_ip.clone())
    } else {
        sandbox.and_then(|s| s.ip.clone()).filter(|ip| !ip.is_empty()).or_else(|| old.and_then(|s| s.pod_ip.clone()))
    };
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(inputs.host_ip.clone()),
        host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP { ip: inputs.host_ip.clone() }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: old.and_then(|s| s.start_time.clone()).or(Some(Time(now))),
        qos_class: old.and_then(|s| s.qos_class.clone()),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan::SandboxObs;
    use super::*;
    use serde_json::json;

    fn pod(policy: &str, init: &[&str], containers: serde_json::Value) -> Pod {
        let list = |names: &[&str]| names.iter().map(|n| json!({"name": n, "image": "busybox"})).collect::<Vec<_>>();
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"restartPolicy": policy, "initContainers": list(init), "containers": containers},
            "status": {"phase": "Pending", "qosClass": "BestEffort",
                       "conditions": [{"type": "PodScheduled", "status": "True"}]}
        }))
        .unwrap()
    }

    fn ctr(name: &str, attempt: u32, state: CState, exit: i32) -> ContainerObs {
        ContainerObs {
            id: format!("{name}{attempt}"),
            name: name.into(),
            sandbox_id: "s".into(),
            attempt,
            state,
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            created_at: attempt as i64,
            started_at: 1_700_000_000_000_000_000,
            finished_at: if state == CState::Exited { 1_700_000_001_000_000_000 } else { 0 },
            image_ref: "sha256:abc".into(),
        }
    }

    fn obs(containers: Vec<ContainerObs>) -> Observed {
        Observed {
            sandboxes: vec![SandboxObs {
                id: "s".into(),
                ready: true,
                attempt: 0,
                created_at: 0,
                ip: Some("10.244.0.9".into()),
            }],
            containers,
        }
    }

    fn waiting(name: &str) -> BTreeMap<String, Waiting> {
        BTreeMap::from([(name.to_string(), Waiting { reason: "CrashLoopBackOff".into(), message: String::new() })])
    }

    #[test]
    fn phases_as_upstream() {
        let two = json!([{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]);
        let none = BTreeMap::new();
        // (what, restart policy, init containers, runtime, kubelet waiting reasons, phase)
        type Case<'a> = (&'a str, &'a str, Vec<&'a str>, Vec<ContainerObs>, BTreeMap<String, Waiting>, &'a str);
        let cases: Vec<Case> = vec![
            ("nothing yet", "Always", vec![], vec![], none.clone(), "Pending"),
            ("one running, one not", "Always", vec![], vec![ctr("a", 0, CState::Running, 0)], none.clone(), "Pending"),
            (
                "both running",
                "Always",
                vec![],
                vec![ctr("a", 0, CState::Running, 0), ctr("b", 0, CState::Running, 0)],
                none.clone(),
                "Running",
            ),
            ("init running", "Always", vec!["i"], vec![ctr("i", 0, CState::Running, 0)], none.clone(), "Pending"),
            ("init failed, Never", "Never", vec!["i"], vec![ctr("i", 0, CState::Exited, 1)], none.clone(), "Failed"),
            (
                "all succeeded, Never",
                "Never",
                vec![],
                vec![ctr("a", 0, CState::Exited, 0), ctr("b", 0, CState::Exited, 0)],
                none.clone(),
                "Succeeded",
            ),
            (
                "one failed, Never",
                "Never",
                vec![],
                vec![ctr("a", 0, CState::Exited, 0), ctr("b", 0, CState::Exited, 1)],
                none.clone(),
                "Failed",
            ),
            (
                "all succeeded, OnFailure",
                "OnFailure",
                vec![],
                vec![ctr("a", 0, CState::Exited, 0), ctr("b", 0, CState::Exited, 0)],
                none.clone(),
                "Succeeded",
            ),
            (
                "all exited, Always",
                "Always",
                vec![],
                vec![ctr("a", 0, CState::Exited, 0), ctr("b", 0, CState::Exited, 0)],
                none.clone(),
                "Running",
            ),
            (
                "crash loop, one running",
                "Always",
                vec![],
                vec![ctr("a", 2, CState::Exited, 1), ctr("b", 0, CState::Running, 0)],
                waiting("a"),
                "Running",
            ),
        ];
        for (what, policy, init, containers, w, want) in cases {
            let p = pod(policy, &init, two.clone());
            assert_eq!(phase(&p, &obs(containers), &w), want, "{what}");
        }
    }

    #[test]
    fn running_pod_status() {
        let p = pod("Always", &["i"], json!([{"name": "a", "image": "nginx:1.16"}]));
        let o =
            obs(vec![ctr("i", 0, CState::Exited, 0), ctr("a", 0, CState::Exited, 1), ctr("a", 1, CState::Running, 0)]);
        let inputs = Inputs { host_ip: "192.0.2.1".into(), ..Default::default() };
        let s = pod_status(&p, &o, &inputs, Timestamp::now());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.0.9"));
        assert_eq!(s.host_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        let cond = |k: &str| s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == k).unwrap().status.clone();
        assert_eq!(cond("Initialized"), "True");
        assert_eq!(cond("Ready"), "True");
        assert_eq!(cond("ContainersReady"), "True");
        assert_eq!(cond("PodScheduled"), "True");
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!((a.ready, a.restart_count), (true, 1));
        assert_eq!(a.container_id.as_deref(), Some("containerd://a1"));
        assert_eq!(a.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 1);
        assert_eq!(a.last_state.as_ref().unwrap().terminated.as_ref().unwrap().reason.as_deref(), Some("Error"));
        let i = &s.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(i.state.as_ref().unwrap().terminated.as_ref().unwrap().reason.as_deref(), Some("Completed"));
    }

    #[test]
    fn waiting_reasons_and_readiness() {
        let p = pod(
            "Always",
            &["i"],
            json!([{"name": "a", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}}}]),
        );
        let inputs = Inputs { host_ip: "192.0.2.1".into(), ..Default::default() };
        let s = pod_status(&p, &obs(vec![ctr("i", 0, CState::Running, 0)]), &inputs, Timestamp::now());
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(a.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(), Some("PodInitializing"));
        let init = s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Initialized").unwrap();
        assert_eq!(init.message.as_deref(), Some("containers with incomplete status: [i]"));
        // Running with a readiness probe that has not passed: not ready.
        let o = obs(vec![ctr("i", 0, CState::Exited, 0), ctr("a", 0, CState::Running, 0)]);
        let s = pod_status(&p, &o, &inputs, Timestamp::now());
        assert!(!s.container_statuses.as_ref().unwrap()[0].ready);
        let ready = s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.message.as_deref(), Some("containers with unready status: [a]"));
        let mut inputs = inputs;
        inputs.readiness.insert("a".into(), true);
        let s = pod_status(&p, &o, &inputs, Timestamp::now());
        assert!(s.container_statuses.as_ref().unwrap()[0].ready);
    }
}
