//! `effbench submit`: result directories into a bundle a testbed can check.

use std::path::PathBuf;

use clap::Args;

use super::CliResult;
use crate::bundle::{submit, SubmitOptions};
use crate::error::{Error, Exit};

#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// Result directories (as `effbench run --out` writes them) or result files.
    #[arg(required = true, value_name = "RESULTS_DIR")]
    pub results: Vec<PathBuf>,
    /// The bundle directory to write; it must not exist.
    #[arg(long, value_name = "BUNDLE")]
    pub out: PathBuf,
    /// Who submits: the bundle's top directory (letters, digits, '.', '_', '-').
    #[arg(long, value_name = "NAME", default_value = "unnamed")]
    pub submitter: String,
    /// Sign manifest.json with this secret key (from `effbench keygen`).
    #[arg(long, value_name = "KEYFILE")]
    pub sign: Option<PathBuf>,
    /// Also write BUNDLE.tar.gz.
    #[arg(long)]
    pub archive: bool,
}

pub fn main(args: SubmitArgs) -> CliResult {
    let opts = SubmitOptions {
        results: args.results,
        out: args.out,
        submitter: args.submitter,
        sign: args.sign,
        archive: args.archive,
    };
    let s = submit(&opts).map_err(Error::bad_input)?;
    print!("{}", crate::report::listing::submitted_text(&s));
    Ok(Exit::Ok)
}
