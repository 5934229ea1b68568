//! `/openapi/v2` in protobuf, the form kubectl asks for
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`): gnostic's
//! `openapi_v2.Document`. kubectl reads it when the v3 documents cannot answer, notably
//! to validate the items of a `kind: List` file before `apply`.
//!
//! Only what clients read from it is encoded: the swagger version, info and every
//! definition (types, properties, items, references, required fields, enums,
//! additionalProperties, descriptions and the `x-kubernetes-*` extensions). Paths are
//! left out; the JSON form has them.

use serde_json::{Map, Value};

/// Field numbers of gnostic's `OpenAPIv2.proto`.
mod field {
    pub const DOC_SWAGGER: u32 = 1;
    pub const DOC_INFO: u32 = 2;
    pub const DOC_DEFINITIONS: u32 = 9;
    pub const INFO_TITLE: u32 = 1;
    pub const INFO_VERSION: u32 = 2;
    pub const DEFINITIONS_ADDITIONAL: u32 = 1;
    pub const NAMED_NAME: u32 = 1;
    pub const NAMED_VALUE: u32 = 2;
    pub const ANY_YAML: u32 = 2;
    pub const SCHEMA_REF: u32 = 1;
    pub const SCHEMA_FORMAT: u32 = 2;
    pub const SCHEMA_TITLE: u32 = 3;
    pub const SCHEMA_DESCRIPTION: u32 = 4;
    pub const SCHEMA_DEFAULT: u32 = 5;
    pub const SCHEMA_MAXIMUM: u32 = 7;
    pub const SCHEMA_MINIMUM: u32 = 9;
    pub const SCHEMA_MAX_LENGTH: u32 = 11;
    pub const SCHEMA_MIN_LENGTH: u32 = 12;
    pub const SCHEMA_PATTERN: u32 = 13;
    pub const SCHEMA_MAX_ITEMS: u32 = 14;
    pub const SCHEMA_MIN_ITEMS: u32 = 15;
    pub const SCHEMA_UNIQUE_ITEMS: u32 = 16;
    pub const SCHEMA_REQUIRED: u32 = 19;
    pub const SCHEMA_ENUM: u32 = 20;
    pub const SCHEMA_ADDITIONAL_PROPERTIES: u32 = 21;
    pub const SCHEMA_TYPE: u32 = 22;
    pub const SCHEMA_ITEMS: u32 = 23;
    pub const SCHEMA_ALL_OF: u32 = 24;
    pub const SCHEMA_PROPERTIES: u32 = 25;
    pub const SCHEMA_READ_ONLY: u32 = 27;
    pub const SCHEMA_VENDOR_EXTENSION: u32 = 31;
    pub const ADDITIONAL_SCHEMA: u32 = 1;
    pub const ADDITIONAL_BOOLEAN: u32 = 2;
    pub const TYPE_VALUE: u32 = 1;
    pub const ITEMS_SCHEMA: u32 = 1;
    pub const PROPERTIES_ADDITIONAL: u32 = 1;
}

/// A protobuf message being written.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn message(&mut self, field: u32, m: Message) {
        self.bytes(field, &m.0);
    }

    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }

    fn boolean(&mut self, field: u32, v: bool) {
        if v {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn double(&mut self, field: u32, v: f64) {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

/// gnostic's `Any`: a value carried as YAML text (JSON is YAML).
fn any(v: &Value) -> Message {
    let mut m = Message::default();
    m.string(field::ANY_YAML, &v.to_string());
    m
}

fn named(name: &str, value: Message) -> Message {
    let mut m = Message::default();
    m.string(field::NAMED_NAME, name);
    m.message(field::NAMED_VALUE, value);
    m
}

fn schema(s: &Value) -> Message {
    let mut m = Message::default();
    let Some(obj) = s.as_object() else { return m };
    let str_of = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    m.string(field::SCHEMA_REF, str_of("$ref"));
    m.string(field::SCHEMA_FORMAT, str_of("format"));
    m.string(field::SCHEMA_TITLE, str_of("title"));
    m.string(field::SCHEMA_DESCRIPTION, str_of("description"));
    if let Some(d) = obj.get("default") {
        m.message(field::SCHEMA_DEFAULT, any(d));
    }
    if let Some(v) = obj.get("maximum").and_then(Value::as_f64) {
        m.double(field::SCHEMA_MAXIMUM, v);
    }
    if let Some(v) = obj.get("minimum").and_then(Value::as_f64) {
        m.double(field::SCHEMA_MINIMUM, v);
    }
    for (key, f) in [
        ("maxLength", field::SCHEMA_MAX_LENGTH),
        ("minLength", field::SCHEMA_MIN_LENGTH),
        ("maxItems", field::SCHEMA_MAX_ITEMS),
        ("minItems", field::SCHEMA_MIN_ITEMS),
    ] {
        if let Some(v) = obj.get(key).and_then(Value::as_i64) {
            m.int(f, v);
        }
    }
    m.string(field::SCHEMA_PATTERN, str_of("pattern"));
    m.boolean(field::SCHEMA_UNIQUE_ITEMS, obj.get("uniqueItems").and_then(Value::as_bool) == Some(true));
    for r in obj.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        m.string(field::SCHEMA_REQUIRED, r);
    }
    for e in obj.get("enum").and_then(Value::as_array).into_iter().flatten() {
        m.message(field::SCHEMA_ENUM, any(e));
    }
    match obj.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut a = Message::default();
            a.key(field::ADDITIONAL_BOOLEAN, 0);
            a.varint(u64::from(*b));
            m.message(field::SCHEMA_ADDITIONAL_PROPERTIES, a);
        }
        Some(s @ Value::Object(_)) => {
            let mut a = Message::default();
            a.message(field::ADDITIONAL_SCHEMA, schema(s));
            m.message(field::SCHEMA_ADDITIONAL_PROPERTIES, a);
        }
        _ => {}
    }
    let types: Vec<&str> = match obj.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let mut t = Message::default();
        for ty in types {
            t.string(field::TYPE_VALUE, ty);
        }
        m.message(field::SCHEMA_TYPE, t);
    }
    match obj.get("items") {
        Some(i @ Value::Object(_)) => {
            let mut items = Message::default();
            items.message(field::ITEMS_SCHEMA, schema(i));
            m.message(field::SCHEMA_ITEMS, items);
        }
        Some(Value::Array(list)) => {
            let mut items = Message::default();
            for i in list {
                items.message(field::ITEMS_SCHEMA, schema(i));
            }
            m.message(field::SCHEMA_ITEMS, items);
        }
        _ => {}
    }
    for a in obj.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        m.message(field::SCHEMA_ALL_OF, schema(a));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        let mut p = Message::default();
        for (name, s) in props {
            p.message(field::PROPERTIES_ADDITIONAL, named(name, schema(s)));
        }
        m.message(field::SCHEMA_PROPERTIES, p);
    }
    m.boolean(field::SCHEMA_READ_ONLY, obj.get("readOnly").and_then(Value::as_bool) == Some(true));
    for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        m.message(field::SCHEMA_VENDOR_EXTENSION, named(k, any(v)));
    }
    m
}

/// The protobuf body of `/openapi/v2` for the swagger 2.0 document `doc`.
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut m = Message::default();
    m.string(field::DOC_SWAGGER, doc.get("swagger").and_then(Value::as_str).unwrap_or("2.0"));
    let mut info = Message::default();
    info.string(field::INFO_TITLE, doc.pointer("/info/title").and_then(Value::as_str).unwrap_or(""));
    info.string(field::INFO_VERSION, doc.pointer("/info/version").and_then(Value::as_str).unwrap_or(""));
    m.message(field::DOC_INFO, info);
    let empty = Map::new();
    let mut defs = Message::default();
    for (name, s) in doc.get("definitions").and_then(Value::as_object).unwrap_or(&empty) {
        defs.message(field::DEFINITIONS_ADDITIONAL, named(name, schema(s)));
    }
    m.message(field::DOC_DEFINITIONS, defs);
    m.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_form_of_a_small_document() {
        let doc = json!({"swagger": "2.0", "info": {"title": "K", "version": "v1"},
            "definitions": {"D": {"type": "object", "required": ["a"],
                "properties": {"a": {"type": "string"}}, "x-k": [1]}}});
        // Hand-assembled from gnostic's field numbers, innermost first.
        let string_type = [0xb2, 0x01, 8, 0x0a, 6, b's', b't', b'r', b'i', b'n', b'g']; // type (22)
        let mut prop = vec![0x0a, 1, b'a', 0x12, string_type.len() as u8];
        prop.extend(string_type);
        let mut schema: Vec<u8> = vec![0x9a, 0x01, 1, b'a']; // required (19)
        schema.extend([0xb2, 0x01, 8, 0x0a, 6, b'o', b'b', b'j', b'e', b'c', b't']); // type (22)
        schema.extend([0xca, 0x01, prop.len() as u8 + 2, 0x0a, prop.len() as u8]); // properties (25)
        schema.extend(prop);
        // vendor_extension (31): NamedAny { name, value: Any { yaml } }
        schema.extend([0xfa, 0x01, 12, 0x0a, 3, b'x', b'-', b'k', 0x12, 5, 0x12, 3, b'[', b'1', b']']);
        let mut named: Vec<u8> = vec![0x0a, 1, b'D', 0x12, schema.len() as u8];
        named.extend(schema);
        let mut want: Vec<u8> = vec![0x0a, 3, b'2', b'.', b'0', 0x12, 7, 0x0a, 1, b'K', 0x12, 2, b'v', b'1'];
        want.extend([0x4a, named.len() as u8 + 2, 0x0a, named.len() as u8]);
        want.extend(named);
        assert_eq!(encode(&doc), want);
    }
}
