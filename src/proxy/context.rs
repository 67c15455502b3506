//! One request's context: its audit event, filled in by every phase, and the guarantee that
//! every request leaves exactly one audit line and one count in the metrics — also a request
//! whose client goes away before its answer is ready (hyper then drops the handler mid-way;
//! the guard records it with status 499, nginx's "client closed request").

use super::error::{ErrorKind, ProxyError};
use super::gateway::Gateway;
use super::respond::{self, ProxyResponse};
use crate::audit::{AuditEvent, Decision};
use crate::backends::seam::Database;
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
    pub fn new(gateway: &'g Gateway, backend: &'static str, parts: &Parts) -> RequestCtx<'g> {
        RequestCtx {
            gateway,
            started: Instant::now(),
            answered: false,
            event: AuditEvent::new(
                uuid::Uuid::new_v4().to_string(),
                backend,
                Mode::from(gateway.forwarding),
                parts.method.to_string(),
                parts.uri.path().to_string(),
            ),
        }
    }

    /// The request's outcome as the client gets it, recorded: an error becomes the
    /// database's error response and sets the decision the same way in every mode; then the
    /// audit line (whose failure may replace the answer, per `audit.on_failure`) and the
    /// metrics.
    pub fn finish<D: Database>(mut self, db: &D, outcome: Result<ProxyResponse, ProxyError>) -> ProxyResponse {
        self.answered = true;
        let gateway = self.gateway;
        let event = &mut self.event;
        let mut response = match outcome {
            Ok(response) => response,
            Err(error) => {
                event.decision = error.decision(event.decision);
                event.error = Some(error.kind().as_str());
                event.message = Some(error.to_string());
                respond::error(db, &error)
            }
        };
        event.status = response.status().as_u16();
        let elapsed = self.started.elapsed().as_secs_f64();
        event.latency_ms = elapsed * 1000.0;
        if !gateway.audit.record(event) {
            gateway.metrics.audit_failure();
            if gateway.config.audit_on_failure == AuditOnFailure::Deny {
                response = respond::error(db, &ProxyError::AuditUnavailable);
                event.status = response.status().as_u16();
            }
        }
        record_metrics(gateway, event, elapsed);
        response
    }
}

fn record_metrics(gateway: &Gateway, event: &AuditEvent, seconds: f64) {
    gateway.metrics.observe_request(
        event.backend,
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
