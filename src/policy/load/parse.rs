//! Parsing one file: YAML documents into raw policies, with the names of documents that failed
//! to parse kept so that their absence causes no follow-on errors.

use serde::de::DeserializeSeed;
use super::diagnostics::{schema_error_kind, yaml_message, yaml_pos, At, DupFinder, Sink, YPath};
use super::problem::ProblemKind;
use super::raw::{normalise_scope, RawPolicy};
use serde::Deserialize;
use serde_yaml_ng::Value as YValue;
use std::collections::HashSet;



/// Names and identities of documents that failed to parse, read best-effort from their YAML,
/// so that their absence does not cause follow-on errors elsewhere.
#[derive(Default)]
pub(super) struct Broken {
    pub(super) derived_roles: HashSet<String>,
    pub(super) export_variables: HashSet<String>,
    pub(super) export_constants: HashSet<String>,
    pub(super) resource: HashSet<(String, String, String)>,
    pub(super) principal: HashSet<(String, String, String)>,
}

impl Broken {
    pub(super) fn record(&mut self, v: &YValue) {
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


pub(super) fn has_merge_key(v: &YValue) -> bool {
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
pub(super) fn parse_file(
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

