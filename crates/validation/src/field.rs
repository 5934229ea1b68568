//! Field errors and field paths, printed the way upstream's `field.Error` prints them.

use std::fmt;

use serde_json::Value;

/// What is wrong with a field; one-to-one with `metav1.CauseType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    Required,
    Invalid,
    Forbidden,
    NotSupported,
    Duplicate,
    TooLong,
    TooMany,
    NotFound,
}

impl ErrorType {
    /// The human text upstream prints after the field path.
    pub fn text(self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::NotFound => "Not found",
        }
    }

    /// The `metav1.CauseType` for `details.causes[].reason`.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::NotFound => "FieldValueNotFound",
        }
    }
}

/// One validation failure on one field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub error_type: ErrorType,
    /// Upstream's field path: `spec.containers[0].image`, `data[key]`, `metadata.name`.
    pub field: String,
    /// The offending value; `None` when upstream does not print one.
    pub value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    /// The `metav1.CauseType` string (`FieldValueRequired`, …).
    pub fn reason(&self) -> &'static str {
        self.error_type.reason()
    }

    /// The message without the field path (upstream's `ErrorBody`).
    pub fn body(&self) -> String {
        let mut s = self.error_type.text().to_string();
        // Upstream never prints the value of these kinds of error.
        let print_value = !matches!(self.error_type, ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong);
        if print_value && let Some(v) = &self.value {
            s.push_str(": ");
            s.push_str(&go_value(v));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    pub fn required(path: &Path, detail: &str) -> Self {
        Self::new(ErrorType::Required, path, None, detail)
    }

    pub fn invalid(path: &Path, value: impl Into<Value>, detail: &str) -> Self {
        Self::new(ErrorType::Invalid, path, Some(value.into()), detail)
    }

    pub fn forbidden(path: &Path, detail: &str) -> Self {
        Self::new(ErrorType::Forbidden, path, None, detail)
    }

    pub fn duplicate(path: &Path, value: impl Into<Value>) -> Self {
        Self::new(ErrorType::Duplicate, path, Some(value.into()), "")
    }

    pub fn not_found(path: &Path, value: impl Into<Value>) -> Self {
        Self::new(ErrorType::NotFound, path, Some(value.into()), "")
    }

    pub fn too_long(path: &Path, max: usize) -> Self {
        Self::new(ErrorType::TooLong, path, None, &format!("must have at most {max} bytes"))
    }

    pub fn too_many(path: &Path, actual: usize, max: usize) -> Self {
        Self::new(ErrorType::TooMany, path, Some(Value::from(actual)), &format!("must have at most {max} items"))
    }

    pub fn not_supported(path: &Path, value: impl Into<Value>, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(ErrorType::NotSupported, path, Some(value.into()), &detail)
    }

    fn new(error_type: ErrorType, path: &Path, value: Option<Value>, detail: &str) -> Self {
        FieldError { error_type, field: path.to_string(), value, detail: detail.to_string() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Renders a value the way Go's `%v`/`%q`/`%#v` would show the Go value it came from:
/// strings quoted, numbers and booleans bare, string maps as `map[string]string{…}` and
/// string lists as `[]string{…}` (Go sorts map keys when printing), anything else as JSON.
pub(crate) fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::String(s) => go_quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Object(m) if !m.is_empty() && m.values().all(Value::is_string) => {
            let mut pairs: Vec<(&String, &Value)> = m.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> =
                pairs.iter().map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v.as_str().unwrap_or("")))).collect();
            format!("map[string]string{{{}}}", inner.join(", "))
        }
        Value::Array(a) if a.iter().all(Value::is_string) => {
            let inner: Vec<String> = a.iter().map(|v| go_quote(v.as_str().unwrap_or(""))).collect();
            format!("[]string{{{}}}", inner.join(", "))
        }
        other => other.to_string(),
    }
}

/// Go's `%q` for the characters that occur in API values: Rust's `{:?}` differs only in
/// exotic escapes, which do not matter for messages.
pub(crate) fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// A field path under construction: `spec`, `.containers`, `[0]`, `[key]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    pub fn root() -> Self {
        Path(String::new())
    }

    pub fn new(name: &str) -> Self {
        Path(name.to_string())
    }

    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() { Path(name.to_string()) } else { Path(format!("{}.{}", self.0, name)) }
    }

    pub fn index(&self, i: usize) -> Self {
        Path(format!("{}[{}]", self.0, i))
    }

    pub fn key(&self, k: &str) -> Self {
        Path(format!("{}[{}]", self.0, k))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Upstream's 422 message: `Pod "x" is invalid: a` for one error, `[a, b]` for several.
///
/// `kind` is the qualified kind upstream prints: `Pod`, `Deployment.apps`
/// (see [`crate::qualified_kind`]). Identical messages are printed once, as upstream's
/// aggregate does.
pub fn invalid_message(kind: &str, name: &str, errs: &[FieldError]) -> String {
    let mut msgs: Vec<String> = Vec::new();
    for e in errs {
        let m = e.to_string();
        if !msgs.contains(&m) {
            msgs.push(m);
        }
    }
    let agg = match msgs.len() {
        0 => "<nil>".to_string(),
        1 => msgs.remove(0),
        _ => format!("[{}]", msgs.join(", ")),
    };
    format!("{kind} {} is invalid: {agg}", go_quote(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn display_matches_upstream_forms() {
        let p = Path::new("spec").child("containers").index(0).child("image");
        assert_eq!(FieldError::required(&p, "").to_string(), "spec.containers[0].image: Required value");
        let e = FieldError::not_supported(
            &Path::new("spec").child("restartPolicy"),
            "Sometimes",
            &["Always", "OnFailure", "Never"],
        );
        assert_eq!(
            e.to_string(),
            r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#
        );
        let e = FieldError::invalid(&Path::new("spec").child("replicas"), -1, "must be greater than or equal to 0");
        assert_eq!(e.to_string(), "spec.replicas: Invalid value: -1: must be greater than or equal to 0");
        let e = FieldError::invalid(&Path::new("l"), json!({"b":"2","a":"1"}), "x");
        assert_eq!(e.to_string(), r#"l: Invalid value: map[string]string{"a":"1", "b":"2"}: x"#);
        let e = FieldError::too_long(&Path::root(), 1048576);
        assert_eq!(e.to_string(), ": Too long: must have at most 1048576 bytes");
        assert_eq!(e.reason(), "FieldValueTooLong");
        assert_eq!(FieldError::duplicate(&Path::new("a").key("k"), "x").to_string(), r#"a[k]: Duplicate value: "x""#);
    }

    #[test]
    fn invalid_message_aggregates() {
        let a = FieldError::required(&Path::new("a"), "");
        let b = FieldError::required(&Path::new("b"), "");
        assert_eq!(invalid_message("Pod", "x", std::slice::from_ref(&a)), r#"Pod "x" is invalid: a: Required value"#);
        assert_eq!(
            invalid_message("Deployment.apps", "x", &[a.clone(), b, a]),
            r#"Deployment.apps "x" is invalid: [a: Required value, b: Required value]"#
        );
    }
}
