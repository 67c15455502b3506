//! The configuration file (DESIGN §4): raw YAML types parsed strictly, then validated into
//! [`Config`] with every problem reported at once.
//!
//! The types in this file are the validated form every other module reads.

pub(crate) mod keys;
mod raw;
mod validate;

pub use validate::parse_duration;

use crate::policy::evaluation::Evaluation;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Reads and validates the configuration file at `path`. Relative paths inside it resolve
/// against the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::single(ConfigProblem {
            path: String::new(),
            line: None,
            column: None,
            kind: ConfigErrorKind::Io,
            reason: format!("cannot read {}: {e}", path.display()),
        })
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Absolute, so that resolved paths do not depend on the working directory later.
    let base_dir = std::path::absolute(&dir).unwrap_or(dir);
    parse(&text, &base_dir)
}

/// Parses and validates configuration text; relative paths resolve against `base_dir`.
///
/// Syntax and shape errors (not YAML, unknown key, wrong type) stop at the first one and
/// carry its line and column. Otherwise every semantic problem is reported at once.
pub fn parse(yaml: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let raw = validate::raw_from_yaml(yaml)?;
    validate::validate(raw, base_dir)
}

/// Findings that do not make the configuration invalid but that an operator should see:
/// an unset HMAC secret variable (`vecgate serve` refuses to start without it), shadow mode,
/// collection rules that can never match.
pub fn warnings(config: &Config) -> Vec<String> {
    validate::warnings(config)
}

/// What kind of problem a [`ConfigProblem`] is, so callers and tests need not read messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigErrorKind {
    /// The configuration file could not be read.
    Io,
    /// Not valid YAML: bad syntax, a key repeated in one mapping, several documents, a bad
    /// merge key.
    Syntax,
    /// A key the configuration format does not define.
    UnknownField,
    /// A value of the wrong YAML type (a list where a string belongs, text for a number, …).
    InvalidType,
    /// A required key is absent.
    MissingField,
    /// A value of the right type that breaks a rule: a bad address, URL, duration, name or
    /// number.
    InvalidValue,
    /// Keys that contradict each other: several key sources, an algorithm that does not fit
    /// the key source, a stamp naming an attribute the principal never has, ….
    Conflict,
    /// A file or directory the configuration names is missing, of the wrong type or
    /// unreadable.
    FileAccess,
}

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted field path such as `auth.algorithms[1]`; empty when the problem has no single
    /// field (a YAML syntax error, an unreadable file).
    pub path: String,
    /// 1-based line, for syntax and shape errors.
    pub line: Option<usize>,
    /// 1-based column, for syntax and shape errors.
    pub column: Option<usize>,
    pub kind: ConfigErrorKind,
    pub reason: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}")?;
            if let Some(column) = self.column {
                write!(f, " column {column}")?;
            }
            f.write_str(": ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.reason)
    }
}

/// Every problem that made a configuration invalid; displayed one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_problems(&self.problems))]
pub struct ConfigErrors {
    pub problems: Vec<ConfigProblem>,
}

impl ConfigErrors {
    fn single(problem: ConfigProblem) -> Self {
        ConfigErrors {
            problems: vec![problem],
        }
    }

    /// The kinds of all problems, in report order.
    pub fn kinds(&self) -> Vec<ConfigErrorKind> {
        self.problems.iter().map(|p| p.kind).collect()
    }

    /// The field paths of all problems, in report order.
    pub fn paths(&self) -> Vec<&str> {
        self.problems.iter().map(|p| p.path.as_str()).collect()
    }
}

fn render_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Validated types
// ---------------------------------------------------------------------------------------------

/// A validated configuration. Relative paths are already resolved against the config file's
/// directory.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz`; `None` when not configured.
    pub admin_listen: Option<SocketAddr>,
    /// The gRPC listener (Qdrant's gRPC API, proxied to `upstream.grpc_url`); `None` when not
    /// configured. Inbound TLS (`tls`) applies to it as to `listen`.
    pub grpc_listen: Option<SocketAddr>,
    /// `POST /explain` on the admin listener (off unless set; never on the data port).
    pub admin_explain: bool,
    pub mode: Mode,
    pub upstream: UpstreamConfig,
    /// Inbound TLS; `None` serves plain HTTP.
    pub tls: Option<ListenerTls>,
    pub auth: AuthConfig,
    pub policies: PoliciesConfig,
    /// First match wins; validation guarantees at least one rule.
    pub collections: Vec<CollectionRule>,
    pub audit: AuditConfig,
    /// What a request gets when its audit line cannot be written.
    pub audit_on_failure: AuditOnFailure,
    /// `audit.flush_interval`: lines are gathered in a buffer and written at least this often
    /// (and whenever the buffer fills). `None`: each line is written as its request ends.
    pub audit_flush_interval: Option<Duration>,
    pub limits: Limits,
}

/// `audit.on_failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditOnFailure {
    /// The answer goes out; the failure is logged and counted (`vecgate_audit_failures_total`).
    #[default]
    Continue,
    /// The answer is replaced by 503: nothing is answered that was not audited.
    Deny,
}

/// `mode`: how decisions are applied (also the audit log's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Decisions are applied.
    Enforce,
    /// Decisions are computed, logged and counted; traffic passes unchanged.
    Shadow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Chroma,
    Qdrant,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Chroma => "chroma",
            BackendKind::Qdrant => "qdrant",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub kind: BackendKind,
    /// Scheme, host, port and an optional path prefix (no query, no fragment); `http` or
    /// `https`. Stored without a trailing slash.
    pub url: String,
    /// Deadline for the whole upstream exchange (default 30s).
    pub timeout: Duration,
    /// CA bundle for an `https` upstream.
    pub ca_file: Option<PathBuf>,
    /// Environment variable holding the database's own API key, sent upstream as `api-key`
    /// (the client's credentials are never forwarded).
    pub api_key_env: Option<String>,
    /// Qdrant's gRPC port (`http://host:6334`, or `https://` for TLS), where calls arriving
    /// on `grpc_listen` go; set exactly when `grpc_listen` is. Same timeout, CA and API key
    /// as `url`.
    pub grpc_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca_file: Option<PathBuf>,
}

/// JWT signature algorithms vecgate accepts (never `none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// HMAC algorithms take a shared secret; the others a public key.
    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }
}

/// Where verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A shared secret read from this environment variable (HS256/384/512).
    HmacSecretEnv(String),
    /// A PEM public key (RSA, EC or Ed25519) read from this file.
    PublicKeyFile(PathBuf),
    /// A JWKS document fetched over HTTPS.
    JwksUrl(String),
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Accepted `aud` values (any one must appear), when set.
    pub audience: Option<Vec<String>>,
    /// Non-empty; consistent with `key`.
    pub algorithms: Vec<Algorithm>,
    pub key: KeySource,
    /// CA bundle trusted for `jwks_url` (replacing the bundled Mozilla roots); only with a
    /// JWKS key source.
    pub jwks_ca_file: Option<PathBuf>,
    /// Clock skew allowed on `exp` and `nbf` (default 30s).
    pub leeway: Duration,
    pub principal: PrincipalMapping,
}

/// Claim paths (dotted) that make up the principal.
#[derive(Debug, Clone)]
pub struct PrincipalMapping {
    /// Claim holding the principal id (default `sub`); must be a string (or number).
    pub id: String,
    /// Claim holding the roles (default `roles`): a list of strings or a single string.
    pub roles: String,
    /// Attribute name → claim path. `None`: every claim becomes an attribute.
    pub attr: Option<BTreeMap<String, String>>,
}

/// `policies`: where policies come from and what an erroring condition does.
#[derive(Debug, Clone)]
pub struct PoliciesConfig {
    pub source: PolicySource,
    /// `policies.evaluation` (default `cerbos`). With a PDP as the source, the PDP's own
    /// `engine.strictEvaluation` decides and this is `cerbos` (the field is refused there).
    pub evaluation: Evaluation,
}

/// Exactly one of `policies.dir` and `policies.pdp`.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// Policy files, evaluated by vecgate's own engine.
    Dir {
        dir: PathBuf,
        /// Reload on change and on SIGHUP (default true).
        watch: bool,
    },
    /// An existing Cerbos PDP answers PlanResources and CheckResources.
    Pdp(PdpConfig),
}

/// `policies.pdp`: the PDP client's own settings.
pub use crate::policy::pdp::PdpConfig;

impl PoliciesConfig {
    /// The policy directory, when policies come from files.
    pub fn dir(&self) -> Option<&Path> {
        match &self.source {
            PolicySource::Dir { dir, .. } => Some(dir),
            PolicySource::Pdp(_) => None,
        }
    }

    /// Whether the policy directory is watched.
    pub fn watch(&self) -> bool {
        matches!(self.source, PolicySource::Dir { watch: true, .. })
    }

    /// The engine settings for vecgate's own planner and check.
    pub fn planner_options(&self) -> crate::policy::planner::PlannerOptions {
        crate::policy::planner::PlannerOptions {
            evaluation: self.evaluation,
            ..crate::policy::planner::PlannerOptions::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct CollectionRule {
    /// A collection name or a glob with `*`.
    pub name: String,
    pub resource_kind: String,
    /// Metadata key prefix for `R.attr.*`; the backend's default when not configured.
    pub attr_prefix: String,
    pub required_attrs: Vec<String>,
    /// Metadata key → principal path (`principal.id`, `principal.attr.<name>`), set on writes.
    pub stamp: BTreeMap<String, StampSource>,
    pub post_filter_only: bool,
}

/// A principal value stamped onto written records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StampSource {
    /// `principal.id`
    Id,
    /// `principal.attr.<name>`
    Attr(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditConfig {
    /// No audit log.
    Off,
    /// JSON lines on standard output (`path: "-"`).
    Stdout,
    /// JSON lines appended to this file.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted (default 32 MiB); larger → 413.
    pub max_body_bytes: usize,
    /// Largest translated filter, in leaf terms (default 500).
    pub max_filter_terms: usize,
    /// Time allowed for a client to send its request head (default 10s).
    pub header_timeout: Duration,
    /// Time allowed for a client to send its whole request body (default 30s); slower → 408.
    pub body_timeout: Duration,
    /// Concurrent client connections (default 1024).
    pub max_connections: usize,
    /// Requests in flight to the database at once (default 256); more wait for a free slot,
    /// within `upstream.timeout`.
    pub max_upstream_requests: usize,
    /// Threads serving the proxy port ([`crate::workers`]); `None`: one per core.
    pub workers: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 32 * 1024 * 1024,
            max_filter_terms: 500,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_upstream_requests: 256,
            workers: None,
        }
    }
}

impl Config {
    /// The first collection rule whose name pattern matches `collection`.
    pub fn collection_rule(&self, collection: &str) -> Option<&CollectionRule> {
        self.collection_rule_index(collection).map(|i| &self.collections[i])
    }

    /// The position of [`Config::collection_rule`]'s rule in `collections`.
    pub fn collection_rule_index(&self, collection: &str) -> Option<usize> {
        self.collections
            .iter()
            .position(|rule| crate::policy::planner::glob_match(&rule.name, collection))
    }
}
