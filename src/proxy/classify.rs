//! The classify phase: which operation a request is (and so what the pipeline does with it),
//! and for record operations which collection, under which configured rule.
//!
//! An unknown route, or a query string the operation does not take, is refused here: nothing
//! vecgate does not understand goes further.

use super::error::ProxyError;
use super::gateway::Gateway;
use crate::audit::AuditEvent;
use crate::backends::seam::{Call, CollectionName, Database, Located, Route};
use crate::backends::FieldMapping;
use crate::config::CollectionRule;
use http::request::Parts;

/// The operation of a request.
pub(super) fn route<D: Database>(db: &D, parts: &Parts, event: &mut AuditEvent) -> Result<D::Route, ProxyError> {
    let route = db
        .classify(&parts.method, parts.uri.path())
        .ok_or_else(|| ProxyError::UnknownRoute(format!("{} {}", parts.method, parts.uri.path())))?;
    event.operation = Some(route.name());
    db.check_query(&route, parts.uri.query())?;
    Ok(route)
}

/// The collection a record route addresses, with its rule.
pub(super) struct Target<'g> {
    pub located: Located,
    pub rule: &'g CollectionRule,
    pub mapping: &'g FieldMapping,
    /// The rule's position in `config.collections` (the same rule and mapping for the
    /// gateway's whole life).
    pub rule_index: usize,
}

impl Gateway {
    /// The name of the collection a route addresses; where the route names it by id, asked
    /// of the database (and cached for a short while).
    pub(super) async fn collection_name<D: Database>(&self, db: &D, route: &D::Route, body: &D::Body, event: &mut AuditEvent) -> Result<String, ProxyError> {
        let name = match db.collection_of(route, body).map_err(ProxyError::refused)? {
            CollectionName::Named(name) => name,
            CollectionName::Lookup { path } => match self.collection_names.get(&path) {
                Some(name) => name,
                None => {
                    let answer = self.lookup_ok(db, Call::get(path.clone()), &event.request_id).await?;
                    let name = db.collection_name(&answer.body).map_err(ProxyError::unreadable)?;
                    self.collection_names.insert(path, name.clone());
                    name
                }
            },
        };
        event.collection = Some(name.clone());
        Ok(name)
    }

    /// The collection a record route addresses, under the first rule matching its name.
    pub(super) async fn target<D: Database>(&self, db: &D, route: &D::Route, body: &D::Body, event: &mut AuditEvent) -> Result<Target<'_>, ProxyError> {
        let name = self.collection_name(db, route, body, event).await?;
        let (rule_index, rule, mapping) = self.indexed_rule(&name)?;
        Ok(Target { located: db.locate(route, &name), rule, mapping, rule_index })
    }
}
