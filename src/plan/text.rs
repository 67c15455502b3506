//! Plan expressions written back as readable CEL-like text, for people (`vecgate explain`,
//! `vecgate who-can`). Never parsed again and never sent to a database: the JSON form
//! ([`Expr::to_json`]) stays the machine form.
//!
//! Invariants: every node of the tree appears in the text (nothing is dropped except an
//! `isTrue` wrapper in a position where only "is it exactly true" matters: the root and the
//! operands of `and`/`or` reached from it, where `isTrue(x)` and `x` select the same
//! principals or records); operands are parenthesised wherever CEL's precedence would read
//! them otherwise; comparisons with a constant on the left are turned around so the name
//! comes first; integral doubles print without a fraction (JSON numbers are doubles, and CEL
//! compares numbers across types). Variable names pass through the caller's `names` function.

use super::expr::{Expr, Op};
use super::value::Value;

/// `e` as text; `names` rewrites each variable name (for example `request.principal.attr.x`
/// into `x`).
pub fn readable(e: &Expr, names: &dyn Fn(&str) -> String) -> String {
    Writer { names }.write(e, Position::Truth)
}

/// The usual abbreviations: `R.attr.x`, `P.attr.x`, `R.id`, `P.roles`.
pub fn abbreviated(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("request.resource.") {
        format!("R.{rest}")
    } else if let Some(rest) = name.strip_prefix("request.principal.") {
        format!("P.{rest}")
    } else if let Some(rest) = name.strip_prefix("variables.") {
        format!("V.{rest}")
    } else {
        name.to_string()
    }
}

/// Where a node sits: only its truth matters, or its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    Truth,
    Value,
}

struct Writer<'n> {
    names: &'n dyn Fn(&str) -> String,
}

/// Binding strength, loosest first.
fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::Call(op, args) => match op {
            Op::If => 1,
            Op::Or => 2,
            Op::And => 3,
            Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::In => 4,
            Op::Add | Op::Sub => 5,
            Op::Mult | Op::Div | Op::Mod => 6,
            Op::Not | Op::Negate => 7,
            Op::IsTrue if args.len() == 1 => 9,
            _ => 9,
        },
        _ => 9,
    }
}

fn flipped(op: &Op) -> Option<Op> {
    Some(match op {
        Op::Eq => Op::Eq,
        Op::Ne => Op::Ne,
        Op::Lt => Op::Gt,
        Op::Le => Op::Ge,
        Op::Gt => Op::Lt,
        Op::Ge => Op::Le,
        _ => return None,
    })
}

fn symbol(op: &Op) -> Option<&'static str> {
    Some(match op {
        Op::Or => "||",
        Op::And => "&&",
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::In => "in",
        Op::Add => "+",
        Op::Sub => "-",
        Op::Mult => "*",
        Op::Div => "/",
        Op::Mod => "%",
        _ => return None,
    })
}

/// Functions CEL writes as methods of their first operand.
const MEMBER_FUNCTIONS: &[&str] = &[
    "startsWith",
    "endsWith",
    "contains",
    "matches",
    "size",
    "hasIntersection",
    "isSubset",
    "lowerAscii",
    "upperAscii",
    "ancestorOf",
    "descendentOf",
    "immediateChildOf",
    "immediateParentOf",
    "siblingOf",
    "overlaps",
    "inIPAddrRange",
    "getHours",
    "getMinutes",
    "getFullYear",
    "getMonth",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getSeconds",
    "getMilliseconds",
    "timeSince",
];

impl Writer<'_> {
    fn write(&self, e: &Expr, pos: Position) -> String {
        match e {
            Expr::Value(v) => value_text(v),
            Expr::Variable(name) => (self.names)(name),
            Expr::Call(op, args) => self.call(e, op, args, pos),
        }
    }

    /// `child` as an operand of `parent`, parenthesised when it binds more loosely (or as
    /// loosely, on the side where CEL would regroup).
    fn operand(&self, parent: &Expr, child: &Expr, pos: Position, strict: bool) -> String {
        let text = self.write(child, pos);
        let (p, c) = (precedence(parent), precedence(child));
        if c < p || (strict && c == p) {
            format!("({text})")
        } else {
            text
        }
    }

    fn call(&self, e: &Expr, op: &Op, args: &[Expr], pos: Position) -> String {
        if e.is_error() {
            return "error".to_string();
        }
        match (op, args) {
            (Op::And | Op::Or, _) if !args.is_empty() => {
                let sep = if matches!(op, Op::And) { " && " } else { " || " };
                args.iter()
                    .map(|a| self.operand(e, a, pos, false))
                    .collect::<Vec<_>>()
                    .join(sep)
            }
            (Op::Not, [a]) => format!("!{}", self.operand(e, a, Position::Value, true)),
            (Op::Negate, [a]) => format!("-{}", self.operand(e, a, Position::Value, true)),
            (Op::IsTrue, [a]) if pos == Position::Truth => self.write(a, pos),
            (Op::IsTrue, [a]) => format!("isTrue({})", self.write(a, Position::Truth)),
            (Op::Has, [a]) => format!("has({})", self.write(a, Position::Value)),
            (Op::If, [c, t, o]) => format!(
                "{} ? {} : {}",
                self.operand(e, c, Position::Value, true),
                self.operand(e, t, Position::Value, true),
                self.operand(e, o, Position::Value, false)
            ),
            (Op::GetField, [base, Expr::Variable(field)]) => {
                format!("{}.{field}", self.operand(e, base, Position::Value, false))
            }
            (Op::Index, [base, index]) => format!(
                "{}[{}]",
                self.operand(e, base, Position::Value, false),
                self.write(index, Position::Value)
            ),
            (Op::List, items) => format!("[{}]", self.list(items)),
            (Op::All | Op::Exists | Op::ExistsOne | Op::Filter | Op::Map, [range, Expr::Call(Op::Lambda, lambda)])
                if !lambda.is_empty() =>
            {
                let vars = op.lambda_var_count(lambda.len()).min(lambda.len());
                let (bodies, names) = lambda.split_at(lambda.len() - vars);
                let mut parts: Vec<String> = names.iter().map(|n| self.write(n, Position::Value)).collect();
                parts.extend(bodies.iter().map(|b| self.write(b, Position::Value)));
                format!("{}.{}({})", self.operand(e, range, Position::Value, false), op.name(), parts.join(", "))
            }
            (op, [l, r]) if symbol(op).is_some() => {
                let (op, l, r) = match (l, r, flipped(op)) {
                    (Expr::Value(_), r, Some(f)) if !matches!(r, Expr::Value(_)) => (f, r, l),
                    _ => (op.clone(), l, r),
                };
                let sym = symbol(&op).unwrap_or("?");
                format!(
                    "{} {sym} {}",
                    self.operand(e, l, Position::Value, false),
                    self.operand(e, r, Position::Value, true)
                )
            }
            (Op::Call(name), [target, rest @ ..]) if MEMBER_FUNCTIONS.contains(&name.as_str()) => {
                format!("{}.{name}({})", self.operand(e, target, Position::Value, false), self.list(rest))
            }
            (op, args) => format!("{}({})", op.name(), self.list(args)),
        }
    }

    fn list(&self, items: &[Expr]) -> String {
        items
            .iter()
            .map(|a| self.write(a, Position::Value))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A constant as CEL writes it.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => format!("{u}u"),
        // JSON numbers are doubles; CEL compares numbers across types, so `2` reads as well.
        Value::Double(d) if d.fract() == 0.0 && d.abs() < 1e15 => format!("{d:.0}"),
        Value::Double(d) => d.to_string(),
        Value::String(s) => serde_json::Value::String(s.to_string()).to_string(),
        Value::Bytes(_) => format!("b{}", v.to_json()),
        Value::List(items) => format!("[{}]", items.iter().map(value_text).collect::<Vec<_>>().join(", ")),
        Value::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", value_text(&k.to_value()), value_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Timestamp(_) => format!("timestamp({})", v.to_json()),
        Value::Duration(_) => format!("duration({})", v.to_json()),
        Value::Hierarchy(_) => format!("hierarchy({})", v.to_json()),
        Value::Type(t) => (*t).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(n: &str) -> Expr {
        Expr::var(n)
    }

    #[test]
    fn comparisons_put_the_name_first_and_parenthesise_by_precedence() {
        let e = Expr::Call(
            Op::And,
            vec![
                Expr::Call(Op::Eq, vec![Expr::Value(Value::string("FINANCE")), var("request.principal.attr.department")]),
                Expr::Call(
                    Op::Or,
                    vec![
                        Expr::Call(Op::Lt, vec![Expr::Value(Value::Int(3)), var("request.resource.attr.level")]),
                        Expr::Call(Op::Not, vec![Expr::Call(Op::Has, vec![var("request.resource.attr.x")])]),
                    ],
                ),
            ],
        );
        assert_eq!(
            readable(&e, &abbreviated),
            "P.attr.department == \"FINANCE\" && (R.attr.level > 3 || !has(R.attr.x))"
        );
    }

    #[test]
    fn is_true_is_kept_where_the_value_matters() {
        let inner = Expr::Call(Op::Eq, vec![var("a"), Expr::Value(Value::Int(1))]);
        let top = Expr::Call(Op::IsTrue, vec![inner.clone()]);
        assert_eq!(readable(&top, &abbreviated), "a == 1");
        let negated = Expr::Call(Op::Not, vec![top]);
        assert_eq!(readable(&negated, &abbreviated), "!isTrue(a == 1)");
    }
}
