//! The suite file format (`cerbos.policy.v1.TestSuite` and its fixture files) as raw types.
//! Unknown keys are errors; proto field names (snake_case) are accepted besides the JSON names,
//! as protojson does.

use crate::policy::suite::yaml::yaml_to_json;
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPrincipal {
    pub(super) id: String,
    pub(super) roles: Vec<String>,
    #[serde(default)]
    pub(super) attr: Option<serde_json::Map<String, Json>>,
    #[serde(default, alias = "policy_version")]
    pub(super) policy_version: Option<String>,
    #[serde(default)]
    pub(super) scope: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawResource {
    pub(super) kind: String,
    pub(super) id: String,
    #[serde(default)]
    pub(super) attr: Option<serde_json::Map<String, Json>>,
    #[serde(default, alias = "policy_version")]
    pub(super) policy_version: Option<String>,
    #[serde(default)]
    pub(super) scope: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuxData {
    #[serde(default)]
    pub(super) jwt: Option<serde_json::Map<String, Json>>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrincipalGroup {
    pub(super) principals: Vec<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResourceGroup {
    pub(super) resources: Vec<String>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawOptions {
    #[serde(default)]
    pub(super) now: Option<String>,
    #[serde(default, alias = "lenient_scope_search")]
    pub(super) lenient_scope_search: Option<bool>,
    #[serde(default)]
    pub(super) globals: Option<serde_json::Map<String, Json>>,
    #[serde(default, alias = "default_policy_version")]
    pub(super) default_policy_version: Option<String>,
    #[serde(default, alias = "default_scope")]
    pub(super) default_scope: Option<String>,
    #[serde(default, alias = "strict_evaluation")]
    pub(super) strict_evaluation: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawSuite {
    pub(super) name: String,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) skip: Option<bool>,
    #[serde(default, alias = "skip_reason")]
    pub(super) skip_reason: Option<String>,
    pub(super) tests: Vec<RawTable>,
    #[serde(default)]
    pub(super) principals: Option<BTreeMap<String, RawPrincipal>>,
    #[serde(default)]
    pub(super) resources: Option<BTreeMap<String, RawResource>>,
    #[serde(default, alias = "aux_data")]
    pub(super) aux_data: Option<BTreeMap<String, RawAuxData>>,
    #[serde(default)]
    pub(super) options: Option<RawOptions>,
    #[serde(default, rename = "$schema")]
    #[allow(dead_code)]
    pub(super) schema: Option<String>,
    #[serde(default, alias = "principal_groups")]
    pub(super) principal_groups: Option<BTreeMap<String, RawPrincipalGroup>>,
    #[serde(default, alias = "resource_groups")]
    pub(super) resource_groups: Option<BTreeMap<String, RawResourceGroup>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawTable {
    pub(super) name: String,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) skip: Option<bool>,
    #[serde(default, alias = "skip_reason")]
    pub(super) skip_reason: Option<String>,
    pub(super) input: RawInput,
    pub(super) expected: Vec<RawExpectation>,
    #[serde(default)]
    pub(super) options: Option<RawOptions>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawInput {
    #[serde(default)]
    pub(super) principals: Option<Vec<String>>,
    #[serde(default)]
    pub(super) resources: Option<Vec<String>>,
    pub(super) actions: Vec<String>,
    #[serde(default, alias = "aux_data")]
    pub(super) aux_data: Option<String>,
    #[serde(default, alias = "principal_groups")]
    pub(super) principal_groups: Option<Vec<String>>,
    #[serde(default, alias = "resource_groups")]
    pub(super) resource_groups: Option<Vec<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawExpectation {
    #[serde(default)]
    pub(super) principal: Option<String>,
    #[serde(default)]
    pub(super) resource: Option<String>,
    pub(super) actions: BTreeMap<String, Json>,
    #[serde(default)]
    pub(super) outputs: Option<Vec<RawOutputExpectation>>,
    #[serde(default)]
    pub(super) principals: Option<Vec<String>>,
    #[serde(default)]
    pub(super) resources: Option<Vec<String>>,
    #[serde(default, alias = "principal_groups")]
    pub(super) principal_groups: Option<Vec<String>>,
    #[serde(default, alias = "resource_groups")]
    pub(super) resource_groups: Option<Vec<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutputExpectation {
    pub(super) action: String,
    pub(super) expected: Vec<RawOutputEntry>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct RawOutputEntry {
    #[serde(default)]
    pub(super) src: Option<String>,
    #[serde(default)]
    pub(super) val: Option<Json>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPrincipalsFile {
    #[serde(default)]
    pub(super) principals: Option<BTreeMap<String, RawPrincipal>>,
    #[serde(default, rename = "$schema")]
    #[allow(dead_code)]
    pub(super) schema: Option<String>,
    #[serde(default, alias = "principal_groups")]
    pub(super) principal_groups: Option<BTreeMap<String, RawPrincipalGroup>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawResourcesFile {
    #[serde(default)]
    pub(super) resources: Option<BTreeMap<String, RawResource>>,
    #[serde(default, rename = "$schema")]
    #[allow(dead_code)]
    pub(super) schema: Option<String>,
    #[serde(default, alias = "resource_groups")]
    pub(super) resource_groups: Option<BTreeMap<String, RawResourceGroup>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawAuxDataFile {
    #[serde(default, alias = "aux_data")]
    pub(super) aux_data: Option<BTreeMap<String, RawAuxData>>,
    #[serde(default, rename = "$schema")]
    #[allow(dead_code)]
    pub(super) schema: Option<String>,
}

/// Reads a YAML (anchors and merge keys applied) or JSON file into `T`, strictly. Errors do
/// not name the file.
pub(super) fn read_doc<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
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
