//! Registry mirrors and credentials from `<data-dir>/agent/registries.yaml`, in k3s's
//! format, turned into configuration for containerd 1.6's CRI plugin the way k3s does.
//!
//! Mirrors become one `hosts.toml` per registry under the folder named by the CRI
//! plugin's `registry.config_path` (`<agent>/containerd/certs.d/<registry>/hosts.toml`),
//! with the TLS settings of `configs` on each endpoint. Credentials cannot go into a
//! `hosts.toml` in containerd 1.6, but its CRI plugin still looks them up per endpoint
//! host in `registry.configs."<host>".auth` of config.toml when `config_path` is set, so
//! they go there (as k3s does).
//!
//! [`parse`] and [`translate`] are pure; [`load`] and [`write_hosts`] do the file work.
//!
//! Pods' `imagePullSecrets` are the other source of credentials: as upstream's kubelet,
//! the agent picks the entry of the secrets' docker config that matches the image
//! ([`pull_secret_auth`]) and passes it with the CRI PullImage call, where it takes the
//! place of registries.yaml's credentials.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid registry configuration {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write the registry configuration {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The file's contents: `mirrors` by registry name (`"*"` for every registry) and
/// `configs` by registry host (a mirror endpoint's `host[:port]`, or a registry's name).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// k3s rewrites repository names with these; stock containerd 1.6 cannot, so they
    /// are accepted and reported as ignored.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub auth: Option<Auth>,
    pub tls: Option<Tls>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `username:password`.
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub identity_token: String,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// What containerd gets: the `hosts.toml` files (folder name under `config_path`, text)
/// and the lines appended to config.toml.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Containerd {
    pub hosts: BTreeMap<String, String>,
    pub config_toml: String,
    /// Settings accepted but without effect here, to log at start.
    pub warnings: Vec<String>,
}

/// `<agent>/registries.yaml`, read when the agent starts its containerd.
pub fn file(paths: &crate::Paths) -> PathBuf {
    paths.agent_dir.join("registries.yaml")
}

/// The CRI plugin's `config_path`: generated from registries.yaml at every start.
pub fn certs_dir(paths: &crate::Paths) -> PathBuf {
    paths.containerd_dir().join("certs.d")
}

/// Parses registries.yaml; an empty file means no mirrors. The message is one line.
pub fn parse(text: &str) -> Result<Registries, String> {
    if text.trim().is_empty() {
        return Ok(Registries::default());
    }
    // The parser's message is followed by a snippet of the input; its first line
    // (position and reason) is what a one-line error needs.
    let parsed: Option<Registries> = serde_saphyr::from_str(text).map_err(|e| {
        let message = e.to_string();
        let first = message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("cannot parse");
        first.strip_prefix("error: ").unwrap_or(first).to_string()
    })?;
    Ok(parsed.unwrap_or_default())
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `scheme://host[:port][/path]` of an endpoint, with k3s's default scheme https.
fn normalize_endpoint(endpoint: &str) -> Result<(String, String), String> {
    let e = endpoint.trim();
    let (scheme, rest) = e.split_once("://").unwrap_or(("https", e));
    if scheme != "http" && scheme != "https" {
        return Err(format!("endpoint {endpoint:?}: scheme must be http or https"));
    }
    let rest = rest.trim_end_matches('/');
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("endpoint {endpoint:?} has no host"));
    }
    Ok((format!("{scheme}://{rest}"), host.to_string()))
}

/// Where containerd looks for a registry's settings: the registry name, `_default` for
/// every registry (k3s's `"*"`).
fn host_dir(registry: &str) -> Result<String, String> {
    if registry == "*" {
        return Ok("_default".into());
    }
    let valid = !registry.is_empty()
        && !registry.contains('/')
        && registry != "."
        && registry != ".."
        && registry.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:[]".contains(c));
    if valid { Ok(registry.to_string()) } else { Err(format!("{registry:?} is not a registry host name")) }
}

/// `localhost[:port]` or a loopback address.
fn is_localhost(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The upstream server of a registry, which containerd falls back to after the mirrors.
/// None for `"*"` and for local registries: containerd's own default then applies (for
/// a local registry plain HTTP, as without registries.yaml).
fn default_server(registry: &str) -> Option<String> {
    match registry {
        "*" => None,
        r if is_localhost(r) => None,
        "docker.io" => Some("https://registry-1.docker.io".into()),
        r => Some(format!("https://{r}")),
    }
}

/// The TLS lines of one host from its `configs` entry.
fn tls_lines(tls: &Tls, indent: &str, what: &str) -> Result<String, String> {
    let mut out = String::new();
    if let Some(ca) = &tls.ca_file {
        out.push_str(&format!("{indent}ca = {}\n", quote(ca)));
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => out.push_str(&format!("{indent}client = [[{}, {}]]\n", quote(cert), quote(key))),
        (None, None) => {}
        _ => return Err(format!("configs {what:?}: tls needs both cert_file and key_file")),
    }
    if tls.insecure_skip_verify {
        out.push_str(&format!("{indent}skip_verify = true\n"));
    }
    Ok(out)
}

/// Turns registries.yaml into containerd's files; `certs_dir` is the `config_path`.
pub fn translate(reg: &Registries, certs_dir: &Path) -> Result<Containerd, String> {
    let mut out = Containerd {
        config_toml: format!(
            "\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = {}\n",
            quote(&certs_dir.display().to_string())
        ),
        ..Containerd::default()
    };
    let config_tls = |host: &str, indent: &str| -> Result<String, String> {
        match reg.configs.get(host).and_then(|c| c.tls.as_ref()) {
            Some(tls) => tls_lines(tls, indent, host),
            None => Ok(String::new()),
        }
    };
    for (registry, mirror) in &reg.mirrors {
        let dir = host_dir(registry).map_err(|e| format!("mirrors: {e}"))?;
        if !mirror.rewrite.is_empty() {
            out.warnings
                .push(format!("mirrors {registry:?}: rewrite is not supported by containerd 1.6 and is ignored"));
        }
        let server = default_server(registry);
        let mut text = String::new();
        if let Some(server) = &server {
            text.push_str(&format!("server = {}\n", quote(server)));
            text.push_str(&config_tls(registry, "")?);
        }
        for endpoint in &mirror.endpoint {
            let (url, host) = normalize_endpoint(endpoint).map_err(|e| format!("mirrors {registry:?}: {e}"))?;
            // The upstream server is tried last anyway; listing it as a mirror too would
            // only try it twice.
            if server.as_deref() == Some(url.as_str()) {
                continue;
            }
            text.push_str(&format!("\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n", quote(&url)));
            text.push_str(&config_tls(&host, "  ")?);
        }
        out.hosts.insert(dir, text);
    }
    for (host, config) in &reg.configs {
        let dir = host_dir(host).map_err(|e| format!("configs: {e}"))?;
        // A registry with settings but no mirror: its own server with its TLS settings.
        if !out.hosts.contains_key(&dir)
            && let (Some(server), Some(tls)) = (default_server(host), &config.tls)
        {
            out.hosts.insert(dir, format!("server = {}\n{}", quote(&server), tls_lines(tls, "", host)?));
        }
        if let Some(auth) = &config.auth {
            if host == "*" {
                out.warnings
                    .push("configs \"*\": credentials for every registry are not supported and are ignored".into());
                continue;
            }
            let mut lines = String::new();
            for (key, value) in [
                ("username", &auth.username),
                ("password", &auth.password),
                ("auth", &auth.auth),
                ("identitytoken", &auth.identity_token),
            ] {
                if !value.is_empty() {
                    lines.push_str(&format!("    {key} = {}\n", quote(value)));
                }
            }
            if !lines.is_empty() {
                out.config_toml.push_str(&format!(
                    "  [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.{}.auth]\n{lines}",
                    quote(host)
                ));
            }
        }
    }
    Ok(out)
}

/// Reads and translates `path`; a missing file means no mirrors (but `config_path` is
/// still set, so containerd looks in the generated, empty, folder).
pub fn load(path: &Path, certs_dir: &Path) -> Result<Containerd, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(Error::Read { path: path.into(), source }),
    };
    let invalid = |message| Error::Invalid { path: path.into(), message };
    let reg = parse(&text).map_err(invalid)?;
    translate(&reg, certs_dir).map_err(invalid)
}

/// Replaces `certs_dir` with the generated `hosts.toml` files: the folder is ours, so a
/// mirror removed from registries.yaml goes away at the next start.
pub fn write_hosts(certs_dir: &Path, generated: &Containerd) -> Result<(), Error> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    match std::fs::remove_dir_all(certs_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(certs_dir)(e)),
    }
    std::fs::create_dir_all(certs_dir).map_err(err(certs_dir))?;
    for (dir, text) in &generated.hosts {
        let dir = certs_dir.join(dir);
        std::fs::create_dir_all(&dir).map_err(err(&dir))?;
        let file = dir.join("hosts.toml");
        std::fs::write(&file, text).map_err(err(&file))?;
    }
    Ok(())
}

/// The registry host and repository path of an image reference, as upstream's
/// credential keyring sees them: `nginx:1.16` is `docker.io` + `library/nginx`.
fn image_location(image: &str) -> (String, String) {
    let name = image.split('@').next().unwrap_or(image);
    // A tag is after the last ':' unless that ':' belongs to the registry's port.
    let name = match name.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => n,
        _ => name,
    };
    match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (docker_hub(first).to_string(), rest.to_string())
        }
        Some(_) => ("docker.io".into(), name.to_string()),
        None => ("docker.io".into(), format!("library/{name}")),
    }
}

/// The names Docker Hub goes by in docker configs, as one.
fn docker_hub(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        h => h,
    }
}

/// A docker config key (`https://index.docker.io/v1/`, `r.example:5000/team`,
/// `*.example.com`) as host and path prefix.
fn key_location(key: &str) -> (String, String) {
    let key = key.trim();
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let (host, path) = key.split_once('/').unwrap_or((key, ""));
    // docker treats /v1/ and /v2/ as the registry itself.
    let path = path
        .strip_prefix("v1")
        .or_else(|| path.strip_prefix("v2"))
        .filter(|p| p.is_empty() || p.starts_with('/'))
        .unwrap_or(path);
    (docker_hub(host).to_string(), path.trim_matches('/').to_string())
}

/// `*` in a key's host matches one whole dot-separated part (`*.example.com`).
fn host_matches(pattern: &str, host: &str) -> bool {
    let (p_name, p_port) = pattern.split_once(':').unwrap_or((pattern, ""));
    let (h_name, h_port) = host.split_once(':').unwrap_or((host, ""));
    let (p_parts, h_parts): (Vec<_>, Vec<_>) = (p_name.split('.').collect(), h_name.split('.').collect());
    p_port == h_port
        && p_parts.len() == h_parts.len()
        && p_parts.iter().zip(&h_parts).all(|(p, h)| *p == "*" || p.eq_ignore_ascii_case(h))
}

/// The credentials for `image` among `docker_configs`, the contents of the pod's image
/// pull secrets (`.dockerconfigjson`, `{"auths": {...}}`, or the older `.dockercfg`,
/// the map alone), in the pod's order. The most specific matching key wins (upstream's
/// keyring would also try the others after a failed pull). Unparsable configs are
/// skipped, as upstream does.
pub fn pull_secret_auth(image: &str, docker_configs: &[&[u8]]) -> Option<k8s_cri::v1::AuthConfig> {
    let (host, path) = image_location(image);
    let mut best: Option<(usize, k8s_cri::v1::AuthConfig)> = None;
    for config in docker_configs {
        let Ok(serde_json::Value::Object(mut doc)) = serde_json::from_slice(config) else {
            continue;
        };
        let auths = match doc.remove("auths") {
            Some(serde_json::Value::Object(auths)) => auths,
            _ => doc,
        };
        for (key, entry) in &auths {
            let (k_host, k_path) = key_location(key);
            let path_ok = k_path.is_empty() || path == k_path || path.starts_with(&format!("{k_path}/"));
            if !host_matches(&k_host, &host) || !path_ok {
                continue;
            }
            let specificity = k_host.len() + k_path.len();
            if best.as_ref().is_some_and(|(s, _)| *s >= specificity) {
                continue;
            }
            let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let auth = k8s_cri::v1::AuthConfig {
                username: field("username"),
                password: field("password"),
                auth: field("auth"),
                // Left empty as upstream's kubelet does: containerd would only send the
                // credentials to a host equal to this address parsed as a URL.
                server_address: String::new(),
                identity_token: field("identitytoken"),
                registry_token: field("registrytoken"),
            };
            best = Some((specificity, auth));
        }
    }
    best.map(|(_, auth)| auth)
}

/// Reads the pod's image pull secrets and picks the credentials for `image`; also
/// returns the secrets that could not be read (upstream pulls anyway and says so).
pub async fn pod_pull_auth(
    client: &kube::Client,
    pod: &k8s_openapi::api::core::v1::Pod,
    image: &str,
) -> (Option<k8s_cri::v1::AuthConfig>, Vec<String>) {
    let refs = pod.spec.as_ref().and_then(|s| s.image_pull_secrets.as_ref());
    let Some(refs) = refs.filter(|r| !r.is_empty()) else {
        return (None, Vec::new());
    };
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client.clone(), &ns);
    let (mut configs, mut missing) = (Vec::new(), Vec::new());
    for name in refs.iter().map(|r| r.name.clone()) {
        match api.get_opt(&name).await {
            Ok(Some(secret)) => {
                let data = secret.data.unwrap_or_default();
                match data.get(".dockerconfigjson").or_else(|| data.get(".dockercfg")) {
                    Some(bytes) => configs.push(bytes.0.clone()),
                    None => missing.push(name),
                }
            }
            Ok(None) | Err(_) => missing.push(name),
        }
    }
    let slices: Vec<&[u8]> = configs.iter().map(Vec::as_slice).collect();
    (pull_secret_auth(image, &slices), missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERTS: &str = "/d/agent/containerd/certs.d";

    fn translated(yaml: &str) -> Containerd {
        translate(&parse(yaml).expect("parses"), Path::new(CERTS)).expect("translates")
    }

    #[test]
    fn hosts_files_by_table() {
        // (registries.yaml, folder, the whole hosts.toml)
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"mirrors: {docker.io: {endpoint: ["http://127.0.0.1:5000"]}}"#,
                "docker.io",
                "server = \"https://registry-1.docker.io\"\n\n[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            ),
            (
                // k3s's default scheme is https; a trailing slash is dropped
                r#"mirrors: {quay.io: {endpoint: ["mirror.example:8443/"]}}"#,
                "quay.io",
                "server = \"https://quay.io\"\n\n[host.\"https://mirror.example:8443\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            ),
            (
                // several endpoints in order; the upstream itself is not repeated
                "mirrors:\n  docker.io:\n    endpoint:\n      - https://a.example\n      - https://registry-1.docker.io\n      - http://b.example:5000/v2\n",
                "docker.io",
                "server = \"https://registry-1.docker.io\"\n\n[host.\"https://a.example\"]\n  capabilities = [\"pull\", \"resolve\"]\n\n[host.\"http://b.example:5000/v2\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            ),
            (
                // "*": every registry, containerd's _default folder, no server of its own
                r#"mirrors: {"*": {endpoint: ["http://127.0.0.1:5000"]}}"#,
                "_default",
                "\n[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            ),
            (
                // a local registry keeps containerd's default for it (plain HTTP)
                r#"mirrors: {"127.0.0.1:5000": {endpoint: ["http://127.0.0.1:5000"]}}"#,
                "127.0.0.1:5000",
                "\n[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            ),
            (
                // TLS of configs goes on the endpoint whose host it names
                "mirrors:\n  docker.io:\n    endpoint: [\"https://m.example:5000\"]\nconfigs:\n  m.example:5000:\n    tls: {ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem, insecure_skip_verify: true}\n",
                "docker.io",
                "server = \"https://registry-1.docker.io\"\n\n[host.\"https://m.example:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"/ca.pem\"\n  client = [[\"/c.pem\", \"/k.pem\"]]\n  skip_verify = true\n",
            ),
            (
                // a registry with TLS settings and no mirror: its own server
                "configs:\n  private.example:\n    tls: {ca_file: /ca.pem}\n",
                "private.example",
                "server = \"https://private.example\"\nca = \"/ca.pem\"\n",
            ),
        ];
        for (yaml, dir, want) in cases {
            let got = translated(yaml);
            assert_eq!(got.hosts.get(*dir).map(String::as_str), Some(*want), "{yaml}\n{:#?}", got.hosts);
        }
        // An endpoint's TLS settings also apply when it is pulled from by name.
        let got = translated(cases[5].0);
        assert_eq!(got.hosts.keys().collect::<Vec<_>>(), ["docker.io", "m.example:5000"]);
        assert_eq!(
            got.hosts["m.example:5000"],
            "server = \"https://m.example:5000\"\nca = \"/ca.pem\"\nclient = [[\"/c.pem\", \"/k.pem\"]]\nskip_verify = true\n"
        );
    }

    #[test]
    fn pull_secrets_by_table() {
        let hub = br#"{"auths": {"https://index.docker.io/v1/": {"username": "hub", "password": "h"}}}"#;
        let local = br#"{"auths": {"localhost:5000": {"auth": "dTpw"}}}"#;
        let team = br#"{"auths": {"r.example": {"username": "any"}, "r.example/team": {"username": "team"}}}"#;
        let wild = br#"{"*.corp.example": {"username": "wild", "password": "w"}}"#; // .dockercfg
        let token = br#"{"auths": {"ghcr.example": {"identitytoken": "tok"}}}"#;
        // (image, secrets, expected username or auth or token; "" for none)
        let cases: &[(&str, &[&[u8]], &str)] = &[
            ("nginx:1.16", &[hub], "hub"),
            ("docker.io/library/nginx", &[hub], "hub"),
            ("user/app@sha256:abc", &[hub], "hub"),
            ("localhost:5000/app:1", &[hub], ""),
            ("localhost:5000/app:1", &[hub, local], "dTpw"),
            ("localhost:5001/app:1", &[local], ""),
            ("localhost/app", &[local], ""),
            ("r.example/team/app:2", &[team], "team"),
            ("r.example/teamx/app:2", &[team], "any"),
            ("r.example/other:2", &[team], "any"),
            ("a.corp.example/x", &[wild], "wild"),
            ("a.b.corp.example/x", &[wild], ""),
            ("ghcr.example/o/i", &[b"not json", token], "tok"),
            ("nginx", &[], ""),
        ];
        for (image, secrets, want) in cases {
            let got = pull_secret_auth(image, secrets);
            let seen = got.as_ref().map(|a| {
                [&a.username, &a.auth, &a.identity_token]
                    .into_iter()
                    .find(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_default()
            });
            assert_eq!(seen.unwrap_or_default(), *want, "{image}");
        }
        let a = pull_secret_auth("nginx", &[hub]).unwrap();
        assert_eq!((a.password.as_str(), a.server_address.as_str()), ("h", ""));
    }

    #[test]
    fn local_registries() {
        for (name, local) in [
            ("localhost", true),
            ("localhost:5000", true),
            ("127.0.0.1:5000", true),
            ("127.1.2.3", true),
            ("[::1]:5000", true),
            ("::1", true),
            ("docker.io", false),
            ("10.0.0.1:5000", false),
            ("localhost.example:5000", false),
        ] {
            assert_eq!(is_localhost(name), local, "{name}");
        }
    }

    #[test]
    fn credentials_go_to_config_toml() {
        // (registries.yaml, expected auth lines)
        let cases: &[(&str, &str)] = &[
            (
                "configs: {\"127.0.0.1:5000\": {auth: {username: u, password: p}}}",
                "  [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"127.0.0.1:5000\".auth]\n    username = \"u\"\n    password = \"p\"\n",
            ),
            (
                "configs: {r.example: {auth: {auth: dTpw}}}",
                "  [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r.example\".auth]\n    auth = \"dTpw\"\n",
            ),
            (
                "configs: {r.example: {auth: {identity_token: \"t\\\"q\"}}}",
                "  [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r.example\".auth]\n    identitytoken = \"t\\\"q\"\n",
            ),
            ("configs: {r.example: {auth: {}}}", ""),
        ];
        for (yaml, want) in cases {
            let got = translated(yaml);
            let head = format!("\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{CERTS}\"\n");
            assert_eq!(got.config_toml, format!("{head}{want}"), "{yaml}");
            // credentials alone need no hosts.toml
            assert!(got.hosts.is_empty(), "{yaml}: {:?}", got.hosts);
        }
    }

    #[test]
    fn nothing_configured_still_sets_config_path() {
        for yaml in ["", "# nothing\n", "mirrors: {}\n", "{}"] {
            let got = translated(yaml);
            assert!(got.hosts.is_empty(), "{yaml}");
            assert!(got.config_toml.contains(&format!("config_path = \"{CERTS}\"")), "{yaml}");
            assert!(!got.config_toml.contains("configs"), "{yaml}");
        }
    }

    #[test]
    fn rewrites_are_reported_as_ignored() {
        let got = translated(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://m:5000\"]\n    rewrite: {\"^library/(.*)\": \"mirrored/$1\"}\n",
        );
        assert_eq!(got.warnings.len(), 1);
        assert!(got.warnings[0].contains("rewrite"), "{:?}", got.warnings);
        assert!(got.hosts.contains_key("docker.io"));
    }

    #[test]
    fn bad_files_are_errors_of_one_line() {
        // (registries.yaml, part of the message)
        let cases: &[(&str, &str)] = &[
            ("mirrors: [", ""),
            ("mirrors:\n  docker.io:\n    endpoints: [\"http://x\"]\n", "endpoints"),
            ("mirors: {}\n", "mirors"),
            ("mirrors:\n  docker.io:\n    endpoints: [\"http://x\"]\n", "line 3 column 5: unknown field `endpoints`"),
            ("mirrors: {docker.io: {endpoint: \"http://x\"}}\n", ""),
            ("mirrors: {docker.io: {endpoint: [\"ftp://x\"]}}\n", "scheme"),
            ("mirrors: {docker.io: {endpoint: [\"http://\"]}}\n", "no host"),
            ("mirrors: {\"../etc\": {endpoint: [\"http://x\"]}}\n", "not a registry host name"),
            ("configs: {x.example: {tls: {cert_file: /c.pem}}}\n", "cert_file and key_file"),
        ];
        for (yaml, part) in cases {
            let err = parse(yaml).and_then(|r| translate(&r, Path::new(CERTS))).expect_err(yaml);
            assert!(!err.contains('\n'), "{yaml}: {err}");
            assert!(err.contains(part), "{yaml}: {err}");
        }
    }

    #[test]
    fn load_names_the_file_and_write_replaces_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("registries.yaml");
        let certs = tmp.path().join("certs.d");
        // missing file: no mirrors
        let none = load(&file, &certs).unwrap();
        assert!(none.hosts.is_empty());

        std::fs::write(&file, "mirrors: {docker.io: {endpoint: [\"http://127.0.0.1:5000\"]}}\n").unwrap();
        let one = load(&file, &certs).unwrap();
        std::fs::create_dir_all(certs.join("stale.example")).unwrap();
        write_hosts(&certs, &one).unwrap();
        let written = std::fs::read_to_string(certs.join("docker.io/hosts.toml")).unwrap();
        assert!(written.contains("[host.\"http://127.0.0.1:5000\"]"), "{written}");
        assert!(!certs.join("stale.example").exists());

        std::fs::write(&file, "mirrors: [\n").unwrap();
        let err = load(&file, &certs).unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
