//! Every operation of Qdrant's OpenAPI document (tests/fixtures/qdrant-openapi.json) is
//! classified, to the operation this table expects; so is every hidden route Qdrant serves
//! (ref/vectordbs.md B.1); everything else is unknown. Paths are matched after actix's
//! `NormalizePath::trim()`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use http::Method;
use serde_json::Value;
use std::collections::BTreeSet;
use vecgate::backends::qdrant::request::PointId;
use vecgate::backends::qdrant::routes::{
    check_query, classify, normalise_path, CollectionAction, Intent, Operation, RouteError,
};

/// (method, path template) → operation: one entry per OpenAPI operation.
fn documented() -> Vec<(&'static str, &'static str, Operation)> {
    vec![
        (
            "PUT",
            "/collections/{collection_name}/shards",
            Operation::CreateShardKey,
        ),
        (
            "GET",
            "/collections/{collection_name}/shards",
            Operation::ListShardKeys,
        ),
        (
            "POST",
            "/collections/{collection_name}/shards/delete",
            Operation::DeleteShardKey,
        ),
        ("GET", "/", Operation::Root),
        ("GET", "/telemetry", Operation::Telemetry),
        ("GET", "/metrics", Operation::Metrics),
        ("GET", "/healthz", Operation::Healthz),
        ("GET", "/livez", Operation::Livez),
        ("GET", "/readyz", Operation::Readyz),
        ("GET", "/issues", Operation::GetIssues),
        ("DELETE", "/issues", Operation::ClearIssues),
        ("GET", "/cluster", Operation::ClusterStatus),
        ("GET", "/cluster/telemetry", Operation::ClusterTelemetry),
        ("POST", "/cluster/recover", Operation::RecoverCurrentPeer),
        ("DELETE", "/cluster/peer/{peer_id}", Operation::RemovePeer),
        ("GET", "/quotas", Operation::GetQuotas),
        ("PUT", "/quotas", Operation::UpdateQuotas),
        ("GET", "/collections", Operation::GetCollections),
        (
            "GET",
            "/collections/{collection_name}",
            Operation::GetCollection,
        ),
        (
            "PUT",
            "/collections/{collection_name}",
            Operation::CreateCollection,
        ),
        (
            "PATCH",
            "/collections/{collection_name}",
            Operation::UpdateCollection,
        ),
        (
            "DELETE",
            "/collections/{collection_name}",
            Operation::DeleteCollection,
        ),
        ("POST", "/collections/aliases", Operation::UpdateAliases),
        (
            "PUT",
            "/collections/{collection_name}/index",
            Operation::CreateFieldIndex,
        ),
        (
            "GET",
            "/collections/{collection_name}/exists",
            Operation::CollectionExists,
        ),
        (
            "DELETE",
            "/collections/{collection_name}/index/{field_name}",
            Operation::DeleteFieldIndex,
        ),
        (
            "PUT",
            "/collections/{collection_name}/vectors/{vector_name}",
            Operation::CreateVectorName,
        ),
        (
            "DELETE",
            "/collections/{collection_name}/vectors/{vector_name}",
            Operation::DeleteVectorName,
        ),
        (
            "GET",
            "/collections/{collection_name}/cluster",
            Operation::CollectionClusterInfo,
        ),
        (
            "POST",
            "/collections/{collection_name}/cluster",
            Operation::UpdateCollectionCluster,
        ),
        (
            "GET",
            "/collections/{collection_name}/optimizations",
            Operation::GetOptimizations,
        ),
        (
            "GET",
            "/collections/{collection_name}/aliases",
            Operation::GetCollectionAliases,
        ),
        ("GET", "/aliases", Operation::GetCollectionsAliases),
        (
            "POST",
            "/collections/{collection_name}/snapshots/upload",
            Operation::RecoverFromUploadedSnapshot,
        ),
        (
            "PUT",
            "/collections/{collection_name}/snapshots/recover",
            Operation::RecoverFromSnapshot,
        ),
        (
            "GET",
            "/collections/{collection_name}/snapshots",
            Operation::ListSnapshots,
        ),
        (
            "POST",
            "/collections/{collection_name}/snapshots",
            Operation::CreateSnapshot,
        ),
        (
            "DELETE",
            "/collections/{collection_name}/snapshots/{snapshot_name}",
            Operation::DeleteSnapshot,
        ),
        (
            "GET",
            "/collections/{collection_name}/snapshots/{snapshot_name}",
            Operation::GetSnapshot,
        ),
        ("GET", "/snapshots", Operation::ListFullSnapshots),
        ("POST", "/snapshots", Operation::CreateFullSnapshot),
        (
            "DELETE",
            "/snapshots/{snapshot_name}",
            Operation::DeleteFullSnapshot,
        ),
        (
            "GET",
            "/snapshots/{snapshot_name}",
            Operation::GetFullSnapshot,
        ),
        (
            "GET",
            "/collections/{collection_name}/shards/{shard_id}/snapshot",
            Operation::StreamShardSnapshot,
        ),
        (
            "POST",
            "/collections/{collection_name}/shards/{shard_id}/snapshots/upload",
            Operation::RecoverShardFromUploadedSnapshot,
        ),
        (
            "PUT",
            "/collections/{collection_name}/shards/{shard_id}/snapshots/recover",
            Operation::RecoverShardFromSnapshot,
        ),
        (
            "GET",
            "/collections/{collection_name}/shards/{shard_id}/snapshots",
            Operation::ListShardSnapshots,
        ),
        (
            "POST",
            "/collections/{collection_name}/shards/{shard_id}/snapshots",
            Operation::CreateShardSnapshot,
        ),
        (
            "DELETE",
            "/collections/{collection_name}/shards/{shard_id}/snapshots/{snapshot_name}",
            Operation::DeleteShardSnapshot,
        ),
        (
            "GET",
            "/collections/{collection_name}/shards/{shard_id}/snapshots/{snapshot_name}",
            Operation::GetShardSnapshot,
        ),
        (
            "GET",
            "/collections/{collection_name}/points/{id}",
            Operation::GetPoint,
        ),
        (
            "POST",
            "/collections/{collection_name}/points",
            Operation::GetPoints,
        ),
        (
            "PUT",
            "/collections/{collection_name}/points",
            Operation::UpsertPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/delete",
            Operation::DeletePoints,
        ),
        (
            "PUT",
            "/collections/{collection_name}/points/vectors",
            Operation::UpdateVectors,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/vectors/delete",
            Operation::DeleteVectors,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/payload",
            Operation::SetPayload,
        ),
        (
            "PUT",
            "/collections/{collection_name}/points/payload",
            Operation::OverwritePayload,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/payload/delete",
            Operation::DeletePayload,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/payload/clear",
            Operation::ClearPayload,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/batch",
            Operation::BatchUpdate,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/scroll",
            Operation::ScrollPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/count",
            Operation::CountPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/facet",
            Operation::Facet,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/query",
            Operation::QueryPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/query/batch",
            Operation::QueryBatchPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/query/groups",
            Operation::QueryPointsGroups,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/search/matrix/pairs",
            Operation::SearchMatrixPairs,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/search/matrix/offsets",
            Operation::SearchMatrixOffsets,
        ),
    ]
}

/// The routes Qdrant serves without documenting them.
fn hidden() -> Vec<(&'static str, &'static str, Operation)> {
    vec![
        (
            "POST",
            "/collections/{collection_name}/points/search",
            Operation::SearchPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/search/batch",
            Operation::SearchBatchPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/search/groups",
            Operation::SearchPointGroups,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/recommend",
            Operation::RecommendPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/recommend/batch",
            Operation::RecommendBatchPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/recommend/groups",
            Operation::RecommendPointGroups,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/discover",
            Operation::DiscoverPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/points/discover/batch",
            Operation::DiscoverBatchPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/shards/{shard}/points",
            Operation::ShardGetPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/shards/{shard}/points/scroll",
            Operation::ShardScrollPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/shards/{shard}/points/count",
            Operation::ShardCountPoints,
        ),
        (
            "POST",
            "/collections/{collection_name}/shards/{shard}/cleanup",
            Operation::CleanupShard,
        ),
        ("POST", "/audit/logs", Operation::GetAuditLogs),
        (
            "GET",
            "/cluster/metadata/keys",
            Operation::ListClusterMetadataKeys,
        ),
        (
            "GET",
            "/cluster/metadata/keys/{key}",
            Operation::GetClusterMetadataKey,
        ),
        (
            "PUT",
            "/cluster/metadata/keys/{key}",
            Operation::PutClusterMetadataKey,
        ),
        (
            "DELETE",
            "/cluster/metadata/keys/{key}",
            Operation::DeleteClusterMetadataKey,
        ),
        (
            "GET",
            "/collections/{collection_name}/memory",
            Operation::GetCollectionMemory,
        ),
        ("GET", "/debugger", Operation::GetDebuggerConfig),
        ("PATCH", "/debugger", Operation::UpdateDebuggerConfig),
        ("GET", "/profiler/slow_requests", Operation::GetSlowRequests),
        ("GET", "/stacktrace", Operation::GetStacktrace),
        ("GET", "/logger", Operation::GetLoggerConfig),
        ("POST", "/logger", Operation::UpdateLoggerConfig),
        (
            "POST",
            "/collections/{collection_name}/truncate_unapplied_wal",
            Operation::TruncateUnappliedWal,
        ),
        (
            "POST",
            "/collections/{collection_name}/shards/{shard}/snapshot/partial/create",
            Operation::CreatePartialSnapshot,
        ),
        (
            "POST",
            "/collections/{collection_name}/shards/{shard}/snapshot/partial/recover",
            Operation::RecoverPartialSnapshot,
        ),
        (
            "POST",
            "/collections/{collection_name}/shards/{shard}/snapshot/partial/recover_from",
            Operation::RecoverPartialSnapshotFrom,
        ),
        (
            "GET",
            "/collections/{collection_name}/shards/{shard}/snapshot/partial/manifest",
            Operation::GetPartialSnapshotManifest,
        ),
        (
            "GET",
            "/collections/{collection_name}/shards/{shard}/wal",
            Operation::GetShardWal,
        ),
        (
            "GET",
            "/collections/{collection_name}/shards/{shard}/recovery_point",
            Operation::GetShardRecoveryPoint,
        ),
        (
            "POST",
            "/collections/{collection_name}/debug",
            Operation::DebugCollection,
        ),
    ]
}

/// A concrete path for a template: every parameter gets a plausible value.
fn concrete(template: &str) -> String {
    template
        .replace("{collection_name}", "docs")
        .replace("{id}", "42")
        .replace("{shard_id}", "0")
        .replace("{shard}", "0")
        .replace("{peer_id}", "7")
        .replace("{snapshot_name}", "s1.snapshot")
        .replace("{field_name}", "metadata.dept")
        .replace("{vector_name}", "dense")
        .replace("{key}", "k1")
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap()
}

fn op_of(m: &str, path: &str) -> Option<Operation> {
    classify(&method(m), path).map(|r| r.op)
}

#[test]
fn every_openapi_operation_is_in_the_table() {
    let doc: Value = serde_json::from_str(include_str!("fixtures/qdrant-openapi.json")).unwrap();
    let mut from_doc = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            if ["get", "put", "post", "patch", "delete"].contains(&m.as_str()) {
                let id = op["operationId"].as_str().unwrap().to_string();
                from_doc.insert((m.to_uppercase(), path.clone(), id));
            }
        }
    }
    assert_eq!(from_doc.len(), 69);
    let table: BTreeSet<(String, String, String)> = documented()
        .into_iter()
        .map(|(m, p, op)| (m.to_string(), p.to_string(), op.name().to_string()))
        .collect();
    assert_eq!(table.len(), 69);
    assert_eq!(
        table, from_doc,
        "the table is the OpenAPI document, operation ids included"
    );
}

#[test]
fn documented_routes_classify_to_the_table() {
    for (m, template, expected) in documented() {
        let path = concrete(template);
        assert_eq!(op_of(m, &path), Some(expected), "{m} {path}");
        assert!(expected.documented(), "{expected:?}");
    }
}

#[test]
fn hidden_routes_classify_and_are_not_documented() {
    let hidden = hidden();
    assert_eq!(hidden.len(), 32);
    for (m, template, expected) in &hidden {
        let path = concrete(template);
        assert_eq!(op_of(m, &path), Some(*expected), "{m} {path}");
        assert!(!expected.documented(), "{expected:?}");
    }
    // Together the two tables name every operation exactly once.
    let named: BTreeSet<&str> = documented()
        .into_iter()
        .chain(hidden)
        .map(|(_, _, op)| op.name())
        .collect();
    assert_eq!(named.len(), Operation::ALL.len());
    assert_eq!(Operation::ALL.len(), 101);
}

#[test]
fn operation_classes() {
    use Operation as O;
    let filtered = [
        O::QueryPoints,
        O::QueryBatchPoints,
        O::QueryPointsGroups,
        O::ScrollPoints,
        O::Facet,
        O::SearchMatrixPairs,
        O::SearchMatrixOffsets,
        O::SearchPoints,
        O::SearchBatchPoints,
        O::SearchPointGroups,
        O::RecommendPoints,
        O::RecommendBatchPoints,
        O::RecommendPointGroups,
        O::DiscoverPoints,
        O::DiscoverBatchPoints,
    ];
    // Deleting vectors or payload keys changes a point: a write, checked per point.
    let writes = [
        O::UpsertPoints,
        O::UpdateVectors,
        O::SetPayload,
        O::OverwritePayload,
        O::BatchUpdate,
        O::DeleteVectors,
        O::DeletePayload,
        O::ClearPayload,
    ];
    let health = [O::Root, O::Healthz, O::Livez, O::Readyz];
    let collection = [
        (O::GetCollections, CollectionAction::Read),
        (O::GetCollection, CollectionAction::Read),
        (O::CollectionExists, CollectionAction::Read),
        (O::GetCollectionAliases, CollectionAction::Read),
        (O::GetCollectionsAliases, CollectionAction::Read),
        (O::GetOptimizations, CollectionAction::Read),
        (O::CreateCollection, CollectionAction::Create),
        (O::UpdateCollection, CollectionAction::Update),
        (O::CreateFieldIndex, CollectionAction::Update),
        (O::DeleteFieldIndex, CollectionAction::Update),
        (O::CreateVectorName, CollectionAction::Update),
        (O::DeleteVectorName, CollectionAction::Update),
        (O::DeleteCollection, CollectionAction::Delete),
    ];
    for op in Operation::ALL {
        let expected = if filtered.contains(&op) || [O::CountPoints, O::GetPoint, O::GetPoints].contains(&op) {
            Intent::Read
        } else if writes.contains(&op) {
            Intent::Write
        } else if op == O::DeletePoints {
            Intent::Delete
        } else if health.contains(&op) {
            Intent::Health
        } else if let Some((_, a)) = collection.iter().find(|(o, _)| *o == op) {
            Intent::Collection(*a)
        } else {
            Intent::Admin
        };
        assert_eq!(op.class(), expected, "{op:?}");
    }
    // Snapshots, shard-level reads and alias changes are admin.
    for op in [
        O::GetSnapshot,
        O::ShardScrollPoints,
        O::ShardGetPoints,
        O::UpdateAliases,
        O::GetSlowRequests,
    ] {
        assert_eq!(op.class(), Intent::Admin, "{op:?}");
    }
}

#[test]
fn aggregates_are_not_post_filterable() {
    use Operation as O;
    for op in [
        O::CountPoints,
        O::Facet,
        O::SearchMatrixPairs,
        O::SearchMatrixOffsets,
        O::QueryPointsGroups,
        O::SearchPointGroups,
        O::RecommendPointGroups,
    ] {
        assert!(!op.post_filterable(), "{op:?}");
    }
    for op in [
        O::QueryPoints,
        O::QueryBatchPoints,
        O::ScrollPoints,
        O::SearchPoints,
        O::SearchBatchPoints,
        O::RecommendPoints,
        O::RecommendBatchPoints,
        O::DiscoverPoints,
        O::DiscoverBatchPoints,
        O::GetPoint,
        O::GetPoints,
    ] {
        assert!(op.post_filterable(), "{op:?}");
    }
    // Only reads are post-filterable.
    for op in Operation::ALL {
        if op.post_filterable() {
            assert!(
                op.class() == Intent::Read,
                "{op:?}"
            );
        }
    }
}

#[test]
fn routes_carry_collection_point_id_and_parameters() {
    let r = classify(&Method::POST, "/collections/my_docs/points/query").unwrap();
    assert_eq!(r.collection.as_deref(), Some("my_docs"));
    assert_eq!(r.point_id, None);
    assert_eq!(r.param, None);

    let r = classify(&Method::GET, "/collections/c/points/42").unwrap();
    assert_eq!(
        (r.op, r.point_id),
        (Operation::GetPoint, Some(PointId::Num(42)))
    );
    // UUIDs in any form Qdrant parses are normalised to lower-case hyphenated.
    for raw in [
        "550E8400-E29B-41D4-A716-446655440000",
        "550e8400e29b41d4a716446655440000",
        "{550e8400-e29b-41d4-a716-446655440000}",
        "urn:uuid:550e8400-e29b-41d4-a716-446655440000",
    ] {
        let r = classify(&Method::GET, &format!("/collections/c/points/{raw}")).unwrap();
        assert_eq!(
            r.point_id,
            Some(PointId::Uuid("550e8400-e29b-41d4-a716-446655440000".into())),
            "{raw}"
        );
    }
    // Qdrant parses the path id as a u64 first: a leading zero is the same point.
    let r = classify(&Method::GET, "/collections/c/points/007").unwrap();
    assert_eq!(r.point_id, Some(PointId::Num(7)));

    let r = classify(&Method::GET, "/collections/c/shards/3/snapshots/s.snap").unwrap();
    assert_eq!(
        (r.op, r.param.as_deref()),
        (Operation::GetShardSnapshot, Some("3"))
    );
    let r = classify(&Method::DELETE, "/collections/c/index/metadata.dept").unwrap();
    assert_eq!(r.param.as_deref(), Some("metadata.dept"));
    let r = classify(&Method::DELETE, "/cluster/peer/12").unwrap();
    assert_eq!((r.collection, r.param.as_deref()), (None, Some("12")));
    // The static `aliases` segment only wins for POST, as in actix: GET reads a collection
    // named "aliases".
    assert_eq!(
        op_of("POST", "/collections/aliases"),
        Some(Operation::UpdateAliases)
    );
    let r = classify(&Method::GET, "/collections/aliases").unwrap();
    assert_eq!(
        (r.op, r.collection.as_deref()),
        (Operation::GetCollection, Some("aliases"))
    );
}

#[test]
fn paths_are_normalised_like_actix() {
    for (raw, normal) in [
        ("/", "/"),
        ("//", "/"),
        (
            "/collections/x/points/query/",
            "/collections/x/points/query",
        ),
        (
            "//collections///x//points/query//",
            "/collections/x/points/query",
        ),
        ("/healthz/", "/healthz"),
    ] {
        assert_eq!(normalise_path(raw).as_deref(), Some(normal), "{raw}");
    }
    for raw in [
        "",
        "collections/x",
        "/collections/x/points/./query",
        "/collections/x/../y/points/query",
        "/collections/%78/points/query",
        "/collections/a%2Fb/points/query",
        "/collections/x/points/query?x=1",
        "/collections/x\\points",
    ] {
        assert_eq!(normalise_path(raw), None, "{raw:?}");
        assert_eq!(classify(&Method::POST, raw), None, "{raw:?}");
    }
    // Classification applies the same normalisation.
    assert_eq!(
        op_of("POST", "/collections/x/points/query/"),
        Some(Operation::QueryPoints)
    );
    assert_eq!(
        op_of("POST", "//collections//x/points//delete"),
        Some(Operation::DeletePoints)
    );
    assert_eq!(op_of("GET", "//"), Some(Operation::Root));
}

#[test]
fn unknown_routes() {
    for (m, path) in [
        ("GET", "/collections/x/points/query"),
        ("PUT", "/collections/x/points/query"),
        ("HEAD", "/"),
        ("HEAD", "/collections/x"),
        ("OPTIONS", "/collections/x"),
        ("GET", "/dashboard"),
        ("POST", "/collections/x/points/query/extra"),
        ("POST", "/collections/x/points/search/matrix"),
        ("GET", "/collections/x/points/not-an-id"),
        ("GET", "/collections/x/points/-1"),
        ("GET", "/collections/x/points/1.5"),
        ("GET", "/collections/x/points/18446744073709551616"),
        ("POST", "/collections"),
        ("DELETE", "/collections"),
        ("POST", "/cluster/metadata/keys/k"),
        ("GET", "/collections/x/shards/0/unknown"),
        ("POST", "/collections/x/shards/0/snapshot/partial/other"),
        ("GET", "/readyz/extra"),
        ("POST", "/points/query"),
    ] {
        assert_eq!(op_of(m, path), None, "{m} {path}");
    }
}

#[test]
fn query_strings_are_checked() {
    use Operation as O;
    for (op, q) in [
        (O::UpsertPoints, "wait=true"),
        (O::UpsertPoints, "wait=false&ordering=strong&timeout=5"),
        (O::QueryPoints, "consistency=majority&timeout=10"),
        (O::QueryPoints, "consistency=3"),
        (O::GetPoint, "consistency=all"),
        (
            O::Telemetry,
            "anonymize=true&details_level=0&per_collection=false",
        ),
        (
            O::RecoverFromUploadedSnapshot,
            "priority=replica&checksum=ab12&wait=true",
        ),
        (
            O::GetOptimizations,
            "with=queued,completed&completed_limit=4",
        ),
        (O::QueryPoints, ""),
    ] {
        assert_eq!(check_query(op, Some(q)), Ok(()), "{op:?} {q}");
    }
    assert_eq!(check_query(O::QueryPoints, None), Ok(()));

    let unknown =
        |r: Result<(), RouteError>| matches!(r, Err(RouteError::UnknownQueryParam { .. }));
    assert!(unknown(check_query(O::QueryPoints, Some("wait=true"))));
    assert!(unknown(check_query(O::UpsertPoints, Some("consistency=1"))));
    assert!(unknown(check_query(O::GetCollection, Some("timeout=1"))));
    assert!(unknown(check_query(O::ScrollPoints, Some("filter=x"))));

    assert!(matches!(
        check_query(O::UpsertPoints, Some("wait=true&wait=false")),
        Err(RouteError::DuplicateQueryParam { .. })
    ));
    for q in [
        "wait=1",
        "wait=",
        "ordering=fast",
        "timeout=0",
        "timeout=-1",
        "timeout=abc",
    ] {
        assert!(
            matches!(
                check_query(O::UpsertPoints, Some(q)),
                Err(RouteError::InvalidQueryValue { .. })
            ),
            "{q}"
        );
    }
    for q in ["consistency=0", "consistency=some", "consistency=1.5"] {
        assert!(
            matches!(
                check_query(O::QueryPoints, Some(q)),
                Err(RouteError::InvalidQueryValue { .. })
            ),
            "{q}"
        );
    }
    for q in [
        "wait",
        "=true",
        "wait=tru%65",
        "wait=true&",
        "ordering=+weak",
    ] {
        assert!(
            matches!(
                check_query(O::UpsertPoints, Some(q)),
                Err(RouteError::MalformedQuery)
            ),
            "{q}"
        );
    }
}
