//! Bringing new SentinelOne items into ThreatQ run after run: the checkpoint an ingest action
//! returns and reads back ([`checkpoint`]), and reading a list oldest first from it, turning what
//! was read into indicators ([`feed`]). Shared by the ingest actions (11, 14, 18); this module
//! does not decide which list or filters an action reads (see the actions).

pub mod checkpoint;
pub mod feed;
