//! Listeners: the proxy port, the gRPC port (Qdrant's gRPC API, `grpc_listen`) and the admin
//! port, connection limits (`limits.max_connections` across the proxy and gRPC ports),
//! graceful shutdown, and inbound TLS ([`tls`], the same for the proxy and gRPC ports).
//!
//! The proxy port is served by one single-threaded runtime per worker ([`crate::workers`],
//! `limits.workers`): a connection stays on the worker that accepted it. The gRPC port, whose
//! HTTP/2 connections multiplex many calls, and the admin port are served by the process's
//! shared multi-threaded runtime.
//!
//! The gRPC port speaks HTTP/2 only (prior knowledge, or ALPN `h2` over TLS) and hands every
//! call to [`Gateway::handle_grpc`]: the same pipeline as the proxy port's requests, through
//! the database's gRPC face.

mod admin;
mod explain;
pub mod tls;

use crate::metrics::OpenConnection;
use crate::proxy::{Gateway, ProxyResponse};
use crate::workers;
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tls::TlsAcceptorSource;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// How long in-flight requests may take to finish after a shutdown signal.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start proxy worker {index}: {source}")]
    Worker { index: usize, source: std::io::Error },
    #[error("every proxy worker has stopped")]
    WorkersStopped,
}

/// Bound listeners, ready to serve.
pub struct Listeners {
    pub proxy: TcpListener,
    pub admin: Option<TcpListener>,
    pub grpc: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(proxy: SocketAddr, admin: Option<SocketAddr>, grpc: Option<SocketAddr>) -> Result<Listeners, ServerError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })
        };
        let proxy = bind(proxy).await?;
        let admin = match admin {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let grpc = match grpc {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        Ok(Listeners { proxy, admin, grpc })
    }
}

/// Which protocol a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Face {
    /// HTTP/1.1 and HTTP/2: the database's HTTP API.
    Http,
    /// HTTP/2 only: the database's gRPC API.
    Grpc,
}

/// Serves until `shutdown` turns true, then stops accepting and drains open connections
/// for at most [`DRAIN_DEADLINE`].
///
/// With `tls`, every proxy connection must complete a TLS handshake within
/// `limits.header_timeout` before HTTP starts (the admin listener stays plain HTTP).
///
/// Fails, before accepting anything, if a proxy worker cannot be started, and later if every
/// worker has stopped: a gateway that accepts connections and serves none would look alive.
pub async fn serve(
    gateway: Arc<Gateway>,
    listeners: Listeners,
    tls: Option<Arc<TlsAcceptorSource>>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ServerError> {
    let permits = Arc::new(Semaphore::new(gateway.config().limits.max_connections));
    let (all_drained, drained) = watch::channel(false);
    let workers = start_workers(&gateway, &tls, &shutdown, &drained)?;
    let admin = listeners.admin.map(|admin| tokio::spawn(admin::serve(gateway.clone(), admin, shutdown.clone())));
    let http = accept_on_workers(workers, listeners.proxy, permits.clone(), shutdown.clone(), all_drained);
    let served = match listeners.grpc {
        Some(grpc) => tokio::join!(http, accept(gateway, grpc, Face::Grpc, tls, permits, shutdown)).0,
        None => http.await,
    };
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    served
}

/// One proxy worker, as the accept loop knows it.
struct Worker {
    index: usize,
    inbox: mpsc::UnboundedSender<Accepted<std::net::TcpStream>>,
    /// Closed once the worker has drained its connections.
    done: oneshot::Receiver<()>,
}

/// Starts [`workers::count`] threads, each with a single-threaded runtime that serves the
/// connections it is handed until its inbox closes, drains them, and keeps its runtime
/// running until `drained` says every worker has drained (so nothing it spawned disappears
/// under another worker's request). Each runtime is built before its thread starts, so a
/// worker either fails here or runs.
fn start_workers(
    gateway: &Arc<Gateway>,
    tls: &Option<Arc<TlsAcceptorSource>>,
    shutdown: &watch::Receiver<bool>,
    drained: &watch::Receiver<bool>,
) -> Result<Vec<Worker>, ServerError> {
    (1..=workers::count(gateway.config().limits.workers))
        .map(|index| {
            let cannot_start = |source| ServerError::Worker { index, source };
            let connections_metric = gateway.metrics().worker_connections(index);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(cannot_start)?;
            let (inbox, mut arrivals) = mpsc::unbounded_channel::<Accepted<std::net::TcpStream>>();
            let (finished, done) = oneshot::channel::<()>();
            let (gateway, tls, shutdown, mut drained) = (gateway.clone(), tls.clone(), shutdown.clone(), drained.clone());
            std::thread::Builder::new()
                .name(format!("vecgate-worker-{index}"))
                .spawn(move || {
                    workers::enter(index);
                    runtime.block_on(async move {
                        let mut connections = JoinSet::new();
                        while let Some(accepted) = arrivals.recv().await {
                            // Registered with this worker's runtime from here on.
                            match accepted.convert(TcpStream::from_std) {
                                Ok(mut accepted) => {
                                    accepted.open = Some(connections_metric.opened());
                                    spawn_connection(&mut connections, &gateway, Face::Http, &tls, &shutdown, accepted);
                                }
                                Err(e) => tracing::warn!("worker {index}: cannot take a connection: {e}"),
                            }
                        }
                        drain(connections).await;
                        let _ = finished.send(());
                        let _ = drained.wait_for(|all| *all).await;
                    });
                })
                .map_err(cannot_start)?;
            Ok(Worker { index, inbox, done })
        })
        .collect()
}

/// The proxy port: this runtime accepts, and each connection goes to the next worker in turn
/// (Envoy's connection balancing, actix's acceptor). Letting the workers race for the
/// listener would give a burst of new connections, such as a client's pool opening, all to
/// the first worker that woke. A worker that has stopped (its thread panicked) is passed over
/// and dropped from the turn; with none left, accepting stops with an error.
async fn accept_on_workers(
    mut workers: Vec<Worker>,
    listener: TcpListener,
    permits: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
    all_drained: watch::Sender<bool>,
) -> Result<(), ServerError> {
    let mut next = 0;
    accept_loop(listener, permits, shutdown, |accepted| {
        let mut accepted = match accepted.convert(TcpStream::into_std) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("cannot hand a connection to a worker: {e}");
                return !workers.is_empty();
            }
        };
        while !workers.is_empty() {
            next %= workers.len();
            match workers[next].inbox.send(accepted) {
                Ok(()) => {
                    next += 1;
                    return true;
                }
                Err(mpsc::error::SendError(back)) => {
                    tracing::error!("worker {} has stopped; its turn goes to the others", workers[next].index);
                    workers.remove(next);
                    accepted = back;
                }
            }
        }
        tracing::error!("every proxy worker has stopped; no longer accepting");
        false
    })
    .await;
    let stopped = workers.is_empty();
    // The workers drain once their inbox is closed.
    let done: Vec<_> = workers.into_iter().map(|w| w.done).collect();
    for done in done {
        let _ = done.await;
    }
    let _ = all_drained.send(true);
    if stopped {
        return Err(ServerError::WorkersStopped);
    }
    Ok(())
}

/// An accepted connection with its slot of `limits.max_connections`.
struct Accepted<S> {
    stream: S,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    /// On the proxy port, the worker's count of open connections while this one lasts.
    open: Option<OpenConnection>,
}

impl<S> Accepted<S> {
    fn convert<T>(self, into: impl FnOnce(S) -> std::io::Result<T>) -> std::io::Result<Accepted<T>> {
        Ok(Accepted { stream: into(self.stream)?, peer: self.peer, permit: self.permit, open: self.open })
    }
}

/// Accepts and serves the connections of one listener on this runtime until `shutdown`, then
/// drains them.
async fn accept(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    face: Face,
    tls: Option<Arc<TlsAcceptorSource>>,
    permits: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let serving = shutdown.clone();
    accept_loop(listener, permits, shutdown, |accepted| {
        spawn_connection(&mut connections, &gateway, face, &tls, &serving, accepted);
        true
    })
    .await;
    drain(connections).await;
}

/// Accepts until `shutdown`, each connection once a connection slot is free, and hands it on;
/// stops early when `hand_on` says it can take no more.
async fn accept_loop(
    listener: TcpListener,
    permits: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
    mut hand_on: impl FnMut(Accepted<TcpStream>) -> bool,
) {
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        if !hand_on(Accepted { stream, peer, permit, open: None }) {
            break;
        }
    }
}

/// Waits for the connections to end, at most [`DRAIN_DEADLINE`], then closes the rest.
async fn drain(mut connections: JoinSet<()>) {
    if tokio::time::timeout(DRAIN_DEADLINE, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("connections still open after {DRAIN_DEADLINE:?}; closing them");
        connections.abort_all();
    }
}

/// Serves one accepted connection on this runtime, in `connections`.
fn spawn_connection(
    connections: &mut JoinSet<()>,
    gateway: &Arc<Gateway>,
    face: Face,
    tls: &Option<Arc<TlsAcceptorSource>>,
    shutdown: &watch::Receiver<bool>,
    accepted: Accepted<TcpStream>,
) {
    // A JoinSet keeps each finished task (its allocation included) until it is joined:
    // reap the connections that have ended, or memory grows with every connection served.
    while connections.try_join_next().is_some() {}
    let Accepted { stream, peer, permit, open } = accepted;
    let gateway = gateway.clone();
    let mut conn_shutdown = shutdown.clone();
    let header_timeout = gateway.config().limits.header_timeout;
    let tls = tls.clone();
    connections.spawn(async move {
        let _slot = (permit, open);
        let Some(tls) = tls else {
            // hyper's header timer starts only once bytes arrive: a client that connects
            // and sends nothing must not hold a connection slot.
            let mut first = [0u8; 1];
            let first_byte = tokio::time::timeout(header_timeout, stream.peek(&mut first));
            tokio::select! {
                outcome = first_byte => match outcome {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => {
                        tracing::debug!(%peer, "no request within {header_timeout:?}; closing");
                        return;
                    }
                },
                _ = conn_shutdown.changed() => return,
            }
            serve_http(TokioIo::new(stream), gateway, face, header_timeout, conn_shutdown, peer).await;
            return;
        };
        let handshake = tokio::time::timeout(header_timeout, tls.acceptor().accept(stream));
        let stream = tokio::select! {
            outcome = handshake => match outcome {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake not finished within {header_timeout:?}");
                    return;
                }
            },
            _ = conn_shutdown.changed() => return,
        };
        serve_http(TokioIo::new(stream), gateway, face, header_timeout, conn_shutdown, peer).await;
    });
}

/// Serves HTTP/1.1 or HTTP/2 (detected; HTTP/2 only for gRPC) on one connection until it
/// ends or `shutdown` turns true, then finishes in-flight requests.
///
/// The request's future is boxed while it runs: hyper keeps a slot the size of the service's
/// future allocated for as long as a connection lives, and the pipeline's future is several
/// KiB (about 6 for the REST face, 9 for the gRPC face), which every idle keep-alive
/// connection would otherwise hold (1,000 connections: 35 → 27 KiB each, measured with
/// `cargo bench --bench profile -- --memory 1000`). One allocation per request instead.
async fn serve_http<I>(
    io: I,
    gateway: Arc<Gateway>,
    face: Face,
    header_timeout: Duration,
    shutdown: watch::Receiver<bool>,
    peer: SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    match face {
        Face::Http => {
            let service = service_fn(move |request: Request<Incoming>| {
                let gateway = gateway.clone();
                async move { Ok::<ProxyResponse, Infallible>(Box::pin(gateway.handle(request)).await) }
            });
            serve_connection(io, service, false, header_timeout, shutdown, peer).await;
        }
        Face::Grpc => {
            let service = service_fn(move |request: Request<Incoming>| {
                let gateway = gateway.clone();
                async move { Ok::<ProxyResponse, Infallible>(Box::pin(gateway.handle_grpc(request)).await) }
            });
            serve_connection(io, service, true, header_timeout, shutdown, peer).await;
        }
    }
}

async fn serve_connection<I, S>(
    io: I,
    service: S,
    http2_only: bool,
    header_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    peer: SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = ProxyResponse, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    if http2_only {
        builder = builder.http2_only();
    }
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        }
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
