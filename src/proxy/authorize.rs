//! Policy decisions for one request: a read plan turned into a pushdown filter, and
//! per-record checks for writes.

use super::respond::ProxyError;
use crate::authn::Authenticated;
use crate::metrics::Metrics;
use crate::backends::{FieldMapping, Pushdown, TranslateError};
use crate::plan::eval::{allows, RecordEnv};
use crate::plan::functions::CallContext;
use crate::plan::{Expr, Plan, Value};
use crate::policy::cache::fingerprint;
use crate::policy::planner::PlanRequest;
use crate::policy::store::Snapshot;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A backend's translator: plan condition → its filter language, exact or refused.
pub type Translate = fn(&Expr, &FieldMapping, usize) -> Result<Pushdown, TranslateError>;

/// What a caller may see of a collection, for one action.
#[derive(Debug, Clone)]
pub enum Access {
    /// Nothing: answered locally, the database is not asked.
    Nothing,
    /// Everything: forwarded without a filter and without stripping.
    Everything,
    /// The filter is ANDed into the request; hits are checked again against the plan.
    Filtered { filter: Json, plan: Plan },
    /// The plan has no exact filter, and the collection opted into `post_filter_only`:
    /// forwarded without pushdown, every hit checked against the plan.
    PostFilterOnly { plan: Plan, reason: TranslateError },
}

impl Access {
    /// The plan hits must satisfy, when hits must be checked.
    pub fn residual(&self) -> Option<&Plan> {
        match self {
            Access::Filtered { plan, .. } | Access::PostFilterOnly { plan, .. } => Some(plan),
            Access::Nothing | Access::Everything => None,
        }
    }

    pub fn filter(&self) -> Option<&Json> {
        match self {
            Access::Filtered { filter, .. } => Some(filter),
            _ => None,
        }
    }

    /// For the audit log and metrics.
    pub fn decision(&self) -> &'static str {
        match self {
            Access::Nothing => "deny",
            Access::Everything => "allow",
            Access::Filtered { .. } => "filter",
            Access::PostFilterOnly { .. } => "post_filter",
        }
    }
}

/// Who is asking, with the policy snapshot used for the whole request.
pub struct Decider<'a> {
    pub auth: &'a Authenticated,
    pub snapshot: Arc<Snapshot>,
    pub now: DateTime<FixedOffset>,
    principal_fingerprint: u64,
    metrics: &'a Metrics,
}

/// A resource as the write checks and collection checks see it.
pub struct Resource<'a> {
    pub kind: &'a str,
    pub id: &'a str,
    pub attr: BTreeMap<String, Value>,
}

impl<'a> Decider<'a> {
    pub fn new(auth: &'a Authenticated, snapshot: Arc<Snapshot>, metrics: &'a Metrics) -> Decider<'a> {
        Decider {
            principal_fingerprint: fingerprint(&auth.principal),
            auth,
            snapshot,
            now: Utc::now().fixed_offset(),
            metrics,
        }
    }

    /// The plan for `action` on records of `kind`.
    pub fn plan(&self, kind: &str, action: &str) -> Plan {
        let no_attrs = BTreeMap::new();
        let actions = [action.to_string()];
        let request = PlanRequest {
            principal: &self.auth.principal,
            resource_kind: kind,
            resource_scope: "",
            resource_version: "",
            resource_attr: &no_attrs,
            resource_id: None,
            attr_complete: false,
            actions: &actions,
            jwt: &self.auth.claims,
            now: self.now,
        };
        let (output, cached) = self
            .snapshot
            .planner
            .plan_and_report(&request, self.principal_fingerprint);
        self.metrics.plan_cache(cached);
        output.plan.clone()
    }

    /// What the caller may see for `action`, as a filter of this backend.
    pub fn access(
        &self,
        kind: &str,
        action: &str,
        mapping: &FieldMapping,
        max_terms: usize,
        post_filter_only: bool,
        translate: Translate,
    ) -> Result<Access, ProxyError> {
        let plan = self.plan(kind, action);
        let condition = match &plan {
            Plan::AlwaysDenied => return Ok(Access::Nothing),
            Plan::AlwaysAllowed => return Ok(Access::Everything),
            Plan::Conditional(e) => e,
        };
        match translate(condition, mapping, max_terms) {
            Ok(Pushdown::MatchAll) => Ok(Access::Everything),
            Ok(Pushdown::MatchNone) => Ok(Access::Nothing),
            Ok(Pushdown::Filter(filter)) => Ok(Access::Filtered { filter, plan }),
            Err(reason) if post_filter_only => Ok(Access::PostFilterOnly { plan, reason }),
            Err(reason) => Err(ProxyError::Untranslatable(reason)),
        }
    }

    /// A full decision on one concrete resource.
    pub fn may(&self, action: &str, resource: &Resource<'_>) -> bool {
        let actions = [action.to_string()];
        let request = PlanRequest {
            principal: &self.auth.principal,
            resource_kind: resource.kind,
            resource_scope: "",
            resource_version: "",
            resource_attr: &resource.attr,
            resource_id: Some(resource.id),
            attr_complete: true,
            actions: &actions,
            jwt: &self.auth.claims,
            now: self.now,
        };
        self.snapshot.planner.planner().check(&request)
    }

    /// Does a hit satisfy the plan? A hit that cannot be evaluated does not.
    pub fn hit_allowed(&self, plan: &Plan, kind: &str, id: &str, attr: &BTreeMap<String, Value>) -> bool {
        let attr_value = Value::Map(Arc::new(
            attr.iter()
                .map(|(k, v)| (crate::plan::value::MapKey::string(k), v.clone()))
                .collect(),
        ));
        let env = RecordEnv::new(Value::string(id), kind, attr_value, CallContext { now: self.now });
        allows(plan, &env)
    }
}

/// `R.attr` of a record whose metadata keys are flat: `<prefix><name>` → `name`.
pub fn flat_record_attributes(
    metadata: Option<&Map<String, Json>>,
    prefix: &str,
) -> BTreeMap<String, Value> {
    let mut attr = BTreeMap::new();
    if let Some(meta) = metadata {
        for (key, value) in meta {
            if let Some(name) = key.strip_prefix(prefix) {
                if !name.is_empty() {
                    attr.insert(name.to_string(), Value::from_json(value));
                }
            }
        }
    }
    attr
}

/// `R.attr` of a record whose attributes sit at a dotted path inside a JSON payload
/// (Qdrant, LangChain's layout: prefix `metadata.` → the object at `payload.metadata`).
/// An empty prefix means the whole payload; a missing or non-object path gives no attributes.
pub fn nested_record_attributes(
    payload: Option<&Map<String, Json>>,
    prefix: &str,
) -> BTreeMap<String, Value> {
    let mut object = payload;
    for segment in prefix.split('.').filter(|s| !s.is_empty()) {
        object = object.and_then(|o| o.get(segment)).and_then(Json::as_object);
    }
    object
        .map(|o| o.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect())
        .unwrap_or_default()
}
