//! Stage 2 of 2: an envelope checked against its action's manifest, as a typed request that
//! cannot be invalid, and the input objects sorted into targets, skips and failures.
//!
//! Configuration problems are collected (all of them, each with its `field`) and end the run
//! before any request is sent. Object problems fail or skip only their object (DESIGN §5).
//! This module sends nothing and prints nothing.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::action::{self, PreparedAction, Target, TargetId};
use crate::connection::{CONNECTION_PARAMS, ConnectionConfig};
use crate::cores;
use crate::envelope::{Envelope, InputObject, Named, PROTOCOL};
use crate::error::{ErrorCode, Failure, WarningCode};
use crate::indicator::IndicatorType;
use crate::manifest::{MAX_OBJECTS_PER_RUN, Manifest, OBJECTS_PER_RUN};
use crate::result::Warning;

/// A validated request.
pub(crate) struct Request {
    pub manifest: &'static Manifest,
    pub action: Box<dyn PreparedAction>,
    pub connection: ConnectionConfig,
    pub objects_per_run: usize,
    pub run: RunSettings,
    pub warnings: Vec<Warning>,
}

/// How this run behaves.
#[derive(Debug, Clone)]
pub(crate) struct RunSettings {
    pub id: Option<String>,
    pub dry_run: bool,
    pub deadline: Option<Duration>,
    pub now: DateTime<Utc>,
}

/// Why an envelope was refused, with what is known of it.
#[derive(Debug)]
pub(crate) struct Rejected {
    pub manifest: Option<&'static Manifest>,
    pub errors: Vec<Failure>,
    pub warnings: Vec<Warning>,
}

/// Checks `envelope` against its action's manifest and the action's own pre-request checks
/// ([`crate::action::Action::preflight`]). `dry_run` forces a dry run (the `--dry-run` flag)
/// whatever `run.dry_run` says.
pub(crate) fn build(envelope: &Envelope, dry_run: bool) -> Result<Request, Rejected> {
    let reject = |manifest, errors| Rejected {
        manifest,
        errors,
        warnings: Vec::new(),
    };
    if let Some(version) = &envelope.protocol {
        if version.major() != Some(PROTOCOL) {
            let failure = Failure::new(
                ErrorCode::InputInvalidValue,
                format!("This build speaks protocol {PROTOCOL}; the envelope asks for {version:?}"),
            )
            .with_field("protocol");
            return Err(reject(None, vec![failure]));
        }
    }
    let (manifest, entry) =
        action::resolve(&envelope.action).map_err(|failure| reject(None, vec![failure]))?;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if envelope.objects.len() as u64 > MAX_OBJECTS_PER_RUN {
        errors.push(
            Failure::new(
                ErrorCode::InputOverLimit,
                format!(
                    "The envelope holds {} objects; at most {MAX_OBJECTS_PER_RUN} are accepted in one run",
                    envelope.objects.len()
                ),
            )
            .with_field("objects"),
        );
    }
    let deadline = match envelope.run.deadline_seconds {
        // A deadline too far away for a `Duration` (beyond 584 billion years) is no deadline;
        // `Duration::from_secs_f64` would panic on it.
        Some(seconds) if seconds.is_finite() && seconds > 0.0 => {
            Duration::try_from_secs_f64(seconds).ok()
        }
        Some(_) => {
            errors.push(Failure::config_invalid(
                "run.deadline_seconds",
                "run.deadline_seconds must be a positive number",
            ));
            None
        }
        None => None,
    };

    let mut connection = Map::new();
    let mut params = Map::new();
    let mut objects_per_run = MAX_OBJECTS_PER_RUN as usize;
    for param in &manifest.params {
        match param.validate(envelope.config.get(&param.name)) {
            Ok(Some(value)) if param.name == OBJECTS_PER_RUN => {
                objects_per_run = value.as_u64().map_or(objects_per_run, |n| n as usize);
            }
            Ok(Some(value)) if CONNECTION_PARAMS.contains(&param.name.as_str()) => {
                connection.insert(param.name.clone(), value);
            }
            Ok(Some(value)) => {
                params.insert(param.name.clone(), value);
            }
            Ok(None)
                if CONNECTION_PARAMS.contains(&param.name.as_str())
                    || param.name == OBJECTS_PER_RUN => {}
            // Absent optional parameters reach the typed form as null, so `Option` fields and
            // `#[serde(default)]` lists both read them.
            Ok(None) => {
                params.insert(param.name.clone(), Value::Null);
            }
            Err(failure) => errors.push(failure),
        }
    }
    for key in envelope.config.keys() {
        if manifest.param(key).is_none() {
            warnings.push(Warning {
                code: WarningCode::ConfigUnknown,
                message: format!(
                    "The configuration key '{key}' is not a parameter of {}; it was ignored",
                    manifest.name
                ),
                field: Some(format!("config.{key}")),
            });
        }
    }
    if !errors.is_empty() {
        return Err(Rejected {
            manifest: Some(manifest),
            errors,
            warnings,
        });
    }

    let connection: ConnectionConfig =
        serde_json::from_value(Value::Object(connection)).map_err(|err| {
            reject(
                Some(manifest),
                vec![Failure::internal(format!(
                    "The connection parameters of {} do not read: {err}",
                    manifest.name
                ))],
            )
        })?;
    if !connection.verify_tls {
        warnings.push(Warning {
            code: WarningCode::TlsVerificationDisabled,
            message: "TLS certificate verification is off (verify_tls is false): the console's identity is not checked".into(),
            field: Some("config.verify_tls".into()),
        });
    }
    let action = (entry.prepare)(Value::Object(params)).map_err(|err| {
        reject(
            Some(manifest),
            vec![Failure::internal(format!(
                "The parameters of {} do not read: {err}",
                manifest.name
            ))],
        )
    })?;
    // What the action itself would refuse before its first request (parameters that do not go
    // together, a state it cannot read): `validate` refuses it as `run` does.
    let now = envelope.run.now.unwrap_or_else(Utc::now);
    if let Err(failure) = action.preflight(envelope.state.as_ref(), now) {
        return Err(Rejected {
            manifest: Some(manifest),
            errors: vec![failure],
            warnings,
        });
    }
    Ok(Request {
        manifest,
        action,
        connection,
        objects_per_run,
        run: RunSettings {
            id: envelope.run.id.clone(),
            dry_run: dry_run || envelope.run.dry_run,
            deadline,
            now,
        },
        warnings: {
            warnings.sort_by(|a, b| a.field.cmp(&b.field));
            warnings
        },
    })
}

/// What becomes of one input object before the action runs. The reasons are boxed: one plan
/// per object is held for the whole run, and most are `Target`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ObjectPlan {
    /// Worked on as this target.
    Target(TargetId),
    Skipped {
        value: Option<String>,
        reason: Box<Failure>,
    },
    Failed {
        value: Option<String>,
        reason: Box<Failure>,
    },
}

/// Sorts the objects into targets (one per distinct type and normalised value), skips (type not
/// accepted, beyond `objects_per_run`) and failures (unreadable object, invalid value).
pub(crate) fn classify(
    objects: &[InputObject],
    manifest: &Manifest,
    action: &dyn PreparedAction,
    objects_per_run: usize,
) -> (Vec<ObjectPlan>, Vec<Target>) {
    // The action is asked once per type it may accept, not once per object: it is not shared
    // between threads.
    let accepted: Vec<(IndicatorType, Result<(), String>)> = IndicatorType::ALL
        .into_iter()
        .filter(|kind| manifest.accepts.contains(kind))
        .map(|kind| (kind, action.accepts(kind)))
        .collect();
    // Each object is read and normalised on its own, on all cores; grouping needs them all.
    let indexed: Vec<(usize, &InputObject)> = objects.iter().enumerate().collect();
    let sorted = cores::map(&indexed, cores::OBJECTS_PER_THREAD, |(index, object)| {
        sort_object(*index, object, &accepted, objects_per_run)
    });
    let mut targets: Vec<Target> = Vec::new();
    let mut by_value: HashMap<(IndicatorType, String), TargetId> =
        HashMap::with_capacity(objects.len());
    let plans = sorted
        .into_iter()
        .enumerate()
        .map(|(index, sorted)| {
            let (kind, value) = match sorted {
                Ok(target) => target,
                Err(plan) => return plan,
            };
            let id = *by_value
                .entry((kind, value))
                .or_insert_with_key(|(kind, value)| {
                    targets.push(Target {
                        kind: *kind,
                        value: value.clone(),
                        indices: Vec::new(),
                    });
                    targets.len() - 1
                });
            targets[id].indices.push(index);
            ObjectPlan::Target(id)
        })
        .collect();
    (plans, targets)
}

/// One object's type and normalised value, or the plan that keeps it out of every target.
fn sort_object(
    index: usize,
    object: &InputObject,
    accepted: &[(IndicatorType, Result<(), String>)],
    objects_per_run: usize,
) -> Result<(IndicatorType, String), ObjectPlan> {
    let field = |name: &str| format!("objects[{index}]{name}");
    let view = object.head().map_err(|reason| {
        let reason = Failure::new(
            ErrorCode::InputInvalidValue,
            format!("The object cannot be read: {reason}"),
        )
        .with_field(field(""));
        ObjectPlan::Failed {
            value: None,
            reason: Box::new(reason),
        }
    })?;
    let value = || view.value.clone();
    if index >= objects_per_run {
        let reason = Failure::new(
            ErrorCode::InputOverLimit,
            format!("Beyond objects_per_run ({objects_per_run}); not processed in this run"),
        );
        return Err(ObjectPlan::Skipped {
            value: value(),
            reason: Box::new(reason),
        });
    }
    let Some(type_name) = view.kind.as_ref().map(Named::name) else {
        let reason = Failure::new(ErrorCode::InputInvalidValue, "The object has no type")
            .with_field(field(".type"));
        return Err(ObjectPlan::Failed {
            value: value(),
            reason: Box::new(reason),
        });
    };
    let kind = IndicatorType::from_name(type_name)
        .and_then(|kind| accepted.iter().find(|(known, _)| *known == kind))
        .ok_or_else(|| format!("type {type_name} is not accepted by this action"))
        .and_then(|(kind, accepted)| accepted.clone().map(|()| *kind));
    let kind = kind.map_err(|detail| {
        let reason = Failure::new(ErrorCode::InputUnsupportedType, capitalise(&detail));
        ObjectPlan::Skipped {
            value: value(),
            reason: Box::new(reason),
        }
    })?;
    let Some(raw_value) = view.value.as_deref() else {
        let reason = Failure::new(ErrorCode::InputInvalidValue, "The object has no value")
            .with_field(field(".value"));
        return Err(ObjectPlan::Failed {
            value: value(),
            reason: Box::new(reason),
        });
    };
    kind.normalise(raw_value)
        .map(|normal| (kind, normal))
        .map_err(|message| {
            let reason = Failure::new(ErrorCode::InputInvalidValue, capitalise(&message))
                .with_field(field(".value"));
            ObjectPlan::Failed {
                value: value(),
                reason: Box::new(reason),
            }
        })
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
