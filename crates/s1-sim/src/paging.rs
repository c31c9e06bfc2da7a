//! Sorting and paging of list endpoints: `limit`, `skip`, `cursor`, `sortBy`, `sortOrder`.
//!
//! Owns the page-size and skip bounds (limit 1–1000, skip 0–1000, as the console enforces), the
//! stable sort (ties broken by id, so pages never repeat or skip an item) and the cursor format.
//! A cursor is keyset-based: base64 of the endpoint, the sort and the sort key of the last item
//! returned; the next page starts right after that key. It carries no filter: filters are read
//! from each request, so a client that drops them on page 2 gets other data, as on a real console.
//! It does not filter items; endpoints filter before calling [`paginate`].

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::params::{ApiError, Params};

/// Query keys every paged endpoint accepts.
pub(crate) const PAGING_KEYS: &[&str] = &[
    "limit",
    "skip",
    "cursor",
    "sortBy",
    "sortOrder",
    "countOnly",
    "skipCount",
];

const MAX_LIMIT: u64 = 1000;
const MAX_SKIP: u64 = 1000;
const DEFAULT_LIMIT: u64 = 10;

/// The primary sort value of an item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SortValue {
    Null,
    Int(i64),
    Text(String),
}

/// An item's position in a sort: the sort field, then its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SortKey {
    pub primary: SortValue,
    pub id: String,
}

impl SortKey {
    fn cmp_asc(&self, other: &SortKey) -> Ordering {
        self.primary
            .cmp(&other.primary)
            .then_with(|| compare_ids(&self.id, &other.id))
    }
}

/// Numeric ids compare as numbers (shorter first), other ids as text.
pub(crate) fn compare_ids(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// What page a request asks for.
#[derive(Debug, Clone)]
pub(crate) struct PageRequest {
    pub limit: usize,
    pub skip: usize,
    pub sort_by: String,
    pub descending: bool,
    pub count_only: bool,
    after: Option<SortKey>,
    endpoint: String,
}

impl PageRequest {
    /// Reads the paging parameters. `sort_fields` are the `sortBy` values the endpoint accepts;
    /// the first is the default.
    pub(crate) fn from_params(
        params: &Params,
        endpoint: &str,
        sort_fields: &[&str],
    ) -> Result<PageRequest, ApiError> {
        let limit = params.uint("limit")?.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(params.invalid("limit", "Must be between 1 and 1000."));
        }
        let skip = params.uint("skip")?.unwrap_or(0);
        if skip > MAX_SKIP {
            return Err(params.invalid("skip", "Must be between 0 and 1000."));
        }
        let default_sort = sort_fields.first().copied().unwrap_or("id");
        let sort_by = params
            .text("sortBy")?
            .unwrap_or_else(|| default_sort.to_string());
        if !sort_fields.contains(&sort_by.as_str()) {
            return Err(params.invalid(
                "sortBy",
                &format!("Must be one of: {}.", sort_fields.join(", ")),
            ));
        }
        let descending = match params.text("sortOrder")?.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(params.invalid("sortOrder", "Must be one of: asc, desc.")),
        };
        let count_only = params.bool("countOnly")?.unwrap_or(false);
        params.bool("skipCount")?;
        let after = match params.text("cursor")? {
            None => None,
            Some(cursor) => Some(decode_cursor(&cursor, endpoint, &sort_by, descending)?),
        };
        Ok(PageRequest {
            limit: limit as usize,
            skip: skip as usize,
            sort_by,
            descending,
            count_only,
            after,
            endpoint: endpoint.to_string(),
        })
    }

    fn order(&self, a: &SortKey, b: &SortKey) -> Ordering {
        if self.descending {
            b.cmp_asc(a)
        } else {
            a.cmp_asc(b)
        }
    }
}

/// One page of items and the pagination block.
#[derive(Debug)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub total: usize,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `{"data":[…],"pagination":{"totalItems":N,"nextCursor":…}}`.
    pub(crate) fn to_json(&self, render: impl Fn(&T) -> Value) -> Value {
        json!({
            "data": self.items.iter().map(render).collect::<Vec<_>>(),
            "pagination": self.pagination(),
        })
    }

    pub(crate) fn pagination(&self) -> Value {
        json!({"totalItems": self.total, "nextCursor": self.next_cursor})
    }
}

/// Sorts the filtered items and cuts out the requested page.
pub(crate) fn paginate<T>(
    items: Vec<T>,
    request: &PageRequest,
    key: impl Fn(&T, &str) -> SortKey,
) -> Page<T> {
    let total = items.len();
    if request.count_only {
        return Page {
            items: Vec::new(),
            total,
            next_cursor: None,
        };
    }
    let mut keyed: Vec<(SortKey, T)> = items
        .into_iter()
        .map(|item| (key(&item, &request.sort_by), item))
        .collect();
    keyed.sort_by(|a, b| request.order(&a.0, &b.0));
    let start = match &request.after {
        Some(after) => keyed.partition_point(|(k, _)| request.order(k, after) != Ordering::Greater),
        None => 0,
    };
    let start = (start + request.skip).min(keyed.len());
    let end = (start + request.limit).min(keyed.len());
    let next_cursor = (end < keyed.len() && end > start).then(|| {
        encode_cursor(
            &request.endpoint,
            &request.sort_by,
            request.descending,
            &keyed[end - 1].0,
        )
    });
    let items = keyed.drain(start..end).map(|(_, item)| item).collect();
    Page {
        items,
        total,
        next_cursor,
    }
}

fn fingerprint(endpoint: &str) -> String {
    // FNV-1a: a cursor minted by one endpoint is refused by another.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in endpoint.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn encode_cursor(endpoint: &str, sort_by: &str, descending: bool, key: &SortKey) -> String {
    let primary = match &key.primary {
        SortValue::Null => Value::Null,
        SortValue::Int(n) => json!(n),
        SortValue::Text(s) => json!(s),
    };
    let payload = json!([
        "v1",
        fingerprint(endpoint),
        sort_by,
        if descending { "desc" } else { "asc" },
        primary,
        key.id
    ]);
    base64_encode(payload.to_string().as_bytes())
}

fn decode_cursor(
    cursor: &str,
    endpoint: &str,
    sort_by: &str,
    descending: bool,
) -> Result<SortKey, ApiError> {
    let invalid = || ApiError::validation("{'cursor': ['Invalid cursor.']}");
    let bytes = base64_decode(cursor).ok_or_else(invalid)?;
    let payload: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let parts = payload.as_array().ok_or_else(invalid)?;
    let [version, print, sort, order, primary, id] = parts.as_slice() else {
        return Err(invalid());
    };
    if version != "v1" || print.as_str() != Some(fingerprint(endpoint).as_str()) {
        return Err(invalid());
    }
    if sort.as_str() != Some(sort_by)
        || order.as_str() != Some(if descending { "desc" } else { "asc" })
    {
        return Err(ApiError::validation(
            "{'cursor': ['Cursor does not match sortBy/sortOrder.']}",
        ));
    }
    let primary = match primary {
        Value::Null => SortValue::Null,
        Value::Number(n) => SortValue::Int(n.as_i64().ok_or_else(invalid)?),
        Value::String(s) => SortValue::Text(s.clone()),
        _ => return Err(invalid()),
    };
    let id = id.as_str().ok_or_else(invalid)?.to_string();
    Ok(SortKey { primary, id })
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (real cursors contain `=`, which clients must URL-encode).
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard or URL-safe base64, padded or not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for byte in text.trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for text in ["", "a", "ab", "abc", "abcd", "[\"v1\",1]"] {
            let encoded = base64_encode(text.as_bytes());
            assert_eq!(base64_decode(&encoded).unwrap(), text.as_bytes());
        }
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert!(base64_decode("***").is_none());
    }

    #[test]
    fn desc_paging_with_ties_never_repeats() {
        let items: Vec<(i64, String)> = (0..25).map(|i| (i / 4, format!("{}", 100 + i))).collect();
        let mut query = std::collections::BTreeMap::new();
        query.insert("limit".to_string(), "7".to_string());
        query.insert("sortBy".to_string(), "createdAt".to_string());
        query.insert("sortOrder".to_string(), "desc".to_string());
        let mut seen = Vec::new();
        loop {
            let params = Params::from_query(&query);
            let request = PageRequest::from_params(&params, "/x", &["id", "createdAt"]).unwrap();
            let page = paginate(items.iter().collect(), &request, |item, _| SortKey {
                primary: SortValue::Int(item.0),
                id: item.1.clone(),
            });
            seen.extend(page.items.iter().map(|item| item.1.clone()));
            match page.next_cursor {
                Some(cursor) => query.insert("cursor".to_string(), cursor),
                None => break,
            };
        }
        assert_eq!(seen.len(), 25);
        assert_eq!(seen.first().map(String::as_str), Some("124"));
        let mut sorted = seen.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 25);
    }
}
