//! Discovery documents, built once from the registry table.
//!
//! Both forms kubectl understands: aggregated discovery (`apidiscovery.k8s.io` v2 and
//! v2beta1, one answer each for `/api` and `/apis`) and legacy discovery (`/api`,
//! `/apis`, `/apis/<group>` and one `APIResourceList` per group-version).

use rkube_registry::{RESOURCES, ResourceDef, api_version, groups, resources_in};
use serde_json::{Value, json};

fn scope(def: &ResourceDef) -> &'static str {
    if def.namespaced { "Namespaced" } else { "Cluster" }
}

fn aggregated_resource(def: &ResourceDef) -> Value {
    let mut r = json!({
        "resource": def.plural,
        "responseKind": {"group": def.group, "version": def.version, "kind": def.kind},
        "scope": scope(def),
        "singularResource": def.singular,
        "verbs": def.verbs,
    });
    if !def.short_names.is_empty() {
        r["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        r["categories"] = json!(def.categories);
    }
    if !def.subresources.is_empty() {
        r["subresources"] = def
            .subresources
            .iter()
            .map(|s| {
                json!({"subresource": s.name,
                    "responseKind": {"group": s.kind.group, "version": s.kind.version, "kind": s.kind.kind},
                    "verbs": s.verbs})
            })
            .collect();
    }
    r
}

fn aggregated_group(group: &str, versions: &[&str]) -> Value {
    json!({
        "metadata": {"name": group, "creationTimestamp": null},
        "versions": versions.iter().map(|v| json!({
            "version": v,
            "resources": resources_in(group, v).map(aggregated_resource).collect::<Vec<_>>(),
            "freshness": "Current",
        })).collect::<Vec<_>>(),
    })
}

/// The aggregated discovery list for `/api` (`legacy = true`) or `/apis`, in the given
/// apidiscovery version (`v2` or `v2beta1`).
pub fn aggregated(legacy: bool, version: &str) -> Value {
    let items: Vec<Value> =
        groups().into_iter().filter(|(g, _)| g.is_empty() == legacy).map(|(g, vs)| aggregated_group(g, &vs)).collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// Which aggregated discovery version an Accept header asks for, if any.
pub fn wants_aggregated(accept: Option<&str>) -> Option<&'static str> {
    let accept = accept?;
    for entry in accept.split(',') {
        let e = entry.replace(' ', "");
        if e.contains("as=APIGroupDiscoveryList") && e.contains("g=apidiscovery.k8s.io") {
            if e.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if e.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str, versions: &[&str]) -> Value {
    let gvs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": api_version(group, v), "version": v})).collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": gvs,
        "preferredVersion": gvs.first().cloned().unwrap_or(Value::Null),
    })
}

pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| {
            let mut v = api_group(g, &vs);
            if let Some(m) = v.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            v
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(name: &str) -> Option<Value> {
    groups().into_iter().find(|(g, _)| *g == name && !g.is_empty()).map(|(g, vs)| api_group(g, &vs))
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = resources_in(group, version).collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in defs {
        let mut r = json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": d.verbs,
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        for s in d.subresources {
            let mut r = json!({
                "name": format!("{}/{}", d.plural, s.name),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": s.kind.kind,
                "verbs": s.verbs,
            });
            if (s.kind.group, s.kind.version) != (d.group, d.version) {
                r["group"] = json!(s.kind.group);
                r["version"] = json!(s.kind.version);
            }
            resources.push(r);
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version(group, version),
        "resources": resources,
    }))
}

/// Every resource, for tests and diagnostics.
pub fn all() -> &'static [ResourceDef] {
    RESOURCES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_lists_split_core_and_groups() {
        let core = aggregated(true, "v2");
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        let pods = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"][0], "po");
        assert!(pods["subresources"].as_array().unwrap().iter().any(|s| s["subresource"] == "eviction"));
        let apis = aggregated(false, "v2beta1");
        assert_eq!(apis["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        assert!(apis["items"].as_array().unwrap().iter().any(|g| g["metadata"]["name"] == "apps"));
    }

    #[test]
    fn accept_selects_aggregated_version() {
        let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(Some(v2)), Some("v2"));
        let beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(Some(beta)), Some("v2beta1"));
        assert_eq!(wants_aggregated(Some("application/json")), None);
    }

    #[test]
    fn legacy_core_list_has_eviction_in_policy() {
        let l = resource_list("", "v1").unwrap();
        let ev = l["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods/eviction").unwrap();
        assert_eq!(ev["group"], "policy");
        assert_eq!(ev["version"], "v1");
    }
}
