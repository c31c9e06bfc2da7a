//! The smaller endpoints: API token details, hash verdicts, activities and STAR
//! (cloud-detection) alerts.
//!
//! Owns their filters and shapes. Alert statuses are stored in lower snake case and shown title
//! case inside `alertInfo` (`In progress`, `True positive`); filters and writes accept either
//! spelling. Activities are only those the scenario seeds: writes do not add activity entries. It
//! does not route requests.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::model::{
    ANALYST_VERDICTS, Activity, Alert, INCIDENT_STATUSES, canonical_status, hex32, ts,
};
use super::paging::{PAGING_KEYS, PageRequest, SortKey, SortValue, paginate};
use super::params::{ApiError, Params, is_hex};
use super::state::State;
use super::threats::{AgentStats, RealtimeInfo};

/// `POST /users/api-token-details`.
pub(crate) fn token_details(state: &State, token: &str, body: &Value) -> Result<Value, ApiError> {
    let given = body
        .get("data")
        .and_then(|d| d.get("apiToken"))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::missing_field(&["data", "apiToken"]))?;
    if given != token {
        return Err(ApiError::validation(
            "{'data': {'apiToken': ['Invalid API token.']}}",
        ));
    }
    let mut data = json!({
        "createdAt": ts(state.token_created_at),
        "expiresAt": ts(state.token_expires_at),
    });
    if let Value::Object(fields) = &mut data {
        for name in &state.token_details_omit {
            fields.remove(name);
        }
    }
    Ok(json!({ "data": data }))
}

/// `GET /hashes/{sha1}/verdict`: the scenario's verdict, else `malicious` when a threat with
/// malicious confidence has this SHA-1, else `unknown`.
pub(crate) fn hash_verdict(state: &State, hash: &str, params: &Params) -> Result<Value, ApiError> {
    params.reject_unknown(&[], &[])?;
    if !is_hex(hash, 40) {
        return Err(ApiError::validation(format!(
            "{{'hash': ['{hash} is not a valid SHA1 hash.']}}"
        )));
    }
    let hash = hash.to_lowercase();
    let verdict = state.hash_verdicts.get(&hash).cloned().unwrap_or_else(|| {
        if state
            .threats()
            .iter()
            .any(|t| t.sha1 == hash && t.confidence_level == "malicious")
        {
            "malicious".to_string()
        } else {
            "unknown".to_string()
        }
    });
    Ok(json!({"data": {"verdict": verdict}}))
}

/// `GET /activities/types`.
pub(crate) fn activity_types(state: &State) -> Value {
    json!({"data": state.activity_types.iter().map(|t| json!({
        "id": t.id,
        "action": t.action,
        "descriptionTemplate": t.description_template,
    })).collect::<Vec<_>>()})
}

fn render_activity(state: &State, activity: &Activity) -> Value {
    let site = activity.site_id.as_deref().and_then(|s| state.site(s));
    let account = activity
        .account_id
        .as_deref()
        .and_then(|a| state.account(a));
    let agent = activity.agent_id.as_deref().and_then(|a| state.agent(a));
    let group = agent
        .and_then(|a| a.group_id.as_deref())
        .and_then(|g| state.group(g));
    let mut out = json!({
        "accountId": activity.account_id,
        "accountName": account.map(|a| a.name.clone()),
        "activityType": activity.activity_type,
        "activityUuid": hex32(&format!("activity-{}", activity.id)),
        "agentId": activity.agent_id,
        "agentUpdatedVersion": null,
        "comments": null,
        "createdAt": ts(activity.created_at),
        "data": activity.data,
        "description": null,
        "groupId": agent.and_then(|a| a.group_id.clone()),
        "groupName": group.map(|g| g.name.clone()),
        "hash": null,
        "id": activity.id,
        "osFamily": agent.map(|a| a.os_type.clone()),
        "primaryDescription": activity.primary_description,
        "secondaryDescription": activity.secondary_description,
        "siteId": activity.site_id,
        "siteName": site.map(|s| s.name.clone()),
        "threatId": activity.threat_id,
        "updatedAt": ts(activity.created_at),
        "userId": activity.user_id,
    });
    if let Some(object) = out.as_object_mut() {
        for (key, value) in &activity.extra {
            object.insert(key.clone(), value.clone());
        }
    }
    out
}

/// `GET /activities`.
pub(crate) fn activities(state: &State, params: &Params) -> Result<Value, ApiError> {
    params.reject_unknown(
        &[
            PAGING_KEYS,
            &[
                "ids",
                "activityTypes",
                "siteIds",
                "accountIds",
                "groupIds",
                "agentIds",
                "threatIds",
                "userIds",
                // Accepted and ignored.
                "includeHidden",
                "activityUuids",
                "alertIds",
                "ruleIds",
                "userEmails",
            ],
        ]
        .concat(),
        &["createdAt"],
    )?;
    let page = PageRequest::from_params(params, "/activities", &["id", "createdAt"])?;
    let set = |key: &str| -> Option<HashSet<String>> {
        params.list(key).map(|l| l.into_iter().collect())
    };
    let types: Option<HashSet<i64>> = match params.list("activityTypes") {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|t| t.parse::<i64>())
                .collect::<Result<_, _>>()
                .map_err(|_| params.invalid("activityTypes", "Not a valid list of integers."))?,
        ),
    };
    let ids = set("ids");
    let site_ids = set("siteIds");
    let account_ids = set("accountIds");
    let group_ids = set("groupIds");
    let agent_ids = set("agentIds");
    let threat_ids = set("threatIds");
    let user_ids = set("userIds");
    let created = params.time_range("createdAt")?;
    let has = |filter: &Option<HashSet<String>>, value: &Option<String>| {
        filter
            .as_ref()
            .is_none_or(|s| value.as_ref().is_some_and(|v| s.contains(v)))
    };
    let items: Vec<&Activity> = state
        .activities
        .iter()
        .filter(|a| {
            let group = a
                .agent_id
                .as_deref()
                .and_then(|id| state.agent(id))
                .and_then(|agent| agent.group_id.clone());
            ids.as_ref().is_none_or(|s| s.contains(&a.id))
                && types.as_ref().is_none_or(|t| t.contains(&a.activity_type))
                && has(&site_ids, &a.site_id)
                && has(&account_ids, &a.account_id)
                && has(&group_ids, &group)
                && has(&agent_ids, &a.agent_id)
                && has(&threat_ids, &a.threat_id)
                && has(&user_ids, &a.user_id)
                && created.contains(a.created_at)
        })
        .collect();
    let page = paginate(items, &page, |a, sort_by| SortKey {
        primary: match sort_by {
            "createdAt" => SortValue::Int(a.created_at.timestamp_micros()),
            _ => SortValue::Null,
        },
        id: a.id.clone(),
    });
    Ok(page.to_json(|a| render_activity(state, a)))
}

/// `in_progress` → `In progress`.
fn title(status: &str) -> String {
    let text = status.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn render_alert(state: &State, stats: &AgentStats, alert: &Alert) -> Value {
    let agent = state.agent(&alert.agent_id);
    let mut info = json!({
        "alertId": alert.id,
        "analystVerdict": title(&alert.analyst_verdict),
        "createdAt": ts(alert.created_at),
        "dvEventId": hex32(&format!("dv-{}", alert.id)),
        "eventType": "PROCESSCREATION",
        "hitType": "Events",
        "incidentStatus": title(&alert.incident_status),
        "isEdr": true,
        "reportedAt": ts(alert.created_at),
        "source": "STAR",
        "updatedAt": ts(alert.updated_at),
    });
    if let Some(object) = info.as_object_mut() {
        for (key, value) in &alert.extra {
            object.insert(key.clone(), value.clone());
        }
    }
    let process = json!({
        "commandline": alert.command_line,
        "fileHashMd5": alert.md5,
        "fileHashSha1": alert.sha1,
        "fileHashSha256": alert.sha256,
        "filePath": alert.file_path,
        "fileSignerIdentity": null,
        "integrityLevel": "high",
        "name": alert.process_name,
        "pid": "4242",
        "pidStarttime": ts(alert.created_at),
        "storyline": hex32(&format!("storyline-{}", alert.id))[..16].to_uppercase(),
        "subsystem": "sys_win32",
        "uniqueId": hex32(&format!("process-{}", alert.id)),
        "user": agent.map(|a| format!("{}\\User", a.computer_name)),
    });
    json!({
        "agentDetectionInfo": {
            "accountId": agent.and_then(|a| state.site_account(&a.site_id)),
            "machineType": agent.map(|a| a.machine_type.clone()),
            "name": agent.map(|a| a.computer_name.clone()),
            "osFamily": agent.map(|a| a.os_type.clone()),
            "osName": agent.map(|a| a.os_name.clone()),
            "siteId": agent.map(|a| a.site_id.clone()),
            "uuid": agent.map(|a| a.uuid.clone()),
            "version": agent.map(|a| a.agent_version.clone()),
        },
        "agentRealtimeInfo": RealtimeInfo::new(state, stats, &alert.agent_id),
        "alertInfo": info,
        "containerInfo": {},
        "kubernetesInfo": {},
        "ruleInfo": {
            "description": null,
            "id": alert.rule_id,
            "name": alert.rule_name,
            "queryLang": "1.0",
            "queryType": "events",
            "s1ql": format!("EventType = \"Process Creation\" AND TgtProcName = \"{}\"", alert.process_name.clone().unwrap_or_default()),
            "scopeLevel": "account",
            "severity": alert.severity,
            "treatAsThreat": "UNDEFINED",
        },
        "sourceParentProcessInfo": {"name": "explorer.exe", "filePath": "C:\\Windows\\explorer.exe"},
        "sourceProcessInfo": process,
        "targetProcessInfo": {},
    })
}

const ALERT_FILTER_KEYS: &[&str] = &[
    "ids",
    "siteIds",
    "accountIds",
    "groupIds",
    "incidentStatus",
    "analystVerdict",
    "severity",
    "ruleName__contains",
    "sourceProcessFileHashSha1__contains",
    "sourceProcessFilePath__contains",
    "origAgentUuid__contains",
    // Accepted and ignored: single tenant.
    "tenant",
];

const ALERT_TIME_FIELDS: &[&str] = &["createdAt", "reportedAt"];

struct AlertFilter {
    ids: Option<HashSet<String>>,
    site_ids: Option<HashSet<String>>,
    account_ids: Option<HashSet<String>>,
    group_ids: Option<HashSet<String>>,
    incident: Option<Vec<String>>,
    verdict: Option<Vec<String>>,
    severity: Option<Vec<String>>,
    rule_contains: Option<String>,
    sha1_contains: Option<String>,
    path_contains: Option<String>,
    agent_uuid_contains: Option<String>,
    created: super::params::TimeRange,
    reported: super::params::TimeRange,
}

fn status_list(
    params: &Params,
    key: &str,
    allowed: &[&str],
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = params.list(key) else {
        return Ok(None);
    };
    let list: Vec<String> = list.iter().map(|s| canonical_status(s)).collect();
    if let Some(bad) = list.iter().find(|s| !allowed.contains(&s.as_str())) {
        return Err(params.invalid(
            key,
            &format!("'{bad}' is not one of: {}.", allowed.join(", ")),
        ));
    }
    Ok(Some(list))
}

impl AlertFilter {
    fn from_params(params: &Params) -> Result<AlertFilter, ApiError> {
        let set = |key: &str| -> Option<HashSet<String>> {
            params.list(key).map(|l| l.into_iter().collect())
        };
        let lower = |key: &str| -> Result<Option<String>, ApiError> {
            Ok(params.text(key)?.map(|v| v.to_lowercase()))
        };
        Ok(AlertFilter {
            ids: set("ids"),
            site_ids: set("siteIds"),
            account_ids: set("accountIds"),
            group_ids: set("groupIds"),
            incident: status_list(params, "incidentStatus", INCIDENT_STATUSES)?,
            verdict: status_list(params, "analystVerdict", ANALYST_VERDICTS)?,
            severity: params.list_lower("severity"),
            rule_contains: lower("ruleName__contains")?,
            sha1_contains: lower("sourceProcessFileHashSha1__contains")?,
            path_contains: lower("sourceProcessFilePath__contains")?,
            agent_uuid_contains: lower("origAgentUuid__contains")?,
            created: params.time_range("createdAt")?,
            reported: params.time_range("reportedAt")?,
        })
    }

    fn matches(&self, state: &State, alert: &Alert) -> bool {
        let agent = state.agent(&alert.agent_id);
        let site_id = agent.map(|a| a.site_id.clone()).unwrap_or_default();
        let account_id = state.site_account(&site_id).unwrap_or_default();
        let contains = |needle: &Option<String>, hay: Option<&str>| {
            needle
                .as_ref()
                .is_none_or(|n| hay.is_some_and(|h| h.to_lowercase().contains(n.as_str())))
        };
        self.ids.as_ref().is_none_or(|s| s.contains(&alert.id))
            && self.site_ids.as_ref().is_none_or(|s| s.contains(&site_id))
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
                .incident
                .as_ref()
                .is_none_or(|l| l.contains(&alert.incident_status))
            && self
                .verdict
                .as_ref()
                .is_none_or(|l| l.contains(&alert.analyst_verdict))
            && self
                .severity
                .as_ref()
                .is_none_or(|l| l.contains(&alert.severity.to_lowercase()))
            && contains(&self.rule_contains, Some(&alert.rule_name))
            && contains(&self.sha1_contains, alert.sha1.as_deref())
            && contains(&self.path_contains, alert.file_path.as_deref())
            && contains(&self.agent_uuid_contains, agent.map(|a| a.uuid.as_str()))
            && self.created.contains(alert.created_at)
            && self.reported.contains(alert.created_at)
    }
}

/// `GET /cloud-detection/alerts`.
pub(crate) fn alerts(state: &State, params: &Params) -> Result<Value, ApiError> {
    params.reject_unknown(
        &[PAGING_KEYS, ALERT_FILTER_KEYS].concat(),
        ALERT_TIME_FIELDS,
    )?;
    // `alertInfoCreatedAt` is the console's documented sort key for the creation time (the
    // 2026 spec's enum; XSIAM's SentinelOne collector sorts by it); `createdAt` is kept for
    // clients written against the simulator before.
    let page = PageRequest::from_params(
        params,
        "/cloud-detection/alerts",
        &["id", "createdAt", "alertInfoCreatedAt", "severity"],
    )?;
    let filter = AlertFilter::from_params(params)?;
    let items: Vec<&Alert> = state
        .alerts
        .iter()
        .filter(|a| filter.matches(state, a))
        .collect();
    let page = paginate(items, &page, |a, sort_by| SortKey {
        primary: match sort_by {
            "createdAt" | "alertInfoCreatedAt" => SortValue::Int(a.created_at.timestamp_micros()),
            "severity" => SortValue::Int(match a.severity.as_str() {
                "Low" => 1,
                "Medium" => 2,
                "High" => 3,
                _ => 4,
            }),
            _ => SortValue::Null,
        },
        id: a.id.clone(),
    });
    let stats = AgentStats::compute(state);
    Ok(page.to_json(|a| render_alert(state, &stats, a)))
}

/// `POST /cloud-detection/alerts/analyst-verdict` (`verdict`) and `/incident` (status).
/// `affected` counts every matched alert; an empty filter selects all of them.
pub(crate) fn update_alerts(
    state: &mut State,
    verdict: bool,
    body: &Value,
) -> Result<Value, ApiError> {
    let params = Params::required_filter(body)?;
    params.reject_unknown(ALERT_FILTER_KEYS, ALERT_TIME_FIELDS)?;
    let filter = AlertFilter::from_params(&params)?;
    let (key, allowed) = if verdict {
        ("analystVerdict", ANALYST_VERDICTS)
    } else {
        ("incidentStatus", INCIDENT_STATUSES)
    };
    let value = body
        .get("data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .map(canonical_status)
        .ok_or_else(|| ApiError::missing_field(&["data", key]))?;
    if !allowed.contains(&value.as_str()) {
        return Err(ApiError::validation(format!(
            "{{'data': {{'{key}': ['Must be one of: {}.']}}}}",
            allowed.join(", ")
        )));
    }
    let selected: Vec<usize> = state
        .alerts
        .iter()
        .enumerate()
        .filter(|(_, a)| filter.matches(state, a))
        .map(|(i, _)| i)
        .collect();
    let now = state.now();
    for &index in &selected {
        let alert = &mut state.alerts[index];
        let field = if verdict {
            &mut alert.analyst_verdict
        } else {
            &mut alert.incident_status
        };
        if *field != value {
            *field = value.clone();
            alert.updated_at = now;
        }
    }
    Ok(json!({"data": {"affected": selected.len()}}))
}
