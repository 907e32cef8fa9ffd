//! effbench's declared model FLOPs for every workload, as JSON, for `bench/peers/xla_flops.py`
//! to print beside XLA's cost analysis:
//! `cargo run -q -p effbench-models --example flops | python bench/peers/xla_flops.py --effbench -`

use candle_core::Device;
use effbench_models::{Kind, WORKLOADS};

fn main() -> effbench_models::Result<()> {
    let mut rows = Vec::new();
    for spec in WORKLOADS {
        let net = spec.build_net(0, &Device::Cpu)?;
        let per_sample = match spec.kind {
            Kind::Train => net.train_flops_per_sample(),
            Kind::Infer => net.forward_flops_per_sample(),
        };
        rows.push(serde_json::json!({
            "id": spec.id,
            "kind": spec.kind,
            "unit": spec.unit,
            "flops_per_unit": spec.flops_per_unit(net.as_ref()),
            "flops_per_sample": per_sample,
        }));
    }
    println!("{}", serde_json::Value::Array(rows));
    Ok(())
}
