//! s1-actions: a SentinelOne action bundle for ThreatQ TDR Orchestrator.

pub mod connection;
pub mod envelope;
pub mod error;
pub mod indicator;
pub mod log;
pub mod manifest;
pub mod redact;
