//! The char LM's fused CPU ops (`fused::norm::layer_norm`, `fused::attn::causal_attention`)
//! against finite differences, in f64 on tiny shapes, and against candle's unfused ops (what
//! the model ran before, and what it runs off the CPU). The whole model through these ops is
//! checked in `gradcheck.rs` (`transformer_attention_layernorm_embedding`); here each op on
//! its own, with a gradient into every input, and the faults that show the check can fail.

use candle_core::{DType, Device, Tensor, Var, D};
use effbench_models::fused::{self, Fault};
use effbench_models::rng::{self, Stream};
use rand::Rng;

/// Compare autograd's gradient of `loss` with central differences at a few entries of every
/// variable; panics on a relative error over 1e-4 (or a variable the gradient misses).
fn check(vars: &[(&str, &Var)], loss: &dyn Fn() -> Tensor) {
    let grads = loss().backward().unwrap();
    let mut r = rng::rng(99, Stream::Data);
    for (name, var) in vars {
        let g: Vec<f64> = grads
            .get(var)
            .unwrap_or_else(|| panic!("no gradient reached {name}"))
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f64> = var.flatten_all().unwrap().to_vec1().unwrap();
        for _ in 0..8.min(base.len()) {
            let i = r.gen_range(0..base.len());
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), var.device()).unwrap()).unwrap();
                loss().to_scalar::<f64>().unwrap()
            };
            let h = 1e-6;
            let numeric = (eval(h) - eval(-h)) / (2.0 * h);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), var.device()).unwrap()).unwrap();
            let err = (numeric - g[i]).abs() / numeric.abs().max(g[i].abs()).max(1e-4);
            assert!(err < 1e-4, "{name}[{i}]: autograd {} vs finite difference {numeric} (rel err {err:.2e})", g[i]);
        }
    }
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut r = rng::rng(seed, Stream::Data);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng::normal(&mut r) as f64).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn var(shape: &[usize], seed: u64) -> Var {
    Var::from_tensor(&randn(shape, seed)).unwrap()
}

/// A loss that weighs every output differently, so that no gradient cancels by symmetry.
fn weighted_sum(y: &Tensor, seed: u64) -> Tensor {
    (y * randn(y.dims(), seed)).unwrap().sum_all().unwrap()
}

/// The additive causal mask the model keeps: 0 on and below the diagonal, -1e9 above.
fn mask(t: usize, dtype: DType) -> Tensor {
    let m: Vec<f64> = (0..t * t).map(|i| if i % t > i / t { -1e9 } else { 0.0 }).collect();
    Tensor::from_vec(m, (t, t), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

/// The attention as the model computed it before `fused::attn` (candle's ops): heads split by
/// reshape + transpose, QKᵀ · scale + mask, candle-nn's softmax, · V, heads merged.
fn unfused_attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Tensor {
    let (b, t, d) = q.dims3().unwrap();
    let dh = d / heads;
    let split = |y: &Tensor| y.reshape((b, t, heads, dh)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
    let (q, k, v) = (split(q), split(k), split(v));
    let s = (q.matmul(&k.t().unwrap()).unwrap() * (1.0 / (dh as f64).sqrt())).unwrap();
    let p = candle_nn::ops::softmax(&s.broadcast_add(&mask(t, q.dtype())).unwrap(), D::Minus1).unwrap();
    p.matmul(&v).unwrap().transpose(1, 2).unwrap().reshape((b, t, d)).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Layer norm of (x ⊙ w), so that the input gradient is checked too (through w).
fn norm_loss(x: &Tensor, w: &Var, g: &Var, s: &Var) -> Tensor {
    weighted_sum(&fused::norm::layer_norm(&x.broadcast_mul(w).unwrap(), g, s, 1e-5).unwrap(), 31)
}

#[test]
fn fused_layer_norm_matches_candle_and_finite_differences() {
    let x = randn(&[2, 3, 6], 1);
    let (w, g, s) = (var(&[6], 2), var(&[6], 3), var(&[6], 4));
    check(&[("w", &w), ("gain", &g), ("shift", &s)], &|| norm_loss(&x, &w, &g, &s));
    for dtype in [DType::F64, DType::F32] {
        let (x, g, s) = (x.to_dtype(dtype).unwrap(), g.to_dtype(dtype).unwrap(), s.to_dtype(dtype).unwrap());
        let ours = fused::norm::layer_norm(&x, &g, &s, 1e-5).unwrap();
        let theirs = candle_nn::ops::layer_norm_slow(&x, &g, &s, 1e-5).unwrap();
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
        assert!(max_abs_diff(&ours, &theirs) < tol, "{dtype:?}: fused and candle's layer norm differ");
    }
}

/// q, k, v as x·W of one input through three weights, so the gradients of q, k and v all
/// reach a variable.
fn attention_loss(x: &Tensor, w: &[Var; 3], heads: usize) -> Tensor {
    let [q, k, v] = [0, 1, 2].map(|i| x.broadcast_matmul(w[i].as_tensor()).unwrap());
    let t = x.dims()[1];
    weighted_sum(&fused::attn::causal_attention(&q, &k, &v, heads, &mask(t, x.dtype())).unwrap(), 32)
}

#[test]
fn fused_attention_matches_candle_and_finite_differences() {
    let (b, t, d, heads) = (3, 5, 8, 2);
    let x = randn(&[b, t, d], 5);
    let w = [6, 7, 8].map(|s| var(&[d, d], s));
    check(&[("wq", &w[0]), ("wk", &w[1]), ("wv", &w[2])], &|| attention_loss(&x, &w, heads));
    for dtype in [DType::F64, DType::F32] {
        let [q, k, v] = [9, 10, 11].map(|s| randn(&[b, t, d], s).to_dtype(dtype).unwrap());
        let ours = fused::attn::causal_attention(&q, &k, &v, heads, &mask(t, dtype)).unwrap();
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
        assert!(
            max_abs_diff(&ours, &unfused_attention(&q, &k, &v, heads)) < tol,
            "{dtype:?}: fused and candle's attention differ"
        );
    }
}

/// Causality: a token's output does not depend on later tokens (the masked entries get
/// exactly zero probability), and the first token's output is its own value.
#[test]
fn fused_attention_is_causal() {
    let (b, t, d, heads) = (2, 6, 8, 4);
    let [q, k, v] = [12, 13, 14].map(|s| randn(&[b, t, d], s));
    let y = fused::attn::causal_attention(&q, &k, &v, heads, &mask(t, DType::F64)).unwrap();
    let later = |x: &Tensor, s| Tensor::cat(&[x.narrow(1, 0, 3).unwrap(), randn(&[b, t - 3, d], s)], 1).unwrap();
    let y2 = fused::attn::causal_attention(&later(&q, 15), &later(&k, 16), &later(&v, 17), heads, &mask(t, DType::F64))
        .unwrap();
    assert_eq!(max_abs_diff(&y.narrow(1, 0, 3).unwrap(), &y2.narrow(1, 0, 3).unwrap()), 0.0);
    assert!(max_abs_diff(&y.narrow(1, 3, 3).unwrap(), &y2.narrow(1, 3, 3).unwrap()) > 1e-3);
    assert_eq!(max_abs_diff(&y.narrow(1, 0, 1).unwrap(), &v.narrow(1, 0, 1).unwrap()), 0.0);
}

/// The check fails with each of the ops' faults: the layer norm's input gradient without its
/// mean term, the attention's backward without the softmax's Jacobian.
#[test]
fn the_check_catches_a_wrong_norm_or_attention_backward() {
    let x = randn(&[2, 3, 6], 1);
    let (w, g, s) = (var(&[6], 2), var(&[6], 3), var(&[6], 4));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check(&[("w", &w)], &|| fused::with_fault(Fault::NormMeanSkipped, || norm_loss(&x, &w, &g, &s)))
    }));
    assert!(caught.is_err(), "NormMeanSkipped must fail the gradient check");

    let x = randn(&[3, 5, 8], 5);
    let wq = [6, 7, 8].map(|s| var(&[8, 8], s));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check(&[("wq", &wq[0]), ("wk", &wq[1]), ("wv", &wq[2])], &|| {
            fused::with_fault(Fault::AttnJacobianSkipped, || attention_loss(&x, &wq, 2))
        })
    }));
    assert!(caught.is_err(), "AttnJacobianSkipped must fail the gradient check");
}

/// Forward-only attention (no operand tracked: inference) keeps no probabilities and uses the
/// vectorised f32 softmax: its values are the training path's to a few ulp (exactly in f64,
/// which has no vectorised softmax), it is still causal, and it records no op. On the char LM,
/// `Net::infer` gives `forward`'s logits to f32 rounding and builds no graph.
#[test]
fn forward_only_attention_and_the_lm_infer_as_the_training_path() {
    let (b, t, d, heads) = (3, 20, 8, 2);
    for (dtype, tol) in [(DType::F64, 0.0), (DType::F32, 1e-6)] {
        let [q, k, v] = [21, 22, 23].map(|s| randn(&[b, t, d], s).to_dtype(dtype).unwrap());
        let tracked = [24, 25, 26].map(|s| Var::from_tensor(&randn(&[b, t, d], s).to_dtype(dtype).unwrap()).unwrap());
        let plain = [0, 1, 2].map(|i| tracked[i].as_tensor().detach());
        let train =
            fused::attn::causal_attention(&tracked[0], &tracked[1], &tracked[2], heads, &mask(t, dtype)).unwrap();
        let infer = fused::attn::causal_attention(&plain[0], &plain[1], &plain[2], heads, &mask(t, dtype)).unwrap();
        assert!(train.track_op() && !infer.track_op());
        let diff = max_abs_diff(&train, &infer);
        assert!(diff <= tol, "{dtype:?}: forward-only attention is {diff:e} from the training path");
        let y = fused::attn::causal_attention(&q, &k, &v, heads, &mask(t, dtype)).unwrap();
        assert_eq!(max_abs_diff(&y.narrow(1, 0, 1).unwrap(), &v.narrow(1, 0, 1).unwrap()), 0.0);
    }

    use effbench_models::charlm::{CharLm, Config};
    use effbench_models::{layers::Init, task::Net};
    let cfg = Config { vocab: 11, context: 16, d_model: 16, heads: 4, blocks: 2 };
    let mut r = rng::rng(27, Stream::Init);
    let net = CharLm::new(cfg, Init::new(&mut r, &Device::Cpu, DType::F32)).unwrap();
    let ids: Vec<u32> = (0..5 * 16).map(|i| (i * 7 % 11) as u32).collect();
    let x = Tensor::from_vec(ids, (5, 16), &Device::Cpu).unwrap();
    let (a, b) = (net.forward(&x).unwrap(), net.infer(&x).unwrap());
    assert_eq!(b.dims(), &[5, 16, 11]);
    let diff = max_abs_diff(&a, &b);
    assert!(diff < 1e-5, "infer is {diff:e} from forward");
    assert!(a.track_op() && !b.track_op(), "infer builds no graph");
}
