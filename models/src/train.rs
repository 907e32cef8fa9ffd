//! The one training loop every training workload uses.
//!
//! Protocol (../shared/workloads.md): weights from a seeded RNG (done by the caller when it
//! builds the net); batches from a seeded shuffle of the selected training samples; evaluation
//! on the fixed held-out set every `every_samples` training samples (a count of samples, not
//! of time, so samples-to-target does not depend on the device); stop at the first evaluation
//! that meets the target, or at the sample cap (then the target was not reached).

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::recipe::{Keep, Optimizer as OptKind, Precision, Recipe, Selection};
use crate::rng::{self, Stream};
use crate::task::{Net, Task};
use crate::{ModelError, Result};

/// What the loop needs to know of the workload.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub quality_target: f64,
    pub higher_is_better: bool,
    pub every_samples: u64,
    pub sample_cap: u64,
}

impl Target {
    pub fn met(&self, quality: f64) -> bool {
        if self.higher_is_better {
            quality >= self.quality_target
        } else {
            quality <= self.quality_target
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    pub samples: u64,
    pub quality: f64,
}

#[derive(Clone, Debug)]
pub struct TrainOutcome {
    pub reached: bool,
    /// The loss became NaN or infinite; training stopped.
    pub diverged: bool,
    pub samples_processed: u64,
    pub bytes_processed: u64,
    pub samples_to_target: Option<u64>,
    pub bytes_to_target: Option<u64>,
    /// Distinct training samples drawn at least once.
    pub unique_samples: u64,
    /// Training samples the selection kept (the pool the shuffle draws from).
    pub selected_samples: u64,
    /// Quality at the last evaluation.
    pub quality: f64,
    pub evaluations: Vec<Evaluation>,
    pub steps: u64,
}

/// SGD with (heavy-ball) momentum, from primitives; candle_nn's SGD has no momentum.
struct MomentumSgd {
    vars: Vec<Var>,
    velocity: Vec<Tensor>,
    lr: f64,
    momentum: f64,
}

impl MomentumSgd {
    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> candle_core::Result<()> {
        for (var, v) in self.vars.iter().zip(self.velocity.iter_mut()) {
            if let Some(g) = grads.get(var) {
                *v = ((&*v * self.momentum)? + g)?;
                var.set(&var.sub(&(&*v * self.lr)?)?)?;
            }
        }
        Ok(())
    }
}

/// The recipe's optimizer over a net's parameters.
pub struct Optim(OptimKind);

enum OptimKind {
    Fused(crate::adamw::FusedAdamW),
    AdamW(AdamW),
    Sgd(MomentumSgd),
}

impl Optim {
    pub fn new(recipe: &Recipe, vars: Vec<Var>) -> Result<Optim> {
        Ok(Optim(match recipe.optimizer {
            OptKind::Adamw => {
                let params =
                    ParamsAdamW { lr: recipe.learning_rate, weight_decay: recipe.weight_decay, ..Default::default() };
                match crate::adamw::FusedAdamW::new(vars.clone(), params.clone()) {
                    Some(f) => OptimKind::Fused(f),
                    None => OptimKind::AdamW(AdamW::new(vars, params)?),
                }
            }
            OptKind::Sgd => {
                let velocity = vars.iter().map(|v| v.zeros_like()).collect::<candle_core::Result<_>>()?;
                OptimKind::Sgd(MomentumSgd { vars, velocity, lr: recipe.learning_rate, momentum: recipe.momentum })
            }
        }))
    }

    fn step(&mut self, loss: &Tensor, lr: f64) -> Result<()> {
        match &mut self.0 {
            OptimKind::Fused(o) => {
                o.params.lr = lr;
                o.step(&loss.backward()?)?;
            }
            OptimKind::AdamW(o) => {
                o.set_learning_rate(lr);
                o.backward_step(loss)?;
            }
            OptimKind::Sgd(o) => {
                o.lr = lr;
                o.step(&loss.backward()?)?;
            }
        }
        Ok(())
    }
}

/// The training samples the recipe's data selection keeps, in index order.
pub fn select(task: &dyn Task, recipe: &Recipe, seed: u64) -> Result<Vec<usize>> {
    let n = task.train_len();
    if n == 0 {
        // The readers refuse empty sets; this keeps a task from elsewhere from panicking below.
        return Err(ModelError::Unsupported("the training set is empty: nothing to train on".into()));
    }
    let keep = ((recipe.data.fraction * n as f64).ceil() as usize).clamp(1, n);
    let mut pool = match recipe.data.selection {
        Selection::Full => (0..n).collect(),
        Selection::RandomSubset => {
            let mut p = rng::permutation(&mut rng::rng(seed, Stream::Selection), n);
            p.truncate(keep);
            p
        }
        Selection::Pruned => {
            let set = task.labelled().ok_or_else(|| {
                ModelError::Unsupported(format!(
                    "recipe {:?}: selection = \"pruned\" needs a labelled classification data set",
                    recipe.name
                ))
            })?;
            prune_by_centroid(set, recipe.data.fraction, recipe.data.keep)
        }
    };
    pool.sort_unstable();
    Ok(pool)
}

/// Class-balanced pruning by distance to the class centroid in input space (cheap: one pass
/// over the data). `Easy` keeps the nearest examples, which is the better choice when data is
/// scarce (Sorscher et al., 2022, "Beyond neural scaling laws"); `Hard` keeps the farthest.
fn prune_by_centroid(set: &crate::data::ClassSet, fraction: f64, keep: Keep) -> Vec<usize> {
    let d = set.dim;
    let mut sums = vec![vec![0f64; d]; set.classes];
    let mut counts = vec![0usize; set.classes];
    for i in 0..set.len() {
        let c = set.y[i] as usize;
        counts[c] += 1;
        for (s, &v) in sums[c].iter_mut().zip(set.row(i)) {
            *s += v as f64;
        }
    }
    let mut by_class: Vec<Vec<(f64, usize)>> = vec![Vec::new(); set.classes];
    for i in 0..set.len() {
        let c = set.y[i] as usize;
        let dist: f64 = set.row(i).iter().zip(&sums[c]).map(|(&v, &s)| (v as f64 - s / counts[c] as f64).powi(2)).sum();
        by_class[c].push((dist, i));
    }
    let mut out = Vec::new();
    for mut members in by_class {
        members.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        if keep == Keep::Hard {
            members.reverse();
        }
        let k = ((fraction * members.len() as f64).ceil() as usize).min(members.len());
        out.extend(members[..k].iter().map(|&(_, i)| i));
    }
    out
}

/// One training step on the samples `idx`: forward, loss, backward, optimizer update.
/// Returns the loss (before the update). The benches time exactly this function.
pub fn step(task: &dyn Task, net: &dyn Net, optim: &mut Optim, idx: &[usize], lr: f64, dev: &Device) -> Result<Tensor> {
    let batch = task.batch(idx, dev)?;
    let loss = task.loss(&net.forward(&batch.x)?, &batch)?;
    optim.step(&loss, lr)?;
    Ok(loss)
}

/// Train `net` on `task` with `recipe` until `target` is met or the sample cap is reached.
/// `on_eval` sees every evaluation as it happens (for progress reporting).
pub fn train(
    task: &dyn Task,
    net: &dyn Net,
    recipe: &Recipe,
    target: Target,
    seed: u64,
    dev: &Device,
    on_eval: &mut dyn FnMut(&Evaluation),
) -> Result<TrainOutcome> {
    if recipe.precision != Precision::F32 {
        return Err(ModelError::Unsupported(format!(
            "recipe {:?}: precision {:?} is not supported by the candle reference workloads yet (f32 only)",
            recipe.name, recipe.precision
        )));
    }
    let pool = select(task, recipe, seed)?;
    let mut optim = Optim::new(recipe, net.params().all())?;
    let mut shuffle = rng::rng(seed, Stream::Shuffle);
    let mut seen = vec![false; task.train_len()];
    let bytes_per = task.bytes_per_sample();
    let mut out = TrainOutcome {
        reached: false,
        diverged: false,
        samples_processed: 0,
        bytes_processed: 0,
        samples_to_target: None,
        bytes_to_target: None,
        unique_samples: 0,
        selected_samples: pool.len() as u64,
        quality: f64::NAN,
        evaluations: Vec::new(),
        steps: 0,
    };
    let mut next_eval = target.every_samples;
    'epochs: loop {
        let order = rng::permutation(&mut shuffle, pool.len());
        let mut idx = Vec::with_capacity(recipe.batch_size);
        for chunk in order.chunks(recipe.batch_size) {
            idx.clear();
            idx.extend(chunk.iter().map(|&k| pool[k]));
            let loss = step(task, net, &mut optim, &idx, recipe.lr_at(out.samples_processed), dev)?;
            out.steps += 1;
            out.samples_processed += idx.len() as u64;
            for &i in &idx {
                out.unique_samples += u64::from(!std::mem::replace(&mut seen[i], true));
            }
            let at_cap = out.samples_processed >= target.sample_cap;
            if out.samples_processed >= next_eval || at_cap {
                next_eval += target.every_samples;
                let l = loss.to_scalar::<f32>()?;
                if !l.is_finite() {
                    out.diverged = true;
                    break 'epochs;
                }
                let quality = task.evaluate(net, dev)?;
                let e = Evaluation { samples: out.samples_processed, quality };
                on_eval(&e);
                out.evaluations.push(e);
                out.quality = quality;
                if target.met(quality) {
                    out.reached = true;
                    out.samples_to_target = Some(out.samples_processed);
                    out.bytes_to_target = Some(out.samples_processed * bytes_per);
                    break 'epochs;
                }
            }
            if at_cap {
                break 'epochs;
            }
        }
    }
    out.bytes_processed = out.samples_processed * bytes_per;
    Ok(out)
}
