//! Verification keys from a JWKS document (RFC 7517) fetched over HTTPS (`auth.jwks_url`).
//!
//! - [`JwksResolver::start`] fetches the set once and fails unless that works and the set
//!   holds at least one key usable with the configured algorithms.
//! - A background thread (its own single-threaded Tokio runtime, so the resolver works inside
//!   or outside any runtime) fetches the set every [`REFRESH_INTERVAL`], or
//!   [`RETRY_AFTER_FAILURE`] after a failed fetch.
//! - A token naming a `kid` the cached set lacks triggers a fetch, at most once per
//!   [`UNKNOWN_KID_MIN_INTERVAL`]; the verifying request waits for it (bounded by the fetch
//!   timeout). Concurrent requests share one fetch.
//! - A failed fetch keeps the keys of the last successful one, for at most [`MAX_KEY_AGE`]
//!   after it; then every lookup fails closed ([`AuthnError::KeysUnavailable`], a 401) until a
//!   fetch succeeds. A successful fetch replaces the set, so a removed key stops working.
//! - Only keys fit for a configured algorithm are kept: `kty`/`crv` must match it and a key's
//!   `alg`, when present, must be that algorithm; `use` other than `sig`, `key_ops` without
//!   `verify`, symmetric keys (`oct`), RSA moduli under [`MIN_RSA_BITS`] and malformed keys are
//!   ignored.
//!
//! Trust: `auth.jwks_ca_file` replaces the bundled Mozilla roots when set ([`crate::tls`]).
//! Redirects are not followed; the document is limited to [`MAX_JWKS_BYTES`].

use super::keys::KeyResolver;
use super::AuthnError;
use crate::config::{Algorithm, AuthConfig, KeySource};
use crate::tls::{https_connector, HttpVersions, TlsError};
use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value as Json};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often the key set is fetched while fetches succeed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// How soon a failed fetch is retried.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// Fewest seconds between two fetches caused by unknown `kid`s.
pub const UNKNOWN_KID_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// How long keys stay usable after the last successful fetch.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// Deadline for one fetch (connect, TLS, request, whole body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Why the key set could not be fetched or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("jwks_url `{0}` is not a usable https URL")]
    Url(String),
    #[error("TLS for jwks_url: {0}")]
    Tls(String),
    #[error("fetching the key set: {0}")]
    Fetch(String),
    #[error("fetching the key set: the server answered {0}")]
    Status(u16),
    #[error("fetching the key set: no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("the key set document is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("not a JWKS document: {0}")]
    Document(String),
    #[error("the key set holds no key usable with the configured algorithms ({0})")]
    NoUsableKey(String),
    #[error("the key set fetcher has stopped")]
    Stopped,
}

impl From<TlsError> for JwksError {
    fn from(e: TlsError) -> Self {
        JwksError::Tls(e.to_string())
    }
}

/// Timings of a [`JwksResolver`]; [`Default`] gives the documented constants.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    pub refresh_interval: Duration,
    pub retry_after_failure: Duration,
    pub unknown_kid_min_interval: Duration,
    pub max_key_age: Duration,
    pub fetch_timeout: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        JwksSettings {
            refresh_interval: REFRESH_INTERVAL,
            retry_after_failure: RETRY_AFTER_FAILURE,
            unknown_kid_min_interval: UNKNOWN_KID_MIN_INTERVAL,
            max_key_age: MAX_KEY_AGE,
            fetch_timeout: FETCH_TIMEOUT,
        }
    }
}

/// The time the resolver judges key age and the unknown-`kid` rate limit by. Tests inject a
/// clock they move by hand.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// [`Instant::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A key of the set, with the configured algorithms it may verify.
struct UsableKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: Arc<DecodingKey>,
}

struct KeySet {
    keys: Vec<UsableKey>,
    /// When the fetch that produced these keys finished (by the resolver's clock).
    fetched_at: Instant,
}

enum Lookup {
    Found(Arc<DecodingKey>),
    Missing,
    Stale,
}

struct FetchState {
    /// Fetches finished so far, successful or not.
    completed: u64,
    /// Outcome of the last fetch: the number of usable keys, or why it failed.
    last_outcome: Result<usize, JwksError>,
    /// When an unknown `kid` last caused a fetch.
    last_demand: Option<Instant>,
    /// `completed` when the pending unknown-`kid` fetch was asked for.
    demand_pending_since: Option<u64>,
}

struct Shared {
    url: String,
    algorithms: Vec<Algorithm>,
    settings: JwksSettings,
    clock: Arc<dyn Clock>,
    keys: ArcSwap<KeySet>,
    /// Successful fetches so far; see [`KeyResolver::key_set_version`].
    sets_fetched: AtomicU64,
    fetches: Mutex<FetchState>,
    fetched: Condvar,
}

/// A [`KeyResolver`] over a JWKS document; see the module documentation. Dropping it stops
/// the background fetcher.
pub struct JwksResolver {
    shared: Arc<Shared>,
    requests: mpsc::UnboundedSender<()>,
}

impl std::fmt::Debug for JwksResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksResolver")
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

type FetchClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

impl JwksResolver {
    /// The resolver for `auth.jwks_url` with the default timings; any failure of the first
    /// fetch is [`AuthnError::Config`].
    pub fn from_auth_config(cfg: &AuthConfig) -> Result<JwksResolver, AuthnError> {
        let KeySource::JwksUrl(url) = &cfg.key else {
            return Err(AuthnError::Config("the key source is not jwks_url".into()));
        };
        JwksResolver::start(
            url,
            &cfg.algorithms,
            cfg.jwks_ca_file.as_deref(),
            JwksSettings::default(),
            Arc::new(SystemClock),
        )
        .map_err(|e| AuthnError::Config(format!("jwks_url {url}: {e}")))
    }

    /// Starts the fetcher and waits for the first fetch, which must succeed with at least one
    /// usable key. `ca_file` replaces the bundled roots when given.
    pub fn start(
        url: &str,
        algorithms: &[Algorithm],
        ca_file: Option<&Path>,
        settings: JwksSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<JwksResolver, JwksError> {
        let uri: Uri = url.parse().map_err(|_| JwksError::Url(url.to_string()))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(JwksError::Url(url.to_string()));
        }
        let connector =
            https_connector(ca_file, false, HttpVersions::Http1, settings.fetch_timeout)?;
        let now = clock.now();
        let shared = Arc::new(Shared {
            url: url.to_string(),
            algorithms: algorithms.to_vec(),
            settings,
            clock,
            keys: ArcSwap::from_pointee(KeySet {
                keys: Vec::new(),
                fetched_at: now,
            }),
            sets_fetched: AtomicU64::new(0),
            fetches: Mutex::new(FetchState {
                completed: 0,
                last_outcome: Err(JwksError::Stopped),
                last_demand: None,
                demand_pending_since: None,
            }),
            fetched: Condvar::new(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| JwksError::Fetch(format!("cannot start the fetcher runtime: {e}")))?;
        let (requests, inbox) = mpsc::unbounded_channel();
        let fetcher = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("vecgate-jwks".into())
            .spawn(move || runtime.block_on(run_fetcher(fetcher, uri, connector, inbox)))
            .map_err(|e| JwksError::Fetch(format!("cannot start the fetcher thread: {e}")))?;
        let resolver = JwksResolver { shared, requests };
        match resolver.refresh_now()? {
            0 => Err(JwksError::NoUsableKey(
                algorithms
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
            _ => Ok(resolver),
        }
    }

    /// Fetches the set now and waits for the outcome: the number of usable keys, or why the
    /// fetch failed (the previous keys are then kept).
    pub fn refresh_now(&self) -> Result<usize, JwksError> {
        let seen = self.shared.lock().completed;
        self.requests.send(()).map_err(|_| JwksError::Stopped)?;
        self.shared
            .wait_for_fetch_after(seen)
            .unwrap_or(Err(JwksError::Timeout(self.shared.settings.fetch_timeout)))
    }

    /// The `kid`s of the usable keys held now (keys without one are left out), sorted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self
            .shared
            .keys
            .load()
            .keys
            .iter()
            .filter_map(|k| k.kid.clone())
            .collect();
        kids.sort();
        kids
    }

    /// Would [`JwksResolver::refresh_on_demand`] ask for a fetch or wait for one now?
    fn would_refresh(&self, now: Instant) -> bool {
        let state = self.shared.lock();
        state.demand_pending_since.is_some() || self.demand_allowed(&state, now)
    }

    /// Outside the rate limit on fetches for unknown `kid`s (`unknown_kid_min_interval`)?
    fn demand_allowed(&self, state: &FetchState, now: Instant) -> bool {
        state.last_demand.is_none_or(|last| {
            now.saturating_duration_since(last) >= self.shared.settings.unknown_kid_min_interval
        })
    }

    /// Asks for a fetch because a token named an unknown `kid` (or the keys are too old),
    /// unless one was asked for within the rate limit. Returns whether a fetch finished
    /// meanwhile, so looking again may help.
    fn refresh_on_demand(&self, now: Instant) -> bool {
        let mut state = self.shared.lock();
        if let Some(seen) = state.demand_pending_since {
            drop(state);
            return self.shared.wait_for_fetch_after(seen).is_some();
        }
        if !self.demand_allowed(&state, now) {
            return false;
        }
        let seen = state.completed;
        state.last_demand = Some(now);
        state.demand_pending_since = Some(seen);
        drop(state);
        if self.requests.send(()).is_err() {
            self.shared.lock().demand_pending_since = None;
            return false;
        }
        self.shared.wait_for_fetch_after(seen).is_some()
    }
}

impl KeyResolver for JwksResolver {
    fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<DecodingKey>, AuthnError> {
        let now = self.shared.clock.now();
        match self.shared.lookup(kid, alg, now) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Missing | Lookup::Stale => {}
        }
        if self.refresh_on_demand(now) {
            // The fetch took time; judge the new keys' age by the clock now.
            let now = self.shared.clock.now();
            if let Lookup::Found(key) = self.shared.lookup(kid, alg, now) {
                return Ok(key);
            }
        }
        match self.shared.lookup(kid, alg, self.shared.clock.now()) {
            Lookup::Found(key) => Ok(key),
            Lookup::Missing => Err(AuthnError::UnknownKey),
            Lookup::Stale => Err(AuthnError::KeysUnavailable),
        }
    }

    /// The key at hand; `None` when [`KeyResolver::key_for`] would ask for a fetch or wait
    /// for one (an unknown `kid` or keys too old, outside the rate limit).
    fn key_now(&self, kid: Option<&str>, alg: Algorithm) -> Option<Result<Arc<DecodingKey>, AuthnError>> {
        let now = self.shared.clock.now();
        match self.shared.lookup(kid, alg, now) {
            Lookup::Found(key) => Some(Ok(key)),
            _ if self.would_refresh(now) => None,
            Lookup::Missing => Some(Err(AuthnError::UnknownKey)),
            Lookup::Stale => Some(Err(AuthnError::KeysUnavailable)),
        }
    }

    /// Every successful fetch starts a new version, so a key removed from (or replaced in)
    /// the set stops vouching for cached tokens at once; stale keys are a version of their own.
    fn key_set_version(&self) -> u64 {
        let fetched = self.shared.sets_fetched.load(Ordering::SeqCst);
        let set = self.shared.keys.load();
        let stale = self.shared.clock.now().saturating_duration_since(set.fetched_at)
            > self.shared.settings.max_key_age;
        fetched.wrapping_mul(2) + u64::from(stale)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FetchState> {
        self.fetches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lookup(&self, kid: Option<&str>, alg: Algorithm, now: Instant) -> Lookup {
        let set = self.keys.load();
        if now.saturating_duration_since(set.fetched_at) > self.settings.max_key_age {
            return Lookup::Stale;
        }
        let mut fitting = set.keys.iter().filter(|k| k.algorithms.contains(&alg));
        match kid {
            Some(kid) => fitting
                .find(|k| k.kid.as_deref() == Some(kid))
                .map_or(Lookup::Missing, |k| Lookup::Found(Arc::clone(&k.key))),
            // Without a `kid`, only an unambiguous key will do.
            None => match (fitting.next(), fitting.next()) {
                (Some(only), None) => Lookup::Found(Arc::clone(&only.key)),
                _ => Lookup::Missing,
            },
        }
    }

    /// Records a finished fetch and wakes everyone waiting for one.
    fn record(&self, outcome: Result<Vec<UsableKey>, JwksError>) {
        let summary = match outcome {
            Ok(keys) => {
                let count = keys.len();
                let kids: Vec<&str> = keys.iter().filter_map(|k| k.kid.as_deref()).collect();
                tracing::info!(url = %self.url, keys = count, kids = ?kids, "JWKS fetched");
                self.keys.store(Arc::new(KeySet {
                    keys,
                    fetched_at: self.clock.now(),
                }));
                self.sets_fetched.fetch_add(1, Ordering::SeqCst);
                Ok(count)
            }
            Err(e) => {
                tracing::warn!(url = %self.url, "JWKS fetch failed; keeping the previous keys: {e}");
                Err(e)
            }
        };
        let mut state = self.lock();
        state.completed += 1;
        state.last_outcome = summary;
        state.demand_pending_since = None;
        drop(state);
        self.fetched.notify_all();
    }

    /// Waits until a fetch finishes after `seen` fetches had; its outcome, or `None` if none
    /// finished in time.
    fn wait_for_fetch_after(&self, seen: u64) -> Option<Result<usize, JwksError>> {
        // A queued fetch may wait behind a running one.
        let deadline = Instant::now() + self.settings.fetch_timeout * 2 + Duration::from_secs(1);
        outside_the_runtime(|| {
            let mut state = self.lock();
            while state.completed <= seen {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                state = self
                    .fetched
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            Some(state.last_outcome.clone())
        })
    }
}

/// Runs a blocking wait; on a multi-threaded Tokio runtime the worker's other tasks move to
/// another thread meanwhile.
fn outside_the_runtime<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

/// The fetcher thread: a fetch on every request and on schedule, until the resolver is gone.
async fn run_fetcher(
    shared: Arc<Shared>,
    uri: Uri,
    connector: HttpsConnector<HttpConnector>,
    mut inbox: mpsc::UnboundedReceiver<()>,
) {
    let client: FetchClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    let mut last_ok = true;
    loop {
        let wait = if last_ok {
            shared.settings.refresh_interval
        } else {
            shared.settings.retry_after_failure
        };
        tokio::select! {
            request = inbox.recv() => if request.is_none() { return },
            _ = tokio::time::sleep(wait) => {}
        }
        // Requests queued meanwhile are answered by this fetch.
        while inbox.try_recv().is_ok() {}
        let outcome = fetch_document(&client, &uri, shared.settings.fetch_timeout)
            .await
            .and_then(|document| usable_keys(&document, &shared.algorithms));
        last_ok = outcome.is_ok();
        shared.record(outcome);
    }
}

async fn fetch_document(
    client: &FetchClient,
    uri: &Uri,
    timeout: Duration,
) -> Result<Bytes, JwksError> {
    let request = Request::get(uri.clone())
        .header(
            http::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .body(Empty::new())
        .map_err(|e| JwksError::Fetch(e.to_string()))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| JwksError::Fetch(error_chain(&e)))?;
        if response.status() != StatusCode::OK {
            return Err(JwksError::Status(response.status().as_u16()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    JwksError::TooLarge
                } else {
                    JwksError::Fetch(format!("reading the answer: {e}"))
                }
            })?;
        Ok(body.to_bytes())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(JwksError::Timeout(timeout)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The keys of a JWKS document usable with `algorithms`; unusable keys are skipped (logged
/// at debug level). A document that is not `{"keys": [...]}` is an error.
fn usable_keys(document: &[u8], algorithms: &[Algorithm]) -> Result<Vec<UsableKey>, JwksError> {
    let parsed: Json =
        serde_json::from_slice(document).map_err(|e| JwksError::Document(e.to_string()))?;
    let Some(Json::Array(entries)) = parsed.get("keys") else {
        return Err(JwksError::Document("no `keys` array".into()));
    };
    let mut keys = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let Json::Object(jwk) = entry else {
            tracing::debug!(index, "JWKS: ignoring a key that is not an object");
            continue;
        };
        match usable_key(jwk, algorithms) {
            Ok(key) => keys.push(key),
            Err(reason) => {
                tracing::debug!(index, kid = ?jwk.get("kid"), "JWKS: ignoring a key: {reason}")
            }
        }
    }
    Ok(keys)
}

fn text_member<'a>(jwk: &'a Map<String, Json>, name: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{name}` is not a string")),
    }
}

fn bytes_member(jwk: &Map<String, Json>, name: &str) -> Result<Vec<u8>, String> {
    let text = text_member(jwk, name)?.ok_or_else(|| format!("no `{name}`"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("`{name}` is not unpadded base64url"))
}

fn usable_key(jwk: &Map<String, Json>, configured: &[Algorithm]) -> Result<UsableKey, String> {
    if let Some(usage) = text_member(jwk, "use")? {
        if usage != "sig" {
            return Err(format!("use `{usage}`"));
        }
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = matches!(ops, Json::Array(items) if items.iter().any(|op| op == "verify"));
        if !verifies {
            return Err("key_ops without verify".into());
        }
    }
    let kid = text_member(jwk, "kid")?.map(str::to_string);
    let declared = match text_member(jwk, "alg")? {
        None => None,
        Some(name) => Some(Algorithm::from_name(name).ok_or_else(|| format!("alg `{name}`"))?),
    };
    let kty = text_member(jwk, "kty")?.ok_or("no kty")?;
    let crv = text_member(jwk, "crv")?;
    let (key, family): (DecodingKey, &[Algorithm]) = match (kty, crv) {
        ("RSA", _) => {
            let n = bytes_member(jwk, "n")?;
            let e = bytes_member(jwk, "e")?;
            let bits = modulus_bits(&n);
            if bits < MIN_RSA_BITS {
                return Err(format!("RSA modulus of {bits} bits"));
            }
            (
                DecodingKey::from_rsa_raw_components(&n, &e),
                &[
                    Algorithm::RS256,
                    Algorithm::RS384,
                    Algorithm::RS512,
                    Algorithm::PS256,
                    Algorithm::PS384,
                    Algorithm::PS512,
                ],
            )
        }
        ("EC", Some(curve @ ("P-256" | "P-384"))) => {
            let (size, alg) = if curve == "P-256" {
                (32, Algorithm::ES256)
            } else {
                (48, Algorithm::ES384)
            };
            let x = bytes_member(jwk, "x")?;
            let y = bytes_member(jwk, "y")?;
            if x.len() != size || y.len() != size {
                return Err(format!("{curve} coordinates of the wrong size"));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let family: &[Algorithm] = if alg == Algorithm::ES256 {
                &[Algorithm::ES256]
            } else {
                &[Algorithm::ES384]
            };
            (DecodingKey::from_ec_der(&point), family)
        }
        ("OKP", Some("Ed25519")) => {
            let x = bytes_member(jwk, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 key of the wrong size".into());
            }
            (DecodingKey::from_ed_der(&x), &[Algorithm::EdDSA])
        }
        (kty, crv) => return Err(format!("kty `{kty}` crv {crv:?}")),
    };
    let algorithms: Vec<Algorithm> = configured
        .iter()
        .copied()
        .filter(|a| family.contains(a) && declared.is_none_or(|d| d == *a))
        .collect();
    let Some(first) = algorithms.first() else {
        return Err("fits no configured algorithm".into());
    };
    // Building a verifier parses the key; an empty signature never verifies, so Ok(false) is
    // the expected answer and an error means the key is unusable.
    if jsonwebtoken::crypto::verify("", b"", &key, jsonwebtoken::Algorithm::from(*first)).is_err() {
        return Err("the key does not parse".into());
    }
    Ok(UsableKey {
        kid,
        algorithms,
        key: Arc::new(key),
    })
}

/// Bits of a big-endian unsigned integer, leading zeros ignored.
fn modulus_bits(n: &[u8]) -> usize {
    match n.iter().position(|b| *b != 0) {
        None => 0,
        Some(first) => (n.len() - first) * 8 - n[first].leading_zeros() as usize,
    }
}
