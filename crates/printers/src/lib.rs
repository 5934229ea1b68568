//! Server-side Table printing: the columns and cells `kubectl get` shows for every
//! built-in kind.
//!
//! kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints exactly
//! the columns the server returns, hiding those with `priority > 0` unless `-o wide` is
//! given. This crate decides those columns and computes each row's cells from an object
//! (a `serde_json::Value` in its served version), following upstream's
//! `pkg/printers/internalversion`. Tables are always built for the wide view, as the
//! upstream apiserver does. Assembling the `Table` response (row objects, list
//! metadata) is the apiserver's job.
//!
//! Start reading at [`column_definitions`] and [`row_cells`]; the per-kind printers live
//! in one module per API area (`pod`, `core`, `workloads`, `network`, `event`, `other`).
//! Kinds without a printer get upstream's default table: `Name` and `Created At`.

mod core;
mod duration;
mod event;
mod fields;
mod network;
mod other;
mod pod;
mod table;
mod workloads;

use jiff::Timestamp;
use rkube_registry::ResourceDef;
use serde_json::Value;

pub use duration::human_duration;
pub use table::Column;

use table::{Printer, cells, col};

/// The printer for a served resource, or `None` for kinds that use the default table.
fn printer(def: &ResourceDef) -> Option<&'static Printer> {
    let p = match (def.group, def.version, def.kind) {
        ("", _, "Pod") => &pod::POD,
        ("", _, "Service") => &core::SERVICE,
        ("", _, "Endpoints") => &core::ENDPOINTS,
        ("", _, "Namespace") => &core::NAMESPACE,
        ("", _, "Node") => &core::NODE,
        ("", _, "ConfigMap") => &core::CONFIG_MAP,
        ("", _, "Secret") => &core::SECRET,
        ("", _, "ServiceAccount") => &core::SERVICE_ACCOUNT,
        ("", _, "Event") => &event::CORE_EVENT,
        ("", _, "PersistentVolume") => &core::PERSISTENT_VOLUME,
        ("", _, "PersistentVolumeClaim") => &core::PERSISTENT_VOLUME_CLAIM,
        ("", _, "ResourceQuota") => &core::RESOURCE_QUOTA,
        ("apps", _, "Deployment") => &workloads::DEPLOYMENT,
        ("apps", _, "ReplicaSet") => &workloads::REPLICA_SET,
        ("apps", _, "StatefulSet") => &workloads::STATEFUL_SET,
        ("apps", _, "DaemonSet") => &workloads::DAEMON_SET,
        ("apps", _, "ControllerRevision") => &workloads::CONTROLLER_REVISION,
        ("batch", _, "Job") => &workloads::JOB,
        ("batch", _, "CronJob") => &workloads::CRON_JOB,
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => &workloads::HPA_V1,
        ("autoscaling", _, "HorizontalPodAutoscaler") => &workloads::HPA_V2,
        ("networking.k8s.io", _, "Ingress") => &network::INGRESS,
        ("networking.k8s.io", _, "IngressClass") => &network::INGRESS_CLASS,
        ("networking.k8s.io", _, "NetworkPolicy") => &network::NETWORK_POLICY,
        ("discovery.k8s.io", _, "EndpointSlice") => &network::ENDPOINT_SLICE,
        ("storage.k8s.io", _, "StorageClass") => &other::STORAGE_CLASS,
        ("policy", _, "PodDisruptionBudget") => &other::POD_DISRUPTION_BUDGET,
        ("rbac.authorization.k8s.io", _, "RoleBinding" | "ClusterRoleBinding") => &other::ROLE_BINDING,
        ("coordination.k8s.io", _, "Lease") => &other::LEASE,
        ("events.k8s.io", _, "Event") => &event::EVENTS_V1_EVENT,
        // LimitRange, Role and ClusterRole have no printer upstream either.
        _ => return None,
    };
    Some(p)
}

/// Upstream's default table convertor, used for kinds without a printer.
static DEFAULT: Printer = Printer {
    columns: &[table::NAME, col("Created At", "date", "Time the object was created (metadata.creationTimestamp).")],
    cells: |obj, _now| {
        let created = obj.pointer("/metadata/creationTimestamp").and_then(Value::as_str);
        cells![fields::name(obj), duration::created_at(created)]
    },
};

fn printer_or_default(def: &ResourceDef) -> &'static Printer {
    printer(def).unwrap_or(&DEFAULT)
}

/// The columns of the table for this resource, wide ones included.
pub fn columns(def: &ResourceDef) -> &'static [Column] {
    printer_or_default(def).columns
}

/// The `columnDefinitions` of a Table for this resource, in wire form:
/// `{"name","type","format","description","priority"}` each.
pub fn column_definitions(def: &ResourceDef) -> Vec<Value> {
    columns(def).iter().map(Column::to_json).collect()
}

/// The `cells` of one Table row for `obj`, one per column of [`column_definitions`].
/// Ages are computed relative to `now`. Missing or mistyped fields print as upstream
/// prints a zero value; this never fails.
pub fn row_cells(def: &ResourceDef, obj: &Value, now: Timestamp) -> Vec<Value> {
    (printer_or_default(def).cells)(obj, now)
}

/// The `conditions` of one Table row: upstream marks finished pods `Completed`; every
/// other row has none.
pub fn row_conditions(def: &ResourceDef, obj: &Value) -> Vec<Value> {
    match (def.group, def.kind) {
        ("", "Pod") => pod::pod_row_conditions(obj),
        _ => Vec::new(),
    }
}
