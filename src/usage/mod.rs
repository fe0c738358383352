//! Usage metering: ingest to the JetStream usage stream ([`ingest`], [`record`]), the usage
//! projection building rollups from it ([`rollups`]), the queries over them ([`query`]),
//! resource limits per end-user ([`resource_limits`]) and the per-tenant control-API rate
//! limit ([`rate_limit`]); the accepted tokens announced to every instance at once ([`live`]).

pub mod ingest;
pub mod live;
pub mod query;
pub mod rate_limit;
pub mod record;
pub mod resource_limits;
pub mod rollups;
pub mod tail;
