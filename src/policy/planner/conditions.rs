//! A rule's `match` tree, partially evaluated into a plan node, read the way each evaluation
//! mode reads it ([`Reading`]). Plan-time errors (a missing principal attribute, a type
//! mismatch among known values) are folded so that the node keeps exactly the record set the
//! reading needs, or kept as the error constant where the mode needs the error itself.

use crate::plan::eval::{Evaluator, Partial, Polarity};
use crate::plan::{Expr, Op, Value};
use crate::policy::definitions::inline_definitions;
use crate::policy::env::PlanEnv;
use crate::policy::model::{Condition, Definitions};
use crate::policy::request::PlannerOptions;

/// How a condition is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reading {
    /// Cerbos' default: "is it met", where an expression that errors is not met. The node
    /// never errors.
    Met,
    /// Its three-valued value (CEL's `&&`, `||` and `!` between items, a non-boolean result
    /// false), with plan-time errors folded so that the set `Polarity` asks for is kept
    /// (`Positive`: where it is true; `Negative`: where it is false).
    Value(Polarity),
    /// Cerbos' strict evaluation: three-valued, in Cerbos' order (`all` stops at the first
    /// item that is not met, `any` and `none` at the first that is), plan-time errors kept.
    Ordered,
    /// Cerbos' planner: errors fold to false, nothing wraps the residual.
    CerbosPlanner,
}

/// Functions whose result is a boolean (or an error): a condition that is one of these needs
/// no `== true` to read a non-boolean result as false.
const BOOLEAN_FUNCTIONS: &[&str] = &[
    "startsWith",
    "endsWith",
    "contains",
    "matches",
    "hasIntersection",
    "has_intersection",
    "isSubset",
    "is_subset",
    "inIPAddrRange",
    "ancestorOf",
    "descendentOf",
    "immediateChildOf",
    "immediateParentOf",
    "siblingOf",
    "overlaps",
    "pathHasPrefix",
    "pathMatch",
    "pathMatchAnyOf",
    "isIP",
    "isCIDR",
];

/// Evaluates conditions for one request.
pub(super) struct Conditions<'a> {
    pub options: &'a PlannerOptions,
    pub env: &'a PlanEnv,
}

impl Conditions<'_> {
    /// The node of `condition` (none: always met) read as `reading`.
    pub fn node(
        &self,
        condition: Option<&Condition>,
        defs: &Definitions,
        derived_list: &Expr,
        reading: Reading,
    ) -> Expr {
        match condition {
            None => Expr::bool(true),
            Some(c) => self.tree(c, defs, derived_list, reading),
        }
    }

    fn tree(&self, c: &Condition, defs: &Definitions, dl: &Expr, reading: Reading) -> Expr {
        match c {
            Condition::Expr { expr, .. } => self.leaf(expr, defs, dl, reading),
            Condition::All(items) | Condition::Any(items) => {
                let is_any = matches!(c, Condition::Any(_));
                if reading == Reading::Ordered {
                    // all: if(c1, all(rest), false); any: if(c1, true, any(rest)).
                    return items.iter().rev().fold(Expr::bool(!is_any), |rest, item| {
                        let node = self.tree(item, defs, dl, reading);
                        if is_any {
                            ordered_if(node, Expr::bool(true), rest)
                        } else {
                            ordered_if(node, rest, Expr::bool(false))
                        }
                    });
                }
                let mut nodes = Vec::new();
                for item in items {
                    let n = self.tree(item, defs, dl, reading);
                    match n.as_bool() {
                        Some(b) if b == is_any => return Expr::bool(is_any),
                        Some(_) => {}
                        None => nodes.push(n),
                    }
                }
                match nodes.len() {
                    0 => Expr::bool(!is_any),
                    1 => nodes.remove(0),
                    _ => Expr::Call(if is_any { Op::Or } else { Op::And }, nodes),
                }
            }
            Condition::None(items) => {
                if reading == Reading::Ordered {
                    // none: if(c1, false, none(rest)).
                    return items.iter().rev().fold(Expr::bool(true), |rest, item| {
                        let node = self.tree(item, defs, dl, reading);
                        ordered_if(node, Expr::bool(false), rest)
                    });
                }
                let child_reading = match reading {
                    Reading::Value(pol) => Reading::Value(pol.flip()),
                    other => other,
                };
                let mut nodes = Vec::new();
                for item in items {
                    let n = self.tree(item, defs, dl, child_reading);
                    match n.as_bool() {
                        Some(true) => return Expr::bool(false),
                        Some(false) => {}
                        None => nodes.push(Expr::negate(n)),
                    }
                }
                match nodes.len() {
                    0 => Expr::bool(true),
                    1 => nodes.remove(0),
                    _ => Expr::Call(Op::And, nodes),
                }
            }
        }
    }

    fn leaf(&self, expr: &Expr, defs: &Definitions, dl: &Expr, reading: Reading) -> Expr {
        let inlined = inline_definitions(expr, defs, dl, &mut Vec::new());
        let mut ev = Evaluator::new(self.env);
        ev.unroll_limit = self.options.unroll_limit;
        ev.cerbos_compat = self.options.cerbos_planner;
        let pol = match reading {
            Reading::Met | Reading::CerbosPlanner => Polarity::Positive,
            Reading::Value(pol) => pol,
            Reading::Ordered => Polarity::Neutral,
        };
        // Whether the condition's value can be something other than a boolean or an error is
        // a property of the condition as written: folding known errors away can leave a
        // residual that could (`error && R.attr.f` folds to `R.attr.f` for its false-set).
        let boolean = yields_bool_or_error(&inlined);
        match (ev.eval_condition(&inlined, pol), reading) {
            (Partial::Known(Value::Bool(b)), _) => Expr::bool(b),
            (Partial::Known(_), _) => Expr::bool(false),
            // Only reached without polarity (strict evaluation, and a derived-role list's
            // conditions under `FailClosed`): the error itself is the value.
            (Partial::Error(_), _) if pol == Polarity::Neutral => Expr::error(),
            (Partial::Error(_), _) => Expr::bool(false),
            (Partial::Residual(r), Reading::Met) => Expr::is_true(r),
            (Partial::Residual(r), Reading::CerbosPlanner) => self.unroll_root(r, pol),
            (Partial::Residual(r), Reading::Value(_) | Reading::Ordered) if boolean => r,
            (Partial::Residual(r), Reading::Value(_) | Reading::Ordered) => bool_or_error(r),
        }
    }
}

impl Conditions<'_> {
    /// Cerbos' planner unrolls `exists`/`all` over a known list of up to 10 items when, once
    /// partially evaluated, the comprehension is the whole residual (`false || xs.exists(…)`
    /// included, `!xs.exists(…)` not).
    fn unroll_root(&self, r: Expr, pol: Polarity) -> Expr {
        let unrollable = match &r {
            Expr::Call(Op::All | Op::Exists, args) => matches!(
                args.first(),
                Some(Expr::Value(Value::List(items)))
                    if self.options.unroll_limit.is_none_or(|limit| items.len() <= limit)
            ),
            _ => false,
        };
        if !unrollable {
            return r;
        }
        let mut ev = Evaluator::new(self.env);
        ev.unroll_limit = self.options.unroll_limit;
        ev.cerbos_compat = true;
        match ev.eval_condition(&r, pol) {
            Partial::Residual(unrolled) => unrolled,
            Partial::Known(Value::Bool(b)) => Expr::bool(b),
            _ => r,
        }
    }
}

/// `if(c, t, e)` with constants folded, exactly (an erroring `c` makes the whole an error).
pub(super) fn ordered_if(c: Expr, t: Expr, e: Expr) -> Expr {
    if c.is_error() {
        return c;
    }
    match c.as_bool() {
        Some(true) => return t,
        Some(false) => return e,
        None => {}
    }
    match (t.as_bool(), e.as_bool()) {
        // c is a condition node: a boolean or an error.
        (Some(true), Some(false)) => c,
        (Some(false), Some(true)) => Expr::negate(c),
        _ if t == e && c.never_errors() => t,
        _ => Expr::Call(Op::If, vec![c, t, e]),
    }
}

/// `r`, or `r == true` where `r` may produce a value that is not a boolean: Cerbos reads such
/// a value as "not met", and `== true` is false for it while keeping errors.
fn bool_or_error(r: Expr) -> Expr {
    if yields_bool_or_error(&r) {
        r
    } else {
        Expr::Call(Op::Eq, vec![r, Expr::bool(true)])
    }
}

fn yields_bool_or_error(e: &Expr) -> bool {
    match e {
        Expr::Value(Value::Bool(_)) => true,
        Expr::Call(op, args) => match op {
            Op::And
            | Op::Or
            | Op::Not
            | Op::Eq
            | Op::Ne
            | Op::Lt
            | Op::Le
            | Op::Gt
            | Op::Ge
            | Op::In
            | Op::Has
            | Op::IsTrue
            | Op::All
            | Op::Exists
            | Op::ExistsOne => true,
            Op::If => args.iter().skip(1).all(yields_bool_or_error),
            Op::Call(name) => BOOLEAN_FUNCTIONS.contains(&name.as_str()) || e.is_error(),
            _ => false,
        },
        _ => false,
    }
}
