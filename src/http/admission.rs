//! What admitted a request, kept by whatever outlives it (an open live stream) so that the one
//! policy can be asked again while it lasts: the same credential checks, tenant gate and
//! authorization decision a new request would meet, from memory (the key cache, and the
//! sessions the live hub reads for all streams at once).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use time::OffsetDateTime;

use crate::auth::{authorize, Action, Principal};
use crate::cache::VerifyCode;
use crate::http::authenticate::{bearer, header_str, key_principal, SessionUser};
use crate::http::client_ip::client_ip;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::services::users::{principal_for, UserRow};

/// The credential a request was admitted with.
#[derive(Clone)]
pub enum Credential {
    /// The master key (break-glass: it holds while the server runs).
    Master,
    /// A key (kept in memory only, to check it again exactly as presented).
    Key(Arc<str>),
    /// A person's session, by its id (the hash of the cookie value).
    Session(Vec<u8>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Master => f.write_str("Master"),
            Credential::Key(_) => f.write_str("Key(..)"),
            Credential::Session(_) => f.write_str("Session(..)"),
        }
    }
}

/// A request's admission: its credential, its client address, and who it acted as. Take it
/// after `Authorized<…>`, which has authenticated the request.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The credential.
    pub credential: Credential,
    /// The client address.
    pub ip: Option<IpAddr>,
    /// Who: the key's public id, the person's id, or `master`.
    pub who: String,
    /// The person, as the request found them (a session's).
    pub person: Option<UserRow>,
}

impl FromRequestParts<AppState> for Admission {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let ip = client_ip(parts, &state.trusted_proxies);
        if let Some(session) = parts.extensions.get::<SessionUser>() {
            let who = session.user.user_id.clone();
            let credential = Credential::Session(session.session_id.clone());
            return Ok(Self { credential, ip, who, person: Some(session.user.clone()) });
        }
        let key = header_str(&parts.headers, "x-api-key").or_else(|| bearer(&parts.headers));
        let (credential, who) = match (&principal, key) {
            (Principal::SuperAdmin, _) | (_, None) => (Credential::Master, "master".to_string()),
            (_, Some(key)) => (Credential::Key(Arc::from(key)), principal.actor().1),
        };
        Ok(Self { credential, ip, who, person: None })
    }
}

impl Admission {
    /// True while the facts that admitted the request for `action` (on `tenant`, for a
    /// tenant-scoped action) still hold: the credential is live, its tenant admits it from
    /// this address, and the principal it gives now may still perform the action there.
    pub fn holds(
        &self,
        state: &AppState,
        action: Action,
        tenant: Option<&str>,
        sessions: &HashMap<Vec<u8>, UserRow>,
    ) -> bool {
        let principal = match &self.credential {
            Credential::Master => return true,
            Credential::Key(key) => match key_principal(state, key, self.ip, OffsetDateTime::now_utc()) {
                Ok((principal, _)) => principal,
                Err(_) => return false,
            },
            Credential::Session(id) => {
                let Some(user) = sessions.get(id) else { return false };
                if user.status != "active" || (user.requires_totp() && !user.totp_enrolled) {
                    return false;
                }
                if let Some(own) = &user.tenant_id {
                    if state.keys.tenant_admits(own, self.ip) != VerifyCode::Valid {
                        return false;
                    }
                }
                match principal_for(user) {
                    Some(principal) => principal,
                    None => return false,
                }
            }
        };
        if authorize(&principal, action).is_err() {
            return false;
        }
        match (tenant, &principal) {
            (Some(tenant), Principal::TenantKey { tenant_id, .. }) => tenant_id == tenant,
            (Some(tenant), _) => principal.may_act_for(tenant).is_ok(),
            (None, _) => true,
        }
    }
}
