//! CEL's standard functions and Cerbos' extension functions over known values.
//!
//! Semantics follow cel-go (which Cerbos embeds) and Cerbos' own library: a wrong argument
//! type or count is `NoSuchOverload`, a bad value (regex, timestamp string, index) is
//! `InvalidArgument` or `IndexOutOfRange`, and integer arithmetic that leaves i64/u64 is
//! `Overflow`.

use super::value::{
    format_duration, format_timestamp, lookup_key, parse_duration, parse_timestamp, Value,
};
use super::EvalError;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, TimeDelta, Timelike};
use regex::Regex;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// What a function call may read besides its arguments.
#[derive(Clone, Copy, Debug)]
pub struct CallContext {
    /// The instant `now()` returns (fixed per request, or per test).
    pub now: DateTime<FixedOffset>,
}

type Result<T> = std::result::Result<T, EvalError>;

/// Whether this module implements the function `name` (namespaced ones as `math.greatest`).
pub fn is_implemented(name: &str) -> bool {
    let ctx = CallContext {
        now: chrono::DateTime::UNIX_EPOCH.fixed_offset(),
    };
    !matches!(call(name, &[], &ctx), Err(EvalError::UnknownFunction(_)))
}

/// Calls the CEL function `name` on known arguments. For a member call (`x.f(y)`) the
/// target comes first (`[x, y]`).
pub fn call(name: &str, args: &[Value], ctx: &CallContext) -> Result<Value> {
    match name {
        // Standard library.
        "size" => size(name, args),
        "contains" => string_test(name, args, |s, t| s.contains(t)),
        "startsWith" => string_test(name, args, |s, t| s.starts_with(t)),
        "endsWith" => string_test(name, args, |s, t| s.ends_with(t)),
        "matches" => matches(name, args),
        "int" => to_int(name, args),
        "uint" => to_uint(name, args),
        "double" => to_double(name, args),
        "string" => to_string(name, args),
        "bool" => to_bool(name, args),
        "bytes" => to_bytes(name, args),
        "type" => match args {
            [v] => Ok(Value::Type(v.type_name())),
            _ => Err(overload(name, args)),
        },
        // `id` is Cerbos' internal identity function.
        "dyn" | "id" => match args {
            [v] => Ok(v.clone()),
            _ => Err(overload(name, args)),
        },
        "timestamp" => to_timestamp(name, args),
        "duration" => to_duration(name, args),
        "getFullYear" | "getMonth" | "getDate" | "getDayOfMonth" | "getDayOfWeek"
        | "getDayOfYear" | "getHours" | "getMinutes" | "getSeconds" | "getMilliseconds" => {
            time_part(name, args)
        }

        // Strings extension.
        "charAt" => char_at(name, args),
        "indexOf" => index_of(name, args),
        "lastIndexOf" => last_index_of(name, args),
        "lowerAscii" => string_map(name, args, str::to_ascii_lowercase),
        "upperAscii" => string_map(name, args, str::to_ascii_uppercase),
        "trim" => string_map(name, args, |s| s.trim().to_string()),
        "replace" => replace(name, args),
        "split" => split(name, args),
        "substring" => substring(name, args),
        "join" => join(name, args),
        "reverse" => reverse(name, args),

        // Lists extension.
        "distinct" => distinct(name, args),
        "flatten" => flatten(name, args),
        "lists.range" => list_range(name, args),
        "slice" => slice(name, args),
        "sort" => sort(name, args),

        // Math extension.
        "math.greatest" => extreme(name, args, Ordering::Greater),
        "math.least" => extreme(name, args, Ordering::Less),
        "math.abs" => math_abs(name, args),
        "math.sign" => math_sign(name, args),
        "math.ceil" => double_map(name, args, f64::ceil),
        "math.floor" => double_map(name, args, f64::floor),
        "math.round" => double_map(name, args, f64::round),
        "math.trunc" => double_map(name, args, f64::trunc),
        "math.sqrt" => math_sqrt(name, args),
        "math.isNaN" => double_test(name, args, f64::is_nan),
        "math.isInf" => double_test(name, args, f64::is_infinite),
        "math.isFinite" => double_test(name, args, f64::is_finite),

        // Sets extension.
        "sets.contains" => list_pair(name, args, |a, b| Value::Bool(is_subset(b, a))),
        "sets.equivalent" => list_pair(name, args, |a, b| {
            Value::Bool(is_subset(a, b) && is_subset(b, a))
        }),
        "sets.intersects" => list_pair(name, args, |a, b| Value::Bool(intersects(a, b))),

        // Cerbos extensions.
        "hasIntersection" | "has_intersection" => {
            list_pair(name, args, |a, b| Value::Bool(intersects(a, b)))
        }
        "isSubset" | "is_subset" => list_pair(name, args, |a, b| Value::Bool(is_subset(a, b))),
        "intersect" => list_pair(name, args, intersect),
        "except" => list_pair(name, args, |a, b| {
            Value::list(a.iter().filter(|x| !member(x, b)).cloned().collect())
        }),
        "now" => match args {
            [] => Ok(Value::Timestamp(ctx.now)),
            _ => Err(overload(name, args)),
        },
        "timeSince" => match args {
            [Value::Timestamp(t)] => checked_duration(ctx.now.signed_duration_since(*t)),
            _ => Err(overload(name, args)),
        },
        "inIPAddrRange" => match args {
            [Value::String(ip), Value::String(cidr)] => in_ip_range(ip, cidr).map(Value::Bool),
            _ => Err(overload(name, args)),
        },
        "hierarchy" => hierarchy(name, args),
        "hierarchy_index" => match args {
            [h, i] => hierarchy_index(h, i),
            _ => Err(overload(name, args)),
        },
        "ancestorOf" | "descendentOf" | "commonAncestors" | "immediateChildOf"
        | "immediateParentOf" | "overlaps" | "siblingOf" => hierarchy_method(name, args),

        _ => Err(EvalError::UnknownFunction(name.to_string())),
    }
}

// ---------------------------------------------------------------------------------------
// Errors and small helpers.

fn overload(name: &str, args: &[Value]) -> EvalError {
    let types: Vec<&str> = args.iter().map(Value::type_name).collect();
    EvalError::NoSuchOverload(format!("{name}({})", types.join(", ")))
}

fn binary_overload(op: &str, a: &Value, b: &Value) -> EvalError {
    EvalError::NoSuchOverload(format!("{} {op} {}", a.type_name(), b.type_name()))
}

fn invalid(msg: impl Into<String>) -> EvalError {
    EvalError::InvalidArgument(msg.into())
}

fn out_of_range(index: i64) -> EvalError {
    EvalError::IndexOutOfRange(index.to_string())
}

fn text(s: String) -> Value {
    Value::String(Arc::from(s))
}

fn int_len(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `i` as an index into a sequence of `len` items, if `0 <= i <= len`.
fn index_upto(i: i64, len: usize) -> Option<usize> {
    usize::try_from(i).ok().filter(|&i| i <= len)
}

fn member(x: &Value, list: &[Value]) -> bool {
    list.iter().any(|y| x.cel_eq(y))
}

fn is_subset(a: &[Value], b: &[Value]) -> bool {
    a.iter().all(|x| member(x, b))
}

fn intersects(a: &[Value], b: &[Value]) -> bool {
    a.iter().any(|x| member(x, b))
}

// ---------------------------------------------------------------------------------------
// Arithmetic and `in`, called by the evaluator for operators.

/// CEL's largest duration: about 10000 years.
const MAX_DURATION_SECONDS: i64 = 315_576_000_000;

fn checked_duration(d: TimeDelta) -> Result<Value> {
    if d.num_seconds().abs() > MAX_DURATION_SECONDS {
        Err(EvalError::Overflow)
    } else {
        Ok(Value::Duration(d))
    }
}

/// CEL timestamps lie in years 1 to 9999 (UTC).
fn timestamp_in_range(t: &DateTime<FixedOffset>) -> bool {
    (1..=9999).contains(&t.naive_utc().year())
}

fn shift(t: &DateTime<FixedOffset>, d: TimeDelta) -> Result<Value> {
    t.checked_add_signed(d)
        .filter(timestamp_in_range)
        .map(Value::Timestamp)
        .ok_or(EvalError::Overflow)
}

fn concat<T: Clone>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out
}

/// CEL `a + b`.
pub fn add(a: &Value, b: &Value) -> Result<Value> {
    use Value as V;
    match (a, b) {
        (V::Int(x), V::Int(y)) => x.checked_add(*y).map(V::Int).ok_or(EvalError::Overflow),
        (V::Uint(x), V::Uint(y)) => x.checked_add(*y).map(V::Uint).ok_or(EvalError::Overflow),
        (V::Double(x), V::Double(y)) => Ok(V::Double(x + y)),
        (V::String(x), V::String(y)) => Ok(text(format!("{x}{y}"))),
        (V::Bytes(x), V::Bytes(y)) => Ok(V::Bytes(Arc::from(concat(x, y)))),
        (V::List(x), V::List(y)) => Ok(V::list(concat(x, y))),
        (V::Timestamp(t), V::Duration(d)) | (V::Duration(d), V::Timestamp(t)) => shift(t, *d),
        (V::Duration(x), V::Duration(y)) => x
            .checked_add(y)
            .ok_or(EvalError::Overflow)
            .and_then(checked_duration),
        _ => Err(binary_overload("+", a, b)),
    }
}

/// CEL `a - b`.
pub fn sub(a: &Value, b: &Value) -> Result<Value> {
    use Value as V;
    match (a, b) {
        (V::Int(x), V::Int(y)) => x.checked_sub(*y).map(V::Int).ok_or(EvalError::Overflow),
        (V::Uint(x), V::Uint(y)) => x.checked_sub(*y).map(V::Uint).ok_or(EvalError::Overflow),
        (V::Double(x), V::Double(y)) => Ok(V::Double(x - y)),
        (V::Timestamp(t), V::Duration(d)) => shift(t, -*d),
        (V::Timestamp(x), V::Timestamp(y)) => checked_duration(x.signed_duration_since(*y)),
        (V::Duration(x), V::Duration(y)) => x
            .checked_sub(y)
            .ok_or(EvalError::Overflow)
            .and_then(checked_duration),
        _ => Err(binary_overload("-", a, b)),
    }
}

/// CEL `a * b`.
pub fn mult(a: &Value, b: &Value) -> Result<Value> {
    use Value as V;
    match (a, b) {
        (V::Int(x), V::Int(y)) => x.checked_mul(*y).map(V::Int).ok_or(EvalError::Overflow),
        (V::Uint(x), V::Uint(y)) => x.checked_mul(*y).map(V::Uint).ok_or(EvalError::Overflow),
        (V::Double(x), V::Double(y)) => Ok(V::Double(x * y)),
        _ => Err(binary_overload("*", a, b)),
    }
}

/// CEL `a / b`: integer division truncates; dividing an integer by zero is an error.
pub fn div(a: &Value, b: &Value) -> Result<Value> {
    use Value as V;
    match (a, b) {
        (V::Int(_), V::Int(0)) | (V::Uint(_), V::Uint(0)) => Err(EvalError::DivisionByZero),
        (V::Int(x), V::Int(y)) => x.checked_div(*y).map(V::Int).ok_or(EvalError::Overflow),
        (V::Uint(x), V::Uint(y)) => x.checked_div(*y).map(V::Uint).ok_or(EvalError::Overflow),
        (V::Double(x), V::Double(y)) => Ok(V::Double(x / y)),
        _ => Err(binary_overload("/", a, b)),
    }
}

/// CEL `a % b` (integers only; the sign follows the dividend).
pub fn modulo(a: &Value, b: &Value) -> Result<Value> {
    use Value as V;
    match (a, b) {
        (V::Int(_), V::Int(0)) | (V::Uint(_), V::Uint(0)) => Err(EvalError::DivisionByZero),
        (V::Int(x), V::Int(y)) => x.checked_rem(*y).map(V::Int).ok_or(EvalError::Overflow),
        (V::Uint(x), V::Uint(y)) => x.checked_rem(*y).map(V::Uint).ok_or(EvalError::Overflow),
        _ => Err(binary_overload("%", a, b)),
    }
}

/// CEL unary `-a` (int and double only).
pub fn negate(a: &Value) -> Result<Value> {
    match a {
        Value::Int(x) => x.checked_neg().map(Value::Int).ok_or(EvalError::Overflow),
        Value::Double(x) => Ok(Value::Double(-x)),
        _ => Err(overload("-_", std::slice::from_ref(a))),
    }
}

/// CEL `elem in container`: list membership by CEL equality, or map key membership with
/// numeric keys compared by value.
pub fn contains_in(elem: &Value, container: &Value) -> Result<bool> {
    match container {
        Value::List(items) => Ok(member(elem, items)),
        Value::Map(m) => Ok(elem
            .to_map_key()
            .is_some_and(|k| lookup_key(m, &k).is_some())),
        _ => Err(binary_overload("in", elem, container)),
    }
}

// ---------------------------------------------------------------------------------------
// Standard functions.

fn size(name: &str, args: &[Value]) -> Result<Value> {
    let n = match args {
        [Value::String(s)] => s.chars().count(),
        [Value::Bytes(b)] => b.len(),
        [Value::List(l)] => l.len(),
        [Value::Map(m)] => m.len(),
        [Value::Hierarchy(h)] => h.len(),
        _ => return Err(overload(name, args)),
    };
    Ok(int_len(n))
}

fn string_test(name: &str, args: &[Value], test: fn(&str, &str) -> bool) -> Result<Value> {
    match args {
        [Value::String(s), Value::String(t)] => Ok(Value::Bool(test(s, t))),
        _ => Err(overload(name, args)),
    }
}

fn matches(name: &str, args: &[Value]) -> Result<Value> {
    match args {
        [Value::String(s), Value::String(pattern)] => {
            Ok(Value::Bool(compile_regex(pattern)?.is_match(s)))
        }
        _ => Err(overload(name, args)),
    }
}

/// Compiled regexes are kept per thread; the cache is emptied when it grows too big.
const REGEX_CACHE_SIZE: usize = 256;

fn compile_regex(pattern: &str) -> Result<Regex> {
    thread_local! {
        static CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
    }
    if let Some(re) = CACHE.with(|c| c.borrow().get(pattern).cloned()) {
        return Ok(re);
    }
    let re = Regex::new(&re2_to_rust(pattern))
        .map_err(|e| invalid(format!("invalid regex {pattern:?}: {e}")))?;
    CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.len() >= REGEX_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(pattern.to_string(), re.clone());
    });
    Ok(re)
}

/// Rewrites the RE2 syntax (cel-go's dialect) that the `regex` crate reads differently:
/// RE2's `\d \w \s \b` are ASCII-only, `\Q…\E` quotes a literal, and inside a class `[`,
/// `&&`, `--` and `~~` are plain characters rather than nesting and set operations.
fn re2_to_rust(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    // Just after `[` or `[^`, where a `]` is a literal.
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                match e {
                    'd' => out.push_str("[0-9]"),
                    'D' => out.push_str("[^0-9]"),
                    'w' => out.push_str("[0-9A-Za-z_]"),
                    'W' => out.push_str("[^0-9A-Za-z_]"),
                    's' => out.push_str(r"[\t\n\f\r ]"),
                    'S' => out.push_str(r"[^\t\n\f\r ]"),
                    'b' | 'B' if !in_class => {
                        out.push_str("(?-u:\\");
                        out.push(e);
                        out.push(')');
                    }
                    'Q' if !in_class => {
                        let mut literal = String::new();
                        while let Some(q) = chars.next() {
                            if q == '\\' && chars.peek() == Some(&'E') {
                                chars.next();
                                break;
                            }
                            literal.push(q);
                        }
                        out.push_str(&regex::escape(&literal));
                    }
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                class_start = true;
            }
            // A POSIX class such as `[:alpha:]` is copied whole.
            '[' if chars.peek() == Some(&':') => {
                out.push('[');
                while let Some(p) = chars.next() {
                    out.push(p);
                    if p == ':' && chars.peek() == Some(&']') {
                        chars.next();
                        out.push(']');
                        break;
                    }
                }
            }
            '[' => out.push_str(r"\["),
            ']' if in_class && !at_class_start => {
                in_class = false;
                out.push(']');
            }
            '&' | '-' | '~' if in_class && chars.peek() == Some(&c) => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// cel-go's checked double-to-int conversion: NaN, infinities and values at or beyond the
/// i64 bounds are out of range.
fn double_to_int(d: f64) -> Result<i64> {
    if d.is_finite() && d > i64::MIN as f64 && d < i64::MAX as f64 {
        Ok(d as i64)
    } else {
        Err(EvalError::Overflow)
    }
}

fn to_int(name: &str, args: &[Value]) -> Result<Value> {
    match args {
        [Value::Int(i)] => Ok(Value::Int(*i)),
        [Value::Uint(u)] => i64::try_from(*u)
            .map(Value::Int)
            .map_err(|_| EvalError::Overflow),
        [Value::Double(d)] => double_to_int(*d).map(Value::Int),
        [Value::String(s)] => s
            .parse()
            .map(Value::Int)
            .map_err(|_| invalid(format!("cannot convert {s:?} to int"))),
        [Value::Timestamp(t)] => Ok(Value::Int(t.timestamp())),
        _ => Err(overload(name, args)),
    }
}

fn to_uint(name: &str, args: &[Value]) -> Result<Value> {
    match args {
        [Value::Uint(u)] => Ok(Value::Uint(*u)),
        [Value::Int(i)] => u64::try_from(*i)
            .map(Value::Uint)
            .map_err(|_| EvalError::Overflow),
        [Value::Double(d)] => {
            if d.is_finite() && *d >= 0.0 && *d < u64::MAX as f64 {
                Ok(Value::Uint(*d as u64))
            } else {
                Err(EvalError::Overflow)
            }
        }
        [Value::String(s)] => s
            .parse()
            .map(Value::Uint)
            .map_err(|_| invalid(format!("cannot convert {s:?} to uint"))),
        _ => Err(overload(name, args)),
    }
}

fn to_double(name: &str, args: &[Value]) -> Result<Value> {
    match args {
        [Value::Double(d)] => Ok(Value::Double(*d)),
        [Value::Int(i)] => Ok(Value::Double(*i as f64)),
        [Value::Uint(u)] => Ok(Value::Double(*u as f64)),
        [Value::String(s)] => s
            .parse()
            .map(Value::Double)
            .map_err(|_| invalid(format!("cannot convert {s:?} to double"))),
        _ => Err(overload(name, args)),
    }
}

fn to_string(name: &str, args: &[Value]) -> Result<Value> {
    let s = match args {
        [Value::String(s)] => return Ok(Value::String(s.clone())),
        [Value::Bool(b)] => b.to_string(),
        [Value::Int(i)] => i.to_string(),
        [Value::Uint(u)] => u.to_string(),
        [Value::Double(d)] => format_double(*d),
        [Value::Bytes(b)] => std::str::from_utf8(b)
            .map_err(|_| invalid("bytes are not valid UTF-8"))?
            .to_string(),
        [Value::Timestamp(t)] => format_timestamp(t),
        [Value::Duration(d)] => format_duration(d),
        [Value::Hierarchy(h)] => h.join("."),
        [Value::Type(t)] => (*t).to_string(),
        _ => return Err(overload(name, args)),
    };
    Ok(text(s))
}

/// Formats a double as Go's `strconv.FormatFloat(d, 'g', -1, 64)`, which cel-go uses
/// for `string(double)`: shortest digits, exponent form below 1e-4 and from 1e6.
fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sign = if d < 0.0 { "-" } else { "" };
    let sci = format!("{:e}", d.abs()); // shortest round-trip digits, e.g. "1.2345e6"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{exp_sign}{:02}", exp.abs())
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            let (int_part, frac) = digits.split_at(int_len);
            format!("{sign}{int_part}.{frac}")
        }
    } else {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    }
}

fn to_bool(name: &str, args: &[Value]) -> Result<Value> {
    match args {
        [Value::Bool(b)] => Ok(Value::Bool(*b)),
        // The spellings Go's strconv.ParseBool accepts.
        [Value::String(s)] => match &**s {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
            _ => Err(invalid(format!("cannot convert {s:?} to bool"))),
        },
        _ => Err(overload(name, args)),
    }
}

fn to_bytes(name: &str, args: &[Value]) -> Result<Value> {
    match args {
        [Value::Bytes(b)] => Ok(Value::Bytes(b.clone())),
        [Value::String(s)] => Ok(Value::Bytes(Arc::from(s.as_bytes()))),
        _ => Err(overload(name, args)),
    }
}

fn to_timestamp(name: &str, args: &[Value]) -> Result<Value> {
    match args {
        [Value::Timestamp(t)] => Ok(Value::Timestamp(*t)),
        [Value::String(s)] => parse_timestamp(s)
            .filter(timestamp_in_range)
            .map(Value::Timestamp)
            .ok_or_else(|| invalid(format!("invalid timestamp {s:?}"))),
        [Value::Int(secs)] => DateTime::from_timestamp(*secs, 0)
            .map(|t| t.fixed_offset())
            .filter(timestamp_in_range)
            .map(Value::Timestamp)
            .ok_or(EvalError::Overflow),
        _ => Err(overload(name, args)),
    }
}

fn to_duration(name: &str, args: &[Value]) -> Result<Value> {
    match args {
        [Value::Duration(d)] => Ok(Value::Duration(*d)),
        [Value::String(s)] => duration_from_str(s)
            .filter(|d| d.num_seconds().abs() <= MAX_DURATION_SECONDS)
            .map(Value::Duration)
            .ok_or_else(|| invalid(format!("invalid duration {s:?}"))),
        _ => Err(overload(name, args)),
    }
}

/// Go's `time.ParseDuration` forms: also a leading `+` and a bare `0`.
fn duration_from_str(s: &str) -> Option<TimeDelta> {
    let unsigned = match s.strip_prefix('+') {
        Some(rest) if !rest.starts_with('-') => rest,
        Some(_) => return None,
        None => s,
    };
    if unsigned.strip_prefix('-').unwrap_or(unsigned) == "0" {
        return Some(TimeDelta::zero());
    }
    parse_duration(unsigned)
}

/// The timestamp getters (UTC unless a zone is given) and the duration getters.
fn time_part(name: &str, args: &[Value]) -> Result<Value> {
    let local: NaiveDateTime = match args {
        [Value::Timestamp(t)] => t.naive_utc(),
        [Value::Timestamp(t), Value::String(zone)] => {
            t.with_timezone(&parse_zone(zone)?).naive_local()
        }
        [Value::Duration(d)] => return duration_part(name, d, args),
        _ => return Err(overload(name, args)),
    };
    let n: i64 = match name {
        "getFullYear" => local.year().into(),
        "getMonth" => local.month0().into(),
        "getDate" => local.day().into(),
        "getDayOfMonth" => local.day0().into(),
        "getDayOfWeek" => local.weekday().num_days_from_sunday().into(),
        "getDayOfYear" => local.ordinal0().into(),
        "getHours" => local.hour().into(),
        "getMinutes" => local.minute().into(),
        "getSeconds" => local.second().into(),
        // `% 1000` folds chrono's leap-second representation back into range.
        "getMilliseconds" => (local.nanosecond() / 1_000_000 % 1000).into(),
        _ => return Err(overload(name, args)),
    };
    Ok(Value::Int(n))
}

/// Duration getters return whole units of the total, as cel-go does.
fn duration_part(name: &str, d: &TimeDelta, args: &[Value]) -> Result<Value> {
    let n = match name {
        "getHours" => d.num_hours(),
        "getMinutes" => d.num_minutes(),
        "getSeconds" => d.num_seconds(),
        "getMilliseconds" => d.num_milliseconds(),
        _ => return Err(overload(name, args)),
    };
    Ok(Value::Int(n))
}

/// A time zone argument: `UTC` (and its aliases), `Etc/GMT±N`, or an offset `[+-]HH:MM`.
/// Other IANA names would need a zone database, which we do not ship.
fn parse_zone(zone: &str) -> Result<FixedOffset> {
    let bad = || invalid(format!("unsupported time zone {zone:?}"));
    let minutes: i32 = if let Some((h, m)) = zone.split_once(':') {
        let negative = h.starts_with('-');
        let digits = h.trim_start_matches(['+', '-']);
        let all_digits =
            |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(digits) || !all_digits(m) || h.len() > digits.len() + 1 {
            return Err(bad());
        }
        let hours: i32 = digits.parse().map_err(|_| bad())?;
        let mins: i32 = m.parse().map_err(|_| bad())?;
        if hours > 23 || mins > 59 {
            return Err(bad());
        }
        let total = hours * 60 + mins;
        if negative {
            -total
        } else {
            total
        }
    } else {
        match zone {
            "" | "UTC" | "Etc/UTC" | "UCT" | "Etc/UCT" | "GMT" | "Etc/GMT" | "GMT0"
            | "Etc/GMT0" | "Universal" | "Etc/Universal" | "Zulu" | "Etc/Zulu" | "Greenwich"
            | "Etc/Greenwich" => 0,
            _ => etc_gmt_offset(zone).ok_or_else(bad)?,
        }
    };
    FixedOffset::east_opt(minutes * 60).ok_or_else(bad)
}

/// `Etc/GMT+5` is five hours *behind* UTC (POSIX sign convention), in minutes.
fn etc_gmt_offset(zone: &str) -> Option<i32> {
    let rest = zone.strip_prefix("Etc/GMT")?;
    let (behind, hours) = match rest.split_at_checked(1)? {
        ("+", h) => (true, h),
        ("-", h) => (false, h),
        _ => return None,
    };
    if hours.is_empty() || !hours.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = hours.parse().ok()?;
    let max = if behind { 12 } else { 14 };
    (hours <= max).then_some(if behind { -hours * 60 } else { hours * 60 })
}

// ---------------------------------------------------------------------------------------
// Strings extension. Indices count Unicode code points.

fn string_map(name: &str, args: &[Value], f: fn(&str) -> String) -> Result<Value> {
    match args {
        [Value::String(s)] => Ok(text(f(s))),
        _ => Err(overload(name, args)),
    }
}

fn char_at(name: &str, args: &[Value]) -> Result<Value> {
    let [Value::String(s), Value::Int(i)] = args else {
        return Err(overload(name, args));
    };
    let chars: Vec<char> = s.chars().collect();
    let at = index_upto(*i, chars.len()).ok_or_else(|| out_of_range(*i))?;
    Ok(text(chars.get(at).map(char::to_string).unwrap_or_default()))
}

/// Whether `needle` occurs in `hay` at position `at`.
fn occurs_at(hay: &[char], needle: &[char], at: usize) -> bool {
    hay.get(at..at + needle.len()) == Some(needle)
}

fn index_of(name: &str, args: &[Value]) -> Result<Value> {
    let (s, sub, offset) = match args {
        [Value::String(s), Value::String(sub)] => (s, sub, None),
        [Value::String(s), Value::String(sub), Value::Int(o)] => (s, sub, Some(*o)),
        _ => return Err(overload(name, args)),
    };
    let hay: Vec<char> = s.chars().collect();
    let needle: Vec<char> = sub.chars().collect();
    let start = match offset {
        None => 0,
        // Like cel-go: an empty needle is found at any offset up to the length; otherwise
        // the offset must be a position inside the string.
        Some(o) => {
            let limit = if needle.is_empty() {
                hay.len()
            } else {
                hay.len().saturating_sub(1)
            };
            match index_upto(o, limit) {
                Some(at) if needle.is_empty() || !hay.is_empty() => at,
                _ => return Err(out_of_range(o)),
            }
        }
    };
    let found = (start..=hay.len()).find(|&at| occurs_at(&hay, &needle, at));
    Ok(found.map_or(Value::Int(-1), int_len))
}

fn last_index_of(name: &str, args: &[Value]) -> Result<Value> {
    let (s, sub, offset) = match args {
        [Value::String(s), Value::String(sub)] => (s, sub, None),
        [Value::String(s), Value::String(sub), Value::Int(o)] => (s, sub, Some(*o)),
        _ => return Err(overload(name, args)),
    };
    let hay: Vec<char> = s.chars().collect();
    let needle: Vec<char> = sub.chars().collect();
    let last = match offset {
        None => hay.len(),
        Some(o) => {
            let limit = if needle.is_empty() {
                hay.len()
            } else {
                hay.len().saturating_sub(1)
            };
            match index_upto(o, limit) {
                Some(at) if needle.is_empty() || !hay.is_empty() => at,
                _ => return Err(out_of_range(o)),
            }
        }
    };
    let found = (0..=last).rev().find(|&at| occurs_at(&hay, &needle, at));
    Ok(found.map_or(Value::Int(-1), int_len))
}

fn replace(name: &str, args: &[Value]) -> Result<Value> {
    let (s, from, to, limit) = match args {
        [Value::String(s), Value::String(f), Value::String(t)] => (s, f, t, -1),
        [Value::String(s), Value::String(f), Value::String(t), Value::Int(n)] => (s, f, t, *n),
        _ => return Err(overload(name, args)),
    };
    // A negative limit replaces every occurrence.
    let out = match usize::try_from(limit) {
        Ok(n) => s.replacen(&**from, to, n),
        Err(_) => s.replace(&**from, to),
    };
    Ok(text(out))
}

fn split(name: &str, args: &[Value]) -> Result<Value> {
    let (s, sep, limit) = match args {
        [Value::String(s), Value::String(sep)] => (s, sep, -1),
        [Value::String(s), Value::String(sep), Value::Int(n)] => (s, sep, *n),
        _ => return Err(overload(name, args)),
    };
    Ok(Value::list(
        go_split(s, sep, limit).into_iter().map(text).collect(),
    ))
}

/// Go's `strings.SplitN`: at most `n` pieces (all when `n < 0`, none when `n == 0`); an
/// empty separator splits into characters.
fn go_split(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let limit = usize::try_from(n).ok();
    if sep.is_empty() {
        let chars: Vec<char> = s.chars().collect();
        let pieces = limit.map_or(chars.len(), |n| n.min(chars.len()));
        let mut out: Vec<String> = Vec::with_capacity(pieces);
        for (i, c) in chars.iter().enumerate() {
            if i + 1 == pieces {
                out.push(chars[i..].iter().collect());
                break;
            }
            out.push(c.to_string());
        }
        return out;
    }
    match limit {
        Some(n) => s.splitn(n, sep).map(str::to_string).collect(),
        None => s.split(sep).map(str::to_string).collect(),
    }
}

fn substring(name: &str, args: &[Value]) -> Result<Value> {
    let (s, start, end) = match args {
        [Value::String(s), Value::Int(a)] => (s, *a, None),
        [Value::String(s), Value::Int(a), Value::Int(b)] => (s, *a, Some(*b)),
        _ => return Err(overload(name, args)),
    };
    let chars: Vec<char> = s.chars().collect();
    if let Some(end) = end {
        if start > end {
            return Err(invalid(format!(
                "invalid substring range: start {start}, end {end}"
            )));
        }
    }
    let from = index_upto(start, chars.len()).ok_or_else(|| out_of_range(start))?;
    let to = match end {
        Some(e) => index_upto(e, chars.len()).ok_or_else(|| out_of_range(e))?,
        None => chars.len(),
    };
    Ok(text(
        chars.get(from..to).unwrap_or_default().iter().collect(),
    ))
}

fn join(name: &str, args: &[Value]) -> Result<Value> {
    let (items, sep) = match args {
        [Value::List(l)] => (l, ""),
        [Value::List(l), Value::String(sep)] => (l, &**sep),
        _ => return Err(overload(name, args)),
    };
    let parts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
    parts
        .map(|p| text(p.join(sep)))
        .ok_or_else(|| overload(name, args))
}

fn reverse(name: &str, args: &[Value]) -> Result<Value> {
    match args {
        [Value::List(l)] => Ok(Value::list(l.iter().rev().cloned().collect())),
        [Value::String(s)] => Ok(text(s.chars().rev().collect())),
        _ => Err(overload(name, args)),
    }
}

// ---------------------------------------------------------------------------------------
// Lists extension.

fn distinct(name: &str, args: &[Value]) -> Result<Value> {
    let [Value::List(items)] = args else {
        return Err(overload(name, args));
    };
    let mut out: Vec<Value> = Vec::new();
    for v in items.iter() {
        if !member(v, &out) {
            out.push(v.clone());
        }
    }
    Ok(Value::list(out))
}

fn flatten(name: &str, args: &[Value]) -> Result<Value> {
    let (items, depth) = match args {
        [Value::List(l)] => (l, 1),
        [Value::List(l), Value::Int(d)] => (l, *d),
        _ => return Err(overload(name, args)),
    };
    if depth < 0 {
        return Err(invalid("flatten depth must be non-negative"));
    }
    let mut out = Vec::new();
    flatten_into(items, depth, &mut out);
    Ok(Value::list(out))
}

fn flatten_into(items: &[Value], depth: i64, out: &mut Vec<Value>) {
    for v in items {
        match v {
            Value::List(inner) if depth > 0 => flatten_into(inner, depth - 1, out),
            _ => out.push(v.clone()),
        }
    }
}

/// The largest list `lists.range` builds (cel-go's limit).
const MAX_RANGE: i64 = 10_000_000;

fn list_range(name: &str, args: &[Value]) -> Result<Value> {
    let [Value::Int(n)] = args else {
        return Err(overload(name, args));
    };
    if !(0..=MAX_RANGE).contains(n) {
        return Err(invalid(format!(
            "lists.range: size {n} must be in 0..={MAX_RANGE}"
        )));
    }
    Ok(Value::list((0..*n).map(Value::Int).collect()))
}

fn slice(name: &str, args: &[Value]) -> Result<Value> {
    let [Value::List(items), Value::Int(start), Value::Int(end)] = args else {
        return Err(overload(name, args));
    };
    if *start < 0 || *end < 0 || start > end {
        return Err(invalid(format!("cannot slice({start}, {end})")));
    }
    let to = index_upto(*end, items.len()).ok_or_else(|| out_of_range(*end))?;
    let from = index_upto(*start, to).ok_or_else(|| out_of_range(*start))?;
    Ok(Value::list(
        items.get(from..to).unwrap_or_default().to_vec(),
    ))
}

fn sort(name: &str, args: &[Value]) -> Result<Value> {
    let [Value::List(items)] = args else {
        return Err(overload(name, args));
    };
    let Some(first) = items.first() else {
        return Ok(Value::List(items.clone()));
    };
    let kind = first.type_name();
    let sortable = matches!(
        first,
        Value::Int(_)
            | Value::Uint(_)
            | Value::Double(_)
            | Value::Bool(_)
            | Value::String(_)
            | Value::Bytes(_)
            | Value::Timestamp(_)
            | Value::Duration(_)
    );
    if !sortable {
        return Err(invalid(format!("cannot sort a list of {kind}")));
    }
    if items.iter().any(|v| v.type_name() != kind) {
        return Err(invalid("cannot sort a list whose elements differ in type"));
    }
    let mut sorted = items.to_vec();
    // `total_cmp` keeps the order total when NaN is present.
    sorted.sort_by(|a, b| match (a, b) {
        (Value::Double(x), Value::Double(y)) => x.total_cmp(y),
        _ => a.cel_cmp(b).unwrap_or(Ordering::Equal),
    });
    Ok(Value::list(sorted))
}

// ---------------------------------------------------------------------------------------
// Math extension.

/// `math.greatest` / `math.least` over numeric arguments or one list of numbers; returns
/// the winning value with its own type.
fn extreme(name: &str, args: &[Value], want: Ordering) -> Result<Value> {
    let items: &[Value] = match args {
        [Value::List(l)] => l,
        _ => args,
    };
    let Some((first, rest)) = items.split_first() else {
        return Err(if args.is_empty() {
            overload(name, args)
        } else {
            invalid(format!("{name} needs at least one number"))
        });
    };
    let number = |v: &Value| v.as_number().ok_or_else(|| overload(name, args));
    let mut best = first;
    let mut best_n = number(first)?;
    for v in rest {
        let n = number(v)?;
        if n.compare(best_n) == Some(want) {
            best = v;
            best_n = n;
        }
    }
    Ok(best.clone())
}

fn math_abs(name: &str, args: &[Value]) -> Result<Value> {
    match args {
        [Value::Int(i)] => i.checked_abs().map(Value::Int).ok_or(EvalError::Overflow),
        [Value::Uint(u)] => Ok(Value::Uint(*u)),
        [Value::Double(d)] => Ok(Value::Double(d.abs())),
        _ => Err(overload(name, args)),
    }
}

fn math_sign(name: &str, args: &[Value]) -> Result<Value> {
    match args {
        [Value::Int(i)] => Ok(Value::Int(i.signum())),
        [Value::Uint(u)] => Ok(Value::Uint(u64::from(*u > 0))),
        // f64::signum maps ±0 to ±1; CEL's sign of zero is zero.
        [Value::Double(d)] if *d == 0.0 => Ok(Value::Double(0.0)),
        [Value::Double(d)] => Ok(Value::Double(d.signum())),
        _ => Err(overload(name, args)),
    }
}

fn math_sqrt(name: &str, args: &[Value]) -> Result<Value> {
    match args.first().and_then(Value::as_number) {
        Some(n) if args.len() == 1 => Ok(Value::Double(n.as_f64().sqrt())),
        _ => Err(overload(name, args)),
    }
}

fn double_map(name: &str, args: &[Value], f: fn(f64) -> f64) -> Result<Value> {
    match args {
        [Value::Double(d)] => Ok(Value::Double(f(*d))),
        _ => Err(overload(name, args)),
    }
}

fn double_test(name: &str, args: &[Value], f: fn(f64) -> bool) -> Result<Value> {
    match args {
        [Value::Double(d)] => Ok(Value::Bool(f(*d))),
        _ => Err(overload(name, args)),
    }
}

// ---------------------------------------------------------------------------------------
// Set-like functions over two lists (sets extension and Cerbos).

fn list_pair(name: &str, args: &[Value], f: fn(&[Value], &[Value]) -> Value) -> Result<Value> {
    match args {
        [Value::List(a), Value::List(b)] => Ok(f(a, b)),
        _ => Err(overload(name, args)),
    }
}

/// Cerbos' `intersect`: walks the shorter list (the first on a tie) and keeps, in its
/// order and with its duplicates, the elements found in the other list.
fn intersect(a: &[Value], b: &[Value]) -> Value {
    let (walk, other) = if a.len() > b.len() { (b, a) } else { (a, b) };
    Value::list(walk.iter().filter(|x| member(x, other)).cloned().collect())
}

// ---------------------------------------------------------------------------------------
// Cerbos: network.

/// Whether `ip` lies in the CIDR block `cidr`. An IPv4-mapped IPv6 address counts as
/// IPv4, as in Go's `net.IPNet.Contains`.
fn in_ip_range(ip: &str, cidr: &str) -> Result<bool> {
    let addr: IpAddr = ip
        .parse()
        .map_err(|_| invalid(format!("invalid IP address: {ip}")))?;
    let bad_cidr = || invalid(format!("invalid CIDR address: {cidr}"));
    let (net, bits) = cidr.split_once('/').ok_or_else(bad_cidr)?;
    let net: IpAddr = net.parse().map_err(|_| bad_cidr())?;
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_cidr());
    }
    let bits: u32 = bits.parse().map_err(|_| bad_cidr())?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(bad_cidr());
    }
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    let (net, bits) = match net {
        IpAddr::V6(v6) if bits >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), bits - 96),
            None => (net, bits),
        },
        _ => (net, bits),
    };
    Ok(match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    })
}

// ---------------------------------------------------------------------------------------
// Cerbos: hierarchies.

fn hierarchy(name: &str, args: &[Value]) -> Result<Value> {
    let segments: Vec<String> = match args {
        [Value::Hierarchy(h)] => return Ok(Value::Hierarchy(h.clone())),
        [Value::String(s)] => go_split(s, ".", -1),
        [Value::String(s), Value::String(delim)] => go_split(s, delim, -1),
        [Value::List(items)] => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| overload(name, args))?,
        _ => return Err(overload(name, args)),
    };
    Ok(Value::Hierarchy(Arc::new(segments)))
}

/// `h[i]` for a hierarchy: the `i`-th segment.
pub fn hierarchy_index(h: &Value, index: &Value) -> Result<Value> {
    match (h, index) {
        (Value::Hierarchy(segments), Value::Int(i)) => usize::try_from(*i)
            .ok()
            .and_then(|at| segments.get(at))
            .map(|s| Value::string(s))
            .ok_or_else(|| out_of_range(*i)),
        _ => Err(binary_overload("[]", h, index)),
    }
}

fn hierarchy_method(name: &str, args: &[Value]) -> Result<Value> {
    let [Value::Hierarchy(a), Value::Hierarchy(b)] = args else {
        return Err(overload(name, args));
    };
    let (a, b): (&[String], &[String]) = (a, b);
    let result = match name {
        "ancestorOf" => is_ancestor(a, b),
        "descendentOf" => is_ancestor(b, a),
        "immediateParentOf" => is_parent(a, b),
        "immediateChildOf" => is_parent(b, a),
        "siblingOf" => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .take(a.len().saturating_sub(1))
                    .all(|(x, y)| x == y)
        }
        "overlaps" => a.iter().zip(b).all(|(x, y)| x == y),
        "commonAncestors" => return Ok(common_ancestors(a, b)),
        _ => return Err(overload(name, args)),
    };
    Ok(Value::Bool(result))
}

/// `a` is a proper prefix of `b`.
fn is_ancestor(a: &[String], b: &[String]) -> bool {
    b.len() > a.len() && b.starts_with(a)
}

/// `b` is `a` plus exactly one segment.
fn is_parent(a: &[String], b: &[String]) -> bool {
    b.len() == a.len() + 1 && b.starts_with(a)
}

/// The longest shared prefix; when both have the same length, their last segments are
/// left out first, so a node is not its own ancestor.
fn common_ancestors(a: &[String], b: &[String]) -> Value {
    let (a, b) = if a.len() == b.len() {
        let keep = a.len().saturating_sub(1);
        (&a[..keep], &b[..keep])
    } else {
        (a, b)
    };
    let shared: Vec<String> = a
        .iter()
        .zip(b)
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.clone())
        .collect();
    Value::Hierarchy(Arc::new(shared))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::value::MapKey;
    use std::collections::BTreeMap;

    fn ctx() -> CallContext {
        CallContext {
            now: ts("2024-03-10T12:00:00Z"),
        }
    }

    fn ts(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn s(v: &str) -> Value {
        Value::string(v)
    }

    fn list(items: Vec<Value>) -> Value {
        Value::list(items)
    }

    fn ints(items: &[i64]) -> Value {
        Value::list(items.iter().copied().map(Value::Int).collect())
    }

    fn strs(items: &[&str]) -> Value {
        Value::list(items.iter().map(|x| Value::string(x)).collect())
    }

    fn dur(secs: i64) -> Value {
        Value::Duration(TimeDelta::seconds(secs))
    }

    fn h(path: &str) -> Value {
        call("hierarchy", &[s(path)], &ctx()).unwrap()
    }

    fn ok(name: &str, args: &[Value]) -> Value {
        call(name, args, &ctx()).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn err(name: &str, args: &[Value]) -> EvalError {
        match call(name, args, &ctx()) {
            Ok(v) => panic!("{name} gave {v:?}, expected an error"),
            Err(e) => e,
        }
    }

    #[track_caller]
    fn assert_val(got: Value, want: Value) {
        assert!(
            got.cel_eq(&want) && got.type_name() == want.type_name(),
            "got {got:?}, want {want:?}"
        );
    }

    fn is_overload(e: EvalError) -> bool {
        matches!(e, EvalError::NoSuchOverload(_))
    }

    fn is_invalid(e: EvalError) -> bool {
        matches!(e, EvalError::InvalidArgument(_))
    }

    fn is_range(e: EvalError) -> bool {
        matches!(e, EvalError::IndexOutOfRange(_))
    }

    // --- dispatch -----------------------------------------------------------------------

    #[test]
    fn unknown_function_and_bad_arity() {
        assert_eq!(
            err("frobnicate", &[]),
            EvalError::UnknownFunction("frobnicate".into())
        );
        assert!(is_overload(err("size", &[])));
        assert!(is_overload(err("size", &[Value::Int(1)])));
        assert!(is_overload(err("startsWith", &[s("a"), Value::Int(1)])));
        assert!(is_overload(err("now", &[Value::Int(1)])));
    }

    // --- arithmetic ---------------------------------------------------------------------

    #[test]
    fn integer_arithmetic_and_overflow() {
        assert_val(add(&Value::Int(2), &Value::Int(3)).unwrap(), Value::Int(5));
        assert_eq!(
            add(&Value::Int(i64::MAX), &Value::Int(1)).unwrap_err(),
            EvalError::Overflow
        );
        assert_eq!(
            sub(&Value::Int(i64::MIN), &Value::Int(1)).unwrap_err(),
            EvalError::Overflow
        );
        assert_eq!(
            sub(&Value::Uint(1), &Value::Uint(2)).unwrap_err(),
            EvalError::Overflow
        );
        assert_eq!(
            mult(&Value::Int(i64::MAX), &Value::Int(2)).unwrap_err(),
            EvalError::Overflow
        );
        assert_eq!(
            negate(&Value::Int(i64::MIN)).unwrap_err(),
            EvalError::Overflow
        );
        assert_val(negate(&Value::Int(4)).unwrap(), Value::Int(-4));
        assert!(is_overload(negate(&Value::Uint(4)).unwrap_err()));
    }

    #[test]
    fn division_and_modulo() {
        assert_val(
            div(&Value::Int(-7), &Value::Int(2)).unwrap(),
            Value::Int(-3),
        );
        assert_val(
            modulo(&Value::Int(-7), &Value::Int(2)).unwrap(),
            Value::Int(-1),
        );
        assert_eq!(
            div(&Value::Int(1), &Value::Int(0)).unwrap_err(),
            EvalError::DivisionByZero
        );
        assert_eq!(
            modulo(&Value::Uint(1), &Value::Uint(0)).unwrap_err(),
            EvalError::DivisionByZero
        );
        assert_eq!(
            div(&Value::Int(i64::MIN), &Value::Int(-1)).unwrap_err(),
            EvalError::Overflow
        );
        assert_eq!(
            modulo(&Value::Int(i64::MIN), &Value::Int(-1)).unwrap_err(),
            EvalError::Overflow
        );
        let inf = div(&Value::Double(1.0), &Value::Double(0.0)).unwrap();
        assert!(matches!(inf, Value::Double(d) if d.is_infinite() && d > 0.0));
        assert!(is_overload(
            modulo(&Value::Double(1.0), &Value::Double(2.0)).unwrap_err()
        ));
    }

    #[test]
    fn mixed_numeric_arithmetic_has_no_overload() {
        assert!(is_overload(
            add(&Value::Int(1), &Value::Double(1.0)).unwrap_err()
        ));
        assert!(is_overload(
            mult(&Value::Uint(1), &Value::Int(1)).unwrap_err()
        ));
    }

    #[test]
    fn concatenation() {
        assert_val(add(&s("ab"), &s("cd")).unwrap(), s("abcd"));
        assert_val(add(&ints(&[1]), &ints(&[2, 3])).unwrap(), ints(&[1, 2, 3]));
        let b = |x: &[u8]| Value::Bytes(Arc::from(x));
        assert_val(add(&b(b"a"), &b(b"b")).unwrap(), b(b"ab"));
    }

    #[test]
    fn time_arithmetic() {
        let t = Value::Timestamp(ts("2024-01-01T00:00:00Z"));
        let later = Value::Timestamp(ts("2024-01-01T01:00:00Z"));
        assert_val(add(&t, &dur(3600)).unwrap(), later.clone());
        assert_val(add(&dur(3600), &t).unwrap(), later.clone());
        assert_val(sub(&later, &dur(3600)).unwrap(), t.clone());
        assert_val(sub(&later, &t).unwrap(), dur(3600));
        assert_val(add(&dur(1), &dur(2)).unwrap(), dur(3));
        let end = Value::Timestamp(ts("9999-12-31T23:59:59Z"));
        assert_eq!(add(&end, &dur(1)).unwrap_err(), EvalError::Overflow);
        assert!(is_overload(add(&t, &t).unwrap_err()));
    }

    #[test]
    fn in_operator() {
        assert!(contains_in(&Value::Int(2), &ints(&[1, 2])).unwrap());
        assert!(contains_in(&Value::Double(2.0), &ints(&[1, 2])).unwrap());
        assert!(!contains_in(&s("2"), &ints(&[1, 2])).unwrap());
        let mut m = BTreeMap::new();
        m.insert(MapKey::Uint(1), s("x"));
        m.insert(MapKey::string("k"), s("y"));
        let m = Value::map(m);
        assert!(contains_in(&Value::Int(1), &m).unwrap());
        assert!(contains_in(&Value::Double(1.0), &m).unwrap());
        assert!(contains_in(&s("k"), &m).unwrap());
        assert!(!contains_in(&s("z"), &m).unwrap());
        assert!(!contains_in(&Value::Null, &m).unwrap());
        assert!(is_overload(contains_in(&s("a"), &s("abc")).unwrap_err()));
    }

    // --- standard functions -------------------------------------------------------------

    #[test]
    fn size_counts_code_points() {
        assert_val(ok("size", &[s("héllo")]), Value::Int(5));
        assert_val(
            ok("size", &[Value::Bytes(Arc::from("é".as_bytes()))]),
            Value::Int(2),
        );
        assert_val(ok("size", &[ints(&[1, 2, 3])]), Value::Int(3));
        assert_val(ok("size", &[Value::map(BTreeMap::new())]), Value::Int(0));
        assert_val(ok("size", &[h("a.b.c")]), Value::Int(3));
    }

    #[test]
    fn string_predicates() {
        assert_val(ok("contains", &[s("hello"), s("ell")]), Value::Bool(true));
        assert_val(ok("startsWith", &[s("hello"), s("he")]), Value::Bool(true));
        assert_val(ok("endsWith", &[s("hello"), s("he")]), Value::Bool(false));
    }

    #[test]
    fn regex_matching() {
        assert_val(
            ok("matches", &[s("abc123"), s("[0-9]+")]),
            Value::Bool(true),
        );
        assert_val(ok("matches", &[s("abc"), s("^b")]), Value::Bool(false));
        assert!(is_invalid(err("matches", &[s("a"), s("[")])));
        // Served from the cache the second time.
        assert_val(ok("matches", &[s("xyz"), s("[0-9]+")]), Value::Bool(false));
    }

    #[test]
    fn regex_uses_re2_meanings() {
        let m = |text: &str, re: &str| ok("matches", &[s(text), s(re)]);
        // RE2's Perl classes and word boundaries are ASCII-only.
        assert_val(m("١٢٣", r"^\d+$"), Value::Bool(false));
        assert_val(m("123", r"^\d+$"), Value::Bool(true));
        assert_val(m("é", r"^\w$"), Value::Bool(false));
        assert_val(m("a_1", r"^[\w]+$"), Value::Bool(true));
        assert_val(m("a\u{a0}b", r"a\sb"), Value::Bool(false));
        assert_val(m("aé", r"a\b"), Value::Bool(true));
        assert_val(m(r"\d", r"^\\d$"), Value::Bool(true));
        // Quoting, and class syntax that RE2 reads literally.
        assert_val(m("a.b", r"^\Qa.b\E$"), Value::Bool(true));
        assert_val(m("axb", r"^\Qa.b\E$"), Value::Bool(false));
        assert_val(m("x[", "[[]"), Value::Bool(true));
        assert_val(m("]", "^[]a]$"), Value::Bool(true));
        assert_val(m("&", "^[a&&b]$"), Value::Bool(true));
        assert_val(m("b", "^[[:alpha:]]$"), Value::Bool(true));
    }

    #[test]
    fn int_conversions() {
        assert_val(ok("int", &[s("-42")]), Value::Int(-42));
        assert_val(ok("int", &[Value::Double(-2.9)]), Value::Int(-2));
        assert_val(ok("int", &[Value::Uint(7)]), Value::Int(7));
        assert_eq!(err("int", &[Value::Uint(u64::MAX)]), EvalError::Overflow);
        assert_eq!(err("int", &[Value::Double(1e19)]), EvalError::Overflow);
        assert_eq!(err("int", &[Value::Double(f64::NAN)]), EvalError::Overflow);
        assert!(is_invalid(err("int", &[s("1.5")])));
        let t = Value::Timestamp(ts("1970-01-01T00:01:00Z"));
        assert_val(ok("int", &[t]), Value::Int(60));
        assert!(is_overload(err("int", &[Value::Bool(true)])));
    }

    #[test]
    fn uint_and_double_conversions() {
        assert_val(ok("uint", &[Value::Int(3)]), Value::Uint(3));
        assert_eq!(err("uint", &[Value::Int(-1)]), EvalError::Overflow);
        assert_eq!(err("uint", &[Value::Double(-0.5)]), EvalError::Overflow);
        assert_val(
            ok("uint", &[s("18446744073709551615")]),
            Value::Uint(u64::MAX),
        );
        assert_val(ok("double", &[Value::Int(2)]), Value::Double(2.0));
        assert_val(ok("double", &[s("1e3")]), Value::Double(1000.0));
        assert!(is_invalid(err("double", &[s("x")])));
    }

    #[test]
    fn string_conversions() {
        assert_val(ok("string", &[Value::Int(-3)]), s("-3"));
        assert_val(ok("string", &[Value::Uint(3)]), s("3"));
        assert_val(ok("string", &[Value::Bool(true)]), s("true"));
        assert_val(ok("string", &[dur(90)]), s("90s"));
        assert_val(
            ok("string", &[Value::Timestamp(ts("2024-01-02T03:04:05Z"))]),
            s("2024-01-02T03:04:05Z"),
        );
        assert_val(ok("string", &[h("a.b")]), s("a.b"));
        assert!(is_invalid(err(
            "string",
            &[Value::Bytes(Arc::from(&[0xffu8][..]))]
        )));
    }

    #[test]
    fn double_formatting_matches_go() {
        let cases = [
            (1.0, "1"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e100, "1e+100"),
            (0.0, "0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (d, want) in cases {
            assert_eq!(format_double(d), want, "{d}");
        }
    }

    #[test]
    fn bool_bytes_type_dyn() {
        assert_val(ok("bool", &[s("True")]), Value::Bool(true));
        assert_val(ok("bool", &[s("0")]), Value::Bool(false));
        assert!(is_invalid(err("bool", &[s("yes")])));
        assert_val(ok("bytes", &[s("ab")]), Value::Bytes(Arc::from(&b"ab"[..])));
        assert_val(ok("type", &[Value::Int(1)]), Value::Type("int"));
        assert_val(ok("type", &[s("x")]), Value::Type("string"));
        assert_val(ok("dyn", &[Value::Uint(1)]), Value::Uint(1));
    }

    #[test]
    fn timestamp_and_duration_constructors() {
        let want = Value::Timestamp(ts("2021-05-01T00:00:00Z"));
        assert_val(ok("timestamp", &[s("2021-05-01T00:00:00Z")]), want.clone());
        assert_val(ok("timestamp", &[Value::Int(1_619_827_200)]), want);
        assert!(is_invalid(err("timestamp", &[s("2021-05-01")])));
        assert!(is_invalid(err("timestamp", &[s("0000-01-01T00:00:00Z")])));
        assert_val(ok("duration", &[s("1h30m")]), dur(5400));
        assert_val(
            ok("duration", &[s("-1.5s")]),
            Value::Duration(TimeDelta::milliseconds(-1500)),
        );
        assert_val(ok("duration", &[s("0")]), dur(0));
        assert!(is_invalid(err("duration", &[s("1d")])));
        assert!(is_invalid(err("duration", &[s("")])));
    }

    #[test]
    fn timestamp_getters_utc() {
        // 2024-03-10 is a Sunday, the 70th day of a leap year.
        let t = Value::Timestamp(ts("2024-03-10T23:45:30.250+00:00"));
        let get = |name: &str| ok(name, std::slice::from_ref(&t));
        assert_val(get("getFullYear"), Value::Int(2024));
        assert_val(get("getMonth"), Value::Int(2));
        assert_val(get("getDate"), Value::Int(10));
        assert_val(get("getDayOfMonth"), Value::Int(9));
        assert_val(get("getDayOfWeek"), Value::Int(0));
        assert_val(get("getDayOfYear"), Value::Int(69));
        assert_val(get("getHours"), Value::Int(23));
        assert_val(get("getMinutes"), Value::Int(45));
        assert_val(get("getSeconds"), Value::Int(30));
        assert_val(get("getMilliseconds"), Value::Int(250));
    }

    #[test]
    fn timestamp_getters_use_utc_not_the_parsed_offset() {
        let t = Value::Timestamp(ts("2024-01-01T01:00:00+05:00"));
        assert_val(ok("getHours", std::slice::from_ref(&t)), Value::Int(20));
        assert_val(ok("getDate", &[t]), Value::Int(31));
    }

    #[test]
    fn timestamp_getters_with_zone() {
        let t = Value::Timestamp(ts("2024-03-10T23:45:00Z"));
        assert_val(ok("getHours", &[t.clone(), s("+05:30")]), Value::Int(5));
        assert_val(ok("getMinutes", &[t.clone(), s("+05:30")]), Value::Int(15));
        assert_val(ok("getDate", &[t.clone(), s("+05:30")]), Value::Int(11));
        assert_val(ok("getHours", &[t.clone(), s("-08:00")]), Value::Int(15));
        assert_val(ok("getHours", &[t.clone(), s("UTC")]), Value::Int(23));
        assert_val(ok("getHours", &[t.clone(), s("Etc/GMT+5")]), Value::Int(18));
        assert!(is_invalid(err(
            "getHours",
            &[t.clone(), s("America/New_York")]
        )));
        assert!(is_invalid(err("getHours", &[t.clone(), s("+25:00")])));
        assert!(is_invalid(err("getHours", &[t, s("+5:x")])));
    }

    #[test]
    fn duration_getters() {
        let d = Value::Duration(TimeDelta::milliseconds(5_430_250));
        assert_val(ok("getHours", std::slice::from_ref(&d)), Value::Int(1));
        assert_val(ok("getMinutes", std::slice::from_ref(&d)), Value::Int(90));
        assert_val(ok("getSeconds", std::slice::from_ref(&d)), Value::Int(5430));
        assert_val(
            ok("getMilliseconds", std::slice::from_ref(&d)),
            Value::Int(5_430_250),
        );
        assert!(is_overload(err("getFullYear", &[d])));
    }

    // --- strings extension --------------------------------------------------------------

    #[test]
    fn char_at() {
        assert_val(ok("charAt", &[s("héllo"), Value::Int(1)]), s("é"));
        assert_val(ok("charAt", &[s("hello"), Value::Int(5)]), s(""));
        assert!(is_range(err("charAt", &[s("hello"), Value::Int(6)])));
        assert!(is_range(err("charAt", &[s("hello"), Value::Int(-1)])));
    }

    #[test]
    fn index_of() {
        let hm = s("hello mellow");
        assert_val(ok("indexOf", &[hm.clone(), s("")]), Value::Int(0));
        assert_val(ok("indexOf", &[hm.clone(), s("ello")]), Value::Int(1));
        assert_val(ok("indexOf", &[hm.clone(), s("jello")]), Value::Int(-1));
        assert_val(
            ok("indexOf", &[hm.clone(), s(""), Value::Int(2)]),
            Value::Int(2),
        );
        assert_val(
            ok("indexOf", &[hm.clone(), s("ello"), Value::Int(2)]),
            Value::Int(7),
        );
        assert!(is_range(err("indexOf", &[hm, s("ello"), Value::Int(20)])));
        assert_val(ok("indexOf", &[s("aéb"), s("b")]), Value::Int(2));
        assert_val(ok("indexOf", &[s(""), s("a")]), Value::Int(-1));
    }

    #[test]
    fn last_index_of() {
        let hm = s("hello mellow");
        assert_val(ok("lastIndexOf", &[hm.clone(), s("")]), Value::Int(12));
        assert_val(ok("lastIndexOf", &[hm.clone(), s("ello")]), Value::Int(7));
        assert_val(ok("lastIndexOf", &[hm.clone(), s("jello")]), Value::Int(-1));
        assert_val(
            ok("lastIndexOf", &[hm.clone(), s("ello"), Value::Int(6)]),
            Value::Int(1),
        );
        assert_val(
            ok("lastIndexOf", &[hm.clone(), s("low"), Value::Int(11)]),
            Value::Int(9),
        );
        assert!(is_range(err(
            "lastIndexOf",
            &[hm, s("ello"), Value::Int(-1)]
        )));
        assert_val(ok("lastIndexOf", &[s(""), s("a")]), Value::Int(-1));
    }

    #[test]
    fn case_and_trim() {
        assert_val(ok("lowerAscii", &[s("TacoCÆt")]), s("tacocÆt"));
        assert_val(ok("upperAscii", &[s("tacocæt")]), s("TACOCæT"));
        assert_val(ok("trim", &[s(" \t trim\n ")]), s("trim"));
    }

    #[test]
    fn replace_with_limits() {
        let hh = s("hello hello");
        assert_val(
            ok("replace", &[hh.clone(), s("he"), s("we")]),
            s("wello wello"),
        );
        assert_val(
            ok("replace", &[hh.clone(), s("he"), s("we"), Value::Int(1)]),
            s("wello hello"),
        );
        assert_val(
            ok("replace", &[hh.clone(), s("he"), s("we"), Value::Int(0)]),
            hh.clone(),
        );
        assert_val(
            ok("replace", &[hh.clone(), s("he"), s("we"), Value::Int(-1)]),
            s("wello wello"),
        );
    }

    #[test]
    fn split_with_limits() {
        let t = s("a b c");
        assert_val(ok("split", &[t.clone(), s(" ")]), strs(&["a", "b", "c"]));
        assert_val(ok("split", &[t.clone(), s(" "), Value::Int(0)]), strs(&[]));
        assert_val(
            ok("split", &[t.clone(), s(" "), Value::Int(1)]),
            strs(&["a b c"]),
        );
        assert_val(
            ok("split", &[t.clone(), s(" "), Value::Int(2)]),
            strs(&["a", "b c"]),
        );
        assert_val(
            ok("split", &[t, s(" "), Value::Int(-1)]),
            strs(&["a", "b", "c"]),
        );
        assert_val(ok("split", &[s("abc"), s("")]), strs(&["a", "b", "c"]));
        assert_val(
            ok("split", &[s("abc"), s(""), Value::Int(2)]),
            strs(&["a", "bc"]),
        );
        assert_val(ok("split", &[s(""), s(",")]), strs(&[""]));
    }

    #[test]
    fn substring() {
        let t = s("tacocat");
        assert_val(ok("substring", &[t.clone(), Value::Int(4)]), s("cat"));
        assert_val(
            ok("substring", &[t.clone(), Value::Int(0), Value::Int(4)]),
            s("taco"),
        );
        assert_val(ok("substring", &[t.clone(), Value::Int(7)]), s(""));
        assert!(is_range(err("substring", &[t.clone(), Value::Int(-1)])));
        assert!(is_range(err(
            "substring",
            &[t.clone(), Value::Int(0), Value::Int(8)]
        )));
        assert!(is_invalid(err(
            "substring",
            &[t, Value::Int(2), Value::Int(1)]
        )));
        assert_val(
            ok("substring", &[s("héllo"), Value::Int(1), Value::Int(2)]),
            s("é"),
        );
    }

    #[test]
    fn join_and_reverse() {
        assert_val(ok("join", &[strs(&["a", "b"])]), s("ab"));
        assert_val(ok("join", &[strs(&["a", "b"]), s("/")]), s("a/b"));
        assert_val(ok("join", &[strs(&[]), s("/")]), s(""));
        assert!(is_overload(err("join", &[ints(&[1])])));
        assert_val(ok("reverse", &[ints(&[1, 2, 3])]), ints(&[3, 2, 1]));
        assert_val(ok("reverse", &[s("héllo")]), s("olléh"));
    }

    // --- lists extension ----------------------------------------------------------------

    #[test]
    fn distinct_and_flatten() {
        assert_val(ok("distinct", &[ints(&[1, 2, 2, 3, 1])]), ints(&[1, 2, 3]));
        let mixed = list(vec![Value::Int(1), Value::Double(1.0), s("b"), s("b")]);
        assert_val(ok("distinct", &[mixed]), list(vec![Value::Int(1), s("b")]));
        let nested = list(vec![
            Value::Int(1),
            list(vec![Value::Int(2), ints(&[3, 4])]),
        ]);
        assert_val(
            ok("flatten", std::slice::from_ref(&nested)),
            list(vec![Value::Int(1), Value::Int(2), ints(&[3, 4])]),
        );
        assert_val(
            ok("flatten", &[nested.clone(), Value::Int(2)]),
            ints(&[1, 2, 3, 4]),
        );
        assert_val(
            ok("flatten", &[nested.clone(), Value::Int(0)]),
            nested.clone(),
        );
        assert!(is_invalid(err("flatten", &[nested, Value::Int(-1)])));
    }

    #[test]
    fn range_slice_sort() {
        assert_val(ok("lists.range", &[Value::Int(4)]), ints(&[0, 1, 2, 3]));
        assert_val(ok("lists.range", &[Value::Int(0)]), ints(&[]));
        assert!(is_invalid(err("lists.range", &[Value::Int(-1)])));
        let l = ints(&[1, 2, 3, 4]);
        assert_val(
            ok("slice", &[l.clone(), Value::Int(1), Value::Int(3)]),
            ints(&[2, 3]),
        );
        assert_val(
            ok("slice", &[l.clone(), Value::Int(4), Value::Int(4)]),
            ints(&[]),
        );
        assert!(is_range(err(
            "slice",
            &[l.clone(), Value::Int(1), Value::Int(5)]
        )));
        assert!(is_invalid(err("slice", &[l, Value::Int(3), Value::Int(1)])));
        assert_val(ok("sort", &[ints(&[3, 1, 2])]), ints(&[1, 2, 3]));
        assert_val(
            ok("sort", &[strs(&["b", "c", "a"])]),
            strs(&["a", "b", "c"]),
        );
        assert!(is_invalid(err(
            "sort",
            &[list(vec![Value::Int(1), s("b")])]
        )));
        assert!(is_invalid(err("sort", &[list(vec![ints(&[1])])])));
        let doubles = list(vec![
            Value::Double(2.0),
            Value::Double(f64::NAN),
            Value::Double(1.0),
        ]);
        assert!(call("sort", &[doubles], &ctx()).is_ok());
    }

    // --- math extension -----------------------------------------------------------------

    #[test]
    fn math_greatest_least() {
        assert_val(
            ok(
                "math.greatest",
                &[Value::Int(1), Value::Double(2.5), Value::Uint(2)],
            ),
            Value::Double(2.5),
        );
        assert_val(ok("math.least", &[ints(&[3, -1, 2])]), Value::Int(-1));
        assert_val(ok("math.greatest", &[Value::Int(7)]), Value::Int(7));
        assert!(is_invalid(err("math.greatest", &[ints(&[])])));
        assert!(is_overload(err("math.least", &[Value::Int(1), s("a")])));
    }

    #[test]
    fn math_unary() {
        assert_val(ok("math.abs", &[Value::Int(-3)]), Value::Int(3));
        assert_eq!(
            err("math.abs", &[Value::Int(i64::MIN)]),
            EvalError::Overflow
        );
        assert_val(ok("math.abs", &[Value::Double(-1.5)]), Value::Double(1.5));
        assert_val(ok("math.ceil", &[Value::Double(1.2)]), Value::Double(2.0));
        assert_val(
            ok("math.floor", &[Value::Double(-1.2)]),
            Value::Double(-2.0),
        );
        assert_val(ok("math.round", &[Value::Double(2.5)]), Value::Double(3.0));
        assert_val(
            ok("math.round", &[Value::Double(-2.5)]),
            Value::Double(-3.0),
        );
        assert!(is_overload(err("math.ceil", &[Value::Int(1)])));
        assert_val(ok("math.sign", &[Value::Int(-9)]), Value::Int(-1));
        assert_val(ok("math.sign", &[Value::Uint(9)]), Value::Uint(1));
        assert_val(ok("math.sign", &[Value::Double(0.0)]), Value::Double(0.0));
        assert_val(ok("math.sign", &[Value::Double(-0.3)]), Value::Double(-1.0));
        assert_val(
            ok("math.isNaN", &[Value::Double(f64::NAN)]),
            Value::Bool(true),
        );
        assert_val(
            ok("math.isInf", &[Value::Double(f64::NEG_INFINITY)]),
            Value::Bool(true),
        );
        assert_val(ok("math.isInf", &[Value::Double(1.0)]), Value::Bool(false));
        assert!(is_overload(err("math.isNaN", &[Value::Int(1)])));
    }

    // --- sets extension and Cerbos set functions ----------------------------------------

    #[test]
    fn sets_extension() {
        assert_val(
            ok("sets.contains", &[ints(&[1, 2, 3]), ints(&[3, 1])]),
            Value::Bool(true),
        );
        assert_val(
            ok("sets.contains", &[ints(&[1]), ints(&[1, 2])]),
            Value::Bool(false),
        );
        assert_val(
            ok("sets.contains", &[ints(&[1]), ints(&[])]),
            Value::Bool(true),
        );
        assert_val(
            ok("sets.equivalent", &[ints(&[1, 2, 1]), ints(&[2, 1])]),
            Value::Bool(true),
        );
        assert_val(
            ok("sets.equivalent", &[ints(&[1]), ints(&[1, 2])]),
            Value::Bool(false),
        );
        assert_val(
            ok("sets.intersects", &[ints(&[1, 2]), ints(&[2, 9])]),
            Value::Bool(true),
        );
        assert_val(
            ok("sets.intersects", &[ints(&[1]), ints(&[])]),
            Value::Bool(false),
        );
    }

    #[test]
    fn has_intersection_and_subset() {
        for name in ["hasIntersection", "has_intersection"] {
            assert_val(
                ok(name, &[ints(&[1, 2, 3]), ints(&[3, 5])]),
                Value::Bool(true),
            );
            assert_val(
                ok(name, &[ints(&[1, 2, 3]), ints(&[4, 5])]),
                Value::Bool(false),
            );
        }
        for name in ["isSubset", "is_subset"] {
            assert_val(
                ok(name, &[ints(&[1, 2]), ints(&[2, 3])]),
                Value::Bool(false),
            );
            assert_val(ok(name, &[ints(&[1, 1]), ints(&[1])]), Value::Bool(true));
            assert_val(ok(name, &[ints(&[]), ints(&[1])]), Value::Bool(true));
        }
        let nested = |a: i64, b: i64| list(vec![ints(&[a]), ints(&[b])]);
        assert_val(
            ok(
                "isSubset",
                &[nested(1, 2), list(vec![ints(&[1]), ints(&[2]), ints(&[3])])],
            ),
            Value::Bool(true),
        );
        assert_val(
            ok("isSubset", &[nested(1, 2), nested(2, 3)]),
            Value::Bool(false),
        );
        assert!(is_overload(err(
            "hasIntersection",
            &[ints(&[1]), Value::Int(1)]
        )));
    }

    #[test]
    fn intersect_follows_cerbos() {
        assert_val(
            ok("intersect", &[ints(&[1, 2, 3]), ints(&[2, 3, 5])]),
            ints(&[2, 3]),
        );
        assert_val(
            ok("intersect", &[ints(&[1, 2, 3]), ints(&[4, 5])]),
            ints(&[]),
        );
        assert_val(
            ok("intersect", &[strs(&["1", "2", "3"]), strs(&["3", "5"])]),
            strs(&["3"]),
        );
        // Equal lengths: the first list's order.
        assert_val(
            ok("intersect", &[ints(&[3, 2, 1]), ints(&[1, 2, 3])]),
            ints(&[3, 2, 1]),
        );
        // Cerbos walks the shorter list, keeping its order and duplicates.
        assert_val(
            ok("intersect", &[ints(&[3, 2, 1, 0]), ints(&[1, 2])]),
            ints(&[1, 2]),
        );
        assert_val(
            ok("intersect", &[ints(&[1, 1]), ints(&[1, 2, 3])]),
            ints(&[1, 1]),
        );
    }

    #[test]
    fn except_keeps_order() {
        assert_val(ok("except", &[ints(&[]), ints(&[1])]), ints(&[]));
        assert_val(ok("except", &[ints(&[1]), ints(&[])]), ints(&[1]));
        assert_val(ok("except", &[ints(&[1]), ints(&[1, 2, 3])]), ints(&[]));
        assert_val(
            ok("except", &[ints(&[1, 3, 5]), ints(&[2, 4])]),
            ints(&[1, 3, 5]),
        );
        assert_val(ok("except", &[ints(&[1, 3, 5]), ints(&[5, 3])]), ints(&[1]));
    }

    // --- Cerbos: time and network -------------------------------------------------------

    #[test]
    fn now_and_time_since() {
        assert_val(ok("now", &[]), Value::Timestamp(ctx().now));
        let t = Value::Timestamp(ts("2024-03-10T11:00:00Z"));
        assert_val(ok("timeSince", &[t]), dur(3600));
        let future = Value::Timestamp(ts("2024-03-10T12:00:30Z"));
        assert_val(ok("timeSince", &[future]), dur(-30));
        assert!(is_overload(err("timeSince", &[s("2024-03-10T11:00:00Z")])));
    }

    #[test]
    fn ip_ranges_v4() {
        let inr = |ip: &str, cidr: &str| call("inIPAddrRange", &[s(ip), s(cidr)], &ctx());
        assert_val(
            inr("192.168.0.5", "192.168.0.0/24").unwrap(),
            Value::Bool(true),
        );
        assert_val(
            inr("192.169.1.5", "192.168.0.0/24").unwrap(),
            Value::Bool(false),
        );
        assert_val(inr("10.1.2.3", "0.0.0.0/0").unwrap(), Value::Bool(true));
        assert_val(inr("10.1.2.3", "10.1.2.3/32").unwrap(), Value::Bool(true));
        assert_val(inr("10.1.2.4", "10.1.2.3/32").unwrap(), Value::Bool(false));
        // Host bits in the network address are ignored, as in Go.
        assert_val(inr("10.1.2.200", "10.1.2.3/24").unwrap(), Value::Bool(true));
        assert_val(
            inr("::ffff:192.168.0.9", "192.168.0.0/24").unwrap(),
            Value::Bool(true),
        );
        assert!(is_invalid(inr("test", "192.168.0.0/24").unwrap_err()));
        assert!(is_invalid(inr("10.0.0.1", "10.0.0.0/33").unwrap_err()));
        assert!(is_invalid(inr("10.0.0.1", "10.0.0.0").unwrap_err()));
    }

    #[test]
    fn ip_ranges_v6() {
        let inr = |ip: &str, cidr: &str| call("inIPAddrRange", &[s(ip), s(cidr)], &ctx());
        assert_val(
            inr("2001:0db8:0000:0000:0000:0000:1000:0000", "2001:db8::/48").unwrap(),
            Value::Bool(true),
        );
        assert_val(
            inr("3001:0fff::", "2001:db8::/48").unwrap(),
            Value::Bool(false),
        );
        assert_val(inr("::1", "::/0").unwrap(), Value::Bool(true));
        assert_val(inr("192.168.0.1", "::/0").unwrap(), Value::Bool(false));
        assert_val(
            inr("2001:db8::1", "10.0.0.0/8").unwrap(),
            Value::Bool(false),
        );
        assert_val(
            inr("10.0.0.7", "::ffff:10.0.0.0/104").unwrap(),
            Value::Bool(true),
        );
        assert!(is_invalid(inr("::1", "::/129").unwrap_err()));
    }

    // --- Cerbos: hierarchies ------------------------------------------------------------

    #[test]
    fn hierarchy_construction() {
        assert_val(
            h("a.b.c"),
            Value::Hierarchy(Arc::new(vec!["a".into(), "b".into(), "c".into()])),
        );
        assert_val(ok("hierarchy", &[s("a:b:c"), s(":")]), h("a.b.c"));
        assert_val(ok("hierarchy", &[s("aFOObFOOc"), s("FOO")]), h("a.b.c"));
        assert_val(ok("hierarchy", &[strs(&["a", "b", "c"])]), h("a.b.c"));
        assert_val(ok("hierarchy", &[h("a.b")]), h("a.b"));
        assert!(is_overload(err("hierarchy", &[ints(&[1])])));
        assert_val(ok("size", &[h("a.b.c.d")]), Value::Int(4));
    }

    #[test]
    fn hierarchy_indexing() {
        assert_val(
            hierarchy_index(&h("a.b.c.d"), &Value::Int(2)).unwrap(),
            s("c"),
        );
        assert!(is_range(
            hierarchy_index(&h("a.b"), &Value::Int(2)).unwrap_err()
        ));
        assert!(is_range(
            hierarchy_index(&h("a.b"), &Value::Int(-1)).unwrap_err()
        ));
        assert!(is_overload(
            hierarchy_index(&h("a.b"), &s("0")).unwrap_err()
        ));
        assert_val(ok("hierarchy_index", &[h("a.b"), Value::Int(0)]), s("a"));
    }

    #[test]
    fn hierarchy_ancestry() {
        let rel = |name: &str, a: &str, b: &str| ok(name, &[h(a), h(b)]);
        assert_val(rel("ancestorOf", "a.b", "a.b.c.d.e"), Value::Bool(true));
        assert_val(rel("ancestorOf", "a.b", "a.b"), Value::Bool(false));
        assert_val(
            rel("ancestorOf", "x.y.c.d", "a.b.c.d.e"),
            Value::Bool(false),
        );
        assert_val(rel("descendentOf", "a.b.c.d.e", "a.b"), Value::Bool(true));
        assert_val(rel("descendentOf", "a.b", "a.b"), Value::Bool(false));
        assert_val(rel("descendentOf", "x.b", "a.b"), Value::Bool(false));
        assert_val(
            rel("immediateChildOf", "a.b.c.d.e", "a.b.c.d"),
            Value::Bool(true),
        );
        assert_val(
            rel("immediateChildOf", "a.b.c.d.e", "a.b.c"),
            Value::Bool(false),
        );
        assert_val(
            rel("immediateParentOf", "a.b.c.d", "a.b.c.d.e"),
            Value::Bool(true),
        );
        assert_val(
            rel("immediateParentOf", "a.b.c", "a.b.c.d.e"),
            Value::Bool(false),
        );
    }

    #[test]
    fn hierarchy_siblings_overlaps_common() {
        let rel = |name: &str, a: &str, b: &str| ok(name, &[h(a), h(b)]);
        assert_val(rel("siblingOf", "a.b.c", "a.b.d"), Value::Bool(true));
        assert_val(rel("siblingOf", "a.b.c", "x.b.d"), Value::Bool(false));
        assert_val(rel("siblingOf", "a.b.c.d", "a.b.d"), Value::Bool(false));
        assert_val(rel("overlaps", "a.b.c.d", "a.b.c.d"), Value::Bool(true));
        assert_val(rel("overlaps", "a.b.c.d", "a.b.c"), Value::Bool(true));
        assert_val(rel("overlaps", "a.b", "a.b.c.d"), Value::Bool(true));
        assert_val(rel("overlaps", "a.b.x", "a.b.c.d"), Value::Bool(false));
        assert_val(rel("commonAncestors", "a.b.c.d", "a.b.c.d.e"), h("a.b.c.d"));
        assert_val(rel("commonAncestors", "a.b.c.d", "a.b.c.d"), h("a.b.c"));
        assert_val(
            ok("size", &[rel("commonAncestors", "a.b.c.d", "x.y.z")]),
            Value::Int(0),
        );
        assert!(is_overload(err("ancestorOf", &[h("a"), s("a.b")])));
    }
}
