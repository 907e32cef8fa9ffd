//! What `effbench run` prints when it ends: the summary table ([`super::table`]), where the
//! results went, the estimate note, and each comparison with a baseline; or the same as JSON.
//! Pure functions of the finished results, so `cli/run.rs` only prints them.

use std::path::Path;

use crate::baseline::RunComparison;
use crate::result::RunResult;
use crate::sensor::Provenance;

/// One finished workload: its result file and what it holds.
pub struct RunOutput<'a> {
    pub path: &'a Path,
    pub result: &'a RunResult,
}

fn valid_repeats(r: &RunResult) -> usize {
    r.repeats.iter().filter(|x| x.valid).count()
}

/// `measured` when a run has no source (as the run itself labels it).
fn energy_label(r: &RunResult) -> String {
    super::data::overall_provenance(r).map_or("measured".to_string(), |p| p.to_string())
}

/// The table, the results directory, and a note when energy is an estimate.
pub fn run_text(runs: &[RunOutput], out_dir: &Path) -> String {
    let results: Vec<&RunResult> = runs.iter().map(|r| r.result).collect();
    let mut s = super::table::render(&results);
    s += &format!("results: {}\n", out_dir.display());
    if results.iter().any(|r| super::data::overall_provenance(r) == Some(Provenance::Estimated)) {
        s += "energy: ESTIMATED from CPU utilisation and rated power: no measured source for the cpu (`effbench sensors` says why)\n";
    }
    s
}

/// `run --json`: one object per workload (path, valid repeats, provenance, summary).
pub fn run_json(runs: &[RunOutput]) -> String {
    let items: Vec<serde_json::Value> = runs
        .iter()
        .map(|f| {
            serde_json::json!({
                "workload": f.result.workload.id,
                "path": f.path,
                "valid_repeats": valid_repeats(f.result),
                "repeats": f.result.repeats.len(),
                "energy_provenance": energy_label(f.result),
                "summary": f.result.summary,
            })
        })
        .collect();
    serde_json::to_string_pretty(&items).unwrap_or_default() + "\n"
}

/// The workloads with an invalid repeat, in one line for stderr; `None` when there are none.
pub fn invalid_line(runs: &[RunOutput]) -> Option<String> {
    let invalid: Vec<&str> = runs
        .iter()
        .filter(|f| valid_repeats(f.result) < f.result.repeats.len())
        .map(|f| f.result.workload.id.as_str())
        .collect();
    (!invalid.is_empty())
        .then(|| format!("effbench: invalid repeats (quality target missed) in: {}\n", invalid.join(", ")))
}

/// A comparison with the baseline after a run: for stdout, or for stderr when stdout holds
/// JSON (`stderr`), where a missing baseline becomes an `effbench:` line.
pub fn comparison_text(c: &RunComparison, stderr: bool) -> String {
    match c {
        RunComparison::Compared { baseline, comparison } => {
            format!("\nagainst the baseline {}:\n{}", baseline.display(), super::compare::render_text(comparison))
        }
        RunComparison::NoBaseline { message } if stderr => format!("effbench: {message}\n"),
        RunComparison::NoBaseline { message } => format!("\n{message}\n"),
    }
}
