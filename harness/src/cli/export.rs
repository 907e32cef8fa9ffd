use std::path::PathBuf;

use clap::Args;
use effbench_models::data::DataConfig;
use effbench_models::{Kind, WorkloadSpec};

use super::run::Suite;
use super::CliResult;
use crate::error::{Error, Exit};
use crate::export;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Inference workload id (repeatable); see `effbench list`.
    #[arg(long = "workload", value_name = "ID", conflicts_with = "suite", required_unless_present = "suite")]
    pub workloads: Vec<String>,
    /// Every inference workload of a suite.
    #[arg(long, value_enum)]
    pub suite: Option<Suite>,
    /// Output directory: one bundle per workload in DIR/<id>/.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn main(args: ExportArgs) -> CliResult {
    let specs: Vec<&'static WorkloadSpec> = match args.suite {
        Some(s) => {
            WorkloadSpec::suite(matches!(s, Suite::Full)).into_iter().filter(|w| w.kind == Kind::Infer).collect()
        }
        None => args.workloads.iter().map(|id| export::inference_spec(id)).collect::<Result<_, _>>()?,
    };
    let data = DataConfig::discover(None);
    let weights = effbench_models::infer::default_weights_dir();
    export::export_bundles(&specs, &args.out, &data, &weights, &mut |e| {
        print!("{}", crate::report::listing::exported_line(e))
    })
    .map_err(Error::bad_input)?;
    Ok(Exit::Ok)
}
