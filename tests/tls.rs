//! TLS: the real vecgate binary serving TLS (and mutual TLS) in front of real Chroma, its
//! certificate reloaded on SIGHUP, and an `https` upstream trusted through `upstream.tls.ca_file`.
//! Certificates are made at test time with rcgen. Plus in-process checks of
//! `TlsAcceptorSource` (loading, refusing bad files, reload keeping the last good one).

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::https_server::{Responder, TestHttpsServer};
use support::pki::{client_config, server_config, Issued, TestCa};
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::{repo_root, ChromaServer};
use tokio::runtime::Runtime;
use vecgate::config::ListenerTls;
use vecgate::server::tls::TlsAcceptorSource;
use vecgate::tls::TlsError;

const DEFAULT_DB_PATH: &str = "/api/v2/tenants/default_tenant/databases/default_database";
const H1: &[&[u8]] = &[b"http/1.1"];
const H2: &[&[u8]] = &[b"h2"];

fn policies() -> PathBuf {
    repo_root().join("tests/fixtures/proxy/policies")
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What one request over TLS got.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    /// The leaf certificate the server presented.
    peer_cert: CertificateDer<'static>,
    alpn: Option<Vec<u8>>,
}

/// One request to `127.0.0.1:port` over a fresh TLS connection with `config`, speaking
/// HTTP/2 when ALPN selects it, else HTTP/1.1. Any failure (handshake, alert, closed
/// connection) is `Err`.
fn https_call(
    rt: &Runtime,
    port: u16,
    config: Arc<ClientConfig>,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer, String> {
    rt.block_on(async {
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let (_, session) = tls.get_ref();
            let peer_cert = session
                .peer_certificates()
                .and_then(|chain| chain.first())
                .cloned()
                .ok_or("no peer certificate")?;
            let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
            let mut request = http::Request::builder()
                .method(method)
                .uri(format!("https://127.0.0.1:{port}{path}"));
            if let Some(t) = bearer {
                request = request.header("authorization", format!("Bearer {t}"));
            }
            let payload = match body {
                Some(b) => {
                    request = request.header("content-type", "application/json");
                    Bytes::from(serde_json::to_vec(b).unwrap())
                }
                None => Bytes::new(),
            };
            let is_h2 = alpn.as_deref() == Some(b"h2".as_slice());
            let request = if is_h2 {
                request.version(http::Version::HTTP_2)
            } else {
                request.header("host", format!("127.0.0.1:{port}"))
            }
            .body(Full::new(payload))
            .unwrap();
            let response = if is_h2 {
                let (mut sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await
                        .map_err(|e| format!("h2 handshake: {e}"))?;
                tokio::spawn(connection);
                sender.send_request(request).await
            } else {
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tls))
                        .await
                        .map_err(|e| format!("http1 handshake: {e}"))?;
                tokio::spawn(connection);
                sender.send_request(request).await
            }
            .map_err(|e| format!("request: {e}"))?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            Ok(Answer {
                status,
                body,
                peer_cert,
                alpn,
            })
        };
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .unwrap_or_else(|_| Err("no answer within 30s".into()))
    })
}

fn ids_of(v: &Value) -> BTreeSet<String> {
    v["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids in {v}"))
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

fn tls_yaml(cert: &Path, key: &Path, client_ca: Option<&Path>) -> String {
    let mut yaml = format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n",
        cert.display(),
        key.display()
    );
    if let Some(ca) = client_ca {
        yaml.push_str(&format!("  client_ca_file: {}\n", ca.display()));
    }
    yaml
}

/// Sends `bytes` in plain text to the port and returns what came back before the server
/// closed the connection (or 5 seconds passed).
fn plain_exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

fn send_sighup(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Polls `probe` until it returns true, for at most 20 seconds.
fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if probe() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not seen within 20s");
}

// ---------------------------------------------------------------------------------------------
// The binary in front of real Chroma
// ---------------------------------------------------------------------------------------------

#[test]
fn tls_and_mutual_tls_listeners_in_front_of_chroma() {
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(
        &col_id,
        &[
            (
                "f1".into(),
                json!({"department": "finance"}),
                vec![1.0, 0.0],
            ),
            ("h1".into(), json!({"department": "hr"}), vec![0.0, 1.0]),
        ],
    );
    let get_path = format!("{DEFAULT_DB_PATH}/collections/{col_id}/get");
    let alice = token("alice", &["user"], &json!({"department": "finance"}));

    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("vecgate test server CA");
    let (cert, key) = ca.server_cert("vecgate-server").write(dir.path(), "server");
    let rt = runtime();

    // --- TLS only.
    let mut opts = VecgateOptions::chroma(chroma.url(), &policies());
    opts.extra_yaml = tls_yaml(&cert, &key, None);
    let vecgate = VecgateServer::start(&opts);
    let port = vecgate.port();

    for alpn in [H1, H2] {
        let answer = https_call(
            &rt,
            port,
            client_config(&ca, None, alpn),
            "POST",
            &get_path,
            Some(&alice),
            Some(&json!({})),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", vecgate.log_tail()));
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(ids_of(&answer.body), set(&["f1"]));
        assert_eq!(answer.alpn.as_deref(), Some(alpn[0]));
    }
    // Authentication still applies over TLS.
    let answer = https_call(
        &rt,
        port,
        client_config(&ca, None, H1),
        "POST",
        &get_path,
        None,
        Some(&json!({})),
    )
    .unwrap();
    assert_eq!(answer.status, 401);

    // Plain HTTP on the TLS port gets no HTTP answer.
    let answer = plain_exchange(
        port,
        b"GET /api/v2/heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A client that does not trust the server's CA does not connect.
    let stranger = TestCa::new("unrelated CA");
    assert!(https_call(
        &rt,
        port,
        client_config(&stranger, None, H1),
        "GET",
        "/api/v2/heartbeat",
        None,
        None
    )
    .is_err());
    drop(vecgate);

    // --- Mutual TLS.
    let clients_ca = TestCa::new("vecgate test clients CA");
    let clients_ca_file = clients_ca.write_cert(dir.path(), "clients-ca.pem");
    let mut opts = VecgateOptions::chroma(chroma.url(), &policies());
    opts.extra_yaml = tls_yaml(&cert, &key, Some(&clients_ca_file));
    let vecgate = VecgateServer::start(&opts);
    let port = vecgate.port();

    let good_client = clients_ca.client_cert("app");
    for alpn in [H1, H2] {
        let answer = https_call(
            &rt,
            port,
            client_config(&ca, Some(&good_client), alpn),
            "POST",
            &get_path,
            Some(&alice),
            Some(&json!({})),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", vecgate.log_tail()));
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(ids_of(&answer.body), set(&["f1"]));
    }
    // No client certificate.
    let refused = https_call(
        &rt,
        port,
        client_config(&ca, None, H1),
        "GET",
        "/api/v2/heartbeat",
        None,
        None,
    );
    assert!(refused.is_err(), "{refused:?}");
    // A client certificate from another CA (here: the server CA).
    let foreign_client = ca.client_cert("intruder");
    let refused = https_call(
        &rt,
        port,
        client_config(&ca, Some(&foreign_client), H1),
        "GET",
        "/api/v2/heartbeat",
        None,
        None,
    );
    assert!(refused.is_err(), "{refused:?}");
    // The good client still works afterwards.
    let answer = https_call(
        &rt,
        port,
        client_config(&ca, Some(&good_client), H1),
        "GET",
        "/api/v2/heartbeat",
        None,
        None,
    )
    .unwrap();
    assert_eq!(answer.status, 200);
}

/// With `policies.watch: true`, SIGHUP reloads the policies and re-reads the certificate
/// files; a bad file keeps the certificate in use. No upstream is needed: only the
/// handshake matters.
#[test]
fn sighup_reloads_the_certificate_with_the_policies_and_keeps_it_on_bad_files() {
    check_sighup_reload(true);
}

/// With `policies.watch: false`, SIGHUP still re-reads the certificate files.
#[test]
fn sighup_reloads_the_certificate_without_the_policy_watcher() {
    check_sighup_reload(false);
}

fn check_sighup_reload(policies_watch: bool) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("reload CA");
    let first = ca.server_cert("first");
    let (cert, key) = first.write(dir.path(), "server");
    let dead_upstream = format!("http://127.0.0.1:{}", support::free_port());
    let mut opts = VecgateOptions::chroma(&dead_upstream, &policies());
    opts.extra_yaml = tls_yaml(&cert, &key, None);
    opts.policies_watch = policies_watch;
    let vecgate = VecgateServer::start(&opts);
    let rt = runtime();
    let served = || {
        https_call(
            &rt,
            vecgate.port(),
            client_config(&ca, None, H1),
            "GET",
            "/api/v2/heartbeat",
            None,
            None,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", vecgate.log_tail()))
        .peer_cert
    };
    assert_eq!(served(), first.cert_der);

    let second = ca.server_cert("second");
    second.write(dir.path(), "server");
    // Not before the signal: the files are not watched.
    assert_eq!(served(), first.cert_der);
    send_sighup(vecgate.pid());
    eventually("the second certificate", || served() == second.cert_der);

    // A certificate whose key is not in the key file: refused, the second one stays.
    let reloads_failed = || {
        vecgate
            .log_tail()
            .matches("TLS certificate reload failed")
            .count()
    };
    let failed_before = reloads_failed();
    std::fs::write(&cert, ca.server_cert("third").cert_pem).unwrap();
    send_sighup(vecgate.pid());
    eventually("the failed reload", || reloads_failed() > failed_before);
    assert_eq!(served(), second.cert_der);
    assert!(
        vecgate.log_tail().contains("vecgate listening"),
        "still running"
    );
}

// ---------------------------------------------------------------------------------------------
// An https upstream
// ---------------------------------------------------------------------------------------------

fn heartbeat_upstream(cert: &Issued) -> TestHttpsServer {
    let respond: Responder = Arc::new(|request| {
        if request.path_and_query == "/api/v2/heartbeat" {
            (200, json!({"nanosecond heartbeat": 1234567}).to_string())
        } else {
            (
                404,
                json!({"error": "NotFound", "message": "test upstream"}).to_string(),
            )
        }
    });
    TestHttpsServer::start(server_config(cert, &[b"h2", b"http/1.1"]), respond)
}

#[test]
fn https_upstream_is_trusted_through_its_ca_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("database CA");
    let upstream = heartbeat_upstream(&ca.server_cert("database"));
    let ca_file = ca.write_cert(dir.path(), "db-ca.pem");

    let mut opts = VecgateOptions::chroma(&upstream.url(), &policies());
    opts.upstream_ca_file = Some(ca_file);
    let vecgate = VecgateServer::start(&opts);
    let (status, body) = vecgate.call("GET", "/api/v2/heartbeat", None, None);
    assert_eq!(status, 200, "{body}\n{}", vecgate.log_tail());
    assert_eq!(body["nanosecond heartbeat"], 1234567);
    let seen = upstream.seen();
    assert!(seen.iter().any(|r| r.path_and_query == "/api/v2/heartbeat"));
    // ALPN offered HTTP/2 and the upstream chose it.
    assert!(
        seen.iter().all(|r| r.version == http::Version::HTTP_2),
        "{seen:?}"
    );
    drop(vecgate);

    // Without the CA file the bundled public roots do not vouch for a private CA: 502.
    let answered = upstream.hits();
    let vecgate = VecgateServer::start(&VecgateOptions::chroma(&upstream.url(), &policies()));
    let (status, body) = vecgate.call("GET", "/api/v2/heartbeat", None, None);
    assert_eq!(status, 502, "{body}");
    assert_eq!(upstream.hits(), answered, "no request reached the upstream");
    drop(vecgate);

    // A CA file of another CA replaces the roots just the same: 502.
    let other = TestCa::new("another CA");
    let mut opts = VecgateOptions::chroma(&upstream.url(), &policies());
    opts.upstream_ca_file = Some(other.write_cert(dir.path(), "other-ca.pem"));
    let vecgate = VecgateServer::start(&opts);
    let (status, body) = vecgate.call("GET", "/api/v2/heartbeat", None, None);
    assert_eq!(status, 502, "{body}");
    assert_eq!(upstream.hits(), answered);
}

// ---------------------------------------------------------------------------------------------
// TlsAcceptorSource in process
// ---------------------------------------------------------------------------------------------

/// Serves one handshake per connection with the source's acceptor at the time of accepting,
/// then closes; returns the port.
fn serve_handshakes(rt: &Runtime, source: Arc<TlsAcceptorSource>) -> u16 {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = source.acceptor();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let io = TokioIo::new(tls);
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"{}"),
                        )))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    port
}

#[test]
fn acceptor_source_refuses_bad_files_and_reload_keeps_the_last_good_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("in-process CA");
    let first = ca.server_cert("first");
    let (cert, key) = first.write(dir.path(), "server");
    let files = ListenerTls {
        cert_file: cert.clone(),
        key_file: key.clone(),
        client_ca_file: None,
    };

    // Bad sets of files are refused at load time, each with its own kind of error.
    let other = ca.server_cert("other");
    let (other_cert, other_key) = other.write(dir.path(), "other");
    let missing = dir.path().join("missing.pem");
    type ExpectedError = fn(&TlsError) -> bool;
    let cases: Vec<(ListenerTls, ExpectedError)> = vec![
        (
            ListenerTls {
                cert_file: missing.clone(),
                ..files.clone()
            },
            |e| matches!(e, TlsError::Read { .. }),
        ),
        (
            ListenerTls {
                cert_file: key.clone(),
                ..files.clone()
            },
            |e| matches!(e, TlsError::NoCertificate { .. }),
        ),
        (
            ListenerTls {
                key_file: cert.clone(),
                ..files.clone()
            },
            |e| matches!(e, TlsError::NoPrivateKey { .. }),
        ),
        (
            ListenerTls {
                key_file: other_key.clone(),
                ..files.clone()
            },
            |e| matches!(e, TlsError::Rustls { .. }),
        ),
        (
            ListenerTls {
                client_ca_file: Some(other_key.clone()),
                ..files.clone()
            },
            |e| matches!(e, TlsError::NoCertificate { .. }),
        ),
    ];
    for (bad, expected) in cases {
        match TlsAcceptorSource::load(&bad) {
            Err(e) => assert!(expected(&e), "{bad:?}: {e:?}"),
            Ok(_) => panic!("{bad:?} loaded"),
        }
    }

    let source = Arc::new(TlsAcceptorSource::load(&files).unwrap());
    assert!(!source.requires_client_certificates());
    let rt = runtime();
    let port = serve_handshakes(&rt, source.clone());
    let served = || {
        https_call(
            &rt,
            port,
            client_config(&ca, None, H1),
            "GET",
            "/",
            None,
            None,
        )
        .unwrap()
        .peer_cert
    };
    assert_eq!(served(), first.cert_der);

    // A mismatched pair on disk: reload fails, the first certificate stays.
    std::fs::copy(&other_cert, &cert).unwrap();
    assert!(matches!(source.reload(), Err(TlsError::Rustls { .. })));
    assert_eq!(served(), first.cert_der);
    // A missing key file: the same.
    std::fs::rename(&key, dir.path().join("moved.pem")).unwrap();
    assert!(matches!(source.reload(), Err(TlsError::Read { .. })));
    assert_eq!(served(), first.cert_der);
    // The matching pair: reload succeeds and new handshakes get it.
    std::fs::copy(&other_key, &key).unwrap();
    source.reload().unwrap();
    assert_eq!(served(), other.cert_der);
}
