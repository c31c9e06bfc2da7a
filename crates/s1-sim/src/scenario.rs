//! The scenario: everything a simulated console starts with.
//!
//! Owns the serde model of the scenario file (seed objects, generated bulk data, faults, auth and
//! timing settings) and its validation at parse time. It does not expand seeds into console objects
//! (that is `state`) and does not decide when a fault fires (that is `faults`).
//!
//! Top-level keys are snake_case (they configure the simulator); seed objects use the console's
//! own camelCase field names (`computerName`, `siteId`, …) so a seed reads like an API object.
//! Every seed accepts extra keys, which are copied into the rendered API object unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The token a scenario accepts when it names none.
pub const DEFAULT_API_TOKEN: &str = "sim-token";

/// A console to simulate: seed data, auth, timing and injected faults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// The token accepted in `Authorization: ApiToken <token>`.
    pub api_token: String,
    /// `createdAt` reported by `POST /users/api-token-details` (default: clock − 30 days).
    pub token_created_at: Option<DateTime<Utc>>,
    /// `expiresAt` reported by `POST /users/api-token-details` (default: clock + 180 days).
    pub token_expires_at: Option<DateTime<Utc>>,
    /// Fields left out of the `POST /users/api-token-details` answer (`createdAt`,
    /// `expiresAt`): both are optional there.
    pub token_details_omit: Vec<String>,
    /// A fixed clock for every timestamp the simulator mints; real UTC now when absent.
    pub clock: Option<DateTime<Utc>>,
    /// Sleep before answering each request (without holding the state lock).
    pub latency_ms: u64,
    /// Requests admitted per rolling second; beyond it the answer is 429 with `Retry-After: 1`.
    pub rate_limit_per_second: Option<u32>,
    /// Per-endpoint-family limits (`"sentinelone"` or a table); beyond one, the answer is 429.
    pub rate_limits: Option<RateLimits>,
    /// Path prefixes the token may not use: answered 403 (code 4030010). A prefix that does not
    /// start with `/web/` is relative to `/web/api/v2.1`.
    pub forbidden_paths: Vec<String>,
    /// Injected faults, evaluated in order.
    pub faults: Vec<FaultRule>,
    pub accounts: Vec<AccountSeed>,
    pub sites: Vec<SiteSeed>,
    pub groups: Vec<GroupSeed>,
    pub agents: Vec<AgentSeed>,
    pub threats: Vec<ThreatSeed>,
    pub alerts: Vec<AlertSeed>,
    pub activities: Vec<ActivitySeed>,
    /// Deep Visibility events, as `GET /dv/events` shows them (camelCase fields such as
    /// `eventTime`, `agentId`, `endpointName`, `tgtFileSha1`, `dstIp`), searched by
    /// `POST /dv/init-query`.
    pub dv_events: Vec<Value>,
    /// How Deep Visibility queries behave.
    pub dv: DvSeed,
    /// How PowerQuery (`/dv/events/pq`) behaves; it searches `dv_events` too.
    pub pq: PqSeed,
    /// Replaces the built-in list served by `GET /activities/types`.
    pub activity_types: Option<Vec<ActivityTypeSeed>>,
    /// Blacklist (`black_hash`) entries.
    pub restrictions: Vec<HashEntrySeed>,
    /// Whitelist (exclusion) entries.
    pub exclusions: Vec<HashEntrySeed>,
    pub iocs: Vec<IocSeed>,
    /// SHA-1 → verdict (`malicious`, `non-malicious`, `unknown`) for `GET /hashes/{sha1}/verdict`.
    pub hash_verdicts: BTreeMap<String, String>,
    /// Bulk data made from formulas, for benchmarks and paging tests.
    pub generate: GenerateSpec,
    /// Whether `__contains` query filters split a comma-separated value into several values, as
    /// SentinelOne documents (default true). `false` simulates a console that reads the whole
    /// text as one value: `s1-actions probe` must detect it, and the
    /// `lookup_values_per_request = one` fallback must still find every entry.
    pub comma_lists: bool,
    /// Whether `networkInterfaceInet__contains` on agents also searches their IPv6 (`inet6`)
    /// addresses (default true). `false` simulates a console that searches only `inet`, which
    /// `s1-actions probe` must detect (no source says which one SentinelOne does).
    pub inet6_lookup: bool,
    /// The user the token belongs to (default: a global Admin): what `GET /user` shows, and for an
    /// `account` user the accounts it is assigned to, which `GET /accounts` narrows to and
    /// Threat Intelligence refuses when there are several.
    pub token_user: TokenUserSeed,
}

/// The token's user: its scope and its roles per scope (SW24 `UsersSchemasUserSchema200Data`:
/// `scope` ∈ tenant, account, site; `scopeRoles[]{id, name, accountName, roleName}`).
///
/// This is the one description of who the token is. A `tenant` user (the default) sees every
/// account. An `account` user is assigned to the accounts its scope roles name by `id` (each must
/// be a seeded account): `GET /accounts` lists only those, and with more than one it is a
/// multi-account user, whom every `/threat-intelligence/iocs` method answers 403 code 4030010
/// "This page doesn't support multi-scopes users yet" whatever the filter (SW26
/// `tests/README.md`, live-tenant finding). A `site` user is shown by `GET /user` only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenUserSeed {
    pub scope: UserScope,
    pub scope_roles: Vec<ScopeRoleSeed>,
    pub full_name: String,
}

impl Default for TokenUserSeed {
    fn default() -> Self {
        TokenUserSeed {
            scope: UserScope::Tenant,
            scope_roles: Vec::new(),
            full_name: "ThreatQ Service User".to_string(),
        }
    }
}

/// The level a user is defined at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserScope {
    Tenant,
    Account,
    Site,
}

/// One scope a user has a role in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ScopeRoleSeed {
    pub id: Option<String>,
    pub name: String,
    pub account_name: Option<String>,
    pub role_name: String,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            api_token: DEFAULT_API_TOKEN.to_string(),
            token_created_at: None,
            token_expires_at: None,
            token_details_omit: Vec::new(),
            clock: None,
            latency_ms: 0,
            rate_limit_per_second: None,
            rate_limits: None,
            forbidden_paths: Vec::new(),
            faults: Vec::new(),
            accounts: Vec::new(),
            sites: Vec::new(),
            groups: Vec::new(),
            agents: Vec::new(),
            threats: Vec::new(),
            alerts: Vec::new(),
            activities: Vec::new(),
            dv_events: Vec::new(),
            dv: DvSeed::default(),
            pq: PqSeed::default(),
            activity_types: None,
            restrictions: Vec::new(),
            exclusions: Vec::new(),
            iocs: Vec::new(),
            hash_verdicts: BTreeMap::new(),
            generate: GenerateSpec::default(),
            comma_lists: true,
            inet6_lookup: true,
            token_user: TokenUserSeed::default(),
        }
    }
}

impl Scenario {
    /// Parses a scenario from JSON text.
    pub fn from_json(text: &str) -> Result<Scenario, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Reads and parses a scenario file.
    pub fn from_file(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        Scenario::from_json(&text).with_context(|| format!("invalid scenario {}", path.display()))
    }
}

/// An account. Defaults: `state` active.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AccountSeed {
    pub id: Option<String>,
    pub name: String,
    pub state: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A site of an account. `totalLicenses` absent = unlimited.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SiteSeed {
    pub id: Option<String>,
    pub name: String,
    pub account_id: String,
    pub state: Option<String>,
    pub site_type: Option<String>,
    pub sku: Option<String>,
    pub is_default: bool,
    pub total_licenses: Option<u64>,
    pub created_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A group of a site. `type` defaults to static.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GroupSeed {
    pub id: Option<String>,
    pub name: String,
    pub site_id: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub is_default: bool,
    pub rank: Option<i64>,
    pub description: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An endpoint agent. Give `groupId` (its site follows) or `siteId` (the site's default group,
/// else its first group, else no group). `ips` lists IPv4/IPv6 addresses of one interface;
/// `networkInterfaces` replaces that with the console's full form.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentSeed {
    pub id: Option<String>,
    pub uuid: Option<String>,
    pub computer_name: String,
    pub site_id: Option<String>,
    pub group_id: Option<String>,
    pub os_type: Option<String>,
    pub os_name: Option<String>,
    pub machine_type: Option<String>,
    pub agent_version: Option<String>,
    pub ips: Vec<String>,
    pub network_interfaces: Option<Vec<Value>>,
    pub external_ip: Option<String>,
    pub network_status: Option<String>,
    pub is_active: Option<bool>,
    pub is_decommissioned: bool,
    pub domain: Option<String>,
    pub last_active_date: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A threat on an agent, in compact form: the agent by `agentId` or `computerName`, the file by
/// `sha1`/`filePath`; the rest has defaults (`threatName` = the file name, classification Malware,
/// confidence malicious, not_mitigated, unresolved, verdict undefined). Extra keys go into
/// `threatInfo`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ThreatSeed {
    pub id: Option<String>,
    pub agent_id: Option<String>,
    pub computer_name: Option<String>,
    pub sha1: String,
    pub sha256: Option<String>,
    pub md5: Option<String>,
    pub file_path: String,
    pub threat_name: Option<String>,
    pub classification: Option<String>,
    pub confidence_level: Option<String>,
    pub mitigation_status: Option<String>,
    pub incident_status: Option<String>,
    pub analyst_verdict: Option<String>,
    pub initiated_by: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Texts of notes already on the threat.
    pub notes: Vec<String>,
    /// The threat's `mitigationStatus[]` reports, oldest first. Absent: none, or a successful
    /// kill and quarantine at `createdAt` when `mitigationStatus` is `mitigated`.
    pub mitigation_reports: Option<Vec<MitigationReportSeed>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One mitigation report of a seeded threat: `action` as `mitigationStatus[].action` names it
/// (`kill`, `quarantine`, `unquarantine`, `remediate`, `rollback`), `status` as its `status`
/// (`success`, `failed`, `pending`, `pending-reboot`, `sent`, `partial` — Dirt-Diver/s1-api
/// `api/docs/ThreatsSchemasThreatSchemaMany200MitigationStatus.md`), and `at` its time
/// (`lastUpdate`, `mitigationStartedAt` and `mitigationEndedAt`; default: the threat's
/// `createdAt`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MitigationReportSeed {
    pub action: String,
    pub status: String,
    pub at: Option<DateTime<Utc>>,
}

/// A STAR (cloud-detection) alert on an agent. Statuses accept either spelling
/// (`IN_PROGRESS`, `in_progress`, `In progress`). Extra keys go into `alertInfo`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AlertSeed {
    pub id: Option<String>,
    pub agent_id: Option<String>,
    pub computer_name: Option<String>,
    pub rule_id: Option<String>,
    pub rule_name: String,
    pub severity: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub md5: Option<String>,
    pub file_path: Option<String>,
    pub process_name: Option<String>,
    pub command_line: Option<String>,
    pub incident_status: Option<String>,
    pub analyst_verdict: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An activity-log entry. Scope ids default from `agentId` when given.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ActivitySeed {
    pub id: Option<String>,
    pub activity_type: i64,
    pub primary_description: Option<String>,
    pub secondary_description: Option<String>,
    pub account_id: Option<String>,
    pub site_id: Option<String>,
    pub agent_id: Option<String>,
    pub threat_id: Option<String>,
    pub user_id: Option<String>,
    pub data: Option<Value>,
    pub created_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How the simulated Deep Visibility answers: a query finishes after `polls_to_finish` calls of
/// `GET /dv/query-status`; it returns at most `result_cap` events (SentinelOne's is 20,000,
/// and the query's own `limit` may be lower); a query whose text contains `refuse_containing`
/// is refused by `POST /dv/init-query` (400 "could not parse query"), one containing
/// `fail_containing` ends `FAILED` with a `responseError`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DvSeed {
    pub polls_to_finish: u32,
    pub result_cap: usize,
    pub refuse_containing: Option<String>,
    pub fail_containing: Option<String>,
}

impl Default for DvSeed {
    fn default() -> Self {
        DvSeed {
            polls_to_finish: 2,
            result_cap: 20_000,
            refuse_containing: None,
            fail_containing: None,
        }
    }
}

/// How the simulated PowerQuery answers. `available: false` is a console without it: both
/// endpoints are answered as an unknown route (404). A query's answer is ready after
/// `pings_to_finish` calls of `GET /dv/events/pq-ping` (0: `POST /dv/events/pq` answers it
/// at once); it holds at most `result_cap` rows besides the query's own `| limit` (1,000
/// without one) and body `limit`. A query whose text contains `refuse_containing` is refused
/// by the POST (400, code 4000040 "Bad Request"), one containing `fail_containing` ends
/// `FAILED`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PqSeed {
    pub available: bool,
    pub pings_to_finish: u32,
    pub result_cap: usize,
    pub refuse_containing: Option<String>,
    pub fail_containing: Option<String>,
}

impl Default for PqSeed {
    fn default() -> Self {
        PqSeed {
            available: true,
            pings_to_finish: 1,
            result_cap: 100_000,
            refuse_containing: None,
            fail_containing: None,
        }
    }
}

/// One row of `GET /activities/types`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ActivityTypeSeed {
    pub id: i64,
    pub action: String,
    pub description_template: String,
}

/// A blacklist or exclusion entry. Scope: at most one of `accountId`, `siteId`, `groupId`; none =
/// global. `type` defaults to the list's hash type (`black_hash` / `white_hash`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HashEntrySeed {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub value: Option<String>,
    pub sha256_value: Option<String>,
    pub os_type: String,
    pub description: Option<String>,
    pub source: Option<String>,
    pub account_id: Option<String>,
    pub site_id: Option<String>,
    pub group_id: Option<String>,
    pub user_name: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A Threat Intelligence IOC: the fields a POST would carry plus its scope (exactly one of
/// `accountId`, `siteId`, `groupId`). `validUntil` gets the same defaults and caps as a POST.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct IocSeed {
    pub account_id: Option<String>,
    pub site_id: Option<String>,
    pub group_id: Option<String>,
    pub upload_time: Option<DateTime<Utc>>,
    /// The IOC itself (`type`, `value`, `source`, `method`, …) as in a POST body.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// Bulk objects made from formulas (documented in `docs/simulator.md`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateSpec {
    /// Agents `SIM-HOST-00001`…, spread over the seeded groups (or a generated org).
    pub agents: u64,
    /// Threats with SHA-1 `5eed` + 36 hex digits of the 1-based index, spread over all agents.
    pub threats: u64,
    /// Global windows blacklist entries with SHA-1 `b1ac` + 36 hex digits of the index.
    pub restrictions: u64,
}

/// Per-endpoint-family rate limits the console enforces: at most `limit` requests of a family
/// in any rolling `window_ms`; a request beyond it is answered 429 and not applied.
///
/// Written as `"sentinelone"` (the SDK's per-token table, [`SENTINELONE_FAMILY_LIMITS`]) or as
/// an object: `{"preset": "sentinelone", "families": {"/threat-intelligence":
/// {"limit": 1, "window_ms": 2000}}, "retry_after": false}`. `families` adds to or replaces the
/// preset's entries by prefix; `retry_after` (default true) says whether the 429 carries a
/// `Retry-After` (the seconds until the window admits again, rounded up).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RawRateLimits", into = "RawRateLimits")]
pub struct RateLimits {
    /// `(prefix relative to /web/api/v2.1, limit, window)`. A prefix ending in `/` covers only
    /// the paths below it; the longest matching prefix decides a request's family.
    pub families: Vec<FamilyRule>,
    pub retry_after: bool,
}

/// One family's limit in a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyRule {
    #[serde(skip)]
    pub prefix: String,
    pub limit: u32,
    pub window_ms: u64,
}

/// SentinelOne's per-API-token limits per endpoint family, as `(prefix relative to
/// /web/api/v2.1, limit, window_ms)`: the table of the Go SDK's `buildDefaultRateLimits`
/// (`s1buildpartners/sentinelone-go-sdk` `ratelimit.go`, `reference/sentinelone-api.md` §9).
///
/// The client of s1-actions holds itself to the same table (`s1_actions::api::FAMILY_LIMITS`).
/// It is written out twice on purpose: the simulator stands for the console and must not take
/// its limits from the client it tests; an integration test (`tests/it/rate_limits.rs`) checks
/// that the two agree.
pub const SENTINELONE_FAMILY_LIMITS: &[(&str, u32, u64)] = &[
    ("/threats", 10, 1_000),
    ("/threats/", 100, 1_000),
    ("/agents", 25, 1_000),
    ("/exclusions", 25, 1_000),
    ("/activities", 10, 1_000),
    ("/sites", 100, 1_000),
    ("/accounts", 100, 1_000),
    ("/threat-intelligence", 30, 60_000),
    ("/cloud-detection/rules", 30, 60_000),
    ("/users", 40, 1_000),
    ("/users/login", 1, 1_000),
    ("/dv/init-query", 1, 60_000),
    ("/dv/query-status", 1, 1_000),
    ("/dv/events/pq", 4, 1_000),
    ("/dv/events/pq-ping", 4, 1_000),
];

/// The preset tables a scenario may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RatePreset {
    /// [`SENTINELONE_FAMILY_LIMITS`]: the per-token limits of the Go SDK's
    /// `buildDefaultRateLimits`.
    Sentinelone,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum RawRateLimits {
    Preset(RatePreset),
    Table {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preset: Option<RatePreset>,
        #[serde(default)]
        families: BTreeMap<String, FamilyRule>,
        #[serde(default = "default_true")]
        retry_after: bool,
    },
}

fn default_true() -> bool {
    true
}

impl TryFrom<RawRateLimits> for RateLimits {
    type Error = String;

    fn try_from(raw: RawRateLimits) -> Result<Self, Self::Error> {
        let (preset, table, retry_after) = match raw {
            RawRateLimits::Preset(preset) => (Some(preset), BTreeMap::new(), true),
            RawRateLimits::Table {
                preset,
                families,
                retry_after,
            } => (preset, families, retry_after),
        };
        let mut families: Vec<FamilyRule> = match preset {
            Some(RatePreset::Sentinelone) => SENTINELONE_FAMILY_LIMITS
                .iter()
                .map(|&(prefix, limit, window_ms)| FamilyRule {
                    prefix: prefix.to_string(),
                    limit,
                    window_ms,
                })
                .collect(),
            None => Vec::new(),
        };
        for (prefix, mut rule) in table {
            if rule.limit == 0 || rule.window_ms == 0 {
                return Err(format!(
                    "rate limit of {prefix} needs a limit and a window_ms above 0"
                ));
            }
            rule.prefix = prefix;
            families.retain(|family| family.prefix != rule.prefix);
            families.push(rule);
        }
        Ok(RateLimits {
            families,
            retry_after,
        })
    }
}

impl From<RateLimits> for RawRateLimits {
    fn from(limits: RateLimits) -> Self {
        RawRateLimits::Table {
            preset: None,
            families: limits
                .families
                .into_iter()
                .map(|rule| (rule.prefix.clone(), rule))
                .collect(),
            retry_after: limits.retry_after,
        }
    }
}

/// One fault rule. A request matches when its method equals `method` (any when absent,
/// case-insensitive) and its path starts with `path` (any when absent; a prefix that does not
/// start with `/web/` is relative to `/web/api/v2.1`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Name recorded in `RecordedRequest::fault` (default: the fault kind, e.g. `status_429`).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    /// Matching requests to let through before the rule may fire.
    #[serde(default)]
    pub after: u64,
    /// How many times the rule fires at most (unlimited when absent).
    #[serde(default)]
    pub times: Option<u64>,
    /// Fire only on every Nth match (after `after`): the Nth, 2Nth, …
    #[serde(default)]
    pub every: Option<u64>,
    pub fault: Fault,
}

/// What a firing rule does to the exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawFault", into = "RawFault")]
pub enum Fault {
    /// Answer this status with an S1 errors body, without applying the request.
    Status {
        status: u16,
        retry_after: Option<String>,
        /// SentinelOne's own error code in the body (default: status × 10000 + 10), e.g.
        /// 4000030 for an "Already Exists" answer.
        code: Option<u64>,
    },
    /// Close the connection without answering and without applying the request.
    DropBefore,
    /// Apply the request, then close the connection without answering.
    DropAfter,
    /// Apply the request, then answer 200 with a body that is not JSON.
    Malformed,
    /// Apply the request, wait this long, then answer normally.
    Delay { ms: u64 },
    /// Apply the request, then send a Content-Length longer than the body and close.
    Truncated,
    /// Apply the request, then answer 200 with this text instead of the real body: an odd answer
    /// of the scenario's choice (`{"data": null}`, an HTML page, an empty body).
    Body { text: String },
}

impl Fault {
    /// The name recorded for a request this fault hit.
    pub fn kind_name(&self) -> String {
        match self {
            Fault::Status { status, .. } => format!("status_{status}"),
            Fault::DropBefore => "drop_before".to_string(),
            Fault::DropAfter => "drop_after".to_string(),
            Fault::Malformed => "malformed".to_string(),
            Fault::Delay { .. } => "delay".to_string(),
            Fault::Truncated => "truncated".to_string(),
            Fault::Body { .. } => "body".to_string(),
        }
    }
}

/// The JSON form of a fault: exactly one of the keys is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after: Option<StringOrNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drop: Option<DropWhen>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    malformed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    truncated: Option<bool>,
    /// The 200 answer's body: a string is sent as it is, any other JSON value as its JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DropWhen {
    Before,
    After,
}

/// `Retry-After` may be written as `"1"`, `1` or an HTTP date.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    Number(u64),
    String(String),
}

impl TryFrom<RawFault> for Fault {
    type Error = String;

    fn try_from(raw: RawFault) -> Result<Self, Self::Error> {
        let mut kinds = Vec::new();
        if let Some(status) = raw.status {
            if !(100..=599).contains(&status) {
                return Err(format!("fault status {status} is not an HTTP status"));
            }
            let retry_after = raw.retry_after.map(|value| match value {
                StringOrNumber::Number(n) => n.to_string(),
                StringOrNumber::String(s) => s,
            });
            kinds.push(Fault::Status {
                status,
                retry_after,
                code: raw.code,
            });
        } else if raw.retry_after.is_some() || raw.code.is_some() {
            return Err("retry_after and code need a status".to_string());
        }
        match raw.drop {
            Some(DropWhen::Before) => kinds.push(Fault::DropBefore),
            Some(DropWhen::After) => kinds.push(Fault::DropAfter),
            None => {}
        }
        if raw.malformed == Some(true) {
            kinds.push(Fault::Malformed);
        }
        if let Some(ms) = raw.delay_ms {
            kinds.push(Fault::Delay { ms });
        }
        if raw.truncated == Some(true) {
            kinds.push(Fault::Truncated);
        }
        match raw.body {
            Some(Value::String(text)) => kinds.push(Fault::Body { text }),
            Some(value) => kinds.push(Fault::Body {
                text: value.to_string(),
            }),
            None => {}
        }
        match kinds.len() {
            1 => Ok(kinds.remove(0)),
            0 => Err(
                "a fault needs one of status, drop, malformed, delay_ms, truncated, body"
                    .to_string(),
            ),
            _ => Err("a fault names more than one kind".to_string()),
        }
    }
}

impl From<Fault> for RawFault {
    fn from(fault: Fault) -> Self {
        let mut raw = RawFault::default();
        match fault {
            Fault::Status {
                status,
                retry_after,
                code,
            } => {
                raw.status = Some(status);
                raw.retry_after = retry_after.map(StringOrNumber::String);
                raw.code = code;
            }
            Fault::DropBefore => raw.drop = Some(DropWhen::Before),
            Fault::DropAfter => raw.drop = Some(DropWhen::After),
            Fault::Malformed => raw.malformed = Some(true),
            Fault::Delay { ms } => raw.delay_ms = Some(ms),
            Fault::Truncated => raw.truncated = Some(true),
            Fault::Body { text } => raw.body = Some(Value::String(text)),
        }
        raw
    }
}
