//! SentinelOne's per-endpoint-family rate limits against a console that enforces them: the
//! client spaces each family's requests so the console never answers 429, and a console that
//! throttles anyway (429 without `Retry-After`) is waited out within the run deadline rather
//! than after `max_retries` quick retries.
//!
//! The full-size case (50,000 IOCs against 30 per minute, about 100 s) is a benchmark
//! (`benches/actions.rs --ioc-30-per-minute`, BENCHMARKS.md); here the window is scaled down on
//! the console side: 3 uploads in any 6 s is stricter than 30 per minute for a client that sends
//! one every 2 s, and a client without the family limit sends its 4 uploads within milliseconds.

use std::time::{Duration, Instant};

use s1_sim::Simulator;
use serde_json::{Value, json};

use crate::support::{self, CANARY_TOKEN};

fn ioc_objects(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            json!({ "id": i + 1, "type": "IP Address",
                    "value": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256) })
        })
        .collect()
}

fn statuses(sim: &Simulator, status: u16) -> usize {
    sim.requests()
        .iter()
        .filter(|request| request.status == status)
        .count()
}

/// 4,000 IOCs are 4 uploads of 1,000; the console admits 3 `/threat-intelligence` requests in
/// any 6 s on top of SentinelOne's table. The run gets no 429 and takes the 3 spacings of 2 s.
#[test]
fn ioc_uploads_are_spaced_to_the_family_limit_and_never_throttled() {
    let sim = support::simulator(json!({
        "accounts": [{ "id": "1001", "name": "Acme" }],
        "rate_limits": {
            "preset": "sentinelone",
            "families": { "/threat-intelligence": { "limit": 3, "window_ms": 6000 } },
        },
    }));
    let objects = ioc_objects(4000);
    let envelope = json!({
        "action": 4,
        "run": { "deadline_seconds": 120, "now": "2026-04-22T13:50:54Z" },
        "config": { "hostname": sim.base_url(), "api_token": CANARY_TOKEN,
                    "requests_per_second": 1000, "max_concurrency": 4 },
        "objects": objects,
    });
    let started = Instant::now();
    let out = support::run(&["run"], &envelope.to_string());
    let elapsed = started.elapsed();
    let result = support::checked(&out, objects.len());
    assert_eq!(out.exit, 0, "{}", result["errors"]);
    assert_eq!(statuses(&sim, 429), 0, "{:?}", sim.requests());
    let uploads = sim
        .requests()
        .iter()
        .filter(|request| request.method == "POST")
        .count();
    assert_eq!(uploads, 4);
    assert_eq!(result["metrics"]["retries"], 0);
    // Three spacings of 2 s (plus the 2 % guard): the limit, not the machine, set the pace.
    assert!(elapsed >= Duration::from_secs(6), "took {elapsed:?}");
    assert_eq!(sim.state()["iocs"].as_array().unwrap().len(), 4000);
}

/// A console that answers 429 without `Retry-After` five times, with `max_retries` 1: the
/// look-up is retried until it gets through (well within the deadline), and the run succeeds.
#[test]
fn throttling_without_retry_after_is_waited_out_past_max_retries() {
    let (sim, out, result) = blacklist_one_hash_through_five(429);
    assert_eq!(out.exit, 0, "{result}");
    assert_eq!(statuses(&sim, 429), 5);
    assert_eq!(result["metrics"]["retries"], 5);
    assert_eq!(result["results"][0]["status"], "succeeded");
    assert_eq!(sim.state()["restrictions"].as_array().unwrap().len(), 1);
}

/// The same console with a 5xx instead: `max_retries` still caps those.
#[test]
fn server_errors_still_stop_at_max_retries() {
    let (sim, out, result) = blacklist_one_hash_through_five(503);
    assert_eq!(out.exit, 5, "{result}");
    assert_eq!(result["errors"][0]["code"], "upstream.server_error");
    assert_eq!(sim.requests().len(), 2);
}

/// Blacklists one hash, `max_retries` 1 and a 60 s deadline, against a console whose first five
/// look-ups answer `status` (without `Retry-After`).
fn blacklist_one_hash_through_five(status: u16) -> (Simulator, support::Run, Value) {
    let sim = support::simulator(json!({
        "faults": [{ "method": "GET", "path": "/restrictions", "times": 5,
                     "fault": { "status": status } }],
    }));
    let envelope = json!({
        "action": 1,
        "run": { "deadline_seconds": 60, "now": "2026-04-22T13:50:54Z" },
        "config": { "hostname": sim.base_url(), "api_token": CANARY_TOKEN,
                    "max_retries": 1, "os_type": ["Windows"] },
        "objects": [{ "id": 1, "type": "SHA-1", "value": "7eb2197d6fd80c31bd04d3a7fb8c725eb9789013" }],
    });
    let out = support::run(&["run"], &envelope.to_string());
    let result = support::checked(&out, 1);
    (sim, out, result)
}

/// The simulator's `"sentinelone"` preset and the client's own table are written out separately
/// (the simulator stands for the console, not for the client): they must name the same limits.
#[test]
fn the_simulator_preset_is_the_table_the_client_holds_itself_to() {
    let client: Vec<(&str, u32, u64)> = s1_actions::api::FAMILY_LIMITS
        .iter()
        .map(|family| {
            let window_ms = u64::try_from(family.window.as_millis()).unwrap_or(u64::MAX);
            (family.prefix, family.limit, window_ms)
        })
        .collect();
    assert_eq!(client, s1_sim::scenario::SENTINELONE_FAMILY_LIMITS);
}
