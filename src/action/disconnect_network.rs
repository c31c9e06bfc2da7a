//! Action 13 · SentinelOne Disconnect from Network (`sentinelone-disconnect-network`).
//!
//! Isolates the computers behind each IP Address, IPv6 Address or FQDN (exactly the agent's
//! fully-qualified name, never a partial match) from the network: the shared agent look-up
//! (`GET /agents`, many indicators per request) finds their agents, narrowed by the optional `query` and site filters, then
//! `POST /agents/actions/disconnect` is sent with `filter.ids` = those agent ids, up to 1,000
//! per request and never without ids. Agents already disconnected are not sent again. Adds
//! `Computers Disconnected from Network` = the number of the indicator's agents.
//!
//! Isolation cuts a computer off, so a broad indicator (a name many agents report, such as
//! cloned kiosks, an address reused across sites) must not isolate a fleet by accident: an
//! indicator matching more than `max_agents_per_indicator` agents changes nothing and fails
//! with `input.over_limit`; the other indicators of the batch proceed. Dry-run plans the POSTs
//! and sends no write. See [`super::network`].

use schemars::JsonSchema;
use serde::Deserialize;

use super::lookup::agents::Scope;
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::runner::{self, Mode};
    use crate::simulator::{Scenario, Simulator};

    /// The guard's promise: a refused indicator's agents appear in no request body, stay
    /// connected, and the rest of the batch is still isolated.
    #[test]
    fn a_refused_indicator_sends_none_of_its_agents() {
        let agent = |id: &str, name: &str, ip: &str| json!({"id": id, "computerName": name, "siteId": "20", "ips": [ip], "domain": "corp.example"});
        let scenario = json!({
            "api_token": "test-token",
            "accounts": [{"id": "10", "name": "A"}],
            "sites": [{"id": "20", "name": "S", "accountId": "10"}],
            "agents": [
                agent("31", "KIOSK", "10.0.0.31"),
                agent("32", "kiosk", "10.0.0.32"),
                agent("33", "Kiosk", "10.0.0.33"),
                agent("34", "WS-1", "10.0.0.34"),
            ],
        });
        let simulator =
            Simulator::start(Scenario::from_json(&scenario.to_string()).unwrap()).unwrap();
        let envelope = json!({
            "action": "sentinelone-disconnect-network",
            "config": {"hostname": simulator.base_url(), "api_token": "test-token",
                       "max_agents_per_indicator": 2},
            "objects": [
                {"type": "FQDN", "value": "kiosk.corp.example"},
                {"type": "IP Address", "value": "10.0.0.34"},
            ],
        });
        let (result, _) = runner::execute(&envelope.to_string(), Mode::Run { dry_run: false });
        let result = serde_json::to_value(&result).unwrap();
        assert_eq!(result["results"][0]["status"], "failed");
        assert_eq!(result["results"][0]["error"]["code"], "input.over_limit");
        assert_eq!(result["results"][1]["status"], "succeeded");

        let sent: Vec<String> = simulator
            .take_requests()
            .into_iter()
            .filter(|request| request.method == "POST")
            .flat_map(|request| {
                request
                    .body
                    .and_then(|body| body.pointer("/filter/ids").cloned())
                    .and_then(|ids| serde_json::from_value::<Vec<String>>(ids).ok())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(sent, ["34"]);
        let state = simulator.state();
        let status = |id: &str| {
            state["agents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|agent| agent["id"] == id)
                .map(|agent| agent["networkStatus"].clone())
                .unwrap_or(Value::Null)
        };
        for kiosk in ["31", "32", "33"] {
            assert_eq!(status(kiosk), "connected", "agent {kiosk}");
        }
        assert_eq!(status("34"), "disconnected");
    }
}
