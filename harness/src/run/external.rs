//! An inference workload through a runner (`--backend external:PATH.toml`). The runner is
//! started, loaded and warmed up before the first window (unmeasured); each repeat is
//!
//! ```text
//! stats -> mark begin (acked when drained) -> meter mark -> passes of issues until the window
//! is at least --min-window-secs -> mark end (acked when drained) -> meter mark -> stats
//! ```
//!
//! effbench times the window on its own clock, reads its own sensors at the two meter marks,
//! checks every output against its own f32 answers (computed once, before the runner starts),
//! and scores the runner's answers with the workload's metric.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use effbench_models::infer::{InferSession, PassOutcome, QueryValues};
use effbench_models::WorkloadSpec;

use super::runner_window::Metered;
use super::{infer_repeat, wall_end, RunPlan};
use crate::backend::external::proto::{IoDecl, ModelRef, TensorFile};
use crate::backend::external::session::PassOutput;
use crate::backend::external::{check, process, RunnerConfig, RunnerSession};
use crate::meter::{Mark, Meter};
use crate::result::{Repeat, RunResult, RunnerRepeat};
use crate::units::{Bytes, Seconds, Watts};

/// Testing only: `reference-outputs` hands the runner effbench's reference answers instead of
/// an ONNX model (format `effbench-reference-outputs`), so the protocol, timing and checking
/// are tested without onnxruntime. Never set it for a measurement.
pub const TEST_MODEL_ENV: &str = "EFFBENCH_TEST_RUNNER_MODEL";

/// Distinct unchecked passes kept before they are checked inside the window (only a runner whose
/// answers differ from pass to pass gets there).
const MAX_UNCHECKED: usize = 16;

pub(super) struct Runner {
    pub session: InferSession,
    m: Metered,
    reference: Vec<f32>,
    out_per_query: usize,
    reference_quality: f64,
    rows: usize,
    batch: usize,
    input_bytes_per_row: u64,
    /// Set when a test hook replaced the model: stated in the result, never silent.
    test_hook: Option<String>,
}

impl Runner {
    pub fn start(
        plan: &RunPlan,
        cfg: &RunnerConfig,
        spec: &WorkloadSpec,
        session: InferSession,
        threads: usize,
    ) -> Result<Runner> {
        let (reference, out_per_query) = session.outputs().context("computing effbench's reference answers")?;
        let reference_quality = session.score(&reference, out_per_query);
        // The model and the inputs first: what cannot be exported stops the run before a runner
        // starts.
        let (file, model_bytes, format, opset, input, output) =
            model_for_runner(spec, &session, &reference, out_per_query)?;
        let (rows, dim) = (session.inputs().rows(), session.inputs().dim);
        let (bytes, elem): (Vec<u8>, usize) = match (&session.inputs().values, input.dtype.as_str()) {
            (QueryValues::F32(v), "float32") => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), 4),
            (QueryValues::U32(v), "int64") => (v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect(), 8),
            (_, d) => bail!("the model's input {} has dtype {d}, which does not match the query inputs", input.name),
        };
        let tail: Option<Vec<usize>> = input.shape.iter().skip(1).copied().collect();
        let shape = match tail {
            Some(t) if t.iter().product::<usize>() == dim => std::iter::once(rows).chain(t).collect(),
            _ => bail!("the model's input shape {:?} does not hold {dim} values per query", input.shape),
        };
        let work = crate::backend::external::session::work_dir(spec.id, &plan.out_dir).with_context(|| {
            format!("cannot create a work directory for the runner in /dev/shm or {}", plan.out_dir.display())
        })?;
        let log = process::log_path(&plan.out_dir, spec.id);
        let mut runner = RunnerSession::start(cfg, work, &log)?;
        let path = runner.write_file(file, &model_bytes)?;
        drop(model_bytes);
        let model = ModelRef { path: path.display().to_string(), format: format.into(), opset };

        let path = runner.write_file("inputs.bin", &bytes)?;
        let batch = session.batch();
        runner.load(spec.id, model, input.clone(), output, batch, threads)?;
        runner.load_samples(TensorFile { path: path.display().to_string(), dtype: input.dtype, shape })?;
        runner.warmup(rows, batch)?;
        Ok(Runner {
            session,
            m: Metered::new(runner),
            reference,
            out_per_query,
            reference_quality,
            rows,
            batch,
            input_bytes_per_row: (dim * elem) as u64,
            test_hook: std::env::var(TEST_MODEL_ENV).ok(),
        })
    }

    /// The backend as the runner described itself, and its power telemetry as an energy source.
    pub fn describe(&self, result: &mut RunResult) {
        self.m.describe(self.test_hook.as_deref(), result);
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
    ) -> Result<Repeat> {
        let opened = self.m.open(plan, spec.id, seed, meter)?;
        let t0 = Instant::now();
        // One pass stays in flight while effbench reads the previous one's outputs (as LoadGen
        // issues ahead); a next pass is sent only while the window is shorter than the minimum,
        // so the window holds at least that long and ends with nothing outstanding.
        let mut tally = Tally::default();
        let mut in_flight = self.m.runner.send_pass(self.rows, self.batch)?;
        loop {
            let next = if t0.elapsed() < plan.min_infer_window {
                Some(self.m.runner.send_pass(self.rows, self.batch)?)
            } else {
                None
            };
            let done = self.m.runner.collect(in_flight, self.out_per_query)?;
            tally.add(done, self.rows as u64 * self.input_bytes_per_row);
            if tally.distinct.len() > MAX_UNCHECKED {
                self.judge(&mut tally); // a runner whose answers vary: bound the memory
            }
            match next {
                Some(n) => in_flight = n,
                None => break,
            }
        }
        let closed = self.m.close(opened, meter, windows)?;
        self.m.runner.check_outputs_dir()?;

        // Every distinct set of answers is checked, after the window (the check is effbench's
        // work, not the runner's); a deterministic runner gives one.
        self.judge(&mut tally);
        let mut worst = check::Deviation { max_rel: 0.0, query: 0, index: 0, got: 0.0, want: 0.0 };
        let mut worst_quality: Option<f64> = None;
        let mut outcomes = Vec::new();
        let bytes_per_query = (tally.input_bytes + tally.output_bytes) / tally.passes.max(1) / self.rows.max(1) as u64;
        for &(d, q, count) in &tally.judged {
            if d.max_rel > worst.max_rel || (d.max_rel.is_nan() && !worst.max_rel.is_nan()) {
                worst = d;
            }
            let worse = |a: f64| if spec.higher_is_better { q < a } else { q > a };
            if worst_quality.is_none_or(|w| worse(w) || q.is_nan()) {
                worst_quality = Some(q);
            }
            outcomes.extend(std::iter::repeat_n(
                PassOutcome { queries: self.rows as u64, quality: q, bytes_per_query },
                count,
            ));
        }
        let (in_bytes, out_bytes, issues) = (tally.input_bytes, tally.output_bytes, tally.issues);
        let mut r = infer_repeat(spec, seed, &outcomes, &closed.window, idle_power, flops_per_unit, peak);
        self.m.power(&mut r, meter, &closed);

        if let Some(h) = &self.test_hook {
            r.meter_warnings.push(format!(
                "testing only: {TEST_MODEL_ENV}={h} replaced effbench's ONNX model; not a measurement of a workload"
            ));
        }
        let precision = self.m.runner.precision().to_string();
        if let Some(reason) = check::verdict(
            &precision,
            &worst,
            worst_quality.unwrap_or(f64::NAN),
            self.reference_quality,
            spec.higher_is_better,
        ) {
            r.valid = false;
            r.invalid_reason = Some(match r.invalid_reason.take() {
                Some(prev) => format!("{reason}; {prev}"),
                None => reason,
            });
        }
        let diff = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        let diff_u = |a: Option<u64>, b: Option<u64>| Some(Bytes(b?.saturating_sub(a?)));
        let (before, after) = (&closed.before, &closed.after);
        let busy = diff(before.busy_s, after.busy_s).map(Seconds);
        r.runner = Some(RunnerRepeat {
            precision,
            busy_s: busy,
            overhead_per_unit_s: busy.map(|b| Seconds((r.wall_s.0 - b.0) / r.units_processed.max(1) as f64)),
            h2d_bytes: diff_u(before.h2d_bytes, after.h2d_bytes),
            d2h_bytes: diff_u(before.d2h_bytes, after.d2h_bytes),
            input_bytes: Bytes(in_bytes),
            output_bytes: Bytes(out_bytes),
            issues,
            max_rel_error: worst.max_rel,
            reference_quality: self.reference_quality,
        });
        wall_end(plan, spec.id, closed.wall_mark, &mut r, idle_power)?;
        Ok(r)
    }

    /// Checks the unchecked answers of `tally` against the reference and scores them.
    fn judge(&self, tally: &mut Tally) {
        for (values, count) in tally.distinct.drain(..) {
            let d = check::compare(&values, &self.reference, self.out_per_query);
            let q = self.session.score(&values, self.out_per_query);
            tally.judged.push((d, q, count));
        }
    }

    /// `flush`, `unload`, the leak check and `shutdown`.
    pub fn finish(self) -> Result<()> {
        self.m.runner.finish()?;
        Ok(())
    }
}

type ModelFile = (&'static str, Vec<u8>, &'static str, Option<i64>, IoDecl, IoDecl);

/// The model handed to the runner: effbench's ONNX export, or (testing only, see
/// [`TEST_MODEL_ENV`]) the reference answers or a given ONNX file with plain `input` /
/// `output` of `[batch, values]`. Returns file name, bytes, format, opset, input, output.
fn model_for_runner(
    spec: &WorkloadSpec,
    session: &InferSession,
    reference: &[f32],
    out_per_query: usize,
) -> Result<ModelFile> {
    let Ok(hook) = std::env::var(TEST_MODEL_ENV) else {
        let onnx = effbench_models::onnx::export(spec, session)
            .with_context(|| format!("exporting {} as ONNX for the runner", spec.id))?;
        let decl = |io: &effbench_models::onnx::IoSpec| IoDecl {
            name: io.name.clone(),
            dtype: io.dtype.to_string(),
            shape: io.dims.clone(),
        };
        let (input, output) = (decl(&onnx.input), decl(&onnx.output));
        return Ok(("model.onnx", onnx.bytes, "onnx", Some(onnx.opset), input, output));
    };
    let dtype = match session.inputs().values {
        QueryValues::F32(_) => "float32",
        QueryValues::U32(_) => "int64",
    };
    let input = IoDecl { name: "input".into(), dtype: dtype.into(), shape: vec![None, Some(session.inputs().dim)] };
    let output = IoDecl { name: "output".into(), dtype: "float32".into(), shape: vec![None, Some(out_per_query)] };
    if hook == "reference-outputs" {
        let bytes = reference.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok(("reference.bin", bytes, "effbench-reference-outputs", None, input, output))
    } else if let Some(file) = hook.strip_prefix("onnx-file:") {
        let bytes = std::fs::read(file).with_context(|| format!("{TEST_MODEL_ENV}: reading {file}"))?;
        Ok(("model.onnx", bytes, "onnx", None, input, output))
    } else {
        bail!("{TEST_MODEL_ENV}={hook:?}: expected reference-outputs or onnx-file:PATH (testing only)")
    }
}

/// The passes of one window: each distinct set of answers once, with how many passes gave it.
#[derive(Default)]
struct Tally {
    /// Answers not yet checked; a pass equal to the last one only counts.
    distinct: Vec<(Vec<f32>, usize)>,
    /// Checked answers: worst deviation, quality, passes.
    judged: Vec<(check::Deviation, f64, usize)>,
    passes: u64,
    issues: u64,
    input_bytes: u64,
    output_bytes: u64,
}

impl Tally {
    fn add(&mut self, p: PassOutput, input_bytes: u64) {
        self.passes += 1;
        self.issues += p.issues;
        self.input_bytes += input_bytes;
        self.output_bytes += p.output_bytes;
        // Bitwise equality (NaN payloads included), so no wrong answer is folded into a right one.
        let same =
            |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        match self.distinct.last_mut() {
            Some((v, n)) if same(v, &p.values) => *n += 1,
            _ => self.distinct.push((p.values, 1)),
        }
    }
}
