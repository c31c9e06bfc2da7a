//! s1-actions: a SentinelOne action bundle for ThreatQ TDR Orchestrator.
//!
//! One synchronous binary: an envelope (action, configuration, indicator objects) in on stdin,
//! one result document out on stdout. The modules, in the order a run passes through them:
//! `cli` (commands) → `envelope` (wire input) → `request` (validated against `manifest`) →
//! `action` (the table, and each action in its own file, over `api`, the SentinelOne client) →
//! `runner` (outcomes into a `result`) → `output` (the only stdout writer). `log` and `redact`
//! keep stderr useful and the token secret.
//!
//! The SentinelOne console simulator that `simulate`, `demo`, the tests and the benchmarks run
//! against is a crate of its own, `s1_sim` (`crates/s1-sim`): nothing of it is in this tree.

pub mod action;
pub mod api;
pub mod cli;
pub mod connection;
pub mod cores;
pub mod demo;
pub mod envelope;
pub mod error;
pub mod indicator;
pub mod log;
pub mod manifest;
pub mod output;
pub mod probe;
pub mod redact;
pub mod request;
pub mod result;
pub mod runner;
pub mod spec;
