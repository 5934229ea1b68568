//! Turns an encoded message into the JSON Kubernetes' Go types marshal to: Go JSON tag
//! names, `omitempty` zero values dropped, and the hand-written JSON forms of `Time`,
//! `Quantity`, `IntOrString`, `Duration`, `RawExtension` and friends.

use base64::Engine as _;
use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::schema::{self, Card, Field, Kind, Message};
use crate::wire::{self, Reader};

/// Deeper nesting than any Kubernetes type has; stops stack exhaustion on hostile input
/// (a message type that contains itself, such as `JSONSchemaProps`).
const MAX_DEPTH: usize = 64;

#[derive(Debug, Error)]
pub enum JsonError {
    #[error("{message}.{field}: {source}")]
    Wire {
        message: &'static str,
        field: &'static str,
        #[source]
        source: wire::WireError,
    },
    #[error("{message}: {source}")]
    Malformed {
        message: &'static str,
        #[source]
        source: wire::WireError,
    },
    #[error("{message}.{field}: wire type does not match the field's type")]
    WrongType { message: &'static str, field: &'static str },
    #[error("{message}.{field}: {value} is not a finite number")]
    NotFinite { message: &'static str, field: &'static str, value: f64 },
    #[error("{message}: embedded object is neither JSON nor Kubernetes protobuf")]
    Embedded { message: &'static str },
    #[error("{message}: time {seconds}s is out of range")]
    TimeRange { message: &'static str, seconds: i64 },
    #[error("messages nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("embedded object: {0}")]
    Nested(#[source] Box<crate::ProtobufError>),
}

/// Decodes `buf` as `message` into a JSON object (or, for the special types, the JSON
/// value Go marshals them to).
pub fn message(msg: &'static Message, buf: &[u8], depth: usize) -> Result<Value, JsonError> {
    if depth > MAX_DEPTH {
        return Err(JsonError::TooDeep);
    }
    if let Some(special) = special(msg, buf, depth)? {
        return Ok(special);
    }
    // Collected per field first: the wire is in tag order, JSON in Go field order.
    let mut slots: Vec<Option<Value>> = vec![None; msg.fields.len()];
    let mut reader = Reader::new(buf);
    while let Some((tag, value)) =
        reader.next_field().map_err(|source| JsonError::Malformed { message: msg.path, source })?
    {
        // Unknown fields come from a newer client; Go skips them too.
        let Some(i) = msg.field_index(tag) else { continue };
        let field = &msg.fields[i];
        let slot = &mut slots[i];
        match field.card {
            // The last value wins, as protobuf specifies for scalars, so a later zero
            // clears an earlier value. Protobuf would merge a repeated singular message
            // instead, but Go's encoder never repeats one.
            Card::Single => *slot = single(msg, field, value, depth)?,
            Card::Repeated => {
                let items = repeated(msg, field, value, depth)?;
                match slot {
                    Some(Value::Array(list)) => list.extend(items),
                    _ => *slot = Some(Value::Array(items)),
                }
            }
            Card::Map => {
                let (key, v) = map_entry(msg, field, value, depth)?;
                match slot {
                    Some(Value::Object(map)) => {
                        map.insert(key, v);
                    }
                    _ => *slot = Some(Value::Object(Map::from_iter([(key, v)]))),
                }
            }
        }
    }
    let mut out = Map::new();
    for &i in msg.order {
        let i = usize::from(i);
        let (Some(field), Some(Some(mut v))) = (msg.fields.get(i), slots.get_mut(i).map(Option::take)) else {
            continue;
        };
        if field.card == Card::Map
            && let Value::Object(map) = &mut v
        {
            // Go marshals map keys sorted.
            map.sort_keys();
        }
        match v {
            // Go promotes an embedded struct's fields to the parent, where a field of
            // the parent's own wins over a promoted one of the same name.
            Value::Object(inner) if field.inline => {
                for (k, v) in inner {
                    if !msg.fields.iter().any(|f| !f.inline && f.json == k) {
                        out.insert(k, v);
                    }
                }
            }
            v => {
                out.insert(field.json.to_string(), v);
            }
        }
    }
    Ok(Value::Object(out))
}

/// A singular field; `None` when it is a zero value the JSON form leaves out.
fn single(
    msg: &'static Message,
    field: &'static Field,
    value: wire::Value<'_>,
    depth: usize,
) -> Result<Option<Value>, JsonError> {
    let v = scalar_or_message(msg, field, value, depth)?;
    // Go writes a nested struct or set pointer-to-struct whole, omitempty or not.
    if matches!(field.kind, Kind::Message(_)) {
        return Ok(Some(v));
    }
    let zero = match &v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !*b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    };
    Ok(if zero && !field.keep_zero { None } else { Some(v) })
}

fn repeated(
    msg: &'static Message,
    field: &'static Field,
    value: wire::Value<'_>,
    depth: usize,
) -> Result<Vec<Value>, JsonError> {
    // Numeric repeated fields may arrive packed (one length-delimited run of varints)
    // even though Kubernetes marks them unpacked; protobuf requires accepting both.
    if let (wire::Value::Bytes(run), Kind::Int32 | Kind::Int64 | Kind::Bool) = (value, field.kind) {
        let mut reader = Reader::new(run);
        let mut items = Vec::new();
        while !reader.is_empty() {
            let v =
                reader.varint().map_err(|source| JsonError::Wire { message: msg.path, field: field.json, source })?;
            items.push(scalar_or_message(msg, field, wire::Value::Varint(v), depth)?);
        }
        return Ok(items);
    }
    Ok(vec![scalar_or_message(msg, field, value, depth)?])
}

fn map_entry(
    msg: &'static Message,
    field: &'static Field,
    value: wire::Value<'_>,
    depth: usize,
) -> Result<(String, Value), JsonError> {
    let wire::Value::Bytes(entry) = value else {
        return Err(JsonError::WrongType { message: msg.path, field: field.json });
    };
    let mut key = String::new();
    let mut val = None;
    let mut reader = Reader::new(entry);
    while let Some((tag, v)) =
        reader.next_field().map_err(|source| JsonError::Wire { message: msg.path, field: field.json, source })?
    {
        match (tag, v) {
            (1, wire::Value::Bytes(k)) => key = String::from_utf8_lossy(k).into_owned(),
            (2, v) => val = Some(scalar_or_message(msg, field, v, depth)?),
            _ => {}
        }
    }
    // An entry without a value holds the zero value of the value type.
    let val = match val {
        Some(v) => v,
        None => match field.kind {
            Kind::Message(i) => message(&schema::MESSAGES[i], &[], depth + 1)?,
            Kind::Bytes | Kind::String => Value::String(String::new()),
            Kind::Bool => Value::Bool(false),
            Kind::Int32 | Kind::Int64 | Kind::Double => Value::from(0),
        },
    };
    Ok((key, val))
}

fn scalar_or_message(
    msg: &'static Message,
    field: &'static Field,
    value: wire::Value<'_>,
    depth: usize,
) -> Result<Value, JsonError> {
    let wrong = || JsonError::WrongType { message: msg.path, field: field.json };
    Ok(match (field.kind, value) {
        (Kind::String, wire::Value::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
        (Kind::Bytes, wire::Value::Bytes(b)) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        (Kind::Bool, wire::Value::Varint(v)) => Value::Bool(v != 0),
        // int32 is sign-extended to 64 bits on the wire; truncating restores it.
        (Kind::Int32, wire::Value::Varint(v)) => Value::from(v as i32),
        (Kind::Int64, wire::Value::Varint(v)) => Value::from(v as i64),
        (Kind::Double, wire::Value::Fixed64(v)) => {
            let f = f64::from_bits(v);
            let n =
                Number::from_f64(f).ok_or(JsonError::NotFinite { message: msg.path, field: field.json, value: f })?;
            Value::Number(n)
        }
        (Kind::Message(i), wire::Value::Bytes(b)) => message(&schema::MESSAGES[i], b, depth + 1)?,
        _ => return Err(wrong()),
    })
}

/// Raw fields of a message without the JSON conversion, for the special types.
fn fields<'a>(msg: &'static Message, buf: &'a [u8]) -> Result<Vec<(u32, wire::Value<'a>)>, JsonError> {
    let mut reader = Reader::new(buf);
    let mut out = Vec::new();
    while let Some(f) = reader.next_field().map_err(|source| JsonError::Malformed { message: msg.path, source })? {
        out.push(f);
    }
    Ok(out)
}

fn last_varint(fields: &[(u32, wire::Value<'_>)], tag: u32) -> Option<u64> {
    fields.iter().rev().find_map(|(t, v)| match v {
        wire::Value::Varint(x) if *t == tag => Some(*x),
        _ => None,
    })
}

fn last_bytes<'a>(fields: &[(u32, wire::Value<'a>)], tag: u32) -> Option<&'a [u8]> {
    fields.iter().rev().find_map(|(t, v)| match v {
        wire::Value::Bytes(b) if *t == tag => Some(*b),
        _ => None,
    })
}

fn all_strings(fields: &[(u32, wire::Value<'_>)], tag: u32) -> Vec<Value> {
    fields
        .iter()
        .filter_map(|(t, v)| match v {
            wire::Value::Bytes(b) if *t == tag => Some(Value::String(String::from_utf8_lossy(b).into_owned())),
            _ => None,
        })
        .collect()
}

/// Types whose Go JSON form is not "an object of their fields".
fn special(msg: &'static Message, buf: &[u8], depth: usize) -> Result<Option<Value>, JsonError> {
    let path = msg.path;
    let is = |suffix: &str| path == suffix;
    let v = if is("apimachinery.pkg.apis.meta.v1.Time") {
        // A zero time marshals to an empty message, and to `null` in JSON. Go drops the
        // nanoseconds of a `Time` (only `MicroTime` keeps them).
        let f = fields(msg, buf)?;
        if buf.is_empty() {
            Value::Null
        } else {
            let secs = last_varint(&f, 1).unwrap_or(0) as i64;
            Value::String(format_time(secs, None).ok_or(JsonError::TimeRange { message: path, seconds: secs })?)
        }
    } else if is("apimachinery.pkg.apis.meta.v1.MicroTime") {
        let f = fields(msg, buf)?;
        if buf.is_empty() {
            Value::Null
        } else {
            let secs = last_varint(&f, 1).unwrap_or(0) as i64;
            let nanos = last_varint(&f, 2).unwrap_or(0) as i32;
            let micros = nanos.clamp(0, 999_999_999) / 1000;
            Value::String(format_time(secs, Some(micros)).ok_or(JsonError::TimeRange { message: path, seconds: secs })?)
        }
    } else if is("apimachinery.pkg.apis.meta.v1.Duration") {
        let f = fields(msg, buf)?;
        Value::String(format_duration(last_varint(&f, 1).unwrap_or(0) as i64))
    } else if is("apimachinery.pkg.util.intstr.IntOrString") {
        let f = fields(msg, buf)?;
        if last_varint(&f, 1).unwrap_or(0) == 1 {
            Value::String(last_bytes(&f, 3).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default())
        } else {
            Value::from(last_varint(&f, 2).unwrap_or(0) as i32)
        }
    } else if is("apimachinery.pkg.api.resource.Quantity") || is("apimachinery.pkg.api.resource.QuantityValue") {
        let f = fields(msg, buf)?;
        // A zero Quantity marshals as "0" in Go.
        match last_bytes(&f, 1) {
            Some(b) if !b.is_empty() => Value::String(String::from_utf8_lossy(b).into_owned()),
            _ => Value::String("0".into()),
        }
    } else if is("apimachinery.pkg.runtime.RawExtension")
        || is("apimachinery.pkg.apis.meta.v1.FieldsV1")
        || path.starts_with("apiextensions_apiserver.pkg.apis.apiextensions.") && msg.name() == "Json"
    {
        let f = fields(msg, buf)?;
        match last_bytes(&f, 1) {
            None | Some([]) => Value::Null,
            Some(raw) => embedded(msg, raw, depth)?,
        }
    } else if is("apimachinery.pkg.runtime.Unknown") {
        let f = fields(msg, buf)?;
        match last_bytes(&f, 2) {
            None | Some([]) => Value::Null,
            Some(raw) => embedded(msg, raw, depth)?,
        }
    } else if msg.name() == "ExtraValue" || is("apimachinery.pkg.apis.meta.v1.Verbs") {
        // Go `[]string` types wrapped in a message for protobuf.
        Value::Array(all_strings(&fields(msg, buf)?, 1))
    } else if path.starts_with("apiextensions_apiserver.pkg.apis.apiextensions.") {
        return json_schema_union(msg, buf, depth);
    } else {
        return Ok(None);
    };
    Ok(Some(v))
}

/// The `JSONSchemaPropsOr*` unions marshal as whichever alternative is set.
fn json_schema_union(msg: &'static Message, buf: &[u8], depth: usize) -> Result<Option<Value>, JsonError> {
    let name = msg.name();
    let (schema_tag, alt_tag) = match name {
        "JsonSchemaPropsOrArray" | "JsonSchemaPropsOrStringArray" => (1, 2),
        "JsonSchemaPropsOrBool" => (2, 1),
        _ => return Ok(None),
    };
    let f = fields(msg, buf)?;
    let props =
        schema::by_path(&msg.path.replace(name, "JsonSchemaProps")).ok_or(JsonError::Embedded { message: msg.path })?;
    let decode_schema = |b: &[u8]| message(props, b, depth + 1);
    let v = match name {
        "JsonSchemaPropsOrBool" => match last_bytes(&f, schema_tag) {
            Some(b) => decode_schema(b)?,
            None => Value::Bool(last_varint(&f, alt_tag).unwrap_or(0) != 0),
        },
        "JsonSchemaPropsOrStringArray" => {
            let list = all_strings(&f, alt_tag);
            match last_bytes(&f, schema_tag) {
                Some(b) if list.is_empty() => decode_schema(b)?,
                _ => Value::Array(list),
            }
        }
        _ => {
            let list: Vec<&[u8]> = f
                .iter()
                .filter_map(|(t, v)| match v {
                    wire::Value::Bytes(b) if *t == alt_tag => Some(*b),
                    _ => None,
                })
                .collect();
            match last_bytes(&f, schema_tag) {
                Some(b) if list.is_empty() => decode_schema(b)?,
                _ => Value::Array(list.into_iter().map(decode_schema).collect::<Result<_, _>>()?),
            }
        }
    };
    Ok(Some(v))
}

/// Bytes holding a nested object: JSON (what clients put there) or, rarely, another
/// Kubernetes protobuf envelope.
fn embedded(msg: &'static Message, raw: &[u8], depth: usize) -> Result<Value, JsonError> {
    if raw.starts_with(crate::MAGIC) {
        // The nesting depth carries on into the envelope: objects inside objects would
        // otherwise recurse without bound.
        return crate::decode_at(raw, depth + 1).map_err(|e| JsonError::Nested(Box::new(e)));
    }
    serde_json::from_slice(raw).map_err(|_| JsonError::Embedded { message: msg.path })
}

/// RFC 3339 in UTC as Go's `time.RFC3339` (`micros: None`) or `RFC3339Micro` writes it.
pub fn format_time(secs: i64, micros: Option<i32>) -> Option<String> {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    Some(match micros {
        None => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
        Some(us) => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{us:06}Z"),
    })
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Go's `time.Duration.String`: `1h2m3s`, `1.5s`, `300ms`, `0s`.
pub fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    if u < 1_000_000_000 {
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", fraction(u, scale));
    }
    let secs = u / 1_000_000_000;
    let sub = u % 1_000_000_000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let s = fraction(s * 1_000_000_000 + sub, 1_000_000_000);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// `value / scale` with the fractional digits Go prints (trailing zeros trimmed).
fn fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar fields whose zero semantics `go_fields.txt` does not give are the
    /// fields of types with a hand-written JSON form, which never reach `single`.
    #[test]
    fn unclassified_fields_belong_to_special_types() {
        for entry in schema::UNCLASSIFIED {
            let path = entry.rsplit_once('.').map_or(*entry, |(path, _)| path);
            let msg = schema::by_path(path).expect(path);
            assert!(matches!(special(msg, &[], 0), Ok(Some(_))), "{entry}: regenerate go_fields.txt");
        }
    }

    #[test]
    fn times_format_like_go() {
        let cases = [
            (0, None, "1970-01-01T00:00:00Z"),
            (1_704_164_645, None, "2024-01-02T03:04:05Z"),
            (951_782_400, None, "2000-02-29T00:00:00Z"),
            (-1, None, "1969-12-31T23:59:59Z"),
            (1_704_164_645, Some(123_456), "2024-01-02T03:04:05.123456Z"),
            (1_704_164_645, Some(0), "2024-01-02T03:04:05.000000Z"),
        ];
        for (secs, micros, want) in cases {
            assert_eq!(format_time(secs, micros).as_deref(), Some(want), "{secs}");
        }
        assert_eq!(format_time(-62_167_219_200, None).as_deref(), Some("0000-01-01T00:00:00Z"));
        assert_eq!(format_time(-62_167_219_201, None), None, "year -1");
        assert_eq!(format_time(i64::MAX / 2, None), None);
    }

    #[test]
    fn durations_format_like_go() {
        let s = 1_000_000_000i64;
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (300_000_000, "300ms"),
            (s, "1s"),
            (s + s / 2, "1.5s"),
            (90 * s, "1m30s"),
            (3600 * s, "1h0m0s"),
            (3723 * s, "1h2m3s"),
            (-5 * s, "-5s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(format_duration(nanos), want, "{nanos}");
        }
    }
}
