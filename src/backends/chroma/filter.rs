//! Plan condition → Chroma `where` clause, exact or refused.
//!
//! What the translation relies on (measured on single-node Chroma 1.5.9; `ref/vectordbs.md`
//! A.3, plus the rows marked "measured here" in this file's tests):
//! - `$eq`, `$in` and the orderings match only scalars: never arrays, never missing keys.
//!   Strings and booleans compare by type (`true` ≠ `1`), ints and floats numerically.
//! - But a **fractional** number literal is truncated toward zero for the comparison with
//!   int-valued metadata: `{"x": 2.5}` and `{"x": {"$in": [2.5]}}` match the int `2`,
//!   `{"x": {"$lt": 2.5}}` misses it. Fractional literals are emitted in forms that are exact
//!   whether or not the server truncates (see `order` and `eq_frac`).
//! - `$in`/`$nin` lists must be non-empty and of one type; int and float are different types.
//! - `$contains` matches an array element of the same JSON type only (`2` ≠ `2.0`).
//! - `$ne`, `$nin`, `$not_contains` match everything their positive form does not, including
//!   records lacking the key. They are used only where that cannot matter: on attributes in
//!   `required_attrs` (present, scalar), or ANDed with a positive test on the same key.
//! - There is no `$exists`, `$not`, id filter (`#id` is an ordinary key on a single node),
//!   null value, nested object, or string ordering. Those constructs are refused, except a
//!   `has()` next to a comparison on the same key: `has(c) && c == x` is `c == x`, and
//!   `not (has(c) && c == x)` is exactly `$ne` (the `has()`-guarded DENY).
//!
//! The match-nothing and match-everything constants ([`match_none`], [`match_all`]) are a
//! contradiction and a tautology of `$eq`/`$ne` on one key; we never rely on `{"$or": []}`
//! or `{"$and": []}`.

use crate::backends::lower::{
    check_limits, float_json, group_literals, literal, lower, not_exact, unsupported, Atom, Attr,
    Formula, Lit, Num, Ord4, Pushdown, Set, Side, Target, TranslateError,
};
use crate::backends::FieldMapping;
use crate::plan::Expr;
use serde_json::{json, Value as Json};

const BACKEND: &str = "Chroma";

/// Key used by the constant filters; any key gives the same result.
const CONSTANT_KEY: &str = "vecgate_constant";

/// Translates a plan condition into a Chroma `where` object. A condition that folds to a
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
            Pushdown::Filter(w) => w,
        },
    )
}

/// Like [`translate`], but reports constant outcomes instead of encoding them.
pub fn translate_pushdown(
    plan_condition: &Expr,
    mapping: &FieldMapping,
    max_terms: usize,
) -> Result<Pushdown, TranslateError> {
    let f = lower(&Chroma { mapping }, plan_condition, Set::TRUE, 0)?;
    check_limits(&f, max_terms)?;
    Ok(match f {
        Formula::Const(true) => Pushdown::MatchAll,
        Formula::Const(false) => Pushdown::MatchNone,
        other => Pushdown::Filter(render(&other)),
    })
}

/// A `where` that matches no record: `k == "x"` and `k != "x"` at once.
#[must_use]
pub fn match_none() -> Json {
    json!({"$and": [
        {CONSTANT_KEY: {"$eq": "x"}},
        {CONSTANT_KEY: {"$ne": "x"}},
    ]})
}

/// A `where` that matches every record: `k == "x"` or `k != "x"`.
#[must_use]
pub fn match_all() -> Json {
    json!({"$or": [
        {CONSTANT_KEY: {"$eq": "x"}},
        {CONSTANT_KEY: {"$ne": "x"}},
    ]})
}

/// One `{key: {op: operand}}` clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf {
    key: String,
    op: &'static str,
    operand: Json,
}

fn leaf(key: &str, op: &'static str, operand: Json) -> Formula<Leaf> {
    Formula::leaf(Leaf {
        key: key.to_string(),
        op,
        operand,
    })
}

/// `$eq` for one value, `$in` for several (same op family for `$ne`/`$nin`).
fn one_or_many(key: &str, negated: bool, items: Vec<Json>) -> Formula<Leaf> {
    match (items.len(), negated) {
        (0, false) => Formula::Const(false),
        (0, true) => Formula::Const(true),
        (1, _) => {
            let op = if negated { "$ne" } else { "$eq" };
            leaf(key, op, items.into_iter().next().unwrap_or(Json::Null))
        }
        (_, _) => {
            let op = if negated { "$nin" } else { "$in" };
            leaf(key, op, Json::Array(items))
        }
    }
}

fn render(f: &Formula<Leaf>) -> Json {
    match f {
        Formula::Const(true) => match_all(),
        Formula::Const(false) => match_none(),
        Formula::Leaf(l) => {
            let mut inner = serde_json::Map::new();
            inner.insert(l.op.to_string(), l.operand.clone());
            let mut outer = serde_json::Map::new();
            outer.insert(l.key.clone(), Json::Object(inner));
            Json::Object(outer)
        }
        Formula::And(items) => json!({"$and": items.iter().map(render).collect::<Vec<_>>()}),
        Formula::Or(items) => json!({"$or": items.iter().map(render).collect::<Vec<_>>()}),
    }
}

struct Chroma<'m> {
    mapping: &'m FieldMapping,
}

const NEEDS_REQUIRED: &str = "Chroma's $ne/$nin also match records that lack the key or hold \
another type or an array, and Chroma has no $exists; declare the attribute in required_attrs \
or guard it with has() on a required attribute";

impl Chroma<'_> {
    fn key(&self, attr: &Attr) -> Result<String, TranslateError> {
        let Some(name) = attr.top_level() else {
            return Err(TranslateError::InvalidKey {
                attr: attr.display(),
                backend: BACKEND,
                reason: "Chroma metadata is flat: it has no nested fields",
            });
        };
        let key = format!("{}{}", self.mapping.attr_prefix, name);
        if key.is_empty() {
            return Err(TranslateError::InvalidKey {
                attr: attr.display(),
                backend: BACKEND,
                reason: "metadata keys cannot be empty",
            });
        }
        if key.starts_with('$') || key.starts_with('#') {
            return Err(TranslateError::InvalidKey {
                attr: attr.display(),
                backend: BACKEND,
                reason: "keys starting with $ or # are operators or special keys (#document, #id)",
            });
        }
        Ok(key)
    }
}

impl Target for Chroma<'_> {
    type Leaf = Leaf;

    fn atom(
        &self,
        atom: Atom<'_>,
        side: Side,
        node: &Expr,
    ) -> Result<Formula<Leaf>, TranslateError> {
        self.translate_atom(atom, side, node, false)
    }

    /// `$ne`, `$nin` and `$not_contains` match exactly the records `$eq`, `$in` and
    /// `$contains` do not (missing keys, other types and arrays included), and the other way
    /// round. Chroma has no `$not`, so an ordering has no exact negation.
    fn negate_leaf(&self, leaf: Leaf) -> Result<Leaf, &'static str> {
        let op = match leaf.op {
            "$eq" => "$ne",
            "$ne" => "$eq",
            "$in" => "$nin",
            "$nin" => "$in",
            "$contains" => "$not_contains",
            "$not_contains" => "$contains",
            _ => return Err(NO_NEGATED_ORDER),
        };
        Ok(Leaf { op, ..leaf })
    }
}

const NO_NEGATED_ORDER: &str = "the records where a comparison is not true include those \
lacking the key or holding another type, and Chroma has no $not or $exists to select them \
next to the opposite ordering; use evaluation: fail_closed, or compare with == / in";

impl Chroma<'_> {
    /// `assume_present`: translate as if the attribute were required (used for complements,
    /// where matching records that lack the key is wanted).
    fn translate_atom(
        &self,
        atom: Atom<'_>,
        side: Side,
        node: &Expr,
        assume_present: bool,
    ) -> Result<Formula<Leaf>, TranslateError> {
        match atom {
            // A bare attribute is true for `true`, false for `false`, an error otherwise;
            // `$eq` on a bool matches only bools.
            Atom::Truthy { attr } => {
                let key = self.key(&attr)?;
                Ok(leaf(&key, "$eq", Json::Bool(side.is_true())))
            }
            Atom::Has { attr } => {
                self.key(&attr)?;
                if attr.is_required(self.mapping) {
                    Ok(Formula::Const(side.is_true()))
                } else {
                    Err(not_exact(node, side, "Chroma has no $exists; declare the attribute in required_attrs"))
                }
            }
            Atom::Eq { attr, value } => {
                let key = self.key(&attr)?;
                let lit = literal(value).map_err(|r| unsupported(node, side, r))?;
                let required = assume_present || attr.is_required(self.mapping);
                match (lit, side) {
                    // Chroma stores no null values: nothing equals null.
                    (Lit::Null, Side::True) => Ok(Formula::Const(false)),
                    (_, Side::False) if !required => Err(not_exact(node, side, NEEDS_REQUIRED)),
                    // Required attributes are never null.
                    (Lit::Null, Side::False) => Ok(Formula::Const(true)),
                    (Lit::Str(s), _) => Ok(one_or_many(&key, side == Side::False, vec![json!(s)])),
                    (Lit::Bool(b), _) => Ok(one_or_many(&key, side == Side::False, vec![json!(b)])),
                    (Lit::Num(Num::Int(i)), _) => {
                        Ok(one_or_many(&key, side == Side::False, vec![json!(i)]))
                    }
                    (Lit::Num(Num::Frac(f)), _) => Ok(eq_frac(&key, &[f], side)),
                }
            }
            // Orderings match numbers only, so T(x op c) is exact without required_attrs.
            Atom::Order { attr, op, value } => {
                let key = self.key(&attr)?;
                Ok(order(&key, op, value))
            }
            Atom::InList { attr, values } => {
                let key = self.key(&attr)?;
                let g = group_literals(&values).map_err(|r| unsupported(node, side, r))?;
                if side == Side::False && !(assume_present || attr.is_required(self.mapping)) {
                    return Err(not_exact(node, side, NEEDS_REQUIRED));
                }
                // A null item matches nothing in Chroma and is false on a required attribute.
                let negated = side == Side::False;
                let parts = vec![
                    one_or_many(&key, negated, g.strings.iter().map(|s| json!(s)).collect()),
                    one_or_many(&key, negated, g.bools.iter().map(|b| json!(b)).collect()),
                    one_or_many(&key, negated, g.ints.iter().map(|i| json!(i)).collect()),
                    if g.fracs.is_empty() {
                        Formula::Const(negated)
                    } else {
                        eq_frac(&key, &g.fracs, side)
                    },
                ];
                Ok(if negated {
                    Formula::and(parts)
                } else {
                    Formula::or(parts)
                })
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
                        "$not_contains also matches records that lack the key or hold a scalar",
                    ));
                }
                let lit = literal(value).map_err(|r| unsupported(node, side, r))?;
                match lit {
                    Lit::Str(s) => Ok(leaf(&key, "$contains", json!(s))),
                    Lit::Bool(b) => Ok(leaf(&key, "$contains", json!(b))),
                    // $contains compares by JSON type: an integral value may sit in an int or
                    // a float array.
                    Lit::Num(Num::Int(i)) => Ok(Formula::or(vec![
                        leaf(&key, "$contains", json!(i)),
                        leaf(&key, "$contains", float_json(i as f64)),
                    ])),
                    Lit::Num(n @ Num::Frac(_)) => Ok(leaf(&key, "$contains", n.to_json())),
                    Lit::Null => Err(unsupported(node, side, "Chroma arrays hold no nulls; membership of null is not translated")),
                }
            }
            Atom::IdEq { .. } | Atom::IdIn { .. } => Err(unsupported(
                node,
                side,
                "single-node Chroma cannot filter record ids in `where` (#id is an ordinary metadata key there); filter ids with the request's `ids`",
            )),
        }
    }
}

/// `x == f` (True side) or `x != f` on a required attribute (False side) for fractional
/// literals. Chroma compares int-valued metadata with the literal truncated toward zero, so
/// the positive test is ANDed with "not the truncated int", which no fractional literal
/// equals; on the False side the truncated ints are added back.
fn eq_frac(key: &str, fracs: &[f64], side: Side) -> Formula<Leaf> {
    let items: Vec<Json> = fracs.iter().map(|f| float_json(*f)).collect();
    let mut truncs: Vec<i64> = Vec::new();
    for f in fracs {
        let t = f.trunc() as i64;
        if !truncs.contains(&t) {
            truncs.push(t);
        }
    }
    let truncs: Vec<Json> = truncs.into_iter().map(|t| json!(t)).collect();
    match side {
        Side::True => Formula::and(vec![
            one_or_many(key, false, items),
            one_or_many(key, true, truncs),
        ]),
        Side::False => Formula::or(vec![
            one_or_many(key, true, items),
            one_or_many(key, false, truncs),
        ]),
    }
}

/// `x op c` for a number `c`. Integral literals compare exactly. For a fractional `c`, the
/// server compares ints with `trunc(c)`; that is right when truncation rounds the way the
/// operator needs (toward −∞ for `>`/`<=`, toward +∞ for `>=`/`<`). Otherwise we emit
/// `(x op c  or  Q)  and  Q'`, with integral `Q` exact on ints and narrower on floats, and
/// integral `Q'` exact on ints and wider on floats: exact whether or not the server truncates.
fn order(key: &str, op: Ord4, value: Num) -> Formula<Leaf> {
    let op_key = |o: Ord4| -> &'static str {
        match o {
            Ord4::Lt => "$lt",
            Ord4::Le => "$lte",
            Ord4::Gt => "$gt",
            Ord4::Ge => "$gte",
        }
    };
    let f = match value {
        Num::Int(i) => return leaf(key, op_key(op), json!(i)),
        Num::Frac(f) => f,
    };
    let direct = leaf(key, op_key(op), float_json(f));
    let truncation_is_right = match op {
        Ord4::Gt | Ord4::Le => f > 0.0,
        Ord4::Ge | Ord4::Lt => f < 0.0,
    };
    if truncation_is_right {
        return direct;
    }
    let (floor, ceil) = (f.floor() as i64, f.ceil() as i64);
    let (narrow, wide) = match op {
        Ord4::Gt | Ord4::Ge => (
            leaf(key, "$gte", json!(ceil)),
            leaf(key, "$gt", json!(floor)),
        ),
        Ord4::Lt | Ord4::Le => (
            leaf(key, "$lte", json!(floor)),
            leaf(key, "$lt", json!(ceil)),
        ),
    };
    Formula::and(vec![Formula::or(vec![direct, narrow]), wide])
}

#[cfg(test)]
pub(crate) mod sim;

#[cfg(test)]
mod tests;

/// Rewrites `{key: {"$eq": v}}` to Chroma's own shorthand `{key: v}` where `v` is a string
/// or a bool (the two forms are the same filter; the shorthand is what people write).
pub fn compact(where_: &Json) -> Json {
    match where_ {
        Json::Object(o) if o.len() == 1 => {
            let mut out = serde_json::Map::new();
            for (k, v) in o {
                let value = match v {
                    Json::Array(items) if k == "$and" || k == "$or" => {
                        Json::Array(items.iter().map(compact).collect())
                    }
                    Json::Object(inner) if inner.len() == 1 => match inner.get("$eq") {
                        Some(eq @ (Json::String(_) | Json::Bool(_))) => eq.clone(),
                        _ => v.clone(),
                    },
                    other => other.clone(),
                };
                out.insert(k.clone(), value);
            }
            Json::Object(out)
        }
        other => other.clone(),
    }
}
