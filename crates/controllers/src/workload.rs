//! What the workload controllers (ReplicaSet, Deployment) share: label selectors,
//! controller references, pod readiness and availability. Each function is the Rust
//! form of an upstream helper (`metav1.LabelSelectorAsSelector`,
//! `metav1.GetControllerOf`, `podutil.IsPodAvailable`, …), pure and total: bad input
//! (an unknown selector operator, a missing field) never panics.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

/// Does `selector` select an object with `labels`? As upstream, a missing selector
/// selects nothing, an empty one everything, and an invalid one (unknown operator,
/// `In` without values) nothing.
pub fn selector_matches(selector: Option<&LabelSelector>, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(selector) = selector else { return false };
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    for (k, v) in selector.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    for req in selector.match_expressions.iter().flatten() {
        let have = labels.get(&req.key);
        let values = req.values.as_deref().unwrap_or_default();
        let ok = match req.operator.as_str() {
            "In" => !values.is_empty() && have.is_some_and(|h| values.contains(h)),
            "NotIn" => !values.is_empty() && have.is_none_or(|h| !values.contains(h)),
            "Exists" => values.is_empty() && have.is_some(),
            "DoesNotExist" => values.is_empty() && have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a selector selects every object (upstream refuses to manage with one).
pub fn selects_everything(selector: Option<&LabelSelector>) -> bool {
    selector.is_some_and(|s| {
        s.match_labels.as_ref().is_none_or(BTreeMap::is_empty) && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
    })
}

/// The selector in the `labelSelector` query syntax (`a=b,c in (d,e),!f`), for a list.
/// `None` for a selector that selects nothing.
pub fn selector_query(selector: Option<&LabelSelector>) -> Option<String> {
    let selector = selector?;
    let mut parts: Vec<String> = selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for req in selector.match_expressions.iter().flatten() {
        let values = req.values.as_deref().unwrap_or_default().join(",");
        parts.push(match req.operator.as_str() {
            "In" => format!("{} in ({values})", req.key),
            "NotIn" => format!("{} notin ({values})", req.key),
            "Exists" => req.key.clone(),
            "DoesNotExist" => format!("!{}", req.key),
            _ => return None,
        });
    }
    Some(parts.join(","))
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.iter().flatten().find(|r| r.controller == Some(true))
}

/// A controller reference to `owner` as upstream's `metav1.NewControllerRef` makes it:
/// `controller` and `blockOwnerDeletion` set.
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Neither finished nor being deleted: upstream's `controller.IsPodActive`.
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's `Ready` condition.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status.as_ref()?.conditions.iter().flatten().find(|c| c.type_ == "Ready")
}

pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When a ready pod counts as available: `minReadySeconds` after its Ready condition's
/// last transition. `None` for a pod that is not ready, or ready without a transition
/// time while `minReadySeconds` is set (upstream never counts those).
pub fn available_since(pod: &Pod, min_ready_seconds: i32) -> Option<Option<Timestamp>> {
    let c = ready_condition(pod).filter(|c| c.status == "True")?;
    if min_ready_seconds <= 0 {
        return Some(None);
    }
    let t = c.last_transition_time.as_ref()?.0;
    Some(Some(t.saturating_add(SignedDuration::from_secs(i64::from(min_ready_seconds))).unwrap_or(Timestamp::MAX)))
}

/// Ready for at least `min_ready_seconds` at `now`: upstream's `podutil.IsPodAvailable`.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match available_since(pod, min_ready_seconds) {
        None => false,
        Some(None) => true,
        Some(Some(at)) => at < now,
    }
}

/// The `action` an event is recorded with. kube-runtime's recorder (like client-go's
/// events.k8s.io broadcaster) folds events that share regarding object, reason and
/// action into one series and keeps the first note; upstream's ReplicaSet and Deployment
/// controllers emit core/v1 events, which fold only identical messages. Deriving the
/// action from the note gives that: "Scaled up … from 0 to 2" and "… from 2 to 4" stay
/// two events, a repeated message counts up. (events.k8s.io caps `action` at 128.)
pub fn event_action(note: &str) -> String {
    let mut end = note.len().min(128);
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note[..end].to_string()
}

/// `now` to the second: what an API time field keeps, so that a status written and read
/// back compares equal to the one computed.
pub fn api_now(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn selectors_match_as_upstream() {
        let sel = |ml: &[(&str, &str)], me: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: (!ml.is_empty()).then(|| labels(ml)),
            match_expressions: (!me.is_empty()).then_some(me),
        };
        let pod = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            (Some(sel(&[("app", "web")], vec![])), true),
            (Some(sel(&[("app", "db")], vec![])), false),
            (Some(sel(&[], vec![])), true),
            (None, false),
            (Some(sel(&[], vec![req("tier", "In", &["front", "back"])])), true),
            (Some(sel(&[], vec![req("tier", "NotIn", &["front"])])), false),
            (Some(sel(&[], vec![req("zone", "NotIn", &["a"])])), true),
            (Some(sel(&[], vec![req("app", "Exists", &[])])), true),
            (Some(sel(&[], vec![req("app", "DoesNotExist", &[])])), false),
            (Some(sel(&[], vec![req("app", "In", &[])])), false),
            (Some(sel(&[], vec![req("app", "Bogus", &["web"])])), false),
        ];
        for (s, want) in cases {
            assert_eq!(selector_matches(s.as_ref(), Some(&pod)), want, "{s:?}");
        }
        assert!(selects_everything(Some(&sel(&[], vec![]))));
        assert!(!selects_everything(None));
        let q = sel(&[("app", "web")], vec![req("tier", "In", &["a", "b"]), req("x", "DoesNotExist", &[])]);
        assert_eq!(selector_query(Some(&q)).as_deref(), Some("app=web,tier in (a,b),!x"));
    }

    #[test]
    fn availability_needs_min_ready_seconds_of_readiness() {
        use k8s_openapi::api::core::v1::PodStatus;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let pod = |status: &str, at: Option<&str>| Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    last_transition_time: at.map(|t| Time(t.parse().unwrap())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let cases = [
            (pod("True", Some("2026-01-01T00:00:00Z")), 0, true),
            (pod("True", Some("2026-01-01T00:00:00Z")), 5, true),
            (pod("True", Some("2026-01-01T00:00:00Z")), 10, false),
            (pod("True", None), 5, false),
            (pod("True", None), 0, true),
            (pod("False", Some("2026-01-01T00:00:00Z")), 0, false),
            (Pod::default(), 0, false),
        ];
        for (p, min_ready, want) in cases {
            assert_eq!(is_pod_available(&p, min_ready, now), want, "{min_ready} {:?}", p.status);
        }
    }
}
