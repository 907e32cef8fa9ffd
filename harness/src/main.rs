use std::process::ExitCode;

use clap::Parser;
use effbench::cli::{dispatch, Cli};

// candle allocates a fresh buffer for every op; with glibc's malloc, buffers of a few hundred
// KiB go through mmap/munmap and page faults dominate small models' steps. mimalloc made the
// MLP step about 2.3x faster on this project's machines (../shared/workloads.md). The
// allocator is recorded in every result.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    effbench::backend::align_gpu_numbering();
    let cli = Cli::parse();
    let outcome = dispatch(cli);
    // An interrupt's own exit code (130/143) wins over what the interrupted work returned.
    effbench::interrupt::wait_if_interrupted();
    // The one place an outcome becomes the process's exit code.
    let exit = match outcome {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("effbench: error: {e}");
            e.exit()
        }
    };
    ExitCode::from(exit.code())
}
