//! The method table of Qdrant's gRPC API: every method of `qdrant.Points`,
//! `qdrant.Collections`, `qdrant.Snapshots`, `qdrant.Qdrant` and `grpc.health.v1.Health`,
//! classified, with its request message. A method not in the table is unknown: refused with
//! PERMISSION_DENIED before anything is read (the internal services — raft, internal points
//! and collections, shard snapshots — are not in the public protos, so none of them is here).
//!
//! Names are the REST face's operation names where the operation is the same (`search_points`,
//! `create_snapshot`), so one policy (`vecgate:admin` actions) and one dashboard cover both
//! faces. A test checks the table against the protos' services, both ways.

use super::proto::{health, qdrant as q};
use crate::backends::seam::{CollectionAction, Intent};
use prost::Message;

/// What a method's request carries, besides what its class says.
macro_rules! grpc_methods {
    ($( $service:literal / $method:literal => $op:ident($request:ty), $name:literal, $intent:expr; )*) => {
        /// One method of the table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum GrpcOp {
            $( $op, )*
        }

        /// A decoded request, by method.
        #[derive(Debug, Clone, PartialEq)]
        pub enum GrpcRequest {
            $( $op($request), )*
        }

        impl GrpcOp {
            /// Every method of the table.
            pub const ALL: &'static [GrpcOp] = &[ $( GrpcOp::$op, )* ];

            /// `/package.Service/Method`, the HTTP/2 path of a call.
            pub fn path(self) -> &'static str {
                match self {
                    $( GrpcOp::$op => concat!("/", $service, "/", $method), )*
                }
            }

            /// Stable snake_case name (a metric label, the `vecgate:admin` action).
            pub fn name(self) -> &'static str {
                match self {
                    $( GrpcOp::$op => $name, )*
                }
            }

            pub fn intent(self) -> Intent {
                match self {
                    $( GrpcOp::$op => $intent, )*
                }
            }

            /// The method at an HTTP/2 path.
            pub fn from_path(path: &str) -> Option<GrpcOp> {
                match path {
                    $( concat!("/", $service, "/", $method) => Some(GrpcOp::$op), )*
                    _ => None,
                }
            }

            /// Decodes this method's request message.
            pub fn decode(self, bytes: &[u8]) -> Result<GrpcRequest, prost::DecodeError> {
                Ok(match self {
                    $( GrpcOp::$op => GrpcRequest::$op(<$request>::decode(bytes)?), )*
                })
            }

            /// The method's empty request.
            pub fn empty(self) -> GrpcRequest {
                match self {
                    $( GrpcOp::$op => GrpcRequest::$op(<$request>::default()), )*
                }
            }
        }

        impl GrpcRequest {
            pub fn op(&self) -> GrpcOp {
                match self {
                    $( GrpcRequest::$op(_) => GrpcOp::$op, )*
                }
            }

            pub fn encode(&self) -> Vec<u8> {
                match self {
                    $( GrpcRequest::$op(m) => m.encode_to_vec(), )*
                }
            }
        }
    };
}

use CollectionAction::{Create, Delete, Read, Update};
use Intent::{Admin, Collection, Health, Read as Reads, Write};

grpc_methods! {
    // qdrant.Points: records.
    "qdrant.Points" / "Upsert" => PointsUpsert(q::UpsertPoints), "upsert_points", Write;
    "qdrant.Points" / "Delete" => PointsDelete(q::DeletePoints), "delete_points", Intent::Delete;
    "qdrant.Points" / "Get" => PointsGet(q::GetPoints), "get_points", Reads;
    "qdrant.Points" / "UpdateVectors" => PointsUpdateVectors(q::UpdatePointVectors), "update_vectors", Write;
    "qdrant.Points" / "DeleteVectors" => PointsDeleteVectors(q::DeletePointVectors), "delete_vectors", Write;
    "qdrant.Points" / "SetPayload" => PointsSetPayload(q::SetPayloadPoints), "set_payload", Write;
    "qdrant.Points" / "OverwritePayload" => PointsOverwritePayload(q::SetPayloadPoints), "overwrite_payload", Write;
    "qdrant.Points" / "DeletePayload" => PointsDeletePayload(q::DeletePayloadPoints), "delete_payload", Write;
    "qdrant.Points" / "ClearPayload" => PointsClearPayload(q::ClearPayloadPoints), "clear_payload", Write;
    "qdrant.Points" / "UpdateBatch" => PointsUpdateBatch(q::UpdateBatchPoints), "batch_update", Write;
    "qdrant.Points" / "Search" => PointsSearch(q::SearchPoints), "search_points", Reads;
    "qdrant.Points" / "SearchBatch" => PointsSearchBatch(q::SearchBatchPoints), "search_batch_points", Reads;
    "qdrant.Points" / "SearchGroups" => PointsSearchGroups(q::SearchPointGroups), "search_point_groups", Reads;
    "qdrant.Points" / "Scroll" => PointsScroll(q::ScrollPoints), "scroll_points", Reads;
    "qdrant.Points" / "Recommend" => PointsRecommend(q::RecommendPoints), "recommend_points", Reads;
    "qdrant.Points" / "RecommendBatch" => PointsRecommendBatch(q::RecommendBatchPoints), "recommend_batch_points", Reads;
    "qdrant.Points" / "RecommendGroups" => PointsRecommendGroups(q::RecommendPointGroups), "recommend_point_groups", Reads;
    "qdrant.Points" / "Discover" => PointsDiscover(q::DiscoverPoints), "discover_points", Reads;
    "qdrant.Points" / "DiscoverBatch" => PointsDiscoverBatch(q::DiscoverBatchPoints), "discover_batch_points", Reads;
    "qdrant.Points" / "Count" => PointsCount(q::CountPoints), "count_points", Reads;
    "qdrant.Points" / "Query" => PointsQuery(q::QueryPoints), "query_points", Reads;
    "qdrant.Points" / "QueryBatch" => PointsQueryBatch(q::QueryBatchPoints), "query_batch_points", Reads;
    "qdrant.Points" / "QueryGroups" => PointsQueryGroups(q::QueryPointGroups), "query_points_groups", Reads;
    "qdrant.Points" / "Facet" => PointsFacet(q::FacetCounts), "facet", Reads;
    "qdrant.Points" / "SearchMatrixPairs" => PointsSearchMatrixPairs(q::SearchMatrixPoints), "search_matrix_pairs", Reads;
    "qdrant.Points" / "SearchMatrixOffsets" => PointsSearchMatrixOffsets(q::SearchMatrixPoints), "search_matrix_offsets", Reads;
    // qdrant.Points: the collection's schema.
    "qdrant.Points" / "CreateFieldIndex" => PointsCreateFieldIndex(q::CreateFieldIndexCollection), "create_field_index", Collection(Update);
    "qdrant.Points" / "DeleteFieldIndex" => PointsDeleteFieldIndex(q::DeleteFieldIndexCollection), "delete_field_index", Collection(Update);
    "qdrant.Points" / "CreateVectorName" => PointsCreateVectorName(q::CreateVectorNameRequest), "create_vector_name", Collection(Update);
    "qdrant.Points" / "DeleteVectorName" => PointsDeleteVectorName(q::DeleteVectorNameRequest), "delete_vector_name", Collection(Update);
    // qdrant.Collections.
    "qdrant.Collections" / "Get" => CollectionsGet(q::GetCollectionInfoRequest), "get_collection", Collection(Read);
    "qdrant.Collections" / "List" => CollectionsList(q::ListCollectionsRequest), "get_collections", Collection(Read);
    "qdrant.Collections" / "Create" => CollectionsCreate(q::CreateCollection), "create_collection", Collection(Create);
    "qdrant.Collections" / "Update" => CollectionsUpdate(q::UpdateCollection), "update_collection", Collection(Update);
    "qdrant.Collections" / "Delete" => CollectionsDelete(q::DeleteCollection), "delete_collection", Collection(Delete);
    "qdrant.Collections" / "CollectionExists" => CollectionsExists(q::CollectionExistsRequest), "collection_exists", Collection(Read);
    "qdrant.Collections" / "ListCollectionAliases" => CollectionsListCollectionAliases(q::ListCollectionAliasesRequest), "get_collection_aliases", Collection(Read);
    "qdrant.Collections" / "ListAliases" => CollectionsListAliases(q::ListAliasesRequest), "get_collections_aliases", Collection(Read);
    "qdrant.Collections" / "UpdateAliases" => CollectionsUpdateAliases(q::ChangeAliases), "update_aliases", Admin;
    "qdrant.Collections" / "CollectionClusterInfo" => CollectionsClusterInfo(q::CollectionClusterInfoRequest), "collection_cluster_info", Admin;
    "qdrant.Collections" / "UpdateCollectionClusterSetup" => CollectionsUpdateClusterSetup(q::UpdateCollectionClusterSetupRequest), "update_collection_cluster", Admin;
    "qdrant.Collections" / "CreateShardKey" => CollectionsCreateShardKey(q::CreateShardKeyRequest), "create_shard_key", Admin;
    "qdrant.Collections" / "DeleteShardKey" => CollectionsDeleteShardKey(q::DeleteShardKeyRequest), "delete_shard_key", Admin;
    "qdrant.Collections" / "ListShardKeys" => CollectionsListShardKeys(q::ListShardKeysRequest), "list_shard_keys", Admin;
    // qdrant.Snapshots: all administration.
    "qdrant.Snapshots" / "Create" => SnapshotsCreate(q::CreateSnapshotRequest), "create_snapshot", Admin;
    "qdrant.Snapshots" / "List" => SnapshotsList(q::ListSnapshotsRequest), "list_snapshots", Admin;
    "qdrant.Snapshots" / "Delete" => SnapshotsDelete(q::DeleteSnapshotRequest), "delete_snapshot", Admin;
    "qdrant.Snapshots" / "CreateFull" => SnapshotsCreateFull(q::CreateFullSnapshotRequest), "create_full_snapshot", Admin;
    "qdrant.Snapshots" / "ListFull" => SnapshotsListFull(q::ListFullSnapshotsRequest), "list_full_snapshots", Admin;
    "qdrant.Snapshots" / "DeleteFull" => SnapshotsDeleteFull(q::DeleteFullSnapshotRequest), "delete_full_snapshot", Admin;
    // Health: no token needed, forwarded without a body.
    "qdrant.Qdrant" / "HealthCheck" => QdrantHealthCheck(q::HealthCheckRequest), "health_check", Health;
    "grpc.health.v1.Health" / "Check" => HealthCheck(health::HealthCheckRequest), "grpc_health_check", Health;
}

impl GrpcRequest {
    /// The collection the request names, for the methods whose message names one.
    pub fn collection_name(&self) -> Option<&str> {
        use GrpcRequest as R;
        Some(match self {
            R::PointsUpsert(m) => &m.collection_name,
            R::PointsDelete(m) => &m.collection_name,
            R::PointsGet(m) => &m.collection_name,
            R::PointsUpdateVectors(m) => &m.collection_name,
            R::PointsDeleteVectors(m) => &m.collection_name,
            R::PointsSetPayload(m) | R::PointsOverwritePayload(m) => &m.collection_name,
            R::PointsDeletePayload(m) => &m.collection_name,
            R::PointsClearPayload(m) => &m.collection_name,
            R::PointsUpdateBatch(m) => &m.collection_name,
            R::PointsSearch(m) => &m.collection_name,
            R::PointsSearchBatch(m) => &m.collection_name,
            R::PointsSearchGroups(m) => &m.collection_name,
            R::PointsScroll(m) => &m.collection_name,
            R::PointsRecommend(m) => &m.collection_name,
            R::PointsRecommendBatch(m) => &m.collection_name,
            R::PointsRecommendGroups(m) => &m.collection_name,
            R::PointsDiscover(m) => &m.collection_name,
            R::PointsDiscoverBatch(m) => &m.collection_name,
            R::PointsCount(m) => &m.collection_name,
            R::PointsQuery(m) => &m.collection_name,
            R::PointsQueryBatch(m) => &m.collection_name,
            R::PointsQueryGroups(m) => &m.collection_name,
            R::PointsFacet(m) => &m.collection_name,
            R::PointsSearchMatrixPairs(m) | R::PointsSearchMatrixOffsets(m) => &m.collection_name,
            R::PointsCreateFieldIndex(m) => &m.collection_name,
            R::PointsDeleteFieldIndex(m) => &m.collection_name,
            R::PointsCreateVectorName(m) => &m.collection_name,
            R::PointsDeleteVectorName(m) => &m.collection_name,
            R::CollectionsGet(m) => &m.collection_name,
            R::CollectionsCreate(m) => &m.collection_name,
            R::CollectionsUpdate(m) => &m.collection_name,
            R::CollectionsDelete(m) => &m.collection_name,
            R::CollectionsExists(m) => &m.collection_name,
            R::CollectionsListCollectionAliases(m) => &m.collection_name,
            R::CollectionsClusterInfo(m) => &m.collection_name,
            R::CollectionsUpdateClusterSetup(m) => &m.collection_name,
            R::CollectionsCreateShardKey(m) => &m.collection_name,
            R::CollectionsDeleteShardKey(m) => &m.collection_name,
            R::CollectionsListShardKeys(m) => &m.collection_name,
            R::SnapshotsCreate(m) => &m.collection_name,
            R::SnapshotsList(m) => &m.collection_name,
            R::SnapshotsDelete(m) => &m.collection_name,
            R::CollectionsList(_)
            | R::CollectionsListAliases(_)
            | R::CollectionsUpdateAliases(_)
            | R::SnapshotsCreateFull(_)
            | R::SnapshotsListFull(_)
            | R::SnapshotsDeleteFull(_)
            | R::QdrantHealthCheck(_)
            | R::HealthCheck(_) => return None,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::schema;
    use super::*;
    use std::collections::BTreeSet;

    /// Every method of the protos' services is in the table, and the table holds nothing
    /// else: a new Qdrant method cannot go through unclassified.
    #[test]
    fn the_table_classifies_every_method_of_the_protos() {
        let protos: BTreeSet<String> = schema::method_paths().unwrap().into_iter().collect();
        let table: BTreeSet<String> = GrpcOp::ALL.iter().map(|op| op.path().to_string()).collect();
        let unclassified: Vec<_> = protos.difference(&table).collect();
        let invented: Vec<_> = table.difference(&protos).collect();
        assert!(unclassified.is_empty(), "methods of the protos without a class: {unclassified:?}");
        assert!(invented.is_empty(), "methods in the table that the protos do not have: {invented:?}");
        assert_eq!(table.len(), GrpcOp::ALL.len(), "a path appears twice in the table");
        let count = |intent: fn(Intent) -> bool| GrpcOp::ALL.iter().filter(|op| intent(op.intent())).count();
        // The counts the note reports.
        assert_eq!(
            (
                GrpcOp::ALL.len(),
                count(|i| i == Intent::Read),
                count(|i| i == Intent::Write),
                count(|i| i == Intent::Delete),
                count(|i| matches!(i, Intent::Collection(_))),
                count(|i| i == Intent::Admin),
                count(|i| i == Intent::Health),
            ),
            (52, 17, 8, 1, 12, 12, 2)
        );
    }

    #[test]
    fn every_request_type_matches_its_method_in_the_protos() {
        for op in GrpcOp::ALL {
            let request = op.empty();
            assert_eq!(request.op(), *op);
            // An empty message of the right type decodes, and passes the field check.
            assert!(schema::check_known_fields(op.path(), &request.encode()).is_ok(), "{op:?}");
        }
        // Field 1 of every request with a collection is its name: the table's request types
        // are the protos' input types.
        for op in GrpcOp::ALL {
            let named = op.decode(b"\x0a\x01c").ok().and_then(|r| r.collection_name().map(String::from));
            if op.empty().collection_name().is_some() {
                assert_eq!(named.as_deref(), Some("c"), "{op:?}");
            }
        }
    }

    #[test]
    fn unknown_paths_are_no_method() {
        for path in ["/qdrant.PointsInternal/Upsert", "/qdrant.Raft/Send", "/qdrant.Points/upsert", "/qdrant.Points/Upsert/", ""] {
            assert_eq!(GrpcOp::from_path(path), None, "{path}");
        }
        assert_eq!(GrpcOp::from_path("/qdrant.Points/Query"), Some(GrpcOp::PointsQuery));
    }
}
