//! The bidask server: REST API, JWT auth and per-product matching actors
//! over PostgreSQL or an embedded SQLite file.
//!
//! Read in this order:
//! - [`config`] and [`cli`]: the command line and environment, with
//!   [`origin`] and [`proxies`], the settings that are lists to parse;
//! - [`open_files`]: the open-file limit, raised at start, which bounds
//!   the connections;
//! - [`startup`]: building the application (bind first, run later) and
//!   shutting it down in order, and [`serve`], the accept loop with
//!   hyper's timers, with [`connections`], the bounds on how many it
//!   holds, and `write_bound`, the bound on a stalled write;
//! - [`catalog`]: products and their sizes in memory;
//! - [`market`]: one actor per product, the group-commit writer, the
//!   committed book replica;
//! - [`feed`] and [`bus`]: the events and where they go after commit;
//! - [`gateway`]: the WebSocket feed that streams them to clients;
//! - [`auth`]: passwords and tokens;
//! - [`http`]: the routes, the request parsing and the one error type;
//! - [`views`] and [`clock`]: the JSON shapes and times of the contract;
//! - [`housekeeping`]: pruning old feed events and idempotency keys;
//! - `recorder`: the Prometheus recorder behind `/metrics`;
//! - [`demo`]: the sample catalog of `--demo`;
//! - [`web`]: the product page served at `/`.
//!
//! The invariant everything here keeps: nothing is published or answered
//! before it is committed, and no book runs ahead of what a restart would
//! rebuild from the database.

pub mod auth;
pub mod bus;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connections;
pub mod demo;
pub mod feed;
pub mod gateway;
pub mod housekeeping;
pub mod http;
pub mod market;
pub mod open_files;
pub mod origin;
pub mod proxies;
mod recorder;
pub mod serve;
pub mod startup;
pub mod views;
pub mod web;
mod write_bound;
