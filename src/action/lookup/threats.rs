//! The batched look-up of SentinelOne threats by SHA-1 or file path, shared by the actions that
//! act on or report threats.
//!
//! SHA-1 targets are looked up many per request with `contentHashes`; file paths with
//! `filePath__contains`. Every page is read, and each threat is matched back to every target it
//! concerns (a threat's SHA-1 equal to the hash; its path containing the given path, ignoring
//! case). A path containing a comma cannot be sent in SentinelOne's comma-separated list
//! filters, so it is looked up through the free-text `query` filter and matched here.

use chrono::DateTime;
use serde::Deserialize;
use serde_json::Value;

use super::lenient;
use crate::action::{RunContext, TargetId, lookup};
use crate::api::{QUERY_VALUES_BUDGET, join_csv};
use crate::indicator::IndicatorType;

/// A threat, as far as the actions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threat {
    pub id: String,
    pub sha1: Option<String>,
    pub file_path: Option<String>,
    pub agent_id: Option<String>,
    pub computer_name: Option<String>,
    /// The whole threat as SentinelOne returned it, for actions that report more fields.
    pub raw: Value,
    /// The `mitigationStatus[]` reports, as far as [`in_effect`] reads them.
    reports: Vec<MitigationReport>,
    /// `agentRealtimeInfo.agentNetworkStatus`.
    network_status: Option<String>,
}

impl Threat {
    pub fn from_json(item: &Value) -> Option<Self> {
        Self::from_value(item.clone())
    }

    /// As [`Threat::from_json`], taking the item (which becomes `raw`) instead of copying it.
    pub fn from_value(item: Value) -> Option<Self> {
        let text = |pointer: &str| {
            item.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let id = usable_id(item.get("id")?.clone())?;
        let reports = item
            .get("mitigationStatus")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|report| {
                let text = |field: &str| report.get(field).and_then(Value::as_str);
                MitigationReport::read(text("action"), text("status"), REPORT_TIMES.map(text))
            })
            .collect();
        Some(Self {
            id,
            sha1: text("/threatInfo/sha1").map(|sha1| sha1.to_ascii_lowercase()),
            file_path: text("/threatInfo/filePath"),
            agent_id: text("/agentRealtimeInfo/agentId").and_then(nonblank),
            computer_name: text("/agentRealtimeInfo/agentComputerName"),
            reports,
            network_status: text("/agentRealtimeInfo/agentNetworkStatus"),
            raw: item,
        })
    }

    /// Whether `action` (as `mitigationStatus[].action` names it, e.g. `quarantine`) is in
    /// effect on this threat, by its mitigation reports ([`in_effect`]).
    pub fn in_effect(&self, action: &str) -> bool {
        in_effect(action, &self.reports)
    }

    /// The network status of the threat's computer (`connected`, `disconnected`, …).
    pub fn network_status(&self) -> Option<&str> {
        self.network_status.as_deref()
    }

    /// Whether this threat concerns the target (`kind`, `value`).
    fn matches(&self, kind: IndicatorType, value: &str) -> bool {
        match kind {
            IndicatorType::Sha1 => self.sha1.as_deref() == Some(value),
            IndicatorType::FilePath => self
                .file_path
                .as_deref()
                .is_some_and(|path| path.to_lowercase().contains(&value.to_lowercase())),
            _ => false,
        }
    }
}

/// The fields of a threat that [`Threat`] reads, for look-ups that keep no raw threat: a page
/// is read straight into these, skipping the rest of each threat (about 4 KB of JSON).
#[derive(Deserialize)]
struct ThreatFields {
    #[serde(default)]
    id: Option<Value>,
    #[serde(rename = "threatInfo", default)]
    threat_info: Option<InfoFields>,
    #[serde(rename = "agentRealtimeInfo", default)]
    agent: Option<AgentFields>,
    #[serde(rename = "mitigationStatus", default)]
    reports: Option<Vec<lenient::Object<Report>>>,
}

/// One `mitigationStatus[]` report, as far as [`MitigationReport::read`] reads it: its
/// `action`, `status` and times when they are strings. A report that is not an object reads as
/// one with none of them.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Report {
    #[serde(deserialize_with = "lenient::text")]
    action: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    status: Option<String>,
    #[serde(rename = "lastUpdate", deserialize_with = "lenient::text")]
    last_update: Option<String>,
    #[serde(rename = "mitigationStartedAt", deserialize_with = "lenient::text")]
    started_at: Option<String>,
    #[serde(rename = "mitigationEndedAt", deserialize_with = "lenient::text")]
    ended_at: Option<String>,
}

impl Report {
    /// The times in the order of [`REPORT_TIMES`].
    fn times(&self) -> [Option<&str>; 3] {
        [&self.last_update, &self.started_at, &self.ended_at].map(Option::as_deref)
    }
}

#[derive(Deserialize)]
struct InfoFields {
    #[serde(default)]
    sha1: Option<Value>,
    #[serde(rename = "filePath", default)]
    file_path: Option<Value>,
}

#[derive(Deserialize)]
struct AgentFields {
    #[serde(rename = "agentId", default)]
    agent_id: Option<Value>,
    #[serde(rename = "agentComputerName", default)]
    computer_name: Option<Value>,
    #[serde(rename = "agentNetworkStatus", default)]
    network_status: Option<Value>,
}

impl ThreatFields {
    /// The threat, with `raw` null; `None` without a usable id, as [`Threat::from_json`].
    fn into_threat(self) -> Option<Threat> {
        let text = |value: Option<Value>| match value {
            Some(Value::String(text)) => Some(text),
            _ => None,
        };
        let id = usable_id(self.id?)?;
        let (sha1, file_path) = self
            .threat_info
            .map_or((None, None), |info| (text(info.sha1), text(info.file_path)));
        let (agent_id, computer_name, network_status) =
            self.agent.map_or((None, None, None), |agent| {
                (
                    text(agent.agent_id).and_then(nonblank),
                    text(agent.computer_name),
                    text(agent.network_status),
                )
            });
        Some(Threat {
            id,
            sha1: sha1.map(|sha1| sha1.to_ascii_lowercase()),
            file_path,
            agent_id,
            computer_name,
            raw: Value::Null,
            reports: self
                .reports
                .iter()
                .flatten()
                .filter_map(|lenient::Lenient(report)| {
                    MitigationReport::read(
                        report.action.as_deref(),
                        report.status.as_deref(),
                        report.times(),
                    )
                })
                .collect(),
            network_status,
        })
    }
}

/// A threat as the mitigation needs it ([`find_lean`]): id, computer, the mitigations in
/// effect and whether its computer is isolated. About 100 bytes where a [`Threat`] takes several
/// hundred, for 50,000 of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeanThreat {
    pub id: String,
    pub agent_id: Option<String>,
    /// One bit per action of [`MITIGATIONS`] that is in effect ([`in_effect`]).
    in_effect: u8,
    network_status: Option<&'static str>,
}

/// The `mitigationStatus[].action` names a [`LeanThreat`] records.
const MITIGATIONS: [&str; 5] = [
    "kill",
    "quarantine",
    "remediate",
    "rollback",
    "unquarantine",
];

/// The agent network statuses a [`LeanThreat`] records.
const NETWORK_STATUSES: [&str; 4] = ["connected", "connecting", "disconnected", "disconnecting"];

impl LeanThreat {
    /// As [`Threat::in_effect`], for the actions of [`MITIGATIONS`] (any other: false).
    pub fn in_effect(&self, action: &str) -> bool {
        MITIGATIONS
            .iter()
            .position(|known| *known == action)
            .is_some_and(|bit| self.in_effect & (1 << bit) != 0)
    }

    /// As [`Threat::network_status`], for the statuses of [`NETWORK_STATUSES`] (any other:
    /// `None`).
    pub fn network_status(&self) -> Option<&str> {
        self.network_status
    }
}

impl From<Threat> for LeanThreat {
    fn from(threat: Threat) -> Self {
        let in_effect = MITIGATIONS
            .iter()
            .enumerate()
            .filter(|(_, action)| threat.in_effect(action))
            .fold(0u8, |bits, (bit, _)| bits | (1 << bit));
        let network_status = threat
            .network_status()
            .and_then(|status| NETWORK_STATUSES.into_iter().find(|known| *known == status));
        Self {
            id: threat.id,
            agent_id: threat.agent_id,
            in_effect,
            network_status,
        }
    }
}

/// A threat id as text. A blank id is no id: ids go into write filters, where `[""]` could
/// be read as no filter at all — every threat, or every computer.
fn usable_id(id: Value) -> Option<String> {
    match id {
        Value::String(id) => nonblank(id),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// `id` unless it is blank (an agent id, like a threat id, goes into write filters).
fn nonblank(id: String) -> Option<String> {
    (!id.trim().is_empty()).then_some(id)
}

/// The time fields of a `mitigationStatus[]` report: "Timestamp of last mitigation status
/// update", "The time the Agent started the mitigation", "… finished the mitigation"
/// (Dirt-Diver/s1-api `api/docs/ThreatsSchemasThreatSchemaMany200MitigationStatus.md`). Some
/// recorded answers carry only `lastUpdate` (demisto/content SentinelOne-V2
/// `test_data/get_threats_2_1_raw_response.json`), so whichever is latest counts.
const REPORT_TIMES: [&str; 3] = ["lastUpdate", "mitigationStartedAt", "mitigationEndedAt"];

/// One `mitigationStatus[]` report: `action` (kill, quarantine, unquarantine, remediate,
/// rollback, …), `status` (success, failed, pending, pending-reboot, sent, partial — same
/// model's enums) and when it last happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MitigationReport {
    pub action: String,
    pub status: String,
    /// The latest of the report's times, in microseconds since the epoch; `None` when it has
    /// none that reads as RFC 3339, and then older than any report that has one.
    pub at: Option<i64>,
}

impl MitigationReport {
    /// The report from its fields; `None` without an action.
    fn read(action: Option<&str>, status: Option<&str>, times: [Option<&str>; 3]) -> Option<Self> {
        let at = times
            .into_iter()
            .flatten()
            .filter_map(|time| DateTime::parse_from_rfc3339(time).ok())
            .map(|time| time.timestamp_micros())
            .max();
        Some(Self {
            action: action?.to_string(),
            status: status.unwrap_or_default().to_string(),
            at,
        })
    }
}

/// Whether `action` is in effect on a threat with these mitigation reports, i.e. whether
/// asking for it again would be redundant.
///
/// The latest report that bears on the action decides, not any success ever recorded:
/// a threat quarantined and then released is no longer quarantined. Bearing on an action are
/// its own reports and the successful or pending reports of its opposite (quarantine and
/// unquarantine undo each other); a failed opposite changed nothing. The action is in effect
/// only when every report at that latest time is its own success: a pending, sent, partial or
/// failed latest report is not done, and neither is a tie between outcomes (reports without a
/// readable time tie with each other). With no bearing report, only `unquarantine` holds — a
/// threat never quarantined is not in quarantine. Reports are ordered by time, not position:
/// recorded answers list them oldest first (demisto/content SentinelOne-V2
/// `test_data/get_threats_2_1_raw_response.json`) and newest first elsewhere.
pub fn in_effect(action: &str, reports: &[MitigationReport]) -> bool {
    let opposite = match action {
        "quarantine" => Some("unquarantine"),
        "unquarantine" => Some("quarantine"),
        _ => None,
    };
    let bearing = || {
        reports.iter().filter(move |report| {
            report.action == action
                || (Some(report.action.as_str()) == opposite && report.status != "failed")
        })
    };
    match bearing().map(|report| report.at).max() {
        None => action == "unquarantine",
        Some(latest) => bearing()
            .filter(|report| report.at == latest)
            .all(|report| report.action == action && report.status == "success"),
    }
}

/// One look-up request: the filter to send and the targets it covers.
struct Batch {
    targets: Vec<TargetId>,
    /// Type and value of each target, for the worker to match threats to them.
    matchers: Vec<(IndicatorType, String)>,
    query: Vec<(&'static str, String)>,
}

/// Pushes `threat`; a first threat gets a list of its own size (most indicators have one,
/// and a default Vec would reserve four).
fn push_one(list: &mut Vec<Threat>, threat: Threat) {
    if list.capacity() == 0 {
        list.reserve_exact(1);
    }
    list.push(threat);
}

impl Batch {
    /// The threats of each of the batch's targets (same positions), each threat once per
    /// target; a threat matching several targets is copied for all but the last.
    fn share_out(&self, threats: Vec<Threat>) -> Vec<Vec<Threat>> {
        let mut lists: Vec<Vec<Threat>> = self.targets.iter().map(|_| Vec::new()).collect();
        for threat in threats {
            let owners: Vec<usize> = self
                .matchers
                .iter()
                .enumerate()
                .filter(|(_, (kind, value))| threat.matches(*kind, value))
                .map(|(position, _)| position)
                .filter(|position| !lists[*position].iter().any(|known| known.id == threat.id))
                .collect();
            let Some((&last, others)) = owners.split_last() else {
                continue;
            };
            for position in others {
                push_one(&mut lists[*position], threat.clone());
            }
            push_one(&mut lists[last], threat);
        }
        // Held until every look-up is done: no spare capacity.
        for list in &mut lists {
            list.shrink_to_fit();
        }
        lists
    }
}

/// The threats of every target in `ids` (SHA-1 or File Path), in the same order, with `query`
/// as an extra free-text filter. A target whose look-up failed has been failed in `ctx` and
/// gets `None`.
pub fn find(
    ctx: &mut RunContext<'_>,
    ids: &[TargetId],
    query: Option<&str>,
) -> Vec<Option<Vec<Threat>>> {
    find_threats(ctx, ids, query, true, |threat| threat)
}

/// As [`find`], each threat as a [`LeanThreat`] (read from only the fields it needs): a threat
/// is about 4 KB of JSON and several times that as a tree, so 50,000 of them would not fit in
/// memory next to the envelope.
pub fn find_lean(
    ctx: &mut RunContext<'_>,
    ids: &[TargetId],
    query: Option<&str>,
) -> Vec<Option<Vec<LeanThreat>>> {
    find_threats(ctx, ids, query, false, LeanThreat::from)
}

fn find_threats<T: Send>(
    ctx: &mut RunContext<'_>,
    ids: &[TargetId],
    query: Option<&str>,
    keep_raw: bool,
    convert: impl Fn(Threat) -> T + Sync,
) -> Vec<Option<Vec<T>>> {
    let extra = |mut filters: Vec<(&'static str, String)>| {
        if let Some(query) = query {
            filters.push(("query", query.to_string()));
        }
        filters
    };
    let of_kind = |kind: IndicatorType, commas: bool| -> Vec<TargetId> {
        ids.iter()
            .copied()
            .filter(|id| {
                ctx.target(*id).kind == kind && ctx.target(*id).value.contains(',') == commas
            })
            .collect()
    };
    let mut batches = Vec::new();
    for (kind, filter) in [
        (IndicatorType::Sha1, "contentHashes"),
        (IndicatorType::FilePath, "filePath__contains"),
    ] {
        for (chunk, values) in lookup::value_chunks(ctx, &of_kind(kind, false), QUERY_VALUES_BUDGET)
        {
            let query = extra(vec![(filter, join_csv(&values))]);
            batches.push(Batch {
                targets: chunk,
                matchers: values.into_iter().map(|value| (kind, value)).collect(),
                query,
            });
        }
    }
    for id in of_kind(IndicatorType::FilePath, true) {
        // `query` is a single free-text value; a configured query is then applied here instead.
        let value = ctx.target(id).value.clone();
        batches.push(Batch {
            targets: vec![id],
            matchers: vec![(IndicatorType::FilePath, value.clone())],
            query: vec![("query", value)],
        });
    }
    // Each page is read into threats by the worker that fetched it, as it arrives, so the pages
    // themselves are never all held at once.
    lookup::per_target(
        ctx,
        "threat lookup",
        ids,
        &batches,
        |batch| &batch.targets,
        |client, batch| {
            let mut threats = Vec::new();
            // The configured query checked here, on the whole threat, where it was not sent.
            let check_query = query.filter(|_| batch.query.iter().all(|(key, _)| *key == "query"));
            if keep_raw || check_query.is_some() {
                client
                    .pages("/threats", batch.query.clone(), "/data")
                    .each_item(|item| {
                        if check_query.is_some_and(|query| !threat_text_contains(&item, query)) {
                            return;
                        }
                        if let Some(mut threat) = Threat::from_value(item) {
                            if !keep_raw {
                                threat.raw = Value::Null;
                            }
                            threats.push(threat);
                        }
                    })?;
            } else {
                client
                    .pages_as::<ThreatFields>("/threats", batch.query.clone(), "/data")
                    .each_item(|fields| threats.extend(fields.into_threat()))?;
            }
            let lists: Vec<Vec<T>> = batch
                .share_out(threats)
                .into_iter()
                .map(|list| {
                    let mut converted = Vec::with_capacity(list.len());
                    converted.extend(list.into_iter().map(&convert));
                    converted
                })
                .collect();
            Ok(lists)
        },
    )
}

/// A local stand-in for SentinelOne's free-text `query` where it could not be sent.
fn threat_text_contains(threat: &Value, query: &str) -> bool {
    threat
        .to_string()
        .to_lowercase()
        .contains(&query.to_lowercase())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_the_fields_actions_use() {
        let threat = Threat::from_json(&json!({
            "id": "9", "threatInfo": {"sha1": "ABC", "filePath": "C:\\Temp\\Evil.exe"},
            "agentRealtimeInfo": {"agentId": "42", "agentComputerName": "pc-1"}
        }))
        .unwrap();
        assert_eq!(threat.sha1.as_deref(), Some("abc"));
        assert!(threat.matches(IndicatorType::Sha1, "abc"));
        assert!(threat.matches(IndicatorType::FilePath, "\\temp\\evil.exe"));
        assert!(!threat.matches(IndicatorType::FilePath, "other.exe"));
        assert_eq!(threat.agent_id.as_deref(), Some("42"));
        assert!(Threat::from_json(&json!({"threatInfo": {}})).is_none());
        assert!(Threat::from_json(&json!({"id": " "})).is_none());
        let blank_agent =
            Threat::from_json(&json!({"id": 7, "agentRealtimeInfo": {"agentId": ""}})).unwrap();
        assert_eq!((blank_agent.id.as_str(), blank_agent.agent_id), ("7", None));
    }

    fn report(action: &str, status: &str, at: Option<i64>) -> MitigationReport {
        MitigationReport {
            action: action.into(),
            status: status.into(),
            at,
        }
    }

    #[test]
    fn the_latest_bearing_report_decides_what_is_in_effect() {
        let q = |status, at| report("quarantine", status, Some(at));
        let uq = |status, at| report("unquarantine", status, Some(at));
        let kill = |status, at| report("kill", status, Some(at));
        // Quarantined, then released: no longer quarantined, released; order in the list
        // does not matter.
        for reports in [
            vec![q("success", 1), uq("success", 2)],
            vec![uq("success", 2), q("success", 1)],
        ] {
            assert!(!in_effect("quarantine", &reports));
            assert!(in_effect("unquarantine", &reports));
        }
        // Quarantined, released, quarantined again.
        let again = [q("success", 1), uq("success", 2), q("success", 3)];
        assert!(in_effect("quarantine", &again));
        assert!(!in_effect("unquarantine", &again));
        // A failed release left the quarantine in place.
        let failed_release = [q("success", 1), uq("failed", 2)];
        assert!(in_effect("quarantine", &failed_release));
        assert!(!in_effect("unquarantine", &failed_release));
        // A pending or failed latest report of the action itself is not done, even after an
        // earlier success.
        for status in ["failed", "pending", "pending-reboot", "sent", "partial"] {
            assert!(
                !in_effect("quarantine", &[q("success", 1), q(status, 2)]),
                "{status}"
            );
            assert!(
                !in_effect("kill", &[kill("success", 1), kill(status, 2)]),
                "{status}"
            );
        }
        // A pending quarantine is not a release either.
        assert!(!in_effect("unquarantine", &[q("pending", 1)]));
        // Kill after a failed quarantine: quarantine's reports do not bear on kill.
        let failed_quarantine = [q("failed", 1)];
        assert!(!in_effect("kill", &failed_quarantine));
        assert!(!in_effect("quarantine", &failed_quarantine));
        assert!(in_effect("kill", &[q("failed", 1), kill("success", 2)]));
        // Nothing reported: only "not quarantined" holds.
        assert!(!in_effect("quarantine", &[]));
        assert!(!in_effect("remediate", &[]));
        assert!(in_effect("unquarantine", &[]));
        assert!(in_effect("unquarantine", &[kill("success", 1)]));
        // Without readable times, reports tie: done only if they all agree.
        let untimed = |action, status| report(action, status, None);
        assert!(in_effect("quarantine", &[untimed("quarantine", "success")]));
        assert!(!in_effect(
            "quarantine",
            &[
                untimed("quarantine", "success"),
                untimed("unquarantine", "success")
            ]
        ));
        // A timed report is later than an untimed one.
        assert!(in_effect(
            "quarantine",
            &[untimed("unquarantine", "success"), q("success", 1)]
        ));
    }

    #[test]
    fn report_times_read_as_the_latest_of_three() {
        let threat = Threat::from_json(&json!({"id": "1", "mitigationStatus": [
            {"action": "quarantine", "status": "success",
             "lastUpdate": "2025-09-08T10:13:16.625619Z",
             "mitigationStartedAt": "2025-09-08T10:14:34.576000Z",
             "mitigationEndedAt": null},
            {"action": "unquarantine", "status": "success",
             "lastUpdate": "2025-09-08T10:14:00Z"}]}))
        .unwrap();
        // The quarantine started after the release's last update.
        assert!(threat.in_effect("quarantine"));
        let lean = LeanThreat::from(threat);
        assert!(lean.in_effect("quarantine"));
        assert!(!lean.in_effect("unquarantine"));
    }

    #[test]
    fn lean_fields_read_as_the_whole_threat_does() {
        let items = [
            json!({"id": "9", "threatInfo": {"sha1": "ABC", "filePath": "C:\\x.exe"},
                   "agentRealtimeInfo": {"agentId": "42", "agentComputerName": "pc-1",
                                         "agentNetworkStatus": "disconnected"},
                   "mitigationStatus": [{"action": "quarantine", "status": "success"},
                                        {"action": "kill", "status": "failed"}]}),
            json!({"id": 7, "threatInfo": null, "mitigationStatus": null}),
            json!({"id": "3", "mitigationStatus": [
                "kill", 5, null, true, [1, {"action": "kill"}],
                {"action": 1, "status": "success"},
                {"action": "rollback", "status": ["success"]},
                {"action": "quarantine", "status": "success", "lastUpdate": "2026-01-01T00:00:00Z",
                 "mitigationStartedAt": 5, "mitigationEndedAt": "2026-01-02T00:00:00.5Z"},
                {"action": "remediate", "status": "success", "lastUpdate": "2026-01-01",
                 "actionsCounters": {"success": 1, "failed": 0}, "agentSupportsReport": true}]}),
            json!({"id": true}),
            json!({"threatInfo": {"sha1": 5}}),
        ];
        for item in items {
            let whole = Threat::from_json(&item).map(|threat| Threat {
                raw: Value::Null,
                ..threat
            });
            let lean = serde_json::from_value::<ThreatFields>(item.clone())
                .ok()
                .and_then(ThreatFields::into_threat);
            assert_eq!(lean, whole, "{item}");
        }
        let threat = Threat::from_json(&json!({"id": "1", "mitigationStatus": [
            {"action": "quarantine", "status": "success"}]}))
        .unwrap();
        assert!(threat.in_effect("quarantine"));
        assert!(!threat.in_effect("kill"));
        assert!(!threat.in_effect("unquarantine"));
    }
}
