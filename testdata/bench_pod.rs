//! The pod the benchmarks work on, shared by them through `#[path]`: a pod as
//! `cargo xtask bench-scheduler` creates it, after the API server's defaulting
//! (`bench-pod.json`), numbered.

use serde_json::{Value, json};

/// Pod `i`: its own name, and one of 2,000 groups as a label.
pub fn pod(i: usize) -> Value {
    let mut p: Value = serde_json::from_str(include_str!("bench-pod.json")).expect("the fixture parses");
    p["metadata"]["name"] = json!(format!("basic-{i}"));
    p["metadata"]["labels"]["group"] = json!(format!("g{}", i % 2000));
    p
}
