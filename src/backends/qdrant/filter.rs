//! Plan condition → Qdrant `filter`, exact or refused.
//!
//! What the translation relies on (`ref/qdrant-measured.md` §5, `ref/vectordbs.md` B.2, and
//! Qdrant's own condition checker):
//! - A key path `K` yields the value at `K` (through objects only). A `match`/`range` holds if
//!   that value matches, or if it is an array with a **direct** element that matches (rows 1,
//!   3, 21). The path `K[]` yields the elements of an array value and nothing for a scalar
//!   (row 21), so a condition on `K[]` holds only for arrays: those with a direct matching
//!   element, or an element array with a matching element.
//!   Hence "the scalar at K matches" is `must: c(K), must_not: c(K[])`, and "the array at K
//!   has a direct element matching" is `must: [c(K), c(K[])]`.
//! - `match.value` on numbers is refused by us: a stored `3.0` matches `3` only with an
//!   integer index. Numbers use `range` (`gte = lte = c` for equality), which compares any
//!   number as f64 (B.2 table: `range [3,3]` matches 3 and 3.0 with and without index).
//! - `must_not` matches points lacking the key (row 2), so a negated comparison is emitted
//!   only on attributes in `required_attrs` (present, non-null scalar).
//! - CEL's "the key exists" (any value, `null` and `[]` included) has no Qdrant form:
//!   `is_empty`, `is_null`, `values_count`, `match` and `range` all answer the same for `[]`
//!   and for a missing key. So `has()` and every negation over a key that may be missing are
//!   refused unless the attribute is required, or unless the `has()` sits next to an `==`/`in`
//!   on the same key (see `existence_plan` in the parent module): `not (has(c) && c == x)` is
//!   the complement of `c == x`, which negating its `must`/`must_not` expresses.
//! - `is_null` alone depends on the index for `[null]` (rows 27/28), but `is_null AND
//!   is_empty` is exactly "the value is null" in both cases.
//! - `has_id` takes unsigned integers and UUIDs. `R.id` is the point id as a string: an
//!   integer in decimal, a UUID in lowercase hyphenated form. A literal in any other spelling
//!   (`"01"`, upper-case UUID) equals no id, though Qdrant would parse it as one.
//! - Empty `must`/`should`/`must_not` are never emitted. Match nothing is
//!   `{"must":[{"has_id":[]}]}` (row 61), match everything `{"must_not":[{"has_id":[]}]}`
//!   (row 62). No `match.except`, `match.value: null`, or multi-clause field condition.
//!
//! Known limit: CEL `"v" in R.attr.k` on a map value is key membership; the translation
//! matches list elements only, so a record whose attribute is an object with key `v` is
//! not returned (fail-closed; objects as ACL sets are not a supported layout).

use super::super::{
    check_limits, group_literals, literal, lower, not_exact, unsupported, Atom, Attr, FieldMapping,
    Formula, Lit, Num, Ord4, Pushdown, Side, Target, TranslateError,
};
use crate::plan::{Expr, Value};
use serde_json::{json, Value as Json};

const BACKEND: &str = "Qdrant";

/// Translates a plan condition into a Qdrant `filter` object. A condition that folds to a
/// constant becomes [`match_all`] or [`match_none`].
pub fn translate(
    plan_condition: &Expr,
    mapping: &FieldMapping,
    max_terms: usize,
) -> Result<Json, TranslateError> {
    Ok(
        match translate_pushdown(plan_condition, mapping, max_terms)? {
            Pushdown::MatchAll => match_all(),
            Pushdown::MatchNone => match_none(),
            Pushdown::Filter(f) => f,
        },
    )
}

/// Like [`translate`], but reports constant outcomes instead of encoding them.
pub fn translate_pushdown(
    plan_condition: &Expr,
    mapping: &FieldMapping,
    max_terms: usize,
) -> Result<Pushdown, TranslateError> {
    let f = lower(&Qdrant { mapping }, plan_condition, Side::True, 0)?;
    check_limits(&f, max_terms)?;
    Ok(match f {
        Formula::Const(true) => Pushdown::MatchAll,
        Formula::Const(false) => Pushdown::MatchNone,
        other => Pushdown::Filter(render_filter(&other)),
    })
}

/// A filter that matches no point (`has_id` of no ids).
#[must_use]
pub fn match_none() -> Json {
    json!({"must": [{"has_id": []}]})
}

/// A filter that matches every point (no point is among no ids).
#[must_use]
pub fn match_all() -> Json {
    json!({"must_not": [{"has_id": []}]})
}

/// A condition, to be required (`must`) or excluded (`must_not`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Leaf {
    Pos(Json),
    Neg(Json),
}

fn pos(c: Json) -> Formula<Leaf> {
    Formula::leaf(Leaf::Pos(c))
}

fn neg(c: Json) -> Formula<Leaf> {
    Formula::leaf(Leaf::Neg(c))
}

fn render_filter(f: &Formula<Leaf>) -> Json {
    match f {
        Formula::Leaf(Leaf::Pos(c)) => json!({"must": [c]}),
        Formula::Leaf(Leaf::Neg(c)) => json!({"must_not": [c]}),
        Formula::And(items) => render_and(items),
        Formula::Or(items) => {
            json!({"should": items.iter().map(render_condition).collect::<Vec<_>>()})
        }
        Formula::Const(true) => match_all(),
        Formula::Const(false) => match_none(),
    }
}

/// A formula as one element of a `must`/`should` list.
fn render_condition(f: &Formula<Leaf>) -> Json {
    match f {
        Formula::Leaf(Leaf::Pos(c)) => c.clone(),
        _ => render_filter(f),
    }
}

fn render_and(items: &[Formula<Leaf>]) -> Json {
    let mut must = Vec::new();
    let mut must_not = Vec::new();
    for item in items {
        match item {
            Formula::Leaf(Leaf::Neg(c)) => must_not.push(c.clone()),
            other => must.push(render_condition(other)),
        }
    }
    let mut out = serde_json::Map::new();
    if !must.is_empty() {
        out.insert("must".into(), Json::Array(must));
    }
    if !must_not.is_empty() {
        out.insert("must_not".into(), Json::Array(must_not));
    }
    Json::Object(out)
}

/// Builds a field condition on a key path.
#[derive(Debug, Clone, Copy)]
enum Cond<'a> {
    Str(&'a str),
    Bool(bool),
    AnyStr(&'a [&'a str]),
    /// `range` with `gte = lte = n`.
    NumEq(Num),
    Range(Ord4, Num),
}

impl Cond<'_> {
    fn on(&self, key: &str) -> Json {
        match self {
            Cond::Str(s) => json!({"key": key, "match": {"value": s}}),
            Cond::Bool(b) => json!({"key": key, "match": {"value": b}}),
            Cond::AnyStr(list) => json!({"key": key, "match": {"any": list}}),
            Cond::NumEq(n) => {
                json!({"key": key, "range": {"gte": n.to_json(), "lte": n.to_json()}})
            }
            Cond::Range(op, n) => {
                let mut r = serde_json::Map::new();
                r.insert(op.key().to_string(), n.to_json());
                json!({"key": key, "range": Json::Object(r)})
            }
        }
    }
}

/// Conditions true where the value at the key is a scalar matching one of `conds`.
/// Without the required guarantee, arrays (which `match`/`range` search) are excluded by
/// the same conditions on `key[]`.
fn scalar_match(key: &str, conds: &[Cond<'_>], required: bool) -> Formula<Leaf> {
    let any = Formula::or(conds.iter().map(|c| pos(c.on(key))).collect());
    if required || conds.is_empty() {
        return any;
    }
    let elements = format!("{key}[]");
    let mut parts = vec![any];
    parts.extend(conds.iter().map(|c| neg(c.on(&elements))));
    Formula::and(parts)
}

const PRESENCE: &str = "negation needs \"the key exists\", which Qdrant cannot express: a key \
holding [] and a missing key answer every condition alike (and must_not matches missing keys); \
declare the attribute in required_attrs";

struct Qdrant<'m> {
    mapping: &'m FieldMapping,
}

impl Qdrant<'_> {
    /// The payload path of an attribute: prefix path, then each segment, quoted if needed.
    fn key(&self, attr: &Attr) -> Result<String, TranslateError> {
        let invalid = |reason: &'static str| TranslateError::InvalidKey {
            attr: attr.display(),
            backend: BACKEND,
            reason,
        };
        let prefix = self.mapping.attr_prefix.as_str();
        // "metadata." is a path; a tail without a dot ("meta_") glues onto the first key.
        let (path, glue) = match prefix.rfind('.') {
            Some(i) => (&prefix[..i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let mut out = String::new();
        if !path.is_empty() {
            if !path.split('.').all(is_plain) {
                return Err(invalid(
                    "attr_prefix must be dot-separated plain keys (letters, digits, _ and -)",
                ));
            }
            out.push_str(path);
            out.push('.');
        }
        for (i, seg) in attr.segments.iter().enumerate() {
            let seg = if i == 0 {
                format!("{glue}{seg}")
            } else {
                seg.clone()
            };
            if i > 0 {
                out.push('.');
            }
            if seg.is_empty() {
                return Err(invalid("payload keys cannot be empty"));
            }
            if is_plain(&seg) {
                out.push_str(&seg);
            } else if seg.contains('"') || seg.contains('\\') {
                return Err(invalid(
                    "Qdrant key paths cannot quote a name containing \" or \\",
                ));
            } else {
                out.push('"');
                out.push_str(&seg);
                out.push('"');
            }
        }
        Ok(out)
    }
}

fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Target for Qdrant<'_> {
    type Leaf = Leaf;

    fn atom(
        &self,
        atom: Atom<'_>,
        side: Side,
        node: &Expr,
    ) -> Result<Formula<Leaf>, TranslateError> {
        match atom {
            Atom::Truthy { attr } => {
                let key = self.key(&attr)?;
                let required = attr.is_required(self.mapping);
                Ok(scalar_match(&key, &[Cond::Bool(side.is_true())], required))
            }
            Atom::Has { attr } => {
                self.key(&attr)?;
                if attr.is_required(self.mapping) {
                    Ok(Formula::Const(side.is_true()))
                } else {
                    Err(not_exact(node, side, PRESENCE))
                }
            }
            Atom::Eq { attr, value } => {
                let key = self.key(&attr)?;
                let lit = literal(value).map_err(|r| unsupported(node, side, r))?;
                let required = attr.is_required(self.mapping);
                let cond = match lit {
                    Lit::Str(s) => Cond::Str(s),
                    Lit::Bool(b) => Cond::Bool(b),
                    Lit::Num(n) => Cond::NumEq(n),
                    Lit::Null => {
                        return match (side, required) {
                            (Side::True, true) => Ok(Formula::Const(false)),
                            (Side::False, true) => Ok(Formula::Const(true)),
                            // null (is_null) and not an array holding null (is_empty).
                            (Side::True, false) => Ok(Formula::and(vec![
                                pos(json!({"is_null": {"key": key}})),
                                pos(json!({"is_empty": {"key": key}})),
                            ])),
                            (Side::False, false) => Err(not_exact(node, side, PRESENCE)),
                        };
                    }
                };
                match side {
                    Side::True => Ok(scalar_match(&key, &[cond], required)),
                    Side::False if required => Ok(neg(cond.on(&key))),
                    Side::False => Err(not_exact(node, side, PRESENCE)),
                }
            }
            // Ranges match numbers only; only arrays need excluding.
            Atom::Order { attr, op, value } => {
                let key = self.key(&attr)?;
                let required = attr.is_required(self.mapping);
                Ok(scalar_match(&key, &[Cond::Range(op, value)], required))
            }
            Atom::InList { attr, values } => {
                let key = self.key(&attr)?;
                let g = group_literals(&values).map_err(|r| unsupported(node, side, r))?;
                let required = attr.is_required(self.mapping);
                if side == Side::False && !required {
                    return Err(not_exact(node, side, PRESENCE));
                }
                let mut conds: Vec<Cond<'_>> = Vec::new();
                match g.strings.as_slice() {
                    [] => {}
                    [one] => conds.push(Cond::Str(one)),
                    many => conds.push(Cond::AnyStr(many)),
                }
                conds.extend(g.bools.iter().map(|b| Cond::Bool(*b)));
                conds.extend(g.ints.iter().map(|i| Cond::NumEq(Num::Int(*i))));
                conds.extend(g.fracs.iter().map(|f| Cond::NumEq(Num::Frac(*f))));
                match side {
                    Side::True => {
                        let scalars = scalar_match(&key, &conds, required);
                        // A null item: the value is null (never, on a required attribute).
                        let null = if g.null && !required {
                            Formula::and(vec![
                                pos(json!({"is_null": {"key": key}})),
                                pos(json!({"is_empty": {"key": key}})),
                            ])
                        } else {
                            Formula::Const(false)
                        };
                        Ok(Formula::or(vec![scalars, null]))
                    }
                    Side::False => Ok(Formula::and(
                        conds.iter().map(|c| neg(c.on(&key))).collect(),
                    )),
                }
            }
            Atom::Contains { attr, value } => {
                let key = self.key(&attr)?;
                if attr.is_required(self.mapping) {
                    return Err(unsupported(
                        node,
                        side,
                        "the attribute is declared required (a scalar), so membership in it is always an error; remove it from required_attrs if it holds lists",
                    ));
                }
                if side == Side::False {
                    return Err(not_exact(
                        node,
                        side,
                        "\"a list without the element\" includes [], which Qdrant cannot tell from a missing key, and must_not matches scalars and missing keys",
                    ));
                }
                let cond = match literal(value).map_err(|r| unsupported(node, side, r))? {
                    Lit::Str(s) => Cond::Str(s),
                    Lit::Bool(b) => Cond::Bool(b),
                    Lit::Num(n) => Cond::NumEq(n),
                    Lit::Null => {
                        return Err(unsupported(
                            node,
                            side,
                            "membership of null is not translated",
                        ))
                    }
                };
                // A direct element matches at K; only arrays yield anything at K[].
                Ok(Formula::and(vec![
                    pos(cond.on(&key)),
                    pos(cond.on(&format!("{key}[]"))),
                ]))
            }
            Atom::IdEq { value } => Ok(ids(&[value], side)),
            Atom::IdIn { values } => Ok(ids(&values, side)),
        }
    }

    /// The negation of the True-side formula: `must_not` matches missing keys, as wanted.
    fn complement(&self, atom: Atom<'_>, node: &Expr) -> Result<Formula<Leaf>, TranslateError> {
        match atom {
            Atom::Eq { .. } | Atom::InList { .. } => {
                Ok(negate(self.atom(atom, Side::True, node)?))
            }
            _ => Err(unsupported(
                node,
                Side::False,
                "no complement form for this comparison",
            )),
        }
    }
}

/// De Morgan over a formula; a leaf flips between `must` and `must_not`.
fn negate(f: Formula<Leaf>) -> Formula<Leaf> {
    match f {
        Formula::Const(b) => Formula::Const(!b),
        Formula::Leaf(Leaf::Pos(c)) => neg(c),
        Formula::Leaf(Leaf::Neg(c)) => pos(c),
        Formula::And(items) => Formula::or(items.into_iter().map(negate).collect()),
        Formula::Or(items) => Formula::and(items.into_iter().map(negate).collect()),
    }
}

/// `R.id in ids` on a side. Literals that are not a point id in its canonical string form
/// equal no point's `R.id`.
fn ids(values: &[&Value], side: Side) -> Formula<Leaf> {
    let mut list: Vec<Json> = Vec::new();
    for v in values {
        if let Some(id) = v.as_str().and_then(canonical_point_id) {
            if !list.contains(&id) {
                list.push(id);
            }
        }
    }
    if list.is_empty() {
        return Formula::Const(side == Side::False);
    }
    let c = json!({"has_id": list});
    match side {
        Side::True => pos(c),
        Side::False => neg(c),
    }
}

/// The `has_id` form of a point id written as Qdrant writes it: a decimal u64 without
/// leading zeros, or a lowercase hyphenated UUID.
fn canonical_point_id(s: &str) -> Option<Json> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        if s.len() > 1 && s.starts_with('0') {
            return None;
        }
        return s.parse::<u64>().ok().map(Json::from);
    }
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if groups.len() == 5
        && groups.iter().zip(lens).all(|(g, n)| {
            g.len() == n
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    {
        return Some(Json::String(s.to_string()));
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod sim {
    //! A reference evaluator of Qdrant filters following Qdrant's condition checker and the
    //! measured tables (`ref/qdrant-measured.md` §5, `ref/vectordbs.md` B.2). `indexed`
    //! selects the answers of a server with payload indexes on the keys where they differ
    //! (`is_null` on arrays holding null, integer `match` on integral floats, `except` on
    //! non-strings). `Err` is a 400/422 answer, or a construct this simulator leaves out.

    use serde_json::{Map, Value as Json};

    pub struct Point<'a> {
        pub id: &'a Json,
        pub payload: &'a Map<String, Json>,
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Step {
        Key(String),
        Index(usize),
        All,
    }

    fn raw_char(c: char) -> bool {
        c.is_alphanumeric() || c == '_' || c == '-'
    }

    fn parse_path(p: &str) -> Result<(String, Vec<Step>), String> {
        let bad = || format!("invalid key path {p:?}");
        let chars: Vec<char> = p.chars().collect();
        let mut i = 0;
        let read_key = |i: &mut usize| -> Result<String, String> {
            if chars.get(*i) == Some(&'"') {
                let start = *i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|c| *c == '"')
                    .ok_or_else(bad)?
                    + start;
                let k: String = chars[start..end].iter().collect();
                if k.contains('\\') {
                    return Err(bad());
                }
                *i = end + 1;
                Ok(k)
            } else {
                let start = *i;
                while *i < chars.len() && raw_char(chars[*i]) {
                    *i += 1;
                }
                if *i == start {
                    return Err(bad());
                }
                Ok(chars[start..*i].iter().collect())
            }
        };
        let first = read_key(&mut i)?;
        let mut rest = Vec::new();
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    rest.push(Step::Key(read_key(&mut i)?));
                }
                '[' => {
                    let close = chars[i..].iter().position(|c| *c == ']').ok_or_else(bad)? + i;
                    let inner: String = chars[i + 1..close].iter().collect();
                    if inner.is_empty() {
                        rest.push(Step::All);
                    } else {
                        rest.push(Step::Index(inner.parse().map_err(|_| bad())?));
                    }
                    i = close + 1;
                }
                _ => return Err(bad()),
            }
        }
        Ok((first, rest))
    }

    fn collect<'a>(steps: &[Step], v: &'a Json, out: &mut Vec<&'a Json>) {
        match steps.split_first() {
            None => out.push(v),
            Some((Step::Key(k), tail)) => {
                if let Some(next) = v.as_object().and_then(|o| o.get(k)) {
                    collect(tail, next, out)
                }
            }
            Some((Step::Index(n), tail)) => {
                if let Some(next) = v.as_array().and_then(|a| a.get(*n)) {
                    collect(tail, next, out)
                }
            }
            Some((Step::All, tail)) => {
                if let Some(items) = v.as_array() {
                    for item in items {
                        collect(tail, item, out)
                    }
                }
            }
        }
    }

    fn values<'a>(path: &str, payload: &'a Map<String, Json>) -> Result<Vec<&'a Json>, String> {
        let (first, rest) = parse_path(path)?;
        let mut out = Vec::new();
        if let Some(v) = payload.get(&first) {
            collect(&rest, v, &mut out);
        }
        Ok(out)
    }

    fn list(v: Option<&Json>) -> Vec<&Json> {
        match v {
            None | Some(Json::Null) => vec![],
            Some(Json::Array(items)) => items.iter().collect(),
            Some(one) => vec![one],
        }
    }

    pub fn matches(filter: &Json, p: &Point<'_>, indexed: bool) -> Result<bool, String> {
        let obj = filter.as_object().ok_or("a filter is an object")?;
        for k in obj.keys() {
            if !["must", "should", "must_not", "min_should"].contains(&k.as_str()) {
                return Err(format!("unknown filter field {k}"));
            }
        }
        let mut must = true;
        for c in list(obj.get("must")) {
            must &= condition(c, p, indexed)?;
        }
        let should_items = list(obj.get("should"));
        let mut should = should_items.is_empty();
        for c in should_items {
            should |= condition(c, p, indexed)?;
        }
        let mut must_not = true;
        for c in list(obj.get("must_not")) {
            must_not &= !condition(c, p, indexed)?;
        }
        let mut min_should = true;
        if let Some(ms) = obj.get("min_should") {
            let n = ms["min_count"].as_u64().ok_or("min_count")?;
            if n == 0 {
                return Err("min_count must be at least 1".into());
            }
            let mut count = 0;
            for c in list(ms.get("conditions")) {
                count += u64::from(condition(c, p, indexed)?);
            }
            min_should = count >= n;
        }
        Ok(must && should && must_not && min_should)
    }

    fn key_of(v: &Json) -> Result<&str, String> {
        v.get("key")
            .and_then(Json::as_str)
            .ok_or_else(|| "condition needs a key".into())
    }

    fn condition(c: &Json, p: &Point<'_>, indexed: bool) -> Result<bool, String> {
        let obj = c.as_object().ok_or("a condition is an object")?;
        if obj.contains_key("key") {
            return field(obj, p.payload, indexed);
        }
        if let Some(e) = obj.get("is_empty") {
            let vals = values(key_of(e)?, p.payload)?;
            return Ok(vals
                .iter()
                .all(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty)));
        }
        if let Some(e) = obj.get("is_null") {
            let vals = values(key_of(e)?, p.payload)?;
            return Ok(vals.iter().any(|v| {
                v.is_null()
                    || (indexed && v.as_array().is_some_and(|a| a.iter().any(Json::is_null)))
            }));
        }
        if let Some(ids) = obj.get("has_id") {
            let ids = ids.as_array().ok_or("has_id takes a list")?;
            return Ok(ids.iter().any(|i| same_id(i, p.id)));
        }
        if let Some(n) = obj.get("nested") {
            let path = format!("{}[]", key_of(n)?);
            let inner = n.get("filter").ok_or("nested needs a filter")?;
            for v in values(&path, p.payload)? {
                if let Some(o) = v.as_object() {
                    let sub = Point {
                        id: p.id,
                        payload: o,
                    };
                    if matches(inner, &sub, indexed)? {
                        return Ok(true);
                    }
                }
            }
            return Ok(false);
        }
        matches(c, p, indexed)
    }

    fn same_id(a: &Json, b: &Json) -> bool {
        match (a, b) {
            (Json::String(x), Json::String(y)) => x.eq_ignore_ascii_case(y),
            _ => a == b,
        }
    }

    fn field(
        obj: &Map<String, Json>,
        payload: &Map<String, Json>,
        indexed: bool,
    ) -> Result<bool, String> {
        let key = obj["key"].as_str().ok_or("key must be a string")?;
        let clauses: Vec<&str> = [
            "match",
            "range",
            "values_count",
            "is_empty",
            "is_null",
            "geo_radius",
        ]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
        let vals = values(key, payload)?;
        match clauses.as_slice() {
            ["match"] => {
                let m = &obj["match"];
                let any = |check: &dyn Fn(&Json) -> Result<bool, String>| -> Result<bool, String> {
                    for v in &vals {
                        let hit = match v {
                            Json::Array(items) => {
                                let mut h = false;
                                for i in items {
                                    h |= check(i)?;
                                }
                                h
                            }
                            one => check(one)?,
                        };
                        if hit {
                            return Ok(true);
                        }
                    }
                    Ok(false)
                };
                if let Some(value) = m.get("value") {
                    match value {
                        Json::String(s) => any(&|e| Ok(e.as_str() == Some(s))),
                        Json::Bool(b) => any(&|e| Ok(e.as_bool() == Some(*b))),
                        Json::Number(n) if n.is_i64() => {
                            let n = n.as_i64().unwrap();
                            any(&|e| {
                                Ok(if indexed {
                                    e.as_f64() == Some(n as f64)
                                } else {
                                    e.as_i64() == Some(n)
                                })
                            })
                        }
                        other => Err(format!("match.value cannot be {other}")),
                    }
                } else if let Some(list) = m.get("any").or_else(|| m.get("except")) {
                    let except = m.get("any").is_none();
                    let items = list.as_array().ok_or("any/except take a list")?;
                    let strings = items.iter().all(Json::is_string);
                    let ints = items.iter().all(|i| i.is_i64());
                    if !strings && !ints {
                        return Err("any/except take strings or integers".into());
                    }
                    let contains = |e: &Json| items.iter().any(|i| i == e);
                    if !except {
                        any(&|e| {
                            Ok(if strings {
                                e.is_string() && contains(e)
                            } else {
                                e.as_i64().is_some_and(|_| contains(e))
                            })
                        })
                    } else {
                        any(&|e| {
                            Ok(match e {
                                Json::String(_) => !contains(e),
                                Json::Number(n) if !indexed => {
                                    n.as_i64().is_none_or(|_| !contains(e))
                                }
                                Json::Null => false,
                                _ => !indexed,
                            })
                        })
                    }
                } else if let Some(t) = m.get("text").or_else(|| m.get("phrase")) {
                    let t = t.as_str().ok_or("text takes a string")?;
                    any(&|e| Ok(e.as_str().is_some_and(|s| s.contains(t))))
                } else {
                    Err("unsupported match".into())
                }
            }
            ["range"] => {
                let r = obj["range"].as_object().ok_or("range is an object")?;
                let bound = |k: &str| r.get(k).and_then(Json::as_f64);
                let ok = |x: f64| {
                    bound("gt").is_none_or(|b| x > b)
                        && bound("gte").is_none_or(|b| x >= b)
                        && bound("lt").is_none_or(|b| x < b)
                        && bound("lte").is_none_or(|b| x <= b)
                };
                Ok(vals.iter().any(|v| match v {
                    Json::Array(items) => items.iter().any(|i| i.as_f64().is_some_and(ok)),
                    one => one.as_f64().is_some_and(ok),
                }))
            }
            ["values_count"] => {
                let r = obj["values_count"]
                    .as_object()
                    .ok_or("values_count is an object")?;
                let count: u64 = vals
                    .iter()
                    .map(|v| match v {
                        Json::Null => 0,
                        Json::Array(a) => a.len() as u64,
                        _ => 1,
                    })
                    .sum();
                let bound = |k: &str| r.get(k).and_then(Json::as_u64);
                Ok(bound("gt").is_none_or(|b| count > b)
                    && bound("gte").is_none_or(|b| count >= b)
                    && bound("lt").is_none_or(|b| count < b)
                    && bound("lte").is_none_or(|b| count <= b))
            }
            [] => Err("a field condition needs a clause (422)".into()),
            _ => Err("multi-clause or unsupported field condition (not simulated)".into()),
        }
    }

    /// Enforces what the translator promises never to emit.
    pub fn check_shape(f: &Json, top: bool) -> Result<(), String> {
        let obj = f.as_object().ok_or("not an object")?;
        if top && (f == &super::match_none() || f == &super::match_all()) {
            return Ok(());
        }
        if obj.is_empty() {
            return Err("empty filter".into());
        }
        for (k, v) in obj {
            let items = v.as_array().ok_or("lists only")?;
            if items.is_empty() {
                return Err(format!("empty {k}"));
            }
            for c in items {
                let co = c.as_object().ok_or("condition not an object")?;
                if co.contains_key("key") {
                    let clauses = co.keys().filter(|k| *k != "key").count();
                    if clauses != 1 {
                        return Err("multi-clause field condition".into());
                    }
                    if let Some(m) = co.get("match") {
                        if m.get("except").is_some() || m.get("value").is_some_and(Json::is_null) {
                            return Err("except or null match".into());
                        }
                        if m.get("any")
                            .and_then(Json::as_array)
                            .is_some_and(Vec::is_empty)
                        {
                            return Err("empty any".into());
                        }
                    }
                } else if let Some(ids) = co.get("has_id") {
                    if ids.as_array().is_none_or(Vec::is_empty) {
                        return Err("empty has_id".into());
                    }
                } else if !co.contains_key("is_null") && !co.contains_key("is_empty") {
                    check_shape(c, false)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::super::testkit::*;
    use super::super::super::{FieldMapping, Pushdown, TranslateError};
    use super::*;
    use crate::plan::Op;
    use proptest::prelude::*;
    use serde_json::{json, Map, Value as Json};

    fn ids_where(
        filter: &Json,
        points: &[(Json, Map<String, Json>)],
        indexed: bool,
    ) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for (id, payload) in points {
            if sim::matches(filter, &sim::Point { id, payload }, indexed)? {
                out.push(match id {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
        }
        Ok(out)
    }

    fn numbered(payloads: Vec<Json>) -> Vec<(Json, Map<String, Json>)> {
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| (json!(i + 1), p.as_object().unwrap().clone()))
            .collect()
    }

    fn expect(s: &str, n: usize) -> Vec<String> {
        match s {
            "ALL" => (1..=n).map(|i| i.to_string()).collect(),
            "none" => vec![],
            _ => s.split(',').map(|x| x.trim().to_string()).collect(),
        }
    }

    /// `ref/qdrant-measured.md` §5: every row, both server columns (no index, keyword
    /// index), except row 60 (multi-clause), which the translator never emits.
    #[test]
    fn simulator_matches_measured_table_section5() {
        let points = numbered(vec![
            json!({"department":"FINANCE","region":"EMEA"}),
            json!({"department":"HR","region":"APAC"}),
            json!({"metadata":{"department":"HR"}}),
            json!({"department":["FINANCE","HR"],"region":"EMEA"}),
            json!({"region":"EMEA"}),
            json!({"department":null}),
            json!({"department":[]}),
            json!({"department":"finance"}),
            json!({"metadata":{"department":["HR","IT"]}}),
            json!({"metadata":[{"department":"HR"},{"department":"FINANCE"}]}),
            json!({"department":42}),
            json!({}),
            json!({"department":""}),
            json!({"metadata.department":"HR"}),
            json!({"department":[null]}),
            json!({"Department":"FINANCE"}),
            json!({"department":{"name":"FINANCE"}}),
            json!({"department":["HR",null]}),
        ]);
        let fin = json!({"key":"department","match":{"value":"FINANCE"}});
        // (row, filter, no index, keyword index; "=" = same, "ERR" = 400/422)
        let rows: Vec<(u32, Json, &str, &str)> = vec![
            (1, json!({"must":[fin]}), "1,4", "="),
            (
                2,
                json!({"must_not":[fin]}),
                "2,3,5,6,7,8,9,10,11,12,13,14,15,16,17,18",
                "=",
            ),
            (
                3,
                json!({"must":[{"key":"department","match":{"value":"HR"}}]}),
                "2,4,18",
                "=",
            ),
            (
                4,
                json!({"must_not":[{"key":"department","match":{"value":"HR"}}]}),
                "1,3,5,6,7,8,9,10,11,12,13,14,15,16,17",
                "=",
            ),
            (
                5,
                json!({"must":[{"key":"department","match":{"any":["FINANCE","HR"]}}]}),
                "1,2,4,18",
                "=",
            ),
            (
                6,
                json!({"must":[{"key":"department","match":{"any":[]}}]}),
                "none",
                "=",
            ),
            (
                7,
                json!({"must_not":[{"key":"department","match":{"any":["FINANCE"]}}]}),
                "2,3,5,6,7,8,9,10,11,12,13,14,15,16,17,18",
                "=",
            ),
            (
                8,
                json!({"must":[{"key":"department","match":{"except":["FINANCE"]}}]}),
                "2,4,8,11,13,17,18",
                "2,4,8,13,18",
            ),
            (
                9,
                json!({"must":[{"key":"department","match":{"except":["HR"]}}]}),
                "1,4,8,11,13,17",
                "1,4,8,13",
            ),
            (
                10,
                json!({"must":[{"key":"department","match":{"except":[]}}]}),
                "1,2,4,8,11,13,17,18",
                "1,2,4,8,13,18",
            ),
            (
                11,
                json!({"must_not":[{"key":"department","match":{"except":["FINANCE"]}}]}),
                "1,3,5,6,7,9,10,12,14,15,16",
                "1,3,5,6,7,9,10,11,12,14,15,16,17",
            ),
            (
                12,
                json!({"must":[{"key":"department","match":{"value":42}}]}),
                "11",
                "=",
            ),
            (
                13,
                json!({"must":[{"key":"department","match":{"value":"42"}}]}),
                "none",
                "=",
            ),
            (
                14,
                json!({"must":[{"key":"department","match":{"value":""}}]}),
                "13",
                "=",
            ),
            (
                15,
                json!({"must":[{"key":"department","match":{"value":null}}]}),
                "ERR",
                "=",
            ),
            (
                16,
                json!({"must":[{"key":"department","match":{"text":"FIN"}}]}),
                "1,4",
                "=",
            ),
            (
                17,
                json!({"must":[{"key":"Department","match":{"value":"FINANCE"}}]}),
                "16",
                "=",
            ),
            (
                18,
                json!({"must":[{"key":"metadata.department","match":{"value":"HR"}}]}),
                "3,9",
                "=",
            ),
            (
                19,
                json!({"must":[{"key":"metadata[].department","match":{"value":"HR"}}]}),
                "10",
                "=",
            ),
            (
                20,
                json!({"must":[{"key":"\"metadata.department\"","match":{"value":"HR"}}]}),
                "14",
                "=",
            ),
            (
                21,
                json!({"must":[{"key":"department[]","match":{"value":"HR"}}]}),
                "4,18",
                "=",
            ),
            (
                22,
                json!({"must":[{"key":"department.name","match":{"value":"FINANCE"}}]}),
                "17",
                "=",
            ),
            (
                23,
                json!({"must_not":[{"key":"metadata.department","match":{"value":"HR"}}]}),
                "1,2,4,5,6,7,8,10,11,12,13,14,15,16,17,18",
                "=",
            ),
            (
                24,
                json!({"must":[{"nested":{"key":"metadata","filter":{"must":[{"key":"department","match":{"value":"HR"}}]}}}]}),
                "10",
                "=",
            ),
            (
                25,
                json!({"must":[{"is_empty":{"key":"department"}}]}),
                "3,5,6,7,9,10,12,14,16",
                "=",
            ),
            (
                26,
                json!({"must_not":[{"is_empty":{"key":"department"}}]}),
                "1,2,4,8,11,13,15,17,18",
                "=",
            ),
            (
                27,
                json!({"must":[{"is_null":{"key":"department"}}]}),
                "6",
                "6,15,18",
            ),
            (
                28,
                json!({"must_not":[{"is_null":{"key":"department"}}]}),
                "1,2,3,4,5,7,8,9,10,11,12,13,14,15,16,17,18",
                "1,2,3,4,5,7,8,9,10,11,12,13,14,16,17",
            ),
            (
                29,
                json!({"must":[{"is_empty":{"key":"metadata.department"}}]}),
                "1,2,4,5,6,7,8,10,11,12,13,14,15,16,17,18",
                "=",
            ),
            (
                30,
                json!({"must":[{"key":"department","values_count":{"gte":1}}]}),
                "1,2,4,8,11,13,15,17,18",
                "=",
            ),
            (31, json!({"should":[fin]}), "1,4", "="),
            (32, json!({"should":[]}), "ALL", "="),
            (33, json!({"must":[]}), "ALL", "="),
            (34, json!({"must_not":[]}), "ALL", "="),
            (35, json!({}), "ALL", "="),
            (
                36,
                json!({"must":[{"key":"region","match":{"value":"EMEA"}}],"must_not":[fin]}),
                "5",
                "=",
            ),
            (37, json!({"must":[{"should":[]}]}), "ALL", "="),
            (
                38,
                json!({"must":[{"must_not":[fin]}]}),
                "2,3,5,6,7,8,9,10,11,12,13,14,15,16,17,18",
                "=",
            ),
            (
                39,
                json!({"min_should":{"conditions":[fin,{"key":"department","match":{"value":"HR"}}],"min_count":1}}),
                "1,2,4,18",
                "=",
            ),
            (
                40,
                json!({"min_should":{"conditions":[fin,{"key":"department","match":{"value":"HR"}}],"min_count":2}}),
                "4",
                "=",
            ),
            (41, json!({"must":[{"has_id":[1,2]},fin]}), "1", "="),
            (42, json!({"mustt":[fin]}), "ERR", "="),
            (
                43,
                json!({"must":[{"key":"department","match":{"any":["FINANCE",42]}}]}),
                "ERR",
                "=",
            ),
            (
                44,
                json!({"must":[{"key":"","match":{"value":"FINANCE"}}]}),
                "ERR",
                "=",
            ),
            (
                45,
                json!({"min_should":{"conditions":[],"min_count":1}}),
                "none",
                "=",
            ),
            (
                46,
                json!({"min_should":{"conditions":[fin],"min_count":0}}),
                "ERR",
                "=",
            ),
            (
                47,
                json!({"should":[],"must":[{"key":"region","match":{"value":"EMEA"}}]}),
                "1,4,5",
                "=",
            ),
            (48, json!({"should":[{"must":[]}]}), "ALL", "="),
            (
                49,
                json!({"should":[{"key":"department","match":{"any":[]}}]}),
                "none",
                "=",
            ),
            (
                50,
                json!({"must_not":[{"key":"department","match":{"any":[]}}]}),
                "ALL",
                "=",
            ),
            (
                51,
                json!({"must_not":[{"is_empty":{"key":"department"}},fin]}),
                "2,8,11,13,15,17,18",
                "=",
            ),
            (
                52,
                json!({"must":[{"key":"metadata","match":{"value":"HR"}}]}),
                "none",
                "=",
            ),
            (
                53,
                json!({"must":[{"key":" department","match":{"value":"FINANCE"}}]}),
                "ERR",
                "=",
            ),
            (
                54,
                json!({"must":[{"key":"department","match":{"text":"finance"}}]}),
                "8",
                "=",
            ),
            (
                55,
                json!({"must":[{"key":"department","match":{"phrase":"FIN"}}]}),
                "1,4",
                "=",
            ),
            (56, json!({"must":fin}), "1,4", "="),
            (
                57,
                json!({"must_not":fin}),
                "2,3,5,6,7,8,9,10,11,12,13,14,15,16,17,18",
                "=",
            ),
            (58, json!({"must":null}), "ALL", "="),
            (59, json!({"must":[{"key":"department"}]}), "ERR", "="),
            (61, json!({"must":[{"has_id":[]}]}), "none", "="),
            (62, json!({"must_not":[{"has_id":[]}]}), "ALL", "="),
            (
                63,
                json!({"must":[{"key":"department[0]","match":{"value":"FINANCE"}}]}),
                "4",
                "=",
            ),
            (
                64,
                json!({"must":[{"nested":{"key":"metadata","filter":{"must":[{"is_empty":{"key":"department"}}]}}}]}),
                "none",
                "=",
            ),
            (
                65,
                json!({"must":[{"key":"department","match":{"value":true}}]}),
                "none",
                "=",
            ),
            (
                66,
                json!({"must":[{"key":"department","matc":{"value":"FINANCE"}}]}),
                "ERR",
                "=",
            ),
            (
                67,
                json!({"must":[{"key":"department","match":{"value":"FINANCE","any":["HR"]}}]}),
                "1,4",
                "=",
            ),
        ];
        for (row, filter, plain, with_index) in rows {
            let with_index = if with_index == "=" { plain } else { with_index };
            for (indexed, want) in [(false, plain), (true, with_index)] {
                let got = ids_where(&filter, &points, indexed);
                if want == "ERR" {
                    assert!(
                        got.is_err(),
                        "row {row} (indexed {indexed}) should be refused"
                    );
                } else {
                    assert_eq!(
                        got.unwrap(),
                        expect(want, points.len()),
                        "row {row} indexed {indexed}"
                    );
                }
            }
        }
        // The translator's constants.
        assert_eq!(
            ids_where(&match_none(), &points, false).unwrap(),
            expect("none", 18)
        );
        assert_eq!(
            ids_where(&match_all(), &points, true).unwrap(),
            expect("ALL", 18)
        );
    }

    /// `ref/vectordbs.md` B.2, measured with qdrant-edge (Qdrant's segment code). Its
    /// `is_null` row agrees with the indexed server (qdrant-measured.md rows 27/28).
    #[test]
    fn simulator_matches_measured_table_b2() {
        let points = numbered(vec![
            json!({"dept":"eng","lvl":3,"tags":["a","b"]}),
            json!({"dept":"hr","lvl":5,"tags":["b"]}),
            json!({}),
            json!({"dept":null}),
            json!({"dept":[]}),
            json!({"dept":["eng","hr"]}),
            json!({"dept":3,"lvl":3.0}),
            json!({"dept":"eng","nested":[{"a":1,"b":"x"},{"a":2,"b":"y"}]}),
            json!({"dept":[null,"eng"]}),
        ]);
        let eng = json!({"key":"dept","match":{"value":"eng"}});
        let rows: Vec<(Json, &str, &str)> = vec![
            (json!({"must":[eng]}), "1,6,8,9", "="),
            (json!({"must_not":[eng]}), "2,3,4,5,7", "="),
            (
                json!({"must_not":[{"key":"dept","match":{"any":["eng"]}}]}),
                "2,3,4,5,7",
                "=",
            ),
            (
                json!({"must":[{"key":"dept","match":{"any":["eng","hr"]}}]}),
                "1,2,6,8,9",
                "=",
            ),
            (
                json!({"must":[{"key":"dept","match":{"except":["eng"]}}]}),
                "2,6,7",
                "2,6",
            ),
            (
                json!({"must":[{"key":"tags","match":{"except":["a"]}}]}),
                "1,2",
                "=",
            ),
            (
                json!({"must":[{"key":"dept","match":{"any":[]}}]}),
                "none",
                "=",
            ),
            (
                json!({"must":[{"key":"dept","match":{"except":[]}}]}),
                "1,2,6,7,8,9",
                "1,2,6,8,9",
            ),
            (
                json!({"must":[{"key":"lvl","match":{"value":3}}]}),
                "1",
                "1,7",
            ),
            (
                json!({"must":[{"key":"lvl","range":{"gte":3,"lte":3}}]}),
                "1,7",
                "=",
            ),
            (json!({"must":[{"is_empty":{"key":"dept"}}]}), "3,4,5", "="),
            (json!({"must":[{"is_null":{"key":"dept"}}]}), "4", "4,9"),
            (
                json!({"must":[{"key":"dept","values_count":{"lt":1}}]}),
                "3,4,5",
                "=",
            ),
            (json!({"should":[]}), "ALL", "="),
            (json!({"must":[]}), "ALL", "="),
            (json!({"must_not":[]}), "ALL", "="),
            (json!({}), "ALL", "="),
            (json!({"must":[{"should":[]}]}), "ALL", "="),
            (
                json!({"min_should":{"conditions":[],"min_count":1}}),
                "none",
                "=",
            ),
            (json!({"has_id":[]}), "ERR", "="),
            (json!({"must":[{"has_id":[]}]}), "none", "="),
            (
                json!({"must":[{"nested":{"key":"nested","filter":{"must":[
                {"key":"a","match":{"value":1}},{"key":"b","match":{"value":"y"}}]}}}]}),
                "none",
                "=",
            ),
            (
                json!({"must":[{"key":"nested[].a","match":{"value":1}},{"key":"nested[].b","match":{"value":"y"}}]}),
                "8",
                "=",
            ),
        ];
        for (filter, plain, with_index) in rows {
            let with_index = if with_index == "=" { plain } else { with_index };
            for (indexed, want) in [(false, plain), (true, with_index)] {
                let got = ids_where(&filter, &points, indexed);
                if want == "ERR" {
                    // A bare `{"has_id": []}` is a condition, not a filter.
                    assert!(got.is_err(), "{filter} should be refused");
                } else {
                    assert_eq!(
                        got.unwrap(),
                        expect(want, points.len()),
                        "{filter} indexed {indexed}"
                    );
                }
            }
        }
    }

    /// The trap behind every PRESENCE refusal: no condition tells `[]` from a missing key.
    #[test]
    fn empty_array_and_missing_key_are_indistinguishable() {
        let points = numbered(vec![json!({"x": []}), json!({})]);
        let k = |c: Json| json!({"must":[c]});
        for c in [
            json!({"is_empty":{"key":"x"}}),
            json!({"is_null":{"key":"x"}}),
            json!({"key":"x","values_count":{"lt":1}}),
            json!({"key":"x","values_count":{"gte":1}}),
            json!({"key":"x","match":{"except":["a"]}}),
            json!({"key":"x","match":{"except":[]}}),
            json!({"key":"x","match":{"value":"a"}}),
            json!({"key":"x","range":{"gte":0}}),
            json!({"key":"x[]","match":{"except":[]}}),
            json!({"is_empty":{"key":"x[]"}}),
        ] {
            for indexed in [false, true] {
                let got = ids_where(&k(c.clone()), &points, indexed).unwrap();
                assert!(
                    got.len() != 1,
                    "{c} separates [] from a missing key: {got:?}"
                );
            }
        }
    }

    fn dflt() -> FieldMapping {
        FieldMapping::qdrant_default()
    }

    fn req(names: &[&str]) -> FieldMapping {
        FieldMapping::qdrant_default().with_required(names.iter().copied())
    }

    fn tr(e: &crate::plan::Expr, m: &FieldMapping) -> Result<Json, TranslateError> {
        let out = translate(e, m, 500);
        if let Ok(f) = &out {
            sim::check_shape(f, true).unwrap_or_else(|err| panic!("bad shape {f}: {err}"));
        }
        out
    }

    fn refused(e: &crate::plan::Expr, m: &FieldMapping) -> TranslateError {
        tr(e, m).expect_err("expected a refusal")
    }

    fn is_not_exact(e: &TranslateError) -> bool {
        matches!(e, TranslateError::NotExact { .. })
    }

    fn is_unsupported(e: &TranslateError) -> bool {
        matches!(e, TranslateError::Unsupported { .. })
    }

    fn push(e: &crate::plan::Expr, m: &FieldMapping) -> Pushdown {
        translate_pushdown(e, m, 100).unwrap()
    }

    #[test]
    fn equality_scalar_guard_and_mirroring() {
        let want = json!({
            "must":[{"key":"metadata.dept","match":{"value":"eng"}}],
            "must_not":[{"key":"metadata.dept[]","match":{"value":"eng"}}]
        });
        assert_eq!(
            tr(&eq(attr("dept"), lit(json!("eng"))), &dflt()).unwrap(),
            want
        );
        assert_eq!(
            tr(&eq(lit(json!("eng")), attr_index("dept")), &dflt()).unwrap(),
            want
        );
        // A required attribute is a scalar: no array guard.
        assert_eq!(
            tr(&eq(attr("dept"), lit(json!("eng"))), &req(&["dept"])).unwrap(),
            json!({"must":[{"key":"metadata.dept","match":{"value":"eng"}}]})
        );
        // Numbers use a range (match 3 misses a stored 3.0 without an index).
        assert_eq!(
            tr(&eq(attr("level"), lit(json!(3.0))), &req(&["level"])).unwrap(),
            json!({"must":[{"key":"metadata.level","range":{"gte":3,"lte":3}}]})
        );
        assert_eq!(
            tr(&le(lit(json!(2.5)), attr("level")), &req(&["level"])).unwrap(),
            json!({"must":[{"key":"metadata.level","range":{"gte":2.5}}]})
        );
        assert_eq!(
            tr(&gt(attr("level"), lit(json!(2))), &dflt()).unwrap(),
            json!({"must":[{"key":"metadata.level","range":{"gt":2}}],
                   "must_not":[{"key":"metadata.level[]","range":{"gt":2}}]})
        );
        assert!(is_unsupported(&refused(
            &gt(attr("dept"), lit(json!("m"))),
            &dflt()
        )));
        assert!(is_unsupported(&refused(
            &eq(attr("x"), lit(json!(-9007199254740992i64))),
            &dflt()
        )));
    }

    #[test]
    fn negation_needs_required() {
        for e in [
            not(eq(attr("dept"), lit(json!("eng")))),
            ne(attr("dept"), lit(json!("eng"))),
            not(in_(attr("dept"), lit(json!(["a", "b"])))),
            not(in_(attr("dept"), lit(json!([])))),
            has("dept"),
            not(has("dept")),
            ne(attr("dept"), lit(json!(null))),
        ] {
            assert!(is_not_exact(&refused(&e, &dflt())), "{e:?}");
        }
        let m = req(&["dept"]);
        assert_eq!(
            tr(&ne(attr("dept"), lit(json!("eng"))), &m).unwrap(),
            json!({"must_not":[{"key":"metadata.dept","match":{"value":"eng"}}]})
        );
        assert_eq!(
            tr(&not(in_(attr("dept"), lit(json!(["a", "b", 1])))), &m).unwrap(),
            json!({"must_not":[
                {"key":"metadata.dept","match":{"any":["a","b"]}},
                {"key":"metadata.dept","range":{"gte":1,"lte":1}}
            ]})
        );
        assert_eq!(
            push(&not(in_(attr("dept"), lit(json!([])))), &m),
            Pushdown::MatchAll
        );
        assert_eq!(push(&has("dept"), &m), Pushdown::MatchAll);
        assert_eq!(push(&not(has("dept")), &m), Pushdown::MatchNone);
        // Orderings and equality-on-the-true-side need no guarantee.
        assert_eq!(
            tr(&not(lt(attr("level"), lit(json!(3)))), &req(&["level"])).unwrap(),
            json!({"must":[{"key":"metadata.level","range":{"gte":3}}]})
        );
        assert!(tr(&not(ne(attr("dept"), lit(json!("a")))), &dflt()).is_ok());
    }

    #[test]
    fn lists_empty_singleton_mixed() {
        assert_eq!(
            push(&in_(attr("dept"), lit(json!([]))), &dflt()),
            Pushdown::MatchNone
        );
        assert_eq!(
            tr(&in_(attr("dept"), lit(json!([]))), &dflt()).unwrap(),
            match_none()
        );
        assert_eq!(
            tr(&in_(attr("dept"), lit(json!(["a"]))), &req(&["dept"])).unwrap(),
            json!({"must":[{"key":"metadata.dept","match":{"value":"a"}}]})
        );
        assert_eq!(
            tr(
                &in_(attr("dept"), lit(json!(["a", "b", true, 2.5]))),
                &dflt()
            )
            .unwrap(),
            json!({
                "must":[{"should":[
                    {"key":"metadata.dept","match":{"any":["a","b"]}},
                    {"key":"metadata.dept","match":{"value":true}},
                    {"key":"metadata.dept","range":{"gte":2.5,"lte":2.5}}
                ]}],
                "must_not":[
                    {"key":"metadata.dept[]","match":{"any":["a","b"]}},
                    {"key":"metadata.dept[]","match":{"value":true}},
                    {"key":"metadata.dept[]","range":{"gte":2.5,"lte":2.5}}
                ]
            })
        );
        // null: is_null alone depends on the index for [null]; with is_empty it does not.
        assert_eq!(
            tr(&eq(attr("x"), lit(json!(null))), &dflt()).unwrap(),
            json!({"must":[{"is_null":{"key":"metadata.x"}},{"is_empty":{"key":"metadata.x"}}]})
        );
        assert_eq!(
            push(&eq(attr("x"), lit(json!(null))), &req(&["x"])),
            Pushdown::MatchNone
        );
    }

    #[test]
    fn membership_in_arrays() {
        let want = json!({"must":[
            {"key":"metadata.tags","match":{"value":"a"}},
            {"key":"metadata.tags[]","match":{"value":"a"}}
        ]});
        assert_eq!(
            tr(&in_(lit(json!("a")), attr("tags")), &dflt()).unwrap(),
            want
        );
        // Scalars, nested arrays and missing keys do not match; direct elements do.
        let points = numbered(vec![
            json!({"metadata":{"tags":"a"}}),
            json!({"metadata":{"tags":[["a"]]}}),
            json!({"metadata":{"tags":["b","a"]}}),
            json!({"metadata":{}}),
            json!({"metadata":{"tags":[null,"a"]}}),
        ]);
        for indexed in [false, true] {
            assert_eq!(
                ids_where(&want, &points, indexed).unwrap(),
                expect("3,5", 5)
            );
        }
        assert!(is_not_exact(&refused(
            &not(in_(lit(json!("a")), attr("tags"))),
            &dflt()
        )));
        assert!(is_unsupported(&refused(
            &in_(lit(json!("a")), attr("tags")),
            &req(&["tags"])
        )));
        // Equality never looks into arrays.
        let eqf = tr(&eq(attr("tags"), lit(json!("a"))), &dflt()).unwrap();
        for indexed in [false, true] {
            assert_eq!(ids_where(&eqf, &points, indexed).unwrap(), expect("1", 5));
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(
            tr(&attr("public"), &req(&["public"])).unwrap(),
            json!({"must":[{"key":"metadata.public","match":{"value":true}}]})
        );
        assert_eq!(
            tr(&not(attr("public")), &dflt()).unwrap(),
            json!({"must":[{"key":"metadata.public","match":{"value":false}}],
                   "must_not":[{"key":"metadata.public[]","match":{"value":false}}]})
        );
    }

    #[test]
    fn ids() {
        assert_eq!(
            tr(&eq(id(), lit(json!("42"))), &dflt()).unwrap(),
            json!({"must":[{"has_id":[42]}]})
        );
        let u = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26";
        assert_eq!(
            tr(&eq(lit(json!(u)), id()), &dflt()).unwrap(),
            json!({"must":[{"has_id":[u]}]})
        );
        assert_eq!(
            tr(&ne(id(), lit(json!("42"))), &dflt()).unwrap(),
            json!({"must_not":[{"has_id":[42]}]})
        );
        assert_eq!(
            tr(&in_(id(), lit(json!(["1", u, "1", "01"]))), &dflt()).unwrap(),
            json!({"must":[{"has_id":[1, u]}]})
        );
        // Spellings no point id has as R.id: Qdrant would parse them, CEL compares strings.
        for v in [
            json!("01"),
            json!(u.to_uppercase()),
            json!("x"),
            json!(42),
            json!(""),
        ] {
            assert_eq!(
                push(&eq(id(), lit(v.clone())), &dflt()),
                Pushdown::MatchNone,
                "{v}"
            );
            assert_eq!(push(&ne(id(), lit(v)), &dflt()), Pushdown::MatchAll);
        }
        assert!(is_unsupported(&refused(
            &lt(id(), lit(json!("5"))),
            &dflt()
        )));
        assert!(is_unsupported(&refused(
            &in_(lit(json!("a")), id()),
            &dflt()
        )));
    }

    #[test]
    fn has_guards_combine_with_their_comparison() {
        let secret = || eq(attr("c"), lit(json!("secret")));
        let deny = tr(&not(and(vec![has("c"), secret()])), &dflt()).unwrap();
        assert_eq!(
            deny,
            json!({"should":[
                {"must_not":[{"key":"metadata.c","match":{"value":"secret"}}]},
                {"key":"metadata.c[]","match":{"value":"secret"}}
            ]})
        );
        let points = numbered(vec![
            json!({"metadata":{"c":"secret"}}),
            json!({"metadata":{"c":"x"}}),
            json!({"metadata":{"c":["secret"]}}),
            json!({"metadata":{"c":[]}}),
            json!({"metadata":{"c":null}}),
            json!({"metadata":{}}),
            json!({}),
        ]);
        for indexed in [false, true] {
            assert_eq!(
                ids_where(&deny, &points, indexed).unwrap(),
                expect("2,3,4,5,6,7", 7)
            );
        }
        assert_eq!(
            tr(
                &or(vec![not(has("c")), ne(attr("c"), lit(json!("secret")))]),
                &dflt()
            )
            .unwrap(),
            deny
        );
        assert_eq!(
            tr(&and(vec![has("c"), secret()]), &dflt()).unwrap(),
            tr(&secret(), &dflt()).unwrap()
        );
        assert_eq!(
            push(&and(vec![not(has("c")), secret()]), &dflt()),
            Pushdown::MatchNone
        );
        // A nested path also errors when its parent is not a map: no rewrite.
        assert!(is_not_exact(&refused(
            &not(and(vec![has("o.c"), eq(attr("o.c"), lit(json!("x")))])),
            &dflt()
        )));
        assert!(is_not_exact(&refused(
            &and(vec![has("c"), ne(attr("c"), lit(json!("x")))]),
            &dflt()
        )));
    }

    #[test]
    fn key_paths_and_prefixes() {
        let f =
            |m: &FieldMapping, e: crate::plan::Expr| tr(&e, m).map(|j| j["must"][0]["key"].clone());
        let m = FieldMapping::new("", ["dept"]);
        assert_eq!(
            f(&m, eq(attr("dept"), lit(json!("a")))).unwrap(),
            json!("dept")
        );
        let m = FieldMapping::new("meta_", ["dept"]);
        assert_eq!(
            f(&m, eq(attr("dept"), lit(json!("a")))).unwrap(),
            json!("meta_dept")
        );
        let m = FieldMapping::new("doc.meta.", ["dept"]);
        assert_eq!(
            f(&m, eq(attr("dept"), lit(json!("a")))).unwrap(),
            json!("doc.meta.dept")
        );
        let m = req(&["a.b"]);
        assert_eq!(
            f(&m, eq(attr_index("a.b"), lit(json!("x")))).unwrap(),
            json!("metadata.\"a.b\"")
        );
        assert_eq!(
            f(&dflt(), eq(attr("owner.id"), lit(json!("x")))).unwrap(),
            json!("metadata.owner.id")
        );
        assert_eq!(
            f(&req(&["a b"]), eq(attr_index("a b"), lit(json!("x")))).unwrap(),
            json!("metadata.\"a b\"")
        );
        for (m, e) in [
            (dflt(), eq(attr_index("a\"b"), lit(json!("x")))),
            (dflt(), eq(attr_index(""), lit(json!("x")))),
            (
                FieldMapping::new("a b.", Vec::<String>::new()),
                eq(attr("x"), lit(json!("x"))),
            ),
            (
                FieldMapping::new("m[].", Vec::<String>::new()),
                eq(attr("x"), lit(json!("x"))),
            ),
        ] {
            assert!(
                matches!(refused(&e, &m), TranslateError::InvalidKey { .. }),
                "{e:?}"
            );
        }
        // A nested field is never "required", even if its dotted name is listed.
        assert!(is_not_exact(&refused(
            &ne(attr("owner.id"), lit(json!("x"))),
            &req(&["owner.id"])
        )));
        // The quoted key reaches the literal dotted key, not the nested path.
        let f = tr(&eq(attr_index("a.b"), lit(json!("x"))), &req(&["a.b"])).unwrap();
        let points = numbered(vec![
            json!({"metadata":{"a.b":"x"}}),
            json!({"metadata":{"a":{"b":"x"}}}),
        ]);
        assert_eq!(ids_where(&f, &points, false).unwrap(), expect("1", 2));
    }

    #[test]
    fn nesting_folding_limits_and_unsupported() {
        let m = req(&["dept", "region"]);
        let e = not(or(vec![
            eq(attr("dept"), lit(json!("a"))),
            and(vec![eq(attr("region"), lit(json!("eu"))), Expr::bool(true)]),
        ]));
        assert_eq!(
            tr(&e, &m).unwrap(),
            json!({"must_not":[
                {"key":"metadata.dept","match":{"value":"a"}},
                {"key":"metadata.region","match":{"value":"eu"}}
            ]})
        );
        let e = or(vec![
            eq(attr("dept"), lit(json!("a"))),
            not(and(vec![
                eq(attr("region"), lit(json!("eu"))),
                lt(attr("n"), lit(json!(1))),
            ])),
        ]);
        assert_eq!(
            tr(&e, &FieldMapping::new("", ["dept", "region", "n"])).unwrap(),
            json!({"should":[
                {"key":"dept","match":{"value":"a"}},
                {"must_not":[{"key":"region","match":{"value":"eu"}}]},
                {"key":"n","range":{"gte":1}}
            ]})
        );
        assert_eq!(
            push(&and(vec![Expr::bool(false), has("dept")]), &m),
            Pushdown::MatchNone
        );
        assert_eq!(
            tr(&or(vec![Expr::bool(true), has("dept")]), &m).unwrap(),
            match_all()
        );
        let e = or((0..4).map(|i| eq(attr("dept"), lit(json!(i)))).collect());
        assert_eq!(
            translate(&e, &m, 3),
            Err(TranslateError::TooManyTerms { terms: 4, limit: 3 })
        );
        // Four conditions plus four array guards without the guarantee.
        assert!(matches!(
            translate(&e, &dflt(), 7),
            Err(TranslateError::TooManyTerms { terms: 8, limit: 7 })
        ));
        let mut deep = eq(attr("dept"), lit(json!(0)));
        for i in 0..60 {
            let other = eq(attr("region"), lit(json!(i)));
            deep = if i % 2 == 0 {
                and(vec![deep, other])
            } else {
                or(vec![deep, other])
            };
        }
        assert!(matches!(
            translate(&deep, &m, 1000),
            Err(TranslateError::TooDeep { .. })
        ));
        for e in [
            call(
                Op::Call("startsWith".into()),
                vec![attr("dept"), lit(json!("a"))],
            ),
            eq(call(Op::Mod, vec![attr("n"), lit(json!(2))]), lit(json!(0))),
            eq(attr("a"), attr("b")),
            eq(lit(json!("a")), lit(json!("a"))),
            call(
                Op::All,
                vec![
                    attr("tags"),
                    call(Op::Lambda, vec![Expr::bool(true), Expr::var("t")]),
                ],
            ),
            in_(attr("dept"), call(Op::List, vec![attr("x")])),
        ] {
            let err = refused(&e, &m);
            assert!(is_unsupported(&err), "{e:?}: {err:?}");
        }
    }

    fn check_case(
        e: &crate::plan::Expr,
        metas: &[Map<String, Json>],
        prefix: &str,
    ) -> Result<bool, TestCaseError> {
        let mapping = FieldMapping::new(prefix, REQUIRED);
        let f = match translate(e, &mapping, 500) {
            Ok(f) => f,
            Err(_) => return Ok(false),
        };
        sim::check_shape(&f, true).map_err(TestCaseError::fail)?;
        for (i, meta) in metas.iter().enumerate() {
            let id_str = IDS[i % IDS.len()];
            let point_id: Json = id_str
                .parse::<u64>()
                .map(Json::from)
                .unwrap_or_else(|_| json!(id_str));
            let payload: Map<String, Json> = if prefix.is_empty() {
                meta.clone()
            } else {
                let mut p = Map::new();
                p.insert("page_content".into(), json!("text"));
                p.insert(
                    prefix.trim_end_matches('.').into(),
                    Json::Object(meta.clone()),
                );
                p
            };
            let want = allowed(
                e,
                &Record {
                    id: id_str.to_string(),
                    meta: meta.clone(),
                },
            );
            for indexed in [false, true] {
                let got = sim::matches(
                    &f,
                    &sim::Point {
                        id: &point_id,
                        payload: &payload,
                    },
                    indexed,
                )
                .map_err(TestCaseError::fail)?;
                prop_assert_eq!(
                    got,
                    want,
                    "plan {} record {:?} filter {} indexed {}",
                    e.debug_string(),
                    meta,
                    f,
                    indexed
                );
            }
        }
        Ok(true)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

        /// Whenever a plan translates, Qdrant returns exactly the points the plan allows,
        /// with or without payload indexes.
        #[test]
        fn translated_filters_are_exact(
            e in plan(),
            metas in prop::collection::vec(metadata(Model::Qdrant), 8..16),
        ) {
            check_case(&e, &metas, "metadata.")?;
            check_case(&e, &metas, "")?;
        }
    }

    #[test]
    fn many_random_plans_translate() {
        assert_many_translate(Model::Qdrant, |e, metas| check_case(e, metas, "metadata.").unwrap());
    }
}
