//! `s1-actions demo`: every demo envelope run against a freshly started simulator, as a report
//! for people.
//!
//! The simulator is seeded from `<dir>/scenario.json` on a free loopback port; each other
//! `<dir>/*.json` (in name order) is an envelope whose `{{base_url}}` and `{{token}}` are filled
//! in, run in-process exactly as `run` would, and summarised: objects, outcomes, attributes
//! added and requests sent. This module returns the report text; `cli` prints it.

use std::fmt::Write as _;
use std::path::Path;

use s1_sim::{Scenario, Simulator};
use serde_json::Value;

use crate::error::ExitStatus;
use crate::result::{ObjectStatus, RunResult};
use crate::runner::{self, Mode};

/// The token the simulator accepts unless the scenario names another.
const DEFAULT_TOKEN: &str = "sim-token";

/// Runs the demo in `dir`; the report, and whether every envelope ran (exit 0 or 1).
pub(crate) fn run(dir: &Path) -> Result<(String, bool), String> {
    let scenario_path = dir.join("scenario.json");
    let scenario_text = std::fs::read_to_string(&scenario_path)
        .map_err(|err| format!("cannot read {}: {err}", scenario_path.display()))?;
    let token = serde_json::from_str::<Value>(&scenario_text)
        .ok()
        .and_then(|scenario| {
            scenario
                .get("api_token")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| DEFAULT_TOKEN.to_string());
    let scenario = Scenario::from_json(&scenario_text)
        .map_err(|err| format!("{}: {err}", scenario_path.display()))?;
    let simulator =
        Simulator::start(scenario).map_err(|err| format!("cannot start the simulator: {err}"))?;

    let mut envelopes: Vec<_> = std::fs::read_dir(dir)
        .map_err(|err| format!("cannot read {}: {err}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "json")
                && path.file_name() != scenario_path.file_name()
        })
        .collect();
    envelopes.sort();

    let mut report = String::new();
    let _ = writeln!(
        report,
        "s1-actions demo: SentinelOne console simulator at {}",
        simulator.base_url()
    );
    let _ = writeln!(
        report,
        "(every request below went to the simulator; nothing left this machine)\n"
    );
    let mut all_ran = true;
    for path in envelopes {
        let text = std::fs::read_to_string(&path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        let envelope = text
            .replace("{{base_url}}", &simulator.base_url())
            .replace("{{token}}", &token);
        let dry_run = serde_json::from_str::<Value>(&envelope)
            .ok()
            .and_then(|value| value.pointer("/run/dry_run").and_then(Value::as_bool))
            .unwrap_or(false);
        let (result, exit) = runner::execute(&envelope, Mode::Run { dry_run });
        all_ran &= matches!(exit, ExitStatus::Success | ExitStatus::ObjectsFailed);
        let file = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        describe(&mut report, &file, &result, exit);
    }
    Ok((report, all_ran))
}

fn describe(report: &mut String, file: &str, result: &RunResult, exit: ExitStatus) {
    let action = result.action.as_ref().map_or_else(
        || "?".to_string(),
        |action| format!("{} · {}", action.id, action.name),
    );
    let summary = &result.summary;
    let _ = writeln!(report, "━━ {action}   ({file})");
    let _ = writeln!(
        report,
        "   {} objects: {} succeeded, {} skipped, {} failed · {} attributes added · {} produced · {} records · {} HTTP requests · exit {}",
        summary.total,
        summary.succeeded,
        summary.skipped,
        summary.failed,
        summary.attributes_added,
        summary.produced,
        result.records.len(),
        result.metrics.http_requests,
        exit.code()
    );
    for (object, outcome) in result.objects.iter().zip(&result.results) {
        let mark = match outcome.status {
            ObjectStatus::Succeeded => "✔",
            ObjectStatus::Skipped => "–",
            ObjectStatus::Failed => "✘",
        };
        let value = outcome.value.as_deref().unwrap_or("(no value)");
        let what = outcome
            .detail
            .clone()
            .or_else(|| {
                outcome
                    .error
                    .as_ref()
                    .map(|error| format!("{}: {}", error.code, error.message))
            })
            .unwrap_or_default();
        let _ = writeln!(report, "   {mark} {}  {what}", shorten(value, 48));
        for attribute in &object.added {
            let _ = writeln!(report, "       + {} = {}", attribute.name, attribute.value);
        }
    }
    if let Some(plan) = &result.plan {
        let _ = writeln!(
            report,
            "   dry run: {} write(s) planned, none sent",
            plan.len()
        );
    }
    for record in result.records.iter().take(5) {
        let _ = writeln!(report, "   · {}", shorten(&record.to_string(), 110));
    }
    for object in result.produced.iter().take(5) {
        let kind = object.get("type").and_then(Value::as_str).unwrap_or("?");
        let value = object.get("value").and_then(Value::as_str).unwrap_or("?");
        let attributes = object
            .get("attributes")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let _ = writeln!(
            report,
            "   ⊕ {kind} {}  ({attributes} attributes)",
            shorten(value, 64)
        );
    }
    if result.produced.len() > 5 {
        let _ = writeln!(report, "   ⊕ … {} produced in all", result.produced.len());
    }
    if let Some(state) = &result.state {
        let _ = writeln!(
            report,
            "   next checkpoint: {}",
            shorten(&state.to_string(), 100)
        );
    }
    for error in &result.errors {
        let _ = writeln!(report, "   run error {}: {}", error.code, error.message);
    }
    let _ = writeln!(report);
}

/// At most `max` characters of `text`; secrets are masked before the cut (see `redact`).
fn shorten(text: &str, max: usize) -> String {
    let text = crate::redact::redact(text);
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}
