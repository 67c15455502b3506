//! Chroma answers vecgate writes itself or reads for its own purposes: the empty answer of a
//! read nothing may be seen of, collection names and listings, and the size of a `where`.

use super::routes::Operation;
use serde_json::{json, Map, Value as Json};

/// What Chroma answers when nothing matches, for a read answered without asking it.
/// `request` is the validated request (its `include` written out).
pub fn empty_read_answer(op: Operation, request: &Json) -> Json {
    let fields = ["documents", "embeddings", "metadatas", "uris", "distances"];
    match op {
        Operation::Query => {
            let queries = request
                .get("query_embeddings")
                .and_then(Json::as_array)
                .map_or(1, Vec::len);
            let include = requested_include(request, &["documents", "metadatas", "distances"]);
            let mut answer = Map::new();
            answer.insert("ids".into(), json!(vec![Vec::<Json>::new(); queries]));
            for f in fields {
                let value = if include.iter().any(|i| i == f) {
                    json!(vec![Vec::<Json>::new(); queries])
                } else {
                    Json::Null
                };
                answer.insert(f.into(), value);
            }
            answer.insert("include".into(), json!(include));
            Json::Object(answer)
        }
        Operation::Search => {
            let searches = request
                .get("searches")
                .and_then(Json::as_array)
                .map_or(1, Vec::len);
            let empty_lists = json!(vec![Vec::<Json>::new(); searches]);
            let nulls = json!(vec![Json::Null; searches]);
            json!({"ids": empty_lists, "documents": nulls, "embeddings": nulls,
                   "metadatas": nulls, "scores": nulls, "select": empty_lists})
        }
        Operation::Count => json!(0),
        _ => {
            let include = requested_include(request, &["documents", "metadatas"]);
            let mut answer = Map::new();
            answer.insert("ids".into(), json!([]));
            for f in fields.iter().take(4) {
                let value = if include.iter().any(|i| i == f) { json!([]) } else { Json::Null };
                answer.insert((*f).into(), value);
            }
            answer.insert("include".into(), json!(include));
            Json::Object(answer)
        }
    }
}

fn requested_include(request: &Json, default: &[&str]) -> Vec<String> {
    match request.get("include").and_then(Json::as_array) {
        Some(items) => items.iter().filter_map(|i| i.as_str().map(String::from)).collect(),
        None => default.iter().map(|s| (*s).to_string()).collect(),
    }
}

/// The ids an answer lists (query and search: over all their inner lists).
pub fn count_ids(answer: &Json) -> usize {
    match answer.get("ids") {
        Some(Json::Array(ids)) => ids
            .iter()
            .map(|i| match i {
                Json::Array(inner) => inner.len(),
                _ => 1,
            })
            .sum(),
        _ => 0,
    }
}

/// `tenant_resource_name:database:collection` → `collection`; `None` if it is not one.
pub fn crn_collection_name(crn: &str) -> Option<String> {
    let parts: Vec<&str> = crn.split(':').collect();
    match parts.as_slice() {
        [_, _, name] if !name.is_empty() => Some((*name).to_string()),
        _ => None,
    }
}

/// A collection's `name` field.
pub fn collection_name_of(collection: &Json) -> Option<String> {
    collection.get("name").and_then(Json::as_str).map(String::from)
}

/// Leaf conditions of a `where` or `where_document`: object keys that are not `$and`/`$or`.
pub fn where_terms(filter: &Json) -> usize {
    match filter {
        Json::Object(map) => map
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("$and" | "$or", Json::Array(items)) => items.iter().map(where_terms).sum(),
                ("$and" | "$or", nested @ Json::Object(_)) => where_terms(nested),
                _ => 1,
            })
            .sum(),
        _ => 0,
    }
}

/// Leaf conditions in every filter a request body carries: `where` and `where_document`, and
/// each search's `filter` (a `where` clause).
pub fn request_terms(body: &Json) -> usize {
    let own: usize = ["where", "where_document"]
        .iter()
        .filter_map(|k| body.get(*k))
        .map(where_terms)
        .sum();
    let searches: usize = body
        .get("searches")
        .and_then(Json::as_array)
        .map_or(0, |items| items.iter().filter_map(|s| s.get("filter")).map(where_terms).sum());
    own + searches
}
