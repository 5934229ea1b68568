//! Static pods: every manifest in `<data-dir>/agent/pod-manifests/` is a pod this node
//! runs without anyone creating it through the API. As upstream, the agent publishes a
//! mirror pod for each (`<name>-<node>`, annotated `kubernetes.io/config.mirror`, owned
//! by the Node) so `kubectl get pods` shows it; here the mirror pod is also what the pod
//! workers run, so a static pod runs while the API is reachable. Editing a manifest
//! replaces the pod; removing it deletes the pod.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use sha2::Digest;
use tokio::sync::watch;

use crate::Config;

pub const MIRROR: &str = "kubernetes.io/config.mirror";
pub const HASH: &str = "kubernetes.io/config.hash";
pub const SOURCE: &str = "kubernetes.io/config.source";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("static pod manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
}

/// A manifest read from disk: the pod it describes and the hash of its bytes.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: PathBuf,
    pub pod: Pod,
    pub hash: String,
}

/// Parses one manifest file (YAML or JSON, one Pod).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Manifest, Error> {
    let err = |message: String| Error::Manifest { path: path.to_path_buf(), message };
    let text = std::str::from_utf8(bytes).map_err(|e| err(e.to_string()))?;
    let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| err(e.to_string()))?;
    if value["kind"] != "Pod" {
        return Err(err(format!("kind {} is not Pod", value["kind"])));
    }
    let pod: Pod = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
    if pod.metadata.name.as_deref().is_none_or(str::is_empty) {
        return Err(err("metadata.name is missing".into()));
    }
    let hash = hex::encode(&sha2::Sha256::digest(bytes)[..8]);
    Ok(Manifest { path: path.to_path_buf(), pod, hash })
}

/// The mirror pod of `m` on node `node` (whose uid owns it).
pub fn mirror(m: &Manifest, node: &str, node_uid: &str) -> Pod {
    let mut pod = m.pod.clone();
    let meta = &mut pod.metadata;
    meta.name = Some(format!("{}-{node}", m.pod.name_any()));
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some("default".into());
    }
    meta.uid = None;
    meta.resource_version = None;
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(MIRROR.into(), m.hash.clone());
    annotations.insert(HASH.into(), m.hash.clone());
    annotations.insert(SOURCE.into(), "file".into());
    meta.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.into(),
        uid: node_uid.into(),
        controller: Some(true),
        ..Default::default()
    }]);
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.into());
    pod.status = None;
    pod
}

/// What to do to go from the mirror pods that exist to those the manifests want:
/// (to create, to delete by (namespace, name)).
pub fn diff(wanted: &[Pod], existing: &[Pod]) -> (Vec<Pod>, Vec<(String, String)>) {
    let key = |p: &Pod| (p.namespace().unwrap_or_default(), p.name_any());
    let hash = |p: &Pod| p.annotations().get(MIRROR).cloned();
    let mut create = Vec::new();
    let mut delete = Vec::new();
    for w in wanted {
        match existing.iter().find(|e| key(e) == key(w)) {
            None => create.push(w.clone()),
            // A changed manifest: the old pod goes first, the new one comes next round.
            Some(e) if hash(e) != hash(w) && e.metadata.deletion_timestamp.is_none() => delete.push(key(e)),
            Some(_) => {}
        }
    }
    for e in existing {
        if e.metadata.deletion_timestamp.is_none() && !wanted.iter().any(|w| key(w) == key(e)) {
            delete.push(key(e));
        }
    }
    (create, delete)
}

fn read_dir(dir: &Path) -> Vec<Manifest> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let ext = path.extension().and_then(|x| x.to_str()).unwrap_or_default();
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|b| parse(&path, &b).map_err(|e| e.to_string()))
        {
            Ok(m) => out.push(m),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "skipping static pod manifest"),
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Keeps the mirror pods in line with the manifests folder, every `every`.
pub async fn run(client: Client, config: Config, every: Duration, mut stop: watch::Receiver<bool>) {
    let dir = config.paths.pod_manifests_dir();
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let mut tick = tokio::time::interval(every);
    // Nodes without static pods (most of them) need no API calls every tick; the first
    // round still looks, for mirror pods left from manifests removed while we were down.
    let mut had_manifests: Option<bool> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let manifests = read_dir(&dir);
        if manifests.is_empty() && had_manifests == Some(false) {
            continue;
        }
        let Ok(node) = nodes.get(&config.node_name).await else { continue };
        let node_uid = node.uid().unwrap_or_default();
        let wanted: Vec<Pod> = manifests.iter().map(|m| mirror(m, &config.node_name, &node_uid)).collect();
        let lp = ListParams::default().fields(&format!("spec.nodeName={}", config.node_name));
        let Ok(list) = pods.list(&lp).await else { continue };
        let existing: Vec<Pod> = list.items.into_iter().filter(|p| p.annotations().contains_key(MIRROR)).collect();
        let (create, delete) = diff(&wanted, &existing);
        had_manifests = Some(!manifests.is_empty() || !existing.is_empty());
        for p in create {
            let ns = p.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            match api.create(&PostParams::default(), &p).await {
                Ok(_) => tracing::info!(pod = %p.name_any(), namespace = %ns, "static pod: mirror pod created"),
                Err(e) => tracing::warn!(pod = %p.name_any(), error = %e, "static pod: cannot create the mirror pod"),
            }
        }
        for (ns, name) in delete {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
                tracing::warn!(pod = %name, error = %e, "static pod: cannot delete the mirror pod");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox:1.28\n";

    #[test]
    fn mirror_pods_as_upstream_names_and_annotates_them() {
        let m = parse(Path::new("/m/web.yaml"), MANIFEST.as_bytes()).unwrap();
        let p = mirror(&m, "n1", "uid-n1");
        assert_eq!(p.name_any(), "web-n1");
        assert_eq!(p.namespace().as_deref(), Some("default"));
        assert_eq!(p.annotations()[MIRROR], m.hash);
        assert_eq!(p.annotations()[SOURCE], "file");
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("Node", "n1", "uid-n1"));
    }

    #[test]
    fn bad_manifests_are_errors() {
        assert!(parse(Path::new("x.yaml"), b"kind: Service\nmetadata: {name: a}\n").is_err());
        assert!(parse(Path::new("x.yaml"), b"kind: Pod\nmetadata: {}\n").is_err());
        assert!(parse(Path::new("x.yaml"), b": : :").is_err());
        assert!(parse(Path::new("x.yaml"), &[0xff, 0xfe]).is_err());
    }

    #[test]
    fn diff_creates_replaces_and_removes() {
        let m1 = parse(Path::new("a.yaml"), MANIFEST.as_bytes()).unwrap();
        let changed = MANIFEST.replace("busybox:1.28", "busybox:latest");
        let m2 = parse(Path::new("a.yaml"), changed.as_bytes()).unwrap();
        let (a, b) = (mirror(&m1, "n", "u"), mirror(&m2, "n", "u"));
        let (create, delete) = diff(std::slice::from_ref(&a), &[]);
        assert_eq!((create.len(), delete.len()), (1, 0));
        assert_eq!(diff(std::slice::from_ref(&a), std::slice::from_ref(&a)), (vec![], vec![]));
        let (create, delete) = diff(std::slice::from_ref(&b), std::slice::from_ref(&a));
        assert!(create.is_empty());
        assert_eq!(delete, vec![("default".to_string(), "web-n".to_string())]);
        let (create, delete) = diff(&[], std::slice::from_ref(&a));
        assert!(create.is_empty());
        assert_eq!(delete.len(), 1);
    }
}
