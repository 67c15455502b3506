//! The pipeline: one request, top to bottom, the same for every database.
//!
//! ```text
//! classify → authenticate → authorize → rewrite → forward → filter → respond
//! ```
//!
//! Classification comes first only because it says whether a route needs a token at all
//! (health routes do not); nothing else of the request is read before the caller is known,
//! not even its body. Each phase lives in a file of its own; [`RequestCtx`] carries the
//! request's audit event through all of them and guarantees its one audit line.
//!
//! The [`Forwarding`] strategy says what is done with the outcome: in enforce mode the
//! rewritten request goes and the filtered answer comes back; in shadow mode every phase runs
//! the same way (decisions, filters, checks are computed and recorded), but the client's own
//! request goes to the database and its answer comes back unchanged.
//!
//! The same pipeline serves every face of a database (`D`): a REST request and a gRPC call
//! differ only in what the face parses, sends and reads ([`Database::Body`],
//! [`crate::backends::seam::Protocol`]), never in a phase.

use super::authorize::Authorized;
use super::body;
use super::classify;
use super::context::{enforced_status, RequestCtx};
use super::decide::Authorizer;
use super::error::ProxyError;
use super::forward::Forwarding;
use super::gateway::Gateway;
use super::respond::{gateway_status, ProxyResponse};
use super::rewrite::{Sending, Then};
use crate::audit::{AuditEvent, Decision};
use crate::backends::seam::{Answer, Body, Call, Database, Intent, Path, Route};
use bytes::Bytes;
use http::request::Parts;
use http::Request;
use http_body_util::Full;

/// A request decided and rewritten: what the forward and filter phases need.
struct Prepared<D: Database> {
    route: D::Route,
    /// The caller's policy questions (`None` for routes that need no token).
    authorizer: Option<Authorizer>,
    sending: Sending<D>,
}

impl Gateway {
    /// One request through the pipeline of database `db`.
    pub(super) async fn pipeline<D, B>(&self, db: &D, request: Request<B>) -> ProxyResponse
    where
        D: Database,
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = request.into_parts();
        let mut ctx = RequestCtx::new(self, db.name(), db.protocol(), &parts);
        let outcome = match self.forwarding {
            Forwarding::Enforce => self.enforce(db, &parts, body, &mut ctx.event).await,
            Forwarding::Shadow => self.shadow(db, &parts, body, &mut ctx.event).await,
        };
        ctx.finish(db, outcome)
    }

    /// Enforce mode: what the phases decide is what happens.
    async fn enforce<D, B>(&self, db: &D, parts: &Parts, body: B, event: &mut AuditEvent) -> Result<Answer, ProxyError>
    where
        D: Database,
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let Prepared { route, authorizer, sending } = self.prepare(db, parts, body, event).await?;
        let answer = match sending {
            Sending::Local(answer) => answer,
            Sending::Send { call, then } => {
                let answer = self.send(db, parts, call, &event.request_id).await?;
                self.filter(db, &route, authorizer.as_ref(), then, answer, event).await?
            }
        };
        Ok(answer)
    }

    /// Shadow mode: the phases run as in enforce mode and their verdict is recorded (the
    /// status enforce mode would have answered, the decision, the hits it would have
    /// stripped); the client's request goes to the database as it came, and the answer comes
    /// back unchanged. Only the body size limit still applies, since it protects vecgate.
    async fn shadow<D, B>(&self, db: &D, parts: &Parts, body: B, event: &mut AuditEvent) -> Result<Answer, ProxyError>
    where
        D: Database,
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let bytes = body::read_body(&parts.headers, body, &self.config.limits).await?;
        let prepared = self.prepare(db, parts, Full::new(bytes.clone()), event).await;
        let answer = self.send_original(db, parts, bytes, &event.request_id).await?;
        let verdict = match prepared {
            Err(e) => Err(e),
            Ok(Prepared { sending: Sending::Local(local), .. }) => Ok(local.status),
            Ok(Prepared { route, authorizer, sending: Sending::Send { call, then } }) => {
                // Judge what enforce mode would have read: the client's answer where the
                // request goes where the client sent it, else the rewritten request's.
                let judged = match (&call.path, &then) {
                    (Path::To(_), Then::Records { .. } | Then::Listing { .. }) => {
                        self.send(db, parts, call, &event.request_id).await
                    }
                    _ => Ok(answer.clone()),
                };
                match judged {
                    Ok(judged) => self
                        .filter(db, &route, authorizer.as_ref(), then, judged, event)
                        .await
                        .map(|enforced| gateway_status(enforced.status)),
                    Err(e) => Err(e),
                }
            }
        };
        event.enforced_status = Some(enforced_status(&verdict));
        if let Err(e) = &verdict {
            event.decision = e.decision(event.decision);
            event.error = Some(e.kind().as_str());
            event.message = Some(e.to_string());
        }
        Ok(answer)
    }

    /// classify → authenticate → authorize → rewrite.
    async fn prepare<D, B>(&self, db: &D, parts: &Parts, body: B, event: &mut AuditEvent) -> Result<Prepared<D>, ProxyError>
    where
        D: Database,
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        // Classify.
        let route = classify::route(db, parts, event)?;
        let intent = route.intent();
        if intent == Intent::Health {
            event.decision = Decision::Allow;
            let call = Call::new(parts.method.clone(), Path::AsSent, Body::None);
            return Ok(Prepared { route, authorizer: None, sending: Sending::Send { call, then: Then::PassBack } });
        }

        // Authenticate; then read the body, and take one policy source for the request.
        let (caller, token) = self.authenticate(parts, event).await?;
        let bytes = body::read_body(&parts.headers, body, &self.config.limits).await?;
        let mut body = db.parse_body(&route, &parts.headers, &bytes)?;
        let authorizer = Authorizer::new(caller, self.policies.source(), self.metrics.clone()).with_token(token);
        event.policy_version = authorizer.source.version();

        // Authorize; record operations first find their collection and its rule.
        let empty = db.empty_body(&route);
        let parsed = body.as_ref().unwrap_or(&empty);
        let target = match intent {
            Intent::Read | Intent::Delete | Intent::Write => Some(self.target(db, &route, parsed, event).await?),
            _ => None,
        };
        let authorized = match (intent, &target) {
            (Intent::Identity, _) => {
                event.decision = Decision::Allow;
                Authorized::AsSent
            }
            (Intent::Admin, _) => {
                self.require_admin(&authorizer, route.name(), event).await?;
                Authorized::AsSent
            }
            (Intent::Collection(_), _) => self.authorize_collection(db, &route, parsed, &authorizer, event).await?,
            (Intent::Read, Some(target)) => self.authorize_read(db, &route, target, parsed, &authorizer, event).await?,
            (Intent::Delete, Some(target)) => self.authorize_delete(db, &route, target, &mut body, &authorizer, event).await?,
            (Intent::Write, Some(target)) => {
                let owned = body.take().unwrap_or(empty);
                self.authorize_write(db, &route, target, &parts.method, parts.uri.query(), owned, &authorizer, event).await?
            }
            (Intent::Health | Intent::Read | Intent::Delete | Intent::Write, _) => {
                return Err(ProxyError::Internal(format!("{} reached authorization unclassified", route.name())))
            }
        };

        // Rewrite.
        let sending = self.rewrite(db, &route, parts, target.as_ref(), body, authorized)?;
        if matches!(sending, Sending::Local(_)) && intent == Intent::Read {
            event.hits_returned = Some(0);
        }
        Ok(Prepared { route, authorizer: Some(authorizer), sending })
    }
}
