//! Removes secrets from everything the process prints.
//!
//! The runner registers the API token (and the forms it can take once serialized or placed in a
//! header) as soon as it has read the envelope, before anything can echo it. The output writer
//! and the stderr logger pass every byte through [`redact`]. This module does not decide what
//! is secret: the manifest's `secret` flag does.

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
    fn registered_token_is_masked_in_raw_and_json_escaped_forms() {
        register("tok\"en-with-quote");
        let json = serde_json::to_string("tok\"en-with-quote").unwrap();
        assert!(!redact(&json).contains("en-with-quote"));
        assert_eq!(redact("a tok\"en-with-quote b"), "a **** b");
    }
}
