//! The pure decision of what one HTTP attempt means: success, a retry, or a failure to report.
//!
//! Everything here is a function of its inputs (status, `Retry-After`, body bytes, the current
//! time, or a transport error), so the whole table is unit-tested without a server. This module
//! does not count attempts, sleep, or know the retry budget (see `retry` and `client`), and it
//! never sees the API token: messages are built from the status, SentinelOne's own error body
//! and the endpoint (`GET /threats`), never from request headers. An error body that echoes
//! the token is masked by the redactor before it is quoted and shortened.

use std::io;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ErrorCode, Failure};
use crate::redact;

/// The longest wait a `Retry-After` header may impose; longer values are cut to this.
pub(super) const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

/// Longest piece of SentinelOne's error text quoted in a message.
const MAX_QUOTED_CHARS: usize = 300;

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Outcome {
    /// A 2xx answer and its JSON body (`Null` when the body was empty).
    Success(Value),
    /// A transient failure: try again after `after` (from `Retry-After`) or a computed backoff.
    /// `failure` is what is reported if no retry is left.
    Retry {
        after: Option<Duration>,
        failure: Failure,
    },
    /// A failure that retrying the same request cannot fix.
    GiveUp(Failure),
}

/// Classifies an HTTP answer to `endpoint` (e.g. `POST /restrictions`, used in messages).
///
/// 2xx → success (or `upstream.bad_response` if the body is not JSON); 408 and 429 and every
/// 5xx except 501 → retry; 401 → `auth.rejected`; 403 → `auth.forbidden`; other 4xx →
/// `upstream.rejected` carrying SentinelOne's `errors[0].code`; 3xx (redirects are never
/// followed) and anything else → `upstream.bad_response`.
pub(super) fn classify_response(
    endpoint: &str,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: SystemTime,
) -> Outcome {
    if (200..300).contains(&status) {
        return parse_success_body(endpoint, status, body);
    }
    let error = ErrorBody::parse(body);
    let summary = error.summary();
    let quoted = |fallback: &str| summary.clone().unwrap_or_else(|| fallback.to_string());
    let reason = reason_phrase(status);
    let failure = |code: ErrorCode, message: String| {
        Failure::new(code, message)
            .with_http_status(status)
            .with_upstream_code(error.code)
    };
    let after = retry_after.and_then(|value| parse_retry_after(value, now));
    match status {
        401 => Outcome::GiveUp(failure(
            ErrorCode::AuthRejected,
            format!(
                "SentinelOne rejected the API token (HTTP 401: {}); check that the token is valid and has not expired",
                quoted("Authentication Failed")
            ),
        )),
        403 => Outcome::GiveUp(failure(
            ErrorCode::AuthForbidden,
            format!(
                "The API token lacks the permission or scope for {endpoint} (HTTP 403: {}); check the service user's role and scope",
                quoted("Forbidden")
            ),
        )),
        408 => Outcome::Retry {
            after,
            failure: failure(
                ErrorCode::NetworkTimeout,
                format!("SentinelOne timed out {endpoint} (HTTP 408)"),
            ),
        },
        429 => Outcome::Retry {
            after,
            failure: failure(
                ErrorCode::UpstreamRateLimited,
                format!("SentinelOne is rate limiting requests (HTTP 429 on {endpoint})"),
            ),
        },
        500..=599 => {
            let message = match &summary {
                Some(text) => format!("SentinelOne failed {endpoint} with HTTP {status}: {text}"),
                None => format!("SentinelOne failed {endpoint} with HTTP {status} ({reason})"),
            };
            let failure = failure(ErrorCode::UpstreamServerError, message);
            if status == 501 {
                // "Not Implemented" will not start working on the next attempt.
                Outcome::GiveUp(failure)
            } else {
                Outcome::Retry { after, failure }
            }
        }
        400..=499 => Outcome::GiveUp(failure(
            ErrorCode::UpstreamRejected,
            format!(
                "SentinelOne rejected {endpoint} (HTTP {status}: {})",
                quoted(reason)
            ),
        )),
        // A redirect comes from the console address, not from this request: the same request
        // is redirected again, and so is every other (see `Failure::ends_run`).
        300..=399 => Outcome::GiveUp(
            failure(
                ErrorCode::UpstreamBadResponse,
                format!(
                    "SentinelOne answered {endpoint} with a redirect (HTTP {status}), which is never followed; check the hostname"
                ),
            )
            .not_retryable(),
        ),
        _ => Outcome::GiveUp(failure(
            ErrorCode::UpstreamBadResponse,
            format!("SentinelOne answered {endpoint} with an unexpected HTTP status {status}"),
        )),
    }
}

/// Classifies a transport error (no HTTP status was read) of a request to `endpoint`.
///
/// Timeouts and connection failures (refused, reset, closed without an answer, DNS) are
/// retried; TLS and certificate errors never are; a malformed or oversized answer is
/// `upstream.bad_response`.
pub(super) fn classify_transport(endpoint: &str, error: &ureq::Error) -> Outcome {
    let retry = |code: ErrorCode, message: String| Outcome::Retry {
        after: None,
        failure: Failure::new(code, message),
    };
    let give_up = |code: ErrorCode, message: String| Outcome::GiveUp(Failure::new(code, message));
    let timeout = || {
        retry(
            ErrorCode::NetworkTimeout,
            format!("The request {endpoint} timed out"),
        )
    };
    let connect = |detail: &dyn std::fmt::Display| {
        retry(
            ErrorCode::NetworkConnect,
            format!("The connection to SentinelOne failed during {endpoint} ({detail})"),
        )
    };
    let tls = |detail: &dyn std::fmt::Display| {
        give_up(
            ErrorCode::NetworkTls,
            format!(
                "TLS with SentinelOne failed during {endpoint} ({detail}); check the console certificate, ca_bundle and verify_tls"
            ),
        )
    };
    match error {
        ureq::Error::Timeout(_) => timeout(),
        ureq::Error::Io(io_error) => match io_error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => timeout(),
            // rustls reports handshake and certificate failures as `InvalidData` I/O errors
            // wrapping its own error; plain HTTP never produces that kind in ureq (protocol
            // faults arrive as `Error::Protocol`).
            io::ErrorKind::InvalidData => tls(io_error),
            _ => connect(io_error),
        },
        ureq::Error::HostNotFound => connect(&"the host name could not be resolved"),
        ureq::Error::ConnectionFailed | ureq::Error::BodyStalled => connect(error),
        ureq::Error::ConnectProxyFailed(detail) => {
            connect(&format_args!("the proxy refused the connection: {detail}"))
        }
        ureq::Error::Tls(_)
        | ureq::Error::Pem(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::TlsRequired => tls(error),
        ureq::Error::BodyExceedsLimit(limit) => give_up(
            ErrorCode::UpstreamBadResponse,
            format!("SentinelOne answered {endpoint} with a body larger than {limit} bytes"),
        ),
        ureq::Error::Protocol(_)
        | ureq::Error::LargeResponseHeader(..)
        | ureq::Error::Decompress(..) => give_up(
            ErrorCode::UpstreamBadResponse,
            format!("SentinelOne answered {endpoint} with a malformed HTTP response ({error})"),
        ),
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => give_up(
            ErrorCode::Internal,
            format!("Could not build {endpoint} ({error})"),
        ),
        other => give_up(
            ErrorCode::NetworkConnect,
            format!("The request {endpoint} failed ({other})"),
        ),
    }
}

/// Parses a `Retry-After` value: delta seconds or an HTTP date, capped at [`RETRY_AFTER_CAP`].
/// A date in the past means "now" (zero); anything unparsable is `None`.
pub(super) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // Digits that overflow u64 are still "a very long time", hence the cap below.
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(RETRY_AFTER_CAP))
}

fn parse_success_body(endpoint: &str, status: u16, body: &[u8]) -> Outcome {
    match parse_success(endpoint, status, body) {
        Ok(value) => Outcome::Success(value),
        Err(failure) => Outcome::GiveUp(failure),
    }
}

/// As [`classify_response`], reading a 2xx body as `T` (only the fields `T` names, without
/// building a JSON tree); `Err` is the retry or failure outcome, never `Success`.
pub(super) fn classify_response_as<T: DeserializeOwned>(
    endpoint: &str,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: SystemTime,
) -> Result<T, Outcome> {
    if (200..300).contains(&status) {
        return parse_success(endpoint, status, body).map_err(Outcome::GiveUp);
    }
    Err(classify_response(endpoint, status, retry_after, body, now))
}

/// A 2xx body as `T`; an empty body reads as JSON `null`. A body that is not JSON, or not the
/// shape `T` needs, is `upstream.bad_response`.
fn parse_success<T: DeserializeOwned>(
    endpoint: &str,
    status: u16,
    body: &[u8],
) -> Result<T, Failure> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"null".as_slice()
    } else {
        body
    };
    // Checked as UTF-8 once, the body's strings are not checked again one by one (every key
    // of every threat of a page is read to be matched against the fields wanted). A body that
    // is not UTF-8 is read as bytes, which fails only where it must.
    let parsed = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    parsed.map_err(|error| {
        let what = if error.is_data() {
            "a body of an unexpected shape"
        } else {
            "a body that is not JSON"
        };
        Failure::new(
            ErrorCode::UpstreamBadResponse,
            format!("SentinelOne answered {endpoint} with {what} ({error})"),
        )
        .with_http_status(status)
    })
}

fn reason_phrase(status: u16) -> &'static str {
    ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("unknown status")
}

/// The first entry of SentinelOne's `{"errors":[{"code","title","detail"}]}` body, read
/// tolerantly: any field may be missing, null or of another type, and the body may not be JSON.
#[derive(Debug, Default, PartialEq)]
struct ErrorBody {
    code: Option<i64>,
    title: Option<String>,
    detail: Option<String>,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> Self {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return Self::default();
        };
        let Some(first) = value.get("errors").and_then(|errors| errors.get(0)) else {
            return Self::default();
        };
        let text = |field: &str| {
            first
                .get(field)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_string)
        };
        let code = match first.get("code") {
            Some(Value::Number(number)) => number.as_i64(),
            Some(Value::String(text)) => text.trim().parse().ok(),
            _ => None,
        };
        Self {
            code,
            title: text("title").or_else(|| first.as_str().map(str::to_string)),
            detail: text("detail"),
        }
    }

    /// "title: detail", either alone, or `None`; one line, shortened.
    fn summary(&self) -> Option<String> {
        let text = match (&self.title, &self.detail) {
            (Some(title), Some(detail)) if title != detail => format!("{title}: {detail}"),
            (Some(text), _) | (None, Some(text)) => text.clone(),
            (None, None) => return None,
        };
        // Masked before it is shortened: a console may echo the request, token included, and
        // a cut in the middle of the token would leave its start for the output redactor to miss.
        let text = redact::redact(&text);
        let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.chars().count() > MAX_QUOTED_CHARS {
            let cut: String = one_line.chars().take(MAX_QUOTED_CHARS).collect();
            Some(format!("{cut}…"))
        } else {
            Some(one_line)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(now: SystemTime, status: u16, body: &str) -> Outcome {
        classify_response("GET /threats", status, None, body.as_bytes(), now)
    }

    fn failure(outcome: &Outcome) -> &Failure {
        match outcome {
            Outcome::Retry { failure, .. } | Outcome::GiveUp(failure) => failure,
            Outcome::Success(value) => panic!("expected a failure, got {value}"),
        }
    }

    fn kind(outcome: &Outcome) -> &'static str {
        match outcome {
            Outcome::Success(_) => "success",
            Outcome::Retry { .. } => "retry",
            Outcome::GiveUp(_) => "give-up",
        }
    }

    #[test]
    fn status_table() {
        let now = SystemTime::now();
        let duplicate =
            r#"{"errors":[{"code":4000030,"title":"Already Exists Error","detail":null}]}"#;
        let statuses: [(u16, &str); 13] = [
            (200, r#"{"data":[]}"#),
            (400, ""),
            (401, ""),
            (403, ""),
            (404, ""),
            (408, ""),
            (409, duplicate),
            (429, ""),
            (500, ""),
            (501, ""),
            (502, ""),
            (503, ""),
            (504, ""),
        ];
        let table: Vec<String> = statuses
            .iter()
            .map(|(status, body)| {
                let outcome = at(now, *status, body);
                let code = match &outcome {
                    Outcome::Success(_) => "-".to_string(),
                    other => failure(other).code.to_string(),
                };
                format!("{status} {} {code}", kind(&outcome))
            })
            .collect();
        insta::assert_snapshot!(table.join("\n"), @r"
        200 success -
        400 give-up upstream.rejected
        401 give-up auth.rejected
        403 give-up auth.forbidden
        404 give-up upstream.rejected
        408 retry network.timeout
        409 give-up upstream.rejected
        429 retry upstream.rate_limited
        500 retry upstream.server_error
        501 give-up upstream.server_error
        502 retry upstream.server_error
        503 retry upstream.server_error
        504 retry upstream.server_error
        ");
    }

    #[test]
    fn retried_status_codes() {
        let now = SystemTime::now();
        let retried: Vec<u16> = (100..600)
            .filter(|status| matches!(at(now, *status, ""), Outcome::Retry { .. }))
            .collect();
        let expected: Vec<u16> = [408, 429]
            .into_iter()
            .chain((500..600).filter(|status| *status != 501))
            .collect();
        assert_eq!(retried, expected);
    }

    #[test]
    fn rejection_carries_sentinelone_code_and_text() {
        let body = r#"{"errors":[{"code":4000030,"title":"Already Exists Error","detail":null}]}"#;
        let outcome = at(SystemTime::now(), 409, body);
        let failure = failure(&outcome);
        assert_eq!(failure.http_status, Some(409));
        assert_eq!(failure.upstream_code, Some(4000030));
        assert_eq!(
            failure.message,
            "SentinelOne rejected GET /threats (HTTP 409: Already Exists Error)"
        );
        assert!(!failure.retryable);
    }

    #[test]
    fn an_echoed_token_is_masked_before_the_detail_is_shortened() {
        let token = "classify-test-token-0123456789abcdef";
        crate::redact::register(token);
        let detail = format!("{} {token} tail", "x".repeat(MAX_QUOTED_CHARS - 10));
        let body = serde_json::json!({ "errors": [{ "title": "Echo", "detail": detail }] });
        let outcome = at(SystemTime::now(), 400, &body.to_string());
        let message = &failure(&outcome).message;
        assert!(!message.contains("classify-t"), "{message}");
        assert!(
            message.contains("**"),
            "the mask stands where the token was: {message}"
        );
    }

    #[test]
    fn auth_messages_quote_sentinelone() {
        let body = r#"{"errors":[{"code":4010010,"detail":null,"title":"Authentication Failed"}]}"#;
        let outcome = at(SystemTime::now(), 401, body);
        assert!(
            failure(&outcome).message.starts_with(
                "SentinelOne rejected the API token (HTTP 401: Authentication Failed)"
            )
        );
        let body = r#"{"errors":[{"code":4030010,"title":"Forbidden","detail":"This page doesn't support multi-scopes users yet"}]}"#;
        let outcome = at(SystemTime::now(), 403, body);
        let failure = failure(&outcome);
        assert_eq!(failure.upstream_code, Some(4030010));
        assert!(
            failure
                .message
                .contains("permission or scope for GET /threats")
        );
        assert!(failure.message.contains("multi-scopes"));
    }

    #[test]
    fn error_bodies_are_read_tolerantly() {
        let cases = [
            ("", ErrorBody::default()),
            ("<html>bad gateway</html>", ErrorBody::default()),
            (r#"{"errors":[]}"#, ErrorBody::default()),
            (
                r#"{"errors":[{"code":"4000020","detail":"Account id 1 doesn't match any account"}]}"#,
                ErrorBody {
                    code: Some(4000020),
                    title: None,
                    detail: Some("Account id 1 doesn't match any account".into()),
                },
            ),
            (
                r#"{"errors":[{"code":null,"title":7,"detail":" "}]}"#,
                ErrorBody::default(),
            ),
            (
                r#"{"errors":["plain text"]}"#,
                ErrorBody {
                    code: None,
                    title: Some("plain text".into()),
                    detail: None,
                },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(ErrorBody::parse(body.as_bytes()), expected, "{body}");
        }
        let long = format!(r#"{{"errors":[{{"title":"{}"}}]}}"#, "x".repeat(1000));
        let summary = ErrorBody::parse(long.as_bytes()).summary().unwrap();
        assert_eq!(summary.chars().count(), MAX_QUOTED_CHARS + 1);
    }

    #[test]
    fn success_needs_json() {
        let now = SystemTime::now();
        assert_eq!(at(now, 204, ""), Outcome::Success(Value::Null));
        let outcome = at(now, 200, "{not json");
        assert_eq!(failure(&outcome).code, ErrorCode::UpstreamBadResponse);
        assert!(matches!(outcome, Outcome::GiveUp(_)));
    }

    #[test]
    fn redirects_are_not_followed_and_not_retried() {
        let outcome = at(SystemTime::now(), 302, "");
        assert!(matches!(outcome, Outcome::GiveUp(_)));
        assert_eq!(failure(&outcome).code, ErrorCode::UpstreamBadResponse);
    }

    #[test]
    fn retry_after_is_read_from_the_response() {
        let now = SystemTime::now();
        let outcome = classify_response("GET /x", 429, Some("7"), b"", now);
        assert!(matches!(
            outcome,
            Outcome::Retry { after: Some(after), .. } if after == Duration::from_secs(7)
        ));
        let outcome = classify_response("GET /x", 503, Some("soon"), b"", now);
        assert!(matches!(outcome, Outcome::Retry { after: None, .. }));
    }

    #[test]
    fn retry_after_seconds_dates_and_garbage() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let in_20s = httpdate::fmt_http_date(now + Duration::from_secs(20));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(20));
        let far = httpdate::fmt_http_date(now + Duration::from_secs(3600));
        let cases: [(&str, Option<Duration>); 10] = [
            ("0", Some(Duration::ZERO)),
            ("3", Some(Duration::from_secs(3))),
            (" 12 ", Some(Duration::from_secs(12))),
            ("86400", Some(RETRY_AFTER_CAP)),
            ("99999999999999999999999", Some(RETRY_AFTER_CAP)),
            (&in_20s, Some(Duration::from_secs(20))),
            (&past, Some(Duration::ZERO)),
            (&far, Some(RETRY_AFTER_CAP)),
            ("-1", None),
            ("soon", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn transport_errors() {
        let io = |kind: io::ErrorKind| ureq::Error::Io(io::Error::new(kind, "boom"));
        let cases = [
            (
                ureq::Error::Timeout(ureq::Timeout::Global),
                "retry network.timeout",
            ),
            (io(io::ErrorKind::TimedOut), "retry network.timeout"),
            (
                io(io::ErrorKind::ConnectionRefused),
                "retry network.connect",
            ),
            (io(io::ErrorKind::ConnectionReset), "retry network.connect"),
            (io(io::ErrorKind::UnexpectedEof), "retry network.connect"),
            (io(io::ErrorKind::BrokenPipe), "retry network.connect"),
            (ureq::Error::HostNotFound, "retry network.connect"),
            (ureq::Error::ConnectionFailed, "retry network.connect"),
            (io(io::ErrorKind::InvalidData), "give-up network.tls"),
            (ureq::Error::Tls("bad cert"), "give-up network.tls"),
            (ureq::Error::TlsRequired, "give-up network.tls"),
            (
                ureq::Error::BodyExceedsLimit(10),
                "give-up upstream.bad_response",
            ),
            (
                ureq::Error::LargeResponseHeader(1, 2),
                "give-up upstream.bad_response",
            ),
            (ureq::Error::BadUri("x".into()), "give-up internal"),
        ];
        for (error, expected) in cases {
            let outcome = classify_transport("GET /threats", &error);
            let got = format!("{} {}", kind(&outcome), failure(&outcome).code);
            assert_eq!(got, expected, "{error}");
            assert!(failure(&outcome).message.contains("GET /threats"));
        }
    }
}
