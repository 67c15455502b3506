//! Reads on the gRPC face: the plan's filter ANDed into every filter a read carries (the
//! request's, every batch entry's, every prefetch's however nested); the payload the hit
//! check needs forced into the answer, with what to trim back; the point ids a read uses as
//! inputs, with the collection each is read from; the collections whose records a groups read
//! brings along; and the answer given when the caller may read nothing.
//!
//! A batch entry carries a collection name of its own, which Qdrant ignores: one that names
//! another collection is refused rather than trusted either way.

use super::error::GrpcRequestError;
use super::filter::and_into;
use super::methods::GrpcRequest;
use super::proto::qdrant as q;
use crate::backends::qdrant::point_id::PointId;
use crate::backends::qdrant::request::{check_plain_path, covers, PayloadTrim, RequestError, Trim, MAX_PREFETCH_DEPTH};
use crate::backends::seam::IdInput;
use q::with_payload_selector::SelectorOptions;

type Result<T> = std::result::Result<T, GrpcRequestError>;

fn wrong(request: &GrpcRequest) -> GrpcRequestError {
    RequestError::WrongOperation { op: request.op().name() }.into()
}

/// A batch entry must read the batch's collection.
fn same_collection(outer: &str, inner: &str) -> Result<()> {
    if inner.is_empty() || inner == outer {
        Ok(())
    } else {
        Err(RequestError::InvalidField { field: "collection_name".into(), reason: "a batch entry must name the batch's collection (or none)" }.into())
    }
}

/// Checks every batch entry's collection.
pub fn check_batch(request: &GrpcRequest) -> Result<()> {
    use GrpcRequest as R;
    match request {
        R::PointsSearchBatch(m) => m.search_points.iter().try_for_each(|e| same_collection(&m.collection_name, &e.collection_name)),
        R::PointsRecommendBatch(m) => m.recommend_points.iter().try_for_each(|e| same_collection(&m.collection_name, &e.collection_name)),
        R::PointsDiscoverBatch(m) => m.discover_points.iter().try_for_each(|e| same_collection(&m.collection_name, &e.collection_name)),
        R::PointsQueryBatch(m) => m.query_points.iter().try_for_each(|e| same_collection(&m.collection_name, &e.collection_name)),
        _ => Ok(()),
    }
}

/// ANDs `acl` (`None`: no restriction) into every filter of a filtered read.
pub fn inject_filter(request: &mut GrpcRequest, acl: Option<&q::Filter>) -> Result<()> {
    use GrpcRequest as R;
    check_batch(request)?;
    match request {
        R::PointsSearch(m) => and_into(&mut m.filter, acl),
        R::PointsSearchBatch(m) => m.search_points.iter_mut().for_each(|e| and_into(&mut e.filter, acl)),
        R::PointsSearchGroups(m) => and_into(&mut m.filter, acl),
        R::PointsScroll(m) => and_into(&mut m.filter, acl),
        R::PointsRecommend(m) => and_into(&mut m.filter, acl),
        R::PointsRecommendBatch(m) => m.recommend_points.iter_mut().for_each(|e| and_into(&mut e.filter, acl)),
        R::PointsRecommendGroups(m) => and_into(&mut m.filter, acl),
        R::PointsDiscover(m) => and_into(&mut m.filter, acl),
        R::PointsDiscoverBatch(m) => m.discover_points.iter_mut().for_each(|e| and_into(&mut e.filter, acl)),
        R::PointsCount(m) => and_into(&mut m.filter, acl),
        R::PointsFacet(m) => and_into(&mut m.filter, acl),
        R::PointsSearchMatrixPairs(m) | R::PointsSearchMatrixOffsets(m) => and_into(&mut m.filter, acl),
        R::PointsQuery(m) => {
            and_into(&mut m.filter, acl);
            prefetch_filters(&mut m.prefetch, acl, 1)?;
        }
        R::PointsQueryBatch(m) => {
            for entry in &mut m.query_points {
                and_into(&mut entry.filter, acl);
                prefetch_filters(&mut entry.prefetch, acl, 1)?;
            }
        }
        R::PointsQueryGroups(m) => {
            and_into(&mut m.filter, acl);
            prefetch_filters(&mut m.prefetch, acl, 1)?;
        }
        other => return Err(wrong(other)),
    }
    Ok(())
}

fn too_deep() -> GrpcRequestError {
    RequestError::TooDeep { limit: MAX_PREFETCH_DEPTH }.into()
}

fn prefetch_filters(prefetch: &mut [q::PrefetchQuery], acl: Option<&q::Filter>, depth: usize) -> Result<()> {
    if depth > MAX_PREFETCH_DEPTH {
        return Err(too_deep());
    }
    for p in prefetch {
        and_into(&mut p.filter, acl);
        prefetch_filters(&mut p.prefetch, acl, depth + 1)?;
    }
    Ok(())
}

/// The payload selectors of a read.
struct Selectors<'a> {
    /// One per request of the read (one, or one per batch entry).
    requests: Vec<&'a mut Option<q::WithPayloadSelector>>,
    /// Whether Qdrant returns the payload when the selector is absent (measured on 1.18.3:
    /// scroll does; get, search, recommend, discover, query and the groups forms do not).
    default_true: bool,
    /// Groups' `with_lookup`.
    lookup: Option<&'a mut Option<q::WithPayloadSelector>>,
}

/// See [`Selectors`].
fn selectors(request: &mut GrpcRequest) -> Result<Selectors<'_>> {
    use GrpcRequest as R;
    let (requests, default_true, lookup) = match request {
        R::PointsGet(m) => (vec![&mut m.with_payload], false, None),
        R::PointsScroll(m) => (vec![&mut m.with_payload], true, None),
        R::PointsSearch(m) => (vec![&mut m.with_payload], false, None),
        R::PointsSearchBatch(m) => (m.search_points.iter_mut().map(|e| &mut e.with_payload).collect(), false, None),
        R::PointsSearchGroups(m) => (vec![&mut m.with_payload], false, m.with_lookup.as_mut().map(|l| &mut l.with_payload)),
        R::PointsRecommend(m) => (vec![&mut m.with_payload], false, None),
        R::PointsRecommendBatch(m) => (m.recommend_points.iter_mut().map(|e| &mut e.with_payload).collect(), false, None),
        R::PointsRecommendGroups(m) => (vec![&mut m.with_payload], false, m.with_lookup.as_mut().map(|l| &mut l.with_payload)),
        R::PointsDiscover(m) => (vec![&mut m.with_payload], false, None),
        R::PointsDiscoverBatch(m) => (m.discover_points.iter_mut().map(|e| &mut e.with_payload).collect(), false, None),
        R::PointsQuery(m) => (vec![&mut m.with_payload], false, None),
        R::PointsQueryBatch(m) => (m.query_points.iter_mut().map(|e| &mut e.with_payload).collect(), false, None),
        R::PointsQueryGroups(m) => (vec![&mut m.with_payload], false, m.with_lookup.as_mut().map(|l| &mut l.with_payload)),
        other => return Err(wrong(other)),
    };
    Ok(Selectors { requests, default_true, lookup })
}

/// Makes every point of the answer carry the payload paths `keys`, and says how to give the
/// caller what it asked for. A groups read's lookup returns its payload by default.
pub fn force_payload(request: &mut GrpcRequest, keys: &[String]) -> Result<Trim> {
    for key in keys {
        check_plain_path(key)?;
    }
    let Selectors { requests, default_true, lookup } = selectors(request)?;
    let mut trim = Trim::default();
    for selector in requests {
        trim.requests.push(force_selector(selector, default_true, keys)?);
    }
    if let Some(lookup) = lookup {
        trim.lookup = force_selector(lookup, true, keys)?;
    }
    Ok(trim)
}

fn include(fields: Vec<String>) -> Option<q::WithPayloadSelector> {
    Some(q::WithPayloadSelector { selector_options: Some(SelectorOptions::Include(q::PayloadIncludeSelector { fields })) })
}

fn force_selector(selector: &mut Option<q::WithPayloadSelector>, default_true: bool, keys: &[String]) -> Result<PayloadTrim> {
    let current = selector.as_ref().and_then(|s| s.selector_options.clone());
    Ok(match current {
        None if default_true => PayloadTrim::AsReturned,
        Some(SelectorOptions::Enable(true)) => PayloadTrim::AsReturned,
        None | Some(SelectorOptions::Enable(false)) => {
            if keys.is_empty() {
                return Ok(PayloadTrim::AsReturned);
            }
            *selector = include(keys.to_vec());
            PayloadTrim::Drop
        }
        Some(SelectorOptions::Include(asked)) => {
            asked.fields.iter().try_for_each(|p| check_plain_path(p))?;
            let mut paths = asked.fields.clone();
            for key in keys {
                if !paths.iter().any(|p| covers(p, key)) {
                    paths.push(key.clone());
                }
            }
            if paths.len() == asked.fields.len() {
                PayloadTrim::AsReturned
            } else {
                *selector = include(paths);
                PayloadTrim::Include(asked.fields)
            }
        }
        Some(SelectorOptions::Exclude(asked)) => {
            asked.fields.iter().try_for_each(|p| check_plain_path(p))?;
            let kept: Vec<String> =
                asked.fields.iter().filter(|p| !keys.iter().any(|k| covers(p, k) || covers(k, p))).cloned().collect();
            if kept.len() == asked.fields.len() {
                PayloadTrim::AsReturned
            } else {
                *selector = Some(q::WithPayloadSelector {
                    selector_options: Some(SelectorOptions::Exclude(q::PayloadExcludeSelector { fields: kept })),
                });
                PayloadTrim::Exclude(asked.fields)
            }
        }
    })
}

/// A point id of a message, normalised as Qdrant reads it.
pub fn point_id(id: &q::PointId) -> Result<PointId> {
    use q::point_id::PointIdOptions;
    let invalid = || RequestError::InvalidField { field: "id".into(), reason: "must be an unsigned integer or a UUID" };
    match &id.point_id_options {
        Some(PointIdOptions::Num(n)) => Ok(PointId::Num(*n)),
        Some(PointIdOptions::Uuid(u)) => PointId::parse(u).filter(|p| matches!(p, PointId::Uuid(_))).ok_or_else(|| invalid().into()),
        None => Err(invalid().into()),
    }
}

/// A message point id for a normalised one.
pub fn to_point_id(id: &PointId) -> q::PointId {
    use q::point_id::PointIdOptions;
    q::PointId {
        point_id_options: Some(match id {
            PointId::Num(n) => PointIdOptions::Num(*n),
            PointId::Uuid(u) => PointIdOptions::Uuid(u.clone()),
        }),
    }
}

/// Collects the point ids a read uses as inputs.
struct Inputs {
    out: Vec<IdInput<PointId>>,
}

impl Inputs {
    fn id(&mut self, id: &q::PointId, from: &Option<String>) -> Result<()> {
        self.out.push(IdInput { collection: from.clone(), id: point_id(id)? });
        Ok(())
    }

    fn example(&mut self, example: &Option<q::VectorExample>, from: &Option<String>) -> Result<()> {
        if let Some(q::VectorExample { example: Some(q::vector_example::Example::Id(id)) }) = example {
            self.id(id, from)?;
        }
        Ok(())
    }

    fn vector_input(&mut self, input: &Option<q::VectorInput>, from: &Option<String>) -> Result<()> {
        if let Some(q::VectorInput { variant: Some(q::vector_input::Variant::Id(id)) }) = input {
            self.id(id, from)?;
        }
        Ok(())
    }

    fn context(&mut self, context: &Option<q::ContextInput>, from: &Option<String>) -> Result<()> {
        for pair in context.iter().flat_map(|c| &c.pairs) {
            self.vector_input(&pair.positive, from)?;
            self.vector_input(&pair.negative, from)?;
        }
        Ok(())
    }

    fn query(&mut self, query: &Option<q::Query>, from: &Option<String>) -> Result<()> {
        use q::query::Variant as V;
        match query.as_ref().and_then(|q| q.variant.as_ref()) {
            Some(V::Nearest(input)) => self.vector_input(&Some(input.clone()), from),
            Some(V::NearestWithMmr(n)) => self.vector_input(&n.nearest, from),
            Some(V::Recommend(r)) => {
                for input in r.positive.iter().chain(&r.negative) {
                    self.vector_input(&Some(input.clone()), from)?;
                }
                Ok(())
            }
            Some(V::Discover(d)) => {
                self.vector_input(&d.target, from)?;
                self.context(&d.context, from)
            }
            Some(V::Context(c)) => self.context(&Some(c.clone()), from),
            Some(V::RelevanceFeedback(r)) => {
                self.vector_input(&r.target, from)?;
                r.feedback.iter().try_for_each(|f| self.vector_input(&f.example, from))
            }
            Some(V::OrderBy(_) | V::Fusion(_) | V::Sample(_) | V::Formula(_) | V::Rrf(_)) | None => Ok(()),
        }
    }

    /// A query request or prefetch: its own `lookup_from` (prefetches do not inherit it).
    fn query_request(&mut self, query: &Option<q::Query>, lookup_from: &Option<q::LookupLocation>, prefetch: &[q::PrefetchQuery], depth: usize) -> Result<()> {
        if depth > MAX_PREFETCH_DEPTH {
            return Err(too_deep());
        }
        let from = from(lookup_from);
        self.query(query, &from)?;
        for p in prefetch {
            self.query_request(&p.query, &p.lookup_from, &p.prefetch, depth + 1)?;
        }
        Ok(())
    }

    fn recommend(&mut self, positive: &[q::PointId], negative: &[q::PointId], lookup_from: &Option<q::LookupLocation>) -> Result<()> {
        let from = from(lookup_from);
        positive.iter().chain(negative).try_for_each(|id| self.id(id, &from))
    }

    fn discover(&mut self, m: &q::DiscoverPoints) -> Result<()> {
        let from = from(&m.lookup_from);
        self.example(&m.target.as_ref().and_then(|t| t.target.as_ref()).map(|q::target_vector::Target::Single(e)| e.clone()), &from)?;
        for pair in &m.context {
            self.example(&pair.positive, &from)?;
            self.example(&pair.negative, &from)?;
        }
        Ok(())
    }
}

fn from(lookup_from: &Option<q::LookupLocation>) -> Option<String> {
    lookup_from.as_ref().map(|l| l.collection_name.clone())
}

/// Every point id the request uses as a query input, with the collection it is read from
/// (`None`: the request's own).
pub fn id_inputs(request: &GrpcRequest) -> Result<Vec<IdInput<PointId>>> {
    use GrpcRequest as R;
    check_batch(request)?;
    let mut inputs = Inputs { out: Vec::new() };
    match request {
        R::PointsRecommend(m) => inputs.recommend(&m.positive, &m.negative, &m.lookup_from)?,
        R::PointsRecommendBatch(m) => {
            for e in &m.recommend_points {
                inputs.recommend(&e.positive, &e.negative, &e.lookup_from)?;
            }
        }
        R::PointsRecommendGroups(m) => inputs.recommend(&m.positive, &m.negative, &m.lookup_from)?,
        R::PointsDiscover(m) => inputs.discover(m)?,
        R::PointsDiscoverBatch(m) => m.discover_points.iter().try_for_each(|e| inputs.discover(e))?,
        R::PointsQuery(m) => inputs.query_request(&m.query, &m.lookup_from, &m.prefetch, 0)?,
        R::PointsQueryBatch(m) => {
            for e in &m.query_points {
                inputs.query_request(&e.query, &e.lookup_from, &e.prefetch, 0)?;
            }
        }
        R::PointsQueryGroups(m) => inputs.query_request(&m.query, &m.lookup_from, &m.prefetch, 0)?,
        R::PointsGet(_)
        | R::PointsSearch(_)
        | R::PointsSearchBatch(_)
        | R::PointsSearchGroups(_)
        | R::PointsScroll(_)
        | R::PointsCount(_)
        | R::PointsFacet(_)
        | R::PointsSearchMatrixPairs(_)
        | R::PointsSearchMatrixOffsets(_) => {}
        other => return Err(wrong(other)),
    }
    Ok(inputs.out)
}

/// The collections whose records a groups read brings along (`with_lookup`).
pub fn lookups(request: &GrpcRequest) -> Vec<String> {
    use GrpcRequest as R;
    let lookup = match request {
        R::PointsSearchGroups(m) => &m.with_lookup,
        R::PointsRecommendGroups(m) => &m.with_lookup,
        R::PointsQueryGroups(m) => &m.with_lookup,
        _ => return Vec::new(),
    };
    lookup.iter().map(|l| l.collection.clone()).collect()
}

/// Whether the answer lists points (the others give counts, facets or matrices).
pub fn returns_points(request: &GrpcRequest) -> bool {
    use GrpcRequest as R;
    !matches!(request, R::PointsCount(_) | R::PointsFacet(_) | R::PointsSearchMatrixPairs(_) | R::PointsSearchMatrixOffsets(_))
}

/// What Qdrant answers when nothing matches, for a read answered without asking it.
pub fn empty_answer(request: &GrpcRequest) -> Result<Vec<u8>> {
    use prost::Message;
    use GrpcRequest as R;
    let batch = |n: usize| vec![q::BatchResult::default(); n];
    Ok(match request {
        R::PointsGet(_) => q::GetResponse::default().encode_to_vec(),
        R::PointsSearch(_) => q::SearchResponse::default().encode_to_vec(),
        R::PointsSearchBatch(m) => q::SearchBatchResponse { result: batch(m.search_points.len()), ..Default::default() }.encode_to_vec(),
        R::PointsSearchGroups(_) => q::SearchGroupsResponse { result: Some(q::GroupsResult::default()), ..Default::default() }.encode_to_vec(),
        R::PointsScroll(_) => q::ScrollResponse::default().encode_to_vec(),
        R::PointsRecommend(_) => q::RecommendResponse::default().encode_to_vec(),
        R::PointsRecommendBatch(m) => q::RecommendBatchResponse { result: batch(m.recommend_points.len()), ..Default::default() }.encode_to_vec(),
        R::PointsRecommendGroups(_) => q::RecommendGroupsResponse { result: Some(q::GroupsResult::default()), ..Default::default() }.encode_to_vec(),
        R::PointsDiscover(_) => q::DiscoverResponse::default().encode_to_vec(),
        R::PointsDiscoverBatch(m) => q::DiscoverBatchResponse { result: batch(m.discover_points.len()), ..Default::default() }.encode_to_vec(),
        R::PointsCount(_) => q::CountResponse { result: Some(q::CountResult { count: 0 }), ..Default::default() }.encode_to_vec(),
        R::PointsQuery(_) => q::QueryResponse::default().encode_to_vec(),
        R::PointsQueryBatch(m) => q::QueryBatchResponse { result: batch(m.query_points.len()), ..Default::default() }.encode_to_vec(),
        R::PointsQueryGroups(_) => q::QueryGroupsResponse { result: Some(q::GroupsResult::default()), ..Default::default() }.encode_to_vec(),
        R::PointsFacet(_) => q::FacetResponse::default().encode_to_vec(),
        R::PointsSearchMatrixPairs(_) => {
            q::SearchMatrixPairsResponse { result: Some(q::SearchMatrixPairs::default()), ..Default::default() }.encode_to_vec()
        }
        R::PointsSearchMatrixOffsets(_) => {
            q::SearchMatrixOffsetsResponse { result: Some(q::SearchMatrixOffsets::default()), ..Default::default() }.encode_to_vec()
        }
        other => return Err(wrong(other)),
    })
}

/// Leaf conditions in every filter a read carries.
pub fn filter_terms(request: &GrpcRequest) -> usize {
    use super::filter::leaves_of;
    use GrpcRequest as R;
    fn prefetch(items: &[q::PrefetchQuery]) -> usize {
        items.iter().map(|p| leaves_of(&p.filter) + prefetch(&p.prefetch)).sum()
    }
    match request {
        R::PointsSearch(m) => leaves_of(&m.filter),
        R::PointsSearchBatch(m) => m.search_points.iter().map(|e| leaves_of(&e.filter)).sum(),
        R::PointsSearchGroups(m) => leaves_of(&m.filter),
        R::PointsScroll(m) => leaves_of(&m.filter),
        R::PointsRecommend(m) => leaves_of(&m.filter),
        R::PointsRecommendBatch(m) => m.recommend_points.iter().map(|e| leaves_of(&e.filter)).sum(),
        R::PointsRecommendGroups(m) => leaves_of(&m.filter),
        R::PointsDiscover(m) => leaves_of(&m.filter),
        R::PointsDiscoverBatch(m) => m.discover_points.iter().map(|e| leaves_of(&e.filter)).sum(),
        R::PointsCount(m) => leaves_of(&m.filter),
        R::PointsFacet(m) => leaves_of(&m.filter),
        R::PointsSearchMatrixPairs(m) | R::PointsSearchMatrixOffsets(m) => leaves_of(&m.filter),
        R::PointsQuery(m) => leaves_of(&m.filter) + prefetch(&m.prefetch),
        R::PointsQueryBatch(m) => m.query_points.iter().map(|e| leaves_of(&e.filter) + prefetch(&e.prefetch)).sum(),
        R::PointsQueryGroups(m) => leaves_of(&m.filter) + prefetch(&m.prefetch),
        _ => super::write::filter_terms(request),
    }
}
