//! Qdrant's REST routes (v1.19): which operation a request is, and what the proxy must do with
//! it. The 69 operations of Qdrant's OpenAPI document and the 32 routes its server serves
//! without documenting them are all listed; anything else is unknown, and the proxy refuses it.
//!
//! Qdrant's actix server runs `NormalizePath::trim()` before routing (`//` merged, a trailing
//! `/` dropped), so a request is classified on [`normalise_path`]'s result, never on the raw
//! path. Percent-encoded characters and `.`/`..` segments are refused outright: no route needs
//! them, and actix decodes the former inside path parameters (a name the proxy and the server
//! would read differently).

use super::point_id::PointId;
use crate::backends::Verb;
use http::Method;

/// One operation of Qdrant's REST API: the 69 of its OpenAPI document, then the hidden ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    // Health and service.
    Root,
    Healthz,
    Livez,
    Readyz,
    Telemetry,
    Metrics,
    GetIssues,
    ClearIssues,
    GetQuotas,
    UpdateQuotas,
    // Cluster.
    ClusterStatus,
    ClusterTelemetry,
    RecoverCurrentPeer,
    RemovePeer,
    // Collections.
    GetCollections,
    GetCollection,
    CreateCollection,
    UpdateCollection,
    DeleteCollection,
    CollectionExists,
    UpdateAliases,
    GetCollectionAliases,
    GetCollectionsAliases,
    CreateFieldIndex,
    DeleteFieldIndex,
    CreateVectorName,
    DeleteVectorName,
    CollectionClusterInfo,
    UpdateCollectionCluster,
    GetOptimizations,
    CreateShardKey,
    ListShardKeys,
    DeleteShardKey,
    // Snapshots.
    RecoverFromUploadedSnapshot,
    RecoverFromSnapshot,
    ListSnapshots,
    CreateSnapshot,
    DeleteSnapshot,
    GetSnapshot,
    ListFullSnapshots,
    CreateFullSnapshot,
    DeleteFullSnapshot,
    GetFullSnapshot,
    StreamShardSnapshot,
    RecoverShardFromUploadedSnapshot,
    RecoverShardFromSnapshot,
    ListShardSnapshots,
    CreateShardSnapshot,
    DeleteShardSnapshot,
    GetShardSnapshot,
    // Points.
    GetPoint,
    GetPoints,
    UpsertPoints,
    DeletePoints,
    UpdateVectors,
    DeleteVectors,
    SetPayload,
    OverwritePayload,
    DeletePayload,
    ClearPayload,
    BatchUpdate,
    ScrollPoints,
    CountPoints,
    Facet,
    QueryPoints,
    QueryBatchPoints,
    QueryPointsGroups,
    SearchMatrixPairs,
    SearchMatrixOffsets,
    // Hidden: legacy search, recommend and discover (schemas in the v1.18 OpenAPI).
    SearchPoints,
    SearchBatchPoints,
    SearchPointGroups,
    RecommendPoints,
    RecommendBatchPoints,
    RecommendPointGroups,
    DiscoverPoints,
    DiscoverBatchPoints,
    // Hidden: per-shard access.
    ShardGetPoints,
    ShardScrollPoints,
    ShardCountPoints,
    CleanupShard,
    // Hidden: operational.
    GetAuditLogs,
    ListClusterMetadataKeys,
    GetClusterMetadataKey,
    PutClusterMetadataKey,
    DeleteClusterMetadataKey,
    GetCollectionMemory,
    GetDebuggerConfig,
    UpdateDebuggerConfig,
    GetSlowRequests,
    GetStacktrace,
    GetLoggerConfig,
    UpdateLoggerConfig,
    TruncateUnappliedWal,
    CreatePartialSnapshot,
    RecoverPartialSnapshot,
    RecoverPartialSnapshotFrom,
    GetPartialSnapshotManifest,
    // Hidden, staging builds only.
    GetShardWal,
    GetShardRecoveryPoint,
    DebugCollection,
}

pub use crate::backends::seam::Intent;
pub use crate::backends::CollectionAction;

impl Operation {
    /// How many operations Qdrant's OpenAPI document lists; they come first in [`Self::ALL`].
    pub const DOCUMENTED: usize = 69;

    /// Every operation, in the order of the enum (documented first, then hidden).
    pub const ALL: [Operation; 101] = [
        Operation::Root,
        Operation::Healthz,
        Operation::Livez,
        Operation::Readyz,
        Operation::Telemetry,
        Operation::Metrics,
        Operation::GetIssues,
        Operation::ClearIssues,
        Operation::GetQuotas,
        Operation::UpdateQuotas,
        Operation::ClusterStatus,
        Operation::ClusterTelemetry,
        Operation::RecoverCurrentPeer,
        Operation::RemovePeer,
        Operation::GetCollections,
        Operation::GetCollection,
        Operation::CreateCollection,
        Operation::UpdateCollection,
        Operation::DeleteCollection,
        Operation::CollectionExists,
        Operation::UpdateAliases,
        Operation::GetCollectionAliases,
        Operation::GetCollectionsAliases,
        Operation::CreateFieldIndex,
        Operation::DeleteFieldIndex,
        Operation::CreateVectorName,
        Operation::DeleteVectorName,
        Operation::CollectionClusterInfo,
        Operation::UpdateCollectionCluster,
        Operation::GetOptimizations,
        Operation::CreateShardKey,
        Operation::ListShardKeys,
        Operation::DeleteShardKey,
        Operation::RecoverFromUploadedSnapshot,
        Operation::RecoverFromSnapshot,
        Operation::ListSnapshots,
        Operation::CreateSnapshot,
        Operation::DeleteSnapshot,
        Operation::GetSnapshot,
        Operation::ListFullSnapshots,
        Operation::CreateFullSnapshot,
        Operation::DeleteFullSnapshot,
        Operation::GetFullSnapshot,
        Operation::StreamShardSnapshot,
        Operation::RecoverShardFromUploadedSnapshot,
        Operation::RecoverShardFromSnapshot,
        Operation::ListShardSnapshots,
        Operation::CreateShardSnapshot,
        Operation::DeleteShardSnapshot,
        Operation::GetShardSnapshot,
        Operation::GetPoint,
        Operation::GetPoints,
        Operation::UpsertPoints,
        Operation::DeletePoints,
        Operation::UpdateVectors,
        Operation::DeleteVectors,
        Operation::SetPayload,
        Operation::OverwritePayload,
        Operation::DeletePayload,
        Operation::ClearPayload,
        Operation::BatchUpdate,
        Operation::ScrollPoints,
        Operation::CountPoints,
        Operation::Facet,
        Operation::QueryPoints,
        Operation::QueryBatchPoints,
        Operation::QueryPointsGroups,
        Operation::SearchMatrixPairs,
        Operation::SearchMatrixOffsets,
        Operation::SearchPoints,
        Operation::SearchBatchPoints,
        Operation::SearchPointGroups,
        Operation::RecommendPoints,
        Operation::RecommendBatchPoints,
        Operation::RecommendPointGroups,
        Operation::DiscoverPoints,
        Operation::DiscoverBatchPoints,
        Operation::ShardGetPoints,
        Operation::ShardScrollPoints,
        Operation::ShardCountPoints,
        Operation::CleanupShard,
        Operation::GetAuditLogs,
        Operation::ListClusterMetadataKeys,
        Operation::GetClusterMetadataKey,
        Operation::PutClusterMetadataKey,
        Operation::DeleteClusterMetadataKey,
        Operation::GetCollectionMemory,
        Operation::GetDebuggerConfig,
        Operation::UpdateDebuggerConfig,
        Operation::GetSlowRequests,
        Operation::GetStacktrace,
        Operation::GetLoggerConfig,
        Operation::UpdateLoggerConfig,
        Operation::TruncateUnappliedWal,
        Operation::CreatePartialSnapshot,
        Operation::RecoverPartialSnapshot,
        Operation::RecoverPartialSnapshotFrom,
        Operation::GetPartialSnapshotManifest,
        Operation::GetShardWal,
        Operation::GetShardRecoveryPoint,
        Operation::DebugCollection,
    ];

    /// Stable snake_case name: Qdrant's `operationId` where it has one (the legacy routes'
    /// from the v1.18 document), else the handler's name. A metric label, and the action
    /// checked on `vecgate:admin`.
    pub fn name(self) -> &'static str {
        use Operation as O;
        match self {
            O::Root => "root",
            O::Healthz => "healthz",
            O::Livez => "livez",
            O::Readyz => "readyz",
            O::Telemetry => "telemetry",
            O::Metrics => "metrics",
            O::GetIssues => "get_issues",
            O::ClearIssues => "clear_issues",
            O::GetQuotas => "get_quotas",
            O::UpdateQuotas => "update_quotas",
            O::ClusterStatus => "cluster_status",
            O::ClusterTelemetry => "cluster_telemetry",
            O::RecoverCurrentPeer => "recover_current_peer",
            O::RemovePeer => "remove_peer",
            O::GetCollections => "get_collections",
            O::GetCollection => "get_collection",
            O::CreateCollection => "create_collection",
            O::UpdateCollection => "update_collection",
            O::DeleteCollection => "delete_collection",
            O::CollectionExists => "collection_exists",
            O::UpdateAliases => "update_aliases",
            O::GetCollectionAliases => "get_collection_aliases",
            O::GetCollectionsAliases => "get_collections_aliases",
            O::CreateFieldIndex => "create_field_index",
            O::DeleteFieldIndex => "delete_field_index",
            O::CreateVectorName => "create_vector_name",
            O::DeleteVectorName => "delete_vector_name",
            O::CollectionClusterInfo => "collection_cluster_info",
            O::UpdateCollectionCluster => "update_collection_cluster",
            O::GetOptimizations => "get_optimizations",
            O::CreateShardKey => "create_shard_key",
            O::ListShardKeys => "list_shard_keys",
            O::DeleteShardKey => "delete_shard_key",
            O::RecoverFromUploadedSnapshot => "recover_from_uploaded_snapshot",
            O::RecoverFromSnapshot => "recover_from_snapshot",
            O::ListSnapshots => "list_snapshots",
            O::CreateSnapshot => "create_snapshot",
            O::DeleteSnapshot => "delete_snapshot",
            O::GetSnapshot => "get_snapshot",
            O::ListFullSnapshots => "list_full_snapshots",
            O::CreateFullSnapshot => "create_full_snapshot",
            O::DeleteFullSnapshot => "delete_full_snapshot",
            O::GetFullSnapshot => "get_full_snapshot",
            O::StreamShardSnapshot => "stream_shard_snapshot",
            O::RecoverShardFromUploadedSnapshot => "recover_shard_from_uploaded_snapshot",
            O::RecoverShardFromSnapshot => "recover_shard_from_snapshot",
            O::ListShardSnapshots => "list_shard_snapshots",
            O::CreateShardSnapshot => "create_shard_snapshot",
            O::DeleteShardSnapshot => "delete_shard_snapshot",
            O::GetShardSnapshot => "get_shard_snapshot",
            O::GetPoint => "get_point",
            O::GetPoints => "get_points",
            O::UpsertPoints => "upsert_points",
            O::DeletePoints => "delete_points",
            O::UpdateVectors => "update_vectors",
            O::DeleteVectors => "delete_vectors",
            O::SetPayload => "set_payload",
            O::OverwritePayload => "overwrite_payload",
            O::DeletePayload => "delete_payload",
            O::ClearPayload => "clear_payload",
            O::BatchUpdate => "batch_update",
            O::ScrollPoints => "scroll_points",
            O::CountPoints => "count_points",
            O::Facet => "facet",
            O::QueryPoints => "query_points",
            O::QueryBatchPoints => "query_batch_points",
            O::QueryPointsGroups => "query_points_groups",
            O::SearchMatrixPairs => "search_matrix_pairs",
            O::SearchMatrixOffsets => "search_matrix_offsets",
            O::SearchPoints => "search_points",
            O::SearchBatchPoints => "search_batch_points",
            O::SearchPointGroups => "search_point_groups",
            O::RecommendPoints => "recommend_points",
            O::RecommendBatchPoints => "recommend_batch_points",
            O::RecommendPointGroups => "recommend_point_groups",
            O::DiscoverPoints => "discover_points",
            O::DiscoverBatchPoints => "discover_batch_points",
            O::ShardGetPoints => "shard_get_points",
            O::ShardScrollPoints => "shard_scroll_points",
            O::ShardCountPoints => "shard_count_points",
            O::CleanupShard => "cleanup_shard",
            O::GetAuditLogs => "get_audit_logs",
            O::ListClusterMetadataKeys => "list_cluster_metadata_keys",
            O::GetClusterMetadataKey => "get_cluster_metadata_key",
            O::PutClusterMetadataKey => "put_cluster_metadata_key",
            O::DeleteClusterMetadataKey => "delete_cluster_metadata_key",
            O::GetCollectionMemory => "get_collection_memory",
            O::GetDebuggerConfig => "get_debugger_config",
            O::UpdateDebuggerConfig => "update_debugger_config",
            O::GetSlowRequests => "get_slow_requests",
            O::GetStacktrace => "get_stacktrace",
            O::GetLoggerConfig => "get_logger_config",
            O::UpdateLoggerConfig => "update_logger_config",
            O::TruncateUnappliedWal => "truncate_unapplied_wal",
            O::CreatePartialSnapshot => "create_partial_snapshot",
            O::RecoverPartialSnapshot => "recover_partial_snapshot",
            O::RecoverPartialSnapshotFrom => "recover_partial_snapshot_from",
            O::GetPartialSnapshotManifest => "get_partial_snapshot_manifest",
            O::GetShardWal => "get_shard_wal",
            O::GetShardRecoveryPoint => "get_shard_recovery_point",
            O::DebugCollection => "debug_collection",
        }
    }

    /// How the proxy treats the operation.
    ///
    /// Collection admin: reading a collection's config, aliases, optimizations and existence
    /// is `read`; payload indexes and named vectors change the collection (`update`). Alias
    /// changes (`POST /collections/aliases`) re-point names that policies are keyed on, and
    /// shard keys, collection cluster and shard-level routes act below the collection
    /// abstraction: those are `vecgate:admin`, as are snapshots (a download is the whole
    /// collection), cluster, telemetry, metrics, issues, quotas and every hidden
    /// operational route. The per-shard `points`, `scroll` and `count` reads are admin too:
    /// they bypass shard routing and no client library sends them.
    pub fn class(self) -> Intent {
        use CollectionAction as A;
        use Operation as O;
        match self {
            O::QueryPoints
            | O::QueryBatchPoints
            | O::QueryPointsGroups
            | O::ScrollPoints
            | O::Facet
            | O::SearchMatrixPairs
            | O::SearchMatrixOffsets
            | O::SearchPoints
            | O::SearchBatchPoints
            | O::SearchPointGroups
            | O::RecommendPoints
            | O::RecommendBatchPoints
            | O::RecommendPointGroups
            | O::DiscoverPoints
            | O::DiscoverBatchPoints
            | O::CountPoints
            | O::GetPoint
            | O::GetPoints => Intent::Read,
            // Deleting vectors or payload keys changes what a point holds: checked per point
            // like any write (USING and WITH CHECK), not as a delete.
            O::UpsertPoints
            | O::UpdateVectors
            | O::SetPayload
            | O::OverwritePayload
            | O::DeleteVectors
            | O::DeletePayload
            | O::ClearPayload
            | O::BatchUpdate => Intent::Write,
            O::DeletePoints => Intent::Delete,
            O::GetCollections
            | O::GetCollection
            | O::CollectionExists
            | O::GetCollectionAliases
            | O::GetCollectionsAliases
            | O::GetOptimizations => Intent::Collection(A::Read),
            O::CreateCollection => Intent::Collection(A::Create),
            O::UpdateCollection
            | O::CreateFieldIndex
            | O::DeleteFieldIndex
            | O::CreateVectorName
            | O::DeleteVectorName => Intent::Collection(A::Update),
            O::DeleteCollection => Intent::Collection(A::Delete),
            O::Root | O::Healthz | O::Livez | O::Readyz => Intent::Health,
            O::Telemetry
            | O::Metrics
            | O::GetIssues
            | O::ClearIssues
            | O::GetQuotas
            | O::UpdateQuotas
            | O::ClusterStatus
            | O::ClusterTelemetry
            | O::RecoverCurrentPeer
            | O::RemovePeer
            | O::UpdateAliases
            | O::CollectionClusterInfo
            | O::UpdateCollectionCluster
            | O::CreateShardKey
            | O::ListShardKeys
            | O::DeleteShardKey
            | O::RecoverFromUploadedSnapshot
            | O::RecoverFromSnapshot
            | O::ListSnapshots
            | O::CreateSnapshot
            | O::DeleteSnapshot
            | O::GetSnapshot
            | O::ListFullSnapshots
            | O::CreateFullSnapshot
            | O::DeleteFullSnapshot
            | O::GetFullSnapshot
            | O::StreamShardSnapshot
            | O::RecoverShardFromUploadedSnapshot
            | O::RecoverShardFromSnapshot
            | O::ListShardSnapshots
            | O::CreateShardSnapshot
            | O::DeleteShardSnapshot
            | O::GetShardSnapshot
            | O::ShardGetPoints
            | O::ShardScrollPoints
            | O::ShardCountPoints
            | O::CleanupShard
            | O::GetAuditLogs
            | O::ListClusterMetadataKeys
            | O::GetClusterMetadataKey
            | O::PutClusterMetadataKey
            | O::DeleteClusterMetadataKey
            | O::GetCollectionMemory
            | O::GetDebuggerConfig
            | O::UpdateDebuggerConfig
            | O::GetSlowRequests
            | O::GetStacktrace
            | O::GetLoggerConfig
            | O::UpdateLoggerConfig
            | O::TruncateUnappliedWal
            | O::CreatePartialSnapshot
            | O::RecoverPartialSnapshot
            | O::RecoverPartialSnapshotFrom
            | O::GetPartialSnapshotManifest
            | O::GetShardWal
            | O::GetShardRecoveryPoint
            | O::DebugCollection => Intent::Admin,
        }
    }

    /// True for the filtered reads whose answer lists points with their payload, so that
    /// hits can be stripped afterwards. Count, facet, the search matrices and every groups
    /// form aggregate over points the caller does not see (a group's size, a facet count, a
    /// matrix's pairs): those can only be pre-filtered. Retrieve is post-filtered too.
    pub fn post_filterable(self) -> bool {
        use Operation as O;
        matches!(
            self,
            O::QueryPoints
                | O::QueryBatchPoints
                | O::ScrollPoints
                | O::SearchPoints
                | O::SearchBatchPoints
                | O::RecommendPoints
                | O::RecommendBatchPoints
                | O::DiscoverPoints
                | O::DiscoverBatchPoints
                | O::GetPoint
                | O::GetPoints
        )
    }

    /// True for the operations that were documented (v1.19 OpenAPI).
    pub fn documented(self) -> bool {
        Operation::ALL[..Operation::DOCUMENTED].contains(&self)
    }
}

/// A classified request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub op: Operation,
    /// The `{collection_name}` segment as sent: a collection name or an alias.
    pub collection: Option<String>,
    /// `GET points/{id}`: the id, parsed and normalised as Qdrant does.
    pub point_id: Option<PointId>,
    /// Any other path parameter (shard id, snapshot, field, vector, peer, metadata key), as
    /// sent. Only admin operations have one.
    pub param: Option<String>,
}

pub use crate::backends::RouteError;

impl crate::backends::seam::Route for Route {
    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn intent(&self) -> Intent {
        self.op.class()
    }
}

/// The path Qdrant routes on, as actix's `NormalizePath::trim()` makes it: runs of `/`
/// merged into one, a trailing `/` dropped (`/` itself stays). `None` for a path that does
/// not start with `/`, contains `%`, `?`, `#` or a backslash, or has a `.` or `..` segment:
/// those are refused rather than guessed at.
pub fn normalise_path(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.contains(['%', '?', '#', '\\']) {
        return None;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return None;
    }
    Some(format!("/{}", segments.join("/")))
}

/// Classifies a request by method and path (`uri.path()`, without the query), after
/// [`normalise_path`]. `None` is an unknown route, which the proxy refuses; so is a
/// `points/{id}` whose id Qdrant would not parse. HEAD is unknown, as in actix (its `get`
/// routes do not answer HEAD).
pub fn classify(method: &Method, path: &str) -> Option<Route> {
    let normal = normalise_path(path)?;
    let segments: Vec<&str> = normal.split('/').filter(|s| !s.is_empty()).collect();
    let m = Verb::of(method, false)?;
    use Operation as O;
    use Verb::{Delete, Get, Patch, Post, Put};
    let op = match (segments.as_slice(), m) {
        ([], Get) => O::Root,
        (["healthz"], Get) => O::Healthz,
        (["livez"], Get) => O::Livez,
        (["readyz"], Get) => O::Readyz,
        (["telemetry"], Get) => O::Telemetry,
        (["metrics"], Get) => O::Metrics,
        (["issues"], Get) => O::GetIssues,
        (["issues"], Delete) => O::ClearIssues,
        (["quotas"], Get) => O::GetQuotas,
        (["quotas"], Put) => O::UpdateQuotas,
        (["cluster"], Get) => O::ClusterStatus,
        (["cluster", "telemetry"], Get) => O::ClusterTelemetry,
        (["cluster", "recover"], Post) => O::RecoverCurrentPeer,
        (["cluster", "peer", peer], Delete) => return Some(with_param(O::RemovePeer, peer)),
        (["cluster", "metadata", "keys"], Get) => O::ListClusterMetadataKeys,
        (["cluster", "metadata", "keys", key], _) => {
            let op = match m {
                Get => O::GetClusterMetadataKey,
                Put => O::PutClusterMetadataKey,
                Delete => O::DeleteClusterMetadataKey,
                _ => return None,
            };
            return Some(with_param(op, key));
        }
        (["aliases"], Get) => O::GetCollectionsAliases,
        (["snapshots"], Get) => O::ListFullSnapshots,
        (["snapshots"], Post) => O::CreateFullSnapshot,
        (["snapshots", name], Get) => return Some(with_param(O::GetFullSnapshot, name)),
        (["snapshots", name], Delete) => return Some(with_param(O::DeleteFullSnapshot, name)),
        (["audit", "logs"], Post) => O::GetAuditLogs,
        (["debugger"], Get) => O::GetDebuggerConfig,
        (["debugger"], Patch) => O::UpdateDebuggerConfig,
        (["profiler", "slow_requests"], Get) => O::GetSlowRequests,
        (["stacktrace"], Get) => O::GetStacktrace,
        (["logger"], Get) => O::GetLoggerConfig,
        (["logger"], Post) => O::UpdateLoggerConfig,
        (["collections"], Get) => O::GetCollections,
        // The static `aliases` wins over `{collection_name}` for POST only, as in actix.
        (["collections", "aliases"], Post) => O::UpdateAliases,
        (["collections", name, rest @ ..], _) => return collection_route(m, name, rest),
        _ => return None,
    };
    Some(bare(op))
}

/// Routes below `/collections/{collection_name}`.
fn collection_route(m: Verb, name: &str, rest: &[&str]) -> Option<Route> {
    use Operation as O;
    use Verb::{Delete, Get, Patch, Post, Put};
    let route = |op| Some(in_collection(op, name, None));
    let with = |op, param: &str| Some(in_collection(op, name, Some(param)));
    match (rest, m) {
        ([], Get) => route(O::GetCollection),
        ([], Put) => route(O::CreateCollection),
        ([], Patch) => route(O::UpdateCollection),
        ([], Delete) => route(O::DeleteCollection),
        (["exists"], Get) => route(O::CollectionExists),
        (["aliases"], Get) => route(O::GetCollectionAliases),
        (["optimizations"], Get) => route(O::GetOptimizations),
        (["cluster"], Get) => route(O::CollectionClusterInfo),
        (["cluster"], Post) => route(O::UpdateCollectionCluster),
        (["index"], Put) => route(O::CreateFieldIndex),
        (["index", field], Delete) => with(O::DeleteFieldIndex, field),
        (["vectors", vector], Put) => with(O::CreateVectorName, vector),
        (["vectors", vector], Delete) => with(O::DeleteVectorName, vector),
        (["facet"], Post) => route(O::Facet),
        (["memory"], Get) => route(O::GetCollectionMemory),
        (["truncate_unapplied_wal"], Post) => route(O::TruncateUnappliedWal),
        (["debug"], Post) => route(O::DebugCollection),
        (["snapshots"], Get) => route(O::ListSnapshots),
        (["snapshots"], Post) => route(O::CreateSnapshot),
        (["snapshots", "upload"], Post) => route(O::RecoverFromUploadedSnapshot),
        (["snapshots", "recover"], Put) => route(O::RecoverFromSnapshot),
        (["snapshots", snapshot], Get) => with(O::GetSnapshot, snapshot),
        (["snapshots", snapshot], Delete) => with(O::DeleteSnapshot, snapshot),
        (["shards"], Put) => route(O::CreateShardKey),
        (["shards"], Get) => route(O::ListShardKeys),
        (["shards", "delete"], Post) => route(O::DeleteShardKey),
        (["shards", shard, shard_rest @ ..], _) => shard_route(m, name, shard, shard_rest),
        (["points", points_rest @ ..], _) => points_route(m, name, points_rest),
        _ => None,
    }
}

/// Routes below `/collections/{collection_name}/shards/{shard}`.
fn shard_route(m: Verb, name: &str, shard: &str, rest: &[&str]) -> Option<Route> {
    use Operation as O;
    use Verb::{Delete, Get, Post, Put};
    let op = match (rest, m) {
        (["snapshot"], Get) => O::StreamShardSnapshot,
        (["snapshots"], Get) => O::ListShardSnapshots,
        (["snapshots"], Post) => O::CreateShardSnapshot,
        (["snapshots", "upload"], Post) => O::RecoverShardFromUploadedSnapshot,
        (["snapshots", "recover"], Put) => O::RecoverShardFromSnapshot,
        // The snapshot name is not kept: the shard is the parameter of these routes.
        (["snapshots", _], Get) => O::GetShardSnapshot,
        (["snapshots", _], Delete) => O::DeleteShardSnapshot,
        (["snapshot", "partial", "create"], Post) => O::CreatePartialSnapshot,
        (["snapshot", "partial", "recover"], Post) => O::RecoverPartialSnapshot,
        (["snapshot", "partial", "recover_from"], Post) => O::RecoverPartialSnapshotFrom,
        (["snapshot", "partial", "manifest"], Get) => O::GetPartialSnapshotManifest,
        (["points"], Post) => O::ShardGetPoints,
        (["points", "scroll"], Post) => O::ShardScrollPoints,
        (["points", "count"], Post) => O::ShardCountPoints,
        (["cleanup"], Post) => O::CleanupShard,
        (["wal"], Get) => O::GetShardWal,
        (["recovery_point"], Get) => O::GetShardRecoveryPoint,
        _ => return None,
    };
    Some(in_collection(op, name, Some(shard)))
}

/// Routes below `/collections/{collection_name}/points`.
fn points_route(m: Verb, name: &str, rest: &[&str]) -> Option<Route> {
    use Operation as O;
    use Verb::{Get, Post, Put};
    let op = match (rest, m) {
        ([], Post) => O::GetPoints,
        ([], Put) => O::UpsertPoints,
        ([id], Get) => {
            let point_id = PointId::parse(id)?;
            return Some(Route {
                point_id: Some(point_id),
                ..in_collection(O::GetPoint, name, None)
            });
        }
        (["delete"], Post) => O::DeletePoints,
        (["vectors"], Put) => O::UpdateVectors,
        (["vectors", "delete"], Post) => O::DeleteVectors,
        (["payload"], Post) => O::SetPayload,
        (["payload"], Put) => O::OverwritePayload,
        (["payload", "delete"], Post) => O::DeletePayload,
        (["payload", "clear"], Post) => O::ClearPayload,
        (["batch"], Post) => O::BatchUpdate,
        (["scroll"], Post) => O::ScrollPoints,
        (["count"], Post) => O::CountPoints,
        (["query"], Post) => O::QueryPoints,
        (["query", "batch"], Post) => O::QueryBatchPoints,
        (["query", "groups"], Post) => O::QueryPointsGroups,
        (["search"], Post) => O::SearchPoints,
        (["search", "batch"], Post) => O::SearchBatchPoints,
        (["search", "groups"], Post) => O::SearchPointGroups,
        (["search", "matrix", "pairs"], Post) => O::SearchMatrixPairs,
        (["search", "matrix", "offsets"], Post) => O::SearchMatrixOffsets,
        (["recommend"], Post) => O::RecommendPoints,
        (["recommend", "batch"], Post) => O::RecommendBatchPoints,
        (["recommend", "groups"], Post) => O::RecommendPointGroups,
        (["discover"], Post) => O::DiscoverPoints,
        (["discover", "batch"], Post) => O::DiscoverBatchPoints,
        _ => return None,
    };
    Some(in_collection(op, name, None))
}

fn bare(op: Operation) -> Route {
    Route {
        op,
        collection: None,
        point_id: None,
        param: None,
    }
}

fn with_param(op: Operation, param: &str) -> Route {
    Route {
        param: Some(param.to_string()),
        ..bare(op)
    }
}

fn in_collection(op: Operation, name: &str, param: Option<&str>) -> Route {
    Route {
        collection: Some(name.to_string()),
        param: param.map(str::to_string),
        ..bare(op)
    }
}

/// The kinds of value a query parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    /// `true` or `false` (serde_urlencoded accepts nothing else).
    Bool,
    /// A non-negative integer.
    Uint,
    /// An integer ≥ 1.
    PositiveUint,
    /// `weak`, `medium`, `strong`.
    Ordering,
    /// An integer ≥ 1, or `majority`, `quorum`, `all`.
    Consistency,
    /// `no_sync`, `snapshot`, `replica`.
    Priority,
    /// Hexadecimal (a SHA-256 checksum).
    Hex,
    /// Lower-case words and commas (`with=queued,completed`).
    WordList,
    /// Letters, digits and `_` (the profiler's request-name filter).
    Word,
}

const READ: &[(&str, Param)] = &[
    ("consistency", Param::Consistency),
    ("timeout", Param::PositiveUint),
];
const WRITE: &[(&str, Param)] = &[
    ("wait", Param::Bool),
    ("ordering", Param::Ordering),
    ("timeout", Param::PositiveUint),
];
const TIMEOUT: &[(&str, Param)] = &[("timeout", Param::PositiveUint)];
const WAIT: &[(&str, Param)] = &[("wait", Param::Bool)];
const UPLOAD: &[(&str, Param)] = &[
    ("wait", Param::Bool),
    ("priority", Param::Priority),
    ("checksum", Param::Hex),
];

/// The query parameters each operation takes: Qdrant's OpenAPI for the documented ones, the
/// handlers' parameter structs for the hidden ones.
fn allowed_params(op: Operation) -> &'static [(&'static str, Param)] {
    use Operation as O;
    match op {
        O::GetPoint => &[("consistency", Param::Consistency)],
        O::GetPoints
        | O::ScrollPoints
        | O::CountPoints
        | O::Facet
        | O::QueryPoints
        | O::QueryBatchPoints
        | O::QueryPointsGroups
        | O::SearchMatrixPairs
        | O::SearchMatrixOffsets
        | O::SearchPoints
        | O::SearchBatchPoints
        | O::SearchPointGroups
        | O::RecommendPoints
        | O::RecommendBatchPoints
        | O::RecommendPointGroups
        | O::DiscoverPoints
        | O::DiscoverBatchPoints
        | O::ShardGetPoints
        | O::ShardScrollPoints
        | O::ShardCountPoints => READ,
        O::UpsertPoints
        | O::DeletePoints
        | O::UpdateVectors
        | O::DeleteVectors
        | O::SetPayload
        | O::OverwritePayload
        | O::DeletePayload
        | O::ClearPayload
        | O::BatchUpdate
        | O::CreateFieldIndex
        | O::DeleteFieldIndex
        | O::CreateVectorName
        | O::DeleteVectorName => WRITE,
        O::CreateShardKey
        | O::DeleteShardKey
        | O::CreateCollection
        | O::UpdateCollection
        | O::DeleteCollection
        | O::UpdateAliases
        | O::UpdateCollectionCluster
        | O::GetAuditLogs => TIMEOUT,
        O::Telemetry => &[
            ("anonymize", Param::Bool),
            ("details_level", Param::Uint),
            ("per_collection", Param::Bool),
            ("timeout", Param::PositiveUint),
        ],
        O::Metrics => &[
            ("anonymize", Param::Bool),
            ("per_collection", Param::Bool),
            ("timeout", Param::PositiveUint),
        ],
        O::ClusterTelemetry => &[
            ("details_level", Param::Uint),
            ("timeout", Param::PositiveUint),
        ],
        O::RemovePeer => &[("timeout", Param::PositiveUint), ("force", Param::Bool)],
        O::GetOptimizations => &[("with", Param::WordList), ("completed_limit", Param::Uint)],
        O::RecoverFromUploadedSnapshot
        | O::RecoverShardFromUploadedSnapshot
        | O::RecoverPartialSnapshot => UPLOAD,
        O::UpdateQuotas
        | O::RecoverFromSnapshot
        | O::CreateSnapshot
        | O::DeleteSnapshot
        | O::CreateFullSnapshot
        | O::DeleteFullSnapshot
        | O::RecoverShardFromSnapshot
        | O::CreateShardSnapshot
        | O::DeleteShardSnapshot
        | O::PutClusterMetadataKey
        | O::DeleteClusterMetadataKey
        | O::TruncateUnappliedWal
        | O::RecoverPartialSnapshotFrom => WAIT,
        O::CleanupShard => &[("wait", Param::Bool), ("timeout", Param::PositiveUint)],
        O::GetSlowRequests => &[("limit", Param::Uint), ("request", Param::Word)],
        _ => &[],
    }
}

fn valid_value(kind: Param, value: &str) -> bool {
    let uint = || {
        !value.is_empty()
            && value.bytes().all(|b| b.is_ascii_digit())
            && value.parse::<u64>().is_ok()
    };
    let positive = || uint() && value.parse::<u64>().is_ok_and(|n| n >= 1);
    match kind {
        Param::Bool => value == "true" || value == "false",
        Param::Uint => uint(),
        Param::PositiveUint => positive(),
        Param::Ordering => ["weak", "medium", "strong"].contains(&value),
        Param::Consistency => positive() || ["majority", "quorum", "all"].contains(&value),
        Param::Priority => ["no_sync", "snapshot", "replica"].contains(&value),
        Param::Hex => !value.is_empty() && value.bytes().all(|b| b.is_ascii_hexdigit()),
        Param::WordList => {
            !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b',')
        }
        Param::Word => {
            !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
    }
}

/// Checks the raw query string (without `?`) against the parameters `op` accepts: each at
/// most once, with a value of its type. Qdrant ignores parameters it does not know; we refuse
/// them. Encoded characters (`%`, `+`) are refused: no valid value needs them.
pub fn check_query(op: Operation, query: Option<&str>) -> Result<(), RouteError> {
    let allowed = allowed_params(op);
    crate::backends::check_query_params(op.name(), query, |name, value| {
        allowed
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, kind)| valid_value(*kind, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let mut names: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
        assert!(names
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Operation::ALL.len());
    }
}
