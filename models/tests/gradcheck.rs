//! Finite-difference gradient check, in f64 on tiny shapes, of every model the training
//! workloads use, through the same layer code and loss functions the workloads train with.
//! This is the test that catches ops without a backward (candle's `softmax_last_dim`,
//! `layer_norm`) and wrong backward passes (conv1d with a non-contiguous kernel): see
//! ../shared/workloads.md, "candle 0.11.1 pitfalls".

use candle_core::{DType, Device, Tensor, Var};
use effbench_models::charlm::{CharLm, Config};
use effbench_models::cnn::Cnn;
use effbench_models::fused;
use effbench_models::layers::Init;
use effbench_models::mlp::Mlp;
use effbench_models::rng::{self, Stream};
use effbench_models::task::Net;
use rand::Rng;

/// Compare autograd's gradient of `loss` with central differences at a few entries of every
/// parameter. Returns the worst relative error seen.
fn check(net: &dyn Net, loss: &dyn Fn(&dyn Net) -> Tensor) -> f64 {
    let l = loss(net);
    let grads = l.backward().unwrap();
    let mut r = rng::rng(99, Stream::Data);
    let mut worst: f64 = 0.0;
    for (name, var) in &net.params().vars {
        let g = grads.get(var).unwrap_or_else(|| panic!("no gradient reached {name}"));
        let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = var.flatten_all().unwrap().to_vec1().unwrap();
        for _ in 0..6.min(base.len()) {
            let i = r.gen_range(0..base.len());
            let h = 1e-6;
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), var.device()).unwrap()).unwrap();
                loss(net).to_scalar::<f64>().unwrap()
            };
            let numeric = (eval(h) - eval(-h)) / (2.0 * h);
            set(var, &base);
            let err = (numeric - g[i]).abs() / (numeric.abs().max(g[i].abs()).max(1e-4));
            assert!(err < 1e-4, "{name}[{i}]: autograd {} vs finite difference {numeric} (rel err {err:.2e})", g[i]);
            worst = worst.max(err);
        }
    }
    worst
}

fn set(var: &Var, v: &[f64]) {
    var.set(&Tensor::from_vec(v.to_vec(), var.shape(), var.device()).unwrap()).unwrap();
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut r = rng::rng(seed, Stream::Data);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng::normal(&mut r) as f64).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn init(r: &mut rng::SeededRng) -> Init<'_> {
    static CPU: Device = Device::Cpu;
    Init::new(r, &CPU, DType::F64)
}

#[test]
fn mlp_with_cross_entropy() {
    let mut r = rng::rng(1, Stream::Init);
    let net = Mlp::new(&[5, 7, 3], init(&mut r)).unwrap();
    let x = randn(&[4, 5], 2);
    let y = Tensor::new(&[0u32, 2, 1, 2], &Device::Cpu).unwrap();
    check(&net, &|n| candle_nn::loss::cross_entropy(&n.forward(&x).unwrap(), &y).unwrap());
}

#[test]
fn autoencoder_shape_with_mse() {
    let mut r = rng::rng(3, Stream::Init);
    let net = Mlp::new(&[6, 4, 2, 4, 6], init(&mut r)).unwrap();
    let x = randn(&[3, 6], 4);
    check(&net, &|n| candle_nn::loss::mse(&n.forward(&x).unwrap(), &x).unwrap());
}

#[test]
fn cnn_conv2d_maxpool_with_cross_entropy() {
    let mut r = rng::rng(5, Stream::Init);
    let net = Cnn::new(8, 3, init(&mut r)).unwrap();
    let x = randn(&[2, 64], 6);
    let y = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
    check(&net, &|n| candle_nn::loss::cross_entropy(&n.forward(&x).unwrap(), &y).unwrap());
}

#[test]
fn transformer_attention_layernorm_embedding() {
    let mut r = rng::rng(7, Stream::Init);
    let cfg = Config { vocab: 6, context: 5, d_model: 8, heads: 2, blocks: 2 };
    let net = CharLm::new(cfg, init(&mut r)).unwrap();
    let x = Tensor::new(&[[0u32, 3, 5, 1, 2], [4, 4, 0, 2, 5]], &Device::Cpu).unwrap();
    let y = Tensor::new(&[3u32, 5, 1, 2, 0, 4, 0, 2, 5, 1], &Device::Cpu).unwrap();
    check(&net, &|n| {
        let out = n.forward(&x).unwrap();
        candle_nn::loss::cross_entropy(&out.reshape((10, 6)).unwrap(), &y).unwrap()
    });
}

/// The check itself must be able to fail: an op without a backward (candle's fused
/// `softmax_last_dim`) gives no gradient, which `check`'s assertion catches.
#[test]
fn the_check_catches_an_op_without_backward() {
    struct Broken(effbench_models::layers::Params, Var);
    impl Net for Broken {
        fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
            candle_nn::ops::softmax_last_dim(&x.broadcast_mul(self.1.as_tensor())?)
        }
        fn params(&self) -> &effbench_models::layers::Params {
            &self.0
        }
        fn forward_flops_per_sample(&self) -> u64 {
            0
        }
        fn train_flops_per_sample(&self) -> u64 {
            0
        }
    }
    let w = Var::from_tensor(&randn(&[4], 8)).unwrap();
    let net = Broken(effbench_models::layers::Params { vars: vec![("w".into(), w.clone())] }, w);
    let x = randn(&[3, 4], 9);
    let target = randn(&[3, 4], 10);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check(&net, &|n| candle_nn::loss::mse(&n.forward(&x).unwrap(), &target).unwrap())
    }));
    assert!(caught.is_err(), "a missing backward must fail the gradient check");
}

/// Regression test for candle 0.11.1's `max_pool2d` backward (gradient scaled by 1/4): the
/// check must reject it, and accept our `max_pool2x2`.
#[test]
fn candle_max_pool2d_backward_is_wrong_and_ours_is_right() {
    struct Pool(effbench_models::layers::Params, Var, bool);
    impl Net for Pool {
        fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
            let y = x.broadcast_mul(self.1.as_tensor())?.reshape((1, 1, 4, 4))?;
            let p = if self.2 { effbench_models::layers::max_pool2x2(&y)? } else { y.max_pool2d(2)? };
            p.flatten_all()
        }
        fn params(&self) -> &effbench_models::layers::Params {
            &self.0
        }
        fn forward_flops_per_sample(&self) -> u64 {
            0
        }
        fn train_flops_per_sample(&self) -> u64 {
            0
        }
    }
    let target = randn(&[4], 12);
    let x = randn(&[16], 11);
    for ours in [true, false] {
        let w = Var::from_tensor(&randn(&[16], 13)).unwrap();
        let net = Pool(effbench_models::layers::Params { vars: vec![("w".into(), w.clone())] }, w, ours);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check(&net, &|n| candle_nn::loss::mse(&n.forward(&x).unwrap(), &target).unwrap())
        }));
        assert_eq!(r.is_ok(), ours, "ours = {ours}");
    }
}

/// The fused CPU ops (`fused::linear` with and without ReLU, `fused::cross_entropy`) on
/// their own, in f64 on the CPU (the fused path): a Linear whose input is tracked (so its
/// input gradient is computed too), then one whose input is the data.
#[test]
fn fused_linear_relu_and_softmax_cross_entropy() {
    struct Fused(effbench_models::layers::Params, [Var; 4]);
    impl Net for Fused {
        fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
            let [w1, b1, w2, b2] = &self.1;
            let h = fused::linear(x, w1.as_tensor(), b1.as_tensor(), true)?;
            fused::linear(&h, w2.as_tensor(), b2.as_tensor(), false)
        }
        fn params(&self) -> &effbench_models::layers::Params {
            &self.0
        }
        fn forward_flops_per_sample(&self) -> u64 {
            0
        }
        fn train_flops_per_sample(&self) -> u64 {
            0
        }
    }
    let vars = [randn(&[5, 6], 21), randn(&[6], 22), randn(&[6, 3], 23), randn(&[3], 24)]
        .map(|t| Var::from_tensor(&t).unwrap());
    let names = ["w1", "b1", "w2", "b2"];
    let params =
        effbench_models::layers::Params { vars: names.iter().map(|n| n.to_string()).zip(vars.clone()).collect() };
    let net = Fused(params, vars);
    let x = randn(&[4, 5], 25);
    let y = Tensor::new(&[0u32, 2, 1, 2], &Device::Cpu).unwrap();
    check(&net, &|n| fused::cross_entropy(&n.forward(&x).unwrap(), &y).unwrap());
    // The fused ops compute what candle's unfused ones do.
    let ours = fused::cross_entropy(&net.forward(&x).unwrap(), &y).unwrap().to_scalar::<f64>().unwrap();
    let [w1, b1, w2, b2] = &net.1;
    let h = x.matmul(w1.as_tensor()).unwrap().broadcast_add(b1.as_tensor()).unwrap().relu().unwrap();
    let z = h.matmul(w2.as_tensor()).unwrap().broadcast_add(b2.as_tensor()).unwrap();
    let theirs = candle_nn::loss::cross_entropy(&z, &y).unwrap().to_scalar::<f64>().unwrap();
    assert!((ours - theirs).abs() < 1e-12, "fused {ours} vs candle {theirs}");
}

/// The check catches a fused op with a wrong backward: the linear layer's backward without
/// the ReLU mask, and the cross-entropy's without its 1/n. The same net and loss without a
/// fault pass.
#[test]
fn the_check_catches_a_wrong_fused_backward() {
    let mut r = rng::rng(1, Stream::Init);
    let net = Mlp::new(&[5, 7, 3], init(&mut r)).unwrap();
    let x = randn(&[4, 5], 2);
    let y = Tensor::new(&[0u32, 2, 1, 2], &Device::Cpu).unwrap();
    check(&net, &|n| fused::cross_entropy(&n.forward(&x).unwrap(), &y).unwrap());
    for fault in [fused::Fault::ReluMaskSkipped, fused::Fault::XentScaleSkipped] {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check(&net, &|n| {
                let h = net_with_fault(n, &x, fault);
                fused::with_fault(fault, || fused::cross_entropy(&h, &y)).unwrap()
            })
        }));
        assert!(caught.is_err(), "{fault:?} must fail the gradient check");
    }
}

fn net_with_fault(net: &dyn Net, x: &Tensor, fault: fused::Fault) -> Tensor {
    fused::with_fault(fault, || net.forward(x)).unwrap()
}
