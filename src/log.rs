//! The stderr channel: JSON lines when stderr is not a terminal, readable text when it is.
//!
//! Every line passes through the redactor. Progress events (`{"event":"progress",…}`) and the
//! final summary line are written here too. This module never writes stdout (see `output`).

use std::io::{IsTerminal, Write};
use std::sync::RwLock;

use serde_json::{Map, Value};

use crate::redact;

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }
}

struct Settings {
    json: bool,
    max_level: Level,
    context: Map<String, Value>,
}

static SETTINGS: RwLock<Option<Settings>> = RwLock::new(None);

/// Chooses the format from whether stderr is a terminal, unless `S1_ACTIONS_LOG` says
/// `json`/`text`; `S1_ACTIONS_LOG_LEVEL` (error|warn|info|debug) sets the threshold.
pub(crate) fn init() {
    let json = match std::env::var("S1_ACTIONS_LOG").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let max_level = match std::env::var("S1_ACTIONS_LOG_LEVEL").as_deref() {
        Ok("error") => Level::Error,
        Ok("warn") => Level::Warn,
        Ok("debug") => Level::Debug,
        _ => Level::Info,
    };
    let mut settings = SETTINGS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *settings = Some(Settings {
        json,
        max_level,
        context: Map::new(),
    });
}

/// Lowers or raises the threshold after `init` (the demo keeps only warnings and errors).
pub(crate) fn set_max_level(level: Level) {
    let mut settings = SETTINGS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(settings) = settings.as_mut() {
        settings.max_level = level;
    }
}

/// Adds a field (such as `action` or `run_id`) to every later line.
pub(crate) fn set_context(key: &str, value: Value) {
    let mut settings = SETTINGS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(settings) = settings.as_mut() {
        settings.context.insert(key.to_string(), value);
    }
}

/// Writes one line: `event` names what happened, `message` says it for a person, `fields`
/// (a JSON object, or null) carries the figures.
pub(crate) fn log(level: Level, event: &str, message: &str, fields: Value) {
    let settings = SETTINGS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(settings) = settings.as_ref() else {
        return;
    };
    if level > settings.max_level {
        return;
    }
    let line = if settings.json {
        let mut object = Map::new();
        object.insert(
            "ts".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        object.insert("level".into(), Value::String(level.as_str().into()));
        object.insert("event".into(), Value::String(event.into()));
        if !message.is_empty() {
            object.insert("msg".into(), Value::String(message.into()));
        }
        for (key, value) in &settings.context {
            object.insert(key.clone(), value.clone());
        }
        if let Value::Object(fields) = fields {
            object.extend(fields);
        }
        // Masked inside its strings only, so that every line stays one JSON object.
        redact::redact_json(&Value::Object(object).to_string()).into_owned()
    } else {
        let mut text = format!("{:5} {event}", level.as_str());
        if !message.is_empty() {
            text.push_str(": ");
            text.push_str(message);
        }
        if let Value::Object(fields) = fields {
            for (key, value) in fields {
                match value {
                    Value::String(s) => text.push_str(&format!(" {key}={s}")),
                    other => text.push_str(&format!(" {key}={other}")),
                }
            }
        }
        redact::redact(&text).into_owned()
    };
    let mut stderr = std::io::stderr().lock();
    // A closed stderr must not fail the run: the result on stdout is what matters.
    let _ = writeln!(stderr, "{line}");
}

pub(crate) fn error(event: &str, message: &str, fields: Value) {
    log(Level::Error, event, message, fields);
}

pub(crate) fn warn(event: &str, message: &str, fields: Value) {
    log(Level::Warn, event, message, fields);
}

pub(crate) fn info(event: &str, message: &str, fields: Value) {
    log(Level::Info, event, message, fields);
}
