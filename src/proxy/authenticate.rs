//! The authenticate phase: the caller's token found in the request, verified and mapped to a
//! principal. Every failure is counted by reason and answered 401; nothing is forwarded for
//! it. The token itself is returned too, for a PDP that asks for it; it is never logged.
//!
//! A token whose JWKS key must be fetched first is verified on the blocking pool: the
//! worker's thread serves other connections meanwhile ([`crate::workers`]).

use super::error::ProxyError;
use super::gateway::Gateway;
use crate::audit::AuditEvent;
use crate::authn::{token_from_headers, Authenticated, AuthnError};
use http::request::Parts;
use std::sync::Arc;

impl Gateway {
    pub(super) async fn authenticate<'p>(
        &self,
        parts: &'p Parts,
        event: &mut AuditEvent,
    ) -> Result<(Arc<Authenticated>, &'p str), ProxyError> {
        let verified = match token_from_headers(&parts.headers) {
            Ok(token) => self.verify(token).await.map(|caller| (caller, token)),
            Err(e) => Err(e),
        }
        .inspect_err(|e| {
            self.metrics.auth_failure(e.reason());
        });
        let (caller, token) = verified?;
        event.subject = Some(caller.principal().id.clone());
        event.roles.clone_from(&caller.principal().roles);
        Ok((caller, token))
    }

    async fn verify(&self, token: &str) -> Result<Arc<Authenticated>, AuthnError> {
        if let Some(caller) = self.authn.verify_token_now(token)? {
            return Ok(caller);
        }
        let (authn, token) = (Arc::clone(&self.authn), token.to_owned());
        tokio::task::spawn_blocking(move || authn.verify_token(&token))
            .await
            .unwrap_or(Err(AuthnError::KeysUnavailable))
    }
}
