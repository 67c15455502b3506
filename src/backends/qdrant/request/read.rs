//! Filtered reads: the access filter ANDed into every request's `filter` and into the
//! `filter` of every `prefetch`, however nested, after each body is checked against the fields
//! of its schema.

use super::super::routes::Operation;
use super::fields::{check_fields, into_object, invalid, missing};
use super::{RequestError, MAX_PREFETCH_DEPTH};
use serde_json::{json, Map, Value};

pub(super) const QUERY_FIELDS: &[&str] = &[
    "shard_key",
    "prefetch",
    "query",
    "using",
    "filter",
    "params",
    "score_threshold",
    "limit",
    "offset",
    "with_vector",
    "with_payload",
    "lookup_from",
];

pub(super) const QUERY_GROUPS_FIELDS: &[&str] = &[
    "shard_key",
    "prefetch",
    "query",
    "using",
    "filter",
    "params",
    "score_threshold",
    "with_vector",
    "with_payload",
    "lookup_from",
    "group_by",
    "group_size",
    "limit",
    "with_lookup",
];

pub(super) const PREFETCH_FIELDS: &[&str] = &[
    "prefetch",
    "query",
    "using",
    "filter",
    "params",
    "score_threshold",
    "limit",
    "lookup_from",
];

pub(super) const SCROLL_FIELDS: &[&str] = &[
    "shard_key",
    "offset",
    "limit",
    "filter",
    "with_payload",
    "with_vector",
    "order_by",
];

pub(super) const COUNT_FIELDS: &[&str] = &["shard_key", "filter", "exact"];

pub(super) const FACET_FIELDS: &[&str] = &["shard_key", "key", "limit", "filter", "exact"];

pub(super) const MATRIX_FIELDS: &[&str] = &["shard_key", "filter", "sample", "limit", "using"];

pub(super) const SEARCH_FIELDS: &[&str] = &[
    "shard_key",
    "vector",
    "filter",
    "params",
    "limit",
    "offset",
    "with_payload",
    "with_vector",
    "score_threshold",
];

pub(super) const SEARCH_GROUPS_FIELDS: &[&str] = &[
    "shard_key",
    "vector",
    "filter",
    "params",
    "with_payload",
    "with_vector",
    "score_threshold",
    "group_by",
    "group_size",
    "limit",
    "with_lookup",
];

pub(super) const RECOMMEND_FIELDS: &[&str] = &[
    "shard_key",
    "positive",
    "negative",
    "strategy",
    "filter",
    "params",
    "limit",
    "offset",
    "with_payload",
    "with_vector",
    "score_threshold",
    "using",
    "lookup_from",
];

pub(super) const RECOMMEND_GROUPS_FIELDS: &[&str] = &[
    "shard_key",
    "positive",
    "negative",
    "strategy",
    "filter",
    "params",
    "with_payload",
    "with_vector",
    "score_threshold",
    "using",
    "lookup_from",
    "group_by",
    "group_size",
    "limit",
    "with_lookup",
];

pub(super) const DISCOVER_FIELDS: &[&str] = &[
    "shard_key",
    "target",
    "context",
    "filter",
    "params",
    "limit",
    "offset",
    "with_payload",
    "with_vector",
    "using",
    "lookup_from",
];

pub(super) const RETRIEVE_FIELDS: &[&str] = &["shard_key", "ids", "with_payload", "with_vector"];

pub(super) const BATCH_FIELDS: &[&str] = &["searches"];

/// How a read operation's body is laid out: one request, or `{"searches": [request…]}`.
#[derive(Debug, Clone, Copy)]
pub(super) enum ReadShape {
    Single(&'static [&'static str]),
    Batch(&'static [&'static str]),
}

pub(super) fn read_shape(op: Operation) -> Option<ReadShape> {
    use Operation as O;
    use ReadShape::{Batch, Single};
    Some(match op {
        O::QueryPoints => Single(QUERY_FIELDS),
        O::QueryBatchPoints => Batch(QUERY_FIELDS),
        O::QueryPointsGroups => Single(QUERY_GROUPS_FIELDS),
        O::ScrollPoints => Single(SCROLL_FIELDS),
        O::CountPoints => Single(COUNT_FIELDS),
        O::Facet => Single(FACET_FIELDS),
        O::SearchMatrixPairs | O::SearchMatrixOffsets => Single(MATRIX_FIELDS),
        O::SearchPoints => Single(SEARCH_FIELDS),
        O::SearchBatchPoints => Batch(SEARCH_FIELDS),
        O::SearchPointGroups => Single(SEARCH_GROUPS_FIELDS),
        O::RecommendPoints => Single(RECOMMEND_FIELDS),
        O::RecommendBatchPoints => Batch(RECOMMEND_FIELDS),
        O::RecommendPointGroups => Single(RECOMMEND_GROUPS_FIELDS),
        O::DiscoverPoints => Single(DISCOVER_FIELDS),
        O::DiscoverBatchPoints => Batch(DISCOVER_FIELDS),
        O::GetPoints => Single(RETRIEVE_FIELDS),
        _ => return None,
    })
}

/// The request objects of a read body (one, or each of `searches`), fields checked.
pub(super) fn requests_mut(
    op: Operation,
    obj: &mut Map<String, Value>,
) -> Result<Vec<&mut Map<String, Value>>, RequestError> {
    let shape = read_shape(op).ok_or(RequestError::WrongOperation { op: op.name() })?;
    match shape {
        ReadShape::Single(fields) => {
            check_fields(op, obj, fields)?;
            Ok(vec![obj])
        }
        ReadShape::Batch(fields) => {
            check_fields(op, obj, BATCH_FIELDS)?;
            let searches = match obj.get_mut("searches") {
                Some(Value::Array(items)) => items,
                Some(_) => return Err(invalid("searches", "must be an array")),
                None => return Err(missing("searches")),
            };
            let mut out = Vec::with_capacity(searches.len());
            for search in searches.iter_mut() {
                let Value::Object(search) = search else {
                    return Err(invalid("searches", "every search must be an object"));
                };
                check_fields(op, search, fields)?;
                out.push(search);
            }
            Ok(out)
        }
    }
}

/// Read-only twin of [`requests_mut`].
pub(super) fn requests(op: Operation, body: &Value) -> Result<Vec<&Map<String, Value>>, RequestError> {
    let obj = body.as_object().ok_or(RequestError::NotAnObject)?;
    let shape = read_shape(op).ok_or(RequestError::WrongOperation { op: op.name() })?;
    match shape {
        ReadShape::Single(fields) => {
            check_fields(op, obj, fields)?;
            Ok(vec![obj])
        }
        ReadShape::Batch(fields) => {
            check_fields(op, obj, BATCH_FIELDS)?;
            let searches = match obj.get("searches") {
                Some(Value::Array(items)) => items,
                Some(_) => return Err(invalid("searches", "must be an array")),
                None => return Err(missing("searches")),
            };
            searches
                .iter()
                .map(|s| {
                    let s = s
                        .as_object()
                        .ok_or_else(|| invalid("searches", "every search must be an object"))?;
                    check_fields(op, s, fields)?;
                    Ok(s)
                })
                .collect()
        }
    }
}

/// query, query/batch, query/groups, scroll, count, facet, search matrix and the legacy
/// search/recommend/discover forms (single, batch, groups). Checks every request's fields
/// and ANDs `acl` (a Qdrant filter; `None` = no restriction) into its `filter` as
/// `{"must":[user, acl]}` (`acl` alone when the caller gave none or null) and into the
/// `filter` of every `prefetch`, however nested (an object or a list at each level).
pub fn inject_filter(
    op: Operation,
    body: Value,
    acl: Option<&Value>,
) -> Result<Value, RequestError> {
    if op == Operation::GetPoints {
        return Err(RequestError::WrongOperation { op: op.name() });
    }
    let mut obj = into_object(body)?;
    for request in requests_mut(op, &mut obj)? {
        and_filter(request, "filter", acl)?;
        if request.contains_key("prefetch") {
            inject_prefetch(op, request.get_mut("prefetch"), acl, 1)?;
        }
    }
    Ok(Value::Object(obj))
}

pub(super) fn inject_prefetch(
    op: Operation,
    prefetch: Option<&mut Value>,
    acl: Option<&Value>,
    depth: usize,
) -> Result<(), RequestError> {
    if depth > MAX_PREFETCH_DEPTH {
        return Err(RequestError::TooDeep {
            limit: MAX_PREFETCH_DEPTH,
        });
    }
    let one = |p: &mut Value| -> Result<(), RequestError> {
        let Value::Object(p) = p else {
            return Err(invalid(
                "prefetch",
                "must be an object or a list of objects",
            ));
        };
        check_fields(op, p, PREFETCH_FIELDS)?;
        and_filter(p, "filter", acl)?;
        inject_prefetch(op, p.get_mut("prefetch"), acl, depth + 1)
    };
    match prefetch {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => items.iter_mut().try_for_each(one),
        Some(p @ Value::Object(_)) => one(p),
        Some(_) => Err(invalid(
            "prefetch",
            "must be an object or a list of objects",
        )),
    }
}

/// ANDs `acl` into the filter at `field` (an object or null).
pub(super) fn and_filter(
    obj: &mut Map<String, Value>,
    field: &str,
    acl: Option<&Value>,
) -> Result<(), RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(_) => return Err(invalid(field, "must be a filter object or null")),
    }
    let Some(acl) = acl else {
        return Ok(());
    };
    let combined = match obj.remove(field) {
        None | Some(Value::Null) => acl.clone(),
        Some(user) => json!({ "must": [user, acl] }),
    };
    obj.insert(field.to_string(), combined);
    Ok(())
}
