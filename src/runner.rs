//! Drives `run`, `validate` and `check`: envelope text in, result document and exit status out.
//!
//! This is where every input object is accounted for: each gets exactly one entry in `results`
//! and comes back in `objects`, whatever happened — an envelope refused for its configuration,
//! an object skipped, a run ended by the console. Panics are caught here and become exit 70
//! with a best-effort document. Printing is left to the caller (`cli` through `output`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::action::context::{Outcome, RunOutput};
use crate::action::{RunContext, Target};
use crate::api::{ApiClient, ClientSettings};
use crate::connection::API_TOKEN;
use crate::envelope::{self, InputObject};
use crate::error::{ExitStatus, Failure, WarningCode};
use crate::log;
use crate::manifest::Manifest;
use crate::redact;
use crate::request::{self, ObjectPlan, Rejected};
use crate::result::{ActionIdent, ObjectResult, ObjectStatus, OutputObject, RunResult, Warning};

/// Which work `execute` does after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Call SentinelOne; with `dry_run`, plan the writes instead of sending them.
    Run { dry_run: bool },
    /// Validate the envelope and every object; no network.
    Validate,
    /// One cheap authenticated call: reachability, credentials, token expiry.
    Check,
    /// The read-only conformance check of the console (see `probe`).
    Probe,
}

/// Runs `mode` on the envelope text, catching panics (exit 70).
pub fn execute(input: &str, mode: Mode) -> (RunResult, ExitStatus) {
    guarded(|| {
        let started = Instant::now();
        register_token_early(input);
        let parsed = envelope::parse(input).map_err(|failure| (failure, salvage_objects(input)));
        execute_parsed(parsed, mode, started)
    })
}

/// As [`execute`], taking the text: the objects' raw JSON are slices of it, so a large envelope
/// is held once while the action runs and the result is written.
pub fn execute_owned(input: String, mode: Mode) -> (RunResult, ExitStatus) {
    guarded(move || {
        let started = Instant::now();
        register_token_early(&input);
        // A refused envelope still accounts for every object it holds: they are salvaged from
        // the text it hands back.
        let parsed = envelope::parse_owned(input)
            .map_err(|(failure, text)| (failure, salvage_objects(&text)));
        execute_parsed(parsed, mode, started)
    })
}

fn guarded(run: impl FnOnce() -> (RunResult, ExitStatus)) -> (RunResult, ExitStatus) {
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            let mut result = RunResult::new(None);
            result.errors.push(Failure::internal(format!(
                "s1-actions hit an internal error: {message}"
            )));
            result.finish();
            (result, ExitStatus::Internal)
        }
    }
}

fn execute_parsed(
    parsed: Result<envelope::Envelope, (Failure, Vec<InputObject>)>,
    mode: Mode,
    started: Instant,
) -> (RunResult, ExitStatus) {
    let mut envelope = match parsed {
        Ok(envelope) => envelope,
        Err((failure, objects)) => {
            return refused(
                Rejected {
                    manifest: None,
                    errors: vec![failure],
                    warnings: Vec::new(),
                },
                objects,
            );
        }
    };
    let (request, client) = match prepare(&envelope, mode, started) {
        Ok(prepared) => prepared,
        Err(rejected) => return refused(rejected, std::mem::take(&mut envelope.objects)),
    };
    log::set_context("action", json!(request.manifest.name));
    if let Some(id) = &request.run.id {
        log::set_context("run_id", json!(id));
    }
    let mut result = RunResult::new(Some(ident(request.manifest)));
    result.warnings = request.warnings.clone();

    if mode == Mode::Probe {
        crate::probe::run(
            &client,
            &envelope.config,
            request.connection.lookup_values_per_request,
            request.run.now,
            &mut result,
        );
        let (mut result, exit) = finish_without_objects(result, &client, started);
        let exit = crate::probe::gate(&mut result, exit);
        return (result, exit);
    }
    if mode == Mode::Check {
        check(&client, request.run.now, &mut result);
        return finish_without_objects(result, &client, started);
    }

    let (plans, targets) = request::classify(
        &envelope.objects,
        request.manifest,
        request.action.as_ref(),
        request.objects_per_run,
    );
    let (output, targets) = if mode == Mode::Validate {
        let outcomes = targets
            .iter()
            .map(|target| Outcome::Succeeded {
                detail: format!("Valid {}; would be processed", target.kind.name()),
                attributes: Vec::new(),
            })
            .collect();
        let output = RunOutput {
            outcomes,
            ..RunOutput::default()
        };
        (output, targets)
    } else {
        log::info(
            "start",
            "",
            json!({ "objects": envelope.objects.len(), "targets": targets.len(), "dry_run": request.run.dry_run }),
        );
        let mut ctx = RunContext::new(
            &client,
            &envelope.objects,
            targets,
            request.run.now,
            request.run.dry_run,
            envelope.state.as_ref(),
        )
        .with_lookup_values(request.connection.lookup_values_per_request);
        if let Err(failure) = request.action.run(&mut ctx) {
            ctx.end_run(failure);
        }
        let (output, targets) = ctx.finish_with_targets();
        if request.run.dry_run {
            result.plan = Some(Vec::new());
        }
        (output, targets)
    };
    let objects = std::mem::take(&mut envelope.objects);
    finish(result, objects, plans, &targets, output, &client, started)
}

/// Everything `run`, `validate` and `check` do before the first request, in one place, so that
/// `validate` refuses exactly what `run` refuses (exit 3, nothing sent): the envelope checked
/// against the manifest and by the action ([`request::build`]), then the connection settings
/// read and the HTTP client built (hostname, proxy, CA bundle, timeouts).
fn prepare(
    envelope: &envelope::Envelope,
    mode: Mode,
    started: Instant,
) -> Result<(request::Request, ApiClient), Rejected> {
    if let Some(token) = envelope.config.get(API_TOKEN) {
        register_token_forms(token);
    }
    let request = request::build(envelope, matches!(mode, Mode::Run { dry_run: true }))?;
    // Exactly what goes on the wire, after the manifest's normalisation: a console that
    // quotes the request's headers back must not print the token in any form it was sent.
    let sent = request.connection.api_token.expose();
    redact::register(sent);
    redact::register(&format!("ApiToken {sent}"));
    // `checked_add`: a deadline past what the clock can represent means none (`+` would panic).
    let deadline = request
        .run
        .deadline
        .and_then(|duration| started.checked_add(duration));
    match ClientSettings::from_config(&request.connection, deadline).and_then(ApiClient::new) {
        Ok(client) => Ok((request, client)),
        Err(failure) => Err(Rejected {
            manifest: Some(request.manifest),
            errors: vec![failure],
            warnings: request.warnings,
        }),
    }
}

/// [`finish`] for the commands that work on the console, not on objects (`check`, `probe`).
fn finish_without_objects(
    result: RunResult,
    client: &ApiClient,
    started: Instant,
) -> (RunResult, ExitStatus) {
    finish(
        result,
        Vec::new(),
        Vec::new(),
        &[],
        RunOutput::default(),
        client,
        started,
    )
}

/// Fills the document from the run's output and computes the exit status.
fn finish(
    mut result: RunResult,
    objects: Vec<InputObject>,
    plans: Vec<ObjectPlan>,
    targets: &[Target],
    mut output: RunOutput,
    client: &ApiClient,
    started: Instant,
) -> (RunResult, ExitStatus) {
    // Objects still to come per target: the last one takes the outcome instead of a copy.
    let mut remaining: Vec<usize> = targets.iter().map(|target| target.indices.len()).collect();
    result.objects.reserve_exact(objects.len());
    result.results.reserve_exact(objects.len());
    for ((index, object), plan) in objects.into_iter().enumerate().zip(plans) {
        let (object_result, added) = match plan {
            ObjectPlan::Target(id) => {
                let value = Some(targets[id].value.clone());
                remaining[id] = remaining[id].saturating_sub(1);
                let outcome = if remaining[id] == 0 {
                    std::mem::replace(&mut output.outcomes[id], Outcome::Pending)
                } else {
                    output.outcomes[id].clone()
                };
                match outcome {
                    Outcome::Succeeded { detail, attributes } => (
                        ObjectResult {
                            index,
                            value,
                            status: ObjectStatus::Succeeded,
                            detail: Some(detail),
                            error: None,
                        },
                        attributes,
                    ),
                    Outcome::Skipped { detail } => (
                        ObjectResult {
                            index,
                            value,
                            status: ObjectStatus::Skipped,
                            detail: Some(detail),
                            error: None,
                        },
                        Vec::new(),
                    ),
                    Outcome::Failed(failure) => (
                        ObjectResult {
                            index,
                            value,
                            status: ObjectStatus::Failed,
                            detail: None,
                            error: Some(Box::new(failure)),
                        },
                        Vec::new(),
                    ),
                    Outcome::Pending => (
                        ObjectResult {
                            index,
                            value,
                            status: ObjectStatus::Failed,
                            detail: None,
                            error: Some(Box::new(Failure::internal(
                                "No outcome was recorded for this object",
                            ))),
                        },
                        Vec::new(),
                    ),
                }
            }
            ObjectPlan::Skipped { value, reason } => (
                ObjectResult {
                    index,
                    value,
                    status: ObjectStatus::Skipped,
                    detail: Some(reason.message.clone()),
                    error: Some(reason),
                },
                Vec::new(),
            ),
            ObjectPlan::Failed { value, reason } => (
                ObjectResult {
                    index,
                    value,
                    status: ObjectStatus::Failed,
                    detail: None,
                    error: Some(reason),
                },
                Vec::new(),
            ),
        };
        result.objects.push(OutputObject {
            raw: object.into_raw(),
            added,
        });
        result.results.push(object_result);
    }
    if let Some(plan) = result.plan.as_mut() {
        *plan = output.plan;
    }
    result.errors.extend(output.run_error);
    result.records.extend(output.records);
    result.produced.extend(output.produced);
    result.state = output.state;
    result.warnings.extend(output.warnings);
    let metrics = client.metrics();
    result.metrics.http_requests = metrics.http_requests;
    result.metrics.retries = metrics.retries;
    result.metrics.duration_ms = started.elapsed().as_millis() as u64;
    conclude(result)
}

/// The objects of an envelope that could not be read as a whole — valid JSON with a field of
/// the wrong type elsewhere (`run`, `config`, `action`), or text after it — so that each still
/// gets its result; none when the text is not a JSON object, `objects` is not a list, or the
/// list is not JSON serde reads where it stands (nested beyond serde's limit, say): such
/// objects could not be echoed in a document JSON readers read.
fn salvage_objects(input: &str) -> Vec<InputObject> {
    /// The `objects` list walked with serde's limits, at its place in the envelope, so that
    /// its nesting is counted from the envelope's top as a whole reading counts it.
    #[derive(serde::Deserialize)]
    struct ObjectsShape {
        #[serde(rename = "objects", default)]
        _objects: envelope::ValueShape,
    }
    #[derive(serde::Deserialize)]
    struct Objects {
        #[serde(default)]
        objects: Vec<InputObject>,
    }
    // serde also reads a struct from a JSON array, field by field: only an object is an
    // envelope whose `objects` can be told apart.
    if !input.trim_start().starts_with('{') {
        return Vec::new();
    }
    // Read as a prefix (no `end()`): text after the envelope does not hide its objects.
    let prefix = || serde_json::Deserializer::from_str(input);
    let within_limits = ObjectsShape::deserialize(&mut prefix()).is_ok();
    if !within_limits {
        return Vec::new();
    }
    Objects::deserialize(&mut prefix())
        .map(|envelope| envelope.objects)
        .unwrap_or_default()
}

/// A document for an envelope refused before any request: every object echoed and failed with
/// the first error, so nothing goes missing.
fn refused(rejected: Rejected, objects: Vec<InputObject>) -> (RunResult, ExitStatus) {
    let mut result = RunResult::new(rejected.manifest.map(ident));
    let first = rejected
        .errors
        .first()
        .cloned()
        .unwrap_or_else(|| Failure::internal("The envelope was refused"));
    for (index, object) in objects.into_iter().enumerate() {
        let value = object.head().ok().and_then(|head| head.value.clone());
        result.results.push(ObjectResult {
            index,
            value,
            status: ObjectStatus::Failed,
            detail: None,
            error: Some(Box::new(first.clone())),
        });
        result.objects.push(OutputObject {
            raw: object.into_raw(),
            added: Vec::new(),
        });
    }
    result.errors = rejected.errors;
    result.warnings = rejected.warnings;
    conclude(result)
}

fn conclude(mut result: RunResult) -> (RunResult, ExitStatus) {
    result.finish();
    let exit = ExitStatus::for_run(result.errors.first(), result.summary.failed > 0);
    log::info(
        "summary",
        "",
        json!({
            "status": result.status,
            "total": result.summary.total,
            "succeeded": result.summary.succeeded,
            "skipped": result.summary.skipped,
            "failed": result.summary.failed,
            "http_requests": result.metrics.http_requests,
            "exit": exit.code(),
        }),
    );
    (result, exit)
}

fn ident(manifest: &Manifest) -> ActionIdent {
    ActionIdent {
        id: manifest.id,
        name: manifest.name.clone(),
    }
}

/// `check`: reads the token's dates; warns when it expires within 30 days. Days are counted
/// from the run's clock (`run.now` when the envelope pins it), so a pinned envelope gives the
/// same document every time.
fn check(client: &ApiClient, now: DateTime<Utc>, result: &mut RunResult) {
    match client.token_details() {
        Ok(details) => {
            let expires = details
                .expires_at
                .as_deref()
                .and_then(envelope::parse_threatq_time);
            let days_left = expires.map(|at| (at - now).num_days());
            if let Some(days) = days_left.filter(|days| *days < 30) {
                result.warnings.push(Warning {
                    code: WarningCode::AuthTokenExpiring,
                    message: format!("The API token expires in {days} days; generate a new one in the SentinelOne console"),
                    field: Some("config.api_token".into()),
                });
            }
            result.records.push(json!({
                "reachable": true,
                "authenticated": true,
                "token_created_at": details.created_at,
                "token_expires_at": details.expires_at,
                "token_days_left": days_left,
            }));
        }
        Err(failure) => {
            let reachable = !matches!(failure.category, crate::error::Category::Network);
            result
                .records
                .push(json!({ "reachable": reachable, "authenticated": false }));
            result.errors.push(failure);
        }
    }
}

/// Registers the token before the envelope is parsed, so that even the error for an envelope
/// that does not parse cannot echo it: finds `"api_token": "<value>"` (or a number) by scanning
/// the text, and registers the value as written, unescaped, and trimmed as it would be sent.
fn register_token_early(input: &str) {
    const KEY: &str = "\"api_token\"";
    // memmem: the whole envelope is scanned, tens of megabytes for a large collection.
    let finder = memchr::memmem::Finder::new(KEY);
    let mut rest = input;
    while let Some(position) = finder.find(rest.as_bytes()) {
        rest = &rest[position + KEY.len()..];
        let after_colon = rest.trim_start().strip_prefix(':').map(str::trim_start);
        if let Some(value) = after_colon.and_then(|text| text.strip_prefix('"')) {
            let mut end = None;
            let mut escaped = false;
            for (offset, ch) in value.char_indices() {
                match ch {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(offset);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            if let Some(end) = end {
                let literal = &value[..end];
                redact::register(literal);
                redact::register(literal.trim());
                if let Ok(unescaped) = serde_json::from_str::<Value>(&format!("\"{literal}\"")) {
                    register_token_forms(&unescaped);
                }
            }
        } else if let Some(number) = after_colon
            .filter(|text| text.starts_with(|ch: char| ch.is_ascii_digit() || ch == '-'))
            .and_then(|text| {
                text.split(|ch: char| {
                    !(ch.is_ascii_digit() || matches!(ch, '.' | '-' | '+' | 'e' | 'E'))
                })
                .next()
            })
        {
            // A token given as a JSON number is refused, but its digits are still the secret.
            redact::register(number);
        }
    }
}

/// Registers a configured token as given and as the manifest normalises it (trimmed), the
/// form that is sent. A number is registered by its text: it is refused, never sent, but it is
/// still what the user meant as the secret.
fn register_token_forms(token: &Value) {
    match token {
        Value::String(text) => {
            redact::register(text);
            redact::register(text.trim());
        }
        Value::Number(number) => redact::register(&number.to_string()),
        _ => {}
    }
}
