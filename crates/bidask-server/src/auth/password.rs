//! Argon2id password hashes.
//!
//! Hashing takes tens of milliseconds of CPU on purpose, so it runs on the
//! blocking pool, never on the threads that serve requests.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

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

/// Argon2 takes 19 MiB and tens of milliseconds of one core per hash; a
/// burst of registrations or logins hashing all at once would take memory
/// without bound and starve everything else. This many at a time.
static HASHING: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    Arc::new(Semaphore::new(cores))
});

/// The PHC string of `password` with a fresh random salt.
pub async fn hash(password: Password) -> Result<String, PasswordError> {
    // The permit moves into the blocking job: a request that is dropped
    // while it hashes does not free a slot the job still uses.
    let permit = tokio::time::timeout(WAIT, Arc::clone(&HASHING).acquire_owned())
        .await
        .map_err(|_| PasswordError::Busy)??;
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
pub async fn verify(password: Password, stored: String) -> Result<bool, PasswordError> {
    let permit = tokio::time::timeout(WAIT, Arc::clone(&HASHING).acquire_owned())
        .await
        .map_err(|_| PasswordError::Busy)??;
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
        assert!(verify(password, stored.clone()).await.expect("runs"));
        let wrong = Password::parse("battery staple").expect("valid");
        assert!(!verify(wrong.clone(), stored).await.expect("runs"));
        assert!(!verify(wrong, "not a hash".to_owned()).await.expect("runs"));
    }
}
