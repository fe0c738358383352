//! The `Secret` aggregate: an upstream credential of a tenant (e.g. `STRIPE_SECRET_KEY`).
//! Events carry only ciphertext (sealed by the server under the tenant's data key), never the
//! value; every reveal is an event too, for the audit log. Id `<tenant_id>:<NAME>`.

pub mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
#[cfg(test)]
mod tests;

pub use aggregate::Secret;
pub use commands::{is_secret_name, secret_id, SecretCommand};
pub use error::SecretError;
pub use events::SecretEvent;
