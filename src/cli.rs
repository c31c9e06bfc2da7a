//! The command line: subcommands, their flags and help, and what each one prints.
//!
//! Parsing is clap's; each subcommand reads its input, calls the library and hands one document
//! to `output`, the only stdout writer. Usage errors exit 2 with the message on stderr; `--help`
//! prints help on stdout and exits 0.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use s1_sim::{Scenario, Simulator};
use serde_json::json;

use crate::error::{ErrorCode, ExitStatus, Failure};
use crate::result::RunResult;
use crate::runner::{self, Mode};
use crate::{demo, log, manifest, output, spec};

/// SentinelOne actions for ThreatQ TDR Orchestrator.
///
/// A workflow pipes a JSON envelope (action, configuration, indicator objects) into `run`; the
/// result document (every object with the attributes the action added, one outcome per object
/// and a run summary) is printed on stdout. Logs go to stderr. With no subcommand and a piped
/// stdin, `run` is assumed.
#[derive(Debug, Parser)]
#[command(name = "s1-actions", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the envelope's action against SentinelOne and print the result document.
    ///
    /// Exit codes: 0 all objects succeeded or were skipped; 1 some objects failed; 3 invalid
    /// envelope or configuration (nothing sent); 4 credentials or permission rejected; 5
    /// SentinelOne or the network failed after retries; 70 internal error.
    Run {
        /// Read the envelope from FILE instead of stdin.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Plan the writes without sending them; read-only look-ups still run.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the manifests of the actions and the JSON Schemas of envelope, result and manifest.
    Spec {
        /// Only this action (numeric ID or name).
        action: Option<String>,
    },
    /// Check an envelope against its action's manifest and every object's value; no network.
    Validate {
        /// Read the envelope from FILE instead of stdin.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Make one cheap authenticated call: reachability, credentials and token expiry.
    ///
    /// The envelope needs only `config` (hostname and api_token); objects are ignored.
    Check {
        /// Read the envelope from FILE instead of stdin.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Read-only conformance check of a console before enabling write actions.
    ///
    /// Sends only GETs (and the token-details POST) and reports each point as confirmed,
    /// contradicted or not testable: comma-separated look-ups, IPv6 agent look-ups, the IOC
    /// scope, token expiry, the configured sites/accounts/groups, Retry-After on 429, and the
    /// token's scope. The envelope needs only `config` (checked as action 4's, which has all
    /// three scope parameters, unless `action` says otherwise). Exit codes: 0 nothing to change;
    /// 1 a finding needs a configuration change; 3 invalid configuration; 4 credentials
    /// rejected; 5 SentinelOne or the network failed.
    Probe {
        /// Read the envelope from FILE instead of stdin.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// `json`: the result document; `text`: a readable report.
        #[arg(long, value_enum, default_value_t = ProbeFormat::Json)]
        format: ProbeFormat,
    },
    /// Run the SentinelOne console simulator on loopback until interrupted.
    ///
    /// Point an envelope's hostname at the printed http://127.0.0.1:PORT and use the
    /// scenario's api_token (default "sim-token"). Scenario format: docs/simulator.md.
    Simulate {
        /// Port to listen on; 0 picks a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Scenario file that seeds the console and injects faults.
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
    },
    /// Start the simulator, run every action of the demo on it and print a readable report.
    Demo {
        /// Folder with scenario.json and the demo envelopes.
        #[arg(long, value_name = "DIR", default_value = "fixtures/demo")]
        fixtures: PathBuf,
    },
}

/// How `probe` prints its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ProbeFormat {
    Json,
    Text,
}

/// Parses `args`, runs the command, and returns the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitStatus {
    log::init();
    install_panic_hook();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let text = err.render().to_string();
            if err.use_stderr() {
                log_plain(&text);
                return ExitStatus::Usage;
            }
            return print_text(&text, ExitStatus::Success);
        }
    };
    let command = match cli.command {
        Some(command) => command,
        None if !std::io::stdin().is_terminal() => Command::Run {
            input: None,
            dry_run: false,
        },
        None => {
            let help = <Cli as clap::CommandFactory>::command()
                .render_help()
                .to_string();
            log_plain(&help);
            return ExitStatus::Usage;
        }
    };
    match command {
        Command::Run { input, dry_run } => envelope_command(input, Mode::Run { dry_run }),
        Command::Validate { input } => envelope_command(input, Mode::Validate),
        Command::Check { input } => envelope_command(input, Mode::Check),
        Command::Probe { input, format } => probe_command(input, format),
        Command::Spec { action } => spec_command(action.as_deref()),
        Command::Simulate { port, scenario } => simulate_command(port, scenario.as_ref()),
        Command::Demo { fixtures } => demo_command(&fixtures),
    }
}

fn simulate_command(port: u16, scenario: Option<&PathBuf>) -> ExitStatus {
    let scenario = match scenario {
        Some(path) => match Scenario::from_file(path) {
            Ok(scenario) => scenario,
            Err(err) => {
                log_plain(&format!("s1-actions simulate: {err:#}"));
                return ExitStatus::InvalidInput;
            }
        },
        None => Scenario::default(),
    };
    match Simulator::start_on(scenario, port) {
        Ok(simulator) => {
            log::info(
                "simulator",
                &format!(
                    "SentinelOne console simulator listening on {}",
                    simulator.base_url()
                ),
                json!({ "base_url": simulator.base_url() }),
            );
            simulator.wait();
            ExitStatus::Success
        }
        Err(err) => {
            log_plain(&format!(
                "s1-actions simulate: cannot listen on port {port}: {err}"
            ));
            ExitStatus::Upstream
        }
    }
}

fn demo_command(dir: &std::path::Path) -> ExitStatus {
    // The report is the demo's output; per-request logging would bury it.
    log::set_max_level(log::Level::Warn);
    match demo::run(dir) {
        Ok((report, all_ran)) => print_text(
            &report,
            if all_ran {
                ExitStatus::Success
            } else {
                ExitStatus::ObjectsFailed
            },
        ),
        Err(message) => {
            log_plain(&format!("s1-actions demo: {message}"));
            ExitStatus::InvalidInput
        }
    }
}

fn envelope_command(input: Option<PathBuf>, mode: Mode) -> ExitStatus {
    let text = match read_input(input.as_ref()) {
        Ok(text) => text,
        Err(failure) => return print_refusal(failure),
    };
    let text = if mode == Mode::Check {
        with_default_action(&text)
    } else {
        text
    };
    let (result, exit) = runner::execute_owned(text, mode);
    let exit = print_document(&result, exit);
    // The process ends next: freeing a 50,000-object document piece by piece only delays it.
    std::mem::forget(result);
    exit
}

fn probe_command(input: Option<PathBuf>, format: ProbeFormat) -> ExitStatus {
    let text = match read_input(input.as_ref()) {
        Ok(text) => text,
        Err(failure) => return print_refusal(failure),
    };
    let text = with_action_or(&text, PROBE_DEFAULT_ACTION);
    let (result, exit) = runner::execute_owned(text, Mode::Probe);
    match format {
        ProbeFormat::Json => print_document(&result, exit),
        ProbeFormat::Text => print_text(&crate::probe::render_text(&result), exit),
    }
}

/// The document of an envelope that could not even be read (a missing `--input` file, say).
fn print_refusal(failure: Failure) -> ExitStatus {
    let mut result = RunResult::new(None);
    result.errors.push(failure);
    result.finish();
    print_document(&result, ExitStatus::InvalidInput)
}

/// The action whose manifest a `probe` envelope without `action` is checked against: IOC
/// export has all three scope parameters (`account_ids`, `site_ids`, `group_ids`).
const PROBE_DEFAULT_ACTION: u32 = 4;

/// `check` needs only the connection parameters, which every manifest shares: an envelope
/// without `action` is checked as the first action's.
fn with_default_action(text: &str) -> String {
    match manifest::all().first() {
        Some(first) => with_action_or(text, first.id),
        None => text.to_string(),
    }
}

/// The envelope with `action` set to `id` when it names none.
fn with_action_or(text: &str, id: u32) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(mut envelope)) if !envelope.contains_key("action") => {
            envelope.insert("action".into(), json!(id));
            serde_json::Value::Object(envelope).to_string()
        }
        _ => text.to_string(),
    }
}

fn read_input(path: Option<&PathBuf>) -> Result<String, Failure> {
    let mut text = String::new();
    let read = match path {
        Some(path) => std::fs::File::open(path).and_then(|mut file| file.read_to_string(&mut text)),
        None => std::io::stdin().lock().read_to_string(&mut text),
    };
    read.map(|_| text).map_err(|err| {
        let source = path.map_or_else(|| "stdin".to_string(), |path| path.display().to_string());
        Failure::new(
            ErrorCode::InputInvalidValue,
            format!("The envelope could not be read from {source}: {err}"),
        )
        .with_field("envelope")
    })
}

fn spec_command(action: Option<&str>) -> ExitStatus {
    match spec::document(action) {
        Ok(document) => {
            let mut stdout = std::io::stdout().lock();
            exit_after_write(
                output::write_json_pretty(&mut stdout, &document),
                ExitStatus::Success,
            )
        }
        Err(failure) => {
            let mut result = RunResult::new(None);
            result.errors.push(failure);
            result.finish();
            print_document(&result, ExitStatus::InvalidInput)
        }
    }
}

fn print_document(result: &RunResult, exit: ExitStatus) -> ExitStatus {
    let mut stdout = std::io::stdout().lock();
    exit_after_write(output::write_result(&mut stdout, result), exit)
}

fn print_text(text: &str, exit: ExitStatus) -> ExitStatus {
    let mut stdout = std::io::stdout().lock();
    exit_after_write(output::write_text(&mut stdout, text.trim_end()), exit)
}

fn exit_after_write(written: std::io::Result<()>, exit: ExitStatus) -> ExitStatus {
    match written {
        Ok(()) => exit,
        Err(err) => {
            log::error(
                "output",
                &format!("The result could not be written to stdout: {err}"),
                json!(null),
            );
            ExitStatus::Internal
        }
    }
}

/// Text for people on stderr (usage errors, help without a command).
fn log_plain(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", crate::redact::redact(text.trim_end()));
}

/// Panics are reported once, through the redacting logger, instead of Rust's default message.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log::error("panic", &info.to_string(), json!(null));
    }));
}
