//! The only writer of stdout.
//!
//! Each command produces one JSON document (or, for `demo`, one readable report); this module
//! serializes it, passes it through the redactor (string-aware for JSON, so a secret that
//! looks like `null` cannot break the document) and writes it once, followed by a newline. A
//! closed stdout (the reader went away) is not an error. Nothing else in the crate may print to
//! stdout — the crate's clippy lints forbid it.

use std::io::Write;

use serde::Serialize;

use crate::redact;

/// Serializes `document` compactly, redacts it and writes it to `out` once. Redaction masks
/// secrets inside the document's strings only, so the document always stays parseable.
pub fn write_json<T: Serialize>(out: &mut dyn Write, document: &T) -> std::io::Result<()> {
    let text = serde_json::to_string(document).map_err(std::io::Error::other)?;
    write_line(out, &redact::redact_json(&text))
}

/// Serializes `document` indented (for `spec`, which people read), redacts and writes it.
pub fn write_json_pretty<T: Serialize>(out: &mut dyn Write, document: &T) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(document).map_err(std::io::Error::other)?;
    write_line(out, &redact::redact_json(&text))
}

/// Redacts `text` and writes it with a trailing newline.
pub fn write_text(out: &mut dyn Write, text: &str) -> std::io::Result<()> {
    write_line(out, &redact::redact(text))
}

/// Writes already redacted `text` with a trailing newline.
fn write_line(out: &mut dyn Write, text: &str) -> std::io::Result<()> {
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        // The orchestrator stopped reading: there is nobody left to tell.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
