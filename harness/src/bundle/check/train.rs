//! The checks of a training result's data figures, and of a training run through a runner
//! (Runner Protocol v1.1, docs/runner-protocol.md "Training (v1.1)").
//!
//! For every training result: bytes to target is samples to target × the workload's bytes
//! per sample, and no more unique samples than samples served. For a runner training run,
//! every count in `runner_train` is re-derived from effbench's own rules, as
//! `backend::external::train` applies them while it serves the runner: samples served are the
//! repeat's units; each evaluation comes at the first fetch at or past the next multiple of
//! `every_samples` (or the cap), so within one fetch of it; serving stops at the evaluation
//! that ends the run; batch bytes are samples × the batch files' bytes per sample; output
//! bytes are evaluations × the held-out outputs' size; the reference parameter count is the
//! reference architecture's, built here; the division is `closed` or `open` and the same in
//! the result and every repeat, and a closed run whose runner trains another parameter count
//! has the warning effbench records. The runner's log must be in the bundle.
//!
//! The runner's own configuration is checked for every run through a runner, inference too,
//! not here: the bundle's `<workload>.runner.toml` must hash to the result's
//! `backend.runner_config_sha256` ([`super::refs::runner_config`]).

use std::path::Path;

use candle_core::Device;
use effbench_models::recipe::Recipe;
use effbench_models::WorkloadSpec;

use super::result::Ctx;
use super::Finding;
use crate::bundle::fsafe;
use crate::result::{Repeat, RunResult, RunnerTrainRepeat, WorkloadKind};

/// What the checker derives of a training workload itself (this installation's data and
/// models), never from the bundle.
struct Workload {
    /// Data bytes of one training sample, as effbench counts data use.
    bytes_per_sample: u64,
    /// Bytes of one sample in the batch files served to a runner (inputs and targets).
    wire_per_sample: u64,
    /// Bytes of one evaluation's output file (held-out rows × per row × float32).
    output_per_eval: u64,
    reference_params: u64,
}

fn derive(spec: &WorkloadSpec) -> Result<Workload, String> {
    let data = effbench_models::data::DataConfig::discover(None);
    let task = spec.build_task(&data).map_err(|e| format!("cannot load {}'s data here: {e}", spec.id))?;
    let served = effbench_models::served::served(task.as_ref()).map_err(|e| e.to_string())?;
    let size = |d: &effbench_models::served::Decl| (d.per_row() * d.dtype.size()) as u64;
    let net = spec.build_net(0, &Device::Cpu).map_err(|e| format!("cannot build {}'s model: {e}", spec.id))?;
    Ok(Workload {
        bytes_per_sample: task.bytes_per_sample(),
        wire_per_sample: size(&served.x()) + served.y().as_ref().map_or(0, size),
        output_per_eval: (served.eval_rows() * served.eval_out().iter().product::<usize>() * 4) as u64,
        reference_params: net.params().count() as u64,
    })
}

/// Evaluation interval, sample cap and batch size: from the bundle's recipe where its hash
/// matched the manifest (the recipe check says whether it is the run's), else from the
/// parameters the result recorded.
fn schedule(ctx: &Ctx, r: &RunResult, dir: &str, spec: &WorkloadSpec) -> (u64, u64, u64) {
    let path = format!("{dir}/recipe.toml");
    let parsed = if ctx.good.contains(&path) {
        fsafe::read_text(ctx.root, Path::new(&path), 1 << 20)
            .ok()
            .and_then(|t| Recipe::parse(&t, Path::new(&path)).ok())
    } else {
        None
    };
    match parsed {
        Some(l) => {
            let t = spec.target(&l.recipe);
            (t.every_samples.max(1), t.sample_cap, l.recipe.batch_size as u64)
        }
        None => {
            let p = &r.recipe.params;
            let every = p["evaluation"]["every_samples"].as_u64().unwrap_or(spec.every_samples);
            let cap = p["evaluation"]["sample_cap"].as_u64().unwrap_or(spec.sample_cap);
            (every.max(1), cap, p["batch_size"].as_u64().unwrap_or(0))
        }
    }
}

fn who(i: usize, rep: &Repeat) -> String {
    format!("repeat {} (seed {})", i + 1, rep.seed)
}

/// Every check of a training result's data figures, and of its runner's counts when it ran
/// through one.
pub(super) fn training(ctx: &Ctx, r: &RunResult, rel: &str, dir: &str, out: &mut Vec<Finding>) {
    if r.workload.kind != WorkloadKind::Train {
        return;
    }
    let Ok(spec) = WorkloadSpec::get(&r.workload.id) else { return }; // the validity check names it
    let external = r.backend.kind == "external";
    if external {
        runner_log(ctx, r, rel, dir, out);
    }
    match derive(spec) {
        Ok(w) => {
            data(r, rel, spec, &w, out);
            if external {
                runner(ctx, r, rel, dir, spec, &w, out);
            }
        }
        Err(e) => out.push(Finding::warn(
            if external { "runner" } else { "data" },
            rel,
            format!("data figures not re-derived: {e}"),
            "install the workload's data on the testbed",
        )),
    }
}

fn data(r: &RunResult, rel: &str, spec: &WorkloadSpec, w: &Workload, out: &mut Vec<Finding>) {
    let fix = "re-run the workload; data figures must follow from the samples effbench counted";
    let before = out.len();
    for (i, rep) in r.repeats.iter().enumerate() {
        if let (Some(s), Some(b)) = (rep.samples_to_target, rep.bytes_to_target) {
            if Some(b.0) != s.checked_mul(w.bytes_per_sample) {
                let msg = format!(
                    "{}: bytes to target {} is not its {s} samples × {} bytes per {} sample",
                    who(i, rep),
                    b.0,
                    w.bytes_per_sample,
                    r.workload.id,
                );
                out.push(Finding::fail("data", rel, msg, fix));
            }
        }
        let served = rep.units_processed / spec.units_per_sample.max(1);
        if let Some(u) = rep.unique_samples.filter(|&u| u > served) {
            let msg = format!("{}: {u} unique samples, but only {served} samples were served", who(i, rep));
            out.push(Finding::fail("data", rel, msg, fix));
        }
    }
    if out.len() == before {
        let msg = format!(
            "every repeat's bytes to target is its samples × {} bytes per sample; unique samples within those served",
            w.bytes_per_sample
        );
        out.push(Finding::pass("data", rel, msg));
    }
}

fn runner_log(ctx: &Ctx, r: &RunResult, rel: &str, dir: &str, out: &mut Vec<Finding>) {
    let log = format!("{dir}/{}.runner.log", r.workload.id);
    if ctx.good.contains(&log) {
        out.push(Finding::pass("runner", &log, "the runner's log is carried (its hash matches the manifest)"));
    } else {
        out.push(Finding::fail(
            "runner",
            &log,
            format!("no runner log (with a matching hash) for {rel}, a training run through a runner"),
            "submit the result directory `effbench run` wrote: it holds <workload>.runner.log",
        ));
    }
}

/// The runner's counts of every repeat against effbench's rules (see the module's text).
fn runner(ctx: &Ctx, r: &RunResult, rel: &str, dir: &str, spec: &WorkloadSpec, w: &Workload, out: &mut Vec<Finding>) {
    let sched = schedule(ctx, r, dir, spec);
    let fix = "re-run through the runner; runner_train must be what effbench counted";
    let before = out.len();
    let division = r.backend.division.as_deref();
    if !matches!(division, Some("closed" | "open")) {
        out.push(Finding::fail(
            "runner",
            rel,
            format!("backend.division is {division:?}; a training run through a runner is closed or open"),
            fix,
        ));
    }
    for (i, rep) in r.repeats.iter().enumerate() {
        let Some(t) = &rep.runner_train else {
            out.push(Finding::fail("runner", rel, format!("{}: no runner_train record", who(i, rep)), fix));
            continue;
        };
        let mut bad = Vec::new();
        counts(rep, t, spec, w, sched, &mut bad);
        division_of(rep, t, division, w, &mut bad, out, rel, i);
        for why in bad {
            out.push(Finding::fail("runner", rel, format!("{}: {why}", who(i, rep)), fix));
        }
    }
    if out[before..].iter().all(|f| f.status != super::Status::Fail) {
        let msg = format!(
            "every repeat's runner_train re-derived: samples, fetches, batch bytes ({} per sample), evaluations \
             every {} samples within a fetch, output bytes, reference parameters {}; division {}",
            w.wire_per_sample,
            sched.0,
            w.reference_params,
            division.unwrap_or("?")
        );
        out.push(Finding::pass("runner", rel, msg));
    }
}

/// Samples, fetches, bytes and the evaluation schedule of one repeat; each disagreement is
/// pushed to `bad`.
fn counts(
    rep: &Repeat,
    t: &RunnerTrainRepeat,
    spec: &WorkloadSpec,
    w: &Workload,
    sched: (u64, u64, u64),
    bad: &mut Vec<String>,
) {
    let (every, cap, batch) = sched;
    let max_fetch = (crate::backend::external::train::MAX_FETCH as u64).max(batch);
    let per = spec.units_per_sample.max(1);
    if !rep.units_processed.is_multiple_of(per) {
        bad.push(format!("{} units is not a whole number of samples ({per} units each)", rep.units_processed));
    }
    let served = rep.units_processed / per;
    if t.fetches == 0 || t.fetches > served || served > t.fetches.saturating_mul(max_fetch) {
        bad.push(format!("{} fetches cannot serve {served} samples (each fetch serves 1 to {max_fetch})", t.fetches));
    }
    if Some(t.batch_bytes.0) != served.checked_mul(w.wire_per_sample) {
        bad.push(format!(
            "batch bytes {} is not the {served} samples served × {} bytes per sample in the batch files",
            t.batch_bytes.0, w.wire_per_sample
        ));
    }
    if Some(t.output_bytes.0) != t.evaluations.checked_mul(w.output_per_eval) {
        bad.push(format!(
            "output bytes {} is not its {} evaluations × {} bytes of held-out outputs",
            t.output_bytes.0, t.evaluations, w.output_per_eval
        ));
    }
    let evals = rep.evaluations.as_deref().unwrap_or(&[]);
    // An evaluation whose output held NaN has no quality and is not listed; it ends the run.
    let unlisted = t.evaluations.checked_sub(evals.len() as u64);
    if !(unlisted == Some(0) || (unlisted == Some(1) && rep.samples_to_target.is_none())) {
        bad.push(format!("runner_train counts {} evaluations, but the repeat lists {}", t.evaluations, evals.len()));
    }
    let mut next = every;
    for e in evals {
        let due = next.min(cap);
        if e.samples < due || e.samples >= due.saturating_add(max_fetch) {
            bad.push(format!(
                "an evaluation at {} samples: effbench evaluates at the first fetch at or past {due} (every {every}, \
                 cap {cap}), so within {max_fetch} samples of it",
                e.samples
            ));
            break;
        }
        next = (e.samples / every + 1) * every;
    }
    if let Some(last) = evals.last().filter(|l| l.samples > served) {
        bad.push(format!("an evaluation at {} samples, but only {served} were served", last.samples));
    }
    if let Some(s) = rep.samples_to_target.filter(|&s| s != served) {
        bad.push(format!(
            "samples to target {s}, but {served} samples were served: effbench stops serving at the evaluation that \
             meets the target"
        ));
    }
}

/// The repeat's division against the result's, and a closed run's parameter count against the
/// reference architecture's.
#[allow(clippy::too_many_arguments)]
fn division_of(
    rep: &Repeat,
    t: &RunnerTrainRepeat,
    division: Option<&str>,
    w: &Workload,
    bad: &mut Vec<String>,
    out: &mut Vec<Finding>,
    rel: &str,
    i: usize,
) {
    if t.reference_params != w.reference_params {
        bad.push(format!(
            "reference_params {}, but the reference architecture has {} parameters",
            t.reference_params, w.reference_params
        ));
    }
    if Some(t.division.as_str()) != division {
        bad.push(format!(
            "division {}, but the result's backend.division is {}: one of them was edited",
            t.division,
            division.unwrap_or("absent")
        ));
        return;
    }
    if t.division != "closed" {
        return;
    }
    match t.params {
        Some(p) if p == w.reference_params => {}
        Some(p) if rep.meter_warnings.iter().any(|m| m.starts_with("division closed, but runner")) => {
            out.push(Finding::warn(
                "runner",
                rel,
                format!(
                    "{}: division closed, but the runner trains {p} parameters, not the reference's {} (warned at run time)",
                    who(i, rep),
                    w.reference_params
                ),
                "train the reference architecture, or declare division open",
            ))
        }
        Some(p) => bad.push(format!(
            "division closed, but the runner trains {p} parameters, not the reference's {}, and the repeat has no \
             warning of it (effbench records one): the division was edited",
            w.reference_params
        )),
        None => out.push(Finding::warn(
            "runner",
            rel,
            format!("{}: division closed, but the runner gave no parameter count: closed not verified", who(i, rep)),
            "have the runner report `params` in its reply to train_load",
        )),
    }
}
