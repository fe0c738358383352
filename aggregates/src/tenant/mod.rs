//! The `Tenant` aggregate: an organisation using the gateway.
//!
//! Layout: [`commands`] (what callers ask), [`events`] (what happened, a permanent
//! contract), [`aggregate`] (the rules), [`error`] (stable codes), [`limits`] (plans and
//! their default limits).

pub mod aggregate;
pub mod commands;
pub mod config;
pub mod error;
pub mod events;
pub mod limits;
pub mod resource_limits;
#[cfg(test)]
mod tests;

pub use aggregate::{Tenant, TenantStatus};
pub use commands::TenantCommand;
pub use error::TenantError;
pub use events::TenantEvent;
pub use limits::{Plan, TenantLimits};
pub use resource_limits::{GateAction, LimitPeriod, ResourceLimit, Tiers};
