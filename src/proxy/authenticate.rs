//! The authenticate phase: the caller's token verified and mapped to a principal. Every
//! failure is counted by reason and answered 401; nothing is forwarded for it.

use super::error::ProxyError;
use super::gateway::Gateway;
use crate::audit::AuditEvent;
use crate::authn::Authenticated;
use http::request::Parts;
use std::sync::Arc;

impl Gateway {
    pub(super) fn authenticate(&self, parts: &Parts, event: &mut AuditEvent) -> Result<Arc<Authenticated>, ProxyError> {
        let caller = self.authn.authenticate(&parts.headers).inspect_err(|e| {
            self.metrics.auth_failure(e.reason());
        })?;
        event.subject = Some(caller.principal().id.clone());
        event.roles.clone_from(&caller.principal().roles);
        Ok(caller)
    }
}
