//! What `effbench report` renders, one result at a time: a [`WorkloadReport`] is one loaded
//! result with its reduced trace, comparison and figures. Reading files is
//! [`super::build`]'s, writing them [`super::stream`]'s; everything here and every renderer is
//! a pure function of what they hand over.

use crate::result::{Repeat, RunResult, WorkloadKind};
use crate::scope::{repeat_scope, scope_provenance, Scope};
use crate::sensor::Provenance;
use crate::stats::Summary;
use crate::verdict::Comparison;

pub use super::trace_reduce::{Band, Trace, Window};

/// The seed of every bootstrap interval the report computes, so a report is reproducible.
pub const SEED: u64 = 0;

/// What a report says of itself: who wrote it and from what (the appendix).
#[derive(Clone, Debug)]
pub struct ReportMeta {
    /// The effbench that wrote the report.
    pub effbench_version: String,
    /// The inputs as given on the command line.
    pub inputs: Vec<String>,
    /// `--baseline` as given.
    pub baseline: Option<String>,
}

/// One result file and what goes with it.
#[derive(Clone, Debug)]
pub struct WorkloadReport {
    /// Unique within the report and file-name safe: the workload id, with the host class
    /// and backend device added when several inputs hold the same workload.
    pub name: String,
    /// The result file's path.
    pub source: String,
    pub result: RunResult,
    pub figures: Vec<Figure>,
    /// The reduced power trace, or why there is none.
    pub trace: Result<Trace, String>,
    /// `None` without `--baseline`.
    pub baseline: Option<BaselineOutcome>,
}

#[derive(Clone, Debug)]
pub enum BaselineOutcome {
    Compared {
        path: String,
        comparison: Box<Comparison>,
    },
    /// No baseline was found, or it could not be used: the message says why.
    Missing(String),
}

/// The unit a figure is in (base units, as the exports name them).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Unit {
    Joules,
    Seconds,
    Bytes,
    Watts,
    /// Samples, units of work: a plain count.
    Count,
    PerSecond,
    /// Quality (accuracy and the like), no unit.
    Ratio,
}

/// One summarised metric of one result.
#[derive(Clone, Debug)]
pub struct Figure {
    /// `wall_s`, `energy_j`, `energy_per_unit_j`, `samples_to_target`, ...
    pub metric: &'static str,
    /// The energy scope, for energy figures.
    pub scope: Option<Scope>,
    pub unit: Unit,
    /// For energy and power: the weakest provenance of the sources behind it.
    pub provenance: Option<Provenance>,
    /// Median, mean and 95% interval over the valid repeats, or why there is none.
    pub value: Result<Summary, String>,
}

impl Figure {
    /// Whether this figure holds an estimate (shown as `ESTIMATED` wherever it appears).
    pub fn estimated(&self) -> bool {
        self.provenance == Some(Provenance::Estimated)
    }
}

/// `ESTIMATED` for an estimate (never hidden), else the provenance's name.
pub fn provenance_label(p: Option<Provenance>) -> String {
    match p {
        Some(Provenance::Estimated) => "ESTIMATED".to_string(),
        Some(p) => p.to_string(),
        None => "-".to_string(),
    }
}

/// The weakest provenance among all of `r`'s energy sources.
pub fn overall_provenance(r: &RunResult) -> Option<Provenance> {
    let ps: Vec<Provenance> = r.energy_sources.iter().map(|s| s.provenance).collect();
    [Provenance::Estimated, Provenance::VendorReported, Provenance::Measured].into_iter().find(|p| ps.contains(p))
}

type Get<'a> = &'a dyn Fn(&Repeat) -> Result<Option<f64>, String>;

fn summarise(valid: &[&Repeat], get: Get) -> Option<Result<Summary, String>> {
    let mut values = Vec::with_capacity(valid.len());
    for r in valid {
        match get(r) {
            Ok(Some(v)) => values.push(v),
            Ok(None) => return None,
            Err(why) => return Some(Err(why)),
        }
    }
    if values.is_empty() {
        return Some(Err("no valid repeat".to_string()));
    }
    Some(Summary::of(&values, SEED).ok_or_else(|| "a repeat's value is not a finite number".to_string()))
}

/// The figures of `r` over its valid repeats: time, energy and energy per unit at every scope
/// it measured, data use, throughput, power, quality and memory. A metric no valid repeat has
/// is left out; energy a repeat could not resolve is a figure without a value, saying why.
pub fn figures(r: &RunResult) -> Vec<Figure> {
    let valid: Vec<&Repeat> = r.repeats.iter().filter(|x| x.valid).collect();
    let mut out = Vec::new();
    let mut push = |metric, scope, unit, provenance, get: Get| {
        if let Some(value) = summarise(&valid, get) {
            out.push(Figure { metric, scope, unit, provenance, value });
        }
    };
    push("wall_s", None, Unit::Seconds, None, &|x| Ok(Some(x.wall_s.0)));
    for scope in crate::scope::measured_scopes(r) {
        let p = scope_provenance(r, scope);
        let at = move |x: &Repeat, per_unit: bool| -> Result<Option<f64>, String> {
            let Some(e) = repeat_scope(r, x, scope) else { return Ok(None) };
            if let Some(why) = e.unresolved {
                return Err(why);
            }
            Ok(if per_unit { e.per_unit_j } else { e.total_j }.map(|j| j.0))
        };
        push("energy_j", Some(scope), Unit::Joules, p, &|x| at(x, false));
        push("energy_per_unit_j", Some(scope), Unit::Joules, p, &|x| at(x, true));
    }
    let all = overall_provenance(r);
    push("avg_power_w", None, Unit::Watts, all, &|x| Ok(Some(x.avg_power_w.0)));
    if r.workload.kind == WorkloadKind::Train {
        push("samples_to_target", None, Unit::Count, None, &|x| Ok(x.samples_to_target.map(|v| v as f64)));
        push("bytes_to_target", None, Unit::Bytes, None, &|x| Ok(x.bytes_to_target.map(|v| v.0 as f64)));
        push("unique_samples", None, Unit::Count, None, &|x| Ok(x.unique_samples.map(|v| v as f64)));
    } else {
        push("bytes_per_unit", None, Unit::Bytes, None, &|x| Ok(x.bytes_per_unit.map(|v| v.0 as f64)));
    }
    push("throughput_per_s", None, Unit::PerSecond, None, &|x| Ok(Some(x.throughput_per_s)));
    push("quality", None, Unit::Ratio, None, &|x| Ok(x.quality));
    push("peak_rss_bytes", None, Unit::Bytes, None, &|x| Ok(x.peak_rss_bytes.map(|v| v.0 as f64)));
    out
}

/// What a result's name in the report is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameKey {
    pub id: String,
    pub host_class: String,
    pub device: String,
}

impl NameKey {
    pub fn of(r: &RunResult) -> NameKey {
        NameKey { id: r.workload.id.clone(), host_class: r.system.host_class(), device: r.backend.device.clone() }
    }
}

/// Names for the results: the workload id where it is unique among them, else the id with
/// the host class and backend device, made file-name safe (and numbered if still equal).
/// Linear in the number of results (counts and taken names in hash maps): a report of
/// 10,000 results must not compare every name with every other.
pub fn unique_names(results: &[NameKey]) -> Vec<String> {
    use std::collections::{HashMap, HashSet};
    let safe = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
    };
    let mut count: HashMap<&str, usize> = HashMap::new();
    for r in results {
        *count.entry(r.id.as_str()).or_default() += 1;
    }
    let mut taken: HashSet<String> = HashSet::with_capacity(results.len());
    // Per base name, the next number to try, so equal names cost one probe each, not a scan.
    let mut next: HashMap<String, usize> = HashMap::new();
    let mut names: Vec<String> = Vec::with_capacity(results.len());
    for r in results {
        let base = if count[r.id.as_str()] == 1 {
            safe(&r.id)
        } else {
            safe(&format!("{}-{}-{}", r.id, r.host_class, r.device))
        };
        let mut name = base.clone();
        if taken.contains(&name) {
            let n = next.entry(base.clone()).or_insert(2);
            while taken.contains(&format!("{base}-{n}")) {
                *n += 1;
            }
            name = format!("{base}-{n}");
            *n += 1;
        }
        taken.insert(name.clone());
        names.push(name);
    }
    names
}
