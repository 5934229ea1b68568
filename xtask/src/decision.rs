//! The baseline of `bench-scheduler`: rkube-scheduler's decision alone, in process,
//! on the same nodes and pods the end-to-end phases send through the API.
//!
//! Two loops, each over the basic pods and then the anti-affinity pods on top of them
//! (the end-to-end order, so the second sees the first's pods bound):
//! - `schedule()` alone, as the scheduler's loop calls it: `warm` (the affinity
//!   counts), [`rkube_scheduler::schedule`], `advance`, `assume`;
//! - all the in-process work the scheduler does per pod short of I/O: decode the
//!   pending pod's JSON and the bound pod's JSON (the two watch events it sees), build
//!   both `PodInfo`s, the decision as above, and the watch's confirmation (`upsert_pod`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use rkube_scheduler::Snapshot;
use rkube_scheduler::node_info::NodeSpec;
use rkube_scheduler::pod_info::PodInfo;

use crate::sim::{self, PodKind};
use crate::stats::median;

/// Pods per second of one kind, median over the repetitions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    pub per_second: f64,
    /// Mean time per pod.
    pub per_pod: Duration,
}

impl Rate {
    fn of(samples: &[f64]) -> Rate {
        let per_second = median(samples);
        Rate { per_second, per_pod: Duration::from_secs_f64(1.0 / per_second.max(f64::MIN_POSITIVE)) }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Decisions {
    pub basic: Rate,
    pub anti: Rate,
    /// With JSON decoding, `PodInfo` building and the watch confirmation.
    pub basic_full: Rate,
    pub anti_full: Rate,
    /// Nodes the filter looked at per pod, on average (sampling).
    pub evaluated_basic: f64,
    pub evaluated_anti: f64,
}

/// Runs both loops `rounds` times on `nodes` nodes with `pods` pods of each kind.
pub fn measure(nodes: usize, pods: usize, groups: usize, rounds: usize) -> Result<Decisions> {
    let now = Timestamp::now();
    let node_specs: Vec<NodeSpec> = (0..nodes).map(|i| NodeSpec::from_node(&sim::node(i, now))).collect();
    let anti = PodKind::AntiAffinity { groups };
    let objects = |kind: PodKind| -> Vec<Pod> { (0..pods).map(|i| sim::admitted(sim::pod(kind, i), i)).collect() };
    let (basic_pods, anti_pods) = (objects(PodKind::Basic), objects(anti));
    let fresh = || {
        let mut snap = Snapshot::new();
        for spec in &node_specs {
            snap.upsert_node(spec.clone());
        }
        snap
    };
    let mut out = Decisions::default();
    let (mut b, mut a, mut bf, mut af) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let infos = |pods: &[Pod]| -> Vec<PodInfo> { pods.iter().map(PodInfo::from_pod).collect() };
        let (basic_infos, anti_infos) = (infos(&basic_pods), infos(&anti_pods));
        let mut snap = fresh();
        let (rate, evaluated) = decide(&mut snap, &basic_infos)?;
        b.push(rate);
        out.evaluated_basic = evaluated;
        let (rate, evaluated) = decide(&mut snap, &anti_infos)?;
        a.push(rate);
        out.evaluated_anti = evaluated;

        let mut snap = fresh();
        bf.push(full(&mut snap, &basic_pods)?);
        af.push(full(&mut snap, &anti_pods)?);
    }
    out.basic = Rate::of(&b);
    out.anti = Rate::of(&a);
    out.basic_full = Rate::of(&bf);
    out.anti_full = Rate::of(&af);
    Ok(out)
}

/// The decision loop alone; pods/s and the mean number of nodes evaluated.
fn decide(snap: &mut Snapshot, pods: &[PodInfo]) -> Result<(f64, f64)> {
    let mut evaluated = 0usize;
    let t = Instant::now();
    for pod in pods {
        snap.warm(pod);
        let p = rkube_scheduler::schedule(pod, snap).map_err(|e| anyhow!("{}: {e}", pod.name))?;
        evaluated += p.evaluated;
        snap.advance(p.evaluated);
        snap.assume(pod, &p.node);
    }
    let el = t.elapsed();
    Ok((pods.len() as f64 / el.as_secs_f64(), evaluated as f64 / pods.len().max(1) as f64))
}

/// Everything in process per pod: decode both watch events, build both `PodInfo`s,
/// decide, assume, confirm.
fn full(snap: &mut Snapshot, pods: &[Pod]) -> Result<f64> {
    // The bound copy's node is unknown until the decision; any node gives the same
    // JSON size, and the confirmation below uses the decided node.
    let pending: Vec<Vec<u8>> = pods.iter().map(serde_json::to_vec).collect::<Result<_, _>>()?;
    let bound: Vec<Vec<u8>> = pods
        .iter()
        .map(|p| serde_json::to_vec(&sim::bound(p.clone(), &sim::node_name(0))))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for (pending, bound) in pending.iter().zip(&bound) {
        let pod: Pod = serde_json::from_slice(pending)?;
        let info = PodInfo::from_pod(&pod);
        snap.warm(&info);
        let p = rkube_scheduler::schedule(&info, snap).map_err(|e| anyhow!("{}: {e}", info.name))?;
        snap.advance(p.evaluated);
        snap.assume(&info, &p.node);
        let seen: Pod = serde_json::from_slice(bound)?;
        let mut seen = PodInfo::from_pod(&seen);
        seen.node_name = p.node;
        snap.upsert_pod(Arc::new(seen));
    }
    Ok(pods.len() as f64 / t.elapsed().as_secs_f64())
}
