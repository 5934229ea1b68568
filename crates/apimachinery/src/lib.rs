//! Shared API machinery: the pieces every API handler needs that are not tied to one
//! kind and do no IO.
//!
//! - [`status`]: the one error type of API requests and its conversion to a
//!   `metav1.Status` body with upstream's code, reason and message;
//! - [`selector`]: label and field selectors, parsed as upstream parses them and
//!   matched against JSON objects;
//! - [`meta`]: small accessors for `metadata` fields of JSON objects;
//! - [`quantity`]: resource quantities (`100m`, `512Mi`) as exact integers.

pub mod meta;
pub mod quantity;
pub mod selector;
pub mod status;

pub use status::{ApiError, Cause};
