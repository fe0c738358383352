//! A streamed answer (server-sent events), forwarded chunk by chunk as it arrives — never
//! buffered whole — while the usage chunk is read for metering (and left out when the client
//! did not ask for it). The meter records when the stream ends, fails, or the client goes
//! away (dropping the stream drops the upstream request too).

use axum::body::Bytes;
use futures::{Stream, StreamExt};

use super::meter::{Meter, Metered, Tokens};

/// Longest server-sent event kept while waiting for its end (one event, not the answer).
const MAX_EVENT_BYTES: usize = 1024 * 1024;

struct State<S> {
    upstream: S,
    events: Events,
    meter: Meter,
    strip_usage: bool,
    done: bool,
}

impl<S> State<S> {
    /// Meters `event`'s usage, if it reports any; true when it is to be forwarded.
    fn meter_and_keep(&mut self, event: &[u8]) -> bool {
        let (forward, tokens) = judge(event, self.strip_usage);
        self.meter.tokens = tokens.or(self.meter.tokens);
        forward
    }
}

/// What to do with one complete event: forward it or not, and the usage it reports.
fn judge(event: &[u8], strip_usage: bool) -> (bool, Option<Tokens>) {
    let text = std::str::from_utf8(event).unwrap_or_default();
    let data: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("\n");
    if data.is_empty() || data == "[DONE]" {
        return (true, None);
    }
    let Some(chunk) = Metered::of(data.as_bytes()) else { return (true, None) };
    // The chunk the gateway asked for carries no choices: drop it unless the client asked.
    (!(strip_usage && chunk.usage_only()), chunk.tokens())
}

/// Splits a byte stream into server-sent events, each ended by a blank line (`\n\n` or
/// `\r\n\r\n`), however the stream is cut into chunks; each byte is searched once.
#[derive(Default)]
struct Events {
    /// Bytes of the event not ended yet.
    pending: Vec<u8>,
    /// How much of `pending` has been searched for an event's end.
    searched: usize,
}

impl Events {
    /// Adds `bytes`; returns the events they end (each with its blank line), in order.
    fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        let mut ends = Vec::new();
        let mut start = 0;
        for i in self.searched..self.pending.len() {
            if self.pending[i] != b'\n' {
                continue;
            }
            let lf_lf = i > start && self.pending[i - 1] == b'\n';
            let crlf_crlf = i >= start + 3 && &self.pending[i - 3..=i] == b"\r\n\r\n";
            if lf_lf || crlf_crlf {
                start = i + 1;
                ends.push(start);
            }
        }
        self.searched = self.pending.len() - start;
        if ends.is_empty() {
            return Vec::new();
        }
        let rest = self.pending.split_off(start);
        let ended = std::mem::replace(&mut self.pending, rest);
        let mut from = 0;
        ends.into_iter()
            .map(|to| {
                let event = ended[from..to].to_vec();
                from = to;
                event
            })
            .collect()
    }

    /// Bytes waiting for their event's end.
    fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// What is left (an event the stream did not end, or bytes that are no events).
    fn take_rest(&mut self) -> Vec<u8> {
        self.searched = 0;
        std::mem::take(&mut self.pending)
    }
}

/// The client's stream of `upstream`'s events, metered.
pub fn metered<S>(
    upstream: S,
    meter: Meter,
    strip_usage: bool,
) -> impl Stream<Item = Result<Bytes, std::io::Error>>
where
    S: Stream<Item = Result<Bytes, super::upstream::Failure>> + Send + Unpin + 'static,
{
    let state = State { upstream, events: Events::default(), meter, strip_usage, done: false };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            match s.upstream.next().await {
                Some(Ok(bytes)) => {
                    let mut out = Vec::new();
                    for event in s.events.push(&bytes) {
                        if s.meter_and_keep(&event) {
                            out.extend_from_slice(&event);
                        }
                    }
                    if s.events.waiting() > MAX_EVENT_BYTES {
                        // Not server-sent events as expected: pass the bytes on unparsed.
                        out.append(&mut s.events.take_rest());
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
                    let rest = s.events.take_rest();
                    if s.meter_and_keep(&rest) && !rest.is_empty() {
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
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn events_split_at_blank_lines_and_keep_the_rest() {
        let mut events = Events::default();
        assert_eq!(events.push(b"data: {\"a\":1}\n\ndata: {\"b\""), vec![b"data: {\"a\":1}\n\n".to_vec()]);
        assert_eq!(events.push(b"}\r\n\r\n\n\n"), vec![b"data: {\"b\"}\r\n\r\n".to_vec(), b"\n\n".to_vec()]);
        assert_eq!(events.push(b"data: x\r\n\r"), Vec::<Vec<u8>>::new());
        assert_eq!(events.take_rest(), b"data: x\r\n\r".to_vec());
    }

    /// One event of a generated stream: a choice's delta, the usage chunk, `[DONE]`, a comment,
    /// or a named event, ended with `\n` or `\r\n` line ends.
    fn event() -> impl Strategy<Value = (Vec<u8>, Option<Tokens>, bool)> {
        let body = prop_oneof![
            "[a-z \u{e9}]{0,12}".prop_map(|word| (
                format!("data: {}", serde_json::json!({"choices": [{"index": 0, "delta": {"content": word}}]})),
                None,
                false
            )),
            (0u64..100_000, 0u64..100_000).prop_map(|(prompt, completion)| (
                format!("data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion}}}}}"),
                Some(Tokens { prompt, completion }),
                true
            )),
            Just(("data: [DONE]".to_string(), None, false)),
            Just((": keep-alive".to_string(), None, false)),
            Just(("event: ping\ndata: {}".to_string(), None, false)),
        ];
        (body, any::<bool>()).prop_map(|((text, tokens, usage_only), crlf)| {
            let end = if crlf { "\r\n" } else { "\n" };
            (format!("{}{end}{end}", text.replace('\n', end)).into_bytes(), tokens, usage_only)
        })
    }

    proptest! {
        /// However the upstream cuts its stream, every event is found whole, the usage is
        /// the last usage chunk's, and what is forwarded is the stream without the usage
        /// chunk (when the client did not ask for it), byte for byte.
        #[test]
        fn any_cut_of_a_stream_gives_the_same_events_and_usage(
            events in proptest::collection::vec(event(), 0..12),
            tail in proptest::option::of("[a-z: ]{1,10}"),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
            strip_usage in any::<bool>(),
        ) {
            let mut whole: Vec<u8> = events.iter().flat_map(|(bytes, _, _)| bytes.clone()).collect();
            whole.extend(tail.iter().flat_map(|t| t.bytes()));
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(whole.len() + 1)).collect();
            at.extend([0, whole.len()]);
            at.sort_unstable();
            let mut splitter = Events::default();
            let (mut found, mut forwarded, mut metered) = (Vec::new(), Vec::new(), None);
            for pair in at.windows(2) {
                for event in splitter.push(&whole[pair[0]..pair[1]]) {
                    let (forward, tokens) = judge(&event, strip_usage);
                    metered = tokens.or(metered);
                    if forward {
                        forwarded.extend_from_slice(&event);
                    }
                    found.push(event);
                }
            }
            let rest = splitter.take_rest();
            forwarded.extend_from_slice(&rest);
            let expected: Vec<Vec<u8>> = events.iter().map(|(bytes, _, _)| bytes.clone()).collect();
            prop_assert_eq!(found, expected);
            prop_assert_eq!(rest, tail.unwrap_or_default().into_bytes());
            prop_assert_eq!(metered, events.iter().rev().find_map(|(_, tokens, _)| *tokens));
            let mut kept: Vec<u8> = events
                .iter()
                .filter(|(_, _, usage_only)| !(strip_usage && *usage_only))
                .flat_map(|(bytes, _, _)| bytes.clone())
                .collect();
            kept.extend_from_slice(&whole[events.iter().map(|(bytes, _, _)| bytes.len()).sum::<usize>()..]);
            prop_assert_eq!(forwarded, kept);
        }
    }
}
