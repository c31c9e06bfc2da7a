//! Ingest checkpoints across runs: the three actions that read "what is new since the last run"
//! (11 activities, 14 alerts, 18 threats) neither miss nor repeat an item over a sequence of
//! runs, each fed the `state` the run before returned, while items share timestamps, a run stops
//! in the middle of a timestamp (the per-run maximum), and new items arrive between runs.
//!
//! The simulator cannot add items to a running console, so "items arrive between runs" is
//! played by starting a new console before the next run from a scenario holding every earlier
//! seed (same ids and times) plus the new ones. That is what a real console looks like to the
//! next run: the old items unchanged, new ones created since. Seeding items dated after the
//! scenario clock would not do: the actions read everything created since the checkpoint with
//! no upper bound, so the first run would already see them. The new items include some created
//! at exactly the timestamp where the previous run stopped (the hardest case for a `>=`
//! checkpoint: they must be taken, and the items taken there before must not be taken again),
//! and some created later.

use std::collections::BTreeSet;

use s1_sim::{Scenario, Simulator};
use serde_json::{Value, json};

use crate::support;

/// Items seeded before the first run.
const INITIAL: usize = 2_500;
/// Items sharing each timestamp.
const PER_TIMESTAMP: usize = 10;
/// The per-run maximum: not a multiple of `PER_TIMESTAMP`, so runs stop inside a timestamp.
const CAP: usize = 997;
const CLOCK: &str = "2026-04-22T13:50:54Z";
/// The first items' creation time; later ones are one second apart per `PER_TIMESTAMP` items.
const START: i64 = 1_776_643_200; // 2026-04-20T00:00:00Z

/// One ingest action under test.
struct Kind {
    action: &'static str,
    /// The scenario key of its items.
    seeds: &'static str,
    /// The parameter capping one run.
    cap: &'static str,
    /// First digits of the item ids, distinct per kind.
    id_base: u64,
    /// The seed of item `id` created at `time`.
    seed: fn(id: &str, index: u64, time: &str) -> Value,
    /// The ids of the items a run took, in the order found, one per item taken.
    taken: fn(&Value) -> Vec<String>,
}

fn threat(id: &str, index: u64, time: &str) -> Value {
    json!({
        "id": id,
        "agentId": format!("{}", 3001 + index % 5),
        "sha1": format!("a{index:039x}"),
        "filePath": format!("C:\\Users\\Public\\dropper-{index}.exe"),
        "createdAt": time,
    })
}

fn alert(id: &str, index: u64, time: &str) -> Value {
    json!({
        "id": id,
        "agentId": format!("{}", 3001 + index % 5),
        "ruleName": "Encoded PowerShell",
        "severity": "High",
        "sha1": format!("b{index:039x}"),
        "filePath": format!("C:\\Temp\\ps-{index}.exe"),
        "createdAt": time,
    })
}

fn activity(id: &str, index: u64, time: &str) -> Value {
    json!({
        "id": id,
        "activityType": 18,
        "agentId": format!("{}", 3001 + index % 5),
        "primaryDescription": format!("Threat {index} detected"),
        "createdAt": time,
    })
}

/// The ids carried by the SHA-1 indicators produced (each item has a SHA-1 of its own).
fn produced_ids(result: &Value, attribute: &str) -> Vec<String> {
    result["produced"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|object| object["type"] == "SHA-1")
        .flat_map(|object| object["attributes"].as_array().unwrap().iter())
        .filter(|pair| pair["name"] == attribute)
        .map(|pair| pair["value"].as_str().unwrap().to_string())
        .collect()
}

const KINDS: [Kind; 3] = [
    Kind {
        action: "sentinelone-ingest-threats",
        seeds: "threats",
        cap: "max_threats_per_run",
        id_base: 710_000_000_000_000_000,
        seed: threat,
        taken: |result| produced_ids(result, "SentinelOne Threat ID"),
    },
    Kind {
        action: "sentinelone-get-alerts",
        seeds: "alerts",
        cap: "max_items_per_run",
        id_base: 720_000_000_000_000_000,
        seed: alert,
        taken: |result| produced_ids(result, "SentinelOne Alert ID"),
    },
    Kind {
        action: "sentinelone-get-activities",
        seeds: "activities",
        cap: "max_items_per_run",
        id_base: 730_000_000_000_000_000,
        seed: activity,
        taken: |result| {
            result["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row["id"].as_str().unwrap().to_string())
                .collect()
        },
    },
];

fn time_text(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The console as the next run sees it.
struct Console {
    kind: &'static Kind,
    items: Vec<Value>,
}

impl Console {
    fn new(kind: &'static Kind) -> Self {
        let mut console = Self {
            kind,
            items: Vec::new(),
        };
        for index in 0..INITIAL {
            let time = START + (index / PER_TIMESTAMP) as i64;
            console.add(&time_text(time));
        }
        console
    }

    /// A new item created at `time` (RFC 3339).
    fn add(&mut self, time: &str) {
        let index = self.items.len() as u64;
        let id = (self.kind.id_base + index).to_string();
        self.items.push((self.kind.seed)(&id, index, time));
    }

    fn ids(&self) -> BTreeSet<String> {
        self.items
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn start(&self) -> Simulator {
        self.start_with(json!([]))
    }

    /// The console, injecting `faults` (the scenario's fault rules).
    fn start_with(&self, faults: Value) -> Simulator {
        let agents: Vec<Value> = (0..5)
            .map(|n| json!({"id": format!("{}", 3001 + n), "computerName": format!("WS-{n}"), "siteId": "2001"}))
            .collect();
        let mut scenario = json!({
            "api_token": support::CANARY_TOKEN,
            "clock": CLOCK,
            "accounts": [{"id": "1001", "name": "ACME Corp"}],
            "sites": [{"id": "2001", "name": "ACME HQ", "accountId": "1001"}],
            "agents": agents,
            "faults": faults,
        });
        scenario[self.kind.seeds] = Value::Array(self.items.clone());
        Simulator::start(Scenario::from_json(&scenario.to_string()).unwrap()).unwrap()
    }
}

/// One run against `sim` from `state`; the ids it took, its state and its warnings' codes.
fn run(kind: &Kind, sim: &Simulator, state: &Value) -> (Vec<String>, Value, Vec<String>) {
    let (exit, result) = run_with(kind, sim, state, json!({}));
    assert_eq!(exit, 0, "{}: {result}", kind.action);
    let warnings = result["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|warning| warning["code"].as_str().unwrap().to_string())
        .collect();
    ((kind.taken)(&result), result["state"].clone(), warnings)
}

/// One run with `config` added to the envelope's; its exit code and result.
fn run_with(kind: &Kind, sim: &Simulator, state: &Value, config: Value) -> (i32, Value) {
    let mut envelope = json!({
        "protocol": 1,
        "action": kind.action,
        "run": {"now": CLOCK},
        "config": {
            "hostname": sim.base_url(),
            "api_token": support::CANARY_TOKEN,
            "hours_back": 720,
        },
        "objects": [],
        "state": state,
    });
    envelope["config"][kind.cap] = json!(CAP);
    for (key, value) in config.as_object().unwrap() {
        envelope["config"][key] = value.clone();
    }
    let output = support::run(&["run"], &envelope.to_string());
    (output.exit, output.json())
}

fn neither_missed_nor_repeated(kind: &'static Kind) {
    let mut console = Console::new(kind);
    let mut taken: Vec<String> = Vec::new();
    let mut state = Value::Null;
    let mut counts = Vec::new();
    for run_number in 1..=3 {
        if run_number > 1 {
            // New items between runs: five at exactly the timestamp the last run stopped at,
            // then ten one second apart after everything so far.
            let since = state["since"].as_str().unwrap().to_string();
            for _ in 0..5 {
                console.add(&since);
            }
            let last = START + ((INITIAL / PER_TIMESTAMP) as i64) + 10 * run_number;
            for second in 0..10 {
                console.add(&time_text(last + second));
            }
        }
        let sim = console.start();
        let (ids, next, warnings) = run(kind, &sim, &state);
        counts.push(ids.len());
        let capped = warnings.iter().any(|code| code == "ingest.limit_reached");
        assert_eq!(
            capped,
            ids.len() == CAP,
            "{} run {run_number}: the limit warning goes with a full run ({warnings:?})",
            kind.action
        );
        taken.extend(ids);
        state = next;
    }

    let all = console.ids();
    let unique: BTreeSet<String> = taken.iter().cloned().collect();
    assert_eq!(
        taken.len(),
        unique.len(),
        "{}: items repeated across runs",
        kind.action
    );
    let missed: Vec<&String> = all.difference(&unique).collect();
    assert!(missed.is_empty(), "{}: missed {missed:?}", kind.action);
    assert_eq!(unique, all, "{}: took items that do not exist", kind.action);
    // 2,500 + 15 + 15 items: two full runs, then the rest.
    assert_eq!(
        counts,
        [CAP, CAP, INITIAL + 30 - 2 * CAP],
        "{}",
        kind.action
    );

    // A fourth run finds nothing new and keeps the checkpoint.
    let sim = console.start();
    let (ids, again, _) = run(kind, &sim, &state);
    assert!(
        ids.is_empty(),
        "{}: a run with nothing new took {ids:?}",
        kind.action
    );
    assert_eq!(again, state, "{}: the checkpoint moved", kind.action);
}

#[test]
fn threats_are_neither_missed_nor_repeated_across_runs() {
    neither_missed_nor_repeated(&KINDS[0]);
}

#[test]
fn alerts_are_neither_missed_nor_repeated_across_runs() {
    neither_missed_nor_repeated(&KINDS[1]);
}

#[test]
fn activities_are_neither_missed_nor_repeated_across_runs() {
    neither_missed_nor_repeated(&KINDS[2]);
}

/// A page that fails after retries ends the run (exit 5), but what was read before it is
/// produced with a state covering exactly that: whether the orchestrator keeps both or drops
/// both, the next run neither misses nor repeats.
#[test]
fn a_failed_page_keeps_what_was_read_before_it() {
    let kind = &KINDS[0];
    let console = Console::new(kind);
    let failing = console.start_with(json!([
        {"path": "/threats", "after": 1, "fault": {"status": 503}}
    ]));
    let mut config = json!({"max_retries": 0});
    config[kind.cap] = json!(10_000);
    let (exit, result) = run_with(kind, &failing, &Value::Null, config.clone());
    assert_eq!(exit, 5, "{result}");
    assert_eq!(result["errors"][0]["code"], "upstream.server_error");
    let first = (kind.taken)(&result);
    assert_eq!(first.len(), 1000, "the first page is produced");
    let state = result["state"].clone();
    assert_eq!(state["seen"].as_array().unwrap().len(), PER_TIMESTAMP);

    let healthy = console.start();
    let (exit, result) = run_with(kind, &healthy, &state, config);
    assert_eq!(exit, 0, "{result}");
    let second = (kind.taken)(&result);
    let all: BTreeSet<String> = first.iter().chain(&second).cloned().collect();
    assert_eq!(first.len() + second.len(), all.len(), "nothing repeated");
    assert_eq!(all, console.ids(), "nothing missed");
}
