//! A Chroma-shaped stub upstream: canned answers, no search. With it, a LangChain query's
//! cost is the proxies' own, so the issue's fixed rates can be offered to the real request
//! shape. It runs on its own thread and single-threaded runtime inside the harness process.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::net::SocketAddr;

/// The collection id the stub answers for (any UUID will do; vecgate asks for its name).
pub const COLLECTION_ID: &str = "0b6d4a3c-5a47-4c1e-9a36-5d0e2f7b8c91";

/// A `query` answer with `hits` hits, all FINANCE/EMEA (what the pushdown would return).
fn query_answer(hits: usize) -> Bytes {
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

/// Starts the stub on a free loopback port; it lives until the process ends.
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
    let query = query_answer(hits);
    std::thread::Builder::new()
        .name("stub-upstream".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("stub runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("stub listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let (collection, query) = (collection.clone(), query.clone());
                    tokio::spawn(async move {
                        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let (collection, query) = (collection.clone(), query.clone());
                            async move {
                                let (status, body) = match (req.method().as_str(), req.uri().path()) {
                                    ("POST", p) if p.ends_with("/query") => (200, query),
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
