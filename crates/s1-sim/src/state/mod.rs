//! The console's state: every object it holds, the clock and id minting, and the indexes that
//! keep look-ups cheap at tens of thousands of objects.
//!
//! Owns the indexes and keeps them true itself: objects that an index covers are private and
//! change only through methods here (`insert_entry`, `remove_entries`, `threat_mut`,
//! `upsert_ioc`, `remove_iocs`), so no endpoint has to remember to reset or refresh anything. Also
//! owns scope arithmetic (global → account → site → group) and the canonical snapshot returned by
//! `Simulator::state`. It does not make objects from a scenario (`seed`), parse requests or render
//! API objects (the endpoint modules).

mod seed;

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::model::{
    Account, Activity, Agent, Alert, EntryKey, Group, HashEntry, Ioc, ListKind, Scope, Site,
    Threat, hex32, ts,
};
use crate::scenario::ActivityTypeSeed;

/// Everything the console holds.
#[derive(Debug)]
pub(crate) struct State {
    next_id: u64,
    used_ids: HashSet<String>,
    clock: Option<DateTime<Utc>>,
    pub token_created_at: DateTime<Utc>,
    pub token_expires_at: DateTime<Utc>,
    /// The scenario's `inet6_lookup`: whether `networkInterfaceInet__contains` searches IPv6
    /// addresses too.
    pub inet6_lookup: bool,
    /// Fields left out of the token-details answer.
    pub token_details_omit: Vec<String>,
    pub accounts: Vec<Account>,
    pub sites: Vec<Site>,
    pub groups: Vec<Group>,
    agents: Vec<Agent>,
    /// Agent id → position in `agents`.
    agent_index: HashMap<String, usize>,
    /// Made only by seeding (seeds and `generate`).
    threats: Vec<Threat>,
    /// SHA-1 → positions in `threats`, so a `contentHashes` look-up does not scan them all.
    /// Built once by seeding: a threat's SHA-1 is fixed when it is made.
    threats_by_sha1: HashMap<String, Vec<usize>>,
    /// Agent id → (unresolved threats, has a not-mitigated threat), shown on every threat,
    /// agent and alert: counted from the threats on first use, forgotten by `threat_mut`.
    agent_stats: OnceCell<HashMap<String, (usize, bool)>>,
    pub alerts: Vec<Alert>,
    pub activities: Vec<Activity>,
    pub activity_types: Vec<ActivityTypeSeed>,
    /// Changed only through `insert_entry` and `remove_entries`, which keep the two indexes
    /// below in step.
    restrictions: Vec<HashEntry>,
    exclusions: Vec<HashEntry>,
    /// Entry key → id, so duplicate checks stay cheap with tens of thousands of entries.
    entry_index: HashMap<EntryKey, String>,
    /// Per list (blacklist, exclusions): the entries' hashes for `value__contains` look-ups,
    /// built by the first look-up after a change.
    value_index: [OnceCell<ValueIndex>; 2],
    /// Changed only through `upsert_ioc` and `remove_iocs`.
    iocs: Vec<Ioc>,
    /// IOC key → position in `iocs`, built by the first upload that needs it and kept across
    /// uploads (rebuilding it for every 1,000-IOC upload against tens of thousands of IOCs cost
    /// more than the upload itself); `remove_iocs` drops it.
    ioc_index: Option<HashMap<(String, String, Scope), usize>>,
    pub hash_verdicts: HashMap<String, String>,
    /// The accounts the token's user is assigned to (empty: not narrowed to accounts), from
    /// the scenario's `token_user`; see [`super::user::assigned_accounts`].
    pub token_accounts: Vec<String>,
    /// The scenario's Deep Visibility events and behaviour.
    pub dv_events: Vec<serde_json::Value>,
    pub dv: crate::scenario::DvSeed,
    /// Deep Visibility queries started, by query id.
    pub dv_queries: HashMap<String, crate::dv::DvQuery>,
    pub pq: crate::scenario::PqSeed,
    /// PowerQueries started, by query id.
    pub pq_queries: HashMap<String, crate::pq::PqQuery>,
}

/// The hashes of one list's entries: lower-cased `value` and `sha256Value` → positions, and
/// every (length, position) of those texts, longest first.
#[derive(Debug, Default)]
pub(crate) struct ValueIndex {
    exact: HashMap<String, Vec<usize>>,
    by_length: Vec<(usize, usize)>,
}

impl ValueIndex {
    fn of(entries: &[HashEntry]) -> ValueIndex {
        let mut index = ValueIndex::default();
        for (position, entry) in entries.iter().enumerate() {
            for text in entry.value.iter().chain(entry.sha256.iter()) {
                let lower = text.to_lowercase();
                index.by_length.push((lower.len(), position));
                index.exact.entry(lower).or_default().push(position);
            }
        }
        index.by_length.sort_unstable_by(|a, b| b.cmp(a));
        index
    }
}

impl State {
    /// The simulator clock: the scenario's fixed time, else real UTC now.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.unwrap_or_else(Utc::now)
    }

    /// A fresh numeric id.
    pub(crate) fn mint_id(&mut self) -> String {
        loop {
            let id = self.next_id.to_string();
            self.next_id += 1;
            if !self.used_ids.contains(&id) {
                return id;
            }
        }
    }

    fn push_agent(&mut self, agent: Agent) {
        self.agent_index.insert(agent.id.clone(), self.agents.len());
        self.agents.push(agent);
    }

    /// Every agent, in seed order.
    pub(crate) fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// Every threat, in seed order; a threat's position never changes.
    pub(crate) fn threats(&self) -> &[Threat] {
        &self.threats
    }

    /// The positions in [`State::threats`] of the threats whose SHA-1 is `sha1` (lower case).
    pub(crate) fn threats_with_sha1(&self, sha1: &str) -> &[usize] {
        self.threats_by_sha1.get(sha1).map_or(&[], Vec::as_slice)
    }

    /// The threat at `index` (a position from [`State::threats`]), to change. The agent counts
    /// are recounted on their next use. Panics if `index` is not a position of a threat.
    pub(crate) fn threat_mut(&mut self, index: usize) -> &mut Threat {
        self.agent_stats.take();
        &mut self.threats[index]
    }

    /// Agent id → (unresolved threats, has a not-mitigated threat).
    pub(crate) fn agent_stats(&self) -> &HashMap<String, (usize, bool)> {
        self.agent_stats.get_or_init(|| {
            let mut stats: HashMap<String, (usize, bool)> = HashMap::new();
            for threat in &self.threats {
                let entry = match stats.get_mut(threat.agent_id.as_str()) {
                    Some(entry) => entry,
                    None => stats.entry(threat.agent_id.clone()).or_default(),
                };
                if threat.incident_status != "resolved" {
                    entry.0 += 1;
                }
                if threat.mitigation_status == "not_mitigated" {
                    entry.1 = true;
                }
            }
            stats
        })
    }

    /// The entries of `list`, in the order they were made.
    pub(crate) fn entries(&self, list: ListKind) -> &[HashEntry] {
        match list {
            ListKind::Blacklist => &self.restrictions,
            ListKind::Exclusions => &self.exclusions,
        }
    }

    /// Every IOC, in the order they were made.
    pub(crate) fn iocs(&self) -> &[Ioc] {
        &self.iocs
    }

    /// A fresh IOC uuid: 32 hex digits derived from a minted id, so runs are reproducible.
    pub(crate) fn mint_ioc_uuid(&mut self) -> String {
        let serial = self.mint_id();
        hex32(&format!("ioc-{serial}"))
    }

    /// Creates or updates an IOC by its key (type, lower-cased value, scope): an existing one
    /// keeps its uuid and takes the new fields; a new one gets a fresh uuid. Returns it as
    /// stored.
    pub(crate) fn upsert_ioc(&mut self, mut ioc: Ioc) -> &Ioc {
        let mut index = self.ioc_index.take().unwrap_or_else(|| {
            self.iocs
                .iter()
                .enumerate()
                .map(|(i, ioc)| (ioc.key(), i))
                .collect()
        });
        let at = match index.get(&ioc.key()) {
            Some(&at) => {
                ioc.uuid = self.iocs[at].uuid.clone();
                self.iocs[at] = ioc;
                at
            }
            None => {
                let at = self.iocs.len();
                index.insert(ioc.key(), at);
                ioc.uuid = self.mint_ioc_uuid();
                self.iocs.push(ioc);
                at
            }
        };
        self.ioc_index = Some(index);
        &self.iocs[at]
    }

    /// Removes the IOCs that `remove` selects (it sees the state as it was before); returns
    /// how many.
    pub(crate) fn remove_iocs(&mut self, remove: impl Fn(&State, &Ioc) -> bool) -> usize {
        let flags: Vec<bool> = self.iocs.iter().map(|ioc| remove(self, ioc)).collect();
        let before = self.iocs.len();
        let mut flags = flags.into_iter();
        self.iocs.retain(|_| !flags.next().unwrap_or(false));
        self.ioc_index = None;
        before - self.iocs.len()
    }

    /// The id of an entry of `list` that is the same as `entry`, if any.
    pub(crate) fn find_duplicate(&self, list: ListKind, entry: &HashEntry) -> Option<&str> {
        entry
            .keys(list)
            .iter()
            .find_map(|key| self.entry_index.get(key))
            .map(String::as_str)
    }

    /// The positions in `list` of the entries whose `value` or `sha256Value` may contain one
    /// of `needles` (lower-cased): those equal to a needle, and those longer than the shortest
    /// needle, which the caller still has to check. Ascending, without repeats.
    pub(crate) fn value_candidates<'n>(
        &self,
        list: ListKind,
        needles: impl Iterator<Item = &'n str>,
    ) -> Vec<usize> {
        let entries = self.entries(list);
        let index = self.value_index[list as usize].get_or_init(|| ValueIndex::of(entries));
        let mut shortest = usize::MAX;
        let mut found: Vec<usize> = Vec::new();
        for needle in needles {
            shortest = shortest.min(needle.len());
            found.extend(index.exact.get(needle).into_iter().flatten());
        }
        found.extend(
            index
                .by_length
                .iter()
                .take_while(|(length, _)| *length > shortest)
                .map(|(_, position)| *position),
        );
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Adds an entry the caller checked with `find_duplicate`.
    pub(crate) fn insert_entry(&mut self, list: ListKind, entry: HashEntry) {
        self.value_index[list as usize] = OnceCell::new();
        for key in entry.keys(list) {
            self.entry_index.insert(key, entry.id.clone());
        }
        match list {
            ListKind::Blacklist => self.restrictions.push(entry),
            ListKind::Exclusions => self.exclusions.push(entry),
        }
    }

    /// Removes the entries of `list` that `remove` selects; returns how many.
    pub(crate) fn remove_entries(
        &mut self,
        list: ListKind,
        remove: impl Fn(&HashEntry) -> bool,
    ) -> usize {
        self.value_index[list as usize] = OnceCell::new();
        let entries = match list {
            ListKind::Blacklist => &mut self.restrictions,
            ListKind::Exclusions => &mut self.exclusions,
        };
        let before = entries.len();
        let mut removed = Vec::new();
        entries.retain(|entry| {
            if remove(entry) {
                removed.extend(entry.keys(list));
                false
            } else {
                true
            }
        });
        let count = before - entries.len();
        for key in removed {
            self.entry_index.remove(&key);
        }
        count
    }

    pub(crate) fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    pub(crate) fn site(&self, id: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.id == id)
    }

    pub(crate) fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    pub(crate) fn agent(&self, id: &str) -> Option<&Agent> {
        self.agent_index.get(id).map(|&i| &self.agents[i])
    }

    pub(crate) fn agent_mut(&mut self, id: &str) -> Option<&mut Agent> {
        self.agent_index.get(id).map(|&i| &mut self.agents[i])
    }

    /// The account a site belongs to.
    pub(crate) fn site_account(&self, site_id: &str) -> Option<&str> {
        self.site(site_id).map(|s| s.account_id.as_str())
    }

    /// The scopes above `scope`, nearest first, ending with global.
    pub(crate) fn parents(&self, scope: &Scope) -> Vec<Scope> {
        let mut out = Vec::new();
        let mut current = scope.clone();
        loop {
            let parent = match &current {
                Scope::Global => break,
                Scope::Account(_) => Scope::Global,
                Scope::Site(id) => match self.site_account(id) {
                    Some(account) => Scope::Account(account.to_string()),
                    None => Scope::Global,
                },
                Scope::Group(id) => match self.group(id) {
                    Some(group) => Scope::Site(group.site_id.clone()),
                    None => Scope::Global,
                },
            };
            out.push(parent.clone());
            current = parent;
        }
        out
    }

    /// True when `scope` is `ancestor` or lies below it.
    pub(crate) fn within(&self, scope: &Scope, ancestor: &Scope) -> bool {
        scope == ancestor || self.parents(scope).contains(ancestor)
    }

    /// The display name of a scope.
    pub(crate) fn scope_name(&self, scope: &Scope) -> String {
        match scope {
            Scope::Global => "Global".to_string(),
            Scope::Account(id) => self.account(id).map(|a| a.name.clone()).unwrap_or_default(),
            Scope::Site(id) => self.site(id).map(|s| s.name.clone()).unwrap_or_default(),
            Scope::Group(id) => self.group(id).map(|g| g.name.clone()).unwrap_or_default(),
        }
    }

    /// `Global / Account / Site / Group`.
    pub(crate) fn scope_path(&self, scope: &Scope) -> String {
        let mut names: Vec<String> = self
            .parents(scope)
            .iter()
            .rev()
            .map(|s| self.scope_name(s))
            .collect();
        if *scope != Scope::Global {
            names.push(self.scope_name(scope));
        }
        if names.is_empty() {
            names.push("Global".to_string());
        }
        names.join(" / ")
    }

    /// The canonical snapshot of what clients can change, independent of request order: created
    /// entries are listed without their minted ids and times, sorted by content.
    pub(crate) fn snapshot(&self) -> Value {
        let entries = |list: &[HashEntry]| {
            let mut rows: Vec<Value> = list
                .iter()
                .map(|e| {
                    json!({
                        "scope": e.scope.label(),
                        "type": e.kind,
                        "osType": e.os_type,
                        "value": e.value,
                        "sha256Value": e.sha256,
                        "description": e.description,
                        "source": e.source,
                    })
                })
                .collect();
            rows.sort_by_cached_key(|row| row.to_string());
            rows
        };
        let mut iocs: Vec<Value> = self
            .iocs
            .iter()
            .map(|ioc| {
                let mut row = ioc.fields.clone();
                row.insert("scope".to_string(), json!(ioc.scope.label()));
                row.insert("type".to_string(), json!(ioc.kind));
                row.insert("value".to_string(), json!(ioc.value));
                row.insert("validUntil".to_string(), json!(ts(ioc.valid_until)));
                Value::Object(sorted_map(row))
            })
            .collect();
        iocs.sort_by_cached_key(|row| row.to_string());
        let mut threats: Vec<&Threat> = self.threats.iter().collect();
        threats.sort_by(|a, b| super::paging::compare_ids(&a.id, &b.id));
        let threats: Vec<Value> = threats
            .iter()
            .map(|t| {
                let mut notes: Vec<&str> = t.notes.iter().map(|n| n.text.as_str()).collect();
                notes.sort_unstable();
                let mut actions: Vec<String> = t
                    .reports
                    .iter()
                    .map(|r| format!("{}:{}", r.action, r.status))
                    .collect();
                actions.sort();
                json!({
                    "id": t.id,
                    "mitigationStatus": t.mitigation_status,
                    "mitigationActions": actions,
                    "incidentStatus": t.incident_status,
                    "analystVerdict": t.analyst_verdict,
                    "notes": notes,
                })
            })
            .collect();
        let mut agents: Vec<&Agent> = self.agents.iter().collect();
        agents.sort_by(|a, b| super::paging::compare_ids(&a.id, &b.id));
        let agents: Vec<Value> = agents
            .iter()
            .map(|a| {
                let mut row = json!({"id": a.id, "computerName": a.computer_name, "networkStatus": a.network_status});
                // Shown only once it changed from `none`, so states without scans read as before.
                if a.scan_status != "none" {
                    row["scanStatus"] = json!(a.scan_status);
                }
                row
            })
            .collect();
        let mut alerts: Vec<&Alert> = self.alerts.iter().collect();
        alerts.sort_by(|a, b| super::paging::compare_ids(&a.id, &b.id));
        let alerts: Vec<Value> = alerts
            .iter()
            .map(|a| {
                json!({"id": a.id, "analystVerdict": a.analyst_verdict, "incidentStatus": a.incident_status})
            })
            .collect();
        json!({
            "restrictions": entries(&self.restrictions),
            "exclusions": entries(&self.exclusions),
            "iocs": iocs,
            "threats": threats,
            "agents": agents,
            "alerts": alerts,
        })
    }
}

fn sorted_map(map: Map<String, Value>) -> Map<String, Value> {
    let mut pairs: Vec<(String, Value)> = map.into_iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.into_iter().collect()
}
