//! TokenHub: the event-sourced control plane of a multi-tenant API / LLM gateway.
//!
//! # Layout
//! - [`config`], [`telemetry`], [`app`], [`cli`]: process wiring.
//! - [`audit`]: audit queries, export and hash-chain verification.
//! - [`store`]: PostgreSQL, migrations, the cqrs-es event repository, settings.
//! - [`commands`]: the command side (one cqrs-es framework per aggregate) and audit metadata.
//! - [`readmodels`]: keeps the query tables (`tokenhub-projections`) fresh; read-your-writes.
//! - [`relay`], [`nats`]: publishing the log to NATS JetStream.
//! - [`cache`]: the in-memory key cache and the verification decision (the hot path).
//! - [`fleet`]: per-minute limits counted once for all instances (leases of each window).
//! - [`usage`], [`calendar`]: usage metering, quotas, resource and rate limits; UTC windows.
//! - [`crypto`]: envelope encryption of tenant secrets (KEK, per-tenant DEKs).
//! - [`auth`]: key format, hashing, master key, principals.
//! - [`services`]: the rules of commands that need more than their aggregate (keys).
//! - [`http`]: routes, errors, extractors, OpenAPI.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod calendar;
pub mod cli;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod dedicated;
pub mod error;
pub mod fleet;
pub mod follow;
pub mod gateway;
pub mod http;
pub mod nats;
pub mod paging;
pub mod readmodels;
pub mod relay;
pub mod services;
pub mod store;
pub mod telemetry;
pub mod time_fmt;
pub mod tls;
pub mod usage;
pub mod webhooks;
