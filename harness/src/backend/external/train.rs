//! Runner Protocol v1.1: a training workload's conversation (docs/runner-protocol.md,
//! "Training"). effbench serves every batch by index and scores every evaluation itself; the
//! runner only trains. One repeat:
//!
//! ```text
//! effbench -> train                         runner -> fetch (indices)   effbench -> batch files
//!   ... when `served` reached the next multiple of every_samples (or the cap), effbench holds
//!   the runner's next fetch and sends evaluate; it scores the output file with the workload's
//!   metric; target met, cap reached or a non-finite output: the held fetch is answered `done`
//! runner -> reply to train                  (the repeat's end)
//! ```
//!
//! Files (in WORK): `batches/b<N>.x.bin` / `.y.bin` (effbench deletes each at the next fetch;
//! the runner may delete them first), `outputs/e<id>.bin` (the runner's evaluation output,
//! read and deleted by effbench), `eval_inputs.bin` (held-out inputs, no labels).

use std::path::{Path, PathBuf};

use effbench_models::served::Served;
use effbench_models::train::Target;

use super::process::Incoming;
use super::proto::{EvaluateReply, Op, TensorFile, TrainLoad, TrainLoadReply, TrainReply};
use super::session::{list, RunnerSession};
use super::RunnerError;

/// The most indices one `fetch` may ask for (unless the recipe's batch is larger).
pub const MAX_FETCH: usize = 4096;

/// What one repeat serves and how it is judged.
pub struct Feed<'a> {
    pub data: &'a dyn Served,
    pub train_len: usize,
    pub target: Target,
    pub max_fetch: usize,
}

/// What effbench counted in one repeat (never what the runner claims).
#[derive(Debug, Default)]
pub struct TrainRun {
    /// Samples served (every index of every answered fetch, repeats included).
    pub served: u64,
    pub unique: u64,
    /// (samples served at the evaluation, quality by effbench's metric).
    pub evaluations: Vec<(u64, f64)>,
    pub samples_to_target: Option<u64>,
    /// Why effbench answered `done` (`target`, `cap`, `invalid`); `None`: the runner ended first.
    pub done: Option<&'static str>,
    /// An evaluation output held NaN or infinity.
    pub non_finite: bool,
    pub fetches: u64,
    /// Bytes of batch files written, and of evaluation outputs read back.
    pub batch_bytes: u64,
    pub output_bytes: u64,
    /// The runner's reply to `train`.
    pub reply: TrainReply,
}

impl RunnerSession {
    /// `train_load` (startup watchdog). A runner whose `hello` lacks the `train` op is refused
    /// first: the caller checks [`super::proto::HelloReply::supports`].
    pub fn train_load(&mut self, load: TrainLoad) -> Result<TrainLoadReply, RunnerError> {
        std::fs::create_dir(self.work.join("batches"))
            .map_err(|e| self.proc.fail(format!("cannot create {}/batches: {e}", self.work.display())))?;
        self.own.insert("batches".into());
        let reply = self.proc.call(&Op::TrainLoad(Box::new(load)), self.cfg.startup_timeout)?;
        let r: TrainLoadReply = serde_json::from_value(reply)
            .map_err(|e| self.proc.fail(format!("malformed reply to `train_load`: {e}")))?;
        if let Some(d) = r.division.as_deref().filter(|d| !["closed", "open"].contains(d)) {
            return Err(self.proc.fail(format!("the runner declared division {d:?}; it must be closed or open")));
        }
        self.precision = r.precision.clone().unwrap_or_else(|| "f32".into());
        Ok(r)
    }

    /// One training repeat, from `train` to its reply. `seen` is reused from repeat to repeat
    /// (one flag per training sample, for the unique count).
    pub fn train(
        &mut self,
        repeat: u64,
        seed: u64,
        feed: &Feed,
        seen: &mut Vec<bool>,
        on_eval: &mut dyn FnMut(u64, f64),
    ) -> Result<TrainRun, RunnerError> {
        seen.clear();
        seen.resize(feed.train_len, false);
        let train_id = self.proc.send(&Op::Train { repeat, seed })?;
        let awaited = format!("the next `fetch` or the reply to `train` (id {train_id})");
        let (every, cap) = (feed.target.every_samples.max(1), feed.target.sample_cap);
        let mut run = TrainRun::default();
        let mut next_eval = every;
        let (mut idx, mut x, mut y) = (Vec::new(), Vec::new(), Vec::new());
        let mut last: Vec<PathBuf> = Vec::new();
        loop {
            let (id, value) = match self.proc.next_message(self.cfg.timeout, &awaited)? {
                Incoming::Reply { re, value } if re == train_id => {
                    run.reply = serde_json::from_value(value)
                        .map_err(|e| self.proc.fail(format!("malformed reply to `train`: {e}")))?;
                    break;
                }
                Incoming::Reply { re, .. } => {
                    return Err(self.proc.fail(format!("unexpected reply to id {re} during `train`")));
                }
                Incoming::Request { id, op, value } if op == "fetch" => (id, value),
                Incoming::Request { op, .. } => {
                    return Err(self
                        .proc
                        .fail(format!("unknown request `{op}` during `train`; runners send only `fetch`")))
                }
            };
            remove_all(&mut last);
            if let Some(reason) = run.done {
                return Err(self.proc.fail(format!(
                    "the runner sent `fetch` (id {id}) after effbench answered done ({reason}); it must reply to `train` then"
                )));
            }
            self.indices(&value, id, feed, &mut idx)?;
            if run.served > 0 && (run.served >= next_eval || run.served >= cap) {
                next_eval = (run.served / every + 1) * every;
                let q = self.evaluate(run.served, feed, &mut run)?;
                on_eval(run.served, q);
                run.evaluations.push((run.served, q));
                run.done = if q.is_nan() {
                    run.non_finite = true;
                    Some("invalid")
                } else if feed.target.met(q) {
                    run.samples_to_target = Some(run.served);
                    Some("target")
                } else if run.served >= cap {
                    Some("cap")
                } else {
                    None
                };
                if let Some(reason) = run.done {
                    self.proc.answer(id, serde_json::json!({ "done": true, "reason": reason }))?;
                    continue;
                }
            }
            x.clear();
            y.clear();
            feed.data.write_batch(&idx, &mut x, &mut y);
            self.next_file += 1;
            let n = idx.len();
            let xd = feed.data.x();
            let mut x_shape = vec![n];
            x_shape.extend(&xd.tail);
            let mut reply = serde_json::json!({
                "x": self.batch_file(&format!("b{}.x.bin", self.next_file), &x, xd.dtype.name(), x_shape, &mut last)?,
            });
            if let Some(yd) = feed.data.y() {
                let mut y_shape = vec![n];
                y_shape.extend(&yd.tail);
                let f =
                    self.batch_file(&format!("b{}.y.bin", self.next_file), &y, yd.dtype.name(), y_shape, &mut last)?;
                reply["y"] = f;
            }
            run.served += n as u64;
            run.fetches += 1;
            run.batch_bytes += (x.len() + y.len()) as u64;
            for &i in &idx {
                run.unique += u64::from(!std::mem::replace(&mut seen[i], true));
            }
            reply["served"] = run.served.into();
            self.proc.answer(id, reply)?;
        }
        remove_all(&mut last);
        let left = list(&self.work.join("batches"));
        if !left.is_empty() {
            return Err(self.proc.fail(format!(
                "the runner left files in {}/batches that effbench did not write: {}",
                self.work.display(),
                left.join(", ")
            )));
        }
        self.check_outputs_dir()?;
        Ok(run)
    }

    /// The fetch's indices, checked: a non-empty array of at most `max_fetch` integers below
    /// `train_len`.
    fn indices(
        &mut self,
        value: &serde_json::Value,
        id: u64,
        feed: &Feed,
        into: &mut Vec<usize>,
    ) -> Result<(), RunnerError> {
        into.clear();
        let Some(list) = value.get("indices").and_then(|v| v.as_array()) else {
            return Err(self.proc.fail(format!("`fetch` (id {id}) has no `indices` array")));
        };
        if list.is_empty() || list.len() > feed.max_fetch {
            return Err(self.proc.fail(format!(
                "`fetch` (id {id}) asks for {} indices; a fetch asks for 1 to {} (max_fetch)",
                list.len(),
                feed.max_fetch
            )));
        }
        for v in list {
            match v.as_u64() {
                Some(i) if (i as usize) < feed.train_len && i < usize::MAX as u64 => into.push(i as usize),
                _ => {
                    return Err(self.proc.fail(format!(
                        "`fetch` (id {id}): index {v} is out of range or not an integer; valid indices are \
                         0..{} (train_samples)",
                        feed.train_len
                    )))
                }
            }
        }
        Ok(())
    }

    fn batch_file(
        &mut self,
        name: &str,
        bytes: &[u8],
        dtype: &str,
        shape: Vec<usize>,
        last: &mut Vec<PathBuf>,
    ) -> Result<serde_json::Value, RunnerError> {
        let path = self.work.join("batches").join(name);
        std::fs::write(&path, bytes).map_err(|e| self.proc.fail(format!("cannot write {}: {e}", path.display())))?;
        let f = TensorFile { path: path.display().to_string(), dtype: dtype.into(), shape };
        last.push(path);
        Ok(serde_json::to_value(f).expect("a tensor file serialises"))
    }

    /// `evaluate` after `samples` served: the runner's output on the held-out inputs, checked
    /// (path, dtype, shape, size: a protocol error otherwise), scored by the workload's metric.
    fn evaluate(&mut self, samples: u64, feed: &Feed, run: &mut TrainRun) -> Result<f64, RunnerError> {
        self.next_file += 1;
        let path = self.outputs.join(format!("e{}.bin", self.next_file));
        let id = self.proc.send(&Op::Evaluate { samples, output: path.display().to_string() })?;
        let reply = self.proc.wait(id, self.cfg.timeout)?;
        let got: EvaluateReply = serde_json::from_value(reply)
            .map_err(|e| self.proc.fail(format!("malformed reply to `evaluate` (id {id}): {e}")))?;
        let (rows, tail) = (feed.data.eval_rows(), feed.data.eval_out());
        let want: Vec<usize> = std::iter::once(rows).chain(tail.iter().copied()).collect();
        if got.output.shape != want {
            return Err(self.proc.fail(format!(
                "evaluate output {}: shape {:?}, expected {want:?} (float32)",
                got.output.path, got.output.shape
            )));
        }
        let mut values = Vec::with_capacity(rows * tail.iter().product::<usize>());
        run.output_bytes += self.take_output(&got.output, &path, rows, tail.iter().product(), &mut values)?;
        Ok(feed.data.score(&values))
    }
}

fn remove_all(paths: &mut Vec<PathBuf>) {
    for p in paths.drain(..) {
        let _ = std::fs::remove_file(Path::new(&p));
    }
}
