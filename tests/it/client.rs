//! The SentinelOne client against the simulator: retries counted, bursts that outlast the
//! retries, dropped connections, a wrong token, paging, the rate limit — and `check`.

use std::time::{Duration, Instant};

use s1_actions::api::{ApiClient, ClientSettings, DEFAULT_MAX_RESPONSE_BYTES};
use s1_actions::connection::{BaseUrl, Secret};
use s1_sim::{Scenario, Simulator};
use serde_json::{Value, json};

use crate::support::{self, CANARY_TOKEN};

const HASH: &str = "7eb2197d6fd80c31bd04d3a7fb8c725eb9789013";

fn simulator(extra: Value) -> Simulator {
    let mut scenario = json!({ "api_token": CANARY_TOKEN, "clock": "2026-04-22T13:50:54Z" });
    scenario
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    Simulator::start(Scenario::from_json(&scenario.to_string()).unwrap()).unwrap()
}

/// Action 3 on one hash that is not on the blacklist: exactly one look-up when nothing fails.
fn delete_one(sim: &Simulator, config: Value) -> support::Run {
    let mut full = json!({ "hostname": sim.base_url(), "api_token": CANARY_TOKEN });
    full.as_object_mut()
        .unwrap()
        .extend(config.as_object().unwrap().clone());
    let envelope = json!({ "action": 3, "config": full, "objects": [{ "id": 1, "type": "SHA-1", "value": HASH }] });
    support::run(&["run"], &envelope.to_string())
}

fn client(sim: &Simulator, requests_per_second: f64, max_concurrency: usize) -> ApiClient {
    ApiClient::new(ClientSettings {
        base: BaseUrl::parse(&sim.base_url()).unwrap(),
        token: Secret::new(CANARY_TOKEN),
        verify_tls: true,
        ca_bundle: None,
        proxy: None,
        request_timeout: Duration::from_secs(10),
        max_retries: 2,
        requests_per_second,
        max_concurrency,
        deadline: None,
        max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
    })
    .unwrap()
}

#[test]
fn a_429_then_200_is_retried_and_counted() {
    let sim = simulator(
        json!({ "faults": [{ "method": "GET", "path": "/web/api/v2.1/restrictions", "times": 1,
                                           "fault": { "status": 429, "retry_after": "0" } }] }),
    );
    let out = delete_one(&sim, json!({}));
    assert_eq!(out.exit, 0, "{}", out.stdout);
    let result = out.json();
    assert_eq!(result["metrics"]["http_requests"], 2);
    assert_eq!(result["metrics"]["retries"], 1);
    assert_eq!(sim.requests().len(), 2);
}

#[test]
fn a_503_burst_longer_than_max_retries_ends_the_run_with_a_result() {
    let sim = simulator(
        json!({ "faults": [{ "path": "/web/api/v2.1/restrictions", "fault": { "status": 503 } }] }),
    );
    let out = delete_one(&sim, json!({ "max_retries": 2 }));
    assert_eq!(out.exit, 5);
    let result = out.json();
    assert_eq!(result["status"], "failed");
    assert_eq!(result["errors"][0]["code"], "upstream.server_error");
    assert_eq!(result["results"][0]["status"], "failed");
    assert_eq!(result["results"][0]["error"]["retryable"], true);
    assert_eq!(sim.requests().len(), 3, "the first attempt and two retries");
}

#[test]
fn a_dropped_connection_is_retried() {
    let sim = simulator(
        json!({ "faults": [{ "path": "/web/api/v2.1/restrictions", "times": 1, "fault": { "drop": "before" } }] }),
    );
    let out = delete_one(&sim, json!({}));
    assert_eq!(out.exit, 0, "{}", out.stdout);
    assert_eq!(out.json()["metrics"]["retries"], 1);
}

#[test]
fn a_wrong_token_exits_4_after_one_request() {
    let sim = simulator(json!({}));
    let envelope = json!({ "action": 3, "config": { "hostname": sim.base_url(), "api_token": "wrong-token-0000" },
                           "objects": [{ "type": "SHA-1", "value": HASH }] });
    let out = support::run(&["run"], &envelope.to_string());
    assert_eq!(out.exit, 4);
    assert_eq!(out.json()["errors"][0]["code"], "auth.rejected");
    assert_eq!(sim.requests().len(), 1, "401 is never retried");
}

#[test]
fn every_page_of_a_2500_item_list_is_read_exactly_once() {
    let sim = simulator(json!({ "generate": { "restrictions": 2500 } }));
    let client = client(&sim, 0.0, 1);
    let mut ids = Vec::new();
    for page in client.pages(
        "/restrictions",
        vec![("type", "black_hash".into())],
        "/data",
    ) {
        ids.extend(
            page.unwrap()
                .into_iter()
                .map(|entry| entry["id"].as_str().unwrap().to_string()),
        );
    }
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (2500, 2500));
    let requests = sim.requests();
    assert_eq!(requests.len(), 3, "pages of 1,000, 1,000 and 500");
    assert!(
        requests
            .iter()
            .all(|request| request.query.get("limit").map(String::as_str) == Some("1000"))
    );
    assert!(
        requests
            .iter()
            .all(|request| request.query.get("type").map(String::as_str) == Some("black_hash"))
    );
}

/// The limiter's promise is a ceiling: 200 requests at 50/s from 4 workers take at least 199
/// intervals. The upper bound only guards against a limiter that is far too slow.
#[test]
fn the_rate_limiter_holds_requests_per_second_over_200_requests() {
    let sim = simulator(json!({}));
    let client = client(&sim, 50.0, 4);
    let started = Instant::now();
    let results = client.parallel(&[(); 200], |()| client.get("/accounts", &[]));
    let elapsed = started.elapsed().as_secs_f64();
    assert!(results.iter().all(Result::is_ok));
    let rate = 199.0 / elapsed;
    assert!(
        rate <= 50.0 * 1.10,
        "{rate:.1} requests per second exceeds 50 by more than 10%"
    );
    assert!(
        rate >= 50.0 * 0.90,
        "{rate:.1} requests per second is more than 10% under 50"
    );
}

#[test]
fn check_reports_token_expiry_and_a_rejected_token() {
    let sim = simulator(json!({ "token_expires_at": "2027-01-01T00:00:00Z" }));
    let config = json!({ "config": { "hostname": sim.base_url(), "api_token": CANARY_TOKEN } });
    let out = support::run(&["check"], &config.to_string());
    assert_eq!(out.exit, 0, "{}", out.stdout);
    let record = &out.json()["records"][0];
    assert_eq!(record["authenticated"], true);
    assert!(
        record["token_expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2027-01-01T00:00:00")
    );

    let wrong = json!({ "config": { "hostname": sim.base_url(), "api_token": "not-the-token" } });
    let out = support::run(&["check"], &wrong.to_string());
    assert_eq!(out.exit, 4);
    assert_eq!(out.json()["records"][0]["reachable"], true);

    let nobody = json!({ "config": { "hostname": "http://127.0.0.1:9", "api_token": CANARY_TOKEN, "max_retries": 0 } });
    let out = support::run(&["check"], &nobody.to_string());
    assert_eq!(out.exit, 5);
    assert_eq!(out.json()["records"][0]["reachable"], false);
}
