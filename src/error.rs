//! Typed failures and their one mapping to protocol error objects and exit codes.
//!
//! Every failure the runner can report — a bad envelope, a rejected token, a console that keeps
//! answering 503 — is a [`Failure`] carrying a stable dotted [`ErrorCode`]. The code decides the
//! error's category, whether retrying could help, and which process exit code a run-level
//! failure maps to ([`ExitStatus::for_run`]); [`Failure::ends_run`] decides whether a failure met
//! on one request ends the run or only fails the objects of that request. Nothing else in the
//! crate picks exit codes.
//!
//! Exit codes of runs whose objects failed one request at a time: any number of per-object
//! failures, even all of them, is exit 1 (`partial`); only a run-level error picks 3, 4, 5 or 70.
//! So a console that garbles the answer for one hash of twenty, or for all twenty, gives exit 1
//! with each object's own error, and a console that redirects or refuses the token gives 5 or 4.
//!
//! This module does not build messages from HTTP responses (see `api::classify`) and never sees
//! the API token: messages are written by callers, and the output layer redacts them again.

use std::fmt;

use schemars::JsonSchema;
use serde::Serialize;

/// Stable, dotted error codes of protocol v1 (DESIGN §3.3). Never change a published meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, JsonSchema)]
pub enum ErrorCode {
    /// A required configuration parameter is missing or empty.
    #[serde(rename = "config.missing")]
    ConfigMissing,
    /// A configuration value has the wrong type, is outside its options or bounds, or names an
    /// unknown action.
    #[serde(rename = "config.invalid")]
    ConfigInvalid,
    /// The envelope or one object's value is malformed.
    #[serde(rename = "input.invalid_value")]
    InputInvalidValue,
    /// The object's type is not accepted by this action (the object is skipped).
    #[serde(rename = "input.unsupported_type")]
    InputUnsupportedType,
    /// The object lies beyond `objects_per_run`, or the envelope holds too many objects.
    #[serde(rename = "input.over_limit")]
    InputOverLimit,
    /// Every computer the object matches is on the action's `protected_agents` list, so nothing
    /// was sent for it. Not retryable: the configuration, not the console, decides.
    #[serde(rename = "input.protected")]
    InputProtected,
    /// SentinelOne rejected the API token (HTTP 401).
    #[serde(rename = "auth.rejected")]
    AuthRejected,
    /// The token lacks the permission or scope for the call (HTTP 403).
    #[serde(rename = "auth.forbidden")]
    AuthForbidden,
    /// The token's user is assigned to several accounts, and the endpoint (Threat Intelligence)
    /// serves only users of one account or site (HTTP 403, SentinelOne code 4030010).
    #[serde(rename = "auth.multi_scope_token")]
    AuthMultiScopeToken,
    /// HTTP 429 persisted after retries.
    #[serde(rename = "upstream.rate_limited")]
    UpstreamRateLimited,
    /// HTTP 5xx persisted after retries.
    #[serde(rename = "upstream.server_error")]
    UpstreamServerError,
    /// The response could not be read as the documented JSON shape, or was too large.
    #[serde(rename = "upstream.bad_response")]
    UpstreamBadResponse,
    /// SentinelOne refused this request (a 4xx other than 401/403/429/408).
    #[serde(rename = "upstream.rejected")]
    UpstreamRejected,
    /// The request timed out after retries.
    #[serde(rename = "network.timeout")]
    NetworkTimeout,
    /// The connection could not be made or was dropped, after retries.
    #[serde(rename = "network.connect")]
    NetworkConnect,
    /// TLS failed (certificate not trusted, handshake error). Never retried.
    #[serde(rename = "network.tls")]
    NetworkTls,
    /// The run deadline passed before this work could start.
    #[serde(rename = "run.deadline")]
    RunDeadline,
    /// The ingest checkpoint in the envelope's `state` cannot be used: unreadable, outside what
    /// SentinelOne's time filters accept, or refused by SentinelOne. The state must be cleared
    /// (the next run then starts again from `hours_back`).
    #[serde(rename = "state.invalid")]
    StateInvalid,
    /// A bug in s1-actions.
    #[serde(rename = "internal")]
    Internal,
}

/// The family an error belongs to; a host that reads only this still decides correctly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Config,
    Input,
    Auth,
    Upstream,
    Network,
    Run,
    Internal,
}

impl ErrorCode {
    /// The wire form, e.g. `config.invalid`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfigMissing => "config.missing",
            Self::ConfigInvalid => "config.invalid",
            Self::InputInvalidValue => "input.invalid_value",
            Self::InputUnsupportedType => "input.unsupported_type",
            Self::InputOverLimit => "input.over_limit",
            Self::InputProtected => "input.protected",
            Self::AuthRejected => "auth.rejected",
            Self::AuthForbidden => "auth.forbidden",
            Self::AuthMultiScopeToken => "auth.multi_scope_token",
            Self::UpstreamRateLimited => "upstream.rate_limited",
            Self::UpstreamServerError => "upstream.server_error",
            Self::UpstreamBadResponse => "upstream.bad_response",
            Self::UpstreamRejected => "upstream.rejected",
            Self::NetworkTimeout => "network.timeout",
            Self::NetworkConnect => "network.connect",
            Self::NetworkTls => "network.tls",
            Self::RunDeadline => "run.deadline",
            Self::StateInvalid => "state.invalid",
            Self::Internal => "internal",
        }
    }

    pub fn category(self) -> Category {
        match self {
            Self::ConfigMissing | Self::ConfigInvalid => Category::Config,
            // The state is part of the envelope: a host that reads only the category knows the
            // input must change (exit 3), as for any other invalid envelope field.
            Self::InputInvalidValue
            | Self::InputUnsupportedType
            | Self::InputOverLimit
            | Self::InputProtected
            | Self::StateInvalid => Category::Input,
            Self::AuthRejected | Self::AuthForbidden | Self::AuthMultiScopeToken => Category::Auth,
            Self::UpstreamRateLimited
            | Self::UpstreamServerError
            | Self::UpstreamBadResponse
            | Self::UpstreamRejected => Category::Upstream,
            Self::NetworkTimeout | Self::NetworkConnect | Self::NetworkTls => Category::Network,
            Self::RunDeadline => Category::Run,
            Self::Internal => Category::Internal,
        }
    }

    /// Whether running the same work again later could succeed without any change by a person.
    ///
    /// An answer that could not be read (`upstream.bad_response`: `{"data": null}`, an HTML
    /// page with status 200, a cut-off body) is retryable: it comes from a console or a proxy
    /// having a bad moment, and the same request answered normally a moment before and after.
    /// The few bad answers that would come back the same ([`Failure::not_retryable`]: a
    /// redirect) say so themselves.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::UpstreamRateLimited
                | Self::UpstreamServerError
                | Self::UpstreamBadResponse
                | Self::NetworkTimeout
                | Self::NetworkConnect
                | Self::RunDeadline
        )
    }

    /// Whether a failure with this code, met while calling SentinelOne, ends the whole run
    /// rather than only the objects of the request that met it (see [`Failure::ends_run`],
    /// which callers use).
    ///
    /// A 4xx refusal concerns the values that were sent, and an unreadable answer the request
    /// it answered: the other requests of the run are still asked, and their objects keep their
    /// own outcome. Everything else (credentials, an unavailable console, the deadline) would
    /// fail every later request the same way.
    pub fn ends_run(self) -> bool {
        !matches!(
            self,
            Self::UpstreamRejected
                | Self::UpstreamBadResponse
                | Self::InputInvalidValue
                | Self::InputUnsupportedType
                | Self::InputOverLimit
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stable, dotted codes of the result's `warnings` (non-fatal remarks), one spelling each, as
/// [`ErrorCode`] is for errors. Written as text: the result's schema keeps `code` a string,
/// since `probe` findings add a code per check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarningCode {
    /// A configuration key the action's manifest does not have; it was ignored.
    ConfigUnknown,
    /// `verify_tls` is false.
    TlsVerificationDisabled,
    /// The API token expires within 30 days (`check`).
    AuthTokenExpiring,
    /// SentinelOne reported fewer objects changed than a write request named.
    UpstreamPartiallyApplied,
    /// A hash-list entry without a hash value.
    UpstreamEntryWithoutHash,
    /// Site names could not be read for a listing.
    UpstreamSiteNamesUnavailable,
    /// A list read oldest first came back out of order.
    UpstreamUnsorted,
    /// An item of a list could not be read.
    UpstreamBadResponse,
    /// An item carried a value that is not what its field holds.
    UpstreamInvalidValue,
    /// An ingest run stopped at its per-run limit; the next run goes on from there.
    IngestLimitReached,
    /// More records were found than the run returns (`max_records`); the rest were left out.
    RecordsLimitReached,
    /// The hunt's `auto` engine found PowerQuery refused and ran on Deep Visibility.
    HuntEngineFallback,
    /// A finding of `s1-actions probe` that needs action: `probe.<check>`.
    Probe(&'static str),
}

impl WarningCode {
    pub fn as_str(self) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(match self {
            Self::ConfigUnknown => "config.unknown",
            Self::TlsVerificationDisabled => "tls.verification_disabled",
            Self::AuthTokenExpiring => "auth.token_expiring",
            Self::UpstreamPartiallyApplied => "upstream.partially_applied",
            Self::UpstreamEntryWithoutHash => "upstream.entry_without_hash",
            Self::UpstreamSiteNamesUnavailable => "upstream.site_names_unavailable",
            Self::UpstreamUnsorted => "upstream.unsorted",
            Self::UpstreamBadResponse => "upstream.bad_response",
            Self::UpstreamInvalidValue => "upstream.invalid_value",
            Self::IngestLimitReached => "ingest.limit_reached",
            Self::RecordsLimitReached => "records.limit_reached",
            Self::HuntEngineFallback => "hunt.engine_fallback",
            Self::Probe(check) => return format!("probe.{check}").into(),
        })
    }
}

impl fmt::Display for WarningCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl Serialize for WarningCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.as_str())
    }
}

impl JsonSchema for WarningCode {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "WarningCode".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// One protocol error object: `{ code, category, message, field?, retryable, http_status? }`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Failure {
    pub code: ErrorCode,
    pub category: Category,
    /// One sentence for a person. Never contains the API token.
    pub message: String,
    /// Path of the offending field, e.g. `config.os_type` or `objects[3].value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// SentinelOne's own error code from `{"errors":[{"code":…}]}`, e.g. 4000030.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_code: Option<i64>,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            category: code.category(),
            message: message.into(),
            field: None,
            retryable: code.retryable(),
            http_status: None,
            upstream_code: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_http_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    pub fn with_upstream_code(mut self, code: Option<i64>) -> Self {
        self.upstream_code = code;
        self
    }

    /// Marks a failure that the same request would meet again, whatever its code's default.
    pub fn not_retryable(mut self) -> Self {
        self.retryable = false;
        self
    }

    /// Whether this failure, met on one request, ends the whole run: its code says so (see
    /// [`ErrorCode::ends_run`]), or it is a redirect. A redirect is never followed and says
    /// nothing about the request: it comes from the console address (a wrong hostname, a login
    /// portal in front of the console), so every later request would be redirected too.
    pub fn ends_run(&self) -> bool {
        self.code.ends_run()
            || (self.code == ErrorCode::UpstreamBadResponse
                && self
                    .http_status
                    .is_some_and(|status| (300..400).contains(&status)))
    }

    /// `state.invalid` on `field` (e.g. `state.since`).
    pub fn state_invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::StateInvalid, message).with_field(field)
    }

    pub fn config_invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ConfigInvalid, message).with_field(field)
    }

    pub fn config_missing(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ConfigMissing, message).with_field(field)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

/// Process exit codes of protocol v1 (DESIGN §3.3), in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every object succeeded or was skipped.
    Success,
    /// The run happened; some objects failed.
    ObjectsFailed,
    /// Unknown flag or command; nothing on stdout.
    Usage,
    /// Invalid envelope or configuration; no request was sent.
    InvalidInput,
    /// SentinelOne rejected the credentials or permission for the whole run.
    AuthRejected,
    /// SentinelOne or the network failed after retries (or the deadline passed).
    Upstream,
    /// A caught panic or broken invariant.
    Internal,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::ObjectsFailed => 1,
            Self::Usage => 2,
            Self::InvalidInput => 3,
            Self::AuthRejected => 4,
            Self::Upstream => 5,
            Self::Internal => 70,
        }
    }

    /// The exit status of a run from its run-level error (if any) and whether any object failed.
    pub fn for_run(run_error: Option<&Failure>, any_object_failed: bool) -> Self {
        match run_error.map(|failure| failure.category) {
            Some(Category::Config | Category::Input) => Self::InvalidInput,
            Some(Category::Auth) => Self::AuthRejected,
            Some(Category::Upstream | Category::Network | Category::Run) => Self::Upstream,
            Some(Category::Internal) => Self::Internal,
            None if any_object_failed => Self::ObjectsFailed,
            None => Self::Success,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_level_errors_map_to_documented_exit_codes() {
        let cases = [
            (ErrorCode::ConfigMissing, 3),
            (ErrorCode::InputInvalidValue, 3),
            (ErrorCode::StateInvalid, 3),
            (ErrorCode::AuthRejected, 4),
            (ErrorCode::AuthForbidden, 4),
            (ErrorCode::AuthMultiScopeToken, 4),
            (ErrorCode::UpstreamServerError, 5),
            (ErrorCode::NetworkTls, 5),
            (ErrorCode::RunDeadline, 5),
            (ErrorCode::Internal, 70),
        ];
        for (code, exit) in cases {
            let failure = Failure::new(code, "x");
            assert_eq!(
                ExitStatus::for_run(Some(&failure), false).code(),
                exit,
                "{code}"
            );
        }
        assert_eq!(ExitStatus::for_run(None, true).code(), 1);
        assert_eq!(ExitStatus::for_run(None, false).code(), 0);
    }

    #[test]
    fn serialized_code_matches_as_str() {
        for code in [
            ErrorCode::ConfigInvalid,
            ErrorCode::UpstreamRateLimited,
            ErrorCode::AuthMultiScopeToken,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str());
        }
    }

    #[test]
    fn only_transient_codes_are_retryable() {
        assert!(ErrorCode::UpstreamRateLimited.retryable());
        assert!(ErrorCode::NetworkConnect.retryable());
        assert!(!ErrorCode::NetworkTls.retryable());
        assert!(!ErrorCode::AuthRejected.retryable());
        assert!(!ErrorCode::AuthMultiScopeToken.retryable());
        assert!(!ErrorCode::UpstreamRejected.retryable());
        assert!(!ErrorCode::StateInvalid.retryable());
        assert!(ErrorCode::UpstreamBadResponse.retryable());
    }

    #[test]
    fn a_bad_answer_fails_its_request_and_a_redirect_the_run() {
        let garbled = Failure::new(ErrorCode::UpstreamBadResponse, "x").with_http_status(200);
        assert!(!garbled.ends_run());
        assert!(garbled.retryable);
        let redirect = Failure::new(ErrorCode::UpstreamBadResponse, "x")
            .with_http_status(302)
            .not_retryable();
        assert!(redirect.ends_run());
        assert!(!redirect.retryable);
        assert!(!Failure::new(ErrorCode::UpstreamRejected, "x").ends_run());
        assert!(Failure::new(ErrorCode::UpstreamServerError, "x").ends_run());
        assert!(Failure::new(ErrorCode::StateInvalid, "x").ends_run());
    }
}
