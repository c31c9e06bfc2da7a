//! Action 20 · SentinelOne Threat Intelligence - IOC Remove (`sentinelone-ioc-remove`).
//!
//! Removes the Threat Intelligence IOCs this bundle exported (action 4) for the given
//! indicators: the IOCs of the same type and value in the configured scope (or every account the
//! token sees, as action 4 does), by default only those whose `source` is ThreatQ's. The
//! IOCs are found with the shared batched look-up ([`iocs::IocLookup`]), then deleted by
//! `uuids`, up to 1,000 per `DELETE /threat-intelligence/iocs` with a JSON body
//! `{"filter": {<scope>, "uuids": [...]}}` (reference §6.3: SW24 `V21SchemasIOCDeleteSchema`,
//! XSOAR `SentinelOne-V2.py` and SW26's test code send `accountIds`; SW26's `docs/testing.md`
//! says `accountId`, which is UNCONFIRMED and not used). An indicator with no IOC succeeds with
//! `0`, so a second run changes nothing. `/threat-intelligence` allows 30 requests a minute
//! (`api::rate`), so every request carries as much as it can.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::context::ids_with_owners;
use super::lookup::iocs::{self, IOCS, IocLookup};
use super::{Action, Reply, RunContext, TargetId, Tense, Write, distinct_targets};
use crate::error::Failure;
use crate::indicator::IndicatorType;
use crate::result::AddedAttribute;

/// IOC uuids per DELETE. No maximum is documented (reference §6.3); 1,000 matches the
/// largest page and keeps the body about 40 kB.
const DELETE_BATCH: usize = 1000;

const REMOVED: &str = "Removed from SentinelOne Threat Intelligence";

pub struct IocRemove;

/// Parameters of action 20.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub account_ids: Option<Vec<String>>,
    pub site_ids: Option<Vec<String>>,
    pub group_ids: Option<Vec<String>>,
    /// Only IOCs with this source are removed; blank: IOCs of any source.
    pub source: Option<String>,
}

impl Params {
    fn source(&self) -> Option<&str> {
        self.source
            .as_deref()
            .map(str::trim)
            .filter(|source| !source.is_empty())
    }
}

impl Action for IocRemove {
    type Params = Params;

    fn accepts(_params: &Params, kind: IndicatorType) -> Result<(), String> {
        iocs::accepts(kind)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let ids: Vec<TargetId> = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let configured =
            iocs::configured_filter(&params.account_ids, &params.site_ids, &params.group_ids);
        let Some((scope, accounts_seen)) = iocs::scope_filter(configured, ctx) else {
            return Ok(());
        };
        let lookup = IocLookup {
            scope: &scope,
            source: params.source(),
            accounts_seen,
        };
        let found = lookup.find(ctx, &ids);
        let entries = ids_with_owners(
            ids.iter()
                .zip(&found)
                .map(|(id, iocs)| (*id, iocs.iter().flatten().map(|ioc| ioc.uuid.as_str()))),
        );
        let batches: Vec<&[(&str, Vec<TargetId>)]> = entries.chunks(DELETE_BATCH).collect();
        ctx.write(
            "delete",
            &batches,
            |batch| distinct_targets(batch.iter().flat_map(|(_, owners)| owners.iter().copied())),
            |batch| {
                let mut filter = scope.clone();
                let uuids: Vec<&str> = batch.iter().map(|(uuid, _)| *uuid).collect();
                if let Value::Object(filter) = &mut filter {
                    filter.insert("uuids".into(), uuids.into());
                }
                Write::delete(IOCS, serde_json::json!({ "filter": filter }))
            },
            |_, reply: Reply<Value>| {
                reply
                    .answer()
                    .map(drop)
                    .map_err(|failure| iocs::multi_scope_refusal(failure, accounts_seen))
            },
        );
        let tense = ctx.tense();
        for (id, found) in ids.into_iter().zip(found) {
            let Some(found) = found else { continue };
            let removed = AddedAttribute::new(REMOVED, found.len().to_string());
            ctx.succeed(id, report(found.len(), tense), vec![removed]);
        }
        Ok(())
    }
}

/// An indicator's detail, in the run's tense.
fn report(removed: usize, tense: Tense) -> String {
    let iocs = match removed {
        1 => "1 IOC".to_string(),
        n => format!("{n} IOCs"),
    };
    match removed {
        0 => "Not in SentinelOne Threat Intelligence; nothing to remove".to_string(),
        _ => tense.pick(
            format!("Removed {iocs} from SentinelOne Threat Intelligence"),
            format!("Dry run: would remove {iocs} from SentinelOne Threat Intelligence"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::lookup::iocs::FoundIoc;

    #[test]
    fn a_uuid_shared_by_targets_is_sent_once() {
        let ioc = |uuid: &str| FoundIoc {
            uuid: uuid.into(),
            valid_until: None,
        };
        let found = vec![Some(vec![ioc("a"), ioc("b")]), None, Some(vec![ioc("a")])];
        assert_eq!(
            ids_with_owners(
                [0, 1, 2]
                    .into_iter()
                    .zip(&found)
                    .map(|(id, iocs)| { (id, iocs.iter().flatten().map(|ioc| ioc.uuid.as_str())) })
            ),
            vec![("a", vec![0, 2]), ("b", vec![0])]
        );
    }

    #[test]
    fn blank_source_means_any() {
        let params = |source: Option<&str>| Params {
            account_ids: None,
            site_ids: None,
            group_ids: None,
            source: source.map(str::to_string),
        };
        assert_eq!(params(Some(" ThreatQ ")).source(), Some("ThreatQ"));
        assert_eq!(params(Some("  ")).source(), None);
        assert_eq!(params(None).source(), None);
    }
}
