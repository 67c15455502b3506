//! Chroma's HTTP routes (`/api/v2`): which operation a request is, and what the proxy must do
//! with it. Everything not listed here is unknown, and the proxy refuses it.
//!
//! Chroma does not normalise paths (a trailing slash, `//` or a percent-encoded segment is a
//! 404 there), so neither do we: such paths are unknown rather than guessed at.

use crate::backends::Verb;
use http::Method;

/// One operation of Chroma's API: the 35 of its OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Get,
    Query,
    Delete,
    Search,
    Count,
    Add,
    Upsert,
    Update,
    ListCollections,
    CountCollections,
    CreateCollection,
    GetCollection,
    GetCollectionById,
    GetCollectionByCrn,
    UpdateCollection,
    DeleteCollection,
    ForkCollection,
    ForkCount,
    AttachFunction,
    GetAttachedFunction,
    DetachFunction,
    IndexingStatus,
    CreateTenant,
    GetTenant,
    UpdateTenant,
    ListDatabases,
    CreateDatabase,
    GetDatabase,
    DeleteDatabase,
    Reset,
    Healthcheck,
    Heartbeat,
    Version,
    PreFlightChecks,
    AuthIdentity,
}

pub use crate::backends::seam::Intent;
pub use crate::backends::CollectionAction;

impl Operation {
    /// Every operation, in the order of the enum.
    pub const ALL: [Operation; 35] = [
        Operation::Get,
        Operation::Query,
        Operation::Delete,
        Operation::Search,
        Operation::Count,
        Operation::Add,
        Operation::Upsert,
        Operation::Update,
        Operation::ListCollections,
        Operation::CountCollections,
        Operation::CreateCollection,
        Operation::GetCollection,
        Operation::GetCollectionById,
        Operation::GetCollectionByCrn,
        Operation::UpdateCollection,
        Operation::DeleteCollection,
        Operation::ForkCollection,
        Operation::ForkCount,
        Operation::AttachFunction,
        Operation::GetAttachedFunction,
        Operation::DetachFunction,
        Operation::IndexingStatus,
        Operation::CreateTenant,
        Operation::GetTenant,
        Operation::UpdateTenant,
        Operation::ListDatabases,
        Operation::CreateDatabase,
        Operation::GetDatabase,
        Operation::DeleteDatabase,
        Operation::Reset,
        Operation::Healthcheck,
        Operation::Heartbeat,
        Operation::Version,
        Operation::PreFlightChecks,
        Operation::AuthIdentity,
    ];

    /// Stable snake_case name: a metric label, and the action checked on `vecgate:admin`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::Query => "query",
            Operation::Delete => "delete",
            Operation::Search => "search",
            Operation::Count => "count",
            Operation::Add => "add",
            Operation::Upsert => "upsert",
            Operation::Update => "update",
            Operation::ListCollections => "list_collections",
            Operation::CountCollections => "count_collections",
            Operation::CreateCollection => "create_collection",
            Operation::GetCollection => "get_collection",
            Operation::GetCollectionById => "get_collection_by_id",
            Operation::GetCollectionByCrn => "get_collection_by_crn",
            Operation::UpdateCollection => "update_collection",
            Operation::DeleteCollection => "delete_collection",
            Operation::ForkCollection => "fork_collection",
            Operation::ForkCount => "fork_count",
            Operation::AttachFunction => "attach_function",
            Operation::GetAttachedFunction => "get_attached_function",
            Operation::DetachFunction => "detach_function",
            Operation::IndexingStatus => "indexing_status",
            Operation::CreateTenant => "create_tenant",
            Operation::GetTenant => "get_tenant",
            Operation::UpdateTenant => "update_tenant",
            Operation::ListDatabases => "list_databases",
            Operation::CreateDatabase => "create_database",
            Operation::GetDatabase => "get_database",
            Operation::DeleteDatabase => "delete_database",
            Operation::Reset => "reset",
            Operation::Healthcheck => "healthcheck",
            Operation::Heartbeat => "heartbeat",
            Operation::Version => "version",
            Operation::PreFlightChecks => "pre_flight_checks",
            Operation::AuthIdentity => "auth_identity",
        }
    }

    /// What the pipeline does with the operation. get, query, search and count are reads
    /// (count is answered from a filtered get); delete ANDs the delete plan into `where`;
    /// add, upsert and update check every record. get_tenant, get_database and
    /// auth_identity need a token but no decision: every chromadb `HttpClient` calls them
    /// when it is built.
    pub fn class(self) -> Intent {
        use CollectionAction as A;
        use Operation as O;
        match self {
            O::Get | O::Query | O::Search | O::Count => Intent::Read,
            O::Delete => Intent::Delete,
            O::Add | O::Upsert | O::Update => Intent::Write,
            O::ListCollections
            | O::CountCollections
            | O::GetCollection
            | O::GetCollectionById
            | O::GetCollectionByCrn => Intent::Collection(A::Read),
            O::CreateCollection => Intent::Collection(A::Create),
            O::UpdateCollection => Intent::Collection(A::Update),
            O::DeleteCollection => Intent::Collection(A::Delete),
            O::ForkCollection
            | O::ForkCount
            | O::AttachFunction
            | O::GetAttachedFunction
            | O::DetachFunction
            | O::IndexingStatus
            | O::CreateTenant
            | O::UpdateTenant
            | O::ListDatabases
            | O::CreateDatabase
            | O::DeleteDatabase
            | O::Reset => Intent::Admin,
            O::GetTenant | O::GetDatabase | O::AuthIdentity => Intent::Identity,
            O::Healthcheck | O::Heartbeat | O::Version | O::PreFlightChecks => Intent::Health,
        }
    }
}

/// How a route names its collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectionRef {
    /// A UUID, in lower-case hyphenated form whatever form the path used (Chroma accepts any
    /// case, and the forms without hyphens): record routes, `PUT C`, `by-id`.
    Id(String),
    /// `GET C` and `DELETE C` take the collection's name in the id's place.
    Name(String),
    /// `GET /api/v2/collections/{crn}`, as written (`tenant_resource_name:database:collection`).
    Crn(String),
}

impl CollectionRef {
    pub fn as_str(&self) -> &str {
        match self {
            CollectionRef::Id(s) | CollectionRef::Name(s) | CollectionRef::Crn(s) => s,
        }
    }
}

/// A classified request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub op: Operation,
    pub tenant: Option<String>,
    pub database: Option<String>,
    pub collection: Option<CollectionRef>,
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

const API_PREFIX: &str = "/api/v2";

/// Classifies a request by method and path (`uri.path()`, without the query). `None` is an
/// unknown route, which the proxy refuses. HEAD is classified like GET. Trailing slashes,
/// `//`, empty, `.` and `..` segments and percent-encoded characters make a path unknown, as
/// does a collection id that is not a UUID on a route that takes one.
pub fn classify(method: &Method, path: &str) -> Option<Route> {
    let rest = path.strip_prefix(API_PREFIX)?;
    let m = Verb::of(method, true)?;
    if rest.is_empty() {
        return (m == Verb::Get).then(|| bare(Operation::Heartbeat));
    }
    let segments: Vec<&str> = rest.strip_prefix('/')?.split('/').collect();
    if !segments.iter().all(|s| is_plain_segment(s)) {
        return None;
    }
    use Verb::{Delete, Get, Patch, Post};
    match (segments.as_slice(), m) {
        (["auth", "identity"], Get) => Some(bare(Operation::AuthIdentity)),
        (["healthcheck"], Get) => Some(bare(Operation::Healthcheck)),
        (["heartbeat"], Get) => Some(bare(Operation::Heartbeat)),
        (["version"], Get) => Some(bare(Operation::Version)),
        (["pre-flight-checks"], Get) => Some(bare(Operation::PreFlightChecks)),
        (["reset"], Post) => Some(bare(Operation::Reset)),
        (["collections", crn], Get) => Some(Route {
            collection: Some(CollectionRef::Crn((*crn).to_string())),
            ..bare(Operation::GetCollectionByCrn)
        }),
        (["tenants"], Post) => Some(bare(Operation::CreateTenant)),
        (["tenants", tenant], Get) => Some(in_tenant(Operation::GetTenant, tenant)),
        (["tenants", tenant], Patch) => Some(in_tenant(Operation::UpdateTenant, tenant)),
        (["tenants", tenant, "databases"], Get) => {
            Some(in_tenant(Operation::ListDatabases, tenant))
        }
        (["tenants", tenant, "databases"], Post) => {
            Some(in_tenant(Operation::CreateDatabase, tenant))
        }
        (["tenants", tenant, "databases", database], Get) => {
            Some(in_database(Operation::GetDatabase, tenant, database))
        }
        (["tenants", tenant, "databases", database], Delete) => {
            Some(in_database(Operation::DeleteDatabase, tenant, database))
        }
        (["tenants", tenant, "databases", database, "collections", rest @ ..], _) => {
            collection_route(
                m,
                in_database(Operation::ListCollections, tenant, database),
                rest,
            )
        }
        (["tenants", tenant, "databases", database, "collections_count"], Get) => {
            Some(in_database(Operation::CountCollections, tenant, database))
        }
        _ => None,
    }
}

/// Routes below `…/databases/{database}/collections`; `db` carries tenant and database.
fn collection_route(m: Verb, db: Route, rest: &[&str]) -> Option<Route> {
    use Verb::{Delete, Get, Post, Put};
    let with = |op, collection| Route {
        op,
        collection: Some(collection),
        ..db.clone()
    };
    let by_id = |op, raw: &str| canonical_uuid(raw).map(|id| with(op, CollectionRef::Id(id)));
    let by_name = |op, name: &str| Some(with(op, CollectionRef::Name(name.to_string())));
    match (rest, m) {
        ([], Get) => Some(Route {
            op: Operation::ListCollections,
            ..db.clone()
        }),
        ([], Post) => Some(Route {
            op: Operation::CreateCollection,
            ..db.clone()
        }),
        (["by-id", id], Get) => by_id(Operation::GetCollectionById, id),
        ([name], Get) => by_name(Operation::GetCollection, name),
        ([name], Delete) => by_name(Operation::DeleteCollection, name),
        ([id], Put) => by_id(Operation::UpdateCollection, id),
        ([id, action], _) => {
            let op = match (*action, m) {
                ("get", Post) => Operation::Get,
                ("query", Post) => Operation::Query,
                ("delete", Post) => Operation::Delete,
                ("search", Post) => Operation::Search,
                ("count", Get) => Operation::Count,
                ("add", Post) => Operation::Add,
                ("upsert", Post) => Operation::Upsert,
                ("update", Post) => Operation::Update,
                ("fork", Post) => Operation::ForkCollection,
                ("fork_count", Get) => Operation::ForkCount,
                ("indexing_status", Get) => Operation::IndexingStatus,
                _ => return None,
            };
            by_id(op, id)
        }
        // The static `attach` segment wins over `{function_name}`, as in Chroma's router.
        ([id, "functions", "attach"], Post) => by_id(Operation::AttachFunction, id),
        ([_, "functions", "attach"], _) => None,
        ([id, "functions", _name], Get) => by_id(Operation::GetAttachedFunction, id),
        ([id, "attached_functions", _name, "detach"], Post) => by_id(Operation::DetachFunction, id),
        _ => None,
    }
}

fn bare(op: Operation) -> Route {
    Route {
        op,
        tenant: None,
        database: None,
        collection: None,
    }
}

fn in_tenant(op: Operation, tenant: &str) -> Route {
    Route {
        tenant: Some(tenant.to_string()),
        ..bare(op)
    }
}

fn in_database(op: Operation, tenant: &str, database: &str) -> Route {
    Route {
        database: Some(database.to_string()),
        ..in_tenant(op, tenant)
    }
}

/// A segment Chroma would take literally: non-empty, not `.`/`..`, nothing percent-encoded.
fn is_plain_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['%', '?', '#'])
}

/// The collection id in lower-case hyphenated form, if it is a UUID in a form Chroma accepts.
fn canonical_uuid(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// The query parameters each operation takes: Chroma's OpenAPI, plus those an official
/// client sends that the server ignores (tests/python/client_traffic.py lists, per route,
/// what each tested client sends):
///
/// - `tenant` on get_database: chromadb's `AsyncHttpClient` (Python) sends
///   `GET /api/v2/tenants/{t}/databases/{d}?tenant={t}`; the server ignores the parameter
///   (the path names the tenant, and another value changes nothing). Accepted, forwarded.
fn allowed_params(op: Operation) -> &'static [&'static str] {
    match op {
        Operation::ListCollections | Operation::ListDatabases | Operation::Query => {
            &["limit", "offset"]
        }
        Operation::Count => &["read_level"],
        Operation::GetDatabase => &["tenant"],
        _ => &[],
    }
}

const READ_LEVELS: [&str; 3] = ["index_and_wal", "index_only", "index_and_bounded_wal"];

/// Checks the raw query string (without `?`) against the parameters `op` accepts: each at
/// most once, with a valid value (`limit`/`offset` non-negative 32-bit integers, `read_level`
/// one of Chroma's levels, `tenant` a plain name). Chroma silently ignores parameters it does not know; we refuse
/// them. Encoded characters (`%`, `+`) are refused: no valid value needs them.
pub fn check_query(op: Operation, query: Option<&str>) -> Result<(), RouteError> {
    let allowed = allowed_params(op);
    crate::backends::check_query_params(op.name(), query, |name, value| {
        allowed.contains(&name).then(|| match name {
            "read_level" => READ_LEVELS.contains(&value),
            "tenant" => is_plain_segment(value) && !value.contains('/'),
            _ => value.bytes().all(|b| b.is_ascii_digit()) && value.parse::<i32>().is_ok(),
        })
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
        assert_eq!(names.len(), 35);
    }

    #[test]
    fn get_database_takes_the_tenant_the_async_client_sends() {
        assert!(check_query(Operation::GetDatabase, Some("tenant=default_tenant")).is_ok());
        assert!(check_query(Operation::GetDatabase, None).is_ok());
        assert!(check_query(Operation::GetDatabase, Some("tenant=a&tenant=b")).is_err());
        assert!(check_query(Operation::GetDatabase, Some("tenant=")).is_err());
        assert!(check_query(Operation::GetDatabase, Some("database=x")).is_err());
        // Only get_database: the other tenant routes still take no parameter.
        assert!(check_query(Operation::GetTenant, Some("tenant=default_tenant")).is_err());
    }
}
