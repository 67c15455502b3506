//! TLS material shared by the listener ([`crate::server::tls`]), the upstream client and the
//! JWKS client: reading PEM files, trust anchors and client configurations.
//!
//! Every configuration uses rustls with the `ring` crypto provider, chosen explicitly (never
//! the process-wide default), TLS 1.2 and 1.3.
//!
//! Trust for outgoing connections: with a CA file, **only** the certificates in that file are
//! trusted (the built-in roots are not consulted), which is what a sidecar talking to one
//! database or one identity provider wants: a public CA cannot vouch for a private server.
//! Without a CA file, the Mozilla root set bundled with `webpki-roots` is trusted (the
//! machine's own store is not read, so behaviour does not depend on the image).

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why TLS material could not be loaded. Messages name files, never key contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not valid PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{}: no CERTIFICATE block found", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no private key found (PKCS#8, PKCS#1 or SEC1 PEM)", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("{}: a certificate cannot be used as a trust anchor: {reason}", path.display())]
    BadCa { path: PathBuf, reason: String },
    /// The certificate and key do not fit together, or rustls refuses them.
    #[error("{what}: {source}")]
    Rustls {
        what: &'static str,
        source: rustls::Error,
    },
    #[error("client certificate verification: {0}")]
    ClientVerifier(String),
}

/// The crypto provider every vecgate TLS configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every `CERTIFICATE` block of a PEM file, in order (leaf first for a chain). Other blocks
/// are skipped; a file without any certificate is an error.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        other => TlsError::Pem {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

/// The certificates of a CA file as trust anchors; every one must be usable.
pub fn read_ca_store(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for certificate in read_certificates(path)? {
        store.add(certificate).map_err(|e| TlsError::BadCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(store)
}

/// Trust anchors for outgoing connections: the CA file's certificates only, or the bundled
/// Mozilla roots without one (see the module documentation).
pub fn trust_anchors(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    match ca_file {
        Some(path) => read_ca_store(path),
        None => Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }),
    }
}

/// A client configuration trusting [`trust_anchors`]`(ca_file)`, no client certificate.
/// ALPN is left empty; [`https_connector`] sets it.
pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let roots = trust_anchors(ca_file)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "client protocol versions",
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Which HTTP versions an [`https_connector`] offers through ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersions {
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 when the server offers it, else HTTP/1.1.
    Http1And2,
    /// HTTP/2 only (gRPC).
    Http2,
}

/// A connector for hyper-util's client that speaks `https` with [`client_config`] and, when
/// `allow_plain_http`, also plain `http`. TCP connects time out after `connect_timeout`.
pub fn https_connector(
    ca_file: Option<&Path>,
    allow_plain_http: bool,
    versions: HttpVersions,
    connect_timeout: Duration,
) -> Result<HttpsConnector<HttpConnector>, TlsError> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    let builder =
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(client_config(ca_file)?);
    let builder = if allow_plain_http {
        builder.https_or_http()
    } else {
        builder.https_only()
    };
    let connector = match versions {
        HttpVersions::Http1 => builder.enable_http1().wrap_connector(tcp),
        HttpVersions::Http1And2 => builder.enable_http1().enable_http2().wrap_connector(tcp),
        HttpVersions::Http2 => builder.enable_http2().wrap_connector(tcp),
    };
    Ok(connector)
}
