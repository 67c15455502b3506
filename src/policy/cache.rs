//! A bounded plan cache keyed by (policy set version, principal fingerprint, resource kind,
//! scope, actions). Plans that depend on the clock (`now()`, `timeSince`) are not cached.
//!
//! Invariant: a fingerprint is 128 bits of two SipHash-1-3 hashes under keys drawn at random
//! when the process starts ([`Fingerprint`]). Two callers share a cached plan only if their
//! fingerprints are equal; with secret keys nobody can search offline for a caller whose
//! fingerprint equals another's, and an accidental equality is a 2^-128 event.

use super::planner::{PlanOutput, PlanRequest, Planner, Principal};
use crate::plan::value::Value;
use crate::plan::{Expr, Op, Plan};
use std::collections::BTreeMap;
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

/// What the plan caches (this one and the PDP client's) know a caller by.
pub type Fingerprint = u128;

/// Two hashers under independent random keys, fed the same bytes: a 128-bit keyed hash.
pub struct FingerprintHasher(DefaultHasher, DefaultHasher);

impl FingerprintHasher {
    pub fn new() -> FingerprintHasher {
        static KEYS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
        let (a, b) = KEYS.get_or_init(|| (RandomState::new(), RandomState::new()));
        FingerprintHasher(a.build_hasher(), b.build_hasher())
    }

    pub fn finish128(&self) -> Fingerprint {
        (u128::from(self.0.finish()) << 64) | u128::from(self.1.finish())
    }
}

impl Default for FingerprintHasher {
    fn default() -> Self {
        FingerprintHasher::new()
    }
}

impl Hasher for FingerprintHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
        self.1.write(bytes);
    }

    /// The first half; use [`FingerprintHasher::finish128`].
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    policy_version: u64,
    principal: Fingerprint,
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
    pub fn plan(&self, request: &PlanRequest<'_>, principal_fingerprint: Fingerprint) -> Arc<PlanOutput> {
        self.plan_and_report(request, principal_fingerprint).0
    }

    /// Like [`CachedPlanner::plan`], also saying whether the plan came from the cache.
    pub fn plan_and_report(
        &self,
        request: &PlanRequest<'_>,
        principal_fingerprint: Fingerprint,
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
pub fn fingerprint(p: &Principal) -> Fingerprint {
    let mut h = FingerprintHasher::new();
    p.id.hash(&mut h);
    p.roles.hash(&mut h);
    p.scope.hash(&mut h);
    p.policy_version.hash(&mut h);
    for (k, v) in &p.attr {
        k.hash(&mut h);
        hash_value(v, &mut h);
    }
    h.finish128()
}

/// The plan cache's key for a verified caller: its principal ([`fingerprint`]) and its
/// verified claims, which policies read as `request.auxData.jwt` (with `auth.principal.attr`
/// configured, claims outside it are not in the principal).
pub fn caller_fingerprint(principal: &Principal, claims: &BTreeMap<String, Value>) -> Fingerprint {
    let mut h = FingerprintHasher::new();
    fingerprint(principal).hash(&mut h);
    claims.len().hash(&mut h);
    for (k, v) in claims {
        k.hash(&mut h);
        hash_value(v, &mut h);
    }
    h.finish128()
}

fn hash_value(v: &Value, h: &mut FingerprintHasher) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(id: &str, department: &str) -> Principal {
        Principal {
            id: id.into(),
            roles: vec!["user".into()],
            attr: [("department".to_string(), Value::string(department))].into_iter().collect(),
            ..Principal::default()
        }
    }

    #[test]
    fn fingerprints_are_128_bits_under_two_independent_keys() {
        let a = fingerprint(&principal("alice", "finance"));
        assert_eq!(a, fingerprint(&principal("alice", "finance")), "stable within the process");
        assert_ne!(a, fingerprint(&principal("alice", "hr")));
        assert_ne!(a, fingerprint(&principal("bob", "finance")));
        // The halves come from different keys (equal halves would mean one key twice).
        assert_ne!((a >> 64) as u64, a as u64);
        // Claims beyond the principal are part of the caller's fingerprint.
        let p = principal("alice", "finance");
        let claims = |level: i64| [("level".to_string(), Value::Int(level))].into_iter().collect();
        assert_ne!(caller_fingerprint(&p, &claims(1)), caller_fingerprint(&p, &claims(2)));
    }
}
