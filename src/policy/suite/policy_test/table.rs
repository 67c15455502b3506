//! Expanding one test into its (principal, resource) cells: suite definitions first, then the
//! shared fixtures; listed expectations per action, every other combination expecting DENY.

use super::fixtures::Fixture;
use super::format::{RawAuxData, RawPrincipal, RawResource, RawSuite, RawTable};
use super::validate::parse_effect;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// A suite with its fixtures: suite definitions first, then `testdata`.
pub(super) struct Scope<'a> {
    pub(super) suite: &'a RawSuite,
    pub(super) fixture: &'a Fixture,
}

impl Scope<'_> {
    pub(super) fn principal(&self, name: &str) -> Result<&RawPrincipal, String> {
        self.suite
            .principals
            .as_ref()
            .and_then(|m| m.get(name))
            .or_else(|| self.fixture.principals.get(name))
            .ok_or_else(|| format!("principal {name:?} not found"))
    }

    pub(super) fn resource(&self, name: &str) -> Result<&RawResource, String> {
        self.suite
            .resources
            .as_ref()
            .and_then(|m| m.get(name))
            .or_else(|| self.fixture.resources.get(name))
            .ok_or_else(|| format!("resource {name:?} not found"))
    }

    pub(super) fn principal_group(&self, name: &str) -> Result<&[String], String> {
        self.suite
            .principal_groups
            .as_ref()
            .and_then(|m| m.get(name))
            .map(|g| g.principals.as_slice())
            .or_else(|| self.fixture.principal_groups.get(name).map(Vec::as_slice))
            .ok_or_else(|| format!("principal group {name:?} not found"))
    }

    pub(super) fn resource_group(&self, name: &str) -> Result<&[String], String> {
        self.suite
            .resource_groups
            .as_ref()
            .and_then(|m| m.get(name))
            .map(|g| g.resources.as_slice())
            .or_else(|| self.fixture.resource_groups.get(name).map(Vec::as_slice))
            .ok_or_else(|| format!("resource group {name:?} not found"))
    }

    pub(super) fn aux_data(&self, name: &str) -> Result<Option<&RawAuxData>, String> {
        if name.is_empty() {
            return Ok(None);
        }
        self.suite
            .aux_data
            .as_ref()
            .and_then(|m| m.get(name))
            .or_else(|| self.fixture.aux_data.get(name))
            .map(Some)
            .ok_or_else(|| format!("auxData {name:?} not found"))
    }

    /// Names from a single field, a list and groups; group members are added once each.
    pub(super) fn collect(
        &self,
        single: Option<&str>,
        list: Option<&[String]>,
        groups: Option<&[String]>,
        lookup: impl Fn(&Self, &str) -> Result<Vec<String>, String>,
    ) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = match single.filter(|s| !s.is_empty()) {
            Some(s) => vec![s.to_string()],
            None => list.map(<[String]>::to_vec).unwrap_or_default(),
        };
        let mut seen: HashSet<String> = out.iter().cloned().collect();
        for group in groups.unwrap_or_default() {
            for member in lookup(self, group)? {
                if seen.insert(member.clone()) {
                    out.push(member);
                }
            }
        }
        Ok(out)
    }

    pub(super) fn principal_group_members(&self, name: &str) -> Result<Vec<String>, String> {
        self.principal_group(name).map(<[String]>::to_vec)
    }

    pub(super) fn resource_group_members(&self, name: &str) -> Result<Vec<String>, String> {
        self.resource_group(name).map(<[String]>::to_vec)
    }
}

/// One (principal, resource) pair of a test, with the expected effect of each input action.
pub(super) struct Cell {
    pub(super) principal: String,
    pub(super) resource: String,
    pub(super) expected: Vec<(String, bool)>,
}

/// A test table expanded into its cells, ready to run.
pub(super) struct Prepared<'a> {
    pub(super) table: &'a RawTable,
    pub(super) cells: Vec<Cell>,
    pub(super) has_outputs: bool,
}

pub(super) fn build_cells(scope: &Scope<'_>, table: &RawTable) -> Result<Vec<Cell>, String> {
    let input = &table.input;
    let input_actions: BTreeSet<&str> = input.actions.iter().map(String::as_str).collect();

    let mut lookup: BTreeMap<(String, String), BTreeMap<String, bool>> = BTreeMap::new();
    for exp in &table.expected {
        if let Some(unreachable) = exp
            .outputs
            .iter()
            .flatten()
            .find(|o| !input_actions.contains(o.action.as_str()))
        {
            return Err(format!(
                "found output expectations for an action that is not in the input actions list: {:?}",
                unreachable.action
            ));
        }
        let extra: Vec<&str> = exp
            .actions
            .keys()
            .map(String::as_str)
            .filter(|a| !input_actions.contains(a))
            .collect();
        if !extra.is_empty() {
            return Err(format!(
                "found expectations for actions that do not exist in the input actions list: [{}]",
                extra.join(",")
            ));
        }
        let principals = scope.collect(
            exp.principal.as_deref(),
            exp.principals.as_deref(),
            exp.principal_groups.as_deref(),
            Scope::principal_group_members,
        )?;
        let resources = scope.collect(
            exp.resource.as_deref(),
            exp.resources.as_deref(),
            exp.resource_groups.as_deref(),
            Scope::resource_group_members,
        )?;
        for p in &principals {
            for r in &resources {
                let target = lookup.entry((p.clone(), r.clone())).or_default();
                for (action, effect) in &exp.actions {
                    let allow = parse_effect(effect)?;
                    match target.get(action) {
                        Some(old) if *old != allow => {
                            return Err(format!(
                                "found inconsistent expectations for principal {p:?} performing action {action:?} on resource {r:?}"
                            ))
                        }
                        Some(_) => {}
                        None => {
                            target.insert(action.clone(), allow);
                        }
                    }
                }
            }
        }
    }

    let principals = scope.collect(
        None,
        input.principals.as_deref(),
        input.principal_groups.as_deref(),
        Scope::principal_group_members,
    )?;
    let resources = scope.collect(
        None,
        input.resources.as_deref(),
        input.resource_groups.as_deref(),
        Scope::resource_group_members,
    )?;
    let mut cells = Vec::with_capacity(principals.len() * resources.len());
    for p in &principals {
        scope.principal(p)?;
        for r in &resources {
            scope.resource(r)?;
            let listed = lookup.remove(&(p.clone(), r.clone()));
            let expected = input
                .actions
                .iter()
                .map(|a| {
                    let allow = listed
                        .as_ref()
                        .and_then(|m| m.get(a).copied())
                        .unwrap_or(false);
                    (a.clone(), allow)
                })
                .collect();
            cells.push(Cell {
                principal: p.clone(),
                resource: r.clone(),
                expected,
            });
        }
    }
    if let Some((p, r)) = lookup.keys().next() {
        return Err(format!(
            "found an expectation for principal {p:?} and resource {r:?}, but at least one of these is not present in input"
        ));
    }
    scope.aux_data(input.aux_data.as_deref().unwrap_or(""))?;
    Ok(cells)
}
