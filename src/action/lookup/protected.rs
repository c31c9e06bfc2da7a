//! Protected computers: the `protected_agents` list of the actions that isolate or mitigate
//! endpoints, and the one rule that decides whether an agent is on it.
//!
//! Each entry (one per line) is an agent id, a computer name or an IP address; an entry
//! protects every agent it could name, so that a doubtful entry protects more, never less:
//! - agent id: equal to the agent's `id` (digits only, as SentinelOne ids are);
//! - computer name: the exact host-name rule of [`agents::names_agent`] (ASCII case ignored; a
//!   bare name matches a bare `computerName`, an FQDN the agent's fully-qualified name);
//! - IP address: equal to one of the addresses of the agent's network interfaces (`inet`,
//!   `inet6`), compared as parsed addresses.
//!
//! An entry that is none of these (blanks inside, wildcards, a URL) is refused before any
//! request (`config.invalid`): a protection list that silently protects nothing is worse than
//! no run.
//!
//! Actions that already hold the agents they act on (13, 21) split each indicator's agents with
//! [`Protected::hold_back`]; those that hold only agent ids (threats, action 2) first
//! [`Protected::resolve`] the list to agents with `GET /agents` — `ids`,
//! `computerName__contains` and `networkInterfaceInet__contains` are list filters of that
//! endpoint (SW24 `AgentsApi.md`, `reference/sentinelone-api.md` §7.1) — and match by id. A
//! failed resolution ends the run: nothing is written unless every protected computer is known.
//!
//! The one outcome decided here is shared by every such action: an indicator all of whose
//! computers are protected fails with `input.protected` ([`refusal`]) — the analyst asked for
//! the action and did not get it, which a success would hide. Otherwise the action's detail
//! ends with the computers left alone ([`left_alone`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::agents::{self, Agent, AgentItem};
use crate::action::{RunContext, TargetId};
use crate::api::{QUERY_VALUES_BUDGET, chunk_for_query, join_csv};
use crate::error::{ErrorCode, Failure};

/// The configuration parameter that holds the list.
pub const PARAM: &str = "protected_agents";

/// Longest host name (RFC 1035).
const MAX_NAME: usize = 253;

/// One entry of the list, with each reading that applies to it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    text: String,
    address: Option<IpAddr>,
    /// Set when the entry is a usable host name that is not an IP address (an agent id is
    /// one too).
    name: bool,
    /// Set when the entry is all digits.
    id: bool,
}

impl Entry {
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let address = agents::parse_address(text).filter(|_| !text.contains('%'));
        // An address is not also a name: `10.0.0.12` would look agents up by `10`.
        let name = address.is_none() && is_host_name(text);
        let id = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        (address.is_some() || name).then(|| Self {
            text: text.to_string(),
            address,
            name,
            id,
        })
    }

    fn names(&self, agent: &Agent) -> bool {
        (self.id && agent.id == self.text)
            || self.address.is_some_and(|ip| agent.addresses.contains(&ip))
            || (self.name
                && agents::names_agent(&self.text, &agent.computer_name, agent.domain.as_deref()))
    }
}

/// Whether `text` is a host name: dot-separated labels of ASCII letters, digits, `-` or `_`,
/// each 1–63 bytes, one trailing dot allowed.
fn is_host_name(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    !text.is_empty()
        && text.len() <= MAX_NAME
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The configured protected computers (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protected {
    entries: Vec<Entry>,
}

impl Protected {
    /// Reads the list; an entry that is neither an agent id, a host name nor an IP address is
    /// `config.invalid` on `config.protected_agents`.
    pub fn parse(lines: Option<&[String]>) -> Result<Self, Failure> {
        let mut entries = Vec::new();
        for line in lines.unwrap_or_default() {
            let Some(entry) = Entry::parse(line) else {
                return Err(Failure::config_invalid(
                    format!("config.{PARAM}"),
                    format!(
                        "'{}' is not an agent id, a computer name or an IP address: give one per \
                         line, without wildcards",
                        line.trim()
                    ),
                ));
            };
            entries.push(entry);
        }
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry that protects `agent`, if one does.
    pub fn matching(&self, agent: &Agent) -> Option<&str> {
        self.entries
            .iter()
            .find(|entry| entry.names(agent))
            .map(|entry| entry.text.as_str())
    }

    /// Every agent the token can see that an entry protects, by id, with its display name:
    /// `GET /agents` (all pages) by id, by computer name (first label, then the exact rule) and
    /// by interface address. Nothing is sent for an empty list. A failed request is the error.
    pub fn resolve(&self, ctx: &RunContext<'_>) -> Result<ProtectedAgents, Failure> {
        let mut by_id = BTreeMap::new();
        if self.is_empty() {
            return Ok(ProtectedAgents { by_id });
        }
        let values = |pick: fn(&Entry) -> Option<String>| -> Vec<String> {
            let mut values: Vec<String> = self.entries.iter().filter_map(pick).collect();
            values.sort_unstable();
            values.dedup();
            values
        };
        let ids = values(|entry| entry.id.then(|| entry.text.clone()));
        let names = values(|entry| {
            entry
                .name
                .then(|| agents::first_label(&entry.text).to_ascii_lowercase())
        });
        let addresses = values(|entry| entry.address.map(|ip| ip.to_string()));
        let client = ctx.client();
        for (filter, values) in [
            ("ids", ids),
            ("computerName__contains", names),
            ("networkInterfaceInet__contains", addresses),
        ] {
            for chunk in chunk_for_query(&values, QUERY_VALUES_BUDGET) {
                client
                    .pages_as::<AgentItem>("/agents", vec![(filter, join_csv(chunk))], "/data")
                    .each_item(|item| {
                        let Some(agent) = Agent::from_fields(item.0) else {
                            return;
                        };
                        if self.matching(&agent).is_some() {
                            by_id.insert(agent.id.clone(), agent.display_name().to_string());
                        }
                    })?;
            }
        }
        Ok(ProtectedAgents { by_id })
    }
}

/// The protected agents, resolved ([`Protected::resolve`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtectedAgents {
    by_id: BTreeMap<String, String>,
}

impl ProtectedAgents {
    /// The display name of agent `id` when it is protected.
    pub fn name(&self, id: &str) -> Option<&str> {
        self.by_id.get(id).map(String::as_str)
    }
}

impl Protected {
    /// One target's agents split into those to act on and the protected ones (second). A
    /// target all of whose agents are protected fails here with `input.protected` (`None`):
    /// nothing is sent for it.
    pub fn hold_back(
        &self,
        ctx: &mut RunContext<'_>,
        id: TargetId,
        agents: Vec<Agent>,
    ) -> Option<(Vec<Agent>, Vec<Agent>)> {
        if !agents.iter().any(|agent| self.matching(agent).is_some()) {
            // The usual case, and the target's list kept as it is: `partition` would give
            // every target of a 50,000-object run a new list with room for four agents.
            return Some((agents, Vec::new()));
        }
        let (held, kept): (Vec<Agent>, Vec<Agent>) = agents
            .into_iter()
            .partition(|agent| self.matching(agent).is_some());
        if kept.is_empty() && !held.is_empty() {
            let names = name_list(held.iter().map(Agent::display_name));
            ctx.fail(id, refusal(&ctx.target(id).value, &names));
            return None;
        }
        Some((kept, held))
    }
}

/// Computer names written in a detail before "and N more".
const NAMES_IN_DETAIL: usize = 10;

/// Up to ten names, then how many more: "A, B and 4 more".
pub fn name_list<'n>(names: impl IntoIterator<Item = &'n str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    let mut text = names[..names.len().min(NAMES_IN_DETAIL)].join(", ");
    if names.len() > NAMES_IN_DETAIL {
        text.push_str(&format!(" and {} more", names.len() - NAMES_IN_DETAIL));
    }
    text
}

/// The end of a detail naming the protected computers held back for an indicator
/// ("; N protected computer(s) left alone: A, B"; empty when there are none). `what` says what
/// was left alone on them ("" for the computers themselves).
pub fn left_alone<'n>(what: &str, names: impl IntoIterator<Item = &'n str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        return String::new();
    }
    format!(
        "; {what}{} protected computer(s) left alone: {}",
        names.len(),
        name_list(names)
    )
}

/// The failure of an indicator all of whose computers are protected: nothing was sent for it,
/// and running again will not change that (not retryable).
pub fn refusal(value: &str, names: &str) -> Failure {
    Failure::new(
        ErrorCode::InputProtected,
        format!(
            "'{value}' matches only protected computers ({names}); nothing was sent for it \
             (remove them from {PARAM} to act on them)"
        ),
    )
    .with_field(format!("config.{PARAM}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn agent() -> Agent {
        Agent::from_json(&json!({
            "id": "225494730938493804", "computerName": "DC01", "domain": "corp.example",
            "networkInterfaces": [{"inet": ["10.0.0.5"], "inet6": ["fe80::1"]}]
        }))
        .unwrap()
    }

    fn list(lines: &[&str]) -> Result<Protected, Failure> {
        let lines: Vec<String> = lines.iter().map(|line| line.to_string()).collect();
        Protected::parse(Some(&lines))
    }

    #[test]
    fn an_entry_protects_by_id_name_fqdn_or_interface_address() {
        for entry in [
            "225494730938493804",
            "dc01",
            "DC01.corp.example.",
            "10.0.0.5",
            "FE80:0::1",
        ] {
            assert!(
                list(&[entry]).unwrap().matching(&agent()).is_some(),
                "{entry}"
            );
        }
    }

    #[test]
    fn partial_names_addresses_and_ids_protect_nothing() {
        for entry in [
            "dc0",
            "dc01.other.example",
            "10.0.0.50",
            "22549473093849380",
        ] {
            assert!(
                list(&[entry]).unwrap().matching(&agent()).is_none(),
                "{entry}"
            );
        }
        assert!(Protected::parse(None).unwrap().is_empty());
    }

    #[test]
    fn the_left_alone_note_names_up_to_ten_computers() {
        assert_eq!(left_alone("", []), "");
        assert_eq!(
            left_alone("threats on ", ["A", "B"]),
            "; threats on 2 protected computer(s) left alone: A, B"
        );
        let names: Vec<String> = (1..=12).map(|n| format!("PC-{n}")).collect();
        let note = left_alone("", names.iter().map(String::as_str));
        assert!(note.starts_with("; 12 protected computer(s) left alone: PC-1, "));
        assert!(note.ends_with("PC-10 and 2 more"), "{note}");
    }

    #[test]
    fn wildcards_blanks_and_urls_are_refused() {
        for entry in [
            "dc*",
            "dc 01",
            "https://dc01",
            "10.0.0.0/8",
            "fe80::1%eth0",
            "..",
        ] {
            let err = list(&["dc01", entry]).unwrap_err();
            assert_eq!(err.code, ErrorCode::ConfigInvalid, "{entry}");
            assert_eq!(err.field.as_deref(), Some("config.protected_agents"));
        }
    }
}
