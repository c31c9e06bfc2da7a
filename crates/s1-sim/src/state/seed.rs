//! Seeding: the console a [`Scenario`] describes, made once when the simulator starts.
//!
//! Owns the expansion of seeds into model objects (defaults, validation with the offending
//! seed's position in the error, default groups, id minting in seed order) and the bulk objects
//! of `generate`. It does not change a running console: after `State::from_scenario` returns,
//! only the endpoints change the state, through its methods.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

use super::State;
use crate::model::{
    AGENT_OS_TYPES, ANALYST_VERDICTS, Account, Activity, Agent, Alert, CONFIDENCE_LEVELS, Group,
    HashEntry, INCIDENT_STATUSES, ListKind, MITIGATION_STATUSES, MitigationReport,
    NETWORK_STATUSES, Note, REPORT_ACTIONS, REPORT_STATUSES, Scope, Site, Threat, canonical_status,
    hex32,
};
use crate::params::is_hex;
use crate::scenario::{ActivityTypeSeed, HashEntrySeed, Scenario};

/// First id minted by the simulator.
const FIRST_ID: u64 = 1_900_000_000_000_000_001;

fn one_of(value: &str, allowed: &[&str], what: &str) -> Result<String, String> {
    if allowed.contains(&value) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "{what} '{value}' is not one of {}",
            allowed.join(", ")
        ))
    }
}

impl State {
    /// Builds the console from a scenario; the error names the offending seed.
    pub(crate) fn from_scenario(scenario: &Scenario) -> Result<State, String> {
        let clock = scenario.clock;
        let start = clock.unwrap_or_else(Utc::now);
        let mut used_ids = HashSet::new();
        for id in scenario
            .accounts
            .iter()
            .map(|s| &s.id)
            .chain(scenario.sites.iter().map(|s| &s.id))
            .chain(scenario.groups.iter().map(|s| &s.id))
            .chain(scenario.agents.iter().map(|s| &s.id))
            .chain(scenario.threats.iter().map(|s| &s.id))
            .chain(scenario.alerts.iter().map(|s| &s.id))
            .chain(scenario.activities.iter().map(|s| &s.id))
            .chain(scenario.restrictions.iter().map(|s| &s.id))
            .chain(scenario.exclusions.iter().map(|s| &s.id))
            .flatten()
        {
            if !used_ids.insert(id.clone()) {
                return Err(format!("id {id} is used by more than one seed"));
            }
        }
        let mut state = State {
            next_id: FIRST_ID,
            used_ids,
            clock,
            token_created_at: scenario
                .token_created_at
                .unwrap_or(start - Duration::days(30)),
            token_expires_at: scenario
                .token_expires_at
                .unwrap_or(start + Duration::days(180)),
            inet6_lookup: scenario.inet6_lookup,
            token_details_omit: scenario.token_details_omit.clone(),
            accounts: Vec::new(),
            sites: Vec::new(),
            groups: Vec::new(),
            agents: Vec::new(),
            agent_index: HashMap::new(),
            threats: Vec::new(),
            threats_by_sha1: HashMap::new(),
            agent_stats: OnceCell::new(),
            alerts: Vec::new(),
            activities: Vec::new(),
            activity_types: scenario
                .activity_types
                .clone()
                .unwrap_or_else(default_activity_types),
            restrictions: Vec::new(),
            exclusions: Vec::new(),
            entry_index: HashMap::new(),
            value_index: Default::default(),
            iocs: Vec::new(),
            ioc_index: None,
            hash_verdicts: scenario
                .hash_verdicts
                .iter()
                .map(|(k, v)| (k.to_lowercase(), v.clone()))
                .collect(),
            token_accounts: Vec::new(),
            dv_events: scenario.dv_events.clone(),
            dv: scenario.dv.clone(),
            dv_queries: HashMap::new(),
            pq: scenario.pq.clone(),
            pq_queries: HashMap::new(),
        };
        state.seed_org(scenario, start)?;
        state.token_accounts = crate::user::assigned_accounts(&scenario.token_user, &state)?;
        state.seed_agents(scenario, start)?;
        state.seed_threats(scenario, start)?;
        state.seed_alerts_and_activities(scenario, start)?;
        for seed in &scenario.restrictions {
            let entry = state.seed_entry(seed, ListKind::Blacklist, start)?;
            state.insert_entry(ListKind::Blacklist, entry);
        }
        for seed in &scenario.exclusions {
            let entry = state.seed_entry(seed, ListKind::Exclusions, start)?;
            state.insert_entry(ListKind::Exclusions, entry);
        }
        let mut ioc_keys = HashSet::new();
        for (i, seed) in scenario.iocs.iter().enumerate() {
            let scope = state
                .seed_scope(&seed.account_id, &seed.site_id, &seed.group_id)
                .map_err(|e| format!("iocs[{i}]: {e}"))?;
            if scope == Scope::Global {
                return Err(format!("iocs[{i}]: needs accountId, siteId or groupId"));
            }
            let upload = seed.upload_time.unwrap_or(start);
            let mut ioc = crate::iocs::build_ioc(
                &Value::Object(seed.fields.clone()),
                scope,
                upload,
                &hex32(&format!("seed-batch-{i}")),
            )
            .map_err(|e| format!("iocs[{i}]: {}", e.detail.unwrap_or(e.title)))?;
            ioc.uuid = state.mint_ioc_uuid();
            if !ioc_keys.insert(ioc.key()) {
                return Err(format!("iocs[{i}]: duplicate IOC"));
            }
            state.iocs.push(ioc);
        }
        state.generate(scenario, start)?;
        for (index, threat) in state.threats.iter().enumerate() {
            state
                .threats_by_sha1
                .entry(threat.sha1.clone())
                .or_default()
                .push(index);
        }
        Ok(state)
    }

    fn seed_id(&mut self, id: &Option<String>) -> String {
        match id {
            Some(id) => id.clone(),
            None => self.mint_id(),
        }
    }

    fn seed_org(&mut self, scenario: &Scenario, start: DateTime<Utc>) -> Result<(), String> {
        for (i, seed) in scenario.accounts.iter().enumerate() {
            let id = self.seed_id(&seed.id);
            self.accounts.push(Account {
                id,
                name: if seed.name.is_empty() {
                    format!("Account {}", i + 1)
                } else {
                    seed.name.clone()
                },
                state: seed.state.clone().unwrap_or_else(|| "active".to_string()),
                created_at: seed.created_at.unwrap_or(start),
                extra: seed.extra.clone(),
            });
        }
        for (i, seed) in scenario.sites.iter().enumerate() {
            if self.account(&seed.account_id).is_none() {
                return Err(format!(
                    "sites[{i}]: accountId '{}' is not a seeded account",
                    seed.account_id
                ));
            }
            let id = self.seed_id(&seed.id);
            self.sites.push(Site {
                id,
                name: if seed.name.is_empty() {
                    format!("Site {}", i + 1)
                } else {
                    seed.name.clone()
                },
                account_id: seed.account_id.clone(),
                state: seed.state.clone().unwrap_or_else(|| "active".to_string()),
                site_type: seed.site_type.clone().unwrap_or_else(|| "Paid".to_string()),
                sku: seed.sku.clone().unwrap_or_else(|| "Complete".to_string()),
                is_default: seed.is_default,
                total_licenses: seed.total_licenses,
                created_at: seed.created_at.unwrap_or(start),
                extra: seed.extra.clone(),
            });
        }
        for (i, seed) in scenario.groups.iter().enumerate() {
            if self.site(&seed.site_id).is_none() {
                return Err(format!(
                    "groups[{i}]: siteId '{}' is not a seeded site",
                    seed.site_id
                ));
            }
            let kind = one_of(
                seed.kind.as_deref().unwrap_or("static"),
                &["static", "dynamic", "pinned"],
                "group type",
            )
            .map_err(|e| format!("groups[{i}]: {e}"))?;
            let id = self.seed_id(&seed.id);
            self.groups.push(Group {
                id,
                name: seed.name.clone(),
                site_id: seed.site_id.clone(),
                kind,
                is_default: seed.is_default,
                rank: seed.rank,
                description: seed.description.clone(),
                created_at: seed.created_at.unwrap_or(start),
                extra: seed.extra.clone(),
            });
        }
        // Every console site has a default group; add one where the scenario gave none.
        let bare: Vec<(String, DateTime<Utc>)> = self
            .sites
            .iter()
            .filter(|site| !self.groups.iter().any(|g| g.site_id == site.id))
            .map(|site| (site.id.clone(), site.created_at))
            .collect();
        for (site_id, created_at) in bare {
            let id = self.mint_id();
            self.groups.push(default_group(id, site_id, created_at));
        }
        Ok(())
    }

    fn seed_agents(&mut self, scenario: &Scenario, start: DateTime<Utc>) -> Result<(), String> {
        for (i, seed) in scenario.agents.iter().enumerate() {
            let context = |e: String| format!("agents[{i}] ({}): {e}", seed.computer_name);
            if seed.computer_name.is_empty() {
                return Err(format!("agents[{i}]: computerName is required"));
            }
            let (site_id, group_id) = match (&seed.group_id, &seed.site_id) {
                (Some(group_id), site_id) => {
                    let group = self.group(group_id).ok_or_else(|| {
                        context(format!("groupId '{group_id}' is not a seeded group"))
                    })?;
                    if site_id.as_ref().is_some_and(|s| *s != group.site_id) {
                        return Err(context("groupId is not in siteId".to_string()));
                    }
                    (group.site_id.clone(), Some(group_id.clone()))
                }
                (None, Some(site_id)) => {
                    if self.site(site_id).is_none() {
                        return Err(context(format!("siteId '{site_id}' is not a seeded site")));
                    }
                    let group = self
                        .groups
                        .iter()
                        .filter(|g| g.site_id == *site_id)
                        .max_by_key(|g| g.is_default)
                        .map(|g| g.id.clone());
                    (site_id.clone(), group)
                }
                (None, None) => return Err(context("needs siteId or groupId".to_string())),
            };
            let os_type = one_of(
                seed.os_type.as_deref().unwrap_or("windows"),
                AGENT_OS_TYPES,
                "osType",
            )
            .map_err(context)?;
            let network_status = one_of(
                seed.network_status.as_deref().unwrap_or("connected"),
                NETWORK_STATUSES,
                "networkStatus",
            )
            .map_err(context)?;
            let id = self.seed_id(&seed.id);
            let index = self.agents.len();
            let network_interfaces = match &seed.network_interfaces {
                Some(interfaces) => interfaces.clone(),
                None => vec![interface_from_ips(&seed.ips, &os_type, index).map_err(context)?],
            };
            let agent = self.build_agent(AgentParts {
                uuid: seed.uuid.clone().unwrap_or_else(|| hex32(&id)),
                id,
                computer_name: seed.computer_name.clone(),
                site_id,
                group_id,
                os_name: seed
                    .os_name
                    .clone()
                    .unwrap_or_else(|| default_os_name(&os_type).to_string()),
                machine_type: seed
                    .machine_type
                    .clone()
                    .unwrap_or_else(|| default_machine_type(&os_type).to_string()),
                os_type,
                agent_version: seed
                    .agent_version
                    .clone()
                    .unwrap_or_else(|| "24.1.4.257".to_string()),
                network_interfaces,
                external_ip: seed.external_ip.clone(),
                network_status,
                is_active: seed.is_active.unwrap_or(true),
                is_decommissioned: seed.is_decommissioned,
                // A computer in no domain reports `WORKGROUP` (XSOAR SentinelOne-V2
                // `test_data/agents_raw_response.json`; rapid7/insightconnect-plugins PR #520).
                domain: seed
                    .domain
                    .clone()
                    .unwrap_or_else(|| "WORKGROUP".to_string()),
                last_active_date: seed.last_active_date.unwrap_or(start),
                created_at: seed.created_at.unwrap_or(start),
                extra: seed.extra.clone(),
            });
            if self.agent(&agent.id).is_some() {
                return Err(context("duplicate agent id".to_string()));
            }
            self.push_agent(agent);
        }
        Ok(())
    }

    fn build_agent(&self, parts: AgentParts) -> Agent {
        let addresses = parts
            .network_interfaces
            .iter()
            .flat_map(|iface| {
                ["inet", "inet6"].into_iter().flat_map(move |key| {
                    iface
                        .get(key)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                })
            })
            .collect();
        let mut extra = parts.extra;
        let scan_status = match extra.remove("scanStatus") {
            Some(Value::String(status)) => status,
            _ => "none".to_string(),
        };
        Agent {
            scan_status,
            id: parts.id,
            uuid: parts.uuid,
            computer_name: parts.computer_name,
            site_id: parts.site_id,
            group_id: parts.group_id,
            os_type: parts.os_type,
            os_name: parts.os_name,
            machine_type: parts.machine_type,
            agent_version: parts.agent_version,
            network_interfaces: parts.network_interfaces,
            addresses,
            external_ip: parts.external_ip,
            network_status: parts.network_status,
            is_active: parts.is_active,
            is_decommissioned: parts.is_decommissioned,
            domain: parts.domain,
            last_active_date: parts.last_active_date,
            created_at: parts.created_at,
            extra,
        }
    }

    fn resolve_agent(
        &self,
        agent_id: &Option<String>,
        computer_name: &Option<String>,
    ) -> Result<String, String> {
        match (agent_id, computer_name) {
            (Some(id), _) => self
                .agent(id)
                .map(|a| a.id.clone())
                .ok_or_else(|| format!("agentId '{id}' is not a seeded agent")),
            (None, Some(name)) => {
                let mut found = self
                    .agents
                    .iter()
                    .filter(|a| a.computer_name.eq_ignore_ascii_case(name));
                match (found.next(), found.next()) {
                    (Some(agent), None) => Ok(agent.id.clone()),
                    (None, _) => Err(format!("computerName '{name}' is not a seeded agent")),
                    (Some(_), Some(_)) => Err(format!(
                        "computerName '{name}' names more than one agent; use agentId"
                    )),
                }
            }
            (None, None) => Err("needs agentId or computerName".to_string()),
        }
    }

    fn seed_threats(&mut self, scenario: &Scenario, start: DateTime<Utc>) -> Result<(), String> {
        for (i, seed) in scenario.threats.iter().enumerate() {
            let context = |e: String| format!("threats[{i}]: {e}");
            let agent_id = self
                .resolve_agent(&seed.agent_id, &seed.computer_name)
                .map_err(context)?;
            let sha1 = seed.sha1.to_lowercase();
            if !is_hex(&sha1, 40) {
                return Err(context(format!(
                    "sha1 '{}' is not 40 hex digits",
                    seed.sha1
                )));
            }
            let sha256 = check_hex(&seed.sha256, 64, "sha256").map_err(context)?;
            let md5 = check_hex(&seed.md5, 32, "md5").map_err(context)?;
            let created_at = seed.created_at.unwrap_or(start);
            let mitigation_status = one_of(
                seed.mitigation_status.as_deref().unwrap_or("not_mitigated"),
                MITIGATION_STATUSES,
                "mitigationStatus",
            )
            .map_err(context)?;
            let reports = match &seed.mitigation_reports {
                Some(seeds) => seeds
                    .iter()
                    .map(|report| {
                        Ok(MitigationReport {
                            action: one_of(&report.action, REPORT_ACTIONS, "action")?,
                            status: one_of(&report.status, REPORT_STATUSES, "status")?,
                            at: report.at.unwrap_or(created_at),
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(context)?,
                None if mitigation_status == "mitigated" => ["kill", "quarantine"]
                    .into_iter()
                    .map(|action| MitigationReport {
                        action: action.to_string(),
                        status: "success".to_string(),
                        at: created_at,
                    })
                    .collect(),
                None => Vec::new(),
            };
            let id = self.seed_id(&seed.id);
            let notes = seed
                .notes
                .iter()
                .map(|text| Note {
                    id: self.mint_id(),
                    text: text.clone(),
                    created_at,
                })
                .collect();
            self.threats.push(Threat {
                id,
                agent_id,
                name: seed
                    .threat_name
                    .clone()
                    .unwrap_or_else(|| file_name(&seed.file_path)),
                sha1,
                sha256,
                md5,
                file_path: seed.file_path.clone(),
                classification: seed
                    .classification
                    .clone()
                    .unwrap_or_else(|| "Malware".to_string()),
                confidence_level: one_of(
                    seed.confidence_level.as_deref().unwrap_or("malicious"),
                    CONFIDENCE_LEVELS,
                    "confidenceLevel",
                )
                .map_err(context)?,
                mitigation_status,
                incident_status: one_of(
                    seed.incident_status.as_deref().unwrap_or("unresolved"),
                    INCIDENT_STATUSES,
                    "incidentStatus",
                )
                .map_err(context)?,
                analyst_verdict: one_of(
                    seed.analyst_verdict.as_deref().unwrap_or("undefined"),
                    ANALYST_VERDICTS,
                    "analystVerdict",
                )
                .map_err(context)?,
                initiated_by: seed
                    .initiated_by
                    .clone()
                    .unwrap_or_else(|| "agent_policy".to_string()),
                created_at,
                updated_at: seed.updated_at.unwrap_or(created_at),
                reports,
                notes,
                extra: seed.extra.clone(),
            });
        }
        Ok(())
    }

    fn seed_alerts_and_activities(
        &mut self,
        scenario: &Scenario,
        start: DateTime<Utc>,
    ) -> Result<(), String> {
        for (i, seed) in scenario.alerts.iter().enumerate() {
            let context = |e: String| format!("alerts[{i}]: {e}");
            let agent_id = self
                .resolve_agent(&seed.agent_id, &seed.computer_name)
                .map_err(context)?;
            let incident_status =
                canonical_status(seed.incident_status.as_deref().unwrap_or("unresolved"));
            one_of(&incident_status, INCIDENT_STATUSES, "incidentStatus").map_err(context)?;
            let analyst_verdict =
                canonical_status(seed.analyst_verdict.as_deref().unwrap_or("undefined"));
            one_of(&analyst_verdict, ANALYST_VERDICTS, "analystVerdict").map_err(context)?;
            let severity = title_case(seed.severity.as_deref().unwrap_or("High"));
            one_of(
                &severity,
                &["Low", "Medium", "High", "Critical"],
                "severity",
            )
            .map_err(context)?;
            let sha1 = check_hex(&seed.sha1, 40, "sha1").map_err(context)?;
            let sha256 = check_hex(&seed.sha256, 64, "sha256").map_err(context)?;
            let md5 = check_hex(&seed.md5, 32, "md5").map_err(context)?;
            let id = self.seed_id(&seed.id);
            let rule_id = match &seed.rule_id {
                Some(rule_id) => rule_id.clone(),
                None => self.mint_id(),
            };
            let created_at = seed.created_at.unwrap_or(start);
            self.alerts.push(Alert {
                id,
                agent_id,
                rule_id,
                rule_name: seed.rule_name.clone(),
                severity,
                sha1,
                sha256,
                md5,
                process_name: seed
                    .process_name
                    .clone()
                    .or_else(|| seed.file_path.as_deref().map(file_name)),
                file_path: seed.file_path.clone(),
                command_line: seed.command_line.clone(),
                incident_status,
                analyst_verdict,
                created_at,
                updated_at: created_at,
                extra: seed.extra.clone(),
            });
        }
        for (i, seed) in scenario.activities.iter().enumerate() {
            let context = |e: String| format!("activities[{i}]: {e}");
            let agent = match &seed.agent_id {
                Some(agent_id) => Some(self.agent(agent_id).ok_or_else(|| {
                    context(format!("agentId '{agent_id}' is not a seeded agent"))
                })?),
                None => None,
            };
            let site_id = seed
                .site_id
                .clone()
                .or_else(|| agent.map(|a| a.site_id.clone()));
            if let Some(site_id) = &site_id
                && self.site(site_id).is_none()
            {
                return Err(context(format!("siteId '{site_id}' is not a seeded site")));
            }
            let account_id = seed.account_id.clone().or_else(|| {
                site_id
                    .as_ref()
                    .and_then(|s| self.site(s))
                    .map(|s| s.account_id.clone())
            });
            let primary = seed.primary_description.clone().unwrap_or_else(|| {
                self.activity_types
                    .iter()
                    .find(|t| t.id == seed.activity_type)
                    .map(|t| t.action.clone())
                    .unwrap_or_else(|| format!("Activity {}", seed.activity_type))
            });
            let id = self.seed_id(&seed.id);
            self.activities.push(Activity {
                id,
                activity_type: seed.activity_type,
                primary_description: primary,
                secondary_description: seed.secondary_description.clone(),
                account_id,
                site_id,
                agent_id: seed.agent_id.clone(),
                threat_id: seed.threat_id.clone(),
                user_id: seed.user_id.clone(),
                data: seed.data.clone().unwrap_or_else(|| json!({})),
                created_at: seed.created_at.unwrap_or(start),
                extra: seed.extra.clone(),
            });
        }
        Ok(())
    }

    fn seed_scope(
        &self,
        account_id: &Option<String>,
        site_id: &Option<String>,
        group_id: &Option<String>,
    ) -> Result<Scope, String> {
        match (account_id, site_id, group_id) {
            (None, None, None) => Ok(Scope::Global),
            (Some(id), None, None) if self.account(id).is_some() => Ok(Scope::Account(id.clone())),
            (None, Some(id), None) if self.site(id).is_some() => Ok(Scope::Site(id.clone())),
            (None, None, Some(id)) if self.group(id).is_some() => Ok(Scope::Group(id.clone())),
            (None, None, _) | (None, _, None) | (_, None, None) => {
                Err("scope id does not name a seeded account, site or group".to_string())
            }
            _ => Err("give at most one of accountId, siteId, groupId".to_string()),
        }
    }

    fn seed_entry(
        &mut self,
        seed: &HashEntrySeed,
        list: ListKind,
        start: DateTime<Utc>,
    ) -> Result<HashEntry, String> {
        let what = match list {
            ListKind::Blacklist => "restrictions",
            ListKind::Exclusions => "exclusions",
        };
        let context = |e: String| format!("{what}: {e}");
        let scope = self
            .seed_scope(&seed.account_id, &seed.site_id, &seed.group_id)
            .map_err(context)?;
        let mut data = Map::new();
        data.insert(
            "type".to_string(),
            json!(
                seed.kind
                    .clone()
                    .unwrap_or_else(|| list.hash_type().to_string())
            ),
        );
        data.insert("osType".to_string(), json!(seed.os_type));
        if let Some(value) = &seed.value {
            data.insert("value".to_string(), json!(value));
        }
        if let Some(value) = &seed.sha256_value {
            data.insert("sha256Value".to_string(), json!(value));
        }
        if let Some(description) = &seed.description {
            data.insert("description".to_string(), json!(description));
        }
        data.insert(
            "source".to_string(),
            json!(seed.source.clone().unwrap_or_else(|| "user".to_string())),
        );
        let created_at = seed.created_at.unwrap_or(start);
        let id = self.seed_id(&seed.id);
        let mut entry =
            crate::lists::entry_from_data(list, &Value::Object(data), id, scope, created_at)
                .map_err(|e| context(e.detail.unwrap_or(e.title)))?;
        entry
            .extra
            .extend(seed.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(user_name) = &seed.user_name {
            entry.user_name = user_name.clone();
        }
        if self.find_duplicate(list, &entry).is_some() {
            return Err(context(format!(
                "duplicate entry {}",
                entry
                    .value
                    .clone()
                    .or(entry.sha256.clone())
                    .unwrap_or_default()
            )));
        }
        Ok(entry)
    }

    fn generate(&mut self, scenario: &Scenario, start: DateTime<Utc>) -> Result<(), String> {
        let spec = &scenario.generate;
        let agents_wanted = if spec.threats > 0 && self.agents.is_empty() && spec.agents == 0 {
            1
        } else {
            spec.agents
        };
        if agents_wanted > 0 && self.groups.is_empty() {
            let account_id = self.mint_id();
            self.accounts.push(Account {
                id: account_id.clone(),
                name: "Generated Account".to_string(),
                state: "active".to_string(),
                created_at: start,
                extra: Map::new(),
            });
            let site_id = self.mint_id();
            self.sites.push(Site {
                id: site_id.clone(),
                name: "Generated Site".to_string(),
                account_id,
                state: "active".to_string(),
                site_type: "Paid".to_string(),
                sku: "Complete".to_string(),
                is_default: true,
                total_licenses: None,
                created_at: start,
                extra: Map::new(),
            });
            let group_id = self.mint_id();
            self.groups.push(default_group(group_id, site_id, start));
        }
        let groups: Vec<(String, String)> = self
            .groups
            .iter()
            .map(|g| (g.id.clone(), g.site_id.clone()))
            .collect();
        for n in 1..=agents_wanted {
            let (group_id, site_id) = groups[(n as usize - 1) % groups.len()].clone();
            let id = self.mint_id();
            let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
            let interface = interface_from_ips(&[ip], "windows", n as usize)?;
            let agent = self.build_agent(AgentParts {
                uuid: hex32(&id),
                id,
                computer_name: format!("SIM-HOST-{n:05}"),
                site_id,
                group_id: Some(group_id),
                os_type: "windows".to_string(),
                os_name: default_os_name("windows").to_string(),
                machine_type: "desktop".to_string(),
                agent_version: "24.1.4.257".to_string(),
                network_interfaces: vec![interface],
                external_ip: None,
                network_status: "connected".to_string(),
                is_active: true,
                is_decommissioned: false,
                domain: "WORKGROUP".to_string(),
                last_active_date: start,
                created_at: start,
                extra: Map::new(),
            });
            self.push_agent(agent);
        }
        let agent_ids: Vec<String> = self.agents.iter().map(|a| a.id.clone()).collect();
        for n in 1..=spec.threats {
            let id = self.mint_id();
            let created_at = start - Duration::seconds((spec.threats - n) as i64);
            let name = format!("generated-{n}.exe");
            self.threats.push(Threat {
                id,
                agent_id: agent_ids[(n as usize - 1) % agent_ids.len()].clone(),
                file_path: format!("C:\\Users\\Public\\Downloads\\{name}"),
                name,
                sha1: format!("5eed{n:036x}"),
                sha256: None,
                md5: None,
                classification: "Malware".to_string(),
                confidence_level: "malicious".to_string(),
                mitigation_status: "not_mitigated".to_string(),
                incident_status: "unresolved".to_string(),
                analyst_verdict: "undefined".to_string(),
                initiated_by: "agent_policy".to_string(),
                created_at,
                updated_at: created_at,
                reports: Vec::new(),
                notes: Vec::new(),
                extra: Map::new(),
            });
        }
        for n in 1..=spec.restrictions {
            let id = self.mint_id();
            self.insert_entry(
                ListKind::Blacklist,
                HashEntry {
                    id,
                    kind: "black_hash".to_string(),
                    value: Some(format!("b1ac{n:036x}")),
                    sha256: None,
                    os_type: "windows".to_string(),
                    description: "generated".to_string(),
                    source: "user".to_string(),
                    scope: Scope::Global,
                    user_name: crate::lists::USER_NAME.to_string(),
                    created_at: start,
                    updated_at: start,
                    extra: Map::new(),
                },
            );
        }
        Ok(())
    }
}

struct AgentParts {
    id: String,
    uuid: String,
    computer_name: String,
    site_id: String,
    group_id: Option<String>,
    os_type: String,
    os_name: String,
    machine_type: String,
    agent_version: String,
    network_interfaces: Vec<Value>,
    external_ip: Option<String>,
    network_status: String,
    is_active: bool,
    is_decommissioned: bool,
    domain: String,
    last_active_date: DateTime<Utc>,
    created_at: DateTime<Utc>,
    extra: Map<String, Value>,
}

fn default_group(id: String, site_id: String, created_at: DateTime<Utc>) -> Group {
    Group {
        id,
        name: "Default Group".to_string(),
        site_id,
        kind: "static".to_string(),
        is_default: true,
        rank: None,
        description: None,
        created_at,
        extra: Map::new(),
    }
}

fn interface_from_ips(ips: &[String], os_type: &str, index: usize) -> Result<Value, String> {
    let mut inet = Vec::new();
    let mut inet6 = Vec::new();
    for ip in ips {
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => inet.push(ip.clone()),
            Ok(IpAddr::V6(_)) => inet6.push(ip.clone()),
            Err(_) => return Err(format!("'{ip}' is not an IP address")),
        }
    }
    let name = match os_type {
        "macos" => "en0",
        "linux" => "eth0",
        _ => "Ethernet0",
    };
    Ok(json!({
        "name": name,
        "physical": format!("00:50:56:{:02x}:{:02x}:{:02x}", (index >> 16) & 255, (index >> 8) & 255, index & 255),
        "inet": inet,
        "inet6": inet6,
    }))
}

fn default_os_name(os_type: &str) -> &'static str {
    match os_type {
        "macos" => "macOS Sonoma 14.5",
        "linux" => "Ubuntu 22.04.4 LTS",
        _ => "Windows 11 Enterprise",
    }
}

fn default_machine_type(os_type: &str) -> &'static str {
    match os_type {
        "macos" => "laptop",
        "linux" => "server",
        _ => "desktop",
    }
}

fn check_hex(value: &Option<String>, len: usize, what: &str) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(v) if is_hex(v, len) => Ok(Some(v.to_lowercase())),
        Some(v) => Err(format!("{what} '{v}' is not {len} hex digits")),
    }
}

/// The last component of a Windows or POSIX path.
fn file_name(path: &str) -> String {
    path.rsplit(['\\', '/']).next().unwrap_or(path).to_string()
}

/// `HIGH` / `high` → `High`.
fn title_case(text: &str) -> String {
    let lower = text.to_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn default_activity_types() -> Vec<ActivityTypeSeed> {
    // An illustrative subset; a real console lists a few hundred types.
    [
        (1, "Agent Installed", "{{ computer_name }} installed"),
        (5, "Agent Uninstalled", "{{ computer_name }} uninstalled"),
        (
            18,
            "Threat Detected",
            "Threat {{ threat_name }} detected on {{ computer_name }}",
        ),
        (
            19,
            "Threat Mitigated",
            "Threat {{ threat_name }} mitigated on {{ computer_name }}",
        ),
        (27, "User Logged In", "{{ username }} logged in"),
        (
            52,
            "User Marked Threat As Resolved",
            "{{ username }} resolved {{ threat_name }}",
        ),
        (
            86,
            "Agent Uploaded Fetched Files",
            "{{ computer_name }} uploaded fetched files",
        ),
        (
            2001,
            "Threat Quarantined",
            "{{ threat_name }} quarantined on {{ computer_name }}",
        ),
        (
            3608,
            "New Alert",
            "Alert {{ rule_name }} on {{ computer_name }}",
        ),
    ]
    .into_iter()
    .map(|(id, action, template)| ActivityTypeSeed {
        id,
        action: action.to_string(),
        description_template: template.to_string(),
    })
    .collect()
}
