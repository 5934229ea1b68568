//! Authentication and the authorization hook.
//!
//! A request is authenticated by the TLS client certificate it presented (CN = user,
//! O = groups), verified against the cluster CA during the handshake. Requests without
//! credentials are `system:anonymous` and may only reach the health and version
//! endpoints. Every authenticated request then goes through an [`Authorizer`]; the
//! default allows everything (RBAC plugs in here).

use x509_parser::prelude::{FromDer, X509Certificate};

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn anonymous() -> Self {
        UserInfo { username: "system:anonymous".into(), groups: vec!["system:unauthenticated".into()] }
    }

    pub fn is_anonymous(&self) -> bool {
        self.username == "system:anonymous"
    }

    /// An authenticated user in `groups`, and in `system:authenticated` as every
    /// authenticated user is.
    pub fn authenticated(username: impl Into<String>, groups: impl IntoIterator<Item = String>) -> UserInfo {
        let mut groups: Vec<String> = groups.into_iter().collect();
        groups.push("system:authenticated".into());
        UserInfo { username: username.into(), groups }
    }

    /// The identity in a verified client certificate.
    pub fn from_certificate(der: &[u8]) -> Option<UserInfo> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let username = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string));
        Some(UserInfo::authenticated(username, groups))
    }
}

/// What a request wants to do, as an authorizer sees it.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    pub user: &'a UserInfo,
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    /// Set for non-resource requests (`/healthz`, `/version`, …).
    pub path: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
}

/// Decides whether an authenticated request may proceed.
pub trait Authorizer: Send + Sync {
    fn authorize(&self, attrs: &Attributes<'_>) -> Decision;
}

/// Allows every authenticated request (the mode before RBAC exists).
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _attrs: &Attributes<'_>) -> Decision {
        Decision::Allow
    }
}
