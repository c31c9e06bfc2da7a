//! End-to-end tests of the simulator over real HTTP, driven with `ureq`.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2";
const SHA_C: &str = "cccccccccccccccccccccccccccccccccccccc03";
const SHA_D: &str = "dddddddddddddddddddddddddddddddddddddd04";
const SHA_NEW: &str = "0123456789abcdef0123456789abcdef01234567";

fn scenario_json() -> Value {
    json!({
        "clock": "2026-04-22T13:50:54Z",
        "accounts": [{"id": "100", "name": "Acme"}, {"id": "200", "name": "Globex"}],
        "sites": [
            {"id": "110", "name": "HQ", "accountId": "100", "totalLicenses": 50},
            {"id": "120", "name": "Branch", "accountId": "100"},
            {"id": "210", "name": "Globex Main", "accountId": "200", "totalLicenses": 10}
        ],
        "groups": [
            {"id": "111", "name": "Workstations", "siteId": "110", "isDefault": true},
            {"id": "112", "name": "Servers", "siteId": "110"},
            {"id": "121", "name": "Default Group", "siteId": "120", "isDefault": true}
        ],
        "agents": [
            {"id": "1001", "computerName": "WS-001", "groupId": "111", "ips": ["10.0.0.11", "fe80::11"]},
            {"id": "1002", "computerName": "MAC-002", "groupId": "111", "osType": "macos", "ips": ["10.0.0.12"]},
            {"id": "1003", "computerName": "LNX-003", "groupId": "112", "osType": "linux", "ips": ["10.0.1.13"], "externalIp": "203.0.113.5"},
            {"id": "1004", "computerName": "WS-004", "siteId": "210", "ips": ["192.168.5.4"]}
        ],
        "threats": [
            {"id": "5001", "computerName": "WS-001", "sha1": SHA_A.to_uppercase(), "filePath": "C:\\Users\\a\\evil.exe", "createdAt": "2026-04-20T10:00:00Z"},
            {"id": "5002", "computerName": "MAC-002", "sha1": SHA_A, "filePath": "/Users/b/evil", "createdAt": "2026-04-20T11:00:00Z"},
            {"id": "5003", "computerName": "LNX-003", "sha1": SHA_A, "filePath": "/tmp/evil", "createdAt": "2026-04-20T12:00:00Z"},
            {"id": "5004", "computerName": "WS-004", "sha1": SHA_B, "filePath": "C:\\Temp\\other.dll", "confidenceLevel": "suspicious", "createdAt": "2026-04-21T09:00:00Z"}
        ],
        "alerts": [
            {"id": "8001", "computerName": "WS-001", "ruleName": "Encoded PowerShell", "severity": "HIGH", "sha1": SHA_A, "filePath": "C:\\Windows\\powershell.exe", "createdAt": "2026-04-21T08:00:00Z"},
            {"id": "8002", "computerName": "WS-004", "ruleName": "Odd DLL", "severity": "Low", "incidentStatus": "IN_PROGRESS", "createdAt": "2026-04-21T09:00:00Z"}
        ],
        "activities": [
            {"id": "9001", "activityType": 18, "agentId": "1001", "createdAt": "2026-04-20T10:00:01Z"},
            {"id": "9002", "activityType": 27, "accountId": "100", "createdAt": "2026-04-21T10:00:00Z"}
        ],
        "restrictions": [
            {"id": "7001", "value": SHA_C, "osType": "windows"},
            {"id": "7002", "value": SHA_D, "osType": "windows", "siteId": "110"},
            {"id": "7003", "value": SHA_D, "osType": "linux", "accountId": "100"},
            {"id": "7004", "value": SHA_D, "osType": "windows", "groupId": "112"}
        ],
        "exclusions": [{"id": "7101", "value": SHA_B, "osType": "windows", "siteId": "210"}],
        "hash_verdicts": {SHA_C: "non-malicious"}
    })
}

fn scenario() -> Scenario {
    serde_json::from_value(scenario_json()).unwrap()
}

fn with(extra: Value) -> Scenario {
    let mut base = scenario_json();
    for (key, value) in extra.as_object().unwrap() {
        base[key] = value.clone();
    }
    serde_json::from_value(base).unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// One raw exchange: status, body text and `Retry-After`, or the transport error.
fn exchange(
    sim: &Simulator,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, String, Option<String>), ureq::Error> {
    let url = format!("{}/web/api/v2.1{path}", sim.base_url());
    let agent = agent();
    let auth = auth.unwrap_or("ApiToken sim-token");
    let mut response = match (method, body) {
        ("GET", _) => agent.get(&url).header("Authorization", auth).call()?,
        ("POST", Some(body)) => agent
            .post(&url)
            .header("Authorization", auth)
            .header("Content-Type", "application/json")
            .send(body.to_string())?,
        ("POST", None) => agent
            .post(&url)
            .header("Authorization", auth)
            .send_empty()?,
        ("DELETE", Some(body)) => agent
            .delete(&url)
            .header("Authorization", auth)
            .header("Content-Type", "application/json")
            .force_send_body()
            .send(body.to_string())?,
        ("DELETE", None) => agent.delete(&url).header("Authorization", auth).call()?,
        ("PUT", _) => agent.put(&url).header("Authorization", auth).send_empty()?,
        _ => panic!("unsupported method {method}"),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.body_mut().read_to_string()?;
    Ok((status, text, retry_after))
}

fn api(sim: &Simulator, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, text, _) = exchange(sim, method, path, None, body.as_ref()).unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

fn error_code(body: &Value) -> u64 {
    body["errors"][0]["code"].as_u64().unwrap()
}

#[test]
fn auth_failure_body_and_recording_without_token() {
    let sim = Simulator::start(scenario()).unwrap();
    for auth in [None, Some("ApiToken wrong"), Some("Bearer sim-token")] {
        let url = format!("{}/web/api/v2.1/accounts", sim.base_url());
        let request = agent().get(&url);
        let request = match auth {
            Some(value) => request.header("Authorization", value),
            None => request,
        };
        let mut response = request.call().unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let body: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"errors": [{"code": 4010010, "title": "Authentication Failed", "detail": null}]})
        );
    }
    // The scheme word is case-insensitive.
    let (status, _, _) =
        exchange(&sim, "GET", "/accounts", Some("APIToken sim-token"), None).unwrap();
    assert_eq!(status, 200);
    let log = sim.take_requests();
    assert_eq!(log.len(), 4);
    assert_eq!(
        log.iter().map(|r| r.authorized).collect::<Vec<_>>(),
        vec![false, false, false, true]
    );
    assert_eq!(log[0].status, 401);
    let serialized = serde_json::to_string(&log).unwrap();
    assert!(!serialized.contains("sim-token") && !serialized.contains("wrong"));
    assert!(sim.requests().is_empty());
}

#[test]
fn unknown_path_wrong_method_forbidden_and_validation() {
    let sim = Simulator::start(with(
        json!({"forbidden_paths": ["/web/api/v2.1/threat-intelligence"]}),
    ))
    .unwrap();
    let (status, body) = api(&sim, "GET", "/nothing-here", None);
    assert_eq!((status, error_code(&body)), (404, 4040010));
    let (status, body) = api(&sim, "PUT", "/threats", None);
    assert_eq!((status, error_code(&body)), (405, 4050010));
    let (status, body) = api(&sim, "GET", "/threat-intelligence/iocs", None);
    assert_eq!((status, error_code(&body)), (403, 4030010));
    let (status, body) = api(&sim, "GET", "/threats?contentHash=abc", None);
    assert_eq!((status, error_code(&body)), (400, 4000010));
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("contentHash")
    );
    let (status, body) = api(&sim, "GET", "/agents?limit=0", None);
    assert_eq!((status, error_code(&body)), (400, 4000010));
}

#[test]
fn restrictions_create_duplicate_lookup_scope_and_delete() {
    let sim = Simulator::start(scenario()).unwrap();
    let post = |filter: Value, value: &str| {
        api(
            &sim,
            "POST",
            "/restrictions",
            Some(
                json!({"filter": filter, "data": {"type": "black_hash", "osType": "windows", "value": value, "description": "from test"}}),
            ),
        )
    };
    let (status, body) = post(json!({"tenant": true}), SHA_NEW);
    assert_eq!(status, 200, "{body}");
    let created = &body["data"][0];
    let global = created["id"].as_str().unwrap().to_string();
    assert!(global.starts_with("19000000000000000"));
    assert_eq!(created["type"], "black_hash");
    assert_eq!(created["scope"], json!({"tenant": true}));
    assert_eq!(created["scopeName"], "Global");
    assert_eq!(created["createdAt"], "2026-04-22T13:50:54.000000Z");
    for key in [
        "osType",
        "description",
        "source",
        "scopePath",
        "userId",
        "userName",
        "updatedAt",
        "includeChildren",
        "includeParents",
        "notRecommended",
    ] {
        assert!(created.get(key).is_some(), "missing {key}");
    }

    // The same hash again, in any case, is a 400 with code 4000030 and creates nothing.
    let (status, body) = post(json!({"tenant": true}), &SHA_NEW.to_uppercase());
    assert_eq!((status, error_code(&body)), (400, 4000030));
    assert_eq!(body["errors"][0]["title"], "Already Exists Error");
    // One entry per site; a duplicate in any scope rejects the whole request.
    let (status, body) = post(json!({"siteIds": ["110", "120"]}), SHA_NEW);
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][1]["scopePath"], "Global / Acme / Branch");
    let s110 = body["data"][0]["id"].as_str().unwrap().to_string();
    let s120 = body["data"][1]["id"].as_str().unwrap().to_string();
    let v = |items: &[&str]| -> Vec<String> { items.iter().map(|s| s.to_string()).collect() };
    let (status, body) = post(json!({"siteIds": ["210", "110"]}), SHA_NEW);
    assert_eq!((status, error_code(&body)), (400, 4000030));
    // Scope errors and validation.
    let (status, body) = post(json!({"siteIds": ["110"], "groupIds": ["111"]}), SHA_A);
    assert_eq!((status, error_code(&body)), (400, 4000020));
    let (status, body) = post(json!({"siteIds": ["999"]}), SHA_A);
    assert_eq!((status, error_code(&body)), (400, 4000020));
    let (status, body) = post(json!({}), "not-a-hash");
    assert_eq!((status, error_code(&body)), (400, 4000010));
    let (status, body) = api(
        &sim,
        "POST",
        "/restrictions",
        Some(
            json!({"filter": {}, "data": {"type": "white_hash", "osType": "windows", "value": SHA_A}}),
        ),
    );
    assert_eq!((status, error_code(&body)), (400, 4000010));

    // value__contains takes many values, matched case-insensitively.
    let ids = |query: &str| -> Vec<String> {
        let (status, body) = api(
            &sim,
            "GET",
            &format!("/restrictions?limit=1000&{query}"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let mut ids: Vec<String> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&format!(
            "value__contains={},{}",
            SHA_C.to_uppercase(),
            &SHA_NEW[..12]
        )),
        v(&[&global, &s110, &s120, "7001"])
    );
    assert_eq!(
        ids(&format!("value={}", SHA_C.to_uppercase())),
        Vec::<String>::new()
    );
    assert_eq!(ids(&format!("value={SHA_C}")), vec!["7001"]);
    // Scope selection.
    assert_eq!(ids("siteIds=110"), v(&[&s110, "7002"]));
    assert_eq!(
        ids("siteIds=110&includeParents=true"),
        v(&[&global, &s110, "7001", "7002", "7003"])
    );
    assert_eq!(
        ids("accountIds=100&includeChildren=true&osTypes=windows"),
        v(&[&s110, &s120, "7002", "7004"])
    );
    assert_eq!(ids("tenant=true"), v(&[&global, "7001"]));
    assert_eq!(ids("tenant=true&includeChildren=true").len(), 7);
    let (status, body) = api(&sim, "GET", "/restrictions?siteIds=999", None);
    assert_eq!((status, error_code(&body)), (400, 4000020));

    // Delete by ids.
    let (status, body) = api(
        &sim,
        "DELETE",
        "/restrictions",
        Some(json!({"data": {"ids": ["7001", global, "404"], "type": "black_hash"}})),
    );
    assert_eq!((status, body), (200, json!({"data": {"affected": 2}})));
    let (status, body) = api(
        &sim,
        "DELETE",
        "/restrictions",
        Some(json!({"data": {"ids": []}})),
    );
    assert_eq!((status, error_code(&body)), (400, 4000010));
    assert_eq!(ids("tenant=true"), Vec::<String>::new());
}

#[derive(serde::Deserialize)]
struct IdPage {
    data: Vec<IdOnly>,
    pagination: Pagination,
}

#[derive(serde::Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    total_items: usize,
    next_cursor: Option<String>,
}

#[test]
fn cursor_paging_reads_every_threat_once() {
    let sim = Simulator::start(with(json!({"generate": {"threats": 2500}}))).unwrap();
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path =
            "/threats?limit=1000&sortBy=createdAt&sortOrder=desc&contentHash__contains=5eed"
                .to_string();
        if let Some(cursor) = &cursor {
            path.push_str(&format!(
                "&cursor={}",
                url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect::<String>()
            ));
        }
        let (status, text, _) = exchange(&sim, "GET", &path, None, None).unwrap();
        assert_eq!(status, 200, "{text}");
        // Only the ids are read: building 1,000 full threats as `Value`s is slow in debug builds.
        let page: IdPage = serde_json::from_str(&text).unwrap();
        pages += 1;
        assert_eq!(page.pagination.total_items, 2500);
        for threat in page.data {
            assert!(seen.insert(threat.id.clone()), "repeated {}", threat.id);
        }
        match page.pagination.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (2500, 3));

    let (status, body) = api(&sim, "GET", "/threats?limit=1001", None);
    assert_eq!((status, error_code(&body)), (400, 4000010));
    let (status, _) = api(&sim, "GET", "/threats?skip=1001", None);
    assert_eq!(status, 400);
    let (status, _) = api(&sim, "GET", "/threats?cursor=bm90LWEtY3Vyc29y", None);
    assert_eq!(status, 400);
    // A cursor minted by one endpoint is refused by another.
    let (_, body) = api(&sim, "GET", "/threats?limit=1", None);
    let cursor = body["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_string();
    let encoded: String = url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
    let (status, _) = api(&sim, "GET", &format!("/agents?cursor={encoded}"), None);
    assert_eq!(status, 400);
    let (status, body) = api(
        &sim,
        "GET",
        &format!("/threats?limit=1&cursor={encoded}"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["id"], "5002");
}

#[test]
fn threat_filters_shape_and_hash_verdicts() {
    let sim = Simulator::start(scenario()).unwrap();
    let ids = |query: &str| -> Vec<String> {
        let (status, body) = api(&sim, "GET", &format!("/threats?limit=100&{query}"), None);
        assert_eq!(status, 200, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&format!("contentHashes={}", SHA_A.to_uppercase())),
        vec!["5001", "5002", "5003"]
    );
    assert_eq!(
        ids("filePath__contains=EVIL.EXE,other"),
        vec!["5001", "5004"]
    );
    assert_eq!(ids("query=lnx-003"), vec!["5003"]);
    assert_eq!(
        ids("siteIds=110&sortBy=createdAt&sortOrder=desc"),
        vec!["5003", "5002", "5001"]
    );
    assert_eq!(ids("accountIds=200"), vec!["5004"]);
    assert_eq!(
        ids("createdAt__gt=2026-04-20T11:00:00Z&createdAt__lte=2026-04-21T09:00:00Z"),
        vec!["5003", "5004"]
    );

    let (_, body) = api(&sim, "GET", "/threats?ids=5002", None);
    let threat = &body["data"][0];
    assert_eq!(threat["threatInfo"]["sha1"], SHA_A);
    assert_eq!(threat["threatInfo"]["threatName"], "evil");
    assert_eq!(threat["threatInfo"]["mitigationStatus"], "not_mitigated");
    assert_eq!(threat["agentRealtimeInfo"]["agentComputerName"], "MAC-002");
    assert_eq!(threat["agentRealtimeInfo"]["agentOsType"], "macos");
    assert_eq!(threat["agentRealtimeInfo"]["siteName"], "HQ");
    assert_eq!(threat["agentRealtimeInfo"]["accountId"], "100");
    assert_eq!(threat["mitigationStatus"], json!([]));

    let verdict = |hash: &str| api(&sim, "GET", &format!("/hashes/{hash}/verdict"), None);
    assert_eq!(verdict(SHA_A).1, json!({"data": {"verdict": "malicious"}}));
    assert_eq!(verdict(SHA_B).1["data"]["verdict"], "unknown");
    assert_eq!(
        verdict(&SHA_C.to_uppercase()).1["data"]["verdict"],
        "non-malicious"
    );
    assert_eq!(verdict("abc").0, 400);
}

#[test]
fn mitigation_details_per_os_skips_and_state() {
    let sim = Simulator::start(scenario()).unwrap();
    let (status, body) = api(
        &sim,
        "POST",
        "/threats/mitigate/rollback-remediation",
        Some(json!({"filter": {"contentHashes": [SHA_A]}, "data": {}})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["affected"], 1);
    let details = body["data"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 3);
    assert_eq!(details[0]["threatId"], "5001");
    assert_eq!(details[0]["skipped"], json!([]));
    assert_eq!(details[0]["reports"][0]["action"], "rollback");
    assert_eq!(details[0]["reports"][0]["status"], "success");
    for skipped in &details[1..] {
        assert_eq!(skipped["skipped"][0]["reason"], "not_supported");
        assert_eq!(skipped["skipped"][0]["action"], "rollback");
        assert_eq!(skipped["reports"], json!([]));
    }
    let (_, body) = api(
        &sim,
        "POST",
        "/threats/mitigate/remediate",
        Some(json!({"filter": {"ids": ["5001", "5002", "5003"]}})),
    );
    assert_eq!(body["data"]["affected"], 2);
    let (_, body) = api(
        &sim,
        "POST",
        "/threats/mitigate/quarantine",
        Some(json!({"filter": {"ids": ["5003"]}, "data": {}})),
    );
    assert_eq!(body["data"]["affected"], 1);
    let (_, body) = api(
        &sim,
        "GET",
        "/threats?ids=5003&mitigationStatuses=mitigated",
        None,
    );
    assert_eq!(
        body["data"][0]["mitigationStatus"][0]["action"],
        "quarantine"
    );

    let (status, body) = api(
        &sim,
        "POST",
        "/threats/mitigate/quarantine",
        Some(json!({"data": {}})),
    );
    assert_eq!((status, error_code(&body)), (400, 4000010));
    let (status, _) = api(
        &sim,
        "POST",
        "/threats/mitigate/network-quarantine",
        Some(json!({"filter": {"ids": ["5003"]}})),
    );
    assert_eq!(status, 400);

    // An empty filter acts on every threat, as a real console does.
    let (_, body) = api(
        &sim,
        "POST",
        "/threats/mitigate/kill",
        Some(json!({"filter": {}, "data": {}})),
    );
    assert_eq!(body["data"]["affected"], 4);
    let state = sim.state();
    let statuses: Vec<&str> = state["threats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["mitigationStatus"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["mitigated"; 4]);

    // Verdict, incident status and notes.
    let (_, body) = api(
        &sim,
        "POST",
        "/threats/analyst-verdict",
        Some(
            json!({"filter": {"ids": ["5001", "5002"]}, "data": {"analystVerdict": "true_positive"}}),
        ),
    );
    assert_eq!(body["data"]["affected"], 2);
    let (_, body) = api(
        &sim,
        "POST",
        "/threats/incident",
        Some(
            json!({"filter": {"ids": ["5001", "5004"]}, "data": {"incidentStatus": "resolved", "analystVerdict": "true_positive"}}),
        ),
    );
    assert_eq!(
        body["data"]["details"],
        json!([
            {"threatId": "5001", "result": "updated", "analystVerdict": "true_positive"},
            {"threatId": "5004", "result": "updated", "analystVerdict": "true_positive"}
        ])
    );
    let (_, body) = api(
        &sim,
        "POST",
        "/threats/analyst-verdict",
        Some(json!({"filter": {"ids": ["5001"]}, "data": {"analystVerdict": "true_positive"}})),
    );
    assert_eq!(body["data"]["details"][0]["result"], "not_changed");
    let (_, body) = api(
        &sim,
        "POST",
        "/threats/notes",
        Some(json!({"filter": {"ids": ["5001", "5002"]}, "data": {"text": "seen in ThreatQ"}})),
    );
    assert_eq!(body["data"]["affected"], 2);
    let (_, body) = api(&sim, "GET", "/threats/5001/notes", None);
    assert_eq!(body["data"][0]["text"], "seen in ThreatQ");
    assert_eq!(api(&sim, "GET", "/threats/404/notes", None).0, 404);
}

#[test]
fn agents_lookup_and_network_actions() {
    let sim = Simulator::start(scenario()).unwrap();
    let names = |query: &str| -> Vec<String> {
        let (status, body) = api(&sim, "GET", &format!("/agents?{query}"), None);
        assert_eq!(status, 200, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["computerName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("networkInterfaceInet__contains=10.0.0.12,192.168.5.4"),
        vec!["MAC-002", "WS-004"]
    );
    assert_eq!(
        names("networkInterfaceInet__contains=FE80::11"),
        vec!["WS-001"]
    );
    assert_eq!(names("externalIp__contains=203.0.113"), vec!["LNX-003"]);
    assert_eq!(names("computerName=ws-001"), Vec::<String>::new());
    assert_eq!(
        names("computerName__contains=ws-"),
        vec!["WS-001", "WS-004"]
    );
    assert_eq!(
        names("groupIds=111&sortBy=computerName&sortOrder=desc"),
        vec!["WS-001", "MAC-002"]
    );

    let (status, body) = api(
        &sim,
        "POST",
        "/agents/actions/disconnect",
        Some(json!({"data": {}})),
    );
    assert_eq!((status, error_code(&body)), (400, 4000010));
    let (_, body) = api(
        &sim,
        "POST",
        "/agents/actions/disconnect",
        Some(json!({"filter": {"ids": ["1001"]}, "data": {}})),
    );
    assert_eq!(body, json!({"data": {"affected": 1}}));
    assert_eq!(names("networkStatuses=disconnected"), vec!["WS-001"]);
    // Agents already connected still count as affected.
    let (_, body) = api(
        &sim,
        "POST",
        "/agents/actions/connect",
        Some(json!({"filter": {"ids": ["1001", "1002"]}, "data": {}})),
    );
    assert_eq!(body["data"]["affected"], 2);
    // An empty filter acts on every agent.
    let (_, body) = api(
        &sim,
        "POST",
        "/agents/actions/disconnect",
        Some(json!({"filter": {}, "data": {}})),
    );
    assert_eq!(body["data"]["affected"], 4);
    assert_eq!(names("networkStatuses=connected"), Vec::<String>::new());
}

#[test]
fn org_endpoints_sites_nested() {
    let sim = Simulator::start(scenario()).unwrap();
    let (status, body) = api(&sim, "GET", "/sites?accountIds=100", None);
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["allSites"],
        json!({"activeLicenses": 3, "totalLicenses": 50})
    );
    let sites = body["data"]["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2);
    assert_eq!(sites[0]["name"], "HQ");
    assert_eq!(sites[0]["accountName"], "Acme");
    assert_eq!(sites[1]["unlimitedLicenses"], true);
    assert_eq!(
        body["pagination"],
        json!({"totalItems": 2, "nextCursor": null})
    );
    let (_, body) = api(&sim, "GET", "/sites?name__contains=globex", None);
    assert_eq!(body["data"]["sites"][0]["id"], "210");

    // Site 210 had no group: it got a default one.
    let (_, body) = api(&sim, "GET", "/groups?siteIds=210", None);
    assert_eq!(body["data"][0]["name"], "Default Group");
    assert_eq!(body["data"][0]["totalAgents"], 1);
    let (_, body) = api(
        &sim,
        "GET",
        "/groups?accountIds=100&types=static&limit=2",
        None,
    );
    assert_eq!(body["pagination"]["totalItems"], 3);
    assert!(body["pagination"]["nextCursor"].is_string());
    let (_, body) = api(&sim, "GET", "/accounts?ids=200", None);
    assert_eq!(body["data"][0]["name"], "Globex");
    assert_eq!(body["data"][0]["activeAgents"], 1);

    let (_, body) = api(
        &sim,
        "POST",
        "/users/api-token-details",
        Some(json!({"data": {"apiToken": "sim-token"}})),
    );
    assert_eq!(body["data"]["expiresAt"], "2026-10-19T13:50:54.000000Z");
}

#[test]
fn alerts_and_activities() {
    let sim = Simulator::start(scenario()).unwrap();
    let (_, body) = api(
        &sim,
        "GET",
        "/cloud-detection/alerts?incidentStatus=UNRESOLVED",
        None,
    );
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let alert = &body["data"][0];
    assert_eq!(alert["alertInfo"]["alertId"], "8001");
    assert_eq!(alert["alertInfo"]["incidentStatus"], "Unresolved");
    assert_eq!(alert["ruleInfo"]["severity"], "High");
    assert_eq!(alert["sourceProcessInfo"]["fileHashSha1"], SHA_A);
    assert_eq!(alert["sourceProcessInfo"]["name"], "powershell.exe");
    assert_eq!(alert["agentRealtimeInfo"]["agentComputerName"], "WS-001");
    let (_, body) = api(
        &sim,
        "POST",
        "/cloud-detection/alerts/analyst-verdict",
        Some(
            json!({"filter": {"ids": ["8001", "8002"]}, "data": {"analystVerdict": "TRUE_POSITIVE"}}),
        ),
    );
    assert_eq!(body["data"]["affected"], 2);
    let (_, body) = api(
        &sim,
        "POST",
        "/cloud-detection/alerts/incident",
        Some(json!({"filter": {"ids": ["8002"]}, "data": {"incidentStatus": "resolved"}})),
    );
    assert_eq!(body["data"]["affected"], 1);
    let (_, body) = api(
        &sim,
        "GET",
        "/cloud-detection/alerts?analystVerdict=true_positive&sortBy=createdAt&sortOrder=desc",
        None,
    );
    assert_eq!(body["data"][0]["alertInfo"]["incidentStatus"], "Resolved");
    assert_eq!(
        body["data"][1]["alertInfo"]["analystVerdict"],
        "True positive"
    );
    let (_, documented) = api(
        &sim,
        "GET",
        "/cloud-detection/alerts?analystVerdict=true_positive&sortBy=alertInfoCreatedAt&sortOrder=desc",
        None,
    );
    assert_eq!(documented["data"], body["data"]);

    let (_, body) = api(
        &sim,
        "GET",
        "/activities?activityTypes=18,27&createdAt__gt=2026-04-20T10:00:01Z",
        None,
    );
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["id"], "9002");
    let (_, body) = api(&sim, "GET", "/activities?siteIds=110", None);
    assert_eq!(body["data"][0]["primaryDescription"], "Threat Detected");
    assert_eq!(body["data"][0]["accountId"], "100");
    let (_, body) = api(&sim, "GET", "/activities/types", None);
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == 86)
    );
}

#[test]
fn iocs_need_a_scope_and_upsert() {
    let sim = Simulator::start(scenario()).unwrap();
    let ioc = json!({"type": "SHA1", "value": SHA_NEW, "source": "ThreatQ", "method": "EQUALS",
                     "validUntil": "2030-01-01T00:00:00Z", "externalId": "18746", "description": "first"});
    let (status, body) = api(
        &sim,
        "POST",
        "/threat-intelligence/iocs",
        Some(json!({"filter": {}, "data": [ioc]})),
    );
    assert_eq!(status, 500);
    assert_eq!(body["errors"][0]["code"], 5000010);
    let (status, body) = api(
        &sim,
        "POST",
        "/threat-intelligence/iocs",
        Some(json!({"filter": {"tenant": true}, "data": [ioc]})),
    );
    assert_eq!(status, 500, "{body}");
    let (status, body) = api(
        &sim,
        "POST",
        "/threat-intelligence/iocs",
        Some(json!({"filter": {"accountIds": ["100"]}, "data": [ioc]})),
    );
    assert_eq!(status, 200, "{body}");
    let created = body["data"][0].clone();
    assert_eq!(created["scope"], "account");
    assert_eq!(created["scopeId"], "100");
    assert_eq!(created["uploadTime"], "2026-04-22T13:50:54.000000Z");
    // Hashes are capped at upload time + 180 days.
    assert_eq!(created["validUntil"], "2026-10-19T13:50:54.000000Z");
    assert_eq!(created["uuid"].as_str().unwrap().len(), 32);

    let mut again = ioc.clone();
    again["value"] = json!(SHA_NEW.to_uppercase());
    again["description"] = json!("second");
    let (_, body) = api(
        &sim,
        "POST",
        "/threat-intelligence/iocs",
        Some(json!({"filter": {"accountIds": ["100"]}, "data": [again]})),
    );
    assert_eq!(body["data"][0]["uuid"], created["uuid"]);
    let (_, body) = api(
        &sim,
        "GET",
        "/threat-intelligence/iocs?accountIds=100",
        None,
    );
    assert_eq!(body["pagination"]["totalItems"], 1);
    assert_eq!(body["data"][0]["description"], "second");

    let mut bad = ioc.clone();
    bad["type"] = json!("sha1");
    let (status, body) = api(
        &sim,
        "POST",
        "/threat-intelligence/iocs",
        Some(json!({"filter": {"accountIds": ["100"]}, "data": [ioc, bad]})),
    );
    assert_eq!((status, error_code(&body)), (400, 4000010));
    let ip =
        json!({"type": "IPV4", "value": "198.51.100.7", "source": "ThreatQ", "method": "EQUALS"});
    let (_, body) = api(
        &sim,
        "POST",
        "/threat-intelligence/iocs",
        Some(json!({"filter": {"siteIds": ["110"]}, "data": [ip]})),
    );
    assert_eq!(body["data"][0]["validUntil"], "2026-05-06T13:50:54.000000Z");
    let (_, body) = api(
        &sim,
        "GET",
        "/threat-intelligence/iocs?accountIds=100&type=IPV4",
        None,
    );
    assert_eq!(body["data"][0]["scope"], "site");

    let (status, _) = api(
        &sim,
        "DELETE",
        "/threat-intelligence/iocs",
        Some(json!({"filter": {"accountIds": ["100"]}})),
    );
    assert_eq!(status, 400);
    let (_, body) = api(
        &sim,
        "DELETE",
        "/threat-intelligence/iocs",
        Some(json!({"filter": {"accountIds": ["100"], "uuids": [created["uuid"]]}})),
    );
    assert_eq!(body, json!({"data": {"affected": 1}}));
    assert_eq!(sim.state()["iocs"].as_array().unwrap().len(), 1);
}

fn entry_post(value: &str) -> Value {
    json!({"filter": {"tenant": true}, "data": {"type": "black_hash", "osType": "windows", "value": value}})
}

#[test]
fn drop_faults_really_close_the_connection() {
    let sim = Simulator::start(with(json!({"faults": [
        {"method": "POST", "path": "/web/api/v2.1/restrictions", "times": 1, "fault": {"drop": "before"}},
        {"method": "POST", "path": "/web/api/v2.1/restrictions", "after": 1, "times": 1, "fault": {"drop": "after"}}
    ]}))).unwrap();
    let body = entry_post(SHA_NEW);
    assert!(exchange(&sim, "POST", "/restrictions", None, Some(&body)).is_err());
    assert!(
        sim.state()["restrictions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["value"] != SHA_NEW)
    );
    assert!(exchange(&sim, "POST", "/restrictions", None, Some(&body)).is_err());
    assert!(
        sim.state()["restrictions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["value"] == SHA_NEW)
    );
    // The retry sees the entry the dropped request created.
    let (status, body) = api(&sim, "POST", "/restrictions", Some(body));
    assert_eq!((status, error_code(&body)), (400, 4000030));
    let log = sim.requests();
    assert_eq!(
        log.iter()
            .map(|r| (r.status, r.fault.clone()))
            .collect::<Vec<_>>(),
        vec![
            (0, Some("drop_before".to_string())),
            (0, Some("drop_after".to_string())),
            (400, None)
        ]
    );
}

#[test]
fn status_malformed_truncated_delay_and_rate_limit_faults() {
    let sim = Simulator::start(with(json!({"faults": [
        {"path": "/web/api/v2.1/accounts", "times": 2, "fault": {"status": 429, "retry_after": "1"}},
        {"path": "/web/api/v2.1/sites", "every": 2, "fault": {"status": 503}},
        {"path": "/web/api/v2.1/groups", "fault": {"malformed": true}},
        {"path": "/web/api/v2.1/agents", "fault": {"truncated": true}},
        {"name": "slow", "path": "/web/api/v2.1/activities", "fault": {"delay_ms": 150}}
    ]}))).unwrap();
    for _ in 0..2 {
        let (status, text, retry_after) = exchange(&sim, "GET", "/accounts", None, None).unwrap();
        assert_eq!((status, retry_after.as_deref()), (429, Some("1")));
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap()["errors"][0]["code"],
            4290010
        );
    }
    assert_eq!(api(&sim, "GET", "/accounts", None).0, 200);
    let statuses: Vec<u16> = (0..4).map(|_| api(&sim, "GET", "/sites", None).0).collect();
    assert_eq!(statuses, vec![200, 503, 200, 503]);
    let (status, text, _) = exchange(&sim, "GET", "/groups", None, None).unwrap();
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&text).is_err());
    assert!(exchange(&sim, "GET", "/agents", None, None).is_err());
    let started = Instant::now();
    assert_eq!(api(&sim, "GET", "/activities", None).0, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let faults: Vec<Option<String>> = sim.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(faults.last().unwrap().as_deref(), Some("slow"));
    assert_eq!(faults[0].as_deref(), Some("status_429"));

    let limited = Simulator::start(with(json!({"rate_limit_per_second": 3}))).unwrap();
    let results: Vec<(u16, Option<String>)> = (0..5)
        .map(|_| {
            let (status, _, retry_after) =
                exchange(&limited, "GET", "/accounts", None, None).unwrap();
            (status, retry_after)
        })
        .collect();
    assert_eq!(results.iter().filter(|(s, _)| *s == 200).count(), 3);
    assert_eq!(results[4], (429, Some("1".to_string())));
    assert_eq!(limited.requests()[4].fault.as_deref(), Some("rate_limit"));
}

#[test]
fn latency_does_not_serialize_clients() {
    let sim = Simulator::start(with(json!({"latency_ms": 300}))).unwrap();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| assert_eq!(api(&sim, "GET", "/threats", None).0, 200));
        }
    });
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300));
    assert!(
        elapsed < Duration::from_millis(1200),
        "requests did not overlap: {elapsed:?}"
    );
}

#[test]
fn state_snapshot_is_independent_of_request_order() {
    let writes = [
        ("POST", "/restrictions", entry_post(SHA_NEW)),
        (
            "POST",
            "/exclusions",
            json!({"filter": {"siteIds": ["110"]}, "data": {"type": "white_hash", "osType": "macos", "value": SHA_A}}),
        ),
        (
            "POST",
            "/threats/mitigate/quarantine",
            json!({"filter": {"ids": ["5002"]}}),
        ),
        (
            "POST",
            "/threats/notes",
            json!({"filter": {"ids": ["5001"]}, "data": {"text": "b"}}),
        ),
        (
            "POST",
            "/threats/notes",
            json!({"filter": {"ids": ["5001"]}, "data": {"text": "a"}}),
        ),
        (
            "POST",
            "/agents/actions/disconnect",
            json!({"filter": {"ids": ["1003"]}}),
        ),
        (
            "POST",
            "/threat-intelligence/iocs",
            json!({"filter": {"accountIds": ["200"]}, "data": [{"type": "DNS", "value": "evil.example", "source": "ThreatQ", "method": "EQUALS"}]}),
        ),
    ];
    let run = |order: &mut dyn Iterator<Item = usize>| {
        let sim = Simulator::start(scenario()).unwrap();
        for i in order {
            let (method, path, body) = &writes[i];
            assert_eq!(api(&sim, method, path, Some(body.clone())).0, 200);
        }
        sim.state()
    };
    let forward = run(&mut (0..writes.len()));
    let backward = run(&mut (0..writes.len()).rev());
    assert_eq!(forward, backward);
    assert_eq!(forward["restrictions"].as_array().unwrap().len(), 5);
    assert_eq!(
        forward["agents"][2],
        json!({"id": "1003", "computerName": "LNX-003", "networkStatus": "disconnected"})
    );
    assert_eq!(forward["threats"][0]["notes"], json!(["a", "b"]));
    assert_eq!(
        forward["threats"][1]["mitigationActions"],
        json!(["quarantine:success"])
    );
}

#[test]
fn raw_http_edge_cases() {
    let sim = Simulator::start(scenario()).unwrap();
    let send = |raw: &[u8]| -> String {
        let mut stream =
            std::net::TcpStream::connect(sim.base_url().trim_start_matches("http://")).unwrap();
        stream.write_all(raw).unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out
    };
    // A chunked body and a non-JSON body.
    let chunked = send(b"POST /web/api/v2.1/agents/actions/connect HTTP/1.1\r\nHost: x\r\nAuthorization: ApiToken sim-token\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"filter\r\n10\r\n\":{\"ids\":[\"1001\"\r\n3\r\n]}}\r\n0\r\n\r\n");
    assert!(chunked.starts_with("HTTP/1.1 200 OK\r\n"), "{chunked}");
    assert!(chunked.contains("Connection: close\r\n"));
    assert!(chunked.ends_with("{\"data\":{\"affected\":1}}"));
    let garbage = send(b"POST /web/api/v2.1/restrictions HTTP/1.1\r\nAuthorization: ApiToken sim-token\r\nContent-Length: 5\r\n\r\nnope!");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    assert_eq!(sim.requests()[1].body, Some(json!("nope!")));
    assert!(send(b"BROKEN\r\n\r\n").starts_with("HTTP/1.1 400"));
}

#[test]
fn bad_scenarios_are_refused() {
    for bad in [
        json!({"sites": [{"name": "x", "accountId": "missing"}]}),
        json!({"accounts": [{"id": "1", "name": "a"}], "sites": [{"id": "1", "name": "b", "accountId": "1"}]}),
        json!({"threats": [{"computerName": "nobody", "sha1": SHA_A}]}),
        json!({"faults": [{"fault": {"drop": "sideways"}}]}),
        json!({"no_such_key": 1}),
    ] {
        let parsed = serde_json::from_value::<Scenario>(bad.clone());
        let started = parsed.map(Simulator::start);
        assert!(!matches!(started, Ok(Ok(_))), "accepted {bad}");
    }
}

/// The workspace root: the demo scenario and `docs/simulator.md` belong to the whole bundle.
fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn demo_scenario_loads() {
    let path = workspace().join("fixtures/demo/scenario.json");
    let sim = Simulator::start(Scenario::from_file(&path).unwrap()).unwrap();
    let (_, body) = api(
        &sim,
        "GET",
        "/threats?contentHashes=7EB2197D6FD80C31BD04D3A7FB8C725EB9789013&limit=1000",
        None,
    );
    assert_eq!(body["pagination"]["totalItems"], 3);
    let (_, body) = api(&sim, "GET", "/sites", None);
    assert_eq!(body["data"]["sites"].as_array().unwrap().len(), 3);
    let (_, body) = api(&sim, "GET", "/groups?limit=100", None);
    assert_eq!(body["pagination"]["totalItems"], 4);
    let (_, body) = api(&sim, "GET", "/agents?limit=100", None);
    assert_eq!(body["pagination"]["totalItems"], 8);
    let (_, body) = api(&sim, "GET", "/exclusions?type=path", None);
    assert_eq!(body["data"][0]["mode"], "suppress");
    let state = sim.state();
    assert_eq!(state["threats"].as_array().unwrap().len(), 12);
    assert_eq!(state["iocs"].as_array().unwrap().len(), 1);
}

#[test]
fn documented_examples_are_valid() {
    let path = workspace().join("docs/simulator.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let blocks: Vec<&str> = doc
        .split("```json")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 2);
    let seeded = Simulator::start(Scenario::from_json(blocks[0]).unwrap()).unwrap();
    assert_eq!(seeded.state()["threats"].as_array().unwrap().len(), 1);
    let faults = Scenario::from_json(&format!("{{{}}}", blocks[1])).unwrap();
    assert_eq!(faults.faults.len(), 3);
}

#[test]
fn an_account_users_roles_narrow_accounts_and_threat_intelligence() {
    let ioc = json!({"filter": {"accountIds": ["100"]}, "data": [
        {"type": "IPV4", "value": "192.0.2.1", "source": "t", "method": "EQUALS"}]});
    // A user of several accounts sees them, and every IOC method refuses it, filter or not.
    let account_user = |ids: &[&str]| {
        let roles: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "name": format!("Account {id}"), "roleName": "SOC"}))
            .collect();
        with(json!({"token_user": {"scope": "account", "scopeRoles": roles}}))
    };
    let sim = Simulator::start(account_user(&["100", "200"])).unwrap();
    let (_, body) = api(&sim, "GET", "/user", None);
    assert_eq!(body["data"]["scopeRoles"].as_array().unwrap().len(), 2);
    let (_, body) = api(&sim, "GET", "/accounts", None);
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    for (method, body) in [
        ("GET", None),
        ("POST", Some(ioc.clone())),
        (
            "DELETE",
            Some(json!({"filter": {"accountIds": ["100"], "uuids": ["x"]}})),
        ),
    ] {
        let (status, answer) = api(&sim, method, "/threat-intelligence/iocs", body);
        assert_eq!((status, error_code(&answer)), (403, 4030010), "{method}");
        assert_eq!(
            answer["errors"][0]["detail"],
            "This page doesn't support multi-scopes users yet"
        );
    }
    // A user of one account sees only it, and may upload.
    let sim = Simulator::start(account_user(&["200"])).unwrap();
    let (_, body) = api(&sim, "GET", "/accounts", None);
    assert_eq!(body["data"][0]["id"], "200");
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let (status, _) = api(&sim, "POST", "/threat-intelligence/iocs", Some(ioc));
    assert_eq!(status, 200);
    // A role without an account, or with an unknown one, is a scenario error.
    assert!(Simulator::start(account_user(&["999"])).is_err());
    let without_id = json!({"token_user": {"scope": "account", "scopeRoles": [{"name": "A"}]}});
    assert!(Simulator::start(with(without_id)).is_err());
    // A tenant user sees every account, and a site user is not narrowed to accounts.
    for scope in ["tenant", "site"] {
        let user =
            json!({"token_user": {"scope": scope, "scopeRoles": [{"id": "200", "name": "S"}]}});
        let sim = Simulator::start(with(user)).unwrap();
        let (_, body) = api(&sim, "GET", "/accounts", None);
        assert!(body["data"].as_array().unwrap().len() > 1, "{scope}");
    }
}

#[test]
fn mitigation_reports_are_seeded_and_appended_in_order() {
    let mut scenario = scenario_json();
    scenario["threats"][0]["mitigationReports"] = json!([
        {"action": "quarantine", "status": "success", "at": "2026-04-20T09:00:00Z"},
        {"action": "quarantine", "status": "failed"}
    ]);
    let id = scenario["threats"][0]["id"].as_str().unwrap().to_string();
    let sim = Simulator::start(serde_json::from_value(scenario).unwrap()).unwrap();
    let mitigate = |action: &str| {
        api(
            &sim,
            "POST",
            &format!("/threats/mitigate/{action}"),
            Some(json!({"filter": {"ids": [id]}, "data": {}})),
        )
    };
    assert_eq!(mitigate("un-quarantine").1["data"]["affected"], 1);
    assert_eq!(mitigate("quarantine").1["data"]["affected"], 1);
    let (_, body) = api(&sim, "GET", &format!("/threats?ids={id}"), None);
    let reports: Vec<(String, String, String)> = body["data"][0]["mitigationStatus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |key: &str| r[key].as_str().unwrap().to_string();
            (text("action"), text("status"), text("lastUpdate"))
        })
        .collect();
    let at = |time: &str| time.to_string();
    assert_eq!(
        reports,
        vec![
            (
                "quarantine".into(),
                "success".into(),
                at("2026-04-20T09:00:00.000000Z")
            ),
            // Without `at`, the threat's creation time.
            ("quarantine".into(), "failed".into(), reports[1].2.clone()),
            (
                "unquarantine".into(),
                "success".into(),
                at("2026-04-22T13:50:54.000000Z")
            ),
            (
                "quarantine".into(),
                "success".into(),
                at("2026-04-22T13:50:54.000000Z")
            ),
        ]
    );
    let mut bad = scenario_json();
    bad["threats"][0]["mitigationReports"] = json!([{"action": "quarantine", "status": "done"}]);
    assert!(Simulator::start(serde_json::from_value(bad).unwrap()).is_err());
}

#[test]
fn tenant_next_to_site_ids_scopes_the_entry_to_the_sites() {
    // As XSOAR and the Splunk SOAR app send it: the ids decide.
    let sim = Simulator::start(scenario()).unwrap();
    for tenant in [json!(true), json!("true")] {
        let body = json!({"filter": {"tenant": tenant, "siteIds": ["120"]},
                          "data": {"type": "black_hash", "osType": "linux", "value": SHA_NEW}});
        let (status, answer) = api(&sim, "POST", "/restrictions", Some(body.clone()));
        if tenant == json!(true) {
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["data"][0]["scope"]["siteIds"], json!(["120"]));
        } else {
            // The same entry again: the duplicate answer, with the status its code carries.
            assert_eq!((status, error_code(&answer)), (400, 4000030));
        }
    }
}
