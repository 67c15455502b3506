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

/// Sends SIGTERM and waits for a clean exit; the error says what happened instead.
fn stop_with_sigterm(vecgate: &mut VecgateServer) -> Result<(), String> {
    let killed = std::process::Command::new("kill").args(["-TERM", &vecgate.pid().to_string()]).status().unwrap();
    assert!(killed.success());
    match vecgate.wait_exit(Duration::from_secs(30)) {
        Some(exit) if exit.success() => Ok(()),
        Some(exit) => Err(format!("{exit:?}\n{}", vecgate.log_tail())),
        None => Err(format!("vecgate did not exit after draining\n{}", vecgate.log_tail())),
    }
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
    let stopped = std::thread::scope(|s| {
        let stopping = s.spawn(|| stop_with_sigterm(&mut vecgate));
        let (status, body) = in_flight.join().unwrap();
        assert_eq!((status, body.as_str()), (200, "\"ok\""), "the in-flight request was completed");
        stopping.join().unwrap()
    });
    stopped.unwrap();
    assert!(ureq::get(&format!("{}/api/v2/heartbeat", vecgate.url())).call().is_err(), "still accepting after SIGTERM");
}

/// A real Chroma and a vecgate in front of it with the proxy tests' policies, its options
/// adjusted by `adjust`.
fn on_chroma(adjust: impl FnOnce(&mut VecgateOptions)) -> (ChromaServer, VecgateServer) {
    let chroma = ChromaServer::start();
    let policies = support::repo_root().join("tests/fixtures/proxy/policies");
    let mut options = VecgateOptions::chroma(chroma.url(), &policies);
    adjust(&mut options);
    let vecgate = VecgateServer::start(&options);
    (chroma, vecgate)
}

#[test]
fn idle_connections_are_dropped_after_the_header_timeout_and_free_their_slot() {
    let (_chroma, vecgate) = on_chroma(|o| o.extra_yaml = "limits:\n  max_connections: 1\n  header_timeout: 1s\n".into());

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

/// vecgate's peak resident memory (VmHWM) in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Writes `head`, then one byte of `trickle` every 100 ms, until the server closes the
/// connection or 30 s pass. Returns what the server sent back and whether it closed.
fn trickle(port: u16, head: String, trickle: Vec<u8>) -> (String, bool) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let _ = stream.write_all(head.as_bytes());
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let mut bytes = trickle.iter().cycle();
    while started.elapsed() < Duration::from_secs(30) {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&answer).into_owned(), true),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (String::from_utf8_lossy(&answer).into_owned(), true),
        }
        if let Some(b) = bytes.next() {
            if stream.write_all(&[*b]).is_err() {
                // Closed by the server; collect whatever it answered first.
                let _ = stream.read_to_end(&mut answer);
                return (String::from_utf8_lossy(&answer).into_owned(), true);
            }
        }
    }
    (String::from_utf8_lossy(&answer).into_owned(), false)
}

#[test]
fn slow_flooding_and_oversized_clients_do_not_starve_others_or_grow_memory() {
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(
        &col_id,
        &[
            ("f1".into(), json!({"department": "finance", "level": 1, "owner": "alice", "region": "EMEA"}), vec![1.0, 0.0]),
            ("h1".into(), json!({"department": "hr", "level": 2, "owner": "bob", "region": "AMER"}), vec![0.0, 1.0]),
        ],
    );
    let policies = support::repo_root().join("tests/fixtures/proxy/policies");
    let mut options = VecgateOptions::chroma(chroma.url(), &policies);
    options.extra_yaml =
        "limits:\n  max_connections: 8\n  header_timeout: 1s\n  body_timeout: 1s\n  max_body_bytes: 65536\n".into();
    let vecgate = VecgateServer::start(&options);
    let alice = token("alice", &["user"], &json!({"department": "finance"}));
    let get_path = format!("{DEFAULT_DB_PATH}/collections/{col_id}/get");
    // Each check on a new connection, so it needs a free slot of its own.
    let served = |what: &str| {
        let started = Instant::now();
        let response = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build()
            .post(&format!("{}{get_path}", vecgate.url()))
            .set("Authorization", &format!("Bearer {alice}"))
            .send_json(json!({}))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(response.status(), 200, "{what}");
        let body: Value = response.into_json().unwrap();
        assert_eq!(ids(&body), BTreeSet::from(["f1".to_string()]), "{what}");
        started.elapsed()
    };
    served("before");
    let port = vecgate.port();

    // Slowloris: request heads trickled a byte at a time (4 connections), and bodies
    // trickled after a complete, authenticated head (2 connections).
    let mut slow = Vec::new();
    for i in 0..4 {
        let head = format!("GET /api/v2/heartbeat HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ");
        slow.push(("head", std::thread::spawn(move || trickle(port, head, b"abcdefgh".to_vec()))));
    }
    for _ in 0..2 {
        let head = format!(
            "POST {get_path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"ids\": ["
        );
        slow.push(("body", std::thread::spawn(move || trickle(port, head, b"\"f1\",".to_vec()))));
    }
    // While they hold 6 of the 8 slots, others are served.
    std::thread::sleep(Duration::from_millis(300));
    served("during slowloris");
    for (kind, handle) in slow {
        let (answer, closed) = handle.join().unwrap();
        assert!(closed, "a slow {kind} kept its connection for 30 s");
        if kind == "body" {
            assert!(answer.starts_with("HTTP/1.1 408"), "slow body answered {answer:?}");
            assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
        }
    }

    // A flood of silent connections, far more than the 8 slots: each is dropped after the
    // header timeout, and a client queued behind them is served.
    let flood: Vec<_> = (0..40).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    let waited = served("behind a flood of 40 silent connections");
    eprintln!("served behind the flood after {waited:?}");
    drop(flood);

    // Oversized bodies: declared (refused before reading) and chunked without a length (read
    // up to the limit, then refused). Four at once, 64 MiB each; memory stays bounded.
    let before = peak_rss_kib(vecgate.pid());
    let big: Vec<_> = (0..4)
        .map(|i| {
            let alice = alice.clone();
            let path = get_path.clone();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let framing = if i % 2 == 0 {
                    "Content-Length: 67108864".to_string()
                } else {
                    "Transfer-Encoding: chunked".to_string()
                };
                let _ = write!(
                    s,
                    "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\n\
                     Content-Type: application/json\r\n{framing}\r\n\r\n"
                );
                let chunk = vec![b' '; 1 << 20];
                for _ in 0..64 {
                    let ok = if i % 2 == 0 {
                        s.write_all(&chunk).is_ok()
                    } else {
                        write!(s, "{:x}\r\n", chunk.len()).is_ok() && s.write_all(&chunk).is_ok() && s.write_all(b"\r\n").is_ok()
                    };
                    if !ok {
                        break;
                    }
                }
                let mut answer = Vec::new();
                let _ = s.read_to_end(&mut answer);
                String::from_utf8_lossy(&answer).into_owned()
            })
        })
        .collect();
    for handle in big {
        let answer = handle.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "oversized body answered {answer:?}");
    }
    let after = peak_rss_kib(vecgate.pid());
    assert!(
        after.saturating_sub(before) < 16 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB for 4 × 64 MiB refused bodies"
    );
    served("after the oversized bodies");
}

/// `name{worker="…"}`'s value for each worker, in worker order.
fn per_worker(metrics: &str, name: &str, workers: usize) -> Vec<i64> {
    (1..=workers)
        .map(|w| {
            let series = format!("{name}{{worker=\"{w}\"}} ");
            let line = metrics.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("no {series}in:\n{metrics}"));
            line[series.len()..].trim().parse().unwrap()
        })
        .collect()
}

#[test]
fn connections_are_handed_to_the_workers_in_turn_and_counted_per_worker() {
    let (_chroma, vecgate) = on_chroma(|o| o.extra_yaml = "limits:\n  workers: 3\n".into());
    let scrape = || vecgate.admin_get("/metrics").1;
    let total = |m: &str| per_worker(m, "vecgate_worker_connections_total", 3);
    let open = |m: &str| per_worker(m, "vecgate_worker_connections_open", 3);
    // Start-up may have probed the port: count from here, once those probes have closed.
    eventually("the start-up probes to close", || open(&scrape()) == vec![0, 0, 0]);
    let before = total(&scrape());

    // Six kept-alive connections, each served one request: two per worker, whichever worker's
    // turn it was.
    use std::io::{Read, Write};
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", vecgate.port())).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(c, "GET /api/v2/heartbeat HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
        held.push(c);
    }
    let metrics = scrape();
    let added: Vec<i64> = total(&metrics).iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(added, vec![2, 2, 2], "connections per worker:\n{metrics}");
    assert_eq!(open(&metrics), vec![2, 2, 2]);

    // A closed connection no longer counts as open on its worker.
    drop(held);
    eventually("the closed connections to leave the open count", || open(&scrape()) == vec![0, 0, 0]);
}

#[test]
fn a_buffered_audit_log_holds_lines_until_its_interval_and_writes_them_all_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    // An interval no test waits for: the lines can only come from the shutdown's flush.
    let (_chroma, mut vecgate) = on_chroma(|o| o.audit_yaml = Some(format!("  path: {}\n  flush_interval: 1h\n", audit.display())));
    let lines = || std::fs::read_to_string(&audit).unwrap_or_default().lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).collect::<Vec<_>>();
    for _ in 0..3 {
        assert_eq!(ureq::get(&format!("{}/api/v2/heartbeat", vecgate.url())).call().unwrap().status(), 200);
    }
    assert_eq!(lines().len(), 0, "the lines wait in the buffer");
    stop_with_sigterm(&mut vecgate).unwrap();
    let written = lines();
    assert_eq!(written.len(), 3, "{written:?}");
    assert!(written.iter().all(|l| l["path"] == "/api/v2/heartbeat" && l["status"] == 200), "{written:?}");
}
