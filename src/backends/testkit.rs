//! Shared test helpers: plan builders, a reference evaluator of the plan IR with CEL's
//! three-valued semantics, and proptest generators of plans and records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::plan::value::{lookup_key, MapKey};
use crate::plan::{Expr, Op, Value};
use proptest::prelude::*;
use serde_json::{json, Value as Json};
use std::cmp::Ordering;

pub fn attr(name: &str) -> Expr {
    Expr::var(&format!("request.resource.attr.{name}"))
}

/// `request.resource.attr["name"]`.
pub fn attr_index(name: &str) -> Expr {
    Expr::call(
        Op::Index,
        vec![
            Expr::var("request.resource.attr"),
            Expr::Value(Value::string(name)),
        ],
    )
}

pub fn id() -> Expr {
    Expr::var("request.resource.id")
}

/// A constant from JSON (integers stay ints, other numbers are doubles).
pub fn lit(j: Json) -> Expr {
    Expr::Value(Value::from_json(&j))
}

pub fn call(op: Op, args: Vec<Expr>) -> Expr {
    Expr::call(op, args)
}

pub fn eq(a: Expr, b: Expr) -> Expr {
    call(Op::Eq, vec![a, b])
}
pub fn ne(a: Expr, b: Expr) -> Expr {
    call(Op::Ne, vec![a, b])
}
pub fn lt(a: Expr, b: Expr) -> Expr {
    call(Op::Lt, vec![a, b])
}
pub fn le(a: Expr, b: Expr) -> Expr {
    call(Op::Le, vec![a, b])
}
pub fn gt(a: Expr, b: Expr) -> Expr {
    call(Op::Gt, vec![a, b])
}
pub fn ge(a: Expr, b: Expr) -> Expr {
    call(Op::Ge, vec![a, b])
}
pub fn in_(a: Expr, b: Expr) -> Expr {
    call(Op::In, vec![a, b])
}
pub fn has(name: &str) -> Expr {
    call(Op::Has, vec![attr(name)])
}
pub fn not(a: Expr) -> Expr {
    call(Op::Not, vec![a])
}
pub fn and(args: Vec<Expr>) -> Expr {
    call(Op::And, args)
}
pub fn or(args: Vec<Expr>) -> Expr {
    call(Op::Or, args)
}
pub fn is_true(a: Expr) -> Expr {
    call(Op::IsTrue, vec![a])
}
pub fn if_(c: Expr, t: Expr, e: Expr) -> Expr {
    call(Op::If, vec![c, t, e])
}

/// A record: its metadata (the `R.attr` map) and `R.id`.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub meta: serde_json::Map<String, Json>,
}

/// CEL evaluation of a plan on a record: `Err(())` is an evaluation error.
pub fn eval(e: &Expr, r: &Record) -> Result<Value, ()> {
    if let Some(a) = crate::backends::lower::attr_ref(e) {
        return lookup(&a.segments, r);
    }
    match e {
        Expr::Value(v) => Ok(v.clone()),
        Expr::Variable(v) if v == crate::plan::expr::RESOURCE_ID => Ok(Value::string(&r.id)),
        Expr::Variable(_) => Err(()),
        e if e.is_error() => Err(()),
        Expr::Call(op, args) => match op {
            Op::IsTrue => {
                let [a] = args.as_slice() else { return Err(()) };
                Ok(Value::Bool(matches!(eval(a, r), Ok(Value::Bool(true)))))
            }
            Op::If => {
                let [c, t, e] = args.as_slice() else { return Err(()) };
                match eval(c, r)? {
                    Value::Bool(true) => eval(t, r),
                    Value::Bool(false) => eval(e, r),
                    _ => Err(()),
                }
            }
            Op::And | Op::Or => {
                let absorbing = *op == Op::Or;
                let mut error = false;
                for a in args {
                    match eval(a, r) {
                        Ok(Value::Bool(b)) if b == absorbing => return Ok(Value::Bool(b)),
                        Ok(Value::Bool(_)) => {}
                        _ => error = true,
                    }
                }
                if error {
                    Err(())
                } else {
                    Ok(Value::Bool(!absorbing))
                }
            }
            Op::Not => match (args.len(), args.first().map(|a| eval(a, r))) {
                (1, Some(Ok(Value::Bool(b)))) => Ok(Value::Bool(!b)),
                _ => Err(()),
            },
            Op::Eq | Op::Ne => {
                let [a, b] = args.as_slice() else {
                    return Err(());
                };
                let same = eval(a, r)?.cel_eq(&eval(b, r)?);
                Ok(Value::Bool(same == (*op == Op::Eq)))
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let [a, b] = args.as_slice() else {
                    return Err(());
                };
                let ord = eval(a, r)?.cel_cmp(&eval(b, r)?).ok_or(())?;
                Ok(Value::Bool(match op {
                    Op::Lt => ord == Ordering::Less,
                    Op::Le => ord != Ordering::Greater,
                    Op::Gt => ord == Ordering::Greater,
                    _ => ord != Ordering::Less,
                }))
            }
            Op::In => {
                let [a, b] = args.as_slice() else {
                    return Err(());
                };
                let needle = eval(a, r)?;
                match eval(b, r)? {
                    Value::List(items) => {
                        Ok(Value::Bool(items.iter().any(|i| needle.cel_eq(i))))
                    }
                    Value::Map(m) => {
                        let k = needle.to_map_key().ok_or(())?;
                        Ok(Value::Bool(lookup_key(&m, &k).is_some()))
                    }
                    _ => Err(()),
                }
            }
            Op::List => Ok(Value::list(
                args.iter()
                    .map(|a| eval(a, r))
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            Op::Has => {
                let [a] = args.as_slice() else { return Err(()) };
                let at = crate::backends::lower::attr_ref(a).ok_or(())?;
                let (last, parents) = at.segments.split_last().ok_or(())?;
                if parents.is_empty() {
                    return Ok(Value::Bool(r.meta.contains_key(last)));
                }
                match lookup(parents, r)? {
                    Value::Map(m) => {
                        Ok(Value::Bool(lookup_key(&m, &MapKey::string(last)).is_some()))
                    }
                    _ => Err(()),
                }
            }
            _ => Err(()),
        },
    }
}

fn lookup(segments: &[String], r: &Record) -> Result<Value, ()> {
    let (first, rest) = segments.split_first().ok_or(())?;
    let mut v = Value::from_json(r.meta.get(first).ok_or(())?);
    for s in rest {
        v = match v {
            Value::Map(m) => lookup_key(&m, &MapKey::string(s)).cloned().ok_or(())?,
            _ => return Err(()),
        };
    }
    Ok(v)
}

/// The plan allows the record: the condition evaluates to exactly `true`.
pub fn allowed(e: &Expr, r: &Record) -> bool {
    matches!(eval(e, r), Ok(Value::Bool(true)))
}

// ---- generators ----

/// Required attributes in generated plans; the others may be missing or any shape.
pub const REQUIRED: [&str; 2] = ["dept", "level"];
pub const OPTIONAL: [&str; 3] = ["x", "tags", "flag"];

pub fn scalar() -> impl Strategy<Value = Json> {
    prop_oneof![
        prop::sample::select(vec!["a", "b", "A", ""]).prop_map(|s| json!(s)),
        prop::sample::select(vec![-3i64, -2, 0, 1, 2, 3]).prop_map(|i| json!(i)),
        prop::sample::select(vec![2.0f64, 2.5, -2.5, 0.5, 3.0, -2.0]).prop_map(|f| json!(f)),
        any::<bool>().prop_map(|b| json!(b)),
    ]
}

/// Which database's data model records follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Scalars and homogeneous scalar arrays; no null, no objects.
    Chroma,
    /// Any JSON, including null, mixed and nested arrays, objects.
    Qdrant,
}

fn homogeneous_array() -> impl Strategy<Value = Json> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(vec!["a", "b", "A"]), 0..3)
            .prop_map(|v| json!(v)),
        prop::collection::vec(prop::sample::select(vec![-2i64, 1, 2, 3]), 0..3)
            .prop_map(|v| json!(v)),
        prop::collection::vec(prop::sample::select(vec![2.0f64, 2.5, -2.0, 3.0]), 0..3)
            .prop_map(|v| json!(v)),
        prop::collection::vec(any::<bool>(), 0..3).prop_map(|v| json!(v)),
    ]
}

/// A value for an attribute that may be missing (`None`) or any shape.
pub fn optional_value(model: Model) -> BoxedStrategy<Option<Json>> {
    match model {
        Model::Chroma => prop_oneof![
            2 => Just(None),
            4 => scalar().prop_map(Some),
            3 => homogeneous_array().prop_map(Some),
        ]
        .boxed(),
        Model::Qdrant => {
            let elem = prop_oneof![
                4 => scalar(),
                1 => Just(Json::Null),
                1 => prop::collection::vec(scalar(), 0..2).prop_map(Json::Array),
            ];
            prop_oneof![
                2 => Just(None),
                1 => Just(Some(Json::Null)),
                4 => scalar().prop_map(Some),
                3 => prop::collection::vec(elem, 0..3).prop_map(|v| Some(Json::Array(v))),
                // Object keys never equal a generated string constant (see the module
                // docs of qdrant::filter for membership in maps).
                1 => prop::collection::btree_map(
                    prop::sample::select(vec!["k1", "k2"]),
                    scalar(),
                    0..2,
                )
                .prop_map(|m| Some(json!(m))),
            ]
            .boxed()
        }
    }
}

/// A record's metadata: required attributes always hold a scalar.
pub fn metadata(model: Model) -> impl Strategy<Value = serde_json::Map<String, Json>> {
    (
        scalar(),
        scalar(),
        optional_value(model),
        optional_value(model),
        optional_value(model),
    )
        .prop_map(|(d, l, x, t, f)| {
            let mut m = serde_json::Map::new();
            m.insert("dept".into(), d);
            m.insert("level".into(), l);
            for (k, v) in [("x", x), ("tags", t), ("flag", f)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            m
        })
}

fn any_attr() -> impl Strategy<Value = Expr> {
    let names: Vec<&str> = REQUIRED.iter().chain(OPTIONAL.iter()).copied().collect();
    (prop::sample::select(names), any::<bool>()).prop_map(|(n, indexed)| {
        if indexed {
            attr_index(n)
        } else {
            attr(n)
        }
    })
}

fn literal_value() -> impl Strategy<Value = Json> {
    prop_oneof![9 => scalar(), 1 => Just(Json::Null)]
}

/// Point ids of generated records (Qdrant's canonical string forms).
pub const IDS: [&str; 4] = ["1", "2", "3", "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"];

fn id_literal() -> impl Strategy<Value = Json> {
    prop_oneof![
        prop::sample::select(IDS.to_vec()).prop_map(|s| json!(s)),
        prop::sample::select(vec!["01", "5C56C793-69F3-4FBF-87E6-C4BF54C28C26", "x"])
            .prop_map(|s| json!(s)),
        Just(json!(1)),
    ]
}

fn optional_attr() -> impl Strategy<Value = Expr> {
    (prop::sample::select(OPTIONAL.to_vec()), any::<bool>()).prop_map(|(n, indexed)| {
        if indexed {
            attr_index(n)
        } else {
            attr(n)
        }
    })
}

fn number() -> impl Strategy<Value = Json> {
    prop_oneof![
        prop::sample::select(vec![-3i64, -2, 0, 1, 2, 3]).prop_map(|i| json!(i)),
        prop::sample::select(vec![2.0f64, 2.5, -2.5, 0.5, -0.5]).prop_map(|f| json!(f)),
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    let side = |a: Expr, v: Json, flip: bool, op: Op| {
        if flip {
            call(op, vec![lit(v), a])
        } else {
            call(op, vec![a, lit(v)])
        }
    };
    let equality = (
        prop::sample::select(vec![Op::Eq, Op::Ne]),
        any_attr(),
        literal_value(),
        any::<bool>(),
    )
        .prop_map(move |(op, a, v, flip)| side(a, v, flip, op));
    // Mostly numbers: other ordered types are refused by both databases.
    let ordering = (
        prop::sample::select(vec![Op::Lt, Op::Le, Op::Gt, Op::Ge]),
        any_attr(),
        prop_oneof![9 => number(), 1 => literal_value()],
        any::<bool>(),
    )
        .prop_map(move |(op, a, v, flip)| side(a, v, flip, op));
    let in_list = (any_attr(), prop::collection::vec(literal_value(), 0..4))
        .prop_map(|(a, vs)| in_(a, lit(Json::Array(vs))));
    let contains = (scalar(), prop_oneof![4 => optional_attr(), 1 => any_attr()])
        .prop_map(|(v, a)| in_(lit(v), a));
    let has_ = any_attr().prop_map(|a| call(Op::Has, vec![a]));
    let ids = prop_oneof![
        (id_literal(), any::<bool>()).prop_map(|(v, e)| {
            if e {
                eq(id(), lit(v))
            } else {
                ne(lit(v), id())
            }
        }),
        prop::collection::vec(id_literal(), 0..3)
            .prop_map(|vs| in_(id(), lit(Json::Array(vs)))),
    ];
    // An existence test next to a comparison on the same attribute.
    let guarded = (
        0..7u8,
        prop::sample::select(
            REQUIRED
                .iter()
                .chain(OPTIONAL.iter())
                .copied()
                .collect::<Vec<_>>(),
        ),
        any::<bool>(),
        literal_value(),
        prop::collection::vec(literal_value(), 0..3),
    )
        .prop_map(|(shape, n, indexed, v, vs)| {
            let a = if indexed { attr_index(n) } else { attr(n) };
            let h = has(n);
            match shape {
                0 => and(vec![h, eq(a, lit(v))]),
                1 => and(vec![h, ne(a, lit(v))]),
                2 => not(and(vec![h, eq(a, lit(v))])),
                3 => or(vec![not(h), ne(lit(v), a)]),
                4 => not(and(vec![h, in_(a, lit(Json::Array(vs)))])),
                5 => and(vec![not(h), eq(a, lit(v))]),
                _ => or(vec![not(h), lt(a, lit(v))]),
            }
        });
    prop_oneof![
        2 => guarded,
        4 => equality,
        3 => ordering,
        3 => in_list,
        2 => contains,
        1 => has_,
        1 => any_attr(),
        1 => any::<bool>().prop_map(Expr::bool),
        1 => ids,
        1 => Just(Expr::error()),
    ]
}

/// Random plan conditions: leaves under `and`, `or` and `not`.
pub fn plan() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(and),
            prop::collection::vec(inner.clone(), 2..4).prop_map(or),
            inner.clone().prop_map(not),
            inner.clone().prop_map(is_true),
            (inner.clone(), inner.clone(), inner).prop_map(|(c, t, e)| if_(c, t, e)),
        ]
    })
}

/// Shows a translator property is not vacuous: of 400 deterministic random plans over
/// `model` records, more than 120 must translate (`check` returns whether one did).
pub fn assert_many_translate(
    model: Model,
    check: impl Fn(&Expr, &[serde_json::Map<String, Json>]) -> bool,
) {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (plan(), prop::collection::vec(metadata(model), 8));
    let mut translated = 0;
    for _ in 0..400 {
        let (e, metas) = strategy.new_tree(&mut runner).unwrap().current();
        if check(&e, &metas) {
            translated += 1;
        }
    }
    assert!(
        translated > 120,
        "only {translated} of 400 random plans translated"
    );
}

/// A [`crate::backends::seam::Judge`] for the answer filters' tests: decides on the
/// `department` attribute (numbers: even admitted), asks for every attribute of the hits
/// `whole_for` picks, and writes down every question, so that two ways of filtering one
/// answer can be compared question by question.
pub struct RecordingJudge {
    pub asked: Vec<String>,
    whole_for: fn(&str) -> bool,
}

impl RecordingJudge {
    pub fn new(whole_for: fn(&str) -> bool) -> RecordingJudge {
        RecordingJudge { asked: Vec::new(), whole_for }
    }
}

impl crate::backends::seam::Judge for RecordingJudge {
    fn admits(&mut self, id: &dyn std::fmt::Display, attrs: &dyn crate::backends::seam::RecordAttributes) -> bool {
        let id = id.to_string();
        let department = attrs.get("department");
        let whole = (self.whole_for)(&id).then(|| attrs.all());
        self.asked.push(format!("{id} {department:?} {whole:?}"));
        match department {
            Some(Value::String(d)) => &*d == "FINANCE",
            // JSON numbers are doubles (`Value::from_json`).
            Some(Value::Double(d)) => d.rem_euclid(2.0) == 0.0,
            None => id.len() % 2 == 0,
            _ => false,
        }
    }

    fn admits_lookup(&mut self, _: &str, _: &dyn std::fmt::Display, _: &dyn crate::backends::seam::RecordAttributes) -> bool {
        false
    }
}
