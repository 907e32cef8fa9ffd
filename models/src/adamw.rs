//! AdamW with the update fused into one pass over each parameter, in place, on the CPU.
//!
//! Why: candle-nn's `AdamW` spends about 14 tensor ops per parameter per step, each allocating
//! a fresh buffer; for the small models here the optimizer cost more than the forward and
//! backward passes together (README.md, "Performance"). The math is candle-nn's AdamW
//! (decoupled weight decay, bias-corrected moments), so switching changes speed, not training;
//! a test checks the two agree. On devices other than the CPU, or dtypes other than f32,
//! `Optim` uses candle-nn's implementation instead.

use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Result, Var};
use candle_nn::ParamsAdamW;

pub struct FusedAdamW {
    vars: Vec<(Var, Mutex<Moments>)>,
    pub params: ParamsAdamW,
    step: i32,
}

#[derive(Default)]
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl FusedAdamW {
    /// `None` when some parameter is not an f32 tensor on the CPU.
    pub fn new(vars: Vec<Var>, params: ParamsAdamW) -> Option<FusedAdamW> {
        if vars.iter().any(|v| v.dtype() != DType::F32 || !matches!(v.device(), Device::Cpu)) {
            return None;
        }
        let vars = vars
            .into_iter()
            .map(|v| {
                let n = v.elem_count();
                (v, Mutex::new(Moments { m: vec![0.0; n], v: vec![0.0; n] }))
            })
            .collect();
        Some(FusedAdamW { vars, params, step: 0 })
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let p = &self.params;
        let (lr, wd, b1, b2, eps) = (p.lr, p.weight_decay, p.beta1, p.beta2, p.eps);
        let (scale_m, scale_v) = (1.0 / (1.0 - b1.powi(self.step)), 1.0 / (1.0 - b2.powi(self.step)));
        for (var, moments) in &self.vars {
            if let Some(g) = grads.get(var) {
                let g = g.contiguous()?;
                let update = Update {
                    moments,
                    lr: lr as f32,
                    decay: (1.0 - lr * wd) as f32,
                    beta1: b1 as f32,
                    beta2: b2 as f32,
                    eps: eps as f32,
                    scale_m: scale_m as f32,
                    scale_v: scale_v as f32,
                };
                var.inplace_op2(&g, &update)?;
            }
        }
        Ok(())
    }
}

struct Update<'a> {
    moments: &'a Mutex<Moments>,
    lr: f32,
    decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    scale_m: f32,
    scale_v: f32,
}

impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let (CpuStorage::F32(w), CpuStorage::F32(g)) = (s1, s2) else {
            candle_core::bail!("fused-adamw: f32 parameters and gradients only");
        };
        let (Some((w0, w1)), Some((g0, g1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("fused-adamw: parameters and gradients must be contiguous");
        };
        let (w, g) = (&mut w[w0..w1], &g[g0..g1]);
        let mut guard = self.moments.lock().map_err(|_| candle_core::Error::Msg("fused-adamw: poisoned".into()))?;
        let Moments { m, v } = &mut *guard;
        if w.len() != g.len() || w.len() != m.len() {
            candle_core::bail!("fused-adamw: {} weights, {} gradients, {} moments", w.len(), g.len(), m.len());
        }
        let (b1, b2, lr, decay, eps) = (self.beta1, self.beta2, self.lr, self.decay, self.eps);
        let (scale_m, scale_v) = (self.scale_m, self.scale_v);
        // Zipped iterators rather than indexing: no bounds checks, so the loop vectorises.
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = flush(b1 * *m + (1.0 - b1) * g);
            *v = flush(b2 * *v + (1.0 - b2) * g * g);
            *w = *w * decay - lr * ((*m * scale_m) / ((*v * scale_v).sqrt() + eps));
        }
        Ok(())
    }
}

/// A moment below the smallest normal f32 (1.2e-38) becomes 0. A weight whose gradient stays
/// 0 (a Fashion-MNIST border pixel's, say) has moments that decay by β each step until they
/// are subnormal, and on Intel cores every operation on a subnormal takes a microcode assist
/// of over a hundred cycles: on this project's Xeon VM the MLP's step took 2.3 ms instead of
/// 0.5 ms, three quarters of it in this loop (perf, 2026-12-02). AMD cores compute subnormals
/// at full speed, so the cost depended on the machine. The step such a moment adds to its
/// weight is below 1e-30 (over eps = 1e-8), far under the weight's f32 rounding, so the
/// weights are what they would be without the flush, and the same on every machine (unlike
/// setting the FPU's flush-to-zero mode, which would change every op's arithmetic).
fn flush(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;
    use candle_nn::Optimizer;

    /// Five steps of the fused optimizer and of candle-nn's AdamW from the same start, on a
    /// small least-squares problem, end at the same weights (to f32 rounding: the two evaluate
    /// the same formula in a different order).
    #[test]
    fn matches_candle_nn_adamw() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.0, -1.0], [0.5, -0.3, 2.0]], &dev).unwrap();
        let y = Tensor::new(&[[1f32], [-2.0]], &dev).unwrap();
        let start = Tensor::new(&[[0.1f32], [-0.2], [0.3]], &dev).unwrap();
        let params = ParamsAdamW { lr: 0.05, weight_decay: 0.1, ..Default::default() };
        let loss = |w: &Var| x.matmul(w.as_tensor()).unwrap().sub(&y).unwrap().sqr().unwrap().mean_all().unwrap();

        let a = Var::from_tensor(&start).unwrap();
        let mut fused = FusedAdamW::new(vec![a.clone()], params.clone()).unwrap();
        let b = Var::from_tensor(&start).unwrap();
        let mut reference = candle_nn::AdamW::new(vec![b.clone()], params).unwrap();
        for _ in 0..5 {
            fused.step(&loss(&a).backward().unwrap()).unwrap();
            reference.backward_step(&loss(&b)).unwrap();
        }
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_ne!(a, start.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-5 * q.abs().max(1.0), "{a:?} vs {b:?}");
        }
    }

    /// A weight whose gradient is 0 from the second step on: its moments decay to exactly 0
    /// instead of through the subnormals, no moment is ever subnormal, and the weights stay
    /// those of candle-nn's AdamW (which computes the subnormals) to f32 rounding.
    #[test]
    fn moments_of_a_weight_without_gradient_flush_to_zero_not_to_subnormals() {
        let start = Tensor::new(&[0.5f32, -0.25], &Device::Cpu).unwrap();
        let params = ParamsAdamW { lr: 0.01, weight_decay: 0.1, beta2: 0.9, ..Default::default() };
        let (a, b) = (Var::from_tensor(&start).unwrap(), Var::from_tensor(&start).unwrap());
        let mut fused = FusedAdamW::new(vec![a.clone()], params.clone()).unwrap();
        let mut reference = candle_nn::AdamW::new(vec![b.clone()], params).unwrap();
        let loss = |w: &Var, step: usize| match step {
            0 => w.as_tensor().sum_all().unwrap(),
            _ => w.as_tensor().narrow(0, 0, 1).unwrap().sqr().unwrap().sum_all().unwrap(),
        };
        let mut subnormal = 0;
        for step in 0..1200 {
            fused.step(&loss(&a, step).backward().unwrap()).unwrap();
            reference.backward_step(&loss(&b, step)).unwrap();
            let m = fused.vars[0].1.lock().unwrap();
            subnormal += m.m.iter().chain(&m.v).filter(|x| x.is_subnormal()).count();
        }
        let m = fused.vars[0].1.lock().unwrap();
        assert_eq!((m.m[1], m.v[1]), (0.0, 0.0), "the idle weight's moments");
        assert_eq!(subnormal, 0);
        let a: Vec<f32> = a.to_vec1().unwrap();
        let b: Vec<f32> = b.to_vec1().unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_update() {
        let v = Var::from_tensor(&Tensor::new(&[1f64, 2.0], &Device::Cpu).unwrap()).unwrap();
        assert!(FusedAdamW::new(vec![v], ParamsAdamW::default()).is_none());
    }
}
