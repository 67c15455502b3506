//! The audit log: exactly one JSON line per request. Never the token. The line is written by
//! [`line`] into a buffer each thread reuses; `AuditEvent`'s `Serialize` is the reference it
//! is tested against.

mod line;

pub use crate::config::Mode;
use crate::config::AuditConfig;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::Mutex;

/// What the policy concluded for a request (or, where it concluded nothing, what stopped it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Nothing decided yet (a request abandoned before its first decision).
    #[default]
    None,
    /// Allowed as asked.
    Allow,
    /// Refused (401, 403), answered as nothing, or answered as missing.
    Deny,
    /// Allowed with the plan's filter added.
    Filter,
    /// Allowed without a filter; every hit checked (`post_filter_only`).
    PostFilter,
    /// Stopped by something other than a decision: a malformed request, the database failing.
    Error,
}

impl Decision {
    /// The metric label and the audit log's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::None => "none",
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Filter => "filter",
            Decision::PostFilter => "post_filter",
            Decision::Error => "error",
        }
    }
}

/// One request, as the audit log records it.
#[derive(Debug, Serialize)]
pub struct AuditEvent {
    pub time: String,
    pub request_id: String,
    pub subject: Option<String>,
    pub roles: Vec<String>,
    pub backend: &'static str,
    /// `http` or `grpc`: how the request arrived.
    pub protocol: &'static str,
    pub mode: Mode,
    pub method: String,
    pub path: String,
    pub collection: Option<String>,
    pub operation: Option<&'static str>,
    pub action: Option<String>,
    pub decision: Decision,
    pub policy_version: Option<u64>,
    /// The filter ANDed into the request, in the database's language.
    pub filter: Option<serde_json::Value>,
    pub records_checked: Option<usize>,
    pub hits_returned: Option<usize>,
    pub hits_stripped: Option<usize>,
    /// The HTTP status answered; for a gRPC call, its status's HTTP equivalent.
    pub status: u16,
    /// A gRPC call's status code (`grpc-status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<i32>,
    /// Shadow mode: the status enforce mode would have answered.
    pub enforced_status: Option<u16>,
    pub error: Option<&'static str>,
    pub message: Option<String>,
    pub latency_ms: f64,
}

impl AuditEvent {
    /// The event of a request as it arrives: nothing decided, nothing answered.
    pub fn new(request_id: String, backend: &'static str, mode: Mode, method: String, path: String) -> AuditEvent {
        AuditEvent {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            request_id,
            subject: None,
            roles: Vec::new(),
            backend,
            protocol: "http",
            mode,
            method,
            path,
            collection: None,
            operation: None,
            action: None,
            decision: Decision::None,
            policy_version: None,
            filter: None,
            records_checked: None,
            hits_returned: None,
            hits_stripped: None,
            status: 0,
            grpc_status: None,
            enforced_status: None,
            error: None,
            message: None,
            latency_ms: 0.0,
        }
    }
}

enum Sink {
    Off,
    Stdout,
    File(Mutex<File>),
}

pub struct AuditLog {
    sink: Sink,
}

impl AuditLog {
    pub fn open(config: &AuditConfig) -> std::io::Result<AuditLog> {
        let sink = match config {
            AuditConfig::Off => Sink::Off,
            AuditConfig::Stdout => Sink::Stdout,
            AuditConfig::File(path) => Sink::File(Mutex::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            )),
        };
        Ok(AuditLog { sink })
    }

    /// Writes one line; `false` if it could not be written (reported on stderr, never to
    /// the client — the caller decides what the request gets, per `audit.on_failure`).
    pub fn record(&self, event: &AuditEvent) -> bool {
        if matches!(self.sink, Sink::Off) {
            return true;
        }
        let written = line::with_line(event, |line| match &self.sink {
            Sink::Off => Ok(()),
            Sink::Stdout => std::io::stdout().lock().write_all(line),
            Sink::File(file) => match file.lock() {
                Ok(mut f) => f.write_all(line).and_then(|()| f.flush()),
                Err(_) => Err(std::io::Error::other("audit file lock poisoned")),
            },
        });
        let result = match written {
            Ok(result) => result,
            Err(e) => {
                tracing::error!("audit event not serialisable: {e}");
                return false;
            }
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("writing the audit log failed: {e}");
                false
            }
        }
    }
}
