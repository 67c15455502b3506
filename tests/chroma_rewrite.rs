//! Chroma request rewriting and response post-filtering: unit cases, then the rewritten bodies
//! against the real Chroma server (accepted, and returning exactly ids ∩ acl), trimmed
//! responses against direct ones, and `merged_metadata` against what Chroma stores.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Map, Value};
use support::ChromaServer;
use vecgate::backends::chroma::request::{
    count_as_get, merged_metadata, parse_write, rewrite_filtered, set_write_metadatas,
    RequestError, Trim, WriteBatch,
};
use vecgate::backends::chroma::response::{
    filter_get_response, filter_query_response, filter_search_response, get_rows, ResponseError,
};
use vecgate::backends::chroma::routes::Operation;

fn acl() -> Value {
    json!({"dept": "eng"})
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn rewrite(op: Operation, body: Value, need: bool) -> Result<(Value, Trim), RequestError> {
    rewrite_filtered(op, body, Some(&acl()), need)
}

const DROP: Trim = Trim {
    drop_metadatas: true,
};

// ---- rewrite_filtered ------------------------------------------------------------------

#[test]
fn acl_is_anded_into_where() {
    let user = json!({"level": {"$gt": 2}});
    for op in [Operation::Get, Operation::Query, Operation::Delete] {
        let (body, _) = rewrite(op, json!({"where": user, "ids": ["a"]}), false).unwrap();
        assert_eq!(body["where"], json!({"$and": [user, acl()]}), "{op:?}");
        assert_eq!(body["ids"], json!(["a"]), "the caller's ids stay");
        for no_user in [json!({"ids": ["a"]}), json!({"ids": ["a"], "where": null})] {
            let (body, _) = rewrite(op, no_user, false).unwrap();
            assert_eq!(body["where"], acl(), "{op:?}");
        }
    }
    // An empty get body reads everything: it gets the acl too.
    let (body, trim) = rewrite(Operation::Get, json!({}), false).unwrap();
    assert_eq!(body, json!({"where": acl()}));
    assert_eq!(trim, Trim::default());
    // No acl: the body is unchanged.
    let original = json!({"where": user, "include": ["documents"], "limit": 3});
    let (body, _) = rewrite_filtered(Operation::Get, original.clone(), None, false).unwrap();
    assert_eq!(body, original);
}

#[test]
fn unknown_fields_and_bad_types_are_refused() {
    let unknown = |op, body| {
        matches!(
            rewrite(op, body, false),
            Err(RequestError::UnknownField { .. })
        )
    };
    assert!(unknown(Operation::Get, json!({"WHERE": {"dept": "hr"}})));
    assert!(unknown(Operation::Get, json!({"n_results": 2})));
    assert!(unknown(
        Operation::Query,
        json!({"query_embeddings": [[1.0]], "offset": 1})
    ));
    assert!(unknown(
        Operation::Delete,
        json!({"ids": ["a"], "include": []})
    ));
    assert!(unknown(
        Operation::Search,
        json!({"searches": [], "where": {}})
    ));
    assert!(unknown(
        Operation::Search,
        json!({"searches": [{"filter": null, "where": {"dept": "hr"}}]})
    ));

    let invalid = |op, body| {
        matches!(
            rewrite(op, body, true),
            Err(RequestError::InvalidField { .. })
        )
    };
    assert!(invalid(Operation::Get, json!({"where": "dept"})));
    assert!(invalid(Operation::Get, json!({"where": [{"dept": "hr"}]})));
    assert!(invalid(Operation::Get, json!({"where_document": "x"})));
    assert!(invalid(Operation::Get, json!({"include": null})));
    assert!(invalid(Operation::Get, json!({"include": "metadatas"})));
    assert!(invalid(Operation::Get, json!({"include": ["metadata"]})));
    assert!(invalid(Operation::Query, json!({"include": [1]})));
    assert!(invalid(Operation::Get, json!({"ids": "a"})));
    assert!(invalid(Operation::Delete, json!({"ids": [1]})));
    assert!(invalid(Operation::Search, json!({"searches": {}})));
    assert!(invalid(
        Operation::Search,
        json!({"searches": [{"filter": "x"}]})
    ));
    assert_eq!(
        rewrite(Operation::Get, json!([]), false),
        Err(RequestError::NotAnObject)
    );
    assert!(matches!(
        rewrite(Operation::Search, json!({}), false),
        Err(RequestError::MissingField { .. })
    ));
    assert!(matches!(
        rewrite(Operation::Count, json!({}), false),
        Err(RequestError::WrongOperation { .. })
    ));
    assert!(matches!(
        rewrite(Operation::Upsert, json!({}), false),
        Err(RequestError::WrongOperation { .. })
    ));
}

#[test]
fn metadatas_are_forced_into_include() {
    let include = |op, body, need| {
        let (b, t) = rewrite(op, body, need).unwrap();
        (b.get("include").cloned(), t)
    };
    // Absent: Chroma's default written out; it already carries metadatas.
    assert_eq!(
        include(Operation::Get, json!({}), true),
        (Some(json!(["documents", "metadatas"])), Trim::default())
    );
    assert_eq!(
        include(Operation::Query, json!({"query_embeddings": [[1.0]]}), true),
        (
            Some(json!(["documents", "metadatas", "distances"])),
            Trim::default()
        )
    );
    assert_eq!(
        include(Operation::Get, json!({}), false),
        (None, Trim::default())
    );
    assert_eq!(
        include(Operation::Get, json!({"include": ["documents"]}), true),
        (Some(json!(["documents", "metadatas"])), DROP)
    );
    assert_eq!(
        include(Operation::Query, json!({"include": []}), true),
        (Some(json!(["metadatas"])), DROP)
    );
    assert_eq!(
        include(
            Operation::Get,
            json!({"include": ["metadatas", "uris"]}),
            true
        ),
        (Some(json!(["metadatas", "uris"])), Trim::default())
    );
    assert_eq!(
        include(Operation::Get, json!({"include": ["documents"]}), false),
        (Some(json!(["documents"])), Trim::default())
    );
}

#[test]
fn delete_must_select_records() {
    for body in [
        json!({}),
        json!({"ids": null, "where": null, "where_document": null}),
        json!({"limit": 1}),
    ] {
        assert_eq!(
            rewrite(Operation::Delete, body.clone(), false),
            Err(RequestError::EmptyDelete),
            "{body}"
        );
    }
    let (body, trim) = rewrite(Operation::Delete, json!({"ids": ["a", "b"]}), true).unwrap();
    assert_eq!(body, json!({"ids": ["a", "b"], "where": acl()}));
    assert_eq!(trim, Trim::default());
    let wd = json!({"$contains": "x"});
    let (body, _) = rewrite(Operation::Delete, json!({"where_document": wd}), false).unwrap();
    assert_eq!(body, json!({"where_document": wd, "where": acl()}));
}

#[test]
fn search_filters_every_search() {
    let body = json!({
        "read_level": "index_and_wal",
        "searches": [
            {"filter": {"level": 3}, "limit": {"limit": 5}, "select": {"keys": ["#document"]}},
            {"rank": {"$knn": {"query": [1.0]}}, "select": {"keys": []}},
            {"filter": null, "select": {"keys": ["#metadata", "#score"]}},
        ]
    });
    let (out, trim) = rewrite(Operation::Search, body.clone(), false).unwrap();
    assert_eq!(trim, Trim::default());
    assert_eq!(
        out["searches"][0]["filter"],
        json!({"$and": [{"level": 3}, acl()]})
    );
    assert_eq!(out["searches"][1]["filter"], acl());
    assert_eq!(out["searches"][2]["filter"], acl());
    assert_eq!(out["searches"][0]["select"], body["searches"][0]["select"]);

    // Forcing #metadata: only when every search needs it, never beside single metadata keys.
    let two = json!({"searches": [
        {"select": {"keys": ["#document"]}},
        {"select": {"keys": []}},
    ]});
    let (out, trim) = rewrite(Operation::Search, two, true).unwrap();
    assert_eq!(trim, DROP);
    assert_eq!(
        out["searches"][0]["select"]["keys"],
        json!(["#document", "#metadata"])
    );
    assert_eq!(out["searches"][1]["select"]["keys"], json!(["#metadata"]));
    let unsupported = |body| {
        matches!(
            rewrite(Operation::Search, body, true),
            Err(RequestError::Unsupported { .. })
        )
    };
    assert!(unsupported(
        json!({"searches": [{"select": {"keys": ["title"]}}]})
    ));
    assert!(unsupported(json!({"searches": [{"filter": null}]})));
    assert!(unsupported(json!({"searches": [
        {"select": {"keys": ["#metadata"]}},
        {"select": {"keys": []}},
    ]})));
    let (_, trim) = rewrite(
        Operation::Search,
        json!({"searches": [{"select": {"keys": ["#metadata", "title"]}}]}),
        true,
    )
    .unwrap();
    assert_eq!(trim, Trim::default());
}

#[test]
fn count_is_a_filtered_get() {
    assert_eq!(
        count_as_get(Some(&acl())),
        json!({"where": acl(), "include": []})
    );
    assert_eq!(count_as_get(None), json!({"include": []}));
}

// ---- writes ----------------------------------------------------------------------------

#[test]
fn parse_write_reads_ids_and_metadatas() {
    let body = json!({
        "ids": ["a", "b", "c"],
        "embeddings": [[1.0], "AACAPw==", [2.0]],
        "metadatas": [{"dept": "eng"}, null, {}],
        "documents": ["x", null, "z"],
        "uris": null,
    });
    assert_eq!(
        parse_write(Operation::Upsert, &body).unwrap(),
        WriteBatch {
            ids: vec!["a".into(), "b".into(), "c".into()],
            metadatas: vec![Some(obj(json!({"dept": "eng"}))), None, Some(Map::new())],
        }
    );
    let no_meta = json!({"ids": ["a", "b"], "documents": ["x", "y"]});
    assert_eq!(
        parse_write(Operation::Update, &no_meta).unwrap().metadatas,
        vec![None, None]
    );
    let null_meta = json!({"ids": ["a"], "metadatas": null, "embeddings": [[1.0]]});
    assert_eq!(
        parse_write(Operation::Add, &null_meta).unwrap().metadatas,
        vec![None]
    );
}

#[test]
fn parse_write_refuses_bad_batches() {
    let err = |body: Value| parse_write(Operation::Upsert, &body).unwrap_err();
    assert!(matches!(
        err(json!({"ids": ["a", "a"]})),
        RequestError::DuplicateId { .. }
    ));
    assert!(matches!(
        err(json!({"ids": []})),
        RequestError::InvalidField { .. }
    ));
    assert!(matches!(
        err(json!({"ids": [1]})),
        RequestError::InvalidField { .. }
    ));
    assert!(matches!(
        err(json!({"ids": "a"})),
        RequestError::InvalidField { .. }
    ));
    assert!(matches!(
        err(json!({"embeddings": [[1.0]]})),
        RequestError::MissingField { .. }
    ));
    for field in ["metadatas", "embeddings", "documents", "uris"] {
        let body = json!({"ids": ["a", "b"], field: [null]});
        assert!(
            matches!(err(body), RequestError::LengthMismatch { .. }),
            "{field}"
        );
    }
    assert!(matches!(
        err(json!({"ids": ["a"], "metadatas": [["x"]]})),
        RequestError::InvalidField { .. }
    ));
    assert!(matches!(
        err(json!({"ids": ["a"], "metadatas": {"dept": "eng"}})),
        RequestError::InvalidField { .. }
    ));
    assert!(matches!(
        err(json!({"ids": ["a"], "documents": [1]})),
        RequestError::InvalidField { .. }
    ));
    assert!(matches!(
        err(json!({"ids": ["a"], "Metadatas": [{"dept": "hr"}]})),
        RequestError::UnknownField { .. }
    ));
    assert!(matches!(err(json!(null)), RequestError::NotAnObject));
    assert!(matches!(
        parse_write(Operation::Get, &json!({"ids": ["a"]})),
        Err(RequestError::WrongOperation { .. })
    ));
}

#[test]
fn set_write_metadatas_replaces_only_metadatas() {
    let mut body =
        json!({"ids": ["a", "b"], "embeddings": [[1.0], [2.0]], "documents": ["x", "y"]});
    let metas = vec![Some(obj(json!({"owner": "alice"}))), None];
    set_write_metadatas(&mut body, &metas).unwrap();
    assert_eq!(
        body,
        json!({"ids": ["a", "b"], "embeddings": [[1.0], [2.0]], "documents": ["x", "y"],
               "metadatas": [{"owner": "alice"}, null]})
    );
    assert!(matches!(
        set_write_metadatas(&mut body, &metas[..1]),
        Err(RequestError::LengthMismatch { .. })
    ));
    assert!(matches!(
        set_write_metadatas(&mut json!({"metadatas": []}), &[]),
        Err(RequestError::MissingField { .. })
    ));
}

#[test]
fn merged_metadata_rules() {
    let existing = obj(json!({"a": 1, "b": 2}));
    let m = |op, written: Value| {
        let written = (!written.is_null()).then(|| obj(written));
        merged_metadata(op, Some(&existing), written.as_ref()).map(Value::Object)
    };
    for op in [Operation::Upsert, Operation::Update] {
        assert_eq!(
            m(op, json!({"b": 3, "c": 4})),
            Some(json!({"a": 1, "b": 3, "c": 4}))
        );
        assert_eq!(m(op, json!({"a": null})), Some(json!({"b": 2})));
        assert_eq!(m(op, json!({"a": null, "b": null})), None);
        assert_eq!(m(op, Value::Null), Some(json!({"a": 1, "b": 2})));
        assert_eq!(m(op, json!({})), Some(json!({"a": 1, "b": 2})));
    }
    assert_eq!(m(Operation::Add, json!({"c": 4})), Some(json!({"c": 4})));
    assert_eq!(
        merged_metadata(
            Operation::Update,
            None,
            Some(&obj(json!({"a": null, "c": 5})))
        ),
        Some(obj(json!({"c": 5})))
    );
}

// ---- responses -------------------------------------------------------------------------

fn get_response() -> Value {
    json!({
        "ids": ["a", "b", "c"],
        "embeddings": [[1.0], [2.0], [3.0]],
        "documents": ["da", null, "dc"],
        "uris": null,
        "metadatas": [{"dept": "eng"}, {"dept": "hr"}, null],
        "include": ["embeddings", "documents", "metadatas"],
    })
}

fn eng_only(_: &str, m: Option<&Map<String, Value>>) -> bool {
    m.is_some_and(|m| m.get("dept") == Some(&json!("eng")))
}

#[test]
fn get_response_rows_are_removed_from_every_array() {
    let mut resp = get_response();
    let removed = filter_get_response(&mut resp, &mut eng_only, Trim::default()).unwrap();
    assert_eq!(removed, 2);
    assert_eq!(
        resp,
        json!({"ids": ["a"], "embeddings": [[1.0]], "documents": ["da"], "uris": null,
               "metadatas": [{"dept": "eng"}],
               "include": ["embeddings", "documents", "metadatas"]})
    );

    let mut resp = get_response();
    let mut seen = Vec::new();
    let mut by_id = |id: &str, _: Option<&Map<String, Value>>| {
        seen.push(id.to_string());
        id != "b"
    };
    assert_eq!(filter_get_response(&mut resp, &mut by_id, DROP).unwrap(), 1);
    assert_eq!(seen, ["a", "b", "c"]);
    assert_eq!(
        resp,
        json!({"ids": ["a", "c"], "embeddings": [[1.0], [3.0]], "documents": ["da", "dc"],
               "uris": null, "metadatas": null, "include": ["embeddings", "documents"]})
    );

    // An unknown array of the same length is filtered too.
    let mut resp = get_response();
    resp["scores"] = json!([1, 2, 3]);
    filter_get_response(&mut resp, &mut eng_only, Trim::default()).unwrap();
    assert_eq!(resp["scores"], json!([1]));
}

#[test]
fn get_responses_not_understood_are_errors() {
    let mutations: Vec<fn(&mut Value)> = vec![
        |r| r["ids"] = json!(null),
        |r| r["ids"] = json!([1, 2, 3]),
        |r| {
            r.as_object_mut().unwrap().remove("ids");
        },
        |r| r["documents"] = json!(["only one"]),
        |r| r["metadatas"] = json!([{}, {}, "x"]),
        |r| r["metadatas"] = json!({"dept": "eng"}),
        |r| r["other"] = json!([1]),
        |r| r["other"] = json!(5),
        |r| r["include"] = json!(null),
        |r| *r = json!([]),
    ];
    for mutate in mutations {
        let mut resp = get_response();
        mutate(&mut resp);
        let err = filter_get_response(
            &mut resp,
            &mut |_: &str, _: Option<&Map<String, Value>>| true,
            DROP,
        );
        assert!(matches!(err, Err(ResponseError::Shape { .. })), "{resp}");
    }
}

#[test]
fn get_rows_lists_ids_with_metadata() {
    assert_eq!(
        get_rows(&get_response()).unwrap(),
        vec![
            ("a".to_string(), Some(obj(json!({"dept": "eng"})))),
            ("b".to_string(), Some(obj(json!({"dept": "hr"})))),
            ("c".to_string(), None),
        ]
    );
    let ids_only = json!({"ids": ["x"], "metadatas": null, "include": []});
    assert_eq!(get_rows(&ids_only).unwrap(), vec![("x".to_string(), None)]);
    assert!(get_rows(&json!({"ids": ["x"], "metadatas": []})).is_err());
}

#[test]
fn query_response_inner_lists_stay_aligned() {
    let mut resp = json!({
        "ids": [["a", "b"], ["b", "c", "a"]],
        "embeddings": null,
        "documents": [["da", "db"], ["db", "dc", "da"]],
        "uris": null,
        "metadatas": [[{"dept": "eng"}, {"dept": "hr"}], [{"dept": "hr"}, {"dept": "eng"}, {"dept": "eng"}]],
        "distances": [[0.1, 0.2], [0.3, 0.4, 0.5]],
        "include": ["documents", "metadatas", "distances"],
    });
    let removed = filter_query_response(&mut resp, &mut eng_only, DROP).unwrap();
    assert_eq!(removed, 2);
    assert_eq!(
        resp,
        json!({
            "ids": [["a"], ["c", "a"]],
            "embeddings": null,
            "documents": [["da"], ["dc", "da"]],
            "uris": null,
            "metadatas": null,
            "distances": [[0.1], [0.4, 0.5]],
            "include": ["documents", "distances"],
        })
    );
    let mut bad = json!({"ids": [["a"]], "distances": [[0.1, 0.2]], "include": []});
    assert!(filter_query_response(&mut bad, &mut eng_only, Trim::default()).is_err());
    let mut bad = json!({"ids": ["a"], "include": []});
    assert!(filter_query_response(&mut bad, &mut eng_only, Trim::default()).is_err());
    let mut bad = json!({"ids": [["a"]], "distances": [0.1], "include": []});
    assert!(filter_query_response(&mut bad, &mut eng_only, Trim::default()).is_err());
}

#[test]
fn search_response_is_filtered_per_search() {
    let mut resp = json!({
        "ids": [["a", "b"], ["c"]],
        "documents": [["da", "db"], null],
        "embeddings": [null, null],
        "metadatas": [[{"dept": "eng"}, {"dept": "hr"}], [{"dept": "hr"}]],
        "scores": [[0.9, 0.8], [0.7]],
        "select": [["#document", "#score", "#metadata"], ["#metadata"]],
    });
    let removed = filter_search_response(&mut resp, &mut eng_only, DROP).unwrap();
    assert_eq!(removed, 2);
    assert_eq!(
        resp,
        json!({
            "ids": [["a"], []],
            "documents": [["da"], null],
            "embeddings": [null, null],
            "metadatas": [null, null],
            "scores": [[0.9], []],
            "select": [["#document", "#score"], []],
        })
    );
    let mut unknown = json!({"ids": [], "documents": [], "embeddings": [], "metadatas": [],
                             "scores": [], "select": [], "groups": []});
    assert!(filter_search_response(&mut unknown, &mut eng_only, Trim::default()).is_err());
    let mut missing = json!({"ids": [], "documents": [], "embeddings": [], "metadatas": []});
    assert!(filter_search_response(&mut missing, &mut eng_only, Trim::default()).is_err());
}

// ---- against the real server -----------------------------------------------------------

/// Records `r0`…`r7`: embedding `[i, 0]`, document `doc-rI`, metadata naming the id, with
/// dept eng / hr alternating (r6 has no dept, r7 no metadata).
fn seed(chroma: &ChromaServer, name: &str) -> String {
    let col = chroma.create_collection(name);
    let n = 8;
    let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let metadatas: Vec<Value> = (0..n)
        .map(|i| match i {
            6 => json!({"id": "r6", "level": 6}),
            7 => Value::Null,
            _ => json!({"id": format!("r{i}"), "level": i, "dept": if i % 2 == 0 { "eng" } else { "hr" }}),
        })
        .collect();
    let body = json!({
        "ids": ids,
        "embeddings": (0..n).map(|i| vec![i as f32, 0.0]).collect::<Vec<_>>(),
        "documents": ids.iter().map(|id| format!("doc-{id}")).collect::<Vec<_>>(),
        "metadatas": metadatas,
    });
    chroma
        .post_json(
            &format!("{}/add", ChromaServer::collection_path(&col)),
            &body,
        )
        .unwrap();
    col
}

fn post(chroma: &ChromaServer, col: &str, action: &str, body: &Value) -> Value {
    let path = format!("{}/{action}", ChromaServer::collection_path(col));
    chroma
        .post_json(&path, body)
        .unwrap_or_else(|e| panic!("POST {action} {body}: {e:?}"))
}

fn sorted_ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn rewritten_bodies_return_ids_intersected_with_the_acl_on_chroma() {
    let chroma = ChromaServer::start();
    let col = seed(&chroma, "rewrite-reads");
    let eng = ["r0", "r2", "r4"];

    // get: empty body, ids only, user where, ids + where, caller-forced include.
    let cases = [
        (json!({}), strings(&eng)),
        (json!({"ids": ["r0", "r1", "r7"]}), strings(&["r0"])),
        (json!({"ids": []}), vec![]),
        (
            json!({"where": {"level": {"$gte": 2}}}),
            strings(&["r2", "r4"]),
        ),
        (
            json!({"ids": ["r1", "r2", "r4"], "where": {"level": {"$lt": 4}}, "include": []}),
            strings(&["r2"]),
        ),
        (
            json!({"where": null, "where_document": {"$contains": "r4"}}),
            strings(&["r4"]),
        ),
    ];
    for (body, want) in cases {
        let (rewritten, _) = rewrite(Operation::Get, body.clone(), true).unwrap();
        let resp = post(&chroma, &col, "get", &rewritten);
        assert_eq!(sorted_ids(&resp["ids"]), want, "get {body}");
    }

    // query: the acl restricts the candidates before n_results.
    let body = json!({"query_embeddings": [[1.0, 0.0]], "n_results": 2, "include": []});
    let (rewritten, _) = rewrite(Operation::Query, body, false).unwrap();
    let resp = post(&chroma, &col, "query", &rewritten);
    assert_eq!(resp["ids"], json!([["r0", "r2"]]));
    let body = json!({"query_embeddings": [[7.0, 0.0]], "n_results": 8, "ids": ["r1", "r4", "r6"]});
    let (rewritten, _) = rewrite(Operation::Query, body, true).unwrap();
    let resp = post(&chroma, &col, "query", &rewritten);
    assert_eq!(resp["ids"], json!([["r4"]]));

    // count: the filtered get lists exactly the acl's records.
    let resp = post(&chroma, &col, "get", &count_as_get(Some(&acl())));
    assert_eq!(sorted_ids(&resp["ids"]), strings(&eng));

    // delete: ids outside the acl survive; `ids: []` deletes nothing.
    for body in [
        json!({"ids": []}),
        json!({"ids": ["r1", "r2", "r7"]}),
        json!({"where": {"level": {"$gte": 4}}}),
    ] {
        let (rewritten, _) = rewrite(Operation::Delete, body, false).unwrap();
        post(&chroma, &col, "delete", &rewritten);
    }
    let left = chroma.get_ids(&col, None).unwrap();
    assert_eq!(left, strings(&["r0", "r1", "r3", "r5", "r6", "r7"]));
}

#[test]
fn trimmed_responses_equal_direct_ones_on_chroma() {
    let chroma = ChromaServer::start();
    let col = seed(&chroma, "rewrite-trim");
    let keep_all = &mut |_: &str, _: Option<&Map<String, Value>>| true;
    let get_bodies = [
        json!({}),
        json!({"include": []}),
        json!({"include": ["documents"]}),
        json!({"include": ["embeddings", "uris", "documents"], "limit": 3, "offset": 1}),
        json!({"include": ["metadatas", "documents"]}),
        json!({"ids": ["r0", "r3"], "include": ["distances"]}),
    ];
    for body in get_bodies {
        // Direct: the acl pushed down, nothing forced.
        let (plain, _) = rewrite(Operation::Get, body.clone(), false).unwrap();
        let direct = post(&chroma, &col, "get", &plain);
        // Proxied: metadatas forced, then trimmed.
        let (forced, trim) = rewrite(Operation::Get, body.clone(), true).unwrap();
        let mut proxied = post(&chroma, &col, "get", &forced);
        filter_get_response(&mut proxied, keep_all, trim).unwrap();
        assert_eq!(proxied, direct, "get {body}");

        // Post-filter only (no pushdown): the same rows as the pushed-down acl.
        if body.get("limit").is_none() {
            let (unfiltered, trim) =
                rewrite_filtered(Operation::Get, body.clone(), None, true).unwrap();
            let mut post_filtered = post(&chroma, &col, "get", &unfiltered);
            filter_get_response(&mut post_filtered, &mut eng_only, trim).unwrap();
            assert_eq!(post_filtered, direct, "post-filtered get {body}");
        }
    }
    let query_bodies = [
        json!({"query_embeddings": [[2.5, 0.0], [0.0, 0.0]], "n_results": 3}),
        json!({"query_embeddings": [[2.5, 0.0]], "n_results": 2, "include": ["distances"]}),
        json!({"query_embeddings": [[2.5, 0.0]], "n_results": 2, "include": ["embeddings", "documents"]}),
        json!({"query_embeddings": [[1.0, 0.0]], "n_results": 8, "include": []}),
    ];
    for body in query_bodies {
        let (plain, _) = rewrite(Operation::Query, body.clone(), false).unwrap();
        let direct = post(&chroma, &col, "query", &plain);
        let (forced, trim) = rewrite(Operation::Query, body.clone(), true).unwrap();
        let mut proxied = post(&chroma, &col, "query", &forced);
        filter_query_response(&mut proxied, keep_all, trim).unwrap();
        assert_eq!(proxied, direct, "query {body}");
    }
}

#[test]
fn filtered_query_responses_stay_aligned_on_chroma() {
    let chroma = ChromaServer::start();
    let col = seed(&chroma, "rewrite-align");
    let body = json!({
        "query_embeddings": [[3.2, 0.0], [0.0, 0.0]],
        "n_results": 8,
        "include": ["documents", "metadatas", "distances", "embeddings"],
    });
    let mut resp = post(&chroma, &col, "query", &body);
    let mut keep = |id: &str, m: Option<&Map<String, Value>>| {
        // Drops every other record by metadata, and r7 (no metadata) by id.
        id != "r7"
            && m.is_some_and(|m| m.get("level").and_then(Value::as_i64).unwrap_or(0) % 3 != 1)
    };
    let removed = filter_query_response(&mut resp, &mut keep, Trim::default()).unwrap();
    assert!(removed > 0);
    for (q, query) in [[3.2f64, 0.0], [0.0, 0.0]].iter().enumerate() {
        let ids: Vec<&str> = resp["ids"][q]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            !ids.is_empty() && !ids.contains(&"r7") && !ids.contains(&"r1") && !ids.contains(&"r4")
        );
        let mut last = f64::NEG_INFINITY;
        for (i, id) in ids.iter().enumerate() {
            let n: f64 = id[1..].parse().unwrap();
            assert_eq!(resp["documents"][q][i], json!(format!("doc-{id}")));
            assert_eq!(resp["metadatas"][q][i]["id"], json!(id));
            assert_eq!(resp["embeddings"][q][i], json!([n, 0.0]));
            let distance = resp["distances"][q][i].as_f64().unwrap();
            let expected = (n - query[0]).powi(2) + query[1].powi(2);
            assert!(
                (distance - expected).abs() < 1e-3,
                "{id}: {distance} vs {expected}"
            );
            assert!(distance >= last);
            last = distance;
        }
    }
}

#[test]
fn merged_metadata_equals_what_chroma_stores() {
    let chroma = ChromaServer::start();
    let col = chroma.create_collection("rewrite-merge");
    let path = |action: &str| format!("{}/{action}", ChromaServer::collection_path(&col));
    let existing = json!({"a": 1, "b": "two", "tags": ["x"]});
    // (op, existing metadata or null for none, written: Some(entry) or None for no `metadatas`)
    let cases: Vec<(Operation, Value, Option<Value>)> = vec![
        (Operation::Upsert, existing.clone(), Some(json!({"c": 3}))),
        (Operation::Update, existing.clone(), Some(json!({"c": 3}))),
        (
            Operation::Upsert,
            existing.clone(),
            Some(json!({"a": 9, "tags": ["y", "z"]})),
        ),
        (
            Operation::Update,
            existing.clone(),
            Some(json!({"b": "zwei", "a": 1.5})),
        ),
        (
            Operation::Update,
            existing.clone(),
            Some(json!({"a": null, "c": true})),
        ),
        (
            Operation::Upsert,
            existing.clone(),
            Some(json!({"a": null, "c": true})),
        ),
        (
            Operation::Update,
            existing.clone(),
            Some(json!({"a": null, "b": null, "tags": null})),
        ),
        (Operation::Upsert, existing.clone(), Some(Value::Null)),
        (Operation::Update, existing.clone(), Some(Value::Null)),
        (Operation::Upsert, existing.clone(), None),
        (Operation::Update, existing.clone(), None),
        (Operation::Upsert, existing.clone(), Some(json!({}))),
        (Operation::Update, existing.clone(), Some(json!({}))),
        (
            Operation::Update,
            Value::Null,
            Some(json!({"a": 1, "b": null})),
        ),
        (Operation::Upsert, Value::Null, Some(Value::Null)),
        // No existing record.
        (
            Operation::Upsert,
            json!("absent"),
            Some(json!({"a": 1, "b": null})),
        ),
        (Operation::Upsert, json!("absent"), Some(json!({}))),
        (Operation::Add, json!("absent"), Some(json!({"a": 1}))),
        (Operation::Add, json!("absent"), Some(Value::Null)),
    ];
    for (i, (op, before, written)) in cases.into_iter().enumerate() {
        let id = format!("m{i}");
        let exists = before != json!("absent");
        if exists {
            let add = json!({"ids": [id], "embeddings": [[1.0, 0.0]], "metadatas": [before]});
            chroma.post_json(&path("add"), &add).unwrap();
        }
        let mut body = json!({"ids": [id], "embeddings": [[2.0, 0.0]]});
        if let Some(entry) = &written {
            body["metadatas"] = json!([entry]);
        }
        let action = match op {
            Operation::Add => "add",
            Operation::Upsert => "upsert",
            _ => "update",
        };
        // Sent as the caller wrote it: a missing `metadatas` stays missing.
        let batch = parse_write(op, &body).unwrap();
        chroma
            .post_json(&path(action), &body)
            .unwrap_or_else(|e| panic!("{action} {body}: {e:?}"));

        let stored = chroma
            .post_json(
                &path("get"),
                &json!({"ids": [id], "include": ["metadatas"]}),
            )
            .unwrap();
        let rows = get_rows(&stored).unwrap();
        assert_eq!(rows.len(), 1, "case {i}");
        let existing_map = before.as_object();
        let predicted = merged_metadata(op, existing_map, batch.metadatas[0].as_ref());
        assert_eq!(
            rows[0].1, predicted,
            "case {i}: {action} {written:?} over {before}"
        );
    }
}
