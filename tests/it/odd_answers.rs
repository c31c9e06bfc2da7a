//! One odd answer fails only the objects of the request it answered.
//!
//! The simulator answers one request of a run — chosen at random — with a random odd 2xx body
//! (`{"data": null}`, data of the wrong type, an HTML page, cut-off JSON, an empty body), and the
//! run is compared with a clean run on an identical console: every object the odd request did
//! not concern has exactly its clean outcome; the objects it concerned fail with
//! `upstream.bad_response`, retryable, and a message naming their own request; the run is
//! partial (exit 1) with no run-level error.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Value, json};

use crate::support::{self, CANARY_TOKEN};

/// Runs are processes against a simulator: a handful of cases by default.
fn config(cases: u32) -> ProptestConfig {
    support::proptest_config(cases, 0x0dd_a5e5)
}

/// Odd 2xx bodies: none is the documented shape of a verdict or a list page.
fn odd_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"data": null})),
        Just(json!({"data": "malicious"})),
        Just(json!({"data": 5})),
        Just(json!("null")),
        Just(json!("")),
        Just(json!(
            "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
        )),
        Just(json!("{\"data\": {\"verdict\": \"mal")),
        Just(json!("{\"data\": [")),
    ]
}

fn sha1(index: usize) -> String {
    format!("{:040x}", 0x0dd0_0000 + index)
}

/// Runs `envelope` against a fresh simulator for `scenario` (plus `faults`); exit and result.
fn run(scenario: &Value, faults: Value, envelope: &Value) -> (i32, Value) {
    let mut scenario = scenario.clone();
    scenario["faults"] = faults;
    let sim = support::simulator(scenario);
    let mut envelope = envelope.clone();
    envelope["config"]["hostname"] = json!(sim.base_url());
    envelope["config"]["api_token"] = json!(CANARY_TOKEN);
    let out = support::run(&["run"], &envelope.to_string());
    let result = support::checked(&out, envelope["objects"].as_array().unwrap().len());
    (out.exit, result)
}

/// Checks the faulty run against the clean one; returns the indexes of the objects that failed.
fn compare(faulty: &Value, clean: &Value, names: &str) -> Vec<usize> {
    assert_eq!(faulty["errors"], json!([]), "{faulty}");
    let mut failed = Vec::new();
    let rows = faulty["results"].as_array().unwrap();
    for (index, (got, want)) in rows
        .iter()
        .zip(clean["results"].as_array().unwrap())
        .enumerate()
    {
        if got == want {
            continue;
        }
        assert_eq!(got["status"], "failed", "object {index}: {got}");
        assert_eq!(got["error"]["code"], "upstream.bad_response", "{got}");
        assert_eq!(got["error"]["retryable"], true, "{got}");
        let message = got["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{message} does not name {names}");
        failed.push(index);
    }
    failed
}

proptest! {
    #![proptest_config(config(6))]

    /// Hash reputation asks one request per hash: the odd answer fails exactly that hash, named
    /// in its message, and no other object's message names it.
    #[test]
    fn an_odd_verdict_answer_fails_only_its_hash(
        count in 2usize..10,
        pick in any::<prop::sample::Index>(),
        body in odd_body(),
        workers in 1u32..4,
    ) {
        let hashes: Vec<String> = (0..count).map(sha1).collect();
        let odd = pick.index(count);
        let verdicts: serde_json::Map<String, Value> = hashes
            .iter()
            .enumerate()
            .map(|(i, hash)| (hash.clone(), json!(if i % 2 == 0 { "malicious" } else { "non-malicious" })))
            .collect();
        let scenario = json!({ "hash_verdicts": verdicts });
        let envelope = json!({
            "action": "sentinelone-hash-reputation",
            "config": { "max_concurrency": workers, "requests_per_second": 1000 },
            "objects": hashes.iter().enumerate()
                .map(|(i, hash)| json!({"id": i, "type": "SHA-1", "value": hash}))
                .collect::<Vec<_>>(),
        });
        let (clean_exit, clean) = run(&scenario, json!([]), &envelope);
        prop_assert_eq!(clean_exit, 0, "{}", clean);
        let faults = json!([{ "path": format!("/hashes/{}/verdict", hashes[odd]), "fault": { "body": body } }]);
        let (exit, faulty) = run(&scenario, faults, &envelope);
        prop_assert_eq!(exit, 1, "{}", faulty);
        let path = format!("GET /hashes/{}/verdict", hashes[odd]);
        prop_assert_eq!(compare(&faulty, &clean, &path), vec![odd]);
        let elsewhere = faulty["results"].as_array().unwrap().iter().enumerate()
            .filter(|(i, _)| *i != odd)
            .any(|(_, row)| row.to_string().contains(&hashes[odd]));
        prop_assert!(!elsewhere, "another object names the odd request: {}", faulty);
    }

    /// Get Threats looks threats up in batches (one for the hashes, one for the plain paths,
    /// one per path holding a comma): the odd answer to one look-up fails exactly the objects
    /// of that look-up, and every other look-up's objects keep their clean outcome.
    #[test]
    fn an_odd_lookup_page_fails_only_its_batch(
        request in 0usize..4,
        body in odd_body(),
    ) {
        let scenario = json!({
            "accounts": [{"id": "1001", "name": "ACME"}],
            "sites": [{"id": "2001", "name": "HQ", "accountId": "1001"}],
            "agents": [{"id": "3001", "computerName": "WIN-01", "siteId": "2001", "osType": "windows"}],
            "threats": [
                {"id": "4001", "agentId": "3001", "sha1": sha1(1), "filePath": "C:\\Users\\Public\\invoice.exe",
                 "createdAt": "2026-04-20T08:14:03Z"},
                {"id": "4002", "agentId": "3001", "sha1": sha1(2), "filePath": "C:\\tmp\\a,b.exe",
                 "createdAt": "2026-04-20T08:15:03Z"},
                {"id": "4003", "agentId": "3001", "sha1": sha1(3), "filePath": "C:\\tmp\\c,d.exe",
                 "createdAt": "2026-04-20T08:16:03Z"}
            ]
        });
        // Batches in request order: the SHA-1s, the plain paths, then each comma path alone.
        let objects = json!([
            {"id": 1, "type": "SHA-1", "value": sha1(1)},
            {"id": 2, "type": "File Path", "value": "invoice.exe"},
            {"id": 3, "type": "SHA-1", "value": sha1(2)},
            {"id": 4, "type": "File Path", "value": "a,b.exe"},
            {"id": 5, "type": "File Path", "value": "c,d.exe"},
            {"id": 6, "type": "SHA-1", "value": sha1(9)},
        ]);
        let batches: [&[usize]; 4] = [&[0, 2, 5], &[1], &[3], &[4]];
        let envelope = json!({
            "action": "sentinelone-get-threats",
            "config": { "max_concurrency": 1, "requests_per_second": 1000 },
            "objects": objects,
        });
        let (clean_exit, clean) = run(&scenario, json!([]), &envelope);
        prop_assert_eq!(clean_exit, 0, "{}", clean);
        let faults = json!([{ "method": "GET", "path": "/threats", "after": request, "times": 1,
                              "fault": { "body": body } }]);
        let (exit, faulty) = run(&scenario, faults, &envelope);
        prop_assert_eq!(exit, 1, "{}", faulty);
        prop_assert_eq!(compare(&faulty, &clean, "GET /threats"), batches[request].to_vec());
    }
}
