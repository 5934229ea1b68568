//! What recording a create's managed fields costs, on a pod as the API server stores
//! it, with the served OpenAPI schema: the direct `fieldsV1` encoding creates use, and
//! the same through the memo of shapes the server keeps (pods of one template share a
//! shape), against the general comparison updates use (the baseline, same process, same
//! pods).
//!
//! `cargo bench -p rkube-apiserver --bench managed_fields`

use std::time::{Duration, Instant};

use rkube_patch::Schema;
use rkube_patch::apply::{CreatedFieldsMemo, record_update};
use serde_json::{Value, json};

// The allocator the server runs with; allocation is much of what is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../../testdata/bench_pod.rs"]
mod bench_pod;

const POD: &str = "io.k8s.api.core.v1.Pod";
const ROUNDS: usize = 15;
const PER_ROUND: usize = 2_000;

/// Median nanoseconds per call of `record` over the rounds.
fn measure(pods: &[Value], record: impl Fn(&mut Value)) -> f64 {
    let mut per_call: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let mut batch: Vec<Value> = pods.to_vec();
            let start = Instant::now();
            for p in &mut batch {
                record(p);
            }
            let took: Duration = start.elapsed();
            took.as_nanos() as f64 / batch.len() as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[per_call.len() / 2]
}

fn main() {
    let openapi = rkube_openapi::OpenApi::build();
    let schema = Schema::new(openapi.schemas());
    let now = "2026-12-07T10:00:00Z";
    let pods: Vec<Value> = (0..PER_ROUND).map(bench_pod::pod).collect();

    let mut fast = pods[0].clone();
    record_update(None, &mut fast, "bench", None, &schema, POD, now);
    let mut general = pods[0].clone();
    record_update(Some(&json!({})), &mut general, "bench", None, &schema, POD, now);
    assert_eq!(fast, general, "the two paths must record the same managed fields");
    let memo = CreatedFieldsMemo::new();
    let remembering = schema.remembering_creates(&memo);
    let mut through_memo = pods[0].clone();
    record_update(None, &mut through_memo, "bench", None, &remembering, POD, now);
    assert_eq!(fast, through_memo, "the memo must record the same managed fields");

    // Interleaved, so drift on a shared machine hits both alike.
    // The memo's worst case: every pod a shape never seen before (a list item differs;
    // both measurements pay for renaming it), so it misses every time.
    let counter = std::cell::Cell::new(0u64);
    let one_off = |p: &mut Value| {
        counter.set(counter.get() + 1);
        p["spec"]["containers"][0]["name"] = json!(format!("c{}", counter.get()));
    };
    let (mut fast_ns, mut general_ns, mut memo_ns) = (Vec::new(), Vec::new(), Vec::new());
    let (mut fast_miss_ns, mut memo_miss_ns) = (Vec::new(), Vec::new());
    // More shapes in turn than the memo keeps (2,000 pods of distinct shapes, over and
    // over, as the scheduler benchmark's anti-affinity groups): shapes come back, but
    // only after the memo was emptied.
    let cycling: Vec<Value> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut p = p.clone();
            p["spec"]["containers"][0]["name"] = json!(format!("c{i}"));
            p
        })
        .collect();
    let (mut fast_cycle_ns, mut memo_cycle_ns) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        general_ns.push(measure(&pods, |p| record_update(Some(&json!({})), p, "bench", None, &schema, POD, now)));
        fast_ns.push(measure(&pods, |p| record_update(None, p, "bench", None, &schema, POD, now)));
        memo_ns.push(measure(&pods, |p| record_update(None, p, "bench", None, &remembering, POD, now)));
        fast_miss_ns.push(measure(&pods, |p| {
            one_off(p);
            record_update(None, p, "bench", None, &schema, POD, now)
        }));
        memo_miss_ns.push(measure(&pods, |p| {
            one_off(p);
            record_update(None, p, "bench", None, &remembering, POD, now)
        }));
        fast_cycle_ns.push(measure(&cycling, |p| record_update(None, p, "bench", None, &schema, POD, now)));
        memo_cycle_ns.push(measure(&cycling, |p| record_update(None, p, "bench", None, &remembering, POD, now)));
    }
    for ns in [
        &mut fast_ns,
        &mut general_ns,
        &mut memo_ns,
        &mut fast_miss_ns,
        &mut memo_miss_ns,
        &mut fast_cycle_ns,
        &mut memo_cycle_ns,
    ] {
        ns.sort_by(f64::total_cmp);
    }
    let (f, g, m) = (fast_ns[1], general_ns[1], memo_ns[1]);
    let (fm, mm) = (fast_miss_ns[1], memo_miss_ns[1]);
    let (fc, mc) = (fast_cycle_ns[1], memo_cycle_ns[1]);
    println!(
        "managed fields of a created pod (fieldsV1 of {} bytes; median of {} rounds of {PER_ROUND}):",
        fast["metadata"]["managedFields"][0]["fieldsV1"].to_string().len(),
        3 * ROUNDS
    );
    println!("  general comparison (baseline): {:>8.1} µs/pod", g / 1000.0);
    println!("  direct fieldsV1 encoding:      {:>8.1} µs/pod", f / 1000.0);
    println!("  ratio:                         {:>8.2}x faster", g / f);
    println!("  direct, shape remembered:      {:>8.1} µs/pod", m / 1000.0);
    println!("  ratio to direct:               {:>8.2}x faster", f / m);
    println!("every pod a shape never seen before (the memo misses):");
    println!("  direct fieldsV1 encoding:      {:>8.1} µs/pod", fm / 1000.0);
    println!("  direct, through the memo:      {:>8.1} µs/pod", mm / 1000.0);
    println!("  memo overhead on a miss:       {:>8.1} µs/pod", (mm - fm) / 1000.0);
    println!("{} shapes in turn, more than the memo keeps:", cycling.len());
    println!("  direct fieldsV1 encoding:      {:>8.1} µs/pod", fc / 1000.0);
    println!("  direct, through the memo:      {:>8.1} µs/pod", mc / 1000.0);
}
