//! The HTTP/1.1 upgrade to a WebSocket (RFC 6455, section 4.2).
//!
//! Done here rather than by axum's `WebSocketUpgrade` so that the gateway
//! holds tokio-tungstenite's stream itself. axum's socket sends a message
//! as one frame, and tungstenite keeps its write buffer at the size of the
//! largest frame a connection was ever sent: every subscriber of a deep
//! book would keep a copy of its snapshot for the connection's life. With
//! the stream, a large message goes out in fragments (see
//! `connection::FRAGMENT`) and the buffer stays at a fragment's size.

use std::future::Future;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::http::error::ApiError;
use crate::write_bound::WriteBound;

/// A WebSocket connection, server side.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// A request that asks for a WebSocket, not yet answered.
pub struct Handshake {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    /// The connection's bound on stalled writes, which the gateway's own
    /// replaces once it is a WebSocket (absent under a test's router).
    write_bound: Option<WriteBound>,
}

/// A request that was not upgraded: the contract's 400, or, for a
/// protocol version this server does not speak, 426 with the one it does
/// (RFC 6455, section 4.4), so that a client can try again with it.
#[derive(Debug)]
pub struct Refused {
    error: ApiError,
    version: bool,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            version: false,
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if self.version {
            *response.status_mut() = StatusCode::UPGRADE_REQUIRED;
            response
                .headers_mut()
                .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Handshake {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Refused> {
        // axum's `get` route answers HEAD too; a HEAD may not be upgraded.
        if parts.method != Method::GET {
            return Err(refuse("the method must be GET").into());
        }
        let headers = &parts.headers;
        if !has_token(headers, CONNECTION, "upgrade") {
            return Err(refuse("the Connection header must name upgrade").into());
        }
        if !is(headers, UPGRADE, "websocket") {
            return Err(refuse("the Upgrade header must be websocket").into());
        }
        if !is(headers, SEC_WEBSOCKET_VERSION, "13") {
            return Err(Refused {
                error: refuse("Sec-WebSocket-Version must be 13"),
                version: true,
            });
        }
        let key = headers
            .get(SEC_WEBSOCKET_KEY)
            .filter(|key| is_nonce(key.as_bytes()))
            .cloned()
            .ok_or_else(|| refuse("Sec-WebSocket-Key must be 16 bytes in base64"))?;
        // hyper puts it there for an HTTP/1.1 request whose connection can
        // be taken over.
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or_else(|| refuse("this connection cannot be upgraded"))?;
        let write_bound = parts.extensions.get::<WriteBound>().cloned();
        Ok(Self {
            key,
            on_upgrade,
            write_bound,
        })
    }
}

impl Handshake {
    /// Answers `101 Switching Protocols` and, once hyper hands the
    /// connection over, runs `serve` on it. If the upgrade never happens
    /// (the client went away), `serve` is dropped unrun.
    pub fn accept<F, Fut>(self, config: WebSocketConfig, serve: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Self {
            key,
            on_upgrade,
            write_bound,
        } = self;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    if let Some(bound) = write_bound {
                        bound.lift();
                    }
                    let io = TokioIo::new(upgraded);
                    serve(WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await)
                        .await;
                }
                Err(error) => tracing::debug!(%error, "a WebSocket upgrade did not complete"),
            }
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::try_from(derive_accept_key(key.as_bytes())) {
            headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

fn refuse(why: &str) -> ApiError {
    ApiError::Malformed {
        code: "websocket_required",
        message: format!("GET /ws takes a WebSocket upgrade: {why}"),
    }
}

/// Whether `key` is 16 bytes in base64 (RFC 6455, section 4.1): 22
/// characters of the alphabet, the last of them carrying only two bits,
/// and `==`.
fn is_nonce(key: &[u8]) -> bool {
    let [body @ .., last, b'=', b'='] = key else {
        return false;
    };
    body.len() == 21
        && body
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/'))
        && matches!(last, b'A' | b'Q' | b'g' | b'w')
}

fn is(headers: &HeaderMap, name: HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|header| header.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// Whether a comma-separated header lists `token` (`Connection:
/// keep-alive, Upgrade` from Firefox).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(|header| header.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::is_nonce;

    #[test]
    fn a_key_is_sixteen_bytes_in_base64() {
        assert!(is_nonce(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(is_nonce(b"AAAAAAAAAAAAAAAAAAAAAA=="));
        for key in [
            &b""[..],
            b"hello",
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZR==",
            b"dGhlIHNhbXBsZSBub25j*Q==",
            b"dGhlIHNhbXBsZSBub25jZQ===",
        ] {
            assert!(!is_nonce(key), "{}", String::from_utf8_lossy(key));
        }
    }
}
