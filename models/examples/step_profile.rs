//! Where one training step's time goes: building the batch, forward + loss, + backward, and
//! the full step with the optimizer (each the mean of 300 runs, mimalloc as the allocator).
//! `RAYON_NUM_THREADS=1 cargo run --release -p effbench-models --example step_profile -- fmnist-mlp-train`

use candle_core::Device;
use effbench_models::data::DataConfig;
use effbench_models::train::Optim;
use effbench_models::WorkloadSpec;
use std::time::Instant;
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() {
    let id = std::env::args().nth(1).unwrap_or("fmnist-mlp-train".into());
    let spec = WorkloadSpec::get(&id).unwrap();
    let recipe = spec.recipe("baseline").unwrap().recipe;
    let task = spec.build_task(&DataConfig::shipped_only()).unwrap();
    let dev = Device::Cpu;
    let net = spec.build_net(0, &dev).unwrap();
    let mut optim = Optim::new(&recipe, net.params().all()).unwrap();
    let idx: Vec<usize> = (0..recipe.batch_size).map(|i| i * 37).collect();
    let n = 300;
    let t = Instant::now();
    for _ in 0..n {
        let _ = task.batch(&idx, &dev).unwrap();
    }
    let tb = t.elapsed().as_secs_f64() / n as f64;
    let b = task.batch(&idx, &dev).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let _ = task.loss(&net.forward(&b.x).unwrap(), &b).unwrap();
    }
    let tf = t.elapsed().as_secs_f64() / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        let l = task.loss(&net.forward(&b.x).unwrap(), &b).unwrap();
        let _ = l.backward().unwrap();
    }
    let tfb = t.elapsed().as_secs_f64() / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        let _ = effbench_models::train::step(task.as_ref(), net.as_ref(), &mut optim, &idx, 1e-3, &dev).unwrap();
    }
    let ts = t.elapsed().as_secs_f64() / n as f64;
    println!(
        "{id}: batch {:.3} ms, fwd+loss {:.3} ms, +bwd {:.3} ms, full step {:.3} ms",
        tb * 1e3,
        tf * 1e3,
        tfb * 1e3,
        ts * 1e3
    );
}
