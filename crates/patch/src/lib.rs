//! The patch engines of the rkube API server: every `PATCH` content type kubectl sends,
//! with upstream kube-apiserver semantics, over `serde_json::Value` objects.
//!
//! - `application/json-patch+json` → [`json_patch`] (RFC 6902);
//! - `application/merge-patch+json` → [`json_merge_patch`] (RFC 7386);
//! - `application/strategic-merge-patch+json` → [`strategic_merge_patch`], typed by the
//!   OpenAPI v3 definitions wrapped in a [`Schema`];
//! - `application/apply-patch+yaml` → [`apply::apply`] (server-side apply), and after any
//!   other write [`apply::record_update`] keeps `metadata.managedFields` true.
//!
//! Start reading at [`strategic_merge_patch`] (module `strategic`), then [`apply`].

pub mod apply;
mod schema;
mod strategic;

use serde_json::Value;

pub use schema::Schema;
pub use strategic::strategic_merge_patch;

/// Why a patch could not be applied. The apiserver maps these to a `metav1.Status`
/// with [`PatchError::http_status`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    /// The JSON patch body is not a list of RFC 6902 operations.
    #[error("invalid json patch: {reason}")]
    InvalidJsonPatch { reason: String },
    /// A JSON patch operation failed against the object (missing path, failed test…).
    #[error("json patch failed: {reason}")]
    JsonPatchFailed { reason: String },
    /// A strategic merge patch must be a JSON object.
    #[error("strategic merge patch must be a json object, got {found}")]
    NotAnObject { found: &'static str },
    /// `$patch` carries a value that is not valid where it appears.
    #[error("unknown patch type {directive} at {path}")]
    UnknownDirective { directive: String, path: String },
    /// `$patch: merge` inside a list, which upstream does not support.
    #[error("merging lists cannot yet be specified in the patch (at {path})")]
    ListMergeDirective { path: String },
    /// A list item lacks the field the list merges by.
    #[error("map {item} at {path} does not contain declared merge key {key:?}")]
    MissingMergeKey { path: String, key: String, item: String },
    /// A list of objects has strategy `merge` but the schema names no merge key.
    #[error("cannot merge lists without merge key at {path}")]
    NoMergeKey { path: String },
    #[error("lists of lists are not supported (at {path})")]
    ListOfLists { path: String },
    #[error("list element types are not identical at {path}")]
    MixedList { path: String },
    #[error("invalid patch format of retainKeys at {path}")]
    BadRetainKeys { path: String },
    #[error("invalid patch format of setElementOrder list at {path}")]
    BadSetElementOrder { path: String },
    #[error("the order of the patch list at {path} does not match its $setElementOrder list")]
    OrderMismatch { path: String },
    #[error("expected {expected} at {path}, found {found}")]
    TypeMismatch { path: String, expected: &'static str, found: &'static str },
}

impl PatchError {
    /// The status code kube-apiserver answers with for the same failure: 400 for a
    /// malformed patch, 422 when the patch is well-formed but cannot be applied, and 500
    /// for strategic-merge errors upstream does not classify.
    pub fn http_status(&self) -> u16 {
        match self {
            PatchError::InvalidJsonPatch { .. }
            | PatchError::NotAnObject { .. }
            | PatchError::BadRetainKeys { .. }
            | PatchError::BadSetElementOrder { .. } => 400,
            PatchError::JsonPatchFailed { .. } | PatchError::ListOfLists { .. } => 422,
            _ => 500,
        }
    }
}

/// Applies an RFC 7386 JSON merge patch: objects merge recursively, `null` deletes a
/// key, anything else (lists included) replaces.
pub fn json_merge_patch(original: &Value, patch: &Value) -> Value {
    let mut doc = original.clone();
    json_patch::merge(&mut doc, patch);
    doc
}

/// Applies an RFC 6902 JSON patch (a list of `add`/`remove`/`replace`/`move`/`copy`/
/// `test` operations). Either every operation applies or the error is returned.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::InvalidJsonPatch { reason: e.to_string() })?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| PatchError::JsonPatchFailed { reason: e.to_string() })?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7386() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
            (
                json!({"metadata": {"labels": {"tier": "frontend", "app": "x"}}}),
                json!({"metadata": {"labels": {"tier": null}}}),
                json!({"metadata": {"labels": {"app": "x"}}}),
            ),
        ];
        for (original, patch, want) in cases {
            assert_eq!(json_merge_patch(&original, &patch), want, "patch {patch}");
        }
    }

    #[test]
    fn json_patch_applies_rollout_undo_body() {
        let original = json!({"metadata": {"annotations": {"a": "1"}},
            "spec": {"template": {"spec": {"containers": [{"name": "n", "image": "v2"}]}}}});
        let patch = json!([
            {"op": "replace", "path": "/spec/template",
             "value": {"spec": {"containers": [{"name": "n", "image": "v1"}]}}},
            {"op": "replace", "path": "/metadata/annotations", "value": {"b": "2"}}
        ]);
        let got = json_patch(&original, &patch);
        assert_eq!(
            got,
            Ok(json!({"metadata": {"annotations": {"b": "2"}},
                "spec": {"template": {"spec": {"containers": [{"name": "n", "image": "v1"}]}}}}))
        );
    }

    #[test]
    fn json_patch_errors() {
        let original = json!({"a": 1});
        let bad_op = json_patch(&original, &json!([{"op": "frobnicate", "path": "/a"}]));
        assert!(matches!(bad_op, Err(PatchError::InvalidJsonPatch { .. })));
        assert_eq!(bad_op.map_err(|e| e.http_status()), Err(400));
        let failed = json_patch(&original, &json!([{"op": "remove", "path": "/missing"}]));
        assert!(matches!(failed, Err(PatchError::JsonPatchFailed { .. })));
        assert_eq!(failed.map_err(|e| e.http_status()), Err(422));
        let test_failed = json_patch(
            &original,
            &json!([{"op": "test", "path": "/a", "value": 2}, {"op": "add", "path": "/b", "value": 1}]),
        );
        assert!(matches!(test_failed, Err(PatchError::JsonPatchFailed { .. })));
    }
}
