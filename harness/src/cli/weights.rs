use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use effbench_models::data::DataConfig;
use effbench_models::{train, Kind, WorkloadSpec};

use super::CliResult;
use crate::error::{Error, Exit};

#[derive(Args, Debug)]
pub struct WeightsArgs {
    /// A training workload whose model an inference workload uses.
    #[arg(long, value_name = "ID")]
    pub workload: String,
    #[arg(long, default_value = "baseline", value_name = "NAME|PATH")]
    pub recipe: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (default: the shipped weights directory, models/weights).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Train for exactly this many samples instead of stopping at the quality target (a
    /// better-trained model for inference than one that just crossed the target).
    #[arg(long)]
    pub samples: Option<u64>,
    /// Directory with the full Fashion-MNIST IDX files (see `run --data-dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

pub fn main(args: WeightsArgs) -> CliResult {
    let spec = WorkloadSpec::get(&args.workload)?;
    if spec.kind != Kind::Train {
        return Err(Error::bad_input(anyhow!("{} is not a training workload", spec.id)));
    }
    let recipe = spec.recipe(&args.recipe)?;
    let data = DataConfig::discover(args.data_dir.as_deref());
    let dev = candle_core::Device::Cpu;
    crate::threads::size_pool(spec.threads).map_err(|e| Error::bad_input(anyhow!(e)))?;
    crate::threads::set(spec.threads);
    let task = spec.build_task(&data)?;
    let net = spec.build_net(args.seed, &dev)?;
    let mut target = spec.target(&recipe.recipe);
    if let Some(n) = args.samples {
        target.sample_cap = n;
        target.every_samples = target.every_samples.max(n / 20);
        target.quality_target = if spec.higher_is_better { f64::INFINITY } else { f64::NEG_INFINITY };
    }
    let out = train::train(task.as_ref(), net.as_ref(), &recipe.recipe, target, args.seed, &dev, &mut |e| {
        eprintln!("effbench: {} samples: quality {:.4}", e.samples, e.quality)
    })?;
    if !out.reached && args.samples.is_none() {
        return Err(Error::invalid(anyhow!("{} did not reach its target; no weights written", spec.id)));
    }
    let dir = args.out.unwrap_or_else(effbench_models::infer::default_weights_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.safetensors", spec.weights_name()));
    let tmp = dir.join(format!(".{}.safetensors.tmp", spec.weights_name()));
    candle_core::safetensors::save(&net.params().to_map(), &tmp)?;
    std::fs::rename(&tmp, &path)?;
    let provenance = serde_json::json!({
        "schema": "effbench.weights/1",
        "workload": spec.id,
        "recipe": recipe.recipe.name,
        "recipe_sha256": recipe.sha256,
        "seed": args.seed,
        "dataset": spec.dataset_label(&data),
        "samples_trained": out.samples_processed,
        "samples_to_target": out.samples_to_target,
        "quality_at_end": out.quality,
        "quality_target": spec.quality_target,
        "command": std::env::args().collect::<Vec<_>>(),
        "created_at": chrono::Utc::now().to_rfc3339(),
        "effbench_version": env!("CARGO_PKG_VERSION"),
    });
    crate::fsutil::write_json_atomic(&dir.join(format!("{}.json", spec.weights_name())), &provenance)?;
    print!("{}", crate::report::listing::weights_line(&path, out.quality, out.samples_processed));
    Ok(Exit::Ok)
}
