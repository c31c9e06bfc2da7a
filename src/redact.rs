//! Removes secrets from everything the process prints.
//!
//! The runner registers the API token (and the forms it can take once serialized or placed in a
//! header) as soon as it has read the envelope, before anything can echo it. The output writer
//! and the stderr logger pass every byte through [`redact`], or, for JSON, through
//! [`redact_json`], which masks inside string values and keys only so that the document stays
//! parseable. This module does not decide what is secret: the manifest's `secret` flag does.

use std::io::Write;

use memchr::memmem;
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

/// `json` (a JSON document or line) with every registered secret masked inside its string
/// literals, keys included, and nothing else touched.
///
/// Plain [`redact`] on JSON text could mask structure — a token `null` or `1000` turned
/// `"plan":null` into `"plan":****` and the document no longer parsed — and could miss a
/// secret that an echoed input object spells with escapes (`"\u0063anary…"`). Here each
/// literal with an escape is decoded before it is searched, and only a literal that holds a
/// secret is rewritten; every other byte, such as the raw input objects, is left as it was.
pub fn redact_json(json: &str) -> std::borrow::Cow<'_, str> {
    let secrets = SECRETS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    redact_json_with(&secrets, json)
}

fn redact_json_with<'a>(secrets: &[String], json: &'a str) -> std::borrow::Cow<'a, str> {
    if secrets.is_empty() {
        return std::borrow::Cow::Borrowed(json);
    }
    let bytes = json.as_bytes();
    let mut out = String::new();
    // `json[..copied]` is already in `out` (when `out` is in use).
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'"' {
            at += 1;
            continue;
        }
        let start = at;
        let mut end = at + 1;
        let mut escaped = false;
        while end < bytes.len() && bytes[end] != b'"' {
            if bytes[end] == b'\\' {
                escaped = true;
                end += 1;
            }
            end += 1;
        }
        // Quotes and backslashes are ASCII, so both ends are character boundaries; an
        // unterminated literal runs to the end of the text.
        let end = (end + 1).min(bytes.len());
        if let Some(masked) = mask_literal(secrets, &json[start..end], escaped) {
            out.push_str(&json[copied..start]);
            out.push_str(&masked);
            copied = end;
        }
        at = end;
    }
    if copied == 0 {
        return std::borrow::Cow::Borrowed(json);
    }
    out.push_str(&json[copied..]);
    std::borrow::Cow::Owned(out)
}

/// The literal (quotes included) re-encoded with its secrets masked, or `None` when it holds
/// none.
fn mask_literal(secrets: &[String], literal: &str, escaped: bool) -> Option<String> {
    let terminated = literal.len() >= 2 && literal.ends_with('"');
    let content = &literal[1..literal.len() - usize::from(terminated)];
    if escaped && terminated {
        if let Ok(decoded) = serde_json::from_str::<String>(literal) {
            return match redact_with(secrets, &decoded) {
                std::borrow::Cow::Borrowed(_) => None,
                std::borrow::Cow::Owned(masked) => serde_json::to_string(&masked).ok(),
            };
        }
    }
    // Without escapes the text between the quotes is the string itself (and a literal that
    // does not decode is masked where it can be read). Only the content is searched, so the
    // quotes around it stay.
    match redact_with(secrets, content) {
        std::borrow::Cow::Borrowed(_) => None,
        std::borrow::Cow::Owned(masked) => {
            let close = if terminated { "\"" } else { "" };
            Some(format!("\"{masked}{close}"))
        }
    }
}

/// A writer that applies [`redact_json`] to the JSON text written through it, without holding
/// the text: bytes outside string literals pass straight on, and each literal is held only
/// until its closing quote, then masked as [`redact_json`] masks it. A 50,000-object result is
/// tens of megabytes; this keeps it from ever being one string in memory.
///
/// Most text holds no secret and no escape, so a chunk of that kind is passed on whole (only
/// its quotes are counted, to know whether it ends inside a literal); the literal-by-literal
/// path is taken only for chunks with a backslash or a possible secret.
pub struct JsonRedactor<W: Write> {
    inner: W,
    /// The registered secrets, read once: a run registers its token before any output.
    secrets: Vec<String>,
    /// A searcher for each secret, built once.
    finders: Vec<memmem::Finder<'static>>,
    /// The open literal, opening quote included; empty between literals.
    literal: Vec<u8>,
    /// The last byte of `literal` is a backslash that escapes the next byte.
    escape_pending: bool,
    /// The open literal has an escape, so it must be decoded before it is searched.
    escaped: bool,
}

impl<W: Write> JsonRedactor<W> {
    pub fn new(inner: W) -> Self {
        let secrets = SECRETS
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        Self::with_secrets(inner, secrets)
    }

    fn with_secrets(inner: W, secrets: Vec<String>) -> Self {
        let finders = secrets
            .iter()
            .map(|secret| memmem::Finder::new(secret.as_bytes()).into_owned())
            .collect();
        Self {
            inner,
            secrets,
            finders,
            literal: Vec::new(),
            escape_pending: false,
            escaped: false,
        }
    }

    /// Writes out a literal left open (cut-off text, masked where it can be read, as
    /// [`redact_json`] does) and hands back the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        if !self.literal.is_empty() {
            self.close_literal()?;
        }
        Ok(self.inner)
    }

    fn may_hold_secret(&self, bytes: &[u8]) -> bool {
        self.finders
            .iter()
            .any(|finder| finder.find(bytes).is_some())
    }

    fn close_literal(&mut self) -> std::io::Result<()> {
        // Without an escape the literal's bytes are its text, so a literal in which no secret
        // occurs is written as it is; one with an escape is decoded and searched.
        let masked = if self.escaped || self.may_hold_secret(&self.literal) {
            let literal = String::from_utf8_lossy(&self.literal);
            mask_literal(&self.secrets, &literal, self.escaped)
        } else {
            None
        };
        match masked {
            Some(masked) => self.inner.write_all(masked.as_bytes())?,
            None => self.inner.write_all(&self.literal)?,
        }
        self.literal.clear();
        self.escaped = false;
        self.escape_pending = false;
        Ok(())
    }

    /// Passes `chunk` on whole when it starts outside a literal and holds neither a backslash
    /// nor a secret: every literal in it is then written unchanged by the literal-by-literal
    /// path too. A literal left open at its end is kept, as that path would keep it. Returns
    /// whether the chunk was taken.
    fn pass_clean_chunk(&mut self, chunk: &[u8]) -> std::io::Result<bool> {
        if !self.literal.is_empty()
            || memchr::memchr(b'\\', chunk).is_some()
            || self.may_hold_secret(chunk)
        {
            return Ok(false);
        }
        let quotes = memchr::memchr_iter(b'"', chunk).count();
        match memchr::memrchr(b'"', chunk).filter(|_| quotes % 2 == 1) {
            Some(open) => {
                self.inner.write_all(&chunk[..open])?;
                self.literal.extend_from_slice(&chunk[open..]);
            }
            None => self.inner.write_all(chunk)?,
        }
        Ok(true)
    }
}

impl<W: Write> Write for JsonRedactor<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.secrets.is_empty() {
            return self.inner.write(buf);
        }
        if self.pass_clean_chunk(buf)? {
            return Ok(buf.len());
        }
        let mut rest = buf;
        while !rest.is_empty() {
            if self.literal.is_empty() {
                // Outside a literal: everything up to the next quote is structure or numbers.
                let quote = memchr::memchr(b'"', rest);
                let (plain, tail) = rest.split_at(quote.unwrap_or(rest.len()));
                self.inner.write_all(plain)?;
                if let Some((open, tail)) = tail.split_first() {
                    self.literal.push(*open);
                    rest = tail;
                } else {
                    rest = tail;
                }
                continue;
            }
            if self.escape_pending {
                // The byte after a backslash is the escape's, even a quote.
                self.escape_pending = false;
                self.literal.push(rest[0]);
                rest = &rest[1..];
                continue;
            }
            match memchr::memchr2(b'"', b'\\', rest) {
                Some(index) if rest[index] == b'"' => {
                    self.literal.extend_from_slice(&rest[..=index]);
                    rest = &rest[index + 1..];
                    self.close_literal()?;
                }
                Some(index) => {
                    self.escape_pending = true;
                    self.escaped = true;
                    self.literal.extend_from_slice(&rest[..=index]);
                    rest = &rest[index + 1..];
                }
                None => {
                    self.literal.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // An open literal is held back: it may still turn out to hold a secret.
        self.inner.flush()
    }
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

    #[test]
    fn json_redaction_masks_only_inside_strings() {
        let secrets = vec!["null".to_string(), "1000".to_string()];
        let json = r#"{"plan":null,"n":1000,"null":"a null here","v":["x1000y"]}"#;
        assert_eq!(
            redact_json_with(&secrets, json),
            r#"{"plan":null,"n":1000,"****":"a **** here","v":["x****y"]}"#
        );
    }

    #[test]
    fn json_redaction_decodes_escaped_literals() {
        let secrets = vec!["canary-token".to_string()];
        let json = r#"{"a":"\u0063anary-token","b":"x\"canary-token","c":"canary\u002dtoken"}"#;
        let masked = redact_json_with(&secrets, json);
        let value: serde_json::Value = serde_json::from_str(&masked).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": "****", "b": "x\"****", "c": "****"})
        );
    }

    #[test]
    fn json_redaction_leaves_other_bytes_alone() {
        let secrets = vec!["zzzz".to_string()];
        let json = r#"{"raw": {"x": 1.50, "y": "\u00e9"}, "t": "zzzz"}"#;
        assert_eq!(
            redact_json_with(&secrets, json),
            r#"{"raw": {"x": 1.50, "y": "\u00e9"}, "t": "****"}"#
        );
        assert!(matches!(
            redact_json_with(&secrets, r#"{"a": "b"}"#),
            std::borrow::Cow::Borrowed(_)
        ));
        // Cut-off text is still masked where it can be read.
        assert_eq!(
            redact_json_with(&secrets, r#"{"a": "zzzz"#),
            r#"{"a": "****"#
        );
        // A secret that ends in a quote never eats the literal's closing quote.
        let quoted = vec!["ab\"".to_string(), "ab\\\"".to_string()];
        assert_eq!(
            redact_json_with(&quoted, r#"["xab","ab\"c"]"#),
            r#"["xab","****c"]"#
        );
    }

    fn stream(secrets: &[&str], json: &str, chunk: usize) -> String {
        let secrets = secrets.iter().map(|secret| secret.to_string()).collect();
        let mut redactor = JsonRedactor::with_secrets(Vec::new(), secrets);
        for piece in json.as_bytes().chunks(chunk.max(1)) {
            redactor.write_all(piece).unwrap();
        }
        String::from_utf8(redactor.finish().unwrap()).unwrap()
    }

    #[test]
    fn streaming_redaction_matches_whole_text_redaction_at_any_chunk_size() {
        let cases: [(&[&str], &str); 5] = [
            (
                &["null", "1000"],
                r#"{"plan":null,"n":1000,"null":"a null here","v":["x1000y"]}"#,
            ),
            (
                &["canary-token"],
                r#"{"a":"\u0063anary-token","b":"x\"canary-token","c":"canary\u002dtoken"}"#,
            ),
            (
                &["zzzz"],
                r#"{"raw": {"x": 1.50, "y": "\u00e9"}, "t": "zzzz"}"#,
            ),
            (&["zzzz"], r#"{"a": "zzzz"#),
            (&["ab\"", "ab\\\""], r#"["xab","ab\"c"]"#),
        ];
        for (secrets, json) in cases {
            let owned: Vec<String> = secrets.iter().map(|secret| secret.to_string()).collect();
            let whole = redact_json_with(&owned, json);
            for chunk in 1..=json.len() {
                assert_eq!(
                    stream(secrets, json, chunk),
                    whole,
                    "{json} in chunks of {chunk}"
                );
            }
        }
    }

    proptest::proptest! {
        /// Any document, cut anywhere: streaming masks exactly what whole-text redaction masks.
        #[test]
        fn streaming_redaction_equals_whole_text_redaction(
            parts in proptest::collection::vec(("[ab\"\\\\é]{0,6}", proptest::bool::ANY), 0..12),
            cuts in proptest::collection::vec(1usize..40, 1..8),
        ) {
            let secret = "ab\"a";
            let strings: Vec<String> = parts
                .iter()
                .map(|(text, with_secret)| {
                    if *with_secret { format!("{text}{secret}{text}") } else { text.clone() }
                })
                .collect();
            let json = serde_json::json!({ "s": strings, "n": [1, null] }).to_string();
            let secrets = [secret, "ab\\\"a"];
            let owned: Vec<String> = secrets.iter().map(|form| form.to_string()).collect();
            let whole = redact_json_with(&owned, &json).into_owned();
            let mut redactor = JsonRedactor::with_secrets(Vec::new(), owned);
            let mut rest = json.as_bytes();
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (piece, tail) = rest.split_at((*cut).min(rest.len()));
                redactor.write_all(piece).unwrap();
                rest = tail;
            }
            let streamed = String::from_utf8(redactor.finish().unwrap()).unwrap();
            proptest::prop_assert_eq!(streamed, whole);
        }
    }

    #[test]
    fn streaming_redaction_without_secrets_passes_bytes_through() {
        assert_eq!(stream(&[], r#"{"a": "zzzz"}"#, 3), r#"{"a": "zzzz"}"#);
    }

    #[test]
    fn registered_token_is_masked_in_raw_and_json_escaped_forms() {
        register("tok\"en-with-quote");
        let json = serde_json::to_string("tok\"en-with-quote").unwrap();
        assert!(!redact(&json).contains("en-with-quote"));
        assert_eq!(redact("a tok\"en-with-quote b"), "a **** b");
    }
}
