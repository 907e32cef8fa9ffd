//! Runners that misbehave (issue 5, item 7) and a conformant one, through the real binary.
//! The runners are Python 3 scripts (standard library only): the template runner and
//! `fixtures/runners/hostile.py`, which answer from effbench's reference outputs
//! (`EFFBENCH_TEST_RUNNER_MODEL=reference-outputs`), so no inference library is needed.
//! Watchdogs are short so the suite stays fast.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use effbench::result::RunResult;

const WORKLOAD: &str = "fmnist-mlp-infer";

mod util;

use util::repo;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("effbench-runner-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A runner TOML for a hostile mode.
fn hostile_toml(dir: &Path, mode: &str, timeout_s: f64, startup_s: f64) -> PathBuf {
    let script = repo().join("harness/tests/fixtures/runners/hostile.py");
    let p = dir.join(format!("{mode}.toml"));
    std::fs::write(
        &p,
        format!(
            "name = \"hostile-{mode}\"\ncommand = [\"python3\", \"{}\", \"{mode}\"]\ntimeout_s = {timeout_s}\nstartup_timeout_s = {startup_s}\n",
            script.display()
        ),
    )
    .unwrap();
    p
}

struct Ran {
    out: Output,
    elapsed: Duration,
    dir: PathBuf,
}

impl Ran {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    fn result(&self, workload: &str) -> RunResult {
        RunResult::load(&self.dir.join(format!("{workload}.json"))).unwrap()
    }
}

fn run_with(dir: &Path, toml: &Path, workload: &str, repeats: &str, env: &[(&str, &str)]) -> Ran {
    run_window(dir, toml, workload, repeats, env, "0.05")
}

fn run_window(dir: &Path, toml: &Path, workload: &str, repeats: &str, env: &[(&str, &str)], window: &str) -> Ran {
    let mut c = Command::new(env!("CARGO_BIN_EXE_effbench"));
    c.env_remove("RAYON_NUM_THREADS").env_remove("EFFBENCH_BACKEND");
    c.env("EFFBENCH_TEST_RUNNER_MODEL", "reference-outputs");
    c.env("EFFBENCH_STORE", "none");
    for (k, v) in env {
        c.env(k, v);
    }
    let backend = format!("external:{}", toml.display());
    let out_dir = dir.join("out");
    c.args(["run", "--backend", &backend, "--workload", workload, "--repeat", repeats]);
    c.args(["--idle-secs", "0", "--peak-secs", "0", "--fake-power", "10", "--min-window-secs", window]);
    c.args(["--out", out_dir.to_str().unwrap()]);
    let t = Instant::now();
    let out = c.output().unwrap();
    Ran { out, elapsed: t.elapsed(), dir: out_dir }
}

fn hostile(name: &str, mode: &str, timeout_s: f64, env: &[(&str, &str)]) -> Ran {
    let dir = tmp(name);
    let toml = hostile_toml(&dir, mode, timeout_s, timeout_s.max(5.0));
    run_with(&dir, &toml, WORKLOAD, "2", env)
}

/// The run failed before any repeat began: exit 2 (bad input: the runner is broken or
/// misconfigured), with an error that names the runner and says `what`.
fn assert_refused(r: &Ran, mode: &str, what: &[&str]) {
    assert_failed(r, 2, mode, what);
}

/// The runner failed after the first repeat began: exit 5 (cut short), with an error that
/// names the runner, says `what` and how many repeats were kept.
fn assert_cut_short(r: &Ran, mode: &str, what: &[&str]) {
    assert_failed(r, 5, mode, what);
    let e = r.stderr();
    assert!(e.contains("run cut short: ") && e.contains(" repeats finished and are kept in "), "{e}");
}

fn assert_failed(r: &Ran, code: i32, mode: &str, what: &[&str]) {
    let e = r.stderr();
    assert_eq!(r.code(), Some(code), "{e}");
    assert!(e.contains(&format!("runner \"hostile-{mode}\"")), "{e}");
    assert!(e.contains("last message sent:") && e.contains("last message received:"), "{e}");
    for w in what {
        assert!(e.contains(w), "expected {w:?} in: {e}");
    }
}

fn process_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        // A zombie waiting for its (re)parent to reap it is gone too.
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if process_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn conformant_template_runner_gives_a_checked_valid_result() {
    let dir = tmp("template");
    let r = run_with(&dir, &repo().join("runners/template/runner.toml"), WORKLOAD, "2", &[]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let res = r.result(WORKLOAD);
    assert_eq!(res.backend.kind, "external");
    assert!(res.backend.device.contains("template"), "{}", res.backend.device);
    // The test hook that hands the runner effbench's answers is never silent in a result.
    assert!(res.backend.device.contains("TEST MODEL reference-outputs"), "{}", res.backend.device);
    assert!(res.repeats.iter().all(|r| r.meter_warnings.iter().any(|w| w.contains("testing only"))));
    assert_eq!(res.backend.precision, "f32");
    assert_eq!(res.repeats.len(), 2);
    for rep in &res.repeats {
        assert!(rep.valid, "{:?}", rep.invalid_reason);
        let run = rep.runner.as_ref().expect("runner fields");
        assert_eq!(run.max_rel_error, 0.0);
        let busy = run.busy_s.expect("busy time").0;
        assert!(busy > 0.0 && busy < rep.wall_s.0, "busy {busy} wall {}", rep.wall_s.0);
        // Bytes counted by effbench: every pass hands over 1000 queries of 784 f32 and reads
        // back 10 f32 each.
        let passes = rep.units_processed / 1000;
        assert!(passes >= 1 && rep.units_processed % 1000 == 0);
        assert_eq!(run.input_bytes.0, passes * 1000 * 784 * 4);
        assert_eq!(run.output_bytes.0, passes * 1000 * 10 * 4);
        assert_eq!(run.h2d_bytes.map(|b| b.0), Some(run.input_bytes.0));
        assert_eq!(run.d2h_bytes.map(|b| b.0), Some(run.output_bytes.0));
        assert_eq!(rep.bytes_per_unit.map(|b| b.0), Some(784 * 4 + 10 * 4));
        assert_eq!(run.issues, passes, "one issue carries a whole pass by default");
        let overhead = run.overhead_per_unit_s.unwrap().0;
        assert!((overhead - (rep.wall_s.0 - busy) / rep.units_processed as f64).abs() < 1e-12);
    }
    // The runner's stderr is kept beside the result, and the runner TOML's bytes, which hash
    // to the SHA-256 the result records.
    assert!(r.dir.join(format!("{WORKLOAD}.runner.log")).exists());
    let copy = std::fs::read(r.dir.join(format!("{WORKLOAD}.runner.toml"))).unwrap();
    assert_eq!(copy, std::fs::read(repo().join("runners/template/runner.toml")).unwrap());
    let sha = effbench::bundle::fsafe::sha256_of(&copy[..]).unwrap().0;
    assert_eq!(res.backend.runner_config_sha256.as_deref(), Some(sha.as_str()));
}

#[test]
fn protocol_phases_come_in_order() {
    let dir = tmp("order");
    let log = dir.join("ops.log");
    let toml = hostile_toml(&dir, "ok", 5.0, 5.0);
    let r = run_with(&dir, &toml, WORKLOAD, "2", &[("HOSTILE_OP_LOG", log.to_str().unwrap())]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let ops = std::fs::read_to_string(&log).unwrap();
    // Consecutive issues collapse into one `issue+` (their number depends on the window).
    let mut seen: Vec<&str> = Vec::new();
    for op in ops.lines() {
        let op = if op == "issue" { "issue+" } else { op };
        if seen.last() != Some(&op) || op != "issue+" {
            seen.push(op);
        }
    }
    let repeat = ["stats", "mark.begin", "issue+", "mark.end", "stats"];
    let mut want = vec!["hello", "load", "load_samples", "warmup", "flush"];
    want.extend(repeat);
    want.extend(repeat);
    want.extend(["flush", "unload", "shutdown"]);
    assert_eq!(seen, want, "{ops}");
    let res = r.result(WORKLOAD);
    for rep in &res.repeats {
        let issues = rep.runner.as_ref().unwrap().issues;
        assert_eq!(issues, rep.units_processed / 1000, "every issue inside a window is counted in it");
    }
    assert_eq!(
        ops.lines().filter(|l| *l == "issue").count() as u64,
        res.repeats.iter().map(|r| r.runner.as_ref().unwrap().issues).sum::<u64>()
    );
}

#[test]
fn batches_per_issue_splits_a_pass_into_several_issues() {
    let dir = tmp("per-issue");
    let toml = dir.join("r.toml");
    let script = repo().join("runners/template/runner.py");
    std::fs::write(
        &toml,
        format!(
            "name = \"t\"\ncommand = [\"python3\", \"{}\"]\ntimeout_s = 10\nbatches_per_issue = 1\n",
            script.display()
        ),
    )
    .unwrap();
    let r = run_with(&dir, &toml, "fmnist-mlp-infer-b250", "1", &[]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let rep = &r.result("fmnist-mlp-infer-b250").repeats[0];
    let run = rep.runner.as_ref().unwrap();
    assert_eq!(run.issues, rep.units_processed / 250, "one issue per batch of 250");
    assert!(rep.valid);
}

#[test]
fn runner_that_never_answers_is_stopped_with_its_process_group() {
    let dir = tmp("silent");
    let pid_file = dir.join("grandchild.pid");
    let toml = hostile_toml(&dir, "silent", 0.5, 0.5);
    let r = run_with(&dir, &toml, WORKLOAD, "1", &[("HOSTILE_PID_FILE", pid_file.to_str().unwrap())]);
    assert_refused(&r, "silent", &["no reply to `hello`", "within 0.500 s"]);
    assert!(r.elapsed < Duration::from_secs(20), "{:?}", r.elapsed);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(wait_gone(&pid), "the runner's child {pid} survived");
}

#[test]
fn runner_that_stops_answering_mid_run_is_stopped_by_the_watchdog() {
    let r = hostile("silent-issue", "silent-issue", 0.3, &[]);
    assert_cut_short(&r, "silent-issue", &["no reply to `issue`", "watchdog", "\"op\":\"issue\""]);
}

#[test]
fn late_answer_is_not_waited_for() {
    let r = hostile("late", "late", 0.3, &[("HOSTILE_LATE_S", "30")]);
    assert_cut_short(&r, "late", &["no reply to `issue`"]);
    assert!(r.elapsed < Duration::from_secs(25), "waited for the late answer: {:?}", r.elapsed);
}

#[test]
fn garbage_on_stdout_is_refused_and_quoted() {
    let r = hostile("garbage", "garbage", 2.0, &[]);
    assert_cut_short(&r, "garbage", &["not a JSON object", "Loading NPU firmware"]);
}

#[test]
fn crash_mid_run_keeps_the_finished_repeats() {
    let dir = tmp("crash");
    let toml = hostile_toml(&dir, "crash", 2.0, 5.0);
    let r = run_with(&dir, &toml, WORKLOAD, "3", &[]);
    assert_cut_short(&r, "crash", &["closed stdout", "exit status: 3", "segmentation fault (on purpose)", "`issue`"]);
    assert!(r.stderr().contains("1 of 3 repeats finished"), "{}", r.stderr());
    let res = r.result(WORKLOAD);
    assert_eq!(res.repeats.len(), 1, "the repeat finished before the crash stays in the file");
    assert!(res.repeats[0].valid);
}

/// Issue 10, item 6: a runner that dies during the third repeat cuts the run short (exit 5,
/// not 2: the input was fine); the two finished repeats are in the result file, the third is
/// not, and the message names the runner and says what was kept.
#[test]
fn runner_dying_in_the_third_repeat_exits_5_and_keeps_two_repeats() {
    let dir = tmp("crash-third");
    let toml = hostile_toml(&dir, "crash", 2.0, 5.0);
    let r = run_with(&dir, &toml, WORKLOAD, "4", &[("HOSTILE_CRASH_AT", "3")]);
    assert_cut_short(&r, "crash", &["closed stdout", "segmentation fault (on purpose)", "workload fmnist-mlp-infer"]);
    let e = r.stderr();
    assert!(e.contains(&format!("2 of 4 repeats finished and are kept in {}", r.dir.display())), "{e}");
    let res = r.result(WORKLOAD);
    assert_eq!(res.repeats.iter().map(|r| r.seed).collect::<Vec<_>>(), [0, 1], "finished repeats only");
    assert!(res.repeats.iter().all(|r| r.valid));
    assert_eq!(res.summary["energy_j"].n, 2, "the summary covers the kept repeats");
    // The trace has the finished repeats' segments, not the cut one's.
    let trace = std::fs::read_to_string(r.dir.join(format!("{WORKLOAD}.trace.csv"))).unwrap();
    let mut phases: Vec<&str> =
        trace.lines().skip(1).filter_map(|l| l.split(',').nth(1)).filter(|p| *p != "idle").collect();
    phases.dedup();
    assert_eq!(phases, ["repeat-0", "repeat-1"], "{trace}");
    // Nothing half-written is left beside it.
    let hidden: Vec<_> = std::fs::read_dir(&r.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn runner_that_exits_at_once_is_reported_with_its_stderr() {
    let r = hostile("exit", "exit", 2.0, &[]);
    assert_refused(&r, "exit", &["`hello`", "exit status: 1", "cannot open /dev/npu0"]);
}

#[test]
fn runner_that_exits_while_a_grandchild_holds_stdout_is_reported_as_exited() {
    let dir = tmp("exit-orphan");
    let pid_file = dir.join("grandchild.pid");
    // A long startup watchdog: the exit must be noticed long before it.
    let toml = hostile_toml(&dir, "exit-orphan", 2.0, 30.0);
    let r = run_with(&dir, &toml, WORKLOAD, "1", &[("HOSTILE_PID_FILE", pid_file.to_str().unwrap())]);
    assert_refused(&r, "exit-orphan", &["runner exited with status 3", "`hello`", "helper left running"]);
    assert!(!r.stderr().contains("no reply to"), "{}", r.stderr());
    assert!(r.elapsed < Duration::from_secs(15), "waited for the watchdog: {:?}", r.elapsed);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(wait_gone(&pid), "the runner's child {pid} survived");
}

#[test]
fn wrong_protocol_version_is_refused() {
    let r = hostile("version", "version", 2.0, &[]);
    assert_refused(&r, "version", &["protocol version 2", "speaks only version 1"]);
}

#[test]
fn output_written_outside_the_named_path_is_refused() {
    let dir = tmp("leak-outside");
    let outside = dir.join("stolen.bin");
    let toml = hostile_toml(&dir, "leak-outside", 2.0, 5.0);
    let r = run_with(&dir, &toml, WORKLOAD, "1", &[("HOSTILE_OUTSIDE", outside.to_str().unwrap())]);
    assert_cut_short(&r, "leak-outside", &["stolen.bin", "effbench named", "write only where they are told"]);
}

#[test]
fn files_left_behind_are_refused() {
    let r = hostile("leave-files", "leave-files", 2.0, &[]);
    assert_cut_short(&r, "leave-files", &["left files", ".partial"]);
    let r = hostile("leave-work-file", "leave-work-file", 2.0, &[]);
    assert_cut_short(&r, "leave-work-file", &["left files in its work directory", "compile-cache.bin"]);
}

#[test]
fn outputs_of_the_wrong_shape_or_size_are_refused() {
    let r = hostile("bad-shape", "bad-shape", 2.0, &[]);
    assert_cut_short(&r, "bad-shape", &["shape [1000, 9]", "expected float32 with shape [1000, 10]"]);
    let r = hostile("short-file", "short-file", 2.0, &[]);
    assert_cut_short(&r, "short-file", &["has 39996 bytes", "40000 bytes"]);
}

#[test]
fn runner_ignoring_sigterm_is_killed_after_the_grace() {
    let dir = tmp("ignore-term");
    let pid_file = dir.join("grandchild.pid");
    let toml = hostile_toml(&dir, "ignore-term", 0.3, 5.0);
    let r = run_with(&dir, &toml, WORKLOAD, "1", &[("HOSTILE_PID_FILE", pid_file.to_str().unwrap())]);
    assert_cut_short(&r, "ignore-term", &["no reply to `issue`"]);
    // SIGTERM is ignored, so effbench waits the 5 s grace before SIGKILL, and no longer.
    assert!(r.elapsed >= Duration::from_secs(5), "{:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_secs(30), "{:?}", r.elapsed);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(wait_gone(&pid), "the runner's child {pid} survived SIGKILL of the group");
}

#[test]
fn wrong_f32_outputs_make_the_repeat_invalid() {
    let r = hostile("wrong-output", "wrong-output", 5.0, &[]);
    assert_eq!(r.code(), Some(4), "{}", r.stderr());
    let res = r.result(WORKLOAD);
    for rep in &res.repeats {
        assert!(!rep.valid);
        let why = rep.invalid_reason.as_deref().unwrap();
        assert!(why.contains("max relative error") && why.contains("(f32)"), "{why}");
        let err = rep.runner.as_ref().unwrap().max_rel_error;
        assert!((err - 0.01).abs() < 1e-4, "{err}");
    }
}

#[test]
fn lower_precision_is_judged_by_quality_kept() {
    let r = hostile("int8-ok", "int8-ok", 5.0, &[]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let res = r.result(WORKLOAD);
    assert_eq!(res.backend.precision, "int8");
    let rep = &res.repeats[0];
    assert!(rep.valid, "{:?}", rep.invalid_reason);
    assert!(rep.runner.as_ref().unwrap().max_rel_error > 1e-4, "the f32 rule would have refused it");

    let r = hostile("int8-bad", "int8-bad", 5.0, &[]);
    assert_eq!(r.code(), Some(4), "{}", r.stderr());
    let rep = &r.result(WORKLOAD).repeats[0];
    let why = rep.invalid_reason.as_deref().unwrap();
    assert!(why.contains("int8") && why.contains("99% of the f32 reference"), "{why}");
}

#[test]
fn runner_power_telemetry_becomes_vendor_reported_energy() {
    // A longer window, so the acknowledgements' trips (effbench's window is a little longer
    // than the runner's) stay small beside it.
    let dir = tmp("power");
    let toml = hostile_toml(&dir, "power", 5.0, 5.0);
    let r = run_window(&dir, &toml, WORKLOAD, "2", &[], "0.5");
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let res = r.result(WORKLOAD);
    let src = res.energy_sources.iter().find(|s| s.domain == "npu:0").expect("a source for npu:0");
    assert_eq!(src.kind, "runner");
    assert_eq!(src.provenance, effbench::sensor::Provenance::VendorReported);
    assert!(src.sample_hz > 100.0, "{}", src.sample_hz);
    for rep in &res.repeats {
        let npu = rep.energy_j.by_domain["npu:0"].0;
        // 7 W over the window in the runner's clock; effbench's window has the same length up
        // to the jitter of the two acknowledgements' trips.
        let expected = 7.0 * rep.wall_s.0;
        assert!((npu / expected - 1.0).abs() < 0.05, "npu {npu} J, 7 W x {} s", rep.wall_s.0);
        let cpu = rep.energy_j.by_domain["cpu"].0;
        assert!((rep.energy_j.total.0 - (npu + cpu)).abs() < 1e-9);
    }
}

/// Issue 10: a runner that announces power telemetry but sends no samples for a window
/// leaves that repeat's npu:0 energy unresolved (named, with the reason), not silently absent.
#[test]
fn runner_power_that_misses_the_window_leaves_its_domain_unresolved() {
    let dir = tmp("power-gap");
    let toml = hostile_toml(&dir, "power-gap", 5.0, 5.0);
    let r = run_window(&dir, &toml, WORKLOAD, "1", &[], "0.2");
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    for rep in &r.result(WORKLOAD).repeats {
        let u: Vec<(&str, &str)> =
            rep.unresolved_energy.iter().map(|u| (u.domain.as_str(), u.reason.as_str())).collect();
        assert_eq!(u.len(), 1, "{u:?}");
        assert_eq!(u[0].0, "npu:0");
        assert!(u[0].1.contains("runner hostile-power-gap: its power samples do not cover the window"), "{u:?}");
        assert!(!rep.energy_j.by_domain.contains_key("npu:0"));
    }
}

#[test]
fn training_workloads_are_refused_before_any_work_by_a_runner_without_training() {
    // A v1 runner (no `ops` in its hello); training runners: tests/runner_train.rs.
    let dir = tmp("train");
    let toml = repo().join("runners/template/runner.toml");
    let r = run_with(&dir, &toml, "digits-mlp-train", "1", &[("TEMPLATE_HOSTILE", "no-train")]);
    let e = r.stderr();
    assert_eq!(r.code(), Some(2), "{e}");
    assert!(e.contains("digits-mlp-train") && e.contains("does not declare training"), "{e}");
    assert!(!r.dir.join("digits-mlp-train.json").exists());
}

#[test]
fn bad_runner_toml_is_exit_2_with_file_and_line() {
    let dir = tmp("bad-toml");
    let toml = dir.join("bad.toml");
    std::fs::write(&toml, "name = \"x\"\ncommand = [\"python3\"]\ntimeout_s = 1\nwatchdog = 3\n").unwrap();
    let r = run_with(&dir, &toml, WORKLOAD, "1", &[]);
    let e = r.stderr();
    assert_eq!(r.code(), Some(2), "{e}");
    assert!(e.contains("bad.toml:4:") && e.contains("watchdog"), "{e}");
}
