use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::CliResult;
use crate::error::Error;
use crate::report::compare::{render_markdown, render_text};
use crate::result::RunResult;
use crate::verdict::{compare, CompareOptions, Resource};

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
    #[command(flatten)]
    pub scope: super::ScopeArg,
    /// Print the comparison as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the comparison as a Markdown table (for a PR comment).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

fn load(path: &Path) -> Result<RunResult, Error> {
    RunResult::load(path).map_err(Error::bad_input)
}

pub fn main(args: CompareArgs) -> CliResult {
    if !(args.target > 0.0 && args.target < 1.0) {
        return Err(Error::bad_input(anyhow::anyhow!(
            "--target must be between 0 and 1 (0.5 = 50% less), got {}",
            args.target
        )));
    }
    let candidate = load(&args.candidate)?;
    let baseline = load(&args.baseline)?;
    for (path, r) in [(&args.candidate, &candidate), (&args.baseline, &baseline)] {
        crate::validity::check_file(r, path)?;
    }
    crate::baseline::check_usable(&args.baseline, &baseline).map_err(Error::bad_input)?;
    let opts = CompareOptions {
        target: args.target,
        resources: args.resources.clone(),
        scope: args.scope.scope,
        ..Default::default()
    };
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
    Ok(c.overall.exit_code())
}
