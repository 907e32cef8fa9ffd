use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};

use super::run::{plan, RunArgs, Suite};
use super::sensors::MeterArgs;
use super::CliResult;
use crate::error::{Error, Exit};

#[derive(Args, Debug)]
pub struct BaselineArgs {
    #[command(subcommand)]
    pub command: BaselineCommand,
}

#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// Run workloads (at least 5 repeats) and store the results as baselines/<system>/<id>.json.
    Record(RecordArgs),
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Workload id (repeatable).
    #[arg(long = "workload", value_name = "ID", conflicts_with = "suite", required_unless_present = "suite")]
    pub workloads: Vec<String>,
    /// Every workload of a suite.
    #[arg(long, value_enum)]
    pub suite: Option<Suite>,
    #[arg(long, default_value = "baseline", value_name = "NAME|PATH")]
    pub recipe: String,
    /// The reference system's name (default: this machine's class, e.g. cpu-amd-epyc-2t).
    #[arg(long)]
    pub system: Option<String>,
    /// Repeats (at least 5, so comparisons can compute intervals).
    #[arg(long, default_value_t = 5)]
    pub repeat: u32,
    /// Replace an existing baseline file.
    #[arg(long)]
    pub force: bool,
    /// The baselines directory.
    #[arg(long, default_value = "baselines", value_name = "DIR")]
    pub dir: PathBuf,
    /// Full Fashion-MNIST IDX files (see `run --data-dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 5.0)]
    pub idle_secs: f64,
    #[command(flatten)]
    pub meter: MeterArgs,
    #[command(flatten)]
    pub store: super::StoreArg,
}

pub fn main(args: BaselineArgs) -> CliResult {
    let BaselineCommand::Record(a) = args.command;
    super::run::install_interrupts()?;
    if a.repeat < 5 {
        return Err(Error::bad_input(anyhow!("--repeat {}: a baseline needs at least 5 repeats", a.repeat)));
    }
    if a.repeat > crate::run::MAX_REPEATS {
        return Err(Error::bad_input(anyhow!("--repeat {}: at most {} repeats", a.repeat, crate::run::MAX_REPEATS)));
    }
    let system = a.system.clone().unwrap_or_else(crate::system::this_host_class);
    if system.is_empty() || system.contains(['/', '\\']) || system.starts_with('.') {
        return Err(Error::bad_input(anyhow!("--system {system:?} must be a plain folder name")));
    }
    let target_dir = a.dir.join(&system);
    let staging = target_dir.join(format!(".record-{}", std::process::id()));
    let run_args = RunArgs {
        workloads: a.workloads.clone(),
        suite: a.suite,
        recipe: a.recipe.clone(),
        backend: "cpu".into(),
        repeat: a.repeat,
        out: Some(staging.clone()),
        // The staging folder is this process's own; anything in it is from a dead run.
        force: true,
        idle_secs: a.idle_secs,
        json: false,
        sample_hz: crate::meter::DEFAULT_SAMPLE_HZ,
        data_dir: a.data_dir.clone(),
        threads: None,
        min_window_secs: 1.0,
        peak_secs: 0.5,
        meter: a.meter.clone(),
        require_measured: false,
        fake_power: None,
        baseline: None,
        plant_slowdown: 0.0,
        // Recorded below, from where the file ends up.
        store: super::StoreArg::none(),
    };
    // Refuse to overwrite before any work starts.
    let plan = plan(run_args, std::env::args().collect(), crate::ALLOCATOR)?;
    let existing: Vec<String> = plan
        .workloads
        .iter()
        .map(|(w, _)| target_dir.join(format!("{}.json", w.id)))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() && !a.force {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(Error::bad_input(anyhow!("baseline exists (use --force to replace it): {}", existing.join(", "))));
    }
    let mut progress = crate::report::progress::for_stderr();
    let finished = crate::run::execute(plan, progress.as_mut())?;
    let mut invalid = false;
    for f in &finished {
        let dest = target_dir.join(format!("{}.json", f.result.workload.id));
        std::fs::rename(&f.path, &dest)
            .with_context(|| format!("moving {} to {}", f.path.display(), dest.display()))?;
        invalid |= f.valid_repeats() < f.result.repeats.len();
        print!("{}", crate::report::listing::baseline_line(&dest, f.valid_repeats(), f.result.repeats.len()));
        if let Some(w) = a.store.spec().and_then(|s| crate::store::record_or_warning(s, &dest)) {
            eprintln!("effbench: {w}");
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(if invalid { Exit::Invalid } else { Exit::Ok })
}
