//! effbench's reference workloads, written with candle-core / candle-nn.
//!
//! This crate knows nothing of energy: it reads data, builds models from a seeded RNG, trains
//! them with one shared loop until a quality target is met, and runs inference over a fixed
//! query set. The harness (`effbench`) wraps these calls in measured windows.
//!
//! Layout: `data/` (readers for the shipped data), `layers` (layers built from candle
//! primitives, seeded), one file per model (`mlp`, `cnn`, `charlm`, `autoencoder`), `task`
//! (what a batch, a loss and an evaluation are for each kind of data), `recipe` (TOML training
//! recipes), `train` (the one training loop), `infer` (inference passes), `workload` (the
//! registry of workload ids).

pub mod adamw;
pub mod autoencoder;
pub mod charlm;
pub mod cnn;
pub mod data;
pub mod error;
pub mod fused;
pub mod infer;
pub mod layers;
pub mod metrics;
pub mod mlp;
pub mod onnx;
pub mod recipe;
pub mod rng;
pub mod served;
pub mod task;
pub mod train;
pub mod workload;

pub use error::{ModelError, Result};
pub use recipe::Recipe;
pub use workload::{Kind, WorkloadSpec, WORKLOADS};
