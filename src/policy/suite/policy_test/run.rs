//! Running suites: one engine per test's options, one check per (principal, resource, action),
//! collected into a report.

use super::fixtures::FixtureCache;
use super::format::{read_doc, RawOptions, RawPrincipal, RawResource, RawSuite};
use super::report::{CheckOutcome, Event};
use super::table::{build_cells, Prepared, Scope};
use super::validate::{parse_now, validate_suite};
use crate::plan::Value;
use crate::policy::model::PolicySet;
use crate::policy::evaluation::Evaluation;
use crate::policy::planner::{PlanRequest, Planner, PlannerOptions, Principal};
use chrono::{DateTime, FixedOffset};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// When a test sets no `now`, conditions are evaluated at both instants; if the answers
/// differ, a policy read the clock and the check errors (Cerbos: "a policy used a
/// time-based condition, but `now` was not provided in the test options").
const NOW_PROBES: [&str; 2] = ["1970-01-01T00:00:00Z", "2100-01-01T00:00:00Z"];

/// Engine settings for one test's options.
pub(super) struct Engine {
    pub(super) planner: Planner,
    pub(super) now: Option<DateTime<FixedOffset>>,
}

pub(super) fn engine_for(
    set: &Arc<PolicySet>,
    evaluation: Evaluation,
    options: Option<&RawOptions>,
) -> Result<Engine, String> {
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
    // `strictEvaluation: true` is Cerbos' strict mode; otherwise the mode asked for.
    let evaluation = if o.strict_evaluation == Some(true) {
        Evaluation::CerbosStrict
    } else {
        evaluation
    };
    let planner_options = PlannerOptions {
        globals,
        default_version,
        // Where policies are looked up; `R.scope`/`P.scope` keep the fixtures' values.
        default_scope: o.default_scope.unwrap_or_default(),
        lenient_scope_search: o.lenient_scope_search.unwrap_or(false),
        evaluation,
        unroll_limit: None,
        cerbos_planner: false,
    };
    Ok(Engine {
        planner: Planner::new(Arc::clone(set), planner_options),
        now: o.now.as_deref().map(parse_now).transpose()?,
    })
}

pub(super) fn attr_map(attr: Option<&serde_json::Map<String, Json>>) -> BTreeMap<String, Value> {
    attr.map(|a| {
        a.iter()
            .map(|(k, v)| (k.clone(), Value::from_json(v)))
            .collect()
    })
    .unwrap_or_default()
}

/// The outcome of one action check: the effect, or an error.
pub(super) fn check_one(
    engine: &Engine,
    principal: &Principal,
    resource: &RawResource,
    attr: &BTreeMap<String, Value>,
    jwt: &BTreeMap<String, Value>,
    action: &str,
) -> Result<bool, String> {
    let actions = [action.to_string()];
    let scope = resource.scope.as_deref().unwrap_or("");
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

pub(super) fn to_principal(p: &RawPrincipal) -> Principal {
    let scope = p.scope.as_deref().unwrap_or("");
    Principal {
        id: p.id.clone(),
        roles: p.roles.clone(),
        attr: attr_map(p.attr.as_ref()),
        scope: scope.to_string(),
        policy_version: p.policy_version.clone().unwrap_or_default(),
    }
}

/// Runs one suite file, adding its events; `Err` when the suite cannot run at all.
pub(super) fn run_file(
    set: &Arc<PolicySet>,
    evaluation: Evaluation,
    file: &Path,
    shown: &str,
    fixtures: &mut FixtureCache,
    events: &mut Vec<Event>,
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
        events.push(Event::Skip(format!(
            "{} ({shown}): {}",
            suite.name,
            suite.skip_reason.as_deref().unwrap_or("suite skipped")
        )));
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
            events.push(Event::Skip(format!(
                "{} / {}: {checks} {} skipped ({})",
                suite.name,
                table.name,
                if checks == 1 { "check" } else { "checks" },
                table.skip_reason.as_deref().unwrap_or("test skipped")
            )));
            continue;
        }
        if *has_outputs {
            events.push(Event::OutputsNotChecked {
                suite: suite.name.clone(),
                test: table.name.clone(),
            });
        }
        // A test's options replace the suite's; they are not merged.
        let options = table.options.as_ref().or(suite.options.as_ref());
        let engine = engine_for(set, evaluation, options)?;
        let jwt = scope
            .aux_data(table.input.aux_data.as_deref().unwrap_or(""))?
            .map(|a| attr_map(a.jwt.as_ref()))
            .unwrap_or_default();
        for cell in cells {
            let principal = to_principal(scope.principal(&cell.principal)?);
            let resource = scope.resource(&cell.resource)?;
            let attr = attr_map(resource.attr.as_ref());
            for (action, want) in &cell.expected {
                events.push(Event::Check(CheckOutcome {
                    file: shown.to_string(),
                    suite: suite.name.clone(),
                    test: table.name.clone(),
                    principal: cell.principal.clone(),
                    resource: cell.resource.clone(),
                    action: action.clone(),
                    want: *want,
                    got: check_one(&engine, &principal, resource, &attr, &jwt, action),
                }));
            }
        }
    }
    Ok(())
}
