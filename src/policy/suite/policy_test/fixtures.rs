//! Shared fixtures from a `testdata` directory next to the suites: principals, resources and
//! aux data (with groups), loaded once per directory.

use super::discover::{has_supported_ext, TESTDATA};
use super::format::{
    read_doc, RawAuxData, RawAuxDataFile, RawPrincipal, RawPrincipalsFile, RawResource,
    RawResourcesFile,
};
use super::validate::{
    validate_principal, validate_principal_groups, validate_resource, validate_resource_groups,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Cerbos looks for the aux data fixture file under these names, in this order.
const AUX_DATA_FILE_NAMES: [&str; 3] = ["auxdata", "auxData", "aux_data"];

#[derive(Default)]
pub(super) struct Fixture {
    pub(super) principals: BTreeMap<String, RawPrincipal>,
    pub(super) principal_groups: BTreeMap<String, Vec<String>>,
    pub(super) resources: BTreeMap<String, RawResource>,
    pub(super) resource_groups: BTreeMap<String, Vec<String>>,
    pub(super) aux_data: BTreeMap<String, RawAuxData>,
}

#[derive(Default)]
pub(super) struct FixtureCache {
    pub(super) loaded: HashMap<PathBuf, Result<Arc<Fixture>, String>>,
}

impl FixtureCache {
    /// The fixtures for suites in `suite_dir` (empty when there is no `testdata` there).
    pub(super) fn get(&mut self, suite_dir: &Path) -> Result<Arc<Fixture>, String> {
        let dir = suite_dir.join(TESTDATA);
        self.loaded
            .entry(dir.clone())
            .or_insert_with(|| load_fixture(&dir).map(Arc::new))
            .clone()
    }
}

/// Cerbos' lookup: the first directory entry (in name order) called `BASE.<ext>` with a
/// supported extension.
pub(super) fn find_fixture_file(dir: &Path, base: &str) -> Result<Option<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let prefix = format!("{base}.");
    Ok(names
        .into_iter()
        .find(|n| n.starts_with(&prefix) && has_supported_ext(n))
        .map(|n| dir.join(n)))
}

pub(super) fn load_fixture(dir: &Path) -> Result<Fixture, String> {
    let mut fx = Fixture::default();
    if !dir.is_dir() {
        return Ok(fx);
    }
    let wrap = |e: String| format!("failed to load test fixtures: {e}");
    if let Some(path) = find_fixture_file(dir, "principals").map_err(wrap)? {
        let file: RawPrincipalsFile =
            read_doc(&path).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
        fx.principals = file.principals.unwrap_or_default();
        for (k, p) in &fx.principals {
            validate_principal(k, p).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
        }
        let groups = file.principal_groups.unwrap_or_default();
        validate_principal_groups(&groups).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
        for (name, g) in groups {
            if let Some(missing) = g
                .principals
                .iter()
                .find(|m| !fx.principals.contains_key(*m))
            {
                return Err(wrap(format!(
                    "{}: missing fixture {missing:?} referenced in group {name:?}",
                    path.display()
                )));
            }
            fx.principal_groups.insert(name, g.principals);
        }
    }
    if let Some(path) = find_fixture_file(dir, "resources").map_err(wrap)? {
        let file: RawResourcesFile =
            read_doc(&path).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
        fx.resources = file.resources.unwrap_or_default();
        for (k, r) in &fx.resources {
            validate_resource(k, r).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
        }
        let groups = file.resource_groups.unwrap_or_default();
        validate_resource_groups(&groups).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
        for (name, g) in groups {
            if let Some(missing) = g.resources.iter().find(|m| !fx.resources.contains_key(*m)) {
                return Err(wrap(format!(
                    "{}: missing fixture {missing:?} referenced in group {name:?}",
                    path.display()
                )));
            }
            fx.resource_groups.insert(name, g.resources);
        }
    }
    for base in AUX_DATA_FILE_NAMES {
        if let Some(path) = find_fixture_file(dir, base).map_err(wrap)? {
            let file: RawAuxDataFile =
                read_doc(&path).map_err(|e| wrap(format!("{}: {e}", path.display())))?;
            fx.aux_data = file.aux_data.unwrap_or_default();
            break;
        }
    }
    Ok(fx)
}
