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
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
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
pub async fn serve(
    gateway: Arc<Gateway>,
    listeners: Listeners,
    tls: Option<Arc<TlsAcceptorSource>>,
    shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(gateway.config().limits.max_connections));
    let admin = listeners.admin.map(|admin| tokio::spawn(admin::serve(gateway.clone(), admin, shutdown.clone())));
    let http = accept_on_workers(gateway.clone(), listeners.proxy, tls.clone(), permits.clone(), shutdown.clone());
    match listeners.grpc {
        Some(grpc) => {
            tokio::join!(http, accept(gateway, grpc, Face::Grpc, tls, permits, shutdown));
        }
        None => http.await,
    }
    if let Some(admin) = admin {
        let _ = admin.await;
    }
}

/// The proxy port, served by [`workers::count`] single-threaded runtimes, each on its own
/// thread accepting from the same listener. A worker's runtime keeps running until every
/// worker has drained, so nothing it spawned (a pooled connection of a client shared outside
/// [`workers::PerWorker`]) disappears under another worker's request.
async fn accept_on_workers(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    tls: Option<Arc<TlsAcceptorSource>>,
    permits: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
) {
    let listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("the proxy listener: {e}");
            return;
        }
    };
    let (all_drained, drained) = watch::channel(false);
    let mut finished = Vec::new();
    for index in 1..=workers::count() {
        let listener = match listener.try_clone() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("the proxy listener: {e}");
                break;
            }
        };
        let (gateway, tls, permits, shutdown) = (gateway.clone(), tls.clone(), permits.clone(), shutdown.clone());
        let mut drained = drained.clone();
        let (done, done_rx) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new().name(format!("vecgate-worker-{index}")).spawn(move || {
            workers::enter(index);
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("worker {index}: cannot start its runtime: {e}");
                    return;
                }
            };
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => accept(gateway, listener, Face::Http, tls, permits, shutdown).await,
                    Err(e) => tracing::error!("worker {index}: the proxy listener: {e}"),
                }
                let _ = done.send(());
                let _ = drained.wait_for(|all| *all).await;
            });
        });
        match spawned {
            Ok(_) => finished.push(done_rx),
            Err(e) => tracing::error!("cannot start worker {index}: {e}"),
        }
    }
    // A worker that could not start has dropped its sender: that counts as finished.
    for done in finished {
        let _ = done.await;
    }
    let _ = all_drained.send(true);
}

/// Accepts and serves the connections of one listener until `shutdown`, then drains them.
async fn accept(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    face: Face,
    tls: Option<Arc<TlsAcceptorSource>>,
    permits: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = gateway.config().limits.clone();
    let mut connections = JoinSet::new();
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
        // A JoinSet keeps each finished task (its allocation included) until it is joined:
        // reap the connections that have ended, or memory grows with every connection served.
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let mut conn_shutdown = shutdown.clone();
        let header_timeout = limits.header_timeout;
        let tls = tls.clone();
        connections.spawn(async move {
            let _permit = permit;
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
    drop(listener);
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
