//! `s1-actions probe` end to end, and the `lookup_values_per_request = one` fallback.
//!
//! The fixture cases (`fixtures/probe/`) snapshot each verdict; here: the probe against a
//! separately started `s1-actions simulate` (as an administrator would run it), the text
//! report, and the fallback giving the same outcomes and final state on a console that does not
//! split comma lists as the default gives on one that does, with one look-up per value.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{self, CANARY_TOKEN};

fn envelope(base_url: &str, token: &str, action: Option<u32>, config: Value) -> String {
    let mut envelope = json!({
        "protocol": 1,
        "run": { "now": "2026-04-22T13:50:54Z" },
        "config": { "hostname": base_url, "api_token": token, "requests_per_second": 1000 },
    });
    if let Some(action) = action {
        envelope["action"] = json!(action);
    }
    if let Some(extra) = config.as_object() {
        for (key, value) in extra {
            envelope["config"][key] = value.clone();
        }
    }
    envelope.to_string()
}

/// Stops the `simulate` child when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn probe_against_simulate_reports_every_point() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_s1-actions"))
            .args(["simulate", "--port", "0", "--scenario"])
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/demo/scenario.json"
            ))
            .env("S1_ACTIONS_LOG", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the simulator starts"),
    );
    let stderr = child.0.stderr.take().unwrap();
    let base_url = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let event: Value = serde_json::from_str(&line).ok()?;
            event["base_url"].as_str().map(str::to_string)
        })
        .expect("simulate logs its base URL");

    let run = support::run(
        &["probe"],
        &envelope(&base_url, "sim-token", None, json!({})),
    );
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let result = run.json();
    assert_eq!(result["status"], "succeeded");
    let records = result["records"].as_array().unwrap();
    let checks: Vec<(u64, &str, &str)> = records
        .iter()
        .map(|record| {
            (
                record["point"].as_u64().unwrap(),
                record["check"].as_str().unwrap(),
                record["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        checks,
        [
            (1, "comma_lists", "confirmed"),
            (2, "inet6_lookup", "confirmed"),
            (3, "ioc_scope", "confirmed"),
            (4, "token_expiry", "confirmed"),
            (4, "configured_scope", "not_testable"),
            (4, "retry_after", "not_testable"),
            (5, "token_scope", "confirmed"),
        ]
    );
}

#[test]
fn text_format_is_a_readable_report() {
    let sim = support::simulator(json!({ "comma_lists": false }));
    let run = support::run(
        &["probe", "--format", "text"],
        &envelope(&sim.base_url(), CANARY_TOKEN, None, json!({})),
    );
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let text = &run.stdout;
    assert!(
        text.starts_with("SentinelOne console probe (read-only)"),
        "{text}"
    );
    for point in [
        "1  comma_lists",
        "3  ioc_scope",
        "4  token_expiry",
        "5  token_scope",
    ] {
        assert!(text.contains(point), "{point} missing:\n{text}");
    }
    assert!(text.contains("not testable"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("Nothing to change before enabling write actions.")
    );
}

#[test]
fn a_contradiction_to_act_on_exits_1_and_names_the_parameter() {
    let sim = support::simulator(json!({
        "comma_lists": false,
        "restrictions": [
            { "value": "7eb2197d6fd80c31bd04d3a7fb8c725eb9789013", "osType": "windows" },
            { "value": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "osType": "windows" },
        ],
    }));
    let text = support::run(
        &["probe", "--format", "text"],
        &envelope(&sim.base_url(), CANARY_TOKEN, None, json!({})),
    );
    assert_eq!(text.exit, 1);
    assert!(
        text.stdout
            .contains("! Set lookup_values_per_request to 'one'"),
        "{}",
        text.stdout
    );
    let run = support::run(
        &["probe"],
        &envelope(&sim.base_url(), CANARY_TOKEN, None, json!({})),
    );
    assert_eq!(run.exit, 1);
    // Exit 1 here means a finding needs a configuration change (no object failed).
    let result = run.json();
    assert_eq!(result["status"], "partial");
    assert_eq!(
        result["warnings"][0]["field"],
        "config.lookup_values_per_request"
    );
    // Only reads were sent.
    for request in sim.take_requests() {
        let read = request.method == "GET" || request.path.ends_with("/users/api-token-details");
        assert!(read, "{} {} is not a read", request.method, request.path);
    }
}

const SHA1: [&str; 6] = [
    "7eb2197d6fd80c31bd04d3a7fb8c725eb9789013",
    "a9993e364706816aba3e25717850c26c9cd0d89d",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
    "de9f2c7fd25e1b3afad3e85a0bd17d9b100db4b3",
    "0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33",
];

/// A console with half of `SHA1` blacklisted (one upper case) and three agents.
fn console(comma_lists: bool) -> s1_sim::Simulator {
    support::simulator(json!({
        "comma_lists": comma_lists,
        "accounts": [{ "id": "1001", "name": "ACME Corp" }],
        "sites": [{ "id": "2001", "name": "ACME HQ", "accountId": "1001" }],
        "restrictions": [
            { "id": "5001", "value": SHA1[0], "osType": "windows" },
            { "id": "5002", "value": SHA1[2].to_uppercase(), "osType": "windows" },
            { "id": "5003", "value": SHA1[4], "osType": "windows", "siteId": "2001" },
        ],
        "agents": [
            { "id": "3001", "computerName": "ws-1", "siteId": "2001", "ips": ["10.0.0.11", "fe80::11"] },
            { "id": "3002", "computerName": "ws-2", "siteId": "2001", "ips": ["10.0.0.12"] },
            { "id": "3003", "computerName": "db-1", "siteId": "2001", "ips": ["10.0.10.5"] },
        ],
    }))
}

/// Runs `action` on a fresh console, returning the results, the final state and the number of
/// look-ups (`GET`s of `lookup_path`).
fn outcome(
    comma_lists: bool,
    action: u32,
    config: Value,
    objects: &Value,
    lookup_path: &str,
) -> (Value, Value, usize) {
    let sim = console(comma_lists);
    let mut envelope: Value = serde_json::from_str(&envelope(
        &sim.base_url(),
        CANARY_TOKEN,
        Some(action),
        config,
    ))
    .unwrap();
    envelope["objects"] = objects.clone();
    let run = support::run(&["run"], &envelope.to_string());
    let result = support::checked(&run, objects.as_array().unwrap().len());
    let lookups = sim
        .take_requests()
        .iter()
        .filter(|request| request.method == "GET" && request.path.ends_with(lookup_path))
        .count();
    (result["results"].clone(), sim.state(), lookups)
}

#[test]
fn the_fallback_gives_the_results_of_a_console_that_splits_lists() {
    let hashes = json!(
        SHA1.iter()
            .enumerate()
            .map(|(id, value)| json!({ "id": id, "type": "SHA-1", "value": value }))
            .collect::<Vec<_>>()
    );
    let addresses = json!([
        { "id": 1, "type": "IP Address", "value": "10.0.0.11" },
        { "id": 2, "type": "IPv6 Address", "value": "fe80::11" },
        { "id": 3, "type": "IP Address", "value": "10.0.10.5" },
        { "id": 4, "type": "IP Address", "value": "192.0.2.99" },
    ]);
    let one = json!({ "lookup_values_per_request": "one" });
    let cases = [
        (
            1,
            json!({ "os_type": ["Windows"] }),
            &hashes,
            "/restrictions",
            SHA1.len(),
        ),
        (3, json!({}), &hashes, "/restrictions", SHA1.len()),
        (13, json!({}), &addresses, "/agents", 4),
        (9, json!({}), &addresses, "/agents", 4),
    ];
    for (action, config, objects, path, values) in cases {
        let (expected, expected_state, batched) =
            outcome(true, action, config.clone(), objects, path);
        let mut with_one = config.clone();
        with_one["lookup_values_per_request"] = one["lookup_values_per_request"].clone();
        let (results, state, lookups) = outcome(false, action, with_one, objects, path);
        assert_eq!(results, expected, "action {action}: outcomes differ");
        assert_eq!(
            state, expected_state,
            "action {action}: final state differs"
        );
        assert_eq!(lookups, values, "action {action}: one look-up per value");
        assert!(
            batched < values,
            "action {action}: the default batches look-ups"
        );
    }
}

#[test]
fn without_the_fallback_blacklisting_still_creates_no_duplicates() {
    let hashes = json!(
        SHA1.iter()
            .enumerate()
            .map(|(id, value)| json!({ "id": id, "type": "SHA-1", "value": value }))
            .collect::<Vec<_>>()
    );
    let config = json!({ "os_type": ["Windows"] });
    let (expected, expected_state, _) = outcome(true, 1, config.clone(), &hashes, "/restrictions");
    let (results, state, _) = outcome(false, 1, config, &hashes, "/restrictions");
    assert_eq!(
        state, expected_state,
        "4000030 Already Exists kept the list as it was"
    );
    let statuses = |results: &Value| -> Vec<Value> {
        results
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].clone())
            .collect()
    };
    assert_eq!(statuses(&results), statuses(&expected));
}
