//! End-to-end, issue 10: a GPU box against an NPU box, compared at device and node scope.
//!
//! Both boxes are this machine under a fake sysfs tree (`EFFBENCH_SYSFS_ROOT`) built the way
//! the kernel lays it out (`sensor::sysfs::testing::FakeTree`): RAPL `package-0` and `dram`
//! zones whose counters a thread advances at a known power. The GPU box adds an `amdgpu` hwmon
//! chip reading a constant `power1_input` (µW, as the amdgpu driver reports it: Documentation/
//! gpu/amdgpu/thermal.rst), and its runner declares `domain = "gpu:0"`, so effbench meters the
//! GPU with its own sensor. The NPU box's runner reports its own power in `stats` (Runner
//! Protocol v1 telemetry), so its device energy is vendor-reported. The runners are real
//! processes (the template runner presenting itself as each device).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use effbench::result::RunResult;
use effbench::scope::Scope;
use effbench::sensor::sysfs::testing::FakeTree;

mod util;
use util::{both, effbench, repo, tempdir};

const WORKLOAD: &str = "fmnist-mlp-infer";
const PACKAGE_W: f64 = 20.0;
const DRAM_W: f64 = 5.0;
const GPU_W: f64 = 60.0;
const NPU_W: f64 = 7.0;

/// A fake box: its sysfs tree and the thread that advances its RAPL counters.
struct FakeBox {
    root: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeBox {
    fn new(root: &Path, gpu: bool) -> FakeBox {
        let t = FakeTree::new(root);
        // A range no test run wraps, and a stated power limit, as real packages have.
        let max = 1u64 << 40;
        let pkg = t.rapl_zone("intel-rapl:0", "package-0", max, 0).unwrap();
        t.write(pkg.join("constraint_0_max_power_uw"), "100000000\n").unwrap();
        t.rapl_zone("intel-rapl:0:0", "dram", max, 0).unwrap();
        if gpu {
            let amd = t.hwmon(0, "amdgpu", Some("0000:03:00.0")).unwrap();
            t.write(amd.join("power1_input"), &format!("{}\n", (GPU_W * 1e6) as u64)).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, t) = (stop.clone(), t.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let s = start.elapsed().as_secs_f64();
                    t.set_energy_uj("intel-rapl:0", (s * PACKAGE_W * 1e6) as u64).unwrap();
                    t.set_energy_uj("intel-rapl:0:0", (s * DRAM_W * 1e6) as u64).unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        FakeBox { root: root.to_path_buf(), stop, thread: Some(thread) }
    }
}

impl Drop for FakeBox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A runner TOML for the device runner: `domain` declared in the TOML or not.
fn runner_toml(dir: &Path, name: &str, domain: &str, telemetry: &str, declare: bool) -> PathBuf {
    let script = repo().join("harness/tests/fixtures/runners/device.py");
    let p = dir.join(format!("{name}.toml"));
    let mut text = format!(
        "name = \"{name}\"\ncommand = [\"python3\", \"{}\", \"{domain}\", \"{telemetry}\"]\ntimeout_s = 10\n",
        script.display()
    );
    if declare {
        text += &format!("domain = \"{domain}\"\n");
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs the workload on `fake` with `toml`, 5 repeats, and returns the result file's path.
fn run_on(fake: &FakeBox, toml: &Path, out: &Path) -> PathBuf {
    let o = effbench()
        .env("EFFBENCH_SYSFS_ROOT", &fake.root)
        .env("EFFBENCH_TEST_RUNNER_MODEL", "reference-outputs")
        .args(["run", "--backend", &format!("external:{}", toml.display()), "--workload", WORKLOAD])
        .args(["--repeat", "5", "--idle-secs", "0.3", "--peak-secs", "0", "--min-window-secs", "0.5"])
        .args(["--sample-hz", "50", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    out.join(format!("{WORKLOAD}.json"))
}

fn compare(cand: &Path, base: &Path, scope: Option<&str>) -> (i32, serde_json::Value, String) {
    let mut c = effbench();
    c.args(["compare", cand.to_str().unwrap(), "--baseline", base.to_str().unwrap(), "--json"]);
    if let Some(s) = scope {
        c.args(["--scope", s]);
    }
    let o = c.output().unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o.status.code().unwrap(), v, both(&o))
}

#[test]
fn a_gpu_box_and_an_npu_box_compare_at_device_and_node_scope() {
    let dir = tempdir("scopes");
    let gpu_box = FakeBox::new(&dir.path().join("gpu-sys"), true);
    let npu_box = FakeBox::new(&dir.path().join("npu-sys"), false);
    // The GPU runner also claims 500 W of telemetry: effbench's own hwmon reading must stand,
    // never both summed.
    let gpu_toml = runner_toml(dir.path(), "fake-gpu", "gpu:0", "telemetry=500", true);
    let npu_toml = runner_toml(dir.path(), "fake-npu", "npu:0", &format!("telemetry={NPU_W}"), false);
    let gpu = run_on(&gpu_box, &gpu_toml, &dir.path().join("gpu"));
    let npu = run_on(&npu_box, &npu_toml, &dir.path().join("npu"));
    drop((gpu_box, npu_box));

    // What each box recorded: schema /2, the work's domain, energy per scope.
    let g = RunResult::load(&gpu).unwrap();
    assert_eq!(g.schema, "effbench.result/2");
    assert_eq!(g.backend.domain.as_deref(), Some("gpu:0"));
    let kinds: Vec<(&str, &str)> = g.energy_sources.iter().map(|s| (s.domain.as_str(), s.kind.as_str())).collect();
    assert_eq!(
        kinds,
        vec![("cpu", "rapl"), ("dram", "rapl"), ("gpu:0", "hwmon")],
        "no runner source for a metered GPU"
    );
    for rep in &g.repeats {
        let gpu_w = rep.energy_j.by_domain["gpu:0"].0 / rep.wall_s.0;
        assert!((gpu_w / GPU_W - 1.0).abs() < 0.03, "gpu:0 at {gpu_w} W, the hwmon chip reads {GPU_W} W");
        assert!(rep.meter_warnings.iter().any(|w| w.contains("runner fake-gpu reported")), "{:?}", rep.meter_warnings);
        let s = &rep.energy_scopes;
        assert_eq!(s.keys().copied().collect::<Vec<_>>(), vec![Scope::Device, Scope::Node]);
        assert_eq!(s[&Scope::Device].domains, vec!["gpu:0"]);
        assert_eq!(s[&Scope::Node].domains, vec!["cpu", "dram", "gpu:0"]);
        let node = s[&Scope::Node].total_j.unwrap().0;
        assert!((node - rep.energy_j.total.0).abs() < 1e-6 * node, "node {node}, total {}", rep.energy_j.total.0);
    }
    let n = RunResult::load(&npu).unwrap();
    assert_eq!(n.backend.domain.as_deref(), Some("npu:0"));
    let npu_src = n.energy_sources.iter().find(|s| s.domain == "npu:0").unwrap();
    assert_eq!((npu_src.kind.as_str(), npu_src.provenance), ("runner", effbench::sensor::Provenance::VendorReported));

    // Device scope: npu:0 (vendor-reported, 7 W) against gpu:0 (measured, 60 W): about 88%
    // less energy per query, a verdict labelled vendor-reported, with a warning.
    let (code, v, out) = compare(&npu, &gpu, Some("device"));
    let scope = &v["energy_scope"];
    assert_eq!(scope["scope"], "device", "{out}");
    assert_eq!(scope["label"], "vendor-reported", "{out}");
    assert_eq!(scope["candidate_domains"], serde_json::json!(["npu:0"]), "{out}");
    assert_eq!(scope["baseline_domains"], serde_json::json!(["gpu:0"]), "{out}");
    let energy = &v["rows"][0];
    assert_eq!(
        (energy["metric"].as_str(), energy["verdict"]["verdict"].as_str()),
        (Some("energy_per_unit_j"), Some("met")),
        "{out}"
    );
    let (lo, hi) = (energy["ci95"][0].as_f64().unwrap(), energy["ci95"][1].as_f64().unwrap());
    assert!(lo > 0.5 && lo <= hi && hi < 1.0, "interval [{lo}, {hi}]: {out}");
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("vendor-reported figures (npu:0")),
        "{out}"
    );
    // Data per query is the same work on both boxes: not met, so the overall answer is 1.
    assert_eq!(code, 1, "{out}");

    // Node scope, the default (the widest both measured): npu:0 + cpu + dram against
    // gpu:0 + cpu + dram, still vendor-reported.
    let (_, v, out) = compare(&npu, &gpu, None);
    assert_eq!(v["energy_scope"]["scope"], "node", "{out}");
    assert_eq!(v["energy_scope"]["candidate_domains"], serde_json::json!(["cpu", "dram", "npu:0"]), "{out}");
    let red = v["rows"][0]["reduction"].as_f64().unwrap();
    let expect = 1.0 - (NPU_W + PACKAGE_W + DRAM_W) / (GPU_W + PACKAGE_W + DRAM_W);
    // The boxes ran at their own speeds on a shared machine: the time per query differs a little.
    assert!((red - expect).abs() < 0.2, "node reduction {red}, about {expect} expected: {out}");
    let text =
        effbench().args(["compare", npu.to_str().unwrap(), "--baseline", gpu.to_str().unwrap()]).output().unwrap();
    assert!(
        both(&text).contains(
            "energy at node scope (vendor-reported): candidate cpu + dram + npu:0, baseline cpu + dram + gpu:0"
        ),
        "{}",
        both(&text)
    );

    // A scope neither box measured is refused, naming what each did measure.
    let (code, v, out) = compare(&npu, &gpu, Some("wall"));
    assert_eq!(code, 4, "{out}");
    let why = v["rows"][0]["verdict"]["reason"].as_str().unwrap();
    assert!(why.contains("at wall scope: the candidate did not measure wall scope"), "{why}");
}
