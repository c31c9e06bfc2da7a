//! Running the binary: stdin in, stdout/stderr/exit out, with a clean environment.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The token every test envelope uses; it must never appear in any output.
pub const CANARY_TOKEN: &str = "canary-7f3a9c21-token-must-never-print";

/// What one run of the binary produced.
pub struct Run {
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as the one JSON document it must be.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not one JSON document ({err}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `s1-actions args…` with `stdin`, without proxies or ambient logging settings.
pub fn run(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_s1-actions"))
        .args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("S1_ACTIONS_LOG_LEVEL")
        .env("S1_ACTIONS_LOG", "json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_string();
    // Written from a thread so a large envelope cannot deadlock against a full stdout pipe.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let run = Run {
        exit: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(CANARY_TOKEN) && !run.stderr.contains(CANARY_TOKEN),
        "the API token was printed:\nstdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    run
}

/// A simulator for `scenario` (a JSON object of scenario keys) that accepts [`CANARY_TOKEN`],
/// with its clock pinned so that runs are reproducible.
pub fn simulator(scenario: Value) -> s1_actions::simulator::Simulator {
    let mut scenario = scenario;
    scenario["api_token"] = Value::from(CANARY_TOKEN);
    if scenario.get("clock").is_none() {
        scenario["clock"] = Value::from("2026-04-22T13:50:54Z");
    }
    let scenario = s1_actions::simulator::Scenario::from_json(&scenario.to_string())
        .unwrap_or_else(|err| panic!("scenario: {err}"));
    s1_actions::simulator::Simulator::start(scenario).unwrap()
}

/// The result document of a run that had `objects` input objects, after checking what every
/// result must hold whatever happened: stdout is one JSON document on one line, every object
/// is echoed and has exactly one result in input order, the summary counts the results, and
/// the run status agrees with the exit code (0 succeeded, 1 partial, 3/4/5/70 failed).
pub fn checked(run: &Run, objects: usize) -> Value {
    let context = || format!("exit {}\nstdout: {}\nstderr: {}", run.exit, run.stdout, run.stderr);
    assert_eq!(
        run.stdout.trim_end_matches('\n').lines().count(),
        1,
        "stdout is one line: {}",
        context()
    );
    let result = run.json();
    let results = result["results"].as_array().unwrap_or_else(|| panic!("{}", context()));
    assert_eq!(results.len(), objects, "one result per object: {}", context());
    assert_eq!(
        result["objects"].as_array().map(Vec::len),
        Some(objects),
        "every object echoed: {}",
        context()
    );
    let mut counts = [0u64; 3];
    for (index, row) in results.iter().enumerate() {
        assert_eq!(row["index"], index, "results in input order: {}", context());
        match row["status"].as_str() {
            Some("succeeded") => counts[0] += 1,
            Some("skipped") => counts[1] += 1,
            Some("failed") => {
                counts[2] += 1;
                assert!(row["error"]["code"].is_string(), "{}", context());
                assert!(row["error"]["retryable"].is_boolean(), "{}", context());
            }
            other => panic!("result status {other:?}: {}", context()),
        }
    }
    let summary = &result["summary"];
    assert_eq!(summary["total"], objects, "{}", context());
    assert_eq!(
        [&summary["succeeded"], &summary["skipped"], &summary["failed"]],
        [counts[0], counts[1], counts[2]].map(Value::from).each_ref(),
        "summary counts the results: {}",
        context()
    );
    let errors = result["errors"].as_array().map_or(0, Vec::len);
    let expected_status = match run.exit {
        0 => "succeeded",
        1 => "partial",
        3 | 4 | 5 | 70 => "failed",
        other => panic!("exit {other} is not a run exit: {}", context()),
    };
    assert_eq!(result["status"], expected_status, "status and exit agree: {}", context());
    match run.exit {
        0 => assert!(errors == 0 && counts[2] == 0, "{}", context()),
        1 => assert!(errors == 0 && counts[2] > 0, "{}", context()),
        _ => assert!(errors > 0, "a failed run names its error: {}", context()),
    }
    result
}
