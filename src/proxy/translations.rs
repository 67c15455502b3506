//! Translations of cached plans into database filters, kept for the requests that follow.
//!
//! Translating a plan (lowering it, rendering the database's filter) costs more than
//! everything else authorization does with a cached plan, and for a given caller it gives
//! the same answer every time. An [`Access`] is kept here under the identity of the plan
//! cache's shared output it was made from, with everything else the translation depends on:
//! the collection rule (by its position among the gateway's rules, which with their field
//! mappings live as long as the gateway does, as does this memo), the database's translator
//! (its type), the term limit and `post_filter_only`.
//!
//! Invariant: an entry is found only for the very plan object it was made from. The key
//! holds that object (an `Arc`), so its address cannot be reused for another plan while the
//! entry exists; a plan made anew (a new policy version, a plan-cache eviction, a plan that
//! depends on the clock and is never cached) is a different object and is translated again.
//! Only translations that succeeded are kept: refusals are rare and computed each time.

use super::decide::Access;
use crate::policy::planner::PlanOutput;
use std::any::TypeId;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Most translations kept at once.
const CAPACITY: u64 = 10_000;

/// Accesses by the plan and the translation they came from.
pub(super) struct Translations {
    cache: moka::sync::Cache<TranslationKey, Access>,
}

/// What a translation depends on.
#[derive(Clone)]
pub(super) struct TranslationKey {
    /// The plan cache's output, compared and hashed by identity.
    plan: Arc<PlanOutput>,
    /// The collection rule (its position in `config.collections`: the same rule and field
    /// mapping for the gateway's whole life).
    rule: usize,
    database: TypeId,
    max_terms: usize,
    post_filter_only: bool,
}

impl TranslationKey {
    pub fn new(plan: Arc<PlanOutput>, rule: usize, database: TypeId, max_terms: usize, post_filter_only: bool) -> TranslationKey {
        TranslationKey { plan, rule, database, max_terms, post_filter_only }
    }
}

impl PartialEq for TranslationKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.plan, &other.plan)
            && self.rule == other.rule
            && self.database == other.database
            && self.max_terms == other.max_terms
            && self.post_filter_only == other.post_filter_only
    }
}

impl Eq for TranslationKey {}

impl Hash for TranslationKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.plan) as usize).hash(state);
        self.rule.hash(state);
        self.database.hash(state);
        self.max_terms.hash(state);
        self.post_filter_only.hash(state);
    }
}

impl Translations {
    pub fn new() -> Translations {
        Translations { cache: moka::sync::Cache::new(CAPACITY) }
    }

    pub fn get(&self, key: &TranslationKey) -> Option<Access> {
        self.cache.get(key)
    }

    pub fn insert(&self, key: TranslationKey, access: Access) {
        self.cache.insert(key, access);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use std::collections::BTreeMap;

    fn output() -> Arc<PlanOutput> {
        Arc::new(PlanOutput { plan: Plan::AlwaysAllowed, no_match: false, matched_scopes: BTreeMap::new() })
    }

    /// An entry is found for the very plan object it was made from, with the same rule,
    /// database, limit and `post_filter_only`; an equal plan made anew is another plan.
    #[test]
    fn entries_are_found_only_for_the_same_plan_object_and_translation() {
        let memo = Translations::new();
        let plan = output();
        let key = |plan: &Arc<PlanOutput>, rule, database, max_terms, post_filter_only| {
            TranslationKey::new(plan.clone(), rule, database, max_terms, post_filter_only)
        };
        memo.insert(key(&plan, 0, TypeId::of::<u8>(), 500, false), Access::Everything);
        assert!(matches!(memo.get(&key(&plan, 0, TypeId::of::<u8>(), 500, false)), Some(Access::Everything)));
        for other in [
            key(&output(), 0, TypeId::of::<u8>(), 500, false),
            key(&plan, 1, TypeId::of::<u8>(), 500, false),
            key(&plan, 0, TypeId::of::<u16>(), 500, false),
            key(&plan, 0, TypeId::of::<u8>(), 499, false),
            key(&plan, 0, TypeId::of::<u8>(), 500, true),
        ] {
            assert!(memo.get(&other).is_none());
        }
    }
}
