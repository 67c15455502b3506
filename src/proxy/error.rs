//! Everything that stops a request, as one typed error. Phases return it; errors of the parts
//! they call (authentication, a database module, the HTTP client) convert into it by `From`,
//! and only [`super::respond`] turns it into an answer. Messages never contain tokens.

use super::upstream::UpstreamError;
use crate::audit::Decision;
use crate::authn::AuthnError;
use crate::backends::seam::Answer;
use crate::backends::seam::Refusal;
use crate::backends::{RouteError, TranslateError};
use crate::json::JsonError;
use crate::policy::pdp::PdpError;
use http::StatusCode;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("authentication failed: {0}")]
    Unauthenticated(#[from] AuthnError),
    #[error("vecgate does not allow this route: {0}")]
    UnknownRoute(String),
    #[error("access denied: {0}")]
    Forbidden(String),
    #[error("access denied: the policy's condition {0}; no filter was sent to the database")]
    Untranslatable(TranslateError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unsupported media: {0}")]
    UnsupportedMedia(String),
    #[error("request body larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    #[error("the database did not answer: {0}")]
    UpstreamUnavailable(String),
    #[error("the database did not answer within {0:?}")]
    UpstreamTimeout(Duration),
    #[error("the database's answer could not be checked: {0}")]
    UpstreamUnreadable(Box<dyn std::error::Error + Send + Sync>),
    /// An answer in the database's own words that goes to the client as it is: the database's
    /// refusal of a lookup vecgate made (a missing collection), or the answer vecgate gives for
    /// a record that must look missing.
    #[error("the database answered {}", .0.status)]
    Database(Answer),
    /// The policy source (a Cerbos PDP) gave no usable answer: nothing is decided without one.
    #[error("no decision: {0}")]
    PolicySource(#[from] PdpError),
    /// `audit.on_failure: deny` and the audit line could not be written.
    #[error("the audit log cannot be written; vecgate answers nothing it cannot audit")]
    AuditUnavailable,
    #[error("configuration: {0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A bounded name for each kind of error: the audit log's `error` and a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Unauthenticated,
    UnknownRoute,
    Forbidden,
    Untranslatable,
    BadRequest,
    UnsupportedMedia,
    PayloadTooLarge,
    BodyTimeout,
    UpstreamUnavailable,
    UpstreamTimeout,
    UpstreamUnreadable,
    Database,
    PolicySource,
    AuditUnavailable,
    Config,
    Internal,
    /// Not a [`ProxyError`]: the client went away before its answer was ready.
    ClientClosed,
}

impl ErrorKind {
    /// Every kind, for metrics exported before the first error of each.
    pub const ALL: [ErrorKind; 17] = [
        ErrorKind::Unauthenticated,
        ErrorKind::UnknownRoute,
        ErrorKind::Forbidden,
        ErrorKind::Untranslatable,
        ErrorKind::BadRequest,
        ErrorKind::UnsupportedMedia,
        ErrorKind::PayloadTooLarge,
        ErrorKind::BodyTimeout,
        ErrorKind::UpstreamUnavailable,
        ErrorKind::UpstreamTimeout,
        ErrorKind::UpstreamUnreadable,
        ErrorKind::Database,
        ErrorKind::PolicySource,
        ErrorKind::AuditUnavailable,
        ErrorKind::Config,
        ErrorKind::Internal,
        ErrorKind::ClientClosed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::UnknownRoute => "unknown_route",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Untranslatable => "untranslatable",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::UnsupportedMedia => "unsupported_media",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::BodyTimeout => "body_timeout",
            ErrorKind::UpstreamUnavailable => "upstream_unavailable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::UpstreamUnreadable => "upstream_unreadable",
            ErrorKind::Database => "database",
            ErrorKind::PolicySource => "policy_source",
            ErrorKind::AuditUnavailable => "audit_unavailable",
            ErrorKind::Config => "config",
            ErrorKind::Internal => "internal",
            ErrorKind::ClientClosed => "client_closed",
        }
    }
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ProxyError::UnknownRoute(_) | ProxyError::Forbidden(_) | ProxyError::Untranslatable(_) => {
                StatusCode::FORBIDDEN
            }
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProxyError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::UpstreamUnavailable(_) | ProxyError::UpstreamUnreadable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Database(answer) => super::respond::gateway_status(answer.status),
            ProxyError::Config(_) | ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::PolicySource(_) | ProxyError::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            ProxyError::Unauthenticated(_) => ErrorKind::Unauthenticated,
            ProxyError::UnknownRoute(_) => ErrorKind::UnknownRoute,
            ProxyError::Forbidden(_) => ErrorKind::Forbidden,
            ProxyError::Untranslatable(_) => ErrorKind::Untranslatable,
            ProxyError::BadRequest(_) => ErrorKind::BadRequest,
            ProxyError::UnsupportedMedia(_) => ErrorKind::UnsupportedMedia,
            ProxyError::PayloadTooLarge(_) => ErrorKind::PayloadTooLarge,
            ProxyError::BodyTimeout(_) => ErrorKind::BodyTimeout,
            ProxyError::UpstreamUnavailable(_) => ErrorKind::UpstreamUnavailable,
            ProxyError::UpstreamTimeout(_) => ErrorKind::UpstreamTimeout,
            ProxyError::UpstreamUnreadable(_) => ErrorKind::UpstreamUnreadable,
            ProxyError::Database(_) => ErrorKind::Database,
            ProxyError::PolicySource(_) => ErrorKind::PolicySource,
            ProxyError::AuditUnavailable => ErrorKind::AuditUnavailable,
            ProxyError::Config(_) => ErrorKind::Config,
            ProxyError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The decision the audit log records for a request this error stopped, in every mode:
    /// a decision already made that refused the request stays; otherwise vecgate's refusals
    /// (401, 403) are `deny` and everything else is `error`.
    pub fn decision(&self, so_far: Decision) -> Decision {
        match (so_far, self.status()) {
            (Decision::Deny, _) => Decision::Deny,
            (_, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Decision::Deny,
            _ => Decision::Error,
        }
    }
}

impl From<UpstreamError> for ProxyError {
    fn from(e: UpstreamError) -> ProxyError {
        match e {
            UpstreamError::Unavailable(why) => ProxyError::UpstreamUnavailable(why),
            UpstreamError::Timeout(after) => ProxyError::UpstreamTimeout(after),
            UpstreamError::Config(why) => ProxyError::Config(why),
            UpstreamError::Internal(why) => ProxyError::Internal(why),
        }
    }
}

impl From<RouteError> for ProxyError {
    fn from(e: RouteError) -> ProxyError {
        ProxyError::BadRequest(e.to_string())
    }
}

impl From<TranslateError> for ProxyError {
    fn from(e: TranslateError) -> ProxyError {
        ProxyError::Untranslatable(e)
    }
}

impl From<JsonError> for ProxyError {
    fn from(e: JsonError) -> ProxyError {
        ProxyError::BadRequest(format!("the body is not acceptable JSON: {e}"))
    }
}

impl From<Refusal> for ProxyError {
    fn from(e: Refusal) -> ProxyError {
        match e {
            Refusal::Malformed(why) => ProxyError::BadRequest(why),
            Refusal::Unsupported(why) => ProxyError::UnsupportedMedia(why),
            Refusal::Forbidden(why) => ProxyError::Forbidden(why),
        }
    }
}

impl ProxyError {
    /// A database module's refusal of a request (400 or 403).
    pub fn refused<E: Into<Refusal>>(e: E) -> ProxyError {
        ProxyError::from(e.into())
    }

    /// An answer of the database that cannot be read, so cannot be checked: 502, fail closed.
    pub fn unreadable<E: std::error::Error + Send + Sync + 'static>(e: E) -> ProxyError {
        ProxyError::UpstreamUnreadable(Box::new(e))
    }
}
