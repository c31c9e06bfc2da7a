//! The fault matrix: each write action (1–4) against a console that rate-limits, fails with 5xx
//! bursts, drops connections before and after applying a write, answers too late, truncates or
//! garbles bodies.
//!
//! Every case runs the same envelope twice, on two simulators seeded alike: once without
//! faults (the reference) and once with them. For faults the client retries, the faulty run
//! must end exactly like the reference: the same outcome and attributes for every object, and
//! the same console state (no entry missing, none duplicated by a retried write). A garbled
//! answer is not retried (DESIGN §4 retries only 429, 408, 5xx, connection errors and
//! timeouts); there the run must still account for every object, say which ones it cannot
//! vouch for, leave no duplicate behind, and a clean re-run must reach the reference state.
//!
//! Every run goes through `support::run` (the canary token never printed) and
//! `support::checked` (one result per object, status and exit code agree).

use std::time::{Duration, Instant};

use s1_sim::{RecordedRequest, Simulator};
use serde_json::{Value, json};

use crate::support::{self, CANARY_TOKEN};

/// One write action with its seed data, envelope and the write requests it sends.
struct Setup {
    action: u32,
    scenario: Value,
    config: Value,
    objects: Vec<Value>,
    /// Method and path prefix of the action's writes.
    write: (&'static str, &'static str),
}

fn sha1(prefix: &str, index: u64) -> String {
    format!("{prefix}{index:036x}")
}

/// Action 1: ten new hashes for two OS types (20 POSTs), two hashes already blacklisted for
/// Windows (one POST each, for Linux), a duplicate, a skipped FQDN and an invalid hash.
fn blacklist() -> Setup {
    let mut objects: Vec<Value> = (1..=10)
        .map(|i| json!({ "id": i, "type": "SHA-1", "value": sha1("a11d", i) }))
        .collect();
    objects.push(json!({ "id": 11, "type": "SHA-1", "value": sha1("b1ac", 1) }));
    objects.push(json!({ "id": 12, "type": "SHA-1", "value": sha1("B1AC", 2) }));
    objects.push(json!({ "id": 13, "type": "SHA-1", "value": sha1("a11d", 3) }));
    objects.push(json!({ "id": 14, "type": "FQDN", "value": "evil.example" }));
    objects.push(json!({ "id": 15, "type": "SHA-1", "value": "not-a-hash" }));
    Setup {
        action: 1,
        scenario: json!({ "generate": { "restrictions": 3 } }),
        config: json!({ "os_type": ["Windows", "Linux"], "description": "fault matrix" }),
        objects,
        write: ("POST", "/web/api/v2.1/restrictions"),
    }
}

/// Action 2: quarantine the threats of twelve hashes (20 threats on 6 agents), plus a hash and
/// a path with no threat.
fn mitigate(action: &str) -> Setup {
    let mut objects: Vec<Value> = (1..=12)
        .map(|i| json!({ "id": i, "type": "SHA-1", "value": sha1("5eed", i) }))
        .collect();
    objects.push(json!({ "id": 13, "type": "SHA-1", "value": sha1("5eed", 999) }));
    objects.push(json!({ "id": 14, "type": "File Path", "value": "C:\\nowhere\\nothing.exe" }));
    let write = if action == "Disconnect from Network" {
        ("POST", "/web/api/v2.1/agents/actions/disconnect")
    } else {
        ("POST", "/web/api/v2.1/threats/mitigate/")
    };
    Setup {
        action: 2,
        scenario: json!({ "generate": { "agents": 6, "threats": 20 } }),
        config: json!({ "mitigation_action": action }),
        objects,
        write,
    }
}

/// Action 3: remove twelve of twenty blacklisted hashes, and two hashes that are not listed.
fn delete() -> Setup {
    let mut objects: Vec<Value> = (1..=12)
        .map(|i| json!({ "id": i, "type": "SHA-1", "value": sha1("b1ac", i) }))
        .collect();
    objects.push(json!({ "id": 13, "type": "SHA-1", "value": sha1("b1ac", 900) }));
    objects.push(json!({ "id": 14, "type": "SHA-1", "value": sha1("dead", 1) }));
    Setup {
        action: 3,
        scenario: json!({ "generate": { "restrictions": 20 } }),
        config: json!({ "list": "Blacklist" }),
        objects,
        write: ("DELETE", "/web/api/v2.1/restrictions"),
    }
}

/// Action 4: twenty indicators of every exportable type, scoped to the token's account.
fn export() -> Setup {
    let mut objects = Vec::new();
    for i in 1..=6u64 {
        objects.push(json!({ "id": i, "type": "IP Address", "value": format!("198.51.100.{i}"),
                             "tags": ["fault"], "attributes": [{ "name": "Severity", "value": "High" }] }));
    }
    for i in 7..=10u64 {
        objects.push(
            json!({ "id": i, "type": "FQDN", "value": format!("host{i}.evil.example"),
                             "adversaries": [{ "name": "APT28" }] }),
        );
    }
    for i in 11..=14u64 {
        objects.push(json!({ "id": i, "type": "SHA-256", "value": format!("{i:064x}") }));
    }
    for i in 15..=17u64 {
        objects.push(json!({ "id": i, "type": "MD5", "value": format!("{i:032x}") }));
    }
    objects.push(json!({ "id": 18, "type": "URL", "value": "https://evil.example/a?b=1" }));
    objects.push(json!({ "id": 19, "type": "IPv6 Address", "value": "2001:db8::19" }));
    objects.push(
        json!({ "id": 20, "type": "SHA-1", "value": sha1("e4e4", 20),
                         "created_at": "2025-08-06 18:09:05" }),
    );
    Setup {
        action: 4,
        scenario: json!({ "accounts": [{ "id": "1001", "name": "Acme" }] }),
        config: json!({ "threatq_hostname": "tq.example" }),
        objects,
        write: ("POST", "/web/api/v2.1/threat-intelligence/iocs"),
    }
}

/// The connection settings of every run: fast, with a retry budget larger than any burst.
fn connection(sim: &Simulator, extra: &Value) -> Value {
    let mut config = json!({
        "hostname": sim.base_url(),
        "api_token": CANARY_TOKEN,
        "requests_per_second": 1000,
        "max_concurrency": 4,
        "max_retries": 4,
        "request_timeout_seconds": 10,
    });
    let config_map = config.as_object_mut().unwrap();
    config_map.extend(extra.as_object().unwrap().clone());
    config
}

fn envelope(setup: &Setup, sim: &Simulator, connection_extra: &Value) -> String {
    let mut config = connection(sim, connection_extra);
    config
        .as_object_mut()
        .unwrap()
        .extend(setup.config.as_object().unwrap().clone());
    json!({
        "action": setup.action,
        "run": { "id": "fault-matrix", "now": "2026-04-22T13:50:54Z" },
        "config": config,
        "objects": setup.objects,
    })
    .to_string()
}

fn with_faults(scenario: &Value, faults: Value) -> Value {
    let mut scenario = scenario.clone();
    scenario["faults"] = faults;
    scenario
}

/// What a run left behind.
struct Outcome {
    exit: i32,
    result: Value,
    state: Value,
    requests: Vec<RecordedRequest>,
}

/// Runs `setup` against a fresh simulator with `faults`, checks the invariants every run keeps,
/// and waits for the simulator to record every request the run sent (an answer delayed past
/// the client's timeout is recorded only once the delay is over).
fn run_with(setup: &Setup, faults: Value, connection_extra: &Value) -> (Outcome, Simulator) {
    let sim = support::simulator(with_faults(&setup.scenario, faults));
    let out = support::run(&["run"], &envelope(setup, &sim, connection_extra));
    let result = support::checked(&out, setup.objects.len());
    let sent = result["metrics"]["http_requests"].as_u64().unwrap() as usize;
    let started = Instant::now();
    while sim.requests().len() < sent && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let requests = sim.requests();
    assert_eq!(
        requests.len(),
        sent,
        "metrics.http_requests counts every request the console saw"
    );
    assert_guards(&requests);
    let outcome = Outcome {
        exit: out.exit,
        result,
        state: sim.state(),
        requests,
    };
    (outcome, sim)
}

fn reference(setup: &Setup) -> Outcome {
    let (outcome, _) = run_with(setup, json!([]), &json!({}));
    assert!(
        outcome
            .requests
            .iter()
            .all(|request| request.fault.is_none()),
        "the reference run has no faults"
    );
    outcome
}

/// Writes that could act on everything: a mitigation or agent action whose filter has no ids,
/// or a DELETE without ids, must never be sent — not even as a retry.
fn assert_guards(requests: &[RecordedRequest]) {
    for request in requests {
        let path = request.path.as_str();
        if path.contains("/threats/mitigate/") || path.contains("/agents/actions/") {
            let filter = request.body.as_ref().and_then(|body| body.get("filter"));
            let ids = filter
                .and_then(|filter| filter.get("ids"))
                .and_then(Value::as_array);
            assert!(
                ids.is_some_and(|ids| !ids.is_empty()),
                "{} {path} sent without filter ids: {:?}",
                request.method,
                request.body
            );
            let keys: Vec<&String> = filter.unwrap().as_object().unwrap().keys().collect();
            assert_eq!(keys, ["ids"], "only ids narrow a write: {:?}", request.body);
        }
        if request.method == "DELETE" {
            let ids = request
                .body
                .as_ref()
                .and_then(|body| body.pointer("/data/ids"))
                .and_then(Value::as_array);
            assert!(ids.is_some_and(|ids| !ids.is_empty()), "{request:?}");
        }
    }
}

fn writes(requests: &[RecordedRequest], setup: &Setup) -> usize {
    requests
        .iter()
        .filter(|request| {
            request.method == setup.write.0 && request.path.starts_with(setup.write.1)
        })
        .count()
}

fn fired(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter_map(|request| request.fault.clone())
        .collect()
}

/// Outcome of every object: status, error code and the attributes added to it.
fn per_object(result: &Value) -> Vec<Value> {
    let objects = result["objects"].as_array().unwrap();
    result["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(objects)
        .map(|(row, object)| {
            json!({
                "status": row["status"],
                "error": row["error"]["code"],
                "attributes": object["attributes"],
            })
        })
        .collect()
}

/// Checks that every object of `faulty` ended as in `clean`, or failed with `code`; returns
/// how many failed instead.
fn same_or_failed(faulty: &Value, clean: &Value, code: &str) -> usize {
    let rows = faulty["results"].as_array().unwrap();
    let mut failed = 0;
    for (index, (row, (got, want))) in rows
        .iter()
        .zip(per_object(faulty).iter().zip(per_object(clean)))
        .enumerate()
    {
        if *got == want {
            continue;
        }
        failed += 1;
        assert_eq!(row["status"], "failed", "object {index}: {row}");
        assert_eq!(row["error"]["code"], code, "object {index}: {row}");
        assert_eq!(want["status"], "succeeded", "object {index}: {want}");
        // Every failure here is retryable: a garbled answer as much as a 5xx burst.
        assert_eq!(row["error"]["retryable"], true, "object {index}: {row}");
    }
    failed
}

/// The faults the client retries. Each scenario fires at most four times in all, so that no
/// single request can meet more faults than its four retries absorb, however the parallel
/// requests interleave.
#[derive(Clone, Copy, Debug)]
enum Retried {
    /// Every second request answered 429 with `Retry-After: 0` (four times).
    RateLimited,
    /// A burst of two 503s on the requests after the first, then a 500 on a write: three
    /// failures, which one request may meet in a row within its four retries.
    ServerErrors,
    /// Every second request's connection closed before the console applied it (four times).
    DropBefore,
    /// The first two writes applied, then their connections closed without an answer.
    DropAfter,
    /// One look-up and the first write answered 1.6 s late, past the 1 s request timeout.
    Slow,
    /// The first write applied, then its answer cut short of its `Content-Length`.
    Truncated,
}

impl Retried {
    fn faults(self, setup: &Setup) -> Value {
        let (method, path) = setup.write;
        match self {
            Self::RateLimited => json!([
                { "every": 2, "times": 4, "fault": { "status": 429, "retry_after": "0" } }
            ]),
            Self::ServerErrors => json!([
                { "after": 1, "times": 2, "fault": { "status": 503, "retry_after": "0" } },
                { "method": method, "path": path, "times": 1, "fault": { "status": 500 } }
            ]),
            Self::DropBefore => json!([
                { "every": 2, "times": 4, "fault": { "drop": "before" } }
            ]),
            Self::DropAfter => json!([
                { "method": method, "path": path, "times": 2, "fault": { "drop": "after" } }
            ]),
            Self::Slow => json!([
                { "method": "GET", "times": 1, "fault": { "delay_ms": 1600 } },
                { "method": method, "path": path, "times": 1, "fault": { "delay_ms": 1600 } }
            ]),
            Self::Truncated => json!([
                { "method": method, "path": path, "times": 1, "fault": { "truncated": true } }
            ]),
        }
    }

    fn connection(self) -> Value {
        match self {
            Self::Slow => json!({ "request_timeout_seconds": 1 }),
            _ => json!({}),
        }
    }
}

/// A retried fault changes nothing: same outcomes, same attributes, same console state.
fn recovers(setup: &Setup, fault: Retried) {
    let clean = reference(setup);
    let (faulty, _sim) = run_with(setup, fault.faults(setup), &fault.connection());
    let fired = fired(&faulty.requests);
    assert!(!fired.is_empty(), "{fault:?}: no fault fired");
    assert!(
        faulty.result["metrics"]["retries"].as_u64().unwrap() > 0,
        "{fault:?}: nothing was retried"
    );
    assert_eq!(
        faulty.exit, clean.exit,
        "{fault:?} (fired {fired:?}): {}",
        faulty.result
    );
    assert_eq!(
        per_object(&faulty.result),
        per_object(&clean.result),
        "{fault:?} (fired {fired:?}): every object ends as without faults"
    );
    assert_eq!(faulty.result["errors"], clean.result["errors"]);
    assert_eq!(
        faulty.state, clean.state,
        "{fault:?} (fired {fired:?}): the console ends as without faults"
    );
    assert!(
        writes(&clean.requests, setup) > 0,
        "the reference run writes"
    );
}

macro_rules! retried_matrix {
    ($($name:ident: $setup:expr, $fault:ident;)*) => {
        $(
            #[test]
            fn $name() {
                recovers(&$setup, Retried::$fault);
            }
        )*
    };
}

retried_matrix! {
    blacklist_rate_limited: blacklist(), RateLimited;
    blacklist_server_errors: blacklist(), ServerErrors;
    blacklist_drop_before: blacklist(), DropBefore;
    blacklist_drop_after: blacklist(), DropAfter;
    blacklist_slow: blacklist(), Slow;
    blacklist_truncated: blacklist(), Truncated;
    mitigate_rate_limited: mitigate("Quarantine"), RateLimited;
    mitigate_server_errors: mitigate("Quarantine"), ServerErrors;
    mitigate_drop_before: mitigate("Quarantine"), DropBefore;
    mitigate_drop_after: mitigate("Quarantine"), DropAfter;
    mitigate_slow: mitigate("Quarantine"), Slow;
    mitigate_truncated: mitigate("Quarantine"), Truncated;
    mitigate_kill_drop_after: mitigate("Kill"), DropAfter;
    mitigate_rollback_drop_after: mitigate("Rollback Remediate"), DropAfter;
    disconnect_drop_after: mitigate("Disconnect from Network"), DropAfter;
    disconnect_server_errors: mitigate("Disconnect from Network"), ServerErrors;
    delete_rate_limited: delete(), RateLimited;
    delete_server_errors: delete(), ServerErrors;
    delete_drop_before: delete(), DropBefore;
    delete_drop_after: delete(), DropAfter;
    delete_slow: delete(), Slow;
    delete_truncated: delete(), Truncated;
    export_rate_limited: export(), RateLimited;
    export_server_errors: export(), ServerErrors;
    export_drop_before: export(), DropBefore;
    export_drop_after: export(), DropAfter;
    export_slow: export(), Slow;
    export_truncated: export(), Truncated;
}

/// A garbled answer to the last write: the console applied it, the client cannot read the
/// answer and does not retry it. The object of that write is reported failed with
/// `upstream.bad_response` (retryable), every other object ends as without faults, the run is
/// partial (exit 1, no run error), and the console state equals the reference — the write
/// landed exactly once.
fn garbled_last_write(setup: &Setup) {
    let clean = reference(setup);
    let total = writes(&clean.requests, setup) as u64;
    let (method, path) = setup.write;
    let faults = json!([{ "method": method, "path": path, "after": total - 1, "times": 1,
                          "fault": { "malformed": true } }]);
    let (faulty, _sim) = run_with(setup, faults, &json!({}));
    assert_eq!(fired(&faulty.requests), ["malformed"]);
    assert_eq!(faulty.exit, 1, "{}", faulty.result);
    assert_eq!(faulty.result["errors"], json!([]), "{}", faulty.result);
    let garbled = same_or_failed(&faulty.result, &clean.result, "upstream.bad_response");
    assert!(
        garbled > 0,
        "the garbled write's objects are not vouched for"
    );
    assert_eq!(faulty.state, clean.state, "the write landed exactly once");
}

#[test]
fn blacklist_garbled_last_write() {
    garbled_last_write(&blacklist());
}

#[test]
fn mitigate_garbled_write() {
    garbled_last_write(&mitigate("Quarantine"));
}

#[test]
fn delete_garbled_write() {
    garbled_last_write(&delete());
}

#[test]
fn export_garbled_write() {
    garbled_last_write(&export());
}

/// A garbled answer to the first request (a look-up): nothing is written for the objects it
/// concerned, each is reported failed (exit 1: the other requests went on), nothing is
/// duplicated, and a clean re-run on the same console reaches the reference state.
fn garbled_read_then_rerun(setup: &Setup) {
    let clean = reference(setup);
    let faults = json!([{ "method": "GET", "times": 1, "fault": { "malformed": true } }]);
    let (faulty, sim) = run_with(setup, faults, &json!({}));
    assert_eq!(fired(&faulty.requests), ["malformed"]);
    assert_eq!(faulty.exit, 1, "{}", faulty.result);
    assert_eq!(faulty.result["errors"], json!([]), "{}", faulty.result);
    assert!(same_or_failed(&faulty.result, &clean.result, "upstream.bad_response") > 0);
    // The garbling rule fired once; the same console now answers normally.
    let again = support::run(&["run"], &envelope(setup, &sim, &json!({})));
    let result = support::checked(&again, setup.objects.len());
    assert_eq!(again.exit, clean.exit, "{result}");
    assert_eq!(sim.state(), clean.state);
}

#[test]
fn blacklist_garbled_read_then_rerun() {
    garbled_read_then_rerun(&blacklist());
}

#[test]
fn mitigate_garbled_read_then_rerun() {
    garbled_read_then_rerun(&mitigate("Quarantine"));
}

#[test]
fn delete_garbled_read_then_rerun() {
    garbled_read_then_rerun(&delete());
}

#[test]
fn export_garbled_read_then_rerun() {
    garbled_read_then_rerun(&export());
}

/// A 5xx burst longer than the retry budget ends the run: exit 5, every object accounted for
/// and the unfinished ones retryable; whatever was written is not written twice, and a re-run
/// on the same console, once it is healthy again, reaches the reference state.
fn outlasting_burst(setup: &Setup) {
    let clean = reference(setup);
    let (method, path) = setup.write;
    // One worker, so that both 503s hit the same write and exhaust its single retry.
    let faults =
        json!([{ "method": method, "path": path, "times": 2, "fault": { "status": 503 } }]);
    let connection = json!({ "max_retries": 1, "max_concurrency": 1 });
    let (faulty, sim) = run_with(setup, faults, &connection);
    assert_eq!(faulty.exit, 5, "{}", faulty.result);
    assert_eq!(faulty.result["errors"][0]["code"], "upstream.server_error");
    let unfinished = same_or_failed(&faulty.result, &clean.result, "upstream.server_error");
    assert!(unfinished > 0);
    let again = support::run(&["run"], &envelope(setup, &sim, &json!({})));
    let result = support::checked(&again, setup.objects.len());
    assert_eq!(again.exit, clean.exit, "{result}");
    assert_eq!(sim.state(), clean.state);
}

#[test]
fn blacklist_outlasting_burst() {
    outlasting_burst(&blacklist());
}

#[test]
fn export_outlasting_burst() {
    outlasting_burst(&export());
}

/// A mitigation whose answer was lost, with no retry left, is reported failed although the
/// console applied it; re-running it then reports the same computers as one clean run, and
/// the console state is the reference state — re-mitigating is not a failure.
#[test]
fn mitigation_rerun_after_a_lost_answer() {
    for action in ["Quarantine", "Disconnect from Network"] {
        let setup = mitigate(action);
        let clean = reference(&setup);
        let (method, path) = setup.write;
        let faults =
            json!([{ "method": method, "path": path, "times": 1, "fault": { "drop": "after" } }]);
        let (cut, sim) = run_with(&setup, faults, &json!({ "max_retries": 0 }));
        assert_eq!(cut.exit, 5, "{action}: {}", cut.result);
        assert_eq!(cut.result["errors"][0]["code"], "network.connect");
        assert_eq!(cut.state, clean.state, "{action}: the console applied it");
        let again = support::run(&["run"], &envelope(&setup, &sim, &json!({})));
        let result = support::checked(&again, setup.objects.len());
        assert_eq!(again.exit, clean.exit, "{action}: {result}");
        assert_eq!(per_object(&result), per_object(&clean.result), "{action}");
        assert_eq!(sim.state(), clean.state, "{action}");
    }
}

// ---------------------------------------------------------------- the token in echoed answers

/// What an echoing console puts in its error detail, given the request it received.
type Echo = fn(&str) -> String;

/// A console that puts `echo(request)` in the `detail` of an error answer with `status`.
fn echoing(status: u16, echo: Echo) -> support::ScriptedServer {
    support::ScriptedServer::start(move |request| {
        support::Reply::json(
            status,
            &json!({ "errors": [{ "code": 4000010, "title": "Echo", "detail": echo(request) }] }),
        )
    })
}

/// Error answers that echo the request (and so the `Authorization` header or the token in a
/// body), the token alone, the token escaped, or the token just where a long detail is cut
/// short: whatever the status, no piece of the token is printed.
#[test]
fn answers_that_echo_the_token_never_print_it() {
    let echoes: [(&str, Echo); 4] = [
        ("the request", |request| request.to_string()),
        ("the token", |_| CANARY_TOKEN.to_string()),
        ("the header", |_| {
            format!("bad header Authorization: ApiToken {CANARY_TOKEN}")
        }),
        // Quoted details are cut at 300 characters: here the cut falls inside the token.
        ("a long detail", |_| {
            format!("{} {CANARY_TOKEN} and more", "x".repeat(285))
        }),
    ];
    for status in [400, 401, 403, 500] {
        for (name, echo) in echoes {
            let server = echoing(status, echo);
            for (command, envelope) in [
                (
                    "run",
                    json!({ "action": 3, "objects": [{ "type": "SHA-1", "value": sha1("b1ac", 1) }] }),
                ),
                ("check", json!({})),
            ] {
                let mut envelope = envelope;
                envelope["config"] = json!({ "hostname": server.base_url(), "api_token": CANARY_TOKEN,
                                             "max_retries": 0 });
                let out = support::run(&[command], &envelope.to_string());
                let objects = envelope["objects"].as_array().map_or(0, Vec::len);
                let result = support::checked(&out, objects);
                assert!(
                    [1, 4, 5].contains(&out.exit),
                    "{status} {name} {command}: {result}"
                );
                support::assert_no_token_fragment(&out, 8);
            }
            assert!(
                server.requests().iter().all(|r| r.contains(CANARY_TOKEN)),
                "the requests carried the token the answers echo"
            );
        }
    }
}

/// An input object that spells the token with JSON escapes is echoed in `objects`; the
/// result must not hand the token back in any spelling a JSON reader decodes.
#[test]
fn an_object_spelling_the_token_with_escapes_is_masked() {
    let escaped: String = CANARY_TOKEN
        .chars()
        .map(|c| format!("\\u{:04x}", u32::from(c)))
        .collect();
    let text = format!(
        r#"{{"action": 3, "config": {{"hostname": "http://127.0.0.1:9", "api_token": "{CANARY_TOKEN}", "max_retries": 0}},
            "objects": [{{"type": "SHA-1", "value": "{}", "note": "{escaped}", "{escaped}": 1}}]}}"#,
        sha1("b1ac", 1)
    );
    for command in ["validate", "run"] {
        let out = support::run(&[command], &text);
        let result = support::checked(&out, 1);
        let printed = result.to_string();
        assert!(!printed.contains(CANARY_TOKEN), "{command}: {printed}");
        assert_eq!(result["objects"][0]["note"], "****", "{command}");
    }
}

/// A token that reads like JSON structure (`null`, a number) is masked in strings only: the
/// result stays one parseable document.
#[test]
fn a_token_that_looks_like_json_keeps_the_result_parseable() {
    for token in ["null", "1000", "true,", "{\"a\":1}", "0000000000"] {
        let text = json!({
            "action": 3,
            "config": { "hostname": "http://127.0.0.1:9", "api_token": token, "max_retries": 0,
                        "objects_per_run": 1000 },
            "objects": [{ "id": 1000, "type": "SHA-1", "value": sha1("b1ac", 1), "note": token }],
        })
        .to_string();
        for command in ["validate", "run"] {
            let out = support::run(&[command], &text);
            let result = support::checked(&out, 1);
            assert_eq!(result["objects"][0]["note"], "****", "{token} {command}");
            assert_eq!(result["objects"][0]["id"], 1000, "{token} {command}");
            for line in out.stderr.lines() {
                serde_json::from_str::<Value>(line).unwrap_or_else(|err| {
                    panic!("{token}: stderr line is not JSON ({err}): {line}")
                });
            }
        }
    }
}

// ---------------------------------------------------------------- guards

/// A console whose threats lack ids or agent ids, blank or absent, and which records and
/// accepts every write.
fn console_with_threats(threats: Value) -> support::ScriptedServer {
    support::ScriptedServer::start(move |request| {
        if request.starts_with("GET /web/api/v2.1/threats") {
            support::Reply::json(
                200,
                &json!({ "data": threats, "pagination": { "nextCursor": null } }),
            )
        } else {
            support::Reply::json(200, &json!({ "data": { "affected": 1 } }))
        }
    })
}

fn threat(id: Value, agent: Option<Value>, index: u64) -> Value {
    let mut threat = json!({ "id": id, "threatInfo": { "sha1": sha1("5eed", index) } });
    if let Some(agent) = agent {
        threat["agentRealtimeInfo"] = json!({ "agentId": agent });
    }
    threat
}

/// The `filter.ids` of every write the console received.
fn write_filters(server: &support::ScriptedServer) -> Vec<Value> {
    server
        .requests()
        .iter()
        .filter(|request| request.starts_with("POST"))
        .map(|request| {
            let body = request.split_once("\r\n\r\n").unwrap().1;
            let body: Value = serde_json::from_str(body).unwrap();
            body["filter"].clone()
        })
        .collect()
}

fn mitigate_on(server: &support::ScriptedServer, action: &str, count: u64) -> Value {
    let objects: Vec<Value> = (1..=count)
        .map(|i| json!({ "id": i, "type": "SHA-1", "value": sha1("5eed", i) }))
        .collect();
    let envelope = json!({
        "action": 2,
        "config": { "hostname": server.base_url(), "api_token": CANARY_TOKEN, "max_retries": 0,
                    "mitigation_action": action },
        "objects": objects,
    });
    let out = support::run(&["run"], &envelope.to_string());
    support::checked(&out, objects.len())
}

/// Threats without a usable id, or whose computer has no usable agent id, never put an empty
/// or blank id into a write filter: a filter without ids would act on every threat or agent.
#[test]
fn writes_never_carry_an_empty_or_blank_id_filter() {
    let threats = json!([
        threat(json!(""), Some(json!("agent-1")), 1),
        threat(json!("  "), Some(json!("agent-1")), 1),
        threat(Value::Null, Some(json!("agent-1")), 1),
        threat(json!("t-2"), Some(json!("")), 2),
        threat(json!("t-3"), None, 3),
        threat(json!("t-4"), Some(json!(" ")), 4),
        threat(json!("t-5"), Some(Value::Null), 5),
    ]);
    for action in ["Disconnect from Network", "Quarantine"] {
        let server = console_with_threats(threats.clone());
        let result = mitigate_on(&server, action, 5);
        for filter in write_filters(&server) {
            let ids = filter["ids"].as_array().unwrap();
            assert!(!ids.is_empty(), "{action}: {filter}");
            assert!(
                ids.iter()
                    .all(|id| id.as_str().is_some_and(|id| !id.trim().is_empty())),
                "{action}: a blank id in {filter}"
            );
            assert_eq!(filter.as_object().unwrap().len(), 1, "{action}: {filter}");
        }
        if action == "Disconnect from Network" {
            // No threat names a computer: nothing to isolate, and nothing sent.
            assert!(write_filters(&server).is_empty(), "{result}");
        }
    }
}

/// With no threat to act on, no mitigation or isolation request is sent at all.
#[test]
fn no_threats_means_no_write() {
    for action in ["Disconnect from Network", "Kill"] {
        let server = console_with_threats(json!([]));
        let result = mitigate_on(&server, action, 3);
        assert!(write_filters(&server).is_empty(), "{action}: {result}");
        for row in result["results"].as_array().unwrap() {
            assert_eq!(row["detail"], "No matching threats", "{row}");
        }
    }
}

/// A console that answers every request with `head` and then streams `chunk` without end;
/// returns its address and the number of body bytes it managed to send.
fn endless_console(
    head: &'static str,
    chunk: &'static [u8],
) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::io::Write as _;
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&sent);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counter = std::sync::Arc::clone(&counter);
            std::thread::spawn(move || {
                if support::read_request(&mut stream).is_none() {
                    return;
                }
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                // Bounded by the test: never more than 1 GiB, whatever the client does.
                for _ in 0..(1 << 30) / chunk.len() {
                    if stream.write_all(chunk).is_err() {
                        return;
                    }
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (base, sent)
}

/// Answers larger than the client reads (32 MiB for a success, 64 KiB for an error) are
/// refused after that many bytes: `upstream.bad_response` (or the error's own status), never
/// an attempt to hold an endless body in memory.
#[test]
fn oversized_answers_are_bad_responses_not_out_of_memory() {
    static SPACES: [u8; 65536] = [b' '; 65536];
    let cases: [(&str, &str); 3] = [
        (
            "announced",
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1099511627776\r\n\r\n[",
        ),
        (
            "chunked",
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[",
        ),
        (
            "an error",
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 1099511627776\r\n\r\n",
        ),
    ];
    for (name, head) in cases {
        let (base, sent) = endless_console(head, &SPACES);
        let envelope = json!({
            "action": 3,
            "config": { "hostname": base, "api_token": CANARY_TOKEN, "max_retries": 0 },
            "objects": [{ "type": "SHA-1", "value": sha1("b1ac", 1) }],
        });
        let out = support::run(&["run"], &envelope.to_string());
        let result = support::checked(&out, 1);
        // A 5xx ends the run; an oversized answer fails only the object of its request.
        let (exit, error) = if name == "an error" {
            (5, &result["errors"][0])
        } else {
            (1, &result["results"][0]["error"])
        };
        assert_eq!(out.exit, exit, "{name}: {result}");
        let expected = if name == "an error" {
            "upstream.server_error"
        } else {
            "upstream.bad_response"
        };
        assert_eq!(error["code"], expected, "{name}: {result}");
        if expected == "upstream.bad_response" {
            let message = error["message"].as_str().unwrap();
            assert!(message.contains("33554432 bytes"), "{name}: {message}");
        }
        // What the server got into the socket: the cap, plus what kernel buffers hold.
        let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
        assert!(sent < (32 + 32) << 20, "{name}: {sent} bytes sent");
    }
}

/// A body within the cap but nested deeper than a JSON reader should follow is a bad
/// response, not a stack overflow.
#[test]
fn a_deeply_nested_answer_is_a_bad_response() {
    let server = support::ScriptedServer::start(|_| support::Reply {
        status: 200,
        headers: vec!["Content-Type: application/json".into()],
        body: format!(
            "{{\"data\": {}{}}}",
            "[".repeat(500_000),
            "]".repeat(500_000)
        )
        .into_bytes(),
    });
    let envelope = json!({
        "action": 3,
        "config": { "hostname": server.base_url(), "api_token": CANARY_TOKEN, "max_retries": 0 },
        "objects": [{ "type": "SHA-1", "value": sha1("b1ac", 1) }],
    });
    let out = support::run(&["run"], &envelope.to_string());
    let result = support::checked(&out, 1);
    // Only the object of that request fails: exit 1, no run error.
    assert_eq!(out.exit, 1, "{result}");
    assert_eq!(
        result["results"][0]["error"]["code"], "upstream.bad_response",
        "{result}"
    );
}
