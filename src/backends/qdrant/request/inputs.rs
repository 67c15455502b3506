//! Point ids a read uses as inputs (query by example, recommend, discover, context,
//! relevance feedback, in prefetches and batches), and the collections a groups read looks
//! records up in.

use super::super::point_id::PointId;
use super::super::routes::Operation;
use super::fields::{check_known, invalid, missing, optional_list};
use super::read::{requests, PREFETCH_FIELDS};
use super::{RequestError, MAX_PREFETCH_DEPTH};
use serde_json::{Map, Value};

/// A point id used as a query input, and where Qdrant reads its vector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PointInput {
    pub id: PointId,
    /// `lookup_from.collection` of the enclosing request or prefetch; `None` = the route's
    /// collection.
    pub collection: Option<String>,
}

/// Every point id the body uses as a query input, so each can be authorized before the query
/// runs (Qdrant reads those vectors without the request's filter): query's `nearest` (or a
/// bare id), `recommend.positive/negative`, `discover.target` and `context` pairs,
/// `context`, `relevance_feedback.target` and `feedback[].example`, in every prefetch and
/// every batch entry; the legacy recommend `positive/negative` and discover
/// `target/context`. Each carries the collection it is read from: that request's (or
/// prefetch's) own `lookup_from`, which Qdrant does not inherit. An input that is neither
/// an id nor a recognised vector form is an error.
pub fn point_inputs(op: Operation, body: &Value) -> Result<Vec<PointInput>, RequestError> {
    use Operation as O;
    let mut out = Vec::new();
    match op {
        O::QueryPoints | O::QueryBatchPoints | O::QueryPointsGroups => {
            for request in requests(op, body)? {
                query_request_inputs(request, 0, &mut out)?;
            }
        }
        O::RecommendPoints | O::RecommendBatchPoints | O::RecommendPointGroups => {
            for request in requests(op, body)? {
                let from = lookup_collection(request)?;
                for field in ["positive", "negative"] {
                    for example in optional_list(request, field)? {
                        legacy_example(field, example, &from, &mut out)?;
                    }
                }
            }
        }
        O::DiscoverPoints | O::DiscoverBatchPoints => {
            for request in requests(op, body)? {
                let from = lookup_collection(request)?;
                if let Some(target) = request.get("target").filter(|t| !t.is_null()) {
                    legacy_example("target", target, &from, &mut out)?;
                }
                for pair in optional_list(request, "context")? {
                    let pair = pair
                        .as_object()
                        .ok_or_else(|| invalid("context", "pairs must be objects"))?;
                    check_known(pair, "context", &["positive", "negative"])?;
                    for side in ["positive", "negative"] {
                        let example = pair.get(side).ok_or_else(|| missing(side))?;
                        legacy_example("context", example, &from, &mut out)?;
                    }
                }
            }
        }
        O::SearchPoints
        | O::SearchBatchPoints
        | O::SearchPointGroups
        | O::ScrollPoints
        | O::CountPoints
        | O::Facet
        | O::SearchMatrixPairs
        | O::SearchMatrixOffsets => {
            requests(op, body)?;
        }
        other => return Err(RequestError::WrongOperation { op: other.name() }),
    }
    Ok(out)
}

pub(super) fn query_request_inputs(
    request: &Map<String, Value>,
    depth: usize,
    out: &mut Vec<PointInput>,
) -> Result<(), RequestError> {
    if depth > MAX_PREFETCH_DEPTH {
        return Err(RequestError::TooDeep {
            limit: MAX_PREFETCH_DEPTH,
        });
    }
    let from = lookup_collection(request)?;
    if let Some(query) = request.get("query").filter(|q| !q.is_null()) {
        query_inputs(query, &from, out)?;
    }
    let mut one = |p: &Value| -> Result<(), RequestError> {
        let p = p
            .as_object()
            .ok_or_else(|| invalid("prefetch", "must be an object or a list of objects"))?;
        check_known(p, "prefetch", PREFETCH_FIELDS)?;
        query_request_inputs(p, depth + 1, out)
    };
    match request.get("prefetch") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => items.iter().try_for_each(&mut one),
        Some(p @ Value::Object(_)) => one(p),
        Some(_) => Err(invalid(
            "prefetch",
            "must be an object or a list of objects",
        )),
    }
}

/// `lookup_from.collection`, if any.
pub(super) fn lookup_collection(request: &Map<String, Value>) -> Result<Option<String>, RequestError> {
    match request.get("lookup_from") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(l)) => {
            check_known(l, "lookup_from", &["collection", "vector", "shard_key"])?;
            match l.get("collection") {
                Some(Value::String(c)) => Ok(Some(c.clone())),
                _ => Err(invalid("lookup_from", "collection must be a string")),
            }
        }
        Some(_) => Err(invalid("lookup_from", "must be an object")),
    }
}

/// The ids in a query (`QueryInterface`: a vector input or one of the query objects).
pub(super) fn query_inputs(
    query: &Value,
    from: &Option<String>,
    out: &mut Vec<PointInput>,
) -> Result<(), RequestError> {
    let Value::Object(q) = query else {
        return vector_input("query", query, from, out);
    };
    let single =
        |name: &str| q.len() == 1 || (name == "nearest" && q.len() == 2 && q.contains_key("mmr"));
    if let Some(v) = q.get("nearest") {
        if !single("nearest") {
            return Err(invalid("query", "unknown fields beside nearest"));
        }
        return vector_input("nearest", v, from, out);
    }
    if let Some(r) = q.get("recommend") {
        if !single("recommend") {
            return Err(invalid("query", "unknown fields beside recommend"));
        }
        let r = r
            .as_object()
            .ok_or_else(|| invalid("recommend", "must be an object"))?;
        check_known(r, "recommend", &["positive", "negative", "strategy"])?;
        for field in ["positive", "negative"] {
            for v in optional_list(r, field)? {
                vector_input(field, v, from, out)?;
            }
        }
        return Ok(());
    }
    if let Some(d) = q.get("discover") {
        if !single("discover") {
            return Err(invalid("query", "unknown fields beside discover"));
        }
        let d = d
            .as_object()
            .ok_or_else(|| invalid("discover", "must be an object"))?;
        check_known(d, "discover", &["target", "context"])?;
        vector_input(
            "target",
            d.get("target").ok_or_else(|| missing("target"))?,
            from,
            out,
        )?;
        return context_inputs(d.get("context"), from, out);
    }
    if let Some(c) = q.get("context") {
        if !single("context") {
            return Err(invalid("query", "unknown fields beside context"));
        }
        return context_inputs(Some(c), from, out);
    }
    if let Some(r) = q.get("relevance_feedback") {
        if !single("relevance_feedback") {
            return Err(invalid("query", "unknown fields beside relevance_feedback"));
        }
        let r = r
            .as_object()
            .ok_or_else(|| invalid("relevance_feedback", "must be an object"))?;
        check_known(r, "relevance_feedback", &["target", "feedback", "strategy"])?;
        vector_input(
            "target",
            r.get("target").ok_or_else(|| missing("target"))?,
            from,
            out,
        )?;
        for item in optional_list(r, "feedback")? {
            let item = item
                .as_object()
                .ok_or_else(|| invalid("feedback", "items must be objects"))?;
            check_known(item, "feedback", &["example", "score"])?;
            vector_input(
                "example",
                item.get("example").ok_or_else(|| missing("example"))?,
                from,
                out,
            )?;
        }
        return Ok(());
    }
    // Queries that reference no point: ordering, fusion, formulas, sampling.
    const NO_IDS: &[&[&str]] = &[
        &["order_by"],
        &["fusion"],
        &["rrf"],
        &["formula"],
        &["formula", "defaults"],
        &["sample"],
    ];
    let mut fields: Vec<&str> = q.keys().map(String::as_str).collect();
    fields.sort_unstable();
    if NO_IDS.iter().any(|known| {
        let mut known = known.to_vec();
        known.sort_unstable();
        known == fields
    }) {
        return Ok(());
    }
    vector_input("query", query, from, out)
}

/// A context: one pair, a list of pairs, or null.
pub(super) fn context_inputs(
    context: Option<&Value>,
    from: &Option<String>,
    out: &mut Vec<PointInput>,
) -> Result<(), RequestError> {
    let mut pair = |p: &Value| -> Result<(), RequestError> {
        let p = p
            .as_object()
            .ok_or_else(|| invalid("context", "pairs must be objects"))?;
        check_known(p, "context", &["positive", "negative"])?;
        for side in ["positive", "negative"] {
            vector_input(side, p.get(side).ok_or_else(|| missing(side))?, from, out)?;
        }
        Ok(())
    };
    match context {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(pairs)) => pairs.iter().try_for_each(&mut pair),
        Some(p) => pair(p),
    }
}

/// A `VectorInput`: an id (integer or UUID string), or a dense, multi-dense, sparse or
/// inference-object vector.
pub(super) fn vector_input(
    field: &str,
    v: &Value,
    from: &Option<String>,
    out: &mut Vec<PointInput>,
) -> Result<(), RequestError> {
    match v {
        Value::Number(_) | Value::String(_) => {
            let id = PointId::from_json(v).ok_or_else(|| {
                invalid(field, "a point id must be an unsigned integer or a UUID")
            })?;
            out.push(PointInput {
                id,
                collection: from.clone(),
            });
            Ok(())
        }
        Value::Array(_) => Ok(()),
        Value::Object(o) => {
            // Sparse vector, document, image, or custom inference object.
            let known = ["indices", "text", "image", "object"];
            if known.iter().any(|k| o.contains_key(*k)) {
                Ok(())
            } else {
                Err(invalid(field, "not a vector input"))
            }
        }
        _ => Err(invalid(field, "not a vector input")),
    }
}

/// A legacy `RecommendExample`: an id, a dense vector or a sparse vector.
pub(super) fn legacy_example(
    field: &str,
    v: &Value,
    from: &Option<String>,
    out: &mut Vec<PointInput>,
) -> Result<(), RequestError> {
    match v {
        Value::Object(o) if !o.contains_key("indices") => Err(invalid(field, "not an example")),
        _ => vector_input(field, v, from, out),
    }
}

/// The collections named by groups' `with_lookup` (a name, or `{collection, …}`).
pub fn lookups(op: Operation, body: &Value) -> Result<Vec<String>, RequestError> {
    use Operation as O;
    if !matches!(
        op,
        O::QueryPointsGroups | O::SearchPointGroups | O::RecommendPointGroups
    ) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for request in requests(op, body)? {
        match request.get("with_lookup") {
            None | Some(Value::Null) => {}
            Some(Value::String(c)) => out.push(c.clone()),
            Some(Value::Object(l)) => match l.get("collection") {
                Some(Value::String(c)) => out.push(c.clone()),
                _ => return Err(invalid("with_lookup", "collection must be a string")),
            },
            Some(_) => return Err(invalid("with_lookup", "must be a name or an object")),
        }
    }
    Ok(out)
}
