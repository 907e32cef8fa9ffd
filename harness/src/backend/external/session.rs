//! One workload's conversation with a runner, and the work directory it shares with it:
//!
//! ```text
//! WORK/              the runner's working directory, created empty by effbench
//!   model.onnx       written by effbench
//!   inputs.bin       every query's input, raw little-endian, row-major
//!   outputs/         the runner writes each issue's outputs to the path effbench names here;
//!                    effbench reads and deletes each one
//! ```
//!
//! Anything else that appears in WORK (or an output the runner reports at another path) is a
//! leak: the run stops with an error naming the files. The directory is removed when the
//! session ends, cleanly or not (the runner is stopped first).
//!
//! WORK has an unpredictable name and is created exclusively with mode 0700 ([`work_dir`]):
//! `/dev/shm` is shared by every user, and effbench often runs as root, so a directory or
//! symlink someone planted at a predictable name must never be used.
//!
//! WORK is on tmpfs (`/dev/shm`) where there is one: output files are created and deleted for
//! every issue, which costs ~50 µs each there and on ext4, but rewriting one file in place costs
//! milliseconds on ext4 (its truncate-and-rewrite flush).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{RunnerConfig, PRECISIONS};
use super::process::RunnerProcess;
use super::proto::{
    BatchFiles, HelloReply, IoDecl, IssueReply, LoadReply, MarkReply, ModelRef, Op, StatsReply, TensorFile, MINOR,
    PROTOCOL,
};
use super::RunnerError;

pub struct RunnerSession {
    /// Removed when the session drops (after `proc` is stopped, in [`Drop`]).
    _work_dir: tempfile::TempDir,
    /// Removed on SIGINT/SIGTERM too (see `crate::interrupt`).
    _tracked: crate::interrupt::TrackedPath,
    pub(super) cfg: RunnerConfig,
    pub(super) proc: RunnerProcess,
    hello: HelloReply,
    pub(super) precision: String,
    pub(super) work: PathBuf,
    pub(super) outputs: PathBuf,
    pub(super) own: BTreeSet<String>,
    pub(super) next_file: u64,
    /// Training: how batches reach the runner (from the `features` of its `hello`).
    pub(super) batch_files: BatchFiles,
}

/// A pass whose issues are sent: (request id, output path, rows) per issue.
pub struct PendingPass {
    sent: Vec<(u64, PathBuf, usize)>,
    rows: usize,
}

/// One pass's answers, in query order, and what moving them cost.
pub struct PassOutput {
    pub values: Vec<f32>,
    /// `issue` messages sent.
    pub issues: u64,
    /// Bytes of the output files read back.
    pub output_bytes: u64,
}

impl RunnerSession {
    /// Starts the runner in `work_dir` (fresh and empty, from [`work_dir`]) and says `hello`.
    /// The directory is removed when the session ends, or here if the start fails.
    pub fn start(cfg: &RunnerConfig, work_dir: tempfile::TempDir, log: &Path) -> Result<RunnerSession, RunnerError> {
        let tracked = crate::interrupt::track_path(work_dir.path());
        let setup = |what: String| RunnerError::new(&cfg.name, what, "nothing yet", "nothing yet", String::new());
        let work = std::path::absolute(work_dir.path()).unwrap_or_else(|_| work_dir.path().to_path_buf());
        let outputs = work.join("outputs");
        std::fs::create_dir(&outputs)
            .map_err(|e| setup(format!("cannot create the work directory {}: {e}", outputs.display())))?;
        let outputs = work.join("outputs");
        let mut proc = RunnerProcess::spawn(&cfg.name, &cfg.command, &cfg.env, &work, log)?;
        let hello = Op::Hello { effbench: env!("CARGO_PKG_VERSION").into(), protocol: vec![PROTOCOL], minor: MINOR };
        let reply = proc.call(&hello, cfg.startup_timeout)?;
        let hello: HelloReply = serde_json::from_value(reply)
            .map_err(|e| proc.fail(format!("malformed reply to `hello`: {e}; see docs/runner-protocol.md")))?;
        if hello.protocol != PROTOCOL {
            return Err(proc.fail(format!(
                "the runner chose protocol version {} but effbench speaks only version {PROTOCOL}; \
                 use a runner (or an effbench) that supports Runner Protocol v{PROTOCOL}",
                hello.protocol
            )));
        }
        if let (Some(ours), Some(theirs)) = (&cfg.domain, &hello.device.domain) {
            if ours != theirs {
                return Err(proc.fail(format!(
                    "its TOML {} says its device's energy domain is {ours:?}, but its `hello` says {theirs:?}; \
                     make them agree (or leave `domain` out of the TOML)",
                    cfg.path.display()
                )));
            }
        }
        Ok(RunnerSession {
            _work_dir: work_dir,
            _tracked: tracked,
            cfg: cfg.clone(),
            proc,
            hello,
            precision: String::new(),
            work,
            outputs,
            own: BTreeSet::from(["outputs".to_string()]),
            next_file: 0,
            batch_files: BatchFiles::Fresh,
        })
    }

    pub fn hello(&self) -> &HelloReply {
        &self.hello
    }

    /// The precision the runner declared in its `load` reply.
    pub fn precision(&self) -> &str {
        &self.precision
    }

    /// The energy domain of the runner's device: the TOML's `domain`, else `hello.device.domain`,
    /// else `accel:0`.
    pub fn domain(&self) -> String {
        self.cfg.domain.clone().or_else(|| self.hello.device.domain.clone()).unwrap_or_else(|| "accel:0".into())
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.cfg
    }

    /// Writes a file effbench hands the runner into the work directory.
    pub fn write_file(&mut self, name: &str, bytes: &[u8]) -> Result<PathBuf, RunnerError> {
        let path = self.work.join(name);
        std::fs::write(&path, bytes).map_err(|e| self.proc.fail(format!("cannot write {}: {e}", path.display())))?;
        self.own.insert(name.to_string());
        Ok(path)
    }

    pub fn load(
        &mut self,
        workload: &str,
        model: ModelRef,
        input: IoDecl,
        output: IoDecl,
        batch: usize,
        threads: usize,
    ) -> Result<(), RunnerError> {
        let precision = self.cfg.precision.clone();
        let op = Op::Load { workload: workload.into(), model, input, output, precision, batch, threads };
        let reply = self.proc.call(&op, self.cfg.startup_timeout)?;
        let load: LoadReply =
            serde_json::from_value(reply).map_err(|e| self.proc.fail(format!("malformed reply to `load`: {e}")))?;
        if !PRECISIONS.contains(&load.precision.as_str()) {
            return Err(self.proc.fail(format!(
                "the runner declared precision {:?}; effbench knows {}",
                load.precision,
                PRECISIONS.join(", ")
            )));
        }
        self.precision = load.precision;
        Ok(())
    }

    pub fn load_samples(&mut self, input: TensorFile) -> Result<(), RunnerError> {
        self.proc.call(&Op::LoadSamples { input }, self.cfg.startup_timeout).map(|_| ())
    }

    /// The runner runs every sample once, unmeasured, and discards the answers; then `flush`.
    pub fn warmup(&mut self, rows: usize, batch: usize) -> Result<(), RunnerError> {
        self.proc.call(&Op::Warmup { start: 0, rows, batch }, self.cfg.startup_timeout)?;
        self.proc.call(&Op::Flush, self.cfg.startup_timeout).map(|_| ())
    }

    /// `mark` begin/end; returns the runner's CLOCK_MONOTONIC (ns) when its queue had drained.
    pub fn mark(&mut self, name: &str, phase: &str) -> Result<u64, RunnerError> {
        let reply = self.proc.call(&Op::Mark { name: name.into(), phase: phase.into() }, self.cfg.timeout)?;
        let m: MarkReply =
            serde_json::from_value(reply).map_err(|e| self.proc.fail(format!("malformed reply to `mark`: {e}")))?;
        Ok(m.t_mono_ns)
    }

    pub fn stats(&mut self) -> Result<StatsReply, RunnerError> {
        let reply = self.proc.call(&Op::Stats, self.cfg.timeout)?;
        serde_json::from_value(reply).map_err(|e| self.proc.fail(format!("malformed reply to `stats`: {e}")))
    }

    /// One pass over `rows` samples in batches of `batch` rows: [`Self::send_pass`] then
    /// [`Self::collect`].
    pub fn pass(&mut self, rows: usize, batch: usize, out_per_row: usize) -> Result<PassOutput, RunnerError> {
        let pending = self.send_pass(rows, batch)?;
        self.collect(pending, out_per_row)
    }

    /// Sends one pass's issues back to back (`batches_per_issue` batches each, default the
    /// whole pass) without waiting. Every issue gets a new file name: creating a file is much
    /// cheaper than truncating one on ext4.
    pub fn send_pass(&mut self, rows: usize, batch: usize) -> Result<PendingPass, RunnerError> {
        let batch = batch.max(1);
        let per_issue = self.cfg.batches_per_issue.map_or(rows, |b| b * batch).max(1);
        let mut sent = Vec::new();
        for start in (0..rows).step_by(per_issue) {
            let n = per_issue.min(rows - start);
            self.next_file += 1;
            let path = self.outputs.join(format!("o{}.bin", self.next_file));
            let op = Op::Issue { start, rows: n, batch, output: path.display().to_string() };
            sent.push((self.proc.send(&op)?, path, n));
        }
        Ok(PendingPass { sent, rows })
    }

    /// Waits for a pass's completions; each output file is read, checked for shape and place,
    /// and deleted.
    pub fn collect(&mut self, pending: PendingPass, out_per_row: usize) -> Result<PassOutput, RunnerError> {
        let PendingPass { sent, rows } = pending;
        let mut values = Vec::with_capacity(rows * out_per_row);
        let mut output_bytes = 0;
        for (id, path, n) in &sent {
            let reply = self.proc.wait(*id, self.cfg.timeout)?;
            let done: IssueReply = serde_json::from_value(reply)
                .map_err(|e| self.proc.fail(format!("malformed completion of `issue` (id {id}): {e}")))?;
            output_bytes += self.take_output(&done.output, path, *n, out_per_row, &mut values)?;
        }
        Ok(PassOutput { values, issues: sent.len() as u64, output_bytes })
    }

    pub(super) fn take_output(
        &mut self,
        got: &TensorFile,
        named: &Path,
        rows: usize,
        per_row: usize,
        into: &mut Vec<f32>,
    ) -> Result<u64, RunnerError> {
        if Path::new(&got.path) != named {
            return Err(self.proc.fail(format!(
                "the runner reported its output at {} but effbench named {}: runners write only where they are told",
                got.path,
                named.display()
            )));
        }
        let shape_ok = got.shape.first() == Some(&rows) && got.shape.iter().skip(1).product::<usize>() == per_row;
        if got.dtype != "float32" || !shape_ok {
            return Err(self.proc.fail(format!(
                "output {}: dtype {} shape {:?}, expected float32 with shape [{rows}, {per_row}]",
                got.path, got.dtype, got.shape
            )));
        }
        let bytes = std::fs::read(named)
            .map_err(|e| self.proc.fail(format!("cannot read the output file {}: {e}", named.display())))?;
        if bytes.len() != rows * per_row * 4 {
            return Err(self.proc.fail(format!(
                "output {} has {} bytes; [{rows}, {per_row}] float32 is {} bytes",
                named.display(),
                bytes.len(),
                rows * per_row * 4
            )));
        }
        let _ = std::fs::remove_file(named);
        into.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        Ok(bytes.len() as u64)
    }

    /// With nothing in flight (after `mark end`), the outputs directory must be empty: effbench
    /// has read and deleted every file it named.
    pub fn check_outputs_dir(&mut self) -> Result<(), RunnerError> {
        let left = list(&self.outputs);
        if !left.is_empty() {
            return Err(self.proc.fail(format!(
                "the runner left files effbench did not ask for in {}: {}",
                self.outputs.display(),
                left.join(", ")
            )));
        }
        Ok(())
    }

    /// `flush`, `unload`, the leak check, `shutdown`; the work directory is removed when all
    /// is clean.
    pub fn finish(mut self) -> Result<(), RunnerError> {
        self.proc.call(&Op::Flush, self.cfg.timeout)?;
        self.proc.call(&Op::Unload, self.cfg.timeout)?;
        self.check_outputs_dir()?;
        let extra: Vec<String> = list(&self.work).into_iter().filter(|n| !self.own.contains(n)).collect();
        if !extra.is_empty() {
            return Err(self.proc.fail(format!(
                "the runner left files in its work directory {}: {}; a runner keeps caches outside it",
                self.work.display(),
                extra.join(", ")
            )));
        }
        self.proc.shutdown(self.cfg.timeout.max(Duration::from_secs(1)))?;
        Ok(())
    }
}

impl Drop for RunnerSession {
    /// Stops the runner before its work directory goes (the fields drop after this).
    fn drop(&mut self) {
        self.proc.stop();
    }
}

/// A fresh work directory for a workload's runner: `effbench-<workload>-<random>.runner-work`,
/// created exclusively (never an existing directory or symlink) with mode 0700, in `/dev/shm`
/// when that works, else in `fallback` (the run's output directory).
pub fn work_dir(workload: &str, fallback: &Path) -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let prefix = format!("effbench-{workload}-");
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix).suffix(".runner-work").permissions(std::fs::Permissions::from_mode(0o700));
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = b.tempdir_in(shm) {
            return Ok(d);
        }
    }
    b.tempdir_in(fallback)
}

pub(super) fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn runner_work_dir_is_fresh_and_private_and_ignores_a_planted_one() {
        // What a hostile user could plant at the old predictable name: a symlink to a folder
        // of theirs, and (for the second workload) a directory.
        let theirs = tempfile::tempdir().unwrap();
        let fallback = tempfile::tempdir().unwrap();
        let shm = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { fallback.path().into() };
        let old = |w: &str| shm.join(format!("effbench-{}-{w}.runner-work", std::process::id()));
        let (link, dir) = (old("planted-link"), old("planted-dir"));
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_dir_all(&dir);
        std::os::unix::fs::symlink(theirs.path(), &link).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("theirs.txt"), b"x").unwrap();
        for w in ["planted-link", "planted-dir"] {
            let work = work_dir(w, fallback.path()).unwrap();
            let p = work.path();
            assert_ne!(p, old(w), "the predictable name was used");
            assert!(!p.is_symlink(), "{}", p.display());
            let mode = std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", p.display());
            assert_eq!(std::fs::read_dir(p).unwrap().count(), 0, "not empty: {}", p.display());
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with(&format!("effbench-{w}-")) && name.ends_with(".runner-work"), "{name}");
        }
        // What was planted is untouched: not followed, not removed, not emptied.
        assert_eq!(std::fs::read_dir(theirs.path()).unwrap().count(), 0);
        assert!(dir.join("theirs.txt").exists());
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
