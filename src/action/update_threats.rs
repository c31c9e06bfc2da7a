//! Action 17 · SentinelOne Update Threats (`sentinelone-update-threats`).
//!
//! Sets the analyst verdict and/or the incident status of threats, and/or adds a note to them.
//! Which threats:
//! - an object carrying one or more `SentinelOne Threat ID` attributes updates exactly those
//!   threats, whatever its type. The manifest therefore accepts every indicator type; an object
//!   of a type other than SHA-1 or File Path *without* the attribute is skipped with that reason.
//!   The attributes are read from the first object of a (type, value), since ThreatQ holds one
//!   object per indicator. The ids are looked up with `GET /threats?ids=…` (many per request);
//!   an id SentinelOne does not know is named in the detail and not counted.
//! - a SHA-1 or File Path without the attribute updates all its threats, found with the batched
//!   look-up of `threats` (`contentHashes` / `filePath__contains`).
//!
//! Writes, each with `filter.ids` in batches of 1,000 and never without ids:
//! `POST /threats/analyst-verdict`, `POST /threats/incident`, `POST /threats/notes`. A threat
//! already in the requested state is not written again, and a note is added only to threats
//! that do not already carry the same text (read with `GET /threats/{id}/notes`, one request
//! per threat, as SentinelOne has no batched form), so a second run changes nothing. Threats
//! SentinelOne refuses to update (per-threat `details` with `conditions_not_met` or
//! `missing_permissions`) are named in the detail and not counted.
//!
//! `SentinelOne Threats Updated` = the number of the indicator's threats that now carry every
//! requested change. A dry run reads as usual and lists the POSTs in `plan`.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::lookup;
use super::lookup::threats::{self, Threat};
use super::{Action, Reply, RunContext, TargetId, Tense, Write, distinct_targets};
use crate::error::{ErrorCode, Failure};
use crate::indicator::IndicatorType;
use crate::result::AddedAttribute;

/// Threat ids per write request.
const IDS_PER_REQUEST: usize = 1000;

const ATTRIBUTE: &str = "SentinelOne Threats Updated";

/// The attribute naming the threat an object stands for.
pub const THREAT_ID_ATTRIBUTE: &str = "SentinelOne Threat ID";

/// Per-threat results SentinelOne gives for a threat it did not update.
const REFUSALS: [&str; 2] = ["conditions_not_met", "missing_permissions"];

pub struct UpdateThreats;

/// Parameters of action 17.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The analyst verdict to set.
    pub analyst_verdict: Verdict,
    /// The incident status to set.
    pub incident_status: IncidentStatus,
    /// A note to add to the threats.
    pub note: Option<String>,
}

/// The analyst verdict choices (SentinelOne's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    NoChange,
    TruePositive,
    FalsePositive,
    Suspicious,
    Undefined,
}

impl Verdict {
    fn api_value(self) -> Option<&'static str> {
        match self {
            Self::NoChange => None,
            Self::TruePositive => Some("true_positive"),
            Self::FalsePositive => Some("false_positive"),
            Self::Suspicious => Some("suspicious"),
            Self::Undefined => Some("undefined"),
        }
    }
}

/// The incident status choices (SentinelOne's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    NoChange,
    Unresolved,
    InProgress,
    Resolved,
}

impl IncidentStatus {
    fn api_value(self) -> Option<&'static str> {
        match self {
            Self::NoChange => None,
            Self::Unresolved => Some("unresolved"),
            Self::InProgress => Some("in_progress"),
            Self::Resolved => Some("resolved"),
        }
    }
}

/// One requested change.
#[derive(Debug, Clone)]
struct Change {
    /// For details: `analyst verdict true_positive`, `note`.
    label: String,
    path: &'static str,
    /// `data` of the request body.
    data: Value,
    /// The `threatInfo` field that already shows the change (none for notes).
    field: Option<&'static str>,
    /// The value that field must have.
    value: String,
}

impl Params {
    fn changes(&self) -> Result<Vec<Change>, Failure> {
        let mut changes = Vec::new();
        if let Some(verdict) = self.analyst_verdict.api_value() {
            changes.push(Change {
                label: format!("analyst verdict {verdict}"),
                path: "/threats/analyst-verdict",
                data: json!({ "analystVerdict": verdict }),
                field: Some("analystVerdict"),
                value: verdict.to_string(),
            });
        }
        if let Some(status) = self.incident_status.api_value() {
            changes.push(Change {
                label: format!("incident status {status}"),
                path: "/threats/incident",
                data: json!({ "incidentStatus": status }),
                field: Some("incidentStatus"),
                value: status.to_string(),
            });
        }
        if let Some(note) = self
            .note
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            changes.push(Change {
                label: "note".into(),
                path: "/threats/notes",
                data: json!({ "text": note }),
                field: None,
                value: note.to_string(),
            });
        }
        if changes.is_empty() {
            return Err(Failure::config_invalid(
                "config",
                "Nothing to update: set at least one of Analyst Verdict (analyst_verdict), \
                 Incident Status (incident_status) or Note (note)",
            ));
        }
        Ok(changes)
    }
}

/// The `SentinelOne Threat ID` values of a target's object; `Err` names one that is not an id.
fn threat_ids_of(ctx: &RunContext<'_>, id: TargetId) -> Result<Vec<String>, String> {
    let mut ids: Vec<String> = Vec::new();
    for attribute in &ctx.view(id).attributes {
        if attribute.name.trim() != THREAT_ID_ATTRIBUTE {
            continue;
        }
        let text = attribute.value_text();
        let text = text.trim();
        if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{THREAT_ID_ATTRIBUTE} '{}' is not a SentinelOne id (digits only)",
                text.chars().take(40).collect::<String>()
            ));
        }
        if !ids.iter().any(|known| known == text) {
            ids.push(text.to_string());
        }
    }
    Ok(ids)
}

/// What a target stands for, once its threats are known.
#[derive(Debug, Default)]
struct Found {
    threats: Vec<Threat>,
    /// Threat ids named by attribute that SentinelOne does not know.
    missing: Vec<String>,
}

/// Looks the threats of attribute-named ids up (`GET /threats?ids=…`, many per request).
fn find_by_ids(ctx: &mut RunContext<'_>, wanted: &[(TargetId, Vec<String>)]) -> Vec<Option<Found>> {
    let mut owners: BTreeMap<String, BTreeSet<TargetId>> = BTreeMap::new();
    for (id, threat_ids) in wanted {
        for threat_id in threat_ids {
            owners.entry(threat_id.clone()).or_default().insert(*id);
        }
    }
    let threats = ("/threats", "ids");
    let known: HashMap<String, Threat> =
        lookup::by_ids(ctx, "threat lookup by id", threats, &owners, |item| {
            Threat::from_value(item).map(|threat| (threat.id.clone(), threat))
        })
        .into_iter()
        .collect();
    wanted
        .iter()
        .map(|(id, threat_ids)| {
            ctx.is_pending(*id).then(|| {
                let mut found = Found::default();
                for threat_id in threat_ids {
                    match known.get(threat_id) {
                        Some(threat) => found.threats.push(threat.clone()),
                        None => found.missing.push(threat_id.clone()),
                    }
                }
                found
            })
        })
        .collect()
}

/// Whether each of `threat_ids` already carries a note with exactly `text` (one notes read
/// per threat); a threat whose read failed is left out (its targets have been failed).
fn noted(
    ctx: &mut RunContext<'_>,
    threat_ids: &[String],
    owners: &BTreeMap<String, BTreeSet<TargetId>>,
    text: &str,
) -> BTreeMap<String, bool> {
    let answers = ctx.batches(
        "notes lookup",
        threat_ids,
        |threat_id| owners[threat_id].iter().copied().collect(),
        |client, threat_id| {
            for page in client.pages(&format!("/threats/{threat_id}/notes"), Vec::new(), "/data") {
                let found = page?.iter().any(|note| {
                    note.get("text")
                        .and_then(Value::as_str)
                        .is_some_and(|known| known.trim() == text)
                });
                if found {
                    return Ok(true);
                }
            }
            Ok(false)
        },
    );
    threat_ids
        .iter()
        .zip(answers)
        .filter_map(|(threat_id, has)| has.map(|has| (threat_id.clone(), has)))
        .collect()
}

/// Threat ids of a write response's `details` that SentinelOne did not update, with why.
fn refused(response: &Value) -> BTreeMap<String, String> {
    response
        .pointer("/data/details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|detail| {
            let threat_id = match detail.get("threatId")? {
                Value::String(id) => id.clone(),
                Value::Number(id) => id.to_string(),
                _ => return None,
            };
            let result = detail.get("result").and_then(Value::as_str)?;
            REFUSALS
                .contains(&result)
                .then(|| (threat_id, result.to_string()))
        })
        .collect()
}

/// What happened to one change, per threat id.
#[derive(Debug, Default)]
struct Applied {
    /// Written (or, in a dry run, to be written).
    written: BTreeSet<String>,
    /// Not written because the threat already shows the change.
    already: BTreeSet<String>,
    /// Refused by SentinelOne, with the reason.
    refused: BTreeMap<String, String>,
}

impl Action for UpdateThreats {
    type Params = Params;

    fn preflight(
        params: &Params,
        _state: Option<&Value>,
        _now: DateTime<Utc>,
    ) -> Result<(), Failure> {
        params.changes().map(drop)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let changes = params.changes()?;
        let ids: Vec<TargetId> = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let found = find_threats(ctx, ids);

        // Every threat once, with the targets it belongs to.
        let mut owners: BTreeMap<String, BTreeSet<TargetId>> = BTreeMap::new();
        let mut threat_by_id: BTreeMap<String, &Threat> = BTreeMap::new();
        for (id, result) in &found {
            for threat in &result.threats {
                owners.entry(threat.id.clone()).or_default().insert(*id);
                threat_by_id.insert(threat.id.clone(), threat);
            }
        }
        let applied: Vec<Applied> = changes
            .iter()
            .map(|change| apply(ctx, change, &threat_by_id, &owners))
            .collect();

        for (id, result) in &found {
            let (detail, updated) = report(result, &changes, &applied, ctx.tense());
            let attributes = vec![AddedAttribute::new(ATTRIBUTE, updated.to_string())];
            ctx.succeed(*id, detail, attributes);
        }
        Ok(())
    }
}

/// The threats of every target in `ids`, by attribute or by value; targets that are skipped,
/// invalid or whose look-up failed have their outcome in `ctx` and are left out.
fn find_threats(ctx: &mut RunContext<'_>, ids: Vec<TargetId>) -> Vec<(TargetId, Found)> {
    let mut by_attribute: Vec<(TargetId, Vec<String>)> = Vec::new();
    let mut by_value: Vec<TargetId> = Vec::new();
    for id in ids {
        match threat_ids_of(ctx, id) {
            Err(message) => ctx.fail(
                id,
                Failure::new(ErrorCode::InputInvalidValue, message)
                    .with_field(format!("objects[{}].attributes", ctx.target(id).indices[0])),
            ),
            Ok(threat_ids) if !threat_ids.is_empty() => by_attribute.push((id, threat_ids)),
            Ok(_) => match ctx.target(id).kind {
                IndicatorType::Sha1 | IndicatorType::FilePath => by_value.push(id),
                other => ctx.skip(
                    id,
                    format!(
                        "Type {} is accepted only with a {THREAT_ID_ATTRIBUTE} attribute",
                        other.name()
                    ),
                ),
            },
        }
    }
    let mut found: Vec<(TargetId, Found)> = Vec::new();
    let by_id = find_by_ids(ctx, &by_attribute);
    for ((id, _), result) in by_attribute.iter().zip(by_id) {
        found.extend(result.map(|result| (*id, result)));
    }
    let by_hash_or_path = threats::find(ctx, &by_value, None);
    for (id, threats) in by_value.into_iter().zip(by_hash_or_path) {
        let found_one = |threats| Found {
            threats,
            ..Found::default()
        };
        found.extend(threats.map(|threats| (id, found_one(threats))));
    }
    found.sort_by_key(|(id, _)| *id);
    found
}

/// Writes (or plans) one change for every threat that does not show it yet.
fn apply(
    ctx: &mut RunContext<'_>,
    change: &Change,
    threat_by_id: &BTreeMap<String, &Threat>,
    owners: &BTreeMap<String, BTreeSet<TargetId>>,
) -> Applied {
    // Per threat: whether it already shows the change. A threat left out could not be checked
    // (its targets have failed) and is not written either.
    let already: BTreeMap<String, bool> = match change.field {
        Some(field) => threat_by_id
            .iter()
            .map(|(threat_id, threat)| {
                let current = threat
                    .raw
                    .get("threatInfo")
                    .and_then(|info| info.get(field))
                    .and_then(Value::as_str);
                (threat_id.clone(), current == Some(change.value.as_str()))
            })
            .collect(),
        None => {
            let all: Vec<String> = threat_by_id.keys().cloned().collect();
            noted(ctx, &all, owners, &change.value)
        }
    };
    let to_write: Vec<&String> = threat_by_id
        .keys()
        .filter(|threat_id| already.get(*threat_id) == Some(&false))
        .collect();
    let batches: Vec<&[&String]> = to_write.chunks(IDS_PER_REQUEST).collect();
    let refusals = ctx.write(
        &change.label,
        &batches,
        |batch| {
            distinct_targets(
                batch
                    .iter()
                    .flat_map(|threat_id| owners[*threat_id].iter().copied()),
            )
        },
        |batch| {
            Write::post(
                change.path,
                json!({ "filter": { "ids": batch }, "data": change.data }),
            )
        },
        |_, reply: Reply<Value>| {
            Ok(reply
                .answer()?
                .map(|answer| refused(&answer))
                .unwrap_or_default())
        },
    );
    let refused: BTreeMap<String, String> = refusals.into_iter().flatten().flatten().collect();
    Applied {
        written: to_write
            .into_iter()
            .filter(|threat_id| !refused.contains_key(*threat_id))
            .cloned()
            .collect(),
        already: already
            .into_iter()
            .filter_map(|(threat_id, has)| has.then_some(threat_id))
            .collect(),
        refused,
    }
}

/// A target's detail, and how many of its threats carry every change.
fn report(found: &Found, changes: &[Change], applied: &[Applied], tense: Tense) -> (String, usize) {
    let total = found.threats.len();
    let mut parts: Vec<String> = Vec::new();
    let mut not_updated: BTreeSet<&str> = BTreeSet::new();
    for (change, outcome) in changes.iter().zip(applied) {
        let count = |set: &BTreeSet<String>| {
            found
                .threats
                .iter()
                .filter(|threat| set.contains(&threat.id))
                .count()
        };
        let reasons: BTreeSet<&str> = found
            .threats
            .iter()
            .filter_map(|threat| {
                let reason = outcome.refused.get(&threat.id)?;
                not_updated.insert(threat.id.as_str());
                Some(reason.as_str())
            })
            .collect();
        parts.push(describe(
            change,
            count(&outcome.written),
            count(&outcome.already),
            &reasons,
            tense,
        ));
    }
    let mut detail = match total {
        0 => "No matching threats".to_string(),
        n => tense.pick(
            format!("{n} threat(s): {}", parts.join("; ")),
            format!("Dry run: {n} threat(s): {}", parts.join("; ")),
        ),
    };
    if !found.missing.is_empty() {
        detail.push_str(&format!(
            "; threat id(s) not found in SentinelOne: {}",
            found.missing.join(", ")
        ));
    }
    (detail, total - not_updated.len())
}

/// One change's part of a detail, e.g. `analyst verdict true_positive set on 2, already on 1`.
fn describe(
    change: &Change,
    written: usize,
    already: usize,
    refusals: &BTreeSet<&str>,
    tense: Tense,
) -> String {
    let done = match change.field {
        Some(_) => tense.pick("set on", "would be set on"),
        None => tense.pick("added to", "would be added to"),
    };
    let verb = "already on";
    let mut text = change.label.clone();
    let mut pieces = Vec::new();
    if written > 0 {
        pieces.push(format!("{done} {written}"));
    }
    if already > 0 {
        pieces.push(format!("{verb} {already}"));
    }
    if !refusals.is_empty() {
        let reasons: Vec<&str> = refusals.iter().copied().collect();
        pieces.push(format!("refused by SentinelOne ({})", reasons.join(", ")));
    }
    if !pieces.is_empty() {
        text.push(' ');
        text.push_str(&pieces.join(", "));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(verdict: Verdict, status: IncidentStatus, note: Option<&str>) -> Params {
        Params {
            analyst_verdict: verdict,
            incident_status: status,
            note: note.map(str::to_string),
        }
    }

    #[test]
    fn at_least_one_change_is_required() {
        let err = params(Verdict::NoChange, IncidentStatus::NoChange, Some("  "))
            .changes()
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ConfigInvalid);
        for name in ["analyst_verdict", "incident_status", "note"] {
            assert!(err.message.contains(name), "{}", err.message);
        }
        let changes = params(
            Verdict::TruePositive,
            IncidentStatus::Resolved,
            Some("seen"),
        )
        .changes()
        .unwrap();
        let paths: Vec<&str> = changes.iter().map(|change| change.path).collect();
        assert_eq!(
            paths,
            [
                "/threats/analyst-verdict",
                "/threats/incident",
                "/threats/notes"
            ]
        );
        assert_eq!(changes[0].data, json!({"analystVerdict": "true_positive"}));
        assert_eq!(changes[1].data, json!({"incidentStatus": "resolved"}));
        assert_eq!(changes[2].data, json!({"text": "seen"}));
    }

    #[test]
    fn refusals_are_read_from_details() {
        let response = json!({"data": {"affected": 1, "details": [
            {"threatId": "1", "result": "updated"},
            {"threatId": "2", "result": "not_changed"},
            {"threatId": "3", "result": "missing_permissions"}
        ]}});
        let refusals = refused(&response);
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals["3"], "missing_permissions");
        assert!(refused(&json!({"data": {"affected": 2}})).is_empty());
    }

    #[test]
    fn refused_threats_are_not_counted_and_missing_ids_are_named() {
        let changes = params(Verdict::TruePositive, IncidentStatus::NoChange, None)
            .changes()
            .unwrap();
        let threat = |id: &str| Threat::from_json(&json!({"id": id})).unwrap();
        let found = Found {
            threats: vec![threat("1"), threat("2")],
            missing: vec!["9".into()],
        };
        let applied = [Applied {
            written: BTreeSet::from(["1".to_string()]),
            already: BTreeSet::new(),
            refused: BTreeMap::from([("2".to_string(), "missing_permissions".to_string())]),
        }];
        let (detail, updated) = report(&found, &changes, &applied, Tense::Done);
        assert_eq!(updated, 1);
        assert_eq!(
            detail,
            "2 threat(s): analyst verdict true_positive set on 1, refused by SentinelOne \
             (missing_permissions); threat id(s) not found in SentinelOne: 9"
        );
    }

    #[test]
    fn details_say_what_changed() {
        let change = &params(Verdict::Suspicious, IncidentStatus::NoChange, None)
            .changes()
            .unwrap()[0];
        let none = BTreeSet::new();
        assert_eq!(
            describe(change, 2, 1, &none, Tense::Done),
            "analyst verdict suspicious set on 2, already on 1"
        );
        assert_eq!(
            describe(change, 0, 3, &none, Tense::Done),
            "analyst verdict suspicious already on 3"
        );
        let reasons = BTreeSet::from(["conditions_not_met"]);
        assert_eq!(
            describe(change, 1, 0, &reasons, Tense::Planned),
            "analyst verdict suspicious would be set on 1, refused by SentinelOne (conditions_not_met)"
        );
    }
}
