//! A scripted HTTP/1.1 server on loopback, for tests of an HTTP client (s1-actions' own unit
//! tests of its SentinelOne client use it through `src/api/test_server.rs`).
//!
//! It answers each connection with the next [`Reply`] of its script, closes the connection (so
//! a client never reuses it), and records every request. It shares the console simulator's
//! HTTP codec (`http`), because transport faults need the same raw control of the socket:
//! closing without an answer, stalling past the client's timeout, headers exactly as scripted.
//! It does not simulate a console: nothing is checked, and the script decides every answer.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::{http, lock};

/// How long the server waits for a request's bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An HTTP response: `Content-Length` and `Connection: close`, then `headers` as given.
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Read the request, then close the connection without answering.
    Drop,
    /// Read the request, then send nothing for this long before closing.
    Stall(Duration),
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Self {
        Self::raw(status, body.to_string())
    }

    /// An answer with these bytes, labelled `application/json` whatever they are.
    pub fn raw(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::Respond {
            status,
            headers: vec![("Content-Type", "application/json".to_string())],
            body: body.into(),
        }
    }

    /// The answer with one more header (no effect on `Drop` and `Stall`).
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        if let Self::Respond { headers, .. } = &mut self {
            headers.push((name, value.to_string()));
        }
        self
    }
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The request target as sent: path and raw query.
    pub target: String,
    /// The path as sent (not decoded), without the query.
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The value of the first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The raw query, without the `?`; empty when there is none.
    pub fn query_string(&self) -> String {
        self.target
            .split_once('?')
            .map(|(_, query)| query.to_string())
            .unwrap_or_default()
    }

    /// The decoded value of the first query parameter called `name`.
    pub fn query_value(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query_string().as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// The body as JSON; `null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A running scripted server. Dropping it stops it.
#[derive(Debug)]
pub struct ScriptedServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedServer {
    /// Starts serving `script` on `127.0.0.1` at a free port, one connection at a time.
    /// Requests beyond the script are answered 418 (which a client does not retry) and still
    /// recorded.
    pub fn start(script: Vec<Reply>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("s1-sim-scripted".to_string())
                .spawn(move || serve(&listener, script, &requests, &stop))?
        };
        Ok(Self {
            addr,
            requests,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.requests).clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    listener: &TcpListener,
    script: Vec<Reply>,
    requests: &Mutex<Vec<Recorded>>,
    stop: &AtomicBool,
) {
    let mut script = script.into_iter();
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
        // A connection that sends no request it can read is closed unanswered and uses no reply.
        let Ok(request) = http::read_request(&stream) else {
            continue;
        };
        let path = request
            .target
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string();
        lock(requests).push(Recorded {
            method: request.method,
            target: request.target,
            path,
            headers: request.headers,
            body: request.body,
        });
        let reply = script
            .next()
            .unwrap_or_else(|| Reply::raw(418, r#"{"errors":[{"title":"script exhausted"}]}"#));
        answer(&stream, reply);
    }
}

fn answer(stream: &TcpStream, reply: Reply) {
    match reply {
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut head: Vec<(&str, String)> = vec![
                ("Content-Length", body.len().to_string()),
                ("Connection", "close".to_string()),
            ];
            head.extend(headers);
            let _ = http::write_message(stream, status, &head, &body);
        }
        Reply::Drop => {}
        Reply::Stall(duration) => std::thread::sleep(duration),
    }
    let _ = stream.shutdown(Shutdown::Both);
}
