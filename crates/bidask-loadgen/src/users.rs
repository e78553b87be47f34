//! Load-test users: names unique to a run, and signing them in before the
//! measured phase. A name that is already taken is logged into instead, so
//! a run can reuse the users of an earlier run by naming its run id.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::{Answer, ApiClient, Credentials, SignedIn, TransportError};
use crate::error::LoadgenError;

/// Longest run id: `lg` + 16 + `-` + a five-digit index stays within the
/// contract's 32 characters for a username.
const MAX_RUN_ID_CHARS: usize = 16;

/// Length of a run id made from the clock: 36^8 ≈ 2.8 × 10^12 values.
const CLOCK_RUN_ID_CHARS: usize = 8;

/// Registration hashes a password on the server; a few at a time keeps
/// setup from looking like an attack or starving the server.
const SIGN_IN_CONCURRENCY: usize = 8;

/// Tries per setup request when the server answers 429: enough to sign in
/// hundreds of traders from one address under the server's default of 5
/// registrations and logins a second per address.
const RATE_LIMITED_ATTEMPTS: u32 = 30;

/// Longest wait between those tries, whatever `Retry-After` says.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(10);

/// What makes this run's usernames differ from every other run's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunId(String);

/// A run id that would make invalid or overlong usernames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a run id is 1 to {MAX_RUN_ID_CHARS} ASCII letters or digits")]
pub struct InvalidRunId;

/// A signed-in trader.
#[derive(Debug, Clone)]
pub struct Session {
    /// For messages.
    pub username: String,
    /// The bearer token its requests carry.
    pub token: String,
}

impl RunId {
    /// A fresh id from the clock and the process id, so two runs started in
    /// the same instant on one machine still differ.
    pub fn from_clock() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let mixed = (nanos as u64) ^ (u64::from(std::process::id()).rotate_left(40));
        let mut value = mixed;
        let mut text = String::with_capacity(CLOCK_RUN_ID_CHARS);
        for _ in 0..CLOCK_RUN_ID_CHARS {
            let digit = (value % 36) as u32;
            text.push(char::from_digit(digit, 36).unwrap_or('0'));
            value /= 36;
        }
        Self(text)
    }

    /// The id as it appears in usernames.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of the run's `index`th user (from 0).
    pub fn username(&self, index: usize) -> String {
        format!("lg{}-{index}", self.0)
    }
}

impl FromStr for RunId {
    type Err = InvalidRunId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = !text.is_empty()
            && text.len() <= MAX_RUN_ID_CHARS
            && text.bytes().all(|byte| byte.is_ascii_alphanumeric());
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidRunId)
        }
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The password of a load-test user: derived from its name, so a later run
/// with the same run id can log in as it.
pub fn password(username: &str) -> String {
    format!("loadgen-{username}")
}

/// Signs in the run's users `0..count`, a few at a time, calling
/// `on_signed_in` after each; the sessions come back in index order. The
/// first failure stops the rest.
pub async fn sign_in_all(
    api: &ApiClient,
    run_id: &RunId,
    count: usize,
    on_signed_in: impl Fn(),
) -> Result<Vec<Session>, LoadgenError> {
    let permits = Arc::new(Semaphore::new(SIGN_IN_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for index in 0..count {
        let api = api.clone();
        let username = run_id.username(index);
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            sign_in(&api, username)
                .await
                .map(|session| (index, session))
        });
    }
    let mut sessions = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        sessions.push(joined??);
        on_signed_in();
    }
    sessions.sort_by_key(|(index, _)| *index);
    Ok(sessions.into_iter().map(|(_, session)| session).collect())
}

/// Registers `username`, or logs in if the name is taken.
pub async fn sign_in(api: &ApiClient, username: String) -> Result<Session, LoadgenError> {
    let password = password(&username);
    let credentials = Credentials {
        username: &username,
        password: &password,
    };
    let step = format!("register {username}");
    let registered = patiently(api, &step, || api.register(&credentials)).await?;
    let (step, answer) = match registered.status {
        200 | 201 => (step, registered),
        409 => {
            let step = format!("log in {username} (the name is taken)");
            let answer = patiently(api, &step, || api.login(&credentials)).await?;
            (step, answer)
        }
        _ => (step, registered),
    };
    if !answer.is_success() {
        return Err(LoadgenError::Rejected {
            step,
            status: answer.status,
            message: answer.error_message(),
        });
    }
    let signed_in: SignedIn = answer
        .json()
        .map_err(|source| LoadgenError::Decode { step, source })?;
    Ok(Session {
        username,
        token: signed_in.token,
    })
}

/// Sends a setup request, waiting out up to a few 429s: setup is not
/// measured, and a server that limits sign-ups per address should still
/// be testable.
async fn patiently<F, Attempt>(
    api: &ApiClient,
    step: &str,
    mut send: F,
) -> Result<Answer, LoadgenError>
where
    F: FnMut() -> Attempt,
    Attempt: Future<Output = Result<Answer, TransportError>>,
{
    let mut attempt = 1;
    loop {
        let answer = send().await.map_err(|failure| LoadgenError::Unreachable {
            step: step.to_owned(),
            url: api.base_url().to_owned(),
            source: failure,
        })?;
        if answer.status != 429 || attempt >= RATE_LIMITED_ATTEMPTS {
            return Ok(answer);
        }
        let wait = answer
            .retry_after
            .unwrap_or(Duration::from_secs(1))
            .min(MAX_RATE_LIMIT_WAIT);
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's username rule.
    fn valid_username(name: &str) -> bool {
        (3..=32).contains(&name.len())
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
    }

    #[test]
    fn usernames_and_passwords_meet_the_contract() {
        let longest: RunId = match "a".repeat(MAX_RUN_ID_CHARS).parse() {
            Ok(run_id) => run_id,
            Err(error) => panic!("{error}"),
        };
        for run_id in [RunId::from_clock(), longest] {
            for index in [0, 9, 10_000, 99_999] {
                let name = run_id.username(index);
                assert!(valid_username(&name), "{name} breaks the username rule");
                assert!(password(&name).len() >= 8);
            }
        }
    }

    #[test]
    fn run_ids_from_the_clock_are_valid() {
        let run_id = RunId::from_clock();
        assert_eq!(run_id.as_str().len(), CLOCK_RUN_ID_CHARS);
        assert_eq!(run_id.as_str().parse::<RunId>(), Ok(run_id.clone()));
    }

    #[test]
    fn run_ids_that_would_break_usernames_are_refused() {
        for text in ["", "a-b", "a b", "é", &"a".repeat(MAX_RUN_ID_CHARS + 1)] {
            assert_eq!(text.parse::<RunId>(), Err(InvalidRunId), "{text:?}");
        }
    }
}
