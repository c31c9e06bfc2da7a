//! The Threat Intelligence IOCs already stored for the targets, in the scope an action writes
//! to: the shared look-up of action 4 (`existing_iocs = Refresh expiry`) and action 20 (IOC
//! Remove), with the scope both use and SentinelOne's refusal of multi-account tokens.
//!
//! `GET /threat-intelligence/iocs` filters by `value` with one exact value only; no
//! multi-value filter (`value__in`, `value__contains`) is documented (reference §6.2, from
//! pmoses-s1/claude-skills `references/tags/Threat_Intelligence.md`). So one request counts the
//! scope's IOCs (`countOnly=true`, same scope), and the look-up then takes whichever is fewer
//! requests: reading the whole scope at `limit=1000` (⌈IOCs in scope / 1000⌉ requests) or one
//! `value`+`type` request per target. IOCs are matched on type and case-insensitive value; the
//! `source` filter is applied here, not sent, because a live test found `source` ignored on GET
//! (reference §6.2, SW26 `tests/README.md`).
//!
//! This module does not write (see `ioc_export`, `ioc_remove`).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::lenient;
use crate::action::{RunContext, TargetId};
use crate::api::{ApiClient, PAGE_LIMIT, join_csv};
use crate::error::{ErrorCode, Failure};
use crate::indicator::IndicatorType;

pub const IOCS: &str = "/threat-intelligence/iocs";

/// Whether an IOC action takes objects of `kind`: those with an IOC type.
pub fn accepts(kind: IndicatorType) -> Result<(), String> {
    ioc_type(kind)
        .map(drop)
        .ok_or_else(|| format!("type {} is not accepted by this action", kind.name()))
}

/// SentinelOne's IOC type for a ThreatQ type (reference §6.1: DNS | IPV4 | IPV6 | MD5 | SHA1 |
/// SHA256 | URL, upper case); File Path has none.
pub fn ioc_type(kind: IndicatorType) -> Option<&'static str> {
    Some(match kind {
        IndicatorType::Fqdn => "DNS",
        IndicatorType::IpAddress => "IPV4",
        IndicatorType::Ipv6Address => "IPV6",
        IndicatorType::Url => "URL",
        IndicatorType::Md5 => "MD5",
        IndicatorType::Sha1 => "SHA1",
        IndicatorType::Sha256 => "SHA256",
        IndicatorType::FilePath => return None,
    })
}

/// The configured scope as a request filter (`accountIds`, `siteIds`, `groupIds`, each only
/// when configured), or `None` when no scope is configured.
pub fn configured_filter(
    account_ids: &Option<Vec<String>>,
    site_ids: &Option<Vec<String>>,
    group_ids: &Option<Vec<String>>,
) -> Option<Value> {
    let mut filter = Map::new();
    for (key, ids) in [
        ("accountIds", account_ids),
        ("siteIds", site_ids),
        ("groupIds", group_ids),
    ] {
        if let Some(ids) = ids.as_ref().filter(|ids| !ids.is_empty()) {
            filter.insert(key.into(), json!(ids));
        }
    }
    (!filter.is_empty()).then_some(Value::Object(filter))
}

/// The scope of every IOC request: the configured scope, or else every account the token
/// sees (a POST without `accountIds` is answered 500 by real consoles: reference §6.1,
/// Azure/Azure-Sentinel PR #13728); with how many accounts the token was seen to reach (0: not
/// looked up). `None` when the account look-up failed (the targets have failed with it).
pub fn scope_filter(configured: Option<Value>, ctx: &mut RunContext<'_>) -> Option<(Value, usize)> {
    match configured {
        Some(filter) => Some((filter, 0)),
        None => {
            let accounts = resolve_accounts(ctx)?;
            let seen = accounts.len();
            Some((json!({ "accountIds": accounts }), seen))
        }
    }
}

/// `accountIds` of every account the token sees.
fn resolve_accounts(ctx: &mut RunContext<'_>) -> Option<Vec<String>> {
    let pending = ctx.pending();
    let found = ctx.batches("account lookup", &[()], |_| pending.clone(), |client, _| {
        let mut ids = Vec::new();
        client
            .pages("/accounts", Vec::new(), "/data")
            .each_item(|account| match account.get("id") {
                Some(Value::String(id)) => ids.push(id.clone()),
                Some(Value::Number(id)) => ids.push(id.to_string()),
                _ => {}
            })?;
        if ids.is_empty() {
            return Err(Failure::new(
                ErrorCode::AuthForbidden,
                "The API token can see no SentinelOne account to work in; set account_ids, site_ids or group_ids",
            )
            .with_field("config.account_ids"));
        }
        Ok(ids)
    });
    found.into_iter().next().flatten()
}

/// The failure to report for a refused IOC request: SentinelOne's refusal of multi-account
/// tokens as [`ErrorCode::AuthMultiScopeToken`], anything else unchanged.
///
/// Every `/threat-intelligence/iocs` method answers a service user assigned to several accounts
/// with HTTP 403, code 4030010, "This page doesn't support multi-scopes users yet", even when
/// the filter names `accountIds` (pmoses-s1/claude-skills
/// `sentinelone-mgmt-console-api/tests/README.md`, "Tokens and scopes", live tenant
/// 2026-04-22). 4030010 may also be SentinelOne's code for any 403, so the refusal is
/// recognised by its text, or by the code when the token was seen to reach several accounts.
pub fn multi_scope_refusal(failure: Failure, accounts_seen: usize) -> Failure {
    const FORBIDDEN: i64 = 4_030_010;
    let refused = failure.http_status == Some(403) && failure.upstream_code == Some(FORBIDDEN);
    let says_so = failure.message.to_ascii_lowercase().contains("multi-scope");
    if !(refused && (says_so || accounts_seen > 1)) {
        return failure;
    }
    Failure::new(
        ErrorCode::AuthMultiScopeToken,
        "SentinelOne Threat Intelligence refuses API tokens of users assigned to several accounts (HTTP 403, code 4030010), whatever scope the request names; use the API token of a service user assigned to a single account or site",
    )
    .with_field("config.api_token")
    .with_http_status(403)
    .with_upstream_code(Some(FORBIDDEN))
}

/// A stored IOC of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundIoc {
    /// The IOC's key (`uuid`, not `id`: reference §6.1).
    pub uuid: String,
    pub valid_until: Option<String>,
}

/// A listed IOC's fields, where they are text.
#[derive(Default, Deserialize)]
#[serde(default)]
struct ListedIoc {
    #[serde(deserialize_with = "lenient::text")]
    uuid: Option<String>,
    #[serde(rename = "type", deserialize_with = "lenient::text")]
    kind: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    value: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    source: Option<String>,
    #[serde(rename = "validUntil", deserialize_with = "lenient::text")]
    valid_until: Option<String>,
}

/// A `countOnly` answer: `pagination.totalItems`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct CountAnswer {
    pagination: lenient::Object<Pagination>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Pagination {
    #[serde(rename = "totalItems")]
    total_items: Option<Value>,
}

/// The batched look-up of stored IOCs.
pub struct IocLookup<'s> {
    /// The scope filter of the action's writes, sent as query parameters.
    pub scope: &'s Value,
    /// Only IOCs of this `source` (case-insensitive) count; `None`: any source.
    pub source: Option<&'s str>,
    /// Accounts the token was seen to reach (for [`multi_scope_refusal`]).
    pub accounts_seen: usize,
}

/// How the look-up reads: the whole scope, or one request per target.
enum Batch {
    Scope(Vec<TargetId>),
    Value([TargetId; 1]),
}

impl Batch {
    fn targets(&self) -> &[TargetId] {
        match self {
            Self::Scope(ids) => ids,
            Self::Value(id) => id,
        }
    }
}

impl IocLookup<'_> {
    /// The scope as query parameters (lists comma-separated).
    fn scope_query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        for key in ["accountIds", "siteIds", "groupIds"] {
            if let Some(Value::Array(ids)) = self.scope.get(key) {
                let ids: Vec<String> = ids
                    .iter()
                    .filter_map(|id| id.as_str().map(str::to_string))
                    .collect();
                query.push((key, join_csv(&ids)));
            }
        }
        query
    }

    fn refusal(&self, failure: Failure) -> Failure {
        multi_scope_refusal(failure, self.accounts_seen)
    }

    /// The stored IOCs of each of `ids` (targets of types [`ioc_type`] maps), in order: `None`
    /// for a target whose look-up failed (it has been failed), else its IOCs in the scope.
    pub fn find(&self, ctx: &mut RunContext<'_>, ids: &[TargetId]) -> Vec<Option<Vec<FoundIoc>>> {
        if ids.is_empty() {
            return Vec::new();
        }
        let keys: HashMap<TargetId, (&'static str, String)> = ids
            .iter()
            .map(|id| {
                let target = ctx.target(*id);
                let kind = ioc_type(target.kind).unwrap_or_default();
                (*id, (kind, target.value.to_lowercase()))
            })
            .collect();
        let Some(stored) = self.count(ctx, ids) else {
            return ids.iter().map(|_| None).collect();
        };
        if stored == 0 {
            return ids
                .iter()
                .map(|id| ctx.is_pending(*id).then(Vec::new))
                .collect();
        }
        let listing_requests = stored.div_ceil(u64::from(PAGE_LIMIT));
        let batches: Vec<Batch> = if listing_requests <= ids.len() as u64 {
            vec![Batch::Scope(ids.to_vec())]
        } else {
            ids.iter().map(|id| Batch::Value([*id])).collect()
        };
        super::per_target(
            ctx,
            "ioc lookup",
            ids,
            &batches,
            Batch::targets,
            |client, batch| {
                let mut query = self.scope_query();
                if let Batch::Value([id]) = batch {
                    let (kind, value) = &keys[id];
                    query.push(("value", value.clone()));
                    query.push(("type", (*kind).to_string()));
                }
                let mut found: HashMap<(String, String), Vec<FoundIoc>> = HashMap::new();
                self.read(client, query, |key, ioc| {
                    found.entry(key).or_default().push(ioc);
                })
                .map_err(|failure| self.refusal(failure))?;
                Ok(batch
                    .targets()
                    .iter()
                    .map(|id| {
                        let (kind, value) = &keys[id];
                        found
                            .get(&((*kind).to_string(), value.clone()))
                            .cloned()
                            .unwrap_or_default()
                    })
                    .collect())
            },
        )
    }

    /// How many IOCs the scope holds (`countOnly=true`: one request); `None` when the request
    /// failed (the targets have failed with it).
    fn count(&self, ctx: &mut RunContext<'_>, ids: &[TargetId]) -> Option<u64> {
        let mut query = self.scope_query();
        query.push(("countOnly", "true".to_string()));
        let counted = ctx.batches(
            "ioc count",
            &[()],
            |_| ids.to_vec(),
            |client, _| {
                let answer: lenient::Object<CountAnswer> = client
                    .get_as(IOCS, &query)
                    .map_err(|failure| self.refusal(failure))?;
                // An answer without a count reads as "many": the look-up then goes per value,
                // which finds the same IOCs.
                Ok(match answer.0.pagination.0.total_items {
                    Some(Value::Number(total)) => total.as_u64().unwrap_or(u64::MAX),
                    _ => u64::MAX,
                })
            },
        );
        counted.into_iter().next().flatten()
    }

    /// Reads every page of the listing with `query`, handing each IOC of the wanted source to
    /// `visit` with its key (upper-case type, lower-cased value).
    fn read(
        &self,
        client: &ApiClient,
        query: Vec<(&'static str, String)>,
        mut visit: impl FnMut((String, String), FoundIoc),
    ) -> Result<(), Failure> {
        client
            .pages_as::<lenient::Object<ListedIoc>>(IOCS, query, "/data")
            .each_item(|lenient::Lenient(ioc)| {
                let (Some(uuid), Some(kind), Some(value)) = (ioc.uuid, ioc.kind, ioc.value) else {
                    return;
                };
                let wanted = self.source.is_none_or(|source| {
                    ioc.source
                        .as_deref()
                        .is_some_and(|stored| stored.eq_ignore_ascii_case(source))
                });
                if wanted {
                    let found = FoundIoc {
                        uuid,
                        valid_until: ioc.valid_until,
                    };
                    visit((kind.to_ascii_uppercase(), value.to_lowercase()), found);
                }
            })
    }
}
