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

use super::super::{
    check_limits, group_literals, literal, lower, not_exact, unsupported, Atom, Attr, FieldMapping,
    Formula, Lit, Num, Ord4, Pushdown, Side, Target, TranslateError,
};
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
    let f = lower(&Chroma { mapping }, plan_condition, Side::True, 0)?;
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

    /// `$ne`/`$nin` match exactly the records `$eq`/`$in` do not, missing keys included:
    /// that is the False side as written for a required attribute.
    fn complement(&self, atom: Atom<'_>, node: &Expr) -> Result<Formula<Leaf>, TranslateError> {
        match atom {
            Atom::Eq { .. } | Atom::InList { .. } => {
                self.translate_atom(atom, Side::False, node, true)
            }
            _ => Err(unsupported(
                node,
                Side::False,
                "no complement form for this comparison",
            )),
        }
    }
}

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
                        leaf(&key, "$contains", super::super::float_json(i as f64)),
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
    let items: Vec<Json> = fracs.iter().map(|f| super::super::float_json(*f)).collect();
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
    let direct = leaf(key, op_key(op), super::super::float_json(f));
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod sim {
    //! A reference evaluator of Chroma `where` clauses, following the measured semantics of
    //! single-node Chroma 1.5.9 (the tables in this file's tests). `Err` is a 400 answer.

    use serde_json::{Map, Value as Json};

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        Str,
        Bool,
        Int,
        Float,
    }

    fn kind(v: &Json) -> Option<Kind> {
        match v {
            Json::String(_) => Some(Kind::Str),
            Json::Bool(_) => Some(Kind::Bool),
            Json::Number(n) if n.is_i64() || n.is_u64() => Some(Kind::Int),
            Json::Number(_) => Some(Kind::Float),
            _ => None,
        }
    }

    /// `stored == lit`: strings and bools by type; an int literal compares with ints and
    /// floats; a float literal compares with floats, and with ints after truncation.
    fn eq(stored: &Json, lit: &Json) -> bool {
        match (kind(stored), kind(lit)) {
            (Some(Kind::Str), Some(Kind::Str)) | (Some(Kind::Bool), Some(Kind::Bool)) => {
                stored == lit
            }
            (Some(Kind::Int), Some(Kind::Int)) => stored.as_i64() == lit.as_i64(),
            (Some(Kind::Float), Some(Kind::Int)) => stored.as_f64() == lit.as_f64(),
            (Some(Kind::Int), Some(Kind::Float)) => {
                stored.as_i64() == lit.as_f64().map(|f| f as i64)
            }
            (Some(Kind::Float), Some(Kind::Float)) => stored.as_f64() == lit.as_f64(),
            _ => false,
        }
    }

    fn order(stored: &Json, op: &str, lit: &Json) -> bool {
        let cmp = |a: f64, b: f64| match op {
            "$gt" => a > b,
            "$gte" => a >= b,
            "$lt" => a < b,
            _ => a <= b,
        };
        let icmp = |a: i64, b: i64| match op {
            "$gt" => a > b,
            "$gte" => a >= b,
            "$lt" => a < b,
            _ => a <= b,
        };
        match (kind(stored), kind(lit)) {
            (Some(Kind::Int), Some(Kind::Int)) => {
                icmp(stored.as_i64().unwrap(), lit.as_i64().unwrap())
            }
            (Some(Kind::Int), Some(Kind::Float)) => {
                icmp(stored.as_i64().unwrap(), lit.as_f64().unwrap() as i64)
            }
            (Some(Kind::Float), Some(Kind::Int | Kind::Float)) => {
                cmp(stored.as_f64().unwrap(), lit.as_f64().unwrap())
            }
            _ => false,
        }
    }

    fn scalar_operand(v: &Json) -> Result<(), String> {
        kind(v)
            .map(|_| ())
            .ok_or_else(|| format!("invalid operand {v}"))
    }

    /// Does a record with this metadata (`None`: null metadata) match `w`?
    pub fn matches(w: &Json, meta: Option<&Map<String, Json>>) -> Result<bool, String> {
        let obj = w.as_object().ok_or("where must be an object")?;
        if obj.len() != 1 {
            return Err(format!(
                "where objects take exactly one key, got {}",
                obj.len()
            ));
        }
        let (key, val) = obj.iter().next().unwrap();
        if key == "$and" || key == "$or" {
            let items = val.as_array().ok_or("$and/$or take a list")?;
            let mut results = Vec::new();
            for i in items {
                results.push(matches(i, meta)?);
            }
            return Ok(if key == "$and" {
                results.iter().all(|b| *b)
            } else {
                results.iter().any(|b| *b)
            });
        }
        if key.is_empty() || key.starts_with('$') || key == "#document" {
            return Err(format!("unsupported key {key}"));
        }
        let (op, operand) = match val {
            Json::Object(o) => {
                if o.len() != 1 {
                    return Err("an operator object takes exactly one operator".into());
                }
                let (op, operand) = o.iter().next().unwrap();
                (op.as_str(), operand)
            }
            other => ("$eq", other),
        };
        let stored = meta.and_then(|m| m.get(key));
        match op {
            "$eq" | "$ne" => {
                scalar_operand(operand)?;
                let hit = stored.is_some_and(|s| eq(s, operand));
                Ok(hit == (op == "$eq"))
            }
            "$gt" | "$gte" | "$lt" | "$lte" => {
                if !matches!(kind(operand), Some(Kind::Int | Kind::Float)) {
                    return Err(format!("{op} takes a number"));
                }
                Ok(stored.is_some_and(|s| order(s, op, operand)))
            }
            "$in" | "$nin" => {
                let list = operand.as_array().ok_or("$in takes a list")?;
                let first = list.first().ok_or("$in takes a non-empty list")?;
                let k = kind(first).ok_or("$in takes scalars")?;
                if list.iter().any(|i| kind(i) != Some(k)) {
                    return Err("$in takes values of one type".into());
                }
                let hit = stored.is_some_and(|s| list.iter().any(|i| eq(s, i)));
                Ok(hit == (op == "$in"))
            }
            "$contains" | "$not_contains" => {
                scalar_operand(operand)?;
                let hit = stored.and_then(Json::as_array).is_some_and(|items| {
                    items.iter().any(|i| {
                        kind(i) == kind(operand)
                            && i.as_f64()
                                .map_or(i == operand, |f| Some(f) == operand.as_f64())
                    })
                });
                Ok(hit == (op == "$contains"))
            }
            other => Err(format!("unknown operator {other}")),
        }
    }

    /// Also enforces what the translator promises never to emit.
    pub fn check_shape(w: &Json) -> Result<(), String> {
        let obj = w.as_object().ok_or("not an object")?;
        if obj.len() != 1 {
            return Err("more than one key".into());
        }
        let (key, val) = obj.iter().next().unwrap();
        if key == "$and" || key == "$or" {
            let items = val.as_array().ok_or("not a list")?;
            if items.len() < 2 {
                return Err(format!("{key} with {} children", items.len()));
            }
            return items.iter().try_for_each(check_shape);
        }
        let op = val.as_object().ok_or("leaf without explicit operator")?;
        for operand in op.values() {
            if operand.is_null() {
                return Err("null operand".into());
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

    fn records(table: &Json) -> Vec<(String, Option<Map<String, Json>>)> {
        table
            .as_object()
            .unwrap()
            .iter()
            .map(|(id, m)| (id.clone(), m.as_object().cloned()))
            .collect()
    }

    fn run(w: &Json, recs: &[(String, Option<Map<String, Json>>)]) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for (id, m) in recs {
            if sim::matches(w, m.as_ref())? {
                out.push(id.clone());
            }
        }
        out.sort();
        Ok(out)
    }

    /// `ref/vectordbs.md` A.3, test data and every row of its `where` table (except the
    /// `#document` rows, which need documents and which the translator never emits).
    #[test]
    fn simulator_matches_measured_table_a3() {
        let recs = records(&json!({
            "eng": {"dept":"eng","level":3,"score":0.5,"public":true,"tags":["a","b"],"nums":[1,2]},
            "hr": {"dept":"hr","level":5,"public":false,"tags":["b"],"nums":[3]},
            "nometa": null,
            "empty": {"other":"x"},
            "lvlfloat": {"dept":"ops","level":3.0,"score":3},
            "deptint": {"dept":1,"level":"3"},
            "deptarr": {"dept":["eng","hr"],"public":1},
        }));
        let all = "deptarr deptint empty eng hr lvlfloat nometa";
        let rows: Vec<(Json, &str)> = vec![
            (json!({"dept":"eng"}), "eng"),
            (json!({"dept":{"$eq":"eng"}}), "eng"),
            (json!({"dept":{"$in":["eng"]}}), "eng"),
            (
                json!({"dept":{"$ne":"eng"}}),
                "deptarr deptint empty hr lvlfloat nometa",
            ),
            (
                json!({"dept":{"$nin":["eng"]}}),
                "deptarr deptint empty hr lvlfloat nometa",
            ),
            (
                json!({"dept":{"$nin":["eng","hr"]}}),
                "deptarr deptint empty lvlfloat nometa",
            ),
            (
                json!({"dept":{"$ne":1}}),
                "deptarr empty eng hr lvlfloat nometa",
            ),
            (json!({"level":3}), "eng lvlfloat"),
            (json!({"level":3.0}), "eng lvlfloat"),
            (json!({"level":{"$in":[3.0]}}), "eng lvlfloat"),
            (json!({"level":{"$gt":2}}), "eng hr lvlfloat"),
            (json!({"level":{"$lte":3.0}}), "eng lvlfloat"),
            (
                json!({"level":{"$ne":3}}),
                "deptarr deptint empty hr nometa",
            ),
            (
                json!({"level":{"$nin":[3]}}),
                "deptarr deptint empty hr nometa",
            ),
            (json!({"public":true}), "eng"),
            (json!({"public":1}), "deptarr"),
            (
                json!({"public":{"$ne":true}}),
                "deptarr deptint empty hr lvlfloat nometa",
            ),
            (json!({"tags":{"$contains":"a"}}), "eng"),
            (json!({"tags":{"$contains":"b"}}), "eng hr"),
            (json!({"nums":{"$contains":1}}), "eng"),
            (
                json!({"tags":{"$not_contains":"a"}}),
                "deptarr deptint empty hr lvlfloat nometa",
            ),
            (json!({"dept":{"$contains":"eng"}}), "deptarr"),
            (json!({"tags":"a"}), ""),
            (json!({"tags":{"$in":["a"]}}), ""),
            (json!({"tags":{"$ne":"a"}}), all),
            (json!({"$and":[]}), all),
            (json!({"$or":[]}), ""),
            (json!({"$and":[{"dept":"eng"}]}), "eng"),
            (json!({"$or":[{"dept":"eng"}]}), "eng"),
            (json!({"$or":[{"$and":[]},{"dept":"eng"}]}), all),
            (json!({"#id":{"$in":["eng"]}}), ""),
        ];
        for (w, want) in rows {
            let want: Vec<String> = want.split_whitespace().map(String::from).collect();
            assert_eq!(run(&w, &recs).unwrap(), want, "where {w}");
        }
        // Grammar refusals (400).
        for w in [
            json!({}),
            json!({"dept":"eng","level":3}),
            json!({"dept":{"$in":[]}}),
            json!({"dept":{"$in":["a",1]}}),
            json!({"dept":{"$gt":"a"}}),
            json!({"dept":null}),
            json!({"dept":{"$eq":null}}),
            json!({"dept":{"$exists":true}}),
            json!({"$not":{"dept":"eng"}}),
        ] {
            assert!(run(&w, &recs).is_err(), "where {w} should be refused");
        }
    }

    /// Measured for this module against single-node chromadb 1.5.9 (raw HTTP `get`):
    /// fractional literals are truncated toward zero when compared with ints, `$in` may not
    /// mix int and float, `$contains` compares by JSON type, orderings skip arrays.
    #[test]
    fn simulator_matches_measured_numeric_rows() {
        let recs = records(&json!({
            "i2":{"x":2},"i3":{"x":3},"f25":{"x":2.5},"f2":{"x":2.0},"f27":{"x":2.7},
            "in2":{"x":-2},"in3":{"x":-3},"fn25":{"x":-2.5},"s":{"x":"2"},"b":{"x":true},
            "arr":{"x":[1,2,3]},"farr":{"x":[2.5,9.5]},"sarr":{"x":["a","b"]},"barr":{"x":[true]},
            "empty":{"x":[]},"none":{"y":1},"i1":{"x":1},"b0":{"x":false},
            "fa2":{"x":[2.0,3.5]},"ia2":{"x":[2,7]},"bt":{"x":[true,false]},
        }));
        let rows: Vec<(Json, &str)> = vec![
            (json!({"x":2.5}), "f25 i2"),
            (
                json!({"x":{"$ne":2.5}}),
                "arr b b0 barr bt empty f2 f27 fa2 farr fn25 i1 i3 ia2 in2 in3 none s sarr",
            ),
            (json!({"x":{"$gte":2.5}}), "f25 f27 i2 i3"),
            (json!({"x":{"$gt":2.5}}), "f27 i3"),
            (json!({"x":{"$lt":2.5}}), "f2 fn25 i1 in2 in3"),
            (json!({"x":{"$lte":2.5}}), "f2 f25 fn25 i1 i2 in2 in3"),
            (json!({"x":{"$gt":-2.5}}), "f2 f25 f27 i1 i2 i3"),
            (json!({"x":{"$gte":-2.5}}), "f2 f25 f27 fn25 i1 i2 i3 in2"),
            (json!({"x":{"$lt":-2.5}}), "in3"),
            (json!({"x":{"$in":[2.5]}}), "f25 i2"),
            (json!({"x":{"$gt":2}}), "f25 f27 i3"),
            (json!({"x":{"$in":[2]}}), "f2 i2"),
            (json!({"x":2.0}), "f2 i2"),
            (json!({"x":{"$gt":0}}), "f2 f25 f27 i1 i2 i3"),
            (json!({"x":{"$contains":2}}), "arr ia2"),
            (json!({"x":{"$contains":2.0}}), "fa2"),
            (json!({"x":{"$contains":2.5}}), "farr"),
            (json!({"x":{"$contains":1.0}}), ""),
            (json!({"x":{"$contains":false}}), "bt"),
            (json!({"x":true}), "b"),
            (json!({"x":1}), "i1"),
            (json!({"x":{"$in":[true,false]}}), "b b0"),
            (json!({"$and":[{"x":{"$eq":2.5}},{"x":{"$ne":2}}]}), "f25"),
            (
                json!({"$and":[{"$or":[{"x":{"$gte":2.5}},{"x":{"$gte":3}}]},{"x":{"$gt":2}}]}),
                "f25 f27 i3",
            ),
            (
                json!({"$and":[{"$or":[{"x":{"$gt":-2.5}},{"x":{"$gte":-2}}]},{"x":{"$gt":-3}}]}),
                "f2 f25 f27 i1 i2 i3 in2",
            ),
            (
                json!({"$and":[{"x":{"$in":[2.5,3.5]}},{"x":{"$nin":[2,3]}}]}),
                "f25",
            ),
            (
                json!({"$or":[{"x":{"$contains":2}},{"x":{"$contains":2.0}}]}),
                "arr fa2 ia2",
            ),
        ];
        for (w, want) in rows {
            let want: Vec<String> = want.split_whitespace().map(String::from).collect();
            assert_eq!(run(&w, &recs).unwrap(), want, "where {w}");
        }
        assert!(run(&json!({"x":{"$in":[1,2.5]}}), &recs).is_err());
        assert_eq!(run(&match_none(), &recs).unwrap(), Vec::<String>::new());
        assert_eq!(run(&match_all(), &recs).unwrap().len(), recs.len());
    }

    fn dflt() -> FieldMapping {
        FieldMapping::chroma_default()
    }

    fn req(names: &[&str]) -> FieldMapping {
        FieldMapping::chroma_default().with_required(names.iter().copied())
    }

    fn tr(e: &crate::plan::Expr, m: &FieldMapping) -> Result<Json, TranslateError> {
        let out = translate(e, m, 500);
        if let Ok(w) = &out {
            sim::check_shape(w).unwrap_or_else(|e| panic!("bad shape {w}: {e}"));
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

    #[test]
    fn equality_and_value_first_mirroring() {
        let want = json!({"dept":{"$eq":"eng"}});
        assert_eq!(
            tr(&eq(attr("dept"), lit(json!("eng"))), &dflt()).unwrap(),
            want
        );
        assert_eq!(
            tr(&eq(lit(json!("eng")), attr("dept")), &dflt()).unwrap(),
            want
        );
        assert_eq!(
            tr(&eq(attr_index("dept"), lit(json!("eng"))), &dflt()).unwrap(),
            want
        );
        assert_eq!(
            tr(&lt(lit(json!(3)), attr("level")), &dflt()).unwrap(),
            json!({"level":{"$gt":3}})
        );
        assert_eq!(
            tr(&ge(lit(json!(3)), attr("level")), &dflt()).unwrap(),
            json!({"level":{"$lte":3}})
        );
        assert_eq!(
            tr(&eq(attr("public"), lit(json!(true))), &dflt()).unwrap(),
            json!({"public":{"$eq":true}})
        );
        // A double with no fraction is an int literal: it matches ints and floats alike.
        assert_eq!(
            tr(&eq(attr("level"), lit(json!(3.0))), &dflt()).unwrap(),
            json!({"level":{"$eq":3}})
        );
    }

    #[test]
    fn negation_over_missing_keys_needs_required() {
        let e = not(eq(attr("dept"), lit(json!("eng"))));
        assert!(is_not_exact(&refused(&e, &dflt())));
        assert_eq!(
            tr(&e, &req(&["dept"])).unwrap(),
            json!({"dept":{"$ne":"eng"}})
        );
        let e = ne(attr("dept"), lit(json!("eng")));
        assert!(is_not_exact(&refused(&e, &dflt())));
        assert_eq!(
            tr(&e, &req(&["dept"])).unwrap(),
            json!({"dept":{"$ne":"eng"}})
        );
        // not(ne) is a plain equality, fine without the guarantee.
        assert_eq!(
            tr(&not(ne(attr("dept"), lit(json!("eng")))), &dflt()).unwrap(),
            json!({"dept":{"$eq":"eng"}})
        );
        // The refusal names the construct with its side.
        let err = refused(&not(eq(attr("dept"), lit(json!("eng")))), &dflt());
        assert_eq!(
            err.construct(),
            Some("(not (eq request.resource.attr.dept \"eng\"))")
        );
    }

    #[test]
    fn not_in_uses_nin_only_when_required() {
        let e = not(in_(attr("dept"), lit(json!(["eng", "hr"]))));
        assert!(is_not_exact(&refused(&e, &dflt())));
        assert_eq!(
            tr(&e, &req(&["dept"])).unwrap(),
            json!({"dept":{"$nin":["eng","hr"]}})
        );
        assert_eq!(
            tr(&in_(attr("dept"), lit(json!(["eng", "hr"]))), &dflt()).unwrap(),
            json!({"dept":{"$in":["eng","hr"]}})
        );
    }

    #[test]
    fn empty_singleton_and_mixed_lists() {
        // x in [] is false; not (x in []) is "x exists".
        assert_eq!(
            translate_pushdown(&in_(attr("dept"), lit(json!([]))), &dflt(), 10).unwrap(),
            Pushdown::MatchNone
        );
        assert_eq!(
            tr(&in_(attr("dept"), lit(json!([]))), &dflt()).unwrap(),
            match_none()
        );
        assert!(is_not_exact(&refused(
            &not(in_(attr("dept"), lit(json!([])))),
            &dflt()
        )));
        assert_eq!(
            translate_pushdown(&not(in_(attr("dept"), lit(json!([])))), &req(&["dept"]), 10)
                .unwrap(),
            Pushdown::MatchAll
        );
        // Singletons are plain equalities.
        assert_eq!(
            tr(&in_(attr("dept"), lit(json!(["eng"]))), &dflt()).unwrap(),
            json!({"dept":{"$eq":"eng"}})
        );
        assert_eq!(
            tr(
                &not(in_(attr("dept"), lit(json!(["eng"])))),
                &req(&["dept"])
            )
            .unwrap(),
            json!({"dept":{"$ne":"eng"}})
        );
        // Mixed types split into one clause per type; ints and floats never share a list.
        assert_eq!(
            tr(
                &in_(attr("x"), lit(json!(["a", 1, true, "b", 2, 1]))),
                &dflt()
            )
            .unwrap(),
            json!({"$or":[{"x":{"$in":["a","b"]}},{"x":{"$eq":true}},{"x":{"$in":[1,2]}}]})
        );
        assert_eq!(
            tr(&in_(attr("x"), lit(json!([1, 2.5]))), &dflt()).unwrap(),
            json!({"$or":[{"x":{"$eq":1}},{"$and":[{"x":{"$eq":2.5}},{"x":{"$ne":2}}]}]})
        );
        // A null item matches nothing (Chroma stores no nulls).
        assert_eq!(
            tr(&in_(attr("x"), lit(json!([null, "a"]))), &dflt()).unwrap(),
            json!({"x":{"$eq":"a"}})
        );
    }

    #[test]
    fn arrays_eq_never_contains_and_membership_uses_contains() {
        assert_eq!(
            tr(&eq(attr("tags"), lit(json!("a"))), &dflt()).unwrap(),
            json!({"tags":{"$eq":"a"}})
        );
        assert_eq!(
            tr(&in_(lit(json!("a")), attr("tags")), &dflt()).unwrap(),
            json!({"tags":{"$contains":"a"}})
        );
        // An integral number may sit in an int array or a float array.
        assert_eq!(
            tr(&in_(lit(json!(2)), attr("nums")), &dflt()).unwrap(),
            json!({"$or":[{"nums":{"$contains":2}},{"nums":{"$contains":2.0}}]})
        );
        assert_eq!(
            tr(&in_(lit(json!(2.5)), attr("nums")), &dflt()).unwrap(),
            json!({"nums":{"$contains":2.5}})
        );
        // not (v in tags): $not_contains matches missing keys and scalars.
        assert!(is_not_exact(&refused(
            &not(in_(lit(json!("a")), attr("tags"))),
            &dflt()
        )));
        // A required attribute is a scalar: membership in it is a configuration mistake.
        assert!(is_unsupported(&refused(
            &in_(lit(json!("a")), attr("tags")),
            &req(&["tags"])
        )));
        // Lists compared with ==, list membership of a list: refused.
        assert!(is_unsupported(&refused(
            &eq(attr("tags"), lit(json!(["a"]))),
            &dflt()
        )));
        assert!(is_unsupported(&refused(
            &in_(lit(json!(["a"])), attr("tags")),
            &dflt()
        )));
    }

    #[test]
    fn types_and_ranges() {
        assert!(is_unsupported(&refused(
            &gt(attr("dept"), lit(json!("m"))),
            &dflt()
        )));
        assert!(is_unsupported(&refused(
            &lt(attr("flag"), lit(json!(true))),
            &dflt()
        )));
        assert!(is_unsupported(&refused(
            &lt(attr("x"), lit(json!(null))),
            &dflt()
        )));
        assert!(is_unsupported(&refused(
            &eq(attr("x"), lit(json!(9007199254740993u64))),
            &dflt()
        )));
        // Orderings match numbers only, so their negation needs no guarantee.
        assert_eq!(
            tr(&not(lt(attr("level"), lit(json!(3)))), &dflt()).unwrap(),
            json!({"level":{"$gte":3}})
        );
        assert_eq!(
            tr(&not(ge(lit(json!(3)), attr("level"))), &dflt()).unwrap(),
            json!({"level":{"$gt":3}})
        );
        // Fractional bounds: direct where truncation is harmless, corrected where it is not.
        assert_eq!(
            tr(&gt(attr("s"), lit(json!(2.5))), &dflt()).unwrap(),
            json!({"s":{"$gt":2.5}})
        );
        assert_eq!(
            tr(&ge(attr("s"), lit(json!(2.5))), &dflt()).unwrap(),
            json!({"$and":[{"$or":[{"s":{"$gte":2.5}},{"s":{"$gte":3}}]},{"s":{"$gt":2}}]})
        );
        assert_eq!(
            tr(&lt(attr("s"), lit(json!(-2.5))), &dflt()).unwrap(),
            json!({"s":{"$lt":-2.5}})
        );
        assert_eq!(
            tr(&eq(attr("s"), lit(json!(2.5))), &dflt()).unwrap(),
            json!({"$and":[{"s":{"$eq":2.5}},{"s":{"$ne":2}}]})
        );
        assert_eq!(
            tr(&ne(attr("s"), lit(json!(2.5))), &req(&["s"])).unwrap(),
            json!({"$or":[{"s":{"$ne":2.5}},{"s":{"$eq":2}}]})
        );
        // Booleans: a bare attribute is `== true` and its negation `== false` (never `!= true`).
        assert_eq!(
            tr(&attr("public"), &dflt()).unwrap(),
            json!({"public":{"$eq":true}})
        );
        assert_eq!(
            tr(&not(attr("public")), &dflt()).unwrap(),
            json!({"public":{"$eq":false}})
        );
        // Strings are case sensitive and never coerced.
        assert_eq!(
            tr(&eq(attr("dept"), lit(json!("ENG"))), &dflt()).unwrap(),
            json!({"dept":{"$eq":"ENG"}})
        );
        assert_eq!(
            tr(&eq(attr("dept"), lit(json!("1"))), &dflt()).unwrap(),
            json!({"dept":{"$eq":"1"}})
        );
    }

    #[test]
    fn null_comparisons() {
        assert_eq!(
            translate_pushdown(&eq(attr("x"), lit(json!(null))), &dflt(), 10).unwrap(),
            Pushdown::MatchNone
        );
        assert!(is_not_exact(&refused(
            &ne(attr("x"), lit(json!(null))),
            &dflt()
        )));
        assert_eq!(
            translate_pushdown(&ne(attr("x"), lit(json!(null))), &req(&["x"]), 10).unwrap(),
            Pushdown::MatchAll
        );
    }

    #[test]
    fn de_morgan_nesting_and_constant_folding() {
        let m = req(&["dept", "region"]);
        let e = not(and(vec![
            eq(attr("dept"), lit(json!("eng"))),
            or(vec![
                eq(attr("region"), lit(json!("eu"))),
                not(lt(attr("level"), lit(json!(3)))),
            ]),
        ]));
        assert_eq!(
            tr(&e, &m).unwrap(),
            json!({"$or":[
                {"dept":{"$ne":"eng"}},
                {"$and":[{"region":{"$ne":"eu"}},{"level":{"$lt":3}}]}
            ]})
        );
        // Double negation.
        assert_eq!(
            tr(&not(not(eq(attr("dept"), lit(json!("a"))))), &dflt()).unwrap(),
            json!({"dept":{"$eq":"a"}})
        );
        // Constants fold; nested same-operator groups flatten.
        let e = and(vec![
            Expr::bool(true),
            and(vec![
                eq(attr("a"), lit(json!(1))),
                eq(attr("b"), lit(json!(2))),
            ]),
            or(vec![Expr::bool(false), eq(attr("c"), lit(json!(3)))]),
        ]);
        assert_eq!(
            tr(&e, &dflt()).unwrap(),
            json!({"$and":[{"a":{"$eq":1}},{"b":{"$eq":2}},{"c":{"$eq":3}}]})
        );
        assert_eq!(
            translate_pushdown(
                &and(vec![Expr::bool(false), eq(attr("a"), lit(json!(1)))]),
                &dflt(),
                10
            )
            .unwrap(),
            Pushdown::MatchNone
        );
        assert_eq!(
            translate_pushdown(
                &or(vec![not(Expr::bool(false)), eq(attr("a"), lit(json!(1)))]),
                &dflt(),
                10
            )
            .unwrap(),
            Pushdown::MatchAll
        );
        // Folding happens before refusals are final: an unexpressible branch under `or true`
        // is still refused (we translate every node).
        assert!(tr(
            &or(vec![Expr::bool(true), ne(attr("a"), lit(json!(1)))]),
            &dflt()
        )
        .is_err());
        // Empty and/or are Cerbos' true/false.
        assert_eq!(
            translate_pushdown(&and(vec![]), &dflt(), 10).unwrap(),
            Pushdown::MatchAll
        );
        assert_eq!(
            translate_pushdown(&or(vec![]), &dflt(), 10).unwrap(),
            Pushdown::MatchNone
        );
    }

    #[test]
    fn has_and_ids() {
        assert!(is_not_exact(&refused(&has("dept"), &dflt())));
        assert_eq!(
            translate_pushdown(&has("dept"), &req(&["dept"]), 10).unwrap(),
            Pushdown::MatchAll
        );
        assert_eq!(
            tr(
                &and(vec![has("dept"), not(eq(attr("dept"), lit(json!("x"))))]),
                &req(&["dept"])
            )
            .unwrap(),
            json!({"dept":{"$ne":"x"}})
        );
        let err = refused(&eq(id(), lit(json!("doc1"))), &dflt());
        assert!(is_unsupported(&err));
        assert_eq!(err.construct(), Some("(eq request.resource.id \"doc1\")"));
        assert!(is_unsupported(&refused(
            &in_(id(), lit(json!(["a"]))),
            &dflt()
        )));
    }

    /// `has()` has no Chroma form alone, but it does next to a comparison on the same key.
    #[test]
    fn has_guards_combine_with_their_comparison() {
        let secret = || eq(attr("c"), lit(json!("secret")));
        // The DENY idiom: not (has(c) && c == "secret") keeps records lacking c.
        assert_eq!(
            tr(&not(and(vec![has("c"), secret()])), &dflt()).unwrap(),
            json!({"c":{"$ne":"secret"}})
        );
        assert_eq!(
            tr(
                &and(vec![
                    eq(attr("dept"), lit(json!("eng"))),
                    not(and(vec![has("c"), secret()]))
                ]),
                &dflt()
            )
            .unwrap(),
            json!({"$and":[{"dept":{"$eq":"eng"}},{"c":{"$ne":"secret"}}]})
        );
        assert_eq!(
            tr(
                &or(vec![not(has("c")), ne(attr_index("c"), lit(json!(2.5)))]),
                &dflt()
            )
            .unwrap(),
            json!({"$or":[{"c":{"$ne":2.5}},{"c":{"$eq":2}}]})
        );
        assert_eq!(
            tr(
                &not(and(vec![has("c"), in_(attr("c"), lit(json!(["a", "b"])))])),
                &dflt()
            )
            .unwrap(),
            json!({"c":{"$nin":["a","b"]}})
        );
        assert_eq!(
            translate_pushdown(
                &not(and(vec![has("c"), in_(attr("c"), lit(json!([])))])),
                &dflt(),
                9
            )
            .unwrap(),
            Pushdown::MatchAll
        );
        // The ALLOW guard is redundant next to any comparison.
        assert_eq!(
            tr(&and(vec![has("c"), secret()]), &dflt()).unwrap(),
            json!({"c":{"$eq":"secret"}})
        );
        assert_eq!(
            tr(&and(vec![has("c"), gt(attr("c"), lit(json!(1)))]), &dflt()).unwrap(),
            json!({"c":{"$gt":1}})
        );
        assert_eq!(
            translate_pushdown(&and(vec![not(has("c")), secret()]), &dflt(), 9).unwrap(),
            Pushdown::MatchNone
        );
        // Still inexact: existence is needed, or the comparison errors on other types.
        assert!(is_not_exact(&refused(
            &and(vec![has("c"), ne(attr("c"), lit(json!("x")))]),
            &dflt()
        )));
        assert!(is_not_exact(&refused(
            &or(vec![not(has("c")), lt(attr("c"), lit(json!(3)))]),
            &dflt()
        )));
        assert!(is_not_exact(&refused(
            &or(vec![not(has("c")), eq(attr("d"), lit(json!(3)))]),
            &dflt()
        )));
        assert!(is_not_exact(&refused(
            &or(vec![has("c"), eq(attr("c"), lit(json!(3)))]),
            &dflt()
        )));
        // Checked on records, missing key and arrays included.
        let recs = records(&json!({
            "sec":{"c":"secret"},"other":{"c":"x"},"arr":{"c":["secret"]},"num":{"c":1},"none":{"d":1},"nometa":null
        }));
        for e in [
            not(and(vec![has("c"), secret()])),
            or(vec![not(has("c")), ne(attr("c"), lit(json!("secret")))]),
        ] {
            let w = tr(&e, &dflt()).unwrap();
            assert_eq!(
                run(&w, &recs).unwrap(),
                ["arr", "nometa", "none", "num", "other"],
                "{w}"
            );
        }
    }

    #[test]
    fn attr_prefix_and_keys() {
        let m = FieldMapping::new("meta_", ["dept"]);
        assert_eq!(
            tr(&ne(attr("dept"), lit(json!("x"))), &m).unwrap(),
            json!({"meta_dept":{"$ne":"x"}})
        );
        assert_eq!(
            tr(&eq(attr_index("a.b"), lit(json!(1))), &dflt()).unwrap(),
            json!({"a.b":{"$eq":1}})
        );
        // Nested fields do not exist in Chroma; special keys are never produced.
        for e in [
            eq(attr("a.b"), lit(json!(1))),
            eq(attr_index("#document"), lit(json!("x"))),
            eq(attr_index("$and"), lit(json!("x"))),
            eq(attr_index(""), lit(json!("x"))),
        ] {
            assert!(
                matches!(refused(&e, &dflt()), TranslateError::InvalidKey { .. }),
                "{e:?}"
            );
        }
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let cases = vec![
            call(
                Op::Call("startsWith".into()),
                vec![attr("dept"), lit(json!("a"))],
            ),
            gt(
                call(Op::Add, vec![attr("level"), lit(json!(1))]),
                lit(json!(3)),
            ),
            eq(attr("a"), attr("b")),
            eq(lit(json!(1)), lit(json!(1))),
            call(
                Op::Exists,
                vec![
                    attr("tags"),
                    call(Op::Lambda, vec![Expr::bool(true), Expr::var("t")]),
                ],
            ),
            eq(
                attr("at"),
                call(
                    Op::Call("timestamp".into()),
                    vec![lit(json!("2024-01-01T00:00:00Z"))],
                ),
            ),
            lit(json!("str")),
            Expr::var("request.principal.id"),
            id(),
        ];
        for e in cases {
            let err = refused(&e, &dflt());
            assert!(is_unsupported(&err), "{e:?}: {err:?}");
            assert!(err.construct().is_some_and(|c| !c.is_empty()));
        }
    }

    #[test]
    fn term_limit_and_depth() {
        let e = or((0..6)
            .map(|i| eq(attr("a"), lit(json!(format!("v{i}")))))
            .collect());
        assert!(translate(&e, &dflt(), 6).is_ok());
        assert_eq!(
            translate(&e, &dflt(), 5),
            Err(TranslateError::TooManyTerms { terms: 6, limit: 5 })
        );
        // A corrected fractional bound counts all three leaves.
        assert!(matches!(
            translate(&ge(attr("s"), lit(json!(2.5))), &dflt(), 2),
            Err(TranslateError::TooManyTerms { terms: 3, limit: 2 })
        ));
        // Alternating and/or nests one level per node; same-operator nesting flattens.
        let mut e = eq(attr("a"), lit(json!(0)));
        for i in 0..60 {
            let other = eq(attr("b"), lit(json!(i)));
            e = if i % 2 == 0 {
                and(vec![e, other])
            } else {
                or(vec![e, other])
            };
        }
        assert!(matches!(
            translate(&e, &dflt(), 500),
            Err(TranslateError::TooDeep { .. })
        ));
        let mut e = eq(attr("a"), lit(json!(0)));
        for i in 0..300 {
            e = and(vec![e, eq(attr("b"), lit(json!(i)))]);
        }
        assert!(matches!(
            translate(&e, &dflt(), 1000),
            Err(TranslateError::TooDeep { .. })
        ));
        let mut e = eq(attr("a"), lit(json!(0)));
        for i in 0..150 {
            e = and(vec![e, eq(attr("b"), lit(json!(i)))]);
        }
        let w = translate(&e, &dflt(), 1000).unwrap();
        assert_eq!(w["$and"].as_array().unwrap().len(), 151);
    }

    /// Every promise checked against the simulator on hand-picked records.
    #[test]
    fn translations_agree_with_the_simulator_on_traps() {
        let recs = records(&json!({
            "i2":{"s":2,"dept":"eng"},"f25":{"s":2.5,"dept":"hr"},"f2":{"s":2.0,"dept":"eng"},
            "in2":{"s":-2,"dept":"x"},"in3":{"s":-3,"dept":"x"},"str":{"s":"2","dept":"x"},
            "arr":{"s":[2,3],"dept":"x"},"none":{"dept":"x"},"nometa":null,
        }));
        let m = req(&["dept"]);
        for c in [2.5, -2.5, 2.0, 0.5, -0.5] {
            for op in [Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq] {
                for flip in [false, true] {
                    let args = if flip {
                        vec![lit(json!(c)), attr("s")]
                    } else {
                        vec![attr("s"), lit(json!(c))]
                    };
                    for e in [call(op.clone(), args.clone()), not(call(op.clone(), args))] {
                        let Ok(w) = translate(&e, &m, 100) else {
                            continue;
                        };
                        for (id, meta) in &recs {
                            let want = meta.as_ref().is_some_and(|mm| {
                                allowed(
                                    &e,
                                    &Record {
                                        id: id.clone(),
                                        meta: mm.clone(),
                                    },
                                )
                            });
                            assert_eq!(
                                sim::matches(&w, meta.as_ref()).unwrap(),
                                want,
                                "{e:?} on {id}: {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    fn check_case(
        e: &crate::plan::Expr,
        metas: &[Map<String, Json>],
        prefix: &str,
    ) -> Result<bool, TestCaseError> {
        let mapping = FieldMapping::new(prefix, REQUIRED);
        let w = match translate(e, &mapping, 500) {
            Ok(w) => w,
            Err(_) => return Ok(false),
        };
        sim::check_shape(&w).map_err(TestCaseError::fail)?;
        for (i, meta) in metas.iter().enumerate() {
            let stored: Map<String, Json> = meta
                .iter()
                .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
                .collect();
            let got = sim::matches(&w, Some(&stored)).map_err(TestCaseError::fail)?;
            let want = allowed(
                e,
                &Record {
                    id: format!("r{i}"),
                    meta: meta.clone(),
                },
            );
            prop_assert_eq!(
                got,
                want,
                "plan {} record {:?} where {}",
                e.debug_string(),
                meta,
                w
            );
        }
        Ok(true)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

        /// Whenever a plan translates, Chroma returns exactly the records the plan allows.
        #[test]
        fn translated_filters_are_exact(
            e in plan(),
            metas in prop::collection::vec(metadata(Model::Chroma), 8..16),
        ) {
            check_case(&e, &metas, "")?;
            check_case(&e, &metas, "p_")?;
        }
    }

    /// The property above is not vacuous: a good share of random plans translate.
    #[test]
    fn many_random_plans_translate() {
        assert_many_translate(Model::Chroma, |e, metas| check_case(e, metas, "").unwrap());
    }
}

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
