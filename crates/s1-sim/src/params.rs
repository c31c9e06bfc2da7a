//! Request parameters and API errors shared by every endpoint.
//!
//! Owns the S1 error body, and one view over "filter" parameters whether they arrive as a query
//! string (`ids=1,2`) or inside a JSON `filter` object (`{"ids":["1","2"]}`), so a GET and the
//! matching bulk POST filter the same way. It does not know which keys an endpoint accepts; the
//! endpoint passes its list to [`Params::reject_unknown`].

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::{Value, json};

/// An error answered with the console's `{"errors":[{code,title,detail}]}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: u64,
    pub title: String,
    pub detail: Option<String>,
}

impl ApiError {
    /// An error whose HTTP status is the one its code carries: SentinelOne's codes start with
    /// their status (4000010 and 4000020 come with 400, 4010010 with 401, 4030010 with 403 —
    /// ALC `test.js`, rapid7/insightconnect-plugins PR #189, pmoses-s1/claude-skills
    /// `sentinelone-mgmt-console-api/tests/README.md`), so no endpoint can answer a code with
    /// another status by mistake.
    pub(crate) fn new(code: u64, title: &str, detail: Option<String>) -> ApiError {
        let status = u16::try_from(code / 10_000).unwrap_or(500);
        ApiError::with_status(status, code, title, detail)
    }

    /// An error with a status chosen apart from its code: only for injected faults, which
    /// may imitate older consoles (409 with 4000030).
    pub(crate) fn with_status(
        status: u16,
        code: u64,
        title: &str,
        detail: Option<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            title: title.to_string(),
            detail,
        }
    }

    pub(crate) fn validation(detail: impl Into<String>) -> ApiError {
        ApiError::new(4000010, "Validation Error", Some(detail.into()))
    }

    pub(crate) fn invalid_identifier(detail: impl Into<String>) -> ApiError {
        ApiError::new(4000020, "Invalid Identifier", Some(detail.into()))
    }

    /// A duplicate blacklist or exclusion entry. XS `add_hash_to_blocklist` matches the code
    /// and title; the status (400, from the code) is not published — older consoles may answer
    /// 409, which a fault rule can imitate.
    pub(crate) fn already_exists(detail: impl Into<String>) -> ApiError {
        ApiError::new(4000030, "Already Exists Error", Some(detail.into()))
    }

    pub(crate) fn unauthorized() -> ApiError {
        ApiError::new(4010010, "Authentication Failed", None)
    }

    pub(crate) fn forbidden() -> ApiError {
        ApiError::new(
            4030010,
            "Insufficient Permissions",
            Some("The API token's role does not allow this request".to_string()),
        )
    }

    /// Threat Intelligence refusing a token whose user is assigned to several accounts, on
    /// every `/threat-intelligence/iocs` method, whatever the filter (pmoses-s1/claude-skills
    /// `sentinelone-mgmt-console-api/tests/README.md`, "Tokens and scopes").
    pub(crate) fn multi_scope_user() -> ApiError {
        ApiError::new(
            4030010,
            "Forbidden",
            Some("This page doesn't support multi-scopes users yet".to_string()),
        )
    }

    /// The console's validation error for a missing required field at `path` of the body:
    /// `["data", "ids"]` → `{'data': {'ids': ['Missing data for required field.']}}`.
    pub(crate) fn missing_field(path: &[&str]) -> ApiError {
        let mut detail = "['Missing data for required field.']".to_string();
        for key in path.iter().rev() {
            detail = format!("{{'{key}': {detail}}}");
        }
        ApiError::validation(detail)
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(4040010, "Resource not found", Some(detail.into()))
    }

    pub(crate) fn method_not_allowed(method: &str) -> ApiError {
        ApiError::new(
            4050010,
            "Method Not Allowed",
            Some(format!("The method {method} is not allowed for this URL")),
        )
    }

    pub(crate) fn server_error(detail: impl Into<String>) -> ApiError {
        ApiError::new(5000010, "Server Error", Some(detail.into()))
    }

    /// The error for a status injected by a fault rule.
    pub(crate) fn injected(status: u16, code: Option<u64>) -> ApiError {
        let title = match status {
            429 => "Too Many Requests",
            500 => "Server Error",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => super::http::reason(status),
        };
        let title = match code {
            Some(4_000_010) => "Validation Error",
            Some(4_000_030) => "Already Exists Error",
            _ => title,
        };
        let code = code.unwrap_or(u64::from(status) * 10000 + 10);
        ApiError::with_status(status, code, title, None)
    }

    pub(crate) fn body(&self) -> Value {
        json!({"errors": [{"code": self.code, "title": self.title, "detail": self.detail}]})
    }
}

/// One parameter value as received.
#[derive(Debug, Clone)]
enum Val {
    /// A query-string value or a JSON string / number: comma-separated when read as a list.
    Text(String),
    List(Vec<String>),
    Bool(bool),
}

/// Filter and paging parameters from a query string or a JSON `filter` object.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    map: BTreeMap<String, Val>,
    /// `filter.` for body filters, empty for query strings: prefixes field names in errors.
    prefix: &'static str,
    /// A `__contains` query value is read as one text, commas included (the scenario's
    /// `comma_lists: false`), as a console that does not split such lists would.
    whole_contains: bool,
}

impl Params {
    pub(crate) fn from_query(query: &BTreeMap<String, String>) -> Params {
        Params {
            map: query
                .iter()
                .map(|(key, value)| (key.clone(), Val::Text(value.clone())))
                .collect(),
            prefix: "",
            whole_contains: false,
        }
    }

    /// With `comma_lists` false, a `__contains` query value is one needle, commas included.
    /// SentinelOne documents these filters as lists (SW24 `collectionFormat: 'csv'`); this is
    /// the console `s1-actions probe` must be able to detect, and its fallback to survive.
    pub(crate) fn with_comma_lists(mut self, comma_lists: bool) -> Params {
        self.whole_contains = !comma_lists;
        self
    }

    /// Reads the `filter` object a write body must carry (every bulk write: mitigation,
    /// verdicts, network actions, list entries, IOC deletes). An absent or `null` filter is the
    /// console's "required field" validation error; an empty one is valid and selects
    /// everything.
    pub(crate) fn required_filter(body: &Value) -> Result<Params, ApiError> {
        match body.get("filter") {
            None | Some(Value::Null) => Err(ApiError::missing_field(&["filter"])),
            Some(filter) => Params::from_filter(filter),
        }
    }

    /// Reads a JSON `filter` object. `null` members count as absent.
    pub(crate) fn from_filter(filter: &Value) -> Result<Params, ApiError> {
        let Some(object) = filter.as_object() else {
            return Err(ApiError::validation("filter: Not a valid mapping type."));
        };
        let mut map = BTreeMap::new();
        for (key, value) in object {
            let val = match value {
                Value::Null => continue,
                Value::Bool(b) => Val::Bool(*b),
                Value::Number(n) => Val::Text(n.to_string()),
                Value::String(s) => Val::Text(s.clone()),
                Value::Array(items) => {
                    let mut list = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            Value::String(s) => list.push(s.clone()),
                            Value::Number(n) => list.push(n.to_string()),
                            _ => {
                                return Err(ApiError::validation(format!(
                                    "{{'filter': {{'{key}': ['Not a valid list of strings.']}}}}"
                                )));
                            }
                        }
                    }
                    Val::List(list)
                }
                Value::Object(_) => {
                    return Err(ApiError::validation(format!(
                        "{{'filter': {{'{key}': ['Not a valid value.']}}}}"
                    )));
                }
            };
            map.insert(key.clone(), val);
        }
        Ok(Params {
            map,
            prefix: "filter.",
            whole_contains: false,
        })
    }

    /// Rejects keys the endpoint does not know, as the console's schema validation does. A key
    /// is known when it is listed in `known` or is `<field>__gt|gte|lt|lte` of a `time_fields`
    /// field.
    pub(crate) fn reject_unknown(
        &self,
        known: &[&str],
        time_fields: &[&str],
    ) -> Result<(), ApiError> {
        let is_known = |key: &str| {
            known.contains(&key)
                || key.split_once("__").is_some_and(|(field, op)| {
                    time_fields.contains(&field) && matches!(op, "gt" | "gte" | "lt" | "lte")
                })
        };
        let unknown: Vec<&str> = self
            .map
            .keys()
            .map(String::as_str)
            .filter(|key| !is_known(key))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let fields: Vec<String> = unknown
            .iter()
            .map(|key| format!("'{key}': ['Unknown field.']"))
            .collect();
        let inner = format!("{{{}}}", fields.join(", "));
        Err(ApiError::validation(if self.prefix.is_empty() {
            inner
        } else {
            format!("{{'filter': {inner}}}")
        }))
    }

    /// A list value: comma-separated text or a JSON array, blanks dropped. An empty list reads as
    /// absent, so an empty `ids` filters nothing (which is why clients must never send one).
    pub(crate) fn list(&self, key: &str) -> Option<Vec<String>> {
        let list: Vec<String> = match self.map.get(key)? {
            Val::Text(text) if self.whole_contains && key.ends_with("__contains") => {
                Some(text.trim().to_string())
                    .filter(|text| !text.is_empty())
                    .into_iter()
                    .collect()
            }
            Val::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Val::List(items) => items
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            Val::Bool(b) => vec![b.to_string()],
        };
        (!list.is_empty()).then_some(list)
    }

    /// A list value lower-cased, for case-insensitive matching.
    pub(crate) fn list_lower(&self, key: &str) -> Option<Vec<String>> {
        self.list(key)
            .map(|list| list.into_iter().map(|s| s.to_lowercase()).collect())
    }

    /// A single text value (an empty string reads as absent).
    pub(crate) fn text(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Val::Text(text)) => Ok((!text.is_empty()).then(|| text.clone())),
            Some(Val::Bool(b)) => Ok(Some(b.to_string())),
            Some(Val::List(items)) if items.len() == 1 => Ok(Some(items[0].clone())),
            Some(Val::List(_)) => Err(self.invalid(key, "Not a valid string.")),
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Val::Bool(b)) => Ok(Some(*b)),
            Some(Val::Text(text)) => match text.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                "" => Ok(None),
                _ => Err(self.invalid(key, "Not a valid boolean.")),
            },
            Some(Val::List(_)) => Err(self.invalid(key, "Not a valid boolean.")),
        }
    }

    pub(crate) fn uint(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.text(key)? {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(key, "Not a valid integer.")),
        }
    }

    /// A timestamp: RFC 3339, or epoch milliseconds.
    pub(crate) fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(text) = self.text(key)? else {
            return Ok(None);
        };
        if let Ok(parsed) = DateTime::parse_from_rfc3339(&text) {
            return Ok(Some(parsed.with_timezone(&Utc)));
        }
        if let Ok(millis) = text.parse::<i64>()
            && let Some(parsed) = Utc.timestamp_millis_opt(millis).single()
        {
            return Ok(Some(parsed));
        }
        // A naive "YYYY-MM-DDTHH:MM:SS[.ffffff]" is read as UTC, as the console does.
        for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(&text, format) {
                return Ok(Some(naive.and_utc()));
            }
        }
        Err(self.invalid(key, "Not a valid datetime."))
    }

    pub(crate) fn invalid(&self, key: &str, message: &str) -> ApiError {
        if self.prefix.is_empty() {
            ApiError::validation(format!("{{'{key}': ['{message}']}}"))
        } else {
            ApiError::validation(format!("{{'filter': {{'{key}': ['{message}']}}}}"))
        }
    }

    /// The `field__gt|gte|lt|lte` bounds of a timestamp field.
    pub(crate) fn time_range(&self, field: &str) -> Result<TimeRange, ApiError> {
        Ok(TimeRange {
            gt: self.time(&format!("{field}__gt"))?,
            gte: self.time(&format!("{field}__gte"))?,
            lt: self.time(&format!("{field}__lt"))?,
            lte: self.time(&format!("{field}__lte"))?,
        })
    }
}

/// Bounds on one timestamp field.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TimeRange {
    gt: Option<DateTime<Utc>>,
    gte: Option<DateTime<Utc>>,
    lt: Option<DateTime<Utc>>,
    lte: Option<DateTime<Utc>>,
}

impl TimeRange {
    pub(crate) fn contains(&self, at: DateTime<Utc>) -> bool {
        self.gt.is_none_or(|b| at > b)
            && self.gte.is_none_or(|b| at >= b)
            && self.lt.is_none_or(|b| at < b)
            && self.lte.is_none_or(|b| at <= b)
    }
}

/// Is `text` exactly `len` hex digits?
pub(crate) fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A hasher for the sets a listing probes once per item (ids, hashes, needle windows): with
/// SipHash, hashing every item's keys was most of the time of a 139-hash look-up among 50,000
/// items. The simulator's keys come from its own seeds and its clients; no flooding resistance
/// is needed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(SEED);
        }
        for byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*byte)).wrapping_mul(SEED);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A string set hashed with [`FxHasher`].
pub(crate) type FastSet = HashSet<String, std::hash::BuildHasherDefault<FxHasher>>;

/// `text` lower-cased, borrowed when it has no upper-case letter (hashes and ids usually).
pub(crate) fn lowered(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_uppercase) {
        std::borrow::Cow::Owned(text.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// A set of lower-cased needles for "contains any" matching over many items.
#[derive(Debug, Clone, Default)]
pub(crate) struct Needles {
    set: FastSet,
    list: Vec<String>,
    lengths: Vec<usize>,
}

impl Needles {
    pub(crate) fn new(needles: Vec<String>) -> Needles {
        let set: FastSet = needles.iter().map(|n| n.to_lowercase()).collect();
        let list: Vec<String> = set.iter().cloned().collect();
        let mut lengths: Vec<usize> = list.iter().map(String::len).collect();
        lengths.sort_unstable();
        lengths.dedup();
        Needles { set, list, lengths }
    }

    /// The needles, lower-cased.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(String::as_str)
    }

    /// Does any needle occur in `haystack` (already lower-cased)? With many needles, probing the
    /// haystack's windows against the set is cheaper than searching for each needle in turn.
    pub(crate) fn found_in(&self, haystack: &str) -> bool {
        let windows: usize = self
            .lengths
            .iter()
            .filter(|&&l| l <= haystack.len())
            .map(|&l| haystack.len() - l + 1)
            .sum();
        if windows < self.list.len() {
            self.lengths
                .iter()
                .filter(|&&l| l <= haystack.len())
                .any(|&l| {
                    (0..=haystack.len() - l).any(|i| {
                        haystack
                            .get(i..i + l)
                            .is_some_and(|window| self.set.contains(window))
                    })
                })
        } else {
            self.list.iter().any(|n| haystack.contains(n.as_str()))
        }
    }
}
