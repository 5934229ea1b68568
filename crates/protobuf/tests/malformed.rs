//! Request bodies come from clients, so no input may panic or exhaust the stack: a
//! damaged body must decode to something or be an error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pb"))
        .map(|p| (p.file_name().unwrap_or_default().to_string_lossy().into_owned(), std::fs::read(&p).expect("read")))
        .collect();
    out.sort();
    assert!(out.len() > 10, "fixtures missing");
    out
}

/// Decodes `body`, reporting a panic as a failure that names the input.
fn must_not_panic(what: &str, body: &[u8], failures: &mut Vec<String>) {
    if catch_unwind(AssertUnwindSafe(|| rkube_protobuf::decode(body))).is_err() {
        failures.push(what.to_string());
    }
}

#[test]
fn truncated_bodies_do_not_panic() {
    let mut failures = Vec::new();
    for (name, body) in fixtures() {
        for len in 0..body.len() {
            must_not_panic(&format!("{name}[..{len}]"), &body[..len], &mut failures);
        }
    }
    assert!(failures.is_empty(), "panicked on {failures:?}");
}

#[test]
fn corrupted_bodies_do_not_panic() {
    let mut failures = Vec::new();
    for (name, body) in fixtures() {
        for i in 0..body.len() {
            // Flipped bits, a continuation bit that makes a varint run on, an
            // oversized length and a zero byte reach every decoding path.
            for byte in [body[i] ^ 0xff, body[i] ^ 0x01, 0x80, 0x7f, 0x00] {
                let mut damaged = body.clone();
                damaged[i] = byte;
                must_not_panic(&format!("{name}[{i}] = {byte:#04x}"), &damaged, &mut failures);
            }
        }
    }
    assert!(failures.is_empty(), "panicked on {failures:?}");
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(number: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(number << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// A `v1` `List` whose one item is `inner`: a `RawExtension` may hold another
/// protobuf body.
fn list_around(inner: &[u8]) -> Vec<u8> {
    let mut raw_extension = Vec::new();
    bytes_field(1, inner, &mut raw_extension);
    let mut list = Vec::new();
    bytes_field(2, &raw_extension, &mut list);
    let mut type_meta = Vec::new();
    bytes_field(1, b"v1", &mut type_meta);
    bytes_field(2, b"List", &mut type_meta);
    let mut body = rkube_protobuf::MAGIC.to_vec();
    bytes_field(1, &type_meta, &mut body);
    bytes_field(2, &list, &mut body);
    body
}

#[test]
fn nested_bodies_are_depth_limited() {
    let mut body = list_around(b"{}");
    let shallow = rkube_protobuf::decode(&list_around(&body)).expect("two levels decode");
    assert_eq!(shallow["items"][0]["items"][0], serde_json::json!({}));
    for _ in 0..5_000 {
        body = list_around(&body);
    }
    let err = rkube_protobuf::decode(&body).expect_err("5000 levels");
    assert!(err.to_string().contains("nested deeper than"), "{err}");
}

#[test]
fn deeply_nested_messages_are_depth_limited() {
    // `JSONSchemaProps.not` (field 28) is a `JSONSchemaProps`, so a run of nested
    // field-28 messages recurses as deep as the body is long.
    let mut props = Vec::new();
    for _ in 0..5_000 {
        let mut outer = Vec::new();
        bytes_field(28, &props, &mut outer);
        props = outer;
    }
    let mut validation = Vec::new();
    bytes_field(1, &props, &mut validation);
    let mut version = Vec::new();
    bytes_field(1, b"v1", &mut version);
    bytes_field(4, &validation, &mut version);
    let mut spec = Vec::new();
    bytes_field(7, &version, &mut spec);
    let mut crd = Vec::new();
    bytes_field(2, &spec, &mut crd);
    let mut type_meta = Vec::new();
    bytes_field(1, b"apiextensions.k8s.io/v1", &mut type_meta);
    bytes_field(2, b"CustomResourceDefinition", &mut type_meta);
    let mut body = rkube_protobuf::MAGIC.to_vec();
    bytes_field(1, &type_meta, &mut body);
    bytes_field(2, &crd, &mut body);
    let err = rkube_protobuf::decode(&body).expect_err("5000 levels");
    assert!(err.to_string().contains("nested deeper than"), "{err}");
}
