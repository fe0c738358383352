//! `tokenhub usage tail`: the example billing subscriber. It reads the usage stream through a
//! durable pull consumer of its own (so a restart continues where the last run acknowledged),
//! sums each tenant's records and prints the totals (and, with `--records`, each record).
//!
//! A real billing system would store its totals in the same transaction as the last stream
//! sequence it counted; this example keeps them in memory and counts each CloudEvent `id`
//! once per run (redeliveries after a crash are recognised within the run).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use futures::StreamExt;

use super::record::UsageEvent;

/// One tenant's totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TenantTotals {
    /// Records.
    pub records: u64,
    /// API calls.
    pub api_calls: u64,
    /// LLM tokens.
    pub llm_tokens: u64,
    /// Bytes transferred.
    pub bandwidth_bytes: u64,
    /// Bytes stored.
    pub storage_bytes: u64,
}

/// Per-tenant totals of the records seen, each CloudEvent id counted once.
#[derive(Debug, Default)]
pub struct Totals {
    /// By tenant id.
    pub tenants: BTreeMap<String, TenantTotals>,
    seen: HashSet<(String, String)>,
}

impl Totals {
    /// Adds one event; false when its id was counted already.
    pub fn add(&mut self, event: &UsageEvent) -> bool {
        let d = &event.data;
        if !self.seen.insert((d.tenant_id.clone(), event.id.clone())) {
            return false;
        }
        let t = self.tenants.entry(d.tenant_id.clone()).or_default();
        t.records += 1;
        t.api_calls += d.api_calls;
        t.llm_tokens += d.llm_tokens;
        t.bandwidth_bytes += d.bandwidth_bytes;
        t.storage_bytes += d.storage_bytes;
        true
    }

    /// One line per tenant.
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        for (tenant, t) in &self.tenants {
            writeln!(
                out,
                "tenant={tenant} records={} api_calls={} llm_tokens={} bandwidth_bytes={} storage_bytes={}",
                t.records, t.api_calls, t.llm_tokens, t.bandwidth_bytes, t.storage_bytes
            )?;
        }
        out.flush()
    }
}

/// Consumes `stream` through the durable consumer `durable` (created when missing), printing
/// the totals after every batch with new records. Without `follow` it returns once the
/// stream is drained, after printing the final totals.
pub async fn tail(
    js: &jetstream::Context,
    stream: &str,
    durable: &str,
    follow: bool,
    out: &mut impl Write,
) -> Result<Totals, async_nats::Error> {
    tail_printing(js, stream, durable, follow, false, out).await
}

/// [`tail`], printing also each new record (its CloudEvent, one JSON line) when `records`.
pub async fn tail_printing(
    js: &jetstream::Context,
    stream: &str,
    durable: &str,
    follow: bool,
    records: bool,
    out: &mut impl Write,
) -> Result<Totals, async_nats::Error> {
    let stream = js.get_stream(stream).await?;
    let consumer = stream
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_string()),
                description: Some("tokenhub usage tail (example billing subscriber)".into()),
                ack_policy: AckPolicy::All,
                ..Default::default()
            },
        )
        .await?;
    let mut totals = Totals::default();
    loop {
        let mut batch =
            consumer.fetch().max_messages(1_000).expires(Duration::from_secs(1)).messages().await?;
        let (mut last, mut new) = (None, 0);
        while let Some(message) = batch.next().await {
            let message = message?;
            match serde_json::from_slice::<UsageEvent>(&message.payload) {
                Ok(event) => {
                    let counted = totals.add(&event);
                    if counted && records {
                        writeln!(out, "{}", serde_json::to_string(&event)?)?;
                    }
                    new += usize::from(counted);
                }
                Err(e) => {
                    tracing::warn!(subject = %message.subject, error = %e, "not a usage event; skipped")
                }
            }
            last = Some(message);
        }
        if let Some(message) = last {
            if new > 0 && follow {
                totals.write(out)?;
            }
            message.double_ack().await?;
            continue;
        }
        if !follow {
            totals.write(out)?;
            return Ok(totals);
        }
    }
}
