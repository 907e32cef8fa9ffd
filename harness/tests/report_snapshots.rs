//! Snapshot tests of `effbench report`'s renderers on fixed fixture results
//! (tests/fixtures/report/): each renderer's output must equal the file under
//! tests/snapshots/report/. After a deliberate change, regenerate with
//! `UPDATE_SNAPSHOTS=1 cargo test -p effbench --test report_snapshots` and review the diff.

use std::path::{Path, PathBuf};

use effbench::report::data::ReportData;
use effbench::report::output::{render, Format};

fn fixture() -> ReportData {
    // Relative paths (the tests run in the crate's directory) keep the snapshots
    // machine-independent; so does the fixed version.
    let inputs = [PathBuf::from("tests/fixtures/report/results")];
    let mut data = effbench::report::build::build(&inputs, Some("tests/fixtures/report/baselines")).unwrap();
    data.effbench_version = "0.0.0-test".into();
    data
}

fn check(name: &str, actual: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/report").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it", path.display()));
    if expected != actual {
        let got = path.with_extension("new");
        std::fs::write(&got, actual).unwrap();
        panic!("{name} differs from its snapshot; the new output is in {}", got.display());
    }
}

#[test]
fn every_renderer_matches_its_snapshot() {
    let data = fixture();
    let all = [Format::Html, Format::Md, Format::Bmf, Format::Prometheus, Format::Csv];
    let files = render(&data, &all);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "index.html",
            "report.md",
            "bmf.json",
            "effbench.prom",
            "repeats.csv",
            "digits-mlp-train-quality.svg",
            "digits-mlp-train-power.svg",
            "digits-mlp-train-energy.svg",
            "digits-mlp-train-reduction.svg",
            "fmnist-mlp-infer-energy.svg",
        ]
    );
    for (name, bytes) in &files {
        check(name, bytes);
    }
}

#[test]
fn rendering_is_deterministic() {
    let (a, b) = (fixture(), fixture());
    assert_eq!(render(&a, &[Format::Html, Format::Bmf]), render(&b, &[Format::Html, Format::Bmf]));
}

#[test]
fn what_is_missing_is_said_not_drawn() {
    let data = fixture();
    let md = String::from_utf8(render(&data, &[Format::Md]).remove(0).1).unwrap();
    assert!(md.contains("power trace not drawn: no power trace: tests/fixtures/report/results/fmnist-mlp-infer.trace.csv does not exist"), "{md}");
    assert!(md.contains("Not compared: no baseline for fmnist-mlp-infer"), "{md}");
    // Every energy figure of these CPU-estimate fixtures is marked.
    for line in md.lines().filter(|l| l.starts_with("| energy_j |") || l.starts_with("| energy_per_unit_j |")) {
        assert!(line.contains("ESTIMATED"), "{line}");
    }
}
