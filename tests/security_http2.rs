//! HTTP/2 on vecgate's plain-TCP listener (hyper-util's auto builder: HTTP/2 with prior
//! knowledge, issue 8 item 2). Ordinary requests go through hyper's own HTTP/2 client and get
//! the same authorization as HTTP/1.1. Shapes a conforming client cannot produce (connection
//! headers, `transfer-encoding`, uppercase names, a `content-length` that disagrees with the
//! DATA frames, repeated pseudo-headers, oversized header blocks, a stream flood) are written
//! frame by frame by [`RawH2`]. Where the HTTP/2 layer refuses a shape, the test asserts how the
//! stream or connection ends and that the Qdrant stand-in behind vecgate never saw the request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::{repo_root, QdrantServer};

const SCROLL: &str = "/collections/docs/points/scroll";

fn alice() -> String {
    token("alice", &["user"], &json!({"department": "finance"}))
}

fn bob() -> String {
    token("bob", &["user"], &json!({"department": "hr"}))
}

struct Gate {
    qdrant: QdrantServer,
    vecgate: VecgateServer,
    runtime: tokio::runtime::Runtime,
}

/// The stand-in with finance points 1, 2 and hr points 3, 4; vecgate in front of it.
fn gate() -> Gate {
    let qdrant = QdrantServer::start();
    qdrant.create_collection("docs", 2);
    let doc = |d: &str| json!({"page_content": "note", "metadata": {"department": d, "level": 1, "owner": "x"}});
    qdrant.upsert(
        "docs",
        &[
            (json!(1), vec![1.0, 0.0], doc("finance")),
            (json!(2), vec![0.9, 0.1], doc("finance")),
            (json!(3), vec![0.0, 1.0], doc("hr")),
            (json!(4), vec![0.1, 0.9], doc("hr")),
        ],
    );
    let vecgate = VecgateServer::start(&VecgateOptions::qdrant(
        qdrant.url(),
        &repo_root().join("tests/fixtures/proxy/policies"),
    ));
    qdrant.clear_recorded_requests();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    Gate { qdrant, vecgate, runtime }
}

fn ids(body: &Value) -> BTreeSet<String> {
    body["result"]["points"]
        .as_array()
        .unwrap_or_else(|| panic!("no points in {body}"))
        .iter()
        .map(|p| p["id"].to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

impl Gate {
    /// One request over a new HTTP/2 connection made by hyper's client: status and body.
    fn h2(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> (u16, Value) {
        let port = self.vecgate.port();
        let request = {
            let mut b = http::Request::builder().method(method).uri(format!("http://127.0.0.1:{port}{path}"));
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            let bytes = match body {
                Some(v) => {
                    b = b.header("content-type", "application/json");
                    Bytes::from(v.to_string())
                }
                None => Bytes::new(),
            };
            b.body(Full::new(bytes)).unwrap()
        };
        self.runtime.block_on(async move {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
            tokio::spawn(connection);
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.version(), http::Version::HTTP_2);
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
            (status, body)
        })
    }

    fn bearer(tok: &str) -> String {
        format!("Bearer {tok}")
    }

    fn recorded(&self) -> Vec<String> {
        self.qdrant
            .recorded_requests()
            .iter()
            .map(|r| format!("{} {}", r["method"].as_str().unwrap(), r["path"].as_str().unwrap()))
            .collect()
    }

    fn assert_nothing_forwarded(&self) {
        let r = self.recorded();
        assert!(r.is_empty(), "reached the database: {r:?}");
    }

    /// alice's scroll over HTTP/2 on a new connection: served and filtered.
    fn assert_still_serving(&self) {
        let (status, got) = self.h2("POST", SCROLL, &[("authorization", &Self::bearer(&alice()))], Some(&json!({"limit": 100})));
        assert_eq!(status, 200, "{got}\n{}", self.vecgate.log_tail());
        assert_eq!(ids(&got), set(&["1", "2"]));
    }
}

#[test]
fn http2_requests_are_authorized_like_http1() {
    let g = gate();
    let scroll = json!({"limit": 100, "with_payload": true});
    // No token, a forged one: 401 in Qdrant's shape, delivered as a normal HTTP/2 response.
    let (status, got) = g.h2("POST", SCROLL, &[], Some(&scroll));
    assert_eq!(status, 401, "{got}");
    assert!(got["status"]["error"].is_string(), "{got}");
    let forged = format!("{}x", alice());
    let (status, _) = g.h2("POST", SCROLL, &[("authorization", &Gate::bearer(&forged))], Some(&scroll));
    assert_eq!(status, 401);
    g.assert_nothing_forwarded();
    // Filtered per principal, through both token headers.
    let (status, got) = g.h2("POST", SCROLL, &[("authorization", &Gate::bearer(&alice()))], Some(&scroll));
    assert_eq!((status, ids(&got)), (200, set(&["1", "2"])), "{got}");
    let (status, got) = g.h2("POST", SCROLL, &[("api-key", &bob())], Some(&scroll));
    assert_eq!((status, ids(&got)), (200, set(&["3", "4"])), "{got}");
    let (status, got) = g.h2("POST", "/collections/docs/points/query", &[("api-key", &alice())], Some(&json!({"query": [0.0, 1.0], "limit": 10})));
    assert_eq!((status, ids(&got)), (200, set(&["1", "2"])), "{got}");
    // By id: hidden points look missing; inputs naming them too, and payload writes to them.
    let (status, _) = g.h2("GET", "/collections/docs/points/3", &[("api-key", &alice())], None);
    assert_eq!(status, 404);
    let (status, _) = g.h2("POST", "/collections/docs/points/query", &[("api-key", &alice())], Some(&json!({"query": {"nearest": 3}})));
    assert_eq!(status, 404);
    let (status, _) = g.h2("POST", "/collections/docs/points/payload?wait=true", &[("api-key", &alice())], Some(&json!({"payload": {"x": 1}, "points": [3]})));
    assert_eq!(status, 404);
    // Strict bodies and encodings apply as over HTTP/1.1.
    let (status, _) = g.h2("POST", SCROLL, &[("api-key", &alice()), ("content-encoding", "gzip")], Some(&json!({})));
    assert_eq!(status, 415);
    let (status, _) = g.h2("POST", SCROLL, &[("api-key", &alice())], Some(&json!({"Filter": {"must": []}})));
    assert_eq!(status, 400);
    // What reached the database: the three reads, GET points/3 (post-filtered), and vecgate's
    // own lookups of point 3 for the query input and the write check; not the refused ones.
    let forwarded = g.recorded();
    let want = [
        format!("POST {SCROLL}"),
        format!("POST {SCROLL}"),
        "POST /collections/docs/points/query".to_string(),
        "GET /collections/docs/points/3".to_string(),
        "POST /collections/docs/points".to_string(),
        "POST /collections/docs/points".to_string(),
    ];
    assert_eq!(forwarded, want);
    assert_eq!(g.qdrant.scroll_ids("docs", None).unwrap().len(), 4);
}

#[test]
fn http2_path_pseudo_header_tricks_are_refused_like_http1() {
    let g = gate();
    let tok = alice();
    for path in [
        "/collections/docs%2Fpoints/scroll",
        "/collections/docs/x/../points/scroll",
        "/collections/docs/points/scroll/..",
        "/collections/docs/x/%2e%2e/points/scroll",
        "/collections/docs/./points/scroll",
        "/collections/docs/points/%73croll",
        "/collections/docs/shards/0/points/scroll",
    ] {
        let (status, got) = g.h2("POST", path, &[("api-key", &tok)], Some(&json!({})));
        assert_eq!(status, 403, "{path}: {got}");
    }
    g.assert_nothing_forwarded();
    // Merged and trailing slashes: the route Qdrant would run, filtered.
    for path in ["//collections/docs/points/scroll", "/collections/docs/points/scroll/"] {
        let (status, got) = g.h2("POST", path, &[("api-key", &tok)], Some(&json!({"limit": 100})));
        assert_eq!((status, ids(&got)), (200, set(&["1", "2"])), "{path}: {got}");
    }
    assert_eq!(g.recorded(), vec![format!("POST {SCROLL}"); 2]);
}

// ---- raw frames -----------------------------------------------------------------------------

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PROTOCOL_ERROR: u32 = 0x1;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// How a stream ended, as seen by the client.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// A response HEADERS frame with this `:status`.
    Response(u16),
    /// RST_STREAM with this error code.
    Reset(u32),
    /// GOAWAY with this error code.
    GoAway(u32),
    /// The connection closed without either.
    Closed,
}

/// An HTTP/2 client that writes frames exactly as told (HPACK literals without Huffman or
/// indexing), for shapes hyper's client refuses to send.
struct RawH2 {
    stream: TcpStream,
}

/// An HPACK integer with an `n`-bit prefix; `flags` are the bits above the prefix.
fn hpack_int(out: &mut Vec<u8>, flags: u8, n: u32, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A header block of literal fields without indexing, names and values taken verbatim.
fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_int(&mut out, 0x00, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, 0x00, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Digits of a Huffman-coded `:status` (RFC 7541 Appendix B: 0-2 are 5 bits, 3-9 are 6).
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let mut bits: Vec<u8> = bytes.iter().flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1)).collect();
    let mut out = String::new();
    while bits.len() >= 5 {
        let five = bits[..5].iter().fold(0u8, |a, b| (a << 1) | b);
        if five <= 2 {
            out.push((b'0' + five) as char);
            bits.drain(..5);
        } else if bits.len() >= 6 && (0x19..=0x1f).contains(&bits[..6].iter().fold(0u8, |a, b| (a << 1) | b)) {
            let six = bits[..6].iter().fold(0u8, |a, b| (a << 1) | b);
            out.push((b'3' + six - 0x19) as char);
            bits.drain(..6);
        } else {
            break;
        }
    }
    (bits.iter().all(|b| *b == 1) && bits.len() < 8).then_some(out)
}

/// The `:status` at the start of a response header block (the first field hyper sends).
fn status_of(block: &[u8]) -> Option<u16> {
    let first = *block.first()?;
    if first & 0x80 != 0 {
        // Indexed from the static table.
        return match first & 0x7f {
            8 => Some(200),
            9 => Some(204),
            10 => Some(206),
            11 => Some(304),
            12 => Some(400),
            13 => Some(404),
            14 => Some(500),
            _ => None,
        };
    }
    // A literal whose name is static entry 8 (`:status`), with or without indexing.
    if first != 0x48 && first != 0x08 && first != 0x18 {
        return None;
    }
    let len_byte = *block.get(1)?;
    let len = usize::from(len_byte & 0x7f);
    let value = block.get(2..2 + len)?;
    let text = if len_byte & 0x80 != 0 { huffman_digits(value)? } else { String::from_utf8(value.to_vec()).ok()? };
    text.parse().ok()
}

fn frame_bytes(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream_id.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

impl RawH2 {
    fn connect(port: u16) -> RawH2 {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut raw = RawH2 { stream };
        raw.stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        raw.frame(SETTINGS, 0, 0, &[]);
        raw
    }

    fn frame(&mut self, kind: u8, flags: u8, stream_id: u32, payload: &[u8]) {
        // The server may already have closed the connection: what it answered is read later.
        let _ = self.stream.write_all(&frame_bytes(kind, flags, stream_id, payload));
    }

    /// A request's header block in one HEADERS frame.
    fn headers(&mut self, stream_id: u32, fields: &[(&str, &str)], end_stream: bool) {
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.frame(HEADERS, flags, stream_id, &header_block(fields));
    }

    fn data(&mut self, stream_id: u32, bytes: &[u8], end_stream: bool) {
        self.frame(DATA, if end_stream { END_STREAM } else { 0 }, stream_id, bytes);
    }

    /// A request's HEADERS and one DATA frame ending the stream, in one write: if the server
    /// ends the connection, it has read all of it, so its GOAWAY is not lost to a reset.
    fn request(&mut self, stream_id: u32, fields: &[(&str, &str)], body: &[u8]) {
        let mut bytes = frame_bytes(HEADERS, END_HEADERS, stream_id, &header_block(fields));
        bytes.extend(frame_bytes(DATA, END_STREAM, stream_id, body));
        let _ = self.stream.write_all(&bytes);
    }

    /// Reads frames until `stream_id` gets a response, a reset, or the connection ends.
    fn outcome(&mut self, stream_id: u32) -> Outcome {
        loop {
            let mut head = [0u8; 9];
            match self.stream.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset) => return Outcome::Closed,
                Err(e) => panic!("reading a frame: {e}"),
            }
            let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
            let (kind, flags) = (head[3], head[4]);
            let id = u32::from_be_bytes([head[5] & 0x7f, head[6], head[7], head[8]]);
            let mut payload = vec![0u8; len];
            if self.stream.read_exact(&mut payload).is_err() {
                return Outcome::Closed;
            }
            match kind {
                SETTINGS if flags & 0x1 == 0 => self.frame(SETTINGS, 0x1, 0, &[]),
                HEADERS if id == stream_id => {
                    return Outcome::Response(status_of(&payload).unwrap_or_else(|| panic!("undecodable status {payload:02x?}")))
                }
                RST_STREAM if id == stream_id => return Outcome::Reset(u32::from_be_bytes(payload[..4].try_into().unwrap())),
                GOAWAY => return Outcome::GoAway(u32::from_be_bytes(payload[4..8].try_into().unwrap())),
                _ => {}
            }
        }
    }
}

/// A scroll request's header fields with alice's token, plus `extra`.
fn scroll_fields<'a>(port_authority: &'a str, bearer: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", port_authority),
        (":path", SCROLL),
        ("authorization", bearer),
        ("content-type", "application/json"),
    ];
    fields.extend_from_slice(extra);
    fields
}

#[test]
fn http2_smuggling_shapes_are_refused_at_the_protocol_layer_and_never_forwarded() {
    let g = gate();
    let port = g.vecgate.port();
    let authority = format!("127.0.0.1:{port}");
    let bearer = Gate::bearer(&alice());
    let body = br#"{"limit": 100}"#;

    // The raw client works: a well-formed request is answered and filtered.
    let mut c = RawH2::connect(port);
    c.request(1, &scroll_fields(&authority, &bearer, &[]), body);
    assert_eq!(c.outcome(1), Outcome::Response(200));
    assert_eq!(g.recorded(), vec![format!("POST {SCROLL}")]);
    g.qdrant.clear_recorded_requests();

    // Header blocks HTTP/2 forbids (RFC 9113 §8.2): each stream is reset with PROTOCOL_ERROR
    // before vecgate sees a request. Uppercase names fail in h2's HPACK decoder, which is
    // connection state, so those end the whole connection (GOAWAY PROTOCOL_ERROR).
    let hidden_len = "40".to_string();
    let malformed: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("transfer-encoding", vec![("transfer-encoding", "chunked")]),
        ("connection", vec![("connection", "keep-alive")]),
        ("keep-alive", vec![("keep-alive", "timeout=5")]),
        ("upgrade", vec![("upgrade", "h2c")]),
        ("proxy-connection", vec![("proxy-connection", "keep-alive")]),
        ("te other than trailers", vec![("te", "gzip")]),
        ("conflicting content-lengths", vec![("content-length", "14"), ("content-length", &hidden_len)]),
        ("uppercase name", vec![("Authorization", &bearer)]),
        ("uppercase content-length", vec![("Content-Length", "14")]),
        ("a second :path", vec![(":path", "/collections/other/points/scroll")]),
    ];
    for (what, extra) in &malformed {
        let mut c = RawH2::connect(port);
        let mut fields = scroll_fields(&authority, &bearer, &[]);
        if what.starts_with("a second") {
            // Pseudo-headers must come first; a repeated one is malformed wherever it is.
            fields.insert(4, extra[0]);
        } else {
            fields.extend_from_slice(extra);
        }
        c.request(1, &fields, body);
        let want = if what.starts_with("uppercase") { Outcome::GoAway(PROTOCOL_ERROR) } else { Outcome::Reset(PROTOCOL_ERROR) };
        assert_eq!(c.outcome(1), want, "{what}");
    }

    // A content-length that disagrees with the DATA frames: more data than declared, or the
    // stream ended short of it.
    for (declared, sent) in [("2", &body[..]), ("100", &body[..])] {
        let mut c = RawH2::connect(port);
        c.request(1, &scroll_fields(&authority, &bearer, &[("content-length", declared)]), sent);
        assert_eq!(c.outcome(1), Outcome::Reset(PROTOCOL_ERROR), "content-length {declared}, {} bytes sent", sent.len());
    }
    // END_STREAM on the HEADERS frame with a non-zero content-length.
    let mut c = RawH2::connect(port);
    c.headers(1, &scroll_fields(&authority, &bearer, &[("content-length", "14")]), true);
    assert_eq!(c.outcome(1), Outcome::Reset(PROTOCOL_ERROR));

    std::thread::sleep(Duration::from_millis(200));
    g.assert_nothing_forwarded();
    g.assert_still_serving();
}

#[test]
fn oversized_header_blocks_and_continuation_floods_are_refused_and_the_proxy_keeps_serving() {
    let g = gate();
    let port = g.vecgate.port();
    let authority = format!("127.0.0.1:{port}");
    let bearer = Gate::bearer(&alice());

    // 2 000 small headers (hyper's header list limit is 16 KiB), split over CONTINUATION frames.
    let names: Vec<String> = (0..2000).map(|i| format!("x-h{i}")).collect();
    let mut fields = scroll_fields(&authority, &bearer, &[]);
    fields.extend(names.iter().map(|n| (n.as_str(), "v")));
    let block = header_block(&fields);
    let mut c = RawH2::connect(port);
    let chunks: Vec<&[u8]> = block.chunks(8_000).collect();
    let mut frames = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        frames.extend(frame_bytes(kind, if last { END_HEADERS | END_STREAM } else { 0 }, 1, chunk));
    }
    c.stream.write_all(&frames).unwrap();
    assert_eq!(c.outcome(1), Outcome::Response(431), "2000 headers");

    // A CONTINUATION flood: a header block that never ends, in 50 small frames (h2 allows 5
    // here, since 16 KiB of headers fit in one frame). Written at once, so the server has
    // read everything when it closes and its GOAWAY is not lost to a reset.
    let mut c = RawH2::connect(port);
    let mut flood = frame_bytes(HEADERS, 0, 1, &header_block(&scroll_fields(&authority, &bearer, &[])));
    for i in 0..50 {
        flood.extend(frame_bytes(CONTINUATION, 0, 1, &header_block(&[(&format!("x-pad-{i}"), "a")])));
    }
    c.stream.write_all(&flood).unwrap();
    assert_eq!(c.outcome(1), Outcome::GoAway(ENHANCE_YOUR_CALM), "CONTINUATION flood");

    g.assert_nothing_forwarded();
    g.assert_still_serving();
}

#[test]
fn a_flood_of_open_streams_does_not_stop_other_clients() {
    let g = gate();
    let port = g.vecgate.port();
    let authority = format!("127.0.0.1:{port}");
    let bearer = Gate::bearer(&alice());
    // 300 streams with valid tokens whose bodies do not come (hyper allows 200 at once and
    // refuses the rest).
    let mut flood = RawH2::connect(port);
    for i in 0..300u32 {
        flood.headers(2 * i + 1, &scroll_fields(&authority, &bearer, &[("content-length", "14")]), false);
    }
    // Other clients, over HTTP/2 and HTTP/1.1, are served meanwhile.
    g.assert_still_serving();
    let (status, got) = g.h2("POST", SCROLL, &[("api-key", &bob())], Some(&json!({"limit": 100})));
    assert_eq!((status, ids(&got)), (200, set(&["3", "4"])), "{got}");
    let (status, got) = g.vecgate.call("POST", SCROLL, Some(&alice()), Some(&json!({"limit": 100})));
    assert_eq!((status, ids(&got)), (200, set(&["1", "2"])), "{got}");
    // None of the waiting streams reached the database; the first one was really open and
    // waiting: given its body, it is answered.
    assert_eq!(g.recorded(), vec![format!("POST {SCROLL}"); 3]);
    flood.data(1, br#"{"limit": 100}"#, true);
    assert_eq!(flood.outcome(1), Outcome::Response(200));
    drop(flood);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(g.recorded(), vec![format!("POST {SCROLL}"); 4]);
    g.assert_still_serving();
}
