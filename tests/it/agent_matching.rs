//! Property tests of the host-name rule (issue 14: the FQDN `nw-hq-ws-014.attacker-c2.example`
//! isolated the internal computer `NW-HQ-WS-014`): an FQDN names an agent only when it equals
//! the agent's whole fully-qualified name — never by its first label, a suffix or a prefix.
//!
//! - In process, over arbitrary strings and over look-alike names built from real ones: a match
//!   implies full equality, and an FQDN that differs from the agent's in its domain never matches.
//! - Through the simulator: random agents (same host names in several domains, NetBIOS and
//!   `WORKGROUP` domains, computer names that are FQDNs) and random FQDN indicators go through the
//!   disconnect action; exactly the agents whose fully-qualified name equals an indicator end up
//!   disconnected, and no other agent id is in any request.
//!
//! Counts are bounded for CI; `PROPTEST_CASES` raises them, `PROPTEST_RNG_SEED` varies the seed.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use s1_actions::action::lookup::agents::{fully_qualified_name, names_agent};
use s1_actions::runner::{self, Mode};
use s1_sim::{Scenario, Simulator};
use serde_json::{Value, json};

/// Cases of the in-process properties.
const PURE_CASES: u32 = 512;
/// Cases of the simulator-backed property (a simulator and a run each, a few ms).
const SIMULATED_CASES: u32 = 24;

fn config(cases: u32) -> ProptestConfig {
    crate::support::proptest_config(cases, 0x0014_fdd1)
}

/// The test's own reading of a name: blanks and one trailing dot dropped, ASCII lower case.
fn norm(name: &str) -> String {
    let name = name.trim();
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// A few host names that share prefixes, in any ASCII case.
fn host() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("nw-hq-ws-014"),
            Just("nw-hq-ws-0140"),
            Just("ws-014"),
            Just("kiosk")
        ],
        any::<bool>(),
    )
        .prop_map(|(name, upper)| {
            if upper {
                name.to_ascii_uppercase()
            } else {
                name.to_string()
            }
        })
}

/// DNS domains that are each other's prefixes, suffixes and look-alikes.
fn dns_domain() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("corp.example".to_string()),
        Just("Corp.Example".to_string()),
        Just("attacker-c2.example".to_string()),
        Just("corp.example.evil".to_string()),
        Just("evilcorp.example".to_string()),
        Just("lab.corp.example".to_string()),
    ]
}

/// What an agent may report as its `domain`: a DNS name, or one that gives it no FQDN.
fn reported_domain() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => dns_domain().prop_map(Some),
        1 => Just(Some("WORKGROUP".to_string())),
        1 => Just(Some("CORP".to_string())),
        1 => Just(Some("unknown".to_string())),
        1 => Just(Some(String::new())),
        1 => Just(None),
    ]
}

/// An agent: a bare computer name with a domain, or a computer name that is an FQDN.
fn agent() -> impl Strategy<Value = (String, Option<String>)> {
    prop_oneof![
        3 => (host(), reported_domain()),
        1 => (host(), dns_domain(), reported_domain())
            .prop_map(|(host, dns, domain)| (format!("{host}.{dns}"), domain)),
    ]
}

/// An FQDN indicator: a host name in a DNS domain, any case, maybe with a trailing dot.
fn indicator() -> impl Strategy<Value = String> {
    (host(), dns_domain(), any::<bool>(), any::<bool>()).prop_map(|(host, dns, upper, dot)| {
        let name = format!("{host}.{dns}");
        let name = if upper {
            name.to_ascii_uppercase()
        } else {
            name
        };
        if dot { format!("{name}.") } else { name }
    })
}

/// The test's own fully-qualified name of an agent whose domain is one of `reported_domain`.
fn expected_fqdn(computer_name: &str, domain: Option<&str>) -> Option<String> {
    let name = norm(computer_name);
    if name.contains('.') {
        return Some(name);
    }
    let domain = norm(domain.unwrap_or_default());
    domain.contains('.').then(|| format!("{name}.{domain}"))
}

proptest! {
    #![proptest_config(config(PURE_CASES))]

    /// Whatever the strings, a match means the indicator is the agent's whole name.
    #[test]
    fn a_match_is_full_equality(
        wanted in "\\PC{0,24}|[a-zA-Z0-9.-]{0,24}",
        computer_name in "\\PC{0,16}|[a-zA-Z0-9.-]{0,16}",
        domain in proptest::option::of("\\PC{0,16}|[a-zA-Z0-9._-]{0,16}"),
    ) {
        if names_agent(&wanted, &computer_name, domain.as_deref()) {
            let wanted = norm(&wanted);
            let name = norm(&computer_name);
            prop_assert!(!wanted.is_empty());
            if wanted.contains('.') {
                let whole = format!("{name}.{}", norm(domain.as_deref().unwrap_or_default()));
                prop_assert!(wanted == name || wanted == whole, "{} vs {} / {}", wanted, name, whole);
                prop_assert_eq!(
                    fully_qualified_name(&computer_name, domain.as_deref()),
                    Some(wanted)
                );
            } else {
                prop_assert_eq!(wanted, name);
            }
        }
    }

    /// The rule agrees with the test's reading on realistic agents and indicators.
    #[test]
    fn matches_exactly_the_agents_whose_fqdn_is_the_indicator(
        (computer_name, domain) in agent(),
        wanted in indicator(),
    ) {
        let expected = expected_fqdn(&computer_name, domain.as_deref()) == Some(norm(&wanted));
        prop_assert_eq!(names_agent(&wanted, &computer_name, domain.as_deref()), expected);
    }

    /// The first label of an internal computer under any other domain never names it.
    #[test]
    fn another_domain_never_matches(
        host in host(),
        own in dns_domain(),
        other in dns_domain(),
    ) {
        prop_assume!(!own.eq_ignore_ascii_case(&other));
        let other_domain = format!("{host}.{other}");
        let suffixed = format!("{host}.{own}.evil");
        let prefixed = format!("x.{host}.{own}");
        let exact = format!("{host}.{own}");
        prop_assert!(!names_agent(&other_domain, &host, Some(&own)));
        prop_assert!(!names_agent(&suffixed, &host, Some(&own)));
        prop_assert!(!names_agent(&prefixed, &host, Some(&own)));
        prop_assert!(names_agent(&exact, &host.to_ascii_uppercase(), Some(&own)));
    }
}

proptest! {
    #![proptest_config(config(SIMULATED_CASES))]

    /// End to end: the disconnect action isolates exactly the agents whose fully-qualified name
    /// is one of the indicators, and sends no other agent id.
    #[test]
    fn disconnect_isolates_only_exact_fqdn_matches(
        agents in proptest::collection::vec(agent(), 1..12),
        indicators in proptest::collection::vec(indicator(), 1..6),
    ) {
        let seeds: Vec<Value> = agents
            .iter()
            .enumerate()
            .map(|(i, (name, domain))| {
                let mut seed = json!({
                    "id": format!("{}", 5000 + i),
                    "computerName": name,
                    "siteId": "20",
                    "ips": [format!("10.0.{}.{}", i / 200, i % 200 + 1)],
                });
                if let Some(domain) = domain {
                    seed["domain"] = json!(domain);
                }
                seed
            })
            .collect();
        let scenario = json!({
            "api_token": "test-token",
            "accounts": [{"id": "10", "name": "A"}],
            "sites": [{"id": "20", "name": "S", "accountId": "10"}],
            "agents": seeds,
        });
        let simulator = Simulator::start(Scenario::from_json(&scenario.to_string()).unwrap()).unwrap();
        let objects: Vec<Value> = indicators
            .iter()
            .map(|value| json!({"type": "FQDN", "value": value}))
            .collect();
        let envelope = json!({
            "action": "sentinelone-disconnect-network",
            "config": {"hostname": simulator.base_url(), "api_token": "test-token",
                       "max_agents_per_indicator": 1000, "requests_per_second": 1000},
            "objects": objects,
        });
        let (result, _) = runner::execute(&envelope.to_string(), Mode::Run { dry_run: false });
        let result = serde_json::to_value(&result).unwrap();
        prop_assert_eq!(&result["status"], "succeeded", "{}", result);

        let wanted: BTreeSet<String> = indicators.iter().map(|value| norm(value)).collect();
        let expected: BTreeSet<String> = agents
            .iter()
            .enumerate()
            .filter(|(_, (name, domain))| {
                expected_fqdn(name, domain.as_deref()).is_some_and(|fqdn| wanted.contains(&fqdn))
            })
            .map(|(i, _)| format!("{}", 5000 + i))
            .collect();
        let sent: BTreeSet<String> = simulator
            .take_requests()
            .into_iter()
            .filter(|request| request.method == "POST")
            .flat_map(|request| {
                request
                    .body
                    .and_then(|body| body.pointer("/filter/ids").cloned())
                    .and_then(|ids| serde_json::from_value::<Vec<String>>(ids).ok())
                    .unwrap_or_default()
            })
            .collect();
        prop_assert_eq!(&sent, &expected);
        let state = simulator.state();
        let disconnected: BTreeSet<String> = state["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|agent| agent["networkStatus"] == "disconnected")
            .filter_map(|agent| agent["id"].as_str().map(str::to_string))
            .collect();
        prop_assert_eq!(disconnected, expected);
    }
}
