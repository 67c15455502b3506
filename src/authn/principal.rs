//! Verified claims → the [`Principal`] policies see, following `auth.principal`.

use super::jwt::Claims;
use super::AuthnError;
use crate::config::PrincipalMapping;
use crate::plan::Value;
use crate::policy::planner::Principal;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// The claim at a dotted `path` (`sub`, `user.id`). A top-level claim whose name is the whole
/// path wins, so namespaced claims such as `https://example.com/roles` work as written.
pub fn claim_at<'c>(claims: &'c Claims, path: &str) -> Option<&'c Json> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut segments = path.split('.');
    let first = claims.get(segments.next()?)?;
    segments.try_fold(first, |value, segment| value.as_object()?.get(segment))
}

/// Every claim as a CEL value, keyed by its top-level name.
pub fn claims_as_values(claims: &Claims) -> BTreeMap<String, Value> {
    claims
        .iter()
        .map(|(name, value)| (name.clone(), Value::from_json(value)))
        .collect()
}

/// Builds the principal. Fails closed: a missing id or roles claim is
/// [`AuthnError::MissingClaim`], a wrongly typed or empty one [`AuthnError::BadClaim`].
pub fn principal_from_claims(
    claims: &Claims,
    mapping: &PrincipalMapping,
) -> Result<Principal, AuthnError> {
    let id = principal_id(claims, &mapping.id)?;
    let roles = principal_roles(claims, &mapping.roles)?;
    let attr = match &mapping.attr {
        None => claims_as_values(claims),
        Some(paths) => paths
            .iter()
            .filter_map(|(name, path)| {
                claim_at(claims, path).map(|value| (name.clone(), Value::from_json(value)))
            })
            .collect(),
    };
    Ok(Principal {
        id,
        roles,
        attr,
        ..Principal::default()
    })
}

/// A non-empty string, or an integer rendered in decimal.
fn principal_id(claims: &Claims, path: &str) -> Result<String, AuthnError> {
    let bad = || AuthnError::BadClaim {
        claim: path.to_string(),
        expected: "a non-empty string or an integer",
    };
    match claim_at(claims, path) {
        None | Some(Json::Null) => Err(AuthnError::MissingClaim {
            claim: path.to_string(),
        }),
        Some(Json::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Json::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(_) => Err(bad()),
    }
}

/// A non-empty list of non-empty strings, or one non-empty string (one role; it is not split).
/// An empty list is refused, as Cerbos refuses a principal without roles.
fn principal_roles(claims: &Claims, path: &str) -> Result<Vec<String>, AuthnError> {
    let bad = || AuthnError::BadClaim {
        claim: path.to_string(),
        expected: "a non-empty string or a non-empty list of them",
    };
    let as_role = |v: &Json| match v {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    match claim_at(claims, path) {
        None | Some(Json::Null) => Err(AuthnError::MissingClaim {
            claim: path.to_string(),
        }),
        Some(Json::Array(items)) if !items.is_empty() => items
            .iter()
            .map(as_role)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad),
        Some(single) => as_role(single).map(|role| vec![role]).ok_or_else(bad),
    }
}
