//! `validate` says what `run` will say: both go through one function up to the first request.
//!
//! Envelopes are mutations of a valid envelope of every action (the demo envelopes): wrong
//! types, bad hostnames and connection options, bad action parameters, bad state and run
//! settings, a missing token, trailing text, deep nesting, bad objects. For each, `run` (against
//! a recording simulator) and `validate` run in process. Whenever `run` exits 3, nothing was
//! sent and `validate` exits 3 with the same error codes and fields; whenever `validate` exits 3,
//! so does `run`; and `validate` exiting 0 means `run` does not exit 3.
//!
//! The case count is bounded for CI; `PROPTEST_CASES` sets it for longer runs, and the seed is
//! fixed unless `PROPTEST_RNG_SEED` is set.

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use s1_actions::runner::{self, Mode};
use s1_sim::Simulator;
use serde_json::{Value, json};

use crate::support::{self, CANARY_TOKEN};

/// Cases in CI: each runs the envelope twice in process, one of them against the simulator.
const CASES: u32 = 160;

/// Actions that check their parameters or state themselves before their first request: their
/// envelopes are drawn more often.
const SELF_CHECKING: &[&str] = &[
    "sentinelone-get-activities",
    "sentinelone-get-alerts",
    "sentinelone-ingest-threats",
    "sentinelone-update-alerts",
    "sentinelone-update-threats",
];

/// A valid envelope of any action, the self-checking ones more often.
fn base() -> impl Strategy<Value = Value> {
    let all = valid_envelopes();
    let checking: Vec<Value> = all
        .iter()
        .filter(|envelope| {
            SELF_CHECKING
                .iter()
                .any(|name| envelope["action"] == json!(name))
        })
        .cloned()
        .collect();
    prop_oneof![
        3 => prop::sample::select(all),
        2 => prop::sample::select(checking),
    ]
}

fn config() -> ProptestConfig {
    support::proptest_config(CASES, 0x7a11_d8e5)
}

/// The simulator every case's `run` is pointed at; it records every request it receives.
fn simulator() -> &'static Simulator {
    static SIMULATOR: OnceLock<Simulator> = OnceLock::new();
    SIMULATOR.get_or_init(|| support::simulator(json!({})))
}

/// A valid envelope of every action: the demo envelopes, aimed at the simulator, no retries.
fn valid_envelopes() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo");
    let mut envelopes: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().is_some_and(|name| name != "scenario.json"))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("{{base_url}}", &simulator().base_url())
                .replace("{{token}}", CANARY_TOKEN);
            let mut envelope: Value = serde_json::from_str(&text).unwrap();
            envelope["config"]["max_retries"] = json!(0);
            envelope
        })
        .collect();
    envelopes.sort_by_key(Value::to_string);
    envelopes
}

/// One change to an envelope.
#[derive(Debug, Clone)]
enum Mutation {
    /// `config.<key>` set to the value.
    Config(&'static str, Value),
    /// `config.api_token` removed.
    NoToken,
    /// Nothing to change: both choices "No Change", no note.
    NoChange,
    /// The action's own parameter (index into its manifest parameters) set to the value.
    Param(usize, Value),
    State(Value),
    Run(&'static str, Value),
    Protocol(Value),
    /// Another object appended.
    Object(Value),
    /// `objects` replaced.
    Objects(Value),
    /// A list nested this deep, inside an object, config, state or run.
    Deep(usize, usize),
    /// Text after the envelope.
    Trailing(&'static str),
}

fn bad_values() -> Vec<Value> {
    vec![
        json!(7),
        json!(-1),
        json!(2.5),
        json!("nonsense"),
        json!(""),
        json!([]),
        json!(["x", 1]),
        json!({ "a": 1 }),
        json!(null),
        json!(true),
        json!("No Change"),
        json!(1e300),
        json!(["login"]),
        json!(["1", "x2"]),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Hostnames and proxies that are refused, or that lead nowhere but the simulator: a run
    // must never reach a real network.
    let connection = prop_oneof![
        prop::sample::select(vec![
            json!("ftp://x"),
            json!("h/path?q"),
            json!(""),
            json!("http://example.com"),
            json!("https://h:99999"),
            json!("http://127.0.0.1:9/path"),
            json!(7),
        ])
        .prop_map(|value| Mutation::Config("hostname", value)),
        prop::sample::select(vec![
            json!("socks5://x"),
            json!("::::"),
            json!("http://"),
            json!(7),
        ])
        .prop_map(|value| Mutation::Config("proxy", value)),
        prop::sample::select(vec![
            json!("/no/such/file.pem"),
            json!("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            json!(3),
        ])
        .prop_map(|value| Mutation::Config("ca_bundle", value)),
        (
            prop::sample::select(vec![
                "request_timeout_seconds",
                "max_retries",
                "requests_per_second",
                "max_concurrency",
                "objects_per_run",
                "verify_tls",
                "api_token",
            ]),
            prop::sample::select(vec![
                json!(0),
                json!(-1),
                json!(1e300),
                json!(u64::MAX),
                json!(50_001),
                json!("false"),
                json!(7),
                json!(""),
            ]),
        )
            .prop_map(|(key, value)| Mutation::Config(key, value)),
        Just(Mutation::NoToken),
    ];
    let state = prop::sample::select(vec![
        json!({ "version": 2, "since": "2026-04-22T09:00:00Z", "seen": [] }),
        json!({ "version": 1, "since": "yesterday", "seen": [] }),
        json!({ "version": 1, "since": "2026-04-22T09:00:00Z", "seen": [1] }),
        json!({ "version": 1, "since": "2026-04-22T09:00:00Z", "seen": ["a"] }),
        json!("x"),
        json!(7),
        json!([]),
    ])
    .prop_map(Mutation::State);
    let run = prop_oneof![
        prop::sample::select(vec![json!("soon"), json!(-1), json!(0), json!(1e300)])
            .prop_map(|value| Mutation::Run("deadline_seconds", value)),
        prop::sample::select(vec![
            json!("yesterday"),
            json!(0),
            json!("2026-04-22 13:50:54")
        ])
        .prop_map(|value| Mutation::Run("now", value)),
        prop::sample::select(vec![json!("yes"), json!(1)])
            .prop_map(|value| Mutation::Run("dry_run", value)),
    ];
    let objects = prop_oneof![
        prop::sample::select(vec![
            json!(42),
            json!({ "type": "SHA-1", "value": 5 }),
            json!({ "type": {}, "value": "x" }),
            json!({ "type": "SHA-1", "value": "not a hash" }),
            json!({ "type": "FQDN", "value": "evil.example", "tags": 7 }),
            json!({ "attributes": [{ "value": "no name" }] }),
        ])
        .prop_map(Mutation::Object),
        prop::sample::select(vec![json!({}), json!("x"), json!(null), json!(7)])
            .prop_map(Mutation::Objects),
    ];
    prop_oneof![
        1 => Just(Mutation::NoChange),
        4 => connection,
        4 => (0usize..16, prop::sample::select(bad_values()))
            .prop_map(|(index, value)| Mutation::Param(index, value)),
        3 => state,
        2 => run,
        1 => prop::sample::select(vec![json!(2), json!("x"), json!(1.5)]).prop_map(Mutation::Protocol),
        2 => objects,
        1 => (0usize..4, prop::sample::select(vec![60, 124, 125, 126, 127, 128, 5_000]))
            .prop_map(|(place, levels)| Mutation::Deep(place, levels)),
        1 => prop::sample::select(vec![" x", "{}", "\n]", " // comment"]).prop_map(Mutation::Trailing),
    ]
}

/// Placeholder replaced by deep nesting once the envelope is text.
const DEEP: &str = "@@deep@@";

/// The envelope text after `mutations`.
fn mutated(mut envelope: Value, mutations: &[Mutation]) -> String {
    let mut trailing = String::new();
    let mut deep = None;
    for mutation in mutations {
        match mutation {
            Mutation::Config(key, value) => envelope["config"][*key] = value.clone(),
            Mutation::NoToken => {
                if let Some(config) = envelope["config"].as_object_mut() {
                    config.remove("api_token");
                }
            }
            Mutation::NoChange => {
                if let Some(config) = envelope["config"].as_object_mut() {
                    config.insert("analyst_verdict".into(), json!("No Change"));
                    config.insert("incident_status".into(), json!("No Change"));
                    config.remove("note");
                }
            }
            Mutation::Param(index, value) => {
                let own = own_params(&envelope["action"]);
                if !own.is_empty() {
                    envelope["config"][&own[index % own.len()]] = value.clone();
                }
            }
            Mutation::State(state) => envelope["state"] = state.clone(),
            Mutation::Run(key, value) => envelope["run"][*key] = value.clone(),
            Mutation::Protocol(value) => envelope["protocol"] = value.clone(),
            Mutation::Object(object) => {
                if let Some(objects) = envelope["objects"].as_array_mut() {
                    objects.push(object.clone());
                }
            }
            Mutation::Objects(objects) => envelope["objects"] = objects.clone(),
            Mutation::Deep(place, levels) => {
                let at = json!(DEEP);
                match place {
                    0 => {
                        if let Some(objects) = envelope["objects"].as_array_mut() {
                            objects.push(json!({ "type": "SHA-1", "value": "x", "deep": at }));
                        }
                    }
                    1 => envelope["config"]["deep"] = at,
                    2 => envelope["state"] = at,
                    _ => envelope["run"]["deep"] = at,
                }
                deep = Some(*levels);
            }
            Mutation::Trailing(text) => trailing.push_str(text),
        }
    }
    let mut text = envelope.to_string();
    if let Some(levels) = deep {
        let nested = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        text = text.replacen(&format!("\"{DEEP}\""), &nested, 1);
    }
    text + &trailing
}

/// The names of the action's own parameters (not the connection's).
fn own_params(action: &Value) -> Vec<String> {
    let name = action.as_str().map(str::to_string);
    let id = action.as_u64();
    s1_actions::manifest::all()
        .iter()
        .find(|manifest| {
            name.as_deref() == Some(manifest.name.as_str()) || id == Some(u64::from(manifest.id))
        })
        .map(|manifest| {
            manifest
                .params
                .iter()
                .map(|param| param.name.clone())
                .filter(|name| !s1_actions::connection::CONNECTION_PARAMS.contains(&name.as_str()))
                .collect()
        })
        .unwrap_or_default()
}

/// Exit code and the run-level errors as (code, field).
fn outcome(text: &str, mode: Mode) -> (u8, Vec<(Value, Value)>, String) {
    let (result, exit) = runner::execute(text, mode);
    let mut stdout = Vec::new();
    s1_actions::output::write_result(&mut stdout, &result).unwrap();
    let document: Value = serde_json::from_slice(&stdout).unwrap();
    let errors = document["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| (error["code"].clone(), error["field"].clone()))
        .collect();
    (exit.code(), errors, String::from_utf8(stdout).unwrap())
}

/// Checks the parity of `validate` and `run` on `text`.
fn parity(text: &str) -> Result<(), TestCaseError> {
    let sent_before = simulator().requests().len();
    let (run_exit, run_errors, run_out) = outcome(text, Mode::Run { dry_run: false });
    let sent = simulator().requests().len() - sent_before;
    let (validate_exit, validate_errors, validate_out) = outcome(text, Mode::Validate);
    let context = || format!("{text}\nrun: {run_out}\nvalidate: {validate_out}");
    if run_exit == 3 {
        prop_assert_eq!(sent, 0, "run exited 3 after sending: {}", context());
        prop_assert_eq!(validate_exit, 3, "{}", context());
        prop_assert_eq!(&validate_errors, &run_errors, "{}", context());
    }
    if validate_exit == 3 {
        prop_assert_eq!(run_exit, 3, "{}", context());
    }
    if validate_exit == 0 {
        prop_assert_ne!(run_exit, 3, "{}", context());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn validate_refuses_exactly_what_run_refuses(
        base in base(),
        mutations in prop::collection::vec(mutation(), 0..3),
    ) {
        parity(&mutated(base, &mutations))?;
    }
}

/// Every action is among the valid envelopes, and each is valid as it stands.
#[test]
fn every_action_has_a_valid_envelope_that_validates() {
    let envelopes = valid_envelopes();
    for manifest in s1_actions::manifest::all() {
        let covered = envelopes.iter().any(|envelope| {
            envelope["action"] == json!(manifest.name) || envelope["action"] == json!(manifest.id)
        });
        assert!(covered, "no valid envelope of {}", manifest.name);
    }
    for envelope in &envelopes {
        let (exit, errors, out) = outcome(&envelope.to_string(), Mode::Validate);
        assert!(exit == 0 || exit == 1, "{envelope}: {errors:?}\n{out}");
    }
}

/// Checks that once passed `validate` and failed `run` with exit 3: each action's own
/// pre-request refusals.
#[test]
fn action_refusals_before_any_request_are_validate_refusals() {
    let envelopes = valid_envelopes();
    let of = |name: &str| {
        envelopes
            .iter()
            .find(|envelope| envelope["action"] == json!(name))
            .unwrap_or_else(|| panic!("no demo envelope of {name}"))
            .clone()
    };
    let bad_state = json!({ "version": 2, "since": "2026-04-22T09:00:00Z", "seen": [] });
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut envelope = of("sentinelone-get-activities");
                envelope["config"]["activity_types"] = json!(["login"]);
                envelope
            },
            "config.activity_types",
        ),
        (
            {
                let mut envelope = of("sentinelone-get-activities");
                envelope["state"] = bad_state.clone();
                envelope
            },
            "state.version",
        ),
        (
            {
                let mut envelope = of("sentinelone-get-alerts");
                envelope["state"] = bad_state.clone();
                envelope
            },
            "state.version",
        ),
        (
            {
                let mut envelope = of("sentinelone-ingest-threats");
                envelope["state"] = bad_state.clone();
                envelope
            },
            "state.version",
        ),
        (
            {
                let mut envelope = of("sentinelone-update-alerts");
                envelope["config"]["analyst_verdict"] = json!("No Change");
                envelope["config"]["incident_status"] = json!("No Change");
                envelope
            },
            "config.analyst_verdict",
        ),
        (
            {
                let mut envelope = of("sentinelone-update-threats");
                let config = envelope["config"].as_object_mut().unwrap();
                config.insert("analyst_verdict".into(), json!("No Change"));
                config.insert("incident_status".into(), json!("No Change"));
                config.remove("note");
                envelope
            },
            "config",
        ),
    ];
    for (envelope, field) in cases {
        let text = envelope.to_string();
        let (exit, errors, out) = outcome(&text, Mode::Validate);
        assert_eq!(exit, 3, "{text}\n{out}");
        assert_eq!(errors[0].1, json!(field), "{text}\n{out}");
        parity(&text).unwrap();
    }
}
