//! The same seed gives the same samples-to-target; the seed matters. Uses the smallest
//! training workload so it runs in a second.

use candle_core::Device;
use effbench_models::data::DataConfig;
use effbench_models::train::{self, TrainOutcome};
use effbench_models::WorkloadSpec;

fn run(id: &str, recipe: &str, seed: u64) -> TrainOutcome {
    let spec = WorkloadSpec::get(id).unwrap();
    let recipe = spec.recipe(recipe).unwrap().recipe;
    let task = spec.build_task(&DataConfig::shipped_only()).unwrap();
    let net = spec.build_net(seed, &Device::Cpu).unwrap();
    train::train(task.as_ref(), net.as_ref(), &recipe, spec.target(&recipe), seed, &Device::Cpu, &mut |_| {}).unwrap()
}

#[test]
fn same_seed_same_samples_to_target() {
    let a = run("digits-mlp-train", "baseline", 3);
    let b = run("digits-mlp-train", "baseline", 3);
    assert!(a.reached, "digits baseline must reach its target: {:?}", a.evaluations.last());
    assert_eq!(a.samples_to_target, b.samples_to_target);
    assert_eq!(a.evaluations, b.evaluations);
    let seeds: Vec<_> = (0..4).map(|s| run("digits-mlp-train", "baseline", s).evaluations).collect();
    assert!(seeds.windows(2).any(|w| w[0] != w[1]), "different seeds must give different runs");
}

#[test]
fn data_selection_changes_unique_samples() {
    let dir = std::env::temp_dir().join(format!("effbench-sel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("half.toml");
    std::fs::write(
        &p,
        "name = \"half\"\noptimizer = \"adamw\"\nlearning_rate = 1e-3\nbatch_size = 32\n\
         [data]\nselection = \"random-subset\"\nfraction = 0.5\n[evaluation]\nsample_cap = 3000\n",
    )
    .unwrap();
    let out = run("digits-mlp-train", p.to_str().unwrap(), 0);
    assert_eq!(out.selected_samples, 719);
    assert!(out.unique_samples <= 719);
    assert!(out.samples_processed >= 3000);
    std::fs::remove_dir_all(dir).unwrap();
}
