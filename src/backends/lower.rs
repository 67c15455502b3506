//! The lowering algebra shared by the translators: a plan condition → a backend's filter.
//!
//! A plan condition is a CEL expression evaluated with three-valued logic: on a record each
//! node is true, false, or an error, and a record is allowed only where the root is exactly
//! `true`. For every node we therefore speak of four record sets: T (where it is true), F
//! (where it is false), and their complements NT ("not true": false or an error) and NF ("not
//! false"); a record in neither T nor F is one where the node errors (a missing key, a type
//! mismatch). The complements are what vecgate's `isTrue` asks for: Cerbos' check ignores a
//! DENY whose condition errors, so a record is kept where the DENY's condition is *not true*.
//! `and`, `or`, `not`, `isTrue` and `if` combine the sets:
//! - T(and)=∩T, F(and)=∪F, NT(and)=∪NT, NF(and)=∩NF (and dually for `or`);
//! - T(not a)=F(a), F(not a)=T(a), NT(not a)=NF(a), NF(not a)=NT(a);
//! - T(isTrue a)=NF(isTrue a)=T(a), F(isTrue a)=NT(isTrue a)=NT(a);
//! - T(if c t e)=T(c)∩T(t) ∪ F(c)∩T(e), and alike for the other sets;
//! - the error constant (`{"operator":"error"}`): T=F=∅, NT=NF=everything.
//!
//! `lower` walks the expression with a `Side`, pushes every `not` down to the leaves, and asks
//! a backend (`Target`) for the exact T or F set of each leaf comparison (`Atom`); an NT or NF
//! set is the backend's exact negation of the T or F formula (`Target::negate_leaf`: Qdrant's
//! `must_not`, Chroma's `$ne`/`$nin`/`$not_contains`). A backend that cannot express a set
//! exactly refuses; nothing is ever approximated. Existence tests (`has()`), which neither
//! database can express alone, are resolved against their sibling comparisons where that is
//! exact (`existence_plan`). The backends then render the resulting `Formula` as a Chroma
//! `where` or a Qdrant `filter`: [`super::chroma::filter::translate`],
//! [`super::qdrant::filter::translate`].

use crate::plan::expr::{RESOURCE_ATTR, RESOURCE_ID};
use crate::backends::FieldMapping;
use crate::plan::{Expr, Op, Value};

/// Deepest nesting of `and`/`or` groups a translated filter may have. Chroma refuses 63
/// nested `$and` levels (serde_json's recursion limit); we stay well below.
pub const MAX_FILTER_DEPTH: usize = 40;
/// Deepest plan expression the translators walk (bounds recursion).
pub const MAX_EXPR_DEPTH: usize = 200;
/// Largest number magnitude accepted in a literal: every integer up to it is an exact `f64`,
/// and no larger stored integer rounds onto it. Both databases compare some numbers as
/// doubles, so literals beyond it are refused.
pub const MAX_EXACT_INT: i64 = (1 << 53) - 1;

/// Why a plan condition could not be translated. Every variant that concerns a part of the
/// plan names it (`construct`, in Cerbos' s-expression form).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TranslateError {
    /// The database's filter language has no counterpart for this construct.
    #[error("cannot translate {construct}: {reason}")]
    Unsupported {
        construct: String,
        reason: &'static str,
    },
    /// A counterpart exists but would match a different set of records (typically records
    /// lacking the key); declare the attribute in `required_attrs` or guard it with `has()`.
    #[error("cannot translate {construct} exactly: {reason}")]
    NotExact {
        construct: String,
        reason: &'static str,
    },
    /// The attribute's name cannot be written as a key of this database.
    #[error("attribute {attr} cannot be used as a {backend} key: {reason}")]
    InvalidKey {
        attr: String,
        backend: &'static str,
        reason: &'static str,
    },
    #[error("the filter would have {terms} terms, more than the limit of {limit}")]
    TooManyTerms { terms: usize, limit: usize },
    #[error("the {what} nests {depth} levels deep, more than the limit of {limit}")]
    TooDeep {
        what: &'static str,
        depth: usize,
        limit: usize,
    },
}

impl TranslateError {
    /// The plan construct the error is about, if it concerns one.
    pub fn construct(&self) -> Option<&str> {
        match self {
            TranslateError::Unsupported { construct, .. }
            | TranslateError::NotExact { construct, .. } => Some(construct),
            TranslateError::InvalidKey { attr, .. } => Some(attr),
            _ => None,
        }
    }
}

/// A translated condition, with the two constant outcomes kept apart so that a caller can
/// answer "nothing" locally and skip a filter that allows everything.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushdown {
    /// Every record satisfies the condition.
    MatchAll,
    /// No record satisfies the condition.
    MatchNone,
    /// The records matching this filter (a Chroma `where` or a Qdrant `filter`).
    Filter(serde_json::Value),
}

/// Which set of a leaf comparison a backend is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The records on which the node evaluates to `true`.
    True,
    /// The records on which the node evaluates to `false`.
    False,
}

impl Side {
    pub(crate) fn flip(self) -> Side {
        match self {
            Side::True => Side::False,
            Side::False => Side::True,
        }
    }

    pub(crate) fn is_true(self) -> bool {
        self == Side::True
    }
}

/// Which set of a node the lowering is asked for: one of the two sides, or the complement of
/// one (every record outside it, errors included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Set {
    Is(Side),
    IsNot(Side),
}

impl Set {
    pub(crate) const TRUE: Set = Set::Is(Side::True);

    /// The set of a `not`'s operand.
    fn flip(self) -> Set {
        match self {
            Set::Is(s) => Set::Is(s.flip()),
            Set::IsNot(s) => Set::IsNot(s.flip()),
        }
    }

    /// Whether a record where the node is true belongs to this set.
    fn holds_true(self) -> bool {
        matches!(self, Set::Is(Side::True) | Set::IsNot(Side::False))
    }
}

/// A boolean combination of backend leaves, with constants folded away except at the root.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Formula<L> {
    Const(bool),
    Leaf(L),
    /// At least two operands, none of them a constant or an `And`.
    And(Vec<Formula<L>>),
    /// At least two operands, none of them a constant or an `Or`.
    Or(Vec<Formula<L>>),
}

impl<L> Formula<L> {
    pub(crate) fn leaf(l: L) -> Formula<L> {
        Formula::Leaf(l)
    }

    /// Conjunction: drops `true`, absorbs into `false`, flattens nested conjunctions.
    pub(crate) fn and(items: Vec<Formula<L>>) -> Formula<L> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Formula::Const(true) => {}
                Formula::Const(false) => return Formula::Const(false),
                Formula::And(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Formula::Const(true),
            1 => out.pop().unwrap_or(Formula::Const(true)),
            _ => Formula::And(out),
        }
    }

    /// Disjunction: drops `false`, absorbs into `true`, flattens nested disjunctions.
    pub(crate) fn or(items: Vec<Formula<L>>) -> Formula<L> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Formula::Const(false) => {}
                Formula::Const(true) => return Formula::Const(true),
                Formula::Or(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Formula::Const(false),
            1 => out.pop().unwrap_or(Formula::Const(false)),
            _ => Formula::Or(out),
        }
    }

    pub(crate) fn leaf_count(&self) -> usize {
        match self {
            Formula::Const(_) => 0,
            Formula::Leaf(_) => 1,
            Formula::And(items) | Formula::Or(items) => items.iter().map(Formula::leaf_count).sum(),
        }
    }

    /// Levels of `and`/`or` groups.
    pub(crate) fn depth(&self) -> usize {
        match self {
            Formula::Const(_) | Formula::Leaf(_) => 0,
            Formula::And(items) | Formula::Or(items) => {
                1 + items.iter().map(Formula::depth).max().unwrap_or(0)
            }
        }
    }
}

/// Refuses a formula over the term or depth limits.
pub(crate) fn check_limits<L>(f: &Formula<L>, max_terms: usize) -> Result<(), TranslateError> {
    let terms = f.leaf_count();
    if terms > max_terms {
        return Err(TranslateError::TooManyTerms {
            terms,
            limit: max_terms,
        });
    }
    let depth = f.depth();
    if depth > MAX_FILTER_DEPTH {
        return Err(TranslateError::TooDeep {
            what: "translated filter",
            depth,
            limit: MAX_FILTER_DEPTH,
        });
    }
    Ok(())
}

/// A resource attribute reference: the path below `R.attr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    /// `R.attr.a.b` is `["a", "b"]` (a field of a nested map); `R.attr["a.b"]` is `["a.b"]`.
    pub segments: Vec<String>,
}

impl Attr {
    /// The top-level attribute name, if the reference has no nested part.
    pub(crate) fn top_level(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// True when the write path guarantees this attribute: present, scalar, non-null.
    pub(crate) fn is_required(&self, mapping: &FieldMapping) -> bool {
        self.top_level().is_some_and(|n| mapping.is_required(n))
    }

    pub(crate) fn display(&self) -> String {
        match self.segments.as_slice() {
            [one] => format!("{RESOURCE_ATTR}.{one}"),
            more => format!("{RESOURCE_ATTR}.{}", more.join(".")),
        }
    }
}

/// Recognises `R.attr.x`, `R.attr.x.y` and `R.attr["x"]`.
pub(crate) fn attr_ref(e: &Expr) -> Option<Attr> {
    let name = e.resource_attr_name()?;
    match e {
        // A dotted variable selects fields of nested maps.
        Expr::Variable(_) => {
            let segments: Vec<String> = name.split('.').map(str::to_string).collect();
            if segments.iter().any(String::is_empty) {
                return None;
            }
            Some(Attr { segments })
        }
        // An index or field selection names one key, dots included.
        _ => Some(Attr {
            segments: vec![name.to_string()],
        }),
    }
}

/// A number literal as the translators use it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    /// An integral value (an int, or a double with no fractional part), |n| ≤ 2^53 − 1.
    Int(i64),
    /// A finite double with a fractional part, |f| < 2^53.
    Frac(f64),
}

impl Num {
    pub(crate) fn to_json(self) -> serde_json::Value {
        match self {
            Num::Int(i) => serde_json::Value::from(i),
            Num::Frac(f) => float_json(f),
        }
    }
}

/// A double as JSON, always written with a fraction or exponent so parsers read a float.
pub(crate) fn float_json(f: f64) -> serde_json::Value {
    serde_json::Number::from_f64(f)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// A scalar literal of a comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Lit<'a> {
    Str(&'a str),
    Bool(bool),
    Num(Num),
    Null,
}

/// Classifies a literal; `Err` names why it cannot be used.
pub(crate) fn literal(v: &Value) -> Result<Lit<'_>, &'static str> {
    match v {
        Value::String(s) => Ok(Lit::Str(s)),
        Value::Bool(b) => Ok(Lit::Bool(*b)),
        Value::Null => Ok(Lit::Null),
        Value::Int(i) => {
            if i.unsigned_abs() <= MAX_EXACT_INT as u64 {
                Ok(Lit::Num(Num::Int(*i)))
            } else {
                Err("integers beyond ±(2^53−1) are compared as doubles by the database")
            }
        }
        Value::Uint(u) => {
            if *u <= MAX_EXACT_INT as u64 {
                Ok(Lit::Num(Num::Int(*u as i64)))
            } else {
                Err("integers beyond ±(2^53−1) are compared as doubles by the database")
            }
        }
        Value::Double(d) => {
            if !d.is_finite() {
                Err("NaN and infinities have no JSON form")
            } else if d.abs() > MAX_EXACT_INT as f64 {
                Err("numbers beyond ±(2^53−1) are not compared exactly by the database")
            } else if d.fract() == 0.0 {
                Ok(Lit::Num(Num::Int(*d as i64)))
            } else {
                Ok(Lit::Num(Num::Frac(*d)))
            }
        }
        Value::List(_) | Value::Map(_) => Err("list and map values are not comparable in a filter"),
        _ => Err("only strings, numbers, booleans and null can be compared in a filter"),
    }
}

/// An ordering operator, attribute on the left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ord4 {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Ord4 {
    /// `c < x` is `x > c`.
    pub(crate) fn mirror(self) -> Ord4 {
        match self {
            Ord4::Lt => Ord4::Gt,
            Ord4::Le => Ord4::Ge,
            Ord4::Gt => Ord4::Lt,
            Ord4::Ge => Ord4::Le,
        }
    }

    /// The operator true exactly where this one is false (between two numbers).
    pub(crate) fn complement(self) -> Ord4 {
        match self {
            Ord4::Lt => Ord4::Ge,
            Ord4::Le => Ord4::Gt,
            Ord4::Gt => Ord4::Le,
            Ord4::Ge => Ord4::Lt,
        }
    }

    /// Chroma's and Qdrant's spelling without the `$`.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Ord4::Lt => "lt",
            Ord4::Le => "lte",
            Ord4::Gt => "gt",
            Ord4::Ge => "gte",
        }
    }
}

/// A leaf comparison of a plan, normalised: attribute first, `ne` turned into `eq` on the
/// other side, `F(x < c)` turned into `T(x >= c)` (both sides need a number).
#[derive(Debug, Clone)]
pub(crate) enum Atom<'e> {
    /// `attr == value`.
    Eq { attr: Attr, value: &'e Value },
    /// `attr <op> number` (always asked on the True side).
    Order { attr: Attr, op: Ord4, value: Num },
    /// `attr in [values]`.
    InList { attr: Attr, values: Vec<&'e Value> },
    /// `value in attr`: membership in a list-valued attribute.
    Contains { attr: Attr, value: &'e Value },
    /// `has(attr)`.
    Has { attr: Attr },
    /// A bare attribute used as a condition: true iff it holds the boolean `true`.
    Truthy { attr: Attr },
    /// `R.id == value`.
    IdEq { value: &'e Value },
    /// `R.id in [values]`.
    IdIn { values: Vec<&'e Value> },
}

/// A backend's translation of leaves.
pub(crate) trait Target {
    type Leaf;

    /// The exact T or F set of one leaf (`side` is `True` or `False`), or a refusal. `node`
    /// is the plan node (for errors).
    fn atom(
        &self,
        atom: Atom<'_>,
        side: Side,
        node: &Expr,
    ) -> Result<Formula<Self::Leaf>, TranslateError>;

    /// The leaf matching exactly the records `leaf` does not match, or why the backend has
    /// none.
    fn negate_leaf(&self, leaf: Self::Leaf) -> Result<Self::Leaf, &'static str>;
}

/// The exact complement of a formula: De Morgan, with each leaf negated by the backend.
pub(crate) fn negate<T: Target>(
    target: &T,
    f: Formula<T::Leaf>,
    node: &Expr,
    side: Side,
) -> Result<Formula<T::Leaf>, TranslateError> {
    // `side` is the set that was negated (for error messages).
    Ok(match f {
        Formula::Const(b) => Formula::Const(!b),
        Formula::Leaf(l) => Formula::Leaf(
            target
                .negate_leaf(l)
                .map_err(|reason| not_exact(node, side, reason))?,
        ),
        Formula::And(items) => Formula::or(
            items
                .into_iter()
                .map(|i| negate(target, i, node, side))
                .collect::<Result<_, _>>()?,
        ),
        Formula::Or(items) => Formula::and(
            items
                .into_iter()
                .map(|i| negate(target, i, node, side))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Names a node for an error, with the side it was asked for.
pub(crate) fn construct(node: &Expr, side: Side) -> String {
    const MAX: usize = 300;
    let mut s = node.debug_string();
    if s.len() > MAX {
        let mut cut = MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    match side {
        Side::True => s,
        Side::False => format!("(not {s})"),
    }
}

pub(crate) fn unsupported(node: &Expr, side: Side, reason: &'static str) -> TranslateError {
    TranslateError::Unsupported {
        construct: construct(node, side),
        reason,
    }
}

pub(crate) fn not_exact(node: &Expr, side: Side, reason: &'static str) -> TranslateError {
    TranslateError::NotExact {
        construct: construct(node, side),
        reason,
    }
}

/// Translates `node` for the set `set` by pushing negation down to the leaves.
pub(crate) fn lower<T: Target>(
    target: &T,
    node: &Expr,
    set: Set,
    depth: usize,
) -> Result<Formula<T::Leaf>, TranslateError> {
    if depth > MAX_EXPR_DEPTH {
        return Err(TranslateError::TooDeep {
            what: "plan condition",
            depth,
            limit: MAX_EXPR_DEPTH,
        });
    }
    // Each kind of node in a function of its own keeps the recursive frame small.
    match node {
        Expr::Value(Value::Bool(b)) => Ok(Formula::Const(*b == set.holds_true())),
        e if e.is_error() => Ok(Formula::Const(matches!(set, Set::IsNot(_)))),
        Expr::Call(Op::And | Op::Or, args) => {
            lower_junction(target, node, args, set, depth)
        }
        Expr::Call(Op::Not, args) => match args.as_slice() {
            [a] => lower(target, a, set.flip(), depth + 1),
            _ => Err(set_error(node, set, "`not` takes exactly one operand")),
        },
        Expr::Call(Op::IsTrue, args) => match args.as_slice() {
            [a] => match set {
                Set::Is(Side::True) | Set::IsNot(Side::False) => {
                    lower(target, a, Set::TRUE, depth + 1)
                }
                Set::Is(Side::False) | Set::IsNot(Side::True) => {
                    lower(target, a, Set::IsNot(Side::True), depth + 1)
                }
            },
            _ => Err(set_error(node, set, "`isTrue` takes exactly one operand")),
        },
        Expr::Call(Op::If, args) => lower_if(target, node, args, set, depth),
        _ => lower_leaf(target, node, set),
    }
}

#[inline(never)]
fn lower_junction<T: Target>(
    target: &T,
    node: &Expr,
    args: &[Expr],
    set: Set,
    depth: usize,
) -> Result<Formula<T::Leaf>, TranslateError> {
    let is_and = matches!(node, Expr::Call(Op::And, _));
    let side = match set {
        Set::Is(side) => side,
        Set::IsNot(side) => {
            // NT(and) = ∪NT, NF(and) = ∩NF; NT(or) = ∩NT, NF(or) = ∪NF.
            let conjunctive = is_and == (side == Side::False);
            let parts = args
                .iter()
                .map(|a| lower(target, a, set, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if conjunctive {
                Formula::and(parts)
            } else {
                Formula::or(parts)
            });
        }
    };
    // T(and) = ∩T and F(or) = ∩F; T(or) = ∪T and F(and) = ∪F.
    let conjunctive = is_and == side.is_true();
    let plan = existence_plan(args, side, conjunctive);
    let parts = args
        .iter()
        .zip(plan)
        .map(|(a, how)| match how {
            Operand2::Lower => lower(target, a, set, depth + 1),
            Operand2::Const(b) => Ok(Formula::Const(b)),
            Operand2::Complement => {
                let (leaf, leaf_side) = peel(a, side);
                let (atom, _) = parse_atom(leaf, leaf_side)?;
                let positive = target.atom(atom, Side::True, leaf)?;
                negate(target, positive, leaf, Side::True)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(if conjunctive {
        Formula::and(parts)
    } else {
        Formula::or(parts)
    })
}

#[inline(never)]
fn lower_if<T: Target>(
    target: &T,
    node: &Expr,
    args: &[Expr],
    set: Set,
    depth: usize,
) -> Result<Formula<T::Leaf>, TranslateError> {
    let [c, t, e] = args else {
        return Err(set_error(node, set, "`if` takes three operands"));
    };
    let down = |n: &Expr, s: Set| lower(target, n, s, depth + 1);
    Ok(match set {
        // T(if) = T(c)∩T(t) ∪ F(c)∩T(e), alike for F.
        Set::Is(_) => Formula::or(vec![
            Formula::and(vec![down(c, Set::TRUE)?, down(t, set)?]),
            Formula::and(vec![down(c, Set::Is(Side::False))?, down(e, set)?]),
        ]),
        // The complement of the above: (NT(c)∪NT(t)) ∩ (NF(c)∪NT(e)), alike for NF.
        Set::IsNot(_) => Formula::and(vec![
            Formula::or(vec![down(c, Set::IsNot(Side::True))?, down(t, set)?]),
            Formula::or(vec![down(c, Set::IsNot(Side::False))?, down(e, set)?]),
        ]),
    })
}

#[inline(never)]
fn lower_leaf<T: Target>(
    target: &T,
    node: &Expr,
    set: Set,
) -> Result<Formula<T::Leaf>, TranslateError> {
    match set {
        Set::Is(side) => {
            let (atom, side) = parse_atom(node, side)?;
            target.atom(atom, side, node)
        }
        Set::IsNot(side) => {
            let (atom, atom_side) = parse_atom(node, side)?;
            let formula = target.atom(atom, atom_side, node)?;
            negate(target, formula, node, side)
        }
    }
}

fn set_error(node: &Expr, set: Set, reason: &'static str) -> TranslateError {
    match set {
        Set::Is(side) | Set::IsNot(side) => unsupported(node, side, reason),
    }
}

/// How one operand of an `and`/`or` is translated.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Operand2 {
    Lower,
    /// Replaced by a constant (an existence test made redundant by a sibling).
    Const(bool),
    /// A `false`-side `Eq`/`InList` atom absorbing a sibling "key is missing": translated
    /// as the atom's complement.
    Complement,
}

/// What an operand of an `and`/`or` is, as far as existence tests go.
#[derive(Debug, Clone, PartialEq)]
enum Role {
    /// `has(c)` on the side where it is true: c exists.
    Present(Vec<String>),
    /// `has(c)` on the side where it is false: c is missing.
    Missing(Vec<String>),
    /// A comparison on c, asked on `side` (after `ne` became `eq`); `total` when it never
    /// errors on an existing key (`==`, `in` a list), so that its F side plus "c is missing"
    /// is the complement of its T side.
    Atom {
        attr: Vec<String>,
        side: Side,
        total: bool,
    },
    Other,
}

/// Strips `not`s, flipping the side.
fn peel(mut e: &Expr, mut side: Side) -> (&Expr, Side) {
    while let Expr::Call(Op::Not, args) = e {
        match args.as_slice() {
            [a] => {
                e = a;
                side = side.flip();
            }
            _ => break,
        }
    }
    (e, side)
}

fn role(e: &Expr, side: Side) -> Role {
    let (e, side) = peel(e, side);
    if let Expr::Call(Op::Has, args) = e {
        if let Some(attr) = args.first().and_then(attr_ref) {
            return match side {
                Side::True => Role::Present(attr.segments),
                Side::False => Role::Missing(attr.segments),
            };
        }
        return Role::Other;
    }
    match parse_atom(e, side) {
        Ok((atom, side)) => match atom {
            Atom::Eq { attr, .. } | Atom::InList { attr, .. } => Role::Atom {
                attr: attr.segments,
                side,
                total: true,
            },
            Atom::Order { attr, .. } | Atom::Contains { attr, .. } | Atom::Truthy { attr } => {
                Role::Atom {
                    attr: attr.segments,
                    side,
                    total: false,
                }
            }
            _ => Role::Other,
        },
        Err(_) => Role::Other,
    }
}

/// Uses existence tests together with their siblings, where alone they have no exact form:
/// - in an intersection, "c exists" is implied by any comparison on c (both of its sides
///   need the key), so it is dropped; "c is missing" next to a comparison on c is empty;
/// - in a union, "c is missing" plus the F side of `c == x` or `c in [..]` is the
///   complement of their T side, which both databases express (`$ne`/`$nin`, `must_not`).
///   This is the `has()`-guarded DENY: `not (has(c) && c == x)`.
fn existence_plan(args: &[Expr], side: Side, conjunctive: bool) -> Vec<Operand2> {
    let roles: Vec<Role> = args.iter().map(|a| role(a, side)).collect();
    let mut plan = vec![Operand2::Lower; args.len()];
    let compares = |c: &Vec<String>| {
        roles
            .iter()
            .any(|r| matches!(r, Role::Atom { attr, .. } if attr == c))
    };
    if conjunctive {
        for (i, r) in roles.iter().enumerate() {
            match r {
                Role::Present(c) if compares(c) => plan[i] = Operand2::Const(true),
                Role::Missing(c) if compares(c) => plan[i] = Operand2::Const(false),
                _ => {}
            }
        }
    } else {
        for (i, r) in roles.iter().enumerate() {
            let Role::Missing(c) = r else { continue };
            // Only top-level keys: a nested path also errors when its parent is not a map.
            if c.len() != 1 {
                continue;
            }
            let partners: Vec<usize> = roles
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    matches!(p, Role::Atom { attr, side: Side::False, total: true } if attr == c)
                })
                .map(|(j, _)| j)
                .collect();
            if !partners.is_empty() {
                plan[i] = Operand2::Const(false);
                for j in partners {
                    plan[j] = Operand2::Complement;
                }
            }
        }
    }
    plan
}

/// One operand of a comparison.
enum Operand<'e> {
    Attr(Attr),
    Id,
    Const(&'e Value),
    Other,
}

fn operand(e: &Expr) -> Operand<'_> {
    if let Some(a) = attr_ref(e) {
        return Operand::Attr(a);
    }
    if e.is_resource_id() {
        return Operand::Id;
    }
    match e {
        Expr::Value(v) => Operand::Const(v),
        _ => Operand::Other,
    }
}

/// Reads a leaf node into an [`Atom`] and the side to ask for.
fn parse_atom(node: &Expr, side: Side) -> Result<(Atom<'_>, Side), TranslateError> {
    if let Some(attr) = attr_ref(node) {
        return Ok((Atom::Truthy { attr }, side));
    }
    match node {
        Expr::Value(_) => Err(unsupported(
            node,
            side,
            "a constant that is not a boolean cannot be a condition",
        )),
        Expr::Variable(v) if v == RESOURCE_ID => Err(unsupported(
            node,
            side,
            "the resource id is a string, not a condition",
        )),
        Expr::Variable(_) => Err(unsupported(
            node,
            side,
            "only resource attributes and the resource id can be filtered",
        )),
        Expr::Call(Op::Has, args) => match args.as_slice() {
            [a] => match attr_ref(a) {
                Some(attr) => Ok((Atom::Has { attr }, side)),
                None => Err(unsupported(
                    node,
                    side,
                    "has() is translated only for resource attributes",
                )),
            },
            _ => Err(unsupported(node, side, "has() takes one operand")),
        },
        Expr::Call(op @ (Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge), args) => {
            let [a, b] = args.as_slice() else {
                return Err(unsupported(node, side, "a comparison takes two operands"));
            };
            // Attribute first; a value-first ordering is mirrored.
            let (subject, value, mirrored) = match (operand(a), operand(b)) {
                (s @ (Operand::Attr(_) | Operand::Id), Operand::Const(v)) => (s, v, false),
                (Operand::Const(v), s @ (Operand::Attr(_) | Operand::Id)) => (s, v, true),
                _ => {
                    return Err(unsupported(
                        node,
                        side,
                        "a filter compares one resource attribute with one constant",
                    ))
                }
            };
            let ord = match op {
                Op::Lt => Some(Ord4::Lt),
                Op::Le => Some(Ord4::Le),
                Op::Gt => Some(Ord4::Gt),
                Op::Ge => Some(Ord4::Ge),
                _ => None,
            };
            match (subject, ord) {
                (Operand::Attr(attr), None) => {
                    let side = if *op == Op::Ne { side.flip() } else { side };
                    Ok((Atom::Eq { attr, value }, side))
                }
                (Operand::Id, None) => {
                    let side = if *op == Op::Ne { side.flip() } else { side };
                    Ok((Atom::IdEq { value }, side))
                }
                (Operand::Attr(attr), Some(o)) => {
                    let o = if mirrored { o.mirror() } else { o };
                    let num = match literal(value) {
                        Ok(Lit::Num(n)) => n,
                        Ok(_) => {
                            return Err(unsupported(
                                node,
                                side,
                                "only numbers can be ordered in a filter (string, bool and null ranges are refused)",
                            ))
                        }
                        Err(reason) => return Err(unsupported(node, side, reason)),
                    };
                    // Both sides of an ordering need a number, so F(x < c) = T(x >= c).
                    let o = if side.is_true() { o } else { o.complement() };
                    Ok((
                        Atom::Order {
                            attr,
                            op: o,
                            value: num,
                        },
                        Side::True,
                    ))
                }
                _ => Err(unsupported(
                    node,
                    side,
                    "the resource id can only be compared for equality",
                )),
            }
        }
        Expr::Call(Op::In, args) => {
            let [a, b] = args.as_slice() else {
                return Err(unsupported(node, side, "`in` takes two operands"));
            };
            let items = constant_list(b);
            match (operand(a), items) {
                (Operand::Attr(attr), Some(values)) => Ok((Atom::InList { attr, values }, side)),
                (Operand::Id, Some(values)) => Ok((Atom::IdIn { values }, side)),
                (Operand::Const(v), None) => match operand(b) {
                    Operand::Attr(attr) => Ok((Atom::Contains { attr, value: v }, side)),
                    _ => Err(unsupported(
                        node,
                        side,
                        "membership is translated only in a resource attribute",
                    )),
                },
                _ => Err(unsupported(
                    node,
                    side,
                    "`in` is translated for an attribute in a constant list, or a constant in an attribute",
                )),
            }
        }
        Expr::Call(op, _) => Err(TranslateError::Unsupported {
            construct: construct(node, side),
            reason: match op {
                Op::Add | Op::Sub | Op::Mult | Op::Div | Op::Mod | Op::Negate => {
                    "arithmetic has no filter equivalent"
                }
                Op::All | Op::Exists | Op::ExistsOne | Op::Filter | Op::Map | Op::Lambda => {
                    "comprehensions have no filter equivalent"
                }
                Op::Call(_) => "this function has no filter equivalent",
                _ => "this operator has no filter equivalent",
            },
        }),
    }
}

/// The items of a constant list operand (`{"value": [...]}` or a `list` of constants).
fn constant_list(e: &Expr) -> Option<Vec<&Value>> {
    match e {
        Expr::Value(Value::List(items)) => Some(items.iter().collect()),
        Expr::Call(Op::List, items) => items
            .iter()
            .map(|i| match i {
                Expr::Value(v) => Some(v),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Groups literals of an `in` list by kind, deduplicated, in first-seen order.
#[derive(Debug, Default)]
pub(crate) struct Groups<'a> {
    pub strings: Vec<&'a str>,
    pub bools: Vec<bool>,
    pub ints: Vec<i64>,
    pub fracs: Vec<f64>,
    /// A `null` item was present.
    pub null: bool,
}

pub(crate) fn group_literals<'a>(values: &[&'a Value]) -> Result<Groups<'a>, &'static str> {
    let mut g = Groups::default();
    for v in values {
        match literal(v)? {
            Lit::Str(s) => {
                if !g.strings.contains(&s) {
                    g.strings.push(s);
                }
            }
            Lit::Bool(b) => {
                if !g.bools.contains(&b) {
                    g.bools.push(b);
                }
            }
            Lit::Num(Num::Int(i)) => {
                if !g.ints.contains(&i) {
                    g.ints.push(i);
                }
            }
            Lit::Num(Num::Frac(f)) => {
                if !g.fracs.iter().any(|x| x.to_bits() == f.to_bits()) {
                    g.fracs.push(f);
                }
            }
            Lit::Null => g.null = true,
        }
    }
    Ok(g)
}
