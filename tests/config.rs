//! The configuration file (DESIGN §4): parsing, defaults, strictness, every-problem-at-once
//! validation, path resolution, and `vecgate check --config`. Assertions are on values, error
//! kinds, field paths and positions, never on message text.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;
use vecgate::cli::check_config;
use vecgate::config::{
    self, Algorithm, AuditConfig, BackendKind, Config, ConfigErrorKind, ConfigErrors, KeySource,
    Mode, PdpConfig, PolicySource, StampSource,
};
use vecgate::policy::evaluation::Evaluation;

/// A minimal valid Cerbos resource policy for kind `document`.
const DOCUMENT_POLICY: &str = "\
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: document
  version: default
  rules:
    - actions: [read]
      effect: EFFECT_ALLOW
      roles: [user]
";

/// An environment variable every test environment has, standing in for a set secret.
const SET_VAR: &str = "PATH";
const UNSET_VAR: &str = "VECGATE_CONFIG_TEST_UNSET_7F1C";

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn fixture(name: &str) -> String {
    fs::read_to_string(fixture_path(name)).unwrap()
}

/// A temporary directory holding `vecgate.yaml` with `yaml` and a `policies/` directory with
/// one valid policy.
fn site(yaml: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("policies")).unwrap();
    fs::write(dir.path().join("policies/document.yaml"), DOCUMENT_POLICY).unwrap();
    fs::write(dir.path().join("vecgate.yaml"), yaml).unwrap();
    dir
}

fn config_file(dir: &TempDir) -> PathBuf {
    dir.path().join("vecgate.yaml")
}

fn load_ok(yaml: &str) -> (TempDir, Config) {
    let dir = site(yaml);
    match config::load(&config_file(&dir)) {
        Ok(c) => (dir, c),
        Err(e) => panic!("should load:\n{e}\n---\n{yaml}"),
    }
}

fn load_err(yaml: &str) -> ConfigErrors {
    let dir = site(yaml);
    match config::load(&config_file(&dir)) {
        Ok(c) => panic!("should not load:\n{yaml}\n---\n{c:#?}"),
        Err(e) => e,
    }
}

fn paths(errors: &ConfigErrors) -> BTreeSet<String> {
    errors.paths().into_iter().map(String::from).collect()
}

/// The single problem of `errors`, asserting there is exactly one.
fn only_problem(errors: &ConfigErrors) -> &config::ConfigProblem {
    assert_eq!(errors.problems.len(), 1, "{errors}");
    &errors.problems[0]
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A valid configuration built from top-level sections, each written in flow style. Entries
/// in `overrides` replace a section (or add one); an empty value removes it.
fn doc(overrides: &[(&str, &str)]) -> String {
    let mut sections: Vec<(String, String)> = [
        ("listen", "127.0.0.1:8080"),
        ("upstream", "{kind: chroma, url: \"http://127.0.0.1:8000\"}"),
        // A variable that is always set, so no test sees the "secret not set" warning.
        ("auth", "{algorithms: [HS256], hs256_secret_env: PATH}"),
        ("policies", "{dir: policies}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (key, value) in overrides {
        sections.retain(|(k, _)| k != key);
        if !value.is_empty() {
            sections.push((key.to_string(), value.to_string()));
        }
    }
    sections
        .iter()
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect()
}

fn write_files(dir: &Path, names: &[&str]) {
    for name in names {
        fs::write(dir.join(name), "not checked here\n").unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Valid files
// ---------------------------------------------------------------------------------------------

#[test]
fn design_example_parses_into_the_expected_config() {
    let dir = site(&fixture("full.yaml"));
    write_files(dir.path(), &["c.pem", "k.pem", "ca.pem"]);
    let config = config::load(&config_file(&dir)).unwrap();
    let base = std::path::absolute(dir.path()).unwrap();

    assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.admin_listen, Some("127.0.0.1:9090".parse().unwrap()));
    assert_eq!(config.mode, Mode::Enforce);
    assert_eq!(config.upstream.kind, BackendKind::Chroma);
    assert_eq!(config.upstream.url, "http://127.0.0.1:8000");
    assert_eq!(config.upstream.timeout, Duration::from_secs(30));
    assert_eq!(config.upstream.ca_file, None);

    let tls = config.tls.as_ref().unwrap();
    assert_eq!(tls.cert_file, base.join("c.pem"));
    assert_eq!(tls.key_file, base.join("k.pem"));
    assert_eq!(tls.client_ca_file, Some(base.join("ca.pem")));

    let auth = &config.auth;
    assert_eq!(auth.issuer.as_deref(), Some("https://idp.example.com"));
    assert_eq!(auth.audience, Some(vec!["vecgate".to_string()]));
    assert_eq!(auth.algorithms, vec![Algorithm::HS256]);
    assert_eq!(
        auth.key,
        KeySource::HmacSecretEnv("VECGATE_JWT_SECRET".into())
    );
    assert_eq!(auth.leeway, Duration::from_secs(30));
    assert_eq!(auth.principal.id, "sub");
    assert_eq!(auth.principal.roles, "roles");
    let attr: BTreeMap<String, String> = [("department", "department"), ("region", "region")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(auth.principal.attr, Some(attr));

    assert_eq!(config.policies.dir(), Some(base.join("./policies").as_path()));
    assert!(config.policies.watch());
    assert_eq!(config.policies.evaluation, Evaluation::Cerbos);

    assert_eq!(config.collections.len(), 1);
    let rule = &config.collections[0];
    assert_eq!(rule.name, "*");
    assert_eq!(rule.resource_kind, "document");
    assert_eq!(rule.attr_prefix, "");
    assert_eq!(rule.required_attrs, vec!["department", "region"]);
    assert_eq!(
        rule.stamp,
        BTreeMap::from([("owner".to_string(), StampSource::Id)])
    );
    assert!(!rule.post_filter_only);

    assert_eq!(config.audit, AuditConfig::Stdout);
    assert_eq!(config.limits.max_body_bytes, 33_554_432);
    assert_eq!(config.limits.max_filter_terms, 500);
    assert_eq!(config.limits.header_timeout, Duration::from_secs(10));
    assert_eq!(config.limits.body_timeout, Duration::from_secs(30));
    assert_eq!(config.limits.max_upstream_requests, 256);
    assert_eq!(config.limits.max_connections, 1024);
    assert_eq!(config.limits.workers, None, "one per core");
}

#[test]
fn every_default_applies_to_a_minimal_file() {
    let (dir, config) = load_ok(&fixture("minimal.yaml"));
    let base = std::path::absolute(dir.path()).unwrap();
    assert_eq!(config.admin_listen, None);
    assert_eq!(config.mode, Mode::Enforce);
    assert_eq!(config.upstream.timeout, Duration::from_secs(30));
    assert_eq!(config.upstream.ca_file, None);
    assert!(config.tls.is_none());
    assert_eq!(config.auth.issuer, None);
    assert_eq!(config.auth.audience, None);
    assert_eq!(config.auth.leeway, Duration::from_secs(30));
    assert_eq!(config.auth.principal.id, "sub");
    assert_eq!(config.auth.principal.roles, "roles");
    assert_eq!(config.auth.principal.attr, None);
    assert_eq!(config.policies.dir(), Some(base.join("policies").as_path()));
    assert!(config.policies.watch());
    assert_eq!(config.policies.evaluation, Evaluation::Cerbos);
    assert_eq!(config.collections.len(), 1);
    let rule = &config.collections[0];
    assert_eq!(
        (
            rule.name.as_str(),
            rule.resource_kind.as_str(),
            rule.attr_prefix.as_str()
        ),
        ("*", "document", "")
    );
    assert!(rule.required_attrs.is_empty() && rule.stamp.is_empty() && !rule.post_filter_only);
    assert_eq!(config.audit, AuditConfig::Stdout);
    assert_eq!(config.limits.max_body_bytes, 33_554_432);
    assert_eq!(config.limits.max_filter_terms, 500);
    assert_eq!(config.limits.header_timeout, Duration::from_secs(10));
    assert_eq!(config.limits.max_connections, 1024);
}

#[test]
fn attr_prefix_defaults_by_upstream_kind() {
    let qdrant = "{kind: qdrant, url: \"http://127.0.0.1:6333\"}";
    let (_d, config) = load_ok(&doc(&[("upstream", qdrant)]));
    assert_eq!(config.collections[0].attr_prefix, "metadata.");

    let rules = "[{name: a}, {name: b, attr_prefix: \"payload.\"}, {name: c, attr_prefix: \"\"}]";
    let (_d, config) = load_ok(&doc(&[("upstream", qdrant), ("collections", rules)]));
    let prefixes: Vec<&str> = config
        .collections
        .iter()
        .map(|r| r.attr_prefix.as_str())
        .collect();
    assert_eq!(prefixes, ["metadata.", "payload.", ""]);

    let (_d, config) = load_ok(&doc(&[("collections", "[{name: a}]")]));
    assert_eq!(config.collections[0].attr_prefix, "");
}

#[test]
fn explicit_values_replace_defaults() {
    let (_d, config) = load_ok(&doc(&[
        ("mode", "shadow"),
        ("upstream", "{kind: qdrant, url: \"https://db.internal:6333/base/\", timeout: 2m}"),
        ("auth", "{algorithms: [HS512, HS256], hs256_secret_env: S, leeway: 0s, audience: [a, b], principal: {id: user.id, roles: realm_access.roles, attr: {}}}"),
        ("policies", "{dir: policies, watch: false, evaluation: cerbos_strict}"),
        ("limits", "{max_body_bytes: 1024, max_filter_terms: 7, header_timeout: 500ms, body_timeout: 2s, max_connections: 3, max_upstream_requests: 5, workers: 2}"),
    ]));
    assert_eq!(config.mode, Mode::Shadow);
    assert_eq!(config.upstream.kind, BackendKind::Qdrant);
    assert_eq!(config.upstream.url, "https://db.internal:6333/base");
    assert_eq!(config.upstream.timeout, Duration::from_secs(120));
    assert_eq!(
        config.auth.algorithms,
        vec![Algorithm::HS512, Algorithm::HS256]
    );
    assert_eq!(config.auth.leeway, Duration::ZERO);
    assert_eq!(
        config.auth.audience,
        Some(vec!["a".to_string(), "b".to_string()])
    );
    assert_eq!(config.auth.principal.id, "user.id");
    assert_eq!(config.auth.principal.roles, "realm_access.roles");
    assert_eq!(config.auth.principal.attr, Some(BTreeMap::new()));
    assert!(!config.policies.watch());
    assert_eq!(config.policies.evaluation, Evaluation::CerbosStrict);
    assert_eq!(config.limits.max_body_bytes, 1024);
    assert_eq!(config.limits.max_filter_terms, 7);
    assert_eq!(config.limits.header_timeout, Duration::from_millis(500));
    assert_eq!(config.limits.body_timeout, Duration::from_secs(2));
    assert_eq!(config.limits.max_connections, 3);
    assert_eq!(config.limits.max_upstream_requests, 5);
    assert_eq!(config.limits.workers, Some(2));
}

#[test]
fn anchors_aliases_and_merge_keys_work() {
    let (_d, config) = load_ok(&fixture("anchors.yaml"));
    let rules = &config.collections;
    assert_eq!(rules.len(), 3);
    assert_eq!(
        (rules[0].name.as_str(), rules[0].resource_kind.as_str()),
        ("hr-*", "hr_document")
    );
    // Merged from the first rule, two keys overridden.
    assert_eq!(
        (rules[1].name.as_str(), rules[1].resource_kind.as_str()),
        ("*", "document")
    );
    assert_eq!(rules[1].required_attrs, vec!["department", "region"]);
    assert!(rules[1].post_filter_only);
    assert_eq!(rules[1].stamp.get("owner"), Some(&StampSource::Id));
    // The list alias.
    assert_eq!(rules[2].required_attrs, vec!["department", "region"]);
    assert!(!rules[2].post_filter_only);
    assert_eq!(rules[2].attr_prefix, "metadata.");
}

#[test]
fn merge_keys_do_not_hide_unknown_keys() {
    let yaml = doc(&[("collections", "[{<<: {name: a, colour: red}}]")]);
    assert_eq!(
        only_problem(&load_err(&yaml)).kind,
        ConfigErrorKind::UnknownField
    );
}

// ---------------------------------------------------------------------------------------------
// Syntax and shape
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_top_level_key_is_reported_with_its_position() {
    let yaml = format!("{}colections: []\n", doc(&[]));
    let errors = load_err(&yaml);
    let problem = only_problem(&errors);
    assert_eq!(problem.kind, ConfigErrorKind::UnknownField);
    assert_eq!(problem.path, "colections");
    assert_eq!(problem.line, Some(5));
    assert_eq!(problem.column, Some(1));
}

#[test]
fn unknown_nested_key_is_reported_with_its_position() {
    let yaml = doc(&[(
        "upstream",
        "\n  kind: chroma\n  url: http://h:1\n  tiemout: 30s",
    )]);
    let line = yaml.lines().position(|l| l.contains("tiemout")).unwrap() + 1;
    let errors = load_err(&yaml);
    let problem = only_problem(&errors);
    assert_eq!(problem.kind, ConfigErrorKind::UnknownField);
    assert_eq!(problem.path, "upstream.tiemout");
    assert_eq!(problem.line, Some(line));
    assert_eq!(problem.column, Some(3));

    for (key, value, path) in [
        (
            "collections",
            "[{name: a}, {name: b, stamp: {}, requried_attrs: []}]",
            "collections[1].requried_attrs",
        ),
        (
            "auth",
            "{algorithms: [HS256], hs256_secret_env: S, principal: {ids: sub}}",
            "auth.principal.ids",
        ),
        (
            "upstream",
            "{kind: chroma, url: \"http://h:1\", tls: {ca: x}}",
            "upstream.tls.ca",
        ),
    ] {
        let errors = load_err(&doc(&[(key, value)]));
        let problem = only_problem(&errors);
        assert_eq!(problem.kind, ConfigErrorKind::UnknownField, "{value}");
        assert_eq!(problem.path, path);
        assert!(problem.line.is_some());
    }
}

#[test]
fn wrong_types_are_shape_errors_with_a_position() {
    for (key, value, path) in [
        ("listen", "[127.0.0.1:8080]", "listen"),
        (
            "policies",
            "{dir: policies, watch: maybe}",
            "policies.watch",
        ),
        ("limits", "{max_body_bytes: big}", "limits.max_body_bytes"),
        ("collections", "{name: a}", "collections"),
        (
            "collections",
            "[{name: a, required_attrs: dept}]",
            "collections[0].required_attrs",
        ),
        (
            "auth",
            "{algorithms: HS256, hs256_secret_env: S}",
            "auth.algorithms",
        ),
        (
            "auth",
            "{algorithms: [HS256], hs256_secret_env: S, audience: {a: b}}",
            "auth.audience",
        ),
        ("upstream", "chroma", "upstream"),
    ] {
        let errors = load_err(&doc(&[(key, value)]));
        let problem = only_problem(&errors);
        assert_eq!(problem.kind, ConfigErrorKind::InvalidType, "{key}: {value}");
        assert_eq!(problem.path, path, "{key}: {value}");
        assert!(problem.line.is_some(), "{key}: {value}");
    }
}

#[test]
fn yaml_syntax_errors_and_repeated_keys() {
    let problem = only_problem(&load_err("listen: [unclosed\n")).clone();
    assert_eq!(problem.kind, ConfigErrorKind::Syntax);
    assert!(problem.line.is_some());

    let yaml = format!("{}listen: 127.0.0.1:8081\n", doc(&[]));
    assert_eq!(only_problem(&load_err(&yaml)).kind, ConfigErrorKind::Syntax);
    let yaml = doc(&[(
        "collections",
        "[{name: a, stamp: {owner: principal.id, owner: principal.id}}]",
    )]);
    assert_eq!(only_problem(&load_err(&yaml)).kind, ConfigErrorKind::Syntax);

    let yaml = format!("{}---\n{}", doc(&[]), doc(&[]));
    assert_eq!(only_problem(&load_err(&yaml)).kind, ConfigErrorKind::Syntax);
}

#[test]
fn empty_file_reports_every_missing_section() {
    let errors = load_err("");
    assert!(errors
        .kinds()
        .iter()
        .all(|k| *k == ConfigErrorKind::MissingField));
    assert_eq!(
        paths(&errors),
        set(&["listen", "upstream", "auth", "policies"])
    );
}

#[test]
fn unreadable_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let errors = config::load(&dir.path().join("absent.yaml")).unwrap_err();
    assert_eq!(errors.kinds(), vec![ConfigErrorKind::Io]);
}

// ---------------------------------------------------------------------------------------------
// Semantic validation
// ---------------------------------------------------------------------------------------------

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let errors = load_err(&fixture("many_problems.yaml"));
    assert_eq!(
        paths(&errors),
        set(&[
            "listen",
            "mode",
            "upstream.kind",
            "upstream.url",
            "upstream.timeout",
            "auth.algorithms[1]",
            "auth.algorithms[2]",
            "auth.leeway",
            "policies.dir",
            "collections[0].name",
            "collections[0].stamp.owner",
            "limits.max_body_bytes",
            "limits.max_connections",
        ])
    );
    let kind_of = |path: &str| {
        errors
            .problems
            .iter()
            .find(|p| p.path == path)
            .map(|p| p.kind)
            .unwrap()
    };
    assert_eq!(kind_of("policies.dir"), ConfigErrorKind::FileAccess);
    assert_eq!(
        kind_of("collections[0].name"),
        ConfigErrorKind::MissingField
    );
    assert_eq!(kind_of("upstream.url"), ConfigErrorKind::InvalidValue);
    // Display: one line per problem.
    assert_eq!(errors.to_string().lines().count(), errors.problems.len());
}

#[test]
fn missing_required_keys_inside_sections() {
    let errors = load_err(&doc(&[
        ("upstream", "{timeout: 5s}"),
        ("auth", "{leeway: 1s}"),
        ("policies", "{watch: true}"),
        ("tls", "{client_ca_file: ca.pem}"),
    ]));
    assert_eq!(
        paths(&errors),
        set(&[
            "upstream.kind",
            "upstream.url",
            "auth.algorithms",
            "auth",
            "policies.dir",
            "tls.cert_file",
            "tls.key_file",
            "tls.client_ca_file",
        ])
    );
    let missing: BTreeSet<&str> = errors
        .problems
        .iter()
        .filter(|p| p.kind == ConfigErrorKind::MissingField)
        .map(|p| p.path.as_str())
        .collect();
    assert!(!missing.contains("tls.client_ca_file"));
    assert!(missing.contains("auth"));
}

#[test]
fn listen_addresses() {
    let (_d, config) = load_ok(&doc(&[
        ("listen", "\"[::1]:8080\""),
        ("admin_listen", "0.0.0.0:9090"),
    ]));
    assert_eq!(config.listen, "[::1]:8080".parse().unwrap());
    for bad in [
        "localhost:8080",
        "127.0.0.1",
        "\":8080\"",
        "127.0.0.1:99999",
    ] {
        assert_eq!(
            paths(&load_err(&doc(&[("listen", bad)]))),
            set(&["listen"]),
            "{bad}"
        );
    }
    for (listen, admin) in [
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("0.0.0.0:8080", "127.0.0.1:8080"),
    ] {
        let errors = load_err(&doc(&[("listen", listen), ("admin_listen", admin)]));
        assert_eq!(only_problem(&errors).kind, ConfigErrorKind::Conflict);
        assert_eq!(only_problem(&errors).path, "admin_listen");
    }
    load_ok(&doc(&[
        ("listen", "127.0.0.1:8080"),
        ("admin_listen", "127.0.0.2:8080"),
    ]));
}

#[test]
fn upstream_url_rules() {
    let url = |u: &str| format!("{{kind: chroma, url: \"{u}\"}}");
    for (given, stored) in [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        (
            "https://chroma.internal/prefix/",
            "https://chroma.internal/prefix",
        ),
    ] {
        let (_d, config) = load_ok(&doc(&[("upstream", &url(given))]));
        assert_eq!(config.upstream.url, stored);
    }
    for bad in [
        "ftp://127.0.0.1:8000",
        "ws://127.0.0.1:8000",
        "127.0.0.1:8000",
        "http://user:pw@127.0.0.1:8000",
        "http://127.0.0.1:8000/?tenant=x",
        "http://127.0.0.1:8000/#top",
        "",
    ] {
        let errors = load_err(&doc(&[("upstream", &url(bad))]));
        assert_eq!(paths(&errors), set(&["upstream.url"]), "{bad}");
        assert_eq!(errors.kinds(), vec![ConfigErrorKind::InvalidValue], "{bad}");
    }
}

#[test]
fn upstream_ca_file_needs_https() {
    let dir = site(&doc(&[(
        "upstream",
        "{kind: chroma, url: \"https://db:8000\", tls: {ca_file: ca.pem}}",
    )]));
    write_files(dir.path(), &["ca.pem"]);
    let config = config::load(&config_file(&dir)).unwrap();
    assert_eq!(
        config.upstream.ca_file,
        Some(std::path::absolute(dir.path()).unwrap().join("ca.pem"))
    );

    let dir = site(&doc(&[(
        "upstream",
        "{kind: chroma, url: \"http://db:8000\", tls: {ca_file: ca.pem}}",
    )]));
    write_files(dir.path(), &["ca.pem"]);
    let errors = config::load(&config_file(&dir)).unwrap_err();
    assert_eq!(only_problem(&errors).kind, ConfigErrorKind::Conflict);
    assert_eq!(only_problem(&errors).path, "upstream.tls.ca_file");
}

#[test]
fn jwks_ca_file_is_read_with_jwks_url_only() {
    let jwks = "jwks_url: \"https://idp.example.com/jwks\"";
    let dir = site(&doc(&[(
        "auth",
        &format!("{{algorithms: [ES256], {jwks}, jwks_ca_file: idp-ca.pem}}"),
    )]));
    write_files(dir.path(), &["idp-ca.pem"]);
    let config = config::load(&config_file(&dir)).unwrap();
    assert_eq!(
        config.auth.jwks_ca_file,
        Some(std::path::absolute(dir.path()).unwrap().join("idp-ca.pem"))
    );

    // Absent: the bundled roots.
    let (_d, config) = load_ok(&doc(&[(
        "auth",
        &format!("{{algorithms: [ES256], {jwks}}}"),
    )]));
    assert_eq!(config.auth.jwks_ca_file, None);

    // Missing file.
    let errors = load_err(&doc(&[(
        "auth",
        &format!("{{algorithms: [ES256], {jwks}, jwks_ca_file: nowhere.pem}}"),
    )]));
    assert_eq!(only_problem(&errors).kind, ConfigErrorKind::FileAccess);
    assert_eq!(only_problem(&errors).path, "auth.jwks_ca_file");

    // With another key source it would be silently unused.
    let dir = site(&doc(&[(
        "auth",
        "{algorithms: [HS256], hs256_secret_env: PATH, jwks_ca_file: idp-ca.pem}",
    )]));
    write_files(dir.path(), &["idp-ca.pem"]);
    let errors = config::load(&config_file(&dir)).unwrap_err();
    assert_eq!(only_problem(&errors).kind, ConfigErrorKind::Conflict);
    assert_eq!(only_problem(&errors).path, "auth.jwks_ca_file");
}

#[test]
fn algorithm_names() {
    let auth = |algs: &str| format!("{{algorithms: {algs}, hs256_secret_env: S}}");
    for (algs, bad) in [
        ("[none]", vec!["auth.algorithms[0]"]),
        ("[NONE, HS256]", vec!["auth.algorithms[0]"]),
        ("[HS256, hs384]", vec!["auth.algorithms[1]"]),
        ("[HS256, HS256]", vec!["auth.algorithms[1]"]),
        (
            "[HS256, XS1, none]",
            vec!["auth.algorithms[1]", "auth.algorithms[2]"],
        ),
        ("[]", vec!["auth.algorithms"]),
    ] {
        let errors = load_err(&doc(&[("auth", &auth(algs))]));
        assert_eq!(paths(&errors), set(&bad), "{algs}");
        assert!(
            errors
                .kinds()
                .iter()
                .all(|k| *k == ConfigErrorKind::InvalidValue),
            "{algs}"
        );
    }
}

#[test]
fn exactly_one_key_source() {
    let errors = load_err(&doc(&[("auth", "{algorithms: [HS256]}")]));
    assert_eq!(only_problem(&errors).path, "auth");
    assert_eq!(only_problem(&errors).kind, ConfigErrorKind::MissingField);

    let errors = load_err(&doc(&[(
        "auth",
        "{algorithms: [RS256], hs256_secret_env: S, jwks_url: \"https://idp/keys\"}",
    )]));
    assert!(errors
        .problems
        .iter()
        .any(|p| p.path == "auth" && p.kind == ConfigErrorKind::Conflict));
}

#[test]
fn algorithms_must_fit_the_key_source() {
    let jwks = "jwks_url: \"https://idp.example.com/.well-known/jwks.json\"";
    let (_d, config) = load_ok(&doc(&[(
        "auth",
        &format!("{{algorithms: [RS256, ES256, EdDSA], {jwks}}}"),
    )]));
    assert_eq!(
        config.auth.key,
        KeySource::JwksUrl("https://idp.example.com/.well-known/jwks.json".into())
    );

    // HMAC with a JWKS, a public key with the shared secret.
    let errors = load_err(&doc(&[(
        "auth",
        &format!("{{algorithms: [RS256, HS256], {jwks}}}"),
    )]));
    assert_eq!(paths(&errors), set(&["auth.algorithms[1]"]));
    assert_eq!(errors.kinds(), vec![ConfigErrorKind::Conflict]);
    let errors = load_err(&doc(&[(
        "auth",
        "{algorithms: [HS256, ES256, PS256], hs256_secret_env: S}",
    )]));
    assert_eq!(
        paths(&errors),
        set(&["auth.algorithms[1]", "auth.algorithms[2]"])
    );
    assert!(errors
        .kinds()
        .iter()
        .all(|k| *k == ConfigErrorKind::Conflict));
}

#[test]
fn public_key_file_must_hold_a_key_for_each_algorithm() {
    let with_keys = |auth: &str| {
        let dir = site(&doc(&[("auth", auth)]));
        fs::copy(fixture_path("ec_public.pem"), dir.path().join("ec.pem")).unwrap();
        fs::copy(
            fixture_path("ed25519_public.pem"),
            dir.path().join("ed.pem"),
        )
        .unwrap();
        fs::write(dir.path().join("junk.pem"), "no key here\n").unwrap();
        let result = config::load(&config_file(&dir));
        (dir, result)
    };
    let (dir, result) = with_keys("{algorithms: [ES256], public_key_file: ec.pem}");
    let config = result.unwrap();
    assert_eq!(
        config.auth.key,
        KeySource::PublicKeyFile(std::path::absolute(dir.path()).unwrap().join("ec.pem"))
    );
    let (_dir, result) = with_keys("{algorithms: [EdDSA], public_key_file: ed.pem}");
    assert!(result.is_ok());

    for auth in [
        "{algorithms: [RS256], public_key_file: ec.pem}",
        "{algorithms: [ES256], public_key_file: junk.pem}",
        "{algorithms: [EdDSA], public_key_file: ec.pem}",
        "{algorithms: [RS256, PS256, ES256], public_key_file: ec.pem}",
    ] {
        let (_dir, result) = with_keys(auth);
        let errors = result.unwrap_err();
        assert_eq!(paths(&errors), set(&["auth.public_key_file"]), "{auth}");
        assert_eq!(
            errors.kinds(),
            vec![ConfigErrorKind::InvalidValue],
            "{auth}"
        );
    }
    let (_dir, result) = with_keys("{algorithms: [ES256], public_key_file: missing.pem}");
    assert_eq!(
        result.unwrap_err().kinds(),
        vec![ConfigErrorKind::FileAccess]
    );
    let (_dir, result) = with_keys("{algorithms: [HS256], public_key_file: ec.pem}");
    assert_eq!(paths(&result.unwrap_err()), set(&["auth.algorithms[0]"]));
}

/// `vecgate check --config` and `vecgate serve` run one key check: a P-384 key configured
/// for ES256 is refused by both, with the same reason.
#[test]
fn check_and_serve_refuse_the_same_key_with_the_same_reason() {
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let dir = site(&doc(&[("auth", "{algorithms: [ES256], public_key_file: p384.pem}")]));
    let pem = dir.path().join("p384.pem");
    fs::write(&pem, p384.public_key_pem()).unwrap();

    let checked = config::load(&config_file(&dir)).unwrap_err();
    assert_eq!(paths(&checked), set(&["auth.public_key_file"]));
    let check_reason = checked.problems[0].reason.clone();

    let mut auth = config::load(&config_file(&site(&doc(&[])))).unwrap().auth;
    auth.algorithms = vec![vecgate::config::Algorithm::ES256];
    auth.key = KeySource::PublicKeyFile(std::path::absolute(&pem).unwrap());
    let served = vecgate::authn::Authenticator::from_config(&auth).unwrap_err();
    let vecgate::authn::AuthnError::Config(serve_reason) = served else {
        panic!("serve refused the key with {served:?}");
    };
    assert!(check_reason.ends_with("the key's curve does not match ES256"), "{check_reason}");
    assert_eq!(check_reason, serve_reason);

    // The same key for ES384 is accepted by both.
    let dir = site(&doc(&[("auth", "{algorithms: [ES384], public_key_file: p384.pem}")]));
    fs::write(dir.path().join("p384.pem"), p384.public_key_pem()).unwrap();
    let config = config::load(&config_file(&dir)).unwrap();
    assert!(vecgate::authn::Authenticator::from_config(&config.auth).is_ok());
}

#[test]
fn jwks_url_must_be_https() {
    for bad in [
        "http://idp/keys",
        "idp/keys",
        "https://u:p@idp/keys",
        "https://idp/keys#k",
    ] {
        let auth = format!("{{algorithms: [RS256], jwks_url: \"{bad}\"}}");
        let errors = load_err(&doc(&[("auth", &auth)]));
        assert_eq!(paths(&errors), set(&["auth.jwks_url"]), "{bad}");
    }
}

#[test]
fn secret_env_name_and_unset_variable() {
    let errors = load_err(&doc(&[(
        "auth",
        "{algorithms: [HS256], hs256_secret_env: \"MY-SECRET\"}",
    )]));
    assert_eq!(paths(&errors), set(&["auth.hs256_secret_env"]));

    // An unset variable loads (check runs offline) but is warned about.
    let auth = format!("{{algorithms: [HS256], hs256_secret_env: {UNSET_VAR}}}");
    let (_d, config) = load_ok(&doc(&[("auth", &auth)]));
    assert_eq!(config::warnings(&config).len(), 1);
    let auth = format!("{{algorithms: [HS256], hs256_secret_env: {SET_VAR}}}");
    let (_d, config) = load_ok(&doc(&[("auth", &auth)]));
    assert!(config::warnings(&config).is_empty());
}

#[test]
fn audience_forms() {
    let auth = |aud: &str| format!("{{algorithms: [HS256], hs256_secret_env: S, audience: {aud}}}");
    let (_d, config) = load_ok(&doc(&[("auth", &auth("one"))]));
    assert_eq!(config.auth.audience, Some(vec!["one".to_string()]));
    let (_d, config) = load_ok(&doc(&[("auth", &auth("[one, two]"))]));
    assert_eq!(
        config.auth.audience,
        Some(vec!["one".to_string(), "two".to_string()])
    );
    assert_eq!(
        paths(&load_err(&doc(&[("auth", &auth("[]"))]))),
        set(&["auth.audience"])
    );
    assert_eq!(
        paths(&load_err(&doc(&[("auth", &auth("[one, \"\"]"))]))),
        set(&["auth.audience[1]"])
    );
}

#[test]
fn claim_paths() {
    let auth = |p: &str| format!("{{algorithms: [HS256], hs256_secret_env: S, principal: {p}}}");
    let errors = load_err(&doc(&[(
        "auth",
        &auth("{id: \"\", roles: \"a..b\", attr: {team: \"x.\"}}"),
    )]));
    assert_eq!(
        paths(&errors),
        set(&[
            "auth.principal.id",
            "auth.principal.roles",
            "auth.principal.attr.team"
        ])
    );
}

#[test]
fn duration_forms() {
    let timeout = |t: &str| format!("{{kind: chroma, url: \"http://h:1\", timeout: {t}}}");
    for (text, want) in [
        ("500ms", Duration::from_millis(500)),
        ("30s", Duration::from_secs(30)),
        ("2m", Duration::from_secs(120)),
        ("1h", Duration::from_secs(3600)),
        ("1m30s", Duration::from_secs(90)),
    ] {
        let (_d, config) = load_ok(&doc(&[("upstream", &timeout(text))]));
        assert_eq!(config.upstream.timeout, want, "{text}");
    }
    for bad in [
        "30",
        "\"30\"",
        "1.5s",
        "30 sec",
        "ten seconds",
        "0s",
        "-5s",
        "\"\"",
    ] {
        let errors = load_err(&doc(&[("upstream", &timeout(bad))]));
        assert_eq!(paths(&errors), set(&["upstream.timeout"]), "{bad}");
        assert_eq!(errors.kinds(), vec![ConfigErrorKind::InvalidValue], "{bad}");
    }
    let errors = load_err(&doc(&[("limits", "{header_timeout: 0ms}")]));
    assert_eq!(paths(&errors), set(&["limits.header_timeout"]));
}

#[test]
fn limits_must_be_positive() {
    let errors = load_err(&doc(&[(
        "limits",
        "{max_body_bytes: 0, max_filter_terms: -1, header_timeout: 10, max_connections: 0, workers: 0}",
    )]));
    assert_eq!(
        paths(&errors),
        set(&[
            "limits.max_body_bytes",
            "limits.max_filter_terms",
            "limits.header_timeout",
            "limits.max_connections",
            "limits.workers",
        ])
    );
}

#[test]
fn stamp_forms() {
    let rules = "[{name: a, stamp: {owner: principal.id, team: principal.attr.team}}]";
    let (_d, config) = load_ok(&doc(&[("collections", rules)]));
    assert_eq!(
        config.collections[0].stamp.get("owner"),
        Some(&StampSource::Id)
    );
    assert_eq!(
        config.collections[0].stamp.get("team"),
        Some(&StampSource::Attr("team".into()))
    );

    let rules = "[{name: a, stamp: {a: principal.roles, b: principal.attr., c: request.principal.id, d: sub}}, {name: b, stamp: {e: principal.attr.x}}]";
    let errors = load_err(&doc(&[("collections", rules)]));
    assert_eq!(
        paths(&errors),
        set(&[
            "collections[0].stamp.a",
            "collections[0].stamp.b",
            "collections[0].stamp.c",
            "collections[0].stamp.d",
        ])
    );

    // With an explicit attribute mapping, a stamp must name a mapped attribute.
    let auth = "{algorithms: [HS256], hs256_secret_env: S, principal: {attr: {team: grp}}}";
    let rules = "[{name: a, stamp: {t: principal.attr.team, r: principal.attr.region}}]";
    let errors = load_err(&doc(&[("auth", auth), ("collections", rules)]));
    assert_eq!(paths(&errors), set(&["collections[0].stamp.r"]));
    assert_eq!(errors.kinds(), vec![ConfigErrorKind::Conflict]);
}

#[test]
fn collection_rule_checks() {
    assert_eq!(
        paths(&load_err(&doc(&[("collections", "[]")]))),
        set(&["collections"])
    );
    let rules =
        "[{name: \"\"}, {name: b, resource_kind: \"\"}, {name: c, required_attrs: [x, \"\", x]}]";
    assert_eq!(
        paths(&load_err(&doc(&[("collections", rules)]))),
        set(&[
            "collections[0].name",
            "collections[1].resource_kind",
            "collections[2].required_attrs[1]",
            "collections[2].required_attrs[2]",
        ])
    );
    // Rules after a catch-all never apply: a warning, not an error.
    let (_d, config) = load_ok(&doc(&[(
        "collections",
        "[{name: \"docs-*\"}, {name: docs-a}, {name: \"*\"}, {name: z}]",
    )]));
    assert_eq!(config::warnings(&config).len(), 2);
    let (_d, config) = load_ok(&doc(&[(
        "collections",
        "[{name: docs-a}, {name: \"docs-*\"}, {name: \"*\"}]",
    )]));
    assert!(config::warnings(&config).is_empty());
}

#[test]
fn audit_forms() {
    let (_d, config) = load_ok(&doc(&[]));
    assert_eq!(config.audit, AuditConfig::Stdout);
    let (_d, config) = load_ok(&doc(&[("audit", "{path: \"-\"}")]));
    assert_eq!(config.audit, AuditConfig::Stdout);
    let (_d, config) = load_ok(&doc(&[("audit", "{}")]));
    assert_eq!(config.audit, AuditConfig::Stdout);
    let (_d, config) = load_ok(&doc(&[("audit", "{path: off}")]));
    assert_eq!(config.audit, AuditConfig::Off);
    let (dir, config) = load_ok(&doc(&[("audit", "{path: logs.jsonl}")]));
    assert_eq!(
        config.audit,
        AuditConfig::File(std::path::absolute(dir.path()).unwrap().join("logs.jsonl"))
    );
    let (_d, config) = load_ok(&doc(&[("audit", "{path: /tmp/vecgate-audit-test.jsonl}")]));
    assert_eq!(
        config.audit,
        AuditConfig::File("/tmp/vecgate-audit-test.jsonl".into())
    );

    let errors = load_err(&doc(&[("audit", "{path: no-such-dir/audit.jsonl}")]));
    assert_eq!(errors.kinds(), vec![ConfigErrorKind::FileAccess]);
    assert_eq!(paths(&errors), set(&["audit.path"]));
    let errors = load_err(&doc(&[("audit", "{path: policies}")]));
    assert_eq!(paths(&errors), set(&["audit.path"]));
    let errors = load_err(&doc(&[("audit", "{path: \"\"}")]));
    assert_eq!(errors.kinds(), vec![ConfigErrorKind::InvalidValue]);
}

#[test]
fn audit_flush_interval_buffers_lines_and_refuses_on_failure_deny() {
    let (_d, config) = load_ok(&doc(&[("audit", "{path: \"-\"}")]));
    assert_eq!(config.audit_flush_interval, None, "each line written as its request ends");
    let (_d, config) = load_ok(&doc(&[("audit", "{path: \"-\", flush_interval: 0s}")]));
    assert_eq!(config.audit_flush_interval, None);
    let (_d, config) = load_ok(&doc(&[("audit", "{path: \"-\", flush_interval: 250ms}")]));
    assert_eq!(config.audit_flush_interval, Some(std::time::Duration::from_millis(250)));
    let (_d, config) = load_ok(&doc(&[("audit", "{flush_interval: 1s, on_failure: continue}")]));
    assert_eq!(config.audit_flush_interval, Some(std::time::Duration::from_secs(1)));
    // deny answers only once the request's line is written: no buffer can promise that.
    let errors = load_err(&doc(&[("audit", "{flush_interval: 1s, on_failure: deny}")]));
    assert_eq!(paths(&errors), set(&["audit.flush_interval"]));
    let (_d, config) = load_ok(&doc(&[("audit", "{flush_interval: 0s, on_failure: deny}")]));
    assert_eq!(config.audit_flush_interval, None);
    let errors = load_err(&doc(&[("audit", "{flush_interval: 5}")]));
    assert_eq!(paths(&errors), set(&["audit.flush_interval"]));
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    fs::create_dir_all(conf.join("tls")).unwrap();
    fs::create_dir_all(conf.join("rules")).unwrap();
    fs::create_dir_all(dir.path().join("shared")).unwrap();
    write_files(&conf.join("tls"), &["c.pem", "k.pem"]);
    fs::copy(
        fixture_path("ec_public.pem"),
        dir.path().join("shared/ec.pem"),
    )
    .unwrap();
    let abs_rules = std::path::absolute(conf.join("rules")).unwrap();
    let yaml = doc(&[
        ("tls", "{cert_file: tls/c.pem, key_file: ./tls/k.pem}"),
        (
            "auth",
            "{algorithms: [ES256], public_key_file: ../shared/ec.pem}",
        ),
        ("policies", &format!("{{dir: \"{}\"}}", abs_rules.display())),
        ("audit", "{path: audit.jsonl}"),
    ]);
    fs::write(conf.join("vecgate.yaml"), &yaml).unwrap();
    let config = config::load(&conf.join("vecgate.yaml")).unwrap();
    let base = std::path::absolute(&conf).unwrap();
    let tls = config.tls.unwrap();
    assert_eq!(tls.cert_file, base.join("tls/c.pem"));
    assert_eq!(tls.key_file, base.join("./tls/k.pem"));
    assert_eq!(
        config.auth.key,
        KeySource::PublicKeyFile(base.join("../shared/ec.pem"))
    );
    assert_eq!(config.policies.dir(), Some(abs_rules.as_path()));
    assert_eq!(config.audit, AuditConfig::File(base.join("audit.jsonl")));

    // parse() resolves against the directory it is given.
    let config = config::parse(&doc(&[]), dir.path()).unwrap_err();
    assert_eq!(paths(&config), set(&["policies.dir"]));
    let config = config::parse(&doc(&[("policies", "{dir: rules}")]), &conf).unwrap();
    assert_eq!(config.policies.dir(), Some(conf.join("rules").as_path()));
}

#[test]
fn missing_files_are_file_access_problems() {
    let errors = load_err(&doc(&[
        (
            "tls",
            "{cert_file: c.pem, key_file: policies, client_ca_file: ca.pem}",
        ),
        ("policies", "{dir: vecgate.yaml}"),
    ]));
    assert_eq!(
        paths(&errors),
        set(&[
            "tls.cert_file",
            "tls.key_file",
            "tls.client_ca_file",
            "policies.dir"
        ])
    );
    assert!(errors
        .kinds()
        .iter()
        .all(|k| *k == ConfigErrorKind::FileAccess));
}

#[test]
fn mode_and_kind_names() {
    assert_eq!(
        paths(&load_err(&doc(&[("mode", "Enforce")]))),
        set(&["mode"])
    );
    assert_eq!(
        paths(&load_err(&doc(&[(
            "upstream",
            "{kind: Chroma, url: \"http://h:1\"}"
        )]))),
        set(&["upstream.kind"])
    );
}

// ---------------------------------------------------------------------------------------------
// vecgate check --config
// ---------------------------------------------------------------------------------------------

#[test]
fn check_config_exit_codes() {
    let good = site(&fixture("minimal.yaml"));
    assert_eq!(check_config::run(&config_file(&good)), 0);

    let bad_config = site(&fixture("many_problems.yaml"));
    assert_eq!(check_config::run(&config_file(&bad_config)), 1);

    let bad_policies = site(&fixture("minimal.yaml"));
    fs::write(
        bad_policies.path().join("policies/broken.yaml"),
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy: {resource: x, version: default, rules: [{actions: [read], effect: EFFECT_MAYBE, roles: [user]}]}\n",
    )
    .unwrap();
    assert_eq!(check_config::run(&config_file(&bad_policies)), 1);

    let missing = good.path().join("absent.yaml");
    assert_eq!(check_config::run(&missing), 1);
}

#[test]
fn check_config_warns_about_resource_kinds_no_policy_covers() {
    let rules = "[{name: \"hr-*\", resource_kind: hr_document}, {name: \"*\"}]";
    let (dir, config) = load_ok(&doc(&[("collections", rules)]));
    let set = vecgate::policy::load::load_dir(config.policies.dir().unwrap()).unwrap();
    let warnings = check_config::uncovered_resource_kinds(&config, &set);
    assert_eq!(warnings.len(), 1);
    // Still valid: a warning does not fail the check.
    assert_eq!(check_config::run(&config_file(&dir)), 0);
}

#[test]
fn policies_evaluation_takes_each_mode_and_refuses_others() {
    for (text, mode) in [
        ("cerbos", Evaluation::Cerbos),
        ("cerbos_strict", Evaluation::CerbosStrict),
        ("fail_closed", Evaluation::FailClosed),
    ] {
        let (_d, config) = load_ok(&doc(&[("policies", &format!("{{dir: policies, evaluation: {text}}}"))]));
        assert_eq!(config.policies.evaluation, mode);
        assert_eq!(config.policies.planner_options().evaluation, mode);
    }
    let errors = load_err(&doc(&[("policies", "{dir: policies, evaluation: strict}")]));
    let p = only_problem(&errors);
    assert_eq!((p.path.as_str(), p.kind), ("policies.evaluation", ConfigErrorKind::InvalidValue));
}

/// `strict_evaluation` changed meaning with the new default (an erroring DENY is now ignored,
/// as in Cerbos): both of its values are refused, with the replacement named.
#[test]
fn the_former_strict_evaluation_key_is_refused_with_its_replacement() {
    for value in ["true", "false"] {
        let errors = load_err(&doc(&[("policies", &format!("{{dir: policies, strict_evaluation: {value}}}"))]));
        let p = only_problem(&errors);
        assert_eq!(p.path, "policies.strict_evaluation");
        assert_eq!(p.kind, ConfigErrorKind::InvalidValue);
        assert!(p.reason.contains("evaluation: cerbos_strict") && p.reason.contains("evaluation: fail_closed"), "{}", p.reason);
    }
}

#[test]
fn a_pdp_is_the_alternative_to_a_policy_directory() {
    let (_d, config) = load_ok(&doc(&[("policies", "{pdp: {url: \"http://127.0.0.1:3592/\"}}")]));
    match &config.policies.source {
        PolicySource::Pdp(pdp) => assert_eq!(
            pdp,
            &PdpConfig {
                url: "http://127.0.0.1:3592".into(),
                timeout: Duration::from_secs(2),
                plan_cache_ttl: Duration::from_secs(10),
                ca_file: None,
                send_token: false,
            }
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(config.policies.dir(), None);
    assert!(!config.policies.watch());
    let (_d, config) = load_ok(&doc(&[("policies", "{pdp: {url: \"https://pdp:3592\", timeout: 500ms, plan_cache_ttl: 0s, send_token: true}}")]));
    let PolicySource::Pdp(pdp) = &config.policies.source else { panic!() };
    assert_eq!((pdp.timeout, pdp.plan_cache_ttl, pdp.send_token), (Duration::from_millis(500), Duration::ZERO, true));

    // Exactly one source; the directory's settings do not apply to a PDP.
    let both = load_err(&doc(&[("policies", "{dir: policies, pdp: {url: \"http://pdp:3592\"}}")]));
    assert_eq!(only_problem(&both).kind, ConfigErrorKind::Conflict);
    let neither = load_err(&doc(&[("policies", "{watch: true}")]));
    assert_eq!(paths(&neither), set(&["policies.dir"]));
    let extra = load_err(&doc(&[("policies", "{watch: false, evaluation: cerbos, pdp: {url: \"http://pdp:3592\"}}")]));
    assert_eq!(paths(&extra), set(&["policies.watch", "policies.evaluation"]));
    let bad = load_err(&doc(&[("policies", "{pdp: {url: \"ftp://pdp\", timeout: 0s}}")]));
    assert_eq!(paths(&bad), set(&["policies.pdp.url", "policies.pdp.timeout"]));
    let no_url = load_err(&doc(&[("policies", "{pdp: {}}")]));
    assert_eq!(paths(&no_url), set(&["policies.pdp.url"]));
}

#[test]
fn admin_explain_is_off_by_default_and_needs_the_admin_listener() {
    let (_dir, config) = load_ok(&doc(&[]));
    assert!(!config.admin_explain);
    let (_dir, config) = load_ok(&doc(&[("admin_listen", "127.0.0.1:9090"), ("admin_explain", "true")]));
    assert!(config.admin_explain);
    let errors = load_err(&doc(&[("admin_explain", "true")]));
    assert_eq!(only_problem(&errors).kind, ConfigErrorKind::Conflict);
    assert_eq!(only_problem(&errors).path, "admin_explain");
    let errors = load_err(&doc(&[("admin_listen", "127.0.0.1:9090"), ("admin_explain", "yes please")]));
    assert!(paths(&errors).contains("admin_explain"), "{errors}");
}
