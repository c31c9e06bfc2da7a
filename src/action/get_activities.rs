//! Action 11 · SentinelOne Get Activities (`sentinelone-get-activities`), the ThreatQ form of
//! Sumo Logic's "Get Activities".
//!
//! Lists the activities created since the previous run's checkpoint (or the last `hours_back`
//! hours on a first run) with `GET /activities?createdAt__gte=…&sortBy=createdAt&sortOrder=asc`,
//! cursor-paged, narrowed by the optional `activity_types` (numeric codes, `activityTypes`) and
//! `site_ids`, and stops after `max_items_per_run` new activities (see [`feed`](super::feed) for
//! the checkpoint). Each activity becomes one `records` row, oldest first; the new checkpoint is
//! returned in `state`. The action accepts no input objects (the runner reports any it is given
//! as skipped).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ingest::feed::{self, Feed, text_at};
use super::{Action, RunContext};
use crate::error::Failure;

pub struct GetActivities;

/// Parameters of action 11.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// On a first run (no state), list activities created this many hours before the run.
    pub hours_back: u32,
    /// Only these activity type codes (see `GET /activities/types`).
    pub activity_types: Option<Vec<String>>,
    /// Only activities of these sites.
    pub site_ids: Option<Vec<String>>,
    /// New activities listed in one run at most; the next run continues after the last one.
    pub max_items_per_run: u32,
}

/// The row an analyst reads for one activity.
fn row(activity: &Value) -> Value {
    let text = |pointer: &str| text_at(activity, pointer);
    json!({
        "id": text("/id"),
        "activity_type": activity.get("activityType").cloned().unwrap_or(Value::Null),
        "primary_description": text("/primaryDescription"),
        "secondary_description": text("/secondaryDescription"),
        "created_at": text("/createdAt"),
        "account_name": text("/accountName"),
        "site_id": text("/siteId"),
        "site_name": text("/siteName"),
        "agent_id": text("/agentId"),
        "computer_name": text("/data/computerName"),
        "threat_id": text("/threatId"),
        "user_id": text("/userId"),
    })
}

/// The `activityTypes` filter value, when activity types are configured.
fn activity_types(params: &Params) -> Result<Option<String>, Failure> {
    let Some(types) = params
        .activity_types
        .as_ref()
        .filter(|list| !list.is_empty())
    else {
        return Ok(None);
    };
    // SentinelOne answers a non-numeric code with a 400 for the whole listing; say which
    // value is wrong before sending anything.
    if let Some(bad) = types.iter().find(|code| code.parse::<u32>().is_err()) {
        return Err(Failure::config_invalid(
            "config.activity_types",
            format!("Activity Types (activity_types) must be numeric activity codes (got '{bad}')"),
        ));
    }
    Ok(Some(types.join(",")))
}

impl Action for GetActivities {
    type Params = Params;

    fn preflight(
        params: &Params,
        state: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<(), Failure> {
        activity_types(params)?;
        feed::check_state(state, now)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let mut filters = Vec::new();
        if let Some(types) = activity_types(params)? {
            filters.push(("activityTypes", types));
        }
        if let Some(sites) = params.site_ids.as_ref().filter(|ids| !ids.is_empty()) {
            filters.push(("siteIds", sites.join(",")));
        }
        let feed = Feed {
            path: "/activities",
            filters,
            sort_by: "createdAt",
            id_at: "/id",
            created_at: "/createdAt",
            hours_back: params.hours_back,
            max_items: params.max_items_per_run as usize,
            noun: "activities",
        };
        let mut rows = Vec::new();
        let fed = feed::read(ctx, &feed, |activity| rows.push(row(activity)))?;
        for row in rows {
            ctx.record(row);
        }
        fed.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_has_the_fields_analysts_read() {
        let row = row(&json!({
            "id": "5", "activityType": 18, "primaryDescription": "Threat detected",
            "createdAt": "2026-04-20T08:14:04.000000Z", "siteName": "HQ", "siteId": "1",
            "agentId": "7", "threatId": "9", "data": {"computerName": "WS-1"}
        }));
        assert_eq!(row["id"], "5");
        assert_eq!(row["activity_type"], 18);
        assert_eq!(row["computer_name"], "WS-1");
        assert_eq!(row["threat_id"], "9");
        assert_eq!(row["user_id"], Value::Null);
    }
}
