//! `effbench.prom`: the Prometheus text exposition format (version 0.0.4) for
//! node_exporter's textfile collector. Metric names follow node_exporter, Kepler and
//! Scaphandre for energy: base units as suffixes (`_joules`, `_seconds`, `_bytes`, `_watts`).
//! Every metric is a gauge: a report states figures of finished runs, which can go down from
//! one report to the next, so none is a counter (`_total`). Each sample's labels say what it
//! is: `run` (the result's name in the report, unique), `workload`, `recipe`, `backend` (the device), `host_class`, for energy `scope` and
//! `provenance` (an estimate is never unlabelled), and `stat`: `median`, `ci95_lower`,
//! `ci95_upper` over the valid repeats. No timestamps: the textfile collector rejects them.
//! The file is written whole and renamed into place, as the collector requires.

use super::data::{Figure, Unit, WorkloadReport};

/// A label value escaped as the format requires: backslash, double quote, line feed.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The metric name and help text of a figure.
fn family(f: &Figure) -> (String, String) {
    let unit = match f.unit {
        Unit::Joules => "_joules",
        Unit::Seconds => "_seconds",
        Unit::Bytes => "_bytes",
        Unit::Watts => "_watts",
        Unit::Count | Unit::PerSecond | Unit::Ratio => "",
    };
    let (stem, help) = match f.metric {
        "wall_s" => ("wall", "Wall time of one repeat"),
        "energy_j" => ("energy", "Energy of one repeat at an energy scope"),
        "energy_per_unit_j" => ("energy_per_unit", "Energy per unit of work at an energy scope"),
        "avg_power_w" => ("average_power", "Average power over one repeat"),
        "samples_to_target" => ("samples_to_target", "Training samples processed until the quality target"),
        "bytes_to_target" => ("data_to_target", "Bytes of training samples processed until the quality target"),
        "unique_samples" => ("unique_samples", "Distinct training samples used"),
        "bytes_per_unit" => ("data_per_unit", "Bytes moved per unit of work"),
        "throughput_per_s" => ("throughput_per_second", "Units of work per second"),
        "quality" => ("quality", "Quality reached (the workload's metric, e.g. accuracy)"),
        "peak_rss_bytes" => ("peak_resident_memory", "Peak resident memory of one repeat"),
        other => (other, "effbench figure"),
    };
    (format!("effbench_{stem}{unit}"), format!("{help}, over the valid repeats of a run."))
}

/// One sample of the exposition: its family's name and help text, and the sample's line.
pub struct Sample {
    pub family: String,
    pub help: String,
    pub line: String,
}

/// The samples of one result. The file is written once every result is in ([`super::stream`]
/// keeps each family's lines apart until then): per family, sorted by name, `family_head`,
/// then its samples in the report's order.
pub fn samples(w: &WorkloadReport) -> Vec<Sample> {
    let r = &w.result;
    let mut out = Vec::new();
    for f in &w.figures {
        let Ok(s) = &f.value else { continue };
        let (name, help) = family(f);
        let mut labels = vec![
            ("run", w.name.clone()),
            ("workload", r.workload.id.clone()),
            ("recipe", r.recipe.name.clone()),
            ("backend", r.backend.device.clone()),
            ("host_class", r.system.host_class()),
        ];
        if let Some(scope) = f.scope {
            labels.push(("scope", scope.as_str().to_string()));
        }
        if let Some(p) = f.provenance {
            labels.push(("provenance", p.to_string()));
        }
        for (stat, v) in [("median", s.median), ("ci95_lower", s.ci95[0]), ("ci95_upper", s.ci95[1])] {
            let mut l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            l.push(format!("stat=\"{stat}\""));
            out.push(Sample {
                family: name.clone(),
                help: help.clone(),
                line: format!("{name}{{{}}} {v:e}\n", l.join(",")),
            });
        }
    }
    out
}

/// A metric family's HELP and TYPE lines.
pub fn family_head(name: &str, help: &str) -> String {
    format!("# HELP {name} {help}\n# TYPE {name} gauge\n")
}
