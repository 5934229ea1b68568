//! The Deployment controller's decisions, as pure functions of a Deployment, its
//! ReplicaSets and the time: upstream's `pkg/controller/deployment` (rolling.go,
//! recreate.go, sync.go's `scale`, progress.go) and its `util` package. Applying them
//! (writing ReplicaSets and status) is [`crate::deployment`]'s job.
//!
//! The planners see a ReplicaSet as an [`RsState`] (its spec size, status counts and
//! annotations) and answer with [`Scale`]s: "set this ReplicaSet's size to N".

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::workload::{api_now, controller_of};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const DEPRECATED_ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// Upstream's `maxRevHistoryLengthInChars`.
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Deployment annotations that are the controller's own, never copied to a ReplicaSet.
const SKIPPED_ANNOTATIONS: &[&str] =
    &[LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, DEPRECATED_ROLLBACK_TO];

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RolloutError {
    #[error("invalid value {value:?} for {field}: an integer or a percentage such as \"25%\" is expected")]
    IntOrPercent { field: &'static str, value: String },
}

/// A Deployment's spec, resolved: defaults applied, maxSurge/maxUnavailable turned into
/// pod counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub replicas: i32,
    pub recreate: bool,
    /// Resolved maxSurge (0 for Recreate).
    pub max_surge: i32,
    /// Resolved maxUnavailable, at most `replicas` (0 for Recreate or 0 replicas).
    pub max_unavailable: i32,
    pub min_ready_seconds: i32,
    pub paused: bool,
    /// `None`: keep every old ReplicaSet.
    pub revision_history_limit: Option<i32>,
    /// `None`: progress is not tracked.
    pub progress_deadline_seconds: Option<i32>,
    pub generation: i64,
}

impl Params {
    pub fn of(d: &Deployment) -> Result<Params, RolloutError> {
        let spec = d.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1).max(0);
        let strategy = spec.strategy.unwrap_or_default();
        let recreate = strategy.type_.as_deref() == Some("Recreate");
        let (max_surge, max_unavailable) = if recreate {
            (0, 0)
        } else {
            let ru = strategy.rolling_update.unwrap_or_default();
            let quarter = IntOrString::String("25%".into());
            let (surge, unavailable) = resolve_fenceposts(
                Some(ru.max_surge.as_ref().unwrap_or(&quarter)),
                Some(ru.max_unavailable.as_ref().unwrap_or(&quarter)),
                replicas,
            )?;
            (surge, if replicas == 0 { 0 } else { unavailable.min(replicas) })
        };
        let limit = spec.revision_history_limit.unwrap_or(10);
        let deadline = spec.progress_deadline_seconds.unwrap_or(600);
        Ok(Params {
            replicas,
            recreate,
            max_surge,
            max_unavailable,
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            paused: spec.paused.unwrap_or(false),
            revision_history_limit: (limit != i32::MAX).then_some(limit),
            progress_deadline_seconds: (deadline != i32::MAX).then_some(deadline),
            generation: d.metadata.generation.unwrap_or(0),
        })
    }

    pub fn min_available(&self) -> i32 {
        if self.recreate { 0 } else { self.replicas - self.max_unavailable }
    }

    /// The `max-replicas` annotation the ReplicaSets carry.
    pub fn max_replicas(&self) -> i32 {
        self.replicas.saturating_add(self.max_surge)
    }
}

/// An int, or a percentage of `total` rounded up (surge) or down (unavailability):
/// upstream's `intstr.GetScaledValueFromIntOrPercent`.
pub fn int_or_percent(
    v: Option<&IntOrString>,
    total: i32,
    round_up: bool,
    field: &'static str,
) -> Result<i32, RolloutError> {
    match v {
        None => Ok(0),
        Some(IntOrString::Int(i)) => Ok(*i),
        Some(IntOrString::String(s)) => {
            let bad = || RolloutError::IntOrPercent { field, value: s.clone() };
            let pct: i64 = s.strip_suffix('%').ok_or_else(bad)?.parse().map_err(|_| bad())?;
            let scaled = i64::from(total) * pct;
            let v = if round_up { (scaled + 99).div_euclid(100) } else { scaled.div_euclid(100) };
            i32::try_from(v).map_err(|_| bad())
        }
    }
}

/// Both fenceposts at once; if both round to zero, one pod may be unavailable (upstream's
/// `ResolveFenceposts`: validation rejects an explicit 0/0, rounding can still reach it).
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), RolloutError> {
    let surge = int_or_percent(max_surge, desired, true, "maxSurge")?.max(0);
    let mut unavailable = int_or_percent(max_unavailable, desired, false, "maxUnavailable")?.max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// What the planners need to know of one ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsState {
    pub name: String,
    pub uid: String,
    pub created: Timestamp,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.replicas`: pods that exist and are not terminating.
    pub status_replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub revision: i64,
    pub desired_annotation: Option<i32>,
    pub max_annotation: Option<i32>,
    pub generation: i64,
    pub observed_generation: i64,
    pub deleting: bool,
}

impl RsState {
    pub fn of(rs: &ReplicaSet) -> RsState {
        let status = rs.status.clone().unwrap_or_default();
        let ann = rs.metadata.annotations.as_ref();
        let int = |k: &str| ann.and_then(|a| a.get(k)).and_then(|v| v.parse::<i32>().ok());
        RsState {
            name: rs.metadata.name.clone().unwrap_or_default(),
            uid: rs.metadata.uid.clone().unwrap_or_default(),
            created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH),
            // Validation keeps these non-negative; clamping keeps the arithmetic safe.
            replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0),
            status_replicas: status.replicas.max(0),
            ready: status.ready_replicas.unwrap_or(0).max(0),
            available: status.available_replicas.unwrap_or(0).max(0),
            revision: revision(ann),
            desired_annotation: int(DESIRED_REPLICAS),
            max_annotation: int(MAX_REPLICAS),
            generation: rs.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            deleting: rs.metadata.deletion_timestamp.is_some(),
        }
    }

    /// Available pods this ReplicaSet will still have once it reaches its size. The
    /// status can lag a scale-down (the pods are not gone yet): counting more than
    /// `spec.replicas` would let a rollout take away pods that are already leaving.
    fn available_now(&self) -> i32 {
        self.available.min(self.replicas).max(0)
    }

    /// Pods this ReplicaSet has or will have: after a scale-down its pods count until
    /// they are gone, so a surge never exceeds maxSurge even for a moment.
    fn pods(&self) -> i32 {
        self.replicas.max(self.status_replicas)
    }
}

/// "Set ReplicaSet `name` to `to` replicas" (and refresh its replica annotations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    pub name: String,
    pub from: i32,
    pub to: i32,
}

impl Scale {
    fn of(rs: &RsState, to: i32) -> Scale {
        Scale { name: rs.name.clone(), from: rs.replicas, to }
    }

    /// Upstream's event text: `Scaled up replica set web-5d8f from 1 to 3`.
    pub fn message(&self) -> String {
        let dir = if self.to > self.from { "up" } else { "down" };
        format!("Scaled {dir} replica set {} from {} to {}", self.name, self.from, self.to)
    }
}

/// Replica counts are int32 in the API: a huge size must saturate, not overflow.
fn sum(counts: impl Iterator<Item = i32>) -> i32 {
    counts.fold(0, i32::saturating_add)
}

/// Upstream's `ReplicaSetsByCreationTimestamp`: oldest first, then by name.
fn by_creation(a: &RsState, b: &RsState) -> std::cmp::Ordering {
    a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name))
}

/// The size a rolling Deployment's new ReplicaSet may grow to now (upstream's
/// `NewRSNewReplicas`), counting pods still leaving old ReplicaSets against maxSurge.
pub fn new_rs_new_replicas(p: &Params, all: &[&RsState], new: &RsState) -> i32 {
    if p.recreate {
        return p.replicas;
    }
    let current = sum(all.iter().map(|r| r.pods()));
    let max_total = p.max_replicas();
    if current >= max_total {
        return new.replicas;
    }
    let up = (max_total - current).min(p.replicas - new.replicas);
    new.replicas.saturating_add(up.max(0))
}

/// One step of a rolling update (upstream's `rolloutRolling` minus the writes): grow the
/// new ReplicaSet within maxSurge, or else shrink old ones within maxUnavailable,
/// unhealthy pods first.
pub fn rolling_step(p: &Params, new: &RsState, olds: &[RsState]) -> Vec<Scale> {
    if new.replicas > p.replicas {
        return vec![Scale::of(new, p.replicas)];
    }
    if new.replicas < p.replicas {
        let all: Vec<&RsState> = olds.iter().chain(std::iter::once(new)).collect();
        let to = new_rs_new_replicas(p, &all, new);
        if to != new.replicas {
            return vec![Scale::of(new, to)];
        }
    }
    let mut active: Vec<RsState> = olds.iter().filter(|r| r.replicas > 0).cloned().collect();
    active.sort_by(by_creation);
    let old_pods = sum(active.iter().map(|r| r.replicas));
    if old_pods == 0 {
        return Vec::new();
    }
    let all_pods = old_pods.saturating_add(new.replicas);
    let min_available = p.min_available();
    let new_unavailable = new.replicas - new.available_now();
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let before: Vec<i32> = active.iter().map(|r| r.replicas).collect();

    // Unhealthy old pods go first: removing them costs no availability.
    let mut cleaned = 0;
    for rs in active.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = rs.replicas - rs.available_now();
        if rs.replicas == 0 || unhealthy <= 0 {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(unhealthy);
        rs.replicas -= n;
        cleaned += n;
    }

    let available = sum(active.iter().map(RsState::available_now)).saturating_add(new.available_now());
    if available > min_available {
        let total = available - min_available;
        let mut scaled = 0;
        for rs in active.iter_mut() {
            if scaled >= total {
                break;
            }
            if rs.replicas == 0 {
                continue;
            }
            let n = rs.replicas.min(total - scaled);
            rs.replicas -= n;
            scaled += n;
        }
    }
    active
        .iter()
        .zip(before)
        .filter(|(rs, from)| rs.replicas != *from)
        .map(|(rs, from)| Scale { name: rs.name.clone(), from, to: rs.replicas })
        .collect()
}

/// Upstream's `IsSaturated`: the new ReplicaSet holds every desired pod, available.
fn is_saturated(p: &Params, rs: &RsState) -> bool {
    rs.replicas == p.replicas && rs.desired_annotation == Some(p.replicas) && rs.available == p.replicas
}

/// Whether the Deployment's size changed since its ReplicaSets were last sized
/// (upstream's `isScalingEvent`): then ReplicaSets are resized, not rolled.
pub fn is_scaling_event(p: &Params, all: &[&RsState]) -> bool {
    all.iter().filter(|r| r.replicas > 0).any(|r| r.desired_annotation.is_some_and(|d| d != p.replicas))
}

/// Resizing without rolling (upstream's `scale`): the only active ReplicaSet takes the
/// whole size; mid-rollout, the change is spread over the active ReplicaSets in
/// proportion to their share of the `max-replicas` they were sized for, leftovers to the
/// largest. Every active ReplicaSet gets a `Scale`, so its annotations are refreshed.
pub fn proportional_scale(p: &Params, status_replicas: i32, new: Option<&RsState>, olds: &[RsState]) -> Vec<Scale> {
    if new.is_none() && olds.is_empty() {
        return Vec::new();
    }
    let mut newest_first: Vec<&RsState> = olds.iter().collect();
    newest_first.sort_by(|a, b| by_creation(b, a));
    let active: Vec<&RsState> = newest_first.iter().copied().chain(new).filter(|r| r.replicas > 0).collect();
    let only = match active.len() {
        0 => new.or(newest_first.first().copied()),
        1 => Some(active[0]),
        _ => None,
    };
    if let Some(rs) = only {
        return if rs.replicas == p.replicas { Vec::new() } else { vec![Scale::of(rs, p.replicas)] };
    }
    if let Some(new) = new
        && is_saturated(p, new)
    {
        return active.iter().filter(|r| r.name != new.name).map(|r| Scale::of(r, 0)).collect();
    }
    if p.recreate {
        return Vec::new();
    }
    let mut active = active;
    let total = sum(active.iter().map(|r| r.replicas));
    let allowed = if p.replicas > 0 { p.max_replicas() } else { 0 };
    let to_add = allowed - total;
    if to_add > 0 {
        // Larger first; between equals, newer first.
        active.sort_by(|a, b| b.replicas.cmp(&a.replicas).then_with(|| by_creation(b, a)));
    } else if to_add < 0 {
        // Larger first; between equals, older first.
        active.sort_by(|a, b| b.replicas.cmp(&a.replicas).then_with(|| by_creation(a, b)));
    }
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(active.len());
    for rs in &active {
        if to_add == 0 {
            sizes.push(rs.replicas);
            continue;
        }
        let proportion = proportion(p, status_replicas, rs, to_add, added);
        sizes.push(rs.replicas.saturating_add(proportion));
        added = added.saturating_add(proportion);
    }
    if to_add != 0
        && let Some(first) = sizes.first_mut()
    {
        *first = first.saturating_add(to_add.saturating_sub(added)).max(0);
    }
    active.iter().zip(sizes).map(|(rs, to)| Scale::of(rs, to)).collect()
}

/// Upstream's `GetProportion`.
fn proportion(p: &Params, status_replicas: i32, rs: &RsState, to_add: i32, added: i32) -> i32 {
    if rs.replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = fraction(p, status_replicas, rs);
    let allowed = to_add.saturating_sub(added);
    if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) }
}

/// Upstream's `getReplicaSetFraction`: how much `rs` grows or shrinks if the Deployment's
/// `max-replicas` changes from what `rs` was sized for to what it is now.
fn fraction(p: &Params, status_replicas: i32, rs: &RsState) -> i32 {
    if p.replicas == 0 {
        return -rs.replicas;
    }
    let deployment_replicas = p.max_replicas();
    let annotated = rs.max_annotation.unwrap_or(status_replicas);
    if annotated <= 0 {
        return 0;
    }
    let size = f64::from(rs.replicas) * f64::from(deployment_replicas) / f64::from(annotated);
    // Go's `integer.RoundToInt32` for a non-negative value; the cast saturates.
    (size + 0.5).floor() as i32 - rs.replicas
}

/// What one sync of a Deployment does to its ReplicaSets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// Create the new ReplicaSet first, with this many replicas.
    pub create_new: Option<i32>,
    pub scale: Vec<Scale>,
    /// Prune old ReplicaSets beyond revisionHistoryLimit if the rollout is complete.
    pub prune_if_complete: bool,
    /// Prune whatever happens (a paused Deployment).
    pub prune: bool,
    /// Only sizes change (paused or scaled): the status gets no progress check.
    pub resizing: bool,
}

/// The next step of a Deployment (upstream's `syncDeployment` from the pause check on):
/// resize when paused or scaled, else roll with the strategy. `new` is the ReplicaSet
/// whose template is the Deployment's, if it exists; `old_pods_running` only matters to
/// Recreate.
pub fn rollout_step(
    p: &Params,
    status_replicas: i32,
    new: Option<&RsState>,
    olds: &[RsState],
    old_pods_running: bool,
) -> Step {
    let all: Vec<&RsState> = olds.iter().chain(new).collect();
    if p.paused || is_scaling_event(p, &all) {
        return Step {
            scale: proportional_scale(p, status_replicas, new, olds),
            prune: p.paused,
            resizing: true,
            ..Step::default()
        };
    }
    if p.recreate {
        let down: Vec<Scale> = olds.iter().filter(|r| r.replicas > 0).map(|r| Scale::of(r, 0)).collect();
        if !down.is_empty() {
            return Step { scale: down, ..Step::default() };
        }
        if old_pods_running {
            return Step::default();
        }
        return match new {
            None => Step { create_new: Some(p.replicas), prune_if_complete: true, ..Step::default() },
            Some(rs) if rs.replicas != p.replicas => {
                Step { scale: vec![Scale::of(rs, p.replicas)], prune_if_complete: true, ..Step::default() }
            }
            Some(_) => Step { prune_if_complete: true, ..Step::default() },
        };
    }
    match new {
        Some(rs) => {
            let scale = rolling_step(p, rs, olds);
            let idle = scale.is_empty();
            Step { scale, prune_if_complete: idle, ..Step::default() }
        }
        None => {
            let mut fresh = RsState {
                name: String::new(),
                uid: String::new(),
                created: Timestamp::MAX,
                replicas: 0,
                status_replicas: 0,
                ready: 0,
                available: 0,
                revision: 0,
                desired_annotation: Some(p.replicas),
                max_annotation: Some(p.max_replicas()),
                generation: 1,
                observed_generation: 0,
                deleting: false,
            };
            let all: Vec<&RsState> = olds.iter().chain(std::iter::once(&fresh)).collect();
            let size = new_rs_new_replicas(p, &all, &fresh);
            fresh.replicas = size;
            // The new ReplicaSet is born at its target size, so only old ones can move.
            let scale = rolling_step(p, &fresh, olds).into_iter().filter(|s| !s.name.is_empty()).collect();
            Step { create_new: Some(size), scale, ..Step::default() }
        }
    }
}

/// Whether Recreate must still wait for old pods (upstream's `oldPodsRunning`): any old
/// ReplicaSet still reports pods, or a pod of an old ReplicaSet has not finished.
pub fn old_pods_running(new_uid: Option<&str>, olds: &[RsState], pods: &[&Pod]) -> bool {
    if sum(olds.iter().map(|r| r.status_replicas)) > 0 {
        return true;
    }
    let old_uids: Vec<&str> = olds.iter().map(|r| r.uid.as_str()).collect();
    pods.iter().any(|pod| {
        let Some(owner) = controller_of(&pod.metadata) else { return false };
        if Some(owner.uid.as_str()) == new_uid || !old_uids.contains(&owner.uid.as_str()) {
            return false;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
        phase != "Failed" && phase != "Succeeded"
    })
}

/// Old ReplicaSets to delete beyond revisionHistoryLimit, oldest revision first, never
/// one that still has (or may still have) pods (upstream's `cleanupDeployment`).
pub fn prune(p: &Params, olds: &[RsState]) -> Vec<String> {
    let Some(limit) = p.revision_history_limit else { return Vec::new() };
    let mut cleanable: Vec<&RsState> = olds.iter().filter(|r| !r.deleting).collect();
    let diff = cleanable.len() as i64 - i64::from(limit);
    if diff <= 0 {
        return Vec::new();
    }
    cleanable.sort_by(|a, b| a.revision.cmp(&b.revision).then_with(|| by_creation(a, b)));
    cleanable
        .iter()
        .take(usize::try_from(diff).unwrap_or(0))
        .filter(|r| r.status_replicas == 0 && r.replicas == 0 && r.generation <= r.observed_generation)
        .map(|r| r.name.clone())
        .collect()
}

/// The `deployment.kubernetes.io/revision` of an object; 0 when absent or unreadable.
pub fn revision(annotations: Option<&BTreeMap<String, String>>) -> i64 {
    annotations.and_then(|a| a.get(REVISION)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub fn max_revision(rses: &[RsState]) -> i64 {
    rses.iter().map(|r| r.revision).max().unwrap_or(0)
}

/// The annotations the new ReplicaSet should carry (upstream's
/// `SetNewReplicaSetAnnotations`): the Deployment's own (change-cause, …), the revision
/// raised to `new_revision` (keeping the ones it had in `revision-history`: a rollback
/// reuses an old ReplicaSet) and, for a ReplicaSet about to be created, the replica
/// annotations.
pub fn new_rs_annotations(
    p: &Params,
    deployment: Option<&BTreeMap<String, String>>,
    current: Option<&BTreeMap<String, String>>,
    new_revision: i64,
    exists: bool,
) -> BTreeMap<String, String> {
    let mut out = current.cloned().unwrap_or_default();
    for (k, v) in deployment.into_iter().flatten() {
        if !SKIPPED_ANNOTATIONS.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    let old = out.get(REVISION).cloned();
    let old_n = match old.as_deref() {
        None | Some("") => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return out,
        },
    };
    if old_n < new_revision {
        out.insert(REVISION.into(), new_revision.to_string());
        if let Some(old) = old {
            let history = out.get(REVISION_HISTORY).cloned().unwrap_or_default();
            if history.is_empty() {
                out.insert(REVISION_HISTORY.into(), old);
            } else {
                let mut entries: Vec<&str> = history.split(',').collect();
                let mut len = history.len() + old.len() + 1;
                let mut start = 0;
                while len > MAX_REVISION_HISTORY_CHARS && start < entries.len() {
                    len -= entries[start].len() + 1;
                    start += 1;
                }
                if len <= MAX_REVISION_HISTORY_CHARS {
                    entries = entries.split_off(start);
                    entries.push(&old);
                    out.insert(REVISION_HISTORY.into(), entries.join(","));
                }
            }
        }
    }
    if !exists {
        out.insert(DESIRED_REPLICAS.into(), p.replicas.to_string());
        out.insert(MAX_REPLICAS.into(), p.max_replicas().to_string());
    }
    out
}

/// The pod-template-hash of a template (upstream's `controller.ComputeHash`): FNV-32a,
/// then `collisionCount` as 8 little-endian bytes, printed in decimal and each digit
/// mapped to `bcdfghjklmnpqrstvwxz2456789` (`rand.SafeEncodeString`). Upstream hashes a
/// Go dump of the struct, which Rust cannot reproduce; this hashes the template's
/// canonical JSON (sorted keys, empty fields dropped, the hash label removed), so equal
/// templates hash equal and the value is stable across restarts.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut text = String::new();
    canonical_json(&normalized_template(template), &mut text);
    let mut h = fnv32a(0x811c_9dc5, text.as_bytes());
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a(h, &bytes);
    }
    safe_encode(&h.to_string())
}

fn fnv32a(mut h: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Upstream's `rand.SafeEncodeString`: no vowels, no look-alike characters.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes().map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()])).collect()
}

/// Upstream's `EqualIgnoreHash`: semantically equal templates, whatever their
/// pod-template-hash label; nil and empty maps and lists are the same.
pub fn templates_equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized_template(a) == normalized_template(b)
}

fn normalized_template(t: &PodTemplateSpec) -> Value {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    let mut v = serde_json::to_value(&t).unwrap_or(Value::Null);
    prune_empty(&mut v);
    v
}

/// Drops nulls, empty objects and empty lists, deepest first.
fn prune_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                prune_empty(x);
            }
            m.retain(|_, x| !is_empty(x));
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                prune_empty(x);
            }
        }
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// JSON with object keys sorted, so the text does not depend on map order.
fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.iter().flatten().find(|c| c.type_ == type_)
}

pub fn new_condition(type_: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    let t = Some(Time(api_now(now)));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: t.clone(),
        last_transition_time: t,
    }
}

/// Upstream's `SetDeploymentCondition`: no change when status and reason are the same;
/// the transition time survives when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(cur) = condition(status, &cond.type_) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(status, &cond.type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
        if c.is_empty() {
            status.conditions = None;
        }
    }
}

/// The status counts and the Available condition (upstream's `calculateStatus`).
pub fn calculate_status(
    p: &Params,
    current: &DeploymentStatus,
    all: &[&RsState],
    new: Option<&RsState>,
    now: Timestamp,
) -> DeploymentStatus {
    let available = sum(all.iter().map(|r| r.available));
    let total = sum(all.iter().map(|r| r.replicas));
    // Zero counts are left out, as upstream's omitempty fields are.
    let count = |n: i32| Some(n).filter(|n| *n != 0);
    let mut status = DeploymentStatus {
        observed_generation: Some(p.generation),
        replicas: count(sum(all.iter().map(|r| r.status_replicas))),
        updated_replicas: count(new.map(|r| r.status_replicas).unwrap_or(0)),
        ready_replicas: count(sum(all.iter().map(|r| r.ready))),
        available_replicas: count(available),
        unavailable_replicas: count((total - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        terminating_replicas: current.terminating_replicas,
    };
    let cond = if available >= p.replicas - p.max_unavailable {
        new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.".into(), now)
    } else {
        new_condition(AVAILABLE, "False", MIN_UNAVAILABLE, "Deployment does not have minimum availability.".into(), now)
    };
    set_condition(&mut status, cond);
    status
}

/// Upstream's `DeploymentComplete`: every pod updated and available, none old.
pub fn deployment_complete(p: &Params, s: &DeploymentStatus) -> bool {
    s.updated_replicas.unwrap_or(0) == p.replicas
        && s.replicas.unwrap_or(0) == p.replicas
        && s.available_replicas.unwrap_or(0) == p.replicas
        && s.observed_generation.unwrap_or(0) >= p.generation
}

/// Upstream's `DeploymentProgressing`: more updated, ready or available pods, or fewer
/// old ones, than last time.
fn progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let v = |x: Option<i32>| x.unwrap_or(0);
    let old_old = v(old.replicas).saturating_sub(v(old.updated_replicas));
    let new_old = v(new.replicas).saturating_sub(v(new.updated_replicas));
    v(new.updated_replicas) > v(old.updated_replicas)
        || new_old < old_old
        || v(new.ready_replicas) > v(old.ready_replicas)
        || v(new.available_replicas) > v(old.available_replicas)
}

fn deadline_of(cond: &DeploymentCondition, seconds: i32) -> Option<Timestamp> {
    let from = cond.last_update_time.as_ref()?.0;
    from.checked_add(SignedDuration::from_secs(i64::from(seconds))).ok()
}

/// Upstream's `DeploymentTimedOut`.
fn timed_out(p: &Params, s: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(seconds) = p.progress_deadline_seconds else { return false };
    let Some(cond) = condition(s, PROGRESSING) else { return false };
    match cond.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => deadline_of(cond, seconds).is_some_and(|d| d < now),
    }
}

/// The status after a rollout step (upstream's `syncRolloutStatus`): counts, Available,
/// Progressing (complete, progressing or past its deadline) and the ReplicaSets'
/// ReplicaFailure; plus when to look again if the rollout seems stuck.
pub fn rollout_status(
    p: &Params,
    current: &DeploymentStatus,
    all: &[&RsState],
    new: Option<&RsState>,
    failures: &[DeploymentCondition],
    now: Timestamp,
) -> (DeploymentStatus, Option<Duration>) {
    let mut s = calculate_status(p, current, all, new, now);
    if p.progress_deadline_seconds.is_none() {
        remove_condition(&mut s, PROGRESSING);
    }
    let cur = condition(current, PROGRESSING);
    let complete_before =
        s.replicas == s.updated_replicas && cur.is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    let rs_name = |fallback: String, f: &dyn Fn(&str) -> String| new.map(|r| f(&r.name)).unwrap_or(fallback);
    if p.progress_deadline_seconds.is_some() && !complete_before {
        if deployment_complete(p, &s) {
            let msg = rs_name("Deployment has successfully progressed.".into(), &|n| {
                format!("ReplicaSet \"{n}\" has successfully progressed.")
            });
            set_condition(&mut s, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now));
        } else if progressing(current, &s) {
            let msg = rs_name("Deployment is progressing.".into(), &|n| format!("ReplicaSet \"{n}\" is progressing."));
            let mut cond = new_condition(PROGRESSING, "True", RS_UPDATED, msg, now);
            if let Some(c) = cur {
                if c.status == "True" {
                    cond.last_transition_time = c.last_transition_time.clone();
                }
                remove_condition(&mut s, PROGRESSING);
            }
            set_condition(&mut s, cond);
        } else if timed_out(p, &s, now) {
            let msg = rs_name("Deployment has timed out progressing.".into(), &|n| {
                format!("ReplicaSet \"{n}\" has timed out progressing.")
            });
            set_condition(&mut s, new_condition(PROGRESSING, "False", TIMED_OUT, msg, now));
        }
    }
    match failures.first() {
        Some(f) => set_condition(&mut s, f.clone()),
        None => remove_condition(&mut s, REPLICA_FAILURE),
    }
    let requeue = requeue_stuck(p, current, &s, now);
    (s, requeue)
}

/// When a rollout that shows no progress should be checked against its deadline
/// (upstream's `requeueStuckDeployment`): a second past `lastUpdateTime + deadline`.
fn requeue_stuck(p: &Params, current: &DeploymentStatus, new: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let seconds = p.progress_deadline_seconds?;
    let cond = condition(current, PROGRESSING)?;
    if deployment_complete(p, new) || cond.reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let deadline = deadline_of(cond, seconds)?;
    let after = Duration::try_from(deadline.duration_since(now)).unwrap_or(Duration::ZERO);
    Some(if after < Duration::from_secs(1) { Duration::from_secs(1) } else { after + Duration::from_secs(1) })
}

/// The Progressing condition of a paused or resumed Deployment (upstream's
/// `checkPausedConditions`), so time spent paused never counts against the deadline.
pub fn paused_condition(p: &Params, status: &DeploymentStatus, now: Timestamp) -> Option<DeploymentStatus> {
    p.progress_deadline_seconds?;
    let cond = condition(status, PROGRESSING);
    if cond.is_some_and(|c| c.reason.as_deref() == Some(TIMED_OUT)) {
        return None;
    }
    let paused_cond = cond.is_some_and(|c| c.reason.as_deref() == Some(PAUSED));
    let mut s = status.clone();
    if p.paused && !paused_cond {
        set_condition(&mut s, new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused".into(), now));
    } else if !p.paused && paused_cond {
        set_condition(&mut s, new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed".into(), now));
    } else {
        return None;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ios(s: &str) -> IntOrString {
        match s.parse::<i32>() {
            Ok(i) => IntOrString::Int(i),
            Err(_) => IntOrString::String(s.into()),
        }
    }

    fn rolling(replicas: i32, surge: &str, unavailable: &str) -> Params {
        let d = Deployment {
            metadata: ObjectMeta { generation: Some(1), ..Default::default() },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(ios(surge)),
                        max_unavailable: Some(ios(unavailable)),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        Params::of(&d).unwrap()
    }

    fn recreate(replicas: i32) -> Params {
        Params { recreate: true, max_surge: 0, max_unavailable: 0, ..rolling(replicas, "1", "0") }
    }

    /// A ReplicaSet created `age` seconds before a fixed instant, with `replicas` wanted
    /// and `available` available pods (all existing pods ready).
    fn rs(name: &str, age: i64, replicas: i32, available: i32) -> RsState {
        let base: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        RsState {
            name: name.into(),
            uid: format!("uid-{name}"),
            created: base - SignedDuration::from_secs(age),
            replicas,
            status_replicas: replicas,
            ready: available,
            available,
            revision: 0,
            desired_annotation: None,
            max_annotation: None,
            generation: 1,
            observed_generation: 1,
            deleting: false,
        }
    }

    fn sc(name: &str, from: i32, to: i32) -> Scale {
        Scale { name: name.into(), from, to }
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailability_down() {
        let cases = [
            (5, "25%", "25%", (2, 1)),
            (10, "25%", "25%", (3, 2)),
            (1, "25%", "25%", (1, 0)),
            (4, "0", "1", (0, 1)),
            (3, "0%", "10%", (0, 1)), // both round to zero: one may be unavailable
            (2, "100%", "0", (2, 0)),
            (0, "25%", "25%", (0, 1)),
        ];
        for (replicas, s, u, want) in cases {
            assert_eq!(resolve_fenceposts(Some(&ios(s)), Some(&ios(u)), replicas), Ok(want), "{replicas} {s} {u}");
        }
        assert!(resolve_fenceposts(Some(&ios("x")), None, 3).is_err());
        assert!(resolve_fenceposts(Some(&ios("5")), Some(&ios("1.5%")), 3).is_err());
        // maxUnavailable is capped at the size, and is 0 for an empty Deployment.
        assert_eq!(rolling(2, "0", "5").max_unavailable, 2);
        assert_eq!(rolling(0, "1", "1").max_unavailable, 0);
    }

    #[test]
    fn rolling_steps_respect_surge_and_unavailability() {
        type Case = (&'static str, Params, RsState, Vec<RsState>, Vec<Scale>);
        let cases: Vec<Case> = vec![
            (
                "surge first: the new ReplicaSet grows by maxSurge",
                rolling(5, "2", "1"),
                rs("new", 0, 0, 0),
                vec![rs("old", 10, 5, 5)],
                vec![sc("new", 0, 2)],
            ),
            (
                "new pods not available: old may lose only maxUnavailable",
                rolling(5, "2", "1"),
                rs("new", 0, 2, 0),
                vec![rs("old", 10, 5, 5)],
                vec![sc("old", 5, 4)],
            ),
            (
                "two new pods available: old shrinks by three",
                rolling(5, "2", "1"),
                rs("new", 0, 2, 2),
                vec![rs("old", 10, 5, 5)],
                vec![sc("old", 5, 2)],
            ),
            (
                "at the surge limit and nothing available: wait",
                rolling(5, "2", "0"),
                rs("new", 0, 2, 0),
                vec![rs("old", 10, 5, 5)],
                vec![],
            ),
            (
                "no surge: old shrinks first",
                rolling(3, "0", "1"),
                rs("new", 0, 0, 0),
                vec![rs("old", 10, 3, 3)],
                vec![sc("old", 3, 2)],
            ),
            (
                "no surge, then new grows into the room",
                rolling(3, "0", "1"),
                rs("new", 0, 0, 0),
                vec![RsState { status_replicas: 2, ..rs("old", 10, 2, 2) }],
                vec![sc("new", 0, 1)],
            ),
            (
                "a pod still leaving counts against maxSurge",
                rolling(3, "0", "1"),
                rs("new", 0, 0, 0),
                vec![RsState { status_replicas: 3, ..rs("old", 10, 2, 2) }],
                vec![],
            ),
            (
                "unhealthy old pods go first, even with nothing new available",
                rolling(4, "1", "1"),
                rs("new", 0, 1, 0),
                vec![rs("old", 10, 4, 2)],
                vec![sc("old", 4, 3)],
            ),
            (
                // Old has five available pods but is sized four: one is leaving, so only
                // 4 + 1 count and one more may go (counting five would take two).
                "a stale status above the size is not counted as available",
                rolling(5, "2", "1"),
                rs("new", 0, 2, 1),
                vec![RsState { available: 5, status_replicas: 5, ..rs("old", 10, 4, 4) }],
                vec![sc("old", 4, 3)],
            ),
            (
                "the oldest ReplicaSet shrinks first",
                rolling(4, "0", "2"),
                rs("new", 0, 0, 0),
                vec![rs("b", 5, 2, 2), rs("a", 10, 2, 2)],
                vec![sc("a", 2, 0)],
            ),
            (
                "new ReplicaSet above the size shrinks to it",
                rolling(3, "1", "1"),
                rs("new", 0, 5, 5),
                vec![],
                vec![sc("new", 5, 3)],
            ),
            ("done: nothing to do", rolling(3, "1", "1"), rs("new", 0, 3, 3), vec![rs("old", 10, 0, 0)], vec![]),
        ];
        for (what, p, new, olds, want) in cases {
            assert_eq!(rolling_step(&p, &new, &olds), want, "{what}");
        }
    }

    /// Drives a whole rolling update, with pods becoming available as soon as they exist,
    /// and checks the invariants at every step.
    #[test]
    fn a_rolling_update_converges_within_its_bounds() {
        for (replicas, surge, unavailable) in [(5, "25%", "25%"), (3, "0", "1"), (4, "1", "0"), (10, "50%", "0")] {
            let p = rolling(replicas, surge, unavailable);
            let mut old = rs("old", 10, replicas, replicas);
            let mut new = rs("new", 0, 0, 0);
            for _ in 0..100 {
                for s in rolling_step(&p, &new, std::slice::from_ref(&old)) {
                    let target = if s.name == "new" { &mut new } else { &mut old };
                    target.replicas = s.to;
                }
                // The ReplicaSet controller catches up: pods exist and become available.
                for r in [&mut old, &mut new] {
                    r.status_replicas = r.replicas;
                    r.available = r.replicas;
                }
                assert!(old.replicas + new.replicas <= p.max_replicas(), "{p:?}");
                assert!(old.available + new.available >= p.min_available(), "{p:?}");
            }
            assert_eq!((old.replicas, new.replicas), (0, replicas), "{p:?}");
        }
    }

    proptest::proptest! {
        /// Whatever the (possibly stale) ReplicaSet status says, a step never grows past
        /// maxSurge counting pods still leaving, and never shrinks available pods below
        /// replicas − maxUnavailable (nor below what is available already).
        #[test]
        fn rolling_steps_stay_within_bounds(
            replicas in 0..40i32, surge in 0..8i32, unavailable in 0..8i32,
            old_replicas in 0..50i32, old_status in 0..50i32, old_available in 0..50i32,
            new_replicas in 0..50i32, new_available in 0..50i32,
        ) {
            proptest::prop_assume!(surge > 0 || unavailable > 0);
            let p = rolling(replicas, &surge.to_string(), &unavailable.to_string());
            let old = RsState { status_replicas: old_status, ..rs("old", 10, old_replicas, old_available) };
            let new = rs("new", 0, new_replicas, new_available.min(new_replicas));
            let steps = rolling_step(&p, &new, std::slice::from_ref(&old));
            let after = |name: &str, before: i32| steps.iter().find(|s| s.name == name).map_or(before, |s| s.to);
            let (old_to, new_to) = (after("old", old.replicas), after("new", new.replicas));
            proptest::prop_assert!(old_to >= 0 && new_to >= 0);
            if new_to > new.replicas {
                proptest::prop_assert!(new_to + old.pods() <= p.max_replicas(), "{steps:?}");
            }
            if old_to < old.replicas {
                let before = old.available_now() + new.available_now();
                let now = old.available.min(old_to) + new.available_now();
                proptest::prop_assert!(now >= p.min_available().min(before), "{steps:?}");
            }
        }

        /// No input makes a planner panic (huge sizes saturate).
        #[test]
        fn planners_never_panic(
            replicas in 0..=i32::MAX, surge in 0..=i32::MAX, unavailable in 0..=i32::MAX,
            sizes in proptest::collection::vec((0..=i32::MAX, 0..=i32::MAX, 0..=i32::MAX, proptest::option::of(0..=i32::MAX)), 0..4),
            paused: bool, recreate: bool, running: bool,
        ) {
            let p = Params {
                replicas, max_surge: surge, max_unavailable: unavailable.min(replicas), paused, recreate,
                ..rolling(1, "1", "1")
            };
            let rses: Vec<RsState> = sizes.iter().enumerate().map(|(i, (r, s, a, m))| RsState {
                status_replicas: *s, max_annotation: *m, desired_annotation: *m,
                ..rs(&format!("rs{i}"), i as i64, *r, *a)
            }).collect();
            if let Some((new, olds)) = rses.split_first() {
                let _ = rolling_step(&p, new, olds);
                let _ = rollout_step(&p, replicas, Some(new), olds, running);
                let _ = proportional_scale(&p, replicas, Some(new), olds);
                let all: Vec<&RsState> = rses.iter().collect();
                let _ = rollout_status(&p, &DeploymentStatus::default(), &all, Some(new), &[], Timestamp::MAX);
            }
            let _ = rollout_step(&p, replicas, None, &rses, running);
            let _ = prune(&p, &rses);
        }
    }

    #[test]
    fn rollout_steps_by_strategy() {
        let p = recreate(3);
        let cases: Vec<(&str, Step)> = vec![
            ("recreate: old scaled to zero first", rollout_step(&p, 3, None, &[rs("old", 10, 3, 3)], true)),
            ("recreate: then waits for old pods", rollout_step(&p, 0, None, &[rs("old", 10, 0, 0)], true)),
            ("recreate: then creates the new one", rollout_step(&p, 0, None, &[rs("old", 10, 0, 0)], false)),
            (
                "rolling: creating the new ReplicaSet at maxSurge",
                rollout_step(&rolling(4, "1", "1"), 4, None, &[rs("old", 10, 4, 4)], false),
            ),
        ];
        let want = [
            Step { scale: vec![sc("old", 3, 0)], ..Step::default() },
            Step::default(),
            Step { create_new: Some(3), prune_if_complete: true, ..Step::default() },
            Step { create_new: Some(1), scale: vec![sc("old", 4, 3)], ..Step::default() },
        ];
        for ((what, got), want) in cases.into_iter().zip(want) {
            assert_eq!(got, want, "{what}");
        }
        // Paused: only sizes move, and old ReplicaSets are pruned.
        let paused = Params { paused: true, ..rolling(6, "1", "1") };
        let step = rollout_step(&paused, 4, Some(&rs("new", 0, 4, 4)), &[], false);
        assert_eq!(step, Step { scale: vec![sc("new", 4, 6)], prune: true, resizing: true, ..Step::default() });
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        let annotated = |r: RsState, desired: i32, max: i32| RsState {
            desired_annotation: Some(desired),
            max_annotation: Some(max),
            ..r
        };
        type Case = (&'static str, Params, Option<RsState>, Vec<RsState>, Vec<Scale>);
        let cases: Vec<Case> = vec![
            (
                // 10 → 15 replicas (maxSurge 3): max-replicas 13 → 18; 5 new and 8 old
                // grow to 7 and 11.
                "scale up mid-rollout",
                rolling(15, "3", "2"),
                Some(annotated(rs("new", 0, 5, 0), 10, 13)),
                vec![annotated(rs("old", 10, 8, 8), 10, 13)],
                vec![sc("old", 8, 11), sc("new", 5, 7)],
            ),
            (
                "scale down mid-rollout",
                rolling(5, "3", "2"),
                Some(annotated(rs("new", 0, 5, 0), 10, 13)),
                vec![annotated(rs("old", 10, 8, 8), 10, 13)],
                vec![sc("old", 8, 5), sc("new", 5, 3)],
            ),
            (
                "one active ReplicaSet takes the whole size",
                rolling(7, "1", "1"),
                Some(annotated(rs("new", 0, 3, 3), 3, 4)),
                vec![rs("old", 10, 0, 0)],
                vec![sc("new", 3, 7)],
            ),
            (
                "nothing active: the newest old ReplicaSet takes it",
                rolling(2, "1", "1"),
                None,
                vec![rs("older", 20, 0, 0), rs("newer", 10, 0, 0)],
                vec![sc("newer", 0, 2)],
            ),
            (
                "a saturated new ReplicaSet: old ones go to zero",
                rolling(3, "1", "1"),
                Some(annotated(rs("new", 0, 3, 3), 3, 4)),
                vec![rs("old", 10, 1, 1)],
                vec![sc("old", 1, 0)],
            ),
            (
                "scale to zero",
                rolling(0, "1", "1"),
                Some(annotated(rs("new", 0, 2, 0), 4, 5)),
                vec![annotated(rs("old", 10, 3, 3), 4, 5)],
                vec![sc("old", 3, 0), sc("new", 2, 0)],
            ),
        ];
        for (what, p, new, olds, want) in cases {
            let got = proportional_scale(&p, 0, new.as_ref(), &olds);
            assert_eq!(got, want, "{what}");
        }
        assert!(is_scaling_event(&rolling(4, "1", "1"), &[&annotated(rs("a", 0, 2, 2), 3, 4)]));
        assert!(!is_scaling_event(&rolling(3, "1", "1"), &[&annotated(rs("a", 0, 2, 2), 3, 4)]));
        assert!(!is_scaling_event(&rolling(4, "1", "1"), &[&annotated(rs("a", 0, 0, 0), 3, 4)]));
    }

    #[test]
    fn revisions_and_annotations() {
        let p = rolling(3, "1", "1");
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let deploy = m(&[(REVISION, "2"), ("kubernetes.io/change-cause", "v2"), (LAST_APPLIED, "{}")]);
        // A ReplicaSet about to be created.
        let created = new_rs_annotations(&p, Some(&deploy), None, 3, false);
        assert_eq!(
            created,
            m(&[(REVISION, "3"), ("kubernetes.io/change-cause", "v2"), (DESIRED_REPLICAS, "3"), (MAX_REPLICAS, "4")])
        );
        // An old ReplicaSet brought back by a rollback keeps its past revisions.
        let old = m(&[(REVISION, "1"), (DESIRED_REPLICAS, "3")]);
        let back = new_rs_annotations(&p, Some(&deploy), Some(&old), 3, true);
        assert_eq!(back.get(REVISION).map(String::as_str), Some("3"));
        assert_eq!(back.get(REVISION_HISTORY).map(String::as_str), Some("1"));
        let again = new_rs_annotations(&p, None, Some(&m(&[(REVISION, "3"), (REVISION_HISTORY, "1")])), 5, true);
        assert_eq!(again.get(REVISION_HISTORY).map(String::as_str), Some("1,3"));
        // Already the newest: unchanged.
        let same = m(&[(REVISION, "4")]);
        assert_eq!(new_rs_annotations(&p, None, Some(&same), 4, true), same);
        assert_eq!(max_revision(&[RsState { revision: 2, ..rs("a", 0, 0, 0) }, rs("b", 0, 0, 0)]), 2);
        assert_eq!(revision(Some(&m(&[(REVISION, "x")]))), 0);
    }

    #[test]
    fn pruning_keeps_the_history_limit_and_busy_replicasets() {
        let p = Params { revision_history_limit: Some(1), ..rolling(3, "1", "1") };
        let old = |name: &str, rev: i64, replicas: i32| RsState { revision: rev, ..rs(name, 10 - rev, replicas, 0) };
        let olds = vec![old("r3", 3, 0), old("r1", 1, 0), old("r2", 2, 1)];
        // r1 and r2 are beyond the limit; r2 still has a pod.
        assert_eq!(prune(&p, &olds), vec!["r1".to_string()]);
        let stale = vec![RsState { observed_generation: 0, ..old("r1", 1, 0) }, old("r2", 2, 0)];
        assert_eq!(prune(&p, &stale), Vec::<String>::new());
        assert_eq!(prune(&Params { revision_history_limit: None, ..p.clone() }, &olds), Vec::<String>::new());
        let zero = Params { revision_history_limit: Some(0), ..p };
        assert_eq!(prune(&zero, &[old("r1", 1, 0), old("r2", 2, 0)]), vec!["r1".to_string(), "r2".to_string()]);
    }

    #[test]
    fn pod_template_hash_is_stable_and_distinct() {
        let template = |image: &str| PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
                ..Default::default()
            }),
        };
        let a = pod_template_hash(&template("nginx:1.16"), None);
        assert_eq!(a, pod_template_hash(&template("nginx:1.16"), None));
        assert_ne!(a, pod_template_hash(&template("nginx:1.17"), None));
        assert_ne!(a, pod_template_hash(&template("nginx:1.16"), Some(1)));
        assert!(a.len() <= 10 && a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{a}");
        // The hash label itself and empty fields change nothing.
        let mut labelled = template("nginx:1.16");
        labelled.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert(HASH_LABEL.into(), a.clone());
        labelled.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
        assert_eq!(pod_template_hash(&labelled, None), a);
        assert!(templates_equal_ignoring_hash(&labelled, &template("nginx:1.16")));
        assert!(!templates_equal_ignoring_hash(&labelled, &template("nginx:1.17")));
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn progress_conditions_follow_the_rollout() {
        let p = Params { progress_deadline_seconds: Some(10), ..rolling(2, "1", "0") };
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |s: i64| t0 + SignedDuration::from_secs(s);
        let mut current = DeploymentStatus {
            replicas: Some(2),
            updated_replicas: Some(2),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            ..Default::default()
        };
        set_condition(&mut current, new_condition(PROGRESSING, "True", NEW_RS_CREATED, "created".into(), t0));
        let new = rs("web-abc", 0, 2, 0);
        let reason = |s: &DeploymentStatus, t: &str| condition(s, t).and_then(|c| c.reason.clone()).unwrap_or_default();

        // No progress, before the deadline: a recheck is scheduled past it.
        let (s, requeue) = rollout_status(&p, &current, &[&new], Some(&new), &[], at(3));
        assert_eq!(reason(&s, PROGRESSING), NEW_RS_CREATED);
        assert_eq!(reason(&s, AVAILABLE), MIN_UNAVAILABLE);
        assert_eq!(requeue, Some(Duration::from_secs(8)));

        // A pod became ready: progress.
        let ready = RsState { ready: 1, ..new.clone() };
        let (s, _) = rollout_status(&p, &current, &[&ready], Some(&ready), &[], at(4));
        assert_eq!(reason(&s, PROGRESSING), RS_UPDATED);

        // Past the deadline without progress.
        let (s, _) = rollout_status(&p, &current, &[&new], Some(&new), &[], at(11));
        let c = condition(&s, PROGRESSING).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_deref()), ("False", Some(TIMED_OUT)));
        assert_eq!(c.message.as_deref(), Some("ReplicaSet \"web-abc\" has timed out progressing."));

        // Complete.
        let done = RsState { ready: 2, available: 2, ..new.clone() };
        let (s, requeue) = rollout_status(&p, &current, &[&done], Some(&done), &[], at(5));
        assert_eq!(reason(&s, PROGRESSING), NEW_RS_AVAILABLE);
        assert_eq!(reason(&s, AVAILABLE), MIN_AVAILABLE);
        assert_eq!(requeue, None);
        assert_eq!(
            (s.replicas, s.updated_replicas, s.ready_replicas, s.available_replicas, s.unavailable_replicas),
            (Some(2), Some(2), Some(2), Some(2), None)
        );

        // Pausing and resuming replace Progressing with Unknown conditions.
        let paused = Params { paused: true, ..p.clone() };
        let s = paused_condition(&paused, &current, at(1)).unwrap();
        assert_eq!(
            (condition(&s, PROGRESSING).unwrap().status.as_str(), reason(&s, PROGRESSING)),
            ("Unknown", PAUSED.into())
        );
        assert_eq!(paused_condition(&paused, &s, at(2)), None);
        assert_eq!(reason(&paused_condition(&p, &s, at(3)).unwrap(), PROGRESSING), RESUMED);
    }

    #[test]
    fn recreate_waits_for_every_old_pod() {
        use k8s_openapi::api::core::v1::PodStatus;
        let pod = |owner: &str, phase: &str| Pod {
            metadata: ObjectMeta {
                owner_references: Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    uid: owner.into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            status: Some(PodStatus { phase: Some(phase.into()), ..Default::default() }),
            ..Default::default()
        };
        let olds = [rs("old", 10, 0, 0)];
        let (running, done, new_pod) =
            (pod("uid-old", "Running"), pod("uid-old", "Succeeded"), pod("uid-new", "Running"));
        assert!(old_pods_running(Some("uid-new"), &olds, &[&running]));
        assert!(!old_pods_running(Some("uid-new"), &olds, &[&done, &new_pod]));
        assert!(old_pods_running(None, &[RsState { status_replicas: 1, ..rs("old", 10, 0, 0) }], &[]));
    }
}
