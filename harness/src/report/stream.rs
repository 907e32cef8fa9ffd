//! Writing `effbench report` one result at a time, so that memory stays bounded however many
//! results there are: after the first pass ([`build::index`]: every result checked, its figures
//! computed, about 1 KB kept of each), each result is read again with its trace and comparison
//! ([`build::load`]), its plots drawn, its part of every format rendered (pure functions of
//! it) and appended to that format's file, and everything of it dropped before the next.
//!
//! What a format can only write once every result is in is kept on disk meanwhile, never in
//! memory: the Prometheus families (sorted by name, each family's samples together) and the
//! appendix's lists (sensors, versions, commands), in a scratch directory beside the report
//! that is removed when it is done. What does grow with the number of results is small: each
//! result's name and path, and the distinct systems of the appendix.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::build::{self, Comparer, Index};
use super::data::{ReportMeta, WorkloadReport};
use super::output::{write_dir_with, Format, WriteError};
use super::plots::{self, EnergyInput, Plot};
use super::{bmf, csv, html, md, prom};
use crate::error::Error;

/// What a report is made of, besides its inputs.
pub struct Options<'a> {
    /// `--baseline` as given.
    pub baseline: Option<&'a str>,
    /// Sorted, without repeats.
    pub formats: &'a [Format],
    /// The effbench named in the appendix as the report's writer.
    pub version: &'a str,
}

/// What a report wrote.
#[derive(Debug)]
pub struct Written {
    pub results: usize,
    /// The formats' files, in `--format` order.
    pub files: Vec<String>,
    /// How many `*.svg` plots (with `md`).
    pub svgs: usize,
}

/// The report of `inputs` in `opts.formats`, written as directory `out` whole or not at all.
pub fn write(inputs: &[PathBuf], out: &Path, opts: &Options) -> Result<Written, Error> {
    let mut index = build::index(inputs)?;
    write_dir_with(out, |tmp| render_into(tmp, inputs, &mut index, opts))
}

/// The report's files as (name, bytes): the formats' in `--format` order, then the plots sorted
/// by name. Written to a temporary directory and read back, by the same code as [`write`]; for
/// tests (a report of many results does not fit in memory, which is why [`write`] exists).
pub fn render(inputs: &[PathBuf], opts: &Options) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let tmp = tempfile::tempdir().map_err(Error::bad_input)?;
    let dir = tmp.path().join("report");
    let written = write(inputs, &dir, opts)?;
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(Error::bad_input);
    let mut out = Vec::new();
    for f in &written.files {
        out.push((f.clone(), read(f)?));
    }
    let mut svgs: Vec<String> = std::fs::read_dir(&dir)
        .map_err(Error::bad_input)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".svg"))
        .collect();
    svgs.sort();
    for s in svgs {
        let bytes = read(&s)?;
        out.push((s, bytes));
    }
    Ok(out)
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::bad_input(WriteError::Io { path: path.to_path_buf(), source })
}

/// A file being written, buffered.
struct Out {
    path: PathBuf,
    file: BufWriter<File>,
}

impl Out {
    fn create(path: PathBuf) -> Result<Out, Error> {
        let file = File::create(&path).map_err(|e| io_error(&path, e))?;
        Ok(Out { path, file: BufWriter::new(file) })
    }

    fn put(&mut self, s: &str) -> Result<(), Error> {
        self.file.write_all(s.as_bytes()).map_err(|e| io_error(&self.path, e))
    }

    /// Flushed and closed; its path, to read it back when it is scratch.
    fn close(mut self) -> Result<PathBuf, Error> {
        self.file.flush().map_err(|e| io_error(&self.path, e))?;
        Ok(self.path)
    }
}

/// Each line of scratch file `path` (one JSON string per line, so a line break in a row
/// survives), for `each`.
fn each_row(path: &Path, mut each: impl FnMut(&str) -> Result<(), Error>) -> Result<(), Error> {
    let f = File::open(path).map_err(|e| io_error(path, e))?;
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(|e| io_error(path, e))?;
        let row: String = serde_json::from_str(&line).map_err(|e| io_error(path, e.into()))?;
        each(&row)?;
    }
    Ok(())
}

/// The files being written, and the scratch of what waits for the last result.
struct Sinks {
    tmp: PathBuf,
    scratch: tempfile::TempDir,
    html: Option<Out>,
    md: Option<Out>,
    bmf: Option<Out>,
    csv: Option<Out>,
    /// Prometheus: per family (sorted by name), its help and its samples so far.
    prom: Option<BTreeMap<String, (String, Out)>>,
    /// The appendix's first four lists so far (html or md), and the systems already listed.
    appendix: Option<([Out; 4], HashSet<String>)>,
    results: usize,
    svgs: usize,
}

impl Sinks {
    fn open(tmp: &Path, formats: &[Format], index: &Index) -> Result<Sinks, Error> {
        let parent = tmp.parent().unwrap_or(Path::new("."));
        let scratch = tempfile::Builder::new()
            .prefix(".effbench-scratch-")
            .tempdir_in(parent)
            .map_err(|e| io_error(parent, e))?;
        let has = |f| formats.contains(&f);
        let file = |name: &str| Out::create(tmp.join(name));
        let names = || index.entries.iter().map(|e| e.name.as_str());
        let mut s = Sinks {
            html: has(Format::Html).then(|| file("index.html")).transpose()?,
            md: has(Format::Md).then(|| file("report.md")).transpose()?,
            bmf: has(Format::Bmf).then(|| file("bmf.json")).transpose()?,
            csv: has(Format::Csv).then(|| file("repeats.csv")).transpose()?,
            prom: has(Format::Prometheus).then(BTreeMap::new),
            appendix: None,
            tmp: tmp.to_path_buf(),
            scratch,
            results: 0,
            svgs: 0,
        };
        if s.html.is_some() || s.md.is_some() {
            let spill = |k: usize| Out::create(s.scratch.path().join(format!("appendix-{k}")));
            s.appendix = Some(([spill(0)?, spill(1)?, spill(2)?, spill(3)?], HashSet::new()));
        }
        let n = index.entries.len();
        if let Some(o) = &mut s.html {
            o.put(&html::head(n, names()))?;
        }
        if let Some(o) = &mut s.md {
            o.put(&md::head(n))?;
        }
        if let Some(o) = &mut s.bmf {
            o.put(bmf::OPEN)?;
        }
        if let Some(o) = &mut s.csv {
            o.put(&csv::header(&index.domains))?;
        }
        Ok(s)
    }

    /// One result's part of every format, and its plots as files (with md).
    fn result(&mut self, w: &WorkloadReport, plots: &[Plot], domains: &BTreeSet<String>) -> Result<(), Error> {
        if let Some(o) = &mut self.html {
            o.put(&html::section(w, plots))?;
        }
        if let Some(o) = &mut self.md {
            o.put(&md::section(w, plots))?;
            for p in plots {
                if let Ok(svg) = &p.svg {
                    let path = self.tmp.join(&p.file);
                    std::fs::write(&path, svg).map_err(|e| io_error(&path, e))?;
                    self.svgs += 1;
                }
            }
        }
        if let Some(o) = &mut self.bmf {
            o.put(&(if self.results > 0 { bmf::SEPARATOR } else { "" }.to_string() + &bmf::entry(w)))?;
        }
        if let Some(o) = &mut self.csv {
            o.put(&csv::rows(w, domains))?;
        }
        if let Some(families) = &mut self.prom {
            for s in prom::samples(w) {
                if !families.contains_key(&s.family) {
                    let spill = Out::create(self.scratch.path().join(format!("prom-{}", families.len())))?;
                    families.insert(s.family.clone(), (s.help.clone(), spill));
                }
                if let Some((_, spill)) = families.get_mut(&s.family) {
                    spill.put(&s.line)?;
                }
            }
        }
        if let Some((lists, systems)) = &mut self.appendix {
            for (k, rows) in md::appendix_rows(w).into_iter().enumerate() {
                for row in rows {
                    if k == 0 && !systems.insert(row.clone()) {
                        continue;
                    }
                    lists[k].put(&(serde_json::Value::String(row).to_string() + "\n"))?;
                }
            }
        }
        self.results += 1;
        Ok(())
    }

    /// What waits for the last result, then every file closed.
    fn finish(self, meta: &ReportMeta, formats: &[Format]) -> Result<Written, Error> {
        let Sinks { mut html, mut md, bmf, csv, prom, appendix, tmp, scratch, results, svgs } = self;
        if let Some((lists, _)) = appendix {
            let (version, inputs) = md::own_rows(meta);
            let lists: Vec<PathBuf> = lists.into_iter().map(Out::close).collect::<Result<_, _>>()?;
            let mut put = |html_text: String, md_text: String| -> Result<(), Error> {
                html.as_mut().map_or(Ok(()), |o| o.put(&html_text))?;
                md.as_mut().map_or(Ok(()), |o| o.put(&md_text))
            };
            put(html::APPENDIX_HEAD.into(), md::APPENDIX_HEAD.into())?;
            for (k, heading) in md::APPENDIX.iter().enumerate() {
                put(html::list_head(heading), md::list_head(heading))?;
                if k == 2 {
                    put(html::item(&version), md::item(&version))?;
                }
                if let Some(path) = lists.get(k) {
                    each_row(path, |r| put(html::item(r), md::item(r)))?;
                } else {
                    for r in &inputs {
                        put(html::item(r), md::item(r))?;
                    }
                }
                put(html::LIST_END.into(), String::new())?;
            }
            html.as_mut().map_or(Ok(()), |o| o.put(html::END))?;
        }
        for o in [html, md, csv].into_iter().flatten() {
            o.close()?;
        }
        if let Some(mut o) = bmf {
            o.put(bmf::CLOSE)?;
            o.close()?;
        }
        if let Some(families) = prom {
            let mut o = Out::create(tmp.join("effbench.prom"))?;
            for (name, (help, spill)) in families {
                o.put(&prom::family_head(&name, &help))?;
                let path = spill.close()?;
                let mut f = File::open(&path).map_err(|e| io_error(&path, e))?;
                std::io::copy(&mut f, &mut o.file).map_err(|e| io_error(&o.path, e))?;
            }
            o.close()?;
        }
        drop(scratch);
        let files = formats.iter().map(|f| f.file().to_string()).collect();
        Ok(Written { results, files, svgs })
    }
}

/// The second pass, into `tmp` (see the module's documentation).
fn render_into(tmp: &Path, inputs: &[PathBuf], index: &mut Index, opts: &Options) -> Result<Written, Error> {
    let mut sinks = Sinks::open(tmp, opts.formats, index)?;
    let plotted = opts.formats.iter().any(|f| matches!(f, Format::Html | Format::Md));
    // Each workload's inputs, for its energy-per-unit plot (drawn with the first of them).
    let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, e) in index.entries.iter().enumerate() {
        by_id.entry(e.id.clone()).or_default().push(i);
    }
    let mut comparer = Comparer::new(opts.baseline);
    for i in 0..index.entries.len() {
        let mine = &by_id[&index.entries[i].id];
        let energy = (plotted && mine[0] == i).then(|| {
            let rows: Vec<EnergyInput> = mine
                .iter()
                .map(|&j| {
                    let e = &index.entries[j];
                    EnergyInput { name: &e.name, unit: &e.unit, figures: &e.figures }
                })
                .collect();
            plots::energy_per_unit(&rows, &index.entries[i].id)
        });
        let w = build::load(&mut index.entries[i], &mut comparer)?;
        let plots = if plotted { plots::for_workload(&w, energy) } else { Vec::new() };
        sinks.result(&w, &plots, &index.domains)?;
    }
    let meta = ReportMeta {
        effbench_version: opts.version.to_string(),
        inputs: inputs.iter().map(|p| p.display().to_string()).collect(),
        baseline: opts.baseline.map(str::to_string),
    };
    sinks.finish(&meta, opts.formats)
}
