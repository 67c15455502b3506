//! Planning the Cerbos RAG example policy (`policies/project.yaml`) for alice: cold (the
//! planner itself, no cache) and cached (through the plan cache, principal fingerprinted once).
//! Run: `cargo bench --bench planning`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use vecgate::plan::Value;
use vecgate::policy::cache::{fingerprint, CachedPlanner};
use vecgate::policy::load::load_dir;
use vecgate::policy::planner::{PlanRequest, Planner, PlannerOptions, Principal};

fn planning(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let set = match load_dir(&dir) {
        Ok(set) => Arc::new(set),
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let mut attr = BTreeMap::new();
    attr.insert("department".to_string(), Value::string("FINANCE"));
    attr.insert("region".to_string(), Value::string("EMEA"));
    let alice = Principal {
        id: "alice".into(),
        roles: vec!["user".into()],
        attr,
        ..Principal::default()
    };
    let empty = BTreeMap::new();
    let actions = vec!["read".to_string()];
    let request = PlanRequest {
        principal: &alice,
        resource_kind: "project",
        resource_scope: "",
        resource_version: "",
        resource_attr: &empty,
        resource_id: None,
        attr_complete: false,
        actions: &actions,
        jwt: &empty,
        now: chrono::Utc::now().fixed_offset(),
    };
    let planner = Planner::new(set.clone(), PlannerOptions::default());
    c.bench_function("plan project/read cold", |b| {
        b.iter(|| black_box(planner.plan(black_box(&request))))
    });
    let cached = CachedPlanner::new(Planner::new(set, PlannerOptions::default()), 1, 10_000);
    let fp = fingerprint(&alice);
    c.bench_function("plan project/read cached", |b| {
        b.iter(|| black_box(cached.plan(black_box(&request), fp)))
    });
}

criterion_group!(benches, planning);
criterion_main!(benches);
