//! The filter phase: the database's answer as the caller may see it. Every record an answer
//! lists is judged against the plan again (the second line of defence: the pushed-down filter
//! should already have kept them out), listings keep only readable collections, and a
//! collection named only in the answer is checked there. An answer whose shape the database
//! module does not know fails closed (502). Non-success answers go back as they are.

use super::authorize::LookupPlan;
use super::decide::{Access, Authorizer};
use super::error::ProxyError;
use super::gateway::Gateway;
use super::rewrite::{RecordCheck, Then};
use crate::audit::{AuditEvent, Decision};
use crate::backends::seam::{Answer, Database, FilteredBody, Judge, RecordAttributes};
use std::fmt;

/// Judges records against a read's plan (and a lookup collection's against its own).
struct RecordJudge<'a> {
    authorizer: &'a Authorizer,
    check: &'a RecordCheck,
}

impl Judge for RecordJudge<'_> {
    fn admits(&mut self, id: &dyn fmt::Display, attrs: &dyn RecordAttributes) -> bool {
        match (self.check.access.residual(), &self.check.compiled) {
            (None, _) => true,
            (Some(_), Some(compiled)) => compiled.admits(attrs),
            (Some(plan), None) => self.authorizer.hit_allowed(plan, &self.check.kind, id, attrs),
        }
    }

    /// A record of a collection the request did not name for lookups is refused.
    fn admits_lookup(&mut self, collection: &str, id: &dyn fmt::Display, attrs: &dyn RecordAttributes) -> bool {
        self.check
            .lookups
            .iter()
            .find(|l: &&LookupPlan| l.collection == collection)
            .is_some_and(|l| self.authorizer.hit_allowed(&l.plan, &l.kind, id, attrs))
    }
}

impl Gateway {
    /// The answer as the caller may see it.
    pub(super) fn filter<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        authorizer: Option<&Authorizer>,
        then: Then<D>,
        answer: Answer,
        event: &mut AuditEvent,
    ) -> Result<Answer, ProxyError> {
        if !answer.is_success() {
            return Ok(match &then {
                Then::Records { then, .. } => db.failed_answer(then, answer),
                _ => answer,
            });
        }
        let authorizer = match then {
            Then::PassBack => return Ok(answer),
            Then::Instead(instead) => return Ok(instead),
            _ => authorizer.ok_or_else(|| ProxyError::Internal("an answer to check without a caller".into()))?,
        };
        match then {
            Then::PassBack => Ok(answer),
            Then::Instead(instead) => Ok(instead),
            Then::NameInAnswer => {
                let name = db.collection_name(&answer.body).map_err(ProxyError::unreadable)?;
                self.require_collection(db, route, authorizer, "read", &name, event)?;
                Ok(answer)
            }
            Then::Listing { count } => {
                let mut readable = |name: &str| self.may_collection(db, route, authorizer, "read", name);
                let listing = db.filter_listing(route, &answer, count, &mut readable).map_err(ProxyError::unreadable)?;
                event.decision = Decision::Filter;
                Ok(listing)
            }
            Then::Records { then, check } => {
                let mut judge = RecordJudge { authorizer, check: &check };
                let filtered = db.filter_answer(then, &answer, &mut judge).map_err(ProxyError::unreadable)?;
                event.hits_stripped = Some(filtered.stripped);
                event.hits_returned = filtered.returned;
                if matches!(check.access, Access::PostFilterOnly { .. }) {
                    // Without pushdown, every removed hit is one the caller asked for and did
                    // not get.
                    self.metrics.shortfall(db.name(), filtered.stripped);
                } else if filtered.stripped > 0 {
                    tracing::warn!(
                        request_id = %event.request_id,
                        stripped = filtered.stripped,
                        "records outside the plan came back from the database and were removed"
                    );
                }
                Ok(match filtered.body {
                    FilteredBody::Unchanged => answer,
                    FilteredBody::Rewritten(body) => Answer::json(answer.status, &body),
                    FilteredBody::Encoded(body) => Answer { body, ..answer },
                    FilteredBody::Spliced(body) => Answer::json_text(answer.status, body),
                    FilteredBody::Replaced(missing) => {
                        event.decision = Decision::Deny;
                        missing
                    }
                })
            }
        }
    }
}
