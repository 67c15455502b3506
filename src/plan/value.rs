//! CEL runtime values, shared by the policy evaluator, the planner and the reference evaluator.

use chrono::{DateTime, FixedOffset};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A key of a CEL map: CEL allows strings, integers and booleans.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MapKey {
    Bool(bool),
    Int(i64),
    Uint(u64),
    String(Arc<str>),
}

/// A CEL value.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    String(Arc<str>),
    Bytes(Arc<[u8]>),
    List(Arc<Vec<Value>>),
    Map(Arc<BTreeMap<MapKey, Value>>),
    Timestamp(DateTime<FixedOffset>),
    Duration(chrono::Duration),
    /// Cerbos' `hierarchy(...)` value: its segments.
    Hierarchy(Arc<Vec<String>>),
    /// A type value, as returned by `type(x)`.
    Type(&'static str),
}

impl Value {
    pub fn string(s: &str) -> Value {
        Value::String(Arc::from(s))
    }

    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    pub fn map(entries: BTreeMap<MapKey, Value>) -> Value {
        Value::Map(Arc::new(entries))
    }

    /// The CEL type name of this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null_type",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Timestamp(_) => "google.protobuf.Timestamp",
            Value::Duration(_) => "google.protobuf.Duration",
            Value::Hierarchy(_) => "hierarchy",
            Value::Type(_) => "type",
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a number, if it is one (CEL's cross-type numeric comparisons).
    pub fn as_number(&self) -> Option<Number> {
        match self {
            Value::Int(i) => Some(Number::Int(*i)),
            Value::Uint(u) => Some(Number::Uint(*u)),
            Value::Double(d) => Some(Number::Double(*d)),
            _ => None,
        }
    }

    /// Converts a JSON value the way protobuf's `Struct` does for Cerbos inputs and the way
    /// a vector database stores metadata: integers stay integers, other numbers are doubles.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::Uint(u)
                } else {
                    Value::Double(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::string(s),
            serde_json::Value::Array(a) => Value::list(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::map(
                o.iter()
                    .map(|(k, v)| (MapKey::String(Arc::from(k.as_str())), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The JSON form of this value, as it appears in a plan's `{"value": …}` operand.
    /// Timestamps and durations are not JSON; they print as their CEL string forms.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Uint(u) => J::from(*u),
            Value::Double(d) => serde_json::Number::from_f64(*d).map(J::Number).unwrap_or(J::Null),
            Value::String(s) => J::String(s.to_string()),
            Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
            Value::List(l) => J::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
            Value::Timestamp(t) => J::String(format_timestamp(t)),
            Value::Duration(d) => J::String(format_duration(d)),
            Value::Hierarchy(h) => J::String(h.join(".")),
            Value::Type(t) => J::String((*t).to_string()),
        }
    }

    /// CEL equality (heterogeneous: values of different types are unequal, numbers compare
    /// by value across int, uint and double).
    pub fn cel_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.cel_eq(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter().all(|(k, v)| {
                        lookup_key(b, k).is_some_and(|w| v.cel_eq(w))
                    })
            }
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::Duration(a), Value::Duration(b)) => a == b,
            (Value::Hierarchy(a), Value::Hierarchy(b)) => a == b,
            (Value::Type(a), Value::Type(b)) => a == b,
            _ => match (self.as_number(), other.as_number()) {
                (Some(a), Some(b)) => a.compare(b) == Some(Ordering::Equal),
                _ => false,
            },
        }
    }

    /// CEL ordering; `None` when the two values cannot be ordered.
    pub fn cel_cmp(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::Bytes(a), Value::Bytes(b)) => Some(a.cmp(b)),
            (Value::Timestamp(a), Value::Timestamp(b)) => Some(a.cmp(b)),
            (Value::Duration(a), Value::Duration(b)) => Some(a.cmp(b)),
            _ => match (self.as_number(), other.as_number()) {
                (Some(a), Some(b)) => a.compare(b),
                _ => None,
            },
        }
    }

    /// A map key for this value, if CEL allows it as one.
    pub fn to_map_key(&self) -> Option<MapKey> {
        match self {
            Value::Bool(b) => Some(MapKey::Bool(*b)),
            Value::Int(i) => Some(MapKey::Int(*i)),
            Value::Uint(u) => Some(MapKey::Uint(*u)),
            Value::String(s) => Some(MapKey::String(s.clone())),
            Value::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => {
                Some(MapKey::Int(*d as i64))
            }
            _ => None,
        }
    }
}

/// Looks a key up in a CEL map, treating numeric keys by value (`m[1]` finds `1u`).
pub fn lookup_key<'m>(map: &'m BTreeMap<MapKey, Value>, key: &MapKey) -> Option<&'m Value> {
    if let Some(v) = map.get(key) {
        return Some(v);
    }
    match key {
        MapKey::Int(i) if *i >= 0 => map.get(&MapKey::Uint(*i as u64)),
        MapKey::Uint(u) => i64::try_from(*u).ok().and_then(|i| map.get(&MapKey::Int(i))),
        _ => None,
    }
}

impl MapKey {
    pub fn to_value(&self) -> Value {
        match self {
            MapKey::Bool(b) => Value::Bool(*b),
            MapKey::Int(i) => Value::Int(*i),
            MapKey::Uint(u) => Value::Uint(*u),
            MapKey::String(s) => Value::String(s.clone()),
        }
    }

    pub fn string(s: &str) -> MapKey {
        MapKey::String(Arc::from(s))
    }
}

impl fmt::Display for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapKey::Bool(b) => write!(f, "{b}"),
            MapKey::Int(i) => write!(f, "{i}"),
            MapKey::Uint(u) => write!(f, "{u}"),
            MapKey::String(s) => f.write_str(s),
        }
    }
}

/// A number of any CEL numeric type.
#[derive(Clone, Copy, Debug)]
pub enum Number {
    Int(i64),
    Uint(u64),
    Double(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Uint(u) => u as f64,
            Number::Double(d) => d,
        }
    }

    /// Compares by mathematical value; NaN compares as unordered.
    pub fn compare(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
            (Number::Uint(a), Number::Uint(b)) => Some(a.cmp(&b)),
            (Number::Int(a), Number::Uint(b)) => Some(if a < 0 {
                Ordering::Less
            } else {
                (a as u64).cmp(&b)
            }),
            (Number::Uint(a), Number::Int(b)) => Some(if b < 0 {
                Ordering::Greater
            } else {
                a.cmp(&(b as u64))
            }),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }
}

/// RFC 3339 with the offset kept, as cel-go prints timestamps.
pub fn format_timestamp(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Protobuf duration form: seconds with an `s` suffix, fractional part only when needed.
pub fn format_duration(d: &chrono::Duration) -> String {
    let secs = d.num_seconds();
    let nanos = (*d - chrono::Duration::seconds(secs))
        .num_nanoseconds()
        .unwrap_or(0);
    if nanos == 0 {
        format!("{secs}s")
    } else {
        let frac = format!("{:09}", nanos.abs());
        let frac = frac.trim_end_matches('0');
        let sign = if secs == 0 && nanos < 0 { "-" } else { "" };
        format!("{sign}{secs}.{frac}s")
    }
}

/// Parses a CEL/protobuf duration string such as `1h`, `90m`, `3600s`, `1.5s`, `1h30m`.
pub fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: f64 = match unit {
            "h" => 3.6e12,
            "m" => 6.0e10,
            "s" => 1.0e9,
            "ms" => 1.0e6,
            "us" | "µs" => 1.0e3,
            "ns" => 1.0,
            _ => return None,
        };
        total_nanos += (number * scale).round() as i128;
    }
    let total = i64::try_from(total_nanos).ok()?;
    let d = chrono::Duration::nanoseconds(total);
    Some(if neg { -d } else { d })
}

/// Parses an RFC 3339 timestamp.
pub fn parse_timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}
