//! JWKS: keys fetched over HTTPS from a key-set server in the test process (rcgen
//! certificate from a private CA), which can rotate keys and go down.
//!
//! In process, `JwksResolver` runs with a clock the tests move by hand, so key ages and the
//! unknown-`kid` rate limit are checked without waiting. End to end, the real binary verifies
//! tokens against the key set in front of real Chroma.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use rcgen::{KeyPair, SignatureAlgorithm};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::https_server::{Responder, TestHttpsServer};
use support::pki::{server_config, TestCa};
use support::vecgate::{VecgateOptions, VecgateServer, AUDIENCE, ISSUER};
use support::{repo_root, ChromaServer};
use vecgate::authn::jwks::{Clock, JwksError, JwksResolver, JwksSettings};
use vecgate::authn::{Authenticator, AuthnError, KeyResolver};
use vecgate::config::{Algorithm, AuthConfig, KeySource, PrincipalMapping};

const DEFAULT_DB_PATH: &str = "/api/v2/tenants/default_tenant/databases/default_database";

// ---------------------------------------------------------------------------------------------
// Keys, tokens and the key-set server
// ---------------------------------------------------------------------------------------------

/// A signing key with its public JWK.
struct TestKey {
    kid: String,
    alg: jsonwebtoken::Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn ec_key(kid: &str, alg: &'static SignatureAlgorithm) -> (KeyPair, Value) {
    let pair = KeyPair::generate_for(alg).unwrap();
    let raw = pair.public_key_raw();
    let size = (raw.len() - 1) / 2;
    let crv = if size == 32 { "P-256" } else { "P-384" };
    let jwk = json!({
        "kty": "EC", "crv": crv, "kid": kid,
        "x": b64(&raw[1..1 + size]), "y": b64(&raw[1 + size..]),
    });
    (pair, jwk)
}

fn es256(kid: &str) -> TestKey {
    let (pair, mut jwk) = ec_key(kid, &rcgen::PKCS_ECDSA_P256_SHA256);
    jwk["use"] = json!("sig");
    jwk["alg"] = json!("ES256");
    TestKey {
        kid: kid.into(),
        alg: jsonwebtoken::Algorithm::ES256,
        encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        jwk,
    }
}

fn ed25519(kid: &str) -> TestKey {
    let pair = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    TestKey {
        kid: kid.into(),
        alg: jsonwebtoken::Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap(),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pair.public_key_raw())}),
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fresh token (unique `jti`, so no verified-token cache answers for it) signed by `key`
/// and naming `kid`.
fn token_with_kid(key: &TestKey, kid: Option<&str>) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let mut header = Header::new(key.alg);
    header.kid = kid.map(str::to_string);
    let claims = json!({
        "sub": "alice", "roles": ["user"], "department": "finance",
        "iss": ISSUER, "aud": AUDIENCE, "exp": now_secs() + 600,
        "jti": NEXT.fetch_add(1, Ordering::SeqCst),
    });
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

fn token(key: &TestKey) -> String {
    token_with_kid(key, Some(&key.kid))
}

fn key_set(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// The key-set server: `/jwks` answers the current document, once the gate lets it.
struct KeySetServer {
    document: Arc<Mutex<Value>>,
    /// Closed, a fetch waits (at most 20 s) until the test opens it again.
    gate: Arc<(Mutex<GateState>, std::sync::Condvar)>,
    server: TestHttpsServer,
    dir: tempfile::TempDir,
    ca_file: PathBuf,
}

impl KeySetServer {
    fn start(initial: Value) -> KeySetServer {
        let ca = TestCa::new("identity provider CA");
        let dir = tempfile::tempdir().unwrap();
        let ca_file = ca.write_cert(dir.path(), "idp-ca.pem");
        let document = Arc::new(Mutex::new(initial));
        let gate = Arc::new((Mutex::new(GateState::Open), std::sync::Condvar::new()));
        let (served, held) = (document.clone(), gate.clone());
        let respond: Responder = Arc::new(move |request| match request.path_and_query.as_str() {
            "/jwks" => {
                let (state, changed) = &*held;
                let mut state = state.lock().unwrap();
                if *state == GateState::Closed {
                    *state = GateState::Waiting;
                    changed.notify_all();
                    let wait = Duration::from_secs(20);
                    state = changed.wait_timeout_while(state, wait, |s| *s == GateState::Waiting).unwrap().0;
                }
                drop(state);
                (200, served.lock().unwrap().to_string())
            }
            "/not-json" => (200, "<html>".to_string()),
            _ => (404, "{}".to_string()),
        });
        let server = TestHttpsServer::start(
            server_config(&ca.server_cert("idp"), &[b"http/1.1"]),
            respond,
        );
        KeySetServer {
            document,
            gate,
            server,
            dir,
            ca_file,
        }
    }

    fn url(&self) -> String {
        format!("{}/jwks", self.server.url())
    }

    fn publish(&self, document: Value) {
        *self.document.lock().unwrap() = document;
    }

    /// Closes the gate: the next fetch waits at it.
    fn hold(&self) {
        *self.gate.0.lock().unwrap() = GateState::Closed;
    }

    /// Waits (at most 20 s) until a fetch is waiting at the closed gate; whether one is.
    fn fetch_held(&self) -> bool {
        let (state, changed) = &*self.gate;
        let wait = Duration::from_secs(20);
        let state = changed.wait_timeout_while(state.lock().unwrap(), wait, |s| *s != GateState::Waiting).unwrap().0;
        *state == GateState::Waiting
    }

    /// Opens the gate and lets a waiting fetch through.
    fn release(&self) {
        let (state, changed) = &*self.gate;
        *state.lock().unwrap() = GateState::Open;
        changed.notify_all();
    }

    /// Fetches answered so far.
    fn fetches(&self) -> usize {
        self.server.hits()
    }
}

/// A clock the test moves.
struct ManualClock {
    start: Instant,
    offset: Mutex<Duration>,
}

impl ManualClock {
    fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            start: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        })
    }

    fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap()
    }
}

/// Settings whose schedule never fires during a test: only demands and `refresh_now` fetch.
fn manual_settings() -> JwksSettings {
    JwksSettings {
        refresh_interval: Duration::from_secs(3600),
        retry_after_failure: Duration::from_secs(3600),
        unknown_kid_min_interval: Duration::from_secs(30),
        max_key_age: Duration::from_secs(600),
        fetch_timeout: Duration::from_secs(10),
    }
}

/// Lets an Authenticator use a resolver the test keeps a handle on.
struct SharedResolver(Arc<JwksResolver>);

impl KeyResolver for SharedResolver {
    fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<DecodingKey>, AuthnError> {
        self.0.key_for(kid, alg)
    }

    fn key_set_version(&self) -> u64 {
        self.0.key_set_version()
    }
}

fn auth_config(url: &str, algorithms: &[Algorithm]) -> AuthConfig {
    AuthConfig {
        issuer: Some(ISSUER.into()),
        audience: Some(vec![AUDIENCE.into()]),
        algorithms: algorithms.to_vec(),
        key: KeySource::JwksUrl(url.into()),
        jwks_ca_file: None,
        leeway: Duration::from_secs(5),
        principal: PrincipalMapping {
            id: "sub".into(),
            roles: "roles".into(),
            attr: None,
        },
    }
}

fn start(
    server: &KeySetServer,
    algorithms: &[Algorithm],
    clock: Arc<ManualClock>,
) -> Result<JwksResolver, JwksError> {
    JwksResolver::start(
        &server.url(),
        algorithms,
        Some(&server.ca_file),
        manual_settings(),
        clock,
    )
}

fn kids(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// The resolver in process
// ---------------------------------------------------------------------------------------------

#[test]
fn rotation_unknown_kid_refresh_rate_limit_outage_and_expiry() {
    let a = es256("a");
    let b = ed25519("b");
    let stranger = es256("stranger");
    let server = KeySetServer::start(key_set(&[&a]));
    let clock = ManualClock::new();
    let algorithms = [Algorithm::ES256, Algorithm::EdDSA];
    let resolver = Arc::new(start(&server, &algorithms, clock.clone()).unwrap());
    let authn = Authenticator::with_keys(
        &auth_config(&server.url(), &algorithms),
        Box::new(SharedResolver(resolver.clone())),
    )
    .unwrap();
    let verify = |t: &str| authn.verify_token(t).map(|a| a.principal().id.clone());
    assert_eq!(server.fetches(), 1);
    assert_eq!(verify(&token(&a)), Ok("alice".into()));

    // Rotation: a token naming the new kid makes the resolver fetch the set once.
    server.publish(key_set(&[&a, &b]));
    assert_eq!(verify(&token(&b)), Ok("alice".into()));
    assert_eq!(server.fetches(), 2);
    assert_eq!(resolver.key_ids(), kids(&["a", "b"]));

    // A kid nobody published: 401, and within the rate limit no further fetch.
    assert_eq!(verify(&token(&stranger)), Err(AuthnError::UnknownKey));
    assert_eq!(server.fetches(), 2);
    // After the interval, an unknown kid may fetch again (and still is unknown).
    clock.advance(Duration::from_secs(31));
    assert_eq!(verify(&token(&stranger)), Err(AuthnError::UnknownKey));
    assert_eq!(server.fetches(), 3);

    // A key removed from the set keeps working until the set is fetched again; then even a
    // token verified (and cached) before is refused at once, not when its cache entry ends.
    let cached_a = token(&a);
    assert_eq!(verify(&cached_a), Ok("alice".into()));
    server.publish(key_set(&[&b]));
    assert_eq!(verify(&token(&a)), Ok("alice".into()));
    assert_eq!(verify(&cached_a), Ok("alice".into()));
    assert_eq!(resolver.refresh_now(), Ok(1));
    assert_eq!(verify(&token(&a)), Err(AuthnError::UnknownKey));
    assert_eq!(verify(&cached_a), Err(AuthnError::UnknownKey));
    assert_eq!(resolver.key_ids(), kids(&["b"]));

    // The endpoint goes down: fetches fail, cached keys keep working.
    server.server.set_down(true);
    assert!(resolver.refresh_now().is_err());
    assert_eq!(verify(&token(&b)), Ok("alice".into()));
    clock.advance(Duration::from_secs(31));
    // An unknown kid while down: the fetch fails, 401.
    assert_eq!(verify(&token(&stranger)), Err(AuthnError::UnknownKey));
    // Until the keys are older than their lifetime; then nothing verifies, cached or not.
    let cached_b = token(&b);
    assert_eq!(verify(&cached_b), Ok("alice".into()));
    clock.advance(Duration::from_secs(600));
    assert_eq!(verify(&cached_b), Err(AuthnError::KeysUnavailable));
    assert_eq!(verify(&token(&b)), Err(AuthnError::KeysUnavailable));
    assert_eq!(verify(&token(&b)), Err(AuthnError::KeysUnavailable));

    // Back up: the next lookup past the rate limit fetches and recovers.
    server.server.set_down(false);
    clock.advance(Duration::from_secs(31));
    assert_eq!(verify(&token(&b)), Ok("alice".into()));
}

#[test]
fn the_schedule_refreshes_the_set() {
    let a = es256("a");
    let b = es256("b");
    let server = KeySetServer::start(key_set(&[&a]));
    let settings = JwksSettings {
        refresh_interval: Duration::from_millis(100),
        ..manual_settings()
    };
    let resolver = JwksResolver::start(
        &server.url(),
        &[Algorithm::ES256],
        Some(&server.ca_file),
        settings,
        ManualClock::new(),
    )
    .unwrap();
    server.publish(key_set(&[&b]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while resolver.key_ids() != kids(&["b"]) {
        assert!(
            Instant::now() < deadline,
            "the scheduled refresh never came"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // No token was involved: the fetches came from the schedule.
    assert!(server.fetches() >= 2);
    assert!(resolver.key_for(Some("a"), Algorithm::ES256).is_err());
    assert!(resolver.key_for(Some("b"), Algorithm::ES256).is_ok());
}

#[test]
fn only_signature_keys_fitting_a_configured_algorithm_are_used() {
    let good = es256("good");
    let mut enc = es256("enc");
    enc.jwk["use"] = json!("enc");
    let mut ops = es256("ops");
    ops.jwk["key_ops"] = json!(["encrypt"]);
    let mut verify_ops = es256("verify-ops");
    verify_ops.jwk["key_ops"] = json!(["verify"]);
    let mut wrong_alg = es256("wrong-alg");
    wrong_alg.jwk["alg"] = json!("ES384");
    let (_, p384) = ec_key("p384", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ed = ed25519("ed");
    let mut bad_point = es256("bad-point");
    bad_point.jwk["x"] = json!(b64(&[7u8; 31]));
    let small_rsa = json!({"kty": "RSA", "kid": "rsa-1024", "n": b64(&[0xC5; 128]), "e": "AQAB"});
    let oct = json!({"kty": "oct", "kid": "oct", "k": b64(b"0123456789abcdef0123456789abcdef")});
    let document = json!({"keys": [
        good.jwk, enc.jwk, ops.jwk, verify_ops.jwk, wrong_alg.jwk, p384, ed.jwk, bad_point.jwk,
        small_rsa, oct, "not an object",
    ]});
    let server = KeySetServer::start(document);
    let resolver = start(&server, &[Algorithm::ES256], ManualClock::new()).unwrap();
    assert_eq!(resolver.key_ids(), kids(&["good", "verify-ops"]));
    let authn = Authenticator::with_keys(
        &auth_config(&server.url(), &[Algorithm::ES256]),
        Box::new(resolver),
    )
    .unwrap();
    assert!(authn.verify_token(&token(&good)).is_ok());
    // The private half of an encryption key signs a token: its kid is not usable.
    assert_eq!(
        authn.verify_token(&token(&enc)).err(),
        Some(AuthnError::UnknownKey)
    );
    // A token naming a usable kid but signed by another key.
    assert_eq!(
        authn
            .verify_token(&token_with_kid(&enc, Some("good")))
            .err(),
        Some(AuthnError::BadSignature)
    );
    // EdDSA is not configured: refused before any key is looked up.
    assert_eq!(
        authn.verify_token(&token(&ed)).err(),
        Some(AuthnError::AlgorithmNotAllowed)
    );
}

#[test]
fn a_token_without_kid_needs_exactly_one_fitting_key() {
    let only = es256("only");
    let server = KeySetServer::start(key_set(&[&only]));
    let resolver = Arc::new(
        start(
            &server,
            &[Algorithm::ES256, Algorithm::EdDSA],
            ManualClock::new(),
        )
        .unwrap(),
    );
    let authn = Authenticator::with_keys(
        &auth_config(&server.url(), &[Algorithm::ES256, Algorithm::EdDSA]),
        Box::new(SharedResolver(resolver.clone())),
    )
    .unwrap();
    assert!(authn.verify_token(&token_with_kid(&only, None)).is_ok());
    // An Ed25519 key does not compete with an ES256 one.
    let ed = ed25519("ed");
    server.publish(key_set(&[&only, &ed]));
    resolver.refresh_now().unwrap();
    assert!(authn.verify_token(&token_with_kid(&only, None)).is_ok());
    // Two ES256 keys: ambiguous.
    let second = es256("second");
    server.publish(key_set(&[&only, &ed, &second]));
    resolver.refresh_now().unwrap();
    assert_eq!(
        authn.verify_token(&token_with_kid(&only, None)).err(),
        Some(AuthnError::UnknownKey)
    );
}

#[test]
fn start_fails_when_the_first_fetch_fails_or_finds_no_usable_key() {
    let a = es256("a");
    let server = KeySetServer::start(key_set(&[&a]));
    let base = server.server.url();
    let ca = Some(server.ca_file.as_path());
    let attempt = |url: &str, ca: Option<&std::path::Path>, algorithms: &[Algorithm]| {
        JwksResolver::start(url, algorithms, ca, manual_settings(), ManualClock::new()).map(|_| ())
    };
    assert_eq!(attempt(&server.url(), ca, &[Algorithm::ES256]), Ok(()));
    // Keys exist, none for the configured algorithms.
    assert!(matches!(
        attempt(&server.url(), ca, &[Algorithm::EdDSA]),
        Err(JwksError::NoUsableKey(_))
    ));
    assert!(matches!(
        attempt(&format!("{base}/missing"), ca, &[Algorithm::ES256]),
        Err(JwksError::Status(404))
    ));
    assert!(matches!(
        attempt(&format!("{base}/not-json"), ca, &[Algorithm::ES256]),
        Err(JwksError::Document(_))
    ));
    // Without the CA file the bundled public roots do not trust the private CA.
    assert!(matches!(
        attempt(&server.url(), None, &[Algorithm::ES256]),
        Err(JwksError::Fetch(_))
    ));
    // Another CA file replaces the roots too.
    let other = TestCa::new("other");
    let other_file = other.write_cert(server.dir.path(), "other.pem");
    assert!(matches!(
        attempt(&server.url(), Some(&other_file), &[Algorithm::ES256]),
        Err(JwksError::Fetch(_))
    ));
    assert!(matches!(
        attempt(
            &server.url().replace("https://", "http://"),
            ca,
            &[Algorithm::ES256]
        ),
        Err(JwksError::Url(_))
    ));
    server.server.set_down(true);
    assert!(matches!(
        attempt(&server.url(), ca, &[Algorithm::ES256]),
        Err(JwksError::Fetch(_))
    ));

    // Through the configuration: a startup problem.
    let mut cfg = auth_config(&server.url(), &[Algorithm::ES256]);
    cfg.jwks_ca_file = Some(server.ca_file.clone());
    assert!(matches!(
        Authenticator::from_config(&cfg),
        Err(AuthnError::Config(_))
    ));
    server.server.set_down(false);
    assert!(Authenticator::from_config(&cfg).is_ok());
}

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

fn jwks_auth_yaml(server: &KeySetServer) -> String {
    format!(
        "  issuer: {ISSUER}\n  audience: {AUDIENCE}\n  algorithms: [ES256, EdDSA]\n  \
         jwks_url: {}\n  jwks_ca_file: {}\n  leeway: 5s\n  \
         principal:\n    id: sub\n    roles: roles\n",
        server.url(),
        server.ca_file.display()
    )
}

fn policies() -> PathBuf {
    repo_root().join("tests/fixtures/proxy/policies")
}

#[test]
fn vecgate_verifies_tokens_from_a_rotating_key_set_in_front_of_chroma() {
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(
        &col_id,
        &[
            (
                "f1".into(),
                json!({"department": "finance"}),
                vec![1.0, 0.0],
            ),
            ("h1".into(), json!({"department": "hr"}), vec![0.0, 1.0]),
        ],
    );
    let path = format!("{DEFAULT_DB_PATH}/collections/{col_id}/get");
    let a = es256("a");
    let b = ed25519("b");
    let server = KeySetServer::start(key_set(&[&a]));
    let mut opts = VecgateOptions::chroma(chroma.url(), &policies());
    opts.auth_yaml = Some(jwks_auth_yaml(&server));
    let vecgate = VecgateServer::start(&opts);
    let get = |t: &str| vecgate.call("POST", &path, Some(t), Some(&json!({})));
    let ids = |v: &Value| -> BTreeSet<String> {
        v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect()
    };

    let (status, body) = get(&token(&a));
    assert_eq!(status, 200, "{body}\n{}", vecgate.log_tail());
    assert_eq!(ids(&body), BTreeSet::from(["f1".to_string()]));

    // Rotation: the new kid is fetched on first sight.
    server.publish(key_set(&[&a, &b]));
    let fetches = server.fetches();
    let (status, body) = get(&token(&b));
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.fetches(), fetches + 1);

    // An unknown kid: 401, and no second fetch so soon.
    let (status, _) = get(&token(&es256("stranger")));
    assert_eq!(status, 401);
    assert_eq!(server.fetches(), fetches + 1);

    // The endpoint goes down: cached keys still verify; unknown kids are refused.
    server.server.set_down(true);
    let (status, body) = get(&token(&a));
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(&token(&es256("another-stranger")));
    assert_eq!(status, 401);

    let (_, metrics) = vecgate.admin_get("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("vecgate_auth_failures_total")
                && l.contains("reason=\"unknown_key\"")),
        "{metrics}"
    );
}

/// A worker serves many connections on one thread: a token whose key must be fetched first
/// must not stop the worker's other requests while the fetch is under way. One worker, so
/// both requests share its thread; the key-set server holds its answer until released.
#[test]
fn a_key_set_fetch_under_way_does_not_stall_the_workers_other_requests() {
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(&col_id, &[("f1".into(), json!({"department": "finance"}), vec![1.0, 0.0])]);
    let path = format!("{DEFAULT_DB_PATH}/collections/{col_id}/get");
    let a = es256("a");
    let b = ed25519("b");
    let server = KeySetServer::start(key_set(&[&a]));
    let mut opts = VecgateOptions::chroma(chroma.url(), &policies());
    opts.auth_yaml = Some(jwks_auth_yaml(&server));
    opts.extra_yaml = "limits:\n  workers: 1\n".into();
    let vecgate = Arc::new(VecgateServer::start(&opts));
    let get = |vecgate: &VecgateServer, t: &str| vecgate.call("POST", &path, Some(t), Some(&json!({}))).0;
    assert_eq!(get(&vecgate, &token(&a)), 200, "{}", vecgate.log_tail());

    // b's kid is new: its request waits for a fetch the key-set server holds.
    server.publish(key_set(&[&a, &b]));
    server.hold();
    let b_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let waiting = {
        let (vecgate, path, b_done, token_b) = (vecgate.clone(), path.clone(), b_done.clone(), token(&b));
        std::thread::spawn(move || {
            let status = vecgate.call("POST", &path, Some(&token_b), Some(&json!({}))).0;
            b_done.store(true, std::sync::atomic::Ordering::SeqCst);
            status
        })
    };
    assert!(server.fetch_held(), "vecgate never fetched the key set for b's kid");

    // Meanwhile the same worker answers a's requests, and b's is still waiting.
    for _ in 0..3 {
        assert_eq!(get(&vecgate, &token(&a)), 200, "{}", vecgate.log_tail());
    }
    assert!(!b_done.load(std::sync::atomic::Ordering::SeqCst), "b's request ended before its key set came");

    server.release();
    assert_eq!(waiting.join().unwrap(), 200, "{}", vecgate.log_tail());
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GateState {
    Open,
    Closed,
    /// Closed, and a fetch is waiting at it.
    Waiting,
}

#[test]
fn vecgate_does_not_start_when_the_key_set_cannot_be_fetched() {
    let server = KeySetServer::start(key_set(&[&es256("a")]));
    server.server.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vecgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\nupstream:\n  kind: chroma\n  url: http://127.0.0.1:{port}\n\
             auth:\n{auth}policies:\n  dir: {policies}\ncollections:\n  - name: \"*\"\n    resource_kind: document\n",
            port = support::free_port(),
            auth = jwks_auth_yaml(&server),
            policies = policies().display(),
        ),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vecgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("vecgate listening"), "{stderr}");
}
