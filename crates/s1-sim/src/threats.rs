//! The threat endpoints: list, mitigate, analyst verdict, incident status and notes.
//!
//! Owns the threat filter (shared by `GET /threats` and the `filter` of every threat write), the
//! rendering of a threat in the v2.1 shape, and the state changes of mitigation. Mitigation
//! follows the console's platform limits: `rollback-remediation` runs on Windows only and
//! `remediate` on Windows and macOS; other threats are reported in `details[].skipped` with reason
//! `not_supported` and are not counted in `affected`. It does not route requests.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::lists::USER_NAME;
use super::model::{
    AGENT_OS_TYPES, ANALYST_VERDICTS, CONFIDENCE_LEVELS, INCIDENT_STATUSES, MITIGATION_STATUSES,
    MitigationReport, Note, Threat, ts,
};
use super::paging::{PAGING_KEYS, PageRequest, SortKey, SortValue, paginate};
use super::params::{ApiError, FastSet, Needles, Params, TimeRange};
use super::routes::Reply;
use super::state::State;

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
    ids: Option<FastSet>,
    content_hashes: Option<FastSet>,
    hash_contains: Option<Needles>,
    path_contains: Option<Needles>,
    name_contains: Option<Needles>,
    computer_contains: Option<Needles>,
    query: Option<String>,
    site_ids: Option<FastSet>,
    account_ids: Option<FastSet>,
    group_ids: Option<FastSet>,
    agent_ids: Option<FastSet>,
    incident_statuses: Option<Vec<String>>,
    analyst_verdicts: Option<Vec<String>>,
    mitigation_statuses: Option<Vec<String>>,
    confidence_levels: Option<Vec<String>>,
    classifications: Option<Vec<String>>,
    os_types: Option<Vec<String>>,
    created: TimeRange,
    updated: TimeRange,
}

fn set(params: &Params, key: &str) -> Option<FastSet> {
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

    /// Whether `threat` passes every filter. The threat's own fields are checked first and the
    /// agent (two map look-ups and a lower-cased name) only when a filter needs it: a look-up of
    /// 139 hashes among 50,000 threats rejects almost every threat on its hash alone.
    pub(crate) fn matches(&self, state: &State, threat: &Threat) -> bool {
        let hashes = || {
            std::iter::once(threat.sha1.as_str())
                .chain(threat.sha256.as_deref())
                .chain(threat.md5.as_deref())
        };
        let own_fields = self.ids.as_ref().is_none_or(|s| s.contains(&threat.id))
            && self
                .content_hashes
                .as_ref()
                .is_none_or(|s| s.contains(&threat.sha1))
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
            && self.created.contains(threat.created_at)
            && self.updated.contains(threat.updated_at)
            && self
                .hash_contains
                .as_ref()
                .is_none_or(|n| hashes().any(|h| n.found_in(h)))
            && self
                .classifications
                .as_ref()
                .is_none_or(|l| l.contains(&threat.classification.to_lowercase()))
            && self
                .name_contains
                .as_ref()
                .is_none_or(|n| n.found_in(&threat.name.to_lowercase()))
            && self
                .path_contains
                .as_ref()
                .is_none_or(|n| n.found_in(&threat.file_path.to_lowercase()));
        if !own_fields {
            return false;
        }
        let agent = state.agent(&threat.agent_id);
        let computer = || {
            agent
                .map(|a| a.computer_name.to_lowercase())
                .unwrap_or_default()
        };
        let site_id = agent.map(|a| a.site_id.as_str()).unwrap_or_default();
        self.computer_contains
            .as_ref()
            .is_none_or(|n| n.found_in(&computer()))
            && self.query.as_ref().is_none_or(|q| {
                threat.name.to_lowercase().contains(q.as_str())
                    || hashes().any(|h| h.contains(q.as_str()))
                    || threat.file_path.to_lowercase().contains(q.as_str())
                    || computer().contains(q.as_str())
                    || threat.id.contains(q.as_str())
            })
            && self.site_ids.as_ref().is_none_or(|s| s.contains(site_id))
            && self
                .account_ids
                .as_ref()
                .is_none_or(|s| s.contains(state.site_account(site_id).unwrap_or_default()))
            && self.group_ids.as_ref().is_none_or(|s| {
                agent
                    .and_then(|a| a.group_id.as_ref())
                    .is_some_and(|g| s.contains(g))
            })
            && self
                .os_types
                .as_ref()
                .is_none_or(|l| agent.is_some_and(|a| l.contains(&a.os_type)))
    }
}

/// The indexes of the threats a write body's `filter` selects. A missing filter is a validation
/// error; an empty one selects every threat.
fn select(state: &State, body: &Value) -> Result<Vec<usize>, ApiError> {
    let params = Params::required_filter(body)?;
    params.reject_unknown(FILTER_KEYS, TIME_FIELDS)?;
    let filter = ThreatFilter::from_params(&params)?;
    Ok(state
        .threats()
        .iter()
        .enumerate()
        .filter(|(_, t)| filter.matches(state, t))
        .map(|(i, _)| i)
        .collect())
}

fn data_object(body: &Value) -> Result<&serde_json::Map<String, Value>, ApiError> {
    body.get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::missing_field(&["data"]))
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

/// A mitigation report as the console shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportOut<'a> {
    action: &'a str,
    actions_counters: ActionCounters,
    agent_supports_report: bool,
    group_not_found: bool,
    last_update: String,
    latest_report: Option<&'a str>,
    mitigation_ended_at: String,
    mitigation_started_at: String,
    status: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ActionCounters {
    failed: u32,
    not_found: u32,
    pending_reboot: u32,
    success: u32,
    total: u32,
}

impl<'a> ReportOut<'a> {
    fn new(report: &'a MitigationReport) -> ReportOut<'a> {
        ReportOut {
            action: &report.action,
            actions_counters: ActionCounters {
                failed: u32::from(report.status != "success"),
                not_found: 0,
                pending_reboot: 0,
                success: u32::from(report.status == "success"),
                total: 1,
            },
            agent_supports_report: true,
            group_not_found: false,
            last_update: ts(report.at),
            latest_report: None,
            mitigation_ended_at: ts(report.at),
            mitigation_started_at: ts(report.at),
            status: &report.status,
        }
    }
}

/// Plain serializable values cannot fail to become JSON; `Null` keeps the signature total.
fn to_value(value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn render_report(report: &MitigationReport) -> Value {
    to_value(ReportOut::new(report))
}

/// Per-agent threat counts (active threats, infected), computed once per request.
#[derive(Debug)]
pub(crate) struct AgentStats<'s>(&'s HashMap<String, (usize, bool)>);

impl<'s> AgentStats<'s> {
    /// The counts kept by the state (see `State::agent_stats`).
    pub(crate) fn compute(state: &'s State) -> AgentStats<'s> {
        AgentStats(state.agent_stats())
    }

    pub(crate) fn active_threats(&self, agent_id: &str) -> usize {
        self.0.get(agent_id).map_or(0, |s| s.0)
    }

    pub(crate) fn infected(&self, agent_id: &str) -> bool {
        self.0.get(agent_id).is_some_and(|s| s.1)
    }
}

/// The live agent block of threats and alerts (`agentRealtimeInfo`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RealtimeInfo<'a> {
    account_id: Option<&'a str>,
    account_name: Option<&'a str>,
    active_threats: usize,
    agent_computer_name: Option<&'a str>,
    agent_decommissioned_at: Option<&'a str>,
    agent_domain: Option<&'a str>,
    agent_id: &'a str,
    agent_infected: bool,
    agent_is_active: Option<bool>,
    agent_is_decommissioned: Option<bool>,
    agent_machine_type: Option<&'a str>,
    agent_mitigation_mode: &'static str,
    agent_network_status: Option<&'a str>,
    agent_os_name: Option<&'a str>,
    agent_os_revision: Option<&'a str>,
    agent_os_type: Option<&'a str>,
    agent_uuid: Option<&'a str>,
    agent_version: Option<&'a str>,
    group_id: Option<&'a str>,
    group_name: Option<&'a str>,
    network_interfaces: &'a [Value],
    operational_state: &'static str,
    reboot_required: bool,
    scan_aborted_at: Option<&'a str>,
    scan_finished_at: Option<&'a str>,
    scan_started_at: Option<&'a str>,
    scan_status: &'static str,
    site_id: Option<&'a str>,
    site_name: Option<&'a str>,
    user_actions_needed: [(); 0],
}

impl<'a> RealtimeInfo<'a> {
    pub(crate) fn new(state: &'a State, stats: &AgentStats, agent_id: &'a str) -> RealtimeInfo<'a> {
        let agent = state.agent(agent_id);
        let site = agent.and_then(|a| state.site(&a.site_id));
        let account = site.and_then(|s| state.account(&s.account_id));
        let group = agent
            .and_then(|a| a.group_id.as_deref())
            .and_then(|g| state.group(g));
        RealtimeInfo {
            account_id: site.map(|s| s.account_id.as_str()),
            account_name: account.map(|a| a.name.as_str()),
            active_threats: stats.active_threats(agent_id),
            agent_computer_name: agent.map(|a| a.computer_name.as_str()),
            agent_decommissioned_at: None,
            agent_domain: agent.map(|a| a.domain.as_str()),
            agent_id,
            agent_infected: stats.infected(agent_id),
            agent_is_active: agent.map(|a| a.is_active),
            agent_is_decommissioned: agent.map(|a| a.is_decommissioned),
            agent_machine_type: agent.map(|a| a.machine_type.as_str()),
            agent_mitigation_mode: "protect",
            agent_network_status: agent.map(|a| a.network_status.as_str()),
            agent_os_name: agent.map(|a| a.os_name.as_str()),
            agent_os_revision: None,
            agent_os_type: agent.map(|a| a.os_type.as_str()),
            agent_uuid: agent.map(|a| a.uuid.as_str()),
            agent_version: agent.map(|a| a.agent_version.as_str()),
            group_id: agent.and_then(|a| a.group_id.as_deref()),
            group_name: group.map(|g| g.name.as_str()),
            network_interfaces: agent.map_or(&[], |a| a.network_interfaces.as_slice()),
            operational_state: "na",
            reboot_required: false,
            scan_aborted_at: None,
            scan_finished_at: None,
            scan_started_at: None,
            scan_status: "none",
            site_id: agent.map(|a| a.site_id.as_str()),
            site_name: site.map(|s| s.name.as_str()),
            user_actions_needed: [],
        }
    }
}

/// The agent as it was when the threat was detected (`agentDetectionInfo`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DetectionInfo<'a> {
    account_id: Option<&'a str>,
    account_name: Option<&'a str>,
    agent_domain: Option<&'a str>,
    agent_ip_v4: Option<&'a str>,
    agent_ip_v6: Option<&'a str>,
    agent_last_logged_in_user_name: Option<&'a str>,
    agent_mitigation_mode: &'static str,
    agent_os_name: Option<&'a str>,
    agent_os_revision: Option<&'a str>,
    agent_registered_at: Option<String>,
    agent_uuid: Option<&'a str>,
    agent_version: Option<&'a str>,
    external_ip: Option<&'a str>,
    group_id: Option<&'a str>,
    group_name: Option<&'a str>,
    site_id: Option<&'a str>,
    site_name: Option<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ThreatInfo<'a> {
    analyst_verdict: &'a str,
    analyst_verdict_description: String,
    automatically_resolved: bool,
    certificate_id: &'static str,
    classification: &'a str,
    classification_source: &'static str,
    cloud_files_hash_verdict: &'static str,
    collection_id: &'a str,
    confidence_level: &'a str,
    created_at: String,
    detection_engines: [DetectionEngine; 1],
    detection_type: &'static str,
    engines: [&'static str; 1],
    external_ticket_exists: bool,
    external_ticket_id: Option<&'a str>,
    failed_actions: bool,
    file_extension: String,
    file_extension_type: &'static str,
    file_path: &'a str,
    file_size: u64,
    file_verification_type: &'static str,
    identified_at: String,
    incident_status: &'a str,
    incident_status_description: String,
    initiated_by: &'a str,
    initiated_by_description: String,
    initiating_user_id: Option<&'a str>,
    initiating_username: Option<&'a str>,
    is_fileless: bool,
    is_valid_certificate: bool,
    malicious_process_arguments: Option<&'a str>,
    md5: Option<&'a str>,
    mitigated_preemptively: bool,
    mitigation_status: &'a str,
    mitigation_status_description: String,
    originator_process: Option<&'a str>,
    pending_actions: bool,
    process_user: Option<String>,
    publisher_name: &'static str,
    reached_events_limit: bool,
    reboot_required: bool,
    sha1: &'a str,
    sha256: Option<&'a str>,
    storyline: String,
    threat_id: &'a str,
    threat_name: &'a str,
    updated_at: String,
}

#[derive(Debug, Serialize)]
struct DetectionEngine {
    key: &'static str,
    title: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ThreatOut<'a> {
    agent_detection_info: DetectionInfo<'a>,
    agent_realtime_info: RealtimeInfo<'a>,
    container_info: ContainerInfo,
    id: &'a str,
    indicators: [(); 0],
    kubernetes_info: KubernetesInfo,
    mitigation_status: Vec<ReportOut<'a>>,
    threat_info: ThreatInfo<'a>,
    whitening_options: [&'static str; 2],
}

#[derive(Debug, Default, Serialize)]
struct ContainerInfo {
    id: Option<String>,
    image: Option<String>,
    labels: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct KubernetesInfo {
    cluster: Option<String>,
    controller_kind: Option<String>,
    controller_labels: Option<String>,
    controller_name: Option<String>,
    namespace: Option<String>,
    namespace_labels: Option<String>,
    node: Option<String>,
    pod: Option<String>,
    pod_labels: Option<String>,
}

fn threat_out<'a>(state: &'a State, stats: &AgentStats, threat: &'a Threat) -> ThreatOut<'a> {
    let agent = state.agent(&threat.agent_id);
    let site = agent.and_then(|a| state.site(&a.site_id));
    let group = agent
        .and_then(|a| a.group_id.as_deref())
        .and_then(|g| state.group(g));
    let extension = threat
        .name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_uppercase())
        .unwrap_or_default();
    let file_extension_type = match extension.as_str() {
        "EXE" | "DLL" | "SYS" => "Executable",
        _ => "Unknown",
    };
    ThreatOut {
        agent_detection_info: DetectionInfo {
            account_id: site.map(|s| s.account_id.as_str()),
            account_name: site
                .and_then(|s| state.account(&s.account_id))
                .map(|a| a.name.as_str()),
            agent_domain: agent.map(|a| a.domain.as_str()),
            agent_ip_v4: agent
                .and_then(|a| a.addresses.iter().find(|ip| ip.contains('.')))
                .map(String::as_str),
            agent_ip_v6: agent
                .and_then(|a| a.addresses.iter().find(|ip| ip.contains(':')))
                .map(String::as_str),
            agent_last_logged_in_user_name: None,
            agent_mitigation_mode: "protect",
            agent_os_name: agent.map(|a| a.os_name.as_str()),
            agent_os_revision: None,
            agent_registered_at: agent.map(|a| ts(a.created_at)),
            agent_uuid: agent.map(|a| a.uuid.as_str()),
            agent_version: agent.map(|a| a.agent_version.as_str()),
            external_ip: agent.and_then(|a| a.external_ip.as_deref()),
            group_id: agent.and_then(|a| a.group_id.as_deref()),
            group_name: group.map(|g| g.name.as_str()),
            site_id: agent.map(|a| a.site_id.as_str()),
            site_name: site.map(|s| s.name.as_str()),
        },
        agent_realtime_info: RealtimeInfo::new(state, stats, &threat.agent_id),
        container_info: ContainerInfo::default(),
        id: &threat.id,
        indicators: [],
        kubernetes_info: KubernetesInfo::default(),
        // Oldest first, as in demisto/content SentinelOne-V2
        // `test_data/get_threats_2_1_raw_response.json` (kill, then a later quarantine); other
        // recorded answers list them newest first, so clients must go by the timestamps.
        mitigation_status: threat.reports.iter().map(ReportOut::new).collect(),
        threat_info: ThreatInfo {
            analyst_verdict: &threat.analyst_verdict,
            analyst_verdict_description: description(&threat.analyst_verdict),
            automatically_resolved: false,
            certificate_id: "",
            classification: &threat.classification,
            classification_source: "Static",
            cloud_files_hash_verdict: if threat.confidence_level == "malicious" {
                "black"
            } else {
                "provider_unknown"
            },
            collection_id: &threat.id,
            confidence_level: &threat.confidence_level,
            created_at: ts(threat.created_at),
            detection_engines: [DetectionEngine {
                key: "sentinelone_cloud",
                title: "SentinelOne Cloud",
            }],
            detection_type: "static",
            engines: ["SentinelOne Cloud"],
            external_ticket_exists: false,
            external_ticket_id: None,
            failed_actions: false,
            file_extension: extension,
            file_extension_type,
            file_path: &threat.file_path,
            file_size: 0,
            file_verification_type: "NotSigned",
            identified_at: ts(threat.created_at),
            incident_status: &threat.incident_status,
            incident_status_description: description(&threat.incident_status),
            initiated_by: &threat.initiated_by,
            initiated_by_description: description(&threat.initiated_by),
            initiating_user_id: None,
            initiating_username: None,
            is_fileless: false,
            is_valid_certificate: false,
            malicious_process_arguments: None,
            md5: threat.md5.as_deref(),
            mitigated_preemptively: false,
            mitigation_status: &threat.mitigation_status,
            mitigation_status_description: description(&threat.mitigation_status),
            originator_process: None,
            pending_actions: false,
            process_user: agent.map(|a| format!("{}\\User", a.computer_name)),
            publisher_name: "",
            reached_events_limit: false,
            reboot_required: false,
            sha1: &threat.sha1,
            sha256: threat.sha256.as_deref(),
            storyline: threat.sha1.get(..16).unwrap_or_default().to_uppercase(),
            threat_id: &threat.id,
            threat_name: &threat.name,
            updated_at: ts(threat.updated_at),
        },
        whitening_options: ["hash", "path"],
    }
}

/// A threat in the v2.1 shape, as JSON text. Serialized straight from borrowed structs because
/// a page of 1,000 threats built as `Value`s is too slow for tests in debug builds.
pub(crate) fn render_text(state: &State, stats: &AgentStats, threat: &Threat) -> String {
    let out = threat_out(state, stats, threat);
    if threat.extra.is_empty() {
        return serde_json::to_string(&out).unwrap_or_default();
    }
    // Seeds' extra keys override the generated `threatInfo` fields.
    let mut value = to_value(out);
    if let Some(info) = value.get_mut("threatInfo").and_then(Value::as_object_mut) {
        for (key, extra) in &threat.extra {
            info.insert(key.clone(), extra.clone());
        }
    }
    value.to_string()
}

/// `GET /threats`.
pub(crate) fn get(state: &State, params: &Params) -> Result<Reply, ApiError> {
    params.reject_unknown(&[PAGING_KEYS, FILTER_KEYS].concat(), TIME_FIELDS)?;
    let page = PageRequest::from_params(params, "/threats", &["id", "createdAt", "updatedAt"])?;
    let filter = ThreatFilter::from_params(params)?;
    let items: Vec<&Threat> = match &filter.content_hashes {
        // Only the threats with one of the hashes can match.
        Some(hashes) => {
            let mut candidates: Vec<usize> = hashes
                .iter()
                .flat_map(|hash| state.threats_with_sha1(hash))
                .copied()
                .collect();
            candidates.sort_unstable();
            candidates.dedup();
            candidates
                .into_iter()
                .filter_map(|index| state.threats().get(index))
                .filter(|t| filter.matches(state, t))
                .collect()
        }
        None => state
            .threats()
            .iter()
            .filter(|t| filter.matches(state, t))
            .collect(),
    };
    let page = paginate(items, &page, |threat, sort_by| SortKey {
        primary: match sort_by {
            "createdAt" => SortValue::Int(threat.created_at.timestamp_micros()),
            "updatedAt" => SortValue::Int(threat.updated_at.timestamp_micros()),
            _ => SortValue::Null,
        },
        id: threat.id.clone(),
    });
    let stats = AgentStats::compute(state);
    let mut text = String::from("{\"data\":[");
    for (i, threat) in page.items.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&render_text(state, &stats, threat));
    }
    text.push_str("],\"pagination\":");
    text.push_str(&page.pagination().to_string());
    text.push('}');
    Ok(Reply::Text(text))
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
            .agent(&state.threats()[index].agent_id)
            .map(|a| a.os_type.clone())
            .unwrap_or_default();
        let threat = state.threat_mut(index);
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
        // A mitigation adds its own report: an un-quarantine is recorded as `unquarantine`
        // after the quarantine it undoes, so the threat's history says which came last. One
        // already in effect (its action's success is the latest report bearing on it) adds
        // none, so a retried request leaves the console as one request does.
        let opposite = match name {
            "quarantine" => Some("unquarantine"),
            "unquarantine" => Some("quarantine"),
            _ => None,
        };
        let in_effect = threat
            .reports
            .iter()
            .rev()
            .find(|r| r.action == name || Some(r.action.as_str()) == opposite)
            .is_some_and(|r| r.action == name && r.status == "success");
        if !in_effect {
            threat.reports.push(report.clone());
        }
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
        None | Some(Value::Null) => Err(ApiError::missing_field(&["data", key])),
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
        let threat = state.threat_mut(index);
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
        let threat = state.threat_mut(index);
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
            return Err(ApiError::missing_field(&["data", "text"]));
        }
    };
    let selected = select(state, body)?;
    let now = state.now();
    for &index in &selected {
        let id = state.mint_id();
        state.threat_mut(index).notes.push(Note {
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
        .threats()
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
