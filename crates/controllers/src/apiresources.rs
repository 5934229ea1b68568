//! The resources the server serves, from API discovery (`/api`, `/apis`), as upstream's
//! garbage collector and namespace controller find them: they work on every kind the
//! server offers, not on a list compiled in.

use kube::Client;
use kube::api::{ApiResource, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Discovery, Scope, verbs};

/// One resource at its group's preferred version.
#[derive(Debug, Clone)]
pub struct Resource {
    pub ar: ApiResource,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

impl Resource {
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// `plural.group` as upstream writes a GroupResource (`configmaps.`, `replicasets.apps`).
    pub fn group_resource(&self) -> String {
        format!("{}.{}", self.ar.plural, self.ar.group)
    }
}

/// What discovery found.
pub struct ApiResources {
    discovery: Discovery,
    preferred: Vec<Resource>,
}

impl ApiResources {
    /// Runs discovery: aggregated (two requests) when the server offers it, else one
    /// request per group version.
    pub async fn discover(client: Client) -> Result<ApiResources, kube::Error> {
        let discovery = match Discovery::new(client.clone()).run_aggregated().await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "aggregated discovery failed; discovering group by group");
                Discovery::new(client).run().await?
            }
        };
        let mut preferred = Vec::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                preferred.push(resource(ar, &caps));
            }
        }
        Ok(ApiResources { discovery, preferred })
    }

    /// Every resource at its group's preferred version.
    pub fn preferred(&self) -> &[Resource] {
        &self.preferred
    }

    /// Resources the garbage collector watches: listable, watchable and deletable.
    pub fn deletable(&self) -> impl Iterator<Item = &Resource> {
        self.preferred
            .iter()
            .filter(|r| r.supports(verbs::LIST) && r.supports(verbs::WATCH) && r.supports(verbs::DELETE))
    }

    /// The resource an `apiVersion` and `kind` (of an owner reference) name: that exact
    /// version when served, else the group's preferred version of the kind (the uid and
    /// name of an object do not depend on the version it is read at).
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<Resource> {
        let (group, version) = split_api_version(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        if let Some((ar, caps)) = self.discovery.resolve_gvk(&gvk) {
            return Some(resource(ar, &caps));
        }
        self.preferred.iter().find(|r| r.ar.group == group && r.ar.kind == kind).cloned()
    }
}

fn resource(ar: ApiResource, caps: &ApiCapabilities) -> Resource {
    Resource { ar, namespaced: caps.scope == Scope::Namespaced, verbs: caps.operations.clone() }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_split_into_group_and_version() {
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        assert_eq!(split_api_version("rbac.authorization.k8s.io/v1"), ("rbac.authorization.k8s.io", "v1"));
        assert_eq!(split_api_version(""), ("", ""));
    }
}
