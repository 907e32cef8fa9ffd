//! Reading the gate's inputs: result files keyed by workload id, and why the gate could not run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::result::RunResult;

/// Why the gate could not run at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Load(#[from] crate::result::ResultError),
    #[error("cannot read directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no result files (*.json)", path.display())]
    Empty { path: PathBuf },
    #[error("two results of workload {id:?}: {} and {}", a.display(), b.display())]
    Duplicate { id: String, a: PathBuf, b: PathBuf },
    #[error(
        "no candidate workload has a baseline: candidate {}, baseline {}; nothing was gated",
        candidates.join(", "), baselines.join(", ")
    )]
    NothingMatched { candidates: Vec<String>, baselines: Vec<String> },
    #[error("nothing could be compared: every case was skipped ({0})")]
    AllSkipped(String),
}

/// Result files keyed by workload id: `path` itself, or every `*.json` directly inside a
/// directory (sorted). Every entry named `*.json` is read, so one that is not a valid result
/// (a dangling link, a FIFO, a directory, a malformed file) is an error naming it, never
/// skipped.
pub fn load_results(path: &Path) -> Result<BTreeMap<String, (PathBuf, RunResult)>, GateError> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let dir_err = |source| GateError::Dir { path: path.to_path_buf(), source };
        let mut v = Vec::new();
        for entry in std::fs::read_dir(path).map_err(dir_err)? {
            let p = entry.map_err(dir_err)?.path();
            if p.extension().is_some_and(|e| e == "json") {
                v.push(p);
            }
        }
        v.sort();
        if v.is_empty() {
            return Err(GateError::Empty { path: path.to_path_buf() });
        }
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut out: BTreeMap<String, (PathBuf, RunResult)> = BTreeMap::new();
    for f in files {
        let r = RunResult::load(&f)?;
        if let Some((prev, _)) = out.get(&r.workload.id) {
            return Err(GateError::Duplicate { id: r.workload.id.clone(), a: prev.clone(), b: f });
        }
        out.insert(r.workload.id.clone(), (f, r));
    }
    Ok(out)
}
