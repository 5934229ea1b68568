//! [`Slim`]: a Kubernetes object decoded without `metadata.managedFields` (and a pod
//! without its volumes).
//!
//! Controllers never read managed fields (client-go's informers drop them with
//! `TransformStripManagedFields`), but a watch decoded into a `k8s-openapi` type builds
//! them first: every `fieldsV1` becomes a tree of JSON maps, one per field the manager
//! owns, to be dropped right away. A pod's `fieldsV1` is about a fifth of its JSON and
//! far more than that of the work of decoding it, since each of its keys is a map entry
//! of its own. A watch of `Slim<Pod>` skips that part of the input instead; every other
//! field is decoded by `K`'s own `Deserialize`, so the result is `K` with
//! `managed_fields: None`. What a type leaves out is its [`Leaves`] (a pod also leaves
//! out `spec.volumes`, which nobody watching `Slim<Pod>` reads).
//!
//! The skipping wraps the deserializer (as `serde_ignored` does): along the paths left
//! out, each map's keys are looked at and the value where a path ends is skipped; the
//! rest passes through untouched.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// `K` as decoded without its managed fields and whatever else [`Leaves`] names for it
/// (see the module's documentation). It serializes as `K`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Slim<K>(pub K);

impl<K: Resource> Resource for Slim<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

impl<'de, K: Deserialize<'de> + Leaves> Deserialize<'de> for Slim<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let at = At { paths: K::LEFT_OUT, live: live_all(K::LEFT_OUT), depth: 0 };
        K::deserialize(Level { inner: deserializer, at }).map(Slim)
    }
}

/// What a [`Slim`] decode of a type leaves out: paths of object keys from its root.
pub trait Leaves {
    /// At most 64 paths.
    const LEFT_OUT: &'static [&'static [&'static str]];
}

/// Managed fields: what every slim object leaves out.
pub const MANAGED_FIELDS: &[&[&str]] = &[&["metadata", "managedFields"]];

/// A pod also leaves out its volumes: neither the scheduler (it has no volume plugins)
/// nor any controller of the shared informer reads them, and `k8s-openapi`'s `Volume`
/// (one field per volume source) made the kube-api-access volume every pod gets the
/// largest part of a decoded pod after its managed fields. A consumer that needs them
/// watches `Pod`.
impl Leaves for k8s_openapi::api::core::v1::Pod {
    const LEFT_OUT: &'static [&'static [&'static str]] = &[&["metadata", "managedFields"], &["spec", "volumes"]];
}

impl<K> Leaves for kube::core::PartialObjectMeta<K> {
    const LEFT_OUT: &'static [&'static [&'static str]] = MANAGED_FIELDS;
}

fn live_all(paths: &[&[&str]]) -> u64 {
    debug_assert!(paths.len() <= 64);
    if paths.len() >= 64 { u64::MAX } else { (1u64 << paths.len()) - 1 }
}

/// Where a wrapped deserializer is: the paths still followed (a bit per path of
/// `paths` whose first `depth` keys led here).
#[derive(Clone, Copy)]
struct At {
    paths: &'static [&'static [&'static str]],
    live: u64,
    depth: usize,
}

/// What to do with the value of `key` at `at`.
enum Step {
    /// Skip it: a path ends here.
    Leave,
    /// Read it through a [`Level`]: paths go on below it.
    Follow(At),
    /// Hand it to the type untouched.
    Pass,
}

impl At {
    fn step(self, key: &str) -> Step {
        let mut next = 0u64;
        for (i, path) in self.paths.iter().enumerate() {
            if self.live & (1 << i) != 0 && path.get(self.depth) == Some(&key) {
                if path.len() == self.depth + 1 {
                    return Step::Leave;
                }
                next |= 1 << i;
            }
        }
        if next == 0 { Step::Pass } else { Step::Follow(At { live: next, depth: self.depth + 1, ..self }) }
    }
}

/// A deserializer on a path that is left out further down: a struct or map read through
/// it gets its keys looked at; anything else passes through.
struct Level<D> {
    inner: D,
    at: At,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Level<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(LevelVisitor { inner: visitor, at: self.at })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_option(LevelVisitor { inner: visitor, at: self.at })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_map(LevelVisitor { inner: visitor, at: self.at })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_struct(name, fields, LevelVisitor { inner: visitor, at: self.at })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct enum identifier ignored_any
    }
}

/// Hands the visitor a map whose keys are looked at; every other shape as it is.
struct LevelVisitor<V> {
    inner: V,
    at: At,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for LevelVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(LevelMap { inner: map, at: self.at, next: None })
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(Level { inner: deserializer, at: self.at })
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<V::Value, E> {
        self.inner.visit_bool(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<V::Value, E> {
        self.inner.visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<V::Value, E> {
        self.inner.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<V::Value, E> {
        self.inner.visit_f64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        self.inner.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        self.inner.visit_borrowed_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        self.inner.visit_string(v)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(seq)
    }
}

/// The map of one level: reads each key itself, skips the values of the keys where a
/// path ends, and wraps the values of those where paths go on.
struct LevelMap<A> {
    inner: A,
    at: At,
    /// Where the value of the key just handed out is, when paths go on below it.
    next: Option<At>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for LevelMap<A> {
    type Error = A::Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, A::Error> {
        loop {
            let Some(Key(key)) = self.inner.next_key::<Key<'de>>()? else { return Ok(None) };
            self.next = match self.at.step(&key) {
                Step::Leave => {
                    self.inner.next_value::<IgnoredAny>()?;
                    continue;
                }
                Step::Follow(at) => Some(at),
                Step::Pass => None,
            };
            return match key {
                Cow::Borrowed(k) => seed.deserialize(de::value::BorrowedStrDeserializer::new(k)),
                Cow::Owned(k) => seed.deserialize(k.into_deserializer()),
            }
            .map(Some);
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        match self.next.take() {
            Some(at) => self.inner.next_value_seed(LevelSeed { seed, at }),
            None => self.inner.next_value_seed(seed),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A map key, borrowed from the input when it can be (no escapes), so looking at it
/// costs no allocation.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A value read through a [`Level`] at `at`.
struct LevelSeed<S> {
    seed: S,
    at: At,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for LevelSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Level { inner: deserializer, at: self.at })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use serde_json::json;

    use super::*;

    impl Leaves for ConfigMap {
        const LEFT_OUT: &'static [&'static [&'static str]] = MANAGED_FIELDS;
    }

    fn pod_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web-0",
                "namespace": "default",
                "uid": "u-1",
                "labels": {"app": "web"},
                "managedFields": [{
                    "manager": "kubectl",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:containers": {}}}
                }],
                "resourceVersion": "42",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u-0"}]
            },
            "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "10m"}}}], "nodeName": "n1",
                     "volumes": [{"name": "kube-api-access-x", "projected": {"sources": [
                         {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
        })
    }

    #[test]
    fn decodes_everything_but_the_managed_fields_and_a_pods_volumes() {
        let text = serde_json::to_string(&pod_json()).unwrap();
        let slim: Slim<Pod> = serde_json::from_str(&text).unwrap();
        let mut full: Pod = serde_json::from_str(&text).unwrap();
        assert!(full.metadata.managed_fields.is_some(), "the input has managed fields");
        assert_eq!(full.spec.as_ref().unwrap().volumes.as_ref().map(Vec::len), Some(1), "and volumes");
        assert_eq!(slim.0.metadata.managed_fields, None);
        assert_eq!(slim.0.spec.as_ref().unwrap().volumes, None);
        full.metadata.managed_fields = None;
        full.spec.as_mut().unwrap().volumes = None;
        assert_eq!(slim.0, full);
        // From a `Value` (another deserializer) and from bytes alike.
        let from_value: Slim<Pod> = serde_json::from_value(pod_json()).unwrap();
        assert_eq!(from_value.0, full);
    }

    #[test]
    fn metadata_only_objects_as_the_garbage_collector_watches_them() {
        use kube::api::DynamicObject;
        use kube::core::PartialObjectMeta;
        let mut line = serde_json::json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                          "metadata": pod_json()["metadata"].clone()});
        line["metadata"]["finalizers"] = serde_json::json!(["f"]);
        line["metadata"]["ownerReferences"] = serde_json::json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "rs", "uid": "u1", "controller": true}]);
        let text = line.to_string();
        let slim: Slim<PartialObjectMeta<DynamicObject>> = serde_json::from_str(&text).unwrap();
        let mut full: PartialObjectMeta<DynamicObject> = serde_json::from_str(&text).unwrap();
        assert!(full.metadata.managed_fields.is_some(), "the input has managed fields");
        full.metadata.managed_fields = None;
        assert_eq!(slim.0.metadata, full.metadata);
        assert_eq!(slim.0.metadata.owner_references.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn only_the_paths_left_out_are_skipped() {
        // A `volumes` key elsewhere than in the spec stays, and so does the rest of the spec.
        let mut pod = pod_json();
        pod["metadata"]["labels"]["volumes"] = json!("label");
        pod["status"]["volumes"] = json!("unknown fields are ignored either way");
        let slim: Slim<Pod> = serde_json::from_value(pod).unwrap();
        assert_eq!(slim.0.metadata.labels.unwrap()["volumes"], "label");
        let spec = slim.0.spec.unwrap();
        assert_eq!((spec.volumes, spec.node_name.as_deref(), spec.containers.len()), (None, Some("n1"), 1));
        // A path's prefix is not left out: a `spec` key in the metadata is a label like any.
        let mut pod = pod_json();
        pod["metadata"]["annotations"] = json!({"spec": "kept"});
        let slim: Slim<Pod> = serde_json::from_value(pod).unwrap();
        assert_eq!(slim.0.metadata.annotations.unwrap()["spec"], "kept");
    }

    #[test]
    fn the_path_walk_leaves_follows_or_passes() {
        const PATHS: &[&[&str]] = &[&["a", "b"], &["a", "c", "d"], &["x"]];
        let top = At { paths: PATHS, live: live_all(PATHS), depth: 0 };
        assert!(matches!(top.step("x"), Step::Leave));
        assert!(matches!(top.step("b"), Step::Pass));
        let Step::Follow(a) = top.step("a") else { panic!("a leads on") };
        assert_eq!((a.live, a.depth), (0b011, 1));
        assert!(matches!(a.step("b"), Step::Leave));
        assert!(matches!(a.step("x"), Step::Pass), "x is left out at the top only");
        let Step::Follow(c) = a.step("c") else { panic!("c leads on") };
        assert_eq!(c.live, 0b010);
        assert!(matches!(c.step("d"), Step::Leave));
        assert!(matches!(c.step("b"), Step::Pass));
    }

    #[test]
    fn only_the_metadata_managed_fields_are_skipped() {
        // A `managedFields` key elsewhere (here: a ConfigMap's data, and a label) stays.
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"managedFields": "x"}, "managedFields": [{"manager": "m"}]},
            "data": {"managedFields": "kept", "metadata": "also kept"}
        });
        let slim: Slim<ConfigMap> = serde_json::from_value(cm).unwrap();
        let data = slim.0.data.unwrap();
        assert_eq!(data["managedFields"], "kept");
        assert_eq!(data["metadata"], "also kept");
        assert_eq!(slim.0.metadata.labels.unwrap()["managedFields"], "x");
        assert_eq!(slim.0.metadata.managed_fields, None);
        assert_eq!(slim.0.metadata.name.as_deref(), Some("c"));
    }

    #[test]
    fn keeps_k8s_openapi_errors_and_checks() {
        // Wrong kind: the type's own check still runs.
        let err = serde_json::from_value::<Slim<Pod>>(json!({"apiVersion": "v1", "kind": "Node"})).unwrap_err();
        assert!(err.to_string().contains("Node"), "{err}");
        // A wrong type in the metadata, and in the skipped part's neighbours.
        let err =
            serde_json::from_value::<Slim<Pod>>(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 3}}))
                .unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        assert!(serde_json::from_str::<Slim<Pod>>(r#"{"apiVersion":"v1","kind":"Pod","metadata":7}"#).is_err());
        // Escaped keys still match (the key is compared after unescaping).
        let escaped =
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","managed\u0046ields":[{"manager":"m"}]}}"#;
        let slim: Slim<Pod> = serde_json::from_str(escaped).unwrap();
        assert_eq!(slim.0.metadata.managed_fields, None);
        assert_eq!(slim.0.metadata.name.as_deref(), Some("p"));
        // Null metadata, and no metadata at all.
        let slim: Slim<Pod> = serde_json::from_str(r#"{"apiVersion":"v1","kind":"Pod","metadata":null}"#).unwrap();
        assert_eq!(slim.0.metadata, ObjectMeta::default());
        let slim: Slim<Pod> = serde_json::from_str(r#"{"apiVersion":"v1","kind":"Pod"}"#).unwrap();
        assert_eq!(slim.0.metadata, ObjectMeta::default());
    }

    #[test]
    fn serializes_as_the_object() {
        let pod: Pod = serde_json::from_value(pod_json()).unwrap();
        assert_eq!(serde_json::to_value(Slim(pod.clone())).unwrap(), serde_json::to_value(pod).unwrap());
    }
}
