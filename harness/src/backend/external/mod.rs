//! `--backend external:PATH.toml`: a vendor's runner, started as a child process and driven over
//! Runner Protocol v1 (docs/runner-protocol.md). effbench keeps the clock, the sensors and the
//! answers: the runner only computes. Only inference workloads run through a runner in v1.
//!
//! - [`config`]: the runner TOML.
//! - [`proto`]: the messages, as serde types.
//! - [`process`]: the child process, its reader/writer threads, the watchdog, stopping it.
//! - [`session`]: one workload's conversation (hello, load, samples, passes, stats, shutdown) and
//!   its work directory (model, query inputs, outputs).
//! - [`check`]: are the outputs right (f32 tolerance, or quality kept at a lower precision).
//! - [`telemetry`]: the runner's power samples as a `vendor-reported` energy source.

pub mod check;
pub mod config;
pub mod process;
pub mod proto;
pub mod session;
pub mod telemetry;
pub mod train;

pub use config::RunnerConfig;
pub use session::RunnerSession;

/// Anything that went wrong with a runner. The message names the runner, says what happened,
/// quotes the last message each way and the tail of the runner's stderr.
#[derive(Debug, thiserror::Error)]
#[error(
    "runner {runner:?}: {what}\n  last message sent: {last_sent}\n  last message received: {last_received}{}",
    if stderr_tail.is_empty() { String::new() } else { format!("\n  runner stderr (tail):\n    {}", stderr_tail.replace('\n', "\n    ")) }
)]
pub struct RunnerError {
    pub runner: String,
    pub what: String,
    pub last_sent: String,
    pub last_received: String,
    pub stderr_tail: String,
}

impl RunnerError {
    pub fn new(runner: &str, what: String, last_sent: &str, last_received: &str, stderr_tail: String) -> Self {
        RunnerError {
            runner: runner.to_string(),
            what,
            last_sent: last_sent.to_string(),
            last_received: last_received.to_string(),
            stderr_tail,
        }
    }
}
