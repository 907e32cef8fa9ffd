//! A training workload through a runner (`--backend external:PATH.toml`, Runner Protocol v1.1).
//! The runner is started and sent `train_load` before the first window (unmeasured); each
//! repeat is
//!
//! ```text
//! stats -> mark begin -> meter mark -> train (fetch ..., evaluate ..., done) -> mark end
//! -> meter mark -> stats
//! ```
//!
//! effbench serves every batch from the workload's own task, scores every evaluation with the
//! workload's own metric and counts samples, bytes, unique samples and samples to target itself
//! (`backend::external::train`); the runner's reply to `train` is never believed for them.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use effbench_models::recipe::LoadedRecipe;
use effbench_models::served::{self, Decl};
use effbench_models::task::Task;
use effbench_models::train::{Evaluation, Target, TrainOutcome};
use effbench_models::WorkloadSpec;

use super::runner_window::Metered;
use super::{cpu_since, train_repeat, wall_end, RunPlan};
use crate::backend::external::proto::{self, Metric, TensorFile, TrainLoadReply};
use crate::backend::external::train::{Feed, TrainRun, MAX_FETCH};
use crate::backend::external::{process, RunnerConfig, RunnerSession};
use crate::meter::{Mark, Meter};
use crate::report::progress::Progress;
use crate::result::{Repeat, RunResult, RunnerTrainRepeat};
use crate::units::{Bytes, Seconds, Watts};

pub(super) struct Trainer {
    m: Metered,
    task: Box<dyn Task>,
    loaded: TrainLoadReply,
    reference_params: u64,
    target: Target,
    max_fetch: usize,
    seen: Vec<bool>,
}

fn decl(d: &Decl) -> proto::Decl {
    proto::Decl {
        dtype: d.dtype.name().into(),
        shape: std::iter::once(None).chain(d.tail.iter().map(|&n| Some(n))).collect(),
    }
}

impl Trainer {
    pub fn start(
        plan: &RunPlan,
        cfg: &RunnerConfig,
        spec: &'static WorkloadSpec,
        recipe: &LoadedRecipe,
        threads: usize,
    ) -> Result<Trainer> {
        let task = spec.build_task(&plan.data)?;
        let net = spec.build_net(0, &Device::Cpu)?;
        let reference_params = net.params().count() as u64;
        let model = reference_model(spec, net.as_ref());
        let data = served::served(task.as_ref())?;
        let target = spec.target(&recipe.recipe);
        let max_fetch = MAX_FETCH.max(recipe.recipe.batch_size);
        let mut eval = Vec::new();
        data.write_eval_inputs(&mut eval);
        let eval_decl = data.eval_x();

        let work = crate::backend::external::session::work_dir(spec.id, &plan.out_dir).with_context(|| {
            format!("cannot create a work directory for the runner in /dev/shm or {}", plan.out_dir.display())
        })?;
        let log = process::log_path(&plan.out_dir, spec.id);
        let mut runner = RunnerSession::start(cfg, work, &log)?;
        if !runner.hello().supports("train") {
            bail!(
                "runner {:?} ({}) does not declare training: its `hello` lists ops {:?} (absent means [\"infer\"], a v1 \
                 runner); a training workload needs a runner whose `hello` has \"ops\": [..., \"train\"] \
                 (Runner Protocol v1.1, docs/runner-protocol.md)",
                cfg.name,
                cfg.path.display(),
                runner.hello().ops.clone().unwrap_or_else(|| vec!["infer".into()])
            );
        }
        let path = runner.write_file("eval_inputs.bin", &eval)?;
        drop(eval);
        let mut eval_shape = vec![data.eval_rows()];
        eval_shape.extend(&eval_decl.tail);
        let output = Decl { dtype: served::Dtype::F32, tail: data.eval_out() };
        let load = proto::TrainLoad {
            workload: spec.id.into(),
            model,
            input: decl(&data.x()),
            target: data.y().as_ref().map(decl),
            output: decl(&output),
            metric: Metric {
                name: spec.quality_metric.into(),
                higher_is_better: spec.higher_is_better,
                target: target.quality_target,
            },
            train_samples: task.train_len(),
            eval: TensorFile {
                path: path.display().to_string(),
                dtype: eval_decl.dtype.name().into(),
                shape: eval_shape,
            },
            every_samples: target.every_samples,
            sample_cap: target.sample_cap,
            max_fetch,
            recipe: serde_json::to_value(&recipe.recipe)?,
            seed: 0,
            threads,
            batch_files: None,
        };
        let loaded = runner.train_load(load)?;
        Ok(Trainer { m: Metered::new(runner), task, loaded, reference_params, target, max_fetch, seen: Vec::new() })
    }

    /// The backend as the runner described itself, its division, and its power telemetry.
    pub fn describe(&self, result: &mut RunResult) {
        result.backend.division = Some(self.division().to_string());
        self.m.describe(None, result);
    }

    fn division(&self) -> &str {
        self.loaded.division.as_deref().unwrap_or("closed")
    }

    #[allow(clippy::too_many_arguments)]
    pub fn repeat(
        &mut self,
        plan: &RunPlan,
        spec: &WorkloadSpec,
        seed: u64,
        meter: &Meter,
        idle_power: &BTreeMap<String, Watts>,
        flops_per_unit: f64,
        peak: Option<f64>,
        windows: &mut Vec<(String, Mark, Mark)>,
        progress: &mut dyn Progress,
    ) -> Result<Repeat> {
        let opened = self.m.open(plan, spec.id, seed, meter)?;
        let cpu0 = crate::fsutil::process_cpu_s();
        let data = served::served(self.task.as_ref())?;
        let feed = Feed { data, train_len: self.task.train_len(), target: self.target, max_fetch: self.max_fetch };
        let run = self.m.runner.train(seed, seed, &feed, &mut self.seen, &mut |s, q| progress.evaluation(s, q))?;
        let cpu = cpu_since(cpu0);
        let closed = self.m.close(opened, meter, windows)?;

        let out = outcome(&run, self.task.bytes_per_sample());
        let mut r = train_repeat(spec, seed, &out, &closed.window, idle_power, flops_per_unit, peak);
        r.cpu_s = cpu;
        self.m.power(&mut r, meter, &closed);
        self.judge(&mut r, &run);
        let busy = match (closed.before.busy_s, closed.after.busy_s) {
            (Some(a), Some(b)) => Some(Seconds(b - a)),
            _ => run.reply.busy_s.map(Seconds),
        };
        r.runner_train = Some(RunnerTrainRepeat {
            division: self.division().to_string(),
            params: self.loaded.params,
            reference_params: self.reference_params,
            precision: self.m.runner.precision().to_string(),
            fetches: run.fetches,
            evaluations: run.evaluations.len() as u64,
            batch_bytes: Bytes(run.batch_bytes),
            output_bytes: Bytes(run.output_bytes),
            steps: run.reply.steps,
            busy_s: busy,
        });
        wall_end(plan, spec.id, closed.wall_mark, &mut r, idle_power)?;
        Ok(r)
    }

    /// What effbench saw that the candle loop cannot produce: a runner that ended early, a
    /// non-finite output, a claim that contradicts the count, a closed run whose parameter
    /// count is not the reference's.
    fn judge(&self, r: &mut Repeat, run: &TrainRun) {
        let name = &self.m.runner.config().name;
        let invalid = |r: &mut Repeat, why: String| {
            r.valid = false;
            r.invalid_reason = Some(why);
        };
        if run.non_finite {
            let at = run.evaluations.last().map_or(0, |e| e.0);
            invalid(r, format!("runner {name}: its evaluation output at {at} samples holds NaN or infinity (a NaN quality never meets a target)"));
        } else if run.done.is_none() {
            invalid(
                r,
                format!(
                    "runner {name}: the runner ended training at {} samples before the target was met or the cap \
                     was reached",
                    run.served
                ),
            );
        }
        if run.reply.reached == Some(true) && run.samples_to_target.is_none() {
            r.meter_warnings.push(format!(
                "runner {name} claimed it reached the target; effbench's evaluations did not see it (ignored)"
            ));
        }
        if let Some(n) = run.reply.samples.filter(|&n| n != run.served) {
            r.meter_warnings
                .push(format!("runner {name} claimed {n} samples; effbench served {} (ignored)", run.served));
        }
        if self.division() == "closed" && self.loaded.params.is_some_and(|p| p != self.reference_params) {
            r.meter_warnings.push(format!(
                "division closed, but runner {name} trains {} parameters; the reference architecture has {}",
                self.loaded.params.unwrap_or(0),
                self.reference_params
            ));
        }
    }

    /// `flush`, `unload`, the leak check and `shutdown`.
    pub fn finish(self) -> Result<()> {
        self.m.runner.finish()?;
        Ok(())
    }
}

/// The repeat as the candle loop's outcome, from effbench's counts. A non-finite evaluation is
/// not recorded as an evaluation (its quality has no number); the repeat's reason names it.
fn outcome(run: &TrainRun, bytes_per_sample: u64) -> TrainOutcome {
    let evaluations: Vec<Evaluation> = run
        .evaluations
        .iter()
        .filter(|e| e.1.is_finite())
        .map(|&(samples, quality)| Evaluation { samples, quality })
        .collect();
    TrainOutcome {
        reached: run.samples_to_target.is_some(),
        diverged: false,
        samples_processed: run.served,
        bytes_processed: run.served * bytes_per_sample,
        samples_to_target: run.samples_to_target,
        bytes_to_target: run.samples_to_target.map(|s| s * bytes_per_sample),
        unique_samples: run.unique,
        selected_samples: run.unique,
        quality: evaluations.last().map_or(f64::NAN, |e| e.quality),
        evaluations,
        steps: run.reply.steps.unwrap_or(run.fetches),
    }
}

/// The reference architecture as `train_load` describes it: the model's id and description,
/// its layers in order, and every parameter (name, shape) with its initialisation.
fn reference_model(spec: &WorkloadSpec, net: &dyn effbench_models::task::Net) -> serde_json::Value {
    let params: Vec<serde_json::Value> =
        net.params().vars.iter().map(|(name, v)| serde_json::json!({ "name": name, "shape": v.dims() })).collect();
    serde_json::json!({
        "arch": format!("{:?}", spec.arch).to_lowercase(),
        "description": spec.model,
        "layers": effbench_models::served::layers(spec),
        "params": params,
        "param_count": net.params().count(),
        "init": "linear and conv: weight and bias U(+-1/sqrt(fan_in)), weight (in, out) for linear, \
                 (out, in, k, k) for conv; embedding U(+-sqrt(3)); layer norm weight 1, bias 0 \
                 (models/src/layers.rs)",
    })
}
