//! Submission bundles: what a vendor hands in (`effbench submit`) and the checker a testbed
//! runs on it (`effbench check`), which re-derives every number it can instead of re-reading
//! it (design.md, "Trust").
//!
//! Layout, modelled on MLPerf's `<division>/<submitter>/results/<system>/<benchmark>/run_N`:
//!
//! ```text
//! BUNDLE/manifest.json                      schema effbench.bundle/1: software, every file's SHA-256
//! BUNDLE/manifest.json.sig                  with --sign: Ed25519 over manifest.json's exact bytes
//! BUNDLE/<submitter>/<system>/system.json   the system description
//! BUNDLE/<submitter>/<system>/<workload>/run_<k>/
//!     <workload>.json          the result file, byte for byte
//!     <workload>.trace.csv     the meter's trace (every repeat's window, labelled repeat-<seed>)
//!     <workload>.wall.csv      the wall meter's samples (--meter ptd://), where present
//!     <workload>.runner.log    the runner's stderr (--backend external:); required for
//!                              training through a runner
//!     <workload>.runner.toml   the runner TOML the run was given, byte for byte; required
//!                              where the result records backend.runner_config_sha256 (its
//!                              SHA-256 is re-derived, check/refs.rs)
//!     recipe.toml              the training recipe the result names (its SHA-256 is re-derived)
//!     export/<workload>/       for runner inference runs: the ONNX model, inputs and reference
//!                              outputs (a runner training run trains its own model: no export;
//!                              its `runner_train` counts are re-derived instead, check/train.rs)
//! ```
//!
//! A bundle is hostile input ([`fsafe`], [`archive`]): no path outside it is followed, links
//! are refused, every read is bounded, an archive is unpacked only into a fresh temporary
//! directory within [`archive::Limits`], and nothing from the bundle is ever run.

pub mod archive;
pub mod check;
pub mod fsafe;
pub mod manifest;
pub mod sign;
pub mod submit;

pub use check::{check, CheckOptions, CheckReport, Feedback, FeedbackRow, Finding, Status};
pub use submit::{submit, SubmitOptions, Submitted};

use std::path::PathBuf;

/// Why a bundle could not be made, or could not be read at all. A bundle that can be read but
/// fails a check is not an error: it is a [`CheckReport`] with failed findings (exit 4).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Bad arguments or inputs to `submit` / `keygen` (exit 2).
    #[error("{0}")]
    Input(String),
    /// The bundle cannot be read as one: not a directory or `.tar.gz`, no manifest, a manifest
    /// that is not `effbench.bundle/1` JSON (exit 2).
    #[error("{0}")]
    Unreadable(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BundleError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
        move |source| BundleError::Io { path: path.to_path_buf(), source }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The bytes of lower- or upper-case hex text, or `None` when it is not hex of even length.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let t = text.as_bytes();
    if !t.len().is_multiple_of(2) {
        return None;
    }
    t.chunks(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16);
            Some((d(p[0])? * 16 + d(p[1])?) as u8)
        })
        .collect()
}
