//! A reference evaluator of Chroma `where` clauses, following the measured semantics of
//! single-node Chroma 1.5.9 (the tables in this file's tests). `Err` is a 400 answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Map, Value as Json};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Bool,
    Int,
    Float,
}

fn kind(v: &Json) -> Option<Kind> {
    match v {
        Json::String(_) => Some(Kind::Str),
        Json::Bool(_) => Some(Kind::Bool),
        Json::Number(n) if n.is_i64() || n.is_u64() => Some(Kind::Int),
        Json::Number(_) => Some(Kind::Float),
        _ => None,
    }
}

/// `stored == lit`: strings and bools by type; an int literal compares with ints and
/// floats; a float literal compares with floats, and with ints after truncation.
fn eq(stored: &Json, lit: &Json) -> bool {
    match (kind(stored), kind(lit)) {
        (Some(Kind::Str), Some(Kind::Str)) | (Some(Kind::Bool), Some(Kind::Bool)) => {
            stored == lit
        }
        (Some(Kind::Int), Some(Kind::Int)) => stored.as_i64() == lit.as_i64(),
        (Some(Kind::Float), Some(Kind::Int)) => stored.as_f64() == lit.as_f64(),
        (Some(Kind::Int), Some(Kind::Float)) => {
            stored.as_i64() == lit.as_f64().map(|f| f as i64)
        }
        (Some(Kind::Float), Some(Kind::Float)) => stored.as_f64() == lit.as_f64(),
        _ => false,
    }
}

fn order(stored: &Json, op: &str, lit: &Json) -> bool {
    let cmp = |a: f64, b: f64| match op {
        "$gt" => a > b,
        "$gte" => a >= b,
        "$lt" => a < b,
        _ => a <= b,
    };
    let icmp = |a: i64, b: i64| match op {
        "$gt" => a > b,
        "$gte" => a >= b,
        "$lt" => a < b,
        _ => a <= b,
    };
    match (kind(stored), kind(lit)) {
        (Some(Kind::Int), Some(Kind::Int)) => {
            icmp(stored.as_i64().unwrap(), lit.as_i64().unwrap())
        }
        (Some(Kind::Int), Some(Kind::Float)) => {
            icmp(stored.as_i64().unwrap(), lit.as_f64().unwrap() as i64)
        }
        (Some(Kind::Float), Some(Kind::Int | Kind::Float)) => {
            cmp(stored.as_f64().unwrap(), lit.as_f64().unwrap())
        }
        _ => false,
    }
}

fn scalar_operand(v: &Json) -> Result<(), String> {
    kind(v)
        .map(|_| ())
        .ok_or_else(|| format!("invalid operand {v}"))
}

/// Does a record with this metadata (`None`: null metadata) match `w`?
pub fn matches(w: &Json, meta: Option<&Map<String, Json>>) -> Result<bool, String> {
    let obj = w.as_object().ok_or("where must be an object")?;
    if obj.len() != 1 {
        return Err(format!(
            "where objects take exactly one key, got {}",
            obj.len()
        ));
    }
    let (key, val) = obj.iter().next().unwrap();
    if key == "$and" || key == "$or" {
        let items = val.as_array().ok_or("$and/$or take a list")?;
        let mut results = Vec::new();
        for i in items {
            results.push(matches(i, meta)?);
        }
        return Ok(if key == "$and" {
            results.iter().all(|b| *b)
        } else {
            results.iter().any(|b| *b)
        });
    }
    if key.is_empty() || key.starts_with('$') || key == "#document" {
        return Err(format!("unsupported key {key}"));
    }
    let (op, operand) = match val {
        Json::Object(o) => {
            if o.len() != 1 {
                return Err("an operator object takes exactly one operator".into());
            }
            let (op, operand) = o.iter().next().unwrap();
            (op.as_str(), operand)
        }
        other => ("$eq", other),
    };
    let stored = meta.and_then(|m| m.get(key));
    match op {
        "$eq" | "$ne" => {
            scalar_operand(operand)?;
            let hit = stored.is_some_and(|s| eq(s, operand));
            Ok(hit == (op == "$eq"))
        }
        "$gt" | "$gte" | "$lt" | "$lte" => {
            if !matches!(kind(operand), Some(Kind::Int | Kind::Float)) {
                return Err(format!("{op} takes a number"));
            }
            Ok(stored.is_some_and(|s| order(s, op, operand)))
        }
        "$in" | "$nin" => {
            let list = operand.as_array().ok_or("$in takes a list")?;
            let first = list.first().ok_or("$in takes a non-empty list")?;
            let k = kind(first).ok_or("$in takes scalars")?;
            if list.iter().any(|i| kind(i) != Some(k)) {
                return Err("$in takes values of one type".into());
            }
            let hit = stored.is_some_and(|s| list.iter().any(|i| eq(s, i)));
            Ok(hit == (op == "$in"))
        }
        "$contains" | "$not_contains" => {
            scalar_operand(operand)?;
            let hit = stored.and_then(Json::as_array).is_some_and(|items| {
                items.iter().any(|i| {
                    kind(i) == kind(operand)
                        && i.as_f64()
                            .map_or(i == operand, |f| Some(f) == operand.as_f64())
                })
            });
            Ok(hit == (op == "$contains"))
        }
        other => Err(format!("unknown operator {other}")),
    }
}

/// Also enforces what the translator promises never to emit.
pub fn check_shape(w: &Json) -> Result<(), String> {
    let obj = w.as_object().ok_or("not an object")?;
    if obj.len() != 1 {
        return Err("more than one key".into());
    }
    let (key, val) = obj.iter().next().unwrap();
    if key == "$and" || key == "$or" {
        let items = val.as_array().ok_or("not a list")?;
        if items.len() < 2 {
            return Err(format!("{key} with {} children", items.len()));
        }
        return items.iter().try_for_each(check_shape);
    }
    let op = val.as_object().ok_or("leaf without explicit operator")?;
    for operand in op.values() {
        if operand.is_null() {
            return Err("null operand".into());
        }
    }
    Ok(())
}
