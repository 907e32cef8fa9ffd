use clap::Args;
use effbench_models::WORKLOADS;

use super::CliResult;
use crate::error::Exit;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn main(args: ListArgs) -> CliResult {
    if args.json {
        print!("{}", crate::report::listing::workloads_json(WORKLOADS));
    } else {
        print!("{}", crate::report::listing::workloads_text(WORKLOADS));
    }
    Ok(Exit::Ok)
}
