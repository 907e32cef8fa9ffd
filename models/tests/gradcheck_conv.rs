//! The fused convolution and max pool (`fused::conv2d`, `fused::max_pool2x2`, used by the
//! CNN on the CPU): finite-difference gradient checks in f64 on tiny shapes, agreement with
//! candle's own ops (forward and every gradient), and faults the check must catch. The
//! pattern is that of `tests/gradcheck.rs`; central differences as in any numerical-analysis
//! text (error O(h²)), h = 1e-6 in f64.

use candle_core::{DType, Device, Tensor, Var};
use effbench_models::fused::{self, Fault};
use effbench_models::rng::{self, Stream};
use rand::Rng;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut r = rng::rng(seed, Stream::Data);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng::normal(&mut r) as f64).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn var(shape: &[usize], seed: u64) -> Var {
    Var::from_tensor(&randn(shape, seed)).unwrap()
}

/// Autograd's gradient of `loss` against central differences at 8 entries of every var.
/// Panics (with the entry) on a relative error above 1e-4; returns the worst one.
fn check(vars: &[(&str, &Var)], loss: &dyn Fn() -> Tensor) -> f64 {
    let grads = loss().backward().unwrap();
    let mut r = rng::rng(99, Stream::Data);
    let mut worst: f64 = 0.0;
    for (name, v) in vars {
        let g: Vec<f64> = grads
            .get(v)
            .unwrap_or_else(|| panic!("no gradient reached {name}"))
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f64> = v.flatten_all().unwrap().to_vec1().unwrap();
        let set = |vals: Vec<f64>| v.set(&Tensor::from_vec(vals, v.shape(), v.device()).unwrap()).unwrap();
        for _ in 0..8.min(base.len()) {
            let i = r.gen_range(0..base.len());
            let h = 1e-6;
            let at = |d: f64| {
                let mut p = base.clone();
                p[i] += d;
                set(p);
                loss().to_scalar::<f64>().unwrap()
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            set(base.clone());
            let err = (numeric - g[i]).abs() / numeric.abs().max(g[i].abs()).max(1e-4);
            assert!(err < 1e-4, "{name}[{i}]: autograd {} vs finite difference {numeric} (rel err {err:.2e})", g[i]);
            worst = worst.max(err);
        }
    }
    worst
}

/// The CNN's two stages at a small size: conv (on the data) + ReLU, pool, conv (tracked
/// input) + ReLU, pool; then a fixed linear map to 3 logits and the cross-entropy. 5 images,
/// so the backward's groups of 4 images end with a partial one.
struct Net {
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
    x: Tensor,
    proj: Tensor,
    y: Tensor,
}

impl Net {
    fn new() -> Self {
        Net {
            w1: var(&[3, 2, 3, 3], 1),
            b1: var(&[3], 2),
            w2: var(&[4, 3, 3, 3], 3),
            b2: var(&[4], 4),
            x: randn(&[5, 2, 8, 8], 5),
            proj: randn(&[4 * 2 * 2, 3], 6),
            y: Tensor::new(&[0u32, 2, 1, 1, 0], &Device::Cpu).unwrap(),
        }
    }

    fn vars(&self) -> [(&'static str, &Var); 4] {
        [("w1", &self.w1), ("b1", &self.b1), ("w2", &self.w2), ("b2", &self.b2)]
    }

    fn loss(&self) -> Tensor {
        let h = fused::conv2d(&self.x, &self.w1, &self.b1, 1, true).unwrap();
        let h = fused::max_pool2x2(&h).unwrap();
        let h = fused::conv2d(&h, &self.w2, &self.b2, 1, true).unwrap();
        let h = fused::max_pool2x2(&h).unwrap().flatten_from(1).unwrap();
        fused::cross_entropy(&h.matmul(&self.proj).unwrap(), &self.y).unwrap()
    }
}

#[test]
fn fused_conv_relu_and_pool_pass_the_gradient_check() {
    let net = Net::new();
    let worst = check(&net.vars(), &|| net.loss());
    assert!(worst < 1e-5, "worst relative error {worst:.2e}");
}

/// Without the ReLU, with a 5x5 kernel (padding 2) and odd image sizes, on a tracked input.
#[test]
fn fused_conv_without_relu_5x5_kernel_passes_the_gradient_check() {
    let (x, w, b) = (var(&[3, 2, 5, 7], 11), var(&[3, 2, 5, 5], 12), var(&[3], 13));
    let r = randn(&[3, 3, 5, 7], 14);
    let loss = || (fused::conv2d(&x, &w, &b, 2, false).unwrap() * &r).unwrap().sum_all().unwrap();
    check(&[("x", &x), ("w", &w), ("b", &b)], &loss);
}

/// The candle ops the fused ones replace, on the same values.
fn candle_conv(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Tensor {
    let p = w.dims()[2] / 2;
    let y = x.conv2d(w, p, 1, 1, 1).unwrap().broadcast_add(&b.reshape((1, (), 1, 1)).unwrap()).unwrap();
    if relu {
        y.relu().unwrap()
    } else {
        y
    }
}

fn candle_pool(x: &Tensor) -> Tensor {
    let (n, c, h, w) = x.dims4().unwrap();
    x.reshape((n, c, h / 2, 2, w / 2, 2)).unwrap().max(5).unwrap().max(3).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
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

/// Forward values and the gradients of x, w and b equal candle's to rounding, in f64 and f32.
#[test]
fn fused_conv_and_pool_compute_what_candles_ops_compute() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-4)] {
        let x = Var::from_tensor(&randn(&[6, 3, 10, 12], 21).to_dtype(dtype).unwrap()).unwrap();
        let w = Var::from_tensor(&randn(&[5, 3, 3, 3], 22).to_dtype(dtype).unwrap()).unwrap();
        let b = Var::from_tensor(&randn(&[5], 23).to_dtype(dtype).unwrap()).unwrap();
        let r = randn(&[6, 5, 5, 6], 24).to_dtype(dtype).unwrap();
        let ours = fused::max_pool2x2(&fused::conv2d(&x, &w, &b, 1, true).unwrap()).unwrap();
        let theirs = candle_pool(&candle_conv(&x, &w, &b, true));
        assert!(max_abs_diff(&ours, &theirs) < tol, "{dtype:?} forward");
        let g1 = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [("x", &x), ("w", &w), ("b", &b)] {
            let d = max_abs_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
            assert!(d < tol * 10.0, "{dtype:?} gradient of {name}: max difference {d:e}");
        }
    }
}

/// Ties in a window (all four inputs equal, as after a ReLU of a dead region) get the full
/// gradient each, as candle's `max` reduction gives it.
#[test]
fn pool_ties_get_the_gradient_as_candles_max_gives_it() {
    let x = Var::from_tensor(&Tensor::new(&[[[[1f64, 1.], [1., 1.]]]], &Device::Cpu).unwrap()).unwrap();
    let g = fused::max_pool2x2(&x).unwrap().sum_all().unwrap().backward().unwrap();
    let ours: Vec<f64> = g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let g = candle_pool(&x).sum_all().unwrap().backward().unwrap();
    let theirs: Vec<f64> = g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(ours, vec![1.0; 4]);
    assert_eq!(ours, theirs);
}

/// The data needs no gradient: the fused op computes none for an untracked input, and the
/// weights' gradients are the same as with a tracked one.
#[test]
fn no_input_gradient_for_the_data() {
    let (w, b) = (var(&[3, 2, 3, 3], 31), var(&[3], 32));
    let (data, tracked) = (randn(&[2, 2, 6, 6], 33), var(&[2, 2, 6, 6], 33));
    let ga = fused::conv2d(&data, &w, &b, 1, true).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = fused::conv2d(&tracked, &w, &b, 1, true).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(ga.get(&data).is_none());
    assert!(gb.get(&tracked).is_some());
    assert_eq!(max_abs_diff(ga.get(&w).unwrap(), gb.get(&w).unwrap()), 0.0);
}

/// Shapes the fused op does not take (here padding 0, "valid") go to candle's conv2d.
#[test]
fn other_paddings_use_candles_conv2d() {
    let (x, w, b) = (randn(&[2, 2, 6, 6], 41), randn(&[3, 2, 3, 3], 42), randn(&[3], 43));
    let y = fused::conv2d(&x, &w, &b, 0, false).unwrap();
    assert_eq!(y.dims(), &[2, 3, 4, 4]);
    let want = x.conv2d(&w, 0, 1, 1, 1).unwrap().broadcast_add(&b.reshape((1, (), 1, 1)).unwrap()).unwrap();
    assert_eq!(max_abs_diff(&y, &want), 0.0);
    assert!(fused::max_pool2x2(&randn(&[1, 1, 3, 4], 44)).is_err(), "odd sizes are refused");
}

/// The check can fail: a conv backward without the bias gradient, one without the input
/// gradient (col2im), and a pool that routes the gradient to each window's first input are
/// each caught; the same net and loss without a fault pass (the first test).
#[test]
fn the_check_catches_a_wrong_conv_or_pool_backward() {
    let net = Net::new();
    for fault in [Fault::ConvBiasGradSkipped, Fault::ConvCol2imSkipped, Fault::PoolGradToFirst] {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check(&net.vars(), &|| fused::with_fault(fault, || net.loss()))
        }));
        assert!(caught.is_err(), "{fault:?} must fail the gradient check");
    }
}

/// The forward-only conv + ReLU + pool (`fused::conv2d_relu_pool`, for inference) gives the
/// separate fused ops' values on untracked tensors: exactly in f64 (the same im2col and GEMM),
/// to a few ulp in f32 (on AVX-512 CPUs its direct kernel sums in another order; exactly
/// elsewhere), and candle's to rounding; it builds no graph. 8 output channels, so the direct
/// kernel takes them; half the inputs are shifted negative so that whole windows die in the
/// ReLU (ties at 0).
#[test]
fn forward_only_conv_pool_equals_the_separate_ops() {
    for (dtype, tol, exact) in [(DType::F64, 1e-12, true), (DType::F32, 1e-4, false)] {
        let x = (randn(&[5, 3, 10, 12], 51) - 0.5).unwrap().to_dtype(dtype).unwrap();
        let (w, b) = (randn(&[8, 3, 3, 3], 52).to_dtype(dtype).unwrap(), randn(&[8], 53).to_dtype(dtype).unwrap());
        let one = fused::conv2d_relu_pool(&x, &w, &b, 1).unwrap();
        let separate = fused::max_pool2x2(&fused::conv2d(&x, &w, &b, 1, true).unwrap()).unwrap();
        assert_eq!(one.dims(), &[5, 8, 5, 6]);
        let d = max_abs_diff(&one, &separate);
        assert!(if exact { d == 0.0 } else { d < 1e-5 }, "{dtype:?}: {d:e} from the separate ops");
        assert!(max_abs_diff(&one, &candle_pool(&candle_conv(&x, &w, &b, true))) < tol, "{dtype:?} vs candle");
        assert!(!one.track_op(), "an untracked pass records no op");
    }
}

/// With a tracked operand the function runs the separate ops, so gradients still flow and
/// equal theirs; on a CNN, `Net::infer` gives `forward`'s logits (to f32 rounding).
#[test]
fn forward_only_conv_pool_falls_back_when_tracked_and_the_cnn_infers_as_it_forwards() {
    let (x, w, b) = (randn(&[2, 2, 6, 6], 61), var(&[3, 2, 3, 3], 62), var(&[3], 63));
    let g1 = fused::conv2d_relu_pool(&x, &w, &b, 1).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = fused::max_pool2x2(&fused::conv2d(&x, &w, &b, 1, true).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(max_abs_diff(g1.get(&w).unwrap(), g2.get(&w).unwrap()), 0.0);

    use effbench_models::{cnn::Cnn, layers::Init, task::Net};
    let mut r = rng::rng(64, Stream::Init);
    let net = Cnn::new(8, 3, Init::new(&mut r, &Device::Cpu, DType::F32)).unwrap();
    let x = randn(&[7, 64], 65).to_dtype(DType::F32).unwrap();
    let (a, b) = (net.forward(&x).unwrap(), net.infer(&x).unwrap());
    assert_eq!(a.dims(), &[7, 3]);
    let d = max_abs_diff(&a, &b);
    assert!(d < 1e-5, "infer is {d:e} from forward");
    assert!(!b.track_op(), "infer builds no graph");
}
