//! A WebSocket test client over tokio-tungstenite, the same library a Rust
//! client of the feed would use.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::TestApp;

/// The status and contract error code of a refused upgrade.
pub fn refusal(response: &Response<Option<Vec<u8>>>) -> (u16, String) {
    let body: Value =
        serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap_or_default();
    (
        response.status().as_u16(),
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// How long a test waits for what it expects before it fails: one frame,
/// or one message that is not a heartbeat, or the next event of the
/// channel it reads. Heartbeats and pings arrive every interval and keep
/// the connection alive, so a bound per frame alone would never end a
/// wait for something that does not come.
const WAIT: Duration = Duration::from_secs(10);

/// One feed connection.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a client connects.
#[derive(Debug, Default, Clone)]
pub struct Connect<'a> {
    /// Sent as `Authorization: Bearer`.
    pub header_token: Option<&'a str>,
    /// Sent as `?token=`.
    pub query_token: Option<&'a str>,
    /// Sent as `Origin`.
    pub origin: Option<&'a str>,
    /// The socket's receive buffer, for a client meant to fall behind.
    pub receive_buffer: Option<u32>,
    /// The loopback address to connect from (127.0.0.1 when unset).
    pub source: Option<std::net::Ipv4Addr>,
}

impl WsClient {
    /// Connects anonymously.
    pub async fn connect(app: &TestApp) -> Self {
        Self::connect_with(app, &Connect::default())
            .await
            .expect("the upgrade succeeds")
    }

    /// Connects with `token` in the query string.
    pub async fn connect_as(app: &TestApp, token: &str) -> Self {
        Self::connect_with(
            app,
            &Connect {
                query_token: Some(token),
                ..Connect::default()
            },
        )
        .await
        .expect("the upgrade succeeds")
    }

    /// Connects as `how` says; a refused upgrade is the HTTP response.
    pub async fn connect_with(
        app: &TestApp,
        how: &Connect<'_>,
    ) -> Result<Self, Box<Response<Option<Vec<u8>>>>> {
        let authority = app.address.trim_start_matches("http://");
        let mut url = format!("ws://{authority}/ws");
        if let Some(token) = how.query_token {
            url.push_str(&format!("?token={token}"));
        }
        let mut request = url.into_client_request().expect("a request");
        if let Some(token) = how.header_token {
            request.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).expect("a header"),
            );
        }
        if let Some(origin) = how.origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin).expect("a header"));
        }
        let socket = TcpSocket::new_v4().expect("a socket");
        if let Some(size) = how.receive_buffer {
            socket.set_recv_buffer_size(size).expect("a buffer size");
        }
        if let Some(source) = how.source {
            socket
                .bind((source, 0).into())
                .expect("a loopback source address");
        }
        let tcp = socket
            .connect(authority.parse().expect("a socket address"))
            .await
            .expect("the server accepts");
        match tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp)).await {
            Ok((stream, _)) => Ok(Self { stream }),
            Err(tungstenite::Error::Http(response)) => Err(response),
            Err(error) => panic!("upgrade failed: {error}"),
        }
    }

    /// Connects anonymously and subscribes to `channel` with `since_seq`:
    /// the client, and the `subscribed` reply (a resume's, or a reset's).
    pub async fn resuming(app: &TestApp, channel: &str, since: i64) -> (Self, Value) {
        let mut client = Self::connect(app).await;
        client.expect("welcome").await;
        client
            .send(&serde_json::json!({"type": "subscribe", "channels": [channel], "since_seq": since}))
            .await;
        let subscribed = client.expect("subscribed").await;
        (client, subscribed)
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, message: &Value) {
        self.send_raw(Message::Text(message.to_string().into()))
            .await;
    }

    /// Sends any frame.
    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("the frame is sent");
    }

    /// The next frame or read error, as the client library gives it.
    pub async fn next_result(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        self.stream.next().await
    }

    /// The next frame, heartbeats included; `None` at the end of the stream.
    pub async fn next_frame(&mut self) -> Option<Message> {
        match tokio::time::timeout(WAIT, self.stream.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            Ok(Some(Err(_)) | None) => None,
            Err(_) => panic!("no message within {WAIT:?}"),
        }
    }

    /// The next JSON message that is not a heartbeat.
    pub async fn next(&mut self) -> Value {
        let waiting = async {
            loop {
                let value = self.next_any().await;
                if value["type"] != "heartbeat" {
                    return value;
                }
            }
        };
        tokio::time::timeout(WAIT, waiting)
            .await
            .unwrap_or_else(|_| panic!("nothing but heartbeats for {WAIT:?}"))
    }

    /// The next JSON message, heartbeats included.
    pub async fn next_any(&mut self) -> Value {
        loop {
            match self.next_frame().await {
                Some(Message::Text(text)) => {
                    return serde_json::from_str(&text).expect("messages are JSON");
                }
                Some(Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// The next message, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let message = self.next().await;
        assert_eq!(message["type"], kind, "expected {kind}, got {message}");
        message
    }

    /// Subscribes to `channel` and returns the `subscribed` reply, which
    /// must echo the request's `id`.
    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.send(&serde_json::json!({"type": "subscribe", "channels": [channel], "id": 1}))
            .await;
        let subscribed = self.expect("subscribed").await;
        assert_eq!(subscribed["channel"], channel, "{subscribed}");
        assert_eq!(subscribed["id"], 1, "{subscribed}");
        subscribed
    }

    /// Every event of `channel` this client is sent until its connection
    /// ends (a killed server's); fails if it is still open after `within`.
    pub async fn events_until_closed(&mut self, channel: &str, within: Duration) -> Vec<Value> {
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let event: Value = serde_json::from_str(&text).expect("messages are JSON");
                    if event["channel"] == channel && event["type"] != "subscribed" {
                        events.push(event);
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return events,
                Err(_) => panic!("{channel}: the connection still open after {within:?}"),
            }
        }
    }

    /// Reads until the server closes; the close frame, if it sent one.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        let waiting = async {
            loop {
                match self.next_frame().await {
                    Some(Message::Close(frame)) => return frame,
                    None => return None,
                    Some(_) => {}
                }
            }
        };
        tokio::time::timeout(WAIT, waiting)
            .await
            .unwrap_or_else(|_| panic!("not closed within {WAIT:?}"))
    }

    /// Reads every event of `channel` until `until` (inclusive), checking
    /// that their `seq`s follow `after` without a gap or a repeat.
    pub async fn events_until(&mut self, channel: &str, after: i64, until: i64) -> Vec<Value> {
        let mut events = Vec::new();
        let mut last = after;
        let mut deadline = tokio::time::Instant::now() + WAIT;
        while last < until {
            let message = tokio::time::timeout_at(deadline, self.next())
                .await
                .unwrap_or_else(|_| panic!("{channel}: nothing after {last} within {WAIT:?}"));
            if message["channel"] != channel {
                continue;
            }
            deadline = tokio::time::Instant::now() + WAIT;
            let seq = message["seq"].as_i64().expect("events carry seq");
            assert_eq!(seq, last + 1, "{channel}: after {last} came {message}");
            last = seq;
            events.push(message);
        }
        events
    }

    /// Closes from the client's side.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// Upgrades to `app`'s feed by hand, with `headers` (each `Name: value`)
/// added to the request: the response head and the stream, for a test
/// that speaks the protocol itself.
pub async fn raw_upgrade(app: &TestApp, headers: &[&str]) -> (String, TcpStream) {
    let authority = app.address.trim_start_matches("http://");
    let mut request = format!(
        "GET /ws HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: {EXAMPLE_KEY}\r\n"
    );
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    raw_request(authority, &request).await
}

/// RFC 6455's own example `Sec-WebSocket-Key`, whose answer is
/// [`EXAMPLE_ACCEPT`].
pub const EXAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The `Sec-WebSocket-Accept` of [`EXAMPLE_KEY`].
pub const EXAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Sends `request` as it is on a fresh connection and reads the response
/// head, a byte at a time so that nothing after it is consumed; for the
/// handshake's own tests and for clients that read raw frames.
pub async fn raw_request(authority: &str, request: &str) -> (String, TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = TcpStream::connect(authority)
        .await
        .expect("the server accepts");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is sent");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        let read = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("a response in time")
            .expect("the response head");
        assert_eq!(read, 1, "the connection ended after {head:?}");
        head.push(byte[0]);
    }
    (String::from_utf8_lossy(&head).into_owned(), stream)
}
