//! What to do next for one pod (pure): from its spec and what the runtime shows, the
//! next runtime actions, as upstream's `computePodActions`. Sandbox first, then init
//! containers one at a time in order, then every app container; restarts follow the
//! restart policy with the crash back-off (10 s doubling to 5 min); a deleted or
//! finished pod is stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// A sandbox as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxObs {
    pub id: String,
    pub ready: bool,
    pub attempt: u32,
    pub created_at: i64,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// A container as the runtime reports it (times in nanoseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerObs {
    pub id: String,
    pub name: String,
    pub sandbox_id: String,
    pub attempt: u32,
    pub state: CState,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub image_ref: String,
}

/// Everything the runtime has of one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub sandboxes: Vec<SandboxObs>,
    pub containers: Vec<ContainerObs>,
}

impl Observed {
    /// The newest sandbox.
    pub fn sandbox(&self) -> Option<&SandboxObs> {
        self.sandboxes.iter().max_by_key(|s| (s.attempt, s.created_at))
    }

    /// The newest attempt of container `name`, in any sandbox.
    pub fn latest(&self, name: &str) -> Option<&ContainerObs> {
        self.containers.iter().filter(|c| c.name == name).max_by_key(|c| (c.attempt, c.created_at))
    }

    /// The newest attempt of `name` in sandbox `sandbox_id`.
    pub fn latest_in(&self, name: &str, sandbox_id: &str) -> Option<&ContainerObs> {
        self.containers
            .iter()
            .filter(|c| c.name == name && c.sandbox_id == sandbox_id)
            .max_by_key(|c| (c.attempt, c.created_at))
    }

    /// The attempt before the newest one of `name` (its `lastState`).
    pub fn previous(&self, name: &str) -> Option<&ContainerObs> {
        let latest = self.latest(name)?;
        self.containers
            .iter()
            .filter(|c| c.name == name && c.id != latest.id && c.state == CState::Exited)
            .max_by_key(|c| (c.attempt, c.created_at))
    }
}

/// The crash back-off of one container: upstream's `flowcontrol.Backoff` for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackOff {
    pub delay: Duration,
    /// When the delay was last raised (ns since the epoch).
    pub updated_at: i64,
}

pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl BackOff {
    /// The entry after one more restart at `now`: 10 s first, then doubling to 5 min;
    /// an entry untouched for twice the maximum starts over.
    pub fn next(current: Option<BackOff>, now: i64) -> BackOff {
        let expired = |b: &BackOff| now - b.updated_at > 2 * BACKOFF_MAX.as_nanos() as i64;
        let delay = match current {
            Some(b) if !expired(&b) => (b.delay * 2).min(BACKOFF_MAX),
            _ => BACKOFF_INITIAL,
        };
        BackOff { delay, updated_at: now }
    }
}

/// Why a container waits instead of running, shown in its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreateSandbox {
        attempt: u32,
    },
    StartContainer {
        name: String,
        init: bool,
        attempt: u32,
    },
    /// Stops a running container within its grace period.
    KillContainer {
        id: String,
        name: String,
        grace_seconds: i64,
    },
    StopSandbox {
        id: String,
    },
    RemoveContainer {
        id: String,
    },
    RemoveSandbox {
        id: String,
    },
    /// Everything is stopped and removed: delete the pod object for good.
    FinalizeDeletion,
    /// Kills a running container whose liveness or startup probe failed; `message` is
    /// the `Killing` event's, as upstream words it.
    KillUnhealthy {
        id: String,
        name: String,
        grace_seconds: i64,
        message: String,
    },
}

/// The next actions, and which containers wait in back-off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub waiting: BTreeMap<String, Waiting>,
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
}

/// Whether the pod has reached a phase it never leaves (Succeeded or Failed).
pub fn is_terminal(pod: &Pod, observed: &Observed) -> bool {
    matches!(super::status::phase(pod, observed, &BTreeMap::new()), "Succeeded" | "Failed")
}

fn grace_seconds(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
        .max(0)
}

/// Stops everything of the pod; once nothing runs, removes it all when `remove`.
fn stop_all(pod: &Pod, observed: &Observed, remove: bool, plan: &mut Plan) {
    let grace = grace_seconds(pod);
    let mut busy = false;
    for c in &observed.containers {
        if matches!(c.state, CState::Running | CState::Unknown) {
            plan.actions.push(Action::KillContainer { id: c.id.clone(), name: c.name.clone(), grace_seconds: grace });
            busy = true;
        }
    }
    if busy {
        return;
    }
    for s in observed.sandboxes.iter().filter(|s| s.ready) {
        plan.actions.push(Action::StopSandbox { id: s.id.clone() });
        busy = true;
    }
    if busy || !remove {
        return;
    }
    for c in &observed.containers {
        plan.actions.push(Action::RemoveContainer { id: c.id.clone() });
    }
    for s in &observed.sandboxes {
        plan.actions.push(Action::RemoveSandbox { id: s.id.clone() });
    }
    if observed.containers.is_empty() && observed.sandboxes.is_empty() {
        plan.actions.push(Action::FinalizeDeletion);
    }
}

/// Restart `name` now, or say it waits in CrashLoopBackOff.
fn restart_or_wait(
    name: &str,
    init: bool,
    last: &ContainerObs,
    backoff: &BTreeMap<String, BackOff>,
    now: i64,
    pod_ref: &str,
    plan: &mut Plan,
) {
    if let Some(b) = backoff.get(name)
        && now - last.finished_at < b.delay.as_nanos() as i64
    {
        plan.waiting.insert(
            name.to_string(),
            Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!("back-off {} restarting failed container={name} pod={pod_ref}", humanize(b.delay)),
            },
        );
        return;
    }
    plan.actions.push(Action::StartContainer { name: name.to_string(), init, attempt: last.attempt + 1 });
}

/// Go's duration format, as upstream's message prints it: `10s`, `1m20s`, `5m0s`.
fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{}s", s / 60, s % 60) } else { format!("{s}s") }
}

/// The next step for `pod` given what the runtime shows. `gone`: the pod no longer
/// exists in the API (its leftovers are removed). `now` in ns since the epoch.
///
/// `unhealthy`: running containers (by id) whose liveness or startup probe failed, with
/// the probe's kind (`liveness`, `startup`); they are killed, then restarted as the
/// restart policy says.
pub fn plan(
    pod: &Pod,
    observed: &Observed,
    backoff: &BTreeMap<String, BackOff>,
    unhealthy: &BTreeMap<String, &str>,
    gone: bool,
    now: i64,
) -> Plan {
    let mut plan = Plan::default();
    if gone || pod.metadata.deletion_timestamp.is_some() {
        stop_all(pod, observed, true, &mut plan);
        if gone {
            plan.actions.retain(|a| *a != Action::FinalizeDeletion);
        }
        return plan;
    }
    if is_terminal(pod, observed) {
        stop_all(pod, observed, false, &mut plan);
        return plan;
    }
    let policy = restart_policy(pod);
    let pod_ref = format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    );
    let spec = pod.spec.clone().unwrap_or_default();
    let sandbox = observed.sandbox().filter(|s| s.ready);
    let Some(sandbox) = sandbox else {
        // No sandbox, or it died: whatever still runs goes, then a new sandbox, and every
        // container starts over from the first init container.
        let attempt = observed.sandbox().map_or(0, |s| s.attempt + 1);
        let running: Vec<_> = observed.containers.iter().filter(|c| c.state == CState::Running).collect();
        for c in running {
            plan.actions.push(Action::KillContainer { id: c.id.clone(), name: c.name.clone(), grace_seconds: 0 });
        }
        if plan.actions.is_empty() {
            plan.actions.push(Action::CreateSandbox { attempt });
        }
        return plan;
    };
    let next_attempt = |name: &str| observed.latest(name).map_or(0, |c| c.attempt + 1);
    for c in spec.init_containers.iter().flatten() {
        match observed.latest_in(&c.name, &sandbox.id) {
            None => {
                plan.actions.push(Action::StartContainer {
                    name: c.name.clone(),
                    init: true,
                    attempt: next_attempt(&c.name),
                });
                return plan;
            }
            Some(o) if matches!(o.state, CState::Running | CState::Unknown) => return plan,
            Some(o) if o.state == CState::Exited && o.exit_code == 0 => continue,
            Some(o) => {
                // Failed (or created but never started): Never makes the pod Failed;
                // otherwise the init container runs again after its back-off.
                if policy != "Never" {
                    restart_or_wait(&c.name, true, o, backoff, now, &pod_ref, &mut plan);
                }
                return plan;
            }
        }
    }
    for c in &spec.containers {
        match observed.latest_in(&c.name, &sandbox.id) {
            None => plan.actions.push(Action::StartContainer {
                name: c.name.clone(),
                init: false,
                attempt: next_attempt(&c.name),
            }),
            Some(o) if o.state == CState::Running && unhealthy.contains_key(&o.id) => {
                let mut message = format!("Container {} failed {} probe", c.name, unhealthy[&o.id]);
                if policy != "Never" {
                    message.push_str(", will be restarted");
                }
                // A probe's own terminationGracePeriodSeconds wins over the pod's.
                let probe =
                    if unhealthy[&o.id] == "liveness" { c.liveness_probe.as_ref() } else { c.startup_probe.as_ref() };
                let grace =
                    probe.and_then(|p| p.termination_grace_period_seconds).unwrap_or_else(|| grace_seconds(pod));
                plan.actions.push(Action::KillUnhealthy {
                    id: o.id.clone(),
                    name: c.name.clone(),
                    grace_seconds: grace,
                    message,
                });
            }
            Some(o) if matches!(o.state, CState::Running | CState::Unknown) => {}
            Some(o) => {
                let failed = o.state == CState::Created || o.exit_code != 0;
                let restart = match policy {
                    "Never" => false,
                    "OnFailure" => failed,
                    _ => true,
                };
                if restart {
                    restart_or_wait(&c.name, false, o, backoff, now, &pod_ref, &mut plan);
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const S: i64 = 1_000_000_000;

    fn pod(policy: &str, init: &[&str], containers: &[&str]) -> Pod {
        let list = |names: &[&str]| names.iter().map(|n| json!({"name": n, "image": "busybox"})).collect::<Vec<_>>();
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"restartPolicy": policy, "initContainers": list(init), "containers": list(containers)}
        }))
        .unwrap()
    }

    fn sandbox(ready: bool) -> SandboxObs {
        SandboxObs { id: "s0".into(), ready, attempt: 0, created_at: 0, ip: Some("10.244.0.2".into()) }
    }

    fn ctr(name: &str, attempt: u32, state: CState, exit: i32, finished_s: i64) -> ContainerObs {
        ContainerObs {
            id: format!("{name}-{attempt}"),
            name: name.into(),
            sandbox_id: "s0".into(),
            attempt,
            state,
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            created_at: attempt as i64,
            started_at: 0,
            finished_at: finished_s * S,
            image_ref: String::new(),
        }
    }

    fn obs(sandbox_ready: Option<bool>, containers: Vec<ContainerObs>) -> Observed {
        Observed { sandboxes: sandbox_ready.map(sandbox).into_iter().collect(), containers }
    }

    fn start(name: &str, init: bool, attempt: u32) -> Action {
        Action::StartContainer { name: name.into(), init, attempt }
    }

    #[test]
    fn pod_start_order() {
        let none = BTreeMap::new();
        let p = pod("Always", &["i1", "i2"], &["a", "b"]);
        let cases: Vec<(&str, Observed, Vec<Action>)> = vec![
            ("no sandbox", obs(None, vec![]), vec![Action::CreateSandbox { attempt: 0 }]),
            ("first init", obs(Some(true), vec![]), vec![start("i1", true, 0)]),
            ("init running: wait", obs(Some(true), vec![ctr("i1", 0, CState::Running, 0, 0)]), vec![]),
            ("second init", obs(Some(true), vec![ctr("i1", 0, CState::Exited, 0, 1)]), vec![start("i2", true, 0)]),
            (
                "then every app container",
                obs(Some(true), vec![ctr("i1", 0, CState::Exited, 0, 1), ctr("i2", 0, CState::Exited, 0, 2)]),
                vec![start("a", false, 0), start("b", false, 0)],
            ),
            (
                "all running: nothing",
                obs(
                    Some(true),
                    vec![
                        ctr("i1", 0, CState::Exited, 0, 1),
                        ctr("i2", 0, CState::Exited, 0, 2),
                        ctr("a", 0, CState::Running, 0, 0),
                        ctr("b", 0, CState::Running, 0, 0),
                    ],
                ),
                vec![],
            ),
        ];
        for (what, o, want) in cases {
            assert_eq!(plan(&p, &o, &none, &BTreeMap::new(), false, 100 * S).actions, want, "{what}");
        }
    }

    #[test]
    fn restart_policies() {
        let none = BTreeMap::new();
        let cases = [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 1, true),
            ("Never", 1, false),
            ("Never", 0, false),
        ];
        for (policy, exit, restarts) in cases {
            let p = pod(policy, &[], &["a", "b"]);
            let o = obs(Some(true), vec![ctr("a", 0, CState::Exited, exit, 1), ctr("b", 0, CState::Running, 0, 0)]);
            let want = if restarts { vec![start("a", false, 1)] } else { vec![] };
            assert_eq!(plan(&p, &o, &none, &BTreeMap::new(), false, 100 * S).actions, want, "{policy} exit {exit}");
        }
    }

    #[test]
    fn failed_probes_kill_running_containers() {
        let o = obs(Some(true), vec![ctr("a", 0, CState::Running, 0, 0), ctr("b", 0, CState::Running, 0, 0)]);
        let kill = |message: &str| Action::KillUnhealthy {
            id: "a-0".into(),
            name: "a".into(),
            grace_seconds: 30,
            message: message.into(),
        };
        // (restart policy, failed probe, actions)
        let cases = [
            ("Always", "liveness", vec![kill("Container a failed liveness probe, will be restarted")]),
            ("OnFailure", "startup", vec![kill("Container a failed startup probe, will be restarted")]),
            ("Never", "liveness", vec![kill("Container a failed liveness probe")]),
        ];
        for (policy, probe, want) in cases {
            let p = pod(policy, &[], &["a", "b"]);
            let unhealthy = BTreeMap::from([("a-0".to_string(), probe)]);
            assert_eq!(plan(&p, &o, &BTreeMap::new(), &unhealthy, false, 0).actions, want, "{policy} {probe}");
        }
        // Once it exited, the restart policy decides as for any exit.
        let p = pod("Always", &[], &["a", "b"]);
        let o = obs(Some(true), vec![ctr("a", 0, CState::Exited, 137, 1), ctr("b", 0, CState::Running, 0, 0)]);
        let unhealthy = BTreeMap::from([("a-0".to_string(), "liveness")]);
        assert_eq!(plan(&p, &o, &BTreeMap::new(), &unhealthy, false, 100 * S).actions, vec![start("a", false, 1)]);
    }

    #[test]
    fn crash_back_off_waits_then_restarts() {
        let p = pod("Always", &[], &["a"]);
        let o = obs(Some(true), vec![ctr("a", 3, CState::Exited, 1, 100)]);
        let backoff =
            BTreeMap::from([("a".to_string(), BackOff { delay: Duration::from_secs(20), updated_at: 90 * S })]);
        let waiting = plan(&p, &o, &backoff, &BTreeMap::new(), false, 110 * S);
        assert!(waiting.actions.is_empty());
        assert_eq!(waiting.waiting["a"].reason, "CrashLoopBackOff");
        assert!(waiting.waiting["a"].message.starts_with("back-off 20s restarting failed container=a"));
        let after = plan(&p, &o, &backoff, &BTreeMap::new(), false, 121 * S);
        assert_eq!(after.actions, vec![start("a", false, 4)]);
    }

    #[test]
    fn back_off_doubles_to_five_minutes_and_expires() {
        let mut b = BackOff::next(None, 0);
        let mut seen = vec![b.delay.as_secs()];
        for i in 1..7 {
            b = BackOff::next(Some(b), i * S);
            seen.push(b.delay.as_secs());
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(BackOff::next(Some(b), 7 * S + 601 * S).delay.as_secs(), 10);
    }

    #[test]
    fn failed_init_container() {
        let none = BTreeMap::new();
        let o = obs(Some(true), vec![ctr("i1", 0, CState::Exited, 2, 1)]);
        // Never: the pod is Failed; its sandbox is stopped.
        let p = pod("Never", &["i1"], &["a"]);
        assert_eq!(
            plan(&p, &o, &none, &BTreeMap::new(), false, 100 * S).actions,
            vec![Action::StopSandbox { id: "s0".into() }]
        );
        // Otherwise the init container runs again and the app containers wait.
        let p = pod("Always", &["i1"], &["a"]);
        assert_eq!(plan(&p, &o, &none, &BTreeMap::new(), false, 100 * S).actions, vec![start("i1", true, 1)]);
    }

    #[test]
    fn dead_sandbox_is_replaced_after_its_containers_stop() {
        let none = BTreeMap::new();
        let p = pod("Always", &[], &["a"]);
        let o = obs(Some(false), vec![ctr("a", 0, CState::Running, 0, 0)]);
        assert_eq!(
            plan(&p, &o, &none, &BTreeMap::new(), false, 100 * S).actions,
            vec![Action::KillContainer { id: "a-0".into(), name: "a".into(), grace_seconds: 0 }]
        );
        let o = obs(Some(false), vec![ctr("a", 0, CState::Exited, 137, 1)]);
        assert_eq!(
            plan(&p, &o, &none, &BTreeMap::new(), false, 100 * S).actions,
            vec![Action::CreateSandbox { attempt: 1 }]
        );
    }

    #[test]
    fn deletion_stops_then_removes_then_finalizes() {
        let none = BTreeMap::new();
        let mut p = pod("Always", &[], &["a"]);
        p.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()));
        p.metadata.deletion_grace_period_seconds = Some(5);
        let running = obs(Some(true), vec![ctr("a", 0, CState::Running, 0, 0)]);
        assert_eq!(
            plan(&p, &running, &none, &BTreeMap::new(), false, 0).actions,
            vec![Action::KillContainer { id: "a-0".into(), name: "a".into(), grace_seconds: 5 }]
        );
        let stopped = obs(Some(true), vec![ctr("a", 0, CState::Exited, 0, 1)]);
        assert_eq!(
            plan(&p, &stopped, &none, &BTreeMap::new(), false, 0).actions,
            vec![Action::StopSandbox { id: "s0".into() }]
        );
        let down = obs(Some(false), vec![ctr("a", 0, CState::Exited, 0, 1)]);
        assert_eq!(
            plan(&p, &down, &none, &BTreeMap::new(), false, 0).actions,
            vec![Action::RemoveContainer { id: "a-0".into() }, Action::RemoveSandbox { id: "s0".into() }]
        );
        assert_eq!(
            plan(&p, &Observed::default(), &none, &BTreeMap::new(), false, 0).actions,
            vec![Action::FinalizeDeletion]
        );
        // A pod already gone from the API is only cleaned up.
        assert_eq!(plan(&p, &Observed::default(), &none, &BTreeMap::new(), true, 0).actions, vec![]);
    }
}
