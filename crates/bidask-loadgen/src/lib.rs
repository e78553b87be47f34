//! Library side of `bidask-loadgen`: load scenarios that drive a running
//! bidask server over its public HTTP and WebSocket contract, and the
//! measuring and reporting they share, so the binary and integration tests
//! run the same code.
//!
//! Read [`orders`] first (the REST trading scenario and its [`run`]), then
//! what it is built from: [`api`] (the requests and their JSON), [`catalog`]
//! (the markets to trade on), [`http`] (the keep-alive connections), [`users`] (signing traders in), [`price`]
//! (prices on a product's tick), [`schedule`] (the open-loop timetable of
//! `--rate`), [`report`] (histograms and the summary), [`progress`],
//! [`args`] and [`error`].
//!
//! Then [`fanout`] (many WebSocket subscribers of one product and its
//! [`run_fanout`]) and its parts: [`publisher`] (the events, as REST orders
//! or as messages for the Node.js baseline), [`feed_client`] (one
//! subscriber), [`feed_message`] (a frame's `seq` and `ts`, read in
//! place), [`clock`] (RFC 3339 times), [`delivery`] (what the subscribers
//! record together), [`procfs`] (the server's memory and CPU) and
//! [`fanout_report`].
//!
//! The invariant the crate keeps: the measured phase is bounded in time
//! (`--duration` plus at most one `--timeout`, and for `fanout` a
//! `--drain`) and in requests (`--requests`), and a failed request or
//! connection there is counted, never fatal; only setup fails a run.

pub mod api;
pub mod args;
pub mod catalog;
pub mod clock;
pub mod delivery;
pub mod error;
pub mod fanout;
pub mod fanout_report;
pub mod feed_client;
pub mod feed_message;
pub mod http;
pub mod orders;
pub mod price;
pub mod procfs;
pub mod progress;
pub mod publisher;
pub mod report;
pub mod schedule;
pub mod users;

pub use error::LoadgenError;
pub use fanout::{FanoutConfig, Target, run_fanout};
pub use fanout_report::FanoutReport;
pub use orders::{OrdersConfig, run};
pub use report::{OrdersReport, RunReport};
