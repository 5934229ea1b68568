//! `meta.k8s.io/v1` Table and PartialObjectMetadata renderings.

use std::borrow::Borrow;
use std::sync::LazyLock;

use rkube_registry::ResourceDef;
use serde_json::{Value, json};

/// What a Table row's `object` holds (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> IncludeObject {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// An object's `PartialObjectMetadata`, borrowing its metadata: what metadata-only gets,
/// lists, table rows and watch events send (a watch writes it without copying anything).
#[derive(serde::Serialize)]
pub struct PartialMetadata<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: &'a Value,
}

static NO_METADATA: LazyLock<Value> = LazyLock::new(|| json!({}));

impl<'a> PartialMetadata<'a> {
    pub fn of(obj: &'a Value) -> Self {
        let metadata = obj.get("metadata").unwrap_or(&NO_METADATA);
        PartialMetadata { kind: "PartialObjectMetadata", api_version: "meta.k8s.io/v1", metadata }
    }
}

pub fn partial_metadata(obj: &Value) -> Value {
    serde_json::to_value(PartialMetadata::of(obj)).unwrap_or_default()
}

pub fn partial_metadata_list<T: Borrow<Value>>(items: &[T], list_meta: Value) -> Value {
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "items": items.iter().map(|o| partial_metadata(o.borrow())).collect::<Vec<_>>(),
    })
}

fn columns(def: &ResourceDef) -> Vec<Value> {
    rkube_printers::column_definitions(def)
}

fn row(def: &ResourceDef, obj: &Value, include: IncludeObject, now: jiff::Timestamp) -> Value {
    let cells = rkube_printers::row_cells(def, obj, now);
    let mut row = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => row["object"] = partial_metadata(obj),
        IncludeObject::Object => row["object"] = obj.clone(),
    }
    row
}

/// A Table of `items` (served objects). `with_columns` is false for watch events after
/// the first, as upstream sends the definitions once.
pub fn table<T: Borrow<Value>>(
    def: &ResourceDef,
    items: &[T],
    list_meta: Value,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let now = jiff::Timestamp::now();
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "rows": items.iter().map(|o| row(def, o.borrow(), include, now)).collect::<Vec<_>>(),
    });
    t["columnDefinitions"] = if with_columns { Value::Array(columns(def)) } else { json!([]) };
    t
}
