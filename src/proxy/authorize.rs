//! The authorize phase: the policy's decision about a request, by what the request does.
//!
//! - `vecgate:admin` operations: the operation's name as action, denied unless allowed.
//! - collections: resource kind `collection`, id = the collection's name.
//! - reads and deletes: the plan for `read` / `delete` turned into what the caller may touch
//!   ([`Access`]); ids a read uses as inputs must each be readable, or the request is answered
//!   as the database answers a missing record.
//! - writes: every record through the one write rule ([`super::writes`]).
//!
//! Every decision goes into the audit event as it is made.

use super::classify::Target;
use super::decide::{Access, Authorizer, Planned, Resource};
use super::translations::TranslationKey;
use std::any::TypeId;
use super::error::ProxyError;
use super::gateway::Gateway;
use super::writes::{stamp_values, Writer};
use crate::audit::{AuditEvent, Decision};
use crate::backends::seam::{Call, CollectionRequest, Database, IdInput, Narrowed, Narrowing, Records, Selection, WriteKind};
use crate::plan::{Plan, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Resource kind of everything that is neither a record nor a collection (DESIGN §2).
const ADMIN_KIND: &str = "vecgate:admin";
/// Resource kind of collection administration (DESIGN §2).
pub(super) const COLLECTION_KIND: &str = "collection";
/// Records a by-filter write may touch; each is checked like a by-id write.
const MAX_FILTER_WRITE_RECORDS: usize = 10_000;

/// What the rest of the pipeline does with a request the policy allowed.
pub(super) enum Authorized {
    /// Forwarded as sent (a body re-serialised); the answer goes back as it is.
    AsSent,
    /// Forwarded (`call`, or the request as sent), then only the listed collections the
    /// caller may read go back (`count`: their number).
    Listing { call: Option<Call>, count: bool },
    /// Forwarded, then `read` is required on the collection the answer names.
    NameInAnswer,
    /// Records read, with what the caller may see; `check_every_hit`: every hit is confirmed
    /// by a full check even where the plan needs no post-filter (a PDP as the policy source).
    Read { access: Access, lookups: Vec<LookupPlan>, check_every_hit: bool },
    /// Records deleted, within what the caller may delete.
    Delete { access: Access },
    /// A write every record of which was allowed, as it goes to the database (or the answer
    /// it gets without going).
    Write(Narrowed),
}

/// Another collection whose records a read's answer brings along, with its read plan.
pub(super) struct LookupPlan {
    pub collection: String,
    pub kind: String,
    pub plan: Plan,
}

impl Gateway {
    /// `vecgate:admin` with the operation's name as action.
    pub(super) async fn require_admin(&self, authorizer: &Authorizer, action: &'static str, event: &mut AuditEvent) -> Result<(), ProxyError> {
        event.action = Some(action.to_string());
        let resource = Resource { kind: ADMIN_KIND, id: action, attr: BTreeMap::new() };
        if authorizer.may(action, &resource).await.inspect_err(|_| event.decision = Decision::Error)? {
            event.decision = Decision::Allow;
            Ok(())
        } else {
            event.decision = Decision::Deny;
            Err(ProxyError::Forbidden(format!("{ADMIN_KIND} action {action} is not allowed")))
        }
    }

    /// May the caller do `action` on the collection `name`?
    pub(super) async fn may_collection<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        authorizer: &Authorizer,
        action: &str,
        name: &str,
    ) -> Result<bool, ProxyError> {
        let resource = Resource { kind: COLLECTION_KIND, id: name, attr: db.collection_attributes(route, name) };
        authorizer.may(action, &resource).await
    }

    /// [`Gateway::may_collection`] for `read` on several collections, in one batch.
    pub(super) async fn may_read_collections<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        authorizer: &Authorizer,
        names: &[String],
    ) -> Result<Vec<bool>, ProxyError> {
        let attrs: Vec<_> = names.iter().map(|name| db.collection_attributes(route, name)).collect();
        let resources: Vec<_> = names.iter().map(String::as_str).zip(&attrs).collect();
        authorizer.may_each(COLLECTION_KIND, "read", &resources).await
    }

    /// `action` on the collection `name`, or 403.
    pub(super) async fn require_collection<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        authorizer: &Authorizer,
        action: &str,
        name: &str,
        event: &mut AuditEvent,
    ) -> Result<(), ProxyError> {
        event.action = Some(action.to_string());
        event.collection = Some(name.to_string());
        if self.may_collection(db, route, authorizer, action, name).await? {
            event.decision = Decision::Allow;
            Ok(())
        } else {
            event.decision = Decision::Deny;
            Err(ProxyError::Forbidden(format!("{COLLECTION_KIND} action {action} on {name:?} is not allowed")))
        }
    }

    /// Collection administration.
    pub(super) async fn authorize_collection<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        body: &D::Body,
        authorizer: &Authorizer,
        event: &mut AuditEvent,
    ) -> Result<Authorized, ProxyError> {
        match db.collection_request(route, body).map_err(ProxyError::refused)? {
            CollectionRequest::Named { name, action, renames } => {
                self.require_collection(db, route, authorizer, action.name(), &name, event).await?;
                if renames {
                    self.collection_names.invalidate_all();
                }
                Ok(Authorized::AsSent)
            }
            CollectionRequest::Create { name, exists } => {
                // A get-or-create of an existing collection only reads it.
                let exists = match exists {
                    None => false,
                    Some(call) => {
                        let answer = self.lookup(db, call, &event.request_id).await?;
                        match answer.status {
                            s if s.is_success() => true,
                            http::StatusCode::NOT_FOUND => false,
                            _ => return Err(ProxyError::Database(answer)),
                        }
                    }
                };
                self.require_collection(db, route, authorizer, if exists { "read" } else { "create" }, &name, event).await?;
                Ok(Authorized::AsSent)
            }
            CollectionRequest::Update { new_name } => {
                let name = self.collection_name(db, route, body, event).await?;
                self.require_collection(db, route, authorizer, "update", &name, event).await?;
                if let Some(new_name) = new_name.filter(|n| *n != name) {
                    self.require_collection(db, route, authorizer, "create", &new_name, event).await?;
                    event.action = Some("update".into());
                    event.collection = Some(name);
                }
                self.collection_names.invalidate_all();
                Ok(Authorized::AsSent)
            }
            CollectionRequest::NameInAnswer => {
                event.action = Some("read".into());
                Ok(Authorized::NameInAnswer)
            }
            CollectionRequest::List { call, count } => {
                event.action = Some("read".into());
                Ok(Authorized::Listing { call, count })
            }
        }
    }

    /// The plan for `action` on the target's records as the database's filter; the decision
    /// and the filter go into the audit event.
    async fn record_access<D: Database>(
        &self,
        db: &D,
        target: &Target<'_>,
        action: &str,
        post_filter_only: bool,
        authorizer: &Authorizer,
        event: &mut AuditEvent,
    ) -> Result<Access, ProxyError> {
        event.action = Some(action.to_string());
        let access = self.access(db, target, action, post_filter_only, authorizer).await;
        match &access {
            Ok(access) => {
                event.decision = access.decision();
                if let Some(filter) = access.filter() {
                    self.metrics.filter_terms(db.terms_in(filter));
                    event.filter = Some(filter.clone());
                }
            }
            Err(e) => event.decision = e.decision(Decision::Error),
        }
        access
    }

    /// [`Gateway::record_access`] without a trace in the audit event. A plan from the plan
    /// cache is translated once per collection rule and database
    /// ([`super::translations::Translations`]).
    async fn access<D: Database>(&self, db: &D, target: &Target<'_>, action: &str, post_filter_only: bool, authorizer: &Authorizer) -> Result<Access, ProxyError> {
        let max_terms = self.config.limits.max_filter_terms;
        let planned = authorizer.planned(&target.rule.resource_kind, action).await?;
        let key = match &planned {
            Planned::Shared(output) => {
                Some(TranslationKey::new(output.clone(), target.rule_index, TypeId::of::<D>(), max_terms, post_filter_only))
            }
            Planned::Own(_) => None,
        };
        if let Some(access) = key.as_ref().and_then(|key| self.translations.get(key)) {
            return Ok(access);
        }
        let access = Access::of(planned.into_plan(), target.mapping, max_terms, post_filter_only, |condition, mapping, max_terms| {
            db.translate(condition, mapping, max_terms)
        })?;
        if let Some(key) = key {
            self.translations.insert(key, access.clone());
        }
        Ok(access)
    }

    /// A read: what the caller may see; every id the request uses as an input must be
    /// readable; collections the answer brings records from get their own plans.
    pub(super) async fn authorize_read<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        target: &Target<'_>,
        body: &D::Body,
        authorizer: &Authorizer,
        event: &mut AuditEvent,
    ) -> Result<Authorized, ProxyError> {
        let post_filter_only = db.post_filterable(route) && target.rule.post_filter_only;
        let access = self.record_access(db, target, "read", post_filter_only, authorizer, event).await?;
        let check_every_hit = authorizer.confirms_hits();
        if matches!(access, Access::Nothing) {
            return Ok(Authorized::Read { access, lookups: Vec::new(), check_every_hit });
        }
        if check_every_hit && !db.post_filterable(route) {
            // A PDP's plan may allow what its check denies, and this answer (a count, a facet,
            // groups, a distance matrix) aggregates over records that cannot be confirmed one
            // by one, so it would depend on records the caller may not read.
            return Err(ProxyError::Forbidden(
                "with policies.pdp only reads whose answer lists its records can be confirmed by the PDP's check; this one aggregates over records".into(),
            ));
        }
        let inputs = db.id_inputs(route, body).map_err(ProxyError::refused)?;
        self.require_readable(db, route, target, inputs, authorizer, event).await?;
        let mut lookups = Vec::new();
        for collection in db.lookup_collections(route, body).map_err(ProxyError::refused)? {
            let (rule, _) = self.collection_rule(&collection)?;
            if rule.attr_prefix != target.mapping.attr_prefix || rule.resource_kind.is_empty() {
                return Err(ProxyError::Forbidden(format!(
                    "records of {collection:?} are laid out differently, so they cannot be checked"
                )));
            }
            let plan = authorizer.plan(&rule.resource_kind, "read").await?;
            lookups.push(LookupPlan { collection, kind: rule.resource_kind.clone(), plan });
        }
        Ok(Authorized::Read { access, lookups, check_every_hit })
    }

    /// Every id used as an input must be readable by the caller in the collection it is read
    /// from; otherwise the request is answered as the database answers a missing record, so
    /// that the answer does not depend on whether it exists.
    async fn require_readable<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        target: &Target<'_>,
        inputs: Vec<IdInput<D::Id>>,
        authorizer: &Authorizer,
        event: &mut AuditEvent,
    ) -> Result<(), ProxyError> {
        let mut by_collection: BTreeMap<Option<String>, BTreeSet<D::Id>> = BTreeMap::new();
        for input in inputs {
            let collection = input.collection.filter(|c| *c != target.located.name);
            by_collection.entry(collection).or_default().insert(input.id);
        }
        for (collection, ids) in by_collection {
            let other;
            let source = match collection {
                None => target,
                Some(name) => {
                    let (rule_index, rule, mapping) = self.indexed_rule(&name)?;
                    other = Target { located: db.locate(route, &name), rule, mapping, rule_index };
                    &other
                }
            };
            let ids: Vec<D::Id> = ids.into_iter().collect();
            let readable = self.readable(db, source, &ids, authorizer, &event.request_id).await?;
            if let Some(hidden) = ids.iter().find(|id| !readable.contains(*id)) {
                event.decision = Decision::Deny;
                return Err(ProxyError::Database(db.missing_record(hidden)));
            }
        }
        Ok(())
    }

    /// Those of `ids` that exist in the source collection and that the caller may read: that
    /// satisfy the read plan and, with a PDP, that its check allows (one batched question).
    async fn readable<D: Database>(
        &self,
        db: &D,
        source: &Target<'_>,
        ids: &[D::Id],
        authorizer: &Authorizer,
        request_id: &str,
    ) -> Result<BTreeSet<D::Id>, ProxyError> {
        let access = self.access(db, source, "read", true, authorizer).await?;
        if matches!(access, Access::Nothing) {
            return Ok(BTreeSet::new());
        }
        let existing = self.existing(db, source, ids, request_id).await?;
        let kind = source.rule.resource_kind.as_str();
        let in_plan: Vec<(D::Id, &D::Record)> = existing
            .iter()
            .filter(|(id, record)| {
                access.residual().is_none_or(|plan| {
                    authorizer.hit_allowed(plan, kind, *id, &*db.attributes(record, source.mapping))
                })
            })
            .map(|(id, record)| (id.clone(), record))
            .collect();
        if !authorizer.confirms_hits() {
            return Ok(in_plan.into_iter().map(|(id, _)| id).collect());
        }
        let names: Vec<String> = in_plan.iter().map(|(id, _)| id.to_string()).collect();
        let attrs: Vec<_> = in_plan.iter().map(|(_, record)| db.attributes(record, source.mapping).all()).collect();
        let resources: Vec<_> = names.iter().map(String::as_str).zip(&attrs).collect();
        let allowed = authorizer.may_each(kind, "read", &resources).await?;
        Ok(in_plan.into_iter().zip(allowed).filter(|(_, ok)| *ok).map(|((id, _), _)| id).collect())
    }

    /// The records with these ids as they are now, read without any filter.
    async fn existing<D: Database>(&self, db: &D, target: &Target<'_>, ids: &[D::Id], request_id: &str) -> Result<Records<D>, ProxyError> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let answer = self.lookup_ok(db, db.fetch_records(&target.located, ids), request_id).await?;
        db.fetched_records(&answer.body).map_err(ProxyError::unreadable)
    }

    /// A delete: what the caller may delete. A delete cannot be checked afterwards, so a plan
    /// without an exact filter is refused even with `post_filter_only`.
    ///
    /// Where every record must be confirmed by a full check (a PDP, whose planner may allow
    /// what its check denies), the delete must name its records by id: those the plan lets it
    /// touch are read and checked (one batched question), and the delete is narrowed to the
    /// ones the check allows, the plan's filter still ANDed in. A record it may not delete is
    /// left alone and the answer is the database's for the rest, as for a missing record; a
    /// delete by filter is refused.
    pub(super) async fn authorize_delete<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        target: &Target<'_>,
        body: &mut Option<D::Body>,
        authorizer: &Authorizer,
        event: &mut AuditEvent,
    ) -> Result<Authorized, ProxyError> {
        let access = self.record_access(db, target, "delete", false, authorizer, event).await?;
        if !authorizer.confirms_hits() || matches!(access, Access::Nothing) {
            return Ok(Authorized::Delete { access });
        }
        let named = match body.as_ref() {
            Some(parsed) => db.delete_ids(route, parsed).map_err(ProxyError::refused)?,
            None => None,
        };
        let (Some(ids), Some(owned)) = (named, body.take()) else {
            event.decision = Decision::Deny;
            return Err(ProxyError::Forbidden(
                "with policies.pdp a delete must name its records by id, so that each can be confirmed by the PDP's check".into(),
            ));
        };
        let existing = self.existing(db, target, &ids, &event.request_id).await?;
        let kind = target.rule.resource_kind.as_str();
        let candidates: Vec<(D::Id, String, BTreeMap<String, Value>)> = existing
            .iter()
            .map(|(id, record)| (id.clone(), id.to_string(), db.attributes(record, target.mapping)))
            .filter(|(id, _, attrs)| access.residual().is_none_or(|plan| authorizer.hit_allowed(plan, kind, id, &**attrs)))
            .map(|(id, text, attrs)| (id, text, attrs.all()))
            .collect();
        let questions: Vec<(&str, &BTreeMap<String, Value>)> = candidates.iter().map(|(_, text, attrs)| (text.as_str(), attrs)).collect();
        let answers = authorizer.may_each(kind, "delete", &questions).await?;
        event.records_checked = Some(candidates.len());
        let keep: Vec<D::Id> = candidates.iter().zip(&answers).filter(|(_, allowed)| **allowed).map(|((id, _, _), _)| id.clone()).collect();
        if keep.is_empty() {
            *body = Some(owned);
            event.decision = Decision::Deny;
            return Ok(Authorized::Delete { access: Access::Nothing });
        }
        *body = Some(db.delete_only(route, owned, &keep).map_err(ProxyError::refused)?);
        Ok(Authorized::Delete { access })
    }

    /// A write: stamped, narrowed to ids when it selects by filter, then every record it
    /// touches through the write rule.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn authorize_write<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        target: &Target<'_>,
        method: &http::Method,
        query: Option<&str>,
        mut body: D::Body,
        authorizer: &Authorizer,
        event: &mut AuditEvent,
    ) -> Result<Authorized, ProxyError> {
        event.action = Some("create/update".into());
        let stamps = stamp_values(&target.rule.stamp, &authorizer.caller)?;
        if !stamps.is_empty() {
            db.stamp(route, &mut body, &stamps, target.mapping).map_err(ProxyError::refused)?;
        }
        self.limit_terms(db, route, &body)?;
        let mut set = db.describe_write(route, &body).map_err(ProxyError::refused)?;
        let from_filter = matches!(set.selection, Selection::Filter);
        if from_filter {
            // By-filter writes become by-id writes over the records the caller may update,
            // so each is checked and nothing outside that set is touched.
            let access = self.access(db, target, "update", false, authorizer).await?;
            let ids = match access.scope() {
                crate::backends::seam::Scope::Nothing => Vec::new(),
                scope => {
                    let call = db
                        .ids_matching(route, &target.located, &body, scope, MAX_FILTER_WRITE_RECORDS)
                        .map_err(ProxyError::refused)?;
                    self.limit_call_terms(db, route, &call.body)?;
                    let answer = self.lookup_ok(db, call, &event.request_id).await?;
                    db.matched_ids(&answer.body).map_err(ProxyError::unreadable)?
                }
            };
            if ids.len() > MAX_FILTER_WRITE_RECORDS {
                return Err(ProxyError::Forbidden(format!(
                    "a by-filter write may touch at most {MAX_FILTER_WRITE_RECORDS} records; this one selects more"
                )));
            }
            body = db.select_ids(route, body, &ids).map_err(ProxyError::refused)?;
            set = db.describe_write(route, &body).map_err(ProxyError::refused)?;
        }
        event.records_checked = Some(set.records.len());
        // What exists now, unless every record is one the database ignores when it exists
        // (decided as new whatever exists).
        let existing = if set.records.iter().all(|w| w.kind == WriteKind::Insert) {
            Records::<D>::new()
        } else {
            let ids: Vec<D::Id> = set.records.iter().map(|w| w.id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
            self.existing(db, target, &ids, &event.request_id).await?
        };
        let writer = Writer { authorizer, kind: &target.rule.resource_kind, mapping: target.mapping };
        let left_out = writer
            .check(db, route, &set.records, existing)
            .await
            .inspect_err(|e| event.decision = e.decision(Decision::Error))?;
        event.decision = if left_out.is_empty() { Decision::Allow } else { Decision::Filter };
        // Belt and braces, where the database applies a write to whatever it finds when it
        // runs: records outside the update filter keep their state even if they changed
        // since they were read.
        match self.access(db, target, "update", false, authorizer).await {
            Ok(Access::Filtered { filter, .. }) => {
                body = db.guard_write(route, body, &filter).map_err(ProxyError::refused)?;
            }
            Err(e @ ProxyError::PolicySource(_)) => return Err(e),
            Ok(_) | Err(_) => {}
        }
        let narrowing = Narrowing { left_out: &left_out, from_filter, query };
        let narrowed = db
            .narrow_write(route, &target.located, method, body, &set.records, narrowing)
            .map_err(ProxyError::refused)?;
        Ok(Authorized::Write(narrowed))
    }
}
