//! The console's object model: the organisation tree (accounts, sites, groups), agents,
//! threats, alerts, activities, blacklist and exclusion entries, IOCs, the scopes they live in,
//! and the value sets the console accepts for their fields.
//!
//! Owns the types and the small pure helpers every endpoint renders them with (`ts`, `hex32`,
//! `canonical_status`). It does not hold objects (that is `state`), make them from a scenario
//! (`state::seed`), parse requests or render API objects (the endpoint modules).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

pub(crate) const AGENT_OS_TYPES: &[&str] = &["windows", "macos", "linux"];
pub(crate) const ENTRY_OS_TYPES: &[&str] = &["windows", "macos", "linux", "windows_legacy"];
pub(crate) const NETWORK_STATUSES: &[&str] =
    &["connected", "disconnected", "connecting", "disconnecting"];
pub(crate) const MITIGATION_STATUSES: &[&str] = &["not_mitigated", "mitigated", "marked_as_benign"];
pub(crate) const INCIDENT_STATUSES: &[&str] = &["unresolved", "in_progress", "resolved"];
pub(crate) const ANALYST_VERDICTS: &[&str] =
    &["undefined", "true_positive", "false_positive", "suspicious"];
pub(crate) const CONFIDENCE_LEVELS: &[&str] = &["malicious", "suspicious", "n/a"];

/// Where a blacklist entry, exclusion or IOC applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Scope {
    Global,
    Account(String),
    Site(String),
    Group(String),
}

impl Scope {
    /// `global`, `account`, `site` or `group`.
    pub(crate) fn level(&self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Account(_) => "account",
            Scope::Site(_) => "site",
            Scope::Group(_) => "group",
        }
    }

    pub(crate) fn id(&self) -> Option<&str> {
        match self {
            Scope::Global => None,
            Scope::Account(id) | Scope::Site(id) | Scope::Group(id) => Some(id),
        }
    }

    /// The `scope` object of a blacklist or exclusion entry.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Scope::Global => json!({"tenant": true}),
            Scope::Account(id) => json!({"accountIds": [id]}),
            Scope::Site(id) => json!({"siteIds": [id]}),
            Scope::Group(id) => json!({"groupIds": [id]}),
        }
    }

    /// A stable text form for snapshots, e.g. `site:1900000000000000003`.
    pub(crate) fn label(&self) -> String {
        match self.id() {
            Some(id) => format!("{}:{id}", self.level()),
            None => "global".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub id: String,
    pub name: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub state: String,
    pub site_type: String,
    pub sku: String,
    pub is_default: bool,
    pub total_licenses: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub id: String,
    pub name: String,
    pub site_id: String,
    pub kind: String,
    pub is_default: bool,
    pub rank: Option<i64>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct Agent {
    pub id: String,
    pub uuid: String,
    pub computer_name: String,
    pub site_id: String,
    pub group_id: Option<String>,
    pub os_type: String,
    pub os_name: String,
    pub machine_type: String,
    pub agent_version: String,
    pub network_interfaces: Vec<Value>,
    /// Every inet/inet6 address of the interfaces, for IP look-ups.
    pub addresses: Vec<String>,
    pub external_ip: Option<String>,
    pub network_status: String,
    /// `scanStatus`: `none` until a scan is started (`started`), then `aborted` or `finished`
    /// (values of XSOAR SentinelOne-V2 `README.md`, `sentinelone-list-agents` `scan_status`:
    /// "started,aborted"; `none` and `finished` are UNCONFIRMED). Seeded as `scanStatus`.
    pub scan_status: String,
    pub is_active: bool,
    pub is_decommissioned: bool,
    pub domain: String,
    pub last_active_date: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub extra: Map<String, Value>,
}

/// `mitigationStatus[].action` values (Dirt-Diver/s1-api
/// `api/docs/ThreatsSchemasThreatSchemaMany200MitigationStatus.md`, `ActionEnum`; the macro and
/// network actions are not simulated).
pub(crate) const REPORT_ACTIONS: &[&str] = &[
    "kill",
    "quarantine",
    "unquarantine",
    "remediate",
    "rollback",
];

/// `mitigationStatus[].status` values (same model, `StatusEnum`).
pub(crate) const REPORT_STATUSES: &[&str] = &[
    "success",
    "failed",
    "pending-reboot",
    "pending",
    "sent",
    "partial",
];

/// One outcome of a mitigation action on a threat, kept (and shown) in the order they happened.
#[derive(Debug, Clone)]
pub(crate) struct MitigationReport {
    pub action: String,
    pub status: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Note {
    pub id: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Threat {
    pub id: String,
    pub agent_id: String,
    pub name: String,
    pub sha1: String,
    pub sha256: Option<String>,
    pub md5: Option<String>,
    pub file_path: String,
    pub classification: String,
    pub confidence_level: String,
    pub mitigation_status: String,
    pub incident_status: String,
    pub analyst_verdict: String,
    pub initiated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub reports: Vec<MitigationReport>,
    pub notes: Vec<Note>,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct Alert {
    pub id: String,
    pub agent_id: String,
    pub rule_id: String,
    pub rule_name: String,
    pub severity: String,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub md5: Option<String>,
    pub file_path: Option<String>,
    pub process_name: Option<String>,
    pub command_line: Option<String>,
    /// Canonical lower snake case (`in_progress`); rendered title case.
    pub incident_status: String,
    pub analyst_verdict: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct Activity {
    pub id: String,
    pub activity_type: i64,
    pub primary_description: String,
    pub secondary_description: Option<String>,
    pub account_id: Option<String>,
    pub site_id: Option<String>,
    pub agent_id: Option<String>,
    pub threat_id: Option<String>,
    pub user_id: Option<String>,
    pub data: Value,
    pub created_at: DateTime<Utc>,
    pub extra: Map<String, Value>,
}

/// Which list a hash entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ListKind {
    Blacklist,
    Exclusions,
}

impl ListKind {
    /// The hash `type` of the list.
    pub(crate) fn hash_type(self) -> &'static str {
        match self {
            ListKind::Blacklist => "black_hash",
            ListKind::Exclusions => "white_hash",
        }
    }

    /// The `type` values the list accepts.
    pub(crate) fn types(self) -> &'static [&'static str] {
        match self {
            ListKind::Blacklist => &["black_hash"],
            ListKind::Exclusions => &["white_hash", "path", "certificate", "browser", "file_type"],
        }
    }
}

/// A blacklist (restriction) or exclusion entry.
#[derive(Debug, Clone)]
pub(crate) struct HashEntry {
    pub id: String,
    pub kind: String,
    pub value: Option<String>,
    pub sha256: Option<String>,
    pub os_type: String,
    pub description: String,
    pub source: String,
    pub scope: Scope,
    pub user_name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Other posted fields (`mode`, `pathExclusionType`, …), rendered as given.
    pub extra: Map<String, Value>,
}

/// What makes two entries the same: list, type, OS type, scope and one lower-cased hash.
pub(crate) type EntryKey = (ListKind, String, String, Scope, String);

impl HashEntry {
    /// One key per hash the entry carries: two entries are the same when they share a key.
    pub(crate) fn keys(&self, list: ListKind) -> Vec<EntryKey> {
        self.value
            .iter()
            .chain(self.sha256.iter())
            .map(|hash| {
                (
                    list,
                    self.kind.clone(),
                    self.os_type.clone(),
                    self.scope.clone(),
                    hash.to_lowercase(),
                )
            })
            .collect()
    }
}

/// A Threat Intelligence IOC.
#[derive(Debug, Clone)]
pub(crate) struct Ioc {
    pub uuid: String,
    pub batch_id: String,
    pub scope: Scope,
    pub kind: String,
    pub value: String,
    pub upload_time: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// Every other field as posted (`source`, `method`, `name`, `externalId`, …).
    pub fields: Map<String, Value>,
}

impl Ioc {
    /// The create-or-update key: type, lower-cased value, scope.
    pub(crate) fn key(&self) -> (String, String, Scope) {
        (
            self.kind.clone(),
            self.value.to_lowercase(),
            self.scope.clone(),
        )
    }
}

/// Renders a timestamp as the console does: `2018-02-27T04:49:26.257525Z`.
pub(crate) fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn fnv(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A 32-hex-digit identifier derived from a seed text (agent UUIDs, IOC UUIDs).
pub(crate) fn hex32(seed: &str) -> String {
    format!("{:016x}{:016x}", fnv(seed), fnv(&format!("{seed}#")))
}

/// `IN_PROGRESS`, `in_progress` or `In progress` → `in_progress`.
pub(crate) fn canonical_status(text: &str) -> String {
    text.trim().to_lowercase().replace([' ', '-'], "_")
}
