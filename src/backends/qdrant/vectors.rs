//! Where Qdrant's request bodies hold vectors, for [`crate::json::parse_strict_keeping`]:
//! the vectors stay the client's text and are written back unparsed.
//!
//! Only places whose numbers nothing in vecgate reads are listed: a query input that is a
//! list (a dense or multi vector; an id is a number or a string and is never kept), the
//! examples, targets and context pairs of recommend, discover, context and relevance
//! feedback (query API and legacy), a search's `vector`, and the vectors an upsert or a vector
//! update writes. Lists of examples themselves (`positive`, `negative`) are not vector places:
//! their items may be point ids, which are read. Payloads and filters are never vector
//! places: policies read payloads, and filters are rewritten.

use super::routes::Operation;
use crate::json::Place;

use Place::{Each, ListOr, Members, Object, Vector};

/// A context: one `{positive, negative}` pair or a list of them (each side a vector input).
static CONTEXT: Place = ListOr { list: &Each(&Vector), object: &Vector };

/// A query API `query`: a vector (a list), or a query object.
static QUERY: Place = ListOr {
    list: &Vector,
    object: &Object(&[
        ("nearest", &Vector),
        ("recommend", &Object(&[("positive", &Each(&Vector)), ("negative", &Each(&Vector))])),
        ("discover", &Object(&[("target", &Vector), ("context", &CONTEXT)])),
        ("context", &CONTEXT),
        ("relevance_feedback", &Object(&[("target", &Vector), ("feedback", &Each(&Object(&[("example", &Vector)])))])),
    ]),
};

/// A query request (or a prefetch, which nests without limit here; the request module caps
/// the depth it accepts).
static QUERY_REQUEST: Place = Object(&[("query", &QUERY), ("prefetch", &PREFETCH)]);
static PREFETCH: Place = Place::one_or_each(&QUERY_REQUEST, &PREFETCHES);
static PREFETCHES: Place = Each(&QUERY_REQUEST);

static SEARCH: Place = Object(&[("vector", &Vector)]);
static RECOMMEND: Place = Object(&[("positive", &Each(&Vector)), ("negative", &Each(&Vector))]);
static DISCOVER: Place = Object(&[("target", &Vector), ("context", &Each(&Vector))]);

static QUERY_BATCH: Place = Object(&[("searches", &Each(&QUERY_REQUEST))]);
static SEARCH_BATCH: Place = Object(&[("searches", &Each(&SEARCH))]);
static RECOMMEND_BATCH: Place = Object(&[("searches", &Each(&RECOMMEND))]);
static DISCOVER_BATCH: Place = Object(&[("searches", &Each(&DISCOVER))]);

/// A point's `vector`: a vector, a multivector, or named vectors.
static POINTS: Place = Each(&Object(&[("vector", &Vector)]));
/// `batch.vectors`: one vector per id, or per name a list of one vector per id.
static VECTOR_COLUMNS: Place = ListOr { list: &Each(&Vector), object: &Members(&Each(&Vector)) };
static UPSERT: Place = Object(&[("points", &POINTS), ("batch", &Object(&[("vectors", &VECTOR_COLUMNS)]))]);
static UPDATE_VECTORS: Place = Object(&[("points", &POINTS)]);
static BATCH_UPDATE: Place =
    Object(&[("operations", &Each(&Object(&[("upsert", &UPSERT), ("update_vectors", &UPDATE_VECTORS)])))]);

/// The vector places of `op`'s body, if it has any.
pub fn places(op: Operation) -> Option<&'static Place> {
    use Operation as O;
    Some(match op {
        O::QueryPoints | O::QueryPointsGroups => &QUERY_REQUEST,
        O::QueryBatchPoints => &QUERY_BATCH,
        O::SearchPoints | O::SearchPointGroups => &SEARCH,
        O::SearchBatchPoints => &SEARCH_BATCH,
        O::RecommendPoints | O::RecommendPointGroups => &RECOMMEND,
        O::RecommendBatchPoints => &RECOMMEND_BATCH,
        O::DiscoverPoints => &DISCOVER,
        O::DiscoverBatchPoints => &DISCOVER_BATCH,
        O::UpsertPoints => &UPSERT,
        O::UpdateVectors => &UPDATE_VECTORS,
        O::BatchUpdate => &BATCH_UPDATE,
        _ => return None,
    })
}
