//! Splitting many values of one multi-valued query parameter (`ids=a,b,c`) into requests whose
//! URLs stay short enough for SentinelOne and any proxy in between.
//!
//! This module only measures and splits. Batches of ids sent in JSON bodies use
//! `slice::chunks` with per-endpoint constants that the actions define.

/// Bytes that the joined values of one multi-valued query parameter may take in the URL.
///
/// Consoles and proxies commonly refuse request lines over 8 KB; 6000 bytes of values leave room
/// for the path, the other filters, `limit` and a paging cursor.
pub const QUERY_VALUES_BUDGET: usize = 6000;

/// Splits `values` into consecutive chunks whose comma-joined form fits in `budget` bytes.
///
/// Length is measured as the values will appear in the URL, percent-encoded the way ureq encodes
/// query values (the comma itself becomes `%2C`). That is never shorter than the plain
/// comma-joined text, so `join_csv(chunk).len() <= budget` holds for every chunk, and the URL
/// really stays short for values full of `/`, `:` or non-ASCII characters.
///
/// Order is kept and nothing is dropped: a single value longer than the budget gets a chunk of
/// its own (the request may then be refused, which is reported for that value alone).
pub fn chunk_for_query<S: AsRef<str>>(values: &[S], budget: usize) -> Vec<&[S]> {
    let separator = encoded_len(",");
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut length = 0;
    for (index, value) in values.iter().enumerate() {
        let cost = encoded_len(value.as_ref());
        if index == start {
            length = cost;
        } else if length + separator + cost > budget {
            chunks.push(&values[start..index]);
            start = index;
            length = cost;
        } else {
            length += separator + cost;
        }
    }
    if start < values.len() {
        chunks.push(&values[start..]);
    }
    chunks
}

/// The values joined with commas, the list form SentinelOne's query parameters take.
pub fn join_csv(values: &[String]) -> String {
    values.join(",")
}

/// Length of `value` once percent-encoded as a query value by ureq 3 (its `ENCODED_IN_QUERY`
/// set: controls, space and `"#$%&'+,/:;<=>?@[\]^`{|}`, plus every non-ASCII byte).
fn encoded_len(value: &str) -> usize {
    value
        .bytes()
        .map(|byte| {
            // The printable ASCII that set leaves alone, written as a match: every value of a
            // 50,000-object run is measured before the first look-up is sent.
            let kept = byte.is_ascii_alphanumeric()
                || matches!(byte, b'!' | b'(' | b')' | b'*' | b'-' | b'.' | b'_' | b'~');
            if kept { 1 } else { 3 }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::api::test_server::{Reply, TestServer, test_client};

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| value.to_string()).collect()
    }

    #[test]
    fn encoded_length_matches_ureq_percent_encoding() {
        assert_eq!(encoded_len("abcDEF012-_.~"), 13);
        assert_eq!(encoded_len(","), 3);
        assert_eq!(encoded_len("a/b c"), 9);
        assert_eq!(encoded_len("é"), 6);
    }

    #[test]
    fn encoded_length_is_what_ureq_puts_on_the_wire() {
        let server = TestServer::start(vec![Reply::json(200, serde_json::json!({}))]);
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        let values = strings(&[
            "C:\\Temp\\a b.exe",
            "http://x.test/?q=1&r=[2]",
            "é~'\"#%+",
            &every_ascii,
        ]);
        let joined = join_csv(&values);
        test_client(&server).get("/x", &[("ids", joined)]).unwrap();
        let target = &server.requests()[0].target;
        let sent = target.split_once("ids=").unwrap().1;
        let commas = 3 * (values.len() - 1);
        let expected: usize = values.iter().map(|v| encoded_len(v)).sum::<usize>() + commas;
        assert_eq!(sent.len(), expected, "{sent}");
    }

    #[test]
    fn hashes_pack_up_to_the_budget() {
        let hashes: Vec<String> = (0..200).map(|i| format!("{i:064x}")).collect();
        let chunks = chunk_for_query(&hashes, QUERY_VALUES_BUDGET);
        // 64 bytes + an encoded comma each: 6000 / 67 → 89 per full chunk.
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [89, 89, 22]
        );
    }

    #[test]
    fn an_over_long_value_gets_its_own_chunk() {
        let values = strings(&["a", "b", &"x".repeat(50), "c"]);
        let chunks = chunk_for_query(&values, 10);
        assert_eq!(chunks, [&values[0..2], &values[2..3], &values[3..4]]);
    }

    #[test]
    fn empty_input_gives_no_chunks() {
        assert!(chunk_for_query::<String>(&[], 10).is_empty());
        assert_eq!(join_csv(&strings(&["a", "b"])), "a,b");
    }

    proptest! {
        #[test]
        fn chunks_keep_order_and_fit_the_budget(
            values in proptest::collection::vec("[a-z0-9/:é,]{0,40}", 0..60),
            budget in 0usize..200,
        ) {
            let chunks = chunk_for_query(&values, budget);
            let rejoined: Vec<String> = chunks.iter().flat_map(|c| c.iter().cloned()).collect();
            prop_assert_eq!(&rejoined, &values);
            for chunk in &chunks {
                prop_assert!(!chunk.is_empty());
                if chunk.len() > 1 {
                    prop_assert!(join_csv(chunk).len() <= budget);
                    let encoded: usize = chunk.iter().map(|v| encoded_len(v)).sum::<usize>()
                        + 3 * (chunk.len() - 1);
                    prop_assert!(encoded <= budget);
                }
            }
        }
    }
}
