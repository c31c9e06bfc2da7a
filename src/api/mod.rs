//! The SentinelOne management API v2.1 client: one HTTP agent, retries, rate limiting, cursor
//! paging, parallel workers and query batching.
//!
//! What it owns:
//! - [`ApiClient`] (in `client`): the single `ureq::Agent` (TLS, proxy, timeouts, no redirects),
//!   the `Authorization: ApiToken …` header, the request loop and the run's request metrics;
//! - `classify`: the pure mapping of an HTTP status, `Retry-After` and body (or a transport
//!   error) to success, retry or give-up with a [`Failure`](crate::error::Failure);
//! - `retry`: the backoff policy and the [`Sleeper`] seam that lets tests skip real sleeps;
//! - `rate`: the request-rate limiter shared by all workers, and SentinelOne's per-endpoint-family
//!   limits ([`FAMILY_LIMITS`]);
//! - `page` ([`Pages`]): cursor paging;
//! - `pool`: [`ApiClient::parallel`], the scoped worker pool;
//! - `batch`: splitting many values into query parameters that keep URLs short.
//!
//! What it does not own: which endpoints exist and what their bodies mean (the actions), error
//! codes and exit codes (`error`), the hostname rules (`connection`), and redaction of what is
//! printed (`redact`; this module simply never puts the token into a message or a log line).

mod batch;
mod classify;
mod client;
mod page;
mod pool;
mod rate;
mod retry;
#[cfg(test)]
mod test_server;

pub use batch::{QUERY_VALUES_BUDGET, chunk_for_query, join_csv};
pub use client::{ApiClient, ClientSettings, DEFAULT_MAX_RESPONSE_BYTES, Metrics, TokenDetails};
pub use page::{MAX_PAGES, PAGE_LIMIT, Pages};
pub use rate::{FAMILY_LIMITS, FamilyLimit, family_of};
pub use retry::{RecordingSleeper, Sleeper, ThreadSleeper};
