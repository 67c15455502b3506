//! What a planning (or checking) request can see: the principal, the known part of the
//! resource, the JWT claims, globals and the clock. Resource attributes not given are unknown
//! (they stay in the plan); with `attr_complete`, a missing attribute is an error, as in a check.
//! For `who-can` the roles are reversed: [`PlanEnv::with_unknown_principal`] leaves the
//! principal's roles, attributes and JWT claims (and its id unless told) unknown, so they stay
//! in the plan, while the resource is known.

use super::request::{PlanRequest, PlannerOptions};
use crate::plan::eval::{walk, Env, Resolved};
use crate::plan::expr::split_first_segment;
use crate::plan::functions::CallContext;
use crate::plan::value::MapKey;
use crate::plan::{EvalError, Value};
use std::collections::BTreeMap;

/// What a planning request can see: the principal, the known part of the resource, the JWT
/// claims, globals, and the clock.
pub struct PlanEnv {
    principal: Value,
    resource_known: Value,
    resource_attr: BTreeMap<String, Value>,
    aux: Value,
    globals: Value,
    resource_id: Option<Value>,
    attr_complete: bool,
    ctx: CallContext,
    /// The principal's names that stay in the plan.
    principal_unknown: PrincipalUnknown,
}

/// Which of the principal's names are unknown while planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrincipalUnknown {
    /// Everything is known (a check, or a plan for one principal).
    Nothing,
    /// `roles` and `attr` are unknown; `id` is known (a principal policy's principal).
    RolesAndAttributes,
    /// `id`, `roles` and `attr` are unknown.
    IdRolesAndAttributes,
}

impl PlanEnv {
    pub fn new(request: &PlanRequest<'_>, options: &PlannerOptions) -> PlanEnv {
        let p = request.principal;
        let mut pm = BTreeMap::new();
        pm.insert(MapKey::string("id"), Value::string(&p.id));
        pm.insert(
            MapKey::string("roles"),
            Value::list(p.roles.iter().map(|r| Value::string(r)).collect()),
        );
        pm.insert(MapKey::string("attr"), string_map(&p.attr));
        pm.insert(MapKey::string("scope"), Value::string(&p.scope));
        // As the request gave them, like Cerbos: the default version and scope change where
        // policies are found, not what conditions see.
        pm.insert(MapKey::string("policyVersion"), Value::string(&p.policy_version));
        let mut rm = BTreeMap::new();
        rm.insert(MapKey::string("kind"), Value::string(request.resource_kind));
        rm.insert(MapKey::string("scope"), Value::string(request.resource_scope));
        rm.insert(MapKey::string("policyVersion"), Value::string(request.resource_version));
        let mut aux = BTreeMap::new();
        aux.insert(MapKey::string("jwt"), string_map(request.jwt));
        PlanEnv {
            principal: Value::map(pm),
            resource_known: Value::map(rm),
            resource_attr: request.resource_attr.clone(),
            aux: Value::map(aux),
            globals: string_map(&options.globals),
            resource_id: request.resource_id.map(Value::string),
            attr_complete: request.attr_complete,
            ctx: CallContext { now: request.now },
            principal_unknown: PrincipalUnknown::Nothing,
        }
    }

    /// Like [`PlanEnv::new`], but `request.principal.roles` and `request.principal.attr` (and
    /// `request.principal.id` unless `id_known`) are unknown: they stay in the plan. The
    /// request's principal still selects the rules (its roles and id); only what conditions
    /// read of it is left open.
    pub fn with_unknown_principal(
        request: &PlanRequest<'_>,
        options: &PlannerOptions,
        id_known: bool,
    ) -> PlanEnv {
        let mut env = PlanEnv::new(request, options);
        env.principal_unknown = if id_known {
            PrincipalUnknown::RolesAndAttributes
        } else {
            PrincipalUnknown::IdRolesAndAttributes
        };
        env
    }

    fn resolve_principal(&self, path: &str) -> Resolved {
        let (field, _) = split_first_segment(path);
        let unknown = match self.principal_unknown {
            PrincipalUnknown::Nothing => false,
            PrincipalUnknown::RolesAndAttributes => matches!(field, "roles" | "attr" | ""),
            PrincipalUnknown::IdRolesAndAttributes => matches!(field, "id" | "roles" | "attr" | ""),
        };
        if unknown {
            Resolved::Unknown
        } else {
            walk(&self.principal, path)
        }
    }
}

fn string_map(m: &BTreeMap<String, Value>) -> Value {
    Value::map(m.iter().map(|(k, v)| (MapKey::string(k), v.clone())).collect())
}

impl Env for PlanEnv {
    fn resolve(&self, name: &str) -> Resolved {
        let (root, rest) = split_first_segment(name);
        match root {
            "request" => {
                let (second, rest2) = split_first_segment(rest);
                match second {
                    "principal" => self.resolve_principal(rest2),
                    "resource" => self.resolve_resource(rest2),
                    // The claims belong to the principal: unknown with it.
                    "auxData" if self.principal_unknown != PrincipalUnknown::Nothing => Resolved::Unknown,
                    "auxData" => walk(&self.aux, rest2),
                    _ => Resolved::Error(EvalError::NoSuchVariable(name.to_string())),
                }
            }
            "globals" => walk(&self.globals, rest),
            _ => Resolved::Error(EvalError::NoSuchVariable(name.to_string())),
        }
    }

    fn call_context(&self) -> &CallContext {
        &self.ctx
    }
}

impl PlanEnv {
    fn resolve_resource(&self, path: &str) -> Resolved {
        let (field, rest) = split_first_segment(path);
        match field {
            "kind" | "scope" | "policyVersion" => walk(&self.resource_known, path),
            "id" => match &self.resource_id {
                Some(id) => walk(id, rest),
                None => Resolved::Unknown,
            },
            "attr" if rest.is_empty() && self.attr_complete => {
                Resolved::Known(string_map(&self.resource_attr))
            }
            "attr" if !rest.is_empty() => {
                let (attr, deeper) = split_first_segment(rest);
                match self.resource_attr.get(attr) {
                    Some(v) => walk(v, deeper),
                    None if self.attr_complete => {
                        Resolved::Error(EvalError::NoSuchKey(attr.to_string()))
                    }
                    None => Resolved::Unknown,
                }
            }
            "" if self.attr_complete && self.resource_id.is_some() => {
                let mut m = match &self.resource_known {
                    Value::Map(m) => (**m).clone(),
                    _ => BTreeMap::new(),
                };
                m.insert(MapKey::string("attr"), string_map(&self.resource_attr));
                if let Some(id) = &self.resource_id {
                    m.insert(MapKey::string("id"), id.clone());
                }
                Resolved::Known(Value::map(m))
            }
            _ => Resolved::Unknown,
        }
    }
}
