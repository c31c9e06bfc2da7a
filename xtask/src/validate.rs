//! Validation before packaging: the built binary's `s1-actions spec` against `manifests/`, the
//! committed manifest schema, the example envelopes and the documents the zip carries.
//!
//! Every problem is collected and reported at once ([`Error::Refused`]); warnings do not stop
//! the package. Running the binary is kept apart ([`run_spec`], [`validate_example`]) from the
//! checks ([`check`]), which take the spec as a value so tests feed them without a build.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::error::Error;
use crate::layout::{
    DOC_ENTRIES, MANIFEST_DIR, MANIFEST_SCHEMA_FILE, SCHEMA_ENTRIES, is_manifest_file,
};
use crate::text::{repr, same};

/// How long one run of the binary may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// What validation found good enough to package.
#[derive(Debug)]
pub struct Validated {
    /// `s1-actions spec`, parsed and checked to have what the zip needs.
    pub spec: Value,
    /// `runner.version` of the spec.
    pub version: String,
    /// How many actions the spec lists.
    pub actions: usize,
    /// The manifest files checked, sorted.
    pub files: Vec<PathBuf>,
    /// Worth saying, not worth refusing.
    pub warnings: Vec<String>,
}

/// Validates the binary and the repository at `root` for packaging.
pub fn validate(root: &Path, binary: &Path) -> Result<Validated, Error> {
    let spec = run_spec(binary)?;
    check(root, spec, |example| validate_example(binary, example))
}

/// The exit status and stderr of `binary args…` with no stdin; `None` status when killed.
struct Ran {
    status: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn run(binary: &Path, args: &[&std::ffi::OsStr]) -> Result<Ran, String> {
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| err.to_string())?;
    // Read both pipes while waiting: a child blocked on a full pipe would never exit.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                // A read error leaves what was read; the exit status tells the rest.
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait().map_err(|err| err.to_string())? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish in {} s", RUN_TIMEOUT.as_secs()));
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    Ok(Ran {
        status: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn exit_text(status: Option<i32>) -> String {
    status.map_or_else(|| "on a signal".to_string(), |code| code.to_string())
}

/// `s1-actions spec`, parsed; refused if it fails (a broken embedded manifest exits 70).
pub fn run_spec(binary: &Path) -> Result<Value, Error> {
    if !binary.is_file() {
        return Err(Error::Refused(format!(
            "binary not found: {}",
            binary.display()
        )));
    }
    let ran = run(binary, &["spec".as_ref()])
        .map_err(|err| Error::Refused(format!("cannot run {} spec: {err}", binary.display())))?;
    if ran.status != Some(0) {
        let stderr = String::from_utf8_lossy(&ran.stderr);
        let lines: Vec<&str> = stderr.trim().lines().collect();
        let tail: String = lines[lines.len().saturating_sub(5)..]
            .iter()
            .map(|line| format!("\n    {line}"))
            .collect();
        return Err(Error::Refused(format!(
            "`s1-actions spec` exited {} (an embedded manifest is broken?){tail}",
            exit_text(ran.status)
        )));
    }
    parse_spec(&ran.stdout)
}

/// The spec printed by the binary, with the parts packaging needs.
pub fn parse_spec(stdout: &[u8]) -> Result<Value, Error> {
    let spec: Value = serde_json::from_slice(stdout)
        .map_err(|err| Error::Refused(format!("`s1-actions spec` printed invalid JSON: {err}")))?;
    complete(&spec)?;
    Ok(spec)
}

/// Refused unless the spec has a version, actions and every schema the zip carries.
fn complete(spec: &Value) -> Result<(), Error> {
    let mut problems = Vec::new();
    if !spec
        .pointer("/runner/version")
        .is_some_and(Value::is_string)
    {
        problems.push("runner.version missing".to_string());
    }
    if spec
        .get("actions")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        problems.push("no actions".to_string());
    }
    for (_, key) in SCHEMA_ENTRIES {
        if !spec
            .get("schemas")
            .and_then(|schemas| schemas.get(key))
            .is_some_and(Value::is_object)
        {
            problems.push(format!("schemas.{key} missing"));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Refused(format!(
            "`s1-actions spec` output is incomplete: {}",
            problems.join("; ")
        )));
    }
    Ok(())
}

/// `s1-actions validate --input EXAMPLE` must succeed: a smoke test of the binary itself.
pub fn validate_example(binary: &Path, example: &Path) -> Result<(), String> {
    let ran = run(
        binary,
        &["validate".as_ref(), "--input".as_ref(), example.as_os_str()],
    )?;
    match ran.status {
        Some(0) => Ok(()),
        status => Err(format!("exited {}", exit_text(status))),
    }
}

/// The object without the given keys (keys the comparison ignores).
fn without(value: &Value, keys: &[&str]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !keys.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

/// Sorted `DIR/*.json` paths whose file name passes `keep`; none when the directory is missing.
pub fn json_files(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, String> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(format!("{}: {err}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|err| format!("{}: {err}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if name.ends_with(".json") && keep(name) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Checks a parsed spec against `root`'s manifests, schema, examples and documents.
pub fn check(
    root: &Path,
    spec: Value,
    mut validate_example: impl FnMut(&Path) -> Result<(), String>,
) -> Result<Validated, Error> {
    complete(&spec)?;
    let mut problems: Vec<String> = Vec::new();
    let mut warnings = Vec::new();
    let manifest_dir = root.join(MANIFEST_DIR);
    let files = json_files(&manifest_dir, is_manifest_file).map_err(Error::Refused)?;
    if files.is_empty() {
        return Err(Error::Refused(format!(
            "no manifests in {}",
            manifest_dir.display()
        )));
    }

    let actions: &[Value] = spec
        .get("actions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    // Action name (as the spec has it, maybe not a string) -> its manifest, in spec order.
    let mut embedded: Vec<(&Value, &Value)> = Vec::new();
    for action in actions {
        let name = action.get("name").unwrap_or(&Value::Null);
        if embedded.iter().any(|(seen, _)| *seen == name) {
            problems.push(format!("spec lists action {} twice", repr(name)));
        } else {
            embedded.push((name, action));
        }
        if action.get("implemented") != Some(&Value::Bool(true)) {
            problems.push(format!(
                "action {} has a manifest but no implementation",
                repr(name)
            ));
        }
    }
    let ids: Vec<Value> = actions
        .iter()
        .map(|a| a.get("id").cloned().unwrap_or(Value::Null))
        .collect();
    if ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id)) {
        problems.push(format!(
            "action ids are not unique: {}",
            repr(&Value::Array(ids.clone()))
        ));
    }
    // The last action of a name wins, as in the spec's readers.
    let embedded_action = |name: &str| {
        actions
            .iter()
            .rev()
            .find(|a| a.get("name").and_then(Value::as_str) == Some(name))
    };

    let mut seen: Vec<String> = Vec::new();
    for path in &files {
        let file = file_name(path);
        let rel = format!("{MANIFEST_DIR}/{file}");
        let stem = file.strip_suffix(".json").unwrap_or(&file).to_string();
        let manifest: Value = match fs::read(path)
            .map_err(|err| err.to_string())
            .and_then(|bytes| String::from_utf8(bytes).map_err(|err| err.to_string()))
            .and_then(|text| serde_json::from_str(&text).map_err(|err| err.to_string()))
        {
            Ok(manifest) => manifest,
            Err(err) => {
                problems.push(format!("{rel}: not valid JSON: {err}"));
                continue;
            }
        };
        if !manifest.is_object() {
            problems.push(format!("{rel}: not a JSON object"));
            continue;
        }
        let name = manifest.get("name").unwrap_or(&Value::Null);
        if name.as_str() != Some(stem.as_str()) {
            problems.push(format!(
                "{rel}: name is {}, expected {} (the file name)",
                repr(name),
                crate::text::repr_str(&stem)
            ));
            continue;
        }
        seen.push(stem.clone());
        let Some(action) = embedded_action(&stem) else {
            problems.push(format!(
                "{rel}: the binary has no action {} (not embedded in src/manifest.rs?)",
                crate::text::repr_str(&stem)
            ));
            continue;
        };
        if !same(
            &without(&manifest, &["$schema"]),
            &without(action, &["$schema", "implemented"]),
        ) {
            // This build's parser says why, when it is a key it does not know.
            let why = match s1_actions::manifest::Manifest::parse(&manifest.to_string()) {
                Err(err) => format!(": {err}"),
                Ok(_) => String::new(),
            };
            problems.push(format!(
                "{rel}: differs from the manifest embedded in the binary (rebuild, or the file \
                 does not survive the binary's parser: unknown or misspelled key?){why}"
            ));
        }
    }
    for (name, _) in &embedded {
        let name_text = match name {
            Value::String(text) => text.clone(),
            other => repr(other),
        };
        if !seen.contains(&name_text) && !manifest_dir.join(format!("{name_text}.json")).exists() {
            problems.push(format!(
                "action {} is embedded in the binary but {MANIFEST_DIR}/{name_text}.json is missing",
                repr(name)
            ));
        }
    }

    let schema_file = manifest_dir.join(MANIFEST_SCHEMA_FILE);
    if schema_file.exists() {
        let committed = fs::read_to_string(&schema_file)
            .map_err(|err| err.to_string())
            .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|err| err.to_string()));
        match committed {
            Err(err) => problems.push(format!(
                "{MANIFEST_DIR}/{MANIFEST_SCHEMA_FILE}: not valid JSON: {err}"
            )),
            Ok(committed)
                if !spec
                    .pointer("/schemas/manifest")
                    .is_some_and(|s| same(s, &committed)) =>
            {
                problems.push(format!(
                    "{MANIFEST_DIR}/{MANIFEST_SCHEMA_FILE} is stale: regenerate with \
                 `s1-actions spec | jq .schemas.manifest > {MANIFEST_DIR}/{MANIFEST_SCHEMA_FILE}`"
                ))
            }
            Ok(_) => {}
        }
    }

    // Smoke test of the binary itself: every published example envelope must validate.
    let examples = json_files(&root.join("examples"), |_| true).map_err(Error::Refused)?;
    for example in examples {
        if let Err(err) = validate_example(&example) {
            problems.push(format!(
                "examples/{}: `s1-actions validate` {err}",
                file_name(&example)
            ));
        }
    }

    let version = spec
        .pointer("/runner/version")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Ok(changelog) = fs::read_to_string(root.join("CHANGELOG.md"))
        && !changelog.contains(&format!("[{version}]"))
    {
        warnings.push(format!("CHANGELOG.md has no section for version {version}"));
    }
    for doc in DOC_ENTRIES {
        if !root.join(doc).is_file() {
            problems.push(format!("{doc} is missing"));
        }
    }

    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        return Err(Error::Refused(lines.join("\n")));
    }
    Ok(Validated {
        actions: actions.len(),
        spec,
        version,
        files,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{doctor, param, scratch_root, spec};

    fn checked(root: &Path) -> Result<Validated, Error> {
        check(root, spec(), |_| Ok(()))
    }

    /// The refusal text; panics when validation passed.
    fn refusal(root: &Path) -> String {
        match checked(root) {
            Err(Error::Refused(text)) => text,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn manifest(root: &Path, name: &str) -> PathBuf {
        root.join("manifests").join(format!("{name}.json"))
    }

    #[test]
    fn the_repository_validates() {
        let root = scratch_root();
        let valid = checked(root.path()).expect("valid");
        assert_eq!(valid.files.len(), valid.actions);
        assert_eq!(valid.version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn every_example_is_run() {
        let root = scratch_root();
        let mut ran = Vec::new();
        let refused = check(root.path(), spec(), |example| {
            ran.push(file_name(example));
            if ran.len() == 1 {
                Err("exited 3".to_string())
            } else {
                Ok(())
            }
        });
        assert!(ran.len() > 1, "{ran:?}");
        let Err(Error::Refused(text)) = refused else {
            panic!("not refused")
        };
        assert!(
            text.contains(&format!(
                "examples/{}: `s1-actions validate` exited 3",
                ran[0]
            )),
            "{text}"
        );
    }

    #[test]
    fn refuses_a_manifest_that_is_not_json() {
        let root = scratch_root();
        fs::write(
            manifest(root.path(), "sentinelone-mitigate-threats"),
            "{ \"name\": ",
        )
        .expect("write");
        let text = refusal(root.path());
        assert!(
            text.contains("  - manifests/sentinelone-mitigate-threats.json: not valid JSON: "),
            "{text}"
        );
    }

    #[test]
    fn refuses_a_name_that_is_not_the_file_name() {
        let root = scratch_root();
        doctor(
            &manifest(root.path(), "sentinelone-mitigate-threats"),
            |m| m["name"] = json!("sentinelone-mitigate"),
        );
        let text = refusal(root.path());
        assert!(
            text.contains(
                "manifests/sentinelone-mitigate-threats.json: name is 'sentinelone-mitigate', \
                 expected 'sentinelone-mitigate-threats' (the file name)"
            ),
            "{text}"
        );
    }

    #[test]
    fn refuses_a_manifest_that_differs_from_the_embedded_one() {
        let root = scratch_root();
        doctor(
            &manifest(root.path(), "sentinelone-mitigate-threats"),
            |m| {
                m["params"][2]["colour"] = json!("red");
            },
        );
        let text = refusal(root.path());
        assert!(
            text.contains("differs from the manifest embedded in the binary"),
            "{text}"
        );
        assert!(
            text.contains("unknown field `colour`"),
            "the parser says which key: {text}"
        );
    }

    #[test]
    fn a_changed_value_differs_too() {
        let root = scratch_root();
        doctor(
            &manifest(root.path(), "sentinelone-mitigate-threats"),
            |m| {
                param(m, "objects_per_run")["default"] = json!(9999);
            },
        );
        assert!(refusal(root.path()).contains("differs from the manifest embedded in the binary"));
    }

    #[test]
    fn key_order_and_the_schema_pointer_do_not_matter() {
        let root = scratch_root();
        doctor(&manifest(root.path(), "sentinelone-list-sites"), |m| {
            let mut object = m.as_object().expect("object").clone();
            object.remove("$schema");
            *m = Value::Object(object.into_iter().rev().collect());
        });
        checked(root.path()).expect("still valid");
    }

    #[test]
    fn refuses_a_missing_manifest_file() {
        let root = scratch_root();
        fs::remove_file(manifest(root.path(), "sentinelone-delete-hashes")).expect("rm");
        let text = refusal(root.path());
        assert!(
            text.contains(
                "action 'sentinelone-delete-hashes' is embedded in the binary but \
                 manifests/sentinelone-delete-hashes.json is missing"
            ),
            "{text}"
        );
    }

    #[test]
    fn refuses_a_manifest_the_binary_does_not_know() {
        let root = scratch_root();
        let extra = manifest(root.path(), "sentinelone-extra");
        fs::copy(manifest(root.path(), "sentinelone-delete-hashes"), &extra).expect("copy");
        doctor(&extra, |m| m["name"] = json!("sentinelone-extra"));
        let text = refusal(root.path());
        assert!(
            text.contains(
                "the binary has no action 'sentinelone-extra' (not embedded in src/manifest.rs?)"
            ),
            "{text}"
        );
    }

    #[test]
    fn refuses_a_stale_manifest_schema() {
        let root = scratch_root();
        doctor(&root.path().join("manifests/manifest.schema.json"), |m| {
            m["title"] = json!("Old")
        });
        assert!(
            refusal(root.path())
                .contains("manifests/manifest.schema.json is stale: regenerate with")
        );
    }

    #[test]
    fn refuses_a_missing_document() {
        let root = scratch_root();
        fs::remove_file(root.path().join("LICENSE")).expect("rm");
        assert!(refusal(root.path()).contains("  - LICENSE is missing"));
    }

    #[test]
    fn refuses_no_manifests_at_all() {
        let root = tempfile::tempdir().expect("tmp");
        let text = refusal(root.path());
        assert!(text.starts_with("no manifests in "), "{text}");
    }

    #[test]
    fn lists_every_problem_at_once() {
        let root = scratch_root();
        fs::remove_file(root.path().join("README.md")).expect("rm");
        fs::remove_file(manifest(root.path(), "sentinelone-delete-hashes")).expect("rm");
        let text = refusal(root.path());
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn refuses_duplicate_and_unimplemented_actions() {
        let root = scratch_root();
        let mut doctored = spec();
        let actions = doctored["actions"].as_array_mut().expect("actions");
        let mut copy = actions[0].clone();
        copy["implemented"] = json!(false);
        actions.push(copy);
        let Err(Error::Refused(text)) = check(root.path(), doctored, |_| Ok(())) else {
            panic!("not refused")
        };
        assert!(
            text.contains("spec lists action 'sentinelone-blacklist-whitelist-hashes' twice"),
            "{text}"
        );
        assert!(
            text.contains("has a manifest but no implementation"),
            "{text}"
        );
        assert!(
            text.contains("action ids are not unique: [1, 2, "),
            "{text}"
        );
    }

    #[test]
    fn warns_when_the_changelog_has_no_section_for_the_version() {
        let root = scratch_root();
        fs::write(root.path().join("CHANGELOG.md"), "# Changelog\n").expect("write");
        let valid = checked(root.path()).expect("valid");
        assert_eq!(
            valid.warnings,
            [format!(
                "CHANGELOG.md has no section for version {}",
                env!("CARGO_PKG_VERSION")
            )]
        );
    }

    #[test]
    fn an_incomplete_spec_is_refused() {
        let Err(Error::Refused(text)) =
            parse_spec(br#"{"runner": {}, "actions": [], "schemas": {"result": {}}}"#)
        else {
            panic!("not refused")
        };
        assert_eq!(
            text,
            "`s1-actions spec` output is incomplete: runner.version missing; no actions; \
             schemas.envelope missing; schemas.manifest missing"
        );
        assert!(
            matches!(parse_spec(b"not json"), Err(Error::Refused(t)) if t.contains("printed invalid JSON"))
        );
    }

    #[test]
    fn a_missing_binary_is_refused() {
        let Err(Error::Refused(text)) = run_spec(Path::new("/nonexistent/s1-actions")) else {
            panic!()
        };
        assert_eq!(text, "binary not found: /nonexistent/s1-actions");
    }

    #[cfg(unix)]
    #[test]
    fn a_failing_spec_is_refused_with_the_tail_of_its_stderr() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let fake = dir.path().join("broken");
        fs::write(
            &fake,
            "#!/bin/sh\necho 'thread main panicked: manifests/x.json is invalid' >&2\nexit 70\n",
        )
        .expect("write");
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).expect("chmod");
        let Err(Error::Refused(text)) = run_spec(&fake) else {
            panic!("not refused")
        };
        assert_eq!(
            text,
            "`s1-actions spec` exited 70 (an embedded manifest is broken?)\n    \
             thread main panicked: manifests/x.json is invalid"
        );
    }
}
