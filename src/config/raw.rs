//! The configuration file exactly as written: every section and key of DESIGN §4, nothing
//! else (unknown keys are rejected). Values that need checking beyond their YAML type
//! (addresses, URLs, durations, enum names) are kept as text here so that validation can
//! report every bad value at once, each with its field path.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// The whole file. Required sections are `Option` so that their absence is reported by
/// validation together with every other problem.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub grpc_listen: Option<String>,
    pub admin_explain: Option<bool>,
    pub mode: Option<String>,
    pub upstream: Option<RawUpstream>,
    pub tls: Option<RawListenerTls>,
    pub auth: Option<RawAuth>,
    pub policies: Option<RawPolicies>,
    pub collections: Option<Vec<RawCollectionRule>>,
    pub audit: Option<RawAudit>,
    pub limits: Option<RawLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub kind: Option<String>,
    pub url: Option<String>,
    pub timeout: Option<String>,
    pub tls: Option<RawUpstreamTls>,
    pub api_key_env: Option<String>,
    pub grpc_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub issuer: Option<String>,
    pub audience: Option<OneOrMany>,
    pub algorithms: Option<Vec<String>>,
    pub hs256_secret_env: Option<String>,
    pub public_key_file: Option<String>,
    pub jwks_url: Option<String>,
    pub jwks_ca_file: Option<String>,
    pub leeway: Option<String>,
    pub principal: Option<RawPrincipal>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrincipal {
    pub id: Option<String>,
    pub roles: Option<String>,
    pub attr: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicies {
    pub dir: Option<String>,
    pub watch: Option<bool>,
    /// Replaced by `evaluation`; read only to refuse it with a message saying what to write.
    pub strict_evaluation: Option<bool>,
    pub evaluation: Option<String>,
    pub pdp: Option<RawPdp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPdp {
    pub url: Option<String>,
    pub timeout: Option<String>,
    pub plan_cache_ttl: Option<String>,
    pub send_token: Option<bool>,
    pub tls: Option<RawPdpTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPdpTls {
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCollectionRule {
    pub name: Option<String>,
    pub resource_kind: Option<String>,
    pub attr_prefix: Option<String>,
    pub required_attrs: Option<Vec<String>>,
    pub stamp: Option<BTreeMap<String, String>>,
    pub post_filter_only: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub path: Option<String>,
    pub on_failure: Option<String>,
    pub flush_interval: Option<String>,
}

/// Limits are signed so that a negative number is reported by validation ("must be > 0")
/// rather than stopping the parse.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body_bytes: Option<i64>,
    pub max_filter_terms: Option<i64>,
    pub header_timeout: Option<String>,
    pub body_timeout: Option<String>,
    pub max_connections: Option<i64>,
    pub max_upstream_requests: Option<i64>,
    pub workers: Option<i64>,
}

/// A value written either as one string or as a list of strings (`auth.audience`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;

        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }

        deserializer.deserialize_any(OneOrManyVisitor)
    }
}
