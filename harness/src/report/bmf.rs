//! `bmf.json` in Bencher Metric Format (bencher.dev, docs/reference/bencher-metric-format):
//! `{ "<benchmark>": { "<measure slug>": { "value", "lower_value", "upper_value" } } }`, read
//! by `bencher run --adapter json --file bmf.json`. One benchmark per result (named as in
//! the report), one measure per figure: `value` is the median over the valid repeats and the
//! bounds its 95% bootstrap interval ([`crate::stats::Summary`]). Energy measures carry their
//! scope, and their provenance where it is not `measured` (`energy-per-unit-device-estimated`),
//! so an estimate never shares a dashboard series with a measurement. A figure without a
//! value (unresolved energy) is left out.

use serde_json::{json, Map, Value};

use super::data::{Figure, ReportData};

/// Bencher's limit on a measure slug.
pub const MAX_SLUG: usize = 64;

/// The measure slug of a figure: `wall-s` -> `wall-time`, energy with scope and provenance.
pub fn slug(f: &Figure) -> String {
    let base = match f.metric {
        "wall_s" => "wall-time".to_string(),
        "energy_j" => "energy".to_string(),
        "energy_per_unit_j" => "energy-per-unit".to_string(),
        "avg_power_w" => "average-power".to_string(),
        "throughput_per_s" => "throughput".to_string(),
        m => m.replace('_', "-"),
    };
    let mut s = base;
    if let Some(scope) = f.scope {
        s = format!("{s}-{}", scope.as_str());
    }
    if let Some(p) = f.provenance.filter(|p| *p != crate::sensor::Provenance::Measured) {
        s = format!("{s}-{p}");
    }
    s.truncate(MAX_SLUG);
    s
}

/// The BMF document of `data`, pretty-printed.
pub fn render(data: &ReportData) -> String {
    let mut doc = Map::new();
    for w in &data.workloads {
        let mut measures = Map::new();
        for f in &w.figures {
            let Ok(s) = &f.value else { continue };
            measures.insert(slug(f), json!({ "value": s.median, "lower_value": s.ci95[0], "upper_value": s.ci95[1] }));
        }
        doc.insert(w.name.clone(), Value::Object(measures));
    }
    serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default() + "\n"
}
