//! Library side of `engine-bench`: deterministic order streams and adapters
//! that replay them through published order-book crates (the peers), so the
//! `engine-bench` binary and the integration tests share one implementation.

pub mod peers;
pub mod workload;
