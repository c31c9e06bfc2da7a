//! Protocol v1 output: the result document (DESIGN §3.2), serialize-only.
//!
//! The document accounts for every input object twice: `objects` (the object as received plus
//! the attributes the action added) and `results` (one outcome each, same order). This module
//! defines the shapes and how an enriched object is written; it does not decide outcomes (see
//! `action::context`) and does not write stdout (see `output`).

use std::borrow::Cow;
use std::io::Write;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::ser::Error as _;
use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::envelope::{AttributesAt, PROTOCOL, RawObject};
use crate::error::{Failure, WarningCode};

/// The output document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunResult {
    pub protocol: u32,
    /// The action that ran; null when the envelope named none that exists.
    pub action: Option<ActionIdent>,
    pub status: RunStatus,
    pub summary: Summary,
    /// Every input object, in input order, with added attributes appended to `attributes`.
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

    /// Writes the document compactly with serde's writer, item by item into `out`, so that
    /// the document is never held as one text.
    pub fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        serde_json::to_writer(out, self).map_err(std::io::Error::from)
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
    /// Boxed: most objects have none, and 50,000 results are held while the document is
    /// written, at the run's peak memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<Failure>>,
}

/// A non-fatal remark about the run (an unknown config key, TLS verification off).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Warning {
    pub code: WarningCode,
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

impl OutputObject {
    /// Appends the object's JSON to `text`: the object as received, with `added` appended to
    /// its `attributes` list (made when absent or null). The attributes are spliced into the
    /// text: the rest of the object is copied byte for byte, and no JSON tree is built.
    fn render_into(&self, text: &mut Vec<u8>) -> Result<(), String> {
        let raw = self.raw.get();
        if self.added.is_empty() {
            text.extend_from_slice(raw.as_bytes());
            return Ok(());
        }
        let (before, list_open, list_close, after) = match Splice::find(&self.raw)? {
            Splice::NewKey { close, comma } => (
                &raw[..close],
                if comma {
                    r#","attributes":["#
                } else {
                    r#""attributes":["#
                },
                "]",
                &raw[close..],
            ),
            Splice::ReplaceNull { start, end } => (&raw[..start], "[", "]", &raw[end..]),
            Splice::Append { close, comma } => (
                &raw[..close],
                if comma { "," } else { "" },
                "",
                &raw[close..],
            ),
        };
        text.extend_from_slice(before.as_bytes());
        text.extend_from_slice(list_open.as_bytes());
        for (index, attribute) in self.added.iter().enumerate() {
            if index > 0 {
                text.push(b',');
            }
            serde_json::to_writer(&mut *text, attribute).map_err(|err| err.to_string())?;
        }
        text.extend_from_slice(list_close.as_bytes());
        text.extend_from_slice(after.as_bytes());
        Ok(())
    }
}

/// Where added attributes go in an object's text (byte offsets into it).
enum Splice {
    /// No `attributes` key: a new last key before the object's closing brace at `close`.
    NewKey { close: usize, comma: bool },
    /// `"attributes": null`: the `null` between `start` and `end` becomes a list.
    ReplaceNull { start: usize, end: usize },
    /// A list: appended before its closing bracket at `close`.
    Append { close: usize, comma: bool },
}

impl Splice {
    fn find(object: &RawObject) -> Result<Self, String> {
        let raw = object.get();
        let AttributesAt::Value { start, end } = object.attributes_at()? else {
            let close = raw
                .rfind('}')
                .ok_or("an enriched object must be a JSON object")?;
            let open = raw
                .find('{')
                .ok_or("an enriched object must be a JSON object")?;
            let comma = !raw[open + 1..close].trim().is_empty();
            return Ok(Self::NewKey { close, comma });
        };
        let list = &raw[start..end];
        if list == "null" {
            Ok(Self::ReplaceNull { start, end })
        } else if list.starts_with('[') && list.ends_with(']') {
            let comma = !list[1..list.len() - 1].trim().is_empty();
            Ok(Self::Append {
                close: end - 1,
                comma,
            })
        } else {
            Err("an enriched object's attributes must be a list".into())
        }
    }
}

impl Serialize for OutputObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.added.is_empty() {
            // Untouched objects are copied through byte for byte.
            return self.raw.serialize(serializer);
        }
        let mut text = Vec::new();
        self.render_into(&mut text).map_err(S::Error::custom)?;
        let text = String::from_utf8(text).map_err(S::Error::custom)?;
        RawValue::from_string(text)
            .map_err(S::Error::custom)?
            .serialize(serializer)
    }
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

    /// A document with every field set and objects of every shape.
    fn full_document() -> RunResult {
        let mut result = RunResult::new(Some(ActionIdent {
            id: 2,
            name: "sentinelone-mitigate-threats".into(),
        }));
        let shapes = [
            r#"{"id": 1, "value": "a\"b", "attributes": [{"name": "S", "value": "H"}]}"#,
            r#"{"value": "x", "attributes": null}"#,
            r#"{ "value": "y" }"#,
            r#"{"attributes": [ ]}"#,
            r#"{}"#,
            r#"42"#,
        ];
        for index in 0..2_000 {
            let shape = shapes[index % shapes.len()];
            let added = if shape == "42" || index % 7 == 0 {
                Vec::new()
            } else {
                vec![
                    AddedAttribute::new("Computers Affected by mitigation", index.to_string()),
                    AddedAttribute::new("n\u{e9}e \"q\"", "\u{1F600}"),
                ]
            };
            result.objects.push(OutputObject {
                raw: raw(shape),
                added,
            });
            result.results.push(ObjectResult {
                index,
                value: (index % 3 != 0).then(|| format!("v{index}")),
                status: ObjectStatus::Succeeded,
                detail: Some("done".into()),
                error: (index % 5 == 0).then(|| Box::new(Failure::internal("e"))),
            });
        }
        result.produced.push(serde_json::json!({"value": "p"}));
        result.records.push(serde_json::json!({"r": [1, 2]}));
        result
            .errors
            .push(Failure::internal("run error").with_field("config"));
        result.warnings.push(Warning {
            code: WarningCode::ConfigUnknown,
            message: "m".into(),
            field: None,
        });
        result.plan = Some(vec![PlannedRequest {
            method: "POST".into(),
            path: "/p".into(),
            query: vec![("a".into(), "b".into())],
            body: Some(serde_json::json!({"k": null})),
            objects: vec![0, 1],
        }]);
        result.state = Some(serde_json::json!({"since": "t"}));
        result.metrics.http_requests = 3;
        result.finish();
        result
    }

    #[test]
    fn written_document_is_byte_for_byte_what_serde_writes() {
        for result in [RunResult::new(None), full_document()] {
            let mut written = Vec::new();
            result.write_json(&mut written).unwrap();
            let expected = serde_json::to_string(&result).unwrap();
            assert_eq!(String::from_utf8(written).unwrap(), expected);
        }
    }

    #[test]
    fn an_object_that_cannot_take_attributes_fails_the_write() {
        let mut result = RunResult::new(None);
        result.objects.push(OutputObject {
            raw: raw(r#"{"attributes": "x"}"#),
            added: vec![AddedAttribute::new("a", "1")],
        });
        assert!(result.write_json(&mut Vec::new()).is_err());
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
