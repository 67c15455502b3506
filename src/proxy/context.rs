//! One request's context: its audit event, filled in by every phase, and the guarantee that
//! every request leaves exactly one audit line and one count in the metrics — also a request
//! whose client goes away before its answer is ready (hyper then drops the handler mid-way;
//! the guard records it with status 499, nginx's "client closed request").

use super::error::{ErrorKind, ProxyError};
use super::gateway::Gateway;
use super::respond::{self, ProxyResponse};
use crate::audit::{AuditEvent, Decision};
use crate::backends::seam::{Answer, Database, Protocol};
use crate::config::{AuditOnFailure, Mode};
use http::request::Parts;
use http::StatusCode;
use std::time::Instant;

/// The status recorded for a request its client abandoned.
pub const CLIENT_CLOSED: u16 = 499;

pub(super) struct RequestCtx<'g> {
    gateway: &'g Gateway,
    started: Instant,
    answered: bool,
    pub event: AuditEvent,
}

impl<'g> RequestCtx<'g> {
    pub fn new(gateway: &'g Gateway, backend: &'static str, protocol: Protocol, parts: &Parts) -> RequestCtx<'g> {
        let mut event = AuditEvent::new(
            uuid::Uuid::new_v4().to_string(),
            backend,
            Mode::from(gateway.forwarding),
            parts.method.to_string(),
            parts.uri.path().to_string(),
        );
        event.protocol = protocol.as_str();
        RequestCtx { gateway, started: Instant::now(), answered: false, event }
    }

    /// The request's outcome as the client gets it, recorded: an error becomes the
    /// database's error response and sets the decision the same way in every mode; then the
    /// audit line (whose failure may replace the answer, per `audit.on_failure`) and the
    /// metrics.
    pub fn finish<D: Database>(mut self, db: &D, outcome: Result<Answer, ProxyError>) -> ProxyResponse {
        self.answered = true;
        let gateway = self.gateway;
        let event = &mut self.event;
        let (answer, error) = match outcome {
            Ok(answer) => (respond::answered(answer), None),
            Err(error) => {
                event.decision = error.decision(event.decision);
                event.error = Some(error.kind().as_str());
                event.message = Some(error.to_string());
                (respond::error_answer(db, &error), Some(error))
            }
        };
        event.status = answer.status.as_u16();
        event.grpc_status = answer.trailers.as_deref().and_then(crate::grpc::read_status).map(|(code, ..)| code as i32);
        let elapsed = self.started.elapsed().as_secs_f64();
        event.latency_ms = elapsed * 1000.0;
        let (answer, error) = if !gateway.audit.record(event) {
            gateway.metrics.audit_failure();
            if gateway.config.audit_on_failure == AuditOnFailure::Deny {
                let refusal = ProxyError::AuditUnavailable;
                let answer = respond::error_answer(db, &refusal);
                event.status = answer.status.as_u16();
                event.grpc_status = answer.trailers.as_deref().and_then(crate::grpc::read_status).map(|(code, ..)| code as i32);
                (answer, Some(refusal))
            } else {
                (answer, error)
            }
        } else {
            (answer, error)
        };
        record_metrics(gateway, event, elapsed);
        let grpc = answer.trailers.is_some();
        let mut response = respond::render(answer);
        if let Some(error) = &error {
            respond::error_headers(error, grpc, &mut response);
        }
        response
    }
}

fn record_metrics(gateway: &Gateway, event: &AuditEvent, seconds: f64) {
    gateway.metrics.observe_request(
        event.backend,
        event.protocol,
        event.operation.unwrap_or("unclassified"),
        event.decision.as_str(),
        event.status,
        seconds,
    );
    // Hits stripped under post_filter_only are expected (counted as shortfall instead); any
    // other stripped hit means the pushed-down filter let something through. In shadow mode
    // the database answers the unfiltered original, so stripped hits are expected there too;
    // they are in the audit log, not in this alarm.
    if let Some(n) = event
        .hits_stripped
        .filter(|n| *n > 0 && event.decision != Decision::PostFilter && event.mode == Mode::Enforce)
    {
        gateway.metrics.hits_stripped(event.backend, n);
    }
}

impl Drop for RequestCtx<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let event = &mut self.event;
        event.status = CLIENT_CLOSED;
        event.error = Some(ErrorKind::ClientClosed.as_str());
        event.message = Some("the client closed the connection before the answer was ready".into());
        event.latency_ms = elapsed * 1000.0;
        if !self.gateway.audit.record(event) {
            self.gateway.metrics.audit_failure();
        }
        record_metrics(self.gateway, event, elapsed);
    }
}

/// The status a shadowed request would have had in enforce mode.
pub(super) fn enforced_status(verdict: &Result<StatusCode, ProxyError>) -> u16 {
    match verdict {
        Ok(status) => status.as_u16(),
        Err(e) => e.status().as_u16(),
    }
}
