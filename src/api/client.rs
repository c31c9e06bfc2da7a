//! [`ApiClient`]: the one HTTP agent of a run and the request loop around it.
//!
//! It owns the agent's settings (TLS roots, proxy, timeouts, no redirects, user agent), the
//! `Authorization` header, the attempt loop (rate slot → send → classify → back off), the
//! run deadline and the request metrics. It does not interpret what endpoints return beyond
//! "JSON or not" (the actions do), and never writes the token into a message or a log line.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Proxy, ProxyProtocol};

use super::classify::{Outcome, classify_response, classify_transport};
use super::page::Pages;
use super::pool::run_parallel;
use super::rate::RateLimiter;
use super::retry::{RetryDecision, RetryPolicy, Sleeper, ThreadSleeper};
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
    /// Timeout of one attempt, from connecting to the last byte of the body.
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

/// What SentinelOne says about the API token (`POST /users/api-token-details`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenDetails {
    pub created_at: String,
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
    max_concurrency: usize,
    deadline: Option<Instant>,
    max_response_bytes: u64,
    sleeper: Arc<dyn Sleeper>,
    http_requests: AtomicU64,
    retries: AtomicU64,
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
        Ok(Self {
            agent: config.into(),
            base: settings.base,
            token: settings.token,
            authorization,
            policy: RetryPolicy::new(settings.max_retries),
            limiter: RateLimiter::new(settings.requests_per_second),
            max_concurrency: settings.max_concurrency.max(1),
            deadline: settings.deadline,
            max_response_bytes: settings.max_response_bytes,
            sleeper: Arc::new(ThreadSleeper),
            http_requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
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

    /// `POST` a JSON body to an API path.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let bytes = encode_body(path, body)?;
        self.call(Method::Post, path, &[], Some(&bytes))
    }

    /// `DELETE` with a JSON body, as SentinelOne's bulk deletes expect.
    pub fn delete(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let bytes = encode_body(path, body)?;
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

    /// Creation and expiry of the token (`POST /users/api-token-details`).
    pub fn token_details(&self) -> Result<TokenDetails, Failure> {
        let body = json!({ "data": { "apiToken": self.token.expose() } });
        let answer = self.post("/users/api-token-details", &body)?;
        let field = |name: &str| {
            answer
                .pointer(&format!("/data/{name}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let created_at = field("createdAt").ok_or_else(|| {
            Failure::new(
                ErrorCode::UpstreamBadResponse,
                "SentinelOne answered POST /users/api-token-details without data.createdAt",
            )
        })?;
        Ok(TokenDetails {
            created_at,
            expires_at: field("expiresAt"),
        })
    }

    pub fn deadline_passed(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// The attempt loop: wait for a rate slot, send, classify, and retry within the budget and
    /// the deadline. `body` is serialized once by the caller and resent as the same bytes.
    fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Value, Failure> {
        let url = self.base.api(path);
        let endpoint = format!("{} {path}", method.as_str());
        let mut retries_done = 0;
        let mut last_failure: Option<Failure> = None;
        loop {
            self.wait_for_slot(last_failure.take())?;
            let failure = match self.attempt(method, &url, query, body, &endpoint) {
                Outcome::Success(value) => return Ok(value),
                Outcome::GiveUp(failure) => return Err(failure),
                Outcome::Retry { after, failure } => {
                    let decision = self.policy.decide(
                        retries_done,
                        after,
                        Instant::now(),
                        self.deadline,
                        &mut rand::rng(),
                    );
                    match decision {
                        RetryDecision::After(delay) => {
                            retries_done += 1;
                            self.retries.fetch_add(1, Ordering::Relaxed);
                            log::warn(
                                "retry",
                                &format!("Retrying {endpoint}: {}", failure.code),
                                json!({
                                    "status": failure.http_status,
                                    "code": failure.code.as_str(),
                                    "attempt": retries_done + 1,
                                    "delay_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                                    "path": path,
                                }),
                            );
                            self.sleeper.sleep(delay);
                            failure
                        }
                        RetryDecision::Exhausted | RetryDecision::PastDeadline => {
                            return Err(self.give_up(
                                &endpoint,
                                path,
                                failure,
                                retries_done,
                                decision,
                            ));
                        }
                    }
                }
            };
            last_failure = Some(failure);
        }
    }

    /// Takes the next rate slot and waits for it. Before the first attempt, a passed deadline
    /// is `run.deadline`; before a retry, the failure being retried is reported instead, since
    /// it says what actually went wrong.
    fn wait_for_slot(&self, retrying: Option<Failure>) -> Result<(), Failure> {
        let too_late = |retrying: Option<Failure>| {
            retrying.unwrap_or_else(|| {
                Failure::new(
                    ErrorCode::RunDeadline,
                    "The run deadline passed before this request could start",
                )
            })
        };
        let now = Instant::now();
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            return Err(too_late(retrying));
        }
        let slot = self.limiter.reserve(now);
        if self.deadline.is_some_and(|deadline| slot >= deadline) {
            return Err(too_late(retrying));
        }
        let wait = slot.saturating_duration_since(now);
        if !wait.is_zero() {
            self.sleeper.sleep(wait);
        }
        Ok(())
    }

    /// Logs and shapes the failure reported when retries end without success.
    fn give_up(
        &self,
        endpoint: &str,
        path: &str,
        mut failure: Failure,
        retries_done: u32,
        decision: RetryDecision,
    ) -> Failure {
        let attempts = retries_done + 1;
        let reason = match decision {
            RetryDecision::PastDeadline => "the run deadline leaves no time for another attempt",
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
            failure.message = format!("{} (gave up after {attempts} attempts)", failure.message);
        }
        failure
    }

    /// One attempt: send, read the body within its limit, classify.
    fn attempt(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
        endpoint: &str,
    ) -> Outcome {
        self.http_requests.fetch_add(1, Ordering::Relaxed);
        let body = body.unwrap_or_default();
        let sent = match method {
            Method::Get => self.prepare(self.agent.get(url), query).call(),
            Method::Post => self
                .prepare(self.agent.post(url), query)
                .content_type("application/json")
                .send(body),
            Method::Delete => self
                .prepare(self.agent.delete(url).force_send_body(), query)
                .content_type("application/json")
                .send(body),
        };
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => return classify_transport(endpoint, &error),
        };
        let status = response.status().as_u16();
        let success = response.status().is_success();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let limit = if success {
            self.max_response_bytes
        } else {
            ERROR_BODY_LIMIT.min(self.max_response_bytes)
        };
        let bytes = match response.body_mut().with_config().limit(limit).read_to_vec() {
            Ok(bytes) => bytes,
            Err(ureq::Error::BodyExceedsLimit(_)) if success => {
                return Outcome::GiveUp(
                    Failure::new(
                        ErrorCode::UpstreamBadResponse,
                        format!(
                            "SentinelOne answered {endpoint} with more than {limit} bytes, the most this client reads"
                        ),
                    )
                    .with_http_status(status),
                );
            }
            Err(error) if success => return classify_transport(endpoint, &error),
            // The status decides a failed answer; its body only adds detail.
            Err(_) => Vec::new(),
        };
        classify_response(
            endpoint,
            status,
            retry_after.as_deref(),
            &bytes,
            SystemTime::now(),
        )
    }

    /// Adds the headers and query every request carries.
    fn prepare<B>(
        &self,
        request: ureq::RequestBuilder<B>,
        query: &[(&str, String)],
    ) -> ureq::RequestBuilder<B> {
        request
            .header("Authorization", self.authorization.expose())
            .query_pairs(query.iter().map(|(name, value)| (*name, value.as_str())))
    }
}

fn encode_body(path: &str, body: &Value) -> Result<Vec<u8>, Failure> {
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
        Cow::Owned(std::fs::read(path).map_err(|error| {
            invalid(format!(
                "The CA bundle file '{path}' could not be read: {error}"
            ))
        })?)
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
