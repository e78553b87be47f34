//! Rate limits per client address and per user, a stricter one per
//! address on password checks, and one per account on logins, answered
//! with 429 and `Retry-After`.
//!
//! The per-account one bounds guessing from many addresses: each address
//! keeps within its own budget, but every guess at one account draws on
//! that account's. It counts every login, right or wrong, since it must
//! refuse before the password is checked (a guess answered only after the
//! check would still tell the right password). So that someone who keeps
//! sending wrong passwords for an account does not lock its owner out,
//! a client (an address, as below) that signed in to the account, or
//! registered it, within the last 30 days is not held to it: only to its
//! address's own limits. The owner is then refused only from a client it
//! has not used, and only while the flood lasts; tokens already issued
//! keep working. These known clients are kept in memory, the latest
//! eight of each account, so a restart forgets them.
//!
//! All are token buckets (GCRA, from `governor`): the per-second ones let
//! a client burst to twice its rate, then one request per 1/rate seconds;
//! the per-account one takes its whole minute's count at once, then one
//! login per 60/count seconds.
//! An address is the client's IPv4 address or its IPv6 /64, the block a
//! single host is usually given: keyed by the full IPv6 address, one
//! host could take a fresh limit with every address of its block. The
//! address is the TCP peer's, or, behind a trusted reverse proxy, the
//! client's it forwards (see `crate::proxies`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
use super::error::ApiError;
use super::extract::ClientAddress;
use crate::auth::password::Caller;

/// The limiters; a rate of 0 turns one off.
pub struct RateLimits {
    per_user: Option<DefaultKeyedRateLimiter<i64>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    password_checks: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Keyed by the folded username, known or not: a name nobody has is
    /// limited like any other, so the limit does not tell which exist.
    logins_per_account: Option<DefaultKeyedRateLimiter<String>>,
    /// The clients that signed in to each account (by folded username)
    /// lately; those within [`KNOWN_FOR`] are not held to its limit.
    known_clients: Mutex<HashMap<String, KnownClients>>,
    clock: DefaultClock,
}

/// How long a client that signed in to an account stays known to it.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 86_400);
/// The clients one account keeps, the least recent giving way. Per
/// account, not in all: a bound on the whole would let anyone who
/// registers accounts enough (each only an Argon2 hash within its
/// address's limit) fill it, and no owner's client would be kept after.
/// Memory grows with the accounts signed in to within [`KNOWN_FOR`],
/// about 100 bytes a client, as the database does with accounts.
const CLIENTS_PER_ACCOUNT: usize = 8;

/// The clients of one account, each with when it last signed in.
#[derive(Debug, Default)]
struct KnownClients(Vec<(IpAddr, Instant)>);

impl KnownClients {
    fn knows(&self, client: IpAddr) -> bool {
        self.0
            .iter()
            .any(|(known, at)| *known == client && at.elapsed() < KNOWN_FOR)
    }

    fn signed_in(&mut self, client: IpAddr) {
        let now = Instant::now();
        if let Some(entry) = self.0.iter_mut().find(|(known, _)| *known == client) {
            entry.1 = now;
        } else if self.0.len() < CLIENTS_PER_ACCOUNT {
            self.0.push((client, now));
        } else if let Some(oldest) = self.0.iter_mut().min_by_key(|(_, at)| *at) {
            *oldest = (client, now);
        }
    }
}

impl RateLimits {
    /// `user_rate` and `address_rate` requests per second,
    /// `password_rate` registrations and logins per second per address,
    /// and `account_logins` logins per minute per account.
    pub fn new(
        user_rate: u32,
        address_rate: u32,
        password_rate: u32,
        account_logins: u32,
    ) -> Arc<Self> {
        let limits = Arc::new(Self {
            per_user: quota(user_rate).map(RateLimiter::keyed),
            per_address: quota(address_rate).map(RateLimiter::keyed),
            password_checks: quota(password_rate).map(RateLimiter::keyed),
            logins_per_account: per_minute(account_logins).map(RateLimiter::keyed),
            known_clients: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        });
        // Forget idle clients now and then, so the maps stay small.
        let weak = Arc::downgrade(&limits);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(60));
            loop {
                interval.tick().await;
                let Some(limits) = weak.upgrade() else { break };
                if let Some(limiter) = &limits.per_user {
                    limiter.retain_recent();
                }
                if let Some(limiter) = &limits.per_address {
                    limiter.retain_recent();
                }
                if let Some(limiter) = &limits.password_checks {
                    limiter.retain_recent();
                }
                if let Some(limiter) = &limits.logins_per_account {
                    limiter.retain_recent();
                    // Names are the clients' choice: give back what a
                    // flood of them took.
                    limiter.shrink_to_fit();
                }
                limits
                    .known_clients
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|_, clients| {
                        clients.0.retain(|(_, at)| at.elapsed() < KNOWN_FOR);
                        !clients.0.is_empty()
                    });
            }
        });
        limits
    }

    /// Counts a request of user `id`.
    pub fn check_user(&self, id: i64) -> Result<(), ApiError> {
        self.check(self.per_user.as_ref(), &id)
    }

    /// Counts a registration or login from `address`.
    pub fn check_password_attempt(&self, address: IpAddr) -> Result<(), ApiError> {
        self.check(self.password_checks.as_ref(), &client(address))
    }

    /// Counts a login from `address` to the account named
    /// `folded_username`, unless that client signed in to it lately; says
    /// which it was, for the hashing slot the login may take.
    pub fn check_login(&self, folded_username: &str, address: IpAddr) -> Result<Caller, ApiError> {
        let Some(limiter) = &self.logins_per_account else {
            return Ok(Caller::Anyone);
        };
        let known = self
            .known_clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(folded_username)
            .is_some_and(|clients| clients.knows(client(address)));
        if known {
            return Ok(Caller::Known);
        }
        self.check(Some(limiter), &folded_username.to_owned())
            .map(|()| Caller::Anyone)
    }

    /// Notes that `address` signed in to, or registered, the account named
    /// `folded_username`: from there its logins are not held to the
    /// account's limit.
    pub fn signed_in(&self, folded_username: String, address: IpAddr) {
        if self.logins_per_account.is_none() {
            return;
        }
        self.known_clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(folded_username)
            .or_default()
            .signed_in(client(address));
    }

    fn check_address(&self, address: IpAddr) -> Result<(), ApiError> {
        self.check(self.per_address.as_ref(), &client(address))
    }

    fn check<K: Clone + Eq + std::hash::Hash>(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<K>>,
        key: &K,
    ) -> Result<(), ApiError> {
        match limiter {
            Some(limiter) => limiter
                .check_key(key)
                .map_err(|not_until| self.refused(not_until.wait_time_from(self.clock.now()))),
            None => Ok(()),
        }
    }

    fn refused(&self, wait: Duration) -> ApiError {
        metrics::counter!("bidask_requests_rate_limited_total").increment(1);
        ApiError::RateLimited {
            retry_after: whole_seconds(wait),
        }
    }
}

/// `Retry-After` in whole seconds, rounded up: a client that waits as long
/// as it is told must be let in, not refused again for the fraction cut
/// off (and 0 would mean at once).
fn whole_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// The key of a client address: IPv4 as it is, IPv6 by its /64 (an
/// IPv4-mapped IPv6 address is its IPv4 one).
pub(crate) fn client(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                v6.to_bits() & !((1u128 << 64) - 1),
            )),
        },
    }
}

/// `rate` per second with bursts of twice that; none for 0.
fn quota(rate: u32) -> Option<Quota> {
    NonZeroU32::new(rate).map(|rate| {
        let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        Quota::per_second(rate).allow_burst(burst)
    })
}

/// `count` a minute, all of them at once if need be (a quota's burst is
/// its count); none for 0.
fn per_minute(count: u32) -> Option<Quota> {
    NonZeroU32::new(count).map(Quota::per_minute)
}

/// The per-address limit, as a middleware of every route: the feed's
/// upgrade, the page and the operational endpoints cost the server as much
/// as the API does.
pub async fn limit_address(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    request: Request,
    next: Next,
) -> Response {
    match state.limits.check_address(address) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    use super::{RateLimits, client, whole_seconds};

    #[test]
    fn retry_after_rounds_up_to_a_whole_second_of_at_least_one() {
        assert_eq!(whole_seconds(Duration::from_millis(4_900)), 5);
        assert_eq!(whole_seconds(Duration::from_millis(5_001)), 6);
        assert_eq!(whole_seconds(Duration::from_secs(5)), 5);
        assert_eq!(whole_seconds(Duration::from_millis(20)), 1);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn an_ipv6_host_is_its_64_block_and_ipv4_is_itself() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(client(v4), v4);
        let host = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, last));
        assert_eq!(client(host(1)), client(host(0xffff)));
        assert_eq!(
            client(host(1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 0))
        );
        let neighbour = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert_ne!(client(host(1)), client(neighbour));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(client(mapped), v4);
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    /// Whether `address` may log in to `account` twenty times in a row:
    /// past the account's ten a minute only if it is known to it.
    fn known(limits: &RateLimits, account: &str, address: IpAddr) -> bool {
        (0..20).all(|_| limits.check_login(account, address).is_ok())
    }

    #[tokio::test]
    async fn registrations_by_the_hundred_thousand_do_not_crowd_out_an_owner() {
        let limits = RateLimits::new(0, 0, 0, 10);
        for index in 0..100_000 {
            limits.signed_in(format!("sock{index}"), v4(1));
        }
        limits.signed_in("owner".to_owned(), v4(2));
        assert!(
            known(&limits, "owner", v4(2)),
            "the owner's client was not kept"
        );
        assert!(!known(&limits, "owner", v4(3)), "a stranger passed");
    }

    #[tokio::test]
    async fn an_account_keeps_its_latest_clients() {
        let limits = RateLimits::new(0, 0, 0, 10);
        for last in 1..=9 {
            limits.signed_in("owner".to_owned(), v4(last));
        }
        // The ninth pushed out the first, the least recent.
        assert!(!known(&limits, "owner", v4(1)));
        assert!((2..=9).all(|last| known(&limits, "owner", v4(last))));
    }
}
