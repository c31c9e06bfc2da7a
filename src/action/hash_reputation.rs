//! Action 5 · SentinelOne Hash Reputation (`sentinelone-hash-reputation`).
//!
//! Reads SentinelOne's verdict on each SHA-1 with `GET /hashes/{sha1}/verdict` and adds it as
//! `SentinelOne Verdict` (`malicious`, `non-malicious` or `unknown`, as SentinelOne returns it).
//! The endpoint takes one hash per request and has no batch form, so every hash is its own
//! batch: the requests run in parallel on the client's workers under the shared rate limit.
//! A verdict SentinelOne leaves out (`{"data": {}}`) is reported as `unknown`. An answer that is
//! not the documented shape (`{"data": null}`, an HTML page) fails that hash alone, retryable,
//! with its own request in the message; the other hashes are still asked.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{Action, RunContext, TargetId};
use crate::error::{ErrorCode, Failure};
use crate::result::AddedAttribute;

const ATTRIBUTE: &str = "SentinelOne Verdict";

pub struct HashReputation;

/// Action 5 has no parameters of its own.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {}

/// The verdict in the answer to `GET {path}` (`/hashes/{sha1}/verdict`): `Some` text, `None`
/// when SentinelOne gave none; `Err` when the answer is not the documented shape
/// `{"data": {"verdict": "…"}}` (SW24 `HashesApi.md`, reference §8.1). The failure names this
/// request, so it can only ever be reported on the hash it was made for.
fn read_verdict(path: &str, response: &Value) -> Result<Option<String>, Failure> {
    let bad = |what: &str| {
        Failure::new(
            ErrorCode::UpstreamBadResponse,
            format!("SentinelOne answered GET {path} {what}"),
        )
    };
    let data = response
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("without a data object"))?;
    match data.get("verdict") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(verdict)) if verdict.trim().is_empty() => Ok(None),
        Some(Value::String(verdict)) => Ok(Some(verdict.trim().to_string())),
        Some(_) => Err(bad("with a verdict that is not text")),
    }
}

impl Action for HashReputation {
    type Params = Params;

    fn run(_params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let ids: Vec<TargetId> = ctx.pending();
        let paths: Vec<(TargetId, String)> = ids
            .iter()
            .map(|id| (*id, format!("/hashes/{}/verdict", ctx.target(*id).value)))
            .collect();
        let answers = ctx.batches(
            "verdict",
            &paths,
            |(id, _)| vec![*id],
            |client, (_, path)| {
                client
                    .get(path, &[])
                    .and_then(|answer| read_verdict(path, &answer))
            },
        );
        for ((id, _), verdict) in paths.into_iter().zip(answers) {
            let Some(verdict) = verdict else { continue };
            let (detail, verdict) = match verdict {
                Some(verdict) => (format!("SentinelOne verdict: {verdict}"), verdict),
                None => (
                    "SentinelOne returned no verdict; reported as unknown".to_string(),
                    "unknown".to_string(),
                ),
            };
            ctx.succeed(id, detail, vec![AddedAttribute::new(ATTRIBUTE, verdict)]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn verdict_is_read_as_returned() {
        let read = |answer: Value| read_verdict("/hashes/ab/verdict", &answer);
        let verdict = read(json!({"data": {"verdict": "non-malicious"}})).unwrap();
        assert_eq!(verdict.as_deref(), Some("non-malicious"));
        assert_eq!(read(json!({"data": {}})).unwrap(), None);
        assert_eq!(read(json!({"data": {"verdict": null}})).unwrap(), None);
        for odd in [
            json!({"data": []}),
            json!({"data": null}),
            json!({"data": {"verdict": 5}}),
            json!({}),
            json!(null),
            json!("text"),
        ] {
            let failure = read(odd.clone()).unwrap_err();
            assert_eq!(failure.code, ErrorCode::UpstreamBadResponse, "{odd}");
            assert!(failure.retryable, "{odd}");
            assert!(
                failure.message.contains("GET /hashes/ab/verdict"),
                "{}",
                failure.message
            );
        }
    }
}
