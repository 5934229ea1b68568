//! Label and field selectors.
//!
//! Label selectors accept upstream's grammar: `k=v`, `k==v`, `k!=v`, `k`, `!k`,
//! `k in (a,b)`, `k notin (a,b)`, `k>1`, `k<1`, comma-separated. Field selectors accept
//! `f=v`, `f==v`, `f!=v`, with backslash escapes, over the fields upstream supports for
//! each resource.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Label(String),
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    Field(String, String),
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Exists,
    NotExists,
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<(String, Op)>,
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part)?);
        }
        Ok(LabelSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether `labels` (a JSON object of string values, or null) satisfies the selector.
    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|(key, op)| {
            let v = get(key);
            match op {
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Eq(x) => v == Some(x.as_str()),
                Op::NotEq(x) => v != Some(x.as_str()),
                Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                Op::NotIn(set) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
                Op::Gt(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
                Op::Lt(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
            }
        })
    }

    /// Whether every label in `map` equal-matches (used for `matchLabels` style maps).
    pub fn from_match_labels(map: &BTreeMap<String, String>) -> Self {
        LabelSelector { reqs: map.iter().map(|(k, v)| (k.clone(), Op::Eq(v.clone()))).collect() }
    }
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_requirement(part: &str) -> Result<(String, Op), SelectorError> {
    let err = || SelectorError::Label(part.to_string());
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        return if valid_key(key) { Ok((key.into(), Op::NotExists)) } else { Err(err()) };
    }
    for (sym, ctor) in [("==", 0), ("!=", 1), ("=", 0), (">", 2), ("<", 3)] {
        if let Some(pos) = part.find(sym) {
            let key = part[..pos].trim();
            let value = part[pos + sym.len()..].trim();
            if !valid_key(key) || !valid_value(value) {
                return Err(err());
            }
            let op = match ctor {
                0 => Op::Eq(value.into()),
                1 => Op::NotEq(value.into()),
                2 => Op::Gt(value.parse().map_err(|_| err())?),
                _ => Op::Lt(value.parse().map_err(|_| err())?),
            };
            return Ok((key.into(), op));
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = words[0].trim();
        let rest = words[1].trim_start();
        let (notin, rest) = if let Some(r) = rest.strip_prefix("notin") {
            (true, r)
        } else if let Some(r) = rest.strip_prefix("in") {
            (false, r)
        } else {
            return Err(err());
        };
        let rest = rest.trim();
        let inner = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(err)?;
        let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
        if !valid_key(key) || values.iter().any(|v| !valid_value(v)) {
            return Err(err());
        }
        return Ok((key.into(), if notin { Op::NotIn(values) } else { Op::In(values) }));
    }
    if valid_key(part) { Ok((part.into(), Op::Exists)) } else { Err(err()) }
}

/// A parsed field selector: a conjunction of `field=value` / `field!=value` terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for part in split_unescaped(s, ',') {
            if part.trim().is_empty() {
                continue;
            }
            let (field, negate, value) = if let Some((f, v)) = split_once_unescaped(&part, "!=") {
                (f, true, v)
            } else if let Some((f, v)) = split_once_unescaped(&part, "==") {
                (f, false, v)
            } else if let Some((f, v)) = split_once_unescaped(&part, "=") {
                (f, false, v)
            } else {
                return Err(SelectorError::Field(s.to_string(), part));
            };
            terms.push((field.trim().to_string(), negate, unescape(value.trim())));
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The fields the selector uses.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|(f, _, _)| f.as_str())
    }

    /// The value required for `field` with `=`, if any (used to narrow a scan, e.g.
    /// `metadata.name`).
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.terms.iter().find(|(f, neg, _)| f == field && !neg).map(|(_, _, v)| v.as_str())
    }

    /// Rejects fields the resource does not support, with upstream's message.
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), SelectorError> {
        for (f, _, _) in &self.terms {
            if f != "metadata.name" && f != "metadata.namespace" && !supported.contains(&f.as_str()) {
                return Err(SelectorError::UnsupportedField(f.clone()));
            }
        }
        Ok(())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(field, negate, want)| {
            let have = field_value(obj, field);
            (have == *want) != *negate
        })
    }
}

/// The string value of a dotted field path, as upstream's field sets present it:
/// missing → "", bools and numbers in their text form.
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn split_once_unescaped<'a>(s: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if s[i..].starts_with(op) {
            return Some((&s[..i], &s[i + op.len()..]));
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_table() {
        let labels = json!({"app": "web", "tier": "front", "n": "5"});
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("missing in (db)", false),
            ("app=web,tier=front", true),
            ("app=web, tier=back", false),
            ("app in (web, db),tier", true),
            ("n>4", true),
            ("n<4", false),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(Some(&labels)), want, "{sel}");
        }
        assert!(!LabelSelector::parse("app=web").unwrap().matches(None));
    }

    #[test]
    fn label_selector_errors() {
        for bad in ["app=we b", "a in b", "=x", "app in (a b)"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selector_table() {
        let pod = json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let cases = [
            ("metadata.name=web", true),
            ("metadata.name==web", true),
            ("metadata.name!=web", false),
            ("spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed", true),
            ("status.phase=Pending", false),
            ("involvedObject.namespace=", true),
        ];
        for (sel, want) in cases {
            let s = FieldSelector::parse(sel).unwrap();
            assert_eq!(s.matches(&pod), want, "{sel}");
        }
        let s = FieldSelector::parse("metadata.name=a\\,b").unwrap();
        assert_eq!(s.required_value("metadata.name"), Some("a,b"));
        let s = FieldSelector::parse("spec.bogus=1").unwrap();
        assert_eq!(s.check_supported(&["spec.nodeName"]), Err(SelectorError::UnsupportedField("spec.bogus".into())));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
