//! Defaulting and validation of the built-in kinds, as kube-apiserver does them.
//!
//! The apiserver calls, for every write: [`unknown_fields`] (for `fieldValidation=Strict`
//! or `Warn`), then [`default_object`], then [`validate_create`] or [`validate_update`];
//! a non-empty error list becomes a 422 whose message is [`invalid_message`] and whose
//! `details.causes` come from each [`FieldError`] (`reason()`, `field`, `to_string()`).
//! Objects are `serde_json::Value`s in the version the [`ResourceDef`] serves. Messages
//! follow upstream's wording (`pkg/apis/*/validation`), so kubectl prints what it prints
//! against a real cluster.
//!
//! Start reading at [`validate_create`]; the per-kind rules live in `kinds` and `pod`,
//! defaults in `defaults`, name syntax in `names`.
//!
//! The caller prepares the object as upstream's create strategies do before these run:
//! `metadata.namespace` set from the URL for namespaced kinds, `metadata.name` generated
//! from `generateName`, `metadata.uid` set (Jobs derive their selector from it), and on
//! update the allocated Service `clusterIP(s)` carried over from the old object.

mod defaults;
mod field;
mod json;
mod kinds;
mod meta;
mod names;
mod pod;
mod quantity;
mod unknown;

use serde_json::Value;

use rkube_registry::ResourceDef;

pub use field::{ErrorType, FieldError, Path, invalid_message};
pub use names::dns1123_subdomain;
pub use unknown::strict_decoding_message;

/// Fills in upstream's defaults for the kind, including nested pod templates.
pub fn default_object(def: &ResourceDef, obj: &mut Value) {
    defaults::apply(def.group, def.version, def.kind, obj);
}

/// Everything wrong with a new object: metadata, then the kind's own rules.
pub fn validate_create(def: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    let rule = kinds::name_rule(def.group, def.kind);
    let mut errs = meta::object_meta(obj, def.namespaced, rule);
    errs.extend(kinds::validate(def.group, def.kind, obj));
    errs
}

/// Everything wrong with an update: the new object on its own, then what may not change
/// from `old` (identity metadata, immutable fields, the pod spec).
pub fn validate_update(def: &ResourceDef, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(new, old);
    errs.extend(validate_create(def, new));
    errs.extend(kinds::validate_update(def.group, def.kind, new, old));
    errs
}

/// Field paths present in `obj` that the kind's type does not know, printed as upstream's
/// strict decoder prints them (`spec.template.spec.containers[0].bogus`,
/// `metadata.labels` never, map entries as `.key`). `Err` carries the decoder's message
/// when the object does not fit the type at all (a string where a number belongs).
/// Combine with [`strict_decoding_message`] for the 400 text.
pub fn unknown_fields(def: &ResourceDef, obj: &Value) -> Result<Vec<String>, String> {
    unknown::unknown_fields(def, obj)
}

/// The kind as upstream names it in messages: `Pod`, `Deployment.apps`.
pub fn qualified_kind(def: &ResourceDef) -> String {
    if def.group.is_empty() { def.kind.to_string() } else { format!("{}.{}", def.kind, def.group) }
}
