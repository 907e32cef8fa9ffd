//! What a result points at, checked: its recipe, the runner TOML of a run through a runner,
//! the exported model of a runner run, and the baseline it is compared with (the convergence
//! warning and the `--baseline` feedback).

use std::path::Path;

use super::result::Ctx;
use super::{Feedback, FeedbackRow, Finding};
use crate::bundle::fsafe;
use crate::result::{RunResult, WorkloadKind};

/// Converging in fewer samples than this fraction of the baseline's fewest is flagged.
pub const SUSPICIOUS_CONVERGENCE: f64 = 0.5;

pub(super) fn recipe(ctx: &Ctx, r: &RunResult, rel: &str, dir: &str, out: &mut Vec<Finding>) {
    if r.workload.kind != WorkloadKind::Train {
        return;
    }
    let path = format!("{dir}/recipe.toml");
    let fix = "ship the recipe the run used (`effbench submit` copies it)";
    if !ctx.good.contains(&path) {
        return out.push(Finding::fail(
            "recipe",
            &path,
            format!("no recipe (with a matching hash) for {rel}'s recipe {:?}", r.recipe.name),
            fix,
        ));
    }
    match fsafe::hash_file(ctx.root, Path::new(&path)) {
        Ok((sha, _)) if sha == r.recipe.sha256 => out.push(Finding::pass(
            "recipe",
            &path,
            format!("recipe {:?}: SHA-256 matches the result's", r.recipe.name),
        )),
        Ok((sha, _)) => out.push(Finding::fail(
            "recipe",
            &path,
            format!("SHA-256 {sha}, but {rel} was run with recipe {:?} of SHA-256 {}", r.recipe.name, r.recipe.sha256),
            fix,
        )),
        Err(e) => out.push(Finding::fail("recipe", &path, e, fix)),
    }
}

/// A run through a runner, inference or training, whose result records its runner TOML's
/// SHA-256 (`backend.runner_config_sha256`): the bundle carries `<workload>.runner.toml`
/// (its hash matching the manifest), and the SHA-256 of its bytes is the recorded one.
pub(super) fn runner_config(ctx: &Ctx, r: &RunResult, rel: &str, dir: &str, out: &mut Vec<Finding>) {
    let Some(recorded) = &r.backend.runner_config_sha256 else { return };
    let path = format!("{dir}/{}.runner.toml", r.workload.id);
    let fix = "ship the <workload>.runner.toml `effbench run` wrote beside the result, unedited (submit the result \
               directory it wrote); a changed configuration needs a new run";
    if !ctx.good.contains(&path) {
        return out.push(Finding::fail(
            "runner-config",
            &path,
            format!(
                "no runner TOML (with a hash matching the manifest) for {rel}, which records runner_config_sha256 \
                 {recorded}"
            ),
            fix,
        ));
    }
    match fsafe::hash_file(ctx.root, Path::new(&path)) {
        Ok((sha, _)) if &sha == recorded => out.push(Finding::pass(
            "runner-config",
            &path,
            format!("SHA-256 {sha} is the runner_config_sha256 {rel} records"),
        )),
        Ok((sha, _)) => out.push(Finding::fail(
            "runner-config",
            &path,
            format!(
                "SHA-256 {sha}, but {rel} records runner_config_sha256 {recorded}: not the runner TOML the run was \
                 given"
            ),
            fix,
        )),
        Err(e) => out.push(Finding::fail("runner-config", &path, e, fix)),
    }
}

/// An inference run through a runner: the exported model and references it was checked
/// against (training through a runner: see [`super::train`]).
pub(super) fn runner(ctx: &Ctx, r: &RunResult, rel: &str, dir: &str, out: &mut Vec<Finding>) {
    if r.backend.kind != "external" || r.workload.kind == WorkloadKind::Train {
        return;
    }
    let edir = format!("{dir}/export/{}", r.workload.id);
    let fix = "ship the exported model and reference outputs (`effbench submit` writes them)";
    let mrel = format!("{edir}/manifest.json");
    let m = fsafe::read(ctx.root, Path::new(&mrel), 1 << 20)
        .and_then(|b| serde_json::from_slice::<crate::export::Manifest>(&b).map_err(|e| format!("{mrel}: {e}")));
    let m = match m {
        Ok(m) if ctx.good.contains(&mrel) && m.schema == crate::export::SCHEMA => m,
        Ok(_) => {
            return out.push(Finding::fail(
                "runner",
                &mrel,
                "not an effbench.export/1 manifest matching the bundle's",
                fix,
            ))
        }
        Err(e) => return out.push(Finding::fail("runner", &mrel, e, fix)),
    };
    let mut ok = true;
    for (file, sha) in
        [(&m.model.file, &m.model.sha256), (&m.input.file, &m.input.sha256), (&m.output.file, &m.output.sha256)]
    {
        let p = format!("{edir}/{file}");
        match fsafe::inside(file).and_then(|_| fsafe::hash_file(ctx.root, Path::new(&p))) {
            Ok((h, _)) if &h == sha => {}
            Ok((h, _)) => {
                ok = false;
                out.push(Finding::fail(
                    "runner",
                    &p,
                    format!(
                        "SHA-256 {h}, but the export manifest says {sha}: not the model / reference effbench exported"
                    ),
                    fix,
                ));
            }
            Err(e) => {
                ok = false;
                out.push(Finding::fail("runner", &p, e, fix));
            }
        }
    }
    ok &= reexport(r, &m, &edir, out);
    for (i, rep) in r.repeats.iter().enumerate() {
        let Some(run) = &rep.runner else { continue };
        if run.precision == "f32" && (run.max_rel_error.is_nan() || run.max_rel_error > m.f32_tolerance) {
            ok = false;
            out.push(Finding::fail(
                "runner",
                rel,
                format!(
                    "repeat {} (seed {}): outputs deviate {} from the reference, over the f32 tolerance {}",
                    i + 1,
                    rep.seed,
                    run.max_rel_error,
                    m.f32_tolerance
                ),
                "fix the runner's numerics",
            ));
        }
    }
    if ok {
        out.push(Finding::pass(
            "runner",
            &edir,
            "exported model, inputs and reference outputs match their hashes; outputs within tolerance",
        ));
    }
}

/// The baseline for `r`'s workload: `--baseline DIR/<workload>.json`, else the shipped one for
/// the result's system class.
fn baseline_for(ctx: &Ctx, r: &RunResult) -> Option<(std::path::PathBuf, RunResult)> {
    let file = format!("{}.json", r.workload.id);
    let path = match &ctx.opts.baseline {
        Some(d) if d.is_file() => d.clone(),
        Some(d) => d.join(&file),
        None => {
            let shipped = ctx.opts.shipped_baselines.clone().unwrap_or_else(|| {
                let here = std::path::PathBuf::from("baselines");
                if here.is_dir() {
                    here
                } else {
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../baselines")
                }
            });
            shipped.join(r.system.host_class()).join(&file)
        }
    };
    let b = RunResult::load(&path).ok()?;
    (b.workload.id == r.workload.id).then_some((path, b))
}

pub(super) fn convergence(ctx: &Ctx, r: &RunResult, rel: &str, out: &mut Vec<Finding>) {
    if r.workload.kind != WorkloadKind::Train {
        return;
    }
    let Some((path, b)) = baseline_for(ctx, r) else {
        return out.push(Finding::warn(
            "convergence",
            rel,
            "no baseline for this system and workload: convergence not compared",
            "pass --baseline DIR",
        ));
    };
    let min = |x: &RunResult| {
        x.repeats.iter().filter(|p| crate::validity::is_valid(x, p)).filter_map(|p| p.samples_to_target).min()
    };
    match (min(r), min(&b)) {
        (Some(c), Some(base)) if (c as f64) < SUSPICIOUS_CONVERGENCE * base as f64 => out.push(Finding::warn(
            "convergence",
            rel,
            format!("reached the target in {c} samples, under {:.0}% of the baseline's fewest ({base}, {}, recipe {:?}): a broken evaluation?", SUSPICIOUS_CONVERGENCE * 100.0, path.display(), b.recipe.name),
            "check the evaluation (held-out data, metric) before claiming this",
        )),
        (Some(c), Some(base)) => out.push(Finding::pass("convergence", rel, format!("fewest samples to target {c}, baseline's fewest {base}"))),
        _ => {}
    }
}

pub(super) fn feedback(ctx: &Ctx, r: &RunResult, rel: &str, out: &mut Vec<Finding>) -> Option<Feedback> {
    ctx.opts.baseline.as_ref()?;
    let Some((path, b)) = baseline_for(ctx, r) else {
        out.push(Finding::warn(
            "verdict",
            rel,
            format!("no baseline for {} under --baseline", r.workload.id),
            "add <workload>.json to the baseline directory",
        ));
        return None;
    };
    let opts = crate::verdict::CompareOptions { scope: ctx.opts.scope, ..Default::default() };
    let c = crate::verdict::compare(r, &b, &opts);
    let rows = c
        .rows
        .iter()
        .map(|m| FeedbackRow {
            metric: m.metric.clone(),
            reduction: m.reduction,
            ci95: m.ci95,
            verdict: m.verdict.to_string(),
        })
        .collect();
    Some(Feedback {
        workload: r.workload.id.clone(),
        result: rel.to_string(),
        baseline: path.display().to_string(),
        energy_label: c.energy_label.clone(),
        energy_scope: crate::report::compare::scope_line(&c),
        overall: c.overall.to_string(),
        rows,
    })
}

/// effbench's own export of the workload, made here (this installation's weights and data, in a
/// fresh temporary directory), against the bundle's export manifest: a model or reference
/// swapped together with its manifest entry is caught. Nothing of the bundle is loaded.
fn reexport(r: &RunResult, m: &crate::export::Manifest, edir: &str, out: &mut Vec<Finding>) -> bool {
    let id = &r.workload.id;
    let Ok(spec) = crate::export::inference_spec(id) else {
        out.push(Finding::fail(
            "runner",
            edir,
            format!("{id} is not an inference workload effbench exports"),
            "submit runner runs of inference workloads only",
        ));
        return false;
    };
    let made = tempfile::Builder::new().prefix("effbench-check-export-").tempdir().map_err(|e| e.to_string()).and_then(
        |tmp| {
            let data = effbench_models::data::DataConfig::discover(None);
            let weights = effbench_models::infer::default_weights_dir();
            crate::export::export_bundles(&[spec], tmp.path(), &data, &weights, &mut |_| {})
                .map_err(|e| format!("{e:#}"))
                .and_then(|done| {
                    done.into_iter().next().map(|e| e.manifest).ok_or_else(|| "nothing exported".to_string())
                })
        },
    );
    let mine = match made {
        Ok(m) => m,
        Err(e) => {
            out.push(Finding::warn(
                "runner",
                edir,
                format!("could not re-export {id} here to compare: {e}"),
                "install the workload's weights on the testbed",
            ));
            return true;
        }
    };
    let mut ok = true;
    for (what, theirs, ours) in [
        ("model", &m.model.sha256, &mine.model.sha256),
        ("query inputs", &m.input.sha256, &mine.input.sha256),
        ("reference outputs", &m.output.sha256, &mine.output.sha256),
    ] {
        if theirs != ours {
            ok = false;
            out.push(Finding::fail(
                "runner",
                edir,
                format!("the bundle's {what} (SHA-256 {theirs}) is not what this effbench exports for {id} ({ours})"),
                "submit the runs with the model and data effbench exported; do not replace them",
            ));
        }
    }
    ok
}
