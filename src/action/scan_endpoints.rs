//! Action 21 · SentinelOne Scan Endpoints (`sentinelone-scan-endpoints`).
//!
//! Starts (or aborts) a Full Disk Scan on the computers behind each indicator: for an IP
//! Address, IPv6 Address or FQDN, the agents the shared agent look-up finds with its exact
//! matching ([`super::lookup::agents`]); for a SHA-1 or File Path, the computers its threats are
//! on (the shared threat look-up, [`super::lookup::threats`]), whose agents are then read by id
//! (`GET /agents?ids=…`, many per request) for their scan status. Then
//! `POST /agents/actions/initiate-scan` or `/agents/actions/abort-scan` with
//! `{"filter": {"ids": [...]}, "data": {}}`, up to 1,000 agent ids per request, each agent once
//! however many indicators name it (reference §7.3: SW24 `AgentActionsApi.md`; the body shape is
//! that of the other agent actions, §7.2). A filter is never sent without ids: SentinelOne reads
//! an empty filter as "every agent in scope".
//!
//! Agents whose `scanStatus` is `started` are scanning (reference §7.1 for the field; the
//! value from XSOAR SentinelOne-V2 `README.md`, `sentinelone-list-agents`: "started,aborted"):
//! a start skips them, and an abort sends only them, so a second run sends look-ups only.
//! Adds `Computers Scanned` (start) or `Computers Scan Aborted` (abort) = the number of the
//! indicator's computers, all in the wanted state once the run is over.
//!
//! Computers on the `protected_agents` list ([`super::lookup::protected`]) are never sent,
//! whether the scan starts or aborts (a scan loads the computer, which is what the list is
//! for): the detail names them and they are not counted; an indicator all of whose computers
//! are protected fails with `input.protected`. Both look-ups return whole agents, so the list
//! is matched on them directly, with no look-up of its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::ids_with_owners;
use super::lookup::agents::{self, Agent, Scope};
use super::lookup::protected::{self, Protected};
use super::lookup::{self, threats};
use super::{Action, Reply, RunContext, TargetId, Tense, Write, distinct_targets};
use crate::error::Failure;
use crate::indicator::IndicatorType;
use crate::result::AddedAttribute;

/// Agent ids per request (the most the agent look-ups read per page, too).
const IDS_PER_REQUEST: usize = 1000;

/// Computer names written in one detail before "and N more".
const NAMES_IN_DETAIL: usize = 10;

/// The `scanStatus` of an agent whose scan is running.
const SCANNING: &str = "started";

pub struct ScanEndpoints;

/// Parameters of action 21.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Start a full disk scan, or abort a running one.
    pub scan_action: ScanAction,
    /// Agent ids, computer names or IP addresses of computers never to scan.
    pub protected_agents: Option<Vec<String>>,
}

/// The scan choices of the configuration page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ScanAction {
    #[serde(rename = "Start Full Disk Scan")]
    Start,
    #[serde(rename = "Abort Scan")]
    Abort,
}

impl ScanAction {
    fn path(self) -> &'static str {
        match self {
            Self::Start => "/agents/actions/initiate-scan",
            Self::Abort => "/agents/actions/abort-scan",
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            Self::Start => "Computers Scanned",
            Self::Abort => "Computers Scan Aborted",
        }
    }

    /// Whether `agent` needs the request: not yet scanning (start), or scanning (abort).
    fn needs_action(self, agent: &Agent) -> bool {
        let scanning = agent.scan_status.as_deref() == Some(SCANNING);
        match self {
            Self::Start => !scanning,
            Self::Abort => scanning,
        }
    }

    /// (done, planned, already) wording for "N computer(s) …".
    fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Start => (
                "full disk scan started on",
                "would start a full disk scan on",
                "already scanning",
            ),
            Self::Abort => ("scan aborted on", "would abort the scan on", "not scanning"),
        }
    }
}

impl Action for ScanEndpoints {
    type Params = Params;

    fn preflight(
        params: &Params,
        _state: Option<&Value>,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Failure> {
        Protected::parse(params.protected_agents.as_deref()).map(drop)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let ids = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let protected = Protected::parse(params.protected_agents.as_deref())?;
        let found: Vec<(TargetId, Vec<Agent>, Vec<Agent>)> = find(ctx, &ids)
            .into_iter()
            .filter_map(|(id, agents)| {
                let (agents, held) = protected.hold_back(ctx, id, agents)?;
                Some((id, agents, held))
            })
            .collect();
        send(ctx, params.scan_action, &found);
        let tense = ctx.tense();
        for (id, agents, held) in found {
            let mut detail = report(params.scan_action, ctx.target(id).kind, &agents, tense);
            detail.push_str(&protected::left_alone(
                "",
                held.iter().map(Agent::display_name),
            ));
            let count =
                AddedAttribute::new(params.scan_action.attribute(), agents.len().to_string());
            ctx.succeed(id, detail, vec![count]);
        }
        Ok(())
    }
}

/// The agents behind each pending target that both look-ups found: by address or name for
/// hosts, by their threats for files.
fn find(ctx: &mut RunContext<'_>, ids: &[TargetId]) -> Vec<(TargetId, Vec<Agent>)> {
    let (hosts, files): (Vec<TargetId>, Vec<TargetId>) =
        ids.iter().partition(|id| is_host(ctx.target(**id).kind));
    let mut found: Vec<(TargetId, Vec<Agent>)> = Vec::new();
    if !hosts.is_empty() {
        let by_host = agents::find(ctx, &hosts, Scope::default());
        for (id, agents) in hosts.iter().zip(by_host) {
            if let Some(agents) = agents {
                found.push((*id, agents.agents));
            }
        }
    }
    if !files.is_empty() {
        found.extend(agents_of_threats(ctx, &files));
    }
    // A target failed in a later look-up (an agent read shared with another) is left out.
    found.retain(|(id, _)| ctx.is_pending(*id));
    found
}

fn is_host(kind: IndicatorType) -> bool {
    matches!(
        kind,
        IndicatorType::IpAddress | IndicatorType::Ipv6Address | IndicatorType::Fqdn
    )
}

/// The agents of the computers each SHA-1 or File Path target's threats are on, read by id
/// (`GET /agents` with `ids`, many per request); a threat whose agent no longer exists
/// contributes nothing.
fn agents_of_threats(ctx: &mut RunContext<'_>, files: &[TargetId]) -> Vec<(TargetId, Vec<Agent>)> {
    let threats = threats::find_lean(ctx, files, None);
    let mut owners: BTreeMap<String, BTreeSet<TargetId>> = BTreeMap::new();
    let mut of_target: Vec<(TargetId, BTreeSet<String>)> = Vec::new();
    for (id, threats) in files.iter().zip(threats) {
        let Some(threats) = threats else { continue };
        let agent_ids: BTreeSet<String> = threats
            .into_iter()
            .filter_map(|threat| threat.agent_id)
            .collect();
        for agent_id in &agent_ids {
            owners.entry(agent_id.clone()).or_default().insert(*id);
        }
        of_target.push((*id, agent_ids));
    }
    let agents: HashMap<String, Agent> = if owners.is_empty() {
        HashMap::new()
    } else {
        lookup::by_ids(ctx, "agent lookup", ("/agents", "ids"), &owners, |item| {
            Agent::from_json(&item)
        })
        .into_iter()
        .map(|agent| (agent.id.clone(), agent))
        .collect()
    };
    of_target
        .into_iter()
        .map(|(id, agent_ids)| {
            let mut found: Vec<Agent> = agent_ids
                .iter()
                .filter_map(|agent_id| agents.get(agent_id).cloned())
                .collect();
            found.sort_by(|a, b| a.computer_name.cmp(&b.computer_name));
            (id, found)
        })
        .collect()
}

/// Sends (or plans) the scan action for every agent that needs it, each once however many
/// indicators name it.
fn send(
    ctx: &mut RunContext<'_>,
    action: ScanAction,
    found: &[(TargetId, Vec<Agent>, Vec<Agent>)],
) {
    let agents = ids_with_owners(found.iter().map(|(id, agents, _)| {
        let to_send = agents.iter().filter(|agent| action.needs_action(agent));
        (*id, to_send.map(|agent| agent.id.as_str()))
    }));
    let batches: Vec<&[(&str, Vec<TargetId>)]> = agents.chunks(IDS_PER_REQUEST).collect();
    ctx.write(
        "scan action",
        &batches,
        |batch| distinct_targets(batch.iter().flat_map(|(_, owners)| owners.iter().copied())),
        |batch| {
            let ids: Vec<&str> = batch.iter().map(|(agent, _)| *agent).collect();
            Write::post(
                action.path(),
                json!({ "filter": { "ids": ids }, "data": {} }),
            )
        },
        |_, reply: Reply<Value>| reply.answer().map(drop),
    );
}

/// An indicator's detail, in the run's tense.
fn report(action: ScanAction, kind: IndicatorType, agents: &[Agent], tense: Tense) -> String {
    if agents.is_empty() {
        return if is_host(kind) {
            "no matching agent".to_string()
        } else {
            "no computer has a threat of this indicator".to_string()
        };
    }
    let (to_change, unchanged): (Vec<&Agent>, Vec<&Agent>) =
        agents.iter().partition(|agent| action.needs_action(agent));
    let (done, planned, already) = action.words();
    let mut parts = Vec::new();
    if !to_change.is_empty() {
        let names = agents::name_list(&to_change, NAMES_IN_DETAIL);
        let count = to_change.len();
        parts.push(tense.pick(
            format!("{done} {count} computer(s): {names}"),
            format!("Dry run: {planned} {count} computer(s): {names}"),
        ));
    }
    if !unchanged.is_empty() {
        parts.push(format!(
            "{} computer(s) {already}: {}",
            unchanged.len(),
            agents::name_list(&unchanged, NAMES_IN_DETAIL)
        ));
    }
    let text = parts.join("; ");
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, scan_status: &str) -> Agent {
        Agent::from_json(&json!({"id": name, "computerName": name, "scanStatus": scan_status}))
            .unwrap()
    }

    #[test]
    fn only_agents_in_the_other_state_are_sent() {
        let scanning = agent("A", "started");
        let idle = agent("B", "none");
        assert!(!ScanAction::Start.needs_action(&scanning));
        assert!(ScanAction::Start.needs_action(&idle));
        assert!(ScanAction::Abort.needs_action(&scanning));
        assert!(!ScanAction::Abort.needs_action(&idle));
        let detail = report(
            ScanAction::Start,
            IndicatorType::IpAddress,
            &[scanning, idle],
            Tense::Done,
        );
        assert_eq!(
            detail,
            "Full disk scan started on 1 computer(s): B; 1 computer(s) already scanning: A"
        );
    }
}
