//! A bounded plan cache keyed by (policy set version, principal fingerprint, resource kind,
//! scope, actions). Plans that depend on the clock (`now()`, `timeSince`) are not cached.

use super::planner::{PlanOutput, PlanRequest, Planner, Principal};
use crate::plan::value::Value;
use crate::plan::{Expr, Op, Plan};
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    policy_version: u64,
    principal: u64,
    kind: String,
    scope: String,
    version: String,
    actions: Vec<String>,
}

/// A planner with a plan cache in front of it.
pub struct CachedPlanner {
    planner: Planner,
    policy_version: u64,
    cache: moka::sync::Cache<PlanKey, Arc<PlanOutput>>,
}

impl CachedPlanner {
    pub fn new(planner: Planner, policy_version: u64, capacity: u64) -> Self {
        CachedPlanner {
            planner,
            policy_version,
            cache: moka::sync::Cache::new(capacity),
        }
    }

    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    /// Plans through the cache. `principal_fingerprint` comes from [`fingerprint`], computed
    /// once per principal. Requests with known resource attributes bypass the cache.
    pub fn plan(&self, request: &PlanRequest<'_>, principal_fingerprint: u64) -> Arc<PlanOutput> {
        self.plan_and_report(request, principal_fingerprint).0
    }

    /// Like [`CachedPlanner::plan`], also saying whether the plan came from the cache.
    pub fn plan_and_report(
        &self,
        request: &PlanRequest<'_>,
        principal_fingerprint: u64,
    ) -> (Arc<PlanOutput>, bool) {
        if !request.resource_attr.is_empty() || request.resource_id.is_some() {
            return (Arc::new(self.planner.plan(request)), false);
        }
        let key = PlanKey {
            policy_version: self.policy_version,
            principal: principal_fingerprint,
            kind: request.resource_kind.to_string(),
            scope: request.resource_scope.to_string(),
            version: request.resource_version.to_string(),
            actions: request.actions.to_vec(),
        };
        if let Some(hit) = self.cache.get(&key) {
            return (hit, true);
        }
        let out = Arc::new(self.planner.plan(request));
        if !depends_on_clock(&out.plan) {
            self.cache.insert(key, out.clone());
        }
        (out, false)
    }
}

/// A stable hash of everything about a principal that a plan can depend on.
pub fn fingerprint(p: &Principal) -> u64 {
    let mut h = DefaultHasher::new();
    p.id.hash(&mut h);
    p.roles.hash(&mut h);
    p.scope.hash(&mut h);
    p.policy_version.hash(&mut h);
    for (k, v) in &p.attr {
        k.hash(&mut h);
        hash_value(v, &mut h);
    }
    h.finish()
}

/// The plan cache's key for a verified caller: its principal ([`fingerprint`]) and its
/// verified claims, which policies read as `request.auxData.jwt` (with `auth.principal.attr`
/// configured, claims outside it are not in the principal).
pub fn caller_fingerprint(principal: &Principal, claims: &BTreeMap<String, Value>) -> u64 {
    let mut h = DefaultHasher::new();
    fingerprint(principal).hash(&mut h);
    claims.len().hash(&mut h);
    for (k, v) in claims {
        k.hash(&mut h);
        hash_value(v, &mut h);
    }
    h.finish()
}

fn hash_value(v: &Value, h: &mut DefaultHasher) {
    std::mem::discriminant(v).hash(h);
    match v {
        Value::Null => {}
        Value::Bool(b) => b.hash(h),
        Value::Int(i) => i.hash(h),
        Value::Uint(u) => u.hash(h),
        Value::Double(d) => d.to_bits().hash(h),
        Value::String(s) => s.hash(h),
        Value::Bytes(b) => b.hash(h),
        Value::List(l) => {
            l.len().hash(h);
            for i in l.iter() {
                hash_value(i, h);
            }
        }
        Value::Map(m) => {
            m.len().hash(h);
            for (k, v) in m.iter() {
                k.hash(h);
                hash_value(v, h);
            }
        }
        Value::Timestamp(t) => t.hash(h),
        Value::Duration(d) => d.hash(h),
        Value::Hierarchy(p) => p.hash(h),
        Value::Type(t) => t.hash(h),
    }
}

fn depends_on_clock(plan: &Plan) -> bool {
    fn walk(e: &Expr) -> bool {
        match e {
            Expr::Value(Value::Timestamp(_)) => true,
            Expr::Call(Op::Call(name), args) => {
                matches!(name.as_str(), "now" | "timeSince") || args.iter().any(walk)
            }
            Expr::Call(_, args) => args.iter().any(walk),
            _ => false,
        }
    }
    match plan {
        Plan::Conditional(e) => walk(e),
        _ => false,
    }
}
