//! Reading Qdrant's gRPC answers: every point an answer lists judged (hits of searches,
//! recommendations, discoveries and queries, their batch entries and groups, scrolled and
//! retrieved points, groups' lookups), the refused ones removed, the payload trimmed back to
//! what the caller asked for; and the listings of collections and aliases kept to the
//! collections the caller may read. An answer whose message does not decode fails closed.

use super::error::GrpcAnswerError;
use super::methods::GrpcOp;
use super::payload::{to_json, trim, ProtoPayload};
use super::proto::qdrant as q;
use super::read::point_id;
use crate::backends::qdrant::point_id::PointId;
use crate::backends::qdrant::request::{PayloadTrim, Trim};
use crate::backends::qdrant::NestedPayload;
use crate::backends::seam::{Filtered, FilteredBody, Judge};
use crate::grpc::{frame, unframe};
use bytes::Bytes;
use prost::Message;

/// How to read the answer of a read that lists points.
#[derive(Debug, Clone)]
pub struct Then {
    pub op: GrpcOp,
    pub trim: Trim,
    /// `attr_prefix` of the collection's records.
    pub prefix: String,
    /// `with_lookup` collections: their records are judged with their own plans.
    pub lookups: Vec<String>,
}

/// A point of an answer: its id and payload.
trait Point {
    fn point_id(&self) -> Option<&q::PointId>;
    fn payload_mut(&mut self) -> &mut ProtoPayload;
    fn payload(&self) -> &ProtoPayload;
}

impl Point for q::ScoredPoint {
    fn point_id(&self) -> Option<&q::PointId> {
        self.id.as_ref()
    }
    fn payload_mut(&mut self) -> &mut ProtoPayload {
        &mut self.payload
    }
    fn payload(&self) -> &ProtoPayload {
        &self.payload
    }
}

impl Point for q::RetrievedPoint {
    fn point_id(&self) -> Option<&q::PointId> {
        self.id.as_ref()
    }
    fn payload_mut(&mut self) -> &mut ProtoPayload {
        &mut self.payload
    }
    fn payload(&self) -> &ProtoPayload {
        &self.payload
    }
}

/// Judges one point: `lookup` names the collection of a groups' lookup record.
struct Checker<'a> {
    judge: &'a mut dyn Judge,
    prefix: &'a str,
    stripped: usize,
}

impl Checker<'_> {
    fn admits<P: Point>(&mut self, point: &P, lookup: Option<&str>) -> Result<bool, GrpcAnswerError> {
        let id: PointId = point
            .point_id()
            .and_then(|id| point_id(id).ok())
            .ok_or(GrpcAnswerError::Shape("a point without a valid id"))?;
        let payload = to_json(point.payload())?;
        let attributes = NestedPayload::new(Some(&payload), self.prefix);
        Ok(match lookup {
            None => self.judge.admits(&id, &attributes),
            Some(collection) => self.judge.admits_lookup(collection, &id, &attributes),
        })
    }

    /// Keeps the points the caller may see, trimmed.
    fn points<P: Point>(&mut self, points: &mut Vec<P>, trimmed: &PayloadTrim) -> Result<(), GrpcAnswerError> {
        let mut keep = Vec::with_capacity(points.len());
        for point in points.iter() {
            keep.push(self.admits(point, None)?);
        }
        let mut verdicts = keep.into_iter();
        let before = points.len();
        points.retain(|_| verdicts.next().unwrap_or(false));
        self.stripped += before - points.len();
        points.iter_mut().for_each(|p| trim(p.payload_mut(), trimmed));
        Ok(())
    }

    fn batches(&mut self, batches: &mut [q::BatchResult], trims: &Trim) -> Result<(), GrpcAnswerError> {
        for (i, batch) in batches.iter_mut().enumerate() {
            self.points(&mut batch.result, trims.request(i))?;
        }
        Ok(())
    }

    /// Groups: hits judged (a group left without hits is removed), lookups judged with their
    /// collection's plan (a refused one is removed from its group).
    fn groups(&mut self, groups: &mut Option<q::GroupsResult>, trims: &Trim, lookups: &[String]) -> Result<(), GrpcAnswerError> {
        let Some(result) = groups else { return Ok(()) };
        for group in &mut result.groups {
            self.points(&mut group.hits, trims.request(0))?;
        }
        result.groups.retain(|g| !g.hits.is_empty());
        let collection = lookups.first().map(String::as_str);
        for group in &mut result.groups {
            let Some(lookup) = &group.lookup else { continue };
            let allowed = match collection {
                Some(collection) => self.admits(lookup, Some(collection))?,
                None => false,
            };
            if allowed {
                if let Some(lookup) = &mut group.lookup {
                    trim(&mut lookup.payload, &trims.lookup);
                }
            } else {
                group.lookup = None;
                self.stripped += 1;
            }
        }
        Ok(())
    }
}

fn message<M: Message + Default>(body: &[u8]) -> Result<M, GrpcAnswerError> {
    Ok(M::decode(unframe(body)?)?)
}

/// The answer as the caller may see it.
pub fn filter(then: Then, body: &[u8], judge: &mut dyn Judge) -> Result<Filtered, GrpcAnswerError> {
    let mut checker = Checker { judge, prefix: &then.prefix, stripped: 0 };
    let trims = &then.trim;
    let first = trims.request(0);
    let encoded = match then.op {
        GrpcOp::PointsGet => {
            let mut m: q::GetResponse = message(body)?;
            checker.points(&mut m.result, first)?;
            m.encode_to_vec()
        }
        GrpcOp::PointsScroll => {
            let mut m: q::ScrollResponse = message(body)?;
            checker.points(&mut m.result, first)?;
            m.encode_to_vec()
        }
        GrpcOp::PointsSearch => {
            let mut m: q::SearchResponse = message(body)?;
            checker.points(&mut m.result, first)?;
            m.encode_to_vec()
        }
        GrpcOp::PointsRecommend => {
            let mut m: q::RecommendResponse = message(body)?;
            checker.points(&mut m.result, first)?;
            m.encode_to_vec()
        }
        GrpcOp::PointsDiscover => {
            let mut m: q::DiscoverResponse = message(body)?;
            checker.points(&mut m.result, first)?;
            m.encode_to_vec()
        }
        GrpcOp::PointsQuery => {
            let mut m: q::QueryResponse = message(body)?;
            checker.points(&mut m.result, first)?;
            m.encode_to_vec()
        }
        GrpcOp::PointsSearchBatch => {
            let mut m: q::SearchBatchResponse = message(body)?;
            checker.batches(&mut m.result, trims)?;
            m.encode_to_vec()
        }
        GrpcOp::PointsRecommendBatch => {
            let mut m: q::RecommendBatchResponse = message(body)?;
            checker.batches(&mut m.result, trims)?;
            m.encode_to_vec()
        }
        GrpcOp::PointsDiscoverBatch => {
            let mut m: q::DiscoverBatchResponse = message(body)?;
            checker.batches(&mut m.result, trims)?;
            m.encode_to_vec()
        }
        GrpcOp::PointsQueryBatch => {
            let mut m: q::QueryBatchResponse = message(body)?;
            checker.batches(&mut m.result, trims)?;
            m.encode_to_vec()
        }
        GrpcOp::PointsSearchGroups => {
            let mut m: q::SearchGroupsResponse = message(body)?;
            checker.groups(&mut m.result, trims, &then.lookups)?;
            m.encode_to_vec()
        }
        GrpcOp::PointsRecommendGroups => {
            let mut m: q::RecommendGroupsResponse = message(body)?;
            checker.groups(&mut m.result, trims, &then.lookups)?;
            m.encode_to_vec()
        }
        GrpcOp::PointsQueryGroups => {
            let mut m: q::QueryGroupsResponse = message(body)?;
            checker.groups(&mut m.result, trims, &then.lookups)?;
            m.encode_to_vec()
        }
        _ => return Err(GrpcAnswerError::Shape("an answer that lists no points")),
    };
    // Every point was checked. Nothing removed and nothing to trim: Qdrant's own bytes go
    // back. Not for a retrieve, where points the caller may not read are removed routinely:
    // always re-encoded, so that its bytes do not tell a removed point from a missing one.
    let body = if checker.stripped == 0 && trims.is_nothing() && then.op != GrpcOp::PointsGet {
        FilteredBody::Unchanged
    } else {
        FilteredBody::Encoded(frame(&encoded))
    };
    Ok(Filtered { body, stripped: checker.stripped, returned: None })
}

/// A listing of collections (`List`) or aliases (`ListAliases`) with only the entries whose
/// collection `readable` admits, encoded for the wire.
pub fn filter_listing(op: GrpcOp, body: &[u8], readable: &mut dyn FnMut(&str) -> bool) -> Result<Bytes, GrpcAnswerError> {
    let encoded = match op {
        GrpcOp::CollectionsList => {
            let mut m: q::ListCollectionsResponse = message(body)?;
            m.collections.retain(|c| readable(&c.name));
            m.encode_to_vec()
        }
        GrpcOp::CollectionsListAliases => {
            let mut m: q::ListAliasesResponse = message(body)?;
            m.aliases.retain(|a| readable(&a.collection_name));
            m.encode_to_vec()
        }
        _ => return Err(GrpcAnswerError::Shape("an answer that lists no collections")),
    };
    Ok(frame(&encoded))
}

/// The ids of a scroll's answer (a by-filter write's listing).
pub fn scrolled_ids(body: &[u8]) -> Result<Vec<PointId>, GrpcAnswerError> {
    let m: q::ScrollResponse = message(body)?;
    m.result
        .iter()
        .map(|p| p.id.as_ref().and_then(|id| point_id(id).ok()).ok_or(GrpcAnswerError::Shape("a point without a valid id")))
        .collect()
}

/// Points with their payloads as JSON.
pub type Retrieved = Vec<(PointId, serde_json::Map<String, serde_json::Value>)>;

/// The points of a retrieve's answer, with their payloads as JSON.
pub fn retrieved(body: &[u8]) -> Result<Retrieved, GrpcAnswerError> {
    let m: q::GetResponse = message(body)?;
    m.result
        .iter()
        .map(|p| {
            let id = p.id.as_ref().and_then(|id| point_id(id).ok()).ok_or(GrpcAnswerError::Shape("a point without a valid id"))?;
            Ok((id, to_json(&p.payload)?))
        })
        .collect()
}
