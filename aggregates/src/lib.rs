//! TokenHub domain: the aggregates, their commands, events and invariants.
//!
//! Pure: no IO, no database, no HTTP. Time and ids come in through commands, so every
//! decision here is deterministic and tested with cqrs-es's given/when/then framework.
//!
//! # Layout
//! - [`ids`]: the stable identifier formats (`ten_…`, public key ids).
//! - [`error_code`]: the one table of error codes ([`Code`]) and the trait every domain error implements.
//! - [`tenant`]: the `Tenant` aggregate (one folder: commands, events, aggregate, errors, tests).
//! - [`api_key`]: the `ApiKey` aggregate (tenant and platform keys).
//! - [`sub_account`]: the `SubAccount` aggregate.
//! - [`role`]: the `Role` aggregate (tenant-defined RBAC roles).
//! - [`secret`]: the `Secret` aggregate (ciphertext only).
//! - [`user`]: the `User` aggregate (people: membership, password, TOTP, recovery codes).
//! - [`redact`]: which event fields never leave the process (hashes, ciphertext).
//! - [`special_addresses`]: which addresses outbound calls may reach (the IANA registries).

pub mod api_key;
pub mod error_code;
pub mod ids;
pub mod redact;
pub mod role;
pub mod secret;
pub mod serde_util;
pub mod special_addresses;
pub mod sub_account;
pub mod tenant;
pub mod user;

pub use error_code::{Code, DomainError};

/// The largest token count any quota or limit takes (10^15): every quota (a key's, a
/// sub-account's, a tenant's monthly) is at most this, so sums of usage and percentages
/// computed from them stay far inside 64 bits in every derived computation.
pub const MAX_TOKENS: i64 = 1_000_000_000_000_000;

/// Implements cqrs-es `Aggregate` for a type that has `decide(&self, command) ->
/// Result<event, error>` (the rules) and `evolve(&mut self, event)` (the state change): one
/// event per command, no services.
#[macro_export]
macro_rules! impl_aggregate {
    ($ty:ty, $name:literal, $command:ty, $event:ty, $error:ty) => {
        impl cqrs_es::Aggregate for $ty {
            const TYPE: &'static str = $name;
            type Command = $command;
            type Event = $event;
            type Error = $error;
            type Services = ();

            async fn handle(
                &mut self,
                command: Self::Command,
                _services: &Self::Services,
                sink: &cqrs_es::event_sink::EventSink<Self>,
            ) -> Result<(), Self::Error> {
                let event = self.decide(command)?;
                // The sink applies the event to the aggregate it is given; give it a copy, so
                // that the store applies it once (the snapshot store applies committed events
                // to the loaded state itself; writing into `self` applied them twice).
                let mut scratch = self.clone();
                sink.write(event, &mut scratch).await;
                Ok(())
            }

            fn apply(&mut self, event: Self::Event) {
                self.evolve(event)
            }
        }
    };
}
