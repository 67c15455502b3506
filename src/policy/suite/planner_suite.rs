//! Cerbos query-planner suite files (`QueryPlannerTestSuite`): a principal and a list of
//! (actions, resource, expected plan). Used by `vecgate plan-suite` and the conformance tests.

use super::yaml::yaml_to_json;
use crate::plan::{Plan, Value};
use crate::policy::planner::{PlanRequest, Planner, Principal};
use chrono::{DateTime, FixedOffset};
use serde_json::Value as Json;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("suite YAML: {0}")]
    Yaml(String),
    #[error("suite format: {0}")]
    Format(String),
}

/// The instant Cerbos' planner suites fix `now()` at.
pub const SUITE_NOW: &str = "2024-01-16T10:18:27.395+13:00";

/// One case's outcome.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// `file#index action(s)`.
    pub name: String,
    pub passed: bool,
    pub want: Json,
    pub got: Json,
}

fn json_attr_map(v: Option<&Json>) -> BTreeMap<String, Value> {
    v.and_then(Json::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), Value::from_json(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn str_field<'a>(v: &'a Json, key: &str) -> &'a str {
    v.get(key).and_then(Json::as_str).unwrap_or("")
}

/// Runs every case of one suite file.
pub fn run_suite(
    planner: &Planner,
    file_name: &str,
    text: &str,
    jwt: &BTreeMap<String, Value>,
    now: DateTime<FixedOffset>,
) -> Result<Vec<CaseResult>, SuiteError> {
    let suite = yaml_to_json(text).map_err(SuiteError::Yaml)?;
    let p = suite
        .get("principal")
        .ok_or_else(|| SuiteError::Format("missing principal".into()))?;
    let principal = Principal {
        id: str_field(p, "id").to_string(),
        roles: p
            .get("roles")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        attr: json_attr_map(p.get("attr")),
        scope: str_field(p, "scope").to_string(),
        policy_version: str_field(p, "policyVersion").to_string(),
    };
    let tests = suite
        .get("tests")
        .and_then(Json::as_array)
        .ok_or_else(|| SuiteError::Format("missing tests".into()))?;
    let mut out = Vec::with_capacity(tests.len());
    for (i, t) in tests.iter().enumerate() {
        let actions: Vec<String> = match (t.get("action"), t.get("actions")) {
            (Some(Json::String(a)), _) => vec![a.clone()],
            (_, Some(Json::Array(a))) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => return Err(SuiteError::Format(format!("test {i}: no action"))),
        };
        let r = t
            .get("resource")
            .ok_or_else(|| SuiteError::Format(format!("test {i}: no resource")))?;
        let resource_attr = json_attr_map(r.get("attr"));
        let request = PlanRequest {
            principal: &principal,
            resource_kind: str_field(r, "kind"),
            resource_scope: str_field(r, "scope"),
            resource_version: str_field(r, "policyVersion"),
            resource_attr: &resource_attr,
            resource_id: None,
            attr_complete: false,
            actions: &actions,
            jwt,
            now,
        };
        let want = t
            .get("want")
            .ok_or_else(|| SuiteError::Format(format!("test {i}: no want")))?;
        let got = planner.plan(&request).plan.to_cerbos_json();
        let passed = canonical(want) == canonical(&got);
        out.push(CaseResult {
            name: format!("{file_name}#{i} {}", actions.join(",")),
            passed,
            want: want.clone(),
            got,
        });
    }
    Ok(out)
}

/// Cerbos' comparison form: abbreviations expanded, numbers as doubles, every operand list
/// sorted by canonical JSON (the expectations do not pin operand order).
pub fn canonical(v: &Json) -> Json {
    match v {
        Json::Object(o) => {
            let mut out = serde_json::Map::new();
            for (k, val) in o {
                let c = match (k.as_str(), val) {
                    ("variable", Json::String(s)) => {
                        Json::String(crate::plan::normalise::expand_abbreviation(s))
                    }
                    ("operands", Json::Array(items)) => {
                        let mut items: Vec<Json> = items.iter().map(canonical).collect();
                        items.sort_by_key(|i| i.to_string());
                        Json::Array(items)
                    }
                    _ => canonical(val),
                };
                out.insert(k.clone(), c);
            }
            Json::Object(out)
        }
        Json::Array(items) => Json::Array(items.iter().map(canonical).collect()),
        Json::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        other => other.clone(),
    }
}

/// Reads a plan in Cerbos JSON and re-serialises it; used to compare normalisation cases.
pub fn plan_from_json(v: &Json) -> Result<Plan, SuiteError> {
    Plan::from_cerbos_json(v).map_err(SuiteError::Format)
}
