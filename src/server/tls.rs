//! Inbound TLS for the proxy listener: the certificate chain and key from `tls.cert_file` /
//! `tls.key_file`, and with `tls.client_ca_file` mutual TLS (every client must present a
//! certificate issued by one of those CAs; without one the handshake fails).
//!
//! The files are re-read by [`TlsAcceptorSource::reload`], meant to run on the same trigger
//! as the policy reload (file change or SIGHUP). A reload that fails keeps the configuration
//! that was serving, like a policy reload does. Connections already open keep the
//! certificate they were handshaken with; new handshakes use the new one.
//!
//! ALPN offers `h2` and `http/1.1`; TLS 1.2 and 1.3 (rustls' safe defaults, `ring`).

use crate::config::ListenerTls;
use crate::tls::{provider, read_ca_store, read_certificates, read_private_key, TlsError};
use arc_swap::ArcSwap;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// ALPN protocols the listener offers, preferred first.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The listener's current TLS configuration, swappable while serving.
pub struct TlsAcceptorSource {
    files: ListenerTls,
    current: ArcSwap<ServerConfig>,
}

impl std::fmt::Debug for TlsAcceptorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptorSource")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptorSource {
    /// Reads the files named in `files`; any problem (unreadable file, no certificate, no key,
    /// a key that does not belong to the certificate, an unusable client CA) is an error.
    pub fn load(files: &ListenerTls) -> Result<TlsAcceptorSource, TlsError> {
        let config = server_config(files)?;
        Ok(TlsAcceptorSource {
            files: files.clone(),
            current: ArcSwap::from_pointee(config),
        })
    }

    /// Re-reads the files. On success new handshakes use them; on error the previous
    /// configuration stays in use and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        self.current.store(Arc::new(config));
        Ok(())
    }

    /// An acceptor for one handshake with the configuration current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Whether clients must present a certificate (`tls.client_ca_file` is set).
    pub fn requires_client_certificates(&self) -> bool {
        self.files.client_ca_file.is_some()
    }

    /// The files this source reads.
    pub fn files(&self) -> &ListenerTls {
        &self.files
    }
}

fn server_config(files: &ListenerTls) -> Result<ServerConfig, TlsError> {
    let chain = read_certificates(&files.cert_file)?;
    let key = read_private_key(&files.key_file)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "server protocol versions",
            source,
        })?;
    let builder = match &files.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let roots = Arc::new(read_ca_store(ca_file)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| TlsError::ClientVerifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Rustls {
            what: "tls.cert_file and tls.key_file",
            source,
        })?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
