//! `vecgate policy test DIR`: Cerbos policy test suites.
//!
//! Runs the suites `cerbos compile` runs (`*_test.{yaml,yml,json}`, format
//! `cerbos.policy.v1.TestSuite`) against vecgate's own evaluator: every (principal,
//! resource, action) combination of a test's input is checked with
//! [`Planner::check`](crate::policy::planner::Planner::check) and compared with the expected
//! effect. Combinations a test does not list expect `EFFECT_DENY`, as in Cerbos.
//!
//! Shared fixtures come from a `testdata` directory next to each suite file
//! (`principals.*`, `resources.*`, `auxdata.*` / `auxData.*` / `aux_data.*`). Definitions in
//! the suite itself win over the shared ones.
//!
//! Output: one `FAIL …` line per failing check, `SKIP …` / `NOTE …` lines for skipped tests
//! and ignored `outputs` expectations, and a last line `N passed, M failed` counting single
//! action checks. Suite errors (bad YAML, unknown fields, dangling references) go to stderr.
//! Exit code: 0 all passed, 1 some check failed, 2 usage, policy-load or suite errors.

use crate::plan::Value;
use crate::policy::load::load_dir;
use crate::policy::model::PolicySet;
use crate::policy::plan_suite::yaml_to_json;
use crate::policy::planner::{ErrorSemantics, PlanRequest, Planner, PlannerOptions, Principal};
use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The directory of shared fixtures, next to the suite files that use it.
const TESTDATA: &str = "testdata";
/// Cerbos looks for the aux data fixture file under these names, in this order.
const AUX_DATA_FILE_NAMES: [&str; 3] = ["auxdata", "auxData", "aux_data"];
const EFFECT_ALLOW: &str = "EFFECT_ALLOW";
const EFFECT_DENY: &str = "EFFECT_DENY";

/// When a test sets no `now`, conditions are evaluated at both instants; if the answers
/// differ, a policy read the clock and the check errors (Cerbos: "a policy used a
/// time-based condition, but `now` was not provided in the test options").
const NOW_PROBES: [&str; 2] = ["1970-01-01T00:00:00Z", "2100-01-01T00:00:00Z"];

/// Runs every `*_test.yaml` suite under `dir`; prints failures and `N passed, M failed`.
pub fn run(dir: &Path) -> i32 {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            eprintln!("error: {}: not a directory", dir.display());
            return 2;
        }
        Err(e) => {
            eprintln!("error: {}: {e}", dir.display());
            return 2;
        }
    }
    let files = match discover(dir) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if files.is_empty() {
        eprintln!(
            "error: no test suites (*_test.yaml, *_test.yml, *_test.json) under {}",
            dir.display()
        );
        return 2;
    }
    let set = match load_dir(dir) {
        Ok(set) => Arc::new(set),
        Err(e) => {
            eprintln!(
                "error: the policies under {} do not load:\n{e}",
                dir.display()
            );
            return 2;
        }
    };
    for w in &set.warnings {
        eprintln!("warning: {w}");
    }

    let mut fixtures = FixtureCache::default();
    let mut totals = Totals::default();
    for file in &files {
        let shown = file.strip_prefix(dir).unwrap_or(file).display().to_string();
        if let Err(e) = run_file(&set, file, &shown, &mut fixtures, &mut totals) {
            eprintln!("ERROR {shown}: {e}");
            totals.errored_suites += 1;
        }
    }
    println!("{} passed, {} failed", totals.passed, totals.failed);
    if totals.errored_suites > 0 {
        2
    } else {
        i32::from(totals.failed > 0)
    }
}

#[derive(Default)]
struct Totals {
    passed: usize,
    failed: usize,
    errored_suites: usize,
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

/// Whether `name` is a test suite file name: `*_test.{yaml,yml,json}`, case-insensitively.
fn is_test_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".yaml", ".yml", ".json"].iter().any(|ext| {
        lower
            .strip_suffix(ext)
            .is_some_and(|stem| stem.ends_with("_test"))
    })
}

fn has_supported_ext(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|e| lower.ends_with(e))
}

/// Every suite file under `dir`, recursively, sorted. `testdata` directories hold fixtures
/// (not suites) and are not searched; hidden entries are skipped, as the policy loader does.
fn discover(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    walk(dir, &mut out, &mut seen)?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, seen: &mut HashSet<PathBuf>) -> Result<(), String> {
    if let Ok(real) = dir.canonicalize() {
        if !seen.insert(real) {
            return Ok(());
        }
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            if name != TESTDATA {
                walk(&path, out, seen)?;
            }
        } else if is_test_file(&name) {
            out.push(path);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The file format (cerbos.policy.v1.TestSuite and friends). Unknown keys are errors; proto
// field names (snake_case) are accepted besides the JSON names, as protojson does.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPrincipal {
    id: String,
    roles: Vec<String>,
    #[serde(default)]
    attr: Option<serde_json::Map<String, Json>>,
    #[serde(default, alias = "policy_version")]
    policy_version: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawResource {
    kind: String,
    id: String,
    #[serde(default)]
    attr: Option<serde_json::Map<String, Json>>,
    #[serde(default, alias = "policy_version")]
    policy_version: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RawAuxData {
    #[serde(default)]
    jwt: Option<serde_json::Map<String, Json>>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RawPrincipalGroup {
    principals: Vec<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RawResourceGroup {
    resources: Vec<String>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOptions {
    #[serde(default)]
    now: Option<String>,
    #[serde(default, alias = "lenient_scope_search")]
    lenient_scope_search: Option<bool>,
    #[serde(default)]
    globals: Option<serde_json::Map<String, Json>>,
    #[serde(default, alias = "default_policy_version")]
    default_policy_version: Option<String>,
    #[serde(default, alias = "default_scope")]
    default_scope: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSuite {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    skip: Option<bool>,
    #[serde(default, alias = "skip_reason")]
    skip_reason: Option<String>,
    tests: Vec<RawTable>,
    #[serde(default)]
    principals: Option<BTreeMap<String, RawPrincipal>>,
    #[serde(default)]
    resources: Option<BTreeMap<String, RawResource>>,
    #[serde(default, alias = "aux_data")]
    aux_data: Option<BTreeMap<String, RawAuxData>>,
    #[serde(default)]
    options: Option<RawOptions>,
    #[serde(default, rename = "$schema")]
    #[allow(dead_code)]
    schema: Option<String>,
    #[serde(default, alias = "principal_groups")]
    principal_groups: Option<BTreeMap<String, RawPrincipalGroup>>,
    #[serde(default, alias = "resource_groups")]
    resource_groups: Option<BTreeMap<String, RawResourceGroup>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTable {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    skip: Option<bool>,
    #[serde(default, alias = "skip_reason")]
    skip_reason: Option<String>,
    input: RawInput,
    expected: Vec<RawExpectation>,
    #[serde(default)]
    options: Option<RawOptions>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawInput {
    #[serde(default)]
    principals: Option<Vec<String>>,
    #[serde(default)]
    resources: Option<Vec<String>>,
    actions: Vec<String>,
    #[serde(default, alias = "aux_data")]
    aux_data: Option<String>,
    #[serde(default, alias = "principal_groups")]
    principal_groups: Option<Vec<String>>,
    #[serde(default, alias = "resource_groups")]
    resource_groups: Option<Vec<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawExpectation {
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    actions: BTreeMap<String, Json>,
    #[serde(default)]
    outputs: Option<Vec<RawOutputExpectation>>,
    #[serde(default)]
    principals: Option<Vec<String>>,
    #[serde(default)]
    resources: Option<Vec<String>>,
    #[serde(default, alias = "principal_groups")]
    principal_groups: Option<Vec<String>>,
    #[serde(default, alias = "resource_groups")]
    resource_groups: Option<Vec<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawOutputExpectation {
    action: String,
    expected: Vec<RawOutputEntry>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawOutputEntry {
    #[serde(default)]
    src: Option<String>,
    #[serde(default)]
    val: Option<Json>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPrincipalsFile {
    #[serde(default)]
    principals: Option<BTreeMap<String, RawPrincipal>>,
    #[serde(default, rename = "$schema")]
    #[allow(dead_code)]
    schema: Option<String>,
    #[serde(default, alias = "principal_groups")]
    principal_groups: Option<BTreeMap<String, RawPrincipalGroup>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawResourcesFile {
    #[serde(default)]
    resources: Option<BTreeMap<String, RawResource>>,
    #[serde(default, rename = "$schema")]
    #[allow(dead_code)]
    schema: Option<String>,
    #[serde(default, alias = "resource_groups")]
    resource_groups: Option<BTreeMap<String, RawResourceGroup>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAuxDataFile {
    #[serde(default, alias = "aux_data")]
    aux_data: Option<BTreeMap<String, RawAuxData>>,
    #[serde(default, rename = "$schema")]
    #[allow(dead_code)]
    schema: Option<String>,
}

/// Reads a YAML (anchors and merge keys applied) or JSON file into `T`, strictly. Errors do
/// not name the file.
fn read_doc<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let json = if is_json {
        serde_json::from_str::<Json>(&text).map_err(|e| e.to_string())?
    } else {
        yaml_to_json(&text).map_err(|e| e.to_string())?
    };
    serde_json::from_value(json).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Validation (the rules of Cerbos' schema and proto validators that matter here)
// ---------------------------------------------------------------------------------------------

fn check_unique(what: &str, items: &[String]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for item in items {
        if item.is_empty() {
            return Err(format!("{what}: empty name"));
        }
        if !seen.insert(item.as_str()) {
            return Err(format!("{what}: {item:?} is listed twice"));
        }
    }
    Ok(())
}

fn validate_principal(key: &str, p: &RawPrincipal) -> Result<(), String> {
    if p.id.is_empty() {
        return Err(format!("principal {key:?}: empty id"));
    }
    if p.roles.is_empty() {
        return Err(format!("principal {key:?}: roles must not be empty"));
    }
    check_unique(&format!("principal {key:?} roles"), &p.roles)?;
    if p.attr.as_ref().is_some_and(|a| a.contains_key("")) {
        return Err(format!("principal {key:?}: empty attribute name"));
    }
    Ok(())
}

fn validate_resource(key: &str, r: &RawResource) -> Result<(), String> {
    if r.kind.is_empty() {
        return Err(format!("resource {key:?}: empty kind"));
    }
    if r.id.is_empty() {
        return Err(format!("resource {key:?}: empty id"));
    }
    if r.attr.as_ref().is_some_and(|a| a.contains_key("")) {
        return Err(format!("resource {key:?}: empty attribute name"));
    }
    Ok(())
}

fn validate_principal_groups(groups: &BTreeMap<String, RawPrincipalGroup>) -> Result<(), String> {
    for (name, g) in groups {
        if g.principals.is_empty() {
            return Err(format!("principal group {name:?} is empty"));
        }
        check_unique(&format!("principal group {name:?}"), &g.principals)?;
    }
    Ok(())
}

fn validate_resource_groups(groups: &BTreeMap<String, RawResourceGroup>) -> Result<(), String> {
    for (name, g) in groups {
        if g.resources.is_empty() {
            return Err(format!("resource group {name:?} is empty"));
        }
        check_unique(&format!("resource group {name:?}"), &g.resources)?;
    }
    Ok(())
}

fn validate_suite(suite: &RawSuite) -> Result<(), String> {
    if suite.name.is_empty() {
        return Err("the suite needs a name".into());
    }
    if suite.tests.is_empty() {
        return Err("the suite has no tests".into());
    }
    for (k, p) in suite.principals.iter().flatten() {
        validate_principal(k, p)?;
    }
    for (k, r) in suite.resources.iter().flatten() {
        validate_resource(k, r)?;
    }
    if let Some(g) = &suite.principal_groups {
        validate_principal_groups(g)?;
    }
    if let Some(g) = &suite.resource_groups {
        validate_resource_groups(g)?;
    }
    if let Some(o) = &suite.options {
        validate_options(o).map_err(|e| format!("options: {e}"))?;
    }
    for t in &suite.tests {
        validate_table(t).map_err(|e| format!("test {:?}: {e}", t.name))?;
    }
    Ok(())
}

fn validate_options(o: &RawOptions) -> Result<(), String> {
    if let Some(now) = &o.now {
        parse_now(now)?;
    }
    Ok(())
}

fn parse_now(text: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("now {text:?} is not an RFC 3339 time: {e}"))
}

fn non_empty(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn validate_table(t: &RawTable) -> Result<(), String> {
    if t.name.is_empty() {
        return Err("a test needs a name".into());
    }
    let input = &t.input;
    if input.actions.is_empty() {
        return Err("input.actions must not be empty".into());
    }
    check_unique("input.actions", &input.actions)?;
    for (what, list) in [
        ("input.principals", &input.principals),
        ("input.resources", &input.resources),
        ("input.principalGroups", &input.principal_groups),
        ("input.resourceGroups", &input.resource_groups),
    ] {
        if let Some(list) = list {
            check_unique(what, list)?;
        }
    }
    if !non_empty(&input.principals) && !non_empty(&input.principal_groups) {
        return Err("input needs principals or principalGroups".into());
    }
    if !non_empty(&input.resources) && !non_empty(&input.resource_groups) {
        return Err("input needs resources or resourceGroups".into());
    }
    if t.expected.is_empty() {
        return Err("expected must not be empty".into());
    }
    for (i, e) in t.expected.iter().enumerate() {
        validate_expectation(e).map_err(|err| format!("expected[{i}]: {err}"))?;
    }
    if let Some(o) = &t.options {
        validate_options(o).map_err(|e| format!("options: {e}"))?;
    }
    Ok(())
}

fn validate_expectation(e: &RawExpectation) -> Result<(), String> {
    let principal = e.principal.as_deref().unwrap_or("");
    let resource = e.resource.as_deref().unwrap_or("");
    if principal.is_empty() && !non_empty(&e.principals) && !non_empty(&e.principal_groups) {
        return Err("principal, principals, or principalGroups must be present".into());
    }
    if !principal.is_empty() && non_empty(&e.principals) {
        return Err("principal and principals may not both be present".into());
    }
    if resource.is_empty() && !non_empty(&e.resources) && !non_empty(&e.resource_groups) {
        return Err("resource, resources, or resourceGroups must be present".into());
    }
    if !resource.is_empty() && non_empty(&e.resources) {
        return Err("resource and resources may not both be present".into());
    }
    for (what, list) in [
        ("principals", &e.principals),
        ("resources", &e.resources),
        ("principalGroups", &e.principal_groups),
        ("resourceGroups", &e.resource_groups),
    ] {
        if let Some(list) = list {
            check_unique(what, list)?;
        }
    }
    if e.actions.is_empty() {
        return Err("actions must not be empty".into());
    }
    for (action, effect) in &e.actions {
        if action.is_empty() {
            return Err("empty action name".into());
        }
        parse_effect(effect).map_err(|err| format!("action {action:?}: {err}"))?;
    }
    for o in e.outputs.iter().flatten() {
        if o.action.is_empty() {
            return Err("outputs: empty action".into());
        }
        if o.expected.is_empty() {
            return Err(format!(
                "outputs for {:?}: expected must not be empty",
                o.action
            ));
        }
    }
    Ok(())
}

/// An expected effect; true for ALLOW. Only ALLOW and DENY are valid expectations.
fn parse_effect(v: &Json) -> Result<bool, String> {
    match v {
        Json::String(s) if s == EFFECT_ALLOW => Ok(true),
        Json::String(s) if s == EFFECT_DENY => Ok(false),
        Json::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Json::Number(n) if n.as_u64() == Some(2) => Ok(false),
        other => Err(format!(
            "expected EFFECT_ALLOW or EFFECT_DENY, found {other}"
        )),
    }
}

fn effect_name(allow: bool) -> &'static str {
    if allow {
        EFFECT_ALLOW
    } else {
        EFFECT_DENY
    }
}

// ---------------------------------------------------------------------------------------------
// Shared fixtures (`testdata/`)
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Fixture {
    principals: BTreeMap<String, RawPrincipal>,
    principal_groups: BTreeMap<String, Vec<String>>,
    resources: BTreeMap<String, RawResource>,
    resource_groups: BTreeMap<String, Vec<String>>,
    aux_data: BTreeMap<String, RawAuxData>,
}

#[derive(Default)]
struct FixtureCache {
    loaded: HashMap<PathBuf, Result<Arc<Fixture>, String>>,
}

impl FixtureCache {
    /// The fixtures for suites in `suite_dir` (empty when there is no `testdata` there).
    fn get(&mut self, suite_dir: &Path) -> Result<Arc<Fixture>, String> {
        let dir = suite_dir.join(TESTDATA);
        self.loaded
            .entry(dir.clone())
            .or_insert_with(|| load_fixture(&dir).map(Arc::new))
            .clone()
    }
}

/// Cerbos' lookup: the first directory entry (in name order) called `BASE.<ext>` with a
/// supported extension.
fn find_fixture_file(dir: &Path, base: &str) -> Result<Option<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let prefix = format!("{base}.");
    Ok(names
        .into_iter()
        .find(|n| n.starts_with(&prefix) && has_supported_ext(n))
        .map(|n| dir.join(n)))
}

fn load_fixture(dir: &Path) -> Result<Fixture, String> {
    let mut fx = Fixture::default();
    if !dir.is_dir() {
        return Ok(fx);
    }
    let wrap = |e: String| format!("failed to load test fixtures: {e}");
    if let Some(path) = find_fixture_file(dir, "principals").map_err(wrap)? {
        let file: RawPrincipalsFile =
            read_doc(&path).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
        fx.principals = file.principals.unwrap_or_default();
        for (k, p) in &fx.principals {
            validate_principal(k, p).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
        }
        let groups = file.principal_groups.unwrap_or_default();
        validate_principal_groups(&groups).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
        for (name, g) in groups {
            if let Some(missing) = g
                .principals
                .iter()
                .find(|m| !fx.principals.contains_key(*m))
            {
                return Err(wrap(format!(
                    "{}: missing fixture {missing:?} referenced in group {name:?}",
                    path.display()
                )));
            }
            fx.principal_groups.insert(name, g.principals);
        }
    }
    if let Some(path) = find_fixture_file(dir, "resources").map_err(wrap)? {
        let file: RawResourcesFile =
            read_doc(&path).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
        fx.resources = file.resources.unwrap_or_default();
        for (k, r) in &fx.resources {
            validate_resource(k, r).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
        }
        let groups = file.resource_groups.unwrap_or_default();
        validate_resource_groups(&groups).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
        for (name, g) in groups {
            if let Some(missing) = g.resources.iter().find(|m| !fx.resources.contains_key(*m)) {
                return Err(wrap(format!(
                    "{}: missing fixture {missing:?} referenced in group {name:?}",
                    path.display()
                )));
            }
            fx.resource_groups.insert(name, g.resources);
        }
    }
    for base in AUX_DATA_FILE_NAMES {
        if let Some(path) = find_fixture_file(dir, base).map_err(wrap)? {
            let file: RawAuxDataFile =
                read_doc(&path).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
            fx.aux_data = file.aux_data.unwrap_or_default();
            break;
        }
    }
    Ok(fx)
}

// ---------------------------------------------------------------------------------------------
// Running a suite
// ---------------------------------------------------------------------------------------------

/// A suite with its fixtures: suite definitions first, then `testdata`.
struct Scope<'a> {
    suite: &'a RawSuite,
    fixture: &'a Fixture,
}

impl Scope<'_> {
    fn principal(&self, name: &str) -> Result<&RawPrincipal, String> {
        self.suite
            .principals
            .as_ref()
            .and_then(|m| m.get(name))
            .or_else(|| self.fixture.principals.get(name))
            .ok_or_else(|| format!("principal {name:?} not found"))
    }

    fn resource(&self, name: &str) -> Result<&RawResource, String> {
        self.suite
            .resources
            .as_ref()
            .and_then(|m| m.get(name))
            .or_else(|| self.fixture.resources.get(name))
            .ok_or_else(|| format!("resource {name:?} not found"))
    }

    fn principal_group(&self, name: &str) -> Result<&[String], String> {
        self.suite
            .principal_groups
            .as_ref()
            .and_then(|m| m.get(name))
            .map(|g| g.principals.as_slice())
            .or_else(|| self.fixture.principal_groups.get(name).map(Vec::as_slice))
            .ok_or_else(|| format!("principal group {name:?} not found"))
    }

    fn resource_group(&self, name: &str) -> Result<&[String], String> {
        self.suite
            .resource_groups
            .as_ref()
            .and_then(|m| m.get(name))
            .map(|g| g.resources.as_slice())
            .or_else(|| self.fixture.resource_groups.get(name).map(Vec::as_slice))
            .ok_or_else(|| format!("resource group {name:?} not found"))
    }

    fn aux_data(&self, name: &str) -> Result<Option<&RawAuxData>, String> {
        if name.is_empty() {
            return Ok(None);
        }
        self.suite
            .aux_data
            .as_ref()
            .and_then(|m| m.get(name))
            .or_else(|| self.fixture.aux_data.get(name))
            .map(Some)
            .ok_or_else(|| format!("auxData {name:?} not found"))
    }

    /// Names from a single field, a list and groups; group members are added once each.
    fn collect(
        &self,
        single: Option<&str>,
        list: Option<&[String]>,
        groups: Option<&[String]>,
        lookup: impl Fn(&Self, &str) -> Result<Vec<String>, String>,
    ) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = match single.filter(|s| !s.is_empty()) {
            Some(s) => vec![s.to_string()],
            None => list.map(<[String]>::to_vec).unwrap_or_default(),
        };
        let mut seen: HashSet<String> = out.iter().cloned().collect();
        for group in groups.unwrap_or_default() {
            for member in lookup(self, group)? {
                if seen.insert(member.clone()) {
                    out.push(member);
                }
            }
        }
        Ok(out)
    }

    fn principal_group_members(&self, name: &str) -> Result<Vec<String>, String> {
        self.principal_group(name).map(<[String]>::to_vec)
    }

    fn resource_group_members(&self, name: &str) -> Result<Vec<String>, String> {
        self.resource_group(name).map(<[String]>::to_vec)
    }
}

/// One (principal, resource) pair of a test, with the expected effect of each input action.
struct Cell {
    principal: String,
    resource: String,
    expected: Vec<(String, bool)>,
}

/// A test table expanded into its cells, ready to run.
struct Prepared<'a> {
    table: &'a RawTable,
    cells: Vec<Cell>,
    has_outputs: bool,
}

fn build_cells(scope: &Scope<'_>, table: &RawTable) -> Result<Vec<Cell>, String> {
    let input = &table.input;
    let input_actions: BTreeSet<&str> = input.actions.iter().map(String::as_str).collect();

    let mut lookup: BTreeMap<(String, String), BTreeMap<String, bool>> = BTreeMap::new();
    for exp in &table.expected {
        if let Some(unreachable) = exp
            .outputs
            .iter()
            .flatten()
            .find(|o| !input_actions.contains(o.action.as_str()))
        {
            return Err(format!(
                "found output expectations for an action that is not in the input actions list: {:?}",
                unreachable.action
            ));
        }
        let extra: Vec<&str> = exp
            .actions
            .keys()
            .map(String::as_str)
            .filter(|a| !input_actions.contains(a))
            .collect();
        if !extra.is_empty() {
            return Err(format!(
                "found expectations for actions that do not exist in the input actions list: [{}]",
                extra.join(",")
            ));
        }
        let principals = scope.collect(
            exp.principal.as_deref(),
            exp.principals.as_deref(),
            exp.principal_groups.as_deref(),
            Scope::principal_group_members,
        )?;
        let resources = scope.collect(
            exp.resource.as_deref(),
            exp.resources.as_deref(),
            exp.resource_groups.as_deref(),
            Scope::resource_group_members,
        )?;
        for p in &principals {
            for r in &resources {
                let target = lookup.entry((p.clone(), r.clone())).or_default();
                for (action, effect) in &exp.actions {
                    let allow = parse_effect(effect)?;
                    match target.get(action) {
                        Some(old) if *old != allow => {
                            return Err(format!(
                                "found inconsistent expectations for principal {p:?} performing action {action:?} on resource {r:?}"
                            ))
                        }
                        Some(_) => {}
                        None => {
                            target.insert(action.clone(), allow);
                        }
                    }
                }
            }
        }
    }

    let principals = scope.collect(
        None,
        input.principals.as_deref(),
        input.principal_groups.as_deref(),
        Scope::principal_group_members,
    )?;
    let resources = scope.collect(
        None,
        input.resources.as_deref(),
        input.resource_groups.as_deref(),
        Scope::resource_group_members,
    )?;
    let mut cells = Vec::with_capacity(principals.len() * resources.len());
    for p in &principals {
        scope.principal(p)?;
        for r in &resources {
            scope.resource(r)?;
            let listed = lookup.remove(&(p.clone(), r.clone()));
            let expected = input
                .actions
                .iter()
                .map(|a| {
                    let allow = listed
                        .as_ref()
                        .and_then(|m| m.get(a).copied())
                        .unwrap_or(false);
                    (a.clone(), allow)
                })
                .collect();
            cells.push(Cell {
                principal: p.clone(),
                resource: r.clone(),
                expected,
            });
        }
    }
    if let Some((p, r)) = lookup.keys().next() {
        return Err(format!(
            "found an expectation for principal {p:?} and resource {r:?}, but at least one of these is not present in input"
        ));
    }
    scope.aux_data(input.aux_data.as_deref().unwrap_or(""))?;
    Ok(cells)
}

/// Engine settings for one test's options.
struct Engine {
    planner: Planner,
    now: Option<DateTime<FixedOffset>>,
    default_scope: String,
}

fn engine_for(set: &Arc<PolicySet>, options: Option<&RawOptions>) -> Result<Engine, String> {
    let o = options.cloned().unwrap_or_default();
    let globals = o
        .globals
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| (k.clone(), Value::from_json(v)))
        .collect();
    let default_version = o
        .default_policy_version
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let planner_options = PlannerOptions {
        globals,
        default_version,
        lenient_scope_search: o.lenient_scope_search.unwrap_or(false),
        error_semantics: ErrorSemantics::FailClosed,
        strict_evaluation: false,
        unroll_limit: None,
    };
    Ok(Engine {
        planner: Planner::new(Arc::clone(set), planner_options),
        now: o.now.as_deref().map(parse_now).transpose()?,
        default_scope: o.default_scope.unwrap_or_default(),
    })
}

fn attr_map(attr: Option<&serde_json::Map<String, Json>>) -> BTreeMap<String, Value> {
    attr.map(|a| {
        a.iter()
            .map(|(k, v)| (k.clone(), Value::from_json(v)))
            .collect()
    })
    .unwrap_or_default()
}

/// The outcome of one action check: the effect, or an error.
fn check_one(
    engine: &Engine,
    principal: &Principal,
    resource: &RawResource,
    attr: &BTreeMap<String, Value>,
    jwt: &BTreeMap<String, Value>,
    action: &str,
) -> Result<bool, String> {
    let actions = [action.to_string()];
    let scope = match resource.scope.as_deref() {
        Some(s) if !s.is_empty() => s,
        _ => engine.default_scope.as_str(),
    };
    let ask = |now: DateTime<FixedOffset>| {
        engine.planner.check(&PlanRequest {
            principal,
            resource_kind: &resource.kind,
            resource_scope: scope,
            resource_version: resource.policy_version.as_deref().unwrap_or(""),
            resource_attr: attr,
            resource_id: Some(&resource.id),
            attr_complete: true,
            actions: &actions,
            jwt,
            now,
        })
    };
    match engine.now {
        Some(now) => Ok(ask(now)),
        None => {
            let mut answers = Vec::with_capacity(NOW_PROBES.len());
            for probe in NOW_PROBES {
                answers.push(ask(parse_now(probe)?));
            }
            if answers.windows(2).any(|w| w[0] != w[1]) {
                return Err(
                    "a policy used a time-based condition, but `now` was not provided in the test options"
                        .into(),
                );
            }
            Ok(answers.first().copied().unwrap_or(false))
        }
    }
}

fn to_principal(p: &RawPrincipal, default_scope: &str) -> Principal {
    let scope = match p.scope.as_deref() {
        Some(s) if !s.is_empty() => s,
        _ => default_scope,
    };
    Principal {
        id: p.id.clone(),
        roles: p.roles.clone(),
        attr: attr_map(p.attr.as_ref()),
        scope: scope.to_string(),
        policy_version: p.policy_version.clone().unwrap_or_default(),
    }
}

/// Runs one suite file, printing its failures; `Err` when the suite cannot run at all.
fn run_file(
    set: &Arc<PolicySet>,
    file: &Path,
    shown: &str,
    fixtures: &mut FixtureCache,
    totals: &mut Totals,
) -> Result<(), String> {
    let suite: RawSuite = read_doc(file).map_err(|e| format!("failed to load test suite: {e}"))?;
    validate_suite(&suite).map_err(|e| format!("invalid test suite: {e}"))?;
    let fixture = fixtures.get(file.parent().unwrap_or(Path::new(".")))?;
    let scope = Scope {
        suite: &suite,
        fixture: &fixture,
    };

    // Suite groups may name suite or shared fixtures; checked even when the suite is skipped.
    for (name, g) in suite.principal_groups.iter().flatten() {
        for m in &g.principals {
            scope
                .principal(m)
                .map_err(|_| format!("invalid principal groups in test suite: missing fixture {m:?} referenced in group {name:?}"))?;
        }
    }
    for (name, g) in suite.resource_groups.iter().flatten() {
        for m in &g.resources {
            scope
                .resource(m)
                .map_err(|_| format!("invalid resource groups in test suite: missing fixture {m:?} referenced in group {name:?}"))?;
        }
    }

    if suite.skip.unwrap_or(false) {
        println!(
            "SKIP {} ({shown}): {}",
            suite.name,
            suite.skip_reason.as_deref().unwrap_or("suite skipped")
        );
        return Ok(());
    }

    let mut names = HashSet::new();
    for t in &suite.tests {
        if !names.insert(t.name.as_str()) {
            return Err(format!(
                "invalid test suite: another test named {:?} already exists",
                t.name
            ));
        }
    }

    // Cerbos builds every test before running any: one bad table errors the whole suite.
    let mut prepared = Vec::with_capacity(suite.tests.len());
    for table in &suite.tests {
        let cells = build_cells(&scope, table)
            .map_err(|e| format!("invalid test {:?}: {e}", table.name))?;
        prepared.push(Prepared {
            table,
            cells,
            has_outputs: table
                .expected
                .iter()
                .any(|e| e.outputs.as_ref().is_some_and(|o| !o.is_empty())),
        });
    }

    for Prepared {
        table,
        cells,
        has_outputs,
    } in &prepared
    {
        let checks: usize = cells.iter().map(|c| c.expected.len()).sum();
        if table.skip.unwrap_or(false) {
            println!(
                "SKIP {} / {}: {checks} {} skipped ({})",
                suite.name,
                table.name,
                if checks == 1 { "check" } else { "checks" },
                table.skip_reason.as_deref().unwrap_or("test skipped")
            );
            continue;
        }
        if *has_outputs {
            println!(
                "NOTE {} / {}: `outputs` expectations are accepted but not checked (vecgate does not evaluate rule outputs)",
                suite.name, table.name
            );
        }
        // A test's options replace the suite's; they are not merged.
        let options = table.options.as_ref().or(suite.options.as_ref());
        let engine = engine_for(set, options)?;
        let jwt = scope
            .aux_data(table.input.aux_data.as_deref().unwrap_or(""))?
            .map(|a| attr_map(a.jwt.as_ref()))
            .unwrap_or_default();
        for cell in cells {
            let principal = to_principal(scope.principal(&cell.principal)?, &engine.default_scope);
            let resource = scope.resource(&cell.resource)?;
            let attr = attr_map(resource.attr.as_ref());
            for (action, want) in &cell.expected {
                let got = check_one(&engine, &principal, resource, &attr, &jwt, action);
                let mut line = String::new();
                match got {
                    Ok(got) if got == *want => {
                        totals.passed += 1;
                        continue;
                    }
                    Ok(got) => {
                        let _ = write!(
                            line,
                            "want {}, got {}",
                            effect_name(*want),
                            effect_name(got)
                        );
                    }
                    Err(e) => {
                        let _ = write!(line, "want {}, got error: {e}", effect_name(*want));
                    }
                }
                totals.failed += 1;
                println!(
                    "FAIL {} / {} / {} / {} / {action}: {line}",
                    suite.name, table.name, cell.principal, cell.resource
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_file_names() {
        assert!(is_test_file("album_test.yaml"));
        assert!(is_test_file("album_TEST.YML"));
        assert!(is_test_file("a_test.json"));
        assert!(!is_test_file("album.yaml"));
        assert!(!is_test_file("album_test.txt"));
        assert!(!is_test_file("albumtest.yaml"));
    }

    #[test]
    fn effects() {
        assert_eq!(parse_effect(&Json::from("EFFECT_ALLOW")), Ok(true));
        assert_eq!(parse_effect(&Json::from("EFFECT_DENY")), Ok(false));
        assert!(parse_effect(&Json::from("EFFECT_NO_MATCH")).is_err());
        assert!(parse_effect(&Json::from("allow")).is_err());
    }
}
