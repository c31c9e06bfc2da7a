//! The organisation tree endpoints: `GET /accounts`, `GET /sites` and `GET /groups`.
//!
//! Owns their filters and shapes, including the nesting of `/sites` (`data.allSites` and
//! `data.sites`, with `pagination` beside `data`). Licence counts are derived: a site's
//! `activeLicenses` is its agent count. It does not route requests.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::lists::USER_NAME;
use super::model::{Account, Group, Site, ts};
use super::paging::{PAGING_KEYS, PageRequest, SortKey, SortValue, paginate};
use super::params::{ApiError, Params};
use super::state::State;

const USER_ID: &str = "1900000000000000000";

fn set(params: &Params, key: &str) -> Option<HashSet<String>> {
    params.list(key).map(|l| l.into_iter().collect())
}

fn lower(params: &Params, key: &str) -> Result<Option<String>, ApiError> {
    Ok(params.text(key)?.map(|v| v.to_lowercase()))
}

fn with_extra(mut out: Value, extra: &serde_json::Map<String, Value>) -> Value {
    if let Some(object) = out.as_object_mut() {
        for (key, value) in extra {
            object.insert(key.clone(), value.clone());
        }
    }
    out
}

fn site_agents(state: &State, site_id: &str) -> usize {
    state
        .agents()
        .iter()
        .filter(|a| a.site_id == site_id)
        .count()
}

fn render_account(state: &State, account: &Account) -> Value {
    let sites: Vec<&Site> = state
        .sites
        .iter()
        .filter(|s| s.account_id == account.id)
        .collect();
    let agents: usize = sites.iter().map(|s| site_agents(state, &s.id)).sum();
    let unlimited = sites.iter().any(|s| s.total_licenses.is_none()) || sites.is_empty();
    let total: u64 = sites.iter().filter_map(|s| s.total_licenses).sum();
    with_extra(
        json!({
            "accountType": "Paid",
            "activeAgents": agents,
            "billingMode": "subscription",
            "createdAt": ts(account.created_at),
            "creator": USER_NAME,
            "creatorId": USER_ID,
            "expiration": null,
            "externalId": null,
            "id": account.id,
            "isDefault": false,
            "name": account.name,
            "numberOfSites": sites.len(),
            "state": account.state,
            "totalLicenses": if unlimited { 0 } else { total },
            "unlimitedExpiration": true,
            "unlimitedLicenses": unlimited,
            "updatedAt": ts(account.created_at),
            "usageType": "customer",
        }),
        &account.extra,
    )
}

/// `GET /accounts`.
pub(crate) fn accounts(state: &State, params: &Params) -> Result<Value, ApiError> {
    params.reject_unknown(
        &[
            PAGING_KEYS,
            &[
                "ids",
                "accountIds",
                "name",
                "name__contains",
                "states",
                "query",
                "isDefault",
            ],
        ]
        .concat(),
        &["createdAt", "updatedAt"],
    )?;
    let page = PageRequest::from_params(params, "/accounts", &["id", "name", "createdAt"])?;
    let mut ids = params.list("ids").unwrap_or_default();
    ids.extend(params.list("accountIds").unwrap_or_default());
    let ids: Option<HashSet<String>> = (!ids.is_empty()).then(|| ids.into_iter().collect());
    let name = params.text("name")?;
    let contains = lower(params, "name__contains")?;
    let query = lower(params, "query")?;
    let states = params.list("states");
    let created = params.time_range("createdAt")?;
    let items: Vec<&Account> = state
        .accounts
        .iter()
        .filter(|a| {
            (state.token_accounts.is_empty() || state.token_accounts.contains(&a.id))
                && ids.as_ref().is_none_or(|s| s.contains(&a.id))
                && name.as_ref().is_none_or(|n| *n == a.name)
                && contains
                    .as_ref()
                    .is_none_or(|c| a.name.to_lowercase().contains(c.as_str()))
                && query.as_ref().is_none_or(|q| {
                    a.name.to_lowercase().contains(q.as_str()) || a.id.contains(q.as_str())
                })
                && states.as_ref().is_none_or(|s| s.contains(&a.state))
                && created.contains(a.created_at)
        })
        .collect();
    let page = paginate(items, &page, |a, sort_by| SortKey {
        primary: match sort_by {
            "name" => SortValue::Text(a.name.to_lowercase()),
            "createdAt" => SortValue::Int(a.created_at.timestamp_micros()),
            _ => SortValue::Null,
        },
        id: a.id.clone(),
    });
    Ok(page.to_json(|a| render_account(state, a)))
}

fn render_site(state: &State, site: &Site) -> Value {
    let account = state.account(&site.account_id);
    with_extra(
        json!({
            "accountId": site.account_id,
            "accountName": account.map(|a| a.name.clone()),
            "activeLicenses": site_agents(state, &site.id),
            "createdAt": ts(site.created_at),
            "creator": USER_NAME,
            "creatorId": USER_ID,
            "description": null,
            "expiration": null,
            "externalId": null,
            "healthStatus": true,
            "id": site.id,
            "isDefault": site.is_default,
            "name": site.name,
            "siteType": site.site_type,
            "sku": site.sku,
            "state": site.state,
            "suite": site.sku,
            "totalLicenses": site.total_licenses.unwrap_or(0),
            "unlimitedExpiration": true,
            "unlimitedLicenses": site.total_licenses.is_none(),
            "updatedAt": ts(site.created_at),
        }),
        &site.extra,
    )
}

/// `GET /sites`: nested as `{"data":{"allSites":{…},"sites":[…]},"pagination":{…}}`.
pub(crate) fn sites(state: &State, params: &Params) -> Result<Value, ApiError> {
    params.reject_unknown(
        &[
            PAGING_KEYS,
            &[
                "siteIds",
                "accountIds",
                "accountId",
                "name",
                "name__contains",
                "states",
                "state",
                "siteType",
                "sku",
                "isDefault",
                "query",
                "description__contains",
                // Accepted and ignored.
                "healthStatus",
                "features",
                "suite",
                "adminOnly",
            ],
        ]
        .concat(),
        &["createdAt", "updatedAt", "expiration"],
    )?;
    let page = PageRequest::from_params(params, "/sites", &["id", "name", "createdAt"])?;
    let ids = set(params, "siteIds");
    let mut account_ids = params.list("accountIds").unwrap_or_default();
    account_ids.extend(params.text("accountId")?);
    let account_ids: Option<HashSet<String>> =
        (!account_ids.is_empty()).then(|| account_ids.into_iter().collect());
    let name = params.text("name")?;
    let contains = lower(params, "name__contains")?;
    let query = lower(params, "query")?;
    let mut states = params.list("states").unwrap_or_default();
    states.extend(params.text("state")?);
    let site_type = params.text("siteType")?;
    let sku = params.text("sku")?;
    let is_default = params.bool("isDefault")?;
    let created = params.time_range("createdAt")?;
    let items: Vec<&Site> = state
        .sites
        .iter()
        .filter(|s| {
            ids.as_ref().is_none_or(|i| i.contains(&s.id))
                && account_ids
                    .as_ref()
                    .is_none_or(|i| i.contains(&s.account_id))
                && name.as_ref().is_none_or(|n| *n == s.name)
                && contains
                    .as_ref()
                    .is_none_or(|c| s.name.to_lowercase().contains(c.as_str()))
                && query.as_ref().is_none_or(|q| {
                    s.name.to_lowercase().contains(q.as_str()) || s.id.contains(q.as_str())
                })
                && (states.is_empty() || states.contains(&s.state))
                && site_type
                    .as_ref()
                    .is_none_or(|t| t.eq_ignore_ascii_case(&s.site_type))
                && sku.as_ref().is_none_or(|k| k.eq_ignore_ascii_case(&s.sku))
                && is_default.is_none_or(|d| d == s.is_default)
                && created.contains(s.created_at)
        })
        .collect();
    let active: usize = items.iter().map(|s| site_agents(state, &s.id)).sum();
    let total: u64 = items.iter().filter_map(|s| s.total_licenses).sum();
    let page = paginate(items, &page, |s, sort_by| SortKey {
        primary: match sort_by {
            "name" => SortValue::Text(s.name.to_lowercase()),
            "createdAt" => SortValue::Int(s.created_at.timestamp_micros()),
            _ => SortValue::Null,
        },
        id: s.id.clone(),
    });
    Ok(json!({
        "data": {
            "allSites": {"activeLicenses": active, "totalLicenses": total},
            "sites": page.items.iter().map(|s| render_site(state, s)).collect::<Vec<_>>(),
        },
        "pagination": page.pagination(),
    }))
}

fn render_group(state: &State, group: &Group) -> Value {
    with_extra(
        json!({
            "createdAt": ts(group.created_at),
            "creator": USER_NAME,
            "creatorId": USER_ID,
            "description": group.description,
            "filterId": null,
            "filterName": null,
            "id": group.id,
            "inherits": true,
            "isDefault": group.is_default,
            "name": group.name,
            "rank": group.rank,
            "siteId": group.site_id,
            "totalAgents": state.agents().iter().filter(|a| a.group_id.as_deref() == Some(group.id.as_str())).count(),
            "type": group.kind,
            "updatedAt": ts(group.created_at),
        }),
        &group.extra,
    )
}

/// `GET /groups`.
pub(crate) fn groups(state: &State, params: &Params) -> Result<Value, ApiError> {
    params.reject_unknown(
        &[
            PAGING_KEYS,
            &[
                "siteIds",
                "groupIds",
                "accountIds",
                "types",
                "type",
                "name",
                "isDefault",
                "query",
                "id",
                "rank",
            ],
        ]
        .concat(),
        &["updatedAt", "createdAt"],
    )?;
    let page = PageRequest::from_params(params, "/groups", &["id", "name", "createdAt", "rank"])?;
    let site_ids = set(params, "siteIds");
    let mut ids = params.list("groupIds").unwrap_or_default();
    ids.extend(params.text("id")?);
    let ids: Option<HashSet<String>> = (!ids.is_empty()).then(|| ids.into_iter().collect());
    let account_ids = set(params, "accountIds");
    let mut types = params.list("types").unwrap_or_default();
    types.extend(params.text("type")?);
    let name = params.text("name")?;
    let is_default = params.bool("isDefault")?;
    let query = lower(params, "query")?;
    let rank = params.uint("rank")?;
    let updated = params.time_range("updatedAt")?;
    let items: Vec<&Group> = state
        .groups
        .iter()
        .filter(|g| {
            let account = state.site_account(&g.site_id).unwrap_or_default();
            site_ids.as_ref().is_none_or(|s| s.contains(&g.site_id))
                && ids.as_ref().is_none_or(|s| s.contains(&g.id))
                && account_ids.as_ref().is_none_or(|s| s.contains(account))
                && (types.is_empty() || types.contains(&g.kind))
                && name.as_ref().is_none_or(|n| *n == g.name)
                && is_default.is_none_or(|d| d == g.is_default)
                && query.as_ref().is_none_or(|q| {
                    g.name.to_lowercase().contains(q.as_str()) || g.id.contains(q.as_str())
                })
                && rank.is_none_or(|r| g.rank == i64::try_from(r).ok())
                && updated.contains(g.created_at)
        })
        .collect();
    let page = paginate(items, &page, |g, sort_by| SortKey {
        primary: match sort_by {
            "name" => SortValue::Text(g.name.to_lowercase()),
            "createdAt" => SortValue::Int(g.created_at.timestamp_micros()),
            "rank" => g.rank.map_or(SortValue::Null, SortValue::Int),
            _ => SortValue::Null,
        },
        id: g.id.clone(),
    });
    Ok(page.to_json(|g| render_group(state, g)))
}
