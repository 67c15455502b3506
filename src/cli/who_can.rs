//! `vecgate who-can`: who may do an action on one record, as a condition over roles and
//! principal attributes ([`crate::policy::who_can`]); text, or with `--output json` the
//! Cerbos-style filters per role and combined. Exit 0 with the answer, 2 for a usage
//! problem, 1 when the record cannot be read.

use super::explain::ReportFormat;
use super::inputs::{self, Failure, PolicySource, RecordSource};
use crate::policy::who_can::{WhoCan, WhoCanQuestion};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct WhoCanArgs {
    #[command(flatten)]
    pub source: PolicySource,
    #[command(flatten)]
    pub record: RecordSource,
    /// The scope of the principals asked about (where their principal policies are looked up).
    #[arg(long, default_value = "")]
    pub principal_scope: String,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

pub fn run(args: &WhoCanArgs) -> i32 {
    match who_can(args) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("error: {}", f.message);
            f.code
        }
    }
}

fn who_can(args: &WhoCanArgs) -> Result<(), Failure> {
    let loaded = inputs::load(&args.source)?;
    let config = loaded.config.as_ref();
    let kind = inputs::kind(&args.record, config)?;
    let (id, attr) = inputs::record(&args.record, config)?;
    let answer = WhoCan::compute(
        &loaded.planner,
        &WhoCanQuestion {
            kind,
            scope: args.record.scope.clone(),
            version: String::new(),
            id,
            attr,
            action: args.record.action.clone(),
            principal_scope: args.principal_scope.clone(),
            now: chrono::Utc::now().fixed_offset(),
        },
    );
    match args.output {
        ReportFormat::Text => print!("{}", answer.text()),
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&answer.to_json()).map_err(|e| Failure::failed(e.to_string()))?
        ),
    }
    Ok(())
}
