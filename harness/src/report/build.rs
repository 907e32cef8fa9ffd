//! Reading `effbench report`'s inputs: result files (or every `*.json` in a results
//! directory), the trace beside each (`<workload>.trace.csv`), and with `--baseline` the
//! comparison with each workload's baseline. The only part of the report that reads inputs;
//! the renderers never do.
//!
//! In two passes, so that memory does not grow with the number of results: [`index`] reads
//! and checks every result and computes its figures (the bootstrap intervals, each once),
//! keeping only an [`Entry`] per result; [`load`] then reads one result again, with its trace
//! and comparison, for it to be rendered and dropped before the next.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use super::data::{figures, unique_names, BaselineOutcome, Figure, NameKey, WorkloadReport};
use crate::baseline::BaselineSpec;
use crate::error::Error;
use crate::result::RunResult;
use crate::verdict::{compare, CompareOptions};

/// The result files named by `inputs`: each file as given, each directory's `*.json` (not
/// hidden), sorted. A directory without one is an error: it is probably the wrong one.
pub fn result_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    for input in inputs {
        if !input.is_dir() {
            files.push(input.clone());
            continue;
        }
        let list = |e: std::io::Error| Error::bad_input(anyhow!("cannot list {}: {e}", input.display()));
        let mut found: Vec<PathBuf> = Vec::new();
        for e in std::fs::read_dir(input).map_err(list)? {
            let name = e.map_err(list)?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.starts_with('.') {
                found.push(input.join(name));
            }
        }
        if found.is_empty() {
            return Err(Error::bad_input(anyhow!("{} holds no result files (*.json)", input.display())));
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// The trace beside a result file: `w.json` -> `w.trace.csv`, reduced; or why there is none.
pub fn load_trace(result_path: &Path) -> Result<super::data::Trace, String> {
    let path = result_path.with_extension("trace.csv");
    match std::fs::File::open(&path) {
        Ok(f) => super::trace_reduce::read(std::io::BufReader::new(f), &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("no power trace: {} does not exist", path.display()))
        }
        Err(e) => Err(format!("no power trace: cannot read {}: {e}", path.display())),
    }
}

/// Baselines already read and checked, by path: many results of one workload (10,000 files
/// from a testbed) read their baseline once.
type Baselines = std::collections::HashMap<PathBuf, (RunResult, bool)>;

/// `r` compared with its baseline under `spec`. A baseline that exists but cannot be read or
/// used is bad input; one that is absent (or of another workload) is reported as missing.
fn compare_with(spec: &BaselineSpec, r: &RunResult, cache: &mut Baselines) -> Result<BaselineOutcome, Error> {
    let id = &r.workload.id;
    let Some(path) = spec.locate(id) else {
        let where_ = match spec {
            BaselineSpec::Auto { root, host_class } => root.join(host_class).join(format!("{id}.json")),
            BaselineSpec::Path(p) => p.join(format!("{id}.json")),
        };
        return Ok(BaselineOutcome::Missing(format!("no baseline for {id}: {} does not exist", where_.display())));
    };
    use std::collections::hash_map::Entry;
    let (b, checked) = match cache.entry(path.clone()) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert((RunResult::load(&path).map_err(Error::bad_input)?, false)),
    };
    if b.workload.id != *id {
        return Ok(BaselineOutcome::Missing(format!(
            "no baseline for {id}: {} is a baseline of {}",
            path.display(),
            b.workload.id
        )));
    }
    if !*checked {
        crate::validity::check_file(b, &path)?;
        crate::baseline::check_usable(&path, b).map_err(Error::bad_input)?;
        *checked = true;
    }
    let comparison = Box::new(compare(r, b, &CompareOptions::default()));
    Ok(BaselineOutcome::Compared { path: path.display().to_string(), comparison })
}

/// What the first pass keeps of one result: a few strings and its figures, about 1 KB.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: PathBuf,
    /// Unique within the report ([`unique_names`]).
    pub name: String,
    pub id: String,
    /// The workload's unit of work.
    pub unit: String,
    /// Computed once, here; handed to the result's [`WorkloadReport`] when it is rendered.
    pub figures: Vec<Figure>,
}

/// Every result of a report, as the first pass leaves them.
#[derive(Clone, Debug, Default)]
pub struct Index {
    pub entries: Vec<Entry>,
    /// Every energy domain any repeat of any result has (the CSV's columns).
    pub domains: BTreeSet<String>,
}

/// A result file read and checked: not a result is bad input (exit 2), a result whose
/// figures contradict themselves exit 4.
fn read(path: &Path) -> Result<RunResult, Error> {
    let result = RunResult::load(path).map_err(Error::bad_input)?;
    crate::validity::check_file(&result, path)?;
    Ok(result)
}

/// The first pass: every result file of `inputs` read and checked, one at a time, its figures
/// computed and its name given; nothing else of it is kept.
pub fn index(inputs: &[PathBuf]) -> Result<Index, Error> {
    let files = result_files(inputs)?;
    let mut index = Index::default();
    let mut keys = Vec::with_capacity(files.len());
    for path in files {
        let r = read(&path)?;
        for x in &r.repeats {
            for d in x.energy_j.by_domain.keys() {
                if !index.domains.contains(d) {
                    index.domains.insert(d.clone());
                }
            }
        }
        keys.push(NameKey::of(&r));
        let (id, unit) = (r.workload.id.clone(), r.workload.unit.clone());
        index.entries.push(Entry { path, name: String::new(), id, unit, figures: figures(&r) });
    }
    for (e, name) in index.entries.iter_mut().zip(unique_names(&keys)) {
        e.name = name;
    }
    Ok(index)
}

/// Where `--baseline` leads, and the baselines already read.
pub struct Comparer {
    spec: Option<BaselineSpec>,
    cache: Baselines,
}

impl Comparer {
    pub fn new(baseline: Option<&str>) -> Comparer {
        Comparer { spec: baseline.map(BaselineSpec::parse), cache: Baselines::new() }
    }
}

/// The second pass, for one result: `e`'s file read (and checked) again, with its trace and
/// with `--baseline` its comparison; its figures moved out of `e`. A file that changed since
/// the first pass into another workload's result is an error, not a wrong report.
pub fn load(e: &mut Entry, comparer: &mut Comparer) -> Result<WorkloadReport, Error> {
    let result = read(&e.path)?;
    if result.workload.id != e.id {
        return Err(Error::bad_input(anyhow!(
            "{} changed while the report was written (a result of {}, then of {}); run report again",
            e.path.display(),
            e.id,
            result.workload.id
        )));
    }
    let baseline = match &comparer.spec {
        Some(s) => Some(compare_with(s, &result, &mut comparer.cache)?),
        None => None,
    };
    Ok(WorkloadReport {
        name: e.name.clone(),
        source: e.path.display().to_string(),
        figures: std::mem::take(&mut e.figures),
        trace: load_trace(&e.path),
        result,
        baseline,
    })
}
