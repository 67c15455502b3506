//! The filter translators through the public API, from Cerbos `PlanResourcesFilter` JSON as
//! the proxy and the CLI receive it. Each case is one trap of `ref/vectordbs.md` or
//! `ref/qdrant-measured.md`; the exhaustive checks live in the backends' unit tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value as Json};
use vecgate::backends::{chroma, qdrant, FieldMapping, Pushdown, TranslateError};
use vecgate::plan::{Expr, Plan};

fn condition(filter: Json) -> Expr {
    match Plan::from_cerbos_json(&filter) {
        Ok(Plan::Conditional(e)) => e,
        other => panic!("expected a conditional plan, got {other:?}"),
    }
}

fn op(operator: &str, operands: Vec<Json>) -> Json {
    json!({"expression": {"operator": operator, "operands": operands}})
}

fn var(name: &str) -> Json {
    json!({"variable": format!("request.resource.attr.{name}")})
}

fn val(v: Json) -> Json {
    json!({"value": v})
}

fn conditional(root: Json) -> Expr {
    condition(json!({"kind": "KIND_CONDITIONAL", "condition": root}))
}

/// The Cerbos RAG recipe's plan.
#[test]
fn recipe_plan_on_both_backends() {
    let e = conditional(op(
        "and",
        vec![
            op("eq", vec![var("department"), val(json!("FINANCE"))]),
            op("eq", vec![var("region"), val(json!("EMEA"))]),
        ],
    ));
    assert_eq!(
        chroma::filter::translate(&e, &FieldMapping::chroma_default(), 500).unwrap(),
        json!({"$and":[{"department":{"$eq":"FINANCE"}},{"region":{"$eq":"EMEA"}}]})
    );
    let m = FieldMapping::qdrant_default().with_required(["department", "region"]);
    assert_eq!(
        qdrant::filter::translate(&e, &m, 500).unwrap(),
        json!({"must":[
            {"key":"metadata.department","match":{"value":"FINANCE"}},
            {"key":"metadata.region","match":{"value":"EMEA"}}
        ]})
    );
}

/// `news_reader`: `not ("PRO" in R.attr.tags)` would need "tags exists".
#[test]
fn negated_membership_is_refused() {
    let e = conditional(op(
        "not",
        vec![op("in", vec![val(json!("PRO")), var("tags")])],
    ));
    for r in [
        chroma::filter::translate(&e, &FieldMapping::chroma_default(), 500),
        qdrant::filter::translate(&e, &FieldMapping::qdrant_default(), 500),
    ] {
        assert!(matches!(r, Err(TranslateError::NotExact { .. })), "{r:?}");
    }
    let e = conditional(op("in", vec![val(json!("PRO")), var("tags")]));
    assert_eq!(
        chroma::filter::translate(&e, &FieldMapping::chroma_default(), 500).unwrap(),
        json!({"tags":{"$contains":"PRO"}})
    );
}

/// A DENY rule arrives as `not(...)`: `$ne` alone would be wrong for records lacking the
/// key unless the write path guarantees it, or the rule carries a `has()` guard.
#[test]
fn deny_rules_need_required_attrs_or_a_has_guard() {
    let deny = conditional(op(
        "not",
        vec![op("eq", vec![var("c"), val(json!("secret"))])],
    ));
    let err = chroma::filter::translate(&deny, &FieldMapping::chroma_default(), 500).unwrap_err();
    assert!(matches!(err, TranslateError::NotExact { .. }));
    assert_eq!(
        err.construct(),
        Some("(not (eq request.resource.attr.c \"secret\"))")
    );
    assert_eq!(
        chroma::filter::translate(
            &deny,
            &FieldMapping::chroma_default().with_required(["c"]),
            500
        )
        .unwrap(),
        json!({"c":{"$ne":"secret"}})
    );
    let guarded = conditional(op(
        "not",
        vec![op(
            "and",
            vec![
                op("has", vec![var("c")]),
                op("eq", vec![var("c"), val(json!("secret"))]),
            ],
        )],
    ));
    assert_eq!(
        chroma::filter::translate(&guarded, &FieldMapping::chroma_default(), 500).unwrap(),
        json!({"c":{"$ne":"secret"}})
    );
    assert!(qdrant::filter::translate(&guarded, &FieldMapping::qdrant_default(), 500).is_ok());
}

/// Constants: match-nothing is a real filter (never `{"$or": []}` or an empty `should`).
#[test]
fn constant_outcomes() {
    let e = conditional(op("in", vec![var("team"), val(json!([]))]));
    assert_eq!(
        chroma::filter::translate_pushdown(&e, &FieldMapping::chroma_default(), 500).unwrap(),
        Pushdown::MatchNone
    );
    assert_eq!(
        chroma::filter::translate(&e, &FieldMapping::chroma_default(), 500).unwrap(),
        chroma::filter::match_none()
    );
    assert_eq!(
        qdrant::filter::translate(&e, &FieldMapping::qdrant_default(), 500).unwrap(),
        json!({"must":[{"has_id":[]}]})
    );
}

/// Ids: Chroma cannot filter them in `where`; Qdrant uses `has_id` on canonical ids only.
#[test]
fn resource_ids() {
    let e = conditional(op(
        "eq",
        vec![json!({"variable": "request.resource.id"}), val(json!("7"))],
    ));
    assert!(matches!(
        chroma::filter::translate(&e, &FieldMapping::chroma_default(), 500),
        Err(TranslateError::Unsupported { .. })
    ));
    assert_eq!(
        qdrant::filter::translate(&e, &FieldMapping::qdrant_default(), 500).unwrap(),
        json!({"must":[{"has_id":[7]}]})
    );
}

/// Functions and term limits are refused with the construct named.
#[test]
fn functions_and_limits() {
    let e = conditional(op("startsWith", vec![var("path"), val(json!("/a"))]));
    let err = qdrant::filter::translate(&e, &FieldMapping::qdrant_default(), 500).unwrap_err();
    assert_eq!(
        err.construct(),
        Some("(startsWith request.resource.attr.path \"/a\")")
    );
    let e = conditional(op("in", vec![var("team"), val(json!([1, "a", true]))]));
    assert_eq!(
        chroma::filter::translate(&e, &FieldMapping::chroma_default(), 2),
        Err(TranslateError::TooManyTerms { terms: 3, limit: 2 })
    );
}
