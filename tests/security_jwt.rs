//! Attacks on authentication (issue 8, item 1), against the Chroma backend. Every forged,
//! stale, misdirected or malformed token is answered 401 by vecgate itself: the counting
//! stand-in upstream behind it sees zero requests. Each test ends with a valid token as the
//! control, which does reach the upstream, so "zero requests" is not an artefact of a broken
//! counter. The tokens come from `support::jwt_attacks`, shared with the Qdrant suite
//! (`tests/security_qdrant.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use support::chroma::DEFAULT_DB_PATH;
use support::jwt_attacks::{self as attacks, hs_signed, hs_token, now, rs256_auth_yaml, rs_valid, Attack};
use support::repo_root;
use support::stub_upstream::{counting_upstream, Seen};
use support::vecgate::{token, token_with, VecgateOptions, VecgateServer, AUDIENCE, ISSUER};

const COLLECTION_ID: &str = "9a6f4bde-33f2-4d1c-9b5e-2f9a7f0c1d11";

fn policies() -> PathBuf {
    repo_root().join("tests/fixtures/proxy/policies")
}

fn get_path() -> String {
    format!("{DEFAULT_DB_PATH}/collections/{COLLECTION_ID}/get")
}

struct Gate {
    vecgate: VecgateServer,
    seen: Seen,
    upstream_url: String,
}

/// vecgate with its default HS256 configuration in front of a counting upstream.
fn hs_gate() -> Gate {
    let (url, seen) = counting_upstream();
    let vecgate = VecgateServer::start(&VecgateOptions::chroma(&url, &policies()));
    Gate { vecgate, seen, upstream_url: url }
}

/// vecgate configured for RS256 with a static public key.
fn rs_gate() -> Gate {
    let (url, seen) = counting_upstream();
    let mut opts = VecgateOptions::chroma(&url, &policies());
    opts.auth_yaml = Some(rs256_auth_yaml());
    let vecgate = VecgateServer::start(&opts);
    Gate { vecgate, seen, upstream_url: url }
}

impl Gate {
    /// POST `{}` to the collection's get route with `tok`, on a fresh connection each time.
    fn post_get(&self, tok: &str) -> (u16, String) {
        let agent = ureq::AgentBuilder::new().max_idle_connections(0).build();
        let result = agent
            .post(&format!("{}{}", self.vecgate.url(), get_path()))
            .set("Authorization", &format!("Bearer {tok}"))
            .send_json(json!({}));
        match result {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("transport error {e}\n{}", self.vecgate.log_tail()),
        }
    }

    fn get(&self, tok: &str) -> u16 {
        self.post_get(tok).0
    }

    fn assert_401(&self, tok: &str, what: &str) {
        let (status, body) = self.post_get(tok);
        assert_eq!(status, 401, "{what}: {body}");
    }

    fn assert_all_401(&self, attacks: &[Attack]) {
        assert!(!attacks.is_empty());
        for a in attacks {
            self.assert_401(&a.token, &a.label);
        }
    }

    fn assert_nothing_forwarded(&self) {
        let seen = self.seen.lock().unwrap().clone();
        assert!(seen.is_empty(), "the upstream was reached: {seen:?}");
    }

    /// The control: a valid token reaches the upstream (the counter works).
    fn assert_control_reaches_upstream(&self, tok: &str) {
        let status = self.get(tok);
        assert_eq!(status, 200, "control token refused\n{}", self.vecgate.log_tail());
        assert!(!self.seen.lock().unwrap().is_empty(), "the counter saw nothing for a valid request");
    }
}

/// Sends raw bytes on a fresh connection; the status of the answer, or `None` when the
/// connection was closed (or reset) without one.
fn raw_exchange(port: u16, request: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server may answer and close before it has read everything: a write error is fine.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let first = text.lines().next()?;
    first.split_whitespace().nth(1)?.parse().ok()
}

fn raw_post(port: u16, extra_headers: &str) -> Option<u16> {
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: 2\r\nConnection: close\r\n{extra_headers}\r\n{{}}",
        get_path()
    );
    raw_exchange(port, request.as_bytes())
}

#[test]
fn alg_none_in_any_spelling_is_401() {
    let g = hs_gate();
    g.assert_all_401(&attacks::alg_none());
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&hs_token(&json!({})));
}

#[test]
fn rs256_deployment_refuses_hs256_keyed_with_the_public_key_and_other_algorithms() {
    let g = rs_gate();
    g.assert_all_401(&attacks::rs256_confusion());
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&rs_valid());
}

#[test]
fn stripped_or_altered_signatures_are_401() {
    let g = hs_gate();
    g.assert_all_401(&attacks::signature_tampering());
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&hs_token(&json!({})));
}

#[test]
fn stale_misdirected_and_incomplete_claims_are_401() {
    let g = hs_gate();
    g.assert_all_401(&attacks::bad_claims());
    // The helpers' own expired token too.
    g.assert_401(&token_with("alice", &["user"], &json!({"department": "finance"}), -600), "token_with expired");
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&hs_token(&json!({})));
}

#[test]
fn a_valid_token_for_another_audience_is_401() {
    // Signed with the very same key by the same issuer, only meant for another service.
    let g = hs_gate();
    let for_other = attacks::other_audience();
    g.assert_all_401(&for_other);
    let via_chroma_header = g.vecgate.call_with_headers(
        "POST", &get_path(), None, Some(&json!({})), &[("X-Chroma-Token", &for_other[0].token)],
    );
    assert_eq!(via_chroma_header.0, 401);
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&token("alice", &["user"], &json!({"department": "finance"})));
}

#[test]
fn kid_is_never_a_path_or_url_and_never_selects_an_attacker_key() {
    let g = hs_gate();
    g.assert_all_401(&attacks::kid_injection(&g.upstream_url));
    // Give a background fetch, if any were started, the chance to show up.
    std::thread::sleep(Duration::from_millis(300));
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&hs_token(&json!({})));
}

#[test]
fn jku_x5u_and_embedded_jwk_headers_are_never_followed_or_trusted() {
    // HS256 deployment: an embedded symmetric JWK, jku/x5u at the counting server.
    let g = hs_gate();
    g.assert_all_401(&attacks::key_location_headers(&g.upstream_url));
    // RS256 deployment: signed by another RSA key whose location the header advertises.
    let r = rs_gate();
    r.assert_all_401(&attacks::rs256_key_location_headers(&r.upstream_url));
    // Give a background fetch, if any were started, the chance to show up.
    std::thread::sleep(Duration::from_millis(500));
    g.assert_nothing_forwarded();
    r.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&hs_token(&json!({})));
}

#[test]
fn a_token_only_in_the_query_string_is_ignored() {
    let g = hs_gate();
    let tok = hs_token(&json!({"sub": "root", "roles": ["admin"]}));
    // vecgate checks the query string against the route's parameters before it looks for a
    // token, so an unknown parameter is 400 whatever it holds; it is never read as a token.
    for param in ["token", "access_token", "jwt", "api_key", "X-Chroma-Token", "authorization"] {
        let path = format!("{}?{param}={tok}", get_path());
        let (status, body) = g.vecgate.call("POST", &path, None, Some(&json!({})));
        assert_eq!(status, 400, "?{param}=: {body}");
        let (status, body) = g.vecgate.call("GET", &format!("{DEFAULT_DB_PATH}/collections?limit=1&{param}={tok}"), None, None);
        assert_eq!(status, 400, "list ?{param}=: {body}");
    }
    // The same with a valid parameter beside it, on a route that takes parameters.
    let (status, _) = g.vecgate.call(
        "GET",
        &format!("{DEFAULT_DB_PATH}/collections?limit=1&offset=0&access_token={tok}"),
        None,
        None,
    );
    assert_eq!(status, 400);
    g.assert_nothing_forwarded();
    // Without the token parameter the same listing is refused for the missing token.
    let (status, _) = g.vecgate.call("GET", &format!("{DEFAULT_DB_PATH}/collections?limit=1"), None, None);
    assert_eq!(status, 401);
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&hs_token(&json!({})));
}

#[test]
fn oversized_tokens_and_headers_are_refused_and_the_server_keeps_serving() {
    let g = hs_gate();
    let port = g.vecgate.port();
    // Correctly signed tokens made large by a padding claim. vecgate refuses tokens over
    // 16 KiB before decoding them (401); both fit in hyper's 400 KB request head buffer.
    let big = hs_token(&json!({"pad": "x".repeat(20_000)}));
    assert_eq!(raw_post(port, &format!("Authorization: Bearer {big}\r\n")), Some(401), "20 KB token");
    let huge = hs_token(&json!({"pad": "x".repeat(200_000)}));
    assert_eq!(raw_post(port, &format!("Authorization: Bearer {huge}\r\n")), Some(401), "200 KB token");
    assert_eq!(raw_post(port, &format!("X-Chroma-Token: {huge}\r\n")), Some(401), "200 KB X-Chroma-Token");
    // A head larger than hyper's buffer, and more headers than hyper parses (100): hyper
    // answers 431 itself, before vecgate sees a request.
    assert_eq!(raw_post(port, &format!("X-Pad: {}\r\n", "y".repeat(1_000_000))), Some(431), "1 MB header");
    let many: String = (0..5000).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(raw_post(port, &many), Some(431), "5000 headers");
    g.assert_nothing_forwarded();
    // Still serving, on a new connection.
    let ok = hs_token(&json!({}));
    assert_eq!(raw_post(port, &format!("Authorization: Bearer {ok}\r\n")), Some(200));
    assert_eq!(raw_post(port, ""), Some(401));
    g.assert_control_reaches_upstream(&ok);
}

#[test]
fn malformed_segments_are_401() {
    let g = hs_gate();
    g.assert_all_401(&attacks::malformed());
    // Broken Authorization values.
    for value in ["Bearer", "Bearer ", "Basic YWxpY2U6cGFzcw==", "Token abc", "Bearerabc.def.ghi"] {
        let (status, _) = g.vecgate.call_with_headers("POST", &get_path(), None, Some(&json!({})), &[("Authorization", value)]);
        assert_eq!(status, 401, "Authorization: {value}");
    }
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&hs_token(&json!({})));
}

#[test]
fn duplicate_keys_never_let_the_attacker_choose() {
    let g = hs_gate();
    g.assert_all_401(&attacks::duplicate_header_keys(&g.upstream_url));
    g.assert_nothing_forwarded();

    // Correctly signed tokens with duplicated claims. vecgate reads the claims set with the
    // lexically last member winning, which RFC 7519 §4 allows; an attacker cannot sign such a
    // token, so what matters is that the reading is that one, every time.
    let now = now();
    let base = format!(r#""iss":"{ISSUER}","aud":"{AUDIENCE}","roles":["user"],"department":"finance""#);
    let exp_token = |first: i64, second: i64| {
        hs_signed(r#"{"alg":"HS256"}"#, &format!(r#"{{"sub":"alice",{base},"exp":{first},"exp":{second}}}"#))
    };
    for _ in 0..2 {
        assert_eq!(g.get(&exp_token(now + 3600, now - 3600)), 401, "the last exp (past) counts");
        assert_eq!(g.get(&exp_token(now - 3600, now + 3600)), 200, "the last exp (future) counts");
    }

    for (first, second) in [("alice", "bob"), ("bob", "alice")] {
        let tok = hs_signed(
            r#"{"alg":"HS256"}"#,
            &format!(r#"{{"sub":"{first}","sub":"{second}",{base},"exp":{}}}"#, now + 3600),
        );
        for _ in 0..2 {
            assert_eq!(g.get(&tok), 200);
            let line = g.vecgate.audit_lines().pop().unwrap();
            assert_eq!(line["subject"], second, "the last sub is the subject: {line}");
        }
    }

    // Duplicated roles: the last list is the one that counts (admin reads everything: allow;
    // guest has no rule: deny, answered locally as an empty count).
    for (first, second, decision) in [("guest", "admin", "allow"), ("admin", "guest", "deny")] {
        let tok = hs_signed(
            r#"{"alg":"HS256"}"#,
            &format!(
                r#"{{"sub":"mallory","roles":["{first}"],"roles":["{second}"],"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{}}}"#,
                now + 3600
            ),
        );
        let (status, body) = g.vecgate.call("GET", &format!("{DEFAULT_DB_PATH}/collections/{COLLECTION_ID}/count"), Some(&tok), None);
        let line = g.vecgate.audit_lines().pop().unwrap();
        assert_eq!((status, line["decision"].as_str()), (200, Some(decision)), "roles {first} then {second}: {body} {line}");
    }
}

#[test]
fn a_nested_jwt_is_not_unwrapped() {
    let g = hs_gate();
    g.assert_all_401(&attacks::nested());
    g.assert_nothing_forwarded();
    // The wrapped token itself is a valid admin token.
    g.assert_control_reaches_upstream(&hs_token(&json!({"sub": "root", "roles": ["admin"]})));
}

#[test]
fn two_different_tokens_in_two_headers_are_401() {
    let g = hs_gate();
    let alice = token("alice", &["user"], &json!({"department": "finance"}));
    let root = token("root", &["admin"], &json!({}));
    for (a, b) in [("Authorization", "X-Chroma-Token"), ("Authorization", "api-key"), ("X-Chroma-Token", "api-key")] {
        let value = |name: &str, tok: &str| if name == "Authorization" { format!("Bearer {tok}") } else { tok.to_string() };
        let (status, _) = g.vecgate.call_with_headers(
            "POST", &get_path(), None, Some(&json!({})),
            &[(a, &value(a, &alice)), (b, &value(b, &root))],
        );
        assert_eq!(status, 401, "{a} + {b}");
        // A valid token and garbage in the other header.
        let (status, _) = g.vecgate.call_with_headers(
            "POST", &get_path(), None, Some(&json!({})),
            &[(a, &value(a, &alice)), (b, &value(b, "garbage"))],
        );
        assert_eq!(status, 401, "{a} + garbage {b}");
    }
    // Two Authorization headers (raw, since the HTTP client would merge them).
    let port = g.vecgate.port();
    let status = raw_post(port, &format!("Authorization: Bearer {alice}\r\nAuthorization: Bearer {root}\r\n"));
    assert_eq!(status, Some(401), "two Authorization headers");
    let status = raw_post(port, &format!("X-Chroma-Token: {alice}\r\nX-Chroma-Token: {root}\r\n"));
    assert_eq!(status, Some(401), "two X-Chroma-Token headers");
    let status = raw_post(port, &format!("Authorization: Bearer {alice}, Bearer {root}\r\n"));
    assert_eq!(status, Some(401), "two tokens in one Authorization value");
    g.assert_nothing_forwarded();
    // The same token twice is fine.
    let (status, _) = g.vecgate.call_with_headers(
        "POST", &get_path(), Some(&alice), Some(&json!({})), &[("X-Chroma-Token", &alice)],
    );
    assert_eq!(status, 200);
}

#[test]
fn a_refusal_carries_www_authenticate_bearer() {
    let g = hs_gate();
    let url = format!("{}{}", g.vecgate.url(), get_path());
    let tok = hs_token(&json!({"exp": now() - 600}));
    let response = match ureq::post(&url).set("Authorization", &format!("Bearer {tok}")).send_json(json!({})) {
        Err(ureq::Error::Status(_, r)) => r,
        other => panic!("expected a 401, got {other:?}"),
    };
    assert_eq!(response.status(), 401);
    let challenge = response.header("WWW-Authenticate").unwrap_or_default().to_ascii_lowercase();
    assert!(challenge.starts_with("bearer"), "{challenge:?}");
    g.assert_nothing_forwarded();
}

#[test]
fn a_401_on_a_keep_alive_connection_is_announced_as_closing_and_closes_it() {
    // vecgate refuses before reading the body, so it always answers its own refusals with
    // `Connection: close` (a client must not reuse a connection with unread bytes on it).
    let g = hs_gate();
    let mut stream = TcpStream::connect(("127.0.0.1", g.vecgate.port())).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let one = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
        get_path()
    );
    stream.write_all(one.as_bytes()).unwrap();
    // Everything up to the close: one response, then end of stream (not the read timeout).
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 401"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert_eq!(text.matches("http/1.1 ").count(), 1, "{text}");
    g.assert_nothing_forwarded();
}
