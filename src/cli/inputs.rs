//! What `vecgate explain` and `vecgate who-can` read: the policies (from a configuration or
//! a directory, in its evaluation mode unless overridden), the principal (`--principal`
//! JSON, or `--token` verified as the proxy verifies it), the resource kind (`--kind`, or the
//! collection's rule) and the record (`--record` attributes, or `--id` read from the
//! database through the configured upstream).
//!
//! Every problem is a message for the caller (exit code 2 for usage, 1 for the database);
//! nothing is guessed: a principal, a kind and a record must be given one way or another.

use super::EvaluationArg;
use crate::authn::Authenticator;
use crate::config::{self, Config};
use crate::plan::Value;
use crate::policy::evaluation::Evaluation;
use crate::policy::load::load_dir;
use crate::policy::planner::{Planner, Principal};
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the policies come from.
#[derive(Args, Debug, Clone)]
pub struct PolicySource {
    /// The configuration file: its policies, `policies.evaluation`, collections, auth and
    /// database.
    #[arg(long, required_unless_present = "policies", conflicts_with = "policies")]
    pub config: Option<PathBuf>,
    /// A policy directory on its own.
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// What an erroring condition does (default: the configuration's, else `cerbos`).
    #[arg(long, value_enum)]
    pub evaluation: Option<EvaluationArg>,
}

/// The record asked about.
#[derive(Args, Debug, Clone)]
pub struct RecordSource {
    /// The collection (with --config: its rule gives the resource kind and field mapping).
    #[arg(long)]
    pub collection: Option<String>,
    /// The resource kind (default: the collection's rule's).
    #[arg(long)]
    pub kind: Option<String>,
    /// The record's id; without --record it is read from the database (needs --config and
    /// --collection).
    #[arg(long)]
    pub id: Option<String>,
    /// The record's attributes as JSON (as policies see them: `R.attr`), offline.
    #[arg(long)]
    pub record: Option<String>,
    /// The resource scope.
    #[arg(long, default_value = "")]
    pub scope: String,
    /// The action.
    #[arg(long, default_value = "read")]
    pub action: String,
}

/// Loaded policies, and the configuration when one was given.
pub struct Loaded {
    pub planner: Planner,
    pub config: Option<Config>,
}

/// A usage problem (exit 2) or a failure (exit 1), with its message.
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure { code: 2, message: message.into() }
    }

    pub fn failed(message: impl Into<String>) -> Failure {
        Failure { code: 1, message: message.into() }
    }
}

/// Who decides: policy files loaded here, or the PDP a configuration names
/// (`policies.pdp`).
pub enum Decider {
    Files(Loaded),
    Pdp { config: Config, pdp: crate::policy::pdp::PdpConfig },
}

/// Loads the configuration (if given) and the policies, or says which PDP decides.
pub fn open(source: &PolicySource) -> Result<Decider, Failure> {
    let (dir, config) = match (&source.config, &source.policies) {
        (Some(path), _) => {
            let config = config::load(path)
                .map_err(|e| Failure::usage(format!("invalid configuration {}:\n{e}", path.display())))?;
            let dir = match &config.policies.source {
                config::PolicySource::Dir { dir, .. } => dir.clone(),
                config::PolicySource::Pdp(pdp) => {
                    let pdp = pdp.clone();
                    return Ok(Decider::Pdp { config, pdp });
                }
            };
            (dir, Some(config))
        }
        (None, Some(dir)) => (dir.clone(), None),
        (None, None) => return Err(Failure::usage("give --config FILE or --policies DIR")),
    };
    let mut options = config.as_ref().map(|c| c.policies.planner_options()).unwrap_or_default();
    if let Some(e) = source.evaluation {
        options.evaluation = Evaluation::from(e);
    }
    let set = load_dir(&dir).map_err(|e| Failure::usage(e.to_string()))?;
    for w in &set.warnings {
        eprintln!("warning: {w}");
    }
    Ok(Decider::Files(Loaded { planner: Planner::new(Arc::new(set), options), config }))
}

/// [`open`] where only policy files will do.
pub fn load(source: &PolicySource) -> Result<Loaded, Failure> {
    match open(source)? {
        Decider::Files(loaded) => Ok(loaded),
        Decider::Pdp { .. } => Err(Failure::usage("policies.pdp: who-can reads policy files; give --policies DIR")),
    }
}

/// The principal from `--principal` JSON, or from `--token` verified with the
/// configuration's `auth` settings; with its verified claims.
pub fn principal(
    principal: Option<&str>,
    token: Option<&str>,
    config: Option<&Config>,
) -> Result<(Principal, BTreeMap<String, Value>), Failure> {
    match (principal, token) {
        (Some(json), None) => Ok((super::principal_from_json(json).map_err(Failure::usage)?, BTreeMap::new())),
        (None, Some(token)) => {
            let config = config.ok_or_else(|| Failure::usage("--token needs --config (its auth settings verify it)"))?;
            let authn = Authenticator::from_config(&config.auth).map_err(|e| Failure::usage(format!("auth: {e}")))?;
            let verified = authn
                .verify_token(token)
                .map_err(|e| Failure::usage(format!("the token is not accepted: {e}")))?;
            Ok(Arc::unwrap_or_clone(verified).into_parts())
        }
        _ => Err(Failure::usage("give --principal JSON or --token TOKEN")),
    }
}

/// The resource kind: `--kind`, or the collection's rule's.
pub fn kind(record: &RecordSource, config: Option<&Config>) -> Result<String, Failure> {
    if let Some(kind) = &record.kind {
        return Ok(kind.clone());
    }
    match (config, &record.collection) {
        (Some(config), Some(collection)) => config
            .collection_rule(collection)
            .map(|r| r.resource_kind.clone())
            .ok_or_else(|| Failure::usage(format!("no collection rule in the configuration matches {collection:?}"))),
        _ => Err(Failure::usage("give --kind, or --config with --collection")),
    }
}

/// The record's id and attributes: `--record` (id `--id`, default `record`), or read from
/// the database.
pub fn record(record: &RecordSource, config: Option<&Config>) -> Result<(String, BTreeMap<String, Value>), Failure> {
    if let Some(json) = &record.record {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| Failure::usage(format!("--record is not JSON: {e}")))?;
        let map = value.as_object().ok_or_else(|| Failure::usage("--record must be a JSON object of attributes"))?;
        let id = record.id.clone().unwrap_or_else(|| "record".to_string());
        return Ok((id, crate::explain_request::attributes_from_json(map)));
    }
    let (Some(id), Some(config), Some(collection)) = (&record.id, config, &record.collection) else {
        return Err(Failure::usage("give --record JSON, or --id with --config and --collection to read it from the database"));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the runtime: {e}")))?;
    let found = runtime
        .block_on(crate::proxy::read_record_attributes(config, collection, id))
        .map_err(|e| Failure::failed(format!("reading record {id:?} of {collection:?} from the database: {e}")))?;
    let attr = found.ok_or_else(|| Failure::failed(format!("the database has no record {id:?} in {collection:?}")))?;
    Ok((id.clone(), attr))
}
