//! What a feed client needs from a text frame, read in place: its kind,
//! and for an event its `seq` and `ts`.
//!
//! Every subscriber receives every event, so this runs hundreds of
//! thousands of times a second; it finds the few keys it needs as
//! substrings and parses just their values, never building a JSON tree
//! or allocating. It relies on what the feed contract (API.md) promises
//! and the server's serializer does: the top-level `type`, `seq` and `ts`
//! come before any nested object that could hold keys of the same name,
//! and event types are upper case (`BID_UPDATED`) while control messages
//! are lower case (`welcome`, `subscribed`, `heartbeat`, `error`).

/// What a text frame is, as far as the load generator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedMessage {
    /// A channel event (`BID_UPDATED`, `MATCH_CREATED`, …).
    Event {
        /// Its `seq` on the channel, when readable.
        seq: Option<i64>,
        /// Its `ts` in microseconds since the epoch, when readable.
        ts_micros: Option<i64>,
    },
    /// The periodic `heartbeat`.
    Heartbeat,
    /// The `subscribed` reply, with the channel's `seq` at that moment.
    Subscribed {
        /// The `seq` the subscription starts after.
        seq: Option<i64>,
    },
    /// An `error` message.
    Error,
    /// `welcome`, `pong` and anything else.
    Other,
}

/// The opening of every event the server writes: `type` first.
const TYPE_FIRST: &str = r#"{"type":""#;
/// A `type` key anywhere.
const TYPE_KEY: &str = r#""type":""#;
/// The `seq` key.
const SEQ_KEY: &str = r#""seq":"#;
/// The `ts` key with the opening quote of its value.
const TS_KEY: &str = r#""ts":""#;
/// The length of `2026-11-22T03:04:05.123456Z`.
const TS_LENGTH: usize = 27;

/// Reads what `text` is; see the module docs.
pub fn classify(text: &str) -> FeedMessage {
    let Some(kind) = message_type(text) else {
        return FeedMessage::Other;
    };
    if kind.starts_with(|first: char| first.is_ascii_uppercase()) {
        return FeedMessage::Event {
            seq: seq_of(text),
            ts_micros: ts_of(text),
        };
    }
    match kind {
        "heartbeat" => FeedMessage::Heartbeat,
        "subscribed" => FeedMessage::Subscribed { seq: seq_of(text) },
        "error" => FeedMessage::Error,
        _ => FeedMessage::Other,
    }
}

/// The value of the top-level `type`.
fn message_type(text: &str) -> Option<&str> {
    let after = match text.strip_prefix(TYPE_FIRST) {
        Some(after) => after,
        None => {
            let start = text.find(TYPE_KEY)? + TYPE_KEY.len();
            text.get(start..)?
        }
    };
    let end = after.find('"')?;
    after.get(..end)
}

/// The first `"seq":` number.
fn seq_of(text: &str) -> Option<i64> {
    let start = text.find(SEQ_KEY)? + SEQ_KEY.len();
    let digits = text.get(start..)?.trim_start();
    let end = digits
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(digits.len());
    digits.get(..end)?.parse().ok()
}

/// The first `"ts":"…"`, parsed.
fn ts_of(text: &str) -> Option<i64> {
    let start = text.find(TS_KEY)? + TS_KEY.len();
    let rest = text.get(start..)?;
    // The server's form has a fixed length; anything else ends at its quote.
    let value = match rest.as_bytes().get(TS_LENGTH) {
        Some(b'"') => rest.get(..TS_LENGTH)?,
        _ => rest.get(..rest.find('"')?)?,
    };
    crate::clock::parse_micros(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22T03:04:05.123456Z.
    const SAMPLE: i64 = 1_795_316_645_123_456;

    #[test]
    fn a_servers_event_gives_its_seq_and_ts() {
        let text = r#"{"type":"BID_UPDATED","channel":"product:1","seq":1241,"ts":"2026-11-22T03:04:05.123456Z","product_id":1,"size":"10","price":"1.00","quantity":1,"orders":1,"highest_bid":{"price":"1.99","quantity":3}}"#;
        assert_eq!(
            classify(text),
            FeedMessage::Event {
                seq: Some(1241),
                ts_micros: Some(SAMPLE)
            }
        );
    }

    #[test]
    fn keys_in_another_order_still_read() {
        let text = r#"{"channel":"product:1","product_id":1,"seq":7,"ts":"2026-11-22T03:04:05.5Z","type":"ASK_UPDATED"}"#;
        assert_eq!(
            classify(text),
            FeedMessage::Event {
                seq: Some(7),
                ts_micros: Some(SAMPLE - 123_456 + 500_000)
            }
        );
    }

    #[test]
    fn control_messages_are_told_apart_from_events() {
        // serde_json's json! sorts keys, so `type` may come last and a
        // heartbeat's `ts` must not make it an event.
        let heartbeat =
            r#"{"seqs":{"product:1":12},"ts":"2026-11-22T03:04:05.123456Z","type":"heartbeat"}"#;
        assert_eq!(classify(heartbeat), FeedMessage::Heartbeat);
        let subscribed = r#"{"channel":"product:1","seq":12,"snapshot":{"markets":[{"size":"10","bids":[],"asks":[]}]},"type":"subscribed"}"#;
        assert_eq!(
            classify(subscribed),
            FeedMessage::Subscribed { seq: Some(12) }
        );
        let welcome =
            r#"{"type":"welcome","connection_id":3,"user":null,"heartbeat_interval_ms":5000}"#;
        assert_eq!(classify(welcome), FeedMessage::Other);
        let error = r#"{"type":"error","code":"rate_limited","message":"x","id":null}"#;
        assert_eq!(classify(error), FeedMessage::Error);
    }

    #[test]
    fn unreadable_parts_are_none_not_errors() {
        assert_eq!(classify("not json"), FeedMessage::Other);
        assert_eq!(classify(""), FeedMessage::Other);
        assert_eq!(
            classify(r#"{"type":"BID_UPDATED","seq":"x","ts":"yesterday"}"#),
            FeedMessage::Event {
                seq: None,
                ts_micros: None
            }
        );
        assert_eq!(
            classify(r#"{"type":"BID_UPDATED","seq":3,"ts":"2026-11-22T03:04:05.123456Z"#),
            FeedMessage::Event {
                seq: Some(3),
                ts_micros: None
            }
        );
    }

    #[test]
    fn latency_is_receipt_minus_ts() {
        let text = r#"{"type":"BID_UPDATED","channel":"product:1","seq":1,"ts":"2026-11-22T03:04:05.123456Z"}"#;
        let received = SAMPLE + 2_500;
        let FeedMessage::Event {
            ts_micros: Some(ts),
            ..
        } = classify(text)
        else {
            panic!("an event with a ts");
        };
        assert_eq!(received - ts, 2_500);
    }
}
