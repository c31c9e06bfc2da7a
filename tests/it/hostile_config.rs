//! Hostile configuration: values of the wrong JSON type for every parameter of every manifest,
//! tokens that cannot be an HTTP header value, and a console that quotes the request's
//! `Authorization` header back.
//!
//! Whatever the configuration holds, a refused value ends the run with exit 3, `config.invalid`
//! on that parameter's field, every object accounted for, and no request sent: each case points
//! `hostname` at a loopback server that records what reaches it. The token never appears in
//! stdout or stderr, in any form it was given or sent.
//!
//! The sweep over every parameter runs in process (hundreds of cases); the generated cases drive
//! the real binary, a bounded number of times (`PROPTEST_CASES` scales them).

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use s1_actions::manifest::{self, Param, ParamType};
use s1_actions::runner::{self, Mode};
use serde_json::{Value, json};

use crate::support::{self, CANARY_TOKEN, Reply, ScriptedServer};

/// Cases per property that spawns the binary.
const BINARY_CASES: u32 = 32;

fn config(cases: u32) -> ProptestConfig {
    support::proptest_config(cases, 0x0c0f_1600)
}

/// A console that records every request and answers each with an empty success.
fn recorder() -> ScriptedServer {
    ScriptedServer::start(|_| Reply::json(200, &json!({ "data": [], "pagination": {} })))
}

/// An otherwise valid envelope of `action` aimed at `base_url`, with one SHA-1 object.
fn envelope(action: u32, base_url: &str) -> Value {
    json!({
        "action": action,
        "config": { "hostname": base_url, "api_token": CANARY_TOKEN, "max_retries": 0 },
        "objects": [
            { "id": 1, "type": "SHA-1", "value": "7eb2197d6fd80c31bd04d3a7fb8c725eb9789013" }
        ],
    })
}

/// Whether some option of `param` has a numeric value (a number is then a right type).
fn numeric_options(param: &Param) -> bool {
    param.options.iter().any(|option| option.value.is_number())
}

/// Values whose JSON type `param` does not accept. Text stands in for numbers and flags
/// (ThreatQ's configuration page sends text), so strings are never wrong here; null is
/// "missing", not wrong.
fn wrong_values(param: &Param) -> Vec<Value> {
    let mut values = vec![json!({ "a": "b" })];
    if param.kind != ParamType::Boolean {
        values.extend([json!(true), json!(false)]);
    }
    match param.kind {
        ParamType::String | ParamType::Text => {
            values.extend([json!(12), json!(3232235777u64), json!(1.5), json!(["x"])]);
        }
        ParamType::StringList => {
            values.extend([
                json!(12),
                json!([12]),
                json!(["1", 2]),
                json!([true]),
                json!([null]),
                json!([["1"]]),
                json!([{ "id": "1" }]),
            ]);
        }
        ParamType::Integer | ParamType::Number => values.push(json!(["1"])),
        ParamType::Boolean => values.extend([json!(0), json!(1), json!(["true"])]),
        ParamType::Select => {
            values.push(json!(["x"]));
            if !numeric_options(param) {
                values.push(json!(1));
            }
        }
        ParamType::Multiselect => {
            values.extend([json!([true]), json!([{}]), json!([["x"]])]);
            if !numeric_options(param) {
                values.extend([json!(1), json!([1])]);
            }
        }
    }
    values
}

/// The run's errors name `config.invalid` on `field`, and the run is refused with exit 3.
fn refused_on(exit: i32, document: &Value, field: &str) -> Result<(), String> {
    if exit != 3 {
        return Err(format!("exit {exit}"));
    }
    let errors = document["errors"].as_array().cloned().unwrap_or_default();
    let named = errors
        .iter()
        .any(|error| error["code"] == "config.invalid" && error["field"] == field);
    if named {
        Ok(())
    } else {
        Err(format!("no config.invalid on {field}: {errors:?}"))
    }
}

#[test]
fn every_parameter_refuses_values_of_another_json_type() {
    let server = recorder();
    let mut cases = 0;
    for manifest in manifest::all() {
        for param in &manifest.params {
            for value in wrong_values(param) {
                let mut envelope = envelope(manifest.id, &server.base_url());
                envelope["config"][&param.name] = value.clone();
                let text = envelope.to_string();
                let (result, exit) = runner::execute(&text, Mode::Run { dry_run: false });
                let document = serde_json::to_value(&result).unwrap();
                let field = format!("config.{}", param.name);
                if let Err(why) = refused_on(i32::from(exit.code()), &document, &field) {
                    panic!(
                        "{} {} = {value}: {why}\n{document}",
                        manifest.name, param.name
                    );
                }
                assert_eq!(document["results"].as_array().map(Vec::len), Some(1));
                assert_eq!(document["metrics"]["http_requests"], 0);
                cases += 1;
            }
        }
    }
    assert!(cases > 500, "only {cases} cases");
    assert_eq!(
        server.requests(),
        Vec::<String>::new(),
        "a request was sent"
    );
}

/// Any JSON value whose type `param` does not take.
fn wrong_value_for(param: &Param) -> BoxedStrategy<Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
    ];
    let scalar_text = "[ -~]{0,12}".prop_map(Value::String);
    let object = prop::collection::btree_map("[a-z]{1,4}", scalar_text.clone(), 0..3)
        .prop_map(|map| Value::Object(map.into_iter().collect()));
    let flag = any::<bool>().prop_map(Value::Bool);
    match param.kind {
        ParamType::String | ParamType::Text => prop_oneof![
            number.boxed(),
            flag.boxed(),
            object.boxed(),
            prop::collection::vec(scalar_text, 0..3)
                .prop_map(Value::Array)
                .boxed(),
        ]
        .boxed(),
        ParamType::StringList => prop_oneof![
            number.clone().boxed(),
            flag.clone().boxed(),
            object.boxed(),
            // An array with at least one item that is not a string.
            (
                prop::collection::vec(scalar_text, 0..3),
                prop_oneof![number, flag, Just(Value::Null)]
            )
                .prop_map(|(mut items, bad)| {
                    items.push(bad);
                    Value::Array(items)
                })
                .boxed(),
        ]
        .boxed(),
        ParamType::Integer | ParamType::Number => prop_oneof![
            flag.boxed(),
            object.boxed(),
            prop::collection::vec(number, 0..3)
                .prop_map(Value::Array)
                .boxed(),
        ]
        .boxed(),
        ParamType::Boolean => prop_oneof![
            number.boxed(),
            object.boxed(),
            prop::collection::vec(flag, 0..3)
                .prop_map(Value::Array)
                .boxed(),
        ]
        .boxed(),
        ParamType::Select | ParamType::Multiselect if numeric_options(param) => {
            prop_oneof![flag.boxed(), object.boxed()].boxed()
        }
        ParamType::Select => prop_oneof![
            number.boxed(),
            flag.boxed(),
            object.boxed(),
            prop::collection::vec(scalar_text, 1..3)
                .prop_map(Value::Array)
                .boxed(),
        ]
        .boxed(),
        ParamType::Multiselect => prop_oneof![
            number.clone().boxed(),
            flag.clone().boxed(),
            object.boxed(),
            prop::collection::vec(prop_oneof![number, flag], 1..3)
                .prop_map(Value::Array)
                .boxed(),
        ]
        .boxed(),
    }
}

/// A parameter of some manifest and a value of the wrong type for it.
fn parameter_and_wrong_value() -> impl Strategy<Value = (u32, String, Value)> {
    let pairs: Vec<(u32, &'static Param)> = manifest::all()
        .iter()
        .flat_map(|manifest| {
            manifest
                .params
                .iter()
                .map(move |param| (manifest.id, param))
        })
        .collect();
    prop::sample::select(pairs).prop_flat_map(|(id, param)| {
        wrong_value_for(param).prop_map(move |value| (id, param.name.clone(), value))
    })
}

/// A character no HTTP header value may carry as the token's: CR, LF, NUL, other controls,
/// DEL, or anything beyond ASCII.
fn header_breaking_char() -> impl Strategy<Value = char> {
    prop_oneof![
        Just('\r'),
        Just('\n'),
        Just('\0'),
        Just('\t'),
        Just('\u{7f}'),
        (1u8..0x20).prop_map(char::from),
        any::<char>().prop_filter("beyond ASCII", |ch| !ch.is_ascii()),
    ]
}

proptest! {
    #![proptest_config(config(BINARY_CASES))]

    /// Through the real binary: a wrong-type value for any parameter of any action is refused
    /// with exit 3 on its field, and the console hears nothing.
    #[test]
    fn binary_refuses_any_wrong_type_for_any_parameter(
        (action, name, value) in parameter_and_wrong_value(),
        validate in any::<bool>(),
    ) {
        let server = recorder();
        let mut envelope = envelope(action, &server.base_url());
        envelope["config"][&name] = value.clone();
        let run = support::run(&[if validate { "validate" } else { "run" }], &envelope.to_string());
        let document = support::checked(&run, 1);
        let outcome = refused_on(run.exit, &document, &format!("config.{name}"));
        prop_assert!(outcome.is_ok(), "action {action} {name} = {value}: {outcome:?}\n{}", run.stdout);
        prop_assert!(server.requests().is_empty(), "a request was sent");
    }

    /// A token that cannot be an HTTP header value (a bad character inside it, where trimming
    /// cannot remove it) is `config.invalid` on `config.api_token` with exit 3, nothing is sent,
    /// and no piece of the token is printed.
    #[test]
    fn header_breaking_tokens_are_refused_and_never_printed(
        bad in header_breaking_char(),
        at in 1usize..CANARY_TOKEN.len(),
        command in prop::sample::select(vec!["run", "validate", "check"]),
    ) {
        let server = recorder();
        let token = format!("{}{bad}{}", &CANARY_TOKEN[..at], &CANARY_TOKEN[at..]);
        let mut envelope = envelope(1, &server.base_url());
        envelope["config"]["api_token"] = json!(token);
        let run = support::run(&[command], &envelope.to_string());
        prop_assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token));
        // Pieces on either side of the bad character, long enough to be the token's alone.
        support::assert_no_token_fragment(&run, 12);
        let document: Value = serde_json::from_str(&run.stdout).unwrap();
        let outcome = refused_on(run.exit, &document, "config.api_token");
        prop_assert!(outcome.is_ok(), "{bad:?} at {at}: {outcome:?}\n{}", run.stdout);
        prop_assert!(server.requests().is_empty(), "a request was sent");
    }
}

/// A console that answers 400 quoting the request's `Authorization` header in its error detail.
fn echoing_console() -> ScriptedServer {
    ScriptedServer::start(|request| {
        let authorization = request
            .lines()
            .find(|line| line.to_ascii_lowercase().starts_with("authorization:"))
            .unwrap_or("no authorization header")
            .trim()
            .to_string();
        Reply::json(
            400,
            &json!({ "errors": [{ "code": 4000010, "title": "Validation Error",
                                  "detail": format!("Rejected request with {authorization}") }] }),
        )
    })
}

#[test]
fn a_console_quoting_the_authorization_header_never_prints_the_token() {
    for padded in [
        format!("  {CANARY_TOKEN}  "),
        format!("\t{CANARY_TOKEN}\r\n"),
        format!("\u{a0}{CANARY_TOKEN}\u{2003}"),
        format!("\n{CANARY_TOKEN}"),
    ] {
        for command in ["run", "check"] {
            let server = echoing_console();
            let mut envelope = envelope(1, &server.base_url());
            envelope["config"]["api_token"] = json!(padded);
            let run = support::run(&[command], &envelope.to_string());
            support::assert_no_token_fragment(&run, 12);
            let requests = server.requests();
            // The token went out trimmed, and the console's echo of it was printed, masked.
            assert!(
                requests
                    .iter()
                    .any(|request| request.contains(&format!("ApiToken {CANARY_TOKEN}\r\n"))),
                "{command}: {requests:?}"
            );
            assert!(
                run.stdout
                    .to_ascii_lowercase()
                    .contains("authorization: ****"),
                "{command}: the echo is not in the result: {}",
                run.stdout
            );
        }
    }
}

#[test]
fn credentials_in_the_hostname_are_never_printed() {
    for hostname in [
        "https://s1admin:hunter2-console-password@usea1.sentinelone.net",
        "https://s1admin:hunter2-console-password@usea1.sentinelone.net/web/api?x#y",
        "s1admin:hunter2-console-password@usea1.sentinelone.net:0",
        "http://s1admin:hunter2-console-password@10.0.0.1:80",
        "https://s1admin:hunter2-console-password@12",
        "https://s1admin:hunter2-console-password@*.example",
        "ftp://s1admin:hunter2-console-password@host",
    ] {
        for name in ["hostname", "threatq_hostname"] {
            let mut envelope = envelope(4, "usea1.sentinelone.net");
            envelope["config"][name] = json!(hostname);
            for command in ["validate", "run"] {
                let run = support::run(&[command], &envelope.to_string());
                for secret in ["hunter2", "s1admin", "console-password"] {
                    assert!(
                        !run.stdout.contains(secret) && !run.stderr.contains(secret),
                        "{name} = {hostname}: {secret} printed\n{}\n{}",
                        run.stdout,
                        run.stderr
                    );
                }
                let document = support::checked(&run, 1);
                refused_on(run.exit, &document, &format!("config.{name}"))
                    .unwrap_or_else(|why| panic!("{name} = {hostname}: {why}"));
            }
        }
    }
}

#[test]
fn url_text_over_its_max_length_is_refused_before_any_request() {
    let server = recorder();
    let mut checked = 0;
    for manifest in manifest::all() {
        for param in &manifest.params {
            let Some(max) = param.max_length else {
                continue;
            };
            // One byte over, as one item (a list of one id is its joined form too).
            let mut envelope = envelope(manifest.id, &server.base_url());
            envelope["config"][&param.name] = json!("1".repeat(max as usize + 1));
            let run = support::run(&["run"], &envelope.to_string());
            let document = support::checked(&run, 1);
            refused_on(run.exit, &document, &format!("config.{}", param.name))
                .unwrap_or_else(|why| panic!("{} {}: {why}", manifest.name, param.name));
            // At the limit it is accepted by validation: distinct numbers, comma-separated, so
            // that it is a valid value of every such parameter (ids, activity codes, a query).
            envelope["config"][&param.name] = json!(numbers_of_length(max as usize));
            let run = support::run(&["validate"], &envelope.to_string());
            assert_ne!(
                run.exit, 3,
                "{} {}: {}",
                manifest.name, param.name, run.stdout
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} parameters have a max_length");
    assert!(server.requests().is_empty(), "a request was sent");
}

#[test]
fn huge_host_names_are_refused_without_being_quoted() {
    let huge = "7".repeat(4 << 20);
    for name in ["hostname", "threatq_hostname"] {
        let mut envelope = envelope(4, "usea1.sentinelone.net");
        envelope["config"][name] = json!(huge);
        let (result, exit) = runner::execute(&envelope.to_string(), Mode::Validate);
        let document = serde_json::to_value(&result).unwrap();
        refused_on(i32::from(exit.code()), &document, &format!("config.{name}"))
            .unwrap_or_else(|why| panic!("{name}: {why}"));
        assert!(
            document.to_string().len() < 10_000,
            "{name}: the value was quoted"
        );
    }
}

/// Distinct decimal numbers joined by commas, exactly `length` bytes long.
fn numbers_of_length(length: usize) -> String {
    let mut text = String::new();
    let mut next = 1000u64;
    while length - text.len() > 10 {
        if !text.is_empty() {
            text.push(',');
        }
        text.push_str(&next.to_string());
        next += 1;
    }
    let rest = length - text.len();
    if rest > 0 {
        // The last number fills what is left (a comma and at least one digit, or the digits).
        let digits = if text.is_empty() { rest } else { rest - 1 };
        if !text.is_empty() {
            text.push(',');
        }
        text.push_str(&"9".repeat(digits));
    }
    assert_eq!(text.len(), length);
    text
}
