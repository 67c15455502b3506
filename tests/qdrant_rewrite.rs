//! Qdrant request rewriting, input and write extraction, and response post-filtering: pure
//! unit cases over the bodies and responses Qdrant's API documents.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Map, Value};
use vecgate::backends::qdrant::request::{
    and_into_update_filter, delete_selector_to_filter, force_payload, inject_filter, join_batch,
    lookups, parse_point_writes, payload_after, point_inputs, selector_to_filter, split_batch,
    write_selector, PayloadChange, PayloadTrim, PointId, PointInput, PointWrite, RequestError,
    Selector, Trim,
};
use vecgate::backends::qdrant::response::{filter_lookups, filter_points, ResponseError};
use vecgate::backends::qdrant::routes::Operation;

const UUID: &str = "550e8400-e29b-41d4-a716-446655440000";

fn acl() -> Value {
    json!({"must": [{"key": "metadata.dept", "match": {"value": "eng"}}]})
}

fn user() -> Value {
    json!({"must": [{"key": "metadata.year", "range": {"gte": 2020}}]})
}

fn anded(user: Value) -> Value {
    json!({"must": [user, acl()]})
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn inject(op: Operation, body: Value) -> Result<Value, RequestError> {
    inject_filter(op, body, Some(&acl()))
}

fn keys() -> Vec<String> {
    vec!["metadata.dept".to_string()]
}

// ---- inject_filter ---------------------------------------------------------------------

#[test]
fn acl_is_anded_into_the_top_level_filter_of_every_filtered_read() {
    use Operation as O;
    let cases = [
        (O::QueryPoints, json!({"query": [0.1, 0.2], "limit": 3})),
        (
            O::QueryPointsGroups,
            json!({"query": [0.1], "group_by": "metadata.src"}),
        ),
        (O::ScrollPoints, json!({"limit": 10})),
        (O::CountPoints, json!({"exact": true})),
        (O::Facet, json!({"key": "metadata.dept"})),
        (O::SearchMatrixPairs, json!({"sample": 10, "limit": 2})),
        (O::SearchMatrixOffsets, json!({"sample": 10})),
        (O::SearchPoints, json!({"vector": [0.1], "limit": 3})),
        (
            O::SearchPointGroups,
            json!({"vector": [0.1], "group_by": "g", "group_size": 2, "limit": 3}),
        ),
        (O::RecommendPoints, json!({"positive": [1], "limit": 3})),
        (
            O::RecommendPointGroups,
            json!({"positive": [1], "group_by": "g", "group_size": 2, "limit": 3}),
        ),
        (O::DiscoverPoints, json!({"target": 1, "limit": 3})),
    ];
    for (op, body) in cases {
        // No user filter, and an explicit null: the acl alone.
        let out = inject(op, body.clone()).unwrap();
        assert_eq!(out["filter"], acl(), "{op:?}");
        let mut with_null = obj(body.clone());
        with_null.insert("filter".into(), Value::Null);
        assert_eq!(
            inject(op, Value::Object(with_null)).unwrap()["filter"],
            acl(),
            "{op:?}"
        );
        // A user filter: both, under must.
        let mut with_user = obj(body.clone());
        with_user.insert("filter".into(), user());
        let out = inject(op, Value::Object(with_user)).unwrap();
        assert_eq!(out["filter"], anded(user()), "{op:?}");
        // Other fields are untouched.
        for (k, v) in obj(body) {
            assert_eq!(out[&k], v, "{op:?} {k}");
        }
    }
}

#[test]
fn no_acl_leaves_the_body_unchanged_but_still_checks_it() {
    let body = json!({"query": [0.1], "filter": user(), "limit": 3});
    assert_eq!(
        inject_filter(Operation::QueryPoints, body.clone(), None).unwrap(),
        body
    );
    assert!(matches!(
        inject_filter(Operation::QueryPoints, json!({"fliter": user()}), None),
        Err(RequestError::UnknownField { .. })
    ));
}

#[test]
fn acl_reaches_every_prefetch_three_levels_deep() {
    let body = json!({
        "prefetch": [
            {
                "query": [0.1],
                "using": "dense",
                "filter": user(),
                "prefetch": {
                    "query": {"indices": [1], "values": [0.5]},
                    "prefetch": [{"query": [0.3], "limit": 50}],
                },
            },
            {"query": [0.2], "limit": 10},
        ],
        "query": {"fusion": "rrf"},
        "limit": 5,
    });
    let out = inject(Operation::QueryPoints, body).unwrap();
    assert_eq!(out["filter"], acl());
    assert_eq!(out["prefetch"][0]["filter"], anded(user()));
    assert_eq!(out["prefetch"][0]["prefetch"]["filter"], acl());
    assert_eq!(
        out["prefetch"][0]["prefetch"]["prefetch"][0]["filter"],
        acl()
    );
    assert_eq!(out["prefetch"][0]["prefetch"]["prefetch"][0]["limit"], 50);
    assert_eq!(out["prefetch"][1]["filter"], acl());
    assert_eq!(out["query"], json!({"fusion": "rrf"}));
}

#[test]
fn acl_reaches_every_search_of_a_batch() {
    use Operation as O;
    let cases = [
        (
            O::QueryBatchPoints,
            json!({"query": [0.1], "prefetch": {"query": [0.2]}}),
        ),
        (O::SearchBatchPoints, json!({"vector": [0.1], "limit": 2})),
        (
            O::RecommendBatchPoints,
            json!({"positive": [1], "limit": 2}),
        ),
        (O::DiscoverBatchPoints, json!({"target": 1, "limit": 2})),
    ];
    for (op, search) in cases {
        let mut second = obj(search.clone());
        second.insert("filter".into(), user());
        let body = json!({"searches": [search, Value::Object(second)]});
        let out = inject(op, body).unwrap();
        assert_eq!(out["searches"][0]["filter"], acl(), "{op:?}");
        assert_eq!(out["searches"][1]["filter"], anded(user()), "{op:?}");
        if op == O::QueryBatchPoints {
            assert_eq!(out["searches"][0]["prefetch"]["filter"], acl());
        }
    }
}

#[test]
fn malformed_read_bodies_are_refused() {
    use Operation as O;
    let unknown = |op, body| matches!(inject(op, body), Err(RequestError::UnknownField { .. }));
    assert!(unknown(O::QueryPoints, json!({"fliter": user()})));
    assert!(unknown(O::ScrollPoints, json!({"query": [0.1]})));
    assert!(unknown(O::CountPoints, json!({"limit": 3})));
    assert!(unknown(
        O::SearchPoints,
        json!({"vector": [0.1], "using": "x"})
    ));
    assert!(unknown(
        O::QueryBatchPoints,
        json!({"searches": [], "extra": 1})
    ));
    assert!(unknown(
        O::QueryBatchPoints,
        json!({"searches": [{"flter": {}}]})
    ));
    // A prefetch is checked against the prefetch fields (no with_payload there).
    assert!(unknown(
        O::QueryPoints,
        json!({"prefetch": {"query": [0.1], "with_payload": true}})
    ));
    assert!(unknown(
        O::QueryPoints,
        json!({"prefetch": [{"prefetch": {"filtr": {}}}]})
    ));
    let invalid = |op, body| matches!(inject(op, body), Err(RequestError::InvalidField { .. }));
    assert!(invalid(O::QueryPoints, json!({"filter": [user()]})));
    assert!(invalid(O::QueryPoints, json!({"filter": "x"})));
    assert!(invalid(O::QueryPoints, json!({"prefetch": 3})));
    assert!(invalid(O::QueryPoints, json!({"prefetch": [3]})));
    assert!(invalid(O::QueryBatchPoints, json!({"searches": {}})));
    assert!(matches!(
        inject(O::QueryBatchPoints, json!({})),
        Err(RequestError::MissingField { .. })
    ));
    assert_eq!(
        inject(O::QueryPoints, json!([])),
        Err(RequestError::NotAnObject)
    );
    for op in [
        O::GetPoints,
        O::UpsertPoints,
        O::DeletePoints,
        O::GetCollection,
    ] {
        assert!(
            matches!(
                inject(op, json!({})),
                Err(RequestError::WrongOperation { .. })
            ),
            "{op:?}"
        );
    }
    // Prefetches nested past the limit.
    let mut deep = json!({"query": [0.1]});
    for _ in 0..40 {
        deep = json!({"prefetch": deep});
    }
    assert!(matches!(
        inject(O::QueryPoints, deep),
        Err(RequestError::TooDeep { .. })
    ));
}

// ---- force_payload and trims -----------------------------------------------------------

#[test]
fn with_payload_forms_are_forced_and_trimmed() {
    use Operation as O;
    let k = keys();
    // (op, with_payload as sent or absent, as forwarded, trim)
    let cases: Vec<(Operation, Option<Value>, Value, PayloadTrim)> = vec![
        (
            O::QueryPoints,
            None,
            json!(["metadata.dept"]),
            PayloadTrim::Drop,
        ),
        (
            O::QueryPoints,
            Some(json!(null)),
            json!(["metadata.dept"]),
            PayloadTrim::Drop,
        ),
        (
            O::QueryPoints,
            Some(json!(false)),
            json!(["metadata.dept"]),
            PayloadTrim::Drop,
        ),
        (
            O::QueryPoints,
            Some(json!(true)),
            json!(true),
            PayloadTrim::AsReturned,
        ),
        (O::ScrollPoints, None, Value::Null, PayloadTrim::AsReturned),
        // A retrieve returns no payload unless asked (real Qdrant v1.18.3): forced, dropped.
        (O::GetPoints, None, json!(["metadata.dept"]), PayloadTrim::Drop),
        (
            O::ScrollPoints,
            Some(json!(false)),
            json!(["metadata.dept"]),
            PayloadTrim::Drop,
        ),
        (
            O::QueryPoints,
            Some(json!(["page_content"])),
            json!(["page_content", "metadata.dept"]),
            PayloadTrim::Include(vec!["page_content".into()]),
        ),
        // Already covered by an ancestor path: nothing to add, nothing to trim.
        (
            O::QueryPoints,
            Some(json!(["metadata"])),
            json!(["metadata"]),
            PayloadTrim::AsReturned,
        ),
        (
            O::SearchPoints,
            Some(json!({"include": ["page_content"]})),
            json!({"include": ["page_content", "metadata.dept"]}),
            PayloadTrim::Include(vec!["page_content".into()]),
        ),
        (
            O::ScrollPoints,
            Some(json!({"exclude": ["metadata", "page_content"]})),
            json!({"exclude": ["page_content"]}),
            PayloadTrim::Exclude(vec!["metadata".into(), "page_content".into()]),
        ),
        (
            O::ScrollPoints,
            Some(json!({"exclude": ["metadata.dept.sub", "x"]})),
            json!({"exclude": ["x"]}),
            PayloadTrim::Exclude(vec!["metadata.dept.sub".into(), "x".into()]),
        ),
        (
            O::GetPoints,
            Some(json!({"exclude": ["page_content"]})),
            json!({"exclude": ["page_content"]}),
            PayloadTrim::AsReturned,
        ),
    ];
    for (op, sent, forwarded, expected) in cases {
        let mut body = match op {
            O::GetPoints => json!({"ids": [1]}),
            O::SearchPoints => json!({"vector": [0.1], "limit": 1}),
            _ => json!({}),
        };
        if let Some(sent) = sent.clone() {
            body["with_payload"] = sent;
        }
        let trim = force_payload(op, &mut body, &k).unwrap();
        assert_eq!(trim.requests, vec![expected], "{op:?} {sent:?}");
        assert_eq!(
            body.get("with_payload").cloned().unwrap_or(Value::Null),
            forwarded,
            "{op:?} {sent:?}"
        );
    }
}

#[test]
fn force_payload_per_search_and_on_lookups() {
    let mut body = json!({"searches": [
        {"query": [0.1], "with_payload": true},
        {"query": [0.2]},
    ]});
    let trim = force_payload(Operation::QueryBatchPoints, &mut body, &keys()).unwrap();
    assert_eq!(
        trim.requests,
        vec![PayloadTrim::AsReturned, PayloadTrim::Drop]
    );
    assert_eq!(
        body["searches"][1]["with_payload"],
        json!(["metadata.dept"])
    );

    let mut body = json!({"query": [0.1], "group_by": "g",
        "with_lookup": {"collection": "authors", "with_payload": false}});
    let trim = force_payload(Operation::QueryPointsGroups, &mut body, &keys()).unwrap();
    assert_eq!(trim.lookup, PayloadTrim::Drop);
    assert_eq!(
        body["with_lookup"]["with_payload"],
        json!(["metadata.dept"])
    );
    assert_eq!(body["with_payload"], json!(["metadata.dept"]));
}

#[test]
fn force_payload_refusals() {
    use Operation as O;
    for op in [
        O::CountPoints,
        O::Facet,
        O::SearchMatrixPairs,
        O::SearchMatrixOffsets,
    ] {
        assert!(matches!(
            force_payload(op, &mut json!({}), &keys()),
            Err(RequestError::WrongOperation { .. })
        ));
    }
    // Paths that cannot be trimmed exactly.
    for sent in [
        json!(["a[].b"]),
        json!({"include": ["a\"b"]}),
        json!({"exclude": ["a[0]"]}),
    ] {
        let mut body = json!({"with_payload": sent});
        assert!(matches!(
            force_payload(O::ScrollPoints, &mut body, &keys()),
            Err(RequestError::Unsupported { .. })
        ));
    }
    for sent in [
        json!({"include": ["a"], "exclude": ["b"]}),
        json!({"only": ["a"]}),
        json!(3),
        json!([1]),
    ] {
        let mut body = json!({"with_payload": sent});
        assert!(
            matches!(
                force_payload(O::ScrollPoints, &mut body, &keys()),
                Err(RequestError::InvalidField { .. })
            ),
            "{body}"
        );
    }
    // GET points/{id} returns the whole payload: nothing to force.
    assert_eq!(
        force_payload(O::GetPoint, &mut Value::Null, &keys()).unwrap(),
        Trim::default()
    );
}

// ---- point inputs and lookups ------------------------------------------------------------

fn input(id: PointId, collection: Option<&str>) -> PointInput {
    PointInput {
        id,
        collection: collection.map(str::to_string),
    }
}

#[test]
fn every_id_input_form_of_query_is_found() {
    let upper = UUID.to_uppercase();
    let body = json!({
        "query": {"nearest": 1, "mmr": {"diversity": 0.5}},
        "prefetch": [
            {"query": 2},
            {"query": upper},
            {"query": {"recommend": {"positive": [3, [0.1, 0.2]], "negative": [4], "strategy": "best_score"}}},
            {"query": {"discover": {"target": 5, "context": [{"positive": 6, "negative": [0.3]}]}}},
            {"query": {"context": {"positive": 7, "negative": 8}}},
            {"query": {"relevance_feedback": {"target": 9, "feedback": [{"example": 10, "score": 0.9}], "strategy": {"naive": {"a": 1, "b": 1, "c": 1}}}},
             "lookup_from": {"collection": "other", "vector": "dense"}},
            {"query": [0.1, 0.2], "prefetch": {"prefetch": {"query": {"nearest": 11}, "lookup_from": {"collection": "deep"}}}},
            {"query": {"indices": [1, 2], "values": [0.1, 0.2]}},
            {"query": {"order_by": "metadata.year"}},
            {"query": {"formula": {"sum": ["$score"]}, "defaults": {}}},
            {"query": {"sample": "random"}},
            {"query": {"text": "hello", "model": "m"}},
        ],
        "lookup_from": {"collection": "top"},
    });
    let found = point_inputs(Operation::QueryPoints, &body).unwrap();
    let n = PointId::Num;
    assert_eq!(
        found,
        vec![
            input(n(1), Some("top")),
            input(n(2), None),
            input(PointId::Uuid(UUID.into()), None),
            input(n(3), None),
            input(n(4), None),
            input(n(5), None),
            input(n(6), None),
            input(n(7), None),
            input(n(8), None),
            input(n(9), Some("other")),
            input(n(10), Some("other")),
            input(n(11), Some("deep")),
        ]
    );
}

#[test]
fn id_inputs_in_batches_groups_and_legacy_routes() {
    use Operation as O;
    let n = PointId::Num;
    let found = point_inputs(
        O::QueryBatchPoints,
        &json!({"searches": [{"query": 1}, {"query": {"nearest": [0.1]}}, {"query": 2, "lookup_from": {"collection": "o"}}]}),
    )
    .unwrap();
    assert_eq!(found, vec![input(n(1), None), input(n(2), Some("o"))]);

    let found = point_inputs(O::QueryPointsGroups, &json!({"query": 4, "group_by": "g"})).unwrap();
    assert_eq!(found, vec![input(n(4), None)]);

    let body = json!({"positive": [1, [0.1]], "negative": [UUID], "lookup_from": {"collection": "o"}, "limit": 3});
    let expected = vec![
        input(n(1), Some("o")),
        input(PointId::Uuid(UUID.into()), Some("o")),
    ];
    assert_eq!(point_inputs(O::RecommendPoints, &body).unwrap(), expected);
    let mut groups = body.clone();
    groups["group_by"] = json!("g");
    groups["group_size"] = json!(2);
    assert_eq!(
        point_inputs(O::RecommendPointGroups, &groups).unwrap(),
        expected
    );
    assert_eq!(
        point_inputs(O::RecommendBatchPoints, &json!({"searches": [body]})).unwrap(),
        expected
    );

    let body = json!({"target": 1, "context": [{"positive": 2, "negative": {"indices": [1], "values": [1.0]}}], "limit": 3});
    let expected = vec![input(n(1), None), input(n(2), None)];
    assert_eq!(point_inputs(O::DiscoverPoints, &body).unwrap(), expected);
    assert_eq!(
        point_inputs(O::DiscoverBatchPoints, &json!({"searches": [body]})).unwrap(),
        expected
    );

    // Reads without id inputs (scroll's offset is positional, not an input).
    for (op, body) in [
        (O::SearchPoints, json!({"vector": [0.1], "limit": 1})),
        (O::ScrollPoints, json!({"offset": 5})),
        (O::CountPoints, json!({})),
    ] {
        assert_eq!(point_inputs(op, &body).unwrap(), vec![], "{op:?}");
    }
}

#[test]
fn unrecognised_inputs_are_refused() {
    use Operation as O;
    for query in [
        json!("not-a-uuid"),
        json!(-1),
        json!(1.5),
        json!(true),
        json!({"nearest": 1, "extra": 2}),
        json!({"nearest": {"foo": 1}}),
        json!({"recommend": {"positive": [1], "also": []}}),
        json!({"unknown_query": 1}),
        json!({"discover": {"context": []}}),
    ] {
        assert!(
            point_inputs(O::QueryPoints, &json!({"query": query.clone()})).is_err(),
            "{query}"
        );
    }
    assert!(point_inputs(
        O::RecommendPoints,
        &json!({"positive": [{"vector": [1]}], "limit": 1})
    )
    .is_err());
    assert!(point_inputs(O::QueryPoints, &json!({"lookup_from": {"collection": 3}})).is_err());
    assert!(point_inputs(O::UpsertPoints, &json!({})).is_err());
}

#[test]
fn with_lookup_collections_are_listed() {
    use Operation as O;
    assert_eq!(
        lookups(
            O::QueryPointsGroups,
            &json!({"group_by": "g", "with_lookup": "authors"})
        )
        .unwrap(),
        vec!["authors".to_string()]
    );
    assert_eq!(
        lookups(
            O::SearchPointGroups,
            &json!({"vector": [0.1], "group_by": "g", "group_size": 1, "limit": 1, "with_lookup": {"collection": "a2"}})
        )
        .unwrap(),
        vec!["a2".to_string()]
    );
    assert_eq!(
        lookups(O::QueryPointsGroups, &json!({"group_by": "g"})).unwrap(),
        Vec::<String>::new()
    );
    assert!(lookups(O::RecommendPointGroups, &json!({"with_lookup": 3})).is_err());
    assert_eq!(
        lookups(O::QueryPoints, &json!({})).unwrap(),
        Vec::<String>::new()
    );
}

// ---- writes ------------------------------------------------------------------------------

fn write(id: u64, change: PayloadChange, may_create: bool) -> PointWrite {
    PointWrite {
        id: PointId::Num(id),
        change,
        may_create,
    }
}

#[test]
fn upsert_points_and_batch_forms() {
    let body = json!({"points": [
        {"id": 1, "vector": [0.1], "payload": {"metadata": {"dept": "eng"}}},
        {"id": UUID.to_uppercase(), "vector": {"": [0.2]}},
        {"id": 3, "vector": [0.3], "payload": null},
    ]});
    let writes = parse_point_writes(Operation::UpsertPoints, &body).unwrap();
    assert_eq!(writes.len(), 3);
    assert_eq!(
        writes[0],
        write(
            1,
            PayloadChange::Replace(obj(json!({"metadata": {"dept": "eng"}}))),
            true
        )
    );
    assert_eq!(writes[1].id, PointId::Uuid(UUID.into()));
    assert_eq!(writes[1].change, PayloadChange::Replace(Map::new()));
    assert_eq!(writes[2].change, PayloadChange::Replace(Map::new()));

    let body = json!({"batch": {"ids": [1, 2], "vectors": [[0.1], [0.2]], "payloads": [{"a": 1}, null]},
        "update_mode": "insert_only", "shard_key": "k"});
    let writes = parse_point_writes(Operation::UpsertPoints, &body).unwrap();
    assert_eq!(
        writes,
        vec![
            write(1, PayloadChange::Replace(obj(json!({"a": 1}))), true),
            write(2, PayloadChange::Replace(Map::new()), true),
        ]
    );
    let body = json!({"batch": {"ids": [1, 2], "vectors": [[0.1], [0.2]]}});
    assert_eq!(
        parse_point_writes(Operation::UpsertPoints, &body)
            .unwrap()
            .len(),
        2
    );

    for bad in [
        json!({"points": [{"id": 1, "vector": [0.1]}, {"id": 1, "vector": [0.2]}]}),
        json!({"batch": {"ids": [1, 2], "vectors": [], "payloads": [{}]}}),
        json!({"points": [], "batch": {"ids": [], "vectors": []}}),
        json!({"points": [{"id": "7", "vector": [0.1]}]}),
        json!({"points": [{"id": 1, "vector": [0.1], "payloads": {}}]}),
        json!({"points": [], "update_mode": "replace"}),
        json!({"points": [], "update_filter": []}),
        json!({"points": [], "wait": true}),
        json!({}),
    ] {
        assert!(
            parse_point_writes(Operation::UpsertPoints, &bad).is_err(),
            "{bad}"
        );
    }
    assert!(matches!(
        parse_point_writes(
            Operation::UpsertPoints,
            &json!({"points": [{"id": 1, "vector": []}, {"id": 1, "vector": []}]})
        ),
        Err(RequestError::DuplicateId { .. })
    ));
}

#[test]
fn payload_and_vector_writes_by_id() {
    use Operation as O;
    let writes = parse_point_writes(
        O::UpdateVectors,
        &json!({"points": [{"id": 4, "vector": [0.1]}]}),
    )
    .unwrap();
    assert_eq!(writes, vec![write(4, PayloadChange::Keep, false)]);

    let set = json!({"payload": {"dept": "hr"}, "points": [1, 2], "key": "metadata"});
    let change = PayloadChange::Merge {
        key: Some("metadata".into()),
        payload: obj(json!({"dept": "hr"})),
    };
    assert_eq!(
        parse_point_writes(O::SetPayload, &set).unwrap(),
        vec![write(1, change.clone(), false), write(2, change, false)]
    );
    let overwrite = json!({"payload": {"dept": "hr"}, "points": [1]});
    assert_eq!(
        parse_point_writes(O::OverwritePayload, &overwrite).unwrap(),
        vec![write(
            1,
            PayloadChange::Replace(obj(json!({"dept": "hr"}))),
            false
        )]
    );
    assert!(matches!(
        parse_point_writes(
            O::OverwritePayload,
            &json!({"payload": {}, "points": [1], "key": "a"})
        ),
        Err(RequestError::Unsupported { .. })
    ));
    assert_eq!(
        parse_point_writes(
            O::DeletePayload,
            &json!({"keys": ["metadata.dept"], "points": [5]})
        )
        .unwrap(),
        vec![write(
            5,
            PayloadChange::DeleteKeys(vec!["metadata.dept".into()]),
            false
        )]
    );
    assert_eq!(
        parse_point_writes(O::ClearPayload, &json!({"points": [6]})).unwrap(),
        vec![write(6, PayloadChange::Clear, false)]
    );
    // By filter: no point here, the selector says it.
    assert_eq!(
        parse_point_writes(O::SetPayload, &json!({"payload": {}, "filter": user()})).unwrap(),
        vec![]
    );
    assert!(parse_point_writes(O::SetPayload, &json!({"payload": 1, "points": [1]})).is_err());
    assert!(parse_point_writes(O::DeletePoints, &json!({"points": [1]})).is_err());
}

#[test]
fn write_selectors() {
    use Operation as O;
    let n = PointId::Num;
    assert_eq!(
        write_selector(O::DeletePoints, &json!({"points": [1, UUID]})).unwrap(),
        Selector::Ids(vec![n(1), PointId::Uuid(UUID.into())])
    );
    assert_eq!(
        write_selector(O::SetPayload, &json!({"payload": {}, "filter": user()})).unwrap(),
        Selector::Filter(user())
    );
    assert_eq!(
        write_selector(
            O::UpsertPoints,
            &json!({"points": [{"id": 9, "vector": [1]}]})
        )
        .unwrap(),
        Selector::Ids(vec![n(9)])
    );
    assert_eq!(
        write_selector(O::DeleteVectors, &json!({"vector": ["v"], "points": [3]})).unwrap(),
        Selector::Ids(vec![n(3)])
    );
    // Qdrant's untagged selector would silently pick one of the two: refused.
    assert!(matches!(
        write_selector(O::ClearPayload, &json!({"points": [1], "filter": user()})),
        Err(RequestError::Unsupported { .. })
    ));
    assert!(matches!(
        write_selector(O::DeletePoints, &json!({})),
        Err(RequestError::MissingField { .. })
    ));
    assert!(matches!(
        write_selector(O::DeletePoints, &json!({"points": [1], "keys": []})),
        Err(RequestError::UnknownField { .. })
    ));
    assert!(write_selector(O::DeletePoints, &json!({"filter": [1]})).is_err());
    assert!(matches!(
        write_selector(O::DeletePoints, &json!({"points": [1, 1]})),
        Err(RequestError::DuplicateId { .. })
    ));
}

#[test]
fn batch_operations_split_parse_and_join() {
    let body = json!({"operations": [
        {"upsert": {"points": [{"id": 1, "vector": [0.1], "payload": {"a": 1}}]}},
        {"set_payload": {"payload": {"b": 2}, "points": [1]}},
        {"delete": {"points": [2]}},
        {"delete_payload": {"keys": ["a"], "filter": user()}},
        {"update_vectors": {"points": [{"id": 3, "vector": [0.3]}]}},
    ]});
    let parts = split_batch(&body).unwrap();
    let ops: Vec<Operation> = parts.iter().map(|(op, _)| *op).collect();
    use Operation as O;
    assert_eq!(
        ops,
        vec![
            O::UpsertPoints,
            O::SetPayload,
            O::DeletePoints,
            O::DeletePayload,
            O::UpdateVectors
        ]
    );
    let writes = parse_point_writes(O::BatchUpdate, &body).unwrap();
    let ids: Vec<PointId> = writes.iter().map(|w| w.id.clone()).collect();
    assert_eq!(ids, vec![PointId::Num(1), PointId::Num(1), PointId::Num(3)]);
    // Folding the changes in order gives the final payload.
    let after = writes[..2]
        .iter()
        .fold(None, |acc: Option<Map<String, Value>>, w| {
            Some(payload_after(&w.change, acc.as_ref()))
        });
    assert_eq!(after, Some(obj(json!({"a": 1, "b": 2}))));
    // Rewritten parts go back into a batch body.
    let rewritten: Vec<(Operation, Value)> = parts
        .into_iter()
        .map(|(op, b)| {
            if op == O::DeletePoints {
                (op, delete_selector_to_filter(op, b, &acl()).unwrap())
            } else {
                (op, b)
            }
        })
        .collect();
    let joined = join_batch(rewritten).unwrap();
    assert_eq!(
        joined["operations"][2]["delete"]["filter"],
        json!({"must": [{"has_id": [2]}, acl()]})
    );
    assert_eq!(joined["operations"][0], body["operations"][0]);

    for bad in [
        json!({"operations": [{"upsert": {"points": []}, "delete": {"points": [1]}}]}),
        json!({"operations": [{"drop": {}}]}),
        json!({"operations": {}}),
        json!({"operations": [], "wait": true}),
    ] {
        assert!(split_batch(&bad).is_err(), "{bad}");
    }
}

#[test]
fn payload_after_each_write() {
    let existing =
        obj(json!({"page_content": "t", "metadata": {"dept": "eng", "year": 2020}, "x": 1}));
    let merge = |key: Option<&str>, payload: Value| PayloadChange::Merge {
        key: key.map(str::to_string),
        payload: obj(payload),
    };
    // set_payload: top-level merge; a written object replaces the old one whole.
    assert_eq!(
        payload_after(
            &merge(None, json!({"metadata": {"dept": "hr"}, "y": 2})),
            Some(&existing)
        ),
        obj(json!({"page_content": "t", "metadata": {"dept": "hr"}, "x": 1, "y": 2}))
    );
    // With key: merged into the object at that path.
    assert_eq!(
        payload_after(
            &merge(Some("metadata"), json!({"dept": "hr"})),
            Some(&existing)
        ),
        obj(json!({"page_content": "t", "metadata": {"dept": "hr", "year": 2020}, "x": 1}))
    );
    // Missing objects are created; a non-object on the way is replaced.
    assert_eq!(
        payload_after(&merge(Some("x.y"), json!({"z": 1})), Some(&existing))["x"],
        json!({"y": {"z": 1}})
    );
    assert_eq!(
        payload_after(&merge(Some("a.b"), json!({"c": 1})), None),
        obj(json!({"a": {"b": {"c": 1}}}))
    );
    // Overwrite and upsert replace; clear empties; vector writes keep.
    assert_eq!(
        payload_after(
            &PayloadChange::Replace(obj(json!({"k": 1}))),
            Some(&existing)
        ),
        obj(json!({"k": 1}))
    );
    assert_eq!(
        payload_after(&PayloadChange::Clear, Some(&existing)),
        Map::new()
    );
    assert_eq!(
        payload_after(&PayloadChange::Keep, Some(&existing)),
        existing
    );
    assert_eq!(payload_after(&PayloadChange::Keep, None), Map::new());
    // delete_payload removes paths; a missing path is a no-op.
    assert_eq!(
        payload_after(
            &PayloadChange::DeleteKeys(vec![
                "metadata.dept".into(),
                "x".into(),
                "nope.deeper".into()
            ]),
            Some(&existing)
        ),
        obj(json!({"page_content": "t", "metadata": {"year": 2020}}))
    );
}

#[test]
fn deletes_by_ids_and_filters_become_filters() {
    use Operation as O;
    let out = delete_selector_to_filter(
        O::DeletePoints,
        json!({"points": [1, UUID], "shard_key": "s"}),
        &acl(),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"filter": {"must": [{"has_id": [1, UUID]}, acl()]}, "shard_key": "s"})
    );
    let out =
        delete_selector_to_filter(O::DeletePoints, json!({"filter": user()}), &acl()).unwrap();
    assert_eq!(out, json!({"filter": anded(user())}));
    let out = delete_selector_to_filter(
        O::DeleteVectors,
        json!({"points": [3], "vector": ["v"]}),
        &acl(),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"filter": {"must": [{"has_id": [3]}, acl()]}, "vector": ["v"]})
    );
    let out = delete_selector_to_filter(
        O::DeletePayload,
        json!({"keys": ["a"], "filter": user()}),
        &acl(),
    )
    .unwrap();
    assert_eq!(out, json!({"keys": ["a"], "filter": anded(user())}));
    let out = delete_selector_to_filter(O::ClearPayload, json!({"points": []}), &acl()).unwrap();
    assert_eq!(out, json!({"filter": {"must": [{"has_id": []}, acl()]}}));
    assert!(matches!(
        delete_selector_to_filter(O::SetPayload, json!({"payload": {}, "points": [1]}), &acl()),
        Err(RequestError::WrongOperation { .. })
    ));
    // A by-filter payload write gets the update plan the same way.
    let out = selector_to_filter(
        O::SetPayload,
        json!({"payload": {"a": 1}, "filter": user(), "key": "m"}),
        &acl(),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"payload": {"a": 1}, "filter": anded(user()), "key": "m"})
    );
    assert!(delete_selector_to_filter(
        O::DeletePoints,
        json!({"points": [1], "filter": user()}),
        &acl()
    )
    .is_err());

    let out = and_into_update_filter(
        O::UpsertPoints,
        json!({"points": [], "update_filter": user()}),
        &acl(),
    )
    .unwrap();
    assert_eq!(out["update_filter"], anded(user()));
    let out = and_into_update_filter(O::UpdateVectors, json!({"points": []}), &acl()).unwrap();
    assert_eq!(out["update_filter"], acl());
}

// ---- response filtering ----------------------------------------------------------------

fn point(id: Value, dept: &str) -> Value {
    json!({"id": id, "version": 1, "score": 0.5,
        "payload": {"page_content": "t", "metadata": {"dept": dept, "year": 2021}}})
}

fn envelope(result: Value) -> Value {
    json!({"result": result, "status": "ok", "time": 0.001})
}

/// Keeps points whose `metadata.dept` is "eng".
fn eng(_: &PointId, payload: Option<&Map<String, Value>>) -> bool {
    payload
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("dept"))
        .is_some_and(|d| d == "eng")
}

fn ids(points: &Value) -> Vec<Value> {
    points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect()
}

fn single(t: PayloadTrim) -> Trim {
    Trim {
        requests: vec![t],
        lookup: PayloadTrim::AsReturned,
    }
}

#[test]
fn query_and_scroll_responses() {
    let mut resp = envelope(
        json!({"points": [point(json!(1), "eng"), point(json!(2), "hr"), point(json!(UUID), "eng")]}),
    );
    let f = filter_points(
        Operation::QueryPoints,
        &mut resp,
        &mut eng,
        &Trim::default(),
    )
    .unwrap();
    assert_eq!(f.stripped, 1);
    assert!(!f.not_found);
    assert_eq!(ids(&resp["result"]["points"]), vec![json!(1), json!(UUID)]);
    assert_eq!(resp["status"], "ok");

    let mut resp = envelope(
        json!({"points": [point(json!(1), "hr"), point(json!(2), "eng")], "next_page_offset": 3}),
    );
    let f = filter_points(
        Operation::ScrollPoints,
        &mut resp,
        &mut eng,
        &single(PayloadTrim::Drop),
    )
    .unwrap();
    assert_eq!(f.stripped, 1);
    assert_eq!(resp["result"]["next_page_offset"], 3);
    assert_eq!(
        resp["result"]["points"],
        json!([{"id": 2, "version": 1, "score": 0.5}])
    );
}

#[test]
fn batch_and_legacy_responses() {
    use Operation as O;
    let mut resp = envelope(json!([
        {"points": [point(json!(1), "hr"), point(json!(2), "eng")]},
        {"points": [point(json!(3), "eng")]},
    ]));
    let trim = Trim {
        requests: vec![
            PayloadTrim::Include(vec!["page_content".into()]),
            PayloadTrim::AsReturned,
        ],
        lookup: PayloadTrim::AsReturned,
    };
    let f = filter_points(O::QueryBatchPoints, &mut resp, &mut eng, &trim).unwrap();
    assert_eq!(f.stripped, 1);
    assert_eq!(
        resp["result"][0]["points"][0]["payload"],
        json!({"page_content": "t"})
    );
    assert_eq!(
        resp["result"][1]["points"][0]["payload"]["metadata"]["dept"],
        "eng"
    );

    for op in [
        O::SearchPoints,
        O::RecommendPoints,
        O::DiscoverPoints,
        O::GetPoints,
    ] {
        let mut resp = envelope(json!([point(json!(1), "hr"), point(json!(2), "eng")]));
        let f = filter_points(op, &mut resp, &mut eng, &Trim::default()).unwrap();
        assert_eq!(
            (f.stripped, ids(&resp["result"])),
            (1, vec![json!(2)]),
            "{op:?}"
        );
    }
    for op in [
        O::SearchBatchPoints,
        O::RecommendBatchPoints,
        O::DiscoverBatchPoints,
    ] {
        let mut resp = envelope(json!([
            [point(json!(1), "hr")],
            [point(json!(2), "eng"), point(json!(3), "x")]
        ]));
        let f = filter_points(op, &mut resp, &mut eng, &Trim::default()).unwrap();
        assert_eq!(f.stripped, 2, "{op:?}");
        assert_eq!(resp["result"], json!([[], [point(json!(2), "eng")]]));
    }
}

#[test]
fn trims_round_trip_to_what_was_asked() {
    // Include: the forced key disappears, nested paths keep their nesting.
    let mut resp = envelope(json!([point(json!(1), "eng")]));
    let trim = single(PayloadTrim::Include(vec!["metadata.year".into()]));
    filter_points(Operation::GetPoints, &mut resp, &mut eng, &trim).unwrap();
    assert_eq!(
        resp["result"][0]["payload"],
        json!({"metadata": {"year": 2021}})
    );
    // Exclude: the caller's exclusions are applied after the post-filter read them.
    let mut resp = envelope(json!([point(json!(1), "eng")]));
    let trim = single(PayloadTrim::Exclude(vec!["metadata".into()]));
    filter_points(
        Operation::ScrollPoints,
        &mut envelope(json!({"points": []})),
        &mut eng,
        &trim,
    )
    .unwrap();
    filter_points(Operation::GetPoints, &mut resp, &mut eng, &trim).unwrap();
    assert_eq!(resp["result"][0]["payload"], json!({"page_content": "t"}));
    // The whole chain: force, filter, trim gives what Qdrant would have answered.
    let mut body = json!({"query": [0.1], "with_payload": ["page_content"]});
    let trim = force_payload(Operation::QueryPoints, &mut body, &keys()).unwrap();
    let mut resp = envelope(json!({"points": [
        {"id": 1, "score": 0.9, "payload": {"page_content": "a", "metadata": {"dept": "eng"}}},
        {"id": 2, "score": 0.8, "payload": {"page_content": "b", "metadata": {"dept": "hr"}}},
    ]}));
    filter_points(Operation::QueryPoints, &mut resp, &mut eng, &trim).unwrap();
    assert_eq!(
        resp["result"]["points"],
        json!([{"id": 1, "score": 0.9, "payload": {"page_content": "a"}}])
    );
}

/// `changed` says whether the proxy must re-serialise the answer or may pass Qdrant's bytes.
#[test]
fn filtered_answers_say_whether_they_changed() {
    use Operation as O;
    let changed = |op, resp: serde_json::Value, trim: &Trim| {
        filter_points(op, &mut envelope(resp), &mut eng, trim).unwrap().changed
    };
    let all_eng = json!({"points": [point(json!(1), "eng"), point(json!(2), "eng")]});
    assert!(!changed(O::QueryPoints, all_eng.clone(), &Trim::default()));
    assert!(!changed(O::ScrollPoints, all_eng.clone(), &single(PayloadTrim::AsReturned)));
    assert!(changed(O::QueryPoints, all_eng, &single(PayloadTrim::Drop)));
    assert!(changed(O::QueryPoints, json!({"points": [point(json!(1), "hr")]}), &Trim::default()));
    assert!(!changed(O::GetPoint, point(json!(1), "eng"), &Trim::default()));
    assert!(changed(O::GetPoint, point(json!(1), "hr"), &Trim::default()));
    // A group Qdrant sent without hits is dropped: changed, with nothing stripped.
    let groups = json!({"groups": [{"id": "a", "hits": [point(json!(1), "eng")]}, {"id": "b", "hits": []}]});
    let mut resp = envelope(groups);
    let f = filter_points(O::QueryPointsGroups, &mut resp, &mut eng, &Trim::default()).unwrap();
    assert_eq!((f.stripped, f.changed), (0, true));
    let unchanged = json!({"groups": [{"id": "a", "hits": [point(json!(1), "eng")]}]});
    assert!(!changed(O::QueryPointsGroups, unchanged, &Trim::default()));
    let lookup_trimmed = Trim { requests: vec![], lookup: PayloadTrim::Drop };
    let with_lookup = json!({"groups": [{"id": "a", "hits": [point(json!(1), "eng")], "lookup": point(json!(9), "eng")}]});
    assert!(changed(O::QueryPointsGroups, with_lookup, &lookup_trimmed));
}

#[test]
fn groups_responses_and_lookups() {
    let mut resp = envelope(json!({"groups": [
        {"id": "a", "hits": [point(json!(1), "eng"), point(json!(2), "hr")],
         "lookup": {"id": UUID, "payload": {"metadata": {"dept": "hr"}}}},
        {"id": "b", "hits": [point(json!(3), "hr")]},
        {"id": 7, "hits": [point(json!(4), "eng")], "lookup": {"id": 7, "payload": {"metadata": {"dept": "eng"}}}},
    ]}));
    let f = filter_points(
        Operation::QueryPointsGroups,
        &mut resp,
        &mut eng,
        &Trim::default(),
    )
    .unwrap();
    assert_eq!(f.stripped, 2);
    let groups = resp["result"]["groups"].as_array().unwrap().clone();
    assert_eq!(groups.len(), 2, "the emptied group is removed");
    assert_eq!(ids(&groups[0]["hits"]), vec![json!(1)]);
    let removed = filter_lookups(Operation::QueryPointsGroups, &mut resp, &mut eng).unwrap();
    assert_eq!(removed, 1);
    assert!(resp["result"]["groups"][0].get("lookup").is_none());
    assert_eq!(resp["result"]["groups"][1]["lookup"]["id"], 7);
    assert!(matches!(
        filter_lookups(Operation::QueryPoints, &mut resp, &mut eng),
        Err(ResponseError::WrongOperation { .. })
    ));
}

#[test]
fn a_refused_single_point_is_not_found() {
    let mut resp = envelope(point(json!(5), "hr"));
    let f = filter_points(Operation::GetPoint, &mut resp, &mut eng, &Trim::default()).unwrap();
    assert!(f.not_found);
    assert_eq!(resp["result"], Value::Null);
    let mut resp = envelope(point(json!(5), "eng"));
    let f = filter_points(Operation::GetPoint, &mut resp, &mut eng, &Trim::default()).unwrap();
    assert!(!f.not_found);
    assert_eq!(resp["result"]["id"], 5);
}

#[test]
fn points_without_payload_reach_keep_as_none() {
    let mut seen = Vec::new();
    let mut keep = |id: &PointId, payload: Option<&Map<String, Value>>| {
        seen.push((id.clone(), payload.is_some()));
        false
    };
    let mut resp =
        envelope(json!({"points": [{"id": 1, "score": 0.1}, {"id": 2, "payload": null}]}));
    let f = filter_points(
        Operation::QueryPoints,
        &mut resp,
        &mut keep,
        &Trim::default(),
    )
    .unwrap();
    assert_eq!(f.stripped, 2);
    assert_eq!(
        seen,
        vec![(PointId::Num(1), false), (PointId::Num(2), false)]
    );
}

#[test]
fn unknown_response_shapes_are_errors() {
    use Operation as O;
    let bad = |op, resp: Value| {
        let mut resp = resp;
        matches!(
            filter_points(op, &mut resp, &mut eng, &Trim::default()),
            Err(ResponseError::Shape { .. })
        )
    };
    assert!(bad(O::QueryPoints, json!({"status": "ok"})));
    assert!(bad(
        O::QueryPoints,
        envelope(json!([point(json!(1), "eng")]))
    ));
    assert!(bad(O::SearchPoints, envelope(json!({"points": []}))));
    assert!(bad(
        O::ScrollPoints,
        envelope(json!({"points": [{"payload": {}}]}))
    ));
    assert!(bad(
        O::ScrollPoints,
        envelope(json!({"points": [{"id": "nope"}]}))
    ));
    assert!(bad(
        O::ScrollPoints,
        envelope(json!({"points": [{"id": 1, "payload": [1]}]}))
    ));
    assert!(bad(
        O::QueryBatchPoints,
        envelope(json!([[point(json!(1), "eng")]]))
    ));
    assert!(bad(
        O::QueryPointsGroups,
        envelope(json!({"groups": [{"id": 1}]}))
    ));
    assert!(bad(O::GetPoint, envelope(json!([point(json!(1), "eng")]))));
    assert!(bad(
        O::GetPoint,
        json!({"status": {"error": "Not found"}, "time": 0.0})
    ));
    for op in [
        O::CountPoints,
        O::Facet,
        O::SearchMatrixPairs,
        O::UpsertPoints,
    ] {
        let mut resp = envelope(json!({"count": 3}));
        assert!(matches!(
            filter_points(op, &mut resp, &mut eng, &Trim::default()),
            Err(ResponseError::WrongOperation { .. })
        ));
    }
}
