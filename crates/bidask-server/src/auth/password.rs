//! Argon2id password hashes.
//!
//! Hashing takes tens of milliseconds of CPU on purpose, so it runs on the
//! blocking pool, never on the threads that serve requests.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Password;

/// How long a request waits for a hashing slot before it is turned away.
const WAIT: Duration = Duration::from_secs(5);

/// Hashing or verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Every slot stayed busy for longer than `WAIT`.
    #[error("password hashing is busy")]
    Busy,
    /// The hasher failed (e.g. no randomness for the salt).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task did not finish.
    #[error("password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The limit on concurrent hashing was closed (never, in practice).
    #[error("password hashing is shut down")]
    Closed(#[from] tokio::sync::AcquireError),
}

/// Who asks for a hash, for the slots it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A registration, a login from a client the account has not seen,
    /// the admin's check at start.
    Anyone,
    /// A login from a client that signed in to the account lately (see
    /// `http::limits`). It may also take a slot of its own: logins to
    /// names nobody has, from more addresses than their limits can hold,
    /// can keep every other slot busy, and an owner would wait out the
    /// flood with everyone else.
    Known,
}

/// The hashing slots. Argon2 takes 19 MiB and tens of milliseconds of
/// one core per hash; a burst of registrations or logins hashing all at
/// once would take memory without bound and starve everything else. So
/// one slot a core for anyone, and one more for known clients only.
#[derive(Debug)]
struct Slots {
    open: Arc<Semaphore>,
    reserved: Arc<Semaphore>,
}

impl Slots {
    fn new(open: usize, reserved: usize) -> Self {
        Self {
            open: Arc::new(Semaphore::new(open)),
            reserved: Arc::new(Semaphore::new(reserved)),
        }
    }

    /// A slot for `caller`, waiting at most `wait`. The permit moves into
    /// the blocking job: a request that is dropped while it hashes does
    /// not free a slot the job still uses.
    async fn take(
        &self,
        caller: Caller,
        wait: Duration,
    ) -> Result<OwnedSemaphorePermit, PasswordError> {
        let open = Arc::clone(&self.open).acquire_owned();
        let permit = match caller {
            Caller::Anyone => tokio::time::timeout(wait, open).await,
            Caller::Known => {
                let reserved = Arc::clone(&self.reserved).acquire_owned();
                tokio::time::timeout(wait, async {
                    tokio::select! {
                        biased;
                        permit = open => permit,
                        permit = reserved => permit,
                    }
                })
                .await
            }
        };
        Ok(permit.map_err(|_| PasswordError::Busy)??)
    }
}

static HASHING: LazyLock<Slots> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    Slots::new(cores, 1)
});

/// The PHC string of `password` with a fresh random salt.
pub async fn hash(password: Password) -> Result<String, PasswordError> {
    let permit = HASHING.take(Caller::Anyone, WAIT).await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| PasswordError::Hash(error.to_string()))
    })
    .await?
}

/// Whether `password` matches the stored PHC string. A malformed stored
/// hash does not match anything.
pub async fn verify(
    password: Password,
    stored: String,
    caller: Caller,
) -> Result<bool, PasswordError> {
    let permit = HASHING.take(caller, WAIT).await?;
    Ok(tokio::task::spawn_blocking(move || {
        let _permit = permit;
        PasswordHash::new(&stored).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let password = Password::parse("correct horse").expect("valid");
        let stored = hash(password.clone()).await.expect("hashes");
        assert!(stored.starts_with("$argon2id$"));
        assert!(
            verify(password, stored.clone(), Caller::Anyone)
                .await
                .expect("runs")
        );
        let wrong = Password::parse("battery staple").expect("valid");
        assert!(
            !verify(wrong.clone(), stored, Caller::Known)
                .await
                .expect("runs")
        );
        assert!(
            !verify(wrong, "not a hash".to_owned(), Caller::Anyone)
                .await
                .expect("runs")
        );
    }

    #[tokio::test]
    async fn a_known_client_gets_a_slot_while_strangers_hold_every_other() {
        let slots = Slots::new(2, 1);
        let wait = Duration::from_millis(50);
        let _held = (
            slots.take(Caller::Anyone, wait).await.expect("a slot"),
            slots.take(Caller::Anyone, wait).await.expect("a slot"),
        );
        assert!(matches!(
            slots.take(Caller::Anyone, wait).await,
            Err(PasswordError::Busy)
        ));
        let known = slots
            .take(Caller::Known, wait)
            .await
            .expect("the reserved slot");
        assert!(matches!(
            slots.take(Caller::Known, wait).await,
            Err(PasswordError::Busy)
        ));
        drop(known);
        let _again = slots
            .take(Caller::Known, wait)
            .await
            .expect("the reserved slot again");
    }

    #[tokio::test]
    async fn a_known_client_takes_an_open_slot_first() {
        let slots = Slots::new(1, 1);
        let wait = Duration::from_millis(50);
        let _known = slots.take(Caller::Known, wait).await.expect("a slot");
        // The open one was taken, so the reserved one is still free.
        assert!(matches!(
            slots.take(Caller::Anyone, wait).await,
            Err(PasswordError::Busy)
        ));
        let _reserved = slots
            .take(Caller::Known, wait)
            .await
            .expect("the reserved slot");
    }
}
