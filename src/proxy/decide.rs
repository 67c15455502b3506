//! Policy questions for one request, all answered from one policy snapshot: the plan for an
//! action turned into what the caller may touch ([`Access`]), a full check on one concrete
//! resource, and whether a record an answer lists satisfies a plan.

use super::error::ProxyError;
use crate::audit::Decision;
use crate::authn::Authenticated;
use crate::backends::seam::{RecordAttributes, Scope};
use crate::backends::{FieldMapping, Pushdown, TranslateError};
use crate::metrics::Metrics;
use crate::plan::eval::{allows, walk, Env, RecordEnv, Resolved};
use crate::plan::expr::{split_first_segment, RESOURCE_ATTR};
use crate::plan::functions::CallContext;
use crate::plan::value::MapKey;
use crate::plan::{EvalError, Expr, Plan, Value};
use crate::policy::cache::fingerprint;
use crate::policy::planner::PlanRequest;
use crate::policy::store::Snapshot;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value as Json;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// What a caller may touch of a collection, for one action.
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

    /// The access as a database module applies it to a request.
    pub fn scope(&self) -> Scope<'_> {
        match self {
            Access::Nothing => Scope::Nothing,
            Access::Everything => Scope::Everything,
            Access::Filtered { filter, .. } => Scope::Filter(filter),
            Access::PostFilterOnly { .. } => Scope::Unfiltered,
        }
    }

    /// For the audit log and metrics.
    pub fn decision(&self) -> Decision {
        match self {
            Access::Nothing => Decision::Deny,
            Access::Everything => Decision::Allow,
            Access::Filtered { .. } => Decision::Filter,
            Access::PostFilterOnly { .. } => Decision::PostFilter,
        }
    }
}

/// A resource as a full check sees it.
pub struct Resource<'a> {
    pub kind: &'a str,
    pub id: &'a str,
    pub attr: BTreeMap<String, Value>,
}

/// Who is asking, with the policy snapshot used for the whole request.
pub struct Authorizer {
    pub caller: Authenticated,
    pub snapshot: Arc<Snapshot>,
    pub now: DateTime<FixedOffset>,
    principal_fingerprint: u64,
    metrics: Arc<Metrics>,
}

impl Authorizer {
    pub fn new(caller: Authenticated, snapshot: Arc<Snapshot>, metrics: Arc<Metrics>) -> Authorizer {
        Authorizer {
            principal_fingerprint: fingerprint(&caller.principal),
            caller,
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
            principal: &self.caller.principal,
            resource_kind: kind,
            resource_scope: "",
            resource_version: "",
            resource_attr: &no_attrs,
            resource_id: None,
            attr_complete: false,
            actions: &actions,
            jwt: &self.caller.claims,
            now: self.now,
        };
        let (output, cached) = self.snapshot.planner.plan_and_report(&request, self.principal_fingerprint);
        self.metrics.plan_cache(cached);
        output.plan.clone()
    }

    /// What the caller may touch for `action`, as a filter of the database's translator;
    /// `post_filter_only`: a plan without an exact filter is forwarded unfiltered and every
    /// hit checked, instead of being refused.
    pub fn access(
        &self,
        kind: &str,
        action: &str,
        mapping: &FieldMapping,
        max_terms: usize,
        post_filter_only: bool,
        translate: impl Fn(&Expr, &FieldMapping, usize) -> Result<Pushdown, TranslateError>,
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
            principal: &self.caller.principal,
            resource_kind: resource.kind,
            resource_scope: "",
            resource_version: "",
            resource_attr: &resource.attr,
            resource_id: Some(resource.id),
            attr_complete: true,
            actions: &actions,
            jwt: &self.caller.claims,
            now: self.now,
        };
        self.snapshot.planner.planner().check(&request)
    }

    /// Does a record satisfy the plan? A record that cannot be evaluated does not.
    pub fn hit_allowed(&self, plan: &Plan, kind: &str, id: &dyn fmt::Display, attrs: &dyn RecordAttributes) -> bool {
        let env = HitEnv { id, kind, attrs, ctx: CallContext { now: self.now }, whole: OnceCell::new() };
        allows(plan, &env)
    }
}

/// A record as the plan evaluator sees it. `R.attr.<name>` is converted from the database's
/// JSON on demand, so a plan that reads two attributes converts two values; anything else
/// (the whole `R.attr`, `R.id`, `has(R.attr.x)`) builds the full resource once, as
/// `RecordEnv` would.
struct HitEnv<'a> {
    id: &'a dyn fmt::Display,
    kind: &'a str,
    attrs: &'a dyn RecordAttributes,
    ctx: CallContext,
    whole: OnceCell<RecordEnv>,
}

impl HitEnv<'_> {
    fn whole(&self) -> &RecordEnv {
        self.whole.get_or_init(|| {
            let attr = self.attrs.all().into_iter().map(|(k, v)| (MapKey::String(Arc::from(k)), v)).collect();
            RecordEnv::new(Value::string(&self.id.to_string()), self.kind, Value::map(attr), self.ctx)
        })
    }
}

impl Env for HitEnv<'_> {
    fn resolve(&self, name: &str) -> Resolved {
        let attr_path = name.strip_prefix(RESOURCE_ATTR).and_then(|rest| rest.strip_prefix('.'));
        let Some(path) = attr_path else {
            return self.whole().resolve(name);
        };
        let (attr, rest) = split_first_segment(path);
        match self.attrs.get(attr) {
            Some(value) if rest.is_empty() => Resolved::Known(value),
            Some(value) => walk(&value, rest),
            None => Resolved::Error(EvalError::NoSuchKey(attr.to_string())),
        }
    }

    fn call_context(&self) -> &CallContext {
        &self.ctx
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backends::chroma::FlatMetadata;
    use crate::backends::qdrant::NestedPayload;
    use crate::backends::testkit::{self, Model};
    use proptest::prelude::*;
    use serde_json::{json, Map};

    const NOW: &str = "2026-01-01T00:00:00Z";

    /// The reference: the whole record converted up front, as `RecordEnv` sees it.
    fn reference(plan: &Plan, id: &str, attrs: BTreeMap<String, Value>) -> bool {
        let attr = attrs.into_iter().map(|(k, v)| (MapKey::String(Arc::from(k)), v)).collect();
        let ctx = CallContext { now: DateTime::parse_from_rfc3339(NOW).unwrap() };
        allows(plan, &RecordEnv::new(Value::string(id), "doc", Value::map(attr), ctx))
    }

    fn lazy(plan: &Plan, id: &str, attrs: &dyn RecordAttributes) -> bool {
        let env = HitEnv {
            id: &id,
            kind: "doc",
            attrs,
            ctx: CallContext { now: DateTime::parse_from_rfc3339(NOW).unwrap() },
            whole: OnceCell::new(),
        };
        allows(plan, &env)
    }

    fn prefixed(meta: &Map<String, Json>, prefix: &str) -> Map<String, Json> {
        let mut out: Map<String, Json> = meta.iter().map(|(k, v)| (format!("{prefix}{k}"), v.clone())).collect();
        // A key outside the prefix must stay invisible.
        out.insert("dept".into(), json!("OTHER"));
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Reading attributes on demand decides exactly as converting the whole record does,
        /// for flat metadata with and without a prefix and for nested payloads.
        #[test]
        fn on_demand_attributes_decide_like_the_whole_record(
            condition in testkit::plan(),
            chroma_meta in testkit::metadata(Model::Chroma),
            qdrant_meta in testkit::metadata(Model::Qdrant),
            id in prop::sample::select(testkit::IDS.to_vec()),
        ) {
            let plan = Plan::Conditional(condition);
            let flat = lazy(&plan, id, &FlatMetadata { metadata: Some(&chroma_meta), prefix: "" });
            prop_assert_eq!(flat, reference(&plan, id, FlatMetadata { metadata: Some(&chroma_meta), prefix: "" }.all()));

            let with_prefix = prefixed(&chroma_meta, "acl_");
            let flat_prefixed = lazy(&plan, id, &FlatMetadata { metadata: Some(&with_prefix), prefix: "acl_" });
            prop_assert_eq!(flat_prefixed, flat);

            let payload = json!({"page_content": "x", "metadata": qdrant_meta.clone()});
            let payload = payload.as_object().unwrap();
            let nested = lazy(&plan, id, &NestedPayload::new(Some(payload), "metadata."));
            prop_assert_eq!(nested, reference(&plan, id, NestedPayload::new(Some(payload), "metadata.").all()));
        }
    }

    #[test]
    fn missing_metadata_and_nested_paths() {
        let dotted = Plan::Conditional(Expr::call(
            crate::plan::Op::Eq,
            vec![Expr::var("request.resource.attr.owner.team"), Expr::Value(Value::string("a"))],
        ));
        let meta = json!({"owner": {"team": "a"}});
        let meta = meta.as_object().unwrap();
        let attrs = NestedPayload { object: Some(meta) };
        assert!(lazy(&dotted, "1", &attrs));
        assert_eq!(lazy(&dotted, "1", &attrs), reference(&dotted, "1", attrs.all()));
        let other = json!({"owner": {"team": "b"}});
        assert!(!lazy(&dotted, "1", &NestedPayload { object: other.as_object() }));
        // No metadata at all: the attribute is missing, the comparison errors, the hit is denied.
        assert!(!lazy(&dotted, "1", &FlatMetadata { metadata: None, prefix: "" }));
        assert!(!lazy(&dotted, "1", &NestedPayload::new(None, "metadata.")));
        let payload = json!({"metadata": "not an object"});
        assert!(!lazy(&dotted, "1", &NestedPayload::new(payload.as_object(), "metadata.")));
    }
}
