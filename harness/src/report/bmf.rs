//! `bmf.json` in Bencher Metric Format (bencher.dev, docs/reference/bencher-metric-format):
//! `{ "<benchmark>": { "<measure slug>": { "value", "lower_value", "upper_value" } } }`, read
//! by `bencher run --adapter json --file bmf.json`. One benchmark per result (named as in
//! the report), one measure per figure: `value` is the median over the valid repeats and the
//! bounds its 95% bootstrap interval ([`crate::stats::Summary`]). Energy measures carry their
//! scope, and their provenance where it is not `measured` (`energy-per-unit-device-estimated`),
//! so an estimate never shares a dashboard series with a measurement. A figure without a
//! value (unresolved energy) is left out.

use serde_json::{json, Map, Value};

use super::data::{Figure, WorkloadReport};

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

// The document is written one result at a time ([`super::stream`]): `OPEN`, the `entry` of
// each result with `SEPARATOR` between them, `CLOSE`. Its text is what serde_json's pretty
// printer gives for the whole object, members in the report's order (JSON objects are
// unordered; Bencher reads them by name).

pub const OPEN: &str = "{\n";
pub const SEPARATOR: &str = ",\n";
pub const CLOSE: &str = "\n}\n";

/// One result's member of the BMF object: its name and its measures.
pub fn entry(w: &WorkloadReport) -> String {
    let mut measures = Map::new();
    for f in &w.figures {
        let Ok(s) = &f.value else { continue };
        measures.insert(slug(f), json!({ "value": s.median, "lower_value": s.ci95[0], "upper_value": s.ci95[1] }));
    }
    let body = serde_json::to_string_pretty(&Value::Object(measures)).unwrap_or_else(|_| "{}".into());
    // Nested one level deeper: every line but the first indented by two more spaces (a JSON
    // string never holds a raw line break, so lines are the printer's own).
    let body = body.replace('\n', "\n  ");
    format!("  {}: {body}", Value::String(w.name.clone()))
}
