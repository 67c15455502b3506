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

use crate::backends::lower::{
    check_limits, group_literals, literal, lower, not_exact, unsupported, Atom, Attr,
    Formula, Lit, Num, Ord4, Pushdown, Set, Side, Target, TranslateError,
};
use crate::backends::FieldMapping;
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
    let f = lower(&Qdrant { mapping }, plan_condition, Set::TRUE, 0)?;
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

    /// `must` and `must_not` of one condition split the points exactly: `must_not` also
    /// matches points lacking the key, which is what a complement needs.
    fn negate_leaf(&self, leaf: Leaf) -> Result<Leaf, &'static str> {
        Ok(match leaf {
            Leaf::Pos(c) => Leaf::Neg(c),
            Leaf::Neg(c) => Leaf::Pos(c),
        })
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
pub(crate) mod sim;

#[cfg(test)]
mod tests;
