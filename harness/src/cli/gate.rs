use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;

use super::CliResult;
use crate::error::Error;
use std::collections::BTreeMap;

use crate::gate::history::HistoryRun;
use crate::gate::{gate_sets, load_results, GateMetric, GateOptions};
use crate::result::RunResult;

#[derive(Args, Debug)]
pub struct GateArgs {
    /// The candidate: a result file, or a directory of result files (e.g. a `run --out` dir).
    pub candidate: PathBuf,
    /// The baseline: a result file or a directory of them (e.g. baselines/cpu-amd-epyc-2t),
    /// matched with the candidate by workload id; or `history[:N]`, the last N (default 10)
    /// runs of the same workload, recipe, machine class and backend in the store (`--store`),
    /// judged by the spread of their run means. A directory named `history` is `./history`.
    #[arg(long, value_name = "FILE|DIR|history[:N]")]
    pub baseline: BaselineArg,
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
    #[command(flatten)]
    pub store: super::StoreArg,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// What `--baseline` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaselineArg {
    Files(PathBuf),
    /// The last N runs in the store.
    History(usize),
}

/// Runs a gate from history uses when `--baseline history` gives no N.
pub const DEFAULT_HISTORY: usize = 10;

impl std::str::FromStr for BaselineArg {
    type Err = String;

    fn from_str(s: &str) -> Result<BaselineArg, String> {
        let Some(rest) = s.strip_prefix("history") else { return Ok(BaselineArg::Files(PathBuf::from(s))) };
        match rest.strip_prefix(':') {
            None if rest.is_empty() => Ok(BaselineArg::History(DEFAULT_HISTORY)),
            None => Ok(BaselineArg::Files(PathBuf::from(s))),
            Some(n) => match n.parse::<usize>() {
                Ok(n) if (crate::gate::history::MIN_RUNS..=10_000).contains(&n) => Ok(BaselineArg::History(n)),
                _ => Err(format!(
                    "history:N needs N between {} and 10000 (the number of earlier runs), got {n:?}",
                    crate::gate::history::MIN_RUNS
                )),
            },
        }
    }
}

pub fn main(args: GateArgs) -> CliResult {
    if !(args.max_regression >= 0.0 && args.max_regression < 10.0) {
        return Err(Error::bad_input(anyhow!(
            "--max-regression must be a fraction between 0 and 10 (0.05 = 5%), got {}",
            args.max_regression
        )));
    }
    let candidates = load_results(&args.candidate).map_err(Error::bad_input)?;
    for (path, r) in candidates.values() {
        crate::validity::check_file(r, path)?;
    }
    let opts = GateOptions {
        max_regression: args.max_regression,
        metrics: args.metrics.clone(),
        unpaired: args.unpaired,
        scope: args.scope.scope,
        ..Default::default()
    };
    let report = match &args.baseline {
        BaselineArg::Files(path) => {
            let baselines = load_results(path).map_err(Error::bad_input)?;
            for (path, r) in baselines.values() {
                crate::validity::check_file(r, path)?;
            }
            for (path, base) in candidates.keys().filter_map(|id| baselines.get(id)) {
                crate::baseline::check_usable(path, base).map_err(Error::bad_input)?;
            }
            gate_sets(&candidates, &baselines, &opts)
        }
        BaselineArg::History(n) => {
            let histories = histories(&candidates, *n, &args.store)?;
            crate::gate::gate_history_sets(&candidates, &histories, *n, &opts)
        }
    }
    .map_err(Error::bad_input)?;
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

/// Each candidate's history from the store: the last `n` runs of its workload, recipe, machine
/// class and backend, without the candidate itself (a run records itself into the store).
fn histories(
    candidates: &BTreeMap<String, (PathBuf, RunResult)>,
    n: usize,
    store: &super::StoreArg,
) -> Result<BTreeMap<String, (String, Vec<HistoryRun>)>, Error> {
    let Some(spec) = store.spec() else {
        return Err(Error::bad_input(anyhow!("--baseline history reads the store, and --store none names none")));
    };
    let db = crate::store::Store::open(spec)?;
    let mut out = BTreeMap::new();
    for (id, (path, cand)) in candidates {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading {}", path.display())).map_err(Error::bad_input)?;
        let sha = crate::store::index::sha256_hex(&bytes);
        let runs = db.recent_runs(&crate::store::history_query(cand, n, vec![sha]))?;
        let runs = runs
            .into_iter()
            .map(|r| HistoryRun { label: format!("run {} ({})", r.run_id, r.path.display()), result: r.result })
            .collect();
        out.insert(id.clone(), (format!("history:{n} in {spec}"), runs));
    }
    Ok(out)
}
