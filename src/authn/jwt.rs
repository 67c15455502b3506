//! JWT verification: loading the configured key, reading the header (allowed `alg`, no
//! `crit`), the signature (jsonwebtoken's crypto), then `exp`/`nbf`/`iss`/`aud` checked here
//! with exact types, and minting development tokens.

use super::AuthnError;
use crate::config::{Algorithm, AuthConfig, KeySource};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{AlgorithmFamily, DecodingKey, EncodingKey, Header};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest token accepted, in bytes; longer ones are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The decoded claims of a token.
pub type Claims = Map<String, Json>;

/// Verification keys, looked up by the token's `kid` and `alg`.
///
/// A configured PEM or secret is one [`StaticKey`]; a JWKS key set implements this trait too
/// and selects by `kid`.
pub trait KeyResolver: Send + Sync {
    /// The key that verifies a token naming `kid` and signed with `alg` (`alg` is already
    /// known to be configured). Returning a key of another family is refused by the caller.
    /// Ed25519 keys must be 32 bytes (jsonwebtoken slices them unchecked); EC and Ed25519 keys
    /// should pass [`public_key_from_pem`]'s checks or their JWK equivalent.
    fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<DecodingKey>, AuthnError>;

    /// Changes whenever tokens verified earlier must be verified again: the keys were
    /// fetched anew (one may have been removed or replaced) or have grown too old to use.
    /// The verified-token cache only serves entries made under the current version.
    fn key_set_version(&self) -> u64;
}

/// One configured key, used whatever `kid` a token names.
pub struct StaticKey {
    key: Arc<DecodingKey>,
}

impl StaticKey {
    pub fn new(key: DecodingKey) -> StaticKey {
        StaticKey { key: Arc::new(key) }
    }
}

impl KeyResolver for StaticKey {
    fn key_for(&self, _kid: Option<&str>, alg: Algorithm) -> Result<Arc<DecodingKey>, AuthnError> {
        if self.key.family() == jwt_algorithm(alg).family() {
            Ok(Arc::clone(&self.key))
        } else {
            Err(AuthnError::AlgorithmNotAllowed)
        }
    }

    /// A configured key never changes while the process runs.
    fn key_set_version(&self) -> u64 {
        0
    }
}

/// jsonwebtoken's name for a configured algorithm.
pub fn jwt_algorithm(alg: Algorithm) -> jsonwebtoken::Algorithm {
    use jsonwebtoken::Algorithm as J;
    match alg {
        Algorithm::HS256 => J::HS256,
        Algorithm::HS384 => J::HS384,
        Algorithm::HS512 => J::HS512,
        Algorithm::RS256 => J::RS256,
        Algorithm::RS384 => J::RS384,
        Algorithm::RS512 => J::RS512,
        Algorithm::PS256 => J::PS256,
        Algorithm::PS384 => J::PS384,
        Algorithm::PS512 => J::PS512,
        Algorithm::ES256 => J::ES256,
        Algorithm::ES384 => J::ES384,
        Algorithm::EdDSA => J::EdDSA,
    }
}

/// Shortest HMAC secret RFC 7518 §3.2 allows for `alg`: as long as the hash output.
fn min_hmac_secret_bytes(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

/// Builds the key resolver for the configured key source, checking that the key fits every
/// configured algorithm.
pub fn load_keys(cfg: &AuthConfig) -> Result<Box<dyn KeyResolver>, AuthnError> {
    if cfg.algorithms.is_empty() {
        return Err(AuthnError::Config("auth.algorithms is empty".into()));
    }
    match &cfg.key {
        KeySource::HmacSecretEnv(var) => {
            let secret = std::env::var(var).map_err(|_| {
                AuthnError::Config(format!(
                    "environment variable {var} is not set (or not UTF-8)"
                ))
            })?;
            let key = hmac_key(secret.as_bytes(), &cfg.algorithms)
                .map_err(|problem| AuthnError::Config(format!("{var}: {problem}")))?;
            Ok(Box::new(StaticKey::new(key)))
        }
        KeySource::PublicKeyFile(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                AuthnError::Config(format!("cannot read public key {}: {e}", path.display()))
            })?;
            let key = public_key_from_pem(&pem, &cfg.algorithms)
                .map_err(|problem| AuthnError::Config(format!("{}: {problem}", path.display())))?;
            Ok(Box::new(StaticKey::new(key)))
        }
        KeySource::JwksUrl(_) => Ok(Box::new(super::jwks::JwksResolver::from_auth_config(cfg)?)),
    }
}

fn hmac_key(secret: &[u8], algorithms: &[Algorithm]) -> Result<DecodingKey, String> {
    if let Some(alg) = algorithms.iter().find(|a| !a.is_hmac()) {
        return Err(format!("a shared secret cannot verify {}", alg.name()));
    }
    let needed = algorithms
        .iter()
        .map(|a| min_hmac_secret_bytes(*a))
        .max()
        .unwrap_or(32);
    if secret.len() < needed {
        return Err(format!(
            "the secret has {} bytes; the configured algorithms need at least {needed}",
            secret.len()
        ));
    }
    Ok(DecodingKey::from_secret(secret))
}

/// Reads a PEM public key (RSA, EC P-256/P-384 or Ed25519), detecting its type, and checks it
/// fits each algorithm.
pub fn public_key_from_pem(pem: &[u8], algorithms: &[Algorithm]) -> Result<DecodingKey, String> {
    match first_pem_label(pem) {
        Some("PUBLIC KEY") | Some("RSA PUBLIC KEY") => {}
        Some(label) if label.contains("PRIVATE") => {
            return Err("this is a private key; give vecgate the public key only".into())
        }
        Some(label) => return Err(format!("expected a PUBLIC KEY PEM block, found {label}")),
        None => return Err("no PEM block found".into()),
    }
    let key = DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .or_else(|_| DecodingKey::from_ed_pem(pem))
        .map_err(|_| "not an RSA, EC or Ed25519 public key".to_string())?;
    for alg in algorithms {
        check_key_fits(&key, *alg)?;
    }
    Ok(key)
}

/// The label of the first `-----BEGIN <label>-----` line.
fn first_pem_label(pem: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(pem).ok()?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("-----BEGIN "))
        .and_then(|rest| rest.strip_suffix("-----"))
}

fn key_family_name(family: AlgorithmFamily) -> &'static str {
    match family {
        AlgorithmFamily::Hmac => "a shared secret",
        AlgorithmFamily::Rsa => "an RSA key",
        AlgorithmFamily::Ec => "an EC key",
        AlgorithmFamily::Ed => "an Ed25519 key",
    }
}

fn check_key_fits(key: &DecodingKey, alg: Algorithm) -> Result<(), String> {
    let jwt_alg = jwt_algorithm(alg);
    if key.family() != jwt_alg.family() {
        return Err(format!(
            "{} cannot verify {}",
            key_family_name(key.family()),
            alg.name()
        ));
    }
    // SEC1 point sizes (uncompressed, compressed) tell the curve apart.
    let bytes = key
        .try_get_as_bytes()
        .map_err(|_| "unreadable key".to_string())?;
    let size_fits = match alg {
        Algorithm::ES256 => matches!(bytes.len(), 65 | 33),
        Algorithm::ES384 => matches!(bytes.len(), 97 | 49),
        Algorithm::EdDSA => bytes.len() == 32,
        _ => true,
    };
    if !size_fits {
        return Err(format!("the key's curve does not match {}", alg.name()));
    }
    // Building a verifier parses EC and Ed25519 points; a bad point fails here, at startup.
    // An empty signature never verifies, so Ok(false) is the expected answer.
    match jsonwebtoken::crypto::verify("", b"", key, jwt_alg) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("the key is not a valid {} key", alg.name())),
    }
}

/// What vecgate reads from a token's header before verifying it.
#[derive(Debug)]
pub struct TokenHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// Reads the header of a compact JWS and checks its `alg` is one of `allowed`. Refuses
/// `none`, unknown algorithms, JWE (five parts) and any `crit` extension.
pub fn read_header(token: &str, allowed: &[Algorithm]) -> Result<TokenHeader, AuthnError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthnError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthnError::Malformed)?;
    let fields: Map<String, Json> =
        serde_json::from_slice(&bytes).map_err(|_| AuthnError::Malformed)?;
    let Some(Json::String(alg_name)) = fields.get("alg") else {
        return Err(AuthnError::Malformed);
    };
    let alg = Algorithm::from_name(alg_name)
        .filter(|alg| allowed.contains(alg))
        .ok_or(AuthnError::AlgorithmNotAllowed)?;
    // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; vecgate knows none.
    if fields.contains_key("crit") {
        return Err(AuthnError::Malformed);
    }
    let kid = match fields.get("kid") {
        None => None,
        Some(Json::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthnError::Malformed),
    };
    Ok(TokenHeader { alg, kid })
}

/// Verifies the signature of a compact JWS with `key` for `alg`, then decodes its claims.
/// The payload is not looked at before the signature verifies.
pub fn verify_signed_claims(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<Claims, AuthnError> {
    let (message, signature) = token.rsplit_once('.').ok_or(AuthnError::Malformed)?;
    let payload = message
        .split_once('.')
        .map(|(_header, payload)| payload)
        .ok_or(AuthnError::Malformed)?;
    let verified =
        jsonwebtoken::crypto::verify(signature, message.as_bytes(), key, jwt_algorithm(alg))
            .map_err(|e| match e.kind() {
                ErrorKind::Base64(_) => AuthnError::Malformed,
                ErrorKind::InvalidKeyFormat | ErrorKind::InvalidAlgorithm => {
                    AuthnError::AlgorithmNotAllowed
                }
                _ => AuthnError::Config("the configured key cannot verify signatures".into()),
            })?;
    if !verified {
        return Err(AuthnError::BadSignature);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthnError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthnError::Malformed)
}

/// `exp` is required and must not have passed, `nbf` (when present) must have come; both
/// with `leeway_secs` of clock skew allowed.
pub fn check_times(claims: &Claims, now: i64, leeway_secs: i64) -> Result<(), AuthnError> {
    let exp = numeric_date(claims, "exp")?.ok_or_else(|| AuthnError::MissingClaim {
        claim: "exp".into(),
    })?;
    if exp.saturating_add(leeway_secs) < now {
        return Err(AuthnError::Expired);
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if nbf > now.saturating_add(leeway_secs) {
            return Err(AuthnError::NotYetValid);
        }
    }
    Ok(())
}

/// A NumericDate claim (seconds since the epoch, fractions allowed) in whole seconds, fractions
/// dropped; `None` when absent.
pub fn numeric_date(claims: &Claims, name: &str) -> Result<Option<i64>, AuthnError> {
    let bad = || AuthnError::BadClaim {
        claim: name.to_string(),
        expected: "a number of seconds since the epoch",
    };
    match claims.get(name) {
        None => Ok(None),
        Some(Json::Number(n)) => match n.as_i64() {
            Some(secs) => Ok(Some(secs)),
            None => n
                .as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.0e15)
                .map(|f| Some(f.floor() as i64))
                .ok_or_else(bad),
        },
        Some(_) => Err(bad()),
    }
}

/// `iss` must be exactly `expected` (a string), when an issuer is configured.
pub fn check_issuer(claims: &Claims, expected: Option<&str>) -> Result<(), AuthnError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    match claims.get("iss") {
        Some(Json::String(iss)) if iss == expected => Ok(()),
        _ => Err(AuthnError::WrongIssuer),
    }
}

/// `aud` (a string or a list of strings) must contain one of `accepted`, when an audience is
/// configured; otherwise `aud` is ignored.
pub fn check_audience(claims: &Claims, accepted: Option<&[String]>) -> Result<(), AuthnError> {
    let Some(accepted) = accepted else {
        return Ok(());
    };
    let is_accepted = |v: &Json| matches!(v, Json::String(s) if accepted.contains(s));
    let ok = match claims.get("aud") {
        Some(aud @ Json::String(_)) => is_accepted(aud),
        Some(Json::Array(items)) => {
            items.iter().all(Json::is_string) && items.iter().any(is_accepted)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(AuthnError::WrongAudience)
    }
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Claims that [`mint_dev_token`] sets from its own arguments.
const MINTED_CLAIMS: [&str; 5] = ["sub", "iat", "exp", "iss", "aud"];

/// Mints an HS256 token for development: `sub`, `iat`, `exp` = now + `ttl`, `iss` and `aud`
/// when given, then `claims`. The secret must have at least 32 bytes (what an Authenticator
/// accepts for HS256). `claims` may not name `sub`, `iat`, `exp`, `iss` or `aud`, nor repeat
/// a name; `ttl` must be at least one second.
pub fn mint_dev_token(
    secret: &[u8],
    sub: &str,
    claims: &[(String, Json)],
    ttl: Duration,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> Result<String, AuthnError> {
    if secret.len() < min_hmac_secret_bytes(Algorithm::HS256) {
        return Err(AuthnError::BadMintRequest(
            "the secret must have at least 32 bytes".into(),
        ));
    }
    let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    if ttl_secs < 1 {
        return Err(AuthnError::BadMintRequest(
            "the ttl must be at least 1s".into(),
        ));
    }
    let now = now_secs();
    let mut body = Claims::new();
    body.insert("sub".into(), Json::from(sub));
    body.insert("iat".into(), Json::from(now));
    body.insert("exp".into(), Json::from(now.saturating_add(ttl_secs)));
    if let Some(iss) = issuer {
        body.insert("iss".into(), Json::from(iss));
    }
    if let Some(aud) = audience {
        body.insert("aud".into(), Json::from(aud));
    }
    for (name, value) in claims {
        if MINTED_CLAIMS.contains(&name.as_str()) {
            return Err(AuthnError::BadMintRequest(format!(
                "claim {name} is set by its own option"
            )));
        }
        if body.insert(name.clone(), value.clone()).is_some() {
            return Err(AuthnError::BadMintRequest(format!(
                "claim {name} is given twice"
            )));
        }
    }
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &body,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|_| AuthnError::BadMintRequest("signing failed".into()))
}
