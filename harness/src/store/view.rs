//! `history list` and `history show` as text: pure functions of what the store returned.

use std::fmt::Write;

use super::{ListedRun, StoredRun};

/// A provenance as every table shows it: an estimate in capitals, never mistaken for a
/// measurement.
fn provenance(label: &str) -> String {
    if label == "estimated" {
        "ESTIMATED".into()
    } else {
        label.to_string()
    }
}

/// A figure: six decimals below 1,000, one above.
fn num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.6}")
    }
}

/// One line per run, newest first, under a header; `(no runs)` for none.
pub fn list_text(runs: &[ListedRun]) -> String {
    if runs.is_empty() {
        return "(no runs in the store match)\n".to_string();
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<12}  {:<20}  {:<24}  {:<10}  {:<8}  {:<8}  {:<24}  {:>7}  {:<10}  path",
        "run", "created (UTC)", "workload", "recipe", "backend", "division", "system", "valid", "energy"
    );
    for r in runs {
        let created = r.created_at.get(..19).unwrap_or(&r.created_at).replace('T', " ");
        let planted = r.planted_slowdown.filter(|p| *p > 0.0).map_or(String::new(), |p| format!(" [planted +{p}]"));
        let _ = writeln!(
            s,
            "{:<12}  {:<20}  {:<24}  {:<10}  {:<8}  {:<8}  {:<24}  {:>7}  {:<10}  {}{planted}",
            r.run_id,
            created,
            r.workload,
            r.recipe,
            r.backend,
            r.division.as_deref().unwrap_or("-"),
            r.system_class,
            format!("{}/{}", r.valid_repeats, r.repeats),
            provenance(&r.provenance),
            r.path
        );
    }
    s
}

/// A run's index entry and its summary statistics.
pub fn show_text(run: &StoredRun) -> String {
    let r = &run.result;
    let mut s = String::new();
    let _ = writeln!(s, "run {}  (sha256 {})", run.run_id, run.sha256);
    let _ = writeln!(s, "file: {}", run.path.display());
    let _ = writeln!(s, "created: {}", run.created_at.to_rfc3339());
    let kind = serde_json::to_value(r.workload.kind).ok().and_then(|k| k.as_str().map(str::to_string));
    let _ = writeln!(s, "workload: {} ({})", r.workload.id, kind.unwrap_or_default());
    let _ = writeln!(s, "recipe: {} (sha256 {})", r.recipe.name, r.recipe.sha256);
    let _ = writeln!(s, "backend: {}", super::backend_key(&r.backend.kind, &r.backend.device));
    if let (Some(division), params) = super::index::division(r) {
        let reference = r.repeats.iter().find_map(|x| x.runner_train.as_ref().map(|t| t.reference_params));
        let runner = match (params, reference) {
            (Some(p), Some(re)) => format!(" (the runner trains {p} parameters; the reference architecture {re})"),
            (None, Some(re)) => format!(" (the runner gave no parameter count; the reference architecture {re})"),
            _ => String::new(),
        };
        let _ = writeln!(s, "division: {division}{runner}");
    }
    let _ = writeln!(s, "system: {} on {}", super::system_class(&r.system), r.system.hostname);
    let _ = writeln!(s, "energy: {}", provenance(crate::run::energy_label(&r.energy_sources)));
    if let Some(p) = r.planted_slowdown.filter(|p| *p > 0.0) {
        let _ = writeln!(s, "PLANTED SLOWDOWN: {p} (testing only; not a genuine measurement)");
    }
    let valid = r.repeats.iter().filter(|x| crate::validity::is_valid(r, x)).count();
    let _ = writeln!(s, "repeats: {valid} valid of {}", r.repeats.len());
    for (metric, m) in &r.summary {
        let (median, lo, hi) = (num(m.median), num(m.ci95[0]), num(m.ci95[1]));
        let _ = writeln!(s, "  {metric:<20} median {median:>16}  95% [{lo}, {hi}]  n {}", m.n);
    }
    s
}
