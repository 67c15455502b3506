//! One record's attributes read from the database by collection name and id, for `vecgate
//! explain --id` and the admin listener's `POST /explain`: the lookups the pipeline makes for
//! writes (the seam's `fetch_records`, `fetched_records`, `attributes`) with the collection's
//! field mapping, sent with the database's own key from `upstream`.
//!
//! Invariants: read-only (one lookup to locate the collection where the database needs it,
//! one to read the record); the attributes are the ones policies see as `R.attr` (the
//! mapping's prefix applied, as the pipeline's hit check reads them); a missing record is
//! `Ok(None)`, never an empty record; a collection no rule in the configuration matches is
//! refused, as the proxy refuses it.

use super::error::ProxyError;
use super::forward::wire;
use super::gateway::{upstream_client, Backend, Gateway};
use super::upstream::Upstream;
use crate::backends::seam::{Answer, Call, Database, Path};
use crate::backends::FieldMapping;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::plan::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A record's attributes as policies see them.
pub type RecordAttributes = BTreeMap<String, Value>;

/// The request id the lookups carry (`x-request-id`), so the database's logs show them.
const REQUEST_ID: &str = "vecgate-explain";

impl Gateway {
    /// The attributes of record `id` of `collection`, read now (`None`: no such record).
    pub async fn record_attributes(&self, collection: &str, id: &str) -> Result<Option<RecordAttributes>, ProxyError> {
        let (_, mapping) = self.collection_rule(collection)?;
        match &self.backend {
            Backend::Chroma(db) => read_record(&self.upstream, db, mapping, collection, id).await,
            Backend::Qdrant(db) => read_record(&self.upstream, db, mapping, collection, id).await,
        }
    }
}

/// [`Gateway::record_attributes`] without a running proxy: an upstream client of its own,
/// built from `config` as the proxy builds it (`upstream.url`, `ca_file`, `api_key_env`).
pub async fn read_record_attributes(config: &Config, collection: &str, id: &str) -> Result<Option<RecordAttributes>, ProxyError> {
    let rule = config
        .collection_rule(collection)
        .ok_or_else(|| ProxyError::Forbidden(format!("no collection rule in the configuration matches {collection:?}")))?;
    let mapping = FieldMapping::new(&rule.attr_prefix, rule.required_attrs.iter().cloned());
    let metrics = Arc::new(Metrics::new().map_err(|e| ProxyError::Internal(e.to_string()))?);
    let upstream = upstream_client(config, &config.upstream.url, false, 2, metrics)?;
    match Backend::from(config.upstream.kind) {
        Backend::Chroma(db) => read_record(&upstream, &db, &mapping, collection, id).await,
        Backend::Qdrant(db) => read_record(&upstream, &db, &mapping, collection, id).await,
    }
}

async fn read_record<D: Database>(
    upstream: &Upstream,
    db: &D,
    mapping: &FieldMapping,
    collection: &str,
    id: &str,
) -> Result<Option<RecordAttributes>, ProxyError> {
    let record_id = db
        .parse_id(id)
        .ok_or_else(|| ProxyError::BadRequest(format!("{id:?} is not a record id for {}", db.name())))?;
    let located_answer = match db.collection_by_name(collection) {
        Some(call) => Some(send(upstream, call).await?),
        None => None,
    };
    let located = db
        .located_by_name(collection, located_answer.as_ref().map(|a| &a.body[..]))
        .map_err(ProxyError::unreadable)?;
    let answer = send(upstream, db.fetch_records(&located, std::slice::from_ref(&record_id))).await?;
    let records = db.fetched_records(&answer.body).map_err(ProxyError::unreadable)?;
    Ok(records.get(&record_id).map(|record| db.attributes(record, mapping).all()))
}

/// One lookup; anything but success is the database's refusal.
async fn send(upstream: &Upstream, call: Call) -> Result<Answer, ProxyError> {
    let Path::To(path) = call.path else {
        return Err(ProxyError::Internal("a lookup must name its path".into()));
    };
    let body = wire(crate::backends::seam::Protocol::Http, call.body)?;
    let answer = upstream.send(call.method, &path, None, body, REQUEST_ID).await?;
    if answer.is_success() {
        Ok(answer)
    } else {
        Err(ProxyError::Database(answer))
    }
}
