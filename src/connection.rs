//! The connection parameters every action shares (DESIGN §4), typed, and the console base URL.
//!
//! This module owns the hostname rules (which forms are accepted, `http://` only for loopback)
//! and the [`Secret`] wrapper that keeps the API token out of `Debug` output. It does not build
//! the HTTP agent (see `api::client`) and does not validate ranges: the manifest validator has
//! done that before a [`ConnectionConfig`] is deserialized.

use std::fmt;
use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// A secret string: `Debug` and `Display` print `****`; only [`Secret::expose`] reveals it.
#[derive(Clone, PartialEq, Eq, JsonSchema)]
#[schemars(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it (the `Authorization` header) and
    /// for the redactor.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// The connection parameters shared by every action's manifest, after validation and defaults.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// SentinelOne console host: `host`, `host:port` or `https://host[:port]`; `http://` only
    /// for loopback hosts (the simulator).
    pub hostname: String,
    /// SentinelOne API token, sent as `Authorization: ApiToken <token>`.
    pub api_token: Secret,
    /// Verify the console's TLS certificate.
    pub verify_tls: bool,
    /// Extra trusted root certificates, as PEM text or the path of a PEM file.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// Proxy URL; when empty the standard proxy environment variables apply.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Timeout of one HTTP request, in seconds.
    pub request_timeout_seconds: u64,
    /// Retries of one request on 429, 408, 5xx (except 501), connection and timeout errors.
    pub max_retries: u32,
    /// Requests per second, shared by all parallel requests.
    pub requests_per_second: f64,
    /// Requests in flight at once.
    pub max_concurrency: u32,
    /// How many values a multi-value look-up filter (`value__contains=a,b,c`) carries per request.
    #[serde(default)]
    pub lookup_values_per_request: LookupValues,
}

/// How the look-ups that find many indicators at once send their values (the
/// `lookup_values_per_request` parameter). `s1-actions probe` tells which one a console needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LookupValues {
    /// Many values per request, comma-separated, as SentinelOne's list filters take them
    /// (SW24 marks every array query parameter `collectionFormat: 'csv'`; DESIGN §7).
    #[default]
    Many,
    /// One value per request: for a console that reads a comma-separated `__contains` value as
    /// one text. Results are the same; the run sends one look-up per value instead of one per
    /// few hundred.
    One,
}

/// Names of the connection parameters; every manifest lists them with the same definition.
pub const CONNECTION_PARAMS: [&str; 10] = [
    "hostname",
    "api_token",
    "verify_tls",
    "ca_bundle",
    "proxy",
    "request_timeout_seconds",
    "max_retries",
    "requests_per_second",
    "max_concurrency",
    "lookup_values_per_request",
];

/// The scheme, host and port of a console, e.g. `https://usea1.sentinelone.net`, without a
/// trailing slash. API paths are appended to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Applies the hostname rules of DESIGN §4.
    ///
    /// Accepts `host`, `host:port`, `https://host[:port]`, and `http://host:port` only when the
    /// host is loopback (127.0.0.0/8, `::1`, `localhost`). A path other than `/`, a query, a
    /// fragment, credentials or another scheme is an error, returned as one sentence.
    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("the hostname is empty".into());
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("https://{trimmed}")
        };
        let url = url::Url::parse(&with_scheme)
            .map_err(|err| format!("'{trimmed}' is not a valid host name ({err})"))?;
        let host = url
            .host()
            .ok_or_else(|| format!("'{trimmed}' has no host name"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the hostname must not contain credentials".into());
        }
        if !(url.path().is_empty() || url.path() == "/") || url.query().is_some() {
            return Err(format!(
                "'{trimmed}' must be a host name only, without a path or query (the API path is added automatically)"
            ));
        }
        if url.fragment().is_some() {
            return Err(format!("'{trimmed}' must not contain a fragment"));
        }
        let loopback = match &host {
            url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
            url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(format!(
                    "'{trimmed}' uses http://, which is allowed only for loopback hosts; use https://"
                ));
            }
            other => {
                return Err(format!(
                    "the scheme '{other}://' is not supported; use https://"
                ));
            }
        }
        let mut base = format!("{}://{}", url.scheme(), host);
        if let Some(port) = url.port() {
            base.push_str(&format!(":{port}"));
        }
        Ok(Self(base))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full URL of an API v2.1 path such as `/restrictions`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/web/api/v2.1{path}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        let cases = [
            (
                "usea1-partners.sentinelone.net",
                "https://usea1-partners.sentinelone.net",
            ),
            (
                "usea1.sentinelone.net:8443",
                "https://usea1.sentinelone.net:8443",
            ),
            (
                "https://usea1.sentinelone.net/",
                "https://usea1.sentinelone.net",
            ),
            (
                "HTTPS://Usea1.SentinelOne.net",
                "https://usea1.sentinelone.net",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.9.9.9:1", "http://127.9.9.9:1"),
            ("http://localhost:9000", "http://localhost:9000"),
            ("http://[::1]:9000", "http://[::1]:9000"),
        ];
        for (input, expected) in cases {
            assert_eq!(BaseUrl::parse(input).unwrap().as_str(), expected, "{input}");
        }
    }

    #[test]
    fn refuses_paths_schemes_and_plain_http_to_remote_hosts() {
        for input in [
            "",
            "http://usea1.sentinelone.net",
            "http://10.0.0.1:80",
            "https://usea1.sentinelone.net/web/api/v2.1",
            "https://usea1.sentinelone.net?x=1",
            "ftp://usea1.sentinelone.net",
            "https://user:pw@usea1.sentinelone.net",
            "https://usea1.sentinelone.net#frag",
            "not a host",
        ] {
            assert!(
                BaseUrl::parse(input).is_err(),
                "{input:?} should be refused"
            );
        }
    }

    #[test]
    fn secret_never_prints_itself() {
        let secret = Secret::new("s3cr3t-token");
        assert_eq!(format!("{secret:?} {secret}"), "**** ****");
        assert_eq!(secret.expose(), "s3cr3t-token");
    }

    #[test]
    fn api_paths_are_appended_under_v2_1() {
        let base = BaseUrl::parse("h.example").unwrap();
        assert_eq!(
            base.api("/threats"),
            "https://h.example/web/api/v2.1/threats"
        );
    }
}
