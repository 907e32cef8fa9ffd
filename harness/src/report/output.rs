//! The formats of `effbench report`, and writing a report as one directory that appears whole
//! or not at all: every file goes into a temporary directory beside `--out`, which is then
//! renamed into place.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// One output format of `effbench report`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Format {
    /// `index.html`: self-contained, plots as inline SVG.
    Html,
    /// `report.md` with the plots as `*.svg` beside it.
    Md,
    /// `bmf.json`: Bencher Metric Format.
    Bmf,
    /// `effbench.prom`: Prometheus text format for node_exporter's textfile collector.
    Prometheus,
    /// `repeats.csv`: one row per repeat.
    Csv,
}

impl Format {
    /// The file it writes (`md` also writes the plots as `*.svg`).
    pub fn file(self) -> &'static str {
        match self {
            Format::Html => "index.html",
            Format::Md => "report.md",
            Format::Bmf => "bmf.json",
            Format::Prometheus => "effbench.prom",
            Format::Csv => "repeats.csv",
        }
    }
}

/// The file names a report may hold: a directory holding only these (and `.svg`) is an
/// earlier report, which `report` may replace.
pub const NAMES: &[&str] = &["index.html", "report.md", "bmf.json", "effbench.prom", "repeats.csv"];

/// What `report` prints once `dir` is written: how many results, which files, how many plots
/// (named `<result>-<kind>.svg`; 10,000 results have some 30,000, not listed one by one).
pub fn wrote_text(dir: &Path, results: usize, names: &[String], svgs: usize) -> String {
    let plots = if svgs > 0 { format!(" and {svgs} plot(s) as <result>-<kind>.svg") } else { String::new() };
    format!("wrote {} ({results} result(s)): {}{plots}\n", dir.display(), names.join(", "))
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "{} exists and holds {name:?}, which is not part of an effbench report; \
         give a new or empty directory to --out",
        dir.display()
    )]
    NotAReport { dir: PathBuf, name: String },
    #[error("{} exists and is not a directory; give a new or empty directory to --out", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("writing the report to {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io { path: path.to_path_buf(), source }
}

/// An existing `dir` may be replaced only when everything in it is a report's file.
fn check_replaceable(dir: &Path) -> Result<(), WriteError> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(dir)(e)),
        Ok(m) if !m.is_dir() => return Err(WriteError::NotADirectory { dir: dir.to_path_buf() }),
        Ok(_) => {}
    }
    let entries = std::fs::read_dir(dir).map_err(io(dir))?;
    for e in entries {
        let e = e.map_err(io(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = e.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_file || !(NAMES.contains(&name.as_str()) || name.ends_with(".svg")) {
            return Err(WriteError::NotAReport { dir: dir.to_path_buf(), name });
        }
    }
    Ok(())
}

/// Makes what `tmp` holds durable before it is renamed into place: one `syncfs(2)` of its file
/// system (a report of 10,000 results has some 30,000 files: an `fsync` each cost most of the
/// wall time), or, where that fails, an `fsync` of every file in it.
fn sync_tree(tmp: &Path) -> Result<(), WriteError> {
    use std::os::fd::AsRawFd;
    let d = std::fs::File::open(tmp).map_err(io(tmp))?;
    // SAFETY: syncfs only reads the descriptor, which `d` keeps open for the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 {
        return Ok(());
    }
    for e in std::fs::read_dir(tmp).map_err(io(tmp))? {
        let path = e.map_err(io(tmp))?.path();
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io(&path))?;
    }
    d.sync_all().map_err(io(tmp))
}

/// Writes directory `dir` whole or not at all: `write` puts the report's files into a fresh
/// temporary directory in `dir`'s parent (the path it is given), which is then synced and
/// renamed to `dir` (an earlier report there is moved aside first and removed after). When
/// `write` fails, or anything after it, nothing is left but what was there before.
pub fn write_dir_with<T>(dir: &Path, write: impl FnOnce(&Path) -> Result<T, Error>) -> Result<T, Error> {
    check_replaceable(dir).map_err(Error::bad_input)?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let w = |e: WriteError| Error::bad_input(e);
    std::fs::create_dir_all(&parent).map_err(io(&parent)).map_err(w)?;
    let tmp =
        tempfile::Builder::new().prefix(".effbench-report-").tempdir_in(&parent).map_err(io(&parent)).map_err(w)?;
    // A temp dir is private (0700); a report is read by others (a web server, node_exporter).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(io(tmp.path()))
            .map_err(w)?;
    }
    let out = write(tmp.path())?;
    sync_tree(tmp.path()).map_err(w)?;
    replace(dir, &parent, tmp).map_err(w)?;
    Ok(out)
}

/// `tmp` renamed to `dir`, an earlier `dir` moved aside first and removed after.
fn replace(dir: &Path, parent: &Path, tmp: tempfile::TempDir) -> Result<(), WriteError> {
    let old = if dir.exists() {
        let aside = tempfile::Builder::new().prefix(".effbench-old-").tempdir_in(parent).map_err(io(parent))?;
        let aside = aside.keep();
        std::fs::rename(dir, aside.join("report")).map_err(io(dir))?;
        Some(aside)
    } else {
        None
    };
    let tmp = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp, dir) {
        if let Some(a) = &old {
            let _ = std::fs::rename(a.join("report"), dir);
            let _ = std::fs::remove_dir_all(a);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(io(dir)(e));
    }
    if let Some(a) = old {
        let _ = std::fs::remove_dir_all(a);
    }
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes `files` as directory `dir` ([`write_dir_with`]), each as it comes. Returns the names
/// written, in order.
pub fn write_dir(dir: &Path, files: impl IntoIterator<Item = (String, Vec<u8>)>) -> Result<Vec<String>, Error> {
    write_dir_with(dir, |tmp| {
        let mut names = Vec::new();
        for (name, bytes) in files {
            let path = tmp.join(&name);
            std::fs::write(&path, &bytes).map_err(io(&path)).map_err(Error::bad_input)?;
            names.push(name);
        }
        Ok(names)
    })
}
