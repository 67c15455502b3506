//! An explain question as `vecgate explain` and the admin listener's `POST /explain` receive
//! it, answered the same way for both: the report of [`crate::policy::explain`], plus the
//! filter the plan becomes in the configured database's language for the collection (its
//! field mapping and filter-size limit), or why it has none.
//!
//! Invariants: the record's attributes are given or read from the database by the caller;
//! nothing here talks to the network. The database filter comes from the same translator the
//! proxy uses (`Database::translate`), so a refusal here is the proxy's refusal.

use crate::backends::seam::Database;
use crate::backends::{FieldMapping, Pushdown};
use crate::config::Config;
use crate::plan::{Plan, Value};
use crate::policy::explain::{explain, ExplainQuestion, Explanation};
use crate::policy::planner::{Planner, Principal};
use crate::proxy::Backend;
use std::collections::BTreeMap;

/// One explain question, everything known.
#[derive(Clone, Debug)]
pub struct ExplainInput {
    pub principal: Principal,
    /// Verified claims (`request.auxData.jwt`); empty for a principal given as JSON.
    pub jwt: BTreeMap<String, Value>,
    /// The collection, when the configuration is known (for the database filter).
    pub collection: Option<String>,
    pub kind: String,
    pub scope: String,
    pub id: String,
    pub attr: BTreeMap<String, Value>,
    pub action: String,
}

/// The report for `input`, with the database filter where `config` and the collection are
/// known.
pub fn answer(planner: &Planner, config: Option<&Config>, input: &ExplainInput) -> Explanation {
    let (mut report, plan) = explain(
        planner,
        &ExplainQuestion {
            principal: &input.principal,
            jwt: &input.jwt,
            kind: &input.kind,
            scope: &input.scope,
            id: &input.id,
            attr: &input.attr,
            action: &input.action,
            now: chrono::Utc::now().fixed_offset(),
        },
    );
    if let (Some(config), Some(collection)) = (config, &input.collection) {
        let (filter, note) = database_filter(config, collection, &plan);
        report.filter.database_filter = filter;
        report.filter.database_filter_note = note;
    }
    report
}

/// The plan as the configured database's filter for `collection`, or why there is none.
pub(crate) fn database_filter(config: &Config, collection: &str, plan: &Plan) -> (Option<serde_json::Value>, Option<String>) {
    let Some(rule) = config.collection_rule(collection) else {
        return (None, Some(format!("no collection rule matches {collection:?}: the proxy refuses it")));
    };
    let expr = match plan {
        Plan::AlwaysAllowed => return (None, Some("every record is readable: no filter is added".into())),
        Plan::AlwaysDenied => {
            return (None, Some("no record is readable: vecgate answers reads itself, without asking the database".into()))
        }
        Plan::Conditional(e) => e,
    };
    let mapping = FieldMapping::new(&rule.attr_prefix, rule.required_attrs.iter().cloned());
    let max = config.limits.max_filter_terms;
    let translated = match Backend::from(config.upstream.kind) {
        Backend::Chroma(db) => db.translate(expr, &mapping, max),
        Backend::Qdrant(db) => db.translate(expr, &mapping, max),
    };
    let backend = config.upstream.kind.name();
    match translated {
        Ok(Pushdown::Filter(f)) => (Some(f), None),
        Ok(Pushdown::MatchAll) => (None, Some(format!("on {backend} the filter matches every record: none is added"))),
        Ok(Pushdown::MatchNone) => (None, Some(format!("on {backend} the filter matches no record: vecgate answers reads itself"))),
        Err(e) => (None, Some(format!("{backend} cannot express this filter exactly, so reads are refused (403): {e}"))),
    }
}

/// The JSON body of `POST /explain`: `principal` (as `--principal`) or `token`, `collection`,
/// `id`, optionally `record` (the attributes; otherwise read from the database), `action`
/// (default `read`) and `scope`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainBody {
    pub principal: Option<serde_json::Value>,
    pub token: Option<String>,
    pub collection: String,
    pub id: String,
    pub record: Option<serde_json::Map<String, serde_json::Value>>,
    pub action: Option<String>,
    pub scope: Option<String>,
}

/// A record's attributes from their JSON form.
pub fn attributes_from_json(map: &serde_json::Map<String, serde_json::Value>) -> BTreeMap<String, Value> {
    map.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect()
}
