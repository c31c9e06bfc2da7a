//! Benchmarks of actions 1–4 (issue 6), 20 (IOC remove) and 21 (scan endpoints) (issue 18): the
//! release binary, run as a child process, against the console simulator, which runs in this
//! process with a fixed per-request latency and a rate limit.
//!
//! ```sh
//! cargo bench --bench actions -- [--sizes 1000,10000,50000] [--actions 1,2,3,4,20,21] \
//!     [--rate 100] [--concurrency 4] [--latency-ms 20] [--sim-rate-limit 110] \
//!     [--startup-runs 21] [--repeat 1] [--markdown FILE] [--json FILE] [--keep DIR]
//! cargo bench --bench actions -- --ioc-30-per-minute [--sizes 50000] [--rate 100]
//!     [--concurrency 4]
//!
//! `--ioc-30-per-minute` runs only action 4 (IOC export) once per size against a simulator
//! that enforces SentinelOne's per-family limits (`"rate_limits": "sentinelone"`: at most 30
//! `/threat-intelligence` requests in any 60 s) and reports the 429s it answered and the wall
//! time against the floor of an evenly spaced client: (POSTs − 1) × 2 s.
//! ```
//!
//! For each action and size it writes an envelope to a temporary file, seeds a fresh simulator
//! (action 2: a threat per object; 3: a blacklist entry per object; 20: the ThreatQ IOC of each
//! object, as action 4 exports it; 21: an agent behind each object's IP address), and runs `s1-actions run` twice (a first run and a re-run, when everything is already
//! present), each under `/usr/bin/time` (GNU time: user and system CPU, peak resident set of the
//! child alone, read by `wait4`). Requests are counted by the simulator, which records every
//! request it answers, and compared with the action's batching minimum; wall time is measured
//! here, from spawning the child to reaping it, and compared with the floor that the rate limit,
//! the concurrency and the latency allow, and SentinelOne's per-family limits, which the client
//! holds to (`api::FAMILY_LIMITS`: `GET /threats` 10/s, `/threat-intelligence` 30/min, …). A startup section times a one-object `validate` and
//! a one-object `run` of each action against a simulator without latency.
//!
//! Each case's wall time is then compared with an idle client's: the same requests replayed
//! in the same order, as fast as the rate and the concurrency allow, against a simulator
//! seeded the same way (see [`replay`]).
//!
//! `--repeat N` runs every case N times, each on a fresh simulator, and reports the run with
//! the median wall time (its other figures with it): on a shared machine single runs vary by
//! a fifth.
//!
//! Nothing here asserts: the bars of the issue are checked and printed as met or not.
//!
//! `--keep DIR` also writes each case's `scenario.json` and `envelope.json` (its hostname set
//! to `{{base_url}}`) under `DIR/action-N-SIZE/`, so one run can be repeated by hand under a
//! profiler against `s1-actions simulate --scenario`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use s1_actions::api::{FAMILY_LIMITS, QUERY_VALUES_BUDGET, chunk_for_query, family_of};
use s1_sim::{RecordedRequest, Scenario, Simulator};

const BINARY: &str = env!("CARGO_BIN_EXE_s1-actions");
const GNU_TIME: &str = "/usr/bin/time";
const CLOCK: &str = "2026-04-22T13:50:54Z";
/// The bench scenarios' API token (the simulator's default).
const TOKEN: &str = "sim-token";
/// Threat or entry ids per mitigation POST or DELETE, IOCs per IOC POST, IOC uuids per IOC
/// DELETE, agent ids per scan POST (the actions' batches).
const IDS_PER_WRITE: usize = 1000;
/// The memory bar of the issue: peak RSS ≤ 3 × envelope + 30 MB.
const RSS_FACTOR: f64 = 3.0;
const RSS_ALLOWANCE: f64 = 30.0 * 1024.0 * 1024.0;
/// Wall time ÷ max(floor, idle client) allowed (DESIGN §9: the bar holds at 20 ms latency; at
/// other latencies the figure is printed against it for information).
const WALL_BAR: f64 = 1.3;

type Error = Box<dyn std::error::Error>;

#[derive(Debug, Clone)]
struct Options {
    sizes: Vec<usize>,
    actions: Vec<u32>,
    rate: f64,
    concurrency: u32,
    latency_ms: u64,
    sim_rate_limit: u32,
    startup_runs: usize,
    repeat: usize,
    markdown: Option<PathBuf>,
    json: Option<PathBuf>,
    keep: Option<PathBuf>,
    ioc_30_per_minute: bool,
}

impl Options {
    fn parse() -> Result<Self, Error> {
        let mut options = Options {
            sizes: vec![1_000, 10_000, 50_000],
            actions: vec![1, 2, 3, 4],
            rate: 100.0,
            concurrency: 4,
            latency_ms: 20,
            sim_rate_limit: 0,
            startup_runs: 21,
            repeat: 1,
            markdown: None,
            json: None,
            keep: None,
            ioc_30_per_minute: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                // cargo bench passes --bench to every bench target.
                "--bench" => {}
                "--sizes" => options.sizes = list(&value()?)?,
                "--actions" => options.actions = list(&value()?)?,
                "--rate" => options.rate = value()?.parse()?,
                "--concurrency" => options.concurrency = value()?.parse()?,
                "--latency-ms" => options.latency_ms = value()?.parse()?,
                "--sim-rate-limit" => options.sim_rate_limit = value()?.parse()?,
                "--startup-runs" => options.startup_runs = value()?.parse()?,
                "--repeat" => options.repeat = value()?.parse::<usize>()?.max(1),
                "--markdown" => options.markdown = Some(value()?.into()),
                "--json" => options.json = Some(value()?.into()),
                "--keep" => options.keep = Some(value()?.into()),
                "--ioc-30-per-minute" => options.ioc_30_per_minute = true,
                other => return Err(format!("unknown option {other}").into()),
            }
        }
        if options.sim_rate_limit == 0 {
            // 10% above the client's rate: a client that bursts gets 429s (and sends more than
            // the minimum); one that spaces its requests evenly never does, even with some
            // scheduling jitter on a loaded machine.
            options.sim_rate_limit = (options.rate * 1.1).ceil() as u32;
        }
        Ok(options)
    }

    /// Requests per second the latency and the concurrency allow.
    fn latency_rate(&self) -> f64 {
        f64::from(self.concurrency) * 1000.0 / self.latency_ms.max(1) as f64
    }
}

fn list<T: std::str::FromStr>(text: &str) -> Result<Vec<T>, Error>
where
    T::Err: std::error::Error + 'static,
{
    text.split(',')
        .map(|item| {
            item.trim()
                .replace('_', "")
                .parse::<T>()
                .map_err(Error::from)
        })
        .collect()
}

fn main() -> Result<(), Error> {
    let options = Options::parse()?;
    if !Path::new(GNU_TIME).exists() {
        return Err(format!("{GNU_TIME} (GNU time) is needed to read the child's peak RSS").into());
    }
    let dir = tempfile::tempdir()?;
    let machine = Machine::read();
    eprintln!("{}", machine.describe());
    eprintln!("binary: {BINARY}");
    if options.ioc_30_per_minute {
        return ioc_30_per_minute(&options, dir.path());
    }

    let startup = startup(&options, dir.path())?;
    let mut rows = Vec::new();
    for &action in &options.actions {
        for &size in &options.sizes {
            let mut runs = Vec::new();
            for _ in 0..options.repeat {
                runs.push(bench_action(
                    &options,
                    dir.path(),
                    action,
                    size,
                    startup.process_start,
                )?);
            }
            rows.extend(median_rows(runs));
        }
    }
    let load_after = loadavg();
    let report = report(&options, &machine, &startup, &rows, load_after);
    println!("{report}");
    if let Some(path) = &options.markdown {
        std::fs::write(path, &report)?;
    }
    if let Some(path) = &options.json {
        let document = json!({
            "options": {
                "sizes": options.sizes, "actions": options.actions, "rate": options.rate,
                "concurrency": options.concurrency, "latency_ms": options.latency_ms,
                "sim_rate_limit": options.sim_rate_limit,
            },
            "machine": machine.describe(),
            "startup": startup.to_json(),
            "rows": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&document)?)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The machine

struct Machine {
    cpu: String,
    cores: usize,
    memory_mb: u64,
    kernel: String,
    rustc: String,
}

impl Machine {
    fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mb = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .unwrap_or_default();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mb,
            kernel,
            rustc,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} × {}, {} MB RAM, Linux {}, {}",
            self.cores, self.cpu, self.memory_mb, self.kernel, self.rustc
        )
    }
}

/// User and system CPU seconds of this process so far (`/proc/self/stat`, clock ticks of
/// 1/100 s, as on every Linux this runs on).
fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// The one-minute load average.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------------------------------------
// Running the binary

/// One run of the binary.
#[derive(Debug, Clone)]
struct Measured {
    wall: Duration,
    user_s: f64,
    sys_s: f64,
    max_rss_bytes: u64,
    exit: i32,
    result: Value,
    output_bytes: u64,
    load: f64,
    /// CPU seconds this process (the simulator, serving the run) used meanwhile.
    simulator_cpu_s: f64,
    /// Seconds from the binary's `start` log event (envelope read, requests about to begin) to
    /// its `summary` event (every answer in, result not yet written).
    request_phase_s: Option<f64>,
}

/// The time between the `start` and `summary` events of a run's JSON log (see
/// [`Measured::request_phase_s`]).
/// IOC export against a console enforcing 30 per minute on `/threat-intelligence`: 0 × 429 and
/// a wall time within 1.1 × of the spacing floor are the bars (BENCHMARKS.md).
fn ioc_30_per_minute(options: &Options, dir: &Path) -> Result<(), Error> {
    let sizes = if options.sizes == [1_000, 10_000, 50_000] {
        vec![50_000]
    } else {
        options.sizes.clone()
    };
    let mut report = String::from(
        "| objects | POSTs | requests | 429s | wall s | floor s | wall/floor | exit |\n|---|---|---|---|---|---|---|---|\n",
    );
    for size in sizes {
        let mut scenario = scenario_json(4, size, options.latency_ms, None);
        scenario["rate_limits"] = json!("sentinelone");
        let sim = Simulator::start(Scenario::from_json(&scenario.to_string())?)?;
        let envelope = dir.join(format!("envelope-ioc-{size}.json"));
        let config = config(4, &sim.base_url(), options, options.rate);
        write_envelope(&envelope, 4, &config, 1, size)?;
        let measured = measure(dir, "run", &envelope)?;
        let requests = sim.take_requests();
        let posts = requests.iter().filter(|r| r.method == "POST").count();
        let refused = requests.iter().filter(|r| r.status == 429).count();
        // An evenly spaced client at exactly 30 per minute: the first POST at once, then one
        // every 2 s. (A client bursting 30 in the first window could do (POSTs − 30) × 2 s
        // sooner, but draws 429s from a token-bucket console; see rate.rs.)
        let floor = family_floor(&requests, options.latency_ms as f64 / 1000.0);
        let wall = measured.wall.as_secs_f64();
        let line = format!(
            "| {size} | {posts} | {} | {refused} | {wall:.1} | {floor:.1} | {:.3} | {} |\n",
            requests.len(),
            wall / floor.max(f64::MIN_POSITIVE),
            measured.exit
        );
        eprint!("{line}");
        report.push_str(&line);
    }
    println!("{report}");
    if let Some(path) = &options.markdown {
        std::fs::write(path, &report)?;
    }
    Ok(())
}

fn request_phase(log: &str) -> Option<f64> {
    let at = |event: &str| {
        log.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["event"] == event)
            .and_then(|line| chrono::DateTime::parse_from_rfc3339(line["ts"].as_str()?).ok())
    };
    let (start, summary) = (at("start")?, at("summary")?);
    Some((summary - start).as_seconds_f64())
}

/// Runs `s1-actions <command>` with the envelope file on stdin, under GNU time.
fn measure(dir: &Path, command: &str, envelope: &Path) -> Result<Measured, Error> {
    let time_file = dir.join("time.txt");
    let out_file = dir.join("out.json");
    let load = loadavg();
    let simulator_cpu = own_cpu_seconds();
    let started = Instant::now();
    let status = Command::new(GNU_TIME)
        .arg("-f")
        .arg("%U %S %M")
        .arg("-o")
        .arg(&time_file)
        .arg(BINARY)
        .arg(command)
        .stdin(File::open(envelope)?)
        .stdout(File::create(&out_file)?)
        .stderr(File::create(dir.join("err.log"))?)
        .env("S1_ACTIONS_LOG", "json")
        .status()?;
    let wall = started.elapsed();
    // Before the result is read below: that is the bench's work, not the simulator's.
    let simulator_cpu_s = own_cpu_seconds() - simulator_cpu;
    let times = std::fs::read_to_string(&time_file)?;
    // GNU time writes "Command exited with non-zero status N" first when the child fails.
    let figures: Vec<&str> = times
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let [user, sys, rss_kb] = figures[..] else {
        return Err(format!("unexpected GNU time output: {times:?}").into());
    };
    let output = std::fs::read(&out_file)?;
    // Only the run's figures are kept: the whole document read as a tree is a few hundred
    // megabytes of the bench process's heap for each 50,000-object run.
    #[derive(serde::Deserialize)]
    struct Figures {
        #[serde(default)]
        status: Value,
        #[serde(default)]
        summary: Value,
        #[serde(default)]
        metrics: Value,
    }
    let result = serde_json::from_slice::<Figures>(&output).map_or(Value::Null, |figures| {
        json!({
            "status": figures.status,
            "summary": figures.summary,
            "metrics": figures.metrics,
        })
    });
    Ok(Measured {
        wall,
        user_s: user.parse()?,
        sys_s: sys.parse()?,
        max_rss_bytes: rss_kb.parse::<u64>()? * 1024,
        exit: status.code().unwrap_or(-1),
        result,
        output_bytes: output.len() as u64,
        load,
        simulator_cpu_s,
        request_phase_s: request_phase(&std::fs::read_to_string(dir.join("err.log"))?),
    })
}

/// Wall time of `s1-actions <command>` spawned directly (no GNU time in between).
fn wall_direct(command: &str, envelope: &Path) -> Result<(Duration, i32), Error> {
    let started = Instant::now();
    let status = Command::new(BINARY)
        .arg(command)
        .stdin(File::open(envelope)?)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env("S1_ACTIONS_LOG", "json")
        .status()?;
    Ok((started.elapsed(), status.code().unwrap_or(-1)))
}

// ---------------------------------------------------------------------------------------------
// Envelopes and scenarios

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The i-th object's (type, value) for `action` (i from 1).
fn indicator(action: u32, i: usize) -> (&'static str, String) {
    let n = i as u64;
    match action {
        1 => ("SHA-1", format!("ab1e{:016x}{:020x}", splitmix(n), n)),
        2 => ("SHA-1", format!("5eed{i:036x}")),
        3 => ("SHA-1", format!("b1ac{i:036x}")),
        21 => ("IP Address", scan_address(i)),
        _ => match i % 6 {
            0 => ("FQDN", format!("host-{i}.bench.example")),
            1 => (
                "IP Address",
                format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
            ),
            2 => (
                "URL",
                format!("https://bench.example/download/{i}/payload.bin"),
            ),
            3 => ("MD5", format!("{:016x}{:016x}", splitmix(n), n)),
            4 => ("SHA-1", format!("{:016x}{:016x}{:08x}", splitmix(n), n, i)),
            _ => (
                "SHA-256",
                format!(
                    "{:016x}{:016x}{:016x}{:016x}",
                    splitmix(n),
                    n,
                    splitmix(n + 1),
                    n
                ),
            ),
        },
    }
}

/// The IP address of action 21's i-th object and of the agent behind it (i from 1). The last
/// octet is 100–255, so that no address is part of another: `networkInterfaceInet__contains`
/// matches text, and `10.0.0.1` would also find `10.0.0.10`–`10.0.0.199`, making the look-ups
/// page through agents no indicator names.
fn scan_address(i: usize) -> String {
    let k = i - 1;
    let (prefix, host) = (k / 156, 100 + k % 156);
    format!("10.{}.{}.{host}", (prefix >> 8) & 255, prefix & 255)
}

/// The account, and for action 21 the site, the scenarios of actions 20 and 21 seed by id.
const BENCH_ACCOUNT: &str = "1001";
const BENCH_SITE: &str = "2001";

/// SentinelOne's IOC type for action 20's ThreatQ type (as `lookup::iocs::ioc_type`).
fn ioc_type(kind: &str) -> &'static str {
    match kind {
        "FQDN" => "DNS",
        "IP Address" => "IPV4",
        "URL" => "URL",
        "MD5" => "MD5",
        "SHA-1" => "SHA1",
        _ => "SHA256",
    }
}

/// A ThreatQ indicator object as the REST API shapes it: the fields actions read plus the
/// ones they do not (status, score, sources, timestamps), which must come back unchanged.
fn object(action: u32, i: usize) -> Value {
    let (kind, value) = indicator(action, i);
    let mut object = json!({
        "id": 100_000 + i,
        "type": { "id": 4, "name": kind },
        "value": value,
        "status": { "id": 1, "name": "Active" },
        "class": "network",
        "score": (i % 10),
        "description": format!("<p>Seen in phishing campaign {} against finance</p>", i % 97),
        "created_at": "2025-08-06 18:09:05",
        "updated_at": "2026-04-20 08:14:03",
        "touched_at": "2026-04-20 08:14:03",
        "tags": ["Sent1", { "name": "phishing" }],
        "sources": [{ "name": "ThreatQ Analyst", "tlp": { "name": "AMBER" } }],
        "attributes": [
            { "name": "Severity", "value": "High" },
            { "name": "Confidence", "value": format!("{}", 50 + i % 50) }
        ],
    });
    if i % 4 == 0 {
        object["adversaries"] = json!([{ "name": "APT28" }]);
    }
    object
}

fn config(action: u32, base: &str, options: &Options, rate: f64) -> Value {
    let mut config = json!({
        "hostname": base,
        "api_token": TOKEN,
        "objects_per_run": 50_000,
        "requests_per_second": rate,
        "max_concurrency": options.concurrency,
    });
    let extra = match action {
        1 => json!({ "list": "Blacklist", "os_type": ["Windows"], "description": "Benchmark" }),
        2 => json!({ "mitigation_action": "Quarantine" }),
        3 => json!({ "list": "Blacklist" }),
        // No scope, as action 4: the token's accounts are looked up.
        20 => json!({}),
        21 => json!({ "scan_action": "Start Full Disk Scan" }),
        _ => json!({ "threatq_hostname": "threatq.bench.example" }),
    };
    for (key, value) in extra.as_object().into_iter().flatten() {
        config[key] = value.clone();
    }
    config
}

/// Writes the envelope for objects `first..first + count` and returns its size in bytes.
fn write_envelope(
    path: &Path,
    action: u32,
    config: &Value,
    first: usize,
    count: usize,
) -> Result<u64, Error> {
    let mut out = BufWriter::new(File::create(path)?);
    write!(
        out,
        r#"{{"protocol":1,"action":{action},"run":{{"id":"bench"}},"config":{config},"objects":["#
    )?;
    for i in first..first + count {
        if i > first {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut out, &object(action, i))?;
    }
    out.write_all(b"]}")?;
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn scenario(action: u32, size: usize, latency_ms: u64, rate_limit: Option<u32>) -> Scenario {
    Scenario::from_json(&scenario_json(action, size, latency_ms, rate_limit).to_string())
        .expect("the bench scenario is valid")
}

fn scenario_json(action: u32, size: usize, latency_ms: u64, rate_limit: Option<u32>) -> Value {
    let mut scenario = json!({
        "clock": CLOCK,
        "latency_ms": latency_ms,
        "accounts": [{ "name": "Bench Account" }],
    });
    if let Some(limit) = rate_limit {
        scenario["rate_limit_per_second"] = json!(limit);
    }
    match action {
        2 => scenario["generate"] = json!({ "agents": 200, "threats": size }),
        3 => scenario["generate"] = json!({ "restrictions": size }),
        20 => {
            scenario["accounts"] = json!([{ "id": BENCH_ACCOUNT, "name": "Bench Account" }]);
            scenario["iocs"] = (1..=size)
                .map(|i| {
                    let (kind, value) = indicator(action, i);
                    json!({ "accountId": BENCH_ACCOUNT, "type": ioc_type(kind), "value": value,
                            "source": "ThreatQ", "method": "EQUALS" })
                })
                .collect();
        }
        21 => {
            scenario["accounts"] = json!([{ "id": BENCH_ACCOUNT, "name": "Bench Account" }]);
            scenario["sites"] = json!([{ "id": BENCH_SITE, "name": "Bench Site",
                                         "accountId": BENCH_ACCOUNT }]);
            scenario["agents"] = (1..=size)
                .map(|i| {
                    json!({ "computerName": format!("BENCH-{i:05}"), "siteId": BENCH_SITE,
                            "ips": [scan_address(i)] })
                })
                .collect();
        }
        _ => {}
    }
    scenario
}

/// Writes the case's scenario and envelope under `keep` for runs by hand (`--keep`).
fn keep_case(
    keep: &Path,
    options: &Options,
    action: u32,
    size: usize,
    envelope: &Path,
    base_url: &str,
) -> Result<(), Error> {
    let case = keep.join(format!("action-{action}-{size}"));
    std::fs::create_dir_all(&case)?;
    let scenario = scenario_json(
        action,
        size,
        options.latency_ms,
        Some(options.sim_rate_limit),
    );
    std::fs::write(
        case.join("scenario.json"),
        serde_json::to_vec_pretty(&scenario)?,
    )?;
    let text = std::fs::read_to_string(envelope)?;
    std::fs::write(
        case.join("envelope.json"),
        text.replacen(&format!("\"{base_url}\""), "\"{{base_url}}\"", 1),
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Minimums and floors

/// SHA-1s per look-up: k hashes take 40k bytes plus k − 1 encoded commas (3 bytes each).
fn sha1_per_lookup() -> usize {
    (QUERY_VALUES_BUDGET + 3) / 43
}

/// Agent look-ups action 21 needs for `size` objects: their addresses in input order (the
/// order of the binary's targets), cut where the comma-joined text would pass the query budget.
fn address_lookups(size: usize) -> u64 {
    let addresses: Vec<String> = (1..=size).map(scan_address).collect();
    chunk_for_query(&addresses, QUERY_VALUES_BUDGET).len() as u64
}

/// The fewest requests `action` can make for `size` objects: (first run, re-run).
fn minimum(action: u32, size: usize) -> (u64, u64) {
    let lookups = size.div_ceil(sha1_per_lookup()) as u64;
    let writes = size.div_ceil(IDS_PER_WRITE) as u64;
    match action {
        1 => (lookups + size as u64, lookups),
        2 | 3 => (lookups + writes, lookups),
        // The account look-up and the IOC count, then the scope's IOCs read a page (1,000) at
        // a time and deleted 1,000 uuids a request; a re-run counts 0 and stops there.
        20 => (2 + 2 * writes, 2),
        // Agent look-ups, then one initiate-scan per 1,000 agents; a re-run finds every agent
        // scanning and sends look-ups only.
        21 => {
            let lookups = address_lookups(size);
            (lookups + writes, lookups)
        }
        _ => (writes + 1, writes + 1),
    }
}

/// Seconds the limits allow for `minimum` requests, `sent` being the requests of the run, plus
/// the process start: the overall rate, the concurrency over the latency, and SentinelOne's
/// per-family limits ([`family_floor`]), whichever is slowest.
fn floor(options: &Options, minimum: u64, sent: &[RecordedRequest], process_start: f64) -> f64 {
    let requests = minimum as f64;
    let by_rate = requests / options.rate;
    let by_latency = requests / options.latency_rate();
    let by_family = family_floor(sent, options.latency_ms as f64 / 1000.0);
    by_rate.max(by_latency).max(by_family) + process_start
}

/// Seconds the endpoint families' limits (`api::FAMILY_LIMITS`, which the client holds to)
/// allow for `requests`: for each family, a client spacing its `n` requests evenly sends the
/// first at once and the last `n − 1` intervals later, and waits `latency` for its answer.
fn family_floor(requests: &[RecordedRequest], latency: f64) -> f64 {
    let mut counts = vec![0u64; FAMILY_LIMITS.len()];
    for request in requests {
        let path = request.path.trim_start_matches("/web/api/v2.1");
        if let Some(family) = family_of(path) {
            counts[family] += 1;
        }
    }
    FAMILY_LIMITS
        .iter()
        .zip(counts)
        .filter(|(_, count)| *count > 0)
        .map(|(family, count)| (count - 1) as f64 * family.interval().as_secs_f64() + latency)
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------------------------------------
// Startup

struct Startup {
    /// Median wall time of a one-object validate, in seconds; the "process start" of floors.
    process_start: f64,
    validate: Stats,
    validate_rss: u64,
    runs: Vec<(u32, Stats, u64, u64)>,
    repetitions: usize,
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    min: f64,
    median: f64,
    max: f64,
}

impl Stats {
    fn of(mut samples: Vec<f64>) -> Stats {
        samples.sort_by(f64::total_cmp);
        Stats {
            min: samples[0],
            median: samples[samples.len() / 2],
            max: samples[samples.len() - 1],
        }
    }
}

impl Startup {
    fn to_json(&self) -> Value {
        json!({
            "repetitions": self.repetitions,
            "validate_ms": { "min": self.validate.min * 1e3, "median": self.validate.median * 1e3, "max": self.validate.max * 1e3 },
            "validate_max_rss_bytes": self.validate_rss,
            "runs": self.runs.iter().map(|(action, stats, rss, requests)| json!({
                "action": action, "min_ms": stats.min * 1e3, "median_ms": stats.median * 1e3,
                "max_ms": stats.max * 1e3, "max_rss_bytes": rss, "http_requests": requests,
            })).collect::<Vec<_>>(),
        })
    }
}

/// One-object `validate` and `run` of each action, against a simulator without latency or
/// rate limit (the client's own limit is set to its maximum, 1000/s).
fn startup(options: &Options, dir: &Path) -> Result<Startup, Error> {
    let reps = options.startup_runs.max(1);
    let envelope = dir.join("startup.json");
    let sim = Simulator::start(scenario(1, 0, 0, None))?;
    write_envelope(
        &envelope,
        1,
        &config(1, &sim.base_url(), options, 1000.0),
        1,
        1,
    )?;
    // Warm the page cache and the dynamic loader once.
    wall_direct("validate", &envelope)?;
    let mut samples = Vec::new();
    for _ in 0..reps {
        let (wall, exit) = wall_direct("validate", &envelope)?;
        if exit != 0 {
            return Err(format!("validate exited {exit}").into());
        }
        samples.push(wall.as_secs_f64());
    }
    let validate = Stats::of(samples);
    let validate_rss = measure(dir, "validate", &envelope)?.max_rss_bytes;
    eprintln!(
        "startup: validate median {:.2} ms (min {:.2})",
        validate.median * 1e3,
        validate.min * 1e3
    );
    drop(sim);

    let mut runs = Vec::new();
    for &action in &options.actions {
        // A fresh object for every repetition, so that each one does the first run's work.
        let sim = Simulator::start(scenario(action, reps + 1, 0, None))?;
        let config = config(action, &sim.base_url(), options, 1000.0);
        let mut samples = Vec::new();
        let mut rss = 0;
        let mut requests = 0;
        for rep in 0..=reps {
            write_envelope(&envelope, action, &config, rep + 1, 1)?;
            if rep == 0 {
                // First repetition: GNU time for peak RSS and the request count.
                let measured = measure(dir, "run", &envelope)?;
                if measured.exit != 0 {
                    return Err(
                        format!("startup run of action {action} exited {}", measured.exit).into(),
                    );
                }
                rss = measured.max_rss_bytes;
                requests = sim.take_requests().len() as u64;
                continue;
            }
            let (wall, exit) = wall_direct("run", &envelope)?;
            if exit != 0 {
                return Err(format!("startup run of action {action} exited {exit}").into());
            }
            samples.push(wall.as_secs_f64());
        }
        let stats = Stats::of(samples);
        eprintln!(
            "startup: run action {action} median {:.2} ms, {requests} requests",
            stats.median * 1e3
        );
        runs.push((action, stats, rss, requests));
    }
    Ok(Startup {
        process_start: validate.median,
        validate,
        validate_rss,
        runs,
        repetitions: reps,
    })
}

// ---------------------------------------------------------------------------------------------
// The table

#[derive(Debug, Clone)]
struct Row {
    action: u32,
    size: usize,
    rerun: bool,
    envelope_bytes: u64,
    minimum: u64,
    /// Requests the simulator recorded.
    sent: u64,
    /// `metrics.http_requests` of the result.
    reported: u64,
    refused_429: u64,
    by_endpoint: BTreeMap<String, u64>,
    floor_s: f64,
    /// Wall time of the same requests replayed by an idle client (see [`replay`]).
    idle_client_s: f64,
    measured: Measured,
}

impl Row {
    fn status(&self) -> String {
        let status = self.measured.result["status"].as_str().unwrap_or("?");
        let summary = &self.measured.result["summary"];
        format!(
            "{status} {}/{}",
            summary["succeeded"].as_u64().unwrap_or(0),
            summary["total"].as_u64().unwrap_or(0)
        )
    }

    fn wall(&self) -> f64 {
        self.measured.wall.as_secs_f64()
    }

    /// The floor the wall time is compared with: the rate, latency and concurrency floor, or
    /// the time the console itself needs for these requests, whichever is longer.
    fn floor(&self) -> f64 {
        self.floor_s.max(self.idle_client_s)
    }

    fn rate(&self) -> f64 {
        self.sent as f64 / self.wall()
    }

    fn cpu_per_object_us(&self) -> f64 {
        (self.measured.user_s + self.measured.sys_s) / self.size as f64 * 1e6
    }

    fn rss_bar(&self) -> f64 {
        RSS_FACTOR * self.envelope_bytes as f64 + RSS_ALLOWANCE
    }

    fn to_json(&self) -> Value {
        json!({
            "action": self.action, "objects": self.size, "rerun": self.rerun,
            "envelope_bytes": self.envelope_bytes, "output_bytes": self.measured.output_bytes,
            "minimum_requests": self.minimum, "sent_requests": self.sent,
            "reported_requests": self.reported, "refused_429": self.refused_429,
            "by_endpoint": self.by_endpoint,
            "wall_s": self.wall(), "request_phase_s": self.measured.request_phase_s,
            "floor_s": self.floor_s,
            "idle_client_s": self.idle_client_s, "user_s": self.measured.user_s,
            "sys_s": self.measured.sys_s, "max_rss_bytes": self.measured.max_rss_bytes,
            "exit": self.measured.exit, "status": self.status(), "load": self.measured.load,
            "simulator_cpu_s": self.measured.simulator_cpu_s,
        })
    }
}

/// Of the repetitions of one case (each a first run and a re-run), the first-run row and the
/// re-run row with the median wall time.
fn median_rows(runs: Vec<Vec<Row>>) -> Vec<Row> {
    let mut by_position: Vec<Vec<Row>> = Vec::new();
    for run in runs {
        for (position, row) in run.into_iter().enumerate() {
            if by_position.len() <= position {
                by_position.push(Vec::new());
            }
            by_position[position].push(row);
        }
    }
    by_position
        .into_iter()
        .filter_map(|mut rows| {
            rows.sort_by(|a, b| a.wall().total_cmp(&b.wall()));
            let middle = rows.len() / 2;
            rows.into_iter().nth(middle)
        })
        .collect()
}

fn endpoint_counts(requests: &[RecordedRequest]) -> (BTreeMap<String, u64>, u64) {
    let mut counts = BTreeMap::new();
    let mut refused = 0;
    for request in requests {
        if request.fault.as_deref() == Some("rate_limit") {
            refused += 1;
        }
        let path = request.path.trim_start_matches("/web/api/v2.1");
        *counts
            .entry(format!("{} {path}", request.method))
            .or_insert(0) += 1;
    }
    (counts, refused)
}

fn bench_action(
    options: &Options,
    dir: &Path,
    action: u32,
    size: usize,
    process_start: f64,
) -> Result<Vec<Row>, Error> {
    let started = Instant::now();
    let start_simulator = || {
        Simulator::start(scenario(
            action,
            size,
            options.latency_ms,
            Some(options.sim_rate_limit),
        ))
    };
    let sim = start_simulator()?;
    eprintln!(
        "action {action}, {size} objects: simulator seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let envelope = dir.join(format!("envelope-{action}-{size}.json"));
    let config = config(action, &sim.base_url(), options, options.rate);
    let envelope_bytes = write_envelope(&envelope, action, &config, 1, size)?;
    if let Some(keep) = &options.keep {
        keep_case(keep, options, action, size, &envelope, &sim.base_url())?;
    }
    let (first_minimum, rerun_minimum) = minimum(action, size);
    let mut rows = Vec::new();
    let mut sent = Vec::new();
    for (rerun, minimum) in [(false, first_minimum), (true, rerun_minimum)] {
        let measured = measure(dir, "run", &envelope)?;
        let requests = sim.take_requests();
        let (by_endpoint, refused_429) = endpoint_counts(&requests);
        let row = Row {
            action,
            size,
            rerun,
            envelope_bytes,
            minimum,
            sent: requests.len() as u64,
            reported: measured.result["metrics"]["http_requests"]
                .as_u64()
                .unwrap_or(0),
            refused_429,
            by_endpoint,
            floor_s: floor(options, minimum, &requests, process_start),
            idle_client_s: 0.0,
            measured,
        };
        eprintln!(
            "action {action}, {size} objects{}: {} requests (minimum {}), {:.2} s (floor {:.2} s), \
             {:.1} MB peak RSS, exit {}, {}",
            if rerun { ", re-run" } else { "" },
            row.sent,
            row.minimum,
            row.wall(),
            row.floor_s,
            row.measured.max_rss_bytes as f64 / 1048576.0,
            row.measured.exit,
            row.status(),
        );
        rows.push(row);
        sent.push(requests);
    }
    drop(sim);
    // The same requests again, from an idle client, against a console seeded the same way:
    // the re-run's requests after the first run's, so each meets the state it met before.
    let sim = start_simulator()?;
    for (row, requests) in rows.iter_mut().zip(&sent) {
        row.idle_client_s = replay(requests, &sim.base_url(), options)? + process_start;
        eprintln!(
            "action {action}, {size} objects{}: idle client {:.2} s",
            if row.rerun { ", re-run" } else { "" },
            row.idle_client_s
        );
    }
    std::fs::remove_file(&envelope)?;
    Ok(rows)
}

/// Replays `requests` in their order as an idle client would send them: `concurrency` workers,
/// spaced to the configured rate, every answer read to its end and dropped, nothing parsed.
/// Its wall time is what the console (here the simulator, with its latency and its own work on
/// the same cores) allows any client; the binary's wall time is compared with it. Returns the
/// wall time in seconds.
fn replay(requests: &[RecordedRequest], base: &str, options: &Options) -> Result<f64, Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let authorization = format!("ApiToken {TOKEN}");
    let interval = Duration::from_secs_f64(1.0 / options.rate);
    let next_request = AtomicUsize::new(0);
    let next_slot = Mutex::new(Instant::now());
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..options.concurrency {
            scope.spawn(|| {
                while let Some(request) = requests.get(next_request.fetch_add(1, Ordering::Relaxed))
                {
                    let slot = {
                        let mut next = next_slot.lock().unwrap_or_else(|e| e.into_inner());
                        let slot = (*next).max(Instant::now());
                        *next = slot + interval;
                        slot
                    };
                    std::thread::sleep(slot.saturating_duration_since(Instant::now()));
                    if let Err(err) = send(&agent, base, &authorization, request) {
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{} {}: {err}", request.method, request.path));
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    match failures.first() {
        Some(first) => Err(format!(
            "{} replayed requests failed; first: {first}",
            failures.len()
        )
        .into()),
        None => Ok(elapsed),
    }
}

fn send(
    agent: &ureq::Agent,
    base: &str,
    authorization: &str,
    request: &RecordedRequest,
) -> Result<(), Error> {
    let mut url = url::Url::parse(&format!("{base}{}", request.path))?;
    if !request.query.is_empty() {
        url.query_pairs_mut().extend_pairs(&request.query);
    }
    let body = request.body.as_ref().map(Value::to_string);
    let mut answer = match (request.method.as_str(), body) {
        ("GET", _) => agent
            .get(url.as_str())
            .header("Authorization", authorization)
            .call()?,
        ("POST", body) => agent
            .post(url.as_str())
            .header("Authorization", authorization)
            .content_type("application/json")
            .send(body.unwrap_or_default())?,
        ("DELETE", body) => agent
            .delete(url.as_str())
            .force_send_body()
            .header("Authorization", authorization)
            .content_type("application/json")
            .send(body.unwrap_or_default())?,
        (method, _) => return Err(format!("cannot replay {method}").into()),
    };
    std::io::copy(
        &mut answer.body_mut().with_config().limit(u64::MAX).reader(),
        &mut std::io::sink(),
    )?;
    match answer.status().as_u16() {
        status if status < 400 || status == 409 => Ok(()),
        status => Err(format!("answered {status}").into()),
    }
}

fn mb(bytes: f64) -> String {
    format!("{:.1}", bytes / 1_048_576.0)
}

fn report(
    options: &Options,
    machine: &Machine,
    startup: &Startup,
    rows: &[Row],
    load_after: f64,
) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "Machine: {}", machine.describe());
    let _ = writeln!(
        text,
        "Settings: simulator latency {} ms, simulator rate limit {}/s; client requests_per_second {}, \
         max_concurrency {}; SHA-1s per look-up {} (QUERY_VALUES_BUDGET {} bytes); process start \
         {:.1} ms (median one-object validate); each row the median of {} run(s) by wall time",
        options.latency_ms,
        options.sim_rate_limit,
        options.rate,
        options.concurrency,
        sha1_per_lookup(),
        QUERY_VALUES_BUDGET,
        startup.process_start * 1e3,
        options.repeat
    );
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "| action | objects | run | requests (min) | 429 | wall s | requests phase s | floor s | idle client s | wall/floor | req/s | CPU µs/object | simulator CPU s | peak RSS MB | envelope MB | RSS bar MB | result | load |"
    );
    let _ = writeln!(
        text,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
    );
    for row in rows {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} ({}) | {} | {:.2} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} | {:.2} | {} | {} | {} | {} | {:.2} |",
            row.action,
            row.size,
            if row.rerun { "re-run" } else { "first" },
            row.sent,
            row.minimum,
            row.refused_429,
            row.wall(),
            row.measured
                .request_phase_s
                .map_or_else(|| "-".to_string(), |phase| format!("{phase:.2}")),
            row.floor_s,
            row.idle_client_s,
            row.wall() / row.floor(),
            row.rate(),
            row.cpu_per_object_us(),
            row.measured.simulator_cpu_s,
            mb(row.measured.max_rss_bytes as f64),
            mb(row.envelope_bytes as f64),
            mb(row.rss_bar()),
            row.status(),
            row.measured.load,
        );
    }
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "Startup ({} runs each, wall time from spawn to exit; one object; simulator without latency, client rate 1000/s):",
        startup.repetitions
    );
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "| command | requests | min ms | median ms | max ms | peak RSS MB |"
    );
    let _ = writeln!(text, "|---|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        text,
        "| validate (action 1) | 0 | {:.2} | {:.2} | {:.2} | {} |",
        startup.validate.min * 1e3,
        startup.validate.median * 1e3,
        startup.validate.max * 1e3,
        mb(startup.validate_rss as f64)
    );
    for (action, stats, rss, requests) in &startup.runs {
        let _ = writeln!(
            text,
            "| run (action {action}) | {requests} | {:.2} | {:.2} | {:.2} | {} |",
            stats.min * 1e3,
            stats.median * 1e3,
            stats.max * 1e3,
            mb(*rss as f64)
        );
    }
    let _ = writeln!(text);
    let _ = writeln!(text, "Bars (DESIGN §9, at the largest size):");
    let _ = writeln!(text);
    let largest = options.sizes.iter().copied().max().unwrap_or(0);
    for row in rows.iter().filter(|row| row.size == largest) {
        let run = if row.rerun { "re-run" } else { "first run" };
        let requests_ok = row.sent <= row.minimum && row.reported <= row.minimum;
        let _ = writeln!(
            text,
            "- action {} {run}: requests {} ≤ {}: {}",
            row.action,
            row.sent,
            row.minimum,
            verdict(requests_ok)
        );
        if row.action == 1 && !row.rerun {
            let deviation = (row.rate() - options.rate).abs() / options.rate;
            let _ = writeln!(
                text,
                "- action 1 {run}: rate {:.1}/s within 5% of {}/s ({:.1}%): {}",
                row.rate(),
                options.rate,
                deviation * 100.0,
                verdict(deviation <= 0.05)
            );
        } else if row.action != 1 {
            let ratio = row.wall() / row.floor();
            let _ = writeln!(
                text,
                "- action {} {run}: wall {:.2} s ≤ {WALL_BAR} × floor {:.2} s ({ratio:.2}×; \
                 rate/family/latency floor {:.2} s, idle client {:.2} s): {}",
                row.action,
                row.wall(),
                row.floor(),
                row.floor_s,
                row.idle_client_s,
                verdict(ratio <= WALL_BAR)
            );
            if let Some(phase) = row.measured.request_phase_s {
                let _ = writeln!(
                    text,
                    "  (not a bar: its requests phase took {phase:.2} s, {:.2}× the idle client)",
                    phase / row.idle_client_s.max(f64::EPSILON)
                );
            }
        }
        let _ = writeln!(
            text,
            "- action {} {run}: peak RSS {} MB ≤ 3 × {} MB + 30 MB = {} MB: {}",
            row.action,
            mb(row.measured.max_rss_bytes as f64),
            mb(row.envelope_bytes as f64),
            mb(row.rss_bar()),
            verdict(row.measured.max_rss_bytes as f64 <= row.rss_bar())
        );
    }
    let _ = writeln!(
        text,
        "- one-object validate median {:.2} ms < 10 ms: {}",
        startup.validate.median * 1e3,
        verdict(startup.validate.median < 0.010)
    );
    let _ = writeln!(text);
    let _ = writeln!(text, "Load average (1 min) at the end: {load_after:.2}");
    text
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}
