//! The formats of `effbench report`, the files each renders (pure), and writing them as one
//! directory that appears whole or not at all: every file goes into a temporary directory
//! beside `--out`, which is then renamed into place.

use std::path::{Path, PathBuf};

use super::data::ReportData;

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

/// The file names a report may hold: a directory holding only these (and `.svg`) is an
/// earlier report, which `report` may replace.
pub const NAMES: &[&str] = &["index.html", "report.md", "bmf.json", "effbench.prom", "repeats.csv"];

/// The files of the report of `data` in `formats`, one at a time as (name, bytes): the plots
/// are drawn once up front (html and md share them), then each format is rendered when asked
/// for, and with md each plot's SVG is handed over (moved, not copied). Writing them as they
/// come ([`write_dir`]) holds one rendered file at a time besides the plots.
pub struct Files<'a> {
    data: &'a ReportData,
    formats: Vec<Format>,
    plots: Vec<super::plots::Plot>,
    next_format: usize,
    next_plot: usize,
}

/// The report of `data` in `formats`, lazily (see [`Files`]).
pub fn files<'a>(data: &'a ReportData, formats: &[Format]) -> Files<'a> {
    let plots = if formats.iter().any(|f| matches!(f, Format::Html | Format::Md)) {
        super::plots::all(data)
    } else {
        Vec::new()
    };
    Files { data, formats: formats.to_vec(), plots, next_format: 0, next_plot: 0 }
}

impl Iterator for Files<'_> {
    type Item = (String, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(f) = self.formats.get(self.next_format) {
            self.next_format += 1;
            let (data, plots) = (self.data, &self.plots);
            let (name, text) = match f {
                Format::Html => ("index.html", super::html::render(data, plots)),
                Format::Md => ("report.md", super::md::render(data, plots)),
                Format::Bmf => ("bmf.json", super::bmf::render(data)),
                Format::Prometheus => ("effbench.prom", super::prom::render(data)),
                Format::Csv => ("repeats.csv", super::csv::render(data)),
            };
            return Some((name.to_string(), text.into_bytes()));
        }
        if !self.formats.contains(&Format::Md) {
            return None;
        }
        while let Some(p) = self.plots.get_mut(self.next_plot) {
            self.next_plot += 1;
            if let Ok(svg) = &mut p.svg {
                return Some((p.file.clone(), std::mem::take(svg).into_bytes()));
            }
        }
        None
    }
}

/// Every file of the report of `data` in `formats`: (name, bytes), plots once.
pub fn render(data: &ReportData, formats: &[Format]) -> Vec<(String, Vec<u8>)> {
    files(data, formats).collect()
}

/// What `report` prints once `dir` is written: how many results, which files.
pub fn wrote_text(dir: &Path, results: usize, names: &[String]) -> String {
    format!("wrote {} ({results} result(s)): {}\n", dir.display(), names.join(", "))
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

/// Writes `files` as directory `dir`, each as it comes (so only one is held at a time): into a
/// fresh temporary directory in `dir`'s parent, fsynced, then renamed to `dir` (an earlier
/// report there is moved aside first and removed after). On error nothing is left but what
/// was there before. Returns the names written, in order.
pub fn write_dir(dir: &Path, files: impl IntoIterator<Item = (String, Vec<u8>)>) -> Result<Vec<String>, WriteError> {
    use std::io::Write;
    check_replaceable(dir)?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tmp = tempfile::Builder::new().prefix(".effbench-report-").tempdir_in(&parent).map_err(io(&parent))?;
    // A temp dir is private (0700); a report is read by others (a web server, node_exporter).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).map_err(io(tmp.path()))?;
    }
    let mut names = Vec::new();
    for (name, bytes) in files {
        let path = tmp.path().join(&name);
        let mut f = std::fs::File::create(&path).map_err(io(&path))?;
        f.write_all(&bytes).and_then(|_| f.sync_all()).map_err(io(&path))?;
        names.push(name);
    }
    let old = if dir.exists() {
        let aside = tempfile::Builder::new().prefix(".effbench-old-").tempdir_in(&parent).map_err(io(&parent))?;
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
    if let Ok(d) = std::fs::File::open(&parent) {
        let _ = d.sync_all();
    }
    Ok(names)
}
