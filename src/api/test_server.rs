//! The scripted loopback server of the client's unit tests (test builds only): the simulator
//! crate's [`ScriptedServer`], with the base URL as this crate's [`BaseUrl`], and clients of it.
//!
//! The server itself (script, recording, raw socket control for dropped and stalled answers)
//! lives in `s1_sim::scripted`, next to the console simulator whose HTTP codec it shares, so the
//! bundle has one hand-written test HTTP server. This module only adapts it to `ApiClient`.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use s1_sim::scripted::Reply;
use s1_sim::scripted::ScriptedServer;

use super::{ApiClient, ClientSettings, RecordingSleeper};
use crate::connection::{BaseUrl, Secret};

/// The token every test client sends.
pub(crate) const TEST_TOKEN: &str = "test-token-5ecr3t-value";

/// A [`ScriptedServer`] that hands out its address as a [`BaseUrl`].
pub(crate) struct TestServer(ScriptedServer);

impl TestServer {
    /// Starts serving `script` (see [`ScriptedServer::start`]); panics if no loopback port can
    /// be bound, which only a broken test machine does.
    pub(crate) fn start(script: Vec<Reply>) -> Self {
        Self(ScriptedServer::start(script).expect("bind a loopback port"))
    }

    pub(crate) fn base(&self) -> BaseUrl {
        BaseUrl::parse(&self.0.base_url()).expect("loopback base URL")
    }
}

impl Deref for TestServer {
    type Target = ScriptedServer;

    fn deref(&self) -> &ScriptedServer {
        &self.0
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
