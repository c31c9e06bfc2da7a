//! ThreatQ indicator types and the validation and normalisation of their values (DESIGN §5).
//!
//! Each value is checked on its own: a bad value fails only its object. Normalisation is what
//! SentinelOne is sent — hashes in lower case, IP addresses in canonical form, host names in
//! lower case without a trailing dot. This module knows nothing of actions or of SentinelOne's
//! own type names (each action maps types itself).

use std::net::{Ipv4Addr, Ipv6Addr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The indicator types the bundle understands, by their ThreatQ names.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum IndicatorType {
    #[serde(rename = "FQDN")]
    Fqdn,
    #[serde(rename = "File Path")]
    FilePath,
    #[serde(rename = "IP Address")]
    IpAddress,
    #[serde(rename = "IPv6 Address")]
    Ipv6Address,
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "SHA-1")]
    Sha1,
    #[serde(rename = "SHA-256")]
    Sha256,
    #[serde(rename = "URL")]
    Url,
}

/// Longest file path accepted; longer values are not paths SentinelOne could have recorded.
const MAX_PATH_LEN: usize = 4096;
/// Longest URL accepted (a common server limit).
const MAX_URL_LEN: usize = 8192;

impl IndicatorType {
    pub const ALL: [IndicatorType; 8] = [
        Self::Fqdn,
        Self::FilePath,
        Self::IpAddress,
        Self::Ipv6Address,
        Self::Md5,
        Self::Sha1,
        Self::Sha256,
        Self::Url,
    ];

    /// The ThreatQ name, e.g. `SHA-1`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fqdn => "FQDN",
            Self::FilePath => "File Path",
            Self::IpAddress => "IP Address",
            Self::Ipv6Address => "IPv6 Address",
            Self::Md5 => "MD5",
            Self::Sha1 => "SHA-1",
            Self::Sha256 => "SHA-256",
            Self::Url => "URL",
        }
    }

    /// Reads a ThreatQ type name, ignoring case and surrounding space.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name))
    }

    /// The value as it is sent to SentinelOne, or one sentence saying why it is not valid.
    pub fn normalise(self, value: &str) -> Result<String, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("the value is empty".into());
        }
        match self {
            Self::Md5 => hex_hash(value, 32, "an MD5 hash"),
            Self::Sha1 => hex_hash(value, 40, "a SHA-1 hash"),
            Self::Sha256 => hex_hash(value, 64, "a SHA-256 hash"),
            Self::IpAddress => value
                .parse::<Ipv4Addr>()
                .map(|ip| ip.to_string())
                .map_err(|_| format!("'{}' is not an IPv4 address", shorten(value))),
            Self::Ipv6Address => value
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<Ipv6Addr>()
                .map(|ip| ip.to_string())
                .map_err(|_| format!("'{}' is not an IPv6 address", shorten(value))),
            Self::Fqdn => fqdn(value),
            Self::Url => url(value),
            Self::FilePath => file_path(value),
        }
    }
}

fn hex_hash(value: &str, len: usize, what: &str) -> Result<String, String> {
    if value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(format!(
            "'{}' is not {what} ({len} hexadecimal characters)",
            shorten(value)
        ))
    }
}

fn fqdn(value: &str) -> Result<String, String> {
    let name = value
        .strip_suffix('.')
        .unwrap_or(value)
        .to_ascii_lowercase();
    let invalid = || format!("'{}' is not a valid host name", shorten(value));
    if name.len() > 253 || !name.contains('.') {
        return Err(invalid());
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            // Underscores are not valid in host names but are common in malicious DNS names
            // (e.g. `_dmarc`, DGA output); SentinelOne stores them, so accept them.
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    // A name made only of digits and dots is an IP address, not a host name.
    let all_numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if labels_ok && !all_numeric {
        Ok(name)
    } else {
        Err(invalid())
    }
}

fn url(value: &str) -> Result<String, String> {
    if value.len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} characters"));
    }
    let parsed = url::Url::parse(value)
        .map_err(|_| format!("'{}' is not an absolute URL", shorten(value)))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(format!("'{}' is not an http or https URL", shorten(value)));
    }
    // The value is kept as written: it is what analysts searched for and what ThreatQ holds.
    Ok(value.to_string())
}

fn file_path(value: &str) -> Result<String, String> {
    if value.len() > MAX_PATH_LEN {
        return Err(format!("the path is longer than {MAX_PATH_LEN} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("the path contains control characters".into());
    }
    Ok(value.to_string())
}

/// At most 80 characters of a value, for messages about huge inputs. Secrets are masked
/// before the cut, which would otherwise leave part of one for the output redactor to miss.
fn shorten(value: &str) -> String {
    const MAX: usize = 80;
    let value = crate::redact::redact(value);
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip_and_ignore_case() {
        for kind in IndicatorType::ALL {
            assert_eq!(IndicatorType::from_name(kind.name()), Some(kind));
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.name());
        }
        assert_eq!(
            IndicatorType::from_name(" sha-1 "),
            Some(IndicatorType::Sha1)
        );
        assert_eq!(IndicatorType::from_name("CVE"), None);
    }

    #[test]
    fn hashes_need_exact_hex_length_and_are_lowercased() {
        let sha1 = "7EB2197D6FD80C31BD04D3A7FB8C725EB9789013";
        assert_eq!(
            IndicatorType::Sha1.normalise(sha1).unwrap(),
            sha1.to_lowercase()
        );
        assert!(IndicatorType::Sha1.normalise(&sha1[1..]).is_err());
        assert!(
            IndicatorType::Sha1
                .normalise("zz".repeat(20).as_str())
                .is_err()
        );
        assert!(IndicatorType::Md5.normalise(&"a".repeat(32)).is_ok());
        assert!(IndicatorType::Sha256.normalise(&"a".repeat(64)).is_ok());
        assert!(IndicatorType::Sha256.normalise(sha1).is_err());
    }

    #[test]
    fn addresses_are_parsed_and_canonical() {
        assert_eq!(
            IndicatorType::IpAddress.normalise(" 10.0.0.1 ").unwrap(),
            "10.0.0.1"
        );
        assert!(IndicatorType::IpAddress.normalise("10.0.0.256").is_err());
        assert!(IndicatorType::IpAddress.normalise("::1").is_err());
        assert_eq!(
            IndicatorType::Ipv6Address
                .normalise("2001:DB8:0:0::1")
                .unwrap(),
            "2001:db8::1"
        );
        assert!(IndicatorType::Ipv6Address.normalise("10.0.0.1").is_err());
    }

    #[test]
    fn host_names_and_urls() {
        assert_eq!(
            IndicatorType::Fqdn.normalise("Evil.Example.").unwrap(),
            "evil.example"
        );
        assert!(IndicatorType::Fqdn.normalise("localhost").is_err());
        assert!(IndicatorType::Fqdn.normalise("bad..example").is_err());
        assert!(IndicatorType::Fqdn.normalise("-bad.example").is_err());
        assert!(IndicatorType::Fqdn.normalise("1.2.3.4").is_err());
        assert!(IndicatorType::Fqdn.normalise("a b.example").is_err());
        assert!(
            IndicatorType::Url
                .normalise("https://evil.example/x?y=1")
                .is_ok()
        );
        assert!(IndicatorType::Url.normalise("ftp://evil.example/").is_err());
        assert!(IndicatorType::Url.normalise("evil.example/x").is_err());
    }

    #[test]
    fn file_paths_refuse_control_characters() {
        assert!(
            IndicatorType::FilePath
                .normalise(r"C:\Windows\evil.exe")
                .is_ok()
        );
        assert!(IndicatorType::FilePath.normalise("a\u{0}b").is_err());
        assert!(IndicatorType::FilePath.normalise("   ").is_err());
    }

    #[test]
    fn huge_values_are_shortened_in_messages() {
        let huge = "g".repeat(100_000);
        let message = IndicatorType::Sha1.normalise(&huge).unwrap_err();
        assert!(message.len() < 200);
    }
}
