//! The accept loop: HTTP on every accepted connection, until shutdown.
//!
//! This is `axum::serve` with what it does not let us set: a timer for
//! hyper. Without one, hyper keeps no time at all, so a client could take
//! for ever to send a request's head, or leave a keep-alive connection
//! idle for ever, each holding one of the process's 20,000 file
//! descriptors until `accept` fails for everyone. With it, a connection
//! that has not sent a whole request head within `header_timeout` of
//! opening, or of its last response, is closed. The bound ends with the
//! head: bodies and handlers have the request's own time bound, and an
//! upgraded WebSocket is out of hyper's hands.
//!
//! Connections speak HTTP/1.1 only, through hyper's HTTP/1 builder:
//! hyper-util's automatic one tells HTTP/2 apart by reading the first
//! bytes, and that read has no timer, so a silent client would never meet
//! the bound. Browsers use HTTP/2 only over TLS, which a proxy in front
//! would end.
//!
//! Two more bounds keep clients from holding the descriptors: a write
//! that makes no progress for the same time fails and closes its
//! connection (`write_bound.rs`: a client that never reads its
//! response), and the connections before their upgrade to a WebSocket are
//! bounded in all and per client address (see [`crate::connections`]);
//! one past either is answered 503 and closed.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::add_extension::AddExtension;

use crate::connections::Holders;
use crate::http::limits::client;
use crate::proxies::TrustedProxies;
use crate::write_bound::{Bounded, WriteBound};

/// What the accept loop bounds each connection by.
#[derive(Debug, Clone)]
pub struct ConnectionBounds {
    /// Time to send a request's head, from opening or from the last
    /// response, and the longest a write may make no progress.
    pub timeout: Duration,
    /// Connections one client address may hold before their upgrade; 0
    /// for no bound.
    pub per_address: usize,
    /// Connections all clients may hold before their upgrade; 0 for no
    /// bound.
    pub room: usize,
    /// Peers counted in all only, not by address: every client behind a
    /// proxy shares its address.
    pub proxies: TrustedProxies,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting, lets each connection finish the request it is on, and
/// returns when they are all closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    bounds: ConnectionBounds,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.timeout);
    let holders = Holders::new(bounds.per_address, bounds.room);
    // Connections watch `stop` for the signal and hold `open` until they
    // are closed; shutdown waits for the last `open` to be dropped.
    let (stop, stopping) = watch::channel(());
    let (open, all_closed) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    pause_after(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let address =
            (!bounds.proxies.trusts(remote.ip().to_canonical())).then(|| client(remote.ip()));
        let held = match holders.take(address) {
            Ok(held) => held,
            Err(refusal) => {
                tracing::debug!(%remote, ?refusal, "connection refused");
                holders.refuse(stream, refusal);
                continue;
            }
        };
        let bound = WriteBound::default();
        let service = TowerToHyperService::new(AddExtension::new(
            AddExtension::new(router.clone(), ConnectInfo(remote)),
            bound.clone(),
        ));
        let stream = Bounded::new(stream, bounds.timeout, bound);
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let (mut stopping, closed) = (stopping.clone(), all_closed.clone());
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::trace!(%error, %remote, "connection ended with an error");
            }
            // Closed, or a WebSocket now, which the gateway counts.
            drop(held);
            drop(closed);
        });
    }
    drop(listener);
    let _ = stop.send(());
    drop(all_closed);
    open.closed().await;
}

/// After a failed `accept`: a connection that went away before it was
/// taken is nothing; anything else (out of file descriptors, mostly) is
/// logged and waited out for a second, as hyper and axum do, instead of
/// spinning on it.
async fn pause_after(error: &io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept connections; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
