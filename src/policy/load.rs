//! Loading a policy directory into a validated [`PolicySet`](super::model::PolicySet).
//!
//! Each document is parsed into raw types that mirror Cerbos' policy schema (unknown keys are
//! rejected), then compiled: CEL is parsed, imports are resolved, variables are ordered, and
//! the whole set is cross-checked. Any problem in any file fails the whole load, and every
//! problem found is reported.

use super::cel;
use super::model::{
    Condition, Definitions, DerivedRole, Effect, PolicySet, PrincipalAction, PrincipalPolicy,
    PrincipalRule, ResourcePolicy, ResourceRule, RolePolicy, RoleRule, ScopePermissions,
};
use crate::plan::{Expr, Value};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_yaml_ng::Value as YValue;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// The only `apiVersion` Cerbos defines.
const API_VERSION: &str = "api.cerbos.dev/v1";

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// What kind of problem a [`Problem`] is, so callers and tests need not parse messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// A file or directory could not be read.
    Io,
    /// Not valid YAML or JSON (including an undefined alias or a bad merge key).
    Syntax,
    /// A mapping has the same key twice.
    DuplicateKey,
    /// A key the policy format does not define.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A value of the wrong type, or one that breaks a format rule (name pattern, enum value,
    /// empty list, repeated list item, several `match` operators, …).
    InvalidValue,
    /// `apiVersion` is not `api.cerbos.dev/v1`.
    ApiVersion,
    /// A document has no policy body, or more than one.
    PolicyType,
    /// A CEL expression does not compile.
    Cel,
    /// A feature the format defines but the engine does not run (`condition.script`).
    Unsupported,
    /// A variable or constant has more than one definition for the same policy.
    DuplicateDefinition,
    /// A reference to a variable that is not defined.
    UndefinedVariable,
    /// A reference to a constant that is not defined.
    UndefinedConstant,
    /// Variables that reference each other in a cycle (or a variable that uses itself).
    VariableCycle,
    /// An import (derived roles, variables or constants) that names nothing loaded.
    MissingImport,
    /// A rule names a derived role that no imported set defines.
    UndefinedDerivedRole,
    /// A rule names a derived role that more than one imported set defines.
    AmbiguousDerivedRole,
    /// Two policies with the same identity (kind, name, version, scope).
    DuplicatePolicy,
    /// Two rules, derived-role definitions or principal-rule resources in one policy share a
    /// name.
    DuplicateName,
    /// A resource rule with neither `roles` nor `derivedRoles`.
    NoRoles,
    /// A scoped policy whose parent scope has no matching policy.
    MissingAncestor,
    /// Resource and principal policies in one scope disagree on `scopePermissions`.
    ScopePermissionsConflict,
}

/// One problem found while loading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the policy directory (or the name given to
    /// [`load_documents`]).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    pub kind: ProblemKind,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.reason)
    }
}

/// Every problem that stopped a policy set from loading.
#[derive(Debug, thiserror::Error)]
#[error("{}", render_problems(&self.problems))]
pub struct LoadErrors {
    pub problems: Vec<Problem>,
}

impl LoadErrors {
    /// The kinds of all problems, in report order.
    pub fn kinds(&self) -> Vec<ProblemKind> {
        self.problems.iter().map(|p| p.kind).collect()
    }
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads every policy under `dir` (recursively).
///
/// Reads `*.yaml`, `*.yml` and `*.json`. Skips Cerbos test suites (`*_test.{yaml,yml,json}`),
/// `testdata` directories and hidden entries. Symlinks are followed and each real file is
/// read once, so a Kubernetes ConfigMap mount (`x.yaml -> ..data/x.yaml`,
/// `..data -> ..<timestamp>`) loads each policy exactly once.
pub fn load_dir(dir: &Path) -> Result<PolicySet, LoadErrors> {
    let mut walker = Walker::default();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => walker.walk(dir, ""),
        Ok(_) => walker
            .problems
            .push(io_problem(dir.display().to_string(), "not a directory")),
        Err(e) => walker
            .problems
            .push(io_problem(dir.display().to_string(), &e.to_string())),
    }
    load(&walker.files, walker.problems)
}

/// Loads policies from memory: `(file name, contents)` pairs. Same rules as [`load_dir`],
/// without the file-name filtering.
pub fn load_documents(docs: &[(String, String)]) -> Result<PolicySet, LoadErrors> {
    load(docs, Vec::new())
}

// ---------------------------------------------------------------------------------------------
// Directory walk
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Walker {
    files: Vec<(String, String)>,
    problems: Vec<Problem>,
    seen_dirs: HashSet<PathBuf>,
    seen_files: HashSet<PathBuf>,
}

fn io_problem(file: String, reason: &str) -> Problem {
    Problem {
        file,
        line: None,
        column: None,
        kind: ProblemKind::Io,
        reason: reason.to_string(),
    }
}

impl Walker {
    fn walk(&mut self, dir: &Path, rel: &str) {
        // Symlinked directories may form loops; visit each real directory once.
        if let Ok(real) = dir.canonicalize() {
            if !self.seen_dirs.insert(real) {
                return;
            }
        }
        let shown = if rel.is_empty() {
            ".".to_string()
        } else {
            rel.to_string()
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return self.problems.push(io_problem(shown, &e.to_string())),
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => names.push(entry.file_name().to_string_lossy().into_owned()),
                Err(e) => self
                    .problems
                    .push(io_problem(shown.clone(), &e.to_string())),
            }
        }
        names.sort();
        for name in names {
            if name.starts_with('.') {
                continue;
            }
            let path = dir.join(&name);
            let rel_name = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.problems.push(io_problem(rel_name, &e.to_string()));
                    continue;
                }
            };
            if meta.is_dir() {
                if name != "testdata" {
                    self.walk(&path, &rel_name);
                }
            } else if meta.is_file() && is_policy_file_name(&name) {
                if let Ok(real) = path.canonicalize() {
                    if !self.seen_files.insert(real) {
                        continue;
                    }
                }
                match std::fs::read_to_string(&path) {
                    Ok(text) => self.files.push((rel_name, text)),
                    Err(e) => self.problems.push(io_problem(rel_name, &e.to_string())),
                }
            }
        }
    }
}

fn is_policy_file_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".yaml", ".yml", ".json"].iter().any(|ext| {
        lower
            .strip_suffix(ext)
            .is_some_and(|stem| !stem.is_empty() && !stem.ends_with("_test"))
    })
}

// ---------------------------------------------------------------------------------------------
// Problem collection and positions
// ---------------------------------------------------------------------------------------------

/// A step in a path into a YAML document.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A path into a YAML document, e.g. `resourcePolicy.rules[2].condition`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct YPath(Vec<Seg>);

impl YPath {
    fn k(&self, key: &str) -> YPath {
        let mut v = self.0.clone();
        v.push(Seg::Key(key.to_string()));
        YPath(v)
    }

    fn i(&self, index: usize) -> YPath {
        let mut v = self.0.clone();
        v.push(Seg::Index(index));
        YPath(v)
    }
}

impl fmt::Display for YPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if n == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// A document: file index and document index within the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct At {
    file: usize,
    doc: usize,
}

struct Pending {
    file: usize,
    /// Document and path to locate, when the position is not yet known.
    locate: Option<(usize, YPath)>,
    line: Option<usize>,
    column: Option<usize>,
    kind: ProblemKind,
    reason: String,
}

#[derive(Default)]
struct Sink {
    pending: Vec<Pending>,
}

impl Sink {
    /// A problem at `path` in a document; its line is found later.
    fn at(&mut self, at: At, path: &YPath, kind: ProblemKind, reason: String) {
        let reason = one_line(&reason);
        let reason = if path.0.is_empty() {
            reason
        } else {
            format!("{path}: {reason}")
        };
        self.pending.push(Pending {
            file: at.file,
            locate: Some((at.doc, path.clone())),
            line: None,
            column: None,
            kind,
            reason,
        });
    }

    fn located(
        &mut self,
        file: usize,
        pos: Option<(usize, usize)>,
        kind: ProblemKind,
        reason: String,
    ) {
        self.pending.push(Pending {
            file,
            locate: None,
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            kind,
            reason: one_line(&reason),
        });
    }

    fn finish(self, files: &[(String, String)]) -> Vec<Problem> {
        let mut cache: HashMap<(usize, usize, String), Option<(usize, usize)>> = HashMap::new();
        self.pending
            .into_iter()
            .map(|p| {
                let (name, text) = files
                    .get(p.file)
                    .map(|(n, t)| (n.clone(), t.as_str()))
                    .unwrap_or_default();
                let (mut line, mut column) = (p.line, p.column);
                if let Some((doc, path)) = &p.locate {
                    let pos = *cache
                        .entry((p.file, *doc, path.to_string()))
                        .or_insert_with(|| locate(text, *doc, &path.0));
                    line = pos.map(|p| p.0);
                    column = pos.map(|p| p.1);
                }
                Problem {
                    file: name,
                    line,
                    column,
                    kind: p.kind,
                    reason: p.reason,
                }
            })
            .collect()
    }
}

/// A reason on one line, so that a report has one problem per line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The marker a probe uses to recognise its own error.
const PROBE_HIT: &str = "vecgate-probe-hit";

/// Finds the line and column of the node at `path` in document `doc`: re-parses the document
/// with a visitor that fails exactly at that node, and reads the position from the error.
/// Falls back to the nearest ancestor that exists in the text (merged or aliased content may
/// not appear at its path).
fn locate(text: &str, doc: usize, path: &[Seg]) -> Option<(usize, usize)> {
    for n in (0..=path.len()).rev() {
        let d = serde_yaml_ng::Deserializer::from_str(text).nth(doc)?;
        let prefix = path.get(..n).unwrap_or_default();
        if let Err(e) = (Probe { path: prefix }).deserialize(d) {
            if e.to_string().contains(PROBE_HIT) {
                if let Some(l) = e.location() {
                    return Some((l.line(), l.column()));
                }
            }
        }
    }
    None
}

struct Probe<'p> {
    path: &'p [Seg],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(ProbeVisitor { path: self.path })
    }
}

struct ProbeVisitor<'p> {
    path: &'p [Seg],
}

impl ProbeVisitor<'_> {
    /// A scalar: the target if the path ends here; otherwise the path does not exist.
    fn leaf<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(PROBE_HIT))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for ProbeVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(PROBE_HIT));
        };
        while let Some(key) = map.next_key::<YValue>()? {
            if matches!(first, Seg::Key(k) if key.as_str() == Some(k.as_str())) {
                return map.next_value_seed(Probe { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(PROBE_HIT));
        };
        let mut i = 0;
        loop {
            if matches!(first, Seg::Index(n) if *n == i) {
                return seq.next_element_seed(Probe { path: rest }).map(|_| ());
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
}

/// Walks a document and fails at the second occurrence of a repeated mapping key, so the
/// error carries that key's position.
struct DupFinder;

impl<'de> DeserializeSeed<'de> for DupFinder {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(DupVisitor)
    }
}

struct DupVisitor;

impl<'de> Visitor<'de> for DupVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Vec::new();
        while map.next_key_seed(KeyCheck { seen: &mut seen })?.is_some() {
            map.next_value_seed(DupFinder)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(DupFinder)?.is_some() {}
        Ok(())
    }
}

struct KeyCheck<'s> {
    seen: &'s mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for KeyCheck<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(KeyVisitor { seen: self.seen })
    }
}

struct KeyVisitor<'s> {
    seen: &'s mut Vec<String>,
}

impl KeyVisitor<'_> {
    fn check<E: de::Error>(self, key: String) -> Result<(), E> {
        if self.seen.contains(&key) {
            return Err(E::custom(PROBE_HIT));
        }
        self.seen.push(key);
        Ok(())
    }
}

impl<'de> Visitor<'de> for KeyVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.check(format!("b:{v}"))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.check(format!("n:{v}"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.check(format!("n:{v}"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.check(format!("n:{v}"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.check(format!("s:{v}"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.check("null".to_string())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.check("null".to_string())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// A serde_yaml_ng message without its trailing " at line N column M".
fn yaml_message(e: &serde_yaml_ng::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) if e.location().is_some() => msg[..i].to_string(),
        _ => msg,
    }
}

fn yaml_pos(e: &serde_yaml_ng::Error) -> Option<(usize, usize)> {
    e.location().map(|l| (l.line(), l.column()))
}

/// The kind of a schema (typed deserialization) error, from serde's wording.
fn schema_error_kind(msg: &str) -> ProblemKind {
    if msg.contains("unknown field") {
        ProblemKind::UnknownField
    } else if msg.contains("missing field") {
        ProblemKind::MissingField
    } else if msg.contains("duplicate field") || msg.contains("duplicate entry") {
        ProblemKind::DuplicateKey
    } else {
        ProblemKind::InvalidValue
    }
}

// ---------------------------------------------------------------------------------------------
// Raw policy types (the file format)
// ---------------------------------------------------------------------------------------------

type List<T> = Option<Vec<T>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicy {
    api_version: Option<String>,
    disabled: Option<bool>,
    // `description`, `metadata`, `$schema`, `schemas` and `ignoreWhen` are checked for shape
    // and otherwise ignored.
    #[allow(dead_code)]
    description: Option<String>,
    #[allow(dead_code)]
    metadata: Option<RawMetadata>,
    #[serde(rename = "$schema")]
    #[allow(dead_code)]
    json_schema: Option<String>,
    /// Deprecated top-level variables.
    variables: Option<BTreeMap<String, String>>,
    resource_policy: Option<RawResourcePolicy>,
    principal_policy: Option<RawPrincipalPolicy>,
    derived_roles: Option<RawDerivedRoles>,
    role_policy: Option<RawRolePolicy>,
    export_variables: Option<RawExportVariables>,
    export_constants: Option<RawExportConstants>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct RawMetadata {
    annotations: Option<BTreeMap<String, String>>,
    hash: Option<YValue>,
    source_file: Option<String>,
    store_identifer: Option<String>,
    store_identifier: Option<String>,
    source_attributes: Option<YValue>,
}

#[derive(Clone, Copy, Deserialize)]
enum RawEffect {
    #[serde(rename = "EFFECT_ALLOW")]
    Allow,
    #[serde(rename = "EFFECT_DENY")]
    Deny,
}

#[derive(Clone, Copy, Deserialize, PartialEq, Eq)]
enum RawScopePermissions {
    #[serde(rename = "SCOPE_PERMISSIONS_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "SCOPE_PERMISSIONS_OVERRIDE_PARENT")]
    OverrideParent,
    #[serde(rename = "SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS")]
    RequireParentalConsentForAllows,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawVariables {
    import: List<String>,
    local: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConstants {
    import: List<String>,
    local: Option<BTreeMap<String, YValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCondition {
    #[serde(rename = "match")]
    matcher: Option<RawMatch>,
    script: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMatch {
    all: Option<RawExprList>,
    any: Option<RawExprList>,
    none: Option<RawExprList>,
    expr: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawExprList {
    of: List<RawMatch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOutput {
    expr: Option<String>,
    when: Option<RawOutputWhen>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOutputWhen {
    rule_activated: Option<String>,
    condition_not_met: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct RawSchemas {
    principal_schema: Option<RawSchema>,
    resource_schema: Option<RawSchema>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct RawSchema {
    #[serde(rename = "ref")]
    reference: String,
    ignore_when: Option<RawIgnoreWhen>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct RawIgnoreWhen {
    actions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawResourcePolicy {
    resource: Option<String>,
    version: Option<String>,
    import_derived_roles: List<String>,
    rules: List<RawResourceRule>,
    scope: Option<String>,
    schemas: Option<RawSchemas>,
    variables: Option<RawVariables>,
    scope_permissions: Option<RawScopePermissions>,
    constants: Option<RawConstants>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawResourceRule {
    actions: List<String>,
    derived_roles: List<String>,
    roles: List<String>,
    condition: Option<RawCondition>,
    effect: Option<RawEffect>,
    name: Option<String>,
    output: Option<RawOutput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPrincipalPolicy {
    principal: Option<String>,
    version: Option<String>,
    rules: List<RawPrincipalRule>,
    scope: Option<String>,
    variables: Option<RawVariables>,
    scope_permissions: Option<RawScopePermissions>,
    constants: Option<RawConstants>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPrincipalRule {
    resource: Option<String>,
    actions: List<RawPrincipalAction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPrincipalAction {
    action: Option<String>,
    condition: Option<RawCondition>,
    effect: Option<RawEffect>,
    name: Option<String>,
    output: Option<RawOutput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDerivedRoles {
    name: Option<String>,
    definitions: List<RawRoleDef>,
    variables: Option<RawVariables>,
    constants: Option<RawConstants>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRoleDef {
    name: Option<String>,
    parent_roles: List<String>,
    condition: Option<RawCondition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRolePolicy {
    role: Option<String>,
    version: Option<String>,
    parent_roles: List<String>,
    scope: Option<String>,
    rules: List<RawRoleRule>,
    scope_permissions: Option<RawScopePermissions>,
    variables: Option<RawVariables>,
    constants: Option<RawConstants>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRoleRule {
    resource: Option<String>,
    allow_actions: List<String>,
    condition: Option<RawCondition>,
    name: Option<String>,
    output: Option<RawOutput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawExportVariables {
    name: Option<String>,
    definitions: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawExportConstants {
    name: Option<String>,
    definitions: Option<BTreeMap<String, YValue>>,
}

// ---------------------------------------------------------------------------------------------
// Format rules (Cerbos' proto validation)
// ---------------------------------------------------------------------------------------------

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `^\w+$`
fn valid_version(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_word)
}

/// `^[\w\-\.]+$`: derived-role names, import names, export names.
fn valid_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| is_word(c) || c == '-' || c == '.')
}

/// `^([a-zA-Z][\w@\.\-]*)*$`: rule names.
fn valid_rule_name(s: &str) -> bool {
    let mut cs = s.chars();
    match cs.next() {
        None => true,
        Some(c) => c.is_ascii_alphabetic() && cs.all(|c| is_word(c) || "@.-".contains(c)),
    }
}

/// `^[^!*?\[\]{}]+$`: resource kinds, principal ids and role names of policies.
fn valid_policy_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| "!*?[]{}".contains(c))
}

/// `^(^$|\.|[0-9a-zA-Z][\w\-]*(\.\w[\w\-]*)*)$`
fn valid_scope(s: &str) -> bool {
    if s.is_empty() || s == "." {
        return true;
    }
    s.split('.').enumerate().all(|(i, seg)| {
        let mut cs = seg.chars();
        match cs.next() {
            None => false,
            Some(c) => {
                (if i == 0 {
                    c.is_ascii_alphanumeric()
                } else {
                    is_word(c)
                }) && cs.all(|c| is_word(c) || c == '-')
            }
        }
    })
}

fn non_empty(s: &str) -> bool {
    !s.is_empty()
}

/// The parent scopes of `scope`, nearest first, ending with the root `""`.
fn ancestors(scope: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut s = scope;
    while !s.is_empty() {
        s = match s.rfind('.') {
            Some(i) => &s[..i],
            None => "",
        };
        out.push(s.to_string());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Names and identities of documents that failed to parse, read best-effort from their YAML,
/// so that their absence does not cause follow-on errors elsewhere.
#[derive(Default)]
struct Broken {
    derived_roles: HashSet<String>,
    export_variables: HashSet<String>,
    export_constants: HashSet<String>,
    resource: HashSet<(String, String, String)>,
    principal: HashSet<(String, String, String)>,
}

impl Broken {
    fn record(&mut self, v: &YValue) {
        let field =
            |body: &YValue, key: &str| body.get(key).and_then(YValue::as_str).map(str::to_string);
        let scope = |body: &YValue| normalise_scope(&field(body, "scope").unwrap_or_default());
        if let Some(body) = v.get("derivedRoles") {
            self.derived_roles.extend(field(body, "name"));
        }
        if let Some(body) = v.get("exportVariables") {
            self.export_variables.extend(field(body, "name"));
        }
        if let Some(body) = v.get("exportConstants") {
            self.export_constants.extend(field(body, "name"));
        }
        if let Some(body) = v.get("resourcePolicy") {
            if let (Some(r), Some(ver)) = (field(body, "resource"), field(body, "version")) {
                self.resource.insert((r, ver, scope(body)));
            }
        }
        if let Some(body) = v.get("principalPolicy") {
            if let (Some(p), Some(ver)) = (field(body, "principal"), field(body, "version")) {
                self.principal.insert((p, ver, scope(body)));
            }
        }
    }
}

fn normalise_scope(s: &str) -> String {
    if s == "." {
        String::new()
    } else {
        s.to_string()
    }
}

fn has_merge_key(v: &YValue) -> bool {
    match v {
        YValue::Mapping(m) => m
            .iter()
            .any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        YValue::Sequence(s) => s.iter().any(has_merge_key),
        YValue::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

/// Parses every document of one file. Returns how many non-empty documents it holds.
fn parse_file(
    file: usize,
    text: &str,
    sink: &mut Sink,
    out: &mut Vec<(At, RawPolicy)>,
    broken: &mut Broken,
) -> usize {
    // First pass: plain YAML values. Catches syntax errors and duplicate keys.
    let mut values = Vec::new();
    for (doc, d) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        match YValue::deserialize(d) {
            Ok(v) => values.push(v),
            Err(e) => {
                let msg = yaml_message(&e);
                if msg.contains("duplicate entry") {
                    // Point at the repeated key itself rather than its mapping.
                    let pos = serde_yaml_ng::Deserializer::from_str(text)
                        .nth(doc)
                        .and_then(|d| DupFinder.deserialize(d).err())
                        .and_then(|e| yaml_pos(&e))
                        .or_else(|| yaml_pos(&e));
                    sink.located(file, pos, ProblemKind::DuplicateKey, msg);
                } else {
                    sink.located(file, yaml_pos(&e), ProblemKind::Syntax, msg);
                }
                // The parser cannot resume after an error.
                break;
            }
        }
    }

    let mut count = 0;
    for (doc, value) in values.into_iter().enumerate() {
        if value.is_null() {
            continue;
        }
        count += 1;
        let at = At { file, doc };
        let parsed = if has_merge_key(&value) {
            // Merge keys need the value tree; positions are then only known via probes.
            let mut merged = value.clone();
            match merged.apply_merge() {
                Ok(()) => RawPolicy::deserialize(merged).map_err(|e| (yaml_message(&e), None)),
                Err(e) => {
                    sink.located(file, yaml_pos(&e), ProblemKind::Syntax, yaml_message(&e));
                    broken.record(&value);
                    continue;
                }
            }
        } else {
            match serde_yaml_ng::Deserializer::from_str(text).nth(doc) {
                Some(d) => RawPolicy::deserialize(d).map_err(|e| (yaml_message(&e), yaml_pos(&e))),
                None => continue,
            }
        };
        match parsed {
            Ok(policy) => out.push((at, policy)),
            Err((msg, pos)) => {
                let kind = schema_error_kind(&msg);
                match pos {
                    Some(pos) => sink.located(file, Some(pos), kind, msg),
                    None => sink.at(at, &YPath::default(), kind, msg),
                }
                broken.record(&value);
            }
        }
    }
    count
}

// ---------------------------------------------------------------------------------------------
// Compilation of one document
// ---------------------------------------------------------------------------------------------

/// A variable definition and where it came from.
#[derive(Clone)]
struct VarDef {
    name: String,
    /// `None` when the CEL did not compile (already reported).
    expr: Option<Expr>,
    at: At,
    path: YPath,
    origin: String,
}

#[derive(Clone)]
struct ConstDef {
    name: String,
    value: Value,
    at: At,
    path: YPath,
    origin: String,
}

/// A policy's own variable and constant sections, before imports are resolved.
#[derive(Default)]
struct DefsSpec {
    var_imports: Vec<(String, YPath)>,
    vars: Vec<VarDef>,
    const_imports: Vec<(String, YPath)>,
    consts: Vec<ConstDef>,
}

/// The variables and constants an expression refers to.
struct ExprUse {
    vars: BTreeSet<String>,
    consts: BTreeSet<String>,
    path: YPath,
}

enum Body {
    Resource {
        policy: ResourcePolicy,
        imports: Vec<(String, YPath)>,
        /// Derived roles named by rules.
        role_refs: Vec<(String, YPath)>,
    },
    Principal(PrincipalPolicy),
    Role(RolePolicy),
    DerivedRoles {
        name: String,
        roles: Vec<DerivedRole>,
    },
    ExportVariables {
        name: String,
        vars: Vec<VarDef>,
    },
    ExportConstants {
        name: String,
        consts: Vec<ConstDef>,
    },
}

struct Unit {
    at: At,
    defs: DefsSpec,
    uses: Vec<ExprUse>,
    body: Body,
}

/// Compiles one document, reporting into the sink.
struct Local<'a> {
    sink: &'a mut Sink,
    at: At,
    file_name: &'a str,
    warnings: &'a mut Vec<String>,
    uses: Vec<ExprUse>,
}

/// Collects `variables.x` and `constants.x` references (first segment only).
fn collect_refs(e: &Expr, vars: &mut BTreeSet<String>, consts: &mut BTreeSet<String>) {
    match e {
        Expr::Value(_) => {}
        Expr::Variable(name) => {
            let first = |rest: &str| rest.split('.').next().unwrap_or_default().to_string();
            if let Some(rest) = name.strip_prefix("variables.") {
                vars.insert(first(rest));
            } else if let Some(rest) = name.strip_prefix("constants.") {
                consts.insert(first(rest));
            }
        }
        Expr::Call(_, args) => {
            for a in args {
                collect_refs(a, vars, consts);
            }
        }
    }
}

/// The first line of a CEL error (the rest is a caret diagram).
fn first_line(e: &cel::CelError) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn yaml_to_value(v: &YValue) -> Result<Value, String> {
    let json = serde_json::to_value(v).map_err(|e| e.to_string())?;
    Ok(Value::from_json(&json))
}

impl Local<'_> {
    fn err(&mut self, path: &YPath, kind: ProblemKind, reason: String) {
        self.sink.at(self.at, path, kind, reason);
    }

    fn warn(&mut self, msg: String) {
        self.warnings.push(format!("{}: {msg}", self.file_name));
    }

    /// Compiles CEL and records what it references (checked once imports are resolved).
    fn cel(&mut self, source: &str, path: &YPath) -> Option<Expr> {
        match cel::compile(source) {
            Ok(expr) => {
                let (mut vars, mut consts) = (BTreeSet::new(), BTreeSet::new());
                collect_refs(&expr, &mut vars, &mut consts);
                self.uses.push(ExprUse {
                    vars,
                    consts,
                    path: path.clone(),
                });
                Some(expr)
            }
            Err(e) => {
                self.err(
                    path,
                    ProblemKind::Cel,
                    format!("invalid expression `{}`: {}", source.trim(), first_line(&e)),
                );
                None
            }
        }
    }

    fn required<'v>(
        &mut self,
        v: &'v Option<String>,
        path: &YPath,
        field: &str,
    ) -> Option<&'v str> {
        match v.as_deref() {
            Some(s) if !s.is_empty() => Some(s),
            _ => {
                self.err(
                    path,
                    ProblemKind::MissingField,
                    format!("`{field}` is required"),
                );
                None
            }
        }
    }

    /// A required name that must match `valid`.
    fn name(
        &mut self,
        v: &Option<String>,
        path: &YPath,
        field: &str,
        valid: fn(&str) -> bool,
    ) -> String {
        let p = path.k(field);
        match self.required(v, &p, field) {
            Some(s) => {
                if !valid(s) {
                    self.err(
                        &p,
                        ProblemKind::InvalidValue,
                        format!("`{s}` is not a valid {field}"),
                    );
                }
                s.to_string()
            }
            None => String::new(),
        }
    }

    fn scope(&mut self, v: &Option<String>, path: &YPath) -> String {
        let s = v.as_deref().unwrap_or_default();
        if !valid_scope(s) {
            self.err(
                &path.k("scope"),
                ProblemKind::InvalidValue,
                format!("`{s}` is not a valid scope"),
            );
        }
        normalise_scope(s)
    }

    /// A string list: unique items, each valid; `required` lists must be non-empty.
    fn strings(
        &mut self,
        items: &List<String>,
        path: &YPath,
        field: &str,
        required: bool,
        valid: fn(&str) -> bool,
    ) -> Vec<String> {
        let p = path.k(field);
        let items = items.clone().unwrap_or_default();
        if required && items.is_empty() {
            self.err(
                &p,
                ProblemKind::MissingField,
                format!("`{field}` must list at least one item"),
            );
        }
        let mut seen = HashSet::new();
        for (i, s) in items.iter().enumerate() {
            if !valid(s) {
                self.err(
                    &p.i(i),
                    ProblemKind::InvalidValue,
                    format!("`{s}` is not a valid item of `{field}`"),
                );
            } else if !seen.insert(s.as_str()) {
                self.err(
                    &p.i(i),
                    ProblemKind::InvalidValue,
                    format!("`{s}` is listed twice in `{field}`"),
                );
            }
        }
        items
    }

    fn effect(&mut self, e: Option<RawEffect>, path: &YPath) -> Effect {
        match e {
            Some(RawEffect::Allow) => Effect::Allow,
            Some(RawEffect::Deny) => Effect::Deny,
            None => {
                self.err(
                    &path.k("effect"),
                    ProblemKind::MissingField,
                    "`effect` is required".into(),
                );
                Effect::Deny
            }
        }
    }

    fn rule_name(&mut self, name: &Option<String>, path: &YPath) -> Option<String> {
        let name = name.clone().filter(|n| !n.is_empty())?;
        if !valid_rule_name(&name) {
            self.err(
                &path.k("name"),
                ProblemKind::InvalidValue,
                format!("`{name}` is not a valid rule name"),
            );
        }
        Some(name)
    }

    fn condition(&mut self, c: &Option<RawCondition>, path: &YPath) -> Option<Condition> {
        let c = c.as_ref()?;
        let path = path.k("condition");
        match (&c.matcher, &c.script) {
            (Some(m), None) => self.matcher(m, &path.k("match")),
            (None, Some(_)) => {
                self.err(
                    &path.k("script"),
                    ProblemKind::Unsupported,
                    "`condition.script` is not supported; use `match`".into(),
                );
                None
            }
            (Some(_), Some(_)) => {
                self.err(
                    &path,
                    ProblemKind::InvalidValue,
                    "`match` and `script` are mutually exclusive".into(),
                );
                None
            }
            (None, None) => {
                self.err(
                    &path,
                    ProblemKind::MissingField,
                    "`condition` needs `match`".into(),
                );
                None
            }
        }
    }

    fn matcher(&mut self, m: &RawMatch, path: &YPath) -> Option<Condition> {
        let set = [
            m.expr.is_some(),
            m.all.is_some(),
            m.any.is_some(),
            m.none.is_some(),
        ];
        if set.iter().filter(|b| **b).count() != 1 {
            self.err(
                path,
                ProblemKind::InvalidValue,
                "`match` needs exactly one of `expr`, `all`, `any`, `none`".into(),
            );
            return None;
        }
        if let Some(src) = &m.expr {
            let expr = self.cel(src, &path.k("expr"))?;
            return Some(Condition::Expr {
                expr,
                source: src.clone(),
            });
        }
        let (op, list) = match (&m.all, &m.any, &m.none) {
            (Some(l), _, _) => ("all", l),
            (_, Some(l), _) => ("any", l),
            (_, _, Some(l)) => ("none", l),
            _ => return None,
        };
        let of_path = path.k(op).k("of");
        let items = list.of.as_deref().unwrap_or_default();
        if items.is_empty() {
            self.err(
                &of_path,
                ProblemKind::MissingField,
                format!("`{op}.of` must list at least one condition"),
            );
            return None;
        }
        let mut children = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.matcher(item, &of_path.i(i)) {
                Some(c) => children.push(c),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        Some(match op {
            "all" => Condition::All(children),
            "any" => Condition::Any(children),
            _ => Condition::None(children),
        })
    }

    /// Compiles `output` expressions for validation only; outputs never reach a plan.
    fn output(&mut self, o: &Option<RawOutput>, path: &YPath) {
        let Some(o) = o else { return };
        let path = path.k("output");
        if let Some(src) = &o.expr {
            self.cel(src, &path.k("expr"));
        }
        if let Some(w) = &o.when {
            let wp = path.k("when");
            if let Some(src) = &w.rule_activated {
                self.cel(src, &wp.k("ruleActivated"));
            }
            if let Some(src) = &w.condition_not_met {
                self.cel(src, &wp.k("conditionNotMet"));
            }
        }
    }

    fn var_defs(
        &mut self,
        defs: &BTreeMap<String, String>,
        path: &YPath,
        origin: &str,
    ) -> Vec<VarDef> {
        defs.iter()
            .map(|(name, src)| {
                let p = path.k(name);
                let expr = match cel::compile(src) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        self.err(
                            &p,
                            ProblemKind::Cel,
                            format!(
                                "invalid expression `{}` for variable `{name}`: {}",
                                src.trim(),
                                first_line(&e)
                            ),
                        );
                        None
                    }
                };
                VarDef {
                    name: name.clone(),
                    expr,
                    at: self.at,
                    path: p,
                    origin: origin.to_string(),
                }
            })
            .collect()
    }

    fn const_defs(
        &mut self,
        defs: &BTreeMap<String, YValue>,
        path: &YPath,
        origin: &str,
    ) -> Vec<ConstDef> {
        let mut out = Vec::new();
        for (name, v) in defs {
            let p = path.k(name);
            match yaml_to_value(v) {
                Ok(value) => out.push(ConstDef {
                    name: name.clone(),
                    value,
                    at: self.at,
                    path: p,
                    origin: origin.to_string(),
                }),
                Err(e) => self.err(
                    &p,
                    ProblemKind::InvalidValue,
                    format!("constant `{name}` is not a JSON value: {e}"),
                ),
            }
        }
        out
    }

    fn imports(&mut self, list: &List<String>, path: &YPath) -> Vec<(String, YPath)> {
        let names = self.strings(list, path, "import", false, valid_ident);
        let p = path.k("import");
        names
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, p.i(i)))
            .collect()
    }

    /// `variables {import, local}` and `constants {import, local}` of a policy body, plus the
    /// deprecated top-level `variables`.
    fn defs_spec(
        &mut self,
        vars: &Option<RawVariables>,
        consts: &Option<RawConstants>,
        top: &Option<BTreeMap<String, String>>,
        body: &YPath,
    ) -> DefsSpec {
        let mut spec = DefsSpec::default();
        if let Some(v) = vars {
            let vp = body.k("variables");
            spec.var_imports = self.imports(&v.import, &vp);
            if let Some(local) = &v.local {
                spec.vars = self.var_defs(local, &vp.k("local"), "local variables");
            }
        }
        if let Some(top) = top {
            let mut more =
                self.var_defs(top, &YPath::default().k("variables"), "top-level variables");
            spec.vars.append(&mut more);
        }
        if let Some(c) = consts {
            let cp = body.k("constants");
            spec.const_imports = self.imports(&c.import, &cp);
            if let Some(local) = &c.local {
                spec.consts = self.const_defs(local, &cp.k("local"), "local constants");
            }
        }
        spec
    }

    fn scope_permissions(&mut self, sp: Option<RawScopePermissions>) -> ScopePermissions {
        match sp {
            Some(RawScopePermissions::RequireParentalConsentForAllows) => {
                ScopePermissions::RequireParentalConsentForAllows
            }
            _ => ScopePermissions::OverrideParent,
        }
    }

    fn resource_policy(
        &mut self,
        raw: &RawResourcePolicy,
        top: &Option<BTreeMap<String, String>>,
    ) -> Unit {
        let base = YPath::default().k("resourcePolicy");
        let resource = self.name(&raw.resource, &base, "resource", valid_policy_name);
        let version = self.name(&raw.version, &base, "version", valid_version);
        let scope = self.scope(&raw.scope, &base);
        let scope_permissions = self.scope_permissions(raw.scope_permissions);
        let import_list = self.strings(
            &raw.import_derived_roles,
            &base,
            "importDerivedRoles",
            false,
            valid_ident,
        );
        let ip = base.k("importDerivedRoles");
        let imports = import_list
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, ip.i(i)))
            .collect();
        if raw.schemas.is_some() {
            self.warn("`resourcePolicy.schemas` is ignored: request attributes are not validated against schemas".into());
        }
        let defs = self.defs_spec(&raw.variables, &raw.constants, top, &base);

        let mut rules = Vec::new();
        let mut role_refs = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, r) in raw.rules.as_deref().unwrap_or_default().iter().enumerate() {
            let p = base.k("rules").i(i);
            let name = self.rule_name(&r.name, &p);
            if let Some(n) = &name {
                if let Some(first) = names.insert(n.clone(), i) {
                    self.err(
                        &p.k("name"),
                        ProblemKind::DuplicateName,
                        format!("rule name `{n}` is also used by rule #{}", first + 1),
                    );
                }
            }
            let actions = self.strings(&r.actions, &p, "actions", true, non_empty);
            let roles = self.strings(&r.roles, &p, "roles", false, non_empty);
            let derived_roles =
                self.strings(&r.derived_roles, &p, "derivedRoles", false, valid_ident);
            if roles.is_empty() && derived_roles.is_empty() {
                self.err(
                    &p,
                    ProblemKind::NoRoles,
                    "rule needs `roles` or `derivedRoles`".into(),
                );
            }
            let dp = p.k("derivedRoles");
            role_refs.extend(
                derived_roles
                    .iter()
                    .enumerate()
                    .map(|(j, d)| (d.clone(), dp.i(j))),
            );
            let effect = self.effect(r.effect, &p);
            let condition = self.condition(&r.condition, &p);
            self.output(&r.output, &p);
            rules.push(ResourceRule {
                name,
                actions,
                effect,
                roles,
                derived_roles,
                condition,
            });
        }
        Unit {
            at: self.at,
            defs,
            uses: std::mem::take(&mut self.uses),
            body: Body::Resource {
                policy: ResourcePolicy {
                    file: self.file_name.to_string(),
                    resource,
                    version,
                    scope,
                    scope_permissions,
                    definitions: Definitions::default(),
                    derived_roles: Vec::new(),
                    rules,
                },
                imports,
                role_refs,
            },
        }
    }

    fn principal_policy(
        &mut self,
        raw: &RawPrincipalPolicy,
        top: &Option<BTreeMap<String, String>>,
    ) -> Unit {
        let base = YPath::default().k("principalPolicy");
        let principal = self.name(&raw.principal, &base, "principal", valid_policy_name);
        let version = self.name(&raw.version, &base, "version", valid_version);
        let scope = self.scope(&raw.scope, &base);
        let scope_permissions = self.scope_permissions(raw.scope_permissions);
        let defs = self.defs_spec(&raw.variables, &raw.constants, top, &base);

        let mut rules = Vec::new();
        let mut resources: HashMap<String, usize> = HashMap::new();
        for (i, r) in raw.rules.as_deref().unwrap_or_default().iter().enumerate() {
            let p = base.k("rules").i(i);
            let resource = self
                .required(&r.resource, &p.k("resource"), "resource")
                .unwrap_or_default()
                .to_string();
            if !resource.is_empty() {
                if let Some(first) = resources.insert(resource.clone(), i) {
                    self.err(
                        &p.k("resource"),
                        ProblemKind::DuplicateName,
                        format!("resource `{resource}` already has rule #{}", first + 1),
                    );
                }
            }
            let raw_actions = r.actions.as_deref().unwrap_or_default();
            if raw_actions.is_empty() {
                self.err(
                    &p.k("actions"),
                    ProblemKind::MissingField,
                    "`actions` must list at least one action".into(),
                );
            }
            let mut actions = Vec::new();
            let mut names: HashMap<String, usize> = HashMap::new();
            for (j, a) in raw_actions.iter().enumerate() {
                let ap = p.k("actions").i(j);
                let action = self
                    .required(&a.action, &ap.k("action"), "action")
                    .unwrap_or_default()
                    .to_string();
                let name = self.rule_name(&a.name, &ap);
                if let Some(n) = &name {
                    if let Some(first) = names.insert(n.clone(), j) {
                        self.err(
                            &ap.k("name"),
                            ProblemKind::DuplicateName,
                            format!(
                                "action rule name `{n}` is also used by action rule #{}",
                                first + 1
                            ),
                        );
                    }
                }
                let effect = self.effect(a.effect, &ap);
                let condition = self.condition(&a.condition, &ap);
                self.output(&a.output, &ap);
                actions.push(PrincipalAction {
                    name,
                    action,
                    effect,
                    condition,
                });
            }
            rules.push(PrincipalRule { resource, actions });
        }
        Unit {
            at: self.at,
            defs,
            uses: std::mem::take(&mut self.uses),
            body: Body::Principal(PrincipalPolicy {
                file: self.file_name.to_string(),
                principal,
                version,
                scope,
                scope_permissions,
                definitions: Definitions::default(),
                rules,
            }),
        }
    }

    fn role_policy(&mut self, raw: &RawRolePolicy, top: &Option<BTreeMap<String, String>>) -> Unit {
        let base = YPath::default().k("rolePolicy");
        let role = self.name(&raw.role, &base, "role", valid_policy_name);
        let version = match raw.version.as_deref() {
            None | Some("") => "default".to_string(),
            Some(v) => {
                if !valid_version(v) {
                    self.err(
                        &base.k("version"),
                        ProblemKind::InvalidValue,
                        format!("`{v}` is not a valid version"),
                    );
                }
                v.to_string()
            }
        };
        let scope = self.scope(&raw.scope, &base);
        if raw.scope_permissions == Some(RawScopePermissions::OverrideParent) {
            self.err(
                &base.k("scopePermissions"),
                ProblemKind::InvalidValue,
                "role policies only allow SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS"
                    .into(),
            );
        }
        let parent_roles = self.strings(&raw.parent_roles, &base, "parentRoles", false, non_empty);
        let defs = self.defs_spec(&raw.variables, &raw.constants, top, &base);

        let mut rules = Vec::new();
        for (i, r) in raw.rules.as_deref().unwrap_or_default().iter().enumerate() {
            let p = base.k("rules").i(i);
            let resource = self
                .required(&r.resource, &p.k("resource"), "resource")
                .unwrap_or_default()
                .to_string();
            let allow_actions = self.strings(&r.allow_actions, &p, "allowActions", true, non_empty);
            let name = self.rule_name(&r.name, &p);
            let condition = self.condition(&r.condition, &p);
            self.output(&r.output, &p);
            rules.push(RoleRule {
                name,
                resource,
                allow_actions,
                condition,
            });
        }
        Unit {
            at: self.at,
            defs,
            uses: std::mem::take(&mut self.uses),
            body: Body::Role(RolePolicy {
                file: self.file_name.to_string(),
                role,
                version,
                scope,
                // Cerbos treats role-policy scopePermissions as a no-op: a role policy only
                // ever narrows, which is the parental-consent behaviour.
                scope_permissions: ScopePermissions::RequireParentalConsentForAllows,
                parent_roles,
                definitions: Definitions::default(),
                rules,
            }),
        }
    }

    fn derived_roles(
        &mut self,
        raw: &RawDerivedRoles,
        top: &Option<BTreeMap<String, String>>,
    ) -> Unit {
        let base = YPath::default().k("derivedRoles");
        let name = self.name(&raw.name, &base, "name", valid_ident);
        let defs = self.defs_spec(&raw.variables, &raw.constants, top, &base);
        let list = raw.definitions.as_deref().unwrap_or_default();
        if list.is_empty() {
            self.err(
                &base.k("definitions"),
                ProblemKind::MissingField,
                "`definitions` must list at least one derived role".into(),
            );
        }
        let mut roles = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, d) in list.iter().enumerate() {
            let p = base.k("definitions").i(i);
            let role_name = self.name(&d.name, &p, "name", valid_ident);
            if !role_name.is_empty() {
                if let Some(first) = names.insert(role_name.clone(), i) {
                    self.err(
                        &p.k("name"),
                        ProblemKind::DuplicateName,
                        format!(
                            "derived role `{role_name}` is also defined by definition #{}",
                            first + 1
                        ),
                    );
                }
            }
            let parent_roles = self.strings(&d.parent_roles, &p, "parentRoles", true, non_empty);
            let condition = self.condition(&d.condition, &p);
            roles.push(DerivedRole {
                name: role_name,
                parent_roles,
                condition,
                definitions: Definitions::default(),
            });
        }
        Unit {
            at: self.at,
            defs,
            uses: std::mem::take(&mut self.uses),
            body: Body::DerivedRoles { name, roles },
        }
    }

    fn export_variables(&mut self, raw: &RawExportVariables) -> Unit {
        let base = YPath::default().k("exportVariables");
        let name = self.name(&raw.name, &base, "name", valid_ident);
        let vars = match &raw.definitions {
            Some(d) => self.var_defs(
                d,
                &base.k("definitions"),
                &format!("exported variables `{name}`"),
            ),
            None => Vec::new(),
        };
        Unit {
            at: self.at,
            defs: DefsSpec::default(),
            uses: Vec::new(),
            body: Body::ExportVariables { name, vars },
        }
    }

    fn export_constants(&mut self, raw: &RawExportConstants) -> Unit {
        let base = YPath::default().k("exportConstants");
        let name = self.name(&raw.name, &base, "name", valid_ident);
        let consts = match &raw.definitions {
            Some(d) => self.const_defs(
                d,
                &base.k("definitions"),
                &format!("exported constants `{name}`"),
            ),
            None => Vec::new(),
        };
        Unit {
            at: self.at,
            defs: DefsSpec::default(),
            uses: Vec::new(),
            body: Body::ExportConstants { name, consts },
        }
    }
}

/// Checks the document envelope and compiles its body. Disabled policies are checked for
/// structure only and yield no unit.
fn compile_doc(
    at: At,
    raw: &RawPolicy,
    file_name: &str,
    sink: &mut Sink,
    warnings: &mut Vec<String>,
) -> Option<Unit> {
    let root = YPath::default();
    match raw.api_version.as_deref() {
        Some(API_VERSION) => {}
        Some(other) => sink.at(
            at,
            &root.k("apiVersion"),
            ProblemKind::ApiVersion,
            format!("apiVersion must be `{API_VERSION}`, not `{other}`"),
        ),
        None => sink.at(
            at,
            &root,
            ProblemKind::MissingField,
            "`apiVersion` is required".into(),
        ),
    }
    let bodies = [
        raw.resource_policy.is_some(),
        raw.principal_policy.is_some(),
        raw.derived_roles.is_some(),
        raw.role_policy.is_some(),
        raw.export_variables.is_some(),
        raw.export_constants.is_some(),
    ];
    let count = bodies.iter().filter(|b| **b).count();
    if count != 1 {
        let reason = if count == 0 {
            "no policy: expected one of resourcePolicy, principalPolicy, derivedRoles, rolePolicy, exportVariables, exportConstants"
        } else {
            "a document holds exactly one policy, but this one has several"
        };
        sink.at(at, &root, ProblemKind::PolicyType, reason.into());
        return None;
    }
    if raw.disabled == Some(true) {
        return None;
    }
    let mut local = Local {
        sink,
        at,
        file_name,
        warnings,
        uses: Vec::new(),
    };
    let top = &raw.variables;
    let export_with_top = |local: &mut Local<'_>, kind: &str| {
        if top.is_some() {
            local.err(
                &root.k("variables"),
                ProblemKind::InvalidValue,
                format!("{kind} policies do not support the deprecated top-level `variables`"),
            );
        }
    };
    if let Some(p) = &raw.resource_policy {
        Some(local.resource_policy(p, top))
    } else if let Some(p) = &raw.principal_policy {
        Some(local.principal_policy(p, top))
    } else if let Some(p) = &raw.role_policy {
        Some(local.role_policy(p, top))
    } else if let Some(p) = &raw.derived_roles {
        Some(local.derived_roles(p, top))
    } else if let Some(p) = &raw.export_variables {
        export_with_top(&mut local, "exportVariables");
        Some(local.export_variables(p))
    } else if let Some(p) = &raw.export_constants {
        export_with_top(&mut local, "exportConstants");
        Some(local.export_constants(p))
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Linking: imports, variables, derived roles, set-wide checks
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Registry {
    derived_roles: HashMap<String, usize>,
    export_variables: HashMap<String, usize>,
    export_constants: HashMap<String, usize>,
}

struct Linker<'a> {
    units: &'a [Unit],
    files: &'a [(String, String)],
    reg: Registry,
    broken: &'a Broken,
    sink: &'a mut Sink,
}

impl Linker<'_> {
    fn file_name(&self, at: At) -> &str {
        self.files
            .get(at.file)
            .map(|f| f.0.as_str())
            .unwrap_or_default()
    }

    fn register(&mut self) {
        for (i, u) in self.units.iter().enumerate() {
            let (map, name, kind, path) = match &u.body {
                Body::DerivedRoles { name, .. } => (
                    &mut self.reg.derived_roles,
                    name,
                    "derived roles",
                    "derivedRoles",
                ),
                Body::ExportVariables { name, .. } => (
                    &mut self.reg.export_variables,
                    name,
                    "exported variables",
                    "exportVariables",
                ),
                Body::ExportConstants { name, .. } => (
                    &mut self.reg.export_constants,
                    name,
                    "exported constants",
                    "exportConstants",
                ),
                _ => continue,
            };
            if name.is_empty() {
                continue;
            }
            if let Some(&first) = map.get(name) {
                let other = self
                    .units
                    .get(first)
                    .and_then(|f| self.files.get(f.at.file))
                    .map(|f| f.0.clone())
                    .unwrap_or_default();
                self.sink.at(
                    u.at,
                    &YPath::default().k(path).k("name"),
                    ProblemKind::DuplicatePolicy,
                    format!("{kind} `{name}` are also defined in {other}"),
                );
            } else {
                map.insert(name.clone(), i);
            }
        }
    }

    /// Merges imported, local and top-level definitions of one unit and checks every
    /// reference.
    fn definitions(&mut self, u: &Unit) -> Definitions {
        // (definition, where a duplicate is reported, import name if imported)
        let mut vars: Vec<(VarDef, YPath, Option<String>)> = Vec::new();
        for (imp, path) in &u.defs.var_imports {
            match self
                .reg
                .export_variables
                .get(imp)
                .and_then(|&i| self.units.get(i))
            {
                Some(Unit {
                    body: Body::ExportVariables { vars: defs, .. },
                    ..
                }) => {
                    vars.extend(
                        defs.iter()
                            .map(|d| (d.clone(), path.clone(), Some(imp.clone()))),
                    );
                }
                _ => {
                    if !self.broken.export_variables.contains(imp) {
                        self.sink.at(
                            u.at,
                            path,
                            ProblemKind::MissingImport,
                            format!("no exportVariables named `{imp}`"),
                        );
                    }
                }
            }
        }
        vars.extend(
            u.defs
                .vars
                .iter()
                .map(|d| (d.clone(), d.path.clone(), None)),
        );

        let mut consts: Vec<(ConstDef, YPath)> = Vec::new();
        for (imp, path) in &u.defs.const_imports {
            match self
                .reg
                .export_constants
                .get(imp)
                .and_then(|&i| self.units.get(i))
            {
                Some(Unit {
                    body: Body::ExportConstants { consts: defs, .. },
                    ..
                }) => {
                    consts.extend(defs.iter().map(|d| (d.clone(), path.clone())));
                }
                _ => {
                    if !self.broken.export_constants.contains(imp) {
                        self.sink.at(
                            u.at,
                            path,
                            ProblemKind::MissingImport,
                            format!("no exportConstants named `{imp}`"),
                        );
                    }
                }
            }
        }
        consts.extend(u.defs.consts.iter().map(|d| (d.clone(), d.path.clone())));

        // Each name once; later definitions are errors.
        let mut var_map: BTreeMap<String, (VarDef, YPath, Option<String>)> = BTreeMap::new();
        for (def, report, imp) in vars {
            if let Some((first, _, _)) = var_map.get(&def.name) {
                let reason = format!(
                    "variable `{}` is defined more than once: {} ({}) and {} ({})",
                    def.name,
                    first.origin,
                    self.file_name(first.at),
                    def.origin,
                    self.file_name(def.at)
                );
                self.sink
                    .at(u.at, &report, ProblemKind::DuplicateDefinition, reason);
            } else {
                var_map.insert(def.name.clone(), (def, report, imp));
            }
        }
        let mut constants: BTreeMap<String, Value> = BTreeMap::new();
        let mut const_origin: BTreeMap<String, (String, At)> = BTreeMap::new();
        for (def, report) in consts {
            if let Some((origin, at)) = const_origin.get(&def.name) {
                let reason = format!(
                    "constant `{}` is defined more than once: {origin} ({}) and {} ({})",
                    def.name,
                    self.file_name(*at),
                    def.origin,
                    self.file_name(def.at)
                );
                self.sink
                    .at(u.at, &report, ProblemKind::DuplicateDefinition, reason);
            } else {
                const_origin.insert(def.name.clone(), (def.origin.clone(), def.at));
                constants.insert(def.name.clone(), def.value);
            }
        }

        // References made by variables.
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, (def, report, imp)) in &var_map {
            let mut edges = BTreeSet::new();
            if let Some(expr) = &def.expr {
                let (mut vrefs, mut crefs) = (BTreeSet::new(), BTreeSet::new());
                collect_refs(expr, &mut vrefs, &mut crefs);
                // Problems inside an imported variable are reported at the import.
                let (at, path) = match imp {
                    Some(_) => (u.at, report.clone()),
                    None => (def.at, def.path.clone()),
                };
                let what = match imp {
                    Some(i) => format!("variable `{name}` (imported from `{i}`)"),
                    None => format!("variable `{name}`"),
                };
                for r in vrefs {
                    if &r == name {
                        self.sink.at(
                            at,
                            &path,
                            ProblemKind::VariableCycle,
                            format!("{what} references itself"),
                        );
                    } else if var_map.contains_key(&r) {
                        edges.insert(r);
                    } else {
                        self.sink.at(
                            at,
                            &path,
                            ProblemKind::UndefinedVariable,
                            format!("{what} references undefined variable `{r}`"),
                        );
                    }
                }
                for c in crefs {
                    if !constants.contains_key(&c) {
                        self.sink.at(
                            at,
                            &path,
                            ProblemKind::UndefinedConstant,
                            format!("{what} references undefined constant `{c}`"),
                        );
                    }
                }
            }
            graph.insert(name.clone(), edges);
        }
        for cycle in cycles(&graph) {
            let first = cycle.first().cloned().unwrap_or_default();
            let path = var_map
                .get(&first)
                .map(|(d, report, imp)| {
                    if imp.is_some() {
                        report.clone()
                    } else {
                        d.path.clone()
                    }
                })
                .unwrap_or_default();
            let names = cycle
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.sink.at(
                u.at,
                &path,
                ProblemKind::VariableCycle,
                format!("variables {names} form a cycle"),
            );
        }

        // References made by conditions and outputs.
        for e in &u.uses {
            for v in &e.vars {
                if !var_map.contains_key(v) {
                    self.sink.at(
                        u.at,
                        &e.path,
                        ProblemKind::UndefinedVariable,
                        format!("undefined variable `{v}`"),
                    );
                }
            }
            for c in &e.consts {
                if !constants.contains_key(c) {
                    self.sink.at(
                        u.at,
                        &e.path,
                        ProblemKind::UndefinedConstant,
                        format!("undefined constant `{c}`"),
                    );
                }
            }
        }

        Definitions {
            variable_order: topo_order(&graph),
            variables: var_map
                .into_iter()
                .filter_map(|(n, (d, _, _))| d.expr.map(|e| (n, e)))
                .collect(),
            constants,
        }
    }

    /// The derived roles a resource policy's rules reference, from its imports.
    fn derived_roles(
        &mut self,
        u: &Unit,
        imports: &[(String, YPath)],
        role_refs: &[(String, YPath)],
        sets: &HashMap<usize, Vec<DerivedRole>>,
        warnings: &mut Vec<String>,
    ) -> Vec<DerivedRole> {
        let mut available: BTreeMap<String, Vec<(String, DerivedRole)>> = BTreeMap::new();
        let mut complete = true;
        for (imp, path) in imports {
            match self.reg.derived_roles.get(imp).and_then(|i| sets.get(i)) {
                Some(roles) => {
                    for r in roles {
                        available
                            .entry(r.name.clone())
                            .or_default()
                            .push((imp.clone(), r.clone()));
                    }
                }
                None => {
                    complete = false;
                    if !self.broken.derived_roles.contains(imp) {
                        self.sink.at(
                            u.at,
                            path,
                            ProblemKind::MissingImport,
                            format!("no derivedRoles named `{imp}`"),
                        );
                    }
                }
            }
        }
        let mut referenced: BTreeMap<String, DerivedRole> = BTreeMap::new();
        let mut reported = HashSet::new();
        for (name, path) in role_refs {
            match available.get(name).map(Vec::as_slice) {
                Some([(_, role)]) => {
                    referenced.insert(name.clone(), role.clone());
                }
                Some(many) => {
                    if reported.insert(name.clone()) {
                        let from = many
                            .iter()
                            .map(|(i, _)| format!("`{i}`"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        self.sink.at(
                            u.at,
                            path,
                            ProblemKind::AmbiguousDerivedRole,
                            format!(
                                "derived role `{name}` is defined by more than one import: {from}"
                            ),
                        );
                    }
                }
                None => {
                    // A missing import was already reported; its roles are unknown.
                    if complete && reported.insert(name.clone()) {
                        self.sink.at(
                            u.at,
                            path,
                            ProblemKind::UndefinedDerivedRole,
                            format!(
                                "derived role `{name}` is not defined by any imported derivedRoles"
                            ),
                        );
                    }
                }
            }
        }
        for (name, defs) in &available {
            if defs.len() > 1 && !referenced.contains_key(name) && !reported.contains(name) {
                let from = defs
                    .iter()
                    .map(|(i, _)| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                warnings.push(format!(
                    "{}: derived role `{name}` is defined by several imports ({from}); no rule uses it",
                    self.file_name(u.at)
                ));
            }
        }
        referenced.into_values().collect()
    }
}

/// Cycles (strongly connected components with more than one node) of a variable graph, each
/// sorted by name. Self-references are reported separately.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: HashMap<&'g str, usize>,
        low: HashMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: HashSet<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let graph = self.graph;
            if let Some(edges) = graph.get(v) {
                for w in edges {
                    let w = w.as_str();
                    if !self.index.contains_key(w) {
                        self.visit(w);
                        let lw = self.low.get(w).copied().unwrap_or(usize::MAX);
                        if let Some(lv) = self.low.get_mut(v) {
                            *lv = (*lv).min(lw);
                        }
                    } else if self.on_stack.contains(w) {
                        let iw = self.index.get(w).copied().unwrap_or(usize::MAX);
                        if let Some(lv) = self.low.get_mut(v) {
                            *lv = (*lv).min(iw);
                        }
                    }
                }
            }
            if self.low.get(v) == self.index.get(v) {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.out.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: HashSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

/// Variable names in dependency order (dependencies first, ties by name). Variables on or
/// behind a cycle are left out; cycles are errors anyway.
fn topo_order(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut remaining: BTreeMap<&str, usize> =
        graph.iter().map(|(n, e)| (n.as_str(), e.len())).collect();
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (n, edges) in graph {
        for e in edges {
            dependents.entry(e.as_str()).or_default().push(n.as_str());
        }
    }
    let mut ready: BTreeSet<&str> = remaining
        .iter()
        .filter(|(_, c)| **c == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut order = Vec::new();
    while let Some(n) = ready.pop_first() {
        order.push(n.to_string());
        for d in dependents.get(n).map(Vec::as_slice).unwrap_or_default() {
            if let Some(c) = remaining.get_mut(d) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    ready.insert(d);
                }
            }
        }
    }
    order
}

// ---------------------------------------------------------------------------------------------
// The whole load
// ---------------------------------------------------------------------------------------------

fn load(files: &[(String, String)], mut problems: Vec<Problem>) -> Result<PolicySet, LoadErrors> {
    let mut sink = Sink::default();
    let mut broken = Broken::default();
    let mut warnings = Vec::new();
    let mut parsed = Vec::new();
    let mut file_count = 0;
    for (i, (name, text)) in files.iter().enumerate() {
        let before = sink.pending.len();
        let docs = parse_file(i, text, &mut sink, &mut parsed, &mut broken);
        if docs > 0 {
            file_count += 1;
        } else if sink.pending.len() == before {
            warnings.push(format!("{name}: no policy in this file"));
        }
    }

    let mut units = Vec::new();
    for (at, raw) in &parsed {
        let name = files.get(at.file).map(|f| f.0.as_str()).unwrap_or_default();
        units.extend(compile_doc(*at, raw, name, &mut sink, &mut warnings));
    }

    let set = link(&units, files, &broken, &mut sink, &mut warnings);

    problems.extend(sink.finish(files));
    if !problems.is_empty() {
        problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        problems.dedup();
        return Err(LoadErrors { problems });
    }
    Ok(PolicySet {
        file_count,
        warnings,
        ..set
    })
}

fn link(
    units: &[Unit],
    files: &[(String, String)],
    broken: &Broken,
    sink: &mut Sink,
    warnings: &mut Vec<String>,
) -> PolicySet {
    let mut l = Linker {
        units,
        files,
        reg: Registry::default(),
        broken,
        sink,
    };
    l.register();

    let defs: Vec<Definitions> = units
        .iter()
        .map(|u| match u.body {
            Body::ExportVariables { .. } | Body::ExportConstants { .. } => Definitions::default(),
            _ => l.definitions(u),
        })
        .collect();

    // Derived-role sets with their file's definitions.
    let mut sets: HashMap<usize, Vec<DerivedRole>> = HashMap::new();
    for (i, u) in units.iter().enumerate() {
        if let Body::DerivedRoles { roles, .. } = &u.body {
            let d = defs.get(i).cloned().unwrap_or_default();
            sets.insert(
                i,
                roles
                    .iter()
                    .map(|r| DerivedRole {
                        definitions: d.clone(),
                        ..r.clone()
                    })
                    .collect(),
            );
        }
    }

    let mut set = PolicySet::default();
    let mut resource_at = Vec::new();
    let mut principal_at = Vec::new();
    let mut role_at = Vec::new();
    for (i, u) in units.iter().enumerate() {
        let d = defs.get(i).cloned().unwrap_or_default();
        match &u.body {
            Body::Resource {
                policy,
                imports,
                role_refs,
            } => {
                let derived_roles = l.derived_roles(u, imports, role_refs, &sets, warnings);
                set.resource_policies.push(ResourcePolicy {
                    definitions: d,
                    derived_roles,
                    ..policy.clone()
                });
                resource_at.push(u.at);
            }
            Body::Principal(p) => {
                set.principal_policies.push(PrincipalPolicy {
                    definitions: d,
                    ..p.clone()
                });
                principal_at.push(u.at);
            }
            Body::Role(r) => {
                set.role_policies.push(RolePolicy {
                    definitions: d,
                    ..r.clone()
                });
                role_at.push(u.at);
            }
            _ => {}
        }
    }

    let sink = l.sink;
    let name_of = |at: At| files.get(at.file).map(|f| f.0.clone()).unwrap_or_default();

    // Duplicate identities.
    let mut check_dups = |keys: Vec<((String, String, String), At)>, kind: &str, body: &str| {
        let mut first: HashMap<(String, String, String), At> = HashMap::new();
        for (key, at) in keys {
            if let Some(prev) = first.get(&key) {
                let (name, version, scope) = &key;
                sink.at(
                    at,
                    &YPath::default().k(body),
                    ProblemKind::DuplicatePolicy,
                    format!(
                        "{kind} policy `{name}` (version `{version}`, {}) is also defined in {}",
                        scope_label(scope),
                        name_of(*prev)
                    ),
                );
            } else {
                first.insert(key, at);
            }
        }
    };
    let resource_keys: Vec<_> = set
        .resource_policies
        .iter()
        .zip(&resource_at)
        .map(|(p, at)| {
            (
                (p.resource.clone(), p.version.clone(), p.scope.clone()),
                *at,
            )
        })
        .collect();
    let principal_keys: Vec<_> = set
        .principal_policies
        .iter()
        .zip(&principal_at)
        .map(|(p, at)| {
            (
                (p.principal.clone(), p.version.clone(), p.scope.clone()),
                *at,
            )
        })
        .collect();
    let role_keys: Vec<_> = set
        .role_policies
        .iter()
        .zip(&role_at)
        .map(|(p, at)| ((p.role.clone(), p.version.clone(), p.scope.clone()), *at))
        .collect();
    check_dups(resource_keys.clone(), "resource", "resourcePolicy");
    check_dups(principal_keys.clone(), "principal", "principalPolicy");
    check_dups(role_keys, "role", "rolePolicy");

    // Scoped resource and principal policies need a policy at every parent scope.
    let check_chain = |keys: &[((String, String, String), At)],
                       broken: &HashSet<(String, String, String)>,
                       kind: &str,
                       body: &str,
                       sink: &mut Sink| {
        let present: HashSet<&(String, String, String)> = keys.iter().map(|(k, _)| k).collect();
        for ((name, version, scope), at) in keys {
            for parent in ancestors(scope) {
                let key = (name.clone(), version.clone(), parent.clone());
                if !present.contains(&key) && !broken.contains(&key) {
                    sink.at(
                        *at,
                        &YPath::default().k(body).k("scope"),
                        ProblemKind::MissingAncestor,
                        format!(
                            "{kind} policy `{name}` (version `{version}`, {}) has no parent policy in {}",
                            scope_label(scope),
                            scope_label(&parent)
                        ),
                    );
                }
            }
        }
    };
    check_chain(
        &resource_keys,
        &broken.resource,
        "resource",
        "resourcePolicy",
        sink,
    );
    check_chain(
        &principal_keys,
        &broken.principal,
        "principal",
        "principalPolicy",
        sink,
    );

    // All resource and principal policies in one scope must agree on scopePermissions.
    let mut by_scope: BTreeMap<String, Vec<(ScopePermissions, At, String)>> = BTreeMap::new();
    for (p, at) in set.resource_policies.iter().zip(&resource_at) {
        by_scope.entry(p.scope.clone()).or_default().push((
            p.scope_permissions,
            *at,
            format!("resource `{}`", p.resource),
        ));
    }
    for (p, at) in set.principal_policies.iter().zip(&principal_at) {
        by_scope.entry(p.scope.clone()).or_default().push((
            p.scope_permissions,
            *at,
            format!("principal `{}`", p.principal),
        ));
    }
    for (scope, entries) in &by_scope {
        let Some((first, _, _)) = entries.first() else {
            continue;
        };
        if let Some((_, at, _)) = entries.iter().find(|(sp, _, _)| sp != first) {
            let list = entries
                .iter()
                .map(|(sp, at, what)| {
                    format!(
                        "{what} ({}) = {}",
                        name_of(*at),
                        scope_permissions_name(*sp)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let body = if principal_at.contains(at) {
                "principalPolicy"
            } else {
                "resourcePolicy"
            };
            sink.at(
                *at,
                &YPath::default().k(body),
                ProblemKind::ScopePermissionsConflict,
                format!("policies in scope `{scope}` disagree on scopePermissions: {list}"),
            );
        }
    }
    set
}

fn scope_label(scope: &str) -> String {
    if scope.is_empty() {
        "the root scope".to_string()
    } else {
        format!("scope `{scope}`")
    }
}

fn scope_permissions_name(sp: ScopePermissions) -> &'static str {
    match sp {
        ScopePermissions::OverrideParent => "SCOPE_PERMISSIONS_OVERRIDE_PARENT",
        ScopePermissions::RequireParentalConsentForAllows => {
            "SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_patterns() {
        for ok in ["", ".", "a", "acme.hr.uk", "A1-x.b_c", "GLOBEX", "a._b"] {
            assert!(valid_scope(ok), "{ok}");
        }
        for bad in ["a..b", ".a", "a.", "-a", "a b", "a.b!"] {
            assert!(!valid_scope(bad), "{bad}");
        }
    }

    #[test]
    fn ancestors_end_at_root() {
        assert_eq!(ancestors("a.b.c"), vec!["a.b", "a", ""]);
        assert!(ancestors("").is_empty());
    }

    #[test]
    fn policy_file_names() {
        assert!(is_policy_file_name("a.yaml"));
        assert!(is_policy_file_name("b.JSON"));
        assert!(!is_policy_file_name("a_test.yaml"));
        assert!(!is_policy_file_name("a.txt"));
        assert!(!is_policy_file_name(".yaml"));
    }

    #[test]
    fn cycles_and_order() {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        g.insert("a".into(), ["b".to_string()].into());
        g.insert("b".into(), ["a".to_string()].into());
        g.insert("c".into(), BTreeSet::new());
        g.insert("d".into(), ["c".to_string()].into());
        assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".to_string()]]);
        assert_eq!(topo_order(&g), vec!["c", "d"]);
    }

    #[test]
    fn locate_finds_nested_nodes() {
        let text = "a:\n  b:\n    - x\n    - y: 1\n";
        let path = [
            Seg::Key("a".into()),
            Seg::Key("b".into()),
            Seg::Index(1),
            Seg::Key("y".into()),
        ];
        assert_eq!(locate(text, 0, &path), Some((4, 10)));
        // Missing tail falls back to the deepest existing node.
        let path = [Seg::Key("a".into()), Seg::Key("zz".into())];
        assert_eq!(locate(text, 0, &path).map(|p| p.0), Some(2));
    }
}
