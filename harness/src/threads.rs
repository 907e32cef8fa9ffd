//! CPU thread count per workload. candle's GEMM reads `RAYON_NUM_THREADS` on every call and
//! splits a product into that many tasks, so setting it before a workload decides how many
//! threads its matrix products use, but the tasks run on rayon's global pool, which rayon
//! sizes once, at its first use, from `RAYON_NUM_THREADS` as it is then. Left to itself the
//! pool would take whatever count was set when some op first went parallel (a 1-thread
//! workload's convolution builds a pool of one, and every 2-thread workload after it then runs
//! on one thread while its result says two). So [`size_pool`] builds the pool explicitly,
//! before any candle work, with the largest count the command will use.

/// The fewest threads [`max`] allows, whatever the machine: room to oversubscribe a small box
/// on purpose.
pub const MIN_CEILING: usize = 64;

/// The most threads effbench accepts: `max(64, 4 × the CPUs this process may use)`. More than
/// that measures the scheduler, not the workload, and a typo (`--threads 100000`) would start
/// that many threads and stall the machine.
pub fn max() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (4 * cpus).max(MIN_CEILING)
}

/// Checks a thread count given by the user (`what` names where it came from, e.g. `--threads`).
pub fn check(n: usize, what: &str) -> Result<usize, String> {
    let max = max();
    if (1..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{what} {n} is outside 1..={max} (at most max(64, 4 x the {} CPUs this process may use)); \
             pick a count in that range, or leave it out for each workload's measured best",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ))
    }
}

/// clap's parser for `--threads`: a whole number in `1..=max()`.
pub fn parse_arg(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("{s:?} is not a whole number of threads"))?;
    check(n, "--threads")
}

/// Builds rayon's global pool with `n` threads (the most any workload of this command uses);
/// call it before any candle work. Once built the pool cannot change: a second call is
/// accepted while the pool has at least `n` threads, and refused (with both counts) when it
/// has fewer, since a workload would then run on fewer threads than it says.
pub fn size_pool(n: usize) -> Result<usize, String> {
    let n = n.max(1);
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("effbench-rayon-{i}"))
        .build_global()
        .is_ok();
    let have = rayon::current_num_threads();
    if built || have >= n {
        Ok(have)
    } else {
        Err(format!("rayon's thread pool was already built with {have} thread(s), fewer than the {n} asked for"))
    }
}

/// Set the thread count candle uses from now on.
pub fn set(threads: usize) {
    // The harness changes this only between workloads, while no candle work is running.
    std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string());
}

/// The user's explicit choice, if any (`RAYON_NUM_THREADS` set before effbench started).
pub fn from_env() -> Option<usize> {
    std::env::var("RAYON_NUM_THREADS").ok()?.parse().ok().filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_sized_once_and_never_smaller_than_asked() {
        // Whatever built the test process's pool, it has a size, and asking for more than
        // that is refused with both counts rather than silently running on fewer threads.
        let have = size_pool(1).unwrap();
        assert!(have >= 1);
        assert_eq!(size_pool(have), Ok(have));
        let err = size_pool(have + 1).unwrap_err();
        assert!(err.contains(&format!("{have} thread(s)")) && err.contains(&format!("{} asked", have + 1)), "{err}");
    }

    #[test]
    fn thread_counts_of_zero_or_beyond_the_ceiling_are_refused_with_the_bound() {
        let max = max();
        assert!(max >= MIN_CEILING);
        assert_eq!(parse_arg("1"), Ok(1));
        assert_eq!(parse_arg(&max.to_string()), Ok(max));
        for bad in [0, max + 1, 100_000] {
            let e = parse_arg(&bad.to_string()).unwrap_err();
            assert!(e.starts_with(&format!("--threads {bad} is outside 1..={max} (at most max(64, 4 x the")), "{e}");
        }
        assert_eq!(parse_arg("-2").unwrap_err(), "\"-2\" is not a whole number of threads");
    }
}
