//! A stub upstream shaped like Chroma and Qdrant at once: canned answers, no search. With it,
//! a LangChain query's cost is the proxies' own, so fixed rates can be offered to the real
//! request shapes. It runs on its own thread and single-threaded runtime inside the harness
//! process.
//!
//! It answers: Chroma's collection lookups (`GET …/collections/…`), `query` (the canned
//! hits), `get` (no records: a write through vecgate then creates them) and the writes
//! (`add`, `upsert`, `update`: `{}`); Qdrant's `points/query` (the canned points) and
//! `PUT points` (completed). Every hit is FINANCE/EMEA, what the pushed-down filter returns.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::net::SocketAddr;

/// The collection id the stub answers for (any UUID will do; vecgate asks for its name).
pub const COLLECTION_ID: &str = "0b6d4a3c-5a47-4c1e-9a36-5d0e2f7b8c91";

/// A Chroma `query` answer with `hits` hits.
fn chroma_query_answer(hits: usize) -> Bytes {
    let ids: Vec<String> = (0..hits).map(|i| format!("doc-{i:05}")).collect();
    let documents: Vec<String> = (0..hits).map(|i| format!("Finance EMEA note {i}: quarterly figures.")).collect();
    let metadatas: Vec<_> = (0..hits)
        .map(|i| json!({"department": "FINANCE", "region": "EMEA", "owner": "alice", "page": i}))
        .collect();
    let distances: Vec<f64> = (0..hits).map(|i| 0.2 + i as f64 / 100.0).collect();
    Bytes::from(
        json!({
            "ids": [ids], "documents": [documents], "metadatas": [metadatas],
            "distances": [distances], "embeddings": null, "uris": null, "data": null,
            "include": ["metadatas", "documents", "distances"],
        })
        .to_string(),
    )
}

/// A Qdrant `points/query` answer with `hits` points in LangChain's payload layout.
fn qdrant_query_answer(hits: usize) -> Bytes {
    let points: Vec<_> = (0..hits)
        .map(|i| {
            json!({
                "id": i, "version": 3, "score": 0.9 - i as f64 / 1000.0,
                "payload": {
                    "page_content": format!("Finance EMEA note {i}: quarterly figures."),
                    "metadata": {"department": "FINANCE", "region": "EMEA", "owner": "alice", "page": i},
                },
            })
        })
        .collect();
    Bytes::from(json!({"result": {"points": points}, "status": "ok", "time": 0.000_2}).to_string())
}

/// Starts the stub on a free loopback port, its query answers carrying `hits` hits; it lives
/// until the process ends.
pub fn start(collection_name: &str, hits: usize) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the stub");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let addr = listener.local_addr().expect("stub address");
    let collection = Bytes::from(
        json!({
            "id": COLLECTION_ID, "name": collection_name, "metadata": null, "dimension": 384,
            "tenant": "default_tenant", "database": "default_database", "configuration_json": {},
        })
        .to_string(),
    );
    let chroma_query = chroma_query_answer(hits);
    let qdrant_query = qdrant_query_answer(hits);
    let no_records = Bytes::from_static(br#"{"ids":[],"embeddings":null,"documents":null,"uris":null,"data":null,"metadatas":[],"include":["metadatas"]}"#);
    let written = Bytes::from_static(b"{}");
    let completed = Bytes::from_static(br#"{"result":{"operation_id":1,"status":"completed"},"status":"ok","time":0.0001}"#);
    std::thread::Builder::new()
        .name("stub-upstream".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("stub runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("stub listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let answers = [collection.clone(), chroma_query.clone(), qdrant_query.clone(), no_records.clone(), written.clone(), completed.clone()];
                    tokio::spawn(async move {
                        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let [collection, chroma_query, qdrant_query, no_records, written, completed] = answers.clone();
                            async move {
                                let path = req.uri().path().to_string();
                                let (status, body) = match (req.method().as_str(), path.as_str()) {
                                    ("POST", p) if p.ends_with("/points/query") => (200, qdrant_query),
                                    ("PUT", p) if p.ends_with("/points") => (200, completed),
                                    ("POST", p) if p.ends_with("/query") => (200, chroma_query),
                                    ("POST", p) if p.ends_with("/get") => (200, no_records),
                                    ("POST", p) if p.ends_with("/add") || p.ends_with("/upsert") || p.ends_with("/update") => (200, written),
                                    ("GET", p) if p.contains("/collections/") => (200, collection),
                                    _ => (404, Bytes::from_static(br#"{"error":"NotFoundError","message":"stub"}"#)),
                                };
                                // Read the whole request, as a database would.
                                let _ = req.into_body().collect().await;
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(body))
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        })
        .expect("stub thread");
    addr
}
