use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use effbench_models::data::DataConfig;
use effbench_models::{Kind, WorkloadSpec};

use super::CliResult;
use crate::backend::Backend;
use crate::baseline::BaselineSpec;
use crate::error::{Error, Exit};
use crate::report::summary::{self, RunOutput};
use crate::run::out::OutDir;
use crate::run::{self, RunPlan};
use crate::sensor::{discover, fake::FakePower, Sensor, Status};
use crate::units::Watts;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Suite {
    /// Every kind of workload, a few minutes on 2 cores.
    Quick,
    /// Every workload.
    Full,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Workload id (repeatable); see `effbench list`.
    #[arg(long = "workload", value_name = "ID", conflicts_with = "suite")]
    pub workloads: Vec<String>,
    /// A suite of workloads (default: quick, when no --workload is given).
    #[arg(long, value_enum)]
    pub suite: Option<Suite>,
    /// Training recipe: a shipped name (see `effbench list`) or a path to a TOML file.
    #[arg(long, default_value = DEFAULT_RECIPE, value_name = "NAME|PATH")]
    pub recipe: String,
    /// Where the math runs: cpu, or external:RUNNER.toml (a vendor runner: inference, and
    /// training with a v1.1 runner; see docs/runner-protocol.md). cuda:N comes in a later version.
    #[arg(long, default_value = "cpu", env = "EFFBENCH_BACKEND")]
    pub backend: String,
    /// Repeats per workload, 1 to 1000; repeat i uses seed i. The result file is rewritten
    /// (atomically) after every repeat so an interrupted run keeps what finished; the cap
    /// bounds that rewriting, and the trace is appended to, not rewritten.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=run::MAX_REPEATS as i64))]
    pub repeat: u32,
    /// Output directory (default: results/<UTC timestamp>-<host>/). Locked for the run; one
    /// that already holds effbench results is refused unless --force.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run into an --out that already holds results: each earlier file is replaced once the
    /// new run's first repeat of that workload is written (never before).
    #[arg(long)]
    pub force: bool,
    /// Idle window before the runs, in seconds: measures idle power for dynamic energy.
    #[arg(long, default_value_t = 5.0)]
    pub idle_secs: f64,
    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Meter sampling rate in Hz (1 to 1000).
    #[arg(long, default_value_t = 10.0, env = "EFFBENCH_SAMPLE_HZ")]
    pub sample_hz: f64,
    /// Directory with the full Fashion-MNIST IDX files (default: the Debian package's path if
    /// installed, else the shipped 10k subset).
    #[arg(long, value_name = "DIR", env = "EFFBENCH_FMNIST_DIR")]
    pub data_dir: Option<PathBuf>,
    /// CPU threads for every workload (default: each workload's measured best), 1 to
    /// max(64, 4 x the CPUs effbench may use).
    #[arg(long, value_parser = crate::threads::parse_arg)]
    pub threads: Option<usize>,
    /// Inference: repeat passes over the queries until a window lasts this long (seconds); at
    /// least 20 updates of the slowest energy source (4 s with the CPU estimate).
    #[arg(long, default_value_t = 1.0)]
    pub min_window_secs: f64,
    /// Seconds of GEMM calibration per thread count (0 skips it, and the fraction of peak).
    #[arg(long, default_value_t = 0.5)]
    pub peak_secs: f64,
    #[command(flatten)]
    pub meter: super::sensors::MeterArgs,
    /// Refuse to run (exit 4, before any work) if a domain the backend uses has only an
    /// estimate; see `effbench sensors`.
    #[arg(long)]
    pub require_measured: bool,
    /// Testing only: a constant fake "measured" power source of this many watts replaces
    /// sensor discovery.
    #[arg(long, hide = true, value_name = "WATTS")]
    pub fake_power: Option<f64>,
    /// After the run, compare each workload with its baseline and print the verdict (as
    /// `compare` does): a result file, a directory of <workload>.json, or `auto` for
    /// baselines/<this machine's class>/. The exit code becomes the worst verdict's.
    #[arg(long, value_name = "PATH|auto")]
    pub baseline: Option<String>,
    /// Testing only (gate calibration): after each repeat's work, busy-wait this fraction of
    /// the work's own time inside the measured window (0.2 = a 20% slowdown). Recorded in the
    /// result as `planted_slowdown`; compare and gate warn about such results.
    #[arg(long, hide = true, value_name = "FRACTION", default_value_t = 0.0)]
    pub plant_slowdown: f64,
    #[command(flatten)]
    pub store: super::StoreArg,
}

/// `--recipe`'s default: every training workload ships one by this name.
pub const DEFAULT_RECIPE: &str = "baseline";

/// A flag's number of seconds: finite and `>= 0` (`Duration` refuses NaN, negatives and
/// values too large to hold).
fn secs(v: f64, flag: &str) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| Error::bad_input(anyhow!("{flag} must be a finite number of seconds >= 0, got {v}")))
}

fn default_out() -> PathBuf {
    let host = sysinfo::System::host_name().unwrap_or_else(|| "host".into());
    let host: String = host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    PathBuf::from("results").join(format!("{}-{host}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")))
}

/// Creates and locks `--out`, proving it writable before any work starts (see [`OutDir`]),
/// and says on stderr which stale temporary files it removed.
fn open_out(dir: &Path, force: bool) -> Result<OutDir, Error> {
    let out = OutDir::open(dir, force).map_err(Error::bad_input)?;
    if !out.removed_stale.is_empty() {
        eprintln!(
            "effbench: removed {} temporary file(s) an interrupted run left in {}: {}",
            out.removed_stale.len(),
            dir.display(),
            out.removed_stale.join(", ")
        );
    }
    Ok(out)
}

pub fn plan(args: RunArgs, command: Vec<String>, allocator: &'static str) -> Result<RunPlan, Error> {
    let backend: Backend = args.backend.parse()?;
    // Numbers first: a NaN or negative window must not cost a sensor discovery.
    let idle = secs(args.idle_secs, "--idle-secs")?;
    let peak_duration = secs(args.peak_secs, "--peak-secs")?;
    secs(args.min_window_secs, "--min-window-secs")?;
    if !(crate::meter::SAMPLE_HZ_RANGE.contains(&args.sample_hz)) {
        return Err(Error::bad_input(anyhow!(
            "--sample-hz must be a number of samples per second in 1..=1000, got {}",
            args.sample_hz
        )));
    }
    args.meter.check().map_err(|e| Error::bad_input(anyhow!(e)))?;
    let threads = match args.threads {
        Some(n) => Some(crate::threads::check(n, "--threads").map_err(|e| Error::bad_input(anyhow!(e)))?),
        None => crate::threads::from_env()
            .map(|n| crate::threads::check(n, "RAYON_NUM_THREADS"))
            .transpose()
            .map_err(|e| Error::bad_input(anyhow!(e)))?,
    };
    let specs: Vec<&'static WorkloadSpec> = if args.workloads.is_empty() {
        WorkloadSpec::suite(matches!(args.suite, Some(Suite::Full)))
    } else {
        args.workloads.iter().map(|id| WorkloadSpec::get(id)).collect::<Result<_, _>>()?
    };
    let any_training = specs.iter().any(|s| s.kind == Kind::Train);
    let mut workloads = Vec::new();
    let mut missing = Vec::new();
    for spec in specs {
        match spec.kind {
            Kind::Infer => workloads.push((spec, None)),
            Kind::Train => match spec.recipe(&args.recipe) {
                Ok(r) => workloads.push((spec, Some(r))),
                Err(effbench_models::ModelError::UnknownRecipe { .. }) => missing.push(spec.id),
                Err(e) => return Err(Error::bad_input(e)),
            },
        }
    }
    if args.recipe != DEFAULT_RECIPE && !any_training {
        return Err(Error::bad_input(anyhow!(
            "--recipe {:?}: recipes apply to training workloads, and only inference workloads were \
             selected ({}); drop --recipe, or add a training workload (`effbench list`)",
            args.recipe,
            workloads.iter().map(|(w, _)| w.id).collect::<Vec<_>>().join(", ")
        )));
    }
    if let Some(&first) = missing.first() {
        let e = match WorkloadSpec::get(first)?.recipe(&args.recipe) {
            Err(e) => e.to_string(),
            Ok(_) => format!("recipe {:?} could not be loaded for {first}", args.recipe),
        };
        return Err(Error::bad_input(anyhow!(
            "{e}\n(no recipe {:?} for: {}; pick workloads with --workload)",
            args.recipe,
            missing.join(", ")
        )));
    }
    if let Some(d) = &args.data_dir {
        if !d.join("train-images-idx3-ubyte.gz").exists() {
            return Err(Error::bad_input(anyhow!(
                "--data-dir {}: no train-images-idx3-ubyte.gz there (expected the Fashion-MNIST IDX files)",
                d.display()
            )));
        }
    }
    if !(args.plant_slowdown >= 0.0 && args.plant_slowdown <= 10.0) {
        return Err(Error::bad_input(anyhow!(
            "--plant-slowdown must be between 0 and 10, got {}",
            args.plant_slowdown
        )));
    }
    let out_dir = args.out.unwrap_or_else(default_out);
    let out_lock = open_out(&out_dir, args.force)?;
    let mut wall = None;
    let sensors: Vec<Box<dyn Sensor>> = match args.fake_power {
        Some(w) => vec![Box::new(FakePower::new("cpu", Watts(w)))],
        None => {
            let domains = backend.domains();
            let mut opts = args.meter.options(&domains.iter().map(String::as_str).collect::<Vec<_>>());
            opts.host_domains = backend.host_domains();
            let (mut candidates, wall_windows) = discover::discover_with_wall(&opts);
            if args.meter.meter.is_some() && wall_windows.is_none() {
                let why = match candidates.iter().find(|c| c.kind == "ptd").map(|c| &c.status) {
                    Some(Status::Unavailable { reason }) => reason.clone(),
                    other => format!("{other:?}"),
                };
                return Err(Error::bad_input(anyhow!("--meter: cannot use the wall meter: {why}")));
            }
            wall = wall_windows;
            // The user named this command: a run must not quietly fall back to the estimate.
            if let Some(cmd) = &args.meter.power_command {
                match candidates.iter().find(|c| c.kind == "command").map(|c| &c.status) {
                    Some(Status::Ok) => {}
                    Some(Status::Unavailable { reason }) => {
                        return Err(Error::bad_input(anyhow!(
                            "--power-command: cannot use `{cmd}`: {reason}\n(fix the command — try it in a \
                             shell — or leave --power-command out to meter with the other sources)"
                        )))
                    }
                    other => return Err(Error::bad_input(anyhow!("--power-command: cannot use `{cmd}`: {other:?}"))),
                }
            }
            let missing = discover::unmeasured_domains(&candidates, &opts.backend_domains);
            if args.require_measured && !missing.is_empty() {
                return Err(Error::invalid(anyhow!(
                    "--require-measured: no measured energy source for {} (only an estimate); \
                     `effbench sensors` lists what was found and how to fix what was not",
                    missing.join(", ")
                )));
            }
            discover::take_sensors(&mut candidates, &opts)
        }
    };
    // An inference window must span many updates of the slowest source (issue 3: at least
    // max(--min-window-secs, 20 x the slowest update period)).
    // The wall meter's live reading is not its energy (that comes from the analyzer's log, with
    // its own window rule below), so it is left out of the 20-updates rule.
    let slowest =
        sensors.iter().map(|s| s.info()).filter(|i| i.kind != "ptd").map(|i| i.update_period_s).fold(0.0, f64::max);
    let mut min_window = args.min_window_secs.max(20.0 * slowest);
    if let Some(w) = &wall {
        // A wall meter's window must hold --meter-min-samples of its samples (run/wall.rs).
        min_window = min_window.max(w.min_window().as_secs_f64());
    }
    Ok(RunPlan {
        workloads,
        backend,
        repeats: args.repeat,
        out_dir,
        out_lock,
        idle,
        sample_hz: args.sample_hz,
        data: DataConfig::discover(args.data_dir.as_deref()),
        weights_dir: effbench_models::infer::default_weights_dir(),
        threads,
        min_infer_window: secs(min_window, "--min-window-secs")?,
        peak_duration,
        sensors,
        wall,
        wall_ranging: args.meter.meter_ranging,
        require_measured: args.require_measured,
        command,
        allocator,
        planted_slowdown: args.plant_slowdown,
        store: args.store.spec().cloned(),
    })
}

/// SIGINT/SIGTERM stop runners and power commands and exit 130/143 (see [`crate::interrupt`]);
/// installed before the plan, which may already start a power command.
pub fn install_interrupts() -> Result<(), Error> {
    crate::interrupt::install()
        .map_err(|e| Error::bad_input(anyhow!("cannot install the SIGINT/SIGTERM handlers: {e}")))
}

pub fn main(args: RunArgs) -> CliResult {
    install_interrupts()?;
    let json = args.json;
    let baseline = args.baseline.as_deref().map(BaselineSpec::parse);
    let plan = plan(args, std::env::args().collect(), crate::ALLOCATOR)?;
    if let Some(b) = &baseline {
        let ids: Vec<&str> = plan.workloads.iter().map(|(w, _)| w.id).collect();
        b.check(&ids).map_err(|e| Error::bad_input(anyhow!(e)))?;
    }
    let out_dir = plan.out_dir.clone();
    let mut progress = crate::report::progress::for_stderr();
    let finished = run::execute(plan, progress.as_mut())?;
    let runs: Vec<RunOutput> = finished.iter().map(|f| RunOutput { path: &f.path, result: &f.result }).collect();
    if json {
        print!("{}", summary::run_json(&runs));
    } else {
        print!("{}", summary::run_text(&runs, &out_dir));
    }
    let invalid = summary::invalid_line(&runs);
    if let Some(line) = &invalid {
        eprint!("{line}");
    }
    if let Some(b) = &baseline {
        let opts = crate::verdict::CompareOptions::default();
        let mut compared = Vec::new();
        for r in &runs {
            let c = b.compare(r.result, &opts).map_err(|e| Error::bad_input(anyhow!(e)))?;
            let text = summary::comparison_text(&c, json);
            if json {
                eprint!("{text}")
            } else {
                print!("{text}")
            }
            compared.push(c);
        }
        if let Some(exit) = crate::baseline::worst_exit(&compared) {
            return Ok(exit.worst(if invalid.is_none() { Exit::Ok } else { Exit::Invalid }));
        }
    }
    if invalid.is_some() {
        return Ok(Exit::Invalid);
    }
    Ok(Exit::Ok)
}
