//! Cursor paging over SentinelOne list endpoints.
//!
//! [`Pages`] asks for `limit=1000`, keeps the caller's filters on every page, sends back
//! `pagination.nextCursor` as `cursor`, and ends on a null, missing, empty or `"null"` cursor, a
//! cursor it already sent, or an empty page (SentinelOne sometimes ends a cursor walk with one).
//! A hard page cap turns a console that never stops into `upstream.bad_response` instead of an
//! endless run. What the items mean is the caller's business.

use std::collections::HashSet;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use super::ApiClient;
use crate::error::{ErrorCode, Failure};
use crate::log;

/// Items per page: the maximum every v2.1 list endpoint accepts (more is HTTP 400).
pub const PAGE_LIMIT: u32 = 1000;

/// Pages read from one listing before giving up: 10 million items at [`PAGE_LIMIT`].
pub const MAX_PAGES: usize = 10_000;

/// An iterator over the pages of one listing; each item is one page's entries, read as `T`
/// (a JSON tree by default), or the failure that ended the walk (after which the iterator is
/// finished).
pub struct Pages<'a, T = Value> {
    client: &'a ApiClient,
    path: String,
    query: Vec<(&'static str, String)>,
    items_at: &'static str,
    cursor: Option<String>,
    sent_cursors: HashSet<String>,
    pages_read: usize,
    max_pages: usize,
    finished: bool,
    items: PhantomData<fn() -> T>,
}

/// A page as sent: the part holding the items is kept as text until it is found, so items are
/// read straight into `T`, and the rest of the body is skipped.
#[derive(Deserialize)]
struct PageBody {
    data: Option<Box<RawValue>>,
    pagination: Option<Value>,
}

/// A page whose items are `data` itself, read in one pass (no copy of the items' text).
#[derive(Deserialize)]
struct DataPage<T> {
    data: Option<Vec<T>>,
    pagination: Option<Value>,
}

impl<'a, T: DeserializeOwned> Pages<'a, T> {
    pub(crate) fn new(
        client: &'a ApiClient,
        path: &str,
        mut query: Vec<(&'static str, String)>,
        items_at: &'static str,
    ) -> Self {
        // The caller may ask for smaller pages; otherwise take the most each request allows.
        if !query.iter().any(|(name, _)| *name == "limit") {
            query.push(("limit", PAGE_LIMIT.to_string()));
        }
        Self {
            client,
            path: path.to_string(),
            query,
            items_at,
            cursor: None,
            sent_cursors: HashSet::new(),
            pages_read: 0,
            max_pages: MAX_PAGES,
            finished: false,
            items: PhantomData,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_max_pages(mut self, max_pages: usize) -> Self {
        self.max_pages = max_pages;
        self
    }

    fn fail(&mut self, failure: Failure) -> Option<Result<Vec<T>, Failure>> {
        self.finished = true;
        Some(Err(failure))
    }

    /// The items of `data` at `items_at` (`/data`, `/data/sites`), or `None` when there is no
    /// list of `T` there.
    fn items(&self, data: Option<Box<RawValue>>) -> Option<Vec<T>> {
        let mut at: Box<RawValue> = data?;
        let inner = self.items_at.strip_prefix("/data")?;
        for key in inner.split('/').filter(|key| !key.is_empty()) {
            let mut object: std::collections::HashMap<String, Box<RawValue>> =
                serde_json::from_str(at.get()).ok()?;
            at = object.remove(key)?;
        }
        serde_json::from_str(at.get()).ok()
    }
}

impl<T: DeserializeOwned> Pages<'_, T> {
    /// Every item of every page, in order; the failure that ended the walk, if any.
    pub fn all_items(self) -> Result<Vec<T>, Failure> {
        let mut items = Vec::new();
        self.each_item(|item| items.push(item))?;
        Ok(items)
    }

    /// Hands each item to `visit` as its page arrives, so the pages are never all held at
    /// once; the failure that ended the walk, if any.
    pub fn each_item(self, mut visit: impl FnMut(T)) -> Result<(), Failure> {
        for page in self {
            page?.into_iter().for_each(&mut visit);
        }
        Ok(())
    }
}

impl<T: DeserializeOwned> Iterator for Pages<'_, T> {
    type Item = Result<Vec<T>, Failure>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if self.pages_read >= self.max_pages {
            let message = format!(
                "SentinelOne kept returning pages for GET {} after {} pages; stopped",
                self.path, self.max_pages
            );
            return self.fail(Failure::new(ErrorCode::UpstreamBadResponse, message));
        }
        let mut query = self.query.clone();
        if let Some(cursor) = &self.cursor {
            query.push(("cursor", cursor.clone()));
        }
        let read = if self.items_at == "/data" {
            self.client
                .get_as::<Option<DataPage<T>>>(&self.path, &query)
                .map(|body| body.map_or((None, None), |body| (body.data, body.pagination)))
        } else {
            self.client
                .get_as::<Option<PageBody>>(&self.path, &query)
                .map(|body| {
                    let (data, pagination) =
                        body.map_or((None, None), |body| (body.data, body.pagination));
                    (self.items(data), pagination)
                })
        };
        let (items, pagination) = match read {
            Ok(read) => read,
            Err(failure) => return self.fail(failure),
        };
        self.pages_read += 1;
        let Some(items) = items else {
            let message = format!(
                "SentinelOne answered GET {} without a list at {}",
                self.path, self.items_at
            );
            return self.fail(Failure::new(ErrorCode::UpstreamBadResponse, message));
        };
        match next_cursor(pagination.as_ref().and_then(|info| info.get("nextCursor"))) {
            None => self.finished = true,
            Some(cursor) if self.sent_cursors.contains(&cursor) => {
                log::warn(
                    "paging",
                    "SentinelOne repeated a cursor; treating the listing as complete",
                    serde_json::json!({ "path": self.path, "pages": self.pages_read }),
                );
                self.finished = true;
            }
            Some(cursor) => {
                self.sent_cursors.insert(cursor.clone());
                self.cursor = Some(cursor);
            }
        }
        if items.is_empty() {
            self.finished = true;
            return None;
        }
        Some(Ok(items))
    }
}

/// `pagination.nextCursor`, or `None` when it marks the last page (null, missing, `""`,
/// `"null"`, or not a string).
fn next_cursor(cursor: Option<&Value>) -> Option<String> {
    match cursor? {
        Value::String(cursor) if cursor.is_empty() || cursor == "null" => None,
        Value::String(cursor) => Some(percent_decode(cursor)),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Cursors are base64 and are sent back as a query value, which ureq percent-encodes. Other
/// clients (Rapid7's plugin) URL-decode `nextCursor` first because consoles have returned it
/// already encoded; decoding a plain base64 cursor changes nothing, as it never contains `%`.
/// Malformed escapes or non-UTF-8 results leave the cursor as it was.
fn percent_decode(cursor: &str) -> String {
    if !cursor.contains('%') {
        return cursor.to_string();
    }
    let bytes = cursor.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|pair| std::str::from_utf8(pair).ok())
                .and_then(|pair| u8::from_str_radix(pair, 16).ok());
            match hex {
                Some(byte) => {
                    decoded.push(byte);
                    index += 3;
                    continue;
                }
                None => return cursor.to_string(),
            }
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8(decoded).unwrap_or_else(|_| cursor.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::test_server::{Reply, TestServer, test_client};

    fn page(items: &[u32], cursor: Value) -> Reply {
        Reply::json(
            200,
            json!({ "data": items, "pagination": { "totalItems": 0, "nextCursor": cursor } }),
        )
    }

    fn collect(server: &TestServer, max_pages: usize) -> (Vec<Vec<u32>>, Option<Failure>) {
        let client = test_client(server);
        let mut pages = Vec::new();
        let mut failure = None;
        let query = vec![("osTypes", "windows".to_string())];
        for result in client
            .pages("/threats", query, "/data")
            .with_max_pages(max_pages)
        {
            match result {
                Ok(items) => pages.push(
                    items
                        .iter()
                        .map(|item| u32::try_from(item.as_u64().unwrap()).unwrap())
                        .collect(),
                ),
                Err(f) => failure = Some(f),
            }
        }
        (pages, failure)
    }

    #[test]
    fn walks_cursors_and_keeps_filters_on_every_page() {
        let server = TestServer::start(vec![
            page(&[1, 2], json!("YWJj")),
            page(&[3], json!("ZGVm")),
            page(&[4], Value::Null),
        ]);
        let (pages, failure) = collect(&server, MAX_PAGES);
        assert_eq!(pages, [vec![1, 2], vec![3], vec![4]]);
        assert!(failure.is_none());
        let requests = server.requests();
        let queries: Vec<String> = requests.iter().map(|r| r.query_string()).collect();
        assert_eq!(
            queries,
            [
                "osTypes=windows&limit=1000",
                "osTypes=windows&limit=1000&cursor=YWJj",
                "osTypes=windows&limit=1000&cursor=ZGVm",
            ]
        );
        assert!(requests.iter().all(|r| r.path == "/web/api/v2.1/threats"));
    }

    #[test]
    fn every_end_of_list_marker_stops() {
        let markers = [
            ("null", page(&[1], Value::Null)),
            ("empty", page(&[1], json!(""))),
            ("\"null\"", page(&[1], json!("null"))),
            (
                "missing",
                Reply::json(
                    200,
                    json!({ "data": [1], "pagination": { "totalItems": 1 } }),
                ),
            ),
            ("no pagination", Reply::json(200, json!({ "data": [1] }))),
        ];
        for (name, last) in markers {
            let server = TestServer::start(vec![last]);
            let (pages, failure) = collect(&server, MAX_PAGES);
            assert_eq!(pages, [vec![1]], "{name}");
            assert!(failure.is_none(), "{name}");
            assert_eq!(server.requests().len(), 1, "{name}");
        }
    }

    #[test]
    fn a_repeated_cursor_stops() {
        let server = TestServer::start(vec![
            page(&[1], json!("A")),
            page(&[2], json!("B")),
            page(&[3], json!("A")),
        ]);
        let (pages, failure) = collect(&server, MAX_PAGES);
        assert_eq!(pages, [vec![1], vec![2], vec![3]]);
        assert!(failure.is_none());
        assert_eq!(server.requests().len(), 3);
    }

    #[test]
    fn an_empty_page_stops_even_with_a_cursor() {
        let server = TestServer::start(vec![page(&[1], json!("A")), page(&[], json!("B"))]);
        let (pages, failure) = collect(&server, MAX_PAGES);
        assert_eq!(pages, [vec![1]]);
        assert!(failure.is_none());
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn the_page_cap_is_a_bad_response() {
        let server = TestServer::start(vec![
            page(&[1], json!("A")),
            page(&[2], json!("B")),
            page(&[3], json!("C")),
        ]);
        let (pages, failure) = collect(&server, 2);
        assert_eq!(pages, [vec![1], vec![2]]);
        assert_eq!(failure.unwrap().code, ErrorCode::UpstreamBadResponse);
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn nested_items_and_missing_lists() {
        let server = TestServer::start(vec![
            Reply::json(
                200,
                json!({ "data": { "sites": [{"id": "1"}] }, "pagination": { "nextCursor": null } }),
            ),
            Reply::json(200, json!({ "data": {} })),
        ]);
        let client = test_client(&server);
        let sites: Vec<_> = client.pages("/sites", vec![], "/data/sites").collect();
        assert_eq!(sites, [Ok(vec![json!({"id": "1"})])]);
        let broken: Vec<_> = client.pages("/sites", vec![], "/data/sites").collect();
        assert_eq!(broken.len(), 1);
        assert_eq!(
            broken[0].as_ref().unwrap_err().code,
            ErrorCode::UpstreamBadResponse
        );
    }

    #[test]
    fn a_failed_page_ends_the_walk() {
        let server = TestServer::start(vec![
            page(&[1], json!("A")),
            Reply::json(
                400,
                json!({"errors": [{"code": 4000010, "title": "Validation Error"}]}),
            ),
        ]);
        let (pages, failure) = collect(&server, MAX_PAGES);
        assert_eq!(pages, [vec![1]]);
        let failure = failure.unwrap();
        assert_eq!(failure.code, ErrorCode::UpstreamRejected);
        assert_eq!(failure.upstream_code, Some(4000010));
    }

    #[test]
    fn cursors_are_sent_back_decoded() {
        assert_eq!(percent_decode("YWJj"), "YWJj");
        assert_eq!(percent_decode("YW%3D%3D"), "YW==");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("cut%3"), "cut%3");
        assert_eq!(percent_decode("%FF"), "%FF");
        let server = TestServer::start(vec![page(&[1], json!("a+b/c%3D")), page(&[], Value::Null)]);
        collect(&server, MAX_PAGES);
        // On the wire the cursor is encoded exactly once; the server decodes it to the original.
        let second = &server.requests()[1];
        assert_eq!(second.query_value("cursor").as_deref(), Some("a+b/c="));
        assert!(second.target.contains("cursor=a%2Bb%2Fc%3D"));
    }
}
