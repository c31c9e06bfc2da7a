//! Reading a whole SentinelOne listing for the listing actions (sites, groups), optionally
//! filtered by configured ids.
//!
//! Configured ids go comma-separated in one query parameter; a list too long for one URL is
//! split into several listings (each read to its last page), whose items are concatenated.
//! Listing actions have no targets, so a failure here is returned to end the run.

use serde_json::Value;

use crate::api::{ApiClient, QUERY_VALUES_BUDGET, chunk_for_query, join_csv};
use crate::error::Failure;

/// A request filter: query parameter name and value.
pub type Filter = (&'static str, String);

/// Every item of `GET path` with `filters`, read from `items_at` of each page; with
/// `ids = Some((key, ids))` and ids given, only the items those ids select.
pub fn read_all(
    client: &ApiClient,
    path: &str,
    filters: &[Filter],
    ids: Option<(&'static str, &[String])>,
    items_at: &'static str,
) -> Result<Vec<Value>, Failure> {
    let mut queries: Vec<Vec<Filter>> = Vec::new();
    match ids {
        Some((key, ids)) if !ids.is_empty() => {
            for chunk in chunk_for_query(ids, QUERY_VALUES_BUDGET) {
                let mut query = filters.to_vec();
                query.push((key, join_csv(chunk)));
                queries.push(query);
            }
        }
        _ => queries.push(filters.to_vec()),
    }
    let mut items = Vec::new();
    for query in queries {
        items.extend(client.pages(path, query, items_at).all_items()?);
    }
    Ok(items)
}

/// A field as text: strings as they are, numbers and booleans written out, otherwise `None`.
pub fn text(item: &Value, key: &str) -> Option<String> {
    match item.get(key)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}
