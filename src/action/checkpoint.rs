//! The checkpoint of ingest actions: where the previous run stopped, so the next run neither
//! misses nor repeats an item.
//!
//! Items are read oldest first with `createdAt__gte=<since>`. `>=` rather than `>` because
//! several items can share one timestamp and a run may stop between them; the ids already
//! taken at exactly `since` are kept in the checkpoint and skipped next time. Items created
//! while a run pages get later timestamps, so they are read by this run or the next one.
//! The state is opaque to ThreatQ: `{"version": 1, "since": "<RFC 3339>", "seen": [ids]}`.
//!
//! This module does not read SentinelOne; each ingest action feeds it the items it read.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::error::Failure;

/// Version of the state document.
const VERSION: u64 = 1;

/// Where reading starts, and what was already taken there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    since: DateTime<Utc>,
    seen: BTreeSet<String>,
    next_since: DateTime<Utc>,
    next_seen: BTreeSet<String>,
}

impl Checkpoint {
    /// Reads the previous run's state; with none, starts at `fallback_since` (e.g. now minus
    /// `hours_back`). A state this build cannot read is `config.invalid` on field `state`.
    pub fn from_state(
        state: Option<&Value>,
        fallback_since: DateTime<Utc>,
    ) -> Result<Self, Failure> {
        let invalid = |why: &str| {
            Failure::config_invalid(
                "state",
                format!("The checkpoint in state is not readable: {why}"),
            )
        };
        let (since, seen) = match state {
            None | Some(Value::Null) => (fallback_since, BTreeSet::new()),
            Some(state) => {
                if state.get("version").and_then(Value::as_u64) != Some(VERSION) {
                    return Err(invalid("unknown version"));
                }
                let since = state
                    .get("since")
                    .and_then(Value::as_str)
                    .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                    .ok_or_else(|| invalid("since is not an RFC 3339 time"))?
                    .with_timezone(&Utc);
                let seen = state
                    .get("seen")
                    .and_then(Value::as_array)
                    .ok_or_else(|| invalid("seen is not a list"))?
                    .iter()
                    .map(|id| {
                        id.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| invalid("seen holds a non-string id"))
                    })
                    .collect::<Result<_, _>>()?;
                (since, seen)
            }
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

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn items_sharing_a_timestamp_are_neither_missed_nor_repeated() {
        let start = at("2026-01-01T00:00:00Z");
        let tie = at("2026-01-01T00:00:05Z");
        let mut first = Checkpoint::from_state(None, start).unwrap();
        assert!(first.admit("a", at("2026-01-01T00:00:01Z")));
        assert!(first.admit("b", tie));
        // The run stops here; "c" shares b's timestamp and arrives in the next run.
        let state = first.to_state();
        assert_eq!(state["since"], "2026-01-01T00:00:05.000000Z");
        assert_eq!(state["seen"], json!(["b"]));

        let mut second = Checkpoint::from_state(Some(&state), start).unwrap();
        assert_eq!(
            second.filter(),
            ("createdAt__gte", "2026-01-01T00:00:05.000000Z".to_string())
        );
        assert!(!second.admit("b", tie), "b was taken by the first run");
        assert!(second.admit("c", tie));
        assert!(second.admit("d", at("2026-01-01T00:00:09Z")));
        let state = second.to_state();
        assert_eq!(state["seen"], json!(["d"]));

        let mut third = Checkpoint::from_state(Some(&state), start).unwrap();
        assert!(!third.admit("d", at("2026-01-01T00:00:09Z")));
        assert_eq!(third.to_state(), state, "nothing new keeps the checkpoint");
    }

    #[test]
    fn older_items_are_not_admitted() {
        let mut checkpoint = Checkpoint::from_state(None, at("2026-01-01T00:00:00Z")).unwrap();
        assert!(!checkpoint.admit("x", at("2025-12-31T23:59:59Z")));
    }

    #[test]
    fn unreadable_states_name_the_field() {
        for state in [
            json!({"since": "x"}),
            json!({"version": 1, "since": "nope", "seen": []}),
            json!({"version": 1, "since": "2026-01-01T00:00:00Z", "seen": [1]}),
        ] {
            let err = Checkpoint::from_state(Some(&state), Utc::now()).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("state"));
        }
    }
}
