//! Decoding a JSON tree into a typed kind while noting every key the type ignored:
//! how unknown fields are found for `fieldValidation=Strict|Warn`.
//!
//! `k8s-openapi`'s types skip a key they do not know by reading its value as
//! `IgnoredAny`. [`Tracked`] is a deserializer over a borrowed `serde_json::Value` that
//! knows where in the tree it is, so such a read tells it which field was unknown.
//! Leaves, and every shape it does not walk itself, are handed to `serde_json`'s own
//! deserializer for `&Value`, so a wrong type fails with the same message as a plain
//! decode. (Before, the object was decoded, encoded back and compared with the input:
//! three passes over every pod write instead of one.)

use std::cell::RefCell;
use std::fmt::Write;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Error, Map, Value};

/// Where a value is, from the root: built on the stack as the walk goes down, turned
/// into text only for an unknown field.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl Path<'_> {
    /// Upstream's form: `spec.containers[0].imagee`.
    fn render(&self, out: &mut String) {
        match *self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.render(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Index(parent, i) => {
                parent.render(out);
                let _ = write!(out, "[{i}]");
            }
        }
    }
}

/// Upstream stops collecting strict-decoding errors at this many.
pub const MAX_REPORTED: usize = 100;

/// Decodes `value` as `T` and returns the paths of the fields `T` ignored, in input
/// order, each once, at most [`MAX_REPORTED`]. A key whose value is `null` is never
/// reported (clients send `"creationTimestamp": null` and the like).
pub fn unknown_fields<'de, T: de::Deserialize<'de>>(value: &'de Value) -> Result<Vec<String>, Error> {
    let found = RefCell::new(Vec::new());
    T::deserialize(Tracked { value, path: Path::Root, found: &found })?;
    Ok(found.into_inner())
}

/// A value of the tree, where it is, and the list unknown fields go to.
struct Tracked<'de, 'p> {
    value: &'de Value,
    path: Path<'p>,
    found: &'p RefCell<Vec<String>>,
}

impl<'de, 'p> Tracked<'de, 'p> {
    fn note_ignored(&self) {
        if self.value.is_null() {
            return;
        }
        let mut found = self.found.borrow_mut();
        if found.len() >= MAX_REPORTED {
            return;
        }
        let mut path = String::new();
        self.path.render(&mut path);
        if !found.contains(&path) {
            found.push(path);
        }
    }

    fn visit_object<V: Visitor<'de>>(&self, map: &'de Map<String, Value>, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(Entries { iter: map.iter(), value: None, path: &self.path, found: self.found })
    }

    fn visit_array<V: Visitor<'de>>(&self, items: &'de [Value], visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(Items { iter: items.iter().enumerate(), path: &self.path, found: self.found })
    }
}

/// Everything not walked here is decoded by `serde_json`'s deserializer of `&Value`.
macro_rules! leaves {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.value.$method(visitor)
        })*
    };
}

impl<'de> Deserializer<'de> for Tracked<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Object(m) => self.visit_object(m, visitor),
            Value::Array(a) => self.visit_array(a, visitor),
            v => v.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Object(m) => self.visit_object(m, visitor),
            v => v.deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::Object(m) => self.visit_object(m, visitor),
            v => v.deserialize_struct(name, fields, visitor),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(a) => self.visit_array(a, visitor),
            v => v.deserialize_seq(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.note_ignored();
        visitor.visit_unit()
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.value.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.value.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value.deserialize_enum(name, variants, visitor)
    }

    leaves! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_unit deserialize_identifier
    }
}

/// An object's entries; each value knows its key.
struct Entries<'de, 'p> {
    iter: serde_json::map::Iter<'de>,
    value: Option<(&'de str, &'de Value)>,
    path: &'p Path<'p>,
    found: &'p RefCell<Vec<String>>,
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some((k.as_str(), v));
                seed.deserialize(de::value::BorrowedStrDeserializer::new(k.as_str())).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let (key, value) = self.value.take().ok_or_else(|| de::Error::custom("value is missing"))?;
        seed.deserialize(Tracked { value, path: Path::Key(self.path, key), found: self.found })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// An array's items; each knows its index.
struct Items<'de, 'p> {
    iter: std::iter::Enumerate<std::slice::Iter<'de, Value>>,
    path: &'p Path<'p>,
    found: &'p RefCell<Vec<String>>,
}

impl<'de> SeqAccess<'de> for Items<'de, '_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Error> {
        match self.iter.next() {
            Some((i, value)) => {
                seed.deserialize(Tracked { value, path: Path::Index(self.path, i), found: self.found }).map(Some)
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_ignored_keys_with_their_paths_and_decodes_like_serde_json() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "bogus": 1, "nothing": null,
            "metadata": {"name": "d", "labels": {"any-key": "v"}, "annotations": null},
            "spec": {"replicass": 2, "selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {"containers": [{"name": "c", "imagee": "x", "ports": [
                    {"containerPort": 80}, {"containerPort": 81, "extra": {"deep": true}}]}]}}}});
        assert_eq!(
            unknown_fields::<Deployment>(&obj).unwrap(),
            [
                "bogus",
                "spec.replicass",
                "spec.template.spec.containers[0].imagee",
                "spec.template.spec.containers[0].ports[1].extra"
            ]
        );
        // The same errors as a plain decode.
        for bad in [json!({"spec": {"replicas": "two"}}), json!({"metadata": []}), json!({"spec": {"template": 3}})] {
            let want = Deployment::deserialize(&bad).unwrap_err().to_string();
            assert_eq!(unknown_fields::<Deployment>(&bad).unwrap_err().to_string(), want);
        }
        // Map keys are data, not fields; a wrongly shaped map value is an error.
        assert_eq!(unknown_fields::<ConfigMap>(&json!({"data": {"x": "y"}})).unwrap(), Vec::<String>::new());
        assert!(unknown_fields::<ConfigMap>(&json!({"data": {"k": {"nested": 1}}})).is_err());
    }

    #[test]
    fn reports_each_path_once_and_at_most_the_maximum() {
        let mut m = serde_json::Map::new();
        for i in 0..150 {
            m.insert(format!("f{i}"), json!(1));
        }
        let many = Value::Object(m);
        let got = unknown_fields::<Pod>(&many).unwrap();
        assert_eq!(got.len(), MAX_REPORTED);
        assert_eq!(got[0], "f0");
        // The same key in two list items is two paths; in one object it is once.
        let two = json!({"spec": {"containers": [{"name": "a", "x": 1}, {"name": "b", "x": 2}]}});
        assert_eq!(unknown_fields::<Pod>(&two).unwrap(), ["spec.containers[0].x", "spec.containers[1].x"]);
    }
}
