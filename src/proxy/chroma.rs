//! Chroma through the pipeline: each operation class, phase by phase.

use super::authorize::{flat_record_attributes, Access, Decider, HitAttributes, Resource};
use super::records::{missing_required, stamp_values};
use super::upstream::{parse_answer, pass_back, path_and_query, to_bytes};
use super::body::{parse_json_body, parse_json_body_keeping, read_body};
use crate::backends::json::KeptRaw;
use super::respond::{json_response, ProxyError, ProxyResponse};
use super::upstream::UpstreamResponse;
use super::Gateway;
use crate::audit::AuditEvent;
use crate::backends::chroma::filter::translate_pushdown;
use crate::backends::chroma::request;
use crate::backends::chroma::response;
use crate::backends::chroma::routes::{
    self, CollectionAction, CollectionRef, OpClass, Operation, Route,
};
use crate::backends::FieldMapping;
use crate::config::CollectionRule;
use crate::plan::Value;
use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};

/// Resource kind of collection administration (DESIGN §2).
const COLLECTION_KIND: &str = "collection";

/// A record collection the request addresses, resolved to its name and configuration.
struct Target<'g> {
    /// `/api/v2/tenants/{t}/databases/{d}/collections/{uuid}`
    base: String,
    name: String,
    rule: &'g CollectionRule,
    mapping: &'g FieldMapping,
}

impl Gateway {
    pub(super) async fn chroma<B>(
        &self,
        parts: &Parts,
        body: B,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        // Classify.
        let route = routes::classify(&parts.method, parts.uri.path()).ok_or_else(|| {
            ProxyError::UnknownRoute(format!("{} {}", parts.method, parts.uri.path()))
        })?;
        event.operation = Some(route.op.name());
        routes::check_query(route.op, parts.uri.query())
            .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        let class = route.op.class();
        if class == OpClass::Health {
            event.decision = "allow";
            return self.chroma_pass_through(parts, None, event).await;
        }

        // Authenticate, read the body, take one policy snapshot for the whole request.
        let auth = self.authenticate(parts, event)?;
        let body = read_body(&parts.headers, body, &self.config.limits).await?;
        let decider = Decider::new(&auth, self.policies.snapshot(), &self.metrics);
        event.policy_version = Some(decider.snapshot.version);

        match class {
            OpClass::Health | OpClass::Identity => {
                event.decision = "allow";
                let body = self.reserialised(parts, &body)?;
                self.chroma_pass_through(parts, body, event).await
            }
            OpClass::Admin => {
                self.require_admin(route.op.name(), &decider, event)?;
                let body = self.reserialised(parts, &body)?;
                self.chroma_pass_through(parts, body, event).await
            }
            OpClass::Collection(action) => {
                self.chroma_collection_admin(parts, &route, action, &body, &decider, event)
                    .await
            }
            OpClass::FilteredRead | OpClass::Count | OpClass::FilteredDelete | OpClass::RecordWrite => {
                let target = self.chroma_target(&route, event).await?;
                match class {
                    OpClass::FilteredRead => {
                        self.chroma_read(parts, route.op, &target, &body, &decider, event).await
                    }
                    OpClass::Count => self.chroma_count(parts, &target, &decider, event).await,
                    OpClass::FilteredDelete => {
                        self.chroma_delete(parts, &target, &body, &decider, event).await
                    }
                    _ => self.chroma_write(parts, route.op, &target, &body, &decider, event).await,
                }
            }
        }
    }

    /// get, query, search: the read filter ANDed into `where`, hits checked on the way back.
    async fn chroma_read(
        &self,
        parts: &Parts,
        op: Operation,
        target: &Target<'_>,
        body: &Bytes,
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError> {
        // A query's embeddings (when they are lists of numbers, as every SDK sends them) are
        // forwarded as sent: nothing here reads them, and converting hundreds of floats to
        // numbers and back was most of the proxy's own cost.
        let keep = (op == Operation::Query).then_some("query_embeddings");
        let KeptRaw { value: request, raw } = parse_json_body_keeping(&parts.headers, body, keep)?;
        let access = self.chroma_access(target, "read", true, decider, event)?;
        if matches!(access, Access::Nothing) {
            // Validated like any other request, then answered here: Chroma is not asked.
            let (request, _) = request::rewrite_filtered(op, request, None, false)
                .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
            event.hits_returned = Some(0);
            return Ok(json_response(StatusCode::OK, &empty_read_answer(op, &request)));
        }
        self.check_filter_size(&request, access.filter())?;
        let (rewritten, trim) =
            request::rewrite_filtered(op, request, access.filter(), access.residual().is_some())
                .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        let forwarded = KeptRaw { value: rewritten, raw }
            .to_vec()
            .map_err(|e| ProxyError::Internal(format!("writing the rewritten body: {e}")))?;
        let answer = self
            .upstream
            .send(
                Method::POST,
                path_and_query(parts),
                Some(&parts.headers),
                Some(Bytes::from(forwarded)),
                &event.request_id,
            )
            .await?;
        if !answer.is_success() {
            return Ok(pass_back(answer));
        }
        let mut hits = parse_answer(&answer)?;
        let kind = target.rule.resource_kind.as_str();
        let prefix = target.mapping.attr_prefix.as_str();
        let mut keep = |id: &str, meta: Option<&Map<String, Json>>| match access.residual() {
            None => true,
            Some(plan) => decider.hit_allowed(plan, kind, &id, HitAttributes::Flat { metadata: meta, prefix }),
        };
        let stripped = match op {
            Operation::Get => response::filter_get_response(&mut hits, &mut keep, trim),
            Operation::Query => response::filter_query_response(&mut hits, &mut keep, trim),
            _ => response::filter_search_response(&mut hits, &mut keep, trim),
        }
        .map_err(|e| ProxyError::UpstreamUnreadable(e.to_string()))?;
        event.hits_stripped = Some(stripped);
        event.hits_returned = Some(count_ids(&hits));
        if matches!(access, Access::PostFilterOnly { .. }) {
            // Without pushdown, every removed hit is one the caller asked for and did not get.
            self.metrics.shortfall(self.config.upstream.kind.name(), stripped);
        }
        if stripped > 0 {
            tracing::warn!(
                request_id = %event.request_id,
                stripped,
                "hits outside the plan came back from the database and were removed"
            );
        }
        if stripped == 0 && !trim.drop_metadatas {
            // Every hit checked and nothing to change: the database's own bytes go back.
            return Ok(pass_back(answer));
        }
        Ok(json_response(answer.status, &hits))
    }

    /// count: Chroma cannot filter it, so it is answered by listing the visible ids.
    async fn chroma_count(
        &self,
        parts: &Parts,
        target: &Target<'_>,
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError> {
        let access = self.chroma_access(target, "read", true, decider, event)?;
        match access {
            Access::Nothing => return Ok(json_response(StatusCode::OK, &json!(0))),
            // Everything is visible: the raw total is the answer.
            Access::Everything => return self.chroma_pass_through(parts, None, event).await,
            Access::Filtered { .. } | Access::PostFilterOnly { .. } => {}
        }
        let mut listing = request::count_as_get(access.filter());
        if access.residual().is_some() {
            listing["include"] = json!(["metadatas"]);
        }
        let answer = self
            .upstream
            .send(
                Method::POST,
                &format!("{}/get", target.base),
                None,
                Some(to_bytes(&listing)?),
                &event.request_id,
            )
            .await?;
        if !answer.is_success() {
            return Ok(pass_back(answer));
        }
        let rows = response::get_rows(&parse_answer(&answer)?)
            .map_err(|e| ProxyError::UpstreamUnreadable(e.to_string()))?;
        let kind = target.rule.resource_kind.as_str();
        let prefix = target.mapping.attr_prefix.as_str();
        let visible = rows
            .iter()
            .filter(|(id, meta)| match access.residual() {
                None => true,
                Some(plan) => {
                    decider.hit_allowed(plan, kind, id, HitAttributes::Flat { metadata: meta.as_ref(), prefix })
                }
            })
            .count();
        event.hits_stripped = Some(rows.len() - visible);
        event.hits_returned = Some(visible);
        Ok(json_response(StatusCode::OK, &json!(visible)))
    }

    /// delete: the delete filter ANDed into `where`. A delete cannot be checked afterwards,
    /// so a plan without an exact filter is refused even with `post_filter_only`.
    async fn chroma_delete(
        &self,
        parts: &Parts,
        target: &Target<'_>,
        body: &Bytes,
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError> {
        let request = parse_json_body(&parts.headers, body)?;
        let access = self.chroma_access(target, "delete", false, decider, event)?;
        let selects_nothing = ["ids", "where", "where_document"]
            .iter()
            .all(|k| request.get(*k).is_none_or(Json::is_null));
        let rewritten = if selects_nothing {
            // `{}` deletes nothing in Chroma; adding the filter would make it delete everything
            // the caller may delete. Chroma answers it (or refuses it) itself.
            let known = ["ids", "where", "where_document", "limit"];
            if let Some(field) = request
                .as_object()
                .and_then(|o| o.keys().find(|k| !known.contains(&k.as_str())))
            {
                return Err(ProxyError::BadRequest(format!("unknown field {field:?} in a delete")));
            }
            request
        } else {
            if matches!(access, Access::Nothing) {
                request::rewrite_filtered(Operation::Delete, request, None, false)
                    .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
                return Ok(json_response(StatusCode::OK, &json!({"deleted": 0})));
            }
            self.check_filter_size(&request, access.filter())?;
            request::rewrite_filtered(Operation::Delete, request, access.filter(), false)
                .map_err(|e| ProxyError::BadRequest(e.to_string()))?
                .0
        };
        let answer = self
            .upstream
            .send(
                Method::POST,
                path_and_query(parts),
                Some(&parts.headers),
                Some(to_bytes(&rewritten)?),
                &event.request_id,
            )
            .await?;
        Ok(pass_back(answer))
    }

    /// add, upsert, update: every record checked. No answer depends on whether an id the
    /// caller may not read exists (docs/deviations.md lists the one exception, upsert):
    ///
    /// - **add**: Chroma ignores an id that already exists (201, the record untouched), so
    ///   every record is decided as a new one (`create` on the written record) and what
    ///   exists is never looked at.
    /// - **update**: an id the caller may read is checked with `update` on the record as it
    ///   is (USING) and as Chroma will store it (WITH CHECK). An id the caller may not read
    ///   — missing, or another's — is dropped from the batch: Chroma does nothing for a
    ///   missing id (200), and that is the answer either way.
    /// - **upsert**: an id the caller may read is checked as in update. Any other id is first
    ///   decided as a new record (`create` on the written record); when that passes and the
    ///   id exists, Chroma would overwrite it, so it also needs `update` on the record as it
    ///   is and as it will be: that refusal is the documented divergence.
    async fn chroma_write(
        &self,
        parts: &Parts,
        op: Operation,
        target: &Target<'_>,
        body: &Bytes,
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError> {
        let mut request = parse_json_body(&parts.headers, body)?;
        let mut batch =
            request::parse_write(op, &request).map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        let mut seen = BTreeSet::new();
        if let Some(dup) = batch.ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(ProxyError::BadRequest(format!(
                "id {dup:?} appears twice in one write; vecgate checks each record once"
            )));
        }
        event.action = Some("create/update".into());
        event.records_checked = Some(batch.ids.len());

        let stamped = !target.rule.stamp.is_empty();
        if stamped {
            for meta in &mut batch.metadatas {
                for (name, value) in stamp_values(&target.rule.stamp, decider)? {
                    meta.get_or_insert_with(Map::new)
                        .insert(format!("{}{name}", target.mapping.attr_prefix), value);
                }
            }
        }

        // The records as they are now, read unfiltered by the proxy itself (not for add).
        let existing = if op == Operation::Add {
            BTreeMap::new()
        } else {
            self.chroma_existing(target, &batch.ids, &event.request_id).await?
        };

        let kind = target.rule.resource_kind.as_str();
        let prefix = target.mapping.attr_prefix.as_str();
        let mut denied = Vec::new();
        let mut unseen = BTreeSet::new(); // update: indices of ids the caller may not read
        for (index, (id, written)) in batch.ids.iter().zip(&batch.metadatas).enumerate() {
            let current = existing.get(id);
            let readable = current.is_some_and(|c| {
                decider.may("read", &Resource { kind, id, attr: flat_record_attributes(c.as_ref(), prefix) })
            });
            let allowed = match current {
                Some(current) if readable => {
                    // `update` on the record as it is (USING) and as it will be stored (WITH
                    // CHECK), which must keep every required attribute: the read filters
                    // rely on it (negations over required attributes are pushed down).
                    let stored = request::merged_metadata(op, current.as_ref(), written.as_ref());
                    let stored_attrs = flat_record_attributes(stored.as_ref(), prefix);
                    self.require_attributes(id, &stored_attrs, target, event)?;
                    let now = flat_record_attributes(current.as_ref(), prefix);
                    decider.may("update", &Resource { kind, id, attr: now })
                        && decider.may("update", &Resource { kind, id, attr: stored_attrs })
                }
                _ if op == Operation::Update => {
                    unseen.insert(index);
                    continue;
                }
                _ => {
                    // add, and upsert of an id the caller cannot see: decided as new.
                    let written_attrs = flat_record_attributes(written.as_ref(), prefix);
                    self.require_attributes(id, &written_attrs, target, event)?;
                    let created = decider.may("create", &Resource { kind, id, attr: written_attrs });
                    match current {
                        // upsert over a record the caller may not read: Chroma would
                        // overwrite it.
                        Some(current) if created && op == Operation::Upsert => {
                            let stored = request::merged_metadata(op, current.as_ref(), written.as_ref());
                            let now = flat_record_attributes(current.as_ref(), prefix);
                            decider.may("update", &Resource { kind, id, attr: now })
                                && decider.may(
                                    "update",
                                    &Resource { kind, id, attr: flat_record_attributes(stored.as_ref(), prefix) },
                                )
                        }
                        _ => created,
                    }
                }
            };
            if !allowed {
                denied.push(id.as_str());
            }
        }
        if let Some(first) = denied.first() {
            event.decision = "deny";
            return Err(ProxyError::Forbidden(format!(
                "{} of {} records may not be written (first: {first:?}); nothing was written",
                denied.len(),
                batch.ids.len()
            )));
        }
        event.decision = "allow";
        if stamped {
            request::set_write_metadatas(&mut request, &batch.metadatas)
                .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        }
        if !unseen.is_empty() {
            if unseen.len() == batch.ids.len() {
                // What Chroma answers for an update of ids it does not have.
                return Ok(json_response(StatusCode::OK, &json!({})));
            }
            drop_records(&mut request, &unseen)?;
        }
        let answer = self
            .upstream
            .send(
                Method::POST,
                path_and_query(parts),
                Some(&parts.headers),
                Some(to_bytes(&request)?),
                &event.request_id,
            )
            .await?;
        Ok(pass_back(answer))
    }

    /// The record as Chroma will store it must carry every required attribute.
    fn require_attributes(
        &self,
        id: &str,
        attrs: &BTreeMap<String, Value>,
        target: &Target<'_>,
        event: &mut AuditEvent,
    ) -> Result<(), ProxyError> {
        match missing_required(attrs, target.mapping) {
            None => Ok(()),
            Some(missing) => {
                event.decision = "deny";
                Err(ProxyError::Forbidden(format!(
                    "record {id:?} would lack the required attribute {missing:?} (or hold a \
                     non-scalar value); nothing was written"
                )))
            }
        }
    }

    /// Collections: kind `collection`, id = the collection name.
    async fn chroma_collection_admin(
        &self,
        parts: &Parts,
        route: &Route,
        action: CollectionAction,
        body: &Bytes,
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError> {
        let (tenant, database) = (
            route.tenant.clone().unwrap_or_default(),
            route.database.clone().unwrap_or_default(),
        );
        let collection_attrs = |name: &str| {
            let mut attr = BTreeMap::new();
            attr.insert("tenant".to_string(), Value::string(&tenant));
            attr.insert("database".to_string(), Value::string(&database));
            attr.insert("name".to_string(), Value::string(name));
            attr
        };
        let require = |action: &str, name: &str, event: &mut AuditEvent| {
            event.action = Some(action.to_string());
            event.collection = Some(name.to_string());
            let resource = Resource {
                kind: COLLECTION_KIND,
                id: name,
                attr: collection_attrs(name),
            };
            if decider.may(action, &resource) {
                event.decision = "allow";
                Ok(())
            } else {
                event.decision = "deny";
                Err(ProxyError::Forbidden(format!(
                    "{COLLECTION_KIND} action {action} on {name:?} is not allowed"
                )))
            }
        };
        let collections_path = format!("/api/v2/tenants/{tenant}/databases/{database}/collections");

        match route.op {
            Operation::CreateCollection => {
                let request = parse_json_body(&parts.headers, body)?;
                let name = request
                    .get("name")
                    .and_then(Json::as_str)
                    .ok_or_else(|| ProxyError::BadRequest("a collection needs a string name".into()))?
                    .to_string();
                let get_or_create = request.get("get_or_create").and_then(Json::as_bool) == Some(true);
                // get_or_create on an existing collection only reads it.
                let exists = get_or_create
                    && self
                        .chroma_collection_exists(&collections_path, &name, &event.request_id)
                        .await?;
                require(if exists { "read" } else { "create" }, &name, event)?;
                self.chroma_pass_through(parts, Some(to_bytes(&request)?), event).await
            }
            Operation::GetCollection | Operation::DeleteCollection => {
                let name = match &route.collection {
                    Some(CollectionRef::Name(n)) => n.clone(),
                    _ => return Err(ProxyError::Internal("collection route without a name".into())),
                };
                require(action_name(action), &name, event)?;
                if route.op == Operation::DeleteCollection {
                    self.collection_names.invalidate_all();
                }
                self.chroma_pass_through(parts, None, event).await
            }
            Operation::GetCollectionByCrn => {
                let name = match &route.collection {
                    Some(CollectionRef::Crn(crn)) => crn_collection_name(crn)?,
                    _ => return Err(ProxyError::Internal("crn route without a crn".into())),
                };
                require("read", &name, event)?;
                self.chroma_pass_through(parts, None, event).await
            }
            Operation::GetCollectionById => {
                let answer = self.forward_unchanged(parts, None, event).await?;
                if !answer.is_success() {
                    return Ok(pass_back(answer));
                }
                let name = collection_name_of(&parse_answer(&answer)?)?;
                require("read", &name, event)?;
                Ok(pass_back(answer))
            }
            Operation::UpdateCollection => {
                let target = self.chroma_target(route, event).await?;
                let request = parse_json_body(&parts.headers, body)?;
                require("update", &target.name, event)?;
                if let Some(new_name) = request.get("new_name").and_then(Json::as_str) {
                    if new_name != target.name {
                        require("create", new_name, event)?;
                        event.action = Some("update".into());
                    }
                }
                self.collection_names.invalidate_all();
                self.chroma_pass_through(parts, Some(to_bytes(&request)?), event).await
            }
            Operation::ListCollections => {
                event.action = Some("read".into());
                let answer = self.forward_unchanged(parts, None, event).await?;
                if !answer.is_success() {
                    return Ok(pass_back(answer));
                }
                let visible = self.readable_collections(parse_answer(&answer)?, decider, &collection_attrs)?;
                event.decision = "filter";
                Ok(json_response(answer.status, &Json::Array(visible)))
            }
            Operation::CountCollections => {
                event.action = Some("read".into());
                let answer = self
                    .upstream
                    .send(Method::GET, &collections_path, None, None, &event.request_id)
                    .await?;
                if !answer.is_success() {
                    return Ok(pass_back(answer));
                }
                let visible = self.readable_collections(parse_answer(&answer)?, decider, &collection_attrs)?;
                event.decision = "filter";
                Ok(json_response(StatusCode::OK, &json!(visible.len())))
            }
            other => Err(ProxyError::Internal(format!(
                "{} is not a collection operation",
                other.name()
            ))),
        }
    }

    /// The entries of a collection listing the caller may read.
    fn readable_collections(
        &self,
        listing: Json,
        decider: &Decider<'_>,
        attrs: &dyn Fn(&str) -> BTreeMap<String, Value>,
    ) -> Result<Vec<Json>, ProxyError> {
        let Json::Array(entries) = listing else {
            return Err(ProxyError::UpstreamUnreadable("a collection listing is not a list".into()));
        };
        let mut visible = Vec::new();
        for entry in entries {
            let name = collection_name_of(&entry)?;
            let resource = Resource {
                kind: COLLECTION_KIND,
                id: &name,
                attr: attrs(&name),
            };
            if decider.may("read", &resource) {
                visible.push(entry);
            }
        }
        Ok(visible)
    }

    /// Plans `action` for the target's records and translates the plan for Chroma.
    fn chroma_access(
        &self,
        target: &Target<'_>,
        action: &str,
        may_post_filter: bool,
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<Access, ProxyError> {
        let post_filter_only = may_post_filter && target.rule.post_filter_only;
        self.record_access(target.rule, target.mapping, action, post_filter_only, translate_pushdown, decider, event)
    }

    /// The collection a record route names, with its name and rule.
    async fn chroma_target(&self, route: &Route, event: &mut AuditEvent) -> Result<Target<'_>, ProxyError> {
        let (Some(tenant), Some(database), Some(CollectionRef::Id(id))) =
            (&route.tenant, &route.database, &route.collection)
        else {
            return Err(ProxyError::Internal("record route without a collection id".into()));
        };
        let collections = format!("/api/v2/tenants/{tenant}/databases/{database}/collections");
        let key = format!("{tenant}/{database}/{}", id.to_ascii_lowercase());
        let name = match self.collection_names.get(&key) {
            Some(name) => name,
            None => {
                let answer = self
                    .upstream
                    .send(Method::GET, &format!("{collections}/by-id/{id}"), None, None, &event.request_id)
                    .await?;
                if !answer.is_success() {
                    return Err(ProxyError::Database {
                        status: answer.status,
                        content_type: answer.content_type,
                        body: answer.body,
                    });
                }
                let name = collection_name_of(&parse_answer(&answer)?)?;
                self.collection_names.insert(key, name.clone());
                name
            }
        };
        event.collection = Some(name.clone());
        let (rule, mapping) = self.collection_rule(&name)?;
        Ok(Target {
            base: format!("{collections}/{id}"),
            mapping,
            rule,
            name,
        })
    }

    /// Current metadata of those of `ids` that exist, read without any filter.
    async fn chroma_existing(
        &self,
        target: &Target<'_>,
        ids: &[String],
        request_id: &str,
    ) -> Result<BTreeMap<String, Option<Map<String, Json>>>, ProxyError> {
        let lookup = json!({"ids": ids, "include": ["metadatas"]});
        let answer = self
            .upstream
            .send(Method::POST, &format!("{}/get", target.base), None, Some(to_bytes(&lookup)?), request_id)
            .await?;
        if !answer.is_success() {
            return Err(ProxyError::Database {
                status: answer.status,
                content_type: answer.content_type,
                body: answer.body,
            });
        }
        let rows = response::get_rows(&parse_answer(&answer)?)
            .map_err(|e| ProxyError::UpstreamUnreadable(e.to_string()))?;
        Ok(rows.into_iter().collect())
    }

    async fn chroma_collection_exists(
        &self,
        collections_path: &str,
        name: &str,
        request_id: &str,
    ) -> Result<bool, ProxyError> {
        if name.is_empty() || name.contains(['/', '?', '#', '%']) {
            return Ok(false);
        }
        let answer = self
            .upstream
            .send(Method::GET, &format!("{collections_path}/{name}"), None, None, request_id)
            .await?;
        match answer.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(ProxyError::Database {
                status: answer.status,
                content_type: answer.content_type,
                body: answer.body,
            }),
        }
    }

    async fn chroma_pass_through(
        &self,
        parts: &Parts,
        body: Option<Bytes>,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError> {
        Ok(pass_back(self.forward_unchanged(parts, body, event).await?))
    }

    async fn forward_unchanged(
        &self,
        parts: &Parts,
        body: Option<Bytes>,
        event: &AuditEvent,
    ) -> Result<UpstreamResponse, ProxyError> {
        self.upstream
            .send(
                parts.method.clone(),
                path_and_query(parts),
                Some(&parts.headers),
                body,
                &event.request_id,
            )
            .await
    }

    /// A body to forward as-is: parsed strictly and serialised again (never raw bytes).
    fn reserialised(&self, parts: &Parts, body: &Bytes) -> Result<Option<Bytes>, ProxyError> {
        if body.is_empty() {
            return Ok(None);
        }
        Ok(Some(to_bytes(&parse_json_body(&parts.headers, body)?)?))
    }

    /// The caller's filter plus ours must stay within `max_filter_terms` (Chroma falls over on
    /// large filters).
    fn check_filter_size(&self, request: &Json, acl: Option<&Json>) -> Result<(), ProxyError> {
        let limit = self.config.limits.max_filter_terms;
        let terms = ["where", "where_document"]
            .iter()
            .filter_map(|k| request.get(*k))
            .map(super::count_filter_terms)
            .sum::<usize>()
            + acl.map_or(0, super::count_filter_terms);
        if terms > limit {
            return Err(ProxyError::BadRequest(format!(
                "the filter has {terms} terms, more than the limit of {limit}"
            )));
        }
        Ok(())
    }
}

/// What Chroma answers when nothing matches, for a request answered locally.
fn empty_read_answer(op: Operation, request: &Json) -> Json {
    let fields = ["documents", "embeddings", "metadatas", "uris", "distances"];
    match op {
        Operation::Query => {
            let queries = request
                .get("query_embeddings")
                .and_then(Json::as_array)
                .map_or(1, Vec::len);
            let include = requested_include(request, &["documents", "metadatas", "distances"]);
            let mut answer = Map::new();
            answer.insert("ids".into(), json!(vec![Vec::<Json>::new(); queries]));
            for f in fields {
                let value = if include.iter().any(|i| i == f) {
                    json!(vec![Vec::<Json>::new(); queries])
                } else {
                    Json::Null
                };
                answer.insert(f.into(), value);
            }
            answer.insert("include".into(), json!(include));
            Json::Object(answer)
        }
        Operation::Search => {
            let searches = request
                .get("searches")
                .and_then(Json::as_array)
                .map_or(1, Vec::len);
            let empty_lists = json!(vec![Vec::<Json>::new(); searches]);
            let nulls = json!(vec![Json::Null; searches]);
            json!({"ids": empty_lists, "documents": nulls, "embeddings": nulls,
                   "metadatas": nulls, "scores": nulls, "select": empty_lists})
        }
        _ => {
            let include = requested_include(request, &["documents", "metadatas"]);
            let mut answer = Map::new();
            answer.insert("ids".into(), json!([]));
            for f in fields.iter().take(4) {
                let value = if include.iter().any(|i| i == f) { json!([]) } else { Json::Null };
                answer.insert((*f).into(), value);
            }
            answer.insert("include".into(), json!(include));
            Json::Object(answer)
        }
    }
}

fn requested_include(request: &Json, default: &[&str]) -> Vec<String> {
    match request.get("include").and_then(Json::as_array) {
        Some(items) => items.iter().filter_map(|i| i.as_str().map(String::from)).collect(),
        None => default.iter().map(|s| (*s).to_string()).collect(),
    }
}

fn count_ids(answer: &Json) -> usize {
    match answer.get("ids") {
        Some(Json::Array(ids)) => ids
            .iter()
            .map(|i| match i {
                Json::Array(inner) => inner.len(),
                _ => 1,
            })
            .sum(),
        _ => 0,
    }
}

fn action_name(action: CollectionAction) -> &'static str {
    match action {
        CollectionAction::Read => "read",
        CollectionAction::Create => "create",
        CollectionAction::Update => "update",
        CollectionAction::Delete => "delete",
    }
}

/// `tenant_resource_name:database:collection` → `collection`.
fn crn_collection_name(crn: &str) -> Result<String, ProxyError> {
    let parts: Vec<&str> = crn.split(':').collect();
    match parts.as_slice() {
        [_, _, name] if !name.is_empty() => Ok((*name).to_string()),
        _ => Err(ProxyError::BadRequest(format!("{crn:?} is not a collection CRN"))),
    }
}

fn collection_name_of(collection: &Json) -> Result<String, ProxyError> {
    collection
        .get("name")
        .and_then(Json::as_str)
        .map(String::from)
        .ok_or_else(|| ProxyError::UpstreamUnreadable("a collection without a name".into()))
}

/// Removes the records at `indices` from every parallel array of an add/upsert/update body
/// (`ids`, `embeddings`, `metadatas`, `documents`, `uris`).
fn drop_records(body: &mut Json, indices: &BTreeSet<usize>) -> Result<(), ProxyError> {
    let obj = body
        .as_object_mut()
        .ok_or_else(|| ProxyError::BadRequest("the body must be an object".into()))?;
    for field in ["ids", "embeddings", "metadatas", "documents", "uris"] {
        if let Some(Json::Array(items)) = obj.get_mut(field) {
            let mut index = 0;
            items.retain(|_| {
                let keep = !indices.contains(&index);
                index += 1;
                keep
            });
        }
    }
    Ok(())
}
