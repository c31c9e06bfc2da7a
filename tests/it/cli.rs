//! The command line as a user meets it: help, usage errors, `spec`, and `run` as the default.

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
