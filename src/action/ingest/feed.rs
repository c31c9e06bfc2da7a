//! Reading a SentinelOne list oldest first from an ingest checkpoint, and turning what was read
//! into ThreatQ indicators; shared by the actions that bring new activities (11), STAR alerts
//! (14) and threats (18) into ThreatQ.
//!
//! [`read`] asks for items created at or after the checkpoint (`createdAt__gte`), sorted by
//! creation time ascending, cursor-paged with the action's filters on every page. Each item goes
//! through [`Checkpoint::admit`], which drops those the previous run already took at the
//! boundary timestamp; new ones are handed to the action one at a time, so a run holds one
//! page of SentinelOne's answer, never the whole backlog. After `max_items` new items the run
//! stops reading: the checkpoint then resumes exactly after the last item taken, even in the
//! middle of items sharing its timestamp. The new state is set on the context whatever happens,
//! so it always describes exactly the items handed over — also when a page read fails, in which
//! case the failure is returned for the action to end the run with after it has reported them.
//!
//! A checkpoint is checked before any request (see [`Checkpoint::from_state`]); one that
//! SentinelOne still refuses — an HTTP 400 on the first page, naming none of the action's own
//! filters — is `state.invalid` too, and the run returns no state rather than the refused one,
//! which would fail every later run the same way.
//!
//! The cap relies on SentinelOne honouring the sort: an item older than the one before it means
//! the console did not, and stopping early could then skip older items for good. Such a run
//! ignores the cap and reads to the end, with a warning.
//!
//! [`Indicators`] collects the indicators of the items taken, de-duplicated by (type, value),
//! with their attributes de-duplicated by (name, value).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::checkpoint::Checkpoint;
use crate::action::RunContext;
use crate::error::{ErrorCode, Failure, WarningCode};
use crate::indicator::IndicatorType;
use crate::log;
use crate::result::Warning;

/// One list to read from the checkpoint on.
#[derive(Debug, Clone)]
pub struct Feed {
    /// The list endpoint, e.g. `/threats`.
    pub path: &'static str,
    /// The action's own filters (scope, types, severity, query), sent on every page.
    pub filters: Vec<(&'static str, String)>,
    /// The `sortBy` value that orders this endpoint by creation time.
    pub sort_by: &'static str,
    /// JSON pointers to an item's id and creation time (e.g. `/threatInfo/createdAt`).
    pub id_at: &'static str,
    pub created_at: &'static str,
    /// Where to start when there is no checkpoint yet: this many hours before the run's clock.
    pub hours_back: u32,
    /// New items taken in one run at most.
    pub max_items: usize,
    /// What an item is called in warnings ("threats").
    pub noun: &'static str,
}

/// How a read went.
#[derive(Debug)]
pub struct Fed {
    /// New items handed to the action.
    pub taken: usize,
    /// Whether the run stopped at `max_items` (items may be left for the next run; if none are,
    /// the next run simply finds nothing new).
    pub capped: bool,
    /// The failure that ended the read early, if any. The state still covers what was taken.
    pub failure: Option<Failure>,
}

impl Fed {
    /// `Err` with the failure that ended the read, for the action to end the run with.
    pub fn finish(self) -> Result<(), Failure> {
        self.failure.map_or(Ok(()), Err)
    }
}

/// Whether [`read`] can read the checkpoint in `state`: `config.invalid` on `state` when it
/// cannot (the ingest actions' [`Action::preflight`](crate::action::Action::preflight)).
pub fn check_state(state: Option<&Value>, now: DateTime<Utc>) -> Result<(), Failure> {
    // Where reading would start without a checkpoint does not matter here.
    Checkpoint::from_state(state, now, DateTime::<Utc>::UNIX_EPOCH).map(drop)
}

/// Reads the items of `feed` created since the checkpoint in the run's input state, oldest
/// first, handing each new one to `take`, and sets the new state on `ctx`. A state that cannot
/// be read is `config.invalid` on `state`, before any request is sent.
pub fn read(
    ctx: &mut RunContext<'_>,
    feed: &Feed,
    mut take: impl FnMut(&Value),
) -> Result<Fed, Failure> {
    let fallback = ctx.now() - Duration::hours(i64::from(feed.hours_back));
    let checkpoint = Checkpoint::from_state(ctx.input_state(), ctx.now(), fallback)?;
    let mut query = feed.filters.clone();
    let (since_key, since) = checkpoint.filter();
    let since_text = format!("{since_key}={since}");
    query.push((since_key, since));
    query.push(("sortBy", feed.sort_by.to_string()));
    query.push(("sortOrder", "asc".to_string()));

    let client = ctx.client();
    let from_state = !matches!(ctx.input_state(), None | Some(Value::Null));
    let mut intake = Intake::new(checkpoint, feed.max_items);
    let mut failure = None;
    'pages: for (pages_read, page) in client.pages(feed.path, query, "/data").enumerate() {
        let items = match page {
            Ok(items) => items,
            Err(error) if pages_read == 0 && from_state && refuses_checkpoint(&error, feed) => {
                // Returning this checkpoint again would fail every later run the same way:
                // no state is returned, so the next run starts from `hours_back`.
                return Err(refused_state(error, feed, &since_text));
            }
            Err(error) => {
                failure = Some(error);
                break;
            }
        };
        for item in &items {
            match intake.offer(id_of(item, feed.id_at), time_of(item, feed.created_at)) {
                Offer::Take => take(item),
                Offer::TakeAndStop => {
                    take(item);
                    break 'pages;
                }
                Offer::Leave => {}
            }
        }
        log::info(
            "progress",
            "",
            json!({ "phase": feed.noun, "done": intake.taken, "total": feed.max_items }),
        );
    }
    let noun = feed.noun;
    if intake.unsorted {
        ctx.warn(Warning {
            code: WarningCode::UpstreamUnsorted,
            message: format!(
                "SentinelOne did not return the {noun} oldest first; this run read every new one instead of stopping at the per-run maximum"
            ),
            field: None,
        });
    }
    if intake.capped {
        ctx.warn(Warning {
            code: WarningCode::IngestLimitReached,
            message: format!(
                "Stopped after {} new {noun} (the per-run maximum); the next run continues after the last one taken",
                feed.max_items
            ),
            field: None,
        });
    }
    if intake.unreadable > 0 {
        ctx.warn(Warning {
            code: WarningCode::UpstreamBadResponse,
            message: format!(
                "{} of the {noun} SentinelOne returned had no id or creation time and were left out",
                intake.unreadable
            ),
            field: None,
        });
    }
    ctx.set_state(intake.checkpoint.to_state());
    Ok(Fed {
        taken: intake.taken,
        capped: intake.capped,
        failure,
    })
}

/// Whether the refusal of the first page read from an input state is a refusal of the
/// checkpoint: an HTTP 400 (SentinelOne answers invalid filter values with 400, reference §10)
/// that does not name one of the action's own filters (site ids, activity types, severity,
/// query), which the operator would fix in the configuration instead, keeping the state.
fn refuses_checkpoint(failure: &Failure, feed: &Feed) -> bool {
    if failure.code != ErrorCode::UpstreamRejected || failure.http_status != Some(400) {
        return false;
    }
    let names = |key: &str| {
        ['\'', '"', '`']
            .iter()
            .any(|quote| failure.message.contains(&format!("{quote}{key}{quote}")))
    };
    !feed.filters.iter().any(|(key, _)| names(key))
}

/// The `state.invalid` failure for a checkpoint SentinelOne refused on the first page.
fn refused_state(failure: Failure, feed: &Feed, since: &str) -> Failure {
    let mut refused = Failure::state_invalid(
        "state.since",
        format!(
            "SentinelOne refused the ingest checkpoint in state (GET {} with {since}): {}; {}",
            feed.path,
            failure.message,
            super::checkpoint::CLEAR_ADVICE
        ),
    )
    .with_upstream_code(failure.upstream_code);
    refused.http_status = failure.http_status;
    refused
}

/// What to do with one item read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    /// New: hand it over.
    Take,
    /// New, and the per-run maximum is reached with it: hand it over and read no further.
    TakeAndStop,
    /// Taken by an earlier run, or unreadable.
    Leave,
}

/// The decisions of a read, item by item, apart from the requests.
#[derive(Debug)]
struct Intake {
    checkpoint: Checkpoint,
    max_items: usize,
    taken: usize,
    capped: bool,
    unreadable: usize,
    /// The newest creation time seen so far, to notice an answer that is not oldest first.
    newest: Option<DateTime<Utc>>,
    unsorted: bool,
}

impl Intake {
    fn new(checkpoint: Checkpoint, max_items: usize) -> Self {
        Self {
            checkpoint,
            max_items,
            taken: 0,
            capped: false,
            unreadable: 0,
            newest: None,
            unsorted: false,
        }
    }

    fn offer(&mut self, id: Option<String>, created: Option<DateTime<Utc>>) -> Offer {
        let (Some(id), Some(created)) = (id, created) else {
            self.unreadable += 1;
            return Offer::Leave;
        };
        if self.newest.is_some_and(|newest| created < newest) {
            // Stopping early could now skip older items for good: read to the end instead.
            self.unsorted = true;
        }
        self.newest = Some(self.newest.map_or(created, |newest| newest.max(created)));
        if !self.checkpoint.admit(&id, created) {
            return Offer::Leave;
        }
        self.taken += 1;
        if self.taken >= self.max_items && !self.unsorted {
            // Stop here rather than read another page to learn whether more exist.
            self.capped = true;
            return Offer::TakeAndStop;
        }
        Offer::Take
    }
}

/// The text at `pointer` (strings as they are, numbers written out).
pub fn text_at(item: &Value, pointer: &str) -> Option<String> {
    match item.pointer(pointer)? {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_string()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn id_of(item: &Value, pointer: &str) -> Option<String> {
    text_at(item, pointer)
}

fn time_of(item: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    let text = item.pointer(pointer)?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// ThreatQ indicators made from SentinelOne items, in order of first sight, de-duplicated by
/// (type, value); each keeps its attributes de-duplicated by (name, value), in order.
#[derive(Debug, Default)]
pub struct Indicators {
    order: Vec<(IndicatorType, String)>,
    attributes: HashMap<(IndicatorType, String), Vec<(String, String)>>,
    seen: HashMap<(IndicatorType, String), BTreeSet<(String, String)>>,
    /// Values SentinelOne sent that are not valid for their type, left out.
    pub invalid: usize,
}

impl Indicators {
    /// Adds the indicator (`kind`, `raw`) with `attributes` (pairs with an empty value are left
    /// out). An empty `raw` is ignored; one that is not a valid `kind` is counted in `invalid`.
    pub fn add(
        &mut self,
        kind: IndicatorType,
        raw: Option<&str>,
        attributes: &[(&str, Option<String>)],
    ) {
        let Some(raw) = raw.filter(|raw| !raw.trim().is_empty()) else {
            return;
        };
        let Ok(value) = kind.normalise(raw) else {
            self.invalid += 1;
            return;
        };
        let key = (kind, value);
        if !self.attributes.contains_key(&key) {
            self.order.push(key.clone());
        }
        let list = self.attributes.entry(key.clone()).or_default();
        let seen = self.seen.entry(key).or_default();
        for (name, value) in attributes {
            let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
                continue;
            };
            let pair = ((*name).to_string(), value.to_string());
            if seen.insert(pair.clone()) {
                list.push(pair);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The indicators as ThreatQ objects: `{type, value, attributes: [{name, value}]}`.
    pub fn into_objects(mut self) -> Vec<Value> {
        self.order
            .into_iter()
            .map(|key| {
                let attributes: Vec<Value> = self
                    .attributes
                    .remove(&key)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| json!({ "name": name, "value": value }))
                    .collect();
                json!({ "type": key.0.name(), "value": key.1, "attributes": attributes })
            })
            .collect()
    }

    /// Reports the indicators on `ctx` as produced objects, warning about invalid values.
    pub fn produce(self, ctx: &mut RunContext<'_>, noun: &str) {
        if self.invalid > 0 {
            ctx.warn(Warning {
                code: WarningCode::UpstreamInvalidValue,
                message: format!(
                    "{} hash or path value(s) in the {noun} read were not valid indicators and were left out",
                    self.invalid
                ),
                field: None,
            });
        }
        for object in self.into_objects() {
            ctx.produce(object);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indicators_are_deduplicated_with_their_attributes() {
        let mut set = Indicators::default();
        let sha1 = "7EB2197D6FD80C31BD04D3A7FB8C725EB9789013";
        set.add(
            IndicatorType::Sha1,
            Some(sha1),
            &[
                ("Threat ID", Some("1".into())),
                ("Computer", Some("pc".into())),
            ],
        );
        set.add(
            IndicatorType::Sha1,
            Some(&sha1.to_lowercase()),
            &[
                ("Threat ID", Some("2".into())),
                ("Computer", Some("pc".into())),
            ],
        );
        set.add(IndicatorType::Sha1, Some("nope"), &[]);
        set.add(IndicatorType::FilePath, Some(""), &[]);
        set.add(IndicatorType::FilePath, None, &[]);
        set.add(
            IndicatorType::Md5,
            Some("44d88612fea8a8f36de82e1278abb02f"),
            &[("Empty", None)],
        );
        assert_eq!(set.len(), 2);
        assert_eq!(set.invalid, 1);
        let objects = set.into_objects();
        assert_eq!(
            objects[0],
            json!({"type": "SHA-1", "value": sha1.to_lowercase(), "attributes": [
                {"name": "Threat ID", "value": "1"},
                {"name": "Computer", "value": "pc"},
                {"name": "Threat ID", "value": "2"}
            ]})
        );
        assert_eq!(objects[1]["attributes"], json!([]));
    }

    fn at(second: u32) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&format!("2026-01-01T00:00:{second:02}Z"))
            .ok()
            .map(|time| time.with_timezone(&Utc))
    }

    fn intake(state: Option<&Value>, max_items: usize) -> Intake {
        Intake::new(
            Checkpoint::from_state(state, at(0).unwrap(), at(0).unwrap()).unwrap(),
            max_items,
        )
    }

    #[test]
    fn the_cap_stops_inside_a_timestamp_and_the_next_run_resumes_there() {
        let mut first = intake(None, 2);
        assert_eq!(first.offer(Some("a".into()), at(1)), Offer::Take);
        assert_eq!(first.offer(Some("b".into()), at(2)), Offer::TakeAndStop);
        assert!(first.capped);
        let state = first.checkpoint.to_state();
        let mut second = intake(Some(&state), 2);
        assert_eq!(second.offer(Some("b".into()), at(2)), Offer::Leave);
        assert_eq!(second.offer(Some("c".into()), at(2)), Offer::Take);
        assert_eq!(second.offer(Some("d".into()), at(3)), Offer::TakeAndStop);
    }

    #[test]
    fn an_answer_not_oldest_first_is_read_to_the_end() {
        let mut intake = intake(None, 2);
        assert_eq!(intake.offer(Some("a".into()), at(5)), Offer::Take);
        assert_eq!(intake.offer(Some("b".into()), at(3)), Offer::Take);
        assert!(intake.unsorted);
        assert_eq!(intake.offer(Some("c".into()), at(4)), Offer::Take);
        assert!(!intake.capped);
        assert_eq!(intake.taken, 3);
        // The checkpoint is the newest item, so the older ones taken are not read again.
        assert_eq!(intake.checkpoint.to_state()["seen"], json!(["a"]));
    }

    #[test]
    fn unreadable_items_are_counted_and_left() {
        let mut intake = intake(None, 10);
        assert_eq!(intake.offer(None, at(1)), Offer::Leave);
        assert_eq!(intake.offer(Some("x".into()), None), Offer::Leave);
        assert_eq!(intake.unreadable, 2);
        assert_eq!(intake.taken, 0);
    }

    #[test]
    fn ids_and_times_are_read_from_strings_and_numbers() {
        let item = json!({"id": 12, "info": {"createdAt": "2026-04-20T08:14:03.512000Z"}});
        assert_eq!(id_of(&item, "/id").as_deref(), Some("12"));
        assert_eq!(
            time_of(&item, "/info/createdAt").map(|t| t.timestamp_micros()),
            Some(1_776_672_843_512_000)
        );
        assert!(time_of(&item, "/info/missing").is_none());
        assert!(text_at(&json!({"a": " "}), "/a").is_none());
    }
}
