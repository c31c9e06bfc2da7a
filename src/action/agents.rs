//! The batched look-up of SentinelOne agents by IP address or host name, shared by the actions
//! that report on or act on the computers behind an indicator (list agents, connect and
//! disconnect).
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
//! - FQDN values are matched as computer names. An agent matches when its `computerName`,
//!   ignoring case, equals the whole FQDN or the FQDN's first label: `ACME-WS-0142` is the
//!   agent of `acme-ws-0142.corp.example`, and so is an agent named `acme-ws-0142.corp.example`.
//!   The first label is what is sent, in `computerName__contains`, because it is contained in
//!   both forms. Two computers with the same short name in different DNS domains both match;
//!   the actions report the computers they found by name, and disconnect refuses an indicator
//!   that matches more agents than its limit.
//!
//! The optional `query` (SentinelOne's free-text agent search) and `siteIds` filters are sent
//! on every look-up request, so they narrow the agents of every indicator.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use serde_json::Value;

use crate::action::{RunContext, TargetId};
use crate::api::{QUERY_VALUES_BUDGET, join_csv};
use crate::indicator::IndicatorType;

/// Smallest URL budget left for indicator values, however long the extra filters are.
const MIN_VALUES_BUDGET: usize = 1000;

/// An agent, as far as the actions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: String,
    pub computer_name: String,
    /// `osName` (e.g. "Windows 11 Pro"), or `osType` when the console sends no name.
    pub os: Option<String>,
    /// `connected`, `disconnected`, `connecting` or `disconnecting`.
    pub network_status: Option<String>,
    pub last_active: Option<String>,
    /// Every `inet` and `inet6` address of the agent's network interfaces.
    pub addresses: Vec<IpAddr>,
}

impl Agent {
    pub fn from_json(item: &Value) -> Option<Self> {
        let text = |key: &str| {
            item.get(key)
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_string)
        };
        let id = match item.get("id")? {
            Value::String(id) => id.clone(),
            Value::Number(id) => id.to_string(),
            _ => return None,
        };
        let addresses = item
            .get("networkInterfaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|interface| {
                ["inet", "inet6"].into_iter().flat_map(move |key| {
                    interface
                        .get(key)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                })
            })
            .filter_map(parse_address)
            .collect();
        Some(Self {
            id,
            computer_name: text("computerName").unwrap_or_default(),
            os: text("osName").or_else(|| text("osType")),
            network_status: text("networkStatus"),
            last_active: text("lastActiveDate"),
            addresses,
        })
    }

    /// Whether this agent is the computer behind the target (`kind`, normalised `value`).
    pub fn matches(&self, kind: IndicatorType, value: &str) -> bool {
        match kind {
            IndicatorType::IpAddress | IndicatorType::Ipv6Address => {
                parse_address(value).is_some_and(|ip| self.addresses.contains(&ip))
            }
            IndicatorType::Fqdn => {
                self.computer_name.eq_ignore_ascii_case(value)
                    || self.computer_name.eq_ignore_ascii_case(first_label(value))
            }
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
fn parse_address(text: &str) -> Option<IpAddr> {
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
fn first_label(fqdn: &str) -> &str {
    fqdn.split('.').next().unwrap_or(fqdn)
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

/// One look-up request: the filter to send and the targets it covers.
struct Batch {
    targets: Vec<TargetId>,
    query: Vec<(&'static str, String)>,
}

/// The agents of every target in `ids` (IP Address, IPv6 Address or FQDN), in the same order,
/// each list sorted by computer name. A target whose look-up failed has been failed in `ctx`
/// and gets `None`.
pub fn find(
    ctx: &mut RunContext<'_>,
    ids: &[TargetId],
    scope: Scope<'_>,
) -> Vec<Option<Vec<Agent>>> {
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
            batches.push(Batch {
                targets: chunk,
                query,
            });
        }
    }
    let pages = ctx.batches(
        "agent lookup",
        &batches,
        |batch| batch.targets.clone(),
        |client, batch| {
            client
                .pages("/agents", batch.query.clone(), "/data")
                .all_items()
        },
    );
    let mut found: HashMap<TargetId, Vec<Agent>> = HashMap::new();
    for (batch, items) in batches.iter().zip(pages) {
        let Some(items) = items else { continue };
        for agent in items.iter().filter_map(Agent::from_json) {
            for id in &batch.targets {
                let target = ctx.target(*id);
                if agent.matches(target.kind, &target.value) {
                    let list = found.entry(*id).or_default();
                    if !list.iter().any(|known| known.id == agent.id) {
                        list.push(agent.clone());
                    }
                }
            }
        }
    }
    ids.iter()
        .map(|id| {
            ctx.is_pending(*id).then(|| {
                let mut agents = found.remove(id).unwrap_or_default();
                agents.sort_by(|a, b| {
                    a.computer_name
                        .to_lowercase()
                        .cmp(&b.computer_name.to_lowercase())
                        .then_with(|| a.id.cmp(&b.id))
                });
                agents
            })
        })
        .collect()
}

/// What is sent in the look-up filter for a target.
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
    fn an_fqdn_matches_the_computer_name_or_its_first_label() {
        let short = agent("ACME-WS-0142", &[], &[]);
        assert!(short.matches(IndicatorType::Fqdn, "acme-ws-0142.corp.example"));
        assert!(!short.matches(IndicatorType::Fqdn, "acme-ws-01.corp.example"));
        let long = agent("acme-ws-0142.Corp.Example", &[], &[]);
        assert!(long.matches(IndicatorType::Fqdn, "acme-ws-0142.corp.example"));
        assert!(!long.matches(IndicatorType::Fqdn, "acme-ws-0142.other.example"));
        let longer = agent("ACME-WS-0142-OLD", &[], &[]);
        assert!(!longer.matches(IndicatorType::Fqdn, "acme-ws-0142.corp.example"));
        assert_eq!(
            search_value(IndicatorType::Fqdn, "acme-ws-0142.corp.example"),
            "acme-ws-0142"
        );
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
