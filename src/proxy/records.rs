//! What every written record must satisfy, whatever the backend: stamped values from the
//! principal, and required attributes that stay non-null scalars.

use super::authorize::Decider;
use super::respond::ProxyError;
use crate::backends::FieldMapping;
use crate::config::StampSource;
use crate::plan::Value;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// The attribute values a collection's `stamp` sets on written records, from the principal.
/// A stamp naming an attribute the principal lacks refuses the write.
pub fn stamp_values(
    stamps: &BTreeMap<String, StampSource>,
    decider: &Decider<'_>,
) -> Result<Vec<(String, Json)>, ProxyError> {
    let principal = &decider.auth.principal;
    stamps
        .iter()
        .map(|(name, source)| {
            let value = match source {
                StampSource::Id => Json::String(principal.id.clone()),
                StampSource::Attr(attr) => principal.attr.get(attr).map(Value::to_json).ok_or_else(|| {
                    ProxyError::Forbidden(format!(
                        "cannot stamp {name:?}: the principal has no attribute {attr:?}"
                    ))
                })?,
            };
            Ok((name.clone(), value))
        })
        .collect()
}

/// The first required attribute a record lacks or holds as null, a list or a map. Read
/// filters translate negations over required attributes directly, so writes must keep them.
pub fn missing_required<'m>(attr: &BTreeMap<String, Value>, mapping: &'m FieldMapping) -> Option<&'m str> {
    mapping.required_attrs.iter().map(String::as_str).find(|name| {
        !matches!(
            attr.get(*name),
            Some(Value::String(_) | Value::Int(_) | Value::Uint(_) | Value::Double(_) | Value::Bool(_))
        )
    })
}
