//! The managed fields of created objects, remembered by the objects' shape.
//!
//! What a create records ([`super::walk::created_fields_v1`] then the server fields taken
//! out) depends on the schema, the root type, and of the object only on its keys, the
//! kind of each value (object, list, scalar; empty or not) and the contents of its lists
//! (list-map keys, set members, the fields of list items). It never reads a scalar field's
//! value. Pods stamped from one template, or the events one controller records, differ
//! only in such values (names, uids, times, messages), so they all have the same set,
//! and walking the schema to build it again for each was a large part of every create.
//!
//! The shape key written here holds exactly those inputs: every key (length-prefixed,
//! so no two different objects write the same bytes), a tag per value, and each list
//! whole, as JSON. Equal keys therefore mean equal sets; nothing is hashed into a
//! digest that could collide.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

/// Objects whose shape key would be longer than this are not remembered: their lists
/// are large (a ConfigMap-like list of thousands of items) and rarely repeat.
const MAX_KEY_BYTES: usize = 16 * 1024;

/// How many shapes are kept. Past it the memo starts again empty: shapes that repeat
/// come back at once, and a stream of one-off shapes cannot grow it without bound.
const MAX_SHAPES: usize = 1024;

/// How many shapes seen once are remembered (as a hash of their key), so that only a
/// shape seen a second time is kept: keeping one costs a copy of its set, and dropping it
/// later as much again, which a shape that never comes back would pay for nothing.
const MAX_SEEN_ONCE: usize = 16 * 1024;

/// Remembered `fieldsV1` sets of creates, by root type and shape.
///
/// A memo is only valid for one schema: attach it with
/// [`Schema::remembering_creates`](crate::Schema::remembering_creates) to the schema it
/// was made for, and to no other.
#[derive(Debug, Default)]
pub struct CreatedFieldsMemo {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sets: HashMap<Box<[u8]>, Arc<Map<String, Value>>>,
    seen_once: HashSet<u64>,
}

impl CreatedFieldsMemo {
    pub fn new() -> CreatedFieldsMemo {
        CreatedFieldsMemo::default()
    }

    /// How many shapes are remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|inner| inner.sets.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The set of `obj` (of type `root`): the remembered one when an object of the same
    /// shape was kept, else `compute()`'s, kept if the shape was seen before.
    pub(crate) fn fields(
        &self,
        root: &str,
        obj: &Value,
        compute: impl FnOnce() -> Map<String, Value>,
    ) -> Map<String, Value> {
        let Some(key) = shape_key(root, obj) else {
            return compute();
        };
        let Ok(mut inner) = self.inner.lock() else {
            return compute();
        };
        if let Some(fields) = inner.sets.get(&key).cloned() {
            drop(inner);
            return Map::clone(&fields);
        }
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let hash = hasher.finish();
        if inner.seen_once.len() >= MAX_SEEN_ONCE {
            inner.seen_once.clear();
        }
        let first_sight = inner.seen_once.insert(hash);
        drop(inner);
        let fields = compute();
        if first_sight {
            return fields;
        }
        let kept = Arc::new(fields.clone());
        let dropped = match self.inner.lock() {
            Ok(mut inner) => {
                let full = inner.sets.len() >= MAX_SHAPES;
                let dropped = if full { std::mem::take(&mut inner.sets) } else { HashMap::new() };
                inner.seen_once.remove(&hash);
                inner.sets.insert(key, kept);
                dropped
            }
            Err(_) => HashMap::new(),
        };
        // Freeing a thousand sets takes a while: not while other creates wait for the lock.
        drop(dropped);
        fields
    }
}

/// The bytes that decide a create's field set (see the module comment), or `None` when
/// they would exceed [`MAX_KEY_BYTES`].
fn shape_key(root: &str, obj: &Value) -> Option<Box<[u8]>> {
    let mut out = Vec::with_capacity(512);
    push_str(&mut out, root);
    shape(obj, Position::Root, &mut out)?;
    Some(out.into_boxed_slice())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    Root,
    /// The top-level `metadata`, whose `managedFields` the walks leave out.
    RootMetadata,
    Inner,
}

fn shape(value: &Value, at: Position, out: &mut Vec<u8>) -> Option<()> {
    match value {
        Value::Null => out.push(b'0'),
        Value::Bool(_) => out.push(b'b'),
        Value::Number(_) => out.push(b'n'),
        Value::String(_) => out.push(b's'),
        Value::Array(_) => {
            out.push(b'[');
            serde_json::to_writer(&mut *out, value).ok()?;
            if out.len() > MAX_KEY_BYTES {
                return None;
            }
        }
        Value::Object(fields) => {
            out.push(b'{');
            for (key, child) in fields {
                if at == Position::RootMetadata && key == "managedFields" {
                    continue;
                }
                push_str(out, key);
                let child_at =
                    if at == Position::Root && key == "metadata" { Position::RootMetadata } else { Position::Inner };
                shape(child, child_at, out)?;
            }
            out.push(b'}');
        }
    }
    Some(())
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(obj: Value) -> Box<[u8]> {
        shape_key("T", &obj).expect("small objects have a key")
    }

    #[test]
    fn scalar_values_do_not_change_the_key_but_keys_kinds_and_lists_do() {
        let base = json!({"metadata": {"name": "a", "labels": {"app": "x"}}, "spec": {"n": 1, "list": ["p"]}});
        let same_shape = [
            json!({"metadata": {"name": "b", "labels": {"app": "y"}}, "spec": {"n": 2, "list": ["p"]}}),
            json!({"metadata": {"name": "a", "labels": {"app": "x"}, "managedFields": [{"manager": "m"}]},
                   "spec": {"n": 1, "list": ["p"]}}),
        ];
        for obj in same_shape {
            assert_eq!(key(base.clone()), key(obj.clone()), "{obj}");
        }
        let other_shapes = [
            json!({"metadata": {"name": "a", "labels": {"tier": "x"}}, "spec": {"n": 1, "list": ["p"]}}),
            json!({"metadata": {"name": "a", "labels": {}}, "spec": {"n": 1, "list": ["p"]}}),
            json!({"metadata": {"name": "a", "labels": {"app": "x"}}, "spec": {"n": "1", "list": ["p"]}}),
            json!({"metadata": {"name": "a", "labels": {"app": "x"}}, "spec": {"n": null, "list": ["p"]}}),
            json!({"metadata": {"name": "a", "labels": {"app": "x"}}, "spec": {"n": 1, "list": ["q"]}}),
            json!({"metadata": {"name": "a", "labels": {"app": "x"}}, "spec": {"n": 1, "list": []}}),
            json!({"metadata": {"name": "a", "labels": {"app": "x"}}, "spec": {"n": 1, "list": {}}}),
            // `managedFields` is only skipped in the top-level metadata.
            json!({"metadata": {"name": "a", "labels": {"app": "x"}},
                   "spec": {"n": 1, "list": ["p"], "managedFields": 1}}),
        ];
        for obj in other_shapes {
            assert_ne!(key(base.clone()), key(obj.clone()), "{obj}");
        }
        assert_ne!(shape_key("T", &base), shape_key("U", &base), "the root type is part of the key");
    }

    #[test]
    fn keys_cannot_run_into_each_other() {
        // Without the length prefix both would write `ab` then the value's tag.
        assert_ne!(key(json!({"a": {"b": 1}})), key(json!({"ab": 1})));
        assert_ne!(key(json!({"a": {}, "b": 1})), key(json!({"a": {"b": 1}})));
    }

    #[test]
    fn large_lists_are_not_remembered() {
        let big: Vec<String> = (0..5_000).map(|i| format!("item-{i}")).collect();
        assert!(shape_key("T", &json!({"spec": {"list": big}})).is_none());
        let memo = CreatedFieldsMemo::new();
        let got = memo.fields("T", &json!({"spec": {"list": big}}), || Map::from_iter([("f:x".into(), json!({}))]));
        assert_eq!(got.len(), 1);
        assert!(memo.is_empty());
    }

    #[test]
    fn the_memo_answers_a_shape_it_has_seen_and_computes_the_others() {
        let memo = CreatedFieldsMemo::new();
        let set = |tag: &str| Map::from_iter([(tag.to_owned(), json!({}))]);
        assert_eq!(memo.fields("T", &json!({"a": 1}), || set("first")), set("first"));
        assert!(memo.is_empty(), "a shape seen once is not kept");
        assert_eq!(memo.fields("T", &json!({"a": 2}), || set("second")), set("second"));
        assert_eq!(memo.len(), 1, "a shape seen twice is kept");
        // Same shape: the kept set, not what the closure would give.
        assert_eq!(memo.fields("T", &json!({"a": 3}), || set("third")), set("second"));
        assert_eq!(memo.fields("T", &json!({"b": 1}), || set("fourth")), set("fourth"));
        assert_eq!(memo.fields("T", &json!({"b": 2}), || set("fifth")), set("fifth"));
        assert_eq!(memo.fields("T", &json!({"b": 3}), || set("sixth")), set("fifth"));
        assert_eq!(memo.len(), 2);
        for i in 0..MAX_SHAPES {
            for _ in 0..2 {
                memo.fields("T", &json!({ format!("k{i}"): 1 }), || set("x"));
            }
        }
        assert!(memo.len() <= MAX_SHAPES, "the memo is bounded");
        for i in 0..MAX_SEEN_ONCE + 1 {
            memo.fields("T", &json!({ format!("once{i}"): 1 }), || set("x"));
        }
        assert!(memo.inner.lock().expect("not poisoned").seen_once.len() <= MAX_SEEN_ONCE);
    }
}
