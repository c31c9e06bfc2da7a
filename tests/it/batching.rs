//! Request counts of large runs, asserted exactly: look-ups carry many values per request,
//! writes are batched where SentinelOne allows it, and a re-run sends look-ups only.

use s1_sim::{RecordedRequest, Scenario, Simulator};
use serde_json::{Value, json};

use crate::support::{self, CANARY_TOKEN};

fn simulator(scenario: Value) -> Simulator {
    let mut scenario = scenario;
    scenario["api_token"] = json!(CANARY_TOKEN);
    scenario["clock"] = json!("2026-04-22T13:50:54Z");
    Simulator::start(Scenario::from_json(&scenario.to_string()).unwrap()).unwrap()
}

fn envelope(sim: &Simulator, action: u32, config: Value, objects: Vec<Value>) -> String {
    let mut full = json!({
        "hostname": sim.base_url(),
        "api_token": CANARY_TOKEN,
        "requests_per_second": 1000,
        "max_concurrency": 8,
    });
    full.as_object_mut()
        .unwrap()
        .extend(config.as_object().unwrap().clone());
    json!({ "action": action, "run": { "now": "2026-04-22T13:50:54Z" }, "config": full, "objects": objects }).to_string()
}

fn sha1_objects(count: usize, prefix: &str) -> Vec<Value> {
    (1..=count)
        .map(|index| json!({ "id": index, "type": "SHA-1", "value": format!("{prefix}{index:036x}") }))
        .collect()
}

fn count(requests: &[RecordedRequest], method: &str, path: &str) -> usize {
    requests
        .iter()
        .filter(|request| request.method == method && request.path.ends_with(path))
        .count()
}

#[test]
fn blacklisting_10000_hashes_batches_lookups_and_a_rerun_only_looks_up() {
    let sim = simulator(json!({}));
    let input = envelope(
        &sim,
        1,
        json!({ "os_type": ["Windows"] }),
        sha1_objects(10_000, "7eb2"),
    );

    let first = support::run(&["run"], &input);
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let requests = sim.take_requests();
    let lookups = count(&requests, "GET", "/restrictions");
    assert_eq!(
        count(&requests, "POST", "/restrictions"),
        10_000,
        "one POST per missing entry"
    );
    // A SHA-1 takes 43 bytes of a 6,000-byte query budget once its comma is encoded.
    assert!(
        lookups <= 10_000 / 130 + 1,
        "{lookups} look-ups: many values per request"
    );
    assert_eq!(
        first.json()["metrics"]["http_requests"],
        json!(requests.len())
    );

    let second = support::run(&["run"], &input);
    assert_eq!(second.exit, 0);
    let rerun = sim.take_requests();
    assert_eq!(
        count(&rerun, "POST", "/restrictions"),
        0,
        "nothing to add on a re-run"
    );
    assert_eq!(
        rerun.len(),
        lookups,
        "a re-run sends the same look-ups and nothing else"
    );
    let result = second.json();
    assert_eq!(result["summary"]["succeeded"], 10_000);
    assert_eq!(
        result["results"][0]["detail"],
        "Already on the blacklist for windows in the global scope"
    );
}

#[test]
fn exporting_2500_iocs_sends_three_posts_and_one_account_lookup() {
    let sim = simulator(json!({ "accounts": [{ "id": "1001", "name": "Acme" }] }));
    let objects = (1..=2500)
        .map(|index| json!({ "id": index, "type": "IP Address", "value": format!("10.{}.{}.{}", index / 65536, index / 256 % 256, index % 256) }))
        .collect();
    let out = support::run(&["run"], &envelope(&sim, 4, json!({}), objects));
    assert_eq!(out.exit, 0, "{}", out.stderr);
    let requests = sim.take_requests();
    assert_eq!(count(&requests, "POST", "/threat-intelligence/iocs"), 3);
    assert_eq!(count(&requests, "GET", "/accounts"), 1);
    assert_eq!(requests.len(), 4);
}

#[test]
fn mitigating_1200_hashes_batches_lookups_and_mitigations() {
    let sim = simulator(json!({ "generate": { "agents": 50, "threats": 1200 } }));
    let input = envelope(
        &sim,
        2,
        json!({ "mitigation_action": "Kill" }),
        sha1_objects(1200, "5eed"),
    );
    let out = support::run(&["run"], &input);
    assert_eq!(out.exit, 0, "{}", out.stderr);
    let requests = sim.take_requests();
    let lookups = count(&requests, "GET", "/threats");
    assert!(
        lookups <= 1200 / 130 + 1,
        "{lookups} threat look-ups for 1,200 hashes"
    );
    assert_eq!(
        count(&requests, "POST", "/threats/mitigate/kill"),
        2,
        "1,000 threat ids per request"
    );
    let result = out.json();
    assert_eq!(result["summary"]["succeeded"], 1200);
    let attributes = result["objects"][0]["attributes"].as_array().unwrap();
    assert_eq!(
        attributes[0],
        json!({ "name": "Computers Affected by mitigation", "value": "1" })
    );
}
