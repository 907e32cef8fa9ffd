//! Train one workload once and print every evaluation: the tool used to calibrate targets.
//! `cargo run --release -p effbench-models --example train -- WORKLOAD [RECIPE] [SEED]`

use effbench_models::data::DataConfig;
use effbench_models::WorkloadSpec;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let id = args.first().map(String::as_str).unwrap_or("fmnist-mlp-train");
    let recipe = args.get(1).map(String::as_str).unwrap_or("baseline");
    let seed: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let spec = WorkloadSpec::get(id)?;
    let recipe = spec.recipe(recipe)?.recipe;
    let data = if std::env::var_os("SHIPPED_ONLY").is_some() {
        DataConfig::shipped_only()
    } else {
        DataConfig::discover(None)
    };
    let dev = candle_core::Device::Cpu;
    let task = spec.build_task(&data)?;
    let net = spec.build_net(seed, &dev)?;
    let start = std::time::Instant::now();
    let mut target = spec.target(&recipe);
    if let Ok(cap) = std::env::var("CAP") {
        target.sample_cap = cap.parse()?;
        target.quality_target = if spec.higher_is_better { 2.0 } else { -1.0 };
    }
    let out = effbench_models::train::train(task.as_ref(), net.as_ref(), &recipe, target, seed, &dev, &mut |e| {
        println!("{:>9} samples  quality {:.4}  {:>7.2} s", e.samples, e.quality, start.elapsed().as_secs_f64())
    })?;
    println!(
        "reached={} samples_to_target={:?} unique={} selected={} {:.2} s ({} params)",
        out.reached,
        out.samples_to_target,
        out.unique_samples,
        out.selected_samples,
        start.elapsed().as_secs_f64(),
        net.params().count()
    );
    if let Ok(path) = std::env::var("SAVE") {
        candle_core::safetensors::save(&net.params().to_map(), path)?;
    }
    Ok(())
}
