//! The gate's table for the terminal.

use crate::error::Exit;
use crate::gate::{GateReport, Outcome};
use crate::report::compare::pct;

const HEADER: [&str; 6] = ["workload", "metric", "baseline -> candidate (means)", "change", "95% interval", "outcome"];

pub fn render_text(r: &GateReport) -> String {
    let mut body: Vec<[String; 6]> = Vec::new();
    for (w, c) in r.cases() {
        let computed = c.change.is_finite();
        body.push([
            w.workload.clone(),
            if c.resource == crate::gate::GateMetric::Energy && w.energy_label != "measured" {
                format!("{} ({})", c.metric, w.energy_label.to_uppercase())
            } else {
                c.metric.clone()
            },
            if computed { format!("{:.4e} -> {:.4e}", c.baseline_mean, c.candidate_mean) } else { "-".into() },
            if computed { pct(c.change) } else { "-".into() },
            if computed { format!("[{}, {}]", pct(c.ci95[0]), pct(c.ci95[1])) } else { "-".into() },
            c.outcome.to_string(),
        ]);
    }
    let mut out = match r.history {
        None => format!(
            "effbench gate: regression when the 95% interval of candidate/baseline - 1 lies above {}\n",
            pct(r.max_regression)
        ),
        Some(n) => format!(
            "effbench gate from history (the last {n} runs like each candidate in the store): regression when \
             candidate/mean - 1 is above {} and its 95% prediction interval above 0\n",
            pct(r.max_regression)
        ),
    };
    out += &super::table::columns(&HEADER, &body);
    for w in &r.workloads {
        for warn in &w.warnings {
            out += &format!("warning: {}: {warn}\n", w.workload);
        }
    }
    for w in &r.workloads {
        if let Some(p) = &w.energy_scope {
            out += &format!(
                "energy: {}: {} scope ({}): candidate {}, baseline {}\n",
                w.workload,
                p.scope,
                p.label,
                p.candidate_domains.join(" + "),
                p.baseline_domains.join(" + ")
            );
        }
        for note in &w.notes {
            out += &format!("note: {}: {note}\n", w.workload);
        }
    }
    if !r.baselines_unused.is_empty() {
        out += &format!("baselines with no candidate (not gated): {}\n", r.baselines_unused.join(", "));
    }
    let n = |f: &dyn Fn(&Outcome) -> bool| r.count(f);
    out += &format!(
        "gate: {} ({} regression, {} invalid, {} improved, {} no change, {} skipped{})\n",
        match r.exit_code {
            Exit::Ok => "PASSED",
            Exit::Invalid => "FAILED (invalid run)",
            Exit::Inconclusive if r.history.is_some() => "FAILED (cannot decide: too few repeats or earlier runs)",
            Exit::Inconclusive => "FAILED (cannot decide: too few repeats)",
            _ => "FAILED (regression)",
        },
        n(&|o| *o == Outcome::Regression),
        n(&|o| matches!(o, Outcome::Invalid { .. })),
        n(&|o| *o == Outcome::Improved),
        n(&|o| *o == Outcome::NoChange),
        n(&|o| matches!(o, Outcome::Skipped { .. })),
        match n(&|o| matches!(o, Outcome::Undecided { .. })) {
            0 => String::new(),
            k => format!(", {k} undecided"),
        },
    );
    out
}
