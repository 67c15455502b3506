//! The audit log: exactly one JSON line per request. Never the token.

use crate::config::AuditConfig;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::Mutex;

/// One request, as the audit log records it.
#[derive(Debug, Default, Serialize)]
pub struct AuditEvent {
    pub time: String,
    pub request_id: String,
    pub subject: Option<String>,
    pub roles: Vec<String>,
    pub backend: &'static str,
    /// enforce | shadow
    pub mode: &'static str,
    pub method: String,
    pub path: String,
    pub collection: Option<String>,
    pub operation: Option<&'static str>,
    pub action: Option<String>,
    /// allow | deny | filter | post_filter | error
    pub decision: &'static str,
    pub policy_version: Option<u64>,
    /// The filter ANDed into the request, in the database's language.
    pub filter: Option<serde_json::Value>,
    pub records_checked: Option<usize>,
    pub hits_returned: Option<usize>,
    pub hits_stripped: Option<usize>,
    pub status: u16,
    /// Shadow mode: the status enforce mode would have answered.
    pub enforced_status: Option<u16>,
    pub error: Option<&'static str>,
    pub message: Option<String>,
    pub latency_ms: f64,
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
        let mut line = match serde_json::to_vec(event) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("audit event not serialisable: {e}");
                return false;
            }
        };
        line.push(b'\n');
        let result = match &self.sink {
            Sink::Off => Ok(()),
            Sink::Stdout => std::io::stdout().lock().write_all(&line),
            Sink::File(file) => match file.lock() {
                Ok(mut f) => f.write_all(&line),
                Err(_) => Err(std::io::Error::other("audit file lock poisoned")),
            },
        };
        match result.and_then(|()| match &self.sink {
            Sink::File(file) => file
                .lock()
                .map_err(|_| std::io::Error::other("audit file lock poisoned"))
                .and_then(|mut f| f.flush()),
            _ => Ok(()),
        }) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("writing the audit log failed: {e}");
                false
            }
        }
    }
}
