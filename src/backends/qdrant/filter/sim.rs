//! A reference evaluator of Qdrant filters following Qdrant's condition checker and the
//! measured tables (`ref/qdrant-measured.md` §5, `ref/vectordbs.md` B.2). `indexed`
//! selects the answers of a server with payload indexes on the keys where they differ
//! (`is_null` on arrays holding null, integer `match` on integral floats, `except` on
//! non-strings). `Err` is a 400/422 answer, or a construct this simulator leaves out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Map, Value as Json};

pub struct Point<'a> {
    pub id: &'a Json,
    pub payload: &'a Map<String, Json>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

fn raw_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

fn parse_path(p: &str) -> Result<(String, Vec<Step>), String> {
    let bad = || format!("invalid key path {p:?}");
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    let read_key = |i: &mut usize| -> Result<String, String> {
        if chars.get(*i) == Some(&'"') {
            let start = *i + 1;
            let end = chars[start..]
                .iter()
                .position(|c| *c == '"')
                .ok_or_else(bad)?
                + start;
            let k: String = chars[start..end].iter().collect();
            if k.contains('\\') {
                return Err(bad());
            }
            *i = end + 1;
            Ok(k)
        } else {
            let start = *i;
            while *i < chars.len() && raw_char(chars[*i]) {
                *i += 1;
            }
            if *i == start {
                return Err(bad());
            }
            Ok(chars[start..*i].iter().collect())
        }
    };
    let first = read_key(&mut i)?;
    let mut rest = Vec::new();
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                rest.push(Step::Key(read_key(&mut i)?));
            }
            '[' => {
                let close = chars[i..].iter().position(|c| *c == ']').ok_or_else(bad)? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                if inner.is_empty() {
                    rest.push(Step::All);
                } else {
                    rest.push(Step::Index(inner.parse().map_err(|_| bad())?));
                }
                i = close + 1;
            }
            _ => return Err(bad()),
        }
    }
    Ok((first, rest))
}

fn collect<'a>(steps: &[Step], v: &'a Json, out: &mut Vec<&'a Json>) {
    match steps.split_first() {
        None => out.push(v),
        Some((Step::Key(k), tail)) => {
            if let Some(next) = v.as_object().and_then(|o| o.get(k)) {
                collect(tail, next, out)
            }
        }
        Some((Step::Index(n), tail)) => {
            if let Some(next) = v.as_array().and_then(|a| a.get(*n)) {
                collect(tail, next, out)
            }
        }
        Some((Step::All, tail)) => {
            if let Some(items) = v.as_array() {
                for item in items {
                    collect(tail, item, out)
                }
            }
        }
    }
}

fn values<'a>(path: &str, payload: &'a Map<String, Json>) -> Result<Vec<&'a Json>, String> {
    let (first, rest) = parse_path(path)?;
    let mut out = Vec::new();
    if let Some(v) = payload.get(&first) {
        collect(&rest, v, &mut out);
    }
    Ok(out)
}

fn list(v: Option<&Json>) -> Vec<&Json> {
    match v {
        None | Some(Json::Null) => vec![],
        Some(Json::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
    }
}

pub fn matches(filter: &Json, p: &Point<'_>, indexed: bool) -> Result<bool, String> {
    let obj = filter.as_object().ok_or("a filter is an object")?;
    for k in obj.keys() {
        if !["must", "should", "must_not", "min_should"].contains(&k.as_str()) {
            return Err(format!("unknown filter field {k}"));
        }
    }
    let mut must = true;
    for c in list(obj.get("must")) {
        must &= condition(c, p, indexed)?;
    }
    let should_items = list(obj.get("should"));
    let mut should = should_items.is_empty();
    for c in should_items {
        should |= condition(c, p, indexed)?;
    }
    let mut must_not = true;
    for c in list(obj.get("must_not")) {
        must_not &= !condition(c, p, indexed)?;
    }
    let mut min_should = true;
    if let Some(ms) = obj.get("min_should") {
        let n = ms["min_count"].as_u64().ok_or("min_count")?;
        if n == 0 {
            return Err("min_count must be at least 1".into());
        }
        let mut count = 0;
        for c in list(ms.get("conditions")) {
            count += u64::from(condition(c, p, indexed)?);
        }
        min_should = count >= n;
    }
    Ok(must && should && must_not && min_should)
}

fn key_of(v: &Json) -> Result<&str, String> {
    v.get("key")
        .and_then(Json::as_str)
        .ok_or_else(|| "condition needs a key".into())
}

fn condition(c: &Json, p: &Point<'_>, indexed: bool) -> Result<bool, String> {
    let obj = c.as_object().ok_or("a condition is an object")?;
    if obj.contains_key("key") {
        return field(obj, p.payload, indexed);
    }
    if let Some(e) = obj.get("is_empty") {
        let vals = values(key_of(e)?, p.payload)?;
        return Ok(vals
            .iter()
            .all(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty)));
    }
    if let Some(e) = obj.get("is_null") {
        let vals = values(key_of(e)?, p.payload)?;
        return Ok(vals.iter().any(|v| {
            v.is_null()
                || (indexed && v.as_array().is_some_and(|a| a.iter().any(Json::is_null)))
        }));
    }
    if let Some(ids) = obj.get("has_id") {
        let ids = ids.as_array().ok_or("has_id takes a list")?;
        return Ok(ids.iter().any(|i| same_id(i, p.id)));
    }
    if let Some(n) = obj.get("nested") {
        let path = format!("{}[]", key_of(n)?);
        let inner = n.get("filter").ok_or("nested needs a filter")?;
        for v in values(&path, p.payload)? {
            if let Some(o) = v.as_object() {
                let sub = Point {
                    id: p.id,
                    payload: o,
                };
                if matches(inner, &sub, indexed)? {
                    return Ok(true);
                }
            }
        }
        return Ok(false);
    }
    matches(c, p, indexed)
}

fn same_id(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::String(x), Json::String(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

fn field(
    obj: &Map<String, Json>,
    payload: &Map<String, Json>,
    indexed: bool,
) -> Result<bool, String> {
    let key = obj["key"].as_str().ok_or("key must be a string")?;
    let clauses: Vec<&str> = [
        "match",
        "range",
        "values_count",
        "is_empty",
        "is_null",
        "geo_radius",
    ]
    .into_iter()
    .filter(|k| obj.contains_key(*k))
    .collect();
    let vals = values(key, payload)?;
    match clauses.as_slice() {
        ["match"] => {
            let m = &obj["match"];
            let any = |check: &dyn Fn(&Json) -> Result<bool, String>| -> Result<bool, String> {
                for v in &vals {
                    let hit = match v {
                        Json::Array(items) => {
                            let mut h = false;
                            for i in items {
                                h |= check(i)?;
                            }
                            h
                        }
                        one => check(one)?,
                    };
                    if hit {
                        return Ok(true);
                    }
                }
                Ok(false)
            };
            if let Some(value) = m.get("value") {
                match value {
                    Json::String(s) => any(&|e| Ok(e.as_str() == Some(s))),
                    Json::Bool(b) => any(&|e| Ok(e.as_bool() == Some(*b))),
                    Json::Number(n) if n.is_i64() => {
                        let n = n.as_i64().unwrap();
                        any(&|e| {
                            Ok(if indexed {
                                e.as_f64() == Some(n as f64)
                            } else {
                                e.as_i64() == Some(n)
                            })
                        })
                    }
                    other => Err(format!("match.value cannot be {other}")),
                }
            } else if let Some(list) = m.get("any").or_else(|| m.get("except")) {
                let except = m.get("any").is_none();
                let items = list.as_array().ok_or("any/except take a list")?;
                let strings = items.iter().all(Json::is_string);
                let ints = items.iter().all(|i| i.is_i64());
                if !strings && !ints {
                    return Err("any/except take strings or integers".into());
                }
                let contains = |e: &Json| items.iter().any(|i| i == e);
                if !except {
                    any(&|e| {
                        Ok(if strings {
                            e.is_string() && contains(e)
                        } else {
                            e.as_i64().is_some_and(|_| contains(e))
                        })
                    })
                } else {
                    any(&|e| {
                        Ok(match e {
                            Json::String(_) => !contains(e),
                            Json::Number(n) if !indexed => {
                                n.as_i64().is_none_or(|_| !contains(e))
                            }
                            Json::Null => false,
                            _ => !indexed,
                        })
                    })
                }
            } else if let Some(t) = m.get("text").or_else(|| m.get("phrase")) {
                let t = t.as_str().ok_or("text takes a string")?;
                any(&|e| Ok(e.as_str().is_some_and(|s| s.contains(t))))
            } else {
                Err("unsupported match".into())
            }
        }
        ["range"] => {
            let r = obj["range"].as_object().ok_or("range is an object")?;
            let bound = |k: &str| r.get(k).and_then(Json::as_f64);
            let ok = |x: f64| {
                bound("gt").is_none_or(|b| x > b)
                    && bound("gte").is_none_or(|b| x >= b)
                    && bound("lt").is_none_or(|b| x < b)
                    && bound("lte").is_none_or(|b| x <= b)
            };
            Ok(vals.iter().any(|v| match v {
                Json::Array(items) => items.iter().any(|i| i.as_f64().is_some_and(ok)),
                one => one.as_f64().is_some_and(ok),
            }))
        }
        ["values_count"] => {
            let r = obj["values_count"]
                .as_object()
                .ok_or("values_count is an object")?;
            let count: u64 = vals
                .iter()
                .map(|v| match v {
                    Json::Null => 0,
                    Json::Array(a) => a.len() as u64,
                    _ => 1,
                })
                .sum();
            let bound = |k: &str| r.get(k).and_then(Json::as_u64);
            Ok(bound("gt").is_none_or(|b| count > b)
                && bound("gte").is_none_or(|b| count >= b)
                && bound("lt").is_none_or(|b| count < b)
                && bound("lte").is_none_or(|b| count <= b))
        }
        [] => Err("a field condition needs a clause (422)".into()),
        _ => Err("multi-clause or unsupported field condition (not simulated)".into()),
    }
}

/// Enforces what the translator promises never to emit.
pub fn check_shape(f: &Json, top: bool) -> Result<(), String> {
    let obj = f.as_object().ok_or("not an object")?;
    if top && (f == &super::match_none() || f == &super::match_all()) {
        return Ok(());
    }
    if obj.is_empty() {
        return Err("empty filter".into());
    }
    for (k, v) in obj {
        let items = v.as_array().ok_or("lists only")?;
        if items.is_empty() {
            return Err(format!("empty {k}"));
        }
        for c in items {
            let co = c.as_object().ok_or("condition not an object")?;
            if co.contains_key("key") {
                let clauses = co.keys().filter(|k| *k != "key").count();
                if clauses != 1 {
                    return Err("multi-clause field condition".into());
                }
                if let Some(m) = co.get("match") {
                    if m.get("except").is_some() || m.get("value").is_some_and(Json::is_null) {
                        return Err("except or null match".into());
                    }
                    if m.get("any")
                        .and_then(Json::as_array)
                        .is_some_and(Vec::is_empty)
                    {
                        return Err("empty any".into());
                    }
                }
            } else if let Some(ids) = co.get("has_id") {
                if ids.as_array().is_none_or(Vec::is_empty) {
                    return Err("empty has_id".into());
                }
            } else if !co.contains_key("is_null") && !co.contains_key("is_empty") {
                check_shape(c, false)?;
            }
        }
    }
    Ok(())
}
