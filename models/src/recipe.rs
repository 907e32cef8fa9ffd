//! Training recipes: how a training workload is trained, as a TOML file, so a lab can try a
//! method without writing Rust. Unknown keys are errors (a typo must not silently fall back to
//! a default), and parse errors name the file, line and column.
//!
//! ```toml
//! name = "baseline"
//! description = "AdamW 1e-3, batch 64, all the data"
//! optimizer = "adamw"          # adamw | sgd
//! learning_rate = 1e-3
//! weight_decay = 0.01          # adamw only
//! momentum = 0.0               # sgd only (0 = plain SGD)
//! batch_size = 64
//! precision = "f32"
//!
//! [schedule]
//! kind = "constant"            # constant | cosine | step
//! warmup_samples = 0
//! decay_samples = 100000       # cosine: to min_lr_fraction over this many samples; step: period
//! min_lr_fraction = 0.1        # cosine floor; step: factor applied every decay_samples
//!
//! [data]
//! selection = "full"           # full | random-subset | pruned
//! fraction = 1.0               # random-subset and pruned: the share of the training set kept
//! keep = "easy"                # pruned: keep the examples nearest (easy) or farthest (hard)
//!                              # from their class centroid
//!
//! [evaluation]
//! every_samples = 2048         # optional: the workload's default
//! sample_cap = 400000          # optional: the workload's default
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{ModelError, Result};

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    Adamw,
    Sgd,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F16,
    Bf16,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    #[default]
    Constant,
    Cosine,
    Step,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default)]
    pub kind: ScheduleKind,
    #[serde(default)]
    pub warmup_samples: u64,
    #[serde(default)]
    pub decay_samples: u64,
    #[serde(default)]
    pub min_lr_fraction: f64,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    #[default]
    Full,
    RandomSubset,
    Pruned,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    #[default]
    Easy,
    Hard,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSelection {
    #[serde(default)]
    pub selection: Selection,
    #[serde(default = "one")]
    pub fraction: f64,
    #[serde(default)]
    pub keep: Keep,
}

impl Default for DataSelection {
    fn default() -> Self {
        Self { selection: Selection::Full, fraction: 1.0, keep: Keep::Easy }
    }
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    pub every_samples: Option<u64>,
    pub sample_cap: Option<u64>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub optimizer: Optimizer,
    pub learning_rate: f64,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    #[serde(default)]
    pub momentum: f64,
    pub batch_size: usize,
    #[serde(default = "default_precision")]
    pub precision: Precision,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub data: DataSelection,
    #[serde(default)]
    pub evaluation: Evaluation,
}

fn default_weight_decay() -> f64 {
    0.01
}
fn default_precision() -> Precision {
    Precision::F32
}

/// A recipe with where it came from and the hash of its exact text.
#[derive(Clone, Debug)]
pub struct LoadedRecipe {
    pub recipe: Recipe,
    pub sha256: String,
    /// `None` for a recipe shipped inside effbench.
    pub path: Option<std::path::PathBuf>,
}

impl Recipe {
    /// Parse TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<LoadedRecipe> {
        let recipe: Recipe = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ModelError::BadRecipe { path: origin.to_path_buf(), line, column, message: e.message().to_string() }
        })?;
        recipe.validate()?;
        let sha256 = format!("{:x}", Sha256::digest(text.as_bytes()));
        Ok(LoadedRecipe { recipe, sha256, path: None })
    }

    pub fn load(path: &Path) -> Result<LoadedRecipe> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let mut r = Recipe::parse(&text, path)?;
        r.path = Some(path.to_path_buf());
        Ok(r)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::InvalidRecipe { name: self.name.clone(), message: m });
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(format!("learning_rate must be a positive number, got {}", self.learning_rate));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(format!("momentum must be in [0, 1), got {}", self.momentum));
        }
        let f = self.data.fraction;
        if !(f > 0.0 && f <= 1.0) {
            return bad(format!("data.fraction must be in (0, 1], got {f}"));
        }
        if self.data.selection == Selection::Full && f != 1.0 {
            return bad("data.fraction < 1 needs selection = \"random-subset\" or \"pruned\"".into());
        }
        if self.schedule.kind != ScheduleKind::Constant && self.schedule.decay_samples == 0 {
            return bad("schedule.decay_samples must be set for a cosine or step schedule".into());
        }
        if !(0.0..=1.0).contains(&self.schedule.min_lr_fraction) {
            return bad("schedule.min_lr_fraction must be in [0, 1]".into());
        }
        if self.evaluation.every_samples == Some(0) {
            return bad("evaluation.every_samples must be at least 1".into());
        }
        Ok(())
    }

    /// The learning rate after `samples` training samples.
    pub fn lr_at(&self, samples: u64) -> f64 {
        let s = &self.schedule;
        let base = self.learning_rate;
        if samples < s.warmup_samples {
            return base * (samples + 1) as f64 / s.warmup_samples as f64;
        }
        let t = samples - s.warmup_samples;
        match s.kind {
            ScheduleKind::Constant => base,
            ScheduleKind::Cosine => {
                let p = (t as f64 / s.decay_samples as f64).min(1.0);
                let floor = s.min_lr_fraction;
                base * (floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
            }
            ScheduleKind::Step => base * s.min_lr_fraction.powi((t / s.decay_samples) as i32),
        }
    }
}

/// 1-based line and column of a byte offset in `text` (for TOML error messages).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |i| before.len() - i - 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name = \"t\"\noptimizer = \"adamw\"\nlearning_rate = 1e-3\nbatch_size = 64\n";

    #[test]
    fn parses_defaults_and_hashes_text() {
        let r = Recipe::parse(GOOD, Path::new("t.toml")).unwrap();
        assert_eq!(r.recipe.precision, Precision::F32);
        assert_eq!(r.recipe.data.selection, Selection::Full);
        assert_eq!(r.recipe.weight_decay, 0.01);
        assert_eq!(r.sha256.len(), 64);
    }

    #[test]
    fn malformed_toml_names_file_and_line() {
        let text = format!("{GOOD}[data]\nselection = full\n");
        let e = Recipe::parse(&text, Path::new("dir/bad.toml")).unwrap_err().to_string();
        assert!(e.starts_with("dir/bad.toml:6:"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = Recipe::parse(&format!("{GOOD}learnig_rate = 2\n"), Path::new("r.toml")).unwrap_err().to_string();
        assert!(e.contains("unknown field") && e.contains("r.toml:5"), "{e}");
        let e = Recipe::parse(&GOOD.replace("1e-3", "-1.0"), Path::new("r.toml")).unwrap_err().to_string();
        assert!(e.contains("learning_rate"), "{e}");
        let e = Recipe::parse(&format!("{GOOD}[data]\nfraction = 0.5\n"), Path::new("r.toml")).unwrap_err().to_string();
        assert!(e.contains("random-subset"), "{e}");
    }

    #[test]
    fn schedules() {
        let mut r = Recipe::parse(GOOD, Path::new("t")).unwrap().recipe;
        assert_eq!(r.lr_at(12345), 1e-3);
        r.schedule =
            Schedule { kind: ScheduleKind::Cosine, warmup_samples: 100, decay_samples: 1000, min_lr_fraction: 0.1 };
        assert!((r.lr_at(0) - 1e-5).abs() < 1e-12);
        assert!((r.lr_at(100) - 1e-3).abs() < 1e-12);
        assert!((r.lr_at(1100) - 1e-4).abs() < 1e-12);
        assert!((r.lr_at(600) - 0.55e-3).abs() < 1e-9);
        r.schedule =
            Schedule { kind: ScheduleKind::Step, warmup_samples: 0, decay_samples: 1000, min_lr_fraction: 0.5 };
        assert!((r.lr_at(2500) - 0.25e-3).abs() < 1e-12);
    }
}
