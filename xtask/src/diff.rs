//! Manifest changes between two packages, as ThreatQ administrators read them before an
//! upgrade: per action, parameters added, removed, renamed (guessed) and changed, each marked
//! `!` (existing configurations need attention) or `~` (compatible).
//!
//! Both sides are read into the typed [`Manifest`] of this build, so a field the diff compares
//! is a field the runner knows; a file that looks like a manifest but does not deserialize is
//! reported, not skipped. The self-consistency rules ([`Manifest::check`]) are not applied: an
//! older package may predate one. The wording of every line is the one `package.py` used.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use s1_actions::manifest::{Manifest, Param, ParamType};
use serde_json::Value;

use crate::error::Error;
use crate::layout::{MANIFEST_DIR, is_manifest_file};
use crate::text::{same, show};
use crate::validate::json_files;

/// Manifests by action name.
pub type Manifests = BTreeMap<String, Manifest>;

/// Manifests from a package zip, a manifests directory, or a checkout (its `manifests/`).
pub fn load(source: &Path) -> Result<Manifests, Error> {
    let shown = source.display();
    // (where, text) of every manifest file, read in order of where.
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    if source.is_file() {
        let unreadable = |err: &dyn std::fmt::Display| {
            Error::Unreadable(format!("{shown}: not a readable zip: {err}"))
        };
        let file = fs::File::open(source).map_err(|err| unreadable(&err))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|err| unreadable(&err))?;
        for index in 0..archive.len() {
            let mut entry = archive.by_index(index).map_err(|err| unreadable(&err))?;
            let name = entry.name().map_err(|err| unreadable(&err))?.into_owned();
            let mut parts = name.rsplit('/');
            let (Some(file_name), Some(parent)) = (parts.next(), parts.next()) else {
                continue;
            };
            if parent == MANIFEST_DIR && is_manifest_file(file_name) {
                let mut text = String::new();
                entry
                    .read_to_string(&mut text)
                    .map_err(|err| unreadable(&err))?;
                texts.insert(name, text);
            }
        }
    } else if source.is_dir() {
        let nested = source.join(MANIFEST_DIR);
        let directory = if nested.is_dir() {
            nested
        } else {
            source.to_path_buf()
        };
        for path in json_files(&directory, is_manifest_file).map_err(Error::Unreadable)? {
            let text = fs::read_to_string(&path)
                .map_err(|err| Error::Unreadable(format!("{}: {err}", path.display())))?;
            texts.insert(path.display().to_string(), text);
        }
    } else {
        return Err(Error::Unreadable(format!(
            "{shown}: no such file or directory"
        )));
    }
    let mut manifests = Manifests::new();
    for (place, text) in texts {
        let value: Value = serde_json::from_str(&text)
            .map_err(|err| Error::Unreadable(format!("{place}: not valid JSON: {err}")))?;
        // Other JSON files (not an object with a name and a parameter list) are not manifests.
        let looks_like_manifest = value.get("name").is_some_and(Value::is_string)
            && value.get("params").is_some_and(Value::is_array);
        if !looks_like_manifest {
            continue;
        }
        let manifest: Manifest = serde_json::from_value(value).map_err(|err| {
            Error::Unreadable(format!("{place}: not a manifest this version reads: {err}"))
        })?;
        manifests.insert(manifest.name.clone(), manifest);
    }
    if manifests.is_empty() {
        return Err(Error::Unreadable(format!("{shown}: no manifests found")));
    }
    Ok(manifests)
}

/// One change: whether it breaks existing configurations, and its line.
type Change = (bool, String);

/// The parameter type as manifests spell it (`string_list`).
fn kind(param: &Param) -> String {
    type_name(param.kind)
}

fn type_name(kind: ParamType) -> String {
    match serde_json::to_value(kind) {
        Ok(Value::String(name)) => name,
        _ => "?".to_string(),
    }
}

fn describe(param: &Param) -> String {
    let mut bits = vec![kind(param)];
    bits.push(
        if param.required {
            "required"
        } else {
            "optional"
        }
        .to_string(),
    );
    if param.secret {
        bits.push("secret".to_string());
    }
    if let Some(default) = &param.default {
        bits.push(format!("default {}", show(default)));
    }
    format!("{} ({})", param.name, bits.join(", "))
}

/// A parameter with its position in its manifest's list.
type Placed<'a> = (usize, &'a Param);

/// Old and new parameter of a guessed rename, and why it was guessed.
type Renames<'a> = Vec<(Placed<'a>, Placed<'a>, String)>;

/// Pairs removed and added parameters that are most likely one parameter renamed.
///
/// Heuristic, in this order: 1. same label (unique on both sides); 2. same position in the
/// parameter list and same type. Anything left is reported as removed and added.
fn match_renames<'a>(
    mut removed: Vec<Placed<'a>>,
    mut added: Vec<Placed<'a>>,
) -> (Renames<'a>, Vec<Placed<'a>>, Vec<Placed<'a>>) {
    let mut pairs = Vec::new();
    for old in removed.clone() {
        let label = &old.1.label;
        let olds = removed.iter().filter(|(_, p)| &p.label == label).count();
        let news: Vec<usize> = added
            .iter()
            .enumerate()
            .filter(|(_, (_, p))| &p.label == label)
            .map(|(i, _)| i)
            .collect();
        if !label.is_empty() && olds == 1 && news.len() == 1 {
            let new = added.remove(news[0]);
            removed.retain(|item| item.0 != old.0);
            pairs.push((old, new, "same label".to_string()));
        }
    }
    for old in removed.clone() {
        let news: Vec<usize> = added
            .iter()
            .enumerate()
            .filter(|(_, (i, p))| *i == old.0 && p.kind == old.1.kind)
            .map(|(i, _)| i)
            .collect();
        if let [only] = news[..] {
            let new = added.remove(only);
            removed.retain(|item| item.0 != old.0);
            pairs.push((old, new, format!("same position {} and type", old.0 + 1)));
        }
    }
    (pairs, removed, added)
}

fn option_values(param: &Param) -> Vec<&Value> {
    param.options.iter().map(|option| &option.value).collect()
}

/// Every change of one parameter, old and new already paired.
fn compare_param(old: &Param, new: &Param) -> Vec<Change> {
    let name = &new.name;
    let mut changes = Vec::new();
    if old.kind != new.kind {
        changes.push((
            true,
            format!("type changed: {name}: {} -> {}", kind(old), kind(new)),
        ));
    }
    if old.secret != new.secret {
        changes.push((
            true,
            format!(
                "secret flag changed: {name}: {} -> {}",
                old.secret, new.secret
            ),
        ));
    }
    if old.required != new.required {
        let breaking = new.required && new.default.is_none();
        changes.push((
            breaking,
            format!(
                "required changed: {name}: {} -> {}",
                old.required, new.required
            ),
        ));
    }
    let same_default = match (&old.default, &new.default) {
        (Some(a), Some(b)) => same(a, b),
        (a, b) => a.is_none() && b.is_none(),
    };
    if !same_default {
        let text =
            |default: &Option<Value>| default.as_ref().map_or_else(|| "(none)".to_string(), show);
        changes.push((
            false,
            format!(
                "default changed: {name}: {} -> {}",
                text(&old.default),
                text(&new.default)
            ),
        ));
    }
    let (old_values, new_values) = (option_values(old), option_values(new));
    let among = |values: &[&Value], value: &Value| values.iter().any(|v| same(v, value));
    let same_values = old_values.len() == new_values.len()
        && old_values.iter().zip(&new_values).all(|(a, b)| same(a, b));
    if !same_values {
        let came: Vec<String> = new_values
            .iter()
            .filter(|v| !among(&old_values, v))
            .map(|v| show(*v))
            .collect();
        let gone: Vec<String> = old_values
            .iter()
            .filter(|v| !among(&new_values, v))
            .map(|v| show(*v))
            .collect();
        let mut parts = Vec::new();
        if !came.is_empty() {
            parts.push(format!("added {}", came.join(", ")));
        }
        if !gone.is_empty() {
            parts.push(format!("removed {}", gone.join(", ")));
        }
        if parts.is_empty() {
            parts.push("reordered".to_string());
        }
        changes.push((
            !gone.is_empty(),
            format!("options changed: {name}: {}", parts.join("; ")),
        ));
    } else if old
        .options
        .iter()
        .map(|o| &o.label)
        .ne(new.options.iter().map(|o| &o.label))
    {
        changes.push((false, format!("option labels changed: {name}")));
    }
    if old.label != new.label {
        changes.push((
            false,
            format!(
                "label changed: {name}: {} -> {}",
                show(&old.label),
                show(&new.label)
            ),
        ));
    }
    for (key, before, after) in [("min", old.min, new.min), ("max", old.max, new.max)] {
        if before != after {
            let text =
                |limit: Option<f64>| limit.map_or_else(|| "null".to_string(), |n| n.to_string());
            changes.push((
                false,
                format!("{key} changed: {name}: {} -> {}", text(before), text(after)),
            ));
        }
    }
    if old.max_length != new.max_length {
        let text = |limit: Option<u32>| limit.map_or_else(|| "null".to_string(), |n| n.to_string());
        changes.push((
            false,
            format!(
                "max_length changed: {name}: {} -> {}",
                text(old.max_length),
                text(new.max_length)
            ),
        ));
    }
    changes
}

/// The major number of a version (`"0"` when there is none).
fn major(version: &str) -> &str {
    let version = if version.is_empty() { "0" } else { version };
    version.split('.').next().unwrap_or(version)
}

fn placed(manifest: &Manifest) -> Vec<Placed<'_>> {
    manifest.params.iter().enumerate().collect()
}

fn find<'a>(params: &[Placed<'a>], name: &str) -> Option<Placed<'a>> {
    params.iter().find(|(_, p)| p.name == name).copied()
}

fn diff_action(old: &Manifest, new: &Manifest) -> Vec<Change> {
    let mut changes = Vec::new();
    let (old_params, new_params) = (placed(old), placed(new));
    let removed: Vec<Placed> = old_params
        .iter()
        .filter(|(_, p)| find(&new_params, &p.name).is_none())
        .copied()
        .collect();
    let added: Vec<Placed> = new_params
        .iter()
        .filter(|(_, p)| find(&old_params, &p.name).is_none())
        .copied()
        .collect();
    let (pairs, removed, added) = match_renames(removed, added);
    for (_, param) in added {
        let breaking = param.required && param.default.is_none();
        changes.push((breaking, format!("parameter added: {}", describe(param))));
    }
    for (_, param) in removed {
        changes.push((true, format!("parameter removed: {}", describe(param))));
    }
    for ((_, old_param), (_, new_param), why) in pairs {
        changes.push((
            true,
            format!(
                "parameter renamed: {} -> {} ({why})",
                old_param.name, new_param.name
            ),
        ));
        changes.extend(compare_param(old_param, new_param));
    }
    for (_, new_param) in &new_params {
        if let Some((_, old_param)) = find(&old_params, &new_param.name) {
            changes.extend(compare_param(old_param, new_param));
        }
    }
    if old.accepts != new.accepts {
        changes.push((
            false,
            format!(
                "accepted types changed: {} -> {}",
                show(&old.accepts),
                show(&new.accepts)
            ),
        ));
    }
    let outputs = |m: &Manifest| -> Vec<String> {
        m.outputs
            .attributes
            .iter()
            .map(|a| a.name.clone())
            .collect()
    };
    let (old_out, new_out) = (outputs(old), outputs(new));
    if old_out != new_out {
        changes.push((
            false,
            format!(
                "output attributes changed: {} -> {}",
                show(&old_out),
                show(&new_out)
            ),
        ));
    }
    changes
}

/// Readable report lines; empty when nothing a ThreatQ administrator sees has changed.
pub fn diff(old: &Manifests, new: &Manifests) -> Vec<String> {
    let mut lines = Vec::new();
    // An action renamed (same numeric id, different name) is still one action.
    let mut old_by_id: BTreeMap<u32, &Manifest> = BTreeMap::new();
    for manifest in old.values() {
        old_by_id.insert(manifest.id, manifest);
    }
    let mut matched_old: Vec<&str> = Vec::new();
    let mut order: Vec<&Manifest> = new.values().collect();
    order.sort_by(|a, b| (a.id, &a.name).cmp(&(b.id, &b.name)));
    for manifest in order {
        let name = &manifest.name;
        let before = old.get(name).or_else(|| {
            old_by_id
                .get(&manifest.id)
                .copied()
                .filter(|renamed| !new.contains_key(&renamed.name))
        });
        let Some(before) = before else {
            lines.push(format!(
                "{name} (id {}): action added, version {}",
                manifest.id, manifest.version
            ));
            continue;
        };
        matched_old.push(&before.name);
        let mut changes = diff_action(before, manifest);
        if &before.name != name {
            changes.insert(
                0,
                (true, format!("action renamed: {} -> {name}", before.name)),
            );
        }
        if changes.is_empty() && before.version == manifest.version {
            continue;
        }
        lines.push(format!(
            "{name} (id {}): version {} -> {}",
            manifest.id, before.version, manifest.version
        ));
        for (breaking, line) in &changes {
            lines.push(format!("  {} {line}", if *breaking { '!' } else { '~' }));
        }
        if changes.iter().any(|(breaking, _)| *breaking)
            && major(&before.version) == major(&manifest.version)
        {
            lines.push(
                "  warning: configuration changes marked ! break existing configurations, \
                 but the action's major version did not change"
                    .to_string(),
            );
        }
    }
    for (name, manifest) in old {
        if !new.contains_key(name) && !matched_old.contains(&name.as_str()) {
            lines.push(format!("{name} (id {}): action removed", manifest.id));
        }
    }
    lines
}

/// What `package build --previous` prints about the changes since `previous`.
pub fn report(previous: &Path, lines: &[String]) -> Vec<String> {
    let mut out = vec![format!("Manifest changes since {}:", previous.display())];
    if lines.is_empty() {
        out.push("  none: existing configurations carry over unchanged".to_string());
    } else {
        out.extend(lines.iter().map(|line| format!("  {line}")));
        out.push(
            "  (! = existing configurations need attention after the upgrade; ~ = compatible)"
                .to_string(),
        );
        out.push("  (renames are guessed: same label, else same position and type)".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fs;

    use serde_json::json;

    use super::*;
    use crate::testing::{doctor, param, repo};

    fn today() -> Manifests {
        load(&repo()).expect("the repository's manifests")
    }

    /// A copy of today's manifests directory, doctored file by file.
    fn old_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        for entry in fs::read_dir(repo().join(MANIFEST_DIR)).expect("read_dir") {
            let path = entry.expect("entry").path();
            fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
        dir
    }

    fn manifest(dir: &Path, name: &str) -> std::path::PathBuf {
        dir.join(format!("{name}.json"))
    }

    fn param_mut<'a>(manifest: &'a mut Manifest, name: &str) -> &'a mut Param {
        manifest
            .params
            .iter_mut()
            .find(|p| p.name == name)
            .expect(name)
    }

    fn assert_has(lines: &[String], expected: &str) {
        assert!(
            lines.iter().any(|line| line.contains(expected)),
            "no {expected:?} in\n{}",
            lines.join("\n")
        );
    }

    #[test]
    fn identical_manifests_report_nothing() {
        assert_eq!(diff(&today(), &today()), Vec::<String>::new());
        assert_eq!(
            report(Path::new("old.zip"), &[]),
            [
                "Manifest changes since old.zip:",
                "  none: existing configurations carry over unchanged"
            ]
        );
    }

    #[test]
    fn reports_every_kind_of_parameter_change() {
        let old = old_dir();
        doctor(&manifest(old.path(), "sentinelone-mitigate-threats"), |m| {
            param(m, "query")["name"] = json!("threat_query");
            param(m, "max_retries")["type"] = json!("string");
            param(m, "proxy")["secret"] = json!(true);
            param(m, "objects_per_run")["default"] = json!(5000);
            let options = param(m, "mitigation_action")["options"]
                .as_array_mut()
                .expect("options");
            options.retain(|o| o["value"] != "Kill");
            options.push(json!({"value": "Delete", "label": "Delete"}));
            let params = m["params"].as_array_mut().expect("params");
            params.push(json!({"name": "legacy_mode", "label": "Legacy Mode", "description": "x", "type": "boolean"}));
            params.retain(|p| p["name"] != "ca_bundle");
        });
        doctor(&manifest(old.path(), "sentinelone-ioc-export"), |m| {
            param(m, "hostname")["name"] = json!("server");
        });
        fs::remove_file(manifest(old.path(), "sentinelone-delete-hashes")).expect("rm");
        let lines = diff(&load(old.path()).expect("old"), &today());
        for expected in [
            "sentinelone-mitigate-threats (id 2): version 1.0.0 -> 1.0.0",
            "  ! parameter renamed: threat_query -> query (same label)",
            "  ! type changed: max_retries: string -> integer",
            "  ! secret flag changed: proxy: true -> false",
            "  ~ default changed: objects_per_run: 5000 -> 10000",
            "  ! options changed: mitigation_action: added \"Kill\"; removed \"Delete\"",
            "  ~ parameter added: ca_bundle (text, optional)",
            "  ! parameter removed: legacy_mode (boolean, optional)",
            "  ! parameter renamed: server -> hostname (same label)",
            "sentinelone-delete-hashes (id 3): action added, version 1.0.0",
            "  warning: configuration changes marked ! break existing configurations, but the action's major version did not change",
        ] {
            assert_has(&lines, expected);
        }
        assert!(
            !lines
                .iter()
                .any(|line| line.contains("sentinelone-blacklist-whitelist-hashes")),
            "{lines:?}"
        );
    }

    #[test]
    fn same_position_and_type_is_a_rename_and_a_different_type_is_not() {
        let old = old_dir();
        doctor(&manifest(old.path(), "sentinelone-mitigate-threats"), |m| {
            let query = param(m, "query");
            query["name"] = json!("filter");
            query["label"] = json!("Filter");
            let proxy = param(m, "proxy");
            proxy["name"] = json!("proxy_port");
            proxy["label"] = json!("Proxy Port");
            proxy["type"] = json!("integer");
        });
        let lines = diff(&load(old.path()).expect("old"), &today());
        assert_has(
            &lines,
            "! parameter renamed: filter -> query (same position 4 and type)",
        );
        assert_has(
            &lines,
            "! parameter removed: proxy_port (integer, optional)",
        );
        assert_has(&lines, "parameter added: proxy (string, optional)");
    }

    #[test]
    fn actions_renamed_by_id_removed_and_versions() {
        let old = old_dir();
        let renamed = manifest(old.path(), "sentinelone-list-sites-old");
        fs::rename(manifest(old.path(), "sentinelone-list-sites"), &renamed).expect("mv");
        doctor(&renamed, |m| {
            m["name"] = json!("sentinelone-list-sites-old")
        });
        let gone = manifest(old.path(), "sentinelone-gone");
        fs::copy(manifest(old.path(), "sentinelone-list-agents"), &gone).expect("cp");
        doctor(&gone, |m| {
            m["name"] = json!("sentinelone-gone");
            m["id"] = json!(999);
        });
        doctor(&manifest(old.path(), "sentinelone-list-groups"), |m| {
            m["version"] = json!("0.9.0")
        });
        let lines = diff(&load(old.path()).expect("old"), &today());
        let at = |head: &str| {
            lines
                .iter()
                .position(|line| line.starts_with(head))
                .expect(head)
        };
        let sites = at("sentinelone-list-sites (id ");
        assert_eq!(
            lines[sites + 1],
            "  ! action renamed: sentinelone-list-sites-old -> sentinelone-list-sites"
        );
        assert!(lines[sites + 2].starts_with("  warning: "), "{lines:?}");
        let groups = at("sentinelone-list-groups (id ");
        assert!(
            lines[groups].ends_with("version 0.9.0 -> 1.0.0"),
            "{lines:?}"
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some("sentinelone-gone (id 999): action removed")
        );
    }

    #[test]
    fn compatible_changes_are_marked_tilde() {
        let mut old = today();
        let mut new = today();
        let name = "sentinelone-mitigate-threats";
        let (before, after) = (
            old.get_mut(name).expect("old"),
            new.get_mut(name).expect("new"),
        );
        before.version = "1.0.0".into();
        after.version = "1.1.0".into();
        // Both sides set explicitly: the test does not depend on today's manifest contents.
        for (m, label, min) in [
            (&mut *before, "Objects Per Run", 1.0),
            (&mut *after, "Objects", 2.0),
        ] {
            param_mut(m, "objects_per_run").label = label.into();
            param_mut(m, "objects_per_run").min = Some(min);
            m.outputs.attributes.clear();
        }
        param_mut(after, "mitigation_action").options[0].label = "Quarantine it".into();
        let accepts = (
            before.accepts.clone(),
            after.accepts.iter().rev().copied().collect::<Vec<_>>(),
        );
        after.accepts = accepts.1.clone();
        before
            .outputs
            .attributes
            .push(s1_actions::manifest::OutputAttribute {
                name: "Verdict".into(),
                description: "x".into(),
            });
        let lines = diff(&old, &new);
        assert_eq!(
            lines,
            [
                "sentinelone-mitigate-threats (id 2): version 1.0.0 -> 1.1.0",
                "  ~ option labels changed: mitigation_action",
                "  ~ label changed: objects_per_run: \"Objects Per Run\" -> \"Objects\"",
                "  ~ min changed: objects_per_run: 1 -> 2",
                &format!(
                    "  ~ accepted types changed: {} -> {}",
                    show(&accepts.0),
                    show(&accepts.1)
                ),
                "  ~ output attributes changed: [\"Verdict\"] -> []",
            ]
        );
    }

    #[test]
    fn reordered_options_and_required_changes() {
        let old = today();
        let mut new = today();
        let after = new.get_mut("sentinelone-mitigate-threats").expect("new");
        let select = after
            .params
            .iter_mut()
            .find(|p| p.name == "mitigation_action")
            .expect("select");
        select.options.reverse();
        let query = after
            .params
            .iter_mut()
            .find(|p| p.name == "query")
            .expect("query");
        query.required = true;
        let lines = diff(&old, &new);
        assert_has(&lines, "  ~ options changed: mitigation_action: reordered");
        assert_has(&lines, "  ! required changed: query: false -> true");
    }

    #[test]
    fn loads_a_package_zip_and_skips_other_json() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut entries = crate::archive::Entries::new();
        for entry in fs::read_dir(repo().join(MANIFEST_DIR)).expect("read_dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            entries.insert(
                format!("{MANIFEST_DIR}/{name}"),
                (fs::read(&path).expect("read"), 0o644),
            );
        }
        entries.insert(
            format!("{MANIFEST_DIR}/notes.json"),
            (b"[1, 2]".to_vec(), 0o644),
        );
        let zip = dir.path().join("old.zip");
        fs::write(&zip, crate::archive::zip_bytes(&entries, 0).expect("zip")).expect("write");
        let from_zip = load(&zip).expect("zip manifests");
        assert_eq!(
            from_zip.keys().collect::<Vec<_>>(),
            today().keys().collect::<Vec<_>>()
        );
        assert!(diff(&from_zip, &today()).is_empty());
    }

    #[test]
    fn unreadable_sources() {
        let dir = tempfile::tempdir().expect("tmp");
        let missing = dir.path().join("missing");
        assert!(
            matches!(load(&missing), Err(Error::Unreadable(t)) if t.ends_with("missing: no such file or directory"))
        );
        assert!(
            matches!(load(dir.path()), Err(Error::Unreadable(t)) if t.ends_with(": no manifests found"))
        );
        let not_zip = dir.path().join("x.zip");
        fs::write(&not_zip, "no").expect("write");
        assert!(
            matches!(load(&not_zip), Err(Error::Unreadable(t)) if t.contains("not a readable zip"))
        );
        fs::write(
            dir.path().join("a.json"),
            r#"{"name": "a", "params": [], "colour": 1}"#,
        )
        .expect("write");
        assert!(
            matches!(load(dir.path()), Err(Error::Unreadable(t)) if t.contains("not a manifest this version reads"))
        );
        fs::write(dir.path().join("a.json"), "{").expect("write");
        assert!(
            matches!(load(dir.path()), Err(Error::Unreadable(t)) if t.contains("a.json: not valid JSON"))
        );
    }
}
