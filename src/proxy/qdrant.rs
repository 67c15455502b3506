//! Qdrant (REST) through the pipeline: each operation class, phase by phase.

use super::authorize::{nested_record_attributes, Access, Decider, HitAttributes, Resource};
use super::body::{parse_json_body, read_body};
use super::records::{missing_required, stamp_values};
use super::respond::{json_response, ProxyError, ProxyResponse};
use super::upstream::{parse_answer, pass_back, path_and_query, to_bytes, UpstreamResponse};
use super::Gateway;
use crate::audit::AuditEvent;
use crate::backends::qdrant::filter::translate_pushdown;
use crate::backends::qdrant::request::{
    self, PayloadChange, PointId, PointInput, PointWrite, Selector, Trim,
};
use crate::backends::qdrant::response;
use crate::backends::qdrant::routes::{self, CollectionAction, OpClass, Operation, Route};
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
/// Points a by-filter payload write may touch; each is checked like a by-id write.
const MAX_FILTER_WRITE_POINTS: usize = 10_000;

/// The collection a request addresses, with its configuration.
struct Target<'g> {
    /// `/collections/{name}`
    base: String,
    name: String,
    rule: &'g CollectionRule,
    mapping: &'g FieldMapping,
}

impl Target<'_> {
    fn attrs(&self, payload: Option<&Map<String, Json>>) -> BTreeMap<String, Value> {
        nested_record_attributes(payload, &self.mapping.attr_prefix)
    }

    fn hit_attributes<'p>(&self, payload: Option<&'p Map<String, Json>>) -> HitAttributes<'p> {
        HitAttributes::nested(payload, &self.mapping.attr_prefix)
    }

    /// Does this point satisfy the plan (`None`: no residual to check)?
    fn admits(
        &self,
        decider: &Decider<'_>,
        plan: Option<&crate::plan::Plan>,
        id: &PointId,
        payload: Option<&Map<String, Json>>,
    ) -> bool {
        plan.is_none_or(|plan| {
            decider.hit_allowed(plan, &self.rule.resource_kind, id, self.hit_attributes(payload))
        })
    }

    /// Payload paths the response filter needs (`metadata` for LangChain's layout).
    fn payload_keys(&self) -> Vec<String> {
        let prefix = self.mapping.attr_prefix.trim_end_matches('.');
        if prefix.is_empty() {
            Vec::new()
        } else {
            vec![prefix.to_string()]
        }
    }
}

/// Qdrant's answer for a point id it does not have, used wherever an unauthorized id must
/// look missing.
fn point_not_found(id: &PointId) -> ProxyError {
    database_answer(
        StatusCode::NOT_FOUND,
        &json!({"status": {"error": format!("Not found: No point with id {id} found")}, "time": 0.0}),
    )
}

fn database_answer(status: StatusCode, body: &Json) -> ProxyError {
    ProxyError::Database {
        status,
        content_type: Some(http::HeaderValue::from_static("application/json")),
        body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
    }
}

/// Qdrant's success envelope.
fn ok(result: Json) -> ProxyResponse {
    json_response(StatusCode::OK, &json!({"result": result, "status": "ok", "time": 0.0}))
}

fn bad_request(e: impl std::fmt::Display) -> ProxyError {
    ProxyError::BadRequest(e.to_string())
}

impl Gateway {
    pub(super) async fn qdrant<B>(
        &self,
        parts: &Parts,
        body: B,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        // Classify (on the path as Qdrant normalises it).
        let route = routes::classify(&parts.method, parts.uri.path()).ok_or_else(|| {
            ProxyError::UnknownRoute(format!("{} {}", parts.method, parts.uri.path()))
        })?;
        event.operation = Some(route.op.name());
        routes::check_query(route.op, parts.uri.query()).map_err(bad_request)?;
        let class = route.op.class();
        if class == OpClass::Health {
            event.decision = "allow";
            return self.qdrant_forward(parts, &route, None, event).await.map(pass_back);
        }

        // Authenticate, read the body, one policy snapshot for the whole request.
        let auth = self.authenticate(parts, event)?;
        let body = read_body(&parts.headers, body, &self.config.limits).await?;
        let decider = Decider::new(&auth, self.policies.snapshot(), &self.metrics);
        event.policy_version = Some(decider.snapshot.version);

        match class {
            OpClass::Health => Err(ProxyError::Internal("health handled above".into())),
            OpClass::Admin => {
                self.require_admin(route.op.name(), &decider, event)?;
                let body = self.qdrant_body(parts, &body)?;
                self.qdrant_forward(parts, &route, body, event).await.map(pass_back)
            }
            OpClass::Collection(action) => {
                self.qdrant_collection_admin(parts, &route, action, &body, &decider, event)
                    .await
            }
            OpClass::FilteredRead | OpClass::Count | OpClass::Retrieve | OpClass::PointWrite | OpClass::Delete => {
                let target = self.qdrant_target(&route, event)?;
                let request = if route.op == Operation::GetPoint {
                    Json::Null
                } else {
                    parse_json_body(&parts.headers, &body)?
                };
                match class {
                    OpClass::FilteredRead => {
                        self.qdrant_read(parts, &route, &target, request, &decider, event).await
                    }
                    OpClass::Count => self.qdrant_count(parts, &route, &target, request, &decider, event).await,
                    OpClass::Retrieve => {
                        self.qdrant_retrieve(parts, &route, &target, request, &decider, event).await
                    }
                    OpClass::Delete if route.op == Operation::DeletePoints => {
                        self.qdrant_delete(parts, &route, &target, request, &decider, event).await
                    }
                    // Payload and vector changes, including payload/vector deletion, which can
                    // remove attributes: checked like writes (USING and WITH CHECK).
                    _ => self.qdrant_write(parts, &route, &target, request, &decider, event).await,
                }
            }
        }
    }

    /// Filtered reads: the read filter ANDed into the filter and every prefetch; point ids used
    /// as inputs checked first; hits checked again where the answer lists points.
    async fn qdrant_read(
        &self,
        parts: &Parts,
        route: &Route,
        target: &Target<'_>,
        request: Json,
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError> {
        let op = route.op;
        let access = self.qdrant_access(target, "read", op.post_filterable(), decider, event)?;
        if matches!(access, Access::Nothing) {
            // Validated like any other request, then answered here.
            request::inject_filter(op, request.clone(), None).map_err(bad_request)?;
            event.hits_returned = Some(0);
            return Ok(ok(empty_read_result(op, &request)));
        }

        // Ids used as query inputs: each must be readable, else it is "missing".
        let inputs = request::point_inputs(op, &request).map_err(bad_request)?;
        self.require_readable_inputs(target, &inputs, decider, event).await?;

        // Lookups into other collections (groups' with_lookup) get that collection's plan.
        let lookup_collections = request::lookups(op, &request).map_err(bad_request)?;
        let mut lookup_access = Vec::new();
        for name in lookup_collections {
            let (rule, _) = self.collection_rule(&name)?;
            if rule.attr_prefix != target.mapping.attr_prefix || rule.resource_kind.is_empty() {
                return Err(ProxyError::Forbidden(format!(
                    "with_lookup into {name:?}: its records are laid out differently, so they cannot be checked"
                )));
            }
            let plan = decider.plan(&rule.resource_kind, "read");
            lookup_access.push((rule.resource_kind.clone(), plan));
        }

        let mut rewritten = request::inject_filter(op, request, access.filter()).map_err(bad_request)?;
        self.qdrant_check_filter_size(&rewritten)?;
        let checks_hits = access.residual().is_some() || !lookup_access.is_empty();
        let trim = if checks_hits && op_returns_points(op) {
            request::force_payload(op, &mut rewritten, &target.payload_keys()).map_err(bad_request)?
        } else {
            Trim::default()
        };
        let answer = self
            .qdrant_send(Method::POST, path_and_query(parts), Some(parts), Some(&rewritten), event)
            .await?;
        if !answer.is_success() {
            return Ok(pass_back(answer));
        }
        if !checks_hits || !op_returns_points(op) {
            return Ok(pass_back(answer));
        }
        let mut hits = parse_answer(&answer)?;
        let mut keep = |id: &PointId, payload: Option<&Map<String, Json>>| {
            target.admits(decider, access.residual(), id, payload)
        };
        let filtered = response::filter_points(op, &mut hits, &mut keep, &trim)
            .map_err(|e| ProxyError::UpstreamUnreadable(e.to_string()))?;
        let mut lookups_stripped = 0;
        for (kind, plan) in &lookup_access {
            let mut keep_lookup = |id: &PointId, payload: Option<&Map<String, Json>>| {
                decider.hit_allowed(plan, kind, id, target.hit_attributes(payload))
            };
            lookups_stripped += response::filter_lookups(op, &mut hits, &mut keep_lookup)
                .map_err(|e| ProxyError::UpstreamUnreadable(e.to_string()))?;
        }
        event.hits_stripped = Some(filtered.stripped);
        if matches!(access, Access::PostFilterOnly { .. }) {
            self.metrics.shortfall(self.config.upstream.kind.name(), filtered.stripped);
        }
        if !filtered.changed && lookups_stripped == 0 {
            // Every point checked and nothing to change: Qdrant's own bytes go back.
            return Ok(pass_back(answer));
        }
        Ok(json_response(answer.status, &hits))
    }

    /// count: pre-filtered only (the answer has no points to check).
    async fn qdrant_count(
        &self,
        parts: &Parts,
        route: &Route,
        target: &Target<'_>,
        request: Json,
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError> {
        let access = self.qdrant_access(target, "read", false, decider, event)?;
        if matches!(access, Access::Nothing) {
            request::inject_filter(route.op, request, None).map_err(bad_request)?;
            return Ok(ok(json!({"count": 0})));
        }
        let rewritten = request::inject_filter(route.op, request, access.filter()).map_err(bad_request)?;
        self.qdrant_check_filter_size(&rewritten)?;
        self.qdrant_send(Method::POST, path_and_query(parts), Some(parts), Some(&rewritten), event)
            .await
            .map(pass_back)
    }

    /// Retrieve by id: no filter exists for it, so every returned point is checked (an
    /// exact filter is not needed); unauthorized points look missing.
    async fn qdrant_retrieve(
        &self,
        parts: &Parts,
        route: &Route,
        target: &Target<'_>,
        mut request: Json,
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError> {
        let op = route.op;
        let access = self.qdrant_access(target, "read", true, decider, event)?;
        match (&access, op) {
            (Access::Nothing, Operation::GetPoint) => {
                return Err(missing_point_answer(route.point_id.as_ref()));
            }
            (Access::Nothing, _) => {
                request::force_payload(op, &mut request, &[]).map_err(bad_request)?;
                return Ok(ok(json!([])));
            }
            _ => {}
        }
        let trim = if access.residual().is_some() && op == Operation::GetPoints {
            request::force_payload(op, &mut request, &target.payload_keys()).map_err(bad_request)?
        } else {
            Trim::default()
        };
        let body = (op == Operation::GetPoints).then_some(&request);
        let method = if op == Operation::GetPoint { Method::GET } else { Method::POST };
        let answer = self
            .qdrant_send(method, path_and_query(parts), Some(parts), body, event)
            .await?;
        if access.residual().is_none() {
            return Ok(pass_back(answer));
        }
        // With points to check, the answer must not show whether one was removed: a point
        // that does not exist and one the caller may not read get the same bytes.
        if !answer.is_success() {
            if op == Operation::GetPoint && is_missing_point(&answer) {
                return Err(missing_point_answer(route.point_id.as_ref()));
            }
            return Ok(pass_back(answer));
        }
        let mut points = parse_answer(&answer)?;
        let mut keep = |id: &PointId, payload: Option<&Map<String, Json>>| {
            target.admits(decider, access.residual(), id, payload)
        };
        let filtered = response::filter_points(op, &mut points, &mut keep, &trim)
            .map_err(|e| ProxyError::UpstreamUnreadable(e.to_string()))?;
        event.hits_stripped = Some(filtered.stripped);
        if filtered.not_found {
            return Err(missing_point_answer(route.point_id.as_ref()));
        }
        // Always re-serialised (never Qdrant's own bytes), whether or not a point was removed.
        Ok(json_response(answer.status, &points))
    }

    /// points/delete: by ids → `has_id` AND the delete filter; by filter → AND the filter.
    async fn qdrant_delete(
        &self,
        parts: &Parts,
        route: &Route,
        target: &Target<'_>,
        request: Json,
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError> {
        let access = self.qdrant_access(target, "delete", false, decider, event)?;
        let rewritten = match &access {
            Access::Nothing => {
                request::write_selector(route.op, &request).map_err(bad_request)?;
                return Ok(ok(json!({"operation_id": null, "status": "completed"})));
            }
            Access::Everything => request,
            Access::Filtered { filter, .. } => {
                request::delete_selector_to_filter(route.op, request, filter).map_err(bad_request)?
            }
            Access::PostFilterOnly { reason, .. } => {
                return Err(ProxyError::Untranslatable(reason.clone()))
            }
        };
        self.qdrant_check_filter_size(&rewritten)?;
        self.qdrant_send(Method::POST, path_and_query(parts), Some(parts), Some(&rewritten), event)
            .await
            .map(pass_back)
    }

    /// Upserts, payload and vector changes (also by filter, and inside points/batch): every
    /// point checked, and no answer depends on whether a point the caller may not read exists
    /// (docs/deviations.md lists the one exception, upsert over such a point):
    ///
    /// - A point the caller may read: `update` on the point as it is (USING) and as it will be
    ///   (WITH CHECK), keeping its required attributes.
    /// - Payload and vector changes of a point the caller may not read (missing, or
    ///   another's): that point is left out, and the answer is Qdrant's for a missing point —
    ///   with `wait=true` the points before it are written and the answer is 404 "No point
    ///   with id … found" naming the first such point in request order (in points/batch,
    ///   later operations are not run); otherwise Qdrant's acknowledgement.
    /// - Upsert (`update_mode` upsert or absent) of a point the caller may not read: decided
    ///   as a new point (`create`); when it exists, Qdrant would overwrite it, so it also needs
    ///   `update` on it as it is and as it will be (the documented divergence).
    ///   `insert_only`: always decided as new (Qdrant leaves an existing point as it is).
    ///   `update_only`: a point the caller may not read is left out (Qdrant ignores missing
    ///   points).
    /// - An operation left selecting nothing is sent as a payload write that matches no point,
    ///   so the answer (and Qdrant's operation counter) is Qdrant's own.
    async fn qdrant_write(
        &self,
        parts: &Parts,
        route: &Route,
        target: &Target<'_>,
        mut request: Json,
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError> {
        let op = route.op;
        event.action = Some("create/update".into());
        let stamps = stamp_values(&target.rule.stamp, decider)?;
        if !stamps.is_empty() {
            stamp_write(op, &mut request, &stamps, &target.mapping.attr_prefix)?;
        }
        self.qdrant_check_filter_size(&request)?;

        // The operations, each with its own body; by-filter writes become by-id writes over
        // the points the caller may update, so each point is checked and nothing outside that
        // set can be touched.
        let mut operations = Vec::new();
        if op == Operation::BatchUpdate {
            let parts_of_batch = request::split_batch(&request).map_err(bad_request)?;
            for (part_op, part) in &parts_of_batch {
                if matches!(request::write_selector(*part_op, part), Ok(Selector::Filter(_))) {
                    return Err(ProxyError::Forbidden(
                        "by-filter operations inside points/batch are not supported; send them on their own".into(),
                    ));
                }
                if *part_op == Operation::DeletePoints {
                    return Err(ProxyError::Forbidden(
                        "point deletes inside points/batch are not supported; use points/delete".into(),
                    ));
                }
            }
            operations = parts_of_batch.into_iter().map(|(o, b)| WriteOp(o, b, false)).collect();
        } else {
            let mut selects_nothing = false;
            match request::write_selector(op, &request) {
                Ok(Selector::Filter(filter)) => {
                    let access = self.qdrant_access(target, "update", false, decider, event)?;
                    let ids = self.qdrant_ids_matching(target, &filter, &access, event).await?;
                    selects_nothing = ids.is_empty();
                    request = by_ids(request, &ids)?;
                }
                Ok(Selector::Ids(_)) => {}
                Err(e) => return Err(bad_request(e)),
            }
            operations.push(WriteOp(op, request, selects_nothing));
        }
        let mut writes = Vec::new();
        for (index, WriteOp(part_op, part, _)) in operations.iter().enumerate() {
            let mode = update_mode(*part_op, part);
            for write in request::parse_point_writes(*part_op, part).map_err(bad_request)? {
                writes.push((index, mode, write));
            }
        }
        event.records_checked = Some(writes.len());

        // The points as they are now, read unfiltered by the proxy itself, and those of them
        // the caller may read.
        let ids: Vec<PointId> = writes.iter().map(|(_, _, w)| w.id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let mut state = self.qdrant_existing(target, &ids, event).await?;
        let kind = target.rule.resource_kind.as_str();
        let mut visible: BTreeSet<PointId> = state
            .iter()
            .filter(|(id, payload)| {
                decider.may("read", &Resource { kind, id: &id.to_string(), attr: target.attrs(Some(payload)) })
            })
            .map(|(id, _)| id.clone())
            .collect();

        let mut denied = Vec::new();
        // Per operation, the points left out of it; the first unseen point, in request order.
        let mut left_out: Vec<BTreeSet<PointId>> = vec![BTreeSet::new(); operations.len()];
        let mut first_unseen: Option<(usize, PointId)> = None;
        for (index, mode, PointWrite { id, change, may_create }) in &writes {
            let key = id.to_string();
            let seen = visible.contains(id);
            let allowed = if *may_create && (*mode == UpdateMode::InsertOnly || !seen) {
                if *mode == UpdateMode::UpdateOnly {
                    // Qdrant ignores an update_only point it does not have.
                    left_out[*index].insert(id.clone());
                    continue;
                }
                // Decided as a new point.
                let after = request::payload_after(change, None);
                self.check_required(target, &key, &after)?;
                let created = decider.may("create", &Resource { kind, id: &key, attr: target.attrs(Some(&after)) });
                match state.get(id) {
                    None => {
                        state.insert(id.clone(), after);
                        visible.insert(id.clone());
                        created
                    }
                    // insert_only: Qdrant leaves the existing point as it is.
                    Some(_) if *mode == UpdateMode::InsertOnly => created,
                    // upsert over a point the caller may not read: Qdrant would overwrite it.
                    Some(current) => {
                        let ok = created
                            && decider.may("update", &Resource { kind, id: &key, attr: target.attrs(Some(current)) })
                            && decider.may("update", &Resource { kind, id: &key, attr: target.attrs(Some(&after)) });
                        state.insert(id.clone(), after);
                        ok
                    }
                }
            } else if !seen {
                // A payload or vector change of a point the caller may not read: as missing.
                left_out[*index].insert(id.clone());
                if first_unseen.is_none() {
                    first_unseen = Some((*index, id.clone()));
                }
                continue;
            } else {
                let current = state.get(id).cloned().unwrap_or_default();
                let after = request::payload_after(change, Some(&current));
                if !matches!(change, PayloadChange::Keep) {
                    self.check_required(target, &key, &after)?;
                }
                let ok = decider.may("update", &Resource { kind, id: &key, attr: target.attrs(Some(&current)) })
                    && decider.may("update", &Resource { kind, id: &key, attr: target.attrs(Some(&after)) });
                state.insert(id.clone(), after);
                ok
            };
            if !allowed {
                denied.push(key);
            }
        }
        if let Some(first) = denied.first() {
            event.decision = "deny";
            return Err(ProxyError::Forbidden(format!(
                "{} of {} point writes are not allowed (first: {first}); nothing was written",
                denied.len(),
                writes.len()
            )));
        }
        event.decision = "allow";

        for (WriteOp(part_op, part, selects_nothing), left) in operations.iter_mut().zip(&left_out) {
            if !left.is_empty() && without_points(*part_op, part, left)? {
                *selects_nothing = true;
            }
        }
        let waits = query_says_wait(parts.uri.query());
        let missing_answer = match (&first_unseen, waits) {
            (Some((index, id)), true) => {
                // Qdrant writes the points before the missing one, then stops: operations
                // after it do not run, and one that selects nothing is not sent at all.
                operations.truncate(index + 1);
                operations.retain(|WriteOp(_, _, nothing)| !nothing);
                if operations.is_empty() {
                    return Err(missing_point_write(id));
                }
                Some(missing_point_write(id))
            }
            _ => None,
        };

        // Belt and braces for upserts: existing points outside the update filter keep their
        // state even if they changed since they were read.
        let update_filter = match decider.access(kind, "update", target.mapping, self.config.limits.max_filter_terms, false, translate_pushdown) {
            Ok(Access::Filtered { filter, .. }) => Some(filter),
            _ => None,
        };
        let mut bodies = Vec::new();
        for WriteOp(part_op, part, selects_nothing) in operations {
            if selects_nothing {
                bodies.push((Operation::SetPayload, selects_no_point()));
                continue;
            }
            let part = match (&update_filter, part_op) {
                (Some(filter), Operation::UpsertPoints | Operation::UpdateVectors) if op != Operation::BatchUpdate => {
                    request::and_into_update_filter(part_op, part, filter).map_err(bad_request)?
                }
                _ => part,
            };
            bodies.push((part_op, part));
        }
        let (method, path, body) = if op == Operation::BatchUpdate {
            (parts.method.clone(), path_and_query(parts).to_string(), request::join_batch(bodies).map_err(bad_request)?)
        } else {
            let (part_op, body) = bodies.pop().ok_or_else(|| ProxyError::Internal("a write without an operation".into()))?;
            if part_op == op {
                (parts.method.clone(), path_and_query(parts).to_string(), body)
            } else {
                // The operation selects nothing: the no-op payload write, with the client's
                // query (wait, ordering) so Qdrant answers as it would have.
                let query = parts.uri.query().map_or_else(String::new, |q| format!("?{q}"));
                (Method::POST, format!("{}/points/payload{query}", target.base), body)
            }
        };
        self.qdrant_check_filter_size(&body)?;
        let answer = self.qdrant_send(method, &path, Some(parts), Some(&body), event).await?;
        match missing_answer {
            Some(missing) if answer.is_success() => Err(missing),
            _ => Ok(pass_back(answer)),
        }
    }

    /// The filters a request sends upstream, the caller's and ours, must stay within
    /// `max_filter_terms` (as on Chroma; README, "Limits").
    fn qdrant_check_filter_size(&self, body: &Json) -> Result<(), ProxyError> {
        let limit = self.config.limits.max_filter_terms;
        let terms = filter_terms(body);
        if terms > limit {
            return Err(ProxyError::BadRequest(format!(
                "the filter has {terms} terms, more than the limit of {limit}"
            )));
        }
        Ok(())
    }

    fn check_required(&self, target: &Target<'_>, id: &str, payload: &Map<String, Json>) -> Result<(), ProxyError> {
        match missing_required(&target.attrs(Some(payload)), target.mapping) {
            None => Ok(()),
            Some(missing) => Err(ProxyError::Forbidden(format!(
                "point {id} would lack the required attribute {missing:?} (or hold a non-scalar value); nothing was written"
            ))),
        }
    }

    /// Collections: kind `collection`, id = the collection name (or alias) in the path.
    async fn qdrant_collection_admin(
        &self,
        parts: &Parts,
        route: &Route,
        action: CollectionAction,
        body: &Bytes,
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<ProxyResponse, ProxyError> {
        let may = |action: &str, name: &str| {
            let mut attr = BTreeMap::new();
            attr.insert("name".to_string(), Value::string(name));
            decider.may(action, &Resource { kind: COLLECTION_KIND, id: name, attr })
        };
        let body = self.qdrant_body(parts, body)?;
        event.action = Some(action.name().to_string());
        match (route.op, &route.collection) {
            (Operation::GetCollections, _) => {
                let answer = self.qdrant_forward(parts, route, None, event).await?;
                if !answer.is_success() {
                    return Ok(pass_back(answer));
                }
                let mut listing = parse_answer(&answer)?;
                let Some(Json::Array(collections)) = listing.pointer_mut("/result/collections") else {
                    return Err(ProxyError::UpstreamUnreadable("a collection listing without result.collections".into()));
                };
                collections.retain(|c| c.get("name").and_then(Json::as_str).is_some_and(|n| may("read", n)));
                event.decision = "filter";
                Ok(json_response(answer.status, &listing))
            }
            (Operation::GetCollectionsAliases, _) => {
                let answer = self.qdrant_forward(parts, route, None, event).await?;
                if !answer.is_success() {
                    return Ok(pass_back(answer));
                }
                let mut listing = parse_answer(&answer)?;
                let Some(Json::Array(aliases)) = listing.pointer_mut("/result/aliases") else {
                    return Err(ProxyError::UpstreamUnreadable("an alias listing without result.aliases".into()));
                };
                aliases.retain(|a| a.get("collection_name").and_then(Json::as_str).is_some_and(|n| may("read", n)));
                event.decision = "filter";
                Ok(json_response(answer.status, &listing))
            }
            (_, Some(name)) => {
                event.collection = Some(name.clone());
                if !may(action.name(), name) {
                    event.decision = "deny";
                    return Err(ProxyError::Forbidden(format!(
                        "{COLLECTION_KIND} action {} on {name:?} is not allowed",
                        action.name()
                    )));
                }
                event.decision = "allow";
                self.qdrant_forward(parts, route, body, event).await.map(pass_back)
            }
            (op, None) => Err(ProxyError::Internal(format!("{} without a collection", op.name()))),
        }
    }

    /// Plans `action` for the target's points and translates it for Qdrant.
    fn qdrant_access(
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

    fn qdrant_target(&self, route: &Route, event: &mut AuditEvent) -> Result<Target<'_>, ProxyError> {
        let name = route
            .collection
            .clone()
            .ok_or_else(|| ProxyError::Internal("point route without a collection".into()))?;
        event.collection = Some(name.clone());
        let (rule, mapping) = self.collection_rule(&name)?;
        Ok(Target {
            base: format!("/collections/{name}"),
            mapping,
            rule,
            name,
        })
    }

    /// Every id used as a query input must be readable by the caller in the collection it is
    /// read from; otherwise the request is answered as Qdrant answers a missing point.
    async fn require_readable_inputs(
        &self,
        target: &Target<'_>,
        inputs: &[PointInput],
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<(), ProxyError> {
        let mut by_collection: BTreeMap<Option<String>, BTreeSet<PointId>> = BTreeMap::new();
        for input in inputs {
            by_collection.entry(input.collection.clone()).or_default().insert(input.id.clone());
        }
        for (collection, ids) in by_collection {
            let other;
            let source = match collection {
                Some(name) if name != target.name => {
                    let route = Route { op: Operation::GetPoints, collection: Some(name), point_id: None, param: None };
                    let mut scratch = AuditEvent::default();
                    other = self.qdrant_target(&route, &mut scratch)?;
                    &other
                }
                _ => target,
            };
            let ids: Vec<PointId> = ids.into_iter().collect();
            let readable = self.readable_points(source, &ids, decider, event).await?;
            if let Some(hidden) = ids.iter().find(|id| !readable.contains(*id)) {
                event.decision = "deny";
                return Err(point_not_found(hidden));
            }
        }
        Ok(())
    }

    /// Those of `ids` that exist and that the caller may read.
    async fn readable_points(
        &self,
        target: &Target<'_>,
        ids: &[PointId],
        decider: &Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<BTreeSet<PointId>, ProxyError> {
        let mut scratch = AuditEvent::default();
        let access = self.qdrant_access(target, "read", true, decider, &mut scratch)?;
        if matches!(access, Access::Nothing) {
            return Ok(BTreeSet::new());
        }
        let points = self.qdrant_existing(target, ids, event).await?;
        Ok(points
            .into_iter()
            .filter(|(id, payload)| target.admits(decider, access.residual(), id, Some(payload)))
            .map(|(id, _)| id)
            .collect())
    }

    /// The ids of the points a by-filter write selects, restricted to what the caller may
    /// update.
    async fn qdrant_ids_matching(
        &self,
        target: &Target<'_>,
        filter: &Json,
        access: &Access,
        event: &mut AuditEvent,
    ) -> Result<Vec<PointId>, ProxyError> {
        let combined = match access {
            Access::Nothing => return Ok(Vec::new()),
            Access::Everything => filter.clone(),
            Access::Filtered { filter: acl, .. } => json!({"must": [filter, acl]}),
            Access::PostFilterOnly { reason, .. } => return Err(ProxyError::Untranslatable(reason.clone())),
        };
        let scroll = json!({"filter": combined, "limit": MAX_FILTER_WRITE_POINTS + 1,
                            "with_payload": false, "with_vector": false});
        self.qdrant_check_filter_size(&scroll)?;
        let answer = self
            .qdrant_send(Method::POST, &format!("{}/points/scroll", target.base), None, Some(&scroll), event)
            .await?;
        if !answer.is_success() {
            return Err(upstream_refusal(answer));
        }
        let listing = parse_answer(&answer)?;
        let points = listing
            .pointer("/result/points")
            .and_then(Json::as_array)
            .ok_or_else(|| ProxyError::UpstreamUnreadable("a scroll answer without result.points".into()))?;
        if points.len() > MAX_FILTER_WRITE_POINTS {
            return Err(ProxyError::Forbidden(format!(
                "a by-filter write may touch at most {MAX_FILTER_WRITE_POINTS} points; this one selects more"
            )));
        }
        points
            .iter()
            .map(|p| {
                p.get("id")
                    .and_then(PointId::from_json)
                    .ok_or_else(|| ProxyError::UpstreamUnreadable("a point without a valid id".into()))
            })
            .collect()
    }

    /// Current payloads of those of `ids` that exist, read without any filter.
    async fn qdrant_existing(
        &self,
        target: &Target<'_>,
        ids: &[PointId],
        event: &mut AuditEvent,
    ) -> Result<BTreeMap<PointId, Map<String, Json>>, ProxyError> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let lookup = json!({"ids": ids.iter().map(PointId::to_json).collect::<Vec<_>>(),
                            "with_payload": true, "with_vector": false});
        let answer = self
            .qdrant_send(Method::POST, &format!("{}/points", target.base), None, Some(&lookup), event)
            .await?;
        if !answer.is_success() {
            return Err(upstream_refusal(answer));
        }
        let listing = parse_answer(&answer)?;
        let points = listing
            .get("result")
            .and_then(Json::as_array)
            .ok_or_else(|| ProxyError::UpstreamUnreadable("a retrieve answer without a result list".into()))?;
        let mut out = BTreeMap::new();
        for point in points {
            let id = point
                .get("id")
                .and_then(PointId::from_json)
                .ok_or_else(|| ProxyError::UpstreamUnreadable("a point without a valid id".into()))?;
            let payload = match point.get("payload") {
                Some(Json::Object(p)) => p.clone(),
                None | Some(Json::Null) => Map::new(),
                Some(_) => return Err(ProxyError::UpstreamUnreadable("a payload that is not an object".into())),
            };
            out.insert(id, payload);
        }
        Ok(out)
    }

    /// A body to forward as-is: parsed strictly and serialised again (never raw bytes).
    fn qdrant_body(&self, parts: &Parts, body: &Bytes) -> Result<Option<Json>, ProxyError> {
        if body.is_empty() {
            return Ok(None);
        }
        parse_json_body(&parts.headers, body).map(Some)
    }

    /// Forwards the request as the client sent it (path normalised, body re-serialised).
    async fn qdrant_forward(
        &self,
        parts: &Parts,
        route: &Route,
        body: Option<Json>,
        event: &mut AuditEvent,
    ) -> Result<UpstreamResponse, ProxyError> {
        let _ = route;
        self.qdrant_send(parts.method.clone(), path_and_query(parts), Some(parts), body.as_ref(), event)
            .await
    }

    async fn qdrant_send(
        &self,
        method: Method,
        path_and_query: &str,
        client: Option<&Parts>,
        body: Option<&Json>,
        event: &mut AuditEvent,
    ) -> Result<UpstreamResponse, ProxyError> {
        let bytes = body.map(to_bytes).transpose()?;
        self.upstream
            .send(method, &normalised(path_and_query), client.map(|p| &p.headers), bytes, &event.request_id)
            .await
    }
}

/// The path as Qdrant normalises it (merged and trailing slashes), with the query string.
fn normalised(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let path = routes::normalise_path(path).unwrap_or_else(|| path.to_string());
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// Qdrant's 404 for `GET points/{id}` of a point it does not have (not a missing collection).
fn is_missing_point(answer: &UpstreamResponse) -> bool {
    answer.status == StatusCode::NOT_FOUND
        && serde_json::from_slice::<Json>(&answer.body).is_ok_and(|body| {
            body.pointer("/status/error")
                .and_then(Json::as_str)
                .is_some_and(|e| e.starts_with("Not found: Point with id "))
        })
}

fn missing_point_answer(id: Option<&PointId>) -> ProxyError {
    let id = id.map_or_else(String::new, ToString::to_string);
    database_answer(
        StatusCode::NOT_FOUND,
        &json!({"status": {"error": format!("Not found: Point with id {id} does not exists!")}, "time": 0.0}),
    )
}

fn upstream_refusal(answer: UpstreamResponse) -> ProxyError {
    ProxyError::Database {
        status: answer.status,
        content_type: answer.content_type,
        body: answer.body,
    }
}

/// Leaf conditions in a request's `filter` and `update_filter`, in every prefetch and every
/// batch entry.
fn filter_terms(body: &Json) -> usize {
    let Some(obj) = body.as_object() else { return 0 };
    let own: usize = ["filter", "update_filter"].iter().filter_map(|k| obj.get(*k)).map(condition_leaves).sum();
    let inner: usize = ["prefetch", "searches"]
        .iter()
        .filter_map(|k| obj.get(*k))
        .map(|v| match v {
            Json::Array(items) => items.iter().map(filter_terms).sum(),
            other => filter_terms(other),
        })
        .sum();
    own + inner
}

/// Leaf conditions of a Qdrant filter (or condition, or list of them); a `nested` condition
/// counts the conditions of its filter.
fn condition_leaves(value: &Json) -> usize {
    match value {
        Json::Array(items) => items.iter().map(condition_leaves).sum(),
        Json::Object(map) => {
            let clauses = ["must", "should", "must_not"].iter().filter_map(|k| map.get(*k));
            let min_should = map.get("min_should").and_then(|m| m.get("conditions"));
            let nested = map.get("nested").and_then(|n| n.get("filter"));
            let is_filter = map.contains_key("nested")
                || ["must", "should", "must_not", "min_should"].iter().any(|k| map.contains_key(*k));
            if is_filter {
                clauses.chain(min_should).chain(nested).map(condition_leaves).sum()
            } else {
                1
            }
        }
        _ => 0,
    }
}

/// Reads whose answer lists points (the others return counts, facets or matrices).
fn op_returns_points(op: Operation) -> bool {
    !matches!(op, Operation::CountPoints | Operation::Facet | Operation::SearchMatrixPairs | Operation::SearchMatrixOffsets)
}

/// What Qdrant answers when nothing matches, for a read answered locally.
fn empty_read_result(op: Operation, request: &Json) -> Json {
    use Operation as O;
    let searches = request.get("searches").and_then(Json::as_array).map_or(0, Vec::len);
    match op {
        O::QueryPoints => json!({"points": []}),
        O::ScrollPoints => json!({"points": [], "next_page_offset": null}),
        O::QueryBatchPoints => json!(vec![json!({"points": []}); searches]),
        O::QueryPointsGroups | O::SearchPointGroups | O::RecommendPointGroups => json!({"groups": []}),
        O::SearchBatchPoints | O::RecommendBatchPoints | O::DiscoverBatchPoints => {
            json!(vec![json!([]); searches])
        }
        O::Facet => json!({"hits": []}),
        O::SearchMatrixPairs => json!({"pairs": []}),
        O::SearchMatrixOffsets => json!({"offsets_row": [], "offsets_col": [], "scores": [], "ids": []}),
        _ => json!([]),
    }
}

/// A by-filter payload write rewritten to select the given ids.
fn by_ids(mut request: Json, ids: &[PointId]) -> Result<Json, ProxyError> {
    let obj = request
        .as_object_mut()
        .ok_or_else(|| ProxyError::BadRequest("the body must be an object".into()))?;
    obj.remove("filter");
    obj.insert("points".into(), Json::Array(ids.iter().map(PointId::to_json).collect()));
    Ok(request)
}

/// Sets the stamped attributes on every payload an upsert or overwrite stores.
fn stamp_write(op: Operation, request: &mut Json, stamps: &[(String, Json)], prefix: &str) -> Result<(), ProxyError> {
    let stamp_payload = |payload: &mut Json| -> Result<(), ProxyError> {
        if payload.is_null() {
            *payload = json!({});
        }
        let mut object = payload
            .as_object_mut()
            .ok_or_else(|| ProxyError::BadRequest("a payload must be an object".into()))?;
        for segment in prefix.split('.').filter(|s| !s.is_empty()) {
            let entry = object.entry(segment.to_string()).or_insert_with(|| json!({}));
            if entry.is_null() {
                *entry = json!({});
            }
            object = entry
                .as_object_mut()
                .ok_or_else(|| ProxyError::BadRequest(format!("payload {segment:?} must be an object")))?;
        }
        for (name, value) in stamps {
            object.insert(name.clone(), value.clone());
        }
        Ok(())
    };
    match op {
        Operation::UpsertPoints => {
            if let Some(Json::Array(points)) = request.get_mut("points") {
                for point in points {
                    let payload = point
                        .as_object_mut()
                        .ok_or_else(|| ProxyError::BadRequest("a point must be an object".into()))?
                        .entry("payload")
                        .or_insert(Json::Null);
                    stamp_payload(payload)?;
                }
            } else if let Some(batch) = request.get_mut("batch").and_then(Json::as_object_mut) {
                let count = batch.get("ids").and_then(Json::as_array).map_or(0, Vec::len);
                let payloads = batch.entry("payloads").or_insert_with(|| json!(vec![Json::Null; count]));
                let list = payloads
                    .as_array_mut()
                    .ok_or_else(|| ProxyError::BadRequest("batch.payloads must be a list".into()))?;
                for payload in list {
                    stamp_payload(payload)?;
                }
            }
            Ok(())
        }
        Operation::OverwritePayload => match request.get_mut("payload") {
            Some(payload) => stamp_payload(payload),
            None => Ok(()),
        },
        Operation::BatchUpdate => {
            let mut parts = request::split_batch(request).map_err(bad_request)?;
            for (part_op, part) in &mut parts {
                stamp_write(*part_op, part, stamps, prefix)?;
            }
            *request = request::join_batch(parts).map_err(bad_request)?;
            Ok(())
        }
        // Merges and deletions keep what is stored; the checks see the result.
        _ => Ok(()),
    }
}

/// One operation of a write: its kind, its body, and whether it selects no point (any more).
struct WriteOp(Operation, Json, bool);

/// An upsert's `update_mode`; every other write behaves like `upsert` here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpdateMode {
    Upsert,
    InsertOnly,
    UpdateOnly,
}

fn update_mode(op: Operation, body: &Json) -> UpdateMode {
    match (op, body.get("update_mode").and_then(Json::as_str)) {
        (Operation::UpsertPoints, Some("insert_only")) => UpdateMode::InsertOnly,
        (Operation::UpsertPoints, Some("update_only")) => UpdateMode::UpdateOnly,
        _ => UpdateMode::Upsert,
    }
}

/// `wait=true` in the query: Qdrant answers after applying the write (and reports a missing
/// point); otherwise it acknowledges before looking at the points.
fn query_says_wait(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|pair| pair == "wait=true"))
}

/// Qdrant's answer to a payload or vector change of a point it does not have (measured on
/// 1.18.3: the same for set, overwrite, delete and clear payload, update and delete vectors,
/// and points/batch).
fn missing_point_write(id: &PointId) -> ProxyError {
    database_answer(
        StatusCode::NOT_FOUND,
        &json!({"status": {"error": format!("Not found: No point with id {id} found")}, "time": 0.0}),
    )
}

/// A payload write that matches no point: what an operation left selecting nothing is sent
/// as (Qdrant refuses an empty `points` list with 400 "Empty update request").
fn selects_no_point() -> Json {
    json!({"payload": {}, "filter": {"must": [{"has_id": []}]}})
}

/// Removes the points in `drop` from a by-id write's selection (`points` ids or entries, or
/// the `batch` columns of an upsert). True when nothing is left.
fn without_points(op: Operation, body: &mut Json, drop: &BTreeSet<PointId>) -> Result<bool, ProxyError> {
    let keep = |entry: &Json| {
        let id = if entry.is_object() { entry.get("id") } else { Some(entry) };
        !id.and_then(PointId::from_json).is_some_and(|id| drop.contains(&id))
    };
    let obj = body
        .as_object_mut()
        .ok_or_else(|| ProxyError::BadRequest("the body must be an object".into()))?;
    if let Some(Json::Array(points)) = obj.get_mut("points") {
        points.retain(keep);
        return Ok(points.is_empty());
    }
    let Some(Json::Object(batch)) = obj.get_mut("batch") else {
        return Err(ProxyError::Internal(format!("{} without points or batch", op.name())));
    };
    let mask: Vec<bool> = match batch.get("ids") {
        Some(Json::Array(ids)) => ids.iter().map(keep).collect(),
        _ => return Err(ProxyError::BadRequest("batch.ids must be a list".into())),
    };
    let filter_column = |column: &mut Json| {
        if let Json::Array(items) = column {
            let mut index = 0;
            items.retain(|_| {
                let kept = mask.get(index).copied().unwrap_or(true);
                index += 1;
                kept
            });
        }
    };
    for (name, column) in batch.iter_mut() {
        match (name.as_str(), column) {
            ("vectors", Json::Object(named)) => named.values_mut().for_each(&filter_column),
            (_, column) => filter_column(column),
        }
    }
    Ok(!mask.contains(&true))
}
