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
    /// Parse TOML text; `origin` names the file in every error (parse errors with line and
    /// column).
    pub fn parse(text: &str, origin: &Path) -> Result<LoadedRecipe> {
        let recipe: Recipe = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ModelError::BadRecipe { path: origin.to_path_buf(), line, column, message: e.message().to_string() }
        })?;
        recipe.validate(origin)?;
        let sha256 = format!("{:x}", Sha256::digest(text.as_bytes()));
        Ok(LoadedRecipe { recipe, sha256, path: None })
    }

    pub fn load(path: &Path) -> Result<LoadedRecipe> {
        let text = read_recipe_file(path)?;
        let mut r = Recipe::parse(&text, path)?;
        r.path = Some(path.to_path_buf());
        Ok(r)
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |m: String| {
            Err(ModelError::InvalidRecipe { path: origin.to_path_buf(), name: self.name.clone(), message: m })
        };
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(format!("learning_rate must be a finite number > 0, got {}", self.learning_rate));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(format!("weight_decay must be a finite number >= 0, got {}", self.weight_decay));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1, got 0".into());
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
            return bad(format!("schedule.min_lr_fraction must be in [0, 1], got {}", self.schedule.min_lr_fraction));
        }
        if self.evaluation.sample_cap == Some(0) {
            return bad("evaluation.sample_cap must be at least 1, got 0".into());
        }
        if self.evaluation.every_samples == Some(0) {
            return bad("evaluation.every_samples must be at least 1, got 0".into());
        }
        Ok(())
    }

    /// The evaluation interval and sample cap this recipe gives a workload whose defaults are
    /// `default_every` and `default_cap` must make sense together: an interval above the cap
    /// would never evaluate before the cap.
    pub fn check_evaluation(&self, origin: &Path, default_every: u64, default_cap: u64) -> Result<()> {
        let every = self.evaluation.every_samples.unwrap_or(default_every);
        let cap = self.evaluation.sample_cap.unwrap_or(default_cap);
        if every > cap {
            let whence = |given: bool| if given { "" } else { " (the workload's default)" };
            return Err(ModelError::InvalidRecipe {
                path: origin.to_path_buf(),
                name: self.name.clone(),
                message: format!(
                    "evaluation.every_samples must be in 1..=sample_cap; got every_samples = {every}{} \
                     and sample_cap = {cap}{}",
                    whence(self.evaluation.every_samples.is_some()),
                    whence(self.evaluation.sample_cap.is_some())
                ),
            });
        }
        Ok(())
    }

    /// What the candle reference workloads cannot do yet, refused when the recipe is loaded for
    /// `workload` (so the error names the file) rather than when training starts. `labelled`:
    /// the workload's data has class labels (pruning needs them).
    pub fn check_trainable(&self, origin: &Path, workload: &str, labelled: bool) -> Result<()> {
        let bad = |message: String| {
            Err(ModelError::InvalidRecipe { path: origin.to_path_buf(), name: self.name.clone(), message })
        };
        if self.precision != Precision::F32 {
            return bad(format!(
                "precision {:?} is not supported by the candle reference workloads yet; use precision = \"f32\"",
                self.precision
            ));
        }
        if self.data.selection == Selection::Pruned && !labelled {
            return bad(format!(
                "data.selection = \"pruned\" needs a labelled classification data set, and {workload} has none; \
                 use \"random-subset\" or \"full\""
            ));
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

/// The most a recipe file may hold: a recipe is a few hundred bytes.
pub const MAX_RECIPE_BYTES: u64 = 1 << 20;

/// Reads a recipe file: a regular file of at most [`MAX_RECIPE_BYTES`], through a bounded
/// reader (a recipe path of `/dev/zero` or a FIFO must not hang or fill memory).
fn read_recipe_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let io = |e| ModelError::io(path, e);
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(ModelError::bad_data(path, "is not a regular file; give the path of a recipe .toml file"));
    }
    if meta.len() > MAX_RECIPE_BYTES {
        return Err(ModelError::bad_data(
            path,
            format!("is {} bytes, over effbench's 1 MiB limit for a recipe file; is it a recipe?", meta.len()),
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path).map_err(io)?.take(MAX_RECIPE_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_RECIPE_BYTES {
        return Err(ModelError::bad_data(path, "grew past effbench's 1 MiB limit for a recipe file while being read"));
    }
    String::from_utf8(bytes).map_err(|_| ModelError::bad_data(path, "is not UTF-8 text; a recipe is a TOML file"))
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
    fn recipe_errors_in_a_user_file_name_the_file_not_only_the_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my-method.toml");
        // A lab's file often keeps the name of the recipe it was copied from.
        std::fs::write(&path, GOOD.replace("\"t\"", "\"baseline\"").replace("1e-3", "0.0")).unwrap();
        let e = Recipe::load(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}: recipe \"baseline\": learning_rate must be a finite number > 0, got 0", path.display())
        );
    }

    #[test]
    fn recipe_numbers_out_of_range_are_refused_with_field_and_range() {
        let cases = [
            (GOOD.replace("1e-3", "inf"), "learning_rate must be a finite number > 0, got inf"),
            (GOOD.replace("1e-3", "nan"), "learning_rate must be a finite number > 0, got NaN"),
            (format!("{GOOD}weight_decay = -0.1\n"), "weight_decay must be a finite number >= 0, got -0.1"),
            (format!("{GOOD}weight_decay = nan\n"), "weight_decay must be a finite number >= 0, got NaN"),
            (GOOD.replace("batch_size = 64", "batch_size = 0"), "batch_size must be at least 1, got 0"),
            (format!("{GOOD}[evaluation]\nsample_cap = 0\n"), "evaluation.sample_cap must be at least 1, got 0"),
            (format!("{GOOD}[evaluation]\nevery_samples = 0\n"), "evaluation.every_samples must be at least 1, got 0"),
        ];
        for (text, want) in cases {
            let e = Recipe::parse(&text, Path::new("r.toml")).unwrap_err().to_string();
            assert_eq!(e, format!("r.toml: recipe \"t\": {want}"), "{text}");
        }
    }

    #[test]
    fn every_samples_above_the_sample_cap_is_refused() {
        let text = format!("{GOOD}[evaluation]\nevery_samples = 5000\nsample_cap = 4000\n");
        let r = Recipe::parse(&text, Path::new("r.toml")).unwrap().recipe;
        let e = r.check_evaluation(Path::new("r.toml"), 100, 1000).unwrap_err().to_string();
        assert_eq!(
            e,
            "r.toml: recipe \"t\": evaluation.every_samples must be in 1..=sample_cap; got every_samples = 5000 \
             and sample_cap = 4000"
        );
        let r = Recipe::parse(&format!("{GOOD}[evaluation]\nsample_cap = 50\n"), Path::new("r.toml")).unwrap().recipe;
        let e = r.check_evaluation(Path::new("r.toml"), 100, 1000).unwrap_err().to_string();
        assert!(e.ends_with("every_samples = 100 (the workload's default) and sample_cap = 50"), "{e}");
        assert!(r.check_evaluation(Path::new("r.toml"), 50, 1000).is_ok());
    }

    #[test]
    fn a_recipe_path_that_is_not_a_small_regular_file_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = Recipe::load(dir.path()).unwrap_err().to_string();
        assert_eq!(e, format!("{}: is not a regular file; give the path of a recipe .toml file", dir.path().display()));
        let e = Recipe::load(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.starts_with("/dev/zero: is not a regular file"), "{e}");
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_RECIPE_BYTES as usize + 1]).unwrap();
        let e = Recipe::load(&big).unwrap_err().to_string();
        assert!(e.contains("over effbench's 1 MiB limit for a recipe file"), "{e}");
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
