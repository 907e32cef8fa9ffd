//! Recipes: `Recipe::parse` never panics or allocates without bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|b: &[u8]| {
    let _ = effbench_models::recipe::Recipe::parse(&String::from_utf8_lossy(b), Path::new("fuzz.toml"));
});
