//! Vector database backends, and the filter translation they share.
//!
//! A plan condition is a CEL expression evaluated with three-valued logic: on a record each
//! node is true, false, or an error, and a record is allowed only where the root is exactly
//! `true`. For every node we therefore speak of two record sets, T (where it is true) and F
//! (where it is false); a record outside both is one where the node errors (a missing key, a
//! type mismatch). `and`, `or` and `not` combine them by De Morgan:
//! T(and)=∩T, F(and)=∪F, T(or)=∪T, F(or)=∩F, T(not a)=F(a), F(not a)=T(a).
//!
//! `lower` walks the expression with a `Side` (want T or want F), pushes every `not` down
//! to the leaves, and asks a backend (`Target`) for the exact T or F set of each leaf
//! comparison (`Atom`). A backend that cannot express that set exactly refuses; nothing is
//! ever approximated. Existence tests (`has()`), which neither database can express alone,
//! are resolved against their sibling comparisons where that is exact (`existence_plan`).
//! The backends then render the resulting `Formula` as a Chroma `where` or a Qdrant
//! `filter`: [`chroma::filter::translate`], [`qdrant::filter::translate`].

pub mod chroma;
pub mod json;
pub mod qdrant;

use crate::plan::expr::{RESOURCE_ATTR, RESOURCE_ID};
use crate::plan::{Expr, Op, Value};
use std::collections::BTreeSet;

/// Chroma keeps metadata flat: `R.attr.x` is the key `x`.
pub const CHROMA_DEFAULT_PREFIX: &str = "";
/// LangChain stores a Qdrant payload as `{page_content, metadata: {…}}`.
pub const QDRANT_DEFAULT_PREFIX: &str = "metadata.";
/// Deepest nesting of `and`/`or` groups a translated filter may have. Chroma refuses 63
/// nested `$and` levels (serde_json's recursion limit); we stay well below.
pub const MAX_FILTER_DEPTH: usize = 40;
/// Deepest plan expression the translators walk (bounds recursion).
pub const MAX_EXPR_DEPTH: usize = 200;
/// Largest number magnitude accepted in a literal: every integer up to it is an exact `f64`,
/// and no larger stored integer rounds onto it. Both databases compare some numbers as
/// doubles, so literals beyond it are refused.
pub const MAX_EXACT_INT: i64 = (1 << 53) - 1;

/// The action checked on a collection (resource kind `collection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionAction {
    Read,
    Create,
    Update,
    Delete,
}

impl CollectionAction {
    /// The policy action name.
    pub fn name(self) -> &'static str {
        match self {
            CollectionAction::Read => "read",
            CollectionAction::Create => "create",
            CollectionAction::Update => "update",
            CollectionAction::Delete => "delete",
        }
    }
}

/// Why a query string is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the operation {op} takes no query parameter {param:?}")]
    UnknownQueryParam { op: &'static str, param: String },
    #[error("the query parameter {param:?} is given twice")]
    DuplicateQueryParam { param: String },
    #[error("the query parameter {param:?} has an invalid value")]
    InvalidQueryValue { param: String },
    #[error("the query string is malformed")]
    MalformedQuery,
}

/// Checks a raw query string (without `?`) for both backends: `name=value` pairs, each name at
/// most once, no encoded characters (`%`, `+`: no valid value needs them). `param` answers
/// `None` for a name the operation does not take, else whether the value is valid.
pub fn check_query_params(
    op_name: &'static str,
    query: Option<&str>,
    param: impl Fn(&str, &str) -> Option<bool>,
) -> Result<(), RouteError> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(());
    };
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').ok_or(RouteError::MalformedQuery)?;
        if name.is_empty() || pair.contains(['%', '+', '#']) {
            return Err(RouteError::MalformedQuery);
        }
        let Some(valid) = param(name, value) else {
            return Err(RouteError::UnknownQueryParam {
                op: op_name,
                param: name.to_string(),
            });
        };
        if seen.contains(&name) {
            return Err(RouteError::DuplicateQueryParam {
                param: name.to_string(),
            });
        }
        seen.push(name);
        if !valid {
            return Err(RouteError::InvalidQueryValue {
                param: name.to_string(),
            });
        }
    }
    Ok(())
}

/// How a collection's records map to `R.attr`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldMapping {
    /// `R.attr.<name>` is the metadata key `<attr_prefix><name>`.
    pub attr_prefix: String,
    /// Attributes the write path guarantees to exist on every record with a non-null scalar
    /// (string, number or bool) value. Only these may be negated with `$ne`/`$nin`/`must_not`.
    pub required_attrs: BTreeSet<String>,
}

impl FieldMapping {
    pub fn new<I, S>(attr_prefix: &str, required_attrs: I) -> FieldMapping
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        FieldMapping {
            attr_prefix: attr_prefix.to_string(),
            required_attrs: required_attrs.into_iter().map(Into::into).collect(),
        }
    }

    /// Chroma's default: flat keys, nothing required.
    #[must_use]
    pub fn chroma_default() -> FieldMapping {
        FieldMapping::new(CHROMA_DEFAULT_PREFIX, Vec::<String>::new())
    }

    /// Qdrant's default: keys under `metadata.`, nothing required.
    #[must_use]
    pub fn qdrant_default() -> FieldMapping {
        FieldMapping::new(QDRANT_DEFAULT_PREFIX, Vec::<String>::new())
    }

    /// The same mapping with these attributes declared required.
    #[must_use]
    pub fn with_required<I, S>(mut self, names: I) -> FieldMapping
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_attrs
            .extend(names.into_iter().map(Into::into));
        self
    }

    pub fn is_required(&self, name: &str) -> bool {
        self.required_attrs.contains(name)
    }
}

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

/// Which set of a node a translation is asked for.
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

    /// The exact T or F set of one leaf, or a refusal. `node` is the plan node (for errors).
    fn atom(
        &self,
        atom: Atom<'_>,
        side: Side,
        node: &Expr,
    ) -> Result<Formula<Self::Leaf>, TranslateError>;

    /// Every record outside T of an `Eq` or `InList` atom on a top-level attribute: where it
    /// is false, and where the key is missing (the only way these atoms error).
    fn complement(
        &self,
        atom: Atom<'_>,
        node: &Expr,
    ) -> Result<Formula<Self::Leaf>, TranslateError>;
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

/// Translates `node` on `side` by pushing negation down to the leaves.
pub(crate) fn lower<T: Target>(
    target: &T,
    node: &Expr,
    side: Side,
    depth: usize,
) -> Result<Formula<T::Leaf>, TranslateError> {
    if depth > MAX_EXPR_DEPTH {
        return Err(TranslateError::TooDeep {
            what: "plan condition",
            depth,
            limit: MAX_EXPR_DEPTH,
        });
    }
    match node {
        Expr::Value(Value::Bool(b)) => Ok(Formula::Const(*b == side.is_true())),
        Expr::Call(Op::And, args) | Expr::Call(Op::Or, args) => {
            // T(and) = ∩T and F(or) = ∩F; T(or) = ∪T and F(and) = ∪F.
            let conjunctive = matches!(node, Expr::Call(Op::And, _)) == side.is_true();
            let plan = existence_plan(args, side, conjunctive);
            let parts = args
                .iter()
                .zip(plan)
                .map(|(a, how)| match how {
                    Operand2::Lower => lower(target, a, side, depth + 1),
                    Operand2::Const(b) => Ok(Formula::Const(b)),
                    Operand2::Complement => {
                        let (leaf, leaf_side) = peel(a, side);
                        let (atom, _) = parse_atom(leaf, leaf_side)?;
                        target.complement(atom, leaf)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if conjunctive {
                Formula::and(parts)
            } else {
                Formula::or(parts)
            })
        }
        Expr::Call(Op::Not, args) => match args.as_slice() {
            [a] => lower(target, a, side.flip(), depth + 1),
            _ => Err(unsupported(node, side, "`not` takes exactly one operand")),
        },
        _ => {
            let (atom, side) = parse_atom(node, side)?;
            target.atom(atom, side, node)
        }
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

/// The HTTP methods the databases route on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    /// `head_is_get`: the database answers HEAD like GET (Chroma's axum does; Qdrant's actix
    /// routes do not, so there HEAD is no route at all).
    pub(crate) fn of(method: &http::Method, head_is_get: bool) -> Option<Verb> {
        use http::Method;
        [
            (Method::GET, Verb::Get),
            (Method::POST, Verb::Post),
            (Method::PUT, Verb::Put),
            (Method::PATCH, Verb::Patch),
            (Method::DELETE, Verb::Delete),
        ]
        .into_iter()
        .find_map(|(known, verb)| (*method == known).then_some(verb))
        .or_else(|| (head_is_get && *method == Method::HEAD).then_some(Verb::Get))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod testkit {
    //! Shared test helpers: plan builders, a reference evaluator of the plan IR with CEL's
    //! three-valued semantics, and proptest generators of plans and records.

    use crate::plan::value::{lookup_key, MapKey};
    use crate::plan::{Expr, Op, Value};
    use proptest::prelude::*;
    use serde_json::{json, Value as Json};
    use std::cmp::Ordering;

    pub fn attr(name: &str) -> Expr {
        Expr::var(&format!("request.resource.attr.{name}"))
    }

    /// `request.resource.attr["name"]`.
    pub fn attr_index(name: &str) -> Expr {
        Expr::call(
            Op::Index,
            vec![
                Expr::var("request.resource.attr"),
                Expr::Value(Value::string(name)),
            ],
        )
    }

    pub fn id() -> Expr {
        Expr::var("request.resource.id")
    }

    /// A constant from JSON (integers stay ints, other numbers are doubles).
    pub fn lit(j: Json) -> Expr {
        Expr::Value(Value::from_json(&j))
    }

    pub fn call(op: Op, args: Vec<Expr>) -> Expr {
        Expr::call(op, args)
    }

    pub fn eq(a: Expr, b: Expr) -> Expr {
        call(Op::Eq, vec![a, b])
    }
    pub fn ne(a: Expr, b: Expr) -> Expr {
        call(Op::Ne, vec![a, b])
    }
    pub fn lt(a: Expr, b: Expr) -> Expr {
        call(Op::Lt, vec![a, b])
    }
    pub fn le(a: Expr, b: Expr) -> Expr {
        call(Op::Le, vec![a, b])
    }
    pub fn gt(a: Expr, b: Expr) -> Expr {
        call(Op::Gt, vec![a, b])
    }
    pub fn ge(a: Expr, b: Expr) -> Expr {
        call(Op::Ge, vec![a, b])
    }
    pub fn in_(a: Expr, b: Expr) -> Expr {
        call(Op::In, vec![a, b])
    }
    pub fn has(name: &str) -> Expr {
        call(Op::Has, vec![attr(name)])
    }
    pub fn not(a: Expr) -> Expr {
        call(Op::Not, vec![a])
    }
    pub fn and(args: Vec<Expr>) -> Expr {
        call(Op::And, args)
    }
    pub fn or(args: Vec<Expr>) -> Expr {
        call(Op::Or, args)
    }

    /// A record: its metadata (the `R.attr` map) and `R.id`.
    #[derive(Debug, Clone)]
    pub struct Record {
        pub id: String,
        pub meta: serde_json::Map<String, Json>,
    }

    /// CEL evaluation of a plan on a record: `Err(())` is an evaluation error.
    pub fn eval(e: &Expr, r: &Record) -> Result<Value, ()> {
        if let Some(a) = super::attr_ref(e) {
            return lookup(&a.segments, r);
        }
        match e {
            Expr::Value(v) => Ok(v.clone()),
            Expr::Variable(v) if v == super::RESOURCE_ID => Ok(Value::string(&r.id)),
            Expr::Variable(_) => Err(()),
            Expr::Call(op, args) => match op {
                Op::And | Op::Or => {
                    let absorbing = *op == Op::Or;
                    let mut error = false;
                    for a in args {
                        match eval(a, r) {
                            Ok(Value::Bool(b)) if b == absorbing => return Ok(Value::Bool(b)),
                            Ok(Value::Bool(_)) => {}
                            _ => error = true,
                        }
                    }
                    if error {
                        Err(())
                    } else {
                        Ok(Value::Bool(!absorbing))
                    }
                }
                Op::Not => match (args.len(), args.first().map(|a| eval(a, r))) {
                    (1, Some(Ok(Value::Bool(b)))) => Ok(Value::Bool(!b)),
                    _ => Err(()),
                },
                Op::Eq | Op::Ne => {
                    let [a, b] = args.as_slice() else {
                        return Err(());
                    };
                    let same = eval(a, r)?.cel_eq(&eval(b, r)?);
                    Ok(Value::Bool(same == (*op == Op::Eq)))
                }
                Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                    let [a, b] = args.as_slice() else {
                        return Err(());
                    };
                    let ord = eval(a, r)?.cel_cmp(&eval(b, r)?).ok_or(())?;
                    Ok(Value::Bool(match op {
                        Op::Lt => ord == Ordering::Less,
                        Op::Le => ord != Ordering::Greater,
                        Op::Gt => ord == Ordering::Greater,
                        _ => ord != Ordering::Less,
                    }))
                }
                Op::In => {
                    let [a, b] = args.as_slice() else {
                        return Err(());
                    };
                    let needle = eval(a, r)?;
                    match eval(b, r)? {
                        Value::List(items) => {
                            Ok(Value::Bool(items.iter().any(|i| needle.cel_eq(i))))
                        }
                        Value::Map(m) => {
                            let k = needle.to_map_key().ok_or(())?;
                            Ok(Value::Bool(lookup_key(&m, &k).is_some()))
                        }
                        _ => Err(()),
                    }
                }
                Op::List => Ok(Value::list(
                    args.iter()
                        .map(|a| eval(a, r))
                        .collect::<Result<Vec<_>, _>>()?,
                )),
                Op::Has => {
                    let [a] = args.as_slice() else { return Err(()) };
                    let at = super::attr_ref(a).ok_or(())?;
                    let (last, parents) = at.segments.split_last().ok_or(())?;
                    if parents.is_empty() {
                        return Ok(Value::Bool(r.meta.contains_key(last)));
                    }
                    match lookup(parents, r)? {
                        Value::Map(m) => {
                            Ok(Value::Bool(lookup_key(&m, &MapKey::string(last)).is_some()))
                        }
                        _ => Err(()),
                    }
                }
                _ => Err(()),
            },
        }
    }

    fn lookup(segments: &[String], r: &Record) -> Result<Value, ()> {
        let (first, rest) = segments.split_first().ok_or(())?;
        let mut v = Value::from_json(r.meta.get(first).ok_or(())?);
        for s in rest {
            v = match v {
                Value::Map(m) => lookup_key(&m, &MapKey::string(s)).cloned().ok_or(())?,
                _ => return Err(()),
            };
        }
        Ok(v)
    }

    /// The plan allows the record: the condition evaluates to exactly `true`.
    pub fn allowed(e: &Expr, r: &Record) -> bool {
        matches!(eval(e, r), Ok(Value::Bool(true)))
    }

    // ---- generators ----

    /// Required attributes in generated plans; the others may be missing or any shape.
    pub const REQUIRED: [&str; 2] = ["dept", "level"];
    pub const OPTIONAL: [&str; 3] = ["x", "tags", "flag"];

    pub fn scalar() -> impl Strategy<Value = Json> {
        prop_oneof![
            prop::sample::select(vec!["a", "b", "A", ""]).prop_map(|s| json!(s)),
            prop::sample::select(vec![-3i64, -2, 0, 1, 2, 3]).prop_map(|i| json!(i)),
            prop::sample::select(vec![2.0f64, 2.5, -2.5, 0.5, 3.0, -2.0]).prop_map(|f| json!(f)),
            any::<bool>().prop_map(|b| json!(b)),
        ]
    }

    /// Which database's data model records follow.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Model {
        /// Scalars and homogeneous scalar arrays; no null, no objects.
        Chroma,
        /// Any JSON, including null, mixed and nested arrays, objects.
        Qdrant,
    }

    fn homogeneous_array() -> impl Strategy<Value = Json> {
        prop_oneof![
            prop::collection::vec(prop::sample::select(vec!["a", "b", "A"]), 0..3)
                .prop_map(|v| json!(v)),
            prop::collection::vec(prop::sample::select(vec![-2i64, 1, 2, 3]), 0..3)
                .prop_map(|v| json!(v)),
            prop::collection::vec(prop::sample::select(vec![2.0f64, 2.5, -2.0, 3.0]), 0..3)
                .prop_map(|v| json!(v)),
            prop::collection::vec(any::<bool>(), 0..3).prop_map(|v| json!(v)),
        ]
    }

    /// A value for an attribute that may be missing (`None`) or any shape.
    pub fn optional_value(model: Model) -> BoxedStrategy<Option<Json>> {
        match model {
            Model::Chroma => prop_oneof![
                2 => Just(None),
                4 => scalar().prop_map(Some),
                3 => homogeneous_array().prop_map(Some),
            ]
            .boxed(),
            Model::Qdrant => {
                let elem = prop_oneof![
                    4 => scalar(),
                    1 => Just(Json::Null),
                    1 => prop::collection::vec(scalar(), 0..2).prop_map(Json::Array),
                ];
                prop_oneof![
                    2 => Just(None),
                    1 => Just(Some(Json::Null)),
                    4 => scalar().prop_map(Some),
                    3 => prop::collection::vec(elem, 0..3).prop_map(|v| Some(Json::Array(v))),
                    // Object keys never equal a generated string constant (see the module
                    // docs of qdrant::filter for membership in maps).
                    1 => prop::collection::btree_map(
                        prop::sample::select(vec!["k1", "k2"]),
                        scalar(),
                        0..2,
                    )
                    .prop_map(|m| Some(json!(m))),
                ]
                .boxed()
            }
        }
    }

    /// A record's metadata: required attributes always hold a scalar.
    pub fn metadata(model: Model) -> impl Strategy<Value = serde_json::Map<String, Json>> {
        (
            scalar(),
            scalar(),
            optional_value(model),
            optional_value(model),
            optional_value(model),
        )
            .prop_map(|(d, l, x, t, f)| {
                let mut m = serde_json::Map::new();
                m.insert("dept".into(), d);
                m.insert("level".into(), l);
                for (k, v) in [("x", x), ("tags", t), ("flag", f)] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                m
            })
    }

    fn any_attr() -> impl Strategy<Value = Expr> {
        let names: Vec<&str> = REQUIRED.iter().chain(OPTIONAL.iter()).copied().collect();
        (prop::sample::select(names), any::<bool>()).prop_map(|(n, indexed)| {
            if indexed {
                attr_index(n)
            } else {
                attr(n)
            }
        })
    }

    fn literal_value() -> impl Strategy<Value = Json> {
        prop_oneof![9 => scalar(), 1 => Just(Json::Null)]
    }

    /// Point ids of generated records (Qdrant's canonical string forms).
    pub const IDS: [&str; 4] = ["1", "2", "3", "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"];

    fn id_literal() -> impl Strategy<Value = Json> {
        prop_oneof![
            prop::sample::select(IDS.to_vec()).prop_map(|s| json!(s)),
            prop::sample::select(vec!["01", "5C56C793-69F3-4FBF-87E6-C4BF54C28C26", "x"])
                .prop_map(|s| json!(s)),
            Just(json!(1)),
        ]
    }

    fn optional_attr() -> impl Strategy<Value = Expr> {
        (prop::sample::select(OPTIONAL.to_vec()), any::<bool>()).prop_map(|(n, indexed)| {
            if indexed {
                attr_index(n)
            } else {
                attr(n)
            }
        })
    }

    fn number() -> impl Strategy<Value = Json> {
        prop_oneof![
            prop::sample::select(vec![-3i64, -2, 0, 1, 2, 3]).prop_map(|i| json!(i)),
            prop::sample::select(vec![2.0f64, 2.5, -2.5, 0.5, -0.5]).prop_map(|f| json!(f)),
        ]
    }

    fn leaf() -> impl Strategy<Value = Expr> {
        let side = |a: Expr, v: Json, flip: bool, op: Op| {
            if flip {
                call(op, vec![lit(v), a])
            } else {
                call(op, vec![a, lit(v)])
            }
        };
        let equality = (
            prop::sample::select(vec![Op::Eq, Op::Ne]),
            any_attr(),
            literal_value(),
            any::<bool>(),
        )
            .prop_map(move |(op, a, v, flip)| side(a, v, flip, op));
        // Mostly numbers: other ordered types are refused by both databases.
        let ordering = (
            prop::sample::select(vec![Op::Lt, Op::Le, Op::Gt, Op::Ge]),
            any_attr(),
            prop_oneof![9 => number(), 1 => literal_value()],
            any::<bool>(),
        )
            .prop_map(move |(op, a, v, flip)| side(a, v, flip, op));
        let in_list = (any_attr(), prop::collection::vec(literal_value(), 0..4))
            .prop_map(|(a, vs)| in_(a, lit(Json::Array(vs))));
        let contains = (scalar(), prop_oneof![4 => optional_attr(), 1 => any_attr()])
            .prop_map(|(v, a)| in_(lit(v), a));
        let has_ = any_attr().prop_map(|a| call(Op::Has, vec![a]));
        let ids = prop_oneof![
            (id_literal(), any::<bool>()).prop_map(|(v, e)| {
                if e {
                    eq(id(), lit(v))
                } else {
                    ne(lit(v), id())
                }
            }),
            prop::collection::vec(id_literal(), 0..3)
                .prop_map(|vs| in_(id(), lit(Json::Array(vs)))),
        ];
        // An existence test next to a comparison on the same attribute.
        let guarded = (
            0..7u8,
            prop::sample::select(
                REQUIRED
                    .iter()
                    .chain(OPTIONAL.iter())
                    .copied()
                    .collect::<Vec<_>>(),
            ),
            any::<bool>(),
            literal_value(),
            prop::collection::vec(literal_value(), 0..3),
        )
            .prop_map(|(shape, n, indexed, v, vs)| {
                let a = if indexed { attr_index(n) } else { attr(n) };
                let h = has(n);
                match shape {
                    0 => and(vec![h, eq(a, lit(v))]),
                    1 => and(vec![h, ne(a, lit(v))]),
                    2 => not(and(vec![h, eq(a, lit(v))])),
                    3 => or(vec![not(h), ne(lit(v), a)]),
                    4 => not(and(vec![h, in_(a, lit(Json::Array(vs)))])),
                    5 => and(vec![not(h), eq(a, lit(v))]),
                    _ => or(vec![not(h), lt(a, lit(v))]),
                }
            });
        prop_oneof![
            2 => guarded,
            4 => equality,
            3 => ordering,
            3 => in_list,
            2 => contains,
            1 => has_,
            1 => any_attr(),
            1 => any::<bool>().prop_map(Expr::bool),
            1 => ids,
        ]
    }

    /// Random plan conditions: leaves under `and`, `or` and `not`.
    pub fn plan() -> impl Strategy<Value = Expr> {
        leaf().prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(and),
                prop::collection::vec(inner.clone(), 2..4).prop_map(or),
                inner.prop_map(not),
            ]
        })
    }

    /// Shows a translator property is not vacuous: of 400 deterministic random plans over
    /// `model` records, more than 120 must translate (`check` returns whether one did).
    pub fn assert_many_translate(
        model: Model,
        check: impl Fn(&Expr, &[serde_json::Map<String, Json>]) -> bool,
    ) {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strategy = (plan(), prop::collection::vec(metadata(model), 8));
        let mut translated = 0;
        for _ in 0..400 {
            let (e, metas) = strategy.new_tree(&mut runner).unwrap().current();
            if check(&e, &metas) {
                translated += 1;
            }
        }
        assert!(
            translated > 120,
            "only {translated} of 400 random plans translated"
        );
    }
}
