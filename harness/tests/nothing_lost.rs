//! Issue 11, "Faults and bad input: nothing lost, nothing crashes", through the real binary:
//! an --out that holds results, two runs into one --out, temporary files a kill -9 left,
//! the --repeat cap and the appended trace, and SIGTERM / SIGINT during CPU and runner runs.
//! Runner tests use Python 3 runners that answer from effbench's reference outputs
//! (`EFFBENCH_TEST_RUNNER_MODEL=reference-outputs`), as tests/runner_hostile.rs does.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use effbench::result::RunResult;

const TRAIN: &str = "digits-mlp-train";
const INFER: &str = "fmnist-mlp-infer";

/// Fast CPU-run arguments (a second or two per run with the fake power source).
fn cpu_args(out: &Path, repeats: &str) -> Vec<String> {
    let mut a: Vec<String> =
        ["run", "--workload", TRAIN, "--repeat", repeats, "--idle-secs", "0.2", "--peak-secs", "0"]
            .map(String::from)
            .into();
    a.extend(["--fake-power".into(), "20".into(), "--out".into(), out.display().to_string()]);
    a
}

fn run_cpu(out: &Path, repeats: &str, extra: &[&str]) -> Output {
    util::effbench().args(cpu_args(out, repeats)).args(extra).output().unwrap()
}

/// A runner TOML: the template runner, or a hostile mode of tests/fixtures/runners/hostile.py.
fn runner_toml(dir: &Path, mode: Option<&str>) -> PathBuf {
    let (script, arg) = match mode {
        None => (util::repo().join("runners/template/runner.py"), String::new()),
        Some(m) => (util::repo().join("harness/tests/fixtures/runners/hostile.py"), format!(", \"{m}\"")),
    };
    let p = dir.join(format!("{}.toml", mode.unwrap_or("template")));
    let body = format!(
        "name = \"{}\"\ncommand = [\"python3\", \"{}\"{arg}]\ntimeout_s = 5\nstartup_timeout_s = 10\n",
        mode.unwrap_or("template"),
        script.display()
    );
    std::fs::write(&p, body).unwrap();
    p
}

fn runner_command(toml: &Path, out: &Path, repeats: &str) -> Command {
    let mut c = util::effbench();
    c.env("EFFBENCH_TEST_RUNNER_MODEL", "reference-outputs");
    c.args(["run", "--backend", &format!("external:{}", toml.display()), "--workload", INFER, "--repeat", repeats]);
    c.args(["--idle-secs", "0", "--peak-secs", "0", "--fake-power", "10", "--min-window-secs", "0.1"]);
    c.args(["--out", out.to_str().unwrap()]);
    c
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Hidden temporary files of atomic writes (`.NAME.tmp.PID.N`) in `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains(".tmp."))
        .collect()
}

/// Waits (at most `within`) until `path` is a result with at least `n` repeats; returns them.
fn wait_for_repeats(child: &mut Child, path: &Path, n: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = RunResult::load(path) {
            if r.repeats.len() >= n {
                return r.repeats.len();
            }
        }
        if let Ok(Some(s)) = child.try_wait() {
            panic!("effbench ended ({s}) before {n} repeat(s) were written");
        }
        assert!(Instant::now() < deadline, "no {n} repeat(s) in {} within {within:?}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

/// Waits for `child` to end (at most 30 s) and returns its output.
fn finish(child: Child) -> Output {
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !waiter.is_finished() {
        assert!(Instant::now() < deadline, "effbench {pid} did not exit within 30 s of the signal");
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter.join().unwrap()
}

fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie waiting for its (new) parent to reap it is gone too.
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if process_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The pids whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the `(comm)`: state, ppid, ...
        let ppid = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(parent) {
            kids.push(pid);
        }
    }
    kids
}

// --- 1. results lost -------------------------------------------------------------------

#[test]
fn a_run_into_an_out_holding_results_is_refused_and_the_earlier_files_kept() {
    let dir = util::tempdir("used-out");
    let out = dir.path().join("out");
    let first = run_cpu(&out, "2", &[]);
    assert_eq!(first.status.code(), Some(0), "{}", util::both(&first));
    let (json, trace) = (out.join(format!("{TRAIN}.json")), out.join(format!("{TRAIN}.trace.csv")));
    let (json_before, trace_before) = (read(&json), read(&trace));

    let t = Instant::now();
    let second = run_cpu(&out, "5", &[]);
    let e = util::text(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{e}");
    assert!(e.contains(&format!("--out {} already holds effbench results", out.display())), "{e}");
    assert!(e.contains(&format!("{TRAIN}.json, {TRAIN}.trace.csv")), "{e}");
    assert!(e.contains("pass --force") && e.contains("pick another --out"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "refused only after work: {:?}", t.elapsed());
    assert_eq!(read(&json), json_before, "the earlier result was touched");
    assert_eq!(read(&trace), trace_before, "the earlier trace was touched");
}

#[test]
fn force_keeps_the_earlier_result_until_the_new_runs_first_repeat_is_written() {
    let dir = util::tempdir("force");
    let out = dir.path().join("out");
    let first = runner_command(&runner_toml(dir.path(), None), &out, "2").output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", util::both(&first));
    let (json, trace) = (out.join(format!("{INFER}.json")), out.join(format!("{INFER}.trace.csv")));
    let (json_before, trace_before) = (read(&json), read(&trace));

    // --force, and the run fails before its first repeat (the runner exits at once).
    let failed = runner_command(&runner_toml(dir.path(), Some("exit")), &out, "5").arg("--force").output().unwrap();
    assert_eq!(failed.status.code(), Some(2), "{}", util::both(&failed));
    assert!(util::text(&failed.stderr).contains("cannot open /dev/npu0"), "{}", util::both(&failed));
    assert_eq!(read(&json), json_before, "a failed --force run destroyed the earlier result");
    assert_eq!(read(&trace), trace_before, "a failed --force run destroyed the earlier trace");
    assert_eq!(RunResult::load(&json).unwrap().repeats.len(), 2);
    assert_eq!(temp_files(&out), Vec::<String>::new());

    // A --force run that gets its first repeat done replaces the file.
    let replaced = runner_command(&runner_toml(dir.path(), None), &out, "1").arg("--force").output().unwrap();
    assert_eq!(replaced.status.code(), Some(0), "{}", util::both(&replaced));
    assert_eq!(RunResult::load(&json).unwrap().repeats.len(), 1);
}

// --- 2. concurrent runs ----------------------------------------------------------------

#[test]
fn a_second_run_into_a_locked_out_exits_2_naming_the_holders_pid() {
    let dir = util::tempdir("locked");
    let out = dir.path().join("out");
    // The first run holds the lock through a 3 s idle window.
    let mut args = cpu_args(&out, "1");
    let idle = args.iter().position(|a| a == "--idle-secs").unwrap() + 1;
    args[idle] = "3".into();
    let first = util::effbench().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let lock = out.join(".effbench.lock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&lock).map(|s| s.trim().to_string()).ok() != Some(first.id().to_string()) {
        assert!(Instant::now() < deadline, "the first run never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = run_cpu(&out, "1", &["--force"]);
    let e = util::text(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{e}");
    assert!(e.contains(&format!("is in use by another effbench run (pid {}", first.id())), "{e}");
    let first = finish(first);
    assert_eq!(first.status.code(), Some(0), "{}", util::both(&first));
    assert_eq!(RunResult::load(&out.join(format!("{TRAIN}.json"))).unwrap().repeats.len(), 1);
}

// --- 3. temporary files after kill -9 --------------------------------------------------

#[test]
fn temp_files_a_killed_run_left_are_removed_and_reported() {
    let dir = util::tempdir("stale-tmp");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // A pid that has certainly exited: a child we started and reaped.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let stale = format!(".{TRAIN}.json.tmp.{dead}.0");
    std::fs::write(out.join(&stale), b"{\"schema\": \"effbench.res").unwrap();
    // One of a live process (this test) may be a write in progress: left alone.
    let live = format!(".other.json.tmp.{}.3", std::process::id());
    std::fs::write(out.join(&live), b"{").unwrap();

    let o = run_cpu(&out, "1", &[]);
    let e = util::text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert!(
        e.contains(&format!("removed 1 temporary file(s) an interrupted run left in {}: {stale}", out.display())),
        "{e}"
    );
    assert_eq!(temp_files(&out), vec![live]);
}

// --- 4. quadratic I/O ------------------------------------------------------------------

#[test]
fn repeat_is_capped_at_1000() {
    let dir = util::tempdir("cap");
    // Refused at once; a binary that accepts it would run for many minutes.
    let mut cmd = util::effbench();
    cmd.args(cpu_args(&dir.path().join("out"), "1001"));
    let o = util::output_within(&mut cmd, 20, "--repeat 1001 was accepted");
    let e = util::text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("1001") && e.contains("1..=1000"), "{e}");
}

#[test]
fn the_appended_trace_holds_the_header_once_and_each_phase_once_in_order() {
    let dir = util::tempdir("trace");
    let out = dir.path().join("out");
    let o = run_cpu(&out, "3", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", util::both(&o));
    let trace = std::fs::read_to_string(out.join(format!("{TRAIN}.trace.csv"))).unwrap();
    let mut lines = trace.lines();
    assert_eq!(lines.next(), Some("t_s,phase,cpu_w"));
    let mut phases: Vec<&str> = Vec::new();
    for l in lines {
        let phase = l.split(',').nth(1).unwrap();
        if phases.last() != Some(&phase) {
            phases.push(phase);
        }
    }
    assert_eq!(phases, ["idle", "repeat-0", "repeat-1", "repeat-2"], "{trace}");
}

// --- 5. signals ------------------------------------------------------------------------

#[test]
fn sigterm_during_a_cpu_run_stops_its_power_command_keeps_finished_repeats_and_exits_143() {
    let dir = util::tempdir("sigterm-cpu");
    let out = dir.path().join("out");
    let pid_file = dir.path().join("helper.pid");
    // A stream-mode power command whose helper would outlive a careless exit.
    let cmd =
        format!("sleep 1000 >/dev/null 2>&1 & echo $! > {}; while :; do echo 20; sleep 0.05; done", pid_file.display());
    let mut child = util::effbench()
        .args(["run", "--workload", TRAIN, "--repeat", "500", "--idle-secs", "0.2", "--peak-secs", "0"])
        .args(["--power-command", &cmd, "--power-command-mode", "stream", "--power-command-domain", "cpu"])
        .args(["--out", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let json = out.join(format!("{TRAIN}.json"));
    let seen = wait_for_repeats(&mut child, &json, 1, Duration::from_secs(120));
    let helper: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    signal(&child, libc::SIGTERM);
    let o = finish(child);
    let e = util::text(&o.stderr);
    assert_eq!(o.status.code(), Some(143), "{e}");
    assert!(e.contains("SIGTERM") && e.contains("finished repeats stay"), "{e}");
    let kept = RunResult::load(&json).expect("a complete result after SIGTERM").repeats.len();
    assert!(kept >= seen && kept < 500, "{kept} repeats kept, {seen} seen before the signal");
    assert!(wait_gone(helper), "the power command's helper {helper} survived");
    assert_eq!(temp_files(&out), Vec::<String>::new());
}

#[test]
fn sigint_during_a_cpu_run_keeps_finished_repeats_and_exits_130() {
    let dir = util::tempdir("sigint-cpu");
    let out = dir.path().join("out");
    let mut child =
        util::effbench().args(cpu_args(&out, "500")).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let json = out.join(format!("{TRAIN}.json"));
    let seen = wait_for_repeats(&mut child, &json, 1, Duration::from_secs(120));
    signal(&child, libc::SIGINT);
    let o = finish(child);
    assert_eq!(o.status.code(), Some(130), "{}", util::both(&o));
    assert!(RunResult::load(&json).unwrap().repeats.len() >= seen);
    assert_eq!(temp_files(&out), Vec::<String>::new());
}

#[test]
fn sigterm_during_a_runner_run_stops_the_runner_removes_its_work_dir_and_exits_143() {
    let dir = util::tempdir("sigterm-runner");
    let out = dir.path().join("out");
    let mut child = runner_command(&runner_toml(dir.path(), None), &out, "500")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let json = out.join(format!("{INFER}.json"));
    let seen = wait_for_repeats(&mut child, &json, 1, Duration::from_secs(120));
    let runners = children_of(child.id());
    assert_eq!(runners.len(), 1, "expected one runner process, found {runners:?}");
    let runner = runners[0];
    let work = std::fs::read_link(format!("/proc/{runner}/cwd")).unwrap();
    assert!(work.to_string_lossy().ends_with(".runner-work"), "{}", work.display());
    signal(&child, libc::SIGTERM);
    let o = finish(child);
    let e = util::text(&o.stderr);
    assert_eq!(o.status.code(), Some(143), "{e}");
    assert!(wait_gone(runner), "the runner {runner} survived SIGTERM of effbench");
    assert!(!work.exists(), "the runner's work directory {} was left behind", work.display());
    let kept = RunResult::load(&json).expect("a complete result after SIGTERM").repeats.len();
    assert!(kept >= seen && kept < 500, "{kept} repeats kept, {seen} seen before the signal");
    assert_eq!(temp_files(&out), Vec::<String>::new());
}

// --- 6. a sensor failing mid-run --------------------------------------------------------

/// Issue 10, item 6, the meter's side: a `--power-command` that starts failing after the
/// first repeat does not stop the run (a reading that fails is a gap in the measurement, and
/// the source may come back): every repeat is kept, those whose window holds a failed reading
/// have that domain's energy unresolved with the command's error (never judged by `compare` or
/// `gate`), the table says UNRESOLVED, and the exit code is the run's usual one (0 here). A wall
/// meter that goes away mid-run, by contrast, stops the run with exit 5
/// (tests/ptd_e2e.rs), as does a runner (tests/runner_hostile.rs).
#[test]
fn power_command_failing_mid_run_leaves_later_energy_unresolved_and_the_run_goes_on() {
    let dir = util::tempdir("pc-fails");
    let out = dir.path().join("out");
    let json = out.join(format!("{INFER}.json"));
    // Good until the first repeat is written, then failing for good.
    let cmd = format!("if [ -e {} ]; then echo 'npu-smi: device lost' >&2; exit 1; fi; echo 5 W", json.display());
    let sysfs = util::tempdir("pc-fails-sysfs"); // empty: the command is the cpu's only source
    let o = util::effbench()
        .env("EFFBENCH_SYSFS_ROOT", sysfs.path())
        .args(["run", "--workload", INFER, "--repeat", "3", "--idle-secs", "0.2", "--peak-secs", "0"])
        .args(["--min-window-secs", "0.3", "--power-command", &cmd, "--power-command-domain", "cpu"])
        .args(["--power-command-interval", "0.05", "--power-command-timeout", "1"])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let all = util::both(&o);
    assert_eq!(o.status.code(), Some(0), "{all}");
    assert!(all.contains("UNRESOLVED"), "{all}");
    // The progress lines say what failed, and never show the missing figure as 0 J.
    let e = util::text(&o.stderr);
    assert!(e.contains("seed 1: ") && e.contains("cpu energy UNRESOLVED (") && e.contains("device lost"), "{e}");
    assert!(!e.contains(" 0.00 J") && !e.contains("-0.00 J"), "{e}");
    let r = RunResult::load(&json).unwrap();
    assert_eq!(r.repeats.len(), 3, "every repeat is kept");
    assert!(r.repeats.iter().all(|rep| rep.valid));
    let first = &r.repeats[0];
    assert!(first.unresolved_energy.is_empty(), "{:?}", first.unresolved_energy);
    assert!(first.energy_j.by_domain["cpu"].0 > 0.0);
    for rep in &r.repeats[1..] {
        let u = &rep.unresolved_energy;
        assert!(u.len() == 1 && u[0].domain == "cpu" && u[0].reason.contains("npu-smi: device lost"), "{u:?}");
        assert!(!rep.energy_j.by_domain.contains_key("cpu"), "an incomplete figure is left out");
    }
}
