//! `s1-actions probe`: a read-only conformance check of a SentinelOne console, run by an
//! administrator before enabling write actions.
//!
//! Each point of the check is a [`Finding`]: what this binary relies on was `confirmed`,
//! `contradicted` by the console's answers, or `not_testable` (no data to test it with). The
//! points:
//! 1. `comma_lists`: `value__contains` with a comma-separated list finds every value;
//! 2. `inet6_lookup`: `networkInterfaceInet__contains` finds an agent by its IPv6 address;
//! 3. `ioc_scope`: `GET /threat-intelligence/iocs` answers for the configured scope;
//! 4. `token_expiry`, `configured_scope` (the configured sites, accounts and groups exist) and
//!    `retry_after` (whether the 429 answers seen carried `Retry-After`; never provoked);
//! 5. `token_scope`: the level the token's user is defined at, and which write actions it can
//!    expect to work.
//!
//! Only GETs are sent, plus `POST /users/api-token-details`, which reads. The findings become
//! the result's `records`; a contradiction that the configuration must answer (`action_needed`)
//! also becomes a warning and makes the run `partial` (exit 1), so a script can gate on it.
//! This module does not print: `render_text` gives the readable form to `cli`, which hands it
//! to `output`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::api::ApiClient;
use crate::connection::LookupValues;
use crate::envelope;
use crate::error::{Category, ErrorCode, ExitStatus, Failure, WarningCode};
use crate::log;
use crate::result::{RunResult, RunStatus, Warning};

/// What one point of the probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    /// The console behaves as this binary relies on.
    Confirmed,
    /// The console's answers contradict it.
    Contradicted,
    /// Nothing to test it with (no entries, no agent with an IPv6 address, no 429 seen…).
    NotTestable,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Contradicted => "contradicted",
            Self::NotTestable => "not testable",
        }
    }
}

/// One point of the probe, as it appears in `records`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finding {
    /// The point of the probe (1–5).
    pub point: u8,
    /// Stable name of the check.
    pub check: &'static str,
    pub verdict: Verdict,
    /// One sentence for a person.
    pub detail: String,
    /// The configuration must change before the write actions are enabled.
    pub action_needed: bool,
    /// What to change, when something should.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<String>,
    /// What the console answered that the verdict rests on.
    pub evidence: Value,
}

impl Finding {
    fn new(point: u8, check: &'static str, verdict: Verdict, detail: impl Into<String>) -> Self {
        Self {
            point,
            check,
            verdict,
            detail: detail.into(),
            action_needed: false,
            recommendation: None,
            evidence: Value::Null,
        }
    }

    fn evidence(mut self, evidence: Value) -> Self {
        self.evidence = evidence;
        self
    }

    fn recommend(mut self, action_needed: bool, recommendation: impl Into<String>) -> Self {
        self.action_needed = action_needed;
        self.recommendation = Some(recommendation.into());
        self
    }
}

/// A failure that ends the probe: the credentials were refused, or the console or the network
/// failed after retries. Anything else (403, 404, 400) is a finding of the point that met it.
fn ends_probe(failure: &Failure) -> bool {
    matches!(
        failure.category,
        Category::Network | Category::Run | Category::Internal
    ) || matches!(
        failure.code,
        ErrorCode::AuthRejected | ErrorCode::UpstreamServerError | ErrorCode::UpstreamRateLimited
    )
}

/// The scope ids the envelope's configuration names (`account_ids`, `site_ids`, `group_ids`,
/// line- or comma-separated text or lists; absent = none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ConfiguredScope {
    account_ids: Vec<String>,
    site_ids: Vec<String>,
    group_ids: Vec<String>,
}

impl ConfiguredScope {
    fn from_config(config: &Map<String, Value>) -> Self {
        let ids = |key: &str| -> Vec<String> {
            let mut ids: Vec<String> = match config.get(key) {
                Some(Value::String(text)) => text
                    .split(['\n', '\r', ','])
                    .map(|id| id.trim().to_string())
                    .collect(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|item| match item {
                        Value::String(text) => Some(text.trim().to_string()),
                        Value::Number(number) => Some(number.to_string()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            ids.retain(|id| !id.is_empty());
            ids
        };
        Self {
            account_ids: ids("account_ids"),
            site_ids: ids("site_ids"),
            group_ids: ids("group_ids"),
        }
    }

    fn is_empty(&self) -> bool {
        self.account_ids.is_empty() && self.site_ids.is_empty() && self.group_ids.is_empty()
    }
}

/// Runs every point against the console and puts the findings into `result` (`records`,
/// `warnings`, and the run error when the probe could not go on).
/// `now` is the run's clock (`run.now` pins it), against which the token's expiry is counted.
pub(crate) fn run(
    client: &ApiClient,
    config: &Map<String, Value>,
    lookup_values: LookupValues,
    now: DateTime<Utc>,
    result: &mut RunResult,
) {
    let scope = ConfiguredScope::from_config(config);
    let mut findings = Vec::new();
    if let Err(failure) = probe_all(client, &scope, lookup_values, now, &mut findings) {
        result.errors.push(failure);
    }
    for finding in &findings {
        if finding.action_needed {
            result.warnings.push(Warning {
                code: WarningCode::Probe(finding.check),
                message: match &finding.recommendation {
                    Some(recommendation) => format!("{} {recommendation}", finding.detail),
                    None => finding.detail.clone(),
                },
                field: field_of(finding.check).map(str::to_string),
            });
        }
        result
            .records
            .push(serde_json::to_value(finding).unwrap_or(Value::Null));
    }
}

/// The configuration parameter a finding's recommendation is about.
fn field_of(check: &str) -> Option<&'static str> {
    match check {
        "comma_lists" => Some("config.lookup_values_per_request"),
        "token_expiry" | "ioc_scope" | "token_scope" => Some("config.api_token"),
        "configured_scope" => Some("config"),
        _ => None,
    }
}

/// The run's exit status and `status` once the findings are known: a contradiction that needs
/// a configuration change makes a run that otherwise succeeded `partial`, exit 1.
pub(crate) fn gate(result: &mut RunResult, exit: ExitStatus) -> ExitStatus {
    let action_needed = result
        .records
        .iter()
        .filter(|record| record["action_needed"] == json!(true))
        .count();
    if exit == ExitStatus::Success && action_needed > 0 {
        result.status = RunStatus::Partial;
        // The summary line logged before counted no failure; this one says why the exit is 1.
        log::info(
            "probe",
            &format!("{action_needed} finding(s) need a configuration change"),
            json!({ "action_needed": action_needed, "status": result.status, "exit": 1 }),
        );
        return ExitStatus::ObjectsFailed;
    }
    exit
}

fn probe_all(
    client: &ApiClient,
    scope: &ConfiguredScope,
    lookup_values: LookupValues,
    now: DateTime<Utc>,
    findings: &mut Vec<Finding>,
) -> Result<(), Failure> {
    // Point 4a first: the cheapest authenticated call, and a refused token ends the probe.
    findings.push(token_expiry(client, now)?);
    let user = token_user(client)?;
    findings.push(comma_lists(client, lookup_values)?);
    findings.push(inet6_lookup(client)?);
    findings.push(ioc_scope(client, scope)?);
    findings.push(configured_scope(client, scope)?);
    findings.push(token_scope(client, user, scope)?);
    // Last, so that every answer of the probe has been seen.
    findings.push(retry_after(client));
    findings.sort_by_key(|finding| finding.point);
    Ok(())
}

/// A point's failed request as a finding, or the failure itself when it ends the probe.
fn failed(
    point: u8,
    check: &'static str,
    what: &str,
    failure: Failure,
) -> Result<Finding, Failure> {
    if ends_probe(&failure) {
        return Err(failure);
    }
    let verdict = if failure.code == ErrorCode::AuthForbidden {
        Verdict::Contradicted
    } else {
        Verdict::NotTestable
    };
    let detail = format!("{what} was refused: {}", failure.message);
    Ok(Finding::new(point, check, verdict, detail).evidence(json!({
        "http_status": failure.http_status,
        "code": failure.upstream_code,
    })))
}

/// Point 4a: the token's dates (`POST /users/api-token-details` → `data.createdAt`,
/// `data.expiresAt`; SW24 `UsersApi.md`).
fn token_expiry(client: &ApiClient, now: DateTime<Utc>) -> Result<Finding, Failure> {
    let details = client.token_details()?;
    let days_left = details
        .expires_at
        .as_deref()
        .and_then(envelope::parse_threatq_time)
        .map(|at| (at - now).num_days());
    let evidence = json!({
        "created_at": details.created_at,
        "expires_at": details.expires_at,
        "days_left": days_left,
    });
    let finding = match days_left {
        None => Finding::new(
            4,
            "token_expiry",
            Verdict::Confirmed,
            "The token is valid; the console reports no expiry date",
        ),
        Some(days) if days < 30 => Finding::new(
            4,
            "token_expiry",
            Verdict::Confirmed,
            format!("The token is valid and expires in {days} days"),
        )
        .recommend(
            true,
            "Generate a new API token in the SentinelOne console before enabling write actions.",
        ),
        Some(days) => Finding::new(
            4,
            "token_expiry",
            Verdict::Confirmed,
            format!("The token is valid and expires in {days} days"),
        ),
    };
    Ok(finding.evidence(evidence))
}

/// The token's user as `GET /user` ("User by token", SW24 `UsersApi.md` `webApiUserGet`)
/// shows it: `data.scope` ∈ tenant | account | site and `data.scopeRoles[]{id, name,
/// roleName}` (SW24 `UsersSchemasUserSchema200Data`). `Err` of a finding when the console
/// does not answer it.
fn token_user(client: &ApiClient) -> Result<Result<Value, Finding>, Failure> {
    match client.get("/user", &[]) {
        Ok(answer) => Ok(Ok(answer.get("data").cloned().unwrap_or(Value::Null))),
        Err(failure) => failed(5, "token_scope", "GET /user", failure).map(Err),
    }
}

/// The SHA-1 values of blacklist entries, lower-cased, distinct, in answer order.
fn entry_values(answer: &Value) -> Vec<String> {
    let mut seen = BTreeSet::new();
    answer
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("value").and_then(Value::as_str))
        .map(str::to_ascii_lowercase)
        .filter(|value| !value.is_empty() && seen.insert(value.clone()))
        .collect()
}

/// Point 1: read up to two blacklist entries, then look both up in one request with
/// `value__contains=a,b`. SentinelOne documents `value__contains` as a list (SW24 `[String]`,
/// `collectionFormat: 'csv'`; reference §3.2); XSOAR looks hashes up with it one at a time.
fn comma_lists(client: &ApiClient, lookup_values: LookupValues) -> Result<Finding, Failure> {
    const CHECK: &str = "comma_lists";
    // The scope parameters the blacklist look-up of actions 1 and 3 sends when no site is
    // configured (`includeChildren`/`includeParents`, as R7 `get_item_ids_by_hash` does).
    let everywhere = || {
        vec![
            ("type", "black_hash".to_string()),
            ("includeChildren", "true".to_string()),
            ("includeParents", "true".to_string()),
        ]
    };
    let mut query = everywhere();
    // Ten rather than two: the same hash is often listed once per OS.
    query.push(("limit", "10".to_string()));
    let sample = match client.get("/restrictions", &query) {
        Ok(answer) => entry_values(&answer),
        Err(failure) => return failed(1, CHECK, "GET /restrictions", failure),
    };
    if sample.len() < 2 {
        return Ok(Finding::new(
            1,
            CHECK,
            Verdict::NotTestable,
            format!(
                "The blacklist holds {} distinct hash(es); two are needed to test a comma-separated look-up",
                sample.len()
            ),
        )
        .evidence(json!({ "sampled": sample })));
    }
    let wanted = &sample[..2];
    let mut query = everywhere();
    query.push(("value__contains", wanted.join(",")));
    query.push(("limit", "1000".to_string()));
    let found = match client.get("/restrictions", &query) {
        Ok(answer) => entry_values(&answer),
        Err(failure) => return failed(1, CHECK, "GET /restrictions?value__contains", failure),
    };
    let missing: Vec<&String> = wanted.iter().filter(|v| !found.contains(v)).collect();
    let evidence = json!({ "looked_up": wanted, "found": found, "missing": missing });
    let finding = if missing.is_empty() {
        let finding = Finding::new(
            1,
            CHECK,
            Verdict::Confirmed,
            "value__contains with two comma-separated hashes returned both entries",
        );
        match lookup_values {
            LookupValues::Many => finding,
            LookupValues::One => finding.recommend(
                false,
                "lookup_values_per_request can be 'many' (the default): look-ups then need far fewer requests.",
            ),
        }
    } else {
        let finding = Finding::new(
            1,
            CHECK,
            Verdict::Contradicted,
            format!(
                "value__contains with two comma-separated hashes returned {} of them: this console does not split comma-separated look-up values",
                wanted.len() - missing.len()
            ),
        );
        match lookup_values {
            LookupValues::Many => finding.recommend(
                true,
                "Set lookup_values_per_request to 'one' in every action's configuration: look-ups then send one value per request (slower, same results).",
            ),
            LookupValues::One => finding.recommend(
                false,
                "lookup_values_per_request is already 'one': look-ups send one value per request.",
            ),
        }
    };
    Ok(finding.evidence(evidence))
}

/// The first agent of an answer with an IPv6 address: (agent id, computer name, address).
fn agent_with_inet6(answer: &Value) -> Option<(String, String, String)> {
    answer
        .get("data")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|agent| {
            let id = agent.get("id").and_then(Value::as_str)?;
            let name = agent
                .get("computerName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let address = agent
                .get("networkInterfaces")
                .and_then(Value::as_array)?
                .iter()
                .filter_map(|interface| interface.get("inet6").and_then(Value::as_array))
                .flatten()
                .filter_map(Value::as_str)
                .find(|address| !address.trim().is_empty())?;
            Some((id.to_string(), name.to_string(), address.trim().to_string()))
        })
}

/// Point 2: an agent with a non-empty `networkInterfaces[].inet6` (SW24
/// `AgentsSchemasAgentViewSchemaMany200NetworkInterfaces`), looked up by that address with
/// `networkInterfaceInet__contains` (SW24 `AgentsApi.md`; R7 looks agents up by IP with it).
fn inet6_lookup(client: &ApiClient) -> Result<Finding, Failure> {
    const CHECK: &str = "inet6_lookup";
    let page = match client.get("/agents", &[("limit", "100".to_string())]) {
        Ok(answer) => answer,
        Err(failure) => return failed(2, CHECK, "GET /agents", failure),
    };
    let Some((id, name, address)) = agent_with_inet6(&page) else {
        return Ok(Finding::new(
            2,
            CHECK,
            Verdict::NotTestable,
            "No agent among the first 100 reports an IPv6 address",
        ));
    };
    let query = [
        ("networkInterfaceInet__contains", address.clone()),
        ("limit", "100".to_string()),
    ];
    let found: Vec<String> = match client.get("/agents", &query) {
        Ok(answer) => answer
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|agent| agent.get("id").and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
        Err(failure) => {
            return failed(
                2,
                CHECK,
                "GET /agents?networkInterfaceInet__contains",
                failure,
            );
        }
    };
    let evidence =
        json!({ "agent_id": id, "computer_name": name, "address": address, "found": found });
    let finding = if found.contains(&id) {
        Finding::new(
            2,
            CHECK,
            Verdict::Confirmed,
            format!("Agent {name} was found by its IPv6 address {address}"),
        )
    } else {
        Finding::new(
            2,
            CHECK,
            Verdict::Contradicted,
            format!("Agent {name} was not found by its IPv6 address {address}: IPv6 Address indicators will match no agent on this console"),
        )
        .recommend(
            false,
            "Look agents up by IPv4 address or FQDN on this console.",
        )
    };
    Ok(finding.evidence(evidence))
}

/// Point 3: `GET /threat-intelligence/iocs?limit=1` with the configured scope (`accountIds`,
/// `siteIds`; reference §6.2). A multi-account service user is refused with 403 code 4030010
/// "This page doesn't support multi-scopes users yet" (SW26 `tests/README.md`).
fn ioc_scope(client: &ApiClient, scope: &ConfiguredScope) -> Result<Finding, Failure> {
    const CHECK: &str = "ioc_scope";
    let mut query = vec![("limit", "1".to_string())];
    if !scope.account_ids.is_empty() {
        query.push(("accountIds", scope.account_ids.join(",")));
    }
    if !scope.site_ids.is_empty() {
        query.push(("siteIds", scope.site_ids.join(",")));
    }
    match client.get("/threat-intelligence/iocs", &query) {
        Ok(_) => Ok(Finding::new(
            3,
            CHECK,
            Verdict::Confirmed,
            "The Threat Intelligence IOC list answers for the configured scope",
        )),
        Err(failure) if failure.upstream_code == Some(4_030_010) && failure.message.contains("multi-scope") => {
            Ok(Finding::new(
                3,
                CHECK,
                Verdict::Contradicted,
                "The console refuses Threat Intelligence to this token's user, which spans several accounts (403, code 4030010)",
            )
            .recommend(
                true,
                "For IOC export, use the API token of a service user defined at one account or one site.",
            )
            .evidence(json!({ "http_status": failure.http_status, "code": failure.upstream_code })))
        }
        Err(failure) => {
            let finding = failed(3, CHECK, "GET /threat-intelligence/iocs", failure)?;
            Ok(if finding.verdict == Verdict::Contradicted {
                finding.recommend(
                    true,
                    "For IOC export, give the token's role the Threat Intelligence view and create permissions.",
                )
            } else {
                finding
            })
        }
    }
}

/// The ids of a listing's items (`data[]`, or `data.sites[]` for `/sites`, reference §8.2).
fn listed_ids(answer: &Value, pointer: &str) -> BTreeSet<String> {
    answer
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("id").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Point 4b: every configured account, site and group exists (`GET /accounts?accountIds=`,
/// `/sites?siteIds=`, `/groups?groupIds=`; SW24 list parameters, reference §8.2–8.3).
fn configured_scope(client: &ApiClient, scope: &ConfiguredScope) -> Result<Finding, Failure> {
    const CHECK: &str = "configured_scope";
    if scope.is_empty() {
        return Ok(Finding::new(
            4,
            CHECK,
            Verdict::NotTestable,
            "No accounts, sites or groups are configured (global scope)",
        ));
    }
    let kinds = [
        (
            "accounts",
            "/accounts",
            "accountIds",
            "/data",
            &scope.account_ids,
        ),
        ("sites", "/sites", "siteIds", "/data/sites", &scope.site_ids),
        ("groups", "/groups", "groupIds", "/data", &scope.group_ids),
    ];
    let mut missing = Map::new();
    for (kind, path, key, pointer, ids) in kinds {
        if ids.is_empty() {
            continue;
        }
        let query = [(key, ids.join(",")), ("limit", "1000".to_string())];
        let found = match client.get(path, &query) {
            Ok(answer) => listed_ids(&answer, pointer),
            Err(failure) => return failed(4, CHECK, &format!("GET {path}"), failure),
        };
        let absent: Vec<&String> = ids.iter().filter(|id| !found.contains(*id)).collect();
        if !absent.is_empty() {
            missing.insert(kind.to_string(), json!(absent));
        }
    }
    let evidence = json!({
        "account_ids": scope.account_ids,
        "site_ids": scope.site_ids,
        "group_ids": scope.group_ids,
        "missing": missing,
    });
    let finding = if missing.is_empty() {
        Finding::new(
            4,
            CHECK,
            Verdict::Confirmed,
            "Every configured account, site and group exists and is visible to the token",
        )
    } else {
        let list: Vec<String> = missing
            .iter()
            .map(|(kind, ids)| format!("{kind} {}", ids.to_string().replace('"', "")))
            .collect();
        Finding::new(
            4,
            CHECK,
            Verdict::Contradicted,
            format!(
                "Configured scope ids are unknown to the console or outside the token's scope: {}",
                list.join("; ")
            ),
        )
        .recommend(
            true,
            "Correct the account, site and group IDs of the configuration.",
        )
    };
    Ok(finding.evidence(evidence))
}

/// Point 4c: whether the 429 answers this probe met carried `Retry-After`. No source says
/// whether SentinelOne sends it (reference §9, UNCONFIRMED); the probe never provokes one, so
/// usually there is nothing to report.
fn retry_after(client: &ApiClient) -> Finding {
    const CHECK: &str = "retry_after";
    let (seen, with_header) = client.rate_limited_answers();
    let evidence = json!({ "rate_limited_answers": seen, "with_retry_after": with_header });
    let finding = if seen == 0 {
        Finding::new(
            4,
            CHECK,
            Verdict::NotTestable,
            "No 429 answer was seen (the probe never provokes one)",
        )
    } else if with_header == seen {
        Finding::new(
            4,
            CHECK,
            Verdict::Confirmed,
            format!("{seen} 429 answer(s) carried Retry-After, which the client honours"),
        )
    } else {
        Finding::new(
            4,
            CHECK,
            Verdict::Contradicted,
            format!("{} of {seen} 429 answer(s) carried no Retry-After; the client then waits for the endpoint family's window before retrying", seen - with_header),
        )
        .recommend(
            false,
            "Keep requests_per_second at or below the console's limits.",
        )
    };
    finding.evidence(evidence)
}

/// What a write action needs of the token, and whether this token's user can expect it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct WriteExpectation {
    action: &'static str,
    expected: bool,
    note: String,
}

/// Which write actions the token's user can expect to work, from its scope and role names.
///
/// Sources: blocklist create/delete — "Users with the IT role do not have permissions" (SW24);
/// mitigation needs the Admin, IR Team or SOC role (SW24 mitigate description); the global
/// (tenant) scope "requires a global user" (SW26 `test_ioc_lifecycle.py`); Threat Intelligence
/// refuses multi-account users (SW26 `tests/README.md`). A Viewer role is assumed to write
/// nothing (its name; no source lists its permissions).
fn write_expectations(scope: &str, roles: &[String], multi_account: bool) -> Vec<WriteExpectation> {
    let has = |name: &str| roles.iter().any(|role| role.eq_ignore_ascii_case(name));
    let only_viewer =
        !roles.is_empty() && roles.iter().all(|role| role.eq_ignore_ascii_case("viewer"));
    let global = scope == "tenant";
    let expect = |action: &'static str, expected: bool, note: &str| WriteExpectation {
        action,
        expected,
        note: note.to_string(),
    };
    if only_viewer {
        return [
            "sentinelone-blacklist-whitelist-hashes",
            "sentinelone-delete-hashes",
            "sentinelone-mitigate-threats",
            "sentinelone-ioc-export",
            "sentinelone-connect-network",
            "sentinelone-disconnect-network",
            "sentinelone-update-alerts",
            "sentinelone-update-threats",
        ]
        .into_iter()
        .map(|action| expect(action, false, "the Viewer role cannot write"))
        .collect();
    }
    let it_only = !roles.is_empty() && roles.iter().all(|role| role.eq_ignore_ascii_case("it"));
    let hash_list = if it_only {
        expect(
            "",
            false,
            "users with the IT role cannot create or delete blocklist entries",
        )
    } else if global {
        expect("", true, "global or site scope")
    } else {
        expect(
            "",
            true,
            "set site_ids: the global list needs a global user",
        )
    };
    let mitigate_roles = ["admin", "ir team", "soc"];
    let mitigate = if roles.is_empty() || mitigate_roles.iter().any(|role| has(role)) {
        expect(
            "sentinelone-mitigate-threats",
            true,
            "within the token's scope",
        )
    } else {
        expect(
            "sentinelone-mitigate-threats",
            false,
            "mitigation needs the Admin, IR Team or SOC role",
        )
    };
    let ioc = if multi_account {
        expect(
            "sentinelone-ioc-export",
            false,
            "Threat Intelligence refuses users spanning several accounts (4030010)",
        )
    } else {
        expect("sentinelone-ioc-export", true, "within the token's scope")
    };
    let mut list = vec![
        WriteExpectation {
            action: "sentinelone-blacklist-whitelist-hashes",
            ..hash_list.clone()
        },
        WriteExpectation {
            action: "sentinelone-delete-hashes",
            ..hash_list
        },
        mitigate,
        ioc,
    ];
    for action in [
        "sentinelone-connect-network",
        "sentinelone-disconnect-network",
        "sentinelone-update-alerts",
        "sentinelone-update-threats",
    ] {
        list.push(expect(action, true, "within the token's scope"));
    }
    list
}

/// Point 5: the level the token's user is defined at (`GET /user` `data.scope`), its roles,
/// and the write actions it can expect to work. When `GET /user` is not answered, the scope is
/// inferred from whether `GET /accounts` answers and how many accounts it lists, and the
/// finding says so.
fn token_scope(
    client: &ApiClient,
    user: Result<Value, Finding>,
    configured: &ConfiguredScope,
) -> Result<Finding, Failure> {
    const CHECK: &str = "token_scope";
    let user = match user {
        Ok(user) if user.get("scope").and_then(Value::as_str).is_some() => user,
        Ok(_) | Err(_) => return inferred_scope(client),
    };
    let scope = user
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let scope_roles: Vec<&Value> = user
        .get("scopeRoles")
        .and_then(Value::as_array)
        .map(|roles| roles.iter().collect())
        .unwrap_or_default();
    let mut roles: Vec<String> = scope_roles
        .iter()
        .filter_map(|role| role.get("roleName").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    if roles.is_empty() {
        roles.extend(
            user.get("lowestRole")
                .and_then(Value::as_str)
                .map(str::to_string),
        );
    }
    let scopes: Vec<Value> = scope_roles
        .iter()
        .map(|role| json!({ "id": role.get("id"), "name": role.get("name"), "role": role.get("roleName") }))
        .collect();
    let multi_account = scope == "account" && scope_roles.len() > 1;
    let level = match scope {
        "tenant" => "a global user".to_string(),
        "account" if multi_account => format!("an account user of {} accounts", scope_roles.len()),
        "account" => "an account user".to_string(),
        "site" => format!("a site user of {} site(s)", scope_roles.len().max(1)),
        other => format!("a user of scope '{other}'"),
    };
    let writes = write_expectations(scope, &roles, multi_account);
    let unexpected: Vec<&str> = writes
        .iter()
        .filter(|w| !w.expected)
        .map(|w| w.action)
        .collect();
    let detail = if unexpected.is_empty() {
        format!(
            "The token belongs to {level}; every write action can be expected to work within its scope"
        )
    } else {
        format!(
            "The token belongs to {level}; not expected to work: {}",
            unexpected.join(", ")
        )
    };
    let mut finding = Finding::new(5, CHECK, Verdict::Confirmed, detail).evidence(json!({
        "source": "GET /user",
        "scope": scope,
        "roles": roles,
        "scopes": scopes,
        "write_actions": writes,
    }));
    if scope != "tenant" && configured.is_empty() {
        finding = finding.recommend(
            false,
            "Actions configured without site or account IDs act at the global scope, which needs a global user: set site_ids (or account_ids) for this token.",
        );
    }
    Ok(finding)
}

/// Point 5 without `GET /user`: a token whose `GET /accounts` is refused is taken for a site
/// user; one that lists several accounts for a global or multi-account user.
fn inferred_scope(client: &ApiClient) -> Result<Finding, Failure> {
    const CHECK: &str = "token_scope";
    let (guess, evidence) = match client.get("/accounts", &[("limit", "2".to_string())]) {
        Ok(answer) => {
            let count = listed_ids(&answer, "/data").len();
            let guess = match count {
                0 => "a user whose scope GET /accounts does not show (it lists no account)",
                1 => "an account or site user of one account",
                _ => "a global user or an account user of several accounts",
            };
            (guess, json!({ "accounts_listed": count }))
        }
        Err(failure) if !ends_probe(&failure) => (
            "a site user (GET /accounts was refused)",
            json!({ "accounts_status": failure.http_status }),
        ),
        Err(failure) => return Err(failure),
    };
    Ok(Finding::new(
        5,
        CHECK,
        Verdict::NotTestable,
        format!(
            "GET /user was not answered; inferred from GET /accounts, the token belongs to {guess}"
        ),
    )
    .evidence(json!({ "source": "inferred from GET /accounts", "inference": evidence })))
}

/// The findings of a probe result as text for a person: one line per point, then what to do.
pub(crate) fn render_text(result: &RunResult) -> String {
    let mut text = String::from("SentinelOne console probe (read-only)\n\n");
    for record in &result.records {
        let field = |key: &str| record.get(key).and_then(Value::as_str).unwrap_or_default();
        let verdict = match field("verdict") {
            "confirmed" => Verdict::Confirmed,
            "contradicted" => Verdict::Contradicted,
            _ => Verdict::NotTestable,
        };
        let point = record.get("point").and_then(Value::as_u64).unwrap_or(0);
        let _ = writeln!(
            text,
            "  {point}  {:<17} {:<13} {}",
            field("check"),
            verdict.as_str(),
            field("detail")
        );
        if let Some(recommendation) = record.get("recommendation").and_then(Value::as_str) {
            let marker = if record["action_needed"] == json!(true) {
                "!"
            } else {
                "→"
            };
            let _ = writeln!(text, "     {marker} {recommendation}");
        }
    }
    for error in &result.errors {
        let _ = writeln!(text, "\nThe probe stopped: {}", error.message);
    }
    let needed = result
        .records
        .iter()
        .filter(|record| record["action_needed"] == json!(true))
        .count();
    let _ = write!(
        text,
        "\n{}",
        if !result.errors.is_empty() {
            "Not every point could be probed."
        } else if needed == 0 {
            "Nothing to change before enabling write actions."
        } else {
            "Change the configuration as marked (!) before enabling write actions."
        }
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_scope_reads_lines_commas_and_lists() {
        let config = json!({
            "site_ids": "1\n2, 3\n\n",
            "account_ids": ["4", 5, " "],
        });
        let scope = ConfiguredScope::from_config(config.as_object().unwrap());
        assert_eq!(scope.site_ids, ["1", "2", "3"]);
        assert_eq!(scope.account_ids, ["4", "5"]);
        assert!(scope.group_ids.is_empty());
        assert!(ConfiguredScope::from_config(&Map::new()).is_empty());
    }

    #[test]
    fn entry_values_are_distinct_and_lower_case() {
        let answer = json!({"data": [
            {"value": "AB"}, {"value": "ab"}, {"sha256Value": "cd"}, {"value": "ef"}
        ]});
        assert_eq!(entry_values(&answer), ["ab", "ef"]);
        assert!(entry_values(&json!({"data": null})).is_empty());
    }

    #[test]
    fn first_agent_with_an_ipv6_address_is_chosen() {
        let answer = json!({"data": [
            {"id": "1", "computerName": "a", "networkInterfaces": [{"inet": ["10.0.0.1"], "inet6": []}]},
            {"id": "2", "computerName": "b", "networkInterfaces": [{"inet6": null}, {"inet6": ["fe80::1"]}]}
        ]});
        assert_eq!(
            agent_with_inet6(&answer),
            Some(("2".into(), "b".into(), "fe80::1".into()))
        );
        assert_eq!(agent_with_inet6(&json!({"data": []})), None);
    }

    #[test]
    fn write_expectations_follow_scope_and_roles() {
        let expected = |scope: &str, roles: &[&str], multi: bool| -> Vec<(&'static str, bool)> {
            let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
            write_expectations(scope, &roles, multi)
                .into_iter()
                .map(|w| (w.action, w.expected))
                .collect()
        };
        assert!(
            expected("tenant", &["Admin"], false)
                .iter()
                .all(|(_, ok)| *ok)
        );
        assert!(
            expected("site", &["Viewer"], false)
                .iter()
                .all(|(_, ok)| !*ok)
        );
        let multi = expected("account", &["SOC", "SOC"], true);
        assert!(multi.contains(&("sentinelone-ioc-export", false)));
        assert!(multi.contains(&("sentinelone-mitigate-threats", true)));
        let it = expected("site", &["IT"], false);
        assert!(it.contains(&("sentinelone-blacklist-whitelist-hashes", false)));
        assert!(it.contains(&("sentinelone-mitigate-threats", false)));
    }

    #[test]
    fn gate_makes_an_action_needed_finding_exit_1() {
        let mut result = RunResult::new(None);
        result.records.push(json!({"action_needed": false}));
        result.finish();
        assert_eq!(gate(&mut result, ExitStatus::Success), ExitStatus::Success);
        result.records.push(json!({"action_needed": true}));
        assert_eq!(
            gate(&mut result, ExitStatus::Success),
            ExitStatus::ObjectsFailed
        );
        assert_eq!(result.status, RunStatus::Partial);
        assert_eq!(
            gate(&mut result, ExitStatus::AuthRejected),
            ExitStatus::AuthRejected
        );
    }
}
