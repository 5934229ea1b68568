//! What finding a pod's unknown fields costs (every create and update does it): one
//! decode through the tracking deserializer (`rkube_registry::tracked`) against the way
//! it was done before, the baseline in the same process: decode into the typed struct,
//! encode that back into a JSON tree, and compare the two trees key by key.
//!
//! `cargo bench -p rkube-registry --bench unknown_fields`

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use serde_json::{Value, json};

// The allocator the server runs with; allocation is much of what is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../../testdata/bench_pod.rs"]
mod bench_pod;

const ROUNDS: usize = 31;
const PER_ROUND: usize = 2_000;

/// The baseline: typed round trip, then the keys of `input` missing from the output.
fn by_round_trip(input: &Value) -> Vec<String> {
    let output = serde_json::to_value(Pod::deserialize(input).expect("decodes")).expect("encodes");
    let mut found = Vec::new();
    walk(input, &output, &mut String::new(), &mut found);
    found
}

fn walk(input: &Value, output: &Value, path: &mut String, found: &mut Vec<String>) {
    let len = path.len();
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, av) in a {
                if av.is_null() {
                    continue;
                }
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match b.get(k) {
                    Some(bv) => walk(av, bv, path, found),
                    None => found.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                use std::fmt::Write;
                let _ = write!(path, "[{i}]");
                walk(av, bv, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut pods: Vec<Value> = (0..PER_ROUND).map(bench_pod::pod).collect();
    // One in ten has a mistake in it, so both ways have something to report.
    for p in pods.iter_mut().step_by(10) {
        p["spec"]["containers"][0]["imagee"] = json!("x");
    }
    for p in &pods {
        assert_eq!(rkube_registry::tracked::unknown_fields::<Pod>(p).unwrap(), by_round_trip(p), "same answer");
    }
    let (mut base, mut new) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for p in &pods {
            std::hint::black_box(by_round_trip(p));
        }
        base.push(start.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        let start = Instant::now();
        for p in &pods {
            std::hint::black_box(rkube_registry::tracked::unknown_fields::<Pod>(p).ok());
        }
        new.push(start.elapsed().as_nanos() as f64 / PER_ROUND as f64);
    }
    let (base, new) = (median(base), median(new));
    println!("unknown fields of a created pod, median of {ROUNDS} rounds of {PER_ROUND}:");
    println!("  decode, encode back, compare (baseline) {:8.2} µs", base / 1000.0);
    println!("  one tracked decode                      {:8.2} µs", new / 1000.0);
    println!("  speed-up                                {:8.2}x", base / new);
}
