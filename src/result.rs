//! Protocol v1 output: the result document (DESIGN §3.2), serialize-only.
//!
//! The document accounts for every input object twice: `objects` (the object as received plus
//! the attributes the action added) and `results` (one outcome each, same order). This module
//! defines the shapes and how an enriched object is written; it does not decide outcomes (see
//! `action::context`) and does not write stdout (see `output`).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::envelope::{PROTOCOL, RawObject};
use crate::error::Failure;

/// The output document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunResult {
    pub protocol: u32,
    /// The action that ran; null when the envelope named none that exists.
    pub action: Option<ActionIdent>,
    pub status: RunStatus,
    pub summary: Summary,
    /// Every input object, in input order, with added attributes appended to `attributes`.
    #[serde(serialize_with = "serialize_objects")]
    pub objects: Vec<OutputObject>,
    /// One outcome per input object, same order.
    pub results: Vec<ObjectResult>,
    /// New ThreatQ objects made by ingest actions.
    pub produced: Vec<Value>,
    /// Plain rows of listing actions.
    pub records: Vec<Value>,
    /// Run-level errors.
    pub errors: Vec<Failure>,
    pub warnings: Vec<Warning>,
    /// With dry-run: the writes that would be sent.
    pub plan: Option<Vec<PlannedRequest>>,
    /// The checkpoint for the next run of an ingest action.
    pub state: Option<Value>,
    pub metrics: Metrics,
}

impl RunResult {
    /// An empty document for `action`, to be filled in.
    pub fn new(action: Option<ActionIdent>) -> Self {
        Self {
            protocol: PROTOCOL,
            action,
            status: RunStatus::Succeeded,
            summary: Summary::default(),
            objects: Vec::new(),
            results: Vec::new(),
            produced: Vec::new(),
            records: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            plan: None,
            state: None,
            metrics: Metrics::default(),
        }
    }

    /// Recomputes `summary` and `status` from `results`, `produced` and `errors`.
    pub fn finish(&mut self) {
        let mut summary = Summary {
            total: self.results.len(),
            ..Summary::default()
        };
        for result in &self.results {
            match result.status {
                ObjectStatus::Succeeded => summary.succeeded += 1,
                ObjectStatus::Skipped => summary.skipped += 1,
                ObjectStatus::Failed => summary.failed += 1,
            }
        }
        summary.attributes_added = self.objects.iter().map(|object| object.added.len()).sum();
        summary.produced = self.produced.len();
        self.status = if !self.errors.is_empty() {
            RunStatus::Failed
        } else if summary.failed > 0 {
            RunStatus::Partial
        } else {
            RunStatus::Succeeded
        };
        self.summary = summary;
    }
}

/// `{ "id": 2, "name": "sentinelone-mitigate-threats" }`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ActionIdent {
    pub id: u32,
    pub name: String,
}

/// Outcome of the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// No object failed and there was no run-level error.
    Succeeded,
    /// Some objects failed.
    Partial,
    /// A run-level error stopped the run.
    Failed,
}

/// Outcome of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObjectStatus {
    Succeeded,
    Skipped,
    Failed,
}

/// Run counts.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Summary {
    pub total: usize,
    pub succeeded: usize,
    pub skipped: usize,
    pub failed: usize,
    pub attributes_added: usize,
    pub produced: usize,
}

/// The outcome of one input object.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ObjectResult {
    /// Position in the envelope's `objects`.
    pub index: usize,
    /// The value as sent to SentinelOne (normalised), or as received when it was not valid.
    pub value: Option<String>,
    pub status: ObjectStatus,
    /// What happened, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

/// A non-fatal remark about the run (an unknown config key, TLS verification off).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Warning {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// One write that a dry run would have sent.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlannedRequest {
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Indexes of the input objects the write concerns.
    pub objects: Vec<usize>,
}

/// Figures operators and benchmarks read.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Metrics {
    /// Every HTTP attempt, retries included.
    pub http_requests: u64,
    pub retries: u64,
    pub duration_ms: u64,
}

/// An added attribute: ThreatQ attribute values are text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AddedAttribute {
    pub name: String,
    pub value: String,
}

impl AddedAttribute {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// An input object on its way out: its raw JSON plus the attributes to append.
#[derive(Debug)]
pub struct OutputObject {
    pub raw: RawObject,
    pub added: Vec<AddedAttribute>,
}

impl Serialize for OutputObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.added.is_empty() {
            // Untouched objects are copied through byte for byte.
            return self.raw.serialize(serializer);
        }
        let enriched = with_attributes(self.raw.get(), &self.added).map_err(S::Error::custom)?;
        enriched.serialize(serializer)
    }
}

/// Objects rendered ahead of writing, at most: enough to keep every core busy, few enough
/// that their text (about a kilobyte each) is never a large part of the run's memory.
const RENDER_WINDOW: usize = 8_192;

/// The objects, each enriched object rendered (see [`with_attributes`]) on all cores a window
/// at a time, then written in order: rendering is most of the time spent writing a result.
fn serialize_objects<S: Serializer>(
    objects: &[OutputObject],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = serializer.serialize_seq(Some(objects.len()))?;
    for window in objects.chunks(RENDER_WINDOW) {
        let rendered = crate::cores::map(window, crate::envelope::OBJECTS_PER_THREAD, |object| {
            (!object.added.is_empty()).then(|| with_attributes(object.raw.get(), &object.added))
        });
        for (object, rendered) in window.iter().zip(rendered) {
            match rendered {
                None => seq.serialize_element(&object.raw)?,
                Some(Ok(enriched)) => seq.serialize_element(&enriched)?,
                Some(Err(reason)) => return Err(S::Error::custom(reason)),
            }
        }
    }
    seq.end()
}

/// The top-level `attributes` of an object, borrowed from its text: `null` stays
/// `Some("null")`, only a missing key is `None`.
#[derive(Deserialize)]
struct AttributesSpan<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    attributes: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// The object text with `added` appended to its `attributes` list (made when absent or null),
/// spliced into the text: the rest of the object is written back byte for byte, and no JSON
/// tree is built (for 50,000 enriched objects that was most of the time spent writing the
/// result).
fn with_attributes(raw: &str, added: &[AddedAttribute]) -> Result<Box<RawValue>, String> {
    let added: Vec<String> = added
        .iter()
        .map(|attribute| serde_json::to_string(attribute).map_err(|err| err.to_string()))
        .collect::<Result<_, _>>()?;
    let added = added.join(",");
    let span: AttributesSpan<'_> = serde_json::from_str(raw).map_err(|err| err.to_string())?;
    let text = match span.attributes {
        None => {
            // Appended as the last key, before the closing brace.
            let close = raw
                .rfind('}')
                .ok_or("an enriched object must be a JSON object")?;
            let open = raw
                .find('{')
                .ok_or("an enriched object must be a JSON object")?;
            let separator = if raw[open + 1..close].trim().is_empty() {
                ""
            } else {
                ","
            };
            format!(
                "{}{separator}\"attributes\":[{added}]{}",
                &raw[..close],
                &raw[close..]
            )
        }
        Some(list) => {
            let text = list.get();
            // The list's place in the object text: `list` borrows from `raw`.
            let start = (text.as_ptr() as usize)
                .checked_sub(raw.as_ptr() as usize)
                .filter(|start| start + text.len() <= raw.len())
                .ok_or("the attributes list is not part of the object text")?;
            let end = start + text.len();
            if text == "null" {
                format!("{}[{added}]{}", &raw[..start], &raw[end..])
            } else if text.starts_with('[') && text.ends_with(']') {
                let separator = if text[1..text.len() - 1].trim().is_empty() {
                    ""
                } else {
                    ","
                };
                format!("{}{separator}{added}{}", &raw[..end - 1], &raw[end - 1..])
            } else {
                return Err("an enriched object's attributes must be a list".into());
            }
        }
    };
    RawValue::from_string(text).map_err(|err| err.to_string())
}

impl JsonSchema for OutputObject {
    fn schema_name() -> Cow<'static, str> {
        "OutputObject".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "The input object as received, with added attributes appended to `attributes`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawObject {
        RawObject::from(text.to_string())
    }

    #[test]
    fn untouched_objects_are_copied_byte_for_byte() {
        let object = OutputObject {
            raw: raw(r#"{"z": 1,  "a": [2]}"#),
            added: vec![],
        };
        assert_eq!(
            serde_json::to_string(&object).unwrap(),
            r#"{"z": 1,  "a": [2]}"#
        );
    }

    #[test]
    fn added_attributes_are_appended_keeping_key_order() {
        let object = OutputObject {
            raw: raw(r#"{"z": 1, "attributes": [{"name": "Severity", "value": "High"}], "a": 2}"#),
            added: vec![AddedAttribute::new("Computers Affected by mitigation", "1")],
        };
        assert_eq!(
            serde_json::to_string(&object).unwrap(),
            r#"{"z": 1, "attributes": [{"name": "Severity", "value": "High"},{"name":"Computers Affected by mitigation","value":"1"}], "a": 2}"#
        );
        let without = OutputObject {
            raw: raw(r#"{"v": "x", "attributes": null}"#),
            added: vec![AddedAttribute::new("n", "v")],
        };
        assert_eq!(
            serde_json::to_string(&without).unwrap(),
            r#"{"v": "x", "attributes": [{"name":"n","value":"v"}]}"#
        );
    }

    #[test]
    fn attributes_are_made_when_missing_or_empty() {
        let added = vec![
            AddedAttribute::new("a", "1"),
            AddedAttribute::new("b \"q\"", "2"),
        ];
        let cases = [
            (
                r#"{"v": "x"}"#,
                r#"{"v": "x","attributes":[{"name":"a","value":"1"},{"name":"b \"q\"","value":"2"}]}"#,
            ),
            (
                r#"{ }"#,
                r#"{ "attributes":[{"name":"a","value":"1"},{"name":"b \"q\"","value":"2"}]}"#,
            ),
            (
                r#"{"attributes": [ ], "k": {"attributes": 5}}"#,
                r#"{"attributes": [ {"name":"a","value":"1"},{"name":"b \"q\"","value":"2"}], "k": {"attributes": 5}}"#,
            ),
            // A key spelt with an escape is the same key.
            (
                r#"{"attribut\u0065s": [1]}"#,
                r#"{"attribut\u0065s": [1,{"name":"a","value":"1"},{"name":"b \"q\"","value":"2"}]}"#,
            ),
        ];
        for (input, expected) in cases {
            let object = OutputObject {
                raw: raw(input),
                added: added.clone(),
            };
            let text = serde_json::to_string(&object).unwrap();
            assert_eq!(text, expected);
            let reparsed: Value = serde_json::from_str(&text).unwrap();
            assert!(reparsed["attributes"].as_array().unwrap().len() >= 2);
        }
        let not_a_list = OutputObject {
            raw: raw(r#"{"attributes": "x"}"#),
            added: added.clone(),
        };
        assert!(serde_json::to_string(&not_a_list).is_err());
    }

    #[test]
    fn finish_counts_and_sets_status() {
        let mut result = RunResult::new(None);
        for (index, status) in [
            ObjectStatus::Succeeded,
            ObjectStatus::Failed,
            ObjectStatus::Skipped,
        ]
        .into_iter()
        .enumerate()
        {
            result.results.push(ObjectResult {
                index,
                value: None,
                status,
                detail: None,
                error: None,
            });
        }
        result.finish();
        assert_eq!(result.status, RunStatus::Partial);
        assert_eq!(
            (
                result.summary.total,
                result.summary.succeeded,
                result.summary.failed,
                result.summary.skipped
            ),
            (3, 1, 1, 1)
        );
    }
}
