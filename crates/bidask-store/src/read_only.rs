//! Sessions that a database left read-only.
//!
//! A PostgreSQL session keeps the `default_transaction_read_only` it
//! started with, and one opened on a standby stays on it. So after a
//! database was read-only for a while (an operator's setting, a failover
//! the wrong way round) and is writable again, the sessions the pool
//! opened meanwhile would refuse every write (SQLSTATE 25006) until the
//! pool recycled them: up to its idle timeout of ten minutes, or half an
//! hour for one in steady use, in which registrations got 503. Instead a
//! write refused that way marks the time, and the pool closes each
//! session opened before it on its next checkout: the requests in flight
//! at that moment fail, later ones get new sessions. (sqlx dates a
//! session from when its connection was made, so one that was being made
//! as the mark was set looks newer and is kept; its own first refused
//! write marks again and replaces it.) While the database
//! is still read-only this costs one reconnection per session per refused
//! write; writes there are rare (orders go through the writer, which
//! drops its own read-only session the same way).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When a write last met a read-only session, shared by the store and its
/// pool's checkout.
#[derive(Debug, Clone)]
pub(crate) struct ReadOnlySessions {
    inner: Arc<Marks>,
}

#[derive(Debug)]
struct Marks {
    /// What the mark counts from: made before the pool's first session.
    origin: Instant,
    /// Nanoseconds from `origin` to the last refusal, plus one; zero for
    /// none yet.
    refused: AtomicU64,
}

impl ReadOnlySessions {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Marks {
                origin: Instant::now(),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// Notes `error` if it is a write refused by a read-only session.
    pub(crate) fn note(&self, error: &sqlx::Error) {
        let read_only = matches!(error, sqlx::Error::Database(database)
            if database.code().as_deref() == Some("25006"));
        if read_only {
            self.refused_now();
        }
    }

    fn refused_now(&self) {
        let since = nanos(self.inner.origin.elapsed());
        self.inner
            .refused
            .fetch_max(since.saturating_add(1), Ordering::Relaxed);
    }

    /// Whether a session `age` old was opened at or before the last
    /// refusal, and so may be read-only.
    pub(crate) fn may_hold(&self, age: Duration) -> bool {
        let refused = self.inner.refused.load(Ordering::Relaxed);
        if refused == 0 {
            return false;
        }
        let opened = nanos(self.inner.origin.elapsed().saturating_sub(age));
        opened < refused
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sessions_opened_before_the_last_refusal_are_suspect() {
        let sessions = ReadOnlySessions::new();
        let hour = Duration::from_secs(3600);
        assert!(!sessions.may_hold(hour), "nothing refused yet");

        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        sessions.refused_now();
        // Opened before the refusal, however long the check takes.
        assert!(sessions.may_hold(before.elapsed()));
        assert!(sessions.may_hold(hour));
        std::thread::sleep(Duration::from_millis(2));
        let after = Instant::now();
        // Opened after it.
        assert!(!sessions.may_hold(after.elapsed()));
        assert!(!sessions.may_hold(Duration::ZERO));
    }
}
