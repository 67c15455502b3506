//! The rewrite phase: the request as it goes to the database (the plan's filter ANDed into
//! every place the database filters, the attributes the hit check needs forced into the
//! answer) or the answer given without asking the database, and how the answer will be read.
//! The database module writes the bytes; the limit on filter size is checked here, on what
//! actually goes out.

use super::authorize::{Authorized, LookupPlan};
use super::classify::Target;
use super::decide::Access;
use super::error::ProxyError;
use super::gateway::Gateway;
use super::hit_plan::Conjunction;
use crate::backends::seam::{Answer, Body, Call, Database, Narrowed, Outgoing, Path, ReadScope};
use http::request::Parts;

/// What goes to the database for a request, and how its answer is read. One per request,
/// moved once: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Sending<D: Database> {
    /// Answered without asking the database.
    Local(Answer),
    Send { call: Call, then: Then<D> },
}

/// How the answer is read.
pub(super) enum Then<D: Database> {
    /// Passed back as it is.
    PassBack,
    /// Where the database succeeds, this is the answer instead (a write some of whose records
    /// were left out: the database's answer for missing records).
    Instead(Answer),
    /// Every record it lists judged against `check`, by the database module.
    Records { then: D::Then, check: RecordCheck },
    /// A collection listing: only the collections the caller may read.
    Listing { count: bool },
    /// `read` required on the collection the answer names.
    NameInAnswer,
}

/// What records of an answer must satisfy.
pub(super) struct RecordCheck {
    pub kind: String,
    pub access: Access,
    /// The plan hits must satisfy, compiled where it is a plain conjunction.
    pub compiled: Option<Conjunction>,
    pub lookups: Vec<LookupPlan>,
}

impl Gateway {
    /// The request as it goes to the database.
    pub(super) fn rewrite<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        parts: &Parts,
        target: Option<&Target<'_>>,
        body: Option<D::Body>,
        authorized: Authorized,
    ) -> Result<Sending<D>, ProxyError> {
        let as_sent = |body: Option<D::Body>| -> Result<Call, ProxyError> {
            let body = db.as_sent(route, body).map_err(ProxyError::refused)?;
            Ok(Call::new(parts.method.clone(), Path::AsSent, body))
        };
        let sending = match authorized {
            Authorized::AsSent => Sending::Send { call: as_sent(body)?, then: Then::PassBack },
            Authorized::NameInAnswer => Sending::Send { call: as_sent(body)?, then: Then::NameInAnswer },
            Authorized::Listing { call, count } => Sending::Send {
                call: match call {
                    Some(call) => call,
                    None => as_sent(body)?,
                },
                then: Then::Listing { count },
            },
            Authorized::Write(Narrowed::Answer(answer)) => Sending::Local(answer),
            Authorized::Write(Narrowed::Send { call, instead }) => {
                Sending::Send { call, then: instead.map_or(Then::PassBack, Then::Instead) }
            }
            Authorized::Read { access, lookups, check_every_hit } => {
                let target = target.ok_or_else(|| ProxyError::Internal("a read without its collection".into()))?;
                let scope = ReadScope {
                    scope: access.scope(),
                    check_hits: access.residual().is_some() || !lookups.is_empty() || check_every_hit,
                    mapping: target.mapping,
                };
                let body = body.unwrap_or_else(|| db.empty_body(route));
                let outgoing = db.rewrite_read(route, &target.located, body, scope).map_err(ProxyError::refused)?;
                let compiled = access.residual().and_then(Conjunction::compile);
                let check = RecordCheck { kind: target.rule.resource_kind.clone(), access, compiled, lookups };
                match outgoing {
                    Outgoing::Local(answer) => Sending::Local(answer),
                    Outgoing::Send { call, then: None } => Sending::Send { call, then: Then::PassBack },
                    Outgoing::Send { call, then: Some(then) } => Sending::Send { call, then: Then::Records { then, check } },
                }
            }
            Authorized::Delete { access } => match db
                .rewrite_delete(route, body.unwrap_or_else(|| db.empty_body(route)), access.scope())
                .map_err(ProxyError::refused)?
            {
                Outgoing::Local(answer) => Sending::Local(answer),
                Outgoing::Send { call, .. } => Sending::Send { call, then: Then::PassBack },
            },
        };
        if let Sending::Send { call, .. } = &sending {
            self.limit_call_terms(db, route, &call.body)?;
        }
        Ok(sending)
    }

    /// The filters a request carries, the caller's and ours together, must stay within
    /// `limits.max_filter_terms` (Chroma falls over on large filters).
    pub(super) fn limit_terms<D: Database>(&self, db: &D, route: &D::Route, body: &D::Body) -> Result<(), ProxyError> {
        self.within_term_limit(db.filter_terms(route, body))
    }

    /// [`Gateway::limit_terms`] for a body that goes out.
    pub(super) fn limit_call_terms<D: Database>(&self, db: &D, route: &D::Route, body: &Body) -> Result<(), ProxyError> {
        self.within_term_limit(db.call_filter_terms(route, body))
    }

    fn within_term_limit(&self, terms: usize) -> Result<(), ProxyError> {
        let limit = self.config.limits.max_filter_terms;
        if terms > limit {
            return Err(ProxyError::BadRequest(format!("the filter has {terms} terms, more than the limit of {limit}")));
        }
        Ok(())
    }
}
