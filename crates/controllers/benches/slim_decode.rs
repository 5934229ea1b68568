//! What decoding a pod watch event costs the scheduler and the shared pod informer:
//! into `Slim<Pod>` (managed fields skipped while decoding) against `Pod` (the
//! baseline: everything decoded, managed fields dropped afterwards), in the same
//! process, on the same lines, interleaved.
//!
//! The line is a bound pod as the API server sends it: defaulted as a create leaves it,
//! with the managed fields the server records for its creator and the kube-api-access
//! volume its admission adds. `Slim<Pod>` leaves out the volumes too; the row before it
//! leaves out only the managed fields (what `Slim<Pod>` did before).
//!
//! Then the same line as the garbage collector's metadata-only watch gets it
//! (`PartialObjectMetadata`): `Slim<PartialObjectMeta<_>>` against `PartialObjectMeta<_>`.
//!
//! `cargo bench -p rkube-controllers --bench slim_decode`

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::api::DynamicObject;
use kube::core::{PartialObjectMeta, WatchEvent};
use rkube_controllers::slim::{Leaves, MANAGED_FIELDS, Slim};
use rkube_patch::Schema;
use rkube_patch::apply::record_update;
use serde_json::json;

// The allocator the server runs with; allocation is much of what is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../../testdata/bench_pod.rs"]
mod bench_pod;

const ROUNDS: usize = 31;
const PER_ROUND: usize = 2_000;

/// The watch line of pod `i` once bound: managed fields of its creator, then the
/// scheduler's node and condition.
fn line(i: usize, schema: &Schema) -> String {
    let mut p = bench_pod::pod(i);
    record_update(None, &mut p, "bench", None, schema, "io.k8s.api.core.v1.Pod", "2026-12-07T10:00:00Z");
    p["metadata"]["resourceVersion"] = json!((1000 + i).to_string());
    p["spec"]["nodeName"] = json!(format!("node-{}", i % 5000));
    p["status"]["conditions"] =
        json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-07T10:00:01Z"}]);
    // As `admission::mount_service_account_token` adds it.
    p["spec"]["volumes"] = json!([{"name": format!("kube-api-access-{:05}", i % 100_000), "projected": {
        "defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}]);
    serde_json::to_string(&json!({"type": "MODIFIED", "object": p})).expect("a pod encodes")
}

/// A pod decoded without its managed fields only.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct KeepingVolumes(#[allow(dead_code)] Pod);

impl Leaves for KeepingVolumes {
    const LEFT_OUT: &'static [&'static [&'static str]] = MANAGED_FIELDS;
}

/// Nanoseconds per decode, for one round over every line.
fn round<K: serde::de::DeserializeOwned>(lines: &[String]) -> f64 {
    let start = Instant::now();
    for l in lines {
        let ev: WatchEvent<K> = serde_json::from_str(l).expect("the line decodes");
        std::hint::black_box(ev);
    }
    start.elapsed().as_nanos() as f64 / lines.len() as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let openapi = rkube_openapi::OpenApi::build();
    let schema = Schema::new(openapi.schemas());
    let lines: Vec<String> = (0..PER_ROUND).map(|i| line(i, &schema)).collect();

    // Same result but for the managed fields, or the comparison means nothing.
    let full: WatchEvent<Pod> = serde_json::from_str(&lines[0]).expect("decodes");
    let slim: WatchEvent<Slim<Pod>> = serde_json::from_str(&lines[0]).expect("decodes");
    let (WatchEvent::Modified(mut full), WatchEvent::Modified(Slim(slim))) = (full, slim) else {
        panic!("both are MODIFIED events")
    };
    assert!(full.metadata.managed_fields.is_some());
    full.metadata.managed_fields = None;
    assert!(full.spec.as_ref().and_then(|s| s.volumes.as_ref()).is_some());
    full.spec.as_mut().expect("a spec").volumes = None;
    assert_eq!(full, slim);

    let (mut base, mut managed_only, mut new) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        base.push(round::<Pod>(&lines));
        managed_only.push(round::<Slim<KeepingVolumes>>(&lines));
        new.push(round::<Slim<Pod>>(&lines));
    }
    let (base, managed_only, new) = (median(base), median(managed_only), median(new));
    let bytes = lines.iter().map(String::len).sum::<usize>() / lines.len();
    println!("pod watch event ({bytes} bytes), median of {ROUNDS} rounds of {PER_ROUND}:");
    println!("  decode as Pod (baseline)   {:8.2} µs", base / 1000.0);
    println!("  without managed fields     {:8.2} µs  ({:.2}x)", managed_only / 1000.0, base / managed_only);
    println!("  as Slim<Pod> (and volumes) {:8.2} µs  ({:.2}x)", new / 1000.0, base / new);

    // The metadata-only line of the same pod.
    let meta_lines: Vec<String> = lines
        .iter()
        .map(|l| {
            let ev: serde_json::Value = serde_json::from_str(l).expect("decodes");
            let object = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                "metadata": ev["object"]["metadata"]});
            serde_json::to_string(&json!({"type": "MODIFIED", "object": object})).expect("encodes")
        })
        .collect();
    let (mut base, mut new) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        base.push(round::<PartialObjectMeta<DynamicObject>>(&meta_lines));
        new.push(round::<Slim<PartialObjectMeta<DynamicObject>>>(&meta_lines));
    }
    let (base, new) = (median(base), median(new));
    let bytes = meta_lines.iter().map(String::len).sum::<usize>() / meta_lines.len();
    println!("its metadata-only watch event ({bytes} bytes), as the garbage collector decodes it:");
    println!("  as PartialObjectMeta       {:8.2} µs", base / 1000.0);
    println!("  as Slim<PartialObjectMeta> {:8.2} µs", new / 1000.0);
    println!("  speed-up                   {:8.2}x", base / new);
}
