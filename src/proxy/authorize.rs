//! Policy decisions for one request: a read plan turned into a pushdown filter, and
//! per-record checks for writes.

use super::respond::ProxyError;
use crate::authn::Authenticated;
use crate::metrics::Metrics;
use crate::backends::{FieldMapping, Pushdown, TranslateError};
use crate::plan::eval::{allows, walk, Env, RecordEnv, Resolved};
use crate::plan::expr::{split_first_segment, RESOURCE_ATTR};
use crate::plan::value::MapKey;
use crate::plan::functions::CallContext;
use crate::plan::{EvalError, Expr, Plan, Value};
use crate::policy::cache::fingerprint;
use crate::policy::planner::PlanRequest;
use crate::policy::store::Snapshot;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value as Json};
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt;
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
    pub fn hit_allowed(&self, plan: &Plan, kind: &str, id: &dyn fmt::Display, attrs: HitAttributes<'_>) -> bool {
        let env = HitEnv {
            id,
            kind,
            attrs,
            ctx: CallContext { now: self.now },
            whole: OnceCell::new(),
        };
        allows(plan, &env)
    }
}

/// Where a hit's `R.attr` values are read from: the JSON the database returned.
#[derive(Clone, Copy)]
pub enum HitAttributes<'a> {
    /// Flat metadata keys `<prefix><name>` (Chroma).
    Flat { metadata: Option<&'a Map<String, Json>>, prefix: &'a str },
    /// The object at a dotted path inside a payload (Qdrant); `None` if that path is missing.
    Nested { object: Option<&'a Map<String, Json>> },
}

impl<'a> HitAttributes<'a> {
    /// Attributes of a Qdrant payload whose attributes sit under the dotted `prefix`.
    pub fn nested(payload: Option<&'a Map<String, Json>>, prefix: &str) -> HitAttributes<'a> {
        HitAttributes::Nested { object: attribute_object(payload, prefix) }
    }

    /// One attribute, converted; `None` if the record does not have it.
    fn get(&self, name: &str) -> Option<Value> {
        let json = match *self {
            HitAttributes::Flat { metadata, prefix: "" } => metadata?.get(name),
            HitAttributes::Flat { metadata, prefix } => metadata?.get(&format!("{prefix}{name}")),
            HitAttributes::Nested { object } => object?.get(name),
        };
        json.map(Value::from_json)
    }

    fn all(&self) -> BTreeMap<String, Value> {
        match *self {
            HitAttributes::Flat { metadata, prefix } => flat_record_attributes(metadata, prefix),
            HitAttributes::Nested { object } => object
                .map(|o| o.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect())
                .unwrap_or_default(),
        }
    }
}

/// A hit as the plan evaluator sees it. `R.attr.<name>` is converted from the JSON on
/// demand, so a plan that reads two attributes converts two values; anything else (the whole
/// `R.attr`, `R.id`, `has(R.attr.x)`) builds the full resource once, as `RecordEnv` would.
struct HitEnv<'a> {
    id: &'a dyn fmt::Display,
    kind: &'a str,
    attrs: HitAttributes<'a>,
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
    HitAttributes::nested(payload, prefix).all()
}

/// The object at the dotted `prefix` inside `payload` (the payload itself for an empty prefix).
fn attribute_object<'a>(payload: Option<&'a Map<String, Json>>, prefix: &str) -> Option<&'a Map<String, Json>> {
    let mut object = payload;
    for segment in prefix.split('.').filter(|s| !s.is_empty()) {
        object = object.and_then(|o| o.get(segment)).and_then(Json::as_object);
    }
    object
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backends::testkit::{self, Model};
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: &str = "2026-01-01T00:00:00Z";

    /// The reference: the whole record converted up front, as `RecordEnv` sees it.
    fn reference(plan: &Plan, id: &str, attrs: BTreeMap<String, Value>) -> bool {
        let attr = attrs.into_iter().map(|(k, v)| (MapKey::String(Arc::from(k)), v)).collect();
        let ctx = CallContext { now: DateTime::parse_from_rfc3339(NOW).unwrap() };
        allows(plan, &RecordEnv::new(Value::string(id), "doc", Value::map(attr), ctx))
    }

    fn lazy(plan: &Plan, id: &str, attrs: HitAttributes<'_>) -> bool {
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
            let flat = lazy(&plan, id, HitAttributes::Flat { metadata: Some(&chroma_meta), prefix: "" });
            prop_assert_eq!(flat, reference(&plan, id, flat_record_attributes(Some(&chroma_meta), "")));

            let with_prefix = prefixed(&chroma_meta, "acl_");
            let flat_prefixed = lazy(&plan, id, HitAttributes::Flat { metadata: Some(&with_prefix), prefix: "acl_" });
            prop_assert_eq!(flat_prefixed, flat);

            let payload = json!({"page_content": "x", "metadata": qdrant_meta.clone()});
            let payload = payload.as_object().unwrap();
            let nested = lazy(&plan, id, HitAttributes::nested(Some(payload), "metadata."));
            prop_assert_eq!(nested, reference(&plan, id, nested_record_attributes(Some(payload), "metadata.")));
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
        let attrs = HitAttributes::Nested { object: Some(meta) };
        assert!(lazy(&dotted, "1", attrs));
        assert_eq!(lazy(&dotted, "1", attrs), reference(&dotted, "1", attrs.all()));
        let other = json!({"owner": {"team": "b"}});
        assert!(!lazy(&dotted, "1", HitAttributes::Nested { object: other.as_object() }));
        // No metadata at all: the attribute is missing, the comparison errors, the hit is denied.
        assert!(!lazy(&dotted, "1", HitAttributes::Flat { metadata: None, prefix: "" }));
        assert!(!lazy(&dotted, "1", HitAttributes::nested(None, "metadata.")));
        let payload = json!({"metadata": "not an object"});
        assert!(!lazy(&dotted, "1", HitAttributes::nested(payload.as_object(), "metadata.")));
    }
}
