//! Generic REST storage: get, list, create, update, patch and delete for every kind in
//! the registry table, with upstream's metadata rules.
//!
//! Objects are JSON values. Stored objects are in the resource's storage version, without
//! `resourceVersion` (it is the store's `mod_revision`); handlers convert to the version
//! the request names. Writes go to the store with compare-and-swap on the revision the
//! object was read at; a lost race without a client precondition is retried, as
//! upstream's `GuaranteedUpdate` does.

use std::borrow::Cow;
use std::sync::Arc;

use rkube_apimachinery::selector::{FieldSelector, LabelSelector};
use rkube_apimachinery::{ApiError, meta};
use rkube_registry::{ResourceDef, from_storage, storage_def, to_storage};
use rkube_store::{Revision, Store, StoreError};
use serde_json::{Map, Value, json};

use crate::Config;
use crate::admission;
use crate::auth::{AlwaysAllow, Authorizer};
use crate::cache::{StoredBytes, WatchCache, encode_stored};
use crate::metrics::Metrics;

/// How many times a write is retried after losing a compare-and-swap race.
const MAX_RETRIES: usize = 16;

/// Everything the handlers share.
pub struct Api {
    pub store: Arc<dyn Store>,
    pub cache: Arc<WatchCache>,
    pub config: Config,
    pub metrics: Metrics,
    pub authorizer: Box<dyn Authorizer>,
    /// Serializes Service address allocation (read in-use set → pick → store).
    pub service_alloc: tokio::sync::Mutex<()>,
    /// Signs and checks service-account tokens.
    pub tokens: crate::tokens::TokenIssuer,
    /// TLS to kubelets, for logs, exec, attach and port-forward (set once the cluster
    /// certificates exist).
    pub kubelet_client: std::sync::OnceLock<crate::proxy::KubeletClient>,
    /// Issues credentials to joining nodes.
    pub join: std::sync::OnceLock<crate::join::JoinService>,
}

/// The object a request is about.
#[derive(Debug, Clone)]
pub struct Target {
    pub def: &'static ResourceDef,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Options common to writes (`?dryRun=All&fieldManager=…&fieldValidation=…`).
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: FieldValidation,
    pub force: bool,
    /// A server-side apply: the patch engine has recorded managed fields itself.
    pub apply: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "Ignore" => Ok(FieldValidation::Ignore),
            "Warn" => Ok(FieldValidation::Warn),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}: supported values are \"Ignore\", \"Warn\", \"Strict\""
            ))),
        }
    }
}

/// The result of a write: HTTP code, body, warnings for the `Warning` header.
#[derive(Debug)]
pub struct WriteResult {
    pub code: u16,
    /// Shared: a write's answer is usually the object as the watch cache now holds it.
    pub body: Arc<Value>,
    /// `body` as JSON, when the write already had it (a created object's stored bytes
    /// with its resourceVersion); else `body` is encoded for the answer.
    pub json: Option<String>,
    pub warnings: Vec<String>,
}

/// List options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub limit: usize,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// Delete options, from the body and query.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// The current time to the second, as Kubernetes writes timestamps.
pub fn now_rfc3339() -> String {
    rfc3339_at(jiff::Timestamp::now())
}

/// `at` to the second. A write stamps several timestamps (creation, managed fields,
/// conditions), nearly all within the same second as the previous write's: the text is
/// formatted once per second and thread.
fn rfc3339_at(at: jiff::Timestamp) -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let second = at.as_second();
    LAST.with_borrow_mut(|(last, text)| {
        if *last != second {
            *text = at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            *last = second;
        }
        text.clone()
    })
}

pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Compacted { requested, compacted } => {
            ApiError::Expired { message: format!("too old resource version: {requested} ({compacted})") }
        }
        StoreError::FutureRevision { requested, current } => {
            ApiError::Timeout { message: format!("Too large resource version: {requested}, current: {current}") }
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// The store key of an object.
pub fn key(def: &ResourceDef, namespace: Option<&str>, name: &str) -> String {
    match (def.namespaced, namespace) {
        (true, Some(ns)) => format!("/registry/{}/{}/{}", def.storage, ns, name),
        _ => format!("/registry/{}/{}", def.storage, name),
    }
}

/// The store prefix of a collection (all namespaces when `namespace` is `None`).
pub fn prefix(def: &ResourceDef, namespace: Option<&str>) -> String {
    match (def.namespaced, namespace) {
        (true, Some(ns)) => format!("/registry/{}/{}/", def.storage, ns),
        _ => format!("/registry/{}/", def.storage),
    }
}

/// Kinds whose `metadata.generation` upstream tracks.
fn tracks_generation(def: &ResourceDef) -> bool {
    matches!(
        (def.group, def.plural),
        ("apps", _)
            | ("batch", _)
            | ("autoscaling", _)
            | ("networking.k8s.io", _)
            | ("policy", "poddisruptionbudgets")
            | ("discovery.k8s.io", "endpointslices")
    ) && def.plural != "controllerrevisions"
}

fn has_status(def: &ResourceDef) -> bool {
    def.subresource("status").is_some()
}

/// Converts a stored object into `def`'s served version.
pub fn to_served(def: &ResourceDef, stored: &Value) -> Result<Value, ApiError> {
    into_served(def, stored.clone())
}

/// A stored object in `def`'s version: the same one when stored as served (no copy).
fn served(def: &ResourceDef, stored: Arc<Value>) -> Result<Arc<Value>, ApiError> {
    if stored_as_served(def) {
        return Ok(stored);
    }
    Ok(Arc::new(into_served(def, Arc::unwrap_or_clone(stored))?))
}

/// Whether `def`'s version is its storage version, so a stored object is served as is.
fn stored_as_served(def: &ResourceDef) -> bool {
    let storage = storage_def(def);
    (storage.group, storage.version) == (def.group, def.version)
}

/// [`to_served`] of an object the caller no longer needs (no copy).
pub fn into_served(def: &ResourceDef, stored: Value) -> Result<Value, ApiError> {
    from_storage(stored, def).map_err(|e| ApiError::internal(e.to_string()))
}

fn obj_name(obj: &Value) -> String {
    meta::name(obj).unwrap_or_default().to_string()
}

fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

/// Compares two objects ignoring fields that change on every write (a missing
/// metadata counts as an empty one). Compares in place: cloning both objects for every
/// update cost more than the comparison.
fn same_object(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return a == b };
    let volatile = |k: &str| k == "resourceVersion" || k == "managedFields";
    fn meta_of<'a>(m: &'a Map<String, Value>, empty: &'a Map<String, Value>) -> Option<&'a Map<String, Value>> {
        match m.get("metadata") {
            None => Some(empty),
            Some(v) => v.as_object(),
        }
    }
    let empty = Map::new();
    let same_meta = match (meta_of(a, &empty), meta_of(b, &empty)) {
        (Some(ma), Some(mb)) => {
            let kept = |m: &Map<String, Value>| m.keys().filter(|k| !volatile(k)).count();
            kept(ma) == kept(mb) && ma.iter().filter(|(k, _)| !volatile(k)).all(|(k, v)| mb.get(k) == Some(v))
        }
        // A metadata that is not an object: compare it as it is.
        _ => a.get("metadata") == b.get("metadata"),
    };
    let rest = |m: &Map<String, Value>| m.keys().filter(|k| *k != "metadata").count();
    same_meta && rest(a) == rest(b) && a.iter().filter(|(k, _)| *k != "metadata").all(|(k, v)| b.get(k) == Some(v))
}

fn random_suffix() -> String {
    use rand::Rng;
    // Upstream's alphabet: no vowels, no confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct ContinueToken {
    #[serde(rename = "rv")]
    revision: Revision,
    #[serde(rename = "start")]
    start_after: String,
}

fn encode_continue(revision: Revision, start_after: &str) -> String {
    use base64::Engine;
    let t = ContinueToken { revision, start_after: start_after.to_string() };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&t).unwrap_or_default())
}

fn decode_continue(s: &str) -> Result<ContinueToken, ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request(format!("continue key is not valid: {s:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

impl Api {
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<WatchCache>,
        config: Config,
        tokens: crate::tokens::TokenIssuer,
    ) -> Api {
        Api {
            tokens,
            store,
            cache,
            config,
            metrics: Metrics::default(),
            authorizer: Box::new(AlwaysAllow),
            service_alloc: tokio::sync::Mutex::new(()),
            kubelet_client: std::sync::OnceLock::new(),
            join: std::sync::OnceLock::new(),
        }
    }

    /// The service account a bearer token stands for, if its signature checks out and
    /// the objects it names still exist with the uids it was issued for.
    pub fn authenticate_token(&self, token: &str) -> Option<crate::auth::UserInfo> {
        let claims = self.tokens.verify(token)?;
        let alive = |plural: &str, c: &crate::tokens::ObjectClaim| {
            let def = rkube_registry::lookup("", "v1", plural)?;
            let obj = self.cached(def, Some(&claims.namespace), &c.name)?;
            let deleting = obj["metadata"].get("deletionTimestamp").is_some_and(|d| !d.is_null());
            (meta::uid(&obj) == Some(c.uid.as_str()) && !deleting).then_some(())
        };
        alive("serviceaccounts", &claims.serviceaccount)?;
        if let Some(p) = &claims.pod {
            alive("pods", p)?;
        }
        if let Some(s) = &claims.secret {
            alive("secrets", s)?;
        }
        Some(crate::tokens::user_of(&claims))
    }

    fn not_found(&self, def: &ResourceDef, name: &str) -> ApiError {
        ApiError::not_found(def.group, def.plural, name)
    }

    /// The current stored object (storage version), from the cache.
    pub fn current(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> Option<(Value, Revision)> {
        self.cache.get(&key(def, ns, name)).map(|c| ((*c.obj).clone(), c.mod_revision))
    }

    /// The object as cached, shared rather than copied, for checks that only read it.
    pub fn cached(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> Option<Arc<Value>> {
        self.cache.get(&key(def, ns, name)).map(|c| c.obj)
    }

    /// The namespace as cached (shared, not copied: every create in a namespace reads it).
    pub fn namespace_exists(&self, ns: &str) -> Option<Arc<Value>> {
        self.cache.get(&format!("/registry/namespaces/{ns}")).map(|c| c.obj)
    }

    // === reads ===

    pub async fn get(&self, t: &Target) -> Result<Value, ApiError> {
        let name = t.name.as_deref().unwrap_or_default();
        let (obj, _) = self.current(t.def, t.namespace.as_deref(), name).ok_or_else(|| self.not_found(t.def, name))?;
        to_served(t.def, &obj)
    }

    /// Lists a collection. Returns the served objects and the list's resourceVersion
    /// and continue token.
    pub async fn list(
        &self,
        t: &Target,
        opts: &ListOptions,
    ) -> Result<(Vec<Arc<Value>>, Revision, Option<String>), ApiError> {
        let pfx = prefix(t.def, t.namespace.as_deref());
        let supported = meta::supported_field_selectors(t.def.group, t.def.plural);
        opts.field_selector.check_supported(supported).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let matches = |obj: &Value| opts.label_selector.matches(meta::labels(obj)) && opts.field_selector.matches(obj);
        let limit = opts.limit;
        let mut out = Vec::new();
        let mut last_key = None;
        let mut more = false;
        let (revision, start_after) = match &opts.continue_token {
            Some(tok) => {
                let tok = decode_continue(tok)?;
                (Some(tok.revision), Some(tok.start_after))
            }
            None => {
                let exact = opts.resource_version_match.as_deref() == Some("Exact");
                match (opts.resource_version.as_deref(), exact) {
                    (Some(rv), true) => {
                        let rv: Revision = rv
                            .parse()
                            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
                        (Some(rv), None)
                    }
                    (Some(rv), false) if !rv.is_empty() && rv != "0" => {
                        let rv: Revision = rv
                            .parse()
                            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
                        // NotOlderThan: wait for the cache to reach it (briefly).
                        if rv > self.cache.revision() {
                            let wait = self.cache.wait_for(rv);
                            if tokio::time::timeout(std::time::Duration::from_secs(3), wait).await.is_err() {
                                return Err(ApiError::Timeout {
                                    message: format!(
                                        "Too large resource version: {rv}, current: {}",
                                        self.cache.revision()
                                    ),
                                });
                            }
                        }
                        (None, None)
                    }
                    _ => (None, None),
                }
            }
        };
        let list_rev;
        match revision {
            None => {
                // From the cache, at its current revision.
                let (items, rev) = self.cache.list(&pfx, None);
                list_rev = rev;
                for c in items {
                    if !matches(&c.obj) {
                        continue;
                    }
                    if limit > 0 && out.len() == limit {
                        more = true;
                        break;
                    }
                    last_key = Some(key_of(t.def, &c.obj));
                    // The cached object is shared as it is unless this version differs.
                    out.push(if t.def.needs_conversion() {
                        Arc::new(to_served(t.def, &c.obj)?)
                    } else {
                        c.obj.clone()
                    });
                }
            }
            Some(rev) => {
                // A continuation or an exact read: from the store at that revision.
                list_rev = rev;
                let mut start = start_after.clone();
                loop {
                    let page = self
                        .store
                        .range(&pfx, start.as_deref(), limit.max(500), Some(rev))
                        .await
                        .map_err(|e| match e {
                            StoreError::Compacted { .. } if opts.continue_token.is_some() => ApiError::Expired {
                                message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                            },
                            e => store_error(e),
                        })?;
                    for kv in &page.kvs {
                        start = Some(kv.key.clone());
                        let Some(obj) = crate::cache::decode(kv, kv.mod_revision) else { continue };
                        if !matches(&obj) {
                            continue;
                        }
                        if limit > 0 && out.len() == limit {
                            more = true;
                            break;
                        }
                        last_key = Some(kv.key.clone());
                        out.push(Arc::new(to_served(t.def, &obj)?));
                    }
                    if more || !page.more {
                        break;
                    }
                }
            }
        }
        let token = if more { last_key.map(|k| encode_continue(list_rev, &k)) } else { None };
        Ok((out, list_rev, token))
    }

    // === writes ===

    /// Writes a new object; returns it as the cache now holds it, and its JSON when that
    /// comes for free from the stored bytes (see [`encode_stored`]).
    async fn commit_create(
        &self,
        def: &ResourceDef,
        key: &str,
        mut stored: Value,
    ) -> Result<(Arc<Value>, Option<String>), ApiError> {
        meta::metadata_mut(&mut stored).remove("resourceVersion");
        let (bytes, span) = encode_stored(&stored).map_err(|e| ApiError::internal(e.to_string()))?;
        let name = obj_name(&stored);
        let expected = self.cache.expect_write(key, &bytes, span, stored);
        let kv = self.store.create(key, bytes).await.map_err(|e| match e {
            StoreError::AlreadyExists { .. } => ApiError::already_exists(def.group, def.plural, &name),
            e => store_error(e),
        })?;
        self.cache.wait_for(kv.mod_revision).await;
        drop(expected);
        let written = self.written(&kv);
        let json = span.and_then(|span| StoredBytes::new(kv.value, span).with_resource_version(kv.mod_revision));
        Ok((written, json))
    }

    /// The object a write of ours stored, as the cache holds it (decoded from the write's
    /// bytes if the cache already moved on to a newer version).
    fn written(&self, kv: &rkube_store::KeyValue) -> Arc<Value> {
        match self.cache.get(&kv.key) {
            Some(c) if c.mod_revision == kv.mod_revision => c.obj,
            _ => Arc::new(crate::cache::decode(kv, kv.mod_revision).unwrap_or(Value::Null)),
        }
    }

    /// Creates an object in `t`'s collection.
    pub async fn create(&self, t: &Target, mut obj: Value, opts: &WriteOptions) -> Result<WriteResult, ApiError> {
        let def = t.def;
        check_type(def, &mut obj)?;
        let mut warnings = admission::check_fields(def, &obj, opts.field_validation)?;
        if !obj.get("metadata").is_some_and(Value::is_object) {
            if obj.get("metadata").is_some_and(|m| !m.is_null()) {
                return Err(ApiError::bad_request("metadata must be an object"));
            }
            meta::metadata_mut(&mut obj);
        }
        let ns = self.resolve_namespace(def, t.namespace.as_deref(), &mut obj)?;
        {
            let m = meta::metadata_mut(&mut obj);
            let name = m.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            if name.is_empty()
                && let Some(prefix) = m.get("generateName").and_then(Value::as_str).filter(|g| !g.is_empty())
            {
                let base: String = prefix.chars().take(58).collect();
                m.insert("name".into(), json!(format!("{base}{}", random_suffix())));
            }
            if m.get("resourceVersion").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
                return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now_rfc3339()));
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            if tracks_generation(def) {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        // Upstream's order: defaults (applied as the body is decoded), the field manager,
        // then the strategy's reset status and mutating admission, whose fields the
        // creator does not own (a pod's kube-api-access volume, default tolerations),
        // then validation.
        admission::default_object(def, &mut obj);
        let status = admission::initial_status(def, &obj);
        if status.is_some()
            && let Some(m) = obj.as_object_mut()
        {
            m.shift_remove("status");
        }
        admission::record_managed_fields(def, None, &mut obj, opts, t.subresource.as_deref());
        if let (Some(status), Some(m)) = (status, obj.as_object_mut()) {
            m.insert("status".into(), status);
        }
        admission::admit_create(def, &mut obj, self.config.default_tolerations);
        if def.group.is_empty() && def.plural == "pods" {
            admission::mount_service_account_token(self, ns.as_deref(), &mut obj, &random_suffix());
        }
        admission::validate_create(def, &obj)?;
        let name = obj_name(&obj);
        if let Some(ns) = &ns {
            self.check_namespace_writable(def, ns, &name)?;
        }
        let mut stored = to_storage(obj, def).map_err(|e| ApiError::internal(e.to_string()))?;
        let storage = storage_def(def);
        let k = key(def, ns.as_deref(), &name);
        let (created, json) = if def.plural == "services" && def.group.is_empty() {
            let _guard = self.service_alloc.lock().await;
            admission::allocate_service(self, None, &mut stored)?;
            if opts.dry_run { (Arc::new(stored), None) } else { self.commit_create(storage, &k, stored).await? }
        } else if opts.dry_run {
            (Arc::new(stored), None)
        } else {
            self.commit_create(storage, &k, stored).await?
        };
        warnings.extend(admission::warnings(def, &created));
        // Served as stored: the answer is the stored bytes' JSON, not a new encoding.
        let json = json.filter(|_| stored_as_served(def));
        Ok(WriteResult { code: 201, body: served(def, created)?, json, warnings })
    }

    fn resolve_namespace(
        &self,
        def: &ResourceDef,
        url_ns: Option<&str>,
        obj: &mut Value,
    ) -> Result<Option<String>, ApiError> {
        let m = meta::metadata_mut(obj);
        if !def.namespaced {
            m.remove("namespace");
            return Ok(None);
        }
        let body_ns = m.get("namespace").and_then(Value::as_str).unwrap_or("").to_string();
        let ns = match url_ns {
            Some(u) => {
                if !body_ns.is_empty() && body_ns != u {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                u.to_string()
            }
            None => return Err(ApiError::NoRoute),
        };
        m.insert("namespace".into(), json!(ns));
        Ok(Some(ns))
    }

    fn check_namespace_writable(&self, def: &ResourceDef, ns: &str, name: &str) -> Result<(), ApiError> {
        match self.namespace_exists(ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            // Upstream's NamespaceLifecycle admission: a Forbidden naming the object.
            Some(nsobj) if nsobj["status"]["phase"] == "Terminating" => Err(ApiError::Forbidden {
                message: format!(
                    "{}{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    def.qualified_name(),
                    if name.is_empty() { String::new() } else { format!(" \"{name}\"") }
                ),
            }),
            Some(_) => Ok(()),
        }
    }

    /// The core of update and patch: reads the current object, computes the new one
    /// with `mutate`, and writes it with compare-and-swap, retrying lost races unless
    /// the client gave a resourceVersion precondition.
    pub async fn guaranteed_update<F>(
        &self,
        t: &Target,
        opts: &WriteOptions,
        allow_create: bool,
        mut mutate: F,
    ) -> Result<WriteResult, ApiError>
    where
        F: FnMut(Option<&Value>) -> Result<(Value, Vec<String>), ApiError>,
    {
        let def = t.def;
        let name = t.name.clone().unwrap_or_default();
        let ns = t.namespace.clone();
        let k = key(def, ns.as_deref(), &name);
        let sub = t.subresource.as_deref();
        for _ in 0..MAX_RETRIES {
            let current = self.cache.get(&k);
            // Served as stored (most kinds): the cached object itself, not a copy.
            let current_served: Option<Cow<'_, Value>> = match &current {
                Some(c) if stored_as_served(def) => Some(Cow::Borrowed(&*c.obj)),
                Some(c) => Some(Cow::Owned(to_served(def, &c.obj)?)),
                None => None,
            };
            let (mut new, mut warnings) = mutate(current_served.as_deref())?;
            check_type(def, &mut new)?;
            let Some(old) = current_served else {
                if !allow_create {
                    return Err(self.not_found(def, &name));
                }
                let mut r = self.create(&Target { name: None, subresource: None, ..t.clone() }, new, opts).await?;
                r.warnings.splice(0..0, warnings);
                return Ok(r);
            };
            let cur = current.as_ref().expect("checked above");
            // Identity checks.
            let new_name = obj_name(&new);
            if new_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({new_name}) does not match the name on the URL ({name})"
                )));
            }
            if def.namespaced {
                let body_ns = meta::namespace(&new).unwrap_or("");
                if !body_ns.is_empty() && Some(body_ns) != ns.as_deref() {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
            let user_rv = meta::resource_version(&new).filter(|s| !s.is_empty()).map(str::to_string);
            if let Some(rv) = &user_rv
                && *rv != cur.mod_revision.to_string()
            {
                return Err(ApiError::modified(def.group, def.plural, &name));
            }
            // A binding's pod is built by the server from the stored one: the request
            // body (a Binding) held none of its fields.
            if sub != Some("binding") {
                warnings.extend(admission::check_fields(def, &new, opts.field_validation)?);
            }
            self.prepare_update(def, sub, &old, &mut new);
            if sub.is_none() || sub == Some("scale") {
                admission::default_object(def, &mut new);
            }
            // A binding is the one write that may set a pod's node; the pod itself was
            // valid and stays so.
            if sub != Some("binding") {
                admission::validate_update(def, &new, &old)?;
            }
            // Upstream's binding writes the pod in storage directly, past the field
            // manager: the scheduler owns no fields of the pods it binds.
            if sub != Some("binding") {
                admission::record_managed_fields(def, Some(&old), &mut new, opts, sub);
            }
            let mut stored = to_storage(new, def).map_err(|e| ApiError::internal(e.to_string()))?;
            let _guard = if def.plural == "services" && def.group.is_empty() {
                let g = self.service_alloc.lock().await;
                admission::allocate_service(self, Some(&cur.obj), &mut stored)?;
                Some(g)
            } else {
                None
            };
            // Finalizers gone on an object being deleted: the update is the delete. Not
            // while a graceful deletion runs (a pod's grace period): a status update
            // racing `kubectl delete` would delete the pod before its kubelet stopped it,
            // so as upstream only a pending deletion with no grace period completes here.
            // A namespace also waits for its spec.finalizers (`kubernetes`, removed by the
            // namespace controller once the namespace is empty), as upstream's
            // ShouldDeleteNamespaceDuringUpdate: else a status update would delete it.
            let no_grace = cur.obj["metadata"]["deletionGracePeriodSeconds"].as_i64().is_none_or(|g| g == 0);
            let deleting = stored["metadata"].get("deletionTimestamp").is_some_and(|d| !d.is_null())
                && no_grace
                && stored["metadata"]["finalizers"].as_array().is_none_or(|f| f.is_empty())
                && (def.plural != "namespaces"
                    || !def.group.is_empty()
                    || stored["spec"]["finalizers"].as_array().is_none_or(|f| f.is_empty()));
            if deleting {
                if opts.dry_run {
                    return Ok(WriteResult {
                        code: 200,
                        body: Arc::new(to_served(def, &stored)?),
                        json: None,
                        warnings,
                    });
                }
                match self.store.delete(&k, cur.mod_revision).await {
                    Ok(kv) => {
                        self.cache.wait_for(kv.mod_revision).await;
                        return Ok(WriteResult {
                            code: 200,
                            body: Arc::new(to_served(def, &stored)?),
                            json: None,
                            warnings,
                        });
                    }
                    Err(StoreError::Conflict { current, .. }) => {
                        if let Some(c) = current {
                            self.cache.wait_for(c.mod_revision).await;
                        }
                        continue;
                    }
                    Err(StoreError::NotFound { .. }) => return Err(self.not_found(def, &name)),
                    Err(e) => return Err(store_error(e)),
                }
            }
            if same_object(&stored, &cur.obj) {
                // Nothing changed: no write, same resourceVersion (as upstream).
                return Ok(WriteResult { code: 200, body: served(def, cur.obj.clone())?, json: None, warnings });
            }
            if opts.dry_run {
                return Ok(WriteResult { code: 200, body: Arc::new(to_served(def, &stored)?), json: None, warnings });
            }
            meta::metadata_mut(&mut stored).remove("resourceVersion");
            let (bytes, span) = encode_stored(&stored).map_err(|e| ApiError::internal(e.to_string()))?;
            let expected = self.cache.expect_write(&k, &bytes, span, stored);
            match self.store.update(&k, bytes, cur.mod_revision).await {
                Ok(kv) => {
                    self.cache.wait_for(kv.mod_revision).await;
                    drop(expected);
                    let stored = self.written(&kv);
                    warnings.extend(admission::warnings(def, &stored));
                    return Ok(WriteResult { code: 200, body: served(def, stored)?, json: None, warnings });
                }
                Err(StoreError::Conflict { current, .. }) => {
                    if user_rv.is_some() {
                        return Err(ApiError::modified(def.group, def.plural, &name));
                    }
                    match current {
                        Some(c) => self.cache.wait_for(c.mod_revision).await,
                        None => return Err(self.not_found(def, &name)),
                    }
                }
                Err(StoreError::NotFound { .. }) => return Err(self.not_found(def, &name)),
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(ApiError::modified(def.group, def.plural, &name))
    }

    /// Carries server-owned fields from `old` into `new` and applies the
    /// status/main-resource split.
    fn prepare_update(&self, def: &ResourceDef, sub: Option<&str>, old: &Value, new: &mut Value) {
        let no_meta = serde_json::Map::new();
        let old_meta = old.get("metadata").and_then(Value::as_object).unwrap_or(&no_meta);
        match sub {
            Some("status") => {
                // Status and metadata change through /status; spec does not (upstream's
                // status strategies reset the spec, and a few kinds some metadata too).
                // `new` is replaced below: its parts are moved out, not copied.
                let status = new.as_object_mut().and_then(|m| m.shift_remove("status"));
                let mut new_meta = new.get_mut("metadata").map(Value::take).unwrap_or(json!({}));
                let mut merged = old.clone();
                if let Some(m) = merged.as_object_mut() {
                    match status {
                        Some(s) => m.insert("status".into(), s),
                        None => m.remove("status"),
                    };
                }
                let kept_by_kind: &[&str] = match (def.group, def.plural) {
                    // Old kubelets corrupted owner references through pods/status.
                    ("", "pods") => &["ownerReferences"],
                    ("apps", _) => &["labels"],
                    _ => &[],
                };
                let m = meta::metadata_mut(&mut merged);
                for f in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if kept_by_kind.contains(&f) {
                        continue;
                    }
                    match new_meta.get_mut(f).map(Value::take) {
                        Some(v) => m.insert(f.into(), v),
                        None => m.remove(f),
                    };
                }
                let rv = new_meta.get("resourceVersion").and_then(Value::as_str).map(str::to_string);
                *new = merged;
                let m = meta::metadata_mut(new);
                match rv {
                    Some(rv) => m.insert("resourceVersion".into(), json!(rv)),
                    None => m.remove("resourceVersion"),
                };
            }
            // The binding handler built the whole new pod from the stored one.
            Some("binding") => {}
            Some("finalize") => {
                // Only spec.finalizers changes through /finalize (upstream's
                // namespace finalize strategy).
                let finalizers = new.pointer("/spec/finalizers").cloned();
                let rv = meta::resource_version(new).map(str::to_string);
                let mut merged = old.clone();
                match finalizers {
                    Some(f) => merged["spec"]["finalizers"] = f,
                    None => {
                        if let Some(spec) = merged.get_mut("spec").and_then(Value::as_object_mut) {
                            spec.remove("finalizers");
                        }
                    }
                }
                *new = merged;
                let m = meta::metadata_mut(new);
                match rv {
                    Some(rv) => m.insert("resourceVersion".into(), json!(rv)),
                    None => m.remove("resourceVersion"),
                };
            }
            _ => {
                if (has_status(def) && def.plural != "nodes" || def.plural == "namespaces")
                    && let Some(m) = new.as_object_mut()
                {
                    match old.get("status") {
                        Some(s) => m.insert("status".into(), s.clone()),
                        None => m.remove("status"),
                    };
                }
                // A namespace's finalizers change only through /finalize.
                if def.plural == "namespaces" && def.group.is_empty() {
                    match old.pointer("/spec/finalizers") {
                        Some(f) => new["spec"]["finalizers"] = f.clone(),
                        None => {
                            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                                spec.remove("finalizers");
                            }
                        }
                    }
                }
            }
        }
        let m = meta::metadata_mut(new);
        for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
            match old_meta.get(f) {
                Some(v) => m.insert(f.into(), v.clone()),
                None => m.remove(f),
            };
        }
        if !m.contains_key("managedFields")
            && let Some(mf) = old_meta.get("managedFields")
        {
            m.insert("managedFields".into(), mf.clone());
        }
        // Deployments also count annotation changes, which they copy to ReplicaSets.
        let annotations_changed = (def.group, def.plural) == ("apps", "deployments")
            && old_meta.get("annotations") != new.pointer("/metadata/annotations");
        if tracks_generation(def) && sub.is_none() && (spec_part(old) != spec_part(new) || annotations_changed) {
            let g = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
            meta::metadata_mut(new).insert("generation".into(), json!(g + 1));
        }
    }

    /// PUT: replaces the object (or its status) with `obj`.
    pub async fn update(&self, t: &Target, obj: Value, opts: &WriteOptions) -> Result<WriteResult, ApiError> {
        self.guaranteed_update(t, opts, false, |_| Ok((obj.clone(), Vec::new()))).await
    }

    /// DELETE of one object.
    pub async fn delete(&self, t: &Target, opts: &DeleteOptions) -> Result<WriteResult, ApiError> {
        let def = t.def;
        let name = t.name.clone().unwrap_or_default();
        let ns = t.namespace.as_deref();
        let k = key(def, ns, &name);
        if def.plural == "namespaces"
            && ["default", "kube-system", "kube-public", "kube-node-lease"].contains(&name.as_str())
        {
            return Err(ApiError::Forbidden {
                message: format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            });
        }
        for _ in 0..MAX_RETRIES {
            let cur = self.cache.get(&k).ok_or_else(|| self.not_found(def, &name))?;
            let obj = (*cur.obj).clone();
            if let Some(uid) = &opts.precondition_uid {
                let have = meta::uid(&obj).unwrap_or("");
                if uid != have {
                    return Err(ApiError::conflict(
                        def.group,
                        def.plural,
                        &name,
                        &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
                    ));
                }
            }
            if let Some(rv) = &opts.precondition_rv {
                let have = cur.mod_revision.to_string();
                if *rv != have {
                    return Err(ApiError::conflict(
                        def.group,
                        def.plural,
                        &name,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"
                        ),
                    ));
                }
            }
            let finalizers = deletion_finalizers(&obj, opts.propagation_policy.as_deref());
            let has_finalizers = !finalizers.is_empty()
                || (def.plural == "namespaces" && obj["spec"]["finalizers"].as_array().is_some_and(|f| !f.is_empty()));
            let graceful = admission::graceful_deletion_seconds(def, &obj, opts.grace_period_seconds);
            if has_finalizers || graceful.is_some() {
                // Mark for deletion; finalizers (or the kubelet) finish it.
                let already = obj["metadata"].get("deletionTimestamp").is_some_and(|d| !d.is_null());
                let mut marked = obj.clone();
                let grace = graceful.unwrap_or(0);
                {
                    let m = meta::metadata_mut(&mut marked);
                    let shorten = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64).is_none_or(|g| grace < g);
                    if !already || (graceful.is_some() && shorten) {
                        let when = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                        m.insert("deletionTimestamp".into(), json!(when.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
                        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                        if tracks_generation(def) {
                            let g = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
                            m.insert("generation".into(), json!(g + 1));
                        }
                    }
                }
                if !finalizers.is_empty() {
                    meta::metadata_mut(&mut marked).insert("finalizers".into(), json!(finalizers));
                }
                if def.plural == "namespaces" {
                    marked["status"]["phase"] = json!("Terminating");
                }
                if marked == obj || opts.dry_run {
                    return Ok(WriteResult {
                        code: 200,
                        body: Arc::new(to_served(def, &marked)?),
                        json: None,
                        warnings: vec![],
                    });
                }
                meta::metadata_mut(&mut marked).remove("resourceVersion");
                let bytes = serde_json::to_vec(&marked).map_err(|e| ApiError::internal(e.to_string()))?;
                match self.store.update(&k, bytes, cur.mod_revision).await {
                    Ok(kv) => {
                        self.cache.wait_for(kv.mod_revision).await;
                        meta::metadata_mut(&mut marked)
                            .insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
                        return Ok(WriteResult {
                            code: 200,
                            body: Arc::new(to_served(def, &marked)?),
                            json: None,
                            warnings: vec![],
                        });
                    }
                    Err(StoreError::Conflict { current: Some(c), .. }) => {
                        self.cache.wait_for(c.mod_revision).await;
                        continue;
                    }
                    Err(StoreError::Conflict { current: None, .. }) | Err(StoreError::NotFound { .. }) => {
                        return Err(self.not_found(def, &name));
                    }
                    Err(e) => return Err(store_error(e)),
                }
            }
            if opts.dry_run {
                return Ok(WriteResult {
                    code: 200,
                    body: Arc::new(deleted_answer(def, &obj)?),
                    json: None,
                    warnings: vec![],
                });
            }
            match self.store.delete(&k, cur.mod_revision).await {
                Ok(kv) => {
                    self.cache.wait_for(kv.mod_revision).await;
                    return Ok(WriteResult {
                        code: 200,
                        body: Arc::new(deleted_answer(def, &obj)?),
                        json: None,
                        warnings: vec![],
                    });
                }
                Err(StoreError::Conflict { current: Some(c), .. }) => {
                    self.cache.wait_for(c.mod_revision).await;
                }
                Err(StoreError::Conflict { current: None, .. }) | Err(StoreError::NotFound { .. }) => {
                    return Err(self.not_found(def, &name));
                }
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(ApiError::modified(def.group, def.plural, &name))
    }

    /// DELETE of a collection: deletes every matching object.
    pub async fn delete_collection(
        &self,
        t: &Target,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let (items, rev, _) = self.list(t, &ListOptions { limit: 0, continue_token: None, ..list.clone() }).await?;
        let mut deleted = Vec::new();
        for item in items {
            let target = Target {
                name: Some(obj_name(&item)),
                namespace: meta::namespace(&item).map(str::to_string),
                ..t.clone()
            };
            match self.delete(&target, opts).await {
                // The list holds the objects, whatever a single DELETE would answer.
                Ok(r) if r.body["kind"] == "Status" => deleted.push(Arc::unwrap_or_clone(item)),
                Ok(r) => deleted.push(Arc::unwrap_or_clone(r.body)),
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(list_body(t.def, deleted, rev, None))
    }
}

/// What a DELETE that removed `obj` answers: the object for the kinds upstream returns
/// it for, else a `Success` Status naming it.
fn deleted_answer(def: &ResourceDef, obj: &Value) -> Result<Value, ApiError> {
    if rkube_registry::returns_deleted_object(def) {
        return to_served(def, obj);
    }
    let mut details = json!({"name": obj_name(obj), "kind": def.plural, "uid": meta::uid(obj).unwrap_or("")});
    if !def.group.is_empty() {
        details["group"] = json!(def.group);
    }
    Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}))
}

/// The finalizers an object keeps once a delete with `policy` marks it: the garbage
/// collector's `orphan` and `foregroundDeletion` are set from the propagation policy (an
/// earlier choice stands when the request names none), as upstream's generic registry
/// does; the collector removes them when it has handled the dependents.
fn deletion_finalizers(obj: &Value, policy: Option<&str>) -> Vec<String> {
    let current: Vec<String> = obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let had = |f: &str| current.iter().any(|c| c == f);
    let orphan = match policy {
        Some(p) => p == "Orphan",
        None => had(FINALIZER_ORPHAN),
    };
    let foreground = match policy {
        Some(p) => p == "Foreground",
        None => had(FINALIZER_FOREGROUND),
    };
    let mut out: Vec<String> =
        current.iter().filter(|f| *f != FINALIZER_ORPHAN && *f != FINALIZER_FOREGROUND).cloned().collect();
    if orphan {
        out.push(FINALIZER_ORPHAN.into());
    }
    if foreground {
        out.push(FINALIZER_FOREGROUND.into());
    }
    out
}

const FINALIZER_ORPHAN: &str = "orphan";
const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// The store key of a stored object.
fn key_of(def: &ResourceDef, obj: &Value) -> String {
    key(def, meta::namespace(obj), meta::name(obj).unwrap_or_default())
}

/// Checks and fills `apiVersion`/`kind` of a request body.
pub fn check_type(def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the body of the request must be a JSON object describing a {}",
            def.kind
        )));
    };
    let want_av = def.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(want_av));
        }
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(def.kind));
        }
        Some(k) if k == def.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
    }
    Ok(())
}

/// A list body of served objects.
/// The JSON bytes of a list, written straight from the (shared) items: a large list is
/// never copied into one more `Value` on its way out.
pub fn list_bytes(def: &ResourceDef, items: &[Arc<Value>], rev: Revision, token: Option<&str>) -> Vec<u8> {
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), json!(rev.to_string()));
    if let Some(t) = token {
        metadata.insert("continue".into(), json!(t));
    }
    let head = json!({"kind": def.list_kind(), "apiVersion": def.api_version(), "metadata": metadata});
    let mut out = serde_json::to_vec(&head).unwrap_or_default();
    // `head` ends with `}`: reopen it for the items.
    out.pop();
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if serde_json::to_writer(&mut out, item.as_ref()).is_err() {
            out.extend_from_slice(b"null");
        }
    }
    out.extend_from_slice(b"]}");
    out
}

pub fn list_body(def: &ResourceDef, items: Vec<Value>, rev: Revision, token: Option<String>) -> Value {
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), json!(rev.to_string()));
    if let Some(t) = token {
        metadata.insert("continue".into(), json!(t));
    }
    json!({
        "kind": def.list_kind(),
        "apiVersion": def.api_version(),
        "metadata": metadata,
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_formatted_per_second() {
        let at = |s: i64, ns: i32| jiff::Timestamp::new(s, ns).unwrap();
        assert_eq!(rfc3339_at(at(1_800_000_000, 0)), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339_at(at(1_800_000_000, 999_999_999)), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339_at(at(1_800_000_001, 0)), "2027-01-15T08:00:01Z");
        // Back in time (another clock reading on this thread) is formatted again too.
        assert_eq!(rfc3339_at(at(1_799_999_999, 500)), "2027-01-15T07:59:59Z");
        assert_eq!(now_rfc3339().len(), "2027-01-15T08:00:00Z".len());
    }

    #[test]
    fn same_object_ignores_resource_version_and_managed_fields() {
        let a = json!({"metadata": {"name": "p", "resourceVersion": "1", "managedFields": [{"manager": "x"}]},
                       "spec": {"a": 1}});
        let b = json!({"spec": {"a": 1}, "metadata": {"resourceVersion": "2", "name": "p"}});
        assert!(same_object(&a, &b));
        assert!(!same_object(&a, &json!({"metadata": {"name": "p"}, "spec": {"a": 2}})));
        assert!(!same_object(&a, &json!({"metadata": {"name": "p"}, "spec": {"a": 1}, "status": {}})));
        assert!(!same_object(&a, &json!({"metadata": {"name": "p", "labels": {}}, "spec": {"a": 1}})));
        assert!(same_object(&json!({"spec": {}}), &json!({"metadata": {"resourceVersion": "3"}, "spec": {}})));
        assert!(!same_object(&json!({"metadata": 1}), &json!({"metadata": {}})));
    }

    #[test]
    fn list_bytes_is_the_list_as_json() {
        let def = rkube_registry::lookup("", "v1", "configmaps").unwrap();
        let items = vec![Arc::new(json!({"metadata": {"name": "a"}})), Arc::new(json!({"metadata": {"name": "b"}}))];
        let v: Value = serde_json::from_slice(&list_bytes(def, &items, 7, Some("tok"))).unwrap();
        assert_eq!(
            v,
            json!({"kind": "ConfigMapList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "7", "continue": "tok"},
            "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]})
        );
        let v: Value = serde_json::from_slice(&list_bytes(def, &[], 1, None)).unwrap();
        assert_eq!(v["items"], json!([]));
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "/registry/pods/default/web");
        let d = decode_continue(&t).unwrap();
        assert_eq!(d.revision, 42);
        assert_eq!(d.start_after, "/registry/pods/default/web");
        assert_eq!(decode_continue("!!!").unwrap_err().code(), 400);
    }

    #[test]
    fn deletion_finalizers_follow_the_propagation_policy() {
        let obj = |f: Value| json!({"metadata": {"name": "x", "finalizers": f}});
        let cases: Vec<(Value, Option<&str>, Vec<&str>)> = vec![
            (json!(null), None, vec![]),
            (json!(null), Some("Background"), vec![]),
            (json!(null), Some("Orphan"), vec!["orphan"]),
            (json!(null), Some("Foreground"), vec!["foregroundDeletion"]),
            (json!(["keep", "orphan"]), None, vec!["keep", "orphan"]),
            (json!(["keep", "orphan"]), Some("Foreground"), vec!["keep", "foregroundDeletion"]),
            (json!(["foregroundDeletion"]), Some("Background"), vec![]),
        ];
        for (f, policy, want) in cases {
            assert_eq!(deletion_finalizers(&obj(f.clone()), policy), want, "{f} {policy:?}");
        }
    }

    #[test]
    fn check_type_fills_and_rejects() {
        let def = rkube_registry::lookup("apps", "v1", "deployments").unwrap();
        let mut o = json!({"metadata": {"name": "x"}});
        check_type(def, &mut o).unwrap();
        assert_eq!(o["apiVersion"], "apps/v1");
        assert_eq!(o["kind"], "Deployment");
        let mut bad = json!({"apiVersion": "v1", "kind": "Deployment"});
        assert_eq!(check_type(def, &mut bad).unwrap_err().code(), 400);
        assert_eq!(check_type(def, &mut json!([1])).unwrap_err().code(), 400);
    }

    #[test]
    fn generation_only_on_spec_changes_and_tracked_kinds() {
        let deploy = rkube_registry::lookup("apps", "v1", "deployments").unwrap();
        let cm = rkube_registry::lookup("", "v1", "configmaps").unwrap();
        assert!(tracks_generation(deploy));
        assert!(!tracks_generation(cm));
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}});
        let b = json!({"metadata": {"labels": {"a": "2"}}, "spec": {"replicas": 1}});
        assert_eq!(spec_part(&a), spec_part(&b));
    }
}
