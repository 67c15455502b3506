//! A stand-in upstream for tests that must see exactly which requests reached "the database":
//! it records every request line and answers with a closure's JSON. [`serve_http`], the small
//! HTTP/1.1 loop under it, also serves other stand-ins (see `filter_ignoring_relay`).

use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// The collection id the default answers use.
pub const STUB_COLLECTION_ID: &str = "9a6f4bde-33f2-4d1c-9b5e-2f9a7f0c1d11";

/// The request lines received so far (`POST /path HTTP/1.1`).
pub type Seen = Arc<Mutex<Vec<String>>>;

/// One request as it arrived (bodies by `Content-Length`; vecgate never sends chunked ones).
pub struct RawRequest {
    /// `POST /path HTTP/1.1`, trimmed.
    pub line: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// The method and the path with its query.
    pub fn method_and_target(&self) -> (&str, &str) {
        let mut parts = self.line.split(' ');
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
    }
}

/// An answer to send back.
pub struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Serves `listener` on background threads, one per connection, keeping connections alive:
/// `handle` answers each request, or returns `None` to close the connection without answering
/// (a database that drops the connection).
pub fn serve_http(listener: TcpListener, handle: impl Fn(RawRequest) -> Option<RawResponse> + Send + Sync + 'static) {
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handle = handle.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                while let Some(request) = read_request(&mut reader) {
                    let Some(response) = handle(request) else { return };
                    if write_response(&mut stream, &response).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<RawRequest> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return None;
        }
        if header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            }
            headers.push((name, value));
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(RawRequest { line: line.trim().to_string(), headers, body })
}

fn write_response(stream: &mut TcpStream, response: &RawResponse) -> std::io::Result<()> {
    let reason = http::StatusCode::from_u16(response.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("-");
    let mut head = format!("HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\n", response.status, response.body.len());
    if let Some(content_type) = &response.content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)
}

/// Starts the stub on a free loopback port; `answer` maps a request line to a 200 JSON body.
pub fn stub_upstream(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    serve_http(listener, move |request| {
        record.lock().unwrap().push(request.line.clone());
        Some(RawResponse {
            status: 200,
            content_type: Some("application/json".into()),
            body: answer(&request.line).into_bytes(),
        })
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
