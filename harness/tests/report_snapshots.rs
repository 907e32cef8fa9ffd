//! Snapshot tests (insta) of every renderer on fixed fixture results (tests/fixtures/report/):
//! the report's files (html, md, bmf, prometheus, csv, the SVG plots), the terminal text of
//! `run`, `compare`, `gate`, `check` and the small commands, JUnit and the comparison's
//! Markdown. The snapshots are tests/snapshots/report_snapshots__*.snap.
//!
//! After a deliberate change: `INSTA_UPDATE=always cargo test -p effbench --test report_snapshots`
//! (or `cargo insta review` where cargo-insta is installed), then read the diff before
//! committing. With `CI` set insta writes nothing and a mismatch fails the test.
//!
//! Everything here is machine-independent: relative paths (tests run in the crate's
//! directory), a fixed version, no dates, hosts or temporary directories.

use std::path::{Path, PathBuf};

use effbench::bundle::{CheckReport, Feedback, FeedbackRow, Finding};
use effbench::report::output::Format;
use effbench::report::stream::{render, Options};
use effbench::result::RunResult;

const RESULTS: &str = "tests/fixtures/report/results";
const BASELINES: &str = "tests/fixtures/report/baselines";

/// The fixture report's files in `formats` (sorted), as `effbench report` writes them: the
/// same code that streams 10,000 results, written to a temporary directory and read back.
fn report(formats: &[Format]) -> Vec<(String, Vec<u8>)> {
    let inputs = [PathBuf::from(RESULTS)];
    let opts = Options { baseline: Some(BASELINES), formats, version: "0.0.0-test" };
    render(&inputs, &opts).unwrap()
}

fn load(path: &str) -> RunResult {
    RunResult::load(Path::new(path)).unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn every_report_file_matches_its_snapshot() {
    let all = [Format::Html, Format::Md, Format::Bmf, Format::Prometheus, Format::Csv];
    let files = report(&all);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    insta::assert_snapshot!("report_files", names.join("\n"));
    for (name, bytes) in &files {
        // One snapshot per file, named after it (`index.html` -> `index_html`).
        insta::assert_snapshot!(name.replace(['.', '-'], "_"), text(bytes));
    }
}

#[test]
fn run_summary_and_json() {
    let (a, b) = (load(&format!("{RESULTS}/digits-mlp-train.json")), load(&format!("{RESULTS}/fmnist-mlp-infer.json")));
    let paths = [PathBuf::from("results/x/digits-mlp-train.json"), PathBuf::from("results/x/fmnist-mlp-infer.json")];
    let runs = [
        effbench::report::summary::RunOutput { path: &paths[0], result: &a },
        effbench::report::summary::RunOutput { path: &paths[1], result: &b },
    ];
    insta::assert_snapshot!("run_text", effbench::report::summary::run_text(&runs, Path::new("results/x")));
    insta::assert_snapshot!("run_json", effbench::report::summary::run_json(&runs));
}

#[test]
fn compare_text_and_markdown() {
    let c = load(&format!("{RESULTS}/digits-mlp-train.json"));
    let b = load(&format!("{BASELINES}/digits-mlp-train.json"));
    let cmp = effbench::verdict::compare(&c, &b, &effbench::verdict::CompareOptions::default());
    insta::assert_snapshot!("compare_text", effbench::report::compare::render_text(&cmp));
    insta::assert_snapshot!("compare_markdown", effbench::report::compare::render_markdown(&cmp));
}

#[test]
fn gate_text_and_junit() {
    let c = effbench::gate::load_results(Path::new(RESULTS)).unwrap();
    let b = effbench::gate::load_results(Path::new(BASELINES)).unwrap();
    let r = effbench::gate::gate_sets(&c, &b, &effbench::gate::GateOptions::default()).unwrap();
    insta::assert_snapshot!("gate_text", effbench::report::gate::render_text(&r));
    insta::assert_snapshot!("gate_junit", effbench::report::junit::render(&r));
}

/// A checker's report with one finding of each status and one verdict (the renderer's input,
/// not a measurement).
fn check_report() -> CheckReport {
    CheckReport {
        schema: "effbench.check/1".into(),
        bundle: "bundle-acme".into(),
        submitter: Some("acme".into()),
        valid: false,
        findings: vec![
            Finding::pass("files", "manifest.json", "12 files, every SHA-256 matches"),
            Finding::warn("window", "acme/r/w.json", "repeat 0: window shorter than 1 s", "run more repeats"),
            Finding::fail("energy", "acme/r/w.json", "repeat 1: trace gives 2.0 J, result says 1.0 J", "re-run"),
        ],
        feedback: vec![Feedback {
            workload: "digits-mlp-train".into(),
            result: "acme/r/digits-mlp-train.json".into(),
            baseline: "baselines/x/digits-mlp-train.json".into(),
            energy_label: "measured".into(),
            energy_scope: "energy at device scope (measured): candidate cpu, baseline cpu".into(),
            overall: "inconclusive".into(),
            rows: vec![FeedbackRow {
                metric: "energy_j".into(),
                reduction: 0.42,
                ci95: [0.31, 0.55],
                verdict: "inconclusive".into(),
            }],
        }],
    }
}

#[test]
fn check_text_json_and_markdown() {
    let r = check_report();
    insta::assert_snapshot!("check_text", effbench::report::check::render_text(&r));
    insta::assert_snapshot!("check_json", effbench::report::check::render_json(&r));
    insta::assert_snapshot!("check_markdown", effbench::report::check::render_markdown(&r));
}

#[test]
fn small_commands_text() {
    use effbench::report::listing;
    insta::assert_snapshot!("list_text", listing::workloads_text(effbench_models::WORKLOADS));
    let peak = effbench::peak::Peak { flops_per_s: 1.5e11, median_flops_per_s: 1.2e11, n: 512, gemms: 40, threads: 2 };
    insta::assert_snapshot!("peak_text", listing::peak_text("cpu", &peak));
    let candidates = vec![
        effbench::sensor::Candidate {
            kind: "rapl",
            id: "rapl:package-0".into(),
            domains: vec!["cpu".into()],
            status: effbench::sensor::Status::PermissionDenied { fix: "sudo chmod a+r .../energy_uj".into() },
            detail: serde_json::json!({"path": "/sys/class/powercap/intel-rapl:0"}),
            sensors: Vec::new(),
        },
        effbench::sensor::Candidate {
            kind: "estimate",
            id: "estimate:cpu".into(),
            domains: vec!["cpu".into()],
            status: effbench::sensor::Status::Estimated,
            detail: serde_json::json!({}),
            sensors: Vec::new(),
        },
    ];
    let missing = vec!["cpu".to_string()];
    insta::assert_snapshot!(
        "sensors_text",
        listing::sensors_text(Path::new("/sys/class/powercap"), &candidates, &missing)
    );
    insta::assert_snapshot!("sensors_json", listing::sensors_json(&candidates));
}

#[test]
fn rendering_is_deterministic() {
    let all = [Format::Html, Format::Md, Format::Bmf, Format::Prometheus, Format::Csv];
    assert_eq!(report(&all), report(&all));
}

#[test]
fn what_is_missing_is_said_not_drawn() {
    let md = String::from_utf8(report(&[Format::Md]).remove(0).1).unwrap();
    assert!(md.contains("power trace not drawn: no power trace: tests/fixtures/report/results/fmnist-mlp-infer.trace.csv does not exist"), "{md}");
    assert!(md.contains("Not compared: no baseline for fmnist-mlp-infer"), "{md}");
    // Every energy figure of these CPU-estimate fixtures is marked.
    for line in md.lines().filter(|l| l.starts_with("| energy_j |") || l.starts_with("| energy_per_unit_j |")) {
        assert!(line.contains("ESTIMATED"), "{line}");
    }
}
