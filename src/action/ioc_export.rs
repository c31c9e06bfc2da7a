//! Action 4 · SentinelOne Threat Intelligence - IOC Export (`sentinelone-ioc-export`).
//!
//! Uploads indicators as Threat Intelligence IOCs, up to 1,000 per `POST
//! /threat-intelligence/iocs` (no documented maximum exists; 1,000 keeps requests small). Each
//! IOC carries the ThreatQ id, description, creation time, adversaries, a backlink, and all
//! attributes and tags as a JSON `metadata` string. The scope is the configured accounts, sites
//! and groups; with none configured, the token's accounts are looked up and named, because a
//! POST without `accountIds` is answered 500 by real consoles. Re-sending an IOC updates it in
//! place (SentinelOne's POST is create-or-update), so a second run creates no duplicates.
//!
//! With `existing_iocs = Refresh expiry` the IOCs are first looked up ([`IocLookup`], shared with
//! action 20) and each outcome says whether its IOC was new or refreshed; the refresh itself is
//! the same POST with a new `validUntil`. That the POST updates an IOC of the same type and value
//! in place is UNCONFIRMED (reference §6.3 and §14.6: SentinelOne's Python SDK names the call
//! `create_or_update_ioc`, and there is no PUT); the simulator behaves so.

use std::collections::HashMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::lookup::iocs::{self, FoundIoc, IOCS, IocLookup, ioc_type, multi_scope_refusal};
use super::lookup::lenient;
use super::{Action, Reply, RunContext, TargetId, Write};
use crate::envelope::{Attribute, InputObject};
use crate::error::Failure;
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
    /// What to do about IOCs already in SentinelOne.
    #[serde(default)]
    pub existing_iocs: ExistingIocs,
}

/// What action 4 does about IOCs already stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ExistingIocs {
    /// Send every IOC without looking (the POST updates an existing one in place); the outcome
    /// does not tell new from existing.
    #[default]
    Leave,
    /// Look the IOCs up first (the shared batched look-up), then send every IOC with a new
    /// `validUntil`: the POST updates an existing one in place, which extends its expiry, and
    /// each outcome says whether the IOC was new or refreshed (and its former expiry).
    #[serde(rename = "Refresh expiry")]
    RefreshExpiry,
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
        iocs::configured_filter(&self.account_ids, &self.site_ids, &self.group_ids)
    }

    /// `https://<threatq_hostname>/indicators/<id>/details`, when both are known. The host
    /// rules are `connection`'s (no credentials, path, query or fragment); the manifest
    /// validator has refused a host that breaks them, so one here is simply not linked.
    fn backlink(&self, object_id: Option<String>) -> Option<String> {
        let base = crate::connection::threatq_base(self.threatq_hostname.as_deref()?).ok()?;
        Some(format!("{base}/indicators/{}/details", object_id?))
    }
}

fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A date as a detail shows it: to the second, so that the date planned in a dry run (as sent)
/// and one the console stored (to the microsecond) read alike; text that is not a date as is.
fn shown(text: &str) -> String {
    DateTime::parse_from_rfc3339(text).map_or_else(
        |_| text.to_string(),
        |time| {
            time.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        },
    )
}

/// What one IOC is made from: a target and the first object that carries it.
struct Source<'o> {
    id: TargetId,
    kind: IndicatorType,
    value: String,
    object: &'o InputObject,
}

impl<'o> Source<'o> {
    fn of(ctx: &RunContext<'o>, id: TargetId) -> Self {
        Self {
            id,
            kind: ctx.target(id).kind,
            value: ctx.target(id).value.clone(),
            object: ctx.object(id),
        }
    }
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

/// A `POST /threat-intelligence/iocs` body; each IOC is made as it is written, so a batch's
/// IOCs are never all held at once.
struct UploadBody<'a> {
    params: &'a Params,
    filter: &'a Value,
    batch: &'a [Source<'a>],
    now: DateTime<Utc>,
}

impl Serialize for UploadBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Iocs<'b>(&'b UploadBody<'b>);
        impl Serialize for Iocs<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let body = self.0;
                serializer.collect_seq(
                    body.batch
                        .iter()
                        .map(|source| ioc(body.params, source, body.now)),
                )
            }
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("filter", self.filter)?;
        map.serialize_entry("data", &Iocs(self))?;
        map.end()
    }
}

/// The body for one batch, made when it is sent (never for all batches at once).
fn upload_body<'a>(
    params: &'a Params,
    filter: &'a Value,
    batch: &'a [Source<'a>],
    now: DateTime<Utc>,
) -> UploadBody<'a> {
    UploadBody {
        params,
        filter,
        batch,
        now,
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

/// A POST answer as far as [`Echoes`] needs it, read leniently: an answer that is not
/// `{"data": [ioc, …]}` gives no echoes (the request's values then stand in, as for an IOC the
/// answer lacks), and whatever else it holds is skipped.
type Answer = lenient::Object<AnswerFields>;

#[derive(Default, Deserialize)]
#[serde(default)]
struct AnswerFields {
    data: lenient::List<Vec<lenient::Object<StoredIoc>>>,
}

/// A stored IOC's `type`, `value`, `uploadTime` and `validUntil`, where they are text.
#[derive(Default, Deserialize)]
#[serde(default)]
struct StoredIoc {
    #[serde(rename = "type", deserialize_with = "lenient::text")]
    kind: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    value: Option<String>,
    #[serde(rename = "uploadTime", deserialize_with = "lenient::text")]
    upload_time: Option<String>,
    #[serde(rename = "validUntil", deserialize_with = "lenient::text")]
    valid_until: Option<String>,
}

fn echoes(answer: Answer) -> Echoes {
    let mut echoes = Echoes::new();
    for lenient::Lenient(stored) in answer.0.data.0 {
        let (Some(kind), Some(value)) = (stored.kind, stored.value) else {
            continue;
        };
        echoes
            .entry((kind, value.to_lowercase()))
            .or_insert((stored.upload_time, stored.valid_until));
    }
    echoes
}

impl Action for IocExport {
    type Params = Params;

    fn accepts(_params: &Params, kind: IndicatorType) -> Result<(), String> {
        iocs::accepts(kind)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let ids: Vec<TargetId> = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let Some((filter, accounts_seen)) = iocs::scope_filter(params.configured_filter(), ctx)
        else {
            return Ok(());
        };
        // With `Refresh expiry`, each target's stored IOCs (any source: the POST updates the
        // IOC of the same type and value in the scope whatever its source); `None`: not looked up.
        let existing: Option<HashMap<TargetId, Vec<FoundIoc>>> =
            (params.existing_iocs == ExistingIocs::RefreshExpiry).then(|| {
                let lookup = IocLookup {
                    scope: &filter,
                    source: None,
                    accounts_seen,
                };
                let found = lookup.find(ctx, &ids);
                ids.iter()
                    .zip(found)
                    .filter_map(|(id, found)| Some((*id, found?)))
                    .collect()
            });
        let ids: Vec<TargetId> = ids.into_iter().filter(|id| ctx.is_pending(*id)).collect();
        let sources: Vec<Source<'_>> = ids.iter().map(|id| Source::of(ctx, *id)).collect();
        let batches: Vec<&[Source<'_>]> = sources.chunks(IOCS_PER_REQUEST).collect();
        let exported = export(ctx, params, (&filter, accounts_seen), &batches);
        let tense = ctx.tense();
        for (batch, values) in batches.iter().zip(exported) {
            let Some(values) = values else { continue };
            for (source, (uploaded, until)) in batch.iter().zip(values) {
                let kind = ioc_type(source.kind).unwrap_or_default();
                let before = existing.as_ref().map(|existing| {
                    existing
                        .get(&source.id)
                        .and_then(|found| found.first())
                        .map(|ioc| ioc.valid_until.as_deref().map_or("unknown".into(), shown))
                });
                let until_shown = shown(&until);
                let detail = match before {
                    None => tense.pick(
                        format!("Exported as {kind} until {until_shown}"),
                        format!("Dry run: would export as {kind} until {until_shown}"),
                    ),
                    Some(None) => tense.pick(
                        format!("Exported as a new {kind} IOC until {until_shown}"),
                        format!("Dry run: would export as a new {kind} IOC until {until_shown}"),
                    ),
                    Some(Some(was)) => tense.pick(
                        format!("Refreshed the existing {kind} IOC until {until_shown} (was until {was})"),
                        format!(
                            "Dry run: would refresh the existing {kind} IOC until {until_shown} (was until {was})"
                        ),
                    ),
                };
                let attributes = vec![
                    AddedAttribute::new(EXPORTED, uploaded),
                    AddedAttribute::new(EXPIRATION, until),
                ];
                ctx.succeed(source.id, detail, attributes);
            }
        }
        Ok(())
    }
}

/// Uploads (or plans) each batch of IOCs with the scope `filter`; per batch, the
/// [`stored_values`] of its IOCs, `None` where its request failed. Each worker reduces its answer
/// to these, so the answers are not held until the last batch is done.
fn export(
    ctx: &mut RunContext<'_>,
    params: &Params,
    (filter, accounts_seen): (&Value, usize),
    batches: &[&[Source<'_>]],
) -> Vec<Option<Vec<(String, String)>>> {
    let now = ctx.now();
    ctx.write(
        "export",
        batches,
        |batch| batch.iter().map(|source| source.id).collect(),
        |batch| Write::post(IOCS, upload_body(params, filter, batch, now)),
        |batch, reply| {
            let echoed = match reply {
                Reply::Planned => Echoes::new(),
                Reply::Sent(answer) => answer
                    .map(echoes)
                    .map_err(|failure| multi_scope_refusal(failure, accounts_seen))?,
            };
            Ok(stored_values(params, batch, &echoed, now))
        },
    )
}

/// `(uploadTime, validUntil)` of each IOC of `batch`, as the console stored them; the request's
/// values stand in where the answer lacks the IOC (and for a planned request).
fn stored_values(
    params: &Params,
    batch: &[Source<'_>],
    echoed: &Echoes,
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    batch
        .iter()
        .map(|source| {
            let kind = ioc_type(source.kind).unwrap_or_default();
            let stored = echoed.get(&(kind.to_string(), source.value.to_lowercase()));
            let uploaded = stored
                .and_then(|(uploaded, _)| uploaded.clone())
                .unwrap_or_else(|| time_text(now));
            let until = stored
                .and_then(|(_, until)| until.clone())
                .unwrap_or_else(|| time_text(valid_until(params, source.kind, now)));
            (uploaded, until)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    #[test]
    fn a_multi_scope_refusal_gets_its_own_code() {
        let refusal = |message: &str, status: u16, code: i64| {
            Failure::new(ErrorCode::AuthForbidden, message)
                .with_http_status(status)
                .with_upstream_code(Some(code))
        };
        let text = "The API token lacks the permission (HTTP 403: Forbidden: This page doesn't support multi-scopes users yet)";
        let told = multi_scope_refusal(refusal(text, 403, 4_030_010), 0);
        assert_eq!(told.code, ErrorCode::AuthMultiScopeToken);
        assert_eq!(
            (told.http_status, told.upstream_code),
            (Some(403), Some(4_030_010))
        );
        assert!(!told.retryable);
        // Without the text, the code counts only for a token seen to reach several accounts.
        let plain = refusal("HTTP 403: Insufficient Permissions", 403, 4_030_010);
        assert_eq!(
            multi_scope_refusal(plain.clone(), 1).code,
            ErrorCode::AuthForbidden
        );
        assert_eq!(
            multi_scope_refusal(plain, 2).code,
            ErrorCode::AuthMultiScopeToken
        );
        // Another status or code is left alone.
        let other = refusal(text, 401, 4_010_010);
        assert_eq!(multi_scope_refusal(other.clone(), 2), other);
    }

    fn params() -> Params {
        Params {
            account_ids: None,
            site_ids: Some(vec!["1".into()]),
            group_ids: Some(vec![]),
            ip_expiration: 14,
            url_domain_expiration: 90,
            file_hash_expiration: 180,
            threatq_hostname: Some("https://tq.example/".into()),
            existing_iocs: ExistingIocs::Leave,
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
        let with_host = |host: &str| Params {
            threatq_hostname: Some(host.into()),
            ..params()
        };
        assert_eq!(
            with_host("tq.example:8443")
                .backlink(Some("7".into()))
                .as_deref(),
            Some("https://tq.example:8443/indicators/7/details")
        );
        for refused in [
            "user:pw@tq.example",
            "tq.example/x",
            "tq.example?a",
            "tq.example#a",
        ] {
            assert_eq!(
                with_host(refused).backlink(Some("7".into())),
                None,
                "{refused}"
            );
        }
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
    fn answers_are_read_leniently() {
        let read = |text: &str| echoes(serde_json::from_str::<Answer>(text).unwrap());
        let echoed = read(
            r#"{"data": [{"type": "DNS", "value": "A.example", "uploadTime": "u",
                          "validUntil": "v", "x": {"y": [1]}},
                         5, {"type": "URL"}, {"type": "DNS", "value": "a.example"}],
                "pagination": {}}"#,
        );
        assert_eq!(echoed.len(), 1);
        assert_eq!(
            echoed.get(&("DNS".to_string(), "a.example".to_string())),
            Some(&(Some("u".to_string()), Some("v".to_string())))
        );
        for other in [
            "null",
            "[]",
            "\"x\"",
            r#"{"data": {"a": 1}}"#,
            r#"{"data": null}"#,
        ] {
            assert!(read(other).is_empty(), "{other}");
        }
    }

    #[test]
    fn every_accepted_type_maps_to_an_ioc_type() {
        assert_eq!(ioc_type(IndicatorType::Fqdn), Some("DNS"));
        assert_eq!(ioc_type(IndicatorType::IpAddress), Some("IPV4"));
        assert_eq!(ioc_type(IndicatorType::Sha256), Some("SHA256"));
        assert_eq!(ioc_type(IndicatorType::FilePath), None);
    }
}
