//! Network isolation and reconnection of the computers behind indicators, shared by actions 12
//! (connect) and 13 (disconnect).
//!
//! The agents of every IP Address, IPv6 Address or FQDN are found with the shared look-up
//! ([`super::lookup::agents`]: an IP must equal an interface address, an FQDN the agent's
//! fully-qualified name — a write never rests on a partial match), then `POST /agents/actions/{connect|disconnect}` is sent with
//! `filter.ids` = their agent ids, at most 1,000 per request, each agent once however many
//! indicators match it. A filter is never sent without ids: SentinelOne reads an empty filter
//! as "every agent in scope". An indicator with no agent sends nothing.
//!
//! Agents the look-up already shows in the wanted state (`disconnected` for a disconnect,
//! `connected` for a connect) are not sent again, so a second run sends nothing and still
//! reports every indicator succeeded. Agents in a transitional state (`connecting`,
//! `disconnecting`) are sent, which SentinelOne treats as a no-op or a retry.
//!
//! With a per-indicator limit (disconnect), an indicator matching more agents than the limit
//! changes nothing and fails with `input.over_limit`; its agents are sent only where another,
//! accepted indicator of the batch matches them too.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::lookup::agents::{self, Agent, Found, Scope};
use super::{Reply, RunContext, TargetId, Tense, Write, distinct_targets};
use crate::error::{ErrorCode, Failure};
use crate::result::{AddedAttribute, Warning};

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
}

/// A per-indicator agent limit.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max_agents: usize,
    /// The configuration parameter that holds it, named in the refusal.
    pub param: &'static str,
}

/// Connects or disconnects the agents of every pending target of `ctx`.
pub fn run(ctx: &mut RunContext<'_>, settings: Settings<'_>) -> Result<(), Failure> {
    let ids = ctx.pending();
    if ids.is_empty() {
        return Ok(());
    }
    let direction = settings.direction;
    let found = agents::find(ctx, &ids, settings.scope);
    let accepted = within_limit(ctx, ids, found, settings.limit);
    send(ctx, direction, &accepted);
    for (id, found) in accepted {
        let detail = report(direction, &found, ctx.tense());
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

/// Sends (or plans) the action for every agent not yet in the wanted state, each once however
/// many indicators match it.
fn send(ctx: &mut RunContext<'_>, direction: Direction, accepted: &[(TargetId, Found)]) {
    let mut owners: BTreeMap<&str, BTreeSet<TargetId>> = BTreeMap::new();
    for (id, found) in accepted {
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
                code: "upstream.partially_applied".into(),
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

/// An indicator's detail, in the run's tense.
fn report(direction: Direction, found: &Found, tense: Tense) -> String {
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
    use serde_json::json;

    use super::*;

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
