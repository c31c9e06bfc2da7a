//! Action 7 · SentinelOne Get Threats (`sentinelone-get-threats`).
//!
//! Finds the threats of each SHA-1 or file path with the batched look-up of `threats`
//! (`GET /threats` with `contentHashes` / `filePath__contains`, many values per request, every
//! page, plus the optional free-text `query`) and summarises them on the indicator:
//! `SentinelOne Threat Count`, then one attribute per distinct value of the threats'
//! classification, confidence level, mitigation status, incident status and analyst verdict,
//! and one `SentinelOne Affected Computer` per distinct computer name. An indicator with no
//! threat gets a count of 0. Read-only: a dry run does the same.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::lookup::threats::{self, Threat};
use super::{Action, RunContext, TargetId};
use crate::error::Failure;
use crate::result::AddedAttribute;

const COUNT: &str = "SentinelOne Threat Count";
const COMPUTER: &str = "SentinelOne Affected Computer";

/// Attribute name and the `threatInfo` field it reports, in the order they are added.
const FIELDS: [(&str, &str); 5] = [
    ("SentinelOne Threat Classification", "classification"),
    ("SentinelOne Threat Confidence", "confidenceLevel"),
    ("SentinelOne Mitigation Status", "mitigationStatus"),
    ("SentinelOne Incident Status", "incidentStatus"),
    ("SentinelOne Analyst Verdict", "analystVerdict"),
];

pub struct GetThreats;

/// Parameters of action 7.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Extra free-text filter for the threats.
    pub query: Option<String>,
}

/// The distinct non-empty texts at `threatInfo.<field>` over `threats`, sorted.
fn distinct(threats: &[Threat], field: &str) -> BTreeSet<String> {
    threats
        .iter()
        .filter_map(|threat| {
            threat
                .raw
                .get("threatInfo")
                .and_then(|info| info.get(field))
                .and_then(Value::as_str)
        })
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
        .collect()
}

/// The attributes summarising `threats`.
fn summarise(threats: &[Threat]) -> Vec<AddedAttribute> {
    let mut attributes = vec![AddedAttribute::new(COUNT, threats.len().to_string())];
    for (name, field) in FIELDS {
        for value in distinct(threats, field) {
            attributes.push(AddedAttribute::new(name, value));
        }
    }
    let computers: BTreeSet<&str> = threats
        .iter()
        .filter_map(|threat| threat.computer_name.as_deref())
        .collect();
    for computer in computers {
        attributes.push(AddedAttribute::new(COMPUTER, computer));
    }
    attributes
}

impl Action for GetThreats {
    type Params = Params;

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let ids: Vec<TargetId> = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let found = threats::find(ctx, &ids, params.query.as_deref());
        for (id, threats) in ids.into_iter().zip(found) {
            let Some(threats) = threats else { continue };
            let computers: BTreeSet<&str> = threats
                .iter()
                .filter_map(|threat| threat.computer_name.as_deref())
                .collect();
            let detail = match threats.len() {
                0 => "No matching threats".to_string(),
                n => format!("{n} threat(s) on {} computer(s)", computers.len()),
            };
            ctx.succeed(id, detail, summarise(&threats));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn threat(id: &str, computer: &str, incident: &str) -> Threat {
        Threat::from_json(&json!({
            "id": id,
            "threatInfo": {"sha1": "ab", "classification": "Trojan", "confidenceLevel": "malicious",
                           "mitigationStatus": "not_mitigated", "incidentStatus": incident,
                           "analystVerdict": "undefined"},
            "agentRealtimeInfo": {"agentId": id, "agentComputerName": computer}
        }))
        .unwrap()
    }

    #[test]
    fn distinct_values_become_one_attribute_each() {
        let threats = [
            threat("1", "WIN-01", "unresolved"),
            threat("2", "WIN-02", "resolved"),
            threat("3", "WIN-01", "unresolved"),
        ];
        let attributes: Vec<(String, String)> = summarise(&threats)
            .into_iter()
            .map(|attribute| (attribute.name, attribute.value))
            .collect();
        let expected: Vec<(String, String)> = [
            (COUNT, "3"),
            ("SentinelOne Threat Classification", "Trojan"),
            ("SentinelOne Threat Confidence", "malicious"),
            ("SentinelOne Mitigation Status", "not_mitigated"),
            ("SentinelOne Incident Status", "resolved"),
            ("SentinelOne Incident Status", "unresolved"),
            ("SentinelOne Analyst Verdict", "undefined"),
            (COMPUTER, "WIN-01"),
            (COMPUTER, "WIN-02"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        assert_eq!(attributes, expected);
    }

    #[test]
    fn no_threats_is_a_count_of_zero() {
        let attributes = summarise(&[]);
        assert_eq!(attributes.len(), 1);
        assert_eq!(attributes[0].value, "0");
    }
}
