//! s1-actions: a SentinelOne action bundle for ThreatQ TDR Orchestrator.
//!
//! One synchronous binary: an envelope (action, configuration, indicator objects) in on stdin,
//! one result document out on stdout. The SentinelOne console simulator that `simulate`,
//! `demo`, the tests and the benchmarks run against is a crate of its own, `s1_sim`
//! (`crates/s1-sim`). Modules in the order a run passes through them; the public ones are those
//! the tests, benchmarks and the packaging `xtask` use.

pub mod cli; // commands and their flags: the only caller of `runner`
mod envelope; // the wire envelope: one serde reading, objects as slices of its text
mod indicator; // ThreatQ indicator types and the value checks per type
pub mod manifest; // action manifests: parameters, validation, defaults
pub mod connection; // the connection parameters, host-name and token rules
mod request; // envelope + manifest → a validated request, or every reason it is refused
pub mod action; // the table of actions, `RunContext`, one file per action
pub mod api; // the SentinelOne client: retries, rate limits, paging, workers
mod cores; // spreading object work over the cores
mod probe; // `probe`: the read-only conformance check of a console
pub mod runner; // request → run → one result, with the exit status
mod result; // the result document
pub mod error; // typed errors, warnings and the one exit-code mapping
pub mod output; // the only writer of stdout
mod redact; // masking the token in everything printed
mod log; // stderr: JSON lines or text
mod demo; // `demo`: the simulator plus every demo envelope
pub mod spec; // `spec`: manifests and JSON Schemas
