//! Column definitions and the per-kind printer shape.

use jiff::Timestamp;
use serde_json::{Value, json};

/// One `meta.k8s.io/v1` `TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Header text; kubectl upper-cases it (`Nominated Node` prints as `NOMINATED NODE`).
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `boolean`, `date`, …
    pub ty: &'static str,
    /// `name` marks the column holding the object name; otherwise empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0 for the default view, 1 for columns kubectl shows only with `-o wide`.
    pub priority: i32,
}

impl Column {
    /// The column in its wire form; every field is always present, as upstream sends it.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

pub(crate) const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column { name, ty, format: "", description, priority: 0 }
}

pub(crate) const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column { name, ty, format: "", description, priority: 1 }
}

pub(crate) const NAME: Column = Column {
    name: "Name",
    ty: "string",
    format: "name",
    description: "Name of the object, unique within its namespace (or the cluster for cluster-scoped kinds).",
    priority: 0,
};

pub(crate) const AGE: Column = col("Age", "string", "Time since the object was created (metadata.creationTimestamp).");

pub(crate) const CONTAINERS: Column = wide("Containers", "string", "Container names of the pod template.");

pub(crate) const IMAGES: Column = wide("Images", "string", "Container images of the pod template.");

pub(crate) const SELECTOR: Column = wide("Selector", "string", "Label selector choosing the pods this object manages.");

/// Builds the cells of one row.
pub(crate) type CellFn = fn(&Value, Timestamp) -> Vec<Value>;

/// How one kind prints: its columns and the function producing a row's cells.
pub(crate) struct Printer {
    pub columns: &'static [Column],
    pub cells: CellFn,
}

/// `vec![Value::from(a), Value::from(b), …]`.
macro_rules! cells {
    ($($cell:expr),* $(,)?) => {
        vec![$(::serde_json::Value::from($cell)),*]
    };
}
pub(crate) use cells;
