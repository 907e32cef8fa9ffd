//! CPU thread count per workload. candle's GEMM reads `RAYON_NUM_THREADS` on every call, so
//! setting it before a workload decides how many threads its matrix products use; the global
//! rayon pool itself is sized once, at start, to the largest count any workload uses.

/// Set the thread count candle uses from now on.
pub fn set(threads: usize) {
    // The harness changes this only between workloads, while no candle work is running.
    std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string());
}

/// The user's explicit choice, if any (`RAYON_NUM_THREADS` set before effbench started).
pub fn from_env() -> Option<usize> {
    std::env::var("RAYON_NUM_THREADS").ok()?.parse().ok().filter(|&n| n > 0)
}
