//! Pod volumes, as upstream's volume plugins lay them out on the node: every volume of a
//! pod lives under `<agent-dir>/pods/<uid>/volumes/<plugin>/<name>` and is bind-mounted
//! into containers through the CRI container config.
//!
//! - emptyDir: a directory (mode 0777), or a tmpfs mount for `medium: Memory`.
//! - hostPath: the host's path itself, checked and created per its `type`.
//! - configMap, secret, downwardAPI and projected: files computed by the pure
//!   `*_payload` functions and written by [`write_atomic`] with upstream's `..data`
//!   symlink layout, so that a running container sees a whole new version at once when
//!   the sources change. They are mounted read-only, as upstream does; secret and
//!   projected volumes are on tmpfs.
//!
//! The pure parts (paths, payloads, modes, mounts, hostPath checks) are tested by
//! tables; the worker in [`super`] fetches the sources and calls them.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume};
use kube::ResourceExt;

use super::spec;

/// Where container mounts of the service-account token go (upstream's constant).
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Files of configMap, secret, downwardAPI and projected volumes without a mode.
pub const DEFAULT_MODE: u32 = 0o644;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapMissing(String),
    #[error("secret \"{0}\" not found")]
    SecretMissing(String),
    #[error("configmap references non-existent config key: {0}")]
    ConfigMapKeyMissing(String),
    #[error("references non-existent secret key: {0}")]
    SecretKeyMissing(String),
    #[error("invalid path {0:?}: must be relative and may not contain '..'")]
    BadPath(String),
    #[error(transparent)]
    Field(#[from] spec::ConfigError),
    #[error("failed to fetch token: {0}")]
    Token(String),
    #[error("{0}")]
    HostPath(String),
    #[error("volume {0:?} has a type this kubelet does not support")]
    Unsupported(String),
    #[error("cannot find volume \"{volume}\" to mount into container \"{container}\"")]
    NoVolume { volume: String, container: String },
    #[error("cannot set up {path}: {message}")]
    Io { path: PathBuf, message: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |e| VolumeError::Io { path: path.to_path_buf(), message: e.to_string() }
}

/// The node directories of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDirs {
    pub root: PathBuf,
}

impl PodDirs {
    pub fn new(agent_dir: &Path, uid: &str) -> PodDirs {
        PodDirs { root: agent_dir.join("pods").join(uid) }
    }

    /// `volumes/kubernetes.io~<plugin>/<name>`, upstream's layout.
    pub fn volume_dir(&self, plugin: &str, name: &str) -> PathBuf {
        self.root.join("volumes").join(format!("kubernetes.io~{plugin}")).join(name)
    }

    /// The managed hosts file mounted at /etc/hosts.
    pub fn etc_hosts(&self) -> PathBuf {
        self.root.join("etc-hosts")
    }
}

/// The plugin a volume belongs to, or `None` for a kind we do not support.
pub fn plugin(v: &Volume) -> Option<&'static str> {
    Some(if v.empty_dir.is_some() {
        "empty-dir"
    } else if v.host_path.is_some() {
        "host-path"
    } else if v.config_map.is_some() {
        "configmap"
    } else if v.secret.is_some() {
        "secret"
    } else if v.downward_api.is_some() {
        "downward-api"
    } else if v.projected.is_some() {
        "projected"
    } else {
        return None;
    })
}

/// Whether the volume's files are the kubelet's (mounted read-only, as upstream).
fn kubelet_written(plugin: &str) -> bool {
    matches!(plugin, "configmap" | "secret" | "downward-api" | "projected")
}

/// Where volume `v` of the pod is on the host.
pub fn host_dir(dirs: &PodDirs, v: &Volume) -> Result<PathBuf, VolumeError> {
    if let Some(hp) = &v.host_path {
        return Ok(PathBuf::from(&hp.path));
    }
    let plugin = plugin(v).ok_or_else(|| VolumeError::Unsupported(v.name.clone()))?;
    Ok(dirs.volume_dir(plugin, &v.name))
}

/// A relative path inside a volume, as validation allows it.
fn relative(path: &str) -> Result<&str, VolumeError> {
    let p = Path::new(path);
    if path.is_empty() || p.is_absolute() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(VolumeError::BadPath(path.to_string()));
    }
    Ok(path)
}

/// The files of a kubelet-written volume: relative path → (mode, content).
pub type Payload = BTreeMap<String, (u32, Vec<u8>)>;

fn mode(m: Option<i32>, default: u32) -> u32 {
    m.map_or(default, |m| (m as u32) & 0o7777)
}

/// Key/value data as files: every key, or the listed items (a missing key is an error
/// unless the volume is optional).
fn key_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    optional: bool,
    missing: impl Fn(String) -> VolumeError,
    out: &mut Payload,
) -> Result<(), VolumeError> {
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.insert(relative(k)?.to_string(), (default_mode, v.clone()));
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(v) => {
                        out.insert(relative(&item.path)?.to_string(), (mode(item.mode, default_mode), v.clone()));
                    }
                    None if optional => {}
                    None => return Err(missing(item.key.clone())),
                }
            }
        }
    }
    Ok(())
}

fn configmap_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> =
        cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())).collect();
    data.extend(cm.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())));
    data
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = s.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    data.extend(s.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())));
    data
}

/// A configMap volume's (or projection's) files; `cm` is `None` when it does not exist.
pub fn configmap_files(
    name: &str,
    cm: Option<&ConfigMap>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
    default_mode: u32,
    out: &mut Payload,
) -> Result<(), VolumeError> {
    match cm {
        None if optional => Ok(()),
        None => Err(VolumeError::ConfigMapMissing(name.to_string())),
        Some(cm) => {
            key_files(&configmap_data(cm), items, default_mode, optional, VolumeError::ConfigMapKeyMissing, out)
        }
    }
}

/// A secret volume's (or projection's) files.
pub fn secret_files(
    name: &str,
    secret: Option<&Secret>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
    default_mode: u32,
    out: &mut Payload,
) -> Result<(), VolumeError> {
    match secret {
        None if optional => Ok(()),
        None => Err(VolumeError::SecretMissing(name.to_string())),
        Some(s) => key_files(&secret_data(s), items, default_mode, optional, VolumeError::SecretKeyMissing, out),
    }
}

/// Labels and annotations as upstream writes them: `key="value"` lines, sorted, the
/// value quoted like Go's `%q`.
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter().map(|(k, v)| format!("{k}={}", go_quote(v))).collect::<Vec<_>>().join("\n")
}

fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A downwardAPI volume's (or projection's) files.
pub fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    out: &mut Payload,
) -> Result<(), VolumeError> {
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" => format_map(pod.labels()),
                "metadata.annotations" => format_map(pod.annotations()),
                path => spec::field_value(pod, path, "", "")?,
            }
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or_default();
            let container = spec::all_containers(pod).find(|c| c.name == name).cloned().unwrap_or_default();
            spec::quantity_value(&container, &r.resource, r.divisor.as_ref().map(|d| d.0.as_str()))
        } else {
            String::new()
        };
        out.insert(relative(&item.path)?.to_string(), (mode(item.mode, default_mode), value.into_bytes()));
    }
    Ok(())
}

/// The sources a pod's volumes read, fetched by the caller.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `None`: looked up and not found.
    pub configmaps: HashMap<String, Option<ConfigMap>>,
    pub secrets: HashMap<String, Option<Secret>>,
    /// Service-account tokens by (audience, expirationSeconds), or why there is none.
    pub tokens: HashMap<(String, i64), Result<String, String>>,
}

impl Sources {
    /// What `pod`'s volumes need: ConfigMap and Secret names, and token requests
    /// (audience, expirationSeconds).
    pub fn wanted(pod: &Pod) -> (Vec<String>, Vec<String>, Vec<(String, i64)>) {
        let (mut cms, mut secrets, mut tokens) = (Vec::new(), Vec::new(), Vec::new());
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Some(c) = &v.config_map {
                cms.push(c.name.clone());
            }
            if let Some(s) = &v.secret {
                secrets.extend(s.secret_name.clone());
            }
            for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                if let Some(c) = &src.config_map {
                    cms.push(c.name.clone());
                }
                if let Some(s) = &src.secret {
                    secrets.push(s.name.clone());
                }
                if let Some(t) = &src.service_account_token {
                    tokens.push(token_key(t));
                }
            }
        }
        for list in [&mut cms, &mut secrets] {
            list.sort();
            list.dedup();
        }
        tokens.sort();
        tokens.dedup();
        (cms, secrets, tokens)
    }
}

/// A token projection's (audience, expirationSeconds), with upstream's default of one
/// hour.
pub fn token_key(t: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection) -> (String, i64) {
    (t.audience.clone().unwrap_or_default(), t.expiration_seconds.unwrap_or(3600))
}

/// The files of a kubelet-written volume, or `None` for emptyDir and hostPath.
pub fn payload(pod: &Pod, v: &Volume, sources: &Sources) -> Result<Option<Payload>, VolumeError> {
    let mut out = Payload::new();
    if let Some(c) = &v.config_map {
        let cm = sources.configmaps.get(&c.name).cloned().flatten();
        configmap_files(
            &c.name,
            cm.as_ref(),
            c.items.as_ref(),
            c.optional == Some(true),
            mode(c.default_mode, DEFAULT_MODE),
            &mut out,
        )?;
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let secret = sources.secrets.get(&name).cloned().flatten();
        secret_files(
            &name,
            secret.as_ref(),
            s.items.as_ref(),
            s.optional == Some(true),
            mode(s.default_mode, DEFAULT_MODE),
            &mut out,
        )?;
    } else if let Some(d) = &v.downward_api {
        downward_files(pod, d.items.as_deref().unwrap_or_default(), mode(d.default_mode, DEFAULT_MODE), &mut out)?;
    } else if let Some(p) = &v.projected {
        let default_mode = mode(p.default_mode, DEFAULT_MODE);
        for src in p.sources.iter().flatten() {
            if let Some(c) = &src.config_map {
                let cm = sources.configmaps.get(&c.name).cloned().flatten();
                configmap_files(
                    &c.name,
                    cm.as_ref(),
                    c.items.as_ref(),
                    c.optional == Some(true),
                    default_mode,
                    &mut out,
                )?;
            }
            if let Some(s) = &src.secret {
                let secret = sources.secrets.get(&s.name).cloned().flatten();
                secret_files(
                    &s.name,
                    secret.as_ref(),
                    s.items.as_ref(),
                    s.optional == Some(true),
                    default_mode,
                    &mut out,
                )?;
            }
            if let Some(d) = &src.downward_api {
                downward_files(pod, d.items.as_deref().unwrap_or_default(), default_mode, &mut out)?;
            }
            if let Some(t) = &src.service_account_token {
                let token = match sources.tokens.get(&token_key(t)) {
                    Some(Ok(token)) => token.clone(),
                    Some(Err(e)) => return Err(VolumeError::Token(e.clone())),
                    None => return Err(VolumeError::Token("no token requested".into())),
                };
                out.insert(relative(&t.path)?.to_string(), (default_mode, token.into_bytes()));
            }
        }
    } else {
        return Ok(None);
    }
    Ok(Some(out))
}

/// The CRI mounts of one container: its volumeMounts (subPath joined, subPathExpr
/// expanded against the container's environment `env`, kubelet-written volumes
/// read-only) and the managed /etc/hosts unless the pod uses the host's network or the
/// container mounts its own.
pub fn container_mounts(
    pod: &Pod,
    container: &Container,
    dirs: &PodDirs,
    env: &[(String, String)],
) -> Result<Vec<cri::Mount>, VolumeError> {
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let spec = pod.spec.clone().unwrap_or_default();
    let volumes = spec.volumes.unwrap_or_default();
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let v = volumes
            .iter()
            .find(|v| v.name == vm.name)
            .ok_or_else(|| VolumeError::NoVolume { volume: vm.name.clone(), container: container.name.clone() })?;
        let mut host = host_dir(dirs, v)?;
        let sub = match vm.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
            Some(expr) => Some(spec::expand(expr, &vars)),
            None => vm.sub_path.clone().filter(|s| !s.is_empty()),
        };
        if let Some(sub) = sub {
            host = host.join(relative(&sub)?);
        }
        let propagation = match vm.mount_propagation.as_deref() {
            Some("HostToContainer") => cri::MountPropagation::PropagationHostToContainer,
            Some("Bidirectional") => cri::MountPropagation::PropagationBidirectional,
            _ => cri::MountPropagation::PropagationPrivate,
        };
        mounts.push(cri::Mount {
            container_path: vm.mount_path.clone(),
            host_path: host.display().to_string(),
            readonly: vm.read_only.unwrap_or(false) || plugin(v).is_some_and(kubelet_written),
            propagation: propagation as i32,
            ..Default::default()
        });
    }
    if !spec.host_network.unwrap_or(false) && !mounts.iter().any(|m| m.container_path == "/etc/hosts") {
        mounts.push(cri::Mount {
            container_path: "/etc/hosts".into(),
            host_path: dirs.etc_hosts().display().to_string(),
            ..Default::default()
        });
    }
    Ok(mounts)
}

/// The managed hosts file (upstream's `managedHostsFileContent`): localhost entries,
/// the pod's own name on its IP, then the pod's hostAliases.
pub fn hosts_file(pod: &Pod, pod_ip: &str, cluster_domain: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let hostname = spec::hostname(pod);
    if !pod_ip.is_empty() {
        match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                let ns = pod.namespace().unwrap_or_default();
                out.push_str(&format!("{pod_ip}\t{hostname}.{sub}.{ns}.svc.{cluster_domain}\t{hostname}\n"));
            }
            None => out.push_str(&format!("{pod_ip}\t{hostname}\n")),
        }
    }
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            out.push_str(&format!("{}\t{}\n", a.ip, a.hostnames.unwrap_or_default().join("\t")));
        }
    }
    out
}

/// Upstream's hostPath `type` check: creates what `DirectoryOrCreate` and
/// `FileOrCreate` ask for, and fails when the path is not of the given type.
pub fn check_host_path(path: &Path, kind: &str) -> Result<(), VolumeError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).ok();
    let fail = |what: &str| Err(VolumeError::HostPath(format!("hostPath type check failed: {shown} is not {what}")));
    let is = |f: fn(&std::fs::FileType) -> bool| meta.as_ref().is_some_and(|m| f(&m.file_type()));
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" if meta.is_none() => {
            std::fs::DirBuilder::new().recursive(true).mode(0o755).create(path).map_err(io_error(path))
        }
        "DirectoryOrCreate" | "Directory" => {
            if is(std::fs::FileType::is_dir) {
                Ok(())
            } else {
                fail("a directory")
            }
        }
        "FileOrCreate" if meta.is_none() => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .open(path)
            .map(drop)
            .map_err(io_error(path)),
        "FileOrCreate" | "File" => {
            if is(std::fs::FileType::is_file) {
                Ok(())
            } else {
                fail("a file")
            }
        }
        "Socket" => {
            if is(FileTypeExt::is_socket) {
                Ok(())
            } else {
                fail("a socket file")
            }
        }
        "CharDevice" => {
            if is(FileTypeExt::is_char_device) {
                Ok(())
            } else {
                fail("a character device")
            }
        }
        "BlockDevice" => {
            if is(FileTypeExt::is_block_device) {
                Ok(())
            } else {
                fail("a block device")
            }
        }
        other => Err(VolumeError::HostPath(format!("{other} is an invalid volume type"))),
    }
}

/// The files currently published in an atomic-writer directory.
fn published(dir: &Path) -> Option<Payload> {
    fn walk(base: &Path, rel: &Path, out: &mut Payload) -> std::io::Result<()> {
        for entry in std::fs::read_dir(base.join(rel))? {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            let meta = entry.metadata()?;
            if meta.is_dir() {
                walk(base, &rel, out)?;
            } else {
                let data = std::fs::read(base.join(&rel))?;
                out.insert(rel.display().to_string(), (meta.permissions().mode() & 0o7777, data));
            }
        }
        Ok(())
    }
    let data = dir.join("..data");
    std::fs::symlink_metadata(&data).ok()?;
    let mut out = Payload::new();
    walk(&data, Path::new(""), &mut out).ok()?;
    Some(out)
}

/// The first component of each payload path: the names visible in the volume.
fn top_level(payload: &Payload) -> Vec<String> {
    let mut names: Vec<String> = payload.keys().filter_map(|p| p.split('/').next().map(str::to_string)).collect();
    names.dedup();
    names
}

/// Publishes `payload` in `dir` as upstream's atomic writer does: the files go into a new
/// timestamped directory `..<time>`, the `..data` symlink is swapped to it with a rename
/// (atomic), and each visible name is a symlink through `..data`. Returns whether
/// anything changed.
pub fn write_atomic(dir: &Path, payload: &Payload) -> Result<bool, VolumeError> {
    let old = published(dir);
    if old.as_ref() == Some(payload) {
        return Ok(false);
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(io_error(dir))?;
    let stamp = jiff::Zoned::now().strftime("%Y_%m_%d_%H_%M_%S").to_string();
    let version = format!("..{stamp}.{:09}", jiff::Timestamp::now().subsec_nanosecond());
    let target = dir.join(&version);
    std::fs::DirBuilder::new().mode(0o755).create(&target).map_err(io_error(&target))?;
    // The mode is set after creation so that the process umask does not change it.
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).map_err(io_error(&target))?;
    for (rel, (mode, data)) in payload {
        let path = target.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).map_err(io_error(parent))?;
        }
        let mut f = std::fs::File::create(&path).map_err(io_error(&path))?;
        f.write_all(data).map_err(io_error(&path))?;
        f.set_permissions(std::fs::Permissions::from_mode(*mode)).map_err(io_error(&path))?;
    }
    let previous = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&version, &tmp).map_err(io_error(&tmp))?;
    let data = dir.join("..data");
    std::fs::rename(&tmp, &data).map_err(io_error(&data))?;
    let names = top_level(payload);
    for name in &names {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link).map_err(io_error(&link))?;
        }
    }
    if let Some(old) = &old {
        for name in top_level(old).iter().filter(|n| !names.contains(n)) {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    if let Some(previous) = previous.filter(|p| p.as_path() != Path::new(&version)) {
        let _ = std::fs::remove_dir_all(dir.join(previous));
    }
    Ok(true)
}

/// Creates an emptyDir's directory, on tmpfs for `medium: Memory` (limited to its
/// sizeLimit).
pub fn setup_empty_dir(dir: &Path, v: &Volume) -> Result<(), VolumeError> {
    let ed = v.empty_dir.as_ref();
    if ed.and_then(|e| e.medium.as_deref()) == Some("Memory") {
        let size = ed.and_then(|e| e.size_limit.as_ref()).map(|q| rkube_apimachinery::quantity::value(&q.0));
        mount_tmpfs(dir, size)?;
    } else {
        std::fs::DirBuilder::new().recursive(true).create(dir).map_err(io_error(dir))?;
    }
    // World-writable as upstream: containers may run as any user.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).map_err(io_error(dir))
}

/// Whether the volume's files live in memory: secret and projected volumes do, as
/// upstream's (they wrap a memory-backed emptyDir), so secrets and tokens never reach
/// the node's disk.
pub fn in_memory(v: &Volume) -> bool {
    v.secret.is_some() || v.projected.is_some()
}

/// Creates `dir` and mounts a tmpfs there (of `size` bytes when given) unless one is.
pub fn mount_tmpfs(dir: &Path, size: Option<i64>) -> Result<(), VolumeError> {
    std::fs::DirBuilder::new().recursive(true).create(dir).map_err(io_error(dir))?;
    if is_mount_point(dir) {
        return Ok(());
    }
    let options = size.filter(|s| *s > 0).map(|s| format!("size={s}"));
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        options.as_deref(),
    )
    .map_err(|e| VolumeError::Io { path: dir.to_path_buf(), message: format!("mount tmpfs: {e}") })
}

/// Mount points at or under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let prefix = dir.display().to_string();
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    points.into_iter().map(PathBuf::from).collect()
}

fn is_mount_point(dir: &Path) -> bool {
    mounts_under(dir).iter().any(|p| p == dir)
}

/// Unmounts what the pod's volumes mounted and removes its directories; hostPath volumes
/// are never under them. Leaves everything in place if something stays mounted.
pub fn teardown(dirs: &PodDirs) -> Result<(), VolumeError> {
    for point in mounts_under(&dirs.root) {
        nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| VolumeError::Io { path: point.clone(), message: format!("unmount: {e}") })?;
    }
    match std::fs::remove_dir_all(&dirs.root) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&dirs.root)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "ns1", "uid": "u1",
                         "labels": {"app": "web", "tier": "front"}, "annotations": {"note": "say \"hi\""}},
            "spec": spec
        }))
        .unwrap()
    }

    fn cm() -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"},
                                      "binaryData": {"bin": "AAE="}}))
        .unwrap()
    }

    fn secret() -> Secret {
        serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {"user": "YWRtaW4=", "pw": "czNjcmV0"}}))
            .unwrap()
    }

    fn files(p: &Payload) -> Vec<(String, u32, String)> {
        p.iter().map(|(k, (m, d))| (k.clone(), *m, String::from_utf8_lossy(d).into_owned())).collect()
    }

    fn f(path: &str, mode: u32, data: &str) -> (String, u32, String) {
        (path.to_string(), mode, data.to_string())
    }

    #[test]
    fn configmap_and_secret_files() {
        let sources = Sources {
            configmaps: HashMap::from([("cfg".into(), Some(cm())), ("gone".into(), None)]),
            secrets: HashMap::from([("s".into(), Some(secret()))]),
            tokens: HashMap::new(),
        };
        let p = pod(json!({"containers": []}));
        let vol = |v: serde_json::Value| serde_json::from_value::<Volume>(v).unwrap();
        // (what, volume, files or error)
        type Case = (&'static str, Volume, Result<Vec<(String, u32, String)>, VolumeError>);
        let cases: Vec<Case> = vec![
            (
                "every key, default mode 0644, binaryData too",
                vol(json!({"name": "v", "configMap": {"name": "cfg"}})),
                Ok(vec![f("a", 0o644, "1"), f("b", 0o644, "2"), f("bin", 0o644, "\0\u{1}")]),
            ),
            (
                "items with paths and modes over defaultMode",
                vol(json!({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o400,
                           "items": [{"key": "a", "path": "dir/a.txt", "mode": 0o600}, {"key": "b", "path": "b"}]}})),
                Ok(vec![f("b", 0o400, "2"), f("dir/a.txt", 0o600, "1")]),
            ),
            (
                "a missing key",
                vol(json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}})),
                Err(VolumeError::ConfigMapKeyMissing("zz".into())),
            ),
            (
                "a missing key of an optional volume",
                vol(json!({"name": "v", "configMap": {"name": "cfg", "optional": true,
                           "items": [{"key": "zz", "path": "z"}]}})),
                Ok(vec![]),
            ),
            (
                "a missing configmap",
                vol(json!({"name": "v", "configMap": {"name": "gone"}})),
                Err(VolumeError::ConfigMapMissing("gone".into())),
            ),
            (
                "an optional missing configmap",
                vol(json!({"name": "v", "configMap": {"name": "gone", "optional": true}})),
                Ok(vec![]),
            ),
            (
                "secret values decoded",
                vol(json!({"name": "v", "secret": {"secretName": "s", "defaultMode": 0o440}})),
                Ok(vec![f("pw", 0o440, "s3cret"), f("user", 0o440, "admin")]),
            ),
            (
                "a missing secret",
                vol(json!({"name": "v", "secret": {"secretName": "nope"}})),
                Err(VolumeError::SecretMissing("nope".into())),
            ),
            (
                "paths may not escape",
                vol(json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "../a"}]}})),
                Err(VolumeError::BadPath("../a".into())),
            ),
        ];
        for (what, v, want) in cases {
            let got = payload(&p, &v, &sources).map(|p| files(&p.unwrap()));
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn downward_and_projected_files() {
        let p = pod(json!({"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}]}));
        let v: Volume = serde_json::from_value(json!({"name": "v", "projected": {"defaultMode": 0o644, "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [
                {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}},
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}},
                {"path": "cpu", "mode": 0o600, "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu", "divisor": "1m"}}
            ]}}
        ]}}))
        .unwrap();
        let root_ca: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "PEM"}}))
                .unwrap();
        let mut sources =
            Sources { configmaps: HashMap::from([("kube-root-ca.crt".into(), Some(root_ca))]), ..Default::default() };
        assert_eq!(
            Sources::wanted(&pod(json!({"containers": [], "volumes": [v.clone()]}))).2,
            vec![(String::new(), 3607)]
        );
        assert!(matches!(payload(&p, &v, &sources), Err(VolumeError::Token(_))), "no token yet");
        sources.tokens.insert((String::new(), 3607), Err("serviceaccounts \"x\" not found".into()));
        assert_eq!(
            payload(&p, &v, &sources).map(|_| ()).unwrap_err().to_string(),
            "failed to fetch token: serviceaccounts \"x\" not found"
        );
        sources.tokens.insert((String::new(), 3607), Ok("jwt".into()));
        let got = files(&payload(&p, &v, &sources).unwrap().unwrap());
        assert_eq!(
            got,
            vec![
                f("annotations", 0o644, "note=\"say \\\"hi\\\"\""),
                f("ca.crt", 0o644, "PEM"),
                f("cpu", 0o600, "500"),
                f("labels", 0o644, "app=\"web\"\ntier=\"front\""),
                f("mem", 0o644, "64"),
                f("namespace", 0o644, "ns1"),
                f("token", 0o644, "jwt"),
            ]
        );
    }

    #[test]
    fn mounts_of_a_container() {
        let p = pod(json!({
            "containers": [{"name": "c", "volumeMounts": [
                {"name": "cache", "mountPath": "/cache"},
                {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
                {"name": "host", "mountPath": "/host", "readOnly": true, "mountPropagation": "HostToContainer"},
                {"name": "sa", "mountPath": SERVICE_ACCOUNT_MOUNT}
            ]}],
            "volumes": [
                {"name": "cache", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "host", "hostPath": {"path": "/var/log"}},
                {"name": "sa", "projected": {"sources": []}}
            ]
        }));
        let dirs = PodDirs::new(Path::new("/data/agent"), "u1");
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let got: Vec<(String, String, bool, i32)> = container_mounts(&p, &c, &dirs, &[])
            .unwrap()
            .into_iter()
            .map(|m| (m.container_path, m.host_path, m.readonly, m.propagation))
            .collect();
        let private = cri::MountPropagation::PropagationPrivate as i32;
        let v = "/data/agent/pods/u1/volumes";
        assert_eq!(
            got,
            vec![
                ("/cache".into(), format!("{v}/kubernetes.io~empty-dir/cache"), false, private),
                ("/etc/app.conf".into(), format!("{v}/kubernetes.io~configmap/cfg/app.conf"), true, private),
                ("/host".into(), "/var/log".into(), true, cri::MountPropagation::PropagationHostToContainer as i32),
                (SERVICE_ACCOUNT_MOUNT.into(), format!("{v}/kubernetes.io~projected/sa"), true, private),
                ("/etc/hosts".into(), "/data/agent/pods/u1/etc-hosts".into(), false, private),
            ]
        );
        let mut missing = c.clone();
        missing.volume_mounts.as_mut().unwrap()[0].name = "nope".into();
        assert_eq!(
            container_mounts(&p, &missing, &dirs, &[]),
            Err(VolumeError::NoVolume { volume: "nope".into(), container: "c".into() })
        );
        let host_net = pod(json!({"hostNetwork": true, "containers": [{"name": "c"}]}));
        assert!(
            container_mounts(&host_net, &host_net.spec.as_ref().unwrap().containers[0], &dirs, &[]).unwrap().is_empty()
        );
        // subPathExpr expands the container's variables.
        let expr = pod(json!({
            "containers": [{"name": "c", "volumeMounts": [{"name": "logs", "mountPath": "/logs",
                                                             "subPathExpr": "$(POD_NAME)/x"}]}],
            "volumes": [{"name": "logs", "hostPath": {"path": "/var/log/pods"}}]
        }));
        let env = [("POD_NAME".to_string(), "web-0".to_string())];
        let m = container_mounts(&expr, &expr.spec.as_ref().unwrap().containers[0], &dirs, &env).unwrap();
        assert_eq!(m[0].host_path, "/var/log/pods/web-0/x");
    }

    #[test]
    fn hosts_files() {
        let plain = hosts_file(&pod(json!({"containers": []})), "10.1.0.5", "cluster.local");
        assert!(plain.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"), "{plain}");
        assert!(plain.ends_with("fe00::2\tip6-allrouters\n10.1.0.5\tweb-0\n"), "{plain}");
        let full = hosts_file(
            &pod(
                json!({"containers": [], "subdomain": "web", "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a", "b"]}]}),
            ),
            "10.1.0.5",
            "cluster.local",
        );
        assert!(
            full.ends_with(
                "10.1.0.5\tweb-0.web.ns1.svc.cluster.local\tweb-0\n\n# Entries added by HostAliases.\n1.2.3.4\ta\tb\n"
            ),
            "{full}"
        );
    }

    #[test]
    fn host_path_types() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dir");
        let file = tmp.path().join("file");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&file, "x").unwrap();
        let sock = tmp.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let absent = tmp.path().join("absent");
        let err = |p: &Path, what: &str| Err(format!("hostPath type check failed: {} is not {what}", p.display()));
        // (path, type, outcome)
        let cases: Vec<(PathBuf, &str, Result<(), String>)> = vec![
            (absent.clone(), "", Ok(())),
            (dir.clone(), "Directory", Ok(())),
            (file.clone(), "Directory", err(&file, "a directory")),
            (absent.clone(), "Directory", err(&absent, "a directory")),
            (file.clone(), "File", Ok(())),
            (dir.clone(), "File", err(&dir, "a file")),
            (dir.clone(), "FileOrCreate", err(&dir, "a file")),
            (file.clone(), "DirectoryOrCreate", err(&file, "a directory")),
            (sock.clone(), "Socket", Ok(())),
            (file.clone(), "Socket", err(&file, "a socket file")),
            (file.clone(), "CharDevice", err(&file, "a character device")),
            (PathBuf::from("/dev/null"), "CharDevice", Ok(())),
            (file.clone(), "BlockDevice", err(&file, "a block device")),
            (file.clone(), "Bogus", Err("Bogus is an invalid volume type".into())),
            (tmp.path().join("new/sub"), "DirectoryOrCreate", Ok(())),
            (tmp.path().join("new-file"), "FileOrCreate", Ok(())),
            (tmp.path().join("no/parent"), "FileOrCreate", Err("cannot set up".into())),
        ];
        for (path, kind, want) in cases {
            let got = check_host_path(&path, kind).map_err(|e| e.to_string());
            match (&got, &want) {
                (Err(g), Err(w)) if w == "cannot set up" => assert!(g.starts_with(w), "{kind} {path:?}: {g}"),
                _ => assert_eq!(got, want, "{kind} {}", path.display()),
            }
        }
        assert!(tmp.path().join("new/sub").is_dir());
        let created = std::fs::metadata(tmp.path().join("new-file")).unwrap();
        assert!(created.is_file() && created.len() == 0);
    }

    #[test]
    fn atomic_writes_swap_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        let v1 =
            Payload::from([("a".to_string(), (0o644, b"1".to_vec())), ("sub/b".to_string(), (0o600, b"2".to_vec()))]);
        assert!(write_atomic(&dir, &v1).unwrap());
        assert!(!write_atomic(&dir, &v1).unwrap(), "unchanged: no new version");
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert_eq!(std::fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
        let mode = std::fs::metadata(dir.join("sub/b")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = std::fs::read_link(dir.join("..data")).unwrap();
        let v2 =
            Payload::from([("a".to_string(), (0o644, b"one".to_vec())), ("c".to_string(), (0o644, b"3".to_vec()))]);
        assert!(write_atomic(&dir, &v2).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "one");
        assert_eq!(std::fs::read_to_string(dir.join("c")).unwrap(), "3");
        assert!(std::fs::symlink_metadata(dir.join("sub")).is_err(), "names no longer published go");
        assert!(!dir.join(first).exists(), "the previous version is removed");
        let entries: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(entries.len(), 4, "a, c, ..data and one version: {entries:?}");
    }
}
