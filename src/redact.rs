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
pub(crate) const MASK: &str = "****";

/// Secret strings shorter than this are not registered: masking them would mangle ordinary
/// text, and no real SentinelOne token is this short.
const MIN_SECRET_LEN: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret value, with its JSON-escaped and `ApiToken`-header forms.
pub(crate) fn register(secret: &str) {
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
pub(crate) fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let secrets = SECRETS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    redact_with(&secrets, text)
}

/// `json` (a JSON document or line) with every registered secret masked inside its string
/// literals, keys included, and nothing else touched: [`JsonRedactor`] over the whole text.
///
/// Plain [`redact`] on JSON text could mask structure — a token `null` or `1000` turned
/// `"plan":null` into `"plan":****` and the document no longer parsed — and could miss a
/// secret that an echoed input object spells with escapes (`"\u0063anary…"`).
pub(crate) fn redact_json(json: &str) -> std::borrow::Cow<'_, str> {
    let secrets = SECRETS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    redact_json_with(secrets, json)
}

fn redact_json_with(secrets: Vec<String>, json: &str) -> std::borrow::Cow<'_, str> {
    if secrets.is_empty() {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut redactor = JsonRedactor::with_secrets(Vec::with_capacity(json.len()), secrets);
    // Writing into a `Vec` cannot fail; the text would then be masked whole, never leaked.
    let masked = redactor
        .write_all(json.as_bytes())
        .and_then(|()| redactor.finish());
    match masked {
        Ok(bytes) => std::borrow::Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        Err(_) => std::borrow::Cow::Borrowed(MASK),
    }
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

/// The one JSON redaction scanner: a writer that masks registered secrets inside the string
/// literals of the JSON text written through it, without holding the text. Bytes outside
/// literals pass straight on, and each literal is held only until its closing quote: one with
/// an escape is decoded before it is searched, and only a literal that holds a secret is
/// rewritten; every other byte, such as the raw input objects, is left as it was. A
/// 50,000-object result is tens of megabytes; this keeps it from ever being one string in
/// memory.
///
/// Most text holds no secret and no escape, so a chunk of that kind is passed on whole (only
/// its quotes are counted, to know whether it ends inside a literal); the literal-by-literal
/// path is taken only for chunks with a backslash or a possible secret. What this saves is in
/// BENCHMARKS.md.
pub(crate) struct JsonRedactor<W: Write> {
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
    pub(crate) fn new(inner: W) -> Self {
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

    /// Writes out a literal left open (cut-off text, masked where it can be read) and hands
    /// back the inner writer.
    pub(crate) fn finish(mut self) -> std::io::Result<W> {
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

    fn owned(secrets: &[&str]) -> Vec<String> {
        secrets.iter().map(|secret| secret.to_string()).collect()
    }

    #[test]
    fn json_redaction_masks_only_inside_strings() {
        let json = r#"{"plan":null,"n":1000,"null":"a null here","v":["x1000y"]}"#;
        assert_eq!(
            redact_json_with(owned(&["null", "1000"]), json),
            r#"{"plan":null,"n":1000,"****":"a **** here","v":["x****y"]}"#
        );
    }

    #[test]
    fn json_redaction_decodes_escaped_literals() {
        let json = r#"{"a":"\u0063anary-token","b":"x\"canary-token","c":"canary\u002dtoken"}"#;
        let masked = redact_json_with(owned(&["canary-token"]), json);
        let value: serde_json::Value = serde_json::from_str(&masked).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": "****", "b": "x\"****", "c": "****"})
        );
    }

    #[test]
    fn json_redaction_leaves_other_bytes_alone() {
        let json = r#"{"raw": {"x": 1.50, "y": "\u00e9"}, "t": "zzzz"}"#;
        assert_eq!(
            redact_json_with(owned(&["zzzz"]), json),
            r#"{"raw": {"x": 1.50, "y": "\u00e9"}, "t": "****"}"#
        );
        assert_eq!(
            redact_json_with(owned(&["zzzz"]), r#"{"a": "b"}"#),
            r#"{"a": "b"}"#
        );
        // Cut-off text is still masked where it can be read.
        assert_eq!(
            redact_json_with(owned(&["zzzz"]), r#"{"a": "zzzz"#),
            r#"{"a": "****"#
        );
        // A secret that ends in a quote never eats the literal's closing quote.
        assert_eq!(
            redact_json_with(owned(&["ab\"", "ab\\\""]), r#"["xab","ab\"c"]"#),
            r#"["xab","****c"]"#
        );
    }

    fn stream(secrets: &[&str], json: &str, chunk: usize) -> String {
        let mut redactor = JsonRedactor::with_secrets(Vec::new(), owned(secrets));
        for piece in json.as_bytes().chunks(chunk.max(1)) {
            redactor.write_all(piece).unwrap();
        }
        String::from_utf8(redactor.finish().unwrap()).unwrap()
    }

    #[test]
    fn streaming_redaction_is_the_same_at_any_chunk_size() {
        let cases: [(&[&str], &str, &str); 5] = [
            (
                &["null", "1000"],
                r#"{"plan":null,"n":1000,"null":"a null here","v":["x1000y"]}"#,
                r#"{"plan":null,"n":1000,"****":"a **** here","v":["x****y"]}"#,
            ),
            (
                &["canary-token"],
                r#"{"a":"\u0063anary-token","b":"x\"canary-token","c":"canary\u002dtoken"}"#,
                r#"{"a":"****","b":"x\"****","c":"****"}"#,
            ),
            (
                &["zzzz"],
                r#"{"raw": {"x": 1.50, "y": "\u00e9"}, "t": "zzzz"}"#,
                r#"{"raw": {"x": 1.50, "y": "\u00e9"}, "t": "****"}"#,
            ),
            (&["zzzz"], r#"{"a": "zzzz"#, r#"{"a": "****"#),
            (
                &["ab\"", "ab\\\""],
                r#"["xab","ab\"c"]"#,
                r#"["xab","****c"]"#,
            ),
        ];
        for (secrets, json, expected) in cases {
            for chunk in 1..=json.len() {
                assert_eq!(
                    stream(secrets, json, chunk),
                    expected,
                    "{json} in chunks of {chunk}"
                );
            }
        }
    }

    /// Every string of `value`, keys included, masked as plain text.
    fn mask_strings(secrets: &[String], value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(text) => Value::String(redact_with(secrets, &text).into_owned()),
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|item| mask_strings(secrets, item))
                    .collect(),
            ),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(key, item)| {
                        (
                            redact_with(secrets, &key).into_owned(),
                            mask_strings(secrets, item),
                        )
                    })
                    .collect(),
            ),
            other => other,
        }
    }

    proptest::proptest! {
        /// Any document, cut anywhere: the streamed text reads as the document with every
        /// string masked, whatever escapes spell the secret.
        #[test]
        fn streaming_redaction_masks_every_string_and_nothing_else(
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
            let document = serde_json::json!({ "s": strings, "n": [1, null] });
            let json = document.to_string();
            let secrets = owned(&[secret, "ab\\\"a"]);
            let expected = mask_strings(&secrets, document);
            let mut redactor = JsonRedactor::with_secrets(Vec::new(), secrets);
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
            let streamed: serde_json::Value = serde_json::from_str(&streamed).unwrap();
            proptest::prop_assert_eq!(streamed, expected);
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
