//! Shared helpers for integration tests. Each test file that needs them declares `mod support;`.
//!
//! The servers these helpers start come from the Python venv that `./scripts/test.sh` builds
//! (found through `VECGATE_PYTHON`, else `<repo>/.venv/bin/python`). A missing venv fails the
//! test with instructions; nothing is ever skipped silently.

// Test support code fails loudly on purpose: a panic here is a test failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

pub mod cerbos;
pub mod chroma;
pub mod differential;
pub mod exposition;
pub mod filter_ignoring_relay;
pub mod grpc;
pub mod stub_upstream;
pub mod https_server;
pub mod jwt_attacks;
pub mod pki;
pub mod policygen;
pub mod prometheus;
pub mod qdrant;
pub mod recording_proxy;

pub use chroma::ChromaServer;
pub use qdrant::{QdrantKind, QdrantServer};

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// The repository root (where Cargo.toml lives).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of the test venv: `$VECGATE_PYTHON`, else `<repo>/.venv/bin/python`.
/// Panics with instructions if it does not exist.
pub fn python() -> PathBuf {
    let (path, source) = match std::env::var_os("VECGATE_PYTHON") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), "VECGATE_PYTHON"),
        _ => (repo_root().join(".venv/bin/python"), "the default location"),
    };
    if !path.exists() {
        panic!(
            "the test Python venv is missing: {} (from {source}) does not exist.\n\
             Run ./scripts/test.sh once: it creates .venv with the real Chroma server, the \
             client SDKs and LangChain (tests/python/requirements.txt). Afterwards plain \
             `cargo test` works too.",
            path.display()
        );
    }
    path
}

/// A loopback TCP port that was free a moment ago (bound to port 0, read, released).
/// Another process may take it before the caller binds it, so callers retry on failure.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local_addr of a bound listener")
        .port()
}

/// The last `max_lines` lines of a log file, for failure messages.
pub fn log_tail(path: &Path, max_lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(max_lines);
            lines[start..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
pub mod vecgate;
