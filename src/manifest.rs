//! Action manifests: the typed form of `manifests/<name>.json`, their self-consistency rules, and
//! the validation of one configuration value against one parameter.
//!
//! Manifests are the single source of truth for an action's configuration page: labels, types,
//! options, defaults and limits. Each entry of the action table (`action::ACTIONS`) embeds its
//! file, and [`all`] reads them from there; `spec` prints them with the JSON Schema of
//! [`Manifest`]. This module does not run actions, and it does not read envelopes (see
//! `request`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use crate::connection::CONNECTION_PARAMS;
use crate::error::Failure;
use crate::indicator::IndicatorType;

/// The manifest format version this build reads.
pub const MANIFEST_VERSION: u32 = 1;

/// Hard upper bound of `objects_per_run`, and of the objects one envelope may hold.
pub const MAX_OBJECTS_PER_RUN: u64 = 50_000;

/// Name of the parameter that bounds how many objects one run handles.
pub const OBJECTS_PER_RUN: &str = "objects_per_run";

/// The manifest of every action of the table, parsed once.
static MANIFESTS: std::sync::LazyLock<Vec<Manifest>> = std::sync::LazyLock::new(|| {
    crate::action::ACTIONS
        .iter()
        .map(|entry| match Manifest::parse(entry.manifest) {
            Ok(manifest) if manifest.name == entry.name => manifest,
            Ok(manifest) => panic!("manifests/{}.json is named {}", entry.name, manifest.name),
            // The test suite parses every embedded manifest, so this cannot ship broken.
            Err(err) => panic!("manifests/{}.json is invalid: {err}", entry.name),
        })
        .collect()
});

/// Every embedded manifest, in action ID order.
pub fn all() -> &'static [Manifest] {
    &MANIFESTS
}

/// One action's manifest.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Path of the JSON Schema this file follows (for editors); ignored by the runner.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Always 1 for this format.
    pub manifest_version: u32,
    /// The numeric action ID shown on ThreatQ's integration page.
    pub id: u32,
    /// Stable slug, e.g. `sentinelone-mitigate-threats`; accepted in the envelope's `action`.
    pub name: String,
    /// Title shown to ThreatQ users.
    pub label: String,
    /// Semantic version of this action's configuration contract.
    pub version: String,
    /// What the action does, for the integration page.
    pub description: String,
    /// What kind of work the action does.
    pub kind: ActionKind,
    /// Sumo Logic SentinelOne action(s) this action covers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<String>,
    /// Indicator types the action works on; other objects are reported `skipped`.
    pub accepts: Vec<IndicatorType>,
    /// The configuration page, in display order.
    pub params: Vec<Param>,
    /// What the action adds to objects.
    pub outputs: Outputs,
}

/// What kind of work an action does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Changes SentinelOne to contain a threat (block, mitigate, isolate).
    Containment,
    /// Reads SentinelOne to add attributes to objects.
    Enrichment,
    /// Sends ThreatQ objects to SentinelOne.
    Export,
    /// Lists SentinelOne records.
    Listing,
    /// Brings new objects from SentinelOne into ThreatQ, with a checkpoint.
    Ingest,
    /// Changes the state of SentinelOne records (verdicts, statuses).
    Notification,
}

/// One configuration parameter.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// Key in the envelope's `config`, snake_case, unique in the manifest.
    pub name: String,
    /// Label on the configuration page.
    pub label: String,
    /// Help text under the field.
    pub description: String,
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// A required parameter without a value is `config.missing`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// The value is masked in the UI and never printed by the runner.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret: bool,
    /// Value used when the envelope gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Choices of a `select` or `multiselect`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<ParamOption>,
    /// Smallest accepted number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest accepted number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Longest accepted text, in bytes of UTF-8; for a `string_list`, of its items joined
    /// with commas (the form they take in a request URL). Text that goes into request URLs has
    /// one, so that no configuration can make a URL longer than the HTTP client accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// `connection` for the parameters every action shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The type of a parameter's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// One line of text.
    String,
    /// Several lines of text.
    Text,
    /// Line-separated values (commas also separate); given as a string or an array.
    StringList,
    Integer,
    Number,
    Boolean,
    /// One of `options`, given by value or label.
    Select,
    /// Any of `options`, as an array or a line-separated string.
    Multiselect,
}

/// One choice of a select parameter.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamOption {
    /// The value the action receives (a string or a number).
    pub value: Value,
    /// What the configuration page shows.
    pub label: String,
}

/// What an action writes back.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    /// Attributes added to input (or produced) objects.
    #[serde(default)]
    pub attributes: Vec<OutputAttribute>,
}

/// One attribute an action may add.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputAttribute {
    pub name: String,
    pub description: String,
}

impl Manifest {
    /// Parses and checks a manifest file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let manifest: Manifest = serde_json::from_str(text).map_err(|err| err.to_string())?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|param| param.name == name)
    }

    /// Rules a manifest must follow beyond its schema; each broken rule is one sentence.
    pub fn check(&self) -> Result<(), String> {
        let fail = |message: String| Err(format!("manifest {}: {message}", self.name));
        if self.manifest_version != MANIFEST_VERSION {
            return fail(format!("manifest_version must be {MANIFEST_VERSION}"));
        }
        let slug_ok = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !slug_ok {
            return fail("name must be a lower-case slug".into());
        }
        for (index, param) in self.params.iter().enumerate() {
            if self.params[..index]
                .iter()
                .any(|earlier| earlier.name == param.name)
            {
                return fail(format!("parameter {} is listed twice", param.name));
            }
            let has_options = matches!(param.kind, ParamType::Select | ParamType::Multiselect);
            if has_options == param.options.is_empty() {
                return fail(format!(
                    "parameter {}: options are required for select types and only for them",
                    param.name
                ));
            }
            let is_text = matches!(
                param.kind,
                ParamType::String | ParamType::Text | ParamType::StringList
            );
            if param.max_length.is_some() && !is_text {
                return fail(format!(
                    "parameter {}: max_length applies to text and string lists only",
                    param.name
                ));
            }
            if param.max_length == Some(0) {
                return fail(format!(
                    "parameter {}: max_length must be positive",
                    param.name
                ));
            }
            if param.secret && param.default.is_some() {
                return fail(format!(
                    "secret parameter {} must not have a default",
                    param.name
                ));
            }
            if let Some(default) = &param.default {
                param.normalise(default).map_err(|err| {
                    format!(
                        "manifest {}: default of {}: {}",
                        self.name, param.name, err.message
                    )
                })?;
            }
        }
        for name in CONNECTION_PARAMS {
            match self.param(name) {
                Some(param) if param.group.as_deref() == Some("connection") => {}
                _ => {
                    return fail(format!(
                        "connection parameter {name} is missing or not in group connection"
                    ));
                }
            }
        }
        match self.param(OBJECTS_PER_RUN) {
            Some(param)
                if param.kind == ParamType::Integer
                    && param.max == Some(MAX_OBJECTS_PER_RUN as f64)
                    && param.default.is_some() => {}
            _ => {
                return fail(format!(
                    "{OBJECTS_PER_RUN} must be an integer with a default and max {MAX_OBJECTS_PER_RUN}"
                ));
            }
        }
        Ok(())
    }
}

impl Param {
    fn field(&self) -> String {
        format!("config.{}", self.name)
    }

    /// Checks one value against this parameter and returns its normal form: trimmed strings,
    /// string lists as arrays, selects as their option value, numbers as numbers. An empty
    /// value (blank text, an empty list) counts as missing, so the default applies to it too.
    /// Returns `Ok(None)` when the value is missing or empty, the parameter is optional and it
    /// has no default.
    pub fn validate(&self, value: Option<&Value>) -> Result<Option<Value>, Failure> {
        let given = match value {
            Some(Value::Null) | None => None,
            Some(value) => self.normalise(value)?,
        };
        // A field cleared on the configuration page arrives as "" or []: the action's typed
        // parameters rely on the default then as much as when the key is absent.
        let normal = match (given, &self.default) {
            (None, Some(default)) => self.normalise(default)?,
            (given, _) => given,
        };
        if normal.is_none() && self.required {
            return Err(Failure::config_missing(
                self.field(),
                format!("{} ({}) is required", self.label, self.name),
            ));
        }
        Ok(normal)
    }

    /// The normal form of a present value; `None` when it is empty.
    fn normalise(&self, value: &Value) -> Result<Option<Value>, Failure> {
        let invalid = |what: String| {
            Failure::config_invalid(
                self.field(),
                format!("{} ({}) {what}", self.label, self.name),
            )
        };
        // No value of another JSON type is turned into text or a flag: a number where a host
        // name belongs is a mistake to report, not an address to connect to.
        match self.kind {
            ParamType::String | ParamType::Text => {
                let Value::String(text) = value else {
                    return Err(invalid("must be text".into()));
                };
                let text = text.trim();
                if text.is_empty() {
                    return Ok(None);
                }
                self.check_length(text.len()).map_err(invalid)?;
                // Host names and the token have rules of their own (they reach the network).
                crate::connection::check_text(&self.name, text)
                    .map_err(|reason| invalid(format!("is not usable: {reason}")))?;
                Ok(Some(Value::String(text.to_string())))
            }
            ParamType::StringList => {
                let items = list_items(value).ok_or_else(|| {
                    invalid(
                        "must be a line-separated list of values, or an array of strings".into(),
                    )
                })?;
                // Joined with commas, as the items go into URLs.
                let joined =
                    items.iter().map(String::len).sum::<usize>() + items.len().saturating_sub(1);
                self.check_length(joined).map_err(invalid)?;
                let items: Vec<Value> = items.into_iter().map(Value::String).collect();
                Ok((!items.is_empty()).then_some(Value::Array(items)))
            }
            ParamType::Integer | ParamType::Number => {
                let number = match value {
                    Value::Number(number) => number.as_f64(),
                    Value::String(text) if !text.trim().is_empty() => {
                        text.trim().parse::<f64>().ok()
                    }
                    Value::String(_) => return Ok(None),
                    _ => None,
                };
                let Some(number) = number.filter(|n| n.is_finite()) else {
                    return Err(invalid("must be a number".into()));
                };
                if self.kind == ParamType::Integer && number.fract() != 0.0 {
                    return Err(invalid("must be a whole number".into()));
                }
                if let Some(min) = self.min.filter(|min| number < *min) {
                    return Err(invalid(format!("must be at least {min}")));
                }
                if let Some(max) = self.max.filter(|max| number > *max) {
                    return Err(invalid(format!("must be at most {max}")));
                }
                let number = if self.kind == ParamType::Integer {
                    Number::from(number as i64)
                } else {
                    Number::from_f64(number).ok_or_else(|| invalid("must be a number".into()))?
                };
                Ok(Some(Value::Number(number)))
            }
            ParamType::Boolean => {
                let flag = match value {
                    Value::Bool(flag) => Some(*flag),
                    Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                        "true" | "yes" | "1" | "on" => Some(true),
                        "false" | "no" | "0" | "off" => Some(false),
                        "" => return Ok(None),
                        _ => None,
                    },
                    // ThreatQ's configuration page sends text; a JSON number is a wrong type.
                    _ => None,
                };
                flag.map(|flag| Some(Value::Bool(flag)))
                    .ok_or_else(|| invalid("must be true or false".into()))
            }
            ParamType::Select => {
                if value.as_str().is_some_and(|text| text.trim().is_empty()) {
                    return Ok(None);
                }
                self.option_value(value)
                    .map(Some)
                    .ok_or_else(|| invalid(self.options_sentence(value)))
            }
            ParamType::Multiselect => {
                let items: Vec<Value> = match value {
                    Value::Array(items) => items.clone(),
                    Value::String(_) => list_items(value)
                        .unwrap_or_default()
                        .into_iter()
                        .map(Value::String)
                        .collect(),
                    other => vec![other.clone()],
                };
                let mut chosen: Vec<Value> = Vec::new();
                for item in &items {
                    let option = self
                        .option_value(item)
                        .ok_or_else(|| invalid(self.options_sentence(item)))?;
                    if !chosen.contains(&option) {
                        chosen.push(option);
                    }
                }
                Ok((!chosen.is_empty()).then_some(Value::Array(chosen)))
            }
        }
    }

    /// `Err(message)` when text of `length` bytes is longer than `max_length`.
    fn check_length(&self, length: usize) -> Result<(), String> {
        match self.max_length {
            Some(max) if length > max as usize => Err(format!(
                "is {length} bytes long; at most {max} are accepted (it is sent in request URLs)"
            )),
            _ => Ok(()),
        }
    }

    /// The option whose value or label matches `given`: text matches a value's text or a label
    /// (case-insensitive), a number matches only a numeric option value (7 and 7.0 alike).
    fn option_value(&self, given: &Value) -> Option<Value> {
        let given_text = match given {
            Value::String(text) => text.trim().to_string(),
            Value::Number(number) => {
                let number = number.as_f64()?;
                return self
                    .options
                    .iter()
                    .find(|option| option.value.as_f64() == Some(number))
                    .map(|option| option.value.clone());
            }
            _ => return None,
        };
        self.options
            .iter()
            .find(|option| {
                let value_text = match &option.value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                value_text.eq_ignore_ascii_case(&given_text)
                    || option.label.eq_ignore_ascii_case(&given_text)
            })
            .map(|option| option.value.clone())
    }

    fn options_sentence(&self, given: &Value) -> String {
        let choices: Vec<String> = self
            .options
            .iter()
            .map(|option| match &option.value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect();
        let given = match given {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        // Masked before it is cut, so that a token pasted here never shows in part.
        let shown: String = crate::redact::redact(&given).chars().take(60).collect();
        format!("must be one of {} (got '{shown}')", choices.join(", "))
    }
}

/// Items of a list given as an array of strings or as a string separated by new lines or
/// commas; trimmed, empty ones dropped, duplicates removed in order. `None` for any other JSON
/// type, numbers included (an id given as a number may already have lost digits).
fn list_items(value: &Value) -> Option<Vec<String>> {
    let raw: Vec<&str> = match value {
        Value::String(text) => text.split(['\n', '\r', ',']).collect(),
        Value::Array(items) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    let mut items: Vec<String> = Vec::new();
    for item in raw {
        let item = item.trim();
        if !item.is_empty() && !items.iter().any(|seen| seen == item) {
            items.push(item.to_string());
        }
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn embedded_manifests_parse_and_have_unique_ids() {
        let manifests = all();
        assert!(!manifests.is_empty());
        for (index, manifest) in manifests.iter().enumerate() {
            assert!(
                manifests[..index]
                    .iter()
                    .all(|earlier| earlier.id < manifest.id),
                "ids ascend and are unique"
            );
        }
    }

    #[test]
    fn connection_parameters_are_identical_in_every_manifest() {
        let first = &all()[0];
        for manifest in all() {
            for name in CONNECTION_PARAMS {
                let a = serde_json::to_value(first.param(name).unwrap()).unwrap();
                let b = serde_json::to_value(manifest.param(name).unwrap()).unwrap();
                assert_eq!(
                    a, b,
                    "{}: {name} differs from {}",
                    manifest.name, first.name
                );
            }
        }
    }

    use super::*;
    use crate::error::ErrorCode;

    fn param(kind: ParamType) -> Param {
        Param {
            name: "p".into(),
            label: "P".into(),
            description: String::new(),
            kind,
            required: false,
            secret: false,
            default: None,
            options: Vec::new(),
            min: None,
            max: None,
            max_length: None,
            group: None,
        }
    }

    fn select(kind: ParamType) -> Param {
        Param {
            options: vec![
                ParamOption {
                    value: json!("Blacklist"),
                    label: "Blacklist".into(),
                },
                ParamOption {
                    value: json!(14),
                    label: "After 14 Days".into(),
                },
            ],
            ..param(kind)
        }
    }

    #[test]
    fn required_without_value_or_default_is_missing() {
        let p = Param {
            required: true,
            ..param(ParamType::String)
        };
        let err = p.validate(Some(&json!("  "))).unwrap_err();
        assert_eq!(err.code, ErrorCode::ConfigMissing);
        assert_eq!(err.field.as_deref(), Some("config.p"));
    }

    #[test]
    fn defaults_fill_absent_and_null_values() {
        let p = Param {
            default: Some(json!(5)),
            ..param(ParamType::Integer)
        };
        assert_eq!(p.validate(None).unwrap(), Some(json!(5)));
        assert_eq!(p.validate(Some(&Value::Null)).unwrap(), Some(json!(5)));
    }

    #[test]
    fn numbers_accept_numeric_strings_and_enforce_bounds() {
        let p = Param {
            min: Some(1.0),
            max: Some(50_000.0),
            ..param(ParamType::Integer)
        };
        assert_eq!(p.validate(Some(&json!("42"))).unwrap(), Some(json!(42)));
        assert!(p.validate(Some(&json!(50_001))).is_err());
        assert!(p.validate(Some(&json!(0))).is_err());
        assert!(p.validate(Some(&json!(1.5))).is_err());
        assert!(p.validate(Some(&json!("ten"))).is_err());
        assert!(p.validate(Some(&json!([1]))).is_err());
    }

    #[test]
    fn selects_match_value_or_label_case_insensitively() {
        let p = select(ParamType::Select);
        assert_eq!(
            p.validate(Some(&json!("blacklist"))).unwrap(),
            Some(json!("Blacklist"))
        );
        assert_eq!(
            p.validate(Some(&json!("After 14 days"))).unwrap(),
            Some(json!(14))
        );
        assert_eq!(p.validate(Some(&json!("14"))).unwrap(), Some(json!(14)));
        let err = p.validate(Some(&json!("Greylist"))).unwrap_err();
        assert!(
            err.message.contains("must be one of Blacklist, 14"),
            "{}",
            err.message
        );
    }

    #[test]
    fn multiselect_accepts_arrays_and_line_separated_text() {
        let p = select(ParamType::Multiselect);
        assert_eq!(
            p.validate(Some(&json!("Blacklist\n14\nblacklist")))
                .unwrap(),
            Some(json!(["Blacklist", 14]))
        );
        assert_eq!(
            p.validate(Some(&json!(["Blacklist"]))).unwrap(),
            Some(json!(["Blacklist"]))
        );
        assert!(p.validate(Some(&json!(["Nope"]))).is_err());
    }

    #[test]
    fn string_lists_split_lines_and_commas() {
        let p = param(ParamType::StringList);
        assert_eq!(
            p.validate(Some(&json!("1\r\n2, 3\n\n1"))).unwrap(),
            Some(json!(["1", "2", "3"]))
        );
        assert_eq!(
            p.validate(Some(&json!(["12", " 13 "]))).unwrap(),
            Some(json!(["12", "13"]))
        );
        assert_eq!(p.validate(Some(&json!(""))).unwrap(), None);
        assert!(p.validate(Some(&json!({"a": 1}))).is_err());
    }

    #[test]
    fn values_of_another_json_type_are_never_coerced() {
        let wrong = |p: &Param, value: Value| {
            let err = p.validate(Some(&value)).unwrap_err();
            assert_eq!(err.code, ErrorCode::ConfigInvalid, "{value}");
            assert_eq!(err.field.as_deref(), Some("config.p"), "{value}");
        };
        for kind in [ParamType::String, ParamType::Text] {
            for value in [
                json!(12),
                json!(1.5),
                json!(true),
                json!(["a"]),
                json!({"a": "b"}),
            ] {
                wrong(&param(kind), value);
            }
        }
        for value in [
            json!(12),
            json!(false),
            json!({"a": "b"}),
            json!([12]),
            json!(["1", 2]),
            json!([null]),
            json!([["1"]]),
            json!([true]),
        ] {
            wrong(&param(ParamType::StringList), value);
        }
        for value in [json!(0), json!(1), json!(2), json!(["true"]), json!({})] {
            wrong(&param(ParamType::Boolean), value);
        }
        for kind in [ParamType::Integer, ParamType::Number] {
            for value in [json!(true), json!(["1"]), json!({"n": 1}), json!("12abc")] {
                wrong(&param(kind), value);
            }
        }
        let strings_only = Param {
            options: vec![ParamOption {
                value: json!("1"),
                label: "One".into(),
            }],
            ..param(ParamType::Select)
        };
        for value in [json!(1), json!(true), json!(["1"]), json!({"1": 1})] {
            wrong(&strings_only, value);
        }
        for value in [json!(1), json!(true), json!([1]), json!([false]), json!({})] {
            wrong(
                &Param {
                    kind: ParamType::Multiselect,
                    ..strings_only.clone()
                },
                value,
            );
        }
    }

    #[test]
    fn numeric_options_take_the_number_or_its_text() {
        let p = select(ParamType::Select);
        for given in [json!(14), json!(14.0), json!("14"), json!(" 14 ")] {
            assert_eq!(
                p.validate(Some(&given)).unwrap(),
                Some(json!(14)),
                "{given}"
            );
        }
        assert!(p.validate(Some(&json!(15))).is_err());
    }

    #[test]
    fn text_longer_than_max_length_is_invalid() {
        let p = Param {
            max_length: Some(8),
            ..param(ParamType::String)
        };
        assert_eq!(
            p.validate(Some(&json!("  12345678  "))).unwrap(),
            Some(json!("12345678"))
        );
        let err = p.validate(Some(&json!("123456789"))).unwrap_err();
        assert_eq!(err.code, ErrorCode::ConfigInvalid);
        assert!(err.message.contains("at most 8"), "{}", err.message);
        // Bytes, not characters: what counts is the length in the URL.
        assert!(p.validate(Some(&json!("ééééé"))).is_err());
        let list = Param {
            max_length: Some(8),
            ..param(ParamType::StringList)
        };
        // "1234,567" is 8 bytes with its comma.
        assert!(list.validate(Some(&json!("1234\n567\n1234"))).is_ok());
        assert!(list.validate(Some(&json!(["1234", "5678"]))).is_err());
    }

    #[test]
    fn network_facing_text_follows_the_connection_rules() {
        let named = |name: &str| Param {
            name: name.into(),
            ..param(ParamType::String)
        };
        for (name, value) in [
            ("hostname", "https://admin:pw-secret@usea1.sentinelone.net"),
            ("hostname", "12"),
            ("api_token", "tok\r\nX: pw-secret"),
            ("api_token", "pw-secretü"),
            ("threatq_hostname", "tq.example/indicators"),
        ] {
            let err = named(name).validate(Some(&json!(value))).unwrap_err();
            assert_eq!(err.code, ErrorCode::ConfigInvalid, "{value}");
            assert_eq!(err.field, Some(format!("config.{name}")));
            assert!(!err.message.contains("pw-secret"), "{}", err.message);
        }
        // The token is trimmed before it is checked: a pasted trailing newline is no error.
        assert_eq!(
            named("api_token")
                .validate(Some(&json!(" tok-en\r\n")))
                .unwrap(),
            Some(json!("tok-en"))
        );
    }

    /// The `http` crate (1.x, used by ureq 3) refuses a URI longer than `u16::MAX - 1` bytes
    /// (`MAX_LEN` in `http/src/uri/mod.rs`, `ErrorKind::TooLong`).
    const HTTP_MAX_URI: usize = 65_534;

    /// The longest URL any action can build stays well under that limit, whatever the
    /// configuration: every text parameter that goes into a request URL has a `max_length`, and
    /// with every byte percent-encoded (3 bytes) those of one action, the base URL, the path and
    /// fixed filters, and the longest value a look-up may send alone (a URL indicator of 8,192
    /// bytes, see `indicator`; packed chunks stay under `QUERY_VALUES_BUDGET`) leave at least
    /// 15,000 bytes for a paging cursor.
    #[test]
    fn configured_url_text_cannot_make_a_request_uri_too_long() {
        const URL_PARAMS: [&str; 5] = [
            "query",
            "site_ids",
            "account_ids",
            "group_ids",
            "activity_types",
        ];
        // https:// + 253-byte host + :65535, and the path with limit, sort and time filters.
        const BASE_AND_PATH: usize = 8 + 253 + 6 + 1024;
        let longest_value = 3 * 8192usize.max(crate::api::QUERY_VALUES_BUDGET / 3);
        for manifest in all() {
            // The IOC export sends its scope lists in the POST body; only its optional
            // `Refresh expiry` look-up puts them in a URL, and its scope lists have no
            // max_length so that configurations that work today keep working.
            if manifest.name == "sentinelone-ioc-export" {
                continue;
            }
            let mut configured = 0;
            for param in &manifest.params {
                if URL_PARAMS.contains(&param.name.as_str()) {
                    let max = param.max_length.unwrap_or_else(|| {
                        panic!("{}: {} has no max_length", manifest.name, param.name)
                    });
                    configured += 3 * max as usize;
                }
            }
            let longest = BASE_AND_PATH + longest_value + configured;
            assert!(
                longest + 15_000 <= HTTP_MAX_URI,
                "{}: a URL may reach {longest} bytes",
                manifest.name
            );
        }
    }

    #[test]
    fn max_length_is_for_text_only() {
        let mut manifest = all()[0].clone();
        let index = manifest
            .params
            .iter()
            .position(|p| p.name == OBJECTS_PER_RUN)
            .unwrap();
        manifest.params[index].max_length = Some(10);
        assert!(manifest.check().unwrap_err().contains("max_length"));
    }

    #[test]
    fn empty_values_take_the_default() {
        let p = Param {
            default: Some(json!("Action Handled by ThreatQ")),
            ..param(ParamType::String)
        };
        for empty in [json!(""), json!("  "), Value::Null] {
            assert_eq!(
                p.validate(Some(&empty)).unwrap(),
                Some(json!("Action Handled by ThreatQ"))
            );
        }
        assert_eq!(p.validate(Some(&json!(" x "))).unwrap(), Some(json!("x")));
        let p = Param {
            default: Some(json!(["Blacklist"])),
            ..select(ParamType::Multiselect)
        };
        assert_eq!(
            p.validate(Some(&json!([]))).unwrap(),
            Some(json!(["Blacklist"]))
        );
    }

    #[test]
    fn booleans_accept_common_spellings() {
        let p = param(ParamType::Boolean);
        assert_eq!(p.validate(Some(&json!("No"))).unwrap(), Some(json!(false)));
        assert_eq!(p.validate(Some(&json!("1"))).unwrap(), Some(json!(true)));
        assert_eq!(p.validate(Some(&json!(true))).unwrap(), Some(json!(true)));
        assert!(p.validate(Some(&json!("maybe"))).is_err());
    }
}
