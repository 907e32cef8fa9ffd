//! The output directory of a run (`--out`): created, locked for the whole run, cleaned of the
//! temporary files an interrupted run left, and refused when it already holds results.
//!
//! Rules (README.md, "Output directory"):
//! - One run at a time: an exclusive `flock` on `DIR/.effbench.lock`, held until the process
//!   exits; the file holds the holder's pid, so a second run can say who has it.
//! - Nothing lost: a directory that holds effbench results (`*.json` with an `effbench.`
//!   schema, `*.trace.csv` or `*.wall.csv`) is refused unless `--force`. Even with `--force` an earlier
//!   file is replaced only when the new run's first repeat is written (the result writes are
//!   atomic: temp file + rename).
//! - Hidden temporary files of [`crate::fsutil::write_atomic`] (`.NAME.tmp.PID.N`) whose
//!   process is gone (a `kill -9`) are removed, under the lock, and reported.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::fsutil;
use crate::meter::{Mark, Meter, TraceFile, TraceRow};
use crate::result::RunResult;

/// The lock file's name inside `--out`.
pub const LOCK_FILE: &str = ".effbench.lock";

#[derive(Debug, thiserror::Error)]
pub enum OutError {
    #[error("cannot create --out {}: {source}; pick a directory you can write", dir.display())]
    Create { dir: PathBuf, source: io::Error },
    #[error("cannot write to --out {} ({}: {source}); pick a directory you can write", dir.display(), path.display())]
    Unwritable { dir: PathBuf, path: PathBuf, source: io::Error },
    #[error(
        "--out {} is in use by another effbench run ({}, lock {}); wait for it to finish or pick another --out",
        dir.display(),
        pid.map_or("pid unknown".to_string(), |p| format!("pid {p}")),
        dir.join(LOCK_FILE).display()
    )]
    Busy { dir: PathBuf, pid: Option<u32> },
    #[error("cannot list --out {}: {source}", dir.display())]
    List { dir: PathBuf, source: io::Error },
    #[error(
        "--out {} already holds effbench results: {}; pass --force to replace them (each is replaced \
         only once the new run's first repeat is written), or pick another --out",
        dir.display(),
        files.join(", ")
    )]
    HoldsResults { dir: PathBuf, files: Vec<String> },
}

/// A locked output directory. The lock is released when this is dropped (or the process ends).
#[derive(Debug)]
pub struct OutDir {
    path: PathBuf,
    _lock: File,
    /// Stale temporary files removed when the directory was opened (names only).
    pub removed_stale: Vec<String>,
}

impl OutDir {
    /// Creates `dir` if needed, takes its lock (refusing a directory another run holds),
    /// removes stale temporary files and, unless `force`, refuses a directory holding results.
    pub fn open(dir: &Path, force: bool) -> Result<OutDir, OutError> {
        std::fs::create_dir_all(dir).map_err(|source| OutError::Create { dir: dir.into(), source })?;
        let lock = lock(dir)?;
        let removed_stale = remove_stale_temps(dir)?;
        if !force {
            let files = results_in(dir)?;
            if !files.is_empty() {
                return Err(OutError::HoldsResults { dir: dir.into(), files });
            }
        }
        Ok(OutDir { path: dir.to_path_buf(), _lock: lock, removed_stale })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the exclusive lock on `dir/.effbench.lock` without waiting and writes our pid in it.
/// Creating and writing the file also proves the directory writable before any work.
fn lock(dir: &Path) -> Result<File, OutError> {
    let path = dir.join(LOCK_FILE);
    let unwritable = |source| OutError::Unwritable { dir: dir.into(), path: path.clone(), source };
    // Not truncated on open: the holder's pid stays readable for a second run. O_NOFOLLOW: a
    // symlink planted at the lock's name is refused, not followed.
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(unwritable)?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut text = String::new();
            let _ = f.read_to_string(&mut text);
            return Err(OutError::Busy { dir: dir.into(), pid: text.trim().parse().ok() });
        }
        return Err(unwritable(e));
    }
    f.set_len(0)
        .and_then(|_| f.rewind())
        .and_then(|_| writeln!(f, "{}", std::process::id()))
        .and_then(|_| f.flush())
        .map_err(unwritable)?;
    Ok(f)
}

/// The pid in a temporary file name of [`crate::fsutil::write_atomic`]
/// (`.NAME.tmp.PID.N`), or `None` when `name` is not one.
pub fn temp_file_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (stem, tail) = rest.rsplit_once(".tmp.")?;
    let (pid, n) = tail.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (!stem.is_empty() && digits(pid) && digits(n)).then(|| pid.parse().ok())?
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH) }
}

/// Removes the temporary files of writers that no longer run (a live pid's file may be a
/// write in progress by another command, and is left alone). Returns their names, sorted.
fn remove_stale_temps(dir: &Path) -> Result<Vec<String>, OutError> {
    let mut removed = Vec::new();
    for name in names(dir)? {
        let Some(pid) = temp_file_pid(&name) else { continue };
        if pid != std::process::id() && !process_alive(pid) && std::fs::remove_file(dir.join(&name)).is_ok() {
            removed.push(name);
        }
    }
    Ok(removed)
}

/// effbench result files in `dir`: `*.trace.csv`, and `*.json` whose `schema` starts with
/// `effbench.` (other JSON, a recipe or a note, is not a result). Sorted names.
pub fn results_in(dir: &Path) -> Result<Vec<String>, OutError> {
    #[derive(serde::Deserialize)]
    struct Schema {
        schema: String,
    }
    let is_result = |name: &str| {
        if name.starts_with('.') {
            return false;
        }
        if name.ends_with(".trace.csv") || name.ends_with(".wall.csv") {
            return true;
        }
        name.ends_with(".json")
            && File::open(dir.join(name))
                .ok()
                .and_then(|f| serde_json::from_reader::<_, Schema>(io::BufReader::new(f)).ok())
                .is_some_and(|s| s.schema.starts_with("effbench."))
    };
    Ok(names(dir)?.into_iter().filter(|n| is_result(n)).collect())
}

fn names(dir: &Path) -> Result<Vec<String>, OutError> {
    let list = |source| OutError::List { dir: dir.into(), source };
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(list)? {
        let e = e.map_err(list)?;
        if e.file_type().is_ok_and(|t| t.is_file()) {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// One workload's result and trace files in the output directory.
pub struct WorkloadFiles {
    result: PathBuf,
    trace_path: PathBuf,
    /// `None` until the first repeat is written.
    trace: Option<TraceFile>,
}

impl WorkloadFiles {
    pub fn new(dir: &Path, workload: &str) -> WorkloadFiles {
        WorkloadFiles {
            result: dir.join(format!("{workload}.json")),
            trace_path: dir.join(format!("{workload}.trace.csv")),
            trace: None,
        }
    }

    pub fn result_path(&self) -> &Path {
        &self.result
    }

    /// Proves both files could be written, without touching an earlier one.
    pub fn check_writable(&self) -> anyhow::Result<()> {
        for p in [&self.result, &self.trace_path] {
            fsutil::probe_atomic(p).with_context(|| format!("cannot write {}; pick another --out", p.display()))?;
        }
        Ok(())
    }

    /// After a repeat: the whole result (atomically), and the trace: written whole after the
    /// first repeat (idle window + repeat 0, atomically, replacing an earlier file), then
    /// extended by the newest window only, so the cost of a repeat does not grow with their
    /// number.
    pub fn write(
        &mut self,
        result: &RunResult,
        meter: &Meter,
        idle: (&Mark, &Mark),
        windows: &[(String, Mark, Mark)],
    ) -> anyhow::Result<()> {
        result.write(&self.result).with_context(|| format!("writing {}", self.result.display()))?;
        let context = || format!("writing {}", self.trace_path.display());
        if let (Some(t), Some((label, b, e))) = (self.trace.as_mut(), windows.last()) {
            if t.append(label, &meter.trace_between(b, e)).with_context(context)? {
                return Ok(());
            }
        }
        // First write, or a domain appeared that the header lacks: everything, atomically.
        let mut segments: Vec<(String, Vec<TraceRow>)> =
            vec![("idle".to_string(), meter.trace_between(idle.0, idle.1))];
        for (label, b, e) in windows {
            segments.push((label.clone(), meter.trace_between(b, e)));
        }
        let refs: Vec<(&str, &[TraceRow])> = segments.iter().map(|(l, r)| (l.as_str(), r.as_slice())).collect();
        self.trace = Some(TraceFile::create(&self.trace_path, "phase", &refs).with_context(context)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_file_names_of_write_atomic_are_recognised() {
        assert_eq!(temp_file_pid(".w.json.tmp.4242.0"), Some(4242));
        assert_eq!(temp_file_pid(".w.trace.csv.tmp.7.12"), Some(7));
        assert_eq!(temp_file_pid("w.json.tmp.7.12"), None, "not hidden");
        assert_eq!(temp_file_pid(".w.json.tmp.x.1"), None);
        assert_eq!(temp_file_pid(".effbench.lock"), None);
        assert_eq!(temp_file_pid(".tmp.1.2"), None);
    }

    #[test]
    fn a_second_open_of_a_locked_out_dir_is_busy_and_names_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = OutDir::open(dir.path(), false).unwrap();
        // flock locks belong to the open file description, so a second open in the same
        // process conflicts just as another process would.
        let e = OutDir::open(dir.path(), false).unwrap_err();
        assert!(matches!(e, OutError::Busy { pid: Some(p), .. } if p == std::process::id()), "{e}");
        assert!(e.to_string().contains(&format!("pid {}", std::process::id())), "{e}");
        drop(first);
        OutDir::open(dir.path(), false).expect("free again once the holder is gone");
    }

    #[test]
    fn only_effbench_results_count_as_results() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("recipe.json"), r#"{"name": "x"}"#).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        assert_eq!(results_in(dir.path()).unwrap(), Vec::<String>::new());
        std::fs::write(dir.path().join("w.json"), r#"{"schema": "effbench.result/1"}"#).unwrap();
        std::fs::write(dir.path().join("w.trace.csv"), "t_s\n").unwrap();
        assert_eq!(results_in(dir.path()).unwrap(), vec!["w.json", "w.trace.csv"]);
    }
}
