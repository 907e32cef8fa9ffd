use std::time::Duration;

use clap::Args;

use super::CliResult;
use crate::backend::Backend;
use crate::error::{Error, Exit};

#[derive(Args, Debug)]
pub struct PeakArgs {
    /// Where to measure (only `cpu` in this version).
    #[arg(long, default_value = "cpu", env = "EFFBENCH_BACKEND")]
    pub backend: String,
    /// CPU threads for the GEMMs (default: every logical CPU), 1 to max(64, 4 x the CPUs).
    #[arg(long, value_parser = crate::threads::parse_arg)]
    pub threads: Option<usize>,
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub secs: f64,
    #[arg(long)]
    pub json: bool,
}

pub fn main(args: PeakArgs) -> CliResult {
    let backend: Backend = args.backend.parse()?;
    if !(args.secs.is_finite() && args.secs > 0.0 && args.secs <= 3600.0) {
        return Err(Error::bad_input(anyhow::anyhow!(
            "--secs must be a number of seconds in (0, 3600], got {}",
            args.secs
        )));
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    crate::threads::size_pool(threads).map_err(|e| Error::bad_input(anyhow::anyhow!(e)))?;
    crate::threads::set(threads);
    let p = crate::peak::measure(&backend.device(), threads, Duration::from_secs_f64(args.secs.max(0.1)))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print!("{}", crate::report::listing::peak_text(&backend.to_string(), &p));
    }
    Ok(Exit::Ok)
}
