//! Library side of `engine-bench`: deterministic order streams, the engine
//! and the published order-book crates (the peers) that replay them, and
//! the clocks that measure them, shared by the binary and its tests.
//!
//! Read [`workload`] (what a stream is and how it is generated), then
//! [`replay`] (bidask-engine driven by a stream), [`peers`], [`measure`].

pub mod measure;
pub mod peers;
pub mod replay;
pub mod workload;
