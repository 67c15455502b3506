//! `POST /explain` on the admin listener (only with `admin_explain: true`; never on the data
//! port): the report of `vecgate explain` as JSON, for a body naming a principal (`principal`
//! as JSON, or a `token` verified as the proxy verifies it), a `collection`, a record `id`
//! and, optionally, its `record` attributes (otherwise read from the database through the
//! configured upstream) and an `action` (default `read`).
//!
//! Invariants: answers from the current policy snapshot and configuration, exactly as the
//! command line does (one shared path, `explain_request::answer`); bodies are bounded
//! ([`MAX_BODY_BYTES`]) and strict (unknown fields refused); a token is never logged or
//! echoed; every problem is a JSON `{"error": …}` with a 4xx/5xx status.

use crate::explain_pdp::answer_with_pdp;
use crate::explain_request::{answer, attributes_from_json, ExplainBody, ExplainInput};
use crate::proxy::Gateway;
use crate::policy::source::Policies;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The status and JSON answer for one `POST /explain`.
pub(super) async fn explain(gateway: &Gateway, body: Incoming) -> (StatusCode, serde_json::Value) {
    match run(gateway, body).await {
        Ok(report) => (StatusCode::OK, report),
        Err((status, message)) => (status, json!({"error": message})),
    }
}

async fn run(gateway: &Gateway, body: Incoming) -> Result<serde_json::Value, (StatusCode, String)> {
    let config = gateway.config();
    let collected = tokio::time::timeout(config.limits.body_timeout, Limited::new(body, MAX_BODY_BYTES).collect())
        .await
        .map_err(|_| (StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time".to_string()))?
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, format!("the body must be JSON of at most {MAX_BODY_BYTES} bytes")))?;
    let bytes: Bytes = collected.to_bytes();
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let request: ExplainBody = serde_json::from_slice(&bytes).map_err(|e| bad(format!("the body is not an explain request: {e}")))?;
    let (principal, jwt) = match (&request.principal, &request.token) {
        (Some(p), None) => (crate::cli::principal_from_json(&p.to_string()).map_err(bad)?, BTreeMap::new()),
        (None, Some(token)) => {
            let verified = gateway
                .authenticator()
                .verify_token(token)
                .map_err(|e| (StatusCode::UNAUTHORIZED, format!("the token is not accepted: {}", e.reason())))?;
            Arc::unwrap_or_clone(verified).into_parts()
        }
        _ => return Err(bad("give either principal or token".into())),
    };
    let rule = config
        .collection_rule(&request.collection)
        .ok_or_else(|| bad(format!("no collection rule in the configuration matches {:?}", request.collection)))?;
    let attr = match &request.record {
        Some(map) => attributes_from_json(map),
        None => gateway
            .record_attributes(&request.collection, &request.id)
            .await
            .map_err(|e| (e.status(), e.to_string()))?
            .ok_or_else(|| (StatusCode::NOT_FOUND, format!("the database has no record {:?} in {:?}", request.id, request.collection)))?,
    };
    let input = ExplainInput {
        principal,
        jwt,
        collection: Some(request.collection.clone()),
        kind: rule.resource_kind.clone(),
        scope: request.scope.clone().unwrap_or_default(),
        id: request.id.clone(),
        attr,
        action: request.action.clone().unwrap_or_else(|| "read".to_string()),
    };
    let internal = |e: serde_json::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    match gateway.policies() {
        Policies::Embedded(store) => {
            let snapshot = store.snapshot();
            serde_json::to_value(answer(snapshot.planner.planner(), Some(config), &input)).map_err(internal)
        }
        // The PDP decides: its own account of the decision, and what the proxy does with it.
        Policies::Pdp(client) => {
            let report = answer_with_pdp(client, Some(config), &input, request.token.as_deref())
                .await
                .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
            serde_json::to_value(report).map_err(internal)
        }
    }
}
