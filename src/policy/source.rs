//! Where a running proxy's decisions come from: its own policy set (a directory, loaded into
//! a [`PolicyStore`] and reloaded on change) or an existing Cerbos PDP ([`PdpClient`]).
//!
//! Invariant: a request takes one [`Source`] at its start and asks it every question of that
//! request, so an embedded request never mixes two policy versions. A PDP reloads its own
//! store; vecgate cannot pin a request to one PDP version, and does not pretend to (the
//! audit line carries no policy version for it).

use super::pdp::{PdpClient, PdpError};
use super::store::{PolicyStore, Snapshot};
use std::sync::Arc;

/// The proxy's policy source, shared by all requests.
#[derive(Clone)]
pub enum Policies {
    /// `policies.dir`: evaluated in process.
    Embedded(Arc<PolicyStore>),
    /// `policies.pdp`: asked over the PDP's HTTP API.
    Pdp(Arc<PdpClient>),
}

/// What one request asks: a snapshot of the embedded set, or the PDP.
#[derive(Clone)]
pub enum Source {
    Snapshot(Arc<Snapshot>),
    Pdp(Arc<PdpClient>),
}

impl Policies {
    /// The source a request uses from start to end.
    pub fn source(&self) -> Source {
        match self {
            Policies::Embedded(store) => Source::Snapshot(store.snapshot()),
            Policies::Pdp(client) => Source::Pdp(client.clone()),
        }
    }

    /// Can decisions be made? An embedded set always can (it loaded); a PDP must answer its
    /// health route.
    pub async fn ready(&self) -> Result<(), PdpError> {
        match self {
            Policies::Embedded(_) => Ok(()),
            Policies::Pdp(client) => client.ready().await,
        }
    }

    /// The embedded set's version (none for a PDP: it versions its own store).
    pub fn version(&self) -> Option<u64> {
        match self {
            Policies::Embedded(store) => Some(store.snapshot().version),
            Policies::Pdp(_) => None,
        }
    }
}

impl From<Arc<PolicyStore>> for Policies {
    fn from(store: Arc<PolicyStore>) -> Policies {
        Policies::Embedded(store)
    }
}

impl From<Arc<PdpClient>> for Policies {
    fn from(client: Arc<PdpClient>) -> Policies {
        Policies::Pdp(client)
    }
}

impl From<Arc<Snapshot>> for Source {
    fn from(snapshot: Arc<Snapshot>) -> Source {
        Source::Snapshot(snapshot)
    }
}

impl Source {
    pub fn version(&self) -> Option<u64> {
        match self {
            Source::Snapshot(s) => Some(s.version),
            Source::Pdp(_) => None,
        }
    }
}
