//! Action 15 · SentinelOne Update Alerts (`sentinelone-update-alerts`), the ThreatQ form of Sumo
//! Logic's "Update Alert SentinelOne".
//!
//! Sets the analyst verdict and/or the incident status of the STAR alerts named by each object's
//! `SentinelOne Alert ID` attributes (as action 14 adds them; any object type, one or more ids
//! per object). An object without such an attribute is skipped; one whose id is not numeric
//! fails alone. Calls:
//!
//! 1. `GET /cloud-detection/alerts?ids=…` (many ids per request, cursor-paged): which alerts
//!    exist and what they carry now. The write responses only say how many alerts matched, so
//!    this is what tells each object how many of *its* alerts were updated, which ids do not
//!    exist, and which already carry the chosen values (a re-run sends nothing). It also runs
//!    in a dry run, being read-only.
//! 2. `POST /cloud-detection/alerts/analyst-verdict` and/or `POST /cloud-detection/alerts/incident`
//!    with `filter.ids` = the existing alerts that need the change, 1,000 per request. A filter
//!    is never sent without ids: an empty one would update every alert of the account.
//!
//! `SentinelOne Alerts Updated` = the number of the object's alerts that now carry the chosen
//! values (changed by this run or already set). Objects carrying the same indicator are one
//! target and share the outcome, counted over the ids all of them carry.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ingest::feed::text_at;
use super::lookup;
use super::{Action, Reply, RunContext, TargetId, Tense, Write, distinct_targets};
use crate::error::{ErrorCode, Failure, WarningCode};
use crate::result::{AddedAttribute, Warning};

/// Alert ids per write request.
const IDS_PER_REQUEST: usize = 1000;

/// The attribute that names the alerts of an object (added by action 14).
const ALERT_ID: &str = "SentinelOne Alert ID";

const UPDATED: &str = "SentinelOne Alerts Updated";

pub struct UpdateAlerts;

/// Parameters of action 15.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The analyst verdict to set, or `No Change`.
    pub analyst_verdict: Verdict,
    /// The incident status to set, or `No Change`.
    pub incident_status: Status,
}

/// Analyst verdict choices of the configuration page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Verdict {
    #[serde(rename = "No Change")]
    NoChange,
    #[serde(rename = "True Positive")]
    TruePositive,
    #[serde(rename = "False Positive")]
    FalsePositive,
    Suspicious,
    Undefined,
}

/// Incident status choices of the configuration page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Status {
    #[serde(rename = "No Change")]
    NoChange,
    Unresolved,
    #[serde(rename = "In Progress")]
    InProgress,
    Resolved,
}

/// One field to set on the alerts.
#[derive(Debug, Clone, Copy)]
struct Change {
    path: &'static str,
    /// Key in `data` of the request body.
    key: &'static str,
    /// The value sent (lower snake case, as the API documents it).
    value: &'static str,
    /// Pointer to the current value in an alert (`alertInfo.*`, title case there).
    current_at: &'static str,
    label: &'static str,
}

impl Params {
    /// The changes asked for, verdict first.
    fn changes(&self) -> Vec<Change> {
        let verdict = match self.analyst_verdict {
            Verdict::NoChange => None,
            Verdict::TruePositive => Some(("true_positive", "True Positive")),
            Verdict::FalsePositive => Some(("false_positive", "False Positive")),
            Verdict::Suspicious => Some(("suspicious", "Suspicious")),
            Verdict::Undefined => Some(("undefined", "Undefined")),
        };
        let status = match self.incident_status {
            Status::NoChange => None,
            Status::Unresolved => Some(("unresolved", "Unresolved")),
            Status::InProgress => Some(("in_progress", "In Progress")),
            Status::Resolved => Some(("resolved", "Resolved")),
        };
        let mut changes = Vec::new();
        if let Some((value, label)) = verdict {
            changes.push(Change {
                path: "/cloud-detection/alerts/analyst-verdict",
                key: "analystVerdict",
                value,
                current_at: "/alertInfo/analystVerdict",
                label,
            });
        }
        if let Some((value, label)) = status {
            changes.push(Change {
                path: "/cloud-detection/alerts/incident",
                key: "incidentStatus",
                value,
                current_at: "/alertInfo/incidentStatus",
                label,
            });
        }
        changes
    }
}

/// `In progress`, `IN_PROGRESS` and `in_progress` all read as `in_progress`.
fn canonical(value: &str) -> String {
    value.trim().to_ascii_lowercase().replace([' ', '-'], "_")
}

/// The alert ids the objects of a target name, or why they cannot be used. Copies of one
/// indicator may carry different ids; all of them are updated and the copies share the outcome.
fn alert_ids(ctx: &RunContext<'_>, id: TargetId) -> Result<BTreeSet<String>, Failure> {
    let mut ids = BTreeSet::new();
    for attribute in ctx.views(id).flat_map(|view| view.attributes) {
        if !attribute.name.trim().eq_ignore_ascii_case(ALERT_ID) {
            continue;
        }
        let value = attribute.value_text();
        let value = value.trim();
        // Alert ids are int64 numbers; anything else would make SentinelOne refuse the whole
        // batch it is sent in.
        if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
            let shown: String = value.chars().take(60).collect();
            return Err(Failure::new(
                ErrorCode::InputInvalidValue,
                format!("'{shown}' in attribute {ALERT_ID} is not a SentinelOne alert id"),
            ));
        }
        ids.insert(value.to_string());
    }
    Ok(ids)
}

/// The changes to make; `config.invalid` when both choices are "No Change".
fn chosen_changes(params: &Params) -> Result<Vec<Change>, Failure> {
    let changes = params.changes();
    if changes.is_empty() {
        return Err(Failure::config_invalid(
            "config.analyst_verdict",
            "Choose an analyst verdict or an incident status to set: both are 'No Change'",
        ));
    }
    Ok(changes)
}

impl Action for UpdateAlerts {
    type Params = Params;

    fn preflight(
        params: &Params,
        _state: Option<&Value>,
        _now: DateTime<Utc>,
    ) -> Result<(), Failure> {
        chosen_changes(params).map(drop)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let changes = chosen_changes(params)?;
        let (wanted, owners) = alerts_of_targets(ctx);
        if owners.is_empty() {
            return Ok(());
        }
        let found = find_alerts(ctx, &changes, &owners);
        for (index, change) in changes.iter().enumerate() {
            let ids: Vec<String> = found
                .iter()
                .filter(|(_, needed)| needed[index])
                .map(|(id, _)| id.clone())
                .collect();
            write(ctx, change, &ids, &owners);
        }
        let chosen: Vec<&str> = changes.iter().map(|change| change.label).collect();
        let chosen = chosen.join(" / ");
        for (id, ids) in wanted {
            let counts = Counts::of(&ids, &found);
            let detail = counts.detail(&chosen, ctx.tense());
            let present = counts.changed + counts.already;
            ctx.succeed(
                id,
                detail,
                vec![AddedAttribute::new(UPDATED, present.to_string())],
            );
        }
        Ok(())
    }
}

/// Alert ids by target, and the targets of each alert id; targets without a usable alert id
/// have their outcome.
type AlertsOfTargets = (
    BTreeMap<TargetId, BTreeSet<String>>,
    BTreeMap<String, BTreeSet<TargetId>>,
);

fn alerts_of_targets(ctx: &mut RunContext<'_>) -> AlertsOfTargets {
    let mut wanted: BTreeMap<TargetId, BTreeSet<String>> = BTreeMap::new();
    let mut owners: BTreeMap<String, BTreeSet<TargetId>> = BTreeMap::new();
    for id in ctx.pending() {
        match alert_ids(ctx, id) {
            Err(failure) => ctx.fail(id, failure),
            Ok(ids) if ids.is_empty() => ctx.skip(
                id,
                format!("The object has no {ALERT_ID} attribute; there is no alert to update"),
            ),
            Ok(ids) => {
                for alert in &ids {
                    owners.entry(alert.clone()).or_default().insert(id);
                }
                wanted.insert(id, ids);
            }
        }
    }
    (wanted, owners)
}

/// The alerts that exist, each with whether each change must still be sent to it.
fn find_alerts(
    ctx: &mut RunContext<'_>,
    changes: &[Change],
    owners: &BTreeMap<String, BTreeSet<TargetId>>,
) -> BTreeMap<String, Vec<bool>> {
    let read = |alert: Value| {
        let id = text_at(&alert, "/alertInfo/alertId")?;
        let needed = changes
            .iter()
            .map(|change| {
                let now = text_at(&alert, change.current_at).map(|value| canonical(&value));
                now.as_deref().unwrap_or_default() != change.value
            })
            .collect();
        Some((id, needed))
    };
    let alerts = ("/cloud-detection/alerts", "ids");
    lookup::by_ids(ctx, "alert lookup", alerts, owners, read)
        .into_iter()
        .collect()
}

/// Sends (or plans) one change to the alerts `ids`, 1,000 a request; a short count of updated
/// alerts is a warning, as the answer does not say which alert it left out.
fn write(
    ctx: &mut RunContext<'_>,
    change: &Change,
    ids: &[String],
    owners: &BTreeMap<String, BTreeSet<TargetId>>,
) {
    let batches: Vec<&[String]> = ids.chunks(IDS_PER_REQUEST).collect();
    let affected = ctx.write(
        change.key,
        &batches,
        |batch| distinct_targets(batch.iter().flat_map(|alert| owners[alert].iter().copied())),
        |batch| {
            let body = json!({ "filter": { "ids": batch }, "data": { change.key: change.value } });
            Write::post(change.path, body)
        },
        |batch, reply: Reply<Value>| {
            let affected = reply
                .answer()?
                .and_then(|answer| answer.pointer("/data/affected")?.as_u64());
            Ok(affected.map(|affected| batch.len().saturating_sub(affected as usize)))
        },
    );
    let short: usize = affected.into_iter().flatten().flatten().sum();
    if short > 0 {
        ctx.warn(Warning {
            code: WarningCode::UpstreamPartiallyApplied,
            message: format!(
                "SentinelOne reported {short} alert(s) fewer than sent as updated by POST {}",
                change.path
            ),
            field: None,
        });
    }
}

/// How an object's alerts stand after the writes.
struct Counts {
    changed: usize,
    already: usize,
    missing: usize,
}

impl Counts {
    /// How the alerts `ids` of one object stand, by what the look-up `found`.
    fn of(ids: &BTreeSet<String>, found: &BTreeMap<String, Vec<bool>>) -> Self {
        let present: Vec<&Vec<bool>> = ids.iter().filter_map(|alert| found.get(alert)).collect();
        let changed = present
            .iter()
            .filter(|needed| needed.iter().any(|needed| *needed))
            .count();
        Self {
            changed,
            already: present.len() - changed,
            missing: ids.len() - present.len(),
        }
    }

    /// The detail, in the run's tense.
    fn detail(&self, chosen: &str, tense: Tense) -> String {
        let mut parts = Vec::new();
        if self.changed > 0 {
            let verb = tense.pick("set to", "would be set to");
            parts.push(format!("{} alert(s) {verb} {chosen}", self.changed));
        }
        if self.already > 0 {
            parts.push(format!("{} alert(s) already {chosen}", self.already));
        }
        if self.missing > 0 {
            parts.push(format!(
                "{} alert id(s) not found in SentinelOne",
                self.missing
            ));
        }
        let mut detail = parts.join("; ");
        if self.changed == 0 && self.already == 0 {
            detail = format!("No alert updated: {detail}");
        }
        tense.pick(detail.clone(), format!("Dry run: {detail}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_the_same_in_every_spelling() {
        for spelling in ["In progress", "IN_PROGRESS", "in_progress", " In Progress "] {
            assert_eq!(canonical(spelling), "in_progress");
        }
        assert_eq!(canonical("True positive"), "true_positive");
    }

    #[test]
    fn changes_follow_the_choices() {
        let params = Params {
            analyst_verdict: Verdict::NoChange,
            incident_status: Status::InProgress,
        };
        let changes = params.changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path, "/cloud-detection/alerts/incident");
        assert_eq!(changes[0].value, "in_progress");
        let both = Params {
            analyst_verdict: Verdict::FalsePositive,
            incident_status: Status::Resolved,
        };
        let values: Vec<&str> = both.changes().iter().map(|c| c.value).collect();
        assert_eq!(values, ["false_positive", "resolved"]);
        let none = Params {
            analyst_verdict: Verdict::NoChange,
            incident_status: Status::NoChange,
        };
        assert!(none.changes().is_empty());
    }
}
