//! s1-actions: a SentinelOne action bundle for ThreatQ TDR Orchestrator.

pub mod connection;
pub mod error;
pub mod log;
pub mod redact;
pub mod simulator;
