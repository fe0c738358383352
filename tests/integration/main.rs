//! Integration tests against the machine's real PostgreSQL and NATS JetStream. Each test
//! makes its own database and stream, so they run in parallel and leave nothing behind.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests fail loudly; the lints guard production code"
)]

mod answers;
mod api_keys;
mod audit;
mod authz_matrix;
mod caps;
mod client_ip;
mod common;
mod event_store;
mod fleet_limits;
mod fleet_settings;
mod gateway;
mod gateway_fleet;
mod gateway_litellm;
mod idempotency;
mod input;
mod ip_allowlist;
mod live;
mod master_key;
mod nats_cluster;
mod oidc;
mod openapi;
mod outage;
mod people;
mod person;
mod platform_keys;
mod policy;
mod privileges;
mod projections;
mod quotas;
mod rbac;
mod relay;
mod resource_limits;
mod restart;
mod secrets;
mod seeds;
mod server_limits;
mod sub_accounts;
mod tenant_config;
mod tenants_http;
mod tls;
mod two_factor;
mod two_instances;
mod usage;
mod webhooks;
