//! A stateful SentinelOne management console (REST API v2.1) on loopback, for tests, fixtures,
//! benchmarks, `s1-actions simulate` and `s1-actions demo`.
//!
//! This crate owns the server: a `TcpListener` on 127.0.0.1 with one thread per connection and
//! the console state behind a `Mutex`; the request recorder; and fault injection (latency, a rate
//! limit, injected statuses, dropped connections before or after the write is applied, malformed
//! and truncated bodies, late answers). The server is a small HTTP/1.1 codec of its own rather
//! than `tiny_http`, because a dropped connection must be a real close without any answer and a
//! truncated body needs a lying `Content-Length`. Every answer carries `Connection: close`.
//!
//! Submodules: `scenario` (the seed file), `model` (the console's objects), `state` (what the
//! console holds, with its indexes behind methods; `state::seed` makes it from a scenario),
//! `routes` (dispatch), one module per endpoint family, `paging`, `params`, `faults` and `http`.
//! `scripted` is the other server on the same codec: it answers from a script rather than as a
//! console, for the unit tests of s1-actions' HTTP client. The behaviours chosen
//! where SentinelOne's are unconfirmed are listed in `docs/simulator.md`.
//!
//! It is a crate of its own so that the s1-actions tree holds only the product: the binary
//! depends on it for `simulate` and `demo`, never the other way round, and it takes nothing from
//! the client it tests (not even the rate-limit table: see `scenario::SENTINELONE_FAMILY_LIMITS`).
//! It does not implement a SentinelOne client, and it is not a security boundary: it binds to
//! loopback only and never records the token or the `Authorization` header.

mod agents;
mod dv;
mod faults;
mod http;
mod iocs;
mod lists;
mod misc;
mod model;
mod org;
mod paging;
mod params;
mod pq;
mod routes;
pub mod scenario;
pub mod scripted;
mod state;
mod threats;
mod user;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use scenario::Scenario;

use faults::{FamilyLimiter, FaultPlan, RateLimiter};
use params::ApiError;
use routes::{Access, Call};
use scenario::Fault;
use state::State;

/// How long a connection may stay silent or refuse to take bytes.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The body sent by the `malformed` fault: what a misbehaving proxy might return.
const MALFORMED_BODY: &[u8] =
    b"<html><head><title>Service</title></head><body>upstream answered garbage</body></html>";

/// `body` as recorded: the token that `POST /users/api-token-details` carries in
/// `data.apiToken` is replaced by `****`, so that a recording never holds it.
fn without_token(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(token) = body.pointer_mut("/data/apiToken") {
        *token = Value::from("****");
    }
    body
}

/// One request as the simulator received and answered it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without the query, e.g. `/web/api/v2.1/restrictions`.
    pub path: String,
    /// Decoded query parameters (a repeated key has its values joined with commas).
    pub query: BTreeMap<String, String>,
    /// The JSON body, or the raw text when it is not JSON; `None` when empty.
    pub body: Option<Value>,
    /// Whether the `ApiToken` matched. The token itself is never recorded.
    pub authorized: bool,
    /// The status answered; 0 when the connection was dropped without an answer.
    pub status: u16,
    /// The name of the injected fault or `rate_limit`, if any.
    pub fault: Option<String>,
}

/// A running simulated console. Dropping it stops the server and its threads.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    access: Access,
    latency: Duration,
    faults: Mutex<FaultPlan>,
    limiter: Option<Mutex<RateLimiter>>,
    family_limiter: Option<Mutex<FamilyLimiter>>,
    /// Completed requests keyed by arrival number, kept in arrival order.
    log: Mutex<Vec<(u64, RecordedRequest)>>,
    arrivals: AtomicU64,
    connection_ids: AtomicU64,
    stopping: Mutex<bool>,
    wake: Condvar,
    connections: Mutex<HashMap<u64, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Locks a mutex, going on with the data if a panicking thread poisoned it: every critical
/// section leaves the data consistent or is caught before it can.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Simulator {
    /// Starts a console on a free loopback port.
    pub fn start(scenario: Scenario) -> io::Result<Simulator> {
        Simulator::start_on(scenario, 0)
    }

    /// Starts a console on 127.0.0.1:`port` (0 = any free port). A scenario that does not hold
    /// together (a seed naming an unknown site, a bad hash…) is an `InvalidInput` error.
    pub fn start_on(scenario: Scenario, port: u16) -> io::Result<Simulator> {
        let state = State::from_scenario(&scenario)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("scenario: {e}")))?;
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            access: Access {
                api_token: scenario.api_token.clone(),
                forbidden_paths: scenario
                    .forbidden_paths
                    .iter()
                    .map(|p| routes::full_prefix(p))
                    .collect(),
                comma_lists: scenario.comma_lists,
                user: scenario.token_user.clone(),
            },
            latency: Duration::from_millis(scenario.latency_ms),
            faults: Mutex::new(FaultPlan::new(&scenario.faults)),
            limiter: scenario
                .rate_limit_per_second
                .map(|limit| Mutex::new(RateLimiter::new(limit))),
            family_limiter: scenario
                .rate_limits
                .as_ref()
                .map(|limits| Mutex::new(FamilyLimiter::new(limits))),
            log: Mutex::new(Vec::new()),
            arrivals: AtomicU64::new(0),
            connection_ids: AtomicU64::new(0),
            stopping: Mutex::new(false),
            wake: Condvar::new(),
            connections: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
        });
        let for_acceptor = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("s1-sim-accept".to_string())
            .spawn(move || accept_loop(&listener, &for_acceptor))?;
        Ok(Simulator {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash or the API path.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Every request answered (or dropped) so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log)
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Every request so far, clearing the log.
    pub fn take_requests(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut *lock(&self.shared.log))
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }

    /// A canonical, deterministic snapshot of what clients can change: blacklist and exclusion
    /// entries, IOCs, threats' mitigation, incident status, verdict and notes, agents' network
    /// status, alerts' verdict and status. Created objects appear without minted ids or times, and
    /// everything is sorted, so two runs that reach the same state compare equal.
    pub fn state(&self) -> Value {
        lock(&self.shared.state).snapshot()
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            // The acceptor only returns once the simulator is dropped, which cannot happen while
            // this call holds it: this blocks for good, which is what `simulate` wants.
            let _ = acceptor.join();
        }
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        *lock(&self.shared.stopping) = true;
        self.shared.wake.notify_all();
        // Wake the acceptor out of accept(); it sees the flag and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for (_, stream) in lock(&self.shared.connections).drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

impl Shared {
    fn is_stopping(&self) -> bool {
        *lock(&self.stopping)
    }

    /// Sleeps, without holding any lock the requests need, until `duration` passed or the
    /// simulator stops.
    fn pause(&self, duration: Duration) {
        if duration.is_zero() {
            return;
        }
        let deadline = Instant::now() + duration;
        let mut stopping = lock(&self.stopping);
        while !*stopping {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            stopping = match self.wake.wait_timeout(stopping, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Adds a finished request to the log at its arrival position.
    fn record(&self, arrival: u64, request: RecordedRequest) {
        let mut log = lock(&self.log);
        let at = log.partition_point(|(n, _)| *n < arrival);
        log.insert(at, (arrival, request));
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.is_stopping() {
            break;
        }
        let Ok(stream) = incoming else {
            // Out of descriptors or an aborted handshake: let the moment pass.
            thread::sleep(Duration::from_millis(5));
            continue;
        };
        let id = shared.connection_ids.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.connections).insert(id, clone);
        }
        let worker_shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("s1-sim-conn".to_string())
            .spawn(move || {
                serve_connection(&worker_shared, &stream);
                lock(&worker_shared.connections).remove(&id);
            });
        match spawned {
            Ok(handle) => {
                let mut workers = lock(&shared.workers);
                workers.retain(|w| !w.is_finished());
                workers.push(handle);
            }
            Err(_) => {
                // No thread to serve it: the client sees the connection close.
                if let Some(stream) = lock(&shared.connections).remove(&id) {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(value) = header else {
        return false;
    };
    let mut parts = value.trim().splitn(2, char::is_whitespace);
    match (parts.next(), parts.next()) {
        (Some(scheme), Some(given)) => {
            scheme.eq_ignore_ascii_case("ApiToken") && !token.is_empty() && given.trim() == token
        }
        _ => false,
    }
}

fn serve_connection(shared: &Shared, stream: &TcpStream) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let request = match http::read_request(stream) {
        Ok(request) => request,
        Err(http::ReadError::Closed) => return,
        Err(http::ReadError::Bad(status, detail)) => {
            let error = ApiError::new(u64::from(status) * 10000 + 10, "Bad Request", Some(detail));
            let _ =
                http::write_response(stream, &http::Response::json(status, &error.body()), false);
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
    };
    let arrival = shared.arrivals.fetch_add(1, Ordering::SeqCst);
    let parsed: Option<Result<Value, ()>> = if request.body.is_empty() {
        None
    } else {
        Some(serde_json::from_slice(&request.body).map_err(|_| ()))
    };
    let mut record = RecordedRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        body: parsed.as_ref().map(|body| match body {
            Ok(value) => without_token(value),
            Err(()) => Value::String(String::from_utf8_lossy(&request.body).into_owned()),
        }),
        authorized: authorized(request.header("authorization"), &shared.access.api_token),
        status: 0,
        fault: None,
    };

    if let Some(limiter) = &shared.limiter
        && !lock(limiter).admit(Instant::now())
    {
        let mut response = http::Response::json(429, &ApiError::injected(429, None).body());
        response.retry_after = Some("1".to_string());
        record.fault = Some("rate_limit".to_string());
        answer(shared, stream, arrival, record, &response, false);
        return;
    }
    if let Some(limiter) = &shared.family_limiter {
        let admitted = lock(limiter).admit(&request.path, Instant::now());
        if let Err(refused) = admitted {
            let mut response = http::Response::json(429, &ApiError::injected(429, None).body());
            response.retry_after = refused.retry_after;
            record.fault = Some("rate_limit".to_string());
            answer(shared, stream, arrival, record, &response, false);
            return;
        }
    }

    let hit = lock(&shared.faults).select(&request.method, &request.path);
    record.fault = hit.as_ref().map(|h| h.name.clone());
    let fault = hit.map(|h| h.fault);
    shared.pause(shared.latency);

    match fault {
        Some(Fault::DropBefore) => {
            shared.record(arrival, record);
            let _ = stream.shutdown(Shutdown::Both);
        }
        Some(Fault::Status {
            status,
            retry_after,
            code,
        }) => {
            let mut response =
                http::Response::json(status, &ApiError::injected(status, code).body());
            response.retry_after = retry_after;
            answer(shared, stream, arrival, record, &response, false);
        }
        other => {
            let call = Call {
                method: &request.method,
                path: &request.path,
                query: &request.query,
                body: parsed.as_ref().map(|b| b.as_ref().map_err(|_| ())),
                authorized: record.authorized,
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let mut state = lock(&shared.state);
                routes::handle(&mut state, &shared.access, &call)
            }));
            let (status, body) = outcome.unwrap_or_else(|_| {
                let error = ApiError::server_error("The simulator failed on this request");
                (error.status, error.body().to_string())
            });
            let mut response = http::Response {
                status,
                content_type: "application/json",
                body: body.into_bytes(),
                retry_after: None,
            };
            let mut truncate = false;
            match other {
                Some(Fault::DropAfter) => {
                    shared.record(arrival, record);
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                Some(Fault::Malformed) => {
                    response = http::Response {
                        status: 200,
                        content_type: "application/json",
                        body: MALFORMED_BODY.to_vec(),
                        retry_after: None,
                    };
                }
                Some(Fault::Body { text }) => {
                    response = http::Response {
                        status: 200,
                        // What a proxy's error page would claim; clients must not trust it.
                        content_type: if text.trim_start().starts_with('<') {
                            "text/html"
                        } else {
                            "application/json"
                        },
                        body: text.into_bytes(),
                        retry_after: None,
                    };
                }
                Some(Fault::Delay { ms }) => shared.pause(Duration::from_millis(ms)),
                Some(Fault::Truncated) => truncate = true,
                _ => {}
            }
            answer(shared, stream, arrival, record, &response, truncate);
        }
    }
}

/// Records the exchange, then writes the answer and closes the connection.
fn answer(
    shared: &Shared,
    stream: &TcpStream,
    arrival: u64,
    mut record: RecordedRequest,
    response: &http::Response,
    truncate: bool,
) {
    record.status = response.status;
    shared.record(arrival, record);
    let _ = http::write_response(stream, response, truncate);
    let _ = stream.shutdown(Shutdown::Write);
}
