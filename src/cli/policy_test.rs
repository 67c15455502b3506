//! `vecgate policy test DIR`: runs the Cerbos test suites under DIR
//! ([`crate::policy::suite::policy_test`]) and prints one `FAIL …` line per failing check,
//! `SKIP …` / `NOTE …` lines, suite errors on stderr, and a last line `N passed, M failed`.
//! Exit code: 0 all passed, 1 some check failed, 2 usage, policy-load or suite errors.

use crate::policy::evaluation::Evaluation;
use crate::policy::suite::policy_test::{run_dir, Event};
use std::path::Path;

pub fn run(dir: &Path, evaluation: Evaluation) -> i32 {
    let report = match run_dir(dir, evaluation) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for event in &report.events {
        match event {
            Event::Check(c) if c.passed() => {}
            Event::Check(c) => {
                let want = effect_name(c.want);
                let detail = match &c.got {
                    Ok(got) => format!("want {want}, got {}", effect_name(*got)),
                    Err(e) => format!("want {want}, got error: {e}"),
                };
                println!(
                    "FAIL {} / {} / {} / {} / {}: {detail}",
                    c.suite, c.test, c.principal, c.resource, c.action
                );
            }
            Event::Skip(line) => println!("SKIP {line}"),
            Event::OutputsNotChecked { suite, test } => println!(
                "NOTE {suite} / {test}: `outputs` expectations are accepted but not checked (vecgate does not evaluate rule outputs)"
            ),
            Event::SuiteError { file, message } => eprintln!("ERROR {file}: {message}"),
        }
    }
    println!("{} passed, {} failed", report.passed(), report.failed());
    if report.suite_errors() > 0 {
        2
    } else {
        i32::from(report.failed() > 0)
    }
}

fn effect_name(allow: bool) -> &'static str {
    if allow {
        "EFFECT_ALLOW"
    } else {
        "EFFECT_DENY"
    }
}
