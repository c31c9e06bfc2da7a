//! Action 13 · SentinelOne Disconnect from Network (`sentinelone-disconnect-network`).
//!
//! Isolates the computers behind each IP Address, IPv6 Address or FQDN (a computer name) from
//! the network: the shared agent look-up (`GET /agents`, many indicators per request) finds
//! their agents, narrowed by the optional `query` and site filters, then
//! `POST /agents/actions/disconnect` is sent with `filter.ids` = those agent ids, up to 1,000
//! per request and never without ids. Agents already disconnected are not sent again. Adds
//! `Computers Disconnected from Network` = the number of the indicator's agents.
//!
//! Isolation cuts a computer off, so a broad indicator (a short host name shared by many
//! computers, an address reused across sites) must not isolate a fleet by accident: an
//! indicator matching more than `max_agents_per_indicator` agents changes nothing and fails
//! with `input.over_limit`; the other indicators of the batch proceed. Dry-run plans the POSTs
//! and sends no write. See [`super::network`].

use schemars::JsonSchema;
use serde::Deserialize;

use super::agents::Scope;
use super::network::{self, Direction, Limit, Settings};
use super::{Action, RunContext};
use crate::error::Failure;

pub struct DisconnectNetwork;

/// Parameters of action 13.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// SentinelOne free-text agent search that every agent acted on must also satisfy.
    pub query: Option<String>,
    /// Only agents of these sites.
    pub site_ids: Option<Vec<String>>,
    /// An indicator matching more agents than this is refused (1–1000, default 5).
    pub max_agents_per_indicator: u32,
}

impl Action for DisconnectNetwork {
    type Params = Params;

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        network::run(
            ctx,
            Settings {
                direction: Direction::Disconnect,
                scope: Scope {
                    query: params.query.as_deref(),
                    site_ids: params.site_ids.as_deref().unwrap_or_default(),
                },
                limit: Some(Limit {
                    max_agents: params.max_agents_per_indicator as usize,
                    param: "max_agents_per_indicator",
                }),
            },
        )
    }
}
