//! The one write rule, for every database. A write is described by its database module as
//! the records it touches ([`WriteSet`]); here each of them is decided against the record as
//! it is now (read unfiltered by the pipeline) and as it will be stored:
//!
//! - a new record needs `create` on the record as it will be stored;
//! - an existing record needs `update` on the record as it is (PostgreSQL's USING) **and** on
//!   the record as it will be stored (WITH CHECK);
//! - a write the database ignores for an existing record (Chroma's `add`) is decided as if
//!   the record were new, so the answer does not depend on whether a record the caller may
//!   not read exists; one the database ignores for a missing record (an update) writes
//!   nothing and needs nothing;
//! - every stored record keeps its required attributes as non-null scalars, unless the write
//!   leaves its attributes as they are: the read filters negate required attributes directly;
//! - stamped attributes come from the principal ([`stamp_values`]), set by the database
//!   module before the write is described, so the checks see them.
//!
//! Records are decided in the order the database applies them, each seeing the state the
//! ones before it left (a batch may write one id twice). Any refusal refuses the whole write:
//! nothing is forwarded.

use super::decide::{Authorizer, Resource};
use super::error::ProxyError;
use crate::authn::Authenticated;
use crate::backends::seam::{Database, RecordWrite, WriteKind};
use crate::backends::FieldMapping;
use crate::config::StampSource;
use crate::plan::Value;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// The attribute values a collection's `stamp` sets on written records, from the principal.
/// A stamp naming an attribute the principal lacks refuses the write.
pub fn stamp_values(stamps: &BTreeMap<String, StampSource>, caller: &Authenticated) -> Result<Vec<(String, Json)>, ProxyError> {
    let principal = &caller.principal;
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

impl Writer<'_> {
    /// Decides every record of a write (see the module documentation). `existing`: the
    /// records that exist now, as the database returned them.
    pub fn check<D: Database>(
        &self,
        db: &D,
        route: &D::Route,
        records: &[RecordWrite<D::Id, D::Change>],
        mut existing: BTreeMap<D::Id, D::Record>,
    ) -> Result<(), ProxyError> {
        let mut denied = Vec::new();
        for write in records {
            let id = write.id.to_string();
            let before = existing.get(&write.id);
            let allowed = match (before, write.kind) {
                // The database writes nothing.
                (None, WriteKind::Change) => true,
                (None, WriteKind::Upsert | WriteKind::Insert) | (Some(_), WriteKind::Insert) => {
                    let after = db.apply(route, &write.change, None);
                    let attrs = self.attributes(db, &after);
                    self.require_attributes(&id, &attrs, true)?;
                    let allowed = self.authorizer.may("create", &self.resource(&id, attrs));
                    if before.is_none() {
                        existing.insert(write.id.clone(), after);
                    }
                    allowed
                }
                (Some(current), WriteKind::Upsert | WriteKind::Change) => {
                    let after = db.apply(route, &write.change, Some(current));
                    let now = self.attributes(db, current);
                    let then = self.attributes(db, &after);
                    self.require_attributes(&id, &then, after != *current)?;
                    let allowed = self.authorizer.may("update", &self.resource(&id, now))
                        && self.authorizer.may("update", &self.resource(&id, then));
                    existing.insert(write.id.clone(), after);
                    allowed
                }
            };
            if !allowed {
                denied.push(id);
            }
        }
        match denied.first() {
            None => Ok(()),
            Some(first) => Err(ProxyError::Forbidden(format!(
                "{} of {} record writes are not allowed (first: {first}); nothing was written",
                denied.len(),
                records.len()
            ))),
        }
    }

    fn attributes<D: Database>(&self, db: &D, record: &D::Record) -> BTreeMap<String, Value> {
        db.attributes(record, self.mapping).all()
    }

    fn resource<'r>(&'r self, id: &'r str, attr: BTreeMap<String, Value>) -> Resource<'r> {
        Resource { kind: self.kind, id, attr }
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
