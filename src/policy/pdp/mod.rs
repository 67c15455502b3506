//! An existing Cerbos PDP as the policy source, instead of a policy directory: plans come from
//! its PlanResources, per-record decisions from its CheckResources, over its HTTP API.
//!
//! # API
//!
//! ```text
//! PdpClient::new(&PdpConfig) -> Result<PdpClient, PdpError>
//! async PdpClient::plan(&self, principal: &Principal, jwt: Option<JwtAux<'_>>, kind: &str,
//!                       action: &str) -> Result<Arc<Plan>, PdpError>
//! async PdpClient::check(&self, principal: &Principal, jwt: Option<JwtAux<'_>>, kind: &str,
//!                        action: &str, resources: &[(&str, &BTreeMap<String, Value>)])
//!                        -> Result<Vec<bool>, PdpError>
//! async PdpClient::check_explained(&self, principal, jwt, kind, action,
//!                                  resource: (&str, &BTreeMap<String, Value>))
//!                                  -> Result<ExplainedEffect, PdpError>
//! ```
//!
//! - `principal` is the caller as vecgate maps it from the token ([`Principal`]); `jwt`, when
//!   given, is the raw token (sent as `auxData.jwt.token`: the PDP verifies it with its own key
//!   sets) with the claims vecgate verified (they key the plan cache).
//! - `plan` returns one action's plan in vecgate's IR ([`Plan`]), translated from the PDP's
//!   `PlanResourcesFilter` by [`translate::plan_from_filter`], which refuses what vecgate
//!   cannot evaluate exactly; the result then goes through the same exact-or-refused
//!   translators as an embedded plan. Plans are cached per (principal, JWT claims, kind,
//!   action) for `plan_cache_ttl` (0: not cached).
//! - `check` decides `action` on each `(id, attributes)` resource: one CheckResources request
//!   per [`CHECK_BATCH`] resources, answers in the order given, true for EFFECT_ALLOW.
//! - `check_explained` is `check` for one resource with the PDP's `includeMeta`: the policy
//!   that matched, the active derived roles and the PDP's call id (for explain).
//! - Every failure is a [`PdpError`]: the PDP unreachable, slower than `timeout`, answering
//!   something unreadable, or a plan that cannot be translated. The caller answers them all
//!   fail-closed (503 in the database's error shape).
//!
//! # What a PDP's plan means
//!
//! The PDP's check is the authority; its planner is not always faithful to it (measured on
//! 0.55.0, tests/pdp_differential.rs counts the cases): a principal policy's unconditional
//! DENY is dropped (`zed`), a conditional DENY of one role is applied to all roles, `has()`
//! becomes `true`, and `not` is written alike for CEL's `!` and for "the DENY's condition is
//! not true" (which Cerbos' default reads as met when the condition errors). vecgate reads
//! every `not` as CEL's (the stricter reading: a record the PDP's check would allow may be
//! withheld, never the reverse), but cannot see the other three in the plan. A caller that
//! needs exact reads checks the hits of an answer with [`PdpClient::check`] (one batched
//! request) instead of evaluating the plan on them.

mod client;
mod translate;
mod wire;

pub use client::{JwtAux, PdpClient, CHECK_BATCH};
pub use translate::plan_from_filter;
pub use wire::ExplainedEffect;

use std::path::PathBuf;
use std::time::Duration;

/// `policies.pdp`: where the PDP is and how vecgate talks to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdpConfig {
    /// The PDP's HTTP API base URL (`http://cerbos:3592`), without a trailing `/`.
    pub url: String,
    /// Time allowed for one PDP request (connection included).
    pub timeout: Duration,
    /// How long a plan is reused for the same principal, claims, kind and action (0: never).
    pub plan_cache_ttl: Duration,
    /// CA bundle trusted for an https PDP (replacing the bundled Mozilla roots).
    pub ca_file: Option<PathBuf>,
    /// Send the caller's token as `auxData.jwt.token`, for policies that read
    /// `request.auxData.jwt` (the PDP verifies it with its own `auxData.jwt.keySets`; a PDP
    /// without them refuses every request that carries one).
    pub send_token: bool,
}

/// Why the PDP gave no usable answer. Each one means: deny, and say so (503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdpError {
    #[error("the Cerbos PDP at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the Cerbos PDP did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the Cerbos PDP's answer cannot be used: {0}")]
    BadAnswer(String),
    #[error("the Cerbos PDP's plan cannot be translated exactly: {0}")]
    Untranslatable(String),
    #[error("PDP client configuration: {0}")]
    Config(String),
}

impl PdpError {
    /// Every [`PdpError::reason`], for metrics exported before the first failure.
    pub const REASONS: [&'static str; 5] = ["unreachable", "timeout", "bad_answer", "untranslatable", "config"];

    /// A bounded name for the failure: a metric label and the audit log's detail.
    pub fn reason(&self) -> &'static str {
        match self {
            PdpError::Unreachable { .. } => "unreachable",
            PdpError::Timeout(_) => "timeout",
            PdpError::BadAnswer(_) => "bad_answer",
            PdpError::Untranslatable(_) => "untranslatable",
            PdpError::Config(_) => "config",
        }
    }
}
