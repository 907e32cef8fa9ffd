//! Result files: `RunResult::from_json` never panics or allocates without bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|b: &[u8]| {
    let _ = effbench::result::RunResult::from_json(&String::from_utf8_lossy(b), Path::new("fuzz.json"));
});
