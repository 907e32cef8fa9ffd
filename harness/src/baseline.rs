//! `run --baseline PATH|auto`: finding each workload's baseline and comparing the run with it.
//!
//! - `PATH` is a baseline result file (for a run of that one workload) or a directory holding
//!   `<workload>.json`. Every workload of the run must have its baseline there; this is checked
//!   before any work ([`BaselineSpec::check`]), so a typo does not cost a whole run.
//! - `auto` is `baselines/<this machine's class>/<workload>.json` (the folder `baseline
//!   record` writes, see [`crate::system::this_host_class`]). A workload with no baseline there
//!   is said plainly and does not fail the run.
//!
//! The comparison is `compare`'s ([`crate::verdict::compare`]) with its default options; the
//! run's exit code becomes the worst verdict's: invalid (4) > inconclusive (3) > not met (1) >
//! met (0).

use std::path::{Path, PathBuf};

use crate::error::Exit;
use crate::result::RunResult;
use crate::verdict::{compare, CompareOptions, Comparison};

/// A baseline nothing can be compared with: none of its repeats is valid. This is bad input
/// (exit 2), not an invalid candidate (exit 4).
#[derive(Debug, thiserror::Error)]
#[error(
    "baseline {} is unusable: none of its {repeats} repeats is valid (each missed the quality \
     target), so nothing can be compared with it; re-record it with `effbench baseline record \
     --workload {id} --force`, or pass another baseline",
    path.display()
)]
pub struct UnusableBaseline {
    pub path: PathBuf,
    pub id: String,
    pub repeats: usize,
}

/// Refuses a baseline with no valid repeat.
pub fn check_usable(path: &Path, baseline: &RunResult) -> Result<(), UnusableBaseline> {
    if baseline.repeats.iter().any(|r| crate::validity::is_valid(baseline, r)) {
        return Ok(());
    }
    Err(UnusableBaseline {
        path: path.to_path_buf(),
        id: baseline.workload.id.clone(),
        repeats: baseline.repeats.len(),
    })
}

/// Where `run --baseline` looks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaselineSpec {
    /// `auto`: `<root>/<host class>/<workload>.json`.
    Auto { root: PathBuf, host_class: String },
    /// A result file or a directory of `<workload>.json`.
    Path(PathBuf),
}

/// The baseline of one finished workload, and how the run compares with it.
#[derive(Clone, Debug)]
pub enum RunComparison {
    Compared {
        baseline: PathBuf,
        comparison: Box<Comparison>,
    },
    /// No baseline (only under `auto`): the message says where effbench looked.
    NoBaseline {
        message: String,
    },
}

impl BaselineSpec {
    /// `auto` (under `baselines/`, for this machine's class) or a path.
    pub fn parse(s: &str) -> BaselineSpec {
        if s == "auto" {
            BaselineSpec::Auto { root: PathBuf::from("baselines"), host_class: crate::system::this_host_class() }
        } else {
            BaselineSpec::Path(PathBuf::from(s))
        }
    }

    /// The baseline file for `workload`, or `None` where it does not exist.
    pub fn locate(&self, workload: &str) -> Option<PathBuf> {
        let file = format!("{workload}.json");
        match self {
            // Anything by that name counts (a dangling link, a directory): loading it then says
            // what is wrong with it instead of the baseline passing for absent.
            BaselineSpec::Auto { root, host_class } => Some(root.join(host_class).join(file)).filter(|p| exists(p)),
            BaselineSpec::Path(p) if p.is_dir() => Some(p.join(file)).filter(|p| exists(p)),
            BaselineSpec::Path(p) => Some(p.clone()),
        }
    }

    /// Before any work: an explicit path must exist and give every workload of the run a
    /// readable baseline of that workload (a file serves a run of its one workload). `auto`
    /// always passes: missing baselines are reported after the run.
    pub fn check(&self, workloads: &[&str]) -> Result<(), String> {
        let BaselineSpec::Path(p) = self else { return Ok(()) };
        if !p.exists() {
            return Err(format!("--baseline {}: no such file or directory", p.display()));
        }
        if p.is_file() {
            let r = RunResult::load(p).map_err(|e| e.to_string())?;
            crate::validity::check_file(&r, p).map_err(|e| e.to_string())?;
            check_usable(p, &r).map_err(|e| e.to_string())?;
            let others: Vec<&str> = workloads.iter().copied().filter(|w| *w != r.workload.id).collect();
            if !others.is_empty() {
                return Err(format!(
                    "--baseline {} is a baseline of {}, but the run also has {}; pass a directory of \
                     <workload>.json files (or --baseline auto)",
                    p.display(),
                    r.workload.id,
                    others.join(", ")
                ));
            }
            return Ok(());
        }
        let missing: Vec<String> =
            workloads.iter().filter(|w| self.locate(w).is_none()).map(|w| format!("{w}.json")).collect();
        if !missing.is_empty() {
            return Err(format!(
                "--baseline {}: no baseline for {} there (--baseline auto skips missing ones)",
                p.display(),
                missing.join(", ")
            ));
        }
        for w in workloads {
            let Some(f) = self.locate(w) else { continue };
            let r = RunResult::load(&f).map_err(|e| e.to_string())?;
            crate::validity::check_file(&r, &f).map_err(|e| e.to_string())?;
            check_usable(&f, &r).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Compares a finished run with its baseline.
    pub fn compare(&self, result: &RunResult, opts: &CompareOptions) -> Result<RunComparison, String> {
        let id = &result.workload.id;
        let Some(path) = self.locate(id) else {
            let message = match self {
                BaselineSpec::Auto { root, host_class } => format!(
                    "{id}: no baseline for this machine class ({}); record one with \
                     `effbench baseline record --workload {id}`",
                    root.join(host_class).join(format!("{id}.json")).display()
                ),
                BaselineSpec::Path(p) => format!("{id}: no baseline in {}", p.display()),
            };
            return Ok(RunComparison::NoBaseline { message });
        };
        let baseline = RunResult::load(&path).map_err(|e| e.to_string())?;
        crate::validity::check_file(&baseline, &path).map_err(|e| e.to_string())?;
        check_usable(&path, &baseline).map_err(|e| e.to_string())?;
        Ok(RunComparison::Compared { baseline: path, comparison: Box::new(compare(result, &baseline, opts)) })
    }
}

/// An entry by that name exists (a link counts, even a dangling one).
fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}

/// How a run compared with baselines ends: the worst verdict's (invalid > inconclusive > not
/// met > met, [`Exit::worst`]), or `None` when nothing was compared.
pub fn worst_exit(comparisons: &[RunComparison]) -> Option<Exit> {
    Exit::worst_of(comparisons.iter().filter_map(|c| match c {
        RunComparison::Compared { comparison, .. } => Some(comparison.overall.exit_code()),
        RunComparison::NoBaseline { .. } => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verdict;

    #[test]
    fn worst_verdict_wins() {
        let c = |v: Verdict| RunComparison::Compared {
            baseline: PathBuf::new(),
            comparison: Box::new(Comparison {
                workload: "w".into(),
                target: 0.5,
                energy_label: "measured".into(),
                energy_scope: None,
                rows: vec![],
                resources: vec![],
                overall: v,
                warnings: vec![],
            }),
        };
        let none = RunComparison::NoBaseline { message: String::new() };
        assert_eq!(worst_exit(std::slice::from_ref(&none)), None);
        assert_eq!(worst_exit(&[c(Verdict::Met), none.clone()]), Some(Exit::Ok));
        assert_eq!(worst_exit(&[c(Verdict::Met), c(Verdict::NotMet)]), Some(Exit::NotMet));
        let inc = Verdict::Inconclusive { repeats_needed: Some(9) };
        assert_eq!(worst_exit(&[c(Verdict::NotMet), c(inc.clone()), c(Verdict::Met)]), Some(Exit::Inconclusive));
        let invalid = Verdict::Invalid { reason: "x".into() };
        assert_eq!(worst_exit(&[c(inc), c(invalid), none]), Some(Exit::Invalid));
    }

    #[test]
    fn locating_baselines() {
        let dir = tempfile::tempdir().unwrap();
        let class = dir.path().join("cpu-x-2t");
        std::fs::create_dir_all(&class).unwrap();
        std::fs::write(class.join("a.json"), "{}").unwrap();
        let auto = BaselineSpec::Auto { root: dir.path().to_path_buf(), host_class: "cpu-x-2t".into() };
        assert_eq!(auto.locate("a"), Some(class.join("a.json")));
        assert_eq!(auto.locate("b"), None);
        assert!(auto.check(&["a", "b"]).is_ok(), "auto reports missing baselines after the run");
        let path = BaselineSpec::Path(class.clone());
        assert_eq!(path.locate("a"), Some(class.join("a.json")));
        let e = path.check(&["b"]).unwrap_err();
        assert!(e.contains("no baseline for b.json"), "{e}");
        let e = path.check(&["a"]).unwrap_err();
        assert!(e.contains("a.json") && e.contains("schema"), "a malformed baseline is refused before work: {e}");
        let e = BaselineSpec::Path(dir.path().join("nope")).check(&["a"]).unwrap_err();
        assert!(e.contains("no such file"), "{e}");
    }
}
