//! The audit line, written by hand into a buffer that each thread reuses: the fields of
//! [`AuditEvent`] in their declared order, each as `serde_json` writes it, so the line is
//! byte for byte what `serde_json::to_vec(&event)` gives (a property test compares the two),
//! without a serializer walk or an allocation per request.

use super::{AuditEvent, Decision, Mode};
use serde::Serialize;
use std::cell::RefCell;
use std::io::Write as _;

thread_local! {
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// Calls `f` with the event's line (its JSON and a newline), written into this thread's
/// buffer. `Err` if a value could not be written (a filter with a non-string key cannot be).
pub fn with_line<R>(event: &AuditEvent, f: impl FnOnce(&[u8]) -> R) -> Result<R, serde_json::Error> {
    LINE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut line) => {
            line.clear();
            write(&mut line, event)?;
            line.push(b'\n');
            Ok(f(&line))
        }
        // Only if `f` itself wrote an audit line: give it a buffer of its own.
        Err(_) => {
            let mut line = Vec::with_capacity(1024);
            write(&mut line, event)?;
            line.push(b'\n');
            Ok(f(&line))
        }
    })
}

/// The event as compact JSON, as `serde_json::to_vec` writes it.
pub fn write(out: &mut Vec<u8>, e: &AuditEvent) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"{\"time\":");
    serde_json::to_writer(&mut *out, &e.time)?;
    field(out, "request_id", &e.request_id)?;
    field(out, "subject", &e.subject)?;
    field(out, "roles", &e.roles)?;
    field(out, "backend", e.backend)?;
    field(out, "protocol", e.protocol)?;
    raw_field(out, "mode", mode(e.mode));
    field(out, "method", &e.method)?;
    field(out, "path", &e.path)?;
    field(out, "collection", &e.collection)?;
    field(out, "operation", &e.operation)?;
    field(out, "action", &e.action)?;
    raw_field(out, "decision", decision(e.decision));
    number_field(out, "policy_version", e.policy_version);
    match &e.filter {
        None => raw_field(out, "filter", "null"),
        Some(filter) => field(out, "filter", filter)?,
    }
    number_field(out, "records_checked", e.records_checked);
    number_field(out, "hits_returned", e.hits_returned);
    number_field(out, "hits_stripped", e.hits_stripped);
    number_field(out, "status", Some(e.status));
    if let Some(code) = e.grpc_status {
        number_field(out, "grpc_status", Some(code));
    }
    number_field(out, "enforced_status", e.enforced_status);
    field(out, "error", &e.error)?;
    field(out, "message", &e.message)?;
    field(out, "latency_ms", &e.latency_ms)?;
    out.push(b'}');
    Ok(())
}

fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn field<T: Serialize + ?Sized>(out: &mut Vec<u8>, name: &str, value: &T) -> Result<(), serde_json::Error> {
    key(out, name);
    serde_json::to_writer(&mut *out, value)
}

fn raw_field(out: &mut Vec<u8>, name: &str, json: &str) {
    key(out, name);
    out.extend_from_slice(json.as_bytes());
}

fn number_field<N: std::fmt::Display>(out: &mut Vec<u8>, name: &str, value: Option<N>) {
    key(out, name);
    match value {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn mode(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "\"enforce\"",
        Mode::Shadow => "\"shadow\"",
    }
}

fn decision(decision: Decision) -> &'static str {
    match decision {
        Decision::None => "\"none\"",
        Decision::Allow => "\"allow\"",
        Decision::Deny => "\"deny\"",
        Decision::Filter => "\"filter\"",
        Decision::PostFilter => "\"post_filter\"",
        Decision::Error => "\"error\"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z/_-]{0,12}", "\\PC{0,6}", "[\"\\\\\u{0}-\u{1f}é]{0,4}"]
    }

    fn static_str() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["query", "get", "qdrant", "chroma", "bad_request", "é\"\n"])
    }

    fn filter() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(json!({"$and": [{"department": "FINANCE"}, {"region": {"$in": ["EMEA", "A\"B"]}}]})),
            Just(json!({"must": [{"key": "metadata.level", "range": {"lte": 3.5}}]})),
            any::<i64>().prop_map(|n| json!({"n": n, "f": (n as f64) / 7.0})),
        ]
    }

    prop_compose! {
        fn event()(
            (time, request_id, subject, roles, backend) in (text(), text(), prop::option::of(text()), prop::collection::vec(text(), 0..3), static_str()),
            (protocol, grpc_status) in (prop::sample::select(vec!["http", "grpc"]), prop::option::of(any::<i32>())),
            (shadow, method, path, collection, operation, action) in (any::<bool>(), text(), text(), prop::option::of(text()), prop::option::of(static_str()), prop::option::of(text())),
            (decision, policy_version, filter) in (0usize..6, prop::option::of(any::<u64>()), prop::option::of(filter())),
            (records_checked, hits_returned, hits_stripped, status, enforced_status) in (prop::option::of(any::<usize>()), prop::option::of(any::<usize>()), prop::option::of(any::<usize>()), any::<u16>(), prop::option::of(any::<u16>())),
            (error, message, latency_ms) in (prop::option::of(static_str()), prop::option::of(text()), prop_oneof![0.0f64..5000.0, any::<f64>().prop_filter("finite", |f| f.is_finite())]),
        ) -> AuditEvent {
            AuditEvent {
                time, request_id, subject, roles, backend, protocol,
                mode: if shadow { Mode::Shadow } else { Mode::Enforce },
                method, path, collection, operation, action,
                decision: [Decision::None, Decision::Allow, Decision::Deny, Decision::Filter, Decision::PostFilter, Decision::Error][decision],
                policy_version, filter, records_checked, hits_returned, hits_stripped, status, grpc_status, enforced_status,
                error, message, latency_ms,
            }
        }
    }

    proptest! {
        /// The hand-written line is serde_json's, byte for byte.
        #[test]
        fn writes_what_serde_json_writes(event in event()) {
            let mut line = b"earlier, ".to_vec();
            write(&mut line, &event).unwrap();
            prop_assert_eq!(String::from_utf8(line).unwrap(), format!("earlier, {}", serde_json::to_string(&event).unwrap()));
            let reused = with_line(&event, |l| l.to_vec()).unwrap();
            prop_assert_eq!(reused, format!("{}\n", serde_json::to_string(&event).unwrap()).into_bytes());
        }
    }
}
