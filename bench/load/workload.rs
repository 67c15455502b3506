//! The records, the request sequence and the answer checks, for Chroma and for Qdrant.
//!
//! Records: `department` × `region` (4 × 3) spread evenly, so alice (FINANCE, EMEA) may read
//! one record in twelve. Embeddings are 384-d pseudo-random unit vectors (no model), rounded
//! to 4 decimals so the JSON stays close to what a real client sends.
//!
//! Two variants of the same sequence: the one sent directly and through nginx carries alice's
//! filter (`department == FINANCE AND region == EMEA`) in every read, as an application
//! that filters by itself would send it; the one sent through vecgate has no filter, as
//! LangChain sends it by default, and vecgate adds the same condition. So the database gets
//! the same filter on all three paths and the differences are the proxies' own.

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

pub const DIM: usize = 384;
pub const DEPARTMENTS: [&str; 4] = ["FINANCE", "HR", "ENGINEERING", "SALES"];
pub const REGIONS: [&str; 3] = ["EMEA", "AMER", "APAC"];
const OWNERS: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];
/// How many distinct requests one sequence holds before it repeats.
const SEQUENCE_LEN: usize = 3000;
/// Ids per by-id read.
const IDS_PER_GET: usize = 10;

/// SplitMix64: deterministic, so every run and every target sees the same sequence.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

pub struct Record {
    pub index: usize,
    pub embedding: Vec<f32>,
    pub metadata: Value,
    pub document: String,
}

impl Record {
    pub fn visible_to_alice(&self) -> bool {
        self.index % 12 == 0
    }
}

fn unit_vector(rng: &mut Rng) -> Vec<f32> {
    let raw: Vec<f64> = (0..DIM).map(|_| rng.unit() * 2.0 - 1.0).collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-9);
    raw.iter()
        .map(|x| ((x / norm) * 10_000.0).round() as f32 / 10_000.0)
        .collect()
}

/// `n` records; record `i` is FINANCE/EMEA exactly when `i % 12 == 0`.
pub fn records(n: usize) -> Vec<Record> {
    let mut rng = Rng::new(7);
    (0..n)
        .map(|i| {
            let department = DEPARTMENTS[i % 4];
            let region = REGIONS[(i / 4) % 3];
            let metadata = json!({
                "department": department,
                "region": region,
                "owner": OWNERS[i % OWNERS.len()],
                "level": (i % 5) as i64 + 1,
                "source": format!("handbook-{:02}.pdf", i % 40),
                "page": (i % 30) as i64,
            });
            let document = format!(
                "{department} / {region}: paragraph {i} of the handbook. It explains how the \
                 team handles budgets, reviews and the next quarter's planning in some detail."
            );
            Record {
                index: i,
                embedding: unit_vector(&mut rng),
                metadata,
                document,
            }
        })
        .collect()
}

/// Which principal's token a request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    /// alice: role `user`, FINANCE, EMEA.
    Alice,
    /// loader: role `ingest`, may create and update any record.
    Ingest,
}

/// What a correct answer looks like (checked on every answer, on every path).
#[derive(Clone, Debug)]
pub enum Check {
    /// Exactly this many hits, all FINANCE/EMEA.
    Hits(usize),
    /// A 2xx write acknowledgement.
    Written,
    /// A collection description with this `name`.
    Collection(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Query,
    GetIds,
    GetWhere,
    Upsert,
    Collection,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::GetIds => "get ids",
            Kind::GetWhere => "get where",
            Kind::Upsert => "upsert",
            Kind::Collection => "get collection",
        }
    }
}

#[derive(Clone)]
pub struct Request {
    pub kind: Kind,
    pub method: Method,
    pub path: String,
    pub body: Bytes,
    pub principal: Principal,
    pub check: Check,
}

/// Which backend's request shapes to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Chroma,
    Qdrant,
}

/// 80 % query, 10 % get by ids, 5 % get by filter, 5 % upsert.
fn pick_kind(rng: &mut Rng) -> Kind {
    match rng.below(100) {
        0..=79 => Kind::Query,
        80..=89 => Kind::GetIds,
        90..=94 => Kind::GetWhere,
        _ => Kind::Upsert,
    }
}

/// alice's read filter, as vecgate translates her plan (`vecgate plan --output chroma`).
fn chroma_acl() -> Value {
    json!({"$and": [{"department": "FINANCE"}, {"region": "EMEA"}]})
}

/// The same for Qdrant, with `required_attrs: [department, region]`.
fn qdrant_acl() -> Value {
    json!({"must": [
        {"key": "metadata.department", "match": {"value": "FINANCE"}},
        {"key": "metadata.region", "match": {"value": "EMEA"}},
    ]})
}

fn to_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("serialise a request body"))
}

/// The request sequence: `SEQUENCE_LEN` requests drawn with a fixed seed, so every target
/// receives the same requests in the same order. `collection` is the Chroma collection's
/// UUID or the Qdrant collection's name. With `app_filter`, reads carry alice's filter.
pub fn sequence(backend: Backend, collection: &str, records: &[Record], app_filter: bool) -> Vec<Request> {
    let chroma_where = |mut body: Value| {
        if app_filter {
            body["where"] = chroma_acl();
        }
        to_bytes(&body)
    };
    let qdrant_filter = |mut body: Value, mut must: Vec<Value>| {
        if app_filter {
            must.extend(qdrant_acl()["must"].as_array().cloned().unwrap_or_default());
        }
        if !must.is_empty() {
            body["filter"] = json!({"must": must});
        }
        to_bytes(&body)
    };
    let mut rng = Rng::new(42);
    let visible = records.iter().filter(|r| r.visible_to_alice()).count();
    let chroma_base = format!(
        "/api/v2/tenants/default_tenant/databases/default_database/collections/{collection}"
    );
    let qdrant_base = format!("/collections/{collection}");
    (0..SEQUENCE_LEN)
        .map(|_| {
            let kind = pick_kind(&mut rng);
            match kind {
                Kind::Collection => unreachable!("the mix has no collection lookups"),
                Kind::Query => {
                    let embedding = unit_vector(&mut rng);
                    let hits = 4.min(visible);
                    match backend {
                        // LangChain's Chroma.similarity_search(k=4, filter=…).
                        Backend::Chroma => Request {
                            kind,
                            method: Method::POST,
                            path: format!("{chroma_base}/query"),
                            body: chroma_where(json!({
                                "query_embeddings": [embedding],
                                "n_results": 4,
                                "include": ["metadatas", "documents", "distances"],
                            })),
                            principal: Principal::Alice,
                            check: Check::Hits(hits),
                        },
                        // LangChain's QdrantVectorStore.similarity_search(k=4, filter=…).
                        Backend::Qdrant => Request {
                            kind,
                            method: Method::POST,
                            path: format!("{qdrant_base}/points/query"),
                            body: qdrant_filter(
                                json!({
                                    "query": embedding,
                                    "limit": 4,
                                    "offset": 0,
                                    "with_payload": true,
                                    "with_vector": false,
                                }),
                                Vec::new(),
                            ),
                            principal: Principal::Alice,
                            check: Check::Hits(hits),
                        },
                    }
                }
                Kind::GetIds => {
                    let picked: Vec<&Record> =
                        (0..IDS_PER_GET).map(|_| &records[rng.below(records.len())]).collect();
                    let mut wanted: Vec<usize> = picked
                        .iter()
                        .filter(|r| r.visible_to_alice())
                        .map(|r| r.index)
                        .collect();
                    wanted.sort_unstable();
                    wanted.dedup();
                    match backend {
                        Backend::Chroma => Request {
                            kind,
                            method: Method::POST,
                            path: format!("{chroma_base}/get"),
                            body: chroma_where(json!({
                                "ids": picked.iter().map(|r| chroma_id(r.index)).collect::<Vec<_>>(),
                                "include": ["metadatas", "documents"],
                            })),
                            principal: Principal::Alice,
                            check: Check::Hits(wanted.len()),
                        },
                        // A scroll on `has_id` and the filter: retrieve (`POST points`)
                        // takes no filter, so the direct paths would get every id back.
                        Backend::Qdrant => Request {
                            kind,
                            method: Method::POST,
                            path: format!("{qdrant_base}/points/scroll"),
                            body: qdrant_filter(
                                json!({
                                    "limit": IDS_PER_GET,
                                    "with_payload": true,
                                    "with_vector": false,
                                }),
                                vec![json!({"has_id": picked.iter().map(|r| r.index).collect::<Vec<_>>()})],
                            ),
                            principal: Principal::Alice,
                            check: Check::Hits(wanted.len()),
                        },
                    }
                }
                Kind::GetWhere => {
                    let hits = 10.min(visible);
                    match backend {
                        Backend::Chroma => Request {
                            kind,
                            method: Method::POST,
                            path: format!("{chroma_base}/get"),
                            body: chroma_where(json!({
                                "limit": 10,
                                "offset": rng.below(visible.saturating_sub(10).max(1)),
                                "include": ["metadatas", "documents"],
                            })),
                            principal: Principal::Alice,
                            check: Check::Hits(hits),
                        },
                        Backend::Qdrant => Request {
                            kind,
                            method: Method::POST,
                            path: format!("{qdrant_base}/points/scroll"),
                            body: qdrant_filter(
                                json!({
                                    "limit": 10,
                                    "with_payload": true,
                                    "with_vector": false,
                                }),
                                Vec::new(),
                            ),
                            principal: Principal::Alice,
                            check: Check::Hits(hits),
                        },
                    }
                }
                Kind::Upsert => {
                    // Re-writes an existing record with its own data, so the collection
                    // stays the same from phase to phase. Through vecgate this is an update
                    // (checked on the stored record and on the result).
                    let r = &records[rng.below(records.len())];
                    match backend {
                        Backend::Chroma => Request {
                            kind,
                            method: Method::POST,
                            path: format!("{chroma_base}/upsert"),
                            body: to_bytes(&json!({
                                "ids": [chroma_id(r.index)],
                                "embeddings": [r.embedding],
                                "metadatas": [r.metadata],
                                "documents": [r.document],
                            })),
                            principal: Principal::Ingest,
                            check: Check::Written,
                        },
                        Backend::Qdrant => Request {
                            kind,
                            method: Method::PUT,
                            path: format!("{qdrant_base}/points?wait=true"),
                            body: to_bytes(&json!({
                                "points": [qdrant_point(r)],
                            })),
                            principal: Principal::Ingest,
                            check: Check::Written,
                        },
                    }
                }
            }
        })
        .collect()
}

/// LangChain QdrantVectorStore's hybrid search (`retrieval_mode=HYBRID`, k=4): a sparse and a
/// 384-d dense prefetch fused by RRF, `with_payload`. With `app_filter`, alice's filter is in
/// both prefetches, as LangChain puts a `filter` there.
pub fn hybrid_queries(collection: &str, app_filter: bool) -> Vec<Request> {
    let mut rng = Rng::new(17);
    (0..64)
        .map(|_| {
            let dense = unit_vector(&mut rng);
            let indices: Vec<u64> = (0..12).map(|_| rng.below(30_000) as u64).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            let values: Vec<f32> = indices.iter().map(|_| ((rng.unit() * 10_000.0).round() / 10_000.0) as f32).collect();
            let mut sparse = json!({"query": {"indices": indices, "values": values}, "using": "langchain-sparse", "limit": 14});
            let mut dense = json!({"query": dense, "using": "", "limit": 14});
            if app_filter {
                sparse["filter"] = qdrant_acl();
                dense["filter"] = qdrant_acl();
            }
            Request {
                kind: Kind::Query,
                method: Method::POST,
                path: format!("/collections/{collection}/points/query"),
                body: to_bytes(&json!({
                    "prefetch": [sparse, dense],
                    "query": {"fusion": "rrf"},
                    "limit": 4,
                    "with_payload": true,
                    "with_vector": false,
                })),
                principal: Principal::Alice,
                check: Check::Hits(4),
            }
        })
        .collect()
}

/// The light request: `GET …/collections/{name}`, as LangChain's `Chroma(...)` does when it
/// opens its collection. Chroma answers it from its catalogue, so the proxies, not the
/// database, set the pace. Through vecgate it is authorized as `read` on the collection.
pub fn light_sequence(collection_name: &str) -> Vec<Request> {
    vec![Request {
        kind: Kind::Collection,
        method: Method::GET,
        path: format!(
            "/api/v2/tenants/default_tenant/databases/default_database/collections/{collection_name}"
        ),
        body: Bytes::new(),
        principal: Principal::Alice,
        check: Check::Collection(collection_name.to_string()),
    }]
}

pub fn chroma_id(index: usize) -> String {
    format!("doc-{index:05}")
}

/// LangChain's payload layout: `{page_content, metadata: {…}}`.
pub fn qdrant_point(r: &Record) -> Value {
    json!({
        "id": r.index,
        "vector": r.embedding,
        "payload": {"page_content": r.document, "metadata": r.metadata},
    })
}

/// Chroma `add` bodies of at most `batch` records each.
pub fn chroma_add_bodies(records: &[Record], batch: usize) -> Vec<Value> {
    records
        .chunks(batch.max(1))
        .map(|chunk| {
            json!({
                "ids": chunk.iter().map(|r| chroma_id(r.index)).collect::<Vec<_>>(),
                "embeddings": chunk.iter().map(|r| &r.embedding).collect::<Vec<_>>(),
                "metadatas": chunk.iter().map(|r| &r.metadata).collect::<Vec<_>>(),
                "documents": chunk.iter().map(|r| &r.document).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Whether an answer is what `check` expects: `None` if so, else a short reason.
pub fn verify(backend: Backend, check: &Check, body: &[u8]) -> Option<String> {
    match check {
        Check::Written => None,
        Check::Collection(name) => match serde_json::from_slice::<Value>(body) {
            Ok(v) if v["name"] == name.as_str() => None,
            Ok(v) => Some(format!("not collection {name}: {}", short(&v))),
            Err(e) => Some(format!("answer is not JSON: {e}")),
        },
        Check::Hits(n) => {
            let v: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return Some(format!("answer is not JSON: {e}")),
            };
            let metas: Vec<&Value> = match backend {
                Backend::Chroma => {
                    // query: metadatas is a list per query embedding; get: a flat list.
                    let m = &v["metadatas"];
                    match m.as_array() {
                        Some(outer) if outer.first().is_some_and(Value::is_array) => outer
                            .iter()
                            .flat_map(|inner| inner.as_array().into_iter().flatten())
                            .collect(),
                        Some(flat) => flat.iter().collect(),
                        None => return Some(format!("no metadatas in {}", short(&v))),
                    }
                }
                Backend::Qdrant => {
                    let points = v["result"]["points"].as_array();
                    match points {
                        Some(p) => p.iter().map(|p| &p["payload"]["metadata"]).collect(),
                        None => return Some(format!("no result.points in {}", short(&v))),
                    }
                }
            };
            if metas.len() != *n {
                return Some(format!("{} hits, expected {n}", metas.len()));
            }
            if metas
                .iter()
                .any(|m| m["department"] != "FINANCE" || m["region"] != "EMEA")
            {
                return Some("a hit alice may not see".to_string());
            }
            None
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    s.chars().take(200).collect()
}
