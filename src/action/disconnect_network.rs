//! Action 13 · SentinelOne Disconnect from Network (`sentinelone-disconnect-network`).
//!
//! Isolates the computers behind each IP Address, IPv6 Address or FQDN (exactly the agent's
//! fully-qualified name, never a partial match) from the network: the shared agent look-up
//! (`GET /agents`, many indicators per request, [`super::lookup::agents`]) finds their agents,
//! narrowed by the optional `query` and site filters, then `POST /agents/actions/disconnect` is
//! sent with `filter.ids` = those agent ids, up to 1,000 per request, each agent once however
//! many indicators match it. A filter is never sent without ids: SentinelOne reads an empty
//! filter as "every agent in scope". An indicator with no agent sends nothing. Adds
//! `Computers Disconnected from Network` = the number of the indicator's agents.
//!
//! Agents the look-up already shows disconnected are not sent again, so a second run sends
//! nothing and still reports every indicator succeeded. Agents in a transitional state
//! (`connecting`, `disconnecting`) are sent, which SentinelOne treats as a no-op or a retry.
//!
//! Isolation cuts a computer off, so a broad indicator (a name many agents report, such as
//! cloned kiosks, an address reused across sites) must not isolate a fleet by accident: an
//! indicator matching more than `max_agents_per_indicator` agents changes nothing and fails
//! with `input.over_limit`; its agents are sent only where another, accepted indicator of the
//! batch matches them too, and the other indicators proceed. Dry-run plans the POSTs and sends
//! no write.
//!
//! Computers on the `protected_agents` list ([`super::lookup::protected`]) are never sent: they
//! are removed from the indicator's agents after the limit is checked (a broad indicator stays
//! refused however many of its computers are protected), the detail names them, and an
//! indicator all of whose computers are protected fails with `input.protected` — the analyst
//! asked for isolation and did not get it, which a success would hide.
//!
//! Action 12 (connect) is the same change in the other direction, without a limit or a
//! protection list:
//! [`change_network`] is the body of both.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::lookup::agents::{self, Agent, Found, Scope};
use super::lookup::protected::{self, Protected};
use super::{Action, Reply, RunContext, TargetId, Tense, Write, distinct_targets};
use crate::error::{ErrorCode, Failure, WarningCode};
use crate::result::{AddedAttribute, Warning};

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
    /// Agent ids, computer names or IP addresses of computers never to isolate.
    pub protected_agents: Option<Vec<String>>,
}

impl Action for DisconnectNetwork {
    type Params = Params;

    fn preflight(
        params: &Params,
        _state: Option<&Value>,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Failure> {
        Protected::parse(params.protected_agents.as_deref()).map(drop)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let protected = Protected::parse(params.protected_agents.as_deref())?;
        change_network(
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
                protected: &protected,
            },
        )
    }
}

/// Agent ids per request.
const IDS_PER_REQUEST: usize = 1000;

/// Computer names written in one detail before "and N more".
const NAMES_IN_DETAIL: usize = 10;

/// Which way the network changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Connect,
    Disconnect,
}

impl Direction {
    fn path(self) -> &'static str {
        match self {
            Self::Connect => "/agents/actions/connect",
            Self::Disconnect => "/agents/actions/disconnect",
        }
    }

    /// The `networkStatus` an agent has once the action took effect.
    fn wanted_status(self) -> &'static str {
        match self {
            Self::Connect => "connected",
            Self::Disconnect => "disconnected",
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            Self::Connect => "Computers Reconnected to Network",
            Self::Disconnect => "Computers Disconnected from Network",
        }
    }

    /// "reconnected to" / "isolated from" — for "N computer(s) … the network".
    fn done(self) -> &'static str {
        match self {
            Self::Connect => "reconnected to",
            Self::Disconnect => "isolated from",
        }
    }

    fn already(self) -> &'static str {
        match self {
            Self::Connect => "already connected",
            Self::Disconnect => "already isolated",
        }
    }

    fn infinitive(self) -> &'static str {
        match self {
            Self::Connect => "reconnect",
            Self::Disconnect => "isolate",
        }
    }

    fn needs_action(self, agent: &Agent) -> bool {
        agent.network_status.as_deref() != Some(self.wanted_status())
    }
}

/// What one run does.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub direction: Direction,
    pub scope: Scope<'a>,
    /// The most agents one indicator may match (`None`: no limit).
    pub limit: Option<Limit>,
    /// Computers never sent.
    pub protected: &'a Protected,
}

/// A per-indicator agent limit.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max_agents: usize,
    /// The configuration parameter that holds it, named in the refusal.
    pub param: &'static str,
}

/// Connects or disconnects the agents of every pending target of `ctx`: the body of actions 12
/// and 13.
pub fn change_network(ctx: &mut RunContext<'_>, settings: Settings<'_>) -> Result<(), Failure> {
    let ids = ctx.pending();
    if ids.is_empty() {
        return Ok(());
    }
    let direction = settings.direction;
    let found = agents::find(ctx, &ids, settings.scope);
    let accepted = within_limit(ctx, ids, found, settings.limit);
    let accepted = hold_back(ctx, accepted, settings.protected);
    send(ctx, direction, &accepted);
    for (id, found, held) in accepted {
        let detail = report(direction, &found, &held, ctx.tense());
        let count = found.agents.len().to_string();
        ctx.succeed(
            id,
            detail,
            vec![AddedAttribute::new(direction.attribute(), count)],
        );
    }
    Ok(())
}

/// Indicators within the limit, with their agents; the others fail here and send nothing.
fn within_limit(
    ctx: &mut RunContext<'_>,
    ids: Vec<TargetId>,
    found: Vec<Option<Found>>,
    limit: Option<Limit>,
) -> Vec<(TargetId, Found)> {
    let mut accepted = Vec::new();
    for (id, found) in ids.into_iter().zip(found) {
        let Some(found) = found else { continue };
        let agents = &found.agents;
        match limit {
            Some(Limit { max_agents, param }) if agents.len() > max_agents => {
                let all: Vec<&Agent> = agents.iter().collect();
                let message = format!(
                    "'{}' matches {} agents ({}), more than the limit of {max_agents} agents per \
                     indicator; nothing was changed for it (narrow it with site_ids or query, or \
                     raise {param})",
                    ctx.target(id).value,
                    agents.len(),
                    agents::name_list(&all, NAMES_IN_DETAIL),
                );
                ctx.fail(
                    id,
                    Failure::new(ErrorCode::InputOverLimit, message)
                        .with_field(format!("config.{param}")),
                );
            }
            _ => accepted.push((id, found)),
        }
    }
    accepted
}

/// Each indicator's agents without the protected ones, which come back apart; an indicator
/// whose agents are all protected fails here and sends nothing.
fn hold_back(
    ctx: &mut RunContext<'_>,
    accepted: Vec<(TargetId, Found)>,
    protected: &Protected,
) -> Vec<(TargetId, Found, Vec<Agent>)> {
    let mut kept = Vec::new();
    for (id, mut found) in accepted {
        let agents = std::mem::take(&mut found.agents);
        if let Some((agents, held)) = protected.hold_back(ctx, id, agents) {
            found.agents = agents;
            kept.push((id, found, held));
        }
    }
    kept
}

/// Sends (or plans) the action for every agent not yet in the wanted state, each once however
/// many indicators match it.
fn send(
    ctx: &mut RunContext<'_>,
    direction: Direction,
    accepted: &[(TargetId, Found, Vec<Agent>)],
) {
    let mut owners: BTreeMap<&str, BTreeSet<TargetId>> = BTreeMap::new();
    for (id, found, _) in accepted {
        for agent in found
            .agents
            .iter()
            .filter(|agent| direction.needs_action(agent))
        {
            owners.entry(agent.id.as_str()).or_default().insert(*id);
        }
    }
    let keys: Vec<&str> = owners.keys().copied().collect();
    let batches: Vec<&[&str]> = keys.chunks(IDS_PER_REQUEST).collect();
    let affected = ctx.write(
        "network action",
        &batches,
        |batch| distinct_targets(batch.iter().flat_map(|key| owners[key].iter().copied())),
        |batch| {
            Write::post(
                direction.path(),
                json!({ "filter": { "ids": batch }, "data": {} }),
            )
        },
        |_, reply: Reply<Value>| {
            Ok(reply
                .answer()?
                .and_then(|answer| answer.pointer("/data/affected")?.as_u64()))
        },
    );
    for (batch, affected) in batches.iter().zip(affected) {
        // SentinelOne counts only the agents it acted on, and names none of them: a short
        // count cannot be pinned on an indicator, so it is reported for the run.
        if let Some(affected) = affected
            .flatten()
            .filter(|affected| *affected < batch.len() as u64)
        {
            ctx.warn(Warning {
                code: WarningCode::UpstreamPartiallyApplied,
                message: format!(
                    "SentinelOne reported {affected} of {} agents affected by POST {}",
                    batch.len(),
                    direction.path()
                ),
                field: None,
            });
        }
    }
}

/// An indicator's detail, in the run's tense, naming the protected computers left alone.
fn report(direction: Direction, found: &Found, held: &[Agent], tense: Tense) -> String {
    let mut detail = report_agents(direction, found, tense);
    detail.push_str(&protected::left_alone(
        "",
        held.iter().map(Agent::display_name),
    ));
    detail
}

/// The detail of the agents acted on (or found already done).
fn report_agents(direction: Direction, found: &Found, tense: Tense) -> String {
    if found.agents.is_empty() {
        // Succeeded with 0, as DESIGN §6 has every indicator without a match: there is
        // nothing to retry. The detail names same-named computers of other domains, so an
        // analyst sees the look-alike was found and left alone.
        return found.no_match_detail();
    }
    let (to_change, unchanged): (Vec<&Agent>, Vec<&Agent>) = found
        .agents
        .iter()
        .partition(|agent| direction.needs_action(agent));
    let mut parts = Vec::new();
    if !to_change.is_empty() {
        let names = agents::name_list(&to_change, NAMES_IN_DETAIL);
        let count = to_change.len();
        parts.push(tense.pick(
            format!(
                "{count} computer(s) {} the network: {names}",
                direction.done()
            ),
            format!(
                "Dry run: would {} {count} computer(s): {names}",
                direction.infinitive()
            ),
        ));
    }
    if !unchanged.is_empty() {
        parts.push(format!(
            "{} computer(s) {}: {}",
            unchanged.len(),
            direction.already(),
            agents::name_list(&unchanged, NAMES_IN_DETAIL)
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use s1_sim::{Scenario, Simulator};
    use serde_json::{Value, json};

    use super::*;
    use crate::runner::{self, Mode};

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

    #[test]
    fn only_agents_not_yet_in_the_wanted_state_are_sent() {
        let agent = |status: &str| {
            Agent::from_json(&json!({"id": "1", "computerName": "PC", "networkStatus": status}))
                .unwrap()
        };
        assert!(!Direction::Disconnect.needs_action(&agent("disconnected")));
        assert!(Direction::Disconnect.needs_action(&agent("disconnecting")));
        assert!(Direction::Disconnect.needs_action(&agent("connected")));
        assert!(!Direction::Connect.needs_action(&agent("connected")));
        assert!(Direction::Connect.needs_action(&agent("disconnected")));
        assert_eq!(Direction::Connect.path(), "/agents/actions/connect");
        assert_eq!(Direction::Disconnect.path(), "/agents/actions/disconnect");
    }
}
