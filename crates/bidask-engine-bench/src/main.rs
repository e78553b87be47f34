//! `engine-bench` entry point.
//!
//! Placeholder so the crate builds while the peers adapters are written; the
//! real benchmark driver replaces this file.

fn main() {}
