//! The audit log: exactly one JSON line per request. Never the token. The line is written by
//! [`line`] into a buffer each thread reuses; `AuditEvent`'s `Serialize` is the reference it
//! is tested against.

mod buffer;
mod line;
mod sink;

use buffer::Buffered;
pub use buffer::LostLines;
use sink::Sink;

pub use crate::config::Mode;
use crate::config::AuditConfig;
use serde::Serialize;
use std::time::Duration;

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

/// The audit log: a sink, written to line by line or through a buffer.
pub struct AuditLog {
    output: Output,
}

enum Output {
    Off,
    /// Each line written as its request ends.
    Direct(Sink),
    /// Lines gathered and written by [`Buffered`]'s flusher.
    Buffered(Buffered),
}

impl AuditLog {
    /// Each line written as its request ends (`audit.flush_interval` absent).
    pub fn open(config: &AuditConfig) -> std::io::Result<AuditLog> {
        let output = match Sink::open(config)? {
            None => Output::Off,
            Some(sink) => Output::Direct(sink),
        };
        Ok(AuditLog { output })
    }

    /// Lines gathered in a buffer and written at least every `interval` and whenever the
    /// buffer fills (`audit.flush_interval`: Envoy's file access log, nginx's
    /// `access_log … buffer= flush=`). A write that fails loses the lines it held: `lost` is
    /// told how many.
    pub fn open_buffered(config: &AuditConfig, interval: Duration, lost: LostLines) -> std::io::Result<AuditLog> {
        let output = match Sink::open(config)? {
            None => Output::Off,
            Some(sink) => Output::Buffered(Buffered::start(sink, interval, lost)?),
        };
        Ok(AuditLog { output })
    }

    /// Records one line; `false` if it could not be written (reported on stderr, never to
    /// the client — the caller decides what the request gets, per `audit.on_failure`). A
    /// buffered log answers `true` once the line is in the buffer; lines lost later are
    /// reported to its [`LostLines`].
    pub fn record(&self, event: &AuditEvent) -> bool {
        let written = match &self.output {
            Output::Off => return true,
            Output::Direct(sink) => line::with_line(event, |line| sink.write(line)),
            Output::Buffered(buffered) => line::with_line(event, |line| {
                buffered.push(line);
                Ok(())
            }),
        };
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

    /// Writes what a buffered log holds now (at shutdown); nothing for the others.
    pub fn flush(&self) {
        if let Output::Buffered(buffered) = &self.output {
            buffered.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::Read as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Lines of 100 bytes to 20 KiB, so a pipe sees lines on both sides of `PIPE_BUF`.
    fn event(thread: usize, n: usize) -> AuditEvent {
        let path = "/p".repeat(50 + (thread * 31 + n * 17) % 10_000);
        AuditEvent::new(format!("{thread}-{n}"), "chroma", Mode::Enforce, "GET".into(), path)
    }

    /// Eight threads write 200 lines each at once.
    fn write_from_threads(log: &AuditLog) {
        std::thread::scope(|w| {
            for t in 0..8 {
                w.spawn(move || (0..200).for_each(|n| assert!(log.record(&event(t, n)))));
            }
        });
    }

    /// Every line is one whole event, and every event is there once.
    fn assert_whole(text: &str) {
        let mut ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a whole line")["request_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        let mut expected: Vec<String> = (0..8).flat_map(|t| (0..200).map(move |n| format!("{t}-{n}"))).collect();
        expected.sort();
        assert_eq!(ids, expected);
    }

    #[test]
    fn a_file_sink_needs_no_lock_and_keeps_lines_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&AuditConfig::File(path.clone())).unwrap();
        assert!(matches!(&log.output, Output::Direct(sink) if sink.whole() == sink::Whole::Always));
        write_from_threads(&log);
        assert_whole(&std::fs::read_to_string(&path).unwrap());
    }

    #[test]
    fn a_fifo_sink_keeps_short_and_long_lines_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.fifo");
        assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
        let reading = path.clone();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            std::fs::File::open(reading).unwrap().read_to_string(&mut text).unwrap();
            text
        });
        // Opening a FIFO for writing waits for its reader.
        let log = AuditLog::open(&AuditConfig::File(path)).unwrap();
        assert!(matches!(&log.output, Output::Direct(sink) if sink.whole() == sink::Whole::UpTo(sink::PIPE_BUF)));
        write_from_threads(&log);
        drop(log);
        assert_whole(&reader.join().unwrap());
    }

    fn counter() -> (Arc<AtomicUsize>, LostLines) {
        let lost = Arc::new(AtomicUsize::new(0));
        let counted = lost.clone();
        (lost, Box::new(move |n| {
            counted.fetch_add(n, Ordering::SeqCst);
        }))
    }

    fn lines_in(path: &std::path::Path) -> usize {
        std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
    }

    #[test]
    fn a_buffered_log_writes_on_flush_when_full_and_when_dropped_and_keeps_lines_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (lost, on_lost) = counter();
        // An interval no test waits for: only a flush, a full buffer or the drop write.
        let log = AuditLog::open_buffered(&AuditConfig::File(path.clone()), Duration::from_secs(3600), on_lost).unwrap();
        assert!(log.record(&event(0, 0)));
        assert_eq!(lines_in(&path), 0, "held in the buffer");
        log.flush();
        assert_eq!(lines_in(&path), 1);
        // Lines of 100 B to 20 KiB from eight threads overflow the 64 KiB buffer many times.
        std::fs::remove_file(&path).unwrap();
        let log = AuditLog::open_buffered(&AuditConfig::File(path.clone()), Duration::from_secs(3600), counter().1).unwrap();
        write_from_threads(&log);
        assert!(lines_in(&path) > 0, "a full buffer is written without waiting");
        drop(log);
        assert_whole(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(lost.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_buffered_log_is_written_every_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open_buffered(&AuditConfig::File(path.clone()), Duration::from_millis(50), counter().1).unwrap();
        assert!(log.record(&event(0, 0)));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while lines_in(&path) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(lines_in(&path), 1, "the flusher wrote the line without a flush call");
    }

    #[test]
    fn lines_a_failed_write_loses_are_counted() {
        // /dev/full refuses every write (ENOSPC).
        let full = AuditConfig::File("/dev/full".into());
        let direct = AuditLog::open(&full).unwrap();
        assert!(!direct.record(&event(0, 0)), "a direct write reports its own failure");
        let (lost, on_lost) = counter();
        let buffered = AuditLog::open_buffered(&full, Duration::from_secs(3600), on_lost).unwrap();
        for n in 0..3 {
            assert!(buffered.record(&event(0, n)), "accepted into the buffer");
        }
        buffered.flush();
        assert_eq!(lost.load(Ordering::SeqCst), 3);
        assert!(buffered.record(&event(0, 3)));
        drop(buffered);
        assert_eq!(lost.load(Ordering::SeqCst), 4, "the drop's write is counted too");
    }
}
