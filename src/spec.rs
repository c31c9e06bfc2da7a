//! The `spec` document: runner version, protocol, manifests and JSON Schemas.
//!
//! Schemas are generated from the Rust types by schemars, so they cannot drift from what the
//! runner reads and writes. This module only assembles the document.

use serde_json::{Value, json};

use crate::action;
use crate::envelope::{ActionRef, Envelope, PROTOCOL};
use crate::error::Failure;
use crate::manifest::{self, Manifest};
use crate::result::RunResult;

/// The spec of every action, or of `only` (numeric ID or name).
pub fn document(only: Option<&str>) -> Result<Value, Failure> {
    let manifests: Vec<&Manifest> = match only {
        None => manifest::all().iter().collect(),
        Some(name) => {
            let action = match name.trim().parse::<u64>() {
                Ok(id) => ActionRef::Id(id),
                Err(_) => ActionRef::Name(name.to_string()),
            };
            vec![action::resolve(&action)?.0]
        }
    };
    let actions: Vec<Value> = manifests
        .into_iter()
        .map(|manifest| {
            let mut value = serde_json::to_value(manifest).unwrap_or(Value::Null);
            if let Value::Object(object) = &mut value {
                object.remove("$schema");
                object.insert(
                    "implemented".into(),
                    json!(action::entry_for(manifest).is_some()),
                );
            }
            value
        })
        .collect();
    Ok(json!({
        "runner": { "name": env!("CARGO_PKG_NAME"), "version": env!("CARGO_PKG_VERSION") },
        "protocol": [PROTOCOL],
        "actions": actions,
        "schemas": {
            "envelope": schemars::schema_for!(Envelope),
            "result": schemars::generate::SchemaSettings::default().for_serialize().into_generator().into_root_schema_for::<RunResult>(),
            "manifest": schemars::schema_for!(Manifest),
        }
    }))
}
