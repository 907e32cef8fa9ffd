//! Issue 11: faults and bad input end in a clear error (exit 2) that names the file or flag and
//! says what to do, never a panic, an abort, a hang or a silent fall-back. One test per case,
//! named after what it guards; each asserts the finding itself, not only the exit code.

mod util;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// Exit 2 with `needle` on stderr (and no panic).
#[track_caller]
fn assert_refused(o: &Output, needle: &str) {
    let err = util::text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "expected exit 2; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in stderr: {err}");
}

// ---- IDX files given with --data-dir ----

fn idx(dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(payload);
    b
}

fn write_gz(path: &Path, bytes: &[u8]) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    std::fs::write(path, gz.finish().unwrap()).unwrap();
}

/// A --data-dir holding a train split of `images` and `labels`; runs fmnist-mlp-train on it.
fn train_on(images: Vec<u8>, labels: Vec<u8>) -> (tempfile::TempDir, Output) {
    let dir = util::tempdir("idx");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_gz(&data.join("train-images-idx3-ubyte.gz"), &images);
    write_gz(&data.join("train-labels-idx1-ubyte.gz"), &labels);
    let o = util::quick_run(
        &dir.path().join("out"),
        &[
            "--workload",
            "fmnist-mlp-train",
            "--repeat",
            "1",
            "--fake-power",
            "10",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    (dir, o)
}

#[test]
fn idx_with_zero_images_is_a_clear_error_not_a_panic() {
    let (dir, o) = train_on(idx(&[0, 28, 28], &[]), idx(&[0], &[]));
    let images = dir.path().join("data/train-images-idx3-ubyte.gz");
    assert_refused(&o, &format!("{}: holds 0 images; a split needs at least one", images.display()));
}

#[test]
fn idx_dimensions_that_overflow_are_refused_not_allocated() {
    let (dir, o) = train_on(idx(&[u32::MAX, u32::MAX, u32::MAX], &[0; 64]), idx(&[1], &[0]));
    let images = dir.path().join("data/train-images-idx3-ubyte.gz");
    assert_refused(&o, &format!("{}: IDX header says [4294967295, 4294967295, 4294967295]", images.display()));
}

#[test]
fn idx_label_255_names_the_labels_file() {
    let (dir, o) = train_on(idx(&[2, 28, 28], &[0; 2 * 784]), idx(&[2], &[3, 255]));
    let labels = dir.path().join("data/train-labels-idx1-ubyte.gz");
    assert_refused(&o, &format!("{}: label 1 is 255, outside 0..=9", labels.display()));
}

#[test]
fn idx_images_not_28x28_name_the_images_file() {
    let (dir, o) = train_on(idx(&[2, 32, 32], &[0; 2 * 1024]), idx(&[2], &[3, 4]));
    let images = dir.path().join("data/train-images-idx3-ubyte.gz");
    assert_refused(&o, &format!("{}: images are 32x32, the workloads need 28x28", images.display()));
}

#[test]
fn idx_image_and_label_counts_that_differ_name_both_files() {
    let (dir, o) = train_on(idx(&[2, 28, 28], &[0; 2 * 784]), idx(&[3], &[3, 4, 5]));
    let d = dir.path().join("data");
    assert_refused(
        &o,
        &format!(
            "{} holds 2 images but {} holds 3 labels",
            d.join("train-images-idx3-ubyte.gz").display(),
            d.join("train-labels-idx1-ubyte.gz").display()
        ),
    );
}

// ---- recipes ----

#[test]
fn recipe_error_in_a_user_file_names_the_file() {
    let dir = util::tempdir("recipe");
    let recipe = dir.path().join("my-method.toml");
    std::fs::write(
        &recipe,
        "name = \"baseline\"\noptimizer = \"adamw\"\nlearning_rate = 1e-3\nbatch_size = 64\nweight_decay = -1.0\n",
    )
    .unwrap();
    let o = util::quick_run(
        &dir.path().join("out"),
        &["--workload", "digits-mlp-train", "--recipe", recipe.to_str().unwrap()],
    );
    assert_refused(
        &o,
        &format!("{}: recipe \"baseline\": weight_decay must be a finite number >= 0, got -1", recipe.display()),
    );
}

#[test]
fn recipe_evaluation_interval_above_the_workloads_cap_is_refused() {
    let dir = util::tempdir("recipe-cap");
    let recipe = dir.path().join("r.toml");
    let text = "name = \"r\"\noptimizer = \"adamw\"\nlearning_rate = 1e-3\nbatch_size = 64\n[evaluation]\nsample_cap = 100\nevery_samples = 200\n";
    std::fs::write(&recipe, text).unwrap();
    let o = util::quick_run(
        &dir.path().join("out"),
        &["--workload", "digits-mlp-train", "--recipe", recipe.to_str().unwrap()],
    );
    assert_refused(
        &o,
        "evaluation.every_samples must be in 1..=sample_cap; got every_samples = 200 and sample_cap = 100",
    );
}

#[test]
fn recipe_given_with_only_inference_workloads_is_refused() {
    let dir = util::tempdir("recipe-infer");
    let o = util::quick_run(&dir.path().join("out"), &["--workload", "fmnist-mlp-infer", "--recipe", "efficient"]);
    assert_refused(&o, "--recipe \"efficient\": recipes apply to training workloads, and only inference workloads were selected (fmnist-mlp-infer)");
}

// ---- numbers on the command line ----

#[test]
fn threads_zero_or_beyond_the_ceiling_are_refused_with_the_bound() {
    let dir = util::tempdir("threads");
    for n in ["0", "100000"] {
        let o = util::quick_run(&dir.path().join("out"), &["--workload", "fmnist-mlp-infer", "--threads", n]);
        assert_refused(&o, &format!("--threads {n} is outside 1..="));
        assert!(util::text(&o.stderr).contains("at most max(64, 4 x the"), "{}", util::text(&o.stderr));
    }
    let o = util::effbench().args(["peak", "--threads", "0"]).output().unwrap();
    assert_refused(&o, "--threads 0 is outside 1..=");
    let help = util::text(&util::run(&["run", "--help"]).stdout);
    assert!(help.contains("max(64, 4 x the CPUs"), "--threads help states the bound: {help}");
}

#[test]
fn nan_and_negative_seconds_are_refused_naming_the_flag() {
    let dir = util::tempdir("secs");
    let out = dir.path().join("out");
    let cases = [
        ("--min-window-secs=-1", "--min-window-secs must be a finite number of seconds >= 0, got -1"),
        ("--min-window-secs=NaN", "--min-window-secs must be a finite number of seconds >= 0, got NaN"),
        ("--idle-secs=NaN", "--idle-secs must be a finite number of seconds >= 0, got NaN"),
        ("--peak-secs=-1", "--peak-secs must be a finite number of seconds >= 0, got -1"),
        ("--sample-hz=NaN", "--sample-hz must be a number of samples per second in 1..=1000, got NaN"),
        ("--power-command-timeout=1e30", "--power-command-timeout must be a number of seconds in (0, 3600]"),
    ];
    for (flag, want) in cases {
        let o = util::run(&["run", "--workload", "fmnist-mlp-infer", "--out", out.to_str().unwrap(), flag]);
        assert_refused(&o, want);
    }
}

// ---- result files read from outside ----

fn shipped_baseline() -> PathBuf {
    util::repo().join("baselines/cpu-amd-epyc-2t/digits-mlp-train.json")
}

#[test]
fn compare_refuses_a_device_a_fifo_and_a_huge_file_without_reading_them() {
    let dir = util::tempdir("compare-input");
    let base = shipped_baseline();
    let o = util::run(&["compare", "/dev/zero", "--baseline", base.to_str().unwrap()]);
    assert_refused(&o, "/dev/zero is a character device, not a regular file");

    let fifo = dir.path().join("pipe.json");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut cmd = util::effbench();
    cmd.args(["compare", fifo.to_str().unwrap(), "--baseline", base.to_str().unwrap()]);
    let o = util::output_within(&mut cmd, 20, "compare of a FIFO hangs");
    assert_refused(&o, "pipe.json is a FIFO (named pipe), not a regular file");

    let huge = dir.path().join("huge.json");
    std::fs::File::create(&huge).unwrap().set_len(209_000_000).unwrap();
    let o = util::run(&["compare", huge.to_str().unwrap(), "--baseline", base.to_str().unwrap()]);
    assert_refused(&o, "huge.json is 209.0 MB, over effbench's 64 MiB limit for a result file");
}

#[test]
fn dangling_json_link_in_a_gate_directory_is_an_error_naming_it() {
    let dir = util::tempdir("gate-link");
    let cand = dir.path().join("cand");
    std::fs::create_dir(&cand).unwrap();
    std::fs::copy(shipped_baseline(), cand.join("digits-mlp-train.json")).unwrap();
    let link = cand.join("fmnist-mlp-train.json");
    std::os::unix::fs::symlink(dir.path().join("gone.json"), &link).unwrap();
    let base = util::repo().join("baselines/cpu-amd-epyc-2t");
    let o = util::run(&["gate", cand.to_str().unwrap(), "--baseline", base.to_str().unwrap()]);
    assert_refused(
        &o,
        &format!(
            "{} is a symbolic link to {}, which does not exist",
            link.display(),
            dir.path().join("gone.json").display()
        ),
    );
}

/// The shipped baseline with every repeat invalid by its numbers (quality 0.50, below the
/// target: validity is recomputed, so the flag alone would be a contradiction).
fn unusable_baseline(dir: &Path) -> PathBuf {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(shipped_baseline()).unwrap()).unwrap();
    for r in v["repeats"].as_array_mut().unwrap() {
        r["valid"] = false.into();
        r["invalid_reason"] = "accuracy 0.50 < target 0.95".into();
        r["quality"] = 0.5.into();
        if let Some(last) = r["evaluations"].as_array_mut().and_then(|e| e.last_mut()) {
            last["quality"] = 0.5.into();
        }
    }
    let path = dir.join("digits-mlp-train.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    path
}

#[test]
fn baseline_with_no_valid_repeats_is_bad_input_not_an_invalid_candidate() {
    let dir = util::tempdir("unusable");
    let base = unusable_baseline(dir.path());
    let cand = shipped_baseline();
    let want = format!("baseline {} is unusable: none of its", base.display());
    let o = util::run(&["compare", cand.to_str().unwrap(), "--baseline", base.to_str().unwrap()]);
    assert_refused(&o, &want);
    assert!(util::text(&o.stderr).contains("effbench baseline record --workload digits-mlp-train --force"));
    let o = util::run(&["gate", cand.to_str().unwrap(), "--baseline", dir.path().to_str().unwrap()]);
    assert_refused(&o, &want);
    let o = util::quick_run(
        &dir.path().join("out"),
        &["--workload", "digits-mlp-train", "--baseline", base.to_str().unwrap()],
    );
    assert_refused(&o, &want);
}

// ---- --power-command ----

#[test]
fn failing_power_command_refuses_the_run_instead_of_falling_back_to_the_estimate() {
    let dir = util::tempdir("power-fail");
    let cmd = "echo 'npu 0: device not found' >&2; exit 3";
    let o = util::quick_run(&dir.path().join("out"), &["--workload", "fmnist-mlp-infer", "--power-command", cmd]);
    assert_refused(&o, &format!("--power-command: cannot use `{cmd}`"));
    assert!(util::text(&o.stderr).contains("stderr: \"npu 0: device not found\""), "{}", util::text(&o.stderr));
    assert!(!dir.path().join("out/fmnist-mlp-infer.json").exists(), "no run may happen");
}

#[test]
fn flooding_power_command_is_killed_and_the_run_refused_with_a_short_message() {
    let dir = util::tempdir("power-flood");
    let t = Instant::now();
    let o = util::quick_run(&dir.path().join("out"), &["--workload", "fmnist-mlp-infer", "--power-command", "yes"]);
    assert!(t.elapsed() < Duration::from_secs(30), "took {:?}", t.elapsed());
    assert_refused(&o, "power command `yes` printed more than 64 KiB in one run and was killed");
    assert!(o.stderr.len() < 1500, "the message quotes too much: {} bytes", o.stderr.len());
}
