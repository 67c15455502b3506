//! Random records and principals, and the reference decision for them: shared by the
//! differential test (`tests/differential_chroma.rs`) and the soak (`bench/soak.rs`).
//!
//! Records carry department and region (always: vecgate's test configs declare them
//! required) and, most of the time, owner, level and tags. Principals carry the claims the
//! test policies read. The reference is `Planner::check`, the full evaluation of one record.

use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use vecgate::plan::Value;
use vecgate::policy::planner::{PlanRequest, Planner, Principal};

pub const DEPARTMENTS: [&str; 3] = ["finance", "hr", "eng"];
pub const REGIONS: [&str; 3] = ["EMEA", "AMER", "APAC"];
pub const OWNERS: [&str; 4] = ["u1", "u2", "u3", "u4"];
pub const TAGS: [&str; 3] = ["a", "b", "c"];

/// A small deterministic generator (xorshift64*), so runs replay from a seed.
pub struct Rng(pub u64);

impl Rng {
    /// A generator for `seed` (any value; zero is avoided internally).
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(2).wrapping_add(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Metadata for one record; department and region always, the other keys usually.
pub fn random_record(rng: &mut Rng) -> Map<String, Json> {
    let mut m = Map::new();
    // Required: every write through vecgate guarantees these.
    m.insert("department".into(), json!(rng.pick(&DEPARTMENTS)));
    m.insert("region".into(), json!(rng.pick(&REGIONS)));
    if rng.chance(85) {
        m.insert("owner".into(), json!(rng.pick(&OWNERS)));
    }
    if rng.chance(85) {
        m.insert("level".into(), json!(1 + rng.below(5)));
    }
    if rng.chance(80) {
        let tags: Vec<&str> = TAGS.iter().copied().filter(|_| rng.chance(40)).collect();
        if !tags.is_empty() {
            m.insert("tags".into(), json!(tags));
        }
    }
    m
}

/// A principal: subject, roles and the extra claims (department, region, clearance, tag,
/// regions) that go into its token.
pub fn random_claims(rng: &mut Rng) -> (String, Vec<&'static str>, Json) {
    let sub = rng.pick(&OWNERS).to_string();
    let roles = if rng.chance(30) { vec!["user", "manager"] } else { vec!["user"] };
    let mut regions: Vec<&str> = REGIONS.iter().copied().filter(|_| rng.chance(40)).collect();
    regions.dedup();
    let claims = json!({
        "department": rng.pick(&DEPARTMENTS),
        "region": rng.pick(&REGIONS),
        "clearance": 1 + rng.below(5),
        "tag": rng.pick(&TAGS),
        "regions": regions,
    });
    (sub, roles, claims)
}

/// The principal vecgate derives from a token with these claims. The test configs map every
/// claim to an attribute, so `sub` and `roles` are attributes too.
pub fn principal(sub: &str, roles: &[&str], claims: &Json) -> Principal {
    let mut all_claims = claims.as_object().expect("claims are an object").clone();
    all_claims.insert("sub".into(), json!(sub));
    all_claims.insert("roles".into(), json!(roles));
    let attr: BTreeMap<String, Value> =
        all_claims.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect();
    Principal {
        id: sub.to_string(),
        roles: roles.iter().map(|r| (*r).to_string()).collect(),
        attr,
        ..Principal::default()
    }
}

/// Whether the policies allow `action` on one `document` record, evaluating it in full.
pub fn allows(planner: &Planner, principal: &Principal, action: &str, id: &str, meta: &Map<String, Json>) -> bool {
    let resource_attr: BTreeMap<String, Value> =
        meta.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect();
    let jwt = BTreeMap::new();
    let actions = [action.to_string()];
    planner.check(&PlanRequest {
        principal,
        resource_kind: "document",
        resource_scope: "",
        resource_version: "",
        resource_attr: &resource_attr,
        resource_id: Some(id),
        attr_complete: true,
        actions: &actions,
        jwt: &jwt,
        now: chrono::Utc::now().fixed_offset(),
    })
}

/// What the policy engine lets this principal read, record by record.
pub fn reference_ids(
    planner: &Planner,
    sub: &str,
    roles: &[&str],
    claims: &Json,
    records: &[(String, Map<String, Json>)],
) -> BTreeSet<String> {
    let principal = principal(sub, roles, claims);
    records
        .iter()
        .filter(|(id, meta)| allows(planner, &principal, "read", id, meta))
        .map(|(id, _)| id.clone())
        .collect()
}

/// The ids of a Chroma get or query answer (a query's per-embedding lists flattened).
pub fn ids_of(v: &Json) -> BTreeSet<String> {
    v["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids in {v}"))
        .iter()
        .flat_map(|i| match i {
            Json::Array(inner) => inner.clone(),
            other => vec![other.clone()],
        })
        .map(|i| i.as_str().expect("string ids").to_string())
        .collect()
}

/// The Chroma `where` the principal's `read` plan becomes (what vecgate ANDs into its reads),
/// for a collection whose records all carry `required_attrs`. `Ok(None)`: no filter, the plan
/// allows everything; `Err`: the plan is always denied or cannot be translated.
pub fn chroma_read_filter(
    planner: &Planner,
    principal: &Principal,
    required_attrs: &[&str],
) -> Result<Option<Json>, String> {
    use vecgate::backends::{chroma, FieldMapping};
    use vecgate::plan::Plan;
    let empty = BTreeMap::new();
    let actions = ["read".to_string()];
    let plan = planner
        .plan(&PlanRequest {
            principal,
            resource_kind: "document",
            resource_scope: "",
            resource_version: "",
            resource_attr: &empty,
            resource_id: None,
            attr_complete: false,
            actions: &actions,
            jwt: &empty,
            now: chrono::Utc::now().fixed_offset(),
        })
        .plan;
    let mapping = FieldMapping::new("", required_attrs.iter().copied());
    match &plan {
        Plan::AlwaysAllowed => Ok(None),
        Plan::AlwaysDenied => Err("always denied".into()),
        Plan::Conditional(e) => chroma::filter::translate(e, &mapping, 500).map(Some).map_err(|e| e.to_string()),
    }
}
