//! A bound on how long a connection's writes may stall.
//!
//! hyper bounds the time to read a request's head, and the handlers bound
//! their own time, but nothing bounds writing the response: a client that
//! asks for a large one (the OpenAPI document, a deep book) and never
//! reads leaves the write pending for ever, TCP's zero-window probes
//! keeping the socket alive, and a few thousand such connections take
//! every file descriptor the process has. So a write that makes no
//! progress for the bound fails, and hyper closes the connection.
//!
//! Once the connection is a WebSocket the bound is lifted: the gateway
//! has its own, on time without a whole message written, which closes
//! with a status the client can read. The gateway lifts it through the
//! [`WriteBound`] the accept loop puts in the request's extensions; an
//! adapter of the ecosystem (tokio-io-timeout) has no way to do that.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The handle that lifts one connection's bound.
#[derive(Debug, Clone, Default)]
pub struct WriteBound {
    lifted: Arc<AtomicBool>,
}

impl WriteBound {
    /// Lets the connection's writes stall as long as they stall.
    pub fn lift(&self) {
        self.lifted.store(true, Ordering::Relaxed);
    }

    fn is_lifted(&self) -> bool {
        self.lifted.load(Ordering::Relaxed)
    }
}

/// `inner`, whose writes fail with `TimedOut` after `limit` without
/// progress, until its [`WriteBound`] is lifted.
#[derive(Debug)]
pub struct Bounded<S> {
    inner: S,
    limit: Duration,
    bound: WriteBound,
    /// When the pending write fails; set when a write first stalls.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> Bounded<S> {
    pub fn new(inner: S, limit: Duration, bound: WriteBound) -> Self {
        Self {
            inner,
            limit,
            bound,
            deadline: None,
        }
    }

    /// What a write that did not finish at once comes to: still pending,
    /// or failed past the deadline.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.bound.is_lifted() {
            self.deadline = None;
            return Poll::Pending;
        }
        let limit = self.limit;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(deadline.as_mut().poll(cx));
        metrics::counter!("bidask_http_timeouts_total", "waiting_for" => "client_read")
            .increment(1);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read nothing of the response for the request time bound",
        )))
    }

    /// A write's outcome, clearing the deadline when it made progress.
    fn wrote<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(outcome) => {
                self.deadline = None;
                Poll::Ready(outcome)
            }
            Poll::Pending => self.stalled(cx),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const BOUND: Duration = Duration::from_secs(1);

    /// A pipe with a small buffer, so that writes stall once it is full,
    /// and a bounded end of it.
    fn pipe() -> (
        Bounded<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
        WriteBound,
    ) {
        let (ours, theirs) = tokio::io::duplex(64);
        let bound = WriteBound::default();
        (Bounded::new(ours, BOUND, bound.clone()), theirs, bound)
    }

    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_bound() {
        let (mut stream, _theirs, _) = pipe();
        let error = stream
            .write_all(&[0; 1024])
            .await
            .expect_err("the write stalled for good");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_slow_reader_is_not_cut_off() {
        let (mut stream, mut theirs, _) = pipe();
        // 64 bytes every 100 ms: each stall far shorter than the bound,
        // the whole write longer.
        let reader = tokio::spawn(async move {
            let mut read = 0;
            let mut buf = [0; 64];
            while read < 1024 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                read += theirs.read(&mut buf).await.expect("a read");
            }
        });
        stream
            .write_all(&[0; 1024])
            .await
            .expect("the write went through");
        reader.await.expect("the reader");
    }

    #[tokio::test]
    async fn a_lifted_bound_lets_a_write_wait() {
        let (mut stream, mut theirs, bound) = pipe();
        bound.lift();
        let reader = tokio::spawn(async move {
            tokio::time::sleep(BOUND + BOUND / 2).await;
            let mut all = Vec::new();
            theirs.read_to_end(&mut all).await.expect("a read");
            all.len()
        });
        stream
            .write_all(&[0; 1024])
            .await
            .expect("the write went through");
        drop(stream);
        assert_eq!(reader.await.expect("the reader"), 1024);
    }
}
