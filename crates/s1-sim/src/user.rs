//! The token's own user: `GET /user`, and the accounts an account user is assigned to.
//!
//! Owns the one model of who the token is, the scenario's `token_user`: how `GET /user` shows
//! it, and which accounts its scope roles assign it to. From those accounts follow the narrowing
//! of `GET /accounts` (`org`) and Threat Intelligence's refusal of multi-account users
//! (`routes`). It does not narrow the other endpoints by the user's scope (they answer as for a
//! global user), and it does not check roles: a scenario forbids paths with `forbidden_paths`.

use serde_json::{Value, json};

use super::model::ts;
use super::params::{ApiError, Params};
use super::scenario::{TokenUserSeed, UserScope};
use super::state::State;

/// The user's id: fixed, so answers are reproducible (no seed names users).
const USER_ID: &str = "1800000000000000001";

/// `GET /user` ("User by token", SW24 `UsersApi.md` `webApiUserGet`): the user the token
/// belongs to, shaped as `UsersSchemasUserSchema200Data` (`scope`, `scopeRoles[]`, `apiToken`,
/// the deprecated `lowestRole`). The scope parameters the spec lists are accepted and ignored.
pub(crate) fn get(state: &State, user: &TokenUserSeed, params: &Params) -> Result<Value, ApiError> {
    params.reject_unknown(&["accountIds", "siteIds", "groupIds", "tenant"], &[])?;
    let scope = match user.scope {
        UserScope::Tenant => "tenant",
        UserScope::Account => "account",
        UserScope::Site => "site",
    };
    let roles: Vec<Value> = user
        .scope_roles
        .iter()
        .map(|role| {
            json!({
                "id": role.id,
                "name": role.name,
                "accountName": role.account_name.clone().unwrap_or_else(|| role.name.clone()),
                "roleName": role.role_name,
                "roles": [role.role_name],
            })
        })
        .collect();
    let lowest_role = user
        .scope_roles
        .first()
        .map_or("Admin", |role| role.role_name.as_str());
    Ok(json!({"data": {
        "id": USER_ID,
        "fullName": user.full_name,
        "email": null,
        "source": "mgmt",
        "scope": scope,
        "scopeRoles": roles,
        "lowestRole": lowest_role,
        "apiToken": {
            "createdAt": ts(state.token_created_at),
            "expiresAt": ts(state.token_expires_at),
        },
    }}))
}

/// The accounts an `account` user is assigned to: the `id`s of its scope roles, in order. Empty
/// for a tenant or site user, who is not narrowed to accounts. Every id must name a seeded
/// account, once: the error says which role does not.
pub(crate) fn assigned_accounts(
    user: &TokenUserSeed,
    state: &State,
) -> Result<Vec<String>, String> {
    if user.scope != UserScope::Account {
        return Ok(Vec::new());
    }
    let mut accounts: Vec<String> = Vec::with_capacity(user.scope_roles.len());
    for (i, role) in user.scope_roles.iter().enumerate() {
        let at = format!("token_user.scopeRoles[{i}]");
        let Some(id) = role.id.as_deref() else {
            return Err(format!(
                "{at}: an account user's role needs the id of its account"
            ));
        };
        if state.account(id).is_none() {
            return Err(format!("{at}: id '{id}' is not a seeded account"));
        }
        if accounts.iter().any(|known| known == id) {
            return Err(format!("{at}: account '{id}' has a role already"));
        }
        accounts.push(id.to_string());
    }
    Ok(accounts)
}

/// A user assigned to more than one account: Threat Intelligence refuses it.
pub(crate) fn is_multi_account(state: &State) -> bool {
    state.token_accounts.len() > 1
}
