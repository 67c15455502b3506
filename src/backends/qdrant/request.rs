//! Rewriting and reading Qdrant request bodies: the access filter is ANDed into every
//! `filter` and `prefetch`, the payload the post-filter needs is forced into the response,
//! point ids used as query inputs and written points are read out for the per-point checks,
//! and delete selectors are turned into filters. Bodies come from
//! [`crate::json::parse_strict`].
//!
//! Qdrant ignores top-level fields it does not know (a misspelt `fliter` reads everything), so
//! every body and every prefetch is checked against the fields of its schema, and an unknown
//! one is refused. Untagged unions Qdrant resolves by "first variant that fits" (a points
//! selector with both `points` and `filter`, a batch operation with two keys) are refused.

use super::routes::Operation;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::fmt;

/// A point id as Qdrant reads it: an unsigned integer, or a UUID kept in lower-case
/// hyphenated form whatever form was sent (Qdrant accepts the simple, braced and URN forms).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PointId {
    Num(u64),
    Uuid(String),
}

impl PointId {
    /// A path or query form: an integer as Rust parses `u64` (as Qdrant does), else a UUID.
    pub fn parse(s: &str) -> Option<PointId> {
        if let Ok(n) = s.parse::<u64>() {
            return Some(PointId::Num(n));
        }
        uuid::Uuid::parse_str(s)
            .ok()
            .map(|u| PointId::Uuid(u.hyphenated().to_string()))
    }

    /// A JSON id: a non-negative integer or a UUID string (a numeric string is not an id).
    pub fn from_json(v: &Value) -> Option<PointId> {
        match v {
            Value::Number(n) => n.as_u64().map(PointId::Num),
            Value::String(s) => uuid::Uuid::parse_str(s)
                .ok()
                .map(|u| PointId::Uuid(u.hyphenated().to_string())),
            _ => None,
        }
    }

    /// The id as Qdrant writes it in JSON.
    pub fn to_json(&self) -> Value {
        match self {
            PointId::Num(n) => Value::from(*n),
            PointId::Uuid(s) => Value::from(s.as_str()),
        }
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(s) => f.write_str(s),
        }
    }
}

/// Why a request body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the body must be a JSON object")]
    NotAnObject,
    #[error("{op} does not take the field {field:?}")]
    UnknownField { op: &'static str, field: String },
    #[error("the field {field:?} is required")]
    MissingField { field: String },
    #[error("the field {field:?} has an invalid value: {reason}")]
    InvalidField { field: String, reason: &'static str },
    #[error("the point id {id} appears twice in one request")]
    DuplicateId { id: String },
    #[error("prefetches nest more than {limit} levels deep")]
    TooDeep { limit: usize },
    #[error("this request shape is not supported by the proxy: {what}")]
    Unsupported { what: &'static str },
    #[error("the operation {op} has no body of this kind")]
    WrongOperation { op: &'static str },
}

/// Deepest prefetch nesting walked.
pub const MAX_PREFETCH_DEPTH: usize = 32;

const QUERY_FIELDS: &[&str] = &[
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
const QUERY_GROUPS_FIELDS: &[&str] = &[
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
const PREFETCH_FIELDS: &[&str] = &[
    "prefetch",
    "query",
    "using",
    "filter",
    "params",
    "score_threshold",
    "limit",
    "lookup_from",
];
const SCROLL_FIELDS: &[&str] = &[
    "shard_key",
    "offset",
    "limit",
    "filter",
    "with_payload",
    "with_vector",
    "order_by",
];
const COUNT_FIELDS: &[&str] = &["shard_key", "filter", "exact"];
const FACET_FIELDS: &[&str] = &["shard_key", "key", "limit", "filter", "exact"];
const MATRIX_FIELDS: &[&str] = &["shard_key", "filter", "sample", "limit", "using"];
const SEARCH_FIELDS: &[&str] = &[
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
const SEARCH_GROUPS_FIELDS: &[&str] = &[
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
const RECOMMEND_FIELDS: &[&str] = &[
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
const RECOMMEND_GROUPS_FIELDS: &[&str] = &[
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
const DISCOVER_FIELDS: &[&str] = &[
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
const RETRIEVE_FIELDS: &[&str] = &["shard_key", "ids", "with_payload", "with_vector"];
const BATCH_FIELDS: &[&str] = &["searches"];

/// How a read operation's body is laid out: one request, or `{"searches": [request…]}`.
#[derive(Debug, Clone, Copy)]
enum ReadShape {
    Single(&'static [&'static str]),
    Batch(&'static [&'static str]),
}

fn read_shape(op: Operation) -> Option<ReadShape> {
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
fn requests_mut(
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
fn requests(op: Operation, body: &Value) -> Result<Vec<&Map<String, Value>>, RequestError> {
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

fn inject_prefetch(
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
fn and_filter(
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

/// What to do to one request's point payloads in the response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PayloadTrim {
    /// The caller gets the payload as Qdrant returned it.
    #[default]
    AsReturned,
    /// The caller asked for no payload: remove the `payload` field (Qdrant omits it).
    Drop,
    /// The caller asked for these paths only: keep just them.
    Include(Vec<String>),
    /// The caller excluded these paths: remove them.
    Exclude(Vec<String>),
}

/// What the proxy must undo in a response after [`force_payload`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trim {
    /// One per request of the body (one for single forms, one per `searches` entry). A
    /// missing entry means [`PayloadTrim::AsReturned`].
    pub requests: Vec<PayloadTrim>,
    /// For groups: the `with_lookup` records' payload.
    pub lookup: PayloadTrim,
}

impl Trim {
    /// The trim of the `i`-th request.
    pub fn request(&self, i: usize) -> &PayloadTrim {
        const AS_RETURNED: &PayloadTrim = &PayloadTrim::AsReturned;
        self.requests.get(i).unwrap_or(AS_RETURNED)
    }

    /// Every payload goes back as Qdrant returned it.
    pub fn is_nothing(&self) -> bool {
        self.lookup == PayloadTrim::AsReturned
            && self.requests.iter().all(|t| *t == PayloadTrim::AsReturned)
    }
}

/// Makes every response point carry at least the payload paths `keys` (plain dotted paths,
/// such as `metadata.dept`), and says in [`Trim`] how to give the caller exactly what it
/// asked for. `with_payload` may be absent or null (Qdrant's default: true for scroll and
/// retrieve, false otherwise), a bool, a list of paths, `{"include": […]}` or
/// `{"exclude": […]}`; groups' `with_lookup` (payload default true) gets the same keys.
/// `GET points/{id}` always returns the whole payload: nothing to do. Paths with `[`, `]`
/// or quotes cannot be trimmed exactly and are `Unsupported`. Count, facet and the search
/// matrices return no points: `WrongOperation`.
pub fn force_payload(
    op: Operation,
    body: &mut Value,
    keys: &[String],
) -> Result<Trim, RequestError> {
    use Operation as O;
    if op == O::GetPoint {
        return Ok(Trim::default());
    }
    if matches!(
        op,
        O::CountPoints | O::Facet | O::SearchMatrixPairs | O::SearchMatrixOffsets
    ) {
        return Err(RequestError::WrongOperation { op: op.name() });
    }
    for key in keys {
        check_plain_path(key)?;
    }
    let default_true = matches!(op, O::ScrollPoints | O::GetPoints);
    let obj = body.as_object_mut().ok_or(RequestError::NotAnObject)?;
    let mut trim = Trim::default();
    for request in requests_mut(op, obj)? {
        trim.requests
            .push(force_selector(request, "with_payload", default_true, keys)?);
        match request.get_mut("with_lookup") {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(Value::Object(lookup)) => {
                check_fields(op, lookup, &["collection", "with_payload", "with_vectors"])?;
                trim.lookup = force_selector(lookup, "with_payload", true, keys)?;
            }
            Some(_) => return Err(invalid("with_lookup", "must be a name or an object")),
        }
    }
    Ok(trim)
}

/// Forces `keys` into the payload selector at `field`.
fn force_selector(
    obj: &mut Map<String, Value>,
    field: &str,
    default_true: bool,
    keys: &[String],
) -> Result<PayloadTrim, RequestError> {
    let key_list = || Value::Array(keys.iter().map(|k| Value::from(k.as_str())).collect());
    let current = obj.get(field).cloned();
    let trim = match current {
        None | Some(Value::Null) if default_true => PayloadTrim::AsReturned,
        Some(Value::Bool(true)) => PayloadTrim::AsReturned,
        None | Some(Value::Null) | Some(Value::Bool(false)) => {
            if keys.is_empty() {
                return Ok(PayloadTrim::AsReturned);
            }
            obj.insert(field.to_string(), key_list());
            PayloadTrim::Drop
        }
        Some(Value::Array(items)) => {
            let (paths, trim) = force_include(field, &items, keys)?;
            obj.insert(field.to_string(), paths);
            trim
        }
        Some(Value::Object(sel)) => {
            let mut entries = sel.into_iter();
            let (kind, list) = match (entries.next(), entries.next()) {
                (Some(one), None) => one,
                _ => {
                    return Err(invalid(
                        field,
                        "must have exactly one of include or exclude",
                    ))
                }
            };
            let Value::Array(items) = list else {
                return Err(invalid(field, "include/exclude must be a list of paths"));
            };
            let (paths, trim) = match kind.as_str() {
                "include" => force_include(field, &items, keys)?,
                "exclude" => force_exclude(field, &items, keys)?,
                _ => {
                    return Err(invalid(
                        field,
                        "must have exactly one of include or exclude",
                    ))
                }
            };
            obj.insert(field.to_string(), json!({ kind: paths }));
            trim
        }
        Some(_) => {
            return Err(invalid(
                field,
                "must be a bool, a list of paths or a selector",
            ))
        }
    };
    Ok(trim)
}

fn path_list(field: &str, items: &[Value]) -> Result<Vec<String>, RequestError> {
    items
        .iter()
        .map(|i| {
            let p = i
                .as_str()
                .ok_or_else(|| invalid(field, "payload paths must be strings"))?;
            check_plain_path(p)?;
            Ok(p.to_string())
        })
        .collect()
}

/// An include list with `keys` added where no listed path already covers them.
fn force_include(
    field: &str,
    items: &[Value],
    keys: &[String],
) -> Result<(Value, PayloadTrim), RequestError> {
    let asked = path_list(field, items)?;
    let mut paths = asked.clone();
    for key in keys {
        if !paths.iter().any(|p| covers(p, key)) {
            paths.push(key.clone());
        }
    }
    let trim = if paths.len() == asked.len() {
        PayloadTrim::AsReturned
    } else {
        PayloadTrim::Include(asked)
    };
    Ok((json!(paths), trim))
}

/// An exclude list without the paths that would hide any of `keys`.
fn force_exclude(
    field: &str,
    items: &[Value],
    keys: &[String],
) -> Result<(Value, PayloadTrim), RequestError> {
    let asked = path_list(field, items)?;
    let kept: Vec<&String> = asked
        .iter()
        .filter(|p| !keys.iter().any(|k| covers(p, k) || covers(k, p)))
        .collect();
    let trim = if kept.len() == asked.len() {
        PayloadTrim::AsReturned
    } else {
        PayloadTrim::Exclude(asked.clone())
    };
    Ok((json!(kept), trim))
}

/// True when the path `outer` selects `inner` (equal, or an ancestor of it).
pub(crate) fn covers(outer: &str, inner: &str) -> bool {
    inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// A payload path of plain keys joined by dots.
fn check_plain_path(path: &str) -> Result<(), RequestError> {
    if path.is_empty() || path.split('.').any(str::is_empty) || path.contains(['[', ']', '"']) {
        return Err(RequestError::Unsupported {
            what: "payload paths other than plain dotted keys",
        });
    }
    Ok(())
}

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

fn query_request_inputs(
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
fn lookup_collection(request: &Map<String, Value>) -> Result<Option<String>, RequestError> {
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
fn query_inputs(
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
fn context_inputs(
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
fn vector_input(
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
fn legacy_example(
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

/// The array at `field` (absent or null: empty).
fn optional_list<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a [Value], RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(field, "must be a list")),
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

/// What a write does to one point's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadChange {
    /// upsert (an absent or null payload stores `{}`), overwrite_payload.
    Replace(Map<String, Value>),
    /// set_payload: top-level keys overwrite, others stay; with `key`, the same merge into
    /// the object at that dotted path (created, or replacing a non-object, on the way).
    Merge {
        key: Option<String>,
        payload: Map<String, Value>,
    },
    /// delete_payload: these dotted paths are removed (a missing path is a no-op).
    DeleteKeys(Vec<String>),
    /// clear_payload.
    Clear,
    /// update_vectors, delete_vectors: the payload is untouched.
    Keep,
}

/// One point a write touches, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct PointWrite {
    pub id: PointId,
    pub change: PayloadChange,
    /// True for upsert, which creates a missing point; every other write fails (upstream)
    /// or does nothing on a missing point.
    pub may_create: bool,
}

/// The points a write selects.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Ids(Vec<PointId>),
    /// Every point matching this filter (a Qdrant filter object).
    Filter(Value),
}

const UPSERT_FIELDS: &[&str] = &[
    "points",
    "batch",
    "shard_key",
    "update_filter",
    "update_mode",
];
const UPDATE_VECTORS_FIELDS: &[&str] = &["points", "shard_key", "update_filter"];
const SET_PAYLOAD_FIELDS: &[&str] = &["payload", "points", "filter", "key", "shard_key"];
const DELETE_PAYLOAD_FIELDS: &[&str] = &["keys", "points", "filter", "shard_key"];
const POINTS_SELECTOR_FIELDS: &[&str] = &["points", "filter", "shard_key"];
const DELETE_VECTORS_FIELDS: &[&str] = &["points", "filter", "vector", "shard_key"];

/// The points written by upsert (`points` list or `batch` columns), update_vectors, and
/// set/overwrite/delete/clear payload and delete_vectors by ids, in body order, with what
/// each does to the payload; points/batch: every operation's, in order (fold them in order
/// with [`payload_after`]). A write by filter contributes no point here: see
/// [`write_selector`]. Ids repeated within one operation are refused.
pub fn parse_point_writes(op: Operation, body: &Value) -> Result<Vec<PointWrite>, RequestError> {
    use Operation as O;
    let obj = body.as_object().ok_or(RequestError::NotAnObject)?;
    let by_ids = |change: PayloadChange| -> Result<Vec<PointWrite>, RequestError> {
        match selector_of(op, obj)? {
            Selector::Filter(_) => Ok(Vec::new()),
            Selector::Ids(ids) => Ok(ids
                .into_iter()
                .map(|id| PointWrite {
                    id,
                    change: change.clone(),
                    may_create: false,
                })
                .collect()),
        }
    };
    match op {
        O::UpsertPoints => parse_upsert(obj),
        O::UpdateVectors => {
            check_fields(op, obj, UPDATE_VECTORS_FIELDS)?;
            let points = required_list(obj, "points")?;
            let mut seen = HashSet::new();
            points
                .iter()
                .map(|p| {
                    let p = p
                        .as_object()
                        .ok_or_else(|| invalid("points", "entries must be objects"))?;
                    check_known(p, "points", &["id", "vector"])?;
                    Ok(PointWrite {
                        id: distinct(&mut seen, p.get("id"))?,
                        change: PayloadChange::Keep,
                        may_create: false,
                    })
                })
                .collect()
        }
        O::SetPayload | O::OverwritePayload => {
            let payload = match obj.get("payload") {
                Some(Value::Object(p)) => p.clone(),
                Some(_) => return Err(invalid("payload", "must be an object")),
                None => return Err(missing("payload")),
            };
            let key = match obj.get("key") {
                None | Some(Value::Null) => None,
                Some(Value::String(k)) => {
                    check_plain_path(k)?;
                    Some(k.clone())
                }
                Some(_) => return Err(invalid("key", "must be a string")),
            };
            let change = if op == O::SetPayload {
                PayloadChange::Merge { key, payload }
            } else if key.is_some() {
                return Err(RequestError::Unsupported {
                    what: "overwrite_payload with a key",
                });
            } else {
                PayloadChange::Replace(payload)
            };
            by_ids(change)
        }
        O::DeletePayload => {
            let keys = match obj.get("keys") {
                Some(Value::Array(items)) => path_list("keys", items)?,
                Some(_) => return Err(invalid("keys", "must be a list of paths")),
                None => return Err(missing("keys")),
            };
            by_ids(PayloadChange::DeleteKeys(keys))
        }
        O::ClearPayload => by_ids(PayloadChange::Clear),
        O::DeleteVectors => by_ids(PayloadChange::Keep),
        O::BatchUpdate => {
            let mut out = Vec::new();
            for (inner_op, inner) in split_batch(body)? {
                if inner_op != O::DeletePoints {
                    out.extend(parse_point_writes(inner_op, &inner)?);
                }
            }
            Ok(out)
        }
        other => Err(RequestError::WrongOperation { op: other.name() }),
    }
}

fn parse_upsert(obj: &Map<String, Value>) -> Result<Vec<PointWrite>, RequestError> {
    check_fields(Operation::UpsertPoints, obj, UPSERT_FIELDS)?;
    match obj.get("update_mode") {
        None | Some(Value::Null) => {}
        Some(Value::String(m))
            if ["upsert", "insert_only", "update_only"].contains(&m.as_str()) => {}
        Some(_) => {
            return Err(invalid(
                "update_mode",
                "must be upsert, insert_only or update_only",
            ))
        }
    }
    check_filter_or_null(obj, "update_filter")?;
    let mut seen = HashSet::new();
    let write = |id, payload: Option<&Value>| -> Result<PointWrite, RequestError> {
        let payload = match payload {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err(invalid("payload", "must be an object or null")),
        };
        Ok(PointWrite {
            id,
            change: PayloadChange::Replace(payload),
            may_create: true,
        })
    };
    match (obj.get("points"), obj.get("batch")) {
        (Some(Value::Array(points)), None) => points
            .iter()
            .map(|p| {
                let p = p
                    .as_object()
                    .ok_or_else(|| invalid("points", "entries must be objects"))?;
                check_known(p, "points", &["id", "vector", "payload"])?;
                write(distinct(&mut seen, p.get("id"))?, p.get("payload"))
            })
            .collect(),
        (None, Some(Value::Object(batch))) => {
            check_known(batch, "batch", &["ids", "vectors", "payloads"])?;
            let ids = required_list(batch, "ids")?;
            let payloads: Vec<Option<&Value>> = match batch.get("payloads") {
                None | Some(Value::Null) => vec![None; ids.len()],
                Some(Value::Array(p)) if p.len() == ids.len() => p.iter().map(Some).collect(),
                Some(_) => return Err(invalid("batch.payloads", "must have one entry per id")),
            };
            ids.iter()
                .zip(payloads)
                .map(|(id, payload)| write(distinct(&mut seen, Some(id))?, payload))
                .collect()
        }
        (Some(_), Some(_)) => Err(invalid("points", "give either points or batch")),
        (None, None) => Err(missing("points")),
        _ => Err(invalid("points", "points must be a list, batch an object")),
    }
}

/// An id not seen before in this operation.
fn distinct(seen: &mut HashSet<PointId>, v: Option<&Value>) -> Result<PointId, RequestError> {
    let v = v.ok_or_else(|| missing("id"))?;
    let id = PointId::from_json(v)
        .ok_or_else(|| invalid("id", "must be an unsigned integer or a UUID"))?;
    if !seen.insert(id.clone()) {
        return Err(RequestError::DuplicateId { id: id.to_string() });
    }
    Ok(id)
}

/// The points a write or delete selects: the ids of upsert and update_vectors, or the
/// `points` / `filter` selector of delete, delete_vectors, and set, overwrite, delete and
/// clear payload. Both `points` and `filter`, or neither, is refused (Qdrant's untagged
/// selector would silently use one of them).
pub fn write_selector(op: Operation, body: &Value) -> Result<Selector, RequestError> {
    use Operation as O;
    let obj = body.as_object().ok_or(RequestError::NotAnObject)?;
    match op {
        O::UpsertPoints | O::UpdateVectors => Ok(Selector::Ids(
            parse_point_writes(op, body)?
                .into_iter()
                .map(|w| w.id)
                .collect(),
        )),
        _ => selector_of(op, obj),
    }
}

fn selector_of(op: Operation, obj: &Map<String, Value>) -> Result<Selector, RequestError> {
    use Operation as O;
    let fields = match op {
        O::DeletePoints | O::ClearPayload => POINTS_SELECTOR_FIELDS,
        O::DeleteVectors => DELETE_VECTORS_FIELDS,
        O::SetPayload | O::OverwritePayload => SET_PAYLOAD_FIELDS,
        O::DeletePayload => DELETE_PAYLOAD_FIELDS,
        other => return Err(RequestError::WrongOperation { op: other.name() }),
    };
    check_fields(op, obj, fields)?;
    let points = obj.get("points").filter(|v| !v.is_null());
    let filter = obj.get("filter").filter(|v| !v.is_null());
    match (points, filter) {
        (Some(Value::Array(items)), None) => {
            let mut seen = HashSet::new();
            let ids = items
                .iter()
                .map(|i| distinct(&mut seen, Some(i)))
                .collect::<Result<_, _>>()?;
            Ok(Selector::Ids(ids))
        }
        (Some(_), None) => Err(invalid("points", "must be a list of ids")),
        (None, Some(f @ Value::Object(_))) => Ok(Selector::Filter(f.clone())),
        (None, Some(_)) => Err(invalid("filter", "must be a filter object")),
        (Some(_), Some(_)) => Err(RequestError::Unsupported {
            what: "a selector with both points and filter",
        }),
        (None, None) => Err(missing("points")),
    }
}

/// A by-id or by-filter write or delete rewritten to select by filter only: ids become
/// `{"must":[{"has_id":ids}, acl]}`, a filter `{"must":[user, acl]}`. Every other field
/// (`shard_key`, `payload`, `key`, `keys`, `vector`) is kept. For delete, delete_vectors,
/// delete/clear payload (DESIGN §3) and set/overwrite payload by filter.
pub fn selector_to_filter(op: Operation, body: Value, acl: &Value) -> Result<Value, RequestError> {
    let mut obj = into_object(body)?;
    let filter = match selector_of(op, &obj)? {
        Selector::Ids(ids) => {
            let ids: Vec<Value> = ids.iter().map(PointId::to_json).collect();
            json!({ "must": [{ "has_id": ids }, acl] })
        }
        Selector::Filter(user) => json!({ "must": [user, acl] }),
    };
    obj.remove("points");
    obj.insert("filter".into(), filter);
    Ok(Value::Object(obj))
}

/// [`selector_to_filter`] for the delete-class operations only: points/delete,
/// vectors/delete, payload/delete, payload/clear.
pub fn delete_selector_to_filter(
    op: Operation,
    body: Value,
    acl: &Value,
) -> Result<Value, RequestError> {
    use Operation as O;
    match op {
        O::DeletePoints | O::DeleteVectors | O::DeletePayload | O::ClearPayload => {
            selector_to_filter(op, body, acl)
        }
        other => Err(RequestError::WrongOperation { op: other.name() }),
    }
}

/// ANDs `acl` into upsert's or update_vectors' `update_filter` (`{"must":[user, acl]}`, or
/// `acl` alone): existing points outside it keep their state, new points are still inserted.
pub fn and_into_update_filter(
    op: Operation,
    body: Value,
    acl: &Value,
) -> Result<Value, RequestError> {
    if !matches!(op, Operation::UpsertPoints | Operation::UpdateVectors) {
        return Err(RequestError::WrongOperation { op: op.name() });
    }
    parse_point_writes(op, &body)?;
    let mut obj = into_object(body)?;
    and_filter(&mut obj, "update_filter", Some(acl))?;
    Ok(Value::Object(obj))
}

/// The operations of a points/batch body, each as the single operation it is and that
/// operation's own body (so every single-operation function applies to it). An entry must
/// have exactly one known key.
pub fn split_batch(body: &Value) -> Result<Vec<(Operation, Value)>, RequestError> {
    let obj = body.as_object().ok_or(RequestError::NotAnObject)?;
    check_fields(Operation::BatchUpdate, obj, &["operations"])?;
    let ops = required_list(obj, "operations")?;
    ops.iter()
        .map(|entry| {
            let entry = entry
                .as_object()
                .ok_or_else(|| invalid("operations", "entries must be objects"))?;
            let mut items = entry.iter();
            let (name, inner) = match (items.next(), items.next()) {
                (Some(one), None) => one,
                _ => {
                    return Err(invalid(
                        "operations",
                        "each entry must have exactly one key",
                    ))
                }
            };
            let op = batch_operation(name)
                .ok_or_else(|| invalid("operations", "unknown batch operation"))?;
            Ok((op, inner.clone()))
        })
        .collect()
}

/// Reassembles a points/batch body from [`split_batch`]'s parts (possibly rewritten).
pub fn join_batch(parts: Vec<(Operation, Value)>) -> Result<Value, RequestError> {
    let ops = parts
        .into_iter()
        .map(|(op, body)| {
            let name = batch_key(op).ok_or(RequestError::WrongOperation { op: op.name() })?;
            Ok(json!({ name: body }))
        })
        .collect::<Result<Vec<_>, RequestError>>()?;
    Ok(json!({ "operations": ops }))
}

const BATCH_KEYS: [(&str, Operation); 8] = [
    ("upsert", Operation::UpsertPoints),
    ("delete", Operation::DeletePoints),
    ("set_payload", Operation::SetPayload),
    ("overwrite_payload", Operation::OverwritePayload),
    ("delete_payload", Operation::DeletePayload),
    ("clear_payload", Operation::ClearPayload),
    ("update_vectors", Operation::UpdateVectors),
    ("delete_vectors", Operation::DeleteVectors),
];

fn batch_operation(key: &str) -> Option<Operation> {
    BATCH_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, op)| *op)
}

fn batch_key(op: Operation) -> Option<&'static str> {
    BATCH_KEYS.iter().find(|(_, o)| *o == op).map(|(k, _)| *k)
}

/// The payload Qdrant stores after `change`, for the WITH CHECK evaluation. `existing` is
/// the point's payload now (`None`: no such point, or an empty payload).
///
/// Qdrant (`Payload::merge`, `merge_by_key`, `remove` by JSON path): set_payload merges the
/// top level only (a written key replaces the whole old value, objects included); with
/// `key`, each path segment is descended, creating `{}` where missing and replacing any
/// non-object on the way, and the payload is merged into the object there (or replaces a
/// non-object there). delete_payload removes each path; clear leaves `{}`; upsert and
/// overwrite store the new payload whole.
pub fn payload_after(
    change: &PayloadChange,
    existing: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut payload = existing.cloned().unwrap_or_default();
    match change {
        PayloadChange::Replace(p) => return p.clone(),
        PayloadChange::Clear => return Map::new(),
        PayloadChange::Keep => {}
        PayloadChange::Merge {
            key: None,
            payload: written,
        } => {
            for (k, v) in written {
                payload.insert(k.clone(), v.clone());
            }
        }
        PayloadChange::Merge {
            key: Some(path),
            payload: written,
        } => merge_at(&mut payload, path, written),
        PayloadChange::DeleteKeys(paths) => {
            for path in paths {
                remove_path(&mut payload, path);
            }
        }
    }
    payload
}

fn merge_at(root: &mut Map<String, Value>, path: &str, written: &Map<String, Value>) {
    let mut segments = path.split('.').peekable();
    let mut current = root;
    while let Some(segment) = segments.next() {
        let slot = current
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(inner) = slot else {
            return;
        };
        if segments.peek().is_none() {
            for (k, v) in written {
                inner.insert(k.clone(), v.clone());
            }
            return;
        }
        current = inner;
    }
}

fn remove_path(root: &mut Map<String, Value>, path: &str) {
    let segments: Vec<&str> = path.split('.').collect();
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut current = root;
    for segment in parents {
        match current.get_mut(*segment) {
            Some(Value::Object(inner)) => current = inner,
            _ => return,
        }
    }
    current.remove(*last);
}

fn into_object(body: Value) -> Result<Map<String, Value>, RequestError> {
    match body {
        Value::Object(obj) => Ok(obj),
        _ => Err(RequestError::NotAnObject),
    }
}

fn check_fields(
    op: Operation,
    obj: &Map<String, Value>,
    known: &[&str],
) -> Result<(), RequestError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(field) => Err(RequestError::UnknownField {
            op: op.name(),
            field: field.clone(),
        }),
        None => Ok(()),
    }
}

/// Like [`check_fields`] for a nested object, named by its field.
fn check_known(obj: &Map<String, Value>, field: &str, known: &[&str]) -> Result<(), RequestError> {
    if obj.keys().any(|k| !known.contains(&k.as_str())) {
        return Err(invalid(field, "has an unknown field"));
    }
    Ok(())
}

fn check_filter_or_null(obj: &Map<String, Value>, field: &str) -> Result<(), RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(invalid(field, "must be a filter object or null")),
    }
}

fn required_list<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a Vec<Value>, RequestError> {
    match obj.get(field) {
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(field, "must be a list")),
        None => Err(missing(field)),
    }
}

fn invalid(field: &str, reason: &'static str) -> RequestError {
    RequestError::InvalidField {
        field: field.to_string(),
        reason,
    }
}

fn missing(field: &str) -> RequestError {
    RequestError::MissingField {
        field: field.to_string(),
    }
}
