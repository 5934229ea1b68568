//! Conversion between served versions that share one stored representation.
//!
//! Upstream stores one version of a resource and converts on the way in and out; here
//! that is autoscaling v1 ⇄ v2 HorizontalPodAutoscalers and core/v1 ⇄ events.k8s.io/v1
//! Events. Objects are converted as JSON, field by field, the way upstream's conversion
//! functions map them.

use serde_json::{Value, json};

use crate::{ResourceDef, storage_def};

/// An object that cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    #[error("no conversion from {from} to {to}")]
    Unsupported { from: String, to: String },
}

/// Converts `obj`, which is in the version of `from`, to the version of `to`. Both must
/// share storage; converting to the same version returns the object unchanged.
pub fn convert(mut obj: Value, from: &ResourceDef, to: &ResourceDef) -> Result<Value, ConversionError> {
    if (from.group, from.version) == (to.group, to.version) {
        return Ok(obj);
    }
    let pair = (from.group, from.version, to.group, to.version);
    match pair {
        ("autoscaling", "v1", "autoscaling", "v2") => hpa_v1_to_v2(&mut obj),
        ("autoscaling", "v2", "autoscaling", "v1") => hpa_v2_to_v1(&mut obj),
        ("", "v1", "events.k8s.io", "v1") => rename_fields(&mut obj, EVENT_FIELDS, false),
        ("events.k8s.io", "v1", "", "v1") => rename_fields(&mut obj, EVENT_FIELDS, true),
        _ => {
            return Err(ConversionError::Unsupported { from: from.api_version(), to: to.api_version() });
        }
    }
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(to.api_version()));
        map.insert("kind".into(), Value::String(to.kind.into()));
    }
    Ok(obj)
}

/// Converts an object of `def`'s version into its storage version.
pub fn to_storage(obj: Value, def: &ResourceDef) -> Result<Value, ConversionError> {
    convert(obj, def, storage_def(def))
}

/// Converts a stored object into `def`'s version.
pub fn from_storage(obj: Value, def: &ResourceDef) -> Result<Value, ConversionError> {
    convert(obj, storage_def(def), def)
}

/// (core/v1 name, events.k8s.io/v1 name)
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename_fields(obj: &mut Value, fields: &[(&str, &str)], reverse: bool) {
    let Some(map) = obj.as_object_mut() else { return };
    for (a, b) in fields {
        let (from, to) = if reverse { (b, a) } else { (a, b) };
        if let Some(v) = map.remove(*from) {
            map.insert((*to).to_string(), v);
        }
    }
}

fn hpa_v1_to_v2(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
        && let Some(target) = spec.remove("targetCPUUtilizationPercentage")
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": target}}}]),
        );
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut)
        && let Some(current) = status.remove("currentCPUUtilizationPercentage")
    {
        status.insert(
            "currentMetrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": current}}}]),
        );
    }
}

fn cpu_utilization<'a>(metrics: Option<&'a Value>, field: &str) -> Option<&'a Value> {
    metrics?.as_array()?.iter().find_map(|m| {
        let r = m.get("resource")?;
        (m.get("type")?.as_str()? == "Resource" && r.get("name")?.as_str()? == "cpu")
            .then(|| r.get(field)?.get("averageUtilization"))
            .flatten()
    })
}

fn hpa_v2_to_v1(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        let target = cpu_utilization(spec.get("metrics"), "target").cloned();
        spec.remove("metrics");
        spec.remove("behavior");
        if let Some(t) = target {
            spec.insert("targetCPUUtilizationPercentage".into(), t);
        }
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        let current = cpu_utilization(status.get("currentMetrics"), "current").cloned();
        status.remove("currentMetrics");
        status.remove("conditions");
        if let Some(c) = current {
            status.insert("currentCPUUtilizationPercentage".into(), c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup;

    #[test]
    fn hpa_round_trips_through_v2() {
        let v1 = lookup("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v2 = lookup("autoscaling", "v2", "horizontalpodautoscalers").unwrap();
        let obj = json!({"apiVersion":"autoscaling/v1","kind":"HorizontalPodAutoscaler",
            "metadata":{"name":"monhpa"},
            "spec":{"scaleTargetRef":{"kind":"Deployment","name":"monfront"},"minReplicas":3,
                    "maxReplicas":10,"targetCPUUtilizationPercentage":11}});
        let stored = convert(obj.clone(), v1, v2).unwrap();
        assert_eq!(stored["apiVersion"], "autoscaling/v2");
        assert_eq!(stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 11);
        let back = convert(stored, v2, v1).unwrap();
        assert_eq!(back, obj);
    }

    #[test]
    fn events_rename_fields_both_ways() {
        let core = lookup("", "v1", "events").unwrap();
        let ev = lookup("events.k8s.io", "v1", "events").unwrap();
        let obj = json!({"apiVersion":"v1","kind":"Event","metadata":{"name":"e"},
            "involvedObject":{"kind":"Pod","name":"p"},"message":"hi","reason":"Started","count":2});
        let out = convert(obj.clone(), core, ev).unwrap();
        assert_eq!(out["regarding"]["name"], "p");
        assert_eq!(out["note"], "hi");
        assert_eq!(out["deprecatedCount"], 2);
        assert_eq!(convert(out, ev, core).unwrap(), obj);
    }
}
