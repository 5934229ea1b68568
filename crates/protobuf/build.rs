//! Derives the protobuf schema table for `rkube-protobuf` at build time.
//!
//! Kubernetes' `generated.proto` files are not shipped by any crate, but two crates.io
//! dependencies carry most of what is needed:
//! - `k8s-pb` (prost-generated Rust): message names, field numbers and wire types, read
//!   from its `#[prost(...)]` attributes, with fields in declaration order, which
//!   go-to-protobuf takes from the Go struct and so is the order Go's JSON encoder uses;
//! - `k8s-openapi` (serde code): the exact JSON field names (`podIPs`, `hostIPC`, which
//!   prost's snake_case loses) and which fields are required (non-`Option`).
//!
//! Neither says whether a Go field is a pointer or an inline embedded struct (the proto
//! marks every field `optional` and nests embedded structs), so that comes from
//! `go_fields.txt`, extracted from the Go types; see its header.
//!
//! Both crates are dependencies of this crate, so cargo has unpacked their sources before
//! this script runs; we find them under `$CARGO_HOME/registry/src/*/`. Set
//! `RKUBE_K8S_PB_SRC` / `RKUBE_K8S_OPENAPI_SRC` to a package directory to override (for
//! vendored builds). The output is `$OUT_DIR/schema.rs`: static tables, no parsing at run
//! time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

const K8S_PB: &str = "k8s-pb-0.9.0";
const K8S_OPENAPI: &str = "k8s-openapi-0.29.0";
/// Searched in this order; the first version that has a field decides whether it is
/// required, later ones only add JSON names of newer fields.
const OPENAPI_VERSIONS: &[&str] = &["v1_33", "v1_34", "v1_35", "v1_36", "v1_37"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=go_fields.txt");
    println!("cargo:rerun-if-env-changed=RKUBE_K8S_PB_SRC");
    println!("cargo:rerun-if-env-changed=RKUBE_K8S_OPENAPI_SRC");
    let pb = package_dir("RKUBE_K8S_PB_SRC", K8S_PB);
    let openapi = package_dir("RKUBE_K8S_OPENAPI_SRC", K8S_OPENAPI);

    let json_info = read_openapi(&openapi.join("src"));
    let go_path =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("go_fields.txt");
    let go = read_go_fields(&fs::read_to_string(&go_path).expect("read go_fields.txt"));
    let mut messages = Vec::new();
    read_pb_dir(&pb.join("src"), &mut Vec::new(), &mut messages);
    let out = render(&messages, &json_info, &go);
    let path = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("schema.rs");
    fs::write(&path, out).expect("write schema.rs");
}

fn package_dir(var: &str, name: &str) -> PathBuf {
    if let Ok(dir) = env::var(var) {
        return PathBuf::from(dir);
    }
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME must be set to find dependency sources");
    let registry = cargo_home.join("registry").join("src");
    let found = fs::read_dir(&registry)
        .ok()
        .and_then(|entries| entries.flatten().map(|e| e.path().join(name)).find(|p| p.join("Cargo.toml").is_file()));
    match found {
        Some(dir) => dir,
        None => panic!("cannot find the {name} sources under {}; set {var}", registry.display()),
    }
}

/// JSON names and required flags of one k8s-openapi struct, keyed by the normalised
/// name (see [`norm`]).
#[derive(Default)]
struct JsonFields {
    fields: HashMap<String, (String, bool)>,
}

/// Lowercase ASCII alphanumerics only, so that prost's `external_i_ps` finds
/// `externalIPs`, and `x_kubernetes_list_type` and `r#ref` find `x-kubernetes-list-type`
/// and `$ref`.
fn norm(s: &str) -> String {
    s.trim_start_matches("r#").chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// Whether JSON keeps a zero value of a scalar field; the marks of `go_fields.txt`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zero {
    /// `*name`: a Go pointer, on the wire only when set.
    Pointer,
    /// `=name`: no `omitempty`.
    Always,
    /// `-name`: `omitempty` on a Go value, on the wire even when zero.
    OmitEmpty,
}

/// One line of `go_fields.txt`.
#[derive(Default)]
struct GoStruct {
    /// Scalar fields by normalised JSON name: the JSON name and its zero semantics.
    scalars: HashMap<String, (String, Zero)>,
    /// Other fields by normalised JSON name: the JSON name.
    names: HashMap<String, String>,
    /// Normalised protobuf names of the fields that are inline embedded structs.
    inline: HashSet<String>,
}

/// `go_fields.txt`, keyed by lowercase message path like the rest of the tables.
fn read_go_fields(text: &str) -> HashMap<String, GoStruct> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let path = words.next().unwrap_or_default().to_lowercase();
        let mut st = GoStruct::default();
        for word in words {
            let (zero, name) = match word.split_at(1) {
                ("*", name) => (Zero::Pointer, name),
                ("=", name) => (Zero::Always, name),
                ("-", name) => (Zero::OmitEmpty, name),
                ("^", name) => {
                    st.inline.insert(norm(name));
                    continue;
                }
                ("@", name) => {
                    st.names.insert(norm(name), name.to_string());
                    continue;
                }
                _ => panic!("go_fields.txt:{}: bad entry {word:?}", n + 1),
            };
            st.scalars.insert(norm(name), (name.to_string(), zero));
        }
        out.insert(path, st);
    }
    out
}

fn read_openapi(src: &Path) -> HashMap<String, JsonFields> {
    let mut out: HashMap<String, JsonFields> = HashMap::new();
    for version in OPENAPI_VERSIONS {
        let mut files = Vec::new();
        walk(&src.join(version), &mut files);
        for file in files {
            let Ok(text) = fs::read_to_string(&file) else { continue };
            let Some(def) = text.lines().next().and_then(|l| l.strip_prefix("// Generated from definition ")) else {
                continue;
            };
            let key = norm_def(def.trim());
            let entry = out.entry(key).or_default();
            let mut required_rust = Vec::new();
            let mut in_struct = false;
            for line in text.lines() {
                let t = line.trim();
                if t.starts_with("pub struct ") && t.ends_with('{') {
                    in_struct = true;
                } else if in_struct && t == "}" {
                    in_struct = false;
                } else if in_struct
                    && let Some((name, ty)) = t.strip_prefix("pub ").and_then(|r| r.split_once(": "))
                    && !ty.starts_with("Option<")
                {
                    required_rust.push(name.to_string());
                }
                // `"hostIP" => Field::Key_host_ip,` in the Deserialize impl.
                if let Some((json, rust)) = t.split_once("\" => Field::Key_") {
                    let json = json.trim_start_matches('"');
                    let rust = rust.trim_end_matches(',');
                    let required = required_rust.iter().any(|r| r.trim_start_matches("r#") == rust);
                    entry.fields.entry(norm(json)).or_insert((json.to_string(), required));
                }
            }
        }
    }
    out
}

/// `io.k8s.api.core.v1.ContainerPort` → `api.core.v1.containerport`.
fn norm_def(def: &str) -> String {
    def.trim_start_matches("io.k8s.").replace('-', "_").to_lowercase()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

struct PbField {
    tag: u32,
    rust_name: String,
    /// `string`, `bytes`, `bool`, `int32`, `int64`, `double` or `message`.
    kind: String,
    card: &'static str,
    /// Fully resolved message path (`api.core.v1.Container`) for message fields.
    type_path: Option<String>,
}

struct PbMessage {
    path: String,
    fields: Vec<PbField>,
}

fn read_pb_dir(dir: &Path, module: &mut Vec<String>, out: &mut Vec<PbMessage>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            module.push(name);
            read_pb_dir(&p, module, out);
            module.pop();
        } else if p.file_name().is_some_and(|n| n == "mod.rs") {
            let text = fs::read_to_string(&p).expect("read k8s-pb source");
            parse_pb_module(&text, module, out);
        }
    }
}

fn parse_pb_module(text: &str, module: &[String], out: &mut Vec<PbMessage>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut current: Option<PbMessage> = None;
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if let Some(rest) = t.strip_prefix("pub struct ") {
            let (name, empty) = match rest.strip_suffix("{}") {
                Some(name) => (name, true),
                None => (rest.trim_end_matches('{'), false),
            };
            let path = format!("{}.{}", module.join("."), name.trim());
            let msg = PbMessage { path, fields: Vec::new() };
            if empty {
                out.push(msg);
            } else {
                current = Some(msg);
            }
        } else if t == "}" {
            if let Some(m) = current.take() {
                out.push(m);
            }
        } else if let (Some(attr), Some(msg)) = (t.strip_prefix("#[prost("), current.as_mut()) {
            let attr = attr.trim_end_matches(")]");
            // The field declaration follows the attribute and may span lines.
            let mut decl = String::new();
            i += 1;
            while i < lines.len() {
                decl.push_str(lines[i].trim());
                if depth(&decl) == 0 && decl.ends_with(',') {
                    break;
                }
                i += 1;
            }
            if let Some(f) = parse_pb_field(attr, &decl, module) {
                msg.fields.push(f);
            }
        }
        i += 1;
    }
}

fn depth(s: &str) -> i32 {
    s.chars()
        .map(|c| match c {
            '<' => 1,
            '>' => -1,
            _ => 0,
        })
        .sum()
}

fn parse_pb_field(attr: &str, decl: &str, module: &[String]) -> Option<PbField> {
    let tag: u32 = attr.split("tag = \"").nth(1)?.split('"').next()?.parse().ok()?;
    let (name, ty) = decl.trim_start_matches("pub ").trim_end_matches(',').split_once(':')?;
    let rust_name = name.trim().to_string();
    let ty = ty.trim();
    let (kind, card) = if let Some(map) = attr.strip_prefix("btree_map = \"string, ") {
        (map.split('"').next()?.to_string(), "Map")
    } else {
        let kind = attr.split([',', ' ']).next()?.to_string();
        let card = if attr.contains("repeated") { "Repeated" } else { "Single" };
        (kind, card)
    };
    let type_path = if kind == "message" { Some(resolve(last_type(ty), module)) } else { None };
    Some(PbField { tag, rust_name, kind, card, type_path })
}

/// The message type inside `Option<Box<T>>`, `Vec<T>` or `BTreeMap<String, T>`.
fn last_type(ty: &str) -> &str {
    let mut inner = ty;
    while let Some(open) = inner.find('<') {
        inner = &inner[open + 1..inner.rfind('>').unwrap_or(inner.len())];
        if let Some((_, value)) = inner.split_once("String,") {
            inner = value;
        }
    }
    inner.trim().trim_end_matches(',')
}

fn resolve(ty: &str, module: &[String]) -> String {
    let mut path: Vec<&str> = module.iter().map(String::as_str).collect();
    let mut rest = ty;
    if let Some(r) = rest.strip_prefix("crate::") {
        path.clear();
        rest = r;
    }
    while let Some(r) = rest.strip_prefix("super::") {
        path.pop();
        rest = r;
    }
    path.extend(rest.split("::"));
    path.join(".")
}

fn camel(rust_name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in rust_name.trim_start_matches("r#").chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn is_scalar(f: &PbField) -> bool {
    f.kind != "message" && f.card == "Single"
}

/// Whether every field of `child` has a JSON name in `parent`, directly or through an
/// embedded struct of its own (`NamedRuleWithOperations` embeds `RuleWithOperations`,
/// which embeds `Rule`).
fn promotes_into<'a>(
    child: &PbMessage,
    parent: &JsonFields,
    by_path: &impl Fn(&str) -> Option<&'a PbMessage>,
    depth: usize,
) -> bool {
    !child.fields.is_empty()
        && child.fields.iter().all(|cf| {
            parent.fields.contains_key(&norm(&cf.rust_name))
                || depth < 2
                    && cf.card == "Single"
                    && cf
                        .type_path
                        .as_deref()
                        .and_then(by_path)
                        .is_some_and(|grandchild| promotes_into(grandchild, parent, by_path, depth + 1))
        })
}

fn render(messages: &[PbMessage], json: &HashMap<String, JsonFields>, go: &HashMap<String, GoStruct>) -> String {
    // Sorted by lowercase path so the library can binary-search kinds case-insensitively
    // (prost renames `CSIDriver` to `CsiDriver`).
    let mut sorted: Vec<&PbMessage> = messages.iter().collect();
    sorted.sort_by_key(|m| m.path.to_lowercase());
    sorted.dedup_by_key(|m| m.path.to_lowercase());
    let index: BTreeMap<String, usize> = sorted.iter().enumerate().map(|(i, m)| (m.path.to_lowercase(), i)).collect();
    let by_path = |path: &str| index.get(&path.to_lowercase()).map(|&i| sorted[i]);

    // Problems a stale `go_fields.txt` causes; a unit test asserts there are none.
    let mut issues: Vec<String> = Vec::new();
    for path in go.keys() {
        if !index.contains_key(path) {
            issues.push(format!("go_fields.txt: no message {path}"));
        }
    }

    // Inline embedded fields, as (lowercase message path, normalised field name).
    // `go_fields.txt` marks them, and k8s-openapi shows them too: an embedded struct has
    // no JSON name of its own, so the parent's k8s-openapi struct lacks the field but has
    // every field of the embedded message. Each covers messages the other lacks
    // (`extensions/v1beta1` is not in k8s-openapi, a message newer than `go_fields.txt`
    // is not there), and where both know a message they must agree.
    let mut inline: HashSet<(String, String)> = HashSet::new();
    // Embedded message → its parent, whose k8s-openapi struct has the JSON names of the
    // embedded fields (there is no `IngressRuleValue` definition).
    let mut inlined_into: HashMap<String, String> = HashMap::new();
    for m in &sorted {
        let key = m.path.to_lowercase();
        let info = json.get(&key);
        for f in &m.fields {
            let Some(child) = f.type_path.as_deref().and_then(by_path).filter(|_| f.card == "Single") else {
                continue;
            };
            let name = norm(&f.rust_name);
            let from_openapi =
                info.map(|info| !info.fields.contains_key(&name) && promotes_into(child, info, &by_path, 0));
            let from_go = go.get(&key).map(|g| g.inline.contains(&name));
            if let (Some(a), Some(b)) = (from_openapi, from_go)
                && a != b
            {
                issues.push(format!("{}.{}: inline per k8s-openapi {a}, per go_fields.txt {b}", m.path, f.rust_name));
            }
            if from_go.or(from_openapi).unwrap_or(false) {
                inline.insert((key.clone(), name));
                inlined_into.entry(child.path.to_lowercase()).or_insert_with(|| key.clone());
            }
        }
        if let Some(g) = go.get(&key) {
            for name in &g.inline {
                if !m.fields.iter().any(|f| norm(&f.rust_name) == *name && f.kind == "message") {
                    issues.push(format!("go_fields.txt: {} has no message field {name}", m.path));
                }
            }
            for (name, (json_name, _)) in &g.scalars {
                if !m.fields.iter().any(|f| norm(&f.rust_name) == *name && is_scalar(f)) {
                    issues.push(format!("go_fields.txt: {} has no scalar field {json_name}", m.path));
                }
            }
            for (name, json_name) in &g.names {
                if !m.fields.iter().any(|f| norm(&f.rust_name) == *name && !is_scalar(f)) {
                    issues.push(format!("go_fields.txt: {} has no non-scalar field {json_name}", m.path));
                }
            }
        }
    }

    // Singular scalars whose zero semantics `go_fields.txt` does not give.
    let mut unclassified: Vec<String> = Vec::new();
    let mut out = String::new();
    out.push_str("// @generated by build.rs from the k8s-pb and k8s-openapi sources and go_fields.txt.\n");
    out.push_str("pub(crate) static MESSAGES: &[Message] = &[\n");
    for m in &sorted {
        let key = m.path.to_lowercase();
        let infos: Vec<&JsonFields> =
            [Some(&key), inlined_into.get(&key)].into_iter().flatten().filter_map(|k| json.get(k)).collect();
        let go_struct = go.get(&key);
        let _ = writeln!(out, "    Message {{ path: {:?}, fields: &[", m.path);
        let mut fields: Vec<&PbField> = m.fields.iter().collect();
        fields.sort_by_key(|f| f.tag);
        for f in &fields {
            let name = norm(&f.rust_name);
            let go_scalar = go_struct.and_then(|g| g.scalars.get(&name)).filter(|_| is_scalar(f));
            let openapi = infos.iter().find_map(|i| i.fields.get(&name));
            let go_name = go_scalar.map(|(n, _)| n).or_else(|| go_struct.and_then(|g| g.names.get(&name)));
            let json_name = go_name.or(openapi.map(|(n, _)| n)).cloned().unwrap_or_else(|| camel(&f.rust_name));
            let kind = match (f.kind.as_str(), &f.type_path) {
                ("message", Some(t)) => match index.get(&t.to_lowercase()) {
                    Some(i) => format!("Kind::Message({i})"),
                    None => panic!("{}.{}: unresolved message type {t}", m.path, f.rust_name),
                },
                ("string", _) => "Kind::String".into(),
                ("bytes", _) => "Kind::Bytes".into(),
                ("bool", _) => "Kind::Bool".into(),
                ("int32", _) => "Kind::Int32".into(),
                ("int64", _) => "Kind::Int64".into(),
                ("double", _) => "Kind::Double".into(),
                (other, _) => panic!("{}.{}: unsupported prost kind {other}", m.path, f.rust_name),
            };
            let keep_zero = match go_scalar {
                Some((_, zero)) => *zero != Zero::OmitEmpty,
                None => {
                    if is_scalar(f) {
                        unclassified.push(format!("{}.{json_name}", m.path));
                    }
                    // A required field has no `omitempty`; for the rest, dropping the
                    // zero is right for every Go value field (the common case).
                    openapi.is_some_and(|(_, required)| *required)
                }
            };
            let is_inline = inline.contains(&(key.clone(), name));
            let _ = writeln!(
                out,
                "        Field {{ tag: {}, json: {:?}, kind: {kind}, card: Card::{}, keep_zero: {keep_zero}, inline: {is_inline} }},",
                f.tag, json_name, f.card
            );
        }
        let order: Vec<String> = m
            .fields
            .iter()
            .map(|f| fields.iter().position(|g| g.tag == f.tag).unwrap_or_default().to_string())
            .collect();
        let _ = writeln!(out, "    ], order: &[{}] }},", order.join(", "));
    }
    out.push_str("];\n");
    issues.sort();
    let list = |items: &[String]| items.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(out, "#[cfg(test)]\npub(crate) static UNCLASSIFIED: &[&str] = &[{}];", list(&unclassified));
    let _ = writeln!(out, "#[cfg(test)]\npub(crate) static SCHEMA_ISSUES: &[&str] = &[{}];", list(&issues));
    out
}
