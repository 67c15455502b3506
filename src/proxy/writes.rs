//! The one write rule, for every database. A write is described by its database module as
//! the records it touches ([`crate::backends::seam::WriteSet`]); here each of them is decided
//! against the record as it is now (read unfiltered by the pipeline) and as it will be stored:
//!
//! - a new record needs `create` on the record as it will be stored;
//! - an existing record the caller may read needs `update` on the record as it is
//!   (PostgreSQL's USING) **and** as it will be stored (WITH CHECK);
//! - no answer depends on whether a record the caller may not read exists, wherever the
//!   database itself answers the same: a write the database ignores for an existing record
//!   (Chroma's `add`, Qdrant's `insert_only`) is decided as the write of a new record; a
//!   change of a record the caller may not read is left out and answered as the change of a
//!   missing record ([`crate::backends::seam::Database::narrow_write`]). The one exception:
//!   an upsert over a record the caller may not read is decided as new first and, when that
//!   passes, also needs `update` on the record as it is and as it will be — the database
//!   would overwrite it — so its refusal reveals that the record exists (PostgreSQL's row
//!   security has the same trade-off for `INSERT … ON CONFLICT`; docs/deviations.md);
//! - every stored record keeps its required attributes as non-null scalars, unless the write
//!   leaves its attributes as they are: the read filters negate required attributes directly;
//! - stamped attributes come from the principal ([`stamp_values`]), set by the database
//!   module before the write is described, so the checks see them.
//!
//! Records are decided in the order the database applies them, each seeing the state the
//! ones before it left (a batch may write one id twice). Any refusal refuses the whole write:
//! nothing is forwarded. Questions are batched (one PDP request per action and 50 records,
//! not one per record); a question without an answer denies.

use super::decide::{same_attributes, Authorizer};
use super::error::ProxyError;
use crate::authn::Authenticated;
use crate::backends::seam::{Database, RecordWrite, WriteKind};
use crate::backends::FieldMapping;
use crate::config::StampSource;
use crate::plan::Value;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};

/// The attribute values a collection's `stamp` sets on written records, from the principal.
/// A stamp naming an attribute the principal lacks refuses the write.
pub fn stamp_values(stamps: &BTreeMap<String, StampSource>, caller: &Authenticated) -> Result<Vec<(String, Json)>, ProxyError> {
    let principal = caller.principal();
    stamps
        .iter()
        .map(|(name, source)| {
            let value = match source {
                StampSource::Id => Json::String(principal.id.clone()),
                StampSource::Attr(attr) => principal.attr.get(attr).map(Value::to_json).ok_or_else(|| {
                    ProxyError::Forbidden(format!("cannot stamp {name:?}: the principal has no attribute {attr:?}"))
                })?,
            };
            Ok((name.clone(), value))
        })
        .collect()
}

/// The first required attribute a record lacks or holds as null, a list or a map.
pub fn missing_required<'m>(attr: &BTreeMap<String, Value>, mapping: &'m FieldMapping) -> Option<&'m str> {
    mapping.required_attrs.iter().map(String::as_str).find(|name| {
        !matches!(
            attr.get(*name),
            Some(Value::String(_) | Value::Int(_) | Value::Uint(_) | Value::Double(_) | Value::Bool(_))
        )
    })
}

/// Who writes, into which collection.
pub struct Writer<'a> {
    pub authorizer: &'a Authorizer,
    pub kind: &'a str,
    pub mapping: &'a FieldMapping,
}

/// One `create` or `update` question the rule asks about a record.
#[derive(Debug, Clone)]
struct Question {
    action: &'static str,
    id: String,
    attr: BTreeMap<String, Value>,
}

/// Who answers the rule's `create` and `update` questions.
enum Decisions<'q> {
    /// The embedded policy set, at once.
    InProcess,
    /// First pass with a PDP: every question recorded, each answered "yes". The rule's path
    /// does not depend on these answers (only on the readable set, the records and their
    /// shapes), so the second pass asks exactly these questions in this order.
    Recording(Vec<Question>),
    /// Second pass: the PDP's answers to the recorded questions, in order. A question that
    /// differs from the recorded one, or comes beyond them, is denied.
    Answered { questions: &'q [Question], answers: &'q [bool], next: usize },
}

impl Decisions<'_> {
    fn may(&mut self, authorizer: &Authorizer, kind: &str, question: Question) -> bool {
        match self {
            Decisions::InProcess => authorizer
                .check_in_process(kind, question.action, &question.id, &question.attr)
                .unwrap_or(false),
            Decisions::Recording(asked) => {
                asked.push(question);
                true
            }
            Decisions::Answered { questions, answers, next } => {
                let at = *next;
                *next += 1;
                let asked = questions.get(at).is_some_and(|q| {
                    q.action == question.action && q.id == question.id && same_attributes(&q.attr, &question.attr)
                });
                asked && answers.get(at).copied().unwrap_or(false)
            }
        }
    }
}

impl Writer<'_> {
    /// Decides every record of a write (see the module documentation). `existing`: the
    /// records that exist now, as the database returned them. Returns the indices of the
    /// records left out (changes of records the caller may not read).
    ///
    /// The questions are batched: `read` on every existing record at once; with a PDP, the
    /// rule then runs once recording its `create` and `update` questions, they are asked in
    /// one batch per action, and the rule runs again on the answers.
    pub async fn check<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        records: &[RecordWrite<D::Id, D::Change>],
        existing: BTreeMap<D::Id, D::Record>,
    ) -> Result<Vec<usize>, ProxyError> {
        let readable = self.readable(db, &existing).await?;
        if !self.authorizer.confirms_hits() {
            return self.rule(db, route, records, existing, readable, &mut Decisions::InProcess);
        }
        let mut recording = Decisions::Recording(Vec::new());
        self.rule(db, route, records, existing.clone(), readable.clone(), &mut recording)?;
        let Decisions::Recording(questions) = recording else {
            return Err(ProxyError::Internal("the write rule's questions were not recorded".into()));
        };
        let mut answers = vec![false; questions.len()];
        for action in ["create", "update"] {
            let asked: Vec<usize> = (0..questions.len()).filter(|&i| questions[i].action == action).collect();
            let resources: Vec<(&str, &BTreeMap<String, Value>)> =
                asked.iter().map(|&i| (questions[i].id.as_str(), &questions[i].attr)).collect();
            let allowed = self.authorizer.may_each(self.kind, action, &resources).await?;
            for (&i, ok) in asked.iter().zip(allowed) {
                answers[i] = ok;
            }
        }
        let mut answered = Decisions::Answered { questions: &questions, answers: &answers, next: 0 };
        self.rule(db, route, records, existing, readable, &mut answered)
    }

    /// The records the caller may read now, asked in one batch.
    async fn readable<D: Database>(&self, db: &D, existing: &BTreeMap<D::Id, D::Record>) -> Result<BTreeSet<D::Id>, ProxyError> {
        let ids: Vec<String> = existing.keys().map(ToString::to_string).collect();
        let attrs: Vec<_> = existing.values().map(|record| self.attributes(db, record)).collect();
        let resources: Vec<_> = ids.iter().map(String::as_str).zip(&attrs).collect();
        let allowed = self.authorizer.may_each(self.kind, "read", &resources).await?;
        Ok(existing.keys().zip(allowed).filter(|(_, ok)| *ok).map(|(id, _)| id.clone()).collect())
    }

    /// The rule itself, over the readable set, with `decisions` answering `create`/`update`.
    fn rule<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        records: &[RecordWrite<D::Id, D::Change>],
        mut existing: BTreeMap<D::Id, D::Record>,
        // Records it creates here become readable to the rest of the write.
        mut readable: BTreeSet<D::Id>,
        decisions: &mut Decisions<'_>,
    ) -> Result<Vec<usize>, ProxyError> {
        let mut denied = Vec::new();
        let mut left_out = Vec::new();
        for (index, write) in records.iter().enumerate() {
            let id = write.id.to_string();
            let seen = readable.contains(&write.id);
            let allowed = match (write.kind, existing.get(&write.id)) {
                (WriteKind::Upsert | WriteKind::Change, Some(current)) if seen => {
                    let after = db.apply(route, &write.change, Some(current));
                    let allowed = self.update_allowed(db, &id, current, &after, decisions)?;
                    existing.insert(write.id.clone(), after);
                    allowed
                }
                // A change of a record the caller may not read, or of a missing one.
                (WriteKind::Change, _) => {
                    left_out.push(index);
                    continue;
                }
                (WriteKind::Insert, before) | (WriteKind::Upsert, before @ None) => {
                    let allowed = self.create_allowed(db, route, &id, &write.change, decisions)?;
                    if before.is_none() {
                        existing.insert(write.id.clone(), db.apply(route, &write.change, None));
                        readable.insert(write.id.clone());
                    }
                    allowed
                }
                // An upsert over a record the caller may not read: decided as new, then, since
                // the database would overwrite it, as an update of it. (Both are asked, so
                // that every pass asks the same questions.)
                (WriteKind::Upsert, Some(current)) => {
                    let after = db.apply(route, &write.change, Some(current));
                    let created = self.create_allowed(db, route, &id, &write.change, decisions)?;
                    let updated = self.update_allowed(db, &id, current, &after, decisions)?;
                    existing.insert(write.id.clone(), after);
                    created && updated
                }
            };
            if !allowed {
                denied.push(id);
            }
        }
        match denied.first() {
            None => Ok(left_out),
            Some(first) => Err(ProxyError::Forbidden(format!(
                "{} of {} record writes are not allowed (first: {first}); nothing was written",
                denied.len(),
                records.len()
            ))),
        }
    }

    /// `create` on the record as the write would store it new.
    fn create_allowed<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        id: &str,
        change: &D::Change,
        decisions: &mut Decisions<'_>,
    ) -> Result<bool, ProxyError> {
        let attrs = self.attributes(db, &db.apply(route, change, None));
        self.require_attributes(id, &attrs, true)?;
        Ok(decisions.may(self.authorizer, self.kind, Question { action: "create", id: id.to_string(), attr: attrs }))
    }

    /// `update` on the record as it is and as it will be (both asked).
    fn update_allowed<D: Database>(
        &self,
        db: &D,
        id: &str,
        current: &D::Record,
        after: &D::Record,
        decisions: &mut Decisions<'_>,
    ) -> Result<bool, ProxyError> {
        let now = self.attributes(db, current);
        let then = self.attributes(db, after);
        self.require_attributes(id, &then, after != current)?;
        let before = decisions.may(self.authorizer, self.kind, Question { action: "update", id: id.to_string(), attr: now });
        let afterwards = decisions.may(self.authorizer, self.kind, Question { action: "update", id: id.to_string(), attr: then });
        Ok(before && afterwards)
    }

    fn attributes<D: Database>(&self, db: &D, record: &D::Record) -> BTreeMap<String, Value> {
        db.attributes(record, self.mapping).all()
    }

    /// `changed`: the write changes the record's attributes (or creates it).
    fn require_attributes(&self, id: &str, attrs: &BTreeMap<String, Value>, changed: bool) -> Result<(), ProxyError> {
        match missing_required(attrs, self.mapping).filter(|_| changed) {
            None => Ok(()),
            Some(missing) => Err(ProxyError::Forbidden(format!(
                "record {id} would lack the required attribute {missing:?} (or hold a non-scalar value); nothing was written"
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! The rule on its own, with the real database modules describing the records (they are
    //! pure) and a real policy snapshot; the integration tests of both databases exercise it
    //! again through the proxy.

    use super::*;
    use crate::backends::chroma::routes::{Operation as ChromaOp, Route as ChromaRoute};
    use crate::backends::chroma::Chroma;
    use crate::backends::qdrant::point_id::PointId;
    use crate::backends::qdrant::request::PayloadChange;
    use crate::backends::qdrant::routes::{Operation as QdrantOp, Route as QdrantRoute};
    use crate::backends::qdrant::Qdrant;
    use crate::metrics::Metrics;
    use crate::policy::planner::Principal;
    use crate::policy::store::PolicyStore;
    use serde_json::{json, Map};
    use std::sync::Arc;

    /// Users read their own department's records, and create and update them at level ≤ 3.
    const POLICY: &str = r#"
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: [read]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: request.resource.attr.dept == request.principal.attr.dept
    - actions: [create, update]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          all:
            of:
              - expr: request.resource.attr.dept == request.principal.attr.dept
              - expr: request.resource.attr.level <= 3
"#;

    fn authorizer() -> (tempfile::TempDir, Authorizer) {
        let (dir, store) = PolicyStore::of_one_policy(POLICY);
        let mut attr = BTreeMap::new();
        attr.insert("dept".to_string(), Value::string("fin"));
        let principal = Principal { id: "alice".into(), roles: vec!["user".into()], attr, ..Principal::default() };
        let caller = Arc::new(Authenticated::new(principal, BTreeMap::new(), None));
        (dir, Authorizer::new(caller, store.snapshot(), Arc::new(Metrics::new().unwrap())))
    }

    /// The rule's questions are asked asynchronously (a PDP may answer them).
    fn block<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    fn meta(v: Json) -> Option<Map<String, Json>> {
        v.as_object().cloned()
    }

    fn chroma_route(op: ChromaOp) -> ChromaRoute {
        ChromaRoute { op, tenant: None, database: None, collection: None }
    }

    fn write(id: &str, m: Json, kind: WriteKind) -> RecordWrite<String, Option<Map<String, Json>>> {
        RecordWrite { id: id.into(), change: meta(m), kind }
    }

    fn existing(records: &[(&str, Json)]) -> BTreeMap<String, Option<Map<String, Json>>> {
        records.iter().map(|(id, m)| ((*id).to_string(), meta(m.clone()))).collect()
    }

    fn decide(
        writer: &Writer<'_>,
        op: ChromaOp,
        writes: &[RecordWrite<String, Option<Map<String, Json>>>],
        stored: &[(&str, Json)],
    ) -> Result<Vec<usize>, ProxyError> {
        block(writer.check(&Chroma, &chroma_route(op), writes, existing(stored)))
    }

    #[test]
    fn new_records_need_create_existing_ones_update_before_and_after() {
        let (_dir, authorizer) = authorizer();
        let mapping = FieldMapping::new("", ["dept"]);
        let writer = Writer { authorizer: &authorizer, kind: "doc", mapping: &mapping };
        let own = json!({"dept": "fin", "level": 1});
        let other = json!({"dept": "hr", "level": 1});
        // create
        assert!(decide(&writer, ChromaOp::Upsert, &[write("a", own.clone(), WriteKind::Upsert)], &[]).is_ok());
        assert!(decide(&writer, ChromaOp::Upsert, &[write("a", other.clone(), WriteKind::Upsert)], &[]).is_err());
        // update: as it is (USING) and as it will be (WITH CHECK)
        assert!(decide(&writer, ChromaOp::Update, &[write("a", json!({"level": 2}), WriteKind::Change)], &[("a", own.clone())]).is_ok());
        assert!(decide(&writer, ChromaOp::Update, &[write("a", json!({"dept": "hr"}), WriteKind::Change)], &[("a", own.clone())]).is_err());
        // Another department's record is not the caller's to see: left out, not refused.
        assert_eq!(decide(&writer, ChromaOp::Update, &[write("a", json!({"dept": "fin"}), WriteKind::Change)], &[("a", other.clone())]).unwrap(), vec![0]);
        assert!(decide(&writer, ChromaOp::Update, &[write("a", json!({"level": 9}), WriteKind::Change)], &[("a", own.clone())]).is_err());
        // Any refusal refuses the whole write.
        let batch = [write("a", own.clone(), WriteKind::Upsert), write("b", other.clone(), WriteKind::Upsert)];
        let refused = decide(&writer, ChromaOp::Upsert, &batch, &[]).unwrap_err();
        assert_eq!(refused.kind(), crate::proxy::ErrorKind::Forbidden);
    }

    /// Whether a record the caller may not read exists must not change the answer wherever
    /// the database itself answers the same.
    #[test]
    fn answers_do_not_depend_on_records_the_database_ignores() {
        let (_dir, authorizer) = authorizer();
        let mapping = FieldMapping::new("", ["dept"]);
        let writer = Writer { authorizer: &authorizer, kind: "doc", mapping: &mapping };
        let hidden = [("h", json!({"dept": "hr", "level": 1}))];
        for written in [json!({"dept": "fin", "level": 1}), json!({"dept": "hr", "level": 1}), json!({"dept": "fin", "level": 7})] {
            // Chroma's add of an existing id is ignored: decided as a new record.
            let add = [write("h", written.clone(), WriteKind::Insert)];
            let absent = decide(&writer, ChromaOp::Add, &add, &[]).is_ok();
            let present = decide(&writer, ChromaOp::Add, &add, &hidden).is_ok();
            assert_eq!(absent, present, "add {written}");
        }
        // A change of a record the caller may not read is left out, as the change of a
        // missing one is: the database module answers both as it answers a missing record.
        let change = [write("a", json!({"dept": "fin", "level": 1}), WriteKind::Change), write("h", json!({"level": 2}), WriteKind::Change)];
        assert_eq!(decide(&writer, ChromaOp::Update, &change, &[("a", json!({"dept": "fin", "level": 1}))]).unwrap(), vec![1]);
        assert_eq!(decide(&writer, ChromaOp::Update, &change, &[("a", json!({"dept": "fin", "level": 1})), hidden[0].clone()]).unwrap(), vec![1]);
        // The one exception: an upsert over a hidden record, which the database would
        // overwrite. Decided as new first (refused alike when that fails) …
        let bad = [write("h", json!({"dept": "hr", "level": 1}), WriteKind::Upsert)];
        assert!(decide(&writer, ChromaOp::Upsert, &bad, &[]).is_err());
        assert!(decide(&writer, ChromaOp::Upsert, &bad, &hidden).is_err());
        // … then as an update of the hidden record: refused, where a new one is created.
        let upsert = [write("h", json!({"dept": "fin", "level": 1}), WriteKind::Upsert)];
        assert!(decide(&writer, ChromaOp::Upsert, &upsert, &[]).is_ok());
        assert!(decide(&writer, ChromaOp::Upsert, &upsert, &hidden).is_err());
    }

    #[test]
    fn required_attributes_stay_scalar_unless_the_write_leaves_them_alone() {
        let (_dir, authorizer) = authorizer();
        let mapping = FieldMapping::new("", ["dept", "level"]);
        let writer = Writer { authorizer: &authorizer, kind: "doc", mapping: &mapping };
        for bad in [json!({"dept": "fin"}), json!({"dept": "fin", "level": [1]}), json!({"dept": "fin", "level": {"x": 1}})] {
            let err = decide(&writer, ChromaOp::Upsert, &[write("a", bad.clone(), WriteKind::Upsert)], &[]).unwrap_err();
            assert!(err.to_string().contains("required attribute \"level\""), "{bad}: {err}");
        }
        // Qdrant: a vector update of a legacy point that lacks `level` leaves it as it is.
        let route = QdrantRoute { op: QdrantOp::UpdateVectors, collection: Some("c".into()), point_id: None, param: None };
        let legacy: Map<String, Json> = json!({"dept": "fin", "level": 1}).as_object().cloned().unwrap();
        let mut lacking = legacy.clone();
        lacking.remove("level");
        let keep = [RecordWrite { id: PointId::Num(1), change: PayloadChange::Keep, kind: WriteKind::Change }];
        let stored: BTreeMap<PointId, Map<String, Json>> = [(PointId::Num(1), lacking.clone())].into();
        // Allowed by the required-attribute rule, refused by the policy (level is missing, so
        // `level <= 3` errors and the ALLOW does not apply): a policy matter, not a shape one.
        let refused = block(writer.check(&Qdrant, &route, &keep, stored)).unwrap_err();
        assert!(refused.to_string().contains("record writes are not allowed"), "{refused}");
        let stored: BTreeMap<PointId, Map<String, Json>> = [(PointId::Num(1), legacy)].into();
        assert!(block(writer.check(&Qdrant, &route, &keep, stored)).is_ok());
    }

    /// Records are decided in the order the database applies them, each seeing what the ones
    /// before it left.
    #[test]
    fn a_batch_sees_its_own_earlier_writes() {
        let (_dir, authorizer) = authorizer();
        let mapping = FieldMapping::new("metadata.", ["dept"]);
        let writer = Writer { authorizer: &authorizer, kind: "doc", mapping: &mapping };
        let route = QdrantRoute { op: QdrantOp::BatchUpdate, collection: Some("c".into()), point_id: None, param: None };
        let payload = |v: Json| v.as_object().cloned().unwrap();
        let create = RecordWrite {
            id: PointId::Num(7),
            change: PayloadChange::Replace(payload(json!({"metadata": {"dept": "fin", "level": 1}}))),
            kind: WriteKind::Upsert,
        };
        let move_away = RecordWrite {
            id: PointId::Num(7),
            change: PayloadChange::Merge { key: Some("metadata".into()), payload: payload(json!({"dept": "hr"})) },
            kind: WriteKind::Change,
        };
        // Created, then moved to another department: the second write is checked against the
        // first one's result, and refused by WITH CHECK.
        assert!(block(writer.check(&Qdrant, &route, std::slice::from_ref(&create), BTreeMap::new())).is_ok());
        assert!(block(writer.check(&Qdrant, &route, &[create, move_away], BTreeMap::new())).is_err());
    }

    #[test]
    fn stamps_come_from_the_principal_or_refuse() {
        let (_dir, authorizer) = authorizer();
        let mut stamps = BTreeMap::new();
        stamps.insert("owner".to_string(), StampSource::Id);
        stamps.insert("dept".to_string(), StampSource::Attr("dept".into()));
        let values = stamp_values(&stamps, &authorizer.caller).unwrap();
        assert_eq!(values, vec![("dept".to_string(), json!("fin")), ("owner".to_string(), json!("alice"))]);
        stamps.insert("team".to_string(), StampSource::Attr("team".into()));
        assert_eq!(stamp_values(&stamps, &authorizer.caller).unwrap_err().kind(), crate::proxy::ErrorKind::Forbidden);
    }
}
