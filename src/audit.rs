//! The audit log: exactly one JSON line per request. Never the token. The line is written by
//! [`line`] into a buffer each thread reuses; `AuditEvent`'s `Serialize` is the reference it
//! is tested against.

mod line;

pub use crate::config::Mode;
use crate::config::AuditConfig;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::os::unix::fs::FileTypeExt as _;
use std::sync::RwLock;

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

/// Where the lines go, and what keeps two threads' lines from mixing.
///
/// Workers write their lines concurrently (one runtime per core), so the sink must keep each
/// line whole without making every request wait for every other one's `write`. One
/// `write(2)` per line is whole where the kernel makes it so, and only there is the lock left
/// out:
/// - a regular file: the kernel serialises writes to one open file (the inode lock; with
///   `O_APPEND`, as a file sink is opened, each write lands at the end in one piece);
/// - a pipe or FIFO (a container's stdout): a write of at most `PIPE_BUF` bytes is never
///   interleaved with another. Longer lines take the lock exclusively, the short ones share
///   it, so a long line is never split by one of ours;
/// - anything else (a terminal, a socket such as journald's stream): every line under one
///   exclusive lock, as a plain logger would.
enum Sink {
    Off,
    Out { out: File, whole: Whole, lock: RwLock<()> },
}

/// Up to which length one `write(2)` on the sink is whole without our lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whole {
    Always,
    UpTo(usize),
    Never,
}

/// POSIX's minimum `PIPE_BUF`, and Linux's value.
const PIPE_BUF: usize = 4096;

impl Whole {
    fn of(out: &File) -> Whole {
        match out.metadata().map(|m| m.file_type()) {
            Ok(t) if t.is_file() => Whole::Always,
            Ok(t) if t.is_fifo() => Whole::UpTo(PIPE_BUF),
            _ => Whole::Never,
        }
    }
}

pub struct AuditLog {
    sink: Sink,
}

impl AuditLog {
    pub fn open(config: &AuditConfig) -> std::io::Result<AuditLog> {
        let out = match config {
            AuditConfig::Off => return Ok(AuditLog { sink: Sink::Off }),
            // Our own handle on standard output: std's `Stdout` would put its lock (and
            // its line buffer) in front of every write.
            AuditConfig::Stdout => File::from(std::io::stdout().as_fd().try_clone_to_owned()?),
            AuditConfig::File(path) => OpenOptions::new().create(true).append(true).open(path)?,
        };
        let whole = Whole::of(&out);
        Ok(AuditLog { sink: Sink::Out { out, whole, lock: RwLock::new(()) } })
    }

    /// Writes one line; `false` if it could not be written (reported on stderr, never to
    /// the client — the caller decides what the request gets, per `audit.on_failure`).
    pub fn record(&self, event: &AuditEvent) -> bool {
        if matches!(self.sink, Sink::Off) {
            return true;
        }
        let written = line::with_line(event, |line| match &self.sink {
            Sink::Off => Ok(()),
            Sink::Out { out, whole, lock } => write_whole(out, *whole, lock, line),
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

/// One line onto `out`, whole (see [`Sink`]). A lock poisoned by a panicking writer still
/// orders the writes, so it is used as it is.
fn write_whole(mut out: &File, whole: Whole, lock: &RwLock<()>, line: &[u8]) -> std::io::Result<()> {
    match whole {
        Whole::Always => out.write_all(line),
        Whole::UpTo(n) if line.len() <= n => {
            let _shared = lock.read().unwrap_or_else(|e| e.into_inner());
            out.write_all(line)
        }
        Whole::UpTo(_) | Whole::Never => {
            let _alone = lock.write().unwrap_or_else(|e| e.into_inner());
            out.write_all(line)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::Read as _;

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
        assert!(matches!(log.sink, Sink::Out { whole: Whole::Always, .. }));
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
            File::open(reading).unwrap().read_to_string(&mut text).unwrap();
            text
        });
        // Opening a FIFO for writing waits for its reader.
        let log = AuditLog::open(&AuditConfig::File(path)).unwrap();
        assert!(matches!(log.sink, Sink::Out { whole: Whole::UpTo(PIPE_BUF), .. }));
        write_from_threads(&log);
        drop(log);
        assert_whole(&reader.join().unwrap());
    }
}
