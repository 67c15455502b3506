//! Post-filtering Chroma responses: a hit the caller may not see is removed from every
//! parallel array, so ids, documents, metadatas, embeddings and distances stay aligned.
//! A response whose shape is not understood is an error: the proxy then fails closed.

use super::request::Trim;
use serde_json::{Map, Value};

/// Why a response cannot be filtered.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("the response has an unexpected shape at {field:?}: {reason}")]
    Shape { field: String, reason: &'static str },
    #[error("the answer is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
}

/// A record of a response: its id and metadata.
pub type Row = (String, Option<Map<String, Value>>);

/// Decides whether a hit stays: its id and metadata (`None`: null, or not in the response).
pub type Keep<'a> = dyn FnMut(&str, Option<&Map<String, Value>>) -> bool + 'a;

const IDS: &str = "ids";
const METADATAS: &str = "metadatas";
const INCLUDE: &str = "include";
const SELECT: &str = "select";
const SEARCH_METADATA_KEY: &str = "#metadata";

/// A `get` response: removes the rows `keep` rejects from `ids` and every array of the same
/// length (embeddings, documents, uris, metadatas, and any other), then applies `trim`
/// (metadatas → null and `"metadatas"` removed from the echoed `include`). Returns how many
/// rows were removed.
pub fn filter_get_response(
    resp: &mut Value,
    keep: &mut Keep<'_>,
    trim: Trim,
) -> Result<usize, ResponseError> {
    let obj = as_object(resp)?;
    let mask = row_mask(obj, keep)?;
    for (key, value) in obj.iter_mut() {
        if key == INCLUDE {
            continue;
        }
        retain_column(key, value, &mask)?;
    }
    if trim.drop_metadatas {
        obj.insert(METADATAS.into(), Value::Null);
        remove_from_list(obj, INCLUDE, METADATAS)?;
    }
    Ok(removed(&mask))
}

/// A `query` response (one inner list per query embedding, distances included): as
/// [`filter_get_response`], inner list by inner list.
pub fn filter_query_response(
    resp: &mut Value,
    keep: &mut Keep<'_>,
    trim: Trim,
) -> Result<usize, ResponseError> {
    let obj = as_object(resp)?;
    let masks = batch_masks(obj, keep)?;
    for (key, value) in obj.iter_mut() {
        if key == INCLUDE {
            continue;
        }
        retain_batch_column(key, value, &masks, false)?;
    }
    if trim.drop_metadatas {
        obj.insert(METADATAS.into(), Value::Null);
        remove_from_list(obj, INCLUDE, METADATAS)?;
    }
    Ok(masks.iter().map(|m| removed(m)).sum())
}

/// A `search` response (Chroma Cloud; single-node Chroma answers 501), as its OpenAPI
/// documents it: `ids`, `documents`, `embeddings`, `metadatas`, `scores` hold one list (or
/// null) per search, `select` the keys each search selected. Any other key is an error.
/// `trim` nulls each search's metadatas and removes `#metadata` from its `select`.
pub fn filter_search_response(
    resp: &mut Value,
    keep: &mut Keep<'_>,
    trim: Trim,
) -> Result<usize, ResponseError> {
    const COLUMNS: [&str; 4] = ["documents", "embeddings", "metadatas", "scores"];
    let obj = as_object(resp)?;
    if let Some(key) = obj
        .keys()
        .find(|k| *k != IDS && *k != SELECT && !COLUMNS.contains(&k.as_str()))
    {
        return Err(shape(key, "not a documented search response field"));
    }
    for key in COLUMNS.iter().chain([&SELECT]) {
        if !obj.contains_key(*key) {
            return Err(shape(key, "missing"));
        }
    }
    let masks = batch_masks(obj, keep)?;
    for (key, value) in obj.iter_mut() {
        if key == SELECT {
            let ok = value.as_array().is_some_and(|a| {
                a.len() == masks.len()
                    && a.iter().all(|keys| {
                        keys.as_array()
                            .is_some_and(|ks| ks.iter().all(Value::is_string))
                    })
            });
            if !ok {
                return Err(shape(key, "expected one key list per search"));
            }
            continue;
        }
        retain_batch_column(key, value, &masks, true)?;
    }
    if trim.drop_metadatas {
        if let Some(Value::Array(per_search)) = obj.get_mut(METADATAS) {
            per_search.iter_mut().for_each(|m| *m = Value::Null);
        }
        if let Some(Value::Array(selects)) = obj.get_mut(SELECT) {
            for keys in selects.iter_mut() {
                if let Value::Array(keys) = keys {
                    keys.retain(|k| k != SEARCH_METADATA_KEY);
                }
            }
        }
    }
    Ok(masks.iter().map(|m| removed(m)).sum())
}

/// The rows of a `get` response: each id with its metadata (`None` when null or when the
/// response carries no metadatas).
pub fn get_rows(resp: &Value) -> Result<Vec<Row>, ResponseError> {
    let obj = resp
        .as_object()
        .ok_or_else(|| shape("", "expected an object"))?;
    let ids = string_list(obj.get(IDS), IDS)?;
    let metas = metadata_list(obj.get(METADATAS), METADATAS, ids.len())?;
    Ok(ids
        .into_iter()
        .zip(metas)
        .map(|(id, m)| (id.to_string(), m.cloned()))
        .collect())
}

/// For a get response: whether each row stays.
fn row_mask(obj: &Map<String, Value>, keep: &mut Keep<'_>) -> Result<Vec<bool>, ResponseError> {
    let ids = string_list(obj.get(IDS), IDS)?;
    let metas = metadata_list(obj.get(METADATAS), METADATAS, ids.len())?;
    Ok(ids.iter().zip(metas).map(|(id, m)| keep(id, m)).collect())
}

fn as_object(resp: &mut Value) -> Result<&mut Map<String, Value>, ResponseError> {
    resp.as_object_mut()
        .ok_or_else(|| shape("", "expected an object"))
}

/// For a batched (query/search) response: one keep-mask per inner id list.
fn batch_masks(
    obj: &Map<String, Value>,
    keep: &mut Keep<'_>,
) -> Result<Vec<Vec<bool>>, ResponseError> {
    let Some(Value::Array(per_batch)) = obj.get(IDS) else {
        return Err(shape(IDS, "expected one id list per query"));
    };
    let metas: Vec<Option<&Value>> = match obj.get(METADATAS) {
        None | Some(Value::Null) => vec![None; per_batch.len()],
        Some(Value::Array(m)) if m.len() == per_batch.len() => m.iter().map(Some).collect(),
        Some(_) => return Err(shape(METADATAS, "expected one list per query")),
    };
    let mut masks = Vec::with_capacity(per_batch.len());
    for (ids, metas) in per_batch.iter().zip(metas) {
        let ids = string_list(Some(ids), IDS)?;
        let metas = metadata_list(metas, METADATAS, ids.len())?;
        masks.push(ids.iter().zip(metas).map(|(id, m)| keep(id, m)).collect());
    }
    Ok(masks)
}

/// Filters one column of a get response: null, or an array with one entry per row.
fn retain_column(key: &str, value: &mut Value, mask: &[bool]) -> Result<(), ResponseError> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) if items.len() == mask.len() => {
            let mut rows = mask.iter();
            items.retain(|_| rows.next().copied().unwrap_or(false));
            Ok(())
        }
        _ => Err(shape(key, "expected null or one entry per id")),
    }
}

/// Filters one column of a batched response: null, or one inner list per batch (each null
/// too where `inner_null_ok`, as search documents them).
fn retain_batch_column(
    key: &str,
    value: &mut Value,
    masks: &[Vec<bool>],
    inner_null_ok: bool,
) -> Result<(), ResponseError> {
    match value {
        Value::Null => Ok(()),
        Value::Array(per_batch) if per_batch.len() == masks.len() => {
            for (inner, mask) in per_batch.iter_mut().zip(masks) {
                if inner.is_null() && inner_null_ok {
                    continue;
                }
                if !inner.is_array() {
                    return Err(shape(key, "expected one list per query"));
                }
                retain_column(key, inner, mask)?;
            }
            Ok(())
        }
        _ => Err(shape(key, "expected null or one list per query")),
    }
}

fn string_list<'a>(v: Option<&'a Value>, field: &str) -> Result<Vec<&'a str>, ResponseError> {
    let Some(Value::Array(items)) = v else {
        return Err(shape(field, "expected an array of string ids"));
    };
    items
        .iter()
        .map(|i| {
            i.as_str()
                .ok_or_else(|| shape(field, "expected string ids"))
        })
        .collect()
}

/// The metadata of each of `len` rows from a metadatas column (null or absent: all `None`).
fn metadata_list<'a>(
    v: Option<&'a Value>,
    field: &str,
    len: usize,
) -> Result<Vec<Option<&'a Map<String, Value>>>, ResponseError> {
    match v {
        None | Some(Value::Null) => Ok(vec![None; len]),
        Some(Value::Array(items)) if items.len() == len => items
            .iter()
            .map(|m| match m {
                Value::Object(m) => Ok(Some(m)),
                Value::Null => Ok(None),
                _ => Err(shape(field, "expected objects or null")),
            })
            .collect(),
        Some(_) => Err(shape(field, "expected null or one entry per id")),
    }
}

/// Removes `item` from the string list at `field`.
fn remove_from_list(
    obj: &mut Map<String, Value>,
    field: &str,
    item: &str,
) -> Result<(), ResponseError> {
    match obj.get_mut(field) {
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.retain(|i| i != item);
            Ok(())
        }
        _ => Err(shape(field, "expected a list of names")),
    }
}

fn removed(mask: &[bool]) -> usize {
    mask.iter().filter(|k| !**k).count()
}

fn shape(field: &str, reason: &'static str) -> ResponseError {
    ResponseError::Shape {
        field: field.to_string(),
        reason,
    }
}
