//! `effbench history`: the store's commands. Parsing only; the work is in [`crate::store`],
//! the text in [`crate::store::view`] and [`crate::report::trend`].

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand};

use super::{CliResult, StoreArg};
use crate::error::{Error, Exit};
use crate::store::{ListFilter, Store};

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub store: StoreArg,
    #[command(subcommand)]
    pub command: HistoryCommand,
}

#[derive(Subcommand, Debug)]
pub enum HistoryCommand {
    /// Record every result file under these directories (recursively); files already in the
    /// store are left as they are. Exit 2 at the end if any file was not a result.
    Import {
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
    },
    /// The stored runs, newest first.
    List {
        #[arg(long, value_name = "ID")]
        workload: Option<String>,
        /// A hostname or a system class (e.g. cpu-amd-epyc-2t).
        #[arg(long, value_name = "S")]
        system: Option<String>,
        /// Runs created on or after this day (YYYY-MM-DD, UTC) or instant (RFC 3339).
        #[arg(long, value_name = "DATE", value_parser = parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many runs.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// One run: its index entry and summary statistics (--json: the stored result document).
    Show {
        /// A run id (or at least 6 leading hex digits of it or of the document's SHA-256).
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a run's result file back into DIR, byte-identical to the stored copy.
    Export {
        run: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// A metric over time, each run's median with its 95% interval (e.g. --metric energy_j).
    Trend {
        #[arg(long, value_name = "ID")]
        workload: String,
        /// A summary statistic of the result files: wall_s, energy_j, energy_per_unit_j, ...
        #[arg(long, value_name = "M")]
        metric: String,
        /// Also draw it as an SVG plot.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn parse_since(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("{s:?} is not a date: give YYYY-MM-DD (UTC) or an RFC 3339 time"))
}

pub fn main(args: HistoryArgs) -> CliResult {
    let spec = args.store.spec().ok_or_else(|| {
        Error::bad_input(anyhow!("history needs a store: --store none (or EFFBENCH_STORE=none) was given"))
    })?;
    let store = Store::open(spec)?;
    match args.command {
        HistoryCommand::Import { dirs } => import(&store, &dirs),
        HistoryCommand::List { workload, system, since, limit, json } => {
            let runs = store.list(&ListFilter { workload, system, since, limit })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                print!("{}", crate::store::view::list_text(&runs));
            }
            Ok(Exit::Ok)
        }
        HistoryCommand::Show { run, json } => {
            let r = store.find(&run)?;
            if json {
                print!("{}", store.document(&r.sha256)?);
            } else {
                print!("{}", crate::store::view::show_text(&r));
            }
            Ok(Exit::Ok)
        }
        HistoryCommand::Export { run, out } => export(&store, &run, &out),
        HistoryCommand::Trend { workload, metric, svg, json } => trend(&store, &workload, &metric, svg, json),
    }
}

/// `export`: the stored copy back under its file name, atomically.
fn export(store: &Store, run: &str, out: &std::path::Path) -> CliResult {
    let r = store.find(run)?;
    let name = r
        .path
        .file_name()
        .map_or_else(|| format!("{}.json", r.result.workload.id), |n| n.to_string_lossy().into_owned());
    std::fs::create_dir_all(out)
        .map_err(|e| Error::bad_input(anyhow!("cannot create --out {}: {e}", out.display())))?;
    let dest = out.join(name);
    crate::fsutil::write_atomic(&dest, store.document(&r.sha256)?.as_bytes())
        .map_err(|e| Error::bad_input(anyhow!("cannot write {}: {e}", dest.display())))?;
    println!("{}", dest.display());
    Ok(Exit::Ok)
}

fn trend(store: &Store, workload: &str, metric: &str, svg: Option<PathBuf>, json: bool) -> CliResult {
    let points = store.trend(workload, metric)?;
    if points.is_empty() {
        return Err(Error::bad_input(anyhow!(
            "no run of {workload} in the store {} has a summary of {metric:?} \
             (`effbench history list --workload {workload}` shows its runs)",
            store.spec()
        )));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&points)?);
    } else {
        print!("{}", crate::report::trend::text(workload, metric, &points));
    }
    if let Some(path) = svg {
        let drawn = crate::report::trend::svg(workload, metric, &points)
            .map_err(|e| Error::bad_input(anyhow!("drawing the trend: {e}")))?;
        crate::fsutil::write_atomic(&path, drawn.as_bytes())
            .map_err(|e| Error::bad_input(anyhow!("cannot write {}: {e}", path.display())))?;
    }
    Ok(Exit::Ok)
}

fn import(store: &Store, dirs: &[PathBuf]) -> CliResult {
    let report = crate::store::import_dirs(store, dirs, &mut |_, _| {})?;
    for (path, why) in &report.skipped {
        eprintln!("effbench: skipped {}: {why}", path.display());
    }
    println!(
        "{} recorded, {} already in the store, {} skipped (not result files) into {}",
        report.recorded.len(),
        report.already.len(),
        report.skipped.len(),
        store.spec()
    );
    Ok(if report.skipped.is_empty() { Exit::Ok } else { Exit::BadInput })
}
