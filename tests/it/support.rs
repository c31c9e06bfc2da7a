//! Running the binary: stdin in, stdout/stderr/exit out, with a clean environment.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The token every test envelope uses; it must never appear in any output.
pub const CANARY_TOKEN: &str = "canary-7f3a9c21-token-must-never-print";

/// What one run of the binary produced.
pub struct Run {
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as the one JSON document it must be.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not one JSON document ({err}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `s1-actions args…` with `stdin`, without proxies or ambient logging settings.
pub fn run(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_s1-actions"))
        .args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("S1_ACTIONS_LOG_LEVEL")
        .env("S1_ACTIONS_LOG", "json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_string();
    // Written from a thread so a large envelope cannot deadlock against a full stdout pipe.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let run = Run {
        exit: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(CANARY_TOKEN) && !run.stderr.contains(CANARY_TOKEN),
        "the API token was printed:\nstdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    run
}

/// A simulator for `scenario` (a JSON object of scenario keys) that accepts [`CANARY_TOKEN`],
/// with its clock pinned so that runs are reproducible.
pub fn simulator(scenario: Value) -> s1_sim::Simulator {
    let mut scenario = scenario;
    scenario["api_token"] = Value::from(CANARY_TOKEN);
    if scenario.get("clock").is_none() {
        scenario["clock"] = Value::from("2026-04-22T13:50:54Z");
    }
    let scenario = s1_sim::Scenario::from_json(&scenario.to_string())
        .unwrap_or_else(|err| panic!("scenario: {err}"));
    s1_sim::Simulator::start(scenario).unwrap()
}

/// The result document of a run that had `objects` input objects, after checking what every
/// result must hold whatever happened: stdout is one JSON document on one line, every object
/// is echoed and has exactly one result in input order, the summary counts the results, and
/// the run status agrees with the exit code (0 succeeded, 1 partial, 3/4/5/70 failed).
pub fn checked(run: &Run, objects: usize) -> Value {
    let context = || {
        format!(
            "exit {}\nstdout: {}\nstderr: {}",
            run.exit, run.stdout, run.stderr
        )
    };
    assert_eq!(
        run.stdout.trim_end_matches('\n').lines().count(),
        1,
        "stdout is one line: {}",
        context()
    );
    let result = run.json();
    let results = result["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", context()));
    assert_eq!(
        results.len(),
        objects,
        "one result per object: {}",
        context()
    );
    assert_eq!(
        result["objects"].as_array().map(Vec::len),
        Some(objects),
        "every object echoed: {}",
        context()
    );
    let mut counts = [0u64; 3];
    for (index, row) in results.iter().enumerate() {
        assert_eq!(row["index"], index, "results in input order: {}", context());
        match row["status"].as_str() {
            Some("succeeded") => counts[0] += 1,
            Some("skipped") => counts[1] += 1,
            Some("failed") => {
                counts[2] += 1;
                assert!(row["error"]["code"].is_string(), "{}", context());
                assert!(row["error"]["retryable"].is_boolean(), "{}", context());
            }
            other => panic!("result status {other:?}: {}", context()),
        }
    }
    let summary = &result["summary"];
    assert_eq!(summary["total"], objects, "{}", context());
    assert_eq!(
        [
            &summary["succeeded"],
            &summary["skipped"],
            &summary["failed"]
        ],
        [counts[0], counts[1], counts[2]]
            .map(Value::from)
            .each_ref(),
        "summary counts the results: {}",
        context()
    );
    let errors = result["errors"].as_array().map_or(0, Vec::len);
    let expected_status = match run.exit {
        0 => "succeeded",
        1 => "partial",
        3 | 4 | 5 | 70 => "failed",
        other => panic!("exit {other} is not a run exit: {}", context()),
    };
    assert_eq!(
        result["status"],
        expected_status,
        "status and exit agree: {}",
        context()
    );
    match run.exit {
        0 => assert!(errors == 0 && counts[2] == 0, "{}", context()),
        1 => assert!(errors == 0 && counts[2] > 0, "{}", context()),
        _ => assert!(errors > 0, "a failed run names its error: {}", context()),
    }
    result
}

/// Asserts that no piece of [`CANARY_TOKEN`] of `window` characters or more appears in the
/// run's output: a message cut short in the middle of an echoed token must not leak its start.
pub fn assert_no_token_fragment(run: &Run, window: usize) {
    let token: Vec<char> = CANARY_TOKEN.chars().collect();
    for piece in token.windows(window) {
        let piece: String = piece.iter().collect();
        assert!(
            !run.stdout.contains(&piece) && !run.stderr.contains(&piece),
            "a piece of the token ({piece}) was printed:\nstdout: {}\nstderr: {}",
            run.stdout,
            run.stderr
        );
    }
}

/// What a [`ScriptedServer`] answers: status, extra header lines and body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec!["Content-Type: application/json".into()],
            body: body.to_string().into_bytes(),
        }
    }
}

/// A loopback HTTP/1.1 server that answers each request with `answer(request)`, where
/// `request` is the request as received (request line, headers and body). For consoles the
/// simulator does not play: ones that echo the request, or answer without end.
pub struct ScriptedServer {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ScriptedServer {
    pub fn start(answer: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        use std::sync::atomic::Ordering;
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let (stop_flag, log) = (Arc::clone(&stop), Arc::clone(&requests));
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let (answer, log) = (Arc::clone(&answer), Arc::clone(&log));
                std::thread::spawn(move || {
                    let Some(request) = read_request(&mut stream) else {
                        return;
                    };
                    log.lock().unwrap().push(request.clone());
                    let reply = answer(&request);
                    let mut head = format!(
                        "HTTP/1.1 {} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for header in &reply.headers {
                        head.push_str(header);
                        head.push_str("\r\n");
                    }
                    head.push_str("\r\n");
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&reply.body);
                    let _ = stream.flush();
                });
            }
        });
        Self {
            addr,
            stop,
            acceptor: Some(acceptor),
            requests,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, as received.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Reads one request: the head up to the blank line, then `Content-Length` bytes of body.
pub fn read_request(stream: &mut impl std::io::Read) -> Option<String> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buffer[..n]);
    }
    Some(String::from_utf8_lossy(&data).into_owned())
}

/// A property's configuration: `cases` and a fixed seed by default, so CI runs are bounded and
/// failures reproduce; `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override them for longer runs.
pub fn proptest_config(cases: u32, seed: u64) -> proptest::test_runner::Config {
    use proptest::test_runner::{Config, RngSeed};
    let defaults = Config::default();
    let from_env = |name: &str| std::env::var_os(name).is_some();
    Config {
        cases: if from_env("PROPTEST_CASES") {
            defaults.cases
        } else {
            cases
        },
        rng_seed: if from_env("PROPTEST_RNG_SEED") {
            defaults.rng_seed
        } else {
            RngSeed::Fixed(seed)
        },
        failure_persistence: None,
        ..defaults
    }
}
