//! The only writer of stdout.
//!
//! Each command produces one JSON document (or, for `demo`, one readable report); this module
//! serializes it through the redactor straight to stdout, followed by a newline. A
//! closed stdout (the reader went away) is not an error. Nothing else in the crate may print to
//! stdout — the crate's clippy lints forbid it.

use std::io::{BufWriter, Write};

use serde::Serialize;

use crate::redact::{self, Redactor};

/// Serializes `document` compactly, redacted, straight to `out` (the result of a 50,000-object
/// run is never held as one string), followed by a newline.
pub fn write_json<T: Serialize>(out: &mut dyn Write, document: &T) -> std::io::Result<()> {
    let mut writer = Redactor::new(BufWriter::with_capacity(64 * 1024, out));
    let written = serde_json::to_writer(&mut writer, document)
        .map_err(std::io::Error::from)
        .and_then(|()| writer.write_all(b"\n"))
        .and_then(|()| writer.finish())
        .and_then(|mut buffer| buffer.flush());
    match written {
        // The orchestrator stopped reading: there is nobody left to tell.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Serializes `document` indented (for `spec`, which people read), redacts and writes it.
pub fn write_json_pretty<T: Serialize>(out: &mut dyn Write, document: &T) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(document).map_err(std::io::Error::other)?;
    write_text(out, &text)
}

/// Redacts `text` and writes it with a trailing newline.
pub fn write_text(out: &mut dyn Write, text: &str) -> std::io::Result<()> {
    let text = redact::redact(text);
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
