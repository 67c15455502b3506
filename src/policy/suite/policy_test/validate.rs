//! The rules of Cerbos' schema and proto validators that matter for suites: names present and
//! unique, principals with roles, expectations naming who and what, effects ALLOW or DENY.

use super::format::{
    RawExpectation, RawOptions, RawPrincipal, RawPrincipalGroup, RawResource, RawResourceGroup,
    RawSuite, RawTable,
};
use chrono::{DateTime, FixedOffset};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashSet};

const EFFECT_ALLOW: &str = "EFFECT_ALLOW";
const EFFECT_DENY: &str = "EFFECT_DENY";

pub(super) fn check_unique(what: &str, items: &[String]) -> Result<(), String> {
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

pub(super) fn validate_principal(key: &str, p: &RawPrincipal) -> Result<(), String> {
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

pub(super) fn validate_resource(key: &str, r: &RawResource) -> Result<(), String> {
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

pub(super) fn validate_principal_groups(
    groups: &BTreeMap<String, RawPrincipalGroup>,
) -> Result<(), String> {
    for (name, g) in groups {
        if g.principals.is_empty() {
            return Err(format!("principal group {name:?} is empty"));
        }
        check_unique(&format!("principal group {name:?}"), &g.principals)?;
    }
    Ok(())
}

pub(super) fn validate_resource_groups(
    groups: &BTreeMap<String, RawResourceGroup>,
) -> Result<(), String> {
    for (name, g) in groups {
        if g.resources.is_empty() {
            return Err(format!("resource group {name:?} is empty"));
        }
        check_unique(&format!("resource group {name:?}"), &g.resources)?;
    }
    Ok(())
}

pub(super) fn validate_suite(suite: &RawSuite) -> Result<(), String> {
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

pub(super) fn validate_options(o: &RawOptions) -> Result<(), String> {
    if let Some(now) = &o.now {
        parse_now(now)?;
    }
    Ok(())
}

pub(super) fn parse_now(text: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("now {text:?} is not an RFC 3339 time: {e}"))
}

pub(super) fn non_empty(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

pub(super) fn validate_table(t: &RawTable) -> Result<(), String> {
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

pub(super) fn validate_expectation(e: &RawExpectation) -> Result<(), String> {
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
pub(super) fn parse_effect(v: &Json) -> Result<bool, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects() {
        assert_eq!(parse_effect(&Json::from("EFFECT_ALLOW")), Ok(true));
        assert_eq!(parse_effect(&Json::from("EFFECT_DENY")), Ok(false));
        assert!(parse_effect(&Json::from("EFFECT_NO_MATCH")).is_err());
        assert!(parse_effect(&Json::from("allow")).is_err());
    }
}
