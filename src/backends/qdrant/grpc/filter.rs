//! Qdrant filters on the gRPC face: the plan's filter, which the one Qdrant translator writes in
//! REST's JSON ([`crate::backends::qdrant::filter`]), converted exactly into a `qdrant.Filter`
//! message — or refused; the ANDing of it into a request's filter; and the size of the filters
//! a message carries (`limits.max_filter_terms`).
//!
//! Exactness: Qdrant turns both forms into the same internal condition (`match.value` string
//! ↔ `Match.keyword`, integer ↔ `integer`, bool ↔ `boolean`, `match.any` of strings ↔
//! `keywords`, of integers ↔ `integers`, `range` ↔ `Range` in f64, `has_id` ↔ `HasIdCondition`,
//! `is_null`/`is_empty` ↔ their conditions, `nested` ↔ `NestedCondition`). A range bound is
//! converted only when the f64 it becomes is the same number; anything else the JSON holds (an
//! unknown key, another condition kind, a value of another type) is refused, never dropped.

use super::proto::qdrant::{
    condition::ConditionOneOf, point_id::PointIdOptions, r#match::MatchValue, Condition, FieldCondition,
    Filter, HasIdCondition, IsEmptyCondition, IsNullCondition, Match, MinShould, NestedCondition, PointId,
    Range, RepeatedIntegers, RepeatedStrings,
};
use crate::backends::qdrant::point_id::PointId as Id;
use serde_json::{Map, Value as Json};

/// A filter the conversion cannot express exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the filter cannot be expressed exactly in gRPC: {0}")]
pub struct FilterError(pub String);

fn refuse(what: impl Into<String>) -> FilterError {
    FilterError(what.into())
}

/// A REST filter object as a `qdrant.Filter`.
pub fn from_json(filter: &Json) -> Result<Filter, FilterError> {
    let obj = filter.as_object().ok_or_else(|| refuse("a filter must be an object"))?;
    let mut out = Filter::default();
    for (key, value) in obj {
        match key.as_str() {
            "must" => out.must = conditions(value)?,
            "should" => out.should = conditions(value)?,
            "must_not" => out.must_not = conditions(value)?,
            "min_should" => {
                let m = value.as_object().ok_or_else(|| refuse("min_should must be an object"))?;
                only(m, &["conditions", "min_count"], "min_should")?;
                let min_count = m.get("min_count").and_then(Json::as_u64).ok_or_else(|| refuse("min_should.min_count"))?;
                let conditions = conditions(m.get("conditions").unwrap_or(&Json::Null))?;
                out.min_should = Some(MinShould { conditions, min_count });
            }
            other => return Err(refuse(format!("the filter key {other:?}"))),
        }
    }
    Ok(out)
}

/// A list of conditions (one condition alone is read as a list of one, as Qdrant does).
fn conditions(value: &Json) -> Result<Vec<Condition>, FilterError> {
    match value {
        Json::Array(items) => items.iter().map(condition).collect(),
        Json::Object(_) => Ok(vec![condition(value)?]),
        _ => Err(refuse("conditions must be a list")),
    }
}

fn wrap(c: ConditionOneOf) -> Condition {
    Condition { condition_one_of: Some(c) }
}

fn condition(value: &Json) -> Result<Condition, FilterError> {
    let obj = value.as_object().ok_or_else(|| refuse("a condition must be an object"))?;
    if ["must", "should", "must_not", "min_should"].iter().any(|k| obj.contains_key(*k)) {
        return Ok(wrap(ConditionOneOf::Filter(from_json(value)?)));
    }
    if let Some(ids) = obj.get("has_id") {
        only(obj, &["has_id"], "has_id")?;
        let ids = ids.as_array().ok_or_else(|| refuse("has_id must be a list"))?;
        let has_id = ids.iter().map(point_id).collect::<Result<_, _>>()?;
        return Ok(wrap(ConditionOneOf::HasId(HasIdCondition { has_id })));
    }
    if let Some(inner) = obj.get("is_null") {
        only(obj, &["is_null"], "is_null")?;
        return Ok(wrap(ConditionOneOf::IsNull(IsNullCondition { key: key_of(inner, "is_null")? })));
    }
    if let Some(inner) = obj.get("is_empty") {
        only(obj, &["is_empty"], "is_empty")?;
        return Ok(wrap(ConditionOneOf::IsEmpty(IsEmptyCondition { key: key_of(inner, "is_empty")? })));
    }
    if let Some(nested) = obj.get("nested") {
        only(obj, &["nested"], "nested")?;
        let n = nested.as_object().ok_or_else(|| refuse("nested must be an object"))?;
        only(n, &["key", "filter"], "nested")?;
        let key = n.get("key").and_then(Json::as_str).ok_or_else(|| refuse("nested.key"))?.to_string();
        let filter = Some(from_json(n.get("filter").unwrap_or(&Json::Null))?);
        return Ok(wrap(ConditionOneOf::Nested(NestedCondition { key, filter })));
    }
    field_condition(obj).map(|f| wrap(ConditionOneOf::Field(f)))
}

/// `{"key": K, "match": …}` or `{"key": K, "range": …}`: exactly one of them.
fn field_condition(obj: &Map<String, Json>) -> Result<FieldCondition, FilterError> {
    let key = obj.get("key").and_then(Json::as_str).ok_or_else(|| refuse("a field condition without a key"))?.to_string();
    match (obj.get("match"), obj.get("range")) {
        (Some(m), None) => {
            only(obj, &["key", "match"], "a match condition")?;
            Ok(FieldCondition { key, r#match: Some(Match { match_value: Some(match_value(m)?) }), ..Default::default() })
        }
        (None, Some(r)) => {
            only(obj, &["key", "range"], "a range condition")?;
            Ok(FieldCondition { key, range: Some(range(r)?), ..Default::default() })
        }
        _ => Err(refuse(format!("the condition on {key:?}: one match or one range is supported"))),
    }
}

fn match_value(m: &Json) -> Result<MatchValue, FilterError> {
    let m = m.as_object().ok_or_else(|| refuse("match must be an object"))?;
    let mut entries = m.iter();
    let (Some((kind, value)), None) = (entries.next(), entries.next()) else {
        return Err(refuse("match must have exactly one key"));
    };
    match (kind.as_str(), value) {
        ("value", Json::String(s)) => Ok(MatchValue::Keyword(s.clone())),
        ("value", Json::Bool(b)) => Ok(MatchValue::Boolean(*b)),
        ("value", Json::Number(n)) => n.as_i64().map(MatchValue::Integer).ok_or_else(|| refuse("match.value: only integers")),
        ("any" | "except", Json::Array(items)) => {
            let except = kind == "except";
            if let Some(strings) = items.iter().map(|v| v.as_str().map(String::from)).collect::<Option<Vec<_>>>() {
                let strings = RepeatedStrings { strings };
                return Ok(if except { MatchValue::ExceptKeywords(strings) } else { MatchValue::Keywords(strings) });
            }
            if let Some(integers) = items.iter().map(Json::as_i64).collect::<Option<Vec<_>>>() {
                let integers = RepeatedIntegers { integers };
                return Ok(if except { MatchValue::ExceptIntegers(integers) } else { MatchValue::Integers(integers) });
            }
            Err(refuse(format!("match.{kind}: only all strings or all integers")))
        }
        (kind, _) => Err(refuse(format!("match.{kind}"))),
    }
}

fn range(r: &Json) -> Result<Range, FilterError> {
    let r = r.as_object().ok_or_else(|| refuse("range must be an object"))?;
    let mut out = Range::default();
    for (bound, value) in r {
        let n = exact_f64(value)?;
        match bound.as_str() {
            "gt" => out.gt = Some(n),
            "gte" => out.gte = Some(n),
            "lt" => out.lt = Some(n),
            "lte" => out.lte = Some(n),
            other => return Err(refuse(format!("range.{other}"))),
        }
    }
    Ok(out)
}

/// A JSON number as the f64 Qdrant compares it as, where that is the same number.
fn exact_f64(value: &Json) -> Result<f64, FilterError> {
    let n = value.as_number().ok_or_else(|| refuse("a range bound must be a number"))?;
    let f = n.as_f64().filter(|f| f.is_finite()).ok_or_else(|| refuse("a range bound must be finite"))?;
    let same = match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => i.to_string() == format!("{f:.0}") && f.fract() == 0.0,
        (None, Some(u)) => u.to_string() == format!("{f:.0}") && f.fract() == 0.0,
        (None, None) => true,
    };
    if same {
        Ok(f)
    } else {
        Err(refuse(format!("the range bound {n} has no exact f64")))
    }
}

fn point_id(v: &Json) -> Result<PointId, FilterError> {
    match Id::from_json(v).ok_or_else(|| refuse("has_id takes unsigned integers and UUIDs"))? {
        Id::Num(n) => Ok(PointId { point_id_options: Some(PointIdOptions::Num(n)) }),
        Id::Uuid(u) => Ok(PointId { point_id_options: Some(PointIdOptions::Uuid(u)) }),
    }
}

fn key_of(inner: &Json, what: &str) -> Result<String, FilterError> {
    let obj = inner.as_object().ok_or_else(|| refuse(format!("{what} must be an object")))?;
    only(obj, &["key"], what)?;
    obj.get("key").and_then(Json::as_str).map(String::from).ok_or_else(|| refuse(format!("{what}.key")))
}

fn only(obj: &Map<String, Json>, known: &[&str], what: &str) -> Result<(), FilterError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(refuse(format!("{what} with the key {k:?}"))),
        None => Ok(()),
    }
}

/// `user` AND `acl`: `must: [user, acl]`, or `acl` alone where the request has no filter.
pub fn and(user: Option<Filter>, acl: &Filter) -> Filter {
    match user {
        None => acl.clone(),
        Some(user) => Filter {
            must: vec![wrap(ConditionOneOf::Filter(user)), wrap(ConditionOneOf::Filter(acl.clone()))],
            ..Default::default()
        },
    }
}

/// ANDs `acl` (if any) into the filter at `slot`.
pub fn and_into(slot: &mut Option<Filter>, acl: Option<&Filter>) {
    if let Some(acl) = acl {
        *slot = Some(and(slot.take(), acl));
    }
}

/// Leaf conditions of a filter: each field, id, null, empty or vector condition counts one;
/// nested filters and `nested` conditions count their conditions (as on the REST face).
pub fn leaves(filter: &Filter) -> usize {
    let min_should = filter.min_should.as_ref().map_or(0, |m| m.conditions.iter().map(condition_leaves).sum());
    filter.must.iter().chain(&filter.should).chain(&filter.must_not).map(condition_leaves).sum::<usize>() + min_should
}

fn condition_leaves(c: &Condition) -> usize {
    match &c.condition_one_of {
        Some(ConditionOneOf::Filter(f)) => leaves(f),
        Some(ConditionOneOf::Nested(n)) => n.filter.as_ref().map_or(0, leaves),
        Some(_) => 1,
        None => 0,
    }
}

/// Leaves of an optional filter.
pub fn leaves_of(filter: &Option<Filter>) -> usize {
    filter.as_ref().map_or(0, leaves)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backends::qdrant::filter::{match_all, match_none};
    use serde_json::json;

    #[test]
    fn every_form_the_translator_writes_converts() {
        let translated = json!({
            "must": [
                {"key": "metadata.dept", "match": {"value": "eng"}},
                {"key": "metadata.public", "match": {"value": true}},
                {"key": "metadata.tags[]", "match": {"any": ["a", "b"]}},
                {"key": "metadata.level", "range": {"gte": 3, "lte": 3}},
                {"key": "metadata.score", "range": {"lt": 0.5}},
                {"should": [{"is_null": {"key": "metadata.x"}}, {"is_empty": {"key": "metadata.x"}}]},
                {"has_id": [7, "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"]}
            ],
            "must_not": [{"key": "metadata.level", "range": {"gt": 9}}]
        });
        let filter = from_json(&translated).unwrap();
        assert_eq!(filter.must.len(), 7);
        assert_eq!(leaves(&filter), 9);
        let field = |c: &Condition| match &c.condition_one_of {
            Some(ConditionOneOf::Field(f)) => f.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(field(&filter.must[0]).r#match.unwrap().match_value, Some(MatchValue::Keyword("eng".into())));
        assert_eq!(field(&filter.must[3]).range, Some(Range { gte: Some(3.0), lte: Some(3.0), ..Default::default() }));
        for constant in [match_all(), match_none()] {
            assert_eq!(leaves(&from_json(&constant).unwrap()), 1);
        }
    }

    #[test]
    fn what_has_no_exact_form_is_refused() {
        for refused in [
            json!({"must": [{"key": "k", "match": {"value": 1.5}}]}),
            json!({"must": [{"key": "k", "match": {"text": "x"}}]}),
            json!({"must": [{"key": "k", "range": {"gte": 9007199254740993_u64}}]}),
            json!({"must": [{"key": "k", "values_count": {"gt": 1}}]}),
            json!({"must": [{"key": "k", "match": {"value": "a"}, "range": {"gt": 1}}]}),
            json!({"must": [{"has_id": [-1]}]}),
            json!({"filter": {}}),
            json!({"must": [{"key": "k", "match": {"any": ["a", 1]}}]}),
        ] {
            assert!(from_json(&refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn and_keeps_both_sides() {
        let acl = from_json(&json!({"must": [{"key": "d", "match": {"value": "x"}}]})).unwrap();
        assert_eq!(and(None, &acl), acl);
        let user = from_json(&json!({"should": [{"has_id": [1]}]})).unwrap();
        let both = and(Some(user.clone()), &acl);
        assert_eq!(both.must, vec![wrap(ConditionOneOf::Filter(user)), wrap(ConditionOneOf::Filter(acl))]);
        assert!(both.should.is_empty() && both.must_not.is_empty() && both.min_should.is_none());
    }
}
