//! Property tests over envelopes and indicator values: arbitrary JSON, wrong types, huge
//! strings, deep nesting, unicode, numbers where strings belong.
//!
//! Whatever arrives, nothing panics, stdout is one parseable result document, every object the
//! envelope carries gets its one result, and the exit code is 0, 1 or 3 (`validate`; `run`
//! against a closed loopback port may also end 5). Most cases run in process through
//! `runner::execute` and the output writer the binary uses; a bounded number drive the real
//! binary, which also checks stdout, stderr and the canary token.
//!
//! Cases are reproducible: the seed is fixed unless `PROPTEST_RNG_SEED` is set, and
//! `PROPTEST_CASES` scales every property (the counts below are the CI defaults).
//! Inputs that once broke a property are kept as plain tests at the end of the file.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use s1_actions::error::ExitStatus;
use s1_actions::runner::{self, Mode};
use serde_json::{Map, Value, json};

use crate::support::{self, CANARY_TOKEN};

/// Cases per in-process property.
const IN_PROCESS_CASES: u32 = 256;
/// Cases per property that spawns the binary (about 5 ms each).
const BINARY_CASES: u32 = 64;

fn config(cases: u32) -> ProptestConfig {
    support::proptest_config(cases, 0x5e47_1e1e)
}

// ---------------------------------------------------------------- strategies

/// Strings that tend to break things: empty, blank, controls, unicode of every width, JSON and
/// number look-alikes, hex of almost the right length, long runs, and anything at all.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        "[0-9a-fA-F]{30,70}",
        "[ \\t\\n\\r\\u{0}\\u{7f}\\u{feff}\\u{202e}]{0,6}",
        Just(String::new()),
        Just("null".to_string()),
        Just("1e309".to_string()),
        Just("-0".to_string()),
        Just("🦀🔥\u{200d}👩‍💻".to_string()),
        Just("ﬀ İ ß ǅ".to_string()),
        Just("\u{10ffff}\u{fffd}".to_string()),
        Just("C:\\Temp\\,;%00%2e%2e/..".to_string()),
        Just("http://[::1]:9/%zz?#".to_string()),
        (1usize..20_000).prop_map(|n| "A".repeat(n)),
        (1usize..3_000).prop_map(|n| "é𝄞".repeat(n)),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |x| x.is_finite())
            .prop_map(Value::from),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1e300)),
        Just(json!(-1e300)),
        Just(json!(4.9e-324)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        nasty_string().prop_map(Value::from),
    ]
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(nasty_string(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A value that is often right for its place and often wrong in some way.
fn plausible(good: Vec<Value>) -> impl Strategy<Value = Value> {
    // Mostly good, so that whole envelopes are often valid and reach the action's own
    // parameters; one wrong value usually refuses the envelope before that.
    prop_oneof![
        5 => prop::sample::select(good),
        1 => any_json(),
    ]
}

fn type_name() -> impl Strategy<Value = Value> {
    let names = [
        "SHA-1",
        "SHA-256",
        "MD5",
        "FQDN",
        "URL",
        "IP Address",
        "IPv6 Address",
        "File Path",
        "sha-1",
        "Email Address",
        "",
    ];
    prop_oneof![
        3 => prop::sample::select(names.to_vec()).prop_map(Value::from),
        1 => prop::sample::select(names.to_vec()).prop_map(|name| json!({ "name": name, "id": 3 })),
        1 => any_json(),
    ]
}

/// Indicator values, valid and not, of every type.
fn indicator_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => "[0-9a-fA-F]{40}".prop_map(Value::from),
        1 => "[0-9a-fA-F]{64}".prop_map(Value::from),
        1 => "[0-9a-f]{32}".prop_map(Value::from),
        1 => " ?[0-9a-fA-F]{39,41} ?".prop_map(Value::from),
        1 => "(25[0-5]|[0-9]{1,3})(\\.[0-9]{1,3}){3}".prop_map(Value::from),
        1 => "[0-9a-f:]{2,45}".prop_map(Value::from),
        1 => "[a-z0-9-]{1,20}(\\.[a-z]{2,6}){1,3}\\.?".prop_map(Value::from),
        1 => "(https?|ftp|javascript)://[^ ]{0,30}".prop_map(Value::from),
        1 => "(C:\\\\|/)[^\\u{0}]{0,40}".prop_map(Value::from),
        2 => nasty_string().prop_map(Value::from),
        1 => number(),
        1 => any_json(),
    ]
}

fn named_list() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::vec(
            prop_oneof![
                nasty_string().prop_map(Value::from),
                nasty_string().prop_map(|name| json!({ "name": name })),
                any_json(),
            ],
            0..4
        )
        .prop_map(Value::from),
        any_json(),
    ]
}

fn attributes() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::vec(
            prop_oneof![
                (nasty_string(), any_json())
                    .prop_map(|(name, value)| json!({ "name": name, "value": value })),
                any_json(),
            ],
            0..4
        )
        .prop_map(Value::from),
        any_json(),
    ]
}

/// A ThreatQ object: mostly the right fields with values of any shape, sometimes anything.
fn object() -> impl Strategy<Value = Value> {
    let fields = (
        plausible(vec![
            json!(1),
            json!(18746),
            json!("18746"),
            json!(-5),
            json!(1.5),
        ]),
        type_name(),
        indicator_value(),
        plausible(vec![json!("<p>seen</p>"), json!(""), Value::Null]),
        plausible(vec![
            json!("2025-08-06 18:09:05"),
            json!("2025-08-06T18:09:05Z"),
            json!("2025-02-30 25:61:61"),
            json!("+275760-09-13T00:00:00Z"),
        ]),
        named_list(),
        attributes(),
        named_list(),
        prop::collection::btree_map("[a-z_]{1,10}", any_json(), 0..3),
        prop::bits::u8::ANY,
    );
    let shaped = fields.prop_map(
        |(id, kind, value, description, created_at, tags, attributes, adversaries, extra, drop)| {
            let mut object = Map::new();
            for (bit, key, value) in [
                (0, "id", id),
                (1, "type", kind),
                (2, "value", value),
                (3, "description", description),
                (4, "created_at", created_at),
                (5, "tags", tags),
                (6, "attributes", attributes),
                (7, "adversaries", adversaries),
            ] {
                // Fields are dropped now and then; type and value most rarely.
                if drop & (1 << bit) == 0 || bit == 1 || bit == 2 {
                    object.insert(key.to_string(), value);
                }
            }
            object.extend(extra);
            Value::Object(object)
        },
    );
    prop_oneof![6 => shaped, 1 => any_json()]
}

fn string_lines() -> Vec<Value> {
    vec![
        json!(["1", "2"]),
        json!("1\n2"),
        json!([]),
        json!(""),
        json!([1, 2]),
        json!([null]),
    ]
}

/// A configuration: each parameter of any action now and then, good or bad, plus strays.
fn config_map() -> impl Strategy<Value = Map<String, Value>> {
    let parameters: Vec<(&'static str, Vec<Value>)> = vec![
        (
            "hostname",
            vec![
                json!("usea1.sentinelone.net"),
                json!("http://127.0.0.1:9"),
                json!("https://h:99999"),
                json!("ftp://x"),
                json!("http://example.com"),
                json!("h/path?q"),
                json!(""),
            ],
        ),
        ("api_token", vec![json!(CANARY_TOKEN), json!(""), json!(7)]),
        (
            "list",
            vec![json!("Blacklist"), json!("Whitelist"), json!("blacklist")],
        ),
        (
            "os_type",
            vec![
                json!(["Windows"]),
                json!("Mac"),
                json!(["Linux", "Legacy Windows"]),
                json!([]),
                json!(["Windows", "Windows"]),
                json!(["BeOS"]),
            ],
        ),
        (
            "mitigation_action",
            vec![
                json!("Quarantine"),
                json!("Disconnect from Network"),
                json!("Un_Quarantine"),
                json!("quarantine"),
            ],
        ),
        ("query", vec![json!("a"), json!(""), json!(null)]),
        (
            "description",
            vec![json!("Action Handled by ThreatQ"), json!("")],
        ),
        ("site_ids", string_lines()),
        ("account_ids", string_lines()),
        ("group_ids", string_lines()),
        (
            "ip_expiration",
            vec![
                json!(7),
                json!(14),
                json!(30),
                json!(31),
                json!("14"),
                json!(14.0),
            ],
        ),
        (
            "url_domain_expiration",
            vec![json!(90), json!(180), json!(0)],
        ),
        ("file_hash_expiration", vec![json!(180), json!(-7)]),
        (
            "threatq_hostname",
            vec![json!("tq.example"), json!("https://tq.example/"), json!("")],
        ),
        (
            "objects_per_run",
            vec![
                json!(1),
                json!(0),
                json!(50_000),
                json!(50_001),
                json!(10_000),
                json!("5"),
                json!(2.5),
            ],
        ),
        (
            "verify_tls",
            vec![json!(true), json!(false), json!("false"), json!(0)],
        ),
        (
            "ca_bundle",
            vec![
                json!(""),
                json!("/no/such/file.pem"),
                json!("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            ],
        ),
        (
            "proxy",
            vec![json!(""), json!("http://proxy:3128"), json!("socks5://x")],
        ),
        (
            "request_timeout_seconds",
            vec![json!(1), json!(30), json!(0), json!(u64::MAX), json!(1e300)],
        ),
        (
            "max_retries",
            vec![json!(0), json!(5), json!(-1), json!(u32::MAX)],
        ),
        (
            "requests_per_second",
            vec![json!(10), json!(0.001), json!(0), json!(1e308), json!(-3)],
        ),
        (
            "max_concurrency",
            vec![json!(1), json!(4), json!(0), json!(100_000)],
        ),
    ];
    let picks: Vec<_> = parameters
        .into_iter()
        .map(|(name, good)| {
            (any::<u8>(), plausible(good))
                .prop_map(move |(coin, value)| (coin < 100).then(|| (name.to_string(), value)))
        })
        .collect();
    (
        picks,
        prop::collection::btree_map("[a-zA-Z_]{1,12}", any_json(), 0..2),
    )
        .prop_map(|(picks, strays)| {
            let mut map: Map<String, Value> = picks.into_iter().flatten().collect();
            map.extend(strays);
            map
        })
}

fn action() -> impl Strategy<Value = Value> {
    plausible(vec![
        json!(1),
        json!(2),
        json!(3),
        json!(4),
        json!("sentinelone-mitigate-threats"),
        json!("SENTINELONE-IOC-EXPORT "),
        json!("3"),
        json!(5),
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(1.0),
        json!("no-such-action"),
    ])
}

fn run_info() -> impl Strategy<Value = Value> {
    let deadline = plausible(vec![
        json!(900),
        json!(0.001),
        json!(0),
        json!(-1),
        json!(1e300),
        json!(1e19),
        json!(u64::MAX),
        json!(f64::MAX),
        json!(4.9e-324),
        json!("soon"),
    ]);
    let now = plausible(vec![
        json!("2026-04-22T13:50:54Z"),
        json!("2026-04-22 13:50:54"),
        json!("+262143-12-31T23:59:59Z"),
        json!("-262143-01-01T00:00:00Z"),
        json!(0),
    ]);
    (
        plausible(vec![json!("wf-17/run-3"), json!(""), json!(17)]),
        plausible(vec![json!(false), json!(true), json!("yes")]),
        deadline,
        now,
        any::<u8>(),
    )
        .prop_map(|(id, dry_run, deadline, now, mask)| {
            let mut run = Map::new();
            for (bit, key, value) in [
                (0, "id", id),
                (1, "dry_run", dry_run),
                (2, "deadline_seconds", deadline),
                (3, "now", now),
            ] {
                if mask & (1 << bit) != 0 {
                    run.insert(key.to_string(), value);
                }
            }
            Value::Object(run)
        })
}

/// An envelope: its parts each present or not, each right or wrong in any way.
fn envelope() -> impl Strategy<Value = Value> {
    let objects = prop_oneof![
        6 => prop::collection::vec(object(), 0..8).prop_map(Value::from),
        1 => any_json(),
    ];
    let config = prop_oneof![
        6 => config_map().prop_map(Value::Object),
        1 => any_json(),
    ];
    (
        plausible(vec![
            json!(1),
            json!("1"),
            json!("1.7"),
            json!(2),
            json!(-1),
            json!(1e300),
        ]),
        action(),
        prop_oneof![4 => run_info(), 1 => any_json()],
        config,
        objects,
        plausible(vec![Value::Null, json!({ "cursor": "x" })]),
        any::<u8>(),
    )
        .prop_map(|(protocol, action, run, config, objects, state, mask)| {
            let mut envelope = Map::new();
            for (bit, key, value) in [
                (0, "protocol", protocol),
                (1, "action", action),
                (2, "run", run),
                (3, "config", config),
                (4, "objects", objects),
                (5, "state", state),
            ] {
                // The action, config and objects are there far more often than not.
                let present = match bit {
                    1 | 3 | 4 => mask & (0b11 << 6) != 0 || mask & (1 << bit) != 0,
                    _ => mask & (1 << bit) != 0,
                };
                if present {
                    envelope.insert(key.to_string(), value);
                }
            }
            Value::Object(envelope)
        })
}

/// Envelope text: mostly a serialized envelope, sometimes cut short, or any JSON at all.
fn envelope_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => envelope().prop_map(|envelope| envelope.to_string()),
        1 => (envelope(), any::<prop::sample::Index>()).prop_map(|(envelope, cut)| {
            let text = envelope.to_string();
            let mut at = cut.index(text.len().max(1));
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text[..at].to_string()
        }),
        1 => any_json().prop_map(|value| value.to_string()),
        1 => any::<String>(),
    ]
}

// ---------------------------------------------------------------- checks

/// How many objects an envelope text carries, when it is a JSON object with an `objects` list.
fn carried_objects(text: &str) -> Option<usize> {
    let value: Value = serde_json::from_str(text).ok()?;
    value.get("objects")?.as_array().map(Vec::len)
}

/// What the binary would print for `text`, produced in process.
fn execute(text: &str, mode: Mode) -> support::Run {
    let (result, exit) = runner::execute(text, mode);
    let mut stdout = Vec::new();
    s1_actions::output::write_result(&mut stdout, &result).unwrap();
    support::Run {
        exit: i32::from(exit.code()),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::new(),
    }
}

/// The invariants of any run on `text`; `allowed` are the acceptable exit codes.
fn holds(text: &str, run: &support::Run, allowed: &[i32]) -> Result<(), TestCaseError> {
    prop_assert!(
        allowed.contains(&run.exit),
        "exit {} not in {allowed:?}\nstdout: {}\nstderr: {}",
        run.exit,
        run.stdout,
        run.stderr
    );
    let document: Value = serde_json::from_str(&run.stdout).map_err(|err| {
        TestCaseError::fail(format!("stdout is not JSON ({err}): {}", run.stdout))
    })?;
    let objects = document["objects"].as_array().map_or(0, Vec::len);
    // Every object the envelope carries is echoed with a result, even when the envelope is
    // refused for another of its fields.
    if let Some(carried) = carried_objects(text) {
        prop_assert!(
            objects == carried,
            "{objects} of {carried} objects echoed: {}",
            run.stdout
        );
    }
    support::checked(run, objects);
    Ok(())
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(config(IN_PROCESS_CASES))]

    /// `validate` in process, on anything.
    #[test]
    fn validate_accounts_for_every_object(text in envelope_text()) {
        let run = execute(&text, Mode::Validate);
        holds(&text, &run, &[0, 1, 3])?;
    }

    /// Indicator values of every shape, in an otherwise valid envelope of each action: each
    /// object is validated alone, and `validate` never refuses the envelope for them.
    #[test]
    fn indicator_values_fail_only_their_object(
        action in 1u32..=4,
        objects in prop::collection::vec((type_name(), indicator_value()), 1..12),
    ) {
        let objects: Vec<Value> = objects
            .into_iter()
            .enumerate()
            .map(|(id, (kind, value))| json!({ "id": id, "type": kind, "value": value }))
            .collect();
        let text = json!({
            "action": action,
            "config": { "hostname": "usea1.sentinelone.net", "api_token": CANARY_TOKEN },
            "objects": objects,
        })
        .to_string();
        let run = execute(&text, Mode::Validate);
        holds(&text, &run, &[0, 1])?;
    }
}

/// `envelope` aimed at a closed loopback port, without retries, with the canary token.
fn closed_port(mut envelope: Value) -> String {
    if let Some(config) = envelope.get_mut("config").and_then(Value::as_object_mut) {
        config.insert("hostname".into(), json!("http://127.0.0.1:9"));
        config.insert("api_token".into(), json!(CANARY_TOKEN));
        config.insert("max_retries".into(), json!(0));
    }
    envelope.to_string()
}

proptest! {
    #![proptest_config(config(IN_PROCESS_CASES))]

    /// `run` in process against a closed loopback port: refused (3), failed to connect (5), or
    /// done without a request (0, 1) — never an internal error.
    #[test]
    fn run_in_process_against_a_closed_port(envelope in envelope()) {
        let text = closed_port(envelope);
        let run = execute(&text, Mode::Run { dry_run: false });
        holds(&text, &run, &[0, 1, 3, 5])?;
    }
}

proptest! {
    #![proptest_config(config(BINARY_CASES))]

    /// `validate` through the real binary: stdout, stderr, exit code and the canary token.
    #[test]
    fn binary_validate_on_anything(text in envelope_text()) {
        let run = support::run(&["validate"], &text);
        holds(&text, &run, &[0, 1, 3])?;
    }

    /// `run` through the real binary against a closed loopback port, without retries: the
    /// envelope is refused (3), or every request fails to connect (5), or no request was
    /// needed (0, 1).
    #[test]
    fn binary_run_against_a_closed_port(envelope in envelope()) {
        let text = closed_port(envelope);
        let run = support::run(&["run"], &text);
        holds(&text, &run, &[0, 1, 3, 5])?;
    }
}

/// `value` with the token woven into some of its strings and keys, chosen by `coins`.
fn lace(value: Value, coins: &mut impl Iterator<Item = bool>) -> Value {
    let laced = |text: String, coins: &mut dyn Iterator<Item = bool>| {
        if coins.next().unwrap_or(false) {
            format!("{text}{CANARY_TOKEN}{text}")
        } else {
            text
        }
    };
    match value {
        Value::String(text) => Value::String(laced(text, coins)),
        Value::Array(items) => items.into_iter().map(|item| lace(item, coins)).collect(),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, item)| (laced(key, coins), lace(item, coins)))
                .collect(),
        ),
        other => other,
    }
}

proptest! {
    #![proptest_config(config(BINARY_CASES))]

    /// The token woven into any string of an envelope (values, keys, configuration, objects)
    /// is never printed, in any spelling a JSON reader decodes, nor any 12-character piece of
    /// it, whether the envelope is valid or not, and whether it is validated or run.
    #[test]
    fn the_token_is_never_printed_wherever_it_is_echoed(
        envelope in envelope(),
        coins in prop::collection::vec(prop::bool::weighted(0.3), 64),
        cut in any::<prop::sample::Index>(),
        truncate in prop::bool::weighted(0.1),
    ) {
        let mut coins = coins.into_iter();
        let mut envelope = lace(envelope, &mut coins);
        let Some(config) = envelope.get_mut("config").and_then(Value::as_object_mut) else {
            // Without a configuration there is no token to protect.
            return Ok(());
        };
        config.insert("api_token".into(), json!(CANARY_TOKEN));
        config.insert("hostname".into(), json!("http://127.0.0.1:9"));
        config.insert("max_retries".into(), json!(0));
        let mut text = envelope.to_string();
        if truncate {
            // Cut after the token, so that an envelope that does not parse still names it.
            let from = text.find(CANARY_TOKEN).map_or(0, |at| at + CANARY_TOKEN.len());
            let mut at = from + cut.index(text.len() - from + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text.truncate(at);
        }
        for command in ["validate", "run"] {
            let run = support::run(&[command], &text);
            support::assert_no_token_fragment(&run, 12);
            if let Ok(document) = serde_json::from_str::<Value>(&run.stdout) {
                prop_assert!(!document.to_string().contains(CANARY_TOKEN), "{command}: {}", run.stdout);
            }
            holds(&text, &run, &[0, 1, 3, 5])?;
        }
    }
}

// ---------------------------------------------------------------- fixed cases

/// The in-process run of `text` in `mode`, checked, with its exit code.
fn exit_of(text: &str, mode: Mode) -> i32 {
    let run = execute(text, mode);
    holds(text, &run, &[0, 1, 3]).unwrap();
    run.exit
}

#[test]
fn deep_nesting_is_refused_or_echoed_never_a_crash() {
    let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // Deep inside an object: the envelope is refused (beyond serde's limit of 127 levels) and
    // the object is not echoed, so that the document stays one JSON readers read.
    let inner = deep(100_000);
    let text = format!(
        r#"{{"action": 1, "config": {{"hostname": "h.example", "api_token": "{CANARY_TOKEN}"}},
            "objects": [{{"type": "SHA-1", "value": "7eb2197d6fd80c31bd04d3a7fb8c725eb9789013", "x": {inner}}},
                        {{"type": "SHA-1", "value": {inner}}}]}}"#
    );
    let (result, exit) = runner::execute(&text, Mode::Validate);
    assert_eq!(exit, ExitStatus::InvalidInput);
    let mut stdout = Vec::new();
    s1_actions::output::write_result(&mut stdout, &result).unwrap();
    let stdout = String::from_utf8(stdout).unwrap();
    serde_json::from_str::<Value>(&stdout).expect("one JSON document serde reads");
    // Deep in the configuration or the state: the envelope is refused.
    for text in [
        format!(r#"{{"action": 1, "config": {{"site_ids": {inner}}}}}"#),
        format!(r#"{{"action": 1, "state": {inner}}}"#),
        deep(1_000_000),
    ] {
        assert_eq!(exit_of(&text, Mode::Validate), 3);
    }
}

#[test]
fn huge_strings_are_handled() {
    let huge = "7".repeat(4 << 20);
    let text = json!({
        "action": 4,
        // (A huge threatq_hostname is no host name: hostile_config refuses it.)
        "config": { "hostname": "h.example", "api_token": CANARY_TOKEN },
        "objects": [
            { "type": "SHA-1", "value": huge },
            { "type": huge, "value": "evil.example" },
            { "type": "FQDN", "value": "evil.example", "description": huge, "tags": [huge] },
        ],
    })
    .to_string();
    assert_eq!(exit_of(&text, Mode::Validate), 1);
}

/// Deadlines too far away for the clock: no deadline, not a panic (exit 70).
#[test]
fn deadlines_beyond_the_clock_are_no_deadline() {
    for deadline in [json!(u64::MAX), json!(1e19), json!(1e300), json!(f64::MAX)] {
        let text = json!({
            "action": 3,
            "run": { "deadline_seconds": deadline },
            "config": { "hostname": "h.example", "api_token": CANARY_TOKEN },
            "objects": [{ "type": "SHA-1", "value": "7eb2197d6fd80c31bd04d3a7fb8c725eb9789013" }],
        })
        .to_string();
        assert_eq!(exit_of(&text, Mode::Validate), 0, "{deadline}");
        assert_eq!(support::run(&["validate"], &text).exit, 0, "{deadline}");
    }
}

/// A token pasted into a value that a message quotes only in part (an option, an indicator
/// value) is masked before the cut: no piece of it is printed. Found by
/// `the_token_is_never_printed_wherever_it_is_echoed`.
#[test]
fn quoted_values_are_masked_before_they_are_cut() {
    for (kind, value) in [
        ("IP Address", format!("{}{CANARY_TOKEN}", "1".repeat(60))),
        ("FQDN", format!("{}..{CANARY_TOKEN}", "a".repeat(60))),
        ("URL", format!("ftp://{}{CANARY_TOKEN}", "u".repeat(60))),
    ] {
        let text = json!({
            "action": 2,
            "config": { "hostname": "h.example", "api_token": CANARY_TOKEN,
                        "mitigation_action": format!("{}{CANARY_TOKEN}", "Q".repeat(50)) },
            "objects": [{ "type": kind, "value": value }],
        })
        .to_string();
        let run = support::run(&["validate"], &text);
        assert_eq!(run.exit, 3, "{}", run.stdout);
        support::assert_no_token_fragment(&run, 8);
        let text = json!({
            "action": 4,
            "config": { "hostname": "h.example", "api_token": CANARY_TOKEN },
            "objects": [{ "type": kind, "value": value }],
        })
        .to_string();
        let run = support::run(&["validate"], &text);
        assert_eq!(run.exit, 1, "{}", run.stdout);
        support::assert_no_token_fragment(&run, 8);
    }
}

/// An empty value — blank text, an empty list — for a parameter with a default is a missing
/// one: the default applies, whatever the parameter's type. Found by
/// `binary_run_against_a_closed_port` (an empty `description` ended the run with exit 70).
#[test]
fn empty_parameters_take_their_defaults() {
    for manifest in s1_actions::manifest::all() {
        for param in &manifest.params {
            if param.required || param.default.is_none() {
                continue;
            }
            for empty in [json!(""), json!("  "), json!([]), Value::Null] {
                let mut config = json!({ "hostname": "h.example", "api_token": CANARY_TOKEN });
                // The update actions refuse to run with nothing to change (both choices at
                // their "No Change" default), and `validate` says so: the choice not tested
                // is given a change.
                for other in ["analyst_verdict", "incident_status"] {
                    if let Some(choice) = manifest.param(other).filter(|_| param.name != other) {
                        config[other] = choice.options[1].value.clone();
                    }
                }
                config[param.name.as_str()] = empty.clone();
                let text = json!({
                    "action": manifest.id,
                    "config": config,
                    "objects": [{ "type": "SHA-1", "value": "7eb2197d6fd80c31bd04d3a7fb8c725eb9789013" }],
                })
                .to_string();
                let run = execute(&text, Mode::Validate);
                assert!(
                    [0, 3].contains(&run.exit),
                    "{} {} = {empty}: exit {}: {}",
                    manifest.name,
                    param.name,
                    run.exit,
                    run.stdout
                );
                if empty.as_str().is_some() || empty.is_null() {
                    assert_eq!(
                        run.exit, 0,
                        "{} {} = {empty}: {}",
                        manifest.name, param.name, run.stdout
                    );
                }
            }
        }
    }
}

/// An envelope refused for a field of the wrong type still accounts for each of its objects.
#[test]
fn objects_of_an_unreadable_envelope_are_accounted_for() {
    let objects = json!([{ "id": 1, "type": "SHA-1", "value": "7eb2197d6fd80c31bd04d3a7fb8c725eb9789013" }, 42]);
    for envelope in [
        json!({ "action": 1, "run": { "deadline_seconds": "soon" }, "objects": objects }),
        json!({ "action": 1, "config": 5, "objects": objects }),
        json!({ "action": [1], "objects": objects }),
        json!({ "objects": objects }),
    ] {
        let text = envelope.to_string();
        let run = support::run(&["validate"], &text);
        assert_eq!(run.exit, 3, "{}", run.stdout);
        let result = support::checked(&run, 2);
        assert_eq!(result["objects"][0]["id"], 1);
        assert_eq!(result["results"][1]["status"], "failed");
        assert_eq!(result["results"][0]["error"], result["errors"][0]);
    }
}
