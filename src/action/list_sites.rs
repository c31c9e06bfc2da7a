//! Action 10 · SentinelOne Get Sites (`sentinelone-list-sites`).
//!
//! Lists the sites the token can see as `records`: id, name, account id and name, state, site
//! type, SKU, licences and expiration. Calls `GET /sites` (cursor-paged), whose response nests
//! the sites under `data.sites` (beside `data.allSites` totals), with `accountIds` and `state`
//! when configured. Input objects are not used.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::lookup::listing::{self, text};
use super::{Action, RunContext};
use crate::error::Failure;

pub struct ListSites;

/// Parameters of action 10.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Only the sites of these accounts.
    pub account_ids: Option<Vec<String>>,
    /// Only sites in this state.
    pub state: Option<SiteState>,
}

/// The site states SentinelOne knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SiteState {
    Active,
    Expired,
    Deleted,
}

impl SiteState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Deleted => "deleted",
        }
    }
}

/// One site as a record.
fn record(site: &Value) -> Value {
    let flag = |key: &str| site.get(key).and_then(Value::as_bool);
    let count = |key: &str| site.get(key).and_then(Value::as_u64);
    json!({
        "id": text(site, "id"),
        "name": text(site, "name"),
        "account_id": text(site, "accountId"),
        "account_name": text(site, "accountName"),
        "state": text(site, "state"),
        "site_type": text(site, "siteType"),
        "sku": text(site, "sku"),
        "is_default": flag("isDefault"),
        "active_licenses": count("activeLicenses"),
        // An unlimited site reports `totalLicenses: 0`; a row saying 0 licences would mislead.
        "total_licenses": if flag("unlimitedLicenses") == Some(true) {
            None
        } else {
            count("totalLicenses")
        },
        "unlimited_licenses": flag("unlimitedLicenses"),
        "expiration": text(site, "expiration"),
        "unlimited_expiration": flag("unlimitedExpiration"),
    })
}

impl Action for ListSites {
    type Params = Params;

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let mut filters = Vec::new();
        if let Some(state) = params.state {
            filters.push(("state", state.as_str().to_string()));
        }
        let sites = listing::read_all(
            ctx.client(),
            "/sites",
            &filters,
            Some((
                "accountIds",
                params.account_ids.as_deref().unwrap_or_default(),
            )),
            "/data/sites",
        )?;
        for site in &sites {
            ctx.record(record(site));
        }
        Ok(())
    }
}
