//! Every operation of Chroma's OpenAPI document (tests/fixtures/chroma-openapi.json) is
//! classified, to the operation this table expects; everything else is unknown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use http::Method;
use serde_json::Value;
use std::collections::BTreeSet;
use vecgate::backends::chroma::routes::{
    check_query, classify, CollectionAction, CollectionRef, Intent, Operation, Route, RouteError,
};

const T: &str = "/api/v2/tenants/{tenant}/databases/{database}";
const UUID: &str = "7e23bb8b-0449-4dfc-85f1-3dc6aa535b03";
const DB: &str = "/api/v2/tenants/acme/databases/main";

/// (method, path template) → operation: one entry per OpenAPI operation.
fn expected() -> Vec<(&'static str, String, Operation)> {
    use Operation as O;
    let c = format!("{T}/collections/{{collection_id}}");
    vec![
        ("GET", "/api/v2/auth/identity".into(), O::AuthIdentity),
        (
            "GET",
            "/api/v2/collections/{crn}".into(),
            O::GetCollectionByCrn,
        ),
        ("GET", "/api/v2/healthcheck".into(), O::Healthcheck),
        ("GET", "/api/v2/heartbeat".into(), O::Heartbeat),
        (
            "GET",
            "/api/v2/pre-flight-checks".into(),
            O::PreFlightChecks,
        ),
        ("POST", "/api/v2/reset".into(), O::Reset),
        ("POST", "/api/v2/tenants".into(), O::CreateTenant),
        ("GET", "/api/v2/tenants/{tenant_name}".into(), O::GetTenant),
        (
            "PATCH",
            "/api/v2/tenants/{tenant_name}".into(),
            O::UpdateTenant,
        ),
        (
            "GET",
            "/api/v2/tenants/{tenant}/databases".into(),
            O::ListDatabases,
        ),
        (
            "POST",
            "/api/v2/tenants/{tenant}/databases".into(),
            O::CreateDatabase,
        ),
        ("GET", T.into(), O::GetDatabase),
        ("DELETE", T.into(), O::DeleteDatabase),
        ("GET", format!("{T}/collections"), O::ListCollections),
        ("POST", format!("{T}/collections"), O::CreateCollection),
        (
            "GET",
            format!("{T}/collections/by-id/{{collection_id}}"),
            O::GetCollectionById,
        ),
        ("GET", c.clone(), O::GetCollection),
        ("PUT", c.clone(), O::UpdateCollection),
        ("DELETE", c.clone(), O::DeleteCollection),
        ("POST", format!("{c}/add"), O::Add),
        (
            "POST",
            format!("{c}/attached_functions/{{name}}/detach"),
            O::DetachFunction,
        ),
        ("GET", format!("{c}/count"), O::Count),
        ("POST", format!("{c}/delete"), O::Delete),
        ("POST", format!("{c}/fork"), O::ForkCollection),
        ("GET", format!("{c}/fork_count"), O::ForkCount),
        ("POST", format!("{c}/functions/attach"), O::AttachFunction),
        (
            "GET",
            format!("{c}/functions/{{function_name}}"),
            O::GetAttachedFunction,
        ),
        ("POST", format!("{c}/get"), O::Get),
        ("GET", format!("{c}/indexing_status"), O::IndexingStatus),
        ("POST", format!("{c}/query"), O::Query),
        ("POST", format!("{c}/search"), O::Search),
        ("POST", format!("{c}/update"), O::Update),
        ("POST", format!("{c}/upsert"), O::Upsert),
        ("GET", format!("{T}/collections_count"), O::CountCollections),
        ("GET", "/api/v2/version".into(), O::Version),
    ]
}

/// The (method, path template) pairs of the OpenAPI document.
fn openapi_operations() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/chroma-openapi.json"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut ops = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if [
                "get", "post", "put", "patch", "delete", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                ops.push((method.to_uppercase(), template.clone()));
            }
        }
    }
    ops
}

fn fill(template: &str) -> String {
    template
        .replace("{tenant}", "acme")
        .replace("{tenant_name}", "acme")
        .replace("{database}", "main")
        .replace("{collection_id}", UUID)
        .replace("{crn}", "acme:main:docs")
        .replace("{function_name}", "fn1")
        .replace("{name}", "fn1")
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap()
}

#[test]
fn every_openapi_operation_classifies_to_its_expected_operation() {
    let table = expected();
    let ops = openapi_operations();
    assert_eq!(ops.len(), 35);
    let mut seen = BTreeSet::new();
    for (m, template) in &ops {
        let want = table
            .iter()
            .find(|(tm, tt, _)| tm == m && tt == template)
            .unwrap_or_else(|| panic!("no expected operation for {m} {template}"))
            .2;
        let path = fill(template);
        let route = classify(&method(m), &path).unwrap_or_else(|| panic!("{m} {path} unknown"));
        assert_eq!(route.op, want, "{m} {path}");
        if m == "GET" {
            assert_eq!(
                classify(&Method::HEAD, &path),
                Some(route.clone()),
                "HEAD {path}"
            );
        }
        seen.insert(want.name());
    }
    // One distinct operation per OpenAPI entry, and the table has nothing extra.
    assert_eq!(seen.len(), 35);
    assert_eq!(table.len(), 35);
    let all: BTreeSet<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
    assert_eq!(seen, all);
}

#[test]
fn other_methods_on_openapi_paths_are_unknown() {
    let ops = openapi_operations();
    for (_, template) in &ops {
        let path = fill(template);
        for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"] {
            let documented = ops.iter().any(|(om, ot)| om == m && ot == template);
            if !documented {
                assert_eq!(classify(&method(m), &path), None, "{m} {path}");
            }
        }
    }
}

#[test]
fn routes_carry_tenant_database_and_collection() {
    let route = |m: Method, p: &str| classify(&m, p).unwrap();
    assert_eq!(
        route(Method::POST, &format!("{DB}/collections/{UUID}/query")),
        Route {
            op: Operation::Query,
            tenant: Some("acme".into()),
            database: Some("main".into()),
            collection: Some(CollectionRef::Id(UUID.into())),
        }
    );
    // GET and DELETE C take the collection name; PUT C and by-id take the UUID.
    assert_eq!(
        route(Method::GET, &format!("{DB}/collections/docs")).collection,
        Some(CollectionRef::Name("docs".into()))
    );
    assert_eq!(
        route(Method::DELETE, &format!("{DB}/collections/docs")).collection,
        Some(CollectionRef::Name("docs".into()))
    );
    assert_eq!(
        route(Method::PUT, &format!("{DB}/collections/{UUID}")).collection,
        Some(CollectionRef::Id(UUID.into()))
    );
    assert_eq!(
        route(Method::GET, &format!("{DB}/collections/by-id/{UUID}")).collection,
        Some(CollectionRef::Id(UUID.into()))
    );
    let crn = route(Method::GET, "/api/v2/collections/acme:main:docs");
    assert_eq!(
        crn.collection,
        Some(CollectionRef::Crn("acme:main:docs".into()))
    );
    assert_eq!((crn.tenant, crn.database), (None, None));
    let tenant = route(Method::GET, "/api/v2/tenants/acme");
    assert_eq!(
        (tenant.op, tenant.tenant.as_deref(), tenant.database),
        (Operation::GetTenant, Some("acme"), None)
    );
    assert_eq!(route(Method::GET, "/api/v2").op, Operation::Heartbeat);
}

#[test]
fn collection_uuids_are_canonicalised() {
    // Chroma accepts an upper-case UUID and the form without hyphens (measured).
    for raw in [UUID.to_uppercase(), UUID.replace('-', "")] {
        let route = classify(&Method::POST, &format!("{DB}/collections/{raw}/get")).unwrap();
        assert_eq!(route.op, Operation::Get);
        assert_eq!(route.collection, Some(CollectionRef::Id(UUID.into())));
    }
    // A record route needs a UUID (Chroma answers 400 for a name).
    assert_eq!(
        classify(&Method::GET, &format!("{DB}/collections/docs/count")),
        None
    );
    assert_eq!(
        classify(&Method::PUT, &format!("{DB}/collections/docs")),
        None
    );
    assert_eq!(
        classify(&Method::GET, &format!("{DB}/collections/by-id/docs")),
        None
    );
}

#[test]
fn unknown_routes() {
    let get = format!("{DB}/collections/{UUID}/get");
    let cases: Vec<(Method, String)> = vec![
        (Method::POST, format!("{get}/")),
        (Method::POST, get.replace("/collections/", "/collections//")),
        (Method::POST, format!("/{get}")),
        (
            Method::POST,
            get.replace("default", "x").replace("/acme/", "/ac%6De/"),
        ),
        (Method::POST, get.replace("/get", "%2Fget")),
        (Method::POST, get.replace("/acme/", "/./acme/")),
        (
            Method::POST,
            format!("{DB}/collections/{UUID}/../{UUID}/get"),
        ),
        (Method::POST, get.replace("/api/v2/", "/api/v1/")),
        (Method::GET, "/api/v1/heartbeat".into()),
        (Method::GET, "/api/v2/".into()),
        (Method::GET, "/api/v2/heartbeat/".into()),
        (Method::GET, "/api/v22/heartbeat".into()),
        (Method::GET, "/docs".into()),
        (Method::GET, "/openapi.json".into()),
        (Method::GET, "/".into()),
        (Method::GET, "".into()),
        (Method::GET, get.clone()),
        (Method::OPTIONS, get.clone()),
        (Method::POST, format!("{get}/extra")),
        (
            Method::POST,
            "/api/v2/tenants//databases/main/collections".into(),
        ),
        (Method::GET, "/api/v2/tenants/acme/databases/".into()),
        (Method::POST, format!("{DB}/collections/{UUID}/GET")),
        (
            Method::GET,
            format!("{DB}/collections/{UUID}/functions/attach"),
        ),
        (Method::POST, "/api/v2/heartbeat".into()),
        (Method::GET, "/api/v2/HEARTBEAT".into()),
        (Method::GET, "/api/v2/collections".into()),
        (Method::GET, "/api/v2/heartbeat?x=1".into()),
    ];
    for (m, path) in cases {
        assert_eq!(classify(&m, &path), None, "{m} {path}");
    }
}

#[test]
fn classes_and_actions() {
    use Operation as O;
    assert_eq!(O::Get.class(), Intent::Read);
    assert_eq!(O::Search.class(), Intent::Read);
    // count is a read: answered from a filtered get.
    assert_eq!(O::Count.class(), Intent::Read);
    assert_eq!(O::Delete.class(), Intent::Delete);
    assert_eq!(O::Upsert.class(), Intent::Write);
    assert_eq!(
        O::ListCollections.class(),
        Intent::Collection(CollectionAction::Read)
    );
    assert_eq!(
        O::GetCollectionByCrn.class(),
        Intent::Collection(CollectionAction::Read)
    );
    assert_eq!(
        O::CreateCollection.class(),
        Intent::Collection(CollectionAction::Create)
    );
    assert_eq!(
        O::UpdateCollection.class(),
        Intent::Collection(CollectionAction::Update)
    );
    assert_eq!(
        O::DeleteCollection.class(),
        Intent::Collection(CollectionAction::Delete)
    );
    for admin in [
        O::ForkCollection,
        O::IndexingStatus,
        O::ListDatabases,
        O::Reset,
        O::DeleteDatabase,
    ] {
        assert_eq!(admin.class(), Intent::Admin, "{admin:?}");
    }
    for identity in [O::GetTenant, O::GetDatabase, O::AuthIdentity] {
        assert_eq!(identity.class(), Intent::Identity);
    }
    for health in [O::Healthcheck, O::Heartbeat, O::Version, O::PreFlightChecks] {
        assert_eq!(health.class(), Intent::Health);
    }
    assert_eq!(O::PreFlightChecks.name(), "pre_flight_checks");
    assert_eq!(O::GetCollectionById.name(), "get_collection_by_id");
}

#[test]
fn query_parameters() {
    use Operation as O;
    let ok = |op, q: &str| check_query(op, Some(q));
    assert_eq!(check_query(O::Get, None), Ok(()));
    assert_eq!(ok(O::Get, ""), Ok(()));
    assert_eq!(ok(O::Count, "read_level=index_and_wal"), Ok(()));
    assert_eq!(ok(O::Count, "read_level=index_only"), Ok(()));
    assert_eq!(ok(O::ListCollections, "limit=10&offset=20"), Ok(()));
    assert_eq!(ok(O::ListDatabases, "offset=0"), Ok(()));
    assert_eq!(ok(O::Query, "limit=1"), Ok(()));

    assert!(matches!(
        ok(O::Count, "foo=1"),
        Err(RouteError::UnknownQueryParam { .. })
    ));
    assert!(matches!(
        ok(O::Get, "limit=1"),
        Err(RouteError::UnknownQueryParam { .. })
    ));
    assert!(matches!(
        ok(O::ListCollections, "limit=1&LIMIT=2"),
        Err(RouteError::UnknownQueryParam { .. })
    ));
    assert!(matches!(
        ok(O::Count, "read_level=index_only&read_level=index_only"),
        Err(RouteError::DuplicateQueryParam { .. })
    ));
    for bad in [
        "limit=-1",
        "limit=",
        "limit=1.5",
        "limit=99999999999",
        "limit=+1",
    ] {
        assert!(ok(O::ListCollections, bad).is_err(), "{bad}");
    }
    assert!(matches!(
        ok(O::Count, "read_level=everything"),
        Err(RouteError::InvalidQueryValue { .. })
    ));
    for malformed in ["limit", "&limit=1", "limit=1&", "=1", "lim%69t=1"] {
        assert_eq!(
            ok(O::ListCollections, malformed),
            Err(RouteError::MalformedQuery),
            "{malformed}"
        );
    }
}
