//! A small HTTPS server in the test process (tokio-rustls + hyper), answering every request
//! through a closure. It counts the requests it answered and can be taken "down": then new
//! connections are closed at once and requests on open ones get 503 and `Connection: close`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A request as the responder sees it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path_and_query: String,
    pub version: http::Version,
    pub body: Bytes,
}

/// Status, content type and body for a request.
pub type Responder = Arc<dyn Fn(&SeenRequest) -> (u16, String) + Send + Sync>;

pub struct TestHttpsServer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestHttpsServer {
    /// Listens on a free loopback port with `config`; `respond` answers with JSON.
    pub fn start(config: Arc<ServerConfig>, respond: Responder) -> TestHttpsServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let state = (hits.clone(), down.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let acceptor = TlsAcceptor::from(config);
                let (hits, down, seen) = state;
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    if down.load(Ordering::SeqCst) {
                        drop(stream);
                        continue;
                    }
                    let acceptor = acceptor.clone();
                    let (hits, down, seen, respond) =
                        (hits.clone(), down.clone(), seen.clone(), respond.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let service = service_fn(move |request: http::Request<Incoming>| {
                            let (hits, down, seen, respond) =
                                (hits.clone(), down.clone(), seen.clone(), respond.clone());
                            async move {
                                let method = request.method().to_string();
                                let version = request.version();
                                let path_and_query = request
                                    .uri()
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default();
                                let body = request
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let builder = http::Response::builder()
                                    .header("content-type", "application/json");
                                if down.load(Ordering::SeqCst) {
                                    return Ok::<_, Infallible>(
                                        builder
                                            .status(503)
                                            .header("connection", "close")
                                            .body(Full::new(Bytes::from_static(b"{}")))
                                            .unwrap(),
                                    );
                                }
                                let request = SeenRequest {
                                    method,
                                    path_and_query,
                                    version,
                                    body,
                                };
                                let (status, text) = respond(&request);
                                seen.lock().unwrap().push(request);
                                hits.fetch_add(1, Ordering::SeqCst);
                                Ok(builder
                                    .status(status)
                                    .body(Full::new(Bytes::from(text)))
                                    .unwrap())
                            }
                        });
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
        });
        TestHttpsServer {
            addr,
            hits,
            down,
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far (not counting those refused while down).
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Every request answered so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl Drop for TestHttpsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
