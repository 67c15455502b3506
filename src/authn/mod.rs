//! Authentication (DESIGN §1 "authenticate"): find the caller's JWT in the request headers,
//! verify it, and map its claims to the [`Principal`] policies see.
//!
//! Rules vecgate applies:
//! - Token sources: `Authorization: Bearer <t>` (scheme case-insensitive), `X-Chroma-Token`
//!   (chromadb) and `api-key` (qdrant-client). Several sources with different tokens are
//!   refused; repeating the same token is fine. Empty values count as absent. An
//!   `Authorization` header with another scheme (e.g. `Basic`) is ignored, so with no other
//!   source the answer is [`AuthnError::MissingToken`] (a 401 asking for a bearer token).
//! - Only configured algorithms, read from the token header before anything is verified;
//!   `none` is never one. The key must belong to the algorithm's family, so a token naming
//!   HS256 is never checked against an RSA public key used as a secret.
//! - `exp` is required (a sidecar accepts no eternal tokens); `nbf` is checked when present;
//!   the leeway applies to both. `iss` must equal the configured issuer; with an audience
//!   configured, `aud` must contain one of its values; without, `aud` is ignored.
//! - Verified results are cached under the SHA-256 of the token (never the token), for no
//!   longer than the token's `exp` and [`VERIFIED_CACHE_TTL_CAP`], and only while the key set
//!   is the one they were verified under. Tokens never appear in errors or logs.

pub mod jwks;
pub(crate) mod jwt;
pub(crate) mod keys;
pub(crate) mod principal;

pub use jwt::mint_dev_token;
pub use keys::{KeyResolver, StaticKey};

use crate::config::keys as keys_check;
use crate::config::{Algorithm, AuthConfig, KeySource, PrincipalMapping};
use crate::plan::Value;
use crate::policy::cache::{caller_fingerprint, Fingerprint};
use crate::policy::planner::Principal;
use http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Most verified tokens kept at once.
pub const VERIFIED_CACHE_CAPACITY: u64 = 10_000;
/// Longest a verified token is trusted without re-verifying it, whatever its `exp`.
pub const VERIFIED_CACHE_TTL_CAP: Duration = Duration::from_secs(300);

/// Header chromadb's client sends its token in.
const CHROMA_TOKEN_HEADER: HeaderName = HeaderName::from_static("x-chroma-token");
/// Header qdrant-client sends `api_key=` in.
const QDRANT_API_KEY_HEADER: HeaderName = HeaderName::from_static("api-key");

/// Why a request is not authenticated. Messages never contain the token.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AuthnError {
    #[error("no bearer token in the request")]
    MissingToken,
    #[error("the request carries different tokens in different headers")]
    ConflictingTokens,
    #[error("the token is not a well-formed signed JWT")]
    Malformed,
    #[error("the token's signing algorithm is not allowed")]
    AlgorithmNotAllowed,
    #[error("the token's signature does not verify")]
    BadSignature,
    /// The key set (JWKS) has no key with the token's `kid` fitting its algorithm, even
    /// after a refresh (or a refresh was not allowed yet).
    #[error("the token's signing key is not in the key set")]
    UnknownKey,
    /// The key set could not be refreshed for too long; no token is accepted until it is.
    #[error("the signing keys are unavailable")]
    KeysUnavailable,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token lacks the claim {claim}")]
    MissingClaim { claim: String },
    #[error("the token's claim {claim} must be {expected}")]
    BadClaim {
        claim: String,
        expected: &'static str,
    },
    /// A startup problem: the key or the auth configuration cannot be used.
    #[error("authentication configuration: {0}")]
    Config(String),
    /// `mint_dev_token` was asked for a token it will not make.
    #[error("cannot mint a token: {0}")]
    BadMintRequest(String),
}

impl AuthnError {
    /// Every value [`AuthnError::reason`] returns, in its order: the metrics export each
    /// reason's `vecgate_auth_failures_total` series at 0 from start-up. A new reason goes here
    /// too (tests/metrics.rs compares this list with `reason()` over every variant).
    pub const REASONS: &'static [&'static str] = &[
        "missing_token",
        "conflicting_tokens",
        "malformed",
        "algorithm",
        "signature",
        "unknown_key",
        "keys_unavailable",
        "expired",
        "not_yet_valid",
        "issuer",
        "audience",
        "claims",
        "config",
    ];

    /// Bounded label for `vecgate_auth_failures_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthnError::MissingToken => "missing_token",
            AuthnError::ConflictingTokens => "conflicting_tokens",
            AuthnError::Malformed => "malformed",
            AuthnError::AlgorithmNotAllowed => "algorithm",
            AuthnError::BadSignature => "signature",
            AuthnError::UnknownKey => "unknown_key",
            AuthnError::KeysUnavailable => "keys_unavailable",
            AuthnError::Expired => "expired",
            AuthnError::NotYetValid => "not_yet_valid",
            AuthnError::WrongIssuer => "issuer",
            AuthnError::WrongAudience => "audience",
            AuthnError::MissingClaim { .. } | AuthnError::BadClaim { .. } => "claims",
            AuthnError::Config(_) | AuthnError::BadMintRequest(_) => "config",
        }
    }
}

/// Builds the key resolver for the configured key source, checking that the key fits every
/// configured algorithm ([`crate::config::keys`], the check `vecgate check --config` runs).
fn load_keys(cfg: &AuthConfig) -> Result<Box<dyn KeyResolver>, AuthnError> {
    if cfg.algorithms.is_empty() {
        return Err(AuthnError::Config("auth.algorithms is empty".into()));
    }
    match &cfg.key {
        KeySource::HmacSecretEnv(var) => {
            let secret = std::env::var(var)
                .map_err(|_| AuthnError::Config(format!("environment variable {var} is not set (or not UTF-8)")))?;
            let key = keys_check::hmac_key(secret.as_bytes(), &cfg.algorithms)
                .map_err(|problem| AuthnError::Config(format!("{var}: {problem}")))?;
            Ok(Box::new(StaticKey::new(key)))
        }
        KeySource::PublicKeyFile(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| AuthnError::Config(format!("cannot read public key {}: {e}", path.display())))?;
            let key = keys_check::public_key_from_pem(&pem, &cfg.algorithms)
                .map_err(|problem| AuthnError::Config(format!("{}: {problem}", path.display())))?;
            Ok(Box::new(StaticKey::new(key)))
        }
        KeySource::JwksUrl(_) => Ok(Box::new(jwks::JwksResolver::from_auth_config(cfg)?)),
    }
}

/// A verified caller. Immutable once made: the verified-token cache shares one behind an
/// `Arc` with every request that presents the same token, and [`Authenticated::plan_fingerprint`]
/// is computed once, when it is made, from the principal and the claims it keeps.
#[derive(Clone, Debug)]
pub struct Authenticated {
    principal: Principal,
    claims: BTreeMap<String, Value>,
    expires_at: Option<i64>,
    plan_fingerprint: Fingerprint,
}

impl Authenticated {
    pub fn new(principal: Principal, claims: BTreeMap<String, Value>, expires_at: Option<i64>) -> Authenticated {
        let plan_fingerprint = caller_fingerprint(&principal, &claims);
        Authenticated { principal, claims, expires_at, plan_fingerprint }
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// All verified claims, for policies' `request.auxData.jwt`.
    pub fn claims(&self) -> &BTreeMap<String, Value> {
        &self.claims
    }

    /// `exp`, seconds since the epoch, if present (vecgate requires it, so always set).
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    /// The plan cache's key for this caller ([`caller_fingerprint`]): everything about it a
    /// plan can depend on.
    pub fn plan_fingerprint(&self) -> Fingerprint {
        self.plan_fingerprint
    }

    /// The principal and the claims, for callers that keep them (the explain paths).
    pub fn into_parts(self) -> (Principal, BTreeMap<String, Value>) {
        (self.principal, self.claims)
    }
}

/// Verifies tokens against the configured key and maps them to principals.
pub struct Authenticator {
    algorithms: Vec<Algorithm>,
    keys: Box<dyn KeyResolver>,
    leeway_secs: i64,
    issuer: Option<String>,
    audience: Option<Vec<String>>,
    mapping: PrincipalMapping,
    /// SHA-256 of a token → what it verified to.
    verified: Cache<[u8; 32], Arc<Verified>>,
}

/// A cached verification, valid while the key set is the one it was made under.
struct Verified {
    authenticated: Arc<Authenticated>,
    key_set_version: u64,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.algorithms)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Reads the secret from its environment variable or the PEM public key from its file, or
    /// fetches the JWKS key set ([`jwks::JwksResolver`], kept fresh in the background). A key
    /// that does not fit a configured algorithm, or a key set that cannot be fetched now or
    /// holds no usable key, is [`AuthnError::Config`].
    pub fn from_config(cfg: &AuthConfig) -> Result<Authenticator, AuthnError> {
        let keys = load_keys(cfg)?;
        Authenticator::with_keys(cfg, keys)
    }

    /// Like [`Authenticator::from_config`] with keys from elsewhere (a JWKS key set); `cfg.key`
    /// is not read.
    pub fn with_keys(
        cfg: &AuthConfig,
        keys: Box<dyn KeyResolver>,
    ) -> Result<Authenticator, AuthnError> {
        if cfg.algorithms.is_empty() {
            return Err(AuthnError::Config("auth.algorithms is empty".into()));
        }
        let verified = Cache::builder()
            .max_capacity(VERIFIED_CACHE_CAPACITY)
            .expire_after(UntilTokenExpires)
            .build();
        Ok(Authenticator {
            algorithms: cfg.algorithms.clone(),
            keys,
            leeway_secs: i64::try_from(cfg.leeway.as_secs()).unwrap_or(i64::MAX),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            mapping: cfg.principal.clone(),
            verified,
        })
    }

    /// Finds the token in the headers and verifies it.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Authenticated>, AuthnError> {
        let token = token_from_headers(headers)?;
        self.verify_token(token)
    }

    /// Verifies a bare token (surrounding whitespace ignored). A token verified before is
    /// answered from the cache: the same shared [`Authenticated`]. May wait for a JWKS key
    /// set to be fetched (a `kid` not seen yet): not for a proxy worker's thread
    /// ([`crate::workers`]), which calls [`Authenticator::verify_token_now`] first.
    pub fn verify_token(&self, token: &str) -> Result<Arc<Authenticated>, AuthnError> {
        self.verify(token, KeyWait::Allowed)?.ok_or(AuthnError::KeysUnavailable)
    }

    /// [`Authenticator::verify_token`] without waiting: `Ok(None)` when the answer needs a key
    /// set fetched first; then `verify_token` gives it, off the async runtime's thread.
    pub fn verify_token_now(&self, token: &str) -> Result<Option<Arc<Authenticated>>, AuthnError> {
        self.verify(token, KeyWait::Never)
    }

    fn verify(&self, token: &str, wait: KeyWait) -> Result<Option<Arc<Authenticated>>, AuthnError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthnError::MissingToken);
        }
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Err(AuthnError::Malformed);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = jwt::now_secs();
        // Read before verifying: keys changing meanwhile leave the new entry outdated.
        let key_set_version = self.keys.key_set_version();
        if let Some(hit) = self.verified.get(&digest) {
            // Belt and braces: the entry's lifetime already ends before `exp`.
            let current = hit.key_set_version == key_set_version;
            if current && hit.authenticated.expires_at.is_some_and(|exp| exp > now) {
                return Ok(Some(Arc::clone(&hit.authenticated)));
            }
            self.verified.invalidate(&digest);
        }
        let Some(authenticated) = self.verify_uncached(token, now, wait)? else {
            return Ok(None);
        };
        let authenticated = Arc::new(authenticated);
        if authenticated.expires_at.is_some_and(|exp| exp > now) {
            let entry = Verified { authenticated: Arc::clone(&authenticated), key_set_version };
            self.verified.insert(digest, Arc::new(entry));
        }
        Ok(Some(authenticated))
    }

    /// `Ok(None)`: the key must be fetched first and `wait` forbids waiting for it.
    fn verify_uncached(&self, token: &str, now: i64, wait: KeyWait) -> Result<Option<Authenticated>, AuthnError> {
        let header = jwt::read_header(token, &self.algorithms)?;
        let key = match wait {
            KeyWait::Allowed => self.keys.key_for(header.kid.as_deref(), header.alg)?,
            KeyWait::Never => match self.keys.key_now(header.kid.as_deref(), header.alg) {
                Some(key) => key?,
                None => return Ok(None),
            },
        };
        if key.family() != jsonwebtoken::Algorithm::from(header.alg).family() {
            return Err(AuthnError::AlgorithmNotAllowed);
        }
        let claims = jwt::verify_signed_claims(token, &key, header.alg)?;
        jwt::check_times(&claims, now, self.leeway_secs)?;
        jwt::check_issuer(&claims, self.issuer.as_deref())?;
        jwt::check_audience(&claims, self.audience.as_deref())?;
        let principal = principal::principal_from_claims(&claims, &self.mapping)?;
        let expires_at = jwt::numeric_date(&claims, "exp")?;
        Ok(Some(Authenticated::new(principal, principal::claims_as_values(&claims), expires_at)))
    }
}

/// May a key lookup wait for a key set to be fetched?
#[derive(Clone, Copy)]
enum KeyWait {
    Allowed,
    Never,
}

/// Cache entries live until their token's `exp`, and at most [`VERIFIED_CACHE_TTL_CAP`].
struct UntilTokenExpires;

impl moka::Expiry<[u8; 32], Arc<Verified>> for UntilTokenExpires {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Verified>,
        _created_at: Instant,
    ) -> Option<Duration> {
        // Sub-second precision, so the entry never outlives `exp`.
        let exp = value.authenticated.expires_at.and_then(|exp| u64::try_from(exp).ok());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok();
        let left = match (exp, now) {
            (Some(exp), Some(now)) => Duration::from_secs(exp).saturating_sub(now),
            _ => Duration::ZERO,
        };
        Some(left.min(VERIFIED_CACHE_TTL_CAP))
    }
}

/// The caller's token, from `Authorization: Bearer`, `X-Chroma-Token` or `api-key`.
pub fn token_from_headers(headers: &HeaderMap) -> Result<&str, AuthnError> {
    let mut found: Option<&str> = None;
    let bearer = headers.get_all(AUTHORIZATION).iter().map(|value| {
        let text = value.to_str().map_err(|_| AuthnError::Malformed)?;
        Ok(bearer_token(text))
    });
    let raw = [CHROMA_TOKEN_HEADER, QDRANT_API_KEY_HEADER]
        .into_iter()
        .flat_map(|name| headers.get_all(name).iter())
        .map(|value| {
            let text = value.to_str().map_err(|_| AuthnError::Malformed)?;
            Ok(Some(text.trim()).filter(|t| !t.is_empty()))
        });
    for candidate in bearer.chain(raw) {
        let Some(token) = candidate? else { continue };
        match found {
            None => found = Some(token),
            Some(previous) if previous == token => {}
            Some(_) => return Err(AuthnError::ConflictingTokens),
        }
    }
    found.ok_or(AuthnError::MissingToken)
}

/// The token of an `Authorization: Bearer <token>` value; `None` for other schemes or an
/// empty token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(rest.trim()).filter(|t| !t.is_empty())
}
