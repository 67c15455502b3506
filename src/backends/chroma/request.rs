//! Rewriting Chroma request bodies: the access filter is ANDed into every `where`, the
//! metadata the post-filter needs is forced into the response, and written records are read
//! out for the per-record checks. Bodies come from [`crate::json::parse_strict`].
//!
//! Chroma ignores top-level fields it does not know (`{"WHERE": …}` returns everything), so
//! every body is checked against the fields of its operation, and an unknown one is refused.

use super::routes::Operation;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// What the proxy must undo in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trim {
    /// `metadatas` was added to `include` (search: `#metadata` to `select.keys`) only for the
    /// post-filter: null it and remove it from the echoed list.
    pub drop_metadatas: bool,
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
    #[error("{field:?} has {len} entries but there are {ids} ids")]
    LengthMismatch {
        field: String,
        len: usize,
        ids: usize,
    },
    #[error("the id {id:?} appears twice in one batch")]
    DuplicateId { id: String },
    /// A delete with no `ids`, `where` or `where_document` deletes nothing in Chroma (or is a
    /// 400 with only `limit`); with the access filter added it would delete every record the
    /// caller may delete, so it is refused instead.
    #[error("the delete selects no records: give ids, where or where_document")]
    EmptyDelete,
    #[error("this request shape is not supported by the proxy: {what}")]
    Unsupported { what: &'static str },
    #[error("the operation {op} has no body of this kind")]
    WrongOperation { op: &'static str },
}

impl From<RequestError> for crate::backends::seam::Refusal {
    fn from(e: RequestError) -> Self {
        crate::backends::seam::Refusal::Malformed(e.to_string())
    }
}

const GET_FIELDS: &[&str] = &[
    "ids",
    "where",
    "where_document",
    "include",
    "limit",
    "offset",
];
const QUERY_FIELDS: &[&str] = &[
    "query_embeddings",
    "n_results",
    "ids",
    "where",
    "where_document",
    "include",
];
const DELETE_FIELDS: &[&str] = &["ids", "where", "where_document", "limit"];
const SEARCH_FIELDS: &[&str] = &["read_level", "searches"];
const SEARCH_PAYLOAD_FIELDS: &[&str] = &["filter", "rank", "group_by", "limit", "select"];
const WRITE_FIELDS: &[&str] = &["ids", "embeddings", "metadatas", "documents", "uris"];

const INCLUDE_VALUES: &[&str] = &["documents", "embeddings", "metadatas", "distances", "uris"];
const GET_DEFAULT_INCLUDE: &[&str] = &["documents", "metadatas"];
const QUERY_DEFAULT_INCLUDE: &[&str] = &["documents", "metadatas", "distances"];
const METADATAS: &str = "metadatas";
/// The search `select` key for a record's whole metadata.
const SEARCH_METADATA_KEY: &str = "#metadata";

/// get / query / search / delete. Checks the body against the operation's fields, ANDs `acl`
/// (a Chroma `where`; `None` = no restriction) into `where` as `{"$and":[user, acl]}` (`acl`
/// alone when the caller gave none or null; search: into each `searches[i].filter`), keeps the
/// caller's `ids` (Chroma intersects them with `where`), and when `need_metadatas` makes the
/// response carry metadata, reporting in [`Trim`] what to remove again.
///
/// get/query: an absent `include` becomes Chroma's default written out (get:
/// documents, metadatas; query: documents, metadatas, distances). Search: `#metadata` is added
/// to each search's `select.keys`; a search that selects single metadata keys, or no `select`,
/// or a batch where only some searches need it, is `Unsupported`. Delete never needs metadata
/// and refuses a body that selects nothing ([`RequestError::EmptyDelete`]).
pub fn rewrite_filtered(
    op: Operation,
    body: Value,
    acl: Option<&Value>,
    need_metadatas: bool,
) -> Result<(Value, Trim), RequestError> {
    let mut obj = into_object(body)?;
    let trim = match op {
        Operation::Get | Operation::Query => {
            check_fields(
                op,
                &obj,
                if op == Operation::Get {
                    GET_FIELDS
                } else {
                    QUERY_FIELDS
                },
            )?;
            check_string_array_or_null(&obj, "ids")?;
            check_object_or_null(&obj, "where_document")?;
            and_into(&mut obj, "where", acl)?;
            let defaults = if op == Operation::Get {
                GET_DEFAULT_INCLUDE
            } else {
                QUERY_DEFAULT_INCLUDE
            };
            force_include_metadatas(&mut obj, defaults, need_metadatas)?
        }
        Operation::Delete => {
            check_fields(op, &obj, DELETE_FIELDS)?;
            check_string_array_or_null(&obj, "ids")?;
            check_object_or_null(&obj, "where_document")?;
            check_object_or_null(&obj, "where")?;
            let selects = ["ids", "where", "where_document"]
                .iter()
                .any(|f| obj.get(*f).is_some_and(|v| !v.is_null()));
            if !selects {
                return Err(RequestError::EmptyDelete);
            }
            and_into(&mut obj, "where", acl)?;
            Trim::default()
        }
        Operation::Search => rewrite_search(&mut obj, acl, need_metadatas)?,
        other => return Err(RequestError::WrongOperation { op: other.name() }),
    };
    Ok((Value::Object(obj), trim))
}

fn rewrite_search(
    obj: &mut Map<String, Value>,
    acl: Option<&Value>,
    need_metadatas: bool,
) -> Result<Trim, RequestError> {
    check_fields(Operation::Search, obj, SEARCH_FIELDS)?;
    let searches = match obj.get_mut("searches") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("searches", "must be an array")),
        None => return Err(missing("searches")),
    };
    let mut forced = Vec::with_capacity(searches.len());
    for search in searches.iter_mut() {
        let Value::Object(search) = search else {
            return Err(invalid("searches", "every search must be an object"));
        };
        check_fields(Operation::Search, search, SEARCH_PAYLOAD_FIELDS)?;
        and_into(search, "filter", acl)?;
        if need_metadatas {
            forced.push(force_select_metadata(search)?);
        }
    }
    let drop_metadatas = forced.iter().any(|f| *f);
    if drop_metadatas && !forced.iter().all(|f| *f) {
        return Err(RequestError::Unsupported {
            what: "a search batch where only some searches select #metadata",
        });
    }
    Ok(Trim { drop_metadatas })
}

/// Adds `#metadata` to a search's `select.keys`; true if it was not there.
fn force_select_metadata(search: &mut Map<String, Value>) -> Result<bool, RequestError> {
    let Some(Value::Object(select)) = search.get_mut("select") else {
        return Err(RequestError::Unsupported {
            what: "a search without a select object",
        });
    };
    if select.keys().any(|k| k != "keys") {
        return Err(invalid("select", "only `keys` is known"));
    }
    let Some(Value::Array(keys)) = select.get_mut("keys") else {
        return Err(invalid("select.keys", "must be an array of strings"));
    };
    let mut names = Vec::with_capacity(keys.len());
    for k in keys.iter() {
        names.push(
            k.as_str()
                .ok_or_else(|| invalid("select.keys", "must be an array of strings"))?,
        );
    }
    if names.contains(&SEARCH_METADATA_KEY) {
        return Ok(false);
    }
    if names.iter().any(|n| !n.starts_with('#')) {
        return Err(RequestError::Unsupported {
            what: "a search selecting single metadata keys",
        });
    }
    keys.push(Value::from(SEARCH_METADATA_KEY));
    Ok(true)
}

/// Makes `include` name `metadatas`; the returned trim says whether the caller had not asked.
fn force_include_metadatas(
    obj: &mut Map<String, Value>,
    defaults: &[&str],
    need_metadatas: bool,
) -> Result<Trim, RequestError> {
    match obj.get_mut("include") {
        None if need_metadatas => {
            // Chroma's default already carries metadatas; written out so it cannot drift.
            obj.insert("include".into(), json!(defaults));
            Ok(Trim::default())
        }
        None => Ok(Trim::default()),
        Some(Value::Array(items)) => {
            for item in items.iter() {
                if !item.as_str().is_some_and(|s| INCLUDE_VALUES.contains(&s)) {
                    return Err(invalid("include", "unknown include value"));
                }
            }
            let present = items.iter().any(|i| i == METADATAS);
            let drop_metadatas = need_metadatas && !present;
            if drop_metadatas {
                items.push(Value::from(METADATAS));
            }
            Ok(Trim { drop_metadatas })
        }
        Some(_) => Err(invalid("include", "must be an array")),
    }
}

/// ANDs `acl` into the where clause at `field` (an object or null).
fn and_into(
    obj: &mut Map<String, Value>,
    field: &str,
    acl: Option<&Value>,
) -> Result<(), RequestError> {
    check_object_or_null(obj, field)?;
    let Some(acl) = acl else {
        return Ok(());
    };
    let combined = match obj.remove(field) {
        None | Some(Value::Null) => acl.clone(),
        Some(user) => json!({ "$and": [user, acl] }),
    };
    obj.insert(field.to_string(), combined);
    Ok(())
}

/// count: the body of a `get` listing the ids the caller may see.
pub fn count_as_get(acl: Option<&Value>) -> Value {
    let mut body = json!({ "include": [] });
    if let (Some(acl), Value::Object(obj)) = (acl, &mut body) {
        obj.insert("where".into(), acl.clone());
    }
    body
}

/// The records an add, upsert or update writes.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBatch {
    pub ids: Vec<String>,
    /// One per id; `None` where the caller sent no metadata for that record (or no
    /// `metadatas` at all).
    pub metadatas: Vec<Option<Map<String, Value>>>,
}

/// add / upsert / update: the written ids and metadata. Checks the fields, that `ids` is a
/// non-empty array of distinct strings (Chroma's own client refuses duplicates; two writes of
/// one id in a batch would escape the per-record check), that every parallel array has one
/// entry per id, and that each metadata is an object or null.
pub fn parse_write(op: Operation, body: &Value) -> Result<WriteBatch, RequestError> {
    if !matches!(op, Operation::Add | Operation::Upsert | Operation::Update) {
        return Err(RequestError::WrongOperation { op: op.name() });
    }
    let obj = body.as_object().ok_or(RequestError::NotAnObject)?;
    check_fields(op, obj, WRITE_FIELDS)?;
    let ids = write_ids(obj)?;
    for field in ["embeddings", "documents", "uris"] {
        if let Some(items) = parallel_array(obj, field, ids.len())? {
            if field != "embeddings" && items.iter().any(|v| !(v.is_string() || v.is_null())) {
                return Err(invalid(field, "entries must be strings or null"));
            }
        }
    }
    let metadatas = match parallel_array(obj, METADATAS, ids.len())? {
        None => vec![None; ids.len()],
        Some(items) => items
            .iter()
            .map(|m| match m {
                Value::Object(m) => Ok(Some(m.clone())),
                Value::Null => Ok(None),
                _ => Err(invalid(METADATAS, "entries must be objects or null")),
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(WriteBatch { ids, metadatas })
}

fn write_ids(obj: &Map<String, Value>) -> Result<Vec<String>, RequestError> {
    let items = match obj.get("ids") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => return Err(invalid("ids", "must be a non-empty array of strings")),
        None => return Err(missing("ids")),
    };
    let mut seen = HashSet::with_capacity(items.len());
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let id = item
            .as_str()
            .ok_or_else(|| invalid("ids", "must be a non-empty array of strings"))?;
        if !seen.insert(id) {
            return Err(RequestError::DuplicateId { id: id.to_string() });
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

/// The array at `field` (absent or null: `None`), which must have `len` entries.
fn parallel_array<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    len: usize,
) -> Result<Option<&'a Vec<Value>>, RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() == len => Ok(Some(items)),
        Some(Value::Array(items)) => Err(RequestError::LengthMismatch {
            field: field.to_string(),
            len: items.len(),
            ids: len,
        }),
        Some(_) => Err(invalid(field, "must be an array or null")),
    }
}

/// Replaces the body's `metadatas` with these (one per id; `None` is written as null, which
/// Chroma treats like a missing metadata: see [`merged_metadata`]), keeping everything else.
pub fn set_write_metadatas(
    body: &mut Value,
    metadatas: &[Option<Map<String, Value>>],
) -> Result<(), RequestError> {
    let obj = body.as_object_mut().ok_or(RequestError::NotAnObject)?;
    let ids = match obj.get("ids") {
        Some(Value::Array(ids)) => ids.len(),
        Some(_) => return Err(invalid("ids", "must be a non-empty array of strings")),
        None => return Err(missing("ids")),
    };
    if ids != metadatas.len() {
        return Err(RequestError::LengthMismatch {
            field: METADATAS.into(),
            len: metadatas.len(),
            ids,
        });
    }
    let entries = metadatas
        .iter()
        .map(|m| m.clone().map_or(Value::Null, Value::Object))
        .collect();
    obj.insert(METADATAS.into(), Value::Array(entries));
    Ok(())
}

/// Removes the records at `indices` (positions in `ids`) from every parallel array of an
/// add, upsert or update body (`ids`, `embeddings`, `metadatas`, `documents`, `uris`).
pub fn drop_records(body: &mut Value, indices: &[usize]) -> Result<(), RequestError> {
    let obj = body.as_object_mut().ok_or(RequestError::NotAnObject)?;
    for field in ["ids", "embeddings", "metadatas", "documents", "uris"] {
        if let Some(Value::Array(items)) = obj.get_mut(field) {
            let mut index = 0;
            items.retain(|_| {
                let keep = !indices.contains(&index);
                index += 1;
                keep
            });
        }
    }
    Ok(())
}

/// The metadata Chroma stores for a record after the write, for the WITH CHECK evaluation.
/// `existing` is the record's metadata now (`None`: no record, or one without metadata).
///
/// Measured on chromadb 1.5.9 (and checked by `tests/chroma_rewrite.rs`):
/// - upsert and update **merge**: written keys overwrite, other existing keys stay;
/// - a key written as null is **deleted**, in update and in upsert alike (on a new record it
///   is simply absent); add refuses null values (422);
/// - a null metadata entry, `"metadatas": null`, a missing `metadatas` field and `{}` all leave
///   the existing metadata unchanged;
/// - a record whose keys are all deleted reads back with metadata null (here `None`).
///
/// Add stores `written` for a new id; an add of an id that exists is silently ignored by
/// Chroma, and an update of an id that does not exist is a no-op: both are the caller's to
/// handle. Operations that write nothing return `existing`.
pub fn merged_metadata(
    op: Operation,
    existing: Option<&Map<String, Value>>,
    written: Option<&Map<String, Value>>,
) -> Option<Map<String, Value>> {
    let base = match op {
        Operation::Upsert | Operation::Update => existing.cloned(),
        Operation::Add => None,
        _ => return existing.cloned(),
    };
    let Some(written) = written else {
        return base;
    };
    let mut merged = base.unwrap_or_default();
    for (key, value) in written {
        if value.is_null() {
            merged.remove(key);
        } else {
            merged.insert(key.clone(), value.clone());
        }
    }
    (!merged.is_empty()).then_some(merged)
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

fn check_object_or_null(obj: &Map<String, Value>, field: &str) -> Result<(), RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(invalid(field, "must be an object or null")),
    }
}

fn check_string_array_or_null(obj: &Map<String, Value>, field: &str) -> Result<(), RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(invalid(field, "must be an array of strings or null")),
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
