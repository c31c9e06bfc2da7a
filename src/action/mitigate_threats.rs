//! Action 2 · SentinelOne Mitigate Threats (`sentinelone-mitigate-threats`).
//!
//! Finds the threats of each SHA-1 or file path (batched look-up), then mitigates all of them
//! with `POST /threats/mitigate/{action}` and `filter.ids` in batches — or, for "Disconnect from
//! Network", isolates their computers with `POST /agents/actions/disconnect` and the agents' ids.
//! A filter is never sent without ids: an empty filter would act on every threat or agent (and
//! `threats` reads a blank threat or agent id as none, so no blank id reaches a filter either).
//! Threats on which the chosen action is in effect — its latest bearing report in
//! `mitigationStatus[]` is a success, and no later success of the opposite action (quarantine
//! against un-quarantine) undid it — and computers already isolated are not sent again, so a
//! second run sends look-ups only and reports the indicators as already done; a threat
//! quarantined and then released is quarantined again.
//!
//! `Computers Affected by mitigation` counts, per indicator, the distinct computers whose
//! threats of that indicator were mitigated: threats SentinelOne reports as skipped in the
//! response's per-threat `details` (e.g. rollback on Linux) do not count. Where a console sends
//! no `details`, every threat of a successful request is counted.
//!
//! Threats on computers of the `protected_agents` list ([`super::lookup::protected`], resolved
//! to agent ids with `GET /agents` before anything is looked up) are never sent, whatever the
//! mitigation: they are removed before the batches are made, the detail names their computers,
//! and an indicator all of whose threats are on protected computers fails with
//! `input.protected`. While the list is set, a threat whose computer SentinelOne does not name
//! (no agent id) is held back too: it cannot be shown to be unprotected.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::lookup::protected::{self, Protected, ProtectedAgents};
use super::lookup::threats::{self, LeanThreat};
use super::{Action, RunContext, TargetId, Tense, Write, distinct_targets};
use crate::error::Failure;
use crate::result::AddedAttribute;

/// Threat or agent ids per request.
const IDS_PER_REQUEST: usize = 1000;

const ATTRIBUTE: &str = "Computers Affected by mitigation";

pub struct MitigateThreats;

/// Parameters of action 2.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// What to do to the matching threats.
    pub mitigation_action: Mitigation,
    /// Extra free-text filter for the threats.
    pub query: Option<String>,
    /// Agent ids, computer names or IP addresses of computers never to mitigate on.
    pub protected_agents: Option<Vec<String>>,
}

/// The mitigation choices of the configuration page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Mitigation {
    Quarantine,
    Kill,
    Remediate,
    #[serde(rename = "Rollback Remediate")]
    RollbackRemediate,
    #[serde(rename = "Disconnect from Network")]
    DisconnectFromNetwork,
    #[serde(rename = "Un_Quarantine")]
    UnQuarantine,
}

impl Mitigation {
    /// The request path.
    fn path(self) -> &'static str {
        match self {
            Self::Quarantine => "/threats/mitigate/quarantine",
            Self::Kill => "/threats/mitigate/kill",
            Self::Remediate => "/threats/mitigate/remediate",
            Self::RollbackRemediate => "/threats/mitigate/rollback-remediation",
            Self::UnQuarantine => "/threats/mitigate/un-quarantine",
            Self::DisconnectFromNetwork => "/agents/actions/disconnect",
        }
    }

    /// Whether this mitigation is already in effect on `threat`, so that sending it again would
    /// change nothing: by the latest of its mitigation reports ([`threats::in_effect`]), or
    /// for isolation by its computer's network status.
    fn already_done(self, threat: &LeanThreat) -> bool {
        match self {
            Self::DisconnectFromNetwork => threat.network_status() == Some("disconnected"),
            Self::Quarantine => threat.in_effect("quarantine"),
            Self::Kill => threat.in_effect("kill"),
            Self::Remediate => threat.in_effect("remediate"),
            Self::RollbackRemediate => threat.in_effect("rollback"),
            Self::UnQuarantine => threat.in_effect("unquarantine"),
        }
    }

    /// Past tense for details.
    fn done(self) -> &'static str {
        match self {
            Self::Quarantine => "quarantined",
            Self::Kill => "killed",
            Self::Remediate => "remediated",
            Self::RollbackRemediate => "rolled back",
            Self::UnQuarantine => "released from quarantine",
            Self::DisconnectFromNetwork => "isolated from the network",
        }
    }
}

/// What one mitigation request achieved: threat (or agent) ids SentinelOne skipped, with why.
#[derive(Debug, Default)]
struct Applied {
    skipped: BTreeMap<String, String>,
}

/// The part of a mitigation answer that is read: each threat's skip reasons. The rest (a
/// mitigation report per threat, 1,000 threats an answer, 16 answers at a time) is skipped
/// while reading rather than built as JSON trees.
#[derive(Deserialize)]
struct MitigationAnswer {
    #[serde(default)]
    data: Option<MitigationData>,
}

#[derive(Deserialize)]
struct MitigationData {
    #[serde(default)]
    details: Option<Vec<MitigationDetail>>,
}

#[derive(Deserialize)]
struct MitigationDetail {
    #[serde(rename = "threatId", default)]
    threat_id: Option<Value>,
    #[serde(default)]
    skipped: Option<Vec<Value>>,
}

fn read_skipped(answer: MitigationAnswer) -> Applied {
    let mut applied = Applied::default();
    let details = answer
        .data
        .and_then(|data| data.details)
        .unwrap_or_default();
    for detail in details {
        let Some(Value::String(threat_id)) = detail.threat_id else {
            continue;
        };
        let reasons: Vec<&str> = detail
            .skipped
            .iter()
            .flatten()
            .filter_map(|skip| skip.get("reason").and_then(Value::as_str))
            .collect();
        if !reasons.is_empty() {
            applied.skipped.insert(threat_id, reasons.join(", "));
        }
    }
    applied
}

impl Action for MitigateThreats {
    type Params = Params;

    fn preflight(
        params: &Params,
        _state: Option<&Value>,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Failure> {
        Protected::parse(params.protected_agents.as_deref()).map(drop)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let ids: Vec<TargetId> = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let action = params.mitigation_action;
        let protected = Protected::parse(params.protected_agents.as_deref())?;
        let shielded = protected.resolve(ctx)?;
        let found = threats::find_lean(ctx, &ids, params.query.as_deref());
        let (found, held) = if protected.is_empty() {
            let held = vec![BTreeSet::new(); found.len()];
            (found, held)
        } else {
            hold_back(ctx, &ids, found, &shielded)
        };
        let pairs = to_send(action, &ids, &found);
        let skipped = mitigate(ctx, action, &pairs);
        for ((id, threats), held) in ids.into_iter().zip(found).zip(held) {
            let Some(threats) = threats else { continue };
            let (mut detail, computers) = report(action, &threats, &skipped, ctx.tense());
            detail.push_str(&protected::left_alone(
                "threats on ",
                held.iter().map(String::as_str),
            ));
            let attributes = vec![AddedAttribute::new(ATTRIBUTE, computers.to_string())];
            ctx.succeed(id, detail, attributes);
        }
        Ok(())
    }
}

/// Each target's threats without those on protected computers, and the names of those
/// computers; a target all of whose threats are on protected computers fails here (`None`).
fn hold_back(
    ctx: &mut RunContext<'_>,
    ids: &[TargetId],
    found: Vec<Option<Vec<LeanThreat>>>,
    shielded: &ProtectedAgents,
) -> (Vec<Option<Vec<LeanThreat>>>, Vec<BTreeSet<String>>) {
    let mut kept = Vec::with_capacity(found.len());
    let mut held = Vec::with_capacity(found.len());
    for (id, threats) in ids.iter().zip(found) {
        let mut names = BTreeSet::new();
        let threats = threats.map(|threats| {
            threats
                .into_iter()
                .filter(|threat| {
                    let name = match threat.agent_id.as_deref() {
                        Some(agent) => shielded.name(agent),
                        None => Some("a computer SentinelOne does not name"),
                    };
                    names.extend(name.map(str::to_string));
                    name.is_none()
                })
                .collect::<Vec<_>>()
        });
        let threats = match threats {
            Some(threats) if threats.is_empty() && !names.is_empty() => {
                let list = protected::name_list(names.iter().map(String::as_str));
                ctx.fail(*id, protected::refusal(&ctx.target(*id).value, &list));
                None
            }
            other => other,
        };
        kept.push(threats);
        held.push(names);
    }
    (kept, held)
}

/// The ids the requests carry (threats, or agents when isolating) with their targets, as
/// (id, target) pairs sorted by id, each once: sorted pairs rather than a map of sets, which
/// costs several times more at 50,000 threats.
fn to_send<'t>(
    action: Mitigation,
    ids: &[TargetId],
    found: &'t [Option<Vec<LeanThreat>>],
) -> Vec<(&'t str, TargetId)> {
    let mut pairs: Vec<(&str, TargetId)> = Vec::new();
    for (id, threats) in ids.iter().zip(found) {
        for threat in threats.iter().flatten() {
            let key = match action {
                _ if action.already_done(threat) => None,
                Mitigation::DisconnectFromNetwork => threat.agent_id.as_deref(),
                _ => Some(threat.id.as_str()),
            };
            pairs.extend(key.map(|key| (key, *id)));
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// Sends (or plans) the mitigation for every id of `pairs`, 1,000 a request; the ids
/// SentinelOne skipped, with why.
fn mitigate(
    ctx: &mut RunContext<'_>,
    action: Mitigation,
    pairs: &[(&str, TargetId)],
) -> BTreeMap<String, String> {
    let mut keys: Vec<&str> = pairs.iter().map(|(key, _)| *key).collect();
    keys.dedup();
    let batches: Vec<&[&str]> = keys.chunks(IDS_PER_REQUEST).collect();
    let targets_of = |batch: &&[&str]| -> Vec<TargetId> {
        distinct_targets(batch.iter().flat_map(|&key| {
            let start = pairs.partition_point(|(known, _)| *known < key);
            pairs[start..]
                .iter()
                .take_while(move |(known, _)| *known == key)
                .map(|(_, target)| *target)
        }))
    };
    let answers = ctx.write(
        "mitigate",
        &batches,
        targets_of,
        |batch| {
            Write::post(
                action.path(),
                json!({ "filter": { "ids": batch }, "data": {} }),
            )
        },
        |_, reply| Ok(reply.answer()?.map(read_skipped).unwrap_or_default()),
    );
    answers
        .into_iter()
        .flatten()
        .flat_map(|applied| applied.skipped)
        .collect()
}

/// A target's detail, and how many distinct computers its mitigated threats are on.
fn report(
    action: Mitigation,
    threats: &[LeanThreat],
    skipped: &BTreeMap<String, String>,
    tense: Tense,
) -> (String, usize) {
    if threats.is_empty() {
        return ("No matching threats".to_string(), 0);
    }
    let before = threats
        .iter()
        .filter(|threat| action.already_done(threat))
        .count();
    let done: Vec<&LeanThreat> = threats
        .iter()
        .filter(|threat| !skipped.contains_key(&threat.id))
        .collect();
    let computers: HashSet<&str> = done
        .iter()
        .filter_map(|threat| threat.agent_id.as_deref())
        .collect();
    let reasons: BTreeSet<&str> = threats
        .iter()
        .filter_map(|threat| skipped.get(&threat.id).map(String::as_str))
        .collect();
    let (threat_count, computer_count, verb) = (threats.len(), computers.len(), action.done());
    let mut detail = match tense {
        Tense::Planned => format!(
            "Dry run: {threat_count} threat(s) on {computer_count} computer(s) would be {verb}"
        ),
        Tense::Done if before == threat_count => format!(
            "Already done: {threat_count} threat(s) on {computer_count} computer(s) were {verb} before this run"
        ),
        Tense::Done if action == Mitigation::DisconnectFromNetwork => {
            format!("{computer_count} computer(s) with {threat_count} threat(s) {verb}")
        }
        Tense::Done => format!(
            "{} threat(s) {verb} on {computer_count} computer(s)",
            done.len()
        ),
    };
    if before > 0 && before < threat_count {
        detail.push_str(&format!(" ({before} already {verb} before this run)"));
    }
    if !reasons.is_empty() {
        let reasons: Vec<&str> = reasons.into_iter().collect();
        detail.push_str(&format!(
            "; {} skipped by SentinelOne ({})",
            threat_count - done.len(),
            reasons.join(", ")
        ));
    }
    (detail, computers.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_threats_are_read_from_details() {
        let response = json!({"data": {"affected": 1, "details": [
            {"threatId": "1", "skipped": []},
            {"threatId": "2", "skipped": [{"action": "rollback", "reason": "not_supported"}]}
        ]}});
        let read = |answer: Value| read_skipped(serde_json::from_value(answer).unwrap());
        let applied = read(response);
        assert_eq!(applied.skipped.len(), 1);
        assert_eq!(applied.skipped["2"], "not_supported");
        assert!(read(json!({"data": {"affected": 3}})).skipped.is_empty());
        assert!(read(json!({"data": {"details": null}})).skipped.is_empty());
    }

    #[test]
    fn every_choice_has_a_documented_path() {
        assert_eq!(
            Mitigation::RollbackRemediate.path(),
            "/threats/mitigate/rollback-remediation"
        );
        assert_eq!(
            Mitigation::UnQuarantine.path(),
            "/threats/mitigate/un-quarantine"
        );
        assert_eq!(
            Mitigation::DisconnectFromNetwork.path(),
            "/agents/actions/disconnect"
        );
    }
}
