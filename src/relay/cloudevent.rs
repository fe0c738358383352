//! Events as CloudEvents 1.0 in structured JSON mode.
//!
//! ```json
//! {"specversion": "1.0", "id": "<event id>", "source": "/tokenhub/tenant/ten_…",
//!  "type": "tokenhub.tenant.created.v1", "subject": "ten_…", "time": "…",
//!  "datacontenttype": "application/json",
//!  "position": 42, "tenantid": "ten_…", "aggregatetype": "tenant", "aggregateid": "ten_…",
//!  "sequence": 1, "eventtype": "tenant.created", "eventversion": "1",
//!  "data": {"payload": {…}, "metadata": {"actor_kind": …, "request_id": …, …}}}
//! ```
//! Secret hashes and ciphertext are removed from `data.payload`.

use serde_json::{json, Value};
use tokenhub_aggregates::redact::redact_payload;
use tokenhub_projections::StoredEvent;

/// Content type of a structured CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// The CloudEvent of `event`.
pub fn to_cloudevent(event: &StoredEvent) -> Value {
    let mut payload = event.payload.clone();
    redact_payload(&mut payload);
    json!({
        "specversion": "1.0",
        "id": event.event_id.to_string(),
        "source": format!("/tokenhub/{}/{}", event.aggregate_type, event.aggregate_id),
        "type": format!("tokenhub.{}.v{}", event.event_type, event.event_version),
        "subject": event.aggregate_id,
        "time": crate::time_fmt::rfc3339(event.recorded_at),
        "datacontenttype": "application/json",
        "position": event.position,
        "tenantid": event.tenant_id,
        "aggregatetype": event.aggregate_type,
        "aggregateid": event.aggregate_id,
        "sequence": event.sequence,
        "eventtype": event.event_type,
        "eventversion": event.event_version,
        "data": {"payload": payload, "metadata": event.metadata},
    })
}

/// Serialized CloudEvent of `event`.
pub fn to_json_bytes(event: &StoredEvent) -> Vec<u8> {
    serde_json::to_vec(&to_cloudevent(event)).unwrap_or_default()
}
