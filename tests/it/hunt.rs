//! Action 19 at scale: a hunt of 1,000 mixed indicators sends the fewest queries the query
//! length bound allows, and every indicator gets its attributes or its own error.
//!
//! It runs through the binary with PowerQuery, whose limits (4 per second) let it finish in
//! seconds, against a simulator that enforces SentinelOne's per-endpoint limits (no 429 may be
//! provoked). Deep Visibility allows one query per minute, so its count is checked with the
//! same planner and its own bound, not through the binary.

use s1_actions::action::hunt_indicators::plan::{IndicatorType, Language, plan};
use s1_actions::action::hunt_indicators::{MAX_PQ_QUERY_CHARS, MAX_QUERY_CHARS};
use serde_json::{Value, json};

use crate::support::{self, CANARY_TOKEN};

const TYPES: [(IndicatorType, &str); 8] = [
    (IndicatorType::Sha1, "SHA-1"),
    (IndicatorType::Sha256, "SHA-256"),
    (IndicatorType::Md5, "MD5"),
    (IndicatorType::IpAddress, "IP Address"),
    (IndicatorType::Ipv6Address, "IPv6 Address"),
    (IndicatorType::Fqdn, "FQDN"),
    (IndicatorType::Url, "URL"),
    (IndicatorType::FilePath, "File Path"),
];

/// 1,000 indicators, 125 of each type: (type, ThreatQ type name, value, the event key an
/// event carrying it would hold it under).
fn indicators() -> Vec<(IndicatorType, &'static str, String, &'static str)> {
    (0..1000)
        .map(|i| {
            let (kind, name) = TYPES[i % TYPES.len()];
            let (value, key) = match kind {
                IndicatorType::Sha1 => (format!("{:040x}", i + 1), "tgtFileSha1"),
                IndicatorType::Sha256 => (format!("{:064x}", i + 1), "srcProcImageSha256"),
                IndicatorType::Md5 => (format!("{:032x}", i + 1), "tgtFileMd5"),
                IndicatorType::IpAddress => (format!("10.1.{}.{}", i / 256, i % 256), "dstIp"),
                IndicatorType::Ipv6Address => (format!("2001:db8::{:x}", i + 1), "dstIp"),
                IndicatorType::Fqdn => (format!("host{i}.evil.example"), "dnsRequest"),
                IndicatorType::Url => (format!("https://evil.example/p/{i}"), "url"),
                IndicatorType::FilePath => {
                    (format!("C:\\Users\\Public\\drop{i}.exe"), "tgtFilePath")
                }
            };
            (kind, name, value, key)
        })
        .collect()
}

/// The fewest queries `language` needs for `items` under `bound`, and the simple lower bound
/// ⌈all clause characters / bound⌉ (the whole filter as one text, however long).
fn minimum(
    language: Language,
    items: &[(usize, IndicatorType, String)],
    bound: usize,
) -> (usize, usize) {
    let (queries, too_long) = plan(language, items, bound);
    assert!(too_long.is_empty());
    let (whole, _) = plan(language, items, usize::MAX);
    assert_eq!(whole.len(), 1);
    (queries.len(), whole[0].text.len().div_ceil(bound))
}

#[test]
fn a_hunt_of_1000_mixed_indicators_sends_the_fewest_queries_the_bound_allows() {
    let indicators = indicators();
    // Every 7th indicator was seen once, on one of three endpoints.
    let events: Vec<Value> = indicators
        .iter()
        .enumerate()
        .filter(|(index, _)| index % 7 == 0)
        .map(|(index, (_, _, value, key))| {
            let mut event = json!({
                "eventTime": format!("2026-04-22T{:02}:{:02}:00.000Z", 2 + index % 10, index % 60),
                "agentUuid": format!("agent-{}", index % 3),
                "endpointName": format!("HOST-{}", index % 3),
                "siteId": "2001",
                "eventType": "Test Event",
            });
            event[*key] = json!(value);
            event
        })
        .collect();
    let sim = support::simulator(json!({
        "rate_limits": "sentinelone",
        "pq": { "pings_to_finish": 1 },
        "dv_events": events,
    }));
    let objects: Vec<Value> = indicators
        .iter()
        .enumerate()
        .map(
            |(index, (_, name, value, _))| json!({ "id": index + 1, "type": name, "value": value }),
        )
        .collect();
    let envelope = json!({
        "action": "sentinelone-hunt-indicators",
        "run": { "now": "2026-04-22T13:50:54Z" },
        "config": { "hostname": sim.base_url(), "api_token": CANARY_TOKEN,
                    "requests_per_second": 1000, "max_concurrency": 4 },
        "objects": objects,
    });
    let run = support::run(&["run"], &envelope.to_string());
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let result = run.json();

    // Every indicator: its attributes, and the right count.
    let results = result["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    for (index, object) in result["objects"].as_array().unwrap().iter().enumerate() {
        assert_eq!(results[index]["status"], "succeeded", "{}", results[index]);
        let sightings = object["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|attribute| attribute["name"] == "SentinelOne Sightings")
            .unwrap_or_else(|| panic!("no sightings on {object}"));
        let expected = if index % 7 == 0 { "1" } else { "0" };
        assert_eq!(sightings["value"], expected, "{object}");
    }

    // The queries sent: each within the bound, and no more of them than the bound requires.
    let requests = sim.take_requests();
    assert!(
        requests.iter().all(|request| request.status == 200),
        "a request was refused"
    );
    let texts: Vec<&str> = requests
        .iter()
        .filter(|request| request.method == "POST" && request.path.ends_with("/dv/events/pq"))
        .map(|request| request.body.as_ref().unwrap()["query"].as_str().unwrap())
        .collect();
    let pings = requests
        .iter()
        .filter(|request| request.path.ends_with("/dv/events/pq-ping"))
        .count();
    assert_eq!(requests.len(), texts.len() + pings);
    assert_eq!(pings, texts.len(), "one ping per query");
    assert!(texts.iter().all(|text| text.len() <= MAX_PQ_QUERY_CHARS));
    // The `| columns … | limit N` tail is the same on every query; the filter gets the rest.
    let tail = texts[0].len() - texts[0].find(" | columns ").unwrap();
    let bound = MAX_PQ_QUERY_CHARS - tail;
    let items: Vec<(usize, IndicatorType, String)> = indicators
        .iter()
        .enumerate()
        .map(|(index, (kind, _, value, _))| (index, *kind, value.clone()))
        .collect();
    let (fewest, lower_bound) = minimum(Language::PowerQuery, &items, bound);
    assert_eq!(texts.len(), fewest);
    assert_eq!(
        fewest, lower_bound,
        "the planner needs more than the lower bound"
    );
    assert_eq!(
        texts.len(),
        8,
        "PowerQuery: {} characters per filter",
        bound
    );

    // Deep Visibility: the same planner under its own bound.
    let (fewest, lower_bound) = minimum(Language::S1ql, &items, MAX_QUERY_CHARS);
    assert_eq!(fewest, lower_bound);
    assert_eq!(
        fewest, 6,
        "Deep Visibility: {MAX_QUERY_CHARS} characters per query"
    );
}
