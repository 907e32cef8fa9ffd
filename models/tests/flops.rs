//! Every workload's declared model FLOPs against a count derived here by hand from its
//! architecture (issue 14, item 4). The rules (`layers::Flops`): a multiply-add is 2; any
//! other arithmetic op, compare or select on one element is 1; exp/sqrt are not counted;
//! convolutions count the kernel taps that meet the image, not the zero padding; backward
//! = weight and bias gradients + input gradients except into the data; loss and optimizer
//! are not counted. bench/peers/xla_flops.py compares the same numbers with XLA's.

use candle_core::Device;
use effbench_models::WorkloadSpec;

/// `flops_per_unit` of `id`, times the units in a sample (charlm: 64 tokens per window).
fn declared(id: &str) -> f64 {
    let spec = WorkloadSpec::get(id).unwrap();
    let net = spec.build_net(0, &Device::Cpu).unwrap();
    spec.flops_per_unit(net.as_ref()) * spec.units_per_sample as f64
}

/// Linear in -> out on one row: (forward, backward); no input gradient on the first layer.
fn linear(i: u64, o: u64, first: bool) -> (u64, u64) {
    let gemm = 2 * i * o;
    (gemm + o, gemm + o + if first { 0 } else { gemm })
}

/// The MLPs and the autoencoder: Linear layers, a ReLU (1 forward, 2 backward per value)
/// after every layer but the last.
fn mlp(sizes: &[u64]) -> (u64, u64) {
    let (mut f, mut b) = (0, 0);
    for (i, w) in sizes.windows(2).enumerate() {
        let (lf, lb) = linear(w[0], w[1], i == 0);
        let relu = if i + 2 < sizes.len() { w[1] } else { 0 };
        (f, b) = (f + lf + relu, b + lb + 2 * relu);
    }
    (f, b)
}

#[test]
fn digits_mlp_counts_64_128_10_without_the_data_gradient() {
    // forward: 2·64·128 + 128 (fc0), 128 (ReLU), 2·128·10 + 10 (fc1)
    let forward = 2 * 64 * 128 + 128 + 128 + 2 * 128 * 10 + 10;
    // backward: fc0 weight + bias (no gradient into the digits), ReLU, fc1 weight + bias + input
    let backward = 2 * 64 * 128 + 128 + 2 * 128 + (2 * 128 * 10 + 10 + 2 * 128 * 10);
    assert_eq!(forward, 19_210);
    assert_eq!(mlp(&[64, 128, 10]), (forward, backward));
    assert_eq!(declared("digits-mlp-train"), (forward + backward) as f64);
}

#[test]
fn fmnist_mlp_counts_784_128_10() {
    let forward = 2 * 784 * 128 + 128 + 128 + 2 * 128 * 10 + 10;
    let backward = 2 * 784 * 128 + 128 + 2 * 128 + (2 * 128 * 10 + 10 + 2 * 128 * 10);
    assert_eq!(declared("fmnist-mlp-train"), (forward + backward) as f64);
    assert_eq!(declared("fmnist-mlp-infer"), forward as f64);
    assert_eq!(declared("fmnist-mlp-infer-b250"), forward as f64);
}

#[test]
fn autoencoder_counts_its_ten_layers() {
    let sizes = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640];
    // multiply-adds: 640·128 + 3·128·128 + 128·8 + 8·128 + 3·128·128 + 128·640
    let macs = 640 * 128 + 3 * 128 * 128 + 128 * 8 + 8 * 128 + 3 * 128 * 128 + 128 * 640;
    let biases = 8 * 128 + 8 + 640; // outputs of the ten layers
    let relus = 8 * 128 + 8; // every layer's output but the last
    let forward = 2 * macs + biases + relus;
    // weight and bias gradients everywhere; input gradients everywhere but 640 -> 128
    let backward = 2 * macs + biases + 2 * relus + 2 * (macs - 640 * 128);
    assert_eq!(mlp(&sizes), (forward, backward));
    assert_eq!(declared("ae-machine-train"), (forward + backward) as f64);
    assert_eq!(declared("ae-machine-infer"), forward as f64);
    assert_eq!(declared("ae-machine-infer-b250"), forward as f64);
}

#[test]
fn cnn_counts_convolutions_over_the_image_not_the_padding() {
    // 3x3 "same" convolution along a side of n: 3n taps less 1 at each edge = 3n - 2.
    let (t28, t14) = (3 * 28 - 2, 3 * 14 - 2);
    let conv1 = 2 * 16 * t28 * t28; // 1 -> 16 channels on 28x28
    let conv2 = 2 * 16 * 32 * t14 * t14; // 16 -> 32 on 14x14
    let (a1, a2) = (16 * 28 * 28, 32 * 14 * 14); // conv outputs: bias, ReLU
    let (p1, p2) = (16 * 14 * 14, 32 * 7 * 7); // pool outputs
    let forward = conv1 + a1 + a1 + 3 * p1 + conv2 + a2 + a2 + 3 * p2 // conv + bias, ReLU, pool
        + 2 * 1568 * 64 + 64 + 64 + 2 * 64 * 10 + 10;
    let backward = conv1 + a1 + 2 * a1 + 8 * p1 // no gradient into the image
        + 2 * conv2 + a2 + 2 * a2 + 8 * p2
        + 2 * (2 * 1568 * 64) + 64 + 2 * 64 + 2 * (2 * 64 * 10) + 10;
    assert_eq!(conv1, 215_168, "not 2·16·9·784 = 225,792: the padding is not counted");
    assert_eq!(declared("fmnist-cnn-train"), (forward + backward) as f64);
    assert_eq!(declared("fmnist-cnn-infer"), forward as f64);
    assert_eq!(declared("fmnist-cnn-infer-b250"), forward as f64);
}

#[test]
fn charlm_counts_projections_attention_norms_and_softmax() {
    let (t, d, heads, vocab) = (64, 64, 4, 75); // workload::CHARLM
    let ln = (7 * d + 1, 11 * d); // LayerNorm per row
    let proj = linear(d, d, false); // q, k, v, o: input gradients all (none is the data)
    let (up, down) = (linear(d, 4 * d, false), linear(4 * d, d, false));
    // per token: ln1, 4 projections, ln2, fc1, ReLU on 4d, fc2, two residual adds
    let tok_f = ln.0 + 4 * proj.0 + ln.0 + up.0 + 4 * d + down.0 + 2 * d;
    let tok_b = ln.1 + 4 * proj.1 + ln.1 + up.1 + 2 * 4 * d + down.1 + 2 * d;
    // attention over t tokens: QKᵀ and AV (2·t·t·d each; backward two products each), the
    // scale and the mask (t·t per head; only the scale has a gradient), softmax rows of t
    let (mm, scores, rows) = (2 * t * t * d, t * t * heads, t * heads);
    let att_f = 2 * mm + 2 * scores + rows * (4 * t - 2);
    let att_b = 4 * mm + scores + rows * (4 * t - 1);
    let head = linear(d, vocab, false);
    // embeddings: the position add; backward its sum over the batch and the token scatter
    let forward = t * d + 2 * (t * tok_f + att_f) + t * (ln.0 + head.0);
    let backward = 2 * t * d + 2 * (t * tok_b + att_b) + t * (ln.1 + head.1);
    assert_eq!(declared("charlm-austen-train"), (forward + backward) as f64);
    assert_eq!(declared("charlm-austen-infer"), forward as f64);
    assert_eq!(declared("charlm-austen-infer-b250"), forward as f64);
    let per_token = WorkloadSpec::get("charlm-austen-train").unwrap();
    let net = per_token.build_net(0, &Device::Cpu).unwrap();
    assert_eq!(per_token.flops_per_unit(net.as_ref()), (forward + backward) as f64 / 64.0);
}

/// Every workload is covered above; a new one must be added here.
#[test]
fn every_workload_has_a_hand_count() {
    let covered = [
        "digits-mlp-train",
        "fmnist-mlp-train",
        "fmnist-mlp-infer",
        "fmnist-mlp-infer-b250",
        "ae-machine-train",
        "ae-machine-infer",
        "ae-machine-infer-b250",
        "fmnist-cnn-train",
        "fmnist-cnn-infer",
        "fmnist-cnn-infer-b250",
        "charlm-austen-train",
        "charlm-austen-infer",
        "charlm-austen-infer-b250",
    ];
    for w in effbench_models::WORKLOADS {
        assert!(covered.contains(&w.id), "{} has no hand-derived FLOP count in tests/flops.rs", w.id);
    }
}
