//! `vecgate plan --pdp URL`: the plan an existing Cerbos PDP gives for one action, as vecgate
//! reads it (its PlanResources answer translated exactly, or refused, as the proxy does).
//!
//! The PDP's plan is what the proxy narrows reads with; the proxy then confirms every hit with
//! the PDP's check, which the printed plan does not show (README, "Pointing vecgate at an
//! existing PDP").

use crate::plan::Plan;
use crate::policy::pdp::{PdpClient, PdpConfig};
use crate::policy::planner::Principal;
use std::time::Duration;

/// Time allowed for the PDP's answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The PDP's plan for the one action, or the exit code after saying why there is none.
pub(super) fn plan(url: &str, principal: &Principal, kind: &str, actions: &[String]) -> Result<Plan, i32> {
    let [action] = actions else {
        eprintln!("error: with --pdp, give exactly one --action (the PDP plans one action at a time)");
        return Err(2);
    };
    let config = PdpConfig {
        url: url.trim_end_matches('/').to_string(),
        timeout: TIMEOUT,
        plan_cache_ttl: Duration::ZERO,
        ca_file: None,
        send_token: false,
    };
    let client = PdpClient::new(&config).map_err(|e| {
        eprintln!("error: {e}");
        2
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the runtime: {e}");
        1
    })?;
    let plan = runtime.block_on(client.plan(principal, None, kind, action)).map_err(|e| {
        eprintln!("error: {e}");
        1
    })?;
    Ok(Plan::clone(&plan))
}
