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
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{Action, RunContext, TargetId};
use crate::envelope::{Attribute, InputObject};
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

/// One IOC as sent (keys in this order).
#[derive(Serialize)]
struct IocOut<'s> {
    value: &'s str,
    #[serde(rename = "type")]
    kind: Option<&'static str>,
    source: &'static str,
    method: &'static str,
    #[serde(rename = "validUntil")]
    valid_until: String,
    #[serde(rename = "creationTime")]
    creation_time: String,
    metadata: String,
    #[serde(rename = "threatActors")]
    threat_actors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(rename = "externalId", skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<[String; 1]>,
}

/// The `metadata` JSON string: the object's attributes and tags.
#[derive(Serialize)]
struct Metadata<'v> {
    attributes: Vec<&'v Attribute>,
    source: &'static str,
    tags: Vec<&'v str>,
}

/// A `POST /threat-intelligence/iocs` body.
#[derive(Serialize)]
struct UploadBody<'a> {
    filter: &'a Value,
    data: Vec<IocOut<'a>>,
}

/// The body for one batch, made when it is sent (never for all batches at once).
fn upload_body<'a>(
    params: &Params,
    filter: &'a Value,
    batch: &'a [Source<'_>],
    now: DateTime<Utc>,
) -> UploadBody<'a> {
    UploadBody {
        filter,
        data: batch.iter().map(|source| ioc(params, source, now)).collect(),
    }
}

/// The IOC for one target.
fn ioc<'s>(params: &Params, source: &'s Source<'_>, now: DateTime<Utc>) -> IocOut<'s> {
    // Targets are made only from objects that read, so the default is unreachable.
    let view = source.object.view().unwrap_or_default();
    let object_id = view.id.as_ref().map(ToString::to_string);
    // This action's own attributes from earlier runs come back on the objects; they describe
    // the export, not the indicator.
    let metadata = Metadata {
        attributes: view
            .attributes
            .iter()
            .filter(|attribute| attribute.name != EXPORTED && attribute.name != EXPIRATION)
            .collect(),
        source: SOURCE,
        tags: view.tags.iter().map(|tag| tag.name()).collect(),
    };
    IocOut {
        value: &source.value,
        kind: ioc_type(source.kind),
        source: SOURCE,
        method: "EQUALS",
        valid_until: time_text(valid_until(params, source.kind, now)),
        creation_time: time_text(view.created_at().unwrap_or(now)),
        metadata: serde_json::to_string(&metadata).unwrap_or_default(),
        threat_actors: view
            .adversaries
            .iter()
            .map(|adversary| adversary.name().to_string())
            .collect(),
        description: view.description.clone().filter(|text| !text.is_empty()),
        reference: params.backlink(object_id.clone()).map(|link| [link]),
        external_id: object_id,
    }
}

/// The console's own record of each IOC of a POST answer (it may clamp `validUntil`), keyed by
/// type and lower-cased value: `(uploadTime, validUntil)`. The first record of a key wins.
type Echoes = HashMap<(String, String), (Option<String>, Option<String>)>;

/// The fields of a stored IOC that [`Echoes`] keeps; the rest of the answer is skipped.
#[derive(Deserialize)]
struct Stored {
    #[serde(rename = "type", default)]
    kind: Option<Value>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(rename = "uploadTime", default)]
    upload_time: Option<Value>,
    #[serde(rename = "validUntil", default)]
    valid_until: Option<Value>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

/// An answer that is not the list of stored IOCs gives no echoes: the request's values then
/// stand in, as for an IOC the answer lacks.
fn echoes(response: &RawValue) -> Echoes {
    let stored: Vec<Stored> = serde_json::from_str::<Answer>(response.get())
        .ok()
        .and_then(|answer| answer.data)
        .and_then(|data| serde_json::from_str(data.get()).ok())
        .unwrap_or_default();
    let text = |value: Option<Value>| match value {
        Some(Value::String(text)) => Some(text),
        _ => None,
    };
    let mut echoes = Echoes::new();
    for ioc in stored {
        let (Some(kind), Some(value)) = (text(ioc.kind), text(ioc.value)) else {
            continue;
        };
        let upload_time = text(ioc.upload_time);
        let valid_until = text(ioc.valid_until);
        echoes
            .entry((kind, value.to_lowercase()))
            .or_insert((upload_time, valid_until));
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
        let targets_of = |batch: &&[Source<'_>]| batch.iter().map(|source| source.id).collect();

        if ctx.dry_run() {
            for batch in &batches {
                let targets: Vec<TargetId> = targets_of(batch);
                let planned = serde_json::to_value(upload_body(params, &filter, batch, now))
                    .unwrap_or_default();
                ctx.plan("POST", "/threat-intelligence/iocs", Some(planned), &targets);
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
                .post_as::<Box<RawValue>, _>(
                    "/threat-intelligence/iocs",
                    &upload_body(params, &filter, batch, now),
                )
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
