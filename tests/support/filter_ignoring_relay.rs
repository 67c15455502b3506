//! A stand-in for a database whose filtering has failed, built on the real one: a relay on a
//! loopback port that passes every request to a real server (Chroma) and its answer back,
//! unchanged, except as its [`RelayMode`] says:
//!
//! - `Faithful`: everything passes unchanged (a healthy database);
//! - `IgnoreFilter`: the top-level `where` of every JSON request body is dropped before it is
//!   relayed, so the database answers as if the filter vecgate injected matched everything —
//!   what a translation bug, a record written around vecgate or metadata of an unexpected type
//!   would look like from vecgate. The answer is the real server's, in its real shape;
//! - `Unreachable`: the request is read and the connection closed without an answer (a
//!   database that went away).
//!
//! The mode can be switched while vecgate is connected.

use super::stub_upstream::{serve_http, RawRequest, RawResponse};
use serde_json::Value;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RelayMode {
    Faithful = 0,
    IgnoreFilter = 1,
    Unreachable = 2,
}

pub struct FilterIgnoringRelay {
    url: String,
    mode: Arc<AtomicU8>,
}

impl FilterIgnoringRelay {
    /// Starts relaying to `upstream` (`http://host:port`), in `Faithful` mode.
    pub fn start(upstream: &str) -> FilterIgnoringRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mode = Arc::new(AtomicU8::new(RelayMode::Faithful as u8));
        let current = mode.clone();
        let upstream = upstream.trim_end_matches('/').to_string();
        let agent = ureq::AgentBuilder::new()
            .try_proxy_from_env(false)
            .timeout(Duration::from_secs(60))
            .build();
        serve_http(listener, move |request| {
            match current.load(Ordering::SeqCst) {
                m if m == RelayMode::Unreachable as u8 => None,
                m => relay(&agent, &upstream, request, m == RelayMode::IgnoreFilter as u8),
            }
        });
        FilterIgnoringRelay { url, mode }
    }

    /// `http://127.0.0.1:PORT`, to configure as vecgate's upstream.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn set_mode(&self, mode: RelayMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

/// Relays one request; `None` (the connection closes unanswered) if the server cannot be
/// reached, which vecgate then reports as an upstream error like any other.
fn relay(agent: &ureq::Agent, upstream: &str, request: RawRequest, ignore_filter: bool) -> Option<RawResponse> {
    let (method, target) = request.method_and_target();
    let mut body = request.body.clone();
    if ignore_filter {
        if let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(&body) {
            if object.remove("where").is_some() {
                body = serde_json::to_vec(&Value::Object(object)).unwrap();
            }
        }
    }
    let mut call = agent.request(method, &format!("{upstream}{target}"));
    for (name, value) in &request.headers {
        if matches!(name.as_str(), "content-type" | "accept" | "x-request-id") {
            call = call.set(name, value);
        }
    }
    let answer = match call.send_bytes(&body) {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => {
            eprintln!("filter_ignoring_relay: no answer from {upstream}: {e}");
            return None;
        }
    };
    let status = answer.status();
    let content_type = answer.header("content-type").map(str::to_string);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut answer.into_reader(), &mut bytes).unwrap();
    Some(RawResponse { status, content_type, body: bytes })
}
