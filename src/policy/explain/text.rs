//! The explanation written for a person: decision first, then each rule with its condition
//! as a tree of values, then the pushed-down filter. Everything shown comes from the
//! [`Explanation`] (the JSON document holds the same facts).

use super::values::{ConditionNode, ExprNode, Outcome};
use super::{Explanation, RuleReport};
use std::fmt::Write as _;

/// The report as text.
pub fn render(e: &Explanation) -> String {
    let mut out = String::new();
    let p = &e.principal;
    let r = &e.resource;
    let _ = writeln!(
        out,
        "{} {} {} {}: {}",
        p["id"].as_str().unwrap_or(""),
        e.action,
        r["kind"].as_str().unwrap_or(""),
        r["id"],
        e.decision
    );
    let _ = writeln!(out, "  {}", e.reason);
    let _ = writeln!(out, "  policies.evaluation: {}", e.evaluation);
    let _ = writeln!(out, "principal: roles {} attr {}", p["roles"], p["attr"]);
    let _ = writeln!(out, "record:    attr {}", r["attr"]);
    if !e.derived_roles.is_empty() {
        let _ = writeln!(out, "\nderived roles the principal's roles could give:");
        for d in &e.derived_roles {
            let active = match d.active {
                Some(true) => "active",
                Some(false) => "not active",
                None => "error (cerbos_strict)",
            };
            let _ = writeln!(out, "  {} (parents {}): {active}", d.name, d.parent_roles.join(", "));
            if let Some(c) = &d.condition {
                condition(&mut out, c, 4);
            }
        }
    }
    if e.rules.is_empty() {
        let _ = writeln!(out, "\nno rule applies to the principal's roles for this action");
    } else {
        let _ = writeln!(out, "\nrules that apply to the principal's roles, in the check's order:");
    }
    for (i, rule) in e.rules.iter().enumerate() {
        rule_text(&mut out, i, rule);
    }
    let f = &e.filter;
    let _ = writeln!(out, "\nfilter pushed down for this principal: {}", f.plan_text);
    if let Some(db) = &f.database_filter {
        let _ = writeln!(out, "  as the database's filter: {db}");
    }
    if let Some(note) = &f.database_filter_note {
        let _ = writeln!(out, "  {note}");
    }
    let _ = writeln!(
        out,
        "  this record {} the filter",
        if f.record_matches { "matches" } else { "does not match" }
    );
    if !f.agrees_with_check {
        let _ = writeln!(
            out,
            "  BUG: the filter and the check disagree on this record; please report it with this output"
        );
    }
    out
}

fn rule_text(out: &mut String, i: usize, r: &RuleReport) {
    let name = r.rule.as_deref().map(|n| format!("{n:?}")).unwrap_or_else(|| "(unnamed)".into());
    let scope = if r.scope.is_empty() { "root scope".to_string() } else { format!("scope {:?}", r.scope) };
    let _ = write!(out, "  [{i}] {} {name} — {} {}, {scope}, role {}", r.effect, r.policy, r.file, r.role);
    if let Some(d) = &r.derived_role {
        let _ = write!(out, " via derived role {d}");
    }
    out.push('\n');
    let status = match (r.reached, r.matched) {
        (false, _) => "not reached: the check had decided before".to_string(),
        (true, Some(true)) => "matched".to_string(),
        (true, Some(false)) => "did not match".to_string(),
        (true, None) => "an evaluation error here ended the check".to_string(),
    };
    let decided = if r.decided { " — DECIDED" } else { "" };
    let _ = writeln!(out, "      {status}{decided}");
    if let Some(c) = &r.derived_role_condition {
        let met = r.derived_role_met.as_ref().map(Outcome::word).unwrap_or("-");
        let _ = writeln!(out, "      derived role condition (read as {met}):");
        condition(out, c, 8);
    }
    match (r.condition_kind, &r.condition) {
        ("always", _) | (_, None) => {
            let _ = writeln!(out, "      no condition");
        }
        (kind, Some(c)) => {
            let met = r.condition_met.as_ref().map(Outcome::word).unwrap_or("-");
            let read = if kind == "unless" { "DENY unless" } else { "when" };
            let _ = writeln!(out, "      {read} (read as {met}):");
            condition(out, c, 8);
        }
    }
}

fn pad(out: &mut String, n: usize) {
    out.push_str(&" ".repeat(n));
}

fn condition(out: &mut String, c: &ConditionNode, indent: usize) {
    match c {
        ConditionNode::Expr { source, tree, .. } if source.trim() == tree.text => expr(out, tree, indent),
        ConditionNode::Expr { source, tree, .. } => {
            pad(out, indent);
            let _ = writeln!(out, "{}", source.trim());
            expr(out, tree, indent + 2);
        }
        ConditionNode::All { value, items } | ConditionNode::Any { value, items } | ConditionNode::None { value, items } => {
            let word = match c {
                ConditionNode::All { .. } => "all of",
                ConditionNode::Any { .. } => "any of",
                _ => "none of",
            };
            pad(out, indent);
            let _ = writeln!(out, "{word}: {}", value.word());
            for item in items {
                condition(out, item, indent + 2);
            }
        }
    }
}

fn expr(out: &mut String, n: &ExprNode, indent: usize) {
    pad(out, indent);
    let _ = write!(out, "{} → {}", n.text, n.value.word());
    if let Some(v) = &n.shown {
        let _ = write!(out, " ({v})");
    }
    if let Some(reason) = &n.reason {
        let _ = write!(out, ": {reason}");
    }
    if !n.inputs.is_empty() && n.reason.is_none() {
        let _ = write!(out, "   [{}]", n.inputs.join(", "));
    }
    out.push('\n');
    for o in &n.operands {
        expr(out, o, indent + 2);
    }
}
