//! Command-line parsing (clap derive). Parsing only: each subcommand's file turns its raw
//! arguments into a validated plan and hands it to the library.

pub mod baseline;
pub mod check;
pub mod compare;
pub mod export;
pub mod gate;
pub mod history;
pub mod keygen;
pub mod list;
pub mod peak;
pub mod report;
pub mod run;
pub mod sensors;
pub mod submit;
pub mod weights;

use clap::{Args, Parser, Subcommand};

/// `--scope`, shared by `compare`, `gate` and `check`.
#[derive(Args, Debug, Clone)]
pub struct ScopeArg {
    /// Energy scope to judge energy at: device (the accelerator doing the work, or the CPU
    /// package for the CPU backend), node (device + host CPU and DRAM), wall (a wall meter).
    /// Default: the widest scope both sides measured; domain names may differ within a scope.
    #[arg(long, value_name = "device|node|wall")]
    pub scope: Option<crate::scope::Scope>,
}

/// `--store`, shared by `run`, `baseline record` and `history` (and the gate).
#[derive(Args, Debug, Clone)]
pub struct StoreArg {
    /// The history store every result is recorded in: sqlite:PATH, postgres://USER@HOST[:PORT]/DB
    /// or none. The default is relative to the working directory.
    #[arg(long = "store", value_name = "SPEC", env = "EFFBENCH_STORE", default_value = "sqlite:results/effbench.sqlite",
          value_parser = parse_store, global = true)]
    pub store: StoreChoice,
}

/// A parsed `--store`: a store, or `none`.
#[derive(Clone, Debug)]
pub struct StoreChoice(pub Option<crate::store::StoreSpec>);

fn parse_store(s: &str) -> Result<StoreChoice, String> {
    crate::store::StoreSpec::parse(s).map(StoreChoice)
}

impl StoreArg {
    /// `--store none`.
    pub fn none() -> StoreArg {
        StoreArg { store: StoreChoice(None) }
    }
    pub fn spec(&self) -> Option<&crate::store::StoreSpec> {
        self.store.0.as_ref()
    }
}

use crate::error::{Error, Exit};

/// What every subcommand returns: how it ended, or an error carrying its exit code
/// ([`crate::error`]).
pub type CliResult = Result<Exit, Error>;

#[derive(Parser, Debug)]
#[command(
    name = "effbench",
    version,
    about = "Does this system or training method use at least 50% less energy and data than the stored baseline, for the same work at the same quality?",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the reference workloads, their quality targets and recipes.
    List(list::ListArgs),
    /// Run workloads, measuring time, energy and data use; write one result file per workload.
    Run(run::RunArgs),
    /// Record baselines: results of at least 5 repeats stored under baselines/<system>/.
    Baseline(baseline::BaselineArgs),
    /// Compare a candidate result with a baseline: per resource, the reduction with a 95%
    /// interval and met / not met / inconclusive / invalid.
    Compare(compare::CompareArgs),
    /// CI regression gate: per workload and metric, fail when the candidate is worse than the
    /// baseline by more than --max-regression, beyond noise (exit 1; 4 if a run is invalid).
    Gate(gate::GateArgs),
    /// List every candidate energy source, its status, and what to do about the missing ones.
    Sensors(sensors::SensorsArgs),
    /// Measure this machine's f32 matrix-multiply rate (the peak results are compared with).
    Peak(peak::PeakArgs),
    /// Write inference workloads as ONNX bundles (model, query inputs, reference outputs,
    /// manifest) for runners effbench cannot link against.
    Export(export::ExportArgs),
    /// Write a report of results: a self-contained HTML page with plots, Markdown, and
    /// exports for dashboards and notebooks (Bencher BMF, Prometheus textfile, CSV).
    Report(report::ReportArgs),
    /// Train a workload's model to its target and save the weights its inference workload uses.
    Weights(weights::WeightsArgs),
    /// Write an Ed25519 key pair for signing bundles (KEYFILE, KEYFILE.pub).
    Keygen(keygen::KeygenArgs),
    /// Package result directories as a bundle: results, traces, recipes, model hashes, a manifest
    /// with every file's SHA-256, optionally signed and archived.
    Submit(submit::SubmitArgs),
    /// Check a bundle, re-deriving every number it can: 0 valid, 4 invalid, 2 unreadable.
    Check(check::CheckArgs),
    /// The history store: import result directories, list, show and export runs, and a
    /// metric's trend over time.
    History(history::HistoryArgs),
}

pub fn dispatch(cli: Cli) -> CliResult {
    match cli.command {
        Command::List(a) => list::main(a),
        Command::Run(a) => run::main(a),
        Command::Baseline(a) => baseline::main(a),
        Command::Compare(a) => compare::main(a),
        Command::Gate(a) => gate::main(a),
        Command::Sensors(a) => sensors::main(a),
        Command::Peak(a) => peak::main(a),
        Command::Weights(a) => weights::main(a),
        Command::Export(a) => export::main(a),
        Command::Keygen(a) => keygen::main(a),
        Command::Submit(a) => submit::main(a),
        Command::Check(a) => check::main(a),
        Command::Report(a) => report::main(a),
        Command::History(a) => history::main(a),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
