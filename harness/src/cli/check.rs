//! `effbench check`: the testbed's checker of a bundle. Exit 0 valid, 4 invalid, 2 unreadable.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::CliResult;
use crate::bundle::archive::Limits;
use crate::bundle::{check, CheckOptions};
use crate::error::{Error, Exit};
use crate::report::check::{render_json, render_markdown, render_text};

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// A bundle directory or BUNDLE.tar.gz (never run, never followed out of).
    pub bundle: PathBuf,
    /// Verify manifest.json.sig with this public key (KEYFILE.pub); unsigned then fails.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Baselines (<workload>.json) to give each workload's verdict against: the feedback.
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    #[command(flatten)]
    pub scope: super::ScopeArg,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as Markdown (the feedback for the submitter).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Testing: the most bytes an archive may unpack to.
    #[arg(long, hide = true, value_name = "BYTES")]
    pub max_unpacked_bytes: Option<u64>,
}

pub fn main(args: CheckArgs) -> CliResult {
    let mut limits = Limits::default();
    if let Some(b) = args.max_unpacked_bytes {
        limits.max_total_bytes = b;
        limits.max_entry_bytes = limits.max_entry_bytes.min(b);
    }
    let opts = CheckOptions {
        pubkey: args.pubkey,
        baseline: args.baseline,
        shipped_baselines: None,
        limits,
        scope: args.scope.scope,
    };
    let report = check(&args.bundle, &opts).map_err(Error::bad_input)?;
    if args.json {
        print!("{}", render_json(&report));
    } else {
        print!("{}", render_text(&report));
    }
    if let Some(path) = &args.markdown {
        crate::fsutil::write_atomic(path, render_markdown(&report).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if report.valid() { Exit::Ok } else { Exit::Invalid })
}
