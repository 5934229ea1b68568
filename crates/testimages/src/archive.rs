//! The docker-archive form (`docker save`): `manifest.json`, the config blob and one
//! uncompressed `layer.tar` per layer.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::layer::{Layer, Tree, sha256_hex};

/// What goes into an image's config besides its layers.
#[derive(Debug, Clone, Default)]
pub(crate) struct ImageSpec {
    pub(crate) tags: Vec<String>,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) exposed_ports: Vec<String>,
}

/// The PATH every image's config sets.
pub(crate) const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The image config JSON (deterministic: key order is insertion order, `created` is the epoch).
pub(crate) fn config_json(spec: &ImageSpec, layers: &[Arc<Layer>]) -> Vec<u8> {
    let mut config = serde_json::Map::new();
    config.insert("Env".into(), json!([PATH_ENV]));
    if let Some(entrypoint) = &spec.entrypoint {
        config.insert("Entrypoint".into(), json!(entrypoint));
    }
    if let Some(cmd) = &spec.cmd {
        config.insert("Cmd".into(), json!(cmd));
    }
    if !spec.exposed_ports.is_empty() {
        let ports: serde_json::Map<String, Value> = spec.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect();
        config.insert("ExposedPorts".into(), Value::Object(ports));
    }
    config.insert("WorkingDir".into(), json!("/"));
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id()).collect();
    let doc = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// The whole archive's bytes and the config digest (the image ID, `sha256:<hex>`).
pub(crate) fn archive_bytes(spec: &ImageSpec, layers: &[Arc<Layer>]) -> std::io::Result<(Vec<u8>, String)> {
    let config = config_json(spec, layers);
    let config_hex = sha256_hex(&config);
    let manifest = json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": spec.tags,
        "Layers": layers.iter().map(|l| format!("{}/layer.tar", l.hex)).collect::<Vec<_>>(),
    }]);
    let mut tree = Tree::default();
    tree.file(&format!("{config_hex}.json"), 0o644, config);
    for layer in layers {
        tree.file(&format!("{}/layer.tar", layer.hex), 0o644, Arc::clone(&layer.tar));
    }
    tree.file("manifest.json", 0o644, serde_json::to_vec(&manifest).unwrap_or_default());
    let bytes = tree.write_tar(Vec::new())?;
    Ok((bytes, format!("sha256:{config_hex}")))
}
