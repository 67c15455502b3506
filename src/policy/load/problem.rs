//! What can go wrong in a load: a problem with its file, position and kind, and the error
//! that carries every problem found.

use std::fmt;

/// What kind of problem a [`Problem`] is, so callers and tests need not parse messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// A file or directory could not be read.
    Io,
    /// Not valid YAML or JSON (including an undefined alias or a bad merge key).
    Syntax,
    /// A mapping has the same key twice.
    DuplicateKey,
    /// A key the policy format does not define.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A value of the wrong type, or one that breaks a format rule (name pattern, enum value,
    /// empty list, repeated list item, several `match` operators, …).
    InvalidValue,
    /// `apiVersion` is not `api.cerbos.dev/v1`.
    ApiVersion,
    /// A document has no policy body, or more than one.
    PolicyType,
    /// A CEL expression does not compile.
    Cel,
    /// A feature the format defines but the engine does not run (`condition.script`).
    Unsupported,
    /// A variable or constant has more than one definition for the same policy.
    DuplicateDefinition,
    /// A reference to a variable that is not defined.
    UndefinedVariable,
    /// A reference to a constant that is not defined.
    UndefinedConstant,
    /// Variables that reference each other in a cycle (or a variable that uses itself).
    VariableCycle,
    /// An import (derived roles, variables or constants) that names nothing loaded.
    MissingImport,
    /// A rule names a derived role that no imported set defines.
    UndefinedDerivedRole,
    /// A rule names a derived role that more than one imported set defines.
    AmbiguousDerivedRole,
    /// Two policies with the same identity (kind, name, version, scope).
    DuplicatePolicy,
    /// Two rules, derived-role definitions or principal-rule resources in one policy share a
    /// name.
    DuplicateName,
    /// A resource rule with neither `roles` nor `derivedRoles`.
    NoRoles,
    /// A scoped policy whose parent scope has no matching policy.
    MissingAncestor,
    /// Resource and principal policies in one scope disagree on `scopePermissions`.
    ScopePermissionsConflict,
}

/// One problem found while loading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the policy directory (or the name given to
    /// [`load_documents`]).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    pub kind: ProblemKind,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.reason)
    }
}

/// Every problem that stopped a policy set from loading.
#[derive(Debug, thiserror::Error)]
#[error("{}", render_problems(&self.problems))]
pub struct LoadErrors {
    pub problems: Vec<Problem>,
}

impl LoadErrors {
    /// The kinds of all problems, in report order.
    pub fn kinds(&self) -> Vec<ProblemKind> {
        self.problems.iter().map(|p| p.kind).collect()
    }
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn io_problem(file: String, reason: &str) -> Problem {
    Problem {
        file,
        line: None,
        column: None,
        kind: ProblemKind::Io,
        reason: reason.to_string(),
    }
}

