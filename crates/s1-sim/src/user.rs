//! The token's own user: `GET /user` and the Threat Intelligence refusal of multi-account users.
//!
//! Owns how the scenario's `token_user` is shown. It does not limit what the other endpoints
//! return by the user's scope (every endpoint answers as for a global user), and it does not
//! check roles: a scenario forbids paths with `forbidden_paths` instead.

use serde_json::{Value, json};

use super::params::{ApiError, Params};
use super::scenario::{TokenUserSeed, UserScope};
use super::state::{State, ts};

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

/// An account-level user with roles in more than one account.
pub(crate) fn is_multi_account(user: &TokenUserSeed) -> bool {
    user.scope == UserScope::Account && user.scope_roles.len() > 1
}
