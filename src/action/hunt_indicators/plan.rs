//! Packing indicators into as few query texts as a length bound allows, in either query
//! language: per type one clause per event field that carries it (`field <op> ("v1","v2",…)`),
//! the clauses OR'ed. Owns the indicator → field mapping of both languages and the event key
//! each field comes back under; it sends nothing.
//!
//! Sources. Deep Visibility (S1QL): the `(…)` list form of operators, `In Contains Anycase`
//! and `Url` for domains, redcanaryco/surveyor `products/sentinel_one.py`. PowerQuery: the
//! field names (`src.process.image.sha1`, `tgt.file.sha1`, `dst.ip.address`,
//! `event.dns.request`, `url.address`, `tgt.file.path`, `src.process.image.path`…) are
//! surveyor's `PARAMETER_MAPPING_PQ` and its `group … by` column list; `field in:anycase
//! ('a', 'b')` is the operator SentinelOne's own PowerQuery examples use
//! (Sentinel-One/ai-siem skills: `src.process.user in:anycase ('NT AUTHORITY\\SYSTEM', …)`,
//! where a backslash in a string is doubled); `in` needs `(` to begin its list (surveyor
//! issue #103, the console's 400 answer). UNCONFIRMED: the S1QL operator `In Anycase` and the
//! S1QL field names of hashes, destination IPs, DNS requests and paths, and the escape of a
//! double quote inside a string in either language (`\"` here).

use std::collections::BTreeMap;

use crate::action::TargetId;
/// The planner's items name their type (re-exported for callers outside the crate).
pub use crate::indicator::IndicatorType;

/// A query language of SentinelOne.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// Deep Visibility's S1QL.
    S1ql,
    PowerQuery,
}

/// One event field that carries an indicator type: its name in each language and the key the
/// event (a Deep Visibility event, or a PowerQuery row read under these column names) holds it
/// under.
#[derive(Debug)]
pub struct Field {
    s1ql: &'static str,
    powerquery: &'static str,
    pub key: &'static str,
}

const fn field(s1ql: &'static str, powerquery: &'static str, key: &'static str) -> Field {
    Field {
        s1ql,
        powerquery,
        key,
    }
}

const SHA1: &[Field] = &[
    field("TgtFileSha1", "tgt.file.sha1", "tgtFileSha1"),
    field(
        "SrcProcImageSha1",
        "src.process.image.sha1",
        "srcProcImageSha1",
    ),
];
const SHA256: &[Field] = &[
    field("TgtFileSha256", "tgt.file.sha256", "tgtFileSha256"),
    field(
        "SrcProcImageSha256",
        "src.process.image.sha256",
        "srcProcImageSha256",
    ),
];
const MD5: &[Field] = &[
    field("TgtFileMd5", "tgt.file.md5", "tgtFileMd5"),
    field(
        "SrcProcImageMd5",
        "src.process.image.md5",
        "srcProcImageMd5",
    ),
];
const IP: &[Field] = &[field("DstIP", "dst.ip.address", "dstIp")];
const DNS: &[Field] = &[field("DNSRequest", "event.dns.request", "dnsRequest")];
const URL: &[Field] = &[field("Url", "url.address", "url")];
const PATH: &[Field] = &[
    field("TgtFilePath", "tgt.file.path", "tgtFilePath"),
    field(
        "SrcProcImagePath",
        "src.process.image.path",
        "srcProcImagePath",
    ),
];

/// Every searched field, once.
pub const SEARCHED: [&[Field]; 7] = [SHA1, SHA256, MD5, IP, DNS, URL, PATH];

/// The event fields that carry an indicator type.
pub fn fields(kind: IndicatorType) -> &'static [Field] {
    match kind {
        IndicatorType::Sha1 => SHA1,
        IndicatorType::Sha256 => SHA256,
        IndicatorType::Md5 => MD5,
        IndicatorType::IpAddress | IndicatorType::Ipv6Address => IP,
        IndicatorType::Fqdn => DNS,
        IndicatorType::Url => URL,
        IndicatorType::FilePath => PATH,
    }
}

impl Language {
    /// `field`'s name in this language.
    pub fn name(self, field: &Field) -> &'static str {
        match self {
            Self::S1ql => field.s1ql,
            Self::PowerQuery => field.powerquery,
        }
    }

    /// What joins a field name and its value list, up to the opening parenthesis.
    fn operator(self) -> &'static str {
        match self {
            Self::S1ql => " In Anycase (",
            Self::PowerQuery => " in:anycase (",
        }
    }

    /// Length of one type's clause whose quoted values, comma-joined, are `joined` long.
    fn clause_len(self, kind: IndicatorType, joined: usize) -> usize {
        let fields = fields(kind);
        let each: usize = fields
            .iter()
            .map(|field| self.name(field).len() + self.operator().len() + joined + 1)
            .sum();
        each + OR.len() * (fields.len() - 1) + 2
    }

    /// One type's clause: `(field <op> (list) OR …)`.
    fn clause(self, kind: IndicatorType, list: &str) -> String {
        let parts: Vec<String> = fields(kind)
            .iter()
            .map(|field| format!("{}{}{list})", self.name(field), self.operator()))
            .collect();
        format!("({})", parts.join(OR))
    }
}

const OR: &str = " OR ";

/// A value as a string of either language.
pub fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One query: its targets and its filter text.
#[derive(Debug)]
pub struct Query {
    pub ids: Vec<TargetId>,
    pub text: String,
}

/// The query being filled: per type (keyed by its first field's name), the type, its quoted
/// values with their targets, and their comma-joined length.
type Filling = BTreeMap<&'static str, (IndicatorType, Vec<(TargetId, String)>, usize)>;

fn finish(language: Language, current: &mut Filling, queries: &mut Vec<Query>) {
    if current.is_empty() {
        return;
    }
    let mut ids = Vec::new();
    let clauses: Vec<String> = std::mem::take(current)
        .into_values()
        .map(|(kind, values, _)| {
            ids.extend(values.iter().map(|(id, _)| *id));
            let list: Vec<&str> = values.iter().map(|(_, text)| text.as_str()).collect();
            language.clause(kind, &list.join(","))
        })
        .collect();
    queries.push(Query {
        ids,
        text: clauses.join(OR),
    });
}

/// Packs `items` (target, type, value) into filter texts of at most `bound` characters,
/// greedily in type order: a value adds its quoted length plus a comma per field of its type,
/// and a type's first value adds its clause. A value whose clause alone is too long is
/// returned apart.
pub fn plan(
    language: Language,
    items: &[(TargetId, IndicatorType, String)],
    bound: usize,
) -> (Vec<Query>, Vec<TargetId>) {
    let key = |kind: IndicatorType| language.name(&fields(kind)[0]);
    let mut sorted: Vec<&(TargetId, IndicatorType, String)> = items.iter().collect();
    sorted.sort_by_key(|(id, kind, _)| (key(*kind), *id));
    let mut queries = Vec::new();
    let mut too_long = Vec::new();
    let mut current = Filling::new();
    let mut length = 0;
    for (id, kind, value) in sorted {
        let text = quoted(value);
        let alone = language.clause_len(*kind, text.len());
        if alone > bound {
            too_long.push(*id);
            continue;
        }
        let added = match current.get(key(*kind)) {
            Some((_, _, joined)) => {
                language.clause_len(*kind, joined + 1 + text.len())
                    - language.clause_len(*kind, *joined)
            }
            None if current.is_empty() => alone,
            None => alone + OR.len(),
        };
        if length + added > bound {
            finish(language, &mut current, &mut queries);
            length = alone;
        } else {
            length += added;
        }
        let entry = current.entry(key(*kind)).or_insert((*kind, Vec::new(), 0));
        entry.2 += text.len() + usize::from(!entry.1.is_empty());
        entry.1.push((*id, text));
    }
    finish(language, &mut current, &mut queries);
    (queries, too_long)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,000 indicators, 125 of each of the eight types.
    fn mixed() -> Vec<(TargetId, IndicatorType, String)> {
        let kinds = [
            IndicatorType::Sha1,
            IndicatorType::Sha256,
            IndicatorType::Md5,
            IndicatorType::IpAddress,
            IndicatorType::Ipv6Address,
            IndicatorType::Fqdn,
            IndicatorType::Url,
            IndicatorType::FilePath,
        ];
        (0..1000)
            .map(|i| {
                let kind = kinds[i % kinds.len()];
                let value = match kind {
                    IndicatorType::Sha1 => format!("{i:040x}"),
                    IndicatorType::Sha256 => format!("{i:064x}"),
                    IndicatorType::Md5 => format!("{i:032x}"),
                    IndicatorType::IpAddress => format!("10.0.{}.{}", i / 256, i % 256),
                    IndicatorType::Ipv6Address => format!("2001:db8::{i:x}"),
                    IndicatorType::Fqdn => format!("host{i}.evil.example"),
                    IndicatorType::Url => format!("https://evil.example/p/{i}"),
                    IndicatorType::FilePath => format!("C:\\Users\\Public\\drop{i}.exe"),
                };
                (i, kind, value)
            })
            .collect()
    }

    /// In both languages: every query within the bound, no two consecutive ones small enough
    /// to be one, every indicator in exactly one, and as many queries as the text needs.
    #[test]
    fn a_thousand_mixed_indicators_take_the_fewest_queries_the_bound_allows() {
        let items = mixed();
        for (language, bound, expected) in [
            (Language::S1ql, 10_000, 6),
            (Language::PowerQuery, 7_500, 8),
        ] {
            let (queries, too_long) = plan(language, &items, bound);
            assert!(too_long.is_empty());
            let total: usize = queries.iter().map(|query| query.text.len()).sum();
            assert_eq!(queries.len(), total.div_ceil(bound), "{language:?}");
            assert_eq!(queries.len(), expected, "{language:?}");
            for query in &queries {
                assert!(query.text.len() <= bound, "{}", query.text.len());
            }
            for pair in queries.windows(2) {
                assert!(pair[0].text.len() + pair[1].text.len() + OR.len() > bound);
            }
            let mut ids: Vec<TargetId> =
                queries.iter().flat_map(|query| query.ids.clone()).collect();
            ids.sort_unstable();
            assert_eq!(ids, (0..1000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn each_type_is_searched_on_its_fields_with_escaped_values() {
        let items = vec![
            (0, IndicatorType::FilePath, r#"C:\a "b".exe"#.to_string()),
            (1, IndicatorType::IpAddress, "10.0.0.1".to_string()),
            (2, IndicatorType::IpAddress, "10.0.0.2".to_string()),
        ];
        let (queries, _) = plan(Language::S1ql, &items, 10_000);
        assert_eq!(queries.len(), 1);
        assert_eq!(
            queries[0].text,
            r#"(DstIP In Anycase ("10.0.0.1","10.0.0.2")) OR (TgtFilePath In Anycase ("C:\\a \"b\".exe") OR SrcProcImagePath In Anycase ("C:\\a \"b\".exe"))"#
        );
        let (queries, _) = plan(Language::PowerQuery, &items, 10_000);
        assert_eq!(
            queries[0].text,
            r#"(dst.ip.address in:anycase ("10.0.0.1","10.0.0.2")) OR (tgt.file.path in:anycase ("C:\\a \"b\".exe") OR src.process.image.path in:anycase ("C:\\a \"b\".exe"))"#
        );
    }

    #[test]
    fn the_planned_length_is_the_length_of_the_text() {
        let items = mixed();
        for language in [Language::S1ql, Language::PowerQuery] {
            for bound in [300, 1_000, 4_321] {
                let (queries, _) = plan(language, &items, bound);
                for query in &queries {
                    assert!(query.text.len() <= bound);
                }
            }
        }
    }

    #[test]
    fn a_value_too_long_for_any_query_is_set_apart() {
        let items = vec![(0, IndicatorType::Url, "x".repeat(10_000))];
        let (queries, too_long) = plan(Language::PowerQuery, &items, 10_000);
        assert!(queries.is_empty());
        assert_eq!(too_long, vec![0]);
    }
}
