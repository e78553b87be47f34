//! Rate limits per client address and per user, and a stricter one per
//! address on password checks, answered with 429 and `Retry-After`.
//!
//! Both are token buckets (GCRA, from `governor`): a client may burst to
//! twice its per-second rate, then gets one request per 1/rate seconds.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
use super::error::ApiError;

/// The limiters; a rate of 0 turns one off.
pub struct RateLimits {
    per_user: Option<DefaultKeyedRateLimiter<i64>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    password_checks: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl RateLimits {
    /// `user_rate` and `address_rate` requests per second, and
    /// `password_rate` registrations and logins per second per address.
    pub fn new(user_rate: u32, address_rate: u32, password_rate: u32) -> Arc<Self> {
        let limits = Arc::new(Self {
            per_user: quota(user_rate).map(RateLimiter::keyed),
            per_address: quota(address_rate).map(RateLimiter::keyed),
            password_checks: quota(password_rate).map(RateLimiter::keyed),
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
            }
        });
        limits
    }

    /// Counts a request of user `id`.
    pub fn check_user(&self, id: i64) -> Result<(), ApiError> {
        match &self.per_user {
            Some(limiter) => limiter
                .check_key(&id)
                .map_err(|not_until| self.refused(not_until.wait_time_from(self.clock.now()))),
            None => Ok(()),
        }
    }

    /// Counts a registration or login from `address`.
    pub fn check_password_attempt(&self, address: IpAddr) -> Result<(), ApiError> {
        self.check_keyed(self.password_checks.as_ref(), address)
    }

    fn check_address(&self, address: IpAddr) -> Result<(), ApiError> {
        self.check_keyed(self.per_address.as_ref(), address)
    }

    fn check_keyed(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<IpAddr>>,
        address: IpAddr,
    ) -> Result<(), ApiError> {
        match limiter {
            Some(limiter) => limiter
                .check_key(&address)
                .map_err(|not_until| self.refused(not_until.wait_time_from(self.clock.now()))),
            None => Ok(()),
        }
    }

    fn refused(&self, wait: Duration) -> ApiError {
        metrics::counter!("bidask_requests_rate_limited_total").increment(1);
        ApiError::RateLimited {
            retry_after: wait.as_secs().max(1),
        }
    }
}

/// `rate` per second with bursts of twice that; none for 0.
fn quota(rate: u32) -> Option<Quota> {
    NonZeroU32::new(rate).map(|rate| {
        let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        Quota::per_second(rate).allow_burst(burst)
    })
}

/// The per-address limit, as a middleware of the API routes.
pub async fn limit_address(
    State(state): State<AppState>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match state.limits.check_address(address.ip()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}
