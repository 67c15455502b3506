//! Attacks on authentication (issue 8, item 1). Every forged, stale, misdirected or malformed
//! token is answered 401 by vecgate itself: the counting stand-in upstream behind it sees zero
//! requests. Each test ends with a valid token as the control, which does reach the upstream,
//! so "zero requests" is not an artefact of a broken counter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use support::chroma::DEFAULT_DB_PATH;
use support::repo_root;
use support::vecgate::{token, token_with, VecgateOptions, VecgateServer, AUDIENCE, ISSUER, TEST_SECRET};

const COLLECTION_ID: &str = "9a6f4bde-33f2-4d1c-9b5e-2f9a7f0c1d11";

use support::stub_upstream::{counting_upstream, Seen};

fn policies() -> PathBuf {
    repo_root().join("tests/fixtures/proxy/policies")
}

fn key_file(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/keys").join(name)
}

fn read_key(name: &str) -> Vec<u8> {
    std::fs::read(key_file(name)).unwrap()
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
    opts.auth_yaml = Some(format!(
        "  issuer: {ISSUER}\n  audience: {AUDIENCE}\n  algorithms: [RS256]\n  \
         public_key_file: {}\n  leeway: 5s\n  principal:\n    id: sub\n    roles: roles\n",
        key_file("rsa_public.pem").display()
    ));
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

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Claims of a valid token for alice; `changes` overrides keys, `null` removes them.
fn claims(changes: &Value) -> Value {
    let now = now();
    let mut c = json!({"sub": "alice", "roles": ["user"], "department": "finance",
                       "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 3600});
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// A compact JWS over exactly these header and payload bytes (no re-serialisation, so
/// duplicate keys survive), signed with `key` for `alg`.
fn raw_signed(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

fn hs_key() -> EncodingKey {
    EncodingKey::from_secret(TEST_SECRET.as_bytes())
}

fn hs_signed(header: &str, payload: &str) -> String {
    raw_signed(header, payload, &hs_key(), Algorithm::HS256)
}

fn hs_token(changes: &Value) -> String {
    hs_signed(r#"{"alg":"HS256","typ":"JWT"}"#, &claims(changes).to_string())
}

fn rs_signed(header: &str, payload: &str, private_pem: &str) -> String {
    let key = EncodingKey::from_rsa_pem(&read_key(private_pem)).unwrap();
    raw_signed(header, payload, &key, Algorithm::RS256)
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
    let payload = claims(&json!({})).to_string();
    for alg in ["none", "None", "NONE", "nOnE", "none ", ""] {
        let header = json!({"alg": alg, "typ": "JWT"}).to_string();
        let unsigned = format!("{}.{}.", b64(header.as_bytes()), b64(payload.as_bytes()));
        g.assert_401(&unsigned, &format!("alg {alg:?}, empty signature"));
        // With a signature that would be valid under HS256 for the same bytes.
        g.assert_401(&hs_signed(&header, &payload), &format!("alg {alg:?}, HS256 signature"));
        // Two-part form.
        g.assert_401(unsigned.trim_end_matches('.'), &format!("alg {alg:?}, two parts"));
    }
    // alg missing, null, a number, an array.
    for header in [r#"{"typ":"JWT"}"#, r#"{"alg":null}"#, r#"{"alg":256}"#, r#"{"alg":["HS256"]}"#] {
        g.assert_401(&hs_signed(header, &payload), header);
    }
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&hs_token(&json!({})));
}

#[test]
fn rs256_deployment_refuses_hs256_keyed_with_the_public_key_and_other_algorithms() {
    let g = rs_gate();
    let payload = claims(&json!({})).to_string();
    // Key confusion: HS256 with the RSA public key (as the PEM text, both encodings) as secret.
    for pem in ["rsa_public.pem", "rsa_public_pkcs1.pem"] {
        let bytes = read_key(pem);
        let key = EncodingKey::from_secret(&bytes);
        let forged = raw_signed(r#"{"alg":"HS256","typ":"JWT"}"#, &payload, &key, Algorithm::HS256);
        g.assert_401(&forged, &format!("HS256 keyed with {pem}"));
        let trimmed = String::from_utf8(bytes).unwrap();
        let key = EncodingKey::from_secret(trimmed.trim().as_bytes());
        let forged = raw_signed(r#"{"alg":"HS256","typ":"JWT"}"#, &payload, &key, Algorithm::HS256);
        g.assert_401(&forged, &format!("HS256 keyed with trimmed {pem}"));
    }
    // The test HMAC secret is not configured here.
    g.assert_401(&hs_token(&json!({})), "HS256 with the test secret");
    // Same key, algorithm not configured (PS256 uses the RSA key too).
    let ps_key = EncodingKey::from_rsa_pem(&read_key("rsa_private.pem")).unwrap();
    let ps = raw_signed(r#"{"alg":"PS256"}"#, &payload, &ps_key, Algorithm::PS256);
    g.assert_401(&ps, "PS256 with the right key, not configured");
    // RS256 signed by another key.
    g.assert_401(&rs_signed(r#"{"alg":"RS256"}"#, &payload, "rsa_other_private.pem"), "other RSA key");
    // An ES256 token naming RS256.
    let ec = EncodingKey::from_ec_pem(&read_key("ec_p256_private.pem")).unwrap();
    let es = raw_signed(r#"{"alg":"ES256"}"#, &payload, &ec, Algorithm::ES256);
    let (head_payload, es_sig) = es.rsplit_once('.').unwrap();
    let _ = head_payload;
    let relabelled = format!("{}.{}.{es_sig}", b64(br#"{"alg":"RS256"}"#), b64(payload.as_bytes()));
    g.assert_401(&relabelled, "ES256 signature under an RS256 header");
    g.assert_401(&es, "ES256 not configured");
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&rs_signed(r#"{"alg":"RS256","typ":"JWT"}"#, &payload, "rsa_private.pem"));
}

#[test]
fn stripped_or_altered_signatures_are_401() {
    let g = hs_gate();
    let valid = hs_token(&json!({}));
    let (message, signature) = valid.rsplit_once('.').unwrap();
    let (header, _) = message.split_once('.').unwrap();
    let mut flipped = signature.as_bytes().to_vec();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let other = hs_token(&json!({"sub": "bob"}));
    let other_sig = other.rsplit_once('.').unwrap().1;
    let root_payload = b64(claims(&json!({"sub": "root", "roles": ["admin"]})).to_string().as_bytes());
    let attacker = raw_signed(
        r#"{"alg":"HS256"}"#,
        &claims(&json!({})).to_string(),
        &EncodingKey::from_secret(b"attacker-secret-attacker-secret-00"),
        Algorithm::HS256,
    );
    let cases = [
        (format!("{message}."), "signature stripped"),
        (message.to_string(), "signature part missing"),
        (format!("{message}.{flipped}"), "first signature byte changed"),
        (format!("{message}.{}", &signature[..signature.len() - 2]), "signature truncated"),
        (format!("{message}.{signature}AA"), "signature extended"),
        (format!("{message}.{signature}="), "signature padded"),
        (format!("{message}.{other_sig}"), "signature of another token"),
        (format!("{header}.{root_payload}.{signature}"), "payload swapped for an admin's"),
        (attacker, "signed with another secret"),
        (format!("{message}.{signature}.{signature}"), "four parts"),
    ];
    for (tok, what) in &cases {
        g.assert_401(tok, what);
    }
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&valid);
}

#[test]
fn stale_misdirected_and_incomplete_claims_are_401() {
    let g = hs_gate();
    let now = now();
    let cases = [
        (json!({"exp": now - 600}), "expired beyond the leeway"),
        (json!({"nbf": now + 600}), "not yet valid"),
        (json!({"exp": null}), "missing exp"),
        (json!({"exp": (now + 3600).to_string()}), "exp as a string"),
        (json!({"exp": [now + 3600]}), "exp as an array"),
        (json!({"nbf": "0"}), "nbf as a string"),
        (json!({"iss": "https://evil.test"}), "wrong iss"),
        (json!({"iss": format!("{ISSUER}/")}), "iss with a trailing slash"),
        (json!({"iss": null}), "missing iss"),
        (json!({"aud": "other-service"}), "another audience"),
        (json!({"aud": ["other-service", "third"]}), "audience list without ours"),
        (json!({"aud": null}), "missing aud"),
        (json!({"aud": format!("{AUDIENCE} ")}), "audience with a space"),
        (json!({"sub": null}), "missing sub"),
        (json!({"roles": null}), "missing roles"),
    ];
    for (changes, what) in &cases {
        g.assert_401(&hs_token(changes), what);
    }
    // The helpers' own expired token too.
    g.assert_401(&token_with("alice", &["user"], &json!({"department": "finance"}), -600), "token_with expired");
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&hs_token(&json!({})));
}

#[test]
fn a_valid_token_for_another_audience_is_401() {
    // Signed with the very same key by the same issuer, only meant for another service.
    let g = hs_gate();
    let for_other = hs_token(&json!({"aud": "search-service", "sub": "root", "roles": ["admin"]}));
    g.assert_401(&for_other, "audience search-service");
    let via_chroma_header = g.vecgate.call_with_headers(
        "POST", &get_path(), None, Some(&json!({})), &[("X-Chroma-Token", &for_other)],
    );
    assert_eq!(via_chroma_header.0, 401);
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&token("alice", &["user"], &json!({"department": "finance"})));
}

#[test]
fn kid_is_never_a_path_or_url_and_never_selects_an_attacker_key() {
    let g = hs_gate();
    let payload = claims(&json!({"sub": "root", "roles": ["admin"]})).to_string();
    let empty = EncodingKey::from_secret(b"");
    let attacker = EncodingKey::from_secret(b"attacker-secret-attacker-secret-00");
    let fetch_url = format!("{}/keys/attacker", g.upstream_url);
    let kids = [
        "unknown-key-id".to_string(),
        "../../../../../../dev/null".to_string(),
        "/dev/null".to_string(),
        "..%2f..%2f..%2fdev%2fnull".to_string(),
        "file:///dev/null".to_string(),
        fetch_url.clone(),
        format!("{fetch_url}?x=1#frag"),
        "' OR '1'='1".to_string(),
        "key|id`whoami`".to_string(),
        "\u{0000}".to_string(),
    ];
    for kid in &kids {
        let header = json!({"alg": "HS256", "kid": kid}).to_string();
        for (key, what) in [(&empty, "empty key"), (&attacker, "attacker key")] {
            let tok = raw_signed(&header, &payload, key, Algorithm::HS256);
            g.assert_401(&tok, &format!("kid {kid:?} with {what}"));
        }
    }
    // A kid that is not a string.
    g.assert_401(&raw_signed(r#"{"alg":"HS256","kid":{"url":"x"}}"#, &payload, &attacker, Algorithm::HS256), "kid object");
    std::thread::sleep(Duration::from_millis(300));
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&hs_token(&json!({})));
}

#[test]
fn jku_x5u_and_embedded_jwk_headers_are_never_followed_or_trusted() {
    let attacker_secret = b"attacker-secret-attacker-secret-00";
    let attacker = EncodingKey::from_secret(attacker_secret);
    let admin = claims(&json!({"sub": "root", "roles": ["admin"]})).to_string();

    // HS256 deployment: an embedded symmetric JWK, jku/x5u at the counting server.
    let g = hs_gate();
    let jku = format!("{}/.well-known/jwks.json", g.upstream_url);
    let x5u = format!("{}/cert.pem", g.upstream_url);
    let headers = [
        json!({"alg": "HS256", "jwk": {"kty": "oct", "k": b64(attacker_secret)}}),
        json!({"alg": "HS256", "jku": jku}),
        json!({"alg": "HS256", "x5u": x5u}),
        json!({"alg": "HS256", "jku": jku, "kid": "attacker"}),
        json!({"alg": "HS256", "x5c": ["MIIB"], "x5u": x5u, "jku": jku,
               "jwk": {"kty": "oct", "k": b64(attacker_secret)}}),
    ];
    for header in &headers {
        let tok = raw_signed(&header.to_string(), &admin, &attacker, Algorithm::HS256);
        g.assert_401(&tok, &header.to_string());
    }

    // RS256 deployment: signed by another RSA key whose location the header advertises.
    let r = rs_gate();
    let jku = format!("{}/.well-known/jwks.json", r.upstream_url);
    let x5u = format!("{}/cert.pem", r.upstream_url);
    for header in [
        json!({"alg": "RS256", "jku": jku, "kid": "attacker"}),
        json!({"alg": "RS256", "x5u": x5u}),
        json!({"alg": "RS256", "jwk": {"kty": "RSA", "e": "AQAB", "n": b64(&[0xc5; 256])}}),
    ] {
        let tok = rs_signed(&header.to_string(), &admin, "rsa_other_private.pem");
        r.assert_401(&tok, &header.to_string());
    }
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
    for param in ["token", "access_token", "jwt", "api_key", "X-Chroma-Token", "authorization"] {
        let path = format!("{}?{param}={tok}", get_path());
        let (status, body) = g.vecgate.call("POST", &path, None, Some(&json!({})));
        // Refused either as unauthenticated or for the unknown query parameter.
        assert!(status == 401 || status == 400, "?{param}=: {status} {body}");
        let (status, body) = g.vecgate.call("GET", &format!("{DEFAULT_DB_PATH}/collections?{param}={tok}"), None, None);
        assert!(status == 401 || status == 400, "list ?{param}=: {status} {body}");
    }
    // A route that accepts query parameters, with only a token parameter added.
    let (status, _) = g.vecgate.call(
        "POST",
        &format!("{DEFAULT_DB_PATH}/collections/{COLLECTION_ID}/query?limit=1&access_token={tok}"),
        None,
        Some(&json!({"query_embeddings": [[1.0, 0.0]]})),
    );
    assert!(status == 401 || status == 400, "{status}");
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&hs_token(&json!({})));
}

#[test]
fn oversized_tokens_and_headers_are_refused_and_the_server_keeps_serving() {
    let g = hs_gate();
    let port = g.vecgate.port();
    // A correctly signed token made large by a padding claim.
    let big = hs_token(&json!({"pad": "x".repeat(20_000)}));
    let status = raw_post(port, &format!("Authorization: Bearer {big}\r\n"));
    assert!(matches!(status, Some(401 | 431) | None), "20 KB token: {status:?}");
    let huge = hs_token(&json!({"pad": "x".repeat(200_000)}));
    let status = raw_post(port, &format!("Authorization: Bearer {huge}\r\n"));
    assert!(matches!(status, Some(401 | 431) | None), "200 KB token: {status:?}");
    let status = raw_post(port, &format!("X-Chroma-Token: {huge}\r\n"));
    assert!(matches!(status, Some(401 | 431) | None), "200 KB X-Chroma-Token: {status:?}");
    // A large unrelated header with no token, and many headers.
    let status = raw_post(port, &format!("X-Pad: {}\r\n", "y".repeat(1_000_000)));
    assert!(matches!(status, Some(401 | 431 | 400) | None), "1 MB header: {status:?}");
    let many: String = (0..5000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let status = raw_post(port, &many);
    assert!(matches!(status, Some(401 | 431 | 400) | None), "5000 headers: {status:?}");
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
    let claims_text = claims(&json!({})).to_string();
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    let good_h = b64(header.as_bytes());
    let good_p = b64(claims_text.as_bytes());
    let sign = |h: &str, p: &str| {
        let message = format!("{h}.{p}");
        let s = jsonwebtoken::crypto::sign(message.as_bytes(), &hs_key(), Algorithm::HS256).unwrap();
        format!("{message}.{s}")
    };
    let cases = [
        ("not-a-jwt".to_string(), "one part"),
        ("a.b.c".to_string(), "three garbage parts"),
        ("..".to_string(), "empty parts"),
        (format!("!!!.{good_p}.sig"), "header not base64"),
        (sign(&b64(b"hello"), &good_p), "header not JSON"),
        (sign(&b64(b"[\"HS256\"]"), &good_p), "header a JSON array"),
        (sign(&b64(b"{\"alg\":\"HS256\""), &good_p), "header truncated JSON"),
        (sign(&good_h, &b64(b"hello")), "claims not JSON (signed)"),
        (sign(&good_h, &b64(b"[1,2]")), "claims a JSON array (signed)"),
        (sign(&good_h, &b64(b"\"alice\"")), "claims a JSON string (signed)"),
        (sign(&good_h, "!!!"), "claims not base64 (signed)"),
        (sign(&b64(br#"{"alg":"HS256","crit":["exp"],"exp":1}"#), &good_p), "unknown crit extension"),
        (format!("{good_h}.{good_p}.sig.x.y"), "five parts (JWE shape)"),
    ];
    for (tok, what) in &cases {
        g.assert_401(tok, what);
    }
    // Broken Authorization values.
    for value in ["Bearer", "Bearer ", "Basic YWxpY2U6cGFzcw==", "Token abc", "Bearerabc.def.ghi"] {
        let (status, _) = g.vecgate.call_with_headers("POST", &get_path(), None, Some(&json!({})), &[("Authorization", value)]);
        assert_eq!(status, 401, "Authorization: {value}");
    }
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&sign(&good_h, &good_p));
}

#[test]
fn duplicate_keys_never_let_the_attacker_choose() {
    let g = hs_gate();
    let now = now();
    let payload = claims(&json!({})).to_string();
    let unsigned = |h: &str| format!("{}.{}.", b64(h.as_bytes()), b64(payload.as_bytes()));
    // An unsigned token whose alg is `none` under one of two readings: always 401.
    for header in [r#"{"alg":"HS256","alg":"none"}"#, r#"{"alg":"none","alg":"HS256"}"#] {
        g.assert_401(&unsigned(header), header);
        let attacker = raw_signed(header, &payload, &EncodingKey::from_secret(b"attacker-secret-attacker-secret-00"), Algorithm::HS256);
        g.assert_401(&attacker, &format!("{header} signed by the attacker"));
    }
    // A duplicated kid pointing at the counting server once.
    let kid_header = format!(r#"{{"alg":"HS256","kid":"a","kid":"{}/k"}}"#, g.upstream_url);
    let attacker = raw_signed(&kid_header, &payload, &EncodingKey::from_secret(b""), Algorithm::HS256);
    g.assert_401(&attacker, "duplicated kid");
    g.assert_nothing_forwarded();

    // Correctly signed tokens with duplicated claims: either refused, or read as exactly one
    // of the values, the same way every time (the parser that checks is the one that decides).
    let base = format!(r#""iss":"{ISSUER}","aud":"{AUDIENCE}","roles":["user"],"department":"finance""#);
    let exp_pairs = [(now + 3600, now - 3600), (now - 3600, now + 3600)];
    let mut accepted = 0;
    for (first, second) in exp_pairs {
        let tok = hs_signed(r#"{"alg":"HS256"}"#, &format!(r#"{{"sub":"alice",{base},"exp":{first},"exp":{second}}}"#));
        let one = g.get(&tok);
        let two = g.get(&tok);
        assert_eq!(one, two, "the same token gets the same answer");
        assert!(one == 200 || one == 401, "{one}");
        if one == 200 {
            accepted += 1;
        }
    }
    assert!(accepted <= 1, "a duplicated exp was accepted under both orders: one of them used the past value");

    let audit_before = g.vecgate.audit_lines().len();
    let mut subjects = Vec::new();
    for (first, second) in [("alice", "bob"), ("bob", "alice")] {
        let tok = hs_signed(
            r#"{"alg":"HS256"}"#,
            &format!(r#"{{"sub":"{first}","sub":"{second}",{base},"exp":{}}}"#, now + 3600),
        );
        for _ in 0..2 {
            let status = g.get(&tok);
            assert!(status == 200 || status == 401, "{status}");
            subjects.push((status, first, second));
        }
    }
    let lines = g.vecgate.audit_lines();
    let lines = &lines[audit_before..];
    assert_eq!(lines.len(), subjects.len(), "{lines:?}");
    let mut chose_last = 0;
    let mut chose_first = 0;
    for (line, (status, first, second)) in lines.iter().zip(&subjects) {
        if *status == 200 {
            let subject = line["subject"].as_str().unwrap_or_default();
            assert!(subject == *first || subject == *second, "subject {subject:?}");
            if subject == *second {
                chose_last += 1;
            } else {
                chose_first += 1;
            }
        }
    }
    assert!(chose_last == 0 || chose_first == 0, "duplicate sub resolved inconsistently: {lines:?}");

    // Duplicated roles: guest then admin, and admin then guest: never admin under both orders.
    let mut admin_like = 0;
    for (first, second) in [("guest", "admin"), ("admin", "guest")] {
        let tok = hs_signed(
            r#"{"alg":"HS256"}"#,
            &format!(
                r#"{{"sub":"mallory","roles":["{first}"],"roles":["{second}"],"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{}}}"#,
                now + 3600
            ),
        );
        let (status, body) = g.vecgate.call("GET", &format!("{DEFAULT_DB_PATH}/collections/{COLLECTION_ID}/count"), Some(&tok), None);
        assert!(status == 200 || status == 401, "{status} {body}");
        let line = g.vecgate.audit_lines().pop().unwrap();
        if status == 200 && line["decision"] != "deny" {
            admin_like += 1;
        }
    }
    assert!(admin_like <= 1, "duplicated roles granted admin under both orders");
}

#[test]
fn a_nested_jwt_is_not_unwrapped() {
    let g = hs_gate();
    // The inner token is a perfectly valid admin token; the outer one wraps it.
    let inner = hs_token(&json!({"sub": "root", "roles": ["admin"]}));
    let attacker = EncodingKey::from_secret(b"attacker-secret-attacker-secret-00");
    let header = r#"{"alg":"HS256","cty":"JWT"}"#;
    // Outer signed by an attacker around a valid inner token.
    g.assert_401(&raw_signed(header, &inner, &attacker, Algorithm::HS256), "attacker-signed wrapper");
    // Outer correctly signed, but its payload is a JWT, not a claims set.
    g.assert_401(&hs_signed(header, &inner), "validly signed wrapper");
    g.assert_401(&hs_signed(header, &json!(inner).to_string()), "wrapper with a JSON string payload");
    // Outer with alg none around a valid inner token.
    let none = format!("{}.{}.", b64(br#"{"alg":"none","cty":"JWT"}"#), b64(inner.as_bytes()));
    g.assert_401(&none, "unsigned wrapper");
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&inner);
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
fn a_401_on_a_keep_alive_connection_either_closes_it_announced_or_keeps_serving() {
    let g = hs_gate();
    let mut stream = TcpStream::connect(("127.0.0.1", g.vecgate.port())).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let one = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
        get_path()
    );
    stream.write_all(one.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(first.starts_with("http/1.1 401"), "{first}");
    if first.contains("connection: close") {
        return;
    }
    // Let the server finish with the first exchange.
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // Not announced as closing: the same connection must answer the next request.
    let _ = stream.write_all(one.as_bytes());
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let second = String::from_utf8_lossy(&rest);
    assert!(second.starts_with("HTTP/1.1 401"), "the kept-alive connection was dropped silently after a 401: {second:?}\nfirst: {first}");
}
