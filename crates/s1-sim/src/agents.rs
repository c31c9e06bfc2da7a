//! The agent endpoints: `GET /agents` and `POST /agents/actions/{connect|disconnect}`.
//!
//! Owns the agent filter (shared by the list and the actions' `filter`) and agent rendering.
//! Network actions take effect at once (`connected` / `disconnected`, no `connecting` phase), and
//! `affected` counts every matched agent, including those already in the target state, as the
//! console does. `computerName` is an exact, case-sensitive match; the `__contains` filters are
//! case-insensitive substring searches of the field they name (SW24 `AgentsApi.md`: free text,
//! several values comma-separated) — `computerName__contains` looks at `computerName` alone, never
//! at `domain`, so a look-up by host name returns every same-named computer of every domain, as a
//! console does, and the client must tell them apart. `domain` is reported as seeded, the way
//! agents report it (`WORKGROUP` when the seed names none: XSOAR
//! `SentinelOne-V2/test_data/agents_raw_response.json`; an AD domain's NetBIOS name such as
//! `ACME`; a DNS name; `unknown`). It does not route requests.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::model::{AGENT_OS_TYPES, Agent, NETWORK_STATUSES, ts};
use super::paging::{PAGING_KEYS, PageRequest, SortKey, SortValue, paginate};
use super::params::{ApiError, Needles, Params, TimeRange};
use super::state::State;
use super::threats::AgentStats;

const FILTER_KEYS: &[&str] = &[
    "ids",
    "uuid",
    "uuids",
    "computerName",
    "computerName__contains",
    "networkInterfaceInet__contains",
    "externalIp__contains",
    "siteIds",
    "accountIds",
    "groupIds",
    "networkStatuses",
    "isActive",
    "isDecommissioned",
    "infected",
    "osTypes",
    "query",
    // Accepted and ignored: the simulator is a single tenant seen by a global user.
    "tenant",
];

const TIME_FIELDS: &[&str] = &["createdAt", "lastActiveDate"];

#[derive(Debug)]
struct AgentFilter {
    ids: Option<HashSet<String>>,
    uuids: Option<HashSet<String>>,
    computer_name: Option<String>,
    computer_contains: Option<Needles>,
    inet_contains: Option<Vec<String>>,
    external_contains: Option<Vec<String>>,
    site_ids: Option<HashSet<String>>,
    account_ids: Option<HashSet<String>>,
    group_ids: Option<HashSet<String>>,
    network_statuses: Option<Vec<String>>,
    is_active: Option<bool>,
    is_decommissioned: Option<bool>,
    infected: Option<bool>,
    os_types: Option<Vec<String>>,
    query: Option<String>,
    created: TimeRange,
    last_active: TimeRange,
}

fn set(params: &Params, key: &str) -> Option<HashSet<String>> {
    params.list(key).map(|l| l.into_iter().collect())
}

impl AgentFilter {
    fn from_params(params: &Params) -> Result<AgentFilter, ApiError> {
        let mut uuids = params.list_lower("uuids").unwrap_or_default();
        uuids.extend(params.text("uuid")?.map(|u| u.to_lowercase()));
        let network_statuses = params.list("networkStatuses");
        if let Some(bad) = network_statuses
            .iter()
            .flatten()
            .find(|s| !NETWORK_STATUSES.contains(&s.as_str()))
        {
            return Err(params.invalid(
                "networkStatuses",
                &format!("'{bad}' is not one of: {}.", NETWORK_STATUSES.join(", ")),
            ));
        }
        let os_types = params.list("osTypes");
        if let Some(bad) = os_types
            .iter()
            .flatten()
            .find(|s| !AGENT_OS_TYPES.contains(&s.as_str()))
        {
            return Err(params.invalid(
                "osTypes",
                &format!("'{bad}' is not one of: {}.", AGENT_OS_TYPES.join(", ")),
            ));
        }
        Ok(AgentFilter {
            ids: set(params, "ids"),
            uuids: (!uuids.is_empty()).then(|| uuids.into_iter().collect()),
            computer_name: params.text("computerName")?,
            computer_contains: params.list("computerName__contains").map(Needles::new),
            inet_contains: params.list_lower("networkInterfaceInet__contains"),
            external_contains: params.list_lower("externalIp__contains"),
            site_ids: set(params, "siteIds"),
            account_ids: set(params, "accountIds"),
            group_ids: set(params, "groupIds"),
            network_statuses,
            is_active: params.bool("isActive")?,
            is_decommissioned: params.bool("isDecommissioned")?,
            infected: params.bool("infected")?,
            os_types,
            query: params.text("query")?.map(|q| q.to_lowercase()),
            created: params.time_range("createdAt")?,
            last_active: params.time_range("lastActiveDate")?,
        })
    }

    fn matches(&self, state: &State, stats: &AgentStats, agent: &Agent) -> bool {
        let account_id = state.site_account(&agent.site_id).unwrap_or_default();
        let addresses = || agent.addresses.iter().map(|a| a.to_lowercase());
        let external = agent
            .external_ip
            .as_deref()
            .unwrap_or_default()
            .to_lowercase();
        self.ids.as_ref().is_none_or(|s| s.contains(&agent.id))
            && self
                .uuids
                .as_ref()
                .is_none_or(|s| s.contains(&agent.uuid.to_lowercase()))
            && self
                .computer_name
                .as_ref()
                .is_none_or(|n| *n == agent.computer_name)
            && self
                .computer_contains
                .as_ref()
                .is_none_or(|n| n.found_in(&agent.computer_name.to_lowercase()))
            && self.inet_contains.as_ref().is_none_or(|needles| {
                addresses()
                    // An IPv6 address is the one with a colon (the scenario's `inet6_lookup`).
                    .filter(|a| state.inet6_lookup || !a.contains(':'))
                    .any(|a| needles.iter().any(|n| a.contains(n.as_str())))
            })
            && self
                .external_contains
                .as_ref()
                .is_none_or(|needles| needles.iter().any(|n| external.contains(n.as_str())))
            && self
                .site_ids
                .as_ref()
                .is_none_or(|s| s.contains(&agent.site_id))
            && self
                .account_ids
                .as_ref()
                .is_none_or(|s| s.contains(account_id))
            && self
                .group_ids
                .as_ref()
                .is_none_or(|s| agent.group_id.as_ref().is_some_and(|g| s.contains(g)))
            && self
                .network_statuses
                .as_ref()
                .is_none_or(|l| l.contains(&agent.network_status))
            && self.is_active.is_none_or(|b| b == agent.is_active)
            && self
                .is_decommissioned
                .is_none_or(|b| b == agent.is_decommissioned)
            && self.infected.is_none_or(|b| b == stats.infected(&agent.id))
            && self
                .os_types
                .as_ref()
                .is_none_or(|l| l.contains(&agent.os_type))
            && self.query.as_ref().is_none_or(|q| {
                agent.computer_name.to_lowercase().contains(q.as_str())
                    || addresses().any(|a| a.contains(q.as_str()))
                    || external.contains(q.as_str())
                    || agent.uuid.to_lowercase().contains(q.as_str())
                    || agent.domain.to_lowercase().contains(q.as_str())
                    || agent.id.contains(q.as_str())
            })
            && self.created.contains(agent.created_at)
            && self.last_active.contains(agent.last_active_date)
    }
}

/// An agent as `GET /agents` shows it.
pub(crate) fn render(state: &State, stats: &AgentStats, agent: &Agent) -> Value {
    let site = state.site(&agent.site_id);
    let account = site.and_then(|s| state.account(&s.account_id));
    let group = agent.group_id.as_deref().and_then(|g| state.group(g));
    let mut out = json!({
        "accountId": site.map(|s| s.account_id.clone()),
        "accountName": account.map(|a| a.name.clone()),
        "activeThreats": stats.active_threats(&agent.id),
        "agentVersion": agent.agent_version,
        "computerName": agent.computer_name,
        "createdAt": ts(agent.created_at),
        "domain": agent.domain,
        "externalIp": agent.external_ip,
        "groupId": agent.group_id,
        "groupName": group.map(|g| g.name.clone()),
        "id": agent.id,
        "infected": stats.infected(&agent.id),
        "isActive": agent.is_active,
        "isDecommissioned": agent.is_decommissioned,
        "isUpToDate": true,
        "lastActiveDate": ts(agent.last_active_date),
        "lastIpToMgmt": agent.addresses.first(),
        "machineType": agent.machine_type,
        "mitigationMode": "protect",
        "mitigationModeSuspicious": "detect",
        "networkInterfaces": agent.network_interfaces,
        "networkStatus": agent.network_status,
        "osName": agent.os_name,
        "osRevision": null,
        "osType": agent.os_type,
        "rangerVersion": null,
        "registeredAt": ts(agent.created_at),
        "scanStatus": agent.scan_status,
        "siteId": agent.site_id,
        "siteName": site.map(|s| s.name.clone()),
        "tags": {"sentinelone": []},
        "updatedAt": ts(agent.last_active_date),
        "uuid": agent.uuid,
    });
    if let Some(object) = out.as_object_mut() {
        for (key, value) in &agent.extra {
            object.insert(key.clone(), value.clone());
        }
    }
    out
}

/// `GET /agents`.
pub(crate) fn get(state: &State, params: &Params) -> Result<Value, ApiError> {
    params.reject_unknown(&[PAGING_KEYS, FILTER_KEYS].concat(), TIME_FIELDS)?;
    let page = PageRequest::from_params(
        params,
        "/agents",
        &["id", "computerName", "createdAt", "lastActiveDate"],
    )?;
    let filter = AgentFilter::from_params(params)?;
    let stats = AgentStats::compute(state);
    let items: Vec<&Agent> = state
        .agents()
        .iter()
        .filter(|a| filter.matches(state, &stats, a))
        .collect();
    let page = paginate(items, &page, |agent, sort_by| SortKey {
        primary: match sort_by {
            "computerName" => SortValue::Text(agent.computer_name.to_lowercase()),
            "createdAt" => SortValue::Int(agent.created_at.timestamp_micros()),
            "lastActiveDate" => SortValue::Int(agent.last_active_date.timestamp_micros()),
            _ => SortValue::Null,
        },
        id: agent.id.clone(),
    });
    Ok(page.to_json(|agent| render(state, &stats, agent)))
}

/// `POST /agents/actions/initiate-scan` (every matching agent's `scanStatus` becomes `started`)
/// and `/abort-scan` (a matching agent that is `started` becomes `aborted`; the others are left).
/// `affected` counts the agents the filter matched (reference §7.2: `{"data":{"affected":N}}`
/// for agent actions; whether abort counts agents that were not scanning is UNCONFIRMED). A
/// missing filter is a validation error; an empty filter acts on every agent.
pub(crate) fn scan_action(state: &mut State, start: bool, body: &Value) -> Result<Value, ApiError> {
    let params = Params::required_filter(body)?;
    params.reject_unknown(FILTER_KEYS, TIME_FIELDS)?;
    let filter = AgentFilter::from_params(&params)?;
    let stats = AgentStats::compute(state);
    let ids: Vec<String> = state
        .agents()
        .iter()
        .filter(|a| filter.matches(state, &stats, a))
        .map(|a| a.id.clone())
        .collect();
    for id in &ids {
        if let Some(agent) = state.agent_mut(id) {
            if start {
                agent.scan_status = "started".to_string();
            } else if agent.scan_status == "started" {
                agent.scan_status = "aborted".to_string();
            }
        }
    }
    Ok(json!({"data": {"affected": ids.len()}}))
}

/// `POST /agents/actions/connect` and `/disconnect`. A missing filter is a validation error; an
/// empty filter acts on every agent.
pub(crate) fn network_action(
    state: &mut State,
    connect: bool,
    body: &Value,
) -> Result<Value, ApiError> {
    let params = Params::required_filter(body)?;
    params.reject_unknown(FILTER_KEYS, TIME_FIELDS)?;
    let filter = AgentFilter::from_params(&params)?;
    let stats = AgentStats::compute(state);
    let ids: Vec<String> = state
        .agents()
        .iter()
        .filter(|a| filter.matches(state, &stats, a))
        .map(|a| a.id.clone())
        .collect();
    let target = if connect { "connected" } else { "disconnected" };
    for id in &ids {
        if let Some(agent) = state.agent_mut(id) {
            agent.network_status = target.to_string();
        }
    }
    Ok(json!({"data": {"affected": ids.len()}}))
}
