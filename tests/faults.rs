//! Upstream faults: the database resets, stalls mid-body, answers garbage or an error. vecgate
//! answers 502/504 within its timeout (a database's own 5xx becomes 502, its message kept), never
//! hangs, and never returns a partially checked answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;
use support::chroma::DEFAULT_DB_PATH;
use support::vecgate::{token, VecgateOptions, VecgateServer};

const COLLECTION_ID: &str = "9a6f4bde-33f2-4d1c-9b5e-2f9a7f0c1d11";

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Headers promise a body; the connection is closed halfway through it.
    ResetMidBody,
    /// Headers and half the body, then nothing.
    StallMidBody,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with JSON of the wrong shape for a get answer.
    WrongShape,
    /// The database's own 500.
    ServerError,
}

/// An upstream that answers the collection lookup properly and misbehaves on record reads.
fn faulty_upstream(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || loop {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let mut length = 0usize;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 {
                        return;
                    }
                    if header == "\r\n" {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                if line.contains("/by-id/") {
                    let answer = json!({"id": COLLECTION_ID, "name": "docs"}).to_string();
                    write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}", answer.len()).unwrap();
                    continue;
                }
                let full = json!({"ids": ["f1", "h1"], "metadatas": [{"department": "finance"}, {"department": "hr"}],
                                  "documents": null, "embeddings": null, "uris": null, "include": ["metadatas"]})
                    .to_string();
                match fault {
                    Fault::ResetMidBody => {
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}", full.len(), &full[..full.len() / 2]);
                        return;
                    }
                    Fault::StallMidBody => {
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}", full.len(), &full[..full.len() / 2]);
                        std::thread::sleep(Duration::from_secs(60));
                        return;
                    }
                    Fault::Garbage => {
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\nnot json!");
                    }
                    Fault::WrongShape => {
                        let body = json!({"ids": ["f1", "h1"], "metadatas": [{"department": "hr"}]}).to_string();
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    }
                    Fault::ServerError => {
                        let body = json!({"error": "InternalError", "message": "boom"}).to_string();
                        let _ = write!(stream, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    }
                }
            });
        }
    });
    url
}

#[test]
fn upstream_faults_become_502_504_or_the_databases_own_error_never_a_partial_answer() {
    let policies = support::repo_root().join("tests/fixtures/proxy/policies");
    let alice = token("alice", &["user"], &json!({"department": "finance"}));
    let path = format!("{DEFAULT_DB_PATH}/collections/{COLLECTION_ID}/get");
    for (fault, want) in [
        (Fault::ResetMidBody, 502),
        (Fault::StallMidBody, 504),
        (Fault::Garbage, 502),
        (Fault::WrongShape, 502),
        (Fault::ServerError, 502),
    ] {
        let mut options = VecgateOptions::chroma(&faulty_upstream(fault), &policies);
        options.upstream_timeout = "2s";
        let vecgate = VecgateServer::start(&options);
        let (status, body) = vecgate.call("POST", &path, Some(&alice), Some(&json!({})));
        assert_eq!(status, want, "{fault:?}: {body}");
        if let Fault::ServerError = fault {
            // The database's own message, in its own error shape, behind the 502.
            assert_eq!(body, json!({"error": "InternalError", "message": "boom"}));
        }
        assert!(!body.to_string().contains("\"h1\""), "{fault:?}: part of an unchecked answer came back: {body}");
        // vecgate keeps serving afterwards.
        assert_eq!(vecgate.call("POST", &path, None, Some(&json!({}))).0, 401);
    }
}

#[test]
fn a_policy_directory_deleted_unreadable_or_half_written_keeps_the_last_good_set() {
    use vecgate::policy::planner::PlannerOptions;
    use vecgate::policy::store::PolicyStore;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("policies");
    std::fs::create_dir(&dir).unwrap();
    let good = std::fs::read_to_string(support::repo_root().join("tests/fixtures/proxy/policies/document.yaml")).unwrap();
    std::fs::write(dir.join("document.yaml"), &good).unwrap();
    let store = PolicyStore::open(&dir, PlannerOptions::default()).unwrap();
    assert_eq!(store.snapshot().version, 1);

    // Half-written: the file cut in the middle of a condition.
    let cut = good.find("request.principal.attr.department").unwrap() + "request.principal.attr.".len();
    std::fs::write(dir.join("document.yaml"), &good[..cut]).unwrap();
    assert!(store.reload().is_err());
    assert_eq!(store.snapshot().version, 1);

    // Unreadable: a directory where a policy file should be a file, and a non-UTF-8 file.
    std::fs::write(dir.join("document.yaml"), &good).unwrap();
    std::fs::write(dir.join("broken.yaml"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    assert!(store.reload().is_err());
    assert_eq!(store.snapshot().version, 1);
    std::fs::remove_file(dir.join("broken.yaml")).unwrap();

    // Deleted.
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(store.reload().is_err());
    assert_eq!(store.snapshot().version, 1, "the last good set keeps serving");
    let kept = store.snapshot();
    assert!(!kept.planner.planner().policy_set().resource_policies.is_empty());

    // Restored: the next reload takes it.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("document.yaml"), &good).unwrap();
    assert!(store.reload().is_ok());
    assert!(store.snapshot().version > 1);
}

#[test]
fn an_unwritable_audit_log_is_counted_and_denies_only_when_configured_to() {
    let chroma = support::ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    let policies = support::repo_root().join("tests/fixtures/proxy/policies");
    let alice = token("alice", &["user"], &json!({"department": "finance"}));
    let path = format!("{DEFAULT_DB_PATH}/collections/{col_id}/get");
    for (on_failure, want) in [("continue", 200), ("deny", 503)] {
        let mut options = VecgateOptions::chroma(chroma.url(), &policies);
        // Every write to /dev/full fails (ENOSPC), even for root.
        options.audit_yaml = Some(format!("  path: /dev/full\n  on_failure: {on_failure}\n"));
        let vecgate = VecgateServer::start(&options);
        let (status, body) = vecgate.call("POST", &path, Some(&alice), Some(&json!({})));
        assert_eq!(status, want, "{on_failure}: {body}");
        let (_, metrics) = vecgate.admin_get("/metrics");
        assert!(metrics.lines().any(|l| l.starts_with("vecgate_audit_failures_total ") && !l.ends_with(" 0")), "{metrics}");
    }
}

#[test]
fn a_request_its_client_abandons_is_still_audited_once() {
    let policies = support::repo_root().join("tests/fixtures/proxy/policies");
    let mut options = VecgateOptions::chroma(&faulty_upstream(Fault::StallMidBody), &policies);
    options.upstream_timeout = "30s";
    let vecgate = VecgateServer::start(&options);
    let alice = token("alice", &["user"], &json!({"department": "finance"}));
    let path = format!("{DEFAULT_DB_PATH}/collections/{COLLECTION_ID}/get");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", vecgate.port())).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    )
    .unwrap();
    // The database stalls; the client gives up and goes away.
    std::thread::sleep(Duration::from_millis(500));
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let abandoned = loop {
        let lines = vecgate.audit_lines();
        let found: Vec<_> = lines.into_iter().filter(|l| l["path"] == path.as_str()).collect();
        if !found.is_empty() || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(abandoned.len(), 1, "exactly one audit line for the abandoned request: {abandoned:?}");
    let line = &abandoned[0];
    assert_eq!(line["status"], 499, "{line}");
    assert_eq!(line["error"], "client_closed", "{line}");
    assert_eq!(line["subject"], "alice", "{line}");
    assert_eq!(line["decision"], "filter", "{line}");
    // It is not written a second time later, when the database's timeout would have ended it.
    std::thread::sleep(Duration::from_secs(1));
    let again = vecgate.audit_lines().into_iter().filter(|l| l["path"] == path.as_str()).count();
    assert_eq!(again, 1);
}

#[test]
fn a_stalled_database_gets_no_more_than_max_upstream_requests_at_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // A database that reads each request and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) > 0 {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest);
            });
        }
    });
    let policies = support::repo_root().join("tests/fixtures/proxy/policies");
    let mut options = VecgateOptions::chroma(&url, &policies);
    options.upstream_timeout = "3s";
    options.extra_yaml = "limits:\n  max_upstream_requests: 2\n".into();
    let vecgate = Arc::new(VecgateServer::start(&options));
    let root = token("root", &["admin"], &json!({}));
    // Six clients at once (the route needs no collection lookup: listing collections).
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (vecgate, root) = (vecgate.clone(), root.clone());
            std::thread::spawn(move || vecgate.call("GET", &format!("{DEFAULT_DB_PATH}/collections"), Some(&root), None).0)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let in_flight = seen.load(Ordering::SeqCst);
    // Joined before asserting, so a failure still stops vecgate (its last handle drops).
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(in_flight, 2, "the database was sent more than max_upstream_requests at once");
    assert_eq!(statuses, vec![504; 6]);
}
