//! The only writer of stdout.
//!
//! Each command produces one JSON document (or, for `demo`, one readable report); this module
//! serializes it through the redactor (string-aware for JSON, so a secret that looks like
//! `null` cannot break the document) and writes it once, followed by a newline; a result
//! document is streamed as it is serialized rather than built as one string first. A
//! closed stdout (the reader went away) is not an error. Nothing else in the crate may print to
//! stdout — the crate's clippy lints forbid it.

use std::io::{BufWriter, Write};

use serde::Serialize;

use crate::redact;
use crate::result::RunResult;

/// Writes a result document compactly (see [`RunResult::write_json`]), redacting as it goes,
/// as one line. Redaction masks secrets inside the document's strings only, so the document
/// always stays parseable. The text is streamed, never held whole: a 50,000-object result is
/// tens of megabytes, next to the envelope it echoes.
pub fn write_result(out: &mut dyn Write, result: &RunResult) -> std::io::Result<()> {
    // The small pieces (keys, punctuation) reach the redactor in large chunks.
    let redactor = redact::JsonRedactor::new(BufWriter::with_capacity(1 << 16, &mut *out));
    let mut document = BufWriter::with_capacity(1 << 16, redactor);
    let written = result
        .write_json(&mut document)
        .and_then(|()| document.into_inner().map_err(|err| err.into_error()))
        .and_then(|redactor| redactor.finish())
        .and_then(|mut buffered| {
            buffered.write_all(b"\n")?;
            buffered.flush()
        });
    forgive_closed_reader(written)
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
    forgive_closed_reader(written)
}

fn forgive_closed_reader(written: std::io::Result<()>) -> std::io::Result<()> {
    match written {
        // The orchestrator stopped reading: there is nobody left to tell.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
