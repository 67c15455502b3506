//! The seam every database implements: what the request pipeline ([`crate::proxy`]) needs to
//! know about a database, and nothing more.
//!
//! Implementations are pure. They classify routes, validate and rewrite request bodies,
//! describe writes as the records they touch, build the lookups the pipeline makes, and read
//! the database's answers; every exchange with the database is made by the pipeline, and
//! every decision (plans, checks, the write rule) is the pipeline's too. So a database module
//! never decides who may do what, and the pipeline never knows a database's JSON.
//!
//! Invariants an implementation keeps:
//! - **Exact or refused.** A body it does not fully understand (an unknown field, an
//!   ambiguous union, a shape it cannot rewrite) is an error, never forwarded as is.
//! - **Every filter place.** [`Database::rewrite_read`] and [`Database::rewrite_delete`] AND the
//!   scope's filter into every place the database applies a filter (prefetches, batch entries).
//! - **Hits it cannot read are refused.** [`Database::filter_answer`] asks the [`Judge`] about
//!   every record the answer lists, and fails on an answer whose shape it does not know.
//!
//! A third database is a folder beside `chroma/` and `qdrant/` with a type implementing
//! [`Database`] (routes, translator, request rewriting, write description, answer filter, error
//! shape, attribute layout), and one arm where the configuration picks the backend
//! (`crate::proxy::gateway::Backend`).
//!
//! One database may have several faces, one per wire protocol ([`Protocol`]): Qdrant's REST API
//! and its gRPC API are two implementations of this trait that share the database's
//! translator, record layout and write semantics. What differs between faces is what a request
//! body is ([`Database::Body`]: parsed JSON, a decoded protobuf message), how it goes out
//! ([`Body`]) and how answers end ([`Answer::trailers`]: gRPC's status); the pipeline handles
//! both alike.

use super::{FieldMapping, Pushdown, TranslateError};
use crate::plan::Expr;
use crate::plan::Value;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::fmt;

pub use super::routing::CollectionAction;

/// What the pipeline does with an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Needs no token: forwarded as sent, without a body.
    Health,
    /// Needs a valid token but no policy decision (a client's construction calls).
    Identity,
    /// Resource kind `vecgate:admin`, the operation's name as action.
    Admin,
    /// Resource kind `collection`, id = the collection's name; see [`CollectionRequest`].
    Collection(CollectionAction),
    /// Reads records: the `read` plan's filter goes into the request, hits may be checked.
    Read,
    /// Deletes records: the `delete` plan's filter goes into the request.
    Delete,
    /// Writes records (attributes can change): every record is checked by the write rule.
    Write,
}

/// One classified request, as the pipeline sees it.
pub trait Route: fmt::Debug + Send + Sync {
    /// Stable snake_case name: a metric label, and the action checked on `vecgate:admin`.
    fn name(&self) -> &'static str;
    fn intent(&self) -> Intent;
}

/// Where a request goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// The client's own path and query (as the database routes it: [`Database::forward_path`]).
    AsSent,
    /// Another path (with its query), built by the database module.
    To(String),
}

/// The wire protocol of a face of a database: how its requests arrive and go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 or HTTP/2 with JSON bodies.
    Http,
    /// gRPC: HTTP/2, one protobuf message each way, the call's status in trailers.
    Grpc,
}

impl Protocol {
    /// The audit log's `protocol` and the metrics' `protocol` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }
}

/// A request body for the database.
#[derive(Debug)]
pub enum Body {
    None,
    /// Written with [`crate::json::to_vec`]: vectors kept as text go out as the client sent
    /// them.
    Json(Json),
    /// A protobuf message, encoded (gRPC framing is added on the wire); `filter_terms`: the
    /// leaf conditions of the filters it carries, counted by the module that built it.
    Proto { message: Bytes, filter_terms: usize },
}

impl Body {
    /// The JSON the filters are counted on (`None` for no body).
    pub fn json(&self) -> Option<&Json> {
        match self {
            Body::None | Body::Proto { .. } => None,
            Body::Json(v) => Some(v),
        }
    }
}

/// One request to the database.
#[derive(Debug)]
pub struct Call {
    pub method: Method,
    pub path: Path,
    pub body: Body,
}

impl Call {
    pub fn new(method: Method, path: Path, body: Body) -> Call {
        Call { method, path, body }
    }

    pub fn get(path: String) -> Call {
        Call::new(Method::GET, Path::To(path), Body::None)
    }

    pub fn post(path: String, body: Json) -> Call {
        Call::new(Method::POST, Path::To(path), Body::Json(body))
    }
}

/// An answer from the database, read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The outcome in HTTP's terms. For a gRPC answer, the call's status as its HTTP
    /// equivalent ([`crate::grpc::http_status`]): what the pipeline decides on and the audit
    /// log records; the response itself is HTTP 200.
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    /// The body as it goes on the wire (for gRPC: framed).
    pub body: Bytes,
    /// gRPC: the call's status (`grpc-status`, `grpc-message`), sent as trailers. `None` for
    /// HTTP answers.
    pub trailers: Option<Box<HeaderMap>>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// A JSON answer whose text is already written.
    pub fn json_text(status: StatusCode, body: Vec<u8>) -> Answer {
        Answer { status, content_type: Some(HeaderValue::from_static("application/json")), body: Bytes::from(body), trailers: None }
    }

    /// A JSON answer the pipeline or a database module made itself.
    pub fn json(status: StatusCode, body: &Json) -> Answer {
        Answer {
            status,
            content_type: Some(HeaderValue::from_static("application/json")),
            body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
            trailers: None,
        }
    }
}

/// What the plan lets the caller touch, as a database module applies it to a request.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Nothing: the request is validated, then answered without asking the database.
    Nothing,
    /// Everything: forwarded without a filter.
    Everything,
    /// The records this filter (in the database's own language) selects.
    Filter(&'a Json),
    /// Forwarded without a filter (`post_filter_only`): every hit is checked on the way back.
    Unfiltered,
}

impl<'a> Scope<'a> {
    pub fn filter(&self) -> Option<&'a Json> {
        match self {
            Scope::Filter(f) => Some(f),
            _ => None,
        }
    }
}

/// A read as the pipeline hands it to [`Database::rewrite_read`].
#[derive(Debug, Clone, Copy)]
pub struct ReadScope<'a> {
    pub scope: Scope<'a>,
    /// Hits must be checked against the plan on the way back, so the answer must carry their
    /// attributes (forced into the request, trimmed from the answer again).
    pub check_hits: bool,
    pub mapping: &'a FieldMapping,
}

/// What the pipeline sends for a request, after the rewrite phase.
#[derive(Debug)]
pub enum Outgoing<T> {
    /// Answered here; the database is not asked.
    Local(Answer),
    /// Send this; `then` says how to read the answer (`None`: pass it back unchanged).
    Send { call: Call, then: Option<T> },
}

/// A record's attributes (`R.attr`) as a database stores them.
pub trait RecordAttributes {
    /// One attribute, converted; `None` if the record does not have it.
    fn get(&self, name: &str) -> Option<Value>;
    /// Every attribute.
    fn all(&self) -> BTreeMap<String, Value>;
}

/// The pipeline's verdict on each record an answer lists.
pub trait Judge {
    /// May the caller see this record of the request's collection?
    fn admits(&mut self, id: &dyn fmt::Display, attrs: &dyn RecordAttributes) -> bool;
    /// May the caller see this record of another collection the answer brings along
    /// (Qdrant's `with_lookup`)?
    fn admits_lookup(&mut self, collection: &str, id: &dyn fmt::Display, attrs: &dyn RecordAttributes) -> bool;
}

/// What [`Database::filter_answer`] did.
#[derive(Debug)]
pub struct Filtered {
    pub body: FilteredBody,
    /// Records removed because the caller may not see them.
    pub stripped: usize,
    /// Records the answer lists after filtering, where it lists any.
    pub returned: Option<usize>,
}

#[derive(Debug)]
pub enum FilteredBody {
    /// The database's bytes go back as they are.
    Unchanged,
    /// This goes back instead, with the database's status.
    Rewritten(Json),
    /// This body (as it goes on the wire) goes back instead, with the database's status,
    /// content type and trailers.
    Encoded(Bytes),
    /// This JSON text goes back instead, with the database's status: the database's own
    /// text with the removed records cut out (see [`Database::filter_answer`]).
    Spliced(Vec<u8>),
    /// This goes back instead (a record that must look missing, as the database answers it).
    Replaced(Answer),
}

/// How the pipeline learns the name of the collection a record route addresses.
#[derive(Debug)]
pub enum CollectionName {
    /// The path names it.
    Named(String),
    /// Ask the database (`GET path`), read the name with [`Database::collection_name`]; the
    /// answer may be cached under `path` (which names the collection uniquely) for a short
    /// while, and the call is made only when it is not.
    Lookup { path: String },
}

/// The collection a record route addresses, as far as building lookups needs it.
#[derive(Debug, Clone)]
pub struct Located {
    pub name: String,
    /// The path prefix of the collection's record routes.
    pub base: String,
}

/// What a collection-level request needs from the pipeline.
#[derive(Debug)]
pub enum CollectionRequest {
    /// `action` on the named collection; then forwarded as sent. `renames`: the collection
    /// names the pipeline caches may be stale afterwards.
    Named { name: String, action: CollectionAction, renames: bool },
    /// A create: `create` on `name`, or `read` where `exists` (asked first) answers 2xx: a
    /// get-or-create of an existing collection only reads it.
    Create { name: String, exists: Option<Call> },
    /// A change of the collection a record route addresses (the name is looked up as for
    /// records): `update` on it, and `create` on `new_name` if it is renamed.
    Update { new_name: Option<String> },
    /// The name is only in the database's answer: forwarded, then `read` on that name.
    NameInAnswer,
    /// A listing: `call` (or the request as sent), then only the entries the caller may read
    /// ([`Database::filter_listing`]).
    List { call: Option<Call>, count: bool },
}

/// How a write selects its records.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection<I> {
    Ids(Vec<I>),
    /// By the filter the request carries: the pipeline narrows it to the records the caller
    /// may update, lists their ids ([`Database::ids_matching`]) and has the request rewritten
    /// to those ids ([`Database::select_ids`]).
    Filter,
}

/// What a write does to a record that exists, and to one that does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// Creates a missing record, changes an existing one.
    Upsert,
    /// Creates a missing record; the database ignores it for an existing one.
    Insert,
    /// Changes an existing record; the database writes nothing for a missing one (and may
    /// say so).
    Change,
}

/// How the write rule narrowed a write (see [`Database::narrow_write`]).
#[derive(Debug, Clone, Copy)]
pub struct Narrowing<'a> {
    /// Indices into the write's records of those left out: changes of records the caller
    /// may not read, which must be answered as changes of missing records are.
    pub left_out: &'a [usize],
    /// The write selected by filter, and its ids are the records of that filter the caller
    /// may update (possibly none).
    pub from_filter: bool,
    /// The client's query string (`wait=true` changes what some databases answer).
    pub query: Option<&'a str>,
}

/// A write as it goes to the database after the write rule.
#[derive(Debug)]
pub enum Narrowed {
    /// Send this; where `instead` is given and the database succeeds, that is the answer
    /// (the database's answer for a missing record, after it wrote the others).
    Send { call: Call, instead: Option<Answer> },
    /// Nothing to send: this is the answer.
    Answer(Answer),
}

/// One record a write touches.
#[derive(Debug, Clone)]
pub struct RecordWrite<I, C> {
    pub id: I,
    pub change: C,
    pub kind: WriteKind,
}

/// A write, described.
#[derive(Debug, Clone)]
pub struct WriteSet<I, C> {
    pub selection: Selection<I>,
    /// In the order the database applies them; empty for a [`Selection::Filter`].
    pub records: Vec<RecordWrite<I, C>>,
}

/// A record id a read uses as an input, with the collection it is read from (`None`: the
/// request's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdInput<I> {
    pub collection: Option<String>,
    pub id: I,
}

/// Stored records by id.
pub type Records<D> = std::collections::BTreeMap<<D as Database>::Id, <D as Database>::Record>;

/// Why a database module refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a request the module understands exactly (the client gets 400).
    #[error("{0}")]
    Malformed(String),
    /// A body in an encoding or media type the module does not read (415).
    #[error("{0}")]
    Unsupported(String),
    /// A shape vecgate does not check, refused as a policy matter (403).
    #[error("{0}")]
    Forbidden(String),
}

/// One database behind vecgate. See the module documentation.
pub trait Database: Send + Sync + 'static {
    type Route: Route;
    /// A record id, normalised as the database reads it.
    type Id: Clone + Ord + fmt::Display + fmt::Debug + Send + Sync;
    /// A record's stored attributes-bearing part (Chroma's metadata, Qdrant's payload).
    type Record: Clone + PartialEq + fmt::Debug + Send + Sync;
    /// How a write changes one record.
    type Change: fmt::Debug + Send + Sync;
    /// What reading an answer needs to know about the request (trims, shapes). Cloned where
    /// an answer is read twice (with a PDP: once to collect the hits its check must confirm).
    type Then: Clone + Send;
    /// Why a request is refused.
    type RequestError: std::error::Error + Send + Sync + 'static + Into<Refusal>;
    /// Why an answer cannot be read.
    type AnswerError: std::error::Error + Send + Sync + 'static;
    /// A request body as this face reads it (parsed JSON, a decoded message).
    type Body: fmt::Debug + Send + Sync;

    /// `chroma`, `qdrant`: the metric label and the audit log's `backend` (the same for every
    /// face of a database).
    fn name(&self) -> &'static str;
    /// How this face's requests arrive and go out.
    fn protocol(&self) -> Protocol;
    /// The path the readiness probe asks.
    fn health_path(&self) -> &'static str;

    /// The plan translator: a plan condition as this database's filter, exact or refused.
    fn translate(&self, condition: &Expr, mapping: &FieldMapping, max_terms: usize) -> Result<Pushdown, TranslateError>;
    /// Leaf conditions of one filter in this database's language.
    fn terms_in(&self, filter: &Json) -> usize;

    // ---- classify -----------------------------------------------------------------------

    /// The route of a request (`path` without the query), or `None` for an unknown one.
    fn classify(&self, method: &Method, path: &str) -> Option<Self::Route>;
    /// Checks the query string against what the operation takes.
    fn check_query(&self, route: &Self::Route, query: Option<&str>) -> Result<(), super::RouteError>;
    /// The client's path and query as the database routes it.
    fn forward_path(&self, path_and_query: &str) -> String;
    /// A request's body (`bytes` as read, possibly empty; `None`: the request has none),
    /// parsed strictly.
    fn parse_body(&self, route: &Self::Route, headers: &HeaderMap, bytes: &Bytes) -> Result<Option<Self::Body>, Refusal>;
    /// What a request without a body reads as.
    fn empty_body(&self, route: &Self::Route) -> Self::Body;
    /// The client's body as it goes to the database when it goes as sent: re-serialised from
    /// what was parsed, never the client's bytes.
    fn as_sent(&self, route: &Self::Route, body: Option<Self::Body>) -> Result<Body, Self::RequestError>;

    // ---- collections --------------------------------------------------------------------

    /// For [`Intent::Read`], [`Intent::Delete`], [`Intent::Write`] and
    /// [`CollectionRequest::Update`]: how to learn the collection's name (from the route, or
    /// from the body where the protocol names it there).
    fn collection_of(&self, route: &Self::Route, body: &Self::Body) -> Result<CollectionName, Self::RequestError>;
    /// The collection's name in the answer to a [`CollectionName::Lookup`] call, or to a
    /// [`CollectionRequest::NameInAnswer`] request.
    fn collection_name(&self, answer: &[u8]) -> Result<String, Self::AnswerError>;
    /// The path prefix of a collection's record routes.
    fn locate(&self, route: &Self::Route, name: &str) -> Located;
    /// A collection-level request, described. `body` is the parsed body ([`Database::empty_body`]
    /// when there is none).
    fn collection_request(&self, route: &Self::Route, body: &Self::Body) -> Result<CollectionRequest, Self::RequestError>;
    /// A collection's attributes as policies see them (`R.attr` of resource kind `collection`).
    fn collection_attributes(&self, route: &Self::Route, name: &str) -> BTreeMap<String, Value>;
    /// The listing with only the entries whose collection `readable` admits (`count`: their
    /// number instead), as the answer to give.
    fn filter_listing(&self, route: &Self::Route, answer: &Answer, count: bool, readable: &mut dyn FnMut(&str) -> bool) -> Result<Answer, Self::AnswerError>;

    // ---- reads --------------------------------------------------------------------------

    /// Whether hits of this read can be checked on the way back (its answer lists records).
    fn post_filterable(&self, route: &Self::Route) -> bool;
    /// Record ids the request uses as inputs (query by example), with the collection each is
    /// read from (`None`: the request's own). Each must be readable by the caller.
    fn id_inputs(&self, route: &Self::Route, body: &Self::Body) -> Result<Vec<IdInput<Self::Id>>, Self::RequestError>;
    /// Other collections whose records the answer brings along (each gets its own plan).
    fn lookup_collections(&self, route: &Self::Route, body: &Self::Body) -> Result<Vec<String>, Self::RequestError>;
    /// The read rewritten for the scope: validated, the filter ANDed in, the attributes the
    /// hit check needs forced into the answer.
    fn rewrite_read(&self, route: &Self::Route, located: &Located, body: Self::Body, scope: ReadScope<'_>) -> Result<Outgoing<Self::Then>, Self::RequestError>;
    /// A read's unsuccessful answer as the caller may see it (a record's "not found" must not
    /// differ from the one vecgate gives for a record the caller may not read).
    fn failed_answer(&self, then: &Self::Then, answer: Answer) -> Answer;
    /// The answer as the caller may see it.
    fn filter_answer(&self, then: Self::Then, answer: &Answer, judge: &mut dyn Judge) -> Result<Filtered, Self::AnswerError>;
    /// The answer for a record that must look missing (one the caller may not read).
    fn missing_record(&self, id: &Self::Id) -> Answer;

    // ---- deletes ------------------------------------------------------------------------

    /// The ids a delete names when it selects by ids alone; `None` when it selects by a filter
    /// (or this face cannot say). Where every deleted record must be confirmed by a full
    /// check (a PDP as policy source), only such deletes can be, and the others are refused.
    fn delete_ids(&self, route: &Self::Route, body: &Self::Body) -> Result<Option<Vec<Self::Id>>, Self::RequestError>;
    /// The delete narrowed to `ids`, a non-empty subset of what [`Database::delete_ids`]
    /// returned for it.
    fn delete_only(&self, route: &Self::Route, body: Self::Body, ids: &[Self::Id]) -> Result<Self::Body, Self::RequestError>;
    /// The delete rewritten for the scope (never [`Scope::Unfiltered`]: a delete cannot be
    /// checked afterwards).
    fn rewrite_delete(&self, route: &Self::Route, body: Self::Body, scope: Scope<'_>) -> Result<Outgoing<Self::Then>, Self::RequestError>;

    // ---- writes -------------------------------------------------------------------------

    /// Sets the stamped attributes on every record the write stores whole.
    fn stamp(&self, route: &Self::Route, body: &mut Self::Body, stamps: &[(String, Json)], mapping: &FieldMapping) -> Result<(), Self::RequestError>;
    /// The records a write touches.
    fn describe_write(&self, route: &Self::Route, body: &Self::Body) -> Result<WriteSet<Self::Id, Self::Change>, Self::RequestError>;
    /// Lists the ids of the records both the by-filter write's filter and `scope` select (at
    /// most `limit` + 1); `scope` is never [`Scope::Nothing`] or [`Scope::Unfiltered`].
    fn ids_matching(&self, route: &Self::Route, located: &Located, body: &Self::Body, scope: Scope<'_>, limit: usize) -> Result<Call, Self::RequestError>;
    /// Reads the answer to [`Database::ids_matching`].
    fn matched_ids(&self, answer: &[u8]) -> Result<Vec<Self::Id>, Self::AnswerError>;
    /// A by-filter write rewritten to select these ids.
    fn select_ids(&self, route: &Self::Route, body: Self::Body, ids: &[Self::Id]) -> Result<Self::Body, Self::RequestError>;
    /// Reads the records with these ids as they are now, unfiltered.
    fn fetch_records(&self, located: &Located, ids: &[Self::Id]) -> Call;
    /// Reads the answer to [`Database::fetch_records`]: the records that exist.
    fn fetched_records(&self, answer: &[u8]) -> Result<Records<Self>, Self::AnswerError>;
    /// The lookup that locates a collection known only by its name (`vecgate explain --id`),
    /// or `None` where the name is enough.
    fn collection_by_name(&self, name: &str) -> Option<Call>;
    /// Where the records of the collection `name` are, from the answer to
    /// [`Database::collection_by_name`] where it asks something.
    fn located_by_name(&self, name: &str, answer: Option<&[u8]>) -> Result<Located, Self::AnswerError>;
    /// A record id as a person writes it (`vecgate explain --id`); `None`: not an id here.
    fn parse_id(&self, text: &str) -> Option<Self::Id>;
    /// The record as the database stores it after `change` (`before`: `None` if missing).
    fn apply(&self, route: &Self::Route, change: &Self::Change, before: Option<&Self::Record>) -> Self::Record;
    /// A record's attributes.
    fn attributes<'r>(&self, record: &'r Self::Record, mapping: &'r FieldMapping) -> Box<dyn RecordAttributes + 'r>;
    /// The write without the records the rule left out, answered as the database answers a
    /// write of records it does not have, so the answer does not depend on whether a record
    /// the caller may not read exists. Also called when nothing was left out.
    fn narrow_write(
        &self,
        route: &Self::Route,
        located: &Located,
        method: &Method,
        body: Self::Body,
        records: &[RecordWrite<Self::Id, Self::Change>],
        narrowing: Narrowing<'_>,
    ) -> Result<Narrowed, Self::RequestError>;
    /// Extra protection for a write the database applies to whatever it finds when it runs
    /// (Qdrant's upsert `update_filter`): `update` is the update plan's filter.
    fn guard_write(&self, route: &Self::Route, body: Self::Body, update: &Json) -> Result<Self::Body, Self::RequestError>;

    // ---- answers ------------------------------------------------------------------------

    /// Leaf conditions in the filters of a request's body (`limits.max_filter_terms`).
    fn filter_terms(&self, route: &Self::Route, body: &Self::Body) -> usize;
    /// Leaf conditions in the filters of a body that goes out.
    fn call_filter_terms(&self, route: &Self::Route, body: &Body) -> usize;
    /// An error in the database's own shape, so its clients raise their usual exceptions.
    fn error_answer(&self, status: StatusCode, message: &str) -> Answer;
}
