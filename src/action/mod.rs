//! The table of actions and the one adapter that turns a typed [`Action`] into a table entry.
//!
//! An action is a type implementing [`Action`] in its own file; [`ACTIONS`] lists every action
//! once, each with its manifest (`manifests/<name>.json`, embedded), and is the one list to edit
//! to add an action. The envelope's `action` (numeric ID or name) is looked up among the
//! manifests. Shared mechanics (outcomes, batching, writes and dry-run plans) live in
//! [`context`], look-ups in [`lookup`], ingest checkpoints and feeds in [`ingest`]: not in
//! actions.

pub mod blacklist_whitelist_hashes;
pub mod connect_network;
pub mod context;
pub mod delete_hashes;
pub mod disconnect_network;
pub mod get_activities;
pub mod get_alerts;
pub mod get_blacklist_items;
pub mod get_threats;
pub mod hash_reputation;
pub mod hunt_indicators;
pub mod ingest;
pub mod ingest_threats;
pub mod ioc_export;
pub mod ioc_remove;
pub mod list_agents;
pub mod list_groups;
pub mod list_sites;
pub mod lookup;
pub mod mitigate_threats;
pub mod monitor_threat_status;
pub mod scan_endpoints;
pub mod update_alerts;
pub mod update_threats;

use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use context::{Reply, RunContext, Target, TargetId, Tense, Write, distinct_targets};

use crate::envelope::ActionRef;
use crate::error::Failure;
use crate::indicator::IndicatorType;
use crate::manifest::{self, Manifest};

/// One action: typed parameters, which indicator types it takes, and the work.
pub trait Action: 'static {
    /// The action's own parameters (connection parameters and `objects_per_run` excluded). Its
    /// JSON Schema must agree with the manifest; a test checks it.
    type Params: DeserializeOwned + JsonSchema + Send + Sync;

    /// Whether objects of `kind` (already one of the manifest's `accepts`) are worked on with
    /// these parameters; `Err` carries the reason they are skipped.
    fn accepts(_params: &Self::Params, _kind: IndicatorType) -> Result<(), String> {
        Ok(())
    }

    /// What [`Action::run`] would refuse before sending any request (parameters that do not go
    /// together, an input `state` it cannot read), checked without sending anything. The runner
    /// calls it for `run`, `validate` and `check` alike, before any request, so that `validate`
    /// says what `run` says; `run` is only called after it passed.
    fn preflight(
        _params: &Self::Params,
        _state: Option<&Value>,
        _now: DateTime<Utc>,
    ) -> Result<(), Failure> {
        Ok(())
    }

    /// Does the work for every target of `ctx`, recording each one's outcome there. Returning
    /// `Err` ends the run: targets still pending fail with that error.
    fn run(params: &Self::Params, ctx: &mut RunContext<'_>) -> Result<(), Failure>;
}

/// An action with its parameters read, ready to run.
pub trait PreparedAction {
    fn accepts(&self, kind: IndicatorType) -> Result<(), String>;
    /// [`Action::preflight`].
    fn preflight(&self, state: Option<&Value>, now: DateTime<Utc>) -> Result<(), Failure>;
    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), Failure>;
}

struct Prepared<A: Action> {
    params: A::Params,
}

impl<A: Action> PreparedAction for Prepared<A> {
    fn accepts(&self, kind: IndicatorType) -> Result<(), String> {
        A::accepts(&self.params, kind)
    }

    fn preflight(&self, state: Option<&Value>, now: DateTime<Utc>) -> Result<(), Failure> {
        A::preflight(&self.params, state, now)
    }

    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        A::run(&self.params, ctx)
    }
}

/// A row of the action table.
#[derive(Debug)]
pub struct ActionEntry {
    /// The manifest's `name`.
    pub name: &'static str,
    /// The text of `manifests/<name>.json`, embedded at build time.
    pub manifest: &'static str,
    /// JSON Schema of the action's typed parameters.
    pub params_schema: fn() -> Schema,
    /// Reads validated parameters into the typed form.
    pub prepare: fn(Value) -> Result<Box<dyn PreparedAction>, String>,
}

fn prepare<A: Action>(params: Value) -> Result<Box<dyn PreparedAction>, String> {
    let params: A::Params = serde_json::from_value(params).map_err(|err| err.to_string())?;
    Ok(Box::new(Prepared::<A> { params }))
}

fn params_schema<A: Action>() -> Schema {
    schemars::schema_for!(A::Params)
}

/// The table entry of action type `A` with manifest `name` and its text.
const fn entry<A: Action>(name: &'static str, manifest: &'static str) -> ActionEntry {
    ActionEntry {
        name,
        manifest,
        params_schema: params_schema::<A>,
        prepare: prepare::<A>,
    }
}

/// The entry of action type `$action`, whose manifest is `manifests/$name.json`.
macro_rules! action {
    ($action:ty, $name:literal) => {
        entry::<$action>(
            $name,
            include_str!(concat!("../../manifests/", $name, ".json")),
        )
    };
}

/// Every action this build implements, in action ID order: the one list of actions.
pub static ACTIONS: &[ActionEntry] = &[
    action!(
        blacklist_whitelist_hashes::BlacklistWhitelistHashes,
        "sentinelone-blacklist-whitelist-hashes"
    ),
    action!(
        mitigate_threats::MitigateThreats,
        "sentinelone-mitigate-threats"
    ),
    action!(delete_hashes::DeleteHashes, "sentinelone-delete-hashes"),
    action!(ioc_export::IocExport, "sentinelone-ioc-export"),
    action!(
        hash_reputation::HashReputation,
        "sentinelone-hash-reputation"
    ),
    action!(
        get_blacklist_items::GetBlacklistItems,
        "sentinelone-get-blacklist-items"
    ),
    action!(get_threats::GetThreats, "sentinelone-get-threats"),
    action!(list_groups::ListGroups, "sentinelone-list-groups"),
    action!(list_agents::ListAgents, "sentinelone-list-agents"),
    action!(list_sites::ListSites, "sentinelone-list-sites"),
    action!(get_activities::GetActivities, "sentinelone-get-activities"),
    action!(
        connect_network::ConnectNetwork,
        "sentinelone-connect-network"
    ),
    action!(
        disconnect_network::DisconnectNetwork,
        "sentinelone-disconnect-network"
    ),
    action!(get_alerts::GetAlerts, "sentinelone-get-alerts"),
    action!(update_alerts::UpdateAlerts, "sentinelone-update-alerts"),
    action!(
        monitor_threat_status::MonitorThreatStatus,
        "sentinelone-monitor-threat-status"
    ),
    action!(update_threats::UpdateThreats, "sentinelone-update-threats"),
    action!(ingest_threats::IngestThreats, "sentinelone-ingest-threats"),
    action!(
        hunt_indicators::HuntIndicators,
        "sentinelone-hunt-indicators"
    ),
    action!(ioc_remove::IocRemove, "sentinelone-ioc-remove"),
    action!(scan_endpoints::ScanEndpoints, "sentinelone-scan-endpoints"),
];

/// The implemented action of a manifest.
pub fn entry_for(manifest: &Manifest) -> Option<&'static ActionEntry> {
    ACTIONS.iter().find(|entry| entry.name == manifest.name)
}

/// Resolves the envelope's `action` to its manifest and implementation.
///
/// An unknown action is `config.invalid` naming the action and listing the known ones.
pub fn resolve(action: &ActionRef) -> Result<(&'static Manifest, &'static ActionEntry), Failure> {
    let manifests = manifest::all();
    // `manifest::all()` is read from the table, entry by entry.
    let found = manifests
        .iter()
        .zip(ACTIONS)
        .find(|(manifest, _)| match action {
            ActionRef::Id(id) => u64::from(manifest.id) == *id,
            ActionRef::Name(name) => {
                let name = name.trim();
                manifest.name.eq_ignore_ascii_case(name) || manifest.id.to_string() == name
            }
        });
    let Some((manifest, entry)) = found else {
        let known: Vec<String> = manifests
            .iter()
            .map(|manifest| format!("{} ({})", manifest.id, manifest.name))
            .collect();
        return Err(Failure::config_invalid(
            "action",
            format!(
                "There is no action '{action}'; known actions: {}",
                known.join(", ")
            ),
        ));
    };
    Ok((manifest, entry))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;
    use crate::connection::CONNECTION_PARAMS;
    use crate::manifest::{OBJECTS_PER_RUN, ParamType};

    #[test]
    fn every_action_has_exactly_one_manifest_and_unique_names() {
        let mut names = BTreeSet::new();
        for entry in ACTIONS {
            assert!(names.insert(entry.name), "{} listed twice", entry.name);
            assert!(
                manifest::all()
                    .iter()
                    .any(|manifest| manifest.name == entry.name),
                "{} has no manifest",
                entry.name
            );
        }
    }

    /// The manifest is what users configure, the `Params` type is what the action reads: they
    /// must name the same parameters, and select options must be exactly the type's variants.
    #[test]
    fn manifests_agree_with_typed_parameters() {
        for entry in ACTIONS {
            let manifest = manifest::all()
                .iter()
                .find(|manifest| manifest.name == entry.name)
                .unwrap();
            let schema = (entry.params_schema)();
            let schema = schema.as_value();
            let properties = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let from_type: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
            let from_manifest: BTreeSet<&str> = manifest
                .params
                .iter()
                .map(|param| param.name.as_str())
                .filter(|name| !CONNECTION_PARAMS.contains(name) && *name != OBJECTS_PER_RUN)
                .collect();
            assert_eq!(
                from_type, from_manifest,
                "{}: parameters differ",
                entry.name
            );
            for param in &manifest.params {
                if !matches!(param.kind, ParamType::Select | ParamType::Multiselect) {
                    continue;
                }
                let Some(property) = properties.get(&param.name) else {
                    continue;
                };
                let variants = enum_values(property, schema);
                if variants.is_empty() {
                    continue;
                }
                let options: BTreeSet<String> = param
                    .options
                    .iter()
                    .map(|option| option.value.to_string())
                    .collect();
                assert_eq!(
                    variants, options,
                    "{}: options of {} differ from the type",
                    entry.name, param.name
                );
            }
        }
    }

    /// The enum values a property's schema allows (following `$ref`, arrays' `items`, `oneOf`).
    fn enum_values(property: &Value, root: &Value) -> BTreeSet<String> {
        let resolved = match property.get("$ref").and_then(Value::as_str) {
            Some(reference) => root
                .pointer(reference.trim_start_matches('#'))
                .cloned()
                .unwrap_or(Value::Null),
            None => property.clone(),
        };
        if let Some(items) = resolved.get("items") {
            return enum_values(items, root);
        }
        let mut values = BTreeSet::new();
        if let Some(list) = resolved.get("enum").and_then(Value::as_array) {
            values.extend(list.iter().map(Value::to_string));
        }
        for variant in resolved
            .get("oneOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(constant) = variant.get("const") {
                values.insert(constant.to_string());
            }
            values.extend(enum_values(variant, root));
        }
        values
    }

    #[test]
    fn every_manifest_file_is_in_the_table() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        for file in std::fs::read_dir(dir).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().into_owned();
            let Some(name) = name.strip_suffix(".json") else {
                continue;
            };
            if name.starts_with("sentinelone-") {
                assert!(ACTIONS.iter().any(|entry| entry.name == name), "{name}");
            }
        }
    }

    #[test]
    fn unknown_action_is_config_invalid_naming_it() {
        let err = resolve(&ActionRef::Name("no-such-action".into())).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("action"));
        assert!(err.message.contains("no-such-action"));
    }
}
