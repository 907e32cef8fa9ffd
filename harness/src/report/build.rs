//! Loading `effbench report`'s inputs into a [`ReportData`]: result files (or every `*.json`
//! in a results directory), the trace beside each (`<workload>.trace.csv`), and with
//! `--baseline` the comparison with each workload's baseline. The only part of the report that
//! reads files; the renderers never do.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use super::data::{figures, unique_names, BaselineOutcome, ReportData, WorkloadReport};
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

/// Loads everything a report of `inputs` shows, one file at a time: each result is read,
/// checked, summarised ([`figures`]) and its trace reduced before the next is opened, so only
/// the parsed results and the reduced traces are held, never a whole trace. A file that is
/// not a valid result is an error naming it (exit 2; 4 for a result whose figures contradict
/// themselves).
pub fn build(inputs: &[PathBuf], baseline: Option<&str>) -> Result<ReportData, Error> {
    let files = result_files(inputs)?;
    let spec = baseline.map(BaselineSpec::parse);
    let mut cache = Baselines::new();
    let mut workloads = Vec::with_capacity(files.len());
    for f in &files {
        let result = RunResult::load(f).map_err(Error::bad_input)?;
        crate::validity::check_file(&result, f)?;
        let baseline = match &spec {
            Some(s) => Some(compare_with(s, &result, &mut cache)?),
            None => None,
        };
        workloads.push(WorkloadReport {
            name: String::new(),
            source: f.display().to_string(),
            figures: figures(&result),
            trace: load_trace(f),
            result,
            baseline,
        });
    }
    let names = unique_names(&workloads.iter().map(|w| &w.result).collect::<Vec<_>>());
    for (w, name) in workloads.iter_mut().zip(names) {
        w.name = name;
    }
    Ok(ReportData {
        effbench_version: env!("CARGO_PKG_VERSION").to_string(),
        inputs: inputs.iter().map(|p| p.display().to_string()).collect(),
        baseline: baseline.map(str::to_string),
        workloads,
    })
}
