//! What a written pod's watch encoding costs: made from the bytes the write stored,
//! with its resourceVersion added (`cache::StoredBytes`), against encoding the cached
//! object again (the baseline), in the same process, on the same pods, interleaved.
//! Then the same for a metadata-only watch (`PartialObjectMetadata`, as the garbage
//! collector and metadata informers watch): its metadata copied from the stored bytes,
//! against encoding the cached metadata.
//!
//! `cargo bench -p rkube-apiserver --bench watch_encode`

use std::time::Instant;

use rkube_apiserver::cache::{StoredBytes, encode_stored};
use rkube_apiserver::table::PartialMetadata;
use rkube_patch::Schema;
use rkube_patch::apply::record_update;
use serde_json::{Value, json};

// The allocator the server runs with; allocation is much of what is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../../testdata/bench_pod.rs"]
mod bench_pod;

const ROUNDS: usize = 31;
const PER_ROUND: usize = 2_000;

/// Pod `i` as a create stores it: defaulted, with its creator's managed fields.
fn stored_pod(i: usize, schema: &Schema) -> Value {
    let mut p = bench_pod::pod(i);
    record_update(None, &mut p, "bench", None, schema, "io.k8s.api.core.v1.Pod", "2026-12-07T10:00:00Z");
    p
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let openapi = rkube_openapi::OpenApi::build();
    let schema = Schema::new(openapi.schemas());
    let revision = 123_456;
    // What the cache holds (resourceVersion stamped last in the metadata) and what the
    // write stored.
    let mut cached = Vec::new();
    let mut stored = Vec::new();
    for i in 0..PER_ROUND {
        let p = stored_pod(i, &schema);
        let (bytes, span) = encode_stored(&p).expect("a pod encodes");
        let mut c = p;
        c["metadata"]["resourceVersion"] = json!(revision.to_string());
        stored.push(StoredBytes::new(bytes, span.expect("the pod has metadata")));
        cached.push(c);
    }
    let metadata_of = |s: &StoredBytes| {
        let mut out = String::new();
        s.push_metadata(&mut out, revision).map(|()| out)
    };
    for (c, s) in cached.iter().zip(&stored) {
        assert_eq!(s.with_resource_version(revision), Some(serde_json::to_string(c).unwrap()), "same encoding");
        assert_eq!(metadata_of(s), Some(serde_json::to_string(&c["metadata"]).unwrap()), "same metadata");
    }

    let (mut base, mut new) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for c in &cached {
            std::hint::black_box(serde_json::to_string(c).ok());
        }
        base.push(start.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        let start = Instant::now();
        for s in &stored {
            std::hint::black_box(s.with_resource_version(revision));
        }
        new.push(start.elapsed().as_nanos() as f64 / PER_ROUND as f64);
    }
    let (base, new) = (median(base), median(new));
    let bytes = cached.iter().map(|c| c.to_string().len()).sum::<usize>() / PER_ROUND;
    println!("watch encoding of a written pod ({bytes} bytes), median of {ROUNDS} rounds of {PER_ROUND}:");
    println!("  encode the cached object (baseline)    {:8.2} µs", base / 1000.0);
    println!("  stored bytes + resourceVersion         {:8.2} µs", new / 1000.0);
    println!("  speed-up                               {:8.2}x", base / new);

    let (mut base, mut new) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for c in &cached {
            std::hint::black_box(serde_json::to_string(&PartialMetadata::of(c)).ok());
        }
        base.push(start.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        let start = Instant::now();
        for s in &stored {
            std::hint::black_box(metadata_of(s));
        }
        new.push(start.elapsed().as_nanos() as f64 / PER_ROUND as f64);
    }
    let (base, new) = (median(base), median(new));
    println!("its metadata-only (PartialObjectMetadata) encoding:");
    println!("  encode the cached metadata (baseline)  {:8.2} µs", base / 1000.0);
    println!("  metadata copied from the stored bytes  {:8.2} µs", new / 1000.0);
    println!("  speed-up                               {:8.2}x", base / new);
}
