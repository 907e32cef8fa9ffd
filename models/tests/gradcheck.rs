//! Finite-difference gradient check, in f64 on tiny shapes, of every model the training
//! workloads use, through the same layer code and loss functions the workloads train with.
//! This is the test that catches ops without a backward (candle's `softmax_last_dim`,
//! `layer_norm`) and wrong backward passes (conv1d with a non-contiguous kernel): see
//! ../shared/workloads.md, "candle 0.11.1 pitfalls".

use candle_core::{DType, Device, Tensor, Var};
use effbench_models::charlm::{CharLm, Config};
use effbench_models::cnn::Cnn;
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
