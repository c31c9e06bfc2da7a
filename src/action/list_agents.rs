//! Action 9 · SentinelOne List Agents (`sentinelone-list-agents`).
//!
//! Finds the SentinelOne agents behind each IP Address, IPv6 Address or FQDN (exactly the
//! agent's fully-qualified name) with the shared agent look-up (`GET /agents`, many indicators
//! per request, every page; see [`super::lookup::agents`] for the matching rules), narrowed by the
//! optional free-text `query` and site filters, and adds one set of attributes per matching agent: its id, computer name, OS,
//! network status and last activity. An indicator with no agent succeeds with no attribute.
//! Read-only: a dry run does the same.

use schemars::JsonSchema;
use serde::Deserialize;

use super::lookup::agents::{self, Agent, Scope};
use super::{Action, RunContext};
use crate::error::Failure;
use crate::result::AddedAttribute;

/// Computer names written in one detail before "and N more".
const NAMES_IN_DETAIL: usize = 10;

pub struct ListAgents;

/// Parameters of action 9.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// SentinelOne free-text agent search that every match must also satisfy.
    pub query: Option<String>,
    /// Only agents of these sites.
    pub site_ids: Option<Vec<String>>,
}

/// The attributes of one agent, in a fixed order; absent fields are left out.
fn attributes(agent: &Agent) -> Vec<AddedAttribute> {
    [
        ("SentinelOne Agent ID", Some(agent.id.as_str())),
        ("SentinelOne Agent Name", Some(agent.display_name())),
        ("SentinelOne Agent OS", agent.os.as_deref()),
        (
            "SentinelOne Network Status",
            agent.network_status.as_deref(),
        ),
        ("SentinelOne Last Active", agent.last_active.as_deref()),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|value| AddedAttribute::new(name, value)))
    .collect()
}

impl Action for ListAgents {
    type Params = Params;

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let ids = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let scope = Scope {
            query: params.query.as_deref(),
            site_ids: params.site_ids.as_deref().unwrap_or_default(),
        };
        let found = agents::find(ctx, &ids, scope);
        for (id, found) in ids.into_iter().zip(found) {
            let Some(found) = found else { continue };
            let agents = found.agents.as_slice();
            if agents.is_empty() {
                ctx.succeed(id, found.no_match_detail(), Vec::new());
                continue;
            }
            let all: Vec<&Agent> = agents.iter().collect();
            let detail = format!(
                "{} matching agent(s): {}",
                agents.len(),
                agents::name_list(&all, NAMES_IN_DETAIL)
            );
            let attributes = agents.iter().flat_map(attributes).collect();
            ctx.succeed(id, detail, attributes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn one_set_of_attributes_per_agent_without_absent_fields() {
        let agent = Agent::from_json(&json!({
            "id": "657613730168123650", "computerName": "ACME-SRV-FS02",
            "osName": "Windows Server 2022 Datacenter", "osType": "windows",
            "networkStatus": "connected", "lastActiveDate": null
        }))
        .unwrap();
        let names: Vec<(String, String)> = attributes(&agent)
            .into_iter()
            .map(|attribute| (attribute.name, attribute.value))
            .collect();
        assert_eq!(
            names,
            [
                ("SentinelOne Agent ID", "657613730168123650"),
                ("SentinelOne Agent Name", "ACME-SRV-FS02"),
                ("SentinelOne Agent OS", "Windows Server 2022 Datacenter"),
                ("SentinelOne Network Status", "connected"),
            ]
            .map(|(name, value)| (name.to_string(), value.to_string()))
        );
    }
}
