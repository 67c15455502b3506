//! Qdrant point ids: an unsigned integer or a UUID, normalised as Qdrant reads them.

use serde_json::Value;
use std::fmt;

/// A point id as Qdrant reads it: an unsigned integer, or a UUID kept in lower-case
/// hyphenated form whatever form was sent (Qdrant accepts the simple, braced and URN forms).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PointId {
    Num(u64),
    Uuid(String),
}

impl PointId {
    /// A path or query form: an integer as Rust parses `u64` (as Qdrant does), else a UUID.
    pub fn parse(s: &str) -> Option<PointId> {
        if let Ok(n) = s.parse::<u64>() {
            return Some(PointId::Num(n));
        }
        uuid::Uuid::parse_str(s)
            .ok()
            .map(|u| PointId::Uuid(u.hyphenated().to_string()))
    }

    /// A JSON id: a non-negative integer or a UUID string (a numeric string is not an id).
    pub fn from_json(v: &Value) -> Option<PointId> {
        match v {
            Value::Number(n) => n.as_u64().map(PointId::Num),
            Value::String(s) => uuid::Uuid::parse_str(s)
                .ok()
                .map(|u| PointId::Uuid(u.hyphenated().to_string())),
            _ => None,
        }
    }

    /// The id as Qdrant writes it in JSON.
    pub fn to_json(&self) -> Value {
        match self {
            PointId::Num(n) => Value::from(*n),
            PointId::Uuid(s) => Value::from(s.as_str()),
        }
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(s) => f.write_str(s),
        }
    }
}
