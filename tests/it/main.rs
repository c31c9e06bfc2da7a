//! The integration test binary: everything here runs the real `s1-actions` binary.
//!
//! - `fixtures`: every case under `fixtures/<action>/<case>/`, against the simulator, snapshotted.
//! - `cli`: commands, help, usage errors and `spec`.
//! - `batching`: request counts of large runs (batching minimums), asserted exactly.
//! - `checkpoints`: ingest checkpoints over runs fed each other's state: nothing missed or repeated.
//! - `hunt`: a hunt of 1,000 mixed indicators sends the fewest queries the length bound allows.
//! - `odd_answers`: one odd 2xx answer fails only the objects of its request.
//! - `validate_parity`: `validate` refuses exactly what `run` refuses before any request.

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod agent_matching;
mod batching;
mod checkpoints;
mod cli;
mod client;
mod deadline;
mod faults;
mod fixtures;
mod hostile_config;
mod hunt;
mod odd_answers;
mod probe;
mod properties;
mod rate_limits;
mod support;
mod tls;
mod validate_parity;
