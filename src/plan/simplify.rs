//! Removing what changes nothing at the root of a plan, where only the records on which it is
//! exactly true matter. A position that asks only for a node's true-set (the root, operands of
//! `and`/`or` there, the branches of an `if` there, the operand of a `not` asked for its
//! false-set) has the same answer with or without an `isTrue` around the node; the error
//! constant has an empty true-set and an empty false-set, as `false` and `true` have
//! respectively. The planner writes rules conservatively and lets this pass keep only what
//! carries meaning, which keeps plans in Cerbos' shape where they can be.
//!
//! Invariant: for every record, `drop_redundant_is_true(e)` is exactly true iff `e` is.

use super::expr::{Expr, Op};

/// Which set of a node its parent needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Only where it is exactly true.
    True,
    /// Only where it is exactly false.
    False,
    /// Its value (true, false, an error or another value).
    Value,
}

/// Drops the `isTrue` wrappers of `e` that are redundant at the root of a plan.
pub fn drop_redundant_is_true(e: Expr) -> Expr {
    walk(e, Position::True)
}

fn walk(e: Expr, pos: Position) -> Expr {
    match e {
        e if e.is_error() && pos != Position::Value => Expr::bool(pos == Position::False),
        Expr::Value(_) | Expr::Variable(_) => e,
        Expr::Call(op, args) => match (op, pos) {
            // T(and) = ∩T, F(and) = ∪F (and alike for `or`): operands are asked the same.
            (op @ (Op::And | Op::Or), Position::True | Position::False) => {
                Expr::Call(op, args.into_iter().map(|a| walk(a, pos)).collect())
            }
            // The branches are asked what the `if` is asked; the condition, its value.
            (Op::If, Position::True | Position::False) if args.len() == 3 => Expr::Call(
                Op::If,
                args.into_iter()
                    .enumerate()
                    .map(|(i, a)| walk(a, if i == 0 { Position::Value } else { pos }))
                    .collect(),
            ),
            (Op::Not, _) if args.len() == 1 => {
                let inner = match pos {
                    Position::True => Position::False,
                    Position::False => Position::True,
                    Position::Value => Position::Value,
                };
                Expr::Call(Op::Not, args.into_iter().map(|a| walk(a, inner)).collect())
            }
            // Inside `isTrue` only the true-set matters; at a true position, `isTrue(x)` and
            // `x` have the same true-set.
            (Op::IsTrue, pos) if args.len() == 1 => {
                let inner: Vec<Expr> = args.into_iter().map(|a| walk(a, Position::True)).collect();
                match (pos, inner.as_slice()) {
                    (Position::True, [_]) => inner.into_iter().next().unwrap_or(Expr::bool(false)),
                    _ => Expr::Call(Op::IsTrue, inner),
                }
            }
            (op, _) => Expr::Call(op, args.into_iter().map(|a| walk(a, Position::Value)).collect()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: &str) -> Expr {
        Expr::var(&format!("request.resource.attr.{n}"))
    }

    #[test]
    fn wrappers_stay_only_where_the_false_set_is_asked() {
        let inner = Expr::Call(Op::IsTrue, vec![v("a")]);
        // At the root: dropped.
        assert_eq!(drop_redundant_is_true(inner.clone()), v("a"));
        // Under one `not`: kept (its false-set is asked).
        let negated = Expr::negate(inner.clone());
        assert_eq!(drop_redundant_is_true(negated.clone()), negated);
        // Under two: dropped again.
        let twice = Expr::Call(Op::Not, vec![negated]);
        assert_eq!(drop_redundant_is_true(twice), Expr::Call(Op::Not, vec![Expr::Call(Op::Not, vec![v("a")])]));
        // Inside another operator: kept.
        let eq = Expr::Call(Op::Eq, vec![inner.clone(), Expr::bool(true)]);
        assert_eq!(drop_redundant_is_true(eq.clone()), eq);
    }
}
