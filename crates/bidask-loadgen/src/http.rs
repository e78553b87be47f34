//! The generator's HTTP/1.1 client: keep-alive connections to the one
//! server a run talks to, reused from an idle list, every exchange under
//! one deadline.
//!
//! Under the `orders` load the generator shares two cores with the server
//! and PostgreSQL, so each microsecond it spends on a request is taken from
//! what it measures. A general-purpose client (reqwest, used until
//! 2026-11-30) parsed the URL, mapped the host through IDNA, checked a
//! connection out of a keyed pool and built a header map on every request:
//! two thirds of the generator's CPU was its own code, not the kernel's.
//! hyper's connection API does the HTTP here; this module adds only what a
//! single fixed server needs.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use crate::error::LoadgenError;

/// A parsed `http://host[:port][/prefix]` URL: where to connect, what to
/// send as `Host`, and the path every request starts with.
#[derive(Debug, Clone)]
pub struct ServerUrl {
    /// As given, without a trailing slash, for messages and for joining
    /// paths with a plain `format!`.
    base: String,
    host: String,
    port: u16,
    /// `host[:port]` exactly as given, the `Host` header.
    authority: String,
    /// The path part, without a trailing slash (empty for none).
    prefix: String,
}

impl ServerUrl {
    /// Checks `url`. Only plain HTTP: the build carries no TLS, and a load
    /// test belongs next to the server.
    pub fn parse(url: &str) -> Result<Self, LoadgenError> {
        let invalid = |reason: &str| LoadgenError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(invalid("this build speaks plain HTTP only; use http://")),
            _ => return Err(invalid("the scheme must be http://")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.host().is_empty() {
            return Err(invalid("no host"));
        }
        if authority.as_str().contains('@') {
            return Err(invalid("a base URL takes no user or password"));
        }
        if uri.query().is_some() {
            return Err(invalid("a base URL takes no query"));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            base: format!("http://{authority}{prefix}"),
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            prefix,
        })
    }

    /// `http://host[:port][/prefix]`, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// The path part, without a trailing slash (empty for none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The first address the host resolves to.
    pub async fn resolve(&self) -> Result<SocketAddr, LoadgenError> {
        let invalid = |reason: String| LoadgenError::Url {
            url: self.base.clone(),
            reason,
        };
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|error| invalid(error.to_string()))?
            .next()
            .ok_or_else(|| invalid(format!("{} has no address", self.host)))
    }
}

/// Keep-alive connections to one server.
#[derive(Debug)]
pub struct HttpClient {
    server: SocketAddr,
    host: HeaderValue,
    timeout: Duration,
    /// Connections whose last exchange finished; a request takes one, or
    /// opens a new one, and puts it back when its answer is read. A
    /// connection whose exchange timed out or failed is dropped instead,
    /// since its state is unknown.
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

/// A complete answer: the status, and the body read to its end.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// From just before the request was written on a ready connection to
    /// the last byte of the body: opening a connection is not counted,
    /// since a trader that keeps its connection never waits for one.
    pub elapsed: Duration,
    /// The server's `Retry-After` (whole seconds), for setup steps that wait
    /// out a rate limit instead of failing.
    pub retry_after: Option<Duration>,
    pub(crate) body: Bytes,
}

/// Why a request got no complete answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The TCP connection could not be opened.
    #[error("could not connect to {server}: {source}")]
    Connect {
        /// Where.
        server: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed or the answer was not HTTP.
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// No complete answer within the deadline.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// The request could not be put together, e.g. a token that is not a
    /// valid header value.
    #[error("could not build the request: {0}")]
    Request(#[from] hyper::http::Error),
}

/// The two ways a request can fail below HTTP, counted separately in the
/// report: a timeout says "slow", a connection failure says "down or
/// refusing".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// No complete answer within `--timeout`.
    Timeout,
    /// Refused, reset, or not HTTP.
    Connection,
}

impl TransportError {
    /// Which of the report's two transport counts this goes to.
    pub fn kind(&self) -> TransportKind {
        match self {
            Self::Timeout(_) => TransportKind::Timeout,
            Self::Connect { .. } | Self::Http(_) | Self::Request(_) => TransportKind::Connection,
        }
    }
}

/// A request to send: method, path and query, and optionally a bearer
/// token and a JSON body.
#[derive(Debug)]
pub struct Outgoing<'a> {
    method: Method,
    path: &'a str,
    bearer: Option<&'a str>,
    json: Option<Bytes>,
}

impl<'a> Outgoing<'a> {
    /// `GET path`.
    pub fn get(path: &'a str) -> Self {
        Self::new(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(path: &'a str) -> Self {
        Self::new(Method::POST, path)
    }

    /// `DELETE path`.
    pub fn delete(path: &'a str) -> Self {
        Self::new(Method::DELETE, path)
    }

    fn new(method: Method, path: &'a str) -> Self {
        Self {
            method,
            path,
            bearer: None,
            json: None,
        }
    }

    /// With `Authorization: Bearer {token}`.
    pub fn bearer(self, token: &'a str) -> Self {
        Self {
            bearer: Some(token),
            ..self
        }
    }

    /// With `body` as `application/json`.
    pub fn json(self, body: impl Into<Bytes>) -> Self {
        Self {
            json: Some(body.into()),
            ..self
        }
    }
}

impl HttpClient {
    /// A client for `url`'s server, with `timeout` on every exchange
    /// (connecting included).
    pub async fn new(url: &ServerUrl, timeout: Duration) -> Result<Self, LoadgenError> {
        let host = HeaderValue::from_str(&url.authority).map_err(|_| LoadgenError::Url {
            url: url.base.clone(),
            reason: "the host is not a valid Host header".to_owned(),
        })?;
        Ok(Self {
            server: url.resolve().await?,
            host,
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `outgoing` and reads the whole answer, timing both.
    pub async fn send(&self, outgoing: Outgoing<'_>) -> Result<Answer, TransportError> {
        let request = self.request(outgoing)?;
        tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .map_err(|_| TransportError::Timeout(self.timeout))?
    }

    fn request(&self, outgoing: Outgoing<'_>) -> Result<Request<Full<Bytes>>, TransportError> {
        let mut builder = Request::builder()
            .method(outgoing.method)
            .uri(outgoing.path)
            .header(HOST, self.host.clone());
        if let Some(token) = outgoing.bearer {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match outgoing.json {
            Some(json) => {
                builder =
                    builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Full::new(json)
            }
            None => Full::new(Bytes::new()),
        };
        Ok(builder.body(body)?)
    }

    /// One exchange on an idle connection, or on a new one when none is
    /// idle or the idle one closed before the request could be written.
    async fn exchange(&self, mut request: Request<Full<Bytes>>) -> Result<Answer, TransportError> {
        let (mut sender, mut reused) = match self.take_idle() {
            Some(sender) => (sender, true),
            None => (self.connect().await?, false),
        };
        let (response, started) = loop {
            if sender.ready().await.is_err() && reused {
                (sender, reused) = (self.connect().await?, false);
                continue;
            }
            let started = Instant::now();
            match sender.try_send_request(request).await {
                Ok(response) => break (response, started),
                Err(mut error) => match error.take_message() {
                    // Never written: the server had closed the idle
                    // connection. A new one can carry it safely.
                    Some(unsent) if reused => {
                        request = unsent;
                        (sender, reused) = (self.connect().await?, false);
                    }
                    _ => return Err(error.into_error().into()),
                },
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.into_body().collect().await?.to_bytes();
        let elapsed = started.elapsed();
        self.put_idle(sender);
        Ok(Answer {
            status,
            elapsed,
            retry_after,
            body,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let connect_error = |source| TransportError::Connect {
            server: self.server,
            source,
        };
        let stream = TcpStream::connect(self.server)
            .await
            .map_err(connect_error)?;
        stream.set_nodelay(true).map_err(connect_error)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // The connection's own error reaches the request it failed through
        // `sender`, so there is nothing more to do with it here.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        if !sender.is_closed() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(sender);
        }
    }
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A server on a loopback port that answers each of the first
    /// `connections` connections' first request with `200 ok` and, if
    /// `close`, then closes it (without saying so in a header, as a server
    /// dropping an idle keep-alive connection does); otherwise it keeps
    /// reading and never answers again. Returns the URL and a count of the
    /// connections accepted.
    async fn server(
        connections: usize,
        close: bool,
    ) -> (ServerUrl, tokio::task::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            for accepted in 0..connections {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return accepted;
                };
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                if !close {
                    tokio::spawn(async move {
                        while stream.read(&mut buffer).await.is_ok_and(|read| read > 0) {}
                    });
                }
            }
            connections
        });
        let url = ServerUrl::parse(&format!("http://{address}")).expect("url");
        (url, task)
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        let (url, accepted) = server(2, true).await;
        let client = HttpClient::new(&url, Duration::from_secs(5))
            .await
            .expect("client");
        for _ in 0..2 {
            let answer = client.send(Outgoing::get("/")).await.expect("an answer");
            assert_eq!((answer.status, &answer.body[..]), (200, &b"ok"[..]));
        }
        assert_eq!(accepted.await.ok(), Some(2));
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout_and_a_closed_port_a_connection_failure() {
        let (url, _accepted) = server(2, false).await;
        let client = HttpClient::new(&url, Duration::from_millis(300))
            .await
            .expect("client");
        assert!(client.send(Outgoing::get("/")).await.is_ok());
        // The connection that timed out is not reused: the next request
        // opens the second one, which answers.
        let silent = client.send(Outgoing::get("/")).await;
        assert_eq!(
            silent.err().map(|error| error.kind()),
            Some(TransportKind::Timeout)
        );
        assert!(client.send(Outgoing::get("/")).await.is_ok());

        let unused = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let closed = ServerUrl::parse(&format!("http://{}", unused.local_addr().expect("address")))
            .expect("url");
        drop(unused);
        let client = HttpClient::new(&closed, Duration::from_secs(5))
            .await
            .expect("client");
        let refused = client.send(Outgoing::get("/")).await;
        assert_eq!(
            refused.err().map(|error| error.kind()),
            Some(TransportKind::Connection)
        );
    }

    fn parsed(url: &str) -> Result<(String, String, u16, String), String> {
        ServerUrl::parse(url)
            .map(|url| (url.base, url.host, url.port, url.prefix))
            .map_err(|error| error.to_string())
    }

    #[test]
    fn base_urls_lose_their_trailing_slash() {
        assert_eq!(
            parsed("http://127.0.0.1:8080/"),
            Ok((
                "http://127.0.0.1:8080".to_owned(),
                "127.0.0.1".to_owned(),
                8080,
                String::new()
            ))
        );
        assert_eq!(
            parsed("http://localhost/prefix/"),
            Ok((
                "http://localhost/prefix".to_owned(),
                "localhost".to_owned(),
                80,
                "/prefix".to_owned()
            ))
        );
        assert_eq!(
            parsed("http://[::1]:9000").map(|(_, host, port, _)| (host, port)),
            Ok(("::1".to_owned(), 9000))
        );
    }

    #[test]
    fn only_plain_http_base_urls_are_taken() {
        for url in [
            "https://127.0.0.1:8080",
            "ftp://127.0.0.1",
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/?x=1",
            "http://user:secret@127.0.0.1:8080",
            "http:///path",
            "",
        ] {
            assert!(ServerUrl::parse(url).is_err(), "{url:?} was accepted");
        }
    }
}
