//! Cerbos policy test suites (`cerbos compile`'s `*_test.{yaml,yml,json}`, format
//! `cerbos.policy.v1.TestSuite`), run against vecgate's check: every (principal, resource,
//! action) combination of a test's input is decided and compared with the expected effect.
//! Combinations a test does not list expect `EFFECT_DENY`, as in Cerbos.
//!
//! Shared fixtures come from a `testdata` directory next to each suite file (`principals.*`,
//! `resources.*`, `auxdata.*` / `auxData.*` / `aux_data.*`); definitions in the suite itself win
//! over the shared ones. A test's `options` replace the suite's (they are not merged), and
//! every `TestOptions` field is honoured.
//!
//! [`run_dir`] returns a [`Report`]: the events in the order Cerbos would report them (checks,
//! skipped tests, notes, suites that could not run). Invariant: a suite that cannot run (bad
//! YAML, unknown fields, a dangling reference, an invalid test) contributes one `SuiteError` and
//! no checks, as in Cerbos, where one bad table errors the whole suite.

mod discover;
mod fixtures;
mod format;
mod report;
mod run;
mod table;
mod validate;

pub use report::{CheckOutcome, Event, Report};

use crate::policy::evaluation::Evaluation;
use crate::policy::load::{load_dir, LoadErrors};
use std::path::Path;
use std::sync::Arc;

/// Why no suite could run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}: not a directory")]
    NotADirectory(String),
    #[error("{0}")]
    Io(String),
    #[error("no test suites (*_test.yaml, *_test.yml, *_test.json) under {0}")]
    NoSuites(String),
    #[error("the policies under {dir} do not load:\n{errors}")]
    Policies { dir: String, errors: LoadErrors },
}

/// Runs every suite under `dir` against the policies under `dir`. `evaluation` is the mode of
/// tests whose options do not set `strictEvaluation: true`.
pub fn run_dir(dir: &Path, evaluation: Evaluation) -> Result<Report, RunError> {
    let shown_dir = dir.display().to_string();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(RunError::NotADirectory(shown_dir)),
        Err(e) => return Err(RunError::Io(format!("{shown_dir}: {e}"))),
    }
    let files = discover::discover(dir).map_err(RunError::Io)?;
    if files.is_empty() {
        return Err(RunError::NoSuites(shown_dir));
    }
    let set = load_dir(dir)
        .map(Arc::new)
        .map_err(|errors| RunError::Policies {
            dir: shown_dir,
            errors,
        })?;
    let mut report = Report {
        events: Vec::new(),
        warnings: set.warnings.clone(),
    };
    let mut fixtures = fixtures::FixtureCache::default();
    for file in &files {
        let shown = file.strip_prefix(dir).unwrap_or(file).display().to_string();
        let mut events = Vec::new();
        let result = run::run_file(&set, evaluation, file, &shown, &mut fixtures, &mut events);
        report.events.extend(events);
        if let Err(message) = result {
            report.events.push(Event::SuiteError {
                file: shown,
                message,
            });
        }
    }
    Ok(report)
}
