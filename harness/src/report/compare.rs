//! The comparison table of `compare` and `run --baseline`, for the terminal and as Markdown.

use crate::verdict::Comparison;

/// How energy was compared, in one line: the scope and each side's domains there, or why no
/// scope could be compared.
pub fn scope_line(c: &Comparison) -> String {
    match &c.energy_scope {
        Some(p) => format!(
            "energy at {} scope ({}): candidate {}, baseline {}",
            p.scope,
            if p.label == "estimated" { "ESTIMATED" } else { p.label },
            p.candidate_domains.join(" + "),
            p.baseline_domains.join(" + ")
        ),
        None => "energy: no scope could be compared (see the energy row)".to_string(),
    }
}

/// `+12.3%`; `-` where the figure could not be computed (NaN), never `NaN%`.
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}%", 100.0 * x)
    } else {
        "-".to_string()
    }
}

/// A mean in the table; `-` where a side has none.
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4e}")
    } else {
        "-".to_string()
    }
}

/// The table skeleton shared by the terminal and Markdown renderers.
fn rows(c: &Comparison) -> Vec<[String; 6]> {
    c.rows
        .iter()
        .map(|r| {
            [
                r.resource.to_string(),
                r.metric.clone(),
                format!("{} -> {}", num(r.baseline_mean), num(r.candidate_mean)),
                pct(r.reduction),
                if r.ci95.iter().all(|x| x.is_finite()) {
                    format!("[{}, {}]", pct(r.ci95[0]), pct(r.ci95[1]))
                } else {
                    "-".to_string()
                },
                if crate::verdict::INFORMATIONAL.contains(&r.metric.as_str()) {
                    format!("({}; informational)", r.verdict)
                } else {
                    r.verdict.to_string()
                },
            ]
        })
        .collect()
}

const HEADER: [&str; 6] =
    ["resource", "metric", "baseline -> candidate (means)", "reduction", "95% interval", "verdict"];

pub fn render_text(c: &Comparison) -> String {
    let body = rows(c);
    let mut out = format!(
        "{}: reduction target {} (energy {})\n",
        c.workload,
        pct(c.target).trim_start_matches('+'),
        if c.energy_label == "estimated" { "ESTIMATED" } else { c.energy_label.as_str() }
    );
    out += &scope_line(c);
    out.push('\n');
    out += &super::table::columns(&HEADER, &body);
    for (res, v) in &c.resources {
        out += &format!("{res}: {v}\n");
    }
    out += &format!("overall: {}\n", c.overall);
    for w in &c.warnings {
        out += &format!("warning: {w}\n");
    }
    out
}

pub fn render_markdown(c: &Comparison) -> String {
    let mut out = format!(
        "### effbench: `{}`, target {} reduction{}\n\n| {} |\n|{}\n",
        c.workload,
        pct(c.target).trim_start_matches('+'),
        if c.energy_label == "estimated" { " (energy ESTIMATED)" } else { "" },
        HEADER.join(" | "),
        " --- |".repeat(6)
    );
    for r in rows(c) {
        out += &format!("| {} |\n", r.join(" | "));
    }
    out += &format!("\n{}\n", scope_line(c));
    out += &format!("\n**Overall: {}**\n", c.overall);
    for w in &c.warnings {
        out += &format!("\n> warning: {w}\n");
    }
    out
}
