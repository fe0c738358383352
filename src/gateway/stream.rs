//! A streamed answer (server-sent events), forwarded chunk by chunk as it arrives — never
//! buffered whole — while the usage chunk is read for metering (and left out when the client
//! did not ask for it). The meter records when the stream ends, fails, or the client goes
//! away (dropping the stream drops the upstream request too).

use axum::body::Bytes;
use futures::{Stream, StreamExt};

use super::meter::{Meter, Metered};

/// Longest server-sent event kept while waiting for its end (one event, not the answer).
const MAX_EVENT_BYTES: usize = 1024 * 1024;

struct State<S> {
    upstream: S,
    pending: Vec<u8>,
    meter: Meter,
    strip_usage: bool,
    done: bool,
}

/// What to forward of one complete event (`None`: leave it out).
fn filter_event(event: &[u8], meter: &mut Meter, strip_usage: bool) -> bool {
    let text = std::str::from_utf8(event).unwrap_or_default();
    let data: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("\n");
    if data.is_empty() || data == "[DONE]" {
        return true;
    }
    let Some(chunk) = Metered::of(data.as_bytes()) else { return true };
    if let Some(tokens) = chunk.tokens() {
        meter.tokens = Some(tokens);
    }
    // The chunk the gateway asked for carries no choices: drop it unless the client asked.
    !(strip_usage && chunk.usage_only())
}

/// Splits `pending` into complete events (ended by a blank line) and keeps the rest.
fn complete_events(pending: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    loop {
        let end = pending
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|i| i + 2)
            .or_else(|| pending.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4));
        let Some(end) = end else { break };
        events.push(pending.drain(..end).collect());
    }
    events
}

/// The client's stream of `upstream`'s events, metered.
pub fn metered<S>(
    upstream: S,
    meter: Meter,
    strip_usage: bool,
) -> impl Stream<Item = Result<Bytes, std::io::Error>>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + Unpin + 'static,
{
    let state = State { upstream, pending: Vec::new(), meter, strip_usage, done: false };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            match s.upstream.next().await {
                Some(Ok(bytes)) => {
                    s.pending.extend_from_slice(&bytes);
                    let mut out = Vec::new();
                    for event in complete_events(&mut s.pending) {
                        if filter_event(&event, &mut s.meter, s.strip_usage) {
                            out.extend_from_slice(&event);
                        }
                    }
                    if s.pending.len() > MAX_EVENT_BYTES {
                        // Not server-sent events as expected: pass the bytes on unparsed.
                        out.append(&mut s.pending);
                    }
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), s));
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(timeout = e.is_timeout(), "an upstream stream was cut off");
                    s.meter.status = 502;
                    s.done = true;
                    return Some((Err(std::io::Error::other("the upstream stream was cut off")), s));
                }
                None => {
                    s.done = true;
                    let rest = std::mem::take(&mut s.pending);
                    if !rest.is_empty() && filter_event(&rest, &mut s.meter, s.strip_usage) {
                        return Some((Ok(Bytes::from(rest)), s));
                    }
                    return None;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_at_blank_lines_and_keep_the_rest() {
        let mut pending = b"data: {\"a\":1}\n\ndata: {\"b\"".to_vec();
        let events = complete_events(&mut pending);
        assert_eq!(events, vec![b"data: {\"a\":1}\n\n".to_vec()]);
        assert_eq!(pending, b"data: {\"b\"".to_vec());
    }
}
