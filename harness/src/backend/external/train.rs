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
//! the runner may delete them first), or with the `reuse_batches` or `mapped_batches` feature
//! `batches/x.bin` / `y.bin`, rewritten in place at every fetch, or with `prefetch_batches`
//! `batches/x.0.bin` / `y.0.bin` and `x.1.bin` / `y.1.bin` in turn (see `Batches`);
//! `outputs/e<id>.bin` (the runner's evaluation output, read and deleted by effbench),
//! `eval_inputs.bin` (held-out inputs, no labels).

use std::fs::File;
use std::path::{Path, PathBuf};

use effbench_models::served::{batch_len, Decl, Served};
use effbench_models::train::Target;

use super::process::Incoming;
use super::proto::{BatchFiles, EvaluateReply, Op, TensorFile, TrainLoad, TrainLoadReply, TrainReply};
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
    pub fn train_load(&mut self, mut load: TrainLoad) -> Result<TrainLoadReply, RunnerError> {
        self.batch_files = BatchFiles::from_features(&self.hello().features);
        load.batch_files = self.batch_files.wire();
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
        let mut idx = Vec::new();
        let mut batches = Batches::new(self.batch_files, feed.max_fetch);
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
            batches.fetched();
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
            let mut reply = batches.write(self, feed.data, &idx)?;
            let n = idx.len();
            run.served += n as u64;
            run.fetches += 1;
            run.batch_bytes += batches.bytes as u64;
            for &i in &idx {
                run.unique += u64::from(!std::mem::replace(&mut seen[i], true));
            }
            reply["served"] = run.served.into();
            self.proc.answer(id, reply)?;
        }
        batches.end();
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

/// A repeat's batch files. Fresh (v1.1): a new file pair per fetch, `b<N>.x.bin` /
/// `b<N>.y.bin`, deleted when the next fetch arrives. Reused (`reuse_batches`) and mapped
/// (`mapped_batches`): one file per slot, `x.bin` / `y.bin`, created when the repeat's first
/// batch is served and rewritten in place at every fetch, so tmpfs allocates and zeroes its
/// pages once per repeat instead of once per fetch; deleted at the repeat's end. A reused file
/// is cut to the batch's size each time; a mapped one is sized for `max_fetch` rows when created
/// and never resized, so a runner's mapping of it stays valid all repeat (a file cut under a
/// mapping makes reads past its end fault). Prefetch (`prefetch_batches`): two mapped pairs,
/// `x.0.bin` / `y.0.bin` and `x.1.bin` / `y.1.bin`, the repeat's answered batch k written to
/// pair k mod 2, so the batch the runner is still training on is never the one being written.
/// Rows that are not stored in the wire's format are gathered into one buffer reused from
/// fetch to fetch.
struct Batches {
    mode: BatchFiles,
    max_fetch: usize,
    x: Vec<u8>,
    y: Vec<u8>,
    /// Bytes of the last batch written (x and y).
    bytes: usize,
    /// The file pairs rewritten in place, created at first use (at most `mode.slots()`).
    slots: Vec<Slot>,
    /// Batches written this repeat: the next goes to slot `turn % mode.slots()`.
    turn: usize,
    /// Fresh files of the last fetch, deleted at the next.
    fresh: Vec<PathBuf>,
}

/// One pair of batch files rewritten in place: x, and y when the workload has targets.
struct Slot {
    x: (File, PathBuf),
    y: Option<(File, PathBuf)>,
}

impl Batches {
    fn new(mode: BatchFiles, max_fetch: usize) -> Batches {
        Batches {
            mode,
            max_fetch,
            x: Vec::new(),
            y: Vec::new(),
            bytes: 0,
            slots: Vec::new(),
            turn: 0,
            fresh: Vec::new(),
        }
    }

    /// A fetch arrived: the previous fetch's fresh files go (reused ones stay).
    fn fetched(&mut self) {
        remove_all(&mut self.fresh);
    }

    /// The end of the repeat: every file goes.
    fn end(&mut self) {
        let mut paths: Vec<PathBuf> =
            self.slots.drain(..).flat_map(|s| std::iter::once(s.x.1).chain(s.y.map(|y| y.1))).collect();
        remove_all(&mut paths);
        remove_all(&mut self.fresh);
    }

    /// Writes the batch of `idx` (checked indices) and returns the reply's `x` and `y`. Inputs
    /// stored in the wire's format go from the task's memory straight into the file (the
    /// kernel's copy only); others are gathered into the reused buffer first.
    fn write(
        &mut self,
        s: &mut RunnerSession,
        data: &dyn Served,
        idx: &[usize],
    ) -> Result<serde_json::Value, RunnerError> {
        let (xd, yd) = (data.x(), data.y());
        let (nx, ny) = (batch_len(&xd, idx.len()), yd.as_ref().map_or(0, |d| batch_len(d, idx.len())));
        let direct: Option<Vec<&[u8]>> = idx.iter().map(|&i| data.x_row_bytes(i)).collect();
        // Grown, never cleared: write_x and write_y overwrite every byte of the slices given.
        for (buf, n) in [(&mut self.x, if direct.is_some() { 0 } else { nx }), (&mut self.y, ny)] {
            if buf.len() < n {
                buf.resize(n, 0);
            }
        }
        if direct.is_none() {
            data.write_x(idx, &mut self.x[..nx]);
        }
        data.write_y(idx, &mut self.y[..ny]);
        self.bytes = nx + ny;
        let slot = self.slot(s, &xd, yd.as_ref())?;
        let cut = !self.mode.sized_once();
        s.next_file += 1;
        let n = s.next_file;
        let gathered = [&self.x[..if direct.is_some() { 0 } else { nx }]];
        let x_parts = direct.as_deref().unwrap_or(&gathered);
        let x_file = slot.map(|k| &self.slots[k].x);
        let x_path = put(s, x_file, &format!("b{n}.x.bin"), x_parts, cut.then_some(nx), &mut self.fresh)?;
        let mut reply = serde_json::json!({ "x": tensor(x_path, &xd, idx.len()) });
        if let Some(yd) = yd {
            let y_file = slot.and_then(|k| self.slots[k].y.as_ref());
            let y_path = put(s, y_file, &format!("b{n}.y.bin"), &[&self.y[..ny]], cut.then_some(ny), &mut self.fresh)?;
            reply["y"] = tensor(y_path, &yd, idx.len());
        }
        Ok(reply)
    }

    /// The slot this batch goes to (its files created at first use), or `None` for fresh files.
    fn slot(&mut self, s: &mut RunnerSession, xd: &Decl, yd: Option<&Decl>) -> Result<Option<usize>, RunnerError> {
        let slots = self.mode.slots();
        if slots == 0 {
            return Ok(None);
        }
        let k = self.turn % slots;
        self.turn += 1;
        if k == self.slots.len() {
            let sized = |d: &Decl| self.mode.sized_once().then(|| batch_len(d, self.max_fetch));
            let name = |stem: &str| if slots == 1 { format!("{stem}.bin") } else { format!("{stem}.{k}.bin") };
            let x = create(s, &name("x"), sized(xd))?;
            let y = match yd {
                Some(d) => Some(create(s, &name("y"), sized(d))?),
                None => None,
            };
            self.slots.push(Slot { x, y });
        }
        Ok(Some(k))
    }
}

/// A reused or mapped slot's file, created exclusively (never one the runner planted), and
/// for a mapped slot sized once (`size` bytes; tmpfs allocates pages only where written).
fn create(s: &mut RunnerSession, name: &str, size: Option<usize>) -> Result<(File, PathBuf), RunnerError> {
    let path = s.work.join("batches").join(name);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|f| size.map_or(Ok(()), |n| f.set_len(n as u64)).map(|_| f))
        .map_err(|e| s.proc.fail(format!("cannot create {}: {e}", path.display())))?;
    Ok((f, path))
}

/// `parts` into a slot's file: rewritten in place from offset 0 (and cut to `cut` bytes when
/// given: a reused slot), else a fresh file `WORK/batches/<fresh>` (recorded in `fresh`).
/// Returns the path.
fn put(
    s: &mut RunnerSession,
    reused: Option<&(File, PathBuf)>,
    fresh: &str,
    parts: &[&[u8]],
    cut: Option<usize>,
    fresh_files: &mut Vec<PathBuf>,
) -> Result<PathBuf, RunnerError> {
    if let Some((f, path)) = reused {
        return write_parts(f, parts)
            .and_then(|_| cut.map_or(Ok(()), |len| f.set_len(len as u64)))
            .map(|_| path.clone())
            .map_err(|e| s.proc.fail(format!("cannot write {}: {e}", path.display())));
    }
    let path = s.work.join("batches").join(fresh);
    File::create(&path)
        .and_then(|f| write_parts(&f, parts))
        .map_err(|e| s.proc.fail(format!("cannot write {}: {e}", path.display())))?;
    fresh_files.push(path.clone());
    Ok(path)
}

/// `parts` one after another from the file's start: vectored writes of at most 1024 slices
/// (Linux's IOV_MAX), so rows go from memory to the file in one kernel copy.
fn write_parts(mut f: &File, parts: &[&[u8]]) -> std::io::Result<()> {
    use std::io::{IoSlice, Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(0))?;
    for chunk in parts.chunks(1024) {
        let mut slices: Vec<IoSlice> = chunk.iter().map(|p| IoSlice::new(p)).collect();
        let mut left = &mut slices[..];
        while !left.is_empty() {
            let n = f.write_vectored(left)?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut left, n);
        }
    }
    Ok(())
}

fn tensor(path: PathBuf, decl: &Decl, rows: usize) -> serde_json::Value {
    let shape: Vec<usize> = std::iter::once(rows).chain(decl.tail.iter().copied()).collect();
    let f = TensorFile { path: path.display().to_string(), dtype: decl.dtype.name().into(), shape };
    serde_json::to_value(f).expect("a tensor file serialises")
}

fn remove_all(paths: &mut Vec<PathBuf>) {
    for p in paths.drain(..) {
        let _ = std::fs::remove_file(Path::new(&p));
    }
}
