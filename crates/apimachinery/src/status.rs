//! API errors and their `metav1.Status` form.
//!
//! Every failure of an API request becomes an [`ApiError`]; the HTTP edge turns it into
//! a Status body with [`ApiError::to_status`]. Messages follow upstream's wording because
//! kubectl prints them verbatim and scripts match on them.

use serde_json::{Value, json};

/// One cause of an Invalid error (a field that failed validation).
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// metav1.CauseType, e.g. `FieldValueRequired`.
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// An error answered to an API client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{resource} \"{name}\" not found")]
    NotFound { group: String, resource: String, name: String },
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { group: String, resource: String, name: String },
    #[error("{message}")]
    Conflict { group: String, resource: String, name: String, message: String },
    /// Server-side apply would change fields other managers own.
    #[error("{message}")]
    ApplyConflict { message: String, causes: Vec<Cause> },
    #[error("{message}")]
    Invalid { group: String, kind: String, name: String, message: String, causes: Vec<Cause> },
    #[error("{message}")]
    BadRequest { message: String },
    #[error("{message}")]
    Unauthorized { message: String },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("{message}")]
    MethodNotAllowed { message: String },
    #[error("{message}")]
    NotAcceptable { message: String },
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    #[error("{message}")]
    Gone { message: String },
    #[error("{message}")]
    Expired { message: String },
    #[error("{message}")]
    RequestEntityTooLarge { message: String },
    #[error("{message}")]
    TooManyRequests { message: String },
    #[error("{message}")]
    Timeout { message: String },
    #[error("{message}")]
    Internal { message: String },
    #[error("{message}")]
    ServiceUnavailable { message: String },
    /// The path names nothing we serve.
    #[error("the server could not find the requested resource")]
    NoRoute,
}

impl ApiError {
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError::NotFound { group: group.into(), resource: qualified(group, resource), name: name.into() }
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError::AlreadyExists { group: group.into(), resource: qualified(group, resource), name: name.into() }
    }

    /// A stale resourceVersion or a failed precondition.
    pub fn conflict(group: &str, resource: &str, name: &str, reason: &str) -> Self {
        let q = qualified(group, resource);
        ApiError::Conflict {
            group: group.into(),
            resource: q.clone(),
            name: name.into(),
            message: format!("Operation cannot be fulfilled on {q} \"{name}\": {reason}"),
        }
    }

    /// The usual optimistic-concurrency conflict.
    pub fn modified(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest { message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::Internal { message: message.into() }
    }

    pub fn invalid(group: &str, kind: &str, name: &str, message: String, causes: Vec<Cause>) -> Self {
        ApiError::Invalid { group: group.into(), kind: kind.into(), name: name.into(), message, causes }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::MethodNotAllowed { message: message.into() }
    }

    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => 409,
            ApiError::Invalid { .. } => 422,
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized { .. } => 401,
            ApiError::Forbidden { .. } => 403,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::NotAcceptable { .. } => 406,
            ApiError::UnsupportedMediaType { .. } => 415,
            ApiError::Gone { .. } | ApiError::Expired { .. } => 410,
            ApiError::RequestEntityTooLarge { .. } => 413,
            ApiError::TooManyRequests { .. } => 429,
            ApiError::Timeout { .. } => 504,
            ApiError::Internal { .. } => 500,
            ApiError::ServiceUnavailable { .. } => 503,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest { .. } => "BadRequest",
            ApiError::Unauthorized { .. } => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::MethodNotAllowed { .. } => "MethodNotAllowed",
            ApiError::NotAcceptable { .. } => "NotAcceptable",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::Gone { .. } => "Gone",
            ApiError::Expired { .. } => "Expired",
            ApiError::RequestEntityTooLarge { .. } => "RequestEntityTooLarge",
            ApiError::TooManyRequests { .. } => "TooManyRequests",
            ApiError::Timeout { .. } => "Timeout",
            ApiError::Internal { .. } => "InternalError",
            ApiError::ServiceUnavailable { .. } => "ServiceUnavailable",
        }
    }

    /// The `metav1.Status` body for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            ApiError::NotFound { group, resource, name }
            | ApiError::AlreadyExists { group, resource, name }
            | ApiError::Conflict { group, resource, name, .. } => Some(details(group, resource, name)),
            ApiError::Invalid { group, kind, name, causes, .. } => {
                let mut d = json!({"name": name, "kind": kind});
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                d["causes"] = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                Some(d)
            }
            ApiError::ApplyConflict { causes, .. } => Some(json!({
                "causes": causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect::<Vec<_>>(),
            })),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

fn details(group: &str, resource: &str, name: &str) -> Value {
    // `resource` is qualified for the message; details carry the bare plural as upstream.
    let kind = resource.split('.').next().unwrap_or(resource);
    let mut d = json!({"name": name, "kind": kind});
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

/// The Status body of a successful delete or eviction.
pub fn success_status(details: Option<Value>) -> Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_reads_like_upstream() {
        let e = ApiError::not_found("apps", "deployments", "web");
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["details"]["kind"], "deployments");
        assert_eq!(s["details"]["group"], "apps");
        let core = ApiError::not_found("", "pods", "nope").to_status();
        assert_eq!(core["message"], "pods \"nope\" not found");
        assert!(core["details"].get("group").is_none());
    }

    #[test]
    fn conflict_message() {
        let e = ApiError::modified("", "configmaps", "cfg");
        assert_eq!(e.code(), 409);
        assert_eq!(
            e.to_string(),
            "Operation cannot be fulfilled on configmaps \"cfg\": the object has been modified; please apply your changes to the latest version and try again"
        );
    }
}
