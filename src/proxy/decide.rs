//! Policy questions for one request, all asked of one policy source (an embedded snapshot or
//! a Cerbos PDP, [`Source`]): the plan for an action turned into what the caller may touch
//! ([`Access`]), full checks on concrete resources (batched: one PDP request for many
//! records), and whether a record an answer lists satisfies a plan.
//!
//! Invariant: a question the source cannot answer (a PDP unreachable, slow, answering
//! something unreadable or untranslatable) is an error that refuses the request with 503,
//! counted in `vecgate_policy_source_errors_total`; it is never read as a decision.

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
use crate::policy::planner::{PlanOutput, PlanRequest};
use crate::policy::pdp::{JwtAux, PdpError};
use crate::policy::source::Source;
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
    Filtered { filter: Arc<Json>, plan: Arc<Plan> },
    /// The plan has no exact filter, and the collection opted into `post_filter_only`:
    /// forwarded without pushdown, every hit checked against the plan.
    PostFilterOnly { plan: Arc<Plan>, reason: TranslateError },
}

impl Access {
    /// The plan hits must satisfy, when hits must be checked.
    pub fn residual(&self) -> Option<&Plan> {
        match self {
            Access::Filtered { plan, .. } | Access::PostFilterOnly { plan, .. } => Some(plan.as_ref()),
            Access::Nothing | Access::Everything => None,
        }
    }

    pub fn filter(&self) -> Option<&Json> {
        match self {
            Access::Filtered { filter, .. } => Some(filter.as_ref()),
            _ => None,
        }
    }

    /// The access as a database module applies it to a request.
    pub fn scope(&self) -> Scope<'_> {
        match self {
            Access::Nothing => Scope::Nothing,
            Access::Everything => Scope::Everything,
            Access::Filtered { filter, .. } => Scope::Filter(filter.as_ref()),
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

/// A plan as [`Authorizer::planned`] gives it.
pub enum Planned {
    /// The plan cache's output: the same object for every request that finds it there.
    Shared(Arc<PlanOutput>),
    /// Made for this request alone (a PDP's, one the cache does not keep).
    Own(Plan),
}

impl Planned {
    pub fn into_plan(self) -> Plan {
        match self {
            Planned::Shared(output) => output.plan.clone(),
            Planned::Own(plan) => plan,
        }
    }
}

impl Access {
    /// What `plan` lets the caller touch, as a filter of the database's translator;
    /// `post_filter_only`: a plan without an exact filter is forwarded unfiltered and every
    /// hit checked, instead of being refused.
    pub fn of(
        plan: Plan,
        mapping: &FieldMapping,
        max_terms: usize,
        post_filter_only: bool,
        translate: impl Fn(&Expr, &FieldMapping, usize) -> Result<Pushdown, TranslateError>,
    ) -> Result<Access, ProxyError> {
        let condition = match &plan {
            Plan::AlwaysDenied => return Ok(Access::Nothing),
            Plan::AlwaysAllowed => return Ok(Access::Everything),
            Plan::Conditional(e) => e,
        };
        match translate(condition, mapping, max_terms) {
            Ok(Pushdown::MatchAll) => Ok(Access::Everything),
            Ok(Pushdown::MatchNone) => Ok(Access::Nothing),
            Ok(Pushdown::Filter(filter)) => Ok(Access::Filtered { filter: Arc::new(filter), plan: Arc::new(plan) }),
            Err(reason) if post_filter_only => Ok(Access::PostFilterOnly { plan: Arc::new(plan), reason }),
            Err(reason) => Err(ProxyError::Untranslatable(reason)),
        }
    }
}

/// A resource as a full check sees it.
pub struct Resource<'a> {
    pub kind: &'a str,
    pub id: &'a str,
    pub attr: BTreeMap<String, Value>,
}

/// Who is asking, with the policy source used for the whole request.
pub struct Authorizer {
    /// Shared with the verified-token cache.
    pub caller: Arc<Authenticated>,
    pub source: Source,
    /// The caller's raw token, kept only for a PDP that asks for it
    /// (`policies.pdp.send_token`: sent as `auxData.jwt.token`). Never logged.
    token: Option<String>,
    pub now: DateTime<FixedOffset>,
    metrics: Arc<Metrics>,
}

impl Authorizer {
    pub fn new(caller: Arc<Authenticated>, source: impl Into<Source>, metrics: Arc<Metrics>) -> Authorizer {
        Authorizer {
            caller,
            source: source.into(),
            token: None,
            now: Utc::now().fixed_offset(),
            metrics,
        }
    }

    /// Keeps the caller's token when the source is a PDP that asks for callers' tokens.
    pub fn with_token(mut self, token: &str) -> Authorizer {
        if matches!(&self.source, Source::Pdp(pdp) if pdp.sends_token()) {
            self.token = Some(token.to_string());
        }
        self
    }

    /// The token and verified claims for the PDP's `request.auxData.jwt`, when it gets them.
    fn jwt_aux(&self) -> Option<JwtAux<'_>> {
        self.token.as_deref().map(|token| JwtAux { token, claims: self.caller.claims() })
    }

    /// Must every record an answer lists be confirmed by a full check, beyond the plan? So
    /// with a PDP: its planner may allow what its check denies (see [`crate::policy::pdp`]).
    pub fn confirms_hits(&self) -> bool {
        matches!(self.source, Source::Pdp(_))
    }

    /// The plan for `action` on records of `kind`.
    pub async fn plan(&self, kind: &str, action: &str) -> Result<Plan, ProxyError> {
        Ok(self.planned(kind, action).await?.into_plan())
    }

    /// The plan for `action` on records of `kind`, shared with the plan cache where it came
    /// from there.
    pub async fn planned(&self, kind: &str, action: &str) -> Result<Planned, ProxyError> {
        let snapshot = match &self.source {
            Source::Snapshot(snapshot) => snapshot,
            Source::Pdp(pdp) => {
                let plan = pdp.plan(self.caller.principal(), self.jwt_aux(), kind, action).await;
                return plan.map(|p| Planned::Own(Plan::clone(&p))).map_err(|e| self.pdp_failed(e));
            }
        };
        let no_attrs = BTreeMap::new();
        let actions = [action.to_string()];
        let request = PlanRequest {
            principal: self.caller.principal(),
            resource_kind: kind,
            resource_scope: "",
            resource_version: "",
            resource_attr: &no_attrs,
            resource_id: None,
            attr_complete: false,
            actions: &actions,
            jwt: self.caller.claims(),
            now: self.now,
        };
        let (output, cached) = snapshot.planner.plan_and_report(&request, self.caller.plan_fingerprint());
        self.metrics.plan_cache(cached);
        Ok(if cached { Planned::Shared(output) } else { Planned::Own(output.plan.clone()) })
    }

    /// A full decision on one concrete resource.
    pub async fn may(&self, action: &str, resource: &Resource<'_>) -> Result<bool, ProxyError> {
        let answers = self.may_each(resource.kind, action, &[(resource.id, &resource.attr)]).await?;
        Ok(answers.first().copied().unwrap_or(false))
    }

    /// Full decisions on several resources of one kind, in order: one batched question to a
    /// PDP ([`crate::policy::pdp::CHECK_BATCH`] resources per request), in process otherwise.
    /// An answer of the wrong length denies every resource it does not cover.
    pub async fn may_each(
        &self,
        kind: &str,
        action: &str,
        resources: &[(&str, &BTreeMap<String, Value>)],
    ) -> Result<Vec<bool>, ProxyError> {
        if resources.is_empty() {
            return Ok(Vec::new());
        }
        match &self.source {
            Source::Snapshot(_) => Ok(resources
                .iter()
                .map(|(id, attr)| self.check_in_process(kind, action, id, attr).unwrap_or(false))
                .collect()),
            Source::Pdp(pdp) => {
                let mut answers = pdp
                    .check(self.caller.principal(), self.jwt_aux(), kind, action, resources)
                    .await
                    .map_err(|e| self.pdp_failed(e))?;
                answers.resize(resources.len(), false);
                Ok(answers)
            }
        }
    }

    /// A full decision made in process, without waiting: `None` when the source is a PDP
    /// (ask [`Authorizer::may_each`] instead).
    pub fn check_in_process(&self, kind: &str, action: &str, id: &str, attr: &BTreeMap<String, Value>) -> Option<bool> {
        let Source::Snapshot(snapshot) = &self.source else {
            return None;
        };
        let actions = [action.to_string()];
        let request = PlanRequest {
            principal: self.caller.principal(),
            resource_kind: kind,
            resource_scope: "",
            resource_version: "",
            resource_attr: attr,
            resource_id: Some(id),
            attr_complete: true,
            actions: &actions,
            jwt: self.caller.claims(),
            now: self.now,
        };
        Some(snapshot.planner.planner().check(&request))
    }

    /// Does a record satisfy the plan? A record that cannot be evaluated does not.
    pub fn hit_allowed(&self, plan: &Plan, kind: &str, id: &dyn fmt::Display, attrs: &dyn RecordAttributes) -> bool {
        let env = HitEnv { id, kind, attrs, ctx: CallContext { now: self.now }, whole: OnceCell::new() };
        allows(plan, &env)
    }

    /// A PDP failure, counted, as the error that answers the request (503).
    fn pdp_failed(&self, e: PdpError) -> ProxyError {
        self.metrics.policy_source_error(e.reason());
        ProxyError::PolicySource(e)
    }
}

/// Are two attribute sets the same, value for value and of the same types? (`Value` has no
/// `PartialEq`: CEL's equality is not an equivalence for doubles.)
pub fn same_attributes(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && va.to_json() == vb.to_json())
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

    /// Two tokens of the same principal that differ only in a claim outside the principal
    /// (`auth.principal.attr` configured) get their own plans: the plan cache's key covers the
    /// verified claims policies read as `request.auxData.jwt`, so a cached plan is never
    /// served to a caller whose claims it was not made from.
    #[test]
    fn plan_cache_keeps_callers_apart_by_their_claims() {
        use crate::authn::Authenticated;
        use crate::metrics::Metrics;
        use crate::policy::planner::Principal;
        use crate::policy::store::PolicyStore;

        let policy = r#"
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: [read]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: request.auxData.jwt.clearance == "high"
"#;
        let (_dir, store) = PolicyStore::of_one_policy(policy);
        let metrics = Arc::new(Metrics::new().unwrap());
        let principal = Principal { id: "alice".into(), roles: vec!["user".into()], ..Principal::default() };
        let caller = |clearance: &str| {
            let claims = BTreeMap::from([("clearance".to_string(), Value::string(clearance))]);
            Arc::new(Authenticated::new(principal.clone(), claims, None))
        };
        let plan = |clearance: &str| {
            let authorizer = Authorizer::new(caller(clearance), store.snapshot(), metrics.clone());
            tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(authorizer.plan("doc", "read")).unwrap()
        };
        assert_eq!(plan("high"), Plan::AlwaysAllowed);
        assert_eq!(plan("low"), Plan::AlwaysDenied);
        assert_eq!(plan("high"), Plan::AlwaysAllowed);
        assert_ne!(caller("high").plan_fingerprint(), caller("low").plan_fingerprint());
        assert_eq!(caller("high").plan_fingerprint(), caller("high").plan_fingerprint());
    }
}
