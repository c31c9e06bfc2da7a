//! Protocol v1 input: the envelope exactly as it arrives on stdin (stage 1 of 2).
//!
//! These types mirror the wire and accept the shapes the ThreatQ REST API produces (`type` as a
//! string or `{"name": …}`, tags and sources as strings or objects, two date formats). Each
//! object is kept as its raw JSON text so that every field — understood or not — is written back
//! unchanged; a typed [`ObjectView`] is read from it for the fields actions use, and a malformed
//! object fails only itself. Checking the envelope against an action's manifest is stage 2
//! (`request`).
//!
//! One reader, one set of rules: serde reads the envelope, and the whole text must also be JSON
//! that serde reads as a `serde_json::Value` — within serde's nesting limit (127 levels) and
//! with numbers an `f64` holds, nothing after it but white space. The objects themselves are
//! taken as raw slices (`RawValue`), which serde skips without counting their depth; without
//! the second rule an object nested 5,000 levels deep would be accepted and echoed back in a
//! result that common JSON readers cannot read.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Visitor};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::cores;
use crate::error::{ErrorCode, Failure};

/// The protocol major this build speaks.
pub(crate) const PROTOCOL: u32 = 1;

/// The input document.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct Envelope {
    /// Protocol major version (1). `"1"`/`"1.0"` are accepted too.
    #[serde(default)]
    pub protocol: Option<ProtocolVersion>,
    /// The action: the manifest's numeric `id` or its `name` slug.
    pub action: ActionRef,
    #[serde(default)]
    pub run: RunInfo,
    /// Parameter values keyed by manifest parameter `name`.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// The data collection's objects, as the ThreatQ REST API shapes them.
    #[serde(default)]
    pub objects: Vec<InputObject>,
    /// The checkpoint a previous run of an ingest action returned.
    #[serde(default)]
    pub state: Option<Value>,
}

/// `protocol`: a number or a `"MAJOR[.MINOR]"` string.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum ProtocolVersion {
    Number(f64),
    Text(String),
}

impl ProtocolVersion {
    /// The major version, if the value is readable.
    pub(crate) fn major(&self) -> Option<u32> {
        match self {
            Self::Number(number) if *number >= 0.0 && number.is_finite() => {
                Some(number.trunc() as u32)
            }
            Self::Number(_) => None,
            Self::Text(text) => text.trim().split('.').next()?.parse().ok(),
        }
    }
}

/// `action`: numeric ID or name slug.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ActionRef {
    Id(u64),
    Name(String),
}

impl std::fmt::Display for ActionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// `run`: how this run should behave.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub(crate) struct RunInfo {
    /// The orchestrator's run identifier, echoed in logs.
    #[serde(default)]
    pub id: Option<String>,
    /// Plan the writes without sending them.
    #[serde(default)]
    pub dry_run: bool,
    /// Stop starting new requests after this many seconds.
    #[serde(default)]
    pub deadline_seconds: Option<f64>,
    /// Pins the clock (RFC 3339), for reproducible expiry dates and time windows.
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
}

/// The envelope as read: [`Envelope`] with each object borrowed from the text, so that objects
/// can share the text instead of copying it.
#[derive(Deserialize)]
struct WireEnvelope<'a> {
    #[serde(default)]
    protocol: Option<ProtocolVersion>,
    action: ActionRef,
    #[serde(default)]
    run: RunInfo,
    #[serde(default)]
    config: Map<String, Value>,
    #[serde(borrow, default)]
    objects: Vec<&'a RawValue>,
    #[serde(default)]
    state: Option<Value>,
}

impl WireEnvelope<'_> {
    /// The envelope, with its objects read.
    fn with_objects(self, objects: Vec<InputObject>) -> Envelope {
        Envelope {
            protocol: self.protocol,
            action: self.action,
            run: self.run,
            config: self.config,
            objects,
            state: self.state,
        }
    }
}

/// Reads an envelope, naming the field of the first problem (`run.deadline_seconds`).
pub(crate) fn parse(text: &str) -> Result<Envelope, Failure> {
    parse_owned(text.to_string()).map_err(|(failure, _)| failure)
}

/// As [`parse`], keeping `text`: every object's raw JSON is a slice of it, so an envelope is
/// held once, not once as text and once as objects. A refused text is handed back with the
/// failure, so the caller can still account for the objects in it.
pub(crate) fn parse_owned(text: String) -> Result<Envelope, (Failure, String)> {
    let text = Arc::new(text);
    let read = read_wire(&text).map(|wire| {
        let objects = read_objects(&text, &wire.objects);
        wire.with_objects(objects)
    });
    read.map_err(|failure| {
        // Nothing holds the text any more: no object was made from it.
        let text = Arc::try_unwrap(text).unwrap_or_else(|shared| shared.as_ref().clone());
        (failure, text)
    })
}

/// The envelope read by serde, and the whole text checked as JSON serde reads
/// ([`check_json`]). A problem serde meets reading the envelope is reported first, naming its
/// field; the check's refusal (nesting, a number, trailing text) after it.
fn read_wire(text: &str) -> Result<WireEnvelope<'_>, Failure> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let wire = serde_path_to_error::deserialize::<_, WireEnvelope<'_>>(&mut deserializer)
        .map_err(|err| describe_at(err.path().to_string(), err.into_inner()))?;
    // Text after the envelope belongs to no field.
    deserializer
        .end()
        .map_err(|err| describe_at(".".to_string(), err))?;
    check_json(text)?;
    Ok(wire)
}

/// Checks that `text` is one JSON value that serde reads as a `serde_json::Value`, followed by
/// nothing but white space: serde's recursion limit (a 128th level is refused), numbers an
/// `f64` holds, valid strings. The envelope's typed reading skips its objects and unknown
/// fields without these limits; this walk applies them to every part of the text.
fn check_json(text: &str) -> Result<(), Failure> {
    serde_json::from_str::<ValueShape>(text)
        .map(|_| ())
        .map_err(|err| not_json(&err))
}

/// The failure for text that is not JSON serde reads.
fn not_json(err: &serde_json::Error) -> Failure {
    // serde_json names no error kind for this; its message is fixed ("recursion limit
    // exceeded at line L column C").
    let message = if err.to_string().starts_with("recursion limit exceeded") {
        format!(
            "The envelope is nested more than 127 levels deep, beyond what JSON readers accept: {err}"
        )
    } else {
        format!("The envelope is not valid JSON: {err}")
    };
    Failure::new(ErrorCode::InputInvalidValue, message).with_field("envelope")
}

/// Reads every object (see [`InputObject::new`]), on all cores for a large envelope: reading
/// 50,000 objects is a third of a run's own work, and nothing else runs while it happens.
fn read_objects(text: &Arc<String>, raws: &[&RawValue]) -> Vec<InputObject> {
    cores::map(raws, cores::OBJECTS_PER_THREAD, |raw| {
        InputObject::new(RawObject::within(text, raw.get()))
    })
}

/// The failure for `inner`, met at `path` of the envelope (`.` for the envelope itself).
fn describe_at(path: String, inner: serde_json::Error) -> Failure {
    if inner.is_syntax() || inner.is_eof() {
        not_json(&inner)
    } else if path == "." && inner.to_string().contains("`action`") {
        Failure::config_missing("action", "The envelope names no action (field action)")
    } else if path == "." {
        Failure::new(
            ErrorCode::InputInvalidValue,
            format!("The envelope is not valid: {inner}"),
        )
        .with_field("envelope")
    } else {
        let code = if path == "action" {
            ErrorCode::ConfigInvalid
        } else {
            ErrorCode::InputInvalidValue
        };
        Failure::new(
            code,
            format!("The envelope field {path} is not valid: {inner}"),
        )
        .with_field(path)
    }
}

/// An object's JSON text, exactly as received: a slice of the envelope's text, which every
/// object of the envelope shares.
#[derive(Debug, Clone)]
pub struct RawObject {
    text: Arc<String>,
    start: usize,
    end: usize,
}

/// Where an object's top-level `attributes` value lies in its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributesAt {
    /// The object has no `attributes` key.
    Absent,
    /// The value (a list, `null`, or anything else) is `text[start..end]`.
    Value { start: usize, end: usize },
}

impl AttributesAt {
    /// Where `value`, borrowed from `object`, lies in it.
    fn of(object: &str, value: Option<&RawValue>) -> Result<Self, String> {
        let Some(value) = value.map(RawValue::get) else {
            return Ok(Self::Absent);
        };
        (value.as_ptr() as usize)
            .checked_sub(object.as_ptr() as usize)
            .filter(|start| start + value.len() <= object.len())
            .map(|start| Self::Value {
                start,
                end: start + value.len(),
            })
            .ok_or_else(|| "the attributes are not part of the object text".to_string())
    }
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

impl RawObject {
    /// `slice` as a part of `text`; a copy of it when it is not one.
    fn within(text: &Arc<String>, slice: &str) -> Self {
        let start = (slice.as_ptr() as usize).checked_sub(text.as_ptr() as usize);
        let inside = |start: &usize| {
            text.get(*start..*start + slice.len())
                .is_some_and(|found| std::ptr::eq(found.as_ptr(), slice.as_ptr()))
        };
        match start.filter(inside) {
            Some(start) => Self {
                text: Arc::clone(text),
                start,
                end: start + slice.len(),
            },
            None => Self::from(slice.to_string()),
        }
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.text[self.start..self.end]
    }

    /// Where the object's top-level `attributes` value lies in [`RawObject::get`]'s text.
    pub fn attributes_at(&self) -> Result<AttributesAt, String> {
        let raw = self.get();
        let span: AttributesSpan<'_> = serde_json::from_str(raw).map_err(|err| err.to_string())?;
        AttributesAt::of(raw, span.attributes)
    }
}

impl From<String> for RawObject {
    fn from(text: String) -> Self {
        let end = text.len();
        Self {
            text: Arc::new(text),
            start: 0,
            end,
        }
    }
}

impl Serialize for RawObject {
    /// Written as it was received, byte for byte.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(self.get()).map_err(S::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// One input object: its raw JSON (written back unchanged) and the fields every run reads.
///
/// The other fields actions read ([`ObjectView`]) are parsed from the raw text when asked for,
/// not kept: as owned strings and lists they took more memory than the object's text itself.
#[derive(Debug)]
pub struct InputObject {
    raw: RawObject,
    head: Result<ObjectHead, String>,
}

impl InputObject {
    /// Reads the object's whole view once and keeps its head, so a malformed object fails
    /// here, as early as any.
    pub fn new(raw: RawObject) -> Self {
        let text = raw.get();
        let head = if text.trim_start().starts_with('{') {
            serde_json::from_str::<ObjectView>(text)
                .map(ObjectView::into_head)
                .map_err(|err| err.to_string())
        } else {
            Err("the object is not a JSON object".to_string())
        };
        Self { raw, head }
    }

    /// The object exactly as received.
    pub fn raw(&self) -> &RawObject {
        &self.raw
    }

    pub fn into_raw(self) -> RawObject {
        self.raw
    }

    /// Id, type and value, or why the object could not be read.
    pub fn head(&self) -> Result<&ObjectHead, &str> {
        self.head.as_ref().map_err(String::as_str)
    }

    /// Every field actions read, parsed from the raw text on each call (the object was
    /// checked to read when the envelope was parsed).
    pub fn view(&self) -> Result<ObjectView, String> {
        self.head()?;
        serde_json::from_str(self.raw.get()).map_err(|err| err.to_string())
    }
}

impl<'de> Deserialize<'de> for InputObject {
    /// An object read on its own (not through [`parse`]) keeps its own copy of its text.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(Self::new(RawObject::from(raw.get().to_string())))
    }
}

/// The fields of an input object that every run reads: enough to validate it and group it
/// into targets.
#[derive(Debug, Clone, Default)]
pub struct ObjectHead {
    pub id: Option<ObjectId>,
    pub kind: Option<Named>,
    pub value: Option<String>,
}

/// Any JSON value that a [`Value`] reads, checked and not kept. Unlike `IgnoredAny` (and
/// `RawValue`), every list and map is entered through serde's `deserialize_any`, which counts
/// nesting against serde's recursion limit, and numbers are read, so a number no `f64` holds
/// is refused as `Value` refuses it. [`check_json`] walks the whole envelope with it.
#[derive(Debug, Default)]
pub(crate) struct ValueShape;

impl<'de> Deserialize<'de> for ValueShape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyVisitor;
        impl<'de> Visitor<'de> for AnyVisitor {
            type Value = ValueShape;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("any JSON value")
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ValueShape, E> {
                Ok(ValueShape)
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<ValueShape, E> {
                Ok(ValueShape)
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<ValueShape, E> {
                Ok(ValueShape)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ValueShape, E> {
                Ok(ValueShape)
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<ValueShape, E> {
                Ok(ValueShape)
            }

            fn visit_unit<E: de::Error>(self) -> Result<ValueShape, E> {
                Ok(ValueShape)
            }

            fn visit_none<E: de::Error>(self) -> Result<ValueShape, E> {
                Ok(ValueShape)
            }

            fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<ValueShape, D::Error> {
                ValueShape::deserialize(inner)
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<ValueShape, A::Error> {
                while seq.next_element::<ValueShape>()?.is_some() {}
                Ok(ValueShape)
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<ValueShape, A::Error> {
                // A key is a string whatever it says.
                while map.next_entry::<de::IgnoredAny, ValueShape>()?.is_some() {}
                Ok(ValueShape)
            }
        }
        deserializer.deserialize_any(AnyVisitor)
    }
}

impl JsonSchema for InputObject {
    fn schema_name() -> Cow<'static, str> {
        "InputObject".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        ObjectView::json_schema(generator)
    }
}

/// The fields of a ThreatQ object that actions read. Every other field is kept in the raw text.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct ObjectView {
    /// ThreatQ's id of the object.
    #[serde(default)]
    pub id: Option<ObjectId>,
    /// Indicator type: `"SHA-1"` or `{"name": "SHA-1"}`.
    #[serde(rename = "type", default)]
    pub kind: Option<Named>,
    /// The indicator value.
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `"YYYY-MM-DD HH:MM:SS"` (UTC) or RFC 3339.
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tags: Vec<Named>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub sources: Vec<Named>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub attributes: Vec<Attribute>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub adversaries: Vec<Named>,
}

impl ObjectView {
    fn into_head(self) -> ObjectHead {
        ObjectHead {
            id: self.id,
            kind: self.kind,
            value: self.value,
        }
    }

    /// The value of the first attribute called `name`, as text.
    pub fn attribute(&self, name: &str) -> Option<String> {
        self.attributes
            .iter()
            .find(|attribute| attribute.name == name)
            .map(|attribute| attribute.value_text())
    }

    /// `created_at` as a UTC time, when it is in one of the two accepted formats.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at.as_deref().and_then(parse_threatq_time)
    }
}

/// An object id: ThreatQ uses numbers; strings are accepted.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum ObjectId {
    Number(u64),
    Text(String),
}

/// Read by kind of JSON value rather than as an untagged enum, so that a refused id is
/// reported as what it is and what was expected ("invalid type: floating point `1.5`, expected
/// a non-negative whole number or a string"), not as "did not match any variant".
impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = ObjectId;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a non-negative whole number or a string")
            }

            fn visit_u64<E: de::Error>(self, id: u64) -> Result<ObjectId, E> {
                Ok(ObjectId::Number(id))
            }

            fn visit_i64<E: de::Error>(self, id: i64) -> Result<ObjectId, E> {
                u64::try_from(id)
                    .map(ObjectId::Number)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(id), &self))
            }

            fn visit_str<E: de::Error>(self, id: &str) -> Result<ObjectId, E> {
                Ok(ObjectId::Text(id.to_owned()))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(id) => write!(f, "{id}"),
            Self::Text(id) => f.write_str(id),
        }
    }
}

/// A name given as a string or as an object with a `name` field.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum Named {
    Object { name: String },
    Text(String),
}

/// Read by kind of JSON value, as [`ObjectId`], for the same plain error messages.
impl<'de> Deserialize<'de> for Named {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The object form; its other fields (`id`, `tlp`, …) are left in the raw text.
        #[derive(Deserialize)]
        struct NameField {
            name: String,
        }

        struct NamedVisitor;
        impl<'de> Visitor<'de> for NamedVisitor {
            type Value = Named;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string or an object with a string `name`")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Named, E> {
                Ok(Named::Text(name.to_owned()))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Named, A::Error> {
                NameField::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|field| Named::Object { name: field.name })
            }
        }
        deserializer.deserialize_any(NamedVisitor)
    }
}

impl Named {
    pub fn name(&self) -> &str {
        match self {
            Self::Text(name) | Self::Object { name } => name,
        }
    }
}

/// A ThreatQ attribute: `{name, value}` (other fields kept only in the raw object).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema, serde::Serialize)]
pub struct Attribute {
    pub name: String,
    #[serde(default)]
    pub value: Value,
}

impl Attribute {
    /// The value as text: strings as they are, other JSON as written.
    pub fn value_text(&self) -> String {
        match &self.value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads ThreatQ's `YYYY-MM-DD HH:MM:SS` (UTC) or an RFC 3339 time.
pub(crate) fn parse_threatq_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_threatq_shapes_and_keeps_raw_objects() {
        let text = r#"{"action": 2, "config": {}, "objects": [
            {"id": 1, "type": {"name": "SHA-1", "id": 9}, "value": "abc", "score": 7,
             "tags": [{"name": "t1"}, "t2"], "attributes": [{"name": "Severity", "value": "High"}]},
            {"type": "FQDN", "value": "x.example", "tags": null},
            42
        ]}"#;
        let envelope = parse(text).unwrap();
        assert!(matches!(envelope.action, ActionRef::Id(2)));
        assert_eq!(
            envelope.objects[0].head().unwrap().value.as_deref(),
            Some("abc")
        );
        let first = envelope.objects[0].view().unwrap();
        assert_eq!(first.kind.as_ref().unwrap().name(), "SHA-1");
        assert_eq!(
            first.tags.iter().map(Named::name).collect::<Vec<_>>(),
            ["t1", "t2"]
        );
        assert_eq!(first.attribute("Severity").as_deref(), Some("High"));
        assert!(envelope.objects[0].raw().get().contains(r#""score": 7"#));
        assert!(envelope.objects[1].view().unwrap().tags.is_empty());
        assert!(envelope.objects[2].head().is_err());
        assert!(envelope.objects[2].view().is_err());
    }

    #[test]
    fn an_attribute_value_no_f64_holds_fails_the_object() {
        let text = r#"{"attributes": [{"name": "a", "value": [1e400]}]}"#;
        let object = InputObject::new(RawObject::from(text.to_string()));
        assert!(object.head().unwrap_err().contains("out of range"));
    }

    /// An envelope with objects, config and state, and text that looks like a boundary between
    /// objects inside strings.
    fn envelope() -> String {
        let objects: Vec<String> = (0..8)
            .map(|index| match index % 4 {
                0 => format!(r#"{{"type": "SHA-1", "value": "a\"b{index}", "tags": ["t", {{"name": "u"}}]}}"#),
                1 => format!(r#"{{ "description": "}}, {{ not a boundary {index}" }}"#),
                2 => format!(
                    r#"{{"attributes": [{{"name": "n", "value": [1, {{"v": "}},{{"}}]}}, {{"name": "m"}},
                    {{"name": "o", "value": {index}}}]}}"#
                ),
                _ => index.to_string(),
            })
            .collect();
        format!(
            r#"{{"protocol": 1, "action": "x", "config": {{"k": "objects]"}},
            "objects": [{}], "state": {{"s": [1]}}}}"#,
            objects.join(" ,\n ")
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// One set of rules: an envelope is accepted exactly when serde reads its text as a
        /// `Value` and as the typed envelope; a refused one is handed back whole.
        #[test]
        fn an_envelope_is_accepted_when_serde_reads_it(
            at in proptest::prelude::any::<proptest::sample::Index>(),
            change in 0usize..3,
            byte in proptest::sample::select(b"{}[],:\"\\ 1an".to_vec()),
        ) {
            let mut text = envelope().into_bytes();
            let at = at.index(text.len());
            match change {
                0 => { text.remove(at); }
                1 => text.insert(at, byte),
                _ => text[at] = byte,
            }
            let Ok(text) = String::from_utf8(text) else { return Ok(()) };
            let serde_reads = serde_json::from_str::<Value>(&text).is_ok()
                && serde_json::from_str::<WireEnvelope<'_>>(&text).is_ok();
            match parse_owned(text.clone()) {
                Ok(_) => proptest::prop_assert!(serde_reads, "{}", text),
                Err((failure, back)) => {
                    proptest::prop_assert!(!serde_reads, "{}", text);
                    proptest::prop_assert_ne!(failure.code, ErrorCode::Internal, "{}", text);
                    proptest::prop_assert_eq!(back, text);
                }
            }
        }
    }

    /// `inner` nested in `levels` lists.
    fn nested(levels: usize, inner: &str) -> String {
        format!("{}{inner}{}", "[".repeat(levels), "]".repeat(levels))
    }

    /// Nesting beyond serde's limit is refused wherever it is: in an object, in config, in
    /// state, under a key nobody reads. At the limit, it is accepted.
    #[test]
    fn nesting_beyond_serdes_limit_is_refused_everywhere() {
        // The deepest list of each envelope sits `outer` levels down, the list itself included.
        let places: [(&str, usize); 4] = [
            (r#"{"action": 1, "objects": [{"x": @}]}"#, 3),
            (r#"{"action": 1, "config": {"x": @}}"#, 2),
            (r#"{"action": 1, "state": @}"#, 1),
            (r#"{"action": 1, "run": {"x": @}}"#, 2),
        ];
        for (template, outer) in places {
            for levels in [5_000, 128 - outer, 127 - outer] {
                let text = template.replace('@', &nested(levels, "1"));
                let serde_reads = serde_json::from_str::<Value>(&text).is_ok();
                assert_eq!(serde_reads, outer + levels <= 127, "{template} {levels}");
                match parse(&text) {
                    Ok(_) => assert!(serde_reads, "accepted: {template} {levels}"),
                    Err(failure) => {
                        assert!(!serde_reads, "refused: {template} {levels}: {failure:?}");
                        assert_eq!(failure.code, ErrorCode::InputInvalidValue);
                        assert_eq!(failure.field.as_deref(), Some("envelope"));
                        assert!(
                            failure.message.contains("127 levels"),
                            "{}",
                            failure.message
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn trailing_text_is_refused_as_not_json() {
        for text in [
            r#"{"action": 1} trailing"#,
            r#"{"action": 1}{"action": 2}"#,
            r#"{"action": {}} x"#,
        ] {
            let (failure, back) = parse_owned(text.to_string()).unwrap_err();
            assert_ne!(failure.code, ErrorCode::Internal, "{text}");
            assert_eq!(back, text);
        }
        let failure = parse(r#"{"action": 1} trailing"#).unwrap_err();
        assert_eq!(failure.field.as_deref(), Some("envelope"));
        assert!(failure.message.contains("trailing"), "{}", failure.message);
        // White space after the envelope is no trailing text.
        assert!(parse("{\"action\": 1}\n \t").is_ok());
    }

    #[test]
    fn a_malformed_object_fails_only_itself() {
        let envelope =
            parse(r#"{"action": "x", "objects": [{"value": 5}, {"value": "ok"}]}"#).unwrap();
        assert!(envelope.objects[0].head().is_err());
        assert!(envelope.objects[0].view().is_err());
        assert!(envelope.objects[1].head().is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse(r#"{"action": 1, "run": {"deadline_seconds": "soon"}}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("run.deadline_seconds"));
        let err = parse("{not json").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("envelope"));
        assert_eq!(err.code, ErrorCode::InputInvalidValue);
        let err = parse(r#"{"config": {}}"#).unwrap_err();
        assert!(err.message.contains("action"), "{}", err.message);
    }

    #[test]
    fn protocol_major_from_number_or_text() {
        assert_eq!(ProtocolVersion::Number(1.0).major(), Some(1));
        assert_eq!(ProtocolVersion::Text("2.1".into()).major(), Some(2));
        assert_eq!(ProtocolVersion::Text("x".into()).major(), None);
    }

    #[test]
    fn threatq_times() {
        let expected = "2025-08-06T18:09:05Z";
        for text in [
            "2025-08-06 18:09:05",
            "2025-08-06T18:09:05Z",
            "2025-08-06T20:09:05+02:00",
        ] {
            let time = parse_threatq_time(text).unwrap();
            assert_eq!(
                time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                expected
            );
        }
        assert!(parse_threatq_time("yesterday").is_none());
    }
}
