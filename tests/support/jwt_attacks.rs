//! Forged, stale, misdirected and malformed tokens, by category, for the JWT attack suites of
//! both backends (`tests/security_jwt.rs` on Chroma, `tests/security_qdrant.rs` on Qdrant).
//! Every token here must be refused with 401 by a vecgate configured as
//! [`super::vecgate::VecgateOptions`] does by default (HS256 with [`TEST_SECRET`]), or, for the
//! `rs256_*` lists, with [`rs256_auth_yaml`].

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use super::vecgate::{AUDIENCE, ISSUER, TEST_SECRET};

/// A secret nobody configured, used to sign forgeries.
pub const ATTACKER_SECRET: &[u8] = b"attacker-secret-attacker-secret-00";

/// One attack: what it is, and the token.
pub struct Attack {
    pub label: String,
    pub token: String,
}

fn attack(label: impl Into<String>, token: impl Into<String>) -> Attack {
    Attack { label: label.into(), token: token.into() }
}

pub fn key_file(name: &str) -> PathBuf {
    super::repo_root().join("tests/fixtures/keys").join(name)
}

pub fn read_key(name: &str) -> Vec<u8> {
    std::fs::read(key_file(name)).unwrap()
}

/// The `auth:` body for an RS256 deployment with the fixture public key.
pub fn rs256_auth_yaml() -> String {
    format!(
        "  issuer: {ISSUER}\n  audience: {AUDIENCE}\n  algorithms: [RS256]\n  \
         public_key_file: {}\n  leeway: 5s\n  principal:\n    id: sub\n    roles: roles\n",
        key_file("rsa_public.pem").display()
    )
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Claims of a valid token for alice (finance); `changes` overrides keys, `null` removes them.
pub fn claims(changes: &Value) -> Value {
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
pub fn raw_signed(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

pub fn hs_key() -> EncodingKey {
    EncodingKey::from_secret(TEST_SECRET.as_bytes())
}

fn attacker_key() -> EncodingKey {
    EncodingKey::from_secret(ATTACKER_SECRET)
}

/// Signed with the deployment's HS256 secret.
pub fn hs_signed(header: &str, payload: &str) -> String {
    raw_signed(header, payload, &hs_key(), Algorithm::HS256)
}

/// A correctly signed HS256 token with [`claims`]`(changes)`.
pub fn hs_token(changes: &Value) -> String {
    hs_signed(r#"{"alg":"HS256","typ":"JWT"}"#, &claims(changes).to_string())
}

/// Signed with the RSA private key in `tests/fixtures/keys/{private_pem}`.
pub fn rs_signed(header: &str, payload: &str, private_pem: &str) -> String {
    let key = EncodingKey::from_rsa_pem(&read_key(private_pem)).unwrap();
    raw_signed(header, payload, &key, Algorithm::RS256)
}

/// A valid RS256 token for alice (the control of an RS256 deployment).
pub fn rs_valid() -> String {
    rs_signed(r#"{"alg":"RS256","typ":"JWT"}"#, &claims(&json!({})).to_string(), "rsa_private.pem")
}

/// `alg: none` in six spellings, each unsigned, HS256-signed and two-part (18), plus `alg`
/// missing, null, a number and an array (4).
pub fn alg_none() -> Vec<Attack> {
    let payload = claims(&json!({})).to_string();
    let mut out = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE", "none ", ""] {
        let header = json!({"alg": alg, "typ": "JWT"}).to_string();
        let unsigned = format!("{}.{}.", b64(header.as_bytes()), b64(payload.as_bytes()));
        out.push(attack(format!("alg {alg:?}, two parts"), unsigned.trim_end_matches('.')));
        out.push(attack(format!("alg {alg:?}, empty signature"), unsigned));
        out.push(attack(format!("alg {alg:?}, HS256 signature"), hs_signed(&header, &payload)));
    }
    for header in [r#"{"typ":"JWT"}"#, r#"{"alg":null}"#, r#"{"alg":256}"#, r#"{"alg":["HS256"]}"#] {
        out.push(attack(header, hs_signed(header, &payload)));
    }
    out
}

/// Stripped, altered, truncated, extended and foreign signatures (10).
pub fn signature_tampering() -> Vec<Attack> {
    let valid = hs_token(&json!({}));
    let (message, signature) = valid.rsplit_once('.').unwrap();
    let (header, _) = message.split_once('.').unwrap();
    let mut flipped = signature.as_bytes().to_vec();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let other = hs_token(&json!({"sub": "bob"}));
    let other_sig = other.rsplit_once('.').unwrap().1;
    let root_payload = b64(claims(&json!({"sub": "root", "roles": ["admin"]})).to_string().as_bytes());
    vec![
        attack("signature stripped", format!("{message}.")),
        attack("signature part missing", message),
        attack("first signature byte changed", format!("{message}.{flipped}")),
        attack("signature truncated", format!("{message}.{}", &signature[..signature.len() - 2])),
        attack("signature extended", format!("{message}.{signature}AA")),
        attack("signature padded", format!("{message}.{signature}=")),
        attack("signature of another token", format!("{message}.{other_sig}")),
        attack("payload swapped for an admin's", format!("{header}.{root_payload}.{signature}")),
        attack(
            "signed with another secret",
            raw_signed(r#"{"alg":"HS256"}"#, &claims(&json!({})).to_string(), &attacker_key(), Algorithm::HS256),
        ),
        attack("four parts", format!("{message}.{signature}.{signature}")),
    ]
}

/// Correctly signed tokens whose claims are stale, misdirected, mistyped or incomplete (15).
pub fn bad_claims() -> Vec<Attack> {
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
    cases.into_iter().map(|(changes, what)| attack(what, hs_token(&changes))).collect()
}

/// Signed with the same key by the same issuer, for another service, naming an admin (1).
pub fn other_audience() -> Vec<Attack> {
    vec![attack(
        "a valid admin token for audience search-service",
        hs_token(&json!({"aud": "search-service", "sub": "root", "roles": ["admin"]})),
    )]
}

/// `kid` as a path, a URL (at `fetch_base`, a server that counts requests), SQL, a shell
/// command, NUL, each signed with an empty key and with an attacker key (20), plus a `kid`
/// object (1).
pub fn kid_injection(fetch_base: &str) -> Vec<Attack> {
    let payload = claims(&json!({"sub": "root", "roles": ["admin"]})).to_string();
    let empty = EncodingKey::from_secret(b"");
    let attacker = attacker_key();
    let fetch_url = format!("{fetch_base}/keys/attacker");
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
    let mut out = Vec::new();
    for kid in &kids {
        let header = json!({"alg": "HS256", "kid": kid}).to_string();
        for (key, what) in [(&empty, "empty key"), (&attacker, "attacker key")] {
            out.push(attack(format!("kid {kid:?} with {what}"), raw_signed(&header, &payload, key, Algorithm::HS256)));
        }
    }
    out.push(attack(
        "kid object",
        raw_signed(r#"{"alg":"HS256","kid":{"url":"x"}}"#, &payload, &attacker, Algorithm::HS256),
    ));
    out
}

/// An embedded symmetric `jwk`, `jku` and `x5u` pointing at `fetch_base`, and all of them at
/// once, on an attacker-signed admin token (5).
pub fn key_location_headers(fetch_base: &str) -> Vec<Attack> {
    let admin = claims(&json!({"sub": "root", "roles": ["admin"]})).to_string();
    let jku = format!("{fetch_base}/.well-known/jwks.json");
    let x5u = format!("{fetch_base}/cert.pem");
    let jwk = json!({"kty": "oct", "k": b64(ATTACKER_SECRET)});
    [
        json!({"alg": "HS256", "jwk": jwk}),
        json!({"alg": "HS256", "jku": jku}),
        json!({"alg": "HS256", "x5u": x5u}),
        json!({"alg": "HS256", "jku": jku, "kid": "attacker"}),
        json!({"alg": "HS256", "x5c": ["MIIB"], "x5u": x5u, "jku": jku, "jwk": jwk}),
    ]
    .into_iter()
    .map(|h| attack(h.to_string(), raw_signed(&h.to_string(), &admin, &attacker_key(), Algorithm::HS256)))
    .collect()
}

/// Segments that are not base64, not JSON, not objects, a `crit` extension, JWE shape (13).
pub fn malformed() -> Vec<Attack> {
    let good_h = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let good_p = b64(claims(&json!({})).to_string().as_bytes());
    let sign = |h: &str, p: &str| {
        let message = format!("{h}.{p}");
        let s = jsonwebtoken::crypto::sign(message.as_bytes(), &hs_key(), Algorithm::HS256).unwrap();
        format!("{message}.{s}")
    };
    vec![
        attack("one part", "not-a-jwt"),
        attack("three garbage parts", "a.b.c"),
        attack("empty parts", ".."),
        attack("header not base64", format!("!!!.{good_p}.sig")),
        attack("header not JSON", sign(&b64(b"hello"), &good_p)),
        attack("header a JSON array", sign(&b64(b"[\"HS256\"]"), &good_p)),
        attack("header truncated JSON", sign(&b64(b"{\"alg\":\"HS256\""), &good_p)),
        attack("claims not JSON (signed)", sign(&good_h, &b64(b"hello"))),
        attack("claims a JSON array (signed)", sign(&good_h, &b64(b"[1,2]"))),
        attack("claims a JSON string (signed)", sign(&good_h, &b64(b"\"alice\""))),
        attack("claims not base64 (signed)", sign(&good_h, "!!!")),
        attack("unknown crit extension", sign(&b64(br#"{"alg":"HS256","crit":["exp"],"exp":1}"#), &good_p)),
        attack("five parts (JWE shape)", format!("{good_h}.{good_p}.sig.x.y")),
    ]
}

/// Duplicate header keys where one reading is `alg: none` (unsigned and attacker-signed, 4),
/// and a duplicated `kid` naming a URL at `fetch_base` (1). Headers are read with the last
/// duplicate winning (RFC 7515 §5.2 allows exactly that), and neither reading verifies.
pub fn duplicate_header_keys(fetch_base: &str) -> Vec<Attack> {
    let payload = claims(&json!({})).to_string();
    let mut out = Vec::new();
    for header in [r#"{"alg":"HS256","alg":"none"}"#, r#"{"alg":"none","alg":"HS256"}"#] {
        out.push(attack(format!("{header} unsigned"), format!("{}.{}.", b64(header.as_bytes()), b64(payload.as_bytes()))));
        out.push(attack(format!("{header} signed by the attacker"), raw_signed(header, &payload, &attacker_key(), Algorithm::HS256)));
    }
    let kid_header = format!(r#"{{"alg":"HS256","kid":"a","kid":"{fetch_base}/k"}}"#);
    out.push(attack("duplicated kid", raw_signed(&kid_header, &payload, &EncodingKey::from_secret(b""), Algorithm::HS256)));
    out
}

/// A valid admin token wrapped as the payload of another JWS: attacker-signed, correctly
/// signed, as a JSON string, and unsigned (4). vecgate never unwraps nested tokens.
pub fn nested() -> Vec<Attack> {
    let inner = hs_token(&json!({"sub": "root", "roles": ["admin"]}));
    let header = r#"{"alg":"HS256","cty":"JWT"}"#;
    vec![
        attack("attacker-signed wrapper", raw_signed(header, &inner, &attacker_key(), Algorithm::HS256)),
        attack("validly signed wrapper", hs_signed(header, &inner)),
        attack("wrapper with a JSON string payload", hs_signed(header, &json!(inner).to_string())),
        attack("unsigned wrapper", format!("{}.{}.", b64(br#"{"alg":"none","cty":"JWT"}"#), b64(inner.as_bytes()))),
    ]
}

/// Every attack above on an HS256 deployment (`fetch_base`: a URL whose server counts
/// requests, so a fetch would show).
pub fn hs256_all(fetch_base: &str) -> Vec<Attack> {
    let mut out = alg_none();
    out.extend(signature_tampering());
    out.extend(bad_claims());
    out.extend(other_audience());
    out.extend(kid_injection(fetch_base));
    out.extend(key_location_headers(fetch_base));
    out.extend(malformed());
    out.extend(duplicate_header_keys(fetch_base));
    out.extend(nested());
    out
}

/// On an RS256 deployment: HS256 keyed with the RSA public key (both PEM encodings, as-is and
/// trimmed: 4), the HS256 test secret (1), PS256 and ES256 (not configured, 2), another RSA
/// key (1), an ES256 signature relabelled RS256 (1).
pub fn rs256_confusion() -> Vec<Attack> {
    let payload = claims(&json!({})).to_string();
    let hs_header = r#"{"alg":"HS256","typ":"JWT"}"#;
    let mut out = Vec::new();
    for pem in ["rsa_public.pem", "rsa_public_pkcs1.pem"] {
        let bytes = read_key(pem);
        let forged = raw_signed(hs_header, &payload, &EncodingKey::from_secret(&bytes), Algorithm::HS256);
        out.push(attack(format!("HS256 keyed with {pem}"), forged));
        let trimmed = String::from_utf8(bytes).unwrap();
        let key = EncodingKey::from_secret(trimmed.trim().as_bytes());
        out.push(attack(format!("HS256 keyed with trimmed {pem}"), raw_signed(hs_header, &payload, &key, Algorithm::HS256)));
    }
    out.push(attack("HS256 with the test secret", hs_token(&json!({}))));
    let ps_key = EncodingKey::from_rsa_pem(&read_key("rsa_private.pem")).unwrap();
    out.push(attack("PS256 with the right key, not configured", raw_signed(r#"{"alg":"PS256"}"#, &payload, &ps_key, Algorithm::PS256)));
    out.push(attack("RS256 by another RSA key", rs_signed(r#"{"alg":"RS256"}"#, &payload, "rsa_other_private.pem")));
    let ec = EncodingKey::from_ec_pem(&read_key("ec_p256_private.pem")).unwrap();
    let es = raw_signed(r#"{"alg":"ES256"}"#, &payload, &ec, Algorithm::ES256);
    let es_sig = es.rsplit_once('.').unwrap().1;
    out.push(attack(
        "ES256 signature under an RS256 header",
        format!("{}.{}.{es_sig}", b64(br#"{"alg":"RS256"}"#), b64(payload.as_bytes())),
    ));
    out.push(attack("ES256 not configured", es));
    out
}

/// On an RS256 deployment: tokens signed by another RSA key whose location (`jku`, `x5u`) or
/// value (`jwk`) the header advertises (3).
pub fn rs256_key_location_headers(fetch_base: &str) -> Vec<Attack> {
    let admin = claims(&json!({"sub": "root", "roles": ["admin"]})).to_string();
    [
        json!({"alg": "RS256", "jku": format!("{fetch_base}/.well-known/jwks.json"), "kid": "attacker"}),
        json!({"alg": "RS256", "x5u": format!("{fetch_base}/cert.pem")}),
        json!({"alg": "RS256", "jwk": {"kty": "RSA", "e": "AQAB", "n": b64(&[0xc5; 256])}}),
    ]
    .into_iter()
    .map(|h| attack(h.to_string(), rs_signed(&h.to_string(), &admin, "rsa_other_private.pem")))
    .collect()
}
