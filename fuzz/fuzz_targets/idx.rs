//! IDX files: `idx::parse` never panics, and what it accepts has as many elements as its dims.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|b: &[u8]| {
    if let Ok((dims, payload)) = effbench_models::data::idx::parse(Path::new("fuzz.idx"), b) {
        assert_eq!(dims.iter().product::<usize>(), payload.len(), "dims and payload disagree");
    }
});
