//! JWT authentication and principal mapping (src/authn): which tokens are accepted, which are
//! refused and with which error kind.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vecgate::authn::{mint_dev_token, Authenticator, AuthnError};
use vecgate::config::{Algorithm, AuthConfig, KeySource, PrincipalMapping};
use vecgate::plan::Value;

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

fn key_bytes(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn default_mapping() -> PrincipalMapping {
    PrincipalMapping {
        id: "sub".into(),
        roles: "roles".into(),
        attr: None,
    }
}

fn config(algorithms: &[Algorithm], key: KeySource) -> AuthConfig {
    AuthConfig {
        issuer: None,
        audience: None,
        algorithms: algorithms.to_vec(),
        key,
        jwks_ca_file: None,
        leeway: Duration::ZERO,
        principal: default_mapping(),
    }
}

/// Puts `secret` in a fresh environment variable and returns its name.
fn secret_env(secret: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "VECGATE_AUTHN_TEST_SECRET_{}",
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    std::env::set_var(&name, secret);
    name
}

fn hmac_config(algorithms: &[Algorithm], secret: &str) -> AuthConfig {
    config(algorithms, KeySource::HmacSecretEnv(secret_env(secret)))
}

fn pem_config(algorithms: &[Algorithm], public_key: &str) -> AuthConfig {
    config(algorithms, KeySource::PublicKeyFile(key_path(public_key)))
}

fn authenticator(cfg: &AuthConfig) -> Authenticator {
    Authenticator::from_config(cfg).unwrap()
}

fn good_claims() -> Json {
    json!({"sub": "alice", "roles": ["reader"], "exp": now() + 600})
}

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    alg.name().parse().unwrap()
}

fn private_key(alg: Algorithm, private_pem: &str) -> EncodingKey {
    let pem = key_bytes(private_pem);
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    }
}

fn sign_with(alg: Algorithm, key: &EncodingKey, claims: &Json) -> String {
    jsonwebtoken::encode(&Header::new(jwt_alg(alg)), claims, key).unwrap()
}

fn sign_pem(alg: Algorithm, private_pem: &str, claims: &Json) -> String {
    sign_with(alg, &private_key(alg, private_pem), claims)
}

fn sign_hmac(alg: Algorithm, secret: &str, claims: &Json) -> String {
    sign_with(alg, &EncodingKey::from_secret(secret.as_bytes()), claims)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with a hand-written header and no signature.
fn unsigned_token(header: &Json, claims: &Json) -> String {
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

// --- algorithm families -------------------------------------------------------------------

/// (algorithm, public key, private key, unrelated private key of the same type)
const PEM_CASES: [(Algorithm, &str, &str, &str); 9] = [
    (
        Algorithm::RS256,
        "rsa_public.pem",
        "rsa_private.pem",
        "rsa_other_private.pem",
    ),
    (
        Algorithm::RS384,
        "rsa_public.pem",
        "rsa_private.pem",
        "rsa_other_private.pem",
    ),
    (
        Algorithm::RS512,
        "rsa_public.pem",
        "rsa_private.pem",
        "rsa_other_private.pem",
    ),
    (
        Algorithm::PS256,
        "rsa_public.pem",
        "rsa_private.pem",
        "rsa_other_private.pem",
    ),
    (
        Algorithm::PS384,
        "rsa_public.pem",
        "rsa_private.pem",
        "rsa_other_private.pem",
    ),
    (
        Algorithm::PS512,
        "rsa_public.pem",
        "rsa_private.pem",
        "rsa_other_private.pem",
    ),
    (
        Algorithm::ES256,
        "ec_p256_public.pem",
        "ec_p256_private.pem",
        "ec_p256_other_private.pem",
    ),
    (
        Algorithm::ES384,
        "ec_p384_public.pem",
        "ec_p384_private.pem",
        "ec_p384_other_private.pem",
    ),
    (
        Algorithm::EdDSA,
        "ed25519_public.pem",
        "ed25519_private.pem",
        "ed25519_other_private.pem",
    ),
];

#[test]
fn every_public_key_algorithm_accepts_its_key_and_rejects_another() {
    for (alg, public, private, other) in PEM_CASES {
        let auth = authenticator(&pem_config(&[alg], public));
        let good = auth.verify_token(&sign_pem(alg, private, &good_claims()));
        assert_eq!(good.unwrap().principal().id, "alice", "{alg:?}");
        let forged = auth.verify_token(&sign_pem(alg, other, &good_claims()));
        assert_eq!(forged.unwrap_err(), AuthnError::BadSignature, "{alg:?}");
    }
}

#[test]
fn every_hmac_algorithm_accepts_its_secret_and_rejects_another() {
    let other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let auth = authenticator(&hmac_config(&[alg], SECRET));
        assert!(auth
            .verify_token(&sign_hmac(alg, SECRET, &good_claims()))
            .is_ok());
        let forged = auth.verify_token(&sign_hmac(alg, other, &good_claims()));
        assert_eq!(forged.unwrap_err(), AuthnError::BadSignature, "{alg:?}");
    }
}

#[test]
fn rsa_public_key_in_pkcs1_form_is_accepted() {
    let auth = authenticator(&pem_config(&[Algorithm::RS256], "rsa_public_pkcs1.pem"));
    let token = sign_pem(Algorithm::RS256, "rsa_private.pem", &good_claims());
    assert!(auth.verify_token(&token).is_ok());
}

#[test]
fn several_algorithms_of_one_family_can_be_configured() {
    let auth = authenticator(&pem_config(
        &[Algorithm::RS256, Algorithm::PS512],
        "rsa_public.pem",
    ));
    for alg in [Algorithm::RS256, Algorithm::PS512] {
        assert!(auth
            .verify_token(&sign_pem(alg, "rsa_private.pem", &good_claims()))
            .is_ok());
    }
}

#[test]
fn algorithm_not_configured_is_refused_even_with_the_right_key() {
    let auth = authenticator(&pem_config(&[Algorithm::RS256], "rsa_public.pem"));
    let token = sign_pem(Algorithm::PS256, "rsa_private.pem", &good_claims());
    assert_eq!(
        auth.verify_token(&token).unwrap_err(),
        AuthnError::AlgorithmNotAllowed
    );

    let auth = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let token = sign_hmac(Algorithm::HS512, SECRET, &good_claims());
    assert_eq!(
        auth.verify_token(&token).unwrap_err(),
        AuthnError::AlgorithmNotAllowed
    );
}

#[test]
fn hs256_token_signed_with_the_rsa_public_key_is_refused() {
    let auth = authenticator(&pem_config(&[Algorithm::RS256], "rsa_public.pem"));
    let public_pem = key_bytes("rsa_public.pem");
    let token = sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        &good_claims(),
    );
    assert_eq!(
        auth.verify_token(&token).unwrap_err(),
        AuthnError::AlgorithmNotAllowed
    );
}

#[test]
fn hmac_algorithm_next_to_a_public_key_is_a_startup_error() {
    let cfg = pem_config(&[Algorithm::RS256, Algorithm::HS256], "rsa_public.pem");
    assert!(matches!(
        Authenticator::from_config(&cfg),
        Err(AuthnError::Config(_))
    ));
}

#[test]
fn alg_none_is_refused() {
    for auth in [
        authenticator(&hmac_config(&[Algorithm::HS256], SECRET)),
        authenticator(&pem_config(&[Algorithm::RS256], "rsa_public.pem")),
    ] {
        for none in ["none", "None", "NONE"] {
            let token = unsigned_token(&json!({"alg": none, "typ": "JWT"}), &good_claims());
            assert_eq!(
                auth.verify_token(&token).unwrap_err(),
                AuthnError::AlgorithmNotAllowed
            );
        }
    }
}

#[test]
fn unsigned_token_claiming_a_configured_algorithm_is_refused() {
    let auth = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let token = unsigned_token(&json!({"alg": "HS256"}), &good_claims());
    assert_eq!(
        auth.verify_token(&token).unwrap_err(),
        AuthnError::BadSignature
    );
}

#[test]
fn malformed_tokens_are_refused() {
    let auth = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let good = sign_hmac(Algorithm::HS256, SECRET, &good_claims());
    let mut crit_header = Header::new(jsonwebtoken::Algorithm::HS256);
    crit_header.crit = Some(vec!["b64".into()]);
    let crit_token = jsonwebtoken::encode(
        &crit_header,
        &good_claims(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert!(auth.verify_token(&good).is_ok());
    for bad in [
        "not-a-jwt".to_string(),
        "a.b.c".to_string(),
        format!("{good}.extra.parts"),
        "x".repeat(20_000),
        crit_token,
    ] {
        assert_eq!(auth.verify_token(&bad).unwrap_err(), AuthnError::Malformed);
    }
}

// --- time, issuer, audience ---------------------------------------------------------------

#[test]
fn exp_is_required() {
    let auth = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let token = sign_hmac(
        Algorithm::HS256,
        SECRET,
        &json!({"sub": "a", "roles": ["r"]}),
    );
    assert!(matches!(
        auth.verify_token(&token),
        Err(AuthnError::MissingClaim { claim }) if claim == "exp"
    ));
}

#[test]
fn expired_token_is_refused_unless_within_leeway() {
    let claims = json!({"sub": "a", "roles": ["r"], "exp": now() - 60});
    let token = sign_hmac(Algorithm::HS256, SECRET, &claims);
    let strict = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    assert_eq!(
        strict.verify_token(&token).unwrap_err(),
        AuthnError::Expired
    );
    let mut cfg = hmac_config(&[Algorithm::HS256], SECRET);
    cfg.leeway = Duration::from_secs(120);
    assert!(authenticator(&cfg).verify_token(&token).is_ok());
}

#[test]
fn token_before_nbf_is_refused_unless_within_leeway() {
    let claims = json!({"sub": "a", "roles": ["r"], "exp": now() + 600, "nbf": now() + 60});
    let token = sign_hmac(Algorithm::HS256, SECRET, &claims);
    let strict = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    assert_eq!(
        strict.verify_token(&token).unwrap_err(),
        AuthnError::NotYetValid
    );
    let mut cfg = hmac_config(&[Algorithm::HS256], SECRET);
    cfg.leeway = Duration::from_secs(120);
    assert!(authenticator(&cfg).verify_token(&token).is_ok());
}

#[test]
fn issuer_must_match_when_configured() {
    let mut cfg = hmac_config(&[Algorithm::HS256], SECRET);
    cfg.issuer = Some("https://idp.example.com".into());
    let auth = authenticator(&cfg);
    let with = |iss: Option<Json>| {
        let mut claims = good_claims();
        if let Some(iss) = iss {
            claims["iss"] = iss;
        }
        auth.verify_token(&sign_hmac(Algorithm::HS256, SECRET, &claims))
    };
    assert!(with(Some(json!("https://idp.example.com"))).is_ok());
    assert_eq!(
        with(Some(json!("https://evil.example.com"))).unwrap_err(),
        AuthnError::WrongIssuer
    );
    assert_eq!(
        with(Some(json!(["https://idp.example.com"]))).unwrap_err(),
        AuthnError::WrongIssuer
    );
    assert_eq!(with(None).unwrap_err(), AuthnError::WrongIssuer);

    let unconfigured = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let mut claims = good_claims();
    claims["iss"] = json!("anyone");
    assert!(unconfigured
        .verify_token(&sign_hmac(Algorithm::HS256, SECRET, &claims))
        .is_ok());
}

#[test]
fn audience_must_contain_a_configured_value_when_configured() {
    let mut cfg = hmac_config(&[Algorithm::HS256], SECRET);
    cfg.audience = Some(vec!["vecgate".into(), "search".into()]);
    let auth = authenticator(&cfg);
    let with = |aud: Option<Json>| {
        let mut claims = good_claims();
        if let Some(aud) = aud {
            claims["aud"] = aud;
        }
        auth.verify_token(&sign_hmac(Algorithm::HS256, SECRET, &claims))
    };
    assert!(with(Some(json!("vecgate"))).is_ok());
    assert!(with(Some(json!(["billing", "search"]))).is_ok());
    assert_eq!(
        with(Some(json!("billing"))).unwrap_err(),
        AuthnError::WrongAudience
    );
    assert_eq!(
        with(Some(json!([]))).unwrap_err(),
        AuthnError::WrongAudience
    );
    assert_eq!(
        with(Some(json!(42))).unwrap_err(),
        AuthnError::WrongAudience
    );
    assert_eq!(with(None).unwrap_err(), AuthnError::WrongAudience);

    let unconfigured = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let mut claims = good_claims();
    claims["aud"] = json!("somebody-else");
    assert!(unconfigured
        .verify_token(&sign_hmac(Algorithm::HS256, SECRET, &claims))
        .is_ok());
}

// --- where the token comes from -----------------------------------------------------------

#[test]
fn token_is_found_in_each_supported_header() {
    let auth = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let token = sign_hmac(Algorithm::HS256, SECRET, &good_claims());
    let bearer = format!("Bearer {token}");
    let lower = format!("bearer  {token} ");
    for pairs in [
        vec![("authorization", bearer.as_str())],
        vec![("Authorization", lower.as_str())],
        vec![("X-Chroma-Token", token.as_str())],
        vec![("api-key", token.as_str())],
        vec![
            ("authorization", bearer.as_str()),
            ("x-chroma-token", token.as_str()),
        ],
        vec![("api-key", token.as_str()), ("api-key", token.as_str())],
        vec![
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("api-key", token.as_str()),
        ],
        vec![("x-chroma-token", "  "), ("api-key", token.as_str())],
    ] {
        let result = auth.authenticate(&headers(&pairs));
        assert_eq!(result.unwrap().principal().id, "alice", "{pairs:?}");
    }
}

#[test]
fn different_tokens_in_different_headers_conflict() {
    let auth = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let alice = sign_hmac(Algorithm::HS256, SECRET, &good_claims());
    let mut bob_claims = good_claims();
    bob_claims["sub"] = json!("bob");
    let bob = sign_hmac(Algorithm::HS256, SECRET, &bob_claims);
    let bearer = format!("Bearer {alice}");
    for pairs in [
        vec![
            ("authorization", bearer.as_str()),
            ("x-chroma-token", bob.as_str()),
        ],
        vec![
            ("authorization", bearer.as_str()),
            ("api-key", bob.as_str()),
        ],
        vec![
            ("x-chroma-token", alice.as_str()),
            ("api-key", bob.as_str()),
        ],
        vec![("api-key", alice.as_str()), ("api-key", bob.as_str())],
    ] {
        let result = auth.authenticate(&headers(&pairs));
        assert_eq!(
            result.unwrap_err(),
            AuthnError::ConflictingTokens,
            "{pairs:?}"
        );
    }
}

#[test]
fn absent_or_empty_tokens_are_missing() {
    let auth = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    for pairs in [
        vec![],
        vec![("authorization", "Bearer")],
        vec![("authorization", "Bearer    ")],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
        vec![("x-chroma-token", "")],
        vec![("api-key", "   ")],
        vec![("content-type", "application/json")],
    ] {
        let result = auth.authenticate(&headers(&pairs));
        assert_eq!(result.unwrap_err(), AuthnError::MissingToken, "{pairs:?}");
    }
    assert_eq!(
        auth.verify_token("  ").unwrap_err(),
        AuthnError::MissingToken
    );
}

#[test]
fn header_value_that_is_not_text_is_malformed() {
    let auth = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let mut map = HeaderMap::new();
    map.insert("api-key", HeaderValue::from_bytes(b"tok\xffen").unwrap());
    assert_eq!(auth.authenticate(&map).unwrap_err(), AuthnError::Malformed);
}

// --- claims → principal -------------------------------------------------------------------

fn mapped(
    mapping: PrincipalMapping,
    claims: &Json,
) -> Result<std::sync::Arc<vecgate::authn::Authenticated>, AuthnError> {
    let mut cfg = hmac_config(&[Algorithm::HS256], SECRET);
    cfg.principal = mapping;
    authenticator(&cfg).verify_token(&sign_hmac(Algorithm::HS256, SECRET, claims))
}

#[test]
fn id_and_roles_follow_dotted_claim_paths() {
    let mapping = PrincipalMapping {
        id: "user.id".into(),
        roles: "realm_access.roles".into(),
        attr: None,
    };
    let claims = json!({
        "user": {"id": "u-7"},
        "realm_access": {"roles": ["reader", "writer"]},
        "exp": now() + 600,
    });
    let p = mapped(mapping, &claims).unwrap().principal().clone();
    assert_eq!(p.id, "u-7");
    assert_eq!(p.roles, vec!["reader".to_string(), "writer".to_string()]);
}

#[test]
fn namespaced_claim_with_dots_is_found_whole() {
    let mapping = PrincipalMapping {
        id: "sub".into(),
        roles: "https://example.com/roles".into(),
        attr: None,
    };
    let claims = json!({"sub": "a", "https://example.com/roles": ["admin"], "exp": now() + 600});
    assert_eq!(
        mapped(mapping, &claims).unwrap().principal().roles,
        vec!["admin".to_string()]
    );
}

#[test]
fn integer_id_becomes_a_string_and_other_types_are_refused() {
    let claims = json!({"sub": 42, "roles": ["r"], "exp": now() + 600});
    assert_eq!(
        mapped(default_mapping(), &claims).unwrap().principal().id,
        "42"
    );
    for sub in [
        json!(1.5),
        json!(""),
        json!(true),
        json!({"id": "x"}),
        json!(["a"]),
    ] {
        let claims = json!({"sub": sub, "roles": ["r"], "exp": now() + 600});
        assert!(
            matches!(
                mapped(default_mapping(), &claims),
                Err(AuthnError::BadClaim { .. })
            ),
            "{sub}"
        );
    }
    let claims = json!({"roles": ["r"], "exp": now() + 600});
    assert!(matches!(
        mapped(default_mapping(), &claims),
        Err(AuthnError::MissingClaim { claim }) if claim == "sub"
    ));
}

#[test]
fn roles_are_a_list_or_a_single_string_and_required() {
    let one = json!({"sub": "a", "roles": "reader writer", "exp": now() + 600});
    assert_eq!(
        mapped(default_mapping(), &one).unwrap().principal().roles,
        vec!["reader writer".to_string()]
    );
    for missing in [
        json!({"sub": "a", "exp": now() + 600}),
        json!({"sub": "a", "roles": null, "exp": now() + 600}),
    ] {
        assert!(matches!(
            mapped(default_mapping(), &missing),
            Err(AuthnError::MissingClaim { claim }) if claim == "roles"
        ));
    }
    for bad in [
        json!([]),
        json!(["a", 1]),
        json!([""]),
        json!(7),
        json!({"r": 1}),
    ] {
        let claims = json!({"sub": "a", "roles": bad, "exp": now() + 600});
        assert!(
            matches!(
                mapped(default_mapping(), &claims),
                Err(AuthnError::BadClaim { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn attr_mapping_takes_listed_claims_and_omits_missing_ones() {
    let mapping = PrincipalMapping {
        id: "sub".into(),
        roles: "roles".into(),
        attr: Some(BTreeMap::from([
            ("department".to_string(), "org.department".to_string()),
            ("level".to_string(), "level".to_string()),
            ("region".to_string(), "region".to_string()),
        ])),
    };
    let claims = json!({
        "sub": "a", "roles": ["r"], "exp": now() + 600,
        "org": {"department": "eng"}, "level": 3, "unlisted": "x",
    });
    let authenticated = mapped(mapping, &claims).unwrap();
    let attr = &authenticated.principal().attr;
    assert_eq!(attr.len(), 2);
    assert_eq!(attr["department"].as_str(), Some("eng"));
    // JSON numbers are doubles, as in the PDP (google.protobuf.Value).
    assert!(matches!(attr["level"], Value::Double(d) if d == 3.0));
    // Every verified claim stays available for request.auxData.jwt.
    assert!(authenticated.claims().contains_key("unlisted"));
    assert!(matches!(authenticated.claims()["org"], Value::Map(_)));
}

#[test]
fn without_attr_mapping_every_claim_is_an_attribute() {
    let exp = now() + 600;
    let claims = json!({"sub": "a", "roles": ["r"], "exp": exp, "team": "blue", "tags": ["x"]});
    let authenticated = mapped(default_mapping(), &claims).unwrap();
    let attr = &authenticated.principal().attr;
    let names: Vec<&str> = attr.keys().map(String::as_str).collect();
    assert_eq!(names, ["exp", "roles", "sub", "tags", "team"]);
    assert_eq!(attr["team"].as_str(), Some("blue"));
    assert!(matches!(&attr["tags"], Value::List(l) if l.len() == 1));
    assert_eq!(authenticated.expires_at(), Some(exp));
}

// --- the verified-claims cache ------------------------------------------------------------

#[test]
fn cache_answers_each_token_with_its_own_principal() {
    let auth = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let token_for = |sub: &str| {
        let mut claims = good_claims();
        claims["sub"] = json!(sub);
        sign_hmac(Algorithm::HS256, SECRET, &claims)
    };
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    for _ in 0..3 {
        assert_eq!(auth.verify_token(&alice).unwrap().principal().id, "alice");
        assert_eq!(auth.verify_token(&bob).unwrap().principal().id, "bob");
    }
}

#[test]
fn cached_token_with_a_changed_signature_is_refused() {
    let auth = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let token = sign_hmac(Algorithm::HS256, SECRET, &good_claims());
    assert!(auth.verify_token(&token).is_ok());
    let (message, signature) = token.rsplit_once('.').unwrap();
    let mut sig = signature.as_bytes().to_vec();
    sig[0] = if sig[0] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{message}.{}", String::from_utf8(sig).unwrap());
    assert_eq!(
        auth.verify_token(&tampered).unwrap_err(),
        AuthnError::BadSignature
    );
}

#[test]
fn cached_token_is_refused_once_expired() {
    let auth = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let exp = now() + 1;
    let claims = json!({"sub": "a", "roles": ["r"], "exp": exp});
    let token = sign_hmac(Algorithm::HS256, SECRET, &claims);
    assert!(auth.verify_token(&token).is_ok());
    assert!(auth.verify_token(&token).is_ok());
    while now() <= exp {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(auth.verify_token(&token).unwrap_err(), AuthnError::Expired);
}

// --- startup problems ---------------------------------------------------------------------

#[test]
fn keys_that_do_not_fit_the_algorithms_are_startup_errors() {
    let cases = [
        pem_config(&[Algorithm::ES384], "ec_p256_public.pem"),
        pem_config(&[Algorithm::ES256], "ec_p384_public.pem"),
        pem_config(&[Algorithm::RS256], "ec_p256_public.pem"),
        pem_config(&[Algorithm::EdDSA], "rsa_public.pem"),
        pem_config(&[Algorithm::ES256], "ed25519_public.pem"),
        pem_config(&[Algorithm::HS256], "rsa_public.pem"),
        pem_config(&[Algorithm::RS256], "rsa_private.pem"),
        pem_config(&[Algorithm::RS256], "README.md"),
        pem_config(&[Algorithm::RS256], "no_such_file.pem"),
        pem_config(&[], "rsa_public.pem"),
        hmac_config(&[Algorithm::RS256], SECRET),
        hmac_config(&[Algorithm::HS256], "too-short"),
        hmac_config(&[Algorithm::HS512], &SECRET[..40]),
        config(
            &[Algorithm::HS256],
            KeySource::HmacSecretEnv("VECGATE_AUTHN_TEST_UNSET".into()),
        ),
        config(
            &[Algorithm::RS256],
            KeySource::JwksUrl("https://idp.example.com/jwks".into()),
        ),
    ];
    for cfg in cases {
        assert!(
            matches!(Authenticator::from_config(&cfg), Err(AuthnError::Config(_))),
            "{:?} {:?}",
            cfg.algorithms,
            cfg.key
        );
    }
}

#[test]
fn failure_reasons_are_bounded_metric_labels() {
    assert_eq!(AuthnError::MissingToken.reason(), "missing_token");
    assert_eq!(AuthnError::AlgorithmNotAllowed.reason(), "algorithm");
    assert_eq!(AuthnError::BadSignature.reason(), "signature");
    assert_eq!(AuthnError::NotYetValid.reason(), "not_yet_valid");
    let claim = AuthnError::MissingClaim {
        claim: "roles".into(),
    };
    assert_eq!(claim.reason(), "claims");
    assert_eq!(AuthnError::Config("x".into()).reason(), "config");
}

// --- development tokens -------------------------------------------------------------------

#[test]
fn minted_dev_token_round_trips_through_an_authenticator() {
    let mut cfg = hmac_config(&[Algorithm::HS256], SECRET);
    cfg.issuer = Some("vecgate-dev".into());
    cfg.audience = Some(vec!["vecgate".into()]);
    let claims = vec![
        ("roles".to_string(), json!(["reader", "writer"])),
        ("level".to_string(), json!(3)),
    ];
    let token = mint_dev_token(
        SECRET.as_bytes(),
        "dev-user",
        &claims,
        Duration::from_secs(3600),
        Some("vecgate-dev"),
        Some("vecgate"),
    )
    .unwrap();
    let authenticated = authenticator(&cfg).verify_token(&token).unwrap();
    assert_eq!(authenticated.principal().id, "dev-user");
    assert_eq!(
        authenticated.principal().roles,
        vec!["reader".to_string(), "writer".to_string()]
    );
    assert!(matches!(
        authenticated.principal().attr["level"],
        Value::Double(d) if d == 3.0
    ));
    let exp = authenticated.expires_at().unwrap();
    assert!((now() + 3590..=now() + 3610).contains(&exp));

    let other_secret = "another-secret-that-is-long-enough-0123456789";
    let other = authenticator(&hmac_config(&[Algorithm::HS256], other_secret));
    assert_eq!(
        other.verify_token(&token).unwrap_err(),
        AuthnError::BadSignature
    );
}

#[test]
fn mint_refuses_what_an_authenticator_would_refuse_or_ambiguous_claims() {
    let mint = |secret: &str, claims: &[(String, Json)], ttl: u64| {
        mint_dev_token(
            secret.as_bytes(),
            "u",
            claims,
            Duration::from_secs(ttl),
            None,
            None,
        )
    };
    let roles = [("roles".to_string(), json!(["r"]))];
    assert!(mint(SECRET, &roles, 60).is_ok());
    assert!(mint("short", &roles, 60).is_err());
    assert!(mint(SECRET, &roles, 0).is_err());
    assert!(mint(SECRET, &[("exp".to_string(), json!(1))], 60).is_err());
    let twice = [("r".to_string(), json!(1)), ("r".to_string(), json!(2))];
    assert!(mint(SECRET, &twice, 60).is_err());
}

#[test]
fn token_command_exit_codes() {
    let var = secret_env(SECRET);
    let claims = vec!["roles=[\"reader\"]".to_string(), "level=3".to_string()];
    assert_eq!(
        vecgate::cli::token::run(&var, "u", &claims, "1h", None, None),
        0
    );
    assert_eq!(
        vecgate::cli::token::run("VECGATE_AUTHN_TEST_UNSET", "u", &claims, "1h", None, None),
        2
    );
    assert_eq!(
        vecgate::cli::token::run(&var, "u", &claims, "forever", None, None),
        2
    );
    assert_eq!(
        vecgate::cli::token::run(&var, "u", &["bad".to_string()], "1h", None, None),
        2
    );
}

#[test]
fn time_claims_must_be_numbers() {
    let auth = authenticator(&hmac_config(&[Algorithm::HS256], SECRET));
    let fractional = json!({"sub": "a", "roles": ["r"], "exp": now() as f64 + 600.5});
    assert!(auth
        .verify_token(&sign_hmac(Algorithm::HS256, SECRET, &fractional))
        .is_ok());
    for claims in [
        json!({"sub": "a", "roles": ["r"], "exp": "tomorrow"}),
        json!({"sub": "a", "roles": ["r"], "exp": now() + 600, "nbf": "now"}),
        json!({"sub": "a", "roles": ["r"], "exp": {"at": now() + 600}}),
    ] {
        let result = auth.verify_token(&sign_hmac(Algorithm::HS256, SECRET, &claims));
        assert!(
            matches!(result, Err(AuthnError::BadClaim { .. })),
            "{claims}"
        );
    }
}

#[test]
fn authenticator_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Authenticator>();
    shareable::<vecgate::authn::Authenticated>();
}
