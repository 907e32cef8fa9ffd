//! CPU thread count per workload. candle's GEMM reads `RAYON_NUM_THREADS` on every call, so
//! setting it before a workload decides how many threads its matrix products use; the global
//! rayon pool itself is sized once, at start, to the largest count any workload uses.

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
