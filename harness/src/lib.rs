//! effbench: measures whether a system or a training method uses at least 50% less energy and
//! data than a stored baseline for the same work at the same quality.

pub mod backend;
pub mod baseline;
#[cfg(feature = "criterion")]
pub mod bench;
pub mod bundle;
pub mod cli;
pub mod error;
pub mod export;
pub mod fsutil;
pub mod gate;
pub mod interrupt;
pub mod meter;
pub mod peak;
pub mod report;
pub mod result;
pub mod run;
pub mod scope;
pub mod sensor;
pub mod stats;
pub mod store;
pub mod system;
pub mod threads;
pub mod units;
pub mod validity;
pub mod verdict;

/// The global allocator of the `effbench` binary, recorded in results.
pub const ALLOCATOR: &str = "mimalloc";
