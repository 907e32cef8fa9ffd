use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{CliResult, Exit, Failure};
use crate::result::RunResult;
use crate::verdict::{compare, CompareOptions, Comparison, Resource, Verdict};

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The candidate's result file.
    pub candidate: PathBuf,
    /// The baseline's result file (see baselines/).
    #[arg(long, value_name = "FILE")]
    pub baseline: PathBuf,
    /// The reduction to show: 0.5 = at least 50% less than the baseline.
    #[arg(long, default_value_t = 0.5)]
    pub target: f64,
    /// Resources to judge, comma-separated: energy, data, time.
    #[arg(long, value_delimiter = ',', default_value = "energy,data")]
    pub resources: Vec<Resource>,
    /// Print the comparison as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the comparison as a Markdown table (for a PR comment).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

fn load(path: &Path) -> Result<RunResult, Failure> {
    RunResult::load(path).map_err(Failure::usage)
}

fn pct(x: f64) -> String {
    format!("{:+.1}%", 100.0 * x)
}

/// The table skeleton shared by the terminal and Markdown renderers.
fn rows(c: &Comparison) -> Vec<[String; 6]> {
    c.rows
        .iter()
        .map(|r| {
            [
                r.resource.to_string(),
                r.metric.clone(),
                format!("{:.4e} -> {:.4e}", r.baseline_mean, r.candidate_mean),
                pct(r.reduction),
                format!("[{}, {}]", pct(r.ci95[0]), pct(r.ci95[1])),
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
    let widths: Vec<usize> =
        (0..6).map(|i| body.iter().map(|r| r[i].chars().count()).chain([HEADER[i].len()]).max().unwrap_or(0)).collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = format!(
        "{}: reduction target {} (energy {})\n",
        c.workload,
        pct(c.target).trim_start_matches('+'),
        if c.energy_label == "estimated" { "ESTIMATED" } else { c.energy_label.as_str() }
    );
    out += &line(&HEADER.map(String::from));
    for r in &body {
        out += &line(r);
    }
    for (res, v) in &c.resources {
        out += &format!("{res}: {v}\n");
    }
    out += &format!("overall: {}\n", c.overall);
    out
}

pub fn render_markdown(c: &Comparison) -> String {
    let mut out = format!(
        "### effbench: `{}`, target {} reduction{}\n\n| {} |\n|{}|\n",
        c.workload,
        pct(c.target).trim_start_matches('+'),
        if c.energy_label == "estimated" { " (energy ESTIMATED)" } else { "" },
        HEADER.join(" | "),
        " --- |".repeat(6)
    );
    for r in rows(c) {
        out += &format!("| {} |\n", r.join(" | "));
    }
    out += &format!("\n**Overall: {}**\n", c.overall);
    out
}

pub fn main(args: CompareArgs) -> CliResult {
    if !(args.target > 0.0 && args.target < 1.0) {
        return Err(Failure::usage(anyhow::anyhow!(
            "--target must be between 0 and 1 (0.5 = 50% less), got {}",
            args.target
        )));
    }
    let candidate = load(&args.candidate)?;
    let baseline = load(&args.baseline)?;
    let opts = CompareOptions { target: args.target, resources: args.resources.clone(), ..Default::default() };
    let c = compare(&candidate, &baseline, &opts);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        print!("{}", render_text(&c));
    }
    if let Some(path) = &args.markdown {
        crate::fsutil::write_atomic(path, render_markdown(&c).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(match c.overall {
        Verdict::Met => Exit::Ok,
        Verdict::NotMet => Exit::NotMet,
        Verdict::Inconclusive { .. } => Exit::Inconclusive,
        Verdict::Invalid { .. } | Verdict::Incomparable { .. } => Exit::Invalid,
    })
}
