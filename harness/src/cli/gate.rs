use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;

use super::CliResult;
use crate::error::Error;
use crate::gate::{gate_sets, load_results, GateMetric, GateOptions};

#[derive(Args, Debug)]
pub struct GateArgs {
    /// The candidate: a result file, or a directory of result files (e.g. a `run --out` dir).
    pub candidate: PathBuf,
    /// The baseline: a result file or a directory of them (e.g. baselines/cpu-amd-epyc-2t),
    /// matched with the candidate by workload id.
    #[arg(long, value_name = "FILE|DIR")]
    pub baseline: PathBuf,
    /// Largest tolerated growth: 0.05 = fail when the candidate is, beyond noise, more than 5%
    /// worse than the baseline.
    #[arg(long, default_value_t = 0.05)]
    pub max_regression: f64,
    /// Metrics to gate, comma-separated: energy, time (the process's CPU time), wall
    /// (wall-clock time), data.
    #[arg(long, value_delimiter = ',', default_value = "energy,time,data")]
    pub metrics: Vec<GateMetric>,
    #[command(flatten)]
    pub scope: super::ScopeArg,
    /// Also write the outcome as JUnit XML (one test case per workload and metric).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Resample the two sides apart even when they ran the same seeds (calibration only: see
    /// bench/calibrate-gate.sh).
    #[arg(long, hide = true)]
    pub unpaired: bool,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn main(args: GateArgs) -> CliResult {
    if !(args.max_regression >= 0.0 && args.max_regression < 10.0) {
        return Err(Error::bad_input(anyhow!(
            "--max-regression must be a fraction between 0 and 10 (0.05 = 5%), got {}",
            args.max_regression
        )));
    }
    let candidates = load_results(&args.candidate).map_err(Error::bad_input)?;
    let baselines = load_results(&args.baseline).map_err(Error::bad_input)?;
    for (path, r) in candidates.values().chain(baselines.values()) {
        crate::validity::check_file(r, path)?;
    }
    for (path, base) in candidates.keys().filter_map(|id| baselines.get(id)) {
        crate::baseline::check_usable(path, base).map_err(Error::bad_input)?;
    }
    let opts = GateOptions {
        max_regression: args.max_regression,
        metrics: args.metrics.clone(),
        unpaired: args.unpaired,
        scope: args.scope.scope,
        ..Default::default()
    };
    let report = gate_sets(&candidates, &baselines, &opts).map_err(Error::bad_input)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::report::gate::render_text(&report));
    }
    if let Some(path) = &args.junit {
        crate::fsutil::write_atomic(path, crate::report::junit::render(&report).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report.exit_code)
}
