//! The REST API end to end, each scenario against SQLite and PostgreSQL.

mod bad_input;
mod catalog;
mod idempotency;
mod limits;
mod matching;
mod ops;
mod orders;
mod postgres_tls;
mod readme;
mod restart;
mod tokens;
mod trading;
