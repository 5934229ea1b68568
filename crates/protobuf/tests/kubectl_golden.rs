//! Golden tests against real kubectl traffic: each `fixtures/<name>.pb` is the protobuf
//! body kubectl 1.32 sent for a command, `fixtures/<name>.json` the JSON body kubectl
//! 1.31 sent for the same command. Decoding the first must give the second.
//! `fixtures/capture.sh` recorded them.

use std::path::PathBuf;

use serde_json::Value;

const FIXTURES: &[&str] = &[
    "configmap",
    "configmap-bin",
    "secret",
    "secret-tls-docker",
    "deployment",
    "deployment-zero",
    "service",
    "service-np",
    "job",
    "cronjob",
    "rolebinding",
    "clusterrole",
    "clusterrolebinding",
    "namespace",
    "serviceaccount",
    "quota",
    "priorityclass",
    "pdb",
    "ingress",
    "token",
    "cani",
    "canilist",
    "whoami",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Go writes `null` for a nil pointer or slice without `omitempty`; decoding treats
/// `null` and absent alike, and protobuf cannot carry the difference.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[test]
fn protobuf_bodies_decode_to_the_json_kubectl_sends() {
    let mut failures = Vec::new();
    for name in FIXTURES {
        let got = rkube_protobuf::decode(&fixture(&format!("{name}.pb")));
        let want: Value = serde_json::from_slice(&fixture(&format!("{name}.json"))).expect("fixture json");
        match got {
            Err(e) => failures.push(format!("{name}: {e}")),
            Ok(mut got) => {
                let mut want = want;
                drop_nulls(&mut got);
                drop_nulls(&mut want);
                if got != want {
                    failures.push(format!("{name}:\n  got  {got}\n  want {want}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Apart from `null`s for nil slices and pointers, the output is byte-for-byte what
/// kubectl 1.31 sends, field order included.
#[test]
fn configmap_and_deployment_match_byte_for_byte() {
    for name in ["configmap", "secret", "deployment", "service-np", "cani", "namespace"] {
        let got = rkube_protobuf::decode(&fixture(&format!("{name}.pb"))).expect(name);
        let want = String::from_utf8(fixture(&format!("{name}.json"))).expect("utf-8");
        assert_eq!(serde_json::to_string(&got).expect("json"), want.trim_end(), "{name}");
    }
}
