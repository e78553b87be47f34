//! The messages of the WebSocket protocol: what clients may send, parsed
//! into [`Request`]s with errors that name the offending field, and the
//! replies the server builds.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::feed::Channel;
use crate::http::error::ApiError;
use crate::http::json;

/// A client's `id`, kept as the JSON text it was sent as, so that the
/// reply echoes it exactly: through a parsed value, an integer past 2^64
/// or one written `1e2` would come back as a different number.
#[derive(Debug, Clone)]
pub struct MessageId(Box<RawValue>);

impl MessageId {
    /// The `id` of the message `text`, given the value it was parsed to:
    /// as `text` spells it, or as parsed when the text cannot be read for
    /// it alone (a key given twice, of which the parse kept the last).
    fn of(text: &str, parsed: &Value) -> Self {
        Self::written(text).map_or_else(|| Self::parsed(parsed), Self)
    }

    /// The `id` as parsed: for one that is `null`, or given twice.
    fn parsed(parsed: &Value) -> Self {
        let raw = serde_json::value::to_raw_value(parsed).ok();
        Self(raw.unwrap_or_else(|| RawValue::NULL.to_owned()))
    }

    /// The `id` as `text` spells it, read without parsing the rest into
    /// values; `None` when it is absent or `null`, or given twice.
    fn written(text: &str) -> Option<Box<RawValue>> {
        #[derive(Deserialize)]
        struct Id<'a> {
            #[serde(borrow)]
            id: Option<&'a RawValue>,
        }
        Some(serde_json::from_str::<Id>(text).ok()?.id?.to_owned())
    }

    /// The id's JSON text.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for MessageId {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json()
    }
}

/// One client message.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The client's `id`, echoed in the reply.
    pub id: Option<MessageId>,
    /// What it asks for.
    pub command: Command,
}

/// What a client may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `subscribe`, from scratch or resuming after `since_seq`.
    Subscribe {
        /// The channels, as sent.
        channels: Vec<String>,
        /// Resume after this `seq` instead of taking a snapshot.
        since_seq: Option<i64>,
    },
    /// `unsubscribe`.
    Unsubscribe {
        /// The channels, as sent.
        channels: Vec<String>,
    },
    /// `auth` with a token.
    Auth {
        /// The JWT.
        token: String,
    },
    /// `ping`, answered by `pong`.
    Ping,
}

/// A client message the server will not act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// snake_case code.
    pub code: &'static str,
    /// A sentence.
    pub message: String,
    /// The client's `id`, when it got that far.
    pub id: Option<MessageId>,
}

impl Refusal {
    /// A refusal of the request with `id`.
    pub fn new(code: &'static str, message: impl Into<String>, id: Option<MessageId>) -> Self {
        Self {
            code,
            message: message.into(),
            id,
        }
    }

    /// The refusal of an `auth` that failed as a REST request's token
    /// would: the same code (`unavailable` for a database that is down),
    /// and never an internal cause, which is logged instead.
    pub fn from_api(error: &ApiError, id: Option<&MessageId>) -> Self {
        let code = match error {
            ApiError::Unauthorized { code, .. } | ApiError::Malformed { code, .. } => code,
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error on a WebSocket");
                "internal_error"
            }
            _ => "invalid_message",
        };
        Self::new(code, error.to_string(), id.cloned())
    }

    /// The `error` message.
    pub fn to_message(&self) -> String {
        let reply = json!({"type": "error", "code": self.code, "message": self.message});
        with_id(&reply, self.id.as_ref())
    }
}

#[derive(Deserialize)]
struct ChannelsBody {
    channels: Vec<String>,
    #[serde(default)]
    since_seq: Option<i64>,
}

#[derive(Deserialize)]
struct AuthBody {
    token: String,
}

/// The `id` of a message refused before it is read (over the rate), so
/// that the error still names it; nothing else of it is looked at.
pub fn id_of(text: &str) -> Option<MessageId> {
    if let Some(raw) = MessageId::written(text) {
        return Some(MessageId(raw));
    }
    // Only for an `id` that is `null` or given twice.
    let value: Value = serde_json::from_str(text).ok()?;
    Some(MessageId::parsed(value.get("id")?))
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Request, Refusal> {
    // A number past what a parse can hold (`1e400`) is valid JSON but
    // not readable here: the error says where.
    let value: Value = serde_json::from_str(text).map_err(|error| {
        Refusal::new(
            "invalid_json",
            format!("messages must be JSON objects ({error})"),
            None,
        )
    })?;
    let Value::Object(object) = &value else {
        return Err(Refusal::new(
            "invalid_message",
            "messages must be JSON objects",
            None,
        ));
    };
    let id = object.get("id").map(|parsed| MessageId::of(text, parsed));
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(Refusal::new("invalid_message", "type must be a string", id)),
        None => return Err(Refusal::new("invalid_message", "type is required", id)),
    };
    let command = match kind {
        "subscribe" => {
            let body: ChannelsBody = fields(&value, id.as_ref())?;
            if body.since_seq.is_some_and(|seq| seq < 0) {
                return Err(Refusal::new(
                    "invalid_message",
                    "since_seq must not be negative",
                    id,
                ));
            }
            // Every subscription is acknowledged per channel, so an empty
            // list would otherwise get no reply at all.
            if body.channels.is_empty() {
                return Err(Refusal::new(
                    "invalid_message",
                    "channels must name at least one channel",
                    id,
                ));
            }
            Command::Subscribe {
                channels: body.channels,
                since_seq: body.since_seq,
            }
        }
        "unsubscribe" => Command::Unsubscribe {
            channels: fields::<ChannelsBody>(&value, id.as_ref())?.channels,
        },
        "auth" => Command::Auth {
            token: fields::<AuthBody>(&value, id.as_ref())?.token,
        },
        "ping" => Command::Ping,
        other => {
            let mut shown: String = other.chars().take(32).collect();
            if shown.len() < other.len() {
                shown.push('…');
            }
            return Err(Refusal::new(
                "unknown_type",
                format!(
                    "unknown message type {shown:?}: send subscribe, unsubscribe, auth or ping"
                ),
                id,
            ));
        }
    };
    Ok(Request { id, command })
}

/// Deserializes a message's fields, naming the one that is wrong.
fn fields<T: serde::de::DeserializeOwned>(
    value: &Value,
    id: Option<&MessageId>,
) -> Result<T, Refusal> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let (_, message) = json::described(&error, "message");
        Refusal::new("invalid_message", message, id.cloned())
    })
}

/// Parses the channel names of a `subscribe` or `unsubscribe`.
pub fn channels(names: &[String], id: Option<&MessageId>) -> Result<Vec<Channel>, Refusal> {
    names
        .iter()
        .map(|name| {
            Channel::parse(name).ok_or_else(|| {
                let mut shown: String = name.chars().take(40).collect();
                if shown.len() < name.len() {
                    shown.push('…');
                }
                Refusal::new(
                    "unknown_channel",
                    format!(
                        "{shown:?} is not a channel: use product:{{id}}, user:{{id}} or products"
                    ),
                    id.cloned(),
                )
            })
        })
        .collect()
}

/// A reply object's text, with the client's `id` added last, as sent.
pub fn with_id(reply: &Value, id: Option<&MessageId>) -> String {
    debug_assert!(reply.get("id").is_none(), "a reply with an id of its own");
    let mut text = reply.to_string();
    if let Some(id) = id
        && text.ends_with('}')
    {
        text.pop();
        if text.len() > 1 {
            text.push(',');
        }
        text.push_str("\"id\":");
        text.push_str(id.as_json());
        text.push('}');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> Refusal {
        parse(text).expect_err("refused")
    }

    #[test]
    fn every_client_message_parses() {
        assert_eq!(
            parse(r#"{"type":"subscribe","channels":["product:42"],"since_seq":7,"id":1}"#),
            Ok(Request {
                id: Some(MessageId(
                    RawValue::from_string("1".to_owned()).expect("JSON")
                )),
                command: Command::Subscribe {
                    channels: vec!["product:42".to_owned()],
                    since_seq: Some(7)
                }
            })
        );
        assert_eq!(
            parse(r#"{"type":"unsubscribe","channels":["products"],"id":"a"}"#).map(|r| r.command),
            Ok(Command::Unsubscribe {
                channels: vec!["products".to_owned()]
            })
        );
        assert_eq!(
            parse(r#"{"type":"auth","token":"t"}"#).map(|r| r.command),
            Ok(Command::Auth {
                token: "t".to_owned()
            })
        );
        assert_eq!(
            parse(r#"{"type":"ping"}"#).map(|r| r.command),
            Ok(Command::Ping)
        );
    }

    #[test]
    fn bad_messages_are_refused_with_a_code_and_the_id() {
        assert_eq!(refusal("not json").code, "invalid_json");
        assert_eq!(refusal("[1]").code, "invalid_message");
        let id = |refusal: Refusal| refusal.id.map(|id| id.as_json().to_owned());
        assert_eq!(id(refusal(r#"{"id":3}"#)), Some("3".to_owned()));
        let unknown = refusal(r#"{"type":"dance","id":4}"#);
        assert_eq!(unknown.code, "unknown_type");
        assert_eq!(id(unknown), Some("4".to_owned()));
        let wrong = refusal(r#"{"type":"subscribe","channels":"product:1"}"#);
        assert!(wrong.message.contains("channels"), "{}", wrong.message);
        let negative = refusal(r#"{"type":"subscribe","channels":[],"since_seq":-1}"#);
        assert!(negative.message.contains("since_seq"));
        let empty = refusal(r#"{"type":"subscribe","channels":[],"id":7}"#);
        assert_eq!(empty.code, "invalid_message");
        assert_eq!(id(empty), Some("7".to_owned()));
        let missing = refusal(r#"{"type":"auth"}"#);
        assert!(missing.message.contains("token"), "{}", missing.message);
    }

    /// The `id` comes back as it was written, whatever JSON it is: a
    /// parsed number would lose digits past 2^64, or turn `1e2` into 100.0.
    #[test]
    fn the_id_is_echoed_as_sent() {
        for id in [
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "1e2",
            "-0",
            "0.1000",
            "\"a\\u00e9\"",
            "null",
            "{\"nested\": [1, 2.50]}",
        ] {
            let request = parse(&format!(r#"{{"type":"ping","id":{id}}}"#)).expect("a ping");
            let pong = with_id(&json!({"type": "pong"}), request.id.as_ref());
            assert_eq!(pong, format!(r#"{{"type":"pong","id":{id}}}"#));
            let refused = refusal(&format!(r#"{{"type":"dance","id":{id}}}"#));
            let error: Value = serde_json::from_str(&refused.to_message()).expect("JSON");
            assert_eq!(error["code"], "unknown_type", "{id}");
            assert!(refused.to_message().ends_with(&format!(r#","id":{id}}}"#)));
        }
        // A key given twice: the last, as the parse keeps it.
        let twice = parse(r#"{"type":"ping","id":1,"id":2}"#).expect("a ping");
        assert_eq!(
            twice.id.map(|id| id.as_json().to_owned()),
            Some("2".to_owned())
        );
        let huge = refusal(r#"{"type":"ping","id":1e400}"#);
        assert_eq!(huge.code, "invalid_json");
        assert!(huge.message.contains("out of range"), "{}", huge.message);
    }

    #[test]
    fn channel_names_are_checked() {
        assert_eq!(
            channels(&["product:1".to_owned(), "products".to_owned()], None),
            Ok(vec![Channel::Product(1), Channel::Products])
        );
        assert_eq!(
            channels(&["orders:1".to_owned()], None).map_err(|error| error.code),
            Err("unknown_channel")
        );
    }

    #[test]
    fn a_failed_auth_keeps_the_rest_code_and_hides_internal_causes() {
        let expired = ApiError::Unauthorized {
            code: "token_expired",
            message: "the token has expired; log in again",
        };
        assert_eq!(Refusal::from_api(&expired, None).code, "token_expired");
        let two = MessageId(RawValue::from_string("2".to_owned()).expect("JSON"));
        assert_eq!(
            Refusal::from_api(&ApiError::Unavailable, Some(&two)).id,
            Some(two)
        );
        let internal = Refusal::from_api(&ApiError::Internal("disk on fire".to_owned()), None);
        assert_eq!(internal.code, "internal_error");
        assert!(!internal.message.contains("disk"), "{}", internal.message);
    }

    #[test]
    fn errors_echo_the_id() {
        let nine = MessageId(RawValue::from_string("9".to_owned()).expect("JSON"));
        let message = Refusal::new("forbidden", "no", Some(nine)).to_message();
        let value: Value = serde_json::from_str(&message).unwrap_or_default();
        assert_eq!(
            value,
            json!({"type": "error", "code": "forbidden", "message": "no", "id": 9})
        );
    }
}
