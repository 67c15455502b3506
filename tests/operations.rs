//! Operating the real binary: policies changed under load, graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::chroma::DEFAULT_DB_PATH;
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::ChromaServer;

fn read_policy(department: &str) -> String {
    format!(
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: document\n  version: default\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      condition:\n        match:\n          expr: request.resource.attr.department == \"{department}\"\n"
    )
}

const COLLECTION_POLICY: &str = "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: collection\n  version: default\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user]\n";

fn ids(v: &Value) -> BTreeSet<String> {
    v["ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect()
}

/// Polls until `done` or a generous deadline (never asserts a duration).
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not happen");
}

#[test]
fn policies_switch_cleanly_under_load_and_a_broken_set_keeps_the_last_good_one() {
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(
        &col_id,
        &[
            ("f1".into(), json!({"department": "finance"}), vec![1.0, 0.0]),
            ("f2".into(), json!({"department": "finance"}), vec![0.9, 0.1]),
            ("h1".into(), json!({"department": "hr"}), vec![0.0, 1.0]),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("collection.yaml"), COLLECTION_POLICY).unwrap();
    std::fs::write(dir.path().join("document.yaml"), read_policy("finance")).unwrap();
    let mut options = VecgateOptions::chroma(chroma.url(), dir.path());
    options.policies_watch = true;
    let vecgate = Arc::new(VecgateServer::start(&options));
    let path = format!("{DEFAULT_DB_PATH}/collections/{col_id}/get");
    let alice = token("alice", &["user"], &json!({}));

    let finance: BTreeSet<String> = ["f1", "f2"].iter().map(|s| (*s).to_string()).collect();
    let hr: BTreeSet<String> = ["h1"].iter().map(|s| (*s).to_string()).collect();

    // Two clients read continuously while the policy changes.
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (vecgate, stop, answers, path, alice) =
                (vecgate.clone(), stop.clone(), answers.clone(), path.clone(), alice.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let (status, body) = vecgate.call("POST", &path, Some(&alice), Some(&json!({})));
                    mine.push((status, if status == 200 { ids(&body) } else { BTreeSet::new() }));
                }
                answers.lock().unwrap().push(mine);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(dir.path().join("document.yaml"), read_policy("hr")).unwrap();
    eventually("the new policy taking effect", || {
        let (_, body) = vecgate.call("POST", &path, Some(&alice), Some(&json!({})));
        ids(&body) == hr
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let answers = answers.lock().unwrap();
    let mut total = 0;
    for mine in answers.iter() {
        // Every answer is exactly one policy's, and once a client has seen the new policy it
        // never sees the old one again.
        let mut switched = false;
        for (status, got) in mine {
            assert_eq!(*status, 200);
            assert!(*got == finance || *got == hr, "a mixed answer: {got:?}");
            if *got == hr {
                switched = true;
            } else {
                assert!(!switched, "the old policy came back after the new one");
            }
        }
        assert!(switched, "a client never saw the new policy");
        total += mine.len();
    }
    assert!(total > 10, "only {total} requests were made under load");

    // A broken set is refused; the last good one keeps serving; the failure is counted.
    std::fs::write(dir.path().join("document.yaml"), "resourcePolicy: [this is not a policy").unwrap();
    eventually("the failed reload being counted", || {
        let (_, metrics) = vecgate.admin_get("/metrics");
        metrics.lines().any(|l| l.starts_with("vecgate_policy_reloads_total{outcome=\"error\"}") && !l.ends_with(" 0"))
    });
    let (status, body) = vecgate.call("POST", &path, Some(&alice), Some(&json!({})));
    assert_eq!((status, ids(&body)), (200, hr));
    let (_, metrics) = vecgate.admin_get("/metrics");
    assert!(metrics.contains("vecgate_policy_version_info{version=\"2\"} 1"), "{metrics}");
}

#[test]
fn sigterm_drains_in_flight_requests_and_stops_accepting() {
    // An upstream that answers after a pause, so a request is in flight when SIGTERM lands.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                std::thread::sleep(Duration::from_millis(1500));
                let body = "\"ok\"";
                let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            });
        }
    });
    let policies = support::repo_root().join("tests/fixtures/proxy/policies");
    let mut vecgate = VecgateServer::start(&VecgateOptions::chroma(&url, &policies));
    let base = vecgate.url().to_string();
    let in_flight = std::thread::spawn(move || {
        let response = ureq::get(&format!("{base}/api/v2/heartbeat")).call().unwrap();
        (response.status(), response.into_string().unwrap())
    });
    std::thread::sleep(Duration::from_millis(400));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &vecgate.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, body) = in_flight.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "\"ok\""), "the in-flight request was completed");
    let exit = vecgate.wait_exit(Duration::from_secs(30)).expect("vecgate exits after draining");
    assert!(exit.success(), "{exit:?}\n{}", vecgate.log_tail());
    assert!(ureq::get(&format!("{}/api/v2/heartbeat", vecgate.url())).call().is_err(), "still accepting after SIGTERM");
}

#[test]
fn idle_connections_are_dropped_after_the_header_timeout_and_free_their_slot() {
    let chroma = ChromaServer::start();
    let policies = support::repo_root().join("tests/fixtures/proxy/policies");
    let mut options = VecgateOptions::chroma(chroma.url(), &policies);
    options.extra_yaml = "limits:\n  max_connections: 1\n  header_timeout: 1s\n".into();
    let vecgate = VecgateServer::start(&options);

    // A client that connects and never sends a request holds the only connection slot…
    use std::io::Read;
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", vecgate.port())).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // …until the header timeout closes it; then the next client is served.
    let url = format!("{}/api/v2/heartbeat", vecgate.url());
    let waiting = std::thread::spawn(move || ureq::get(&url).call().map(|r| r.status()).map_err(|e| e.to_string()));
    let mut buf = [0u8; 64];
    let closed = matches!(idle.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "the idle connection was not closed");
    assert_eq!(waiting.join().unwrap().unwrap(), 200);

    // The same for a kept-alive connection that goes quiet after one request.
    use std::io::Write;
    let mut kept = std::net::TcpStream::connect(("127.0.0.1", vecgate.port())).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(kept, "GET /api/v2/heartbeat HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let n = kept.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let url = format!("{}/api/v2/heartbeat", vecgate.url());
    let waiting = std::thread::spawn(move || ureq::get(&url).call().map(|r| r.status()).map_err(|e| e.to_string()));
    let mut rest = Vec::new();
    let _ = kept.read_to_end(&mut rest);
    assert_eq!(waiting.join().unwrap().unwrap(), 200);
}
