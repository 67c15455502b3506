//! The PDP's HTTP API as JSON: PlanResources and CheckResources request bodies built from
//! vecgate's types, and their answers read back. Nothing here talks to the network.

use super::PdpError;
use crate::plan::Value;
use crate::policy::planner::Principal;
use serde_json::{json, Map, Value as Json};
use std::collections::BTreeMap;

/// `request.principal` as the PDP takes it.
pub(super) fn principal(p: &Principal) -> Json {
    let mut out = Map::new();
    out.insert("id".into(), json!(p.id));
    out.insert("roles".into(), json!(p.roles));
    out.insert("attr".into(), attributes(&p.attr));
    if !p.scope.is_empty() {
        out.insert("scope".into(), json!(p.scope));
    }
    if !p.policy_version.is_empty() {
        out.insert("policyVersion".into(), json!(p.policy_version));
    }
    Json::Object(out)
}

fn attributes(attr: &BTreeMap<String, Value>) -> Json {
    Json::Object(attr.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

/// `auxData` carrying the caller's token, when there is one.
fn aux_data(token: Option<&str>) -> Option<Json> {
    token.map(|t| json!({"jwt": {"token": t}}))
}

/// A PlanResources body for one action on a kind (no resource attributes known).
pub(super) fn plan_request(
    request_id: &str,
    principal_json: &Json,
    token: Option<&str>,
    kind: &str,
    action: &str,
) -> Json {
    let mut body = json!({
        "requestId": request_id,
        "action": action,
        "principal": principal_json,
        "resource": {"kind": kind},
    });
    if let Some(aux) = aux_data(token) {
        body["auxData"] = aux;
    }
    body
}

/// A CheckResources body asking `action` on each resource.
pub(super) fn check_request(
    request_id: &str,
    principal_json: &Json,
    token: Option<&str>,
    kind: &str,
    action: &str,
    resources: &[(&str, &BTreeMap<String, Value>)],
) -> Json {
    let entries: Vec<Json> = resources
        .iter()
        .map(|(id, attr)| {
            json!({
                "actions": [action],
                "resource": {"kind": kind, "id": id, "attr": attributes(attr)},
            })
        })
        .collect();
    let mut body = json!({
        "requestId": request_id,
        "principal": principal_json,
        "resources": entries,
    });
    if let Some(aux) = aux_data(token) {
        body["auxData"] = aux;
    }
    body
}

/// A CheckResources body asking `action` on one resource, with the PDP's explanation
/// (`includeMeta`: the policy that matched and the derived roles that were active).
pub(super) fn explained_check_request(
    request_id: &str,
    principal_json: &Json,
    token: Option<&str>,
    kind: &str,
    action: &str,
    resource: (&str, &BTreeMap<String, Value>),
) -> Json {
    let mut body = check_request(request_id, principal_json, token, kind, action, &[resource]);
    body["includeMeta"] = json!(true);
    body
}

/// The PDP's decision on one action of one resource, with what it says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplainedEffect {
    pub allowed: bool,
    /// `matchedPolicy` (e.g. `resource.document.vdefault`); empty when none matched.
    pub matched_policy: String,
    /// `matchedScope`, when the policy that decided was scoped.
    pub matched_scope: String,
    pub effective_derived_roles: Vec<String>,
    /// `cerbosCallId`: the PDP's own audit log names the decision by it.
    pub call_id: String,
}

/// The answer to [`explained_check_request`].
pub(super) fn explained_check_answer(
    answer: &Json,
    action: &str,
    resource: (&str, &BTreeMap<String, Value>),
) -> Result<ExplainedEffect, PdpError> {
    let allowed = check_answer(answer, action, &[resource])?.first().copied().unwrap_or(false);
    let meta = &answer["results"][0]["meta"];
    let text = |v: &Json| v.as_str().unwrap_or_default().to_string();
    Ok(ExplainedEffect {
        allowed,
        matched_policy: text(&meta["actions"][action]["matchedPolicy"]),
        matched_scope: text(&meta["actions"][action]["matchedScope"]),
        effective_derived_roles: meta["effectiveDerivedRoles"]
            .as_array()
            .map(|roles| roles.iter().map(text).collect())
            .unwrap_or_default(),
        call_id: text(&answer["cerbosCallId"]),
    })
}

/// The `filter` of a PlanResources answer.
pub(super) fn plan_answer(answer: &Json) -> Result<&Json, PdpError> {
    answer
        .get("filter")
        .filter(|f| f.is_object())
        .ok_or_else(|| PdpError::BadAnswer("a PlanResources answer without a filter".into()))
}

/// The effects of a CheckResources answer for `action`, one per resource asked, in order.
/// Anything but a result per resource, in order, with the action's effect, is a bad answer.
pub(super) fn check_answer(
    answer: &Json,
    action: &str,
    resources: &[(&str, &BTreeMap<String, Value>)],
) -> Result<Vec<bool>, PdpError> {
    let results = answer
        .get("results")
        .and_then(Json::as_array)
        .ok_or_else(|| PdpError::BadAnswer("a CheckResources answer without results".into()))?;
    if results.len() != resources.len() {
        return Err(PdpError::BadAnswer(format!(
            "{} results for {} resources",
            results.len(),
            resources.len()
        )));
    }
    results
        .iter()
        .zip(resources)
        .map(|(r, (id, _))| {
            if r["resource"]["id"].as_str() != Some(id) {
                return Err(PdpError::BadAnswer(format!(
                    "a result for resource {} where {id:?} was asked",
                    r["resource"]["id"]
                )));
            }
            match r["actions"][action].as_str() {
                Some("EFFECT_ALLOW") => Ok(true),
                Some("EFFECT_DENY") => Ok(false),
                other => Err(PdpError::BadAnswer(format!(
                    "effect {other:?} for action {action:?} of resource {id:?}"
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_answers_are_read_in_order_and_checked() {
        let attr = BTreeMap::new();
        let asked = [("a", &attr), ("b", &attr)];
        let answer = json!({"results": [
            {"resource": {"id": "a"}, "actions": {"read": "EFFECT_ALLOW"}},
            {"resource": {"id": "b"}, "actions": {"read": "EFFECT_DENY"}},
        ]});
        assert_eq!(check_answer(&answer, "read", &asked), Ok(vec![true, false]));
        let swapped = json!({"results": [answer["results"][1], answer["results"][0]]});
        assert!(matches!(check_answer(&swapped, "read", &asked), Err(PdpError::BadAnswer(_))));
        let other_action = json!({"results": [
            {"resource": {"id": "a"}, "actions": {"write": "EFFECT_ALLOW"}},
            {"resource": {"id": "b"}, "actions": {"read": "EFFECT_DENY"}},
        ]});
        assert!(matches!(check_answer(&other_action, "read", &asked), Err(PdpError::BadAnswer(_))));
        assert!(matches!(check_answer(&json!({}), "read", &asked), Err(PdpError::BadAnswer(_))));
    }
}
