//! Removes secrets from everything the process prints.
//!
//! The runner registers the API token (and the forms it can take once serialized or placed in a
//! header) as soon as it has read the envelope, before anything can echo it. The output writer
//! and the stderr logger pass every byte through [`redact`]. This module does not decide what
//! is secret: the manifest's `secret` flag does.

use std::io::{self, Write};
use std::sync::RwLock;

/// What replaces a secret.
pub const MASK: &str = "****";

/// Secret strings shorter than this are not registered: masking them would mangle ordinary
/// text, and no real SentinelOne token is this short.
const MIN_SECRET_LEN: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret value, with its JSON-escaped and `ApiToken`-header forms.
pub fn register(secret: &str) {
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let escaped = serde_json::to_string(secret).unwrap_or_default();
    let escaped = escaped.trim_matches('"').to_string();
    let mut secrets = SECRETS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for form in [secret.to_string(), escaped] {
        if !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    secrets.sort_by_key(|form| std::cmp::Reverse(form.len()));
}

/// `text` with every registered secret replaced by [`MASK`]; borrowed when nothing matched.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let secrets = SECRETS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    redact_with(&secrets, text)
}

fn redact_with<'a>(secrets: &[String], text: &'a str) -> std::borrow::Cow<'a, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

/// Bytes a [`Redactor`] collects before it masks and passes them on.
const REDACT_CHUNK: usize = 64 * 1024;

/// A writer that masks every registered secret in the bytes written through it, so a large
/// document can be serialized straight to its destination instead of into one string first.
///
/// Bytes are held until [`REDACT_CHUNK`] have gathered, then passed on except for a tail one
/// byte shorter than the longest secret (which may be the start of a secret split between two
/// writes); [`Redactor::finish`] passes on the rest. Secrets registered after the writer was
/// made are not masked by it.
pub struct Redactor<W: Write> {
    inner: W,
    secrets: Vec<String>,
    pending: Vec<u8>,
}

impl<W: Write> Redactor<W> {
    pub fn new(inner: W) -> Self {
        let secrets = SECRETS
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        Self {
            inner,
            secrets,
            pending: Vec::new(),
        }
    }

    /// Passes on everything still held, masked, flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.pass_on(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// Masks and writes the held bytes; all of them when `all`, else all but the tail that may
    /// start a secret.
    fn pass_on(&mut self, all: bool) -> io::Result<()> {
        let longest = self.secrets.first().map_or(0, String::len);
        let mut cut = if all {
            self.pending.len()
        } else {
            self.pending.len().saturating_sub(longest.saturating_sub(1))
        };
        // Keep a character whole in the held tail, so what is held stays text.
        while cut < self.pending.len() && cut > 0 && (self.pending[cut] & 0xC0) == 0x80 {
            cut -= 1;
        }
        // Every secret starting before `cut` ends within `pending`, so it is found whole.
        let mut written = 0;
        while let Some((at, length)) = self.next_secret(written, cut) {
            self.inner.write_all(&self.pending[written..at])?;
            self.inner.write_all(MASK.as_bytes())?;
            written = at + length;
        }
        let end = written.max(cut);
        self.inner.write_all(&self.pending[written..end])?;
        self.pending.drain(..end);
        Ok(())
    }

    /// The first secret (the longest of those starting there) that starts in `from..cut`, as
    /// (position, length).
    fn next_secret(&self, from: usize, cut: usize) -> Option<(usize, usize)> {
        if from >= cut {
            return None;
        }
        let haystack = &self.pending[from..];
        // What serde_json writes is text, so the fast substring search applies; bytes that are
        // not text (never expected) are searched one position at a time.
        let text = std::str::from_utf8(haystack).ok();
        let mut first: Option<(usize, usize)> = None;
        for secret in &self.secrets {
            let found = match text {
                Some(text) => text.find(secret.as_str()),
                None => haystack
                    .windows(secret.len())
                    .position(|window| window == secret.as_bytes()),
            };
            if let Some(offset) = found {
                let at = from + offset;
                // Longest first: an equal start keeps the longer secret.
                if at < cut && first.is_none_or(|(known, _)| at < known) {
                    first = Some((at, secret.len()));
                }
            }
        }
        first
    }
}

impl<W: Write> Write for Redactor<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.secrets.is_empty() {
            return self.inner.write(bytes);
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= REDACT_CHUNK {
            self.pass_on(false)?;
        }
        Ok(bytes.len())
    }

    /// Flushes what can be passed on without seeing the next bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.pass_on(false)?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_overlapping_secrets_longest_first() {
        let secrets = vec!["abcdef-long".to_string(), "abcdef".to_string()];
        assert_eq!(
            redact_with(&secrets, "x abcdef-long y abcdef"),
            "x **** y ****"
        );
    }

    #[test]
    fn leaves_text_without_secrets_borrowed() {
        let secrets = vec!["zzzz".to_string()];
        assert!(matches!(
            redact_with(&secrets, "hello"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    fn through_redactor(secrets: &[&str], pieces: &[&str]) -> String {
        let mut writer = Redactor {
            inner: Vec::new(),
            secrets: secrets.iter().map(|secret| secret.to_string()).collect(),
            pending: Vec::new(),
        };
        for piece in pieces {
            writer.write_all(piece.as_bytes()).unwrap();
            writer.flush().unwrap();
        }
        String::from_utf8(writer.finish().unwrap()).unwrap()
    }

    #[test]
    fn the_writer_masks_secrets_split_between_writes() {
        let secrets = ["abcdef-long", "abcdef"];
        assert_eq!(
            through_redactor(&secrets, &["x abc", "def-lo", "ng y ab", "cdef", "!"]),
            "x **** y ****!"
        );
        assert_eq!(through_redactor(&secrets, &["abcdef"]), "****");
        assert_eq!(through_redactor(&[], &["abc", "def"]), "abcdef");
        assert_eq!(through_redactor(&secrets, &["abcde", ""]), "abcde");
    }

    #[test]
    fn the_writer_masks_across_chunks() {
        let text = format!(
            "{}sec-ret{}sec-ret",
            "x".repeat(REDACT_CHUNK - 3),
            "y".repeat(10)
        );
        let masked = through_redactor(
            &["sec-ret"],
            &[&text[..REDACT_CHUNK], &text[REDACT_CHUNK..]],
        );
        assert_eq!(
            masked,
            format!("{}****{}****", "x".repeat(REDACT_CHUNK - 3), "y".repeat(10))
        );
    }

    #[test]
    fn registered_token_is_masked_in_raw_and_json_escaped_forms() {
        register("tok\"en-with-quote");
        let json = serde_json::to_string("tok\"en-with-quote").unwrap();
        assert!(!redact(&json).contains("en-with-quote"));
        assert_eq!(redact("a tok\"en-with-quote b"), "a **** b");
    }
}
