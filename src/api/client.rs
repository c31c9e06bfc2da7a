//! [`ApiClient`]: the one HTTP agent of a run and the request loop around it.
//!
//! It owns the agent's settings (TLS roots, proxy, timeouts, no redirects, user agent), the
//! `Authorization` header, the attempt loop (rate slot → send → classify → back off), the
//! run deadline and the request metrics. It does not interpret what endpoints return beyond
//! "JSON or not" (the actions do), and never writes the token into a message or a log line.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Proxy, ProxyProtocol};

use super::classify::{Outcome, classify_response_as, classify_transport};
use super::page::Pages;
use super::pool::run_parallel;
use super::rate::{RateLimiter, family_of};
use super::retry::{RetryCause, RetryDecision, RetryPolicy, RetryState, Sleeper, ThreadSleeper};
use crate::connection::{BaseUrl, ConnectionConfig, Secret};
use crate::error::{ErrorCode, Failure};
use crate::log;

/// Largest response body read by default (32 MiB); a larger one is `upstream.bad_response`.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// The connect phase never waits longer than this, even with a long request timeout: a console
/// that does not accept a TCP connection in 10 s is better retried than waited for.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes read from a non-2xx body: S1 error bodies are tiny, and the status alone still
/// classifies the answer when a proxy sends a large HTML page instead.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// Largest CA bundle file read (1 MiB): a PEM bundle of every public root is about 250 KB.
const MAX_CA_BUNDLE_BYTES: u64 = 1024 * 1024;

/// The longest URL the HTTP stack accepts: the `http` crate refuses a URI longer than
/// `u16::MAX - 1` bytes (`http` 1.x, `src/uri/mod.rs`, `MAX_LEN`), and ureq 3 panics on that
/// refusal when it appends query parameters, so the client checks the length itself first.
const MAX_URL_BYTES: usize = (u16::MAX - 1) as usize;

/// Characters percent-encoded in a query key or value: exactly ureq's own `ENCODED_IN_QUERY`
/// (`ureq` 3.5 `src/query.rs`), so building the query here sends the bytes ureq's
/// `query_pairs` sent before.
const QUERY_ENCODED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'$')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'+')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Characters percent-encoded in an API path (ids from answers end up there): those a URI path
/// cannot carry. `/` and `%` stay, the path being built by the actions.
const PATH_ENCODED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Everything the client needs, resolved from the connection configuration.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub base: BaseUrl,
    pub token: Secret,
    pub verify_tls: bool,
    /// Trusted roots as PEM text, or the path of a PEM file. Replaces the built-in roots.
    pub ca_bundle: Option<String>,
    /// Proxy URL; `None` means the standard proxy environment variables.
    pub proxy: Option<String>,
    /// Timeout of one attempt, from connecting to the last byte of the body; never past the
    /// run deadline.
    pub request_timeout: Duration,
    pub max_retries: u32,
    /// Attempts per second across all workers; zero or less means unlimited.
    pub requests_per_second: f64,
    pub max_concurrency: usize,
    /// No attempt starts after this instant.
    pub deadline: Option<Instant>,
    pub max_response_bytes: u64,
}

impl ClientSettings {
    /// Resolves the shared connection parameters (already validated against the manifest).
    /// A hostname that breaks the rules of DESIGN §4 is `config.invalid` on `config.hostname`.
    pub fn from_config(
        config: &ConnectionConfig,
        deadline: Option<Instant>,
    ) -> Result<Self, Failure> {
        let base = BaseUrl::parse(&config.hostname).map_err(|reason| {
            Failure::config_invalid(
                "config.hostname",
                format!("The hostname is not usable: {reason}"),
            )
        })?;
        let non_empty = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        };
        Ok(Self {
            base,
            token: config.api_token.clone(),
            verify_tls: config.verify_tls,
            ca_bundle: non_empty(&config.ca_bundle),
            proxy: non_empty(&config.proxy),
            request_timeout: Duration::from_secs(config.request_timeout_seconds.max(1)),
            max_retries: config.max_retries,
            requests_per_second: config.requests_per_second,
            max_concurrency: usize::try_from(config.max_concurrency.max(1)).unwrap_or(1),
            deadline,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }
}

/// Requests made so far by one client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Metrics {
    /// Every attempt sent, retries included.
    pub http_requests: u64,
    /// Attempts that were retries of an earlier one.
    pub retries: u64,
}

/// What SentinelOne says about the API token (`POST /users/api-token-details`, answered
/// `{"data": {"createdAt", "expiresAt"}}`: SW24 `UsersApi.md`, see
/// `reference/sentinelone-api.md` "Token check / expiry"). Either date may be missing or null
/// in an answer; `None` is "not reported", never an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenDetails {
    /// `None` when the console does not say when the token was made.
    pub created_at: Option<String>,
    /// `None` when the console reports no expiry.
    pub expires_at: Option<String>,
}

#[derive(Clone, Copy, Debug)]
enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Delete => "DELETE",
        }
    }
}

/// The SentinelOne API client of one run. `Send + Sync`: worker threads share it by reference.
pub struct ApiClient {
    agent: Agent,
    base: BaseUrl,
    token: Secret,
    /// `ApiToken <token>`, built once.
    authorization: Secret,
    policy: RetryPolicy,
    limiter: RateLimiter,
    request_timeout: Duration,
    max_concurrency: usize,
    deadline: Option<Instant>,
    max_response_bytes: u64,
    sleeper: Arc<dyn Sleeper>,
    http_requests: AtomicU64,
    retries: AtomicU64,
    /// 429 answers seen, and how many of them carried `Retry-After` (`s1-actions probe`
    /// reports whether the console sends it: no source says whether it does).
    rate_limited: AtomicU64,
    rate_limited_with_retry_after: AtomicU64,
}

impl ApiClient {
    /// Builds the agent. A CA bundle that cannot be read or holds no certificate is
    /// `config.invalid` on `config.ca_bundle`; an unusable proxy URL on `config.proxy`.
    pub fn new(settings: ClientSettings) -> Result<Self, Failure> {
        let mut tls = TlsConfig::builder().disable_verification(!settings.verify_tls);
        if let Some(bundle) = &settings.ca_bundle {
            // ureq (with rustls) cannot add roots to its built-in Mozilla set, so a bundle
            // replaces it: it must hold every root the console's chain needs.
            tls = tls.root_certs(RootCerts::new_with_certs(&load_ca_bundle(bundle)?));
        }
        let proxy = if is_loopback(&settings.base) {
            // The simulator and tests live on loopback; an environment proxy must not capture
            // them (ureq has no loopback exemption of its own).
            None
        } else if let Some(url) = &settings.proxy {
            Some(parse_proxy(url)?)
        } else {
            Proxy::try_from_env()
        };
        let config = Agent::config_builder()
            // Non-2xx answers come back as responses, not errors: their SentinelOne error body
            // and Retry-After header are needed to classify and report them.
            .http_status_as_error(false)
            .timeout_global(Some(settings.request_timeout))
            .timeout_connect(Some(settings.request_timeout.min(MAX_CONNECT_TIMEOUT)))
            // Never follow redirects: one must never carry the token to another host, and the
            // API has no reason to redirect (a 3xx is reported as a bad response).
            .max_redirects(0)
            .user_agent(concat!("s1-actions/", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            .tls_config(tls.build())
            .proxy(proxy)
            .build();
        let authorization = Secret::new(format!("ApiToken {}", settings.token.expose()));
        if ureq::http::HeaderValue::from_str(authorization.expose()).is_err() {
            // Checked here, once: ureq would refuse every request, and the token is never quoted.
            return Err(Failure::config_invalid(
                "config.api_token",
                "The API token contains characters an HTTP header cannot carry (line breaks or control characters)",
            ));
        }
        Ok(Self {
            agent: config.into(),
            base: settings.base,
            token: settings.token,
            authorization,
            policy: RetryPolicy::new(settings.max_retries),
            limiter: RateLimiter::new(settings.requests_per_second),
            request_timeout: settings.request_timeout,
            max_concurrency: settings.max_concurrency.max(1),
            deadline: settings.deadline,
            max_response_bytes: settings.max_response_bytes,
            sleeper: Arc::new(ThreadSleeper),
            http_requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            rate_limited_with_retry_after: AtomicU64::new(0),
        })
    }

    /// Replaces the sleeper used for backoff and rate-limit waits (tests record instead).
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// `GET` an API path such as `/restrictions` with query parameters.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        self.call(Method::Get, path, query, None)
    }

    /// As [`ApiClient::get`], reading the answer as `T`: only the fields `T` names are read,
    /// and no JSON tree is built. An answer of another shape is `upstream.bad_response`.
    pub fn get_as<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, Failure> {
        self.call(Method::Get, path, query, None)
    }

    /// `POST` a JSON body to an API path.
    pub fn post<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<Value, Failure> {
        self.post_as(path, body)
    }

    /// As [`ApiClient::post`], reading the answer as `T` (see [`ApiClient::get_as`]).
    pub fn post_as<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        let bytes = encode(path, body)?;
        self.call(Method::Post, path, &[], Some(&bytes))
    }

    /// `DELETE` with a JSON body, as SentinelOne's bulk deletes expect.
    pub fn delete<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<Value, Failure> {
        let bytes = encode(path, body)?;
        self.call(Method::Delete, path, &[], Some(&bytes))
    }

    /// Cursor pages of a list endpoint; items are read at the JSON pointer `items_at`
    /// (`/data`, or `/data/sites` for `/sites`). See [`Pages`].
    pub fn pages<'a>(
        &'a self,
        path: &str,
        query: Vec<(&'static str, String)>,
        items_at: &'static str,
    ) -> Pages<'a> {
        Pages::new(self, path, query, items_at)
    }

    /// As [`ApiClient::pages`], each item read as `T` (see [`ApiClient::get_as`]): for large
    /// listings where the action needs a few fields of each item.
    pub fn pages_as<'a, T: DeserializeOwned>(
        &'a self,
        path: &str,
        query: Vec<(&'static str, String)>,
        items_at: &'static str,
    ) -> Pages<'a, T> {
        Pages::new(self, path, query, items_at)
    }

    /// Runs `work` over `items` on up to `max_concurrency` scoped threads; results are in input
    /// order. Once a result is a failure whose code ends the run, no further item is started
    /// and the items not started get a clone of that failure.
    pub fn parallel<T: Sync, R: Send>(
        &self,
        items: &[T],
        work: impl Fn(&T) -> Result<R, Failure> + Sync,
    ) -> Vec<Result<R, Failure>> {
        run_parallel(self.max_concurrency, items, work)
    }

    pub fn metrics(&self) -> Metrics {
        Metrics {
            http_requests: self.http_requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }

    /// How many 429 answers this client has seen, and how many of them carried `Retry-After`.
    pub fn rate_limited_answers(&self) -> (u64, u64) {
        (
            self.rate_limited.load(Ordering::Relaxed),
            self.rate_limited_with_retry_after.load(Ordering::Relaxed),
        )
    }

    /// Creation and expiry of the token (`POST /users/api-token-details`).
    pub fn token_details(&self) -> Result<TokenDetails, Failure> {
        let body = json!({ "data": { "apiToken": self.token.expose() } });
        let answer = self.post("/users/api-token-details", &body)?;
        // The dates are optional; an answer without its `data` object is not this endpoint's.
        let data = answer
            .get("data")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                Failure::new(
                    ErrorCode::UpstreamBadResponse,
                    "SentinelOne answered POST /users/api-token-details without a data object",
                )
            })?;
        let field = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_string);
        Ok(TokenDetails {
            created_at: field("createdAt"),
            expires_at: field("expiresAt"),
        })
    }

    /// The instant after which no attempt starts, if the run has a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn deadline_passed(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// The attempt loop: wait for a rate slot, send, classify, and retry within the budget and
    /// the deadline. `body` is serialized once by the caller and resent as the same bytes.
    fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<T, Failure> {
        let endpoint = format!("{} {path}", method.as_str());
        let url = self.url(&endpoint, path, query)?;
        let family = family_of(path);
        let mut state = RetryState::new(Instant::now(), self.limiter.family_interval(family));
        let mut attempts: u32 = 0;
        // The failure being retried, if the next attempt is a retry.
        let mut retrying: Option<Failure> = None;
        loop {
            if !self.wait_for_slot(family) {
                // Before a retry, the failure being retried says what actually went wrong.
                return Err(match retrying.take() {
                    Some(failure) => self.give_up(
                        &endpoint,
                        path,
                        failure,
                        attempts,
                        RetryDecision::PastDeadline,
                    ),
                    None => Failure::new(
                        ErrorCode::RunDeadline,
                        "The run deadline passed before this request could start",
                    ),
                });
            }
            if retrying.take().is_some() {
                self.retries.fetch_add(1, Ordering::Relaxed);
            }
            attempts += 1;
            let (after, failure) = match self.attempt(method, &url, body, &endpoint) {
                Ok(value) => return Ok(value),
                Err(Outcome::GiveUp(failure)) => return Err(failure),
                Err(Outcome::Retry { after, failure }) => (after, failure),
                Err(Outcome::Success(_)) => {
                    return Err(Failure::internal(format!(
                        "{endpoint} was classified as a success without a body"
                    )));
                }
            };
            let cause = if failure.code == ErrorCode::UpstreamRateLimited {
                RetryCause::Throttled
            } else {
                RetryCause::Failed
            };
            let now = Instant::now();
            let decision =
                self.policy
                    .decide(&state, cause, after, now, self.deadline, &mut rand::rng());
            let RetryDecision::After(delay) = decision else {
                return Err(self.give_up(&endpoint, path, failure, attempts, decision));
            };
            state.count(cause);
            log::warn(
                "retry",
                &format!("Retrying {endpoint}: {}", failure.code),
                json!({
                    "status": failure.http_status,
                    "code": failure.code.as_str(),
                    "attempt": attempts + 1,
                    "delay_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "path": path,
                }),
            );
            if cause == RetryCause::Throttled {
                // The console said "slow down" to this token: every worker's next slot of the
                // family (of everything, outside the families) waits, this retry's included, so
                // the wait happens in `wait_for_slot`.
                self.limiter.hold(family, now + delay);
            } else {
                self.sleeper.sleep(delay);
            }
            retrying = Some(failure);
        }
    }

    /// Takes the next rate slot of `family` (see `rate`) and waits for it; `false` when the
    /// attempt could only start at or after the run deadline (nothing is waited for then).
    fn wait_for_slot(&self, family: Option<usize>) -> bool {
        let now = Instant::now();
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            return false;
        }
        let slot = self.limiter.reserve(family, now);
        if self.deadline.is_some_and(|deadline| slot >= deadline) {
            return false;
        }
        let wait = slot.saturating_duration_since(now);
        if !wait.is_zero() {
            self.sleeper.sleep(wait);
        }
        true
    }

    /// Logs and shapes the failure reported when retries end without success.
    fn give_up(
        &self,
        endpoint: &str,
        path: &str,
        mut failure: Failure,
        attempts: u32,
        decision: RetryDecision,
    ) -> Failure {
        let reason = match decision {
            RetryDecision::PastDeadline => "the run deadline leaves no time for another attempt",
            _ if failure.code == ErrorCode::UpstreamRateLimited && self.policy.max_retries > 0 => {
                "SentinelOne kept throttling past the retry time budget"
            }
            _ => "no retries left",
        };
        log::warn(
            "give_up",
            &format!("Giving up on {endpoint}: {reason}"),
            json!({
                "status": failure.http_status,
                "code": failure.code.as_str(),
                "attempts": attempts,
                "path": path,
            }),
        );
        if attempts > 1 {
            failure.message = format!("{}; gave up after {attempts} attempts", failure.message);
        }
        failure
    }

    /// One attempt: send, read the body within its limit, classify; a success is read as `T`,
    /// anything else is the retry or failure outcome.
    fn attempt<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&[u8]>,
        endpoint: &str,
    ) -> Result<T, Outcome> {
        let (timeout, cut_by_deadline) = self.attempt_timeout(Instant::now());
        let result = self.send_and_read(method, url, body, endpoint, timeout);
        match result {
            Err(Outcome::Retry { failure, .. })
                if cut_by_deadline && failure.code == ErrorCode::NetworkTimeout =>
            {
                Err(Outcome::GiveUp(Failure::new(
                    ErrorCode::RunDeadline,
                    format!(
                        "The run deadline passed while {endpoint} was waiting for SentinelOne's answer"
                    ),
                )))
            }
            other => other,
        }
    }

    /// The timeout of an attempt starting at `now`: the request timeout, cut to the time left
    /// before the run deadline; `true` when the deadline is what bounds it.
    fn attempt_timeout(&self, now: Instant) -> (Duration, bool) {
        match self.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(now);
                if left < self.request_timeout {
                    // A zero timeout would mean "none" to nobody, but keep it positive anyway.
                    (left.max(Duration::from_millis(1)), true)
                } else {
                    (self.request_timeout, false)
                }
            }
            None => (self.request_timeout, false),
        }
    }

    fn send_and_read<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&[u8]>,
        endpoint: &str,
        timeout: Duration,
    ) -> Result<T, Outcome> {
        self.http_requests.fetch_add(1, Ordering::Relaxed);
        let body = body.unwrap_or_default();
        let sent = match method {
            Method::Get => self.prepare(self.agent.get(url), timeout).call(),
            Method::Post => self
                .prepare(self.agent.post(url), timeout)
                .content_type("application/json")
                .send(body),
            Method::Delete => self
                .prepare(self.agent.delete(url).force_send_body(), timeout)
                .content_type("application/json")
                .send(body),
        };
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => return Err(classify_transport(endpoint, &error)),
        };
        let status = response.status().as_u16();
        let success = response.status().is_success();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        if status == 429 {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
            if retry_after.is_some() {
                self.rate_limited_with_retry_after
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        let limit = if success {
            self.max_response_bytes
        } else {
            ERROR_BODY_LIMIT.min(self.max_response_bytes)
        };
        let mut bytes = Vec::new();
        let read = response
            .body_mut()
            .with_config()
            .limit(limit)
            .reader()
            .read_to_end(&mut bytes)
            .map_err(ureq::Error::from);
        match read {
            Ok(_) => {}
            Err(ureq::Error::BodyExceedsLimit(_)) if success => {
                return Err(Outcome::GiveUp(
                    Failure::new(
                        ErrorCode::UpstreamBadResponse,
                        format!(
                            "SentinelOne answered {endpoint} with more than {limit} bytes, the most this client reads"
                        ),
                    )
                    .with_http_status(status),
                ));
            }
            Err(error) if success => return Err(classify_transport(endpoint, &error)),
            // The status decides a failed answer; its body only adds detail.
            Err(_) => bytes.clear(),
        }
        classify_response_as(
            endpoint,
            status,
            retry_after.as_deref(),
            &bytes,
            SystemTime::now(),
        )
    }

    /// Adds the header every request carries and this attempt's timeouts.
    fn prepare<B>(
        &self,
        request: ureq::RequestBuilder<B>,
        timeout: Duration,
    ) -> ureq::RequestBuilder<B> {
        request
            .header("Authorization", self.authorization.expose())
            .config()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(MAX_CONNECT_TIMEOUT)))
            .build()
    }

    /// The full URL of `path` with `query`, encoded as ureq's `query_pairs` would. A URL the
    /// HTTP stack cannot carry is a failure here, never a panic inside ureq: too long is
    /// `config.invalid` (the values that make a URL long come from the configuration, such as
    /// a `query` or a list of scope ids; object values are batched to keep URLs short).
    fn url(&self, endpoint: &str, path: &str, query: &[(&str, String)]) -> Result<String, Failure> {
        let path: Cow<'_, str> = percent_encoding::utf8_percent_encode(path, PATH_ENCODED).into();
        let mut url = self.base.api(&path);
        for (index, (name, value)) in query.iter().enumerate() {
            url.push(if index == 0 { '?' } else { '&' });
            url.extend(percent_encoding::utf8_percent_encode(name, QUERY_ENCODED));
            url.push('=');
            url.extend(percent_encoding::utf8_percent_encode(value, QUERY_ENCODED));
        }
        if url.len() > MAX_URL_BYTES {
            return Err(Failure::new(
                ErrorCode::ConfigInvalid,
                format!(
                    "The request {endpoint} would need a URL of {} bytes, more than the {MAX_URL_BYTES} an HTTP request can carry; shorten the configured query or filters",
                    url.len()
                ),
            ));
        }
        if let Err(error) = ureq::http::Uri::try_from(url.as_str()) {
            return Err(Failure::internal(format!(
                "Could not build a valid URL for {endpoint} ({error})"
            )));
        }
        Ok(url)
    }
}

/// `body` as compact JSON, encoded once: every retry resends these bytes.
fn encode<B: Serialize + ?Sized>(path: &str, body: &B) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(body).map_err(|error| {
        Failure::internal(format!("Could not encode the body for {path}: {error}"))
    })
}

/// Certificates from PEM text (recognised by its `-----BEGIN` marker) or from a PEM file.
fn load_ca_bundle(bundle: &str) -> Result<Vec<Certificate<'static>>, Failure> {
    let invalid = |message: String| Failure::config_invalid("config.ca_bundle", message);
    let pem: Cow<'_, [u8]> = if bundle.contains("-----BEGIN") {
        Cow::Borrowed(bundle.as_bytes())
    } else {
        let path = bundle.trim();
        Cow::Owned(
            read_ca_file(path)
                .map_err(|reason| invalid(format!("The CA bundle file '{path}' {reason}")))?,
        )
    };
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(certificate)) => certificates.push(certificate),
            Ok(_) => {}
            Err(error) => return Err(invalid(format!("The CA bundle is not valid PEM ({error})"))),
        }
    }
    if certificates.is_empty() {
        return Err(invalid("The CA bundle contains no PEM certificate".into()));
    }
    Ok(certificates)
}

/// Reads a CA bundle file without ever waiting: only a regular file of at most
/// [`MAX_CA_BUNDLE_BYTES`] is read. A FIFO would block `open` until a writer appears and a device
/// such as `/dev/zero` never ends, so the path is checked before opening, opened non-blocking
/// (a FIFO swapped in after the check then fails or reads empty instead of hanging), and the
/// opened file is checked again. The error is the end of a sentence naming the file.
fn read_ca_file(path: &str) -> Result<Vec<u8>, String> {
    let not_regular = || "is not a regular file".to_string();
    let too_large = || format!("is larger than {MAX_CA_BUNDLE_BYTES} bytes");
    let metadata =
        std::fs::metadata(path).map_err(|error| format!("could not be read: {error}"))?;
    if !metadata.is_file() {
        return Err(not_regular());
    }
    if metadata.len() > MAX_CA_BUNDLE_BYTES {
        return Err(too_large());
    }
    let file =
        open_without_blocking(path).map_err(|error| format!("could not be read: {error}"))?;
    let opened = file
        .metadata()
        .map_err(|error| format!("could not be read: {error}"))?;
    if !opened.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::new();
    file.take(MAX_CA_BUNDLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("could not be read: {error}"))?;
    if bytes.len() as u64 > MAX_CA_BUNDLE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Opens `path` for reading with `O_NONBLOCK` where the flag is available, so opening a FIFO
/// returns at once. On regular files the flag changes nothing.
fn open_without_blocking(path: &str) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// A configured proxy; only HTTP CONNECT proxies (`http://`, `https://`) are supported.
/// The URL is not quoted in errors because it may carry credentials.
fn parse_proxy(url: &str) -> Result<Proxy, Failure> {
    let invalid = || {
        Failure::config_invalid(
            "config.proxy",
            "The proxy URL is not valid; use http://host:port or https://host:port",
        )
    };
    let proxy = Proxy::new(url).map_err(|_| invalid())?;
    match proxy.protocol() {
        ProxyProtocol::Http | ProxyProtocol::Https => Ok(proxy),
        _ => Err(invalid()),
    }
}

fn is_loopback(base: &BaseUrl) -> bool {
    match url::Url::parse(base.as_str())
        .ok()
        .and_then(|url| url.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;
    use crate::api::RecordingSleeper;
    use crate::api::test_server::{Reply, TEST_TOKEN, TestServer, test_settings};

    fn client_with(settings: ClientSettings) -> (ApiClient, Arc<RecordingSleeper>) {
        let sleeper = Arc::new(RecordingSleeper::new());
        let client = ApiClient::new(settings)
            .unwrap()
            .with_sleeper(Arc::clone(&sleeper) as Arc<dyn Sleeper>);
        (client, sleeper)
    }

    fn client_of(server: &TestServer) -> (ApiClient, Arc<RecordingSleeper>) {
        client_with(test_settings(server))
    }

    fn ok_body() -> Reply {
        Reply::json(200, json!({ "data": { "affected": 1 } }))
    }

    fn assert_token_absent(failure: &Failure) {
        let text = serde_json::to_string(failure).unwrap();
        assert!(!text.contains(TEST_TOKEN), "{text}");
        assert!(!text.contains("ApiToken"), "{text}");
    }

    #[test]
    fn client_is_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ApiClient>();
    }

    #[test]
    fn requests_carry_auth_json_headers_and_compact_bodies() {
        let server = TestServer::start(vec![ok_body(), ok_body(), ok_body()]);
        let (client, _) = client_of(&server);
        let query = [("ids", "1,2".to_string()), ("tenant", "true".to_string())];
        client.get("/restrictions", &query).unwrap();
        let body = json!({ "filter": { "ids": ["1"] }, "data": { "value": "x" } });
        let answer = client.post("/restrictions", &body).unwrap();
        assert_eq!(answer, json!({ "data": { "affected": 1 } }));
        client.delete("/restrictions", &body).unwrap();

        let requests = server.requests();
        let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["GET", "POST", "DELETE"]);
        let version = env!("CARGO_PKG_VERSION");
        for request in &requests {
            assert_eq!(request.path, "/web/api/v2.1/restrictions");
            assert_eq!(
                request.header("authorization"),
                Some(format!("ApiToken {TEST_TOKEN}").as_str())
            );
            assert_eq!(request.header("accept"), Some("application/json"));
            assert_eq!(
                request.header("user-agent"),
                Some(format!("s1-actions/{version}").as_str())
            );
        }
        assert_eq!(requests[0].query_value("ids").as_deref(), Some("1,2"));
        assert_eq!(requests[0].query_value("tenant").as_deref(), Some("true"));
        assert!(requests[0].body.is_empty());
        for request in &requests[1..] {
            assert_eq!(request.header("content-type"), Some("application/json"));
            assert_eq!(request.body, serde_json::to_vec(&body).unwrap());
        }
        assert_eq!(
            client.metrics(),
            Metrics {
                http_requests: 3,
                retries: 0
            }
        );
    }

    #[test]
    fn retries_on_rate_limit_and_honours_retry_after() {
        let server = TestServer::start(vec![
            Reply::json(429, json!({ "errors": [{ "title": "Too Many Requests" }] }))
                .with_header("Retry-After", "3"),
            ok_body(),
        ]);
        let (client, sleeper) = client_of(&server);
        let answer = client.get("/threats", &[]).unwrap();
        assert_eq!(answer["data"]["affected"], 1);
        assert_eq!(
            client.metrics(),
            Metrics {
                http_requests: 2,
                retries: 1
            }
        );
        // The retry waits for a slot held 3 s after the 429 (less the real time spent since).
        let slept = sleeper.slept();
        assert_eq!(slept.len(), 1, "{slept:?}");
        assert!(
            slept[0] <= Duration::from_secs(3) && slept[0] > Duration::from_millis(2500),
            "{slept:?}"
        );
    }

    #[test]
    fn persistent_server_errors_give_up_after_max_retries() {
        let script = (0..5)
            .map(|_| {
                Reply::json(
                    503,
                    json!({ "errors": [{ "title": "Service Unavailable" }] }),
                )
            })
            .collect();
        let server = TestServer::start(script);
        let (client, sleeper) = client_of(&server);
        // `/restrictions` has no family limit: the only waits are the backoff's.
        let failure = client.get("/restrictions", &[]).unwrap_err();
        assert_eq!(failure.code, ErrorCode::UpstreamServerError);
        assert_eq!(failure.http_status, Some(503));
        assert!(failure.retryable);
        assert_eq!(
            failure.message,
            "SentinelOne failed GET /restrictions with HTTP 503: Service Unavailable; gave up after 3 attempts"
        );
        assert_eq!(server.requests().len(), 3);
        assert_eq!(
            client.metrics(),
            Metrics {
                http_requests: 3,
                retries: 2
            }
        );
        let slept = sleeper.slept();
        assert_eq!(slept.len(), 2);
        assert!(slept[0] <= Duration::from_millis(250) && slept[1] <= Duration::from_millis(500));
    }

    #[test]
    fn retried_post_resends_the_same_bytes() {
        let server =
            TestServer::start(vec![Reply::raw(502, "<html>bad gateway</html>"), ok_body()]);
        let (client, _) = client_of(&server);
        let body = json!({ "data": { "b": 2, "a": [1, 2] }, "filter": {} });
        client.post("/threats/mitigate/kill", &body).unwrap();
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].body, requests[1].body);
        assert_eq!(requests[1].json(), body);
    }

    #[test]
    fn a_dropped_connection_is_retried() {
        let server = TestServer::start(vec![Reply::Drop, ok_body()]);
        let (client, _) = client_of(&server);
        client.get("/agents", &[]).unwrap();
        assert_eq!(client.metrics().retries, 1);

        let server = TestServer::start(vec![Reply::Drop, Reply::Drop, Reply::Drop]);
        let (client, _) = client_of(&server);
        let failure = client.get("/agents", &[]).unwrap_err();
        assert_eq!(failure.code, ErrorCode::NetworkConnect);
        assert_eq!(server.requests().len(), 3);
        assert_token_absent(&failure);
    }

    #[test]
    fn a_refused_connection_is_retried_then_reported() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let server = TestServer::start(vec![]);
        let mut settings = test_settings(&server);
        settings.base = BaseUrl::parse(&format!("http://{addr}")).unwrap();
        let (client, sleeper) = client_with(settings);
        let failure = client.get("/groups", &[]).unwrap_err();
        assert_eq!(failure.code, ErrorCode::NetworkConnect);
        assert!(
            failure.message.contains("GET /groups"),
            "{}",
            failure.message
        );
        assert_eq!(client.metrics().http_requests, 3);
        assert_eq!(sleeper.slept().len(), 2);
    }

    #[test]
    fn rejected_token_is_not_retried() {
        let server = TestServer::start(vec![Reply::json(
            401,
            json!({ "errors": [{ "code": 4010010, "detail": null, "title": "Authentication Failed" }] }),
        )]);
        let (client, sleeper) = client_of(&server);
        let failure = client.get("/threats", &[]).unwrap_err();
        assert_eq!(failure.code, ErrorCode::AuthRejected);
        assert_eq!(failure.upstream_code, Some(4010010));
        assert!(
            failure.message.starts_with(
                "SentinelOne rejected the API token (HTTP 401: Authentication Failed)"
            )
        );
        assert_eq!(server.requests().len(), 1);
        assert!(sleeper.slept().is_empty());
        assert_eq!(client.metrics().retries, 0);
    }

    #[test]
    fn refusals_and_not_implemented_are_not_retried() {
        let server = TestServer::start(vec![
            Reply::json(
                400,
                json!({ "errors": [{ "code": 4000030, "title": "Already Exists Error" }] }),
            ),
            Reply::json(501, json!({})),
            Reply::raw(200, "{\"data\": [trunc"),
            Reply::raw(302, "").with_header("Location", "https://elsewhere.example/login"),
        ]);
        let (client, _) = client_of(&server);
        let codes: Vec<ErrorCode> = (0..4)
            .map(|_| client.get("/restrictions", &[]).unwrap_err().code)
            .collect();
        assert_eq!(
            codes,
            [
                ErrorCode::UpstreamRejected,
                ErrorCode::UpstreamServerError,
                ErrorCode::UpstreamBadResponse,
                ErrorCode::UpstreamBadResponse,
            ]
        );
        assert_eq!(server.requests().len(), 4);
        assert_eq!(client.metrics().retries, 0);
    }

    #[test]
    fn oversized_bodies_are_bad_responses() {
        let big = format!("{{\"data\":\"{}\"}}", "x".repeat(200));
        let server = TestServer::start(vec![
            Reply::raw(200, big.clone()),
            Reply::raw(200, big.clone()),
        ]);
        let mut settings = test_settings(&server);
        settings.max_response_bytes = 100;
        let (client, _) = client_with(settings);
        let failure = client.get("/threats", &[]).unwrap_err();
        assert_eq!(failure.code, ErrorCode::UpstreamBadResponse);
        assert!(
            failure.message.contains("more than 100 bytes"),
            "{}",
            failure.message
        );
        assert_eq!(server.requests().len(), 1);

        let mut settings = test_settings(&server);
        settings.max_response_bytes = big.len() as u64;
        let (client, _) = client_with(settings);
        assert!(
            client.get("/threats", &[]).is_ok(),
            "a body exactly at the limit is read"
        );
    }

    #[test]
    fn large_error_bodies_still_classify_by_status() {
        let server = TestServer::start(vec![Reply::raw(403, "x".repeat(100_000))]);
        let (client, _) = client_of(&server);
        let failure = client.get("/threats", &[]).unwrap_err();
        assert_eq!(failure.code, ErrorCode::AuthForbidden);
    }

    #[test]
    fn a_stalled_answer_times_out_and_is_retried() {
        let server = TestServer::start(vec![
            Reply::Stall(Duration::from_millis(400)),
            Reply::Stall(Duration::from_millis(400)),
        ]);
        let mut settings = test_settings(&server);
        settings.request_timeout = Duration::from_millis(150);
        settings.max_retries = 1;
        let (client, _) = client_with(settings);
        let failure = client.get("/threats", &[]).unwrap_err();
        assert_eq!(failure.code, ErrorCode::NetworkTimeout);
        assert_eq!(client.metrics().http_requests, 2);
    }

    #[test]
    fn tls_failures_are_not_retried() {
        // A plain-HTTP peer where TLS is expected: the handshake fails like a bad certificate.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let mut connections = 0;
            listener.set_nonblocking(false).unwrap();
            for stream in listener.incoming().take(1) {
                let mut stream = stream.unwrap();
                connections += 1;
                let mut hello = [0u8; 512];
                let _ = stream.read(&mut hello);
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            }
            connections
        });
        let server = TestServer::start(vec![]);
        let mut settings = test_settings(&server);
        settings.base = BaseUrl::parse(&format!("https://{addr}")).unwrap();
        let (client, sleeper) = client_with(settings);
        let failure = client.get("/threats", &[]).unwrap_err();
        assert_eq!(failure.code, ErrorCode::NetworkTls, "{}", failure.message);
        assert!(!failure.retryable);
        assert!(sleeper.slept().is_empty());
        assert_eq!(peer.join().unwrap(), 1);
        assert_eq!(client.metrics().http_requests, 1);
    }

    #[test]
    fn the_token_never_appears_in_failures() {
        let server = TestServer::start(vec![
            Reply::json(
                401,
                json!({ "errors": [{ "code": 4010010, "title": "Authentication Failed" }] }),
            ),
            Reply::json(
                403,
                json!({ "errors": [{ "code": 4030010, "title": "Forbidden" }] }),
            ),
            Reply::json(
                400,
                json!({ "errors": [{ "title": "Validation Error", "detail": "bad filter" }] }),
            ),
            Reply::json(500, json!({})),
            Reply::json(500, json!({})),
            Reply::json(500, json!({})),
            Reply::raw(200, "not json"),
            Reply::Drop,
            Reply::Drop,
            Reply::Drop,
        ]);
        let (client, _) = client_of(&server);
        for _ in 0..6 {
            let failure = client.post("/restrictions", &json!({})).unwrap_err();
            assert_token_absent(&failure);
        }
        let failure = client.token_details().unwrap_err();
        assert_token_absent(&failure);
    }

    #[test]
    fn deadline_stops_new_attempts_and_long_waits() {
        let server = TestServer::start(vec![
            Reply::json(429, json!({})).with_header("Retry-After", "30"),
        ]);
        let mut settings = test_settings(&server);
        settings.deadline = Some(Instant::now());
        let (client, _) = client_with(settings);
        assert!(client.deadline_passed());
        let failure = client.get("/threats", &[]).unwrap_err();
        assert_eq!(failure.code, ErrorCode::RunDeadline);
        assert_eq!(
            failure.message,
            "The run deadline passed before this request could start"
        );
        assert!(failure.retryable);
        assert_eq!(client.metrics().http_requests, 0);

        let mut settings = test_settings(&server);
        settings.deadline = Some(Instant::now() + Duration::from_secs(5));
        let (client, sleeper) = client_with(settings);
        assert!(!client.deadline_passed());
        let failure = client.get("/threats", &[]).unwrap_err();
        // Retry-After 30 s would end after the deadline: the 429 is reported at once.
        assert_eq!(failure.code, ErrorCode::UpstreamRateLimited);
        assert!(sleeper.slept().is_empty());
        assert_eq!(server.requests().len(), 1);

        // A retry whose rate slot falls after the deadline is not sent either.
        let server = TestServer::start(vec![
            Reply::json(503, json!({})).with_header("Retry-After", "0"),
        ]);
        let mut settings = test_settings(&server);
        settings.requests_per_second = 1.0;
        settings.deadline = Some(Instant::now() + Duration::from_millis(500));
        let (client, _) = client_with(settings);
        let failure = client.get("/threats", &[]).unwrap_err();
        assert_eq!(failure.code, ErrorCode::UpstreamServerError);
        assert_eq!(
            client.metrics(),
            Metrics {
                http_requests: 1,
                retries: 0
            }
        );
    }

    #[test]
    fn every_attempt_waits_for_a_rate_slot() {
        let server = TestServer::start(vec![
            Reply::json(503, json!({})).with_header("Retry-After", "0"),
            ok_body(),
            ok_body(),
        ]);
        let mut settings = test_settings(&server);
        settings.requests_per_second = 10.0;
        let (client, sleeper) = client_with(settings);
        // `/restrictions` has no family limit: only `requests_per_second` spaces it.
        client.get("/restrictions", &[]).unwrap();
        client.get("/restrictions", &[]).unwrap();
        // Three attempts at 10/s: the second and third wait for slots 100 ms and 200 ms after
        // the first (less the real time spent), plus the zero Retry-After wait.
        let slept = sleeper.slept();
        let waits: Vec<&Duration> = slept.iter().filter(|d| !d.is_zero()).collect();
        assert_eq!(waits.len(), 2, "{slept:?}");
        assert!(*waits[0] <= Duration::from_millis(100), "{slept:?}");
        assert!(*waits[1] <= Duration::from_millis(200), "{slept:?}");
        assert!(waits[1] > waits[0], "{slept:?}");
        assert_eq!(client.metrics().http_requests, 3);
    }

    #[test]
    fn parallel_requests_share_the_client_and_keep_order() {
        let script = (0..12).map(|_| ok_body()).collect();
        let server = TestServer::start(script);
        let (client, _) = client_of(&server);
        let ids: Vec<String> = (0..12).map(|i| format!("id-{i}")).collect();
        let results = client.parallel(&ids, |id| {
            client
                .get("/agents", &[("ids", id.clone())])
                .map(|_| id.clone())
        });
        let values: Vec<String> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(values, ids);
        assert_eq!(client.metrics().http_requests, 12);
    }

    #[test]
    fn token_details_sends_the_token_in_the_body() {
        let server = TestServer::start(vec![
            Reply::json(
                200,
                json!({ "data": { "createdAt": "2024-01-01T00:00:00Z", "expiresAt": "2025-01-01T00:00:00Z" } }),
            ),
            Reply::json(
                200,
                json!({ "data": { "createdAt": "2024-01-01T00:00:00Z", "expiresAt": null } }),
            ),
            Reply::json(
                200,
                json!({ "data": { "expiresAt": "2025-01-01T00:00:00Z" } }),
            ),
            Reply::json(200, json!({ "data": {} })),
            Reply::json(200, json!({ "data": null })),
        ]);
        let (client, _) = client_of(&server);
        assert_eq!(
            client.token_details().unwrap(),
            TokenDetails {
                created_at: Some("2024-01-01T00:00:00Z".into()),
                expires_at: Some("2025-01-01T00:00:00Z".into()),
            }
        );
        assert_eq!(client.token_details().unwrap().expires_at, None);
        // Either date may be missing: reported as unknown, not as a bad response.
        let details = client.token_details().unwrap();
        assert_eq!(details.created_at, None);
        assert_eq!(details.expires_at.as_deref(), Some("2025-01-01T00:00:00Z"));
        assert_eq!(
            client.token_details().unwrap(),
            TokenDetails {
                created_at: None,
                expires_at: None
            }
        );
        assert_eq!(
            client.token_details().unwrap_err().code,
            ErrorCode::UpstreamBadResponse
        );
        let request = &server.requests()[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/web/api/v2.1/users/api-token-details");
        assert_eq!(
            request.json(),
            json!({ "data": { "apiToken": TEST_TOKEN } })
        );
    }

    fn connection(hostname: &str) -> ConnectionConfig {
        ConnectionConfig {
            hostname: hostname.into(),
            api_token: Secret::new(TEST_TOKEN),
            verify_tls: true,
            ca_bundle: Some("  ".into()),
            proxy: Some(String::new()),
            request_timeout_seconds: 30,
            max_retries: 5,
            requests_per_second: 10.0,
            max_concurrency: 4,
            lookup_values_per_request: Default::default(),
        }
    }

    #[test]
    fn settings_from_config() {
        let settings =
            ClientSettings::from_config(&connection("usea1.sentinelone.net"), None).unwrap();
        assert_eq!(settings.base.as_str(), "https://usea1.sentinelone.net");
        assert_eq!(settings.request_timeout, Duration::from_secs(30));
        assert_eq!(settings.max_concurrency, 4);
        assert_eq!(settings.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
        assert_eq!(settings.ca_bundle, None);
        assert_eq!(settings.proxy, None);
        assert!(ApiClient::new(settings).is_ok());

        let failure =
            ClientSettings::from_config(&connection("http://usea1.sentinelone.net"), None)
                .unwrap_err();
        assert_eq!(failure.code, ErrorCode::ConfigInvalid);
        assert_eq!(failure.field.as_deref(), Some("config.hostname"));
    }

    #[test]
    fn bad_ca_bundles_and_proxies_are_config_errors() {
        let base = |settings: &mut ClientSettings| {
            settings.base = BaseUrl::parse("usea1.sentinelone.net").unwrap();
        };
        let server = TestServer::start(vec![]);
        let field_of = |edit: &dyn Fn(&mut ClientSettings)| {
            let mut settings = test_settings(&server);
            base(&mut settings);
            edit(&mut settings);
            ApiClient::new(settings).err().and_then(|failure| {
                assert_eq!(failure.code, ErrorCode::ConfigInvalid);
                failure.field
            })
        };
        let pem = "-----BEGIN CERTIFICATE-----\nMIIBCgKCAQEA\n-----END CERTIFICATE-----\n";
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), pem).unwrap();
        let path = file.path().display().to_string();

        assert_eq!(field_of(&|s| s.ca_bundle = Some(pem.into())), None);
        assert_eq!(field_of(&|s| s.ca_bundle = Some(path.clone())), None);
        assert_eq!(
            field_of(&|s| s.ca_bundle = Some("/no/such/bundle.pem".into())).as_deref(),
            Some("config.ca_bundle")
        );
        assert_eq!(
            field_of(&|s| s.ca_bundle =
                Some("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n".into()))
            .as_deref(),
            Some("config.ca_bundle")
        );
        assert_eq!(
            field_of(&|s| s.ca_bundle =
                Some("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".into()))
            .as_deref(),
            Some("config.ca_bundle")
        );
        assert_eq!(
            field_of(&|s| s.proxy = Some("http://proxy.internal:3128".into())),
            None
        );
        assert_eq!(
            field_of(&|s| s.proxy = Some("http://".into())).as_deref(),
            Some("config.proxy")
        );
        assert_eq!(
            field_of(&|s| s.proxy = Some("socks5://user:pw@proxy:1080".into())).as_deref(),
            Some("config.proxy")
        );
    }

    #[test]
    fn a_url_too_long_is_a_config_error_not_a_panic() {
        let server = TestServer::start(vec![ok_body()]);
        let (client, _) = client_of(&server);
        let long = "x".repeat(70_000);
        let failure = client.get("/threats", &[("query", long)]).unwrap_err();
        assert_eq!(failure.code, ErrorCode::ConfigInvalid);
        assert!(
            failure.message.contains("GET /threats"),
            "{}",
            failure.message
        );
        let failure = client
            .get(&format!("/hashes/{}/verdict", "a".repeat(70_000)), &[])
            .unwrap_err();
        assert_eq!(failure.code, ErrorCode::ConfigInvalid);
        assert_eq!(client.metrics().http_requests, 0);
        // Characters a URI cannot carry are encoded, in the path as in the query.
        client
            .get("/threats/a b\"{}/notes", &[("q", "a b&c=d/é".to_string())])
            .unwrap();
        let request = &server.requests()[0];
        assert_eq!(
            request.target,
            "/web/api/v2.1/threats/a%20b%22%7B%7D/notes?q=a%20b%26c%3Dd%2F%C3%A9"
        );
    }

    #[test]
    fn a_token_no_header_can_carry_is_a_config_error() {
        let server = TestServer::start(vec![]);
        let mut settings = test_settings(&server);
        settings.token = Secret::new("abc\ndef");
        let failure = ApiClient::new(settings).err().unwrap();
        assert_eq!(failure.code, ErrorCode::ConfigInvalid);
        assert_eq!(failure.field.as_deref(), Some("config.api_token"));
        assert!(!failure.message.contains("abc"));
    }

    #[test]
    fn ca_bundles_that_are_not_small_regular_files_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("bundle.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'a'; 2 * 1024 * 1024]).unwrap();
        let started = Instant::now();
        for (path, reason) in [
            (fifo.display().to_string(), "is not a regular file"),
            ("/dev/zero".to_string(), "is not a regular file"),
            (dir.path().display().to_string(), "is not a regular file"),
            (big.display().to_string(), "is larger than 1048576 bytes"),
        ] {
            let failure = load_ca_bundle(&path).unwrap_err();
            assert_eq!(failure.code, ErrorCode::ConfigInvalid);
            assert_eq!(failure.field.as_deref(), Some("config.ca_bundle"));
            assert!(
                failure.message.contains(reason),
                "{path}: {}",
                failure.message
            );
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        // Opening without blocking is harmless for a regular file.
        let pem = dir.path().join("ok.pem");
        std::fs::write(&pem, b"hello").unwrap();
        assert_eq!(read_ca_file(&pem.display().to_string()).unwrap(), b"hello");
        // And a FIFO opened past the check does not block either.
        let opened = open_without_blocking(&fifo.display().to_string()).unwrap();
        assert!(!opened.metadata().unwrap().is_file());
    }

    #[test]
    fn throttling_without_retry_after_outlasts_max_retries() {
        let mut script: Vec<Reply> = (0..8)
            .map(|_| Reply::json(429, json!({ "errors": [{ "title": "Too Many Requests" }] })))
            .collect();
        script.push(ok_body());
        let server = TestServer::start(script);
        let mut settings = test_settings(&server);
        settings.max_retries = 2;
        let (client, sleeper) = client_with(settings);
        client.get("/restrictions", &[]).unwrap();
        assert_eq!(
            client.metrics(),
            Metrics {
                http_requests: 9,
                retries: 8
            }
        );
        assert_eq!(sleeper.slept().len(), 8);

        // On a 30-per-minute family, each retry waits at least the family's 2 s spacing.
        let server = TestServer::start(vec![Reply::json(429, json!({})), ok_body()]);
        let (client, sleeper) = client_of(&server);
        client
            .post("/threat-intelligence/iocs", &json!({}))
            .unwrap();
        let slept = sleeper.slept();
        assert_eq!(slept.len(), 1, "{slept:?}");
        assert!(slept[0] >= Duration::from_millis(1900), "{slept:?}");
    }

    #[test]
    fn a_silent_console_is_cut_off_at_the_deadline() {
        let server = TestServer::start(vec![Reply::Stall(Duration::from_secs(5))]);
        let mut settings = test_settings(&server);
        settings.request_timeout = Duration::from_secs(30);
        settings.deadline = Some(Instant::now() + Duration::from_millis(300));
        let (client, _) = client_with(settings);
        let started = Instant::now();
        let failure = client.get("/restrictions", &[]).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(failure.code, ErrorCode::RunDeadline, "{}", failure.message);
        assert!(failure.retryable);
        assert_eq!(client.metrics().http_requests, 1);
    }

    #[test]
    fn loopback_bases_are_recognised() {
        for (host, loopback) in [
            ("http://127.0.0.1:9", true),
            ("http://127.3.2.1:9", true),
            ("http://localhost:9", true),
            ("http://[::1]:9", true),
            ("usea1.sentinelone.net", false),
            ("https://10.0.0.1", false),
        ] {
            assert_eq!(
                is_loopback(&BaseUrl::parse(host).unwrap()),
                loopback,
                "{host}"
            );
        }
    }
}
