//! The authenticate phase: the caller's token found in the request, verified and mapped to a
//! principal. Every failure is counted by reason and answered 401; nothing is forwarded for
//! it. The token itself is returned too, for a PDP that asks for it; it is never logged.

use super::error::ProxyError;
use super::gateway::Gateway;
use crate::audit::AuditEvent;
use crate::authn::{token_from_headers, Authenticated};
use http::request::Parts;
use std::sync::Arc;

impl Gateway {
    pub(super) fn authenticate<'p>(
        &self,
        parts: &'p Parts,
        event: &mut AuditEvent,
    ) -> Result<(Arc<Authenticated>, &'p str), ProxyError> {
        let verified = token_from_headers(&parts.headers)
            .and_then(|token| Ok((self.authn.verify_token(token)?, token)))
            .inspect_err(|e| {
                self.metrics.auth_failure(e.reason());
            });
        let (caller, token) = verified?;
        event.subject = Some(caller.principal().id.clone());
        event.roles.clone_from(&caller.principal().roles);
        Ok((caller, token))
    }
}
