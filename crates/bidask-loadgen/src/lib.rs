//! Library side of `bidask-loadgen`: load scenarios that drive a running
//! bidask server over its public HTTP contract, and the measuring and
//! reporting they share, so the binary and integration tests run the same
//! code.
//!
//! Read [`orders`] first (the REST trading scenario and its [`run`]), then
//! what it is built from: [`api`] (the requests and their JSON), [`catalog`]
//! (the markets to trade on), [`users`] (signing traders in), [`price`]
//! (prices on a product's tick), [`report`] (histograms and the summary),
//! [`progress`], [`args`] and [`error`].
//!
//! The invariant the crate keeps: the measured phase is bounded in time
//! (`--duration` plus at most one `--timeout`) and in requests (`--requests`),
//! and a failed request there is counted, never fatal; only setup fails a run.

pub mod api;
pub mod args;
pub mod catalog;
pub mod error;
pub mod orders;
pub mod price;
pub mod progress;
pub mod report;
pub mod users;

pub use error::LoadgenError;
pub use orders::{OrdersConfig, run};
pub use report::OrdersReport;
