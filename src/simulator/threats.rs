//! The threat endpoints: list, mitigate, analyst verdict, incident status and notes.
//!
//! Owns the threat filter (shared by `GET /threats` and the `filter` of every threat write), the
//! rendering of a threat in the v2.1 shape, and the state changes of mitigation. Mitigation
//! follows the console's platform limits: `rollback-remediation` runs on Windows only and
//! `remediate` on Windows and macOS; other threats are reported in `details[].skipped` with reason
//! `not_supported` and are not counted in `affected`. It does not route requests.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::lists::USER_NAME;
use super::paging::{PAGING_KEYS, PageRequest, SortKey, SortValue, paginate};
use super::params::{ApiError, Needles, Params, TimeRange};
use super::state::{
    AGENT_OS_TYPES, ANALYST_VERDICTS, CONFIDENCE_LEVELS, INCIDENT_STATUSES, MITIGATION_STATUSES,
    MitigationReport, Note, State, Threat, ts,
};

const USER_ID: &str = "1900000000000000000";

/// Filter keys of `GET /threats` and of threat write filters.
const FILTER_KEYS: &[&str] = &[
    "ids",
    "contentHashes",
    "contentHash__contains",
    "filePath__contains",
    "threatDetails__contains",
    "computerName__contains",
    "query",
    "siteIds",
    "accountIds",
    "groupIds",
    "agentIds",
    "incidentStatuses",
    "analystVerdicts",
    "mitigationStatuses",
    "confidenceLevels",
    "classifications",
    "osTypes",
    // Accepted and ignored: the simulator is a single tenant seen by a global user.
    "tenant",
];

const TIME_FIELDS: &[&str] = &["createdAt", "updatedAt"];

/// A compiled threat filter.
#[derive(Debug)]
pub(crate) struct ThreatFilter {
    ids: Option<HashSet<String>>,
    content_hashes: Option<HashSet<String>>,
    hash_contains: Option<Needles>,
    path_contains: Option<Needles>,
    name_contains: Option<Needles>,
    computer_contains: Option<Needles>,
    query: Option<String>,
    site_ids: Option<HashSet<String>>,
    account_ids: Option<HashSet<String>>,
    group_ids: Option<HashSet<String>>,
    agent_ids: Option<HashSet<String>>,
    incident_statuses: Option<Vec<String>>,
    analyst_verdicts: Option<Vec<String>>,
    mitigation_statuses: Option<Vec<String>>,
    confidence_levels: Option<Vec<String>>,
    classifications: Option<Vec<String>>,
    os_types: Option<Vec<String>>,
    created: TimeRange,
    updated: TimeRange,
}

fn set(params: &Params, key: &str) -> Option<HashSet<String>> {
    params.list(key).map(|l| l.into_iter().collect())
}

fn enum_list(
    params: &Params,
    key: &str,
    allowed: &[&str],
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = params.list(key) else {
        return Ok(None);
    };
    if let Some(bad) = list.iter().find(|v| !allowed.contains(&v.as_str())) {
        return Err(params.invalid(
            key,
            &format!("'{bad}' is not one of: {}.", allowed.join(", ")),
        ));
    }
    Ok(Some(list))
}

impl ThreatFilter {
    pub(crate) fn from_params(params: &Params) -> Result<ThreatFilter, ApiError> {
        Ok(ThreatFilter {
            ids: set(params, "ids"),
            content_hashes: params
                .list_lower("contentHashes")
                .map(|l| l.into_iter().collect()),
            hash_contains: params.list("contentHash__contains").map(Needles::new),
            path_contains: params.list("filePath__contains").map(Needles::new),
            name_contains: params.list("threatDetails__contains").map(Needles::new),
            computer_contains: params.list("computerName__contains").map(Needles::new),
            query: params.text("query")?.map(|q| q.to_lowercase()),
            site_ids: set(params, "siteIds"),
            account_ids: set(params, "accountIds"),
            group_ids: set(params, "groupIds"),
            agent_ids: set(params, "agentIds"),
            incident_statuses: enum_list(params, "incidentStatuses", INCIDENT_STATUSES)?,
            analyst_verdicts: enum_list(params, "analystVerdicts", ANALYST_VERDICTS)?,
            mitigation_statuses: enum_list(params, "mitigationStatuses", MITIGATION_STATUSES)?,
            confidence_levels: enum_list(params, "confidenceLevels", CONFIDENCE_LEVELS)?,
            classifications: params.list_lower("classifications"),
            os_types: enum_list(params, "osTypes", AGENT_OS_TYPES)?,
            created: params.time_range("createdAt")?,
            updated: params.time_range("updatedAt")?,
        })
    }

    pub(crate) fn matches(&self, state: &State, threat: &Threat) -> bool {
        let agent = state.agent(&threat.agent_id);
        let computer = agent
            .map(|a| a.computer_name.to_lowercase())
            .unwrap_or_default();
        let site_id = agent.map(|a| a.site_id.as_str()).unwrap_or_default();
        let account_id = state.site_account(site_id).unwrap_or_default();
        let hashes = || {
            std::iter::once(threat.sha1.as_str())
                .chain(threat.sha256.as_deref())
                .chain(threat.md5.as_deref())
        };
        let path_lower = || threat.file_path.to_lowercase();
        self.ids.as_ref().is_none_or(|s| s.contains(&threat.id))
            && self
                .content_hashes
                .as_ref()
                .is_none_or(|s| s.contains(&threat.sha1))
            && self
                .hash_contains
                .as_ref()
                .is_none_or(|n| hashes().any(|h| n.found_in(h)))
            && self
                .path_contains
                .as_ref()
                .is_none_or(|n| n.found_in(&path_lower()))
            && self
                .name_contains
                .as_ref()
                .is_none_or(|n| n.found_in(&threat.name.to_lowercase()))
            && self
                .computer_contains
                .as_ref()
                .is_none_or(|n| n.found_in(&computer))
            && self.query.as_ref().is_none_or(|q| {
                threat.name.to_lowercase().contains(q.as_str())
                    || hashes().any(|h| h.contains(q.as_str()))
                    || path_lower().contains(q.as_str())
                    || computer.contains(q.as_str())
                    || threat.id.contains(q.as_str())
            })
            && self.site_ids.as_ref().is_none_or(|s| s.contains(site_id))
            && self
                .account_ids
                .as_ref()
                .is_none_or(|s| s.contains(account_id))
            && self.group_ids.as_ref().is_none_or(|s| {
                agent
                    .and_then(|a| a.group_id.as_ref())
                    .is_some_and(|g| s.contains(g))
            })
            && self
                .agent_ids
                .as_ref()
                .is_none_or(|s| s.contains(&threat.agent_id))
            && self
                .incident_statuses
                .as_ref()
                .is_none_or(|l| l.contains(&threat.incident_status))
            && self
                .analyst_verdicts
                .as_ref()
                .is_none_or(|l| l.contains(&threat.analyst_verdict))
            && self
                .mitigation_statuses
                .as_ref()
                .is_none_or(|l| l.contains(&threat.mitigation_status))
            && self
                .confidence_levels
                .as_ref()
                .is_none_or(|l| l.contains(&threat.confidence_level))
            && self
                .classifications
                .as_ref()
                .is_none_or(|l| l.contains(&threat.classification.to_lowercase()))
            && self
                .os_types
                .as_ref()
                .is_none_or(|l| agent.is_some_and(|a| l.contains(&a.os_type)))
            && self.created.contains(threat.created_at)
            && self.updated.contains(threat.updated_at)
    }
}

/// The indexes of the threats a write body's `filter` selects. A missing filter is a validation
/// error; an empty one selects every threat.
fn select(state: &State, body: &Value) -> Result<Vec<usize>, ApiError> {
    let filter = match body.get("filter") {
        None | Some(Value::Null) => {
            return Err(ApiError::validation(
                "{'filter': ['Missing data for required field.']}",
            ));
        }
        Some(filter) => filter,
    };
    let params = Params::from_filter(filter)?;
    params.reject_unknown(FILTER_KEYS, TIME_FIELDS)?;
    let filter = ThreatFilter::from_params(&params)?;
    Ok(state
        .threats
        .iter()
        .enumerate()
        .filter(|(_, t)| filter.matches(state, t))
        .map(|(i, _)| i)
        .collect())
}

fn data_object(body: &Value) -> Result<&serde_json::Map<String, Value>, ApiError> {
    body.get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::validation("{'data': ['Missing data for required field.']}"))
}

fn description(value: &str) -> String {
    match value {
        "n/a" => "N/A".to_string(),
        other => {
            let text = other.replace('_', " ");
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        }
    }
}

fn render_report(report: &MitigationReport) -> Value {
    json!({
        "action": report.action,
        "actionsCounters": {
            "failed": 0,
            "notFound": 0,
            "pendingReboot": 0,
            "success": usize::from(report.status == "success"),
            "total": 1
        },
        "agentSupportsReport": true,
        "groupNotFound": false,
        "lastUpdate": ts(report.at),
        "latestReport": null,
        "mitigationEndedAt": ts(report.at),
        "mitigationStartedAt": ts(report.at),
        "status": report.status,
    })
}

/// Per-agent threat counts (active threats, infected), computed once per request.
#[derive(Debug, Default)]
pub(crate) struct AgentStats(HashMap<String, (usize, bool)>);

impl AgentStats {
    pub(crate) fn compute(state: &State) -> AgentStats {
        let mut map: HashMap<String, (usize, bool)> = HashMap::new();
        for threat in &state.threats {
            let entry = map.entry(threat.agent_id.clone()).or_default();
            if threat.incident_status != "resolved" {
                entry.0 += 1;
            }
            if threat.mitigation_status == "not_mitigated" {
                entry.1 = true;
            }
        }
        AgentStats(map)
    }

    pub(crate) fn active_threats(&self, agent_id: &str) -> usize {
        self.0.get(agent_id).map_or(0, |s| s.0)
    }

    pub(crate) fn infected(&self, agent_id: &str) -> bool {
        self.0.get(agent_id).is_some_and(|s| s.1)
    }
}

/// The agent block shared by threats and alerts.
pub(crate) fn agent_realtime_info(state: &State, stats: &AgentStats, agent_id: &str) -> Value {
    let Some(agent) = state.agent(agent_id) else {
        return json!({"agentId": agent_id});
    };
    let site = state.site(&agent.site_id);
    let account = site.and_then(|s| state.account(&s.account_id));
    let group = agent.group_id.as_deref().and_then(|g| state.group(g));
    json!({
        "accountId": site.map(|s| s.account_id.clone()),
        "accountName": account.map(|a| a.name.clone()),
        "activeThreats": stats.active_threats(&agent.id),
        "agentComputerName": agent.computer_name,
        "agentDecommissionedAt": null,
        "agentDomain": agent.domain,
        "agentId": agent.id,
        "agentInfected": stats.infected(&agent.id),
        "agentIsActive": agent.is_active,
        "agentIsDecommissioned": agent.is_decommissioned,
        "agentMachineType": agent.machine_type,
        "agentMitigationMode": "protect",
        "agentNetworkStatus": agent.network_status,
        "agentOsName": agent.os_name,
        "agentOsRevision": null,
        "agentOsType": agent.os_type,
        "agentUuid": agent.uuid,
        "agentVersion": agent.agent_version,
        "groupId": agent.group_id,
        "groupName": group.map(|g| g.name.clone()),
        "networkInterfaces": agent.network_interfaces,
        "operationalState": "na",
        "rebootRequired": false,
        "scanAbortedAt": null,
        "scanFinishedAt": null,
        "scanStartedAt": null,
        "scanStatus": "none",
        "siteId": agent.site_id,
        "siteName": site.map(|s| s.name.clone()),
        "userActionsNeeded": [],
    })
}

/// A threat in the v2.1 shape.
pub(crate) fn render(state: &State, stats: &AgentStats, threat: &Threat) -> Value {
    let agent = state.agent(&threat.agent_id);
    let site = agent.and_then(|a| state.site(&a.site_id));
    let extension = threat
        .name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_uppercase())
        .unwrap_or_default();
    let mut info = json!({
        "analystVerdict": threat.analyst_verdict,
        "analystVerdictDescription": description(&threat.analyst_verdict),
        "automaticallyResolved": false,
        "certificateId": "",
        "classification": threat.classification,
        "classificationSource": "Static",
        "cloudFilesHashVerdict": if threat.confidence_level == "malicious" { "black" } else { "provider_unknown" },
        "collectionId": threat.id,
        "confidenceLevel": threat.confidence_level,
        "createdAt": ts(threat.created_at),
        "detectionEngines": [{"key": "sentinelone_cloud", "title": "SentinelOne Cloud"}],
        "detectionType": "static",
        "engines": ["SentinelOne Cloud"],
        "externalTicketExists": false,
        "externalTicketId": null,
        "failedActions": false,
        "fileExtension": extension,
        "fileExtensionType": if extension == "EXE" || extension == "DLL" { "Executable" } else { "Unknown" },
        "filePath": threat.file_path,
        "fileSize": 0,
        "fileVerificationType": "NotSigned",
        "identifiedAt": ts(threat.created_at),
    });
    // Built in two parts: one `json!` this large exceeds the macro recursion limit.
    let rest = json!({
        "incidentStatus": threat.incident_status,
        "incidentStatusDescription": description(&threat.incident_status),
        "initiatedBy": threat.initiated_by,
        "initiatedByDescription": description(&threat.initiated_by),
        "initiatingUserId": null,
        "initiatingUsername": null,
        "isFileless": false,
        "isValidCertificate": false,
        "maliciousProcessArguments": null,
        "md5": threat.md5,
        "mitigatedPreemptively": false,
        "mitigationStatus": threat.mitigation_status,
        "mitigationStatusDescription": description(&threat.mitigation_status),
        "originatorProcess": null,
        "pendingActions": false,
        "processUser": agent.map(|a| format!("{}\\User", a.computer_name)),
        "publisherName": "",
        "reachedEventsLimit": false,
        "rebootRequired": false,
        "sha1": threat.sha1,
        "sha256": threat.sha256,
        "storyline": threat.sha1[..16].to_uppercase(),
        "threatId": threat.id,
        "threatName": threat.name,
        "updatedAt": ts(threat.updated_at),
    });
    if let (Some(object), Value::Object(rest)) = (info.as_object_mut(), rest) {
        object.extend(rest);
        for (key, value) in &threat.extra {
            object.insert(key.clone(), value.clone());
        }
    }
    json!({
        "agentDetectionInfo": {
            "accountId": site.map(|s| s.account_id.clone()),
            "accountName": site.and_then(|s| state.account(&s.account_id)).map(|a| a.name.clone()),
            "agentDomain": agent.map(|a| a.domain.clone()),
            "agentIpV4": agent.and_then(|a| a.addresses.iter().find(|ip| ip.contains('.')).cloned()),
            "agentIpV6": agent.and_then(|a| a.addresses.iter().find(|ip| ip.contains(':')).cloned()),
            "agentLastLoggedInUserName": null,
            "agentMitigationMode": "protect",
            "agentOsName": agent.map(|a| a.os_name.clone()),
            "agentOsRevision": null,
            "agentRegisteredAt": agent.map(|a| ts(a.created_at)),
            "agentUuid": agent.map(|a| a.uuid.clone()),
            "agentVersion": agent.map(|a| a.agent_version.clone()),
            "externalIp": agent.and_then(|a| a.external_ip.clone()),
            "groupId": agent.and_then(|a| a.group_id.clone()),
            "groupName": agent.and_then(|a| a.group_id.as_deref()).and_then(|g| state.group(g)).map(|g| g.name.clone()),
            "siteId": agent.map(|a| a.site_id.clone()),
            "siteName": site.map(|s| s.name.clone()),
        },
        "agentRealtimeInfo": agent_realtime_info(state, stats, &threat.agent_id),
        "containerInfo": {"id": null, "image": null, "labels": null, "name": null},
        "id": threat.id,
        "indicators": [],
        "kubernetesInfo": {
            "cluster": null, "controllerKind": null, "controllerLabels": null, "controllerName": null,
            "namespace": null, "namespaceLabels": null, "node": null, "pod": null, "podLabels": null
        },
        "mitigationStatus": threat.reports.iter().map(render_report).collect::<Vec<_>>(),
        "threatInfo": info,
        "whiteningOptions": ["hash", "path"],
    })
}

/// `GET /threats`.
pub(crate) fn get(state: &State, params: &Params) -> Result<Value, ApiError> {
    params.reject_unknown(&[PAGING_KEYS, FILTER_KEYS].concat(), TIME_FIELDS)?;
    let page = PageRequest::from_params(params, "/threats", &["id", "createdAt", "updatedAt"])?;
    let filter = ThreatFilter::from_params(params)?;
    let items: Vec<&Threat> = state
        .threats
        .iter()
        .filter(|t| filter.matches(state, t))
        .collect();
    let page = paginate(items, &page, |threat, sort_by| SortKey {
        primary: match sort_by {
            "createdAt" => SortValue::Int(threat.created_at.timestamp_micros()),
            "updatedAt" => SortValue::Int(threat.updated_at.timestamp_micros()),
            _ => SortValue::Null,
        },
        id: threat.id.clone(),
    });
    let stats = AgentStats::compute(state);
    Ok(page.to_json(|threat| render(state, &stats, threat)))
}

/// `POST /threats/mitigate/{action}`.
pub(crate) fn mitigate(state: &mut State, action: &str, body: &Value) -> Result<Value, ApiError> {
    // (path action, report/skip action name, OS types that support it)
    let (name, supported): (&str, &[&str]) = match action {
        "kill" => ("kill", AGENT_OS_TYPES),
        "quarantine" => ("quarantine", AGENT_OS_TYPES),
        "un-quarantine" => ("unquarantine", AGENT_OS_TYPES),
        "remediate" => ("remediate", &["windows", "macos"]),
        "rollback-remediation" => ("rollback", &["windows"]),
        _ => {
            return Err(ApiError::validation(format!(
                "{{'action': ['Must be one of: kill, quarantine, remediate, rollback-remediation, un-quarantine.']}} (got '{action}')"
            )));
        }
    };
    let selected = select(state, body)?;
    let now = state.now();
    let mut affected = 0usize;
    let mut details = Vec::with_capacity(selected.len());
    for index in selected {
        let os_type = state
            .agent(&state.threats[index].agent_id)
            .map(|a| a.os_type.clone())
            .unwrap_or_default();
        let threat = &mut state.threats[index];
        if !supported.contains(&os_type.as_str()) {
            let platforms = supported
                .iter()
                .map(|os| match *os {
                    "macos" => "macOS",
                    "windows" => "Windows",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(" and ");
            details.push(json!({
                "threatId": threat.id,
                "skipped": [{
                    "action": name,
                    "reason": "not_supported",
                    "description": format!("{} is supported on {platforms} only; this agent runs {os_type}", description(name)),
                }],
                "reports": [],
            }));
            continue;
        }
        let report = MitigationReport {
            action: name.to_string(),
            status: "success".to_string(),
            at: now,
        };
        // The console keeps the latest report per action; quarantine and un-quarantine undo
        // each other.
        let undone = match name {
            "quarantine" => Some("unquarantine"),
            "unquarantine" => Some("quarantine"),
            _ => None,
        };
        threat
            .reports
            .retain(|r| r.action != name && Some(r.action.as_str()) != undone);
        threat.reports.push(report.clone());
        threat.mitigation_status = if name == "unquarantine" {
            "not_mitigated".to_string()
        } else {
            "mitigated".to_string()
        };
        threat.updated_at = now;
        affected += 1;
        details.push(json!({
            "threatId": threat.id,
            "skipped": [],
            "reports": [render_report(&report)],
        }));
    }
    Ok(json!({"data": {"affected": affected, "details": details}}))
}

fn required_enum(
    data: &serde_json::Map<String, Value>,
    key: &str,
    allowed: &[&str],
    required: bool,
) -> Result<Option<String>, ApiError> {
    match data.get(key) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(ApiError::validation(format!(
            "{{'data': {{'{key}': ['Missing data for required field.']}}}}"
        ))),
        Some(Value::String(v)) if allowed.contains(&v.as_str()) => Ok(Some(v.clone())),
        Some(_) => Err(ApiError::validation(format!(
            "{{'data': {{'{key}': ['Must be one of: {}.']}}}}",
            allowed.join(", ")
        ))),
    }
}

/// `POST /threats/analyst-verdict`. `affected` counts every matched threat; `details` tells
/// which ones changed.
pub(crate) fn analyst_verdict(state: &mut State, body: &Value) -> Result<Value, ApiError> {
    let data = data_object(body)?;
    let verdict =
        required_enum(data, "analystVerdict", ANALYST_VERDICTS, true)?.unwrap_or_default();
    let selected = select(state, body)?;
    let now = state.now();
    let mut details = Vec::with_capacity(selected.len());
    for &index in &selected {
        let threat = &mut state.threats[index];
        let result = if threat.analyst_verdict == verdict {
            "not_changed"
        } else {
            threat.analyst_verdict = verdict.clone();
            threat.updated_at = now;
            "updated"
        };
        details.push(json!({"threatId": threat.id, "result": result}));
    }
    Ok(json!({"data": {"affected": selected.len(), "details": details}}))
}

/// `POST /threats/incident`, optionally with an analyst verdict.
pub(crate) fn incident(state: &mut State, body: &Value) -> Result<Value, ApiError> {
    let data = data_object(body)?;
    let status =
        required_enum(data, "incidentStatus", INCIDENT_STATUSES, true)?.unwrap_or_default();
    let verdict = required_enum(data, "analystVerdict", ANALYST_VERDICTS, false)?;
    let selected = select(state, body)?;
    let now = state.now();
    let mut details = Vec::with_capacity(selected.len());
    for &index in &selected {
        let threat = &mut state.threats[index];
        let mut changed = false;
        if threat.incident_status != status {
            threat.incident_status = status.clone();
            changed = true;
        }
        if let Some(verdict) = &verdict
            && threat.analyst_verdict != *verdict
        {
            threat.analyst_verdict = verdict.clone();
            changed = true;
        }
        if changed {
            threat.updated_at = now;
        }
        details.push(json!({
            "threatId": threat.id,
            "result": if changed { "updated" } else { "not_changed" },
            "analystVerdict": threat.analyst_verdict,
        }));
    }
    Ok(json!({"data": {"affected": selected.len(), "details": details}}))
}

/// `POST /threats/notes`: the same note on every matched threat.
pub(crate) fn add_note(state: &mut State, body: &Value) -> Result<Value, ApiError> {
    let data = data_object(body)?;
    let text = match data.get("text") {
        Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
        _ => {
            return Err(ApiError::validation(
                "{'data': {'text': ['Missing data for required field.']}}",
            ));
        }
    };
    let selected = select(state, body)?;
    let now = state.now();
    for &index in &selected {
        let id = state.mint_id();
        state.threats[index].notes.push(Note {
            id,
            text: text.clone(),
            created_at: now,
        });
    }
    Ok(json!({"data": {"affected": selected.len()}}))
}

/// `GET /threats/{id}/notes`.
pub(crate) fn notes(state: &State, threat_id: &str, params: &Params) -> Result<Value, ApiError> {
    params.reject_unknown(
        &[PAGING_KEYS, &["creator__like", "creatorId"]].concat(),
        &[],
    )?;
    let page = PageRequest::from_params(
        params,
        &format!("/threats/{threat_id}/notes"),
        &["createdAt", "id"],
    )?;
    let threat = state
        .threats
        .iter()
        .find(|t| t.id == threat_id)
        .ok_or_else(|| ApiError::not_found(format!("Threat {threat_id} not found")))?;
    let page = paginate(threat.notes.iter().collect(), &page, |note, sort_by| {
        SortKey {
            primary: match sort_by {
                "createdAt" => SortValue::Int(note.created_at.timestamp_micros()),
                _ => SortValue::Null,
            },
            id: note.id.clone(),
        }
    });
    Ok(page.to_json(|note| {
        json!({
            "id": note.id,
            "text": note.text,
            "creator": USER_NAME,
            "creatorId": USER_ID,
            "createdAt": ts(note.created_at),
            "updatedAt": ts(note.created_at),
            "edited": false,
        })
    }))
}
