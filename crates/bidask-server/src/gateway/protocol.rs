//! The messages of the WebSocket protocol: what clients may send, parsed
//! into [`Request`]s with errors that name the offending field, and the
//! replies the server builds.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::feed::Channel;
use crate::http::error::ApiError;

/// One client message.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The client's `id`, echoed in the reply.
    pub id: Option<Value>,
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
    pub id: Option<Value>,
}

impl Refusal {
    /// A refusal of the request with `id`.
    pub fn new(code: &'static str, message: impl Into<String>, id: Option<Value>) -> Self {
        Self {
            code,
            message: message.into(),
            id,
        }
    }

    /// The refusal of an `auth` that failed as a REST request's token
    /// would: the same code (`unavailable` for a database that is down),
    /// and never an internal cause, which is logged instead.
    pub fn from_api(error: &ApiError, id: Option<&Value>) -> Self {
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
        let mut reply = json!({"type": "error", "code": self.code, "message": self.message});
        with_id(&mut reply, self.id.as_ref());
        reply.to_string()
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
pub fn id_of(text: &str) -> Option<Value> {
    #[derive(Deserialize)]
    struct Id {
        id: Option<Value>,
    }
    serde_json::from_str::<Id>(text).ok()?.id
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Request, Refusal> {
    let value: Value = serde_json::from_str(text)
        .map_err(|_| Refusal::new("invalid_json", "messages must be JSON objects", None))?;
    let Value::Object(object) = &value else {
        return Err(Refusal::new(
            "invalid_message",
            "messages must be JSON objects",
            None,
        ));
    };
    let id = object.get("id").cloned();
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
fn fields<T: serde::de::DeserializeOwned>(value: &Value, id: Option<&Value>) -> Result<T, Refusal> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let message = if path == "." {
            error.inner().to_string()
        } else {
            format!("{path}: {}", error.inner())
        };
        Refusal::new("invalid_message", message, id.cloned())
    })
}

/// Parses the channel names of a `subscribe` or `unsubscribe`.
pub fn channels(names: &[String], id: Option<&Value>) -> Result<Vec<Channel>, Refusal> {
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

/// Adds the client's `id` to a reply.
pub fn with_id(reply: &mut Value, id: Option<&Value>) {
    if let (Some(id), Value::Object(object)) = (id, reply) {
        object.insert("id".to_owned(), id.clone());
    }
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
                id: Some(json!(1)),
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
        assert_eq!(refusal(r#"{"id":3}"#).id, Some(json!(3)));
        let unknown = refusal(r#"{"type":"dance","id":4}"#);
        assert_eq!((unknown.code, unknown.id), ("unknown_type", Some(json!(4))));
        let wrong = refusal(r#"{"type":"subscribe","channels":"product:1"}"#);
        assert!(wrong.message.contains("channels"), "{}", wrong.message);
        let negative = refusal(r#"{"type":"subscribe","channels":[],"since_seq":-1}"#);
        assert!(negative.message.contains("since_seq"));
        let empty = refusal(r#"{"type":"subscribe","channels":[],"id":7}"#);
        assert_eq!((empty.code, empty.id), ("invalid_message", Some(json!(7))));
        let missing = refusal(r#"{"type":"auth"}"#);
        assert!(missing.message.contains("token"), "{}", missing.message);
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
        assert_eq!(
            Refusal::from_api(&ApiError::Unavailable, Some(&json!(2))).id,
            Some(json!(2))
        );
        let internal = Refusal::from_api(&ApiError::Internal("disk on fire".to_owned()), None);
        assert_eq!(internal.code, "internal_error");
        assert!(!internal.message.contains("disk"), "{}", internal.message);
    }

    #[test]
    fn errors_echo_the_id() {
        let message = Refusal::new("forbidden", "no", Some(json!(9))).to_message();
        let value: Value = serde_json::from_str(&message).unwrap_or_default();
        assert_eq!(
            value,
            json!({"type": "error", "code": "forbidden", "message": "no", "id": 9})
        );
    }
}
