//! A stand-in upstream for tests that must see exactly which requests reached "the database":
//! it records every request line and answers with a closure's JSON.

use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

/// The collection id the default answers use.
pub const STUB_COLLECTION_ID: &str = "9a6f4bde-33f2-4d1c-9b5e-2f9a7f0c1d11";

/// The request lines received so far (`POST /path HTTP/1.1`).
pub type Seen = Arc<Mutex<Vec<String>>>;

/// Starts the stub on a free loopback port; `answer` maps a request line to a 200 JSON body.
pub fn stub_upstream(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> (String, Seen) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (record, answer) = (record.clone(), answer.clone());
            std::thread::spawn(move || loop {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                record.lock().unwrap().push(line.trim().to_string());
                let mut length = 0usize;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 {
                        return;
                    }
                    if header == "\r\n" {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let text = answer(line.trim());
                let written = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                    text.len()
                );
                if written.is_err() {
                    return;
                }
            });
        }
    });
    (url, seen)
}

/// The stub answering collection lookups with `docs` ([`STUB_COLLECTION_ID`]) and record reads
/// with an empty result.
pub fn counting_upstream() -> (String, Seen) {
    stub_upstream(|line| {
        if line.contains("/by-id/") {
            json!({"id": STUB_COLLECTION_ID, "name": "docs"}).to_string()
        } else {
            json!({"ids": [], "metadatas": [], "documents": null, "embeddings": null,
                   "uris": null, "include": ["metadatas"]})
            .to_string()
        }
    })
}
