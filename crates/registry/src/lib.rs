//! The API registry: the table of every kind rkube serves.
//!
//! One [`ResourceDef`] per (group, version, resource) says everything the rest of the
//! server needs to know about a kind: its names (kind, plural, singular, short names,
//! categories), its scope, its subresources and verbs, where it lives in the store and
//! which `k8s-openapi` type gives it a typed shape. Adding a kind is one entry in
//! [`RESOURCES`]. Start reading at [`RESOURCES`], then [`lookup`].
//!
//! This crate does no IO; discovery documents, OpenAPI, printing, defaulting and the HTTP
//! handlers are built from this table elsewhere.

use std::marker::PhantomData;

use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authentication, authorization::v1 as authorization,
    autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2, batch::v1 as batch,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery, events::v1 as events,
    networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac, storage::v1 as storage,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

mod convert;
pub mod tracked;
pub use convert::{ConversionError, convert, from_storage, to_storage};

/// Group, version and kind of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gvk {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

impl Gvk {
    /// The `apiVersion` string: `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        api_version(self.group, self.version)
    }
}

/// The `apiVersion` string for a group and version.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }
}

/// A subresource such as `status` or `scale`.
#[derive(Debug, Clone, Copy)]
pub struct SubresourceDef {
    pub name: &'static str,
    /// The kind sent and returned on this subresource (`Scale` for `scale`).
    pub kind: Gvk,
    pub verbs: &'static [&'static str],
}

/// Erases a `k8s-openapi` type so the table can hold every kind.
pub trait TypedKind: Sync + Send {
    /// Decodes `value` into the typed struct and returns the paths of the fields the
    /// type does not know ([`tracked::unknown_fields`]). Errors are the serde message for
    /// a wrong type.
    fn unknown_fields(&self, value: &Value) -> Result<Vec<String>, serde_json::Error>;
    /// The JSON schema of the type, generated from `k8s-openapi`.
    fn json_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema;
    /// The Rust type name, for diagnostics.
    fn type_name(&self) -> &'static str;
}

struct Typed<T>(PhantomData<fn() -> T>);

impl<T> TypedKind for Typed<T>
where
    T: Serialize + DeserializeOwned + schemars::JsonSchema,
{
    fn unknown_fields(&self, value: &Value) -> Result<Vec<String>, serde_json::Error> {
        tracked::unknown_fields::<T>(value)
    }

    fn json_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<T>()
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

/// One served resource: a (group, version, plural) and everything known about it.
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [SubresourceDef],
    pub verbs: &'static [&'static str],
    /// The resource name in store keys: `/registry/<storage>/<namespace>/<name>`. Several
    /// versions of one resource share it (autoscaling v1 and v2).
    pub storage: &'static str,
    /// The group/version objects of this resource are stored as.
    pub storage_version: (&'static str, &'static str),
    /// The OpenAPI definition name upstream uses (`io.k8s.api.core.v1.Pod`).
    pub openapi_name: &'static str,
    pub typed: &'static dyn TypedKind,
}

impl std::fmt::Debug for ResourceDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceDef")
            .field("group", &self.group)
            .field("version", &self.version)
            .field("plural", &self.plural)
            .finish_non_exhaustive()
    }
}

impl ResourceDef {
    pub fn gvk(&self) -> Gvk {
        Gvk { group: self.group, version: self.version, kind: self.kind }
    }

    pub fn api_version(&self) -> String {
        api_version(self.group, self.version)
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn subresource(&self, name: &str) -> Option<&'static SubresourceDef> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// `resource.group` as used in messages (`deployments.apps`), or just the plural for
    /// the core group.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// Whether objects are stored in another version than the one served here.
    pub fn needs_conversion(&self) -> bool {
        (self.group, self.version) != self.storage_version
    }
}

const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const NS_VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
const CREATE_ONLY: &[&str] = &["create"];
const ALL: &[&str] = &["all"];

const fn gvk(group: &'static str, version: &'static str, kind: &'static str) -> Gvk {
    Gvk { group, version, kind }
}

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> SubresourceDef {
    SubresourceDef { name: "status", kind: gvk(group, version, kind), verbs: STATUS_VERBS }
}

const SCALE: SubresourceDef =
    SubresourceDef { name: "scale", kind: gvk("autoscaling", "v1", "Scale"), verbs: STATUS_VERBS };

macro_rules! typed {
    ($t:ty) => {
        &Typed::<$t>(PhantomData)
    };
}

/// Builds a [`ResourceDef`] stored under its own group/version.
macro_rules! resource {
    (
        $group:literal, $version:literal, $kind:literal, $plural:literal, $singular:literal,
        namespaced: $ns:literal, short: $short:expr, categories: $cat:expr,
        sub: $sub:expr, verbs: $verbs:expr, openapi: $oapi:literal, typed: $t:ty
        $(, storage: $storage:literal as ($sg:literal, $sv:literal))?
    ) => {
        ResourceDef {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            verbs: $verbs,
            storage: resource!(@storage $plural $(, $storage)?),
            storage_version: resource!(@sv $group, $version $(, $sg, $sv)?),
            openapi_name: $oapi,
            typed: typed!($t),
        }
    };
    (@storage $plural:literal) => { $plural };
    (@storage $plural:literal, $storage:literal) => { $storage };
    (@sv $group:literal, $version:literal) => { ($group, $version) };
    (@sv $group:literal, $version:literal, $sg:literal, $sv:literal) => { ($sg, $sv) };
}

/// Every resource rkube serves, in discovery order.
pub static RESOURCES: &[ResourceDef] = &[
    // core/v1
    resource!("", "v1", "Namespace", "namespaces", "namespace", namespaced: false,
        short: &["ns"], categories: &[], sub: &[status("", "v1", "Namespace"),
            SubresourceDef { name: "finalize", kind: gvk("", "v1", "Namespace"), verbs: &["update"] }],
        verbs: NS_VERBS, openapi: "io.k8s.api.core.v1.Namespace", typed: core::Namespace),
    resource!("", "v1", "Pod", "pods", "pod", namespaced: true,
        short: &["po"], categories: ALL, sub: &[
            status("", "v1", "Pod"),
            SubresourceDef { name: "binding", kind: gvk("", "v1", "Binding"), verbs: &["create"] },
            SubresourceDef { name: "eviction", kind: gvk("policy", "v1", "Eviction"), verbs: &["create"] },
            SubresourceDef { name: "ephemeralcontainers", kind: gvk("", "v1", "Pod"), verbs: STATUS_VERBS },
            SubresourceDef { name: "log", kind: gvk("", "v1", "Pod"), verbs: &["get"] },
            SubresourceDef { name: "exec", kind: gvk("", "v1", "PodExecOptions"), verbs: &["create", "get"] },
            SubresourceDef { name: "attach", kind: gvk("", "v1", "PodAttachOptions"), verbs: &["create", "get"] },
            SubresourceDef { name: "portforward", kind: gvk("", "v1", "PodPortForwardOptions"), verbs: &["create", "get"] },
        ],
        verbs: ALL_VERBS, openapi: "io.k8s.api.core.v1.Pod", typed: core::Pod),
    resource!("", "v1", "Service", "services", "service", namespaced: true,
        short: &["svc"], categories: ALL, sub: &[status("", "v1", "Service")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.core.v1.Service", typed: core::Service),
    resource!("", "v1", "Endpoints", "endpoints", "endpoints", namespaced: true,
        short: &["ep"], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.core.v1.Endpoints", typed: core::Endpoints),
    resource!("", "v1", "ConfigMap", "configmaps", "configmap", namespaced: true,
        short: &["cm"], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.core.v1.ConfigMap", typed: core::ConfigMap),
    resource!("", "v1", "Secret", "secrets", "secret", namespaced: true,
        short: &[], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.core.v1.Secret", typed: core::Secret),
    resource!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", namespaced: true,
        short: &["sa"], categories: &[], sub: &[
            SubresourceDef { name: "token", kind: gvk("authentication.k8s.io", "v1", "TokenRequest"), verbs: &["create"] }],
        verbs: ALL_VERBS, openapi: "io.k8s.api.core.v1.ServiceAccount", typed: core::ServiceAccount),
    resource!("", "v1", "Node", "nodes", "node", namespaced: false,
        short: &["no"], categories: &[], sub: &[status("", "v1", "Node"),
            SubresourceDef { name: "proxy", kind: gvk("", "v1", "NodeProxyOptions"),
                verbs: &["create", "delete", "get", "patch", "update"] }],
        verbs: ALL_VERBS, openapi: "io.k8s.api.core.v1.Node", typed: core::Node),
    resource!("", "v1", "Event", "events", "event", namespaced: true,
        short: &["ev"], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.core.v1.Event", typed: core::Event),
    resource!("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", namespaced: false,
        short: &["pv"], categories: &[], sub: &[status("", "v1", "PersistentVolume")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.core.v1.PersistentVolume", typed: core::PersistentVolume),
    resource!("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", namespaced: true,
        short: &["pvc"], categories: &[], sub: &[status("", "v1", "PersistentVolumeClaim")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.core.v1.PersistentVolumeClaim", typed: core::PersistentVolumeClaim),
    resource!("", "v1", "LimitRange", "limitranges", "limitrange", namespaced: true,
        short: &["limits"], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.core.v1.LimitRange", typed: core::LimitRange),
    resource!("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", namespaced: true,
        short: &["quota"], categories: &[], sub: &[status("", "v1", "ResourceQuota")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.core.v1.ResourceQuota", typed: core::ResourceQuota),
    // apps/v1
    resource!("apps", "v1", "Deployment", "deployments", "deployment", namespaced: true,
        short: &["deploy"], categories: ALL, sub: &[SCALE, status("apps", "v1", "Deployment")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.apps.v1.Deployment", typed: apps::Deployment),
    resource!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", namespaced: true,
        short: &["rs"], categories: ALL, sub: &[SCALE, status("apps", "v1", "ReplicaSet")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.apps.v1.ReplicaSet", typed: apps::ReplicaSet),
    resource!("apps", "v1", "StatefulSet", "statefulsets", "statefulset", namespaced: true,
        short: &["sts"], categories: ALL, sub: &[SCALE, status("apps", "v1", "StatefulSet")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.apps.v1.StatefulSet", typed: apps::StatefulSet),
    resource!("apps", "v1", "DaemonSet", "daemonsets", "daemonset", namespaced: true,
        short: &["ds"], categories: ALL, sub: &[status("apps", "v1", "DaemonSet")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.apps.v1.DaemonSet", typed: apps::DaemonSet),
    resource!("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", namespaced: true,
        short: &[], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.apps.v1.ControllerRevision", typed: apps::ControllerRevision),
    // batch/v1
    resource!("batch", "v1", "Job", "jobs", "job", namespaced: true,
        short: &[], categories: ALL, sub: &[status("batch", "v1", "Job")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.batch.v1.Job", typed: batch::Job),
    resource!("batch", "v1", "CronJob", "cronjobs", "cronjob", namespaced: true,
        short: &["cj"], categories: ALL, sub: &[status("batch", "v1", "CronJob")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.batch.v1.CronJob", typed: batch::CronJob),
    // autoscaling: v2 is preferred and is the storage version
    resource!("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", namespaced: true,
        short: &["hpa"], categories: ALL, sub: &[status("autoscaling", "v2", "HorizontalPodAutoscaler")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler", typed: autoscaling_v2::HorizontalPodAutoscaler),
    resource!("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", namespaced: true,
        short: &["hpa"], categories: ALL, sub: &[status("autoscaling", "v1", "HorizontalPodAutoscaler")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler", typed: autoscaling_v1::HorizontalPodAutoscaler,
        storage: "horizontalpodautoscalers" as ("autoscaling", "v2")),
    // networking.k8s.io/v1
    resource!("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", namespaced: true,
        short: &["ing"], categories: &[], sub: &[status("networking.k8s.io", "v1", "Ingress")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.networking.v1.Ingress", typed: networking::Ingress),
    resource!("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", namespaced: false,
        short: &[], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.networking.v1.IngressClass", typed: networking::IngressClass),
    resource!("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", namespaced: true,
        short: &["netpol"], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.networking.v1.NetworkPolicy", typed: networking::NetworkPolicy),
    // storage.k8s.io/v1
    resource!("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", namespaced: false,
        short: &["sc"], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.storage.v1.StorageClass", typed: storage::StorageClass),
    // policy/v1
    resource!("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", namespaced: true,
        short: &["pdb"], categories: &[], sub: &[status("policy", "v1", "PodDisruptionBudget")],
        verbs: ALL_VERBS, openapi: "io.k8s.api.policy.v1.PodDisruptionBudget", typed: policy::PodDisruptionBudget),
    // rbac.authorization.k8s.io/v1
    resource!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", namespaced: true,
        short: &[], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.rbac.v1.Role", typed: rbac::Role),
    resource!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", namespaced: true,
        short: &[], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.rbac.v1.RoleBinding", typed: rbac::RoleBinding),
    resource!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", namespaced: false,
        short: &[], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.rbac.v1.ClusterRole", typed: rbac::ClusterRole),
    resource!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", namespaced: false,
        short: &[], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.rbac.v1.ClusterRoleBinding", typed: rbac::ClusterRoleBinding),
    // coordination.k8s.io/v1
    resource!("coordination.k8s.io", "v1", "Lease", "leases", "lease", namespaced: true,
        short: &[], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.coordination.v1.Lease", typed: coordination::Lease),
    // discovery.k8s.io/v1
    resource!("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", namespaced: true,
        short: &[], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.discovery.v1.EndpointSlice", typed: discovery::EndpointSlice),
    // events.k8s.io/v1 shares storage with core/v1 events
    resource!("events.k8s.io", "v1", "Event", "events", "event", namespaced: true,
        short: &["ev"], categories: &[], sub: &[],
        verbs: ALL_VERBS, openapi: "io.k8s.api.events.v1.Event", typed: events::Event,
        storage: "events" as ("", "v1")),
    // Reviews: create-only questions the server answers without storing anything.
    resource!("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview",
        namespaced: false, short: &[], categories: &[], sub: &[], verbs: CREATE_ONLY,
        openapi: "io.k8s.api.authentication.v1.SelfSubjectReview", typed: authentication::SelfSubjectReview),
    resource!("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
        "selfsubjectaccessreview", namespaced: false, short: &[], categories: &[], sub: &[], verbs: CREATE_ONLY,
        openapi: "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
        typed: authorization::SelfSubjectAccessReview),
    resource!("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
        "selfsubjectrulesreview", namespaced: false, short: &[], categories: &[], sub: &[], verbs: CREATE_ONLY,
        openapi: "io.k8s.api.authorization.v1.SelfSubjectRulesReview",
        typed: authorization::SelfSubjectRulesReview),
    resource!("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview",
        namespaced: false, short: &[], categories: &[], sub: &[], verbs: CREATE_ONLY,
        openapi: "io.k8s.api.authorization.v1.SubjectAccessReview", typed: authorization::SubjectAccessReview),
    resource!("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews",
        "localsubjectaccessreview", namespaced: true, short: &[], categories: &[], sub: &[], verbs: CREATE_ONLY,
        openapi: "io.k8s.api.authorization.v1.LocalSubjectAccessReview",
        typed: authorization::LocalSubjectAccessReview),
];

/// Whether a DELETE answers with the deleted object (upstream's `ReturnDeletedObject`)
/// rather than a `Status`. Objects only marked for deletion are always returned.
pub fn returns_deleted_object(def: &ResourceDef) -> bool {
    matches!(
        (def.group, def.plural),
        ("", "pods" | "services" | "persistentvolumes" | "persistentvolumeclaims")
            | ("storage.k8s.io", "storageclasses")
    )
}

/// Whether objects of this resource are answered, never stored (the review kinds).
pub fn is_review(def: &ResourceDef) -> bool {
    def.verbs == CREATE_ONLY
}

/// The groups served, each with its versions in preferred-first order.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

/// The resources of one group/version, in table order.
pub fn resources_in(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceDef> {
    let (group, version) = (group.to_string(), version.to_string());
    RESOURCES.iter().filter(move |r| r.group == group && r.version == version)
}

/// Finds a resource by group, version and plural name.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by group, version and kind.
pub fn lookup_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The served resource whose store representation is this one (the storage version).
pub fn storage_def(def: &ResourceDef) -> &'static ResourceDef {
    // Asked several times per request: a table entry (every caller's `def` is one) finds
    // its storage entry through a table made once, by comparing addresses instead of
    // strings.
    static STORAGE: std::sync::LazyLock<Vec<Option<usize>>> =
        std::sync::LazyLock::new(|| RESOURCES.iter().map(position_of_storage).collect());
    if let Some(i) = RESOURCES.iter().position(|r| std::ptr::eq(r, def))
        && let Some(s) = STORAGE[i]
    {
        return &RESOURCES[s];
    }
    position_of_storage(def).map(|s| &RESOURCES[s]).expect("every storage version is itself served")
}

fn position_of_storage(def: &ResourceDef) -> Option<usize> {
    let (g, v) = def.storage_version;
    RESOURCES.iter().position(|r| r.group == g && r.version == v && r.storage == def.storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_storage_version_is_served() {
        for r in RESOURCES {
            let s = storage_def(r);
            // A copy outside the table finds the same entry the long way.
            let copy = ResourceDef { ..*r };
            assert!(std::ptr::eq(storage_def(&copy), s), "{}", r.plural);
            assert_eq!(s.storage, r.storage);
            assert!(!s.needs_conversion(), "{} stored as a converted version", r.plural);
        }
    }

    #[test]
    fn names_are_unique_per_group_version() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "duplicate {}/{}/{}",
                    a.group,
                    a.version,
                    a.plural
                );
            }
        }
    }

    #[test]
    fn autoscaling_prefers_v2() {
        let g = groups();
        let (_, versions) = g.iter().find(|(g, _)| *g == "autoscaling").unwrap();
        assert_eq!(versions, &vec!["v2", "v1"]);
    }

    #[test]
    fn typed_kinds_report_unknown_fields_and_reject_wrong_types() {
        let cm = lookup("", "v1", "configmaps").unwrap();
        let v = serde_json::json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"},"bogus":1});
        assert_eq!(cm.typed.unknown_fields(&v).unwrap(), ["bogus"]);
        let bad = serde_json::json!({"metadata":{"name":"a"},"data":{"k":1}});
        assert!(cm.typed.unknown_fields(&bad).is_err());
    }
}
