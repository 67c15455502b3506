//! The raw policy types, mirroring Cerbos' policy schema field for field (unknown keys are
//! errors), and the format rules Cerbos' proto validation applies to names, versions and scopes.

use serde::Deserialize;
use serde_yaml_ng::Value as YValue;
use std::collections::BTreeMap;



pub(super) type List<T> = Option<Vec<T>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPolicy {
    pub(super) api_version: Option<String>,
    pub(super) disabled: Option<bool>,
    // `description`, `metadata`, `$schema`, `schemas` and `ignoreWhen` are checked for shape
    // and otherwise ignored.
    #[allow(dead_code)]
    pub(super) description: Option<String>,
    #[allow(dead_code)]
    pub(super) metadata: Option<RawMetadata>,
    #[serde(rename = "$schema")]
    #[allow(dead_code)]
    pub(super) json_schema: Option<String>,
    /// Deprecated top-level variables.
    pub(super) variables: Option<BTreeMap<String, String>>,
    pub(super) resource_policy: Option<RawResourcePolicy>,
    pub(super) principal_policy: Option<RawPrincipalPolicy>,
    pub(super) derived_roles: Option<RawDerivedRoles>,
    pub(super) role_policy: Option<RawRolePolicy>,
    pub(super) export_variables: Option<RawExportVariables>,
    pub(super) export_constants: Option<RawExportConstants>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct RawMetadata {
    pub(super) annotations: Option<BTreeMap<String, String>>,
    pub(super) hash: Option<YValue>,
    pub(super) source_file: Option<String>,
    pub(super) store_identifer: Option<String>,
    pub(super) store_identifier: Option<String>,
    pub(super) source_attributes: Option<YValue>,
}

#[derive(Clone, Copy, Deserialize)]
pub(super) enum RawEffect {
    #[serde(rename = "EFFECT_ALLOW")]
    Allow,
    #[serde(rename = "EFFECT_DENY")]
    Deny,
}

#[derive(Clone, Copy, Deserialize, PartialEq, Eq)]
pub(super) enum RawScopePermissions {
    #[serde(rename = "SCOPE_PERMISSIONS_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "SCOPE_PERMISSIONS_OVERRIDE_PARENT")]
    OverrideParent,
    #[serde(rename = "SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS")]
    RequireParentalConsentForAllows,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawVariables {
    pub(super) import: List<String>,
    pub(super) local: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawConstants {
    pub(super) import: List<String>,
    pub(super) local: Option<BTreeMap<String, YValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawCondition {
    #[serde(rename = "match")]
    pub(super) matcher: Option<RawMatch>,
    pub(super) script: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawMatch {
    pub(super) all: Option<RawExprList>,
    pub(super) any: Option<RawExprList>,
    pub(super) none: Option<RawExprList>,
    pub(super) expr: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawExprList {
    pub(super) of: List<RawMatch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawOutput {
    pub(super) expr: Option<String>,
    pub(super) when: Option<RawOutputWhen>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawOutputWhen {
    pub(super) rule_activated: Option<String>,
    pub(super) condition_not_met: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct RawSchemas {
    pub(super) principal_schema: Option<RawSchema>,
    pub(super) resource_schema: Option<RawSchema>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct RawSchema {
    #[serde(rename = "ref")]
    pub(super) reference: String,
    pub(super) ignore_when: Option<RawIgnoreWhen>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct RawIgnoreWhen {
    pub(super) actions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawResourcePolicy {
    pub(super) resource: Option<String>,
    pub(super) version: Option<String>,
    pub(super) import_derived_roles: List<String>,
    pub(super) rules: List<RawResourceRule>,
    pub(super) scope: Option<String>,
    pub(super) schemas: Option<RawSchemas>,
    pub(super) variables: Option<RawVariables>,
    pub(super) scope_permissions: Option<RawScopePermissions>,
    pub(super) constants: Option<RawConstants>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawResourceRule {
    pub(super) actions: List<String>,
    pub(super) derived_roles: List<String>,
    pub(super) roles: List<String>,
    pub(super) condition: Option<RawCondition>,
    pub(super) effect: Option<RawEffect>,
    pub(super) name: Option<String>,
    pub(super) output: Option<RawOutput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPrincipalPolicy {
    pub(super) principal: Option<String>,
    pub(super) version: Option<String>,
    pub(super) rules: List<RawPrincipalRule>,
    pub(super) scope: Option<String>,
    pub(super) variables: Option<RawVariables>,
    pub(super) scope_permissions: Option<RawScopePermissions>,
    pub(super) constants: Option<RawConstants>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPrincipalRule {
    pub(super) resource: Option<String>,
    pub(super) actions: List<RawPrincipalAction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPrincipalAction {
    pub(super) action: Option<String>,
    pub(super) condition: Option<RawCondition>,
    pub(super) effect: Option<RawEffect>,
    pub(super) name: Option<String>,
    pub(super) output: Option<RawOutput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawDerivedRoles {
    pub(super) name: Option<String>,
    pub(super) definitions: List<RawRoleDef>,
    pub(super) variables: Option<RawVariables>,
    pub(super) constants: Option<RawConstants>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawRoleDef {
    pub(super) name: Option<String>,
    pub(super) parent_roles: List<String>,
    pub(super) condition: Option<RawCondition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawRolePolicy {
    pub(super) role: Option<String>,
    pub(super) version: Option<String>,
    pub(super) parent_roles: List<String>,
    pub(super) scope: Option<String>,
    pub(super) rules: List<RawRoleRule>,
    pub(super) scope_permissions: Option<RawScopePermissions>,
    pub(super) variables: Option<RawVariables>,
    pub(super) constants: Option<RawConstants>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawRoleRule {
    pub(super) resource: Option<String>,
    pub(super) allow_actions: List<String>,
    pub(super) condition: Option<RawCondition>,
    pub(super) name: Option<String>,
    pub(super) output: Option<RawOutput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawExportVariables {
    pub(super) name: Option<String>,
    pub(super) definitions: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawExportConstants {
    pub(super) name: Option<String>,
    pub(super) definitions: Option<BTreeMap<String, YValue>>,
}

// ---------------------------------------------------------------------------------------------
// Format rules (Cerbos' proto validation)
// ---------------------------------------------------------------------------------------------

pub(super) fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `^\w+$`
pub(super) fn valid_version(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_word)
}

/// `^[\w\-\.]+$`: derived-role names, import names, export names.
pub(super) fn valid_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| is_word(c) || c == '-' || c == '.')
}

/// `^([a-zA-Z][\w@\.\-]*)*$`: rule names.
pub(super) fn valid_rule_name(s: &str) -> bool {
    let mut cs = s.chars();
    match cs.next() {
        None => true,
        Some(c) => c.is_ascii_alphabetic() && cs.all(|c| is_word(c) || "@.-".contains(c)),
    }
}

/// `^[^!*?\[\]{}]+$`: resource kinds, principal ids and role names of policies.
pub(super) fn valid_policy_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| "!*?[]{}".contains(c))
}

/// `^(^$|\.|[0-9a-zA-Z][\w\-]*(\.\w[\w\-]*)*)$`
pub(super) fn valid_scope(s: &str) -> bool {
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

pub(super) fn non_empty(s: &str) -> bool {
    !s.is_empty()
}

/// The parent scopes of `scope`, nearest first, ending with the root `""`.
pub(super) fn ancestors(scope: &str) -> Vec<String> {
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

pub(super) fn normalise_scope(s: &str) -> String {
    if s == "." {
        String::new()
    } else {
        s.to_string()
    }
}

/// The only `apiVersion` Cerbos defines.
pub(super) const API_VERSION: &str = "api.cerbos.dev/v1";

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
}
