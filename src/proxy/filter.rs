//! The filter phase: the database's answer as the caller may see it. Every record an answer
//! lists is judged against the plan again (the second line of defence: the pushed-down filter
//! should already have kept them out), listings keep only readable collections, and a
//! collection named only in the answer is checked there. With a PDP as the policy source the
//! plan is not the authority (its planner can allow what its check denies), so every hit the
//! plan admits is also decided by the PDP's CheckResources, in one batched question per
//! answer and collection, and removed unless allowed. An answer whose shape the database
//! module does not know fails closed (502). Non-success answers go back as they are.

use super::authorize::{LookupPlan, COLLECTION_KIND};
use super::decide::{same_attributes, Access, Authorizer};
use super::error::ProxyError;
use super::gateway::Gateway;
use super::rewrite::{RecordCheck, Then};
use crate::audit::{AuditEvent, Decision};
use crate::backends::seam::{Answer, Database, Filtered, FilteredBody, Judge, RecordAttributes};
use crate::plan::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Records of one answer that satisfy their plans, collected for one batched check per
/// collection (`None`: the request's own). An id listed twice with different attributes
/// is denied.
#[derive(Default)]
struct Candidates(BTreeMap<Option<String>, BTreeMap<String, Option<Attributes>>>);

type Attributes = BTreeMap<String, Value>;

/// The check's verdict on each candidate.
type Verdicts = BTreeSet<(Option<String>, String)>;

/// Whether hits that satisfy the plan must also pass a full check.
enum Confirm<'a> {
    /// The plan decides (an embedded policy set: its plans are exact).
    PlanDecides,
    /// First pass with a PDP: every hit the plan admits is collected.
    Collect(&'a mut Candidates),
    /// Second pass: only hits the PDP's check allowed.
    Allowed(&'a Verdicts),
}

impl Confirm<'_> {
    fn admits(&mut self, collection: Option<&str>, id: &dyn fmt::Display, attrs: &dyn RecordAttributes) -> bool {
        match self {
            Confirm::PlanDecides => true,
            Confirm::Collect(candidates) => {
                let attrs = attrs.all();
                let seen = candidates.0.entry(collection.map(str::to_string)).or_default();
                match seen.get_mut(&id.to_string()) {
                    None => {
                        seen.insert(id.to_string(), Some(attrs));
                    }
                    Some(known) => {
                        if !known.as_ref().is_some_and(|k| same_attributes(k, &attrs)) {
                            *known = None;
                        }
                    }
                }
                true
            }
            Confirm::Allowed(allowed) => allowed.contains(&(collection.map(str::to_string), id.to_string())),
        }
    }
}

/// Judges records against a read's plan (and a lookup collection's against its own), and,
/// with a PDP, against its check.
struct RecordJudge<'a> {
    authorizer: &'a Authorizer,
    check: &'a RecordCheck,
    confirm: Confirm<'a>,
}

impl Judge for RecordJudge<'_> {
    fn admits(&mut self, id: &dyn fmt::Display, attrs: &dyn RecordAttributes) -> bool {
        let in_plan = match (self.check.access.residual(), &self.check.compiled) {
            (None, _) => true,
            (Some(_), Some(compiled)) => compiled.admits(attrs),
            (Some(plan), None) => self.authorizer.hit_allowed(plan, &self.check.kind, id, attrs),
        };
        in_plan && self.confirm.admits(None, id, attrs)
    }

    /// A record of a collection the request did not name for lookups is refused.
    fn admits_lookup(&mut self, collection: &str, id: &dyn fmt::Display, attrs: &dyn RecordAttributes) -> bool {
        let in_plan = self
            .check
            .lookups
            .iter()
            .find(|l: &&LookupPlan| l.collection == collection)
            .is_some_and(|l| self.authorizer.hit_allowed(&l.plan, &l.kind, id, attrs));
        in_plan && self.confirm.admits(Some(collection), id, attrs)
    }
}

impl Gateway {
    /// The answer's records as the caller may see them. With a PDP, the answer is read twice:
    /// first to collect the hits the plan admits, which the PDP's check then decides in one
    /// batch per collection, then to keep only those it allowed.
    async fn filter_records<D: Database>(
        &self,
        db: &D,
        then: D::Then,
        answer: &Answer,
        authorizer: &Authorizer,
        check: &RecordCheck,
    ) -> Result<Filtered, ProxyError> {
        if !authorizer.confirms_hits() {
            let mut judge = RecordJudge { authorizer, check, confirm: Confirm::PlanDecides };
            return db.filter_answer(then, answer, &mut judge).map_err(ProxyError::unreadable);
        }
        let mut candidates = Candidates::default();
        let mut collecting = RecordJudge { authorizer, check, confirm: Confirm::Collect(&mut candidates) };
        db.filter_answer(then.clone(), answer, &mut collecting).map_err(ProxyError::unreadable)?;
        let mut allowed = Verdicts::new();
        for (collection, records) in candidates.0 {
            let kind = match &collection {
                None => check.kind.as_str(),
                Some(name) => match check.lookups.iter().find(|l| l.collection == *name) {
                    Some(lookup) => lookup.kind.as_str(),
                    None => continue,
                },
            };
            // Ids listed with two different attribute sets are not asked: denied.
            let asked: Vec<(&str, &Attributes)> =
                records.iter().filter_map(|(id, attrs)| Some((id.as_str(), attrs.as_ref()?))).collect();
            let verdicts = authorizer.may_each(kind, "read", &asked).await?;
            for ((id, _), ok) in asked.iter().zip(verdicts) {
                if ok {
                    allowed.insert((collection.clone(), (*id).to_string()));
                }
            }
        }
        let mut judge = RecordJudge { authorizer, check, confirm: Confirm::Allowed(&allowed) };
        db.filter_answer(then, answer, &mut judge).map_err(ProxyError::unreadable)
    }

    /// The collections of a listing the caller may read (with a PDP: one batched check).
    async fn readable_listing<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        authorizer: &Authorizer,
        answer: &Answer,
        count: bool,
    ) -> Result<Answer, ProxyError> {
        if !authorizer.confirms_hits() {
            let mut readable = |name: &str| {
                let attrs = db.collection_attributes(route, name);
                authorizer.check_in_process(COLLECTION_KIND, "read", name, &attrs).unwrap_or(false)
            };
            return db.filter_listing(route, answer, count, &mut readable).map_err(ProxyError::unreadable);
        }
        let mut names = Vec::new();
        db.filter_listing(route, answer, count, &mut |name: &str| {
            names.push(name.to_string());
            true
        })
        .map_err(ProxyError::unreadable)?;
        let verdicts = self.may_read_collections(db, route, authorizer, &names).await?;
        let readable: BTreeSet<&str> =
            names.iter().zip(verdicts).filter(|(_, ok)| *ok).map(|(name, _)| name.as_str()).collect();
        db.filter_listing(route, answer, count, &mut |name: &str| readable.contains(name))
            .map_err(ProxyError::unreadable)
    }

    /// The answer as the caller may see it.
    pub(super) async fn filter<D: Database>(
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
                self.require_collection(db, route, authorizer, "read", &name, event).await?;
                Ok(answer)
            }
            Then::Listing { count } => {
                let listing = self.readable_listing(db, route, authorizer, &answer, count).await?;
                event.decision = Decision::Filter;
                Ok(listing)
            }
            Then::Records { then, check } => {
                let filtered = self.filter_records(db, then, &answer, authorizer, &check).await?;
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
