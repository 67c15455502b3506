//! Raw configuration → validated [`Config`]. Every check records its problem and carries on,
//! so one run reports everything that is wrong with the file.

use super::raw::{
    RawAudit, RawAuth, RawCollectionRule, RawConfig, RawLimits, RawListenerTls, RawPdp,
    RawPolicies, RawPrincipal, RawUpstream,
};
use super::{
    Algorithm, AuditConfig, AuditOnFailure, AuthConfig, BackendKind, CollectionRule, Config, ConfigErrorKind,
    ConfigErrors, ConfigProblem, KeySource, Limits, ListenerTls, Mode, PdpConfig, PoliciesConfig,
    PolicySource, PrincipalMapping, StampSource, UpstreamConfig,
};
use crate::policy::evaluation::Evaluation;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_PDP_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_PLAN_CACHE_TTL: Duration = Duration::from_secs(10);
const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
const DEFAULT_RESOURCE_KIND: &str = "document";
/// `audit.path` value that turns the audit log off.
const AUDIT_OFF: &str = "off";
/// `audit.path` value for standard output.
const AUDIT_STDOUT: &str = "-";

// ---------------------------------------------------------------------------------------------
// YAML → raw types
// ---------------------------------------------------------------------------------------------

/// Parses the text into [`RawConfig`]. Merge keys (`<<`) are applied first; the parser itself
/// resolves anchors and aliases.
pub(super) fn raw_from_yaml(yaml: &str) -> Result<RawConfig, ConfigErrors> {
    // Parsing into a generic value first catches syntax errors and repeated keys in any
    // mapping (including free-form ones such as `stamp`), with their position.
    let mut value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(yaml).map_err(|e| yaml_error(&e, ConfigErrorKind::Syntax))?;
    if value.is_null() {
        return Ok(RawConfig::default());
    }
    if !has_merge_key(&value) {
        // Straight from the text, so shape errors keep their line and column.
        return serde_yaml_ng::from_str(yaml).map_err(|e| yaml_error(&e, ConfigErrorKind::Syntax));
    }
    // Merged values have no positions left; shape errors are then reported without them.
    value
        .apply_merge()
        .map_err(|e| yaml_error(&e, ConfigErrorKind::Syntax))?;
    RawConfig::deserialize(value).map_err(|e| yaml_error(&e, ConfigErrorKind::Syntax))
}

fn has_merge_key(value: &serde_yaml_ng::Value) -> bool {
    match value {
        serde_yaml_ng::Value::Mapping(m) => m
            .iter()
            .any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        serde_yaml_ng::Value::Sequence(s) => s.iter().any(has_merge_key),
        serde_yaml_ng::Value::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

/// How serde's standard shape-error messages begin; each maps to a problem kind.
const SHAPE_ERRORS: [(&str, ConfigErrorKind); 7] = [
    ("unknown field", ConfigErrorKind::UnknownField),
    ("missing field", ConfigErrorKind::MissingField),
    ("invalid type", ConfigErrorKind::InvalidType),
    ("invalid value", ConfigErrorKind::InvalidType),
    ("invalid length", ConfigErrorKind::InvalidType),
    ("unknown variant", ConfigErrorKind::InvalidValue),
    ("duplicate field", ConfigErrorKind::Syntax),
];

/// Turns a serde_yaml_ng error into a problem. Its message reads `path: reason at line L
/// column C` (the path is left out at the top level); the path and position go to their own
/// fields, and an unknown field's name is appended to the path.
fn yaml_error(e: &serde_yaml_ng::Error, default_kind: ConfigErrorKind) -> ConfigErrors {
    let location = e.location();
    let mut message = e.to_string();
    if location.is_some() {
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
    }
    let opener_at = |text: &str| {
        SHAPE_ERRORS
            .iter()
            .find(|(o, _)| text.starts_with(o))
            .map(|(_, k)| *k)
    };
    let (mut path, reason, kind) = match opener_at(&message) {
        Some(kind) => (String::new(), message.clone(), kind),
        None => message
            .match_indices(": ")
            .find_map(|(i, _)| {
                let rest = &message[i + 2..];
                opener_at(rest).map(|kind| (message[..i].to_string(), rest.to_string(), kind))
            })
            .unwrap_or((String::new(), message.clone(), default_kind)),
    };
    if kind == ConfigErrorKind::UnknownField {
        if let Some(field) = reason.split('`').nth(1) {
            path = if path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
        }
    }
    ConfigErrors::single(ConfigProblem {
        path,
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        kind,
        reason,
    })
}

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

/// Parses a duration written as one or more `<integer><unit>` groups, units `ms`, `s`, `m`,
/// `h` (`"30s"`, `"500ms"`, `"1h30m"`). A bare number is refused: its unit would be a guess.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{text}` has no unit; write for example \"{text}s\" or \"{text}ms\""
        ));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration like \"30s\" or \"500ms\""
            ));
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let amount: u64 = number
            .parse()
            .map_err(|_| format!("`{text}`: number too large"))?;
        let part = match unit {
            "ms" => Some(Duration::from_millis(amount)),
            "s" => Some(Duration::from_secs(amount)),
            "m" => amount.checked_mul(60).map(Duration::from_secs),
            "h" => amount.checked_mul(3600).map(Duration::from_secs),
            "" => {
                return Err(format!(
                    "`{text}`: every number needs a unit (ms, s, m or h)"
                ))
            }
            other => {
                return Err(format!(
                    "`{text}`: unknown unit `{other}` (use ms, s, m or h)"
                ))
            }
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| format!("`{text}` is too long"))?;
        rest = tail;
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Collects problems while the sections are checked.
struct Validator<'a> {
    base_dir: &'a Path,
    problems: Vec<ConfigProblem>,
}

impl Validator<'_> {
    fn report(
        &mut self,
        path: impl Into<String>,
        kind: ConfigErrorKind,
        reason: impl Into<String>,
    ) {
        self.problems.push(ConfigProblem {
            path: path.into(),
            line: None,
            column: None,
            kind,
            reason: reason.into(),
        });
    }

    fn missing(&mut self, path: &str) {
        self.report(path, ConfigErrorKind::MissingField, "required");
    }

    /// A required value: reports it missing when absent.
    fn required<T>(&mut self, value: Option<T>, path: &str) -> Option<T> {
        if value.is_none() {
            self.missing(path);
        }
        value
    }

    fn socket_addr(&mut self, text: &str, path: &str) -> Option<SocketAddr> {
        match text.trim().parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.report(
                    path,
                    ConfigErrorKind::InvalidValue,
                    format!(
                        "`{text}` is not a socket address such as 127.0.0.1:8080 or [::1]:8080"
                    ),
                );
                None
            }
        }
    }

    fn duration(
        &mut self,
        text: Option<String>,
        path: &str,
        default: Duration,
    ) -> Option<Duration> {
        let Some(text) = text else {
            return Some(default);
        };
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(reason) => {
                self.report(path, ConfigErrorKind::InvalidValue, reason);
                None
            }
        }
    }

    /// A duration that must be longer than zero.
    fn positive_duration(
        &mut self,
        text: Option<String>,
        path: &str,
        default: Duration,
    ) -> Option<Duration> {
        let d = self.duration(text, path, default)?;
        if d.is_zero() {
            self.report(
                path,
                ConfigErrorKind::InvalidValue,
                "must be longer than zero",
            );
            return None;
        }
        Some(d)
    }

    fn non_empty(&mut self, text: String, path: &str) -> Option<String> {
        if text.trim().is_empty() {
            self.report(path, ConfigErrorKind::InvalidValue, "must not be empty");
            return None;
        }
        Some(text)
    }

    fn resolve(&self, text: &str) -> PathBuf {
        // Collecting the components drops `.` segments (`./policies` → `policies`).
        self.base_dir.join(text).components().collect()
    }

    /// A file that must exist and be readable.
    fn readable_file(&mut self, text: String, path: &str) -> Option<PathBuf> {
        let text = self.non_empty(text, path)?;
        let file = self.resolve(&text);
        let problem = match std::fs::metadata(&file) {
            Err(e) => Some(format!("{}: {e}", file.display())),
            Ok(m) if m.is_dir() => Some(format!("{} is a directory, not a file", file.display())),
            Ok(_) => std::fs::File::open(&file)
                .err()
                .map(|e| format!("{} cannot be read: {e}", file.display())),
        };
        match problem {
            Some(reason) => {
                self.report(path, ConfigErrorKind::FileAccess, reason);
                None
            }
            None => Some(file),
        }
    }

    fn directory(&mut self, text: String, path: &str) -> Option<PathBuf> {
        let text = self.non_empty(text, path)?;
        let dir = self.resolve(&text);
        let problem = match std::fs::metadata(&dir) {
            Err(e) => Some(format!("{}: {e}", dir.display())),
            Ok(m) if !m.is_dir() => Some(format!("{} is not a directory", dir.display())),
            Ok(_) => std::fs::read_dir(&dir)
                .err()
                .map(|e| format!("{} cannot be listed: {e}", dir.display())),
        };
        match problem {
            Some(reason) => {
                self.report(path, ConfigErrorKind::FileAccess, reason);
                None
            }
            None => Some(dir),
        }
    }

    fn positive_count(&mut self, value: Option<i64>, path: &str, default: usize) -> Option<usize> {
        let Some(n) = value else {
            return Some(default);
        };
        match usize::try_from(n) {
            Ok(n) if n > 0 => Some(n),
            _ => {
                self.report(
                    path,
                    ConfigErrorKind::InvalidValue,
                    format!("{n}: must be greater than zero"),
                );
                None
            }
        }
    }
}

pub(super) fn validate(raw: RawConfig, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let mut v = Validator {
        base_dir,
        problems: Vec::new(),
    };

    let listen = v
        .required(raw.listen, "listen")
        .and_then(|text| v.socket_addr(&text, "listen"));
    let admin_listen = match raw.admin_listen {
        None => Ok(None),
        Some(text) => v.socket_addr(&text, "admin_listen").map(Some).ok_or(()),
    };
    let grpc_listen = match raw.grpc_listen {
        None => Ok(None),
        Some(text) => v.socket_addr(&text, "grpc_listen").map(Some).ok_or(()),
    };
    for (name, other) in [("listen", listen), ("admin_listen", admin_listen.ok().flatten())] {
        if let (Some(other), Ok(Some(grpc))) = (other, &grpc_listen) {
            let overlapping_ip = other.ip() == grpc.ip() || other.ip().is_unspecified() || grpc.ip().is_unspecified();
            if other.port() == grpc.port() && other.port() != 0 && overlapping_ip {
                v.report("grpc_listen", ConfigErrorKind::Conflict, format!("must not use the same address and port as {name}"));
            }
        }
    }
    if let (Some(listen), Ok(Some(admin))) = (listen, &admin_listen) {
        // The same port on the same IP, or on a wildcard IP that covers the other, cannot
        // both be bound.
        let overlapping_ip = listen.ip() == admin.ip()
            || listen.ip().is_unspecified()
            || admin.ip().is_unspecified();
        if listen.port() == admin.port() && listen.port() != 0 && overlapping_ip {
            v.report(
                "admin_listen",
                ConfigErrorKind::Conflict,
                "must not use the same address and port as listen",
            );
        }
    }
    let admin_explain = raw.admin_explain.unwrap_or(false);
    if admin_explain && matches!(admin_listen, Ok(None)) {
        v.report(
            "admin_explain",
            ConfigErrorKind::Conflict,
            "needs admin_listen: the explain report is served on the admin listener only",
        );
    }
    let mode = match raw.mode.as_deref() {
        None | Some("enforce") => Some(Mode::Enforce),
        Some("shadow") => Some(Mode::Shadow),
        Some(other) => {
            v.report(
                "mode",
                ConfigErrorKind::InvalidValue,
                format!("`{other}`: expected enforce or shadow"),
            );
            None
        }
    };
    let upstream = v
        .required(raw.upstream, "upstream")
        .and_then(|u| upstream(&mut v, u));
    if let (Ok(grpc_listen), Some(upstream)) = (&grpc_listen, &upstream) {
        match (grpc_listen, &upstream.grpc_url) {
            (Some(_), None) => v.report(
                "upstream.grpc_url",
                ConfigErrorKind::MissingField,
                "grpc_listen is set: give the database's gRPC url (Qdrant's port 6334)",
            ),
            (None, Some(_)) => v.report(
                "grpc_listen",
                ConfigErrorKind::MissingField,
                "upstream.grpc_url is set: give the address vecgate's gRPC listener binds",
            ),
            (Some(_), Some(_)) if upstream.kind != BackendKind::Qdrant => v.report(
                "grpc_listen",
                ConfigErrorKind::Conflict,
                "gRPC is proxied for Qdrant only (upstream.kind: qdrant)",
            ),
            _ => {}
        }
    }
    let tls = match raw.tls {
        None => Ok(None),
        Some(t) => listener_tls(&mut v, t).map(Some).ok_or(()),
    };
    let auth = v.required(raw.auth, "auth").and_then(|a| auth(&mut v, a));
    let policies = v
        .required(raw.policies, "policies")
        .and_then(|p| policies(&mut v, p));
    let upstream_kind = upstream.as_ref().map(|u| u.kind);
    let principal_attrs = auth.as_ref().and_then(|a| a.principal.attr.as_ref());
    let collections = collections(&mut v, raw.collections, upstream_kind, principal_attrs);
    let audit_on_failure = match raw.audit.as_ref().and_then(|a| a.on_failure.as_deref()) {
        None | Some("continue") => Some(AuditOnFailure::Continue),
        Some("deny") => Some(AuditOnFailure::Deny),
        Some(other) => {
            v.report(
                "audit.on_failure",
                ConfigErrorKind::InvalidValue,
                format!("`{other}`: expected continue or deny"),
            );
            None
        }
    };
    let audit_flush_interval = audit_flush_interval(&mut v, raw.audit.as_ref(), audit_on_failure);
    let audit = audit(&mut v, raw.audit);
    let limits = limits(&mut v, raw.limits.unwrap_or_default());

    let problems = std::mem::take(&mut v.problems);
    match (
        listen,
        admin_listen,
        grpc_listen,
        mode,
        upstream,
        tls,
        auth,
        policies,
        collections,
        audit,
        audit_on_failure,
        audit_flush_interval,
        limits,
    ) {
        (
            Some(listen),
            Ok(admin_listen),
            Ok(grpc_listen),
            Some(mode),
            Some(upstream),
            Ok(tls),
            Some(auth),
            Some(policies),
            Some(collections),
            Some(audit),
            Some(audit_on_failure),
            Some(audit_flush_interval),
            Some(limits),
        ) if problems.is_empty() => Ok(Config {
            listen,
            admin_listen,
            grpc_listen,
            admin_explain,
            mode,
            upstream,
            tls,
            auth,
            policies,
            collections,
            audit,
            audit_on_failure,
            audit_flush_interval,
            limits,
        }),
        _ => Err(ConfigErrors { problems }),
    }
}

fn upstream(v: &mut Validator<'_>, raw: RawUpstream) -> Option<UpstreamConfig> {
    let kind = match v.required(raw.kind, "upstream.kind").as_deref() {
        None => None,
        Some("chroma") => Some(BackendKind::Chroma),
        Some("qdrant") => Some(BackendKind::Qdrant),
        Some(other) => {
            v.report(
                "upstream.kind",
                ConfigErrorKind::InvalidValue,
                format!("`{other}`: expected chroma or qdrant"),
            );
            None
        }
    };
    let url = v
        .required(raw.url, "upstream.url")
        .and_then(|text| match upstream_url(&text) {
            Ok(url) => Some(url),
            Err(reason) => {
                v.report("upstream.url", ConfigErrorKind::InvalidValue, reason);
                None
            }
        });
    let grpc_url = match raw.grpc_url {
        None => Ok(None),
        Some(text) => match upstream_url(&text) {
            Ok(url) if url.trim_start_matches("https://").trim_start_matches("http://").contains('/') => {
                v.report("upstream.grpc_url", ConfigErrorKind::InvalidValue, format!("`{text}`: a gRPC url has no path"));
                Err(())
            }
            Ok(url) => Ok(Some(url)),
            Err(reason) => {
                v.report("upstream.grpc_url", ConfigErrorKind::InvalidValue, reason);
                Err(())
            }
        },
    };
    let timeout = v.positive_duration(raw.timeout, "upstream.timeout", DEFAULT_UPSTREAM_TIMEOUT);
    let ca_file = match raw.tls.and_then(|t| t.ca_file) {
        None => Ok(None),
        Some(text) => v
            .readable_file(text, "upstream.tls.ca_file")
            .map(Some)
            .ok_or(()),
    };
    if let (Some(url), Ok(Some(_))) = (&url, &ca_file) {
        if !url.starts_with("https://") {
            v.report(
                "upstream.tls.ca_file",
                ConfigErrorKind::Conflict,
                "a CA file only applies to an https upstream url",
            );
        }
    }
    let api_key_env = match raw.api_key_env {
        None => Ok(None),
        Some(name) if is_env_var_name(&name) => Ok(Some(name)),
        Some(name) => {
            v.report(
                "upstream.api_key_env",
                ConfigErrorKind::InvalidValue,
                format!("`{name}` is not an environment variable name (letters, digits, _)"),
            );
            Err(())
        }
    };
    Some(UpstreamConfig {
        kind: kind?,
        url: url?,
        timeout: timeout?,
        ca_file: ca_file.ok()?,
        api_key_env: api_key_env.ok()?,
        grpc_url: grpc_url.ok()?,
    })
}

/// Checks an upstream URL and returns it normalised: lowercase scheme, no trailing slash.
fn upstream_url(text: &str) -> Result<String, String> {
    let uri = checked_uri(text)?;
    let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("`{text}`: the scheme must be http or https"));
    }
    if uri.query().is_some() {
        return Err(format!("`{text}`: a query string is not allowed"));
    }
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let path = uri.path().trim_end_matches('/');
    Ok(format!("{scheme}://{authority}{path}"))
}

/// Parses an absolute URL with a host and no user info or fragment.
fn checked_uri(text: &str) -> Result<http::Uri, String> {
    if text.chars().any(char::is_whitespace) {
        return Err(format!("`{text}`: a URL must not contain spaces"));
    }
    if text.contains('#') {
        return Err(format!("`{text}`: a fragment (#…) is not allowed"));
    }
    let uri: http::Uri = text.parse().map_err(|_| format!("`{text}` is not a URL"))?;
    let Some(authority) = uri.authority() else {
        return Err(format!(
            "`{text}` is not an absolute URL (scheme://host[:port])"
        ));
    };
    if uri.scheme().is_none() {
        return Err(format!("`{text}` has no scheme"));
    }
    if authority.as_str().contains('@') {
        return Err(format!(
            "`{text}`: user info (user:password@) is not allowed; use TLS or tokens"
        ));
    }
    if authority.host().is_empty() {
        return Err(format!("`{text}` has no host"));
    }
    let port_written = authority.as_str().len() > authority.host().len();
    if port_written && authority.port_u16().is_none() {
        return Err(format!("`{text}` has an invalid port"));
    }
    Ok(uri)
}

fn listener_tls(v: &mut Validator<'_>, raw: RawListenerTls) -> Option<ListenerTls> {
    let cert_file = v
        .required(raw.cert_file, "tls.cert_file")
        .and_then(|t| v.readable_file(t, "tls.cert_file"));
    let key_file = v
        .required(raw.key_file, "tls.key_file")
        .and_then(|t| v.readable_file(t, "tls.key_file"));
    let client_ca_file = match raw.client_ca_file {
        None => Ok(None),
        Some(t) => v.readable_file(t, "tls.client_ca_file").map(Some).ok_or(()),
    };
    Some(ListenerTls {
        cert_file: cert_file?,
        key_file: key_file?,
        client_ca_file: client_ca_file.ok()?,
    })
}

fn auth(v: &mut Validator<'_>, raw: RawAuth) -> Option<AuthConfig> {
    let issuer = match raw.issuer {
        None => Ok(None),
        Some(t) => v.non_empty(t, "auth.issuer").map(Some).ok_or(()),
    };
    let audience = match raw.audience {
        None => Ok(None),
        Some(a) => audience(v, a.into_vec()).map(Some).ok_or(()),
    };
    let algorithms = v
        .required(raw.algorithms, "auth.algorithms")
        .and_then(|names| algorithms(v, &names));
    let jwks_url_given = raw.jwks_url.is_some();
    let key = key_source(v, raw.hs256_secret_env, raw.public_key_file, raw.jwks_url);
    let jwks_ca_file = match raw.jwks_ca_file {
        None => Ok(None),
        Some(text) => {
            if !jwks_url_given {
                v.report(
                    "auth.jwks_ca_file",
                    ConfigErrorKind::Conflict,
                    "a CA file for the key set only applies with jwks_url",
                );
            }
            v.readable_file(text, "auth.jwks_ca_file")
                .map(Some)
                .ok_or(())
        }
    };
    if let (Some(algorithms), Some(key)) = (&algorithms, &key) {
        check_algorithms_fit_key(v, algorithms, key);
    }
    let leeway = v.duration(raw.leeway, "auth.leeway", DEFAULT_LEEWAY);
    let principal = principal(v, raw.principal.unwrap_or_default());
    Some(AuthConfig {
        issuer: issuer.ok()?,
        audience: audience.ok()?,
        algorithms: algorithms?,
        key: key?,
        jwks_ca_file: jwks_ca_file.ok()?,
        leeway: leeway?,
        principal: principal?,
    })
}

fn audience(v: &mut Validator<'_>, values: Vec<String>) -> Option<Vec<String>> {
    if values.is_empty() {
        v.report(
            "auth.audience",
            ConfigErrorKind::InvalidValue,
            "an empty list accepts no token; omit the key to skip the audience check",
        );
        return None;
    }
    let mut ok = true;
    for (i, value) in values.iter().enumerate() {
        if value.trim().is_empty() {
            v.report(
                format!("auth.audience[{i}]"),
                ConfigErrorKind::InvalidValue,
                "must not be empty",
            );
            ok = false;
        }
    }
    ok.then_some(values)
}

fn algorithms(v: &mut Validator<'_>, names: &[String]) -> Option<Vec<Algorithm>> {
    if names.is_empty() {
        v.report(
            "auth.algorithms",
            ConfigErrorKind::InvalidValue,
            "list at least one algorithm",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, name) in names.iter().enumerate() {
        let path = format!("auth.algorithms[{i}]");
        if name.trim().eq_ignore_ascii_case("none") {
            v.report(
                path,
                ConfigErrorKind::InvalidValue,
                "`none` (unsigned tokens) is never accepted",
            );
            ok = false;
            continue;
        }
        match Algorithm::from_name(name) {
            Some(a) if out.contains(&a) => {
                v.report(
                    path,
                    ConfigErrorKind::InvalidValue,
                    format!("{name} is listed twice"),
                );
                ok = false;
            }
            Some(a) => out.push(a),
            None => {
                let known: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
                v.report(
                    path,
                    ConfigErrorKind::InvalidValue,
                    format!("unknown algorithm `{name}` (known: {})", known.join(", ")),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn key_source(
    v: &mut Validator<'_>,
    secret_env: Option<String>,
    public_key_file: Option<String>,
    jwks_url: Option<String>,
) -> Option<KeySource> {
    let given: Vec<&str> = [
        ("hs256_secret_env", secret_env.is_some()),
        ("public_key_file", public_key_file.is_some()),
        ("jwks_url", jwks_url.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if given.len() != 1 {
        let reason = if given.is_empty() {
            "give one of hs256_secret_env, public_key_file, jwks_url".to_string()
        } else {
            format!("give only one of {}", given.join(", "))
        };
        let kind = if given.is_empty() {
            ConfigErrorKind::MissingField
        } else {
            ConfigErrorKind::Conflict
        };
        v.report("auth", kind, reason);
    }
    // Each given source is still checked, so its own problems show up too.
    let mut sources = Vec::new();
    if let Some(name) = secret_env {
        if is_env_var_name(&name) {
            sources.push(KeySource::HmacSecretEnv(name));
        } else {
            v.report(
                "auth.hs256_secret_env",
                ConfigErrorKind::InvalidValue,
                format!("`{name}` is not an environment variable name (letters, digits, _)"),
            );
        }
    }
    if let Some(text) = public_key_file {
        if let Some(file) = v.readable_file(text, "auth.public_key_file") {
            sources.push(KeySource::PublicKeyFile(file));
        }
    }
    if let Some(url) = jwks_url {
        match jwks_url_checked(&url) {
            Ok(()) => sources.push(KeySource::JwksUrl(url)),
            Err(reason) => v.report("auth.jwks_url", ConfigErrorKind::InvalidValue, reason),
        }
    }
    match (given.len(), sources.pop()) {
        (1, Some(source)) => Some(source),
        _ => None,
    }
}

fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn jwks_url_checked(text: &str) -> Result<(), String> {
    let uri = checked_uri(text)?;
    if !uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    {
        return Err(format!("`{text}`: keys must be fetched over https"));
    }
    Ok(())
}

/// HMAC algorithms need the shared secret; the others a public key or a JWKS. A PEM file is
/// also read to see that it holds a key of each listed algorithm's family.
fn check_algorithms_fit_key(v: &mut Validator<'_>, algorithms: &[Algorithm], key: &KeySource) {
    let mut key_file_reported = false;
    for (i, algorithm) in algorithms.iter().enumerate() {
        let path = format!("auth.algorithms[{i}]");
        let name = algorithm.name();
        match key {
            KeySource::HmacSecretEnv(_) if !algorithm.is_hmac() => v.report(
                path,
                ConfigErrorKind::Conflict,
                format!("{name} needs public_key_file or jwks_url, not hs256_secret_env"),
            ),
            KeySource::PublicKeyFile(_) | KeySource::JwksUrl(_) if algorithm.is_hmac() => v.report(
                path,
                ConfigErrorKind::Conflict,
                format!("{name} is an HMAC algorithm: it needs hs256_secret_env"),
            ),
            // One report for the file, even when several algorithms need what it lacks.
            KeySource::PublicKeyFile(file) if !key_file_reported => {
                if let Err(reason) = pem_fits(file, *algorithm) {
                    key_file_reported = true;
                    v.report(
                        "auth.public_key_file",
                        ConfigErrorKind::InvalidValue,
                        reason,
                    );
                }
            }
            _ => {}
        }
    }
}

/// The check `vecgate serve` runs on the same file ([`super::keys::public_key_from_pem`]).
fn pem_fits(file: &Path, algorithm: Algorithm) -> Result<(), String> {
    if algorithm.is_hmac() {
        return Ok(());
    }
    let pem = std::fs::read(file).map_err(|e| format!("cannot read public key {}: {e}", file.display()))?;
    super::keys::public_key_from_pem(&pem, &[algorithm])
        .map(drop)
        .map_err(|problem| format!("{}: {problem}", file.display()))
}

fn principal(v: &mut Validator<'_>, raw: RawPrincipal) -> Option<PrincipalMapping> {
    let id = claim_path(
        v,
        raw.id.unwrap_or_else(|| "sub".into()),
        "auth.principal.id",
    );
    let roles = claim_path(
        v,
        raw.roles.unwrap_or_else(|| "roles".into()),
        "auth.principal.roles",
    );
    let attr = match raw.attr {
        None => Ok(None),
        Some(map) => {
            let mut ok = true;
            let mut out = BTreeMap::new();
            for (name, claim) in map {
                let path = format!("auth.principal.attr.{name}");
                if name.trim().is_empty() {
                    v.report(path, ConfigErrorKind::InvalidValue, "empty attribute name");
                    ok = false;
                } else if let Some(claim) = claim_path(v, claim, &path) {
                    out.insert(name, claim);
                } else {
                    ok = false;
                }
            }
            ok.then_some(Some(out)).ok_or(())
        }
    };
    Some(PrincipalMapping {
        id: id?,
        roles: roles?,
        attr: attr.ok()?,
    })
}

/// A dotted claim path: non-empty segments.
fn claim_path(v: &mut Validator<'_>, text: String, path: &str) -> Option<String> {
    if text.split('.').any(|segment| segment.trim().is_empty()) {
        v.report(
            path,
            ConfigErrorKind::InvalidValue,
            format!("`{text}` is not a claim path (dotted names, none empty)"),
        );
        return None;
    }
    Some(text)
}

fn policies(v: &mut Validator<'_>, raw: RawPolicies) -> Option<PoliciesConfig> {
    if raw.strict_evaluation.is_some() {
        v.report(
            "policies.strict_evaluation",
            ConfigErrorKind::InvalidValue,
            "replaced by policies.evaluation: `strict_evaluation: true` is now \
             `evaluation: cerbos_strict`; vecgate's former default (an erroring DENY applies) \
             is `evaluation: fail_closed`; the new default, `cerbos`, ignores an erroring rule \
             as Cerbos' PDP does (see the README's \"Coming from Cerbos\")",
        );
    }
    let evaluation = match raw.evaluation.as_deref() {
        None => Some(Evaluation::default()),
        Some(text) => match text.parse::<Evaluation>() {
            Ok(e) => Some(e),
            Err(reason) => {
                v.report("policies.evaluation", ConfigErrorKind::InvalidValue, reason);
                None
            }
        },
    };
    let source = match (raw.dir, raw.pdp) {
        (Some(dir), None) => v
            .directory(dir, "policies.dir")
            .map(|dir| PolicySource::Dir {
                dir,
                watch: raw.watch.unwrap_or(true),
            }),
        (None, Some(pdp_raw)) => {
            if raw.watch.is_some() {
                v.report(
                    "policies.watch",
                    ConfigErrorKind::Conflict,
                    "watch applies to policies.dir; the PDP reloads its own store",
                );
            }
            if raw.evaluation.is_some() {
                v.report(
                    "policies.evaluation",
                    ConfigErrorKind::Conflict,
                    "with policies.pdp the PDP's own engine.strictEvaluation decides; remove \
                     policies.evaluation",
                );
            }
            pdp(v, pdp_raw).map(PolicySource::Pdp)
        }
        (Some(_), Some(_)) => {
            v.report(
                "policies",
                ConfigErrorKind::Conflict,
                "give either policies.dir (policy files) or policies.pdp (an existing Cerbos \
                 PDP), not both",
            );
            None
        }
        (None, None) => {
            v.report(
                "policies.dir",
                ConfigErrorKind::MissingField,
                "required (or policies.pdp, to use an existing Cerbos PDP)",
            );
            None
        }
    };
    Some(PoliciesConfig {
        source: source?,
        evaluation: evaluation?,
    })
}

fn pdp(v: &mut Validator<'_>, raw: RawPdp) -> Option<PdpConfig> {
    let url = v
        .required(raw.url, "policies.pdp.url")
        .and_then(|text| match upstream_url(&text) {
            Ok(url) => Some(url),
            Err(reason) => {
                v.report("policies.pdp.url", ConfigErrorKind::InvalidValue, reason);
                None
            }
        });
    let timeout = v.positive_duration(raw.timeout, "policies.pdp.timeout", DEFAULT_PDP_TIMEOUT);
    let plan_cache_ttl = v.duration(
        raw.plan_cache_ttl,
        "policies.pdp.plan_cache_ttl",
        DEFAULT_PLAN_CACHE_TTL,
    );
    let ca_file = match raw.tls.and_then(|t| t.ca_file) {
        None => Ok(None),
        Some(text) => v
            .readable_file(text, "policies.pdp.tls.ca_file")
            .map(Some)
            .ok_or(()),
    };
    if let (Some(url), Ok(Some(_))) = (&url, &ca_file) {
        if !url.starts_with("https://") {
            v.report(
                "policies.pdp.tls.ca_file",
                ConfigErrorKind::Conflict,
                "a CA file only applies to an https PDP url",
            );
        }
    }
    Some(PdpConfig {
        url: url?,
        timeout: timeout?,
        plan_cache_ttl: plan_cache_ttl?,
        ca_file: ca_file.ok()?,
        send_token: raw.send_token.unwrap_or(false),
    })
}

fn collections(
    v: &mut Validator<'_>,
    raw: Option<Vec<RawCollectionRule>>,
    kind: Option<BackendKind>,
    principal_attrs: Option<&BTreeMap<String, String>>,
) -> Option<Vec<CollectionRule>> {
    let default_prefix = match kind {
        Some(BackendKind::Qdrant) => "metadata.",
        Some(BackendKind::Chroma) | None => "",
    };
    let Some(rules) = raw else {
        return Some(vec![CollectionRule {
            name: "*".into(),
            resource_kind: DEFAULT_RESOURCE_KIND.into(),
            attr_prefix: default_prefix.into(),
            required_attrs: Vec::new(),
            stamp: BTreeMap::new(),
            post_filter_only: false,
        }]);
    };
    if rules.is_empty() {
        v.report(
            "collections",
            ConfigErrorKind::InvalidValue,
            "an empty list matches no collection; omit the key for the default rule",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, rule) in rules.into_iter().enumerate() {
        match collection_rule(
            v,
            rule,
            &format!("collections[{i}]"),
            default_prefix,
            principal_attrs,
        ) {
            Some(rule) => out.push(rule),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn collection_rule(
    v: &mut Validator<'_>,
    raw: RawCollectionRule,
    at: &str,
    default_prefix: &str,
    principal_attrs: Option<&BTreeMap<String, String>>,
) -> Option<CollectionRule> {
    let name = v
        .required(raw.name, &format!("{at}.name"))
        .and_then(|n| v.non_empty(n, &format!("{at}.name")));
    let resource_kind = v.non_empty(
        raw.resource_kind
            .unwrap_or_else(|| DEFAULT_RESOURCE_KIND.into()),
        &format!("{at}.resource_kind"),
    );
    let mut ok = true;
    let mut required_attrs = Vec::new();
    for (i, attr) in raw
        .required_attrs
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let path = format!("{at}.required_attrs[{i}]");
        if attr.trim().is_empty() {
            v.report(path, ConfigErrorKind::InvalidValue, "must not be empty");
            ok = false;
        } else if required_attrs.contains(&attr) {
            v.report(
                path,
                ConfigErrorKind::InvalidValue,
                format!("`{attr}` is listed twice"),
            );
            ok = false;
        } else {
            required_attrs.push(attr);
        }
    }
    let mut stamp = BTreeMap::new();
    for (key, source) in raw.stamp.unwrap_or_default() {
        let path = format!("{at}.stamp.{key}");
        if key.trim().is_empty() {
            v.report(path, ConfigErrorKind::InvalidValue, "empty metadata key");
            ok = false;
            continue;
        }
        match stamp_source(&source) {
            None => {
                v.report(
                    path,
                    ConfigErrorKind::InvalidValue,
                    format!("`{source}`: expected principal.id or principal.attr.<name>"),
                );
                ok = false;
            }
            Some(StampSource::Attr(name))
                if principal_attrs.is_some_and(|attrs| !attrs.contains_key(&name)) =>
            {
                v.report(
                    path,
                    ConfigErrorKind::Conflict,
                    format!("`{name}` is not in auth.principal.attr, so principals never have it"),
                );
                ok = false;
            }
            Some(s) => {
                stamp.insert(key, s);
            }
        }
    }
    if !ok {
        return None;
    }
    Some(CollectionRule {
        name: name?,
        resource_kind: resource_kind?,
        attr_prefix: raw.attr_prefix.unwrap_or_else(|| default_prefix.into()),
        required_attrs,
        stamp,
        post_filter_only: raw.post_filter_only.unwrap_or(false),
    })
}

fn stamp_source(text: &str) -> Option<StampSource> {
    if text == "principal.id" {
        return Some(StampSource::Id);
    }
    let name = text.strip_prefix("principal.attr.")?;
    (!name.trim().is_empty()).then(|| StampSource::Attr(name.to_string()))
}

fn audit(v: &mut Validator<'_>, raw: Option<RawAudit>) -> Option<AuditConfig> {
    let path = raw
        .and_then(|a| a.path)
        .unwrap_or_else(|| AUDIT_STDOUT.into());
    match path.as_str() {
        AUDIT_STDOUT => Some(AuditConfig::Stdout),
        AUDIT_OFF => Some(AuditConfig::Off),
        "" => {
            v.report(
                "audit.path",
                ConfigErrorKind::InvalidValue,
                "empty; write \"-\" for stdout or off for no audit log",
            );
            None
        }
        text => {
            let file = v.resolve(text);
            let problem = match std::fs::metadata(&file) {
                Ok(m) if m.is_dir() => Some(format!("{} is a directory", file.display())),
                Ok(_) => None,
                Err(_) => match file.parent().map(std::fs::metadata) {
                    Some(Ok(m)) if m.is_dir() => None,
                    _ => Some(format!(
                        "the directory of {} does not exist",
                        file.display()
                    )),
                },
            };
            match problem {
                Some(reason) => {
                    v.report("audit.path", ConfigErrorKind::FileAccess, reason);
                    None
                }
                None => Some(AuditConfig::File(file)),
            }
        }
    }
}

/// `audit.flush_interval`: `Some(None)` when absent or zero (each line written as its request
/// ends). Buffering cannot be combined with `on_failure: deny`, which must know that a line
/// was written before its answer goes out.
fn audit_flush_interval(
    v: &mut Validator<'_>,
    raw: Option<&RawAudit>,
    on_failure: Option<AuditOnFailure>,
) -> Option<Option<Duration>> {
    let text = raw.and_then(|a| a.flush_interval.clone());
    let interval = v.duration(text, "audit.flush_interval", Duration::ZERO)?;
    if interval.is_zero() {
        return Some(None);
    }
    if on_failure == Some(AuditOnFailure::Deny) {
        v.report(
            "audit.flush_interval",
            ConfigErrorKind::InvalidValue,
            "cannot be combined with on_failure: deny, which answers only once the request's line is written",
        );
        return None;
    }
    Some(Some(interval))
}

fn limits(v: &mut Validator<'_>, raw: RawLimits) -> Option<Limits> {
    let defaults = Limits::default();
    let max_body_bytes = v.positive_count(
        raw.max_body_bytes,
        "limits.max_body_bytes",
        defaults.max_body_bytes,
    );
    let max_filter_terms = v.positive_count(
        raw.max_filter_terms,
        "limits.max_filter_terms",
        defaults.max_filter_terms,
    );
    let header_timeout = v.positive_duration(
        raw.header_timeout,
        "limits.header_timeout",
        defaults.header_timeout,
    );
    let body_timeout = v.positive_duration(
        raw.body_timeout,
        "limits.body_timeout",
        defaults.body_timeout,
    );
    let max_connections = v.positive_count(
        raw.max_connections,
        "limits.max_connections",
        defaults.max_connections,
    );
    let max_upstream_requests = v.positive_count(
        raw.max_upstream_requests,
        "limits.max_upstream_requests",
        defaults.max_upstream_requests,
    );
    let workers = match raw.workers {
        Some(n) => Some(v.positive_count(Some(n), "limits.workers", 1)?),
        None => None,
    };
    Some(Limits {
        workers,
        max_upstream_requests: max_upstream_requests?,
        max_body_bytes: max_body_bytes?,
        max_filter_terms: max_filter_terms?,
        header_timeout: header_timeout?,
        body_timeout: body_timeout?,
        max_connections: max_connections?,
    })
}

// ---------------------------------------------------------------------------------------------
// Warnings
// ---------------------------------------------------------------------------------------------

pub(super) fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if let KeySource::HmacSecretEnv(var) = &config.auth.key {
        match std::env::var_os(var) {
            None => out.push(format!(
                "auth.hs256_secret_env: {var} is not set here; `vecgate serve` needs it"
            )),
            Some(value) if value.is_empty() => out.push(format!(
                "auth.hs256_secret_env: {var} is empty; `vecgate serve` needs a secret"
            )),
            Some(_) => {}
        }
    }
    if let Some(var) = &config.upstream.api_key_env {
        if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
            out.push(format!(
                "upstream.api_key_env: {var} is not set here; `vecgate serve` needs it"
            ));
        }
    }
    if config.mode == Mode::Shadow {
        out.push("mode: shadow: decisions are logged and counted, not enforced".into());
    }
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for (i, rule) in config.collections.iter().enumerate() {
        let shadowed_by = config.collections[..i].iter().find(|earlier| {
            earlier.name == "*"
                || earlier.name == rule.name
                || (!rule.name.contains('*')
                    && crate::policy::planner::glob_match(&earlier.name, &rule.name))
        });
        if let Some(earlier) = shadowed_by {
            if seen.insert(rule.name.as_str()) {
                out.push(format!(
                    "collections[{i}] (`{}`) never applies: the earlier rule `{}` matches first",
                    rule.name, earlier.name
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "30",
            "s",
            "30 s",
            "1.5s",
            "10d",
            "-1s",
            "3s0",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn upstream_urls() {
        assert_eq!(
            upstream_url("http://h:8000/").as_deref(),
            Ok("http://h:8000")
        );
        assert_eq!(
            upstream_url("HTTPS://h/api//").as_deref(),
            Ok("https://h/api")
        );
        for bad in [
            "ftp://h",
            "h:8000",
            "http://u:p@h",
            "http://h/?a=1",
            "http://h/#x",
            "/path",
            "http://h:99999",
            "http:// h",
        ] {
            assert!(upstream_url(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn stamp_sources() {
        assert_eq!(stamp_source("principal.id"), Some(StampSource::Id));
        assert_eq!(
            stamp_source("principal.attr.team"),
            Some(StampSource::Attr("team".into()))
        );
        for bad in [
            "principal.attr.",
            "principal",
            "id",
            "principal.roles",
            "P.id",
        ] {
            assert_eq!(stamp_source(bad), None, "{bad:?}");
        }
    }
}
