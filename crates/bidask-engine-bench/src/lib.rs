//! Library side of `engine-bench`: deterministic order streams, the engine
//! and the published order-book crates (the peers) that replay them, and
//! the clocks that measure them, shared by the binary and its tests.
//!
//! Read [`workload`] (what a stream is and how it is generated), then
//! [`replay`] (bidask-engine driven by a stream), [`peers`], [`measure`].
//!
//! The invariant the crate keeps: a stream is a pure function of its seed
//! and settings, and every book that replays it (ours and each peer) has
//! its final state compared with the reference model's, reported beside
//! its time, so a fast wrong answer shows as wrong.

pub mod measure;
pub mod peers;
pub mod replay;
pub mod workload;
