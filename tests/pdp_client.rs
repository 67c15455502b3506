//! The PDP client (`vecgate::policy::pdp`) against the real Cerbos PDP binary, in both modes a
//! PDP can be started in: its checks equal the embedded engine's; its plans, translated,
//! decide as the embedded engine where the PDP's planner is faithful, and never allow a
//! record the PDP's check denies where the difference is only the reading of `not`; plans are
//! cached for their TTL; every failure is a typed error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use support::cerbos::{Mode, Pdp};
use vecgate::plan::eval::{allows, RecordEnv};
use vecgate::plan::functions::CallContext;
use vecgate::plan::{Plan, Value};
use vecgate::policy::evaluation::Evaluation;
use vecgate::policy::load::load_documents;
use vecgate::policy::pdp::{PdpClient, PdpConfig, PdpError};
use vecgate::policy::planner::{PlanRequest, Planner, PlannerOptions, Principal};

fn policies() -> Vec<(String, String)> {
    vec![
        (
            "project.yaml".to_string(),
            std::fs::read_to_string(support::repo_root().join("policies/project.yaml")).unwrap(),
        ),
        (
            "doc.yaml".to_string(),
            "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: doc\n  version: default\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      condition:\n        match:\n          expr: R.attr.owner == P.id || R.attr.public == true\n    - actions: [read]\n      effect: EFFECT_DENY\n      roles: [user]\n      condition:\n        match:\n          expr: R.attr.c == \"secret\"\n    - actions: [path]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      condition:\n        match:\n          expr: R.attr.owner.startsWith(\"a\")\n".to_string(),
        ),
    ]
}

fn principal(id: &str, department: &str, region: &str) -> Principal {
    Principal {
        id: id.into(),
        roles: vec!["user".into()],
        attr: [
            ("department".to_string(), Value::string(department)),
            ("region".to_string(), Value::string(region)),
        ]
        .into_iter()
        .collect(),
        ..Principal::default()
    }
}

fn records() -> Vec<(String, BTreeMap<String, Value>)> {
    let mut out = Vec::new();
    let depts = [json!("FINANCE"), json!("HR"), json!(7)];
    let regions = [json!("EMEA"), json!("AMER")];
    let owners = [json!("alice"), json!("bob"), Json::Null];
    let cs = [json!("secret"), json!("public"), Json::Null];
    let mut i = 0;
    for d in &depts {
        for r in &regions {
            for o in &owners {
                for c in &cs {
                    let mut attr = BTreeMap::new();
                    attr.insert("department".to_string(), Value::from_json(d));
                    attr.insert("region".to_string(), Value::from_json(r));
                    if !o.is_null() {
                        attr.insert("owner".to_string(), Value::from_json(o));
                    }
                    if !c.is_null() {
                        attr.insert("c".to_string(), Value::from_json(c));
                    }
                    if i % 3 == 0 {
                        attr.insert("public".to_string(), Value::Bool(true));
                    }
                    out.push((format!("rec{i}"), attr));
                    i += 1;
                }
            }
        }
    }
    out
}

fn client(pdp: &Pdp, ttl: Duration) -> PdpClient {
    PdpClient::new(&PdpConfig {
        url: format!("http://127.0.0.1:{}", pdp.port),
        timeout: Duration::from_secs(5),
        plan_cache_ttl: ttl,
        ca_file: None,
        send_token: false,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_and_plans_equal_the_embedded_engine_in_both_pdp_modes() {
    let files = policies();
    let now = chrono::Utc::now().fixed_offset();
    let no_jwt = BTreeMap::new();
    let recs = records();
    for strict in [false, true] {
        let pdp = Pdp::start(Mode { strict, lenient: false }, &json!({}));
        pdp.load(&files);
        let client = client(&pdp, Duration::from_secs(30));
        let planner = Planner::new(
            Arc::new(load_documents(&files).unwrap()),
            PlannerOptions {
                evaluation: if strict { Evaluation::CerbosStrict } else { Evaluation::Cerbos },
                ..PlannerOptions::default()
            },
        );
        for p in [principal("alice", "FINANCE", "EMEA"), principal("bob", "HR", "AMER")] {
            for (kind, action) in [("project", "read"), ("doc", "read"), ("doc", "path")] {
                let resources: Vec<(&str, &BTreeMap<String, Value>)> =
                    recs.iter().map(|(id, a)| (id.as_str(), a)).collect();
                let remote = client.check(&p, None, kind, action, &resources).await.unwrap();
                let actions = [action.to_string()];
                let plan = client.plan(&p, None, kind, action).await.unwrap();
                for ((id, attr), remote_allows) in recs.iter().zip(&remote) {
                    let embedded = planner.check(&PlanRequest {
                        principal: &p,
                        resource_kind: kind,
                        resource_scope: "",
                        resource_version: "",
                        resource_attr: attr,
                        resource_id: Some(id),
                        attr_complete: true,
                        actions: &actions,
                        jwt: &no_jwt,
                        now,
                    });
                    assert_eq!(
                        *remote_allows, embedded,
                        "strict={strict} {} {kind}/{action} on {id} {attr:?}",
                        p.id
                    );
                    let record = RecordEnv::new(
                        Value::string(id),
                        kind,
                        Value::map(attr.iter().map(|(k, v)| (vecgate::plan::value::MapKey::string(k), v.clone())).collect()),
                        CallContext { now },
                    );
                    let by_plan = allows(&plan, &record);
                    // The PDP's `not(R.attr.c == "secret")` is read as CEL's `!`: a record
                    // without `c` is withheld although the default check allows it. Never the
                    // other way round.
                    let not_reading = !strict && kind == "doc" && action == "read" && !attr.contains_key("c");
                    if not_reading {
                        assert!(!by_plan || embedded, "{id}: the PDP's plan allows what the check denies");
                    } else {
                        assert_eq!(by_plan, embedded, "strict={strict} {} {kind}/{action} plan {plan:?} on {id} {attr:?}", p.id);
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_are_cached_for_their_ttl_and_failures_are_typed() {
    let pdp = Pdp::start(Mode { strict: false, lenient: false }, &json!({}));
    pdp.load(&policies());
    let port = pdp.port;
    let cached = client(&pdp, Duration::from_millis(400));
    let uncached = client(&pdp, Duration::ZERO);
    let alice = principal("alice", "FINANCE", "EMEA");
    let first = cached.plan(&alice, None, "project", "read").await.unwrap();
    assert!(matches!(*first, Plan::Conditional(_)));

    // A plan the PDP writes with a function vecgate does not implement is refused.
    let files = vec![(
        "paths.yaml".to_string(),
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: file\n  version: default\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      condition:\n        match:\n          expr: basePath(R.attr.path) == \"x\"\n".to_string(),
    )];
    let mut all = policies();
    all.extend(files);
    pdp.load(&all);
    assert!(matches!(
        uncached.plan(&alice, None, "file", "read").await,
        Err(PdpError::Untranslatable(_))
    ));
    // The PDP refuses a principal without roles: an answer that cannot be used.
    let nobody = Principal { id: "n".into(), ..Principal::default() };
    assert!(matches!(
        uncached.plan(&nobody, None, "project", "read").await,
        Err(PdpError::BadAnswer(_))
    ));

    // Within the TTL the cached plan is answered without the PDP; after it, the PDP is asked.
    drop(pdp);
    let again = cached.plan(&alice, None, "project", "read").await.unwrap();
    assert_eq!(again, first);
    assert!(matches!(
        cached.plan(&alice, None, "project", "update").await,
        Err(PdpError::Unreachable { .. })
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(matches!(
        cached.plan(&alice, None, "project", "read").await,
        Err(PdpError::Unreachable { .. })
    ));
    let attr = BTreeMap::new();
    assert!(matches!(
        uncached.check(&alice, None, "project", "read", &[("x", &attr)]).await,
        Err(PdpError::Unreachable { .. })
    ));
    let _ = port;

    // A server that accepts and never answers: a timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let slow = PdpClient::new(&PdpConfig {
        url: format!("http://127.0.0.1:{silent_port}"),
        timeout: Duration::from_millis(300),
        plan_cache_ttl: Duration::ZERO,
        ca_file: None,
        send_token: false,
    })
    .unwrap();
    assert_eq!(
        slow.plan(&alice, None, "project", "read").await,
        Err(PdpError::Timeout(Duration::from_millis(300)))
    );
    hold.abort();

    assert!(matches!(
        PdpClient::new(&PdpConfig {
            url: "ftp://x".into(),
            timeout: Duration::from_secs(1),
            plan_cache_ttl: Duration::ZERO,
            ca_file: None,
            send_token: false,
        }),
        Err(PdpError::Config(_))
    ));
}
