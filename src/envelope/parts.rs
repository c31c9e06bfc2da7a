//! Reads the envelope's `objects` list in parts, one per core, without a first pass over the
//! whole text to find where each object ends.
//!
//! Read whole, the envelope is walked once on one core to find where each of its objects ends,
//! and only then are the objects read on every core: for 50,000 objects that first walk was a
//! fifth of the binary's own time. Here the list is cut where the text looks like the start of
//! an object (`}`, a comma, `{`), and each part is read object by object on a core of its own.
//! A cut is kept only if the part before it ends exactly there: that part was read from a true
//! boundary, as serde reads JSON, so ending on the cut proves the cut a boundary too (the first
//! part starts at the list's opening bracket, found by following strings and nesting from the
//! start of the text). The rest of the envelope, with the list cut out, is read by serde
//! afterwards. Whenever anything is unsure — a cut not landed on, a top-level key spelled with
//! escapes, text in the list that is not JSON — the answer is `None`, and the caller reads the
//! envelope whole, as before, so that it is accepted or refused exactly as it always was.
//!
//! This module does not read the envelope's other fields, nor word why an envelope or an
//! object is refused: both stay with `envelope`.

use std::ops::Range;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::{InputObject, ObjectCheck, RawObject};
use crate::cores;

/// Where the top-level `objects` list opens, found by following strings and nesting through the
/// keys before it. `None` when the text is not an object, has no `objects` key, spells a key
/// before it with escapes (it could be `objects`), or `objects` is not a list.
pub(super) fn objects_list_start(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = skip_white(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        at = skip_white(bytes, at);
        match bytes.get(at)? {
            // Whether commas stand where they should is for serde to say, reading the rest.
            b',' => {
                at += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = string_end(bytes, at)?;
        let key = &bytes[at + 1..key_end - 1];
        if key.contains(&b'\\') {
            return None;
        }
        at = skip_white(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_white(bytes, at + 1);
        if key == b"objects" {
            return (bytes.get(at) == Some(&b'[')).then_some(at);
        }
        at = value_end(bytes, at)?;
    }
}

/// The objects of the list opening at `open`, and the position after its closing bracket.
/// `None` for an empty list (nothing to gain) and whenever a part does not end on its cut.
pub(super) fn read_list(text: &Arc<String>, open: usize) -> Option<(Vec<InputObject>, usize)> {
    let bytes = text.as_bytes();
    let first = skip_white(bytes, open + 1);
    if bytes.get(first)? == &b']' {
        return None;
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut starts = vec![first];
    for part in 1..threads {
        let from = open + (text.len() - open) * part / threads;
        let last = *starts.last()?;
        if let Some(cut) = next_cut(text, from.max(last + 1)) {
            starts.push(cut);
        }
    }
    let parts: Vec<Range<usize>> = starts
        .iter()
        .enumerate()
        .map(|(index, start)| *start..starts.get(index + 1).copied().unwrap_or(usize::MAX))
        .collect();
    let read = cores::map(&parts, 1, |part| read_part(text, part))
        .into_iter()
        .collect::<Option<Vec<_>>>()?;
    // Exactly as long as the list: the objects are held for the whole run.
    let mut objects = Vec::with_capacity(read.iter().map(|(part, _)| part.len()).sum());
    let mut end = None;
    for (part, part_end) in read {
        objects.extend(part);
        end = part_end;
    }
    Some((objects, end?))
}

/// How far a cut is read ahead before it is taken: a list nested in one object (its
/// attributes, say) closes well before this; the envelope's list runs on.
const CUT_PROBE_BYTES: usize = if cfg!(test) { 64 } else { 64 * 1024 };

/// The next place after `from` where the text looks like the start of an object in the
/// envelope's list: `}`, a comma and `{`, with any white space between, followed by at least
/// [`CUT_PROBE_BYTES`] of comma-separated values. The same text between two attributes of one
/// object fails the probe when their list closes. A cut that passes it is still only a guess:
/// [`read_part`] proves it.
fn next_cut(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = from;
    loop {
        at += memchr::memchr(b',', bytes.get(at..)?)?;
        let before = bytes[..at].iter().rposition(|byte| !is_white(*byte))?;
        let after = skip_white(bytes, at + 1);
        if bytes[before] == b'}' && bytes.get(after) == Some(&b'{') {
            match probe(text, after) {
                Ok(()) => return Some(after),
                Err(stopped) => at = stopped.max(at + 1),
            }
        } else {
            at += 1;
        }
    }
}

/// Reads comma-separated values from `start` for [`CUT_PROBE_BYTES`]; `Err` with where it
/// stopped when they end sooner (a list closing, or text that is not a list's values).
fn probe(text: &str, start: usize) -> Result<(), usize> {
    let bytes = text.as_bytes();
    let mut at = start;
    while at - start < CUT_PROBE_BYTES {
        let mut values = serde_json::Deserializer::from_str(&text[at..]).into_iter::<&RawValue>();
        match values.next() {
            Some(Ok(_)) => {}
            _ => return Err(at),
        }
        let next = skip_white(bytes, at + values.byte_offset());
        if bytes.get(next) != Some(&b',') {
            return Err(next);
        }
        at = skip_white(bytes, next + 1);
    }
    Ok(())
}

/// The objects from `part.start` up to the next part's start, which must be landed on exactly
/// (`usize::MAX`: the last part, which ends at the list's closing bracket, whose end it gives).
fn read_part(text: &Arc<String>, part: &Range<usize>) -> Option<(Vec<InputObject>, Option<usize>)> {
    let bytes = text.as_bytes();
    let last = part.end == usize::MAX;
    let mut objects = Vec::new();
    let mut at = part.start;
    loop {
        let (object, end) = read_object(text, at)?;
        objects.push(object);
        let next = skip_white(bytes, end);
        match bytes.get(next)? {
            b',' => at = skip_white(bytes, next + 1),
            b']' => return last.then_some((objects, Some(next + 1))),
            _ => return None,
        }
        if at == part.end {
            return Some((objects, None));
        }
        if at > part.end {
            return None;
        }
    }
}

/// The object (or other value) starting at `at`, read as [`InputObject::new`] reads it, and
/// where it ends; `None` when the text there is not JSON.
fn read_object(text: &Arc<String>, at: usize) -> Option<(InputObject, usize)> {
    let rest = &text[at..];
    if rest.starts_with('{') {
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<ObjectCheck<'_>>();
        if let Some(Ok(check)) = stream.next() {
            let object = &rest[..stream.byte_offset()];
            if let Some((head, attributes)) = check.finish(object) {
                let raw = RawObject::within(text, object);
                return Some((
                    InputObject::checked(raw, head, attributes),
                    at + object.len(),
                ));
            }
        }
    }
    // Not an object the check accepts: where it ends as JSON, and the view to word why.
    let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>();
    let value = stream.next()?.ok()?;
    let object = InputObject::new(RawObject::within(text, value.get()));
    Some((object, at + stream.byte_offset()))
}

/// The end of the value starting at `at`: a string, a nest of objects and lists, or a scalar
/// running to the next delimiter.
fn value_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match bytes.get(at)? {
                    b'"' => {
                        at = string_end(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            let rest = bytes.get(at..)?;
            let len = rest
                .iter()
                .position(|byte| matches!(byte, b',' | b'}' | b']') || is_white(*byte))
                .unwrap_or(rest.len());
            (len > 0).then_some(at + len)
        }
    }
}

/// The position after the closing quote of the string opening at `open`.
fn string_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut at = open + 1;
    loop {
        at += memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
        if bytes[at] == b'"' {
            return Some(at + 1);
        }
        // An escape: the byte after the backslash is taken whatever it is (`\"`, `\\`, …).
        at += 2;
    }
}

fn skip_white(bytes: &[u8], at: usize) -> usize {
    at + bytes
        .get(at..)
        .unwrap_or_default()
        .iter()
        .take_while(|byte| is_white(**byte))
        .count()
}

fn is_white(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_opens_after_the_keys_before_it() {
        let text = r#" { "action": 1, "config": {"objects": [9], "s": "]}{[\"\\"},
            "objects" : [ {"value": "a"} ] } "#;
        let open = objects_list_start(text).unwrap();
        assert!(text[open..].starts_with("[ {\"value\""));
        for text in [
            "[]",
            r#"{"action": 1}"#,
            r#"{"obj\u0065cts": [{}], "objects": []}"#,
            r#"{"objects": null}"#,
            r#"{"objects" [1]}"#,
            r#"{1: 2, "objects": []}"#,
        ] {
            assert_eq!(objects_list_start(text), None, "{text}");
        }
    }

    #[test]
    fn a_cut_inside_a_string_is_not_landed_on() {
        // The first object's description looks like a boundary; reading in parts must not
        // take it for one.
        let mut objects: Vec<String> = (0..40)
            .map(|index| format!(r#"{{"value": "v{index}", "description": "x}}, {{\"y\""}}"#))
            .collect();
        objects.push("7".to_string());
        let text = Arc::new(format!(
            r#"{{"objects": [{}], "state": null}}"#,
            objects.join(", ")
        ));
        let open = objects_list_start(&text).unwrap();
        if let Some((read, end)) = read_list(&text, open) {
            let raws: Vec<&str> = read.iter().map(|object| object.raw().get()).collect();
            assert_eq!(raws, objects);
            assert_eq!(&text[end..], r#", "state": null}"#);
        }
    }
}
