//! `vecgate check --config FILE`: validates the configuration and the policy directory it
//! names, offline. Problems and warnings go to stderr, a short summary to stdout.

use crate::config::{self, Config};
use crate::policy::load::load_dir;
use crate::policy::model::PolicySet;
use crate::policy::planner::glob_match;
use std::path::Path;

/// Checks the configuration file and its policies; returns the exit code (0 valid, 1 invalid).
pub fn run(config_path: &Path) -> i32 {
    let shown = config_path.display();
    let config = match config::load(config_path) {
        Ok(config) => config,
        Err(errors) => {
            for problem in &errors.problems {
                eprintln!("{shown}: {problem}");
            }
            eprintln!("{shown}: invalid, {}", count(errors.problems.len()));
            return 1;
        }
    };
    for warning in config::warnings(&config) {
        eprintln!("warning: {warning}");
    }
    let Some(policy_dir) = config.policies.dir() else {
        println!(
            "ok: configuration is valid; policies come from the Cerbos PDP at {} (not contacted \
             offline)",
            match &config.policies.source {
                config::PolicySource::Pdp(pdp) => pdp.url.as_str(),
                config::PolicySource::Dir { .. } => "",
            }
        );
        return 0;
    };
    let dir = policy_dir.display();
    let set = match load_dir(policy_dir) {
        Ok(set) => set,
        Err(errors) => {
            for problem in &errors.problems {
                eprintln!("{dir}: {problem}");
            }
            eprintln!("{dir}: invalid policies, {}", count(errors.problems.len()));
            return 1;
        }
    };
    for warning in &set.warnings {
        eprintln!("warning: {warning}");
    }
    for warning in uncovered_resource_kinds(&config, &set) {
        eprintln!("warning: {warning}");
    }
    println!("{}", summary(&config, &set));
    0
}

/// Collection rules whose resource kind no resource or principal policy mentions: every
/// request to such a collection would be denied (role policies only narrow).
pub fn uncovered_resource_kinds(config: &Config, set: &PolicySet) -> Vec<String> {
    config
        .collections
        .iter()
        .enumerate()
        .filter(|(_, rule)| {
            let kind = rule.resource_kind.as_str();
            let in_resource_policy = set
                .resource_policies
                .iter()
                .any(|p| glob_match(&p.resource, kind));
            let in_principal_policy = set
                .principal_policies
                .iter()
                .flat_map(|p| &p.rules)
                .any(|r| glob_match(&r.resource, kind));
            !in_resource_policy && !in_principal_policy
        })
        .map(|(i, rule)| {
            format!(
                "collections[{i}] (`{}`): no policy covers resource kind `{}`, so every request \
                 to it is denied",
                rule.name, rule.resource_kind
            )
        })
        .collect()
}

fn summary(config: &Config, set: &PolicySet) -> String {
    let mode = match config.mode {
        config::Mode::Enforce => "enforce",
        config::Mode::Shadow => "shadow",
    };
    let rules: Vec<String> = config
        .collections
        .iter()
        .map(|r| format!("{} → {}", r.name, r.resource_kind))
        .collect();
    format!(
        "ok: configuration and policies are valid\n  upstream: {} {} (mode {mode})\n  \
         policies: {} files in {} ({} resource, {} principal, {} role policies)\n  \
         collections: {}",
        config.upstream.kind.name(),
        config.upstream.url,
        set.file_count,
        config.policies.dir().map(Path::display).map(|d| d.to_string()).unwrap_or_default(),
        set.resource_policies.len(),
        set.principal_policies.len(),
        set.role_policies.len(),
        rules.join(", ")
    )
}

fn count(problems: usize) -> String {
    match problems {
        1 => "1 problem".to_string(),
        n => format!("{n} problems"),
    }
}
