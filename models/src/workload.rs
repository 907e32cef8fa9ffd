//! The registry of reference workloads: ids, what each measures, its quality target, and how
//! to build its data and model.
//!
//! Targets were calibrated once on the shipped data with the `baseline` recipe (see
//! README.md, "Workloads"): each is a quality the baseline reaches reliably within its sample
//! cap on every seed, not the best the model can do.

use candle_core::{DType, Device};

use crate::data::{digits, hum, idx, text::CharText, DataConfig};
use crate::layers::Init;
use crate::recipe::{LoadedRecipe, Recipe};
use crate::task::{Classify, Net, NextChar, Reconstruct, Task};
use crate::train::Target;
use crate::{charlm, cnn, mlp, rng, ModelError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Train,
    Infer,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Train => "train",
            Kind::Infer => "infer",
        })
    }
}

/// The five model/data pairs; each has a training and an inference workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    DigitsMlp,
    FmnistMlp,
    FmnistCnn,
    CharLm,
    MachineAe,
}

pub const CHARLM: charlm::Config = charlm::Config { vocab: 75, context: 64, d_model: 64, heads: 4, blocks: 2 };

#[derive(Debug)]
pub struct WorkloadSpec {
    pub id: &'static str,
    pub kind: Kind,
    pub arch: Arch,
    pub model: &'static str,
    pub dataset: &'static str,
    pub quality_metric: &'static str,
    pub quality_target: f64,
    pub higher_is_better: bool,
    /// The unit energy and throughput are reported per.
    pub unit: &'static str,
    /// Units of work in one training sample or inference query.
    pub units_per_sample: u64,
    /// Training: evaluate every this many samples (recipes may override).
    pub every_samples: u64,
    /// Training: give up (repeat invalid) after this many samples (recipes may override).
    pub sample_cap: u64,
    /// Training: the shipped recipes, (name, TOML text).
    pub recipes: &'static [(&'static str, &'static str)],
    /// Inference: queries per batch.
    pub batch: usize,
    /// CPU threads, chosen by measurement (README.md, "Performance").
    pub threads: usize,
    /// Part of the quick suite.
    pub quick: bool,
}

macro_rules! recipe {
    ($w:literal, $name:literal) => {
        ($name, include_str!(concat!("../recipes/", $w, "/", $name, ".toml")))
    };
}

const FMNIST: &str =
    "Fashion-MNIST (train: full 60k if installed, else the shipped 10k subset; test: first 2,000 of t10k)";
const FMNIST_Q: &str = "Fashion-MNIST t10k, first 1,000 images";
const INFER_QUERIES: usize = 1000;

pub const WORKLOADS: &[WorkloadSpec] = &[
    WorkloadSpec {
        id: "digits-mlp-train",
        kind: Kind::Train,
        arch: Arch::DigitsMlp,
        model: "MLP 64-128-10, ReLU",
        dataset: "UCI optical digits (scikit-learn copy): 1,437 train / 360 test",
        quality_metric: "test accuracy",
        quality_target: 0.95,
        higher_is_better: true,
        unit: "sample",
        units_per_sample: 1,
        every_samples: 320,
        sample_cap: 100_000,
        recipes: &[recipe!("digits-mlp-train", "baseline"), recipe!("digits-mlp-train", "efficient")],
        batch: 0,
        threads: 1,
        quick: true,
    },
    WorkloadSpec {
        id: "fmnist-mlp-train",
        kind: Kind::Train,
        arch: Arch::FmnistMlp,
        model: "MLP 784-128-10, ReLU",
        dataset: FMNIST,
        quality_metric: "test accuracy",
        quality_target: 0.85,
        higher_is_better: true,
        unit: "sample",
        units_per_sample: 1,
        every_samples: 2048,
        sample_cap: 400_000,
        recipes: &[
            recipe!("fmnist-mlp-train", "baseline"),
            recipe!("fmnist-mlp-train", "efficient"),
            recipe!("fmnist-mlp-train", "tuned-lr"),
        ],
        batch: 0,
        threads: 1,
        quick: true,
    },
    WorkloadSpec {
        id: "fmnist-cnn-train",
        kind: Kind::Train,
        arch: Arch::FmnistCnn,
        model: "CNN 2x(conv3x3+ReLU+maxpool2) 16/32 ch, FC 1568-64-10",
        dataset: FMNIST,
        quality_metric: "test accuracy",
        quality_target: 0.85,
        higher_is_better: true,
        unit: "sample",
        units_per_sample: 1,
        every_samples: 2048,
        sample_cap: 200_000,
        recipes: &[recipe!("fmnist-cnn-train", "baseline")],
        batch: 0,
        threads: 1,
        quick: false,
    },
    WorkloadSpec {
        id: "charlm-austen-train",
        kind: Kind::Train,
        arch: Arch::CharLm,
        model: "char transformer, 2 pre-LN blocks, d 64, 4 heads, context 64 (~114k params)",
        dataset: "Pride and Prejudice (Austen), first 90% train, last 10% held out",
        quality_metric: "held-out loss (nats/char)",
        quality_target: 2.20,
        higher_is_better: false,
        unit: "token",
        units_per_sample: 64,
        every_samples: 1024,
        sample_cap: 60_000,
        recipes: &[recipe!("charlm-austen-train", "baseline")],
        batch: 0,
        // 1 since the fused layer norm and attention (2026-12-02, bench/peers/README.md): one
        // thread took 56 ms of CPU per step against 228 for two (candle's pool spins).
        threads: 1,
        quick: false,
    },
    WorkloadSpec {
        id: "ae-machine-train",
        kind: Kind::Train,
        arch: Arch::MachineAe,
        model: "FC autoencoder 640-128x4-8-128x4-640 (MLPerf Tiny AD shape, no batch norm)",
        dataset: "procedural machine hum (seeded): 4,000 normal train; 500 normal + 500 anomalous test",
        quality_metric: "ROC-AUC",
        quality_target: 0.85,
        higher_is_better: true,
        unit: "sample",
        units_per_sample: 1,
        every_samples: 500,
        sample_cap: 100_000,
        recipes: &[recipe!("ae-machine-train", "baseline")],
        batch: 0,
        threads: 1,
        quick: true,
    },
    infer(
        "fmnist-mlp-infer",
        Arch::FmnistMlp,
        "MLP 784-128-10, ReLU",
        FMNIST_Q,
        "accuracy on the queries",
        0.843,
        true,
        1,
        true,
    ),
    infer(
        "fmnist-mlp-infer-b250",
        Arch::FmnistMlp,
        "MLP 784-128-10, ReLU",
        FMNIST_Q,
        "accuracy on the queries",
        0.843,
        true,
        250,
        true,
    ),
    infer(
        "fmnist-cnn-infer",
        Arch::FmnistCnn,
        "CNN 16/32 ch, FC 1568-64-10",
        FMNIST_Q,
        "accuracy on the queries",
        0.857,
        true,
        1,
        false,
    ),
    infer(
        "fmnist-cnn-infer-b250",
        Arch::FmnistCnn,
        "CNN 16/32 ch, FC 1568-64-10",
        FMNIST_Q,
        "accuracy on the queries",
        0.857,
        true,
        250,
        false,
    ),
    infer(
        "charlm-austen-infer",
        Arch::CharLm,
        "char transformer (see charlm-austen-train)",
        "Pride and Prejudice held-out 10%: 1,000 contexts of 64 chars",
        "next-char loss on the queries (nats)",
        1.876,
        false,
        1,
        false,
    ),
    infer(
        "charlm-austen-infer-b250",
        Arch::CharLm,
        "char transformer (see charlm-austen-train)",
        "Pride and Prejudice held-out 10%: 1,000 contexts of 64 chars",
        "next-char loss on the queries (nats)",
        1.876,
        false,
        250,
        false,
    ),
    infer(
        "ae-machine-infer",
        Arch::MachineAe,
        "FC autoencoder 640-...-640",
        "machine hum test set: 500 normal + 500 anomalous",
        "ROC-AUC on the queries",
        0.891,
        true,
        1,
        true,
    ),
    infer(
        "ae-machine-infer-b250",
        Arch::MachineAe,
        "FC autoencoder 640-...-640",
        "machine hum test set: 500 normal + 500 anomalous",
        "ROC-AUC on the queries",
        0.891,
        true,
        250,
        false,
    ),
];

#[allow(clippy::too_many_arguments)]
const fn infer(
    id: &'static str,
    arch: Arch,
    model: &'static str,
    dataset: &'static str,
    quality_metric: &'static str,
    quality_target: f64,
    higher_is_better: bool,
    batch: usize,
    quick: bool,
) -> WorkloadSpec {
    WorkloadSpec {
        id,
        kind: Kind::Infer,
        arch,
        model,
        dataset,
        quality_metric,
        quality_target,
        higher_is_better,
        unit: "query",
        units_per_sample: 1,
        every_samples: 0,
        sample_cap: 0,
        recipes: &[],
        batch,
        threads: 1,
        quick,
    }
}

impl WorkloadSpec {
    pub fn get(id: &str) -> Result<&'static WorkloadSpec> {
        WORKLOADS.iter().find(|w| w.id == id).ok_or_else(|| ModelError::UnknownWorkload {
            id: id.to_string(),
            valid: WORKLOADS.iter().map(|w| w.id).collect::<Vec<_>>().join(", "),
        })
    }

    pub fn recipe_names(&self) -> Vec<&'static str> {
        self.recipes.iter().map(|(n, _)| *n).collect()
    }

    /// A shipped recipe by name, or a recipe file by path.
    pub fn recipe(&self, name_or_path: &str) -> Result<LoadedRecipe> {
        let (loaded, origin) = if let Some((_, text)) = self.recipes.iter().find(|(n, _)| *n == name_or_path) {
            let origin = std::path::PathBuf::from(format!("<shipped {}/{name_or_path}.toml>", self.id));
            (Recipe::parse(text, &origin)?, origin)
        } else {
            let p = std::path::Path::new(name_or_path);
            if !(p.extension().is_some_and(|e| e == "toml") || p.exists()) {
                return Err(ModelError::UnknownRecipe {
                    name: name_or_path.to_string(),
                    workload: self.id.to_string(),
                    valid: self.recipe_names().join(", "),
                });
            }
            (Recipe::load(p)?, p.to_path_buf())
        };
        loaded.recipe.check_evaluation(&origin, self.every_samples, self.sample_cap)?;
        let labelled = matches!(self.arch, Arch::DigitsMlp | Arch::FmnistMlp | Arch::FmnistCnn);
        loaded.recipe.check_trainable(&origin, self.id, labelled)?;
        Ok(loaded)
    }

    pub fn target(&self, recipe: &Recipe) -> Target {
        Target {
            quality_target: self.quality_target,
            higher_is_better: self.higher_is_better,
            every_samples: recipe.evaluation.every_samples.unwrap_or(self.every_samples),
            sample_cap: recipe.evaluation.sample_cap.unwrap_or(self.sample_cap),
        }
    }

    /// The training workload whose trained weights an inference workload uses.
    pub fn weights_name(&self) -> &'static str {
        match self.arch {
            Arch::DigitsMlp => "digits-mlp",
            Arch::FmnistMlp => "fmnist-mlp",
            Arch::FmnistCnn => "fmnist-cnn",
            Arch::CharLm => "charlm-austen",
            Arch::MachineAe => "ae-machine",
        }
    }

    /// Model FLOPs per unit of work, counted per layer as executed (`layers::Flops`): the
    /// forward pass for inference; forward + backward for training (no gradient with respect
    /// to the data; the optimizer update is not counted, it depends on the recipe).
    pub fn flops_per_unit(&self, net: &dyn Net) -> f64 {
        let per_sample = match self.kind {
            Kind::Train => net.train_flops_per_sample(),
            Kind::Infer => net.forward_flops_per_sample(),
        };
        per_sample as f64 / self.units_per_sample as f64
    }

    /// Which data this workload reads with `data` (recorded in results).
    pub fn dataset_label(&self, data: &DataConfig) -> String {
        match (self.arch, self.kind, data.fmnist_train_elsewhere()) {
            (Arch::FmnistMlp | Arch::FmnistCnn, Kind::Train, Some(d)) => {
                format!("fashion-mnist train set from {}; test: first 2,000 of t10k (shipped)", d.display())
            }
            (Arch::FmnistMlp | Arch::FmnistCnn, Kind::Train, None) => {
                // The shipped 10k subset, named as the shipped baselines name it.
                format!(
                    "fashion-mnist train set from {}; test: first 2,000 of t10k (shipped)",
                    data.fmnist_subset_label()
                )
            }
            _ => self.dataset.to_string(),
        }
    }

    /// Build the net with weights drawn from `seed`.
    pub fn build_net(&self, seed: u64, dev: &Device) -> Result<Box<dyn Net>> {
        let mut r = rng::rng(seed, rng::Stream::Init);
        let init = Init::new(&mut r, dev, DType::F32);
        Ok(match self.arch {
            Arch::DigitsMlp => Box::new(mlp::Mlp::new(&[64, 128, 10], init)?),
            Arch::FmnistMlp => Box::new(mlp::Mlp::new(&[784, 128, 10], init)?),
            Arch::FmnistCnn => Box::new(cnn::Cnn::new(28, 10, init)?),
            Arch::CharLm => Box::new(charlm::CharLm::new(CHARLM, init)?),
            Arch::MachineAe => Box::new(crate::autoencoder::autoencoder(init)?),
        })
    }

    /// Load the data (outside any measured window).
    pub fn build_task(&self, data: &DataConfig) -> Result<Box<dyn Task>> {
        let shipped = &data.shipped;
        Ok(match self.arch {
            Arch::DigitsMlp => {
                let (train, test) = digits::read(&shipped.join("digits/digits.csv.gz"))?;
                Box::new(Classify { train, test })
            }
            Arch::FmnistMlp | Arch::FmnistCnn => {
                let subset = shipped.join("fashion-mnist-subset");
                let train_dir = match (&data.fmnist_full, self.kind) {
                    (Some(d), Kind::Train) => d.clone(),
                    _ => subset.clone(),
                };
                let train = idx::read_split(&train_dir, "train")?;
                let test = idx::read_split(&subset, "t10k")?;
                Box::new(Classify { train, test })
            }
            Arch::CharLm => {
                let text = CharText::read(&shipped.join("austen/pride-and-prejudice.txt.gz"))?;
                if text.vocab.len() != CHARLM.vocab {
                    return Err(ModelError::bad_data(
                        shipped.join("austen"),
                        format!("vocabulary of {} characters, the model expects {}", text.vocab.len(), CHARLM.vocab),
                    ));
                }
                let split = text.ids.len() * 9 / 10;
                Box::new(NextChar {
                    train: text.ids[..split].to_vec(),
                    held_out: text.ids[split..].to_vec(),
                    context: CHARLM.context,
                    eval_windows: 256,
                })
            }
            Arch::MachineAe => Box::new(Reconstruct { data: hum::generate(), dim: hum::DIM }),
        })
    }

    /// The quick suite: every kind of workload, a few minutes on 2 cores.
    pub fn suite(full: bool) -> Vec<&'static WorkloadSpec> {
        WORKLOADS.iter().filter(|w| full || w.quick).collect()
    }

    pub fn query_count(&self) -> usize {
        INFER_QUERIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_training_workload_ships_baseline() {
        let mut ids: Vec<_> = WORKLOADS.iter().map(|w| w.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), WORKLOADS.len());
        for w in WORKLOADS.iter().filter(|w| w.kind == Kind::Train) {
            assert!(w.recipe_names().contains(&"baseline"), "{}", w.id);
            for name in w.recipe_names() {
                w.recipe(name).unwrap_or_else(|e| panic!("{}/{name}: {e}", w.id));
            }
        }
        assert!(WorkloadSpec::get("fmnist-mlp-train").unwrap().recipe_names().contains(&"efficient"));
    }

    #[test]
    fn unknown_ids_and_recipes_list_the_valid_ones() {
        let e = WorkloadSpec::get("nope").unwrap_err().to_string();
        assert!(e.contains("fmnist-mlp-train") && e.contains("ae-machine-infer"), "{e}");
        let w = WorkloadSpec::get("digits-mlp-train").unwrap();
        let e = w.recipe("fast").unwrap_err().to_string();
        assert!(e.contains("baseline"), "{e}");
    }

    #[test]
    fn recipes_the_reference_workloads_cannot_train_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my-method.toml");
        let base = "name = \"m\"\noptimizer = \"adamw\"\nlearning_rate = 1e-3\nbatch_size = 64\n";
        let p = path.to_str().unwrap();
        std::fs::write(&path, format!("{base}precision = \"f16\"\n")).unwrap();
        let e = WorkloadSpec::get("digits-mlp-train").unwrap().recipe(p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{p}: recipe \"m\": precision F16 is not supported")), "{e}");
        std::fs::write(&path, format!("{base}[data]\nselection = \"pruned\"\nfraction = 0.5\n")).unwrap();
        let e = WorkloadSpec::get("charlm-austen-train").unwrap().recipe(p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{p}: recipe \"m\": data.selection = \"pruned\" needs")), "{e}");
        assert!(WorkloadSpec::get("digits-mlp-train").unwrap().recipe(p).is_ok());
    }

    #[test]
    fn quick_suite_has_both_kinds() {
        let q = WorkloadSpec::suite(false);
        assert!(q.iter().any(|w| w.kind == Kind::Train) && q.iter().any(|w| w.kind == Kind::Infer));
        assert_eq!(WorkloadSpec::suite(true).len(), WORKLOADS.len());
    }
}
