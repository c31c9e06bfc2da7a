//! Action 14 · SentinelOne Get Alerts (`sentinelone-get-alerts`), the ThreatQ form of Sumo
//! Logic's "Get Alerts".
//!
//! Reads the STAR (cloud-detection) alerts created since the previous run's checkpoint (or the
//! last `hours_back` hours on a first run) with `GET /cloud-detection/alerts?createdAt__gte=…
//! &sortBy=alertInfoCreatedAt&sortOrder=asc`, cursor-paged, narrowed by the optional `severity`
//! and `site_ids`, and stops after `max_items_per_run` new alerts (see [`feed`](super::feed) for
//! the checkpoint). `alertInfoCreatedAt` is the endpoint's documented sort key for the creation
//! time; its list has no `createdAt`. Each alert's source process SHA-1
//! (`sourceProcessInfo.fileHashSha1`) and file path (`sourceProcessInfo.filePath`) become
//! `produced` indicators, de-duplicated by (type, value), carrying the alert's id, rule,
//! severity, incident status, analyst verdict and computer as attributes (one value per alert,
//! repeated values once). The `SentinelOne Alert ID` attributes are what action 15
//! (`sentinelone-update-alerts`) reads to set verdicts and statuses back.
//! The action accepts no input objects (the runner reports any it is given as skipped).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::ingest::feed::{self, Feed, Indicators, text_at};
use super::{Action, RunContext};
use crate::error::Failure;
use crate::indicator::IndicatorType;

pub struct GetAlerts;

/// Parameters of action 14.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// On a first run (no state), read alerts created this many hours before the run.
    pub hours_back: u32,
    /// Only alerts of these rule severities.
    pub severity: Option<Vec<Severity>>,
    /// Only alerts of these sites.
    pub site_ids: Option<Vec<String>>,
    /// New alerts taken in one run at most; the next run continues after the last one.
    pub max_items_per_run: u32,
}

/// A STAR rule severity, as SentinelOne spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
            Self::Critical => "Critical",
        }
    }
}

/// Attributes every indicator of an alert gets, with the field each comes from.
const ATTRIBUTE_FIELDS: [(&str, &str); 6] = [
    ("SentinelOne Alert ID", "/alertInfo/alertId"),
    ("SentinelOne Alert Rule", "/ruleInfo/name"),
    ("SentinelOne Alert Severity", "/ruleInfo/severity"),
    ("SentinelOne Alert Status", "/alertInfo/incidentStatus"),
    ("SentinelOne Analyst Verdict", "/alertInfo/analystVerdict"),
    (
        "SentinelOne Computer",
        "/agentRealtimeInfo/agentComputerName",
    ),
];

fn add_alert(indicators: &mut Indicators, alert: &Value) {
    let attributes: Vec<(&str, Option<String>)> = ATTRIBUTE_FIELDS
        .iter()
        .map(|(name, pointer)| {
            let value = text_at(alert, pointer).or_else(|| match *name {
                // Older answers may lack one of the two places these are given.
                "SentinelOne Alert ID" => text_at(alert, "/id"),
                "SentinelOne Computer" => text_at(alert, "/agentDetectionInfo/name"),
                _ => None,
            });
            (*name, value)
        })
        .collect();
    for (kind, pointer) in [
        (IndicatorType::Sha1, "/sourceProcessInfo/fileHashSha1"),
        (IndicatorType::FilePath, "/sourceProcessInfo/filePath"),
    ] {
        indicators.add(kind, text_at(alert, pointer).as_deref(), &attributes);
    }
}

impl Action for GetAlerts {
    type Params = Params;

    fn preflight(
        _params: &Params,
        state: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<(), Failure> {
        feed::check_state(state, now)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let mut filters = Vec::new();
        if let Some(severities) = params.severity.as_ref().filter(|list| !list.is_empty()) {
            let names: Vec<&str> = severities.iter().map(|s| s.as_str()).collect();
            filters.push(("severity", names.join(",")));
        }
        if let Some(sites) = params.site_ids.as_ref().filter(|ids| !ids.is_empty()) {
            filters.push(("siteIds", sites.join(",")));
        }
        let feed = Feed {
            path: "/cloud-detection/alerts",
            filters,
            sort_by: "alertInfoCreatedAt",
            id_at: "/alertInfo/alertId",
            created_at: "/alertInfo/createdAt",
            hours_back: params.hours_back,
            max_items: params.max_items_per_run as usize,
            noun: "alerts",
        };
        let mut indicators = Indicators::default();
        let fed = feed::read(ctx, &feed, |alert| add_alert(&mut indicators, alert))?;
        indicators.produce(ctx, "alerts");
        fed.finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_alert_gives_its_process_hash_and_path_with_its_attributes() {
        let mut indicators = Indicators::default();
        let alert = |id: &str, verdict: &str| {
            json!({"alertInfo": {"alertId": id, "incidentStatus": "Unresolved",
                                 "analystVerdict": verdict},
                   "ruleInfo": {"name": "Encoded PowerShell", "severity": "High"},
                   "sourceProcessInfo": {"fileHashSha1": "E978F868350D50EBE88342AB8B4357A4DC01753F",
                                         "filePath": "C:\\ps.exe"},
                   "agentRealtimeInfo": {"agentComputerName": null},
                   "agentDetectionInfo": {"name": "WS-1"}})
        };
        add_alert(&mut indicators, &alert("1", "Undefined"));
        add_alert(&mut indicators, &alert("2", "True positive"));
        let objects = indicators.into_objects();
        assert_eq!(objects.len(), 2);
        let names: Vec<String> = objects[0]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{}={}",
                    a["name"].as_str().unwrap(),
                    a["value"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                "SentinelOne Alert ID=1",
                "SentinelOne Alert Rule=Encoded PowerShell",
                "SentinelOne Alert Severity=High",
                "SentinelOne Alert Status=Unresolved",
                "SentinelOne Analyst Verdict=Undefined",
                "SentinelOne Computer=WS-1",
                "SentinelOne Alert ID=2",
                "SentinelOne Analyst Verdict=True positive",
            ]
        );
    }
}
