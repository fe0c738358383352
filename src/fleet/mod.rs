//! What the instances of a fleet share beyond the event log: per-minute limits counted once
//! for all of them ([`leases`]: each instance admits from a share of a window's budget that
//! PostgreSQL grants, `store::rate_windows`) and the gateways' quota reservations held once
//! for all of them ([`quota_rooms`], `store::quota_rooms`); the settings every instance must
//! share, checked at start ([`shared`]).

pub mod leases;
pub mod quota_rooms;
pub mod shared;
