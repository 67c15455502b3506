#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::backends::testkit::*;
use crate::backends::{FieldMapping, Pushdown, TranslateError};
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
