//! storage.k8s.io, policy, rbac.authorization.k8s.io and coordination.k8s.io kinds.

use jiff::Timestamp;
use serde_json::Value;

use crate::duration::age;
use crate::fields::{arr_at, int_at, int_or_string, name, opt_bool, opt_str, str_at, string_map};
use crate::table::{AGE, NAME, Printer, cells, col, wide};

const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] =
    ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"];

pub(crate) static STORAGE_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col("Provisioner", "string", "Volume plugin or CSI driver that provisions volumes."),
        col("ReclaimPolicy", "string", "Reclaim policy of provisioned volumes."),
        col("VolumeBindingMode", "string", "When volumes are bound and provisioned."),
        col("AllowVolumeExpansion", "string", "Whether claims may be resized."),
        AGE,
    ],
    cells: storage_class_cells,
};

fn storage_class_cells(sc: &Value, now: Timestamp) -> Vec<Value> {
    let annotations = string_map(sc, "/metadata/annotations");
    let is_default = DEFAULT_CLASS_ANNOTATIONS.iter().any(|a| annotations.get(a).copied() == Some("true"));
    let display = if is_default { format!("{} (default)", name(sc)) } else { name(sc).to_string() };
    cells![
        display,
        str_at(sc, "/provisioner"),
        opt_str(sc, "/reclaimPolicy").unwrap_or("Delete"),
        opt_str(sc, "/volumeBindingMode").unwrap_or("Immediate"),
        opt_bool(sc, "/allowVolumeExpansion").unwrap_or(false),
        age(sc, now),
    ]
}

pub(crate) static POD_DISRUPTION_BUDGET: Printer = Printer {
    columns: &[
        NAME,
        col("Min Available", "string", "Pods that must stay available."),
        col("Max Unavailable", "string", "Pods that may be unavailable."),
        col("Allowed Disruptions", "integer", "Pods that may be evicted right now."),
        AGE,
    ],
    cells: |pdb, now| {
        let bound = |ptr: &str| pdb.pointer(ptr).map_or_else(|| "N/A".to_string(), int_or_string);
        cells![
            name(pdb),
            bound("/spec/minAvailable"),
            bound("/spec/maxUnavailable"),
            int_at(pdb, "/status/disruptionsAllowed"),
            age(pdb, now),
        ]
    },
};

pub(crate) static ROLE_BINDING: Printer = Printer {
    columns: &[
        NAME,
        col("Role", "string", "Role granted, as Kind/name."),
        AGE,
        wide("Users", "string", "Users bound."),
        wide("Groups", "string", "Groups bound."),
        wide("ServiceAccounts", "string", "Service accounts bound, as namespace/name."),
    ],
    cells: binding_cells,
};

fn binding_cells(rb: &Value, now: Timestamp) -> Vec<Value> {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut service_accounts = Vec::new();
    for subject in arr_at(rb, "/subjects") {
        let subject_name = str_at(subject, "/name");
        match str_at(subject, "/kind") {
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            "ServiceAccount" => service_accounts.push(format!("{}/{subject_name}", str_at(subject, "/namespace"))),
            _ => {}
        }
    }
    cells![
        name(rb),
        format!("{}/{}", str_at(rb, "/roleRef/kind"), str_at(rb, "/roleRef/name")),
        age(rb, now),
        users.join(", "),
        groups.join(", "),
        service_accounts.join(", "),
    ]
}

pub(crate) static LEASE: Printer = Printer {
    columns: &[NAME, col("Holder", "string", "Identity holding the lease."), AGE],
    cells: |lease, now| cells![name(lease), str_at(lease, "/spec/holderIdentity"), age(lease, now)],
};
