//! `effbench report INPUT... --out DIR`: parsing only; the work is in [`crate::report`].

use std::path::PathBuf;

use clap::Args;

use super::CliResult;
use crate::error::Exit;
use crate::report::output::{wrote_text, Format};
use crate::report::stream::{write, Options};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Result files, or directories of results (every *.json in them must be a result; the
    /// trace beside each, <workload>.trace.csv, is plotted where present).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// The report's directory. It is written whole or not at all (a temporary directory beside
    /// it, renamed at the end); an existing one is replaced only if it holds nothing but an
    /// earlier report's files.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Compare each result with its baseline: a result file, a directory of
    /// <workload>.json, or `auto` for baselines/<this machine's class>/.
    #[arg(long, value_name = "PATH|auto")]
    pub baseline: Option<String>,
    /// Formats to write, comma-separated: html (index.html), md (report.md and *.svg), bmf
    /// (bmf.json, Bencher Metric Format), prometheus (effbench.prom, node_exporter textfile),
    /// csv (repeats.csv, one row per repeat).
    #[arg(long, value_delimiter = ',', default_value = "html,md")]
    pub format: Vec<Format>,
}

pub fn main(args: ReportArgs) -> CliResult {
    let mut formats = args.format.clone();
    formats.sort();
    formats.dedup();
    let opts = Options { baseline: args.baseline.as_deref(), formats: &formats, version: env!("CARGO_PKG_VERSION") };
    let w = write(&args.inputs, &args.out, &opts)?;
    print!("{}", wrote_text(&args.out, w.results, &w.files, w.svgs));
    Ok(Exit::Ok)
}
