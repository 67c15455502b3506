//! `vecgate explain`: why a principal may or may not do an action on one record. Prints the
//! report ([`crate::policy::explain`]) as text or, with `--output json`, as its JSON
//! document. Exit 0 with the report, 2 for a usage problem, 1 when the record cannot be read
//! or when the pushed-down filter and the check disagree on the record (a bug in vecgate,
//! said so in the report).

use super::inputs::{self, Failure, PolicySource, RecordSource};
use crate::config::Config;
use crate::explain_pdp::{answer_with_pdp, to_text};
use crate::explain_request::{answer, ExplainInput};
use crate::policy::pdp::{PdpClient, PdpConfig};
use crate::policy::explain::text::render;
use clap::{Args, ValueEnum};

/// How a report is printed.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub source: PolicySource,
    /// The principal as JSON: {"id":…,"roles":[…],"attr":{…}}
    #[arg(long, conflicts_with = "token")]
    pub principal: Option<String>,
    /// A token, verified with the configuration's auth settings.
    #[arg(long)]
    pub token: Option<String>,
    #[command(flatten)]
    pub record: RecordSource,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

pub fn run(args: &ExplainArgs) -> i32 {
    match explain(args) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("error: {}", f.message);
            f.code
        }
    }
}

fn explain(args: &ExplainArgs) -> Result<i32, Failure> {
    let loaded = match inputs::open(&args.source)? {
        inputs::Decider::Files(loaded) => loaded,
        inputs::Decider::Pdp { config, pdp } => return explain_with_pdp(args, &config, &pdp),
    };
    let config = loaded.config.as_ref();
    let report = answer(&loaded.planner, config, &question(args, config)?);
    match args.output {
        ReportFormat::Text => print!("{}", render(&report)),
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Failure::failed(e.to_string()))?
        ),
    }
    Ok(if report.filter.agrees_with_check { 0 } else { 1 })
}

/// The question the arguments ask: the principal (verified when given as a token), the
/// record (read from the database when given by id) and the action.
fn question(args: &ExplainArgs, config: Option<&Config>) -> Result<ExplainInput, Failure> {
    let (principal, jwt) = inputs::principal(args.principal.as_deref(), args.token.as_deref(), config)?;
    let kind = inputs::kind(&args.record, config)?;
    let (id, attr) = inputs::record(&args.record, config)?;
    Ok(ExplainInput {
        principal,
        jwt,
        collection: args.record.collection.clone(),
        kind,
        scope: args.record.scope.clone(),
        id,
        attr,
        action: args.record.action.clone(),
    })
}

/// With `policies.pdp` in the configuration: the PDP's account of its decision
/// ([`crate::explain_pdp`]). Exit 0 with the report, 1 when the PDP gives none.
fn explain_with_pdp(args: &ExplainArgs, config: &Config, pdp: &PdpConfig) -> Result<i32, Failure> {
    let input = question(args, Some(config))?;
    let client = PdpClient::new(pdp).map_err(|e| Failure::usage(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the runtime: {e}")))?;
    let report = runtime
        .block_on(answer_with_pdp(&client, Some(config), &input, args.token.as_deref()))
        .map_err(|e| Failure::failed(e.to_string()))?;
    match args.output {
        ReportFormat::Text => print!("{}", to_text(&report)),
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Failure::failed(e.to_string()))?
        ),
    }
    Ok(0)
}
