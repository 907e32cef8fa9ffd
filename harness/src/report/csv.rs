//! `repeats.csv`: one tidy row per repeat (RFC 4180, header first) for pandas or R. Fixed
//! columns for the run, the repeat's numbers and energy per scope, then one energy column per
//! domain found in any input (sorted). An absent value is an empty cell.

use std::collections::BTreeSet;

use super::data::{overall_provenance, provenance_label, WorkloadReport};
use crate::result::Repeat;
use crate::scope::{repeat_scope, scope_provenance, Scope};

const RUN: [&str; 14] = [
    "source",
    "workload",
    "kind",
    "unit",
    "recipe",
    "recipe_sha256",
    "backend",
    "device",
    "precision",
    "threads",
    "host",
    "host_class",
    "effbench_version",
    "created_at",
];

const REPEAT: [&str; 26] = [
    "repeat",
    "seed",
    "valid",
    "invalid_reason",
    "wall_s",
    "energy_j",
    "dynamic_energy_j",
    "energy_provenance",
    "avg_power_w",
    "units_processed",
    "quality",
    "energy_per_unit_j",
    "throughput_per_s",
    "cpu_s",
    "peak_rss_bytes",
    "achieved_flops_per_s",
    "fraction_of_peak",
    "meter_busy_s",
    "passes",
    "samples_to_target",
    "bytes_to_target",
    "unique_samples",
    "evaluations",
    "batch_size",
    "bytes_per_unit",
    "meter_warnings",
];

/// A field quoted when it holds a comma, quote or line break.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite()).map_or_else(String::new, |v| format!("{v}"))
}

fn int(v: Option<u64>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

fn run_cells(w: &WorkloadReport) -> Vec<String> {
    let r = &w.result;
    vec![
        w.source.clone(),
        r.workload.id.clone(),
        format!("{:?}", r.workload.kind).to_lowercase(),
        r.workload.unit.clone(),
        r.recipe.name.clone(),
        r.recipe.sha256.clone(),
        r.backend.kind.clone(),
        r.backend.device.clone(),
        r.backend.precision.clone(),
        r.backend.threads.to_string(),
        r.system.hostname.clone(),
        r.system.host_class(),
        r.effbench_version.clone(),
        r.created_at.to_rfc3339(),
    ]
}

fn repeat_cells(w: &WorkloadReport, i: usize, x: &Repeat) -> Vec<String> {
    vec![
        i.to_string(),
        x.seed.to_string(),
        x.valid.to_string(),
        x.invalid_reason.clone().unwrap_or_default(),
        num(Some(x.wall_s.0)),
        num(Some(x.energy_j.total.0)),
        num(Some(x.dynamic_energy_j.total.0)),
        provenance_label(overall_provenance(&w.result)).to_lowercase(),
        num(Some(x.avg_power_w.0)),
        x.units_processed.to_string(),
        num(x.quality),
        num(Some(x.energy_per_unit_j.0)),
        num(Some(x.throughput_per_s)),
        num(x.cpu_s.map(|s| s.0)),
        int(x.peak_rss_bytes.map(|b| b.0)),
        num(x.achieved_flops_per_s),
        num(x.fraction_of_peak),
        num(x.meter_busy_s.map(|s| s.0)),
        int(x.passes.map(u64::from)),
        int(x.samples_to_target),
        int(x.bytes_to_target.map(|b| b.0)),
        int(x.unique_samples),
        x.evaluations.as_ref().map_or_else(String::new, |e| e.len().to_string()),
        int(x.batch_size),
        int(x.bytes_per_unit.map(|b| b.0)),
        x.meter_warnings.len().to_string(),
    ]
}

/// Per scope: total, dynamic, per unit, provenance, and why it is unresolved.
fn scope_cells(w: &WorkloadReport, x: &Repeat) -> Vec<String> {
    let mut out = Vec::new();
    for s in Scope::ALL {
        match repeat_scope(&w.result, x, s) {
            Some(e) => out.extend([
                num(e.total_j.map(|j| j.0)),
                num(e.dynamic_j.map(|j| j.0)),
                num(e.per_unit_j.map(|j| j.0)),
                provenance_label(scope_provenance(&w.result, s)).to_lowercase(),
                e.unresolved.unwrap_or_default(),
            ]),
            None => out.extend(std::iter::repeat_n(String::new(), 5)),
        }
    }
    out
}

/// The header line, given every energy domain found in any input (sorted).
pub fn header(domains: &BTreeSet<String>) -> String {
    let mut header: Vec<String> = RUN.iter().chain(REPEAT.iter()).map(|s| s.to_string()).collect();
    for s in Scope::ALL {
        for col in ["energy_j", "dynamic_energy_j", "energy_per_unit_j", "provenance", "unresolved"] {
            header.push(format!("{}_{col}", s.as_str()));
        }
    }
    header.extend(domains.iter().map(|d| format!("energy_{d}_j")));
    header.iter().map(|h| field(h)).collect::<Vec<_>>().join(",") + "\n"
}

/// The rows of every repeat of one result, columns as [`header`] with the same `domains`.
pub fn rows(w: &WorkloadReport, domains: &BTreeSet<String>) -> String {
    let mut out = String::new();
    let run = run_cells(w);
    for (i, x) in w.result.repeats.iter().enumerate() {
        let mut cells = run.clone();
        cells.extend(repeat_cells(w, i, x));
        cells.extend(scope_cells(w, x));
        cells.extend(domains.iter().map(|d| num(x.energy_j.by_domain.get(d).map(|j| j.0))));
        out += &(cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",") + "\n");
    }
    out
}
