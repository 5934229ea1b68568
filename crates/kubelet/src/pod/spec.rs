//! From a pod's spec to CRI configuration (pure): the sandbox, each container with its
//! command, environment (values, ConfigMap/Secret/field references, envFrom, `$(VAR)`
//! expansion), labels that find it again after a restart, log path and resources.

use std::collections::{BTreeMap, HashMap};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::ResourceExt;
use rkube_apimachinery::quantity;

pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Annotations the kubelet reads back from the runtime.
pub const ANNOTATION_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";

/// Why a container's configuration cannot be built yet (upstream's
/// `CreateContainerConfigError`): a missing ConfigMap, Secret or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapMissing(String),
    #[error("secret \"{0}\" not found")]
    SecretMissing(String),
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyMissing { kind: &'static str, namespace: String, name: String, key: String },
    #[error("unsupported field path {0:?}")]
    FieldPath(String),
}

/// The ConfigMaps and Secrets a pod's containers refer to, fetched by the caller.
#[derive(Debug, Default, Clone)]
pub struct EnvSources {
    pub configmaps: HashMap<String, ConfigMap>,
    pub secrets: HashMap<String, Secret>,
}

impl EnvSources {
    /// The names of the ConfigMaps and Secrets `pod`'s containers read their environment from.
    pub fn wanted(pod: &Pod) -> (Vec<String>, Vec<String>) {
        let (mut cms, mut secrets) = (Vec::new(), Vec::new());
        for c in all_containers(pod) {
            for e in c.env.iter().flatten() {
                if let Some(v) = &e.value_from {
                    if let Some(r) = &v.config_map_key_ref {
                        cms.push(r.name.clone());
                    }
                    if let Some(r) = &v.secret_key_ref {
                        secrets.push(r.name.clone());
                    }
                }
            }
            for f in c.env_from.iter().flatten() {
                if let Some(r) = &f.config_map_ref {
                    cms.push(r.name.clone());
                }
                if let Some(r) = &f.secret_ref {
                    secrets.push(r.name.clone());
                }
            }
        }
        cms.sort();
        cms.dedup();
        secrets.sort();
        secrets.dedup();
        (cms, secrets)
    }
}

/// Init containers then app containers.
pub fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .chain(spec.map(|s| &s.containers).into_iter().flatten())
}

/// The folder (under the agent's pod-logs dir) of this pod's container logs, upstream's
/// `<namespace>_<name>_<uid>` layout.
pub fn log_directory(pod: &Pod) -> String {
    format!("{}_{}_{}", pod.namespace().unwrap_or_default(), pod.name_any(), pod.uid().unwrap_or_default())
}

fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_POD_UID.to_string(), pod.uid().unwrap_or_default()),
        (LABEL_POD_NAME.to_string(), pod.name_any()),
        (LABEL_POD_NAMESPACE.to_string(), pod.namespace().unwrap_or_default()),
    ])
}

/// The hostname inside the pod: `spec.hostname` or the pod's name, at most 63 bytes
/// (upstream truncates and trims trailing `-` and `.`).
pub fn hostname(pod: &Pod) -> String {
    let name = pod.spec.as_ref().and_then(|s| s.hostname.clone()).unwrap_or_else(|| pod.name_any());
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with('-') || h.ends_with('.') {
        h.pop();
    }
    h
}

/// The cluster's DNS as the kubelet knows it (upstream's `--cluster-dns`, `--cluster-domain`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterDns {
    /// Empty when the cluster has no DNS: `ClusterFirst` pods then get the node's resolvers.
    pub servers: Vec<String>,
    pub domain: String,
}

/// Upstream's limits on what goes into a pod's resolv.conf.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// The resolver configuration of `pod`'s sandbox by its `dnsPolicy` and `dnsConfig`, as
/// upstream's kubelet writes it; `None` lets the runtime copy the node's resolv.conf.
pub fn pod_dns(pod: &Pod, cluster: &ClusterDns, host: &cri::DnsConfig) -> Option<cri::DnsConfig> {
    let spec = pod.spec.as_ref()?;
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    } && !cluster.servers.is_empty();
    let mut dns = if cluster_first {
        let ns = pod.namespace().unwrap_or_else(|| "default".into());
        let d = &cluster.domain;
        let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
        searches.extend(host.searches.iter().cloned());
        cri::DnsConfig { servers: cluster.servers.clone(), searches, options: vec!["ndots:5".into()] }
    } else if policy == "None" {
        cri::DnsConfig::default()
    } else if host_network && spec.dns_config.is_none() {
        return None;
    } else {
        host.clone()
    };
    if let Some(extra) = &spec.dns_config {
        dns.servers.extend(extra.nameservers.iter().flatten().cloned());
        dns.searches.extend(extra.searches.iter().flatten().cloned());
        for opt in extra.options.iter().flatten() {
            let Some(name) = opt.name.as_deref().filter(|n| !n.is_empty()) else { continue };
            dns.options.retain(|o| o.split(':').next() != Some(name));
            dns.options.push(match &opt.value {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            });
        }
    }
    dedup(&mut dns.servers);
    dedup(&mut dns.searches);
    dns.servers.truncate(MAX_NAMESERVERS);
    dns.searches.truncate(MAX_SEARCHES);
    Some(dns)
}

fn dedup(list: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    list.retain(|x| seen.insert(x.clone()));
}

/// The sandbox of `pod`, attempt `attempt`, logging into `logs_root/<log_directory>`.
pub fn sandbox_config(pod: &Pod, attempt: u32, logs_root: &str, dns: Option<cri::DnsConfig>) -> cri::PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let mut labels = pod.labels().clone().into_iter().collect::<HashMap<_, _>>();
    labels.extend(pod_labels(pod));
    let ns_mode = |host: bool| if host { cri::NamespaceMode::Node as i32 } else { cri::NamespaceMode::Pod as i32 };
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
            namespace: pod.namespace().unwrap_or_default(),
            attempt,
        }),
        hostname: if host_network { String::new() } else { hostname(pod) },
        log_directory: format!("{logs_root}/{}", log_directory(pod)),
        dns_config: dns,
        port_mappings: Vec::new(),
        labels,
        annotations: pod.annotations().clone().into_iter().collect(),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: ns_mode(host_network),
                    pid: if spec.host_pid.unwrap_or(false) {
                        cri::NamespaceMode::Node as i32
                    } else if spec.share_process_namespace.unwrap_or(false) {
                        cri::NamespaceMode::Pod as i32
                    } else {
                        cri::NamespaceMode::Container as i32
                    },
                    ipc: ns_mode(spec.host_ipc.unwrap_or(false)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        windows: None,
    }
}

/// Values a `fieldRef` may read.
pub(crate) fn field_value(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Result<String, ConfigError> {
    let spec = pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => pod.namespace().unwrap_or_default(),
        "metadata.uid" => pod.uid().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        p => {
            let annotated = |prefix: &str, map: &BTreeMap<String, String>| {
                p.strip_prefix(prefix)
                    .and_then(|k| k.strip_prefix("['"))
                    .and_then(|k| k.strip_suffix("']"))
                    .map(|k| map.get(k).cloned().unwrap_or_default())
            };
            if let Some(v) = annotated("metadata.labels", pod.labels()) {
                v
            } else if let Some(v) = annotated("metadata.annotations", pod.annotations()) {
                v
            } else {
                return Err(ConfigError::FieldPath(p.to_string()));
            }
        }
    })
}

pub(crate) fn quantity_value(container: &Container, resource: &str, divisor: Option<&str>) -> String {
    let res = container.resources.as_ref();
    let (kind, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let map =
        if kind == "requests" { res.and_then(|r| r.requests.as_ref()) } else { res.and_then(|r| r.limits.as_ref()) };
    let raw = map.and_then(|m| m.get(name)).map(|q| q.0.clone());
    let Some(raw) = raw else {
        // Upstream falls back to the node's allocatable for unset limits; 0 is the
        // honest answer without it.
        return "0".into();
    };
    // In milli-units for CPU so that `250m` over a divisor of `1m` stays exact.
    let measure = if name == "cpu" { quantity::milli } else { quantity::value };
    let amount = measure(&raw).max(0);
    let div = divisor.map(measure).filter(|d| *d > 0).unwrap_or_else(|| measure("1"));
    (amount / div + i64::from(amount % div != 0)).to_string()
}

/// `$(VAR)` expansion as upstream: known names are replaced, `$$` escapes, unknown
/// references stay as written.
pub fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn decode_secret(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return Some(String::from_utf8_lossy(&v.0).into_owned());
    }
    secret.string_data.as_ref().and_then(|d| d.get(key)).cloned()
}

/// The container's environment in order: envFrom first, then env (later wins), each
/// value `$(VAR)`-expanded against the ones before it.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    sources: &EnvSources,
    pod_ip: &str,
    host_ip: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = pod.namespace().unwrap_or_default();
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, String> = HashMap::new();
    let set = |k: String, v: String, order: &mut Vec<String>, values: &mut HashMap<String, String>| {
        if !values.contains_key(&k) {
            order.push(k.clone());
        }
        values.insert(k, v);
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.configmaps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        set(format!("{prefix}{k}"), v.clone(), &mut order, &mut values);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError::ConfigMapMissing(r.name.clone())),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name) {
                Some(s) => {
                    for k in s.data.iter().flat_map(|d| d.keys()) {
                        let v = decode_secret(s, k).unwrap_or_default();
                        set(format!("{prefix}{k}"), v, &mut order, &mut values);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError::SecretMissing(r.name.clone())),
            }
        }
    }
    for e in container.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            expand(v, &values)
        } else if let Some(from) = &e.value_from {
            if let Some(r) = &from.config_map_key_ref {
                let found =
                    sources.configmaps.get(&r.name).map(|cm| cm.data.as_ref().and_then(|d| d.get(&r.key)).cloned());
                match found {
                    Some(Some(v)) => v,
                    _ if r.optional == Some(true) => continue,
                    None => return Err(ConfigError::ConfigMapMissing(r.name.clone())),
                    Some(None) => {
                        return Err(ConfigError::KeyMissing {
                            kind: "configmap",
                            namespace: ns.clone(),
                            name: r.name.clone(),
                            key: r.key.clone(),
                        });
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                match sources.secrets.get(&r.name).map(|s| decode_secret(s, &r.key)) {
                    Some(Some(v)) => v,
                    _ if r.optional == Some(true) => continue,
                    None => return Err(ConfigError::SecretMissing(r.name.clone())),
                    Some(None) => {
                        return Err(ConfigError::KeyMissing {
                            kind: "secret",
                            namespace: ns.clone(),
                            name: r.name.clone(),
                            key: r.key.clone(),
                        });
                    }
                }
            } else if let Some(r) = &from.field_ref {
                field_value(pod, &r.field_path, pod_ip, host_ip)?
            } else if let Some(r) = &from.resource_field_ref {
                let target = r
                    .container_name
                    .as_ref()
                    .and_then(|n| all_containers(pod).find(|c| &c.name == n))
                    .unwrap_or(container);
                quantity_value(target, &r.resource, r.divisor.as_ref().map(|d| d.0.as_str()))
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(e.name.clone(), value, &mut order, &mut values);
    }
    Ok(order.into_iter().map(|k| (k.clone(), values[&k].clone())).collect())
}

/// CPU shares, CFS quota (period 100 ms) and the memory limit from requests and limits.
pub fn linux_resources(container: &Container) -> cri::LinuxContainerResources {
    let res = container.resources.as_ref();
    let get = |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>, k: &str| {
        m.and_then(|m| m.get(k)).map(|q| q.0.clone())
    };
    let limits = res.and_then(|r| r.limits.as_ref());
    let requests = res.and_then(|r| r.requests.as_ref());
    let cpu_request = get(requests, "cpu").or_else(|| get(limits, "cpu"));
    // Upstream's MilliCPUToShares and MilliCPUToQuota (100 ms period, 1 ms minimum).
    let shares = cpu_request.map_or(2, |q| (quantity::milli(&q) * 1024 / 1000).max(2));
    let quota = get(limits, "cpu").map_or(0, |q| (quantity::milli(&q) * 100).max(1000));
    let memory = get(limits, "memory").map_or(0, |q| quantity::value(&q));
    cri::LinuxContainerResources {
        cpu_shares: shares,
        cpu_period: if quota > 0 { 100_000 } else { 0 },
        cpu_quota: quota,
        memory_limit_in_bytes: memory,
        ..Default::default()
    }
}

/// The CRI configuration of one container attempt.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    attempt: u32,
    env: Vec<(String, String)>,
    mounts: Vec<cri::Mount>,
) -> cri::ContainerConfig {
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let expand_all = |v: &Option<Vec<String>>| v.iter().flatten().map(|s| expand(s, &vars)).collect::<Vec<_>>();
    let mut labels = pod_labels(pod);
    labels.insert(LABEL_CONTAINER_NAME.into(), container.name.clone());
    let security = container.security_context.as_ref();
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: container.name.clone(), attempt }),
        image: Some(cri::ImageSpec { image: container.image.clone().unwrap_or_default(), ..Default::default() }),
        command: expand_all(&container.command),
        args: expand_all(&container.args),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: env.into_iter().map(|(key, value)| cri::KeyValue { key, value }).collect(),
        mounts,
        labels,
        annotations: HashMap::from([(ANNOTATION_RESTART_COUNT.to_string(), attempt.to_string())]),
        log_path: format!("{}/{attempt}.log", container.name),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(linux_resources(container)),
            security_context: Some(cri::LinuxContainerSecurityContext {
                privileged: security.and_then(|s| s.privileged).unwrap_or(false),
                run_as_user: security.and_then(|s| s.run_as_user).map(|value| cri::Int64Value { value }),
                readonly_rootfs: security.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pod_dns_follows_dns_policy_as_upstream() {
        let cluster = ClusterDns { servers: vec!["10.96.0.10".into()], domain: "cluster.local".into() };
        let host = cri::DnsConfig {
            servers: vec!["192.0.2.53".into()],
            searches: vec!["corp.example".into()],
            options: vec!["edns0".into()],
        };
        let pod = |spec: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": spec}))
                .unwrap()
        };
        let dns = |servers: &[&str], searches: &[&str], options: &[&str]| {
            Some(cri::DnsConfig {
                servers: servers.iter().map(|s| s.to_string()).collect(),
                searches: searches.iter().map(|s| s.to_string()).collect(),
                options: options.iter().map(|s| s.to_string()).collect(),
            })
        };
        let cluster_search = ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"];
        let cases = [
            (serde_json::json!({"containers": []}), dns(&["10.96.0.10"], &cluster_search, &["ndots:5"])),
            (serde_json::json!({"dnsPolicy": "ClusterFirst"}), dns(&["10.96.0.10"], &cluster_search, &["ndots:5"])),
            (serde_json::json!({"dnsPolicy": "Default"}), dns(&["192.0.2.53"], &["corp.example"], &["edns0"])),
            // host-network pods keep the node's resolv.conf unless they ask for cluster DNS
            (serde_json::json!({"hostNetwork": true}), None),
            (
                serde_json::json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
                dns(&["10.96.0.10"], &cluster_search, &["ndots:5"]),
            ),
            (
                serde_json::json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.2.3.4"], "searches": ["a.b"],
                    "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}),
                dns(&["1.2.3.4"], &["a.b"], &["ndots:2", "edns0"]),
            ),
            // dnsConfig adds to the policy's base; a pod option replaces the one of the same name
            (
                serde_json::json!({"dnsConfig": {"nameservers": ["10.96.0.10", "1.1.1.1"], "searches": ["x.y"],
                    "options": [{"name": "ndots", "value": "1"}]}}),
                dns(&["10.96.0.10", "1.1.1.1"], &[&cluster_search[..], &["x.y"]].concat(), &["ndots:1"]),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(pod_dns(&pod(spec.clone()), &cluster, &host), want, "{spec}");
        }
        // a cluster without DNS gives ClusterFirst pods the node's resolvers (upstream falls back the same way)
        let none = ClusterDns { servers: vec![], domain: "cluster.local".into() };
        assert_eq!(pod_dns(&pod(serde_json::json!({})), &none, &host), Some(host.clone()));
    }

    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "monpod", "namespace": "default", "uid": "u1", "labels": {"app": "x"}},
            "spec": {"nodeName": "n1", "containers": containers}
        }))
        .unwrap()
    }

    #[test]
    fn expansion_follows_upstream() {
        let vars = HashMap::from([("A".to_string(), "1".to_string()), ("B".to_string(), "two".to_string())]);
        let cases = [
            ("$(A)", "1"),
            ("x$(A)y$(B)", "x1ytwo"),
            ("$(C)", "$(C)"),
            ("$$(A)", "$(A)"),
            ("$A", "$A"),
            ("$(A", "$(A"),
            ("cost: 5$", "cost: 5$"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &vars), want, "{input}");
        }
    }

    #[test]
    fn env_from_configmap_with_prefix_then_values_and_refs() {
        let p = pod(json!([{
            "name": "c", "image": "busybox",
            "envFrom": [{"configMapRef": {"name": "personne"}, "prefix": "P_"}],
            "env": [
                {"name": "NOM", "valueFrom": {"configMapKeyRef": {"name": "personne", "key": "NOM"}}},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "GREETING", "value": "bonjour $(NOM)"},
            ]
        }]));
        let mut sources = EnvSources::default();
        sources.configmaps.insert(
            "personne".into(),
            serde_json::from_value(
                json!({"metadata": {"name": "personne"}, "data": {"NOM": "Xavier", "PASSION": "blogging"}}),
            )
            .unwrap(),
        );
        sources.secrets.insert(
            "s".into(),
            serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {"pw": "c2VjcmV0"}})).unwrap(),
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let env = container_env(&p, c, &sources, "10.244.0.5", "192.0.2.1").unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("P_NOM"), Some("Xavier"));
        assert_eq!(get("P_PASSION"), Some("blogging"));
        assert_eq!(get("NOM"), Some("Xavier"));
        assert_eq!(get("PW"), Some("secret"));
        assert_eq!(get("ME"), Some("monpod"));
        assert_eq!(get("IP"), Some("10.244.0.5"));
        assert_eq!(get("GREETING"), Some("bonjour Xavier"));
    }

    #[test]
    fn missing_sources_are_config_errors_unless_optional() {
        let p = pod(json!([{
            "name": "c", "image": "busybox",
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]
        }]));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let err = container_env(&p, c, &EnvSources::default(), "", "").unwrap_err();
        assert_eq!(err.to_string(), "configmap \"nope\" not found");
        let p = pod(json!([{
            "name": "c", "image": "busybox",
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}}]
        }]));
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert!(container_env(&p, c, &EnvSources::default(), "", "").unwrap().is_empty());
    }

    #[test]
    fn resources_become_shares_quota_and_memory_limit() {
        let p = pod(json!([{
            "name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}
        }]));
        let r = linux_resources(&p.spec.as_ref().unwrap().containers[0]);
        assert_eq!((r.cpu_shares, r.cpu_quota, r.cpu_period), (256, 50_000, 100_000));
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
    }

    #[test]
    fn container_config_expands_command_and_labels_the_attempt() {
        let p = pod(json!([{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo $(NOM)"]}]));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let cfg = container_config(&p, c, 3, vec![("NOM".into(), "Xavier".into())], Vec::new());
        assert_eq!(cfg.command, ["sh", "-c", "echo Xavier"]);
        assert_eq!(cfg.metadata.unwrap().attempt, 3);
        assert_eq!(cfg.labels[LABEL_POD_UID], "u1");
        assert_eq!(cfg.labels[LABEL_CONTAINER_NAME], "c");
        assert_eq!(cfg.log_path, "c/3.log");
    }
}
