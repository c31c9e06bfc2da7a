//! Action 12 · SentinelOne Connect to Network (`sentinelone-connect-network`).
//!
//! Reconnects the computers behind each IP Address, IPv6 Address or FQDN (exactly the agent's
//! fully-qualified name) to the network: the shared agent look-up (`GET /agents`, many
//! indicators per request) finds their agents, narrowed by the optional `query` and site filters, then
//! `POST /agents/actions/connect` is sent with `filter.ids` = those agent ids, up to 1,000 per
//! request and never without ids. Agents already connected are not sent again. Adds
//! `Computers Reconnected to Network` = the number of the indicator's agents (all connected
//! once the run is over). Dry-run plans the POSTs and sends no write. See [`super::disconnect_network`], whose body this shares.

use schemars::JsonSchema;
use serde::Deserialize;

use super::disconnect_network::{Direction, Settings, change_network};
use super::lookup::agents::Scope;
use super::lookup::protected::Protected;
use super::{Action, RunContext};
use crate::error::Failure;

pub struct ConnectNetwork;

/// Parameters of action 12.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// SentinelOne free-text agent search that every agent acted on must also satisfy.
    pub query: Option<String>,
    /// Only agents of these sites.
    pub site_ids: Option<Vec<String>>,
}

impl Action for ConnectNetwork {
    type Params = Params;

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        change_network(
            ctx,
            Settings {
                direction: Direction::Connect,
                scope: Scope {
                    query: params.query.as_deref(),
                    site_ids: params.site_ids.as_deref().unwrap_or_default(),
                },
                // Reconnecting is the safe direction: no per-indicator limit.
                limit: None,
                // Reconnecting harms no computer: nothing to protect.
                protected: &Protected::default(),
            },
        )
    }
}
