//! What a rule does when its condition errors (a missing attribute, a type mismatch): the
//! one setting that decides how vecgate's check, plans and filters treat evaluation errors.
//! Measured on the Cerbos 0.55.0 PDP; every decision of vecgate equals the PDP's in the modes
//! the PDP has.

use std::fmt;
use std::str::FromStr;

/// How evaluation errors decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Evaluation {
    /// Cerbos' default: a condition that errors is not met, so an erroring rule is ignored,
    /// ALLOW and DENY alike (a DENY on `R.attr.c == "secret"` does not apply to a record
    /// without `c`). Inside `all`/`any`/`none`, each expression that errors counts as false.
    #[default]
    Cerbos,
    /// Cerbos' `engine.strictEvaluation: true`: an error while evaluating the rules of an
    /// action denies that action, even when another rule allows it. Rules are evaluated in
    /// Cerbos' order (principal policies, then each role in the request's order, scopes from
    /// the most specific, rules in file order, stopping where Cerbos stops), so an error in a
    /// rule Cerbos never reaches changes nothing.
    CerbosStrict,
    /// vecgate's own: an erroring ALLOW does not match and an erroring DENY applies, rule by
    /// rule (CEL's `&&`/`||` still absorb errors inside a condition). Not a PDP mode.
    FailClosed,
}

impl Evaluation {
    /// The configuration spelling.
    pub fn name(self) -> &'static str {
        match self {
            Evaluation::Cerbos => "cerbos",
            Evaluation::CerbosStrict => "cerbos_strict",
            Evaluation::FailClosed => "fail_closed",
        }
    }

    pub const ALL: [Evaluation; 3] = [
        Evaluation::Cerbos,
        Evaluation::CerbosStrict,
        Evaluation::FailClosed,
    ];
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Evaluation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Evaluation::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| {
                format!("`{s}` is not an evaluation mode (cerbos, cerbos_strict or fail_closed)")
            })
    }
}
