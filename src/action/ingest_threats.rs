//! Action 18 · SentinelOne Ingest Threats (`sentinelone-ingest-threats`), the ThreatQ form of
//! Sumo Logic's "SentinelOne Threats Daemon".
//!
//! Reads the threats created since the previous run's checkpoint (or the last `hours_back`
//! hours on a first run) with `GET /threats?createdAt__gte=…&sortBy=createdAt&sortOrder=asc`,
//! cursor-paged, narrowed by the optional `site_ids` and `query`, and stops after
//! `max_threats_per_run` new threats (see [`feed`](super::feed) for the checkpoint). Each
//! threat's SHA-1, SHA-256, MD5 and file path become `produced` indicators, de-duplicated by
//! (type, value), each carrying the threat's id, name, classification, confidence, computer,
//! mitigation and incident status as attributes (one value per threat, repeated values once).
//! The action accepts no input objects (the runner reports any it is given as skipped).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::ingest::feed::{self, Feed, Indicators, text_at};
use super::{Action, RunContext};
use crate::error::Failure;
use crate::indicator::IndicatorType;

pub struct IngestThreats;

/// Parameters of action 18.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// On a first run (no state), read threats created this many hours before the run.
    pub hours_back: u32,
    /// Only threats of these sites.
    pub site_ids: Option<Vec<String>>,
    /// SentinelOne free-text filter for the threats.
    pub query: Option<String>,
    /// New threats taken in one run at most; the next run continues after the last one.
    pub max_threats_per_run: u32,
}

/// Indicator types read from `threatInfo`, with the field each comes from.
const HASH_AND_PATH_FIELDS: [(IndicatorType, &str); 4] = [
    (IndicatorType::Sha1, "/threatInfo/sha1"),
    (IndicatorType::Sha256, "/threatInfo/sha256"),
    (IndicatorType::Md5, "/threatInfo/md5"),
    (IndicatorType::FilePath, "/threatInfo/filePath"),
];

/// Attributes every indicator of a threat gets, with the field each comes from.
const ATTRIBUTE_FIELDS: [(&str, &str); 7] = [
    ("SentinelOne Threat ID", "/id"),
    ("SentinelOne Threat Name", "/threatInfo/threatName"),
    ("SentinelOne Classification", "/threatInfo/classification"),
    ("SentinelOne Confidence", "/threatInfo/confidenceLevel"),
    (
        "SentinelOne Computer",
        "/agentRealtimeInfo/agentComputerName",
    ),
    (
        "SentinelOne Mitigation Status",
        "/threatInfo/mitigationStatus",
    ),
    ("SentinelOne Incident Status", "/threatInfo/incidentStatus"),
];

fn add_threat(indicators: &mut Indicators, threat: &Value) {
    let attributes: Vec<(&str, Option<String>)> = ATTRIBUTE_FIELDS
        .iter()
        .map(|(name, pointer)| (*name, text_at(threat, pointer)))
        .collect();
    for (kind, pointer) in HASH_AND_PATH_FIELDS {
        indicators.add(kind, text_at(threat, pointer).as_deref(), &attributes);
    }
}

impl Action for IngestThreats {
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
        if let Some(sites) = params.site_ids.as_ref().filter(|ids| !ids.is_empty()) {
            filters.push(("siteIds", sites.join(",")));
        }
        if let Some(query) = params.query.as_deref().filter(|q| !q.is_empty()) {
            filters.push(("query", query.to_string()));
        }
        let feed = Feed {
            path: "/threats",
            filters,
            sort_by: "createdAt",
            id_at: "/id",
            // v2.1 threats carry their creation time in threatInfo only.
            created_at: "/threatInfo/createdAt",
            hours_back: params.hours_back,
            max_items: params.max_threats_per_run as usize,
            noun: "threats",
        };
        let mut indicators = Indicators::default();
        let fed = feed::read(ctx, &feed, |threat| add_threat(&mut indicators, threat))?;
        indicators.produce(ctx, "threats");
        fed.finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_threat_gives_its_hashes_and_path_with_its_attributes() {
        let mut indicators = Indicators::default();
        add_threat(
            &mut indicators,
            &json!({"id": "9", "threatInfo": {
                "sha1": "7EB2197D6FD80C31BD04D3A7FB8C725EB9789013", "sha256": null, "md5": "",
                "filePath": "C:\\x.exe", "threatName": "x.exe", "classification": "Malware",
                "confidenceLevel": "malicious", "mitigationStatus": "not_mitigated",
                "incidentStatus": "unresolved"},
              "agentRealtimeInfo": {"agentComputerName": "PC-1"}}),
        );
        let objects = indicators.into_objects();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["type"], "SHA-1");
        assert_eq!(
            objects[0]["value"],
            "7eb2197d6fd80c31bd04d3a7fb8c725eb9789013"
        );
        assert_eq!(objects[1]["type"], "File Path");
        assert_eq!(objects[1]["attributes"].as_array().unwrap().len(), 7);
        assert_eq!(
            objects[1]["attributes"][4],
            json!({"name": "SentinelOne Computer", "value": "PC-1"})
        );
    }
}
