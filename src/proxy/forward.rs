//! The forward phase: every exchange with the database goes through here. Lookups the
//! pipeline makes for itself (a collection's name, the records a write touches) go as they
//! are in every mode; the client's own request goes as the [`Forwarding`] strategy says.

use super::error::ProxyError;
use super::gateway::Gateway;
use crate::backends::seam::{Answer, Body, Call, Database, Path, Protocol};
use crate::config::Mode;
use bytes::Bytes;
use http::request::Parts;

/// What happens to the client's request once the pipeline has decided about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// The decision is applied: the rewritten request goes, the filtered answer comes back,
    /// refusals are answered.
    Enforce,
    /// The decision is computed, logged and counted, and the client's request goes to the
    /// database as it came; the database's answer comes back unchanged.
    Shadow,
}

impl From<Mode> for Forwarding {
    fn from(mode: Mode) -> Forwarding {
        match mode {
            Mode::Enforce => Forwarding::Enforce,
            Mode::Shadow => Forwarding::Shadow,
        }
    }
}

impl From<Forwarding> for Mode {
    fn from(forwarding: Forwarding) -> Mode {
        match forwarding {
            Forwarding::Enforce => Mode::Enforce,
            Forwarding::Shadow => Mode::Shadow,
        }
    }
}

/// The client's path and query, as they came.
pub fn path_and_query(parts: &Parts) -> &str {
    parts.uri.path_and_query().map_or_else(|| parts.uri.path(), |pq| pq.as_str())
}

/// A body as bytes for the wire. A gRPC call always carries one message (an empty one where
/// the body is [`Body::None`]).
pub(super) fn wire(protocol: Protocol, body: Body) -> Result<Option<Bytes>, ProxyError> {
    match (protocol, body) {
        (Protocol::Http, Body::None) => Ok(None),
        (Protocol::Http, Body::Json(value)) => crate::json::to_vec(&value)
            .map(|b| Some(Bytes::from(b)))
            .map_err(|e| ProxyError::Internal(format!("writing the rewritten body: {e}"))),
        (Protocol::Grpc, Body::None) => Ok(Some(crate::grpc::frame(&[]))),
        (Protocol::Grpc, Body::Proto { message, .. }) => Ok(Some(crate::grpc::frame(&message))),
        (protocol, _) => Err(ProxyError::Internal(format!("a body {} does not carry", protocol.as_str()))),
    }
}

impl Gateway {
    /// Sends the client's request as the pipeline rewrote it (the client's `Accept` and
    /// `User-Agent` go along).
    pub(super) async fn send<D: Database>(&self, db: &D, parts: &Parts, call: Call, request_id: &str) -> Result<Answer, ProxyError> {
        let path = match &call.path {
            Path::AsSent => db.forward_path(path_and_query(parts)),
            Path::To(path) => path.clone(),
        };
        let body = wire(db.protocol(), call.body)?;
        Ok(self.upstream(db.protocol())?.send(call.method, &path, Some(&parts.headers), body, request_id).await?)
    }

    /// Sends the client's request exactly as it came (shadow mode).
    pub(super) async fn send_original<D: Database>(&self, db: &D, parts: &Parts, body: Bytes, request_id: &str) -> Result<Answer, ProxyError> {
        let body = (!body.is_empty()).then_some(body);
        Ok(self
            .upstream(db.protocol())?
            .send(parts.method.clone(), path_and_query(parts), Some(&parts.headers), body, request_id)
            .await?)
    }

    /// A request of the pipeline's own (a lookup); no client header goes along.
    pub(super) async fn lookup<D: Database>(&self, db: &D, call: Call, request_id: &str) -> Result<Answer, ProxyError> {
        let path = match call.path {
            Path::To(path) => path,
            Path::AsSent => return Err(ProxyError::Internal("a lookup must name its path".into())),
        };
        let body = wire(db.protocol(), call.body)?;
        Ok(self.upstream(db.protocol())?.send(call.method, &path, None, body, request_id).await?)
    }

    /// [`Gateway::lookup`], where anything but success is the database's refusal, passed back.
    pub(super) async fn lookup_ok<D: Database>(&self, db: &D, call: Call, request_id: &str) -> Result<Answer, ProxyError> {
        let answer = self.lookup(db, call, request_id).await?;
        if answer.is_success() {
            Ok(answer)
        } else {
            Err(ProxyError::Database(answer))
        }
    }
}
