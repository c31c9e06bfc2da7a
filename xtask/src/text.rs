//! JSON values as `packaging/package.py` saw them, which the refusals and the diff keep: their
//! text as Python's `json.dumps` wrote it (`", "` and `": "` separators, non-ASCII kept) and
//! Python's `repr` (administrators and scripts read those lines), and Python's equality, where
//! `1 == 1.0` (the binary prints a manifest's `"min": 1` back as `1.0`).

use std::io;

use serde::Serialize;
use serde_json::Value;
use serde_json::ser::Formatter;

/// Compact JSON with a space after `,` and `:`.
struct SpacedFormatter;

impl Formatter for SpacedFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// Equality of parsed JSON as in Python: numbers by value, objects whatever their key order.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| same(x, y)))
        }
        _ => a == b,
    }
}

/// `json.dumps(value, ensure_ascii=False)`.
pub fn show<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, SpacedFormatter);
    match value.serialize(&mut serializer) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        // Only a map with non-string keys fails; manifests and spec output have none.
        Err(_) => "?".to_string(),
    }
}

/// Python's `repr` of a parsed JSON value (`'text'`, `None`, `[1, 2]`).
pub fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => repr_str(text),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{}: {}", repr_str(key), repr(value)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Python's `repr` of a string: single quotes unless the text has one and no double quote.
pub fn repr_str(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn show_spaces_like_json_dumps() {
        assert_eq!(
            show(&json!(["SHA-1", "File Path"])),
            r#"["SHA-1", "File Path"]"#
        );
        assert_eq!(
            show(&json!({"a": 1, "b": [true, null]})),
            r#"{"a": 1, "b": [true, null]}"#
        );
        assert_eq!(show(&json!("Zürich \"x\"")), r#""Zürich \"x\"""#);
        assert_eq!(show(&json!(5000.0)), "5000.0");
        assert_eq!(show(&json!([])), "[]");
    }

    #[test]
    fn numbers_equal_by_value_objects_in_any_order() {
        assert!(same(
            &json!({"min": 1, "max": 2}),
            &json!({"max": 2.0, "min": 1.0})
        ));
        assert!(same(&json!([1, "a"]), &json!([1.0, "a"])));
        assert!(!same(&json!([1, 2]), &json!([2, 1])));
        assert!(!same(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!same(&json!(1), &json!(true)));
        assert!(same(&json!(u64::MAX), &json!(u64::MAX)));
    }

    #[test]
    fn repr_like_python() {
        assert_eq!(
            repr(&json!("sentinelone-mitigate")),
            "'sentinelone-mitigate'"
        );
        assert_eq!(repr(&json!("it's")), "\"it's\"");
        assert_eq!(repr(&json!(null)), "None");
        assert_eq!(repr(&json!([1, 2, null])), "[1, 2, None]");
        assert_eq!(repr(&json!("a\\b\n")), "'a\\\\b\\n'");
    }
}
