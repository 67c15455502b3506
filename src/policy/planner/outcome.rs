//! What planning one action yields, for the planner's combining strategies.

use crate::plan::Plan;

/// One action's plan, with what the response metadata reports about it.
pub(crate) struct ActionPlan {
    pub plan: Plan,
    /// Some policy produced a rule for this action.
    pub matched: bool,
    /// The scope whose rules decided it (Cerbos' `matchedScopes`).
    pub scope: String,
}
