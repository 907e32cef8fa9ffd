//! The JAX runner's platform choice (runners/jax/README.md, "GPU"): asked for CUDA
//! (`EFFBENCH_JAX_PLATFORM=cuda`, here through the runner TOML's `env`) on a machine where JAX
//! finds no CUDA device, it refuses `hello` with the reason, and effbench stops before any
//! repeat (exit 2, no result file): never a CPU run labelled as the GPU one. The CUDA run
//! itself needs a GPU and `setup.sh --cuda`, so it is not tested here.

mod util;

use std::path::Path;

use util::{both, repo};

fn runner_toml(dir: &Path, platform: &str) -> std::path::PathBuf {
    let jax = repo().join("runners/jax");
    let text = format!(
        "name = \"jax-{platform}\"\ncommand = [\"{}\", \"-u\", \"{}\"]\ntimeout_s = 120\nstartup_timeout_s = 600\n\
         env = {{ EFFBENCH_JAX_PLATFORM = \"{platform}\" }}\n",
        jax.join(".venv/bin/python").display(),
        jax.join("runner.py").display()
    );
    let p = dir.join("runner.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn asking_for_cuda_without_a_cuda_device_is_an_error_not_a_cpu_run() {
    let py = repo().join("runners/jax/.venv/bin/python");
    if !util::tool_present("the JAX runner's venv", py.exists(), "run `bash runners/setup.sh`") {
        return;
    }
    // Only where JAX really has no CUDA device (this test's premise); on a GPU box with the
    // CUDA plugin the refusal would not happen.
    if Path::new("/dev/nvidia0").exists() {
        eprintln!("SKIPPED: /dev/nvidia0 exists: this machine may have a CUDA device");
        return;
    }
    for (platform, why) in [
        ("cuda", "EFFBENCH_JAX_PLATFORM=cuda, but JAX 0.10.2 finds no CUDA device"),
        ("tpu", "EFFBENCH_JAX_PLATFORM='tpu': this runner runs on cpu or cuda"),
    ] {
        let dir = util::tempdir(&format!("jax-{platform}"));
        let toml = runner_toml(dir.path(), platform);
        let out = dir.path().join("out");
        let backend = format!("external:{}", toml.display());
        let o = util::quick_run(&out, &["--backend", &backend, "--workload", "digits-mlp-train", "--repeat", "1"]);
        let text = both(&o);
        assert_eq!(o.status.code(), Some(2), "{text}");
        assert!(text.contains(why), "expected {why:?} in:\n{text}");
        assert!(text.contains(&format!("jax-{platform}")), "the runner is named:\n{text}");
        assert!(!out.join("digits-mlp-train.json").exists(), "no result from a refused platform");
    }
}
