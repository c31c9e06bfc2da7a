//! The command line as a user meets it: help, usage errors, `spec`, `run` as the default, and
//! envelopes that are not JSON every reader reads (trailing text, deep nesting).

use crate::support::run;

#[test]
fn help_is_printed_on_stdout_and_exits_zero() {
    let out = run(&["--help"], "");
    assert_eq!(out.exit, 0);
    for command in ["run", "spec", "validate", "check", "simulate", "demo"] {
        assert!(
            out.stdout.contains(command),
            "help mentions {command}:\n{}",
            out.stdout
        );
    }
    let out = run(&["run", "--help"], "");
    assert_eq!(out.exit, 0);
    assert!(out.stdout.contains("--dry-run"));
}

#[test]
fn unknown_flags_and_commands_exit_two_with_nothing_on_stdout() {
    for args in [&["--nope"][..], &["explode"], &["run", "--dry"]] {
        let out = run(args, "");
        assert_eq!(out.exit, 2, "{args:?}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed on stdout: {}",
            out.stdout
        );
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn piped_stdin_without_a_command_runs() {
    let out = run(&[], r#"{"action": 999, "config": {}}"#);
    assert_eq!(out.exit, 3);
    assert_eq!(out.json()["errors"][0]["code"], "config.invalid");
}

#[test]
fn spec_lists_the_manifests_and_the_schemas() {
    let out = run(&["spec"], "");
    assert_eq!(out.exit, 0);
    let spec = out.json();
    let names: Vec<&str> = spec["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for name in [
        "sentinelone-blacklist-whitelist-hashes",
        "sentinelone-mitigate-threats",
        "sentinelone-delete-hashes",
        "sentinelone-ioc-export",
    ] {
        assert!(names.contains(&name), "{name} in spec");
    }
    for schema in ["envelope", "result", "manifest"] {
        assert!(
            spec["schemas"][schema]["$schema"].is_string(),
            "{schema} schema present"
        );
    }
    let one = run(&["spec", "2"], "").json();
    assert_eq!(one["actions"].as_array().unwrap().len(), 1);
    assert_eq!(run(&["spec", "nope"], "").exit, 3);
}

/// `manifests/manifest.schema.json` is generated from the Rust type and must stay current.
#[test]
fn committed_manifest_schema_is_current() {
    let spec = run(&["spec"], "").json();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/manifests/manifest.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        committed, spec["schemas"]["manifest"],
        "regenerate with: s1-actions spec | jq .schemas.manifest > manifests/manifest.schema.json"
    );
}

#[test]
fn committed_examples_validate() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples")).unwrap() {
        let path = entry.unwrap().path();
        let out = run(&["validate", "--input", path.to_str().unwrap()], "");
        assert_eq!(out.exit, 0, "{}: {}", path.display(), out.stdout);
    }
}

#[test]
fn demo_runs_every_demo_envelope_against_the_simulator() {
    let out = run(
        &[
            "demo",
            "--fixtures",
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo"),
        ],
        "",
    );
    assert_eq!(out.exit, 0, "{}\n{}", out.stdout, out.stderr);
    let spec = run(&["spec"], "").json();
    for action in spec["actions"].as_array().unwrap() {
        let name = action["name"].as_str().unwrap();
        assert!(out.stdout.contains(name), "the demo runs {name}");
    }
    assert!(out.stdout.contains("Computers Affected by mitigation = 3"));
    assert!(!out.stdout.contains("run error"), "{}", out.stdout);
}

/// An envelope of action 1 with two objects, aimed at a closed loopback port; `@` marks where
/// a test puts its text (an object's field, a config key, the state).
fn envelope_with(place: &str, inner: &str) -> String {
    let objects = r#"[{"id": 1, "type": "SHA-1", "value": "7eb2197d6fd80c31bd04d3a7fb8c725eb9789013", "x": @O},
        {"id": 2, "type": "FQDN", "value": "evil.example"}]"#;
    let text = format!(
        r#"{{"action": 1, "config": {{"hostname": "http://127.0.0.1:9", "api_token": "{}",
        "max_retries": 0, "extra": @C}}, "objects": {objects}, "state": @S}}"#,
        crate::support::CANARY_TOKEN
    );
    let fill = |mark: &str, which: &str| {
        if place == which {
            inner.to_string()
        } else {
            mark.to_string()
        }
    };
    text.replace("@O", &fill("1", "object"))
        .replace("@C", &fill("1", "config"))
        .replace("@S", &fill("null", "state"))
}

fn nested(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

#[test]
fn trailing_text_after_the_envelope_exits_three_with_every_object_accounted_for() {
    let text = envelope_with("", "") + "\nnot part of it";
    for command in ["validate", "run"] {
        let out = run(&[command], &text);
        assert_eq!(out.exit, 3, "{command}: {}", out.stdout);
        let result = crate::support::checked(&out, 2);
        assert_eq!(result["errors"][0]["code"], "input.invalid_value");
        assert_eq!(result["errors"][0]["field"], "envelope");
    }
}

/// 5,000 levels inside an object, in config, in state: refused (exit 3) by `validate` and
/// `run` alike, and the document is one a JSON reader reads. The deepest envelope serde reads
/// (127 levels) is accepted.
#[test]
fn nesting_beyond_serdes_limit_is_refused_and_at_the_limit_accepted() {
    // Levels above the nesting: 3 in an object (envelope, list, object), 2 in config (envelope,
    // config), 1 in state (envelope).
    for (place, outer) in [("object", 3), ("config", 2), ("state", 1)] {
        let text = envelope_with(place, &nested(5_000));
        for command in ["validate", "run"] {
            let out = run(&[command], &text);
            assert_eq!(out.exit, 3, "{place} {command}: {}", out.stdout);
            let result = out.json();
            assert_eq!(result["errors"][0]["field"], "envelope", "{place}");
            assert!(
                result["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("127 levels"),
                "{place}: {}",
                out.stdout
            );
            // Objects nested too deep are not echoed; the others are, each with its result.
            let expected = if place == "object" { 0 } else { 2 };
            crate::support::checked(&out, expected);
        }
        let at_limit = envelope_with(place, &nested(127 - outer));
        assert!(serde_json::from_str::<serde_json::Value>(&at_limit).is_ok());
        let out = run(&["validate"], &at_limit);
        assert_eq!(out.exit, 0, "{place} at the limit: {}", out.stdout);
        crate::support::checked(&out, 2);
        let over = envelope_with(place, &nested(128 - outer));
        assert!(serde_json::from_str::<serde_json::Value>(&over).is_err());
        assert_eq!(
            run(&["validate"], &over).exit,
            3,
            "{place} one over the limit"
        );
    }
}
