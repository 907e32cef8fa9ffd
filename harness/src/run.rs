//! One measured run: peak calibration, idle window, then for each workload its repeats, each
//! in its own meter window, with the result file rewritten atomically after every repeat so an
//! interrupted run keeps what finished.
//!
//! Phase order (tested in tests/cli.rs): out dir locked and checked (see [`out`]) -> meter
//! started -> GEMM peak -> idle window -> per workload: data loaded (unmeasured) -> per repeat:
//! net built from the seed (unmeasured) -> window [work] -> result written, trace appended.
//!
//! `--backend external:` runs inference workloads through a runner (see [`external`]) and
//! training workloads through a v1.1 runner (see [`external_train`]).

mod external;
mod external_train;
mod kept;
pub mod out;
mod repeat;
mod runner_window;
mod wall;

use kept::Kept;
use repeat::{infer_repeat, train_repeat};

use wall::{wall_begin, wall_end};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use effbench_models::data::DataConfig;
use effbench_models::infer::InferSession;
use effbench_models::recipe::LoadedRecipe;
use effbench_models::train::{self, TrainOutcome};
use effbench_models::{Kind, WorkloadSpec};

use crate::backend::Backend;
use crate::meter::{Mark, Meter};
use crate::report::progress::Progress;
use crate::result::{BackendInfo, RecipeInfo, RunResult, WorkloadInfo, WorkloadKind, SCHEMA};
use crate::sensor::{Provenance, Sensor, SourceInfo};
use crate::system::SystemInfo;
use crate::units::{Seconds, Watts};
use crate::{fsutil, peak, threads};

/// The most repeats a run takes (`--repeat`): the result file is rewritten after every
/// repeat, so this bounds the rewriting (about 1000 x 1000 repeats' JSON at the cap).
pub const MAX_REPEATS: u32 = 1000;

/// Everything a run needs, validated: the rest of the code sees only this.
pub struct RunPlan {
    pub workloads: Vec<(&'static WorkloadSpec, Option<LoadedRecipe>)>,
    pub backend: Backend,
    pub repeats: u32,
    pub out_dir: PathBuf,
    /// `out_dir`, locked for the whole run (see [`out`]).
    pub out_lock: out::OutDir,
    pub idle: Duration,
    pub sample_hz: f64,
    pub data: DataConfig,
    pub weights_dir: PathBuf,
    /// Overrides each workload's measured thread count.
    pub threads: Option<usize>,
    /// Inference: repeat passes over the queries until a window lasts at least this long.
    pub min_infer_window: Duration,
    pub peak_duration: Duration,
    pub sensors: Vec<Box<dyn Sensor>>,
    /// The wall meter's window handle (`--meter ptd://`): each repeat's window is also marked
    /// on the analyzer, and its own report is stored beside the meter's integral.
    pub wall: Option<crate::sensor::ptd::PtdWindows>,
    /// `--meter-ranging`: before each workload's repeats, one unrecorded window in auto range,
    /// then fixed ranges from what it saw (MLPerf Power's ranging mode).
    pub wall_ranging: bool,
    /// `--require-measured`: also makes a repeat invalid when the wall meter's uncertainty is
    /// not known to be within its limit.
    pub require_measured: bool,
    pub command: Vec<String>,
    pub allocator: &'static str,
    /// Testing only: busy-wait this fraction of each repeat's work time inside its window
    /// (see [`plant_slowdown`]); 0 for a genuine run.
    pub planted_slowdown: f64,
    /// Where each finished workload's result is recorded (`--store`); `None` for `none`.
    pub store: Option<crate::store::StoreSpec>,
}

/// What a finished workload left behind.
pub struct Finished {
    pub path: PathBuf,
    pub result: RunResult,
}

impl Finished {
    pub fn valid_repeats(&self) -> usize {
        self.result.repeats.iter().filter(|r| r.valid).count()
    }
}

/// The weakest provenance among the sources: "estimated" if any is an estimate, else
/// "vendor-reported" if any is, else "measured".
pub fn energy_label(sources: &[SourceInfo]) -> &'static str {
    if sources.iter().any(|s| s.provenance == Provenance::Estimated) {
        "estimated"
    } else if sources.iter().any(|s| s.provenance == Provenance::VendorReported) {
        "vendor-reported"
    } else {
        "measured"
    }
}

/// Runs the plan. An error before any repeat began is bad input (exit 2, or 4 for what
/// [`crate::error::classify`] says); once a repeat's work has begun, a failure (a runner that
/// dies or misbehaves, a wall meter that stops answering, a write that fails) cuts the run
/// short (exit 5): every repeat finished before it is already in its result file (written
/// after each repeat), the one in progress is not, and the message says how many were kept.
pub fn execute(plan: RunPlan, progress: &mut dyn Progress) -> crate::error::Result<Vec<Finished>> {
    let planned = plan.workloads.len() * plan.repeats as usize;
    let out_dir = plan.out_dir.clone();
    let mut kept = Kept::default();
    measure(plan, progress, &mut kept).map_err(|e| kept.error(e, planned, &out_dir))
}

fn measure(mut plan: RunPlan, progress: &mut dyn Progress, kept: &mut Kept) -> Result<Vec<Finished>> {
    let sensors = std::mem::take(&mut plan.sensors);
    let meter = Meter::start(sensors, plan.sample_hz).context("starting the energy meter")?;
    let plan = &plan;
    let dev = plan.backend.device();

    // rayon's pool, sized before any candle work to the most threads a workload uses.
    let most = plan.workloads.iter().map(|(s, _)| plan.threads.unwrap_or(s.threads)).max().unwrap_or(1);
    threads::size_pool(most).map_err(anyhow::Error::msg).context("sizing the CPU thread pool")?;

    // The GEMM peak for every thread count used, measured before the idle window so the
    // machine has settled when idle power is read.
    let mut peaks: BTreeMap<usize, f64> = BTreeMap::new();
    for (spec, _) in &plan.workloads {
        let t = plan.threads.unwrap_or(spec.threads);
        if !peaks.contains_key(&t) && !plan.peak_duration.is_zero() {
            threads::set(t);
            let p = peak::measure(&dev, t, plan.peak_duration).context("measuring the GEMM peak")?;
            progress.note(&format!("GEMM peak, {t} thread(s): {:.1} GFLOP/s (f32, n = {})", p.flops_per_s / 1e9, p.n));
            peaks.insert(t, p.flops_per_s);
        }
    }

    let wall_idle = if plan.idle.is_zero() { None } else { wall::idle_begin(plan)? };
    let idle_begin = meter.mark();
    if !plan.idle.is_zero() {
        progress.note(&format!("idle window: {:.1} s", plan.idle.as_secs_f64()));
        std::thread::sleep(plan.idle);
    }
    let idle_end = meter.mark();
    let idle_window = meter.window(&idle_begin, &idle_end);
    let mut idle_power: BTreeMap<String, Watts> = if plan.idle.is_zero() {
        BTreeMap::new()
    } else {
        // An incomplete idle window gives no idle power for that domain (no dynamic energy),
        // rather than a wrong one.
        for (d, why) in &idle_window.unresolved {
            progress.note(&format!("idle window: {d} energy unresolved, so no idle {d} power: {why}"));
        }
        let complete = |d: &String| !idle_window.unresolved.contains_key(d);
        idle_window.avg_power_w().into_iter().filter(|(d, _)| complete(d)).map(|(d, w)| (d, Watts(w))).collect()
    };
    wall::idle_end(plan, wall_idle, &mut idle_power, progress)?;

    let mut finished = Vec::new();
    for (spec, recipe) in &plan.workloads {
        let t = plan.threads.unwrap_or(spec.threads);
        threads::set(t);
        let peak = peaks.get(&t).copied();
        let idle = (&idle_begin, &idle_end);
        let f = run_workload(plan, spec, recipe.as_ref(), t, peak, &meter, &idle_power, idle, progress, kept)
            .with_context(|| format!("workload {}", spec.id))?;
        // The file is final: index it. A store that fails only warns (the run is never lost).
        if let Some(w) = plan.store.as_ref().and_then(|s| crate::store::record_or_warning(s, &f.path)) {
            progress.note(&w);
        }
        finished.push(f);
    }
    if let Some(w) = &plan.wall {
        w.restore_ranges().context("wall meter: restoring the analyzer's ranges")?;
    }
    Ok(finished)
}

#[allow(clippy::too_many_arguments)]
fn run_workload(
    plan: &RunPlan,
    spec: &'static WorkloadSpec,
    recipe: Option<&LoadedRecipe>,
    threads: usize,
    peak: Option<f64>,
    meter: &Meter,
    idle_power: &BTreeMap<String, Watts>,
    idle: (&Mark, &Mark),
    progress: &mut dyn Progress,
    kept: &mut Kept,
) -> Result<Finished> {
    let dev = plan.backend.device();
    let mut files = out::WorkloadFiles::new(&plan.out_dir, spec.id);
    progress.workload_start(spec.id, plan.repeats);

    let mut work = match spec.kind {
        Kind::Train => match &plan.backend {
            Backend::External(cfg) => {
                let recipe = recipe.context("training workloads have a recipe")?;
                Work::ExternalTrain(Box::new(external_train::Trainer::start(plan, cfg, spec, recipe, threads)?))
            }
            _ => Work::Train(spec.build_task(&plan.data)?),
        },
        Kind::Infer => {
            let session = InferSession::new(spec, &plan.data, &plan.weights_dir, &dev)?;
            match &plan.backend {
                Backend::External(cfg) => {
                    Work::External(Box::new(external::Runner::start(plan, cfg, spec, session, threads)?))
                }
                _ => Work::Infer(Box::new(session)),
            }
        }
    };
    let flops_per_unit = match &work {
        Work::Train(_) | Work::ExternalTrain(_) => spec.flops_per_unit(spec.build_net(0, &dev)?.as_ref()),
        Work::Infer(s) => spec.flops_per_unit(s.net()),
        Work::External(r) => spec.flops_per_unit(r.session.net()),
    };

    let mut result = RunResult {
        schema: SCHEMA.to_string(),
        effbench_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: chrono::Utc::now(),
        command: plan.command.clone(),
        workload: WorkloadInfo {
            id: spec.id.to_string(),
            kind: match spec.kind {
                Kind::Train => WorkloadKind::Train,
                Kind::Infer => WorkloadKind::Infer,
            },
            unit: spec.unit.to_string(),
            quality_metric: spec.quality_metric.to_string(),
            quality_target: spec.quality_target,
            higher_is_better: spec.higher_is_better,
            model: spec.model.to_string(),
            dataset: spec.dataset_label(&plan.data),
            flops_per_unit: Some(flops_per_unit),
        },
        recipe: match recipe {
            Some(r) => RecipeInfo {
                name: r.recipe.name.clone(),
                sha256: r.sha256.clone(),
                path: r.path.as_ref().map(|p| p.display().to_string()),
                params: serde_json::to_value(&r.recipe)?,
            },
            None => RecipeInfo {
                name: "inference".into(),
                sha256: String::new(),
                path: None,
                params: serde_json::json!({ "batch_size": spec.batch, "queries": spec.query_count() }),
            },
        },
        backend: BackendInfo {
            kind: plan.backend.to_string(),
            device: plan.backend.to_string(),
            precision: "f32".into(),
            threads,
            allocator: plan.allocator.to_string(),
            domain: plan.backend.domains().first().cloned(),
            division: None,
            runner_config_sha256: None,
        },
        system: SystemInfo::collect(compiled_features(), plan.allocator, threads),
        energy_sources: meter.sources(),
        idle_power_w: idle_power.clone(),
        repeats: Vec::new(),
        peak_flops_per_s: peak,
        planted_slowdown: (plan.planted_slowdown > 0.0).then_some(plan.planted_slowdown),
        summary: BTreeMap::new(),
    };
    match &work {
        Work::External(r) => r.describe(&mut result),
        Work::ExternalTrain(t) => t.describe(&mut result),
        _ => {}
    }
    // Refuse an unwritable destination before the first repeat's work, not after it; an
    // earlier result (--force) stays whole until the first repeat replaces it.
    files.check_writable()?;

    kept.began = true;
    if plan.wall_ranging {
        ranging_pass(plan, spec, recipe, &mut work, progress)?;
    }
    let mut windows: Vec<(String, Mark, Mark)> = Vec::new();
    for seed in 0..plan.repeats as u64 {
        let started = Instant::now();
        let repeat = match &mut work {
            Work::Train(task) => {
                let recipe = recipe.expect("training workloads have a recipe");
                let mut net = Some(spec.build_net(seed, &dev)?);
                let target = spec.target(&recipe.recipe);
                fsutil::reset_peak_rss();
                plan.backend.synchronize()?;
                let wall_mark = wall_begin(plan, spec.id, seed)?;
                let begin = meter.mark();
                let (t0, cpu0) = (Instant::now(), fsutil::process_cpu_s());
                // With a wall meter, the same seed is trained again until the window resolves
                // (run/wall.rs); later passes build their net inside the window (milliseconds).
                let (mut passes, mut first, mut differing) = (0u32, None::<TrainOutcome>, Vec::new());
                while passes == 0 || t0.elapsed() < wall::min_window(plan) {
                    let n = match net.take() {
                        Some(n) => n,
                        None => spec.build_net(seed, &dev)?,
                    };
                    let show = passes == 0;
                    let out = train::train(task.as_ref(), n.as_ref(), &recipe.recipe, target, seed, &dev, &mut |e| {
                        if show {
                            progress.evaluation(e.samples, e.quality)
                        }
                    })?;
                    plan.backend.synchronize()?;
                    passes += 1;
                    match &first {
                        None => first = Some(out),
                        Some(f) if f.samples_to_target != out.samples_to_target => {
                            differing.push(out.samples_to_target)
                        }
                        Some(_) => {}
                    }
                }
                let out = first.expect("at least one pass ran");
                plant_slowdown(plan.planted_slowdown, t0.elapsed(), threads);
                let cpu = cpu_since(cpu0);
                let end = meter.mark();
                let window = meter.window(&begin, &end).per_pass(passes);
                windows.push((format!("repeat-{seed}"), begin, end));
                let mut r = train_repeat(spec, seed, &out, &window, idle_power, flops_per_unit, peak);
                r.cpu_s = wall::per_pass(cpu, passes);
                if passes > 1 {
                    r.passes = Some(passes);
                }
                if !differing.is_empty() {
                    r.meter_warnings.push(format!(
                        "{passes} passes of seed {seed} in one window did not all reach the target after the same \
                         samples: first {:?}, later {differing:?}; data figures are the first pass's",
                        out.samples_to_target
                    ));
                }
                wall_end(plan, spec.id, wall_mark, &mut r, idle_power)?;
                r
            }
            Work::Infer(session) => {
                session.pass()?; // warm-up: caches, allocator, thread pool (unmeasured)
                fsutil::reset_peak_rss();
                plan.backend.synchronize()?;
                let wall_mark = wall_begin(plan, spec.id, seed)?;
                let begin = meter.mark();
                let (t0, cpu0) = (Instant::now(), fsutil::process_cpu_s());
                let mut passes = Vec::new();
                while passes.is_empty() || t0.elapsed() < plan.min_infer_window {
                    passes.push(session.pass()?);
                }
                plan.backend.synchronize()?;
                plant_slowdown(plan.planted_slowdown, t0.elapsed(), threads);
                let cpu = cpu_since(cpu0);
                let end = meter.mark();
                let window = meter.window(&begin, &end);
                windows.push((format!("repeat-{seed}"), begin, end));
                let mut r = infer_repeat(spec, seed, &passes, &window, idle_power, flops_per_unit, peak);
                r.cpu_s = cpu;
                wall_end(plan, spec.id, wall_mark, &mut r, idle_power)?;
                r
            }
            Work::External(runner) => {
                let r = runner.repeat(plan, spec, seed, meter, idle_power, flops_per_unit, peak, &mut windows)?;
                runner.describe(&mut result);
                r
            }
            Work::ExternalTrain(t) => {
                let r = t.repeat(plan, spec, seed, meter, idle_power, flops_per_unit, peak, &mut windows, progress)?;
                t.describe(&mut result);
                r
            }
        };
        progress.repeat_done(spec.id, &repeat, started.elapsed(), crate::run::energy_label(&result.energy_sources));
        let mut repeat = repeat;
        repeat.energy_scopes = crate::scope::repeat_scopes(&result, &repeat);
        result.repeats.push(repeat);
        result.summarise(0);
        if let (1, Backend::External(cfg)) = (result.repeats.len(), &plan.backend) {
            write_runner_config(plan, spec.id, cfg)?;
        }
        files.write(&result, meter, idle, &windows)?;
        kept.repeats += 1;
    }
    match work {
        Work::External(runner) => runner.finish()?,
        Work::ExternalTrain(t) => t.finish()?,
        _ => {}
    }
    progress.workload_done(spec.id);
    Ok(Finished { path: files.result_path().to_path_buf(), result })
}

/// The runner TOML's bytes, the ones `backend.runner_config_sha256` hashes, as
/// `<workload>.runner.toml` beside the result (a bundle carries it; `effbench check` re-hashes
/// it). Written with the first repeat's result, so an earlier run's copy (`--force`) is replaced
/// only when its result is.
fn write_runner_config(plan: &RunPlan, workload: &str, cfg: &crate::backend::external::RunnerConfig) -> Result<()> {
    let path = crate::backend::external::process::config_copy_path(&plan.out_dir, workload);
    fsutil::write_atomic(&path, &cfg.bytes).with_context(|| format!("writing {}", path.display()))
}

enum Work {
    Train(Box<dyn effbench_models::task::Task>),
    Infer(Box<InferSession>),
    External(Box<external::Runner>),
    ExternalTrain(Box<external_train::Trainer>),
}

/// `--meter-ranging`: the workload's unrecorded ranging pass (seed 0) in auto range, then fixed
/// ranges (see [`wall::ranging`]).
fn ranging_pass(
    plan: &RunPlan,
    spec: &'static WorkloadSpec,
    recipe: Option<&LoadedRecipe>,
    work: &mut Work,
    progress: &mut dyn Progress,
) -> Result<()> {
    let dev = plan.backend.device();
    match work {
        Work::Train(task) => {
            let recipe = recipe.expect("training workloads have a recipe");
            let target = spec.target(&recipe.recipe);
            wall::ranging(plan, spec.id, progress, &mut || {
                let net = spec.build_net(0, &dev)?;
                train::train(task.as_ref(), net.as_ref(), &recipe.recipe, target, 0, &dev, &mut |_| {})?;
                Ok(())
            })
        }
        Work::Infer(session) => wall::ranging(plan, spec.id, progress, &mut || {
            session.pass()?;
            Ok(())
        }),
        Work::External(_) | Work::ExternalTrain(_) => {
            progress.note(
                "wall meter: no ranging pass through a runner; set the analyzer's ranges yourself (SR) or \
                 its uncertainty stays unknown",
            );
            Ok(())
        }
    }
}

/// The process's CPU time since `start` (see [`fsutil::process_cpu_s`]).
fn cpu_since(start: Option<f64>) -> Option<Seconds> {
    Some(Seconds(fsutil::process_cpu_s()? - start?))
}

/// Testing only (`run --plant-slowdown`): busy-waits `fraction × work` on `threads` threads,
/// so the repeat takes that much longer and keeps the CPU as busy as the work did. Recorded in
/// the result as `planted_slowdown`.
fn plant_slowdown(fraction: f64, work: Duration, threads: usize) {
    if fraction <= 0.0 {
        return;
    }
    let until = Instant::now() + work.mul_f64(fraction);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            });
        }
    });
}

pub fn compiled_features() -> Vec<String> {
    let mut f = Vec::new();
    if cfg!(feature = "cuda") {
        f.push("cuda".to_string());
    }
    f
}
