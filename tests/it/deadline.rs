//! `run.deadline_seconds` shorter than the work: the run stops starting requests in time, ends
//! with exit 5 (or 1), and every object it did not finish is reported failed with
//! `run.deadline` and `retryable: true` — never dropped, never reported done.
//!
//! The work is made long by the client's own rate limit, by console latency, by a console that
//! never answers, or by a `Retry-After` longer than the time left. Also here: a `ca_bundle`
//! that names a FIFO or a device is refused at once (exit 3), never waited on. Time bounds are loose (a loaded machine must not
//! fail them); the request counts and the console state say precisely what happened.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use s1_sim::Simulator;
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

/// A request in flight when the deadline passes is cut off at the deadline (each attempt's
/// timeout is at most the time left), and nothing starts after it: the account look-up would
/// answer after 1.5 s, past the 0.5 s deadline, and the IOC upload is never sent.
#[test]
fn a_request_in_flight_is_cut_off_and_nothing_starts_after_the_deadline() {
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
    assert!(elapsed < Duration::from_millis(1400), "took {elapsed:?}");
    // The simulator records the look-up once its 1.5 s delay is over.
    let waiting = Instant::now();
    while sim.requests().is_empty() && waiting.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// A console that accepts connections and never answers, a 3 s deadline and the default 30 s
/// request timeout: every attempt's timeout is cut to the time left, so the run ends soon after
/// 3 s (the bound is loose: a loaded machine must not fail it) with every object failed
/// `run.deadline`, retryable.
#[test]
fn a_console_that_never_answers_cannot_outlast_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Accept and hold every connection, reading nothing and answering nothing.
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let objects: Vec<Value> = (1..=3)
        .map(|i| json!({ "id": i, "type": "SHA-1", "value": sha1("5109", i) }))
        .collect();
    let text = json!({
        "action": 1,
        "run": { "deadline_seconds": 3 },
        "config": { "hostname": base, "api_token": CANARY_TOKEN, "request_timeout_seconds": 30,
                    "os_type": ["Windows"] },
        "objects": objects,
    })
    .to_string();
    let (out, result, elapsed) = timed_run(&text, objects.len());
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    assert_eq!(out.exit, 5, "{result}");
    assert_eq!(result["errors"][0]["code"], "run.deadline", "{result}");
    assert_eq!(unfinished(&result, None), 3);
    support::assert_no_token_fragment(&out, 8);
}

/// `ca_bundle` naming a FIFO (no writer: opening it would block) or `/dev/zero` (never ends):
/// `validate` and `run` refuse it at once with `config.invalid` on `config.ca_bundle`, exit 3.
#[test]
fn a_ca_bundle_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("bundle.pem");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for bundle in [fifo.display().to_string(), "/dev/zero".to_string()] {
        for command in ["validate", "run"] {
            let text = json!({
                "action": 1,
                "config": { "hostname": "http://127.0.0.1:9", "api_token": CANARY_TOKEN,
                            "ca_bundle": bundle, "os_type": ["Windows"] },
                "objects": [{ "id": 1, "type": "SHA-1", "value": sha1("ca", 1) }],
            })
            .to_string();
            let started = Instant::now();
            let out = support::run(&[command], &text);
            let elapsed = started.elapsed();
            assert!(
                elapsed < Duration::from_secs(5),
                "{command} {bundle}: {elapsed:?}"
            );
            assert_eq!(out.exit, 3, "{command} {bundle}: {}", out.stdout);
            let result = out.json();
            assert_eq!(result["errors"][0]["code"], "config.invalid", "{result}");
            assert_eq!(result["errors"][0]["field"], "config.ca_bundle", "{result}");
            assert!(
                result["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("is not a regular file"),
                "{result}"
            );
        }
    }
}
