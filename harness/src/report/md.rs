//! `report.md`: per workload the summary table (provenance on every energy figure,
//! `ESTIMATED` on each that holds an estimate), the plots as `*.svg` beside the file (or what
//! is missing), with a baseline the comparison table and the verdict in words; then an
//! appendix with systems, sensors, versions and the exact commands. The cells and sentences
//! here are shared with the HTML report.

use super::data::{provenance_label, BaselineOutcome, Figure, ReportMeta, Unit, WorkloadReport};
use super::plots::Plot;
use super::table::joules;

/// Bytes on a human scale (decimal units, as `ls -h --si`).
pub fn bytes(b: f64) -> String {
    match b.abs() {
        a if a >= 1e9 => format!("{:.2} GB", b / 1e9),
        a if a >= 1e6 => format!("{:.2} MB", b / 1e6),
        a if a >= 1e3 => format!("{:.2} kB", b / 1e3),
        _ => format!("{b:.0} B"),
    }
}

/// A value of `unit` for a table; per unit of work energies name the unit.
pub fn value(v: f64, f: &Figure, work_unit: &str) -> String {
    let s = match f.unit {
        Unit::Joules if f.metric == "energy_per_unit_j" => format!("{}/{work_unit}", joules(v)),
        Unit::Joules => joules(v),
        Unit::Seconds => format!("{v:.3} s"),
        Unit::Bytes => bytes(v),
        Unit::Watts => format!("{v:.2} W"),
        Unit::Count => format!("{v:.0}"),
        Unit::PerSecond => format!("{v:.1} {work_unit}/s"),
        Unit::Ratio => format!("{v:.4}"),
    };
    if f.estimated() {
        format!("{s} ESTIMATED")
    } else {
        s
    }
}

pub const SUMMARY_HEADER: [&str; 6] = ["metric", "scope", "median", "95% interval (median)", "repeats", "provenance"];

/// The summary table's rows of one result.
pub fn summary_rows(w: &WorkloadReport) -> Vec<[String; 6]> {
    let unit = &w.result.workload.unit;
    w.figures
        .iter()
        .map(|f| {
            let scope = f.scope.map_or("-", |s| s.as_str()).to_string();
            let prov = provenance_label(f.provenance);
            match &f.value {
                Ok(s) => [
                    f.metric.to_string(),
                    scope,
                    value(s.median, f, unit),
                    format!("[{}, {}]", value(s.ci95[0], f, unit), value(s.ci95[1], f, unit)),
                    s.n.to_string(),
                    prov,
                ],
                Err(why) => [f.metric.to_string(), scope, "UNRESOLVED".into(), why.clone(), "-".into(), prov],
            }
        })
        .collect()
}

/// One line saying what the workload is and how many repeats were valid.
pub fn headline(w: &WorkloadReport) -> String {
    let r = &w.result;
    let valid = r.repeats.iter().filter(|x| x.valid).count();
    format!(
        "{} ({}, {} on {}), recipe {}, backend {} {} ({}), {valid}/{} repeats valid; quality target {} {} {}",
        r.workload.id,
        format!("{:?}", r.workload.kind).to_lowercase(),
        r.workload.model,
        r.workload.dataset,
        r.recipe.name,
        r.backend.device,
        r.backend.precision,
        r.system.host_class(),
        r.repeats.len(),
        r.workload.quality_metric,
        if r.workload.higher_is_better { ">=" } else { "<=" },
        r.workload.quality_target,
    )
}

/// The verdict against the baseline, in words.
pub fn verdict_words(b: &BaselineOutcome) -> String {
    match b {
        BaselineOutcome::Missing(why) => format!("Not compared: {why}."),
        BaselineOutcome::Compared { path, comparison: c } => {
            let per: Vec<String> = c.resources.iter().map(|(r, v)| format!("{r}: {v}")).collect();
            // The overall verdict's word in bold; its reason is already in the per-resource part.
            let overall = c.overall.to_string();
            let word = overall.split(':').next().unwrap_or(&overall);
            format!(
                "Against the baseline {path}, the target of at least {:.0}% less is **{word}** ({}). \
                 A resource is met when the lower end of its reduction's 95% interval reaches the \
                 target, not met when the upper end falls short of it, and inconclusive otherwise.",
                100.0 * c.target,
                per.join("; ")
            )
        }
    }
}

fn table(header: &[&str], rows: &[impl AsRef<[String]>]) -> String {
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), " --- |".repeat(header.len()));
    for r in rows {
        let cells: Vec<String> = r.as_ref().iter().map(|c| c.replace('|', "\\|")).collect();
        out += &format!("| {} |\n", cells.join(" | "));
    }
    out
}

/// One result's section: summary table, plots linked (or what is missing), comparison.
pub fn section(w: &WorkloadReport, plots: &[Plot]) -> String {
    let mut out = format!("## {}\n\n{}\n\nFrom `{}`.\n\n", w.name, headline(w), w.source);
    out += &table(&SUMMARY_HEADER, &summary_rows(w));
    for p in plots {
        out += &match &p.svg {
            Ok(_) => format!("\n![{}: {}]({})\n", w.name, p.title, p.file),
            Err(why) => format!("\n*{} not drawn: {why}.*\n", p.title),
        };
    }
    if let Some(b) = &w.baseline {
        out += "\n";
        // A comparison without a single row (an invalid candidate) is said in words, not as
        // an empty table.
        if let BaselineOutcome::Compared { comparison, .. } = b {
            if !comparison.rows.is_empty() {
                out += &super::compare::render_markdown(comparison).replace("### ", "### Against the baseline: ");
                out += "\n";
            }
        }
        out += &verdict_words(b);
        out += "\n";
    }
    out + "\n"
}

/// The appendix's lists, in order: (heading, what each result adds to it).
pub const APPENDIX: [&str; 5] = ["Systems", "Sensors and provenance", "Versions", "Commands", "Report inputs"];

/// What one result adds to the appendix's first four lists (`Systems` lines are shown once
/// however many results share them), as Markdown text shared with the HTML report.
pub fn appendix_rows(w: &WorkloadReport) -> [Vec<String>; 4] {
    let s = &w.result.system;
    let system = format!(
        "{} ({}): {}, kernel {}, {} ({} cores, {} threads), {} memory{}",
        s.hostname,
        s.host_class(),
        s.os,
        s.kernel,
        s.cpu_model,
        s.physical_cores,
        s.logical_cores,
        bytes(s.memory_bytes as f64),
        if s.accelerators.is_empty() { String::new() } else { format!(", {}", s.accelerators.join(", ")) }
    );
    let sensors = w
        .result
        .energy_sources
        .iter()
        .map(|src| {
            let idle = w.result.idle_power_w.get(&src.domain).map_or(String::new(), |p| format!(", idle {:.2} W", p.0));
            format!(
                "{}: {} ({}) for {}, {}, sampled at {} Hz, updates every {} s{idle}",
                w.name,
                src.id,
                src.kind,
                src.domain,
                provenance_label(Some(src.provenance)),
                src.sample_hz,
                src.update_period_s
            )
        })
        .collect();
    let version =
        format!("{}: effbench {}, created {}", w.name, w.result.effbench_version, w.result.created_at.to_rfc3339());
    let command = format!("{}: `{}`", w.name, w.result.command.join(" "));
    [vec![system], sensors, vec![version], vec![command]]
}

/// The lines the report adds to its appendix of itself: the first of `Versions`, and
/// `Report inputs`.
pub fn own_rows(meta: &ReportMeta) -> (String, Vec<String>) {
    let mut inputs = meta.inputs.clone();
    if let Some(b) = &meta.baseline {
        inputs.push(format!("--baseline {b}"));
    }
    (format!("report written by effbench {}", meta.effbench_version), inputs)
}

// The file is written in pieces like the HTML page ([`super::html`]): `head`, each result's
// `section`, then `APPENDIX_HEAD` and per list `list_head` and its `item`s.

/// The file up to the first result.
pub fn head(results: usize) -> String {
    format!("# effbench report\n\n{results} result(s).\n\n")
}

pub const APPENDIX_HEAD: &str = "## Appendix\n";

pub fn list_head(heading: &str) -> String {
    format!("\n### {heading}\n\n")
}

pub fn item(row: &str) -> String {
    format!("- {row}\n")
}
