//! Dispatch of one request to its endpoint: base path, auth, permissions, method, body parsing.
//!
//! Owns the route table and the order of checks a console applies: unknown paths outside the API
//! are 404; then the `ApiToken` (401), the scenario's forbidden paths (403), the route (404),
//! the method (405) and Threat Intelligence's refusal of multi-account tokens (403). It does not read sockets, inject faults or record requests (that is
//! `mod.rs`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::model::ListKind;
use super::params::{ApiError, Params};
use super::scenario::TokenUserSeed;
use super::state::State;
use super::{agents, dv, iocs, lists, misc, org, pq, threats, user};

/// The API's base path.
pub(crate) const BASE: &str = "/web/api/v2.1";

/// A path prefix from the scenario as a full path: prefixes that do not start with `/web/` are
/// taken relative to the API base (`/threats` → `/web/api/v2.1/threats`).
pub(crate) fn full_prefix(prefix: &str) -> String {
    if prefix.starts_with("/web/") {
        prefix.to_string()
    } else if prefix.starts_with('/') {
        format!("{BASE}{prefix}")
    } else {
        format!("{BASE}/{prefix}")
    }
}

/// What the router needs to know about the scenario besides the state.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub api_token: String,
    pub forbidden_paths: Vec<String>,
    /// The scenario's `comma_lists`: whether `__contains` query values are split at commas.
    pub comma_lists: bool,
    /// The token's user, as `GET /user` shows it (its accounts are in the state).
    pub user: TokenUserSeed,
}

/// An endpoint's answer: a JSON value, or JSON text already serialized (large lists).
#[derive(Debug)]
pub(crate) enum Reply {
    Json(Value),
    Text(String),
}

/// A request as the router sees it.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a BTreeMap<String, String>,
    /// The parsed body: `None` when empty, `Some(Err)` when not JSON.
    pub body: Option<Result<&'a Value, ()>>,
    pub authorized: bool,
}

enum Endpoint<'a> {
    TokenDetails,
    User,
    Accounts,
    Sites,
    Groups,
    List(ListKind),
    Threats,
    Mitigate(&'a str),
    ThreatVerdict,
    ThreatIncident,
    ThreatNotes,
    ThreatNotesOf(&'a str),
    Agents,
    AgentNetwork(bool),
    /// `initiate-scan` (true) or `abort-scan` (false).
    AgentScan(bool),
    HashVerdict(&'a str),
    Activities,
    ActivityTypes,
    Alerts,
    AlertUpdate(bool),
    Iocs,
    DvInit,
    DvStatus,
    DvEvents,
    PqStart,
    PqPing,
}

fn route<'a>(segments: &[&'a str]) -> Option<(&'static [&'static str], Endpoint<'a>)> {
    const GET: &[&str] = &["GET"];
    const POST: &[&str] = &["POST"];
    const ALL: &[&str] = &["GET", "POST", "DELETE"];
    Some(match segments {
        ["users", "api-token-details"] => (POST, Endpoint::TokenDetails),
        ["user"] => (GET, Endpoint::User),
        ["accounts"] => (GET, Endpoint::Accounts),
        ["sites"] => (GET, Endpoint::Sites),
        ["groups"] => (GET, Endpoint::Groups),
        ["restrictions"] => (ALL, Endpoint::List(ListKind::Blacklist)),
        ["exclusions"] => (ALL, Endpoint::List(ListKind::Exclusions)),
        ["threats"] => (GET, Endpoint::Threats),
        ["threats", "mitigate", action] => (POST, Endpoint::Mitigate(action)),
        ["threats", "analyst-verdict"] => (POST, Endpoint::ThreatVerdict),
        ["threats", "incident"] => (POST, Endpoint::ThreatIncident),
        ["threats", "notes"] => (POST, Endpoint::ThreatNotes),
        ["threats", id, "notes"] => (GET, Endpoint::ThreatNotesOf(id)),
        ["agents"] => (GET, Endpoint::Agents),
        ["agents", "actions", "connect"] => (POST, Endpoint::AgentNetwork(true)),
        ["agents", "actions", "disconnect"] => (POST, Endpoint::AgentNetwork(false)),
        // Reference §7.3 (SW24 `AgentActionsApi.md`).
        ["agents", "actions", "initiate-scan"] => (POST, Endpoint::AgentScan(true)),
        ["agents", "actions", "abort-scan"] => (POST, Endpoint::AgentScan(false)),
        ["hashes", hash, "verdict"] => (GET, Endpoint::HashVerdict(hash)),
        ["activities"] => (GET, Endpoint::Activities),
        ["activities", "types"] => (GET, Endpoint::ActivityTypes),
        ["cloud-detection", "alerts"] => (GET, Endpoint::Alerts),
        ["cloud-detection", "alerts", "analyst-verdict"] => (POST, Endpoint::AlertUpdate(true)),
        ["cloud-detection", "alerts", "incident"] => (POST, Endpoint::AlertUpdate(false)),
        ["threat-intelligence", "iocs"] => (ALL, Endpoint::Iocs),
        ["dv", "init-query"] => (POST, Endpoint::DvInit),
        ["dv", "query-status"] => (GET, Endpoint::DvStatus),
        ["dv", "events"] => (GET, Endpoint::DvEvents),
        ["dv", "events", "pq"] => (POST, Endpoint::PqStart),
        ["dv", "events", "pq-ping"] => (GET, Endpoint::PqPing),
        _ => return None,
    })
}

/// Answers one call: the status and the JSON body text.
pub(crate) fn handle(state: &mut State, access: &Access, call: &Call<'_>) -> (u16, String) {
    match dispatch(state, access, call) {
        Ok(Reply::Json(body)) => (200, body.to_string()),
        Ok(Reply::Text(text)) => (200, text),
        Err(error) => (error.status, error.body().to_string()),
    }
}

fn dispatch(state: &mut State, access: &Access, call: &Call<'_>) -> Result<Reply, ApiError> {
    let not_found = || ApiError::not_found(format!("No route for {}", call.path));
    let Some(rest) = call.path.strip_prefix(BASE) else {
        return Err(not_found());
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(not_found());
    }
    if !call.authorized {
        return Err(ApiError::unauthorized());
    }
    if access
        .forbidden_paths
        .iter()
        .any(|prefix| call.path.starts_with(prefix.as_str()))
    {
        return Err(ApiError::forbidden());
    }
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let Some((methods, endpoint)) = route(&segments) else {
        return Err(not_found());
    };
    let method = call.method.to_ascii_uppercase();
    if !methods.contains(&method.as_str()) {
        return Err(ApiError::method_not_allowed(&method));
    }
    if matches!(endpoint, Endpoint::Iocs) && user::is_multi_account(state) {
        return Err(ApiError::multi_scope_user());
    }
    let params = Params::from_query(call.query).with_comma_lists(access.comma_lists);
    let null = Value::Null;
    let body = match call.body {
        None => &null,
        Some(Ok(body)) => body,
        Some(Err(())) if method == "GET" => &null,
        Some(Err(())) => {
            return Err(ApiError::validation(
                "{'_schema': ['Invalid input: the request body is not JSON.']}",
            ));
        }
    };
    match (method.as_str(), endpoint) {
        (_, Endpoint::TokenDetails) => {
            misc::token_details(state, &access.api_token, body).map(Reply::Json)
        }
        (_, Endpoint::User) => user::get(state, &access.user, &params).map(Reply::Json),
        (_, Endpoint::Accounts) => org::accounts(state, &params).map(Reply::Json),
        (_, Endpoint::Sites) => org::sites(state, &params).map(Reply::Json),
        (_, Endpoint::Groups) => org::groups(state, &params).map(Reply::Json),
        ("GET", Endpoint::List(list)) => lists::get(state, list, &params).map(Reply::Json),
        ("POST", Endpoint::List(list)) => lists::post(state, list, body).map(Reply::Json),
        (_, Endpoint::List(list)) => lists::delete(state, list, body).map(Reply::Json),
        (_, Endpoint::Threats) => threats::get(state, &params),
        (_, Endpoint::Mitigate(action)) => threats::mitigate(state, action, body).map(Reply::Json),
        (_, Endpoint::ThreatVerdict) => threats::analyst_verdict(state, body).map(Reply::Json),
        (_, Endpoint::ThreatIncident) => threats::incident(state, body).map(Reply::Json),
        (_, Endpoint::ThreatNotes) => threats::add_note(state, body).map(Reply::Json),
        (_, Endpoint::ThreatNotesOf(id)) => threats::notes(state, id, &params).map(Reply::Json),
        (_, Endpoint::Agents) => agents::get(state, &params).map(Reply::Json),
        (_, Endpoint::AgentNetwork(connect)) => {
            agents::network_action(state, connect, body).map(Reply::Json)
        }
        (_, Endpoint::AgentScan(start)) => agents::scan_action(state, start, body).map(Reply::Json),
        (_, Endpoint::HashVerdict(hash)) => {
            misc::hash_verdict(state, hash, &params).map(Reply::Json)
        }
        (_, Endpoint::Activities) => misc::activities(state, &params).map(Reply::Json),
        (_, Endpoint::ActivityTypes) => Ok(Reply::Json(misc::activity_types(state))),
        (_, Endpoint::Alerts) => misc::alerts(state, &params).map(Reply::Json),
        (_, Endpoint::AlertUpdate(verdict)) => {
            misc::update_alerts(state, verdict, body).map(Reply::Json)
        }
        ("GET", Endpoint::Iocs) => iocs::get(state, &params).map(Reply::Json),
        ("POST", Endpoint::Iocs) => iocs::post(state, body).map(Reply::Json),
        (_, Endpoint::Iocs) => iocs::delete(state, body).map(Reply::Json),
        (_, Endpoint::DvInit) => dv::init_query(state, body).map(Reply::Json),
        (_, Endpoint::DvStatus) => dv::query_status(state, &params).map(Reply::Json),
        (_, Endpoint::DvEvents) => dv::events(state, &params).map(Reply::Json),
        (_, Endpoint::PqStart) => pq::start(state, call.path, body).map(Reply::Json),
        (_, Endpoint::PqPing) => pq::ping(state, call.path, &params).map(Reply::Json),
    }
}
