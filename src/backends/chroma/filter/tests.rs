#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::backends::testkit::*;
use crate::backends::{FieldMapping, Pushdown, TranslateError};
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
