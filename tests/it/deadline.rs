//! `run.deadline_seconds` shorter than the work: the run stops starting requests in time, ends
//! with exit 5 (or 1), and every object it did not finish is reported failed with
//! `run.deadline` and `retryable: true` — never dropped, never reported done.
//!
//! The work is made long by the client's own rate limit, by console latency, or by a
//! `Retry-After` longer than the time left. Time bounds are loose (a loaded machine must not
//! fail them); the request counts and the console state say precisely what happened.

use std::time::{Duration, Instant};

use s1_actions::simulator::Simulator;
use serde_json::{Value, json};

use crate::support::{self, CANARY_TOKEN};

fn sha1(prefix: &str, index: usize) -> String {
    format!("{prefix}{index:036x}")
}

fn envelope(
    sim: &Simulator,
    action: u32,
    deadline: f64,
    config: Value,
    objects: &[Value],
) -> String {
    let mut full = json!({
        "hostname": sim.base_url(),
        "api_token": CANARY_TOKEN,
        "requests_per_second": 1000,
        "max_concurrency": 4,
        "max_retries": 3,
        "request_timeout_seconds": 10,
    });
    full.as_object_mut()
        .unwrap()
        .extend(config.as_object().unwrap().clone());
    json!({
        "action": action,
        "run": { "deadline_seconds": deadline, "now": "2026-04-22T13:50:54Z" },
        "config": full,
        "objects": objects,
    })
    .to_string()
}

/// Runs the envelope and returns the checked result and the wall time.
fn timed_run(text: &str, objects: usize) -> (support::Run, Value, Duration) {
    let started = Instant::now();
    let out = support::run(&["run"], text);
    let elapsed = started.elapsed();
    let result = support::checked(&out, objects);
    (out, result, elapsed)
}

/// Every object either succeeded or failed retryably with `run.deadline` (or, where given,
/// with `also`); returns how many failed.
fn unfinished(result: &Value, also: Option<&str>) -> usize {
    let mut failed = 0;
    for row in result["results"].as_array().unwrap() {
        match row["status"].as_str() {
            Some("succeeded") => {}
            Some("failed") => {
                failed += 1;
                let code = row["error"]["code"].as_str().unwrap();
                assert!(
                    code == "run.deadline" || Some(code) == also,
                    "unfinished objects fail with run.deadline: {row}"
                );
                assert_eq!(row["error"]["retryable"], true, "{row}");
            }
            _ => panic!("{row}"),
        }
    }
    failed
}

fn blacklisted(sim: &Simulator) -> Vec<String> {
    sim.state()["restrictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["value"].as_str().unwrap().to_string())
        .collect()
}

/// 40 hashes at 10 requests per second need over 4 s; the deadline is 1.5 s. The rate slots
/// past the deadline are never taken: the requests sent are those whose slot came before it,
/// and exactly the hashes reported succeeded are on the blacklist.
#[test]
fn the_rate_limit_makes_the_work_longer_than_the_deadline() {
    let sim = support::simulator(json!({}));
    let objects: Vec<Value> = (1..=40)
        .map(|i| json!({ "id": i, "type": "SHA-1", "value": sha1("dead", i) }))
        .collect();
    let text = envelope(
        &sim,
        1,
        1.5,
        json!({ "requests_per_second": 10, "os_type": ["Windows"] }),
        &objects,
    );
    let (out, result, elapsed) = timed_run(&text, objects.len());
    assert_eq!(out.exit, 5, "{result}");
    assert_eq!(result["errors"][0]["code"], "run.deadline");
    assert_eq!(result["errors"][0]["retryable"], true);
    let failed = unfinished(&result, None);
    assert!(failed > 0 && failed < 40, "{failed} failed: {result}");
    // One slot every 100 ms from the start: at most 15 before 1.5 s (16 with rounding).
    let sent = sim.requests().len();
    assert!(sent <= 16, "{sent} requests in 1.5 s at 10 per second");
    assert_eq!(result["metrics"]["http_requests"], sent);
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    // Accounted for exactly: succeeded objects are on the list, failed ones are not.
    let listed = blacklisted(&sim);
    for (row, object) in result["results"].as_array().unwrap().iter().zip(&objects) {
        let on_list = listed.contains(&object["value"].as_str().unwrap().to_string());
        assert_eq!(row["status"] == "succeeded", on_list, "{row}");
    }
}

/// A request already in flight when the deadline passes is finished (its answer is used),
/// but nothing starts after it: the account look-up answers after 1.5 s, past the 0.5 s
/// deadline, and the IOC upload is never sent.
#[test]
fn a_request_in_flight_finishes_but_nothing_starts_after_the_deadline() {
    let sim = support::simulator(json!({
        "accounts": [{ "id": "1001", "name": "Acme" }],
        "faults": [{ "method": "GET", "path": "/web/api/v2.1/accounts", "fault": { "delay_ms": 1500 } }],
    }));
    let objects: Vec<Value> = (1..=5)
        .map(|i| json!({ "id": i, "type": "IP Address", "value": format!("198.51.100.{i}") }))
        .collect();
    let text = envelope(&sim, 4, 0.5, json!({}), &objects);
    let (out, result, elapsed) = timed_run(&text, objects.len());
    assert_eq!(out.exit, 5, "{result}");
    assert_eq!(unfinished(&result, None), 5);
    assert_eq!(result["errors"][0]["code"], "run.deadline");
    let requests = sim.requests();
    assert_eq!(requests.len(), 1, "only the look-up: {requests:?}");
    assert_eq!(requests[0].path, "/web/api/v2.1/accounts");
    assert!(sim.state()["iocs"].as_array().unwrap().is_empty());
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
}

/// Look-ups in three batches, at least 700 ms each on one worker, and a 1 s deadline: the
/// third look-up never starts, no mitigation is sent, and every object whose threats were found or not
/// looked up fails with `run.deadline`. An object whose look-up finished and found no threat
/// is truly done ("No matching threats"), deadline or not.
#[test]
fn the_deadline_passes_during_the_look_ups() {
    let sim = support::simulator(
        json!({ "latency_ms": 700, "generate": { "agents": 4, "threats": 300 } }),
    );
    // 300 hashes with threats (about 130 per look-up), then one without.
    let mut objects: Vec<Value> = (1..=300)
        .map(|i| json!({ "id": i, "type": "SHA-1", "value": sha1("5eed", i) }))
        .collect();
    objects.insert(
        0,
        json!({ "id": 0, "type": "SHA-1", "value": sha1("5eed", 5000) }),
    );
    let text = envelope(
        &sim,
        2,
        1.0,
        json!({ "mitigation_action": "Kill", "max_concurrency": 1 }),
        &objects,
    );
    let (out, result, elapsed) = timed_run(&text, objects.len());
    assert_eq!(out.exit, 5, "{result}");
    let requests = sim.requests();
    assert!(
        requests.iter().all(|request| request.method == "GET"),
        "no mitigation after the deadline"
    );
    assert!(requests.len() < 3, "{} look-ups", requests.len());
    let failed = unfinished(&result, None);
    assert!(failed >= 300, "{failed}");
    assert_eq!(
        result["results"][0]["status"], "succeeded",
        "{}",
        result["results"][0]
    );
    assert_eq!(result["results"][0]["detail"], "No matching threats");
    assert!(
        sim.state()["threats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|threat| threat["mitigationStatus"] == "not_mitigated")
    );
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
}

/// A `Retry-After` longer than the time left is not waited for: the answer that asked for it
/// is reported at once (retryable), and nothing else starts.
#[test]
fn a_retry_after_past_the_deadline_is_not_waited_for() {
    let sim = support::simulator(json!({
        "generate": { "restrictions": 6 },
        "faults": [{ "method": "DELETE", "fault": { "status": 503, "retry_after": "30" } }],
    }));
    let objects: Vec<Value> = (1..=6)
        .map(|i| json!({ "id": i, "type": "SHA-1", "value": sha1("b1ac", i) }))
        .collect();
    let text = envelope(&sim, 3, 2.0, json!({ "list": "Blacklist" }), &objects);
    let (out, result, elapsed) = timed_run(&text, objects.len());
    assert_eq!(out.exit, 5, "{result}");
    assert_eq!(unfinished(&result, Some("upstream.server_error")), 6);
    assert!(
        result["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 503"),
        "{result}"
    );
    assert_eq!(sim.requests().len(), 2, "one look-up and one DELETE");
    assert_eq!(sim.state()["restrictions"].as_array().unwrap().len(), 6);
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}
