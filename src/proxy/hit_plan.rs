//! The plan a hit must satisfy, compiled once per request when it is a conjunction of
//! comparisons of record attributes with constants (`R.attr.dept == "x" && R.attr.region in
//! ["a", "b"]`, the shape nearly every policy yields): each hit is then decided by reading
//! those attributes and comparing, without running the plan evaluator on every hit.
//!
//! It decides exactly as [`crate::plan::eval::allows`] does for these plans (a property test
//! compares the two on random plans and records): in the positive position every term must be
//! true, a missing attribute makes its comparison an error, which counts as false, `==` is
//! `Value::cel_eq` with the operands in the plan's order, `in` is CEL's membership. Any other
//! plan is not compiled, and the evaluator decides.

use crate::backends::seam::RecordAttributes;
use crate::plan::expr::RESOURCE_ATTR;
use crate::plan::functions::contains_in;
use crate::plan::{Expr, Op, Plan, Value};

/// One term of the conjunction.
#[derive(Debug, Clone)]
enum Term {
    /// `attr == value` (`constant_left`: `value == attr`).
    Eq { attr: String, value: Value, constant_left: bool },
    /// `attr in list`.
    In { attr: String, container: Value },
}

/// A plan that is a conjunction of attribute comparisons.
#[derive(Debug, Clone)]
pub struct Conjunction {
    terms: Vec<Term>,
}

impl Conjunction {
    /// The plan compiled, if it has this shape (at least one term).
    pub fn compile(plan: &Plan) -> Option<Conjunction> {
        let Plan::Conditional(condition) = plan else {
            return None;
        };
        let mut terms = Vec::new();
        collect(condition, &mut terms)?;
        (!terms.is_empty()).then_some(Conjunction { terms })
    }

    /// Does a record with these attributes satisfy the plan?
    pub fn admits(&self, attrs: &dyn RecordAttributes) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Eq { attr, value, constant_left } => attrs.get(attr).is_some_and(|v| {
                if *constant_left {
                    value.cel_eq(&v)
                } else {
                    v.cel_eq(value)
                }
            }),
            Term::In { attr, container } => attrs.get(attr).is_some_and(|v| contains_in(&v, container) == Ok(true)),
        })
    }
}

fn collect(e: &Expr, terms: &mut Vec<Term>) -> Option<()> {
    let Expr::Call(op, args) = e else {
        return None;
    };
    match (op, args.as_slice()) {
        (Op::And, items) if !items.is_empty() => items.iter().try_for_each(|item| collect(item, terms)),
        (Op::Eq, [Expr::Variable(name), Expr::Value(value)]) => {
            terms.push(Term::Eq { attr: attribute(name)?, value: value.clone(), constant_left: false });
            Some(())
        }
        (Op::Eq, [Expr::Value(value), Expr::Variable(name)]) => {
            terms.push(Term::Eq { attr: attribute(name)?, value: value.clone(), constant_left: true });
            Some(())
        }
        (Op::In, [Expr::Variable(name), Expr::Value(container)]) => {
            terms.push(Term::In { attr: attribute(name)?, container: container.clone() });
            Some(())
        }
        _ => None,
    }
}

/// `request.resource.attr.<name>` with a plain name (no further path) → the name.
fn attribute(variable: &str) -> Option<String> {
    let name = variable.strip_prefix(RESOURCE_ATTR)?.strip_prefix('.')?;
    (!name.is_empty() && !name.contains('.')).then(|| name.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backends::chroma::FlatMetadata;
    use crate::backends::qdrant::NestedPayload;
    use crate::backends::testkit::{self, Model};
    use crate::plan::eval::{allows, RecordEnv};
    use crate::plan::functions::CallContext;
    use crate::plan::value::MapKey;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn reference(plan: &Plan, attrs: &dyn RecordAttributes) -> bool {
        let attr = attrs.all().into_iter().map(|(k, v)| (MapKey::String(Arc::from(k)), v)).collect();
        let ctx = CallContext { now: chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap() };
        allows(plan, &RecordEnv::new(Value::string("1"), "doc", Value::map(attr), ctx))
    }

    /// Conjunctions of `==` (either side) and `in` over the test kit's attributes and values.
    fn conjunction() -> impl Strategy<Value = Expr> {
        let names: Vec<&str> = testkit::REQUIRED.iter().chain(testkit::OPTIONAL.iter()).copied().collect();
        let constant = prop_oneof![4 => testkit::scalar(), 1 => Just(serde_json::Value::Null)];
        let list = prop::collection::vec(testkit::scalar(), 0..3).prop_map(serde_json::Value::Array);
        let term = (prop::sample::select(names), constant, list, 0u8..3).prop_map(|(n, c, l, kind)| match kind {
            0 => testkit::eq(testkit::attr(n), testkit::lit(c)),
            1 => testkit::eq(testkit::lit(c), testkit::attr(n)),
            _ => testkit::in_(testkit::attr(n), testkit::lit(l)),
        });
        prop::collection::vec(term, 1..4).prop_map(|terms| if terms.len() == 1 { terms.into_iter().next().unwrap() } else { testkit::and(terms) })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Compiled, a conjunction decides every record as the evaluator does.
        #[test]
        fn compiled_conjunctions_decide_like_the_evaluator(
            condition in conjunction(),
            chroma in testkit::metadata(Model::Chroma),
            qdrant in testkit::metadata(Model::Qdrant),
        ) {
            let plan = Plan::Conditional(condition);
            let compiled = Conjunction::compile(&plan).expect("a conjunction compiles");
            let flat = FlatMetadata { metadata: Some(&chroma), prefix: "" };
            prop_assert_eq!(compiled.admits(&flat), reference(&plan, &flat));
            let nested = NestedPayload { object: Some(&qdrant) };
            prop_assert_eq!(compiled.admits(&nested), reference(&plan, &nested));
            let none = FlatMetadata { metadata: None, prefix: "" };
            prop_assert_eq!(compiled.admits(&none), reference(&plan, &none));
        }

        /// Any other plan is left to the evaluator.
        #[test]
        fn other_plans_are_not_compiled_or_decide_alike(condition in testkit::plan(), chroma in testkit::metadata(Model::Chroma)) {
            let plan = Plan::Conditional(condition);
            if let Some(compiled) = Conjunction::compile(&plan) {
                let flat = FlatMetadata { metadata: Some(&chroma), prefix: "" };
                prop_assert_eq!(compiled.admits(&flat), reference(&plan, &flat));
            }
        }
    }

    #[test]
    fn only_conjunctions_of_plain_attributes_compile() {
        let eq = |name: &str| testkit::eq(testkit::attr(name), testkit::lit(serde_json::json!("a")));
        assert!(Conjunction::compile(&Plan::Conditional(testkit::and(vec![eq("dept"), eq("level")]))).is_some());
        for other in [
            testkit::or(vec![eq("dept"), eq("level")]),
            testkit::not(eq("dept")),
            testkit::eq(testkit::attr("owner.team"), testkit::lit(serde_json::json!("a"))),
            testkit::eq(testkit::attr_index("dept"), testkit::lit(serde_json::json!("a"))),
            testkit::ne(testkit::attr("dept"), testkit::lit(serde_json::json!("a"))),
            testkit::and(vec![]),
        ] {
            assert!(Conjunction::compile(&Plan::Conditional(other)).is_none());
        }
        assert!(Conjunction::compile(&Plan::AlwaysAllowed).is_none());
    }
}
