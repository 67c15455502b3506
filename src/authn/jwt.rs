//! JWT verification: reading the header (allowed `alg`, no
//! `crit`), the signature (jsonwebtoken's crypto), then `exp`/`nbf`/`iss`/`aud` checked here
//! with exact types, and minting development tokens.

use super::AuthnError;
use crate::config::keys::min_hmac_secret_bytes;
use crate::config::Algorithm;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use serde_json::{Map, Value as Json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest token accepted, in bytes; longer ones are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The decoded claims of a token.
pub type Claims = Map<String, Json>;

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
        jsonwebtoken::crypto::verify(signature, message.as_bytes(), key, jsonwebtoken::Algorithm::from(alg))
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
