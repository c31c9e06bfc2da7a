//! The connection parameters every action shares (DESIGN §4), typed, and the console base URL.
//!
//! This module owns the rules of the text that reaches the network: the console hostname (which
//! forms are accepted, `http://` only for loopback, no credentials, no host that cannot be a
//! console), the ThreatQ host of the IOC backlink, and the API token (it must be an HTTP header
//! value); [`check_text`] is how the manifest validator applies them, so `validate` and `run`
//! refuse the same values. It also owns the [`Secret`] wrapper that keeps the token out of
//! `Debug` output. It does not build the HTTP agent (see `api::client`) and does not validate
//! types or ranges: the manifest validator has done that before a [`ConnectionConfig`] is
//! deserialized.

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

/// Name of the console host parameter.
pub const HOSTNAME: &str = "hostname";
/// Name of the API token parameter.
pub const API_TOKEN: &str = "api_token";
/// Name of the ThreatQ host parameter of the IOC export (the indicators' backlink).
pub const THREATQ_HOSTNAME: &str = "threatq_hostname";

/// Longest host name DNS can carry (RFC 1035 §2.3.4: 255 octets on the wire, 253 as text).
const MAX_HOST_NAME_LEN: usize = 253;
/// Longest label of a host name (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// The rules, beyond its manifest type, of a text parameter whose value reaches the network:
/// the console host, the token (an HTTP header value) and the ThreatQ host of the backlink.
/// `text` is the trimmed value. The error is a clause for "<Label> (<name>) is not usable: …"
/// and never quotes the value: a hostname may hold credentials, and a token is secret.
///
/// The manifest validator calls this for every text parameter, so `validate` and `run` refuse
/// the same values, before any request.
pub fn check_text(param: &str, text: &str) -> Result<(), String> {
    match param {
        HOSTNAME => BaseUrl::parse(text).map(drop),
        API_TOKEN => check_api_token(text),
        THREATQ_HOSTNAME => threatq_base(text).map(drop),
        _ => Ok(()),
    }
}

/// Checks that `token` can go on the wire as it is, in `Authorization: ApiToken <token>`.
///
/// An HTTP field value is visible ASCII, spaces and tabs (RFC 9110 §5.5); CR, LF and NUL would
/// end or corrupt the header (and the `http` crate refuses them before anything is sent), and
/// non-ASCII bytes are obsolete text no SentinelOne token holds. Tabs and other controls are
/// refused too: no token is made of them, and a pasted one is a mistake to report, not to send.
/// The message names the kind of character, never the token or a piece of it.
pub fn check_api_token(token: &str) -> Result<(), String> {
    let bad = token.chars().find(|ch| !(' '..='~').contains(ch));
    match bad {
        None => Ok(()),
        Some(ch) => {
            let kind = match ch {
                '\r' | '\n' => "a line break",
                '\0' => "a NUL character",
                '\t' => "a tab",
                ch if ch.is_control() => "a control character",
                _ => "a non-ASCII character",
            };
            Err(format!(
                "the token holds {kind}; it is sent in an HTTP header, which takes only printable ASCII"
            ))
        }
    }
}

/// The scheme, host and port of a console, e.g. `https://usea1.sentinelone.net`, without a
/// trailing slash. API paths are appended to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Applies the hostname rules of DESIGN §4.
    ///
    /// Accepts `host`, `host:port`, `https://host[:port]`, and `http://host:port` only when the
    /// host is loopback (127.0.0.0/8, `::1`, `localhost`). A path other than `/`, a query, a
    /// fragment, credentials, another scheme, or a host that cannot be a console (see
    /// [`HostUrl::parse`]) is an error, returned as one sentence that never quotes the input.
    pub fn parse(input: &str) -> Result<Self, String> {
        let url = HostUrl::parse(input)?;
        let loopback = match &url.host {
            url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
            url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
        };
        match url.scheme.as_str() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(
                    "http:// is allowed only for loopback hosts (the simulator); use https://"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "the scheme '{other}://' is not supported; use https://"
                ));
            }
        }
        Ok(Self(url.base(&url.scheme)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full URL of an API v2.1 path such as `/restrictions`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/web/api/v2.1{path}", self.0)
    }
}

/// `https://host[:port]` of the ThreatQ instance named by `threatq_hostname` (`host`,
/// `host:port`, or with `http://` or `https://`), the start of every backlink. The host rules
/// are the console's (see [`HostUrl::parse`]): no credentials, path, query or fragment, no
/// wildcard or bare number; the link is always https, whatever scheme was given.
pub fn threatq_base(input: &str) -> Result<String, String> {
    let url = HostUrl::parse(input)?;
    match url.scheme.as_str() {
        "https" | "http" => Ok(url.base("https")),
        other => Err(format!(
            "the scheme '{other}://' is not supported; give the ThreatQ host name"
        )),
    }
}

/// A URL that names a host and nothing else: `[scheme://]host[:port][/]`.
struct HostUrl {
    scheme: String,
    host: url::Host<String>,
    port: Option<u16>,
}

impl HostUrl {
    /// Reads `input` (`https://` when it names no scheme) and refuses what cannot name a server
    /// the runner may send a token to: credentials, a path, query or fragment, port 0, a
    /// wildcard or any character outside letters, digits, `-` and `_` in a name, an empty or
    /// over-long label, and a number that the URL standard would read as an IPv4 address
    /// (`12` is 0.0.0.12, `3232235777` is 192.168.1.1, `010.1` is octal): an address must be
    /// written as four decimal parts.
    ///
    /// No message quotes the input, which may hold a password; the host is named only once it
    /// has been read apart from any credentials.
    fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("the hostname is empty".into());
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("https://{trimmed}")
        };
        // url's parse errors are fixed phrases ("invalid port number"), never the input.
        let url = url::Url::parse(&with_scheme)
            .map_err(|err| format!("it is not a valid host name ({err})"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("it must not contain credentials (user:password@)".into());
        }
        let host = url
            .host()
            .map(|host| host.to_owned())
            .ok_or_else(|| "it names no host".to_string())?;
        if !(url.path().is_empty() || url.path() == "/") || url.query().is_some() {
            return Err(
                "it must be a host name only, without a path or query (the API path is added automatically)"
                    .into(),
            );
        }
        if url.fragment().is_some() {
            return Err("it must not contain a fragment (#…)".into());
        }
        if url.port() == Some(0) {
            return Err("port 0 is not a port a server listens on".into());
        }
        match &host {
            url::Host::Domain(name) => check_host_name(name)?,
            url::Host::Ipv4(ip) => {
                // The URL standard reads `12`, `0x7f.1` and `010.0.0.1` as addresses; only the
                // dotted-decimal spelling, which Rust's parser alone accepts, is meant as one.
                let written = raw_host(&with_scheme);
                if written.parse::<std::net::Ipv4Addr>().ok() != Some(*ip) {
                    return Err(
                        "a bare number is not a host name; write an IPv4 address as four decimal parts (a.b.c.d)"
                            .into(),
                    );
                }
            }
            url::Host::Ipv6(_) => {}
        }
        Ok(Self {
            scheme: url.scheme().to_string(),
            host,
            port: url.port(),
        })
    }

    /// `scheme://host[:port]`.
    fn base(&self, scheme: &str) -> String {
        match self.port {
            Some(port) => format!("{scheme}://{}:{port}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }
}

/// The host as written in `url` (which has a scheme): between `://` (or the last `@` of the
/// authority) and the port, path, query or fragment.
fn raw_host(url: &str) -> &str {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority
        .split(['/', '\\', '?', '#'])
        .next()
        .unwrap_or(authority);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    host_port.split(':').next().unwrap_or(host_port)
}

/// A DNS host name as the url crate normalised it (lower case, IDNA to punycode): labels of
/// letters, digits, `-` and `_` (underscores occur in internal names), none empty, none
/// starting or ending with `-`, at most 63 bytes each and 253 in all (RFC 1035 §2.3.1, §2.3.4).
fn check_host_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_HOST_NAME_LEN {
        return Err(format!(
            "the host name is longer than the {MAX_HOST_NAME_LEN} characters DNS allows"
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(
                "the host name has an empty label (two dots in a row, or a dot at its start or end)"
                    .into(),
            );
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "a label of the host name is longer than the {MAX_LABEL_LEN} characters DNS allows"
            ));
        }
        if label.contains('*') {
            return Err("a wildcard (*) cannot name one console".into());
        }
        let allowed = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_';
        if !label.bytes().all(allowed) || label.starts_with('-') || label.ends_with('-') {
            return Err(
                "the host name may hold only letters, digits, '-' and '_' between its dots".into(),
            );
        }
    }
    Ok(())
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
    fn refuses_hosts_that_cannot_be_a_console() {
        for (input, why) in [
            ("12", "bare number"),
            ("3232235777", "bare number"),
            ("https://12:443", "bare number"),
            ("0x7f.1", "bare number"),
            ("010.0.0.1", "bare number"),
            ("127.1", "bare number"),
            ("http://2130706433:9", "bare number"),
            ("usea1.sentinelone.net:0", "port 0"),
            ("http://127.0.0.1:0", "port 0"),
            ("http://[::1]:0", "port 0"),
            ("*.sentinelone.net", "wildcard"),
            ("https://*:443", "wildcard"),
            ("a..b", "empty label"),
            (".sentinelone.net", "empty label"),
            ("sentinelone.net.", "empty label"),
            ("exa$mple.com", "letters, digits"),
            ("-usea1.sentinelone.net", "letters, digits"),
            ("user@usea1.sentinelone.net", "credentials"),
            ("https://:pw@usea1.sentinelone.net", "credentials"),
        ] {
            let err = BaseUrl::parse(input).expect_err(input);
            assert!(err.contains(why), "{input}: {err}");
        }
        let long = format!("{}.example", "a".repeat(64));
        assert!(BaseUrl::parse(&long).unwrap_err().contains("63"));
        let long = ["abcdefghij"; 25].join(".");
        assert!(BaseUrl::parse(&long).unwrap_err().contains("253"));
        // Addresses written as four decimal parts, and names with underscores, are fine.
        assert_eq!(
            BaseUrl::parse("10.1.2.3:8443").unwrap().as_str(),
            "https://10.1.2.3:8443"
        );
        assert!(BaseUrl::parse("s1_console.corp.example").is_ok());
        assert!(BaseUrl::parse("bücher.example").is_ok());
    }

    #[test]
    fn no_hostname_message_quotes_the_input_or_its_credentials() {
        for input in [
            "https://admin:hunter2secret@usea1.sentinelone.net",
            "https://admin:hunter2secret@usea1.sentinelone.net/path?q#f",
            "admin:hunter2secret@usea1.sentinelone.net",
            "http://admin:hunter2secret@10.0.0.1:80",
            "ftp://admin:hunter2secret@h",
            "https://admin:hunter2secret@",
            "https://admin:hunter2secret@12",
            "https://admin:hunter2secret@*.x:0",
            "admin:hunter2secret@a..b",
            "https://hunter2secret.example/path",
            "http://hunter2secret.example",
            "hunter2secret:99999",
        ] {
            assert!(BaseUrl::parse(input).is_err(), "{input}");
            // (threatq_base accepts http://, which the backlink turns into https.)
            for err in [BaseUrl::parse(input).err(), threatq_base(input).err()]
                .into_iter()
                .flatten()
            {
                assert!(
                    !err.contains("hunter2") && !err.contains("admin"),
                    "{input}: {err}"
                );
            }
        }
    }

    #[test]
    fn threatq_host_follows_the_console_rules_and_links_over_https() {
        for (input, expected) in [
            ("threatq.example.com", "https://threatq.example.com"),
            (
                "https://threatq.example.com/",
                "https://threatq.example.com",
            ),
            ("http://threatq.example.com", "https://threatq.example.com"),
            ("tq.example:8443", "https://tq.example:8443"),
            ("10.1.2.3", "https://10.1.2.3"),
        ] {
            assert_eq!(threatq_base(input).unwrap(), expected, "{input}");
        }
        for input in [
            "user:pw@tq.example",
            "https://tq.example/indicators",
            "https://tq.example?x=1",
            "https://tq.example#x",
            "tq.example:0",
            "*.tq.example",
            "12",
            "ftp://tq.example",
        ] {
            assert!(threatq_base(input).is_err(), "{input}");
        }
        assert!(check_text(THREATQ_HOSTNAME, "tq.example/x").is_err());
        assert!(check_text("description", "tq.example/x").is_ok());
    }

    #[test]
    fn tokens_must_be_printable_ascii_and_are_never_quoted() {
        assert!(check_api_token("eyJraWQiOiJ0b2tlblNpZ25pbmciLCJhbGciOiJIUzI1NiJ9.x-y_z").is_ok());
        assert!(check_api_token("with inner space").is_ok());
        for (token, kind) in [
            ("secret-part\r\nX-Injected: 1", "line break"),
            ("secret-part\nmore", "line break"),
            ("secret-part\0", "NUL"),
            ("secret\tpart", "tab"),
            ("secret\u{7f}part", "control"),
            ("secret\u{1b}part", "control"),
            ("secrét-part", "non-ASCII"),
            ("secret\u{a0}part", "non-ASCII"),
        ] {
            let err = check_api_token(token).unwrap_err();
            assert!(err.contains(kind), "{token:?}: {err}");
            assert!(!err.contains("secret"), "{err}");
            assert!(check_text(API_TOKEN, token).is_err());
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
