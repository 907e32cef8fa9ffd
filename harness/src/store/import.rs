//! `history import DIR...`: every result file under the directories (recursively), each
//! recorded in its own transaction, so an import killed half-way leaves a store that opens and
//! holds the files done so far; importing again adds only what is missing.
//!
//! Only `*.json` files are looked at (traces, wall-meter logs and hidden temporary files are
//! not results); one that is not a result file is reported with its path and skipped. Links
//! to directories are not followed (no loops); the depth is bounded.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use super::Store;
use crate::error::Error;

/// Deepest folder nesting an import walks; a results tree is 1 or 2 deep.
pub const MAX_DEPTH: usize = 32;

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub recorded: Vec<PathBuf>,
    /// Already in the store (same SHA-256).
    pub already: Vec<PathBuf>,
    /// Files that are not result files, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// The `*.json` files under `dir`, sorted, not following links to folders.
fn json_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::bad_input(anyhow!("{}: nested deeper than {MAX_DEPTH} folders", dir.display())));
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::bad_input(anyhow!("cannot list {}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        if meta.is_dir() {
            json_files(&p, depth + 1, out)?;
        } else if name.ends_with(".json") {
            out.push(p);
        }
    }
    Ok(())
}

/// Imports every result file under `dirs` (a file given directly is imported too). `each` is
/// called after every file with its path and outcome, for progress.
pub fn import_dirs(store: &Store, dirs: &[PathBuf], each: &mut dyn FnMut(&Path, &str)) -> Result<ImportReport, Error> {
    let mut files = Vec::new();
    for d in dirs {
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => json_files(d, 0, &mut files)?,
            Ok(_) => files.push(d.clone()),
            Err(e) => return Err(Error::bad_input(anyhow!("cannot read {}: {e}", d.display()))),
        }
    }
    let mut report = ImportReport::default();
    for f in files {
        match store.record_file(&f, None) {
            Ok((_, true)) => {
                each(&f, "recorded");
                report.recorded.push(f);
            }
            Ok((_, false)) => {
                each(&f, "already in the store");
                report.already.push(f);
            }
            // A file that is not a result (or not readable) is skipped; a store that fails
            // stops the import.
            Err(e) if is_file_problem(&e) => {
                each(&f, "skipped: not a result file");
                report.skipped.push((f, e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

fn is_file_problem(e: &Error) -> bool {
    e.source().chain().any(|c| c.is::<crate::result::ResultError>())
}
