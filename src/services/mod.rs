//! The rules of each aggregate's commands that need more than the aggregate itself (the key
//! cache, the query tables, plan limits), below HTTP: a handler extracts, calls one of these
//! and maps the answer.
//!
//! - [`api_keys`]: scope, issuer, plan limits and every key command.
//! - [`key_cursor`]: the orders of a key listing and their cursors.
//! - [`tenants`]: creation with the tenant-admin key; every other tenant command.
//! - [`sub_accounts`]: plan limits, tenant quota, default role.
//! - [`roles`]: role existence and the per-tenant cap.
//! - [`secrets`]: store (sealed), delete, reveal (audited).
//! - [`users`]: people — invites, the principal of a person.
//! - [`accounts`]: managing people — list, role, disable, password change.
//! - [`sign_in`]: password, then TOTP or a recovery code.
//! - [`lockout`]: failed sign-ins and step-up checks, counted per account and address.
//! - [`two_factor`]: TOTP enrolment and recovery codes.
//! - [`oidc`]: sign-in with OpenID providers (and GitHub).
//! - [`Ctx`]: what services take (pool, commands, read models, key cache, hashers, limits…).
//! - [`live`]: the live audit streams' one reader of the log and the facts that admit them.

pub mod accounts;
pub mod api_keys;
pub mod key_cursor;

mod ctx;
pub mod live;
pub mod lockout;
pub mod oidc;
pub mod roles;
pub mod secrets;
pub mod sign_in;
pub mod sub_accounts;
pub mod tenants;
pub mod two_factor;
pub mod users;

pub use ctx::{Ctx, Shared};
