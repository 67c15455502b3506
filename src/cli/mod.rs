//! The command line: each subcommand parses its arguments, runs, and returns an exit code.
//! Results go to stdout, errors to stderr.

use crate::backends::{chroma, qdrant, FieldMapping};
use crate::plan::{Plan, Value};
use crate::policy::load::load_dir;
use crate::policy::suite::planner_suite::{run_suite, SUITE_NOW};
use crate::policy::evaluation::Evaluation;
use crate::policy::planner::{PlanRequest, Planner, PlannerOptions, Principal};
use clap::{Parser, Subcommand, ValueEnum};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod check_config;
mod plan_pdp;
pub mod explain;
pub(crate) mod inputs;
pub(crate) mod policy_test;
pub(crate) mod serve;
pub mod token;
pub mod who_can;

#[derive(Parser, Debug)]
#[command(name = "vecgate", version, about = "Authorization sidecar for vector databases")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the query plan for a principal, or the filter it becomes.
    Plan {
        /// The policy directory (vecgate's own engine).
        #[arg(long, required_unless_present = "pdp", conflicts_with = "pdp")]
        policies: Option<PathBuf>,
        /// Ask this Cerbos PDP's PlanResources instead (`http://cerbos:3592`; one --action).
        #[arg(long)]
        pdp: Option<String>,
        /// The principal as JSON: {"id":…,"roles":[…],"attr":{…}}
        #[arg(long)]
        principal: String,
        #[arg(long)]
        kind: String,
        #[arg(long)]
        action: Vec<String>,
        #[arg(long, default_value = "")]
        scope: String,
        #[arg(long, value_enum, default_value_t = Output::Cerbos)]
        output: Output,
        /// Metadata key prefix for `R.attr.*` (default: "" for chroma, "metadata." for qdrant).
        #[arg(long)]
        attr_prefix: Option<String>,
        /// Attributes every record is guaranteed to carry (comma-separated).
        #[arg(long, value_delimiter = ',')]
        required_attrs: Vec<String>,
        /// What an erroring condition does, as `policies.evaluation` in the configuration.
        #[arg(long, value_enum, default_value_t = EvaluationArg::Cerbos)]
        evaluation: EvaluationArg,
    },
    /// Run Cerbos query-planner suite files; the last line is `N passed, M failed`.
    PlanSuite {
        #[arg(long)]
        policies: PathBuf,
        /// Lenient scope search (start at the nearest existing scope).
        #[arg(long)]
        lenient: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Cerbos policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Validate a configuration file and its policies, or a policy directory, offline.
    Check {
        /// The configuration file (validates it and the policies it points to).
        #[arg(long, required_unless_present = "policies", conflicts_with = "policies")]
        config: Option<PathBuf>,
        /// A policy directory on its own.
        #[arg(long)]
        policies: Option<PathBuf>,
    },
    /// Why a principal may or may not do an action on one record: every rule that applies,
    /// each condition's parts true, false or error with the reason, the rule that decided,
    /// and the filter vecgate pushes down for the principal.
    Explain(explain::ExplainArgs),
    /// Who may do an action on one record: a condition over roles and principal attributes.
    WhoCan(who_can::WhoCanArgs),
    /// Run the proxy.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Mint a development HS256 token (never for production: use your identity provider).
    Token {
        /// Environment variable holding the HMAC secret.
        #[arg(long)]
        secret_env: String,
        #[arg(long)]
        sub: String,
        /// A claim as k=v; v is parsed as JSON when it is JSON (roles=["a","b"], level=3).
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        #[arg(long)]
        issuer: Option<String>,
        #[arg(long)]
        audience: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Run Cerbos policy test suites (`*_test.yaml`) found under DIR.
    Test {
        dir: PathBuf,
        /// The mode for tests whose options do not set `strictEvaluation: true` (which always
        /// means `cerbos_strict`, as in `cerbos compile`).
        #[arg(long, value_enum, default_value_t = EvaluationArg::Cerbos)]
        evaluation: EvaluationArg,
    },
}

/// `policies.evaluation` on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EvaluationArg {
    Cerbos,
    CerbosStrict,
    FailClosed,
}

impl From<EvaluationArg> for Evaluation {
    fn from(e: EvaluationArg) -> Evaluation {
        match e {
            EvaluationArg::Cerbos => Evaluation::Cerbos,
            EvaluationArg::CerbosStrict => Evaluation::CerbosStrict,
            EvaluationArg::FailClosed => Evaluation::FailClosed,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    Cerbos,
    Chroma,
    Qdrant,
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Plan {
            policies,
            pdp,
            principal,
            kind,
            action,
            scope,
            output,
            attr_prefix,
            required_attrs,
            evaluation,
        } => plan(&PlanArgs {
            source: match (&policies, &pdp) {
                (_, Some(url)) => PlanSource::Pdp(url),
                (Some(dir), None) => PlanSource::Dir(dir),
                (None, None) => {
                    eprintln!("error: give --policies DIR or --pdp URL");
                    return 2;
                }
            },
            principal: &principal,
            kind: &kind,
            actions: &action,
            scope: &scope,
            output,
            attr_prefix,
            required_attrs,
            evaluation: evaluation.into(),
        }),
        Command::PlanSuite {
            policies,
            lenient,
            files,
        } => plan_suite(&policies, lenient, &files),
        Command::Policy {
            command: PolicyCommand::Test { dir, evaluation },
        } => policy_test::run(&dir, evaluation.into()),
        Command::Check {
            config: Some(config),
            ..
        } => check_config::run(&config),
        Command::Check {
            policies: Some(policies),
            ..
        } => check(&policies),
        Command::Check { .. } => {
            eprintln!("error: give --config FILE or --policies DIR");
            2
        }
        Command::Explain(args) => explain::run(&args),
        Command::WhoCan(args) => who_can::run(&args),
        Command::Serve { config } => serve::run(&config),
        Command::Token {
            secret_env,
            sub,
            claims,
            ttl,
            issuer,
            audience,
        } => token::run(
            &secret_env,
            &sub,
            &claims,
            &ttl,
            issuer.as_deref(),
            audience.as_deref(),
        ),
    }
}

/// Where `vecgate plan` gets its plan.
enum PlanSource<'a> {
    Dir(&'a Path),
    Pdp(&'a str),
}

struct PlanArgs<'a> {
    source: PlanSource<'a>,
    principal: &'a str,
    kind: &'a str,
    actions: &'a [String],
    scope: &'a str,
    output: Output,
    attr_prefix: Option<String>,
    required_attrs: Vec<String>,
    evaluation: Evaluation,
}

/// Reads a principal from its JSON form.
pub fn principal_from_json(text: &str) -> Result<Principal, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("--principal is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("--principal must be a JSON object")?;
    for key in obj.keys() {
        if !matches!(key.as_str(), "id" | "roles" | "attr" | "scope" | "policyVersion") {
            return Err(format!("--principal: unknown field {key}"));
        }
    }
    let id = obj
        .get("id")
        .and_then(|i| i.as_str())
        .ok_or("--principal needs a string id")?;
    let roles = obj
        .get("roles")
        .and_then(|r| r.as_array())
        .ok_or("--principal needs a roles list")?
        .iter()
        .map(|r| r.as_str().map(String::from).ok_or("roles must be strings"))
        .collect::<Result<Vec<_>, _>>()?;
    let attr = match obj.get("attr") {
        None => BTreeMap::new(),
        Some(serde_json::Value::Object(a)) => {
            a.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect()
        }
        Some(_) => return Err("--principal attr must be an object".into()),
    };
    let text_field = |k: &str| obj.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    Ok(Principal {
        id: id.to_string(),
        roles,
        attr,
        scope: text_field("scope"),
        policy_version: text_field("policyVersion"),
    })
}

fn load_planner(dir: &Path, options: PlannerOptions) -> Result<Planner, i32> {
    match load_dir(dir) {
        Ok(set) => {
            for w in &set.warnings {
                eprintln!("warning: {w}");
            }
            Ok(Planner::new(Arc::new(set), options))
        }
        Err(e) => {
            eprintln!("{e}");
            Err(2)
        }
    }
}

fn plan(args: &PlanArgs<'_>) -> i32 {
    let principal = match principal_from_json(args.principal) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if args.actions.is_empty() {
        eprintln!("error: give at least one --action");
        return 2;
    }
    let policies = match args.source {
        PlanSource::Dir(dir) => dir,
        PlanSource::Pdp(url) => {
            return match plan_pdp::plan(url, &principal, args.kind, args.actions) {
                Ok(plan) => print_plan(args, &plan),
                Err(code) => code,
            }
        }
    };
    let options = PlannerOptions {
        evaluation: args.evaluation,
        ..PlannerOptions::default()
    };
    let planner = match load_planner(policies, options) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let attrs = BTreeMap::new();
    let jwt = BTreeMap::new();
    let request = PlanRequest {
        principal: &principal,
        resource_kind: args.kind,
        resource_scope: args.scope,
        resource_version: "",
        resource_attr: &attrs,
        resource_id: None,
        attr_complete: false,
        actions: args.actions,
        jwt: &jwt,
        now: chrono::Utc::now().fixed_offset(),
    };
    let plan = planner.plan(&request).plan;
    print_plan(args, &plan)
}

/// Prints a plan as Cerbos' JSON or as the filter a database gets; the exit code.
fn print_plan(args: &PlanArgs<'_>, plan: &Plan) -> i32 {
    let required: BTreeSet<String> = args.required_attrs.iter().cloned().collect();
    let out = match (args.output, &plan) {
        (Output::Cerbos, _) => plan.to_cerbos_json(),
        (_, Plan::AlwaysDenied) => {
            eprintln!("always denied: vecgate answers such requests itself, without a filter");
            return 3;
        }
        (Output::Chroma, Plan::AlwaysAllowed) | (Output::Qdrant, Plan::AlwaysAllowed) => {
            serde_json::Value::Null
        }
        (Output::Chroma, Plan::Conditional(e)) => {
            let mapping = FieldMapping {
                attr_prefix: args.attr_prefix.clone().unwrap_or_default(),
                required_attrs: required,
            };
            match chroma::filter::translate(e, &mapping, 500) {
                Ok(v) => chroma::filter::compact(&v),
                Err(err) => {
                    eprintln!("error: {err}");
                    return 1;
                }
            }
        }
        (Output::Qdrant, Plan::Conditional(e)) => {
            let mapping = FieldMapping {
                attr_prefix: args
                    .attr_prefix
                    .clone()
                    .unwrap_or_else(|| "metadata.".to_string()),
                required_attrs: required,
            };
            match qdrant::filter::translate(e, &mapping, 500) {
                Ok(v) => v,
                Err(err) => {
                    eprintln!("error: {err}");
                    return 1;
                }
            }
        }
    };
    println!("{out}");
    0
}

fn plan_suite(policies: &Path, lenient: bool, files: &[PathBuf]) -> i32 {
    let mut globals = BTreeMap::new();
    globals.insert("environment".to_string(), Value::string("test"));
    let options = PlannerOptions {
        globals,
        lenient_scope_search: lenient,
        unroll_limit: Some(10),
        cerbos_planner: true,
        ..PlannerOptions::default()
    };
    let planner = match load_planner(policies, options) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut jwt = BTreeMap::new();
    jwt.insert("customInt".to_string(), Value::Int(42));
    let Ok(now) = chrono::DateTime::parse_from_rfc3339(SUITE_NOW) else {
        return 2;
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                failed += 1;
                continue;
            }
        };
        let name = file.display().to_string();
        match run_suite(&planner, &name, &text, &jwt, now) {
            Ok(results) => {
                for r in results {
                    if r.passed {
                        passed += 1;
                    } else {
                        failed += 1;
                        println!("FAIL {}\n  want {}\n  got  {}", r.name, r.want, r.got);
                    }
                }
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    i32::from(failed > 0)
}

fn check(policies: &Path) -> i32 {
    match load_dir(policies) {
        Ok(set) => {
            for w in &set.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "ok: {} policy files ({} resource, {} principal, {} role policies)",
                set.file_count,
                set.resource_policies.len(),
                set.principal_policies.len(),
                set.role_policies.len()
            );
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
