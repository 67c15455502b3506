//! `vecgate serve --config FILE`: load everything, refuse to start on any problem, serve
//! until SIGTERM or Ctrl-C, then drain.

use crate::audit::AuditLog;
use crate::authn::{AuthnError, Authenticator};
use crate::config::{self, Config, PolicySource};
use crate::policy::pdp::{PdpClient, PdpError};
use crate::policy::source::Policies;
use crate::metrics::{KnownLabels, Metrics};
use crate::policy::watch::spawn_policy_watcher;
use crate::policy::store::PolicyStore;
use crate::proxy::Gateway;
use crate::server::tls::TlsAcceptorSource;
use crate::server::{self, Listeners};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;

pub fn run(config_path: &Path) -> i32 {
    init_logging();
    let config = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vecgate: invalid configuration {}:\n{e}", config_path.display());
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vecgate: cannot start the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("vecgate: {message}");
            1
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    refuse_unavailable_features(&config)?;
    let authn = Authenticator::from_config(&config.auth).map_err(|e| format!("auth: {e}"))?;
    let policies = open_policies(&config)?;
    let tls = match &config.tls {
        Some(files) => Some(Arc::new(
            TlsAcceptorSource::load(files).map_err(|e| format!("tls: {e}"))?,
        )),
        None => None,
    };
    let metrics = Arc::new(Metrics::new().map_err(|e| e.to_string())?);
    let audit = match config.audit_flush_interval {
        None => AuditLog::open(&config.audit),
        Some(interval) => {
            let lost = metrics.clone();
            AuditLog::open_buffered(&config.audit, interval, Box::new(move |n| lost.audit_failures(n)))
        }
    }
    .map_err(|e| format!("audit log: {e}"))?;
    metrics.export_known_series(&KnownLabels {
        backend: config.upstream.kind.name(),
        auth_failure_reasons: AuthnError::REASONS,
        upstream_error_kinds: &crate::proxy::UpstreamError::KINDS,
        policy_source_error_reasons: match &config.policies.source {
            PolicySource::Pdp(_) => &PdpError::REASONS,
            PolicySource::Dir { .. } => &[],
        },
    });
    if let Some(version) = policies.version() {
        metrics.policy_loaded(version);
    }
    // Reloads on file changes and on SIGHUP; kept alive until the server has stopped. The
    // listener's certificate files are re-read on the same trigger. A PDP reloads its own
    // policies: there is nothing to watch.
    let _policy_watch = match (&policies, config.policies.watch()) {
        (Policies::Embedded(store), true) => {
            let reload_metrics = metrics.clone();
            let reload_tls = tls.clone();
            Some(
                spawn_policy_watcher(
                    store.clone(),
                    Arc::new(move |outcome: Result<u64, String>| {
                        if let Some(tls) = &reload_tls {
                            reload_certificates(tls);
                        }
                        match &outcome {
                            Ok(version) => tracing::info!(version, "policies reloaded"),
                            Err(reason) => tracing::error!(
                                "policy reload failed; keeping the last good policies: {reason}"
                            ),
                        }
                        reload_metrics.policy_reload(outcome.is_ok(), outcome.ok());
                    }),
                )
                .map_err(|e| format!("watching the policies: {e}"))?,
            )
        }
        _ => None,
    };
    // Without the policy watcher, SIGHUP still re-reads the certificate files.
    let _certificate_reload = match (&tls, config.policies.watch()) {
        (Some(tls), false) => Some(reload_certificates_on_sighup(tls.clone())?),
        _ => None,
    };
    let listeners = Listeners::bind(config.listen, config.admin_listen, config.grpc_listen)
        .await
        .map_err(|e| e.to_string())?;
    let proxy_addr = listeners.proxy.local_addr().map_err(|e| e.to_string())?;
    let grpc_addr = match &listeners.grpc {
        Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let config = Arc::new(config);
    let gateway = Arc::new(
        Gateway::new(config.clone(), authn, policies, audit, metrics).map_err(|e| e.to_string())?,
    );
    tracing::info!(
        listen = %proxy_addr,
        upstream = %config.upstream.url,
        backend = config.upstream.kind.name(),
        "vecgate listening"
    );
    if let (Some(addr), Some(url)) = (grpc_addr, &config.upstream.grpc_url) {
        tracing::info!(listen = %addr, upstream = %url, "vecgate listening for gRPC");
    }
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_shutdown_signal().await;
        tracing::info!("shutting down: no new connections, draining open ones");
        let _ = stop.send(true);
    });
    let served = server::serve(gateway.clone(), listeners, tls, stopped).await.map_err(|e| e.to_string());
    // A buffered audit log still holds the last lines: the process may end without dropping it.
    gateway.flush_audit();
    served
}

/// The policy source the configuration names: the directory loaded (refusing to start on
/// any problem in it), or a client of the PDP (not contacted at start-up: a PDP that is down
/// makes requests fail closed with 503, and `/readyz` says so).
fn open_policies(config: &Config) -> Result<Policies, String> {
    match &config.policies.source {
        PolicySource::Dir { dir, .. } => {
            let store = PolicyStore::open(dir, config.policies.planner_options())
                .map_err(|e| format!("policies in {}: {e}", dir.display()))?;
            for warning in &store.snapshot().warnings {
                tracing::warn!("policy: {warning}");
            }
            Ok(Policies::Embedded(Arc::new(store)))
        }
        PolicySource::Pdp(pdp) => {
            let client = PdpClient::for_workers(pdp, crate::workers::count(config.limits.workers))
                .map_err(|e| format!("policies.pdp: {e}"))?;
            tracing::info!(url = %pdp.url, "policies come from the Cerbos PDP");
            Ok(Policies::Pdp(Arc::new(client)))
        }
    }
}

/// Re-reads the listener's certificate and key; a bad file keeps the ones in use.
fn reload_certificates(tls: &TlsAcceptorSource) {
    match tls.reload() {
        Ok(()) => tracing::info!("TLS certificate reloaded"),
        Err(e) => tracing::error!("TLS certificate reload failed; keeping the current one: {e}"),
    }
}

/// Aborts the SIGHUP listener when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(unix)]
fn reload_certificates_on_sighup(tls: Arc<TlsAcceptorSource>) -> Result<AbortOnDrop, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups =
        signal(SignalKind::hangup()).map_err(|e| format!("cannot listen for SIGHUP: {e}"))?;
    Ok(AbortOnDrop(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the TLS certificate");
            reload_certificates(&tls);
        }
    })))
}

#[cfg(not(unix))]
fn reload_certificates_on_sighup(_tls: Arc<TlsAcceptorSource>) -> Result<AbortOnDrop, String> {
    Ok(AbortOnDrop(tokio::spawn(async {})))
}

/// Settings this build accepts in the file but cannot honour yet. Serving without them would
/// silently weaken what the operator asked for, so vecgate does not start.
fn refuse_unavailable_features(config: &Config) -> Result<(), String> {
    for warning in config::warnings(config) {
        tracing::warn!("config: {warning}");
    }
    Ok(())
}

async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Logs go to stderr (stdout may carry the audit log). `RUST_LOG` overrides the level.
/// Colours only on a terminal: a log file or a container log stays plain text.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
