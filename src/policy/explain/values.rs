//! A rule condition evaluated piece by piece on one concrete principal and resource, for
//! `vecgate explain`: every `all`/`any`/`none` item and, inside each CEL expression, every
//! operand of `&&`, `||`, `!` and `?:`, with its value (true, false, error or another value)
//! and, for an error, the reason in a person's words (`R.attr.region is missing`, `gt
//! between string and int`).
//!
//! Invariants: each node's value is the reference evaluator's ([`Evaluator`]) on that node
//! alone, in the same environment as the check, with variables, constants and
//! `runtime.effectiveDerivedRoles` inlined the way the check inlines them; nothing here
//! decides anything. [`ConditionNode::reading`] folds the tree the way each evaluation mode
//! reads a condition; the property tests compare it with what the check used.

use crate::plan::eval::{Evaluator, Partial, Polarity};
use crate::plan::text::{abbreviated, readable, value_text};
use crate::plan::{EvalError, Expr, Op, Value};
use crate::policy::check::{and, not, or, Tri};
use crate::policy::definitions::inline_definitions;
use crate::policy::env::PlanEnv;
use crate::policy::evaluation::Evaluation;
use crate::policy::model::{Condition, Definitions};
use serde::Serialize;

/// A value as reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    True,
    False,
    Error,
    /// A value that is not a boolean (a condition reads it as not met).
    NotBoolean,
}

impl Outcome {
    /// As a rule condition's item reads it, three-valued.
    pub fn as_tri(&self) -> Tri {
        match self {
            Outcome::True => Tri::True,
            Outcome::False | Outcome::NotBoolean => Tri::False,
            Outcome::Error => Tri::Error,
        }
    }

    pub fn from_tri(t: Tri) -> Outcome {
        match t {
            Tri::True => Outcome::True,
            Tri::False => Outcome::False,
            Tri::Error => Outcome::Error,
        }
    }

    pub fn word(&self) -> &'static str {
        match self {
            Outcome::True => "true",
            Outcome::False => "false",
            Outcome::Error => "error",
            Outcome::NotBoolean => "not a boolean",
        }
    }
}

/// One sub-expression of a CEL expression, with its value.
#[derive(Clone, Debug, Serialize)]
pub struct ExprNode {
    /// The sub-expression as readable text (variables inlined).
    pub text: String,
    pub value: Outcome,
    /// The value itself when it is not a boolean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shown: Option<String>,
    /// Why it errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a comparison or function call: the values of the names it reads.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// The operator whose operands follow: `and`, `or`, `not`, `if`, `isTrue`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The operands of `&&`, `||`, `!`, `?:`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operands: Vec<ExprNode>,
}

/// A rule's `match` tree with values.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConditionNode {
    Expr {
        /// The expression as written in the policy.
        source: String,
        value: Outcome,
        tree: ExprNode,
    },
    All { value: Outcome, items: Vec<ConditionNode> },
    Any { value: Outcome, items: Vec<ConditionNode> },
    None { value: Outcome, items: Vec<ConditionNode> },
}

impl ConditionNode {
    /// The node's own three-valued value (CEL's `&&`/`||`/`!` between items).
    pub fn value(&self) -> &Outcome {
        match self {
            ConditionNode::Expr { value, .. }
            | ConditionNode::All { value, .. }
            | ConditionNode::Any { value, .. }
            | ConditionNode::None { value, .. } => value,
        }
    }

    /// The condition as `mode` reads it (`None`: under `CerbosStrict`, an error is met in
    /// Cerbos' order, which ends the check). Mirrors the check's reading: `Cerbos` counts an
    /// expression that errors as false; `CerbosStrict` stops at the first error;
    /// `FailClosed` combines three-valued. `all` stops at the first false item, `any` and
    /// `none` at the first true one (except under `FailClosed`).
    pub fn reading(&self, mode: Evaluation) -> Option<Tri> {
        match self {
            ConditionNode::Expr { value, .. } => match (mode, value.as_tri()) {
                (Evaluation::CerbosStrict, Tri::Error) => None,
                (Evaluation::Cerbos, Tri::Error) => Some(Tri::False),
                (_, t) => Some(t),
            },
            ConditionNode::All { items, .. } | ConditionNode::Any { items, .. } | ConditionNode::None { items, .. } => {
                let is_all = matches!(self, ConditionNode::All { .. });
                let decisive = if is_all { Tri::False } else { Tri::True };
                let mut acc = if is_all { Tri::True } else { Tri::False };
                for item in items {
                    let v = item.reading(mode)?;
                    if v == decisive && mode != Evaluation::FailClosed {
                        acc = v;
                        break;
                    }
                    acc = if is_all { and(acc, v) } else { or(acc, v) };
                }
                Some(match self {
                    ConditionNode::None { .. } => not(acc),
                    _ => acc,
                })
            }
        }
    }
}

/// Evaluates conditions for one request.
pub struct Values<'a> {
    pub env: &'a PlanEnv,
}

impl Values<'_> {
    /// The `match` tree of `condition` with values, variables inlined from `defs` and
    /// `runtime.effectiveDerivedRoles` as `derived_list`.
    pub fn condition(&self, condition: &Condition, defs: &Definitions, derived_list: &Expr) -> ConditionNode {
        match condition {
            Condition::Expr { expr, source } => {
                let inlined = inline_definitions(expr, defs, derived_list, &mut Vec::new());
                let tree = self.expr(&inlined);
                ConditionNode::Expr {
                    source: source.clone(),
                    value: tree.value.clone(),
                    tree,
                }
            }
            Condition::All(items) | Condition::Any(items) | Condition::None(items) => {
                let items: Vec<ConditionNode> =
                    items.iter().map(|c| self.condition(c, defs, derived_list)).collect();
                let values = items.iter().map(|i| i.value().as_tri());
                let value = match condition {
                    Condition::All(_) => values.fold(Tri::True, and),
                    Condition::Any(_) => values.fold(Tri::False, or),
                    _ => not(values.fold(Tri::False, or)),
                };
                let value = Outcome::from_tri(value);
                match condition {
                    Condition::All(_) => ConditionNode::All { value, items },
                    Condition::Any(_) => ConditionNode::Any { value, items },
                    _ => ConditionNode::None { value, items },
                }
            }
        }
    }

    /// One CEL expression with the values of its boolean operands.
    pub fn expr(&self, e: &Expr) -> ExprNode {
        let (value, shown, reason) = match self.eval(e) {
            Partial::Known(Value::Bool(true)) => (Outcome::True, None, None),
            Partial::Known(Value::Bool(false)) => (Outcome::False, None, None),
            Partial::Known(v) => (Outcome::NotBoolean, Some(value_text(&v)), None),
            Partial::Error(err) => (Outcome::Error, None, Some(self.reason(e, &err))),
            Partial::Residual(r) => (
                Outcome::Error,
                None,
                Some(format!("not known: {}", readable(&r, &abbreviated))),
            ),
        };
        let (operator, operands) = match e {
            Expr::Call(op @ (Op::And | Op::Or | Op::Not | Op::IsTrue), args) => {
                (Some(op.name().to_string()), args.iter().map(|a| self.expr(a)).collect())
            }
            Expr::Call(Op::If, args) if args.len() == 3 => {
                (Some(Op::If.name().to_string()), args.iter().map(|a| self.expr(a)).collect())
            }
            _ => (None, Vec::new()),
        };
        let inputs = if operands.is_empty() { self.inputs(e) } else { Vec::new() };
        ExprNode {
            text: readable(e, &abbreviated),
            value,
            shown,
            reason,
            inputs,
            operator,
            operands,
        }
    }

    fn eval(&self, e: &Expr) -> Partial {
        Evaluator::new(self.env).eval(e, Polarity::Neutral)
    }

    /// The values of the names `e` reads (outside comprehensions), each once.
    fn inputs(&self, e: &Expr) -> Vec<String> {
        let mut names = Vec::new();
        collect_names(e, &mut names);
        names
            .iter()
            .map(|name| {
                let shown = abbreviated(name);
                match self.eval(&Expr::var(name)) {
                    Partial::Known(v) => format!("{shown} = {}", value_text(&v)),
                    Partial::Error(err) => format!("{shown}: {}", name_error(name, &err)),
                    Partial::Residual(_) => format!("{shown}: not known"),
                }
            })
            .collect()
    }

    /// Why `e` errors: the first name it reads that errors, or the evaluator's message.
    fn reason(&self, e: &Expr, err: &EvalError) -> String {
        let mut names = Vec::new();
        collect_names(e, &mut names);
        for name in &names {
            if let Partial::Error(inner) = self.eval(&Expr::var(name)) {
                return name_error(name, &inner);
            }
        }
        match err {
            EvalError::NoSuchOverload(what) => overload_reason(what),
            other => other.to_string(),
        }
    }
}

/// An overload error in a person's words: `gt between string and int` becomes `string
/// compared with int (>)`.
fn overload_reason(what: &str) -> String {
    let symbols = [("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">="), ("eq", "=="), ("ne", "!=")];
    if let Some((op, types)) = what.split_once(" between ") {
        if let (Some((_, sym)), Some((a, b))) = (symbols.iter().find(|(name, _)| *name == op), types.split_once(" and ")) {
            return format!("{a} compared with {b} ({sym})");
        }
    }
    format!("no such operation: {what}")
}

/// A name's error in a person's words.
fn name_error(name: &str, err: &EvalError) -> String {
    match err {
        EvalError::NoSuchKey(key) => {
            let shown = abbreviated(name);
            if shown.ends_with(&format!(".{key}")) || shown == *key {
                format!("{shown} is missing")
            } else {
                format!("{shown}: {key} is missing")
            }
        }
        EvalError::NoSuchVariable(_) => format!("{} is not defined", abbreviated(name)),
        other => format!("{}: {other}", abbreviated(name)),
    }
}

/// The dotted names `e` reads, in order, without lambda bodies' own variables.
fn collect_names(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Value(_) => {}
        Expr::Variable(name) => {
            let is_request = name.starts_with("request.") || name.starts_with("globals.");
            if is_request && !out.contains(name) {
                out.push(name.clone());
            }
        }
        Expr::Call(Op::Lambda, _) => {}
        Expr::Call(Op::GetField, args) => {
            if let Some(base) = args.first() {
                collect_names(base, out);
            }
        }
        Expr::Call(_, args) => args.iter().for_each(|a| collect_names(a, out)),
    }
}
