//! Server-side apply (`application/apply-patch+yaml`) and `metadata.managedFields`
//! bookkeeping, after upstream's structured-merge-diff.
//!
//! Every manager of an object owns a set of field paths, stored in
//! `metadata.managedFields` as `FieldsV1`. [`record_update`] runs after a create,
//! update or non-apply patch: the fields the writer added or changed become its own and
//! leave every other manager. [`apply`] merges an applied configuration into the live
//! object, removes what the applier applied last time and no longer does (unless
//! someone else owns it), and refuses to change a field another manager owns unless
//! forced.

mod fieldset;
mod memo;
mod walk;

use serde_json::{Map, Value};

use crate::schema::Schema;
pub use fieldset::{FieldSet, PathElement, path_string};
pub use memo::CreatedFieldsMemo;

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";
/// Upstream's owner of every field of an object applied for the first time after it
/// was written without managed fields.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// A field another manager owns and the applied configuration would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name (`kubectl-client-side-apply`).
    pub manager: String,
    /// Its operation: `Apply` or `Update`.
    pub operation: String,
    /// The API version its entry was recorded at.
    pub api_version: String,
    pub subresource: Option<String>,
    /// The field, as upstream prints it: `.spec.replicas`.
    pub field: String,
}

impl Conflict {
    /// How upstream names the manager in messages:
    /// `"kubectl-client-side-apply" using apps/v1` for an update, `"kubectl"` for an
    /// applier.
    pub fn manager_description(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == UPDATE {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    /// The message of this conflict's `StatusCause` (type `FieldManagerConflict`,
    /// field [`Conflict::field`]).
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager_description())
    }
}

/// The `Status.message` upstream answers a conflicting apply with (409).
pub fn conflicts_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", only.manager_description(), only.field);
    }
    let mut managers: Vec<String> = conflicts.iter().map(Conflict::manager_description).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for manager in managers {
        lines.push(format!("conflicts with {manager}:"));
        for c in conflicts.iter().filter(|c| c.manager_description() == manager) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// Why an apply was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    /// Fields owned by other managers would change (409). The message is upstream's
    /// wording, which clients print verbatim.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The body is neither JSON nor YAML (400).
    #[error("invalid apply body: {reason}")]
    InvalidBody { reason: String },
    /// The configuration is not an object (400).
    #[error("apply configuration must be an object, got {found}")]
    NotAnObject { found: String },
    /// Appliers may not send managed fields (400).
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsInConfig,
}

impl ApplyError {
    pub fn http_status(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            _ => 400,
        }
    }
}

/// Parses an apply body. kubectl sends JSON; YAML is accepted too, as upstream does.
pub fn parse_apply_body(body: &[u8]) -> Result<Value, ApplyError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    serde_saphyr::from_slice::<Value>(body).map_err(|e| ApplyError::InvalidBody { reason: e.to_string() })
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    /// Upstream identifies an entry by manager, operation and subresource, plus the
    /// API version for updates (an applier keeps one entry across versions).
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>, version: &str) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
            && (operation == APPLY || self.api_version == version)
    }

    fn decode(v: &Value) -> Option<Entry> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let fields = match v.get("fieldsV1") {
            Some(f) => FieldSet::from_fields_v1(f)?,
            None => FieldSet::new(),
        };
        Some(Entry {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation")?,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields,
        })
    }

    fn encode(&self) -> Value {
        encode_entry(
            &self.manager,
            &self.operation,
            &self.api_version,
            self.time.as_deref(),
            self.subresource.as_deref(),
            self.fields.to_fields_v1(),
        )
    }
}

/// One `managedFields` item, keys in upstream's order.
fn encode_entry(
    manager: &str,
    operation: &str,
    api_version: &str,
    time: Option<&str>,
    subresource: Option<&str>,
    fields_v1: Value,
) -> Value {
    let mut m = Map::with_capacity(7);
    m.insert("manager".into(), Value::String(manager.to_owned()));
    m.insert("operation".into(), Value::String(operation.to_owned()));
    m.insert("apiVersion".into(), Value::String(api_version.to_owned()));
    if let Some(t) = time {
        m.insert("time".into(), Value::String(t.to_owned()));
    }
    m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
    m.insert("fieldsV1".into(), fields_v1);
    if let Some(s) = subresource {
        m.insert("subresource".into(), Value::String(s.to_owned()));
    }
    Value::Object(m)
}

fn managed_fields_of(obj: &Value) -> Option<&Vec<Value>> {
    obj.get("metadata")?.get("managedFields")?.as_array()
}

fn decode_entries(list: &[Value]) -> Vec<Entry> {
    list.iter().filter_map(Entry::decode).collect()
}

/// Writes the entries back in upstream's order (operation, time, manager, version,
/// subresource); no entries means no `managedFields` key.
fn store_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (&a.operation, &a.time, &a.manager, &a.api_version, &a.subresource).cmp(&(
            &b.operation,
            &b.time,
            &b.manager,
            &b.api_version,
            &b.subresource,
        ))
    });
    set_managed_fields(obj, entries.iter().map(Entry::encode).collect());
}

/// Sets `metadata.managedFields`; an empty list removes the key.
fn set_managed_fields(obj: &mut Value, list: Vec<Value>) {
    let Value::Object(root) = obj else {
        return;
    };
    let meta = root.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else {
        return;
    };
    if list.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// The fields of `metadata` the apiserver owns (with `apiVersion`, `kind` and
/// `metadata` itself); upstream strips them from every manager's set.
const SERVER_METADATA_FIELDS: [&str; 9] = [
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

fn strip_server_fields(set: &mut FieldSet) {
    let f = |n: &str| PathElement::Field(n.to_owned());
    let mut strip = FieldSet::new();
    strip.insert(&[f("apiVersion")]);
    strip.insert(&[f("kind")]);
    strip.insert(&[f("metadata")]);
    for name in SERVER_METADATA_FIELDS {
        strip.insert(&[f("metadata"), f(name)]);
    }
    set.subtract(&strip);
}

/// [`strip_server_fields`] on a `fieldsV1` object: each stripped path stops being a
/// member (its `"."`, or the whole node when it is a leaf); nodes left with nothing go.
fn strip_server_fields_v1(fields: &mut Map<String, Value>) {
    fn unmember(parent: &mut Map<String, Value>, name: &str) {
        if let Some(Value::Object(node)) = parent.get_mut(name) {
            node.shift_remove(".");
            if node.is_empty() {
                parent.shift_remove(name);
            }
        }
    }
    unmember(fields, "f:apiVersion");
    unmember(fields, "f:kind");
    if let Some(Value::Object(meta)) = fields.get_mut("f:metadata") {
        for name in SERVER_METADATA_FIELDS {
            unmember(meta, &format!("f:{name}"));
        }
    }
    unmember(fields, "f:metadata");
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Some(Value::Object(meta)) = copy.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
    copy
}

fn api_version_of(obj: &Value) -> String {
    obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// Records a create, update or non-apply patch by `manager` in `new`'s managed fields.
///
/// `old` is the stored object before the write (`None` on create). The managed fields
/// start from `new`'s own when the client sent a non-empty list (`[{}]` resets them, as
/// upstream), else from `old`'s. `operation_subresource` is the subresource written
/// (`status`, `scale`), if any. `now` is an RFC 3339 timestamp.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation_subresource: Option<&str>,
    schema: &Schema,
    root: &str,
    now: &str,
) {
    let mut entries = match managed_fields_of(new) {
        Some(list) if list.len() == 1 && list[0].as_object().is_some_and(Map::is_empty) => Vec::new(),
        Some(list) if !list.is_empty() => decode_entries(list),
        _ => old.and_then(managed_fields_of).map(|l| decode_entries(l)).unwrap_or_default(),
    };
    let node = schema.root(root);
    if old.is_none() && entries.is_empty() {
        // A plain create: the creator owns every field it sent, and nobody else owns any.
        let compute = || {
            let mut fields = walk::created_fields_v1(new, node);
            strip_server_fields_v1(&mut fields);
            fields
        };
        let fields = match schema.created_fields_memo() {
            Some(memo) => memo.fields(root, new, compute),
            None => compute(),
        };
        let version = api_version_of(new);
        let list = if fields.is_empty() {
            Vec::new()
        } else {
            vec![encode_entry(manager, UPDATE, &version, Some(now), operation_subresource, Value::Object(fields))]
        };
        set_managed_fields(new, list);
        return;
    }
    let empty = Value::Object(Map::new());
    // The walks leave `metadata.managedFields` out themselves.
    let mut cmp = walk::compare(old.unwrap_or(&empty), new, node);
    strip_server_fields(&mut cmp.changed);
    strip_server_fields(&mut cmp.removed);

    for entry in entries.iter_mut() {
        entry.fields.subtract(&cmp.changed);
        entry.fields.subtract(&cmp.removed);
    }
    if !cmp.changed.is_empty() {
        let version = api_version_of(new);
        let existing = entries.iter_mut().find(|e| e.is(manager, UPDATE, operation_subresource, &version));
        match existing {
            Some(e) => {
                e.fields.union_with(&cmp.changed);
                e.time = Some(now.to_owned());
            }
            None => entries.push(Entry {
                manager: manager.to_owned(),
                operation: UPDATE.to_owned(),
                api_version: version,
                time: Some(now.to_owned()),
                subresource: operation_subresource.map(str::to_owned),
                fields: cmp.changed,
            }),
        }
    }
    store_entries(new, entries);
}

/// Server-side apply of `applied` (already parsed, see [`parse_apply_body`]) by
/// `manager` onto `live` (`None` creates). Returns the new object with its managed
/// fields; the caller fills server fields (uid, resourceVersion, …) and checks that
/// `apiVersion`/`kind` match the endpoint.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    schema: &Schema,
    root: &str,
    now: &str,
) -> Result<Value, ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::NotAnObject { found: applied.to_string().chars().take(40).collect() });
    }
    if applied.get("metadata").and_then(|m| m.get("managedFields")).is_some_and(|m| !m.is_null()) {
        return Err(ApplyError::ManagedFieldsInConfig);
    }
    let node = schema.root(root);
    let live_plain = live.map(without_managed_fields).unwrap_or_else(|| Value::Object(Map::new()));
    let mut entries = live.and_then(managed_fields_of).map(|l| decode_entries(l)).unwrap_or_default();
    if let Some(live) = live
        && entries.is_empty()
    {
        let mut fields = FieldSet::new();
        walk::field_set(&live_plain, node, &[], &mut fields, true);
        strip_server_fields(&mut fields);
        entries.push(Entry {
            manager: BEFORE_FIRST_APPLY.to_owned(),
            operation: UPDATE.to_owned(),
            api_version: api_version_of(live),
            time: None,
            subresource: None,
            fields,
        });
    }

    let mut new_set = FieldSet::new();
    walk::field_set(applied, node, &[], &mut new_set, false);
    strip_server_fields(&mut new_set);
    let version = api_version_of(applied);
    let position = entries.iter().position(|e| e.is(manager, APPLY, None, &version));
    let (last_set, previous_time) = match position {
        Some(i) => {
            let e = entries.remove(i);
            (e.fields, e.time)
        }
        None => (FieldSet::new(), None),
    };

    let mut merged = walk::merge(Some(live_plain.clone()), applied, node);
    if !last_set.is_empty() {
        let mut managed = new_set.clone();
        for e in &entries {
            managed.union_with(&e.fields);
        }
        walk::prune(&mut merged, node, &last_set, Some(&managed), &[]);
    }

    let mut cmp = walk::compare(&live_plain, &merged, node);
    strip_server_fields(&mut cmp.changed);
    strip_server_fields(&mut cmp.removed);
    let mut conflicts = Vec::new();
    for e in &entries {
        for path in e.fields.intersection(&cmp.changed).paths() {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                operation: e.operation.clone(),
                api_version: e.api_version.clone(),
                subresource: e.subresource.clone(),
                field: path_string(&path),
            });
        }
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort_by_key(|c| (c.manager_description(), c.field.clone()));
        return Err(ApplyError::Conflicts(conflicts));
    }
    for e in entries.iter_mut() {
        e.fields.subtract(&cmp.changed);
        e.fields.subtract(&cmp.removed);
    }
    let changed = merged != live_plain;
    entries.push(Entry {
        manager: manager.to_owned(),
        operation: APPLY.to_owned(),
        api_version: version,
        time: if changed || live.is_none() { Some(now.to_owned()) } else { previous_time },
        subresource: None,
        fields: new_set,
    });
    store_entries(&mut merged, entries);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entries(obj: &Value) -> Vec<(String, Value)> {
        obj["metadata"]["managedFields"]
            .as_array()
            .map(|l| l.iter().map(|e| (e["manager"].as_str().unwrap().to_string(), e["fieldsV1"].clone())).collect())
            .unwrap_or_default()
    }

    #[test]
    fn record_update_tracks_fields_but_not_its_own_bookkeeping() {
        let schema = Schema::empty();
        // A create: every field of the object belongs to its creator.
        let mut created = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}});
        record_update(None, &mut created, "m1", None, &schema, "", "2026-01-01T00:00:00Z");
        assert_eq!(
            entries(&created),
            [("m1".to_string(), json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:x": {}}}}))]
        );

        // An update sent with the managed fields it read (as a PUT does): the changed
        // field moves to the new manager, nothing is recorded about managedFields.
        let mut updated = created.clone();
        updated["data"]["k"] = json!("w");
        record_update(Some(&created), &mut updated, "m2", None, &schema, "", "2026-01-01T00:00:01Z");
        let got = entries(&updated);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], ("m1".to_string(), json!({"f:metadata": {"f:labels": {"f:x": {}}}})));
        assert_eq!(got[1], ("m2".to_string(), json!({"f:data": {"f:k": {}}})));
        assert!(!updated["metadata"]["managedFields"].to_string().contains("managedFields"));

        // Nothing changed but the bookkeeping: nothing recorded, no new time.
        let mut same = updated.clone();
        record_update(Some(&updated), &mut same, "m3", None, &schema, "", "2026-01-01T00:00:02Z");
        assert_eq!(same, updated);
    }
}
