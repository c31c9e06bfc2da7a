//! Fixture cases: `fixtures/<action>/<case>/` holds `envelope.json` (with `{{base_url}}` and
//! `{{token}}` placeholders), an optional `scenario.json` for the simulator (no scenario: no
//! simulator, for cases that must fail before any request) and an optional `case.json`:
//!
//! ```json
//! { "description": "…", "command": "run", "args": ["--dry-run"], "runs": 2,
//!   "generate": { "count": 50001, "type": "SHA-1" }, "unchanged_after_first_run": true }
//! ```
//!
//! Each run's exit code, result document and the requests the simulator recorded are
//! snapshotted, with the simulator's final state. Invariants checked on every case: stdout is
//! one JSON document, the token never appears, every object has one result, and the exit code
//! agrees with the run status.

use std::path::Path;

use s1_sim::{RecordedRequest, Scenario, Simulator};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::{self, CANARY_TOKEN};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[serde(default)]
    description: String,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    runs: Option<usize>,
    #[serde(default)]
    generate: Option<Generate>,
    /// The simulator's state after the second and later runs equals the state after the first.
    #[serde(default)]
    unchanged_after_first_run: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Generate {
    count: usize,
    #[serde(rename = "type")]
    kind: String,
}

#[test]
fn fixture_cases() {
    insta::glob!("../../fixtures", "*/*/envelope.json", run_case);
}

fn run_case(envelope_path: &Path) {
    let dir = envelope_path.parent().unwrap();
    let case: Case = match std::fs::read_to_string(dir.join("case.json")) {
        Ok(text) => serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("{}: case.json: {err}", dir.display())),
        Err(_) => Case::default(),
    };
    let simulator = std::fs::read_to_string(dir.join("scenario.json"))
        .ok()
        .map(|text| {
            let scenario = Scenario::from_json(&text)
                .unwrap_or_else(|err| panic!("{}: scenario.json: {err}", dir.display()));
            Simulator::start(scenario).unwrap()
        });
    let base_url = simulator
        .as_ref()
        .map_or_else(|| "http://127.0.0.1:9".to_string(), Simulator::base_url);
    let mut envelope = std::fs::read_to_string(envelope_path)
        .unwrap()
        .replace("{{base_url}}", &base_url)
        .replace("{{token}}", CANARY_TOKEN);
    if let Some(generate) = &case.generate {
        envelope = generated(&envelope, generate);
    }
    let command = case.command.clone().unwrap_or_else(|| "run".into());
    let mut args = vec![command.as_str()];
    args.extend(case.args.iter().map(String::as_str));

    let mut runs = Vec::new();
    let mut first_state = None;
    for run_number in 1..=case.runs.unwrap_or(1) {
        let run = support::run(&args, &envelope);
        let result = run.json();
        check_invariants(&result, run.exit, &envelope);
        let requests: Vec<Value> = simulator
            .as_ref()
            .map(|sim| sim.take_requests().iter().map(summarise).collect())
            .unwrap_or_default();
        if let Some(sim) = &simulator {
            let state = sim.state();
            match &first_state {
                None => first_state = Some(state),
                Some(first) if case.unchanged_after_first_run => {
                    assert_eq!(
                        first,
                        &state,
                        "{}: run {run_number} changed the simulator's state",
                        dir.display()
                    );
                }
                Some(_) => {}
            }
        }
        let result = if case.generate.is_some() {
            abbreviate(result)
        } else {
            result
        };
        runs.push(json!({ "exit": run.exit, "result": result, "requests": requests }));
    }
    let snapshot = json!({
        "description": case.description,
        "command": args,
        "runs": runs,
        "final_state": simulator.as_ref().map(Simulator::state),
    });
    let name = |path: &Path| path.file_name().unwrap().to_string_lossy().into_owned();
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_suffix(format!("{}.{}", name(dir.parent().unwrap()), name(dir)));
    settings.bind(|| {
        insta::assert_json_snapshot!("fixture", snapshot, { ".runs[].result.metrics.duration_ms" => "[duration_ms]" });
    });
}

/// The envelope with `count` generated objects of `kind` appended.
fn generated(envelope: &str, generate: &Generate) -> String {
    let mut value: Value = serde_json::from_str(envelope).unwrap();
    let objects = value["objects"].as_array_mut().unwrap();
    for index in 0..generate.count {
        objects
            .push(json!({ "id": index, "type": generate.kind, "value": format!("{index:040x}") }));
    }
    value.to_string()
}

/// Big results keep only their counts and first entries, so snapshots stay readable.
fn abbreviate(mut result: Value) -> Value {
    for key in ["objects", "results"] {
        if let Some(list) = result.get_mut(key).and_then(Value::as_array_mut) {
            let total = list.len();
            list.truncate(3);
            list.push(json!(format!("… {total} in all")));
        }
    }
    result
}

fn check_invariants(result: &Value, exit: i32, envelope: &str) {
    let status = result["status"].as_str().unwrap();
    let expected_status = match exit {
        0 => "succeeded",
        1 => "partial",
        _ => "failed",
    };
    assert_eq!(
        status, expected_status,
        "exit {exit} disagrees with status {status}"
    );
    if let Ok(sent) = serde_json::from_str::<Value>(envelope) {
        let count = sent["objects"].as_array().map_or(0, Vec::len);
        assert_eq!(
            result["results"].as_array().unwrap().len(),
            count,
            "one result per object"
        );
        assert_eq!(
            result["objects"].as_array().unwrap().len(),
            count,
            "every object written back"
        );
    }
}

fn summarise(request: &RecordedRequest) -> Value {
    let mut summary = json!({
        "method": request.method,
        "path": request.path.trim_start_matches("/web/api/v2.1"),
        "status": request.status,
    });
    if !request.query.is_empty() {
        summary["query"] = json!(request.query);
    }
    if let Some(body) = &request.body {
        summary["body"] = body.clone();
    }
    if let Some(fault) = &request.fault {
        summary["fault"] = json!(fault);
    }
    if !request.authorized {
        summary["authorized"] = json!(false);
    }
    summary
}
