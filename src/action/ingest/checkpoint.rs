//! The checkpoint of ingest actions: where the previous run stopped, so the next run neither
//! misses nor repeats an item.
//!
//! Items are read oldest first with `createdAt__gte=<since>`. `>=` rather than `>` because
//! several items can share one timestamp and a run may stop between them; the ids already
//! taken at exactly `since` are kept in the checkpoint and skipped next time. Items created
//! while a run pages get later timestamps, so they are read by this run or the next one.
//! The state is opaque to ThreatQ: `{"version": 1, "since": "<RFC 3339>", "seen": [ids]}`.
//!
//! A state is checked as strictly as SentinelOne will read the filter made from it, before any
//! request: a checkpoint the console refuses would come back unchanged from every later run and
//! fail it the same way. The rule for `since` ([`parse_since`]):
//!
//! - the RFC 3339 `date-time` grammar with capital `T` and `Z` (or a `±HH:MM` offset):
//!   `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, at most six fraction digits (what this module writes and
//!   SentinelOne's own timestamps carry: microseconds, e.g. `2018-02-27T04:49:26.257525Z`,
//!   reference §1 from SW24);
//! - a real calendar date, hours 00–23, minutes and seconds 00–59. chrono's RFC 3339 parser
//!   accepts second 60 (a leap second) and would write it back as `…:60.000000Z`, which the
//!   console refuses (UNCONFIRMED by any published source; refused here either way);
//! - as an instant, from 1970-01-01T00:00:00Z (SentinelOne's `__between` filters count
//!   milliseconds since the epoch, SW24) to one day after the run's clock: a checkpoint from the
//!   future would silently skip everything created before it, and a day covers clock skew
//!   between the console and the host.
//!
//! The time is sent in this module's own format (UTC, microseconds), never as the state wrote
//! it. A state that breaks the rule is `state.invalid` on the field at fault (`state.since`),
//! with the advice to clear the state; the run then returns no state, so a host that stores
//! what the run returns starts the next run from `hours_back`.
//!
//! This module does not read SentinelOne; each ingest action feeds it the items it read.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::error::Failure;

/// Version of the state document.
const VERSION: u64 = 1;

/// How far past the run's clock a checkpoint may lie (clock skew between console and host).
const FUTURE_SLACK_HOURS: i64 = 24;

/// What the operator should do about a state that cannot be used; part of every such message.
pub const CLEAR_ADVICE: &str = "clear the stored state: the next run then starts again from hours_back (this run returns no state)";

/// Where reading starts, and what was already taken there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    since: DateTime<Utc>,
    seen: BTreeSet<String>,
    next_since: DateTime<Utc>,
    next_seen: BTreeSet<String>,
}

/// `state.invalid` on `state.<field>` (or `state` itself), with what to do about it.
fn invalid(field: Option<&str>, why: &str) -> Failure {
    let field = field.map_or_else(|| "state".to_string(), |field| format!("state.{field}"));
    Failure::state_invalid(
        field,
        format!("The ingest checkpoint in state cannot be used: {why}; {CLEAR_ADVICE}"),
    )
}

/// Reads a checkpoint time by the rule in the module documentation; `Err` says what is wrong.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    const SHAPE: &str = "it is not an RFC 3339 time of the form YYYY-MM-DDTHH:MM:SS[.ffffff]Z";
    let bytes = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<u32> {
        let part = bytes.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter()
            .try_fold(0u32, |n, digit| Some(n * 10 + u32::from(digit - b'0')))
    };
    let at = |index: usize, byte: u8| bytes.get(index) == Some(&byte);
    let shaped = at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':');
    let fields = (
        digits(0, 4),
        digits(5, 2),
        digits(8, 2),
        digits(11, 2),
        digits(14, 2),
        digits(17, 2),
    );
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = fields
    else {
        return Err(SHAPE.to_string());
    };
    if !shaped {
        return Err(SHAPE.to_string());
    }
    let mut rest = &text[19..];
    let mut micros = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || len > 6 {
            return Err(format!(
                "{SHAPE} (one to six fraction digits, microseconds at most)"
            ));
        }
        let value: u32 = fraction[..len].parse().map_err(|_| SHAPE.to_string())?;
        micros = value * 10u32.pow(6 - len as u32);
        rest = &fraction[len..];
    }
    let offset_seconds: i32 = match rest.as_bytes() {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) =>
        {
            let hours = i32::from((h1 - b'0') * 10 + (h2 - b'0'));
            let minutes = i32::from((m1 - b'0') * 10 + (m2 - b'0'));
            if hours > 23 || minutes > 59 {
                return Err(format!("{SHAPE} (the offset is out of range)"));
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return Err(SHAPE.to_string()),
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)
        .ok_or_else(|| format!("{year:04}-{month:02}-{day:02} is not a calendar date"))?;
    if second == 60 {
        return Err(
            "its seconds are 60 (a leap second), which SentinelOne's time filters refuse"
                .to_string(),
        );
    }
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)
        .ok_or_else(|| "its hours, minutes or seconds are out of range".to_string())?;
    let offset = FixedOffset::east_opt(offset_seconds).ok_or_else(|| SHAPE.to_string())?;
    let since = date
        .and_time(time)
        .and_local_timezone(offset)
        .single()
        .ok_or_else(|| SHAPE.to_string())?
        .with_timezone(&Utc);
    if since < DateTime::UNIX_EPOCH {
        return Err("it is before 1970-01-01T00:00:00Z".to_string());
    }
    if since > now + Duration::hours(FUTURE_SLACK_HOURS) {
        return Err(format!(
            "it is more than a day after the run's clock ({}), so nothing created before it would ever be read",
            Checkpoint::text(now)
        ));
    }
    Ok(since)
}

impl Checkpoint {
    /// Reads the previous run's state; with none, starts at `fallback_since` (e.g. now minus
    /// `hours_back`). `now` is the run's clock. A state this build cannot read, or whose time
    /// SentinelOne would refuse, is `state.invalid` on the field at fault.
    pub fn from_state(
        state: Option<&Value>,
        now: DateTime<Utc>,
        fallback_since: DateTime<Utc>,
    ) -> Result<Self, Failure> {
        let (since, seen) = match state {
            None | Some(Value::Null) => (fallback_since, BTreeSet::new()),
            Some(Value::Object(state)) => {
                if state.get("version").and_then(Value::as_u64) != Some(VERSION) {
                    return Err(invalid(
                        Some("version"),
                        "its version is not 1, the only one this build writes",
                    ));
                }
                let text = state
                    .get("since")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(Some("since"), "since is not a text"))?;
                let since = parse_since(text, now).map_err(|why| {
                    // Quoted only when short: the state is the host's text, not ours.
                    let shown: String = text.chars().take(40).collect();
                    invalid(Some("since"), &format!("since '{shown}' is refused: {why}"))
                })?;
                let seen = state
                    .get("seen")
                    .and_then(Value::as_array)
                    .ok_or_else(|| invalid(Some("seen"), "seen is not a list"))?
                    .iter()
                    .map(|id| {
                        id.as_str()
                            .filter(|id| !id.is_empty())
                            .map(str::to_string)
                            .ok_or_else(|| {
                                invalid(
                                    Some("seen"),
                                    "seen holds an id that is not a non-empty text",
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?;
                (since, seen)
            }
            Some(_) => return Err(invalid(None, "it is not a JSON object")),
        };
        Ok(Self {
            since,
            next_since: since,
            next_seen: seen.clone(),
            seen,
        })
    }

    /// The query filter that reads from the checkpoint on: `("createdAt__gte", since)`.
    pub fn filter(&self) -> (&'static str, String) {
        ("createdAt__gte", Self::text(self.since))
    }

    /// Whether the item (`id`, created at `created_at`) is new; records it if so.
    pub fn admit(&mut self, id: &str, created_at: DateTime<Utc>) -> bool {
        if created_at < self.since || (created_at == self.since && self.seen.contains(id)) {
            return false;
        }
        if created_at > self.next_since {
            self.next_since = created_at;
            self.next_seen.clear();
        }
        if created_at == self.next_since {
            self.next_seen.insert(id.to_string());
        }
        true
    }

    /// The state to hand to the next run.
    pub fn to_state(&self) -> Value {
        json!({ "version": VERSION, "since": Self::text(self.next_since), "seen": self.next_seen })
    }

    fn text(time: DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run's clock in these tests.
    fn now() -> DateTime<Utc> {
        at("2026-04-22T13:50:54Z")
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn items_sharing_a_timestamp_are_neither_missed_nor_repeated() {
        let start = at("2026-01-01T00:00:00Z");
        let tie = at("2026-01-01T00:00:05Z");
        let mut first = Checkpoint::from_state(None, now(), start).unwrap();
        assert!(first.admit("a", at("2026-01-01T00:00:01Z")));
        assert!(first.admit("b", tie));
        // The run stops here; "c" shares b's timestamp and arrives in the next run.
        let state = first.to_state();
        assert_eq!(state["since"], "2026-01-01T00:00:05.000000Z");
        assert_eq!(state["seen"], json!(["b"]));

        let mut second = Checkpoint::from_state(Some(&state), now(), start).unwrap();
        assert_eq!(
            second.filter(),
            ("createdAt__gte", "2026-01-01T00:00:05.000000Z".to_string())
        );
        assert!(!second.admit("b", tie), "b was taken by the first run");
        assert!(second.admit("c", tie));
        assert!(second.admit("d", at("2026-01-01T00:00:09Z")));
        let state = second.to_state();
        assert_eq!(state["seen"], json!(["d"]));

        let mut third = Checkpoint::from_state(Some(&state), now(), start).unwrap();
        assert!(!third.admit("d", at("2026-01-01T00:00:09Z")));
        assert_eq!(third.to_state(), state, "nothing new keeps the checkpoint");
    }

    #[test]
    fn older_items_are_not_admitted() {
        let mut checkpoint =
            Checkpoint::from_state(None, now(), at("2026-01-01T00:00:00Z")).unwrap();
        assert!(!checkpoint.admit("x", at("2025-12-31T23:59:59Z")));
    }

    #[test]
    fn unreadable_states_name_the_field() {
        for (state, field) in [
            (json!({"since": "x"}), "state.version"),
            (json!("text"), "state"),
            (
                json!({"version": 1, "since": "nope", "seen": []}),
                "state.since",
            ),
            (json!({"version": 1, "since": 5, "seen": []}), "state.since"),
            (
                json!({"version": 1, "since": "2026-01-01T00:00:00Z", "seen": [1]}),
                "state.seen",
            ),
            (
                json!({"version": 1, "since": "2026-01-01T00:00:00Z", "seen": [""]}),
                "state.seen",
            ),
            (
                json!({"version": 1, "since": "2026-01-01T00:00:00Z"}),
                "state.seen",
            ),
        ] {
            let err = Checkpoint::from_state(Some(&state), now(), now()).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::StateInvalid, "{state}");
            assert_eq!(err.field.as_deref(), Some(field), "{state}");
            assert!(!err.retryable);
            assert!(err.message.contains("hours_back"), "{}", err.message);
        }
    }

    #[test]
    fn since_is_read_as_strictly_as_the_console_reads_it() {
        let accepted = [
            ("2026-04-22T09:00:00Z", "2026-04-22T09:00:00.000000Z"),
            ("2026-04-22T09:00:00.000000Z", "2026-04-22T09:00:00.000000Z"),
            ("2026-04-22T09:00:00.5Z", "2026-04-22T09:00:00.500000Z"),
            (
                "2026-04-22T11:00:00.123456+02:00",
                "2026-04-22T09:00:00.123456Z",
            ),
            ("2026-04-22T04:30:00-04:30", "2026-04-22T09:00:00.000000Z"),
            ("2024-02-29T23:59:59.999999Z", "2024-02-29T23:59:59.999999Z"),
            ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),
            // A day of clock skew past the run's clock is allowed.
            ("2026-04-23T13:50:54Z", "2026-04-23T13:50:54.000000Z"),
        ];
        for (text, sent) in accepted {
            let since = parse_since(text, now()).unwrap_or_else(|why| panic!("{text}: {why}"));
            assert_eq!(Checkpoint::text(since), sent, "{text}");
        }
        let refused = [
            ("2026-06-30T23:59:60Z", "leap second"),
            ("2016-12-31T23:59:60.000000Z", "leap second"),
            ("2026-04-22T09:00:00.1234567Z", "six fraction digits"),
            ("2026-04-22T09:00:00.Z", "six fraction digits"),
            ("2026-02-30T09:00:00Z", "not a calendar date"),
            ("2026-13-01T09:00:00Z", "not a calendar date"),
            ("2026-04-22T24:00:00Z", "out of range"),
            ("2026-04-22T09:60:00Z", "out of range"),
            ("2026-04-22T09:00:00+24:00", "offset"),
            ("2026-04-22t09:00:00z", "RFC 3339"),
            ("2026-04-22 09:00:00Z", "RFC 3339"),
            ("2026-04-22T09:00:00", "RFC 3339"),
            ("2026-04-22T09:00Z", "RFC 3339"),
            ("+2026-04-22T09:00:00Z", "RFC 3339"),
            ("2026-04-22T09:00:00Z ", "RFC 3339"),
            ("1969-12-31T23:59:59Z", "before 1970"),
            ("0000-01-01T00:00:00Z", "before 1970"),
            ("9999-12-31T23:59:59Z", "after the run's clock"),
            ("2026-04-23T13:50:55Z", "after the run's clock"),
            ("", "RFC 3339"),
            ("2026-04-22T09:00:00Zé", "RFC 3339"),
        ];
        for (text, why) in refused {
            let error = parse_since(text, now()).expect_err(text);
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn chrono_alone_would_send_a_leap_second() {
        // Why the parser above exists: chrono reads second 60 and writes it back as such.
        let leap = DateTime::parse_from_rfc3339("2016-12-31T23:59:60Z").unwrap();
        assert_eq!(
            Checkpoint::text(leap.with_timezone(&Utc)),
            "2016-12-31T23:59:60.000000Z"
        );
        let state = json!({"version": 1, "since": "2016-12-31T23:59:60Z", "seen": []});
        let err = Checkpoint::from_state(Some(&state), now(), now()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("state.since"));
    }
}
