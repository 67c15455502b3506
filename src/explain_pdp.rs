//! Explain with an existing Cerbos PDP as the policy source (`policies.pdp`): the PDP decides,
//! so the report is the PDP's own account of its decision — CheckResources with `includeMeta`
//! (the policy that matched, its scope, the active derived roles, the call id its audit log
//! uses) — plus what vecgate does with it: the PDP's plan for the principal (PlanResources,
//! read by the same exact-or-refused translator as the proxy), the database filter it becomes,
//! whether this record passes it, and whether the proxy serves the record.
//!
//! Invariants:
//! - The decision is the PDP's check; nothing here re-decides. Rule-by-rule traces are the
//!   embedded engine's (`policies.dir`): a PDP does not expose them.
//! - The proxy serves a record exactly when the plan admits it and the check allows it
//!   (`served`), because with a PDP every hit is confirmed by its check. Where the PDP's plan
//!   admits what its check denies (its planner is not always faithful to its check), the
//!   report says so in `note`: the proxy strips that record from answers.
//! - Any PDP failure is an error, never a default answer.

use crate::config::Config;
use crate::explain_request::{database_filter, ExplainInput};
use crate::plan::eval::allows;
use crate::policy::explain::{plan_text, principal_json, record_env, resource_json, FilterReport, DOCUMENT_VERSION};
use crate::policy::pdp::{JwtAux, PdpClient, PdpError};
use serde::Serialize;

/// The report (JSON: fields are only ever added).
#[derive(Clone, Debug, Serialize)]
pub struct PdpExplanation {
    pub version: u32,
    /// Always `pdp`: the decision is an existing PDP's.
    pub source: &'static str,
    pub pdp: String,
    pub action: String,
    pub allowed: bool,
    /// `ALLOW` or `DENY`.
    pub decision: &'static str,
    /// One sentence: what decided.
    pub reason: String,
    /// The PDP's `matchedPolicy` (empty: no policy matched, so the action is denied).
    pub matched_policy: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub matched_scope: String,
    pub effective_derived_roles: Vec<String>,
    /// The PDP's `cerbosCallId`: find the decision in its audit log by it.
    pub pdp_call_id: String,
    pub principal: serde_json::Value,
    pub resource: serde_json::Value,
    /// The PDP's plan for this principal as vecgate reads it, judged on the record.
    /// `agrees_with_check` false here is the PDP's planner disagreeing with its own check.
    pub filter: FilterReport,
    /// Whether the proxy returns this record: the plan admits it and the check allows it.
    pub served: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Asks the PDP about `input` and builds the report. `token` is the caller's token when the
/// principal came from one: sent as `auxData.jwt.token` if the PDP asks for tokens
/// (`policies.pdp.send_token`), as the proxy sends it.
pub async fn answer_with_pdp(
    client: &PdpClient,
    config: Option<&Config>,
    input: &ExplainInput,
    token: Option<&str>,
) -> Result<PdpExplanation, PdpError> {
    let jwt = token
        .filter(|_| client.sends_token())
        .map(|token| JwtAux { token: token.trim(), claims: &input.jwt });
    let checked = client
        .check_explained(&input.principal, jwt, &input.kind, &input.action, (&input.id, &input.attr))
        .await?;
    let plan = client.plan(&input.principal, jwt, &input.kind, &input.action).await?;
    let record = record_env(&input.id, &input.kind, &input.attr, chrono::Utc::now().fixed_offset());
    let record_matches = allows(&plan, &record);
    let (database_filter, database_filter_note) = match (config, &input.collection) {
        (Some(config), Some(collection)) => database_filter(config, collection, &plan),
        _ => (None, None),
    };
    let reason = match (checked.allowed, checked.matched_policy.is_empty()) {
        (false, true) => "no policy of the PDP matched this action: denied".to_string(),
        (allowed, _) => format!(
            "the PDP's check {} it, decided by {}{}",
            if allowed { "allows" } else { "denies" },
            checked.matched_policy,
            if checked.matched_scope.is_empty() { String::new() } else { format!(" (scope {:?})", checked.matched_scope) },
        ),
    };
    let note = (record_matches && !checked.allowed).then(|| {
        "the PDP's plan admits this record but its check denies it (its planner is not always \
         faithful to its check, e.g. a principal policy's DENY): the proxy confirms every hit \
         with the check and strips this one"
            .to_string()
    });
    Ok(PdpExplanation {
        version: DOCUMENT_VERSION,
        source: "pdp",
        pdp: client.url().to_string(),
        action: input.action.clone(),
        allowed: checked.allowed,
        decision: if checked.allowed { "ALLOW" } else { "DENY" },
        reason,
        matched_policy: checked.matched_policy,
        matched_scope: checked.matched_scope,
        effective_derived_roles: checked.effective_derived_roles,
        pdp_call_id: checked.call_id,
        principal: principal_json(&input.principal),
        resource: resource_json(&input.kind, &input.id, &input.scope, &input.attr),
        filter: FilterReport {
            plan: plan.to_cerbos_json(),
            plan_text: plan_text(&plan),
            record_matches,
            agrees_with_check: record_matches == checked.allowed,
            database_filter,
            database_filter_note,
        },
        served: record_matches && checked.allowed,
        note,
    })
}

/// The report as text, for `vecgate explain --output text`.
pub fn to_text(report: &PdpExplanation) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:?} {} {} {:?}: {} (asked the Cerbos PDP at {})\n",
        report.principal["id"].as_str().unwrap_or_default(),
        report.action,
        report.resource["kind"].as_str().unwrap_or_default(),
        report.resource["id"].as_str().unwrap_or_default(),
        report.decision,
        report.pdp,
    ));
    out.push_str(&format!("  why: {}\n", report.reason));
    if !report.effective_derived_roles.is_empty() {
        out.push_str(&format!("  active derived roles: {}\n", report.effective_derived_roles.join(", ")));
    }
    out.push_str(&format!("  PDP call id: {}\n", report.pdp_call_id));
    out.push_str(&format!(
        "  the PDP's plan for this principal: {} (this record {})\n",
        report.filter.plan_text,
        if report.filter.record_matches { "passes it" } else { "does not pass it" },
    ));
    if let Some(f) = &report.filter.database_filter {
        out.push_str(&format!("  database filter: {f}\n"));
    }
    if let Some(n) = &report.filter.database_filter_note {
        out.push_str(&format!("  database filter: {n}\n"));
    }
    out.push_str(&format!("  served by the proxy: {}\n", if report.served { "yes" } else { "no" }));
    if let Some(n) = &report.note {
        out.push_str(&format!("  note: {n}\n"));
    }
    out
}
