//! Action 4 · SentinelOne Threat Intelligence - IOC Export (`sentinelone-ioc-export`).
//!
//! Uploads indicators as Threat Intelligence IOCs, up to 1,000 per `POST
//! /threat-intelligence/iocs` (no documented maximum exists; 1,000 keeps requests small). Each
//! IOC carries the ThreatQ id, description, creation time, adversaries, a backlink, and all
//! attributes and tags as a JSON `metadata` string. The scope is the configured accounts, sites
//! and groups; with none configured, the token's accounts are looked up and named, because a
//! POST without `accountIds` is answered 500 by real consoles. Re-sending an IOC updates it in
//! place (SentinelOne's POST is create-or-update), so a second run creates no duplicates.

use std::collections::HashMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Action, RunContext, TargetId};
use crate::envelope::InputObject;
use crate::error::{ErrorCode, Failure};
use crate::indicator::IndicatorType;
use crate::result::AddedAttribute;

/// IOCs per POST.
const IOCS_PER_REQUEST: usize = 1000;

const SOURCE: &str = "ThreatQ";
const EXPORTED: &str = "Exported to SentinelOne Threat Intelligence";
const EXPIRATION: &str = "SentinelOne IOC Expiration";

pub struct IocExport;

/// Parameters of action 4.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub account_ids: Option<Vec<String>>,
    pub site_ids: Option<Vec<String>>,
    pub group_ids: Option<Vec<String>>,
    /// Days until IP IOCs expire (7, 14 or 30).
    pub ip_expiration: u32,
    /// Days until URL and domain IOCs expire (7, 14, 30, 90 or 180).
    pub url_domain_expiration: u32,
    /// Days until hash IOCs expire (7, 14, 30, 90 or 180).
    pub file_hash_expiration: u32,
    /// ThreatQ host for the backlink.
    pub threatq_hostname: Option<String>,
}

impl Params {
    fn expiration_days(&self, kind: IndicatorType) -> u32 {
        match kind {
            IndicatorType::IpAddress | IndicatorType::Ipv6Address => self.ip_expiration,
            IndicatorType::Fqdn | IndicatorType::Url => self.url_domain_expiration,
            _ => self.file_hash_expiration,
        }
    }

    /// The configured scope as a request filter, or `None` when no scope is configured.
    fn configured_filter(&self) -> Option<Value> {
        let mut filter = Map::new();
        for (key, ids) in [
            ("accountIds", &self.account_ids),
            ("siteIds", &self.site_ids),
            ("groupIds", &self.group_ids),
        ] {
            if let Some(ids) = ids.as_ref().filter(|ids| !ids.is_empty()) {
                filter.insert(key.into(), json!(ids));
            }
        }
        (!filter.is_empty()).then_some(Value::Object(filter))
    }

    /// `https://<threatq_hostname>/indicators/<id>/details`, when both are known.
    fn backlink(&self, object_id: Option<String>) -> Option<String> {
        let host = self
            .threatq_hostname
            .as_deref()?
            .trim()
            .trim_end_matches('/');
        let host = host
            .strip_prefix("https://")
            .or_else(|| host.strip_prefix("http://"))
            .unwrap_or(host);
        Some(format!("https://{host}/indicators/{}/details", object_id?))
    }
}

/// SentinelOne's IOC type for a ThreatQ type.
fn ioc_type(kind: IndicatorType) -> Option<&'static str> {
    Some(match kind {
        IndicatorType::Fqdn => "DNS",
        IndicatorType::IpAddress => "IPV4",
        IndicatorType::Ipv6Address => "IPV6",
        IndicatorType::Url => "URL",
        IndicatorType::Md5 => "MD5",
        IndicatorType::Sha1 => "SHA1",
        IndicatorType::Sha256 => "SHA256",
        IndicatorType::FilePath => return None,
    })
}

fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What one IOC is made from: a target and the first object that carries it.
struct Source<'o> {
    id: TargetId,
    kind: IndicatorType,
    value: String,
    object: &'o InputObject,
}

/// `validUntil` as sent for an indicator of `kind`.
fn valid_until(params: &Params, kind: IndicatorType, now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::days(i64::from(params.expiration_days(kind)))
}

/// The IOC for one target.
fn ioc(params: &Params, source: &Source<'_>, now: DateTime<Utc>) -> Value {
    // Targets are made only from objects that read, so the default is unreachable.
    let view = source.object.view().unwrap_or_default();
    let object_id = view.id.as_ref().map(ToString::to_string);
    // This action's own attributes from earlier runs come back on the objects; they describe
    // the export, not the indicator.
    let attributes: Vec<Value> = view
        .attributes
        .iter()
        .filter(|attribute| attribute.name != EXPORTED && attribute.name != EXPIRATION)
        .map(|attribute| json!({ "name": attribute.name, "value": attribute.value }))
        .collect();
    let tags: Vec<&str> = view.tags.iter().map(|tag| tag.name()).collect();
    let metadata = json!({ "attributes": attributes, "source": SOURCE, "tags": tags }).to_string();
    let mut ioc = json!({
        "value": source.value,
        "type": ioc_type(source.kind),
        "source": SOURCE,
        "method": "EQUALS",
        "validUntil": time_text(valid_until(params, source.kind, now)),
        "creationTime": time_text(view.created_at().unwrap_or(now)),
        "metadata": metadata,
        "threatActors": view.adversaries.iter().map(|adversary| adversary.name()).collect::<Vec<_>>(),
    });
    if let Some(description) = view.description.as_deref().filter(|text| !text.is_empty()) {
        ioc["description"] = json!(description);
    }
    if let Some(object_id) = &object_id {
        ioc["externalId"] = json!(object_id);
    }
    if let Some(link) = params.backlink(object_id) {
        ioc["reference"] = json!([link]);
    }
    ioc
}

/// The console's own record of each IOC of a POST answer (it may clamp `validUntil`), keyed by
/// type and lower-cased value: `(uploadTime, validUntil)`. The first record of a key wins.
type Echoes = HashMap<(String, String), (Option<String>, Option<String>)>;

fn echoes(response: &Value) -> Echoes {
    let mut echoes = Echoes::new();
    for ioc in response
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = |key: &str| ioc.get(key).and_then(Value::as_str);
        let (Some(kind), Some(value)) = (text("type"), text("value")) else {
            continue;
        };
        echoes
            .entry((kind.to_string(), value.to_lowercase()))
            .or_insert_with(|| {
                (
                    text("uploadTime").map(str::to_string),
                    text("validUntil").map(str::to_string),
                )
            });
    }
    echoes
}

/// `accountIds` of every account the token sees.
fn resolve_accounts(ctx: &mut RunContext<'_>) -> Option<Vec<String>> {
    let pending = ctx.pending();
    let found = ctx.batches("account lookup", &[()], |_| pending.clone(), |client, _| {
        let mut ids = Vec::new();
        for page in client.pages("/accounts", Vec::new(), "/data") {
            ids.extend(page?.iter().filter_map(|account| match account.get("id") {
                Some(Value::String(id)) => Some(id.clone()),
                Some(Value::Number(id)) => Some(id.to_string()),
                _ => None,
            }));
        }
        if ids.is_empty() {
            return Err(Failure::new(
                ErrorCode::AuthForbidden,
                "The API token can see no SentinelOne account to export to; set account_ids, site_ids or group_ids",
            )
            .with_field("config.account_ids"));
        }
        Ok(ids)
    });
    found.into_iter().next().flatten()
}

impl Action for IocExport {
    type Params = Params;

    fn accepts(_params: &Params, kind: IndicatorType) -> Result<(), String> {
        ioc_type(kind)
            .map(|_| ())
            .ok_or_else(|| format!("type {} is not accepted by this action", kind.name()))
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let ids: Vec<TargetId> = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let filter = match params.configured_filter() {
            Some(filter) => filter,
            None => match resolve_accounts(ctx) {
                Some(accounts) => json!({ "accountIds": accounts }),
                None => return Ok(()),
            },
        };
        let now = ctx.now();
        let sources: Vec<Source<'_>> = ids
            .iter()
            .map(|id| Source {
                id: *id,
                kind: ctx.target(*id).kind,
                value: ctx.target(*id).value.clone(),
                object: ctx.object(*id),
            })
            .collect();
        let batches: Vec<&[Source<'_>]> = sources.chunks(IOCS_PER_REQUEST).collect();
        // Bodies are made batch by batch (by the worker that sends them), never all at once.
        let body = |batch: &[Source<'_>]| {
            let iocs: Vec<Value> = batch
                .iter()
                .map(|source| ioc(params, source, now))
                .collect();
            json!({ "filter": filter, "data": iocs })
        };
        let targets_of = |batch: &&[Source<'_>]| batch.iter().map(|source| source.id).collect();

        if ctx.dry_run() {
            for batch in &batches {
                let targets: Vec<TargetId> = targets_of(batch);
                ctx.plan(
                    "POST",
                    "/threat-intelligence/iocs",
                    Some(body(batch)),
                    &targets,
                );
            }
            for source in &sources {
                let detail = format!(
                    "Dry run: would export as {} until {}",
                    ioc_type(source.kind).unwrap_or(""),
                    time_text(valid_until(params, source.kind, now))
                );
                ctx.succeed(source.id, detail, Vec::new());
            }
            return Ok(());
        }

        let responses = ctx.batches("export", &batches, targets_of, |client, batch| {
            client
                .post("/threat-intelligence/iocs", &body(batch))
                .map(|response| echoes(&response))
        });
        for (batch, echoed) in batches.iter().zip(responses) {
            let Some(echoed) = echoed else { continue };
            for source in batch.iter() {
                let kind = ioc_type(source.kind).unwrap_or_default();
                // The request's values stand in where the answer lacks the IOC.
                let stored = echoed.get(&(kind.to_string(), source.value.to_lowercase()));
                let uploaded = stored
                    .and_then(|(uploaded, _)| uploaded.clone())
                    .unwrap_or_else(|| time_text(now));
                let until = stored
                    .and_then(|(_, until)| until.clone())
                    .unwrap_or_else(|| time_text(valid_until(params, source.kind, now)));
                let detail = format!("Exported as {kind} until {until}");
                ctx.succeed(
                    source.id,
                    detail,
                    vec![
                        AddedAttribute::new(EXPORTED, uploaded),
                        AddedAttribute::new(EXPIRATION, until),
                    ],
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            account_ids: None,
            site_ids: Some(vec!["1".into()]),
            group_ids: Some(vec![]),
            ip_expiration: 14,
            url_domain_expiration: 90,
            file_hash_expiration: 180,
            threatq_hostname: Some("https://tq.example/".into()),
        }
    }

    #[test]
    fn expirations_follow_the_type() {
        let p = params();
        assert_eq!(p.expiration_days(IndicatorType::Ipv6Address), 14);
        assert_eq!(p.expiration_days(IndicatorType::Fqdn), 90);
        assert_eq!(p.expiration_days(IndicatorType::Md5), 180);
    }

    #[test]
    fn filter_names_only_configured_scopes() {
        assert_eq!(
            params().configured_filter(),
            Some(json!({"siteIds": ["1"]}))
        );
        let none = Params {
            site_ids: None,
            ..params()
        };
        assert_eq!(none.configured_filter(), None);
    }

    #[test]
    fn backlink_needs_host_and_id() {
        assert_eq!(
            params().backlink(Some("18746".into())).as_deref(),
            Some("https://tq.example/indicators/18746/details")
        );
        assert_eq!(params().backlink(None), None);
        assert_eq!(
            Params {
                threatq_hostname: None,
                ..params()
            }
            .backlink(Some("1".into())),
            None
        );
    }

    #[test]
    fn every_accepted_type_maps_to_an_ioc_type() {
        assert_eq!(ioc_type(IndicatorType::Fqdn), Some("DNS"));
        assert_eq!(ioc_type(IndicatorType::IpAddress), Some("IPV4"));
        assert_eq!(ioc_type(IndicatorType::Sha256), Some("SHA256"));
        assert_eq!(ioc_type(IndicatorType::FilePath), None);
    }
}
