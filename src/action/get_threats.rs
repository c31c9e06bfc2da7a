//! Action 7 · SentinelOne Get Threats (`sentinelone-get-threats`).
//!
//! Finds the threats of each SHA-1 or file path with the batched look-up of `threats`
//! (`GET /threats` with `contentHashes` / `filePath__contains`, many values per request, every
//! page, plus the optional free-text `query`) and summarises them on the indicator:
//! `SentinelOne Threat Count`, then one attribute per distinct value of the threats'
//! classification, confidence level, mitigation status, incident status and analyst verdict,
//! and one `SentinelOne Affected Computer` per distinct computer name. An indicator with no
//! threat gets a count of 0. Read-only: a dry run does the same.
//!
//! With `include_notes`, each threat's notes are read too, one `GET /threats/{id}/notes` per
//! threat (`reference/sentinelone-api.md` §5.5, SW24: notes are listed per threat; the only
//! batched notes call, `POST /threats/notes`, adds a note) — the `/threats/{id}/…` family
//! allows 100 requests a second (`api::rate`). Only the newest `max_notes_per_threat` notes of
//! a threat are read (`sortBy=createdAt`, `sortOrder=desc`, `limit`, one page), and each
//! distinct text becomes a `SentinelOne Threat Note`. A threat shared by several indicators is
//! read once. A failed notes request fails the indicators of that threat.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::lookup::threats::{self, Threat};
use super::{Action, RunContext, TargetId, distinct_targets};
use crate::error::Failure;
use crate::result::AddedAttribute;

const COUNT: &str = "SentinelOne Threat Count";
const COMPUTER: &str = "SentinelOne Affected Computer";
const NOTE: &str = "SentinelOne Threat Note";

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
    /// Also read each threat's notes.
    pub include_notes: bool,
    /// Notes read per threat, newest first (1–100).
    pub max_notes_per_threat: u32,
}

/// Whether a threat id can go into a URL path as it is (SentinelOne's ids are digits).
fn path_safe(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The texts of the newest `max` notes of every threat of `found`, by threat id. A failed
/// request fails the targets that own the threat.
fn read_notes(
    ctx: &mut RunContext<'_>,
    ids: &[TargetId],
    found: &[Option<Vec<Threat>>],
    max: u32,
) -> BTreeMap<String, Vec<String>> {
    let mut owners: BTreeMap<&str, BTreeSet<TargetId>> = BTreeMap::new();
    for (id, threats) in ids.iter().zip(found) {
        for threat in threats.iter().flatten() {
            if path_safe(&threat.id) {
                owners.entry(threat.id.as_str()).or_default().insert(*id);
            }
        }
    }
    let threat_ids: Vec<&str> = owners.keys().copied().collect();
    let query = vec![
        ("limit", max.to_string()),
        ("sortBy", "createdAt".to_string()),
        ("sortOrder", "desc".to_string()),
    ];
    let answers = ctx.batches(
        "threat notes",
        &threat_ids,
        |threat| distinct_targets(owners[threat].iter().copied()),
        |client, threat| {
            let answer = client.get(&format!("/threats/{threat}/notes"), &query)?;
            let texts = answer
                .get("data")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|note| note.get("text").and_then(Value::as_str))
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>();
            Ok(texts)
        },
    );
    threat_ids
        .iter()
        .zip(answers)
        .filter_map(|(threat, texts)| Some((threat.to_string(), texts?)))
        .collect()
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
        let notes = if params.include_notes {
            read_notes(ctx, &ids, &found, params.max_notes_per_threat)
        } else {
            BTreeMap::new()
        };
        for (id, threats) in ids.into_iter().zip(found) {
            let Some(threats) = threats else { continue };
            let mut attributes = summarise(&threats);
            let mut texts = BTreeSet::new();
            for threat in &threats {
                for text in notes.get(&threat.id).into_iter().flatten() {
                    if texts.insert(text.as_str()) {
                        attributes.push(AddedAttribute::new(NOTE, text.as_str()));
                    }
                }
            }
            let computers: BTreeSet<&str> = threats
                .iter()
                .filter_map(|threat| threat.computer_name.as_deref())
                .collect();
            let detail = match threats.len() {
                0 => "No matching threats".to_string(),
                n => format!("{n} threat(s) on {} computer(s)", computers.len()),
            };
            ctx.succeed(id, detail, attributes);
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
    fn only_plain_threat_ids_go_into_a_notes_path() {
        assert!(path_safe("1234567890123456789"));
        assert!(!path_safe(""));
        assert!(!path_safe("12/../agents"));
        assert!(!path_safe("12?x=1"));
    }

    #[test]
    fn no_threats_is_a_count_of_zero() {
        let attributes = summarise(&[]);
        assert_eq!(attributes.len(), 1);
        assert_eq!(attributes[0].value, "0");
    }
}
