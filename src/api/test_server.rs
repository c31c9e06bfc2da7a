//! A scripted HTTP/1.1 server on loopback for the client's unit tests (test builds only).
//!
//! It answers each connection with the next [`Reply`] of its script, closes the connection
//! (so ureq never reuses it), and records every request. Built on `std::net::TcpListener`
//! rather than tiny_http because transport faults need raw control of the socket: closing
//! without an answer and stalling past the client's timeout. It is not the console simulator.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use super::{ApiClient, ClientSettings, RecordingSleeper};
use crate::connection::{BaseUrl, Secret};

/// The token every test client sends.
pub(crate) const TEST_TOKEN: &str = "test-token-5ecr3t-value";

/// One scripted answer.
pub(crate) enum Reply {
    /// An HTTP response.
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
    pub(crate) fn json(status: u16, body: Value) -> Self {
        Self::raw(status, body.to_string())
    }

    pub(crate) fn raw(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::Respond {
            status,
            headers: vec![("Content-Type", "application/json".to_string())],
            body: body.into(),
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: &str) -> Self {
        if let Self::Respond { headers, .. } = &mut self {
            headers.push((name, value.to_string()));
        }
        self
    }
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    /// The request target as sent: path and raw query.
    pub(crate) target: String,
    pub(crate) path: String,
    /// Header names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub(crate) fn query_string(&self) -> String {
        self.target
            .split_once('?')
            .map(|(_, query)| query.to_string())
            .unwrap_or_default()
    }

    /// The decoded value of the first query parameter called `name`.
    pub(crate) fn query_value(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query_string().as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub(crate) struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts serving `script` on `127.0.0.1` at a free port. Requests beyond the script are
    /// answered 418 (not retried by the client) and still recorded.
    pub(crate) fn start(script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut script = script.into_iter();
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let Some(request) = read_request(&stream) else {
                        continue;
                    };
                    requests.lock().unwrap().push(request);
                    let reply = script.next().unwrap_or_else(|| {
                        Reply::raw(418, r#"{"errors":[{"title":"script exhausted"}]}"#)
                    });
                    answer(stream, reply);
                }
            })
        };
        Self {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn base(&self) -> BaseUrl {
        BaseUrl::parse(&format!("http://{}", self.addr)).expect("loopback base URL")
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Settings for a client of `server`: fast, unlimited rate, two retries, no deadline.
pub(crate) fn test_settings(server: &TestServer) -> ClientSettings {
    ClientSettings {
        base: server.base(),
        token: Secret::new(TEST_TOKEN),
        verify_tls: true,
        ca_bundle: None,
        proxy: None,
        request_timeout: Duration::from_secs(5),
        max_retries: 2,
        requests_per_second: 0.0,
        max_concurrency: 4,
        deadline: None,
        max_response_bytes: super::DEFAULT_MAX_RESPONSE_BYTES,
    }
}

/// A client of `server` with [`test_settings`] and a sleeper that never sleeps.
pub(crate) fn test_client(server: &TestServer) -> ApiClient {
    ApiClient::new(test_settings(server))
        .expect("test client")
        .with_sleeper(Arc::new(RecordingSleeper::new()))
}

fn read_request(stream: &TcpStream) -> Option<Recorded> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let path = target.split('?').next().unwrap_or_default().to_string();
    Some(Recorded {
        method,
        target,
        path,
        headers,
        body,
    })
}

fn answer(mut stream: TcpStream, reply: Reply) {
    match reply {
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
        }
        Reply::Drop => {}
        Reply::Stall(duration) => std::thread::sleep(duration),
    }
    let _ = stream.shutdown(Shutdown::Both);
}
