//! Starts the real Chroma server through `tests/support` and replays the measured `where`
//! table of `ref/vectordbs.md` §A.3 against it. The Chroma filter translator relies on these
//! semantics (`$ne`/`$nin`/`$not_contains` admit records lacking the key, `$and: []` is true,
//! `$eq`/`$in` never look inside arrays, …); if the server stops behaving this way, this test
//! says so before any translator test does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use support::ChromaServer;

/// The seven records of the measured table, in this order; record `i` has embedding `[i, 0]`,
/// so a query at `[0, 0]` ranks them in table order.
const IDS: [&str; 7] = [
    "eng", "hr", "nometa", "empty", "lvlfloat", "deptint", "deptarr",
];

fn records() -> Vec<(String, Value, Vec<f32>)> {
    let metadata = [
        json!({"dept": "eng", "level": 3, "score": 0.5, "public": true, "tags": ["a", "b"], "nums": [1, 2]}),
        json!({"dept": "hr", "level": 5, "public": false, "tags": ["b"], "nums": [3]}),
        Value::Null,
        json!({"other": "x"}),
        json!({"dept": "ops", "level": 3.0, "score": 3}),
        json!({"dept": 1, "level": "3"}),
        json!({"dept": ["eng", "hr"], "public": 1}),
    ];
    IDS.iter()
        .zip(metadata)
        .enumerate()
        .map(|(i, (id, meta))| (id.to_string(), meta, vec![i as f32, 0.0]))
        .collect()
}

fn seeded(chroma: &ChromaServer) -> String {
    let col = chroma.create_collection("measured-a3");
    chroma.add(&col, &records());
    col
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn all_except(excluded: &str) -> Vec<&'static str> {
    IDS.iter().copied().filter(|id| *id != excluded).collect()
}

#[test]
fn measured_where_rows_hold_on_the_real_server() {
    let chroma = ChromaServer::start();
    let col = seeded(&chroma);

    let ne_eng = vec!["deptarr", "deptint", "empty", "hr", "lvlfloat", "nometa"];
    let level_3 = vec!["eng", "lvlfloat"];
    let rows: Vec<(Value, Vec<&str>)> = vec![
        (json!({"dept": "eng"}), vec!["eng"]),
        (json!({"dept": {"$eq": "eng"}}), vec!["eng"]),
        (json!({"dept": {"$in": ["eng"]}}), vec!["eng"]),
        (json!({"dept": {"$ne": "eng"}}), ne_eng.clone()),
        (json!({"dept": {"$nin": ["eng"]}}), ne_eng),
        (
            json!({"dept": {"$nin": ["eng", "hr"]}}),
            vec!["deptarr", "deptint", "empty", "lvlfloat", "nometa"],
        ),
        (
            json!({"dept": {"$ne": 1}}),
            vec!["deptarr", "empty", "eng", "hr", "lvlfloat", "nometa"],
        ),
        (json!({"level": 3}), level_3.clone()),
        (json!({"level": 3.0}), level_3.clone()),
        (json!({"level": {"$in": [3.0]}}), level_3.clone()),
        (json!({"level": {"$gt": 2}}), vec!["eng", "hr", "lvlfloat"]),
        (json!({"level": {"$lte": 3.0}}), level_3),
        (
            json!({"level": {"$ne": 3}}),
            vec!["deptarr", "deptint", "empty", "hr", "nometa"],
        ),
        (
            json!({"level": {"$nin": [3]}}),
            vec!["deptarr", "deptint", "empty", "hr", "nometa"],
        ),
        (json!({"public": true}), vec!["eng"]),
        (json!({"public": 1}), vec!["deptarr"]),
        (json!({"public": {"$ne": true}}), all_except("eng")),
        (json!({"tags": {"$contains": "a"}}), vec!["eng"]),
        (json!({"tags": {"$contains": "b"}}), vec!["eng", "hr"]),
        (json!({"nums": {"$contains": 1}}), vec!["eng"]),
        (json!({"tags": {"$not_contains": "a"}}), all_except("eng")),
        (json!({"dept": {"$contains": "eng"}}), vec!["deptarr"]),
        (json!({"tags": "a"}), vec![]),
        (json!({"tags": {"$in": ["a"]}}), vec![]),
        (json!({"tags": {"$ne": "a"}}), IDS.to_vec()),
        (json!({"$and": []}), IDS.to_vec()),
        (json!({"$or": []}), vec![]),
        (json!({"$and": [{"dept": "eng"}]}), vec!["eng"]),
        (json!({"$or": [{"dept": "eng"}]}), vec!["eng"]),
        (
            json!({"$or": [{"$and": []}, {"dept": "eng"}]}),
            IDS.to_vec(),
        ),
        (json!({"#id": {"$in": ["eng"]}}), vec![]),
    ];

    let mut mismatches = Vec::new();
    match chroma.get_ids(&col, None) {
        Ok(ids) if ids == sorted(&IDS) => {}
        other => mismatches.push(format!("no where: expected all 7, got {other:?}")),
    }
    for (where_, expected) in &rows {
        let got = chroma.get_ids(&col, Some(where_));
        if got != Ok(sorted(expected)) {
            mismatches.push(format!(
                "{where_}: expected {:?}, got {got:?}",
                sorted(expected)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "the real Chroma server disagrees with ref/vectordbs.md §A.3 on {} of {} rows:\n{}",
        mismatches.len(),
        rows.len() + 1,
        mismatches.join("\n")
    );
}

#[test]
fn where_clauses_the_grammar_rejects_are_http_400() {
    let chroma = ChromaServer::start();
    let col = seeded(&chroma);

    let refused = [
        json!({}),
        json!({"dept": "eng", "level": 3}),
        json!({"dept": {"$in": []}}),
        json!({"dept": {"$in": ["eng", 1]}}),
        json!({"dept": {"$eq": null}}),
        json!({"dept": {"$gt": "a"}}),
        json!({"dept": {"$regex": "e"}}),
        json!({"dept": {"$exists": true}}),
        json!({"$not": {"dept": "eng"}}),
        json!({"$nor": [{"dept": "eng"}, {"dept": "hr"}]}),
    ];
    let mut mismatches = Vec::new();
    for where_ in &refused {
        match chroma.get_ids(&col, Some(where_)) {
            Err((400, _)) => {}
            other => mismatches.push(format!("{where_}: expected HTTP 400, got {other:?}")),
        }
        match chroma.query_ids(&col, &[0.0, 0.0], 3, Some(where_)) {
            Err((400, _)) => {}
            other => mismatches.push(format!(
                "{where_} (query): expected HTTP 400, got {other:?}"
            )),
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn query_returns_nearest_first_and_applies_where() {
    let chroma = ChromaServer::start();
    let col = seeded(&chroma);

    assert_eq!(
        chroma.query_ids(&col, &[0.0, 0.0], 3, None),
        Ok(vec!["eng".into(), "hr".into(), "nometa".into()])
    );
    // The `$ne` trap, through query: records lacking the key (nometa, empty) come back.
    assert_eq!(
        chroma.query_ids(&col, &[0.0, 0.0], 3, Some(&json!({"dept": {"$ne": "eng"}}))),
        Ok(vec!["hr".into(), "nometa".into(), "empty".into()])
    );
    assert_eq!(
        chroma.query_ids(&col, &[0.0, 0.0], 5, Some(&json!({"$or": []}))),
        Ok(vec![])
    );
    assert_eq!(
        chroma.query_ids(
            &col,
            &[6.0, 0.0],
            10,
            Some(&json!({"tags": {"$contains": "b"}}))
        ),
        Ok(vec!["hr".into(), "eng".into()])
    );
}

#[test]
fn add_splits_batches_larger_than_max_batch_size() {
    let chroma = ChromaServer::start();
    let col = chroma.create_collection("big-batch");
    let n = chroma.max_batch_size() + 7;
    let records: Vec<(String, Value, Vec<f32>)> = (0..n)
        .map(|i| {
            (
                format!("r{i:05}"),
                json!({"i": i as i64}),
                vec![i as f32, 1.0],
            )
        })
        .collect();
    chroma.add(&col, &records);
    let got = chroma.get_ids(&col, None).expect("get all");
    assert_eq!(got.len(), n);
    assert_eq!(
        chroma
            .get_ids(&col, Some(&json!({"i": {"$gte": (n - 3) as i64}})))
            .map(|v| v.len()),
        Ok(3)
    );
}
