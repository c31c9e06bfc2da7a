//! The batched look-up of SentinelOne agents by IP address or host name, shared by the actions
//! that report on or act on the computers behind an indicator (list agents, connect and
//! disconnect), and the rule that decides whether an agent *is* the computer an indicator names.
//! A write to an endpoint rests on that rule, so it is exact: a partial match never counts.
//!
//! One `GET /agents` look-up (all pages) serves many indicators:
//! - IP Address and IPv6 Address values go comma-separated in `networkInterfaceInet__contains`
//!   (the addresses of the agent's own network interfaces). `__contains` is a substring search
//!   (`10.0.0.1` also finds `10.0.0.11`), so an agent matches an IP only when one of its
//!   interface addresses (`inet` or `inet6`) *equals* it, compared as parsed addresses (IPv6 in
//!   any spelling, without a `%zone`).
//!   `externalIp__contains` is deliberately not searched: the external IP is the address the
//!   agent's NAT shows the console, shared by every computer of an office, so matching it would
//!   tie one public IP to all of them — and isolate all of them on a disconnect.
//! - FQDN values are looked up by their first label in `computerName__contains` (a free-text,
//!   multi-value filter: SW24 `AgentsApi.md`, see `reference/sentinelone-api.md` §7.1). That
//!   only gathers *candidates*: every agent that could be the computer contains the first label
//!   in its `computerName`. Which candidates match is decided here, by [`names_agent`].
//!
//! # Host-name rule
//!
//! SentinelOne reports an agent's `computerName` and, separately, its `domain` ("Network
//! domain", SW24 `AgentsSchemasAgentViewSchemaMany200Data.md`). Real agents report `WORKGROUP`
//! for a computer in no domain (XSOAR `SentinelOne-V2/test_data/agents_raw_response.json`,
//! rapid7/insightconnect-plugins PR #520), the NetBIOS name of an Active Directory domain
//! (`"domain": "SIEMPLIFY"` for a domain-joined laptop in the Siemplify SentinelOneV2
//! integration's documented "Enrich Endpoint" output; code index, repository not identified),
//! and `unknown` when there is none (an Exabeam SentinelOne parser reads `agentDomain:
//! "unknown"` as no domain; code index, repository not identified). Whether a console ever
//! reports a DNS domain there is not documented: with NetBIOS names only, an FQDN indicator
//! matches only agents whose `computerName` is itself fully qualified — fewer matches, never a
//! wrong one.
//!
//! An agent's *fully-qualified name* is therefore:
//! - its `computerName`, when that already holds a dot (`web01.corp.example` names itself);
//! - otherwise `computerName` + `.` + `domain`, when the domain is a DNS name: at least two
//!   non-empty labels of letters, digits, `-` or `_`;
//! - otherwise nothing: `WORKGROUP`, `unknown`, a NetBIOS name (`ACME`), an empty or missing
//!   domain give the agent no fully-qualified name, and no FQDN indicator can match it.
//!
//! Names compare ignoring ASCII case (never Unicode case folding, which would let the Kelvin
//! sign stand for `k`), with surrounding blanks and one trailing dot ignored. An indicator
//! with a dot matches an agent only when it *equals* the agent's fully-qualified name:
//! `nw-hq-ws-014.attacker-c2.example` does not match `NW-HQ-WS-014` (domain `WORKGROUP`), nor
//! `NW-HQ-WS-014` in `corp.example`, and `ws-014.corp.example.evil` does not match
//! `ws-014.corp.example`. A bare name (no dot) matches only a bare `computerName` equal to it,
//! whatever the agent's domain: it names a computer, not a place in DNS. (ThreatQ FQDN values
//! always hold a dot — `crate::indicator` checks that — so bare names reach this rule only
//! from callers other than the actions.)
//!
//! Candidates that share the indicator's host name but not its domain are kept apart
//! ([`Found::other_domains`]) so that an indicator matching nothing can say which computers
//! were passed over and why.
//!
//! The optional `query` (SentinelOne's free-text agent search) and `siteIds` filters are sent
//! on every look-up request, so they narrow the agents of every indicator.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

use super::lenient;
use crate::action::{RunContext, TargetId, lookup};
use crate::api::{QUERY_VALUES_BUDGET, join_csv};
use crate::indicator::IndicatorType;

/// Smallest URL budget left for indicator values, however long the extra filters are.
const MIN_VALUES_BUDGET: usize = 1000;

/// An agent, as far as the actions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: String,
    pub computer_name: String,
    /// `domain` as the agent reports it (`WORKGROUP`, `ACME`, `corp.example`, …); `None` when
    /// absent, null or empty.
    pub domain: Option<String>,
    /// `osName` (e.g. "Windows 11 Pro"), or `osType` when the console sends no name.
    pub os: Option<String>,
    /// `connected`, `disconnected`, `connecting` or `disconnecting`.
    pub network_status: Option<String>,
    /// `scanStatus` (reference §7.1, SW24 `AgentsSchemasAgentViewSchemaMany200Data`): `started`
    /// while a full disk scan runs, then e.g. `aborted` (XSOAR SentinelOne-V2 `README.md`,
    /// `sentinelone-list-agents` `scan_status`: "started,aborted").
    pub scan_status: Option<String>,
    pub last_active: Option<String>,
    /// Every `inet` and `inet6` address of the agent's network interfaces.
    pub addresses: Vec<IpAddr>,
}

/// The fields of an agent item that [`Agent`] reads: a look-up page is read straight into
/// these, leniently (a field of another shape reads as absent), and the rest of each item
/// (tens of fields, a kilobyte or more) is skipped instead of being built as a JSON tree.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentFields {
    id: Option<Value>,
    #[serde(deserialize_with = "lenient::text")]
    computer_name: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    domain: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    os_name: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    os_type: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    network_status: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    scan_status: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    last_active_date: Option<String>,
    network_interfaces: lenient::List<Vec<lenient::Object<Interface>>>,
}

/// The addresses of one network interface.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Interface {
    inet: lenient::List<Vec<Value>>,
    inet6: lenient::List<Vec<Value>>,
}

/// An agent item of any shape: a value that is not a JSON object reads as one without an id.
pub type AgentItem = lenient::Object<AgentFields>;

impl Agent {
    pub fn from_json(item: &Value) -> Option<Self> {
        Self::from_fields(AgentFields::deserialize(item).ok()?)
    }

    /// The agent, or `None` for an item without an id.
    pub fn from_fields(item: AgentFields) -> Option<Self> {
        let id = match item.id? {
            Value::String(id) => id,
            Value::Number(id) => id.to_string(),
            _ => return None,
        };
        let text = |text: Option<String>| text.filter(|text| !text.is_empty());
        let addresses = item
            .network_interfaces
            .0
            .iter()
            .flat_map(|interface| interface.0.inet.0.iter().chain(&interface.0.inet6.0))
            .filter_map(Value::as_str)
            .filter_map(parse_address)
            .collect();
        Some(Self {
            id,
            computer_name: item.computer_name.unwrap_or_default(),
            domain: text(item.domain),
            os: text(item.os_name).or_else(|| text(item.os_type)),
            network_status: text(item.network_status),
            scan_status: text(item.scan_status),
            last_active: text(item.last_active_date),
            addresses,
        })
    }

    /// Whether this agent is the computer behind the target (`kind`, normalised `value`).
    pub fn matches(&self, kind: IndicatorType, value: &str) -> bool {
        match kind {
            IndicatorType::IpAddress | IndicatorType::Ipv6Address => {
                parse_address(value).is_some_and(|ip| self.addresses.contains(&ip))
            }
            IndicatorType::Fqdn => names_agent(value, &self.computer_name, self.domain.as_deref()),
            _ => false,
        }
    }

    /// The computer name, or the agent id for an agent without one.
    pub fn display_name(&self) -> &str {
        if self.computer_name.is_empty() {
            &self.id
        } else {
            &self.computer_name
        }
    }
}

/// An address as the console may spell it: IPv6 in any case or form, possibly with a `%zone`.
pub fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let text = text
        .split_once('%')
        .map_or(text, |(address, _zone)| address);
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// `acme-ws-0142` of `acme-ws-0142.corp.example`.
pub fn first_label(fqdn: &str) -> &str {
    fqdn.split('.').next().unwrap_or(fqdn)
}

/// A host name as compared: blanks around it and one trailing dot dropped, ASCII lower case.
/// Non-ASCII letters are kept as they are, so they never equal an ASCII letter.
fn normalise_name(name: &str) -> String {
    let name = name.trim();
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Whether a (normalised) domain is a DNS name: two labels or more, each non-empty and made of
/// letters, digits, `-` or `_`. `WORKGROUP`, `unknown` and NetBIOS names (`ACME`) are not.
fn is_dns_domain(domain: &str) -> bool {
    domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The agent's fully-qualified name in lower case (see the module doc), or `None` when the
/// agent reports none: its `computerName` when that holds a dot, else `computerName.domain`
/// when the domain is a DNS name.
pub fn fully_qualified_name(computer_name: &str, domain: Option<&str>) -> Option<String> {
    let name = normalise_name(computer_name);
    if name.is_empty() {
        return None;
    }
    if name.contains('.') {
        return Some(name);
    }
    let domain = normalise_name(domain.unwrap_or_default());
    is_dns_domain(&domain).then(|| format!("{name}.{domain}"))
}

/// Whether the host name `wanted` names the agent with this `computerName` and `domain`: an
/// FQDN (it holds a dot) must equal the agent's fully-qualified name; a bare name must equal a
/// bare `computerName`, whatever the domain. Case and one trailing dot are ignored; nothing
/// else is: no first label, suffix or substring ever counts.
pub fn names_agent(wanted: &str, computer_name: &str, domain: Option<&str>) -> bool {
    let wanted = normalise_name(wanted);
    if wanted.is_empty() {
        return false;
    }
    if wanted.contains('.') {
        fully_qualified_name(computer_name, domain).is_some_and(|fqdn| fqdn == wanted)
    } else {
        let name = normalise_name(computer_name);
        !name.contains('.') && name == wanted
    }
}

/// The filters that narrow every look-up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// SentinelOne's free-text agent search.
    pub query: Option<&'a str>,
    /// Only agents of these sites (empty: every site the token sees).
    pub site_ids: &'a [String],
}

impl Scope<'_> {
    fn filters(&self) -> Vec<(&'static str, String)> {
        let mut filters = Vec::new();
        if let Some(query) = self.query.filter(|query| !query.trim().is_empty()) {
            filters.push(("query", query.to_string()));
        }
        if !self.site_ids.is_empty() {
            filters.push(("siteIds", join_csv(self.site_ids)));
        }
        filters
    }
}

/// One look-up request: the filter to send and the targets it covers, with each target's type
/// and value for the worker to match agents to them.
struct Batch {
    targets: Vec<TargetId>,
    matchers: Vec<(IndicatorType, String)>,
    query: Vec<(&'static str, String)>,
}

impl Batch {
    /// What each of the batch's targets (same positions) found among `agents`.
    fn share_out(&self, agents: Vec<Agent>) -> Vec<Found> {
        let mut found: Vec<Found> = self.targets.iter().map(|_| Found::default()).collect();
        for agent in agents {
            for (found, (kind, value)) in found.iter_mut().zip(&self.matchers) {
                if agent.matches(*kind, value) {
                    push_once(&mut found.agents, &agent);
                } else if *kind == IndicatorType::Fqdn
                    && same_host_name(value, &agent.computer_name)
                {
                    push_once(&mut found.other_domains, &agent);
                }
            }
        }
        for found in &mut found {
            sort_by_name(&mut found.agents);
            sort_by_name(&mut found.other_domains);
            // Held until every look-up is done, one per target: a first push reserves room
            // for four agents, 768 bytes where one agent is 192.
            found.agents.shrink_to_fit();
            found.other_domains.shrink_to_fit();
        }
        found
    }
}

/// The agents found for one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The agents the target names, sorted by computer name.
    pub agents: Vec<Agent>,
    /// FQDN targets only: agents the look-up returned with the target's host name (its first
    /// label) but another fully-qualified name, or none. They are not matches; they are kept
    /// so that a target matching nothing can say who was passed over.
    pub other_domains: Vec<Agent>,
}

impl Found {
    /// The detail of a target no agent matches: "no matching agent", and for an FQDN whose
    /// host name exists under another (or no) fully-qualified name, those computers and theirs.
    pub fn no_match_detail(&self) -> String {
        if self.other_domains.is_empty() {
            return "no matching agent".to_string();
        }
        let shown: Vec<String> = self
            .other_domains
            .iter()
            .take(NAMES_IN_DETAIL)
            .map(passed_over)
            .collect();
        let rest = self.other_domains.len().saturating_sub(NAMES_IN_DETAIL);
        let more = if rest > 0 {
            format!(" and {rest} more")
        } else {
            String::new()
        };
        format!(
            "no matching agent: an FQDN must equal the agent's fully-qualified name; passed over \
             with the same host name: {}{more}",
            shown.join(", "),
        )
    }
}

/// An agent passed over, with what its name really is: "NW-HQ-WS-014 (nw-hq-ws-014.corp.example)",
/// "NW-HQ-WS-014 (domain WORKGROUP, no FQDN)", or a computer name that is its own FQDN alone.
fn passed_over(agent: &Agent) -> String {
    let name = agent.display_name();
    match fully_qualified_name(&agent.computer_name, agent.domain.as_deref()) {
        Some(fqdn) if fqdn == normalise_name(name) => name.to_string(),
        Some(fqdn) => format!("{name} ({fqdn})"),
        None => match &agent.domain {
            Some(domain) => format!("{name} (domain {domain}, no FQDN)"),
            None => format!("{name} (no domain, no FQDN)"),
        },
    }
}

/// Agents named in a no-match detail before "and N more".
const NAMES_IN_DETAIL: usize = 10;

/// Adds `agent` to `list` unless an agent with its id is there already.
fn push_once(list: &mut Vec<Agent>, agent: &Agent) {
    if !list.iter().any(|known| known.id == agent.id) {
        list.push(agent.clone());
    }
}

/// Sorts agents by computer name (ignoring case), then id.
fn sort_by_name(agents: &mut [Agent]) {
    agents.sort_by(|a, b| {
        a.computer_name
            .to_lowercase()
            .cmp(&b.computer_name.to_lowercase())
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// The agents of every target in `ids` (IP Address, IPv6 Address or FQDN), in the same order.
/// A target whose look-up failed has been failed in `ctx` and gets `None`.
pub fn find(ctx: &mut RunContext<'_>, ids: &[TargetId], scope: Scope<'_>) -> Vec<Option<Found>> {
    let extra = scope.filters();
    // Leave room in the URL for the extra filters (at worst every byte percent-encoded).
    let extra_cost: usize = extra.iter().map(|(_, value)| 3 * value.len()).sum();
    let budget = QUERY_VALUES_BUDGET
        .saturating_sub(extra_cost)
        .max(MIN_VALUES_BUDGET);
    let ips: Vec<TargetId> = ids
        .iter()
        .copied()
        .filter(|id| {
            matches!(
                ctx.target(*id).kind,
                IndicatorType::IpAddress | IndicatorType::Ipv6Address
            )
        })
        .collect();
    let names: Vec<TargetId> = ids
        .iter()
        .copied()
        .filter(|id| ctx.target(*id).kind == IndicatorType::Fqdn)
        .collect();
    let mut batches = Vec::new();
    for (group, filter) in [
        (ips, "networkInterfaceInet__contains"),
        (names, "computerName__contains"),
    ] {
        for chunk in ctx.query_chunks(&group, budget) {
            // First labels may repeat (web01.a.example, web01.b.example): send each once.
            let values: BTreeSet<&str> = chunk
                .iter()
                .map(|id| search_value(ctx.target(*id).kind, &ctx.target(*id).value))
                .collect();
            let values: Vec<String> = values.into_iter().map(str::to_string).collect();
            let mut query = vec![(filter, join_csv(&values))];
            query.extend(extra.iter().cloned());
            let matchers = chunk
                .iter()
                .map(|id| (ctx.target(*id).kind, ctx.target(*id).value.clone()))
                .collect();
            batches.push(Batch {
                targets: chunk,
                matchers,
                query,
            });
        }
    }
    lookup::per_target(
        ctx,
        "agent lookup",
        ids,
        &batches,
        |batch| &batch.targets,
        |client, batch| {
            let mut agents = Vec::new();
            client
                .pages_as::<AgentItem>("/agents", batch.query.clone(), "/data")
                .each_item(|item| agents.extend(Agent::from_fields(item.0)))?;
            Ok(batch.share_out(agents))
        },
    )
}

/// Whether the computer name's first label is the FQDN's (ignoring case): a computer the
/// indicator could be mistaken for. Only ever used to explain a non-match.
fn same_host_name(fqdn: &str, computer_name: &str) -> bool {
    first_label(&normalise_name(fqdn)) == first_label(&normalise_name(computer_name))
}

/// What is sent in the look-up filter for a target. For an FQDN, its first label: every agent
/// the FQDN can name holds it in its `computerName` (the whole FQDN, or the host name whose
/// domain completes it), so the candidates include every match. SentinelOne's `__contains`
/// filters are searched as free text; that they ignore case is not documented (the value is
/// sent in lower case): were they case-sensitive, an upper-case computer name would be missed,
/// never wrongly matched.
fn search_value(kind: IndicatorType, value: &str) -> &str {
    match kind {
        IndicatorType::Fqdn => first_label(value),
        _ => value,
    }
}

/// Up to `max` computer names, then how many more: "A, B, C and 4 more".
pub fn name_list(agents: &[&Agent], max: usize) -> String {
    let names: Vec<&str> = agents.iter().take(max).map(|a| a.display_name()).collect();
    let rest = agents.len().saturating_sub(max);
    let mut text = names.join(", ");
    if rest > 0 {
        text.push_str(&format!(" and {rest} more"));
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn agent(name: &str, inet: &[&str], inet6: &[&str]) -> Agent {
        Agent::from_json(&json!({
            "id": "1", "computerName": name, "osType": "windows", "osName": null,
            "networkStatus": "connected", "lastActiveDate": "2026-04-22T13:45:00Z",
            "networkInterfaces": [{"name": "eth0", "inet": inet, "inet6": inet6}]
        }))
        .unwrap()
    }

    #[test]
    fn an_ip_matches_only_an_equal_interface_address() {
        let pc = agent("PC-1", &["10.0.0.11"], &["FE80::1DA3:1CA8:B311:AF32%eth0"]);
        assert!(pc.matches(IndicatorType::IpAddress, "10.0.0.11"));
        // `networkInterfaceInet__contains=10.0.0.1` returns this agent; it is not a match.
        assert!(!pc.matches(IndicatorType::IpAddress, "10.0.0.1"));
        assert!(pc.matches(IndicatorType::Ipv6Address, "fe80::1da3:1ca8:b311:af32"));
        assert!(!pc.matches(IndicatorType::Ipv6Address, "fe80::1"));
        assert_eq!(pc.os.as_deref(), Some("windows"));
    }

    #[test]
    fn an_fqdn_matches_only_the_whole_fully_qualified_name() {
        // computerName + a DNS domain.
        assert!(names_agent(
            "ws-014.corp.example",
            "WS-014",
            Some("corp.example")
        ));
        // A computerName that holds a dot is fully qualified itself, whatever the domain.
        assert!(names_agent(
            "ws-014.corp.example",
            "ws-014.Corp.Example",
            Some("ACME")
        ));
        assert!(!names_agent(
            "ws-014.other.example",
            "ws-014.corp.example",
            Some("other.example")
        ));
    }

    #[test]
    fn the_first_label_alone_never_matches() {
        // The reported defect: an attacker's domain whose first label is an internal computer.
        for domain in [None, Some("WORKGROUP"), Some("NW"), Some("corp.example")] {
            assert!(
                !names_agent("nw-hq-ws-014.attacker-c2.example", "NW-HQ-WS-014", domain),
                "{domain:?}"
            );
        }
        assert!(!names_agent(
            "nw-hq-ws-014.attacker-c2.example",
            "nw-hq-ws-014.corp.example",
            None
        ));
    }

    #[test]
    fn a_bare_name_matches_only_a_bare_computer_name_whatever_the_domain() {
        assert!(names_agent("ws-014", "WS-014", None));
        assert!(names_agent("ws-014", "WS-014", Some("WORKGROUP")));
        assert!(names_agent("ws-014", "WS-014", Some("corp.example")));
        assert!(!names_agent("ws-014", "ws-014.corp.example", None));
        assert!(!names_agent("ws-01", "WS-014", None));
        assert!(!names_agent("ws-0145", "WS-014", None));
    }

    #[test]
    fn an_agent_without_a_dns_domain_has_no_fully_qualified_name() {
        for domain in [
            None,
            Some(""),
            Some("WORKGROUP"),
            Some("unknown"),
            Some("ACME"),
            Some("corp..example"),
            Some(".example"),
            Some("corp example.com"),
        ] {
            assert_eq!(fully_qualified_name("WS-014", domain), None, "{domain:?}");
            assert!(
                !names_agent("ws-014.corp.example", "WS-014", domain),
                "{domain:?}"
            );
        }
        assert_eq!(fully_qualified_name("", Some("corp.example")), None);
        assert!(!names_agent("", "", None));
        assert!(!names_agent(".", "", Some("corp.example")));
    }

    #[test]
    fn case_blanks_and_one_trailing_dot_are_ignored() {
        assert!(names_agent(
            "WS-014.CORP.EXAMPLE.",
            "ws-014",
            Some("Corp.Example.")
        ));
        assert!(names_agent(
            " ws-014.corp.example ",
            "WS-014",
            Some("corp.example")
        ));
        assert_eq!(
            fully_qualified_name("WS-014.", Some("x.example")).as_deref(),
            Some("ws-014.x.example")
        );
        // Two trailing dots are not one name.
        assert!(!names_agent(
            "ws-014.corp.example..",
            "WS-014",
            Some("corp.example")
        ));
        // Only ASCII case is folded: the Kelvin sign (U+212A) lower-cases to `k` in Unicode.
        assert!(!names_agent(
            "kiosk.corp.example",
            "\u{212A}IOSK",
            Some("corp.example")
        ));
    }

    #[test]
    fn lookalike_suffixes_and_prefixes_do_not_match() {
        let agent = |wanted: &str| names_agent(wanted, "WS-014", Some("corp.example"));
        assert!(agent("ws-014.corp.example"));
        assert!(!agent("ws-014.corp.example.evil"));
        assert!(!agent("ws-014.corp.example-evil.net"));
        assert!(!agent("ws-014.evilcorp.example"));
        assert!(!agent("ws-014.example"));
        assert!(!agent("x.ws-014.corp.example"));
        assert!(!agent("ws-0145.corp.example"));
    }

    #[test]
    fn agents_carry_their_domain_into_the_match() {
        let json = |domain: Value| {
            Agent::from_json(&json!({"id": "1", "computerName": "NW-HQ-WS-014", "domain": domain}))
                .unwrap()
        };
        let fqdn = "nw-hq-ws-014.corp.example";
        assert!(json(json!("corp.example")).matches(IndicatorType::Fqdn, fqdn));
        assert!(!json(json!("WORKGROUP")).matches(IndicatorType::Fqdn, fqdn));
        assert!(!json(Value::Null).matches(IndicatorType::Fqdn, fqdn));
        assert!(!json(json!("")).matches(IndicatorType::Fqdn, fqdn));
        assert_eq!(json(json!("")).domain, None);
        assert_eq!(
            search_value(IndicatorType::Fqdn, "acme-ws-0142.corp.example"),
            "acme-ws-0142"
        );
    }

    #[test]
    fn a_no_match_detail_names_the_computers_of_other_domains() {
        let mut found = Found::default();
        assert_eq!(found.no_match_detail(), "no matching agent");
        let mut pc = agent("NW-HQ-WS-014", &[], &[]);
        pc.domain = Some("WORKGROUP".into());
        found.other_domains.push(pc.clone());
        pc.domain = None;
        found.other_domains.push(pc);
        let mut own = agent("nw-hq-ws-014.lab.example", &[], &[]);
        own.domain = Some("unknown".into());
        found.other_domains.push(own);
        let mut dns = agent("NW-HQ-WS-014", &[], &[]);
        dns.domain = Some("corp.example".into());
        found.other_domains.push(dns);
        assert_eq!(
            found.no_match_detail(),
            "no matching agent: an FQDN must equal the agent's fully-qualified name; passed over \
             with the same host name: NW-HQ-WS-014 (domain WORKGROUP, no FQDN), NW-HQ-WS-014 \
             (no domain, no FQDN), nw-hq-ws-014.lab.example, NW-HQ-WS-014 \
             (nw-hq-ws-014.corp.example)"
        );
        assert!(same_host_name("nw-hq-ws-014.evil.example", "NW-HQ-WS-014"));
        assert!(same_host_name(
            "nw-hq-ws-014.evil.example",
            "nw-hq-ws-014.corp.example"
        ));
        assert!(!same_host_name(
            "nw-hq-ws-014.evil.example",
            "NW-HQ-WS-0145"
        ));
    }

    #[test]
    fn agents_without_id_are_ignored_and_names_are_listed_briefly() {
        assert!(Agent::from_json(&json!({"computerName": "x"})).is_none());
        let a = agent("A", &[], &[]);
        let b = agent("B", &[], &[]);
        let c = agent("C", &[], &[]);
        assert_eq!(name_list(&[&a, &b], 5), "A, B");
        assert_eq!(name_list(&[&a, &b, &c], 2), "A, B and 1 more");
    }
}
