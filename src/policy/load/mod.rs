//! Loading a policy directory into a validated [`PolicySet`](super::model::PolicySet).
//!
//! Each document is parsed into raw types that mirror Cerbos' policy schema (unknown keys are
//! rejected), then compiled: CEL is parsed, imports are resolved, variables are ordered, and
//! the whole set is cross-checked. Any problem in any file fails the whole load, and every
//! problem found is reported.

mod compile;
mod diagnostics;
mod link;
mod parse;
mod problem;
mod raw;
mod walk;

pub use problem::{LoadErrors, Problem, ProblemKind};

use super::model::PolicySet;
use compile::compile_doc;
use diagnostics::Sink;
use link::link;
use parse::{parse_file, Broken};
use problem::io_problem;
use std::path::Path;
use walk::Walker;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// Loads every policy under `dir` (recursively).
///
/// Reads `*.yaml`, `*.yml` and `*.json`. Skips Cerbos test suites (`*_test.{yaml,yml,json}`),
/// `testdata` directories and hidden entries. Symlinks are followed and each real file is
/// read once, so a Kubernetes ConfigMap mount (`x.yaml -> ..data/x.yaml`,
/// `..data -> ..<timestamp>`) loads each policy exactly once.
pub fn load_dir(dir: &Path) -> Result<PolicySet, LoadErrors> {
    let mut walker = Walker::default();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => walker.walk(dir, ""),
        Ok(_) => walker
            .problems
            .push(io_problem(dir.display().to_string(), "not a directory")),
        Err(e) => walker
            .problems
            .push(io_problem(dir.display().to_string(), &e.to_string())),
    }
    load(&walker.files, walker.problems)
}

/// Loads policies from memory: `(file name, contents)` pairs. Same rules as [`load_dir`],
/// without the file-name filtering.
pub fn load_documents(docs: &[(String, String)]) -> Result<PolicySet, LoadErrors> {
    load(docs, Vec::new())
}

// ---------------------------------------------------------------------------------------------
// The whole load
// ---------------------------------------------------------------------------------------------

fn load(files: &[(String, String)], mut problems: Vec<Problem>) -> Result<PolicySet, LoadErrors> {
    let mut sink = Sink::default();
    let mut broken = Broken::default();
    let mut warnings = Vec::new();
    let mut parsed = Vec::new();
    let mut file_count = 0;
    for (i, (name, text)) in files.iter().enumerate() {
        let before = sink.pending.len();
        let docs = parse_file(i, text, &mut sink, &mut parsed, &mut broken);
        if docs > 0 {
            file_count += 1;
        } else if sink.pending.len() == before {
            warnings.push(format!("{name}: no policy in this file"));
        }
    }

    let mut units = Vec::new();
    for (at, raw) in &parsed {
        let name = files.get(at.file).map(|f| f.0.as_str()).unwrap_or_default();
        units.extend(compile_doc(*at, raw, name, &mut sink, &mut warnings));
    }

    let set = link(&units, files, &broken, &mut sink, &mut warnings);

    problems.extend(sink.finish(files));
    if !problems.is_empty() {
        problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        problems.dedup();
        return Err(LoadErrors { problems });
    }
    Ok(PolicySet {
        file_count,
        warnings,
        ..set
    })
}
